//! The thread's rules on simulated time, with the store played by the test.

use super::*;
use proptest::prelude::*;

fn t0() -> Time {
    Time {
        now: crate::clock::now(),
        unix_ms: 1_700_000_000_000,
    }
}

fn later(t: Time, secs: u64) -> Time {
    Time {
        now: t.now + Duration::from_secs(secs),
        unix_ms: t.unix_ms + secs * 1000,
    }
}

fn drain(th: &mut Thread) -> Vec<Output> {
    std::iter::from_fn(|| th.poll()).collect()
}

fn says(id: &str, text: &str) -> Input {
    Input::CustomerSays {
        id: id.into(),
        text: text.into(),
        reply: None,
    }
}

/// Stores whatever the thread asks to store (`ok`), returning everything it output.
fn store_all(th: &mut Thread, t: Time, ok: bool) -> Vec<Output> {
    let mut all = Vec::new();
    loop {
        let out = drain(th);
        if out.is_empty() {
            return all;
        }
        for o in &out {
            if let Output::Store { seq, .. } = o {
                let result = if ok { Ok(()) } else { Err("disk full".into()) };
                th.handle(t, Input::Stored { seq: *seq, result });
            }
        }
        all.extend(out);
    }
}

fn customer_frames(out: &[Output]) -> Vec<serde_json::Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Customer(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_is_acknowledged_and_shown_only_once_stored_and_a_resend_counts_once() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(t, says("c1", "my invoice"));
    let out = drain(&mut th);
    assert_eq!(out.len(), 1, "only the write: {out:?}");
    let Output::Store { seq, data } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (*seq, &data["text"], &data["seq"]),
        (1, &"my invoice".into(), &1.into())
    );
    th.handle(
        t,
        Input::Stored {
            seq: 1,
            result: Ok(()),
        },
    );
    let out = drain(&mut th);
    assert_eq!(
        out[0],
        Output::Customer(serde_json::json!({"type": "ack", "id": "c1", "seq": 1}))
    );
    assert!(matches!(&out[1], Output::Customer(v) if v["text"] == "my invoice"));
    assert!(matches!(&out[2], Output::Agent(m) if m.seq == 1 && m.from == "customer"));
    // The ack was lost; the page sends it again: acked again, not stored again.
    th.handle(t, says("c1", "my invoice"));
    assert_eq!(
        drain(&mut th),
        [Output::Customer(
            serde_json::json!({"type": "ack", "id": "c1", "seq": 1})
        )]
    );
}

#[test]
fn a_message_the_store_refuses_is_not_acknowledged_and_says_to_send_again() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(t, says("c1", "hello"));
    th.handle(
        t,
        Input::AgentSays {
            name: "ann".into(),
            text: "hi".into(),
            reply: 7,
            template: None,
        },
    );
    let out = store_all(&mut th, t, false);
    let frames = customer_frames(&out);
    assert_eq!(frames.len(), 1, "{out:?}");
    assert_eq!(frames[0]["type"], "error");
    assert!(frames[0]["reason"]
        .as_str()
        .unwrap()
        .contains("send it again"));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Reply {
            reply: 7,
            result: Err(_)
        }
    )));
    assert!(!out.iter().any(|o| matches!(o, Output::Agent(_))));
    // The same id can be sent again and is stored then.
    th.handle(t, says("c1", "hello"));
    let out = store_all(&mut th, t, true);
    assert!(customer_frames(&out).iter().any(|v| v["type"] == "ack"));
}

#[test]
fn the_customer_is_slowed_down_and_a_thread_has_a_length() {
    let t = t0();
    let mut th = Thread::new(
        Limits {
            max_messages: 12,
            ..Limits::default()
        },
        "Grace".into(),
    );
    for i in 0..10 {
        th.handle(t, says(&format!("m{i}"), "x"));
    }
    store_all(&mut th, t, true);
    th.handle(t, says("m10", "x"));
    let f = customer_frames(&drain(&mut th));
    assert!(
        f[0]["reason"].as_str().unwrap().starts_with("slow down"),
        "{f:?}"
    );
    // Ten seconds on, two more fit; then the thread is full.
    let t = later(t, 11);
    for i in 10..12 {
        th.handle(t, says(&format!("m{i}"), "x"));
    }
    store_all(&mut th, t, true);
    th.handle(t, says("m12", "x"));
    let f = customer_frames(&drain(&mut th));
    assert!(
        f[0]["reason"].as_str().unwrap().contains("too long"),
        "{f:?}"
    );
}

