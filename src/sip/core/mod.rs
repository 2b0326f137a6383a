//! The UA core: everything between the transaction layer and the call actors, sans-IO.
//!
//! It answers what needs no application decision (OPTIONS, REGISTER, CANCEL, BYE, 481,
//! 482, 483, 420, 422, 488, 491, 501, 503 while draining), authorises INVITEs (trunk
//! source, trunk or user digest credentials, otherwise 403), keeps dialogs and session
//! timers, registers to providers, pings trunks and registered phones, and places
//! outbound calls with challenge answering and failover between trunks.
//!
//! Input: `handle_message`, `handle_timeout` and the call commands (`ring`, `answer`,
//! `reject`, `hangup`, `hold`, `place`). Output: `poll_transmit`, `poll_event`,
//! `poll_timeout`. The core never reads the clock and owns no socket.
//!
//! By concern: this file holds the types, the core's state and its entry points
//! (messages in, timers, events out, draining); `uas` answers requests (REGISTER, a
//! new INVITE, CANCEL, ACK, in-dialog requests) and carries out ring, answer and
//! reject; `uac` places calls and handles their answers (trunk failover, digest),
//! hold, hang-up; `trunks` registers to providers and pings them; `session_timers`
//! keeps RFC 4028 sessions alive.

use super::addr::{response_peer, Peer, Transport};
use super::auth::answer_challenge;
use super::dialog::{
    parse_session_expires, Dialog, DialogId, DialogState, Refresher, SessionTimer,
};
use super::header::HeaderName;
use super::message::{Message, Method, ParseError};
use super::registrar::{AuthOutcome, Registrar, RegistrarConfig};
use super::transaction::{
    Incoming, TimerConfig, TimerKind, TransactionLayer, Transmit, TxEvent, TxKey,
};
use super::trunk::{TrunkConfig, TrunkState};
use crate::sip::Uri;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod session_timers;
mod trunks;
mod uac;
mod uas;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";
const SUPPORTED: &str = "timer";
/// Our branches start with this, after the magic cookie: used for loop detection.
const BRANCH_PREFIX: &str = "z9hG4bKog";

/// Identifies one call across the core, its actor and the API. The core allocates
/// them ([`Core::new_call`]): one sequence per core, so a simulation is deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

impl std::fmt::Display for CallRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Where a call is placed: a registered user's phone, a SIP URI, or a number
/// through a trunk (none: the trunks in configured order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(String),
    Uri(String),
    Number {
        number: String,
        trunk: Option<String>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(u) => write!(f, "user {u}"),
            Target::Uri(u) => f.write_str(u),
            Target::Number { number, trunk } => match trunk {
                Some(t) => write!(f, "{number} via {t}"),
                None => f.write_str(number),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub realm: String,
    /// Our address per transport, for Via and Contact.
    pub local: HashMap<Transport, SocketAddr>,
    /// Users (extensions) and their passwords.
    pub users: HashMap<String, String>,
    pub trunks: Vec<TrunkConfig>,
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
    /// Session-Expires we ask for on outbound calls, and Min-SE we accept (RFC 4028).
    pub session_expires: u32,
    pub min_se: u32,
    /// OPTIONS keepalive to registered contacts, seconds (0: off).
    pub keepalive_interval: u32,
    pub user_agent: String,
    /// Digest challenge algorithms in preference order.
    pub digest_algorithms: Vec<super::auth::Algorithm>,
    /// Browser legs are on: a WebRTC offer (DTLS-SRTP) arriving over the WebSocket
    /// transport is accepted (a browser leg answers it).
    pub webrtc: bool,
    /// Seeds every random choice the core makes (tags, branches, Call-IDs, the nonce
    /// secret, CSeq starts): the same seed and inputs give the same bytes (tests).
    /// `None`: from the operating system.
    pub seed: Option<u64>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            realm: "omnigate".into(),
            local: HashMap::new(),
            users: HashMap::new(),
            trunks: Vec::new(),
            timers: TimerConfig::default(),
            registrar: RegistrarConfig::default(),
            session_expires: 1800,
            min_se: 90,
            keepalive_interval: 30,
            user_agent: concat!("omnigate/", env!("CARGO_PKG_VERSION")).into(),
            digest_algorithms: vec![super::auth::Algorithm::Md5],
            webrtc: false,
            seed: None,
        }
    }
}

/// Debug builds only (the tests' binary): a request with this Call-ID makes the core
/// panic, so the tests can show the driver contains it. Not compiled into release.
pub const INJECTED_PANIC_CALL_ID: &str = "omnigate-injected-panic";

