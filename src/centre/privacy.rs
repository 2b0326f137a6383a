//! The privacy workflows (`crate::privacy`): consent recorded with its evidence, a
//! customer's data exported (access and portability), and erased (preview, confirm,
//! run, proof). Every act is in the audit log: who, what, when.

use super::{Centre, CentreError};
use crate::privacy::{ConsentEvent, ErasureStatus};
use crate::store::{ErasureRow, Inventory};
use std::path::{Path, PathBuf};

/// Who acts: their name and role (`admin`, `supervisor`).
pub struct Actor<'a> {
    pub name: &'a str,
    pub role: &'a str,
}

/// Days the law gives to answer an access request (Ecuador's LOPDP: 15; the GDPR's
/// month is longer).
pub const ACCESS_DAYS: i64 = 15;

/// One file of an export archive.
pub enum ExportFile {
    /// Made in memory (the JSON, a message's source).
    Bytes(String, Vec<u8>),
    /// Read from disk as it is sent (a recording, a voicemail).
    File(String, PathBuf, u64),
}

impl Centre {
    async fn audit_privacy(
        &self,
        who: &Actor<'_>,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), CentreError> {
        self.store()
            .audit(&crate::store::Audit {
                actor: who.name,
                role: who.role,
                action,
                interaction: None,
                detail,
            })
            .await?;
        Ok(())
    }

    /// Records a consent given or withdrawn for a customer; the event's id.
    pub async fn record_consent(
        &self,
        customer: i64,
        e: &ConsentEvent,
        who: &Actor<'_>,
    ) -> Result<i64, CentreError> {
        self.live_customer(customer).await?;
        let id = self.store().record_consent(customer, e).await?;
        self.audit_privacy(
            who,
            "consent.changed",
            serde_json::json!({"customer": customer, "consent": e.kind(), "granted": e.granted, "event": id}),
        )
        .await?;
        Ok(id)
    }

    /// A customer's consent: the current one per purpose and channel, and every event.
    pub async fn consents_of(&self, customer: i64) -> Result<serde_json::Value, CentreError> {
        self.live_customer(customer).await?;
        let s = self.store();
        let current: serde_json::Map<String, serde_json::Value> = s
            .consents(customer)
            .await?
            .into_iter()
            .map(|(k, granted, at)| (k, serde_json::json!({"granted": granted, "at": at})))
            .collect();
        Ok(
            serde_json::json!({"customer": customer, "current": current, "events": s.consent_events(customer).await?}),
        )
    }

    /// A customer that exists and is not erased.
    async fn live_customer(&self, customer: i64) -> Result<(), CentreError> {
        if self.store().customer(customer).await?.is_none() || self.erased(customer).await? {
            return Err(CentreError::NotFound(format!("no customer {customer}")));
        }
        Ok(())
    }

    async fn erased(&self, customer: i64) -> Result<bool, CentreError> {
        Ok(self.store().customer_erased_at(customer).await?.is_some())
    }

    /// The counts an erasure's preview shows, per kind of data.
    async fn counts(&self, inv: &Inventory) -> serde_json::Value {
        let mut attachments = 0;
        for (mailbox, id) in &inv.mails {
            if let Ok(Some(raw)) = self.store().email_raw(mailbox, id).await {
                attachments += mail_parser::MessageParser::default()
                    .parse(&raw)
                    .map_or(0, |m| m.attachment_count());
            }
        }
        serde_json::json!({
            "identities": inv.identities.len(),
            "cases": inv.conversations.len(),
            "interactions": inv.interactions.len(),
            "messages": inv.messages,
            "mails": inv.mails.len(),
            "attachments": attachments,
            "recordings": inv.recordings.len(),
            "voicemails": inv.voicemails.len(),
            "survey_answers": inv.survey_answers,
            "consents": inv.consents,
            "webhook_recipients": inv.webhooks.len(),
        })
    }

    /// Asks for a customer's erasure: recorded as `previewed` with the counts of what
    /// it would erase; nothing is erased until it is confirmed. (id, counts).
    pub async fn request_erasure(
        &self,
        customer: i64,
        who: &Actor<'_>,
    ) -> Result<(i64, serde_json::Value), CentreError> {
        self.live_customer(customer).await?;
        let inv = self
            .store()
            .inventory(customer)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no customer {customer}")))?;
        let preview = self.counts(&inv).await;
        let id = self
            .store()
            .new_erasure(customer, who.name, &preview)
            .await?;
        self.audit_privacy(
            who,
            "erasure.requested",
            serde_json::json!({"erasure": id, "customer": customer}),
        )
        .await?;
        Ok((id, preview))
    }

