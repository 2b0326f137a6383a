//! The call actor's IVR part: it drives a dialplan [`Run`] with the call's media and
//! the outside world. Outputs of the run become media commands (prompts, speech made
//! off-thread by espeak-ng), actor timers, store lookups, webhooks (awc), the queue
//! board, transfers through trunks and voicemails; media and SIP events become the
//! run's inputs. Everything the caller entered is written to the call's interaction
//! record when it joins a queue and when it ends.

use super::{CallActor, CallCommand};
use crate::actors::router::{Ended, Enqueue, Position, Requeue, Work, WorkEvent};
use crate::config::DialplanConfig;
use crate::dialplan::engine::{Dest, Ending, Input, Output, PlayItem};
use crate::dialplan::{CallInfo, Library, Run};
use crate::media::player::{Item, Samples};
use crate::store::Store;
use actix::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What every call's IVR shares.
pub struct IvrContext {
    pub library: Arc<Library>,
    pub config: DialplanConfig,
    pub demo: bool,
    pub store: Store,
    pub centre: crate::centre::Centre,
    pub voicemail_dir: PathBuf,
}

pub(super) struct Ivr {
    pub(super) ctx: Arc<IvrContext>,
    pub(super) run: Run,
    pub(super) interaction: String,
    /// The prompt the run waits for: (its id, the media id of its last item).
    play: Option<(u64, u64)>,
    pub(super) customer_id: Option<i64>,
    queue: Option<String>,
    queue_poll: Option<SpawnHandle>,
    /// The agent whose phone rings or who talks to the caller, and whether they
    /// answered.
    pub(super) agent: Option<(String, bool)>,
    /// An agent handed the call on (a transfer): the next assignment rings the next
    /// agent although the run has ended.
    handed_on: bool,
    /// How the run ended, once it has.
    outcome: Option<String>,
    writer: tokio::sync::mpsc::UnboundedSender<StoreWrite>,
}

/// A write to the interaction record. One task per call applies them in order, so
/// the timeline reads as things happened.
enum StoreWrite {
    Update {
        customer: Option<i64>,
        queue: Option<String>,
        outcome: Option<String>,
        path: Vec<String>,
        vars: serde_json::Map<String, serde_json::Value>,
        ended: bool,
    },
    Timeline(&'static str, serde_json::Value),
    Answered(String),
    /// The call with the agent ended (the run ended when the agent answered).
    End(String),
    /// A recording file started.
    Recording(String),
}

fn store_writer(store: Store, id: String) -> tokio::sync::mpsc::UnboundedSender<StoreWrite> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StoreWrite>();
    tokio::spawn(async move {
        while let Some(w) = rx.recv().await {
            let r = match w {
                StoreWrite::Update {
                    customer,
                    queue,
                    outcome,
                    path,
                    vars,
                    ended,
                } => {
                    store
                        .update_interaction(
                            &id,
                            &crate::store::InteractionUpdate {
                                customer_id: customer,
                                queue: queue.as_deref(),
                                outcome: outcome.as_deref(),
                                path: &path,
                                variables: Some(&vars),
                                ended,
                            },
                        )
                        .await
                }
                StoreWrite::Timeline(kind, data) => store.add_timeline(&id, kind, data).await,
                StoreWrite::Answered(agent) => store.interaction_answered(&id, &agent).await,
                StoreWrite::End(outcome) => store.end_interaction(&id, &outcome).await,
                StoreWrite::Recording(path) => {
                    let r = store.set_recording(&id, &path).await;
                    match r {
                        Ok(()) => {
                            store
                                .add_timeline(&id, "recording", serde_json::json!({"path": path}))
                                .await
                        }
                        e => e,
                    }
                }
            };
            if let Err(e) = r {
                tracing::warn!(interaction = %id, error = %e, "cannot write the interaction");
            }
        }
    });
    tx
}

/// Media ids of a prompt's items: run id × 64 + index.
const ITEMS: u64 = 64;

