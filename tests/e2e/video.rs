//! Video through the gateway with real video phones: two Debian baresips (its moving
//! `fakevideo` picture, VP8) registered as demo users, one calling the other. Each
//! must decode the other's picture (a snapshot of what it receives shows the test
//! pattern, not black), and after a hold and resume the bridge must have asked both
//! for keyframes and had them.

use crate::harness::*;
use crate::media::{ctrl, Baresip};
use std::path::Path;
use std::time::Duration;

/// baresip's video: the fake camera and display, VP8, and snapshots of what it receives.
const VIDEO: &str = "module\tfakevideo.so\nmodule\tvp8.so\nmodule\tsnapshot.so\nvideo_source\tfakevideo,nil\nvideo_display\tfakevideo,nil\nvideo_size\t352x288\nvideo_fps\t15\n";

/// A decoded RGB PNG (8-bit, colour type 2, as baresip's snapshot writes it):
/// (width, height, pixels).
fn read_png(path: &Path) -> Option<(usize, usize, Vec<u8>)> {
    use std::io::Read;
    let d = std::fs::read(path).ok()?;
    if d.get(..8)? != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let (mut i, mut w, mut h, mut idat) = (8, 0, 0, Vec::new());
    while let Some(head) = d.get(i..i + 8) {
        let n = u32::from_be_bytes(head[..4].try_into().ok()?) as usize;
        let body = d.get(i + 8..i + 8 + n)?;
        match &head[4..8] {
            b"IHDR" => {
                w = u32::from_be_bytes(body[..4].try_into().ok()?) as usize;
                h = u32::from_be_bytes(body[4..8].try_into().ok()?) as usize;
                assert_eq!(&body[8..10], &[8, 2], "8-bit RGB");
            }
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        i += 12 + n;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .ok()?;
    let stride = w * 3;
    let mut px = vec![0u8; stride * h];
    for y in 0..h {
        let line = raw.get(y * (stride + 1)..(y + 1) * (stride + 1))?;
        for x in 0..stride {
            let a = if x >= 3 { px[y * stride + x - 3] } else { 0 } as i16;
            let b = if y > 0 { px[(y - 1) * stride + x] } else { 0 } as i16;
            let c = if x >= 3 && y > 0 {
                px[(y - 1) * stride + x - 3]
            } else {
                0
            } as i16;
            let pred = match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                _ => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
            };
            px[y * stride + x] = line[1 + x].wrapping_add(pred as u8);
        }
    }
    Some((w, h, px))
}

/// Asks a phone for a snapshot of the video it receives and checks it: the size sent,
/// and fakevideo's coloured pattern (strong red, green and blue), neither black nor
/// one flat colour.
fn received_picture(s: &mut std::net::TcpStream, dir: &Path, name: &str, log: &dyn Fn() -> String) {
    let path = dir.join(name);
    ctrl(s, "snapshot_recv", &path.display().to_string());
    let mut png = None;
    wait_for(
        &format!("{name}: a snapshot of the received video"),
        Duration::from_secs(10),
        || {
            png = read_png(&path);
            png.is_some()
        },
    );
    let (w, h, px) = png.unwrap();
    assert_eq!((w, h), (352, 288), "{}", log());
    let strong = |ch: usize| px.chunks_exact(3).filter(|p| p[ch] > 180).count();
    let (r, g, b) = (strong(0), strong(1), strong(2));
    let dark = px
        .chunks_exact(3)
        .filter(|p| p.iter().all(|&v| v < 40))
        .count();
    assert!(
        r > w * h / 10 && g > w * h / 10 && b > w * h / 10 && dark < w * h / 2,
        "{name}: not the test picture (red {r}, green {g}, blue {b}, dark {dark} of {})",
        w * h
    );
}

/// The gateway's `leg video` lines: (keyframes from, requests to) per leg.
fn leg_video(log: &str) -> Vec<(u64, u64, u64)> {
    log.lines()
        .filter(|l| l.contains("leg video"))
        .map(|l| {
            let field = |k: &str| {
                l.split(&format!("{k}="))
                    .nth(1)
                    .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            (
                field("relayed_to"),
                field("keyframes_from"),
                field("keyframe_requests_to"),
            )
        })
        .collect()
}

#[test]
fn two_sip_video_phones_see_each_other_and_keyframes_are_asked_after_hold() {
    let g = Gateway::start(28000, "demo = true", "", "");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source: Vec<i16> = omnigate::media::player::builtin_welcome()
        .iter()
        .cycle()
        .take(8000 * 40)
        .copied()
        .collect();
    let account = |user: &str, answer: &str| {
        format!(
            "<sip:{user}@127.0.0.1:{}>;auth_pass=demo{user};regint=600;audio_codecs=PCMU;video_codecs=VP8;answermode={answer}",
            g.sip
        )
    };
    // 1002 answers by itself; 1001 calls it. (A phone's TLS listener takes its SIP
    // port + 1: the control ports are kept apart.)
    let (_b, mut cb) = Baresip::start(
        db.path(),
        &source,
        (28012, "28026-28039", 28043),
        &account("1002", "auto"),
        VIDEO,
    );
    let (_a, mut ca) = Baresip::start(
        da.path(),
        &source,
        (28010, "28014-28025", 28041),
        &account("1001", "manual"),
        VIDEO,
    );
    let log_of = |d: &Path| std::fs::read_to_string(d.join("baresip.log")).unwrap_or_default();
    let logs = || {
        format!(
            "{}\n---- 1001 ----\n{}\n---- 1002 ----\n{}",
            g.log(),
            log_of(da.path()),
            log_of(db.path())
        )
    };
    wait_for("both phones to register", Duration::from_secs(10), || {
        let l = g.log();
        l.contains("registered from=127.0.0.1:28010 user=1001")
            && l.contains("registered from=127.0.0.1:28012 user=1002")
    });
    ctrl(&mut ca, "dial", &format!("sip:1002@127.0.0.1:{}", g.sip));
    wait_for(
        "both phones to decode video",
        Duration::from_secs(20),
        || {
            [da.path(), db.path()]
                .iter()
                .all(|d| log_of(d).contains("video: receiving with resolution 352 x 288"))
        },
    );
    received_picture(&mut ca, da.path(), "at-1001.png", &logs);
    received_picture(&mut cb, db.path(), "at-1002.png", &logs);
    // Hold and resume from 1001: a re-INVITE each, and the bridge asks both ends for
    // a full picture.
    ctrl(&mut ca, "hold", "");
    wait_for("the hold re-INVITE", Duration::from_secs(10), || {
        g.log().matches("media renegotiated").count() >= 1
    });
    let before_resume = g.log().len();
    ctrl(&mut ca, "resume", "");
    wait_for("the resume re-INVITE", Duration::from_secs(10), || {
        g.log().matches("media renegotiated").count() >= 2
    });
    // The bridge asked both phones for a full picture: each sent one.
    wait_for(
        "a keyframe from each phone after the resume",
        Duration::from_secs(10),
        || {
            let l = g.log();
            let legs: std::collections::HashSet<&str> = l[before_resume..]
                .lines()
                .filter(|l| l.contains("keyframe came as asked"))
                .filter_map(|l| l.split("leg=").nth(1))
                .map(|v| v.split_whitespace().next().unwrap_or(""))
                .collect();
            legs.len() >= 2
        },
    );
    let _ = std::fs::remove_file(da.path().join("at-1001.png"));
    received_picture(&mut ca, da.path(), "at-1001.png", &logs);
    ctrl(&mut ca, "hangup", "");
    wait_for(
        "the video figures of both legs",
        Duration::from_secs(10),
        || leg_video(&g.log()).len() >= 2,
    );
    let legs = leg_video(&g.log());
    for (relayed, keyframes, asked) in &legs {
        assert!(
            *relayed >= 10,
            "video relayed to each leg: {legs:?}\n{}",
            logs()
        );
        assert!(
            *asked >= 1,
            "each sender asked for a keyframe: {legs:?}\n{}",
            logs()
        );
        assert!(
            *keyframes >= 2,
            "a keyframe at the start and one asked for: {legs:?}\n{}",
            logs()
        );
    }
}

/// A second agent who takes calls in the browser (the demo's Alice has a desk phone).
const DANA: &str = "[[agent]]\nname = \"dana\"\npassword = \"dana-pass-1\"\nqueues = [\"support\"]\nskills = { support = 5 }\n";

/// A caller's flow for the test: the welcome, then the support queue (Bob's).
const TO_SUPPORT: &str = "flow: video\nsteps:\n  welcome:\n    play: welcome\n  queue:\n    enqueue:\n      queue: support\n      skills: [support]\n";

/// The demo gateway whose callers go to the support queue (`TO_SUPPORT`), with
/// `extra` configuration (more agents); its dialplan directory (kept while it runs)
/// and a microphone WAV for the browser agents.
fn to_support_gateway(base: u16, extra: &str) -> (Gateway, tempfile::TempDir, std::path::PathBuf) {
    let dp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dp.path().join("prompts")).unwrap();
    std::fs::copy(
        repo("dialplans/prompts/welcome.wav"),
        dp.path().join("prompts/welcome.wav"),
    )
    .unwrap();
    std::fs::write(dp.path().join("video.yaml"), TO_SUPPORT).unwrap();
    let g = Gateway::start(
        base,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = false",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"video\"\n{extra}",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    let mic = g.dir.path().join("agent-48k.wav");
    crate::desktop::write_48k_wav(&mic, &omnigate::media::player::builtin_welcome());
    (g, dp, mic)
}

/// A picture received from Chromium's fake camera: not dark, not one flat colour.
fn camera_picture(s: &mut std::net::TcpStream, dir: &Path, name: &str, log: &dyn Fn() -> String) {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    ctrl(s, "snapshot_recv", &path.display().to_string());
    let mut png = None;
    wait_for(
        &format!("{name}: a snapshot of the agent's video"),
        Duration::from_secs(10),
        || {
            png = read_png(&path);
            png.is_some()
        },
    );
    let (w, h, px) = png.unwrap();
    let luma: Vec<f64> = px
        .chunks_exact(3)
        .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0)
        .collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let spread = (luma.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / luma.len() as f64).sqrt();
    assert!(
        w >= 320 && h >= 240 && mean > 30.0 && spread > 10.0,
        "{name}: {w}x{h}, mean {mean:.0}, spread {spread:.0}: not the camera's picture\n{}",
        log()
    );
}

/// A video call through the IVR to Bob in Chromium, on port block `base`: the phone
/// (baresip with `modules`, offering `codec`) calls, Bob answers and turns his camera
/// on. Returns it and what Bob's browser decoded first.
struct VideoCall {
    g: Gateway,
    bob: crate::desktop::Browser,
    _phone: Baresip,
    s: std::net::TcpStream,
    dir: tempfile::TempDir,
    _dp: tempfile::TempDir,
    base: String,
    mic: String,
    artifacts: String,
}

impl VideoCall {
    fn start(base: u16, codec: &str, modules: &str, how: &str) -> (VideoCall, serde_json::Value) {
        let (g, dp, mic) = to_support_gateway(base, DANA);
        let artifacts = repo(&format!(
            "target/e2e-artifacts/video-call-{}",
            codec.to_lowercase()
        ));
        let _ = std::fs::remove_dir_all(&artifacts);
        let http = format!("http://127.0.0.1:{}", g.http);
        let (mic, artifacts) = (mic.display().to_string(), artifacts.display().to_string());
        let mut bob = crate::desktop::Browser::run(
            "agent_video.mjs",
            &[&http, "bob", "demo-bob", &mic, &artifacts, how],
        );
        let dir = tempfile::tempdir().unwrap();
        let source: Vec<i16> = omnigate::media::player::builtin_welcome()
            .iter()
            .cycle()
            .take(8000 * 60)
            .copied()
            .collect();
        bob.step("available", &g);
        let (phone, mut s) = Baresip::start(
            dir.path(),
            &source,
            (base + 30, &format!("{}-{}", base + 38, base + 49), base + 36),
            &format!("<sip:carol@127.0.0.1>;regint=0;audio_codecs=PCMU;video_codecs={codec};answermode=manual"),
            modules,
        );
        ctrl(&mut s, "dial", &format!("sip:100@127.0.0.1:{}", g.sip));
        let mut c = VideoCall {
            g,
            bob,
            _phone: phone,
            s,
            dir,
            _dp: dp,
            base: http,
            mic,
            artifacts,
        };
        let o = c.bob.step("offered", &c.g);
        assert_eq!(o["channel"], "video", "the caller's camera is on: {o}");
        let v = c.bob.step("video", &c.g);
        assert!(
            v["width"].as_u64() == Some(352)
                && v["decoded"].as_u64() > Some(30)
                && v["spread"].as_u64() > Some(20),
            "Bob decodes the caller's picture: {v}\n{}",
            c.logs()
        );
        assert_eq!(v["codec_in"], format!("video/{codec}"), "{v}");
        // The caller's camera was taken: a video interaction.
        let (_, list) = c.g.get_auth("/api/interactions?limit=1", "test-token");
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        assert_eq!(list[0]["kind"], "video", "{list}");
        assert!(v["sent"].as_u64() > Some(20) && v["shown"] == true, "{v}");
        c.phone_decodes("bob-1.png");
        (c, v)
    }

    fn phone_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!("{}\n---- baresip ----\n{}", self.g.log(), self.phone_log())
    }

    /// The phone decodes the agent's camera (a snapshot of it).
    fn phone_decodes(&mut self, name: &str) {
        wait_for(
            "the phone to decode the agent's camera",
            Duration::from_secs(20),
            || {
                self.phone_log()
                    .contains("video: receiving with resolution")
            },
        );
        let logs = self.logs();
        camera_picture(&mut self.s, self.dir.path(), name, &|| logs.clone());
    }
}

