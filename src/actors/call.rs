//! `CallActor`: one per call, the driver of its [`crate::call::Session`]. It feeds the
//! session what happens (SIP events from the SIP driver, media notices, the router's
//! word on the call's work, agents' commands, store and webhook results, timers) and
//! carries out what the session asks: SIP commands to the SIP driver, RTP sockets
//! bound, the media task (prompts, bridging, recording; RTP never crosses the actor's
//! mailbox), browser legs answered on the shared WebRTC port, speech made off-thread,
//! store writes in order, webhooks, router requests, pushes to agents' desktops. It
//! decides nothing: every decision is the session's.

pub use crate::actors::messages::AgentCall;
use crate::actors::messages::AgentPush;
use crate::actors::router::{
    Answer, EndConsult, Ended, Enqueue, Position, Requeue, Transfer, TransferTarget, Work,
    WorkEvent,
};
use crate::call::{
    AgentCommand, CallError, CallPush, Colleague, ColleagueAccount, Inbound, Input, LegKey,
    MediaCommand, MediaInput, NewRecord, Output, Policy, Ports, RouterRequest, ScreenPop, Session,
    SipCommand, StoreWrite,
};
use crate::dialplan::engine::HttpRequest;
use crate::dialplan::Library;
use crate::media::driver::{LegSockets, MediaHandle, MediaNotice};
use crate::media::session::{LegParams, MediaEvent};
use crate::media::RtpPorts;
use crate::sdp::Direction;
use crate::sip::core::{CallRef, Target};
use crate::store::Store;
use actix::prelude::*;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub use crate::call::SipEvent as CallEvent;

/// What every call's IVR shares.
pub struct IvrContext {
    pub library: Arc<Library>,
    pub store: Store,
    pub centre: crate::centre::Centre,
}

impl std::fmt::Debug for IvrContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IvrContext")
            .field("dir", &self.library.dir())
            .finish()
    }
}

/// Commands the call actors send to the SIP driver.
#[derive(Debug)]
pub enum CallCommand {
    Ring(CallRef),
    Answer(CallRef, Bytes),
    Reject(CallRef, u16, &'static str),
    Hangup(CallRef),
    /// Put the leg on hold (re-INVITE with sendonly) or take it off (sendrecv).
    Hold(CallRef, bool),
    /// Ask the leg for a full video picture by `INFO` (RFC 5168).
    PictureFastUpdate(CallRef),
    /// Offer the leg video on `port` in these formats (a re-INVITE).
    AddVideo(CallRef, u16, Vec<crate::sdp::Format>),
    /// Place leg `leg` of a call (`call`: its reference when the SIP driver gave it
    /// already, an originated call's own leg); `owner` (none: already known) is told
    /// the reference ([`Placed`]) and receives the leg's events.
    Place {
        call: Option<CallRef>,
        leg: LegKey,
        to: Target,
        sdp: Bytes,
        owner: Option<Addr<CallActor>>,
    },
}

/// What the call actors need besides the session's policy.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub policy: Arc<Policy>,
    /// The port browser legs share (none: agents without a phone take no calls).
    pub webrtc: Option<Arc<crate::webrtc::WebRtcPort>>,
    /// Dialplans, the store and the queues (none: the built-in handler only).
    pub ivr: Option<Arc<IvrContext>>,
}

#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SipEvent(pub CallRef, pub CallEvent);

/// The SIP driver placed leg `leg` as call `call`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Placed {
    pub leg: LegKey,
    pub call: CallRef,
}

pub struct CallActor {
    session: Session,
    cmd: mpsc::UnboundedSender<CallCommand>,
    cfg: HandlerConfig,
    ports: Arc<RtpPorts>,
    media: Option<MediaHandle>,
    /// Sockets bound for legs, until the media task takes them.
    sockets: HashMap<LegKey, LegSockets>,
    /// Video sockets bound for legs already in the media task (video added).
    video_sockets: HashMap<LegKey, LegSockets>,
    /// The interaction record's writes, applied in order by one task.
    writer: Option<mpsc::UnboundedSender<StoreWrite>>,
    /// The session's answer to the agent command being handled.
    reply: Option<Result<serde_json::Value, CallError>>,
    /// `stopped()` ran (a drop without it is a failure, see `crate::panics`).
    wound_up: bool,
}

