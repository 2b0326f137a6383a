//! E-mail on record: each message by mailbox and Message-ID (imported, sent,
//! failing, quarantined or erased: a message is looked at once, and one whose case
//! was erased is never imported again), the raw bytes of what was imported and sent,
//! where each mailbox's fetcher got to (`UIDVALIDITY` and the last UID), and the
//! node's keys (the plus-address tokens' HMAC key, the same on every node).

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// One message on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRow {
    pub mailbox: String,
    pub message_id: String,
    pub interaction: Option<String>,
    pub conversation: Option<i64>,
    /// `in` or `out`.
    pub direction: String,
    pub seq: i64,
    /// `importing` (in, handed to its thread: on record before any agent can answer
    /// it), `received`, `automatic` (in, not answered), `failing` (in, import failed
    /// `tries` times), `quarantined`, `erased`; `sent`, `failed` (out).
    pub status: String,
    pub reason: String,
    pub tries: i64,
    pub sender: String,
    pub subject: String,
    /// Its `References` then its `In-Reply-To`, oldest first, space-separated.
    pub refs: String,
}

/// A message to record.
#[derive(Debug, Clone, Default)]
pub struct NewEmail<'a> {
    pub mailbox: &'a str,
    pub message_id: &'a str,
    pub interaction: Option<&'a str>,
    pub conversation: Option<i64>,
    pub direction: &'a str,
    pub seq: i64,
    pub status: &'a str,
    pub reason: &'a str,
    pub sender: &'a str,
    /// Every address it was to, space-separated.
    pub recipients: &'a str,
    pub subject: &'a str,
    pub refs: &'a str,
    pub raw: Option<&'a [u8]>,
}

/// Where a mailbox's fetcher got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailMark {
    pub uidvalidity: i64,
    pub last_uid: i64,
}

macro_rules! columns {
    () => {
        "mailbox, message_id, interaction_id, conversation_id, direction, seq, status, reason, tries, sender, subject, refs"
    };
}

/// A row of [`columns!`] as an [`EmailRow`] (a macro: rows of either database).
macro_rules! email_row {
    ($r:expr) => {{
        let r = $r;
        EmailRow {
            mailbox: r.get(0),
            message_id: r.get(1),
            interaction: r.get(2),
            conversation: r.get(3),
            direction: r.get(4),
            seq: r.get(5),
            status: r.get(6),
            reason: r.get(7),
            tries: r.get(8),
            sender: r.get(9),
            subject: r.get(10),
            refs: r.get(11),
        }
    }};
}

