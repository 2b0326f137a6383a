//! Each KPI on hand-written logs with hand-computed answers; properties over random
//! logs.

use super::*;
use crate::dialplan::model::Hours;
use facts::Name;
use proptest::prelude::*;
use report::Ratio;

const S: i64 = 1000;
const DAY: i64 = 86_400 * S;

fn contact(id: &str, channel: &str, customer: i64, case: i64, evs: &[(i64, Event)]) -> Contact {
    Contact::new(
        id,
        channel,
        true,
        Some(customer),
        Some(case),
        evs.iter()
            .map(|(t, e)| Entry {
                at: *t,
                event: e.clone(),
            })
            .collect(),
    )
}

fn q(name: &str) -> Event {
    Event::Queued { queue: name.into() }
}
fn offered(a: &str) -> Event {
    Event::Offered { agent: a.into() }
}
fn connected(a: &str) -> Event {
    Event::Connected { agent: a.into() }
}
fn ended(by: Party) -> Event {
    Event::Ended { by }
}
fn human(a: &str) -> Event {
    Event::AgentMessage {
        agent: a.into(),
        human: true,
    }
}
fn wrapped(a: &str) -> Event {
    Event::WrapUpEnd { agent: a.into() }
}

fn run(contacts: &[Contact], p: &Params) -> Report {
    let f: Vec<Facts> = contacts.iter().map(facts).collect();
    report(&f, p)
}

fn params() -> Params {
    Params::new(0, 365 * DAY, 400 * DAY)
}

/// A call queued at 0 that reaches Bob after `wait` seconds (and ends 60 s later).
fn answered(id: &str, case: i64, wait: i64) -> Contact {
    contact(
        id,
        "voice",
        case,
        case,
        &[
            (0, Event::Created),
            (0, q("sales")),
            (0, offered("bob")),
            (wait * S, connected("bob")),
            ((wait + 60) * S, ended(Party::Customer)),
        ],
    )
}

/// A call queued at 0 whose caller leaves after `wait` seconds, `ringing` an agent or not.
fn left(id: &str, case: i64, wait: i64, ringing: bool) -> Contact {
    let mut e = vec![(0, Event::Created), (0, q("sales"))];
    if ringing {
        e.push((1, offered("bob")));
    }
    e.push((wait * S, ended(Party::Customer)));
    contact(id, "voice", case, case, &e)
}

#[test]
fn service_level_counts_abandons_as_configured_and_leaves_short_ones_out() {
    let calls = [
        answered("a", 1, 10),    // met
        answered("b", 2, 30),    // missed
        left("c", 3, 3, false),  // short abandon: in neither
        left("d", 4, 60, false), // left the queue after a minute
        left("e", 5, 15, true),  // left while ringing, within 20 s
    ];
    let mut p = params();
    p.sla.insert("sales".into(), 20 * S);
    let r = run(&calls, &p).total;
    assert_eq!((r.service_level.num, r.service_level.den), (1, 4));
    assert_eq!(r.service_level.value, Some(0.25));
    assert_eq!((r.abandonment.num, r.abandonment.den), (2, 4));
    assert_eq!(r.short_abandons, 1);
    assert_eq!(r.abandoned.get("queue"), Some(&2));
    assert_eq!(r.abandoned.get("ringing"), Some(&1));
    assert_eq!((r.queued, r.answered), (5, 2));
    // Average speed of answer: (10 + 30) / 2 s.
    assert_eq!(r.speed_of_answer.mean, Some(20_000.0));

    p.abandons = Abandons::Ignored;
    let r = run(&calls, &p).total;
    assert_eq!((r.service_level.num, r.service_level.den), (1, 2));
    p.abandons = Abandons::MetIfWithin;
    let r = run(&calls, &p).total;
    assert_eq!((r.service_level.num, r.service_level.den), (2, 4));
    // A longer short-abandon threshold takes the 15 s one out too.
    p.abandons = Abandons::Counted;
    p.short_abandon = 16 * S;
    let r = run(&calls, &p).total;
    assert_eq!((r.service_level.num, r.service_level.den), (1, 3));
    assert_eq!(r.short_abandons, 2);
}

#[test]
fn abandon_during_ringing_withdraws_the_offer_without_counting_it_missed() {
    let r = run(&[left("e", 5, 15, true)], &params()).total;
    assert_eq!(r.abandoned.get("ringing"), Some(&1));
    assert_eq!((r.offers, r.missed_offers), (1, 0));
    let f = facts(&left("e", 5, 15, true));
    assert_eq!(f.offers, vec![("bob".into(), OfferEnd::Withdrawn)]);
    assert_eq!(f.abandoned_after, Some(15 * S));
}

#[test]
fn abandonment_is_told_apart_by_stage() {
    let ivr = contact(
        "ivr",
        "voice",
        1,
        1,
        &[
            (0, Event::Created),
            (0, Event::IvrStart),
            (8 * S, ended(Party::Customer)),
        ],
    );
    let bot = contact(
        "bot",
        "webchat",
        2,
        2,
        &[
            (0, Event::Created),
            (0, Event::BotStart),
            (S, Event::CustomerMessage),
            (9 * S, ended(Party::Customer)),
        ],
    );
    let hold = contact(
        "hold",
        "voice",
        3,
        3,
        &[
            (0, Event::Created),
            (0, q("sales")),
            (S, connected("bob")),
            (10 * S, Event::HoldOn),
            (40 * S, ended(Party::Customer)),
        ],
    );
    let transfer = contact(
        "transfer",
        "voice",
        4,
        4,
        &[
            (0, Event::Created),
            (0, q("sales")),
            (S, connected("bob")),
            (
                10 * S,
                Event::Transfer {
                    from: "bob".into(),
                    to: "carol".into(),
                },
            ),
            (12 * S, ended(Party::Customer)),
        ],
    );
    // The agent hanging up is no abandon.
    let agent = contact(
        "agent",
        "voice",
        5,
        5,
        &[
            (0, Event::Created),
            (0, q("sales")),
            (S, connected("bob")),
            (9 * S, ended(Party::Agent)),
        ],
    );
    let r = run(&[ivr, bot, hold.clone(), transfer, agent], &params()).total;
    let stages: Vec<(&str, u64)> = r.abandoned.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        stages,
        [("bot", 1), ("hold", 1), ("ivr", 1), ("transfer", 1)]
    );
    // Hold and transfer abandons were answered: not in the queue's abandonment.
    assert_eq!((r.abandonment.num, r.abandonment.den), (0, 3));
    let f = facts(&hold);
    assert_eq!((f.talk, f.hold, f.holds), (9 * S, 30 * S, 1));
}

/// A call Bob ends at 100 s; the router notes his wrap-up at 100 s, running out at
/// 130 s; he gives it at `given` (or never).
fn wrap_up_lapsing(given: Option<i64>) -> Contact {
    let mut evs = vec![
        (0, Event::Created),
        (5 * S, q("sales")),
        (6 * S, offered("bob")),
        (10 * S, connected("bob")),
        (100 * S, ended(Party::Agent)),
        (
            100 * S,
            Event::WrapUpStart {
                agent: "bob".into(),
                until: Some(130 * S),
            },
        ),
    ];
    if let Some(t) = given {
        evs.push((t, wrapped("bob")));
    }
    contact("c", "voice", 1, 1, &evs)
}

