//! Starts the real gateway binary with a generated config on its own ports, and runs
//! real SIPp against it. A missing peer fails the test loudly: run scripts/test.sh.
#![allow(clippy::disallowed_methods)] // waits in real time for real processes

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Gateway {
    child: Child,
    pub dir: tempfile::TempDir,
    pub sip: u16,
    pub tls: u16,
    pub ws: u16,
    pub http: u16,
}

pub fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

impl Gateway {
    /// `top` goes before any table (e.g. `demo = false`), `tables` after the [sip] etc.
    pub fn start(base: u16, top: &str, calls: &str, tables: &str) -> Gateway {
        Gateway::start_with_database(base, "", top, calls, tables)
    }

    /// As [`Gateway::start`], under a descriptor limit of `nofile` (soft and hard,
    /// set with util-linux's `prlimit`).
    pub fn start_limited(base: u16, nofile: u32, top: &str, calls: &str, tables: &str) -> Gateway {
        let limit = format!("--nofile={nofile}:{nofile}");
        Gateway::start_inner(base, "", top, calls, tables, &["prlimit", &limit, "--"])
    }

    /// As [`Gateway::start`], with `[data] database` set (empty: SQLite).
    pub fn start_with_database(
        base: u16,
        database: &str,
        top: &str,
        calls: &str,
        tables: &str,
    ) -> Gateway {
        Gateway::start_inner(base, database, top, calls, tables, &[])
    }

    fn start_inner(
        base: u16,
        database: &str,
        top: &str,
        calls: &str,
        tables: &str,
        wrapper: &[&str],
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (sip, tls, ws, http) = (base, base + 1, base + 2, base + 3);
        // Without a [dialplan] of its own a test gets an empty dialplan directory, so
        // calls get the built-in handler even in demo mode.
        let tables = if tables.contains("[dialplan]") {
            tables.to_string()
        } else {
            std::fs::create_dir_all(dir.path().join("dialplans")).unwrap();
            format!("{tables}\n[dialplan]\ndir = \"{d}/dialplans\"\ndefault_flow = \"\"\n")
        };
        // Tests read key presses and numbers from the log: a lab node shows personal
        // data, unless the test brings its own [log] (the redaction test does).
        // `http.key = value` lines in `tables` go into the harness's own [http].
        let (http_extra, rest): (Vec<&str>, Vec<&str>) =
            tables.lines().partition(|l| l.starts_with("http."));
        let http_extra: String = http_extra
            .iter()
            .map(|l| format!("{}\n", &l["http.".len()..]))
            .collect();
        let tables = rest.join("\n");
        let log = if tables.contains("[log]") {
            ""
        } else {
            "[log]\nlevel = \"info\"\npersonal_data = true\n"
        };
        // The gateway's RTP ports are chosen at random in its range, so the range must
        // not hold any of the test's own peers (SIPp, baresip use base + 10..99): it
        // lies below every base (8000 + 2 x (base - 21000), 58 ports; from 27500, where
        // that would reach 21000, 7000 + 2 x (base - 27500); from 28000, where that would
        // reach 8000, 6000 + 2 x (base - 28000)). A test owns base..base + 99.
        assert!(
            (21000..=27400).contains(&base) || (27500..=28400).contains(&base),
            "test port bases are 21000-27400 and 27500-28400"
        );
        let rtp = if base <= 27400 {
            8000 + 2 * (base - 21000)
        } else if base < 28000 {
            7000 + 2 * (base - 27500)
        } else {
            6000 + 2 * (base - 28000)
        };
        let cfg = format!(
            "{top}\n[sip]\nudp = \"127.0.0.1:{sip}\"\ntcp = \"127.0.0.1:{sip}\"\ntls = \"127.0.0.1:{tls}\"\nws = \"127.0.0.1:{ws}\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/cert.key\"\nkeepalive_interval = 0\n[http]\nlisten = \"127.0.0.1:{http}\"\nadmin_token = \"test-token\"\n{http_extra}[rtp]\nports = \"{}-{}\"\n[webrtc]\nport = {}\n[data]\ndir = \"{d}/data\"\ndatabase = \"{database}\"\n{log}[calls]\n{calls}\n{tables}\n",
            rtp,
            rtp + 58,
            base + 4
        );
        std::fs::write(dir.path().join("omnigate.toml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(env!("CARGO_BIN_EXE_omnigate"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_omnigate")),
        };
        let child = cmd
            .args(["serve", "--config"])
            .arg(dir.path().join("omnigate.toml"))
            .env("RUST_LOG", "info,omnigate=debug")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start omnigate");
        let g = Gateway {
            child,
            dir,
            sip,
            tls,
            ws,
            http,
        };
        let t0 = Instant::now();
        loop {
            if let Ok((200, _)) = g.try_get("/healthz") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "gateway did not become healthy:\n{}",
                g.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    /// Kills the gateway with SIGKILL (a crash: nothing is flushed or closed), then
    /// starts it again on the same config and data, and waits until it is healthy.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("gateway.log"))
            .unwrap();
        self.child = Command::new(env!("CARGO_BIN_EXE_omnigate"))
            .args(["serve", "--config"])
            .arg(self.dir.path().join("omnigate.toml"))
            .env("RUST_LOG", "info,omnigate=debug")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("restart omnigate");
        wait_for("the restarted gateway", Duration::from_secs(20), || {
            matches!(self.try_get("/healthz"), Ok((200, _)))
        });
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gateway's resident memory in kB (VmRSS).
    pub fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn try_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http(self.http, "GET", path, None, "")
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    pub fn get_auth(&self, path: &str, token: &str) -> (u16, String) {
        http(self.http, "GET", path, Some(token), "")
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        http(self.http, "POST", path, token, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()))
    }

