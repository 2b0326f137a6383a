use super::*;
use crate::kb::Library;
use std::path::Path;
use std::sync::Arc;

fn kb() -> Arc<Matcher> {
    let lib = Library::new(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("kb"),
        crate::kb::matcher::DEFAULT_THRESHOLD,
    );
    lib.reload().expect("the demo knowledge base");
    lib.matcher()
}

fn says(text: &str, channel: &str) -> Input {
    Input::CustomerSays {
        text: text.into(),
        channel: channel.into(),
        lang: None,
    }
}

fn drain(b: &mut Bot) -> Vec<Output> {
    std::iter::from_fn(|| b.poll()).collect()
}

fn replies(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Reply { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn handoff(out: &[Output]) -> Option<&Handoff> {
    out.iter().find_map(|o| match o {
        Output::Handoff(h) => Some(&**h),
        _ => None,
    })
}

#[test]
fn the_bot_answers_routine_questions_in_the_channels_form_and_keeps_the_conversation() {
    let m = kb();
    let mut b = Bot::new(BotConfig::default());
    b.handle(1_000, says("Hi, where's my parcel?", "whatsapp"), &m);
    let out = drain(&mut b);
    assert_eq!(out.len(), 1, "{out:?}");
    let Output::Reply {
        text,
        article,
        confidence,
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert!(
        text.starts_with("Track your parcel"),
        "the short answer: {text}"
    );
    assert_eq!(article.as_deref(), Some("order-status"));
    assert!(*confidence >= 0.5);
    assert!(b.owned());
    b.handle(2_000, says("what time do you close today", "webchat"), &m);
    let out = drain(&mut b);
    assert!(
        replies(&out)[0].starts_with("Our agents answer calls"),
        "{out:?}"
    );
    let t: Vec<(&str, u64)> = b.transcript().map(|t| (t.from, t.at)).collect();
    assert_eq!(
        t,
        [
            ("customer", 1_000),
            ("bot", 1_000),
            ("customer", 2_000),
            ("bot", 2_000)
        ]
    );
}

#[test]
fn asking_for_a_person_hands_off_at_once_with_the_transcript_and_then_the_bot_is_silent() {
    let m = kb();
    let mut b = Bot::new(BotConfig::default());
    b.handle(1, says("where is my order", "webchat"), &m);
    drain(&mut b);
    // "Agente" with an accent-free, capitalised spelling is the word; "agents" is not.
    b.handle(
        2,
        says("Quiero hablar con un AGENTE por favor", "webchat"),
        &m,
    );
    let out = drain(&mut b);
    let h = handoff(&out).expect("handed off");
    assert_eq!(h.reason, Reason::Asked("agente".into()));
    assert_eq!(h.intent.as_deref(), Some("order-status"), "what she wanted");
    assert!(h.summary.contains("asked for a person"), "{}", h.summary);
    // Her two messages, the answer, and the bot telling her a person comes.
    assert_eq!(h.transcript.len(), 4, "{:?}", h.transcript);
    assert_eq!(
        h.transcript[2].text,
        "Quiero hablar con un AGENTE por favor"
    );
    assert!(
        replies(&out)[0].starts_with("Le comunico"),
        "the customer is told: {out:?}"
    );
    assert!(!b.owned());
    // Silent after the hand-off, whatever she writes.
    b.handle(3, says("where is my order", "webchat"), &m);
    b.handle(4, says("agent", "webchat"), &m);
    assert!(drain(&mut b).is_empty());

    let mut b = Bot::new(BotConfig::default());
    b.handle(1, says("do your agents work weekends?", "webchat"), &m);
    assert!(
        handoff(&drain(&mut b)).is_none(),
        "\"agents\" is not the word"
    );
}

#[test]
fn a_handoff_topic_answers_then_hands_off_and_two_misses_hand_off() {
    let m = kb();
    let mut b = Bot::new(BotConfig::default());
    b.handle(1, says("quiero cancelar mi pedido", "whatsapp"), &m);
    let out = drain(&mut b);
    assert_eq!(replies(&out)[0], "Un colega lo cancelará con usted.");
    let h = handoff(&out).unwrap();
    assert_eq!(h.reason, Reason::Topic("cancel-order".into()));
    assert_eq!(h.lang, Some(Lang::Es));
    assert!(
        replies(&out)[1].starts_with("Le comunico"),
        "told in Spanish: {out:?}"
    );

    let mut b = Bot::new(BotConfig::default());
    b.handle(1, says("what's the weather like", "webchat"), &m);
    let out = drain(&mut b);
    assert!(handoff(&out).is_none());
    assert!(
        replies(&out)[0].starts_with("Sorry, I did not understand"),
        "{out:?}"
    );
    // An answer between misses does not reset the count: two in all.
    b.handle(2, says("opening hours", "webchat"), &m);
    assert!(handoff(&drain(&mut b)).is_none());
    b.handle(3, says("my cat is purple", "webchat"), &m);
    let out = drain(&mut b);
    let h = handoff(&out).expect("second miss");
    assert_eq!(h.reason, Reason::Misses(2));
    assert_eq!(h.intent.as_deref(), Some("opening-hours"));

    // Configured: one miss is enough; other words ask for a person.
    let cfg = BotConfig {
        handoff_words: vec!["operador".into()],
        misses: 1,
        ..Default::default()
    };
    let mut b = Bot::new(cfg.clone());
    b.handle(1, says("my cat is purple", "webchat"), &m);
    assert_eq!(handoff(&drain(&mut b)).unwrap().reason, Reason::Misses(1));
    let mut b = Bot::new(cfg);
    b.handle(1, says("con un operador", "webchat"), &m);
    assert!(matches!(
        handoff(&drain(&mut b)).unwrap().reason,
        Reason::Asked(_)
    ));
}

#[test]
fn a_person_joining_silences_the_bot_and_the_transcript_is_bounded() {
    let m = kb();
    let mut b = Bot::new(BotConfig::default());
    b.handle(1, Input::PersonJoined, &m);
    assert!(!b.owned());
    b.handle(2, says("where is my order", "webchat"), &m);
    assert!(drain(&mut b).is_empty());

    let mut b = Bot::new(BotConfig {
        misses: u32::MAX,
        ..Default::default()
    });
    let long = "where is my order ".repeat(500);
    for i in 0..(MAX_TURNS as u64) {
        b.handle(i, says(&long, "webchat"), &m);
    }
    drain(&mut b);
    assert_eq!(b.transcript().count(), MAX_TURNS);
    assert!(b
        .transcript()
        .all(|t| t.text.chars().count() <= MAX_TURN_CHARS));
    assert_eq!(b.transcript().next().unwrap().at, (MAX_TURNS / 2) as u64);
}

#[test]
fn a_conversation_closed_while_the_bot_has_it_ends_once_with_its_intent() {
    let m = kb();
    let mut b = Bot::new(BotConfig::default());
    b.handle(1, says("where is my order", "webchat"), &m);
    drain(&mut b);
    b.handle(2, Input::Closed, &m);
    assert_eq!(
        drain(&mut b),
        vec![Output::Ended {
            intent: Some("order-status".into())
        }]
    );
    assert!(!b.owned());
    b.handle(3, Input::Closed, &m);
    assert!(drain(&mut b).is_empty(), "ended once");

    // Handed over first: the hand-off was its end; closing says nothing more.
    let mut b = Bot::new(BotConfig::default());
    b.handle(1, says("agent please", "webchat"), &m);
    assert!(handoff(&drain(&mut b)).is_some());
    b.handle(2, Input::Closed, &m);
    assert!(drain(&mut b).is_empty());
}

#[test]
fn an_external_bot_is_forwarded_the_customers_words_answers_and_hands_off_once() {
    let m = kb();
    let cfg = BotConfig {
        url: "http://127.0.0.1:9/bot".into(),
        secret: "s".repeat(16),
        token: "t".repeat(16),
        ..Default::default()
    };
    let mut b = Bot::new(cfg.clone());
    // Not matched here: the external bot decides.
    b.handle(1, says("where is my order", "webchat"), &m);
    assert_eq!(
        drain(&mut b),
        vec![Output::Forward {
            text: "where is my order".into()
        }]
    );
    b.handle(
        2,
        Input::BotReply {
            text: " It left today. ".into(),
        },
        &m,
    );
    assert_eq!(replies(&drain(&mut b)), ["It left today."]);
    b.handle(
        3,
        Input::BotHandoff {
            intent: Some("order-status".into()),
            summary: Some("wants order 1234 sooner".into()),
        },
        &m,
    );
    let out = drain(&mut b);
    let h = handoff(&out).expect("handed over");
    assert!(
        replies(&out).is_empty(),
        "the external bot says what it wants before it hands off: {out:?}"
    );
    assert_eq!(h.reason, Reason::Bot("wants order 1234 sooner".into()));
    assert_eq!(h.intent.as_deref(), Some("order-status"));
    let said: Vec<String> = h
        .transcript
        .iter()
        .map(|t| format!("{}: {}", t.from, t.text))
        .collect();
    assert_eq!(
        &said[..2],
        ["customer: where is my order", "bot: It left today."]
    );
    // Silent after: a late reply is not sent, nothing more is forwarded.
    b.handle(
        4,
        Input::BotReply {
            text: "still here".into(),
        },
        &m,
    );
    b.handle(5, says("hello?", "webchat"), &m);
    assert!(drain(&mut b).is_empty());

    // The customer's hand-off words still work without asking the bot.
    let mut b = Bot::new(cfg.clone());
    b.handle(1, says("agente por favor", "whatsapp"), &m);
    let out = drain(&mut b);
    assert!(matches!(handoff(&out).unwrap().reason, Reason::Asked(_)));
    assert!(!out.iter().any(|o| matches!(o, Output::Forward { .. })));

    // Unreachable: a person takes over, saying why.
    let mut b = Bot::new(cfg);
    b.handle(1, says("my card", "sms"), &m);
    drain(&mut b);
    b.handle(
        2,
        Input::BotUnreachable {
            why: "connection refused".into(),
        },
        &m,
    );
    let out = drain(&mut b);
    assert_eq!(replies(&out).len(), 1, "the customer is told: {out:?}");
    let h = handoff(&out).unwrap();
    assert_eq!(h.reason.as_str(), "unreachable");
    assert!(
        h.summary.contains("connection refused") && h.summary.contains("my card"),
        "{}",
        h.summary
    );
}

// ---------------------------------------------------------------- a text flow

fn flow_bot(text: &str, channel: &str) -> Bot {
    let d = tempfile::tempdir().unwrap();
    let f = crate::dialplan::load_str(
        text,
        &d.path().join("bot.yaml"),
        &crate::dialplan::LoadOptions { tts: false },
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let info = crate::dialplan::CallInfo {
        caller: "+593991234567".into(),
        caller_name: "Grace".into(),
        call_id: "I-1".into(),
        ..Default::default()
    };
    let set = Arc::new(crate::dialplan::FlowSet::default());
    let run = crate::dialplan::Run::new(set, Arc::new(f), &info);
    Bot::with_flow(BotConfig::default(), run, channel)
}

const FLOW: &str = "kind: text
steps:
  faq:
    match_kb:
    not_found: account
  answered:
    reply: ${kb.answer}
  more:
    ask: {prompt: Anything else?, timeout: 5m}
    timeout: bye
  again:
    goto: faq
  account:
    ask: {prompt: 'Your account number, ${caller_name}?', validate: number, into: account, retries: 1}
    invalid: person
    timeout: person
  find:
    lookup: {by: account, value: '${account}'}
    not_found: person
  known:
    handoff: {queue: vip, priority: 8, skills: [billing], summary: '${customer.name} (${account}) asked: ${message}'}
  person:
    handoff:
  bye:
    reply: Goodbye!
";

#[test]
fn a_flow_bot_answers_collects_and_hands_off_with_the_queue_and_what_it_collected() {
    let m = kb();
    let mut b = flow_bot(FLOW, "whatsapp");
    b.handle(1_000, says("Hi, where's my parcel?", "whatsapp"), &m);
    let out = drain(&mut b);
    assert!(
        replies(&out)[0].starts_with("Track your parcel"),
        "the WhatsApp answer: {out:?}"
    );
    assert_eq!(replies(&out)[1], "Anything else?");
    b.handle(2_000, says("what's the weather like", "whatsapp"), &m);
    let out = drain(&mut b);
    assert_eq!(replies(&out), ["Your account number, Grace?"]);
    b.handle(3_000, says("1234", "whatsapp"), &m);
    let out = drain(&mut b);
    assert_eq!(
        out,
        [Output::Lookup {
            by: crate::dialplan::model::LookupBy::Account,
            value: "1234".into()
        }]
    );
    assert!(b.owned(), "the bot has it while the lookup runs");
    let fields = vec![("name".to_string(), "Ada Lovelace".to_string())];
    b.handle(3_100, Input::FlowLookup(Ok(Some(fields))), &m);
    let out = drain(&mut b);
    // The flow said what it wanted; no notice of the bot's own is added.
    assert!(replies(&out).is_empty(), "{out:?}");
    let h = handoff(&out).expect("handed off");
    assert_eq!(
        h.reason,
        Reason::Flow("Ada Lovelace (1234) asked: 1234".into())
    );
    assert_eq!(h.reason.as_str(), "flow");
    assert_eq!(h.queue.as_deref(), Some("vip"));
    assert_eq!(h.priority, Some(8));
    assert_eq!(h.skills, ["billing"]);
    assert_eq!(
        h.intent.as_deref(),
        Some("order-status"),
        "the last article matched"
    );
    assert!(
        h.vars.contains(&("account".into(), "1234".into())),
        "{:?}",
        h.vars
    );
    assert!(h
        .vars
        .contains(&("customer.name".into(), "Ada Lovelace".into())));
    assert!(
        !h.vars
            .iter()
            .any(|(k, _)| k == "caller" || k == "message" || k == "now"),
        "the gateway's own variables are not the flow's: {:?}",
        h.vars
    );
    let said: Vec<&str> = h.transcript.iter().map(|t| t.from).collect();
    assert_eq!(
        said,
        ["customer", "bot", "bot", "customer", "bot", "customer"]
    );
    assert!(!b.owned());
    b.handle(4_000, says("hello?", "whatsapp"), &m);
    assert!(drain(&mut b).is_empty(), "silent after the hand-off");
}

#[test]
fn hand_off_words_win_over_the_flow_and_a_finished_flow_resolves_the_chat() {
    let m = kb();
    let mut b = flow_bot(FLOW, "webchat");
    b.handle(1_000, says("what's the weather like", "webchat"), &m);
    drain(&mut b);
    // In the middle of an ask, "agente" hands over at once, in Spanish.
    b.handle(2_000, says("quiero un agente", "webchat"), &m);
    let out = drain(&mut b);
    assert_eq!(
        replies(&out),
        ["Le comunico con una persona del equipo; ya tiene esta conversación."]
    );
    assert_eq!(
        handoff(&out).unwrap().reason,
        Reason::Asked("agente".into())
    );

    // A flow that ends (its last step, or `hangup`) ends the conversation: resolved by
    // the bot, with the intent it matched.
    let mut b = flow_bot(FLOW, "webchat");
    b.handle(1_000, says("are you open on sundays?", "webchat"), &m);
    let out = drain(&mut b);
    let Some(Output::Timer { id, after }) = out
        .iter()
        .find(|o| matches!(o, Output::Timer { .. }))
        .cloned()
    else {
        panic!("the ask's timer: {out:?}")
    };
    assert_eq!(after, Duration::from_secs(300));
    b.handle(301_000, Input::FlowTimer(id), &m);
    let out = drain(&mut b);
    assert_eq!(replies(&out), ["Goodbye!"]);
    assert_eq!(
        out.last(),
        Some(&Output::Resolved {
            intent: Some("opening-hours".into())
        })
    );
    assert!(!b.owned());
    // A stale timer or a late lookup does nothing.
    b.handle(302_000, Input::FlowTimer(id), &m);
    b.handle(302_000, Input::FlowLookup(Ok(None)), &m);
    assert!(drain(&mut b).is_empty());
}

#[test]
fn a_broken_flow_hands_over_with_the_notice() {
    let m = kb();
    let mut b = flow_bot(
        "kind: text\nsteps:\n  a:\n    goto: {flow: gone}\n",
        "webchat",
    );
    b.handle(1_000, says("hello", "webchat"), &m);
    let out = drain(&mut b);
    let h = handoff(&out).expect("handed off");
    assert_eq!(h.reason.as_str(), "flow_error");
    assert!(
        h.summary
            .starts_with("the bot's flow broke (goto: no flow named `gone` is loaded)"),
        "{}",
        h.summary
    );
    assert_eq!(
        replies(&out),
        ["I am passing you to a person on the team; they have this conversation."]
    );
}

#[test]
fn a_flow_bot_config_names_one_flow_or_an_external_bot_not_both() {
    let cfg = BotConfig {
        flow: "shop-bot".into(),
        url: "https://bot.example/events".into(),
        secret: "s".repeat(16),
        token: "t".repeat(16),
        ..Default::default()
    };
    assert_eq!(cfg.problem().map(|p| p.0), Some("flow"));
}