#[test]
fn a_reconnecting_page_gets_what_it_missed_from_memory_or_from_the_store() {
    let t = t0();
    let mut th = Thread::new(
        Limits {
            recent: 3,
            ..Limits::default()
        },
        "Grace".into(),
    );
    let mut store: Vec<serde_json::Value> = Vec::new();
    for i in 1..=5 {
        th.handle(
            t,
            Input::AgentSays {
                name: "ann".into(),
                text: format!("line {i}"),
                reply: i,
                template: None,
            },
        );
        for o in drain(&mut th) {
            if let Output::Store { seq, data } = o {
                store.push(data);
                th.handle(
                    t,
                    Input::Stored {
                        seq,
                        result: Ok(()),
                    },
                );
            }
        }
        drain(&mut th);
    }
    // Saw up to 3: 4 and 5 are in memory.
    th.handle(
        t,
        Input::Connect {
            after: 3,
            agent: Some("ann".into()),
        },
    );
    let f = customer_frames(&drain(&mut th));
    assert_eq!(f[0]["type"], "state");
    assert_eq!(
        (f[0]["last_seq"].clone(), f[0]["agent"].clone()),
        (5.into(), "ann".into())
    );
    let seqs: Vec<u64> = f[1..].iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5]);
    // Saw nothing: 1 and 2 come from the store, then memory, each once, in order.
    th.handle(
        t,
        Input::Connect {
            after: 0,
            agent: None,
        },
    );
    let out = drain(&mut th);
    let Some(Output::LoadOlder { to, after, before }) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!((*to, *after, *before), (Reader::Customer, 0, 3));
    th.handle(
        t,
        Input::Older {
            to: Reader::Customer,
            after: 0,
            messages: store.clone(),
        },
    );
    let f = customer_frames(&drain(&mut th));
    let texts: Vec<&str> = f.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
}

#[test]
fn the_agent_joining_gets_the_transcript_then_the_customer_sees_them_join() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(t, Input::System("Welcome!".into()));
    th.handle(t, says("c1", "help"));
    store_all(&mut th, t, true);
    th.handle(t, Input::AgentJoined { who: "Ann".into() });
    let out = drain(&mut th);
    let Output::Transcript(tr) = &out[0] else {
        panic!("{out:?}")
    };
    let texts: Vec<&str> = tr.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Welcome!", "help"]);
    assert!(
        matches!(&out[1], Output::Customer(v) if v["text"] == "Ann joined the chat." && v["seq"] == 3)
    );
}

#[test]
fn the_bots_answer_is_stored_then_shown_as_the_bots_and_nothing_once_closed() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(t, says("c1", "where is my parcel"));
    th.handle(
        t,
        Input::BotSays("Track it at https://acme.test/track".into()),
    );
    let out = store_all(&mut th, t, true);
    let stored: Vec<(&str, &str)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Store { data, .. } => Some((
                data["from"].as_str().unwrap_or_default(),
                data["name"].as_str().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(stored, [("customer", "Grace"), ("bot", "Bot")]);
    let shown = customer_frames(&out);
    assert!(
        shown.iter().any(|f| f["from"] == "bot" && f["seq"] == 2),
        "{shown:?}"
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Agent(m) if m.from == "bot" && m.seq == 2)));
    // Read back from the store (a restart), it is still the bot's.
    let m = Message::from_stored(
        &serde_json::json!({"seq": 2, "from": "bot", "name": "Bot", "text": "x", "at": 1}),
    );
    assert_eq!(m.map(|m| m.from), Some("bot"));
    th.handle(
        t,
        Input::Close {
            by: "customer",
            reply: None,
        },
    );
    drain(&mut th);
    th.handle(t, Input::BotSays("too late".into()));
    assert!(drain(&mut th).is_empty(), "nothing after the close");
}