impl CallActor {
    pub fn inbound(
        inbound: Inbound,
        cmd: mpsc::UnboundedSender<CallCommand>,
        cfg: HandlerConfig,
        ports: Arc<RtpPorts>,
    ) -> Self {
        let flows = cfg.ivr.as_ref().map(|i| i.library.snapshot());
        let session = Session::inbound(cfg.policy.clone(), inbound, flows, rand::random());
        CallActor::new(session, cmd, cfg, ports)
    }

    pub fn outbound(
        call: CallRef,
        to: String,
        trunk: Option<String>,
        record: crate::call::Recording,
        cmd: mpsc::UnboundedSender<CallCommand>,
        cfg: HandlerConfig,
        ports: Arc<RtpPorts>,
    ) -> Self {
        let session =
            Session::outbound(cfg.policy.clone(), call, to, trunk, record, rand::random());
        CallActor::new(session, cmd, cfg, ports)
    }

    /// A video call from the web chat (see [`super::webcall`]): `cmd` carries its
    /// customer leg's signalling to the page.
    pub fn escalated(
        call: CallRef,
        offer: String,
        address: String,
        escalation: crate::call::Escalation,
        cmd: mpsc::UnboundedSender<CallCommand>,
        cfg: HandlerConfig,
        ports: Arc<RtpPorts>,
    ) -> Self {
        let session = Session::escalated(
            cfg.policy.clone(),
            call,
            offer,
            address,
            escalation,
            rand::random(),
        );
        CallActor::new(session, cmd, cfg, ports)
    }

    fn new(
        session: Session,
        cmd: mpsc::UnboundedSender<CallCommand>,
        cfg: HandlerConfig,
        ports: Arc<RtpPorts>,
    ) -> Self {
        CallActor {
            session,
            cmd,
            cfg,
            ports,
            media: None,
            sockets: HashMap::new(),
            video_sockets: HashMap::new(),
            writer: None,
            reply: None,
            wound_up: false,
        }
    }

    /// Feeds the session one input and carries out what it asks.
    fn feed(&mut self, ctx: &mut Context<Self>, input: Input) {
        self.session.handle(crate::clock::timestamp(), input);
        self.carry_out(ctx);
    }

