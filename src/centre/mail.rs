//! E-mail into cases: each imported message is read ([`crate::email::parse`]),
//! checked against the record (a message is imported once; an erased case's never
//! again), filtered (our own mail, automatic mail and bounces are never answered; a
//! bounce marks our message failed), placed on its case ([`crate::email::thread`]),
//! and stored on that case's e-mail thread (a provider thread of the mailbox's
//! account: queued, offered, answered by SMTP).

use super::Centre;
use crate::config::ChannelConfig;
use crate::email::imap::{Import, Importer};
use crate::email::thread::{self, Facts, Placement};
use crate::store::NewEmail;
use std::sync::Arc;

/// An e-mail thread's key among the open threads: its case.
pub fn thread_key(conversation: i64) -> String {
    format!("case:{conversation}")
}

impl Centre {
    /// A mailbox's account by name.
    pub fn mailbox(&self, name: &str) -> Option<Arc<ChannelConfig>> {
        self.0
            .mailboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every mailbox's account, by name.
    fn mailbox_accounts(&self) -> Vec<Arc<ChannelConfig>> {
        let mut v: Vec<_> = self
            .0
            .mailboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Each mailbox (no passwords) and how its fetcher is doing, by name.
    pub fn mailbox_list(&self) -> Vec<serde_json::Value> {
        let accounts = self.mailbox_accounts();
        let status = self.0.mail_status.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .iter()
            .filter_map(|a| a.mailbox.as_ref())
            .map(|m| {
                let mut j = m.public();
                j["status"] =
                    serde_json::to_value(status.get(&m.name).cloned().unwrap_or_default())
                        .unwrap_or_default();
                j["source"] = if self.0.config_mailboxes.contains(&m.name) {
                    "config"
                } else {
                    "api"
                }
                .into();
                j
            })
            .collect()
    }

    /// Whether any mailbox is configured (agents may then e-mail a customer).
    pub fn has_mailboxes(&self) -> bool {
        !self
            .0
            .mailboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// An agent's e-mail to the customer of `interaction` (a call, a chat, another
    /// thread) at their address on record, through `channel` (`email`: the first
    /// mailbox by name; or a mailbox's name): on the timeline now, sent in the
    /// background on their case's thread (our plus-address and `[#case]`, so their
    /// answer joins the case); a failure goes on the timeline with its reason.
    pub(super) async fn email_on_channel(
        &self,
        interaction: &crate::store::Interaction,
        agent: &str,
        channel: &str,
        text: &str,
    ) -> Result<(String, String), super::CentreError> {
        use super::CentreError;
        let account = match channel {
            "email" => self.mailbox_accounts().into_iter().next(),
            name => self.mailbox(name),
        }
        .ok_or_else(|| CentreError::Refused("no mailbox is configured ([[mailbox]])".into()))?;
        let store = &self.0.store;
        let customer = interaction.customer_id.ok_or_else(|| {
            CentreError::Conflict(
                "the customer is not identified on this interaction yet (verify them first)".into(),
            )
        })?;
        let to = store
            .customer(customer)
            .await?
            .map(|c| c.email)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                CentreError::Conflict("the customer has no e-mail address on record".into())
            })?;
        let display = self.display_name(agent);
        // Numbered apart from the interaction's own messages (its Message-ID names it).
        let seq = 1_000_000 + u64::from(rand::random::<u32>());
        let domain = account
            .mailbox
            .as_ref()
            .map(|m| m.domain().to_string())
            .unwrap_or_default();
        let delivery = crate::email::smtp::message_id(&interaction.id, seq, &domain);
        store
            .add_timeline(
                &interaction.id,
                "message",
                serde_json::json!({"from": "agent", "agent": agent, "name": display, "text": text, "channel": "email", "account": account.name, "to": to, "delivery": delivery}),
            )
            .await?;
        tracing::info!(interaction = %interaction.id, mailbox = %account.name, "e-mail to the customer queued");
        let (store, id, to2, text) = (
            store.clone(),
            interaction.id.clone(),
            to.clone(),
            text.to_string(),
        );
        let a = account.clone();
        actix_rt::spawn(async move {
            let o = crate::email::smtp::Outgoing {
                interaction: &id,
                seq,
                to: &to2,
                agent: &display,
                text: &text,
            };
            if let Err(e) = crate::email::smtp::reply(&store, &a, o, &|_, _| {}).await {
                tracing::warn!(interaction = %id, mailbox = %a.name, error = %e, "e-mail to the customer not sent");
                let r = store
                    .add_timeline(
                        &id,
                        "delivery failed",
                        serde_json::json!({"delivery": delivery, "error": e.to_string()}),
                    )
                    .await;
                if let Err(e) = r {
                    tracing::warn!(interaction = %id, error = %e, "e-mail outcome not recorded");
                }
            }
        });
        Ok((account.name.clone(), to))
    }

    /// Each mailbox's status, for `/metrics`.
    pub fn mail_statuses(&self) -> Vec<(String, crate::email::imap::Status)> {
        let accounts = self.mailbox_accounts();
        let status = self.0.mail_status.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    status.get(&a.name).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Starts each mailbox's fetcher (a task each, reconnecting on its own).
    pub fn start_mail(&self) {
        self.0
            .mail_started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for a in self.mailbox_accounts() {
            self.start_fetcher(a);
        }
    }

    /// Starts (or starts again) one mailbox's fetcher.
    fn start_fetcher(&self, a: Arc<ChannelConfig>) {
        let name = a.name.clone();
        let (me, status) = (self.clone(), self.0.mail_status.clone());
        let task = tokio::spawn(crate::email::imap::run(a, Arc::new(me), status));
        let old = self
            .0
            .fetchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, task.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Adds or replaces a mailbox through the admin API (checked as the config file
    /// checks it; its queue must exist; the config file's are read-only); its fetcher
    /// starts (again) at once. Whether it is new. Open threads keep the mailbox they
    /// started with.
    pub async fn put_mailbox(
        &self,
        m: crate::config::MailboxConfig,
    ) -> Result<bool, super::CentreError> {
        use super::CentreError;
        if self.0.config_mailboxes.contains(&m.name) {
            return Err(CentreError::Conflict(format!(
                "mailbox {} is in the config file: change it there",
                m.name
            )));
        }
        m.check().map_err(CentreError::Refused)?;
        self.queue_exists(&m.queue).await?;
        self.0
            .store
            .put_account(
                crate::store::Accounts::Mailbox,
                &m.name,
                &serde_json::to_value(&m).unwrap_or_default(),
            )
            .await?;
        let a = Arc::new(ChannelConfig::of_mailbox(&m));
        let new = self
            .0
            .mailboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(m.name.clone(), a.clone())
            .is_none();
        self.0
            .mail_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&m.name);
        if self
            .0
            .mail_started
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            self.start_fetcher(a);
        }
        Ok(new)
    }

    /// Removes a mailbox added through the admin API: its fetcher stops (its open
    /// threads go on to their end).
    pub async fn delete_mailbox(&self, name: &str) -> Result<(), super::CentreError> {
        use super::CentreError;
        if self.0.config_mailboxes.contains(name) {
            return Err(CentreError::Conflict(format!(
                "mailbox {name} is in the config file: remove it there"
            )));
        }
        if !self
            .0
            .store
            .delete_account(crate::store::Accounts::Mailbox, name)
            .await?
        {
            return Err(CentreError::NotFound(format!("no mailbox {name:?}")));
        }
        self.0
            .mailboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(f) = self
            .0
            .fetchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        {
            f.abort();
        }
        self.0
            .mail_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    /// Imports one raw message of `account`'s mailbox (see the module).
    pub async fn mail_inbound(&self, account: &Arc<ChannelConfig>, raw: &[u8]) -> Import {
        let Some(m) = account.mailbox.as_deref() else {
            return Import::Unusable(format!("{} is not a mailbox", account.name));
        };
        let mail = match crate::email::parse::read(raw, m.max_bytes as usize) {
            Ok(x) => x,
            Err(e) => return Import::Unusable(e.to_string()),
        };
        match self.place_mail(account, m, &mail, raw).await {
            Ok(r) => r,
            // The node's lines are busy, or the thread takes no more now.
            Err(super::CentreError::Refused(why)) => Import::Later(why),
            Err(e) => Import::Failed(e.to_string()),
        }
    }

    async fn place_mail(
        &self,
        account: &Arc<ChannelConfig>,
        m: &crate::config::MailboxConfig,
        mail: &crate::email::parse::Mail,
        raw: &[u8],
    ) -> Result<Import, super::CentreError> {
        let store = &self.0.store;
        if let Some(r) = store.email(&m.name, &mail.message_id).await? {
            if r.status != "failing" && r.status != "importing" {
                return Ok(Import::Done);
            }
        }
        let Some(from) = mail.from.clone() else {
            return Ok(Import::Unusable("the message has no From: address".into()));
        };
        let recipients = mail.recipients.join(" ");
        let refs = mail
            .references
            .iter()
            .chain(
                mail.in_reply_to
                    .iter()
                    .filter(|i| !mail.references.contains(i)),
            )
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let note = |status: &'static str, reason: String, conversation: Option<i64>| {
            let (recipients, refs) = (recipients.clone(), refs.clone());
            let from = from.address.clone();
            async move {
                store
                    .add_email(&NewEmail {
                        mailbox: &m.name,
                        message_id: &mail.message_id,
                        conversation,
                        direction: "in",
                        status,
                        reason: &reason,
                        sender: &from,
                        recipients: &recipients,
                        subject: &mail.subject,
                        refs: &refs,
                        raw: Some(raw),
                        ..Default::default()
                    })
                    .await
            }
        };
        // Our own mail back (a loop): never answered.
        let ours = self
            .mailbox_accounts()
            .iter()
            .filter_map(|a| a.mailbox.as_ref())
            .any(|b| b.address.eq_ignore_ascii_case(&from.address));
        if ours {
            note("automatic", "from our own address".into(), None).await?;
            return Ok(Import::Done);
        }
        if let Some(b) = &mail.bounce {
            for id in &b.refers {
                if let Some(row) = store.email_bounced(id, &b.reason).await? {
                    if let Some(i) = &row.interaction {
                        let error = format!("bounced: {}", b.reason);
                        store
                            .add_timeline(
                                i,
                                "delivery failed",
                                serde_json::json!({"seq": row.seq, "error": error}),
                            )
                            .await?;
                        if let Some((_, addr)) = self.chat(i) {
                            addr.do_send(crate::actors::chat::DeliveryNews {
                                seq: row.seq as u64,
                                status: "failed".into(),
                                error,
                            });
                        }
                        tracing::info!(interaction = %i, seq = row.seq, reason = %b.reason, "reply bounced");
                    }
                }
            }
            note("automatic", "a delivery report".into(), None).await?;
            return Ok(Import::Done);
        }
        let key = self
            .0
            .mail_key
            .get_or_try_init(|| store.node_key(crate::email::smtp::TOKEN_KEY))
            .await?;
        let clues = thread::clues(mail, &m.address, key);
        let mut facts = Facts {
            messages: store
                .email_conversations(&clues.ids)
                .await?
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let candidates: Vec<i64> = clues
            .token
            .into_iter()
            .chain(facts.messages.values().copied())
            .chain(clues.tag)
            .collect();
        for c in candidates {
            if let std::collections::hash_map::Entry::Vacant(e) = facts.cases.entry(c) {
                e.insert(store.case_addresses(c).await?);
            }
        }
        let placement = thread::resolve(&clues, &from.address, &facts);
        // This message as the store keeps it once placed.
        let incoming = NewEmail {
            mailbox: &m.name,
            message_id: &mail.message_id,
            direction: "in",
            seq: 0,
            sender: &from.address,
            recipients: &recipients,
            subject: &mail.subject,
            refs: &refs,
            raw: Some(raw),
            ..Default::default()
        };
        // A reply to the survey question its last thread asked (before the case could
        // reopen for it): the answer, on record, and nothing more.
        if let (Placement::Case { conversation, .. }, None) = (&placement, &mail.automatic) {
            let text = crate::email::parse::fold_quoted(&mail.text);
            let key = thread_key(*conversation);
            if let Some(id) = self.survey_answer(account, &key, &text, "email").await? {
                store
                    .add_email(&NewEmail {
                        interaction: Some(&id),
                        conversation: Some(*conversation),
                        status: "received",
                        reason: "a survey answer",
                        ..incoming
                    })
                    .await?;
                return Ok(Import::Done);
            }
        }
        let conversation = match placement {
            // A resolved case comes back open, unless its customer has another.
            Placement::Case { conversation, by }
                if store.reopen_conversation(conversation).await? =>
            {
                tracing::debug!(conversation, by, "mail joins its case");
                Some(conversation)
            }
            _ => store.open_case_for(&from.address).await?,
        };
        if let Some(why) = &mail.automatic {
            note("automatic", why.clone(), conversation).await?;
            tracing::info!(mailbox = %m.name, from = %from.address, reason = %why, "automatic mail noted, not answered");
            return Ok(Import::Done);
        }
        let (id, addr, conversation) = self.mail_thread(account, &from, conversation).await?;
        // On record before the thread has it: an agent's reply, however quick,
        // finds what it answers (a crash before it is stored: fetched again, and the
        // thread counts it once by its id).
        store
            .add_email(&NewEmail {
                interaction: Some(&id),
                conversation,
                status: "importing",
                ..incoming
            })
            .await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        addr.send(crate::actors::chat::Customer::Provider {
            id: mail.message_id.clone(),
            text: crate::email::parse::for_agent(mail),
            at: mail
                .date
                .map(|d| d.max(0) as u64)
                .unwrap_or_else(crate::clock::unix_secs),
            done: tx,
        })
        .await
        .map_err(|e| super::CentreError::Internal(e.to_string()))?;
        let seq = rx
            .await
            .map_err(|_| super::CentreError::Internal("the thread ended".into()))?
            .map_err(super::CentreError::Refused)?;
        store
            .email_imported(&m.name, &mail.message_id, seq as i64)
            .await?;
        tracing::info!(interaction = %id, mailbox = %m.name, seq, "mail imported");
        Ok(Import::Done)
    }

    /// The open e-mail thread of a case, or a new one (an interaction of kind
    /// `email` on that case, or on the sender's new case).
    async fn mail_thread(
        &self,
        account: &Arc<ChannelConfig>,
        from: &crate::email::parse::Person,
        conversation: Option<i64>,
    ) -> Result<
        (
            String,
            actix::Addr<crate::actors::chat::ChatActor>,
            Option<i64>,
        ),
        super::CentreError,
    > {
        if let Some(c) = conversation {
            let live = self
                .0
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(account.name.clone(), thread_key(c)))
                .cloned();
            if let Some((id, addr)) = live.and_then(|id| Some((id.clone(), self.chat(&id)?.1))) {
                return Ok((id, addr, Some(c)));
            }
        }
        if self.0.chats.lock().unwrap_or_else(|e| e.into_inner()).len() >= self.0.chat_max_open {
            return Err(super::CentreError::Refused(
                "all chat lines of this node are busy".into(),
            ));
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let (customer, conversation) = self
            .0
            .store
            .start_interaction(&crate::store::NewInteraction {
                id: &id,
                kind: "email",
                direction: "inbound",
                from: &from.address,
                dialled: &from.address,
                trunk: &account.name,
                conversation,
                ..Default::default()
            })
            .await?;
        let p = crate::store::Provenance {
            source: "email",
            interaction: Some(&id),
            actor: "",
        };
        let name = self.name_for(customer, from.name.clone(), &p).await?;
        let key = thread_key(conversation.unwrap_or_default());
        let start = crate::actors::chat::ChatStart {
            customer,
            conversation,
            name,
            address: from.address.clone(),
            priority: account.priority,
            provider: Some(crate::actors::chat::ProviderLink {
                account: account.clone(),
                peer: from.address.clone(),
                key: key.clone(),
                threads: self.0.threads.clone(),
                first_at: crate::clock::unix_secs(),
            }),
            bot: self.bot_if(account.bot),
            ..self.chat_start(&id, account.queue.clone())
        };
        self.0
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((account.name.clone(), key), id.clone());
        let addr = self.spawn_chat(start, String::new());
        tracing::info!(interaction = %id, mailbox = %account.name, "e-mail thread started");
        Ok((id, addr, conversation))
    }
}

impl Importer for Centre {
    fn import<'a>(
        &'a self,
        account: &'a Arc<ChannelConfig>,
        raw: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Import> + Send + 'a>> {
        Box::pin(async move { self.mail_inbound(account, &raw).await })
    }

    fn store(&self) -> &crate::store::Store {
        &self.0.store
    }

    fn purges(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.mail_purge.subscribe()
    }
}

impl Centre {
    /// Wakes the fetchers: an erasure left mail to delete on the servers.
    pub(crate) fn purge_mail(&self) {
        self.0.mail_purge.send_modify(|n| *n += 1);
    }
}
