//! What an attacker tried (issue 14), against the real binary over real sockets:
//! replayed digest credentials, forged failures, malformed requests.

use crate::harness::*;
use omnigate::sip::auth::answer_challenge;
use std::net::UdpSocket;
use std::time::Duration;

/// Sends `req` and returns the first final (or the only) answer within `wait`.
fn ask(sock: &UdpSocket, to: &str, req: &str, wait: Duration) -> Vec<String> {
    sock.send_to(req.as_bytes(), to).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    sock.set_read_timeout(Some(wait)).unwrap();
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let a = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = !a.starts_with("SIP/2.0 1");
        got.push(a);
        if done {
            break;
        }
    }
    got
}

fn status(a: &[String]) -> Vec<&str> {
    a.iter().map(|m| m.lines().next().unwrap_or("")).collect()
}

fn header<'a>(m: &'a str, name: &str) -> &'a str {
    m.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {m}"))
}

fn register(port: u16, gw: u16, cseq: u32, auth: &str) -> String {
    format!("REGISTER sip:127.0.0.1:{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKreg{port}x{cseq}\r\nFrom: <sip:1001@127.0.0.1>;tag=r{port}\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: reg{port}@t\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n")
}

fn invite(port: u16, gw: u16, n: u32, auth: &str) -> String {
    format!("INVITE sip:1002@127.0.0.1:{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKinv{port}x{n}\r\nFrom: <sip:1001@127.0.0.1>;tag=i{port}x{n}\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: inv{port}x{n}@t\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n")
}

#[test]
fn sniffed_credentials_replayed_from_elsewhere_get_a_fresh_challenge() {
    let g = Gateway::start(25000, "demo = true", "", "");
    let gw = format!("127.0.0.1:{}", g.sip);
    let phone = UdpSocket::bind("127.0.0.1:25101").unwrap();
    let attacker = UdpSocket::bind("127.0.0.7:25102").unwrap();
    let wait = Duration::from_secs(3);

    // The phone registers: one MD5 challenge, answered.
    let ch = ask(&phone, &gw, &register(25101, g.sip, 1, ""), wait);
    assert_eq!(status(&ch), ["SIP/2.0 401 Unauthorized"]);
    assert_eq!(ch[0].matches("WWW-Authenticate").count(), 1, "{}", ch[0]);
    let www = header(&ch[0], "WWW-Authenticate");
    assert!(www.contains("algorithm=MD5"), "{www}");
    let uri = format!("sip:127.0.0.1:{}", g.sip);
    let a = answer_challenge(www, "REGISTER", &uri, "1001", "demo1001", "c1", 1).unwrap();
    let good = register(25101, g.sip, 2, &format!("Authorization: {a}\r\n"));
    assert_eq!(status(&ask(&phone, &gw, &good, wait)), ["SIP/2.0 200 OK"]);
    g.wait_metric("omnigate_sip_registrations", 1.0);

    // Replayed from another address (with a new CSeq, or it would be a merged
    // request): a fresh challenge, no binding.
    let replay = good
        .replace("127.0.0.1:25101", "127.0.0.7:25102")
        .replace("CSeq: 2 ", "CSeq: 3 ");
    let r = ask(&attacker, &gw, &replay, wait);
    assert_eq!(status(&r), ["SIP/2.0 401 Unauthorized"], "{r:?}");
    assert!(!r[0].contains("stale=true"));
    // Replayed from the phone's own address: the nonce-count is used, stale.
    let again = good
        .replace("z9hG4bKreg25101x2", "z9hG4bKreg25101x4")
        .replace("CSeq: 2 ", "CSeq: 4 ");
    let r = ask(&phone, &gw, &again, wait);
    assert_eq!(status(&r), ["SIP/2.0 401 Unauthorized"], "{r:?}");
    assert!(r[0].contains("stale=true"), "{}", r[0]);

    // A call from the registered phone: challenged (407, statelessly, without a 100
    // first), answered, placed.
    let r = ask(&phone, &gw, &invite(25101, g.sip, 1, ""), wait);
    assert_eq!(
        status(&r),
        ["SIP/2.0 407 Proxy Authentication Required"],
        "{r:?}"
    );
    let pa = header(&r[0], "Proxy-Authenticate");
    let iuri = format!("sip:1002@127.0.0.1:{}", g.sip);
    let a = answer_challenge(pa, "INVITE", &iuri, "1001", "demo1001", "c2", 1).unwrap();
    let authed = invite(25101, g.sip, 2, &format!("Proxy-Authorization: {a}\r\n"));
    phone.send_to(authed.as_bytes(), &gw).unwrap();
    let mut buf = [0u8; 4096];
    phone.set_read_timeout(Some(wait)).unwrap();
    let (n, _) = phone.recv_from(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 100 Trying"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    wait_for("the phone's call", Duration::from_secs(5), || {
        g.metric("omnigate_calls_total") == Some(1.0)
    });
    // The same INVITE credentials on a new call from another address (toll fraud):
    // challenged again, and no call.
    let fraud = invite(25102, g.sip, 3, &format!("Proxy-Authorization: {a}\r\n"))
        .replace("127.0.0.1:25102", "127.0.0.7:25102");
    let r = ask(&attacker, &gw, &fraud, wait);
    assert_eq!(
        status(&r),
        ["SIP/2.0 407 Proxy Authentication Required"],
        "{r:?}"
    );
    assert_eq!(g.metric("omnigate_calls_total"), Some(1.0));
    // Nothing of the refusals is kept: no transaction waits on the attacker.
    assert!(!g.log().contains("panicked"));
}