#[test]
fn after_contact_work_ends_with_the_wrap_up_or_when_it_runs_out() {
    // Given in time: until it was given.
    assert_eq!(facts(&wrap_up_lapsing(Some(112 * S))).acw, Some(12 * S));
    // Never given: the whole wrap-up time (he was free again at 130 s).
    assert_eq!(facts(&wrap_up_lapsing(None)).acw, Some(30 * S));
    // Given after it ran out: still only until it ran out.
    assert_eq!(facts(&wrap_up_lapsing(Some(400 * S))).acw, Some(30 * S));
    let r = run(&[wrap_up_lapsing(None)], &params()).total;
    assert_eq!(r.after_contact_work.mean, Some(30_000.0));
    assert_eq!(r.handle_time.mean, Some(120_000.0));
    // The router's note on the timeline.
    let row = event::Row {
        channel: "voice".into(),
        inbound: true,
        flow: String::new(),
        started_at: 0,
        offered_at: None,
        queue: None,
    };
    let d = serde_json::json!({"agent": "bob", "until": 130_000});
    let log = from_timeline(&row, [("wrap-up started", &d, 100 * S)]);
    assert!(log.iter().any(|e| e.event
        == Event::WrapUpStart {
            agent: "bob".into(),
            until: Some(130 * S)
        }));
}

#[test]
fn handle_time_is_talk_plus_hold_plus_after_contact_work() {
    let c = contact(
        "c",
        "voice",
        1,
        1,
        &[
            (0, Event::Created),
            (0, Event::IvrStart),
            (5 * S, q("sales")),
            (6 * S, offered("bob")),
            (
                8 * S,
                Event::Accepted {
                    agent: "bob".into(),
                },
            ),
            (10 * S, connected("bob")),
            (30 * S, Event::HoldOn),
            (50 * S, Event::HoldOff),
            (60 * S, Event::HoldOn),
            (70 * S, Event::HoldOff),
            (100 * S, ended(Party::Agent)),
            (130 * S, wrapped("bob")),
        ],
    );
    let f = facts(&c);
    assert_eq!(
        (f.talk, f.hold, f.holds, f.acw),
        (60 * S, 30 * S, 2, Some(30 * S))
    );
    let r = run(&[c], &params()).total;
    assert_eq!(r.handle_time.mean, Some(120_000.0));
    assert_eq!(r.speed_of_answer.mean, Some(5_000.0));
    assert_eq!(r.hold_time.mean, Some(30_000.0));
    assert_eq!(r.after_contact_work.mean, Some(30_000.0));
    assert_eq!(r.holds, 2);
    assert_eq!((r.offers, r.missed_offers), (1, 0));
    assert!(r.abandoned.is_empty());
}

#[test]
fn a_transfer_keeps_one_answer_and_adds_both_agents_talk() {
    let c = contact(
        "t",
        "voice",
        1,
        1,
        &[
            (0, Event::Created),
            (0, q("sales")),
            (10 * S, connected("bob")),
            (
                40 * S,
                Event::Transfer {
                    from: "bob".into(),
                    to: "support".into(),
                },
            ),
            (40 * S, q("support")),
            (45 * S, offered("carol")),
            (50 * S, connected("carol")),
            (80 * S, ended(Party::Customer)),
        ],
    );
    let f = facts(&c);
    assert_eq!(f.answered, Some(10 * S));
    assert_eq!(f.queue.as_deref(), Some("sales"));
    assert_eq!(f.agents, ["bob".into(), "carol".into()] as [Name; 2]);
    assert_eq!(f.talk, 60 * S);
    assert_eq!(f.abandoned, None);
    let mut p = params();
    p.group_by = vec![Key::Agent];
    let r = run(&[c], &p);
    // The interaction counts for the agent who had it last.
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].key["agent"], "carol");
    assert_eq!(r.groups[0].kpis.handled, 1);
}

#[test]
fn first_response_starts_when_the_customer_waits_on_a_human_and_ignores_the_bot() {
    let chat = contact(
        "chat",
        "webchat",
        1,
        1,
        &[
            (0, Event::Created),
            (0, Event::CustomerMessage),
            (2 * S, q("support")),
            (
                3 * S,
                Event::AgentMessage {
                    agent: "bot".into(),
                    human: false,
                },
            ),
            (5 * S, offered("bob")),
            (6 * S, connected("bob")),
            (20 * S, human("bob")),
            (30 * S, Event::CustomerMessage),
            (35 * S, Event::CustomerMessage),
            (50 * S, human("bob")),
            (55 * S, human("bob")),
            (70 * S, ended(Party::Agent)),
        ],
    );
    let f = facts(&chat);
    assert_eq!(f.first_response, Some(18 * S));
    assert_eq!(f.replies, [20 * S]);
    // A bot conversation before the hand-off is not the agent's to answer.
    let handoff = contact(
        "handoff",
        "whatsapp",
        2,
        2,
        &[
            (0, Event::Created),
            (0, Event::BotStart),
            (S, Event::CustomerMessage),
            (
                2 * S,
                Event::AgentMessage {
                    agent: "bot".into(),
                    human: false,
                },
            ),
            (3 * S, Event::CustomerMessage),
            (
                4 * S,
                Event::BotEnd {
                    handoff: true,
                    intent: Some("order-status".into()),
                },
            ),
            (4 * S, q("support")),
            (7 * S, connected("bob")),
            (10 * S, human("bob")),
        ],
    );
    let f = facts(&handoff);
    assert_eq!(f.first_response, Some(6 * S));
    assert_eq!(f.abandoned, None);
    // Queued before the customer said anything: the clock starts at their message.
    let mail = contact(
        "mail",
        "email",
        3,
        3,
        &[
            (0, Event::Created),
            (0, q("support")),
            (S, connected("bob")),
            (60 * S, Event::CustomerMessage),
            (90 * S, human("bob")),
        ],
    );
    assert_eq!(facts(&mail).first_response, Some(30 * S));
    let mut p = params();
    p.group_by = vec![Key::Channel];
    let r = run(&[chat, handoff, mail], &p);
    let by: Vec<(&str, Option<f64>)> = r
        .groups
        .iter()
        .map(|g| (g.key["channel"].as_str(), g.kpis.first_response.mean))
        .collect();
    assert_eq!(
        by,
        [
            ("email", Some(30_000.0)),
            ("webchat", Some(18_000.0)),
            ("whatsapp", Some(6_000.0))
        ]
    );
    assert_eq!(r.total.first_response.mean, Some(18_000.0));
}

fn hours(tz: &str, week: [Vec<(u16, u16)>; 7]) -> Hours {
    Hours {
        tz: jiff::tz::TimeZone::get(tz).unwrap(),
        tz_name: tz.into(),
        week,
        holidays: vec![],
        open: None,
        closed: None,
    }
}

