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

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
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
fn write_48k_wav(path: &Path, pcm8k: &[i16]) {
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

/// A CRM's webhook endpoint: records every request (headers, body) and answers 500 to
/// the first one (the gateway must retry), 200 to the rest.
type Posts = std::sync::Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, String)>>>;

fn crm(port: u16) -> Posts {
    use std::io::{Read, Write};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let g2 = got.clone();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body_start) = loop {
                let k = s.read(&mut chunk).unwrap_or(0);
                if k == 0 {
                    break (String::new(), 0);
                }
                buf.extend_from_slice(&chunk[..k]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break (String::from_utf8_lossy(&buf[..p]).to_string(), p + 4);
                }
            };
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < body_start + len {
                let k = s.read(&mut chunk).unwrap_or(0);
                if k == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..k]);
            }
            let body = String::from_utf8_lossy(&buf[body_start..]).to_string();
            g2.lock().unwrap().push((headers, body));
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    got
}

fn rms(v: &[i16]) -> f64 {
    (v.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

#[test]
fn an_agent_answers_a_caller_in_the_browser_with_the_screen_pop_and_wraps_up() {
    let node_modules = repo("tests/browser/node_modules/playwright-core");
    assert!(
        node_modules.exists(),
        "playwright-core is not installed in tests/browser: run ./scripts/test.sh, which installs it"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed (Debian package chromium): run ./scripts/test.sh"
    );
    // The demo flow, open around the clock, with its prompts.
    let dp = tempfile::tempdir().unwrap();
    open_demo_dialplan(dp.path());
    let hooks = crm(24050);
    let secret = "crm-shared-secret-0123456789";
    let g = Gateway::start(
        24000,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = true",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"demo\"\n\n[[webhook]]\nurl = \"http://127.0.0.1:24050/crm\"\nsecret = \"{secret}\"\n",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    let caller_wav = g.dir.path().join("caller-ulaw.wav");
    write_ulaw_wav(
        &caller_wav,
        &speech(&["main-menu", "account", "thanks", "please-hold"]),
    );
    let mic_wav = g.dir.path().join("agent-48k.wav");
    write_48k_wav(
        &mic_wav,
        &speech(&["welcome", "connecting-support", "goodbye", "leave-message"]),
    );
    let artifacts = repo("target/e2e-artifacts/agent-desktop");
    let _ = std::fs::remove_dir_all(&artifacts);

    let mut node = Command::new("node")
        .arg(repo("tests/browser/agent_call.mjs"))
        .args([&format!("http://127.0.0.1:{}", g.http), "bob", "demo-bob"])
        .arg(&mic_wav)
        .arg(&artifacts)
        .current_dir(repo("tests/browser"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node (Debian package nodejs)");
    let kill_node = KillOnDrop(node.id());
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut transcript = String::new();
    let mut next_step = |name: &str, transcript: &mut String| -> serde_json::Value {
        for l in lines.by_ref() {
            let l = l.unwrap();
            transcript.push_str(&l);
            transcript.push('\n');
            if let Some(rest) = l.strip_prefix(&format!("STEP {name} ")) {
                return json(rest);
            }
            if l.starts_with("FAILED") {
                break;
            }
        }
        panic!(
            "the browser did not reach step {name:?}:\n{transcript}\n--- gateway log:\n{}",
            g.log()
        );
    };

    // 2. Bob is logged in and Available.
    next_step("available", &mut transcript);

    // 3. Ada calls: 2 for support, account 1234#, then speaks.
    let (sipp_port, media_port) = (24090, 24094);
    let caller = sipp_spawn(
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
    );

    // 4. The page rings and shows Ada with the digits she entered.
    let offered = next_step("offered", &mut transcript);
    assert_eq!(offered["name"], "Ada Lovelace", "{offered}");
    let offer_text = offered["offer"].as_str().unwrap();
    assert!(offer_text.contains("1234"), "digits entered: {offered}");
    assert!(offer_text.contains("support"), "{offered}");
    assert_eq!(offered["ringing"], true, "the ring tone plays: {offered}");
    let pop = offered["pop"].as_str().unwrap();
    assert!(pop.contains("+15551234567"), "her identities: {pop}");
    assert!(pop.contains("gold"), "her record: {pop}");
    let before = udp_socket_counters(media_port).unwrap_or_else(|| {
        panic!(
            "SIPp's media socket (port {media_port}) not in /proc/net/udp:\n{}",
            std::fs::read_to_string("/proc/net/udp").unwrap_or_default()
        )
    });

    // 5. Audio both ways.
    let media = next_step("media", &mut transcript);
    assert!(
        media["inbound"].as_u64().unwrap() > 150,
        "the browser got the caller's RTP: {media}"
    );
    assert!(media["outbound"].as_u64().unwrap() > 150, "{media}");
    assert!(
        media["codec"].as_str().unwrap().contains("PCMU"),
        "G.711 end to end: {media}"
    );
    let held = next_step("held and resumed", &mut transcript);
    assert!(
        held["inbound"].as_u64() > media["inbound"].as_u64(),
        "audio flows again after resume: {held}"
    );
    let after = udp_socket_counters(media_port).expect("SIPp's media socket");
    assert!(
        after.0 + after.1 > before.0 + before.1,
        "SIPp's media socket received the agent's RTP: {before:?} -> {after:?}"
    );

    // 6. Bob hung up: SIPp got the BYE; the page wrapped up.
    let out = caller.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the caller: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        g.log()
    );
    next_step("wrapped up", &mut transcript);
    let status = node.wait().unwrap();
    std::mem::forget(kill_node);
    assert!(
        status.success(),
        "the browser script: {status}\n{transcript}"
    );
    for shot in ["step4-offer.png", "step6-wrap-up.png"] {
        let p = artifacts.join(shot);
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
    let mut i = serde_json::Value::Null;
    wait_for("the call's record", Duration::from_secs(10), || {
        let (_, body) = g.get_auth("/api/interactions?limit=1", "test-token");
        i = json(&body)[0].clone();
        !i["ended_at"].is_null() && !i["disposition"].is_null()
    });
    let id = i["id"].as_str().unwrap().to_string();
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    let i = json(&body);
    assert_eq!(i["agent"], "bob", "{i}");
    assert_eq!(i["queue"], "support", "{i}");
    assert_eq!(i["variables"]["account"], "1234", "{i}");
    assert_eq!(i["customer_id"], 1, "{i}");
    assert_eq!(i["disposition"], "Resolved", "{i}");
    let (answered, ended) = (
        i["answered_at"].as_f64().expect("answered"),
        i["ended_at"].as_f64().unwrap(),
    );
    // Unix milliseconds: connected, held, resumed, a key, hung up.
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
    let path = i["recording"].as_str().expect("a recording");
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().channels, 2);
    let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let (left, right): (Vec<i16>, Vec<i16>) = s.chunks(2).map(|c| (c[0], c[1])).unzip();
    let (l, rr) = (rms(&left), rms(&right));
    assert!(
        l > 200.0 && rr > 200.0,
        "both channels carry sound: left {l:.0}, right {rr:.0} ({path})"
    );
    let log = g.log();
    assert!(log.contains("agent connected in the browser"), "{log}");

    // The CRM got the screen-pop on offer (retried after its 500) and on connect,
    // signed with the shared secret.
    let got = hooks.lock().unwrap().clone();
    let events: Vec<String> = got
        .iter()
        .map(|(h, _)| {
            h.iter()
                .find(|(k, _)| k == "x-omnigate-event")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect();
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
    for (h, body) in &got {
        let header = |name: &str| {
            h.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} missing: {h:?}"))
        };
        let ts: u64 = header("x-omnigate-timestamp").parse().unwrap();
        assert_eq!(
            header("x-omnigate-signature"),
            omnigate::webhooks::signature(secret, ts, body.as_bytes()),
            "signed: {body}"
        );
        let v = json(body);
        assert_eq!(v["interaction"], id.as_str(), "{v}");
        assert_eq!(v["agent"], "bob", "{v}");
        assert_eq!(v["customer"]["customer"]["name"], "Ada Lovelace", "{v}");
        assert_eq!(v["ivr"]["account"], "1234", "{v}");
    }
}

/// Kills a process (the browser driver) if the test fails before it exits.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}