fn beep() -> Samples {
    (0..3200)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16)
        .collect::<Vec<_>>()
        .into()
}

impl CallActor {
    /// Starts the flow routed for this call, if any. False: no flow applies.
    pub(super) fn start_ivr(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(ictx) = self.cfg.ivr.clone() else {
            return false;
        };
        let Some(name) = ictx
            .config
            .flow_for(&self.callee, self.trunk.as_deref(), ictx.demo)
        else {
            return false;
        };
        let set = ictx.library.snapshot();
        let Some(flow) = set.flows.get(&name).cloned() else {
            tracing::warn!(call = %self.a.call, flow = %name, "no flow of that name is loaded; using the built-in handler");
            return false;
        };
        let interaction = format!("{:016x}", rand::random::<u64>());
        let info = CallInfo {
            caller: self.caller.clone(),
            caller_name: String::new(),
            dialled: self.callee.clone(),
            trunk: self.trunk.clone().unwrap_or_default(),
            call_id: interaction.clone(),
        };
        tracing::info!(call = %self.a.call, flow = %flow.name, version = %flow.version, %interaction, "ivr start");
        let store = ictx.store.clone();
        let (id, caller, dialled, trunk, fname, fver) = (
            interaction.clone(),
            info.caller.clone(),
            info.dialled.clone(),
            info.trunk.clone(),
            flow.name.clone(),
            flow.version.clone(),
        );
        // The record exists before anything is written to it (the mailbox is ordered,
        // the spawned write is not): start it synchronously on this arbiter.
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(async move {
                store
                    .start_interaction(&crate::store::NewInteraction {
                        id: &id,
                        kind: "voice",
                        direction: "inbound",
                        from: &caller,
                        dialled: &dialled,
                        trunk: &trunk,
                        flow: &fname,
                        flow_version: &fver,
                        unverified: false,
                    })
                    .await
            })
            .map(|r, act, ctx| {
                if let Err(e) = r {
                    tracing::warn!(call = %act.a.call, error = %e, "cannot record the interaction");
                }
                let Some(ivr) = act.ivr.as_mut() else { return };
                if let Some(outcome) = ivr.outcome.clone() {
                    // The caller left before the record existed: close it now.
                    return act.update_interaction(Some(outcome), true);
                }
                ivr.run.start(crate::clock::timestamp());
                act.ivr_pump(ctx);
            }),
        );
        let (ictx_store, interaction_id) = (ictx.store.clone(), interaction.clone());
        ictx.centre.set_call(&interaction, Some(ctx.address()));
        self.ivr = Some(Ivr {
            ctx: ictx,
            run: Run::new(set, flow, &info),
            interaction,
            play: None,
            customer_id: None,
            queue: None,
            queue_poll: None,
            agent: None,
            handed_on: false,
            outcome: None,
            writer: store_writer(ictx_store, interaction_id),
        });
        true
    }

    pub(super) fn ivr_input(&mut self, ctx: &mut Context<Self>, i: Input) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        ivr.run.handle(crate::clock::timestamp(), i);
        self.ivr_pump(ctx);
    }

    /// Plays (or queues until the caller's media is up) one item on the caller's leg.
    pub(super) fn caller_play(&mut self, ctx: &mut Context<Self>, item: Item) {
        match self.a.media.filter(|_| self.a.established) {
            Some(leg) => self.media(ctx).play(leg, item),
            None => self.pending_media.push(item),
        }
    }

    /// The caller's media is up: a short silence, then what the flow asked to play.
    pub(super) fn ivr_media_up(&mut self, ctx: &mut Context<Self>) {
        let Some(leg) = self.a.media else { return };
        let pending = std::mem::take(&mut self.pending_media);
        let m = self.media(ctx);
        m.play(
            leg,
            Item::Silence {
                id: 0,
                samples: 1600,
            },
        );
        for i in pending {
            m.play(leg, i);
        }
    }

    fn play_items(
        &mut self,
        ctx: &mut Context<Self>,
        id: u64,
        items: Vec<(PlayItem, Option<Samples>)>,
        barge_in: bool,
    ) {
        let n = items.len() as u64;
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.play = Some((id, id * ITEMS + n - 1));
        }
        for (i, (item, spoken)) in items.into_iter().enumerate() {
            let mid = id * ITEMS + i as u64;
            let it = match item {
                PlayItem::Audio { samples, .. } => Item::Prompt {
                    id: mid,
                    samples,
                    barge_in,
                },
                PlayItem::Say(_) => match spoken {
                    Some(samples) => Item::Prompt {
                        id: mid,
                        samples,
                        barge_in,
                    },
                    None => Item::Silence {
                        id: mid,
                        samples: 1,
                    },
                },
                PlayItem::Silence(d) => Item::Silence {
                    id: mid,
                    samples: (d.as_millis() as u32) * 8,
                },
                PlayItem::Beep => Item::Prompt {
                    id: mid,
                    samples: beep(),
                    barge_in: false,
                },
            };
            self.caller_play(ctx, it);
        }
    }

    fn update_interaction(&self, outcome: Option<String>, ended: bool) {
        let Some(ivr) = self.ivr.as_ref() else { return };
        let vars: serde_json::Map<String, serde_json::Value> = ivr
            .run
            .vars()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "now" | "date" | "time" | "weekday"))
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let _ = ivr.writer.send(StoreWrite::Update {
            customer: ivr.customer_id,
            queue: ivr.queue.clone(),
            outcome,
            path: ivr.run.path().to_vec(),
            vars,
            ended,
        });
    }

    /// Carries out what the run asked for.
    pub(super) fn ivr_pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(ivr) = self.ivr.as_mut() else { return };
            let Some(o) = ivr.run.poll() else { return };
            let call = self.a.call;
            match o {
                Output::Step { flow, step, kind } => {
                    tracing::info!(%call, %flow, %step, kind, "ivr step");
                }
                Output::Note(n) => tracing::debug!(%call, note = %n, "ivr"),
                Output::Answer => {
                    if !self.answered {
                        self.answered = true;
                        if !self.answer_caller(ctx, vec![]) {
                            self.ivr_input(ctx, Input::Hangup);
                            return ctx.stop();
                        }
                    }
                }
                Output::Play {
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
                        self.play_items(ctx, id, items, barge_in);
                    } else {
                        // Speech is made off the actor's thread, then played if the
                        // run still wants it.
                        ctx.spawn(
                            actix::fut::wrap_future::<_, Self>(tokio::task::spawn_blocking(move || {
                                texts
                                    .iter()
                                    .map(|t| crate::dialplan::tts::cached(t))
                                    .collect::<Vec<_>>()
                            }))
                            .map(move |r, act, ctx| {
                                let mut spoken = r.unwrap_or_default().into_iter();
                                let items: Vec<(PlayItem, Option<Samples>)> = items
                                    .into_iter()
                                    .map(|i| {
                                        let s = match &i {
                                            PlayItem::Say(_) => match spoken.next() {
                                                Some(Ok(s)) => Some(s),
                                                Some(Err(e)) => {
                                                    tracing::warn!(call = %act.a.call, error = %e, "text to speech failed");
                                                    None
                                                }
                                                None => None,
                                            },
                                            _ => None,
                                        };
                                        (i, s)
                                    })
                                    .collect();
                                if act.ivr.as_ref().is_some_and(|v| v.outcome.is_none()) {
                                    act.play_items(ctx, id, items, barge_in);
                                }
                            }),
                        );
                    }
                }
                Output::StopPlayback => {
                    ivr.play = None;
                    self.pending_media.clear();
                    if let (Some(m), Some(leg)) = (&self.media, self.a.media) {
                        m.stop_playback(leg);
                    }
                }
                Output::Timer { id, after } => {
                    ctx.run_later(after, move |act, ctx| act.ivr_input(ctx, Input::Timer(id)));
                }
                Output::Lookup { by, value } => {
                    let store = ivr.ctx.store.clone();
                    let by = by.name();
                    ctx.spawn(
                        actix::fut::wrap_future::<_, Self>(async move {
                            store.lookup(by, &value).await
                        })
                        .map(|r, act, ctx| {
                            let input = match r {
                                Ok(Some(fields)) => {
                                    if let Some(ivr) = act.ivr.as_mut() {
                                        ivr.customer_id = fields
                                            .iter()
                                            .find(|(k, _)| k == "id")
                                            .and_then(|(_, v)| v.parse().ok());
                                    }
                                    Input::LookupResult(Some(fields))
                                }
                                Ok(None) => Input::LookupResult(None),
                                Err(e) => Input::LookupFailed(e.to_string()),
                            };
                            act.ivr_input(ctx, input);
                        }),
                    );
                }
                Output::Http {
                    method,
                    url,
                    headers,
                    body,
                    timeout,
                } => {
                    tracing::info!(%call, %method, url = %crate::redact::Url(&url), "webhook");
                    ctx.spawn(
                        actix::fut::wrap_future::<_, Self>(webhook(
                            method, url, headers, body, timeout,
                        ))
                        .map(|r, act, ctx| act.ivr_input(ctx, Input::HttpResult(r))),
                    );
                }
                Output::Enqueue {
                    queue,
                    priority,
                    skills,
                } => {
                    tracing::info!(%call, %queue, priority, skills = ?skills, interaction = %ivr.interaction, "enqueued");
                    ivr.queue = Some(queue.clone());
                    let details = serde_json::Value::Object(self.ivr_vars());
                    let Some(ivr) = self.ivr.as_ref() else { return };
                    let work = Work {
                        interaction: ivr.interaction.clone(),
                        channel: crate::routing::engine::Channel::Voice,
                        queue,
                        customer: ivr.customer_id,
                        conversation: None,
                        from: self.caller.clone(),
                        details,
                        owner: ctx.address().recipient(),
                    };
                    let tier_vip = ivr
                        .run
                        .vars()
                        .get("customer.tier")
                        .is_some_and(|t| t == "gold" || t == "vip");
                    let router = ivr.ctx.centre.router().clone();
                    let store = ivr.ctx.centre.store().clone();
                    let (customer, id) = (ivr.customer_id, ivr.interaction.clone());
                    self.update_interaction(None, false);
                    let enqueue = async move {
                        // Sticky agent, repeat contact, VIP: from the customer's record.
                        let (last_agent, repeat, vip) = match customer {
                            Some(c) => store.routing_hints(c, &id).await.unwrap_or_else(|e| {
                                tracing::warn!(interaction = %id, error = %e, "no routing hints");
                                (None, false, false)
                            }),
                            None => (None, false, false),
                        };
                        router
                            .send(Enqueue {
                                work,
                                priority,
                                skills: skills.into_iter().map(|s| (s, 1)).collect(),
                                vip: vip || tier_vip,
                                last_agent,
                                repeat,
                            })
                            .await
                    };
                    ctx.spawn(actix::fut::wrap_future::<_, Self>(enqueue).map(
                        move |r, act, ctx| {
                            if let Err(e) = r.map_err(|e| e.to_string()).and_then(|r| r) {
                                // The caller keeps their hold music; max_wait moves them on.
                                tracing::warn!(%call, error = %e, "no agents for this queue");
                            }
                            act.queue_status(ctx);
                        },
                    ));
                    let h =
                        ctx.run_interval(Duration::from_secs(5), |act, ctx| act.queue_status(ctx));
                    if let Some(ivr) = self.ivr.as_mut() {
                        ivr.queue_poll = Some(h);
                    }
                }
                Output::Dequeue => {
                    ivr.ctx.centre.router().do_send(Ended {
                        interaction: ivr.interaction.clone(),
                    });
                    if let Some(h) = ivr.queue_poll.take() {
                        ctx.cancel_future(h);
                    }
                }
                Output::Transfer { to, timeout } => self.transfer(ctx, to, timeout),
                Output::StartVoicemail { max_length } => {
                    let dir = ivr.ctx.voicemail_dir.clone();
                    let path = dir.join(format!(
                        "{}-{}.wav",
                        ivr.interaction,
                        crate::clock::unix_secs()
                    ));
                    tracing::info!(%call, path = %path.display(), "voicemail");
                    self.media(ctx).voicemail(path);
                    ctx.run_later(max_length, |act, _| {
                        if let Some(m) = &act.media {
                            m.stop_voicemail();
                        }
                    });
                }
                Output::StopVoicemail => {
                    if let Some(m) = &self.media {
                        m.stop_voicemail();
                    }
                }
                Output::Record(on) => {
                    if on && !self.record_requested {
                        self.record_requested = true;
                        self.start_recording(ctx);
                    } else if !on && self.record_requested {
                        self.record_requested = false;
                        if let Some(m) = &self.media {
                            m.stop_recording();
                        }
                    }
                }
                Output::Hangup => {
                    if self.a.ended {
                        continue;
                    }
                    if self.answered {
                        self.send(CallCommand::Hangup(self.a.call));
                    } else {
                        self.send(CallCommand::Reject(
                            self.a.call,
                            480,
                            "Temporarily Unavailable",
                        ));
                    }
                }
                Output::Done(ending) => {
                    let with_agent = matches!(ending, Ending::Answered(_))
                        && ivr.agent.as_ref().is_some_and(|(_, up)| *up);
                    if !with_agent {
                        ivr.ctx.centre.router().do_send(Ended {
                            interaction: ivr.interaction.clone(),
                        });
                    }
                    if let Some(h) = ivr.queue_poll.take() {
                        ctx.cancel_future(h);
                    }
                    let outcome = match &ending {
                        Ending::Hangup => "hangup".to_string(),
                        Ending::CallerHangup => "caller_hangup".into(),
                        Ending::Answered(q) => format!("answered {q}"),
                        Ending::Transferred(d) => format!("transfer {d}"),
                        Ending::Error(e) => {
                            tracing::warn!(%call, error = %e, "ivr error");
                            "error".into()
                        }
                    };
                    tracing::info!(%call, %outcome, path = %ivr.run.path().join(","), "ivr done");
                    ivr.outcome = Some(outcome.clone());
                    // Talking to an agent: the interaction ends with the call.
                    self.update_interaction(Some(outcome), !with_agent);
                }
            }
        }
    }

    /// A media item finished: the run hears about its prompt when the last item ends
    /// (or any is cut short by a key press).
    pub(super) fn ivr_play_done(
        &mut self,
        ctx: &mut Context<Self>,
        media_id: u64,
        interrupted: bool,
    ) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let Some((id, last)) = ivr.play else { return };
        if media_id / ITEMS != id || (media_id != last && !interrupted) {
            return;
        }
        ivr.play = None;
        self.ivr_input(ctx, Input::PlayDone(id));
    }

    /// A voicemail was saved: it goes on the customer's timeline, and the flow goes on.
    pub(super) fn ivr_voicemail(
        &mut self,
        ctx: &mut Context<Self>,
        r: Result<(PathBuf, f64), String>,
    ) {
        let Some(ivr) = self.ivr.as_ref() else { return };
        let seconds = match r {
            Ok((path, secs)) => {
                tracing::info!(call = %self.a.call, path = %path.display(), seconds = secs, "voicemail saved");
                let data = serde_json::json!({"path": path.display().to_string(), "seconds": secs});
                let _ = ivr.writer.send(StoreWrite::Timeline("voicemail", data));
                secs.round() as u32
            }
            Err(e) => {
                tracing::warn!(call = %self.a.call, error = %e, "voicemail failed");
                0
            }
        };
        self.ivr_input(ctx, Input::VoicemailDone { seconds });
    }

    /// The transfer target answered: bridge it to the caller; the flow is done.
    pub(super) fn ivr_transfer_answered(
        &mut self,
        ctx: &mut Context<Self>,
        remote_sdp: bytes::Bytes,
    ) {
        let Some(b) = self.b.as_mut() else { return };
        b.established = true;
        let b_call = b.call;
        let n = crate::sdp::RemoteSession::parse(&remote_sdp).and_then(|r| {
            crate::sdp::accept_answer(&r, b.local.as_ref().expect("local set with offer"))
        });
        match n {
            Ok(n) => {
                let leg = self.add_media(ctx, true, &n);
                if let Some(agent) = self.b_agent.clone() {
                    // An agent's desk phone: the caller, or a consult.
                    return self.agent_leg_up(ctx, &agent);
                }
                if let (Some(m), Some(a), Some(leg)) = (&self.media, self.a.media, leg) {
                    m.stop_playback(a);
                    m.bridge(a, leg);
                }
                self.ivr_agent_connected(ctx);
            }
            Err(e) => {
                tracing::warn!(call = %self.a.call, error = %e, "unusable answer from the transfer target");
                self.send(CallCommand::Hangup(b_call));
                self.b = None;
                self.ivr_input(ctx, Input::TransferFailed(format!("unusable answer: {e}")));
            }
        }
    }

    fn queue_status(&mut self, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_ref() else { return };
        if ivr.queue.is_none() || ivr.agent.is_some() {
            return;
        }
        let handle = Duration::from_secs(ivr.ctx.config.queue_handle_secs);
        let ask = ivr.ctx.centre.router().send(Position {
            interaction: ivr.interaction.clone(),
        });
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(ask).map(move |r, act, ctx| {
                let Ok(Some(position)) = r else { return };
                let position = position as u32;
                // Until handle times are measured: the configured average per caller ahead.
                let wait = handle * position;
                act.ivr_input(ctx, Input::QueueStatus { position, wait });
            }),
        );
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

    /// What the router says about this call's place in a queue.
    pub(super) fn ivr_work(&mut self, ctx: &mut Context<Self>, ev: WorkEvent) {
        let call = self.a.call;
        let Some(ivr) = self.ivr.as_mut() else { return };
        match ev {
            WorkEvent::Offered { agent } => {
                let _ = ivr.writer.send(StoreWrite::Timeline(
                    "offered",
                    serde_json::json!({"agent": agent}),
                ));
                self.screen_pop("call.offered", &agent);
            }
            WorkEvent::Assigned {
                agent, extension, ..
            } => {
                let _ = ivr.writer.send(StoreWrite::Timeline(
                    "assigned",
                    serde_json::json!({"agent": agent}),
                ));
                if self.a.ended || (ivr.outcome.is_some() && !ivr.handed_on) {
                    return;
                }
                ivr.handed_on = false;
                if self.consult_assigned(ctx, &agent) {
                    return;
                }
                let Some(ivr) = self.ivr.as_mut() else { return };
                let Some(ext) = extension else {
                    if self.cfg.webrtc.is_none() {
                        tracing::warn!(%call, %agent, "agent has no phone and browser calls are off; the call goes back to the queue");
                        ivr.ctx.centre.router().do_send(Requeue {
                            interaction: ivr.interaction.clone(),
                        });
                        return;
                    }
                    ivr.agent = Some((agent.clone(), false));
                    self.await_browser(ctx, agent);
                    return;
                };
                tracing::info!(%call, %agent, extension = %ext, "ringing the agent");
                ivr.agent = Some((agent.clone(), false));
                self.b_agent = Some(agent);
                self.ring_extension(ctx, ext);
            }
            WorkEvent::Transferred { from, to } => {
                let _ = ivr.writer.send(StoreWrite::Timeline(
                    "transferred",
                    serde_json::json!({"from": from, "to": to}),
                ));
                // The first agent's leg goes; the caller hears music until the next
                // agent connects. The recording goes on (it is the call's, not the leg's).
                ivr.agent = None;
                ivr.handed_on = true;
                self.agent_handed_on(&from);
            }
            WorkEvent::Overflow { to } => {
                let _ = ivr.writer.send(StoreWrite::Timeline(
                    "overflow",
                    serde_json::json!({"to": to}),
                ));
                if let Some(q) = Some(to).filter(|t| t != "voicemail") {
                    ivr.queue = Some(q);
                }
            }
        }
    }

    /// The agent's phone did not answer: the caller waits again (hold music goes on).
    /// True when this was an agent leg.
    pub(super) fn ivr_agent_failed(&mut self, why: &str) -> bool {
        let Some(ivr) = self.ivr.as_mut() else {
            return false;
        };
        let Some((agent, false)) = ivr.agent.take() else {
            return false;
        };
        tracing::info!(call = %self.a.call, %agent, why, "agent did not answer; back to the queue");
        let _ = ivr.writer.send(StoreWrite::Timeline(
            "agent missed",
            serde_json::json!({"agent": agent, "why": why}),
        ));
        ivr.ctx.centre.router().do_send(Requeue {
            interaction: ivr.interaction.clone(),
        });
        true
    }

    /// The agent answered: recorded, and the run learns it is connected.
    fn ivr_agent_answered(&mut self) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        if let Some((agent, up)) = ivr.agent.as_mut() {
            *up = true;
            let _ = ivr.writer.send(StoreWrite::Answered(agent.clone()));
        }
    }

    /// The agent's leg connected (their phone answered, or their browser's leg is up):
    /// on record, the run learns it, and the screen-pop webhook says so.
    pub(super) fn ivr_agent_connected(&mut self, ctx: &mut Context<Self>) {
        self.ivr_agent_answered();
        if let Some(agent) = self.ivr.as_ref().and_then(|i| i.agent.clone()) {
            tracing::info!(call = %self.a.call, agent = %agent.0, "agent on the call");
            self.screen_pop("call.connected", &agent.0);
        }
        self.ivr_input(ctx, Input::Connected);
    }

    /// Something an agent did to the call, on its timeline.
    pub(super) fn ivr_agent_note(&mut self, kind: &'static str, data: serde_json::Value) {
        if let Some(ivr) = self.ivr.as_ref() {
            let _ = ivr.writer.send(StoreWrite::Timeline(kind, data));
        }
    }

    /// Posts the screen-pop (customer record, IVR variables) to the webhooks that want
    /// `event`; the agent's desktop gets the same record from the API.
    fn screen_pop(&mut self, event: &'static str, agent: &str) {
        let vars = self.ivr_vars();
        let Some(ivr) = self.ivr.as_ref() else { return };
        let centre = ivr.ctx.centre.clone();
        if !centre.webhooks().wants(event) {
            return;
        }
        let (customer, interaction, queue) =
            (ivr.customer_id, ivr.interaction.clone(), ivr.queue.clone());
        let (from, agent) = (self.caller.clone(), agent.to_string());
        actix_rt::spawn(async move {
            let record = match customer {
                Some(id) => centre.customer_view(id).await.unwrap_or_else(|e| {
                    tracing::warn!(%interaction, error = %e, "screen-pop without the customer record");
                    None
                }),
                None => None,
            };
            centre.webhooks().post(
                event,
                serde_json::json!({
                    "interaction": interaction,
                    "channel": "voice",
                    "agent": agent,
                    "queue": queue,
                    "from": from,
                    "customer": record,
                    "ivr": vars,
                }),
            );
        });
    }

    /// The call is over: the router frees the agent (with wrap-up), and a call that
    /// reached an agent gets its end on record.
    pub(super) fn ivr_call_over(&mut self) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        ivr.ctx.centre.set_call(&ivr.interaction, None);
        ivr.ctx.centre.router().do_send(Ended {
            interaction: ivr.interaction.clone(),
        });
        if let Some((agent, true)) = ivr.agent.take() {
            let _ = ivr
                .writer
                .send(StoreWrite::End(format!("answered by {agent}")));
        }
    }

    /// A recording of this call started: on its record and timeline.
    pub(super) fn ivr_recording(&mut self, path: &std::path::Path) {
        if let Some(ivr) = self.ivr.as_ref() {
            let _ = ivr
                .writer
                .send(StoreWrite::Recording(path.display().to_string()));
        }
    }

    /// The call actor failed: the interaction leaves its queue (the agent is freed) and
    /// ends as failed, on the timeline.
    pub(super) fn ivr_failed(&mut self) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        ivr.ctx.centre.set_call(&ivr.interaction, None);
        ivr.ctx.centre.router().do_send(Ended {
            interaction: ivr.interaction.clone(),
        });
        let _ = ivr.writer.send(StoreWrite::Timeline(
            "failed",
            serde_json::json!({"why": "internal error"}),
        ));
        let _ = ivr
            .writer
            .send(StoreWrite::End("failed: internal error".into()));
    }

    /// Rings an agent's desk phone (a registered extension) as the second leg.
    pub(super) fn ring_extension(&mut self, ctx: &mut Context<Self>, ext: String) {
        self.transfer(ctx, Dest::Extension(ext), Duration::from_secs(30));
    }

    /// A transfer to a number goes out through a trunk as a second leg, bridged when it
    /// answers; its failure comes back to the flow.
    fn transfer(&mut self, ctx: &mut Context<Self>, to: Dest, timeout: Duration) {
        let dial = match &to {
            Dest::Number { number, trunk } => super::Dial::Number {
                number: number.clone(),
                trunk: trunk.clone(),
            },
            Dest::Extension(e) => super::Dial::Direct(super::DirectTarget::User(e.clone())),
            Dest::Uri(u) => super::Dial::Direct(super::DirectTarget::Uri(u.clone())),
        };
        let sockets =
            match crate::media::driver::LegSockets::bind(self.cfg.rtp_ip, &self.ports, false) {
                Ok(s) => s,
                Err(e) => {
                    let why = format!("no RTP port: {e}");
                    ctx.run_later(Duration::ZERO, move |act, ctx| {
                        act.ivr_input(ctx, Input::TransferFailed(why))
                    });
                    return;
                }
            };
        let local = self.local(&sockets, vec![]);
        let call = self.dial(ctx, sockets, local, dial);
        tracing::info!(call = %self.a.call, out_leg = %call, to = %crate::redact::Redacted(&to.to_string()), "transfer");
        ctx.run_later(timeout, move |act, ctx| {
            if act.still_ringing(call) {
                act.send(CallCommand::Hangup(call));
                act.ivr_input(ctx, Input::TransferFailed("no answer".into()));
            }
        });
    }
}

