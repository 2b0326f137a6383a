//! The IVR end to end: the demo flow walked by a real SIPp caller with RFC 2833 keys,
//! hot reload (a broken change refused with its line and column while the previous
//! version serves; a valid one serving new calls while a call in progress keeps its
//! version), and the designer's commands run as a user would.

use crate::harness::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A dialplan directory with one prompt, `hello`.
pub fn flow_dir() -> tempfile::TempDir {
    let dp = tempfile::tempdir().unwrap();
    std::fs::create_dir(dp.path().join("prompts")).unwrap();
    std::fs::copy(
        repo("dialplans/prompts/thanks.wav"),
        dp.path().join("prompts/hello.wav"),
    )
    .unwrap();
    dp
}

/// A gateway in demo mode whose calls run the flow `main` of `dir`.
fn ivr_gateway(base: u16, dir: &Path, record: bool, extra: &str) -> Gateway {
    let g = Gateway::start(
        base,
        "demo = true",
        &format!("answer_after_ms = 50\nhangup_after_secs = 0\nrecord = {record}"),
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"main\"\n{extra}",
            dir.display()
        ),
    );
    g.wait_log("dialplan loaded");
    g
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn sipp_caller_walks_the_demo_flow_to_the_support_queue() {
    // The demo flow as shipped, open around the clock.
    let (g, _dp) = demo_ivr_gateway(22700);
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_ivr_support.xml"),
            "-s",
            "100",
            "-m",
            "1",
            "-p",
            "22790",
            "-mp",
            "22760",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "IVR call", &g);
    g.wait_log("ivr done");
    let log = g.log();
    assert!(log.contains("queue=support priority=8"), "{log}");
    for d in ["digit=2", "digit=1", "digit=4", "digit=#"] {
        assert!(log.contains(d), "{d} not seen:\n{log}");
    }
    // The interaction carries what the caller entered and where it went (written
    // asynchronously as the call ends).
    let mut list = serde_json::Value::Null;
    wait_for(
        "the interaction to be closed",
        Duration::from_secs(5),
        || {
            let (status, body) = g.get_auth("/api/interactions?limit=5", "test-token");
            assert_eq!(status, 200, "{body}");
            list = json(&body);
            !list[0]["ended_at"].is_null()
        },
    );
    let i = &list[0];
    assert_eq!(i["flow"], "demo", "{i}");
    assert_eq!(i["queue"], "support", "{i}");
    assert_eq!(i["variables"]["account"], "1234", "{i}");
    assert_eq!(i["variables"]["digits"], "1234", "{i}");
    assert_eq!(i["variables"]["customer.name"], "Ada Lovelace", "{i}");
    assert_eq!(i["variables"]["customer.tier"], "gold", "{i}");
    assert_eq!(i["outcome"], "caller_hangup", "{i}");
    // The caller id `sipp` was a stranger; the account number made it Ada's: the
    // interaction moved to her customer record and her open conversation.
    assert_eq!(i["customer_id"], 1, "{i}");
    assert!(i["conversation_id"].as_i64().is_some(), "{i}");
    let path: Vec<&str> = i["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "welcome",
            "hours",
            "main_menu",
            "support",
            "find_account",
            "known_customer",
            "tier",
            "support_priority"
        ]
    );
    // One interaction by id, and a bad request gets a reason.
    let id = i["id"].as_str().unwrap();
    let (status, one) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert_eq!(status, 200);
    assert_eq!(json(&one)["variables"]["account"], "1234");
    assert_eq!(g.get_auth("/api/interactions/nope", "test-token").0, 404);
    let (status, body) = g.get_auth("/api/interactions?limit=0", "test-token");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("limit"), "{body}");
    assert_eq!(g.get("/api/interactions").0, 401);
}

const V1: &str = "flow: main
steps:
  hello:
    play: hello
  wait:
    pause: 3s
  one:
    set: {version: one}
  bye:
    hangup:
";

const V2: &str = "flow: main
steps:
  second:
    play: hello
  bye2:
    hangup:
";