    /// An erasure as the API shows it.
    pub async fn erasure_json(&self, id: i64) -> Result<serde_json::Value, CentreError> {
        let e = self
            .store()
            .erasure(id)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no erasure {id}")))?;
        let mut j = erasure_json(&e);
        if e.status == ErasureStatus::Completed {
            j["mail_server_pending"] = self.store().mail_purges_pending(id).await?.into();
        }
        Ok(j)
    }

    /// Confirms an erasure: refused when it already ran or one of the customer's
    /// cases is under a legal hold; otherwise it runs (its status says when it is
    /// done). Their live calls, chats and threads are ended first.
    pub async fn confirm_erasure(
        &self,
        id: i64,
        who: &Actor<'_>,
    ) -> Result<serde_json::Value, CentreError> {
        let e = self
            .store()
            .erasure(id)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no erasure {id}")))?;
        let inv = self
            .store()
            .inventory(e.customer)
            .await?
            .unwrap_or_default();
        for case in &inv.conversations {
            if let Some((_, by)) = self.store().legal_hold(*case).await? {
                return Err(CentreError::Conflict(format!(
                    "case {case} of this customer is under a legal hold (placed by {by}): lift it first"
                )));
            }
        }
        if !self.store().start_erasure(id, who.name).await? {
            return Err(CentreError::Conflict(format!(
                "erasure {id} is {} already",
                e.status.name()
            )));
        }
        self.audit_privacy(
            who,
            "erasure.confirmed",
            serde_json::json!({"erasure": id, "customer": e.customer}),
        )
        .await?;
        let c = self.clone();
        let (name, role) = (who.name.to_string(), who.role.to_string());
        actix_rt::spawn(async move {
            let who = Actor {
                name: &name,
                role: &role,
            };
            let outcome = c.run_erasure(id, e.customer, &who).await;
            let done = match &outcome {
                Ok(proof) => c.store().finish_erasure(id, Ok(proof)).await,
                Err(why) => {
                    tracing::warn!(erasure = id, error = %why, "an erasure failed");
                    c.store().finish_erasure(id, Err(&why.to_string())).await
                }
            };
            if let Err(e) = done {
                tracing::warn!(erasure = id, error = %e, "an erasure's outcome was not recorded");
            }
        });
        self.erasure_json(id).await
    }

    /// Runs a confirmed erasure: the customer's live chats ended, the database
    /// emptied of them, their files deleted, the receivers of their data told, the
    /// database's free space made unreadable. The proof: what was erased, by kind.
    async fn run_erasure(
        &self,
        id: i64,
        customer: i64,
        who: &Actor<'_>,
    ) -> Result<serde_json::Value, CentreError> {
        let inv = self
            .store()
            .inventory(customer)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no customer {customer}")))?;
        let counts = self.counts(&inv).await;
        let calls = self.end_calls(&inv.interactions, who).await?;
        let mut ended = 0;
        for i in &inv.interactions {
            if let Some((_, chat)) = self.chat(i) {
                use crate::actors::chat::SupervisorAct;
                let took = chat
                    .send(SupervisorAct::TakeOver {
                        supervisor: who.name.into(),
                        name: "Data protection".into(),
                    })
                    .await;
                let end = chat
                    .send(SupervisorAct::End {
                        supervisor: who.name.into(),
                    })
                    .await;
                if matches!((took, end), (Ok(Ok(_)), Ok(Ok(_)))) {
                    ended += 1;
                } else {
                    tracing::warn!(erasure = id, interaction = %i, "a live chat of an erased customer did not end");
                }
            }
        }
        let inv = self
            .store()
            .erase_customer(customer, id)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no customer {customer}")))?;
        // Each mailbox's fetcher deletes the server's copies (the erasure's status shows
        // how many are left).
        self.purge_mail();
        let mut files = 0;
        for p in inv.recordings.iter().chain(&inv.voicemails) {
            if self.delete_data_file(Path::new(p))? {
                files += 1;
            }
        }
        self.webhooks()
            .post_erased(&inv.webhooks, &inv.pops, customer, id);
        self.store().compact_after_erasure().await?;
        let proof = serde_json::json!({
            "customer": customer,
            "erased": counts,
            "files_deleted": files,
            "live_chats_ended": ended,
            "live_calls_ended": calls,
            "webhook_recipients_told": inv.webhooks.len(),
            "mails_to_delete_on_server": inv.mails.len(),
            "tombstones": inv.identities.len() + inv.mails.len(),
        });
        self.store()
            .answer_requests_of(customer, &["erasure"], who.name, &format!("erasure {id}"))
            .await?;
        self.audit_privacy(
            who,
            "erasure.completed",
            serde_json::json!({"erasure": id, "customer": customer}),
        )
        .await?;
        tracing::info!(erasure = id, customer, files, "customer erased");
        Ok(proof)
    }

