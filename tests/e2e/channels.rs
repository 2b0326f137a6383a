//! WhatsApp end to end, against a fake Graph API that speaks Meta's wire format: the
//! webhook handshake; signed notifications (refused when unsigned, tampered, too big
//! or malformed, with nothing stored); Ada's message on her case, offered to Bob
//! (his agent WebSocket) with her record; the same notification again counted once;
//! Bob's reply posted to the Graph API with the Bearer token, retried after a 500,
//! then `sent`, `delivered` and `read` on his desktop in order (a late `sent`
//! changes nothing); a message delivered after the 24-hour window refuses a free-form
//! reply with 409 naming the templates.

use crate::harness::*;
use omnigate::channels::signature::sign_whatsapp;

pub(crate) const SECRET: &str = "wa-app-secret-123";

pub(crate) fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A notification as Meta posts it: one message from `from` (digits), `id` sent at
/// `ts`, of `kind` with its `body` object.
fn message_from(from: &str, id: &str, ts: u64, kind: &str, body: serde_json::Value) -> String {
    let mut m =
        serde_json::json!({"from": from, "id": id, "timestamp": ts.to_string(), "type": kind});
    m[kind] = body;
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "contacts": [{"profile": {"name": "Ada L."}, "wa_id": from}],
            "messages": [m]
        }}]}]
    })
    .to_string()
}

/// One text message from `from`.
pub(crate) fn text_from(from: &str, id: &str, ts: u64, text: &str) -> String {
    message_from(from, id, ts, "text", serde_json::json!({"body": text}))
}

/// One photo (`media`, a PNG) from `from`, with a caption.
pub(crate) fn photo_from(from: &str, id: &str, ts: u64, media: &str, caption: &str) -> String {
    let image = serde_json::json!({"id": media, "mime_type": "image/png", "caption": caption});
    message_from(from, id, ts, "image", image)
}

pub(crate) fn status_of(id: &str, status: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "statuses": [{"id": id, "status": status, "timestamp": "1764700000", "recipient_id": "15551234567"}]
        }}]}]
    })
    .to_string()
}

/// Posts `body` to the account's webhook, signed (or with `sig`).
pub(crate) fn post_signed(
    g: &Gateway,
    account: &str,
    body: &str,
    sig: Option<&str>,
) -> (u16, String) {
    let good = sign_whatsapp(SECRET, body.as_bytes());
    let mut h = vec![("Content-Type", "application/json")];
    let s = sig.unwrap_or(&good);
    if !s.is_empty() {
        h.push(("X-Hub-Signature-256", s));
    }
    request(
        g,
        "POST",
        &format!("/webhooks/whatsapp/{account}"),
        &h,
        body.as_bytes(),
    )
}

/// An agent logged in, Available, their desktop's socket open.
pub(crate) fn on_duty(g: &Gateway, name: &str, password: &str) -> (String, AgentSocket) {
    let (token, ws) = agent_socket(g, name, password);
    let (code, body) = crate::centre::put(
        g,
        "/api/agent/presence",
        &token,
        r#"{"presence": "available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    (token, ws)
}

/// The next push of type `ty` (any, if empty) on an agent's WebSocket (others skipped).
pub(crate) fn next(g: &Gateway, ws: &mut AgentSocket, ty: &str) -> serde_json::Value {
    loop {
        let m = ws.read().unwrap_or_else(|e| {
            panic!("the agent's websocket, waiting for {ty}: {e}\n{}", g.log())
        });
        if let tungstenite::Message::Text(t) = m {
            let v = json(&t);
            if ty.is_empty() || v["type"] == ty {
                return v;
            }
        }
    }
}

pub(crate) fn customer_messages(g: &Gateway, id: &str) -> Vec<String> {
    let (code, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert_eq!(code, 200, "{body}");
    json(&body)["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message" && e["data"]["from"] == "customer")
        .map(|e| e["data"]["text"].as_str().unwrap().to_string())
        .collect()
}

/// A fake Graph API on `base + 50` (the first send fails with 500 if `fail_first`,
/// then each gets an id `wamid.OUT<n>`) and a demo gateway with the WhatsApp account
/// `wa` pointed at it.
pub(crate) fn graph_and_gateway(base: u16, fail_first: bool) -> (Posts, Gateway) {
    graph_and_gateway_with(base, move |n| n == 0 && fail_first)
}

/// As [`graph_and_gateway`], the send number `n` failing with 500 when `fails(n)`
/// says so (once it has returned).
pub(crate) fn graph_and_gateway_with(
    base: u16,
    fails: impl Fn(usize) -> bool + Send + 'static,
) -> (Posts, Gateway) {
    graph_and_gateway_serving(base, move |n, _| {
        if fails(n) {
            ("500 Internal Server Error".into(), r#"{"error":{"message":"An unexpected error has occurred.","type":"OAuthException","code":2}}"#.into())
        } else {
            (
                "200 OK".into(),
                format!(
                    r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"15551234567","wa_id":"15551234567"}}],"messages":[{{"id":"wamid.OUT{n}"}}]}}"#
                ),
            )
        }
    })
}

/// A fake Graph API on `base + 50` answering `respond(n, request line)` and a demo
/// gateway with the WhatsApp account `wa` pointed at it.
pub(crate) fn graph_and_gateway_serving(
    base: u16,
    respond: impl Fn(usize, &str) -> (String, String) + Send + 'static,
) -> (Posts, Gateway) {
    let graph = serve(base + 50, move |n, request, _, _| respond(n, request));
    let g = Gateway::start(base, "demo = true", "", &wa_account(base + 50));
    (graph, g)
}

/// Once the agent's desktop hears that a message of `interaction` was sent, the form
/// Twilio got for it (the last one).
fn sent_form(
    g: &Gateway,
    ws: &mut AgentSocket,
    twilio: &Posts,
    interaction: &str,
) -> Vec<(String, String)> {
    loop {
        let d = next(g, ws, "delivery");
        if d["interaction"] == interaction {
            assert_eq!(d["status"], "sent", "{d}");
            break;
        }
    }
    let posts = twilio.lock().unwrap().clone();
    serde_urlencoded::from_str(&posts.last().unwrap().1).unwrap()
}