#[test]
fn the_end_is_committed_before_anyone_hears_of_it_and_nothing_is_taken_after() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(
        t,
        Input::Close {
            by: "agent",
            reply: Some(1),
        },
    );
    assert_eq!(drain(&mut th), [Output::StoreClose { by: "agent" }]);
    th.handle(t, says("late", "one more thing"));
    let f = customer_frames(&drain(&mut th));
    assert_eq!(f[0]["reason"], "the chat was closed by the agent");
    th.handle(
        t,
        Input::AgentSays {
            name: "ann".into(),
            text: "x".into(),
            reply: 2,
            template: None,
        },
    );
    assert!(matches!(
        drain(&mut th)[..],
        [Output::Reply {
            reply: 2,
            result: Err(_)
        }]
    ));
    th.handle(t, Input::CloseStored { result: Ok(()) });
    let out = drain(&mut th);
    assert_eq!(
        out,
        [
            Output::Customer(serde_json::json!({"type": "closed", "by": "agent"})),
            Output::Ended {
                by: "agent",
                result: Ok(())
            },
            Output::Reply {
                reply: 1,
                result: Ok(0)
            },
        ]
    );
    // A second close is answered at once and stores nothing.
    th.handle(
        t,
        Input::Close {
            by: "customer",
            reply: Some(3),
        },
    );
    assert_eq!(
        drain(&mut th),
        [Output::Reply {
            reply: 3,
            result: Ok(0)
        }]
    );
    // A page reconnecting after the end reads it.
    th.handle(
        t,
        Input::Connect {
            after: 0,
            agent: None,
        },
    );
    let f = customer_frames(&drain(&mut th));
    assert_eq!(f.last().unwrap()["type"], "closed");
}

#[derive(Debug, Clone)]
enum Op {
    Customer(u8),
    Agent,
    System,
    StoreFails,
    Reconnect(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Customer),
        Just(Op::Agent),
        Just(Op::System),
        Just(Op::StoreFails),
        (0u8..40).prop_map(Op::Reconnect),
    ]
}

