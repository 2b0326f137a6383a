//! The whole product end to end: a caller (SIPp, caller id of the demo customer Ada)
//! walks the demo IVR to the support queue; the demo agent Bob, logged in on the agent
//! desktop in real headless Chromium (playwright-core, fake microphone from a WAV),
//! sees the page ring with Ada's screen-pop, answers in the browser (WebRTC: ICE-lite,
//! DTLS-SRTP, G.711 bridged without transcoding), holds and resumes, presses a key on
//! the dial pad, hangs up and wraps up. Then: the browser's getStats saw the caller's
//! RTP, SIPp's media socket got the agent's, the recording has sound on both channels,
//! and the interaction is on Ada's timeline with the agent, the queue, the IVR
//! variables and a duration. Screenshots at the offer and at wrap-up are kept in
//! `target/e2e-artifacts/agent-desktop/`.
//!
//! Also in Chromium: a web chat's screen-pop is "Unverified" until the agent verifies
//! it, and a JsSIP softphone (the demo extension 1001, SIP over WebSocket, DTLS-SRTP)
//! calls the demo IVR, hears it, presses a key by SIP INFO and is recorded.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Speech from the demo prompts, 8 kHz mono.
fn speech(names: &[&str]) -> Vec<i16> {
    let mut v = Vec::new();
    for n in names {
        let s = omnigate::media::player::load_wav(&repo(&format!("dialplans/prompts/{n}.wav")))
            .unwrap();
        v.extend_from_slice(&s);
        v.extend(std::iter::repeat_n(0i16, 1600));
    }
    v
}

/// An 8 kHz µ-law WAV (format 7), what SIPp's `rtp_stream` plays as PCMU.
fn write_ulaw_wav(path: &Path, pcm: &[i16]) {
    let data: Vec<u8> = pcm
        .iter()
        .map(|&s| omnigate::media::g711::linear_to_ulaw(s))
        .collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(4 + 26 + 12 + 8 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&18u32.to_le_bytes());
    w.extend_from_slice(&7u16.to_le_bytes()); // µ-law
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(&0u16.to_le_bytes());
    w.extend_from_slice(b"fact");
    w.extend_from_slice(&4u32.to_le_bytes());
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    std::fs::write(path, w).unwrap();
}

/// A 48 kHz 16-bit WAV for Chromium's fake microphone.
pub(crate) fn write_48k_wav(path: &Path, pcm8k: &[i16]) {
    let f: Vec<f32> = pcm8k.iter().map(|&s| s as f32 / 32768.0).collect();
    let up = omnigate::media::player::resample(&f, 8000, 48000);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in up {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// (bytes queued, packets dropped) on the UDP socket bound to `port`: SIPp never reads
/// its media socket while it streams, so what the gateway sends it piles up here.
fn udp_socket_counters(port: u16) -> Option<(u64, u64)> {
    let t = std::fs::read_to_string("/proc/net/udp").ok()?;
    let want = format!(":{port:04X}");
    t.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if !f.get(1)?.ends_with(&want) {
            return None;
        }
        let rx = u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
        let drops = f.last()?.parse().ok()?;
        Some((rx, drops))
    })
}

