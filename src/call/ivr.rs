//! The call core's IVR part: it drives a dialplan [`Run`] with the call's media and
//! the outside world. The run's outputs become media commands (prompts; speech is
//! asked of the driver), timers, store lookups, webhooks, the queue, transfers and
//! voicemails; media and SIP events become the run's inputs. Everything the caller
//! entered is written to the call's interaction record when it joins a queue and when
//! it ends.

use super::{
    play_item, LegKey, LegState, MediaCommand, NewRecord, Output, Role, RouterRequest, Session,
    SipCommand, StoreWrite, Then, Time, Timer, CUSTOMER,
};
use crate::dialplan::engine::{Dest, Ending, Input, Output as RunOutput, PlayItem};
use crate::dialplan::{CallInfo, Run};
use crate::media::player::{Item, Samples};
use rand::Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Media ids of a prompt's items: run id × 64 + index.
const ITEMS: u64 = 64;
/// How often a queued caller hears where they are.
const QUEUE_POLL: Duration = Duration::from_secs(5);

pub(super) struct Ivr {
    pub(super) run: Run,
    pub(super) interaction: String,
    /// `voice` or `video`, as recorded.
    pub(super) kind: &'static str,
    /// The prompt the run waits for: (its id, the media id of its last item).
    play: Option<(u64, u64)>,
    pub(super) customer_id: Option<i64>,
    pub(super) queue: Option<String>,
    /// The caller waits in a queue (its position is polled).
    queued: bool,
    /// How the run ended, once it has.
    pub(super) outcome: Option<String>,
    /// Prompts waiting for their speech: id → (items, barge-in).
    speaking: HashMap<u64, (Vec<PlayItem>, bool)>,
    /// An enqueue waiting for the customer's routing hints.
    enqueue: Option<super::Enqueue>,
    /// Whether the customer record says gold or VIP.
    tier_vip: bool,
    /// The interaction record exists; until then its writes wait in `pending`.
    pub(super) started: bool,
    pending: Vec<StoreWrite>,
    /// The agent hung up first and the caller went on in the flow (a survey): the
    /// agent was freed and the interaction's end recorded then.
    after_agent: bool,
}

impl Session {
    /// Starts the flow routed for this call, if any. False: no flow applies.
    pub(super) fn start_ivr(&mut self, now: Time) -> bool {
        let Some(dp) = self.policy.dialplan.clone() else {
            return false;
        };
        let Some(set) = self.flows.clone() else {
            return false;
        };
        let Some(name) = dp
            .config
            .flow_for(&self.callee, self.trunk.as_deref(), dp.demo)
        else {
            return false;
        };
        let Some(flow) = set.flows.get(&name).cloned() else {
            tracing::warn!(call = %self.call(), flow = %name, "no flow of that name is loaded; using the built-in handler");
            return false;
        };
        self.run_flow(now, set, flow);
        true
    }

