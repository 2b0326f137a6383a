//! The store on a real SQLite file and on a real PostgreSQL server (each test runs on
//! both): identities, conversations across contacts, the timeline, agents and queues;
//! migrations from the first SQLite schema; PostgreSQL schema set up once when nodes
//! start together.

use super::schema::MIGRATIONS;
#[cfg(feature = "postgres")]
use super::schema::PG_MIGRATIONS;
#[cfg(feature = "postgres")]
use super::timeline::TIMELINE;
use super::*;
use crate::store::{MailMark, NewEmail};
#[cfg(feature = "postgres")]
use sqlx::Row;

/// Each test body runs on a fresh SQLite file (`sqlite::name`) and on a fresh
/// PostgreSQL database (`postgres::name`).
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let d = tempfile::tempdir().unwrap();
                    let s = super::Store::open(&d.path().join("t.db")).await.unwrap();
                    assert_eq!(s.backend(), "sqlite");
                    super::$name(s).await
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let url = super::testpg::fresh_database();
                    let s = super::Store::connect(&url, std::path::Path::new("unused")).await.unwrap();
                    assert_eq!(s.backend(), "postgres");
                    super::$name(s).await
                }
            )*
        }
    };
}

on_both!(
    a_second_contact_joins_the_open_conversation,
    lookups_and_a_customer_found_later_moves_the_interaction,
    agents_queues_wrap_up_and_what_an_agent_may_see,
    a_survey_answer_is_kept_once_per_interaction_on_its_case,
    provider_messages_count_once_and_their_status_only_moves_forward,
    a_consent_is_replaced_by_what_the_customer_says_next,
    a_customer_is_erased_everywhere_in_the_database_and_their_kpis_stay,
    a_notification_key_is_claimed_once_and_keeps_its_answer,
    channel_accounts_are_kept_replaced_and_removed,
    an_open_web_chat_is_listed_with_its_session_until_it_ends,
    mail_is_recorded_once_counted_quarantined_threaded_and_erased,
    the_kpi_log_reads_what_was_recorded_and_leaves_message_text_behind,
    supervisors_are_kept_and_their_acts_are_logged_in_order,
    the_agents_activity_is_read_for_a_period_with_the_state_it_starts_in,
    a_survey_question_waits_for_one_answer_per_customer_until_it_expires,
    the_agents_occupancy_is_kept_per_quarter_hour_and_made_again_after_a_late_change,
    retention_takes_exactly_what_expired_and_nothing_on_a_held_case,
    requests_are_kept_soonest_due_first_and_answered_once,
);

async fn the_agents_occupancy_is_kept_per_quarter_hour_and_made_again_after_a_late_change(
    s: Store,
) {
    use crate::kpi;
    const Q: i64 = 900_000;
    let spec = serde_json::json!({});
    for a in ["ann", "bob"] {
        s.put_agent(a, &spec, "h", "api").await.unwrap();
    }
    // Nothing logged yet (nothing kept): an empty answer, as a fresh node's /metrics asks.
    let none = s
        .occupancy_input(1_796_000_000_000, 1_796_000_900_000, 1_796_001_000_000, 10)
        .await
        .unwrap()
        .unwrap();
    assert!(none.packs.is_empty());
    assert_eq!(none.changes.len(), 1, "{none:?}");
    assert!(none.changes[0].2.is_empty());
    // Three days of changes, a few minutes apart, each agent's in order.
    let base = 1_796_000_000_000 - 1_796_000_000_000 % Q;
    let states = ["idle", "working", "wrap-up", "away", "idle", "offline"];
    let mut seed = 7u64;
    let mut rows = vec![];
    for agent in ["ann", "bob"] {
        let mut at = base + 5 * 60_000;
        while at < base + 3 * 86_400_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rows.push((
                agent.to_string(),
                at,
                states[(seed >> 33) as usize % states.len()],
            ));
            at += 60_000 + (seed >> 40) as i64 % (90 * 60_000);
        }
    }
    s.add_agent_activity(&rows).await.unwrap();
    let now = base + 3 * 86_400_000 + 17 * 60_000;
    let (from, to) = (base + 7 * 60_000, now);
    let mut p = kpi::Params::new(from, to, now);
    p.group_by = vec![kpi::Key::Agent, kpi::Key::Hour];
    let raw = |s: &Store, p: &kpi::Params| {
        let (s, p) = (s.clone(), p.clone());
        async move {
            let mut r = kpi::report(&[], &p);
            kpi::add_occupancy(&mut r, &s.agent_activity(p.from, p.to).await.unwrap(), &p);
            r
        }
    };
    let kept = |s: &Store, p: &kpi::Params| {
        let (s, p) = (s.clone(), p.clone());
        async move {
            let input = s
                .occupancy_input(p.from, p.to, p.now, 1_000_000)
                .await
                .unwrap()
                .unwrap();
            let mut r = kpi::report(&[], &p);
            input.add_to(&mut r, &p);
            (
                r,
                input.packs.len(),
                input.changes.iter().map(|c| c.2.len()).sum::<usize>(),
            )
        }
    };
    let want = raw(&s, &p).await;
    assert!(want.total.occupancy.den > 0);
    let (got, packs, read) = kept(&s, &p).await;
    assert_eq!(got.total.occupancy, want.total.occupancy);
    assert_eq!(got.groups.len(), want.groups.len());
    for (g, w) in got.groups.iter().zip(&want.groups) {
        assert_eq!((&g.key, g.kpis.occupancy), (&w.key, w.kpis.occupancy));
    }
    assert!(packs > 200, "the whole quarter hours come kept: {packs}");
    assert!(read < 20, "only the ends are read as changes: {read}");
    // Nothing new: nothing made again.
    assert_eq!(s.refresh_activity_packs(now).await.unwrap(), 0);
    // A change written late, in a kept quarter hour: kept again from there.
    s.add_agent_activity(&[("ann".to_string(), base + 86_400_000 + 3 * 60_000, "away")])
        .await
        .unwrap();
    let want = raw(&s, &p).await;
    let (got, _, _) = kept(&s, &p).await;
    assert_eq!(got.total.occupancy, want.total.occupancy);
    for (g, w) in got.groups.iter().zip(&want.groups) {
        assert_eq!((&g.key, g.kpis.occupancy), (&w.key, w.kpis.occupancy));
    }
    assert_eq!(s.refresh_activity_packs(now).await.unwrap(), 0);
}

async fn a_survey_question_waits_for_one_answer_per_customer_until_it_expires(s: Store) {
    for id in ["q1", "q2", "q3"] {
        s.start_interaction(&new(id, "+15551234567")).await.unwrap();
    }
    let later = super::now() + 3_600_000;
    assert_eq!(s.take_survey_ask("wa", "+15551234567").await.unwrap(), None);
    s.ask_survey("wa", "+15551234567", "q1", "csat", later)
        .await
        .unwrap();
    // A newer question to the same customer on the same account replaces it; another
    // account's is its own.
    s.ask_survey("wa", "+15551234567", "q2", "nps", later)
        .await
        .unwrap();
    s.ask_survey("sms", "+15551234567", "q3", "csat", later)
        .await
        .unwrap();
    let take = |a: &'static str| {
        let s = s.clone();
        async move { s.take_survey_ask(a, "+15551234567").await.unwrap() }
    };
    // An older question that could not be sent does not take the newer one away.
    s.forget_survey_ask("wa", "+15551234567", "q1")
        .await
        .unwrap();
    assert_eq!(take("wa").await, Some(("q2".into(), "nps".into())));
    assert_eq!(take("wa").await, None, "taken once");
    // An expired question is no question (and is cleared when the next is asked).
    s.ask_survey("sms", "+15550000000", "q1", "csat", super::now() - 1)
        .await
        .unwrap();
    assert_eq!(
        s.take_survey_ask("sms", "+15550000000").await.unwrap(),
        None
    );
    assert_eq!(take("sms").await, Some(("q3".into(), "csat".into())));
}

