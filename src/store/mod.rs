//! The session model through sqlx, in one SQLite file (`<data>/omnigate.db`, WAL) by
//! default or in PostgreSQL when `[data] database` names a `postgres://` URL:
//! **customers** and their **identities** (phone numbers in E.164 where they can be,
//! case-folded e-mail addresses, SIP users, chat ids), **conversations** (a case that
//! stays open across channels until resolved), **interactions** (one contact on one
//! channel: IVR path and variables, queue, agent, times, outcome) and **timeline**
//! events. Schema changes are numbered migrations applied at start-up, each in one
//! transaction.
//!
//! One code path serves both databases: every statement is written once, in the SQL the
//! two share (`?` placeholders, `ON CONFLICT`, `RETURNING`, `CAST(json_object(...) AS
//! TEXT)`), and run natively on each (no `Any` driver: SQLite keeps its own connection
//! options and speed); `pg_sql` rewrites placeholders to `$n` and `json_object` to
//! `json_build_object` for PostgreSQL, once per statement. Only the schema is written
//! per database.
//!
//! Identity resolution: a contact is matched to a customer by any identity; an unknown
//! one becomes a new customer; a contact from a known customer joins their open
//! conversation, so a caller who chatted an hour ago lands on the same case.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;

#[cfg(test)]
pub(crate) mod testpg;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database schema version {0} is newer than this omnigate knows ({1})")]
    TooNew(i64, i64),
    #[error("{0}")]
    Url(String),
}

/// The demo node's customers: (name, phone, e-mail, account, tier). `dialplan
/// simulate` knows them too.
pub const DEMO_CUSTOMERS: [(&str, &str, &str, &str, &str); 3] = [
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
];

#[derive(Clone)]
pub struct Store {
    db: Db,
}

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    #[cfg(feature = "postgres")]
    Pg(sqlx::PgPool),
}

/// Runs `$body` against whichever database the store has, with `$pool` its pool and
/// `$sql` the function that turns a statement into that database's dialect. The body is
/// compiled once per database, so each runs on its native driver.
macro_rules! with_db {
    ($self:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite($pool) => {
                let $sql = sqlite_sql;
                $body
            }
            #[cfg(feature = "postgres")]
            Db::Pg($pool) => {
                let $sql = pg_sql;
                $body
            }
        }
    };
}