#[test]
fn forged_and_guessed_failures_do_not_lock_the_phone_out() {
    let g = Gateway::start(25200, "demo = true", "", "");
    let gw = format!("127.0.0.1:{}", g.sip);
    let phone = UdpSocket::bind("127.0.0.1:25301").unwrap();
    let guesser = UdpSocket::bind("127.0.0.9:25302").unwrap();
    let wait = Duration::from_secs(3);
    // 30 "failures" in the phone's name, with a nonce it never received.
    let forged = r#"Authorization: Digest username="1001", realm="omnigate", nonce="f4240.1.00000000000000000000000000000000", uri="sip:x", response="00000000000000000000000000000000", algorithm=MD5, qop=auth, nc=00000001, cnonce="x""#;
    for i in 0..30 {
        let r = ask(
            &phone,
            &gw,
            &register(25301, g.sip, 100 + i, &format!("{forged}\r\n")),
            wait,
        );
        assert_eq!(status(&r), ["SIP/2.0 401 Unauthorized"], "{r:?}");
    }
    // 15 wrong guesses for 1001 from another address, each to a nonce it was given:
    // ten 403s, then that address's answers are delayed (a second, then two...).
    let mut codes = Vec::new();
    for i in 0..12 {
        let ch = ask(
            &guesser,
            &gw,
            &register(25302, g.sip, 200 + 2 * i, "").replace("127.0.0.1:25302", "127.0.0.9:25302"),
            wait,
        );
        let www = header(&ch[0], "WWW-Authenticate");
        let uri = format!("sip:127.0.0.1:{}", g.sip);
        let a = answer_challenge(www, "REGISTER", &uri, "1001", "guess", "g", 1).unwrap();
        let t = omnigate::clock::now();
        let r = ask(
            &guesser,
            &gw,
            &register(
                25302,
                g.sip,
                201 + 2 * i,
                &format!("Authorization: {a}\r\n"),
            )
            .replace("127.0.0.1:25302", "127.0.0.9:25302"),
            wait,
        );
        codes.push((
            status(&r).concat(),
            t.elapsed() >= Duration::from_millis(900),
        ));
    }
    assert!(codes[..10]
        .iter()
        .all(|(c, slow)| c == "SIP/2.0 403 Forbidden" && !slow));
    assert!(
        codes[10..]
            .iter()
            .all(|(c, slow)| c == "SIP/2.0 403 Forbidden" && *slow),
        "{codes:?}"
    );
    // The phone registers at once, as if nothing had happened.
    let ch = ask(&phone, &gw, &register(25301, g.sip, 500, ""), wait);
    let www = header(&ch[0], "WWW-Authenticate");
    let uri = format!("sip:127.0.0.1:{}", g.sip);
    let a = answer_challenge(www, "REGISTER", &uri, "1001", "demo1001", "p", 1).unwrap();
    let t = omnigate::clock::now();
    let r = ask(
        &phone,
        &gw,
        &register(25301, g.sip, 501, &format!("Authorization: {a}\r\n")),
        wait,
    );
    assert_eq!(status(&r), ["SIP/2.0 200 OK"]);
    assert!(t.elapsed() < Duration::from_millis(900));
}