    fn carry_out(&mut self, ctx: &mut Context<Self>) {
        while let Some(o) = self.session.poll() {
            match o {
                Output::Sip(c) => self.sip(ctx, c),
                Output::Bind { leg, video } => {
                    let ip = self.cfg.policy.rtp_ip;
                    let ports = match LegSockets::bind(ip, &self.ports, video) {
                        Ok(s) => {
                            let p = Ports {
                                audio: s.audio_port,
                                video: s.video_port,
                            };
                            self.sockets.insert(leg, s);
                            Ok(p)
                        }
                        Err(e) => {
                            tracing::warn!(call = %self.session.call(), error = %e, "no RTP port");
                            Err(e.to_string())
                        }
                    };
                    self.session
                        .handle(crate::clock::timestamp(), Input::Bound { leg, ports });
                }
                Output::BindVideo { leg } => {
                    let port = match LegSockets::bind_video(self.cfg.policy.rtp_ip, &self.ports) {
                        Ok(s) => {
                            let p = s.video_port.unwrap_or_default();
                            self.video_sockets.insert(leg, s);
                            Ok(p)
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    self.session
                        .handle(crate::clock::timestamp(), Input::VideoBound { leg, port });
                }
                Output::DropVideo { leg } => {
                    self.video_sockets.remove(&leg);
                }
                Output::Media(m) => self.media_command(ctx, m),
                Output::Timer { id, after } => {
                    ctx.run_later(after, move |act, ctx| act.feed(ctx, Input::Timer(id)));
                }
                Output::StartInteraction(r) => self.start_interaction(ctx, r),
                Output::Store(w) => {
                    if let Some(tx) = &self.writer {
                        let _ = tx.send(w);
                    }
                }
                Output::Lookup { by, value } => {
                    let Some(store) = self.store() else { continue };
                    let f = async move { store.lookup(by, &value).await };
                    ctx.spawn(wrap(f).map(|r, act, ctx| {
                        let r = r.map(|c| c.map(|c| c.fields())).map_err(|e| e.to_string());
                        act.feed(ctx, Input::LookupResult(r))
                    }));
                }
                Output::Http(req) => {
                    let f = webhook(req);
                    ctx.spawn(wrap(f).map(|r, act, ctx| act.feed(ctx, Input::HttpResult(r))));
                }
                Output::Speak { id, texts } => {
                    // Speech is made off the actor's thread.
                    let f = tokio::task::spawn_blocking(move || {
                        texts
                            .iter()
                            .map(|t| crate::dialplan::tts::cached(t))
                            .collect::<Vec<_>>()
                    });
                    ctx.spawn(wrap(f).map(move |r, act, ctx| {
                        let call = act.session.call();
                        let speech = r
                            .unwrap_or_default()
                            .into_iter()
                            .map(|s| {
                                s.map_err(
                                    |e| tracing::warn!(%call, error = %e, "text to speech failed"),
                                )
                                .ok()
                            })
                            .collect();
                        act.feed(ctx, Input::Spoken { id, speech })
                    }));
                }
                Output::Hints { customer } => {
                    let (Some(store), Some(id)) = (self.store(), self.interaction()) else {
                        continue;
                    };
                    let f = async move { store.routing_hints(customer, &id).await };
                    ctx.spawn(wrap(f).map(|r, act, ctx| {
                        let crate::store::RoutingHints {
                            last_agent,
                            repeat,
                            vip,
                        } = r.unwrap_or_else(|e| {
                            tracing::warn!(call = %act.session.call(), error = %e, "no routing hints");
                            Default::default()
                        });
                        act.feed(
                            ctx,
                            Input::RoutingHints {
                                last_agent,
                                repeat,
                                vip,
                            },
                        )
                    }));
                }
                Output::Router(r) => self.router(ctx, r),
                Output::Push { agent, push } => self.push(&agent, push),
                Output::ScreenPop(p) => self.screen_pop(p),
                Output::Register(on) => {
                    if let (Some(c), Some(id)) = (self.centre(), self.interaction()) {
                        c.set_call(&id, on.then(|| ctx.address().recipient()));
                    }
                }
                Output::Reply(r) => self.reply = Some(r),
                Output::Stop => ctx.stop(),
            }
        }
    }

    /// What can be carried out without the actor's context (it is stopping or being
    /// dropped): SIP commands, router notices, store writes, the registry.
    fn carry_out_detached(&mut self) {
        while let Some(o) = self.session.poll() {
            match o {
                Output::Sip(SipCommand::Originate { .. }) => {}
                Output::Sip(c) => self.sip_plain(c),
                Output::Store(w) => {
                    if let Some(tx) = &self.writer {
                        let _ = tx.send(w);
                    }
                }
                Output::Router(r @ (RouterRequest::Ended | RouterRequest::Requeue)) => {
                    self.router_notice(r)
                }
                Output::Register(false) => {
                    if let (Some(c), Some(id)) = (self.centre(), self.interaction()) {
                        c.set_call(&id, None);
                    }
                }
                Output::Media(MediaCommand::Close) => self.media = None,
                _ => {}
            }
        }
    }

    fn interaction(&self) -> Option<String> {
        self.session.interaction().map(str::to_string)
    }

    fn centre(&self) -> Option<crate::centre::Centre> {
        Some(self.cfg.ivr.as_ref()?.centre.clone())
    }

    fn store(&self) -> Option<Store> {
        Some(self.cfg.ivr.as_ref()?.store.clone())
    }

    fn sip_plain(&self, c: SipCommand) {
        let c = match c {
            SipCommand::Ring(call) => CallCommand::Ring(call),
            SipCommand::Answer(call, sdp) => CallCommand::Answer(call, sdp),
            SipCommand::Reject(call, code, why) => CallCommand::Reject(call, code, why),
            SipCommand::Hangup(call) => CallCommand::Hangup(call),
            SipCommand::Hold(call, on) => CallCommand::Hold(call, on),
            SipCommand::PictureFastUpdate(call) => CallCommand::PictureFastUpdate(call),
            SipCommand::AddVideo(call, port, formats) => CallCommand::AddVideo(call, port, formats),
            SipCommand::Originate { .. } => return,
        };
        let _ = self.cmd.send(c);
    }

    fn sip(&mut self, ctx: &mut Context<Self>, c: SipCommand) {
        let SipCommand::Originate { leg, to, sdp } = c else {
            return self.sip_plain(c);
        };
        if leg == 0 {
            // An originated call's own leg: the SIP driver knows it and its owner.
            let call = Some(self.session.call());
            let _ = self.cmd.send(CallCommand::Place {
                call,
                leg,
                to,
                sdp,
                owner: None,
            });
            return;
        }
        tracing::info!(call = %self.session.call(), leg, "placing a leg");
        let _ = self.cmd.send(CallCommand::Place {
            call: None,
            leg,
            to,
            sdp,
            owner: Some(ctx.address()),
        });
    }

    fn media_handle(&mut self, ctx: &mut Context<Self>) -> &mut MediaHandle {
        let call = self.session.call();
        self.media
            .get_or_insert_with(|| MediaHandle::spawn(call.to_string(), ctx.address().recipient()))
    }

    fn media_command(&mut self, ctx: &mut Context<Self>, c: MediaCommand) {
        match c {
            MediaCommand::AddLeg { leg, id, params } => {
                if let Some(s) = self.sockets.remove(&leg) {
                    self.media_handle(ctx).add_leg(id, params, s);
                }
            }
            MediaCommand::AddBrowser {
                leg,
                id,
                offer,
                codec,
                video,
            } => {
                let answer = self.add_browser(ctx, id, &offer, codec, &video);
                self.session.handle(
                    crate::clock::timestamp(),
                    Input::BrowserAnswered { leg, answer },
                );
            }
            MediaCommand::AddVideo { leg, id } => {
                if let Some(s) = self.video_sockets.remove(&leg) {
                    self.media_handle(ctx).add_video(id, s);
                }
            }
            MediaCommand::Reanswer {
                leg,
                id,
                offer,
                video,
            } => {
                let rx = self.media_handle(ctx).reanswer(id, offer, video);
                ctx.spawn(wrap(rx).map(move |r, act, ctx| {
                    let answer = r.unwrap_or_else(|_| Err("the media ended".into()));
                    act.feed(ctx, Input::BrowserReanswered { leg, answer })
                }));
            }
            MediaCommand::Close => self.media = None,
            c => {
                let m = self.media_handle(ctx);
                match c {
                    MediaCommand::Update(l, p) => m.update(l, p),
                    MediaCommand::Remove(l) => m.remove(l),
                    MediaCommand::Play(l, item) => m.play(l, item),
                    MediaCommand::StopPlayback(l) => m.stop_playback(l),
                    MediaCommand::SendDigits(l, d) => m.send_digits(l, &d),
                    MediaCommand::InfoDigit(l, d) => m.info_digit(l, d),
                    MediaCommand::PictureFastUpdate(l) => m.picture_fast_update(l),
                    MediaCommand::Bridge(a, b) => m.bridge(a, b),
                    MediaCommand::Mix(hears) => m.mix(hears),
                    MediaCommand::Unbridge => m.unbridge(),
                    MediaCommand::Record(path) => m.record(path),
                    MediaCommand::StopRecording => m.stop_recording(),
                    MediaCommand::Voicemail(path) => m.voicemail(path),
                    MediaCommand::StopVoicemail => m.stop_voicemail(),
                    MediaCommand::AddLeg { .. }
                    | MediaCommand::AddBrowser { .. }
                    | MediaCommand::AddVideo { .. }
                    | MediaCommand::Reanswer { .. }
                    | MediaCommand::Close => {}
                }
            }
        }
    }

    /// A browser leg on the shared WebRTC port answering `offer` with `codec` (key
    /// presses never go in its RTP): our answer.
    fn add_browser(
        &mut self,
        ctx: &mut Context<Self>,
        id: crate::media::session::LegId,
        offer: &str,
        codec: crate::sdp::Codec,
        video: &[crate::sdp::Format],
    ) -> Result<String, String> {
        let port = self
            .cfg
            .webrtc
            .clone()
            .ok_or("browser calls are off ([webrtc] port = 0)")?;
        let (leg, answer) = crate::webrtc::BrowserLeg::answer(
            crate::clock::now(),
            offer,
            codec,
            video,
            port.local(),
            port.advertised(),
        )
        .map_err(|e| e.to_string())?;
        // A browser takes PLI; its video comes on the same transport as its audio.
        let video = leg
            .video_codecs()
            .map(|codecs| crate::media::session::VideoLeg {
                remote_rtp: Some(port.advertised()),
                remote_rtcp: None,
                rtcp_mux: true,
                codecs,
                via: crate::media::keyframe::Via::Pli,
            });
        let params = LegParams {
            codec,
            pt: codec.pt(),
            telephone_event: None,
            ptime_ms: 20,
            direction: Direction::SendRecv,
            remote_rtp: Some(port.advertised()),
            remote_rtcp: None,
            rtcp_mux: true,
            video,
        };
        self.media_handle(ctx).add_browser(id, params, leg, port);
        Ok(answer)
    }

    /// The record exists before anything is written to it: the run starts when it does.
    fn start_interaction(&mut self, ctx: &mut Context<Self>, r: NewRecord) {
        let Some(store) = self.store() else {
            return self.session.handle(
                crate::clock::timestamp(),
                Input::InteractionStarted(Err("no store".into())),
            );
        };
        self.writer = Some(store_writer(store.clone(), r.id.clone()));
        let f = async move {
            let (customer, _) = store
                .start_interaction(&crate::store::NewInteraction {
                    id: &r.id,
                    kind: r.kind,
                    direction: "inbound",
                    from: &r.from,
                    dialled: &r.dialled,
                    trunk: &r.trunk,
                    flow: &r.flow,
                    flow_version: &r.flow_version,
                    unverified: r.unverified,
                    conversation: r.conversation,
                })
                .await?;
            let recording_withdrawn = match customer {
                Some(c) => store.recording_withdrawn(c).await?,
                None => false,
            };
            Ok::<_, crate::store::StoreError>(crate::call::Started {
                recording_withdrawn,
            })
        };
        ctx.spawn(wrap(f).map(|r, act, ctx| {
            act.feed(ctx, Input::InteractionStarted(r.map_err(|e| e.to_string())))
        }));
    }

    fn router_notice(&self, r: RouterRequest) {
        let (Some(c), Some(interaction)) = (self.centre(), self.interaction()) else {
            return;
        };
        let router = c.router();
        match r {
            RouterRequest::Ended => router.do_send(Ended { interaction }),
            RouterRequest::Requeue => router.do_send(Requeue { interaction }),
            RouterRequest::EndConsult { colleague } => router.do_send(EndConsult {
                interaction,
                colleague,
            }),
            _ => {}
        }
    }

    fn router(&mut self, ctx: &mut Context<Self>, r: RouterRequest) {
        let (Some(c), Some(interaction)) = (self.centre(), self.interaction()) else {
            return;
        };
        let router = c.router().clone();
        match r {
            RouterRequest::Enqueue(e) => {
                let work = Work {
                    interaction,
                    channel: e.channel,
                    queue: e.queue,
                    customer: e.customer,
                    conversation: self.session.escalation().and_then(|e| e.conversation),
                    from: e.from,
                    details: e.details,
                    owner: ctx.address().recipient(),
                };
                let f = router.send(Enqueue {
                    work,
                    priority: e.priority,
                    skills: e.skills,
                    vip: e.vip,
                    last_agent: e.last_agent,
                    repeat: e.repeat,
                    only: e.only,
                });
                ctx.spawn(wrap(f).map(|r, act, ctx| {
                    let r = r
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    act.feed(ctx, Input::Enqueued(r))
                }));
            }
            RouterRequest::Position => {
                let f = router.send(Position { interaction });
                ctx.spawn(
                    wrap(f)
                        .map(|r, act, ctx| act.feed(ctx, Input::QueuePosition(r.ok().flatten()))),
                );
            }
            RouterRequest::HandOver { from, to } => {
                let hand_over = async move {
                    router
                        .send(Transfer {
                            agent: from,
                            interaction: interaction.clone(),
                            to: TransferTarget::Agent(to.clone()),
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    router
                        .send(Answer {
                            agent: to,
                            interaction,
                            accept: true,
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())
                };
                ctx.spawn(wrap(hand_over).map(|r, act, ctx| {
                    if let Err(e) = r {
                        act.feed(ctx, Input::HandOverFailed(e));
                    }
                }));
            }
            r => self.router_notice(r),
        }
    }

    fn push(&self, agent: &str, p: CallPush) {
        let (Some(c), Some(interaction)) = (self.centre(), self.interaction()) else {
            return;
        };
        let Some(addr) = c.agent_addr(agent) else {
            return;
        };
        addr.do_send(match p {
            CallPush::Consult {
                from,
                caller,
                customer,
                details,
                browser_call,
            } => AgentPush::Consult {
                interaction,
                from,
                caller,
                customer,
                details,
                browser_call,
            },
            CallPush::CallState(state) => AgentPush::CallState { interaction, state },
            CallPush::Held(on) => AgentPush::Held { interaction, on },
            CallPush::Monitored(by) => AgentPush::Monitored {
                interaction,
                supervisor: by.as_ref().map(|b| b.0.clone()),
                name: by.as_ref().map(|b| b.1.clone()),
                mode: by.map(|b| b.2),
            },
            CallPush::Renegotiate => AgentPush::Renegotiate { interaction },
            CallPush::Answer(sdp) => AgentPush::WebrtcAnswer { interaction, sdp },
            CallPush::VideoRefused(error) => AgentPush::VideoRefused { interaction, error },
            CallPush::Ended => AgentPush::Ended { interaction },
        });
    }

    /// Posts the screen-pop (customer record, IVR variables) to the webhooks that want
    /// `event`; the agent's desktop gets the same record from the API.
    fn screen_pop(&self, p: ScreenPop) {
        let ScreenPop {
            event,
            agent,
            customer,
            queue,
            from,
            vars,
        } = p;
        let (Some(centre), Some(interaction)) = (self.centre(), self.interaction()) else {
            return;
        };
        let channel = self.session.kind();
        if !centre.webhooks().wants(event) {
            return;
        }
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
                    "channel": channel,
                    "agent": agent,
                    "queue": queue,
                    "from": from,
                    "customer": record,
                    "ivr": vars,
                }),
            );
        });
    }

