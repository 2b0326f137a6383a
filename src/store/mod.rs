//! The session model in one SQLite file (`<data>/omnigate.db`, WAL) through sqlx:
//! **customers** and their **identities** (phone numbers in E.164 where they can be,
//! case-folded e-mail addresses, SIP users, chat ids), **conversations** (a case that
//! stays open across channels until resolved), **interactions** (one contact on one
//! channel: IVR path and variables, queue, agent, times, outcome) and **timeline**
//! events. Schema changes are numbered migrations applied at start-up, each in one
//! transaction.
//!
//! Identity resolution: a contact is matched to a customer by any identity; an unknown
//! one becomes a new customer; a contact from a known customer joins their open
//! conversation, so a caller who chatted an hour ago lands on the same case.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database schema version {0} is newer than this omnigate knows ({1})")]
    TooNew(i64, i64),
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// What kind of address identifies a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Phone,
    Email,
    /// A SIP user that is not a phone number (`sip:alice@...`).
    Sip,
    Chat,
    Whatsapp,
}

impl IdentityKind {
    pub fn name(self) -> &'static str {
        match self {
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
            IdentityKind::Sip => "sip",
            IdentityKind::Chat => "chat",
            IdentityKind::Whatsapp => "whatsapp",
        }
    }
}

/// Phone numbers as E.164 where the text allows: separators dropped, `00` read as `+`.
/// Digits without a country code stay digits (`5551234`): they only match themselves.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = t
        .strip_prefix("tel:")
        .or_else(|| t.strip_prefix("TEL:"))
        .unwrap_or(t);
    let (plus, rest) = match t.strip_prefix('+') {
        Some(r) => (true, r),
        None => match t.strip_prefix("00") {
            Some(r) => (true, r),
            None => (false, t),
        },
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    if digits.len() < 3 || digits.len() > 15 {
        return None;
    }
    Some(if plus { format!("+{digits}") } else { digits })
}

/// The identity a caller id or address gives: a phone number when it reads as one,
/// an e-mail address (case-folded), else a SIP user.
pub fn identity_of(raw: &str) -> Option<(IdentityKind, String)> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(p) = normalize_phone(t) {
        return Some((IdentityKind::Phone, p));
    }
    if t.contains('@') && !t.contains(' ') {
        return Some((IdentityKind::Email, t.to_lowercase()));
    }
    Some((IdentityKind::Sip, t.to_string()))
}

/// One interaction as the API shows it (times in Unix milliseconds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interaction {
    pub id: String,
    pub kind: String,
    pub direction: String,
    pub customer_id: Option<i64>,
    pub conversation_id: Option<i64>,
    pub caller: String,
    pub dialled: String,
    pub trunk: String,
    pub flow: String,
    pub flow_version: String,
    pub started_at: i64,
    pub offered_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub outcome: Option<String>,
    pub disposition: Option<String>,
    pub recording: Option<String>,
    pub path: Vec<String>,
    pub variables: serde_json::Map<String, serde_json::Value>,
}

/// A new interaction.
#[derive(Debug, Clone, Default)]
pub struct NewInteraction<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub direction: &'a str,
    /// Caller id or address, resolved to a customer.
    pub from: &'a str,
    pub dialled: &'a str,
    pub trunk: &'a str,
    pub flow: &'a str,
    pub flow_version: &'a str,
}

/// What an interaction has come to.
#[derive(Debug, Clone, Default)]
pub struct InteractionUpdate<'a> {
    /// A customer found later (by account number...): the interaction moves to their
    /// open conversation.
    pub customer_id: Option<i64>,
    pub queue: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub path: &'a [String],
    pub variables: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub ended: bool,
}