#[test]
fn duplicate_headers_and_a_missing_contact_get_400_and_nothing_rings() {
    let g = Gateway::start(25400, "demo = true", "answer_after_ms = 0", "");
    let gw = format!("127.0.0.1:{}", g.sip);
    let sock = UdpSocket::bind("127.0.0.1:25501").unwrap();
    let line = |req: &str, name: &str| {
        req.split("\r\n")
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    for (i, (name, why)) in [
        ("Call-ID:", "more than one Call-ID"),
        ("CSeq:", "more than one CSeq"),
        ("From:", "more than one From"),
        ("To:", "more than one To"),
        ("Max-Forwards:", "more than one Max-Forwards"),
        ("Content-Length:", "more than one Content-Length"),
    ]
    .into_iter()
    .enumerate()
    {
        let req = invite(25501, g.sip, 10 + i as u32, "");
        let l = line(&req, name);
        let req = req.replacen(&l, &format!("{l}\r\n{}", l.replace("1001", "9999")), 1);
        let r = ask(&sock, &gw, &req, Duration::from_secs(3));
        assert_eq!(status(&r), [format!("SIP/2.0 400 {why}").as_str()], "{r:?}");
    }
    let req = invite(25501, g.sip, 20, "");
    let req = req.replace(&format!("{}\r\n", line(&req, "Contact:")), "");
    let r = ask(&sock, &gw, &req, Duration::from_secs(3));
    assert_eq!(status(&r), ["SIP/2.0 400 missing Contact"], "{r:?}");
    assert_eq!(g.metric("omnigate_calls_total"), Some(0.0));
}

/// Debian's Kamailio as a record-routing proxy in front of the gateway, in the
/// foreground, killed with the test.
struct Kamailio(std::process::Child, tempfile::TempDir);

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kamailio(listen: u16, gateway: u16) -> Kamailio {
    let bin = "/usr/sbin/kamailio";
    assert!(
        std::path::Path::new(bin).exists(),
        "Kamailio is not installed (Debian package kamailio): run ./scripts/test.sh, which installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
listen=udp:127.0.0.1:{listen}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        xlog("L_INFO", "no route for in-dialog $rm\n");
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    record_route();
    $du = "sip:127.0.0.1:{gateway}";
    t_relay();
}}
"#
    );
    std::fs::write(dir.path().join("k.cfg"), cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
    let child = std::process::Command::new(bin)
        .args(["-f"])
        .arg(dir.path().join("k.cfg"))
        .args(["-DD", "-E", "-Y"])
        .arg(dir.path())
        .arg("-P")
        .arg(dir.path().join("k.pid"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start kamailio");
    let k = Kamailio(child, dir);
    // Ready when it answers OPTIONS (stateless 404 or relayed: any answer).
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ping = format!("OPTIONS sip:127.0.0.1:{listen} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKkping;rport\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:t@127.0.0.1>\r\nCall-ID: kping\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", sock.local_addr().unwrap());
    wait_for("kamailio to answer", Duration::from_secs(15), || {
        !ask(
            &sock,
            &format!("127.0.0.1:{listen}"),
            &ping,
            Duration::from_millis(200),
        )
        .is_empty()
    });
    k
}

#[test]
fn calls_through_a_record_routing_kamailio_end_cleanly_either_way() {
    let g = Gateway::start(
        25600,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 2",
        "",
    );
    let k = kamailio(25610, g.sip);
    let via = "127.0.0.1:25610";
    // The caller hangs up: its ACK and BYE follow the route set the 2xx gave back.
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_rr_caller_hangs_up.xml"),
            "-s",
            "100",
            "-p",
            "25620",
            "-m",
            "1",
            via,
        ],
    );
    assert_sipp_ok(&out, "caller BYE through Kamailio", &g);
    // The gateway hangs up: its BYE goes through Kamailio with the route set.
    let out = sipp(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_rr_gateway_hangs_up.xml"),
            "-s",
            "100",
            "-p",
            "25621",
            "-m",
            "1",
            via,
        ],
    );
    assert_sipp_ok(&out, "gateway BYE through Kamailio", &g);
    wait_for("both calls to end", Duration::from_secs(10), || {
        g.metric("omnigate_calls") == Some(0.0)
    });
    let klog = std::fs::read_to_string(k.1.path().join("kamailio.log")).unwrap_or_default();
    assert!(!klog.contains("no route for in-dialog"), "{klog}");
}