#[test]
fn a_video_phone_through_the_ivr_and_bob_in_chromium_see_each_other_after_hold_and_a_transfer() {
    let (mut c, v) = VideoCall::start(28100, "VP8", VIDEO, "hold,transfer:dana");
    // Hold and resume from the desktop: both pictures come back.
    c.bob.step("holding", &c.g);
    c.bob.go();
    let r = c.bob.step("resumed", &c.g);
    assert!(
        r["decoded"].as_u64() > v["decoded"].as_u64().map(|d| d + 30),
        "frames after resume: {r}\n{}",
        c.logs()
    );
    c.phone_decodes("bob-2.png");
    // A blind transfer to Dana, in the browser too: she decodes the caller's picture,
    // and the phone's stream goes on from her camera (a new sender, the same stream).
    let mut dana = crate::desktop::Browser::run(
        "agent_video.mjs",
        &[
            &c.base,
            "dana",
            "dana-pass-1",
            &c.mic,
            &c.artifacts,
            "answer",
        ],
    );
    dana.step("available", &c.g);
    c.bob.go();
    c.bob.step("transferred", &c.g);
    let d = dana.step("video", &c.g);
    assert!(
        d["width"].as_u64() == Some(352)
            && d["decoded"].as_u64() > Some(30)
            && d["spread"].as_u64() > Some(20),
        "Dana decodes the caller's video after the transfer: {d}\n{}",
        c.logs()
    );
    c.phone_decodes("dana.png");
    dana.go();
    dana.step("hung up", &c.g);
    dana.finish();
    wait_for("the video figures", Duration::from_secs(10), || {
        leg_video(&c.g.log()).len() >= 3
    });
    let legs = leg_video(&c.g.log());
    for (relayed, keyframes, _) in &legs {
        assert!(*relayed >= 30 && *keyframes >= 1, "{legs:?}\n{}", c.logs());
    }
    // The phone and Bob were asked after the resume; Dana's camera started with a
    // keyframe, so nothing had to be asked of her.
    assert!(
        legs.iter().filter(|l| l.2 >= 1).count() >= 2,
        "the bridge asked the phone and Bob: {legs:?}\n{}",
        c.logs()
    );
    c.bob.finish();
}

