//! Agents and queues as stored (from the config file or the admin API).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// A stored agent.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub name: String,
    /// Their spec (`AgentConfig` as JSON, password left out).
    pub spec: serde_json::Value,
    /// The Argon2 hash of their password (PHC string).
    pub password_hash: String,
    /// Where it came from: `config` (the config file) or `api`.
    pub source: String,
}

/// People who log in, kept alike: agents and supervisors.
#[derive(Debug, Clone, Copy)]
pub(super) enum Staff {
    Agents,
    Supervisors,
}

impl Staff {
    /// Its statements: write, list, remove.
    fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Staff::Agents => (
                "INSERT INTO agents (name, spec, password_hash, source, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, password_hash = excluded.password_hash, source = excluded.source, updated_at = excluded.updated_at",
                "SELECT name, spec, password_hash, source FROM agents ORDER BY name",
                "DELETE FROM agents WHERE name = ?",
            ),
            Staff::Supervisors => (
                "INSERT INTO supervisors (name, spec, password_hash, source, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, password_hash = excluded.password_hash, source = excluded.source, updated_at = excluded.updated_at",
                "SELECT name, spec, password_hash, source FROM supervisors ORDER BY name",
                "DELETE FROM supervisors WHERE name = ?",
            ),
        }
    }
}

/// A stored queue.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub name: String,
    /// Its spec (`QueueConfig` as JSON).
    pub spec: serde_json::Value,
    /// `config` or `api`.
    pub source: String,
}

impl Store {
    // ------------------------------------------------------------ agents, queues

    /// Writes an agent (spec as JSON, password already hashed).
    pub async fn put_agent(
        &self,
        name: &str,
        spec: &serde_json::Value,
        password_hash: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        self.put_staff(Staff::Agents, name, spec, password_hash, source)
            .await
    }

    /// Every agent, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.staff(Staff::Agents).await
    }

    pub async fn delete_agent(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_staff(Staff::Agents, name).await
    }

    /// Writes a person who logs in (spec as JSON, password already hashed).
    pub(super) async fn put_staff(
        &self,
        who: Staff,
        name: &str,
        spec: &serde_json::Value,
        password_hash: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql(who.sql().0))
                .bind(name)
                .bind(spec.to_string())
                .bind(password_hash)
                .bind(source)
                .bind(now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Everyone of a kind, by name.
    pub(super) async fn staff(&self, who: Staff) -> Result<Vec<AgentRow>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(who.sql().1))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| AgentRow {
                name: r.get(0),
                spec: serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                password_hash: r.get(2),
                source: r.get(3),
            })
            .collect()))
    }

    /// Removes one; whether there was one.
    pub(super) async fn delete_staff(&self, who: Staff, name: &str) -> Result<bool, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(who.sql().2))
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
            > 0))
    }

    pub async fn put_queue(
        &self,
        name: &str,
        spec: &serde_json::Value,
        source: &str,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO queues (name, spec, source, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, source = excluded.source, updated_at = excluded.updated_at"))
            .bind(name)
            .bind(spec.to_string())
            .bind(source)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Every queue, by name.
    pub async fn queues(&self) -> Result<Vec<QueueRow>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT name, spec, source FROM queues ORDER BY name"
        ))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| QueueRow {
            name: r.get(0),
            spec: serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
            source: r.get(2),
        })
        .collect()))
    }
}