fn ms(s: &str, tz: &str) -> i64 {
    s.parse::<jiff::civil::DateTime>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get(tz).unwrap())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

#[test]
fn business_hours_count_only_open_time_also_overnight_and_over_a_weekend() {
    let gye = "America/Guayaquil";
    let office = |d: Vec<(u16, u16)>| {
        [
            d.clone(),
            d.clone(),
            d.clone(),
            d.clone(),
            d,
            vec![],
            vec![],
        ]
    };
    let h = hours(gye, office(vec![(8 * 60, 18 * 60)]));
    // Friday 17:00 to Monday 09:00: an hour on Friday and one on Monday.
    let (a, b) = (ms("2026-12-04T17:00", gye), ms("2026-12-07T09:00", gye));
    assert_eq!(hours::open_ms(&h, a, b), 2 * 3600 * S);
    // A night desk, 22:00 to 06:00 (two intervals a day).
    let night = vec![(0, 6 * 60), (22 * 60, 24 * 60)];
    let h = hours(gye, std::array::from_fn(|_| night.clone()));
    let (a, b) = (ms("2026-12-03T23:00", gye), ms("2026-12-04T07:00", gye));
    assert_eq!(hours::open_ms(&h, a, b), 7 * 3600 * S);
    // Across a DST change (Madrid, 29 March 2026: 02:00 becomes 03:00), 00:00-06:00
    // has five hours.
    let mad = "Europe/Madrid";
    let h = hours(mad, std::array::from_fn(|_| vec![(0, 6 * 60)]));
    let (a, b) = (ms("2026-03-29T00:00", mad), ms("2026-03-29T12:00", mad));
    assert_eq!(hours::open_ms(&h, a, b), 5 * 3600 * S);

    // In the report: a WhatsApp message queued Friday 17:00 answered Monday 09:00.
    let h = hours(gye, office(vec![(8 * 60, 18 * 60)]));
    let c = contact(
        "w",
        "whatsapp",
        1,
        1,
        &[
            (a - 1, Event::Created),
            (ms("2026-12-04T17:00", gye), Event::CustomerMessage),
            (ms("2026-12-04T17:00", gye), q("support")),
            (ms("2026-12-07T09:00", gye), human("bob")),
        ],
    );
    let mut p = Params::new(0, i64::MAX, i64::MAX);
    p.hours.insert("support".into(), h);
    let r = run(&[c], &p).total;
    assert_eq!(r.first_response.mean, Some((64 * 3600 * S) as f64));
    assert_eq!(r.first_response_business.mean, Some((2 * 3600 * S) as f64));
}

/// A handled interaction on a case, `resolved` at its end or not.
fn handled(id: &str, channel: &str, customer: i64, case: i64, at: i64, resolved: bool) -> Contact {
    let mut e = vec![
        (at, Event::Created),
        (at, q("support")),
        (at + S, connected("bob")),
        (at + 60 * S, ended(Party::Agent)),
    ];
    if resolved {
        e.push((at + 90 * S, wrapped("bob")));
        e.push((at + 90 * S, Event::CaseResolved));
    }
    contact(id, channel, customer, case, &e)
}

#[test]
fn first_contact_resolution_is_judged_on_the_whole_journey() {
    let now = 40 * DAY;
    let mut p = Params::new(0, 40 * DAY, now);
    // Case 10: one call, resolved, nothing for a month: resolved at first contact.
    let one = handled("a", "voice", 1, 10, DAY, true);
    // Case 11: a chat resolved, then the customer calls two days later (a new case):
    // neither is first-contact resolved for case 11.
    let chat = handled("b", "webchat", 2, 11, DAY, true);
    let back = handled("c", "voice", 2, 12, 3 * DAY, false);
    // Case 13: two handled contacts before it was resolved.
    let first = handled("d", "voice", 3, 13, DAY, false);
    let second = handled("e", "voice", 3, 13, 2 * DAY, true);
    // Case 14: resolved yesterday: not judged yet.
    let recent = handled("f", "voice", 4, 14, now - DAY, true);
    // Case 15: resolved, then reopened by a mail a day later (a contact of its own).
    let resolved = handled("g", "email", 5, 15, DAY, true);
    let mut reopen = handled("h", "email", 5, 15, 2 * DAY, false);
    reopen.events.push(Entry {
        at: 2 * DAY,
        event: Event::CaseReopened,
    });
    // Case 16: the customer called, then the agent called back and resolved it: two
    // handled interactions, one inbound.
    let call = handled("i", "voice", 6, 16, DAY, false);
    let mut callback = handled("j", "voice", 6, 16, DAY + 3600 * S, true);
    callback.inbound = false;
    // Case 17: resolved on day 1; the customer comes back on day 9, after the 7 days.
    let late = handled("k", "sms", 7, 17, DAY, true);
    let later = handled("l", "sms", 7, 18, 9 * DAY, false);
    let all = [
        one, chat, back, first, second, recent, resolved, reopen, call, callback, late, later,
    ];
    let r = run(&all, &p).total;
    // Resolved cases: 10, 11, 13, 14, 15, 16, 17; 14 pending.
    assert_eq!(r.resolved_cases, 7);
    assert_eq!(r.fcr_pending, 1);
    // Judged: 10 yes, 11 no (came back), 13 no (two handled), 15 no (came back),
    // 16 no (two handled), 17 yes.
    let fcr = r.first_contact_resolution;
    assert_eq!((fcr.num, fcr.den), (2, 6));
    assert_eq!((r.repeat_contact.num, r.repeat_contact.den), (2, 6));
    assert_eq!((r.reopened.num, r.reopened.den), (1, 7));
    // Cases opened: 10..=18 (9); inbound contacts 11 of 12 (the callback is ours).
    assert_eq!(r.cases, 9);
    assert_eq!(r.contacts_per_case.sum, 11);
    // With a 10-day window the day-9 return counts against case 17.
    p.fcr_days = 10;
    p.now = 100 * DAY;
    let r = run(&all, &p).total;
    assert_eq!(r.fcr_pending, 0);
    // Case 14 is judged now (resolved at first contact); case 17 no longer is.
    assert_eq!(r.first_contact_resolution.num, 2);
    assert_eq!(r.first_contact_resolution.den, 7);
}

#[test]
fn a_customer_who_switches_channel_is_one_journey() {
    let p = Params::new(0, 30 * DAY, 60 * DAY);
    let journey = [
        handled("a", "voice", 1, 1, DAY, false),
        handled("b", "whatsapp", 1, 1, DAY + 3600 * S, false),
        handled("c", "email", 1, 1, 2 * DAY, false),
        handled("d", "whatsapp", 1, 1, 3 * DAY, true),
        handled("e", "webchat", 2, 2, DAY, true),
    ];
    let r = run(&journey, &p).total;
    assert_eq!(r.cases, 2);
    assert_eq!((r.channel_switch.num, r.channel_switch.den), (1, 2));
    let m: Vec<(&str, u64)> = r.switches.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        m,
        [
            ("email→whatsapp", 1),
            ("voice→whatsapp", 1),
            ("whatsapp→email", 1)
        ]
    );
    assert_eq!(r.contacts_per_case.mean, Some(2.5));
    // Four handled contacts: not first-contact resolved; the chat is.
    assert_eq!(r.first_contact_resolution.num, 1);
}

