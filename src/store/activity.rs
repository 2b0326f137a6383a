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

    /// The changes in `from..to` and, per agent of the directory, the last one before
    /// `from` (the state the period starts in), by agent, then in the order they
    /// happened. Each agent's last change is found through the `(agent, at, id)` index.
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
}