fn sqlite_sql(s: &'static str) -> &'static str {
    s
}

/// A statement in PostgreSQL's dialect: `?` placeholders numbered `$1, $2...`,
/// `json_object(` as `json_build_object(`. Statements are `'static` and few, so each is
/// translated once and kept.
#[cfg(feature = "postgres")]
pub fn pg_sql(s: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DONE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    if let Some(t) = done.lock().unwrap_or_else(|e| e.into_inner()).get(s) {
        return t;
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut n = 0;
    let mut in_str = false;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            in_str = !in_str;
        }
        if !in_str && c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else if !in_str && rest.starts_with("json_object(") {
            out.push_str("json_build_object(");
            rest = &rest["json_object(".len()..];
            continue;
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    let t: &'static str = Box::leak(out.into_boxed_str());
    done.lock().unwrap_or_else(|e| e.into_inner()).insert(s, t);
    t
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
    /// `from` is only what the customer typed (a web chat's address): not resolved to
    /// a customer, no case joined, until someone verifies it
    /// ([`InteractionUpdate::customer_id`] then attaches it).
    pub unverified: bool,
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
    (4, &[TIMELINE_INDEX, CUSTOMER_INDEX]),
];

/// An interaction's own events are read by `interaction_id`.
const TIMELINE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS timeline_interaction ON timeline(interaction_id)";
/// A customer's interactions, newest first (history, sticky routing).
const CUSTOMER_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS interactions_customer ON interactions(customer_id, started_at)";

pub const SCHEMA_VERSION: i64 = 4;

/// The same schema for PostgreSQL, which omnigate supports from version 3: a new
/// database gets version 3 at once. Integers are BIGINT (Rust `i64` on both sides);
/// `interactions.rowid` stands in for SQLite's implicit rowid (insertion order).
const PG_MIGRATIONS: &[(i64, &[&str])] = &[
    (
        3,
        &[
        "CREATE TABLE customers (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            phone TEXT UNIQUE,
            email TEXT UNIQUE,
            account TEXT UNIQUE,
            tier TEXT NOT NULL DEFAULT 'standard',
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE identities (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            customer_id BIGINT NOT NULL REFERENCES customers(id),
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            UNIQUE (kind, value)
        )",
        "CREATE TABLE consents (
            customer_id BIGINT NOT NULL REFERENCES customers(id),
            kind TEXT NOT NULL,
            granted BIGINT NOT NULL,
            at BIGINT NOT NULL,
            PRIMARY KEY (customer_id, kind)
        )",
        "CREATE TABLE conversations (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            customer_id BIGINT NOT NULL REFERENCES customers(id),
            status TEXT NOT NULL DEFAULT 'open',
            opened_at BIGINT NOT NULL,
            resolved_at BIGINT
        )",
        "CREATE INDEX conversations_customer ON conversations(customer_id, status)",
        "CREATE UNIQUE INDEX conversations_one_open ON conversations(customer_id) WHERE status = 'open'",
        "CREATE TABLE interactions (
            id TEXT PRIMARY KEY,
            rowid BIGINT GENERATED ALWAYS AS IDENTITY,
            kind TEXT NOT NULL,
            customer_id BIGINT REFERENCES customers(id),
            caller TEXT NOT NULL DEFAULT '',
            dialled TEXT NOT NULL DEFAULT '',
            trunk TEXT NOT NULL DEFAULT '',
            flow TEXT NOT NULL DEFAULT '',
            flow_version TEXT NOT NULL DEFAULT '',
            started_at BIGINT NOT NULL,
            ended_at BIGINT,
            queue TEXT,
            outcome TEXT,
            path TEXT NOT NULL DEFAULT '[]',
            variables TEXT NOT NULL DEFAULT '{}',
            conversation_id BIGINT REFERENCES conversations(id),
            direction TEXT NOT NULL DEFAULT 'inbound',
            agent TEXT,
            offered_at BIGINT,
            answered_at BIGINT,
            disposition TEXT,
            recording TEXT
        )",
        "CREATE INDEX interactions_started ON interactions(started_at)",
        "CREATE INDEX interactions_conversation ON interactions(conversation_id)",
        "CREATE INDEX interactions_agent ON interactions(agent, customer_id)",
        "CREATE TABLE timeline (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            customer_id BIGINT REFERENCES customers(id),
            interaction_id TEXT REFERENCES interactions(id),
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            conversation_id BIGINT REFERENCES conversations(id)
        )",
        "CREATE INDEX timeline_conversation ON timeline(conversation_id, at)",
        "CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            source TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
        "CREATE TABLE queues (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            source TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
        ],
    ),
    (4, &[TIMELINE_INDEX, CUSTOMER_INDEX]),
];

/// (interaction, kind, data JSON, at) for one interaction: its start and queue from its
/// row, then the written events (its end among them), in time order.
const TIMELINE: &str = "SELECT id, 'interaction started', CAST(json_object('kind', kind, 'from', caller, 'dialled', dialled) AS TEXT), started_at AS at, 0 AS o, 0 AS n FROM interactions WHERE id = ?
    UNION ALL SELECT id, 'queued', CAST(json_object('queue', queue) AS TEXT), offered_at, 1, 0 FROM interactions WHERE id = ? AND offered_at IS NOT NULL
    UNION ALL SELECT interaction_id, kind, data, at, 2, id FROM timeline WHERE interaction_id = ?
    ORDER BY at, o, n";

