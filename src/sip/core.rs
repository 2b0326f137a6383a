//! The UA core: everything between the transaction layer and the call actors, sans-IO.
//!
//! It answers what needs no application decision (OPTIONS, REGISTER, CANCEL, BYE, 481,
//! 482, 483, 420, 422, 488, 491, 501, 503 while draining), authorises INVITEs (trunk
//! source, trunk or user digest credentials, otherwise 403), keeps dialogs and session
//! timers, registers to providers, pings trunks and registered phones, and places
//! outbound calls with challenge answering and failover between trunks.
//!
//! Input: `handle_message`, `handle_timeout` and the call commands (`ring`, `answer`,
//! `reject`, `hangup`, `originate`). Output: `poll_transmit`, `poll_event`,
//! `poll_timeout`. The core never reads the clock and owns no socket.

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

    fn register(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        let users = self.cfg.users.clone();
        let outcome = self
            .registrar
            .authenticate(now, &req, source, false, &|u| users.get(u).cloned());
        let AuthOutcome::User(u) = outcome else {
            if outcome == AuthOutcome::Forbidden {
                tracing::info!(from = %source.addr, user = %auth_user(&req, false), "registration refused: wrong password, unknown user or unusable credentials");
            }
            return self.refuse_auth(key, req, source, outcome, false);
        };
        // One may only register one's own address of record.
        let aor_user = req
            .to()
            .and_then(|t| t.uri.user.map(super::uri::percent_decode));
        if aor_user.as_deref() != Some(u.as_str()) {
            tracing::info!(from = %source.addr, user = %u, "registration refused: the To address is another user's");
            return self.reply(
                now,
                &key,
                &req,
                403,
                "Forbidden",
                Some(&self.rand_hex(10)),
                &[],
            );
        }
        let mut r = self
            .registrar
            .register(now, &req, source, &u, &self.rand_hex(10));
        match r.status() {
            Some(200) => {
                let n = self.registrar.lookup(now, &u).len();
                tracing::info!(from = %source.addr, user = %u, bindings = n, "registered")
            }
            Some(code) => {
                tracing::info!(from = %source.addr, user = %u, code, "registration refused")
            }
            None => {}
        }
        r.push(HeaderName::Server, self.cfg.user_agent.clone());
        self.count_response(r.status().unwrap_or(500));
        self.tx.respond(now, &key, r);
    }

    fn new_invite(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        if self.draining {
            return self.reply(
                now,
                &key,
                &req,
                503,
                "Service Unavailable",
                Some(&self.rand_hex(10)),
                &[(HeaderName::RetryAfter, "30".into())],
            );
        }
        if req.max_forwards() == Some(0) {
            return self.reply(now, &key, &req, 483, "Too Many Hops", None, &[]);
        }
        // A request that already went through us is a loop.
        let ours = self
            .cfg
            .local
            .values()
            .map(|a| a.to_string())
            .collect::<Vec<_>>();
        let looped = req
            .list_values(&HeaderName::Via)
            .iter()
            .skip(1)
            .filter_map(|v| super::header::Via::parse(v).ok())
            .any(|v| {
                v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                    && ours
                        .iter()
                        .any(|a| *a == format!("{}:{}", v.host, v.port.unwrap_or(5060)))
            });
        if looped {
            return self.reply(now, &key, &req, 482, "Loop Detected", None, &[]);
        }
        // Who is calling. A registered user's phone (its credentials name a user, or it
        // calls from where it registered) is the user's, even inside a trunk's
        // addresses; so is anything on the WebSocket transport, which is never a
        // trunk. Then a trunk by source address (maybe with credentials), then trunks
        // known by credentials alone. Anyone else is refused, once and statelessly.
        let ip = source.addr.ip();
        let ws = matches!(source.transport, Transport::Ws | Transport::Wss);
        let users_creds = auth_user(&req, true);
        let caller_user = req
            .from()
            .and_then(|f| f.uri.user.map(super::uri::percent_decode));
        let registered = self
            .registrar
            .registered_at(now, source, caller_user.as_deref());
        let is_user = ws || registered || self.cfg.users.contains_key(&users_creds);
        let trunk = if is_user {
            None
        } else {
            self.cfg.trunks.iter().position(|t| t.matches_source(ip))
        };
        let mut user = None;
        let mut trunk_name = None;
        let outcome = if is_user {
            let users = self.cfg.users.clone();
            match self
                .registrar
                .authenticate(now, &req, source, true, &|u| users.get(u).cloned())
            {
                AuthOutcome::User(u) => {
                    user = Some(u);
                    None
                }
                other => Some(other),
            }
        } else if let Some(ti) = trunk {
            let t = self.cfg.trunks[ti].clone();
            trunk_name = Some(t.name.clone());
            match (t.inbound_username.clone(), t.inbound_password.clone()) {
                (Some(u), Some(p)) => {
                    match self
                        .registrar
                        .authenticate(now, &req, source, true, &|x| (x == u).then(|| p.clone()))
                    {
                        AuthOutcome::User(_) => None,
                        other => Some(other),
                    }
                }
                _ => None,
            }
        } else if self
            .cfg
            .trunks
            .iter()
            .any(|t| t.inbound_cidrs.is_empty() && t.inbound_username.is_some())
        {
            // Trunks matched by credentials alone (providers without fixed addresses).
            let creds: Vec<(String, String, String)> = self
                .cfg
                .trunks
                .iter()
                .filter(|t| t.inbound_cidrs.is_empty())
                .filter_map(|t| {
                    Some((
                        t.inbound_username.clone()?,
                        t.inbound_password.clone()?,
                        t.name.clone(),
                    ))
                })
                .collect();
            let lookup = |u: &str| creds.iter().find(|c| c.0 == u).map(|c| c.1.clone());
            match self
                .registrar
                .authenticate(now, &req, source, true, &lookup)
            {
                AuthOutcome::User(u) => {
                    trunk_name = creds.iter().find(|c| c.0 == u).map(|c| c.2.clone());
                    None
                }
                other => Some(other),
            }
        } else {
            Some(AuthOutcome::Forbidden)
        };
        if let Some(refusal) = outcome {
            if refusal == AuthOutcome::Forbidden {
                tracing::info!(from = %source.addr, user = %users_creds, trunk = %trunk_name.as_deref().unwrap_or("none"), "call refused: not a trunk, or wrong credentials");
            }
            return self.refuse_auth(key, req, source, refusal, true);
        }
        if let Some((se, _)) = parse_session_expires(&req) {
            if se < self.cfg.min_se {
                return self.reply(
                    now,
                    &key,
                    &req,
                    422,
                    "Session Interval Too Small",
                    None,
                    &[(HeaderName::MinSe, self.cfg.min_se.to_string())],
                );
            }
        }
        let has_sdp = !req.body.is_empty();
        if has_sdp {
            let webrtc = self.cfg.webrtc && source.transport == Transport::Ws;
            if let Err(e) = crate::sdp::check_offer(&req.body, webrtc) {
                let warning = match e {
                    crate::sdp::SdpError::NoCommonCodec => {
                        "304 omnigate \"no common media format\"".to_string()
                    }
                    crate::sdp::SdpError::NoAudio => "301 omnigate \"no audio stream\"".to_string(),
                    e => format!(
                        "399 omnigate \"{}\"",
                        e.to_string().replace(['"', '\\'], "'")
                    ),
                };
                return self.reply(
                    now,
                    &key,
                    &req,
                    488,
                    "Not Acceptable Here",
                    None,
                    &[(HeaderName::Warning, warning)],
                );
            }
        }
        // 100 Trying once the request is known good and its caller known (RFC 3261
        // 17.2.1: the core answers within 200 ms; nothing is rung and then refused).
        let trying = Message::response_to(&req, 100, "Trying", None);
        self.count_response(100);
        self.tx.respond(now, &key, trying);
        let call = self.new_call();
        self.stats.calls_total += 1;
        let caller = req
            .from()
            .and_then(|f| f.uri.user.map(super::uri::percent_decode))
            .unwrap_or_default();
        let callee = req
            .request_uri()
            .and_then(|u| super::uri::Uri::parse(u).ok())
            .and_then(|u| u.user.map(super::uri::percent_decode))
            .unwrap_or_default();
        let sdp = req.body.clone();
        self.invites.insert(key.clone(), call);
        let mut c = Call::new(
            true,
            CallState::Offered,
            req,
            Bytes::new(),
            source,
            callee.clone(),
            self.rand_hex(10),
        );
        c.invite_tx = Some(key);
        self.calls.insert(call, c);
        self.events.push_back(CoreEvent::IncomingCall {
            call,
            caller,
            callee,
            sdp,
            trunk: trunk_name,
            user,
            source,
        });
    }

    /// Answers a request that is not (yet) authenticated: challenges and 403s once,
    /// statelessly (a forged request from a spoofed address costs one packet and no
    /// state: no reflection, no retransmissions); a throttled pair's request is held
    /// and checked again when its delay ends.
    fn refuse_auth(
        &mut self,
        key: TxKey,
        req: Message,
        source: Peer,
        outcome: AuthOutcome,
        proxy: bool,
    ) {
        match outcome {
            AuthOutcome::User(_) => {}
            AuthOutcome::Challenge(ch) => {
                let (code, reason, name) = if proxy {
                    (
                        407,
                        "Proxy Authentication Required",
                        HeaderName::ProxyAuthenticate,
                    )
                } else {
                    (401, "Unauthorized", HeaderName::WwwAuthenticate)
                };
                let extra: Vec<_> = ch.into_iter().map(|c| (name.clone(), c)).collect();
                self.tx.forget(&key);
                self.reply_stateless_with(&req, source, code, reason, &extra);
            }
            AuthOutcome::Forbidden => {
                self.tx.forget(&key);
                self.reply_stateless_with(&req, source, 403, "Forbidden", &[]);
            }
            AuthOutcome::Delay(at) if self.parked.len() < MAX_PARKED => {
                self.parked_seq += 1;
                self.parked.insert(self.parked_seq, (key, req, source));
                self.arm(at, CoreTimer::Parked(self.parked_seq));
            }
            AuthOutcome::Delay(_) | AuthOutcome::Drop => self.tx.forget(&key),
        }
    }

    fn cancel(&mut self, now: Instant, key: TxKey, req: Message) {
        let Some(ikey) = TxKey::invite_of_cancel(&req) else {
            return self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
        };
        let Some(&call) = self.invites.get(&ikey) else {
            return self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
        };
        self.reply(now, &key, &req, 200, "OK", None, &[]);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state == CallState::Offered {
            let (invite, tag) = (c.invite.clone(), c.local_tag.clone());
            self.reply(
                now,
                &ikey,
                &invite,
                487,
                "Request Terminated",
                Some(&tag),
                &[],
            );
            self.end_call(call, EndReason::Cancelled);
        }
    }

    fn on_ack(&mut self, now: Instant, ack: &Message) {
        let _ = now;
        let Some(id) = DialogId::of_request(ack) else {
            return;
        };
        let Some(&call) = self.dialogs.get(&id) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state == CallState::Answered {
            c.state = CallState::Established;
            if let Some(d) = c.dialog.as_mut() {
                d.state = DialogState::Confirmed;
            }
            let sdp = if c.invite.body.is_empty() {
                ack.body.clone()
            } else {
                c.invite.body.clone()
            };
            self.events.push_back(CoreEvent::Established {
                call,
                remote_sdp: sdp,
            });
        }
    }

    fn in_dialog(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let id = DialogId::of_request(&req);
        let call = id.as_ref().and_then(|i| self.dialogs.get(i)).copied();
        let Some(call) = call else {
            return self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
        };
        let cseq_ok = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog.as_mut())
            .map(|d| d.check_remote_cseq(&req).is_ok())
            .unwrap_or(false);
        if !cseq_ok {
            return self.reply(now, &key, &req, 500, "CSeq Out of Order", None, &[]);
        }
        match method {
            Method::Bye => {
                self.reply(now, &key, &req, 200, "OK", None, &[]);
                self.end_call(call, EndReason::RemoteBye);
            }
            Method::Invite | Method::Update => {
                let pending = self
                    .calls
                    .get(&call)
                    .and_then(|c| c.dialog.as_ref())
                    .is_some_and(|d| d.pending_offer);
                if pending {
                    return self.reply(now, &key, &req, 491, "Request Pending", None, &[]);
                }
                self.answer_offer(now, key, req, source, call);
            }
            Method::Info => {
                let ctype = req.header_str(&HeaderName::ContentType).unwrap_or("");
                match info_digit(ctype, &req.body) {
                    Ok(Some(digit)) => {
                        self.reply(now, &key, &req, 200, "OK", None, &[]);
                        self.events.push_back(CoreEvent::InfoDigit { call, digit });
                    }
                    Ok(None) => self.reply(now, &key, &req, 200, "OK", None, &[]),
                    Err(why) => self.reply(now, &key, &req, 400, why, None, &[]),
                }
            }
            Method::Options => self.reply(now, &key, &req, 200, "OK", None, &[]),
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

    /// Answers a re-INVITE or UPDATE: same media, direction mirrored (hold/resume),
    /// session timer refreshed.
    fn answer_offer(
        &mut self,
        now: Instant,
        key: TxKey,
        req: Message,
        source: Peer,
        call: CallRef,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut body = c.local_sdp.clone();
        if !req.body.is_empty() {
            match crate::sdp::reanswer(&c.local_sdp, &req.body) {
                Ok((answer, negotiated)) => {
                    body = Bytes::from(answer);
                    c.local_sdp = body.clone();
                    self.events.push_back(CoreEvent::RemoteOffer {
                        call,
                        sdp: req.body.clone(),
                        negotiated: Box::new(negotiated),
                    });
                }
                Err(e) => {
                    let warning = format!(
                        "399 omnigate \"{}\"",
                        e.to_string().replace(['"', '\\'], "'")
                    );
                    return self.reply(
                        now,
                        &key,
                        &req,
                        488,
                        "Not Acceptable Here",
                        None,
                        &[(HeaderName::Warning, warning)],
                    );
                }
            }
        }
        let mut extra = vec![
            (HeaderName::Contact, self.contact_for(source.transport)),
            (HeaderName::Allow, ALLOW.to_string()),
            (HeaderName::Supported, SUPPORTED.into()),
        ];
        extra.extend(self.session_timer_headers(now, call, &req));
        let mut r = Message::response_to(&req, 200, "OK", None);
        for (n, v) in extra {
            r.push(n, v);
        }
        if !body.is_empty() {
            r.with_body("application/sdp", body);
        }
        self.count_response(200);
        self.tx.respond(now, &key, r);
    }

    /// Negotiates RFC 4028 from a request we answer with 2xx; arms the timer.
    fn session_timer_headers(
        &mut self,
        now: Instant,
        call: CallRef,
        req: &Message,
    ) -> Vec<(HeaderName, String)> {
        let Some((se, refresher)) = parse_session_expires(req) else {
            return vec![];
        };
        let se = se.max(self.cfg.min_se);
        let uac_supports = req
            .list_values(&HeaderName::Supported)
            .iter()
            .any(|s| s.eq_ignore_ascii_case("timer"));
        // We received the request: its sender is "uac" for this transaction.
        let who = match refresher {
            Some(r) if r.eq_ignore_ascii_case("uas") => Refresher::Us,
            Some(_) => Refresher::Them,
            None if uac_supports => Refresher::Them,
            None => Refresher::Us,
        };
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
            d.session_timer = Some(SessionTimer::new(now, Duration::from_secs(se as u64), who));
        }
        let deadline = self
            .calls
            .get(&call)
            .and_then(|c| c.dialog.as_ref())
            .and_then(|d| d.session_timer.as_ref())
            .map(|s| s.deadline);
        if let Some(dl) = deadline {
            self.arm(dl, CoreTimer::Session(call));
        }
        let r = if who == Refresher::Us { "uas" } else { "uac" };
        let mut v = vec![(HeaderName::SessionExpires, format!("{se};refresher={r}"))];
        if uac_supports {
            v.push((HeaderName::Require, "timer".into()));
        }
        v
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

    /// Sends 180 Ringing for an offered inbound call.
    pub fn ring(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let (key, invite, tag, t) = (
            c.invite_tx.clone().unwrap(),
            c.invite.clone(),
            c.local_tag.clone(),
            c.source.transport,
        );
        let mut extra = vec![(HeaderName::Contact, self.contact_for(t))];
        extra.extend(record_routes(&invite));
        self.reply(now, &key, &invite, 180, "Ringing", Some(&tag), &extra);
    }

    /// Answers an offered inbound call with `sdp` (an answer, or an offer when the
    /// INVITE had none).
    pub fn answer(&mut self, now: Instant, call: CallRef, sdp: Bytes) {
        let local_seq = {
            use rand::Rng;
            self.rng.borrow_mut().gen::<u16>() as u32 + 1
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let Some(dialog) = Dialog::uas(&c.invite, &c.local_tag, c.source, local_seq) else {
            let (key, invite, tag) = (
                c.invite_tx.clone().unwrap(),
                c.invite.clone(),
                c.local_tag.clone(),
            );
            self.reply(now, &key, &invite, 400, "Missing Contact", Some(&tag), &[]);
            return self.end_call(call, EndReason::Rejected(400));
        };
        c.local_sdp = sdp.clone();
        c.state = CallState::Answered;
        let (key, invite, tag, t) = (
            c.invite_tx.clone().unwrap(),
            c.invite.clone(),
            c.local_tag.clone(),
            c.source.transport,
        );
        self.dialogs.insert(dialog.id.clone(), call);
        self.calls.get_mut(&call).unwrap().dialog = Some(dialog);
        let mut r = Message::response_to(&invite, 200, "OK", Some(&tag));
        // RFC 3261 12.1.1: the dialog's route set goes back in the 2xx, so the
        // caller's ACK and BYE come through the proxies that record-routed.
        for (n, v) in record_routes(&invite) {
            r.push(n, v);
        }
        r.push(HeaderName::Contact, self.contact_for(t));
        r.push(HeaderName::Allow, ALLOW);
        r.push(HeaderName::Supported, SUPPORTED);
        for (n, v) in self.session_timer_headers(now, call, &invite) {
            r.push(n, v);
        }
        r.push(HeaderName::Server, self.cfg.user_agent.clone());
        r.with_body("application/sdp", sdp);
        self.count_response(200);
        self.tx.respond(now, &key, r);
    }

    /// Rejects an offered inbound call.
    pub fn reject(&mut self, now: Instant, call: CallRef, code: u16, reason: &str) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let (key, invite, tag) = (
            c.invite_tx.clone().unwrap(),
            c.invite.clone(),
            c.local_tag.clone(),
        );
        self.reply(now, &key, &invite, code, reason, Some(&tag), &[]);
        self.end_call(call, EndReason::Rejected(code));
        self.drain_tx_events(now);
    }

    /// Puts the far end on hold (a re-INVITE with `sendonly`) or takes it off
    /// (`sendrecv`).
    pub fn hold(&mut self, now: Instant, call: CallRef, on: bool) {
        let dir = if on {
            crate::sdp::Direction::SendOnly
        } else {
            crate::sdp::Direction::SendRecv
        };
        self.reinvite(now, call, dir);
    }

    /// Sends a re-INVITE offering our last SDP with `dir` (hold: sendonly; resume:
    /// sendrecv), version + 1. Nothing happens while an offer of ours is pending.
    pub fn reinvite(&mut self, now: Instant, call: CallRef, dir: crate::sdp::Direction) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(sdp) = crate::sdp::reoffer(&c.local_sdp, dir) else {
            tracing::debug!(%call, "no SDP of ours to re-offer");
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        if c.state != CallState::Established {
            tracing::info!(%call, "re-INVITE not sent: the call is not up");
            return;
        }
        if d.pending_offer {
            // RFC 3261 14.1: one offer at a time; this one goes when that is answered.
            c.next_direction = Some(dir);
            return;
        }
        tracing::debug!(%call, direction = dir.attr(), "re-INVITE");
        c.local_sdp = Bytes::from(sdp);
        let peer = d.peer;
        let mut r = d.request(Method::Invite);
        d.pending_offer = true;
        r.push(HeaderName::Supported, SUPPORTED);
        r.push(HeaderName::Contact, self.contact_for(peer.transport));
        let sdp = self.calls[&call].local_sdp.clone();
        r.with_body("application/sdp", sdp);
        self.send_request(now, r, peer, Purpose::ReInvite(call));
        self.drain_tx_events(now);
    }

    /// Ends a call from our side: BYE when established (or answered), CANCEL or a
    /// final error before that.
    pub fn hangup(&mut self, now: Instant, call: CallRef) {
        tracing::debug!(%call, known = self.calls.contains_key(&call), "hangup");
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match (c.inbound, c.state) {
            (true, CallState::Offered) => {
                return self.reject(now, call, 480, "Temporarily Unavailable");
            }
            (false, CallState::Calling) => {
                if c.got_provisional {
                    self.send_cancel(now, call);
                    self.end_call(call, EndReason::LocalBye);
                } else {
                    // RFC 3261 9.1: CANCEL only after a provisional response.
                    c.cancel_pending = true;
                }
            }
            _ => {
                self.send_bye(now, call);
                self.end_call(call, EndReason::LocalBye);
            }
        }
        self.drain_tx_events(now);
    }

    fn send_bye(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        let peer = d.peer;
        let bye = d.request(Method::Bye);
        self.send_request(now, bye, peer, Purpose::InDialog(call));
    }

    fn send_cancel(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(key) = c.invite_tx.clone() else {
            return;
        };
        let Some(inv) = self.tx.request(&key).cloned() else {
            return;
        };
        let Some(peer) = self.tx.peer(&key) else {
            return;
        };
        // CANCEL: same Request-URI, Call-ID, From, To, Route and top Via as the INVITE.
        let mut cancel = Message::request(Method::Cancel, inv.request_uri().unwrap_or(""));
        if let Some(v) = inv.list_values(&HeaderName::Via).first() {
            cancel.push(HeaderName::Via, v.to_string());
        }
        for n in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
            if let Some(v) = inv.header_str(&n) {
                cancel.push(n, v);
            }
        }
        cancel.push(
            HeaderName::CSeq,
            format!("{} CANCEL", inv.cseq().map(|c| c.0).unwrap_or(1)),
        );
        cancel.push(HeaderName::MaxForwards, "70");
        if let Some(k) = self.tx.send_request(now, cancel, peer) {
            self.purposes.insert(k, Purpose::Other);
        }
    }

    /// A new call reference, for a call this core is about to place.
    pub fn new_call(&mut self) -> CallRef {
        let c = CallRef(self.next_call);
        self.next_call += 1;
        c
    }

    /// Places call `call` (from [`Core::new_call`]) to `to`. A call that cannot be placed ends at once, as a
    /// refused one would ([`CoreEvent::Ended`] with `Failed`): 503 when no trunk can
    /// carry it, 480 for a user who is not registered, 404 for a URI we cannot reach.
    pub fn place(&mut self, now: Instant, call: CallRef, to: &Target, sdp: Bytes) {
        let r = match to {
            Target::Number { number, trunk } => self
                .originate(now, call, number, sdp, trunk.as_deref())
                .map_err(|e| (e, 503)),
            Target::User(u) => self.originate_user(now, call, u, sdp).map_err(|e| (e, 480)),
            Target::Uri(u) => self.originate_uri(now, call, u, sdp).map_err(|e| (e, 404)),
        };
        if let Err((why, code)) = r {
            tracing::info!(%call, error = why, to = %crate::redact::Redacted(&to.to_string()), "cannot place call");
            self.events.push_back(CoreEvent::Ended {
                call,
                reason: EndReason::Failed(code),
            });
        }
    }

    /// Places an outbound call to `to_user` through `trunk` (by name) or through the
    /// trunks in configured order, failing over on timeouts, 408 and 5xx/6xx.
    pub fn originate(
        &mut self,
        now: Instant,
        call: CallRef,
        to_user: &str,
        sdp: Bytes,
        trunk: Option<&str>,
    ) -> Result<(), &'static str> {
        let mut order: VecDeque<usize> = match trunk {
            Some(name) => self
                .cfg
                .trunks
                .iter()
                .position(|t| t.name == name && t.proxy.is_some())
                .into_iter()
                .collect(),
            None => {
                let all: Vec<usize> = (0..self.cfg.trunks.len())
                    .filter(|&i| self.cfg.trunks[i].proxy.is_some())
                    .collect();
                let healthy: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|&i| self.trunk_state[i].healthy != Some(false))
                    .collect();
                if healthy.is_empty() { all } else { healthy }
                    .into_iter()
                    .collect()
            }
        };
        let Some(first) = order.pop_front() else {
            return Err("no trunk with a proxy address");
        };
        self.stats.calls_total += 1;
        let mut c = Call::new(
            false,
            CallState::Calling,
            Message::request(Method::Invite, "sip:invalid"),
            sdp,
            Peer::udp(SocketAddr::from(([0, 0, 0, 0], 0))),
            to_user.to_string(),
            self.rand_hex(10),
        );
        c.trunks_left = order;
        self.calls.insert(call, c);
        self.send_invite(now, call, first, None);
        self.drain_tx_events(now);
        Ok(())
    }

    /// Places a call to a registered user: its most recently refreshed contact, sent to
    /// the address (or connection) it registered from, so phones behind NAT ring.
    pub fn originate_user(
        &mut self,
        now: Instant,
        call: CallRef,
        user: &str,
        sdp: Bytes,
    ) -> Result<(), &'static str> {
        let Some(b) = self
            .registrar
            .lookup(now, user)
            .into_iter()
            .max_by_key(|b| b.expires_at)
        else {
            return Err("the user is not registered");
        };
        let c = b.contact.trim();
        let ruri = match (c.find('<'), c.find('>')) {
            (Some(a), Some(z)) if a < z => &c[a + 1..z],
            _ => c.split(';').next().unwrap_or(c),
        };
        if Uri::parse(ruri).is_err() {
            return Err("the registered contact is not a URI");
        }
        self.originate_direct(now, call, ruri.to_string(), user, b.source, sdp);
        Ok(())
    }

    /// Places a call to a `sip:`/`sips:` URI whose host is an IP address, or whose
    /// host is a trunk's domain (then through that trunk). Host names are not resolved
    /// (no DNS in the core).
    pub fn originate_uri(
        &mut self,
        now: Instant,
        call: CallRef,
        uri: &str,
        sdp: Bytes,
    ) -> Result<(), &'static str> {
        let u = Uri::parse(uri).map_err(|_| "not a SIP URI")?;
        if !u.is_sip() {
            return Err("only sip: and sips: URIs can be called");
        }
        let user = u.user_decoded().unwrap_or_default();
        if let Ok(ip) = u.host_bare().parse::<IpAddr>() {
            let sips = uri.to_ascii_lowercase().starts_with("sips:");
            let transport = match u.param("transport") {
                Some(Some(t)) => Transport::parse(t).ok_or("unknown transport in the URI")?,
                _ if sips => Transport::Tls,
                _ => Transport::Udp,
            };
            let port = u.port.unwrap_or(if transport == Transport::Tls {
                5061
            } else {
                5060
            });
            let peer = Peer {
                transport,
                addr: SocketAddr::new(ip, port),
                conn: None,
            };
            self.originate_direct(now, call, uri.to_string(), &user, peer, sdp);
            return Ok(());
        }
        let host = u.host_bare().to_ascii_lowercase();
        let trunk = self
            .cfg
            .trunks
            .iter()
            .find(|t| t.domain().eq_ignore_ascii_case(&host) && t.proxy.is_some())
            .map(|t| t.name.clone());
        match trunk {
            Some(t) => self.originate(now, call, &user, sdp, Some(&t)),
            None => Err("the URI's host is neither an IP address nor a trunk's domain"),
        }
    }

    fn originate_direct(
        &mut self,
        now: Instant,
        call: CallRef,
        ruri: String,
        to_user: &str,
        peer: Peer,
        sdp: Bytes,
    ) {
        self.stats.calls_total += 1;
        let c = Call::new(
            false,
            CallState::Calling,
            Message::request(Method::Invite, "sip:invalid"),
            sdp,
            peer,
            to_user.to_string(),
            self.rand_hex(10),
        );
        let local = self.local_addr(peer.transport);
        let inv = self.invite(InviteParts {
            ruri: &ruri,
            from: &format!("<sip:omnigate@{local}>;tag={}", c.local_tag),
            to: &format!("<{ruri}>"),
            call_id: format!("{}@omnigate", self.rand_hex(20)),
            cseq: 1,
            transport: peer.transport,
            auth: None,
            sdp: &c.local_sdp,
        });
        self.calls.insert(call, c);
        self.send_call_invite(now, call, inv, peer);
        self.drain_tx_events(now);
    }

    /// An outbound INVITE with our Contact, Allow, Supported and Session-Expires.
    fn invite(&self, p: InviteParts<'_>) -> Message {
        let mut inv = Message::request(Method::Invite, p.ruri);
        inv.push(HeaderName::MaxForwards, "70");
        inv.push(HeaderName::From, p.from.to_string());
        inv.push(HeaderName::To, p.to.to_string());
        inv.push(HeaderName::CallId, p.call_id);
        inv.push(HeaderName::CSeq, format!("{} INVITE", p.cseq));
        inv.push(HeaderName::Contact, self.contact_for(p.transport));
        inv.push(HeaderName::Allow, ALLOW);
        inv.push(HeaderName::Supported, SUPPORTED);
        inv.push(
            HeaderName::SessionExpires,
            self.cfg.session_expires.to_string(),
        );
        if let Some((n, v)) = p.auth {
            inv.push(n, v);
        }
        if !p.sdp.is_empty() {
            inv.with_body("application/sdp", p.sdp.clone());
        }
        inv
    }

    /// Sends a call's INVITE and remembers its transaction and the message as sent.
    fn send_call_invite(&mut self, now: Instant, call: CallRef, inv: Message, peer: Peer) {
        if let Some(k) = self.send_request(now, inv, peer, Purpose::Invite(call)) {
            let inv = self.tx.request(&k).cloned();
            if let Some(c) = self.calls.get_mut(&call) {
                c.invite_tx = Some(k);
                if let Some(i) = inv {
                    c.invite = i;
                }
            }
        }
    }

    fn send_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        trunk: usize,
        auth: Option<(HeaderName, String)>,
    ) {
        let t = self.cfg.trunks[trunk].clone();
        let Some(peer) = t.proxy_peer() else { return };
        let fresh_call_id = format!("{}@omnigate", self.rand_hex(20));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let domain = t.domain();
        let ruri = format!("sip:{}@{}", c.to_user, domain);
        let (call_id, cseq) = if c.trunk == Some(trunk) && c.invite.cseq().is_some() {
            (
                c.invite.call_id().to_string(),
                c.invite.cseq().unwrap().0 + 1,
            )
        } else {
            (fresh_call_id, 1)
        };
        let from_user = t
            .from_user
            .clone()
            .or(t.username.clone())
            .unwrap_or_else(|| "omnigate".into());
        let from = format!("<sip:{from_user}@{domain}>;tag={}", c.local_tag);
        let to = format!("<sip:{}@{}>", c.to_user, domain);
        c.trunk = Some(trunk);
        c.got_provisional = false;
        let sdp = c.local_sdp.clone();
        let inv = self.invite(InviteParts {
            ruri: &ruri,
            from: &from,
            to: &to,
            call_id,
            cseq,
            transport: peer.transport,
            auth,
            sdp: &sdp,
        });
        self.send_call_invite(now, call, inv, peer);
    }

    fn next_cnonce(&mut self) -> (String, u32) {
        self.cnonce_seq += 1;
        (self.rand_hex(16), 1)
    }

    fn on_client_response(&mut self, now: Instant, key: TxKey, resp: Message) {
        let code = resp.status().unwrap_or(0);
        match self.purposes.get(&key).cloned() {
            Some(Purpose::Invite(call)) => self.on_invite_response(now, call, key, resp, code),
            Some(Purpose::Register(i)) => self.on_register_response(now, i, resp, code),
            Some(Purpose::TrunkOptions(i)) if code >= 200 => {
                self.trunk_state[i].healthy = Some(true);
            }
            Some(Purpose::ReInvite(call)) if code >= 200 => {
                let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) else {
                    return;
                };
                d.pending_offer = false;
                if (200..300).contains(&code) {
                    // RFC 3261 14.1: the UAC ACKs a 2xx to a re-INVITE, same CSeq number.
                    let peer = d.peer;
                    let mut ack = d.request(Method::Ack);
                    self.push_our_via(&mut ack, peer.transport);
                    self.tx.send_stateless(peer, &ack);
                } else if code == 481 || code == 408 {
                    self.end_call(call, EndReason::RemoteBye);
                } else {
                    tracing::info!(%call, code, "re-INVITE refused; media unchanged on their side");
                }
                if let Some(dir) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.next_direction.take())
                {
                    self.reinvite(now, call, dir);
                }
            }
            Some(Purpose::InDialog(call)) if code >= 200 => {
                if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
                    d.pending_offer = false;
                }
                if code == 481 || code == 408 {
                    self.end_call(call, EndReason::RemoteBye);
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        call: CallRef,
        key: TxKey,
        resp: Message,
        code: u16,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            // The call is gone (we hung up): ACK and BYE a late 2xx.
            if (200..300).contains(&code) {
                self.ack_and_bye_orphan(now, &key, &resp);
            }
            return;
        };
        if c.invite_tx.as_ref() != Some(&key) {
            return;
        }
        if code < 200 {
            c.got_provisional = true;
            if c.cancel_pending {
                self.send_cancel(now, call);
                self.end_call(call, EndReason::LocalBye);
                return;
            }
            self.events.push_back(CoreEvent::Progress { call, code });
            return;
        }
        if code < 300 {
            if let (Some(ack), Some(d)) = (c.ack.clone(), c.dialog.as_ref()) {
                // A retransmitted 2xx: our ACK was lost; send it again (RFC 3261 13.2.2.4).
                let peer = d.peer;
                self.tx.send_stateless(peer, &ack);
                return;
            }
            let peer = self.tx.peer(&key).unwrap_or(c.source);
            let Some(mut d) = Dialog::uac(&c.invite, &resp, peer) else {
                return;
            };
            d.state = DialogState::Confirmed;
            let mut ack = d.request(Method::Ack);
            self.push_our_via(&mut ack, peer.transport);
            let c = self.calls.get_mut(&call).unwrap();
            c.state = CallState::Established;
            self.dialogs.insert(d.id.clone(), call);
            if let Some((se, r)) = parse_session_expires(&resp) {
                let who = if r.is_some_and(|r| r.eq_ignore_ascii_case("uac")) {
                    Refresher::Us
                } else {
                    Refresher::Them
                };
                let st = SessionTimer::new(
                    now,
                    Duration::from_secs(se.max(self.cfg.min_se) as u64),
                    who,
                );
                let dl = st.deadline;
                d.session_timer = Some(st);
                self.timer_seq += 1;
                self.timers
                    .insert((dl, self.timer_seq), CoreTimer::Session(call));
            }
            c.dialog = Some(d);
            c.ack = Some(ack.clone());
            self.tx.send_stateless(peer, &ack);
            let cancel = c.cancel_pending;
            if cancel {
                self.send_bye(now, call);
                self.end_call(call, EndReason::LocalBye);
            } else {
                self.events.push_back(CoreEvent::Established {
                    call,
                    remote_sdp: resp.body.clone(),
                });
            }
            return;
        }
        c.last_code = code;
        // Challenge: answer once per trunk.
        if (code == 401 || code == 407) && !c.auth_tried {
            let t = c.trunk.map(|i| self.cfg.trunks[i].clone());
            if let Some(t) = t {
                let hn = if code == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                let an = if code == 401 {
                    HeaderName::Authorization
                } else {
                    HeaderName::ProxyAuthorization
                };
                if let (Some(u), Some(p), Some(ch)) = (
                    t.username.clone(),
                    t.password.clone(),
                    resp.header_str(&hn).map(str::to_string),
                ) {
                    let ruri = c.invite.request_uri().unwrap_or("").to_string();
                    let trunk = c.trunk.unwrap();
                    c.auth_tried = true;
                    let (cn, nc) = self.next_cnonce();
                    if let Some(a) = answer_challenge(&ch, "INVITE", &ruri, &u, &p, &cn, nc) {
                        self.send_invite(now, call, trunk, Some((an, a)));
                        return;
                    }
                }
            }
        }
        self.failover_or_fail(now, call, code);
    }

    fn failover_or_fail(&mut self, now: Instant, call: CallRef, code: u16) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let retryable = code == 408 || code >= 500;
        if retryable && !c.cancel_pending {
            if let Some(next) = c.trunks_left.pop_front() {
                c.auth_tried = false;
                c.trunk = None;
                tracing::info!(%call, code, trunk = %self.cfg.trunks[next].name, "outbound call failing over");
                self.send_invite(now, call, next, None);
                return;
            }
        }
        let reason = if c.cancel_pending {
            EndReason::LocalBye
        } else {
            EndReason::Failed(code)
        };
        self.end_call(call, reason);
    }

    fn ack_and_bye_orphan(&mut self, now: Instant, key: &TxKey, resp: &Message) {
        let Some(inv) = self.tx.request(key).cloned() else {
            return;
        };
        let Some(peer) = self.tx.peer(key) else {
            return;
        };
        let Some(mut d) = Dialog::uac(&inv, resp, peer) else {
            return;
        };
        let mut ack = d.request(Method::Ack);
        self.push_our_via(&mut ack, peer.transport);
        self.tx.send_stateless(peer, &ack);
        let bye = d.request(Method::Bye);
        self.send_request(now, bye, peer, Purpose::Other);
    }

    fn on_client_timeout(&mut self, now: Instant, key: TxKey, timer: TimerKind) {
        match self.purposes.get(&key).cloned() {
            Some(Purpose::Invite(call)) => {
                if timer == TimerKind::C {
                    self.send_cancel(now, call);
                    self.end_call(call, EndReason::Failed(408));
                } else if self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.invite_tx.as_ref() == Some(&key))
                {
                    self.failover_or_fail(now, call, 408);
                }
                self.purposes.remove(&key);
            }
            Some(Purpose::Register(i)) => {
                self.trunk_state[i].registered = false;
                self.trunk_state[i].register_failures += 1;
                self.arm(now + Duration::from_secs(30), CoreTimer::TrunkRegister(i));
                self.events.push_back(CoreEvent::TrunkRegistration {
                    trunk: self.cfg.trunks[i].name.clone(),
                    registered: false,
                });
            }
            Some(Purpose::TrunkOptions(i)) => {
                if self.trunk_state[i].healthy != Some(false) {
                    tracing::warn!(trunk = %self.cfg.trunks[i].name, "trunk did not answer OPTIONS: marked down");
                }
                self.trunk_state[i].healthy = Some(false);
            }
            Some(Purpose::Keepalive(user, contact)) => {
                tracing::info!(user = %crate::redact::Redacted(&user), "registered contact did not answer OPTIONS: binding dropped");
                self.registrar.drop_binding(&user, &contact);
            }
            Some(Purpose::InDialog(call) | Purpose::ReInvite(call)) => {
                self.end_call(call, EndReason::RemoteBye)
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ trunks

    fn send_register(
        &mut self,
        now: Instant,
        i: usize,
        auth: Option<(HeaderName, String)>,
        expires: u32,
    ) {
        let t = self.cfg.trunks[i].clone();
        let Some(peer) = t.proxy_peer() else { return };
        let Some(user) = t.username.clone() else {
            return;
        };
        let domain = t.domain();
        let st = &mut self.trunk_state[i];
        st.reg_cseq += 1;
        let mut reg = Message::request(Method::Register, &format!("sip:{domain}"));
        reg.push(HeaderName::MaxForwards, "70");
        reg.push(
            HeaderName::From,
            format!("<sip:{user}@{domain}>;tag={}", rand_hex(&self.rng, 10)),
        );
        reg.push(HeaderName::To, format!("<sip:{user}@{domain}>"));
        reg.push(HeaderName::CallId, st.reg_call_id.clone());
        reg.push(HeaderName::CSeq, format!("{} REGISTER", st.reg_cseq));
        reg.push(HeaderName::Contact, self.contact_for(peer.transport));
        reg.push(HeaderName::Expires, expires.to_string());
        if let Some((n, v)) = auth {
            reg.push(n, v);
        }
        self.send_request(now, reg, peer, Purpose::Register(i));
    }

    fn on_register_response(&mut self, now: Instant, i: usize, resp: Message, code: u16) {
        if code < 200 {
            return;
        }
        let t = self.cfg.trunks[i].clone();
        if (code == 401 || code == 407) && self.trunk_state[i].register_failures < 1 {
            let hn = if code == 401 {
                HeaderName::WwwAuthenticate
            } else {
                HeaderName::ProxyAuthenticate
            };
            let an = if code == 401 {
                HeaderName::Authorization
            } else {
                HeaderName::ProxyAuthorization
            };
            if let (Some(u), Some(p), Some(ch)) = (
                t.username.clone(),
                t.password.clone(),
                resp.header_str(&hn).map(str::to_string),
            ) {
                let uri = format!("sip:{}", t.domain());
                let (cn, nc) = self.next_cnonce();
                if let Some(a) = answer_challenge(&ch, "REGISTER", &uri, &u, &p, &cn, nc) {
                    self.trunk_state[i].register_failures += 1;
                    self.send_register(now, i, Some((an, a)), t.register_expires);
                    return;
                }
            }
        }
        if (200..300).contains(&code) {
            let granted = resp
                .list_values(&HeaderName::Contact)
                .iter()
                .filter_map(|c| super::header::NameAddr::parse(c).ok())
                .filter_map(|n| {
                    n.params
                        .value("expires")
                        .and_then(super::header::parse_delta_seconds)
                })
                .next()
                .or_else(|| {
                    resp.header_str(&HeaderName::Expires)
                        .and_then(super::header::parse_delta_seconds)
                })
                .unwrap_or(t.register_expires)
                .max(10);
            let st = &mut self.trunk_state[i];
            let was = st.registered;
            st.registered = true;
            st.register_failures = 0;
            st.registered_until = Some(now + Duration::from_secs(granted as u64));
            self.arm(
                now + Duration::from_secs((granted / 2).max(5) as u64),
                CoreTimer::TrunkRegister(i),
            );
            if !was {
                tracing::info!(trunk = %t.name, expires = granted, "registered to provider");
                self.events.push_back(CoreEvent::TrunkRegistration {
                    trunk: t.name.clone(),
                    registered: true,
                });
            }
        } else {
            let st = &mut self.trunk_state[i];
            st.registered = false;
            st.register_failures = 0;
            tracing::warn!(trunk = %t.name, code, "registration to provider failed; retrying in 60 s");
            self.arm(now + Duration::from_secs(60), CoreTimer::TrunkRegister(i));
            self.events.push_back(CoreEvent::TrunkRegistration {
                trunk: t.name.clone(),
                registered: false,
            });
        }
    }

    fn send_options(&mut self, now: Instant, peer: Peer, uri: &str, to: &str, purpose: Purpose) {
        let mut o = Message::request(Method::Options, uri);
        o.push(HeaderName::MaxForwards, "70");
        o.push(
            HeaderName::From,
            format!(
                "<sip:omnigate@{}>;tag={}",
                self.local_addr(peer.transport),
                self.rand_hex(10)
            ),
        );
        o.push(HeaderName::To, format!("<{to}>"));
        o.push(
            HeaderName::CallId,
            format!("{}@omnigate", self.rand_hex(16)),
        );
        o.push(HeaderName::CSeq, "1 OPTIONS");
        self.send_request(now, o, peer, purpose);
    }

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

    fn session_timer_fired(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        let Some(st) = d.session_timer.clone() else {
            return;
        };
        if st.deadline > now {
            return; // refreshed meanwhile; a later entry is armed
        }
        match st.refresher {
            Refresher::Them => {
                tracing::info!(%call, "session timer expired without refresh: sending BYE");
                self.send_bye(now, call);
                self.end_call(call, EndReason::SessionExpired);
            }
            Refresher::Us => {
                let method = if d.peer_allows_update {
                    Method::Update
                } else {
                    Method::Invite
                };
                let peer = d.peer;
                let mut r = d.request(method.clone());
                d.pending_offer = true;
                let next = SessionTimer::new(now, st.interval, Refresher::Us);
                let dl = next.deadline;
                d.session_timer = Some(next);
                r.push(
                    HeaderName::SessionExpires,
                    format!("{};refresher=uac", st.interval.as_secs()),
                );
                r.push(HeaderName::Supported, SUPPORTED);
                r.push(HeaderName::Contact, self.contact_for(peer.transport));
                let sdp = self.calls[&call].local_sdp.clone();
                if method == Method::Invite && !sdp.is_empty() {
                    r.with_body("application/sdp", sdp);
                }
                let purpose = if method == Method::Invite {
                    Purpose::ReInvite(call)
                } else {
                    Purpose::InDialog(call)
                };
                self.send_request(now, r, peer, purpose);
                self.arm(dl, CoreTimer::Session(call));
            }
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
                if self.calls.contains_key(&call) {
                    self.end_call(call, EndReason::Shutdown);
                }
            }
        }
        self.drain_tx_events(now);
    }
}