impl Store {
    /// The message `message_id` of `mailbox`, if on record; an erased one (only its
    /// tombstone is kept) as a row with status `erased` and nothing else.
    pub async fn email(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<Option<EmailRow>, StoreError> {
        if let Some(row) = self.email_on_record(mailbox, message_id).await? {
            return Ok(Some(row));
        }
        Ok(self
            .tombstoned("message-id", message_id)
            .await?
            .map(|_| EmailRow {
                mailbox: mailbox.into(),
                message_id: message_id.into(),
                interaction: None,
                conversation: None,
                direction: "in".into(),
                seq: 0,
                status: "erased".into(),
                reason: String::new(),
                tries: 0,
                sender: String::new(),
                subject: String::new(),
                refs: String::new(),
            }))
    }

    async fn email_on_record(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<Option<EmailRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(concat!(
                "SELECT ",
                columns!(),
                " FROM emails WHERE mailbox = ? AND message_id = ?"
            )))
            .bind(mailbox)
            .bind(message_id)
            .fetch_optional(pool)
            .await?
            .map(|r| email_row!(&r))
        }))
    }

    /// The conversation of each of `ids` we sent or received (any mailbox), as
    /// (id, conversation).
    pub async fn email_conversations(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut found = Vec::new();
        for id in ids.iter().take(32) {
            let c: Option<i64> = with_db!(self, |pool, sql| {
                sqlx::query(sql("SELECT conversation_id FROM emails WHERE message_id = ? AND conversation_id IS NOT NULL LIMIT 1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                    .and_then(|r| r.get(0))
            });
            if let Some(c) = c {
                found.push((id.clone(), c));
            }
        }
        Ok(found)
    }

    /// Who may write on a case by e-mail: its customer, their e-mail identities, and
    /// every address the case's mail was from or to.
    pub async fn case_addresses(
        &self,
        conversation: i64,
    ) -> Result<crate::email::thread::Case, StoreError> {
        let (customer, mut addresses): (Option<i64>, Vec<String>) = with_db!(self, |pool, sql| {
            let customer: Option<i64> =
                sqlx::query(sql("SELECT customer_id FROM conversations WHERE id = ?"))
                    .bind(conversation)
                    .fetch_optional(pool)
                    .await?
                    .map(|r| r.get(0));
            let mut a: Vec<String> = match customer {
                Some(c) => sqlx::query(sql(
                    "SELECT value FROM identities WHERE customer_id = ? AND kind = 'email'",
                ))
                .bind(c)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
                None => Vec::new(),
            };
            for r in sqlx::query(sql(
                "SELECT sender, recipients FROM emails WHERE conversation_id = ?",
            ))
            .bind(conversation)
            .fetch_all(pool)
            .await?
            {
                let (s, rc): (String, String) = (r.get(0), r.get(1));
                a.push(s);
                a.extend(rc.split_whitespace().map(String::from));
            }
            (customer, a)
        });
        addresses.retain(|a| !a.is_empty());
        addresses.sort();
        addresses.dedup();
        Ok(crate::email::thread::Case {
            customer,
            addresses,
        })
    }

    /// Records a message; `false` if one with its mailbox and id was on record (then
    /// an imported or sent one is left as it is, and a failing or importing one takes
    /// the new record).
    pub async fn add_email(&self, e: &NewEmail<'_>) -> Result<bool, StoreError> {
        let at = now();
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO emails (mailbox, message_id, interaction_id, conversation_id, direction, seq, status, reason, tries, sender, recipients, subject, refs, raw, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (mailbox, message_id) DO UPDATE SET interaction_id = excluded.interaction_id, conversation_id = excluded.conversation_id, seq = excluded.seq, status = excluded.status, reason = excluded.reason, sender = excluded.sender, recipients = excluded.recipients, subject = excluded.subject, refs = excluded.refs, raw = excluded.raw, at = excluded.at
                WHERE emails.status IN ('failing', 'importing')"))
                .bind(e.mailbox)
                .bind(e.message_id)
                .bind(e.interaction)
                .bind(e.conversation)
                .bind(e.direction)
                .bind(e.seq)
                .bind(e.status)
                .bind(e.reason)
                .bind(e.sender)
                .bind(e.recipients)
                .bind(e.subject)
                .bind(e.refs)
                .bind(e.raw)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1)
    }

    /// An inbound message its thread stored as `seq`: imported.
    pub async fn email_imported(
        &self,
        mailbox: &str,
        message_id: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("UPDATE emails SET status = 'received', seq = ? WHERE mailbox = ? AND message_id = ? AND status = 'importing'"))
                .bind(seq)
                .bind(mailbox)
                .bind(message_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// A message that failed to import: its tries so far (this one included). Once
    /// quarantined or imported, nothing changes (0).
    pub async fn email_failed(
        &self,
        mailbox: &str,
        message_id: &str,
        reason: &str,
    ) -> Result<u32, StoreError> {
        let at = now();
        let tries: Option<i64> = with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO emails (mailbox, message_id, direction, status, reason, tries, at) VALUES (?, ?, 'in', 'failing', ?, 1, ?)
                ON CONFLICT (mailbox, message_id) DO UPDATE SET status = 'failing', tries = emails.tries + 1, reason = excluded.reason, at = excluded.at WHERE emails.status IN ('failing', 'importing')
                RETURNING tries"))
                .bind(mailbox)
                .bind(message_id)
                .bind(reason)
                .bind(at)
                .fetch_optional(pool)
                .await?
                .map(|r| r.get(0))
        });
        Ok(tries.unwrap_or(0) as u32)
    }

    /// Sets aside a message that cannot be imported, with why and its bytes (when it
    /// was downloaded): never fetched again.
    pub async fn quarantine_email(
        &self,
        mailbox: &str,
        message_id: &str,
        reason: &str,
        raw: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO emails (mailbox, message_id, direction, status, reason, raw, at) VALUES (?, ?, 'in', 'quarantined', ?, ?, ?)
                ON CONFLICT (mailbox, message_id) DO UPDATE SET status = 'quarantined', reason = excluded.reason, raw = COALESCE(excluded.raw, emails.raw), at = excluded.at
                WHERE emails.status IN ('failing', 'importing')"))
                .bind(mailbox)
                .bind(message_id)
                .bind(reason)
                .bind(raw)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The quarantined messages of a mailbox, newest first (at most `limit`).
    pub async fn quarantined_emails(
        &self,
        mailbox: &str,
        limit: i64,
    ) -> Result<Vec<EmailRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(concat!(
                "SELECT ",
                columns!(),
                " FROM emails WHERE mailbox = ? AND status = 'quarantined' ORDER BY at DESC LIMIT ?"
            )))
            .bind(mailbox)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| email_row!(r))
            .collect()
        }))
    }

    /// The raw bytes kept of a message.
    pub async fn email_raw(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT raw FROM emails WHERE mailbox = ? AND message_id = ?",
            ))
            .bind(mailbox)
            .bind(message_id)
            .fetch_optional(pool)
            .await?
            .and_then(|r| r.get::<Option<Vec<u8>>, _>(0))
        }))
    }

    /// The messages of one interaction, in thread order.
    pub async fn interaction_emails(&self, interaction: &str) -> Result<Vec<EmailRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(concat!(
                "SELECT ",
                columns!(),
                " FROM emails WHERE interaction_id = ? ORDER BY seq, at"
            )))
            .bind(interaction)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| email_row!(r))
            .collect()
        }))
    }

    /// An outbound message's fate (a bounce): its row, if it is ours and was sent.
    pub async fn email_bounced(
        &self,
        message_id: &str,
        reason: &str,
    ) -> Result<Option<EmailRow>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(concat!(
                "UPDATE emails SET status = 'failed', reason = ? WHERE message_id = ? AND direction = 'out' AND status = 'sent' RETURNING ",
                columns!()
            )))
            .bind(reason)
            .bind(message_id)
            .fetch_optional(pool)
            .await?
            .map(|r| email_row!(&r))
        }))
    }

    /// Erases the mail of a case: each message's text and bytes gone from the record
    /// and from the case's e-mail threads on the timeline; each message leaves a
    /// tombstone (the keyed hash of its Message-ID) so it is never imported again.
    /// Returns how many messages.
    pub async fn erase_case_mail(&self, conversation: i64) -> Result<u64, StoreError> {
        let key = self.tombstone_key().await?.to_vec();
        let at = now();
        Ok(with_db!(self, |pool, sql| {
            let mut tx = pool.begin_with(self.write_begin()).await?;
            let rows = sqlx::query(sql("SELECT id, data FROM timeline WHERE conversation_id = ? AND kind = 'message' AND interaction_id IN (SELECT id FROM interactions WHERE kind = 'email')"))
                .bind(conversation)
                .fetch_all(&mut *tx)
                .await?;
            for r in &rows {
                let data: serde_json::Value =
                    serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
                sqlx::query(sql("UPDATE timeline SET data = ? WHERE id = ?"))
                    .bind(crate::privacy::scrub(&data).to_string())
                    .bind(r.get::<i64, _>(0))
                    .execute(&mut *tx)
                    .await?;
            }
            let ids: Vec<String> = sqlx::query(sql(
                "SELECT message_id FROM emails WHERE conversation_id = ?",
            ))
            .bind(conversation)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
            for id in &ids {
                sqlx::query(sql("INSERT INTO tombstones (hash, kind, at) VALUES (?, 'message-id', ?) ON CONFLICT DO NOTHING"))
                    .bind(crate::privacy::tombstone(&key, "message-id", id))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            let n = sqlx::query(sql("DELETE FROM emails WHERE conversation_id = ?"))
                .bind(conversation)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        }))
    }

    /// Where `mailbox`'s fetcher got to.
    pub async fn mail_mark(&self, mailbox: &str) -> Result<Option<MailMark>, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "SELECT uidvalidity, last_uid FROM mail_marks WHERE mailbox = ?",
            ))
            .bind(mailbox)
            .fetch_optional(pool)
            .await?
            .map(|r| MailMark {
                uidvalidity: r.get(0),
                last_uid: r.get(1),
            })
        }))
    }

    pub async fn set_mail_mark(&self, mailbox: &str, m: MailMark) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO mail_marks (mailbox, uidvalidity, last_uid, at) VALUES (?, ?, ?, ?)
                ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, at = excluded.at"))
                .bind(mailbox)
                .bind(m.uidvalidity)
                .bind(m.last_uid)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The node's key called `name`: made once (32 random bytes, hex) and the same
    /// for every node sharing the database.
    pub async fn node_key(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let fresh = crate::channels::signature::hex(&rand::random::<[u8; 32]>());
        let v: String = with_db!(self, |pool, sql| {
            sqlx::query(sql(
                "INSERT INTO node_keys (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
            ))
            .bind(name)
            .bind(&fresh)
            .execute(pool)
            .await?;
            sqlx::query(sql("SELECT value FROM node_keys WHERE name = ?"))
                .bind(name)
                .fetch_one(pool)
                .await?
                .get(0)
        });
        Ok(v.into_bytes())
    }

    /// Puts a case that was resolved back in its customer's hands (open), unless they
    /// have another open case: whether it is open now.
    pub async fn reopen_conversation(&self, conversation: i64) -> Result<bool, StoreError> {
        Ok(with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            let reopened = sqlx::query(sql("UPDATE conversations SET status = 'open', resolved_at = NULL WHERE id = ? AND status <> 'open' AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.customer_id = conversations.customer_id AND o.status = 'open')"))
                .bind(conversation)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if reopened {
                // On the case's timeline (the reopen rate counts it).
                sqlx::query(sql("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, id, NULL, ?, 'reopened', '{}' FROM conversations WHERE id = ?"))
                    .bind(now())
                    .bind(conversation)
                    .execute(&mut *tx)
                    .await?;
            }
            let open = sqlx::query(sql("SELECT status FROM conversations WHERE id = ?"))
                .bind(conversation)
                .fetch_optional(&mut *tx)
                .await?
                .is_some_and(|r| r.get::<String, _>(0) == "open");
            tx.commit().await?;
            open
        }))
    }

    /// The open case of whoever holds the e-mail `address`, if any.
    pub async fn open_case_for(&self, address: &str) -> Result<Option<i64>, StoreError> {
        let a = address.trim().to_lowercase();
        Ok(with_db!(self, |pool, sql| {
            sqlx::query(sql("SELECT c.id FROM identities i JOIN conversations c ON c.customer_id = i.customer_id AND c.status = 'open' WHERE i.kind = 'email' AND i.value = ?"))
                .bind(&a)
                .fetch_optional(pool)
                .await?
                .map(|r| r.get(0))
        }))
    }
}