/// The same over every interaction of a conversation.
const CONVERSATION_TIMELINE: &str = "SELECT id, 'interaction started', CAST(json_object('kind', kind, 'from', caller, 'dialled', dialled) AS TEXT), started_at AS at, 0 AS o, 0 AS n FROM interactions WHERE conversation_id = ?
    UNION ALL SELECT id, 'queued', CAST(json_object('queue', queue) AS TEXT), offered_at, 1, 0 FROM interactions WHERE conversation_id = ? AND offered_at IS NOT NULL
    UNION ALL SELECT COALESCE(interaction_id, ''), kind, data, at, 2, id FROM timeline WHERE conversation_id = ?
    ORDER BY at, o, n";

/// Which database a `[data] database` value names.
#[derive(Debug, PartialEq, Eq)]
pub enum Database<'a> {
    /// SQLite: the default file (empty value) or `sqlite:PATH`.
    Sqlite(Option<&'a str>),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(&'a str),
}

impl<'a> Database<'a> {
    /// Reads the value; an error says what is accepted.
    pub fn parse(url: &'a str) -> Result<Database<'a>, String> {
        let url = url.trim();
        if url.is_empty() {
            return Ok(Database::Sqlite(None));
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("\"{url}\" names no file (sqlite:PATH)"));
            }
            return Ok(Database::Sqlite(Some(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(
                    "this omnigate was built without PostgreSQL (cargo feature `postgres`)".into(),
                );
            }
            return Ok(Database::Postgres(url));
        }
        Err(format!(
            "\"{url}\" is not sqlite:PATH, postgres://... or postgresql://..."
        ))
    }
}

/// Store times are Unix milliseconds.
fn now() -> i64 {
    crate::clock::unix_millis() as i64
}

/// The end of an interaction, written once inside the caller's transaction: later ends
/// change nothing. (A macro, so it runs on either database's transaction.)
macro_rules! end_in {
    ($tx:expr, $sql:ident, $id:expr, $outcome:expr, $t:expr) => {{
        let ended: Option<Option<String>> = sqlx::query($sql("UPDATE interactions SET outcome = COALESCE(outcome, NULLIF(?, '')), ended_at = ? WHERE id = ? AND ended_at IS NULL RETURNING outcome"))
            .bind($outcome)
            .bind($t)
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?
            .map(|r| r.get(0));
        if let Some(outcome) = ended {
            sqlx::query($sql("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, 'interaction ended', ? FROM interactions WHERE id = ?"))
                .bind($t)
                .bind(serde_json::json!({ "outcome": outcome }).to_string())
                .bind($id)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Reads an interaction from a row of either database (a closure for `.map`).
macro_rules! interaction_row {
    () => {
        |r| Interaction {
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
    };
}

/// Timeline rows (interaction, kind, data JSON) of either database.
macro_rules! events {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<String, _>(1),
                    serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
                )
            })
            .collect::<Vec<(String, String, serde_json::Value)>>()
    };
}

impl Store {
    /// Opens the database `url` names: `postgres://` or `postgresql://` for PostgreSQL,
    /// `sqlite:PATH` or an empty string (`default_file`) for SQLite; and brings its
    /// schema up to date.
    pub async fn connect(url: &str, default_file: &Path) -> Result<Store, StoreError> {
        match Database::parse(url).map_err(StoreError::Url)? {
            Database::Sqlite(None) => Store::open(default_file).await,
            Database::Sqlite(Some(path)) => Store::open(Path::new(path)).await,
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => Store::open_postgres(url).await,
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(_) => unreachable!("refused by Database::parse"),
        }
    }

    /// Opens (creating when missing) an SQLite database file and brings its schema up
    /// to date.
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
        let s = Store {
            db: Db::Sqlite(pool),
        };
        s.migrate().await?;
        Ok(s)
    }

    /// Connects to PostgreSQL and brings the schema up to date (nodes starting at once
    /// take turns: the migration holds an advisory lock).
    #[cfg(feature = "postgres")]
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        let s = Store { db: Db::Pg(pool) };
        s.migrate().await?;
        Ok(s)
    }