/// Opens a TCP connection to `to` from `from` (an address of 127.0.0.0/8).
fn connect_from(from: [u8; 4], to: u16) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], to)).into())?;
    Ok(s.into())
}

#[test]
fn eleven_hundred_idle_connections_under_1024_descriptors_and_calls_still_complete() {
    // The test itself holds the 1,100 sockets.
    omnigate::server::raise_descriptor_limit();
    let g = Gateway::start_limited(
        25800,
        1024,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 1",
        "",
    );
    g.wait_log("max_connections lowered to fit the descriptor limit");
    // 1,100 connections from 11 addresses that never say anything.
    let mut held = Vec::new();
    for i in 0..1100u32 {
        if let Ok(s) = connect_from([127, 0, 0, 20 + (i % 11) as u8], g.sip) {
            held.push(s);
        }
    }
    let opened = held.len();
    assert!(
        opened > 1024,
        "the test opened only {opened} connections (its own descriptor limit?)"
    );
    // At most half the descriptors (512) are taken; the rest were closed at once.
    wait_for("the connection cap", Duration::from_secs(20), || {
        g.metric("omnigate_sip_connections_refused_total")
            .is_some_and(|n| n >= (opened - 512) as f64)
    });
    assert_eq!(g.metric("omnigate_sip_connections"), Some(512.0));
    // Calls still complete (UDP), twenty of them.
    let out = sipp(
        g.dir.path(),
        &[
            "-sn",
            "uac",
            "-p",
            "25820",
            "-m",
            "20",
            "-r",
            "20",
            "-l",
            "20",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "calls while the connections are held", &g);
    assert!(
        !g.log().contains("cannot accept connections"),
        "the accept loop hit the descriptor limit"
    );
    drop(held);
    wait_for(
        "the held connections to close",
        Duration::from_secs(10),
        || g.metric("omnigate_sip_connections") == Some(0.0),
    );
}

#[test]
fn a_tcp_peer_that_never_reads_is_closed_before_memory_grows() {
    let g = Gateway::start(26000, "demo = true", "", "");
    let rss0 = g.rss_kb();
    let mut s = connect_from([127, 0, 0, 30], g.sip).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // Pipelined OPTIONS, answers never read: about 100 MB of answers asked for.
    let opt = |n: u32| {
        format!("OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.30:9;branch=z9hG4bKnr{n}\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: nr{n}@t\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    };
    let batch: String = (0..1000).map(opt).collect();
    let mut sent = 0usize;
    let mut closed = false;
    for _ in 0..300 {
        use std::io::Write;
        match s.write_all(batch.as_bytes()) {
            Ok(()) => sent += 1000,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "the gateway kept a connection open that read none of {sent} answers"
    );
    wait_for("the connection to be gone", Duration::from_secs(10), || {
        g.metric("omnigate_sip_connections") == Some(0.0)
    });
    let grew = g.rss_kb().saturating_sub(rss0);
    assert!(grew < 64 * 1024, "the gateway grew by {grew} kB");
}

/// A raw GET: the status line and headers (lower-cased), and the body.
fn http_get(port: u16, path: &str, auth: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").unwrap_or((&r, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn pages_forbid_inline_script_and_framing_and_metrics_can_ask_for_a_token() {
    let g = Gateway::start(
        26400,
        "demo = true",
        "",
        "http.metrics_token = \"scrape-me\"\n",
    );
    for path in [
        "/",
        "/agent",
        "/chat",
        "/chat/app.js",
        "/agent/main.js",
        "/agent/work.js",
        "/agent/app.css",
    ] {
        let (head, body) = http_get(g.http, path, None);
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{path}: {head}"
        );
        assert!(head.contains("frame-ancestors 'none'"), "{path}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        if path == "/" || path == "/chat" || path == "/agent" {
            // No inline script or style for the policy to have to allow.
            assert!(
                !body.contains("<script>") && !body.contains("<style>"),
                "{path}"
            );
            assert!(
                !body.contains(" style=\"") && !body.contains(" onclick="),
                "{path}"
            );
        }
    }
    let (head, body) = http_get(g.http, "/", None);
    assert!(
        head.starts_with("http/1.1 200")
            && body.contains("href=\"/agent\"")
            && body.contains("href=\"/chat\"")
    );
    let (head, body) = http_get(g.http, "/metrics", None);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(body.contains("metrics_token"), "{body}");
    let (head, _) = http_get(g.http, "/metrics", Some("wrong"));
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let (head, body) = http_get(g.http, "/metrics", Some("scrape-me"));
    assert!(
        head.starts_with("http/1.1 200") && body.contains("omnigate_up 1"),
        "{head}"
    );
}

#[test]
fn agent_logins_are_throttled_and_a_logout_closes_the_desktop_socket() {
    let g = Gateway::start(26600, "demo = true", "", "");
    let login = |pw: &str| {
        g.post(
            "/api/agent/login",
            None,
            &format!(r#"{{"name": "alice", "password": "{pw}"}}"#),
        )
    };
    for _ in 0..5 {
        let (code, body) = login("guess");
        assert_eq!(code, 401, "{body}");
    }
    // Now even the right password waits (unchecked), with a reason and Retry-After.
    let (code, body) = login("demo-alice");
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("too many failed logins"), "{body}");
    // Bob, from the same address, is not held back by alice's guesser.
    let (code, body) = g.post(
        "/api/agent/login",
        None,
        r#"{"name": "bob", "password": "demo-bob"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // A token in the URL is not taken; the first frame is.
    let (mut old, _) = tungstenite::connect(format!(
        "ws://127.0.0.1:{}/api/agent/ws?token={token}",
        g.http
    ))
    .unwrap();
    old.send(tungstenite::Message::text(r#"{"type": "hello"}"#))
        .unwrap();
    let first = old.read().unwrap().into_text().unwrap().to_string();
    assert!(
        first.contains("unknown or missing session token"),
        "{first}"
    );
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{}/api/agent/ws", g.http)).unwrap();
    ws.send(tungstenite::Message::text(
        serde_json::json!({"type": "auth", "token": token}).to_string(),
    ))
    .unwrap();
    let state = ws.read().unwrap().into_text().unwrap().to_string();
    assert!(state.contains("\"type\":\"state\""), "{state}");
    // Logout: the socket is told and closed, and the token is dead.
    let (code, _) = g.post("/api/agent/logout", Some(&token), "");
    assert_eq!(code, 204);
    let mut told = false;
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => told |= t.contains("logged_out"),
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(told);
    let (code, _) = g.get_auth("/api/agent/me", &token);
    assert_eq!(code, 401);
}

#[test]
fn a_crash_mid_voicemail_is_repaired_and_the_chat_taken_up_at_the_next_start() {
    let dp = crate::ivr::flow_dir();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main\nsteps:\n  vm:\n    voicemail: { prompt: hello, max_length: 60s }\n  bye:\n    hangup:\n",
    )
    .unwrap();
    let mut g = Gateway::start(
        26700,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"main\"\n",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    // A customer chatting...
    let mut cust = crate::centre::ws(&g, "/chat/ws");
    crate::centre::send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Grace Hopper", "address": "grace@example.com"}),
    );
    let w = crate::centre::until(&mut cust, "welcome", crate::centre::ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    // ...and a caller leaving a voicemail, when the node is killed.
    let args = speaker_args(&g, 26790, 26760);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let caller = sipp_spawn(g.dir.path(), &args);
    wait_for(
        "the voicemail to be recording",
        Duration::from_secs(10),
        || {
            std::fs::read_dir(g.path("data/voicemail"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 40_000))
        },
    );
    g.crash_and_restart();
    drop(caller);
    // The voicemail is a playable file on its interaction's timeline; the call is
    // ended as interrupted; the chat is taken up again (open, waiting for its page).
    let vm = std::fs::read_dir(g.path("data/voicemail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .expect("the voicemail file");
    let r = hound::WavReader::open(&vm).expect("a readable WAV after the repair");
    assert!(r.duration() > 8000, "{} samples", r.duration());
    let (_, body) = g.get_auth("/api/interactions?limit=10", "test-token");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut seen = (false, false);
    for i in list.as_array().unwrap() {
        let id = i["id"].as_str().unwrap();
        let (_, one) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
        let one: serde_json::Value = serde_json::from_str(&one).unwrap();
        let kinds = timeline_kinds(&one);
        if id == chat {
            assert!(one["ended_at"].is_null(), "{one}");
            assert!(!kinds.contains(&"interrupted"), "{one}");
            seen.0 = true;
        } else {
            assert_eq!(one["outcome"], "interrupted", "{one}");
            assert!(kinds.contains(&"voicemail"), "{one}");
            assert!(kinds.contains(&"interrupted"), "{one}");
            seen.1 = true;
        }
    }
    assert_eq!(seen, (true, true), "{list}");
}

#[test]
fn chat_floods_are_capped_and_a_customer_who_left_is_closed_as_abandoned() {
    use crate::centre::{send, ty, until, ws};
    let g = Gateway::start(
        26900,
        "demo = true",
        "",
        "[chat]\nabandon_after_secs = 1\nstarts_per_minute = 3\n",
    );
    let start = |n: u32| {
        let mut c = ws(&g, "/chat/ws");
        send(
            &mut c,
            serde_json::json!({"type": "start", "name": format!("Flood {n}"), "address": format!("flood{n}@example.com")}),
        );
        c
    };
    let mut chats = Vec::new();
    for n in 0..3 {
        let mut c = start(n);
        let w = until(&mut c, "welcome", ty("welcome"));
        chats.push((w.last().unwrap()["chat"].as_str().unwrap().to_string(), c));
    }
    // The fourth from the same address in the same minute is refused, with the reason.
    let mut fourth = start(3);
    let e = until(&mut fourth, "a refusal", ty("error"));
    let reason = e.last().unwrap()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("too many new chats from your address"),
        "{reason}"
    );
    // A customer who floods messages is slowed down; nothing is lost that was acked.
    let (_, c) = &mut chats[1];
    for i in 0..15 {
        send(
            c,
            serde_json::json!({"type": "message", "id": format!("m{i}"), "text": format!("hello {i}")}),
        );
    }
    let seen = until(c, "a slow-down", |v| {
        v["type"] == "error"
            && v["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("slow down"))
    });
    let acks = seen.iter().filter(|v| v["type"] == "ack").count();
    assert!(acks <= 10, "{seen:?}");
    // The first customer closes the page: after abandon_after_secs the chat is closed
    // as abandoned, on its timeline.
    let (first, c) = chats.remove(0);
    drop(c);
    wait_for(
        "the chat to be closed as abandoned",
        Duration::from_secs(10),
        || {
            let (_, one) = g.get_auth(&format!("/api/interactions/{first}"), "test-token");
            let one: serde_json::Value = serde_json::from_str(&one).unwrap_or_default();
            one["outcome"] == "abandoned" && timeline_kinds(&one).contains(&"abandoned")
        },
    );
    // What flood chats typed made no customer records (nobody verified them).
    for (id, _) in &chats {
        let (_, one) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
        let one: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert!(one["customer_id"].is_null(), "{one}");
    }
}

#[test]
fn the_api_and_pages_are_served_over_https_when_asked() {
    let g = Gateway::start(
        27000,
        "demo = true",
        "",
        "http.tls_listen = \"127.0.0.1:27010\"\n",
    );
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-D", "-", &format!("https://127.0.0.1:27010{path}")])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let health = curl("/healthz");
    let status = health.lines().next().unwrap_or("");
    assert!(
        status.starts_with("HTTP/") && status.contains(" 200") && health.ends_with("ok\n"),
        "{health}\n{}",
        g.log()
    );
    let page = curl("/agent").to_ascii_lowercase();
    assert!(page.contains("content-security-policy:"), "{page}");
    // The certificate is the node's own (generated on first start), and checks out
    // for localhost against itself as the CA.
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(g.path("cert.pem"))
        .args([
            "--resolve",
            "localhost:27010:127.0.0.1",
            "https://localhost:27010/healthz",
        ])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_panic_in_the_sip_core_costs_one_message_and_the_node_goes_on() {
    let g = Gateway::start(27300, "demo = true", "answer_after_ms = 0", "");
    let gw = format!("127.0.0.1:{}", g.sip);
    let sock = UdpSocket::bind("127.0.0.1:27390").unwrap();
    // A request the (debug-build) core panics on.
    let poison = format!(
        "OPTIONS sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:27390;branch=z9hG4bKpoison\r\nFrom: <sip:x@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        g.sip,
        omnigate::sip::core::INJECTED_PANIC_CALL_ID
    );
    let r = ask(&sock, &gw, &poison, Duration::from_millis(500));
    assert!(r.is_empty(), "the poisoned request is lost: {r:?}");
    // The panic hook symbolises a backtrace first: slow in a debug build on a busy
    // machine (CI once took over 5 s).
    g.wait_log_within(
        "the SIP core failed on a SIP message",
        Duration::from_secs(30),
    );
    assert_eq!(g.metric("omnigate_panics_total"), Some(1.0));
    // Everything else goes on: an OPTIONS is answered, a call completes.
    let ok = poison
        .replace(omnigate::sip::core::INJECTED_PANIC_CALL_ID, "after@t")
        .replace("z9hG4bKpoison", "z9hG4bKafter");
    let r = ask(&sock, &gw, &ok, Duration::from_secs(3));
    assert_eq!(status(&r), ["SIP/2.0 200 OK"], "{r:?}");
    let out = sipp(
        g.dir.path(),
        &[
            "-sn", "uac", "-s", "100", "-m", "1", "-p", "27391", "-mp", "27394", &gw,
        ],
    );
    assert_sipp_ok(&out, "a call after the panic", &g);
}
