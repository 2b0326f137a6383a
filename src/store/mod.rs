//! The customer store and interaction records, in one SQLite file (`<data>/omnigate.db`)
//! through sqlx. This is the slice the IVR needs (customer lookup, an interaction per
//! call carrying what the caller entered, voicemails on the timeline); issue 5 grows it
//! into the full session model.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// One interaction as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interaction {
    pub id: String,
    pub kind: String,
    pub customer_id: Option<i64>,
    pub caller: String,
    pub dialled: String,
    pub trunk: String,
    pub flow: String,
    pub flow_version: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub queue: Option<String>,
    pub outcome: Option<String>,
    pub path: Vec<String>,
    pub variables: serde_json::Map<String, serde_json::Value>,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS customers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        phone TEXT UNIQUE,
        email TEXT UNIQUE,
        account TEXT UNIQUE,
        tier TEXT NOT NULL DEFAULT 'standard',
        created_at INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS interactions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        customer_id INTEGER REFERENCES customers(id),
        caller TEXT NOT NULL DEFAULT '',
        dialled TEXT NOT NULL DEFAULT '',
        trunk TEXT NOT NULL DEFAULT '',
        flow TEXT NOT NULL DEFAULT '',
        flow_version TEXT NOT NULL DEFAULT '',
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        queue TEXT,
        outcome TEXT,
        path TEXT NOT NULL DEFAULT '[]',
        variables TEXT NOT NULL DEFAULT '{}'
    )",
    "CREATE INDEX IF NOT EXISTS interactions_started ON interactions(started_at)",
    "CREATE TABLE IF NOT EXISTS timeline (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER REFERENCES customers(id),
        interaction_id TEXT REFERENCES interactions(id),
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    )",
];

