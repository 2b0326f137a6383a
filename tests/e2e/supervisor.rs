//! Supervisors end to end: Sam supervises the day team and the support queue, Tom the
//! sales queue. Sam's console in headless Chromium shows his queue, his agent and a web
//! chat as it waits and is answered (and the whole state again after a dropped
//! socket), never Tom's; the KPI API gives each his own figures; Tom is refused Sam's
//! chat (403); every read is in the audit log; admins manage supervisors through the
//! API. Roles do not mix: an agent's token is no supervisor's and the other way round.
#![allow(clippy::disallowed_methods)] // real time for real processes

use crate::centre::{agent_ws, chat_with_first_message, log_in, put, raw, ty, until};
use crate::desktop::Browser;
use crate::harness::*;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

const CENTRE: &str = r#"
[[queue]]
name = "support"
sla_secs = 20
wrap_up_secs = 0

[[queue]]
name = "sales"

[[agent]]
name = "ann"
password = "ann-secret"
display_name = "Ann"
team = "day"
queues = ["support"]

[[agent]]
name = "ben"
password = "ben-secret"
display_name = "Ben"
team = "night"
queues = ["sales"]

[[supervisor]]
name = "sam"
password = "sam-secret"
display_name = "Sam"
teams = ["day"]
queues = ["support"]

[[supervisor]]
name = "tom"
password = "tom-secret"
queues = ["sales"]

[chat]
queue = "support"
"#;

fn sup_login(g: &Gateway, name: &str, pw: &str) -> (u16, String) {
    g.post(
        "/api/supervisor/login",
        None,
        &serde_json::json!({"name": name, "password": pw}).to_string(),
    )
}

fn token(g: &Gateway, name: &str, pw: &str) -> String {
    let (code, body) = sup_login(g, name, pw);
    assert_eq!(code, 200, "{body}");
    json(&body)["token"].as_str().unwrap().to_string()
}