fn rms(v: &[i16]) -> f64 {
    (v.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// A gateway on the demo config (demo flow open around the clock, recording on, a
/// CRM webhook on `base + 50` that fails its first post), with the caller's and the
/// agent's audio files written.
struct Desk {
    g: Gateway,
    _dialplans: tempfile::TempDir,
    hooks: Posts,
    secret: &'static str,
    mic_wav: PathBuf,
    artifacts: PathBuf,
}

fn desk(base: u16, artifacts: &str) -> Desk {
    assert!(
        repo("tests/browser/node_modules/playwright-core").exists(),
        "playwright-core is not installed in tests/browser: run ./scripts/test.sh, which installs it"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed (Debian package chromium): run ./scripts/test.sh"
    );
    let dp = tempfile::tempdir().unwrap();
    open_demo_dialplan(dp.path());
    let hooks = crm(base + 50);
    let secret = "crm-shared-secret-0123456789";
    let g = Gateway::start(
        base,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = true",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"demo\"\n\n[[webhook]]\nurl = \"http://127.0.0.1:{}/crm\"\nsecret = \"{secret}\"\n",
            dp.path().display(),
            base + 50
        ),
    );
    g.wait_log("dialplan loaded");
    write_ulaw_wav(
        &g.dir.path().join("caller-ulaw.wav"),
        &speech(&["main-menu", "account", "thanks", "please-hold"]),
    );
    let mic_wav = g.dir.path().join("agent-48k.wav");
    write_48k_wav(
        &mic_wav,
        &speech(&["welcome", "connecting-support", "goodbye", "leave-message"]),
    );
    let artifacts = repo(&format!("target/e2e-artifacts/{artifacts}"));
    let _ = std::fs::remove_dir_all(&artifacts);
    Desk {
        g,
        _dialplans: dp,
        hooks,
        secret,
        mic_wav,
        artifacts,
    }
}

/// The agent's browser (tests/browser/agent_call.mjs) and what it reported so far.
pub(crate) struct Browser {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    transcript: String,
}

impl Browser {
    fn start(d: &Desk, agent: &str, password: &str, how: &str) -> Browser {
        let base = format!("http://127.0.0.1:{}", d.g.http);
        let mic = d.mic_wav.display().to_string();
        let artifacts = d.artifacts.display().to_string();
        Browser::run(
            "agent_call.mjs",
            &[&base, agent, password, &mic, &artifacts, how],
        )
    }

    /// Runs `tests/browser/<script>` with `args`.
    pub(crate) fn run(script: &str, args: &[&str]) -> Browser {
        let mut child = Command::new("node")
            .arg(repo(&format!("tests/browser/{script}")))
            .args(args)
            .current_dir(repo("tests/browser"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node (Debian package nodejs)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Browser {
            child,
            lines,
            transcript: String::new(),
        }
    }

    /// Waits for the script's step `name` and returns what it reported.
    pub(crate) fn step(&mut self, name: &str, g: &Gateway) -> serde_json::Value {
        for l in self.lines.by_ref() {
            let l = l.unwrap();
            self.transcript.push_str(&l);
            self.transcript.push('\n');
            if let Some(rest) = l.strip_prefix(&format!("STEP {name} ")) {
                return json(rest);
            }
            if l.starts_with("FAILED") {
                // The rest is the failure's detail.
                for l in self.lines.by_ref().map_while(Result::ok) {
                    self.transcript.push_str(&l);
                    self.transcript.push('\n');
                }
                break;
            }
        }
        panic!(
            "the browser did not reach step {name:?}:\n{}\n--- gateway log:\n{}",
            self.transcript,
            g.log()
        );
    }

    /// A line on the script's stdin (it waits for one before a transfer).
    pub(crate) fn go(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the browser script: {status}\n{}",
            self.transcript
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Ada (+15551234567) calls through the demo IVR: 2, account 1234#, then speaks.
fn ada_calls(g: &Gateway, sipp_port: u16, media_port: u16) -> Spawned {
    sipp_spawn(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_agent_call.xml"),
            "-s",
            "100",
            "-m",
            "1",
            "-p",
            &sipp_port.to_string(),
            "-mp",
            &media_port.to_string(),
            &format!("127.0.0.1:{}", g.sip),
        ],
    )
}

/// Steps 4 and 5 of the issue: the page rings with Ada's screen-pop, the agent answers,
/// and audio flows both ways (the browser's getStats; SIPp's media socket, measured
/// while caller and browser are bridged). Then hold, resume and a key.
fn ring_answer_talk(b: &mut Browser, g: &Gateway, media_port: u16) {
    let offered = b.step("offered", g);
    assert_eq!(offered["name"], "Ada Lovelace", "{offered}");
    // The offer shows the person first, with her gold tier; the plumbing is folded.
    assert_eq!(offered["person"], "Ada Lovelace", "{offered}");
    let tier = &offered["tier"];
    assert_eq!(tier["text"], "gold", "{offered}");
    assert_eq!(tier["visible"], true, "{offered}");
    assert!(
        tier["class"].as_str().unwrap().contains("tier-gold"),
        "{offered}"
    );
    assert_eq!(tier["background"], "rgb(212, 160, 23)", "gold: {offered}");
    assert_eq!(offered["internal_open"], false, "{offered}");
    let offer_text = offered["offer"].as_str().unwrap();
    assert!(offer_text.contains("1234"), "digits entered: {offered}");
    assert!(offer_text.contains("support"), "{offered}");
    assert!(
        offer_text.contains("VIP"),
        "a gold customer is a VIP: {offered}"
    );
    assert!(
        offer_text.contains("answer within 0:"),
        "a countdown: {offered}"
    );
    assert!(
        !offer_text.contains("call_id"),
        "internals folded: {offered}"
    );
    assert_eq!(offered["focused"], "Answer", "focus on Answer: {offered}");
    assert!(
        offered["title"]
            .as_str()
            .unwrap()
            .starts_with("(1) Incoming"),
        "the tab says it rings: {offered}"
    );
    assert_eq!(offered["ringing"], true, "the ring tone plays: {offered}");
    let pop = offered["pop"].as_str().unwrap();
    assert!(pop.contains("+15551234567"), "her identities: {pop}");
    assert!(pop.contains("gold"), "her record: {pop}");

    let media = b.step("media", g);
    let before = udp_socket_counters(media_port).unwrap_or_else(|| {
        panic!(
            "SIPp's media socket (port {media_port}) not in /proc/net/udp:\n{}",
            std::fs::read_to_string("/proc/net/udp").unwrap_or_default()
        )
    });
    assert!(
        media["inbound"].as_u64().unwrap() > 150,
        "the browser got the caller's RTP: {media}\n--- gateway log:\n{}",
        g.log()
    );
    assert!(media["outbound"].as_u64().unwrap() > 150, "{media}");
    assert!(
        media["codec"].as_str().unwrap().contains("PCMU"),
        "G.711 end to end: {media}"
    );
    let talked = b.step("talked", g);
    let after = udp_socket_counters(media_port).expect("SIPp's media socket");
    assert!(
        after.0 + after.1 > before.0 + before.1,
        "SIPp's media socket received the agent's RTP: {before:?} -> {after:?}"
    );
    assert!(
        talked["outbound"].as_u64() > media["outbound"].as_u64(),
        "{talked}"
    );
    let held = b.step("held and resumed", g);
    assert!(
        held["inbound"].as_u64() > talked["inbound"].as_u64(),
        "audio flows again after resume: {held}"
    );
    assert_eq!(held["holds"], "held once", "{held}");
    assert!(
        held["timer"].as_str().unwrap().starts_with("0:"),
        "the call's timer: {held}"
    );
    assert_ne!(held["timer"], "0:00", "the call's timer runs: {held}");
    for state in ["ringing_overflow", "connected_overflow"] {
        assert!(
            held[state].as_i64().unwrap() <= 0,
            "{state} at 390 px: {held}"
        );
    }
    // The socket dropped while the caller was on hold: the same state came back.
    let r = b.step("reconnected on hold", g);
    assert_eq!(r["state"], "on hold", "{r}");
    assert_eq!(r["holds"], "held 2 times", "{r}");
    assert_eq!(r["pressed"], "true", "{r}");
    assert_eq!(r["cards"], 1, "{r}");
}

/// Step 6's wrap-up as the page shows it: nothing on the ended call acts, the layout
/// fits a phone, and a reconnect keeps it; after a hang-up the badge says Wrap-up.
fn wrap_up_shown(b: &mut Browser, g: &Gateway, hung_up: bool) {
    let w = b.step("wrap-up", g);
    for s in [&w, &w["after_reconnect"]] {
        assert_eq!(s["live"], serde_json::json!([]), "nothing acts: {w}");
        assert_eq!(s["forms"], 1, "{w}");
        if hung_up {
            assert_eq!(s["badge"], "Wrap-up", "{w}");
        }
    }
    assert!(
        w["overflow"].as_i64().unwrap() <= 0,
        "wrap-up at 390 px: {w}"
    );
}

/// The call's interaction, once it has ended and been wrapped up.
fn wrapped_interaction(g: &Gateway) -> serde_json::Value {
    let mut i = serde_json::Value::Null;
    wait_for("the call's record", Duration::from_secs(10), || {
        let (_, body) = g.get_auth("/api/interactions?limit=1", "test-token");
        i = json(&body)[0].clone();
        !i["ended_at"].is_null() && !i["disposition"].is_null()
    });
    let (_, body) = g.get_auth(
        &format!("/api/interactions/{}", i["id"].as_str().unwrap()),
        "test-token",
    );
    json(&body)
}

/// The recording's two channels.
fn recording(i: &serde_json::Value) -> (Vec<i16>, Vec<i16>) {
    let path = i["recording"].as_str().expect("a recording");
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().channels, 2);
    let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    s.chunks(2).map(|c| (c[0], c[1])).unzip()
}

#[test]
fn an_agent_answers_a_caller_in_the_browser_with_the_screen_pop_and_wraps_up() {
    let d = desk(24000, "agent-desktop");
    let g = &d.g;
    // 2. Bob is logged in and Available.
    let mut b = Browser::start(&d, "bob", "demo-bob", "hangup");
    b.step("available", g);
    // 3. Ada calls.
    let (sipp_port, media_port) = (24090, 24094);
    let caller = ada_calls(g, sipp_port, media_port);
    // 4, 5.
    ring_answer_talk(&mut b, g, media_port);
    // 6. Bob hung up: SIPp got the BYE; the page wrapped up.
    assert_sipp_done(caller, "the caller", g);
    wrap_up_shown(&mut b, g, true);
    b.step("wrapped up", g);
    b.finish();
    for shot in ["step4-offer.png", "step6-wrap-up.png"] {
        let p = d.artifacts.join(shot);
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "screenshot {}",
            p.display()
        );
    }

    // The interaction: Bob, the support queue, what the IVR collected, a duration, the
    // wrap-up, on Ada's timeline.
    let i = wrapped_interaction(g);
    let id = i["id"].as_str().unwrap().to_string();
    assert_eq!(i["agent"], "bob", "{i}");
    assert_eq!(i["queue"], "support", "{i}");
    assert_eq!(i["variables"]["account"], "1234", "{i}");
    assert_eq!(i["customer_id"], 1, "{i}");
    assert_eq!(i["disposition"], "Resolved", "{i}");
    let (answered, ended) = (
        i["answered_at"].as_f64().expect("answered"),
        i["ended_at"].as_f64().unwrap(),
    );
    // Unix milliseconds: connected, talked, held, resumed, a key, hung up.
    assert!(ended - answered >= 3000.0, "talked a few seconds: {i}");
    let kinds = timeline_kinds(&i);
    for k in [
        "queued", "offered", "assigned", "held", "resumed", "hung up", "note",
    ] {
        assert!(kinds.contains(&k), "{k} on the timeline: {kinds:?}");
    }
    let (_, body) = g.get_auth("/api/customers/1", "test-token");
    let ada = json(&body);
    assert!(
        ada["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str()),
        "on Ada's record: {ada}"
    );

    // The recording: the caller on the left, the agent on the right, both with sound.
    let (left, right) = recording(&i);
    let (l, r) = (rms(&left), rms(&right));
    assert!(
        l > 200.0 && r > 200.0,
        "both channels carry sound: left {l:.0}, right {r:.0}"
    );
    let log = g.log();
    assert!(log.contains("agent connected in the browser"), "{log}");

    // The CRM got the screen-pop on offer (retried after its 500) and on connect,
    // signed with the shared secret.
    let got = signed_posts(&d.hooks, d.secret);
    let events: Vec<&str> = got.iter().map(|(e, _)| e.as_str()).collect();
    // The first post (an offer) got the 500; its retry a second later may come after
    // the connect.
    assert_eq!(events[0], "call.offered", "{events:?}");
    let mut sorted = events.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["call.connected", "call.offered", "call.offered"],
        "the failed post was retried once: {events:?}"
    );
    for (_, v) in &got {
        assert_eq!(v["interaction"], id.as_str(), "{v}");
        assert_eq!(v["agent"], "bob", "{v}");
        assert_eq!(v["customer"]["customer"]["name"], "Ada Lovelace", "{v}");
        assert_eq!(v["ivr"]["account"], "1234", "{v}");
    }
}

/// Bob answers in the browser and transfers the call (blind) to Alice, who works on a
/// desk phone: her desktop (a WebSocket here) gets the offer with Ada's screen-pop, she
/// accepts, her SIPp phone (registered as 1001) rings and answers and is bridged to
/// Ada; she hangs up from the API. One recording covers both agents.
#[test]
fn a_browser_agent_transfers_the_call_to_a_desk_phone_agent() {
    transfer_to_alice(24100, "transfer:alice");
}

/// Bob transfers the call (blind) to the sales queue: he goes to wrap-up, so the queue
/// offers it to Alice, the one agent of sales who is free.
#[test]
fn a_browser_agent_transfers_the_call_to_a_queue() {
    transfer_to_alice(24300, "queue:sales");
}

/// The same as a warm transfer: Bob consults Alice (Ada on hold with music, Alice's
/// phone rings at once and talks to Bob), then completes; Alice's desktop gets the
/// consult with the screen-pop, then the call.
#[test]
fn a_browser_agent_consults_a_desk_phone_agent_then_completes_the_transfer() {
    transfer_to_alice(24200, "warm:alice");
}

/// `how`: the browser script's mode (`transfer:alice`, `queue:sales` or `warm:alice`).
fn transfer_to_alice(base: u16, how: &str) {
    let warm = how.starts_with("warm:");
    let d = desk(base, &format!("agent-{}", how.replace(':', "-")));
    let g = &d.g;
    let mut b = Browser::start(&d, "bob", "demo-bob", how);
    b.step("available", g);
    let caller = ada_calls(g, base + 90, base + 94);
    ring_answer_talk(&mut b, g, base + 94);

    // Alice logs in now (so the first offer went to Bob), her phone registered.
    register_demo_phone(g, "1001", base + 80);
    let phone = sipp_spawn(
        g.dir.path(),
        &[
            "-sn",
            "uas",
            "-p",
            &(base + 80).to_string(),
            "-mp",
            &(base + 84).to_string(),
            "-m",
            "1",
        ],
    );
    let (code, body) = g.post(
        "/api/agent/login",
        None,
        r#"{"name": "alice", "password": "demo-alice"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let alice = json(&body)["token"].as_str().unwrap().to_string();
    let mut ws = tungstenite::connect(format!("ws://127.0.0.1:{}/api/agent/ws", g.http))
        .unwrap()
        .0;
    ws.send(tungstenite::Message::text(
        serde_json::json!({"type": "auth", "token": alice}).to_string(),
    ))
    .unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let (code, body) = crate::centre::put(
        g,
        "/api/agent/presence",
        &alice,
        r#"{"presence": "available"}"#,
    );
    assert_eq!(code, 200, "{body}");

    // Bob transfers (or consults, then completes); his page wraps up.
    b.step("ready to transfer", g);
    b.go();
    // Bob's pickers: Alice as she is now, the queues with what waits; never Bob.
    let choices = b.step("choices", g);
    let transfer = choices["transfer"].to_string();
    assert!(transfer.contains("alice — Available"), "{choices}");
    assert!(transfer.contains("sales — 0 waiting"), "{choices}");
    assert!(!transfer.contains("bob —"), "{choices}");
    assert!(
        choices["consult"].to_string().contains("alice — Available"),
        "{choices}"
    );
    let next = |ws: &mut tungstenite::WebSocket<_>, ty: &str| loop {
        let m = ws
            .read()
            .unwrap_or_else(|e| panic!("alice's websocket, waiting for {ty}: {e}"));
        if let tungstenite::Message::Text(t) = m {
            let v = json(&t);
            if v["type"] == ty {
                break v;
            }
        }
    };
    // The screen-pop reaches the desk-phone agent's desktop too.
    let pop = next(&mut ws, if warm { "consult" } else { "offer" });
    assert_eq!(pop["details"]["account"], "1234", "{pop}");
    assert_eq!(pop["customer"], 1, "{pop}");
    let id = pop["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.get_auth("/api/agent/customers/1", &alice);
    assert_eq!(
        code, 200,
        "alice may see the customer she is offered: {body}"
    );
    assert_eq!(json(&body)["customer"]["name"], "Ada Lovelace");
    if warm {
        assert_eq!(pop["from"], "bob", "{pop}");
        // The router keeps Alice for the consult: no other work while she is on it.
        let (code, body) = g.get_auth("/api/agents", "test-token");
        assert_eq!(code, 200, "{body}");
        let on = |body: &str, who: &str| {
            json(body)
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == who)
                .unwrap()
                .clone()
        };
        assert_eq!(on(&body, "alice")["consulting"][0], id.as_str(), "{body}");
        // Bob's page reconnected mid-consult and shows it as it is.
        let c = b.step("consulted", g);
        assert_eq!(c["state"], "consult connected", "{c}");
        assert_eq!(c["complete"], true, "{c}");
        assert_eq!(c["cancel"], true, "{c}");
        // Alice's desktop reconnects mid-consult: its first frame shows the consult as
        // it is (work in progress, connected), not as an offer again.
        let up = next(&mut ws, "call_state");
        assert_eq!(up["state"], "consult connected", "{up}");
        let mut again = tungstenite::connect(format!("ws://127.0.0.1:{}/api/agent/ws", g.http))
            .unwrap()
            .0;
        again
            .send(tungstenite::Message::text(
                serde_json::json!({"type": "auth", "token": alice}).to_string(),
            ))
            .unwrap();
        let state = loop {
            if let tungstenite::Message::Text(t) = again.read().unwrap() {
                break json(&t);
            }
        };
        assert_eq!(state["type"], "state", "{state}");
        assert_eq!(state["offers"], serde_json::json!([]), "{state}");
        let w = &state["work"][0];
        assert_eq!(w["interaction"], id.as_str(), "{state}");
        assert_eq!(w["consult"], true, "{state}");
        assert_eq!(w["call_state"], "consult connected", "{state}");
        assert_eq!(w["details"]["account"], "1234", "{state}");
        drop(again);
        // Bob and Alice talked while Ada waited; now the call is Alice's.
        next(&mut ws, "assigned");
        let (_, body) = g.get_auth("/api/agents", "test-token");
        let alice_now = on(&body, "alice");
        assert_eq!(alice_now["consulting"], serde_json::json!([]), "{body}");
        assert_eq!(alice_now["work"][0], id.as_str(), "{body}");
    } else {
        let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&alice), "");
        assert_eq!(code, 200, "{body}");
    }
    wrap_up_shown(&mut b, g, false);
    b.step("wrapped up", g);
    b.finish();
    wait_for("alice's phone to answer", Duration::from_secs(30), || {
        g.log()
            .contains("agent on the call call=call-1 agent=alice")
    });
    std::thread::sleep(Duration::from_secs(2));
    let (code, body) = g.post(&format!("/api/agent/work/{id}/hangup"), Some(&alice), "");
    assert_eq!(code, 200, "{body}");
    assert_sipp_done(caller, "the caller", g);
    assert_sipp_done(phone, "alice's phone", g);
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/wrap_up"),
        Some(&alice),
        r#"{"disposition": "Resolved", "resolved": true}"#,
    );
    assert_eq!(code, 200, "{body}");

    let i = wrapped_interaction(g);
    assert_eq!(i["id"], id.as_str());
    assert_eq!(i["agent"], "alice", "the last agent: {i}");
    let kinds = timeline_kinds(&i);
    let to = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "transferred")
        .map(|e| e["data"]["to"].clone());
    let want_to = match how.split_once(':') {
        Some(("queue", q)) => format!("queue {q}"),
        _ => "alice".to_string(),
    };
    assert_eq!(to, Some(want_to.into()), "transferred where asked: {i}");
    // Bob's part wrapped up on the timeline, Alice's disposition on the interaction.
    let mut want = vec!["transferred", "assigned", "hung up", "wrapped up"];
    if warm {
        want.push("consult");
    }
    for k in want {
        assert!(kinds.contains(&k), "{k} on the timeline: {kinds:?}");
    }
    let recordings = kinds.iter().filter(|k| **k == "recording").count();
    assert_eq!(
        recordings, 1,
        "one recording across the transfer: {kinds:?}"
    );
    // Ada's voice is in the recording until the end (Alice's SIPp sends no audio).
    let (left, _) = recording(&i);
    let last = &left[left.len().saturating_sub(8000 * 2)..];
    assert!(
        rms(last) > 200.0,
        "the caller recorded after the transfer: {}",
        rms(last)
    );
    assert!(
        left.len() > 8000 * 8,
        "the recording spans both agents: {} samples",
        left.len()
    );
}

