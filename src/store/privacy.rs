//! Consent events, erasures and tombstones (`crate::privacy` decides what they mean).
//!
//! An erasure runs in one transaction: every place a customer's personal data is held
//! in the database is emptied or removed, what the KPIs read is kept, and each identity
//! and Message-ID leaves a keyed hash (a tombstone). Files (recordings, voicemails) and
//! the mail server's copies are the centre's to delete with the lists it returns.

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use crate::privacy::{scrub, tombstone, ConsentEvent, ErasureStatus};
use sqlx::Row;

/// A consent event as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConsentRow {
    pub id: i64,
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub source: String,
    pub evidence: serde_json::Value,
    pub actor: String,
    /// Unix ms.
    pub at: i64,
}

/// Everything held of one customer, by kind: what an erasure removes and an access
/// request exports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// (kind, value).
    pub identities: Vec<(String, String)>,
    pub conversations: Vec<i64>,
    pub interactions: Vec<String>,
    /// Messages on their timelines (chat, WhatsApp, SMS, e-mail threads).
    pub messages: u64,
    /// (mailbox, Message-ID) of each e-mail on record.
    pub mails: Vec<(String, String)>,
    /// Recording files.
    pub recordings: Vec<String>,
    /// Voicemail files.
    pub voicemails: Vec<String>,
    pub survey_answers: u64,
    pub consents: u64,
    /// Webhook receivers that were sent their data (a record or a screen-pop).
    pub webhooks: Vec<String>,
    /// (receiver, interaction) of each screen-pop sent of their interactions.
    pub pops: Vec<(String, String)>,
}

/// An erasure as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ErasureRow {
    pub id: i64,
    pub customer: i64,
    pub status: ErasureStatus,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub executed_by: String,
    pub executed_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub preview: serde_json::Value,
    pub proof: serde_json::Value,
}

/// The tombstone key's name among the node keys.
const TOMBSTONE_KEY: &str = "tombstones";

/// The ids of a customer's interactions: theirs, their cases', and the unverified
/// ones (a web chat's typed address) from one of their identities. `?` three times,
/// the customer's id each.
macro_rules! interactions_of {
    () => {
        "SELECT id FROM interactions WHERE customer_id = ? OR conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?) OR (customer_id IS NULL AND lower(caller) IN (SELECT value FROM identities WHERE customer_id = ?))"
    };
}

/// The rows of `$table` whose `interaction_id` is one of a customer's
/// ([`interactions_of!`]).
macro_rules! of_customer {
    ($table:literal) => {
        concat!(
            " FROM ",
            $table,
            " WHERE interaction_id IN (",
            interactions_of!(),
            ")"
        )
    };
}

