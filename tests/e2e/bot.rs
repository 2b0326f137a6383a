//! The first-level bot on the web chat (issue 21): with `[chat] bot = true` a new
//! chat is the bot's. Ada's routine question is answered from the knowledge base and
//! no agent is offered it; she asks for a person ("agente") and the chat goes to the
//! queue at once: Bob's offer carries the bot's summary, intent and transcript; after
//! the hand-off the bot says nothing and Bob and Ada talk; the timeline has the bot's
//! stage and its messages. Then the same on WhatsApp (`[[channel]] bot = true`, the
//! fake Graph API): the short answer goes out through the provider, and "humano"
//! hands the thread to Bob. Once Bob has resolved it, Ada's next message meets the
//! bot again; Grace's chat is answered and she leaves (contained), and the KPIs count
//! containment and hand-offs by intent.

use crate::centre::{send, ty, until, ws};
use crate::channels::{json, next, on_duty, post_signed, text_from, wa_account};
use crate::harness::*;
use std::time::Duration;

#[test]
fn the_bot_answers_from_the_knowledge_base_then_hands_over_with_the_whole_context() {
    let base = 27850;
    // The fake Graph API (WhatsApp) takes every send.
    let graph = serve(base + 20, |n, _, _, _| {
        (
            "200 OK".into(),
            format!(r#"{{"messaging_product":"whatsapp","messages":[{{"id":"wamid.BOT{n}"}}]}}"#),
        )
    });
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!(
            "[chat]\nbot = true\n\n{}bot = true\n",
            wa_account(base + 20)
        ),
    );
    g.wait_log("knowledge base loaded");
    let (bob, mut agent) = on_duty(&g, "bob", "demo-bob");
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Ada", "address": "ada@example.com"}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    // The built-in bot: no external bot's token is valid.
    let (code, body) = g.post(
        &format!("/api/bot/conversations/{chat}/messages"),
        Some("guess-0123456789abcdef"),
        r#"{"text":"hi"}"#,
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("no external bot is configured"), "{body}");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "Hi, where's my parcel?"}),
    );
    let got = until(&mut cust, "the bot's answer", |m| m["from"] == "bot");
    let answer = got.last().unwrap();
    assert_eq!(answer["name"], "Bot", "{answer}");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .starts_with("You can follow your parcel at https://acme.test/track"),
        "the long answer on a web chat: {answer}"
    );
    // Still the bot's: on record with no queue, and on the timeline as its stage.
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    let one = json(&one);
    assert!(
        one["queue"].is_null(),
        "not queued while the bot has it: {one}"
    );
    assert!(one["offered_at"].is_null(), "{one}");
    let kinds = |v: &serde_json::Value| -> Vec<String> {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(kinds(&one).contains(&"bot started".to_string()), "{one}");

    // Her page sends m1 again (its ack was lost, say): acknowledged once more, stored
    // once, and not answered twice (the bot's messages are counted at the end).
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "Hi, where's my parcel?"}),
    );
    until(&mut cust, "m1 acked again", |m| {
        m["type"] == "ack" && m["id"] == "m1"
    });
    // She asks for a person: handed over at once, told so.
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "quiero hablar con un agente"}),
    );
    let told = until(&mut cust, "the hand-off notice", |m| {
        m["from"] == "bot"
            && m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Le comunico"))
    });
    assert!(!told.is_empty());
    let offer = next(&g, &mut agent, "offer");
    assert_eq!(offer["interaction"], chat.as_str(), "{offer}");
    let d = &offer["details"];
    assert!(
        d["bot.summary"]
            .as_str()
            .unwrap()
            .contains("asked for a person (\"agente\")"),
        "{offer}"
    );
    assert_eq!(d["bot.intent"], "order-status", "{offer}");
    let transcript = d["bot.transcript"].as_str().unwrap();
    assert!(
        transcript.contains("customer: Hi, where's my parcel?")
            && transcript.contains("bot: You can follow your parcel")
            && transcript.contains("customer: quiero hablar con un agente"),
        "{transcript}"
    );
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");

    // After the hand-off the bot is silent: her question reaches Bob only.
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m3", "text": "where is my order"}),
    );
    let acked = until(&mut cust, "m3 stored", |m| {
        m["type"] == "ack" && m["id"] == "m3"
    });
    assert!(!acked.iter().any(|m| m["from"] == "bot"), "{acked:?}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&bob),
        r#"{"text":"Bob here: it left yesterday."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let next_msgs = until(&mut cust, "Bob's message", |m| m["from"] == "agent");
    assert!(
        !next_msgs.iter().any(|m| m["from"] == "bot"),
        "nothing from the bot after the hand-off: {next_msgs:?}"
    );
    // The timeline: the bot's stage, its answers stored as the bot's messages.
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    let one = json(&one);
    let k = kinds(&one);
    let (start, end) = (
        k.iter().position(|x| x == "bot started").unwrap(),
        k.iter().position(|x| x == "bot ended").unwrap(),
    );
    assert!(start < end, "{k:?}");
    let ended = &one["timeline"][end]["data"];
    assert_eq!(
        (ended["reason"].as_str(), ended["intent"].as_str()),
        (Some("asked"), Some("order-status")),
        "{one}"
    );
    let bot_messages = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message" && e["data"]["from"] == "bot")
        .count();
    assert_eq!(bot_messages, 2, "the answer and the hand-off notice: {one}");
    // Stored in the order said: her question, then the bot's answer to it.
    let said: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| e["data"]["from"].as_str().unwrap())
        .take(2)
        .collect();
    assert_eq!(said, ["customer", "bot"], "{one}");
    assert_eq!(one["queue"], "support", "{one}");

    // On WhatsApp: the short answer goes out through the provider.
    let sent = |graph: &Posts| -> Vec<String> {
        graph
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).ok())
            .filter_map(|b| b["text"]["body"].as_str().map(str::to_string))
            .collect()
    };
    let now = omnigate::clock::unix_secs();
    let (code, body) = post_signed(
        &g,
        "wa",
        &text_from("15557770001", "wamid.B1", now, "my package has not arrived"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_for("the bot's WhatsApp answer", Duration::from_secs(10), || {
        sent(&graph)
            .iter()
            .any(|t| t.starts_with("Track your parcel at"))
    });
    let (code, body) = post_signed(
        &g,
        "wa",
        &text_from("15557770001", "wamid.B2", now, "Humano por favor"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let offer = next(&g, &mut agent, "offer");
    assert_eq!(offer["channel"], "whatsapp", "{offer}");
    assert!(
        offer["details"]["bot.transcript"]
            .as_str()
            .unwrap()
            .contains("bot: Track your parcel at"),
        "{offer}"
    );
    assert_eq!(offer["details"]["bot.intent"], "order-status", "{offer}");
    wait_for(
        "the hand-off notice on WhatsApp",
        Duration::from_secs(10),
        || sent(&graph).iter().any(|t| t.starts_with("Le comunico")),
    );
    assert_eq!(sent(&graph).len(), 2, "{:?}", sent(&graph));

    // Bob takes the thread, resolves it and closes it. Ada writes again: a new
    // conversation, and the bot's again (answered, not offered).
    let wa = offer["interaction"].as_str().unwrap().to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{wa}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(&format!("/api/agent/work/{wa}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{wa}/wrap_up"),
        Some(&bob),
        r#"{"disposition":"answered","resolved":true}"#,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_signed(
        &g,
        "wa",
        &text_from("15557770001", "wamid.B3", now, "what time do you close"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_for("the bot answers her again", Duration::from_secs(10), || {
        sent(&graph)
            .iter()
            .any(|t| t.starts_with("We answer calls Mon-Fri"))
    });

    // Grace's question is answered and she leaves: contained.
    let mut grace = ws(&g, "/chat/ws");
    send(
        &mut grace,
        serde_json::json!({"type": "start", "name": "Grace", "address": "grace@example.com"}),
    );
    let w = until(&mut grace, "welcome", ty("welcome"));
    let gchat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    send(
        &mut grace,
        serde_json::json!({"type": "message", "id": "g1", "text": "are you open on saturday?"}),
    );
    until(&mut grace, "the opening hours", |m| {
        m["from"] == "bot"
            && m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Our agents answer calls"))
    });
    send(&mut grace, serde_json::json!({"type": "leave"}));
    wait_for("Grace's chat closed", Duration::from_secs(10), || {
        let (_, one) = g.get_auth(&format!("/api/interactions/{gchat}"), "test-token");
        kinds(&json(&one)).contains(&"closed".to_string())
    });
    let (_, one) = g.get_auth(&format!("/api/interactions/{gchat}"), "test-token");
    let one = json(&one);
    let ended = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "bot ended")
        .unwrap_or_else(|| panic!("the bot's part ends with the chat: {one}"));
    assert_eq!(ended["data"]["handoff"], false, "{one}");
    assert_eq!(ended["data"]["intent"], "opening-hours", "{one}");

    // The KPIs: of the bot's three finished conversations one was contained and two
    // handed over (both wanting their order); Ada's new thread is still the bot's.
    let (code, body) = g.get_auth("/api/kpis", "test-token");
    assert_eq!(code, 200, "{body}");
    let k = &json(&body)["total"];
    let ratio = |r: &serde_json::Value| (r["num"].as_u64(), r["den"].as_u64());
    assert_eq!(ratio(&k["containment"]), (Some(1), Some(3)), "{k}");
    assert_eq!(ratio(&k["bot_handoff"]), (Some(2), Some(3)), "{k}");
    let by = &k["bot_handoff_by_intent"];
    assert_eq!(ratio(&by["order-status"]), (Some(2), Some(2)), "{k}");
    assert_eq!(ratio(&by["opening-hours"]), (Some(0), Some(1)), "{k}");
    assert_eq!(k["abandoned"]["bot"], 1, "Grace left the bot: {k}");
}

/// Bob in headless Chromium is offered the chat the bot handed over, with the bot's
/// summary, intent and transcript on the screen-pop; he answers it and replies, and
/// the bot says nothing more.
#[test]
fn bob_in_chromium_is_offered_the_bots_chat_with_what_the_bot_learned() {
    let base = 27900;
    let g = Gateway::start(base, "demo = true", "", "[chat]\nbot = true\n");
    g.wait_log("knowledge base loaded");
    let artifacts = repo("target/e2e-artifacts/bot-handoff");
    let _ = std::fs::remove_dir_all(&artifacts);
    let web = format!("http://127.0.0.1:{}", g.http);
    let mut b = crate::desktop::Browser::run(
        "agent_bot.mjs",
        &[&web, "bob", "demo-bob", &artifacts.display().to_string()],
    );
    b.step("available", &g);
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Ada", "address": "ada@example.com"}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "Hi, where's my parcel?"}),
    );
    until(&mut cust, "the bot's answer", |m| m["from"] == "bot");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "I want a human"}),
    );
    until(&mut cust, "the hand-off notice", |m| {
        m["from"] == "bot"
            && m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("I am passing"))
    });
    let o = b.step("offered", &g);
    let pop = o["pop"].as_str().unwrap();
    assert!(pop.contains("Before you: the bot"), "{o}");
    assert!(
        pop.contains("bot.intent") && pop.contains("order-status"),
        "the intent on the pop: {o}"
    );
    assert!(
        pop.contains("asked for a person (\"human\")"),
        "the summary on the pop: {o}"
    );
    let transcript = o["transcript"].as_str().unwrap();
    assert!(
        transcript.contains("customer: Hi, where's my parcel?")
            && transcript.contains("bot: You can follow your parcel")
            && transcript.contains("customer: I want a human"),
        "{transcript}"
    );
    // Once the chat is Bob's (the page answered), Ada asks on; Bob replies from it.
    wait_for("the chat is Bob's", Duration::from_secs(20), || {
        let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
        json(&one)["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["kind"] == "assigned"))
    });
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m3", "text": "is it on the way?"}),
    );
    let r = b.step("replied", &g);
    assert_eq!(
        r["bot_messages"], 2,
        "the answer and the notice, none after: {r}"
    );
    let got = until(&mut cust, "Bob's reply", |m| {
        m["from"] == "agent" && m["text"] == "Bob here: it left yesterday."
    });
    assert!(
        !got.iter().any(|m| m["from"] == "bot"),
        "nothing from the bot after the hand-off: {got:?}"
    );
    b.finish();
}