fn call_until_bye(g: &Gateway, port: u16) -> std::process::Output {
    sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_gateway_hangs_up.xml"),
            "-s",
            "100",
            "-m",
            "1",
            "-p",
            &port.to_string(),
            &format!("127.0.0.1:{}", g.sip),
        ],
    )
}

#[test]
#[allow(clippy::disallowed_methods)]
fn hot_reload_refuses_broken_flows_and_keeps_calls_on_their_version() {
    let dp = flow_dir();
    let file = dp.path().join("main.yaml");
    std::fs::write(&file, V1).unwrap();
    let g = ivr_gateway(22800, dp.path(), false, "reload_ms = 100\n");

    // A broken change: refused with file, line and column; the previous version serves.
    std::fs::write(&file, V1.replace("    pause: 3s", "    pasue: 3s")).unwrap();
    g.wait_log("unknown step type `pasue`; did you mean `pause`?");
    let log = g.log();
    assert!(
        log.contains(&format!(
            "dialplan refused: {}:6:5: unknown step type",
            file.display()
        )),
        "{log}"
    );
    assert!(log.contains("the previous versions keep serving"), "{log}");
    let out = call_until_bye(&g, 22890);
    assert_sipp_ok(&out, "call on the previous version", &g);
    g.wait_log("path=hello,wait,one,bye");

    // A valid change serves new calls within a second, while a call in progress keeps
    // its version.
    std::fs::write(&file, V1).unwrap(); // (the same text: reloaded, same version)
    let mut first = sipp_spawn(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_gateway_hangs_up.xml"),
            "-s",
            "100",
            "-m",
            "1",
            "-p",
            "22891",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    wait_for("the first call to pause", Duration::from_secs(10), || {
        g.log().matches("step=wait").count() >= 2
    });
    std::fs::write(&file, V2).unwrap();
    let changed = std::time::Instant::now();
    wait_for("the new version to load", Duration::from_secs(5), || {
        g.log().matches("dialplan loaded").count() >= 3
    });
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "reload took {:?}",
        changed.elapsed()
    );
    let out = call_until_bye(&g, 22892);
    assert_sipp_ok(&out, "call on the new version", &g);
    g.wait_log("path=second,bye2");
    let status = first.wait().unwrap();
    assert!(status.success(), "first call: {status}\n{}", g.log());
    // The call that started on v1 finished on v1.
    assert!(
        g.log().matches("path=hello,wait,one,bye").count() >= 2,
        "{}",
        g.log()
    );
}

