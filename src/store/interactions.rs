//! Interactions: one contact on one channel (IVR path and variables, queue, agent,
//! times, outcome, disposition), each ended exactly once.

use super::customers::identity_of;
#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// One interaction as the API shows it (times in Unix milliseconds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interaction {
    pub id: String,
    pub kind: String,
    pub direction: String,
    pub customer_id: Option<i64>,
    pub conversation_id: Option<i64>,
    pub caller: String,
    pub dialled: String,
    pub trunk: String,
    pub flow: String,
    pub flow_version: String,
    pub started_at: i64,
    pub offered_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub outcome: Option<String>,
    pub disposition: Option<String>,
    pub recording: Option<String>,
    pub path: Vec<String>,
    pub variables: serde_json::Map<String, serde_json::Value>,
}

/// What routing wants to know of a customer's new contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingHints {
    /// The agent who last served them (sticky routing).
    pub last_agent: Option<String>,
    /// Their open case already had a contact (a repeat contact on an unresolved case).
    pub repeat: bool,
    /// Their tier is gold or vip.
    pub vip: bool,
}

/// A new interaction.
#[derive(Debug, Clone, Default)]
pub struct NewInteraction<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub direction: &'a str,
    /// Caller id or address, resolved to a customer.
    pub from: &'a str,
    pub dialled: &'a str,
    pub trunk: &'a str,
    pub flow: &'a str,
    pub flow_version: &'a str,
    /// `from` is only what the customer typed (a web chat's address): not resolved to
    /// a customer, no case joined, until someone verifies it
    /// ([`InteractionUpdate::customer_id`] then attaches it).
    pub unverified: bool,
    /// The case it joins, found by other means (an e-mail's thread): its customer's,
    /// rather than the one `from` resolves to.
    pub conversation: Option<i64>,
}

/// What an interaction has come to.
#[derive(Debug, Clone, Default)]
pub struct InteractionUpdate<'a> {
    /// A customer found later (by account number...): the interaction moves to their
    /// open conversation.
    pub customer_id: Option<i64>,
    pub queue: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub path: &'a [String],
    pub variables: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub ended: bool,
}