impl Store {
    /// Opens (creating when missing) the database file and its tables.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL: a crash of the process loses nothing; a power cut may
            // lose the last commits. FULL costs an fsync per call record.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        for s in SCHEMA {
            sqlx::query(*s).execute(&pool).await?;
        }
        Ok(Store { pool })
    }

    /// Demo customers, added once to an empty store.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM customers")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        if n > 0 {
            return Ok(());
        }
        let now = crate::clock::unix_secs() as i64;
        for (name, phone, email, account, tier) in [
            (
                "Ada Lovelace",
                "+15551234567",
                "ada@example.com",
                "1234",
                "gold",
            ),
            (
                "Alan Turing",
                "+15557654321",
                "alan@example.com",
                "5678",
                "standard",
            ),
            (
                "Grace Hopper",
                "+15550001111",
                "grace@example.com",
                "4242",
                "gold",
            ),
        ] {
            sqlx::query("INSERT INTO customers (name, phone, email, account, tier, created_at) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(name)
                .bind(phone)
                .bind(email)
                .bind(account)
                .bind(tier)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A customer's fields by caller id, phone, account, email or id.
    pub async fn lookup(
        &self,
        by: &str,
        value: &str,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let sql: &'static str = match by {
            "caller" | "phone" => "SELECT id, name, phone, email, account, tier FROM customers WHERE phone = ?",
            "account" => "SELECT id, name, phone, email, account, tier FROM customers WHERE account = ?",
            "email" => "SELECT id, name, phone, email, account, tier FROM customers WHERE email = ?",
            _ => "SELECT id, name, phone, email, account, tier FROM customers WHERE CAST(id AS TEXT) = ?",
        };
        let row = sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| {
            let s = |i: usize| {
                r.try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            };
            vec![
                ("id".into(), r.get::<i64, _>(0).to_string()),
                ("name".into(), s(1)),
                ("phone".into(), s(2)),
                ("email".into(), s(3)),
                ("account".into(), s(4)),
                ("tier".into(), s(5)),
            ]
        }))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn start_interaction(
        &self,
        id: &str,
        kind: &str,
        caller: &str,
        dialled: &str,
        trunk: &str,
        flow: &str,
        flow_version: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO interactions (id, kind, caller, dialled, trunk, flow, flow_version, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(id)
            .bind(kind)
            .bind(caller)
            .bind(dialled)
            .bind(trunk)
            .bind(flow)
            .bind(flow_version)
            .bind(crate::clock::unix_secs() as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    /// Records what the caller has done so far (and, once known, the customer, the
    /// queue and how it ended).
    pub async fn update_interaction(
        &self,
        id: &str,
        customer_id: Option<i64>,
        queue: Option<&str>,
        outcome: Option<&str>,
        path: &[String],
        variables: &serde_json::Map<String, serde_json::Value>,
        ended: bool,
    ) -> Result<(), StoreError> {
        let ended_at = ended.then(|| crate::clock::unix_secs() as i64);
        sqlx::query("UPDATE interactions SET customer_id = COALESCE(?, customer_id), queue = COALESCE(?, queue), outcome = COALESCE(?, outcome), path = ?, variables = ?, ended_at = COALESCE(?, ended_at) WHERE id = ?")
            .bind(customer_id)
            .bind(queue)
            .bind(outcome)
            .bind(serde_json::to_string(path).unwrap_or_default())
            .bind(serde_json::Value::Object(variables.clone()).to_string())
            .bind(ended_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_timeline(
        &self,
        customer_id: Option<i64>,
        interaction: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO timeline (customer_id, interaction_id, at, kind, data) VALUES (?, ?, ?, ?, ?)")
            .bind(customer_id)
            .bind(interaction)
            .bind(crate::clock::unix_secs() as i64)
            .bind(kind)
            .bind(data.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn timeline(
        &self,
        interaction: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let rows =
            sqlx::query("SELECT kind, data FROM timeline WHERE interaction_id = ? ORDER BY id")
                .bind(interaction)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                )
            })
            .collect())
    }

    fn row(r: &sqlx::sqlite::SqliteRow) -> Interaction {
        Interaction {
            id: r.get("id"),
            kind: r.get("kind"),
            customer_id: r.get("customer_id"),
            caller: r.get("caller"),
            dialled: r.get("dialled"),
            trunk: r.get("trunk"),
            flow: r.get("flow"),
            flow_version: r.get("flow_version"),
            started_at: r.get("started_at"),
            ended_at: r.get("ended_at"),
            queue: r.get("queue"),
            outcome: r.get("outcome"),
            path: serde_json::from_str(&r.get::<String, _>("path")).unwrap_or_default(),
            variables: serde_json::from_str(&r.get::<String, _>("variables")).unwrap_or_default(),
        }
    }

    pub async fn interaction(&self, id: &str) -> Result<Option<Interaction>, StoreError> {
        let r = sqlx::query("SELECT * FROM interactions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(Self::row))
    }

    /// The most recent interactions, newest first.
    pub async fn recent_interactions(&self, limit: u32) -> Result<Vec<Interaction>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM interactions ORDER BY started_at DESC, rowid DESC LIMIT ?")
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(Self::row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn customers_and_interactions_in_a_real_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t.db");
        let s = Store::open(&path).await.unwrap();
        s.seed_demo().await.unwrap();
        s.seed_demo().await.unwrap(); // once only
        let ada = s.lookup("account", "1234").await.unwrap().unwrap();
        assert!(ada.contains(&("name".into(), "Ada Lovelace".into())));
        assert!(s.lookup("caller", "+15551234567").await.unwrap().is_some());
        assert!(s.lookup("account", "0000").await.unwrap().is_none());
        // SQL injection through a lookup value is just a value.
        assert!(s.lookup("email", "' OR 1=1 --").await.unwrap().is_none());

        s.start_interaction("i1", "voice", "+1555", "100", "demo", "demo", "abc")
            .await
            .unwrap();
        let mut vars = serde_json::Map::new();
        vars.insert("account".into(), "1234".into());
        s.update_interaction(
            "i1",
            Some(1),
            Some("support"),
            None,
            &["a".into()],
            &vars,
            false,
        )
        .await
        .unwrap();
        s.update_interaction(
            "i1",
            None,
            None,
            Some("caller_hangup"),
            &["a".into(), "b".into()],
            &vars,
            true,
        )
        .await
        .unwrap();
        s.add_timeline(
            Some(1),
            "i1",
            "voicemail",
            serde_json::json!({"seconds": 3}),
        )
        .await
        .unwrap();
        drop(s);
        // Reopen: it is on disk.
        let s = Store::open(&path).await.unwrap();
        let i = s.interaction("i1").await.unwrap().unwrap();
        assert_eq!(i.queue.as_deref(), Some("support"));
        assert_eq!(i.customer_id, Some(1));
        assert_eq!(i.outcome.as_deref(), Some("caller_hangup"));
        assert_eq!(i.path, ["a", "b"]);
        assert_eq!(i.variables["account"], "1234");
        assert!(i.ended_at.is_some());
        assert_eq!(s.recent_interactions(10).await.unwrap().len(), 1);
        assert_eq!(s.timeline("i1").await.unwrap()[0].0, "voicemail");
    }
}