    /// A video call from the chat runs a flow of its own: answer, then wait for the
    /// chat's agent (offered to them alone), for [`ESCALATION_RING`] at most.
    ///
    /// [`ESCALATION_RING`]: super::ESCALATION_RING
    pub(super) fn start_escalation(&mut self, now: Time) {
        let Some(e) = self.escalation.clone() else {
            return;
        };
        // The queue's name is the configuration's, quoted as a YAML (JSON) string;
        // nothing the customer typed goes into the flow's text.
        let text = format!(
            "flow: video-call\ndescription: A customer's video call from the web chat, for the agent who has the chat.\nsteps:\n  answer:\n    answer: true\n  agent:\n    enqueue:\n      queue: {}\n      max_wait: {}s\n    timeout: bye\n  bye:\n    hangup: true\n",
            serde_json::Value::String(e.queue.clone()),
            super::ESCALATION_RING.as_secs(),
        );
        let opts = crate::dialplan::LoadOptions { tts: false };
        let flow = match crate::dialplan::load_str(&text, std::path::Path::new("video-call"), &opts)
        {
            Ok(f) => std::sync::Arc::new(f),
            Err(p) => {
                tracing::warn!(call = %self.call(), problems = ?p, "the video call's flow does not load");
                self.sip(SipCommand::Reject(
                    self.call(),
                    500,
                    "Server Internal Error",
                ));
                return self.stop();
            }
        };
        let set = std::sync::Arc::new(crate::dialplan::FlowSet {
            flows: [(flow.name.clone(), flow.clone())].into(),
        });
        self.run_flow(now, set, flow);
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.customer_id = e.customer;
            // The offer names the person as the chat did.
            if !e.name.is_empty() {
                ivr.run.set_var("customer.name", &e.name);
            }
        }
    }

    fn run_flow(
        &mut self,
        now: Time,
        set: std::sync::Arc<crate::dialplan::FlowSet>,
        flow: std::sync::Arc<crate::dialplan::Flow>,
    ) {
        self.mode = super::Mode::Ivr;
        let interaction = format!("{:016x}", self.rng.gen::<u64>());
        let e = self.escalation.as_ref();
        let info = CallInfo {
            caller: self.caller.clone(),
            caller_name: e.map(|e| e.name.clone()).unwrap_or_default(),
            dialled: self.callee.clone(),
            trunk: self.trunk.clone().unwrap_or_default(),
            call_id: interaction.clone(),
        };
        tracing::info!(call = %self.call(), flow = %flow.name, version = %flow.version, %interaction, "ivr start");
        // A video call: from the chat, or a caller offering video an agent's browser
        // can take (the IVR accepts it for the agent).
        let kind = if e.is_some() || !self.video_for_agents().is_empty() {
            "video"
        } else {
            "voice"
        };
        // The run starts once the record exists (nothing is written to it before).
        self.out.push_back(Output::StartInteraction(NewRecord {
            id: interaction.clone(),
            kind,
            from: info.caller.clone(),
            dialled: info.dialled.clone(),
            trunk: info.trunk.clone(),
            flow: flow.name.clone(),
            flow_version: flow.version.clone(),
            conversation: e.and_then(|e| e.conversation),
            unverified: e.is_some_and(|e| e.customer.is_none()),
        }));
        self.out.push_back(Output::Register(true));
        self.ivr = Some(Ivr {
            run: Run::new(set, flow, &info),
            interaction,
            kind,
            play: None,
            customer_id: None,
            queue: None,
            queued: false,
            after_agent: false,
            outcome: None,
            speaking: HashMap::new(),
            enqueue: None,
            tier_vip: false,
            started: false,
            pending: vec![],
        });
        let _ = now;
    }

    pub(super) fn interaction_started(&mut self, now: Time, r: Result<super::Started, String>) {
        match r {
            Err(e) => {
                tracing::warn!(call = %self.call(), error = %e, "cannot record the interaction")
            }
            Ok(known) if known.recording_withdrawn => {
                // Before anything was recorded: the call starts unrecorded.
                tracing::info!(call = %self.call(), "the caller withdrew their recording consent: not recording");
                self.stop_recording("consent withdrawn");
            }
            Ok(_) => {}
        }
        let Some(ivr) = self.ivr.as_mut() else { return };
        ivr.started = true;
        for w in std::mem::take(&mut ivr.pending) {
            self.out.push_back(Output::Store(w));
        }
        let Some(ivr) = self.ivr.as_mut() else { return };
        if ivr.outcome.is_none() {
            ivr.run.start(now);
            self.ivr_pump(now);
        }
        // The caller may have left while the record was made.
        self.maybe_finish();
    }

    /// A write to the interaction record (held back until the record exists).
    pub(super) fn store(&mut self, w: StoreWrite) {
        match self.ivr.as_mut() {
            Some(ivr) if !ivr.started => ivr.pending.push(w),
            Some(_) => self.out.push_back(Output::Store(w)),
            None => {}
        }
    }

    pub(super) fn ivr_input(&mut self, now: Time, i: Input) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        ivr.run.handle(now, i);
        self.ivr_pump(now);
    }

    /// Plays (or queues until the caller's media is up) one item on the caller's leg.
    fn customer_play(&mut self, item: Item) {
        match self
            .customer_media()
            .filter(|_| self.customer().state == LegState::Up)
        {
            Some(leg) => self.media_cmd(MediaCommand::Play(leg, item)),
            None => self.pending_media.push(item),
        }
    }

    /// The caller's media is up: a short silence, then what the flow asked to play.
    pub(super) fn ivr_media_up(&mut self) {
        let Some(leg) = self.customer_media() else {
            return;
        };
        let pending = std::mem::take(&mut self.pending_media);
        self.media_cmd(MediaCommand::Play(
            leg,
            Item::Silence {
                id: 0,
                samples: 1600,
            },
        ));
        for i in pending {
            self.media_cmd(MediaCommand::Play(leg, i));
        }
    }

    fn play_items(&mut self, id: u64, items: Vec<(PlayItem, Option<Samples>)>, barge_in: bool) {
        let n = items.len() as u64;
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.play = Some((id, id * ITEMS + n - 1));
        }
        for (i, (item, spoken)) in items.into_iter().enumerate() {
            let it = play_item(item, spoken, id * ITEMS + i as u64, barge_in);
            self.customer_play(it);
        }
    }

    /// Speech for prompt `id` is ready: played if the run still wants it.
    pub(super) fn spoken(&mut self, _now: Time, id: u64, speech: Vec<Option<Samples>>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let Some((items, barge_in)) = ivr.speaking.remove(&id) else {
            return;
        };
        if ivr.outcome.is_some() {
            return;
        }
        let mut speech = speech.into_iter();
        let items = items
            .into_iter()
            .map(|i| {
                let s = match &i {
                    PlayItem::Say(_) => speech.next().flatten(),
                    _ => None,
                };
                (i, s)
            })
            .collect();
        self.play_items(id, items, barge_in);
    }

    fn update_interaction(&mut self, outcome: Option<String>, ended: bool) {
        let vars = self.ivr_vars();
        let Some(ivr) = self.ivr.as_ref() else { return };
        let w = StoreWrite::Update {
            customer: ivr.customer_id,
            queue: ivr.queue.clone(),
            outcome,
            path: ivr.run.path().to_vec(),
            vars,
            ended,
        };
        self.store(w);
    }

    /// Recording stops for the rest of the call, whatever the flow says later.
    fn stop_recording(&mut self, why: &'static str) {
        self.no_recording = Some(why);
        if self.record {
            self.record = false;
            self.media_if_open(MediaCommand::StopRecording);
        }
        self.note("recording off", serde_json::json!({ "reason": why }));
    }

    pub(super) fn note(&mut self, kind: &'static str, data: serde_json::Value) {
        self.store(StoreWrite::Timeline(kind, data));
    }

    /// Carries out what the run asked for.
    pub(super) fn ivr_pump(&mut self, now: Time) {
        let call = self.call();
        loop {
            let Some(ivr) = self.ivr.as_mut() else { return };
            let Some(o) = ivr.run.poll() else { return };
            match o {
                RunOutput::Step { flow, step, kind } => {
                    tracing::info!(%call, %flow, %step, kind, "ivr step");
                }
                RunOutput::Note(n) => tracing::debug!(%call, note = %n, "ivr"),
                // Text steps: the loader keeps them (and `goto`s to text flows) out of
                // call flows.
                RunOutput::Reply(_) | RunOutput::MatchKb { .. } | RunOutput::Handoff(_) => {
                    tracing::warn!(%call, "a text step in a call flow is skipped");
                }
                RunOutput::Answer => {
                    if !self.answered {
                        self.answer_customer(self.video_for_agents());
                    }
                }
                RunOutput::Play {
                    id,
                    items,
                    barge_in,
                } => {
                    let texts: Vec<String> = items
                        .iter()
                        .filter_map(|i| match i {
                            PlayItem::Say(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect();
                    if texts.is_empty() {
                        let items = items.into_iter().map(|i| (i, None)).collect();
                        self.play_items(id, items, barge_in);
                    } else {
                        ivr.speaking.insert(id, (items, barge_in));
                        self.out.push_back(Output::Speak { id, texts });
                    }
                }
                RunOutput::StopPlayback => {
                    ivr.play = None;
                    self.pending_media.clear();
                    if let Some(leg) = self.customer_media() {
                        self.media_if_open(MediaCommand::StopPlayback(leg));
                    }
                }
                RunOutput::Timer { id, after } => self.set_timer(after, Timer::Ivr(id)),
                RunOutput::Lookup { by, value } => self.out.push_back(Output::Lookup {
                    by: by.name(),
                    value,
                }),
                RunOutput::Http(req) => {
                    tracing::info!(%call, method = %req.method, url = %crate::redact::Url(&req.url), "webhook");
                    self.out.push_back(Output::Http(req));
                }
                RunOutput::Enqueue {
                    queue,
                    priority,
                    skills,
                } => self.enqueue(queue, priority, skills),
                RunOutput::Dequeue => {
                    ivr.queued = false;
                    self.out.push_back(Output::Router(RouterRequest::Ended));
                }
                RunOutput::Transfer { to, timeout } => self.transfer(to, timeout),
                RunOutput::StartVoicemail { max_length } => {
                    let Some(dp) = self.policy.dialplan.as_ref() else {
                        continue;
                    };
                    let path = dp.voicemail_dir.join(format!(
                        "{}-{}.wav",
                        ivr.interaction,
                        now.as_second()
                    ));
                    tracing::info!(%call, path = %path.display(), "voicemail");
                    self.media_cmd(MediaCommand::Voicemail(path));
                    self.set_timer(max_length, Timer::VoicemailMax);
                }
                RunOutput::StopVoicemail => self.media_if_open(MediaCommand::StopVoicemail),
                RunOutput::Record(true) if self.no_recording.is_some() => {
                    let why = self.no_recording.unwrap_or_default();
                    tracing::info!(%call, why, "record: on ignored");
                }
                RunOutput::RecordingOptOut {
                    version,
                    notice,
                    key,
                } => {
                    let offset = self
                        .recording_since
                        .filter(|_| self.record)
                        .map(|t| now.duration_since(t).as_millis() as i64);
                    tracing::info!(%call, %version, "the caller opted out of recording");
                    let interaction = ivr.interaction.clone();
                    self.stop_recording("opted out");
                    let evidence = serde_json::json!({
                        "interaction": interaction,
                        "notice_version": version,
                        "notice": notice,
                        "key": key.to_string(),
                        "recording_offset_ms": offset,
                    });
                    self.store(StoreWrite::Consent(crate::privacy::ConsentEvent {
                        purpose: crate::privacy::Purpose::Recording,
                        channel: "voice".into(),
                        granted: false,
                        source: "ivr".into(),
                        evidence,
                        actor: "customer".into(),
                    }));
                }
                RunOutput::Record(on) => {
                    if on && !self.record {
                        self.record = true;
                        self.start_recording();
                    } else if !on && self.record {
                        self.record = false;
                        self.media_if_open(MediaCommand::StopRecording);
                    }
                }
                RunOutput::Hangup => {
                    if self.customer_ended() {
                        continue;
                    }
                    if self.answered {
                        self.sip(SipCommand::Hangup(call));
                    } else {
                        self.sip(SipCommand::Reject(call, 480, "Temporarily Unavailable"));
                    }
                }
                RunOutput::Survey { metric, score } => {
                    tracing::info!(%call, metric = metric.name(), score, "survey answer");
                    self.store(StoreWrite::Survey { metric, score });
                }
                RunOutput::Done(_) if ivr.after_agent => {
                    // The flow after the agent (a survey) is over: the interaction's
                    // outcome stays the agent's answer.
                    tracing::info!(%call, path = %ivr.run.path().join(","), "ivr done after the agent");
                }
                RunOutput::Done(ending) => {
                    let with_agent =
                        matches!(ending, Ending::Answered(_)) && self.agent.agent_up().is_some();
                    let ivr = self.ivr.as_mut().expect("checked above");
                    ivr.queued = false;
                    let outcome = match &ending {
                        Ending::Hangup => "hangup".to_string(),
                        Ending::CallerHangup => "caller_hangup".into(),
                        Ending::Answered(q) => format!("answered {q}"),
                        Ending::Transferred(d) => format!("transfer {d}"),
                        Ending::HandedOff(_) => "error".into(),
                        Ending::Error(e) => {
                            tracing::warn!(%call, error = %e, "ivr error");
                            "error".into()
                        }
                    };
                    tracing::info!(%call, %outcome, path = %ivr.run.path().join(","), "ivr done");
                    ivr.outcome = Some(outcome.clone());
                    if !with_agent {
                        self.out.push_back(Output::Router(RouterRequest::Ended));
                    }
                    // Talking to an agent: the interaction ends with the call.
                    self.update_interaction(Some(outcome), !with_agent);
                }
            }
        }
    }

    /// The run joins a queue: the VIP rule and the customer's hints decide how.
    fn enqueue(&mut self, queue: String, priority: u8, skills: Vec<String>) {
        let mut vars = self.ivr_vars();
        // A caller with a camera: the offer says so (the agent's browser will show it),
        // naming the codecs agreed.
        let video: Vec<&str> = self
            .customer()
            .video
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if !video.is_empty() {
            vars.insert("video".into(), video.join(", ").into());
        } else if self.escalation.is_some() {
            // From the chat: the camera's codec is agreed as the page's leg connects.
            vars.insert("video".into(), "from the chat".into());
        }
        let details = serde_json::Value::Object(vars);
        let from = self.caller.clone();
        let call = self.call();
        let Some(ivr) = self.ivr.as_mut() else { return };
        tracing::info!(%call, %queue, priority, skills = ?skills, interaction = %ivr.interaction, "enqueued");
        ivr.queue = Some(queue.clone());
        ivr.queued = true;
        // A gold or VIP tier on the customer's record (the flow's lookup) is a VIP;
        // so is the record's own flag (the routing hints).
        ivr.tier_vip = ivr
            .run
            .vars()
            .get("customer.tier")
            .is_some_and(|t| t == "gold" || t == "vip");
        // A video call takes an agent as any call does (their voice capacity), so it
        // may be transferred to anyone who takes calls; the offer says it is video.
        let only = self.escalation.as_ref().map(|e| e.agent.clone());
        let channel = crate::routing::engine::Channel::Voice;
        let Some(ivr) = self.ivr.as_mut() else { return };
        let request = super::Enqueue {
            queue,
            channel,
            only,
            priority,
            skills: skills.into_iter().map(|s| (s, 1)).collect(),
            customer: ivr.customer_id,
            from,
            details,
            vip: ivr.tier_vip,
            last_agent: None,
            repeat: false,
        };
        let customer = ivr.customer_id;
        self.update_interaction(None, false);
        match customer {
            Some(customer) => {
                if let Some(ivr) = self.ivr.as_mut() {
                    ivr.enqueue = Some(request);
                }
                self.out.push_back(Output::Hints { customer });
            }
            None => self
                .out
                .push_back(Output::Router(RouterRequest::Enqueue(request))),
        }
        self.set_timer(QUEUE_POLL, Timer::QueuePoll);
    }

    /// The customer's record: sticky agent, repeat contact, VIP.
    pub(super) fn routing_hints(&mut self, last: Option<String>, rep: bool, record_vip: bool) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let Some(mut e) = ivr.enqueue.take() else {
            return;
        };
        e.vip = record_vip || ivr.tier_vip;
        e.last_agent = last;
        e.repeat = rep;
        self.out
            .push_back(Output::Router(RouterRequest::Enqueue(e)));
    }

    pub(super) fn enqueued(&mut self, r: Result<(), String>) {
        if let Err(e) = r {
            if self.escalation.is_some() && !self.customer_ended() {
                // The chat's agent cannot be offered it (logged out meanwhile): the
                // page hears so at once.
                tracing::info!(call = %self.call(), error = %e, "the chat's agent cannot take the video call");
                return self.sip(SipCommand::Reject(
                    self.call(),
                    480,
                    "Temporarily Unavailable",
                ));
            }
            // The caller keeps their hold music; max_wait moves them on.
            tracing::warn!(call = %self.call(), error = %e, "no agents for this queue");
        }
        self.queue_status();
    }

    pub(super) fn queue_poll(&mut self) {
        if self.ivr.as_ref().is_some_and(|i| i.queued) {
            self.queue_status();
            self.set_timer(QUEUE_POLL, Timer::QueuePoll);
        }
    }

    fn queue_status(&mut self) {
        let Some(ivr) = self.ivr.as_ref() else { return };
        if ivr.queue.is_none() || !self.agent.is_waiting() {
            return;
        }
        self.out.push_back(Output::Router(RouterRequest::Position));
    }

    /// The caller's place in the queue; until handle times are measured, the wait is
    /// the configured average handle time per caller ahead.
    pub(super) fn queue_position(&mut self, now: Time, p: Option<usize>) {
        let Some(position) = p else { return };
        let Some(dp) = self.policy.dialplan.as_ref() else {
            return;
        };
        let position = position as u32;
        let wait = Duration::from_secs(dp.config.queue_handle_secs) * position;
        self.ivr_input(now, Input::QueueStatus { position, wait });
    }

    /// A media item finished: the run hears about its prompt when the last item ends
    /// (or any is cut short by a key press).
    pub(super) fn ivr_play_done(&mut self, now: Time, media_id: u64, interrupted: bool) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let Some((id, last)) = ivr.play else { return };
        if media_id / ITEMS != id || (media_id != last && !interrupted) {
            return;
        }
        ivr.play = None;
        self.ivr_input(now, Input::PlayDone(id));
    }

    /// A voicemail was saved: it goes on the customer's timeline, and the flow goes on.
    pub(super) fn ivr_voicemail(&mut self, now: Time, r: Result<(PathBuf, f64), String>) {
        if self.ivr.is_none() {
            return;
        }
        let seconds = match r {
            Ok((path, secs)) => {
                tracing::info!(call = %self.call(), path = %path.display(), seconds = secs, "voicemail saved");
                let data = serde_json::json!({"path": path.display().to_string(), "seconds": secs});
                self.note("voicemail", data);
                secs.round() as u32
            }
            Err(e) => {
                tracing::warn!(call = %self.call(), error = %e, "voicemail failed");
                0
            }
        };
        self.ivr_input(now, Input::VoicemailDone { seconds });
    }

    pub(super) fn lookup_result(
        &mut self,
        now: Time,
        r: Result<Option<Vec<(String, String)>>, String>,
    ) {
        let input = match r {
            Ok(Some(fields)) => {
                if let Some(ivr) = self.ivr.as_mut() {
                    ivr.customer_id = fields
                        .iter()
                        .find(|(k, _)| k == "id")
                        .and_then(|(_, v)| v.parse().ok());
                }
                Input::LookupResult(Some(fields))
            }
            Ok(None) => Input::LookupResult(None),
            Err(e) => Input::LookupFailed(e),
        };
        self.ivr_input(now, input);
    }

    /// The transfer target (or an agent's desk phone) answered: bridge it to the
    /// caller; for a transfer, the flow is done.
    pub(super) fn transfer_answered(&mut self, now: Time, key: LegKey, remote_sdp: &[u8]) {
        let Some(leg) = self.leg_mut(key) else { return };
        leg.state = LegState::Up;
        let role = leg.role.clone();
        let local = leg.local.clone().expect("local set with the offer");
        let n = crate::sdp::RemoteSession::parse(remote_sdp)
            .and_then(|r| crate::sdp::accept_answer(&r, &local));
        match n {
            Ok(n) => {
                let leg = self.add_media(key, &n);
                if let Role::AgentPhone(agent) = role {
                    // An agent's desk phone: the caller, or a consult.
                    return self.agent_leg_up(now, &agent);
                }
                if !self.answered {
                    // The flow transferred before answering: the caller is answered
                    // now and bridged once their media is up.
                    self.bridge_on_answer = Some(key);
                    self.answer_customer(Default::default());
                } else if let (Some(a), Some(leg)) = (self.customer_media(), leg) {
                    self.media_if_open(MediaCommand::StopPlayback(a));
                    self.media_if_open(MediaCommand::Bridge(a, leg));
                }
                self.ivr_input(now, Input::Connected);
            }
            Err(e) => {
                tracing::warn!(call = %self.call(), error = %e, "unusable answer from the transfer target");
                self.drop_leg(key);
                match role {
                    Role::AgentPhone(agent) => {
                        self.agent_missed(&agent, &format!("unusable answer: {e}"));
                    }
                    _ => {
                        self.ivr_input(now, Input::TransferFailed(format!("unusable answer: {e}")))
                    }
                }
            }
        }
    }

    /// A transfer leg could not be placed.
    pub(super) fn transfer_failed(&mut self, now: Time, key: LegKey, why: String) {
        let role = self.leg(key).map(|l| l.role.clone());
        if let Some(l) = self.leg_mut(key) {
            l.state = LegState::Ended;
        }
        match role {
            Some(Role::AgentPhone(agent)) => {
                self.agent_missed(&agent, &why);
            }
            Some(Role::SupervisorPhone(_)) => self.end_monitor(&why),
            _ => self.ivr_input(now, Input::TransferFailed(why)),
        }
    }

    /// The variables worth keeping (and showing an agent): clock builtins left out.
    pub(super) fn ivr_vars(&self) -> serde_json::Map<String, serde_json::Value> {
        let Some(ivr) = self.ivr.as_ref() else {
            return Default::default();
        };
        ivr.run
            .vars()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "now" | "date" | "time" | "weekday"))
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    }

    /// The screen-pop webhook (customer record, IVR variables) for `event`.
    pub(super) fn screen_pop(&mut self, event: &'static str, agent: &str) {
        let vars = self.ivr_vars();
        let Some(ivr) = self.ivr.as_ref() else { return };
        self.out.push_back(Output::ScreenPop(super::ScreenPop {
            event,
            agent: agent.to_string(),
            customer: ivr.customer_id,
            queue: ivr.queue.clone(),
            from: self.caller.clone(),
            vars,
        }));
    }

    /// The call is over: the router frees the agent (with wrap-up), and a call that
    /// reached an agent gets its end on record.
    pub(super) fn ivr_call_over(&mut self) {
        if self.ivr.as_ref().is_some_and(|i| i.after_agent) {
            return; // left, with its end on record, when the agent hung up
        }
        if !self.leave() {
            return;
        }
        if let Some(agent) = self.agent.agent_up() {
            let w = StoreWrite::End(format!("answered by {agent}"));
            self.store(w);
        }
    }

    /// The agent hung up first. When the flow goes on after the agent (the enqueue's
    /// `agent_hangup` step: a survey), the agent is freed now (wrap-up), the call's end
    /// with them is on record, the caller is taken off hold and out of any bridge, and
    /// the flow goes on; `true`. Otherwise `false`: the call ends.
    pub(super) fn after_agent(&mut self, now: Time) -> bool {
        if self.customer_ended() || self.customer_media().is_none() {
            return false;
        }
        let Some(agent) = self.agent.agent_up().map(str::to_string) else {
            return false;
        };
        let Some(ivr) = self.ivr.as_mut() else {
            return false;
        };
        if !ivr.run.agent_left(now) {
            return false;
        }
        ivr.after_agent = true;
        tracing::info!(call = %self.call(), %agent, "the caller goes on in the flow");
        self.leave();
        self.store(StoreWrite::End(format!("answered by {agent}")));
        self.agent = super::agents::Stage::None;
        self.media_if_open(MediaCommand::Unbridge);
        self.set_hold(false);
        self.ivr_pump(now);
        true
    }

    /// Agents can no longer reach the call, and its work leaves the router. False: no
    /// IVR ran (nothing to leave).
    fn leave(&mut self) -> bool {
        if self.ivr.is_none() {
            return false;
        }
        self.out.push_back(Output::Register(false));
        self.out.push_back(Output::Router(RouterRequest::Ended));
        true
    }

    /// A recording of this call started: on its record and timeline.
    pub(super) fn ivr_recording(&mut self, path: &std::path::Path) {
        self.store(StoreWrite::Recording(path.display().to_string()));
    }

    /// The driver failed: the interaction leaves its queue (the agent is freed) and
    /// ends as failed, on the timeline.
    pub(super) fn ivr_failed(&mut self) {
        if !self.leave() {
            return;
        }
        // The driver is going: what waited for the record goes now, in order.
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.started = true;
            for w in std::mem::take(&mut ivr.pending) {
                self.out.push_back(Output::Store(w));
            }
        }
        self.note("failed", serde_json::json!({"why": "internal error"}));
        self.store(StoreWrite::End("failed: internal error".into()));
    }

    /// Rings an agent's desk phone (a registered extension) as a leg of the call.
    pub(super) fn ring_extension(&mut self, agent: &str, ext: String) -> LegKey {
        let key = self.add_leg(Role::AgentPhone(agent.to_string()));
        self.bind(
            key,
            false,
            Then::Place {
                to: super::Target::User(ext),
                video: Default::default(),
                ring: Some(Duration::from_secs(30)),
            },
        );
        key
    }

    /// A transfer goes out as a leg of the call, bridged when it answers; its failure
    /// comes back to the flow.
    fn transfer(&mut self, to: Dest, timeout: Duration) {
        let to = match to {
            Dest::Number { number, trunk } => super::Target::Number { number, trunk },
            Dest::Extension(e) => super::Target::User(e),
            Dest::Uri(u) => super::Target::Uri(u),
        };
        tracing::info!(call = %self.call(), to = %crate::redact::Redacted(&to.to_string()), "transfer");
        let key = self.add_leg(Role::Transfer);
        self.bind(
            key,
            false,
            Then::Place {
                to,
                video: Default::default(),
                ring: Some(timeout),
            },
        );
    }
}

#[allow(dead_code)]
const _: LegKey = CUSTOMER;