/// The end of an interaction, written once inside the caller's transaction: later ends
/// change nothing. (A macro, so it runs on either database's transaction.)
macro_rules! end_in {
    ($tx:expr, $sql:ident, $id:expr, $outcome:expr, $t:expr) => {{
        let ended: Option<Option<String>> = sqlx::query($sql("UPDATE interactions SET outcome = COALESCE(outcome, NULLIF(?, '')), ended_at = ? WHERE id = ? AND ended_at IS NULL RETURNING outcome"))
            .bind($outcome)
            .bind($t)
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?
            .map(|r| r.get(0));
        if let Some(outcome) = ended {
            sqlx::query($sql("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, 'interaction ended', ? FROM interactions WHERE id = ?"))
                .bind($t)
                .bind(serde_json::json!({ "outcome": outcome }).to_string())
                .bind($id)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Reads an interaction from a row of either database (a closure for `.map`).
macro_rules! interaction_row {
    () => {
        |r| Interaction {
            id: r.get("id"),
            kind: r.get("kind"),
            direction: r.get("direction"),
            customer_id: r.get("customer_id"),
            conversation_id: r.get("conversation_id"),
            caller: r.get("caller"),
            dialled: r.get("dialled"),
            trunk: r.get("trunk"),
            flow: r.get("flow"),
            flow_version: r.get("flow_version"),
            started_at: r.get("started_at"),
            offered_at: r.get("offered_at"),
            answered_at: r.get("answered_at"),
            ended_at: r.get("ended_at"),
            queue: r.get("queue"),
            agent: r.get("agent"),
            outcome: r.get("outcome"),
            disposition: r.get("disposition"),
            recording: r.get("recording"),
            path: serde_json::from_str(&r.get::<String, _>("path")).unwrap_or_default(),
            variables: serde_json::from_str(&r.get::<String, _>("variables")).unwrap_or_default(),
        }
    };
}

/// What a web chat keeps so a restarted node can take it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebChatSession {
    /// The SHA-256 (hex) of the customer's resume token.
    pub token_digest: String,
    /// The name they typed.
    pub name: String,
    pub queue: String,
}

/// A web chat not ended, with its session where one was kept.
#[derive(Debug, Clone)]
pub struct OpenWebChat {
    pub interaction: Interaction,
    pub session: Option<WebChatSession>,
}

/// What [`Store::update_interaction`] writes on the interaction itself.
const UPDATE_INTERACTION: &str = "UPDATE interactions SET customer_id = COALESCE(?, customer_id), conversation_id = COALESCE(?, conversation_id), offered_at = CASE WHEN ? IS NOT NULL AND offered_at IS NULL THEN ? ELSE offered_at END, queue = COALESCE(?, queue), outcome = COALESCE(?, outcome), path = ?, variables = COALESCE(?, variables) WHERE id = ?";

impl Store {
    /// Records a new interaction, resolving who it is from and which conversation it
    /// joins. Returns (customer, conversation). Its start and end are on the timeline
    /// through the interaction's own times (see [`Store::conversation_timeline`]).
    pub async fn start_interaction(
        &self,
        n: &NewInteraction<'_>,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        if let Some(conv) = n.conversation {
            let customer: Option<i64> = with_db!(self, |pool, sql| {
                sqlx::query(sql("SELECT customer_id FROM conversations WHERE id = ?"))
                    .bind(conv)
                    .fetch_optional(pool)
                    .await?
                    .map(|r| r.get(0))
            });
            if let Some(c) = customer {
                return self.insert_interaction(n, Some(c), Some(conv)).await;
            }
        }
        // The common case, a known customer with an open case, in one statement.
        let known: Option<(i64, Option<i64>)> = match identity_of(n.from) {
            _ if n.unverified => None,
            Some((kind, value)) => with_db!(self, |pool, sql| {
                sqlx::query(sql("SELECT i.customer_id, c.id FROM identities i LEFT JOIN conversations c ON c.customer_id = i.customer_id AND c.status = 'open' WHERE i.kind = ? AND i.value = ?"))
                .bind(kind.name())
                .bind(value)
                .fetch_optional(pool)
                .await?
                .map(|r| (r.get(0), r.get(1)))
            }),
            None => None,
        };
        let (customer, conversation) = match (known, identity_of(n.from)) {
            (Some((c, Some(conv))), _) => (Some(c), Some(conv)),
            (Some((c, None)), _) => (Some(c), Some(self.open_conversation(c).await?)),
            (None, _) if n.unverified => (None, None),
            // Nobody holds the address (just looked up): a new customer, a new case.
            (None, Some((kind, value))) => {
                let p = super::Provenance {
                    source: n.kind,
                    interaction: Some(n.id),
                    actor: "",
                };
                match self.customer_for_new_identity(kind, &value, &p).await? {
                    Some(c) => (Some(c), Some(self.open_first_conversation(c).await?)),
                    None => (None, None),
                }
            }
            (None, None) => (None, None),
        };
        self.insert_interaction(n, customer, conversation).await
    }

    async fn insert_interaction(
        &self,
        n: &NewInteraction<'_>,
        customer: Option<i64>,
        conversation: Option<i64>,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO interactions (id, kind, direction, customer_id, conversation_id, caller, dialled, trunk, flow, flow_version, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(n.id)
            .bind(n.kind)
            .bind(if n.direction.is_empty() { "inbound" } else { n.direction })
            .bind(customer)
            .bind(conversation)
            .bind(n.from)
            .bind(n.dialled)
            .bind(n.trunk)
            .bind(n.flow)
            .bind(n.flow_version)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok((customer, conversation))
    }

    /// Records what the interaction has come to (one statement; the time it joined a
    /// queue is kept as `offered_at`).
    pub async fn update_interaction(
        &self,
        id: &str,
        u: &InteractionUpdate<'_>,
    ) -> Result<(), StoreError> {
        let conversation = match u.customer_id {
            Some(c) => Some(self.open_conversation(c).await?),
            None => None,
        };
        let t = now();
        let vars = u
            .variables
            .map(|v| serde_json::Value::Object(v.clone()).to_string());
        let alone = u.customer_id.is_none() && !u.ended;
        let path = serde_json::to_string(u.path).unwrap_or_default();
        // The interaction's own row, as either database binds it.
        macro_rules! update {
            ($sql:expr) => {
                sqlx::query($sql(UPDATE_INTERACTION))
                    .bind(u.customer_id)
                    .bind(conversation)
                    .bind(u.queue)
                    .bind(t)
                    .bind(u.queue)
                    .bind(u.outcome)
                    .bind(&path)
                    .bind(&vars)
                    .bind(id)
            };
        }
        with_db!(self, |pool, sql| {
            if alone {
                // One statement: no transaction to open and commit.
                update!(sql).execute(pool).await?;
                return Ok(());
            }
            let mut tx = pool.begin().await?;
            update!(sql).execute(&mut *tx).await?;
            if u.customer_id.is_some() {
                // What was written before the customer was known moves with it.
                sqlx::query(sql("UPDATE timeline SET customer_id = ?, conversation_id = ? WHERE interaction_id = ? AND customer_id IS NULL"))
                    .bind(u.customer_id)
                    .bind(conversation)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if u.ended {
                end_in!(tx, sql, id, u.outcome.unwrap_or(""), t);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// After a crash or a stop: every interaction still open is ended as
    /// `interrupted` (with the usual "interaction ended" entry), but for the threads
    /// a starting node takes up again (a provider's inbound threads, web chats with a
    /// kept session: see [`Store::open_threads`], [`Store::open_web_chats`]). Only for
    /// a database this node has to itself (SQLite): on a shared PostgreSQL the other
    /// nodes' live work is open too. Returns the ids ended.
    pub async fn close_interrupted(&self) -> Result<Vec<String>, StoreError> {
        if !matches!(self.db, Db::Sqlite(_)) {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "SELECT id FROM interactions WHERE ended_at IS NULL AND NOT (kind IN ('whatsapp', 'twilio', 'open', 'email') AND direction = 'inbound') AND NOT (kind = 'webchat' AND id IN (SELECT interaction_id FROM chat_sessions))"
        ))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
        });
        for id in &ids {
            self.add_timeline(
                id,
                "interrupted",
                serde_json::json!({"reason": "the node stopped or crashed while it was open"}),
            )
            .await?;
            self.end_interaction(id, "interrupted").await?;
        }
        Ok(ids)
    }

    /// What routing wants to know of a customer's new contact `id`.
    pub async fn routing_hints(&self, customer: i64, id: &str) -> Result<RoutingHints, StoreError> {
        with_db!(self, |pool, sql| {
            let r = sqlx::query(sql("SELECT (SELECT agent FROM interactions WHERE customer_id = ? AND agent IS NOT NULL AND id <> ? ORDER BY started_at DESC LIMIT 1), (SELECT COUNT(*) FROM interactions i JOIN conversations c ON c.id = i.conversation_id WHERE c.customer_id = ? AND c.status = 'open' AND i.id <> ?), (SELECT tier FROM customers WHERE id = ?)"))
                .bind(customer)
                .bind(id)
                .bind(customer)
                .bind(id)
                .bind(customer)
                .fetch_one(pool)
                .await?;
            let tier: Option<String> = r.get(2);
            Ok(RoutingHints {
                last_agent: r.get(0),
                repeat: r.get::<i64, _>(1) > 0,
                vip: matches!(tier.as_deref(), Some("gold" | "vip")),
            })
        })
    }

    /// The interaction's recording file (the first one kept when recording is turned
    /// off and on again: later files are on the timeline).
    pub async fn set_recording(&self, id: &str, path: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE interactions SET recording = COALESCE(recording, ?) WHERE id = ?"
        ))
        .bind(path)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// An agent accepted the interaction: it is theirs (answered is written when they
    /// are connected).
    pub async fn interaction_assigned(&self, id: &str, agent: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE interactions SET agent = ? WHERE id = ?"
        ))
        .bind(agent)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// An agent took the interaction (answered now); the time is kept from the first.
    pub async fn interaction_answered(&self, id: &str, agent: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("UPDATE interactions SET agent = ?, answered_at = COALESCE(answered_at, ?) WHERE id = ?"))
            .bind(agent)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Ends an interaction (a chat, a call after its IVR run): outcome and end time,
    /// once, with its end on the timeline.
    pub async fn end_interaction(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            end_in!(tx, sql, id, outcome, now());
            tx.commit().await?;
        });
        Ok(())
    }

    /// The agent's wrap-up: a disposition on the interaction, the case resolved or
    /// left open, and a timeline entry; in one transaction.
    pub async fn wrap_up(
        &self,
        id: &str,
        agent: &str,
        disposition: &str,
        resolved: bool,
    ) -> Result<(), StoreError> {
        let data =
            serde_json::json!({"agent": agent, "disposition": disposition, "resolved": resolved})
                .to_string();
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql("UPDATE interactions SET disposition = ? WHERE id = ?"))
                .bind(disposition)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql("INSERT INTO timeline (customer_id, conversation_id, interaction_id, at, kind, data) SELECT customer_id, conversation_id, id, ?, 'wrapped up', ? FROM interactions WHERE id = ?"))
                .bind(now())
                .bind(&data)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if resolved {
                sqlx::query(sql("UPDATE conversations SET status = 'resolved', resolved_at = ? WHERE id = (SELECT conversation_id FROM interactions WHERE id = ?) AND status = 'open'"))
                    .bind(now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether `agent` has served (been assigned an interaction of) this customer.
    pub async fn agent_served(&self, agent: &str, customer: i64) -> Result<bool, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT 1 FROM interactions WHERE agent = ? AND customer_id = ? LIMIT 1"
        ))
        .bind(agent)
        .bind(customer)
        .fetch_optional(pool)
        .await?
        .is_some()))
    }

    /// A customer's recent interactions, newest first.
    pub async fn customer_interactions(
        &self,
        customer: i64,
        limit: u32,
    ) -> Result<Vec<Interaction>, StoreError> {
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql("SELECT * FROM interactions WHERE customer_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ?"))
            .bind(customer)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?
            .iter()
            .map(interaction_row!())
            .collect())
        })
    }

    pub async fn interaction(&self, id: &str) -> Result<Option<Interaction>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT * FROM interactions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(interaction_row!())))
    }

    /// The video calls made from web chat `chat` that belong to no customer yet
    /// (the chat's address was not verified when they started).
    pub async fn unattached_chat_calls(&self, chat: &str) -> Result<Vec<String>, StoreError> {
        let dialled = format!("chat:{chat}");
        with_db!(self, |pool, sql| {
            let rows: Vec<(String,)> = sqlx::query_as(sql(
                "SELECT id FROM interactions WHERE dialled = ? AND kind = 'video' AND customer_id IS NULL",
            ))
            .bind(&dialled)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| r.0).collect())
        })
    }

    /// Provider threads not ended (a node taking them up after a restart), oldest
    /// first.
    pub async fn open_threads(&self) -> Result<Vec<Interaction>, StoreError> {
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql(
            "SELECT * FROM interactions WHERE kind IN ('whatsapp', 'twilio', 'open', 'email') AND direction = 'inbound' AND ended_at IS NULL ORDER BY started_at"
        ))
        .fetch_all(pool)
        .await?
        .iter()
        .map(interaction_row!())
        .collect())
        })
    }

    /// Starts a web chat: its interaction and its session (the digest of the
    /// customer's resume token, the name they typed, its queue), in one transaction,
    /// so a restarted node can take it up. The chat is unverified: no customer, no
    /// case.
    pub async fn start_web_chat(
        &self,
        id: &str,
        address: &str,
        token_digest: &str,
        name: &str,
        queue: &str,
    ) -> Result<(), StoreError> {
        let at = now();
        with_db!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql("INSERT INTO interactions (id, kind, direction, caller, dialled, trunk, flow, flow_version, started_at) VALUES (?, 'webchat', 'inbound', ?, '', '', '', '', ?)"))
                .bind(id)
                .bind(address)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql("INSERT INTO chat_sessions (interaction_id, token_digest, name, queue) VALUES (?, ?, ?, ?)"))
                .bind(id)
                .bind(token_digest)
                .bind(name)
                .bind(queue)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The web chats not ended, oldest first, each with its session where one was
    /// kept.
    pub async fn open_web_chats(&self) -> Result<Vec<OpenWebChat>, StoreError> {
        with_db!(self, |pool, sql| {
            let rows = sqlx::query(sql(
                "SELECT i.*, s.token_digest AS s_digest, s.name AS s_name, s.queue AS s_queue FROM interactions i LEFT JOIN chat_sessions s ON s.interaction_id = i.id WHERE i.kind = 'webchat' AND i.ended_at IS NULL ORDER BY i.started_at"
            ))
            .fetch_all(pool)
            .await?;
            let chats: Vec<Interaction> = rows.iter().map(interaction_row!()).collect();
            let sessions = rows.iter().map(|r| {
                r.get::<Option<String>, _>("s_digest")
                    .map(|token_digest| WebChatSession {
                        token_digest,
                        name: r.get("s_name"),
                        queue: r.get("s_queue"),
                    })
            });
            Ok(chats
                .into_iter()
                .zip(sessions)
                .map(|(interaction, session)| OpenWebChat {
                    interaction,
                    session,
                })
                .collect())
        })
    }

    /// The most recent interactions, newest first.
    pub async fn recent_interactions(&self, limit: u32) -> Result<Vec<Interaction>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT * FROM interactions ORDER BY started_at DESC, rowid DESC LIMIT ?"
        ))
        .bind(limit as i64)
        .fetch_all(pool)
        .await?
        .iter()
        .map(interaction_row!())
        .collect()))
    }
}