/// The WhatsApp account `wa` (`[[channel]]`, template `follow_up`) pointed at a fake
/// Graph API on `port`.
pub(crate) fn wa_account(port: u16) -> String {
    format!(
        "[[channel]]\nname = \"wa\"\nkind = \"whatsapp\"\nqueue = \"support\"\napp_secret = \"{SECRET}\"\nverify_token = \"wa-verify\"\naccess_token = \"graph-token\"\nphone_number_id = \"PN1\"\napi_base = \"http://127.0.0.1:{port}\"\ntemplates = [{{ name = \"follow_up\", language = \"en\", parameters = 1 }}]\n"
    )
}

/// The Twilio account `sms` (our number +15550001111) pointed at a fake Twilio on
/// `port`.
pub(crate) fn sms_account(port: u16) -> String {
    format!(
        "[[channel]]\nname = \"sms\"\nkind = \"twilio\"\nqueue = \"support\"\naccount_sid = \"AC123\"\nauth_token = \"twilio-token\"\nfrom = \"+15550001111\"\npublic_url = \"https://cc.example.com\"\napi_base = \"http://127.0.0.1:{port}\"\n"
    )
}

/// A fake Twilio on `port` that takes every message (`SMcall<n>`, queued).
pub(crate) fn twilio_taking(port: u16) -> Posts {
    serve(port, |n, _, _, _| {
        (
            "201 Created".into(),
            format!(r#"{{"sid":"SMcall{n}","status":"queued"}}"#),
        )
    })
}

/// A demo gateway whose calls look the caller up and wait in support (up to a
/// minute), with `channels` (`[[channel]]` tables); the flow's directory goes with it.
pub(crate) fn queueing_gateway(base: u16, channels: &str) -> (Gateway, tempfile::TempDir) {
    let dp = tempfile::tempdir().unwrap();
    std::fs::write(
        dp.path().join("main.yaml"),
        "flow: main\nsteps:\n  who:\n    lookup: { by: caller }\n    found: wait\n    not_found: wait\n  wait:\n    enqueue: { queue: support, max_wait: 60s }\n    timeout: bye\n  bye:\n    hangup:\n",
    )
    .unwrap();
    let g = Gateway::start(
        base,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = false",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"main\"\n\n{channels}",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    (g, dp)
}

#[test]
fn a_whatsapp_message_reaches_an_agent_and_the_reply_reaches_the_graph_api() {
    let base = 24700;
    let (graph, g) = graph_and_gateway(base, true);

    // Meta's handshake: the challenge back for our token only.
    let verify = |token: &str, account: &str| {
        request(
            &g,
            "GET",
            &format!("/webhooks/whatsapp/{account}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"),
            &[],
            b"",
        )
    };
    assert_eq!(verify("wa-verify", "wa"), (200, "1158201444".to_string()));
    let (code, body) = verify("guess", "wa");
    assert_eq!(code, 403, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("verify_token"));
    assert_eq!(verify("wa-verify", "nope").0, 404);

    // Bob is on duty, his desktop's socket open.
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");

    // Refused before anything is read or stored: unsigned, tampered, too big, bad.
    let now = omnigate::clock::unix_secs();
    let hello = text_from(
        "15551234567",
        "wamid.IN1",
        now,
        "Hola, where is my order 1234?",
    );
    let (code, body) = post_signed(&g, "wa", &hello, Some(""));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("missing X-Hub-Signature-256"), "{body}");
    let tampered = hello.replace("1234", "9999");
    let (code, body) = post_signed(
        &g,
        "wa",
        &tampered,
        Some(&sign_whatsapp(SECRET, hello.as_bytes())),
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");
    let (code, body) = post_signed(&g, "wa", &"x".repeat(1024 * 1024 + 1), None);
    assert_eq!(code, 413, "{body}");
    let (code, body) = post_signed(&g, "wa", r#"{"object":"whatsapp_business_account"}"#, None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("missing field `entry`"), "{body}");
    assert_eq!(post_signed(&g, "nope", &hello, None).0, 404);
    let (code, body) = g.get_auth("/api/interactions?limit=5", "test-token");
    assert_eq!(code, 200);
    assert_eq!(
        json(&body),
        serde_json::json!([]),
        "nothing stored from refused posts"
    );

    // Ada writes: committed before the 200, offered to Bob with her record.
    let (code, body) = post_signed(&g, "wa", &hello, None);
    assert_eq!(
        (code, json(&body)["messages"].clone()),
        (200, 1.into()),
        "{body}"
    );
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["channel"], "whatsapp", "{offer}");
    assert_eq!(offer["customer"], 1, "Ada's record, by her number: {offer}");
    assert_eq!(offer["details"]["address"], "+15551234567", "{offer}");
    assert_eq!(
        offer["vip"], true,
        "her gold tier routes her as a VIP: {offer}"
    );
    let id = offer["interaction"].as_str().unwrap().to_string();
    // Delivered again by Meta: one message.
    let (code, body) = post_signed(&g, "wa", &hello, None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        customer_messages(&g, &id),
        ["Hola, where is my order 1234?"]
    );

    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    // The assignment, and her message with it or in the transcript (whichever the
    // desktop hears first).
    let (mut assigned, mut said) = (serde_json::Value::Null, Vec::new());
    while assigned.is_null() || said.is_empty() {
        let m = next(&g, &mut ws, "");
        if m["type"] == "assigned" {
            assigned = m.clone();
        }
        if m["type"] == "assigned" || m["type"] == "transcript" {
            // The page counts a message once by its number.
            for x in m["messages"].as_array().into_iter().flatten() {
                if !said.iter().any(|(s, _)| *s == x["seq"]) {
                    said.push((x["seq"].clone(), x["text"].clone()));
                }
            }
        }
    }
    let said: Vec<_> = said.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        assigned["from"], "Ada Lovelace <+15551234567>",
        "her record's name: {assigned}"
    );
    assert_eq!(said, ["Hola, where is my order 1234?"]);
    // Her case shows the WhatsApp thread (what a later call's screen-pop reads).
    let (code, body) = g.get_auth("/api/agent/customers/1", &bob);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&id), "the thread on Ada's record: {body}");

    // Bob answers: the Graph API gets it with the token, fails once, then takes it.
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "It ships today."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let seq = json(&body)["seq"].as_u64().unwrap();
    // Bob sees it waiting after Meta's 500, with Meta's reason, then sent.
    let waiting = next(&g, &mut ws, "delivery");
    assert_eq!(
        (waiting["status"].as_str(), waiting["seq"].as_u64()),
        (Some("queued"), Some(seq)),
        "{waiting}"
    );
    assert!(
        waiting["error"]
            .as_str()
            .unwrap()
            .contains("trying again: An unexpected error has occurred."),
        "{waiting}"
    );
    let sent = next(&g, &mut ws, "delivery");
    assert_eq!(
        (sent["status"].as_str(), sent["seq"].as_u64()),
        (Some("sent"), Some(seq)),
        "{sent}"
    );
    let posts = graph.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "one failure, one retry: {posts:?}");
    for (h, b) in &posts {
        let header = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            header(":request"),
            Some("POST /v21.0/PN1/messages HTTP/1.1")
        );
        assert_eq!(header("authorization"), Some("Bearer graph-token"));
        let v = json(b);
        assert_eq!(v["to"], "15551234567");
        assert_eq!(v["text"]["body"], "It ships today.");
        assert_eq!(v["messaging_product"], "whatsapp");
    }
    // Meta's statuses: delivered, read; a late "sent" changes nothing.
    for st in ["delivered", "read", "sent"] {
        let (code, body) = post_signed(&g, "wa", &status_of("wamid.OUT1", st), None);
        assert_eq!(code, 200, "{body}");
    }
    let d = next(&g, &mut ws, "delivery");
    assert_eq!(d["status"], "delivered", "{d}");
    let r = next(&g, &mut ws, "delivery");
    assert_eq!(r["status"], "read", "{r}");
    // A reconnecting desktop shows the message as read.
    let mut again = tungstenite::connect(format!("ws://127.0.0.1:{}/api/agent/ws", g.http))
        .unwrap()
        .0;
    again
        .send(tungstenite::Message::text(
            serde_json::json!({"type": "auth", "token": bob}).to_string(),
        ))
        .unwrap();
    let state = loop {
        if let tungstenite::Message::Text(t) = again.read().unwrap() {
            break json(&t);
        }
    };
    let mine = state["work"][0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["seq"] == seq)
        .cloned()
        .unwrap_or_default();
    assert_eq!(mine["status"], "read", "{state}");

    // Alan writes a message Meta delivers a day late: the window is closed; a
    // free-form reply is refused with 409 naming the template, nothing is sent.
    let late = text_from("15557654321", "wamid.IN2", now - 25 * 3600, "Still there?");
    let (code, body) = post_signed(&g, "wa", &late, None);
    assert_eq!(code, 200, "{body}");
    let offer = next(&g, &mut ws, "offer");
    let alan = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{alan}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{alan}/messages"),
        Some(&bob),
        r#"{"text": "Yes!"}"#,
    );
    assert_eq!(code, 409, "{body}");
    let why = json(&body)["error"].as_str().unwrap().to_string();
    assert!(
        why.contains("24-hour reply window closed") && why.contains("follow_up"),
        "{why}"
    );
    assert_eq!(graph.lock().unwrap().len(), 2, "nothing more sent");
    // An approved template goes, with its parameters; a wrong one is refused.
    for (bad, want) in [
        (
            r#"{"name": "nope", "parameters": []}"#,
            "no template \"nope\"",
        ),
        (
            r#"{"name": "follow_up", "parameters": []}"#,
            "takes 1 parameters",
        ),
    ] {
        let (code, body) = g.post(&format!("/api/agent/work/{alan}/template"), Some(&bob), bad);
        assert_eq!(code, 409, "{body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(want),
            "{body}"
        );
    }
    let (code, body) = g.post(
        &format!("/api/agent/work/{alan}/template"),
        Some(&bob),
        r#"{"name": "follow_up", "parameters": ["5678"]}"#,
    );
    assert_eq!(code, 201, "{body}");
    let sent = next(&g, &mut ws, "delivery");
    assert_eq!(sent["status"], "sent", "{sent}");
    let posts = graph.lock().unwrap().clone();
    assert_eq!(posts.len(), 3, "{posts:?}");
    let t = json(&posts[2].1);
    assert_eq!(t["to"], "15557654321", "{t}");
    assert_eq!(t["type"], "template", "{t}");
    assert_eq!(t["template"]["name"], "follow_up", "{t}");
    assert_eq!(t["template"]["language"]["code"], "en", "{t}");
    assert_eq!(
        t["template"]["components"][0]["parameters"][0]["text"], "5678",
        "{t}"
    );

    // Grace's window closes while her thread is open: she wrote 24 hours ago less
    // 3 s; a reply goes now, and once her window has run out the next is refused.
    let sent_at = omnigate::clock::unix_secs() - 24 * 3600 + 3;
    let grace = text_from("15550002222", "wamid.IN3", sent_at, "Any news?");
    assert_eq!(post_signed(&g, "wa", &grace, None).0, 200);
    let offer = next(&g, &mut ws, "offer");
    let id = offer["interaction"].as_str().unwrap().to_string();
    let until = offer["details"]["window_until"].as_u64().unwrap();
    assert_eq!(until, (sent_at + 24 * 3600) * 1000, "{offer}");
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let reply = |text: &str| {
        g.post(
            &format!("/api/agent/work/{id}/messages"),
            Some(&bob),
            &serde_json::json!({ "text": text }).to_string(),
        )
    };
    let (code, body) = reply("Checking now.");
    assert_eq!(code, 201, "inside the window: {body}");
    // The window's end is the event waited for.
    wait_for(
        "her window to close",
        std::time::Duration::from_secs(10),
        || omnigate::clock::unix_millis() > until,
    );
    let (code, body) = reply("Found it.");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("24-hour reply window closed"), "{body}");
}

