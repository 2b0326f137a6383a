//! The call core: one call's control logic as a sans-IO state machine, the shape of
//! [`crate::dialplan::Run`] and [`crate::routing::engine::Router`]. [`Session::handle`]
//! takes the time and one [`Input`] (a SIP event on one of its legs, a media notice, the
//! router's word on its work, an agent's command, a store or HTTP result, a timer);
//! [`Session::poll`] gives the [`Output`]s to carry out (SIP commands, media commands,
//! router requests, pushes to agents, store writes, webhooks, timers). Randomness (the
//! interaction id, SDP session ids) comes from a seeded generator. The actor that
//! drives it (`actors::call::CallActor`) binds sockets, runs the media task, talks to
//! the SIP driver, the router and the store, and decides nothing.
//!
//! What a call is:
//! - **legs**, each with its [`Role`]: the customer's leg (the caller of an inbound
//!   call, the called party of an originated one), a forwarded leg (trunk or
//!   extension), an IVR transfer target, an agent's desk phone, an agent's browser leg;
//! - **a mode**: the built-in handler (answer, welcome prompt, record), forwarding
//!   (ring the second leg, answer the caller when it answers, bridge), the IVR
//!   ([`ivr`]), or an originated call;
//! - **an agent stage** ([`agents::Stage`]) once the IVR queued the call: waiting,
//!   connecting an agent, talking, held, consulting a colleague, handing over;
//! - **its media**: opened on first use, closed when every leg has ended (the
//!   recording is finalised then), after which the driver stops.
//!
//! The policies live here: which SIP failures are relayed to the caller (busy stays
//! busy), when to answer and bridge, what a transfer's failure is called in the
//! dialplan (`${transfer.error}`), the VIP rule, the queue-wait estimate, consult rules,
//! what happens when an agent's browser never connects or goes away.

pub mod agents;
mod ivr;
pub mod monitor;
#[cfg(test)]
mod tests;
mod video;

use crate::config::DialplanConfig;
use crate::dialplan::engine::PlayItem;
use crate::dialplan::FlowSet;
use crate::media::player::{Item, Samples};
use crate::media::session::{LegId, LegParams};
use crate::sdp::{self, Codec, Direction, Local, RemoteSession};
pub use crate::sip::core::{CallRef, EndReason, Target};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use agents::{AgentCommand, CallError, CallPush, Stage};
pub use monitor::{MonitorMode, MonitorVia, SupervisorCommand};

/// Wall-clock time, the core's only clock (timers are relative).
pub type Time = jiff::Timestamp;

/// A leg of this call (0 is the customer's; numbers are never reused).
pub type LegKey = u32;

/// What a leg is to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The customer: the caller of an inbound call, the called party of an originated
    /// one.
    Customer,
    /// The built-in handler's second leg (a trunk or an extension's phone).
    Forward,
    /// The IVR's transfer target.
    Transfer,
    /// This agent's desk phone (taking the call, or consulted).
    AgentPhone(String),
    /// This agent's browser (a WebRTC leg on the shared port).
    AgentBrowser(String),
    /// This supervisor's browser, listening, whispering or barging in.
    Supervisor(String),
    /// This supervisor's desk phone (a registered extension), doing the same.
    SupervisorPhone(String),
}

/// Where a leg is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// Its RTP sockets (or browser answer) are being made.
    Preparing,
    /// Offered or ringing.
    Ringing,
    /// Answered (SIP established, or a browser leg connected).
    Up,
    Ended,
}

/// What the call does with the customer before any agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer, play the welcome prompt, record, hang up after `hangup_after`.
    Handler,
    /// Ring a second leg; answer the caller and bridge when it answers.
    Forward,
    /// A dialplan flow runs.
    Ivr,
    /// An originated call (the API's `originate`): the leg is placed, answered media
    /// plays nothing.
    Outbound,
}

/// The media ports a leg's sockets were bound on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub audio: u16,
    pub video: Option<u16>,
}

/// How every call behaves (from the configuration).
#[derive(Debug, Clone)]
pub struct Policy {
    pub answer_after: Duration,
    pub hangup_after: Option<Duration>,
    pub rtp_ip: IpAddr,
    pub record: bool,
    pub recordings_dir: PathBuf,
    pub welcome: Samples,
    pub hold_music: Samples,
    pub forward_trunk: Option<String>,
    /// The SIP users (extensions) registered phones may dial directly.
    pub extensions: Arc<HashSet<String>>,
    /// The trunk registered phones dial out through.
    pub phones_trunk: Option<String>,
    /// How long an extension rings (none: until the caller hangs up).
    pub ring: Option<Duration>,
    /// Agents without a desk phone take calls in the browser (`[webrtc]` is on).
    pub browser_calls: bool,
    /// The agent is told when a supervisor listens (whisper and barge: always).
    pub monitor_notice: bool,
    /// The dialplans' routing and the queues (none: the built-in handler only).
    pub dialplan: Option<DialplanPolicy>,
}

#[derive(Debug, Clone)]
pub struct DialplanPolicy {
    pub config: DialplanConfig,
    pub demo: bool,
    pub voicemail_dir: PathBuf,
}

/// A new inbound call, as the SIP core reported it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub call: CallRef,
    pub offer: Bytes,
    pub callee: String,
    pub caller: String,
    pub trunk: Option<String>,
    /// The registered phone's user who placed it, if a phone did.
    pub user: Option<String>,
}

impl Inbound {
    /// The call a SIP core's `IncomingCall` reports, and where it came from.
    pub fn from_event(e: crate::sip::core::CoreEvent) -> Option<(Inbound, crate::sip::Peer)> {
        let crate::sip::core::CoreEvent::IncomingCall {
            call,
            caller,
            callee,
            sdp,
            trunk,
            user,
            source,
        } = e
        else {
            return None;
        };
        let inbound = Inbound {
            call,
            offer: sdp,
            callee,
            caller,
            trunk,
            user,
        };
        Some((inbound, source))
    }
}

/// A video call the customer started from the web chat, for the agent who has the
/// chat: its signalling is the chat page's socket (the driver carries the SIP
/// commands on the customer's leg there), its media a browser leg with video.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// The chat's interaction id.
    pub chat: String,
    /// The agent who has the chat (the call is offered to them alone).
    pub agent: String,
    /// The chat's queue (the call is counted there, not waiting in it).
    pub queue: String,
    /// The chat's customer and case (none: the chat's address is not verified yet).
    pub customer: Option<i64>,
    pub conversation: Option<i64>,
    /// The name the customer gave.
    pub name: String,
}

/// How long a video call from the chat rings its agent before the customer is told
/// they could not take it.
pub const ESCALATION_RING: Duration = Duration::from_secs(45);

/// A SIP event on one leg.
#[derive(Debug, Clone)]
pub enum SipEvent {
    Established {
        remote_sdp: Bytes,
    },
    RemoteOffer {
        negotiated: Box<sdp::Negotiated>,
    },
    Progress(u16),
    InfoDigit(char),
    /// The leg asked by `INFO` for a full picture of the video it receives (RFC 5168).
    PictureFastUpdate,
    /// The end of our offer adding video: the leg's answer, or none (refused).
    VideoAnswer(Option<Bytes>),
    Ended(EndReason),
}