#[test]
fn a_chat_shows_as_unverified_until_the_agent_verifies_it_then_the_record_appears() {
    use crate::centre::{send, ty, until, ws};
    let d = desk(27100, "agent-chat");
    let g = &d.g;
    let artifacts = d.artifacts.display().to_string();
    let base = format!("http://127.0.0.1:{}", g.http);
    let mut b = Browser::run("agent_chat.mjs", &[&base, "bob", "demo-bob", &artifacts]);
    b.step("available", g);
    // Someone types the demo customer Ada's e-mail address.
    let mut cust = ws(g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Ada Lovelace", "address": "ada@example.com"}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    let o = b.step("offered", g);
    let pop = o["pop"].as_str().unwrap();
    assert!(pop.contains("Unverified"), "{o}");
    assert_eq!(
        o["records"], 0,
        "no record on screen before verification: {o}"
    );
    assert_eq!(o["verify_buttons"], 0, "{o}");
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    assert!(json(&one)["customer_id"].is_null(), "{one}");
    let v = b.step("verified", g);
    assert_eq!(v["name"], "Ada Lovelace", "{v}");
    assert_eq!(v["badges"], 0, "{v}");
    // Where her details came from (provenance): the demo's record.
    assert!(
        v["pop"]
            .as_str()
            .unwrap()
            .contains("ada@example.com (from demo)"),
        "{v}"
    );
    // She asks where her parcel is: the knowledge base's article is suggested, in
    // its long form (a web chat); Bob inserts it and sends it, and she reads it.
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "k1", "text": "Hi, where's my parcel?"}),
    );
    let s = b.step("suggested", g);
    assert!(s["note"].as_str().unwrap().contains("Suggested"), "{s}");
    let article = s["article"].as_str().unwrap();
    assert!(
        article.contains("order-status") && article.contains("en"),
        "{s}"
    );
    let inserted = s["inserted"].as_str().unwrap();
    assert!(
        inserted.starts_with("You can follow your parcel at https://acme.test/track"),
        "the long answer for a web chat: {s}"
    );
    let got = until(&mut cust, "the article's answer", |m| m["from"] == "agent");
    assert_eq!(got.last().unwrap()["text"], inserted, "{got:?}");
    let found = b.step("searched", g);
    assert!(
        found["articles"]
            .as_str()
            .unwrap()
            .contains("Saturday from 10:00 to 16:00"),
        "{found}"
    );
    b.finish();
    // The chat is on Ada's record now (the demo customer, found by her address).
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    let one = json(&one);
    let customer = one["customer_id"].as_i64().expect("joined a customer");
    let (_, c) = g.get_auth(&format!("/api/customers/{customer}"), "test-token");
    assert_eq!(json(&c)["customer"]["name"], "Ada Lovelace", "{c}");
    assert!(
        one["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["kind"] == "verified")),
        "{one}"
    );
}

