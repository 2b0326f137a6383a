//! Media with real peers: SIPp plays its shipped G.711 and RFC 2833 pcaps; the gateway
//! records the call, and the recording is compared with the audio in the pcap
//! (cross-correlation peak, duration); the digits must come out once each, in order.
//! Forwarding bridges the caller to a second SIPp (`-rtp_echo`) through a trunk, with
//! µ-law ↔ A-law transcoding both ways.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// RTP payloads (with payload type and sequence number) of a pcap of Ethernet/IPv4/UDP.
fn pcap_rtp(path: &str) -> Vec<(u8, u16, Vec<u8>)> {
    let d = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (scripts/test.sh installs sip-tester)"));
    assert_eq!(&d[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        let pkt = &d[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = &pkt[14..];
        let ihl = (ip[0] & 15) as usize * 4;
        let rtp = &ip[ihl + 8..];
        out.push((
            rtp[1] & 0x7f,
            u16::from_be_bytes([rtp[2], rtp[3]]),
            rtp[12..].to_vec(),
        ));
    }
    out
}

fn alaw(a: u8) -> i16 {
    omnigate::media::g711::alaw_to_linear(a)
}

/// The audio SIPp sends: g711a.pcap decoded.
fn reference() -> Vec<f32> {
    let mut pk = pcap_rtp("/usr/share/sip-tester/g711a.pcap");
    pk.sort_by_key(|p| p.1);
    pk.iter()
        .flat_map(|p| p.2.iter().map(|&b| alaw(b) as f32))
        .collect()
}

fn channels(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let s = r.spec();
    assert_eq!(
        (s.channels, s.sample_rate, s.bits_per_sample),
        (2, 8000, 16)
    );
    let v: Vec<f32> = r.samples::<i16>().map(|x| x.unwrap() as f32).collect();
    (
        v.iter().step_by(2).copied().collect(),
        v.iter().skip(1).step_by(2).copied().collect(),
    )
}

/// Normalised cross-correlation of `b` against `a` at lag (b delayed by `lag`).
fn ncc(a: &[f32], b: &[f32], lag: usize) -> f32 {
    let n = a.len().min(b.len().saturating_sub(lag));
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for i in 0..n {
        let (x, y) = (a[i] as f64, b[i + lag] as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (ab / (aa.sqrt() * bb.sqrt())) as f32
}

/// The lag (0..max) where `b` best matches `a`, searched on a window of up to 2 s from
/// 1 s in, and the full-length correlation there.
fn best_lag(a: &[f32], b: &[f32], max: usize) -> (usize, f32) {
    let from = 8000.min(a.len() / 4);
    let win = &a[from..(from + 16000).min(a.len())];
    let mut best = (0, f32::MIN);
    for lag in 0..max {
        let c = ncc(win, &b[from..], lag);
        if c > best.1 {
            best = (lag, c);
        }
    }
    (best.0, ncc(a, b, best.0))
}

/// First and last sample louder than -40 dBov, smoothed over 10 ms.
fn active_span(x: &[f32]) -> (usize, usize) {
    let loud: Vec<bool> = x
        .chunks(80)
        .map(|c| c.iter().map(|v| v.abs()).sum::<f32>() / 80.0 > 330.0)
        .collect();
    let first = loud.iter().position(|&l| l).unwrap_or(0) * 80;
    let last = (loud.iter().rposition(|&l| l).unwrap_or(0) + 1) * 80;
    (first, last)
}

fn recording(g: &Gateway) -> PathBuf {
    g.wait_log("recording saved");
    let dir = g.dir.path().join("data/recordings");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn digits(log: &str, leg: usize) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" dtmf") && l.contains(&format!("leg={leg} ")))
        .filter_map(|l| {
            l.split("digit=")
                .nth(1)
                .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn sipp_pcap_call_is_recorded_and_its_rfc2833_digits_understood() {
    let g = Gateway::start(
        22300,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0",
        "",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_pcap_dtmf.xml"),
            "-s",
            "100",
            "-p",
            "22310",
            "-mp",
            "22320",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "uac with G.711 and RFC 2833 pcaps", &g);
    let path = recording(&g);
    let log = g.log();
    assert_eq!(
        digits(&log, 0),
        ["1", "5", "#"],
        "each press once, in order:\n{log}"
    );
    assert!(log.contains("via=Rfc4733"), "{log}");

    let reference = reference();
    assert!((reference.len() as f32 / 8000.0 - 7.05).abs() < 0.1);
    let (left, right) = channels(&path);
    // The caller (left) is the pcap's audio: correlation peak near 1 (G.711 re-encoding
    // of identical samples is exact, so anything lower means lost or misplaced audio).
    let (lag, peak) = best_lag(&reference, &left, 8000);
    assert!(peak > 0.98, "correlation peak {peak} at lag {lag}");
    let (s_ref, e_ref) = active_span(&reference);
    let (s_rec, e_rec) = active_span(&left);
    let (d_ref, d_rec) = ((e_ref - s_ref) as i64, (e_rec - s_rec) as i64);
    assert!(
        (d_ref - d_rec).abs() <= 480,
        "duration {d_rec} samples recorded vs {d_ref} sent (60 ms = 480)"
    );
    assert_eq!(
        s_rec as i64 - s_ref as i64,
        lag as i64,
        "the speech starts where the correlation says"
    );
    // The right channel carries what the caller heard: the welcome prompt, then silence.
    let prompt = omnigate::media::player::builtin_welcome();
    let prompt: Vec<f32> = prompt.iter().map(|&s| s as f32).collect();
    let (_, p_peak) = best_lag(&prompt, &right, 4000);
    assert!(p_peak > 0.95, "prompt correlation {p_peak}");
    // The recording lasts as long as the call (7.6 + 0.6 + 0.6 + 1 s of pauses).
    let secs = left.len() as f32 / 8000.0;
    assert!((9.5..10.5).contains(&secs), "recording of {secs} s");
}

#[test]
fn forwarded_call_is_bridged_and_transcoded_through_a_trunk() {
    // The far end: SIPp answering with PCMU and echoing RTP back.
    let far_dir = tempfile::tempdir().unwrap();
    let mut far = sipp_spawn(
        far_dir.path(),
        &[
            "-sn",
            "uas",
            "-rtp_echo",
            "-p",
            "22450",
            "-mp",
            "22460",
            "-m",
            "1",
        ],
    );
    let g = Gateway::start(
        22400,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nforward_trunk = \"far\"",
        "[[trunk]]\nname = \"far\"\nproxy = \"127.0.0.1:22450\"\noptions_interval = 0\n",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_pcap_dtmf.xml"),
            "-s",
            "100",
            "-p",
            "22410",
            "-mp",
            "22420",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "caller through the forwarding gateway", &g);
    let st = far.wait().unwrap();
    assert!(st.success(), "far-end SIPp failed: {st}\n{}", g.log());
    let path = recording(&g);
    let log = g.log();
    assert!(log.contains("forwarding"), "{log}");
    // The caller's digits are understood once each on its leg...
    assert_eq!(digits(&log, 0), ["1", "5", "#"], "{log}");
    // ...and cross to the far end, which has no telephone-event, as tones: its echo
    // brings them back, detected in-band on the far leg.
    assert_eq!(digits(&log, 1), ["1", "5", "#"], "{log}");
    let reference = reference();
    let (left, right) = channels(&path);
    let (lag_l, peak_l) = best_lag(&reference, &left, 8000);
    assert!(peak_l > 0.98, "caller channel correlation {peak_l}");
    // Right: the echo, after A-law → µ-law → (echo) → µ-law → A-law. µ-law has more
    // resolution than A-law for these levels, so the round trip is nearly lossless.
    let (lag_r, peak_r) = best_lag(&reference, &right, 8000);
    assert!(peak_r > 0.95, "echo correlation {peak_r} at {lag_r}");
    assert!(
        lag_r >= lag_l && lag_r - lag_l < 1600,
        "echo {lag_r} after the caller {lag_l} by less than 200 ms"
    );
}

/// Writes a netstring-framed JSON command to baresip's ctrl_tcp.
pub(crate) fn ctrl(s: &mut std::net::TcpStream, command: &str, params: &str) {
    use std::io::Write;
    let body = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t\"}}");
    s.write_all(format!("{}:{},", body.len(), body).as_bytes())
        .unwrap();
}

/// A headless baresip (Debian's), sending `source` as its microphone, driven over
/// ctrl_tcp; killed when dropped. Its log is `dir/baresip.log`. `extra`: more config
/// lines (video modules).
pub(crate) struct Baresip(std::process::Child);

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Baresip {
    pub(crate) fn start(
        dir: &Path,
        source: &[i16],
        (sip_port, rtp_ports, ctrl_port): (u16, &str, u16),
        account: &str,
        extra: &str,
    ) -> (Baresip, std::net::TcpStream) {
        assert!(
            Path::new("/usr/bin/baresip").exists(),
            "baresip is not installed (Debian package baresip-core): run ./scripts/test.sh"
        );
        let wav = dir.join("source.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        source.iter().for_each(|&s| w.write_sample(s).unwrap());
        w.finalize().unwrap();
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method\tpoll\nsip_listen\t127.0.0.1:{sip_port}\nnet_interface\t127.0.0.1\naudio_source\taufile,{}\naudio_player\talsa,null\naudio_alert\talsa,null\n\
                 rtp_ports\t{rtp_ports}\nmodule_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule\taufile.so\nmodule\talsa.so\nmodule\taccount.so\n\
                 module\tmenu.so\nmodule_app\tctrl_tcp.so\nctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n{extra}",
                wav.display()
            ),
        )
        .unwrap();
        std::fs::write(conf.join("accounts"), format!("{account}\n")).unwrap();
        let child = std::process::Command::new("/usr/bin/baresip")
            .args(["-f"])
            .arg(&conf)
            .args(["-t", "40"])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("baresip.log")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start baresip");
        let phone = Baresip(child);
        let mut s = None;
        wait_for("baresip's ctrl_tcp", Duration::from_secs(10), || {
            s = std::net::TcpStream::connect(("127.0.0.1", ctrl_port)).ok();
            s.is_some()
        });
        (phone, s.unwrap())
    }
}

#[test]
fn baresip_call_is_recorded_and_its_dtmf_understood() {
    let g = Gateway::start(
        22500,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0",
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    // The audio baresip sends: the welcome prompt three times (longer than the call:
    // baresip 1.0 hangs up when its file source ends).
    let prompt = omnigate::media::player::builtin_welcome();
    let source: Vec<i16> = prompt
        .iter()
        .chain(prompt.iter())
        .chain(prompt.iter())
        .copied()
        .collect();
    let (_phone, mut s) = Baresip::start(
        dir.path(),
        &source,
        (22550, "22560-22580", 22555),
        "<sip:alice@127.0.0.1>;regint=0;audio_codecs=PCMU;answermode=manual",
        "",
    );
    let phone_log = || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    ctrl(&mut s, "dial", &format!("sip:100@127.0.0.1:{}", g.sip));
    let mut up = false;
    for _ in 0..100 {
        if g.log().contains("call established") {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up,
        "the call was not established:\n{}\n---- baresip ----\n{}",
        g.log(),
        phone_log()
    );
    // Let some speech through, press keys (baresip sends RFC 2833), then hang up.
    std::thread::sleep(Duration::from_millis(3000));
    for d in ["4", "2", "#"] {
        ctrl(&mut s, "sndcode", d);
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_millis(500));
    ctrl(&mut s, "hangup", "");
    let path = recording(&g);
    let log = g.log();
    assert_eq!(
        digits(&log, 0),
        ["4", "2", "#"],
        "each press once:\n{log}\n---- baresip ----\n{}",
        phone_log()
    );
    let (left, _) = channels(&path);
    let src: Vec<f32> = source.iter().map(|&x| x as f32).collect();
    let (lag, peak) = best_lag(&src[..16000.min(src.len())], &left, 8000);
    assert!(
        peak > 0.9,
        "baresip's audio in the recording: correlation {peak} at lag {lag}"
    );
}

#[test]
fn sip_info_digits_are_understood() {
    let g = Gateway::start(
        22600,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0",
        "",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_info_dtmf.xml"),
            "-s",
            "100",
            "-p",
            "22610",
            "-mp",
            "22620",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "keys by SIP INFO", &g);
    g.wait_log("reason=RemoteBye");
    let log = g.log();
    for _ in 0..50 {
        if digits(&g.log(), 0).len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(digits(&g.log(), 0), ["7", "*", "8"], "{log}");
    assert!(g.log().contains("via=Info"));
}

#[test]
fn key_presses_are_not_logged_in_clear_by_default() {
    let g = Gateway::start(
        26200,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0",
        "[log]\nlevel = \"info\"\n",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_info_dtmf.xml"),
            "-s",
            "100",
            "-p",
            "26210",
            "-mp",
            "26220",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "keys by SIP INFO", &g);
    g.wait_log("reason=RemoteBye");
    wait_for("three key presses logged", Duration::from_secs(5), || {
        digits(&g.log(), 0).len() >= 3
    });
    let log = g.log();
    assert_eq!(digits(&log, 0), ["***", "***", "***"], "{log}");
    // What the node keeps is its own: the data directory, the database and the
    // recording are readable by its user only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    g.wait_log("recording saved");
    let data = g.path("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("omnigate.db")), 0o600);
    assert_eq!(mode(&data.join("recordings")), 0o700);
    let rec = recording(&g);
    assert_eq!(mode(&rec), 0o600, "{}", rec.display());
}

#[test]
fn baresip_registers_on_the_demo_defaults_and_1001_calls_1002() {
    // The demo node as a newcomer meets it: one MD5 challenge, the demo trunk on
    // 127.0.0.0/8, demo users. baresip is 1001; a SIPp phone registered as 1002 answers.
    let g = Gateway::start(26800, "demo = true", "", "");
    let dir = tempfile::tempdir().unwrap();
    let source: Vec<i16> = omnigate::media::player::builtin_welcome()
        .iter()
        .cycle()
        .take(8000 * 20)
        .copied()
        .collect();
    let (_phone, mut s) = Baresip::start(
        dir.path(),
        &source,
        (26910, "26920-26940", 26915),
        &format!(
            "<sip:1001@127.0.0.1:{}>;auth_pass=demo1001;regint=600;audio_codecs=PCMU;answermode=manual",
            g.sip
        ),
        "",
    );
    let phone_log = || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    wait_for(
        "baresip to register as 1001",
        Duration::from_secs(10),
        || {
            g.log()
                .contains("registered from=127.0.0.1:26910 user=1001")
        },
    );
    // 1002: a SIPp phone that answers.
    register_demo_phone(&g, "1002", 26960);
    let answerer = sipp_spawn(
        g.dir.path(),
        &["-sn", "uas", "-p", "26960", "-mp", "26964", "-m", "1"],
    );
    ctrl(&mut s, "dial", &format!("sip:1002@127.0.0.1:{}", g.sip));
    wait_for(
        "1001's call to ring 1002 and be answered",
        Duration::from_secs(15),
        || g.log().contains("call established"),
    );
    let log = g.log();
    let incoming = log
        .lines()
        .find(|l| l.contains("incoming call"))
        .unwrap_or_else(|| {
            panic!(
                "no incoming call:\n{log}\n---- baresip ----\n{}",
                phone_log()
            )
        });
    assert!(
        incoming.contains("user=1001") && incoming.contains("trunk=-"),
        "the phone's call was not taken as 1001's: {incoming}"
    );
    ctrl(&mut s, "hangup", "");
    assert_sipp_done(answerer, "1002 answers 1001", &g);
}