async fn the_agents_activity_is_read_for_a_period_with_the_state_it_starts_in(s: Store) {
    let spec = serde_json::json!({});
    for a in ["ann", "bob", "cy"] {
        s.put_agent(a, &spec, "h", "api").await.unwrap();
    }
    let rows = |v: &[(&str, i64, &'static str)]| -> Vec<(String, i64, &'static str)> {
        v.iter()
            .map(|(a, t, st)| (a.to_string(), *t, *st))
            .collect()
    };
    s.add_agent_activity(&rows(&[
        ("bob", 100, "idle"),
        ("bob", 200, "working"),
        ("ann", 300, "idle"),
        // Two changes in one millisecond keep their order.
        ("bob", 1000, "wrap-up"),
        ("bob", 1000, "idle"),
        ("bob", 1500, "away"),
        ("ann", 2500, "working"),
        ("cy", 50, "idle"),
        ("cy", 60, "offline"),
    ]))
    .await
    .unwrap();
    // What a report would read in the period (its cap counts these).
    assert_eq!(s.agent_activity_count(1000, 2000).await.unwrap(), 3);
    assert_eq!(s.agent_activity_count(0, 10_000).await.unwrap(), 9);
    let got: Vec<(String, i64, String)> = s
        .agent_activity(1000, 2000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.agent, c.at, c.state))
        .collect();
    let want = [
        ("ann", 300, "idle"),
        ("bob", 200, "working"),
        ("bob", 1000, "wrap-up"),
        ("bob", 1000, "idle"),
        ("bob", 1500, "away"),
        ("cy", 60, "offline"),
    ]
    .map(|(a, t, st)| (a.to_string(), t, st.to_string()));
    assert_eq!(got, want);
    // A restart notes the agents still on the floor (ann working, bob away) offline.
    assert_eq!(s.close_agent_activity(3000).await.unwrap(), 2);
    assert_eq!(s.close_agent_activity(3001).await.unwrap(), 0);
    let after: Vec<(String, i64, String)> = s
        .agent_activity(3000, 4000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.at == 3000)
        .map(|c| (c.agent, c.at, c.state))
        .collect();
    assert_eq!(
        after,
        [("ann", 3000, "offline"), ("bob", 3000, "offline")].map(|(a, t, st)| (
            a.to_string(),
            t,
            st.to_string()
        ))
    );
}

async fn supervisors_are_kept_and_their_acts_are_logged_in_order(s: Store) {
    use crate::store::{Audit, AuditQuery};
    let spec = serde_json::json!({"name": "sam", "queues": ["support"]});
    s.put_supervisor("sam", &spec, "$hash1", "config")
        .await
        .unwrap();
    s.put_supervisor("sam", &spec, "$hash2", "config")
        .await
        .unwrap();
    let rows = s.supervisors().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].password_hash.as_str()),
        ("sam", "$hash2")
    );
    assert_eq!(rows[0].spec, spec);
    assert!(s.delete_supervisor("sam").await.unwrap());
    assert!(!s.delete_supervisor("sam").await.unwrap());
    assert!(s.supervisors().await.unwrap().is_empty());

    let since = crate::clock::unix_millis() as i64 - 1;
    let act = |actor, action, interaction| Audit {
        actor,
        role: "supervisor",
        action,
        interaction,
        detail: serde_json::json!({"n": 1}),
    };
    let a = s.audit(&act("sam", "login", None)).await.unwrap();
    let b = s.audit(&act("tom", "login", None)).await.unwrap();
    let c = s
        .audit(&act("sam", "interaction.read", Some("no-such-interaction")))
        .await
        .unwrap();
    assert!(a < b && b < c);
    let q = |actor: Option<&str>, after, limit| AuditQuery {
        from: since,
        to: since + 60_000,
        actor: actor.map(String::from),
        after,
        limit,
    };
    let all = s.audit_log(&q(None, 0, 10)).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [a, b, c]);
    let sam = s.audit_log(&q(Some("sam"), 0, 10)).await.unwrap();
    assert_eq!(
        sam.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["login", "interaction.read"]
    );
    assert_eq!(sam[1].interaction.as_deref(), Some("no-such-interaction"));
    assert_eq!(sam[1].detail, serde_json::json!({"n": 1}));
    let page = s.audit_log(&q(None, a, 1)).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [b]);
    assert!(s
        .audit_log(&AuditQuery {
            from: 0,
            to: since,
            ..q(None, 0, 10)
        })
        .await
        .unwrap()
        .is_empty());
}