proptest! {
    /// Whatever happens, a page that reconnects gets every stored message after what
    /// it saw, each once, in order; acknowledged ids map to stored messages; sequence
    /// numbers only grow.
    #[test]
    fn replay_gives_every_stored_message_once_in_order(ops in proptest::collection::vec(op(), 1..80)) {
        let t = t0();
        let mut th = Thread::new(Limits { recent: 5, customer_rate: 1000, ..Limits::default() }, "Grace".into());
        let mut store: Vec<serde_json::Value> = Vec::new();
        let mut fail_next = false;
        let mut seen_seq = 0u64;
        for o in ops {
            match o {
                Op::Customer(id) => th.handle(t, says(&format!("c{id}"), &format!("text {id}"))),
                Op::Agent => th.handle(t, Input::AgentSays { name: "ann".into(), text: "a".into(), reply: 0, template: None }),
                Op::System => th.handle(t, Input::System("s".into())),
                Op::StoreFails => fail_next = true,
                Op::Reconnect(after) => {
                    let after = u64::from(after).min(th.last_seq());
                    th.handle(t, Input::Connect { after, agent: None });
                    let mut frames = Vec::new();
                    for o in drain(&mut th) {
                        match o {
                            Output::LoadOlder { to, after, .. } => {
                                th.handle(t, Input::Older { to, after, messages: store.clone() });
                                frames.extend(customer_frames(&drain(&mut th)));
                            }
                            Output::Customer(v) => frames.push(v),
                            _ => {}
                        }
                    }
                    let got: Vec<u64> = frames.iter().filter(|v| v["type"] == "message" && v["from"] != "system").map(|v| v["seq"].as_u64().unwrap()).collect();
                    let want: Vec<u64> = store.iter().map(|d| d["seq"].as_u64().unwrap()).filter(|s| *s > after).collect();
                    prop_assert_eq!(got, want);
                }
            }
            for o in drain(&mut th) {
                if let Output::Store { seq, data } = o {
                    prop_assert!(seq > seen_seq);
                    seen_seq = seq;
                    let result = if fail_next { Err("x".to_string()) } else { store.push(data); Ok(()) };
                    fail_next = false;
                    th.handle(t, Input::Stored { seq, result });
                    for o in drain(&mut th) {
                        if let Output::Customer(v) = o {
                            if v["type"] == "ack" {
                                let seq = v["seq"].as_u64().unwrap();
                                prop_assert!(store.iter().any(|d| d["seq"] == seq));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A provider's message (a WhatsApp webhook) waits for its number: answered once
/// stored; the same message again, while it is being stored or after, gets the same
/// number and nothing is stored twice; a store failure answers every one who waits.
#[test]
fn a_providers_message_is_answered_once_stored_and_a_redelivery_counts_once() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Ada".into());
    let said = |id: &str, reply: u64| Input::CustomerSays {
        id: id.into(),
        text: "hola".into(),
        reply: Some(reply),
    };
    th.handle(t, said("wamid.A", 1));
    th.handle(t, said("wamid.A", 2));
    let out = drain(&mut th);
    let stores: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Store { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(stores, [1], "one store for both deliveries: {out:?}");
    assert!(
        !out.iter().any(|o| matches!(o, Output::Reply { .. })),
        "nobody answered before the store"
    );
    th.handle(
        t,
        Input::Stored {
            seq: 1,
            result: Ok(()),
        },
    );
    let replies: Vec<_> = drain(&mut th)
        .into_iter()
        .filter_map(|o| match o {
            Output::Reply { reply, result } => Some((reply, result)),
            _ => None,
        })
        .collect();
    assert_eq!(replies, [(1, Ok(1)), (2, Ok(1))]);
    th.handle(t, said("wamid.A", 3));
    let again = drain(&mut th);
    assert!(
        again.contains(&Output::Reply {
            reply: 3,
            result: Ok(1)
        }),
        "{again:?}"
    );
    assert!(
        !again.iter().any(|o| matches!(o, Output::Store { .. })),
        "{again:?}"
    );
    th.handle(t, said("wamid.B", 4));
    th.handle(t, said("wamid.B", 5));
    let out = drain(&mut th);
    let Some(Output::Store { seq, .. }) = out.iter().find(|o| matches!(o, Output::Store { .. }))
    else {
        panic!("{out:?}")
    };
    th.handle(
        t,
        Input::Stored {
            seq: *seq,
            result: Err("disk full".into()),
        },
    );
    let failed: Vec<u64> = drain(&mut th)
        .into_iter()
        .filter_map(|o| match o {
            Output::Reply {
                reply,
                result: Err(_),
            } => Some(reply),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [4, 5], "both told it was not stored");
}

/// A thread taken up after a restart numbers on from what it stored and keeps the
/// newest in memory (the rest is read from the store like any long thread's).
#[test]
fn a_resumed_thread_numbers_on_and_keeps_the_newest_in_memory() {
    let past: Vec<Message> = (1..=30)
        .map(|i| {
            let stored = serde_json::json!({"from": if i % 2 == 0 { "agent" } else { "customer" }, "name": "x", "text": format!("m{i}"), "seq": i, "at": i});
            Message::from_stored(&stored).unwrap()
        })
        .collect();
    assert_eq!(
        Message::from_stored(&serde_json::json!({"from": "robot", "seq": 1})),
        None
    );
    let limits = Limits::default();
    let recent = limits.recent;
    let ids = vec![("p-29".to_string(), 29)];
    let mut t = Thread::resume(limits, "Ada".into(), past, ids);
    assert_eq!(t.last_seq(), 30);
    assert_eq!(t.recent().count(), recent.min(30));
    assert_eq!(t.recent().last().unwrap().text, "m30");
    t.handle(
        Time::now(),
        Input::CustomerSays {
            id: "p-31".into(),
            text: "still there?".into(),
            reply: None,
        },
    );
    let stored = std::iter::from_fn(|| t.poll()).find_map(|o| match o {
        Output::Store { seq, .. } => Some(seq),
        _ => None,
    });
    assert_eq!(stored, Some(31), "numbering goes on");
    // The provider sends message 29 again (the node died after storing it, before
    // acknowledging): it is that message, stored once.
    t.handle(
        Time::now(),
        Input::CustomerSays {
            id: "p-29".into(),
            text: "m29".into(),
            reply: Some(7),
        },
    );
    let out: Vec<_> = std::iter::from_fn(|| t.poll()).collect();
    assert!(
        out.iter().all(|o| !matches!(o, Output::Store { .. })),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Reply {
                reply: 7,
                result: Ok(29)
            }
        )),
        "{out:?}"
    );
}

/// What the store keeps of a customer's message names its sender's id, so a thread
/// taken up again knows it.
#[test]
fn a_customers_stored_message_keeps_the_senders_id() {
    let mut t = Thread::new(Limits::default(), "Ada".into());
    t.handle(
        Time::now(),
        Input::CustomerSays {
            id: "wamid.7".into(),
            text: "hola".into(),
            reply: None,
        },
    );
    let data = std::iter::from_fn(|| t.poll())
        .find_map(|o| match o {
            Output::Store { data, .. } => Some(data),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        Message::client_id_of(&data),
        Some(("wamid.7".to_string(), 1))
    );
}

#[test]
fn a_supervisors_note_reaches_the_agent_only_once_stored_and_never_the_customer() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(t, says("c1", "my card is blocked"));
    store_all(&mut th, t, true);
    th.handle(
        t,
        Input::Note {
            supervisor: "sam".into(),
            name: "Sam".into(),
            text: "offer the replacement card".into(),
            reply: 7,
        },
    );
    let out = drain(&mut th);
    let [Output::StoreNote { reply: 7, note }] = &out[..] else {
        panic!("only the write first: {out:?}")
    };
    assert_eq!(note["supervisor"], "sam");
    assert_eq!(note["text"], "offer the replacement card");
    // The store refuses: nobody is told of it, the supervisor hears why.
    th.handle(
        t,
        Input::NoteStored {
            reply: 7,
            note: note.clone(),
            result: Err("disk full".into()),
        },
    );
    let out = drain(&mut th);
    assert!(
        matches!(&out[..], [Output::Reply { reply: 7, result: Err(why) }] if why.contains("disk full")),
        "{out:?}"
    );
    // Stored: the agent gets it, the supervisor its time, the customer nothing.
    th.handle(
        t,
        Input::NoteStored {
            reply: 7,
            note: note.clone(),
            result: Ok(()),
        },
    );
    let out = drain(&mut th);
    assert!(customer_frames(&out).is_empty(), "{out:?}");
    assert_eq!(
        out,
        [
            Output::Note(note.clone()),
            Output::Reply {
                reply: 7,
                result: Ok(t.unix_ms)
            }
        ]
    );
    // A note is no message: the numbering and what a reconnecting page replays are
    // untouched.
    assert_eq!(th.last_seq(), 1);
    th.handle(
        t,
        Input::Connect {
            after: 0,
            agent: None,
        },
    );
    let replay = customer_frames(&drain(&mut th));
    assert!(
        !replay.iter().any(|f| f.to_string().contains("replacement")),
        "{replay:?}"
    );
    // After the end, no note.
    th.handle(
        t,
        Input::Close {
            by: "agent",
            reply: None,
        },
    );
    drain(&mut th);
    th.handle(
        t,
        Input::Note {
            supervisor: "sam".into(),
            name: "Sam".into(),
            text: "too late".into(),
            reply: 8,
        },
    );
    assert!(matches!(
        &drain(&mut th)[..],
        [Output::Reply {
            reply: 8,
            result: Err(_)
        }]
    ));
}

#[test]
fn a_supervisor_who_takes_over_is_announced_once_and_writes_without_a_second_join() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    th.handle(
        t,
        Input::TakeOver {
            supervisor: "sam".into(),
            name: "Sam".into(),
            reply: 1,
        },
    );
    let out = store_all(&mut th, t, true);
    assert_eq!(
        out[0],
        Output::TakenOver {
            supervisor: "sam".into(),
            name: "Sam".into()
        }
    );
    assert_eq!(th.taken(), Some(("sam", "Sam")));
    let shown = customer_frames(&out);
    assert_eq!(shown.len(), 1, "{out:?}");
    assert_eq!(shown[0]["from"], "system");
    assert_eq!(shown[0]["text"], "Sam is looking after you now.");
    // Once; nobody else takes it, writes in it or ends it.
    let refused = |th: &mut Thread, input: Input, reply: u64, why: &str| {
        th.handle(t, input);
        let out = store_all(th, t, true);
        assert_eq!(
            out,
            [Output::Reply {
                reply,
                result: Err(why.into())
            }]
        );
    };
    let take = |who: &str, reply| Input::TakeOver {
        supervisor: who.into(),
        name: who.to_uppercase(),
        reply,
    };
    refused(
        &mut th,
        take("sam", 10),
        10,
        "you have taken this chat over already",
    );
    refused(&mut th, take("sue", 11), 11, "Sam has taken this chat over");
    refused(
        &mut th,
        Input::SupervisorSays {
            supervisor: "sue".into(),
            name: "Sue".into(),
            text: "hi".into(),
            reply: 12,
        },
        12,
        "Sam has taken this chat over",
    );
    refused(
        &mut th,
        Input::SupervisorEnds {
            supervisor: "sue".into(),
            reply: 13,
        },
        13,
        "only the supervisor who took the chat over ends it (its agent does otherwise)",
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Reply {
            reply: 1,
            result: Ok(_)
        }
    )));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Store { .. })),
        "the line is not a message (the take-over is on the timeline): {out:?}"
    );
    th.handle(
        t,
        Input::SupervisorSays {
            supervisor: "sam".into(),
            name: "Sam".into(),
            text: "Let me sort this out".into(),
            reply: 2,
        },
    );
    let out = store_all(&mut th, t, true);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Joined { .. })),
        "{out:?}"
    );
    let shown = customer_frames(&out);
    assert_eq!(shown.len(), 1, "{out:?}");
    assert_eq!(shown[0]["name"], "Sam");
    // Sam ends it (answered once the end is stored); then everything is refused.
    th.handle(
        t,
        Input::SupervisorEnds {
            supervisor: "sam".into(),
            reply: 4,
        },
    );
    let out = store_all(&mut th, t, true);
    assert_eq!(out, [Output::StoreClose { by: "supervisor" }]);
    th.handle(t, Input::CloseStored { result: Ok(()) });
    let out = store_all(&mut th, t, true);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Reply {
                reply: 4,
                result: Ok(_)
            }
        )),
        "{out:?}"
    );
    th.handle(
        t,
        Input::TakeOver {
            supervisor: "sue".into(),
            name: "Sue".into(),
            reply: 3,
        },
    );
    let out = store_all(&mut th, t, true);
    assert!(
        out.iter().any(|o| matches!(o, Output::Reply { reply: 3, result: Err(e) } if e == "the chat was closed by the supervisor")),
        "{out:?}"
    );
}

