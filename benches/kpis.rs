//! KPIs over a month: N interactions (1,000,000 by default) spread over 30 days with
//! their timelines as the gateway writes them (about eight events each: queued,
//! offered, assigned, connected, holds, messages, the end, wrap-ups, ratings; one in
//! ten abandoned), from 200,000 customers, written straight into a real SQLite file
//! and a real PostgreSQL database (the schema made by `Store::open`/`connect`), then
//! timed: each interaction's facts made from its log once (`Store::refresh_kpi_facts`,
//! as after an upgrade), then `GET /api/kpis`'s work (`Store::kpi_facts_all` for the month:
//! what changed made again, the kept facts read; `kpi::report` grouped by hour; the
//! agents' occupancy, kept per quarter hour once, read and added: three changes per
//! handled interaction) with
//! nothing changed and after 1,000 interactions changed. Prints each step's time and
//! the resident memory the answer took.
//!
//! Run: `cargo bench --bench kpis` (`INTERACTIONS=N` to change, `DB=sqlite` or
//! `DB=postgres` for one). Under `cargo test` it runs 2,000 as a smoke test.

#[allow(dead_code)]
mod support;
#[path = "../src/store/testpg.rs"]
mod testpg;

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::Instant;

const DAY: i64 = 86_400_000;
const START: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z
const CUSTOMERS: i64 = 200_000;
const QUEUES: [&str; 5] = ["sales", "support", "billing", "vip", "spanish"];
const AGENTS: usize = 80;