async fn the_kpi_log_reads_what_was_recorded_and_leaves_message_text_behind(s: Store) {
    use crate::kpi;
    let since = crate::clock::unix_millis() as i64 - 1000;
    // A call through the IVR to a queue, offered to Carol who lets it lapse, then to
    // Bob who takes it, holds, and resolves the case at wrap-up; the caller rates it.
    let (_, case) = s
        .start_interaction(&new("k1", "+15550007777"))
        .await
        .unwrap();
    let q = InteractionUpdate {
        queue: Some("sales"),
        path: &[],
        ..Default::default()
    };
    s.update_interaction("k1", &q).await.unwrap();
    for (kind, data) in [
        ("offered", serde_json::json!({"agent": "carol"})),
        ("offer lapsed", serde_json::json!({"agent": "carol"})),
        ("offered", serde_json::json!({"agent": "bob"})),
        ("assigned", serde_json::json!({"agent": "bob"})),
        ("connected", serde_json::json!({"agent": "bob"})),
        ("held", serde_json::json!({"agent": "bob"})),
        ("resumed", serde_json::json!({"agent": "bob"})),
        (
            "note",
            serde_json::json!({"agent": "bob", "text": "not a KPI"}),
        ),
        ("caller hung up", serde_json::json!({})),
    ] {
        s.add_timeline("k1", kind, data).await.unwrap();
    }
    s.interaction_answered("k1", "bob").await.unwrap();
    s.end_interaction("k1", "answered by bob").await.unwrap();
    s.wrap_up("k1", "bob", "sale", true).await.unwrap();
    assert!(s.add_survey_answer("k1", "voice", 5, "").await.unwrap());
    let early = kept_facts(&s, since, crate::clock::unix_millis() as i64 + 1000).await;
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].holds, 1);
    // The resolved case comes back (as a mail that threads onto it does) with a
    // WhatsApp message of the same customer and Bob's reply; its text stays in the
    // store.
    assert!(s.reopen_conversation(case.unwrap()).await.unwrap());
    let mut w = new("k2", "+15550007777");
    w.kind = "whatsapp";
    w.flow = "";
    w.conversation = case;
    assert_eq!(s.start_interaction(&w).await.unwrap().1, case);
    s.update_interaction("k2", &q).await.unwrap();
    s.add_timeline(
        "k2",
        "message",
        serde_json::json!({"from": "customer", "text": "my secret order 123", "seq": 1}),
    )
    .await
    .unwrap();
    s.add_timeline("k2", "assigned", serde_json::json!({"agent": "bob"}))
        .await
        .unwrap();
    s.add_timeline(
        "k2",
        "message",
        serde_json::json!({"from": "agent", "agent": "bob", "text": "hi", "seq": 2}),
    )
    .await
    .unwrap();
    let until = crate::clock::unix_millis() as i64 + 1000;
    let mut log = s.kpi_log(since, until).await.unwrap();
    log.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(log.len(), 2);
    let kinds = |c: &kpi::Contact| -> Vec<String> {
        c.events
            .iter()
            .map(|e| {
                format!("{:?}", e.event)
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let call = kinds(&log[0]);
    for k in [
        "Created",
        "IvrStart",
        "Queued",
        "Offered",
        "Lapsed",
        "Accepted",
        "Connected",
        "HoldOn",
        "HoldOff",
        "Ended",
        "WrapUpEnd",
        "Disposition",
        "CaseResolved",
        "Survey",
        "CaseReopened",
    ] {
        assert!(call.contains(&k.to_string()), "{k} in {call:?}");
    }
    let f = kpi::facts(&log[0]);
    assert_eq!(f.queue.as_deref(), Some("sales"));
    assert_eq!(f.ended_by, Some(kpi::Party::Customer));
    assert_eq!(f.holds, 1);
    assert_eq!(f.agents, [kpi::facts::Name::from("bob")]);
    // (Written in the same millisecond they may read in either order.)
    let mut offers = f.offers.clone();
    offers.sort();
    assert_eq!(
        offers,
        [
            ("bob".into(), kpi::OfferEnd::Accepted),
            ("carol".into(), kpi::OfferEnd::Lapsed)
        ]
    );
    assert_eq!(f.surveys.len(), 1);
    assert!(f.acw.is_some());
    assert_eq!(log[1].channel, "whatsapp");
    assert_eq!(log[1].case, case);
    let f = kpi::facts(&log[1]);
    assert!(f.first_response.is_some(), "{:?}", log[1].events);
    // Both on one case: one journey on two channels, resolved then reopened.
    let facts: Vec<kpi::Facts> = log.iter().map(kpi::facts).collect();
    let r = kpi::report(&facts, &kpi::Params::new(since, until, until)).total;
    assert_eq!((r.cases, r.resolved_cases, r.reopened.num), (1, 1, 1));
    assert_eq!(r.switches.get("voice→whatsapp"), Some(&1));
    // Nothing outside the period.
    assert!(s.kpi_log(until, until + 1000).await.unwrap().is_empty());
    // The kept facts are the log's: made when a report first read them (above, before
    // the case came back), made again for what changed since.
    let kept = kept_facts(&s, since, until).await;
    let p = kpi::Params::new(since, until, until);
    assert_eq!(kpi::report(&kept, &p), kpi::report(&facts, &p));
    let bare = |v: &[kpi::Facts]| -> Vec<kpi::Facts> {
        v.iter()
            .cloned()
            .map(|mut f| {
                f.reopened.clear();
                f
            })
            .collect()
    };
    assert_eq!(bare(&kept), bare(&facts));
    assert_eq!(
        s.refresh_kpi_facts().await.unwrap(),
        0,
        "nothing left stale"
    );
    // Another interaction's row marks only that one.
    s.add_timeline("k2", "closed", serde_json::json!({"by": "agent"}))
        .await
        .unwrap();
    assert_eq!(s.refresh_kpi_facts().await.unwrap(), 1);
    let kept = kept_facts(&s, since, until).await;
    assert_eq!(kept[1].ended_by, Some(kpi::Party::Agent));
    // Facts kept in a form this version cannot read are made from the log for the
    // answer, and kept again.
    with_db!(s, |pool, sql| sqlx::query(sql(
        "UPDATE kpi_packs SET facts = ?"
    ))
    .bind(vec![0u8, 5])
    .execute(pool)
    .await
    .map(|_| ())
    .unwrap());
    assert_eq!(bare(&kept_facts(&s, since, until).await), bare(&kept));
    // Both made again for the mark the answer left, the unreadable pack found again
    // while patching it, both made once more.
    assert_eq!(s.refresh_kpi_facts().await.unwrap(), 4);
    assert_eq!(bare(&kept_facts(&s, since, until).await), bare(&kept));
    assert!(kept_facts(&s, until, until + 1000).await.is_empty());
    // A removed interaction leaves the kept facts.
    for q in [
        "DELETE FROM timeline WHERE interaction_id = 'k2'",
        "DELETE FROM interactions WHERE id = 'k2'",
    ] {
        with_db!(s, |pool, _sql| sqlx::query(q)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }
    let ids: Vec<String> = kept_facts(&s, since, until)
        .await
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, ["k1"]);
}

/// The store's kept KPI facts for `from..to`, by interaction.
async fn kept_facts(s: &Store, from: i64, to: i64) -> Vec<crate::kpi::Facts> {
    let mut v = s.kpi_facts_all(from, to).await.unwrap().concat();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

async fn mail_is_recorded_once_counted_quarantined_threaded_and_erased(s: Store) {
    // Ada's first mail starts an e-mail interaction on a new case.
    let (customer, case) = s
        .start_interaction(&NewInteraction {
            id: "e1",
            kind: "email",
            direction: "inbound",
            from: "Ada@Example.com",
            dialled: "ada@example.com",
            trunk: "support",
            ..Default::default()
        })
        .await
        .unwrap();
    let (customer, case) = (customer.unwrap(), case.unwrap());
    assert_eq!(
        s.open_case_for("ada@example.com").await.unwrap(),
        Some(case)
    );
    assert_eq!(s.open_case_for("eve@example.org").await.unwrap(), None);
    let raw: &[u8] = b"From: ada@example.com\r\n\r\n\xff binary \x00 kept";
    let m1 = NewEmail {
        mailbox: "support",
        message_id: "m1@example.com",
        interaction: Some("e1"),
        conversation: Some(case),
        direction: "in",
        seq: 1,
        status: "received",
        sender: "ada@example.com",
        recipients: "support@acme.test cc@example.net",
        subject: "Order",
        refs: "",
        raw: Some(raw),
        ..Default::default()
    };
    assert!(s.add_email(&m1).await.unwrap());
    assert!(!s.add_email(&m1).await.unwrap(), "once");
    assert_eq!(
        s.email_raw("support", "m1@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some(raw)
    );
    let row = s.email("support", "m1@example.com").await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.seq, row.conversation),
        ("received", 1, Some(case))
    );
    assert_eq!(
        s.email_conversations(&["nope@x".into(), "m1@example.com".into()])
            .await
            .unwrap(),
        [("m1@example.com".to_string(), case)]
    );
    let who = s.case_addresses(case).await.unwrap();
    assert_eq!(who.customer, Some(customer));
    assert!(
        who.addresses.contains(&"ada@example.com".to_string()),
        "{who:?}"
    );
    assert!(
        who.addresses.contains(&"cc@example.net".to_string()),
        "{who:?}"
    );
    // Our reply, sent, then bounced: failed with the reason, once.
    let out = NewEmail {
        message_id: "e1.3@acme.test",
        direction: "out",
        seq: 3,
        status: "sent",
        sender: "support@acme.test",
        recipients: "ada@example.com",
        raw: None,
        ..m1.clone()
    };
    assert!(s.add_email(&out).await.unwrap());
    assert_eq!(s.interaction_emails("e1").await.unwrap().len(), 2);
    let b = s
        .email_bounced("e1.3@acme.test", "5.1.1 unknown")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (b.status.as_str(), b.reason.as_str(), b.seq),
        ("failed", "5.1.1 unknown", 3)
    );
    assert!(s
        .email_bounced("e1.3@acme.test", "again")
        .await
        .unwrap()
        .is_none());
    // A message that fails: tries counted, then quarantined with its bytes, then
    // nothing changes it.
    assert_eq!(
        s.email_failed("support", "bad@x", "db down").await.unwrap(),
        1
    );
    assert_eq!(
        s.email_failed("support", "bad@x", "db down").await.unwrap(),
        2
    );
    s.quarantine_email("support", "bad@x", "failed twice", Some(b"raw"))
        .await
        .unwrap();
    assert_eq!(
        s.email_failed("support", "bad@x", "again").await.unwrap(),
        0
    );
    let q = s.quarantined_emails("support", 10).await.unwrap();
    assert_eq!((q.len(), q[0].reason.as_str()), (1, "failed twice"));
    assert!(!s
        .add_email(&NewEmail {
            message_id: "bad@x",
            ..m1.clone()
        })
        .await
        .unwrap());
    // A failing message that then imports takes the record.
    s.email_failed("support", "late@x", "busy").await.unwrap();
    assert!(s
        .add_email(&NewEmail {
            message_id: "late@x",
            ..m1.clone()
        })
        .await
        .unwrap());
    assert_eq!(
        s.email("support", "late@x").await.unwrap().unwrap().status,
        "received"
    );
    // The fetcher's mark.
    assert_eq!(s.mail_mark("support").await.unwrap(), None);
    let mark = MailMark {
        uidvalidity: 7,
        last_uid: 40,
    };
    s.set_mail_mark("support", mark).await.unwrap();
    s.set_mail_mark(
        "support",
        MailMark {
            last_uid: 41,
            ..mark
        },
    )
    .await
    .unwrap();
    assert_eq!(s.mail_mark("support").await.unwrap().unwrap().last_uid, 41);
    // The key is made once.
    let k = s.node_key("mail-token").await.unwrap();
    assert_eq!(k.len(), 64);
    assert_eq!(s.node_key("mail-token").await.unwrap(), k);
    // A resolved case comes back open, unless its customer has another open one.
    s.resolve_conversation(case).await.unwrap();
    assert!(s.reopen_conversation(case).await.unwrap());
    s.resolve_conversation(case).await.unwrap();
    let other = s.open_conversation(customer).await.unwrap();
    assert_ne!(other, case);
    assert!(!s.reopen_conversation(case).await.unwrap(), "one open case");
    // Erased: the texts and bytes go, the ids stay as tombstones.
    s.add_timeline(
        "e1",
        "message",
        serde_json::json!({"from": "customer", "text": "Order 1234"}),
    )
    .await
    .unwrap();
    assert_eq!(s.erase_case_mail(case).await.unwrap(), 3);
    let gone = s.email("support", "m1@example.com").await.unwrap().unwrap();
    assert_eq!(
        (
            gone.status.as_str(),
            gone.subject.as_str(),
            gone.sender.as_str()
        ),
        ("erased", "", "")
    );
    assert_eq!(
        s.email_raw("support", "m1@example.com").await.unwrap(),
        None
    );
    let t = s.timeline("e1").await.unwrap();
    assert!(
        !serde_json::to_string(&t.iter().map(|e| &e.data).collect::<Vec<_>>())
            .unwrap()
            .contains("Order 1234")
    );
}

async fn an_open_web_chat_is_listed_with_its_session_until_it_ends(s: Store) {
    s.start_web_chat("w1", "grace@example.com", "d1gest", "Grace", "support")
        .await
        .unwrap();
    let open = s.open_web_chats().await.unwrap();
    assert_eq!(open.len(), 1);
    let i = &open[0].interaction;
    assert_eq!((i.id.as_str(), i.kind.as_str()), ("w1", "webchat"));
    assert_eq!(i.caller, "grace@example.com");
    assert_eq!(i.customer_id, None, "typed, not verified");
    assert_eq!(
        open[0].session,
        Some(crate::store::WebChatSession {
            token_digest: "d1gest".into(),
            name: "Grace".into(),
            queue: "support".into()
        })
    );
    // The same id twice is refused, and nothing half-written stays.
    assert!(s
        .start_web_chat("w1", "x", "other", "X", "support")
        .await
        .is_err());
    let kept = s.open_web_chats().await.unwrap();
    assert_eq!(kept[0].session.as_ref().unwrap().token_digest, "d1gest");
    s.end_interaction("w1", "closed by agent").await.unwrap();
    assert!(s.open_web_chats().await.unwrap().is_empty());
}

async fn channel_accounts_are_kept_replaced_and_removed(s: Store) {
    use crate::store::Accounts;
    for t in [Accounts::Channel, Accounts::Mailbox] {
        assert!(s.accounts(t).await.unwrap().is_empty());
        s.put_account(
            t,
            "shop",
            &serde_json::json!({"kind": "open", "queue": "a"}),
        )
        .await
        .unwrap();
        s.put_account(
            t,
            "shop",
            &serde_json::json!({"kind": "open", "queue": "b"}),
        )
        .await
        .unwrap();
        let all = s.accounts(t).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1["queue"], "b", "replaced");
    }
    assert!(s.delete_account(Accounts::Channel, "shop").await.unwrap());
    assert!(!s.delete_account(Accounts::Channel, "shop").await.unwrap());
    assert_eq!(
        s.accounts(Accounts::Mailbox).await.unwrap().len(),
        1,
        "a table each"
    );
    assert!(s.delete_account(Accounts::Mailbox, "shop").await.unwrap());
}