/// What the router says about this call's work.
#[derive(Debug, Clone)]
pub enum WorkNotice {
    Offered {
        agent: String,
    },
    Assigned {
        agent: String,
        extension: Option<String>,
    },
    Transferred {
        from: String,
        to: String,
    },
    Overflow {
        to: String,
    },
    /// An offer ended untaken (rejected, or lapsed).
    OfferEnded {
        agent: String,
        lapsed: bool,
    },
}

/// What the media task reports.
#[derive(Debug, Clone)]
pub enum MediaInput {
    Digit {
        leg: LegId,
        digit: char,
    },
    PlayDone {
        id: u64,
        interrupted: bool,
    },
    Voicemail(Result<(PathBuf, f64), String>),
    /// A browser leg connected (or failed, or closed: the reason).
    Browser(LegId, Result<(), String>),
    /// The media wants a keyframe from this leg, which takes only `INFO` for it.
    PictureFastUpdate(LegId),
    /// The media task ended (the recording is finalised).
    Closed,
}

/// What the store knew when the interaction record was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Started {
    /// The caller's number belongs to a customer who withdrew their recording consent
    /// (for voice or every channel): this call is not recorded.
    pub recording_withdrawn: bool,
}

/// Whether a call the API places is recorded: as asked (else `calls.record`), and
/// never when the callee withdrew their recording consent (their consent wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recording {
    pub asked: Option<bool>,
    pub consent_withdrawn: bool,
}

impl Recording {
    pub fn on(self, default: bool) -> bool {
        !self.consent_withdrawn && self.asked.unwrap_or(default)
    }
}

/// A colleague's details, looked up by the driver when an agent asks to consult them.
#[derive(Debug, Clone)]
pub struct Colleague {
    pub logged_in: bool,
    /// None: no account of that name.
    pub account: Option<ColleagueAccount>,
}

#[derive(Debug, Clone)]
pub struct ColleagueAccount {
    pub extension: Option<String>,
}

#[derive(Debug)]
pub enum Input {
    /// The call starts (inbound: ring and route; originated: place the leg).
    Start,
    Sip(CallRef, SipEvent),
    /// The driver placed leg `leg` as SIP call `call`.
    Placed {
        leg: LegKey,
        call: CallRef,
    },
    /// A leg's RTP sockets were bound (or could not be).
    Bound {
        leg: LegKey,
        ports: Result<Ports, String>,
    },
    /// A browser leg answered its offer (our SDP), or could not.
    BrowserAnswered {
        leg: LegKey,
        answer: Result<String, String>,
    },
    /// A port for the leg's video was bound (or could not be).
    VideoBound {
        leg: LegKey,
        port: Result<u16, String>,
    },
    /// A connected browser leg answered its new offer (our SDP), or could not.
    BrowserReanswered {
        leg: LegKey,
        answer: Result<String, String>,
    },
    Media(MediaInput),
    Work(WorkNotice),
    /// An agent acts on the call; answered by one [`Output::Reply`].
    Agent(AgentCommand, Option<Colleague>),
    /// The interaction record exists (or could not be written).
    InteractionStarted(Result<Started, String>),
    LookupResult(Result<Option<Vec<(String, String)>>, String>),
    HttpResult(Result<(u16, serde_json::Value), String>),
    /// Speech for prompt `id` (one per `Say` item, in order; `None`: synthesis failed).
    Spoken {
        id: u64,
        speech: Vec<Option<Samples>>,
    },
    /// The customer's record says: their last agent, a repeat contact, a VIP.
    RoutingHints {
        last_agent: Option<String>,
        repeat: bool,
        vip: bool,
    },
    /// The router took the work (or refused: why).
    Enqueued(Result<(), String>),
    /// The caller's place in their queue (none: not waiting).
    QueuePosition(Option<usize>),
    /// Handing the call to the consulted colleague failed.
    HandOverFailed(String),
    Timer(u64),
    /// The driver failed (a panic): end everything.
    Failed,
    /// The driver stopped.
    Stopped,
}

/// A SIP command for the SIP driver.
#[derive(Debug, Clone, PartialEq)]
pub enum SipCommand {
    Ring(CallRef),
    Answer(CallRef, Bytes),
    Reject(CallRef, u16, &'static str),
    Hangup(CallRef),
    /// Put the leg on hold (re-INVITE sendonly) or take it off (sendrecv).
    Hold(CallRef, bool),
    /// Ask the leg for a full video picture by `INFO` (RFC 5168).
    PictureFastUpdate(CallRef),
    /// Offer the leg video on `port` in `formats` (a re-INVITE adding `m=video`;
    /// answered by [`SipEvent::VideoAnswer`]).
    AddVideo(CallRef, u16, Vec<sdp::Format>),
    /// Place leg `leg` (the driver answers with [`Input::Placed`]).
    Originate {
        leg: LegKey,
        to: Target,
        sdp: Bytes,
    },
}

/// A command for the call's media task.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    /// Leg `leg`'s bound sockets become media leg `id`.
    AddLeg {
        leg: LegKey,
        id: LegId,
        params: LegParams,
    },
    /// Answer a browser's `offer` as media leg `id` (the driver answers with
    /// [`Input::BrowserAnswered`]), with video in one of `video` (the customer's
    /// formats) when the browser offers it.
    AddBrowser {
        leg: LegKey,
        id: LegId,
        offer: String,
        codec: Codec,
        video: Vec<sdp::Format>,
    },
    /// Leg `leg`'s bound video sockets join media leg `id`.
    AddVideo {
        leg: LegKey,
        id: LegId,
    },
    /// Answer the new `offer` of connected browser leg `id` (a renegotiation), its
    /// video in one of `video` (the driver answers with [`Input::BrowserReanswered`]).
    Reanswer {
        leg: LegKey,
        id: LegId,
        offer: String,
        video: Vec<sdp::Format>,
    },
    Update(LegId, LegParams),
    Remove(LegId),
    Play(LegId, Item),
    StopPlayback(LegId),
    SendDigits(LegId, String),
    InfoDigit(LegId, char),
    /// The leg asked by `INFO` for a full picture.
    PictureFastUpdate(LegId),
    Bridge(LegId, LegId),
    /// Who hears whom: (listener, the legs it hears).
    Mix(crate::media::session::Hears),
    Unbridge,
    Record(PathBuf),
    StopRecording,
    Voicemail(PathBuf),
    StopVoicemail,
    /// End the media task (the recording is finalised; [`MediaInput::Closed`] follows).
    Close,
}

/// A write to the interaction record, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreWrite {
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
    /// The caller said something of their consent (the recording notice's opt-out
    /// key): kept as an event of the interaction's customer.
    Consent(crate::privacy::ConsentEvent),
    /// The caller answered a survey question (keys after the agent hung up).
    Survey {
        metric: crate::kpi::Metric,
        score: i64,
    },
}

/// The call joins a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueue {
    pub queue: String,
    pub channel: crate::routing::engine::Channel,
    /// For this agent alone (a video call from the chat they have).
    pub only: Option<String>,
    pub priority: u8,
    pub skills: Vec<(String, u8)>,
    pub customer: Option<i64>,
    /// The caller's number, for the offer.
    pub from: String,
    /// The screen-pop details (the IVR's variables).
    pub details: serde_json::Value,
    pub vip: bool,
    pub last_agent: Option<String>,
    pub repeat: bool,
}

