//! The schema: numbered migrations per database, applied at start-up, each in one
//! transaction (PostgreSQL nodes starting together take turns under an advisory lock).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// The agents' occupancy kept per quarter hour (`kpi::occupancy::encode`: per agent,
/// time occupied and staffed), made by `Store::refresh_activity_packs` for every
/// quarter hour before `activity_packed.until`; a change written or removed before it
/// sets it back to that change's quarter hour (the triggers), so it is made again.
macro_rules! activity_packs_table {
    ($blob:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS activity_packs (
    quarter BIGINT PRIMARY KEY,
    sums ",
            $blob,
            " NOT NULL
)"
        )
    };
}
const ACTIVITY_PACKS_SQLITE: &str = activity_packs_table!("BLOB");
#[cfg(feature = "postgres")]
const ACTIVITY_PACKS_PG: &str = activity_packs_table!("BYTEA");
const ACTIVITY_PACKED: &str = "CREATE TABLE IF NOT EXISTS activity_packed (
    id BIGINT PRIMARY KEY,
    until BIGINT NOT NULL
)";
/// A change's quarter hour's start (Unix ms; `$at` may be before 1970).
macro_rules! quarter_start {
    ($at:literal) => {
        concat!($at, " - ((", $at, " % 900000 + 900000) % 900000)")
    };
}
/// The interactions' columns an interaction's KPI facts are made from (with its
/// timeline): a change to one makes them again.
macro_rules! kpi_columns {
    () => {
        "id, kind, direction, customer_id, conversation_id, flow, started_at, offered_at, queue"
    };
}

/// Numbered schema changes; each runs once, in a transaction.
pub(super) const MIGRATIONS: &[(i64, &[&str])] = &[
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
    (5, &[SURVEYS, QUEUE_INDEX]),
    (6, &[CHANNEL_MESSAGES]),
    (7, &[NOTIFICATIONS]),
    (8, &[CHANNEL_ACCOUNTS]),
    (9, &[CHAT_SESSIONS]),
    (10, &[EMAILS_SQLITE, EMAILS_BY_ID, EMAILS_BY_INTERACTION, EMAILS_BY_CASE, MAIL_MARKS, NODE_KEYS, MAILBOX_ACCOUNTS]),
    (11, &[SUPERVISORS, AUDIT_LOG_SQLITE, AUDIT_LOG_AT]),
    (
        12,
        &[
            KPI_PACKS_SQLITE,
            KPI_STALE_SQLITE,
            KPI_STALE_BY_INTERACTION,
            KPI_ALL_STALE,
            "CREATE TRIGGER kpi_timeline_added AFTER INSERT ON timeline WHEN NEW.interaction_id IS NOT NULL BEGIN INSERT INTO kpi_stale (interaction_id) VALUES (NEW.interaction_id); END",
            "CREATE TRIGGER kpi_timeline_changed AFTER UPDATE ON timeline BEGIN INSERT INTO kpi_stale (interaction_id) SELECT NEW.interaction_id WHERE NEW.interaction_id IS NOT NULL UNION SELECT OLD.interaction_id WHERE OLD.interaction_id IS NOT NULL; END",
            "CREATE TRIGGER kpi_timeline_removed AFTER DELETE ON timeline WHEN OLD.interaction_id IS NOT NULL BEGIN INSERT INTO kpi_stale (interaction_id) VALUES (OLD.interaction_id); END",
            "CREATE TRIGGER kpi_interaction_added AFTER INSERT ON interactions BEGIN INSERT INTO kpi_stale (interaction_id) VALUES (NEW.id); END",
            concat!("CREATE TRIGGER kpi_interaction_changed AFTER UPDATE OF ", kpi_columns!(), " ON interactions BEGIN INSERT INTO kpi_stale (interaction_id) VALUES (NEW.id); END"),
            "CREATE TRIGGER kpi_interaction_removed AFTER DELETE ON interactions BEGIN INSERT INTO kpi_stale (interaction_id, started_at) VALUES (OLD.id, OLD.started_at); END",
        ],
    ),
    (13, &[AGENT_ACTIVITY_SQLITE, AGENT_ACTIVITY_BY_AGENT, AGENT_ACTIVITY_AT]),
    (14, &[SURVEY_ASKS, SURVEY_ASKS_EXPIRY]),
    (
        15,
        &[
            ACTIVITY_PACKS_SQLITE,
            ACTIVITY_PACKED,
            concat!("CREATE TRIGGER activity_added AFTER INSERT ON agent_activity BEGIN UPDATE activity_packed SET until = ", quarter_start!("NEW.at"), " WHERE until > ", quarter_start!("NEW.at"), "; END"),
            concat!("CREATE TRIGGER activity_removed AFTER DELETE ON agent_activity BEGIN UPDATE activity_packed SET until = ", quarter_start!("OLD.at"), " WHERE until > ", quarter_start!("OLD.at"), "; END"),
        ],
    ),
    (
        16,
        &[
            CONSENT_EVENTS_SQLITE,
            CONSENT_EVENTS_BY_CUSTOMER,
            "INSERT INTO consent_events (customer_id, purpose, channel, granted, source, evidence, actor, at)
                SELECT customer_id,
                    CASE WHEN instr(kind, ':') > 0 THEN substr(kind, 1, instr(kind, ':') - 1) ELSE kind END,
                    CASE WHEN instr(kind, ':') > 0 THEN substr(kind, instr(kind, ':') + 1) ELSE 'any' END,
                    granted, 'import', '{}', 'migration', at
                FROM consents ORDER BY at",
            "UPDATE consents SET kind = kind || ':any' WHERE instr(kind, ':') = 0",
            "ALTER TABLE customers ADD COLUMN erased_at BIGINT",
            ERASURES_SQLITE,
            TOMBSTONES,
            WEBHOOK_DELIVERIES,
        ],
    ),
    (17, &[MAIL_PURGES, LEGAL_HOLD_AT, LEGAL_HOLD_BY]),
    (18, &[REQUESTS_SQLITE, REQUESTS_DUE]),
    (19, &[IDENTITY_SOURCE, IDENTITY_INTERACTION, IDENTITY_ACTOR, CUSTOMER_FIELDS]),
    (20, &[WEBHOOK_POPS]),
];