async fn a_notification_key_is_claimed_once_and_keeps_its_answer(s: Store) {
    const MIN: i64 = 60_000;
    assert_eq!(s.claim_notification("k1", "d1", MIN).await.unwrap(), None);
    // Still being handled: the same key finds no answer yet.
    assert_eq!(
        s.claim_notification("k1", "d1", MIN).await.unwrap(),
        Some(("d1".into(), String::new()))
    );
    s.answer_notification("k1", "{\"status\":202}")
        .await
        .unwrap();
    assert_eq!(
        s.claim_notification("k1", "other", MIN).await.unwrap(),
        Some(("d1".into(), "{\"status\":202}".into()))
    );
    // Answered keys stay, even when old; a request that failed before its answer
    // frees its key.
    assert!(s.claim_notification("k1", "d1", 0).await.unwrap().is_some());
    s.release_notification("k1").await.unwrap();
    assert!(s
        .claim_notification("k1", "d1", MIN)
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.claim_notification("k2", "d2", MIN).await.unwrap(), None);
    s.release_notification("k2").await.unwrap();
    assert_eq!(s.claim_notification("k2", "d3", MIN).await.unwrap(), None);
    // A claim whose node died mid-way (unanswered past the limit) is taken over.
    assert_eq!(s.claim_notification("k2", "d3", 0).await.unwrap(), None);
}

async fn a_consent_is_replaced_by_what_the_customer_says_next(s: Store) {
    s.start_interaction(&new("k1", "+15551234567"))
        .await
        .unwrap();
    let c = s
        .interaction("k1")
        .await
        .unwrap()
        .unwrap()
        .customer_id
        .unwrap();
    assert_eq!(s.consents(c).await.unwrap(), []);
    let says = |channel: &str, granted: bool| crate::privacy::ConsentEvent {
        purpose: crate::privacy::Purpose::Marketing,
        channel: channel.into(),
        granted,
        source: "agent".into(),
        evidence: serde_json::json!({"interaction": "k1"}),
        actor: "bob".into(),
    };
    s.record_consent(c, &says("sms", true)).await.unwrap();
    s.record_consent(c, &says("sms", false)).await.unwrap();
    s.record_consent(c, &says("whatsapp", true)).await.unwrap();
    let events = s.consent_events(c).await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        (
            events[1].channel.as_str(),
            events[1].granted,
            events[1].source.as_str(),
            events[1].actor.as_str()
        ),
        ("sms", false, "agent", "bob")
    );
    assert_eq!(events[1].evidence["interaction"], "k1");
    assert!(events[0].id < events[1].id && events[1].id < events[2].id);
    let got: Vec<(String, bool)> = s
        .consents(c)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, g, _)| (k, g))
        .collect();
    assert_eq!(
        got,
        [
            ("marketing:sms".into(), false),
            ("marketing:whatsapp".into(), true)
        ]
    );
    let view = s.customer_view(c).await.unwrap().unwrap();
    assert_eq!(view["consents"]["marketing:sms"]["granted"], false);

    // The IVR's recording notice: kept for the interaction's customer; it decides
    // whether their later calls are recorded (a later `any` grant overrides it).
    assert!(!s.recording_withdrawn(c).await.unwrap());
    let recording = |channel: &str, granted: bool| crate::privacy::ConsentEvent {
        purpose: crate::privacy::Purpose::Recording,
        channel: channel.into(),
        granted,
        source: "ivr".into(),
        evidence: serde_json::json!({"interaction": "k1", "notice_version": "v7"}),
        actor: "customer".into(),
    };
    s.record_interaction_consent("k1", &recording("voice", false))
        .await
        .unwrap();
    assert!(s.recording_withdrawn(c).await.unwrap());
    let last = s.consent_events(c).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.purpose.as_str(), last.source.as_str()),
        ("recording", "ivr")
    );
    s.record_consent(c, &recording("any", true)).await.unwrap();
    assert!(!s.recording_withdrawn(c).await.unwrap());
    // An anonymous caller's notice has nobody to be kept for, and is no error.
    s.start_interaction(&new("k2", "anonymous")).await.unwrap();
    s.record_interaction_consent("k2", &recording("voice", false))
        .await
        .unwrap();
}

async fn provider_messages_count_once_and_their_status_only_moves_forward(s: Store) {
    s.start_interaction(&new("w1", "+593991234567"))
        .await
        .unwrap();
    assert_eq!(s.channel_message("wa", "wamid.A").await.unwrap(), None);
    assert!(s
        .add_channel_message("wa", "wamid.A", "w1", "in", 1, "received")
        .await
        .unwrap());
    // Delivered again (a retried webhook): on record once.
    assert!(!s
        .add_channel_message("wa", "wamid.A", "w1", "in", 2, "received")
        .await
        .unwrap());
    let m = s.channel_message("wa", "wamid.A").await.unwrap().unwrap();
    assert_eq!(
        (m.interaction.as_str(), m.seq, m.direction.as_str()),
        ("w1", 1, "in")
    );
    // Another account's id space is its own.
    assert!(s
        .add_channel_message("other", "wamid.A", "w1", "in", 3, "received")
        .await
        .unwrap());
    // Ours: sent, then read; a late "delivered" changes nothing; failed after read neither.
    assert!(s
        .add_channel_message("wa", "wamid.OUT", "w1", "out", 4, "sent")
        .await
        .unwrap());
    let (m, changed) = s
        .set_channel_status("wa", "wamid.OUT", "read", "")
        .await
        .unwrap()
        .unwrap();
    assert!(changed && m.status == "read");
    let (m, changed) = s
        .set_channel_status("wa", "wamid.OUT", "delivered", "")
        .await
        .unwrap()
        .unwrap();
    assert!(!changed && m.status == "read");
    assert!(
        !s.set_channel_status("wa", "wamid.OUT", "failed", "x")
            .await
            .unwrap()
            .unwrap()
            .1
    );
    // A status for a customer's message, or an unknown id, changes nothing.
    assert!(
        !s.set_channel_status("wa", "wamid.A", "read", "")
            .await
            .unwrap()
            .unwrap()
            .1
    );
    assert_eq!(
        s.set_channel_status("wa", "wamid.NONE", "read", "")
            .await
            .unwrap(),
        None
    );
    assert!(s
        .add_channel_message("wa", "wamid.F", "w1", "out", 5, "sent")
        .await
        .unwrap());
    let (m, changed) = s
        .set_channel_status("wa", "wamid.F", "failed", "131047 Re-engagement message")
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(
        (m.status.as_str(), m.error.as_str()),
        ("failed", "131047 Re-engagement message")
    );
    // Our own "sent" racing the connector's "delivered" (an open channel's delivery is
    // on record as queued first): whichever lands first, delivered wins and says so.
    for i in 0..20 {
        let id = format!("race-{i}");
        assert!(s
            .add_channel_message("open", &id, "w1", "out", 10 + i, "queued")
            .await
            .unwrap());
        let (sent, delivered) = tokio::join!(
            s.set_channel_status("open", &id, "sent", ""),
            s.set_channel_status("open", &id, "delivered", "")
        );
        let (_, changed) = delivered.unwrap().unwrap();
        assert!(changed, "delivered moved it forward (round {i})");
        sent.unwrap().unwrap();
        let m = s.channel_message("open", &id).await.unwrap().unwrap();
        assert_eq!(m.status, "delivered", "round {i}");
    }
}