/// A screen-pop webhook for an agent (`call.offered`, `call.connected`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenPop {
    pub event: &'static str,
    pub agent: String,
    pub customer: Option<i64>,
    pub queue: Option<String>,
    pub from: String,
    pub vars: serde_json::Map<String, serde_json::Value>,
}

/// A request to the router.
#[derive(Debug, Clone, PartialEq)]
pub enum RouterRequest {
    Enqueue(Enqueue),
    /// The work is over (or leaves its queue).
    Ended,
    /// The agent did not take it: back to its place.
    Requeue,
    Position,
    EndConsult {
        colleague: String,
    },
    /// Hand the work from `from` to `to`, who accepts at once (a completed consult).
    HandOver {
        from: String,
        to: String,
    },
}

/// The interaction record to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub id: String,
    /// `voice`, or `video` for a video call from the web chat.
    pub kind: &'static str,
    pub from: String,
    pub dialled: String,
    pub trunk: String,
    pub flow: String,
    pub flow_version: String,
    /// The case it joins (a web chat's, for its video call).
    pub conversation: Option<i64>,
    /// `from` is only what the customer typed (an unverified web chat's address).
    pub unverified: bool,
}

#[derive(Debug)]
pub enum Output {
    Sip(SipCommand),
    /// Bind RTP sockets for leg `leg` (answered by [`Input::Bound`]).
    Bind {
        leg: LegKey,
        video: bool,
    },
    /// Bind a video port for leg `leg`, whose media is up (answered by
    /// [`Input::VideoBound`]).
    BindVideo {
        leg: LegKey,
    },
    /// Free leg `leg`'s video port, bound and not used.
    DropVideo {
        leg: LegKey,
    },
    Media(MediaCommand),
    Timer {
        id: u64,
        after: Duration,
    },
    StartInteraction(NewRecord),
    Store(StoreWrite),
    Lookup {
        by: &'static str,
        value: String,
    },
    Http(crate::dialplan::engine::HttpRequest),
    /// Make speech for these texts (answered by [`Input::Spoken`]).
    Speak {
        id: u64,
        texts: Vec<String>,
    },
    /// Look up the customer's routing hints (answered by [`Input::RoutingHints`]).
    Hints {
        customer: i64,
    },
    Router(RouterRequest),
    Push {
        agent: String,
        push: CallPush,
    },
    ScreenPop(ScreenPop),
    /// Agents may reach this call by its interaction id (or no longer).
    Register(bool),
    /// The answer to an [`Input::Agent`].
    Reply(Result<serde_json::Value, CallError>),
    /// The call is over: stop the driver.
    Stop,
}

/// One leg.
#[derive(Debug)]
struct Leg {
    key: LegKey,
    role: Role,
    sip: Option<CallRef>,
    state: LegState,
    local: Option<Local>,
    media: Option<LegId>,
    codec: Option<Codec>,
    /// The video formats agreed with it (none: no video).
    video: Vec<sdp::Format>,
    /// We sent the offer (the answer comes in the 2xx or ACK).
    we_offered: bool,
    /// Its sockets were bound and not yet handed to the media task.
    bound: bool,
    /// A SIP leg whose media is a browser leg (a WebRTC softphone calling in).
    browser: bool,
    /// The hang-up waits for the SIP driver to place the leg.
    hangup_when_placed: bool,
    /// Only the customer's leg: put on hold by re-INVITE.
    held: bool,
    /// A browser leg's media (ICE, DTLS) connected.
    browser_up: bool,
    /// We took it out of the call: its end is no news.
    dropped: bool,
}

/// Why a leg is bound: what happens once its sockets exist.
#[derive(Debug, Clone)]
enum Then {
    /// Answer the customer (our answer to their offer, or our offer).
    AnswerCustomer,
    /// Place the leg to `to`, offering `video` formats.
    Place {
        to: Target,
        video: sdp::VideoSpec,
        ring: Option<Duration>,
    },
}

/// What a timer is for.
#[derive(Debug, Clone)]
enum Timer {
    AnswerAfter,
    HangupAfter,
    /// A WebRTC caller's media has this long to connect.
    CallerBrowser,
    /// A placed leg has this long to answer.
    Ring(LegKey),
    /// A dialplan timer.
    Ivr(u64),
    VoicemailMax,
    /// An agent's browser has this long to connect.
    Browser(String),
    /// A supervisor's browser leg has this long to connect.
    Monitor(LegKey),
    QueuePoll,
    /// The media task has this long to report it closed.
    MediaClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaState {
    None,
    Open,
    Closing,
}

/// One call.
pub struct Session {
    policy: Arc<Policy>,
    rng: rand::rngs::StdRng,
    mode: Mode,
    legs: Vec<Leg>,
    next_leg: LegKey,
    next_media: LegId,
    media: MediaState,
    /// Leg keys waiting for their sockets, and what then.
    binding: HashMap<LegKey, Then>,
    timers: HashMap<u64, Timer>,
    next_timer: u64,
    out: VecDeque<Output>,
    /// The customer's offer (inbound).
    offer: Bytes,
    callee: String,
    caller: String,
    trunk: Option<String>,
    user: Option<String>,
    /// An originated call's target.
    target: Option<Target>,
    record: bool,
    /// When the recording started (for the recording offset of a consent).
    recording_since: Option<Time>,
    /// Why this call must not be recorded, whatever the flow says (the caller opted
    /// out, or withdrew their consent before).
    no_recording: Option<&'static str>,
    /// The customer was sent a 200 (or is being).
    answered: bool,
    /// Prompts asked for before the customer's media is up.
    pending_media: Vec<Item>,
    ivr: Option<ivr::Ivr>,
    agent: agents::Stage,
    monitor: Option<monitor::Monitor>,
    flows: Option<Arc<FlowSet>>,
    stopped: bool,
    failed: bool,
    /// The video formats to accept when answering the customer (a forwarded leg's).
    customer_video: sdp::VideoSpec,
    /// The forwarded leg's answer, added to the media once the customer is answered.
    forward_answer: Option<(LegKey, sdp::Negotiated)>,
    /// The time of the input being handled.
    now: Time,
    /// A transfer target answered before the caller was: bridged once they are.
    bridge_on_answer: Option<LegKey>,
    /// A video call from the web chat.
    escalation: Option<Escalation>,
    /// The agent is adding video to the call.
    video_add: Option<video::VideoAdd>,
}

/// The customer's leg.
const CUSTOMER: LegKey = 0;

impl Session {
    /// A call that came in. `flows`: the dialplans in force (none: no IVR).
    pub fn inbound(
        policy: Arc<Policy>,
        call: Inbound,
        flows: Option<Arc<FlowSet>>,
        seed: u64,
    ) -> Session {
        let mut s = Session::new(policy, Mode::Handler, seed);
        s.legs[0].sip = Some(call.call);
        s.legs[0].state = LegState::Ringing;
        s.offer = call.offer;
        s.callee = call.callee;
        s.caller = call.caller;
        s.trunk = call.trunk;
        s.user = call.user;
        s.flows = flows;
        s
    }

    /// A call the API placed to `to` (through `trunk`, or the core's choice).
    pub fn outbound(
        policy: Arc<Policy>,
        call: CallRef,
        to: String,
        trunk: Option<String>,
        record: Recording,
        seed: u64,
    ) -> Session {
        let mut s = Session::new(policy, Mode::Outbound, seed);
        s.legs[0].sip = Some(call);
        s.record = record.on(s.policy.record);
        if record.consent_withdrawn {
            s.no_recording = Some("consent withdrawn");
        }
        s.callee = to.clone();
        s.target = Some(Target::Number { number: to, trunk });
        s
    }