/// Interactions whose log changed since their facts were made: one row per change,
/// only ever inserted by the triggers (so writers never wait on each other or on a
/// refresh), deleted by the refresh that read it; `started_at` set when the
/// interaction was removed (its quarter's pack is made again).
const KPI_STALE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS kpi_stale (
    seq INTEGER PRIMARY KEY,
    interaction_id TEXT NOT NULL,
    started_at INTEGER
)";
#[cfg(feature = "postgres")]
const KPI_STALE_PG: &str = "CREATE TABLE IF NOT EXISTS kpi_stale (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    interaction_id TEXT NOT NULL,
    started_at BIGINT
)";
const KPI_STALE_BY_INTERACTION: &str =
    "CREATE INDEX IF NOT EXISTS kpi_stale_interaction ON kpi_stale(interaction_id)";
/// Every interaction already recorded gets its facts at the first report.
/// (In the order they started: a round of the refresh then touches few quarters.)
const KPI_ALL_STALE: &str =
    "INSERT INTO kpi_stale (interaction_id) SELECT id FROM interactions ORDER BY started_at";
/// The KPI facts of each quarter hour's interactions (by when they started) in one row
/// (`kpi::codec::pack`), patched by `Store::refresh_kpi_facts` as their logs change: a
/// month's report reads 2,880 rows, not a row per interaction.
const KPI_PACKS_SQLITE: &str = "CREATE TABLE IF NOT EXISTS kpi_packs (
    quarter INTEGER PRIMARY KEY,
    facts BLOB NOT NULL
)";
#[cfg(feature = "postgres")]
const KPI_PACKS_PG: &str = "CREATE TABLE IF NOT EXISTS kpi_packs (
    quarter BIGINT PRIMARY KEY,
    facts BYTEA NOT NULL
)";

