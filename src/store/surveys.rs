//! Survey answers: what a customer said of an interaction (a chat's rating at its
//! end), one per interaction, on their case for the KPIs.

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyAnswer {
    pub channel: String,
    /// 1 (bad) to 5 (very good).
    pub score: i64,
    pub comment: String,
    /// When (Unix ms).
    pub at: i64,
}

impl Store {
    /// Keeps the answer for `interaction` (with its customer and case); `false` if it
    /// already has one or there is no such interaction. Its case's timeline says so.
    pub async fn add_survey_answer(
        &self,
        interaction: &str,
        channel: &str,
        score: i64,
        comment: &str,
    ) -> Result<bool, StoreError> {
        let at = now();
        let added = with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO survey_answers (interaction_id, customer_id, conversation_id, channel, score, comment, at) SELECT id, customer_id, conversation_id, ?, ?, ?, ? FROM interactions WHERE id = ? ON CONFLICT DO NOTHING"))
                .bind(channel)
                .bind(score)
                .bind(comment)
                .bind(at)
                .bind(interaction)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1;
        if added {
            self.add_timeline(
                interaction,
                "rated",
                serde_json::json!({"score": score, "comment": comment}),
            )
            .await?;
        }
        Ok(added)
    }

    /// A further answer of the same survey (`nps` 0-10, `ces` 1-7), on the timeline as
    /// `rated` with its metric, where the KPIs read it (the kept answer is the CSAT).
    pub async fn add_survey_score(
        &self,
        interaction: &str,
        metric: &str,
        score: i64,
    ) -> Result<(), StoreError> {
        self.add_timeline(
            interaction,
            "rated",
            serde_json::json!({"metric": metric, "score": score}),
        )
        .await
        .map(|_| ())
    }

    /// The answer given for `interaction`, if any.
    pub async fn survey_answer(
        &self,
        interaction: &str,
    ) -> Result<Option<SurveyAnswer>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT channel, score, comment, at FROM survey_answers WHERE interaction_id = ?"
        ))
        .bind(interaction)
        .fetch_optional(pool)
        .await?
        .map(|r| SurveyAnswer {
            channel: r.get(0),
            score: r.get(1),
            comment: r.get(2),
            at: r.get(3),
        })))
    }
}
