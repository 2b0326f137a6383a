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
        comment: &str,
    ) -> Result<(), StoreError> {
        let mut data = serde_json::json!({"metric": metric, "score": score});
        if !comment.is_empty() {
            data["comment"] = comment.into();
        }
        self.add_timeline(interaction, "rated", data)
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

    /// A survey question went (or is going) to `peer` on `account` for `interaction`:
    /// the customer's next message there is read as its answer until `expires_at`
    /// (Unix ms). One per (account, peer): a newer question replaces an older one.
    /// Expired questions are cleared on the way.
    pub async fn ask_survey(
        &self,
        account: &str,
        peer: &str,
        interaction: &str,
        metric: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, |pool, sql| {
            sqlx::query(sql("DELETE FROM survey_asks WHERE expires_at <= ?"))
                .bind(at)
                .execute(pool)
                .await?;
            sqlx::query(sql("INSERT INTO survey_asks (account, peer, interaction_id, metric, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, peer) DO UPDATE SET interaction_id = excluded.interaction_id, metric = excluded.metric, expires_at = excluded.expires_at"))
                .bind(account)
                .bind(peer)
                .bind(interaction)
                .bind(metric)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The question waiting for `peer`'s answer on `account`, taken (whatever the
    /// customer says next, it waits no more): (interaction, metric), or `None` if
    /// there is none or it expired.
    pub async fn take_survey_ask(
        &self,
        account: &str,
        peer: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let at = now();
        let row = with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "DELETE FROM survey_asks WHERE account = ? AND peer = ? RETURNING interaction_id, metric, expires_at"
        ))
        .bind(account)
        .bind(peer)
        .fetch_optional(pool)
        .await?
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<i64, _>(2)))
        });
        Ok(row.filter(|r| r.2 > at).map(|(i, m, _)| (i, m)))
    }

    /// `interaction`'s question to `peer` waits no more (it could not be sent); a
    /// newer question there stays.
    pub async fn forget_survey_ask(
        &self,
        account: &str,
        peer: &str,
        interaction: &str,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "DELETE FROM survey_asks WHERE account = ? AND peer = ? AND interaction_id = ?"
        ))
        .bind(account)
        .bind(peer)
        .bind(interaction)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// One answer of a survey's `metric` for `interaction`: a CSAT is its survey
    /// answer (given on `channel`, see [`Store::add_survey_answer`]); an NPS or CES a
    /// `rated` event (see [`Store::add_survey_score`]).
    pub async fn add_survey_of(
        &self,
        interaction: &str,
        channel: &str,
        metric: crate::kpi::Metric,
        score: i64,
        comment: &str,
    ) -> Result<(), StoreError> {
        if metric == crate::kpi::Metric::Csat {
            self.add_survey_answer(interaction, channel, score, comment)
                .await
                .map(|_| ())
        } else {
            self.add_survey_score(interaction, metric.name(), score, comment)
                .await
        }
    }
}