#[test]
fn a_supervisor_who_writes_joins_once_and_their_messages_say_who_wrote() {
    let t = t0();
    let mut th = Thread::new(Limits::default(), "Grace".into());
    let sup = |text: &str, reply| Input::SupervisorSays {
        supervisor: "sam".into(),
        name: "Sam".into(),
        text: text.into(),
        reply,
    };
    th.handle(t, sup("I can help with that", 1));
    let out = store_all(&mut th, t, true);
    assert_eq!(
        out[0],
        Output::Joined {
            supervisor: "sam".into(),
            name: "Sam".into()
        },
        "{out:?}"
    );
    let shown = customer_frames(&out);
    assert_eq!(shown[0]["from"], "system");
    assert_eq!(shown[0]["text"], "Sam joined the chat.");
    assert_eq!(shown[1]["from"], "agent");
    assert_eq!(shown[1]["name"], "Sam");
    assert!(
        shown[1].get("supervisor").is_none(),
        "the page needs no login names"
    );
    let stored: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Store { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1, "the join line is not a message: {out:?}");
    assert_eq!(stored[0]["supervisor"], "sam");
    assert_eq!(stored[0]["from"], "agent");
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Agent(m) if m.name == "Sam")));
    assert!(out.contains(&Output::Reply {
        reply: 1,
        result: Ok(2)
    }));

    // A second message: no second join.
    th.handle(t, sup("done", 2));
    let out = store_all(&mut th, t, true);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Joined { .. })),
        "{out:?}"
    );
    assert_eq!(customer_frames(&out).len(), 1);

    // At most MAX_SUPERVISORS write in one thread.
    for i in 1..MAX_SUPERVISORS {
        th.handle(
            t,
            Input::SupervisorSays {
                supervisor: format!("s{i}"),
                name: format!("S{i}"),
                text: "hi".into(),
                reply: 100 + i as u64,
            },
        );
        store_all(&mut th, t, true);
    }
    th.handle(
        t,
        Input::SupervisorSays {
            supervisor: "one-too-many".into(),
            name: "X".into(),
            text: "hi".into(),
            reply: 99,
        },
    );
    assert!(
        matches!(&drain(&mut th)[..], [Output::Reply { reply: 99, result: Err(why) }] if why.contains("supervisors")),
    );
    th.handle(t, sup("still here", 3));
    assert!(store_all(&mut th, t, true).contains(&Output::Reply {
        reply: 3,
        result: Ok(th.last_seq())
    }));
}