#[test]
fn an_h264_video_phone_and_bob_in_chromium_see_each_other() {
    // Debian's baresip-ffmpeg (avcodec): H.264, which the browser leg takes in
    // packetization-mode 1 only.
    let h264 = VIDEO.replace("module\tvp8.so", "module\tavcodec.so");
    let (mut c, _) = VideoCall::start(28200, "H264", &h264, "answer");
    c.bob.go();
    c.bob.step("hung up", &c.g);
    wait_for("the video figures", Duration::from_secs(10), || {
        leg_video(&c.g.log()).len() >= 2
    });
    let legs = leg_video(&c.g.log());
    assert!(
        legs.iter().all(|l| l.0 >= 30 && l.1 >= 1),
        "H.264 keyframes seen both ways: {legs:?}\n{}",
        c.logs()
    );
    c.bob.finish();
}

#[test]
fn a_customer_escalates_the_web_chat_to_a_video_call_with_bob_and_both_see_each_other() {
    // The demo centre with its dialplan (Bob takes support's chats in the browser),
    // recording on: Ada (Chromium, fake camera) chats, Bob (Chromium) takes the chat,
    // she starts a video call from the chat page; it rings Bob alone. He verifies who
    // she is after the call.
    let dp = tempfile::tempdir().unwrap();
    open_demo_dialplan(dp.path());
    let g = Gateway::start(
        28300,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = true",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"demo\"\n",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    let mic = g.dir.path().join("agent-48k.wav");
    crate::desktop::write_48k_wav(&mic, &omnigate::media::player::builtin_welcome());
    let artifacts = repo("target/e2e-artifacts/chat-video");
    let _ = std::fs::remove_dir_all(&artifacts);
    let http = format!("http://127.0.0.1:{}", g.http);
    let mut b = crate::desktop::Browser::run(
        "chat_video.mjs",
        &[
            &http,
            "bob",
            "demo-bob",
            &mic.display().to_string(),
            &artifacts.display().to_string(),
        ],
    );
    b.step("available", &g);
    let early = b.step("too early", &g);
    assert!(
        early["said"]
            .as_str()
            .unwrap()
            .contains("with the agent who has your chat"),
        "no agent has the chat yet: {early}"
    );
    let o = b.step("offered", &g);
    assert!(o["offer"].as_str().unwrap().contains("Ada Lovelace"), "{o}");
    let v = b.step("video", &g);
    eprintln!("what each decodes: {v}");
    for who in ["bob", "ada"] {
        let p = &v[who];
        assert!(
            p["width"].as_u64() > Some(0)
                && p["frames"].as_u64() > Some(30)
                && p["spread"].as_u64() > Some(10),
            "{who} decodes the other's camera: {v}\n{}",
            g.log()
        );
    }
    assert!(
        v["ada_state"].as_str().unwrap().contains("In a call"),
        "{v}"
    );
    let after = b.step("after", &g);
    assert!(
        after["said"].as_str().unwrap().contains("Video call ended"),
        "{after}"
    );
    b.step("verified", &g);
    // Bob invites her to a second video call from the chat; she joins, then hangs up.
    let j = b.step("joined", &g);
    assert!(
        j["invited"]
            .as_str()
            .unwrap()
            .contains("Bob Agent invites you"),
        "{j}"
    );
    assert!(j["ada"]["frames"].as_u64() > Some(15), "{j}");
    // A third at once, which Bob declines: she is told why.
    let d = b.step("declined", &g);
    assert!(
        d["said"]
            .as_str()
            .unwrap()
            .contains("the agent could not take the video call"),
        "{d}"
    );
    b.finish();

    // One case: the chat and its video call (made before Bob verified her: attached
    // then), recorded as a video interaction answered by Bob, its audio in a recording.
    let (_, list) = g.get_auth("/api/interactions?limit=10", "test-token");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let list = list.as_array().unwrap();
    let videos: Vec<&serde_json::Value> = list.iter().filter(|i| i["kind"] == "video").collect();
    assert_eq!(videos.len(), 3, "three video calls: {list:?}");
    // Newest first: the declined one, the invited one (on her case from the start).
    assert!(videos[0]["answered_at"].is_null(), "{:?}", videos[0]);
    assert_eq!(videos[1]["outcome"], "answered support", "{:?}", videos[1]);
    for v in &videos[..2] {
        assert_eq!(v["conversation_id"], videos[2]["conversation_id"], "{v}");
    }
    let video = videos[2];
    let chat = list
        .iter()
        .find(|i| i["kind"] == "webchat")
        .unwrap_or_else(|| panic!("the chat: {list:?}"));
    assert_eq!(
        video["dialled"],
        format!("chat:{}", chat["id"].as_str().unwrap())
    );
    assert!(video["conversation_id"].is_i64(), "{video}");
    assert_eq!(
        video["conversation_id"], chat["conversation_id"],
        "{video}\n{chat}"
    );
    assert_eq!(video["customer_id"], chat["customer_id"]);
    assert_eq!(video["agent"], "bob", "{video}");
    assert!(
        video["answered_at"].is_i64() && video["ended_at"].is_i64(),
        "{video}"
    );
    let rec = video["recording"].as_str().expect("recorded");
    let wav = hound::WavReader::open(g.dir.path().join(rec)).unwrap();
    assert!(
        wav.spec().channels == 2 && wav.duration() > wav.spec().sample_rate,
        "the call's audio is recorded, both sides, over a second: {rec} {:?} {}",
        wav.spec(),
        wav.duration()
    );
    let legs = leg_video(&g.log());
    assert!(
        legs.iter().filter(|l| l.0 >= 30).count() >= 4,
        "video relayed both ways in the two calls answered: {legs:?}"
    );
}

/// linphonec (Debian's `linphone-cli`), a SIP video phone on the command line: its
/// camera is Linphone's static picture, its sound card none; it is driven by commands
/// on stdin and says what happens on stdout, kept here.
struct Linphone {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    _home: tempfile::TempDir,
}

impl Linphone {
    /// Starts linphonec with video on, its SIP on UDP `sip`, RTP on `audio` and
    /// `video`, accepting video a call adds (Linphone's `automatically_accept`).
    fn start(sip: u16, audio: u16, video: u16) -> Linphone {
        use std::io::Read;
        let home = tempfile::tempdir().unwrap();
        let rc = home.path().join("linphonerc");
        std::fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={sip}\n[rtp]\naudio_rtp_port={audio}\nvideo_rtp_port={video}\n\
                 [video]\nautomatically_accept=1\nautomatically_initiate=0\ncapture=1\ndisplay=1\nsize=vga\n\
                 [sound]\nechocancellation=0\n"
            ),
        )
        .unwrap();
        // Unbuffered (its prompt has no newline; a pipe would hold what it says).
        let mut child = std::process::Command::new("stdbuf")
            .args([
                "-o0",
                "-e0",
                "linphonec",
                "-c",
                &rc.display().to_string(),
                "-V",
            ])
            .env("HOME", home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("linphonec (Debian's linphone-cli; ./scripts/test.sh installs it)");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut p = Linphone {
            child,
            out,
            _home: home,
        };
        p.wait("linphonec's prompt", "linphonec>");
        // The configured port is not taken at start-up here: say it again.
        p.cmd(&format!("ports sip {sip}"));
        p.wait(
            "linphonec on its SIP port",
            &format!("Setting sip port to {sip}"),
        );
        p
    }

    fn cmd(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn log(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits (30 s at most) until linphonec has said `text`.
    fn wait(&self, what: &str, text: &str) {
        for _ in 0..600 {
            if self.log().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what} ({text:?}):\n{}", self.log());
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The size a baseline JPEG states in its SOF0 marker.
fn jpeg_size(b: &[u8]) -> Option<(u16, u16)> {
    if b.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xff {
            return None;
        }
        let marker = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if (0xc0..=0xc2).contains(&marker) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

#[test]
fn an_agent_adds_video_to_an_audio_call_and_the_phone_and_bob_see_each_other() {
    let base = 28400;
    let (g, _dp, mic) = to_support_gateway(base, "");
    let artifacts = repo("target/e2e-artifacts/video-added");
    let _ = std::fs::remove_dir_all(&artifacts);
    let http = format!("http://127.0.0.1:{}", g.http);
    let mut bob = crate::desktop::Browser::run(
        "agent_video.mjs",
        &[
            &http,
            "bob",
            "demo-bob",
            &mic.display().to_string(),
            &artifacts.display().to_string(),
            "add-video",
        ],
    );
    bob.step("available", &g);
    // Linphone calls with audio alone.
    let mut phone = Linphone::start(base + 30, base + 32, base + 34);
    phone.cmd("staticpic fps 15");
    // No sound card: a WAV is the phone's microphone.
    let speech = g.dir.path().join("phone-8k.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&speech, spec).unwrap();
    for s in omnigate::media::player::builtin_welcome()
        .iter()
        .cycle()
        .take(8000 * 60)
    {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    phone.cmd("soundcard use files");
    phone.cmd(&format!("call sip:100@127.0.0.1:{} --audio-only", g.sip));
    let logs = |phone: &Linphone| format!("{}\n---- linphonec ----\n{}", g.log(), phone.log());
    let o = bob.step("offered", &g);
    assert_eq!(o["channel"], "voice", "an audio call: {o}");
    let a = bob.step("audio", &g);
    assert_eq!(a["camera"], false, "no camera on an audio call: {a}");
    phone.wait("the audio call", "Media streams established");
    phone.cmd(&format!("play {}", speech.display()));
    assert!(
        !phone.log().contains("(audio/video)") && !phone.log().contains("video)"),
        "audio alone at first:\n{}",
        phone.log()
    );
    // Bob adds video: the phone takes it (a re-INVITE adding m=video), his browser
    // renegotiates, both see the other.
    bob.go();
    // Linphone takes the video and asks its user for the camera: they agree.
    phone.wait("the phone taking video", "for call 1 (video)");
    phone.cmd("camera on");
    let v = bob.step("video", &g);
    assert!(
        v["width"].as_u64() > Some(0)
            && v["decoded"].as_u64() > Some(5)
            && v["spread"].as_u64() > Some(20)
            && v["sent"].as_u64() > Some(20)
            && v["shown"] == true,
        "Bob decodes the phone's picture and sends his: {v}\n{}",
        logs(&phone)
    );
    assert_eq!(v["codec_in"], "video/VP8", "{v}");
    eprintln!("video added: Bob {v}");
    // Bob's audio went on across the renegotiation.
    let audio_in = |s: &str| {
        s.split("audio packets in ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        audio_in(v["stats"].as_str().unwrap_or("")) > audio_in(a["stats"].as_str().unwrap_or("")),
        "{a} then {v}"
    );
    assert!(g.log().contains("the caller's phone took video") && g.log().contains("video added"));
    // The phone decodes Bob's camera: a snapshot of what it receives.
    let snap = g.dir.path().join("linphone-received.jpg");
    let mut size = None;
    let mut bytes = 0;
    // Asked again every second (20 polls) until the phone has a picture to take.
    let mut polls = 0;
    wait_for(
        "the phone's snapshot of Bob's camera",
        Duration::from_secs(20),
        || {
            if polls % 20 == 0 {
                phone.cmd(&format!("snapshot {}", snap.display()));
            }
            polls += 1;
            let b = std::fs::read(&snap).unwrap_or_default();
            (size, bytes) = (jpeg_size(&b), b.len());
            // Whole (its end marker written).
            size.is_some() && b.ends_with(&[0xff, 0xd9])
        },
    );
    assert_eq!(
        size,
        Some((640, 480)),
        "Bob's camera at the phone\n{}",
        logs(&phone)
    );
    // A black or flat 640x480 picture is a few KB; Chromium's fake camera is not.
    assert!(bytes > 8000, "a picture, not a flat one: {bytes} bytes");
    eprintln!("video added: the phone's snapshot of Bob's camera 640x480, {bytes} bytes");
    let _ = std::fs::create_dir_all(&artifacts);
    let _ = std::fs::copy(&snap, artifacts.join("linphone-received.jpg"));
    bob.go();
    bob.step("hung up", &g);
    bob.finish();
    wait_for("the video figures", Duration::from_secs(10), || {
        leg_video(&g.log()).len() >= 2
    });
    let legs = leg_video(&g.log());
    assert!(
        legs.iter().all(|l| l.0 >= 10 && l.1 >= 1),
        "video relayed both ways with keyframes: {legs:?}\n{}",
        logs(&phone)
    );
}