/// E-mail by mailbox and Message-ID (see `store::mail`); `raw` the bytes imported or
/// sent (none for a tombstone).
macro_rules! emails_table {
    ($raw:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS emails (
    mailbox TEXT NOT NULL,
    message_id TEXT NOT NULL,
    interaction_id TEXT REFERENCES interactions(id),
    conversation_id BIGINT REFERENCES conversations(id),
    direction TEXT NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    tries BIGINT NOT NULL DEFAULT 0,
    sender TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    refs TEXT NOT NULL DEFAULT '',
    raw ",
            $raw,
            ",
    at BIGINT NOT NULL,
    PRIMARY KEY (mailbox, message_id)
)"
        )
    };
}
const EMAILS_SQLITE: &str = emails_table!("BLOB");
#[cfg(feature = "postgres")]
const EMAILS_PG: &str = emails_table!("BYTEA");
/// Threading looks up References among every mailbox's messages.
const EMAILS_BY_ID: &str = "CREATE INDEX IF NOT EXISTS emails_message_id ON emails(message_id)";
const EMAILS_BY_INTERACTION: &str =
    "CREATE INDEX IF NOT EXISTS emails_interaction ON emails(interaction_id, seq)";
const EMAILS_BY_CASE: &str =
    "CREATE INDEX IF NOT EXISTS emails_conversation ON emails(conversation_id)";
/// Where each mailbox's fetcher got to.
const MAIL_MARKS: &str = "CREATE TABLE IF NOT EXISTS mail_marks (
    mailbox TEXT PRIMARY KEY,
    uidvalidity BIGINT NOT NULL,
    last_uid BIGINT NOT NULL,
    at BIGINT NOT NULL
)";
/// Mailboxes added through the admin API (the config file's are read-only): the
/// mailbox as `[[mailbox]]` spells it, in JSON.
const MAILBOX_ACCOUNTS: &str = "CREATE TABLE IF NOT EXISTS mailbox_accounts (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_at BIGINT NOT NULL
)";
/// Supervisors (from the config file, marked `config`, or the admin API), as agents.
const SUPERVISORS: &str = "CREATE TABLE IF NOT EXISTS supervisors (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL
)";
/// A log table with a generated id (SQLite's rowid, PostgreSQL's identity: `$db` is
/// `sqlite` or `pg`) and `$columns`.
macro_rules! log_table {
    (sqlite, $name:literal, $columns:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (\n    id INTEGER PRIMARY KEY,",
            $columns,
            ")"
        )
    };
    (pg, $name:literal, $columns:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (\n    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,",
            $columns,
            ")"
        )
    };
}
/// What supervisors did: who (and in which role), what, when, on which interaction.
/// No reference to `interactions`: the log outlives what it speaks of.
macro_rules! audit_table {
    ($db:ident) => {
        log_table!(
            $db,
            "audit_log",
            "
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    interaction_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
"
        )
    };
}
const AUDIT_LOG_SQLITE: &str = audit_table!(sqlite);
#[cfg(feature = "postgres")]
const AUDIT_LOG_PG: &str = audit_table!(pg);
const AUDIT_LOG_AT: &str = "CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at, id)";
/// What each agent was doing and since when (the router's activity: idle, working,
/// wrap-up, away, busy, offline), for occupancy. Ordered by `at`, then `id`.
macro_rules! agent_activity_table {
    ($db:ident) => {
        log_table!(
            $db,
            "agent_activity",
            "
    agent TEXT NOT NULL,
    at BIGINT NOT NULL,
    state TEXT NOT NULL
"
        )
    };
}
const AGENT_ACTIVITY_SQLITE: &str = agent_activity_table!(sqlite);
#[cfg(feature = "postgres")]
const AGENT_ACTIVITY_PG: &str = agent_activity_table!(pg);
const AGENT_ACTIVITY_BY_AGENT: &str =
    "CREATE INDEX IF NOT EXISTS agent_activity_agent ON agent_activity(agent, at, id)";
const AGENT_ACTIVITY_AT: &str =
    "CREATE INDEX IF NOT EXISTS agent_activity_at ON agent_activity(at, id)";
/// Keys made once and shared by the nodes (the plus-address tokens' HMAC key).
const NODE_KEYS: &str = "CREATE TABLE IF NOT EXISTS node_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)";