    /// Which database this is: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Db::Pg(_) => "postgres",
        }
    }

    /// The schema version of the open database.
    pub async fn version(&self) -> Result<i64, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ))
        .fetch_one(pool)
        .await?
        .get(0)))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        const TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
        with_db!(self, |pool, sql| {
            let (list, lock) = match self.db {
                Db::Sqlite(_) => (MIGRATIONS, None),
                #[cfg(feature = "postgres")]
                Db::Pg(_) => (PG_MIGRATIONS, Some("SELECT pg_advisory_xact_lock(7286415)")),
            };
            // Under the lock too: PostgreSQL's IF NOT EXISTS is not safe against a
            // concurrent CREATE.
            let mut tx = pool.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            sqlx::query(TABLE).execute(&mut *tx).await?;
            tx.commit().await?;
            for (v, steps) in list {
                let mut tx = pool.begin().await?;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let have: i64 = sqlx::query(sql(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                ))
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                if have > SCHEMA_VERSION {
                    return Err(StoreError::TooNew(have, SCHEMA_VERSION));
                }
                if *v <= have {
                    continue;
                }
                for s in *steps {
                    sqlx::query(*s).execute(&mut *tx).await?;
                }
                sqlx::query(sql(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                ))
                .bind(v)
                .bind(now())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::info!(version = v, backend = self.backend(), "database migrated");
            }
            // A database newer than every migration we know.
            let have = self.version().await?;
            if have > SCHEMA_VERSION {
                return Err(StoreError::TooNew(have, SCHEMA_VERSION));
            }
            Ok(())
        })
    }

    /// Demo customers (`DEMO_CUSTOMERS`), added once to an empty store.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        let n: i64 = with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT COUNT(*) FROM customers"
        ))
        .fetch_one(pool)
        .await?
        .get(0));
        if n > 0 {
            return Ok(());
        }
        for (name, phone, email, account, tier) in DEMO_CUSTOMERS {
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
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql(
            "INSERT INTO customers (name, account, tier, created_at) VALUES (?, ?, ?, ?) RETURNING id"
        ))
        .bind(name)
        .bind(account)
        .bind(tier)
        .bind(now())
        .fetch_one(pool)
        .await?
        .get(0))
        })
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
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql("INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"))
            .bind(customer)
            .bind(kind.name())
            .bind(&value)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
            == 1)
        })
    }

    /// The customer holding an identity.
    pub async fn customer_by_identity(
        &self,
        kind: IdentityKind,
        value: &str,
    ) -> Result<Option<i64>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT customer_id FROM identities WHERE kind = ? AND value = ?"
        ))
        .bind(kind.name())
        .bind(value)
        .fetch_optional(pool)
        .await?
        .map(|r| r.get(0))))
    }

    /// A customer's fields (`id`, `name`, `account`, `tier`, their first `phone` and
    /// `email`).
    pub async fn customer(&self, id: i64) -> Result<Option<Vec<(String, String)>>, StoreError> {
        with_db!(self, |pool, sql| {
            let Some(r) = sqlx::query(sql(
                "SELECT id, name, account, tier FROM customers WHERE id = ?",
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let mut out = vec![
                ("id".to_string(), r.get::<i64, _>(0).to_string()),
                ("name".into(), r.get::<String, _>(1)),
                (
                    "account".into(),
                    r.get::<Option<String>, _>(2).unwrap_or_default(),
                ),
                ("tier".into(), r.get::<String, _>(3)),
            ];
            for kind in ["phone", "email"] {
                let v: Option<String> = sqlx::query(sql("SELECT value FROM identities WHERE customer_id = ? AND kind = ? ORDER BY id LIMIT 1"))
                    .bind(id)
                    .bind(kind)
                    .fetch_optional(pool)
                    .await?
                    .map(|r| r.get(0));
                out.push((kind.to_string(), v.unwrap_or_default()));
            }
            Ok(Some(out))
        })
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
            "account" => with_db!(self, |pool, sql| sqlx::query(sql(
                "SELECT id FROM customers WHERE account = ?"
            ))
            .bind(value)
            .fetch_optional(pool)
            .await?
            .map(|r| r.get(0))),
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
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO conversations (customer_id, status, opened_at) VALUES (?, 'open', ?) ON CONFLICT DO NOTHING"))
            .bind(customer)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(self.find_open(customer).await?.unwrap_or_default())
    }

    async fn find_open(&self, customer: i64) -> Result<Option<i64>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT id FROM conversations WHERE customer_id = ? AND status = 'open'"
        ))
        .bind(customer)
        .fetch_optional(pool)
        .await?
        .map(|r| r.get(0))))
    }

    pub async fn resolve_conversation(&self, conversation: i64) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE conversations SET status = 'resolved', resolved_at = ? WHERE id = ?"
        ))
        .bind(now())
        .bind(conversation)
        .execute(pool)
        .await?
        .rows_affected());
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
            _ if n.unverified => None,
            Some((kind, value)) => with_db!(self, |pool, sql| {
                sqlx::query(sql("SELECT i.customer_id, c.id FROM identities i LEFT JOIN conversations c ON c.customer_id = i.customer_id AND c.status = 'open' WHERE i.kind = ? AND i.value = ?"))
                .bind(kind.name())
                .bind(value)
                .fetch_optional(pool)
                .await?
                .map(|r| (r.get(0), r.get(1)))
            }),
            None => None,
        };
        let (customer, conversation) = match known {
            Some((c, Some(conv))) => (Some(c), Some(conv)),
            Some((c, None)) => (Some(c), Some(self.open_conversation(c).await?)),
            None if n.unverified => (None, None),
            None => match self.resolve_customer(n.from).await? {
                Some(c) => (Some(c), Some(self.open_conversation(c).await?)),
                None => (None, None),
            },
        };
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO interactions (id, kind, direction, customer_id, conversation_id, caller, dialled, trunk, flow, flow_version, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
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
            .execute(pool)
            .await?
            .rows_affected()
        });
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
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql("UPDATE interactions SET customer_id = COALESCE(?, customer_id), conversation_id = COALESCE(?, conversation_id), offered_at = CASE WHEN ? IS NOT NULL AND offered_at IS NULL THEN ? ELSE offered_at END, queue = COALESCE(?, queue), outcome = COALESCE(?, outcome), path = ?, variables = COALESCE(?, variables) WHERE id = ?"))
                .bind(u.customer_id)
                .bind(conversation)
                .bind(u.queue)
                .bind(t)
                .bind(u.queue)
                .bind(u.outcome)
                .bind(serde_json::to_string(u.path).unwrap_or_default())
                .bind(&vars)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if u.customer_id.is_some() {
                // What was written before the customer was known moves with it.
                sqlx::query(sql("UPDATE timeline SET customer_id = ?, conversation_id = ? WHERE interaction_id = ? AND customer_id IS NULL"))
                    .bind(u.customer_id)
                    .bind(conversation)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if u.ended {
                end_in!(tx, sql, id, u.outcome.unwrap_or(""), t);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Adds an event (a voicemail, a note...) to an interaction's timeline.
    /// After a crash or a stop: every interaction still open is ended as
    /// `interrupted` (with the usual "interaction ended" entry). Only for a database
    /// this node has to itself (SQLite): on a shared PostgreSQL the other nodes' live
    /// work is open too. Returns the ids ended.
    pub async fn close_interrupted(&self) -> Result<Vec<String>, StoreError> {
        let Db::Sqlite(_) = &self.db else {
            return Ok(Vec::new());
        };
        let ids: Vec<String> = with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT id FROM interactions WHERE ended_at IS NULL"
        ))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| r.get::<String, _>(0))
        .collect());
        for id in &ids {
            self.add_timeline(
                id,
                "interrupted",
                serde_json::json!({"reason": "the node stopped or crashed while it was open"}),
            )
            .await?;
            self.end_interaction(id, "interrupted").await?;
        }
        Ok(ids)
    }

    pub async fn add_timeline(
        &self,
        interaction: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, ?, ? FROM interactions WHERE id = ?"))
            .bind(now())
            .bind(kind)
            .bind(data.to_string())
            .bind(interaction)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// An interaction's events, oldest first: its start, joining a queue and end (from
    /// its own times) merged with the events written for it (voicemails, notes...).
    pub async fn timeline(
        &self,
        interaction: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let rows = with_db!(self, |pool, sql| events!(
            sqlx::query(sql(TIMELINE))
                .bind(interaction)
                .bind(interaction)
                .bind(interaction)
                .fetch_all(pool)
                .await?
        ));
        Ok(rows.into_iter().map(|(_, k, d)| (k, d)).collect())
    }

    /// A conversation's events across all its interactions, oldest first:
    /// (interaction, kind, data).
    pub async fn conversation_timeline(
        &self,
        conversation: i64,
    ) -> Result<Vec<(String, String, serde_json::Value)>, StoreError> {
        Ok(with_db!(self, |pool, sql| events!(
            sqlx::query(sql(CONVERSATION_TIMELINE))
                .bind(conversation)
                .bind(conversation)
                .bind(conversation)
                .fetch_all(pool)
                .await?
        )))
    }

    /// The messages stored for one interaction (a chat), oldest first: each entry's
    /// data (`from`, `name`, `text`, and `seq`, `at` where recorded).
    pub async fn interaction_messages(
        &self,
        interaction: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT data FROM timeline WHERE interaction_id = ? AND kind = 'message' ORDER BY id"
        ))
        .bind(interaction)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap_or_default())
        .collect()))
    }

    /// What routing wants to know of a customer's new contact `id`: the agent who last
    /// served them (sticky routing), whether their open case already had a contact (a
    /// repeat contact on an unresolved case), and whether they are a VIP (tier gold or
    /// vip).
    pub async fn routing_hints(
        &self,
        customer: i64,
        id: &str,
    ) -> Result<(Option<String>, bool, bool), StoreError> {
        with_db!(self, |pool, sql| {
            let r = sqlx::query(sql("SELECT (SELECT agent FROM interactions WHERE customer_id = ? AND agent IS NOT NULL AND id <> ? ORDER BY started_at DESC LIMIT 1), (SELECT COUNT(*) FROM interactions i JOIN conversations c ON c.id = i.conversation_id WHERE c.customer_id = ? AND c.status = 'open' AND i.id <> ?), (SELECT tier FROM customers WHERE id = ?)"))
                .bind(customer)
                .bind(id)
                .bind(customer)
                .bind(id)
                .bind(customer)
                .fetch_one(pool)
                .await?;
            let tier: Option<String> = r.get(2);
            Ok((
                r.get(0),
                r.get::<i64, _>(1) > 0,
                matches!(tier.as_deref(), Some("gold" | "vip")),
            ))
        })
    }

    /// The interaction's recording file (the first one kept when recording is turned
    /// off and on again: later files are on the timeline).
    pub async fn set_recording(&self, id: &str, path: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE interactions SET recording = COALESCE(recording, ?) WHERE id = ?"
        ))
        .bind(path)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// An agent accepted the interaction: it is theirs (answered is written when they
    /// are connected).
    pub async fn interaction_assigned(&self, id: &str, agent: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE interactions SET agent = ? WHERE id = ?"
        ))
        .bind(agent)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// An agent took the interaction (answered now); the time is kept from the first.
    pub async fn interaction_answered(&self, id: &str, agent: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("UPDATE interactions SET agent = ?, answered_at = COALESCE(answered_at, ?) WHERE id = ?"))
            .bind(agent)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Ends an interaction (a chat, a call after its IVR run): outcome and end time,
    /// once, with its end on the timeline.
    pub async fn end_interaction(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            end_in!(tx, sql, id, outcome, now());
            tx.commit().await?;
        });
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
        let data =
            serde_json::json!({"agent": agent, "disposition": disposition, "resolved": resolved})
                .to_string();
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql("UPDATE interactions SET disposition = ? WHERE id = ?"))
                .bind(disposition)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, 'wrapped up', ? FROM interactions WHERE id = ?"))
                .bind(now())
                .bind(&data)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if resolved {
                sqlx::query(sql("UPDATE conversations SET status = 'resolved', resolved_at = ? WHERE id = (SELECT conversation_id FROM interactions WHERE id = ?) AND status = 'open'"))
                    .bind(now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether `agent` has served (been assigned an interaction of) this customer.
    pub async fn agent_served(&self, agent: &str, customer: i64) -> Result<bool, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT 1 FROM interactions WHERE agent = ? AND customer_id = ? LIMIT 1"
        ))
        .bind(agent)
        .bind(customer)
        .fetch_optional(pool)
        .await?
        .is_some()))
    }

    /// A customer as the agent desktop shows them: fields, identities, open case.
    /// The screen-pop's record: the customer's card, their last 20 interactions on
    /// every channel, and the timeline of their open case.
    pub async fn customer_view(&self, id: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(card) = self.customer_card(id).await? else {
            return Ok(None);
        };
        let recent = self.customer_interactions(id, 20).await?;
        let timeline = match card["open_conversation"].as_i64() {
            Some(conv) => self
                .conversation_timeline(conv)
                .await?
                .into_iter()
                .map(|(i, k, d)| serde_json::json!({"interaction": i, "kind": k, "data": d}))
                .collect(),
            None => vec![],
        };
        Ok(Some(
            serde_json::json!({"customer": card, "interactions": recent, "timeline": timeline}),
        ))
    }

    pub async fn customer_card(&self, id: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(fields) = self.customer(id).await? else {
            return Ok(None);
        };
        let ids: Vec<(String, String)> = with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT kind, value FROM identities WHERE customer_id = ? ORDER BY id"
        ))
        .bind(id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect());
        let conv = self.find_open(id).await?;
        let mut m: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        m.insert("id".into(), id.into());
        m.insert(
            "identities".into(),
            ids.iter()
                .map(|(k, v)| serde_json::json!({"kind": k, "value": v}))
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
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql("SELECT * FROM interactions WHERE customer_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ?"))
            .bind(customer)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?
            .iter()
            .map(interaction_row!())
            .collect())
        })
    }

    /// Sets a customer's name when they have none yet (a chat gives one).
    pub async fn name_customer(&self, id: i64, name: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE customers SET name = ? WHERE id = ? AND name = ''"
        ))
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
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
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO agents (name, spec, password_hash, source, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, password_hash = excluded.password_hash, source = excluded.source, updated_at = excluded.updated_at"))
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

    /// Every agent: (name, spec, password hash, source).
    pub async fn agents(
        &self,
    ) -> Result<Vec<(String, serde_json::Value, String, String)>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT name, spec, password_hash, source FROM agents ORDER BY name"
        ))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                r.get(2),
                r.get(3),
            )
        })
        .collect()))
    }

    pub async fn delete_agent(&self, name: &str) -> Result<bool, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "DELETE FROM agents WHERE name = ?"
        ))
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

    /// Every queue: (name, spec, source).
    pub async fn queues(&self) -> Result<Vec<(String, serde_json::Value, String)>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT name, spec, source FROM queues ORDER BY name"
        ))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                r.get(2),
            )
        })
        .collect()))
    }

    pub async fn interaction(&self, id: &str) -> Result<Option<Interaction>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT * FROM interactions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(interaction_row!())))
    }

    /// The most recent interactions, newest first.
    pub async fn recent_interactions(&self, limit: u32) -> Result<Vec<Interaction>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT * FROM interactions ORDER BY started_at DESC, rowid DESC LIMIT ?"
        ))
        .bind(limit as i64)
        .fetch_all(pool)
        .await?
        .iter()
        .map(interaction_row!())
        .collect()))
    }
}

#[cfg(test)]
mod tests;
