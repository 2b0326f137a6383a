//! The event logs the KPIs are computed from: interactions started in a period with
//! their timeline, read into [`crate::kpi::Contact`]s (the definitions live there).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{Db, Store, StoreError};
use crate::kpi;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Interactions with their timeline rows that carry a KPI (a message only as who
/// wrote it: its text is not read); a `WHERE` and an order that keeps one
/// interaction's rows together follow.
macro_rules! log_rows {
    ($from:literal, $agent:literal) => {
        concat!(
            "SELECT i.id, i.kind, i.direction, i.customer_id, i.conversation_id, i.flow, i.started_at, i.offered_at, i.queue, t.kind, CASE WHEN t.kind = 'message' THEN CAST(json_object('from', ",
            $from,
            ", 'agent', ",
            $agent,
            ") AS TEXT) ELSE t.data END, t.at FROM interactions i LEFT JOIN timeline t ON t.interaction_id = i.id AND t.kind IN ('offered', 'assigned', 'connected', 'taken over', 'offer rejected', 'offer lapsed', 'agent missed', 'held', 'resumed', 'transferred', 'overflow', 'requeued', 'message', 'ivr ended', 'bot started', 'bot ended', 'caller hung up', 'hung up', 'closed', 'interaction ended', 'wrap-up started', 'wrapped up', 'rated')"
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

/// Stale marks taken per round of [`Store::refresh_kpi_facts`].
const REFRESH_BATCH: i64 = 4000;

/// Which interactions' logs to read.
enum Which {
    /// Started in `from..to` (Unix ms), oldest first.
    Period(i64, i64),
    /// Marked stale by the marks `after+1..=last`.
    Stale(i64, i64),
}

/// One interaction being read, with its timeline rows so far.
struct Reading {
    id: String,
    row: kpi::event::Row,
    customer: Option<i64>,
    case: Option<i64>,
    timeline: Vec<(String, serde_json::Value, i64)>,
}

/// A row of the log query: an interaction's columns and maybe one timeline row
/// (kind, data, at).
struct LogRow {
    id: String,
    row: kpi::event::Row,
    customer: Option<i64>,
    case: Option<i64>,
    event: Option<(String, Option<String>, i64)>,
}

/// Reads a [`LogRow`] out of either database's row.
macro_rules! log_row {
    ($r:expr) => {{
        let r = $r;
        LogRow {
            id: r.get(0),
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
            event: r
                .get::<Option<String>, _>(9)
                .map(|kind| (kind, r.get(10), r.get(11))),
        }
    }};
}

/// Puts consecutive rows of one interaction together.
#[derive(Default)]
struct Grouper {
    current: Option<Reading>,
}

impl Grouper {
    /// Takes a row; gives the previous interaction when this one is another.
    fn push(&mut self, r: LogRow) -> Option<Reading> {
        let mut done = None;
        if self.current.as_ref().is_none_or(|c| c.id != r.id) {
            done = self.current.take();
            self.current = Some(Reading {
                id: r.id,
                row: r.row,
                customer: r.customer,
                case: r.case,
                timeline: vec![],
            });
        }
        if let (Some((kind, data, at)), Some(c)) = (r.event, self.current.as_mut()) {
            let data = data
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default();
            c.timeline.push((kind, data, at));
        }
        done
    }
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

    /// A case's reopenings since `from`, by case.
    async fn reopenings(&self, from: i64) -> Result<HashMap<i64, Vec<i64>>, StoreError> {
        use futures_util::TryStreamExt;
        let mut reopened: HashMap<i64, Vec<i64>> = HashMap::new();
        with_db!(self, |pool, sql| {
            let mut rows = sqlx::query(sql(CASE_EVENTS)).bind(from).fetch(pool);
            while let Some(r) = rows.try_next().await? {
                reopened.entry(r.get(0)).or_default().push(r.get(2));
            }
        });
        Ok(reopened)
    }

    /// The logs of `which`, one interaction at a time (only one interaction's rows are
    /// held at once). How many were read.
    async fn read_logs(
        &self,
        which: Which,
        mut each: impl FnMut(Reading),
    ) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let log = match &self.db {
            Db::Sqlite(_) => LOG_SQLITE,
            #[cfg(feature = "postgres")]
            Db::Pg(_) => LOG_PG,
        };
        let mut n = 0;
        with_db!(self, |pool, sql| {
            // (`sql` for the dialect's json_object; the builder numbers the binds.)
            let mut q = sqlx::QueryBuilder::new(sql(log));
            match which {
                Which::Period(from, to) => {
                    q.push(" WHERE i.started_at >= ")
                        .push_bind(from)
                        .push(" AND i.started_at < ")
                        .push_bind(to)
                        .push(" ORDER BY i.started_at, i.id, t.at, t.id");
                }
                Which::Stale(after, last) => {
                    q.push(" WHERE i.id IN (SELECT interaction_id FROM kpi_stale WHERE seq > ")
                        .push_bind(after)
                        .push(" AND seq <= ")
                        .push_bind(last)
                        .push(") ORDER BY i.id, t.at, t.id");
                }
            }
            let mut g = Grouper::default();
            let mut rows = q.build().fetch(pool);
            while let Some(r) = rows.try_next().await? {
                if let Some(done) = g.push(log_row!(r)) {
                    each(done);
                    n += 1;
                }
            }
            if let Some(done) = g.current.take() {
                each(done);
                n += 1;
            }
        });
        Ok(n)
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
        // A case's reopenings go with the first of its interactions read (a case's
        // KPIs read them all).
        let mut reopened = self.reopenings(from).await?;
        self.read_logs(Which::Period(from, to), |r| each(r.contact(&mut reopened)))
            .await
    }

    /// Makes again the facts of every interaction whose log changed since they were
    /// last made (the triggers of schema 12 mark them), in rounds of
    /// [`REFRESH_BATCH`] marks; one refresh at a time per store. How many
    /// interactions' facts were made.
    pub async fn refresh_kpi_facts(&self) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let _one = self.kpi_refresh.lock().await;
        let mut made = 0;
        let mut after = i64::MIN;
        // Up to the marks there are now: a busy centre writing marks all the time does
        // not keep one refresh going.
        let max = || async {
            Ok::<Option<i64>, StoreError>(with_db!(self, |pool, sql| sqlx::query(sql(
                "SELECT MAX(seq) FROM kpi_stale"
            ))
            .fetch_one(pool)
            .await?
            .get(0)))
        };
        let Some(mut end) = max().await? else {
            return Ok(0);
        };
        // Set when a pack could not be read: its interactions are marked again, and
        // made before this refresh ends.
        let mut again = false;
        loop {
            // This round's marks (a mark written meanwhile, even with a lower number
            // under PostgreSQL, is not seen and stays for the next refresh).
            let seqs: Vec<i64> = with_db!(self, |pool, sql| {
                sqlx::query(sql(
                    "SELECT seq FROM kpi_stale WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                ))
                .bind(after)
                .bind(end)
                .bind(REFRESH_BATCH)
                .fetch(pool)
                .map_ok(|r| r.get::<i64, _>(0))
                .try_collect()
                .await?
            });
            let (Some(first), Some(last)) = (seqs.first().copied(), seqs.last().copied()) else {
                match max().await? {
                    Some(m) if std::mem::take(&mut again) => {
                        end = m;
                        continue;
                    }
                    _ => break,
                }
            };
            // Every mark of those interactions seen now, before their logs are read,
            // goes once the facts are kept (marks written after stay); a removed
            // interaction's mark says which quarter lost it.
            let seen: Vec<(i64, Option<i64>, Option<String>)> = with_db!(self, |pool, sql| {
                sqlx::query(sql(
                    "SELECT seq, started_at, CASE WHEN started_at IS NULL THEN NULL ELSE interaction_id END FROM kpi_stale WHERE interaction_id IN (SELECT interaction_id FROM kpi_stale WHERE seq >= ? AND seq <= ?)",
                ))
                .bind(first)
                .bind(last)
                .fetch(pool)
                .map_ok(|r| (r.get::<i64, _>(0), r.get::<Option<i64>, _>(1), r.get::<Option<String>, _>(2)))
                .try_collect()
                .await?
            });
            // Removed interactions, by the quarter they were in.
            let mut removed: BTreeMap<i64, HashSet<String>> = BTreeMap::new();
            for (_, gone, id) in &seen {
                if let (Some(t), Some(id)) = (gone, id) {
                    removed
                        .entry(kpi::codec::quarter_of(*t))
                        .or_default()
                        .insert(id.clone());
                }
            }
            // Each quarter's new facts: (started, interaction, facts).
            let mut made_in: BTreeMap<i64, Vec<(i64, String, Vec<u8>)>> = BTreeMap::new();
            let mut none = HashMap::new();
            made += self
                .read_logs(Which::Stale(first - 1, last), |r| {
                    let started = r.row.started_at;
                    let id = r.id.clone();
                    let f = kpi::facts(&r.contact(&mut none));
                    made_in
                        .entry(kpi::codec::quarter_of(started))
                        .or_default()
                        .push((started, id, kpi::codec::encode(&f)));
                })
                .await?;
            let quarters: BTreeSet<i64> = made_in.keys().chain(removed.keys()).copied().collect();
            with_db!(self, |pool, sql| {
                let (begin, lock) = match self.db {
                    // The write lock at once (a transaction that read first could not
                    // write after another writer's commit); held for a few statements
                    // per quarter hour touched.
                    Db::Sqlite(_) => ("BEGIN IMMEDIATE", None),
                    // Nodes sharing the database patch packs one at a time.
                    #[cfg(feature = "postgres")]
                    Db::Pg(_) => ("BEGIN", Some("SELECT pg_advisory_xact_lock(7286416)")),
                };
                let mut tx = pool.begin_with(begin).await?;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                for q in quarters {
                    let base = q * kpi::codec::QUARTER;
                    let old: Option<Vec<u8>> =
                        sqlx::query(sql("SELECT facts FROM kpi_packs WHERE quarter = ?"))
                            .bind(q)
                            .fetch_optional(&mut *tx)
                            .await?
                            .map(|r| r.get(0));
                    let new = made_in.remove(&q).unwrap_or_default();
                    let gone = removed.remove(&q).unwrap_or_default();
                    let out: HashSet<&str> = new
                        .iter()
                        .map(|(_, id, _)| id.as_str())
                        .chain(gone.iter().map(String::as_str))
                        .collect();
                    let kept = match old.as_deref().map(|b| kpi::codec::entries(base, b)) {
                        None => vec![],
                        Some(Some(list)) => list,
                        Some(None) => {
                            // Not readable: its interactions are made again (once
                            // this refresh's marks are done).
                            again = true;
                            sqlx::query(sql("INSERT INTO kpi_stale (interaction_id) SELECT id FROM interactions WHERE started_at >= ? AND started_at < ?"))
                                .bind(base)
                                .bind(base + kpi::codec::QUARTER)
                                .execute(&mut *tx)
                                .await?;
                            vec![]
                        }
                    };
                    let pack = kpi::codec::pack(
                        base,
                        kept.into_iter()
                            .filter(|(_, b)| {
                                kpi::codec::id_of(b).is_some_and(|id| !out.contains(id))
                            })
                            .chain(new.iter().map(|(t, _, b)| (*t, b.as_slice()))),
                    );
                    if pack.is_empty() {
                        sqlx::query(sql("DELETE FROM kpi_packs WHERE quarter = ?"))
                            .bind(q)
                            .execute(&mut *tx)
                            .await?;
                    } else {
                        sqlx::query(sql("INSERT INTO kpi_packs (quarter, facts) VALUES (?, ?) ON CONFLICT (quarter) DO UPDATE SET facts = excluded.facts"))
                            .bind(q)
                            .bind(pack)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for chunk in seen.chunks(1000) {
                    let mut q = sqlx::QueryBuilder::new("DELETE FROM kpi_stale WHERE seq IN (");
                    let mut list = q.separated(", ");
                    for (s, _, _) in chunk {
                        list.push_bind(*s);
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            });
            after = last;
        }
        Ok(made)
    }

    /// The KPI facts of every interaction started in `from..to` (Unix ms): what
    /// changed made again first, then the quarter hours' packs read and decoded off the
    /// async threads (on every core); a case's reopenings go with the first of its
    /// interactions read. A pack that does not decode (kept by another version) is made
    /// from the log for this answer and its interactions marked to be made again.
    /// The facts come in parts (a part per decoding thread), read as one list in order.
    pub async fn kpi_facts_all(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<kpi::Facts>>, StoreError> {
        use futures_util::TryStreamExt;
        self.refresh_kpi_facts().await?;
        let mut reopened = self.reopenings(from).await?;
        let packs: Vec<(i64, Vec<u8>)> = with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT quarter, facts FROM kpi_packs WHERE quarter >= ? AND quarter <= ? ORDER BY quarter",
            ))
            .bind(kpi::codec::quarter_of(from))
            .bind(kpi::codec::quarter_of(to.saturating_sub(1)))
            .fetch(pool)
            .map_ok(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1)))
            .try_collect()
            .await?
        });
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let (mut all, undecoded) =
            tokio::task::spawn_blocking(move || kpi::codec::unpack_all(&packs, from, to, threads))
                .await
                .map_err(|e| StoreError::Worker(format!("decoding KPI facts: {e}")))?;
        let mut remade = vec![];
        for q in undecoded {
            tracing::warn!(
                quarter = q,
                "KPI facts kept in another format: made from the log"
            );
            let base = q * kpi::codec::QUARTER;
            let (a, b) = (base.max(from), (base + kpi::codec::QUARTER).min(to));
            let mut none = HashMap::new();
            self.read_logs(Which::Period(a, b), |r| {
                remade.push(kpi::facts(&r.contact(&mut none)))
            })
            .await?;
            with_db!(self, |pool, sql| {
                sqlx::query(sql("INSERT INTO kpi_stale (interaction_id) SELECT id FROM interactions WHERE started_at >= ? AND started_at < ?"))
                    .bind(base)
                    .bind(base + kpi::codec::QUARTER)
                    .execute(pool)
                    .await?;
            });
        }
        if !remade.is_empty() {
            all.push(remade);
        }
        if !reopened.is_empty() {
            for f in all.iter_mut().flatten() {
                if let Some(times) = f.case.and_then(|c| reopened.remove(&c)) {
                    f.reopened.extend(times);
                    f.reopened.sort_unstable();
                }
            }
        }
        Ok(all)
    }
}
