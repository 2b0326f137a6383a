//! Conversations: a customer's case, open across channels until resolved (one open
//! case per customer at most).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

impl Store {
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

    /// The case of a customer just created (who has none): opened in one statement
    /// (or found, should another contact have opened it meanwhile).
    pub(super) async fn open_first_conversation(&self, customer: i64) -> Result<i64, StoreError> {
        let opened: Option<i64> = with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO conversations (customer_id, status, opened_at) VALUES (?, 'open', ?) ON CONFLICT DO NOTHING RETURNING id"))
            .bind(customer)
            .bind(now())
            .fetch_optional(pool)
            .await?
            .map(|r| r.get(0))
        });
        match opened {
            Some(id) => Ok(id),
            None => self.open_conversation(customer).await,
        }
    }

    pub(super) async fn find_open(&self, customer: i64) -> Result<Option<i64>, StoreError> {
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
}