async fn a_survey_answer_is_kept_once_per_interaction_on_its_case(s: Store) {
    s.start_interaction(&new("r1", "+15551234567"))
        .await
        .unwrap();
    assert!(s.survey_answer("r1").await.unwrap().is_none());
    assert!(s
        .add_survey_answer("r1", "webchat", 5, "quick and kind")
        .await
        .unwrap());
    // Once: a second answer (a replayed form) changes nothing.
    assert!(!s.add_survey_answer("r1", "webchat", 1, "").await.unwrap());
    assert!(!s.add_survey_answer("nope", "webchat", 3, "").await.unwrap());
    let a = s.survey_answer("r1").await.unwrap().unwrap();
    assert_eq!(
        (a.channel.as_str(), a.score, a.comment.as_str()),
        ("webchat", 5, "quick and kind")
    );
    let rated: Vec<_> = s
        .timeline("r1")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "rated")
        .map(|e| e.data["score"].clone())
        .collect();
    assert_eq!(rated, [serde_json::json!(5)]);
}

/// Three callers' calls (recorded, a voicemail, a message, a mail each): two 40
/// simulated days old, one of them on a case under legal hold, and one new. A 30-day
/// policy run at the simulated now takes exactly the old, unheld one's; lifting the
/// hold lets the next run take the other.
async fn retention_takes_exactly_what_expired_and_nothing_on_a_held_case(s: Store) {
    use crate::privacy::retention::Policy;
    const DAY: i64 = 86_400_000;
    let now = crate::clock::unix_millis() as i64;
    let mut cases = Vec::new();
    for (id, phone) in [
        ("old", "+15551234567"),
        ("held", "+15557654321"),
        ("new", "+15550001111"),
    ] {
        let (_, case) = s.start_interaction(&new(id, phone)).await.unwrap();
        cases.push(case.unwrap());
        s.set_recording(id, &format!("/data/recordings/{id}.wav"))
            .await
            .unwrap();
        s.add_timeline(
            id,
            "voicemail",
            serde_json::json!({"path": format!("/data/voicemail/{id}.wav"), "seconds": 3.0}),
        )
        .await
        .unwrap();
        s.add_timeline(
            id,
            "message",
            serde_json::json!({"from": "customer", "text": format!("secret of {id}")}),
        )
        .await
        .unwrap();
        s.add_timeline(
            id,
            "bot ended",
            serde_json::json!({"handoff": true, "reason": "asked", "intent": "order-status", "summary": format!("asked for a person after: secret of {id}")}),
        )
        .await
        .unwrap();
        s.add_email(&NewEmail {
            mailbox: "support",
            message_id: &format!("{id}@example.com"),
            interaction: Some(id),
            conversation: case,
            direction: "in",
            status: "received",
            raw: Some(format!("Subject: {id}\r\n\r\nbody of {id}").as_bytes()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for q in [
        "UPDATE interactions SET started_at = ? WHERE id IN ('old', 'held')",
        "UPDATE timeline SET at = ? WHERE interaction_id IN ('old', 'held')",
        "UPDATE emails SET at = ? WHERE interaction_id IN ('old', 'held')",
    ] {
        with_db!(s, |pool, sql| sqlx::query(sql(q))
            .bind(now - 40 * DAY)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }
    assert!(s.set_legal_hold(cases[1], Some("dora")).await.unwrap());
    assert!(
        !s.set_legal_hold(999_999, Some("dora")).await.unwrap(),
        "no such case"
    );
    assert_eq!(
        s.legal_hold(cases[1]).await.unwrap().map(|h| h.1),
        Some("dora".into())
    );
    assert_eq!(s.legal_hold(cases[0]).await.unwrap(), None);
    let policy = Policy::parse("30d", "30d", "30d", "30d", "30d").unwrap();

    let took = s.apply_retention(&policy.cutoffs(now)).await.unwrap();
    assert_eq!(
        took,
        crate::store::Expired {
            recordings: vec!["/data/recordings/old.wav".into()],
            voicemails: vec!["/data/voicemail/old.wav".into()],
            messages: 1,
            raw_mails: 1,
            bot_logs: 1,
        }
    );
    // The bot's hand-off keeps why and which article, not the customer's words.
    let bot = s.timeline("old").await.unwrap();
    let bot = &bot.iter().find(|e| e.kind == "bot ended").unwrap().data;
    assert_eq!(
        *bot,
        serde_json::json!({"handoff": true, "reason": "asked", "intent": "order-status", "expired": true})
    );
    let left = |id: &'static str| {
        let s = s.clone();
        async move {
            let rec = s.interaction(id).await.unwrap().unwrap().recording;
            let tl = s.timeline(id).await.unwrap();
            let text = tl
                .iter()
                .find(|e| e.kind == "message")
                .unwrap()
                .data
                .clone();
            let vm = tl
                .iter()
                .find(|e| e.kind == "voicemail")
                .unwrap()
                .data
                .clone();
            let raw = s
                .email_raw("support", &format!("{id}@example.com"))
                .await
                .unwrap();
            (
                rec.is_some(),
                text["text"].is_string(),
                vm["path"].is_string(),
                raw.is_some(),
                text,
            )
        }
    };
    let (rec, text, vm, raw, data) = left("old").await;
    assert_eq!((rec, text, vm, raw), (false, false, false, false), "{data}");
    assert_eq!(
        data,
        serde_json::json!({"from": "customer", "expired": true})
    );
    for id in ["held", "new"] {
        let (rec, text, vm, raw, _) = left(id).await;
        assert_eq!((rec, text, vm, raw), (true, true, true, true), "{id}");
    }
    // Run again: nothing more.
    assert_eq!(
        s.apply_retention(&policy.cutoffs(now)).await.unwrap(),
        Default::default()
    );
    // The hold lifted: the next run takes the held call's; the new one stays until
    // 30 simulated days later.
    assert!(s.set_legal_hold(cases[1], None).await.unwrap());
    let took = s.apply_retention(&policy.cutoffs(now)).await.unwrap();
    assert_eq!(took.recordings, ["/data/recordings/held.wav"]);
    assert_eq!((took.messages, took.raw_mails), (1, 1));
    let (rec, ..) = left("new").await;
    assert!(rec);
    let took = s
        .apply_retention(&policy.cutoffs(now + 31 * DAY))
        .await
        .unwrap();
    assert_eq!(took.recordings, ["/data/recordings/new.wav"]);
}

async fn requests_are_kept_soonest_due_first_and_answered_once(s: Store) {
    use crate::privacy::requests::NewRequest;
    const DAY: i64 = 86_400_000;
    let now = crate::clock::unix_millis() as i64;
    let r = |kind, received_at| NewRequest {
        customer: 7,
        kind,
        received_at,
        note: format!("{kind} by letter"),
    };
    let late = s
        .add_request(&r("access", now - 3 * DAY), "dora")
        .await
        .unwrap();
    let soon = s
        .add_request(&r("erasure", now - 10 * DAY), "dora")
        .await
        .unwrap();
    let other = s
        .add_request(
            &NewRequest {
                customer: 8,
                ..r("portability", now)
            },
            "admin",
        )
        .await
        .unwrap();
    let ids = |v: Vec<crate::store::RequestRow>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.requests(true, 10).await.unwrap()),
        [soon, late, other]
    );
    let row = s.request(soon).await.unwrap().unwrap();
    assert_eq!(
        (row.due_at, row.recorded_by.as_str()),
        (now + 5 * DAY, "dora")
    );
    assert!(s
        .answer_request(late, "dora", "sent by post")
        .await
        .unwrap());
    assert!(
        !s.answer_request(late, "dora", "again").await.unwrap(),
        "once"
    );
    assert_eq!(ids(s.requests(true, 10).await.unwrap()), [soon, other]);
    assert_eq!(
        ids(s.requests(false, 10).await.unwrap()),
        [soon, late, other]
    );
    // An export answers the customer's access and portability requests, not others'.
    assert_eq!(
        s.answer_requests_of(7, &["access", "portability"], "dora", "exported")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.answer_requests_of(8, &["access", "portability"], "dora", "exported")
            .await
            .unwrap(),
        1
    );
    let row = s.request(other).await.unwrap().unwrap();
    assert_eq!(
        (row.answer.as_str(), row.answered_at.is_some()),
        ("exported", true)
    );
    assert_eq!(ids(s.requests(true, 10).await.unwrap()), [soon]);
}

fn new<'a>(id: &'a str, from: &'a str) -> NewInteraction<'a> {
    NewInteraction {
        id,
        kind: "voice",
        direction: "inbound",
        from,
        dialled: "100",
        trunk: "demo",
        flow: "demo",
        flow_version: "v",
        unverified: false,
        conversation: None,
    }
}

#[test]
fn phone_numbers_and_identities() {
    assert_eq!(
        normalize_phone("+1 (555) 123-4567").as_deref(),
        Some("+15551234567")
    );
    assert_eq!(
        normalize_phone("0044 20 7946 0000").as_deref(),
        Some("+442079460000")
    );
    assert_eq!(
        normalize_phone("tel:+33.1.23.45.67.89").as_deref(),
        Some("+33123456789")
    );
    assert_eq!(normalize_phone("5551234").as_deref(), Some("5551234"));
    assert_eq!(normalize_phone("alice"), None);
    assert_eq!(
        normalize_phone("+1234567890123456"),
        None,
        "longer than E.164 allows"
    );
    assert_eq!(
        identity_of(" Ada@Example.COM "),
        Some((IdentityKind::Email, "ada@example.com".into()))
    );
    assert_eq!(
        identity_of("sipp"),
        Some((IdentityKind::Sip, "sipp".into()))
    );
    assert_eq!(identity_of(""), None);
}

async fn a_second_contact_joins_the_open_conversation(s: Store) {
    s.seed_demo().await.unwrap();
    // Ada calls from her number written another way: same customer, one conversation.
    let (c1, conv1) = s
        .start_interaction(&new("i1", "+1 555-123-4567"))
        .await
        .unwrap();
    let (c2, conv2) = s
        .start_interaction(&new("i2", "+15551234567"))
        .await
        .unwrap();
    assert!(c1.is_some());
    assert_eq!((c1, conv1), (c2, conv2));
    // Her e-mail identity (a chat) lands on the same case.
    let (c3, conv3) = s
        .start_interaction(&NewInteraction {
            kind: "webchat",
            ..new("i3", "ADA@example.com")
        })
        .await
        .unwrap();
    assert_eq!((c3, conv3), (c1, conv1));
    // Resolved: the next contact opens a new conversation.
    s.resolve_conversation(conv1.unwrap()).await.unwrap();
    let (c4, conv4) = s
        .start_interaction(&new("i4", "+15551234567"))
        .await
        .unwrap();
    assert_eq!(c4, c1);
    assert_ne!(conv4, conv1);
    // A stranger becomes a new customer with that identity.
    let (c5, _) = s
        .start_interaction(&new("i5", "+447700900123"))
        .await
        .unwrap();
    assert_ne!(c5, c1);
    assert_eq!(
        s.customer_by_identity(IdentityKind::Phone, "+447700900123")
            .await
            .unwrap(),
        c5
    );
    let (c6, _) = s
        .start_interaction(&new("i6", "0044 7700 900123"))
        .await
        .unwrap();
    assert_eq!(c6, c5);
}

async fn lookups_and_a_customer_found_later_moves_the_interaction(s: Store) {
    s.seed_demo().await.unwrap();
    let ada = s.lookup("account", "1234").await.unwrap().unwrap();
    assert_eq!(ada.name, "Ada Lovelace");
    assert_eq!(ada.phone, "+15551234567");
    assert_eq!(ada.email, "ada@example.com");
    assert!(ada
        .fields()
        .contains(&("email".into(), "ada@example.com".into())));
    assert_eq!(
        s.lookup("caller", "+1 555 123 4567").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        s.lookup("email", "ADA@example.com").await.unwrap(),
        Some(ada.clone())
    );
    let id = ada.id;
    assert_eq!(s.lookup("id", &id.to_string()).await.unwrap(), Some(ada));
    assert!(s.lookup("account", "0000").await.unwrap().is_none());
    assert!(s.lookup("email", "' OR 1=1 --").await.unwrap().is_none());

    // An unknown number calls, then gives Ada's account number.
    let (stranger, _) = s
        .start_interaction(&new("i1", "+15550009999"))
        .await
        .unwrap();
    assert_ne!(stranger, Some(id));
    let ada_conv = s.open_conversation(id).await.unwrap();
    let mut vars = serde_json::Map::new();
    vars.insert("account".into(), "1234".into());
    s.update_interaction(
        "i1",
        &InteractionUpdate {
            customer_id: Some(id),
            queue: Some("support"),
            path: &["a".into()],
            variables: Some(&vars),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.add_timeline("i1", "voicemail", serde_json::json!({"seconds": 3}))
        .await
        .unwrap();
    s.update_interaction(
        "i1",
        &InteractionUpdate {
            outcome: Some("caller_hangup"),
            path: &["a".into(), "b".into()],
            ended: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let i = s.interaction("i1").await.unwrap().unwrap();
    assert_eq!(i.customer_id, Some(id));
    assert_eq!(i.conversation_id, Some(ada_conv));
    assert_eq!(i.queue.as_deref(), Some("support"));
    assert_eq!(i.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(
        i.variables["account"], "1234",
        "variables kept when an update has none"
    );
    assert!(i.ended_at.is_some());
    let events = s.conversation_timeline(ada_conv).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    // The whole interaction now shows in her conversation.
    assert_eq!(
        kinds,
        [
            "interaction started",
            "queued",
            "voicemail",
            "interaction ended"
        ]
    );
    // Each event says when (Unix ms, in order).
    let ats: Vec<i64> = events.iter().map(|e| e.at).collect();
    let now = crate::clock::unix_millis() as i64;
    assert!(
        ats.iter().all(|t| (now - 60_000..=now).contains(t)) && ats.is_sorted(),
        "{ats:?} at {now}"
    );
    let all: Vec<String> = s
        .timeline("i1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        all,
        [
            "interaction started",
            "queued",
            "voicemail",
            "interaction ended"
        ]
    );
}

#[tokio::test]
async fn migrates_a_first_version_database_and_refuses_a_newer_one() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("old.db");
    {
        // The schema as issue 4 shipped it, with data.
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
        for s in MIGRATIONS[0].1 {
            sqlx::query(*s).execute(&pool).await.unwrap();
        }
        sqlx::query("INSERT INTO customers (name, phone, email, account, tier, created_at) VALUES ('Old', '+15550001234', 'Old@Example.com', '77', 'gold', 1)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO interactions (id, kind, customer_id, started_at) VALUES ('old1', 'voice', 1, 1)").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let s = Store::open(&path).await.unwrap();
    assert_eq!(s.version().await.unwrap(), SCHEMA_VERSION);
    let old = s.lookup("caller", "+15550001234").await.unwrap().unwrap();
    assert_eq!(old.email, "old@example.com");
    let i = s.interaction("old1").await.unwrap().unwrap();
    assert_eq!((i.direction.as_str(), i.conversation_id), ("inbound", None));
    // Opening again applies nothing twice.
    drop(s);
    let s = Store::open(&path).await.unwrap();
    assert_eq!(s.version().await.unwrap(), SCHEMA_VERSION);
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        .execute(match &s.db {
            Db::Sqlite(p) => p,
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        })
        .await
        .unwrap();
    drop(s);
    match Store::open(&path).await {
        Err(StoreError::TooNew(99, SCHEMA_VERSION)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

async fn agents_queues_wrap_up_and_what_an_agent_may_see(s: Store) {
    s.seed_demo().await.unwrap();
    // Agents and queues: written, replaced, listed in name order, deleted.
    let spec = serde_json::json!({"skills": {"billing": 7}});
    s.put_agent("zoe", &spec, "h1", "api").await.unwrap();
    s.put_agent("ann", &spec, "h2", "config").await.unwrap();
    s.put_agent("zoe", &serde_json::json!({"team": "b"}), "h3", "api")
        .await
        .unwrap();
    let agents = s.agents().await.unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["ann", "zoe"]);
    assert_eq!(agents[1].spec["team"], "b");
    assert_eq!(
        (agents[1].password_hash.as_str(), agents[1].source.as_str()),
        ("h3", "api")
    );
    assert!(s.delete_agent("zoe").await.unwrap());
    assert!(!s.delete_agent("zoe").await.unwrap());
    s.put_queue("sales", &serde_json::json!({"sla_secs": 20}), "api")
        .await
        .unwrap();
    s.put_queue("sales", &serde_json::json!({"sla_secs": 30}), "api")
        .await
        .unwrap();
    let q = s.queues().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].spec["sla_secs"], 30);

    // A chat from a new address: named by the chat, answered, ended twice (once
    // counts), wrapped up as resolved.
    let (c, conv) = s
        .start_interaction(&NewInteraction {
            kind: "webchat",
            ..new("chat1", "Someone@Example.org")
        })
        .await
        .unwrap();
    let (c, conv) = (c.unwrap(), conv.unwrap());
    let by_agent = crate::store::Provenance {
        source: "agent",
        interaction: Some("chat1"),
        actor: "ann",
    };
    assert!(s.name_customer(c, "Sam Someone", &by_agent).await.unwrap());
    assert!(!s
        .name_customer(c, "Not Overwritten", &crate::store::Provenance::of("api"))
        .await
        .unwrap());
    // Where the address and the name came from: the chat that brought the address,
    // the agent who named them; the second name changed nothing.
    let p = s.provenance(c).await.unwrap();
    assert_eq!(p["identities"][0]["value"], "someone@example.org", "{p}");
    assert_eq!(p["identities"][0]["source"], "webchat", "{p}");
    assert_eq!(p["identities"][0]["interaction"], "chat1", "{p}");
    assert_eq!(p["fields"]["name"]["source"], "agent", "{p}");
    assert_eq!(p["fields"]["name"]["actor"], "ann", "{p}");
    assert_eq!(p["fields"]["name"]["interaction"], "chat1", "{p}");
    assert!(!s.agent_served("ann", c).await.unwrap());
    s.interaction_answered("chat1", "ann").await.unwrap();
    assert!(s.agent_served("ann", c).await.unwrap());
    assert!(!s.agent_served("ben", c).await.unwrap());
    s.add_timeline(
        "chat1",
        "message",
        serde_json::json!({"from": "customer", "text": "hi"}),
    )
    .await
    .unwrap();
    s.end_interaction("chat1", "closed by agent").await.unwrap();
    s.end_interaction("chat1", "customer left").await.unwrap();
    s.wrap_up("chat1", "ann", "answered", true).await.unwrap();
    let i = s.interaction("chat1").await.unwrap().unwrap();
    assert_eq!(i.outcome.as_deref(), Some("closed by agent"));
    assert_eq!(i.disposition.as_deref(), Some("answered"));
    assert_eq!(i.agent.as_deref(), Some("ann"));
    assert!(i.answered_at.is_some() && i.ended_at.is_some());
    let tl = s.conversation_timeline(conv).await.unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "interaction started",
            "message",
            "interaction ended",
            "wrapped up"
        ]
    );
    assert_eq!(tl[0].data["kind"], "webchat");
    assert_eq!(tl[0].data["from"], "Someone@Example.org");
    assert_eq!(tl[2].data["outcome"], "closed by agent");
    assert_eq!(tl[3].data["resolved"], true);
    // Resolved: the customer has no open case; the card says who they are and where
    // each detail came from.
    let card = s.customer_card(c).await.unwrap().unwrap();
    assert_eq!(card["name"], "Sam Someone");
    assert_eq!(card["open_conversation"], serde_json::Value::Null);
    assert_eq!(
        card["identities"],
        serde_json::json!([{"kind": "email", "value": "someone@example.org", "source": "webchat", "actor": ""}])
    );
    assert_eq!(
        card["name_source"],
        serde_json::json!({"source": "agent", "actor": "ann"})
    );
    assert!(s.customer_card(999_999).await.unwrap().is_none());
    // Their next contact opens a new case; history lists newest first.
    let (_, conv2) = s
        .start_interaction(&new("call2", "someone@example.org"))
        .await
        .unwrap();
    assert_ne!(conv2, Some(conv));
    // Routing hints: ann served them last; the new case has no earlier contact yet,
    // then a second contact on it is a repeat; a gold customer is a VIP.
    assert_eq!(
        s.routing_hints(c, "call2").await.unwrap(),
        hints(Some("ann"), false, false)
    );
    s.start_interaction(&new("chat3", "someone@example.org"))
        .await
        .unwrap();
    assert_eq!(
        s.routing_hints(c, "chat3").await.unwrap(),
        hints(Some("ann"), true, false)
    );
    let ada = s
        .customer_by_identity(IdentityKind::Email, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.routing_hints(ada, "none").await.unwrap(),
        hints(None, false, true)
    );
    let hist = s.customer_interactions(c, 10).await.unwrap();
    let ids: Vec<&str> = hist.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["chat3", "call2", "chat1"]);
    assert_eq!(s.customer_interactions(c, 1).await.unwrap().len(), 1);
    let recent = s.recent_interactions(1).await.unwrap();
    assert_eq!(recent[0].id, "chat3");
    // Two contacts racing for a customer without a case get one case.
    let (a, b) = tokio::join!(s.open_conversation(c), s.open_conversation(c));
    assert_eq!(a.unwrap(), b.unwrap());
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_schema_is_set_up_once_when_nodes_start_together() {
    let url = testpg::fresh_database();
    let (a, b, c) = tokio::join!(
        Store::open_postgres(&url),
        Store::open_postgres(&url),
        Store::open_postgres(&url)
    );
    let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.version().await.unwrap(), SCHEMA_VERSION);
    let Db::Pg(pool) = &a.db else { unreachable!() };
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, PG_MIGRATIONS.len());
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        .execute(pool)
        .await
        .unwrap();
    match Store::open_postgres(&url).await {
        Err(StoreError::TooNew(99, SCHEMA_VERSION)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    // URLs: the scheme decides; anything else is refused with the reason.
    assert_eq!(
        Store::connect(&url.replace("postgres://", "postgresql://"), Path::new("x"))
            .await
            .err()
            .map(|e| e.to_string()),
        Some(StoreError::TooNew(99, SCHEMA_VERSION).to_string())
    );
    let e = Store::connect("mysql://x/y", Path::new("x"))
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("is not sqlite:PATH, postgres://"),
        "{e}"
    );
}

#[test]
fn database_values() {
    assert_eq!(Database::parse(" "), Ok(Database::Sqlite(None)));
    assert_eq!(
        Database::parse("sqlite:///var/lib/og.db"),
        Ok(Database::Sqlite(Some("/var/lib/og.db")))
    );
    assert_eq!(
        Database::parse("sqlite:data/x.db"),
        Ok(Database::Sqlite(Some("data/x.db")))
    );
    assert!(Database::parse("sqlite:")
        .unwrap_err()
        .contains("names no file"));
    assert!(Database::parse("mysql://h/d")
        .unwrap_err()
        .contains("is not sqlite:PATH"));
    #[cfg(feature = "postgres")]
    assert_eq!(
        Database::parse("postgresql://u@h/d"),
        Ok(Database::Postgres("postgresql://u@h/d"))
    );
}

#[test]
fn statements_in_postgres_dialect() {
    #[cfg(feature = "postgres")]
    {
        assert_eq!(
            pg_sql("SELECT CAST(json_object('a?', x) AS TEXT) FROM t WHERE a = ? AND b = ?"),
            "SELECT CAST(json_build_object('a?', x) AS TEXT) FROM t WHERE a = $1 AND b = $2"
        );
        // Translated once: the same text comes back.
        let a = pg_sql(TIMELINE);
        assert!(std::ptr::eq(a, pg_sql(TIMELINE)));
        assert!(a.contains("$3") && !a.contains('?'));
    }
    assert_eq!(sqlite_sql("a = ?"), "a = ?");
}

fn hints(last_agent: Option<&str>, repeat: bool, vip: bool) -> RoutingHints {
    RoutingHints {
        last_agent: last_agent.map(String::from),
        repeat,
        vip,
    }
}

/// Whether `dump` holds `needle` as text or in hex (a blob).
fn holds(dump: &str, needle: &str) -> bool {
    let hex = crate::channels::signature::hex(needle.as_bytes());
    dump.contains(needle) || dump.to_lowercase().contains(&hex)
}

async fn a_customer_is_erased_everywhere_in_the_database_and_their_kpis_stay(s: Store) {
    const NAME: &str = "Ada Lovelace";
    const PHONE: &str = "+15551234567";
    const MAIL: &str = "ada@example.com";
    const SECRET: &str = "my card ends 4242";
    // Ada: a recorded call with a voicemail and a survey, a web chat typed with her
    // address (unverified), an e-mail on her case, consents, a webhook delivery.
    let (ada, case) = s.start_interaction(&new("v1", PHONE)).await.unwrap();
    let (ada, case) = (ada.unwrap(), case.unwrap());
    s.name_customer(ada, NAME, &crate::store::Provenance::of("agent"))
        .await
        .unwrap();
    s.add_identity(
        ada,
        IdentityKind::Email,
        MAIL,
        &crate::store::Provenance::of("api"),
    )
    .await
    .unwrap();
    s.update_interaction(
        "v1",
        &InteractionUpdate {
            queue: Some("support"),
            path: &["menu".to_string()],
            variables: serde_json::json!({"account": "1234", "said": SECRET}).as_object(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.interaction_assigned("v1", "bob").await.unwrap();
    s.set_recording("v1", "/data/recordings/v1.wav")
        .await
        .unwrap();
    s.add_timeline(
        "v1",
        "voicemail",
        serde_json::json!({"path": "/data/voicemail/v1.wav", "seconds": 4.0}),
    )
    .await
    .unwrap();
    s.end_interaction("v1", "completed").await.unwrap();
    assert!(s
        .add_survey_answer("v1", "voice", 5, "Ada was happy")
        .await
        .unwrap());
    s.ask_survey("wa", PHONE, "v1", "nps", i64::MAX)
        .await
        .unwrap();
    s.start_web_chat("w1", MAIL, "d1gest", NAME, "support")
        .await
        .unwrap();
    s.add_timeline(
        "w1",
        "message",
        serde_json::json!({"from": "customer", "text": SECRET, "name": NAME}),
    )
    .await
    .unwrap();
    s.start_interaction(&NewInteraction {
        kind: "email",
        ..new("e1", MAIL)
    })
    .await
    .unwrap();
    let raw = format!("From: {NAME} <{MAIL}>\r\nMessage-ID: <m1@example.com>\r\n\r\n{SECRET}");
    s.add_email(&NewEmail {
        mailbox: "support",
        message_id: "m1@example.com",
        interaction: Some("e1"),
        conversation: Some(case),
        direction: "in",
        status: "received",
        sender: MAIL,
        subject: SECRET,
        raw: Some(raw.as_bytes()),
        ..Default::default()
    })
    .await
    .unwrap();
    s.add_timeline(
        "e1",
        "message",
        serde_json::json!({"from": "customer", "text": SECRET}),
    )
    .await
    .unwrap();
    s.record_consent(
        ada,
        &crate::privacy::ConsentEvent {
            purpose: crate::privacy::Purpose::Recording,
            channel: "voice".into(),
            granted: false,
            source: "ivr".into(),
            evidence: serde_json::json!({"interaction": "v1", "caller": PHONE}),
            actor: "customer".into(),
        },
    )
    .await
    .unwrap();
    s.webhook_delivered("https://crm.example.com/hook", Some(ada), None)
        .await
        .unwrap();
    // The chat's screen-pop went to a second receiver before anyone verified her.
    s.webhook_delivered("https://pop.example.com/", None, Some("w1"))
        .await
        .unwrap();
    // Alan, who must not be touched.
    let (alan, _) = s
        .start_interaction(&new("v2", "+15557654321"))
        .await
        .unwrap();
    let alan = alan.unwrap();
    s.name_customer(alan, "Alan Turing", &crate::store::Provenance::of("api"))
        .await
        .unwrap();

    let inv = s.inventory(ada).await.unwrap().unwrap();
    assert_eq!(
        inv.identities,
        [
            ("phone".into(), PHONE.into()),
            ("email".into(), MAIL.into())
        ]
    );
    let mut ints = inv.interactions.clone();
    ints.sort();
    assert_eq!(ints, ["e1", "v1", "w1"]);
    assert_eq!(inv.recordings, ["/data/recordings/v1.wav"]);
    assert_eq!(inv.voicemails, ["/data/voicemail/v1.wav"]);
    assert_eq!(inv.mails, [("support".into(), "m1@example.com".into())]);
    assert_eq!((inv.messages, inv.survey_answers, inv.consents), (2, 1, 1));
    assert_eq!(
        inv.webhooks,
        ["https://crm.example.com/hook", "https://pop.example.com/"]
    );
    assert_eq!(inv.pops, [("https://pop.example.com/".into(), "w1".into())]);
    assert_eq!(s.inventory(999_999).await.unwrap(), None);

    s.refresh_kpi_facts().await.unwrap();
    let before = kept_facts(&s, 0, i64::MAX / 2).await;
    let id = s
        .new_erasure(ada, "dpo", &serde_json::json!({"identities": 2}))
        .await
        .unwrap();
    assert!(s.start_erasure(id, "admin").await.unwrap());
    assert!(!s.start_erasure(id, "admin").await.unwrap(), "once");
    let erased = s.erase_customer(ada, id).await.unwrap().unwrap();
    assert_eq!(erased, inv);
    s.finish_erasure(id, Ok(&serde_json::json!({"files": 2})))
        .await
        .unwrap();
    s.compact_after_erasure().await.unwrap();
    let e = s.erasure(id).await.unwrap().unwrap();
    assert_eq!(
        (e.status, e.requested_by.as_str(), e.executed_by.as_str()),
        (crate::privacy::ErasureStatus::Completed, "dpo", "admin")
    );
    assert!(e.completed_at.is_some());
    assert_eq!(e.proof["files"], 2);
    // Her Message-ID waits for the mail server's copy to go (the fetcher's part),
    // then nothing of it stays.
    assert_eq!(s.mail_purges_pending(id).await.unwrap(), 1);
    let queued = s.mail_purges("support", 10).await.unwrap();
    assert_eq!(queued, ["m1@example.com"]);
    assert!(s.mail_purges("sales", 10).await.unwrap().is_empty());
    s.mail_purged("support", &queued).await.unwrap();
    assert_eq!(s.mail_purges_pending(id).await.unwrap(), 0);
    s.compact_after_erasure().await.unwrap();

    // Nothing of hers in any row of any table; Alan's still there.
    let dump = s.dump().await;
    for needle in [
        NAME,
        PHONE,
        "5551234567",
        MAIL,
        SECRET,
        "Ada was happy",
        "m1@example.com",
        "d1gest",
    ] {
        assert!(!holds(&dump, needle), "{needle:?} is still in the database");
    }
    assert!(holds(&dump, "Alan Turing") && holds(&dump, "+15557654321"));
    // The receivers were told (the centre's part): no delivery of hers is left noted.
    let after = s.inventory(ada).await.unwrap().unwrap();
    assert!(
        after.webhooks.is_empty() && after.pops.is_empty(),
        "{after:?}"
    );
    // The KPIs read the same facts.
    s.refresh_kpi_facts().await.unwrap();
    assert_eq!(kept_facts(&s, 0, i64::MAX / 2).await, before);
    let v1 = s.interaction("v1").await.unwrap().unwrap();
    assert_eq!(
        (
            v1.queue.as_deref(),
            v1.agent.as_deref(),
            v1.outcome.as_deref(),
            v1.customer_id
        ),
        (Some("support"), Some("bob"), Some("completed"), Some(ada))
    );
    assert_eq!(
        s.survey_answer("v1").await.unwrap().map(|a| a.score),
        Some(5)
    );
    // Tombstones: the mail is known as erased, the number as once held.
    assert_eq!(
        s.email("support", "m1@example.com")
            .await
            .unwrap()
            .unwrap()
            .status,
        "erased"
    );
    assert!(s
        .tombstoned("identity:phone", PHONE)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .tombstoned("identity:phone", "+15557654321")
        .await
        .unwrap()
        .is_none());
    // The same number calling again is a new, empty customer.
    let (again, _) = s.start_interaction(&new("v3", PHONE)).await.unwrap();
    assert_ne!(again, Some(ada));
    assert_eq!(s.customer(again.unwrap()).await.unwrap().unwrap().name, "");
    assert_eq!(s.customer(ada).await.unwrap().unwrap().name, "");
}

/// On SQLite the erased values are not left in the files either (free pages, the
/// write-ahead log): `secure_delete` and the checkpoint after an erasure.
#[tokio::test]
async fn an_erased_customer_is_not_left_in_the_sqlite_files() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&d.path().join("t.db")).await.unwrap();
    a_customer_is_erased_everywhere_in_the_database_and_their_kpis_stay(s.clone()).await;
    let mut bytes = Vec::new();
    for e in std::fs::read_dir(d.path()).unwrap() {
        bytes.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Alan Turing"), "the files are read");
    // (Her number is there again: it called once more after the erasure, a new
    // customer.)
    for needle in [
        "Ada Lovelace",
        "ada@example.com",
        "my card ends 4242",
        "Ada was happy",
        "m1@example.com",
    ] {
        assert!(!text.contains(needle), "{needle:?} is still in the files");
    }
}
