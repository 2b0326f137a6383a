//! The transaction layer (RFC 3261 section 17, with RFC 6026's Accepted state), sans-IO.
//!
//! Four state machines (INVITE and non-INVITE, client and server) keyed by branch, with
//! the RFC 2543 fallback key for branches without the magic cookie. Every timer of
//! RFC 3261 (A to K) and RFC 6026 (L, M) is an entry in one deadline map; the layer never
//! reads the clock: callers pass `now`, then drain `poll_transmit`, `poll_event` and
//! `poll_timeout`.
//!
//! The layer also retransmits a 2xx to INVITE over UDP until the ACK arrives (the job
//! RFC 3261 13.3.1.4 gives the UAS core), because it already owns the timers for it.

use super::addr::{response_peer, Peer};
use super::header::HeaderName;
use super::message::{Message, Method};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Timer C (proxy INVITE timeout, > 3 min); used for our outbound INVITEs.
    pub timer_c: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_c: Duration::from_secs(180),
        }
    }
}

/// Transaction key: the branch (with sent-by for servers) plus the method, ACK folded
/// into INVITE; or, for RFC 2543 peers, the fields of RFC 3261 17.2.3's fallback.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey(pub String);

impl TxKey {
    pub fn server(req: &Message) -> Option<TxKey> {
        let via = req.top_via()?;
        let method = match req.method()? {
            Method::Ack => "INVITE",
            m => m.as_str(),
        };
        match via.branch() {
            Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => Some(TxKey(format!(
                "s|{}|{}:{}|{}",
                b,
                via.host,
                via.port.unwrap_or(0),
                method
            ))),
            _ => {
                // RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq, top Via.
                let (n, _) = req.cseq()?;
                let to_tag = if *req.method()? == Method::Ack {
                    ""
                } else {
                    req.to_tag().unwrap_or("")
                };
                Some(TxKey(format!(
                    "s2543|{}|{}|{}|{}|{}|{}|{}",
                    req.request_uri()?,
                    to_tag,
                    req.from_tag().unwrap_or(""),
                    req.call_id(),
                    n,
                    method,
                    req.header_str(&HeaderName::Via)
                        .unwrap_or("")
                        .split(',')
                        .next()
                        .unwrap_or("")
                )))
            }
        }
    }

    /// The key of the INVITE a CANCEL refers to (same branch and sent-by).
    pub fn invite_of_cancel(cancel: &Message) -> Option<TxKey> {
        let mut inv = cancel.clone();
        if let super::message::StartLine::Request { method, .. } = &mut inv.start {
            *method = Method::Invite;
        }
        if let Some((n, _)) = cancel.cseq() {
            inv.set(HeaderName::CSeq, format!("{n} INVITE"));
        }
        TxKey::server(&inv)
    }

    pub fn client(branch: &str, method: &Method) -> TxKey {
        let m = match method {
            Method::Ack => "INVITE",
            m => m.as_str(),
        };
        TxKey(format!("c|{branch}|{m}"))
    }

    pub fn client_of_response(resp: &Message) -> Option<TxKey> {
        let via = resp.top_via()?;
        let (_, m) = resp.cseq()?;
        Some(TxKey::client(via.branch()?, &m))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    /// 2xx retransmission to INVITE over UDP (RFC 3261 13.3.1.4).
    Retransmit2xx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: State,
    peer: Peer,
    /// Client: the request (for retransmission). Server: the request received.
    request: Message,
    request_bytes: Bytes,
    /// Server: the last response sent, serialized.
    last_response: Option<Bytes>,
    /// Client INVITE: the ACK sent for a non-2xx final response.
    ack: Option<Bytes>,
    /// Current retransmit interval (A, E, G, 2xx).
    interval: Duration,
    timers: Vec<(TimerKind, Instant, u64)>,
}

/// A datagram or stream write the driver must perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub data: Bytes,
}

/// What the transaction user is told.
#[derive(Debug, Clone)]
pub enum TxEvent {
    /// A client transaction got a response (provisional, final or 2xx retransmission).
    Response { key: TxKey, response: Message },
    /// A client transaction timed out (Timer B or F) or hit Timer C.
    Timeout { key: TxKey, timer: TimerKind },
    /// A server INVITE transaction sent a 2xx and no ACK came within 64*T1.
    AckTimeout { key: TxKey },
    /// A server INVITE transaction got a CANCEL-able final response sent; kept for metrics.
    Terminated { key: TxKey },
}