#[cfg(debug_assertions)]
fn inject_fault(m: &Message) {
    if m.header_str(&HeaderName::CallId) == Some(INJECTED_PANIC_CALL_ID) {
        panic!("injected failure (a test's Call-ID)");
    }
}

#[cfg(not(debug_assertions))]
fn inject_fault(_: &Message) {}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    RemoteBye,
    LocalBye,
    /// The caller cancelled before answer.
    Cancelled,
    /// We rejected it (code sent).
    Rejected(u16),
    /// An outbound call failed on every trunk (last code seen; 408 for timeouts).
    Failed(u16),
    /// No ACK came for our 2xx.
    AckTimeout,
    /// The peer did not refresh the session (RFC 4028).
    SessionExpired,
    /// The core is shutting down.
    Shutdown,
}

/// What the core tells the call actors and the server.
#[derive(Debug, Clone)]
pub enum CoreEvent {
    IncomingCall {
        call: CallRef,
        caller: String,
        callee: String,
        sdp: Bytes,
        trunk: Option<String>,
        user: Option<String>,
        source: Peer,
    },
    /// Outbound: 1xx received.
    Progress {
        call: CallRef,
        code: u16,
    },
    /// Inbound: ACK for our 2xx. Outbound: 2xx received and ACKed.
    Established {
        call: CallRef,
        remote_sdp: Bytes,
    },
    /// A re-INVITE or UPDATE brought a new offer (hold, resume); already answered.
    RemoteOffer {
        call: CallRef,
        sdp: Bytes,
        negotiated: Box<crate::sdp::Negotiated>,
    },
    /// A key press sent by SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    InfoDigit {
        call: CallRef,
        digit: char,
    },
    /// The far end asked by `INFO` for a full video picture (RFC 5168).
    PictureFastUpdate {
        call: CallRef,
    },
    /// The end of our offer adding video ([`Core::add_video`]): the far end's answer
    /// (a 2xx's SDP), or none when it was refused or could not be sent (our media is
    /// then what it was).
    VideoAnswer {
        call: CallRef,
        answer: Option<Bytes>,
    },
    Ended {
        call: CallRef,
        reason: EndReason,
    },
    TrunkRegistration {
        trunk: String,
        registered: bool,
    },
}

/// What differs between the INVITEs we send.
struct InviteParts<'a> {
    ruri: &'a str,
    from: &'a str,
    to: &'a str,
    call_id: String,
    cseq: u32,
    transport: Transport,
    auth: Option<(HeaderName, String)>,
    sdp: &'a Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Inbound INVITE offered to the application.
    Offered,
    /// 2xx sent, waiting for the ACK.
    Answered,
    /// Outbound INVITE in progress.
    Calling,
    Established,
}

impl Call {
    fn new(
        inbound: bool,
        state: CallState,
        invite: Message,
        local_sdp: Bytes,
        source: Peer,
        to_user: String,
        local_tag: String,
    ) -> Call {
        Call {
            inbound,
            state,
            invite_tx: None,
            invite,
            local_tag,
            dialog: None,
            local_sdp,
            source,
            to_user,
            trunks_left: VecDeque::new(),
            trunk: None,
            auth_tried: false,
            got_provisional: false,
            cancel_pending: false,
            last_code: 0,
            ack: None,
            next_direction: None,
            reinvite_out: false,
            video_offer: None,
            bye_after_reinvite: false,
        }
    }
}

struct Call {
    inbound: bool,
    state: CallState,
    /// Inbound: the server INVITE transaction. Outbound: the current client one.
    invite_tx: Option<TxKey>,
    /// The INVITE received (inbound) or last sent (outbound).
    invite: Message,
    local_tag: String,
    dialog: Option<Dialog>,
    local_sdp: Bytes,
    source: Peer,
    // Outbound only:
    to_user: String,
    trunks_left: VecDeque<usize>,
    trunk: Option<usize>,
    auth_tried: bool,
    got_provisional: bool,
    cancel_pending: bool,
    last_code: u16,
    ack: Option<Message>,
    /// A direction to re-offer once our pending offer is answered (hold pressed twice
    /// quickly).
    next_direction: Option<crate::sdp::Direction>,
    /// A re-INVITE of ours awaits its final response.
    reinvite_out: bool,
    /// The re-INVITE out adds video: our SDP before it (restored if it is refused).
    video_offer: Option<Bytes>,
    /// Hung up while our re-INVITE was out: the BYE goes once its final response is
    /// in (a 2xx ACKed first), so the peer never meets a BYE before that ACK.
    bye_after_reinvite: bool,
}