const BOT_SECRET: &str = "bot-secret-0123456789";
const BOT_TOKEN: &str = "bot-token-0123456789";

/// The events the fake bot got so far, each one's signature checked.
fn bot_events(posts: &Posts) -> Vec<serde_json::Value> {
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
                omnigate::channels::signature::sign_open(BOT_SECRET, ts, body.as_bytes()),
                "signed with [bot] secret: {body}"
            );
            assert_eq!(header(":request"), "POST /bot HTTP/1.1");
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["events"][0].clone()
        })
        .collect()
}

/// An external bot (`[bot] url`) served by the test: it receives each customer
/// message of a chat it owns as a signed `message` event, answers through
/// `/api/bot/conversations/{id}/messages` with its token, and hands off with one
/// call: Bob is offered the chat with the bot's intent, summary and transcript, and
/// the bot is refused (409) and sent nothing after. A bot that refuses an event
/// (400) hands the chat to a person at once, who is told why.
#[test]
fn an_external_bot_gets_signed_events_answers_and_hands_off() {
    let base = 27650;
    let bot = serve(base + 30, |_, _, _, body| {
        if body.contains("Grace") {
            ("400 Bad Request".into(), r#"{"error":"not today"}"#.into())
        } else {
            ("200 OK".into(), "{}".into())
        }
    });
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!(
            "[chat]\nbot = true\n\n[bot]\nurl = \"http://127.0.0.1:{}/bot\"\nsecret = \"{BOT_SECRET}\"\ntoken = \"{BOT_TOKEN}\"\n",
            base + 30
        ),
    );
    let (bob, mut agent) = on_duty(&g, "bob", "demo-bob");
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Ada", "address": "ada@example.com"}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "where is my order 1234?"}),
    );
    wait_for("the bot's first event", Duration::from_secs(10), || {
        !bot.lock().unwrap().is_empty()
    });
    let e = &bot_events(&bot)[0];
    assert_eq!(e["type"], "message", "{e}");
    assert_eq!(e["id"], format!("{chat}.1"), "{e}");
    assert_eq!(e["conversation"], chat.as_str(), "{e}");
    assert_eq!(e["channel"], "webchat", "{e}");
    assert_eq!(e["name"], "Ada", "{e}");
    assert_eq!(e["text"], "where is my order 1234?", "{e}");

    // The bot API: its token first, then a live conversation, then a good body.
    let says = format!("/api/bot/conversations/{chat}/messages");
    let answer = r#"{"text":"Order 1234 left the warehouse today."}"#;
    assert_eq!(g.post(&says, None, answer).0, 401);
    assert_eq!(g.post(&says, Some("test-token"), answer).0, 401);
    let (code, body) = g.post(
        "/api/bot/conversations/no-such-chat/messages",
        Some(BOT_TOKEN),
        answer,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = g.post(&says, Some(BOT_TOKEN), r#"{"txt":"typo"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"].as_str().unwrap().contains("txt"),
        "{body}"
    );
    let (code, body) = g.post(&says, Some(BOT_TOKEN), answer);
    assert_eq!(code, 200, "{body}");
    let got = until(&mut cust, "the bot's answer", |m| m["from"] == "bot");
    assert_eq!(
        got.last().unwrap()["text"],
        "Order 1234 left the warehouse today."
    );
    // Not offered while the bot has it.
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    assert!(json(&one)["offered_at"].is_null(), "{one}");

    // Her next message is the bot's second event; it hands off with one call.
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "can it go to my office instead?"}),
    );
    wait_for("the bot's second event", Duration::from_secs(10), || {
        bot.lock().unwrap().len() == 2
    });
    let e = &bot_events(&bot)[1];
    assert_eq!(e["id"], format!("{chat}.2"), "{e}");
    let (code, body) = g.post(
        &format!("/api/bot/conversations/{chat}/handoff"),
        Some(BOT_TOKEN),
        r#"{"intent":"bad intent!","summary":"x"}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = g.post(
        &format!("/api/bot/conversations/{chat}/handoff"),
        Some(BOT_TOKEN),
        r#"{"intent":"address-change","summary":"wants order 1234 sent to her office"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let offer = next(&g, &mut agent, "offer");
    assert_eq!(offer["interaction"], chat.as_str(), "{offer}");
    let d = &offer["details"];
    assert_eq!(d["bot.intent"], "address-change", "{offer}");
    assert_eq!(
        d["bot.summary"], "wants order 1234 sent to her office",
        "{offer}"
    );
    let transcript = d["bot.transcript"].as_str().unwrap();
    assert!(
        transcript.contains("customer: where is my order 1234?")
            && transcript.contains("bot: Order 1234 left the warehouse today.")
            && transcript.contains("customer: can it go to my office instead?"),
        "{transcript}"
    );
    // Handed over: the bot is refused, and hears nothing more.
    let (code, body) = g.post(&says, Some(BOT_TOKEN), answer);
    assert_eq!(code, 409, "{body}");
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m3", "text": "thanks"}),
    );
    until(&mut cust, "m3 stored", |m| {
        m["type"] == "ack" && m["id"] == "m3"
    });
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&bob),
        r#"{"text":"Bob here: done, it goes to your office."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let later = until(&mut cust, "Bob's message", |m| m["from"] == "agent");
    assert!(!later.iter().any(|m| m["from"] == "bot"), "{later:?}");
    assert_eq!(
        bot.lock().unwrap().len(),
        2,
        "nothing forwarded after the hand-off"
    );
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    let one = json(&one);
    let ended = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "bot ended")
        .unwrap_or_else(|| panic!("{one}"));
    assert_eq!(ended["data"]["reason"], "bot", "{one}");
    assert_eq!(ended["data"]["handoff"], true, "{one}");

    // Bob finishes Ada's chat; Grace's message is refused by the bot: a person
    // takes over at once, and she is told.
    let (code, body) = g.post(&format!("/api/agent/work/{chat}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/wrap_up"),
        Some(&bob),
        r#"{"disposition":"answered","resolved":true}"#,
    );
    assert_eq!(code, 200, "{body}");
    let mut grace = ws(&g, "/chat/ws");
    send(
        &mut grace,
        serde_json::json!({"type": "start", "name": "Grace", "address": "grace@example.com"}),
    );
    until(&mut grace, "welcome", ty("welcome"));
    send(
        &mut grace,
        serde_json::json!({"type": "message", "id": "g1", "text": "my card was swallowed"}),
    );
    until(&mut grace, "the hand-off notice", |m| {
        m["from"] == "bot"
            && m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("I am passing you to a person"))
    });
    let offer = next(&g, &mut agent, "offer");
    let summary = offer["details"]["bot.summary"].as_str().unwrap();
    assert!(
        summary.contains("could not be reached") && summary.contains("not today"),
        "{offer}"
    );
}