/// A form post signed as Twilio signs it for `https://cc.example.com{path}`.
fn twilio_post(g: &Gateway, path: &str, params: &[(&str, &str)], token: &str) -> (u16, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = omnigate::channels::signature::twilio(
        token,
        &format!("https://cc.example.com{path}"),
        &owned,
    );
    let body = serde_urlencoded::to_string(params).unwrap();
    request(
        g,
        "POST",
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &sig),
        ],
        body.as_bytes(),
    )
}

/// An SMS through Twilio: the signed form post lands on Ada's case and rings Bob; his
/// reply is posted to Twilio's Messages API with Basic auth, from our number, with a
/// status callback; Twilio's signed callbacks move it to delivered. A forged post is
/// refused, a repeated one counts once.
#[test]
fn an_sms_through_twilio_reaches_an_agent_and_the_reply_goes_back_through_twilio() {
    let base = 24900;
    // Twilio takes every message, but answers the first only after our time-out.
    let twilio = serve(base + 50, |n, _, _, _| {
        if n == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1500));
        }
        (
            "201 Created".into(),
            format!(r#"{{"sid":"SM{n}","status":"queued","to":"+15551234567"}}"#),
        )
    });
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!(
            "{}send_timeout_secs = 1\ntemplates = [{{ name = \"order_update\", content_sid = \"HXb5b62575e6e4ff6129ad7c8efe1f983e\", parameters = 1 }}]\n",
            sms_account(base + 50)
        ),
    );
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let sms = [
        ("MessageSid", "SMin1"),
        ("AccountSid", "AC123"),
        ("From", "+15551234567"),
        ("To", "+15550001111"),
        ("Body", "Hi, where is order 1234?"),
        ("NumMedia", "0"),
    ];
    // Forged (signed with another token) or unsigned: 401, nothing stored.
    let (code, body) = twilio_post(&g, "/webhooks/twilio/sms", &sms, "guess");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("X-Twilio-Signature does not match"), "{body}");
    let (code, _) = request(&g, "POST", "/webhooks/twilio/sms", &[], b"MessageSid=x");
    assert_eq!(code, 401);
    assert_eq!(
        twilio_post(&g, "/webhooks/twilio/nope", &sms, "twilio-token").0,
        404
    );
    let (code, body) = twilio_post(&g, "/webhooks/twilio/sms", &sms[1..], "twilio-token");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("MessageSid is missing"), "{body}");

    let (code, body) = twilio_post(&g, "/webhooks/twilio/sms", &sms, "twilio-token");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<Response></Response>"),
        "empty TwiML: {body}"
    );
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["channel"], "sms", "{offer}");
    assert_eq!(offer["customer"], 1, "Ada, by her number: {offer}");
    let id = offer["interaction"].as_str().unwrap().to_string();
    // Twilio retries a post it thinks failed: one message.
    assert_eq!(
        twilio_post(&g, "/webhooks/twilio/sms", &sms, "twilio-token").0,
        200
    );
    assert_eq!(customer_messages(&g, &id), ["Hi, where is order 1234?"]);

    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "It ships today & arrives Friday."}"#,
    );
    assert_eq!(code, 201, "{body}");
    // Twilio does not answer the first attempt in time: Bob sees the message waiting
    // and why, then sent; the same message went again (its answer, SM1, is its id).
    let waiting = next(&g, &mut ws, "delivery");
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert!(
        waiting["error"]
            .as_str()
            .unwrap()
            .contains("trying again: Twilio did not answer"),
        "{waiting}"
    );
    let sent = next(&g, &mut ws, "delivery");
    assert_eq!(sent["status"], "sent", "{sent}");
    let posts = twilio.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].1, posts[1].1, "the same message again");
    let (h, b) = &posts[1];
    let header = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        header(":request").as_deref(),
        Some("POST /2010-04-01/Accounts/AC123/Messages.json HTTP/1.1")
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("AC123:twilio-token");
    assert_eq!(header("authorization"), Some(format!("Basic {basic}")));
    let form: Vec<(String, String)> = serde_urlencoded::from_str(b).unwrap();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("To"), Some("+15551234567"));
    assert_eq!(get("From"), Some("+15550001111"));
    assert_eq!(get("Body"), Some("It ships today & arrives Friday."));
    assert_eq!(
        get("StatusCallback"),
        Some("https://cc.example.com/webhooks/twilio/sms/status")
    );
    // Twilio's callbacks: sending (still queued: nothing new), then delivered.
    for st in ["sending", "delivered"] {
        let (code, body) = twilio_post(
            &g,
            "/webhooks/twilio/sms/status",
            &[
                ("MessageSid", "SM1"),
                ("MessageStatus", st),
                ("AccountSid", "AC123"),
            ],
            "twilio-token",
        );
        assert_eq!(code, 204, "{body}");
    }
    let d = next(&g, &mut ws, "delivery");
    assert_eq!(d["status"], "delivered", "{d}");
    // "stop": Ada withdraws her marketing consent for SMS; the message still reaches Bob.
    let stop = [
        ("MessageSid", "SMin2"),
        ("From", "+15551234567"),
        ("To", "+15550001111"),
        ("Body", " stop "),
    ];
    assert_eq!(
        twilio_post(&g, "/webhooks/twilio/sms", &stop, "twilio-token").0,
        200
    );
    let m = next(&g, &mut ws, "message");
    assert_eq!(m["text"], "stop", "{m}");
    let (code, body) = g.get_auth("/api/customers/1", "test-token");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body)["consents"]["marketing:sms"]["granted"],
        false,
        "{body}"
    );
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert!(body.contains("opted out"), "on the timeline: {body}");

    // WhatsApp through Twilio, at the shared webhook (the account found by the number
    // it was sent to): a thread of its own, on WhatsApp, answered from our WhatsApp
    // sender.
    let wa = [
        ("MessageSid", "SMwa1"),
        ("From", "whatsapp:+15551234567"),
        ("To", "whatsapp:+15550001111"),
        ("Body", "Hola por WhatsApp"),
    ];
    assert_eq!(
        twilio_post(&g, "/webhooks/twilio", &wa, "guess").0,
        401,
        "signed with the found account's token"
    );
    let other = [
        ("MessageSid", "SMx"),
        ("From", "+1"),
        ("To", "+19999"),
        ("Body", "x"),
    ];
    assert_eq!(
        twilio_post(&g, "/webhooks/twilio", &other, "twilio-token").0,
        404
    );
    let (code, body) = twilio_post(&g, "/webhooks/twilio", &wa, "twilio-token");
    assert_eq!(code, 200, "{body}");
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["channel"], "whatsapp", "{offer}");
    assert_eq!(offer["customer"], 1, "Ada, by her number: {offer}");
    assert!(
        offer["details"]["window_until"].is_u64(),
        "a WhatsApp window: {offer}"
    );
    let wa_id = offer["interaction"].as_str().unwrap().to_string();
    assert_ne!(wa_id, id, "not her SMS thread");
    let (code, body) = g.post(&format!("/api/agent/offers/{wa_id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{wa_id}/messages"),
        Some(&bob),
        r#"{"text": "Claro."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let form = sent_form(&g, &mut ws, &twilio, &wa_id);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("To"), Some("whatsapp:+15551234567"));
    assert_eq!(get("From"), Some("whatsapp:+15550001111"));
    assert_eq!(get("Body"), Some("Claro."));

    // A Content API template (what may go once her window closes): its sid and its
    // variables, no body. The desktop was told of it with the offer.
    assert_eq!(
        offer["details"]["templates"][0]["name"], "order_update",
        "{offer}"
    );
    let (code, body) = g.post(
        &format!("/api/agent/work/{wa_id}/template"),
        Some(&bob),
        r#"{"name": "order_update", "parameters": ["1234"]}"#,
    );
    assert_eq!(code, 201, "{body}");
    let form = sent_form(&g, &mut ws, &twilio, &wa_id);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        get("ContentSid"),
        Some("HXb5b62575e6e4ff6129ad7c8efe1f983e")
    );
    assert_eq!(get("ContentVariables"), Some(r#"{"1":"1234"}"#));
    assert_eq!(get("Body"), None, "{form:?}");
    assert_eq!(get("From"), Some("whatsapp:+15550001111"));
}

/// Alice, on a SIPp call from Ada's number (her desk phone a SIPp too), sends Ada an
/// SMS without hanging up: it lands on the call's timeline (Ada's case) and goes to
/// Twilio from our number; a free-form WhatsApp message is refused (Ada never wrote
/// on it), as is an unknown channel; Ada's SMS answer opens a thread on the same case.
#[test]
fn an_sms_sent_by_an_agent_during_a_sipp_call_lands_on_the_same_case() {
    let base = 26100;
    let twilio = twilio_taking(base + 50);
    let (g, _flows) = queueing_gateway(base, &sms_account(base + 50));
    // Alice's desk phone (1001) answers one call.
    let mut phone = desk_phone_answering(&g, "1001", base + 10);
    let (alice, mut ws) = on_duty(&g, "alice", "demo-alice");
    let args = speaker_args_from(&g, base + 20, base + 24, "+15551234567");
    let mut caller = sipp_spawn(
        g.dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["channel"], "voice", "{offer}");
    assert_eq!(offer["customer"], 1, "Ada, by her number: {offer}");
    let call = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(
        &format!("/api/agent/offers/{call}/accept"),
        Some(&alice),
        "",
    );
    assert_eq!(code, 200, "{body}");
    // Her phone rings and answers: Alice and Ada are talking.
    wait_for("alice answers", std::time::Duration::from_secs(20), || {
        let (_, body) = g.get_auth(&format!("/api/interactions/{call}"), "test-token");
        let i = json(&body);
        i["agent"] == "alice" && !i["answered_at"].is_null()
    });

    // On the call: an SMS to Ada's number.
    let say = |channel: &str, text: &str| {
        g.post(
            &format!("/api/agent/work/{call}/messages"),
            Some(&alice),
            &serde_json::json!({"text": text, "channel": channel}).to_string(),
        )
    };
    let (code, body) = say("sms", "Your order number is 1234-ABC.");
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        (json(&body)["to"].as_str(), json(&body)["account"].as_str()),
        (Some("+15551234567"), Some("sms")),
        "{body}"
    );
    wait_for(
        "the SMS at Twilio",
        std::time::Duration::from_secs(20),
        || !twilio.lock().unwrap().is_empty(),
    );
    let (h, b) = twilio.lock().unwrap()[0].clone();
    assert!(h
        .iter()
        .any(|(k, v)| k == ":request" && v.contains("/Accounts/AC123/Messages.json")));
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&b).unwrap();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("To").as_deref(), Some("+15551234567"));
    assert_eq!(get("From").as_deref(), Some("+15550001111"));
    assert_eq!(
        get("Body").as_deref(),
        Some("Your order number is 1234-ABC.")
    );
    // WhatsApp (the demo account): Ada never wrote on it, so only a template could
    // go; nor a channel that is not one.
    let (code, body) = say("whatsapp", "hi");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("in the last 24 hours") && body.contains("follow_up"),
        "{body}"
    );
    let (code, body) = say("fax", "hi");
    assert_eq!(code, 422, "{body}");
    // Once Ada writes on WhatsApp, a free-form message may go there too (the demo
    // account has no token yet: it is not sent, and the timeline says why).
    let hola = text_from(
        "15551234567",
        "wamid.ADA",
        omnigate::clock::unix_secs(),
        "hola",
    );
    let sig = sign_whatsapp("demo-app-secret", hola.as_bytes());
    let (code, body) = request(
        &g,
        "POST",
        "/webhooks/whatsapp/demo-whatsapp",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &sig),
        ],
        hola.as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = say("whatsapp", "Here is the tracking link.");
    assert_eq!(code, 202, "{body}");
    wait_for(
        "the reason on the timeline",
        std::time::Duration::from_secs(10),
        || {
            let (_, body) = g.get_auth(&format!("/api/interactions/{call}"), "test-token");
            body.contains("delivery failed") && body.contains("access_token")
        },
    );
    // Bob cannot send on Alice's call.
    let (bob, _bob_ws) = on_duty(&g, "bob", "demo-bob");
    let (code, _) = g.post(
        &format!("/api/agent/work/{call}/messages"),
        Some(&bob),
        r#"{"text": "x", "channel": "sms"}"#,
    );
    assert_eq!(code, 403);

    // The call's timeline (Ada's case) has it, sent as Twilio took it.
    let (code, body) = g.get_auth(&format!("/api/interactions/{call}"), "test-token");
    assert_eq!(code, 200, "{body}");
    let i = json(&body);
    let sms = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "message" && e["data"]["channel"] == "sms")
        .cloned()
        .unwrap_or_else(|| panic!("the SMS on the call's timeline: {i}"));
    assert_eq!(sms["data"]["channel"], "sms", "{sms}");
    assert_eq!(
        sms["data"]["text"], "Your order number is 1234-ABC.",
        "{sms}"
    );
    assert_eq!(sms["data"]["agent"], "alice", "{sms}");
    assert_eq!(sms["data"]["name"], "Alice Agent", "{sms}");
    let case = i["conversation_id"].clone();
    assert!(case.is_i64(), "{i}");

    // Alice hangs up; both SIPp ends finish cleanly.
    let (code, body) = g.post(&format!("/api/agent/work/{call}/hangup"), Some(&alice), "");
    assert!(code == 200 || code == 204, "{code} {body}");
    let status = caller.wait().unwrap();
    assert!(status.success(), "the caller: {status}\n{}", g.log());
    let status = phone.wait().unwrap();
    assert!(status.success(), "alice's phone: {status}\n{}", g.log());

    // Ada answers by SMS: a thread on the same case.
    let reply = [
        ("MessageSid", "SMada1"),
        ("From", "+15551234567"),
        ("To", "+15550001111"),
        ("Body", "Thanks!"),
    ];
    let (code, body) = twilio_post(&g, "/webhooks/twilio/sms", &reply, "twilio-token");
    assert_eq!(code, 200, "{body}");
    // Committed before the 200: the thread is on record, on her case.
    let (_, body) = g.get_auth("/api/interactions?limit=10", "test-token");
    let list = json(&body);
    let thread = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "twilio" && i["id"] != call.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the SMS thread: {list}"));
    let body = thread.to_string();
    assert_eq!(
        json(&body)["conversation_id"],
        case,
        "the same case: {body}"
    );
}