    fn new(policy: Arc<Policy>, mode: Mode, seed: u64) -> Session {
        let record = policy.record;
        Session {
            policy,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            mode,
            legs: vec![Leg::new(CUSTOMER, Role::Customer)],
            next_leg: 1,
            next_media: 0,
            media: MediaState::None,
            binding: HashMap::new(),
            timers: HashMap::new(),
            next_timer: 1,
            out: VecDeque::new(),
            offer: Bytes::new(),
            callee: String::new(),
            caller: String::new(),
            trunk: None,
            user: None,
            target: None,
            record,
            recording_since: None,
            no_recording: None,
            answered: false,
            pending_media: vec![],
            ivr: None,
            agent: agents::Stage::None,
            monitor: None,
            flows: None,
            stopped: false,
            failed: false,
            customer_video: sdp::VideoSpec::default(),
            forward_answer: None,
            now: Time::UNIX_EPOCH,
            bridge_on_answer: None,
            escalation: None,
            video_add: None,
        }
    }

    /// A video call the customer started from the web chat (`offer`: their browser's),
    /// under call reference `call` (which names no SIP dialog: the driver carries its
    /// SIP commands to the chat page).
    pub fn escalated(
        policy: Arc<Policy>,
        call: CallRef,
        offer: String,
        address: String,
        escalation: Escalation,
        seed: u64,
    ) -> Session {
        let mut s = Session::new(policy, Mode::Ivr, seed);
        s.legs[0].sip = Some(call);
        s.legs[0].state = LegState::Ringing;
        s.offer = Bytes::from(offer);
        s.callee = format!("chat:{}", escalation.chat);
        s.caller = address;
        s.escalation = Some(escalation);
        s
    }

    /// The video call from the chat this is, if it is one.
    pub fn escalation(&self) -> Option<&Escalation> {
        self.escalation.as_ref()
    }

    /// The customer's SIP call.
    pub fn call(&self) -> CallRef {
        self.legs[0].sip.unwrap_or(CallRef(0))
    }

    /// The interaction this call is recorded as (none: no IVR ran).
    pub fn interaction(&self) -> Option<&str> {
        self.ivr.as_ref().map(|i| i.interaction.as_str())
    }

    /// The interaction's channel as recorded: `voice`, or `video` (a caller with a
    /// camera an agent can see, a video call from the chat).
    pub fn kind(&self) -> &'static str {
        self.ivr.as_ref().map_or("voice", |i| i.kind)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Where the call is with its agents.
    pub fn stage(&self) -> &Stage {
        &self.agent
    }

    /// The legs: their roles and states.
    pub fn legs(&self) -> Vec<(Role, LegState)> {
        self.legs
            .iter()
            .map(|l| (l.role.clone(), l.state))
            .collect()
    }

    /// What leg `key` is to the call.
    pub fn leg_role(&self, key: LegKey) -> Option<Role> {
        self.leg(key).map(|l| l.role.clone())
    }

    /// Whether the media task is open (opened on first use, closed once all legs end).
    pub fn media_open(&self) -> bool {
        self.media == MediaState::Open
    }

    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn handle(&mut self, now: Time, input: Input) {
        self.now = now;
        if self.stopped && !matches!(input, Input::Stopped | Input::Failed) {
            if let Input::Agent(..) = input {
                self.out.push_back(Output::Reply(Err(CallError::Over)));
            }
            return;
        }
        match input {
            Input::Start => self.start(now),
            Input::Sip(call, ev) => self.on_sip(now, call, ev),
            Input::Placed { leg, call } => self.placed(leg, call),
            Input::Bound { leg, ports } => self.bound(now, leg, ports),
            Input::BrowserAnswered { leg, answer } => self.browser_answered(now, leg, answer),
            Input::VideoBound { leg, port } => self.video_bound(leg, port),
            Input::BrowserReanswered { leg, answer } => self.browser_reanswered(leg, answer),
            Input::Media(m) => self.on_media(now, m),
            Input::Work(w) => self.on_work(now, w),
            Input::Agent(cmd, colleague) => {
                if let Some(r) = self.agent_command(now, cmd, colleague) {
                    self.out.push_back(Output::Reply(r));
                }
            }
            Input::InteractionStarted(r) => self.interaction_started(now, r),
            Input::LookupResult(r) => self.lookup_result(now, r),
            Input::HttpResult(r) => self.ivr_input(now, crate::dialplan::Input::HttpResult(r)),
            Input::Spoken { id, speech } => self.spoken(now, id, speech),
            Input::RoutingHints {
                last_agent,
                repeat,
                vip,
            } => self.routing_hints(last_agent, repeat, vip),
            Input::Enqueued(r) => self.enqueued(r),
            Input::QueuePosition(p) => self.queue_position(now, p),
            Input::HandOverFailed(why) => self.hand_over_failed(why),
            Input::Timer(id) => self.timer(now, id),
            Input::Failed => self.fail(),
            Input::Stopped => self.driver_stopped(),
        }
    }

    // ------------------------------------------------------------- plumbing

    fn sip(&mut self, c: SipCommand) {
        self.out.push_back(Output::Sip(c));
    }

    fn media_cmd(&mut self, c: MediaCommand) {
        if self.media == MediaState::Closing {
            return;
        }
        self.media = MediaState::Open;
        self.out.push_back(Output::Media(c));
    }

    /// A media command that needs no open media (nothing to do without one).
    fn media_if_open(&mut self, c: MediaCommand) {
        if self.media == MediaState::Open {
            self.out.push_back(Output::Media(c));
        }
    }

    fn set_timer(&mut self, after: Duration, t: Timer) {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.insert(id, t);
        self.out.push_back(Output::Timer { id, after });
    }

    fn leg(&self, key: LegKey) -> Option<&Leg> {
        self.legs.iter().find(|l| l.key == key)
    }