/// What became of an incoming request.
#[derive(Debug)]
pub enum Incoming {
    /// A new server transaction; the TU must answer it with `respond`.
    New(TxKey),
    /// A retransmission, absorbed (the last response, if any, was sent again).
    Absorbed,
    /// An ACK to a non-2xx final response: absorbed by its transaction.
    AckAbsorbed,
    /// An ACK for a 2xx (its own transaction at the TU, RFC 3261 17.1.1.3); the 2xx
    /// retransmissions for that INVITE have been stopped.
    AckFor2xx,
    /// Same From tag, Call-ID and CSeq as a request in progress but another branch:
    /// a merged request (RFC 3261 8.2.2.2); answer 482.
    Merged,
    /// Not matched and not answerable (e.g. no Via).
    Invalid,
}

/// Counters the metrics endpoint reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxStats {
    pub server_created: u64,
    pub client_created: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
}

pub struct TransactionLayer {
    cfg: TimerConfig,
    txs: HashMap<TxKey, Tx>,
    deadlines: BTreeMap<(Instant, u64), (TxKey, TimerKind)>,
    seq: u64,
    /// (Call-ID, CSeq number) of INVITEs answered 2xx and awaiting ACK.
    awaiting_ack: HashMap<(String, u32), TxKey>,
    /// (From tag, Call-ID, CSeq) of server requests without To tag, for merge detection.
    merge_index: HashMap<(String, String, u32, String), TxKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    pub stats: TxStats,
}