#[test]
fn the_journey_answer_is_the_last_survey_answer_on_the_case() {
    let p = Params::new(0, 30 * DAY, 60 * DAY);
    let survey = |c: &mut Contact, t: i64, metric: Metric, score: i64| {
        c.events.push(Entry {
            at: t,
            event: Event::Survey { metric, score },
        })
    };
    let mut a = handled("a", "voice", 1, 1, DAY, false);
    survey(&mut a, DAY + 100 * S, Metric::Csat, 2);
    survey(&mut a, DAY + 100 * S, Metric::Nps, 10);
    let mut b = handled("b", "webchat", 1, 1, 2 * DAY, true);
    survey(&mut b, 2 * DAY + 100 * S, Metric::Csat, 5);
    let mut c = handled("c", "voice", 2, 2, DAY, true);
    survey(&mut c, DAY + 100 * S, Metric::Csat, 3);
    survey(&mut c, DAY + 100 * S, Metric::Nps, 8);
    survey(&mut c, DAY + 100 * S, Metric::Ces, 2);
    let mut d = handled("d", "voice", 3, 3, DAY, true);
    survey(&mut d, DAY + 100 * S, Metric::Nps, 3);
    survey(&mut d, DAY + 100 * S, Metric::Ces, 5);
    let e = handled("e", "voice", 4, 4, DAY, true);
    let r = run(&[a, b, c, d, e], &p).total;
    // Case 1's answer is the later 5 (satisfied), case 2's a 3.
    assert_eq!((r.csat.num, r.csat.den), (1, 2));
    assert_eq!(r.csat_score.mean, Some(4.0));
    // NPS: 10 (promoter), 8 (passive), 3 (detractor): 0.
    assert_eq!((r.nps_answers, r.nps), (3, Some(0.0)));
    assert_eq!(r.ces.mean, Some(3.5));
    // Four handled cases, three answered.
    assert_eq!((r.survey_response.num, r.survey_response.den), (3, 4));
}

#[test]
fn missed_offers_count_for_the_agent_who_missed_them() {
    let c = contact(
        "c",
        "voice",
        1,
        1,
        &[
            (0, Event::Created),
            (0, q("sales")),
            (S, offered("carol")),
            (
                3 * S,
                Event::Rejected {
                    agent: "carol".into(),
                },
            ),
            (4 * S, offered("dave")),
            (
                20 * S,
                Event::Lapsed {
                    agent: "dave".into(),
                },
            ),
            (21 * S, offered("erin")),
            (
                22 * S,
                Event::Accepted {
                    agent: "erin".into(),
                },
            ),
            (
                42 * S,
                Event::Missed {
                    agent: "erin".into(),
                },
            ),
            (43 * S, offered("bob")),
            (45 * S, connected("bob")),
            (99 * S, ended(Party::Customer)),
        ],
    );
    let mut p = params();
    p.group_by = vec![Key::Agent];
    let r = run(&[c], &p);
    let by: Vec<(&str, u64, u64, u64)> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.key["agent"].as_str(),
                g.kpis.offers,
                g.kpis.missed_offers,
                g.kpis.handled,
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            ("bob", 1, 0, 1),
            ("carol", 1, 1, 0),
            ("dave", 1, 1, 0),
            ("erin", 1, 1, 0)
        ]
    );
    assert_eq!((r.total.offers, r.total.missed_offers), (4, 3));
}

#[test]
fn groups_by_hour_and_day_in_the_time_zone_asked_for() {
    let gye = "America/Guayaquil";
    let at = ms("2026-12-03T23:30", gye);
    let c = handled("a", "voice", 1, 1, at, false);
    let mut p = Params::new(0, i64::MAX, i64::MAX);
    p.group_by = vec![Key::Day, Key::Hour];
    p.tz = jiff::tz::TimeZone::get(gye).unwrap();
    let r = run(std::slice::from_ref(&c), &p);
    assert_eq!(r.groups[0].key["day"], "2026-12-03");
    assert_eq!(r.groups[0].key["hour"], "2026-12-03T23");
    p.tz = jiff::tz::TimeZone::UTC;
    let r = run(&[c], &p);
    assert_eq!(r.groups[0].key["day"], "2026-12-04");
}

#[test]
fn the_stored_timeline_reads_into_the_log() {
    let row = event::Row {
        channel: "voice".into(),
        inbound: true,
        flow: "main".into(),
        started_at: 0,
        offered_at: Some(5 * S),
        queue: Some("sales".into()),
    };
    let j = |v: serde_json::Value| v;
    let rows = [
        ("offered", j(serde_json::json!({"agent": "bob"})), 6 * S),
        ("assigned", j(serde_json::json!({"agent": "bob"})), 7 * S),
        ("connected", j(serde_json::json!({"agent": "bob"})), 9 * S),
        ("held", j(serde_json::json!({"agent": "bob"})), 20 * S),
        ("resumed", j(serde_json::json!({"agent": "bob"})), 30 * S),
        ("caller hung up", j(serde_json::json!({})), 40 * S),
        (
            "interaction ended",
            j(serde_json::json!({"outcome": "answered sales"})),
            40 * S,
        ),
        (
            "wrapped up",
            j(serde_json::json!({"agent": "bob", "disposition": "sale", "resolved": true})),
            55 * S,
        ),
        ("rated", j(serde_json::json!({"score": 4})), 60 * S),
        (
            "rated",
            j(serde_json::json!({"score": 11, "metric": "csat"})),
            61 * S,
        ),
        ("note", j(serde_json::json!({"text": "x"})), 62 * S),
    ];
    let log = from_timeline(&row, rows.iter().map(|(k, d, t)| (*k, d, *t)));
    let f = facts(&Contact::new("i", "voice", true, Some(1), Some(1), log));
    assert_eq!(f.queued, Some(5 * S));
    assert_eq!(f.answered, Some(9 * S));
    assert_eq!(f.ended_by, Some(Party::Customer));
    assert_eq!((f.talk, f.hold, f.holds), (21 * S, 10 * S, 1));
    assert_eq!(f.acw, Some(15 * S));
    assert_eq!(f.dispositions, [Name::from("sale")]);
    assert_eq!(f.resolved, [55 * S]);
    // An out-of-range score is not an answer.
    assert_eq!(f.surveys, [(60 * S, Metric::Csat, 4)]);
    assert_eq!(f.offers, [("bob".into(), OfferEnd::Accepted)]);
    // A chat is the agent's once assigned.
    let chat = event::Row {
        channel: "webchat".into(),
        offered_at: Some(0),
        ..row
    };
    let rows = [
        ("message", j(serde_json::json!({"from": "customer"})), S),
        ("assigned", j(serde_json::json!({"agent": "bob"})), 2 * S),
        (
            "message",
            j(serde_json::json!({"from": "agent", "agent": "bob"})),
            4 * S,
        ),
        ("closed", j(serde_json::json!({"by": "abandoned"})), 9 * S),
    ];
    let log = from_timeline(&chat, rows.iter().map(|(k, d, t)| (*k, d, *t)));
    let f = facts(&Contact::new("c", "webchat", true, None, None, log));
    assert_eq!(f.answered, Some(2 * S));
    assert_eq!(f.first_response, Some(3 * S));
    assert_eq!(f.ended_by, Some(Party::Customer));
    assert_eq!(f.abandoned, None);
}

