//! Messages through a provider, by the provider's id: an inbound message delivered
//! twice (a webhook retried) is found and counted once, across restarts; an outbound
//! one's delivery status moves only forward (see [`crate::channels::advances`]).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// One provider message on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMessage {
    pub interaction: String,
    /// `in` or `out`.
    pub direction: String,
    /// Its number in the thread.
    pub seq: i64,
    /// `received` (in); `sent`, `delivered`, `read`, `failed` (out).
    pub status: String,
    pub error: String,
}

/// Which accounts made through the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    Channel,
    Mailbox,
}

impl Store {
    /// The message `external_id` of `account`, if on record.
    pub async fn channel_message(
        &self,
        account: &str,
        external_id: &str,
    ) -> Result<Option<ChannelMessage>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "SELECT interaction_id, direction, seq, status, error FROM channel_messages WHERE account = ? AND external_id = ?"
        ))
        .bind(account)
        .bind(external_id)
        .fetch_optional(pool)
        .await?
        .map(|r| ChannelMessage {
            interaction: r.get(0),
            direction: r.get(1),
            seq: r.get(2),
            status: r.get(3),
            error: r.get(4),
        })
        }))
    }

    /// Records a provider message (the thread stored it as `seq`); `false` if it was
    /// on record already.
    pub async fn add_channel_message(
        &self,
        account: &str,
        external_id: &str,
        interaction: &str,
        direction: &str,
        seq: i64,
        status: &str,
    ) -> Result<bool, StoreError> {
        let at = now();
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "INSERT INTO channel_messages (account, external_id, interaction_id, direction, seq, status, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ))
        .bind(account)
        .bind(external_id)
        .bind(interaction)
        .bind(direction)
        .bind(seq)
        .bind(status)
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected()
        }) == 1)
    }

    /// Claims a notification's `Idempotency-Key` for the request of `digest`:
    /// `Ok(None)` claimed (the caller sends it and records the answer); `Ok(Some((digest,
    /// answer)))` the key was used already (the answer is empty while that request is
    /// still being handled). A claim left unanswered for `stale_ms` (its node died
    /// mid-way) is taken over.
    pub async fn claim_notification(
        &self,
        key: &str,
        digest: &str,
        stale_ms: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let taken_over = with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "UPDATE notifications SET digest = ?, at = ? WHERE idem_key = ? AND answer = '' AND at <= ?",
            ))
            .bind(digest)
            .bind(now())
            .bind(key)
            .bind(now() - stale_ms)
            .execute(pool)
            .await?
            .rows_affected()
        }) == 1;
        if taken_over {
            return Ok(None);
        }
        let claimed = with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "INSERT INTO notifications (idem_key, digest, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            ))
            .bind(key)
            .bind(digest)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        }) == 1;
        if claimed {
            return Ok(None);
        }
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT digest, answer FROM notifications WHERE idem_key = ?",
            ))
            .bind(key)
            .fetch_optional(pool)
            .await?
            .map(|r| (r.get(0), r.get(1)))
        }))
    }

    /// The answer to a notification's request, kept for a repeat of its key.
    pub async fn answer_notification(&self, key: &str, answer: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "UPDATE notifications SET answer = ? WHERE idem_key = ?",
            ))
            .bind(answer)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// A claimed key whose request failed before it was answered: free again.
    pub async fn release_notification(&self, key: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "DELETE FROM notifications WHERE idem_key = ? AND answer = ''",
            ))
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// The numbers of an interaction's messages a provider took (or, for an open
    /// channel, that were handed to it): the agent's others are still to send.
    pub async fn sent_seqs(&self, interaction: &str) -> Result<Vec<i64>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT seq FROM channel_messages WHERE interaction_id = ? AND direction = 'out'"
        ))
        .bind(interaction)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect()))
    }

    /// Adds or replaces an account made through the admin API (`Accounts::Channel`:
    /// a `[[channel]]`; `Accounts::Mailbox`: a `[[mailbox]]`), as the config spells it.
    pub async fn put_account(
        &self,
        table: Accounts,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql(match table {
                Accounts::Channel => "INSERT INTO channel_accounts (name, spec, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                Accounts::Mailbox => "INSERT INTO mailbox_accounts (name, spec, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
            }))
            .bind(name)
            .bind(spec.to_string())
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Removes one; whether it was there.
    pub async fn delete_account(&self, table: Accounts, name: &str) -> Result<bool, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(match table {
                Accounts::Channel => "DELETE FROM channel_accounts WHERE name = ?",
                Accounts::Mailbox => "DELETE FROM mailbox_accounts WHERE name = ?",
            }))
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
        }) == 1)
    }

    /// The accounts added through the admin API: (name, spec), by name.
    pub async fn accounts(
        &self,
        table: Accounts,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(match table {
            Accounts::Channel => "SELECT name, spec FROM channel_accounts ORDER BY name",
            Accounts::Mailbox => "SELECT name, spec FROM mailbox_accounts ORDER BY name",
        }))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| (
            r.get(0),
            serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default()
        ))
        .collect()))
    }

    /// When `customer` last wrote through `account` (Unix ms), if ever: where a
    /// WhatsApp reply window stands for a message an agent starts.
    pub async fn last_inbound(
        &self,
        account: &str,
        customer: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT MAX(m.at) FROM channel_messages m JOIN interactions i ON i.id = m.interaction_id WHERE m.account = ? AND m.direction = 'in' AND i.customer_id = ?"
            ))
            .bind(account)
            .bind(customer)
            .fetch_one(pool)
            .await?
            .get::<Option<i64>, _>(0)
        }))
    }

    /// A provider's status for one of our messages: kept if it moves the message
    /// forward. Returns the message as it is now (`None`: not ours or not on record)
    /// and whether it changed.
    pub async fn set_channel_status(
        &self,
        account: &str,
        external_id: &str,
        status: &str,
        error: &str,
    ) -> Result<Option<(ChannelMessage, bool)>, StoreError> {
        // Conditional on the status read, so two updates racing keep the order; one
        // that lost the race reads again (a `delivered` racing our own `sent` must
        // still land). Each round some update won, and statuses only move forward.
        loop {
            let Some(mut m) = self.channel_message(account, external_id).await? else {
                return Ok(None);
            };
            if m.direction != "out" || !crate::channels::advances(&m.status, status) {
                return Ok(Some((m, false)));
            }
            let old = m.status.clone();
            let changed = with_db!(self, |pool, sql| {
                sqlx::query(sql(
                "UPDATE channel_messages SET status = ?, error = ?, at = ? WHERE account = ? AND external_id = ? AND status = ?"
            ))
            .bind(status)
            .bind(error)
            .bind(now())
            .bind(account)
            .bind(external_id)
            .bind(&old)
            .execute(pool)
            .await?
            .rows_affected()
            }) == 1;
            if changed {
                m.status = status.to_string();
                m.error = error.to_string();
                return Ok(Some((m, true)));
            }
        }
    }
}