fn names(v: &serde_json::Value, list: &str, key: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_supervisor_sees_and_acts_on_their_queues_and_teams_only() {
    let base = 25050;
    let g = Gateway::start(base, "", "", CENTRE);
    let artifacts = repo("target/e2e-artifacts/supervisor");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    // ---- Roles: a supervisor's token is not an agent's, nor the other way round.
    let (code, body) = sup_login(&g, "sam", "wrong-password");
    assert_eq!(code, 401, "{body}");
    let sam = token(&g, "sam", "sam-secret");
    let tom = token(&g, "tom", "tom-secret");
    let (code, body) = g.get_auth("/api/supervisor/me", &sam);
    assert_eq!(code, 200, "{body}");
    let me = json(&body);
    assert_eq!(me["queues"], serde_json::json!(["support"]), "{me}");
    assert_eq!(me["agents"], serde_json::json!(["ann"]), "{me}");
    assert_eq!(g.get_auth("/api/agent/me", &sam).0, 401);
    let (code, _) = sup_login(&g, "ann", "ann-secret");
    assert_eq!(code, 401, "an agent is no supervisor");

    // ---- Sam's console: his queue only.
    let mut b = Browser::run(
        "supervisor.mjs",
        &[
            &format!("http://127.0.0.1:{}", g.http),
            "sam",
            "sam-secret",
            &artifacts.display().to_string(),
        ],
    );
    let shown = b.step("console", &g);
    assert_eq!(names(&shown, "tiles", "queue"), ["support"], "{shown}");

    // Ann and Ben log in (away): Sam sees Ann, not Ben.
    let ann = log_in(&g, "ann", "ann-secret");
    let _ben = log_in(&g, "ben", "ben-secret");
    assert_eq!(g.get_auth("/api/supervisor/me", &ann).0, 401);
    let mut ann_ws = agent_ws(&g, &ann);
    until(&mut ann_ws, "ann's state", ty("state"));
    let shown = b.step("agents", &g);
    assert_eq!(names(&shown, "agents", "agent"), ["ann"], "{shown}");

    // A customer chats while Ann is away: it waits in support.
    let (_cust, chat, _, _) = chat_with_first_message(&g, "Carla Cliente", "carla@example.com");
    let shown = b.step("waiting", &g);
    let row = &shown["work"][0];
    assert_eq!(row["interaction"], chat.as_str(), "{shown}");
    assert_eq!(
        row["cells"][1], "Carla Cliente <carla@example.com>",
        "{shown}"
    );
    assert_eq!(row["cells"][2], "support", "{shown}");

    // Ann takes it: with an agent, answered within the target (the day's service
    // level on the tile, by the KPI definitions).
    let (code, body) = put(
        &g,
        "/api/agent/presence",
        &ann,
        r#"{"presence":"available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    until(&mut ann_ws, "the chat offered", |v| {
        v["type"] == "offer" && v["interaction"] == chat.as_str()
    });
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    let shown = b.step("assigned", &g);
    let row = &shown["work"][0];
    assert_eq!(row["cells"][3], "assigned", "{shown}");
    assert_eq!(row["cells"][4], "ann", "{shown}");
    let ann_row = &shown["agents"][0];
    assert_eq!(ann_row["cells"][2], "available", "{shown}");
    assert_eq!(ann_row["cells"][4], "1", "one piece of work: {shown}");
    assert!(
        shown["bars"].as_u64().unwrap() >= 1,
        "the day's chart: {shown}"
    );
    let again = b.step("reconnected", &g);
    assert_eq!(again["tiles"], shown["tiles"], "after a reconnect: {again}");
    assert_eq!(names(&again, "agents", "agent"), ["ann"], "{again}");
    assert_eq!(
        names(&again, "work", "interaction"),
        [chat.as_str()],
        "{again}"
    );
    b.step("logged_out", &g);
    b.finish();

    // Logging out on the console ended his every session.
    assert_eq!(g.get_auth("/api/supervisor/me", &sam).0, 401);
    let sam = token(&g, "sam", "sam-secret");

    // ---- The KPI API: each supervisor his own figures; the admin everything.
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let kpis = |who: &str| {
        let (code, body) = g.get_auth(&format!("/api/kpis?from={today}&group_by=queue"), who);
        assert_eq!(code, 200, "{body}");
        json(&body)
    };
    let r = kpis(&sam);
    assert_eq!(r["groups"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["groups"][0]["key"]["queue"], "support", "{r}");
    assert_eq!(r["total"]["contacts"], 1, "{r}");
    assert_eq!(r["total"]["service_level"]["num"], 1, "{r}");
    let r = kpis(&tom);
    assert_eq!(
        r["total"]["contacts"], 0,
        "Tom sees nothing of support: {r}"
    );
    let r = kpis("test-token");
    assert_eq!(r["total"]["contacts"], 1, "{r}");
    assert_eq!(
        g.get_auth("/api/kpis", &ann).0,
        401,
        "an agent reads no KPIs"
    );

    // ---- Sam reads his chat; Tom is refused it.
    let (code, body) = g.get_auth(&format!("/api/interactions/{chat}"), &tom);
    assert_eq!(code, 403, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("outside your queues and teams"));
    let (code, body) = g.get_auth(&format!("/api/interactions/{chat}"), &sam);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["agent"], "ann");

    // ---- What Sam did is in the audit log, for the admin only.
    let (code, body) = g.get_auth("/api/audit?actor=sam", "test-token");
    assert_eq!(code, 200, "{body}");
    let log = json(&body);
    let acts: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        acts,
        [
            "login",
            "login",
            "logout",
            "login",
            "kpis.read",
            "interaction.read"
        ],
        "{log}"
    );
    let read = log.as_array().unwrap().last().unwrap();
    assert_eq!(read["interaction"], chat.as_str(), "{read}");
    assert_eq!(read["role"], "supervisor", "{read}");
    assert_eq!(
        g.get_auth("/api/audit", &sam).0,
        401,
        "supervisors do not read the audit log"
    );
    let (code, body) = g.get_auth("/api/audit?limit=0", "test-token");
    assert_eq!(code, 400, "{body}");

    // ---- Admins manage supervisors: the config file's are read-only.
    let (code, body) = g.get_auth("/api/supervisors", "test-token");
    assert_eq!(code, 200, "{body}");
    let list = json(&body);
    assert_eq!(list[0]["name"], "sam", "{list}");
    assert_eq!(list[0]["source"], "config", "{list}");
    assert!(list[0].get("password").is_none(), "{list}");
    let zoe =
        |queues: &str, pw: &str| format!(r#"{{"name":"zoe","password":"{pw}","queues":{queues}}}"#);
    let (code, body) = g.post(
        "/api/supervisors",
        Some("test-token"),
        &zoe(r#"["nowhere"]"#, "zoe-secret"),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("no queue named \\\"nowhere\\\""), "{body}");
    let (code, body) = g.post(
        "/api/supervisors",
        Some("test-token"),
        &zoe(r#"["sales"]"#, "zoe-secret"),
    );
    assert_eq!(code, 201, "{body}");
    let zoe_token = token(&g, "zoe", "zoe-secret");
    let (code, body) = raw(
        &g,
        "PUT",
        "/api/supervisors/zoe",
        "test-token",
        &zoe(r#"["sales"]"#, "zoe-new-secret"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        g.get_auth("/api/supervisor/me", &zoe_token).0,
        401,
        "a new password ends her sessions"
    );
    let (code, body) = raw(
        &g,
        "PUT",
        "/api/supervisors/sam",
        "test-token",
        r#"{"name":"sam","queues":["sales"]}"#,
    );
    assert_eq!(code, 409, "{body}");
    let (code, body) = raw(&g, "DELETE", "/api/supervisors/zoe", "test-token", "");
    assert_eq!(code, 204, "{body}");
    assert_eq!(sup_login(&g, "zoe", "zoe-new-secret").0, 401);
}

/// A party's media, played by the test on its own socket (SIPp does the signalling
/// and names this socket in its SDP): a pure tone out, and what comes back kept with
/// when it came, to be analysed.
type Heard = std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, Vec<i16>)>>>;

struct CallerMedia {
    heard: Heard,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CallerMedia {
    fn start(port: u16, hz: f64) -> CallerMedia {
        use omnigate::media::g711::{linear_to_ulaw, ulaw_to_linear};
        use std::sync::atomic::Ordering;
        let sock = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, s) = (heard.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut gateway = None;
            let (mut seq, mut ts, mut phase) = (0u16, 0u32, 0f64);
            let mut next = std::time::Instant::now();
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    // RTP (not RTCP): version 2, payload type 0.
                    if n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0 {
                        gateway = Some(from);
                        let pcm = buf[12..n].iter().map(|&u| ulaw_to_linear(u)).collect();
                        h.lock().unwrap().push((std::time::Instant::now(), pcm));
                    }
                }
                // Once the gateway has spoken (symmetric RTP), a packet each 20 ms.
                let Some(to) = gateway else { continue };
                while std::time::Instant::now() >= next {
                    let mut p = vec![0x80, 0x00];
                    p.extend(seq.to_be_bytes());
                    p.extend(ts.to_be_bytes());
                    p.extend(0x4510_0001u32.to_be_bytes());
                    for _ in 0..160 {
                        p.push(linear_to_ulaw((phase.sin() * 8000.0) as i16));
                        phase += 2.0 * std::f64::consts::PI * hz / 8000.0;
                    }
                    let _ = sock.send_to(&p, to);
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                    next += std::time::Duration::from_millis(20);
                }
            }
        });
        CallerMedia { heard, stop }
    }

    /// The amplitude (of 32768) of each tone in what the caller heard over `window`
    /// from now (Goertzel, Hann window).
    fn tones(&self, window: std::time::Duration, freqs: &[f64]) -> Vec<f64> {
        let from = std::time::Instant::now();
        // The audio of the next `window` is needed: it has to arrive first.
        while from.elapsed() < window {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let pcm: Vec<f64> = self
            .heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from)
            .flat_map(|(_, p)| p.iter().map(|&s| s as f64))
            .collect();
        assert!(
            pcm.len() >= 2000,
            "the caller hears audio: {} samples",
            pcm.len()
        );
        let n = pcm.len() as f64;
        freqs
            .iter()
            .map(|f| {
                let w = 2.0 * std::f64::consts::PI * f / 8000.0;
                let (mut re, mut im, mut gain) = (0.0, 0.0, 0.0);
                for (i, x) in pcm.iter().enumerate() {
                    let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos();
                    re += x * hann * (w * i as f64).cos();
                    im += x * hann * (w * i as f64).sin();
                    gain += hann;
                }
                2.0 * (re * re + im * im).sqrt() / gain
            })
            .collect()
    }
}