#[derive(Debug, Clone)]
enum Purpose {
    Invite(CallRef),
    InDialog(CallRef),
    /// Our re-INVITE (a 2xx is ACKed).
    ReInvite(CallRef),
    Register(usize),
    TrunkOptions(usize),
    Keepalive(String, String),
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CoreTimer {
    TrunkRegister(usize),
    TrunkOptions(usize),
    Keepalives,
    Session(CallRef),
    /// A throttled request, checked again now.
    Parked(u64),
}

/// How many throttled requests may wait at once (beyond, they are dropped).
const MAX_PARKED: usize = 1024;

/// Counters for /metrics.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    pub responses_sent: BTreeMap<u16, u64>,
    pub responses_received: BTreeMap<u16, u64>,
    pub requests_received: BTreeMap<String, u64>,
    pub parse_errors: u64,
    pub calls_total: u64,
}

pub struct Core {
    pub cfg: CoreConfig,
    /// Every random choice (seeded by `cfg.seed` in tests).
    rng: std::cell::RefCell<rand::rngs::StdRng>,
    /// The next call reference to give out.
    next_call: u64,
    pub tx: TransactionLayer,
    pub registrar: Registrar,
    calls: HashMap<CallRef, Call>,
    dialogs: HashMap<DialogId, CallRef>,
    invites: HashMap<TxKey, CallRef>,
    purposes: HashMap<TxKey, Purpose>,
    trunk_state: Vec<TrunkState>,
    timers: BTreeMap<(Instant, u64), CoreTimer>,
    timer_seq: u64,
    events: VecDeque<CoreEvent>,
    draining: bool,
    cnonce_seq: u32,
    /// Throttled requests waiting for their delay to end.
    parked: HashMap<u64, (TxKey, Message, Peer)>,
    parked_seq: u64,
    pub stats: CoreStats,
}

/// A request's Record-Route headers, as they were, for a dialog-creating response.
fn record_routes(req: &Message) -> Vec<(HeaderName, String)> {
    req.headers_named(&HeaderName::RecordRoute)
        .map(|h| (HeaderName::RecordRoute, h.value_str().to_string()))
        .collect()
}

/// The user name in a request's digest credentials (Proxy-Authorization when `proxy`).
fn auth_user(req: &Message, proxy: bool) -> String {
    let name = if proxy {
        HeaderName::ProxyAuthorization
    } else {
        HeaderName::Authorization
    };
    let user = req
        .headers_named(&name)
        .filter_map(|h| super::header::DigestParams::parse(h.value_str()))
        .find_map(|c| c.get("username").map(|u| u.chars().take(64).collect()));
    user.unwrap_or_default()
}

/// `n` random hex digits from `rng`.
fn rand_hex(rng: &std::cell::RefCell<rand::rngs::StdRng>, n: usize) -> String {
    use rand::Rng;
    let mut r = rng.borrow_mut();
    (0..n)
        .map(|_| char::from_digit(r.gen_range(0..16), 16).unwrap())
        .collect()
}

impl Core {
    /// `n` random hex digits.
    fn rand_hex(&self, n: usize) -> String {
        rand_hex(&self.rng, n)
    }