    /// The value of a metric line (exact name with labels).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Waits (up to 5 s) until a metric has `value`; metrics refresh every 200 ms.
    pub fn wait_metric(&self, name: &str, value: f64) {
        let t0 = Instant::now();
        loop {
            let v = self.metric(name);
            if v == Some(value) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{name} is {v:?}, want {value}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 5 s) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        self.wait_log_within(needle, Duration::from_secs(5))
    }

    /// Waits (up to `limit`) until the log contains `needle`.
    pub fn wait_log_within(&self, needle: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t0.elapsed() < limit,
                "log never showed {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A graceful stop (after the grace period, 10 s unless the test set it) ends
            // the calls, so the log has their media summaries.
            self.sigterm();
            self.wait_exit(Duration::from_secs(15));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log());
        }
    }
}

fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(status_and_body(&out))
}

/// An HTTP/1.1 answer's status code and body.
fn status_and_body(out: &str) -> (u16, String) {
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn sipp_path() -> &'static str {
    let p = "/usr/bin/sipp";
    assert!(Path::new(p).exists(), "SIPp is not installed (Debian package sip-tester): run ./scripts/test.sh, which installs it");
    p
}

/// Runs SIPp to completion; `args` come after the common loopback options.
/// SIPp arguments for one caller that dials 100 and speaks (SIPp's pcap) until the
/// gateway hangs up, from signalling port `port` and media port `media`.
pub fn speaker_args(g: &Gateway, port: u16, media: u16) -> Vec<String> {
    speaker_args_from(g, port, media, "+15551230001")
}

/// As [`speaker_args`], calling from `from`.
pub fn speaker_args_from(g: &Gateway, port: u16, media: u16, from: &str) -> Vec<String> {
    uac_args(g, "uac_speak_until_bye.xml", port, media, &[("from", from)])
}

/// One SIPp call of `file` to the gateway's number 100, from SIP port `port` and
/// media port `media`, with the scenario's keys (`-key name value`).
pub fn uac_args(
    g: &Gateway,
    file: &str,
    port: u16,
    media: u16,
    keys: &[(&str, &str)],
) -> Vec<String> {
    let mut args = vec!["-sf".to_string(), scenario(file)];
    for (k, v) in keys {
        args.extend(["-key".to_string(), k.to_string(), v.to_string()]);
    }
    args.extend([
        "-s".to_string(),
        "100".into(),
        "-m".into(),
        "1".into(),
        "-p".into(),
        port.to_string(),
        "-mp".into(),
        media.to_string(),
        format!("127.0.0.1:{}", g.sip),
    ]);
    args
}

pub fn sipp(dir: &Path, args: &[&str]) -> Output {
    Command::new(sipp_path())
        .current_dir(dir)
        .args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-nostdin",
            "-timeout",
            "40s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
        ])
        .arg(dir.join(format!("sipp-errors-{}.log", std::process::id())))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sipp")
}

/// A SIPp in the background, killed if the test ends (or panics) while it runs, so a
/// failed test leaves no SIPp holding its ports.
pub struct Spawned(Option<Child>);

impl Spawned {
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        self.0.take().expect("running").wait_with_output()
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("running")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Starts SIPp in the background.
pub fn sipp_spawn(dir: &Path, args: &[&str]) -> Spawned {
    let child = Command::new(sipp_path())
        .current_dir(dir)
        .args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_err",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipp");
    Spawned(Some(child))
}

/// Registers the demo user `user` (password `demo<user>`) from SIPp on `port`, where a
/// SIPp started next can answer the calls that come to it.
pub fn register_demo_phone(g: &Gateway, user: &str, port: u16) {
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("register.xml"),
            "-s",
            user,
            "-au",
            user,
            "-ap",
            &format!("demo{user}"),
            "-p",
            &port.to_string(),
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, &format!("REGISTER {user}"), g);
}

/// The demo user `user`'s desk phone: registered from `port`, then SIPp's `uas`
/// there answering one call (media on `port + 4`).
pub fn desk_phone_answering(g: &Gateway, user: &str, port: u16) -> Spawned {
    register_demo_phone(g, user, port);
    sipp_spawn(
        g.dir.path(),
        &[
            "-sn",
            "uas",
            "-p",
            &port.to_string(),
            "-mp",
            &(port + 4).to_string(),
            "-m",
            "1",
        ],
    )
}