/// The bot as a text flow of the dialplans (`[bot] flow = "shop-bot"`, the shipped
/// `dialplans/shop-bot.yaml`): Ada's FAQ is answered from the knowledge base and the
/// flow asks whether there is anything else; her next question has no answer, so the
/// flow asks for her account number (a wrong one is asked again), looks her up in the
/// store and hands the chat to a person with the summary, the intent, the priority
/// and what it collected on Bob's offer. After the hand-off the bot is silent. Grace's
/// question is answered, she writes "no thanks", and the flow's end closes her chat
/// as the bot's (contained).
#[test]
fn a_text_flow_bot_asks_looks_up_and_hands_off_with_what_it_collected() {
    let base = 27550;
    let dialplans = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!(
            "[chat]\nbot = true\n\n[bot]\nflow = \"shop-bot\"\n\n[dialplan]\ndir = \"{}\"\ndefault_flow = \"\"\n",
            dialplans.display()
        ),
    );
    g.wait_log("knowledge base loaded");
    let (bob, mut agent) = on_duty(&g, "bob", "demo-bob");
    let mut cust = ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Ada", "address": "ada@example.com"}),
    );
    let w = until(&mut cust, "welcome", ty("welcome"));
    let chat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    let bot_says = |cust: &mut _, what: &str, starts: &str| {
        let starts = starts.to_string();
        until(cust, what, move |m| {
            m["from"] == "bot" && m["text"].as_str().is_some_and(|t| t.starts_with(&starts))
        })
    };
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m1", "text": "Hi, where's my parcel?"}),
    );
    bot_says(&mut cust, "the answer", "You can follow your parcel at");
    bot_says(
        &mut cust,
        "the flow's ask",
        "Can I help with anything else?",
    );
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m2", "text": "what's the weather like"}),
    );
    bot_says(
        &mut cust,
        "asked for the account",
        "I could not find an answer",
    );
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m3", "text": "it is 12 34 ab"}),
    );
    bot_says(&mut cust, "asked again", "An account number is digits only");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m4", "text": "1234"}),
    );
    bot_says(&mut cust, "found in the store", "Thank you, Ada Lovelace.");
    let offer = next(&g, &mut agent, "offer");
    assert_eq!(offer["interaction"], chat.as_str(), "{offer}");
    let d = &offer["details"];
    assert_eq!(
        d["bot.summary"], "Ada Lovelace (account 1234, gold) asked: what's the weather like",
        "{offer}"
    );
    assert_eq!(d["bot.intent"], "account-question", "{offer}");
    assert_eq!(d["account"], "1234", "what the flow collected: {offer}");
    assert_eq!(d["customer.tier"], "gold", "{offer}");
    // The gateway's own details stay its own: the typed name is still unverified.
    assert_eq!(
        (d["name"].as_str(), d["verified"].as_bool()),
        (Some("Ada"), Some(false)),
        "{offer}"
    );
    let transcript = d["bot.transcript"].as_str().unwrap();
    assert!(
        transcript.contains("customer: it is 12 34 ab")
            && transcript.contains("bot: Thank you, Ada Lovelace."),
        "{transcript}"
    );
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    send(
        &mut cust,
        serde_json::json!({"type": "message", "id": "m5", "text": "hello?"}),
    );
    let acked = until(&mut cust, "m5 stored", |m| {
        m["type"] == "ack" && m["id"] == "m5"
    });
    assert!(!acked.iter().any(|m| m["from"] == "bot"), "{acked:?}");
    let (_, one) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    let one = json(&one);
    let ended = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "bot ended")
        .unwrap_or_else(|| panic!("{one}"));
    assert_eq!(
        (
            ended["data"]["reason"].as_str(),
            ended["data"]["handoff"].as_bool()
        ),
        (Some("flow"), Some(true)),
        "{one}"
    );

    // Grace is answered and done: the flow's end closes the chat, the bot's.
    let mut grace = ws(&g, "/chat/ws");
    send(
        &mut grace,
        serde_json::json!({"type": "start", "name": "Grace", "address": "grace@example.com"}),
    );
    let w = until(&mut grace, "welcome", ty("welcome"));
    let gchat = w.last().unwrap()["chat"].as_str().unwrap().to_string();
    send(
        &mut grace,
        serde_json::json!({"type": "message", "id": "g1", "text": "are you open on saturday?"}),
    );
    bot_says(&mut grace, "the opening hours", "Our agents answer calls");
    bot_says(
        &mut grace,
        "anything else",
        "Can I help with anything else?",
    );
    send(
        &mut grace,
        serde_json::json!({"type": "message", "id": "g2", "text": "no thanks!"}),
    );
    bot_says(&mut grace, "goodbye", "Thank you for writing. Goodbye!");
    until(&mut grace, "closed by the bot", |m| {
        m["type"] == "closed" && m["by"] == "bot"
    });
    let (_, one) = g.get_auth(&format!("/api/interactions/{gchat}"), "test-token");
    let one = json(&one);
    let kinds: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let (end, closed) = (
        kinds.iter().position(|k| *k == "bot ended").unwrap(),
        kinds.iter().position(|k| *k == "closed").unwrap(),
    );
    assert!(end < closed, "{kinds:?}");
    let ended = &one["timeline"][end]["data"];
    assert_eq!(
        (
            ended["handoff"].as_bool(),
            ended["reason"].as_str(),
            ended["intent"].as_str()
        ),
        (Some(false), Some("resolved"), Some("opening-hours")),
        "{one}"
    );
    assert!(one["queue"].is_null(), "never queued: {one}");
}