    /// The actor failed (a panic): the session ends its legs and its interaction.
    fn failed(&mut self) {
        self.wound_up = true;
        tracing::error!(call = %self.session.call(), reason = %crate::panics::reason(), "call actor failed; ending its call");
        self.session
            .handle(crate::clock::timestamp(), Input::Failed);
        self.carry_out_detached();
    }
}

fn wrap<F: std::future::Future>(f: F) -> impl ActorFuture<CallActor, Output = F::Output> {
    actix::fut::wrap_future::<_, CallActor>(f)
}

/// Without `stopped()`, failure handling runs when the actor is dropped.
impl Drop for CallActor {
    fn drop(&mut self) {
        if !self.wound_up {
            self.failed();
        }
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.feed(ctx, Input::Start);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.wound_up = true;
        if std::thread::panicking() {
            // actix stops an actor whose handler panicked as its future is dropped.
            return self.failed();
        }
        self.session
            .handle(crate::clock::timestamp(), Input::Stopped);
        self.carry_out_detached();
    }
}

impl Handler<WorkEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, ev: WorkEvent, ctx: &mut Self::Context) {
        use crate::call::WorkNotice;
        let n = match ev {
            WorkEvent::Offered { agent } => WorkNotice::Offered { agent },
            WorkEvent::Assigned {
                agent, extension, ..
            } => WorkNotice::Assigned { agent, extension },
            WorkEvent::Transferred { from, to } => WorkNotice::Transferred { from, to },
            WorkEvent::Overflow { to } => WorkNotice::Overflow { to },
            WorkEvent::OfferEnded { agent, lapsed } => WorkNotice::OfferEnded { agent, lapsed },
        };
        self.feed(ctx, Input::Work(n));
    }
}

