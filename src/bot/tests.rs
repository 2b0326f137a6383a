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