#[test]
fn a_chat_a_supervisor_took_over_is_handled_once_with_the_agents_wrap_up_not_counted_twice() {
    let j = |v: serde_json::Value| v;
    let row = event::Row {
        channel: "webchat".into(),
        inbound: true,
        flow: String::new(),
        started_at: 0,
        offered_at: Some(0),
        queue: Some("support".into()),
    };
    let rows = [
        ("message", j(serde_json::json!({"from": "customer"})), S),
        ("assigned", j(serde_json::json!({"agent": "bob"})), 10 * S),
        (
            "message",
            j(serde_json::json!({"from": "agent", "agent": "bob"})),
            20 * S,
        ),
        // Sam takes it over at 60 s; Bob's wrap-up starts then and he gives it at 90 s,
        // while Sam writes on.
        (
            "taken over",
            j(serde_json::json!({"supervisor": "sam", "agent": "bob"})),
            60 * S,
        ),
        (
            "wrap-up started",
            j(serde_json::json!({"agent": "bob", "until": 120 * S})),
            60 * S,
        ),
        (
            "wrapped up",
            j(serde_json::json!({"agent": "bob", "disposition": "escalated"})),
            90 * S,
        ),
        (
            "message",
            j(serde_json::json!({"from": "agent", "supervisor": "sam"})),
            100 * S,
        ),
        (
            "closed",
            j(serde_json::json!({"by": "supervisor"})),
            160 * S,
        ),
    ];
    let log = from_timeline(&row, rows.iter().map(|(k, d, t)| (*k, d, *t)));
    let f = facts(&Contact::new("c", "webchat", true, Some(1), Some(1), log));
    assert_eq!(f.answered, Some(10 * S));
    assert_eq!(f.agents, ["bob".into(), "sam".into()] as [Name; 2]);
    assert_eq!(f.first_response, Some(19 * S));
    // Talk from Bob's answer to Sam's close, once.
    assert_eq!(f.talk, 150 * S);
    assert_eq!(
        f.ended_by,
        Some(Party::Agent),
        "a supervisor's close is the centre's"
    );
    assert_eq!(f.abandoned, None);
    // Bob's wrap-up ran while Sam talked: no after-contact work past the end.
    assert_eq!(f.acw, Some(0));
    let r = run(
        &[Contact::new(
            "c",
            "webchat",
            true,
            Some(1),
            Some(1),
            from_timeline(&row, rows.iter().map(|(k, d, t)| (*k, d, *t))),
        )],
        &params(),
    )
    .total;
    assert_eq!(r.handled, 1);
    assert_eq!(r.handle_time.mean, Some(150_000.0));
}

fn any_event() -> impl Strategy<Value = Event> {
    let agent = prop::sample::select(vec!["bob", "carol"]).prop_map(String::from);
    prop_oneof![
        Just(Event::Created),
        Just(Event::IvrStart),
        Just(Event::IvrEnd),
        Just(Event::BotStart),
        (
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["order-status", "returns"]))
        )
            .prop_map(|(handoff, i)| Event::BotEnd {
                handoff,
                intent: i.map(String::from)
            }),
        prop::sample::select(vec!["sales", "support"])
            .prop_map(|q| Event::Queued { queue: q.into() }),
        Just(Event::CustomerMessage),
        agent.clone().prop_map(|agent| Event::Offered { agent }),
        agent.clone().prop_map(|agent| Event::Accepted { agent }),
        agent.clone().prop_map(|agent| Event::Rejected { agent }),
        agent.clone().prop_map(|agent| Event::Lapsed { agent }),
        agent.clone().prop_map(|agent| Event::Missed { agent }),
        agent.clone().prop_map(|agent| Event::Connected { agent }),
        (agent.clone(), any::<bool>())
            .prop_map(|(agent, human)| Event::AgentMessage { agent, human }),
        Just(Event::HoldOn),
        Just(Event::HoldOff),
        agent.clone().prop_map(|from| Event::Transfer {
            from,
            to: "support".into()
        }),
        prop::sample::select(vec![Party::Customer, Party::Agent, Party::System])
            .prop_map(|by| Event::Ended { by }),
        agent.clone().prop_map(|agent| Event::WrapUpEnd { agent }),
        (agent.clone(), prop::option::of(0i64..200_000))
            .prop_map(|(agent, until)| Event::WrapUpStart { agent, until }),
        Just(Event::CaseResolved),
        Just(Event::CaseReopened),
        (0i64..=10).prop_map(|score| Event::Survey {
            metric: Metric::Nps,
            score
        }),
        (1i64..=5).prop_map(|score| Event::Survey {
            metric: Metric::Csat,
            score
        }),
    ]
}