impl Drop for CallerMedia {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The monitor's start, a mode change and its stop are on the call's timeline.
fn monitor_on_timeline(g: &Gateway, id: &str) {
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    let i = json(&body);
    let kinds = timeline_kinds(&i);
    for k in ["monitor started", "monitor mode", "monitor stopped"] {
        assert!(kinds.contains(&k), "{k} on the timeline: {kinds:?}");
    }
}

/// The caller (+15550001111) dials 100 from SIPp on `base + 10`, its audio at the
/// test's socket `rtp`.
fn caller_calls(g: &Gateway, base: u16, rtp: u16) -> Spawned {
    sipp_spawn(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_media_elsewhere.xml"),
            "-s",
            "100",
            "-key",
            "from",
            "+15550001111",
            "-set",
            "rtp",
            &rtp.to_string(),
            "-p",
            &(base + 10).to_string(),
            "-mp",
            &(base + 16).to_string(),
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    )
}

/// A console script (`tests/browser/<script>`) for the gateway, its screenshots in
/// `target/e2e-artifacts/<dir>`.
fn console_script(g: &Gateway, script: &str, dir: &str) -> Browser {
    let artifacts = repo(&format!("target/e2e-artifacts/{dir}"));
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    Browser::run(
        script,
        &[
            &format!("http://127.0.0.1:{}", g.http),
            &artifacts.display().to_string(),
        ],
    )
}

/// Listen, whisper, barge: a caller (SIPp, with the test's RTP socket as its media) is
/// bridged to Bob in Chromium; Sam, his supervisor, steps in from the console in a
/// second context. Each party is a pure tone (caller 450 Hz, Bob 700 Hz, Sam 1150 Hz).
/// Listening, Sam hears both and nobody hears Sam (the page sends its microphone all
/// along: the gateway drops it); whispering, Bob hears Sam and the caller does not;
/// barging, both do; then Sam leaves. Tom, who supervises another queue, is refused
/// (403). Each step is on the call's timeline and in the audit log, and Bob's desktop
/// says who is on his call.
#[test]
fn a_supervisor_listens_whispers_and_barges_into_a_call_from_the_console() {
    let base = 25150;
    // Demo mode (its trunk takes calls from 127.0.0.0/8); calls wait in support.
    let (g, _dp) = crate::channels::queueing_gateway(
        base,
        "[[queue]]\nname = \"support\"\n\n[[queue]]\nname = \"sales\"\n\n[[agent]]\nname = \"bob\"\npassword = \"bob-secret\"\ndisplay_name = \"Bob\"\nteam = \"day\"\nqueues = [\"support\"]\n\n[[supervisor]]\nname = \"sam\"\npassword = \"sam-secret\"\ndisplay_name = \"Sam\"\nteams = [\"day\"]\nqueues = [\"support\"]\n\n[[supervisor]]\nname = \"tom\"\npassword = \"tom-secret\"\nqueues = [\"sales\"]\n",
    );
    g.wait_log("dialplan loaded");
    let rtp = base + 20;
    let media = CallerMedia::start(rtp, 450.0);
    let mut b = console_script(&g, "monitor.mjs", "monitor");
    b.step("console", &g);
    let caller = caller_calls(&g, base, rtp);
    let level = |v: &serde_json::Value, who: &str, tone: &str| v[who][tone].as_f64().unwrap();
    let talking = b.step("talking", &g);
    assert!(level(&talking, "bob", "caller") > -50.0, "{talking}");

    // The call, and who may step into it.
    let (_, body) = g.get_auth("/api/interactions?limit=1", "test-token");
    let id = json(&body)[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/interactions/{id}/monitor");
    let offer = r#"{"mode":"listen","sdp":"v=0"}"#;
    let tom = token(&g, "tom", "tom-secret");
    let (code, body) = raw(&g, "POST", &path, &tom, offer);
    assert_eq!(code, 403, "Tom's queue is sales: {body}");
    assert!(body.contains("outside your queues"), "{body}");
    let sam = token(&g, "sam", "sam-secret");
    let (code, body) = raw(&g, "POST", &path, &sam, r#"{"mode":"shout","sdp":"v=0"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("listen, whisper or barge"), "{body}");
    let (code, body) = raw(&g, "POST", &path, "test-token", offer);
    assert_eq!(code, 401, "the admin has no ears on calls: {body}");
    let (code, body) = raw(&g, "PUT", &path, &sam, r#"{"mode":"barge"}"#);
    assert_eq!(code, 409, "not on the call yet: {body}");
    let (code, body) = raw(&g, "POST", "/api/interactions/nope/monitor", &sam, offer);
    assert_eq!(code, 404, "{body}");

    let freqs = [450.0, 700.0, 1150.0];
    let (heard, absent) = (1000.0, 150.0);
    // Listen: Sam hears both; his tone reaches neither.
    b.go();
    let l = b.step("listen", &g);
    assert!(
        level(&l, "sam", "caller") > -50.0 && level(&l, "sam", "bob") > -50.0,
        "{l}"
    );
    assert!(
        level(&l, "bob", "sam") < -70.0,
        "Bob does not hear Sam: {l}"
    );
    assert_eq!(l["banner"], "Supervisor Sam is listening", "{l}");
    let c = media.tones(std::time::Duration::from_millis(800), &freqs);
    assert!(
        c[1] > heard && c[2] < absent,
        "listen: the caller hears Bob, not Sam: {c:?}"
    );
    // Whisper: Bob hears Sam, the caller does not.
    b.go();
    let w = b.step("whisper", &g);
    assert!(
        level(&w, "bob", "sam") > -50.0 && level(&w, "bob", "caller") > -50.0,
        "{w}"
    );
    assert!(w["banner"].as_str().unwrap().contains("whispering"), "{w}");
    let c = media.tones(std::time::Duration::from_millis(800), &freqs);
    assert!(
        c[1] > heard && c[2] < absent,
        "whisper: the caller hears Bob, not Sam: {c:?}"
    );
    // Barge: all three.
    b.go();
    let x = b.step("barge", &g);
    assert!(
        level(&x, "bob", "sam") > -50.0 && level(&x, "sam", "caller") > -50.0,
        "{x}"
    );
    let c = media.tones(std::time::Duration::from_millis(800), &freqs);
    assert!(
        c[1] > heard && c[2] > heard,
        "barge: the caller hears Bob and Sam: {c:?}"
    );
    // Sam leaves: Bob and the caller as before.
    b.go();
    let left = b.step("left", &g);
    assert!(level(&left, "bob", "sam") < -70.0, "{left}");
    let c = media.tones(std::time::Duration::from_millis(800), &freqs);
    assert!(c[1] > heard && c[2] < absent, "after: {c:?}");
    b.go();
    b.step("hung up", &g);
    b.finish();
    assert_sipp_done(caller, "the caller", &g);

    // On the call's timeline and in the audit log.
    monitor_on_timeline(&g, &id);
    let (code, body) = g.get_auth("/api/audit?actor=sam", "test-token");
    assert_eq!(code, 200, "{body}");
    let acts: Vec<(String, String)> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("monitor"))
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["interaction"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        "monitor.mode",
        "monitor.start",
        "monitor.mode",
        "monitor.mode",
        "monitor.stop",
    ]
    .iter()
    .map(|a| (a.to_string(), id.clone()))
    .collect();
    assert_eq!(acts, want, "every act, refused ones too, before it is done");
}

/// Sue listens, whispers and barges from her desk phone: the caller, Alice's desk
/// phone and Sue's desk phone are SIPp for the signalling with the test's own RTP
/// sockets for their audio (caller 450 Hz, Alice 700 Hz, Sue 1150 Hz); Sue acts from
/// the console in Chromium. Her phone rings when she clicks "Listen on phone" and
/// hears both; what she says reaches Alice only when she
/// whispers, and both when she barges; when she leaves, the gateway hangs up her
/// phone and the two talk as before. A supervisor with no desk phone is refused (409).
#[test]
fn a_supervisor_listens_whispers_and_barges_from_their_desk_phone() {
    let base = 25300;
    let (g, _dp) = crate::channels::queueing_gateway(
        base,
        "[[supervisor]]\nname = \"tom\"\npassword = \"tom-secret\"\nqueues = [\"support\"]\n",
    );
    let (caller_rtp, alice_rtp, sue_rtp) = (base + 20, base + 24, base + 28);
    let caller_m = CallerMedia::start(caller_rtp, 450.0);
    let alice_m = CallerMedia::start(alice_rtp, 700.0);
    let sue_m = CallerMedia::start(sue_rtp, 1150.0);
    let phone = |user: &str, port: u16, rtp: u16| {
        register_demo_phone(&g, user, port);
        sipp_spawn(
            g.dir.path(),
            &[
                "-sf",
                &scenario("uas_media_elsewhere.xml"),
                "-set",
                "rtp",
                &rtp.to_string(),
                "-p",
                &port.to_string(),
                "-mp",
                &(port + 4).to_string(),
                "-m",
                "1",
            ],
        )
    };
    let alice_phone = phone("1001", base + 40, alice_rtp);
    let sue_phone = phone("1002", base + 50, sue_rtp);
    let (alice, mut ws) = crate::channels::on_duty(&g, "alice", "demo-alice");
    let caller = caller_calls(&g, base, caller_rtp);
    // Alice takes it: her phone rings and answers.
    let offer = crate::channels::next(&g, &mut ws, "offer");
    let id = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&alice), "");
    assert_eq!(code, 200, "{body}");
    let on_timeline = |id: &str, kind: &str| {
        let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
        timeline_kinds(&json(&body)).contains(&kind)
    };
    wait_for(
        "Alice on the call",
        std::time::Duration::from_secs(30),
        || on_timeline(&id, "connected"),
    );
    let path = format!("/api/interactions/{id}/monitor");
    let tom = token(&g, "tom", "tom-secret");
    let (code, body) = raw(&g, "POST", &path, &tom, r#"{"mode":"listen","phone":true}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("no desk phone"), "{body}");
    let sue = token(&g, "sue", "demo-sue");
    let (code, body) = raw(
        &g,
        "POST",
        &path,
        &sue,
        r#"{"mode":"listen","phone":true,"sdp":"v=0"}"#,
    );
    assert_eq!(code, 400, "{body}");
    // Sue, on the console in Chromium: "Listen on phone" rings her desk phone.
    let mut b = console_script(&g, "monitor_phone.mjs", "monitor-phone");
    b.step("console", &g);
    let l = b.step("listen", &g);
    assert_eq!(
        l["text"], "Listening to alice on your desk phone (1002)",
        "{l}"
    );
    assert_eq!(l["pc"], false, "no browser leg: {l}");
    assert!(l["title"].as_str().unwrap().contains("1002"), "{l}");
    wait_for(
        "Sue's phone on the call",
        std::time::Duration::from_secs(20),
        || on_timeline(&id, "monitor started"),
    );

    let freqs = [450.0, 700.0, 1150.0];
    let (heard, absent) = (1000.0, 150.0);
    let window = std::time::Duration::from_millis(800);
    // Listen: Sue hears both; nobody hears her.
    let s = sue_m.tones(window, &freqs);
    assert!(
        s[0] > heard && s[1] > heard,
        "listen: Sue hears both: {s:?}"
    );
    let c = caller_m.tones(window, &freqs);
    assert!(c[1] > heard && c[2] < absent, "listen: the caller: {c:?}");
    let a = alice_m.tones(window, &freqs);
    assert!(a[0] > heard && a[2] < absent, "listen: Alice: {a:?}");
    // Whisper: Alice hears Sue, the caller does not.
    b.go();
    let w = b.step("whisper", &g);
    assert!(
        w["text"]
            .as_str()
            .unwrap()
            .starts_with("Whispering to alice"),
        "{w}"
    );
    let a = alice_m.tones(window, &freqs);
    assert!(a[0] > heard && a[2] > heard, "whisper: Alice: {a:?}");
    let c = caller_m.tones(window, &freqs);
    assert!(c[1] > heard && c[2] < absent, "whisper: the caller: {c:?}");
    // Barge: all three.
    b.go();
    b.step("barge", &g);
    let c = caller_m.tones(window, &freqs);
    assert!(c[1] > heard && c[2] > heard, "barge: the caller: {c:?}");
    // Sue leaves: the gateway hangs up her phone; the two talk as before.
    b.go();
    b.step("left", &g);
    b.finish();
    assert_sipp_done(sue_phone, "Sue's desk phone", &g);
    let c = caller_m.tones(window, &freqs);
    assert!(c[1] > heard && c[2] < absent, "after: {c:?}");
    let (code, body) = g.post(&format!("/api/agent/work/{id}/hangup"), Some(&alice), "");
    assert_eq!(code, 200, "{body}");
    assert_sipp_done(alice_phone, "Alice's desk phone", &g);
    assert_sipp_done(caller, "the caller", &g);
    monitor_on_timeline(&g, &id);
    let (_, body) = g.get_auth("/api/audit?actor=sue", "test-token");
    assert!(body.contains(r#""via":"phone""#), "{body}");
}

/// A gateway on `base` with the centre, a customer's web chat with their first message,
/// and `script` in Chromium (its artifacts in `name`): (gateway, customer, chat, browser).
fn chat_and_console(
    base: u16,
    script: &str,
    name: &str,
) -> (Gateway, crate::centre::Ws, String, Browser) {
    let g = Gateway::start(base, "", "", CENTRE);
    let artifacts = repo(&format!("target/e2e-artifacts/{name}"));
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let (cust, chat, _, _) = chat_with_first_message(&g, "Carla Cliente", "carla@example.com");
    let b = Browser::run(
        script,
        &[
            &format!("http://127.0.0.1:{}", g.http),
            &artifacts.display().to_string(),
        ],
    );
    (g, cust, chat, b)
}

/// The data of each entry of `kind` on the interaction's timeline, in order.
fn timeline_of(g: &Gateway, id: &str, kind: &str) -> Vec<serde_json::Value> {
    let (code, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert_eq!(code, 200, "{body}");
    json(&body)["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["data"].clone())
        .collect()
}

/// Sam steps into Ann's web chat from the console: he follows it live, sends Ann a
/// private note the customer never gets, then writes to the customer, who is told he
/// joined; Tom, outside the queue, is refused; once the chat moves to another queue,
/// Sam's console stops following it; each act is on the timeline and in the audit log.
#[test]
fn a_supervisor_follows_a_chat_notes_to_its_agent_and_writes_to_the_customer() {
    let (g, mut cust, chat, mut b) =
        chat_and_console(25250, "supervisor_chat.mjs", "supervisor-chat");
    b.step("answered", &g);
    let shown = b.step("following", &g);
    assert!(
        shown["sam"][0]["text"]
            .as_str()
            .unwrap()
            .contains("My invoice is wrong"),
        "{shown}"
    );

    // The customer writes again: Sam's console shows it as it comes.
    crate::centre::send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "It says 120, not 100"}),
    );
    until(&mut cust, "ack of m2", ty("ack"));
    b.go();
    b.step("live", &g);
    let shown = b.step("noted", &g);
    let note = shown["ann"].as_array().unwrap().last().unwrap();
    assert_eq!(note["cls"], "note", "{shown}");
    assert!(
        note["text"]
            .as_str()
            .unwrap()
            .starts_with("Sam (note to you only): Offer the 20 credit"),
        "{shown}"
    );
    assert_eq!(shown["banner"], "", "a note is no join: {shown}");

    // Tom may not; nor may anyone write nothing, or to a chat that is not.
    let tom = token(&g, "tom", "tom-secret");
    let sam = token(&g, "sam", "sam-secret");
    let (code, body) = g.post(
        &format!("/api/interactions/{chat}/notes"),
        Some(&tom),
        r#"{"text":"psst"}"#,
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = g.post(
        &format!("/api/interactions/{chat}/messages"),
        Some(&tom),
        r#"{"text":"hello"}"#,
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = g.post(
        &format!("/api/interactions/{chat}/notes"),
        Some(&sam),
        r#"{"text":"  "}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("text must be 1 to 8000 bytes"), "{body}");
    let (code, body) = g.post(
        "/api/interactions/nope/notes",
        Some(&sam),
        r#"{"text":"x"}"#,
    );
    assert_eq!(code, 404, "{body}");
    let ann = log_in(&g, "ann", "ann-secret");
    let (code, _) = g.post(
        &format!("/api/interactions/{chat}/notes"),
        Some(&ann),
        r#"{"text":"x"}"#,
    );
    assert_eq!(code, 401, "an agent's token is no supervisor's");

    // Sam writes to the customer: they are told he joined, then read him; the note
    // never reached them.
    b.go();
    let shown = b.step("wrote", &g);
    assert_eq!(
        shown["banner"], "Supervisor Sam has joined the chat",
        "{shown}"
    );
    let frames = until(&mut cust, "Sam's message", |v| {
        v["type"] == "message" && v["name"] == "Sam"
    });
    assert!(
        frames
            .iter()
            .any(|f| f["from"] == "system" && f["text"] == "Sam joined the chat."),
        "{frames:#?}"
    );
    assert_eq!(
        frames.last().unwrap()["text"],
        "I am Ann's supervisor: the credit is on its way"
    );
    assert_eq!(frames.last().unwrap()["from"], "agent");
    assert!(
        !frames.iter().any(|f| f.to_string().contains("20 credit")),
        "the customer got the note: {frames:#?}"
    );

    let shown = b.step("reloaded", &g);
    assert_eq!(
        shown["banner"], "Supervisor Sam has joined the chat",
        "{shown}"
    );
    let notes: Vec<_> = shown["ann"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["cls"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "the note once, after a reload: {shown}");
    // Ann moves the chat to sales, which is not Sam's: his console stops following it.
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/transfer"),
        Some(&ann),
        r#"{"queue":"sales"}"#,
    );
    assert_eq!(code, 200, "{body}");
    b.go();
    let shown = b.step("left", &g);
    assert_eq!(shown["form_hidden"], true, "{shown}");
    b.finish();
    let (code, body) = g.post(
        &format!("/api/interactions/{chat}/notes"),
        Some(&sam),
        r#"{"text":"still there?"}"#,
    );
    assert_eq!(code, 403, "out of his scope now: {body}");
    crate::centre::send(&mut cust, serde_json::json!({"type": "leave"}));
    let frames = until(&mut cust, "the end", ty("closed"));
    assert!(
        !frames.iter().any(|f| f.to_string().contains("20 credit")),
        "{frames:#?}"
    );

    // On the record: the note (for the agent), Sam's message with who he is, his join.
    let of = |kind: &str| timeline_of(&g, &chat, kind);
    let notes = of("note");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["supervisor"], "sam");
    assert_eq!(notes[0]["text"], "Offer the 20 credit");
    assert_eq!(
        of("supervisor joined"),
        [serde_json::json!({"supervisor": "sam"})]
    );
    let by_sam: Vec<_> = of("message")
        .into_iter()
        .filter(|m| m["supervisor"] == "sam")
        .collect();
    assert_eq!(by_sam.len(), 1, "{by_sam:?}");
    assert_eq!(by_sam[0]["name"], "Sam");

    let (code, body) = g.get_auth("/api/audit?actor=sam", "test-token");
    assert_eq!(code, 200, "{body}");
    let acts: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["interaction"] == chat.as_str())
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        acts,
        [
            "chat.watch",
            "interaction.read",
            "chat.note",
            "chat.message"
        ],
        "{body}"
    );
}

/// Sam takes Ann's web chat over from the console: Ann is told, released to her
/// wrap-up and free for the next chat; the customer is told Sam looks after them now;
/// only Sam writes in it and ends it (Tom, outside the queue: 403; Ann: no longer
/// hers); the timeline, the audit log and the KPIs say who handled it.
#[test]
fn a_supervisor_takes_a_chat_over_from_its_agent_and_ends_it() {
    let (g, mut cust, chat, mut b) =
        chat_and_console(25350, "supervisor_takeover.mjs", "supervisor-takeover");
    b.step("answered", &g);
    let shown = b.step("taken", &g);
    assert_eq!(
        shown["banner"], "Supervisor Sam has taken over the chat: it is theirs now",
        "{shown}"
    );
    assert_eq!(shown["take_shown"], false, "{shown}");
    assert_eq!(shown["note_shown"], false, "{shown}");
    assert!(
        shown["row"].as_str().unwrap().contains("taken over"),
        "{shown}"
    );
    until(&mut cust, "the take-over line", |v| {
        v["type"] == "message"
            && v["from"] == "system"
            && v["text"] == "Sam is looking after you now."
    });

    let sam = token(&g, "sam", "sam-secret");
    let tom = token(&g, "tom", "tom-secret");
    let ann = log_in(&g, "ann", "ann-secret");
    // Once is enough; Tom may not; Ann's message is refused (no longer hers).
    let (code, body) = g.post(
        &format!("/api/interactions/{chat}/takeover"),
        Some(&sam),
        "",
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("taken this chat over already"), "{body}");
    let (code, body) = g.post(
        &format!("/api/interactions/{chat}/takeover"),
        Some(&tom),
        "",
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = g.post(&format!("/api/interactions/{chat}/close"), Some(&tom), "");
    assert_eq!(code, 403, "{body}");
    let (code, body) = g.post("/api/interactions/nope/takeover", Some(&sam), "");
    assert_eq!(code, 404, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":"still mine?"}"#,
    );
    assert_eq!(code, 403, "no longer Ann's: {body}");

    // Sam writes; the customer reads him and answers; Sam reads it live.
    b.go();
    b.step("wrote", &g);
    let frames = until(&mut cust, "Sam's message", |v| {
        v["type"] == "message" && v["name"] == "Sam"
    });
    assert_eq!(
        frames.last().unwrap()["text"],
        "I will put the refund through myself"
    );
    assert!(
        !frames.iter().any(|f| f["text"] == "Sam joined the chat."),
        "no second join line: {frames:#?}"
    );
    crate::centre::send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "Thank you, Sam"}),
    );
    until(&mut cust, "ack of m2", ty("ack"));
    b.go();
    let shown = b.step("ended", &g);
    assert_eq!(shown["form_hidden"], true, "{shown}");
    b.finish();
    let frames = until(&mut cust, "the end", ty("closed"));
    assert_eq!(frames.last().unwrap()["by"], "supervisor", "{frames:#?}");

    // On the record: the take-over (from Ann), the close by the supervisor.
    let of = |kind: &str| timeline_of(&g, &chat, kind);
    assert_eq!(
        of("taken over"),
        [serde_json::json!({"supervisor": "sam", "agent": "ann"})]
    );
    assert_eq!(of("closed"), [serde_json::json!({"by": "supervisor"})]);
    let (code, body) = g.get_auth("/api/audit?actor=sam", "test-token");
    assert_eq!(code, 200, "{body}");
    let acts: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["interaction"] == chat.as_str())
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        acts.iter().any(|a| a == "chat.take_over") && acts.iter().any(|a| a == "chat.close"),
        "{acts:?}"
    );
    // The KPIs: one contact, handled, by Sam last (the agent who had it last), ended by
    // the centre.
    let (code, body) = g.get_auth("/api/kpis?group_by=agent", "test-token");
    assert_eq!(code, 200, "{body}");
    let k = json(&body);
    assert_eq!(k["total"]["handled"], 1, "{k}");
    let groups = k["groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["key"]["agent"] == "sam" && g["kpis"]["handled"] == 1),
        "{k}"
    );
}