/// The workspace's first-user bugs (issue 16), each checked in Chromium: see
/// tests/browser/workspace.mjs. The chat queue has no wrap-up time so twenty chats run
/// back to back.
#[test]
fn the_workspace_hides_what_a_logged_out_agent_cannot_use_and_never_misses_a_first_message() {
    let g = Gateway::start(
        27400,
        "demo = true",
        "",
        // One address (the test's) opens all twenty chats.
        // Its queue has one ready reply for chats.
        "[[queue]]\nname = \"support\"\nwrap_up_secs = 0\ncanned = [{ title = \"Greeting\", text = \"Hello {first_name}, this is {agent} from {queue}.\" }]\n[chat]\nstarts_per_minute = 100\nbusiness_name = \"Acme <Support>\"\nprivacy_url = \"https://acme.example/privacy\"\n",
    );
    let artifacts = repo("target/e2e-artifacts/workspace");
    let _ = std::fs::remove_dir_all(&artifacts);
    let base = format!("http://127.0.0.1:{}", g.http);
    let mut b = Browser::run(
        "workspace.mjs",
        &[
            &base,
            "bob",
            "demo-bob",
            &artifacts.display().to_string(),
            "20",
        ],
    );
    let out = b.step("logged out", &g);
    for k in ["me", "desk", "logout", "presence"] {
        assert_eq!(out[k], false, "{k} shows while logged out: {out}");
    }
    assert_eq!(out["login"], true, "{out}");
    let csp = out["csp"].as_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "a strict policy: {out}"
    );
    let first = b.step("logged in", &g);
    assert_eq!(first["badge"], "Away", "a first login is Away: {first}");
    assert_eq!(first["menu"], "away", "the menu agrees: {first}");
    let idle = b.step("idle", &g);
    let tabs = &idle["tabs"];
    assert_eq!(tabs["first"], serde_json::json!(["offers"]), "{idle}");
    assert_eq!(tabs["customer"], serde_json::json!(["customer"]), "{idle}");
    assert_eq!(
        tabs["wide"],
        serde_json::json!(["offers", "work", "customer"]),
        "{idle}"
    );
    let keys = &idle["shortcuts"];
    assert_eq!(keys["open"], true, "? shows the shortcuts: {idle}");
    for k in ["Alt+A", "Alt+H", "Alt+O", "Alt+M", "Alt+T", "Alt+N"] {
        assert!(keys["text"].as_str().unwrap().contains(k), "{k}: {idle}");
    }
    assert_eq!(keys["closed"], true, "{idle}");
    let refused = b.step("refused", &g);
    let about = &refused["about"];
    assert_eq!(about["business"], "Acme <Support>", "as text: {refused}");
    assert_eq!(about["title"], "Chat with Acme <Support>", "{refused}");
    assert!(
        about["privacy"].as_str().unwrap().contains("erase"),
        "the privacy notice: {refused}"
    );
    assert_eq!(about["link"], "https://acme.example/privacy", "{refused}");
    assert_eq!(about["hint"], "An agent is available now.", "{refused}");
    let reason = refused["error"].as_str().unwrap();
    assert!(
        reason.contains("address"),
        "a reason about the address: {refused}"
    );
    assert_eq!(
        refused["after"], refused["error"],
        "the reason stays: {refused}"
    );
    assert!(
        !refused["status"].as_str().unwrap().contains("reconnecting"),
        "{refused}"
    );
    assert_eq!(
        refused["form"], true,
        "the form can be sent again: {refused}"
    );
    assert!(refused["overflow"].as_i64().unwrap() <= 0, "{refused}");
    let r = b.step("rounds", &g);
    assert_eq!(
        r["canned"]["typed"], "Hello Customer, this is Bob Agent from support.",
        "the canned reply filled for her and for Bob: {r}"
    );
    assert_eq!(r["canned"]["focused"], true, "{r}");
    assert_eq!(r["canned"]["received"], true, "{r}");
    assert_eq!(
        r["service_level"], "support SL 100 % (20/20)",
        "service level today in the status bar: {r}"
    );
    assert!(r["wide_overflow"].as_i64().unwrap() <= 0, "1920 px: {r}");
    let rated = &r["rated"];
    assert_eq!(rated["form_again"], true, "a new chat can start: {r}");
    assert_eq!(rated["log_cleared"], true, "{r}");
    assert!(rated["overflow"].as_i64().unwrap() <= 0, "{r}");
    // The rating is the first chat's survey answer; nobody else can rate it.
    let (_, body) = g.get_auth("/api/interactions?limit=100", "test-token");
    let first = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["caller"] == "customer1@example.com")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .expect("the first chat's interaction");
    let (_, body) = g.get_auth(&format!("/api/interactions/{first}"), "test-token");
    let survey = &json(&body)["survey"];
    assert_eq!(survey["score"], 5, "{body}");
    assert_eq!(survey["comment"], "Quick and kind", "{body}");
    let rate = |b: String| g.post("/chat/rating", None, &b);
    let (code, body) = rate(format!(
        r#"{{"chat": "{first}", "token": "guess", "score": 1}}"#
    ));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cannot be rated"), "{body}");
    let (code, body) = rate(format!(
        r#"{{"chat": "{first}", "token": "x", "score": 9}}"#
    ));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("score must be 1"), "{body}");
    assert_eq!(
        r["missing"],
        serde_json::json!([]),
        "first messages missing: {r}"
    );
    assert_eq!(
        r["wrap"]["resolved"], false,
        "Case resolved starts unticked: {r}"
    );
    assert_eq!(
        r["wrap"]["live"],
        serde_json::json!([]),
        "nothing on a wrapped-up card acts: {r}"
    );
    assert!(
        r["wrap"]["overflow"].as_i64().unwrap() <= 0,
        "wrap-up fits 390 px: {r}"
    );
    assert!(
        r["idle_overflow"].as_i64().unwrap() <= 0,
        "idle fits 390 px: {r}"
    );
    let q = b.step("queue waiting", &g);
    let waiting = q["waiting"].as_str().unwrap();
    assert!(waiting.starts_with("support: 1 waiting, oldest 0:0"), "{q}");
    assert!(!waiting.ends_with("0:00"), "the oldest wait counts up: {q}");
    assert_eq!(q["after"], "support: 0 waiting", "{q}");
    assert_eq!(q["offers"], 0, "an Away agent is offered nothing: {q}");
    assert_eq!(
        q["blocked"],
        serde_json::json!([]),
        "the pages work under their Content-Security-Policy: {q}"
    );
    b.finish();
}