fn any_contacts() -> impl Strategy<Value = Vec<Contact>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["voice", "webchat", "whatsapp", "email"]),
            any::<bool>(),
            0i64..4,
            0i64..6,
            prop::collection::vec((0i64..12, any_event()), 1..24),
        ),
        1..12,
    )
    .prop_map(|cs| {
        cs.into_iter()
            .enumerate()
            .map(|(i, (ch, inbound, customer, case, evs))| {
                let mut c = contact(
                    &format!("i{i}"),
                    ch,
                    customer,
                    customer * 10 + case % 2,
                    &evs.iter()
                        .map(|(t, e)| (t * DAY / 4, e.clone()))
                        .collect::<Vec<_>>(),
                );
                c.inbound = inbound;
                c
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_share_is_within_its_denominator(cs in any_contacts(), fcr in 0i64..4, by in 0usize..5) {
        let mut p = Params::new(0, 2 * DAY, 3 * DAY);
        p.fcr_days = fcr;
        p.group_by = vec![[Key::Queue, Key::Agent, Key::Channel, Key::Hour, Key::Day][by]];
        let r = run(&cs, &p);
        for k in r.groups.iter().map(|g| &g.kpis).chain([&r.total]) {
            for ratio in k.ratios() {
                prop_assert!(ratio.num <= ratio.den, "{ratio:?}");
                if let Some(v) = ratio.value {
                    prop_assert!((0.0..=1.0).contains(&v));
                }
            }
            prop_assert!(k.answered <= k.queued && k.queued <= k.contacts);
            prop_assert!(k.handled <= k.contacts && k.inbound <= k.contacts);
            prop_assert!(k.missed_offers <= k.offers);
            prop_assert!(k.resolved_cases <= k.cases);
            prop_assert!(k.fcr_pending + k.first_contact_resolution.den == k.resolved_cases);
            prop_assert!(k.nps_promoters + k.nps_detractors <= k.nps_answers);
            prop_assert!(k.abandoned.values().sum::<u64>() <= k.contacts);
            for m in [k.handle_time, k.talk_time, k.hold_time, k.speed_of_answer, k.first_response, k.reply_time] {
                prop_assert!(m.sum >= 0, "{m:?}");
            }
        }
        // The groups add up to the total.
        if !r.groups.is_empty() {
            let sum = |f: &dyn Fn(&Kpis) -> u64| r.groups.iter().map(|g| f(&g.kpis)).sum::<u64>();
            prop_assert_eq!(sum(&|k| k.contacts), r.total.contacts);
            prop_assert_eq!(sum(&|k| k.offers), r.total.offers);
            prop_assert_eq!(sum(&|k| k.cases), r.total.cases);
            prop_assert_eq!(sum(&|k| k.service_level.den), r.total.service_level.den);
        }
    }

    #[test]
    fn events_with_equal_times_give_the_same_answers_in_any_order(cs in any_contacts(), seed in any::<u64>()) {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let p = Params::new(0, 2 * DAY, 3 * DAY);
        let shuffled: Vec<Contact> = cs
            .iter()
            .rev()
            .map(|c| {
                let mut e = c.events.clone();
                e.shuffle(&mut rng);
                // Stable by time only: equal times keep the shuffled order.
                e.sort_by_key(|x| x.at);
                Contact::new(c.id.clone(), c.channel.clone(), c.inbound, c.customer, c.case, e)
            })
            .collect();
        prop_assert_eq!(run(&cs, &p), run(&shuffled, &p));
    }

    #[test]
    fn a_report_on_several_threads_and_parts_is_the_report_on_one(cs in any_contacts(), threads in 2usize..5, by in 0usize..5, cuts in (0.0f64..1.0, 0.0f64..1.0)) {
        let facts: Vec<Facts> = cs.iter().map(facts).collect();
        let mut p = Params::new(0, 2 * DAY, 3 * DAY);
        p.group_by = vec![[Key::Queue, Key::Agent, Key::Channel, Key::Hour, Key::Day][by]];
        let one = report::report_on(&[&facts], &p, 1);
        prop_assert_eq!(report::report_on(&[&facts], &p, threads), one.clone());
        // Held in three parts (one may be empty), as the store decodes them.
        let at = |x: f64| ((facts.len() as f64) * x) as usize;
        let (a, b) = (at(cuts.0.min(cuts.1)), at(cuts.0.max(cuts.1)));
        let parts = [&facts[..a], &facts[a..b], &facts[b..]];
        prop_assert_eq!(report::report_on(&parts, &p, threads), one.clone());
        prop_assert_eq!(report::report_on(&parts, &p, 1), one);
    }

    #[test]
    fn stored_facts_read_back_the_same_and_reports_on_them_agree(cs in any_contacts(), by in 0usize..5) {
        let facts: Vec<Facts> = cs.iter().map(facts).collect();
        let kept: Vec<Facts> = facts
            .iter()
            .map(|f| codec::decode(&codec::encode(f)).expect("decodes"))
            .collect();
        prop_assert_eq!(&kept, &facts);
        let mut p = Params::new(0, 2 * DAY, 3 * DAY);
        p.group_by = vec![[Key::Queue, Key::Agent, Key::Channel, Key::Hour, Key::Day][by]];
        prop_assert_eq!(report(&kept, &p), report(&facts, &p));
        // Packed together they read back too; a pack cut short does not.
        let bytes: Vec<Vec<u8>> = facts.iter().map(codec::encode).collect();
        let base = 7 * codec::QUARTER;
        let packed = codec::pack(base, facts.iter().zip(&bytes).map(|(f, b)| (f.created, b.as_slice())));
        let started: Vec<i64> = codec::entries(base, &packed).expect("splits").iter().map(|(t, _)| *t).collect();
        prop_assert_eq!(started, facts.iter().map(|f| f.created).collect::<Vec<_>>());
        prop_assert_eq!(codec::entries(base, &packed[..packed.len() - 1]), None);
        let ids: Vec<&str> = codec::entries(base, &packed)
            .expect("splits")
            .into_iter()
            .map(|(_, b)| codec::id_of(b).expect("has an id"))
            .collect();
        prop_assert_eq!(ids, facts.iter().map(|f| f.id.as_str()).collect::<Vec<_>>());
        // Read on two threads with a pack cut short and one that splits but holds
        // facts of another format after good ones: the good pack whole, the bad ones
        // named and nothing of theirs read.
        let mixed = codec::pack(9 * codec::QUARTER, bytes.iter().map(|b| (9 * codec::QUARTER, b.as_slice())).chain([(9 * codec::QUARTER, &[99u8, 1][..])]));
        let packs = [(7, packed.clone()), (8, vec![0, 5]), (9, mixed)];
        for threads in 1..=3 {
            let (parts, bad) = codec::unpack_all(&packs, i64::MIN, i64::MAX, threads);
            prop_assert!(parts.len() <= threads);
            prop_assert_eq!(&parts.concat(), &facts);
            prop_assert_eq!(bad, vec![8, 9]);
        }
    }

    #[test]
    fn stored_facts_cut_short_or_damaged_are_refused_not_misread(cs in any_contacts(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let f = facts(&cs[0]);
        let bytes = codec::encode(&f);
        let cut = at.index(bytes.len());
        prop_assert_eq!(codec::decode(&bytes[..cut]), None);
        let mut bad = bytes.clone();
        bad[cut] ^= flip;
        // A flipped byte may still decode (to other facts), and those read back.
        if let Some(g) = codec::decode(&bad) {
            prop_assert_eq!(codec::decode(&codec::encode(&g)), Some(g));
        }
    }

    #[test]
    fn any_bytes_decode_without_panicking(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut b = b;
        if let Some(v) = b.first_mut() {
            *v = codec::VERSION;
        }
        if let Some(g) = codec::decode(&b) {
            prop_assert_eq!(codec::decode(&codec::encode(&g)), Some(g));
        }
    }
}

#[test]
fn a_supervisors_report_holds_their_queues_and_agents_and_their_journeys_whole() {
    // Case 1: a sales call Bob answers; the customer calls again about it in support,
    // where Cat answers. Case 2: a support call Cat answers, offered to Bob first.
    let again = contact(
        "c1b",
        "voice",
        1,
        1,
        &[
            (DAY, Event::Created),
            (DAY, q("support")),
            (DAY, offered("cat")),
            (DAY + 5 * S, connected("cat")),
            (DAY + 60 * S, ended(Party::Customer)),
        ],
    );
    let other = contact(
        "c2",
        "voice",
        2,
        2,
        &[
            (0, Event::Created),
            (0, q("support")),
            (0, offered("bob")),
            (
                S,
                Event::Lapsed {
                    agent: "bob".into(),
                },
            ),
            (2 * S, offered("cat")),
            (3 * S, connected("cat")),
            (60 * S, ended(Party::Customer)),
        ],
    );
    let all = [answered("c1", 1, 5), again, other];
    let mut p = params();
    p.group_by = vec![Key::Queue];
    p.scope = Some(report::Scope {
        queues: ["sales".to_string()].into(),
        agents: ["bob".to_string()].into(),
    });
    let r = run(&all, &p);
    // Sales only: one contact; case 1 counted with both its contacts; Bob's offers
    // count wherever they were made (the lapsed one on a support call too).
    assert_eq!(r.total.contacts, 1);
    let keys: Vec<&str> = r.groups.iter().map(|g| g.key["queue"].as_str()).collect();
    assert_eq!(keys, ["sales", "support"]);
    let support = &r.groups[1].kpis;
    assert_eq!(
        (support.contacts, support.offers, support.missed_offers),
        (0, 1, 1)
    );
    assert_eq!(r.total.cases, 1);
    assert_eq!(r.total.contacts_per_case.mean, Some(2.0));
    assert_eq!((r.total.offers, r.total.missed_offers), (2, 1));
    // Cat's scope sees the support contacts and her offers only.
    p.scope = Some(report::Scope {
        queues: Default::default(),
        agents: ["cat".to_string()].into(),
    });
    let r = run(&all, &p);
    assert_eq!(r.total.contacts, 2);
    assert_eq!((r.total.offers, r.total.missed_offers), (2, 0));
    assert_eq!(r.total.cases, 1, "case 2 began with her; case 1 did not");
    // Nobody's scope: nothing.
    p.scope = Some(report::Scope::default());
    assert_eq!(run(&all, &p).total.contacts, 0);
}

const MIN: i64 = 60 * S;
/// 2026-12-01T00:00Z.
const DEC1: i64 = 1_796_083_200_000;

fn change(agent: &str, min: i64, state: &str) -> Change {
    Change {
        agent: agent.into(),
        at: DEC1 + min * MIN,
        state: state.into(),
    }
}

/// Bob: idle from before the period, a call 10-40, wrap-up to 45, idle to 60, away
/// 60-70, a chat while away 70-80, logged out. Ann: idle from 30, a chat from 100 still
/// open at the period's end (2 h).
fn floor() -> Vec<Change> {
    vec![
        change("ann", 30, "idle"),
        change("ann", 100, "working"),
        change("bob", -10, "idle"),
        change("bob", 10, "working"),
        change("bob", 40, "wrap-up"),
        change("bob", 45, "idle"),
        change("bob", 60, "away"),
        change("bob", 70, "working"),
        change("bob", 80, "offline"),
    ]
}

fn occupancy_of(by: Vec<Key>, scope: Option<report::Scope>) -> Report {
    let mut p = Params::new(DEC1, DEC1 + 120 * MIN, DEC1 + 120 * MIN);
    p.group_by = by;
    p.scope = scope;
    let mut r = report(&[], &p);
    add_occupancy(&mut r, &floor(), &p);
    r
}

#[test]
fn occupancy_is_time_on_work_and_wrap_up_over_that_and_idle_time() {
    let min = |r: Ratio| (r.num as i64 / MIN, r.den as i64 / MIN);
    // Bob: 30 + 5 + 10 occupied of 10 + 30 + 5 + 15 + 10 (away without work is out,
    // and his idle time before the period); Ann: 20 of 70 + 20 (still open at the end).
    let r = occupancy_of(vec![Key::Agent], None);
    let by: Vec<(String, (i64, i64))> = r
        .groups
        .iter()
        .map(|g| (g.key["agent"].clone(), min(g.kpis.occupancy)))
        .collect();
    assert_eq!(by, [("ann".into(), (20, 90)), ("bob".into(), (45, 70))]);
    assert_eq!(min(r.total.occupancy), (65, 160));
    assert_eq!(r.total.occupancy.value, Some(65.0 / 160.0));
    // By hour: cut at 01:00 (Bob's 0-60: 35 of 60, Ann's 30-60 idle; then Bob's chat,
    // Ann's idle 60-100 and chat 100-120).
    let r = occupancy_of(vec![Key::Hour], None);
    let by: Vec<(String, (i64, i64))> = r
        .groups
        .iter()
        .map(|g| (g.key["hour"].clone(), min(g.kpis.occupancy)))
        .collect();
    assert_eq!(
        by,
        [
            ("2026-12-01T00".into(), (35, 90)),
            ("2026-12-01T01".into(), (30, 70))
        ]
    );
    assert_eq!(min(r.total.occupancy), (65, 160));
    // A supervisor sees their agents' only.
    let scope = report::Scope {
        agents: ["ann".to_string()].into(),
        ..Default::default()
    };
    let r = occupancy_of(vec![Key::Agent], Some(scope));
    assert_eq!(r.groups.len(), 1);
    assert_eq!(min(r.total.occupancy), (20, 90));
    // An agent's time is in no queue or channel: in the total only.
    let r = occupancy_of(vec![Key::Queue], None);
    assert!(r.groups.is_empty());
    assert_eq!(min(r.total.occupancy), (65, 160));
    // Nothing yet: no value.
    let mut p = Params::new(DEC1, DEC1 + MIN, DEC1 + MIN);
    p.group_by = vec![Key::Agent];
    let mut r = report(&[], &p);
    add_occupancy(&mut r, &[change("bob", 0, "away")], &p);
    assert_eq!(r.total.occupancy.value, None);
    assert!(r.groups.is_empty());
}

/// Random agents' logs: up to 3 agents, up to 12 changes each over two days.
fn any_activity() -> impl Strategy<Value = Vec<Change>> {
    let states = ["idle", "working", "wrap-up", "away", "busy", "offline"];
    proptest::collection::vec((0usize..3, -50i64..2900, 0usize..6), 0..36).prop_map(move |v| {
        let mut out: Vec<Change> = v
            .into_iter()
            .map(|(a, m, s)| Change {
                agent: ["ann", "bob", "cy"][a].into(),
                at: m * MIN,
                state: states[s].into(),
            })
            .collect();
        out.sort_by(|a, b| (&a.agent, a.at).cmp(&(&b.agent, b.at)));
        out
    })
}

proptest! {
    #[test]
    fn occupancy_groups_add_up_to_the_total_and_never_exceed_one(
        log in any_activity(), by in 0usize..4, now in 0i64..3000
    ) {
        let keys = [vec![Key::Agent], vec![Key::Hour], vec![Key::Agent, Key::Day], vec![]];
        let mut p = Params::new(0, 2 * DAY, now * MIN);
        p.group_by = keys[by].clone();
        let mut r = report(&[], &p);
        add_occupancy(&mut r, &log, &p);
        let t = r.total.occupancy;
        prop_assert!(t.num <= t.den);
        prop_assert!(t.den as i64 <= 3 * (2 * DAY).min(now * MIN).max(0));
        if !p.group_by.is_empty() {
            let num: u64 = r.groups.iter().map(|g| g.kpis.occupancy.num).sum();
            let den: u64 = r.groups.iter().map(|g| g.kpis.occupancy.den).sum();
            prop_assert_eq!((num, den), (t.num, t.den));
            for g in &r.groups {
                prop_assert!(g.kpis.occupancy.den > 0 && g.kpis.occupancy.num <= g.kpis.occupancy.den);
            }
        }
    }
}

proptest! {
    /// What a report adds from kept quarter hours (cut at any boundaries) with the
    /// period's ragged ends read as changes is what it adds from the changes alone.
    #[test]
    fn occupancy_from_kept_quarters_is_occupancy_from_the_changes(
        log in any_activity(), by in 0usize..4, now in 0i64..3000, from in 0i64..1500,
        cuts in (0i64..200, 0i64..200)
    ) {
        use crate::kpi::occupancy::{decode, encode, QUARTER};
        let keys = [vec![Key::Agent], vec![Key::Hour], vec![Key::Agent, Key::Day], vec![]];
        let mut p = Params::new(from * MIN, 2 * DAY, now * MIN);
        p.group_by = keys[by].clone();
        let mut want = report(&[], &p);
        add_occupancy(&mut want, &log, &p);

        let (c1, c2) = (cuts.0.min(cuts.1) * QUARTER, cuts.0.max(cuts.1) * QUARTER);
        let mut packer = occupancy::Packer::new(0);
        for c in &log {
            packer.push(c);
        }
        let mut kept = packer.cut(c1);
        kept.extend(packer.cut(c2));
        prop_assert_eq!(kept.len() as i64, c2 / QUARTER);
        let end = p.to.min(p.now);
        let lo = (p.from + QUARTER - 1).div_euclid(QUARTER) * QUARTER;
        let hi = (end.min(c2)).div_euclid(QUARTER) * QUARTER;
        let mut f = occupancy::Fold::new(&p);
        if lo < hi {
            let packs: Vec<_> = kept
                .into_iter()
                .filter(|(q, _)| q * QUARTER >= lo && (q + 1) * QUARTER <= hi)
                .map(|(q, s)| (q, decode(&encode(&s)).unwrap()))
                .collect();
            f.changes(&log, p.from, lo);
            f.quarters(&packs);
            f.changes(&log, hi, end);
        } else {
            f.changes(&log, p.from, end);
        }
        let mut got = report(&[], &p);
        f.finish(&mut got);
        prop_assert_eq!(got.total.occupancy, want.total.occupancy);
        let groups = |r: &Report| r.groups.iter().map(|g| (g.key.clone(), g.kpis.occupancy)).collect::<Vec<_>>();
        prop_assert_eq!(groups(&got), groups(&want));
    }
}

#[test]
fn a_kept_quarter_that_is_not_one_decodes_to_nothing() {
    use crate::kpi::occupancy::{decode, encode};
    let s = vec![("ann".to_string(), 5, 9), ("bob".to_string(), 0, 900_000)];
    let b = encode(&s);
    assert_eq!(decode(&b), Some(s));
    assert_eq!(decode(&b[..b.len() - 1]), None, "cut short");
    assert_eq!(decode(&[2]), None, "another version");
    assert_eq!(decode(&[]), None);
    assert_eq!(decode(&[1]), Some(vec![]), "nobody staffed");
}

/// A bot conversation's timeline as the chat actor writes it.
fn bot_chat(id: &str, rows: &[(&str, serde_json::Value, i64)], queued: Option<i64>) -> Contact {
    let row = event::Row {
        channel: "webchat".into(),
        inbound: true,
        flow: String::new(),
        started_at: 0,
        offered_at: queued,
        queue: queued.map(|_| "support".into()),
    };
    let mut all = vec![("bot started", serde_json::json!({}), 0)];
    all.extend(rows.iter().cloned());
    let log = from_timeline(&row, all.iter().map(|(k, d, t)| (*k, d, *t)));
    Contact::new(id, "webchat", true, None, None, log)
}

#[test]
fn containment_and_hand_off_rate_by_intent_count_each_bot_conversation_once() {
    let said = |t| ("message", serde_json::json!({"from": "customer"}), t);
    let answer = |t| ("message", serde_json::json!({"from": "bot"}), t);
    let closed = |by: &str, t| ("closed", serde_json::json!({"by": by}), t);
    let ended = |handoff: bool, intent: Option<&str>, t| {
        (
            "bot ended",
            serde_json::json!({"handoff": handoff, "reason": if handoff {"asked"} else {"closed"}, "intent": intent}),
            t,
        )
    };
    // Answered and done: contained, with its intent.
    let a = bot_chat(
        "a",
        &[
            said(S),
            answer(2 * S),
            ended(false, Some("order-status"), 30 * S),
            closed("customer", 30 * S),
        ],
        None,
    );
    // Asked for a person after an answer: a hand-off of `order-status`.
    let b = bot_chat(
        "b",
        &[
            said(S),
            answer(2 * S),
            said(5 * S),
            ended(true, Some("order-status"), 5 * S),
            ("assigned", serde_json::json!({"agent": "bob"}), 9 * S),
            closed("agent", 60 * S),
        ],
        Some(5 * S),
    );
    // Nothing matched, handed over after two misses: intent (none).
    let c = bot_chat(
        "c",
        &[said(S), said(3 * S), ended(true, None, 3 * S)],
        Some(3 * S),
    );
    // A log from before containment was counted: `bot ended` without `handoff` was a
    // hand-off.
    let d = bot_chat(
        "d",
        &[
            said(S),
            (
                "bot ended",
                serde_json::json!({"reason": "asked", "intent": "returns"}),
                2 * S,
            ),
        ],
        Some(2 * S),
    );
    // A supervisor took it from the bot: a person was needed, not the bot's hand-off.
    let e = bot_chat(
        "e",
        &[
            said(S),
            (
                "taken over",
                serde_json::json!({"supervisor": "sam"}),
                4 * S,
            ),
            closed("agent", 20 * S),
        ],
        None,
    );
    // Still with the bot at the report: not judged yet.
    let f = bot_chat("f", &[said(S), answer(2 * S)], None);
    let fa = facts(&a);
    assert_eq!(
        fa.bot,
        Some(facts::BotPart {
            handoff: false,
            ended: true,
            intent: Some("order-status".into())
        })
    );
    // The customer left while the bot had it: they ended it there.
    assert_eq!(fa.abandoned, Some(facts::Stage::Bot));
    assert_eq!(facts(&b).abandoned, None);
    assert!(facts(&d).bot.unwrap().handoff);
    assert!(!facts(&f).bot.unwrap().ended);
    let all = [a, b, c, d, e, f];
    for x in &all {
        let fx = facts(x);
        assert_eq!(
            codec::decode(&codec::encode(&fx)),
            Some(fx.clone()),
            "{}",
            x.id
        );
    }
    let k = run(&all, &params()).total;
    assert_eq!((k.containment.num, k.containment.den), (1, 5));
    assert_eq!((k.bot_handoff.num, k.bot_handoff.den), (3, 5));
    let by: Vec<(&str, u64, u64)> = k
        .bot_handoff_by_intent
        .iter()
        .map(|(i, r)| (i.as_str(), r.num, r.den))
        .collect();
    assert_eq!(
        by,
        [("(none)", 1, 2), ("order-status", 1, 2), ("returns", 1, 1)]
    );
    assert_eq!(k.bot_handoff_by_intent["order-status"].value, Some(0.5));
}