/// A web chat's session, so a restarted node takes it up again: the digest of the
/// customer's resume token (never the token), the name they typed and the queue.
const CHAT_SESSIONS: &str = "CREATE TABLE IF NOT EXISTS chat_sessions (
    interaction_id TEXT PRIMARY KEY REFERENCES interactions(id),
    token_digest TEXT NOT NULL,
    name TEXT NOT NULL,
    queue TEXT NOT NULL
)";

/// Messaging accounts added through the admin API (the config file's are read-only):
/// the account as `[[channel]]` spells it, in JSON.
const CHANNEL_ACCOUNTS: &str = "CREATE TABLE IF NOT EXISTS channel_accounts (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_at BIGINT NOT NULL
)";

/// Proactive notifications by their `Idempotency-Key`: the request's digest (a key
/// reused for another request is refused) and the answer given (the same again).
const NOTIFICATIONS: &str = "CREATE TABLE IF NOT EXISTS notifications (
    idem_key TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    at BIGINT NOT NULL
)";

/// Messages through a provider (WhatsApp...), by the provider's id: an inbound one
/// delivered twice counts once; an outbound one's delivery status, kept in order.
const CHANNEL_MESSAGES: &str = "CREATE TABLE IF NOT EXISTS channel_messages (
    account TEXT NOT NULL,
    external_id TEXT NOT NULL,
    interaction_id TEXT NOT NULL REFERENCES interactions(id),
    direction TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    at BIGINT NOT NULL,
    PRIMARY KEY (account, external_id)
)";

/// A queue's interactions by when they joined it (service level).
const QUEUE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS interactions_queue ON interactions(queue, offered_at)";

/// Survey answers (a chat's rating at its end...): one per interaction, for the KPIs.
const SURVEYS: &str = "CREATE TABLE IF NOT EXISTS survey_answers (
    interaction_id TEXT PRIMARY KEY REFERENCES interactions(id),
    customer_id BIGINT REFERENCES customers(id),
    conversation_id BIGINT REFERENCES conversations(id),
    channel TEXT NOT NULL,
    score BIGINT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    at BIGINT NOT NULL
)";

/// Survey questions sent on a messaging channel and waiting for the customer's
/// answer: the last one per (account, the customer's address), until it expires.
const SURVEY_ASKS: &str = "CREATE TABLE IF NOT EXISTS survey_asks (
    account TEXT NOT NULL,
    peer TEXT NOT NULL,
    interaction_id TEXT NOT NULL REFERENCES interactions(id),
    metric TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account, peer)
)";
const SURVEY_ASKS_EXPIRY: &str =
    "CREATE INDEX IF NOT EXISTS survey_asks_expiry ON survey_asks(expires_at)";

/// An interaction's own events are read by `interaction_id`.
const TIMELINE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS timeline_interaction ON timeline(interaction_id)";
/// A customer's interactions, newest first (history, sticky routing).
const CUSTOMER_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS interactions_customer ON interactions(customer_id, started_at)";

/// Consent given or withdrawn, as events (`privacy::ConsentEvent`): the current
/// consent per purpose and channel is kept in `consents` beside them, in the same
/// transaction.
macro_rules! consent_events_table {
    ($db:ident) => {
        log_table!(
            $db,
            "consent_events",
            "
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted BIGINT NOT NULL,
    source TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    actor TEXT NOT NULL DEFAULT '',
    at BIGINT NOT NULL
"
        )
    };
}
const CONSENT_EVENTS_SQLITE: &str = consent_events_table!(sqlite);
#[cfg(feature = "postgres")]
const CONSENT_EVENTS_PG: &str = consent_events_table!(pg);
const CONSENT_EVENTS_BY_CUSTOMER: &str =
    "CREATE INDEX IF NOT EXISTS consent_events_customer ON consent_events(customer_id, id)";