/// A proactive notification: the admin API with an `Idempotency-Key` sends Ada's
/// WhatsApp template once (the same key again gets the same answer, another body
/// under it is refused); her reply joins that conversation; after her `BAJA`, a
/// marketing notification is refused with the reason.
#[test]
fn a_notification_goes_once_per_key_and_never_where_the_customer_opted_out() {
    let base = 26300;
    let (graph, g) = graph_and_gateway(base, false);
    let notify = |key: Option<&str>, token: &str, body: &str| {
        let auth = format!("Bearer {token}");
        let mut h = vec![
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ];
        if let Some(k) = key {
            h.push(("Idempotency-Key", k));
        }
        request(&g, "POST", "/api/notifications", &h, body.as_bytes())
    };
    let order = r#"{"customer": 1, "channels": ["whatsapp", "sms"], "template": {"name": "follow_up", "parameters": ["1234"]}}"#;
    assert_eq!(notify(Some("order-1234"), "guess", order).0, 401);
    let (code, body) = notify(None, "test-token", order);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Idempotency-Key"), "{body}");
    let (code, body) = notify(Some("k"), "test-token", r#"{"customer": 1}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("missing field `channels`"), "{body}");

    let (code, first) = notify(Some("order-1234"), "test-token", order);
    assert_eq!(code, 202, "{first}");
    let sent = json(&first);
    assert_eq!(
        (sent["account"].as_str(), sent["to"].as_str()),
        (Some("wa"), Some("+15551234567")),
        "{first}"
    );
    wait_for(
        "the template at the Graph API",
        std::time::Duration::from_secs(20),
        || !graph.lock().unwrap().is_empty(),
    );
    let v = json(&graph.lock().unwrap()[0].1);
    assert_eq!(v["type"], "template", "{v}");
    assert_eq!(v["template"]["name"], "follow_up", "{v}");
    assert_eq!(v["to"], "15551234567", "{v}");
    // The same request again: the same answer, nothing sent again.
    let (code, again) = notify(Some("order-1234"), "test-token", order);
    assert_eq!((code, json(&again)), (202, sent.clone()));
    let (code, body) = notify(
        Some("order-1234"),
        "test-token",
        &order.replace("1234", "9999"),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("used for another request"), "{body}");

    // Ada answers "BAJA": her reply is on the notification's conversation, and she
    // has withdrawn marketing on WhatsApp.
    let now = omnigate::clock::unix_secs();
    let (code, body) = post_signed(
        &g,
        "wa",
        &text_from("15551234567", "wamid.R1", now, "BAJA"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let note = sent["interaction"].as_str().unwrap();
    let (_, body) = g.get_auth(&format!("/api/interactions/{note}"), "test-token");
    let case = json(&body)["conversation_id"].clone();
    assert!(case.is_i64(), "{body}");
    assert!(
        body.contains("follow_up"),
        "the template on its timeline: {body}"
    );
    let (_, body) = g.get_auth("/api/interactions?limit=10", "test-token");
    let list = json(&body);
    let reply = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "whatsapp" && i["direction"] == "inbound")
        .cloned()
        .unwrap_or_else(|| panic!("her thread: {list}"));
    assert_eq!(reply["conversation_id"], case, "{list}");
    let promo = r#"{"identity": "+1 555 123 4567", "channels": ["whatsapp"], "template": {"name": "follow_up", "parameters": ["20% off"]}, "marketing": true}"#;
    let (code, body) = notify(Some("promo-1"), "test-token", promo);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("opted out") && body.contains("marketing:whatsapp"),
        "{body}"
    );
    assert_eq!(
        graph.lock().unwrap().len(),
        1,
        "only the first notification went"
    );
}

/// The gateway killed with SIGKILL while Bob's reply is at the Graph API: started
/// again, it takes Ada's thread up (queued to Bob again, with everything said), sends
/// the reply the provider never took, counts a redelivered message once, and Ada's
/// next message lands on the same thread.
#[test]
fn a_whatsapp_thread_survives_a_crash_of_the_gateway() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let base = 26500;
    let crashed = std::sync::Arc::new(AtomicBool::new(false));
    let arrived = std::sync::Arc::new(AtomicBool::new(false));
    let (c2, a2) = (crashed.clone(), arrived.clone());
    // The first send hangs until the gateway that made it is gone.
    let (graph, mut g) = graph_and_gateway_with(base, move |n| {
        a2.store(true, Ordering::SeqCst);
        while n == 0 && !c2.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        n == 0
    });
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let now = omnigate::clock::unix_secs();
    let hello = text_from("15551234567", "wamid.C1", now, "Hola, order 1234?");
    assert_eq!(post_signed(&g, "wa", &hello, None).0, 200);
    let offer = next(&g, &mut ws, "offer");
    let id = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "It ships today."}"#,
    );
    assert_eq!(code, 201, "{body}");
    // The reply is at the Graph API (hanging) when the node dies.
    wait_for(
        "the reply at the Graph API",
        std::time::Duration::from_secs(20),
        || arrived.load(Ordering::SeqCst),
    );
    drop(ws);
    g.crash_and_restart();
    crashed.store(true, Ordering::SeqCst);
    g.wait_log("open threads taken up again");
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert!(
        json(&body)["ended_at"].is_null(),
        "still open on record, not ended as interrupted: {body}"
    );

    // Bob again: the thread is offered to him, with everything said.
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(
        offer["interaction"],
        id.as_str(),
        "the same thread: {offer}"
    );
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let mut said = std::collections::BTreeMap::new();
    while said.len() < 2 {
        let m = next(&g, &mut ws, "");
        if m["type"] == "assigned" || m["type"] == "transcript" {
            for x in m["messages"].as_array().into_iter().flatten() {
                said.insert(
                    x["seq"].as_u64().unwrap(),
                    x["text"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    assert_eq!(
        said.values().collect::<Vec<_>>(),
        ["Hola, order 1234?", "It ships today."],
        "nothing acknowledged is missing"
    );
    // The reply Meta never took goes now (the hung attempt died with the node).
    wait_for(
        "the reply sent again",
        std::time::Duration::from_secs(20),
        || graph.lock().unwrap().len() >= 2,
    );
    let posts = graph.lock().unwrap().clone();
    assert_eq!(json(&posts[1].1)["text"]["body"], "It ships today.");
    // Meta delivers the first message again: once. Ada writes again: same thread.
    assert_eq!(post_signed(&g, "wa", &hello, None).0, 200);
    let more = text_from("15551234567", "wamid.C2", now + 1, "Thanks!");
    assert_eq!(post_signed(&g, "wa", &more, None).0, 200);
    let m = next(&g, &mut ws, "message");
    assert_eq!(
        (m["interaction"].as_str(), m["text"].as_str()),
        (Some(id.as_str()), Some("Thanks!")),
        "{m}"
    );
    let last = *said.keys().last().unwrap();
    assert!(
        m["seq"].as_u64().unwrap() > last,
        "numbering goes on after {last}: {m}"
    );
    assert_eq!(customer_messages(&g, &id), ["Hola, order 1234?", "Thanks!"]);
}

/// Ada sends a photo on WhatsApp: the message names it; Bob, whose thread it is,
/// downloads it through the gateway (the Graph API's media lookup, then its download
/// address, both with the token), served as an attachment; another agent, or a media
/// id the thread does not name, gets nothing.
#[test]
fn an_agent_downloads_the_media_a_whatsapp_customer_sent() {
    let base = 25900;
    let graph_port = base + 50;
    let (graph, g) = graph_and_gateway_serving(base, move |_, request| {
        if request.starts_with("GET /v21.0/MEDIA7 ") {
            (
                "200 OK".into(),
                format!(
                    r#"{{"messaging_product":"whatsapp","url":"http://127.0.0.1:{graph_port}/dl/MEDIA7?ext=1","mime_type":"image/png","sha256":"x","file_size":9,"id":"MEDIA7"}}"#
                ),
            )
        } else if request.starts_with("GET /dl/MEDIA7") {
            ("200 OK".into(), "PNG-BYTES".into())
        } else {
            (
                "404 Not Found".into(),
                r#"{"error":{"message":"Unsupported get request."}}"#.into(),
            )
        }
    });
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let now = omnigate::clock::unix_secs();
    let photo = photo_from("15551234567", "wamid.P1", now, "MEDIA7", "the broken lamp");
    assert_eq!(post_signed(&g, "wa", &photo, None).0, 200);
    let offer = next(&g, &mut ws, "offer");
    let id = offer["interaction"].as_str().unwrap().to_string();
    assert_eq!(
        customer_messages(&g, &id),
        ["[image media MEDIA7] the broken lamp"]
    );
    let get = |token: &str, media: &str| {
        let auth = format!("Bearer {token}");
        request(
            &g,
            "GET",
            &format!("/api/agent/work/{id}/media/{media}"),
            &[("Authorization", auth.as_str())],
            b"",
        )
    };
    // Not Bob's yet: offered, not accepted.
    let (code, _) = get(&bob, "MEDIA7");
    assert_eq!(code, 403);
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    // The raw answer, to read its headers.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /api/agent/work/{id}/media/MEDIA7 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bob}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let head = raw.to_ascii_lowercase();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(head.contains("content-type: image/png"), "{raw}");
    assert!(head.contains("content-disposition: attachment"), "{raw}");
    assert!(head.contains("x-content-type-options: nosniff"), "{raw}");
    assert!(raw.ends_with("PNG-BYTES"), "{raw}");
    let asked = graph.lock().unwrap().clone();
    for want in [
        "GET /v21.0/MEDIA7 HTTP/1.1",
        "GET /dl/MEDIA7?ext=1 HTTP/1.1",
    ] {
        let (h, _) = asked
            .iter()
            .find(|(h, _)| h.iter().any(|(k, v)| k == ":request" && v == want))
            .unwrap_or_else(|| panic!("{want}: {asked:?}"));
        assert!(
            h.iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer graph-token"),
            "{want} with the token: {h:?}"
        );
    }
    // A media id the thread does not name, or one that is not an id: nothing fetched.
    let before = graph.lock().unwrap().len();
    assert_eq!(get(&bob, "MEDIA8").0, 404);
    assert_eq!(get(&bob, "..%2Fx").0, 404);
    assert_eq!(graph.lock().unwrap().len(), before);
}

/// The customer's case: the interaction `id` as the API shows it.
fn interaction(g: &Gateway, id: &str) -> serde_json::Value {
    let (code, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert_eq!(code, 200, "{body}");
    json(&body)
}

/// Ada's next thread: offered to Bob, accepted; its id.
pub(crate) fn take_thread(g: &Gateway, ws: &mut AgentSocket, bob: &str) -> String {
    let offer = next(g, ws, "offer");
    let id = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(bob), "");
    assert_eq!(code, 200, "{body}");
    id
}

#[test]
fn a_whatsapp_customer_rates_the_thread_by_replying_to_the_survey_question() {
    let base = 27700;
    let graph = serve(base + 50, |n, _, _, _| {
        (
            "200 OK".into(),
            format!(
                r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"15551234567","wa_id":"15551234567"}}],"messages":[{{"id":"wamid.OUT{n}"}}]}}"#
            ),
        )
    });
    let survey = "survey = { question = \"How did we do? Reply 1 (poor) to 5 (great).\", thanks = \"Thank you!\" }\n";
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!("{}{survey}", wa_account(base + 50)),
    );
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let sent = || -> Vec<serde_json::Value> {
        graph.lock().unwrap().iter().map(|(_, b)| json(b)).collect()
    };
    let wait_sent = |n: usize| {
        wait_for(
            &format!("{n} messages at the Graph API"),
            std::time::Duration::from_secs(10),
            || graph.lock().unwrap().len() >= n,
        )
    };
    let now = omnigate::clock::unix_secs();
    let write = |id: &str, text: &str| {
        let (code, body) = post_signed(&g, "wa", &text_from("15551234567", id, now, text), None);
        assert_eq!(code, 200, "{body}");
    };

    // Ada's thread: Bob answers, then ends it. His last message goes first, then the
    // question, to her number, as plain text inside her window.
    write("wamid.S1", "I was charged twice");
    let first = take_thread(&g, &mut ws, &bob);
    let (code, body) = g.post(
        &format!("/api/agent/work/{first}/messages"),
        Some(&bob),
        r#"{"text": "Refunded, sorry!"}"#,
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = g.post(&format!("/api/agent/work/{first}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    wait_sent(2);
    let out = sent();
    assert_eq!(out[0]["text"]["body"], "Refunded, sorry!", "{out:?}");
    assert_eq!(out[1]["to"], "15551234567", "{out:?}");
    assert_eq!(out[1]["type"], "text", "{out:?}");
    assert_eq!(
        out[1]["text"]["body"], "How did we do? Reply 1 (poor) to 5 (great).",
        "{out:?}"
    );
    wait_for(
        "the question on the timeline",
        std::time::Duration::from_secs(10),
        || {
            interaction(&g, &first)["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "survey asked")
        },
    );

    // Her answer: the thread's survey answer with her comment, thanked, and no new
    // contact (no offer; her case has the one interaction).
    write("wamid.S2", "4 - quick, thanks");
    let i = interaction(&g, &first);
    assert_eq!(i["survey"]["score"], 4, "{i}");
    assert_eq!(i["survey"]["channel"], "whatsapp", "{i}");
    assert_eq!(i["survey"]["comment"], "quick, thanks", "{i}");
    wait_sent(3);
    assert_eq!(sent()[2]["text"]["body"], "Thank you!");
    // Meta delivers it again: counted once, still nothing new.
    write("wamid.S2", "4 - quick, thanks");
    let (code, body) = g.get_auth("/api/interactions?limit=10", "test-token");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body).as_array().unwrap().len(), 1, "{body}");
    assert_eq!(customer_messages(&g, &first), ["I was charged twice"]);

    // The question is answered once: her next "5" is a new contact, to an agent.
    write("wamid.S3", "5");
    let second = take_thread(&g, &mut ws, &bob);
    assert_ne!(second, first);
    assert_eq!(customer_messages(&g, &second), ["5"]);
    assert_eq!(interaction(&g, &first)["survey"]["score"], 4);
    // Bob ends it, the question goes again; what she writes next is no answer: a new
    // contact with her words, and the question waits no more.
    let (code, body) = g.post(&format!("/api/agent/work/{second}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    wait_sent(4);
    assert_eq!(
        sent()[3]["text"]["body"],
        "How did we do? Reply 1 (poor) to 5 (great)."
    );
    write("wamid.S4", "Where is my refund?");
    let third = take_thread(&g, &mut ws, &bob);
    assert_eq!(customer_messages(&g, &third), ["Where is my refund?"]);
    assert!(interaction(&g, &second)["survey"].is_null());
    let (code, body) = g.post(&format!("/api/agent/work/{third}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");

    // The KPIs count her one answer on her one case.
    let (code, body) = g.get_auth(&format!("/api/kpis?from={started}"), "test-token");
    assert_eq!(code, 200, "{body}");
    let total = &json(&body)["total"];
    assert_eq!(
        (total["csat"]["num"].as_i64(), total["csat"]["den"].as_i64()),
        (Some(1), Some(1)),
        "{total}"
    );
    assert_eq!(total["csat_score"]["mean"], 4.0, "{total}");
}
