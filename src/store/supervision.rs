//! Supervisors as stored (from the config file or the admin API), and the audit log
//! of what they do.

use super::directory::Staff;
#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, AgentRow, Db, Store, StoreError};
use sqlx::Row;

/// One act in the audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// Who: a supervisor's or agent's name, or `admin`.
    pub actor: String,
    /// In which role: `supervisor`, `agent` or `admin`.
    pub role: String,
    /// What, e.g. `login`, `kpis.read`, `monitor.start`.
    pub action: String,
    pub interaction: Option<String>,
    /// The act's particulars (JSON).
    pub detail: serde_json::Value,
}

/// An act to write in the audit log.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub interaction: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// The audit log's rows to read: `from..to` (Unix ms), of one actor if given, at most
/// `limit`, oldest first, after the row `after` (for paging).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from: i64,
    pub to: i64,
    pub actor: Option<String>,
    pub after: i64,
    pub limit: u32,
}

impl Store {
    pub async fn put_supervisor(
        &self,
        name: &str,
        spec: &serde_json::Value,
        password_hash: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        self.put_staff(Staff::Supervisors, name, spec, password_hash, source)
            .await
    }

    /// Every supervisor, by name (rows shaped as agents': name, spec, hash, source).
    pub async fn supervisors(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.staff(Staff::Supervisors).await
    }

    /// Removes a supervisor; whether there was one.
    pub async fn delete_supervisor(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_staff(Staff::Supervisors, name).await
    }

    /// Writes an act in the audit log; its id.
    pub async fn audit(&self, a: &Audit<'_>) -> Result<i64, StoreError> {
        let at = now();
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql(
            "INSERT INTO audit_log (at, actor, role, action, interaction_id, detail) VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
        ))
        .bind(at)
        .bind(a.actor)
        .bind(a.role)
        .bind(a.action)
        .bind(a.interaction)
        .bind(a.detail.to_string())
        .fetch_one(pool)
        .await?
        .get::<i64, _>(0))
        })
    }

    /// The audit log's rows asked for.
    pub async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let actor = q.actor.clone().unwrap_or_default();
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql(
            "SELECT id, at, actor, role, action, interaction_id, detail FROM audit_log WHERE at >= ? AND at < ? AND id > ? AND (? = '' OR actor = ?) ORDER BY id LIMIT ?"
        ))
        .bind(q.from)
        .bind(q.to)
        .bind(q.after)
        .bind(&actor)
        .bind(&actor)
        .bind(i64::from(q.limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            role: r.get(3),
            action: r.get(4),
            interaction: r.get(5),
            detail: serde_json::from_str(&r.get::<String, _>(6)).unwrap_or_default(),
        })
        .collect())
        })
    }
}
