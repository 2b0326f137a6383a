//! Registration, inbound calls, CANCEL, 403, outbound calls through a trunk with digest
//! auth, and graceful shutdown, each against real SIPp.

use crate::harness::*;
use std::time::Duration;

const DEMO: &str = "demo = true";

#[test]
fn register_answers_the_digest_challenge_and_wrong_passwords_get_403() {
    let g = Gateway::start(21000, DEMO, "", "");
    let dir = g.dir.path();
    let sip = format!("127.0.0.1:{}", g.sip);
    let ok = sipp(
        dir,
        &[
            "-sf",
            &scenario("register.xml"),
            "-s",
            "1001",
            "-au",
            "1001",
            "-ap",
            "demo1001",
            "-p",
            "21010",
            "-m",
            "1",
            &sip,
        ],
    );
    assert_sipp_ok(&ok, "REGISTER with digest", &g);
    g.wait_metric("omnigate_sip_registrations", 1.0);
    let bad = sipp(
        dir,
        &[
            "-sf",
            &scenario("register_wrong.xml"),
            "-s",
            "1001",
            "-au",
            "1001",
            "-ap",
            "wrong",
            "-p",
            "21011",
            "-m",
            "1",
            &sip,
        ],
    );
    assert_sipp_ok(&bad, "REGISTER with a wrong password (expects 403)", &g);
    let unknown = sipp(
        dir,
        &[
            "-sf",
            &scenario("register_wrong.xml"),
            "-s",
            "9999",
            "-au",
            "9999",
            "-ap",
            "x",
            "-p",
            "21012",
            "-m",
            "1",
            &sip,
        ],
    );
    assert_sipp_ok(
        &unknown,
        "REGISTER of an unknown user (expects the same 403)",
        &g,
    );
    g.wait_metric("omnigate_sip_responses_sent_total{code=\"403\"}", 2.0);
    assert_eq!(
        g.metric("omnigate_sip_responses_sent_total{code=\"401\"}"),
        Some(3.0)
    );
    assert_eq!(g.metric("omnigate_sip_registrations"), Some(1.0));
}

#[test]
fn call_answered_then_hung_up_by_the_caller() {
    let g = Gateway::start(
        21100,
        DEMO,
        "answer_after_ms = 50\nhangup_after_secs = 0",
        // The default [log]: personal data redacted.
        "[log]\nlevel = \"info\"\n",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sn",
            "uac",
            "-s",
            "100",
            "-d",
            "1000",
            "-p",
            "21110",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "uac call", &g);
    g.wait_metric("omnigate_calls_total", 1.0);
    g.wait_metric("omnigate_calls", 0.0);
    assert!(
        g.metric("omnigate_sip_responses_sent_total{code=\"200\"}")
            .unwrap()
            >= 2.0,
        "200 to INVITE and to BYE"
    );
    g.wait_log("call established");
    g.wait_log("reason=RemoteBye");
    let log = g.log();
    // Caller numbers are redacted in logs by default.
    assert!(
        !log.contains("sipp@") && !log.contains("caller=sipp"),
        "{log}"
    );
}

#[test]
fn call_hung_up_by_the_gateway() {
    let g = Gateway::start(
        21200,
        DEMO,
        "answer_after_ms = 50\nhangup_after_secs = 1",
        // The default [log]: personal data redacted.
        "[log]\nlevel = \"info\"\n",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_gateway_hangs_up.xml"),
            "-s",
            "100",
            "-p",
            "21210",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "gateway hangs up", &g);
    g.wait_log("reason=LocalBye");
    assert!(
        !g.log().contains("+15551230001"),
        "caller number must be redacted"
    );
}

#[test]
fn cancel_before_answer_gets_487() {
    let g = Gateway::start(
        21300,
        DEMO,
        "answer_after_ms = 10000\nhangup_after_secs = 0",
        "",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_cancel.xml"),
            "-s",
            "100",
            "-p",
            "21310",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "CANCEL", &g);
    g.wait_metric("omnigate_sip_responses_sent_total{code=\"487\"}", 1.0);
    g.wait_log("reason=Cancelled");
}

#[test]
fn invite_from_an_unknown_source_gets_403_and_is_not_routed() {
    let trunk = "[[trunk]]\nname = \"carrier\"\ninbound = [\"192.0.2.0/24\"]\nproxy = \"127.0.0.1:21599\"\n";
    let g = Gateway::start(21500, "demo = false", "answer_after_ms = 0", trunk);
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_expect_403.xml"),
            "-s",
            "5551234",
            "-p",
            "21510",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "expect 403", &g);
    g.wait_metric("omnigate_sip_responses_sent_total{code=\"403\"}", 1.0);
    assert_eq!(g.metric("omnigate_calls_total"), Some(0.0));
    assert_eq!(
        g.metric("omnigate_sip_client_transactions_total"),
        Some(0.0),
        "nothing was sent towards the trunk"
    );
}