    /// Ends the live calls among `interactions` (every leg; the caller gets a BYE) and
    /// waits until they are over (their recordings closed): how many there were.
    async fn end_calls(
        &self,
        interactions: &[String],
        who: &Actor<'_>,
    ) -> Result<usize, CentreError> {
        use crate::actors::messages::AgentCall;
        use crate::call::{AgentCommand, SupervisorCommand};
        let live: Vec<&String> = interactions
            .iter()
            .filter(|i| self.call(i).is_some())
            .collect();
        for i in &live {
            if let Some(call) = self.call(i) {
                let end = SupervisorCommand::End {
                    supervisor: who.name.to_string(),
                    reason: "the customer's data is erased",
                };
                // A call that ended meanwhile answers that it is over: as good.
                let _ = call.send(AgentCall(AgentCommand::Supervise(end))).await;
            }
        }
        // A call is over when it leaves the registry (its BYE answered or timed out:
        // SIP's 32 s at most).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
        while live.iter().any(|i| self.call(i).is_some()) {
            if tokio::time::Instant::now() > deadline {
                return Err(CentreError::Internal(
                    "a live call of the customer did not end".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(live.len())
    }

    /// Records a customer's data-protection request (`privacy::requests` reads it):
    /// due in 15 days from its receipt; audited.
    pub async fn record_request(
        &self,
        r: &crate::privacy::requests::NewRequest,
        who: &Actor<'_>,
    ) -> Result<serde_json::Value, CentreError> {
        self.live_customer(r.customer).await?;
        let id = self.store().add_request(r, who.name).await?;
        self.audit_privacy(
            who,
            "request.recorded",
            serde_json::json!({"request": id, "customer": r.customer, "kind": r.kind}),
        )
        .await?;
        self.request_json(id).await
    }

    pub async fn request_json(&self, id: i64) -> Result<serde_json::Value, CentreError> {
        let r = self
            .store()
            .request(id)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no request {id}")))?;
        Ok(request_json(&r, crate::clock::unix_millis() as i64))
    }

    /// The requests, soonest due first (`open`: the unanswered ones only).
    pub async fn requests_json(&self, open: bool) -> Result<serde_json::Value, CentreError> {
        let now = crate::clock::unix_millis() as i64;
        let rows = self.store().requests(open, 1000).await?;
        Ok(rows.iter().map(|r| request_json(r, now)).collect())
    }

    /// Answers a request (once; the answer checked by the caller); audited.
    pub async fn answer_request(
        &self,
        id: i64,
        answer: &str,
        who: &Actor<'_>,
    ) -> Result<serde_json::Value, CentreError> {
        let r = self
            .store()
            .request(id)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no request {id}")))?;
        if !self.store().answer_request(id, who.name, answer).await? {
            return Err(CentreError::Conflict(format!(
                "request {id} was answered already"
            )));
        }
        self.audit_privacy(
            who,
            "request.answered",
            serde_json::json!({"request": id, "customer": r.customer}),
        )
        .await?;
        self.request_json(id).await
    }

    /// Puts a legal hold on a case (`hold`) or lifts it; audited. The case's hold as
    /// the API shows it.
    pub async fn legal_hold(
        &self,
        case: i64,
        hold: bool,
        who: &Actor<'_>,
    ) -> Result<serde_json::Value, CentreError> {
        if !self
            .store()
            .set_legal_hold(case, hold.then_some(who.name))
            .await?
        {
            return Err(CentreError::NotFound(format!("no case {case}")));
        }
        let action = if hold { "hold.placed" } else { "hold.lifted" };
        self.audit_privacy(who, action, serde_json::json!({"case": case}))
            .await?;
        Ok(match self.store().legal_hold(case).await? {
            Some((at, by)) => {
                serde_json::json!({"case": case, "held": true, "since": at, "by": by})
            }
            None => serde_json::json!({"case": case, "held": false}),
        })
    }

    /// Applies retention as at `now` (Unix ms): what `[retention]` says has expired is
    /// emptied in the database (nothing on a case under a legal hold), its recordings
    /// and voicemails deleted from disk; the run is audited as `who`. What it took.
    pub async fn apply_retention(
        &self,
        now: i64,
        who: &Actor<'_>,
    ) -> Result<serde_json::Value, CentreError> {
        let policy = self.0.retention.policy();
        let took = if policy.is_empty() {
            crate::store::Expired::default()
        } else {
            self.store().apply_retention(&policy.cutoffs(now)).await?
        };
        let mut files = 0;
        for p in took.recordings.iter().chain(&took.voicemails) {
            match self.delete_data_file(Path::new(p)) {
                Ok(true) => files += 1,
                Ok(false) => {}
                // One file that cannot go does not keep the others.
                Err(e) => tracing::warn!(error = %e, "an expired file was not deleted"),
            }
        }
        let report = serde_json::json!({
            "recordings": took.recordings.len(),
            "voicemails": took.voicemails.len(),
            "messages": took.messages,
            "raw_mails": took.raw_mails,
            "bot_logs": took.bot_logs,
            "files_deleted": files,
        });
        self.audit_privacy(who, "retention.applied", report.clone())
            .await?;
        if !policy.is_empty() {
            tracing::info!(
                recordings = took.recordings.len(),
                voicemails = took.voicemails.len(),
                messages = took.messages,
                raw_mails = took.raw_mails,
                bot_logs = took.bot_logs,
                "retention applied"
            );
        }
        Ok(report)
    }

    /// The daily retention job, for ever (nothing to do when `[retention]` keeps
    /// everything): its schedule is the pure `retention::Schedule`, this only sleeps
    /// until it is due.
    pub async fn run_retention(self) {
        if self.0.retention.policy().is_empty() {
            return;
        }
        let now = || crate::clock::unix_millis() as i64;
        let mut schedule =
            crate::privacy::retention::Schedule::new(now(), self.0.retention.run_at_min());
        loop {
            let wait = (schedule.next() - now()).max(0) as u64;
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            if !schedule.due(now()) {
                continue;
            }
            let who = Actor {
                name: "retention",
                role: "system",
            };
            if let Err(e) = self.apply_retention(now(), &who).await {
                tracing::warn!(error = %e, "retention failed; tried again at the next run");
            }
        }
    }

    /// A file the store names, if it exists and lies under the data directory (a
    /// path elsewhere is never opened or deleted, whatever the record says).
    pub fn data_file(&self, p: &Path) -> Result<Option<PathBuf>, CentreError> {
        let root = self
            .0
            .data_dir
            .canonicalize()
            .map_err(|e| CentreError::Internal(format!("the data directory: {e}")))?;
        let file = match p.canonicalize() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CentreError::Internal(format!("a data file: {e}"))),
        };
        if !file.starts_with(&root) {
            return Err(CentreError::Internal(
                "a data file lies outside the data directory".into(),
            ));
        }
        Ok(Some(file))
    }

    /// Deletes a file the store names ([`Centre::data_file`]): whether there was one.
    fn delete_data_file(&self, p: &Path) -> Result<bool, CentreError> {
        let Some(file) = self.data_file(p)? else {
            return Ok(false);
        };
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CentreError::Internal(format!("a file to erase: {e}"))),
        }
    }