impl TransactionLayer {
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg,
            txs: HashMap::new(),
            deadlines: BTreeMap::new(),
            seq: 0,
            awaiting_ack: HashMap::new(),
            merge_index: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: TxStats::default(),
        }
    }

    pub fn config(&self) -> &TimerConfig {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn state(&self, key: &TxKey) -> Option<State> {
        self.txs.get(key).map(|t| t.state)
    }

    pub fn request(&self, key: &TxKey) -> Option<&Message> {
        self.txs.get(key).map(|t| &t.request)
    }

    pub fn peer(&self, key: &TxKey) -> Option<Peer> {
        self.txs.get(key).map(|t| t.peer)
    }

    fn arm(&mut self, key: &TxKey, kind: TimerKind, at: Instant) {
        self.disarm(key, kind);
        self.seq += 1;
        let seq = self.seq;
        if let Some(tx) = self.txs.get_mut(key) {
            tx.timers.push((kind, at, seq));
            self.deadlines.insert((at, seq), (key.clone(), kind));
        }
    }

    fn disarm(&mut self, key: &TxKey, kind: TimerKind) {
        if let Some(tx) = self.txs.get_mut(key) {
            if let Some(i) = tx.timers.iter().position(|(k, _, _)| *k == kind) {
                let (_, at, seq) = tx.timers.swap_remove(i);
                self.deadlines.remove(&(at, seq));
            }
        }
    }

    /// Drops a server transaction the core answered statelessly (or not at all):
    /// no state, no retransmissions.
    pub fn forget(&mut self, key: &TxKey) {
        self.terminate(key)
    }

    fn terminate(&mut self, key: &TxKey) {
        if let Some(tx) = self.txs.remove(key) {
            for (_, at, seq) in &tx.timers {
                self.deadlines.remove(&(*at, *seq));
            }
            if tx.kind == Kind::ServerInvite {
                if let Some((n, _)) = tx.request.cseq() {
                    let k = (tx.request.call_id().to_string(), n);
                    if self.awaiting_ack.get(&k) == Some(key) {
                        self.awaiting_ack.remove(&k);
                    }
                }
            }
            if matches!(tx.kind, Kind::ServerInvite | Kind::ServerNonInvite) {
                if let Some(mk) = merge_key(&tx.request) {
                    if self.merge_index.get(&mk) == Some(key) {
                        self.merge_index.remove(&mk);
                    }
                }
            }
            self.events
                .push_back(TxEvent::Terminated { key: key.clone() });
        }
    }

    fn send(&mut self, to: Peer, data: Bytes) {
        self.transmits.push_back(Transmit { to, data });
    }

    // ---------------------------------------------------------------- server side

    /// Feeds a request received from `source`.
    pub fn on_request(&mut self, now: Instant, req: Message, source: Peer) -> Incoming {
        let Some(key) = TxKey::server(&req) else {
            return Incoming::Invalid;
        };
        let method = req
            .method()
            .cloned()
            .unwrap_or(Method::Other(String::new()));
        if let Some(tx) = self.txs.get_mut(&key) {
            if method == Method::Ack {
                if tx.kind == Kind::ServerInvite && tx.state == State::Completed {
                    tx.state = State::Confirmed;
                    let peer_reliable = tx.peer.transport.reliable();
                    self.disarm(&key, TimerKind::G);
                    self.disarm(&key, TimerKind::H);
                    let wait = if peer_reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    self.arm(&key, TimerKind::I, now + wait);
                    return Incoming::AckAbsorbed;
                }
                if tx.kind == Kind::ServerInvite && tx.state == State::Confirmed {
                    return Incoming::AckAbsorbed;
                }
                // ACK with the INVITE's branch but for a 2xx (RFC 2543 style peers).
            } else {
                // Retransmission: resend the last response (RFC 3261 17.2.1, 17.2.2).
                if let Some(r) = tx.last_response.clone() {
                    let to = tx.peer;
                    self.stats.retransmissions += 1;
                    self.send(to, r);
                }
                return Incoming::Absorbed;
            }
        }
        if method == Method::Ack {
            if let Some((n, _)) = req.cseq() {
                if let Some(k) = self.awaiting_ack.remove(&(req.call_id().to_string(), n)) {
                    self.disarm(&k, TimerKind::Retransmit2xx);
                    self.disarm(&k, TimerKind::L);
                    // Keep absorbing INVITE retransmissions until Timer L, without 2xx resends.
                    if let Some(tx) = self.txs.get_mut(&k) {
                        tx.last_response = None;
                    }
                    self.arm(&k, TimerKind::L, now + self.cfg.t1 * 64);
                }
            }
            return Incoming::AckFor2xx;
        }
        if let Some(mk) = merge_key(&req) {
            if let Some(other) = self.merge_index.get(&mk) {
                if *other != key && self.txs.contains_key(other) {
                    return Incoming::Merged;
                }
            }
            self.merge_index.insert(mk, key.clone());
        }
        let peer = response_peer(req.top_via().as_ref(), source);
        let kind = if method == Method::Invite {
            Kind::ServerInvite
        } else {
            Kind::ServerNonInvite
        };
        let tx = Tx {
            kind,
            state: if kind == Kind::ServerInvite {
                State::Proceeding
            } else {
                State::Trying
            },
            peer,
            request_bytes: Bytes::new(),
            request: req,
            last_response: None,
            ack: None,
            interval: self.cfg.t1,
            timers: Vec::new(),
        };
        self.txs.insert(key.clone(), tx);
        self.stats.server_created += 1;
        // No 100 Trying here: the core sends it once it has checked the request (RFC
        // 3261 17.2.1 lets the TU answer within 200 ms; the core answers at once).
        let _ = now;
        Incoming::New(key)
    }

    /// Sends a response on a server transaction.
    pub fn respond(&mut self, now: Instant, key: &TxKey, resp: Message) -> bool {
        let Some(code) = resp.status() else {
            return false;
        };
        let Some(tx) = self.txs.get_mut(key) else {
            return false;
        };
        let data = resp.to_bytes();
        let peer = tx.peer;
        let reliable = peer.transport.reliable();
        match (tx.kind, tx.state) {
            (Kind::ServerInvite, State::Proceeding) => {
                tx.last_response = Some(data.clone());
                self.send(peer, data);
                if code >= 300 {
                    let tx = self.txs.get_mut(key).unwrap();
                    tx.state = State::Completed;
                    tx.interval = self.cfg.t1;
                    if !reliable {
                        self.arm(key, TimerKind::G, now + self.cfg.t1);
                    }
                    self.arm(key, TimerKind::H, now + self.cfg.t1 * 64);
                } else if code >= 200 {
                    let tx = self.txs.get_mut(key).unwrap();
                    tx.state = State::Accepted;
                    tx.interval = self.cfg.t1;
                    if let Some((n, _)) = tx.request.cseq() {
                        self.awaiting_ack
                            .insert((tx.request.call_id().to_string(), n), key.clone());
                    }
                    if !reliable {
                        self.arm(key, TimerKind::Retransmit2xx, now + self.cfg.t1);
                    }
                    self.arm(key, TimerKind::L, now + self.cfg.t1 * 64);
                }
                true
            }
            (Kind::ServerInvite, State::Accepted) if (200..300).contains(&code) => {
                self.send(peer, data);
                true
            }
            (Kind::ServerNonInvite, State::Trying | State::Proceeding) => {
                tx.last_response = Some(data.clone());
                self.send(peer, data);
                let tx = self.txs.get_mut(key).unwrap();
                if code >= 200 {
                    tx.state = State::Completed;
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t1 * 64
                    };
                    self.arm(key, TimerKind::J, now + wait);
                } else {
                    tx.state = State::Proceeding;
                }
                true
            }
            _ => false,
        }
    }

    // ---------------------------------------------------------------- client side

    /// Starts a client transaction for `req` (which must carry its Via with a fresh
    /// branch) towards `peer`. ACK for 2xx is not a transaction: use [`send_stateless`].
    pub fn send_request(&mut self, now: Instant, req: Message, peer: Peer) -> Option<TxKey> {
        let via = req.top_via()?;
        let method = req.method()?.clone();
        let key = TxKey::client(via.branch()?, &method);
        let data = req.to_bytes();
        let kind = if method == Method::Invite {
            Kind::ClientInvite
        } else {
            Kind::ClientNonInvite
        };
        let tx = Tx {
            kind,
            state: if kind == Kind::ClientInvite {
                State::Calling
            } else {
                State::Trying
            },
            peer,
            request: req,
            request_bytes: data.clone(),
            last_response: None,
            ack: None,
            interval: self.cfg.t1,
            timers: Vec::new(),
        };
        self.txs.insert(key.clone(), tx);
        self.stats.client_created += 1;
        self.send(peer, data);
        let t1 = self.cfg.t1;
        if kind == Kind::ClientInvite {
            if !peer.transport.reliable() {
                self.arm(&key, TimerKind::A, now + t1);
            }
            self.arm(&key, TimerKind::B, now + t1 * 64);
        } else {
            if !peer.transport.reliable() {
                self.arm(&key, TimerKind::E, now + t1);
            }
            self.arm(&key, TimerKind::F, now + t1 * 64);
        }
        Some(key)
    }

    /// Sends without a transaction (ACK for 2xx, stateless replies).
    pub fn send_stateless(&mut self, peer: Peer, msg: &Message) {
        self.send(peer, msg.to_bytes());
    }

    /// Feeds a response. Returns true when it matched a client transaction.
    pub fn on_response(&mut self, now: Instant, resp: Message) -> bool {
        let Some(key) = TxKey::client_of_response(&resp) else {
            return false;
        };
        let Some(code) = resp.status() else {
            return false;
        };
        let Some(tx) = self.txs.get_mut(&key) else {
            return false;
        };
        let reliable = tx.peer.transport.reliable();
        let peer = tx.peer;
        match (tx.kind, tx.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                self.disarm(&key, TimerKind::A);
                if code < 200 {
                    let tx = self.txs.get_mut(&key).unwrap();
                    tx.state = State::Proceeding;
                    self.arm(&key, TimerKind::C, now + self.cfg.timer_c);
                } else if code < 300 {
                    let tx = self.txs.get_mut(&key).unwrap();
                    tx.state = State::Accepted;
                    self.disarm(&key, TimerKind::B);
                    self.disarm(&key, TimerKind::C);
                    self.arm(&key, TimerKind::M, now + self.cfg.t1 * 64);
                } else {
                    let tx = self.txs.get_mut(&key).unwrap();
                    let ack = ack_for_non2xx(&tx.request, &resp).to_bytes();
                    tx.ack = Some(ack.clone());
                    tx.state = State::Completed;
                    self.send(peer, ack);
                    self.disarm(&key, TimerKind::B);
                    self.disarm(&key, TimerKind::C);
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    self.arm(&key, TimerKind::D, now + wait);
                }
                self.events.push_back(TxEvent::Response {
                    key,
                    response: resp,
                });
                true
            }
            (Kind::ClientInvite, State::Accepted) => {
                if (200..300).contains(&code) {
                    self.events.push_back(TxEvent::Response {
                        key,
                        response: resp,
                    });
                }
                true
            }
            (Kind::ClientInvite, State::Completed) => {
                // Retransmitted final response: resend the ACK, tell nobody.
                if let Some(a) = self.txs.get(&key).and_then(|t| t.ack.clone()) {
                    self.send(peer, a);
                }
                true
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if code < 200 {
                    let tx = self.txs.get_mut(&key).unwrap();
                    tx.state = State::Proceeding;
                } else {
                    let tx = self.txs.get_mut(&key).unwrap();
                    tx.state = State::Completed;
                    self.disarm(&key, TimerKind::E);
                    self.disarm(&key, TimerKind::F);
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    self.arm(&key, TimerKind::K, now + wait);
                }
                self.events.push_back(TxEvent::Response {
                    key,
                    response: resp,
                });
                true
            }
            _ => true,
        }
    }

    // ---------------------------------------------------------------- timers

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(t, _)| *t)
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((&(at, seq), _)) = self.deadlines.iter().next() {
            if at > now {
                break;
            }
            let (key, kind) = self.deadlines.remove(&(at, seq)).unwrap();
            if let Some(tx) = self.txs.get_mut(&key) {
                tx.timers.retain(|&(_, _, s)| s != seq);
            }
            self.fire(at, &key, kind);
        }
    }

    fn fire(&mut self, now: Instant, key: &TxKey, kind: TimerKind) {
        let t2 = self.cfg.t2;
        let Some(tx) = self.txs.get_mut(key) else {
            return;
        };
        match kind {
            TimerKind::A => {
                if tx.state == State::Calling {
                    let (p, d) = (tx.peer, tx.request_bytes.clone());
                    tx.interval *= 2;
                    let next = now + tx.interval;
                    self.stats.retransmissions += 1;
                    self.send(p, d);
                    self.arm(key, TimerKind::A, next);
                }
            }
            TimerKind::E => {
                if matches!(tx.state, State::Trying | State::Proceeding) {
                    let (p, d) = (tx.peer, tx.request_bytes.clone());
                    tx.interval = if tx.state == State::Proceeding {
                        t2
                    } else {
                        (tx.interval * 2).min(t2)
                    };
                    let next = now + tx.interval;
                    self.stats.retransmissions += 1;
                    self.send(p, d);
                    self.arm(key, TimerKind::E, next);
                }
            }
            TimerKind::G => {
                if tx.state == State::Completed {
                    if let Some(r) = tx.last_response.clone() {
                        let p = tx.peer;
                        tx.interval = (tx.interval * 2).min(t2);
                        let next = now + tx.interval;
                        self.stats.retransmissions += 1;
                        self.send(p, r);
                        self.arm(key, TimerKind::G, next);
                    }
                }
            }
            TimerKind::Retransmit2xx => {
                if tx.state == State::Accepted {
                    if let Some(r) = tx.last_response.clone() {
                        let p = tx.peer;
                        tx.interval = (tx.interval * 2).min(t2);
                        let next = now + tx.interval;
                        self.stats.retransmissions += 1;
                        self.send(p, r);
                        self.arm(key, TimerKind::Retransmit2xx, next);
                    }
                }
            }
            TimerKind::B | TimerKind::F => {
                self.stats.timeouts += 1;
                self.events.push_back(TxEvent::Timeout {
                    key: key.clone(),
                    timer: kind,
                });
                self.terminate(key);
            }
            TimerKind::C => {
                self.events.push_back(TxEvent::Timeout {
                    key: key.clone(),
                    timer: kind,
                });
            }
            TimerKind::H => {
                // No ACK for our non-2xx final response.
                self.stats.timeouts += 1;
                self.terminate(key);
            }
            TimerKind::L => {
                let awaiting = tx.last_response.is_some();
                if awaiting {
                    self.stats.timeouts += 1;
                    self.events
                        .push_back(TxEvent::AckTimeout { key: key.clone() });
                }
                self.terminate(key);
            }
            TimerKind::D | TimerKind::I | TimerKind::J | TimerKind::K | TimerKind::M => {
                self.terminate(key)
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }
}

fn merge_key(req: &Message) -> Option<(String, String, u32, String)> {
    if req.to_tag().is_some() {
        return None;
    }
    let (n, m) = req.cseq()?;
    Some((
        req.from_tag()?.to_string(),
        req.call_id().to_string(),
        n,
        m.as_str().to_string(),
    ))
}

/// ACK for a non-2xx final response (RFC 3261 17.1.1.3): same Request-URI, Call-ID,
/// From, top Via and Route as the INVITE, To from the response, CSeq method ACK.
pub fn ack_for_non2xx(invite: &Message, resp: &Message) -> Message {
    let mut ack = Message::request(Method::Ack, invite.request_uri().unwrap_or(""));
    if let Some(v) = invite.list_values(&HeaderName::Via).first() {
        ack.push(HeaderName::Via, v.to_string());
    }
    ack.push(HeaderName::MaxForwards, "70");
    if let Some(f) = invite.header_str(&HeaderName::From) {
        ack.push(HeaderName::From, f);
    }
    if let Some(t) = resp.header_str(&HeaderName::To) {
        ack.push(HeaderName::To, t);
    }
    ack.push(HeaderName::CallId, invite.call_id());
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    ack.push(HeaderName::CSeq, format!("{n} ACK"));
    for r in invite.headers_named(&HeaderName::Route) {
        ack.headers.push(r.clone());
    }
    ack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Framing;
    use std::net::SocketAddr;

    fn peer() -> Peer {
        Peer::udp("127.0.0.1:5070".parse::<SocketAddr>().unwrap())
    }

    fn invite(branch: &str) -> Message {
        let s = format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:a@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Datagram).unwrap()
    }

    fn drain(l: &mut TransactionLayer) -> Vec<Transmit> {
        std::iter::from_fn(|| l.poll_transmit()).collect()
    }

    #[test]
    fn timer_b_fires_after_64_t1_without_sleeping() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let key = l.send_request(t0, invite("z9hG4bKb1"), peer()).unwrap();
        assert_eq!(drain(&mut l).len(), 1);
        // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (Timer A doubling).
        let mut sent = 0;
        let mut now = t0;
        while let Some(t) = l.poll_timeout() {
            now = t;
            l.handle_timeout(now);
            sent += drain(&mut l).len();
            if l.state(&key).is_none() {
                break;
            }
        }
        assert_eq!(now - t0, Duration::from_secs(32), "Timer B = 64*T1");
        assert_eq!(sent, 6);
        let ev: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert!(ev.iter().any(|e| matches!(
            e,
            TxEvent::Timeout {
                timer: TimerKind::B,
                ..
            }
        )));
    }

    #[test]
    fn server_invite_retransmits_2xx_until_ack() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let req = invite("z9hG4bKs1");
        let Incoming::New(key) = l.on_request(t0, req.clone(), peer()) else {
            panic!()
        };
        assert!(
            drain(&mut l).is_empty(),
            "the core sends 100 Trying, not the layer"
        );
        let ok = Message::response_to(&req, 200, "OK", Some("tt"));
        assert!(l.respond(t0, &key, ok));
        assert_eq!(drain(&mut l).len(), 1);
        // 2xx goes again at 0.5, 1.5, 3.5 s.
        for at in [500, 1500, 3500] {
            let t = l.poll_timeout().unwrap();
            assert_eq!(t - t0, Duration::from_millis(at));
            l.handle_timeout(t);
            let tx = drain(&mut l);
            assert_eq!(tx.len(), 1);
            assert!(String::from_utf8_lossy(&tx[0].data).starts_with("SIP/2.0 200 OK"));
        }
        // A retransmitted INVITE is absorbed and answered with the 2xx again.
        assert!(matches!(
            l.on_request(t0 + Duration::from_secs(4), req.clone(), peer()),
            Incoming::Absorbed
        ));
        assert_eq!(drain(&mut l).len(), 1);
        let ack = Message::parse(
            Bytes::from_static(b"ACK sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKack\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:100@127.0.0.1>;tag=tt\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"),
            Framing::Datagram,
        )
        .unwrap();
        assert!(matches!(
            l.on_request(t0 + Duration::from_secs(4), ack, peer()),
            Incoming::AckFor2xx
        ));
        // No more 2xx after the ACK; the transaction ends at Timer L.
        let mut now = t0 + Duration::from_secs(4);
        while let Some(t) = l.poll_timeout() {
            now = t;
            l.handle_timeout(t);
            assert!(drain(&mut l).is_empty());
        }
        assert!(l.state(&key).is_none());
        assert!(now - t0 >= Duration::from_secs(32));
        let ev: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert!(!ev.iter().any(|e| matches!(e, TxEvent::AckTimeout { .. })));
    }

    #[test]
    fn no_ack_for_2xx_reports_ack_timeout() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let req = invite("z9hG4bKs2");
        let Incoming::New(key) = l.on_request(t0, req.clone(), peer()) else {
            panic!()
        };
        l.respond(t0, &key, Message::response_to(&req, 200, "OK", Some("t")));
        while let Some(t) = l.poll_timeout() {
            l.handle_timeout(t);
        }
        let ev: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert!(ev.iter().any(|e| matches!(e, TxEvent::AckTimeout { .. })));
        assert_eq!(
            drain(&mut l).len(),
            1 + 10,
            "200 and 10 retransmissions (T1 doubling, capped at T2) within 32 s"
        );
    }

    #[test]
    fn non2xx_final_retransmits_until_ack_then_confirmed() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let req = invite("z9hG4bKs3");
        let Incoming::New(key) = l.on_request(t0, req.clone(), peer()) else {
            panic!()
        };
        l.respond(
            t0,
            &key,
            Message::response_to(&req, 486, "Busy Here", Some("t")),
        );
        drain(&mut l);
        let t = l.poll_timeout().unwrap();
        l.handle_timeout(t);
        assert_eq!(drain(&mut l).len(), 1, "Timer G retransmits the 486");
        let ack = Message::parse(
            Bytes::from_static(b"ACK sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKs3\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:100@127.0.0.1>;tag=t\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"),
            Framing::Datagram,
        )
        .unwrap();
        assert!(matches!(
            l.on_request(t, ack, peer()),
            Incoming::AckAbsorbed
        ));
        assert_eq!(l.state(&key), Some(State::Confirmed));
        let ti = l.poll_timeout().unwrap();
        assert_eq!(ti - t, Duration::from_secs(5), "Timer I = T4");
        l.handle_timeout(ti);
        assert!(l.state(&key).is_none());
    }

    #[test]
    fn client_invite_acks_non2xx_and_absorbs_retransmissions() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let req = invite("z9hG4bKc4");
        let key = l.send_request(t0, req.clone(), peer()).unwrap();
        drain(&mut l);
        let resp = Message::response_to(&req, 503, "Service Unavailable", Some("r"));
        assert!(l.on_response(t0, resp.clone()));
        let out = drain(&mut l);
        assert!(String::from_utf8_lossy(&out[0].data).starts_with("ACK sip:100@127.0.0.1"));
        assert!(l.on_response(t0, resp));
        assert_eq!(drain(&mut l).len(), 1, "ACK sent again");
        let ev: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, TxEvent::Response { .. }))
                .count(),
            1
        );
        let td = l.poll_timeout().unwrap();
        assert_eq!(td - t0, Duration::from_secs(32), "Timer D");
        l.handle_timeout(td);
        assert!(l.state(&key).is_none());
    }

    #[test]
    fn non_invite_client_timer_e_caps_at_t2_and_f_times_out() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let mut req = invite("z9hG4bKc5");
        req.start = crate::sip::StartLine::Request {
            method: Method::Options,
            uri: Bytes::from_static(b"sip:x"),
        };
        req.set(HeaderName::CSeq, "1 OPTIONS");
        l.send_request(t0, req, peer()).unwrap();
        drain(&mut l);
        let mut times = Vec::new();
        while let Some(t) = l.poll_timeout() {
            l.handle_timeout(t);
            if !drain(&mut l).is_empty() {
                times.push((t - t0).as_millis());
            }
        }
        assert_eq!(&times[..5], &[500, 1500, 3500, 7500, 11500]);
        let ev: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert!(ev.iter().any(|e| matches!(
            e,
            TxEvent::Timeout {
                timer: TimerKind::F,
                ..
            }
        )));
    }

    #[test]
    fn retransmitted_request_absorbed_and_merged_request_detected() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let req = invite("z9hG4bKm1");
        assert!(matches!(
            l.on_request(t0, req.clone(), peer()),
            Incoming::New(_)
        ));
        assert!(matches!(
            l.on_request(t0, req.clone(), peer()),
            Incoming::Absorbed
        ));
        let other = invite("z9hG4bKm2");
        assert!(matches!(l.on_request(t0, other, peer()), Incoming::Merged));
    }

    #[test]
    fn rfc2543_fallback_matching() {
        let mut l = TransactionLayer::new(TimerConfig::default());
        let t0 = crate::clock::now();
        let req = invite("oldbranch");
        assert!(matches!(
            l.on_request(t0, req.clone(), peer()),
            Incoming::New(_)
        ));
        assert!(matches!(l.on_request(t0, req, peer()), Incoming::Absorbed));
    }
}
