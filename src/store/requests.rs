//! Customers' data-protection requests as stored (`crate::privacy::requests` decides
//! what one may say and where it stands).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use crate::privacy::requests::NewRequest;
use sqlx::Row;

/// A request as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: i64,
    pub customer: i64,
    pub kind: String,
    pub received_at: i64,
    pub due_at: i64,
    pub recorded_by: String,
    pub note: String,
    pub answered_at: Option<i64>,
    pub answered_by: String,
    pub answer: String,
}

/// A request's columns, in [`RowLike::request`]'s order.
macro_rules! request_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, customer_id, kind, received_at, due_at, recorded_by, note, answered_at, answered_by, answer FROM privacy_requests",
            $rest
        )
    };
}

/// Both backends' rows read the same way.
trait RowLike {
    fn request(&self) -> RequestRow;
}

macro_rules! row_like {
    ($t:ty) => {
        impl RowLike for $t {
            fn request(&self) -> RequestRow {
                RequestRow {
                    id: self.get(0),
                    customer: self.get(1),
                    kind: self.get(2),
                    received_at: self.get(3),
                    due_at: self.get(4),
                    recorded_by: self.get(5),
                    note: self.get(6),
                    answered_at: self.get(7),
                    answered_by: self.get(8),
                    answer: self.get(9),
                }
            }
        }
    };
}
row_like!(sqlx::sqlite::SqliteRow);
#[cfg(feature = "postgres")]
row_like!(sqlx::postgres::PgRow);

impl Store {
    /// Records a request received (by `who`); its id.
    pub async fn add_request(&self, r: &NewRequest, who: &str) -> Result<i64, StoreError> {
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql("INSERT INTO privacy_requests (customer_id, kind, received_at, due_at, recorded_by, note) VALUES (?, ?, ?, ?, ?, ?) RETURNING id"))
                .bind(r.customer)
                .bind(r.kind)
                .bind(r.received_at)
                .bind(r.due_at())
                .bind(who)
                .bind(&r.note)
                .fetch_one(pool)
                .await?
                .get(0))
        })
    }

    pub async fn request(&self, id: i64) -> Result<Option<RequestRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(request_select!(" WHERE id = ?")))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| r.request())
        }))
    }

    /// Requests, the soonest due first: the unanswered ones only (`open`), or all;
    /// at most `limit`.
    pub async fn requests(&self, open: bool, limit: i64) -> Result<Vec<RequestRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(request_select!(
                " WHERE (? = 0 OR answered_at IS NULL) ORDER BY due_at, id LIMIT ?"
            )))
            .bind(i64::from(open))
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(RowLike::request)
            .collect()
        }))
    }

    /// Answers request `id` (if it is unanswered): whether it did.
    pub async fn answer_request(
        &self,
        id: i64,
        who: &str,
        answer: &str,
    ) -> Result<bool, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql("UPDATE privacy_requests SET answered_at = ?, answered_by = ?, answer = ? WHERE id = ? AND answered_at IS NULL"))
                .bind(now())
                .bind(who)
                .bind(answer)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Answers a customer's unanswered requests of `kinds` (an export answers access
    /// and portability, an erasure erasure): how many.
    pub async fn answer_requests_of(
        &self,
        customer: i64,
        kinds: &[&str],
        who: &str,
        answer: &str,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for kind in kinds {
            n += with_db!(self, |pool, sql| {
                sqlx::query(sql("UPDATE privacy_requests SET answered_at = ?, answered_by = ?, answer = ? WHERE customer_id = ? AND kind = ? AND answered_at IS NULL"))
                    .bind(now())
                    .bind(who)
                    .bind(answer)
                    .bind(customer)
                    .bind(*kind)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(n)
    }
}