/// Waits for a background SIPp and checks it succeeded.
pub fn assert_sipp_done(s: Spawned, what: &str, g: &Gateway) {
    let out = s.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        g.log()
    );
}

pub fn assert_sipp_ok(out: &Output, what: &str, g: &Gateway) {
    if !out.status.success() {
        let errs: String = std::fs::read_dir(g.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("errors"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        let log = g.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "SIPp {what} failed ({}):\nstdout: {}\nstderr: {}\nerrors: {errs}\ngateway log (last lines):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The shipped demo flow and its prompts in `dir`, with its business hours opened
/// around the clock so a test passes at any hour (its own tests cover open and closed).
/// A demo gateway on `base` whose calls go to the demo flow (open at any hour, its
/// prompts), not recording; the flow's directory goes with it.
pub fn demo_ivr_gateway(base: u16) -> (Gateway, tempfile::TempDir) {
    let dp = tempfile::tempdir().unwrap();
    open_demo_dialplan(dp.path());
    let g = Gateway::start(
        base,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = false",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"demo\"\n",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    (g, dp)
}

pub fn open_demo_dialplan(dir: &Path) {
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    for e in std::fs::read_dir(repo("dialplans/prompts")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join("prompts").join(p.file_name().unwrap())).unwrap();
    }
    let open = std::fs::read_to_string(repo("dialplans/demo.yaml")).unwrap();
    assert!(
        open.contains("        daily: 00:00-24:00\n"),
        "the demo flow is no longer open at any hour; update open_demo_dialplan"
    );
    std::fs::write(dir.join("demo.yaml"), open).unwrap();
}

/// The kinds of an interaction's timeline events, in order.
pub fn timeline_kinds(i: &serde_json::Value) -> Vec<&str> {
    i["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

/// A CRM's webhook endpoint: records every request (headers, body) and answers 500 to
/// the first one (the gateway must retry), 200 to the rest.
pub type Posts = std::sync::Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, String)>>>;

pub fn crm(port: u16) -> Posts {
    // The first post fails (a retry is seen), the others are taken.
    serve(port, |n, _, _, _| {
        let status = if n == 0 {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        (status.to_string(), String::new())
    })
}

/// A plain HTTP/1.1 server on `port` (one request per connection) for the tests'
/// fake peers: `respond(n, request line, headers, body)` gives the status line's
/// code and reason and a JSON body. What it got is kept, the request line as the
/// pseudo-header `:request`.
pub fn serve(
    port: u16,
    respond: impl Fn(usize, &str, &[(String, String)], &str) -> (String, String) + Send + 'static,
) -> Posts {
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
            let request = head.lines().next().unwrap_or_default().to_string();
            let mut headers: Vec<(String, String)> = head
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
            let body = String::from_utf8_lossy(&buf[body_start.min(buf.len())..]).to_string();
            let (status, reply) = respond(n, &request, &headers, &body);
            headers.push((":request".into(), request));
            g2.lock().unwrap().push((headers, body));
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    got
}

/// One HTTP request with `headers` (name, value) to the gateway; (status, body).
pub fn request(
    g: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    status_and_body(&String::from_utf8_lossy(&out))
}

/// What the CRM got so far, each post's signature checked against `secret`: (its
/// `X-Omnigate-Event`, its body as JSON).
pub fn signed_posts(posts: &Posts, secret: &str) -> Vec<(String, serde_json::Value)> {
    let got = posts.lock().unwrap().clone();
    got.iter()
        .map(|(h, body)| {
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
            (
                header("x-omnigate-event"),
                serde_json::from_str(body).unwrap(),
            )
        })
        .collect()
}

/// An agent's desktop socket, as tests drive it: the agent WebSocket.
pub type AgentSocket =
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Logs `name` in through the API and opens their desktop's WebSocket (the token in
/// its first frame; reads time out after 60 s): (session token, socket).
pub fn agent_socket(g: &Gateway, name: &str, password: &str) -> (String, AgentSocket) {
    let (code, body) = g.post(
        "/api/agent/login",
        None,
        &serde_json::json!({"name": name, "password": password}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    let mut ws = tungstenite::connect(format!("ws://127.0.0.1:{}/api/agent/ws", g.http))
        .unwrap()
        .0;
    ws.send(tungstenite::Message::text(
        serde_json::json!({"type": "auth", "token": token}).to_string(),
    ))
    .unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    // The desk's state comes first once the socket is the agent's: what happens
    // after it (an offer) comes as its own push, not inside a snapshot.
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t))
                if serde_json::from_str::<serde_json::Value>(&t)
                    .is_ok_and(|v| v["type"] == "state") =>
            {
                break
            }
            Ok(_) => {}
            Err(e) => panic!("{name}'s desktop socket before its state: {e}\n{}", g.log()),
        }
    }
    (token, ws)
}
