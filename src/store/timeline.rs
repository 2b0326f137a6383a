//! The timeline: events written for an interaction (messages, voicemails, notes,
//! wrap-ups, ends) merged with the start and queueing read from its own row.

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// (interaction, kind, data JSON, at) for one interaction: its start and queue from its
/// row, then the written events (its end among them), in time order.
pub(super) const TIMELINE: &str = "SELECT id, 'interaction started', CAST(json_object('kind', kind, 'from', caller, 'dialled', dialled) AS TEXT), started_at AS at, 0 AS o, 0 AS n FROM interactions WHERE id = ?
    UNION ALL SELECT id, 'queued', CAST(json_object('queue', queue) AS TEXT), offered_at, 1, 0 FROM interactions WHERE id = ? AND offered_at IS NOT NULL
    UNION ALL SELECT interaction_id, kind, data, at, 2, id FROM timeline WHERE interaction_id = ?
    ORDER BY at, o, n";

/// The same over every interaction of a conversation.
const CONVERSATION_TIMELINE: &str = "SELECT id, 'interaction started', CAST(json_object('kind', kind, 'from', caller, 'dialled', dialled) AS TEXT), started_at AS at, 0 AS o, 0 AS n FROM interactions WHERE conversation_id = ?
    UNION ALL SELECT id, 'queued', CAST(json_object('queue', queue) AS TEXT), offered_at, 1, 0 FROM interactions WHERE conversation_id = ? AND offered_at IS NOT NULL
    UNION ALL SELECT COALESCE(interaction_id, ''), kind, data, at, 2, id FROM timeline WHERE conversation_id = ?
    ORDER BY at, o, n";

/// One event on a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    /// The interaction it belongs to (empty for a conversation's own events).
    pub interaction: String,
    /// What happened: `interaction started`, `queued`, `message`, `assigned`...
    pub kind: String,
    /// Its details (JSON).
    pub data: serde_json::Value,
    /// When (Unix ms).
    pub at: i64,
}

/// Timeline rows (interaction, kind, data JSON) of either database.
macro_rules! events {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|r| TimelineEvent {
                interaction: r.get::<String, _>(0),
                kind: r.get::<String, _>(1),
                data: serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
                at: r.try_get::<i64, _>(3).unwrap_or_default(),
            })
            .collect::<Vec<TimelineEvent>>()
    };
}

impl Store {
    /// Adds an event (a voicemail, a note...) to an interaction's timeline.
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
    pub async fn timeline(&self, interaction: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        Ok(with_db!(self, |pool, sql| events!(
            sqlx::query(sql(TIMELINE))
                .bind(interaction)
                .bind(interaction)
                .bind(interaction)
                .fetch_all(pool)
                .await?
        )))
    }

    /// A conversation's events across all its interactions, oldest first.
    pub async fn conversation_timeline(
        &self,
        conversation: i64,
    ) -> Result<Vec<TimelineEvent>, StoreError> {
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
}