/// One generated interaction and its timeline rows (kind, data, at).
struct Generated {
    id: String,
    kind: &'static str,
    customer: i64,
    started: i64,
    offered: Option<i64>,
    answered: Option<i64>,
    ended: i64,
    queue: &'static str,
    agent: Option<String>,
    timeline: Vec<(&'static str, String, i64)>,
}

fn generate(i: usize, n: usize, rng: &mut StdRng) -> Generated {
    let kind = match rng.gen_range(0..20) {
        0..=9 => "voice",
        10..=13 => "webchat",
        14..=16 => "whatsapp",
        17..=18 => "email",
        _ => "sms",
    };
    let customer = rng.gen_range(1..=CUSTOMERS);
    // Written as they come: in the order they started.
    let started = START + i as i64 * (30 * DAY - 60_000) / n as i64 + rng.gen_range(0..60_000);
    let queue = QUEUES[rng.gen_range(0..QUEUES.len())];
    let agent = format!("agent{}", rng.gen_range(0..AGENTS));
    let a = format!(r#"{{"agent":"{agent}"}}"#);
    let mut t: Vec<(&'static str, String, i64)> = vec![];
    let voice = kind == "voice";
    let offered = started
        + if voice {
            rng.gen_range(5_000..60_000)
        } else {
            0
        };
    let mut at = offered;
    if !voice {
        t.push((
            "message",
            r#"{"from":"customer","text":"hello, my order","seq":1}"#.into(),
            at,
        ));
    }
    let abandoned = rng.gen_range(0..10) == 0;
    at += rng.gen_range(1_000..90_000);
    t.push(("offered", a.clone(), at));
    if abandoned {
        at += rng.gen_range(1_000..30_000);
        if voice {
            t.push(("caller hung up", "{}".into(), at));
        } else {
            t.push(("closed", r#"{"by":"abandoned"}"#.into(), at));
        }
        t.push((
            "interaction ended",
            r#"{"outcome":"caller_hangup"}"#.into(),
            at,
        ));
        return Generated {
            id: format!("i{i:08}"),
            kind,
            customer,
            started,
            offered: Some(offered),
            answered: None,
            ended: at,
            queue,
            agent: None,
            timeline: t,
        };
    }
    at += rng.gen_range(1_000..10_000);
    t.push(("assigned", a.clone(), at));
    if voice {
        at += rng.gen_range(500..5_000);
        t.push(("connected", a.clone(), at));
    }
    let answered = at;
    if voice && rng.gen_range(0..5) == 0 {
        at += rng.gen_range(10_000..120_000);
        t.push(("held", a.clone(), at));
        at += rng.gen_range(5_000..90_000);
        t.push(("resumed", a.clone(), at));
    }
    if !voice {
        for n in 0..3 {
            at += rng.gen_range(5_000..120_000);
            let from = if n % 2 == 0 { "agent" } else { "customer" };
            t.push((
                "message",
                format!(r#"{{"from":"{from}","agent":"{agent}","text":"a reply of some length to read","seq":{}}}"#, n + 2),
                at,
            ));
        }
    }
    at += rng.gen_range(30_000..600_000);
    if voice {
        t.push(("caller hung up", "{}".into(), at));
    } else {
        t.push(("closed", r#"{"by":"agent"}"#.into(), at));
    }
    t.push((
        "interaction ended",
        format!(r#"{{"outcome":"answered by {agent}"}}"#),
        at,
    ));
    let ended = at;
    at += rng.gen_range(5_000..120_000);
    let resolved = rng.gen_range(0..10) < 6;
    t.push((
        "wrapped up",
        format!(r#"{{"agent":"{agent}","disposition":"done","resolved":{resolved}}}"#),
        at,
    ));
    if rng.gen_range(0..10) == 0 {
        t.push((
            "rated",
            format!(r#"{{"score":{}}}"#, rng.gen_range(1..=5)),
            at + 60_000,
        ));
    }
    Generated {
        id: format!("i{i:08}"),
        kind,
        customer,
        started,
        offered: Some(offered),
        answered: Some(answered),
        ended,
        queue,
        agent: Some(agent),
        timeline: t,
    }
}

/// Writes customers, their cases and `n` interactions with their timelines, in
/// transactions of 500-row statements.
async fn fill<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, n: usize) -> usize
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let mut tx = pool.begin().await.unwrap();
    let ids: Vec<i64> = (1..=CUSTOMERS).collect();
    for chunk in ids.chunks(500) {
        let mut q = sqlx::QueryBuilder::<DB>::new("INSERT INTO customers (id, name, created_at) ");
        q.push_values(chunk, |mut b, id| {
            b.push_bind(*id)
                .push_bind(format!("Customer {id}"))
                .push_bind(START);
        });
        q.build().execute(&mut *tx).await.unwrap();
        let mut q = sqlx::QueryBuilder::<DB>::new(
            "INSERT INTO conversations (id, customer_id, status, opened_at) ",
        );
        q.push_values(chunk, |mut b, id| {
            b.push_bind(*id)
                .push_bind(*id)
                .push_bind("resolved")
                .push_bind(START);
        });
        q.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut rng = StdRng::seed_from_u64(19);
    let mut rows = 0;
    let mut done = 0;
    while done < n {
        let batch: Vec<Generated> = (done..(done + 500).min(n))
            .map(|i| generate(i, n, &mut rng))
            .collect();
        done += batch.len();
        let mut tx = pool.begin().await.unwrap();
        let mut q = sqlx::QueryBuilder::<DB>::new("INSERT INTO interactions (id, kind, direction, customer_id, conversation_id, flow, started_at, offered_at, answered_at, ended_at, queue, agent) ");
        q.push_values(&batch, |mut b, g| {
            b.push_bind(g.id.clone())
                .push_bind(g.kind)
                .push_bind("inbound")
                .push_bind(g.customer)
                .push_bind(g.customer)
                .push_bind(if g.kind == "voice" { "main" } else { "" })
                .push_bind(g.started)
                .push_bind(g.offered)
                .push_bind(g.answered)
                .push_bind(g.ended)
                .push_bind(g.queue)
                .push_bind(g.agent.clone());
        });
        q.build().execute(&mut *tx).await.unwrap();
        let t: Vec<(&Generated, &(&'static str, String, i64))> = batch
            .iter()
            .flat_map(|g| g.timeline.iter().map(move |r| (g, r)))
            .collect();
        rows += t.len();
        for chunk in t.chunks(500) {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) ",
            );
            q.push_values(chunk, |mut b, (g, (kind, data, at))| {
                b.push_bind(g.customer)
                    .push_bind(g.customer)
                    .push_bind(g.id.clone())
                    .push_bind(*at)
                    .push_bind(*kind)
                    .push_bind(data.clone());
            });
            q.build().execute(&mut *tx).await.unwrap();
        }
        // The agents' activity around each interaction they had (occupancy): working
        // from the answer, wrap-up from the end, idle 30 s later.
        let changes: Vec<(String, i64, &'static str)> = batch
            .iter()
            .filter_map(|g| Some((g.agent.clone()?, g.answered?, g.ended)))
            .flat_map(|(a, answered, ended)| {
                [
                    (a.clone(), answered, "working"),
                    (a.clone(), ended, "wrap-up"),
                    (a, ended + 30_000, "idle"),
                ]
            })
            .collect();
        for chunk in changes.chunks(500) {
            let mut q =
                sqlx::QueryBuilder::<DB>::new("INSERT INTO agent_activity (agent, at, state) ");
            q.push_values(chunk, |mut b, (agent, at, state)| {
                b.push_bind(agent.clone()).push_bind(*at).push_bind(*state);
            });
            q.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    rows
}

#[allow(clippy::disallowed_methods)] // a benchmark reads the clock
async fn measure<DB: sqlx::Database>(
    name: &str,
    store: &omnigate::store::Store,
    pool: &sqlx::Pool<DB>,
    n: usize,
    rows: usize,
) where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    // The first report after the month was written (or after the upgrade to schema 12)
    // makes every interaction's facts from its log.
    let t0 = Instant::now();
    let made = store.refresh_kpi_facts().await.unwrap();
    let t1 = Instant::now();
    assert_eq!(made, n, "every interaction's facts made");
    println!(
        "kpis {name}: {n} interactions, {rows} timeline rows: facts made from the log once in {:.0} ms",
        ms(t0, t1)
    );
    // And the agents' occupancy kept per quarter hour, once (as after the upgrade to
    // schema 15).
    let t0 = Instant::now();
    let quarters = store
        .refresh_activity_packs(START + 60 * DAY)
        .await
        .unwrap();
    println!(
        "  occupancy kept once: {quarters} quarter hours in {:.0} ms",
        ms(t0, Instant::now())
    );
    // Then GET /api/kpis's work: what changed made again, the kept facts read, folded.
    let report = |label: &'static str| async move {
        let rss0 = support::rss_bytes();
        let t0 = Instant::now();
        let facts = store.kpi_facts_all(START, START + 30 * DAY).await.unwrap();
        let read: usize = facts.iter().map(Vec::len).sum();
        let t1 = Instant::now();
        let mut p = omnigate::kpi::Params::new(START, START + 30 * DAY, START + 60 * DAY);
        p.group_by = vec![omnigate::kpi::Key::Hour];
        let parts: Vec<&[omnigate::kpi::Facts]> = facts.iter().map(Vec::as_slice).collect();
        let mut r = omnigate::kpi::report::report_parts(&parts, &p);
        let t2 = Instant::now();
        // Occupancy, as the API adds it: the month's kept quarter hours (and any
        // changes outside them) read, folded.
        let occupancy = store
            .occupancy_input(START, START + 30 * DAY, START + 60 * DAY, 500_000)
            .await
            .unwrap()
            .unwrap();
        let t_read = Instant::now();
        occupancy.add_to(&mut r, &p);
        let t3 = Instant::now();
        let rss1 = support::rss_bytes();
        assert_eq!(read, n, "every interaction read");
        assert_eq!(r.total.contacts as usize, n);
        assert!(r.groups.len() > 1);
        assert!(r.total.occupancy.den > 0, "occupancy counted");
        println!(
            "  report by hour ({label}): {} groups: refresh and read {:.0} ms, report {:.0} ms, occupancy ({} quarter hours, {} changes) read {:.0} ms + {:.0} ms, total {:.0} ms; +{:.1} MiB resident",
            r.groups.len(),
            ms(t0, t1),
            ms(t1, t2),
            occupancy.packs.len(),
            occupancy.changes.iter().map(|c| c.2.len()).sum::<usize>(),
            ms(t2, t_read),
            ms(t_read, t3),
            ms(t0, t3),
            (rss1.saturating_sub(rss0)) as f64 / 1048576.0,
        );
        r
    };
    let r = report("nothing changed").await;
    // (PROFILE=N: N more reports, for a profiler.)
    let more: usize = std::env::var("PROFILE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for _ in 0..more {
        report("again").await;
    }
    println!(
        "  service level {:.3}, abandonment {:.3}, AHT {:.0} ms, FCR {:?}",
        r.total.service_level.value.unwrap_or_default(),
        r.total.abandonment.value.unwrap_or_default(),
        r.total.handle_time.mean.unwrap_or_default(),
        r.total.first_contact_resolution.value,
    );
    // A busy minute: 1,000 interactions get a survey answer.
    let changed = 1000.min(n);
    let mut q =
        sqlx::QueryBuilder::<DB>::new("INSERT INTO timeline (interaction_id, at, kind, data) ");
    q.push_values(0..changed, |mut b, i| {
        b.push_bind(format!("i{:08}", i * (n / changed)))
            .push_bind(START + 29 * DAY)
            .push_bind("rated")
            .push_bind(r#"{"score":4}"#);
    });
    q.build().execute(pool).await.unwrap();
    let again = report("1,000 changed").await;
    assert!(again.total.csat.den >= r.total.csat.den);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("INTERACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 2_000 });
    let which = std::env::var("DB").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if which.is_empty() || which == "sqlite" {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kpis.db");
            let store = omnigate::store::Store::open(&path).await.unwrap();
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            let rows = fill(&pool, n).await;
            measure("sqlite", &store, &pool, n, rows).await;
            pool.close().await;
        }
        if which.is_empty() || which == "postgres" {
            let url = testpg::fresh_database();
            let store = omnigate::store::Store::connect(&url, std::path::Path::new("unused"))
                .await
                .unwrap();
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let rows = fill(&pool, n).await;
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            measure("postgres", &store, &pool, n, rows).await;
            pool.close().await;
        }
    });
}