    /// Everything held of a customer (access and portability): `export.json` (their
    /// record, identities, consent events, interactions with their timelines, mail,
    /// survey answers, who was sent their data, the request's legal deadline), each
    /// mail's source under `mail/` and each recording and voicemail under
    /// `recordings/` and `voicemail/`.
    pub async fn export_customer(
        &self,
        customer: i64,
        who: &Actor<'_>,
    ) -> Result<Vec<ExportFile>, CentreError> {
        self.live_customer(customer).await?;
        let s = self.store();
        let inv = s
            .inventory(customer)
            .await?
            .ok_or_else(|| CentreError::NotFound(format!("no customer {customer}")))?;
        let mut files = Vec::new();
        let mut interactions = Vec::new();
        for i in &inv.interactions {
            let Some(row) = s.interaction(i).await? else {
                continue;
            };
            let timeline: Vec<serde_json::Value> = s
                .timeline(i)
                .await?
                .into_iter()
                .map(|e| serde_json::json!({"kind": e.kind, "data": e.data, "at": e.at}))
                .collect();
            let survey = s.survey_answer(i).await?.map(|a| {
                serde_json::json!({"channel": a.channel, "score": a.score, "comment": a.comment, "at": a.at})
            });
            let mut j = serde_json::to_value(&row).unwrap_or_default();
            j["timeline"] = timeline.into();
            j["survey_answer"] = survey.into();
            interactions.push(j);
        }
        let mut mails = Vec::new();
        for (n, (mailbox, mid)) in inv.mails.iter().enumerate() {
            let row = s.email(mailbox, mid).await?;
            let file = format!("mail/{n}.eml");
            if let Some(raw) = s.email_raw(mailbox, mid).await? {
                files.push(ExportFile::Bytes(file.clone(), raw));
            }
            mails.push(serde_json::json!({
                "mailbox": mailbox, "message_id": mid, "file": file,
                "direction": row.as_ref().map(|r| r.direction.clone()),
                "from": row.as_ref().map(|r| r.sender.clone()),
                "subject": row.as_ref().map(|r| r.subject.clone()),
            }));
        }
        let media = |dir: &str, paths: &[String], files: &mut Vec<ExportFile>| {
            let mut names = Vec::new();
            for p in paths {
                let Ok(Some(f)) = self.data_file(Path::new(p)) else {
                    continue;
                };
                let Ok(meta) = std::fs::metadata(&f) else {
                    continue;
                };
                let name = format!(
                    "{dir}/{}",
                    f.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                );
                names.push(name.clone());
                files.push(ExportFile::File(name, f, meta.len()));
            }
            names
        };
        let recordings = media("recordings", &inv.recordings, &mut files);
        let voicemails = media("voicemail", &inv.voicemails, &mut files);
        let now = crate::clock::unix_millis() as i64;
        let doc = serde_json::json!({
            "customer": s.customer_card(customer).await?,
            "identities": inv.identities.iter().map(|(k, v)| serde_json::json!({"kind": k, "value": v})).collect::<Vec<_>>(),
            "provenance": s.provenance(customer).await?,
            "consents": s.consent_events(customer).await?,
            "interactions": interactions,
            "mails": mails,
            "recordings": recordings,
            "voicemails": voicemails,
            "webhook_recipients": inv.webhooks,
            "request": {"by": who.name, "at": now, "due_at": now + ACCESS_DAYS * 86_400_000},
        });
        let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        files.insert(0, ExportFile::Bytes("export.json".into(), body));
        // The export answers their open access and portability requests.
        s.answer_requests_of(customer, &["access", "portability"], who.name, "exported")
            .await?;
        self.audit_privacy(
            who,
            "customer.exported",
            serde_json::json!({"customer": customer, "files": files.len()}),
        )
        .await?;
        Ok(files)
    }
}