impl Store {
    /// Records a consent event and makes it the customer's current consent for its
    /// purpose and channel, in one transaction; the event's id.
    pub async fn record_consent(&self, customer: i64, e: &ConsentEvent) -> Result<i64, StoreError> {
        let kind = e.kind();
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin_with(self.write_begin()).await?;
            // Each event later than the one before (in the same millisecond too), so
            // which of a channel's and `any`'s is in force is never a tie.
            let last: i64 = sqlx::query(sql(
                "SELECT COALESCE(MAX(at), 0) FROM consent_events WHERE customer_id = ?",
            ))
            .bind(customer)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            let at = now().max(last + 1);
            let id: i64 = sqlx::query(sql("INSERT INTO consent_events (customer_id, purpose, channel, granted, source, evidence, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"))
                .bind(customer)
                .bind(e.purpose.name())
                .bind(&e.channel)
                .bind(e.granted as i64)
                .bind(&e.source)
                .bind(e.evidence.to_string())
                .bind(&e.actor)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
            sqlx::query(sql("INSERT INTO consents (customer_id, kind, granted, at) VALUES (?, ?, ?, ?) ON CONFLICT (customer_id, kind) DO UPDATE SET granted = excluded.granted, at = excluded.at"))
                .bind(customer)
                .bind(&kind)
                .bind(e.granted as i64)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Whether the customer withdrew their consent to calls being recorded (for voice
    /// or every channel, whichever they said last).
    pub async fn recording_withdrawn(&self, customer: i64) -> Result<bool, StoreError> {
        let current = self.consents(customer).await?;
        Ok(crate::privacy::withdrawn(
            &current,
            crate::privacy::Purpose::Recording,
            "voice",
        ))
    }

    /// A consent event said during an interaction (the IVR's recording notice), kept
    /// for the interaction's customer; an anonymous caller has none to keep it for.
    pub async fn record_interaction_consent(
        &self,
        interaction: &str,
        e: &ConsentEvent,
    ) -> Result<(), StoreError> {
        let customer: Option<i64> = with_db!(self, |pool, sql| {
            sqlx::query(sql("SELECT customer_id FROM interactions WHERE id = ?"))
                .bind(interaction)
                .fetch_optional(pool)
                .await?
                .and_then(|r| r.get(0))
        });
        match customer {
            Some(c) => {
                self.record_consent(c, e).await?;
            }
            None => {
                tracing::info!(%interaction, "a consent of an anonymous caller: nobody to keep it for")
            }
        }
        Ok(())
    }

    /// A customer's consent events, oldest first.
    pub async fn consent_events(&self, customer: i64) -> Result<Vec<ConsentRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "SELECT id, purpose, channel, granted, source, evidence, actor, at FROM consent_events WHERE customer_id = ? ORDER BY id"
        ))
        .bind(customer)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| ConsentRow {
            id: r.get(0),
            purpose: r.get(1),
            channel: r.get(2),
            granted: r.get::<i64, _>(3) != 0,
            source: r.get(4),
            evidence: serde_json::from_str(&r.get::<String, _>(5)).unwrap_or_default(),
            actor: r.get(6),
            at: r.get(7),
        })
        .collect()
        }))
    }

    /// The key tombstones are hashed under (made once, shared by the nodes).
    pub(super) async fn tombstone_key(&self) -> Result<&[u8], StoreError> {
        Ok(self
            .tombstone_key
            .get_or_try_init(|| self.node_key(TOMBSTONE_KEY))
            .await?
            .as_slice())
    }

    /// Whether `value` of `kind` (`message-id`, `identity:phone`...) was erased.
    pub async fn tombstoned(&self, kind: &str, value: &str) -> Result<Option<i64>, StoreError> {
        let hash = tombstone(self.tombstone_key().await?, kind, value);
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT at FROM tombstones WHERE hash = ?"
        ))
        .bind(&hash)
        .fetch_optional(pool)
        .await?
        .map(|r| r.get(0))))
    }

    /// When the customer was erased (None: they were not, or there is no such
    /// customer).
    pub async fn customer_erased_at(&self, customer: i64) -> Result<Option<i64>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT erased_at FROM customers WHERE id = ?"
        ))
        .bind(customer)
        .fetch_optional(pool)
        .await?
        .and_then(|r| r.get::<Option<i64>, _>(0))))
    }

    /// Everything held of a customer (None: no such customer).
    pub async fn inventory(&self, customer: i64) -> Result<Option<Inventory>, StoreError> {
        if self.customer(customer).await?.is_none() {
            return Ok(None);
        }
        with_db!(self, |pool, sql| {
            let identities = sqlx::query(sql(
                "SELECT kind, value FROM identities WHERE customer_id = ? ORDER BY id",
            ))
            .bind(customer)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
            let mut inv = Inventory {
                identities,
                ..Default::default()
            };
            inv.conversations = sqlx::query(sql(
                "SELECT id FROM conversations WHERE customer_id = ? ORDER BY id",
            ))
            .bind(customer)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
            let ints = sqlx::query(sql(concat!(
                "SELECT id, recording FROM interactions WHERE id IN (",
                interactions_of!(),
                ") ORDER BY started_at, id"
            )))
            .bind(customer)
            .bind(customer)
            .bind(customer)
            .fetch_all(pool)
            .await?;
            for r in &ints {
                inv.interactions.push(r.get(0));
                if let Some(p) = r.get::<Option<String>, _>(1) {
                    inv.recordings.push(p);
                }
            }
            inv.messages = sqlx::query(sql(concat!(
                "SELECT COUNT(*)",
                of_customer!("timeline"),
                " AND kind = 'message'"
            )))
            .bind(customer)
            .bind(customer)
            .bind(customer)
            .fetch_one(pool)
            .await?
            .get::<i64, _>(0) as u64;
            for r in sqlx::query(sql(concat!(
                "SELECT data",
                of_customer!("timeline"),
                " AND kind = 'voicemail'"
            )))
            .bind(customer)
            .bind(customer)
            .bind(customer)
            .fetch_all(pool)
            .await?
            {
                let d: serde_json::Value =
                    serde_json::from_str(&r.get::<String, _>(0)).unwrap_or_default();
                if let Some(p) = d["path"].as_str() {
                    inv.voicemails.push(p.to_string());
                }
            }
            inv.mails = sqlx::query(sql(concat!("SELECT mailbox, message_id", of_customer!("emails"), " OR conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?) ORDER BY at, message_id")))
                .bind(customer)
                .bind(customer)
                .bind(customer)
                .bind(customer)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            inv.survey_answers = sqlx::query(sql(concat!(
                "SELECT COUNT(*)",
                of_customer!("survey_answers")
            )))
            .bind(customer)
            .bind(customer)
            .bind(customer)
            .fetch_one(pool)
            .await?
            .get::<i64, _>(0) as u64;
            inv.consents = sqlx::query(sql(
                "SELECT COUNT(*) FROM consent_events WHERE customer_id = ?",
            ))
            .bind(customer)
            .fetch_one(pool)
            .await?
            .get::<i64, _>(0) as u64;
            inv.webhooks = sqlx::query(sql(
                "SELECT url FROM webhook_deliveries WHERE customer_id = ? ORDER BY url",
            ))
            .bind(customer)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
            for i in &inv.interactions {
                let rows = sqlx::query(sql(
                    "SELECT url FROM webhook_pops WHERE interaction_id = ? ORDER BY url",
                ))
                .bind(i)
                .fetch_all(pool)
                .await?;
                inv.pops
                    .extend(rows.iter().map(|r| (r.get::<String, _>(0), i.clone())));
            }
            inv.webhooks.extend(inv.pops.iter().map(|(u, _)| u.clone()));
            inv.webhooks.sort();
            inv.webhooks.dedup();
            Ok(Some(inv))
        })
    }

    /// Notes that a webhook receiver was sent a customer's record and/or an
    /// interaction's screen-pop.
    pub async fn webhook_delivered(
        &self,
        url: &str,
        customer: Option<i64>,
        interaction: Option<&str>,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            if let Some(customer) = customer {
                sqlx::query(sql("INSERT INTO webhook_deliveries (url, customer_id, at) VALUES (?, ?, ?) ON CONFLICT (customer_id, url) DO UPDATE SET at = excluded.at"))
                    .bind(url)
                    .bind(customer)
                    .bind(now())
                    .execute(pool)
                    .await?;
            }
            if let Some(interaction) = interaction {
                sqlx::query(sql("INSERT INTO webhook_pops (url, interaction_id, at) VALUES (?, ?, ?) ON CONFLICT (interaction_id, url) DO UPDATE SET at = excluded.at"))
                    .bind(url)
                    .bind(interaction)
                    .bind(now())
                    .execute(pool)
                    .await?;
            }
        });
        Ok(())
    }

    /// Records an erasure asked for, with its preview; its id.
    pub async fn new_erasure(
        &self,
        customer: i64,
        requested_by: &str,
        preview: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql(
            "INSERT INTO erasures (customer_id, status, requested_by, requested_at, preview) VALUES (?, 'previewed', ?, ?, ?) RETURNING id"
        ))
        .bind(customer)
        .bind(requested_by)
        .bind(now())
        .bind(preview.to_string())
        .fetch_one(pool)
        .await?
        .get(0))
        })
    }

    pub async fn erasure(&self, id: i64) -> Result<Option<ErasureRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "SELECT id, customer_id, status, reason, requested_by, requested_at, executed_by, executed_at, completed_at, preview, proof FROM erasures WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| ErasureRow {
            id: r.get(0),
            customer: r.get(1),
            status: ErasureStatus::parse(&r.get::<String, _>(2)).unwrap_or(ErasureStatus::Failed),
            reason: r.get(3),
            requested_by: r.get(4),
            requested_at: r.get(5),
            executed_by: r.get(6),
            executed_at: r.get(7),
            completed_at: r.get(8),
            preview: serde_json::from_str(&r.get::<String, _>(9)).unwrap_or_default(),
            proof: serde_json::from_str(&r.get::<String, _>(10)).unwrap_or_default(),
        })
        }))
    }

    /// Moves a previewed (or failed, to try again) erasure to `running` on behalf of
    /// `who`: whether it did (another confirmation got there first otherwise).
    pub async fn start_erasure(&self, id: i64, who: &str) -> Result<bool, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "UPDATE erasures SET status = 'running', executed_by = ?, executed_at = ?, reason = '' WHERE id = ? AND status IN ('previewed', 'failed')"
        ))
        .bind(who)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
            == 1
        }))
    }

    /// Ends a running erasure: completed with its proof, or failed with the reason.
    pub async fn finish_erasure(
        &self,
        id: i64,
        outcome: Result<&serde_json::Value, &str>,
    ) -> Result<(), StoreError> {
        let (status, reason, proof, done) = match outcome {
            Ok(p) => ("completed", String::new(), p.to_string(), Some(now())),
            Err(why) => ("failed", why.to_string(), "{}".to_string(), None),
        };
        with_db!(self, |pool, sql| {
            sqlx::query(sql("UPDATE erasures SET status = ?, reason = ?, proof = ?, completed_at = ? WHERE id = ?"))
                .bind(status)
                .bind(&reason)
                .bind(&proof)
                .bind(done)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Erases a customer from the database in one transaction (for erasure `erasure`):
    /// identities removed (tombstones kept), personal fields emptied, the timelines'
    /// events cut to what the KPIs read (messages marked erased), the interactions'
    /// caller, dialled number, IVR variables and recording emptied, e-mail removed
    /// (tombstones kept), survey comments, pending survey questions, chat sessions,
    /// consents and webhook deliveries removed. Interactions keep their times, queue,
    /// agent and outcome. Returns what was held (the files and mail to delete).
    pub async fn erase_customer(
        &self,
        customer: i64,
        erasure: i64,
    ) -> Result<Option<Inventory>, StoreError> {
        let Some(inv) = self.inventory(customer).await? else {
            return Ok(None);
        };
        let key = self.tombstone_key().await?.to_vec();
        let at = now();
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin_with(self.write_begin()).await?;
            let mut stones: Vec<(String, &str)> = Vec::new();
            for (kind, value) in &inv.identities {
                let kind = format!("identity:{kind}");
                stones.push((tombstone(&key, &kind, value), "identity"));
            }
            for (_, id) in &inv.mails {
                stones.push((tombstone(&key, "message-id", id), "message-id"));
            }
            // The mail server's copies, deleted by each mailbox's fetcher.
            for (mailbox, id) in &inv.mails {
                sqlx::query(sql("INSERT INTO mail_purges (mailbox, message_id, erasure_id, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"))
                    .bind(mailbox)
                    .bind(id)
                    .bind(erasure)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            for (hash, kind) in &stones {
                sqlx::query(sql("INSERT INTO tombstones (hash, kind, erasure_id, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"))
                    .bind(hash)
                    .bind(*kind)
                    .bind(erasure)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            // The rows below are found by interaction: the list is made before the
            // identities go (the unverified ones are found through them).
            let convs = &inv.conversations;
            let mut rows = sqlx::query(sql("SELECT id, data FROM timeline WHERE customer_id = ?"))
                .bind(customer)
                .fetch_all(&mut *tx)
                .await?;
            for c in convs {
                rows.extend(sqlx::query(sql("SELECT id, data FROM timeline WHERE conversation_id = ? AND (customer_id IS NULL OR customer_id <> ?)"))
                    .bind(c)
                    .bind(customer)
                    .fetch_all(&mut *tx)
                    .await?);
            }
            for i in &inv.interactions {
                rows.extend(sqlx::query(sql("SELECT id, data FROM timeline WHERE interaction_id = ? AND (customer_id IS NULL OR customer_id <> ?) AND (conversation_id IS NULL OR conversation_id NOT IN (SELECT id FROM conversations WHERE customer_id = ?))"))
                    .bind(i)
                    .bind(customer)
                    .bind(customer)
                    .fetch_all(&mut *tx)
                    .await?);
            }
            for r in &rows {
                let data: serde_json::Value =
                    serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
                sqlx::query(sql("UPDATE timeline SET data = ? WHERE id = ?"))
                    .bind(scrub(&data).to_string())
                    .bind(r.get::<i64, _>(0))
                    .execute(&mut *tx)
                    .await?;
            }
            for i in &inv.interactions {
                for q in [
                    "DELETE FROM survey_asks WHERE interaction_id = ?",
                    "DELETE FROM chat_sessions WHERE interaction_id = ?",
                    "UPDATE survey_answers SET comment = '' WHERE interaction_id = ?",
                    "DELETE FROM emails WHERE interaction_id = ?",
                    "DELETE FROM webhook_pops WHERE interaction_id = ?",
                    "UPDATE interactions SET caller = '', dialled = '', variables = '{}', recording = NULL WHERE id = ?",
                ] {
                    sqlx::query(sql(q)).bind(i).execute(&mut *tx).await?;
                }
            }
            for c in convs {
                sqlx::query(sql("DELETE FROM emails WHERE conversation_id = ?"))
                    .bind(c)
                    .execute(&mut *tx)
                    .await?;
            }
            for q in [
                "UPDATE survey_answers SET comment = '' WHERE customer_id = ?",
                "DELETE FROM consent_events WHERE customer_id = ?",
                "DELETE FROM consents WHERE customer_id = ?",
                "DELETE FROM identities WHERE customer_id = ?",
                "DELETE FROM customer_fields WHERE customer_id = ?",
                "DELETE FROM webhook_deliveries WHERE customer_id = ?",
                // The requests stay (the proof they were answered), their words go.
                "UPDATE privacy_requests SET note = '', answer = '' WHERE customer_id = ?",
            ] {
                sqlx::query(sql(q)).bind(customer).execute(&mut *tx).await?;
            }
            sqlx::query(sql("UPDATE customers SET name = '', account = NULL, phone = NULL, email = NULL, tier = 'standard', erased_at = ? WHERE id = ?"))
                .bind(at)
                .bind(customer)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(Some(inv))
    }

    /// At most `limit` Message-IDs of erased mail still to delete from `mailbox`'s
    /// server, oldest first.
    pub async fn mail_purges(&self, mailbox: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT message_id FROM mail_purges WHERE mailbox = ? ORDER BY at, message_id LIMIT ?",
            ))
            .bind(mailbox)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect()
        }))
    }

    /// `ids` are gone from `mailbox`'s server (deleted, or not there).
    pub async fn mail_purged(&self, mailbox: &str, ids: &[String]) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query(sql(
                    "DELETE FROM mail_purges WHERE mailbox = ? AND message_id = ?",
                ))
                .bind(mailbox)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many of erasure `id`'s mails are still to delete from the mail servers.
    pub async fn mail_purges_pending(&self, erasure: i64) -> Result<i64, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql("SELECT COUNT(*) FROM mail_purges WHERE erasure_id = ?"))
                .bind(erasure)
                .fetch_one(pool)
                .await?
                .get(0)
        }))
    }

    /// After an erasure, what the database freed is made unreadable: SQLite overwrites
    /// freed content (`secure_delete`, always on) and its write-ahead log is folded into
    /// the file and emptied; PostgreSQL's tables that held the data are vacuumed.
    pub async fn compact_after_erasure(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await?;
            }
            #[cfg(feature = "postgres")]
            Db::Pg(pool) => {
                sqlx::query("VACUUM customers, identities, interactions, timeline, emails, survey_answers, survey_asks, chat_sessions, consents, consent_events, webhook_deliveries, webhook_pops, mail_purges, privacy_requests, customer_fields")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl Store {
    /// Every row of every table as text (values quoted, blobs in hex), for tests that
    /// look for what must not be there.
    pub(crate) async fn dump(&self) -> String {
        let mut out = String::new();
        match &self.db {
            Db::Sqlite(pool) => {
                let tables: Vec<String> =
                    sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(pool)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                for t in tables {
                    let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{t}')"
                    )))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| format!("quote(\"{}\")", r.get::<String, _>(0)))
                    .collect();
                    let q = format!("SELECT {} FROM \"{t}\"", cols.join(" || ',' || "));
                    for r in sqlx::query(sqlx::AssertSqlSafe(q))
                        .fetch_all(pool)
                        .await
                        .unwrap()
                    {
                        out.push_str(&format!("{t}: {}\n", r.get::<String, _>(0)));
                    }
                }
            }
            #[cfg(feature = "postgres")]
            Db::Pg(pool) => {
                let tables: Vec<String> = sqlx::query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                )
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
                for t in tables {
                    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text FROM \"{t}\" t"
                    )))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    {
                        out.push_str(&format!("{t}: {}\n", r.get::<String, _>(0)));
                    }
                }
            }
        }
        out
    }
}