impl Handler<SipEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, SipEvent(call, ev): SipEvent, ctx: &mut Self::Context) {
        self.feed(ctx, Input::Sip(call, ev));
    }
}

impl Handler<Placed> for CallActor {
    type Result = ();

    fn handle(&mut self, Placed { leg, call }: Placed, ctx: &mut Self::Context) {
        tracing::info!(call = %self.session.call(), out_leg = %call, leg, "leg placed");
        self.feed(ctx, Input::Placed { leg, call });
    }
}

impl Handler<AgentCall> for CallActor {
    type Result = Result<serde_json::Value, CallError>;

    fn handle(&mut self, AgentCall(cmd): AgentCall, ctx: &mut Context<Self>) -> Self::Result {
        // Whom a consult would bring in: looked up here, judged by the session.
        let colleague = match (&cmd, self.centre()) {
            (AgentCommand::Consult { to, .. }, Some(c)) => Some(Colleague {
                logged_in: c.agent_addr(to).is_some(),
                account: c
                    .accounts()
                    .into_iter()
                    .find(|a| a.spec.name == *to)
                    .map(|a| ColleagueAccount {
                        extension: a.spec.extension.clone(),
                    }),
            }),
            _ => None,
        };
        self.reply = None;
        self.feed(ctx, Input::Agent(cmd, colleague));
        self.reply
            .take()
            .unwrap_or_else(|| Err(CallError::Refused("the call did not answer".into())))
    }
}