    fn leg_mut(&mut self, key: LegKey) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.key == key)
    }

    fn customer(&self) -> &Leg {
        &self.legs[0]
    }

    fn customer_mut(&mut self) -> &mut Leg {
        &mut self.legs[0]
    }

    fn customer_ended(&self) -> bool {
        self.legs[0].state == LegState::Ended
    }

    /// The customer's media leg once their media flows.
    fn customer_media(&self) -> Option<LegId> {
        self.legs[0].media
    }

    fn add_leg(&mut self, role: Role) -> LegKey {
        let key = self.next_leg;
        self.next_leg += 1;
        self.legs.push(Leg::new(key, role));
        key
    }

    fn new_media_id(&mut self) -> LegId {
        let id = self.next_media;
        self.next_media += 1;
        id
    }

    fn local(&mut self, ports: Ports, video: sdp::VideoSpec) -> Local {
        Local {
            ip: self.policy.rtp_ip,
            audio_port: ports.audio,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: Some(101),
            video_port: ports.video.filter(|_| !video.is_empty()),
            video_formats: video.formats,
            video_bandwidth: video.bandwidth,
            session_id: self.rng.gen::<u32>() as u64,
            version: 1,
        }
    }

    /// Hands a leg's sockets to the media task with what was negotiated.
    fn add_media(&mut self, key: LegKey, n: &sdp::Negotiated) -> Option<LegId> {
        let leg = self.leg(key)?;
        if !leg.bound {
            return None;
        }
        let id = self.new_media_id();
        let leg = self.leg_mut(key)?;
        leg.bound = false;
        leg.media = Some(id);
        leg.codec = Some(n.audio.codec);
        leg.video = n
            .video
            .as_ref()
            .map(|v| v.formats.clone())
            .unwrap_or_default();
        self.media_cmd(MediaCommand::AddLeg {
            leg: key,
            id,
            params: LegParams::from_sdp(n),
        });
        Some(id)
    }

    fn hangup_leg(&mut self, key: LegKey) {
        let Some(leg) = self.leg_mut(key) else { return };
        if leg.state == LegState::Ended {
            return;
        }
        match leg.sip {
            Some(call) => self.sip(SipCommand::Hangup(call)),
            None => leg.hangup_when_placed = true,
        }
    }

    /// Ends the customer's leg: a BYE once it is answered, else this final response.
    fn end_customer(&mut self, code: u16, reason: &'static str) {
        let c = self.customer();
        if c.state == LegState::Ended {
            return;
        }
        let call = self.call();
        if c.state == LegState::Up || self.answered || c.media.is_some() {
            self.sip(SipCommand::Hangup(call));
        } else {
            self.sip(SipCommand::Reject(call, code, reason));
        }
    }

    // ------------------------------------------------------------- start

    fn start(&mut self, now: Time) {
        if self.mode == Mode::Outbound {
            self.bind(CUSTOMER, false, Then::AnswerCustomer);
            return;
        }
        let call = self.call();
        self.sip(SipCommand::Ring(call));
        if self.escalation.is_some() {
            return self.start_escalation(now);
        }
        if let Some(to) = self.phone_route() {
            return self.forward(to);
        }
        if let Some(trunk) = self.policy.forward_trunk.clone() {
            return self.forward(Target::Number {
                number: self.callee.clone(),
                trunk: Some(trunk),
            });
        }
        if self.start_ivr(now) {
            return;
        }
        self.set_timer(self.policy.answer_after, Timer::AnswerAfter);
    }

    /// Where a registered phone's call goes before any dialplan ([`phone_route`]).
    fn phone_route(&self) -> Option<Target> {
        let routed = |n: &str| {
            self.policy
                .dialplan
                .as_ref()
                .is_some_and(|d| d.config.routes_number(n))
        };
        phone_route(
            self.user.as_deref(),
            &self.callee,
            &self.policy.extensions,
            routed,
            self.policy.phones_trunk.as_deref(),
        )
    }

    fn bind(&mut self, key: LegKey, video: bool, then: Then) {
        if let Some(l) = self.leg_mut(key) {
            l.state = LegState::Preparing;
        }
        self.binding.insert(key, then);
        self.out.push_back(Output::Bind { leg: key, video });
    }

    fn bound(&mut self, now: Time, key: LegKey, ports: Result<Ports, String>) {
        let Some(then) = self.binding.remove(&key) else {
            return;
        };
        let Then::Place { to, video, ring } = then else {
            return self.customer_bound(now, ports);
        };
        let role = match self.leg(key) {
            Some(l) if l.state != LegState::Ended => l.role.clone(),
            _ => return,
        };
        if self.customer_ended() {
            // The caller left while the leg was being made: it is not placed.
            if let Some(l) = self.leg_mut(key) {
                l.state = LegState::Ended;
            }
            return self.maybe_finish();
        }
        let ports = match ports {
            Ok(p) => p,
            Err(e) => {
                if role == Role::Forward {
                    if let Some(l) = self.leg_mut(key) {
                        l.state = LegState::Ended;
                    }
                    self.sip(SipCommand::Reject(self.call(), 503, "No Media Port"));
                    return self.stop();
                }
                return self.transfer_failed(now, key, format!("no RTP port: {e}"));
            }
        };
        let local = self.local(ports, video);
        let sdp = Bytes::from(sdp::offer(&local, Direction::SendRecv));
        if let Some(l) = self.leg_mut(key) {
            l.bound = true;
            l.local = Some(local);
            l.we_offered = true;
            l.state = LegState::Ringing;
        }
        self.sip(SipCommand::Originate { leg: key, to, sdp });
        if let Some(after) = ring {
            self.set_timer(after, Timer::Ring(key));
        }
    }

    fn placed(&mut self, key: LegKey, call: CallRef) {
        let Some(l) = self.leg_mut(key) else { return };
        l.sip = Some(call);
        if l.hangup_when_placed {
            self.sip(SipCommand::Hangup(call));
        }
    }

    // ------------------------------------------------------------- answering

    /// The caller's video to accept when answering before any agent: the VP8 and
    /// H.264 an agent's browser can take, when browser calls are on (the IVR sends
    /// none; the agent's picture comes once they are bridged).
    pub(super) fn video_for_agents(&self) -> sdp::VideoSpec {
        if !self.policy.browser_calls || sdp::is_webrtc_offer(&self.offer) {
            return sdp::VideoSpec::default();
        }
        RemoteSession::parse(&self.offer)
            .ok()
            .and_then(|r| {
                r.media
                    .into_iter()
                    .find(|m| m.kind == sdp::Kind::Video && m.port != 0)
            })
            .map(|m| sdp::VideoSpec {
                formats: m
                    .formats
                    .into_iter()
                    .filter(|f| crate::webrtc::browser_takes(f).is_some())
                    .collect(),
                bandwidth: m.bandwidth,
            })
            .unwrap_or_default()
    }

    /// Answers the customer (an inbound caller): our answer to their offer, our offer
    /// when they sent none, a browser leg for a WebRTC softphone. `video`: the formats
    /// to accept (the forwarded leg's). An originated call's leg is placed instead.
    fn answer_customer(&mut self, video: sdp::VideoSpec) {
        if sdp::is_webrtc_offer(&self.offer) {
            return self.answer_webrtc_customer();
        }
        self.answered = true;
        let want = !video.is_empty();
        self.customer_video = video;
        self.binding.insert(CUSTOMER, Then::AnswerCustomer);
        self.out.push_back(Output::Bind {
            leg: CUSTOMER,
            video: want,
        });
    }

    fn customer_bound(&mut self, now: Time, ports: Result<Ports, String>) {
        let call = self.call();
        let ports = match ports {
            Ok(p) => p,
            Err(_) if self.mode == Mode::Outbound => return self.stop(),
            Err(_) => {
                self.sip(SipCommand::Reject(call, 503, "No Media Port"));
                return self.answer_failed(now);
            }
        };
        let video = std::mem::take(&mut self.customer_video);
        let local = self.local(ports, video);
        self.customer_mut().bound = true;
        if self.mode == Mode::Outbound {
            let body = sdp::offer(&local, Direction::SendRecv);
            let c = self.customer_mut();
            c.local = Some(local);
            c.we_offered = true;
            c.state = LegState::Ringing;
            let to = self
                .target
                .clone()
                .expect("an originated call has a target");
            // The driver placed the customer's leg under its own call reference.
            self.out.push_back(Output::Sip(SipCommand::Originate {
                leg: CUSTOMER,
                to,
                sdp: Bytes::from(body),
            }));
            return;
        }
        if self.offer.is_empty() {
            // Offer in our 200, answer in the ACK.
            let body = sdp::offer(&local, Direction::SendRecv);
            let c = self.customer_mut();
            c.local = Some(local);
            c.we_offered = true;
            self.sip(SipCommand::Answer(call, Bytes::from(body)));
            return self.after_answer(now);
        }
        let negotiated =
            RemoteSession::parse(&self.offer).and_then(|r| sdp::answer(&r, &local, None));
        match negotiated {
            Ok((body, n)) => {
                self.customer_mut().local = Some(local);
                self.sip(SipCommand::Answer(call, Bytes::from(body)));
                self.add_media(CUSTOMER, &n);
                self.after_answer(now);
            }
            Err(e) => {
                tracing::info!(%call, error = %e, "cannot answer the offer");
                self.sip(SipCommand::Reject(call, 488, "Not Acceptable Here"));
                self.answer_failed(now);
            }
        }
    }

    /// The customer was answered: a forwarded call records from now.
    fn after_answer(&mut self, _now: Time) {
        if self.mode == Mode::Forward {
            if let Some((fwd, n)) = self.forward_answer.take() {
                self.add_media(fwd, &n);
                self.start_recording();
            }
        }
    }

    /// Answering the customer failed (the refusal is sent): the other legs go, the
    /// flow hears the caller is gone, the call stops.
    fn answer_failed(&mut self, now: Time) {
        self.customer_mut().state = LegState::Ended;
        let others: Vec<LegKey> = self.legs.iter().skip(1).map(|l| l.key).collect();
        for k in others {
            self.hangup_leg(k);
        }
        if self.ivr.is_some() {
            self.ivr_input(now, crate::dialplan::Input::Hangup);
        }
        self.maybe_finish();
    }

    /// A WebRTC softphone (JsSIP, SIP.js over the WebSocket transport) is answered with
    /// a browser leg on the shared WebRTC port: ICE-lite, DTLS-SRTP, the G.711 law it
    /// offered, bridged without transcoding. Its media is up when ICE and DTLS connect;
    /// one that does not connect in 20 s is hung up.
    fn answer_webrtc_customer(&mut self) {
        let call = self.call();
        let refuse = |s: &mut Self, why: &str| {
            tracing::info!(%call, why, "cannot answer the WebRTC offer");
            s.sip(SipCommand::Reject(call, 488, "Not Acceptable Here"));
            let now = s.now;
            s.answer_failed(now);
        };
        if !self.policy.browser_calls {
            return refuse(self, "browser calls are off ([webrtc] port = 0)");
        }
        let codec = match sdp::webrtc_codec(&self.offer) {
            Ok(c) => c,
            Err(e) => return refuse(self, &e.to_string()),
        };
        self.answered = true;
        let id = self.new_media_id();
        let c = self.customer_mut();
        c.browser = true;
        c.codec = Some(codec);
        c.state = LegState::Preparing;
        let offer = String::from_utf8_lossy(&self.offer).into_owned();
        // A video call from the chat takes the customer's camera in the formats an
        // agent's browser takes (a softphone's video is not bridged).
        let video = match self.escalation {
            Some(_) => crate::webrtc::browser_video_formats(),
            None => vec![],
        };
        self.media_cmd(MediaCommand::AddBrowser {
            leg: CUSTOMER,
            id,
            offer,
            codec,
            video,
        });
        self.customer_mut().media = Some(id);
    }

    fn browser_answered(&mut self, now: Time, key: LegKey, answer: Result<String, String>) {
        if key == CUSTOMER {
            let call = self.call();
            return match answer {
                Ok(sdp) => {
                    // The video agreed is what an agent's browser is offered.
                    self.customer_mut().video = sdp::video_formats(sdp.as_bytes());
                    self.sip(SipCommand::Answer(call, Bytes::from(sdp)));
                    self.customer_mut().state = LegState::Ringing;
                    self.set_timer(Duration::from_secs(20), Timer::CallerBrowser);
                    self.after_answer(now);
                }
                Err(why) => {
                    tracing::info!(%call, %why, "cannot answer the WebRTC offer");
                    self.customer_mut().media = None;
                    self.sip(SipCommand::Reject(call, 488, "Not Acceptable Here"));
                    self.answer_failed(now);
                }
            };
        }
        if answer.is_err() && self.is_monitor_leg(key) {
            self.end_monitor("the browser's offer was refused");
        }
        self.agent_browser_answered(key, answer);
    }

    // ------------------------------------------------------------- forwarding

    /// Forwarding: places the second leg, offering what the caller offered (audio,
    /// and its video formats when it has video).
    fn forward(&mut self, to: Target) {
        self.mode = Mode::Forward;
        let video: sdp::VideoSpec = RemoteSession::parse(&self.offer)
            .ok()
            // A WebRTC caller's video is not bridged (its audio is, by a browser leg).
            .filter(|_| !sdp::is_webrtc_offer(&self.offer))
            .and_then(|r| {
                r.media
                    .into_iter()
                    .find(|m| m.kind == sdp::Kind::Video && m.port != 0)
            })
            .map(|m| sdp::VideoSpec {
                formats: m.formats,
                bandwidth: m.bandwidth,
            })
            .unwrap_or_default();
        // An extension that does not answer: its INVITE is cancelled, the caller gets 480.
        let ring = match &to {
            Target::User(_) => self.policy.ring,
            _ => None,
        };
        match &to {
            Target::User(ext) => {
                tracing::info!(call = %self.call(), extension = %ext, "calling an extension")
            }
            Target::Number { trunk, .. } => {
                tracing::info!(call = %self.call(), trunk = trunk.as_deref().unwrap_or("-"), "forwarding")
            }
            Target::Uri(_) => tracing::info!(call = %self.call(), "forwarding"),
        }
        let key = self.add_leg(Role::Forward);
        let want_video = !video.is_empty();
        self.bind(key, want_video, Then::Place { to, video, ring });
    }

    /// The forwarded leg answered: answer the caller and bridge.
    fn forward_answered(&mut self, now: Time, key: LegKey, remote_sdp: &[u8]) {
        let Some(leg) = self.leg_mut(key) else { return };
        leg.state = LegState::Up;
        let local = leg.local.clone().expect("local set with the offer");
        let n = RemoteSession::parse(remote_sdp).and_then(|r| sdp::accept_answer(&r, &local));
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(call = %self.call(), error = %e, "unusable answer from the far end");
                self.hangup_leg(key);
                self.sip(SipCommand::Reject(self.call(), 488, "Not Acceptable Here"));
                return;
            }
        };
        let video = n
            .video
            .as_ref()
            .map(|v| sdp::VideoSpec {
                formats: v.formats.clone(),
                bandwidth: v.bandwidth.clone(),
            })
            .unwrap_or_default();
        self.forward_answer = Some((key, n));
        self.answer_customer(video);
        let _ = now;
    }

    // ------------------------------------------------------------- SIP events

    fn leg_of_call(&self, call: CallRef) -> Option<LegKey> {
        self.legs
            .iter()
            .find(|l| l.sip == Some(call))
            .map(|l| l.key)
    }

    fn on_sip(&mut self, now: Time, call: CallRef, ev: SipEvent) {
        let Some(key) = self.leg_of_call(call) else {
            return;
        };
        let media = self.leg(key).and_then(|l| l.media);
        match ev {
            SipEvent::Established { remote_sdp } => self.established(now, key, &remote_sdp),
            SipEvent::RemoteOffer { negotiated } => {
                tracing::info!(call = %self.call(), direction = negotiated.audio.direction.attr(), "media renegotiated");
                if let Some(l) = media {
                    self.media_if_open(MediaCommand::Update(l, LegParams::from_sdp(&negotiated)));
                }
            }
            SipEvent::Progress(code) => tracing::debug!(call = %self.call(), code, "progress"),
            SipEvent::InfoDigit(d) => {
                if let Some(l) = media {
                    self.media_if_open(MediaCommand::InfoDigit(l, d));
                }
            }
            SipEvent::PictureFastUpdate => {
                if let Some(l) = media {
                    self.media_if_open(MediaCommand::PictureFastUpdate(l));
                }
            }
            SipEvent::VideoAnswer(answer) if key == CUSTOMER => self.video_answer(answer),
            SipEvent::VideoAnswer(_) => {}
            SipEvent::Ended(reason) => self.leg_ended(now, key, reason),
        }
    }

    fn established(&mut self, now: Time, key: LegKey, remote_sdp: &[u8]) {
        let role = match self.leg(key) {
            Some(l) => l.role.clone(),
            None => return,
        };
        match role {
            Role::Customer => self.customer_established(now, remote_sdp),
            Role::Forward => self.forward_answered(now, key, remote_sdp),
            Role::Transfer | Role::AgentPhone(_) => self.transfer_answered(now, key, remote_sdp),
            Role::SupervisorPhone(_) => self.monitor_answered(key, remote_sdp),
            Role::AgentBrowser(_) | Role::Supervisor(_) => {}
        }
    }

    fn customer_established(&mut self, now: Time, remote_sdp: &[u8]) {
        let call = self.call();
        let c = self.customer_mut();
        c.state = LegState::Up;
        tracing::info!(%call, "call established");
        if c.we_offered && c.media.is_none() {
            let local = c.local.clone().expect("local set with the offer");
            match RemoteSession::parse(remote_sdp).and_then(|r| sdp::accept_answer(&r, &local)) {
                Ok(n) => {
                    self.add_media(CUSTOMER, &n);
                }
                Err(e) => {
                    tracing::warn!(%call, error = %e, "unusable answer; hanging up");
                    self.sip(SipCommand::Hangup(call));
                    return;
                }
            }
        }
        let c = self.customer();
        if c.browser && !c.browser_up {
            // A WebRTC caller: media is up when its browser leg connects.
            return;
        }
        self.customer_media_up(now);
    }

    /// The customer is answered and their media flows: the IVR, the bridge or the
    /// built-in handler starts.
    fn customer_media_up(&mut self, _now: Time) {
        if self.ivr.is_some() {
            self.start_recording();
            self.ivr_media_up();
            if let Some(key) = self.bridge_on_answer.take() {
                let b = self.leg(key).and_then(|l| l.media);
                if let (Some(a), Some(b)) = (self.customer_media(), b) {
                    self.media_cmd(MediaCommand::StopPlayback(a));
                    self.media_cmd(MediaCommand::Bridge(a, b));
                }
            }
            return;
        }
        let fwd = self
            .legs
            .iter()
            .find(|l| l.role == Role::Forward)
            .map(|l| (l.key, l.media));
        match (self.customer_media(), fwd) {
            (Some(a), Some((_, Some(b)))) => self.media_if_open(MediaCommand::Bridge(a, b)),
            (_, None) => self.run_handler(),
            _ => {}
        }
        if fwd.is_none() {
            if let Some(after) = self.policy.hangup_after {
                self.set_timer(after, Timer::HangupAfter);
            }
        }
    }

    /// The built-in handler once the caller's media is up.
    fn run_handler(&mut self) {
        let Some(leg) = self.customer_media() else {
            return;
        };
        self.start_recording();
        let welcome = self.policy.welcome.clone();
        self.media_cmd(MediaCommand::Play(
            leg,
            Item::Silence {
                id: 0,
                samples: 1600,
            },
        ));
        self.media_cmd(MediaCommand::Play(
            leg,
            Item::Prompt {
                id: 1,
                samples: welcome,
                barge_in: true,
            },
        ));
    }

    fn start_recording(&mut self) {
        if !self.record {
            return;
        }
        let name = format!("{}-{}.wav", self.now.as_second(), self.call());
        let path = self.policy.recordings_dir.join(name);
        self.recording_since = Some(self.now);
        tracing::info!(call = %self.call(), path = %path.display(), "recording");
        self.ivr_recording(&path);
        self.media_cmd(MediaCommand::Record(path));
    }

    fn leg_ended(&mut self, now: Time, key: LegKey, reason: EndReason) {
        let Some(leg) = self.leg(key) else { return };
        let (role, was_up, dropped) = (leg.role.clone(), leg.state == LegState::Up, leg.dropped);
        tracing::info!(call = %self.call(), leg = key, ?role, ?reason, "call ended");
        if let Some(l) = self.leg_mut(key) {
            l.state = LegState::Ended;
        }
        if dropped {
            return self.maybe_finish();
        }
        match role {
            Role::Customer => {
                if matches!(reason, EndReason::RemoteBye | EndReason::Cancelled) {
                    // Who ended the call, for the KPIs (abandonment by stage).
                    self.note("caller hung up", serde_json::json!({}));
                }
                if self.ivr.is_some() {
                    self.ivr_input(now, crate::dialplan::Input::Hangup);
                }
                let others: Vec<LegKey> = self.legs.iter().skip(1).map(|l| l.key).collect();
                for k in others {
                    self.drop_leg(k);
                }
            }
            Role::Forward => {
                if !self.customer_ended() {
                    // The far end's refusal goes back as it came (busy stays busy).
                    let (code, why) = relayed_failure(&reason);
                    self.end_customer(code, why);
                }
            }
            Role::Transfer if !was_up => {
                tracing::info!(call = %self.call(), ?reason, "transfer failed");
                self.ivr_input(now, transfer_failed(&reason));
            }
            Role::Transfer => {
                // The target hung up after the caller was bridged to them.
                let (code, why) = relayed_failure(&reason);
                self.end_customer(code, why);
            }
            Role::AgentPhone(agent) => self.agent_phone_ended(now, &agent, was_up, &reason),
            Role::SupervisorPhone(_) if self.is_monitor_leg(key) => self.end_monitor(if was_up {
                "the supervisor hung up"
            } else {
                "the supervisor's phone did not answer"
            }),
            Role::AgentBrowser(_) | Role::Supervisor(_) | Role::SupervisorPhone(_) => {}
        }
        self.maybe_finish();
    }

    /// Every SIP leg has ended: the media task closes (finalising the recording) and
    /// the call stops when it reports, or after 5 s whatever happens.
    fn maybe_finish(&mut self) {
        let live = self
            .legs
            .iter()
            .any(|l| l.sip.is_some() && l.state != LegState::Ended);
        if live || !self.customer_ended() || self.stopped {
            return;
        }
        self.end_monitor("the call ended");
        if self.ivr.as_ref().is_some_and(|i| !i.started) {
            // The interaction record is being created: its writes wait for it.
            return;
        }
        match self.media {
            MediaState::None => self.stop(),
            MediaState::Open => {
                self.out.push_back(Output::Media(MediaCommand::Close));
                self.media = MediaState::Closing;
                self.set_timer(Duration::from_secs(5), Timer::MediaClose);
            }
            MediaState::Closing => {}
        }
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.out.push_back(Output::Stop);
        }
    }

    // ------------------------------------------------------------- media

    fn on_media(&mut self, now: Time, m: MediaInput) {
        match m {
            MediaInput::Digit { leg, digit } => {
                if Some(leg) == self.customer_media() && self.ivr.is_some() {
                    self.ivr_input(now, crate::dialplan::Input::Digit(digit));
                }
            }
            MediaInput::PlayDone { id, interrupted } => self.ivr_play_done(now, id, interrupted),
            MediaInput::PictureFastUpdate(media) => {
                let call = self
                    .legs
                    .iter()
                    .find(|l| l.media == Some(media) && l.state == LegState::Up && !l.browser)
                    .and_then(|l| l.sip);
                if let Some(call) = call {
                    self.sip(SipCommand::PictureFastUpdate(call));
                }
            }
            MediaInput::Voicemail(r) => self.ivr_voicemail(now, r),
            MediaInput::Browser(leg, r)
                if self.customer().browser && self.customer_media() == Some(leg) =>
            {
                self.customer_browser(now, r.err())
            }
            MediaInput::Browser(leg, Ok(())) => self.browser_connected(now, leg),
            MediaInput::Browser(leg, Err(why)) => self.browser_failed(now, leg, why),
            MediaInput::Closed => {
                if self.media == MediaState::Closing {
                    self.stop();
                }
            }
        }
    }

    /// The WebRTC caller's browser leg connected (or failed: `why`).
    fn customer_browser(&mut self, now: Time, why: Option<String>) {
        let call = self.call();
        match why {
            None => {
                tracing::info!(%call, "WebRTC caller's media connected (ICE, DTLS-SRTP)");
                self.customer_mut().browser_up = true;
                if self.customer().state == LegState::Up {
                    self.customer_media_up(now);
                }
            }
            Some(why) => {
                tracing::info!(%call, %why, "WebRTC caller's media ended; hanging up");
                if !self.customer_ended() {
                    self.sip(SipCommand::Hangup(call));
                }
            }
        }
    }

    // ------------------------------------------------------------- timers

    fn timer(&mut self, now: Time, id: u64) {
        let Some(t) = self.timers.remove(&id) else {
            return;
        };
        match t {
            Timer::AnswerAfter => {
                if !self.customer_ended() {
                    self.answer_customer(self.video_for_agents());
                }
            }
            Timer::HangupAfter => {
                let call = self.call();
                self.sip(SipCommand::Hangup(call));
            }
            Timer::CallerBrowser => {
                if !self.customer().browser_up && !self.customer_ended() {
                    tracing::info!(call = %self.call(), "the WebRTC caller's media never connected; hanging up");
                    let call = self.call();
                    self.sip(SipCommand::Hangup(call));
                }
            }
            Timer::Ring(leg) => {
                let Some(l) = self.leg(leg) else { return };
                if !matches!(l.state, LegState::Ringing | LegState::Preparing) {
                    return;
                }
                tracing::info!(call = %self.call(), leg, "no answer");
                if l.role == Role::Transfer {
                    // The flow hears it now; the leg's end (a cancel) is no news.
                    self.drop_leg(leg);
                    let failed = crate::dialplan::Input::TransferFailed("no answer".into());
                    return self.ivr_input(now, failed);
                }
                // A forwarded leg's or an agent phone's end says what happens next.
                self.hangup_leg(leg);
            }
            Timer::Ivr(id) => self.ivr_input(now, crate::dialplan::Input::Timer(id)),
            Timer::VoicemailMax => self.media_if_open(MediaCommand::StopVoicemail),
            Timer::Browser(agent) => self.browser_timeout(now, &agent),
            Timer::Monitor(leg) => self.monitor_timeout(leg),
            Timer::QueuePoll => self.queue_poll(),
            Timer::MediaClose => self.stop(),
        }
    }

    // ------------------------------------------------------------- failure

    /// The driver failed (a panic): the legs are hung up (an unanswered caller gets a
    /// 500), the interaction ends as failed and leaves its queue.
    fn fail(&mut self) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.stopped = true;
        if !self.customer_ended() {
            self.end_customer(500, "Server Internal Error");
        }
        let others: Vec<LegKey> = self
            .legs
            .iter()
            .skip(1)
            .filter(|l| l.sip.is_some())
            .map(|l| l.key)
            .collect();
        for k in others {
            self.hangup_leg(k);
        }
        self.ivr_failed();
    }

    fn driver_stopped(&mut self) {
        if self.failed {
            return;
        }
        self.stopped = true;
        self.ivr_call_over();
    }
}

