//! The event logs the KPIs are computed from: interactions started in a period with
//! their timeline, read into [`crate::kpi::Contact`]s (the definitions live there).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{Db, Store, StoreError};
use crate::kpi;
use sqlx::Row;
use std::collections::HashMap;

const INTERACTIONS: &str = "SELECT id, kind, direction, customer_id, conversation_id, flow, started_at, offered_at, queue FROM interactions WHERE started_at >= ? AND started_at < ?";

/// The timeline rows that carry a KPI (a message only as who wrote it: its text is
/// not read).
macro_rules! timeline_rows {
    ($from:literal, $agent:literal) => {
        concat!(
            "SELECT t.interaction_id, t.kind, CASE WHEN t.kind = 'message' THEN CAST(json_object('from', ",
            $from,
            ", 'agent', ",
            $agent,
            ") AS TEXT) ELSE t.data END, t.at FROM timeline t JOIN interactions i ON i.id = t.interaction_id WHERE i.started_at >= ? AND i.started_at < ? AND t.kind IN ('offered', 'assigned', 'connected', 'offer rejected', 'offer lapsed', 'agent missed', 'held', 'resumed', 'transferred', 'overflow', 'requeued', 'message', 'ivr ended', 'bot started', 'bot ended', 'caller hung up', 'hung up', 'closed', 'interaction ended', 'wrapped up', 'rated')"
        )
    };
}
const TIMELINE_SQLITE: &str = timeline_rows!(
    "json_extract(t.data, '$.from')",
    "json_extract(t.data, '$.agent')"
);
#[cfg(feature = "postgres")]
const TIMELINE_PG: &str = timeline_rows!(
    "CAST(t.data AS json)->>'from'",
    "CAST(t.data AS json)->>'agent'"
);

/// A case's own events (reopened), from `at` on.
const CASE_EVENTS: &str = "SELECT conversation_id, kind, at FROM timeline WHERE interaction_id IS NULL AND kind = 'reopened' AND at >= ?";

/// An interaction's row as the KPIs need it.
struct Head {
    id: String,
    row: kpi::event::Row,
    customer: Option<i64>,
    case: Option<i64>,
}

/// A timeline row that carries a KPI.
struct Noted {
    interaction: String,
    kind: String,
    data: String,
    at: i64,
}

/// A case's own event (its reopening).
struct CaseNoted {
    case: i64,
    at: i64,
}

impl Store {
    /// Every interaction started in `from..to` (Unix ms) with its KPI events.
    pub async fn kpi_log(&self, from: i64, to: i64) -> Result<Vec<kpi::Contact>, StoreError> {
        let timeline = match &self.db {
            Db::Sqlite(_) => TIMELINE_SQLITE,
            #[cfg(feature = "postgres")]
            Db::Pg(_) => TIMELINE_PG,
        };
        let (heads, rows, case_rows): (Vec<Head>, Vec<Noted>, Vec<CaseNoted>) =
            with_db!(self, |pool, sql| {
                let heads = sqlx::query(sql(INTERACTIONS))
                    .bind(from)
                    .bind(to)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|r| Head {
                        id: r.get("id"),
                        row: kpi::event::Row {
                            channel: r.get("kind"),
                            inbound: r.get::<String, _>("direction") != "outbound",
                            flow: r.get("flow"),
                            started_at: r.get("started_at"),
                            offered_at: r.get("offered_at"),
                            queue: r.get("queue"),
                        },
                        customer: r.get("customer_id"),
                        case: r.get("conversation_id"),
                    })
                    .collect();
                let rows = sqlx::query(sql(timeline))
                    .bind(from)
                    .bind(to)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|r| Noted {
                        interaction: r.get(0),
                        kind: r.get(1),
                        data: r.get(2),
                        at: r.get(3),
                    })
                    .collect();
                let cases = sqlx::query(sql(CASE_EVENTS))
                    .bind(from)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|r| CaseNoted {
                        case: r.get(0),
                        at: r.get(2),
                    })
                    .collect();
                (heads, rows, cases)
            });
        let mut by: HashMap<String, Vec<(String, serde_json::Value, i64)>> = HashMap::new();
        for n in rows {
            let data = serde_json::from_str(&n.data).unwrap_or_default();
            by.entry(n.interaction)
                .or_default()
                .push((n.kind, data, n.at));
        }
        // A case's reopening goes with its first interaction (a case's KPIs read them
        // all).
        let mut first_of: HashMap<i64, (i64, usize)> = HashMap::new();
        for (n, h) in heads.iter().enumerate() {
            if let Some(c) = h.case {
                let e = first_of.entry(c).or_insert((h.row.started_at, n));
                if h.row.started_at < e.0 {
                    *e = (h.row.started_at, n);
                }
            }
        }
        let mut reopened: HashMap<usize, Vec<i64>> = HashMap::new();
        for c in case_rows {
            if let Some((_, n)) = first_of.get(&c.case) {
                reopened.entry(*n).or_default().push(c.at);
            }
        }
        Ok(heads
            .into_iter()
            .enumerate()
            .map(|(n, h)| {
                let t = by.remove(&h.id).unwrap_or_default();
                let mut log =
                    kpi::from_timeline(&h.row, t.iter().map(|(k, d, at)| (k.as_str(), d, *at)));
                for at in reopened.remove(&n).unwrap_or_default() {
                    log.push(kpi::Entry {
                        at,
                        event: kpi::Event::CaseReopened,
                    });
                }
                let inbound = h.row.inbound;
                kpi::Contact::new(h.id, h.row.channel, inbound, h.customer, h.case, log)
            })
            .collect())
    }
}
