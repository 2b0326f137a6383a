//! The open channel API end to end, through its reference connector
//! (`examples/terminal_channel.rs`, the program itself): signed batches refused when
//! unsigned, stale, malformed or for no such account, with nothing stored; a line
//! typed in the connector reaches Bob (his agent WebSocket) as Ada's, on her record;
//! a re-sent event counts once; Bob's reply is a signed callback, retried after the
//! connector's proxy answers 500, printed by the connector, which reports it
//! `delivered`, as Bob's desktop then shows; `omnigate channel test` signs a sample
//! that the gateway takes.

use crate::channels::{customer_messages, json, next, on_duty};
use crate::harness::*;
use omnigate::channels::signature::sign_open;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SECRET: &str = "shop-secret-0123456789";

/// The reference connector, as `cargo test --all-targets` built it (beside this test
/// binary: `target/<profile>/examples/terminal_channel-<hash>`).
fn connector_program() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let examples = deps.parent().unwrap().parent().unwrap().join("examples");
    let mut found: Vec<_> = std::fs::read_dir(&examples)
        .unwrap_or_else(|e| panic!("{}: {e}", examples.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("terminal_channel-") && !name.contains('.')
        })
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop().unwrap_or_else(|| {
        panic!(
            "the reference connector is not built in {} (cargo test --all-targets builds it)",
            examples.display()
        )
    })
}