/// Erasures of customers: asked, previewed (counts per kind of data), run, and the
/// proof. Pseudonymised: the customer's id only, whose row keeps no personal field
/// once erased; no reference, so the record outlives what it speaks of.
macro_rules! erasures_table {
    ($db:ident) => {
        log_table!(
            $db,
            "erasures",
            "
    customer_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    executed_by TEXT NOT NULL DEFAULT '',
    executed_at BIGINT,
    completed_at BIGINT,
    preview TEXT NOT NULL DEFAULT '{}',
    proof TEXT NOT NULL DEFAULT '{}'
"
        )
    };
}
const ERASURES_SQLITE: &str = erasures_table!(sqlite);
#[cfg(feature = "postgres")]
const ERASURES_PG: &str = erasures_table!(pg);
/// What an erasure leaves of an identity or a Message-ID: its keyed hash
/// (`privacy::tombstone`), so the same address or message is recognised, never read;
/// from a customer's erasure, or none (a case's mail erased alone).
const TOMBSTONES: &str = "CREATE TABLE IF NOT EXISTS tombstones (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    erasure_id BIGINT,
    at BIGINT NOT NULL
)";
/// Which webhook receivers were sent a customer's data (told of their erasure).
const WEBHOOK_DELIVERIES: &str = "CREATE TABLE IF NOT EXISTS webhook_deliveries (
    url TEXT NOT NULL,
    customer_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, url)
)";

/// Mail of an erased customer still to delete from the mail server: the fetcher of
/// `mailbox` deletes each Message-ID from its folders, then the row.
const MAIL_PURGES: &str = "CREATE TABLE IF NOT EXISTS mail_purges (
    mailbox TEXT NOT NULL,
    message_id TEXT NOT NULL,
    erasure_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (mailbox, message_id)
)";
/// A legal hold on a case (since when, by whom): retention leaves its data alone.
const LEGAL_HOLD_AT: &str = "ALTER TABLE conversations ADD COLUMN legal_hold_at BIGINT";
const LEGAL_HOLD_BY: &str =
    "ALTER TABLE conversations ADD COLUMN legal_hold_by TEXT NOT NULL DEFAULT ''";

/// Customers' requests under data-protection law (access, rectification, erasure,
/// objection, portability): when received, when the answer is due, when and how it
/// was answered.
macro_rules! requests_table {
    ($db:ident) => {
        log_table!(
            $db,
            "privacy_requests",
            "
    customer_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    answered_at BIGINT,
    answered_by TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT ''
"
        )
    };
}
const REQUESTS_SQLITE: &str = requests_table!(sqlite);
#[cfg(feature = "postgres")]
const REQUESTS_PG: &str = requests_table!(pg);
const REQUESTS_DUE: &str =
    "CREATE INDEX IF NOT EXISTS privacy_requests_due ON privacy_requests(answered_at, due_at)";

/// Where each identity came from (`source`: the channel of the interaction that
/// brought it, `agent`, `api`, `demo`; empty for those from before version 19).
const IDENTITY_SOURCE: &str = "ALTER TABLE identities ADD COLUMN source TEXT NOT NULL DEFAULT ''";
const IDENTITY_INTERACTION: &str = "ALTER TABLE identities ADD COLUMN interaction_id TEXT";
const IDENTITY_ACTOR: &str = "ALTER TABLE identities ADD COLUMN actor TEXT NOT NULL DEFAULT ''";
/// Where each customer field's value came from, and when it was set.
const CUSTOMER_FIELDS: &str = "CREATE TABLE IF NOT EXISTS customer_fields (
    customer_id BIGINT NOT NULL,
    field TEXT NOT NULL,
    source TEXT NOT NULL,
    interaction_id TEXT,
    actor TEXT NOT NULL DEFAULT '',
    at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, field)
)";

/// Which webhook receivers were sent an interaction's screen-pop (its caller's number,
/// a web chat's name, address and words before anyone verified them): the receivers
/// of the customer those interactions turn out to be are told of their erasure.
const WEBHOOK_POPS: &str = "CREATE TABLE IF NOT EXISTS webhook_pops (
    url TEXT NOT NULL,
    interaction_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (interaction_id, url)
)";

pub const SCHEMA_VERSION: i64 = 20;