#[test]
fn a_jssip_softphone_in_chromium_calls_the_demo_ivr_over_websocket_with_audio_both_ways() {
    let d = desk(27200, "jssip");
    let g = &d.g;
    let base = format!("http://127.0.0.1:{}", g.http);
    let ws = format!("ws://127.0.0.1:{}", g.ws);
    let (mic, artifacts) = (
        d.mic_wav.display().to_string(),
        d.artifacts.display().to_string(),
    );
    // The demo extension 1001 on the demo defaults, calling the demo IVR's number.
    let mut b = Browser::run(
        "jssip_call.mjs",
        &[&base, &ws, "1001", "demo1001", "100", &mic, &artifacts],
    );
    b.step("registered", g);
    b.step("answered", g);
    let a = b.step("audio", g);
    assert_eq!(a["dtls"], "connected", "{a}");
    assert_eq!(
        a["codec"], "audio/PCMU",
        "G.711, bridged without transcoding: {a}"
    );
    assert!(a["inbound"].as_u64().unwrap() > 100, "the IVR's audio: {a}");
    assert!(a["energy"].as_f64().unwrap() > 0.0, "not silence: {a}");
    b.step("pressed", g);
    // The key press (SIP INFO) took the caller to sales.
    let mut i = serde_json::Value::Null;
    wait_for("the menu choice", Duration::from_secs(10), || {
        let (_, body) = g.get_auth("/api/interactions?limit=1", "test-token");
        i = json(&body)[0].clone();
        i["queue"] == "sales"
    });
    b.go();
    let h = b.step("hung up", g);
    assert!(h["outbound"].as_u64().unwrap() > 100, "{h}");
    b.finish();
    let id = i["id"].as_str().unwrap().to_string();
    let mut one = serde_json::Value::Null;
    wait_for("the call's end", Duration::from_secs(10), || {
        let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
        one = json(&body);
        !one["ended_at"].is_null()
    });
    assert!(
        g.log().contains("WebRTC caller's media connected"),
        "{}",
        g.log()
    );
    // The recording: the browser's microphone on one channel, the IVR on the other.
    let (caller, ours) = recording(&one);
    assert!(rms(&caller) > 300.0, "caller rms {}", rms(&caller));
    assert!(rms(&ours) > 300.0, "IVR rms {}", rms(&ours));
}