/// Numbered schema changes; each runs once, in a transaction.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
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
        ],
    ),
    (
        2,
        &[
            "CREATE TABLE identities (
                id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customers(id),
                kind TEXT NOT NULL,
                value TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                UNIQUE (kind, value)
            )",
            "INSERT OR IGNORE INTO identities (customer_id, kind, value, created_at)
                SELECT id, 'phone', phone, created_at FROM customers WHERE phone IS NOT NULL AND phone <> ''",
            "INSERT OR IGNORE INTO identities (customer_id, kind, value, created_at)
                SELECT id, 'email', lower(email), created_at FROM customers WHERE email IS NOT NULL AND email <> ''",
            "CREATE TABLE consents (
                customer_id INTEGER NOT NULL REFERENCES customers(id),
                kind TEXT NOT NULL,
                granted INTEGER NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (customer_id, kind)
            )",
            "CREATE TABLE conversations (
                id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customers(id),
                status TEXT NOT NULL DEFAULT 'open',
                opened_at INTEGER NOT NULL,
                resolved_at INTEGER
            )",
            "CREATE INDEX conversations_customer ON conversations(customer_id, status)",
            // At most one open conversation per customer, even when two contacts race.
            "CREATE UNIQUE INDEX conversations_one_open ON conversations(customer_id) WHERE status = 'open'",
            "ALTER TABLE interactions ADD COLUMN conversation_id INTEGER REFERENCES conversations(id)",
            "ALTER TABLE interactions ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound'",
            "ALTER TABLE interactions ADD COLUMN agent TEXT",
            "ALTER TABLE interactions ADD COLUMN offered_at INTEGER",
            "ALTER TABLE interactions ADD COLUMN answered_at INTEGER",
            "ALTER TABLE interactions ADD COLUMN disposition TEXT",
            "ALTER TABLE interactions ADD COLUMN recording TEXT",
            "CREATE INDEX interactions_conversation ON interactions(conversation_id)",
            "ALTER TABLE timeline ADD COLUMN conversation_id INTEGER REFERENCES conversations(id)",
            "CREATE INDEX timeline_conversation ON timeline(conversation_id, at)",
        ],
    ),
    (
        3,
        &[
            // Agents and queues made through the admin API (config-file ones are
            // written here at start-up, marked `config`, and read-only to the API).
            "CREATE TABLE agents (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                source TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            )",
            "CREATE TABLE queues (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                source TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            )",
            "CREATE INDEX interactions_agent ON interactions(agent, customer_id)",
            // Times in milliseconds from here on: events of one second keep their order.
            "UPDATE customers SET created_at = created_at * 1000",
            "UPDATE identities SET created_at = created_at * 1000",
            "UPDATE consents SET at = at * 1000",
            "UPDATE conversations SET opened_at = opened_at * 1000, resolved_at = resolved_at * 1000",
            "UPDATE interactions SET started_at = started_at * 1000, ended_at = ended_at * 1000, offered_at = offered_at * 1000, answered_at = answered_at * 1000",
            "UPDATE timeline SET at = at * 1000",
            // The end of an interaction becomes a timeline row (written with the end),
            // so what happens after it (wrap-up, notes) sorts after it.
            "INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data)
                SELECT customer_id, conversation_id, id, ended_at, 'interaction ended', json_object('outcome', outcome)
                FROM interactions WHERE ended_at IS NOT NULL",
        ],
    ),
];

pub const SCHEMA_VERSION: i64 = 3;

/// (interaction, kind, data JSON, at) for one interaction: its start and queue from its
/// row, then the written events (its end among them), in time order.
const TIMELINE: &str = "SELECT id, 'interaction started', json_object('kind', kind, 'from', caller, 'dialled', dialled), started_at AS at, 0 AS o, 0 AS n FROM interactions WHERE id = ?
    UNION ALL SELECT id, 'queued', json_object('queue', queue), offered_at, 1, 0 FROM interactions WHERE id = ? AND offered_at IS NOT NULL
    UNION ALL SELECT interaction_id, kind, data, at, 2, id FROM timeline WHERE interaction_id = ?
    ORDER BY at, o, n";

