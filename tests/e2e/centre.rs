//! The contact centre end to end: two agents on the HTTP API and their WebSockets, a
//! customer on the chat WebSocket, the store read back from the database, and a SIPp
//! call from the customer's number joining the same conversation. The same case runs
//! on the embedded SQLite file and on a real PostgreSQL server.
#![allow(clippy::disallowed_methods)] // real time for real processes

use crate::harness::*;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

pub fn ws(g: &Gateway, path: &str) -> Ws {
    let (s, _) = tungstenite::connect(format!("ws://127.0.0.1:{}{path}", g.http))
        .unwrap_or_else(|e| panic!("WebSocket {path}: {e}\n{}", g.log()));
    if let MaybeTlsStream::Plain(t) = s.get_ref() {
        t.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    s
}

/// An agent's desktop socket, authenticated by its first frame.
pub fn agent_ws(g: &Gateway, token: &str) -> Ws {
    let mut w = ws(g, "/api/agent/ws");
    send(&mut w, serde_json::json!({"type": "auth", "token": token}));
    w
}

pub fn send(w: &mut Ws, v: serde_json::Value) {
    w.send(Message::text(v.to_string())).unwrap();
}

/// Reads frames until one matches (the others are returned too, in order).
pub fn until(
    w: &mut Ws,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let t0 = Instant::now();
    let mut seen = vec![];
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never got {what}; got {seen:#?}"
        );
        match w.read() {
            Ok(Message::Text(t)) => {
                let v = json(&t);
                let hit = f(&v);
                seen.push(v);
                if hit {
                    return seen;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{what}: socket error {e}; got {seen:#?}"),
        }
    }
}

/// A customer's chat page: starts a chat as `name` at `address` and says "My invoice
/// is wrong" (id m1); the socket, the chat's id, its resume token and m1's seq.
pub(crate) fn chat_with_first_message(
    g: &Gateway,
    name: &str,
    address: &str,
) -> (Ws, String, String, u64) {
    let mut cust = ws(g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": name, "address": address}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    let token = w.last().unwrap()["token"].as_str().unwrap().to_string();
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "My invoice is wrong"}),
    );
    let seq = until(&mut cust, "ack of m1", ty("ack")).last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    (cust, chat, token, seq)
}

pub fn ty(t: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["type"] == t
}

pub(crate) fn put(g: &Gateway, path: &str, token: &str, body: &str) -> (u16, String) {
    raw(g, "PUT", path, token, body)
}

pub(crate) fn raw(g: &Gateway, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

/// Logs an agent in (they start Away: agents choose when they take work).
pub(crate) fn log_in(g: &Gateway, name: &str, pw: &str) -> String {
    let (code, body) = g.post(
        "/api/agent/login",
        None,
        &serde_json::json!({"name": name, "password": pw}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    json(&body)["token"].as_str().unwrap().to_string()
}

/// Logs an agent in and makes them Available.
pub(crate) fn login(g: &Gateway, name: &str, pw: &str) -> String {
    let token = log_in(g, name, pw);
    let (code, body) = put(
        g,
        "/api/agent/presence",
        &token,
        r#"{"presence":"available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    token
}

#[test]
fn chat_routed_answered_transferred_closed_and_the_caller_joins_the_same_case() {
    centre_case(23300, (23420, 23430), None);
}

#[test]
fn the_same_on_postgresql() {
    centre_case(23500, (23620, 23630), Some(crate::testpg::fresh_database()));
}

/// The whole case on ports from `base`, SIPp on `sipp` (signalling, media), the store
/// in SQLite (`None`) or at a PostgreSQL URL.
fn centre_case(base: u16, sipp_ports: (u16, u16), database: Option<String>) {
    let dp = tempfile::tempdir().unwrap();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main\nsteps:\n  wait:\n    enqueue: { queue: support, max_wait: 2s }\n    timeout: bye\n  bye:\n    hangup:\n",
    )
    .unwrap();
    // The CRM gets the chat's screen-pop (its first post answered 500, then retried).
    let hooks = crm(base + 5);
    let secret = "crm-shared-secret-for-chats";
    let g = Gateway::start_with_database(
        base,
        database.as_deref().unwrap_or(""),
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = false",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"main\"\n\n[[queue]]\nname = \"support\"\noffer_timeout_secs = 20\nwrap_up_secs = 0\n\n[[agent]]\nname = \"ann\"\npassword = \"ann-secret\"\ndisplay_name = \"Ann\"\nqueues = [\"support\"]\nskills = {{ billing = 7 }}\n\n[chat]\nqueue = \"support\"\ngreeting = \"Welcome!\"\n\n[[webhook]]\nurl = \"http://127.0.0.1:{}/crm\"\nsecret = \"{secret}\"\nevents = [\"chat.offered\", \"chat.connected\"]\n",
            dp.path().display(),
            base + 5
        ),
    );
    g.wait_log("dialplan loaded");
    let admin = "test-token";
    if database.is_none() {
        openapi_matches_the_server(&g);
    }

    // ---- admin: the queue is there; a second agent is made through the API.
    let (code, body) = g.get_auth("/api/queues", admin);
    assert_eq!(code, 200, "{body}");
    assert!(json(&body)
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "support"));
    // A queue added through the API; the same name again is a conflict (409), a
    // queue with a wrong setting is refused as such (422).
    let (code, body) = g.post("/api/queues", Some(admin), r#"{"name":"vip"}"#);
    assert_eq!(code, 201, "{body}");
    let (code, body) = g.post("/api/queues", Some(admin), r#"{"name":"vip"}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("exists"), "{body}");
    let (code, body) = g.post(
        "/api/queues",
        Some(admin),
        r#"{"name":"odd","strategy":"coin_toss"}"#,
    );
    // The strategy is typed: refused where the body is read, with the valid names.
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("longest_idle"), "{body}");
    assert!(body.contains("unknown strategy"), "{body}");
    let ben = serde_json::json!({"name": "ben", "password": "ben-secret", "display_name": "Ben", "queues": ["support"], "skills": {"spanish": 9}});
    let (code, body) = g.post("/api/agents", Some(admin), &ben.to_string());
    assert_eq!(code, 201, "{body}");
    let (code, body) = g.post("/api/agents", Some(admin), &ben.to_string());
    assert_eq!(code, 409, "a second create is refused: {body}");
    let (code, body) = g.post(
        "/api/agents",
        Some(admin),
        r#"{"name":"x","password":"12345678","queues":["nope"]}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("no queue named \\\"nope\\\""), "{body}");
    let (code, body) = g.post("/api/agents", Some("wrong"), &ben.to_string());
    assert_eq!(code, 401, "{body}");
    let (code, body) = put(
        &g,
        "/api/agents/ann",
        admin,
        r#"{"name":"ann","queues":[]}"#,
    );
    assert_eq!(code, 409, "config agents are changed in the file: {body}");
    let (code, body) = g.get_auth("/api/skills", admin);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["spanish"][0]["agent"], "ben", "{body}");

    // ---- agents log in; bad logins are refused with a reason.
    let (code, body) = g.post(
        "/api/agent/login",
        None,
        r#"{"name":"ann","password":"nope-nope"}"#,
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("wrong name or password"), "{body}");
    let (code, _) = g.post("/api/agent/login", None, "not json");
    assert_eq!(code, 400);
    // A first login is Away: nothing is offered until the agent says they are ready.
    let ann = log_in(&g, "ann", "ann-secret");
    let (_, body) = g.get_auth("/api/agent/me", &ann);
    assert_eq!(json(&body)["presence"], "away", "{body}");
    let (code, body) = put(
        &g,
        "/api/agent/presence",
        &ann,
        r#"{"presence":"available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let ben = login(&g, "ben", "ben-secret");
    let (code, body) = put(&g, "/api/agent/presence", &ben, r#"{"presence":"away"}"#);
    assert_eq!(code, 200, "{body}");
    let (code, body) = put(&g, "/api/agent/presence", &ben, r#"{"presence":"asleep"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, _) = g.get_auth("/api/agent/me", "not-a-session");
    assert_eq!(code, 401);
    // Ann's transfer pickers: Ben as he is now, the queues; never herself.
    let (code, body) = g.get_auth("/api/agent/directory", &ann);
    assert_eq!(code, 200, "{body}");
    let dir = json(&body);
    let ben_there = dir["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ben")
        .cloned();
    assert_eq!(ben_there.unwrap()["presence"], "away", "{body}");
    assert!(!body.contains("\"ann\""), "{body}");
    assert!(dir["queues"][0]["name"].is_string(), "{body}");
    // Her service level today: nothing settled yet; a bad `since` says why.
    let (code, body) = g.get_auth("/api/agent/service_level?since=0", &ann);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("within the last 48 hours"), "{body}");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 60_000;
    let (code, body) = g.get_auth(&format!("/api/agent/service_level?since={since}"), &ann);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)[0]["queue"], "support", "{body}");
    assert_eq!(json(&body)[0]["handled"], 0, "{body}");
    let mut ann_ws = agent_ws(&g, &ann);
    let mut ben_ws = agent_ws(&g, &ben);
    let s = until(&mut ann_ws, "ann's state", ty("state"));
    assert_eq!(s.last().unwrap()["presence"], "available", "{s:?}");
    until(&mut ben_ws, "ben's state", ty("state"));

    // ---- a customer opens a chat and writes before anyone answers.
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Grace Hopper", "address": "+1 555 123 0001"}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    let token = w.last().unwrap()["token"].as_str().unwrap().to_string();
    until(&mut cust, "the greeting", |v| v["text"] == "Welcome!");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "My invoice is wrong"}),
    );
    let a = until(&mut cust, "ack of m1", ty("ack"));
    assert_eq!(a.last().unwrap()["seq"], 2);

    // ---- routed to the available agent (ann), who accepts.
    let o = until(&mut ann_ws, "the offer", ty("offer"));
    let offer = o.last().unwrap().clone();
    assert_eq!(offer["interaction"], chat.as_str());
    assert_eq!(offer["channel"], "webchat");
    assert_eq!(offer["queue"], "support");
    // What she typed is not who she is: no record, no case until ann checks.
    assert_eq!(offer["customer"], serde_json::Value::Null, "{offer}");
    assert_eq!(offer["details"]["verified"], false, "{offer}");
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&ben), "");
    assert_eq!(code, 409, "ben was not offered it: {body}");
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(&format!("/api/agent/work/{chat}/verify"), Some(&ben), "");
    assert_eq!(code, 403, "not ben's chat: {body}");
    let t = until(&mut ann_ws, "the transcript", ty("transcript"));
    let tr = &t.last().unwrap()["messages"];
    assert!(
        tr.as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "My invoice is wrong"),
        "{tr}"
    );
    until(&mut cust, "ann joined", |v| {
        v["text"] == "Ann joined the chat."
    });
    // Ann checks who she is; her next requests need no waiting.
    let (code, body) = g.post(&format!("/api/agent/work/{chat}/verify"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    let customer = json(&body)["customer"].as_i64().expect("a customer id");
    let (code, body) = g.get_auth(&format!("/api/agent/customers/{customer}"), &ann);
    assert_eq!(code, 200, "right after verifying: {body}");
    until(&mut ann_ws, "the verified push", |v| {
        v["type"] == "verified" && v["customer"] == customer
    });
    // The CRM's screen-pop: Grace's record and the chat so far, on offer and on connect.
    let t0 = Instant::now();
    let mut posts = signed_posts(&hooks, secret);
    while posts.len() < 3 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        posts = signed_posts(&hooks, secret);
    }
    let mut events: Vec<&str> = posts.iter().map(|(e, _)| e.as_str()).collect();
    events.sort();
    assert_eq!(
        events,
        ["chat.connected", "chat.offered", "chat.offered"],
        "offered (retried after the 500) and connected: {posts:?}"
    );
    for (event, v) in &posts {
        assert_eq!(v["event"], event.as_str(), "{v}");
        assert_eq!(v["interaction"], chat.as_str(), "{v}");
        assert_eq!(
            (&v["channel"], &v["agent"]),
            (&"webchat".into(), &"ann".into()),
            "{v}"
        );
        // Posted before ann verified her: what she typed, marked unverified.
        assert_eq!(v["from"]["name"], "Grace Hopper", "{v}");
        assert_eq!(v["from"]["verified"], false, "{v}");
        assert!(v.get("customer").is_none(), "{v}");
        // The chat so far: at the offer at least the greeting (her message may come
        // after it), at connect her message too.
        let texts: Vec<&str> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        assert_eq!(texts.first(), Some(&"Welcome!"), "{v}");
        if event == "chat.connected" {
            assert!(texts.contains(&"My invoice is wrong"), "{v}");
        }
    }

    // ---- typing both ways, messages both ways.
    send(&mut cust, serde_json::json!({"type": "typing", "on": true}));
    until(&mut ann_ws, "customer typing", |v| {
        v["type"] == "typing" && v["on"] == true
    });
    let (code, _) = g.post(
        &format!("/api/agent/work/{chat}/typing"),
        Some(&ann),
        r#"{"on":true}"#,
    );
    assert_eq!(code, 204);
    until(&mut cust, "agent typing", |v| {
        v["type"] == "typing" && v["on"] == true
    });
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":"Let me check that."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let m = until(&mut cust, "ann's message", |v| v["from"] == "agent");
    let seen = m.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(
        m.last().unwrap()["name"],
        "Ann",
        "the customer knows the agent by her display name"
    );
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":""}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ben),
        r#"{"text":"hi"}"#,
    );
    assert_eq!(code, 403, "not ben's chat: {body}");

    // ---- the customer's connection drops; what was said meanwhile arrives on
    // reconnect, and a message re-sent after a lost ack is stored once.
    drop(cust);
    let (code, _) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":"Found it: a double charge."}"#,
    );
    assert_eq!(code, 201);
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "resume", "chat": chat, "token": "wrong", "after": seen}),
    );
    until(&mut cust, "a refusal", |v| {
        v["type"] == "error" && v["reason"] == "wrong token for this chat"
    });
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "resume", "chat": chat, "token": token, "after": seen}),
    );
    let r = until(&mut cust, "the missed message", |v| {
        v["text"] == "Found it: a double charge."
    });
    assert!(
        r.iter()
            .all(|v| v["type"] != "message" || v["seq"].as_u64().unwrap() > seen),
        "only what was missed: {r:#?}"
    );
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "My invoice is wrong"}),
    );
    let a = until(&mut cust, "m1 acked again", ty("ack"));
    assert_eq!(a.last().unwrap()["seq"], 2, "the same seq: stored once");

    // ---- who may see the customer.
    let (code, body) = g.get_auth(&format!("/api/agent/customers/{customer}"), &ben);
    assert_eq!(code, 403, "ben does not serve Grace: {body}");
    let (code, body) = g.get_auth(&format!("/api/agent/customers/{customer}"), &ann);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["customer"]["name"], "Grace Hopper", "{body}");

    // ---- ann hands the chat to ben.
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/transfer"),
        Some(&ann),
        r#"{"agent":"ben"}"#,
    );
    assert_eq!(code, 409, "ben is away: {body}");
    let (code, _) = put(
        &g,
        "/api/agent/presence",
        &ben,
        r#"{"presence":"available"}"#,
    );
    assert_eq!(code, 200);
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/transfer"),
        Some(&ann),
        r#"{"agent":"ben"}"#,
    );
    assert_eq!(code, 200, "{body}");
    until(&mut ann_ws, "the chat leaves ann", |v| {
        v["type"] == "ended" && v["interaction"] == chat.as_str()
    });
    until(&mut ben_ws, "the offer to ben", |v| {
        v["type"] == "offer" && v["interaction"] == chat.as_str()
    });
    until(&mut cust, "transfer notice", |v| {
        v["text"] == "You are being transferred to a colleague."
    });
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&ben), "");
    assert_eq!(code, 200, "{body}");
    until(&mut ben_ws, "the transcript for ben", |v| {
        v["type"] == "transcript" && v["messages"].as_array().unwrap().len() >= 5
    });
    until(&mut cust, "ben joined", |v| {
        v["text"] == "Ben joined the chat."
    });
    let (code, _) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":"still here?"}"#,
    );
    assert_eq!(code, 403, "ann no longer holds it");
    let (code, _) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ben),
        r#"{"text":"Refund issued."}"#,
    );
    assert_eq!(code, 201);
    until(&mut cust, "ben's message", |v| {
        v["text"] == "Refund issued."
    });

    // ---- ben closes, wraps up (case left open), adds a note.
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/wrap_up"),
        Some(&ben),
        r#"{"disposition":"refund"}"#,
    );
    assert_eq!(code, 409, "still going on: {body}");
    let (code, _) = g.post(&format!("/api/agent/work/{chat}/end"), Some(&ben), "");
    assert_eq!(code, 200);
    until(&mut cust, "closed", |v| {
        v["type"] == "closed" && v["by"] == "agent"
    });
    until(&mut ben_ws, "the chat leaves ben", |v| v["type"] == "ended");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/wrap_up"),
        Some(&ben),
        r#"{"disposition":"refund issued","resolved":false}"#,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = g.post(
        &format!("/api/agent/work/{chat}/notes"),
        Some(&ben),
        r#"{"text":"Customer may call back about the card."}"#,
    );
    assert_eq!(code, 201);
    // After the transfer Ann may still note her part (and wrap it up), but no longer
    // write in the chat.
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/notes"),
        Some(&ann),
        r#"{"text":"Handed to Ben for the card question."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":"x"}"#,
    );
    assert!(
        (400..500).contains(&code),
        "ann's chat ended with the transfer: {code} {body}"
    );
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m9", "text": "one more thing"}),
    );
    until(&mut cust, "refused after close", |v| {
        v["type"] == "error" && v["id"] == "m9"
    });

    // ---- the customer calls from the same number: the call joins the same case.
    let args = speaker_args(&g, sipp_ports.0, sipp_ports.1);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sipp(g.dir.path(), &args);
    assert_sipp_ok(&out, "the customer calling", &g);

    // ---- what the database holds.
    let db = g.path("data/data/omnigate.db");
    let db = if db.exists() {
        db
    } else {
        g.path("data/omnigate.db")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = match &database {
            None => omnigate::store::Store::open(&db).await.unwrap(),
            Some(url) => omnigate::store::Store::connect(url, &db).await.unwrap(),
        };
        assert_eq!(
            store.backend(),
            if database.is_some() {
                "postgres"
            } else {
                "sqlite"
            }
        );
        assert_eq!(
            db.exists(),
            database.is_none(),
            "an SQLite file exactly when the store is SQLite"
        );
        let i = store.interaction(&chat).await.unwrap().unwrap();
        assert_eq!(i.kind, "webchat");
        assert_eq!(i.agent.as_deref(), Some("ben"));
        assert_eq!(i.disposition.as_deref(), Some("refund issued"));
        assert_eq!(i.queue.as_deref(), Some("support"));
        assert!(i.answered_at.is_some() && i.ended_at.is_some(), "{i:?}");
        let conv = i.conversation_id.expect("in a conversation");
        let tl = store.conversation_timeline(conv).await.unwrap();
        let steps: Vec<String> = tl
            .iter()
            .filter(|e| e.interaction == chat)
            .map(|e| (&e.kind, &e.data))
            .map(|(k, d)| match k.as_str() {
                "message" => format!(
                    "message {}: {}",
                    d["from"].as_str().unwrap(),
                    d["text"].as_str().unwrap()
                ),
                "offered" | "assigned" | "verified" => {
                    format!("{k} {}", d["agent"].as_str().unwrap())
                }
                "transferred" => format!(
                    "transferred {} -> {}",
                    d["from"].as_str().unwrap(),
                    d["to"].as_str().unwrap()
                ),
                "closed" => format!("closed by {}", d["by"].as_str().unwrap()),
                "wrapped up" => format!("wrapped up {}", d["disposition"].as_str().unwrap()),
                "note" => format!("note {}", d["agent"].as_str().unwrap()),
                k => k.to_string(),
            })
            .collect();
        assert_eq!(
            steps,
            [
                "interaction started",
                "queued",
                // Ann was free: offered at once, before the customer wrote.
                "offered ann",
                "message customer: My invoice is wrong",
                "assigned ann",
                "verified ann",
                "message agent: Let me check that.",
                "message agent: Found it: a double charge.",
                "transferred ann -> ben",
                "offered ben",
                "assigned ben",
                "message agent: Refund issued.",
                "closed by agent",
                "interaction ended",
                "wrapped up refund issued",
                "note ben",
                "note ann",
            ],
            "{tl:#?}"
        );
        // The call: same customer, same open conversation.
        let calls: Vec<_> = store
            .recent_interactions(10)
            .await
            .unwrap()
            .into_iter()
            .filter(|x| x.kind == "voice")
            .collect();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].customer_id, Some(customer));
        assert_eq!(
            calls[0].conversation_id,
            Some(conv),
            "the call joined the chat's case"
        );
        assert_eq!(calls[0].queue.as_deref(), Some("support"));
    });
}