/// Reads a key press from an INFO body: `application/dtmf-relay` (`Signal=5`, the
/// common Cisco form) or `application/dtmf` (the key itself). Other or empty bodies
/// (keepalive INFOs) carry no digit; a DTMF body without a valid key is an error.
fn info_digit(content_type: &str, body: &[u8]) -> Result<Option<char>, &'static str> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| "Bad DTMF Body")?;
    let key = match ct.as_str() {
        "application/dtmf-relay" => text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("signal")
                    .then(|| v.trim().to_string())
            })
            .ok_or("Missing DTMF Signal")?,
        "application/dtmf" => text.trim().to_string(),
        _ => return Ok(None),
    };
    let key = match key.as_str() {
        "10" => "*".to_string(),
        "11" => "#".to_string(),
        k => k.to_ascii_uppercase(),
    };
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if "0123456789*#ABCD".contains(c) => Ok(Some(c)),
        _ => Err("Bad DTMF Signal"),
    }
}

#[cfg(test)]
mod info_tests {
    #[test]
    fn info_dtmf_bodies() {
        use super::info_digit;
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Ok(Some('5'))
        );
        assert_eq!(
            info_digit("Application/DTMF-Relay", b"Signal= #\nDuration= 250"),
            Ok(Some('#'))
        );
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=11\r\n"),
            Ok(Some('#'))
        );
        assert_eq!(info_digit("application/dtmf", b"7"), Ok(Some('7')));
        assert_eq!(info_digit("application/dtmf", b"d"), Ok(Some('D')));
        assert_eq!(
            info_digit("application/broadsoft", b"event flashhook"),
            Ok(None)
        );
        assert_eq!(info_digit("", b""), Ok(None));
        assert!(info_digit("application/dtmf-relay", b"Duration=160").is_err());
        assert!(info_digit("application/dtmf-relay", b"Signal=55").is_err());
        assert!(info_digit("application/dtmf", b"\xff").is_err());
    }
}