/// The same over every interaction of a conversation.
const CONVERSATION_TIMELINE: &str = "SELECT id, 'interaction started', json_object('kind', kind, 'from', caller, 'dialled', dialled), started_at AS at, 0 AS o, 0 AS n FROM interactions WHERE conversation_id = ?
    UNION ALL SELECT id, 'queued', json_object('queue', queue), offered_at, 1, 0 FROM interactions WHERE conversation_id = ? AND offered_at IS NOT NULL
    UNION ALL SELECT COALESCE(interaction_id, ''), kind, data, at, 2, id FROM timeline WHERE conversation_id = ?
    ORDER BY at, o, n";

/// Store times are Unix milliseconds.
fn now() -> i64 {
    crate::clock::unix_millis() as i64
}

impl Store {
    /// Opens (creating when missing) the database file and brings its schema up to
    /// date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        // The file name as given (no URL parsing: `?` or `#` in a path stay themselves).
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL: a crash of the process loses nothing; a power cut may
            // lose the last commits. FULL costs an fsync per call record.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let s = Store { pool };
        s.migrate().await?;
        Ok(s)
    }

    /// The schema version of the open database.
    pub async fn version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?
                .get(0),
        )
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let have = self.version().await?;
        if have > SCHEMA_VERSION {
            return Err(StoreError::TooNew(have, SCHEMA_VERSION));
        }
        for (v, steps) in MIGRATIONS {
            if *v <= have {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for s in *steps {
                sqlx::query(*s).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(v)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = v, "database migrated");
        }
        Ok(())
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
            let id = self.create_customer(name, Some(account), tier).await?;
            self.add_identity(id, IdentityKind::Phone, phone).await?;
            self.add_identity(id, IdentityKind::Email, email).await?;
        }
        Ok(())
    }

    pub async fn create_customer(
        &self,
        name: &str,
        account: Option<&str>,
        tier: &str,
    ) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "INSERT INTO customers (name, account, tier, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(account)
        .bind(tier)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    /// Links an identity (normalised) to a customer. An identity belongs to one
    /// customer: linking one that another customer holds changes nothing and says so.
    pub async fn add_identity(
        &self,
        customer: i64,
        kind: IdentityKind,
        raw: &str,
    ) -> Result<bool, StoreError> {
        let value = match kind {
            IdentityKind::Phone => normalize_phone(raw).unwrap_or_else(|| raw.trim().to_string()),
            IdentityKind::Email => raw.trim().to_lowercase(),
            _ => raw.trim().to_string(),
        };
        let r = sqlx::query("INSERT OR IGNORE INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?)")
            .bind(customer)
            .bind(kind.name())
            .bind(&value)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The customer holding an identity.
    pub async fn customer_by_identity(
        &self,
        kind: IdentityKind,
        value: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query("SELECT customer_id FROM identities WHERE kind = ? AND value = ?")
                .bind(kind.name())
                .bind(value)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
        )
    }

    /// A customer's fields (`id`, `name`, `account`, `tier`, their first `phone` and
    /// `email`).
    pub async fn customer(&self, id: i64) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let Some(r) = sqlx::query("SELECT id, name, account, tier FROM customers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut out = vec![
            ("id".to_string(), r.get::<i64, _>(0).to_string()),
            ("name".into(), r.get::<String, _>(1)),
            (
                "account".into(),
                r.try_get::<Option<String>, _>(2)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            ),
            ("tier".into(), r.get::<String, _>(3)),
        ];
        for kind in ["phone", "email"] {
            let v: Option<String> = sqlx::query("SELECT value FROM identities WHERE customer_id = ? AND kind = ? ORDER BY id LIMIT 1")
                .bind(id)
                .bind(kind)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0));
            out.push((kind.to_string(), v.unwrap_or_default()));
        }
        Ok(Some(out))
    }

    /// A customer's fields by caller id, phone, account, email or id.
    pub async fn lookup(
        &self,
        by: &str,
        value: &str,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let id: Option<i64> = match by {
            "caller" => match identity_of(value) {
                Some((k, v)) => self.customer_by_identity(k, &v).await?,
                None => None,
            },
            "phone" => match normalize_phone(value) {
                Some(p) => self.customer_by_identity(IdentityKind::Phone, &p).await?,
                None => None,
            },
            "email" => {
                self.customer_by_identity(IdentityKind::Email, &value.trim().to_lowercase())
                    .await?
            }
            "account" => sqlx::query("SELECT id FROM customers WHERE account = ?")
                .bind(value)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
            _ => value.trim().parse::<i64>().ok(),
        };
        match id {
            Some(id) => self.customer(id).await,
            None => Ok(None),
        }
    }

    /// The customer's open conversation, opened now if there is none (one at most:
    /// a partial unique index settles races).
    pub async fn open_conversation(&self, customer: i64) -> Result<i64, StoreError> {
        if let Some(id) = self.find_open(customer).await? {
            return Ok(id);
        }
        sqlx::query("INSERT OR IGNORE INTO conversations (customer_id, status, opened_at) VALUES (?, 'open', ?)")
            .bind(customer)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(self.find_open(customer).await?.unwrap_or_default())
    }

    async fn find_open(&self, customer: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query("SELECT id FROM conversations WHERE customer_id = ? AND status = 'open'")
                .bind(customer)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
        )
    }

    pub async fn resolve_conversation(&self, conversation: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversations SET status = 'resolved', resolved_at = ? WHERE id = ?")
            .bind(now())
            .bind(conversation)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The customer for an address: the one holding it, or a new customer with it.
    pub async fn resolve_customer(&self, from: &str) -> Result<Option<i64>, StoreError> {
        let Some((kind, value)) = identity_of(from) else {
            return Ok(None);
        };
        if let Some(id) = self.customer_by_identity(kind, &value).await? {
            return Ok(Some(id));
        }
        let id = self.create_customer("", None, "standard").await?;
        if !self.add_identity(id, kind, &value).await? {
            // Someone else created it meanwhile: use theirs.
            return self.customer_by_identity(kind, &value).await;
        }
        Ok(Some(id))
    }

    /// Records a new interaction, resolving who it is from and which conversation it
    /// joins. Returns (customer, conversation). Its start and end are on the timeline
    /// through the interaction's own times (see [`Store::conversation_timeline`]).
    pub async fn start_interaction(
        &self,
        n: &NewInteraction<'_>,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        // The common case, a known customer with an open case, in one statement.
        let known: Option<(i64, Option<i64>)> = match identity_of(n.from) {
            Some((kind, value)) => sqlx::query("SELECT i.customer_id, c.id FROM identities i LEFT JOIN conversations c ON c.customer_id = i.customer_id AND c.status = 'open' WHERE i.kind = ? AND i.value = ?")
                .bind(kind.name())
                .bind(value)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| (r.get(0), r.get(1))),
            None => None,
        };
        let (customer, conversation) = match known {
            Some((c, Some(conv))) => (Some(c), Some(conv)),
            Some((c, None)) => (Some(c), Some(self.open_conversation(c).await?)),
            None => match self.resolve_customer(n.from).await? {
                Some(c) => (Some(c), Some(self.open_conversation(c).await?)),
                None => (None, None),
            },
        };
        sqlx::query("INSERT INTO interactions (id, kind, direction, customer_id, conversation_id, caller, dialled, trunk, flow, flow_version, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(n.id)
            .bind(n.kind)
            .bind(if n.direction.is_empty() { "inbound" } else { n.direction })
            .bind(customer)
            .bind(conversation)
            .bind(n.from)
            .bind(n.dialled)
            .bind(n.trunk)
            .bind(n.flow)
            .bind(n.flow_version)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok((customer, conversation))
    }

    /// Records what the interaction has come to (one statement; the time it joined a
    /// queue is kept as `offered_at`).
    pub async fn update_interaction(
        &self,
        id: &str,
        u: &InteractionUpdate<'_>,
    ) -> Result<(), StoreError> {
        let conversation = match u.customer_id {
            Some(c) => Some(self.open_conversation(c).await?),
            None => None,
        };
        let t = now();
        let vars = u
            .variables
            .map(|v| serde_json::Value::Object(v.clone()).to_string());
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE interactions SET customer_id = COALESCE(?, customer_id), conversation_id = COALESCE(?, conversation_id), offered_at = CASE WHEN ? IS NOT NULL AND offered_at IS NULL THEN ? ELSE offered_at END, queue = COALESCE(?, queue), outcome = COALESCE(?, outcome), path = ?, variables = COALESCE(?, variables) WHERE id = ?")
            .bind(u.customer_id)
            .bind(conversation)
            .bind(u.queue)
            .bind(t)
            .bind(u.queue)
            .bind(u.outcome)
            .bind(serde_json::to_string(u.path).unwrap_or_default())
            .bind(vars)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if u.ended {
            Self::end_in(&mut tx, id, u.outcome.unwrap_or(""), t).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds an event (a voicemail, a note...) to an interaction's timeline.
    pub async fn add_timeline(
        &self,
        interaction: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, ?, ? FROM interactions WHERE id = ?")
            .bind(now())
            .bind(kind)
            .bind(data.to_string())
            .bind(interaction)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An interaction's events, oldest first: its start, joining a queue and end (from
    /// its own times) merged with the events written for it (voicemails, notes...).
    pub async fn timeline(
        &self,
        interaction: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        Ok(self
            .events(
                sqlx::query(TIMELINE)
                    .bind(interaction)
                    .bind(interaction)
                    .bind(interaction),
            )
            .await?
            .into_iter()
            .map(|(_, k, d)| (k, d))
            .collect())
    }

    /// A conversation's events across all its interactions, oldest first:
    /// (interaction, kind, data).
    pub async fn conversation_timeline(
        &self,
        conversation: i64,
    ) -> Result<Vec<(String, String, serde_json::Value)>, StoreError> {
        self.events(
            sqlx::query(CONVERSATION_TIMELINE)
                .bind(conversation)
                .bind(conversation)
                .bind(conversation),
        )
        .await
    }

    async fn events(
        &self,
        q: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<(String, String, serde_json::Value)>, StoreError> {
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<String, _>(1),
                    serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// An agent took the interaction (answered now); the time is kept from the first.
    pub async fn interaction_answered(&self, id: &str, agent: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE interactions SET agent = ?, answered_at = COALESCE(answered_at, ?) WHERE id = ?")
            .bind(agent)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends an interaction (a chat, a call after its IVR run): outcome and end time,
    /// once, with its end on the timeline.
    pub async fn end_interaction(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::end_in(&mut tx, id, outcome, now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The end, written once: later ends change nothing.
    async fn end_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        id: &str,
        outcome: &str,
        t: i64,
    ) -> Result<(), StoreError> {
        let first = sqlx::query("UPDATE interactions SET outcome = COALESCE(outcome, NULLIF(?, '')), ended_at = ? WHERE id = ? AND ended_at IS NULL")
            .bind(outcome)
            .bind(t)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            > 0;
        if first {
            sqlx::query("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, 'interaction ended', json_object('outcome', outcome) FROM interactions WHERE id = ?")
                .bind(t)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The agent's wrap-up: a disposition on the interaction, the case resolved or
    /// left open, and a timeline entry; in one transaction.
    pub async fn wrap_up(
        &self,
        id: &str,
        agent: &str,
        disposition: &str,
        resolved: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE interactions SET disposition = ? WHERE id = ?")
            .bind(disposition)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, 'wrapped up', ? FROM interactions WHERE id = ?")
            .bind(now())
            .bind(serde_json::json!({"agent": agent, "disposition": disposition, "resolved": resolved}).to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if resolved {
            sqlx::query("UPDATE conversations SET status = 'resolved', resolved_at = ? WHERE id = (SELECT conversation_id FROM interactions WHERE id = ?) AND status = 'open'")
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether `agent` has served (been assigned an interaction of) this customer.
    pub async fn agent_served(&self, agent: &str, customer: i64) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM interactions WHERE agent = ? AND customer_id = ? LIMIT 1")
                .bind(agent)
                .bind(customer)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// A customer as the agent desktop shows them: fields, identities, open case.
    pub async fn customer_card(&self, id: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(fields) = self.customer(id).await? else {
            return Ok(None);
        };
        let ids =
            sqlx::query("SELECT kind, value FROM identities WHERE customer_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let conv = self.find_open(id).await?;
        let mut m: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        m.insert("id".into(), id.into());
        m.insert(
            "identities".into(),
            ids.iter()
                .map(|r| serde_json::json!({"kind": r.get::<String, _>(0), "value": r.get::<String, _>(1)}))
                .collect(),
        );
        m.insert("open_conversation".into(), conv.into());
        Ok(Some(serde_json::Value::Object(m)))
    }

    /// A customer's recent interactions, newest first.
    pub async fn customer_interactions(
        &self,
        customer: i64,
        limit: u32,
    ) -> Result<Vec<Interaction>, StoreError> {
        let rows = sqlx::query("SELECT * FROM interactions WHERE customer_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ?")
            .bind(customer)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::row).collect())
    }

    /// Sets a customer's name when they have none yet (a chat gives one).
    pub async fn name_customer(&self, id: i64, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE customers SET name = ? WHERE id = ? AND name = ''")
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ agents, queues

    /// Writes an agent (spec as JSON, password already hashed).
    pub async fn put_agent(
        &self,
        name: &str,
        spec: &serde_json::Value,
        password_hash: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO agents (name, spec, password_hash, source, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, password_hash = excluded.password_hash, source = excluded.source, updated_at = excluded.updated_at")
            .bind(name)
            .bind(spec.to_string())
            .bind(password_hash)
            .bind(source)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every agent: (name, spec, password hash, source).
    pub async fn agents(
        &self,
    ) -> Result<Vec<(String, serde_json::Value, String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT name, spec, password_hash, source FROM agents ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                    r.get(2),
                    r.get(3),
                )
            })
            .collect())
    }

    pub async fn delete_agent(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM agents WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    pub async fn put_queue(
        &self,
        name: &str,
        spec: &serde_json::Value,
        source: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO queues (name, spec, source, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, source = excluded.source, updated_at = excluded.updated_at")
            .bind(name)
            .bind(spec.to_string())
            .bind(source)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every queue: (name, spec, source).
    pub async fn queues(&self) -> Result<Vec<(String, serde_json::Value, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, spec, source FROM queues ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                    r.get(2),
                )
            })
            .collect())
    }

    fn row(r: &sqlx::sqlite::SqliteRow) -> Interaction {
        Interaction {
            id: r.get("id"),
            kind: r.get("kind"),
            direction: r.get("direction"),
            customer_id: r.get("customer_id"),
            conversation_id: r.get("conversation_id"),
            caller: r.get("caller"),
            dialled: r.get("dialled"),
            trunk: r.get("trunk"),
            flow: r.get("flow"),
            flow_version: r.get("flow_version"),
            started_at: r.get("started_at"),
            offered_at: r.get("offered_at"),
            answered_at: r.get("answered_at"),
            ended_at: r.get("ended_at"),
            queue: r.get("queue"),
            agent: r.get("agent"),
            outcome: r.get("outcome"),
            disposition: r.get("disposition"),
            recording: r.get("recording"),
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
mod tests;