    pub fn new(cfg: CoreConfig, now: Instant) -> Core {
        use rand::{Rng, SeedableRng};
        let rng = std::cell::RefCell::new(match cfg.seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_entropy(),
        });
        let secret: [u8; 32] = rng.borrow_mut().gen();
        let mut registrar = Registrar::new(cfg.registrar, &cfg.realm, secret, now);
        registrar.set_algorithms(cfg.digest_algorithms.clone());
        let trunk_state = cfg
            .trunks
            .iter()
            .map(|_| TrunkState {
                reg_call_id: format!("{}@omnigate", rand_hex(&rng, 16)),
                ..Default::default()
            })
            .collect();
        let mut core = Core {
            rng,
            next_call: 1,
            tx: TransactionLayer::new(cfg.timers),
            registrar,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            invites: HashMap::new(),
            purposes: HashMap::new(),
            trunk_state,
            timers: BTreeMap::new(),
            timer_seq: 0,
            events: VecDeque::new(),
            draining: false,
            cnonce_seq: 0,
            parked: HashMap::new(),
            parked_seq: 0,
            stats: CoreStats::default(),
            cfg,
        };
        for (i, t) in core.cfg.trunks.clone().iter().enumerate() {
            if t.register && t.proxy.is_some() {
                core.arm(now, CoreTimer::TrunkRegister(i));
            }
            if t.options_interval > 0 && t.proxy.is_some() {
                core.arm(now + Duration::from_secs(1), CoreTimer::TrunkOptions(i));
            }
        }
        if core.cfg.keepalive_interval > 0 {
            core.arm(
                now + Duration::from_secs(core.cfg.keepalive_interval as u64),
                CoreTimer::Keepalives,
            );
        }
        core
    }

    fn arm(&mut self, at: Instant, t: CoreTimer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), t);
    }

    // ------------------------------------------------------------------ outputs

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let a = self.tx.poll_timeout();
        let b = self.timers.keys().next().map(|(t, _)| *t);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Health from OPTIONS pings: None until the first answer or timeout.
    pub fn trunk_healthy(&self, name: &str) -> Option<bool> {
        let i = self.cfg.trunks.iter().position(|t| t.name == name)?;
        self.trunk_state[i].healthy
    }

    pub fn trunk_registered(&self, name: &str) -> Option<bool> {
        let i = self.cfg.trunks.iter().position(|t| t.name == name)?;
        Some(self.trunk_state[i].registered)
    }

    // ------------------------------------------------------------------ helpers

    fn local_addr(&self, t: Transport) -> SocketAddr {
        self.cfg
            .local
            .get(&t)
            .or_else(|| self.cfg.local.get(&Transport::Udp))
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    fn contact_for(&self, t: Transport) -> String {
        let a = self.local_addr(t);
        match t {
            Transport::Udp => format!("<sip:omnigate@{a}>"),
            Transport::Tls => format!("<sips:omnigate@{a}>"),
            other => format!(
                "<sip:omnigate@{a};transport={}>",
                other.via_name().to_ascii_lowercase()
            ),
        }
    }

    fn count_response(&mut self, code: u16) {
        *self.stats.responses_sent.entry(code).or_default() += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
        code: u16,
        reason: &str,
        tag: Option<&str>,
        extra: &[(HeaderName, String)],
    ) {
        let mut r = Message::response_to(req, code, reason, tag);
        for (n, v) in extra {
            r.push(n.clone(), v.clone());
        }
        r.push(HeaderName::Server, self.cfg.user_agent.clone());
        self.count_response(code);
        self.tx.respond(now, key, r);
    }

    fn reply_stateless(&mut self, req: &Message, source: Peer, code: u16, reason: &str) {
        self.reply_stateless_with(req, source, code, reason, &[])
    }

    fn reply_stateless_with(
        &mut self,
        req: &Message,
        source: Peer,
        code: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
    ) {
        let mut r = Message::response_to(req, code, reason, Some(&self.rand_hex(10)));
        for (n, v) in extra {
            r.push(n.clone(), v.clone());
        }
        r.push(HeaderName::Server, self.cfg.user_agent.clone());
        let to = response_peer(req.top_via().as_ref(), source);
        self.count_response(code);
        self.tx.send_stateless(to, &r);
    }

    /// Puts our Via (fresh branch, rport) on top of a request we send.
    fn push_our_via(&self, req: &mut Message, t: Transport) {
        let via = format!(
            "SIP/2.0/{} {};branch={}{};rport",
            t.via_name(),
            self.local_addr(t),
            BRANCH_PREFIX,
            self.rand_hex(16)
        );
        req.headers
            .insert(0, super::message::Header::new(HeaderName::Via, via));
    }

    /// Adds our Via and sends as a client transaction.
    fn send_request(
        &mut self,
        now: Instant,
        mut req: Message,
        peer: Peer,
        purpose: Purpose,
    ) -> Option<TxKey> {
        self.push_our_via(&mut req, peer.transport);
        if req.header(&HeaderName::UserAgent).is_none() {
            req.push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        }
        let key = self.tx.send_request(now, req, peer)?;
        self.purposes.insert(key.clone(), purpose);
        Some(key)
    }

    /// RFC 3581 / RFC 3261 18.2.1: stamp received= and rport= on the top Via.
    fn stamp_via(req: &mut Message, source: Peer) {
        let Some(idx) = req.headers.iter().position(|h| h.name == HeaderName::Via) else {
            return;
        };
        let value = req.headers[idx].value_str().to_string();
        let parts = super::syntax::split_commas(&value).unwrap_or_default();
        let Some(first) = parts.first() else { return };
        let Ok(via) = super::header::Via::parse(first) else {
            return;
        };
        let ip = source.addr.ip();
        let mut new_first = first.to_string();
        let host_differs = via.host_ip() != Some(ip);
        let rport_empty = via.rport() == Some(None);
        if rport_empty {
            new_first = new_first.replacen(";rport", &format!(";rport={}", source.addr.port()), 1);
        }
        if (host_differs || rport_empty) && via.received().is_none() {
            new_first.push_str(&format!(";received={ip}"));
        }
        if new_first != *first {
            let rest: Vec<&str> = parts[1..].to_vec();
            let joined = if rest.is_empty() {
                new_first
            } else {
                format!("{new_first}, {}", rest.join(", "))
            };
            req.headers[idx].value = Bytes::from(joined);
        }
    }

    // ------------------------------------------------------------------ input

    /// Feeds one parsed (or refused) message received from `source`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        parsed: Result<Message, ParseError>,
        source: Peer,
    ) {
        match parsed {
            Err(e) => {
                self.stats.parse_errors += 1;
                if let Some(partial) = e.answerable() {
                    let partial = partial.clone();
                    self.reply_stateless(&partial, source, e.status, e.reason);
                }
            }
            Ok(m) if m.is_request() => {
                inject_fault(&m);
                self.on_request(now, m, source)
            }
            Ok(m) => self.on_response(now, m),
        }
        self.drain_tx_events(now);
    }

    fn on_request(&mut self, now: Instant, mut req: Message, source: Peer) {
        Self::stamp_via(&mut req, source);
        let method = req.method().cloned().unwrap_or(Method::Ack);
        // Unknown methods share one label: a stranger's method names never become keys.
        let label = match &method {
            Method::Other(_) => "other",
            m => m.as_str(),
        };
        match self.stats.requests_received.get_mut(label) {
            Some(n) => *n += 1,
            None => {
                self.stats.requests_received.insert(label.to_string(), 1);
            }
        }
        match self.tx.on_request(now, req.clone(), source) {
            Incoming::New(key) => self.dispatch(now, key, req, source),
            Incoming::AckFor2xx => self.on_ack(now, &req),
            Incoming::Merged => self.reply_stateless(&req, source, 482, "Loop Detected"),
            Incoming::Absorbed | Incoming::AckAbsorbed | Incoming::Invalid => {}
        }
    }

    fn dispatch(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        // Option tags we do not support (RFC 3261 8.2.2.3).
        let unsupported: Vec<String> = req
            .list_values(&HeaderName::Require)
            .into_iter()
            .filter(|t| !t.eq_ignore_ascii_case("timer"))
            .map(str::to_string)
            .collect();
        if !unsupported.is_empty() && method != Method::Cancel {
            let extra = [(HeaderName::Unsupported, unsupported.join(", "))];
            return self.reply(now, &key, &req, 420, "Bad Extension", None, &extra);
        }
        if req.to_tag().is_some() {
            return self.in_dialog(now, key, req, source);
        }
        match method {
            Method::Invite => self.new_invite(now, key, req, source),
            Method::Cancel => self.cancel(now, key, req),
            Method::Options => {
                let extra = [
                    (HeaderName::Allow, ALLOW.to_string()),
                    (HeaderName::Accept, "application/sdp".to_string()),
                    (HeaderName::Supported, SUPPORTED.to_string()),
                ];
                self.reply(now, &key, &req, 200, "OK", Some(&self.rand_hex(10)), &extra)
            }
            Method::Register => self.register(now, key, req, source),
            Method::Bye | Method::Update | Method::Info | Method::Prack => self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            ),
            Method::Other(_) => self.reply(
                now,
                &key,
                &req,
                501,
                "Not Implemented",
                None,
                &[(HeaderName::Allow, ALLOW.to_string())],
            ),
            _ => self.reply(
                now,
                &key,
                &req,
                405,
                "Method Not Allowed",
                None,
                &[(HeaderName::Allow, ALLOW.to_string())],
            ),
        }
    }

    fn on_response(&mut self, now: Instant, resp: Message) {
        let code = resp.status().unwrap_or(0);
        *self.stats.responses_received.entry(code).or_default() += 1;
        if self.tx.on_response(now, resp.clone()) {
            return;
        }
        // A 2xx retransmission after the client transaction ended: ACK it again.
        if (200..300).contains(&code) && resp.cseq().is_some_and(|c| c.1 == Method::Invite) {
            if let Some(id) = DialogId::of_response(&resp) {
                if let Some(c) = self.dialogs.get(&id).and_then(|call| self.calls.get(call)) {
                    if let (Some(ack), Some(d)) = (c.ack.clone(), c.dialog.as_ref()) {
                        let peer = d.peer;
                        self.tx.send_stateless(peer, &ack);
                    }
                }
            }
        }
    }

    fn drain_tx_events(&mut self, now: Instant) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                TxEvent::Response { key, response } => self.on_client_response(now, key, response),
                TxEvent::Timeout { key, timer } => self.on_client_timeout(now, key, timer),
                TxEvent::AckTimeout { key } => {
                    if let Some(call) = self.invites.get(&key).copied() {
                        self.send_bye(now, call);
                        self.end_call(call, EndReason::AckTimeout);
                    }
                }
                TxEvent::Terminated { key } => {
                    self.invites.remove(&key);
                    if !matches!(self.purposes.get(&key), Some(Purpose::Invite(_))) {
                        self.purposes.remove(&key);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ commands

    // ------------------------------------------------------------------ trunks

    // ------------------------------------------------------------------ timers

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_tx_events(now);
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            let t = self.timers.remove(&(at, seq)).unwrap();
            match t {
                CoreTimer::TrunkRegister(i) => {
                    self.trunk_state[i].register_failures = 0;
                    let exp = if self.draining {
                        0
                    } else {
                        self.cfg.trunks[i].register_expires
                    };
                    if !self.draining || self.trunk_state[i].registered {
                        self.send_register(now, i, None, exp);
                    }
                }
                CoreTimer::TrunkOptions(i) => {
                    let t = self.cfg.trunks[i].clone();
                    if let Some(peer) = t.proxy_peer() {
                        let uri = format!("sip:{}", t.domain());
                        self.send_options(now, peer, &uri.clone(), &uri, Purpose::TrunkOptions(i));
                    }
                    self.arm(
                        now + Duration::from_secs(t.options_interval as u64),
                        CoreTimer::TrunkOptions(i),
                    );
                }
                CoreTimer::Keepalives => {
                    for (user, b) in self.registrar.all(now) {
                        let contact = b.contact.clone();
                        self.send_options(
                            now,
                            b.source,
                            &contact,
                            &contact,
                            Purpose::Keepalive(user, contact.clone()),
                        );
                    }
                    self.arm(
                        now + Duration::from_secs(self.cfg.keepalive_interval.max(1) as u64),
                        CoreTimer::Keepalives,
                    );
                }
                CoreTimer::Session(call) => self.session_timer_fired(now, call),
                CoreTimer::Parked(id) => {
                    if let Some((key, req, source)) = self.parked.remove(&id) {
                        if self.tx.state(&key).is_some() {
                            self.dispatch(now, key, req, source);
                        }
                    }
                }
            }
            self.drain_tx_events(now);
        }
    }

    // ------------------------------------------------------------------ lifecycle

    fn end_call(&mut self, call: CallRef, reason: EndReason) {
        tracing::debug!(%call, ?reason, known = self.calls.contains_key(&call), "end_call");
        if let Some(c) = self.calls.remove(&call) {
            if let Some(d) = c.dialog {
                self.dialogs.remove(&d.id);
            }
            if let Some(k) = c.invite_tx {
                if c.inbound {
                    self.invites.remove(&k);
                }
            }
            self.events.push_back(CoreEvent::Ended { call, reason });
        }
    }

    /// Stop taking calls: new INVITEs get 503, registrations to providers are removed.
    pub fn start_draining(&mut self, now: Instant) {
        self.draining = true;
        for i in 0..self.cfg.trunks.len() {
            if self.trunk_state[i].registered {
                let _ = self.cfg.trunks[i].register;
                self.arm(now, CoreTimer::TrunkRegister(i));
            }
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Ends every live call (BYE, or 503 to calls not answered yet).
    pub fn end_all(&mut self, now: Instant) {
        let calls: Vec<CallRef> = self.calls.keys().copied().collect();
        for call in calls {
            let offered = self
                .calls
                .get(&call)
                .is_some_and(|c| c.inbound && c.state == CallState::Offered);
            if offered {
                self.reject(now, call, 503, "Service Unavailable");
            } else {
                self.hangup(now, call);
                if self.calls.get(&call).is_some_and(|c| c.bye_after_reinvite) {
                    // No waiting for the re-INVITE's answer when stopping.
                    self.send_bye(now, call);
                }
                if self.calls.contains_key(&call) {
                    self.end_call(call, EndReason::Shutdown);
                }
            }
        }
        self.drain_tx_events(now);
    }
}
