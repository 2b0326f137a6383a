//! The agents' activity log (the router's idle / working / wrap-up / away / busy /
//! offline changes), for occupancy.

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{Db, Store, StoreError};
use crate::kpi;
use sqlx::Row;

impl Store {
    /// Appends changes `(agent, at Unix ms, state)`, in order, in one transaction.
    pub async fn add_agent_activity(&self, rows: &[(String, i64, &str)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            for (agent, at, state) in rows {
                sqlx::query(sql(
                    "INSERT INTO agent_activity (agent, at, state) VALUES (?, ?, ?)",
                ))
                .bind(agent)
                .bind(at)
                .bind(*state)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every agent (of the directory) whose last change is not `offline` is noted offline at `at`: at
    /// start-up, so a node that stopped (or died) does not count its agents on the
    /// floor while it was down beyond its start again. How many.
    pub async fn close_agent_activity(&self, at: i64) -> Result<u64, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "INSERT INTO agent_activity (agent, at, state) SELECT a.agent, ?, 'offline' FROM agents d JOIN agent_activity a ON a.id = (SELECT b.id FROM agent_activity b WHERE b.agent = d.name ORDER BY b.at DESC, b.id DESC LIMIT 1) WHERE a.state <> 'offline'"
        ))
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected()
        }))
    }

    /// How many activity changes fall in `[from, to)` (what a report would read,
    /// besides each agent's state at `from`).
    pub async fn agent_activity_count(&self, from: i64, to: i64) -> Result<i64, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT COUNT(*) FROM agent_activity WHERE at >= ? AND at < ?"
        ))
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?
        .get::<i64, _>(0)))
    }

    /// The changes in `from..to` and, per agent of the directory, the last one before
    /// `from` (the state the period starts in), by agent, then in the order they
    /// happened. Each agent's last change is found through the `(agent, at, id)` index.
    pub async fn agent_activity(&self, from: i64, to: i64) -> Result<Vec<kpi::Change>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT agent, at, state, id FROM agent_activity WHERE at >= ? AND at < ? \
             UNION ALL \
             SELECT a.agent, a.at, a.state, a.id FROM agents d JOIN agent_activity a ON a.id = \
               (SELECT b.id FROM agent_activity b WHERE b.agent = d.name AND b.at < ? \
                ORDER BY b.at DESC, b.id DESC LIMIT 1) \
             ORDER BY 1, 2, 4"
        ))
        .bind(from)
        .bind(to)
        .bind(from)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| kpi::Change {
            agent: r.get(0),
            at: r.get(1),
            state: r.get(2),
        })
        .collect()))
    }

    /// Only the changes in `from..to`, in the order they happened (each agent's last
    /// change before is not read).
    async fn activity_between(&self, from: i64, to: i64) -> Result<Vec<kpi::Change>, StoreError> {
        use futures_util::TryStreamExt;
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT agent, at, state FROM agent_activity WHERE at >= ? AND at < ? ORDER BY at, id"
        ))
        .bind(from)
        .bind(to)
        .fetch(pool)
        .map_ok(|r| kpi::Change {
            agent: r.get(0),
            at: r.get(1),
            state: r.get(2),
        })
        .try_collect::<Vec<_>>()
        .await?))
    }

    /// Until when the occupancy is kept in quarter-hour packs (Unix ms), if it is.
    async fn activity_packed_until(&self) -> Result<Option<i64>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT until FROM activity_packed WHERE id = 1"
        ))
        .fetch_optional(pool)
        .await?
        .map(|r| r.get::<i64, _>(0))))
    }

    /// Keeps the agents' occupancy per quarter hour up to a minute before `now`
    /// (Unix ms), from where it was kept (from the first change ever, the first time),
    /// a day of changes at a time (each day's packs and the new mark in one
    /// transaction; a change written meanwhile before the mark starts it again).
    /// How many quarter hours were made.
    pub async fn refresh_activity_packs(&self, now: i64) -> Result<usize, StoreError> {
        const Q: i64 = kpi::occupancy::QUARTER;
        const DAY: i64 = 86_400_000;
        let _one = self.activity_refresh.lock().await;
        let target = (now - 60_000).div_euclid(Q) * Q;
        let mut made = 0;
        'again: loop {
            let until = match self.activity_packed_until().await? {
                Some(u) => u,
                None => {
                    // The first time: from the first change's quarter hour.
                    with_db!(self, |pool, sql| {
                        sqlx::query(sql(concat!(
                            "INSERT INTO activity_packed (id, until) SELECT 1, ",
                            "MIN(at) - ((MIN(at) % 900000 + 900000) % 900000)",
                            " FROM agent_activity HAVING COUNT(*) > 0 ON CONFLICT (id) DO NOTHING"
                        )))
                        .execute(pool)
                        .await?;
                    });
                    match self.activity_packed_until().await? {
                        Some(u) => u,
                        None => return Ok(made),
                    }
                }
            };
            if until >= target {
                return Ok(made);
            }
            let mut packer = kpi::Packer::new(until);
            let mut at = until;
            let mut first = true;
            while at < target {
                let end = (at + DAY).min(target);
                // The state each agent starts in comes with the first day's changes.
                let changes = if first {
                    self.agent_activity(at, end).await?
                } else {
                    self.activity_between(at, end).await?
                };
                first = false;
                let mut sorted: Vec<&kpi::Change> = changes.iter().collect();
                sorted.sort_by_key(|c| c.at);
                for c in sorted {
                    packer.push(c);
                }
                let packs = packer.cut(end);
                let kept = with_db!(self, |pool, sql| {
                    // The write lock at once (SQLite), or the mark's row locked
                    // (PostgreSQL): a change written meanwhile sets the mark back
                    // after this commits, never lost under it.
                    let (begin, mark) = match self.db {
                        Db::Sqlite(_) => (
                            "BEGIN IMMEDIATE",
                            "SELECT until FROM activity_packed WHERE id = 1",
                        ),
                        #[cfg(feature = "postgres")]
                        Db::Pg(_) => (
                            "BEGIN",
                            "SELECT until FROM activity_packed WHERE id = 1 FOR UPDATE",
                        ),
                    };
                    let mut tx = pool.begin_with(begin).await?;
                    let mark: Option<i64> = sqlx::query(sql(mark))
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.get(0));
                    if mark != Some(at) {
                        // A change before the mark came in meanwhile: start again.
                        false
                    } else {
                        sqlx::query(sql(
                            "DELETE FROM activity_packs WHERE quarter >= ? AND quarter < ?",
                        ))
                        .bind(at.div_euclid(Q))
                        .bind(end.div_euclid(Q))
                        .execute(&mut *tx)
                        .await?;
                        for (q, sums) in &packs {
                            if sums.is_empty() {
                                continue;
                            }
                            sqlx::query(sql(
                                "INSERT INTO activity_packs (quarter, sums) VALUES (?, ?)",
                            ))
                            .bind(q)
                            .bind(kpi::occupancy::encode(sums))
                            .execute(&mut *tx)
                            .await?;
                        }
                        sqlx::query(sql("UPDATE activity_packed SET until = ? WHERE id = 1"))
                            .bind(end)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        true
                    }
                });
                if !kept {
                    continue 'again;
                }
                made += packs.len();
                at = end;
            }
        }
    }

    /// What a report adds the occupancy of `from..end` (Unix ms) from: the packs kept
    /// for the whole quarter hours inside it (made first up to a minute before `now`),
    /// and the agents' changes of what lies outside them (the ragged ends, the last
    /// minutes), each with the span it covers. Refused beyond `max_changes` changes
    /// read as such (`Ok(Err(n))`).
    pub async fn occupancy_input(
        &self,
        from: i64,
        end: i64,
        now: i64,
        max_changes: i64,
    ) -> Result<Result<OccupancyInput, i64>, StoreError> {
        use futures_util::TryStreamExt;
        const Q: i64 = kpi::occupancy::QUARTER;
        self.refresh_activity_packs(now).await?;
        // The whole kept quarter hours inside the period: `lo..hi` (none before
        // anything was kept).
        let lo = from.saturating_add(Q - 1).div_euclid(Q) * Q;
        let hi = match self.activity_packed_until().await? {
            Some(packed) => end.min(packed).div_euclid(Q) * Q,
            None => lo,
        };
        let mut input = OccupancyInput::default();
        let spans = if lo < hi {
            let rows: Vec<(i64, Vec<u8>)> = with_db!(self, |pool, sql| {
                sqlx::query(sql(
                    "SELECT quarter, sums FROM activity_packs WHERE quarter >= ? AND quarter < ? ORDER BY quarter",
                ))
                .bind(lo / Q)
                .bind(hi / Q)
                .fetch(pool)
                .map_ok(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1)))
                .try_collect()
                .await?
            });
            for (q, b) in rows {
                match kpi::occupancy::decode(&b) {
                    Some(s) => input.packs.push((q, s)),
                    None => {
                        // Kept by another version: made again by the next refresh.
                        tracing::warn!(quarter = q, "occupancy kept in another format: made again");
                        with_db!(self, |pool, sql| {
                            sqlx::query(sql(
                                "UPDATE activity_packed SET until = ? WHERE until > ?",
                            ))
                            .bind(q * Q)
                            .bind(q * Q)
                            .execute(pool)
                            .await?;
                        });
                        input.packs.clear();
                        let all = vec![(from, end)];
                        return self.occupancy_edges(input, all, max_changes).await;
                    }
                }
            }
            vec![(from, lo), (hi, end)]
        } else {
            vec![(from, end)]
        };
        self.occupancy_edges(input, spans, max_changes).await
    }

    /// Reads the changes of each non-empty span into `input`.
    async fn occupancy_edges(
        &self,
        mut input: OccupancyInput,
        spans: Vec<(i64, i64)>,
        max_changes: i64,
    ) -> Result<Result<OccupancyInput, i64>, StoreError> {
        for (a, b) in spans.into_iter().filter(|(a, b)| a < b) {
            let n = self.agent_activity_count(a, b).await?;
            if n > max_changes {
                return Ok(Err(n));
            }
            input.changes.push((a, b, self.agent_activity(a, b).await?));
        }
        Ok(Ok(input))
    }
}

/// See [`Store::occupancy_input`].
#[derive(Debug, Default)]
pub struct OccupancyInput {
    /// Kept quarter hours (numbered from the epoch).
    pub packs: Vec<(i64, kpi::Sums)>,
    /// Changes read as such, each with the span `from..to` they are counted in.
    pub changes: Vec<(i64, i64, Vec<kpi::Change>)>,
}

impl OccupancyInput {
    /// Adds it all to `report`.
    pub fn add_to(&self, report: &mut kpi::Report, p: &kpi::Params) {
        let mut f = kpi::Fold::new(p);
        f.quarters(&self.packs);
        for (a, b, changes) in &self.changes {
            f.changes(changes, *a, *b);
        }
        f.finish(report);
    }
}
