//! The event logs the KPIs are computed from: interactions started in a period with
//! their timeline, read into [`crate::kpi::Contact`]s (the definitions live there).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{Db, Store, StoreError};
use crate::kpi;
use sqlx::Row;
use std::collections::HashMap;

/// The interactions started in a period, each followed by its timeline rows that
/// carry a KPI (a message only as who wrote it: its text is not read), in one order
/// so one interaction's rows come together.
macro_rules! log_rows {
    ($from:literal, $agent:literal) => {
        concat!(
            "SELECT i.id, i.kind, i.direction, i.customer_id, i.conversation_id, i.flow, i.started_at, i.offered_at, i.queue, t.kind, CASE WHEN t.kind = 'message' THEN CAST(json_object('from', ",
            $from,
            ", 'agent', ",
            $agent,
            ") AS TEXT) ELSE t.data END, t.at FROM interactions i LEFT JOIN timeline t ON t.interaction_id = i.id AND t.kind IN ('offered', 'assigned', 'connected', 'offer rejected', 'offer lapsed', 'agent missed', 'held', 'resumed', 'transferred', 'overflow', 'requeued', 'message', 'ivr ended', 'bot started', 'bot ended', 'caller hung up', 'hung up', 'closed', 'interaction ended', 'wrapped up', 'rated') WHERE i.started_at >= ? AND i.started_at < ? ORDER BY i.started_at, i.id, t.at, t.id"
        )
    };
}
const LOG_SQLITE: &str = log_rows!(
    "json_extract(t.data, '$.from')",
    "json_extract(t.data, '$.agent')"
);
#[cfg(feature = "postgres")]
const LOG_PG: &str = log_rows!(
    "CAST(t.data AS json)->>'from'",
    "CAST(t.data AS json)->>'agent'"
);

/// A case's own events (reopened), from `at` on.
const CASE_EVENTS: &str = "SELECT conversation_id, kind, at FROM timeline WHERE interaction_id IS NULL AND kind = 'reopened' AND at >= ?";

/// One interaction being read, with its timeline rows so far.
struct Reading {
    id: String,
    row: kpi::event::Row,
    customer: Option<i64>,
    case: Option<i64>,
    timeline: Vec<(String, serde_json::Value, i64)>,
}

impl Reading {
    /// Its log, with its case's reopenings if it is the case's first interaction read.
    fn contact(self, reopened: &mut HashMap<i64, Vec<i64>>) -> kpi::Contact {
        let mut log = kpi::from_timeline(
            &self.row,
            self.timeline.iter().map(|(k, d, at)| (k.as_str(), d, *at)),
        );
        if let Some(times) = self.case.and_then(|c| reopened.remove(&c)) {
            log.extend(times.into_iter().map(|at| kpi::Entry {
                at,
                event: kpi::Event::CaseReopened,
            }));
        }
        let inbound = self.row.inbound;
        kpi::Contact::new(
            self.id,
            self.row.channel,
            inbound,
            self.customer,
            self.case,
            log,
        )
    }
}

impl Store {
    /// How many interactions started in `from..to` (Unix ms).
    pub async fn interactions_between(&self, from: i64, to: i64) -> Result<i64, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT COUNT(*) FROM interactions WHERE started_at >= ? AND started_at < ?"
        ))
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?
        .get::<i64, _>(0)))
    }

    /// Every interaction started in `from..to` (Unix ms) with its KPI events.
    pub async fn kpi_log(&self, from: i64, to: i64) -> Result<Vec<kpi::Contact>, StoreError> {
        let mut out = vec![];
        self.kpi_log_each(from, to, |c| out.push(c)).await?;
        Ok(out)
    }

    /// The same, one interaction at a time, oldest first (streamed: only one
    /// interaction's rows are held at once). How many were read.
    pub async fn kpi_log_each(
        &self,
        from: i64,
        to: i64,
        mut each: impl FnMut(kpi::Contact),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let log = match &self.db {
            Db::Sqlite(_) => LOG_SQLITE,
            #[cfg(feature = "postgres")]
            Db::Pg(_) => LOG_PG,
        };
        let mut n = 0;
        with_db!(self, |pool, sql| {
            // A case's reopenings go with the first of its interactions read (a
            // case's KPIs read them all).
            let mut reopened: HashMap<i64, Vec<i64>> = HashMap::new();
            let mut rows = sqlx::query(sql(CASE_EVENTS)).bind(from).fetch(pool);
            while let Some(r) = rows.try_next().await? {
                reopened.entry(r.get(0)).or_default().push(r.get(2));
            }
            drop(rows);
            let mut current: Option<Reading> = None;
            let mut rows = sqlx::query(sql(log)).bind(from).bind(to).fetch(pool);
            while let Some(r) = rows.try_next().await? {
                let id: String = r.get(0);
                if current.as_ref().is_none_or(|c| c.id != id) {
                    if let Some(done) = current.take() {
                        each(done.contact(&mut reopened));
                        n += 1;
                    }
                    current = Some(Reading {
                        id,
                        row: kpi::event::Row {
                            channel: r.get(1),
                            inbound: r.get::<String, _>(2) != "outbound",
                            flow: r.get(5),
                            started_at: r.get(6),
                            offered_at: r.get(7),
                            queue: r.get(8),
                        },
                        customer: r.get(3),
                        case: r.get(4),
                        timeline: vec![],
                    });
                }
                if let (Some(kind), Some(c)) = (r.get::<Option<String>, _>(9), current.as_mut()) {
                    let data: Option<String> = r.get(10);
                    let data = data
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or_default();
                    c.timeline.push((kind, data, r.get(11)));
                }
            }
            if let Some(done) = current.take() {
                each(done.contact(&mut reopened));
                n += 1;
            }
        });
        Ok(n)
    }
}