/// The same schema for PostgreSQL, which omnigate supports from version 3: a new
/// database gets version 3 at once. Integers are BIGINT (Rust `i64` on both sides);
/// `interactions.rowid` stands in for SQLite's implicit rowid (insertion order).
#[cfg(feature = "postgres")]
pub(super) const PG_MIGRATIONS: &[(i64, &[&str])] = &[
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
    (5, &[SURVEYS, QUEUE_INDEX]),
    (6, &[CHANNEL_MESSAGES]),
    (7, &[NOTIFICATIONS]),
    (8, &[CHANNEL_ACCOUNTS]),
    (9, &[CHAT_SESSIONS]),
    (10, &[EMAILS_PG, EMAILS_BY_ID, EMAILS_BY_INTERACTION, EMAILS_BY_CASE, MAIL_MARKS, NODE_KEYS, MAILBOX_ACCOUNTS]),
    (11, &[SUPERVISORS, AUDIT_LOG_PG, AUDIT_LOG_AT]),
    (
        12,
        &[
            KPI_PACKS_PG,
            KPI_STALE_PG,
            KPI_STALE_BY_INTERACTION,
            KPI_ALL_STALE,
            "CREATE FUNCTION kpi_timeline_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.interaction_id IS NOT NULL THEN
        INSERT INTO kpi_stale (interaction_id) VALUES (OLD.interaction_id);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.interaction_id IS NOT NULL
        AND (TG_OP = 'INSERT' OR NEW.interaction_id IS DISTINCT FROM OLD.interaction_id) THEN
        INSERT INTO kpi_stale (interaction_id) VALUES (NEW.interaction_id);
    END IF;
    RETURN NULL;
END $$",
            "CREATE TRIGGER kpi_timeline AFTER INSERT OR UPDATE OR DELETE ON timeline FOR EACH ROW EXECUTE FUNCTION kpi_timeline_changed()",
            "CREATE FUNCTION kpi_interaction_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO kpi_stale (interaction_id, started_at) VALUES (OLD.id, OLD.started_at);
    ELSE
        INSERT INTO kpi_stale (interaction_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END $$",
            concat!("CREATE TRIGGER kpi_interaction AFTER INSERT OR DELETE OR UPDATE OF ", kpi_columns!(), " ON interactions FOR EACH ROW EXECUTE FUNCTION kpi_interaction_changed()"),
        ],
    ),
    (13, &[AGENT_ACTIVITY_PG, AGENT_ACTIVITY_BY_AGENT, AGENT_ACTIVITY_AT]),
    (14, &[SURVEY_ASKS, SURVEY_ASKS_EXPIRY]),
    (
        15,
        &[
            ACTIVITY_PACKS_PG,
            ACTIVITY_PACKED,
            concat!("CREATE FUNCTION activity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE t BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN t := OLD.at; ELSE t := NEW.at; END IF;
    t := ", quarter_start!("t"), ";
    UPDATE activity_packed SET until = t WHERE until > t;
    RETURN NULL;
END $$"),
            "CREATE TRIGGER activity_changed AFTER INSERT OR DELETE ON agent_activity FOR EACH ROW EXECUTE FUNCTION activity_changed()",
        ],
    ),
    (
        16,
        &[
            CONSENT_EVENTS_PG,
            CONSENT_EVENTS_BY_CUSTOMER,
            "INSERT INTO consent_events (customer_id, purpose, channel, granted, source, evidence, actor, at)
                SELECT customer_id, split_part(kind, ':', 1), COALESCE(NULLIF(split_part(kind, ':', 2), ''), 'any'),
                    granted, 'import', '{}', 'migration', at
                FROM consents ORDER BY at",
            "UPDATE consents SET kind = kind || ':any' WHERE strpos(kind, ':') = 0",
            "ALTER TABLE customers ADD COLUMN erased_at BIGINT",
            ERASURES_PG,
            TOMBSTONES,
            WEBHOOK_DELIVERIES,
        ],
    ),
    (17, &[MAIL_PURGES, LEGAL_HOLD_AT, LEGAL_HOLD_BY]),
    (18, &[REQUESTS_PG, REQUESTS_DUE]),
    (19, &[IDENTITY_SOURCE, IDENTITY_INTERACTION, IDENTITY_ACTOR, CUSTOMER_FIELDS]),
    (20, &[WEBHOOK_POPS]),
];

impl Store {
    /// The schema version of the open database.
    pub async fn version(&self) -> Result<i64, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ))
        .fetch_one(pool)
        .await?
        .get(0)))
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        const TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
        with_db!(self, |pool, sql| {
            let (list, lock) = match self.db {
                Db::Sqlite(_) => (MIGRATIONS, None::<&str>),
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
}