#[test]
fn designer_commands_check_simulate_and_test() {
    let bin = env!("CARGO_BIN_EXE_omnigate");
    // Every shipped flow passes its tests.
    let out = Command::new(bin)
        .args(["dialplan", "test"])
        .arg(repo("dialplans"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 failed"), "{text}");
    assert!(text.contains("PASS demo ::"), "{text}");
    // The bot's text flow too, against the demo knowledge base (kb/).
    assert!(
        text.contains(
            "PASS shop-bot :: a topic that always goes to a person is handed over at once"
        ),
        "{text}"
    );

    // A text flow is simulated with typed messages.
    let out = Command::new(bin)
        .args(["dialplan", "simulate"])
        .arg(repo("dialplans/shop-bot.yaml"))
        .args(["--channel", "sms", "--message", "what's the weather like"])
        .args(["--message", "no idea", "--message", "5678"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("not a valid number; retry 1 of 1"), "{text}");
    assert!(
        text.contains("hand off to the channel's queue (priority 6, skills [], intent account-question): Alan Turing (account 5678, standard) asked: what's the weather like"),
        "{text}"
    );
    assert!(text.contains("ends: handoff"), "{text}");

    let out = Command::new(bin)
        .args(["dialplan", "simulate"])
        .arg(repo("dialplans/demo.yaml"))
        .args([
            "--caller",
            "+15551234",
            "--digits",
            "1",
            "--at",
            "2026-11-23T10:00:00-05:00",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("path: welcome -> hours -> main_menu -> sales -> sales_queue"),
        "{text}"
    );
    assert!(text.contains("ends: enqueue sales"), "{text}");
    assert!(text.contains("open (Mon 10:00 America/New_York)"), "{text}");

    // Digits the flow never asked for are named; the demo customers are known.
    let out = Command::new(bin)
        .args(["dialplan", "simulate"])
        .arg(repo("dialplans/demo.yaml"))
        .args(["--digits", "2,1234#,7,7"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("known_customer"), "{text}");
    assert!(text.contains("customer.name=Ada Lovelace"), "{text}");
    assert!(text.contains("digits not used: 7,7"), "{text}");
    assert!(text.contains("without --at"), "{text}");

    // A broken flow: every problem with file:line:column, exit status 1.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("bad.yaml");
    std::fs::write(
        &f,
        "steps:\n  a:\n    menu:\n      prompt: nowhere\n      options: {1: b}\n  b:\n    hours:\n      timezone: Mars/Olympus\n      open: {mon: 09:00-17:00}\n    open: c\n  c:\n    say: \"hi ${nobody}\"\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["dialplan", "check"])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let p = f.display();
    assert!(
        text.contains(&format!("{p}:4:15: prompt `nowhere` not found")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{p}:8:17: unknown time zone `Mars/Olympus`")),
        "{text}"
    );
    let out = Command::new(bin)
        .args(["dialplan", "check"])
        .arg(repo("dialplans"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn webhook_answer_and_speech_in_a_real_call() {
    // A CRM webhook served by this test over a real socket.
    let crm = std::net::TcpListener::bind("127.0.0.1:22950").unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = crm.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        tx.send(String::from_utf8_lossy(&buf[..n]).to_string())
            .unwrap();
        let body = r#"{"name":"Ada","tier":"gold","orders":[{"id":7}]}"#;
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let dp = flow_dir();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main
steps:
  crm:
    http:
      url: http://127.0.0.1:22950/customer/${caller}
      timeout: 2s
    failure: down
  greet:
    say: \"Hello ${http.name}, you are a ${http.tier} customer.\"
  route:
    branch:
      value: ${http.orders.0.id}
      cases:
        - equals: \"7\"
          goto: bye
  down:
    play: hello
  bye:
    hangup:
",
    )
    .unwrap();
    let g = ivr_gateway(22900, dp.path(), true, "");
    let out = call_until_bye(&g, 22990);
    assert_sipp_ok(&out, "call with a webhook and speech", &g);
    let req = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // The caller's number is one encoded path segment (a value with `/` or `?` could
    // not leave its place either).
    assert!(
        req.starts_with("GET /customer/%2B15551230001 HTTP/1.1\r\n"),
        "{req}"
    );
    g.wait_log("path=crm,greet,route,bye");
    g.wait_log("recording saved");
    // What the caller heard (right channel) holds the synthesised sentence.
    let rec = std::fs::read_dir(g.path("data/recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .expect("a recording");
    // The interaction points at it, and has it on its timeline.
    let (_, body) = g.get_auth("/api/interactions?limit=1", "test-token");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        std::path::Path::new(one["recording"].as_str().expect("recording on record")),
        rec.as_path(),
        "{one}"
    );
    assert!(
        one["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "recording"),
        "{one}"
    );
    let mut r = hound::WavReader::open(&rec).unwrap();
    let right: Vec<i16> = r
        .samples::<i16>()
        .map(|s| s.unwrap())
        .skip(1)
        .step_by(2)
        .collect();
    let loud_frames = right
        .chunks(160)
        .filter(|c| c.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / 160.0 > 1e5)
        .count();
    assert!(
        loud_frames * 20 >= 1000,
        "only {} ms of speech heard in {}",
        loud_frames * 20,
        rec.display()
    );
}

#[test]
fn transfer_to_a_registered_extension_rings_the_phone_and_bridges() {
    let dp = flow_dir();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main
steps:
  hello:
    play: hello
  first:
    transfer: { extension: \"1002\", timeout: 5s }
    failure: second
  second:
    transfer: { extension: \"1001\", timeout: 10s }
    failure: sorry
  sorry:
    play: hello
  bye:
    hangup:
",
    )
    .unwrap();
    let g = ivr_gateway(23000, dp.path(), false, "");
    let sip = format!("127.0.0.1:{}", g.sip);
    // The agent's phone registers as 1001 from port 23095 (1002 stays unregistered)...
    register_demo_phone(&g, "1001", 23095);
    // ...then answers calls on that port.
    let mut phone = sipp_spawn(
        g.dir.path(),
        &["-sn", "uas", "-p", "23095", "-mp", "23060", "-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let caller = sipp(
        g.dir.path(),
        &[
            "-sn", "uac", "-s", "100", "-d", "3000", "-p", "23096", "-mp", "23070", "-m", "1", &sip,
        ],
    );
    assert_sipp_ok(&caller, "caller transferred to 1001", &g);
    let status = phone.wait().unwrap();
    assert!(status.success(), "the phone's SIPp: {status}\n{}", g.log());
    g.wait_log("ivr done");
    let log = g.log();
    // 1002 is not registered: 480, the failure branch, then 1001 rings and answers.
    assert!(log.contains("transfer failed"), "{log}");
    assert!(
        log.contains("transfer failed: not available (480)"),
        "{log}"
    );
    assert!(
        log.contains("outcome=\"transfer 1001\"") || log.contains("outcome=transfer 1001"),
        "{log}"
    );
    assert!(log.contains("path=hello,first,second"), "{log}");
}

#[test]
fn voicemail_is_recorded_and_lands_on_the_timeline() {
    let dp = flow_dir();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main\nsteps:\n  vm:\n    voicemail: { prompt: hello, max_length: 6s }\n  bye:\n    hangup:\n",
    )
    .unwrap();
    let g = ivr_gateway(23100, dp.path(), false, "");
    let args = speaker_args(&g, 23190, 23160);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sipp(g.dir.path(), &args);
    assert_sipp_ok(&out, "caller leaving a voicemail", &g);
    g.wait_log("voicemail saved");
    g.wait_log("path=vm,bye");
    let vm = std::fs::read_dir(g.path("data/voicemail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .expect("a voicemail file");
    let mut r = hound::WavReader::open(&vm).unwrap();
    let secs = r.duration() as f64 / r.spec().sample_rate as f64;
    assert!((5.9..=6.2).contains(&secs), "voicemail of {secs} s");
    let caller: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).step_by(2).collect();
    let loud = caller
        .chunks(160)
        .filter(|c| c.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / 160.0 > 1e5)
        .count();
    assert!(
        loud * 20 >= 1500,
        "only {} ms of the caller's speech in {}",
        loud * 20,
        vm.display()
    );
    // On the interaction's timeline.
    let mut found = serde_json::Value::Null;
    wait_for(
        "the voicemail on the timeline",
        Duration::from_secs(5),
        || {
            let (_, body) = g.get_auth("/api/interactions?limit=1", "test-token");
            let id = json(&body)[0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (_, one) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
            found = json(&one);
            // The record and its timeline are read one after the other: wait until
            // both show the end (and the variables written with it).
            found["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|e| e["kind"] == "interaction ended"))
                && !found["ended_at"].is_null()
                && !found["variables"]["voicemail.seconds"].is_null()
        },
    );
    let kinds: Vec<&str> = found["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["interaction started", "voicemail", "interaction ended"],
        "{found}"
    );
    let t = &found["timeline"][1];
    assert_eq!(t["data"]["path"], vm.display().to_string(), "{found}");
    assert_eq!(found["variables"]["voicemail.seconds"], "6", "{found}");
}

#[test]
fn make_prompts_gives_the_same_bytes_every_run() {
    let d = tempfile::tempdir().unwrap();
    let list = d.path().join("prompts.txt");
    std::fs::write(
        &list,
        "hello | Hello there.\nbye | Goodbye, and thank you.\n",
    )
    .unwrap();
    let run = || {
        let out = Command::new(repo("scripts/make-prompts.sh"))
            .arg(&list)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ["hello.wav", "bye.wav", "hold-music.wav"].map(|f| std::fs::read(d.path().join(f)).unwrap())
    };
    let first = run();
    assert!(first.iter().all(|w| w.len() > 1000));
    assert!(
        first == run(),
        "make-prompts wrote different bytes for the same text"
    );
}