#[test]
fn outbound_call_through_a_trunk_answers_the_providers_digest_challenges() {
    let provider_port = 21410;
    let dir = tempfile::tempdir().unwrap();
    let provider = sipp_spawn(
        dir.path(),
        &[
            "-sf",
            &scenario("uas_provider.xml"),
            "-p",
            &provider_port.to_string(),
            "-m",
            "2",
        ],
    );
    let trunk = format!(
        "[[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:{provider_port}\"\ndomain = \"provider.example\"\nusername = \"trunkuser\"\npassword = \"trunkpass\"\nregister = true\nregister_expires = 3600\n"
    );
    let g = Gateway::start(
        21400,
        "demo = false",
        "answer_after_ms = 0\nhangup_after_secs = 1",
        &trunk,
    );
    wait_for(
        "registration to the provider",
        Duration::from_secs(10),
        || g.metric("omnigate_trunk_registered{trunk=\"provider\"}") == Some(1.0),
    );
    let (code, body) = g.post("/api/calls", Some("test-token"), r#"{"to": "5551234"}"#);
    assert_eq!(code, 202, "{body}");
    let out = provider.wait_with_output().unwrap();
    assert_sipp_ok(
        &out,
        "provider UAS (REGISTER + INVITE, both challenged)",
        &g,
    );
    g.wait_log("call established");
    g.wait_log("reason=LocalBye");
    // The API refuses what it should.
    assert_eq!(g.post("/api/calls", None, r#"{"to":"1"}"#).0, 401);
    assert_eq!(g.post("/api/calls", Some("nope"), r#"{"to":"1"}"#).0, 401);
    assert_eq!(
        g.post("/api/calls", Some("test-token"), r#"{"to":"a b"}"#)
            .0,
        400
    );
    assert_eq!(g.post("/api/calls", Some("test-token"), "not json").0, 400);
}

#[test]
fn graceful_shutdown_refuses_new_calls_then_ends_live_ones_with_bye() {
    let mut g = Gateway::start(
        21600,
        DEMO,
        "answer_after_ms = 0\nhangup_after_secs = 0",
        "[shutdown]\ngrace_secs = 2\n",
    );
    let sip = format!("127.0.0.1:{}", g.sip);
    // A live call that only the shutdown will end.
    let live = sipp_spawn(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_gateway_hangs_up.xml"),
            "-s",
            "100",
            "-p",
            "21610",
            "-m",
            "1",
            &sip,
        ],
    );
    wait_for("the live call", Duration::from_secs(10), || {
        g.metric("omnigate_sip_dialogs") == Some(1.0)
    });
    // Bob is on the floor (available in the browser) when the node stops.
    let (_bob, _ws) = crate::channels::on_duty(&g, "bob", "demo-bob");
    g.sigterm();
    wait_for("draining", Duration::from_secs(5), || {
        g.get("/healthz").0 == 503
    });
    let refused = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_expect_503.xml"),
            "-s",
            "100",
            "-p",
            "21611",
            "-m",
            "1",
            &sip,
        ],
    );
    assert_sipp_ok(&refused, "INVITE while draining (expects 503)", &g);
    let out = live.wait_with_output().unwrap();
    assert_sipp_ok(&out, "live call ended by BYE at shutdown", &g);
    let status = g.wait_exit(Duration::from_secs(10)).expect("gateway exits");
    assert!(status.success(), "exit status {status}\n{}", g.log());
    assert!(g.log().contains("grace period over"), "{}", g.log());
    // His activity log says offline from the stop (his time while the node is down is
    // not available time), so the next start has nobody left to close.
    assert!(
        g.log()
            .contains("agents on the floor noted offline at the stop agents=1"),
        "{}",
        g.log()
    );
    g.crash_and_restart();
    assert!(
        !g.log()
            .contains("agents logged in at the last stop noted offline"),
        "{}",
        g.log()
    );
}

/// The `leg media` summary of leg `leg` from the gateway's log: (sent, received).
fn leg_media(log: &str, leg: usize) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("leg media") && l.contains(&format!(" leg={leg} ")))
        .unwrap_or_else(|| panic!("no media summary for leg {leg}:\n{log}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    (field("sent="), field("received="))
}

#[test]
fn a_registered_phone_calls_extensions_and_out_through_the_phones_trunk() {
    let base = 24400;
    let users: String = ["1001", "1002", "1003"]
        .iter()
        .map(|u| format!("[[user]]\nname = \"{u}\"\npassword = \"demo{u}\"\n"))
        .collect();
    let g = Gateway::start(
        base,
        &format!("demo = false\n{users}"),
        "phones_trunk = \"provider\"\nring_secs = 2",
        &format!(
            "[[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:{}\"\noptions_interval = 0\n",
            base + 30
        ),
    );
    let sip = format!("127.0.0.1:{}", g.sip);
    // The SIPp peers take turns on the same ports, away from the gateway's RTP range
    // (see Gateway::start): 1002 on base + 20 (media + 24), 1001 on base + 10 (media + 14),
    // the provider on base + 30 (media + 34).
    let port = base + 20;
    // 1002 calls `to` (its credentials answer the 407); the outcome is in the trace.
    let call = |to: &str, trace: &str| -> String {
        register_demo_phone(&g, "1002", port);
        let path = g.dir.path().join(trace);
        let out = sipp(
            g.dir.path(),
            &[
                "-sf",
                &scenario("uac_phone_call.xml"),
                "-s",
                to,
                "-key",
                "from",
                "1002",
                "-au",
                "1002",
                "-ap",
                "demo1002",
                "-p",
                &port.to_string(),
                "-mp",
                &(port + 4).to_string(),
                "-m",
                "1",
                "-trace_msg",
                "-message_file",
                path.to_str().unwrap(),
                &sip,
            ],
        );
        assert_sipp_ok(&out, &format!("1002 calls {to}"), &g);
        std::fs::read_to_string(&path).unwrap()
    };

    // 1001's phone answers and echoes what it hears: 1002's speech goes there and back.
    // 1001's phone, registered from `port`, as SIPp runs `how`.
    let phone_1001 = |port: u16, how: &[&str]| -> Spawned {
        register_demo_phone(&g, "1001", port);
        let port = port.to_string();
        let mut args = how.to_vec();
        args.extend(["-p", &port, "-m", "1"]);
        sipp_spawn(g.dir.path(), &args)
    };
    let media_port = (base + 14).to_string();
    let phone = phone_1001(base + 10, &["-sn", "uas", "-rtp_echo", "-mp", &media_port]);
    let trace = call("1001", "answered.log");
    assert!(trace.contains("SIP/2.0 200 OK"), "{trace}");
    assert_sipp_done(phone, "1001's phone answers", &g);
    g.wait_log("calling an extension");
    g.wait_log(" leg=1 ");
    let log = g.log();
    let (caller_sent, caller_received) = leg_media(&log, 0);
    let (phone_sent, phone_received) = leg_media(&log, 1);
    // 7 s of 30 ms packets: some 230 each way.
    assert!(
        caller_received > 200,
        "the caller's speech reached us: {log}"
    );
    assert!(phone_sent > 200, "and went on to 1001's phone: {log}");
    assert!(phone_received > 200, "1001's echo came back: {log}");
    assert!(caller_sent > 200, "and went on to the caller: {log}");

    // 1001's phone is busy now: the caller hears busy, not a generic failure.
    let busy = phone_1001(base + 10, &["-sf", &scenario("uas_busy.xml")]);
    let trace = call("1001", "busy.log");
    assert!(trace.contains("SIP/2.0 486 Busy Here"), "{trace}");
    assert_sipp_done(busy, "1001's phone is busy", &g);

    // 1003 is a user whose phone is not registered.
    let trace = call("1003", "unregistered.log");
    assert!(
        trace.contains("SIP/2.0 480 Temporarily Unavailable"),
        "{trace}"
    );

    // 1001's phone rings and nobody answers: after ring_secs its INVITE is cancelled
    // (it answers 200 to the CANCEL and 487, which we ACK) and the caller gets 480.
    let ringing = phone_1001(base + 10, &["-sf", &scenario("uas_no_answer.xml")]);
    let trace = call("1001", "no-answer.log");
    assert!(trace.contains("SIP/2.0 180 Ringing"), "{trace}");
    assert!(
        trace.contains("SIP/2.0 480 Temporarily Unavailable"),
        "{trace}"
    );
    assert_sipp_done(ringing, "1001's phone rang, was cancelled, got its ACK", &g);
    g.wait_log("no answer");

    // A number that is no user goes out through the phones' trunk (an agent calling a
    // customer back); the provider answers and echoes.
    let provider_trace = g.dir.path().join("provider.log");
    let provider = sipp_spawn(
        g.dir.path(),
        &[
            "-sn",
            "uas",
            "-rtp_echo",
            "-p",
            &(base + 30).to_string(),
            "-mp",
            &(base + 34).to_string(),
            "-m",
            "1",
            "-trace_msg",
            "-message_file",
            provider_trace.to_str().unwrap(),
        ],
    );
    let trace = call("+15550001111", "out.log");
    assert!(trace.contains("SIP/2.0 200 OK"), "{trace}");
    assert_sipp_done(provider, "the provider answers", &g);
    let seen = std::fs::read_to_string(&provider_trace).unwrap();
    assert!(seen.contains("INVITE sip:+15550001111@"), "{seen}");
}