/// The connector running, its stdout lines arriving on the receiver.
struct Connector {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Connector {
    fn say(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line starting with `prefix` (others kept in `seen`).
    fn wait(&mut self, prefix: &str, g: &Gateway) -> String {
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "the connector never printed {prefix:?}; it printed {:?}\n{}",
                        self.seen,
                        g.log()
                    )
                });
            self.seen.push(l.clone());
            if l.starts_with(prefix) {
                return l;
            }
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post_events(
    g: &Gateway,
    account: &str,
    ts: u64,
    body: &str,
    sig: Option<&str>,
) -> (u16, String) {
    let good = sign_open(SECRET, ts, body.as_bytes());
    let ts = ts.to_string();
    let mut h = vec![
        ("Content-Type", "application/json"),
        ("X-Omnigate-Timestamp", ts.as_str()),
    ];
    let s = sig.unwrap_or(&good);
    if !s.is_empty() {
        h.push(("X-Omnigate-Signature", s));
    }
    request(
        g,
        "POST",
        &format!("/api/channels/{account}/events"),
        &h,
        body.as_bytes(),
    )
}

/// A one-shot HTTP/1.1 request to `port` with `headers`; (status line, body).
fn forward(port: u16, request: &str, headers: &[(String, String)], body: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{request}\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        if k.starts_with("x-omnigate-") || k == "content-type" || k == "content-length" {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    let status = out
        .lines()
        .next()
        .and_then(|l| l.split_once(' '))
        .map(|(_, s)| s.trim().to_string())
        .unwrap_or_default();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_connector_brings_a_customer_and_takes_the_agents_reply() {
    let base = 25700;
    let (proxy_port, connector_port) = (base + 50, base + 60);
    // Between the gateway and the connector: the first callback fails with 500.
    let proxied = serve(proxy_port, move |n, request, headers, body| {
        if n == 0 {
            (
                "500 Internal Server Error".into(),
                r#"{"error": "restarting"}"#.into(),
            )
        } else if n == 2 {
            // The second reply's first callback: refused for good (a 4xx).
            (
                "422 Unprocessable Entity".into(),
                r#"{"error": "the customer's app is offline"}"#.into(),
            )
        } else {
            forward(connector_port, request, headers, body)
        }
    });
    let mut g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!(
            "[[channel]]\nname = \"shop\"\nkind = \"open\"\nqueue = \"support\"\nsecret = \"{SECRET}\"\ncallback_url = \"http://127.0.0.1:{proxy_port}/omnigate\"\n"
        ),
    );
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let now = omnigate::clock::unix_secs();

    // Refused before anything is read or stored.
    let one = |id: &str, text: &str| {
        serde_json::json!({"events": [{"id": id, "type": "message", "thread": "t-1",
            "from": {"phone": "+1 555 123 4567"}, "text": text}]})
        .to_string()
    };
    let hello = one("e-1", "Hello from the shop app");
    let (code, body) = post_events(&g, "shop", now, &hello, Some(""));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("missing X-Omnigate-Signature"), "{body}");
    let (code, body) = post_events(&g, "shop", now - 600, &hello, None);
    assert_eq!(code, 401, "a stale (replayed) request: {body}");
    assert!(body.contains("away from our clock"), "{body}");
    let (code, body) = post_events(
        &g,
        "shop",
        now,
        &hello.replace("Hello", "Hullo"),
        Some(&sign_open(SECRET, now, hello.as_bytes())),
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");
    let (code, body) = post_events(&g, "shop", now, r#"{"event": []}"#, None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("missing field `events`"), "{body}");
    assert_eq!(post_events(&g, "nope", now, &hello, None).0, 404);
    let (code, body) = post_events(&g, "shop", now, &"x".repeat(1024 * 1024 + 1), None);
    assert_eq!(code, 413, "{body}");
    let (code, body) = g.get_auth("/api/interactions?limit=5", "test-token");
    assert_eq!(
        (code, json(&body)),
        (200, serde_json::json!([])),
        "nothing stored"
    );

    // The connector: Ada types a line.
    let mut child = Command::new(connector_program())
        .args([
            "--gateway",
            &format!("http://127.0.0.1:{}", g.http),
            "--account",
            "shop",
            "--secret",
            SECRET,
            "--listen",
            &format!("127.0.0.1:{connector_port}"),
            "--phone",
            "+15551234567",
            "--name",
            "Ada L.",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the reference connector");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut c = Connector {
        child,
        lines,
        seen: Vec::new(),
    };
    c.wait("ready ", &g);
    c.say("Where is my order 1234?");
    let posted = c.wait("posted ", &g);
    assert!(posted.contains(r#""result":"stored""#), "{posted}");

    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["channel"], "api", "{offer}");
    assert_eq!(offer["customer"], 1, "Ada's record, by her number: {offer}");
    assert_eq!(offer["details"]["account"], "shop", "{offer}");
    let id = offer["interaction"].as_str().unwrap().to_string();

    // A batch of the connector's own: a message on the same thread, sent twice (once
    // as a replay of the very same request), a typing event and a bad one.
    let batch = serde_json::json!({"events": [
        {"id": "e-2", "type": "message", "thread": "terminal-15551234567",
         "from": {"phone": "+15551234567"}, "text": "It is a blue lamp",
         "attachments": [{"url": "https://cdn.example.com/lamp.png", "name": "lamp.png"}]},
        {"id": "e-3", "type": "typing", "thread": "terminal-15551234567", "on": true},
        {"id": "e-4", "type": "status", "delivery": "nobody", "status": "read"},
        {"id": "e-5", "type": "poke"}
    ]})
    .to_string();
    for _ in 0..2 {
        let (code, body) = post_events(&g, "shop", now, &batch, None);
        assert_eq!(code, 200, "{body}");
        let r = json(&body)["results"].clone();
        assert_eq!(r[0]["result"], "stored", "{body}");
        assert_eq!(r[0]["seq"], 2, "{body}");
        assert_eq!(r[1]["result"], "shown", "{body}");
        assert!(
            r[2]["error"].as_str().unwrap().contains("no delivery"),
            "{body}"
        );
        assert!(
            r[3]["error"].as_str().unwrap().contains("\"poke\""),
            "{body}"
        );
    }
    assert_eq!(
        customer_messages(&g, &id),
        [
            "Where is my order 1234?",
            "It is a blue lamp\n[attachment lamp.png] https://cdn.example.com/lamp.png"
        ],
        "each event once"
    );

    // Bob takes it and answers: the callback fails once, then reaches the connector.
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "Your lamp ships today."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let seq = json(&body)["seq"].as_u64().unwrap();
    let reply = c.wait("reply ", &g);
    let delivery = format!("{id}-{seq}");
    assert!(
        reply.starts_with(&format!("reply {delivery} "))
            && reply.ends_with(": Your lamp ships today."),
        "{reply}"
    );
    let reported = c.wait("reported ", &g);
    assert!(reported.contains(r#""result":"applied""#), "{reported}");
    // Both callbacks signed and the same delivery (the retry is the same message).
    let calls = proxied.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "one 500, one retry: {calls:?}");
    for (h, b) in &calls {
        let header = |k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let ts: u64 = header("x-omnigate-timestamp").parse().unwrap();
        assert_eq!(
            header("x-omnigate-signature"),
            sign_open(SECRET, ts, b.as_bytes())
        );
        assert_eq!(json(b)["delivery"], delivery.as_str());
        assert_eq!(json(b)["thread"], "terminal-15551234567");
    }
    // Bob's desktop: delivered.
    loop {
        let d = next(&g, &mut ws, "delivery");
        assert_eq!(d["seq"], seq, "{d}");
        assert_ne!(d["status"], "failed", "{d}");
        if d["status"] == "delivered" {
            break;
        }
    }
    // A reply the connector refuses (4xx) fails with its reason, at once; Bob sends
    // it again, the same delivery, and it goes.
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "Tracking: ZX-9."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let seq2 = json(&body)["seq"].as_u64().unwrap();
    let failed = loop {
        let d = next(&g, &mut ws, "delivery");
        if d["seq"] == seq2 && d["status"] == "failed" {
            break d;
        }
    };
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("422: the customer's app is offline"),
        "{failed}"
    );
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/retry"),
        Some(&bob),
        &format!(r#"{{"seq": {seq}}}"#),
    );
    assert_eq!(code, 409, "only a failed message goes again: {body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/retry"),
        Some(&bob),
        &format!(r#"{{"seq": {seq2}}}"#),
    );
    assert_eq!(code, 202, "{body}");
    let reply2 = c.wait("reply ", &g);
    assert!(
        reply2.starts_with(&format!("reply {id}-{seq2} ")) && reply2.ends_with(": Tracking: ZX-9."),
        "{reply2}"
    );
    loop {
        let d = next(&g, &mut ws, "delivery");
        if d["seq"] == seq2 && d["status"] == "delivered" {
            break;
        }
    }

    // On record: the message is delivered (a reconnecting desktop reads it so).
    let (code, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert_eq!(code, 200, "{body}");
    let timeline = json(&body)["timeline"].clone();
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message" && e["data"]["text"] == "Your lamp ships today."),
        "{timeline}"
    );

    // `omnigate channel test` signs a sample the gateway takes.
    let out = Command::new(env!("CARGO_BIN_EXE_omnigate"))
        .args(["channel", "test", "shop", "--config"])
        .arg(g.dir.path().join("omnigate.toml"))
        .args(["--gateway", &format!("http://127.0.0.1:{}", g.http)])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("X-Omnigate-Signature: sha256="), "{shown}");
    assert!(
        shown.contains("The gateway answered 200") && shown.contains(r#""result":"stored""#),
        "{shown}"
    );
    drop(c);

    // Accounts through the admin API: listed without their secrets, added, kept
    // across a crash, removed; the config file's are read-only.
    let admin = |g: &Gateway, method: &str, path: &str, body: &str| {
        request(
            g,
            method,
            path,
            &[
                ("Authorization", "Bearer test-token"),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let (code, body) = admin(&g, "GET", "/api/channels", "");
    assert_eq!(code, 200, "{body}");
    let shop = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "shop")
        .cloned()
        .unwrap();
    assert_eq!(
        (shop["secret"].clone(), shop["source"].clone()),
        (true.into(), "config".into()),
        "{shop}"
    );
    assert!(!body.contains(SECRET), "no secret shown: {body}");
    assert_eq!(admin(&g, "GET", "/api/channels", "").0, 200);
    assert_eq!(request(&g, "GET", "/api/channels", &[], b"").0, 401);
    let app = r#"{"kind": "open", "queue": "support", "secret": "app2-secret-0123456789"}"#;
    let (code, body) = admin(&g, "PUT", "/api/channels/shop", app);
    assert_eq!(code, 409, "{body}");
    let (code, body) = admin(
        &g,
        "PUT",
        "/api/channels/app2",
        &app.replace("app2-secret-0123456789", "short"),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("at least 16 characters"), "{body}");
    let (code, body) = admin(
        &g,
        "PUT",
        "/api/channels/app2",
        &app.replace("support", "nowhere"),
    );
    assert_eq!(code, 422, "{body}");
    let (code, body) = admin(&g, "PUT", "/api/channels/app2", r#"{"kind": "fax"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, body) = admin(&g, "PUT", "/api/channels/app2", "[1]");
    assert_eq!(code, 400, "not an object: {body}");
    assert_eq!(admin(&g, "PUT", "/api/channels/app2", app).0, 201);
    assert_eq!(admin(&g, "PUT", "/api/channels/app2", app).0, 200);
    g.crash_and_restart();
    let msg = |g: &Gateway, ts: u64| {
        let b = serde_json::json!({"events": [{"id": "a-1", "type": "message", "thread": "x",
            "from": {"id": "u1"}, "text": "hi from app2"}]})
        .to_string();
        let sig = sign_open("app2-secret-0123456789", ts, b.as_bytes());
        let ts = ts.to_string();
        request(
            g,
            "POST",
            "/api/channels/app2/events",
            &[
                ("X-Omnigate-Timestamp", &ts),
                ("X-Omnigate-Signature", &sig),
            ],
            b.as_bytes(),
        )
    };
    let (code, body) = msg(&g, omnigate::clock::unix_secs());
    assert_eq!(code, 200, "kept across the crash: {body}");
    assert!(body.contains("stored"), "{body}");
    assert_eq!(admin(&g, "DELETE", "/api/channels/app2", "").0, 204);
    assert_eq!(admin(&g, "DELETE", "/api/channels/app2", "").0, 404);
    assert_eq!(admin(&g, "DELETE", "/api/channels/shop", "").0, 409);
    assert_eq!(msg(&g, omnigate::clock::unix_secs()).0, 404);
}
