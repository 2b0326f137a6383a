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
use sqlx::SqlitePool;
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
    /// Work the store hands to a thread failed (a panic there).
    #[error("{0}")]
    Worker(String),
}

#[derive(Clone)]
pub struct Store {
    db: Db,
    /// One refresh of the KPI facts at a time (`Store::refresh_kpi_facts`).
    kpi_refresh: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// One making of the occupancy packs at a time (`Store::refresh_activity_packs`).
    activity_refresh: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The key tombstones are hashed under, read once (`privacy`).
    tombstone_key: std::sync::Arc<tokio::sync::OnceCell<Vec<u8>>>,
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

impl Store {
    /// How a transaction that reads before it writes begins: SQLite takes the write
    /// lock at once (a deferred one that read could not write after another writer's
    /// commit: `SQLITE_BUSY_SNAPSHOT`, "database is locked", which no busy timeout
    /// waits out); PostgreSQL as usual.
    fn write_begin(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            #[cfg(feature = "postgres")]
            Db::Pg(_) => "BEGIN",
        }
    }
}

mod activity;
pub use activity::OccupancyInput;
mod channels;
mod conversations;
mod customers;
mod dialect;
mod directory;
mod interactions;
mod kpis;
mod mail;
mod privacy;
mod requests;
mod retention;
mod schema;
mod supervision;
mod surveys;
mod timeline;

pub use channels::{Accounts, ChannelMessage};
pub use customers::{
    identity_of, normalize_phone, Customer, DemoCustomer, IdentityKind, Provenance, DEMO_CUSTOMERS,
};
#[cfg(feature = "postgres")]
pub use dialect::pg_sql;
use dialect::sqlite_sql;
pub use dialect::Database;
pub use directory::{AgentRow, QueueRow};
pub use interactions::{
    Interaction, InteractionUpdate, NewInteraction, OpenWebChat, RoutingHints, WebChatSession,
};
pub use mail::{EmailRow, MailMark, NewEmail};
pub use privacy::{ConsentRow, ErasureRow, Inventory};
pub use requests::RequestRow;
pub use retention::Expired;
pub use schema::SCHEMA_VERSION;
pub use supervision::{Audit, AuditEntry, AuditQuery};
pub use surveys::SurveyAnswer;
pub use timeline::TimelineEvent;

/// Store times are Unix milliseconds.
fn now() -> i64 {
    crate::clock::unix_millis() as i64
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
            // What is deleted is overwritten, so an erased customer's data does not
            // linger in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let s = Store {
            db: Db::Sqlite(pool),
            kpi_refresh: Default::default(),
            activity_refresh: Default::default(),
            tombstone_key: Default::default(),
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
        let s = Store {
            db: Db::Pg(pool),
            kpi_refresh: Default::default(),
            activity_refresh: Default::default(),
            tombstone_key: Default::default(),
        };
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
}

#[cfg(test)]
mod tests;
