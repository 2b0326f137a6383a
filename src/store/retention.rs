//! Retention as stored (`crate::privacy::retention` decides the cutoffs): what has
//! expired is emptied in one transaction, except on a case under a legal hold, and
//! the files to delete are returned to the centre.

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use crate::privacy::retention::Cutoffs;
use sqlx::Row;

/// What a retention run took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Recording files to delete (their interactions no longer name them).
    pub recordings: Vec<String>,
    /// Voicemail files to delete (their events no longer name them).
    pub voicemails: Vec<String>,
    /// Timeline messages whose content was replaced by a marker.
    pub messages: u64,
    /// Mail sources removed.
    pub raw_mails: u64,
    /// The bot's hand-off summaries cut to their reason and intent.
    pub bot_logs: u64,
}

/// A kind of timeline event from before a time, not on a held case (by its case or
/// its interaction's), not cut already (by an erasure or an earlier run).
const EXPIRED_EVENTS: &str = concat!(
    "SELECT id, data FROM timeline WHERE kind = ? AND at < ?",
    " AND (conversation_id IS NULL OR conversation_id NOT IN (SELECT id FROM conversations WHERE legal_hold_at IS NOT NULL))",
    " AND (interaction_id IS NULL OR interaction_id NOT IN (SELECT i.id FROM interactions i JOIN conversations c ON c.id = i.conversation_id WHERE c.legal_hold_at IS NOT NULL))",
    " AND data NOT LIKE '%\"expired\":true%' AND data NOT LIKE '%\"erased\":true%'",
    " ORDER BY id"
);

impl Store {
    /// Puts a legal hold on a case (`Some(who)`) or lifts it (`None`): whether the
    /// case exists.
    pub async fn set_legal_hold(&self, case: i64, who: Option<&str>) -> Result<bool, StoreError> {
        let (at, by) = match who {
            Some(w) => (Some(now()), w),
            None => (None, ""),
        };
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "UPDATE conversations SET legal_hold_at = ?, legal_hold_by = ? WHERE id = ?",
            ))
            .bind(at)
            .bind(by)
            .bind(case)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// A case's legal hold: (since, by whom), if it has one.
    pub async fn legal_hold(&self, case: i64) -> Result<Option<(i64, String)>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT legal_hold_at, legal_hold_by FROM conversations WHERE id = ? AND legal_hold_at IS NOT NULL",
            ))
            .bind(case)
            .fetch_optional(pool)
            .await?
            .map(|r| (r.get(0), r.get(1)))
        }))
    }

    /// Empties what has expired by `cut`, in one transaction: recordings' and
    /// voicemails' names (the files are the caller's to delete), messages' content
    /// (cut to what the KPIs read, marked `expired`), mail sources. Nothing on a case
    /// under a legal hold is touched.
    pub async fn apply_retention(&self, cut: &Cutoffs) -> Result<Expired, StoreError> {
        let mut out = Expired::default();
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin_with(self.write_begin()).await?;
            if let Some(before) = cut.recordings {
                let rows = sqlx::query(sql("SELECT id, recording FROM interactions WHERE recording IS NOT NULL AND started_at < ? AND (conversation_id IS NULL OR conversation_id NOT IN (SELECT id FROM conversations WHERE legal_hold_at IS NOT NULL)) ORDER BY started_at"))
                    .bind(before)
                    .fetch_all(&mut *tx)
                    .await?;
                for r in rows {
                    sqlx::query(sql("UPDATE interactions SET recording = NULL WHERE id = ?"))
                        .bind(r.get::<String, _>(0))
                        .execute(&mut *tx)
                        .await?;
                    out.recordings.push(r.get(1));
                }
            }
            for (kind, before) in [
                ("voicemail", cut.voicemail),
                ("message", cut.messages),
                ("bot ended", cut.bot_logs),
            ] {
                let Some(before) = before else { continue };
                let rows = sqlx::query(sql(EXPIRED_EVENTS))
                    .bind(kind)
                    .bind(before)
                    .fetch_all(&mut *tx)
                    .await?;
                for r in rows {
                    let data: serde_json::Value =
                        serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
                    sqlx::query(sql("UPDATE timeline SET data = ? WHERE id = ?"))
                        .bind(crate::privacy::expire(&data).to_string())
                        .bind(r.get::<i64, _>(0))
                        .execute(&mut *tx)
                        .await?;
                    if kind == "message" {
                        out.messages += 1;
                    } else if kind == "bot ended" {
                        out.bot_logs += 1;
                    } else if let Some(p) = data["path"].as_str() {
                        out.voicemails.push(p.to_string());
                    }
                }
            }
            if let Some(before) = cut.raw_mail {
                out.raw_mails = sqlx::query(sql("UPDATE emails SET raw = NULL WHERE raw IS NOT NULL AND at < ? AND (conversation_id IS NULL OR conversation_id NOT IN (SELECT id FROM conversations WHERE legal_hold_at IS NOT NULL))"))
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(out)
    }
}