impl Leg {
    fn new(key: LegKey, role: Role) -> Leg {
        Leg {
            key,
            role,
            sip: None,
            state: LegState::Preparing,
            local: None,
            media: None,
            codec: None,
            video: vec![],
            we_offered: false,
            bound: false,
            browser: false,
            hangup_when_placed: false,
            held: false,
            browser_up: false,
            dropped: false,
        }
    }
}

/// The far end's refusal, relayed to the caller: busy stays busy; an authentication
/// challenge (ours to answer) or anything else is 480.
pub fn relayed_failure(reason: &EndReason) -> (u16, &'static str) {
    match reason {
        EndReason::Failed(c) if (400..700).contains(c) && *c != 401 && *c != 407 => {
            (*c, crate::sip::message::reason_phrase(*c))
        }
        _ => (480, "Temporarily Unavailable"),
    }
}

/// Why a transfer leg failed, in words a designer can branch on (`${transfer.error}`).
pub fn transfer_failed(reason: &EndReason) -> crate::dialplan::Input {
    let why = match reason {
        EndReason::Failed(code @ (486 | 600)) => format!("busy ({code})"),
        EndReason::Failed(408) => "no answer (408)".into(),
        EndReason::Failed(480) => "not available (480)".into(),
        EndReason::Failed(code @ (404 | 484)) => format!("no such destination ({code})"),
        EndReason::Failed(603) => "declined (603)".into(),
        EndReason::Failed(code) => format!("failed ({code})"),
        other => format!("ended: {other:?}"),
    };
    crate::dialplan::Input::TransferFailed(why)
}

/// Where a call from registered phone `user` (none: a trunk's call) to `dialled` goes
/// before any dialplan: another configured user's phone, or out through the phones'
/// trunk for a number that is not a user. A number a dialplan route names is the
/// dialplan's; so is a phone calling its own number.
pub fn phone_route(
    user: Option<&str>,
    dialled: &str,
    extensions: &HashSet<String>,
    routed: impl Fn(&str) -> bool,
    phones_trunk: Option<&str>,
) -> Option<Target> {
    let user = user?;
    if routed(dialled) || dialled == user {
        return None;
    }
    if extensions.contains(dialled) {
        return Some(Target::User(dialled.to_string()));
    }
    phones_trunk.map(|t| Target::Number {
        number: dialled.to_string(),
        trunk: Some(t.to_string()),
    })
}

/// Plays the dialplan's items: `Say` items with their speech (silence if none).
fn play_item(item: PlayItem, spoken: Option<Samples>, mid: u64, barge_in: bool) -> Item {
    match item {
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
    }
}

fn beep() -> Samples {
    (0..3200)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16)
        .collect::<Vec<_>>()
        .into()
}