impl Handler<MediaNotice> for CallActor {
    type Result = ();

    fn handle(&mut self, n: MediaNotice, ctx: &mut Self::Context) {
        let call = self.session.call();
        let input = match n {
            MediaNotice::Event(MediaEvent::Digit { leg, digit, via }) => {
                tracing::info!(%call, leg, digit = %crate::redact::Redacted(digit), ?via, "dtmf");
                MediaInput::Digit { leg, digit }
            }
            MediaNotice::Event(MediaEvent::PlayDone {
                id, interrupted, ..
            }) => {
                tracing::debug!(%call, id, interrupted, "prompt done");
                MediaInput::PlayDone { id, interrupted }
            }
            MediaNotice::Voicemail(r) => MediaInput::Voicemail(r),
            MediaNotice::Event(MediaEvent::Latched { leg, addr }) => {
                return tracing::debug!(%call, leg, %addr, "rtp latched");
            }
            MediaNotice::Event(MediaEvent::NewSource { leg, ssrc }) => {
                return tracing::debug!(%call, leg, ssrc, "new rtp source");
            }
            MediaNotice::Event(MediaEvent::PictureFastUpdate { leg }) => {
                tracing::debug!(%call, leg, "keyframe asked by INFO");
                MediaInput::PictureFastUpdate(leg)
            }
            MediaNotice::Event(MediaEvent::RecordingError { error }) => {
                return tracing::warn!(%call, %error, "recording failed");
            }
            MediaNotice::Browser(leg, r) => MediaInput::Browser(leg, r),
            MediaNotice::Closed { recording } => {
                if let Some(p) = recording {
                    tracing::info!(%call, path = %p.display(), "recording saved");
                }
                MediaInput::Closed
            }
        };
        self.feed(ctx, Input::Media(input));
    }
}

/// One task per call applies the interaction's writes in order, so the timeline reads
/// as things happened.
fn store_writer(store: Store, id: String) -> mpsc::UnboundedSender<StoreWrite> {
    let (tx, mut rx) = mpsc::unbounded_channel::<StoreWrite>();
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
                StoreWrite::Survey { metric, score } => {
                    store.add_survey_of(&id, "voice", metric, score, "").await
                }
                StoreWrite::Consent(e) => store.record_interaction_consent(&id, &e).await,
                StoreWrite::Recording(path) => match store.set_recording(&id, &path).await {
                    Ok(()) => {
                        let data = serde_json::json!({ "path": path });
                        store.add_timeline(&id, "recording", data).await
                    }
                    e => e,
                },
            };
            if let Err(e) = r {
                tracing::warn!(interaction = %id, error = %e, "cannot write the interaction");
            }
        }
    });
    tx
}

pub(crate) async fn webhook(req: HttpRequest) -> Result<(u16, serde_json::Value), String> {
    let HttpRequest {
        method,
        url,
        headers,
        body,
        timeout,
    } = req;
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