/// Why a transfer leg failed, in words a designer can branch on (`${transfer.error}`).
pub(super) fn ivr_input_failed(reason: &crate::sip::core::EndReason) -> Input {
    use crate::sip::core::EndReason;
    let why = match reason {
        EndReason::Failed(code @ (486 | 600)) => format!("busy ({code})"),
        EndReason::Failed(408) => "no answer (408)".into(),
        EndReason::Failed(480) => "not available (480)".into(),
        EndReason::Failed(code @ (404 | 484)) => format!("no such destination ({code})"),
        EndReason::Failed(603) => "declined (603)".into(),
        EndReason::Failed(code) => format!("failed ({code})"),
        other => format!("ended: {other:?}"),
    };
    Input::TransferFailed(why)
}

async fn webhook(
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<serde_json::Value>,
    timeout: Duration,
) -> Result<(u16, serde_json::Value), String> {
    let client = awc::Client::builder().timeout(timeout).finish();
    let m = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client.request(m, &url);
    for (k, v) in headers {
        req = req.insert_header((k, v));
    }
    let sent = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let mut resp = sent.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .body()
        .limit(256 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        return Ok((status, serde_json::Value::Null));
    }
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((status, v)),
        Err(_) if !(200..300).contains(&status) => Ok((status, serde_json::Value::Null)),
        Err(e) => Err(format!("the answer is not JSON: {e}")),
    }
}