/// A browser agent is consulted: Alice (desk phone, driven through the API) has Ada's
/// call and asks Bob (browser) to talk first. Bob's answer starts his leg, but the
/// page makes no work of it until the gateway says the consult is up; then the card
/// is as the gateway has it (also after a reconnect), becomes Bob's call when Alice
/// completes, and Bob talks to Ada, hangs up and wraps up.
#[test]
fn a_desk_phone_agent_consults_a_browser_agent_who_takes_the_call() {
    let base = 24600;
    let d = desk(base, "agent-consulted");
    let g = &d.g;
    register_demo_phone(g, "1001", base + 80);
    let phone = sipp_spawn(
        g.dir.path(),
        &[
            "-sn",
            "uas",
            "-p",
            &(base + 80).to_string(),
            "-mp",
            &(base + 84).to_string(),
            "-m",
            "1",
        ],
    );
    let (alice, mut ws) = agent_socket(g, "alice", "demo-alice");
    let (code, body) = crate::centre::put(
        g,
        "/api/agent/presence",
        &alice,
        r#"{"presence": "available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let caller = ada_calls(g, base + 90, base + 94);
    let offer = loop {
        let m = ws.read().expect("alice's websocket, waiting for the offer");
        if let tungstenite::Message::Text(t) = m {
            let v = json(&t);
            if v["type"] == "offer" {
                break v;
            }
        }
    };
    let id = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&alice), "");
    assert_eq!(code, 200, "{body}");
    wait_for("alice's phone to answer", Duration::from_secs(30), || {
        g.log()
            .contains("agent on the call call=call-1 agent=alice")
    });

    // Bob logs in now (Ada's call is Alice's); Alice consults him.
    let mut b = Browser::run(
        "agent_consulted.mjs",
        &[
            &format!("http://127.0.0.1:{}", g.http),
            "bob",
            "demo-bob",
            &d.mic_wav.display().to_string(),
            &d.artifacts.display().to_string(),
        ],
    );
    b.step("available", g);
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/consult"),
        Some(&alice),
        r#"{"agent": "bob"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let o = b.step("consult offered", g);
    let offered = o["offered"]["offer"].as_str().unwrap();
    assert!(offered.contains("alice about"), "who asks, about whom: {o}");
    assert_eq!(o["offered"]["desk"]["cards"], 0, "{o}");
    // Answered, still connecting: an offer (answering), no card, no work; the leg only.
    let a = &o["answering"];
    assert_eq!(a["cards"], 0, "no work before the gateway gives it: {o}");
    assert_eq!(a["work"], serde_json::json!([]), "{o}");
    assert_eq!(a["legs"], serde_json::json!([id]), "{o}");
    assert_eq!(a["offers"], 1, "{o}");
    assert_eq!(a["countdown"], "connecting…", "{o}");
    assert_eq!(a["answer_disabled"], true, "{o}");

    // The gateway says the consult is up: one card, the offer gone, the leg adopted.
    let c = b.step("consulted", g);
    assert_eq!(c["cards"], 1, "{c}");
    assert_eq!(c["offers"], 0, "{c}");
    assert_eq!(c["work"], serde_json::json!([id]), "{c}");
    assert_eq!(c["legs"], serde_json::json!([]), "{c}");
    assert!(
        c["from"].as_str().unwrap().contains("alice (consult about"),
        "{c}"
    );
    assert!(
        c["media"]["outbound"].as_u64().unwrap() >= 50,
        "Bob's voice goes out on the consult: {c}"
    );
    assert_eq!(c["after_reconnect"]["cards"], 1, "{c}");
    assert_eq!(c["after_reconnect"]["offers"], 0, "{c}");
    assert_eq!(c["state_after_reconnect"], "consult connected", "{c}");
    let (code, body) = g.get_auth("/api/agents", "test-token");
    assert_eq!(code, 200, "{body}");
    let bob = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob["consulting"][0], id.as_str(), "{body}");

    // Alice completes: the call is Bob's, and Ada's voice reaches his browser.
    let (code, body) = g.post(&format!("/api/agent/work/{id}/complete"), Some(&alice), "");
    assert_eq!(code, 200, "{body}");
    let t = b.step("took the call", g);
    assert_eq!(t["cards"], 1, "{t}");
    assert_eq!(t["work"], serde_json::json!([id]), "{t}");
    assert!(
        t["media"]["inbound"].as_u64().unwrap() >= t["media"]["before"].as_u64().unwrap() + 100,
        "Ada's RTP reaches Bob after the transfer: {t}"
    );
    assert_eq!(t["hangup"], true, "{t}");
    let w = b.step("wrapped up", g);
    assert_eq!(w["cards"], 0, "{w}");
    b.finish();
    assert_sipp_done(caller, "the caller", g);
    assert_sipp_done(phone, "alice's phone", g);
    let i = wrapped_interaction(g);
    assert_eq!(i["id"], id.as_str());
    assert_eq!(i["agent"], "bob", "the last agent: {i}");
    let kinds = timeline_kinds(&i);
    for k in ["consult", "transferred", "hung up"] {
        assert!(kinds.contains(&k), "{k} on the timeline: {kinds:?}");
    }
}