/// Every path and method in `/api/openapi.json` is served (no "no such endpoint", no
/// 405), and every one that declares bearer security refuses a request without a token
/// or with a wrong one (401).
fn openapi_matches_the_server(g: &Gateway) {
    let (code, body) = raw(g, "GET", "/api/openapi.json", "", "");
    assert_eq!(code, 200, "{body}");
    let doc = json(&body);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{}", paths.len());
    let mut checked = 0;
    for (path, ops) in paths {
        let id = if path.contains("customers") {
            "999999"
        } else {
            "no-such-id"
        };
        let concrete = path.replace("{id}", id).replace("{name}", "no-such-agent");
        for (method, op) in ops.as_object().unwrap() {
            let m = method.to_uppercase();
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x.get("bearer").is_some()));
            for token in ["", "wrong-token"] {
                let (code, body) = raw(g, &m, &concrete, token, "{}");
                assert!(
                    !(code == 404 && body.contains("no such endpoint")) && code != 405,
                    "{m} {path} is documented but not served: {code} {body}"
                );
                if secured {
                    assert_eq!(code, 401, "{m} {path} without a valid token: {body}");
                    assert!(body.contains("error"), "401 without a reason: {body}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 24, "{checked} operations checked");
    // And an undocumented path is not served.
    let (code, body) = raw(g, "GET", "/api/nothing-here", "test-token", "");
    assert_eq!(code, 404, "{body}");
}

/// A caller queued by the IVR is offered to the logged-in agent on their WebSocket with
/// what the IVR learned; the agent accepts, their phone (SIPp registered as their
/// extension) rings and answers, caller and agent are bridged; the store shows the call
/// answered by the agent, and the agent's desktop hears that it ended.
#[test]
fn a_queued_caller_is_offered_to_the_agent_whose_phone_rings_and_answers() {
    let dp = tempfile::tempdir().unwrap();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main\nsteps:\n  who:\n    lookup: { by: caller }\n    found: wait\n    not_found: wait\n  wait:\n    enqueue: { queue: support, max_wait: 20s }\n    timeout: bye\n  bye:\n    hangup:\n",
    )
    .unwrap();
    let g = Gateway::start(
        23700,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = false",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"main\"\n\n[[queue]]\nname = \"support\"\noffer_timeout_secs = 20\nwrap_up_secs = 0\n\n[[agent]]\nname = \"ann\"\npassword = \"ann-secret\"\ndisplay_name = \"Ann\"\nqueues = [\"support\"]\nextension = \"1001\"\n",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    let sip = format!("127.0.0.1:{}", g.sip);
    // Ann's desk phone registers as 1001 and will answer one call.
    register_demo_phone(&g, "1001", 23880);
    let mut phone = sipp_spawn(
        g.dir.path(),
        &["-sn", "uas", "-p", "23880", "-mp", "23884", "-m", "1"],
    );
    let ann = login(&g, "ann", "ann-secret");
    let mut ann_ws = agent_ws(&g, &ann);
    until(&mut ann_ws, "ann's state", ty("state"));

    // A caller stays on the line for 8 s after the answer.
    let mut caller = sipp_spawn(
        g.dir.path(),
        &[
            "-sn", "uac", "-s", "100", "-d", "8000", "-p", "23890", "-mp", "23894", "-m", "1", &sip,
        ],
    );
    let o = until(&mut ann_ws, "the call offered", ty("offer"));
    let offer = o.last().unwrap().clone();
    assert_eq!(offer["channel"], "voice", "{offer}");
    assert_eq!(offer["queue"], "support", "{offer}");
    // The screen-pop: who is calling and what the IVR learned.
    assert_eq!(offer["from"], "sipp", "{offer}");
    assert_eq!(offer["details"]["caller"], "sipp", "{offer}");
    assert_eq!(offer["details"]["customer.tier"], "standard", "{offer}");
    assert!(offer["customer"].as_i64().is_some(), "{offer}");
    let call = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{call}/accept"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    until(&mut ann_ws, "the call assigned", |v| {
        v["type"] == "assigned" && v["interaction"] == call.as_str()
    });
    let status = phone.wait().unwrap();
    assert!(status.success(), "ann's phone: {status}\n{}", g.log());
    let status = caller.wait().unwrap();
    assert!(status.success(), "the caller: {status}\n{}", g.log());
    until(&mut ann_ws, "the call ended", |v| {
        v["type"] == "ended" && v["interaction"] == call.as_str()
    });

    // The record: answered by ann, bridged, ended; offered and assigned on the timeline.
    wait_for("the call's record", Duration::from_secs(5), || {
        let (_, body) = g.get_auth(&format!("/api/interactions/{call}"), "test-token");
        let i = json(&body);
        i["agent"] == "ann" && !i["ended_at"].is_null()
    });
    let (code, body) = g.get_auth(&format!("/api/interactions/{call}"), "test-token");
    assert_eq!(code, 200, "{body}");
    let i = json(&body);
    assert_eq!(i["kind"], "voice");
    assert!(!i["answered_at"].is_null(), "{i}");
    assert_eq!(i["agent"], "ann", "{i}");
    assert_eq!(i["outcome"], "answered support", "{i}");
    let kinds = timeline_kinds(&i);
    assert_eq!(
        kinds,
        [
            "interaction started",
            "queued",
            "offered",
            "assigned",
            // Her phone answered: the agent is on the call (the KPIs' answer time).
            "connected",
            // The caller's BYE: who ended the call, for the KPIs.
            "caller hung up",
            "interaction ended"
        ],
        "{i}"
    );
    let log = g.log();
    assert!(log.contains("ringing the agent"), "{log}");
}

/// A web chat survives the node's crash: the gateway is killed with SIGKILL and
/// restarted; the customer's page reconnects with its token and finds every message
/// it was acknowledged (a message it sends again counts once), and the chat is
/// offered again, with its transcript, to the agent who logs back in. A wrong token
/// is refused.
#[test]
fn a_web_chat_survives_a_crash_of_the_node() {
    use crate::channels::{next, on_duty};
    let mut g = Gateway::start(23800, "demo = true", "", "");
    let (bob, mut bob_ws) = on_duty(&g, "bob", "demo-bob");
    let (mut cust, chat, token, first) =
        chat_with_first_message(&g, "Grace Hopper", "grace@example.com");
    let offer = next(&g, &mut bob_ws, "offer");
    assert_eq!(offer["interaction"], chat.as_str(), "{offer}");
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&bob),
        r#"{"text": "Let me look at it."}"#,
    );
    assert_eq!(code, 201, "{body}");
    until(&mut cust, "Bob's reply", |v| {
        v["text"] == "Let me look at it."
    });
    drop(cust);
    drop(bob_ws);

    g.crash_and_restart();
    g.wait_log("open web chats taken up again");
    let (_, body) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    assert!(
        json(&body)["ended_at"].is_null(),
        "still open on record, not ended as interrupted: {body}"
    );

    // Someone without the token gets nothing.
    let mut thief = ws(&g, "/chat/ws");
    send(
        &mut thief,
        serde_json::json!({"type": "resume", "chat": chat, "token": "0".repeat(32), "after": 0}),
    );
    let e = until(&mut thief, "the refusal", ty("error"));
    assert_eq!(e.last().unwrap()["reason"], "wrong token for this chat");
    // The page comes back with its token: what it had, and it goes on.
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "resume", "chat": chat, "token": token, "after": 0}),
    );
    let replay = until(&mut cust, "the replay", |v| {
        v["text"] == "Let me look at it."
    });
    assert!(
        replay.iter().any(|v| v["text"] == "My invoice is wrong"),
        "{replay:#?}"
    );
    assert!(!replay.iter().any(|v| v["type"] == "error"), "{replay:#?}");
    // m1 again (its ack was lost, as the page sees it): the same message.
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "My invoice is wrong"}),
    );
    let a = until(&mut cust, "m1 acknowledged again", ty("ack"));
    assert_eq!(a.last().unwrap()["seq"].as_u64(), Some(first), "{a:#?}");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "Are you still there?"}),
    );
    until(&mut cust, "ack of m2", |v| {
        v["type"] == "ack" && v["id"] == "m2"
    });

    // Bob logs back in: the chat is offered to him with all of it.
    let (bob, mut bob_ws) = on_duty(&g, "bob", "demo-bob");
    let offer = next(&g, &mut bob_ws, "offer");
    assert_eq!(offer["interaction"], chat.as_str(), "{offer}");
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let t = next(&g, &mut bob_ws, "transcript");
    let texts: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .filter(|t| !t.contains("joined"))
        .collect();
    assert_eq!(
        texts,
        [
            "My invoice is wrong",
            "Let me look at it.",
            "Are you still there?"
        ],
        "everything acknowledged, once: {t}"
    );
}