/// A data-protection request as the API shows it, where it stands at `now`.
pub fn request_json(r: &crate::store::RequestRow, now: i64) -> serde_json::Value {
    use crate::privacy::requests::{days_left, State};
    let state = State::of(r.due_at, r.answered_at, now);
    let mut j = serde_json::json!({
        "id": r.id, "customer": r.customer, "kind": r.kind,
        "received_at": r.received_at, "due_at": r.due_at, "state": state.name(),
        "recorded_by": r.recorded_by, "note": r.note,
    });
    match r.answered_at {
        Some(at) => {
            j["answered_at"] = at.into();
            j["answered_by"] = r.answered_by.clone().into();
            j["answer"] = r.answer.clone().into();
        }
        None => j["days_left"] = days_left(r.due_at, now).into(),
    }
    j
}

/// An erasure as the API shows it: its status (with the reason when it failed), who
/// asked and when, the preview's counts, and once completed the proof.
pub fn erasure_json(e: &ErasureRow) -> serde_json::Value {
    let mut j = serde_json::json!({
        "id": e.id,
        "customer": e.customer,
        "status": e.status.name(),
        "requested_by": e.requested_by,
        "requested_at": e.requested_at,
        "preview": e.preview,
    });
    if !e.executed_by.is_empty() {
        j["executed_by"] = e.executed_by.clone().into();
        j["executed_at"] = e.executed_at.into();
    }
    match e.status {
        ErasureStatus::Failed => j["reason"] = e.reason.clone().into(),
        ErasureStatus::Completed => {
            j["completed_at"] = e.completed_at.into();
            j["proof"] = e.proof.clone();
        }
        _ => {}
    }
    j
}