/// A WhatsApp message rings Bob's desktop in Chromium with Ada's record; he answers,
/// replies, and the reply's delivery shows sent, then read as Meta reports it.
#[test]
fn a_whatsapp_message_rings_the_desktop_and_the_reply_shows_its_delivery() {
    use crate::channels::{graph_and_gateway_serving, post_signed, status_of, text_from};
    let base = 24800;
    let graph_port = base + 50;
    // Meta's Graph API: sends, and Ada's photo (its lookup, then its download).
    let (graph, g) = graph_and_gateway_serving(base, move |n, request| {
        if request.starts_with("GET /v21.0/MEDIA7 ") {
            (
                "200 OK".into(),
                format!(
                    r#"{{"url":"http://127.0.0.1:{graph_port}/dl/MEDIA7","mime_type":"image/jpeg","id":"MEDIA7"}}"#
                ),
            )
        } else if request.starts_with("GET /dl/MEDIA7 ") {
            ("200 OK".into(), "JPEG-BYTES".into())
        } else {
            (
                "200 OK".into(),
                format!(
                    r#"{{"messaging_product":"whatsapp","messages":[{{"id":"wamid.OUT{n}"}}]}}"#
                ),
            )
        }
    });
    let artifacts = repo("target/e2e-artifacts/agent-whatsapp");
    let mut b = Browser::run(
        "agent_whatsapp.mjs",
        &[
            &format!("http://127.0.0.1:{}", g.http),
            "bob",
            "demo-bob",
            &artifacts.display().to_string(),
        ],
    );
    b.step("available", &g);
    let now = omnigate::clock::unix_secs();
    let hello = text_from(
        "15551234567",
        "wamid.IN1",
        now,
        "Hola, where is my order 1234?",
    );
    let (code, body) = post_signed(&g, "wa", &hello, None);
    assert_eq!(code, 200, "{body}");
    let o = b.step("offered", &g);
    assert_eq!(o["person"], "Ada Lovelace", "{o}");
    assert_eq!(
        o["name"], "Ada Lovelace",
        "her record in the screen-pop: {o}"
    );
    assert_eq!(o["channel"], "whatsapp", "{o}");
    assert_eq!(o["icon"], "Ⓦ", "{o}");
    let a = b.step("answered", &g);
    assert_eq!(a["badge"], "WhatsApp", "{a}");
    // The 24-hour window from her message, counting down.
    let window = a["window"].as_str().unwrap();
    assert!(
        window.starts_with("Reply window: 23:59:") || window.starts_with("Reply window: 24:00:00"),
        "{a}"
    );
    assert!(
        a["messages"][0]
            .as_str()
            .unwrap()
            .contains("Hola, where is my order 1234?"),
        "{a}"
    );
    let s = b.step("sent", &g);
    assert!(s["delivery"].as_str().unwrap().contains("sent"), "{s}");
    let posts = graph.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].1.contains("It ships today."), "{posts:?}");
    for st in ["delivered", "read"] {
        let (code, body) = post_signed(&g, "wa", &status_of("wamid.OUT0", st), None);
        assert_eq!(code, 200, "{body}");
    }
    let r = b.step("read", &g);
    assert_eq!(r["delivery"], "✓✓ read", "{r}");
    // Ada sends a photo: Bob opens it from the card (downloaded through the gateway).
    let photo =
        crate::channels::photo_from("15551234567", "wamid.PHOTO", now, "MEDIA7", "the lamp");
    let (code, body) = post_signed(&g, "wa", &photo, None);
    assert_eq!(code, 200, "{body}");
    let m = b.step("media", &g);
    assert_eq!(m["button"], "Open image", "{m}");
    assert_eq!(m["content"], "JPEG-BYTES", "{m}");
    // Alan's message, delivered by Meta a day late: templates only.
    let late = text_from("15557654321", "wamid.IN2", now - 25 * 3600, "Still there?");
    let (code, body) = post_signed(&g, "wa", &late, None);
    assert_eq!(code, 200, "{body}");
    let l = b.step("late", &g);
    assert!(
        l["window"].as_str().unwrap().contains("Reply window: 0:00"),
        "{l}"
    );
    assert_eq!(l["templates"], serde_json::json!(["follow_up (en)"]), "{l}");
    let typed = l["typed"].as_str().unwrap();
    assert!(
        !typed.contains("[object Object]") && !typed.contains("window_until"),
        "the card's own details stay off the screen-pop: {typed}"
    );
    let t = b.step("template", &g);
    assert!(
        t["messages"]
            .to_string()
            .contains("[template follow_up: order 1234]"),
        "{t}"
    );
    let posts = graph.lock().unwrap().clone();
    let v: serde_json::Value = serde_json::from_str(&posts.last().unwrap().1).unwrap();
    assert_eq!(v["type"], "template", "{v}");
    assert_eq!(v["template"]["name"], "follow_up", "{v}");
    assert!(v.to_string().contains("order 1234"), "its parameter: {v}");
    b.finish();
}

/// On a call, Alice's screen-pop shows the WhatsApp thread Ada had with Bob (her
/// words and his reply); from the call's card she texts Ada by SMS and by WhatsApp
/// (the Chromium page's "Text the customer"): Twilio and the Graph API get them, and
/// both land on Ada's case.
#[test]
fn a_callers_screen_pop_shows_her_whatsapp_thread_and_the_agent_texts_her_from_the_call() {
    use crate::channels::{next, on_duty, post_signed, text_from};
    let base = 27000;
    let graph = serve(base + 50, |n, _, _, _| {
        (
            "200 OK".into(),
            format!(r#"{{"messaging_product":"whatsapp","messages":[{{"id":"wamid.OUT{n}"}}]}}"#),
        )
    });
    let twilio = crate::channels::twilio_taking(base + 60);
    let (g, _flows) = crate::channels::queueing_gateway(
        base,
        &format!(
            "{}\n{}",
            crate::channels::wa_account(base + 50),
            crate::channels::sms_account(base + 60)
        ),
    );

    // Earlier: Ada writes on WhatsApp, Bob answers, then steps away (the thread
    // stays his).
    let (bob, mut bob_ws) = on_duty(&g, "bob", "demo-bob");
    let now = omnigate::clock::unix_secs();
    let hello = text_from("15551234567", "wamid.IN1", now, "Hola, where is my order?");
    let (code, body) = post_signed(&g, "wa", &hello, None);
    assert_eq!(code, 200, "{body}");
    let offer = next(&g, &mut bob_ws, "offer");
    let thread = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(
        &format!("/api/agent/offers/{thread}/accept"),
        Some(&bob),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{thread}/messages"),
        Some(&bob),
        r#"{"text": "It ships today."}"#,
    );
    assert_eq!(code, 201, "{body}");
    wait_for(
        "Bob's reply at the Graph API",
        Duration::from_secs(20),
        || graph.lock().unwrap().len() == 1,
    );
    let (code, body) =
        crate::centre::put(&g, "/api/agent/presence", &bob, r#"{"presence": "away"}"#);
    assert_eq!(code, 200, "{body}");

    // Now Ada calls; Alice takes it on her desk phone, in Chromium.
    let mut phone = desk_phone_answering(&g, "1001", base + 10);
    let artifacts = repo("target/e2e-artifacts/agent-texts");
    let mut b = Browser::run(
        "agent_texts.mjs",
        &[
            &format!("http://127.0.0.1:{}", g.http),
            "alice",
            "demo-alice",
            &artifacts.display().to_string(),
        ],
    );
    b.step("available", &g);
    let args = speaker_args_from(&g, base + 20, base + 24, "+15551234567");
    let mut caller = sipp_spawn(
        g.dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let o = b.step("offered", &g);
    assert_eq!(o["name"], "Ada Lovelace", "{o}");
    let recent = o["recent"].to_string();
    assert!(
        recent.contains("whatsapp") && recent.contains("bob"),
        "the thread among her interactions: {o}"
    );
    let said = o["timeline"].to_string();
    assert!(
        said.contains("Ⓦ Ada Lovelace: Hola, where is my order?")
            && said.contains("Ⓦ Bob Agent: It ships today."),
        "the WhatsApp thread, as said, on her case: {o}"
    );

    let s = b.step("sms", &g);
    assert_eq!(s["options"], serde_json::json!(["SMS", "WhatsApp"]), "{s}");
    assert_eq!(s["left"], "", "the box is cleared: {s}");
    assert!(
        s["notice"]
            .as_str()
            .unwrap()
            .contains("SMS to +15551234567 (sms)"),
        "{s}"
    );
    wait_for("the SMS at Twilio", Duration::from_secs(20), || {
        !twilio.lock().unwrap().is_empty()
    });
    let form: Vec<(String, String)> =
        serde_urlencoded::from_str(&twilio.lock().unwrap()[0].1).unwrap();
    assert!(
        form.contains(&("To".into(), "+15551234567".into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("Body".into(), "Your order number is 1234-ABC.".into())),
        "{form:?}"
    );

    let w = b.step("whatsapp", &g);
    assert!(
        w["notice"]
            .as_str()
            .unwrap()
            .contains("WhatsApp to +15551234567 (wa)"),
        "{w}"
    );
    let said = w["timeline"].to_string();
    assert!(
        said.contains("✆ Alice Agent: Your order number is 1234-ABC.")
            && said.contains("Ⓦ Alice Agent: Here is the tracking link"),
        "both on her case: {w}"
    );
    wait_for(
        "the WhatsApp message at the Graph API",
        Duration::from_secs(20),
        || graph.lock().unwrap().len() == 2,
    );
    let v: serde_json::Value = serde_json::from_str(&graph.lock().unwrap()[1].1).unwrap();
    assert_eq!(v["to"], "15551234567", "Meta's WhatsApp id: {v}");
    assert_eq!(
        v["text"]["body"], "Here is the tracking link: https://t.example/1234",
        "{v}"
    );

    let e = b.step("ended", &g);
    assert_eq!(e["hidden"], true, "no texting from an ended call: {e}");
    b.finish();
    assert!(caller.wait().unwrap().success(), "the caller\n{}", g.log());
    assert!(
        phone.wait().unwrap().success(),
        "alice's phone\n{}",
        g.log()
    );
    // The same case: Bob's thread and Alice's call.
    let case_of = |id: &str| {
        let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
        json(&body)["conversation_id"].clone()
    };
    let call = s["call"].as_str().unwrap();
    assert_eq!(case_of(&thread), case_of(call), "one case");
    assert!(case_of(&thread).is_i64());
}

/// An e-mail in Chromium: Ada's HTML mail (with hostile parts and an attachment),
/// delivered through a real Dovecot, rings Bob's desktop; he reads it formatted in a
/// sandboxed frame where nothing of it runs or loads, saves the attachment, and his
/// reply from the card arrives in Ada's mailbox through a real SMTP server, threaded.
#[test]
fn an_html_mail_is_read_safely_in_the_desktop_and_answered_from_it() {
    let base = 24500;
    let canary = std::net::TcpListener::bind(("127.0.0.1", base + 63)).unwrap();
    canary.set_nonblocking(true).unwrap();
    let dv = crate::mail::Dovecot::start(base + 60, base + 61);
    let _smtp = crate::mail::Smtp::start(base + 62, base + 61);
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &crate::mail::mailbox(base + 60, base + 62),
    );
    let artifacts = repo("target/e2e-artifacts/agent-mail");
    let mut b = Browser::run(
        "agent_mail.mjs",
        &[
            &format!("http://127.0.0.1:{}", g.http),
            "bob",
            "demo-bob",
            &artifacts.display().to_string(),
        ],
    );
    b.step("available", &g);
    let c = base + 63;
    dv.deliver(
        "support",
        &format!(
            "From: Ada Lovelace <ada@example.com>\nTo: support@acme.test\nSubject: Invoice question\nMessage-ID: <h1@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"M\"\n\n--M\nContent-Type: multipart/alternative; boundary=\"A\"\n\n--A\nContent-Type: text/plain\n\nYour invoice is attached.\n--A\nContent-Type: text/html; charset=utf-8\n\n<html><head><script>window.top.pwned=1;alert(1)</script><meta http-equiv=\"refresh\" content=\"0;url=http://127.0.0.1:{c}/meta\"></head><body onload=\"parent.pwned=2\"><p>Your invoice is attached.</p><img src=\"http://127.0.0.1:{c}/pixel.gif\"><img src=x onerror=\"top.document.title='pwned'\"><a href=\"javascript:alert(3)\">click</a><form action=\"http://127.0.0.1:{c}/form\"><input name=p autofocus onfocus=\"alert(4)\"></form><iframe src=\"http://127.0.0.1:{c}/frame\"></iframe><svg onload=alert(5)></svg><link rel=stylesheet href=\"http://127.0.0.1:{c}/css\"></body></html>\n--A--\n--M\nContent-Type: application/pdf; name=\"invoice.pdf\"\nContent-Disposition: attachment; filename=\"invoice.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQKJcTl8uXrCg==\n--M--\n"
        ),
    );
    let r = b.step("read", &g);
    assert_eq!(r["channel"], "email", "{r}");
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .contains("Your invoice is attached."),
        "{r}"
    );
    let html = r["html"].as_str().unwrap().to_lowercase();
    assert!(html.contains("<p>your invoice is attached.</p>"), "{r}");
    for bad in [
        "script",
        "onload",
        "onerror",
        "onfocus",
        "javascript",
        "<form",
        "<iframe",
        "<svg",
        "<link",
        "<meta",
    ] {
        assert!(!html.contains(bad), "{bad} reached the frame: {html}");
    }
    assert!(
        html.contains(&format!("data-src=\"http://127.0.0.1:{c}/pixel.gif\"")),
        "the picture kept unloaded: {html}"
    );
    assert_eq!(r["sandbox"], "", "{r}");
    assert_eq!(r["pwned"], serde_json::Value::Null, "{r}");
    assert_ne!(r["title"], "pwned", "{r}");
    assert_eq!(r["dialogs"], 0, "{r}");
    assert_eq!(r["popups"], 0, "{r}");
    assert_eq!(
        r["away"],
        serde_json::json!([]),
        "nothing fetched from elsewhere: {r}"
    );
    assert!(canary.accept().is_err(), "nobody knocked at the canary");
    assert_eq!(r["download"]["name"], "invoice.pdf", "{r}");
    assert_eq!(r["download"]["starts"], "%PDF-1.4", "{r}");
    let done = b.step("replied", &g);
    assert_eq!(done["away"], serde_json::json!([]), "{done}");
    b.finish();
    let mut inbox = Vec::new();
    wait_for(
        "Bob's reply in Ada's mailbox",
        Duration::from_secs(20),
        || {
            inbox = dv.inbox("ada");
            !inbox.is_empty()
        },
    );
    assert!(
        inbox[0].contains("In-Reply-To: <h1@example.com>"),
        "{}",
        inbox[0]
    );
    assert!(inbox[0].contains("the invoice is paid."), "{}", inbox[0]);
    assert!(
        inbox[0].contains("Subject: Re: Invoice question [#"),
        "{}",
        inbox[0]
    );
}
