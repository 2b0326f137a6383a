//! The registrar (RFC 3261 section 10): digest-authenticated REGISTER, several contacts
//! per address of record, expiry, unregister (`Expires: 0`, `Contact: *`), and a
//! per-source throttle on authentication failures. Sans-IO: `now` is passed in and the
//! answer is returned as a message.
//!
//! A wrong password and an unknown user get the same 403, after the same work, so
//! extensions cannot be enumerated.
//!
//! Only a wrong answer to a nonce we issued to that very address counts as a failure,
//! so forged datagrams from a spoofed address (which never see our challenges) cannot
//! lock anyone out. After `max_failures` in `fail_window` for one (address, user), that
//! pair's next answer waits (1 s, doubling up to `block_for`), one request at a time,
//! and is then checked as usual: the right password still gets in, guessing slows to
//! a crawl, and nobody else (another user at the same NAT, the same user elsewhere)
//! is touched.

use super::addr::Peer;
use super::auth::{Algorithm, NonceIssuer, Verdict};
use super::header::{parse_contacts, ContactValue, DigestParams, HeaderName};
use super::message::Message;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: String,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: requests to this contact go there (NAT traversal
    /// and connection reuse, as RFC 5626 outbound does without the flow tokens).
    pub source: Peer,
}

#[derive(Debug, Clone, Copy)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Failures from one source address within `fail_window` before it is throttled.
    pub max_failures: u32,
    pub fail_window: Duration,
    pub block_for: Duration,
    /// The wall clock (Unix seconds) at the registrar's `epoch`: the Date header of a
    /// 200 is this plus the time since (wall-clock time is an input, like `now`).
    pub unix_at_epoch: u64,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_failures: 10,
            fail_window: Duration::from_secs(60),
            block_for: Duration::from_secs(60),
            unix_at_epoch: 0,
        }
    }
}

#[derive(Debug, Default)]
struct FailState {
    count: u32,
    window_start: Option<Instant>,
    /// Answers wait until then.
    delay_until: Option<Instant>,
    /// The current delay (doubles while failures go on).
    delay: Duration,
    /// A request of this pair is waiting: others are dropped meanwhile.
    parked: bool,
}

/// How many (address, user) pairs with failures are remembered.
pub const MAX_FAIL_STATES: usize = 10_000;

/// Result of an authentication check shared by REGISTER and INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated as this user.
    User(String),
    /// Send this challenge (401/407) with these header values.
    Challenge(Vec<String>),
    /// 403 (wrong password or unknown user, indistinguishable; or unusable credentials).
    Forbidden,
    /// Throttled: hold the request and authenticate it again at this instant.
    Delay(Instant),
    /// Throttled, and a request of this pair is already held: drop this one.
    Drop,
}

pub struct Registrar {
    pub cfg: RegistrarConfig,
    pub realm: String,
    nonces: NonceIssuer,
    bindings: HashMap<String, Vec<Binding>>,
    failures: HashMap<(IpAddr, String), FailState>,
    epoch: Instant,
    /// Challenge algorithms in preference order (one WWW-Authenticate each, RFC 8760).
    algorithms: Vec<Algorithm>,
}

impl Registrar {
    pub fn new(cfg: RegistrarConfig, realm: &str, secret: [u8; 32], epoch: Instant) -> Self {
        Registrar {
            cfg,
            realm: realm.to_string(),
            nonces: NonceIssuer::new(secret),
            bindings: HashMap::new(),
            failures: HashMap::new(),
            epoch,
            algorithms: vec![Algorithm::Md5],
        }
    }

    fn secs(&self, now: Instant) -> u64 {
        // Offset so that nonces issued in the first seconds are not zero.
        now.saturating_duration_since(self.epoch).as_secs() + 1_000_000
    }

    /// Whether answers from `ip` as `user` are being delayed.
    pub fn is_throttled(&self, now: Instant, ip: IpAddr, user: &str) -> bool {
        self.failures
            .get(&(ip, user.to_string()))
            .and_then(|f| f.delay_until)
            .is_some_and(|t| now < t)
    }

    /// How many (address, user) pairs are remembered for throttling.
    pub fn failure_states(&self) -> usize {
        self.failures.len()
    }

    fn record_failure(&mut self, now: Instant, key: (IpAddr, String)) {
        let cfg = self.cfg;
        if self.failures.len() >= MAX_FAIL_STATES && !self.failures.contains_key(&key) {
            // Forget pairs whose window and delay are over; if none, the oldest.
            self.failures.retain(|_, f| {
                f.parked
                    || f.delay_until.is_some_and(|t| t > now)
                    || f.window_start
                        .is_some_and(|w| now.duration_since(w) <= cfg.fail_window)
            });
            if self.failures.len() >= MAX_FAIL_STATES {
                let oldest = self
                    .failures
                    .iter()
                    .filter(|(_, f)| !f.parked)
                    .min_by_key(|(_, f)| f.window_start)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => {
                        self.failures.remove(&k);
                    }
                    None => return,
                }
            }
        }
        let f = self.failures.entry(key).or_default();
        let in_window = f
            .window_start
            .is_some_and(|ws| now.saturating_duration_since(ws) <= cfg.fail_window);
        // A pair that was being delayed stays so while its failures go on.
        let delayed_lately = f
            .delay_until
            .is_some_and(|t| now.saturating_duration_since(t) <= cfg.fail_window);
        if in_window || delayed_lately {
            f.count = f.count.saturating_add(1);
        } else {
            f.window_start = Some(now);
            f.count = 1;
            f.delay = Duration::ZERO;
        }
        if f.count >= cfg.max_failures {
            f.delay = (f.delay * 2).clamp(Duration::from_secs(1), cfg.block_for);
            f.delay_until = Some(now + f.delay);
        }
    }

    /// Checks `Authorization` (or `Proxy-Authorization` when `proxy`) on `req`.
    /// `password_of` looks a user up (None: unknown user).
    pub fn authenticate(
        &mut self,
        now: Instant,
        req: &Message,
        source: Peer,
        proxy: bool,
        password_of: &dyn Fn(&str) -> Option<String>,
    ) -> AuthOutcome {
        let ip = source.addr.ip();
        let hname = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let method = req
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let secs = self.secs(now);
        let creds = req
            .headers_named(&hname)
            .filter_map(|h| DigestParams::parse(h.value_str()))
            .find(|c| c.get("realm") == Some(self.realm.as_str()));
        let Some(creds) = creds else {
            return AuthOutcome::Challenge(self.challenges(secs, ip, false));
        };
        let user: String = creds
            .get("username")
            .unwrap_or("")
            .chars()
            .take(128)
            .collect();
        let key = (ip, user.clone());
        if let Some(f) = self.failures.get_mut(&key) {
            match f.delay_until {
                Some(t) if now < t && f.parked => return AuthOutcome::Drop,
                Some(t) if now < t => {
                    f.parked = true;
                    return AuthOutcome::Delay(t);
                }
                _ => f.parked = false,
            }
        }
        let pw = password_of(&user);
        let uri = req.request_uri().unwrap_or("");
        let verdict =
            self.nonces
                .verify(&creds, &method, uri, &self.realm, pw.as_deref(), ip, secs);
        tracing::debug!(%ip, %user, %method, ?verdict, digest_uri = creds.get("uri").unwrap_or(""), request_uri = uri, qop = creds.get("qop").unwrap_or(""), nc = creds.get("nc").unwrap_or(""), "digest checked");
        match verdict {
            Verdict::Ok => {
                self.failures.remove(&key);
                AuthOutcome::User(user)
            }
            Verdict::Stale => AuthOutcome::Challenge(self.challenges(secs, ip, true)),
            Verdict::Foreign => AuthOutcome::Challenge(self.challenges(secs, ip, false)),
            Verdict::Malformed => AuthOutcome::Forbidden,
            Verdict::Denied => {
                self.record_failure(now, key);
                AuthOutcome::Forbidden
            }
        }
    }

    /// Sets the challenges, in order. One MD5 challenge is the interoperable default:
    /// many phones (baresip 1.0, JsSIP, SIPp 3.6) answer only the first challenge, or
    /// give up on a SHA-256 one.
    pub fn set_algorithms(&mut self, algs: Vec<Algorithm>) {
        if !algs.is_empty() {
            self.algorithms = algs;
        }
    }

    fn challenges(&mut self, secs: u64, to: IpAddr, stale: bool) -> Vec<String> {
        let algs = self.algorithms.clone();
        algs.into_iter()
            .map(|a| self.nonces.challenge(&self.realm, a, secs, to, stale))
            .collect()
    }

    /// Handles an authenticated REGISTER for `user`; returns the final response.
    pub fn register(
        &mut self,
        now: Instant,
        req: &Message,
        source: Peer,
        user: &str,
        to_tag: &str,
    ) -> Message {
        let expires_hdr = req
            .header_str(&HeaderName::Expires)
            .and_then(super::header::parse_delta_seconds);
        let call_id = req.call_id().to_string();
        let cseq = req.cseq().map(|c| c.0).unwrap_or(0);
        let mut contacts = Vec::new();
        for h in req.headers_named(&HeaderName::Contact) {
            match parse_contacts(h.value_str()) {
                Ok(v) => contacts.extend(v),
                Err(e) => return Message::response_to(req, 400, e, Some(to_tag)),
            }
        }
        let cfg = self.cfg;
        let list = self.bindings.entry(user.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        if contacts.iter().any(|c| matches!(c, ContactValue::Star)) {
            if contacts.len() != 1 || expires_hdr != Some(0) {
                return Message::response_to(
                    req,
                    400,
                    "Contact * needs Expires: 0 and no other Contact",
                    Some(to_tag),
                );
            }
            list.retain(|b| b.call_id != call_id || b.cseq >= cseq);
            list.clear();
        }
        for c in &contacts {
            let ContactValue::Addr(na) = c else { continue };
            let uri = na.uri.raw.to_string();
            let exp = na
                .params
                .value("expires")
                .and_then(super::header::parse_delta_seconds)
                .or(expires_hdr)
                .unwrap_or(cfg.default_expires);
            if exp != 0 && exp < cfg.min_expires {
                let mut r = Message::response_to(req, 423, "Interval Too Brief", Some(to_tag));
                r.push(HeaderName::MinExpires, cfg.min_expires.to_string());
                return r;
            }
            let exp = exp.min(cfg.max_expires);
            if let Some(i) = list.iter().position(|b| b.contact == uri) {
                // RFC 3261 10.3 step 7: same Call-ID needs a higher CSeq.
                if list[i].call_id == call_id && list[i].cseq > cseq {
                    return Message::response_to(req, 500, "Out of order REGISTER", Some(to_tag));
                }
                list.remove(i);
            }
            if exp > 0 {
                list.push(Binding {
                    contact: uri,
                    expires_at: now + Duration::from_secs(exp as u64),
                    call_id: call_id.clone(),
                    cseq,
                    source,
                });
            }
        }
        let mut r = Message::response_to(req, 200, "OK", Some(to_tag));
        for b in list.iter() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            r.push(
                HeaderName::Contact,
                format!("<{}>;expires={left}", b.contact),
            );
        }
        let unix = self.cfg.unix_at_epoch + now.saturating_duration_since(self.epoch).as_secs();
        r.push(HeaderName::Date, crate::clock::format_http_date(unix));
        r
    }

    /// Current bindings for a user (expired ones dropped).
    pub fn lookup(&mut self, now: Instant, user: &str) -> Vec<Binding> {
        match self.bindings.get_mut(user) {
            Some(l) => {
                l.retain(|b| b.expires_at > now);
                l.clone()
            }
            None => Vec::new(),
        }
    }

    /// Whether a request from `source` comes from a registered phone: a live binding
    /// registered from exactly that address, or (a phone opening a new TCP or TLS
    /// connection) from that host by the user the request is `from`.
    pub fn registered_at(&self, now: Instant, source: Peer, from_user: Option<&str>) -> bool {
        let live = |b: &&Binding| b.expires_at > now;
        if self
            .bindings
            .values()
            .any(|l| l.iter().filter(live).any(|b| b.source.addr == source.addr))
        {
            return true;
        }
        from_user
            .and_then(|u| self.bindings.get(u))
            .is_some_and(|l| {
                l.iter()
                    .filter(live)
                    .any(|b| b.source.addr.ip() == source.addr.ip())
            })
    }

    /// Number of live bindings.
    pub fn count(&self, now: Instant) -> usize {
        self.bindings
            .values()
            .map(|l| l.iter().filter(|b| b.expires_at > now).count())
            .sum()
    }

    /// All live bindings (for keepalives).
    pub fn all(&self, now: Instant) -> Vec<(String, Binding)> {
        self.bindings
            .iter()
            .flat_map(|(u, l)| {
                l.iter()
                    .filter(|b| b.expires_at > now)
                    .map(move |b| (u.clone(), b.clone()))
            })
            .collect()
    }

    /// Drops one binding (its keepalive failed).
    pub fn drop_binding(&mut self, user: &str, contact: &str) {
        if let Some(l) = self.bindings.get_mut(user) {
            l.retain(|b| b.contact != contact);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::answer_challenge;
    use crate::sip::message::Framing;
    use bytes::Bytes;

    fn reg(extra: &str, contact: &str, cseq: u32) -> Message {
        let s = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{cseq}\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: reg1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Datagram).unwrap()
    }

    fn pw(u: &str) -> Option<String> {
        (u == "alice").then(|| "secret".to_string())
    }

    fn authed(r: &mut Registrar, now: Instant, req: &Message, user: &str, pass: &str) -> Message {
        authed_from(r, now, req, user, pass, peer())
    }

    /// Challenged from `from`, answered to the last challenge (SHA-256 when offered).
    fn authed_from(
        r: &mut Registrar,
        now: Instant,
        req: &Message,
        user: &str,
        pass: &str,
        from: Peer,
    ) -> Message {
        let AuthOutcome::Challenge(ch) = r.authenticate(now, req, from, false, &pw) else {
            panic!()
        };
        assert_eq!(ch.len(), r.algorithms.len());
        let a = answer_challenge(
            ch.last().unwrap(),
            "REGISTER",
            "sip:127.0.0.1",
            user,
            pass,
            "cn",
            1,
        )
        .unwrap();
        let mut req2 = req.clone();
        req2.push(HeaderName::Authorization, a);
        req2
    }

    fn peer() -> Peer {
        Peer::udp("127.0.0.1:5070".parse().unwrap())
    }

    #[test]
    fn register_with_challenge_then_expire_and_unregister() {
        let t0 = crate::clock::now();
        // The wall clock is an input: 2026-11-23 10:00:00 UTC at t0.
        let cfg = RegistrarConfig {
            unix_at_epoch: 1_795_428_000,
            ..RegistrarConfig::default()
        };
        let mut r = Registrar::new(cfg, "omnigate", [1; 32], t0);
        let req = reg(
            "Expires: 120\r\n",
            "<sip:alice@127.0.0.1:5070>, <sip:alice@10.0.0.2:5060>;expires=600",
            1,
        );
        let req2 = authed(&mut r, t0, &req, "alice", "secret");
        assert_eq!(
            r.authenticate(t0, &req2, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
        let resp = r.register(t0 + Duration::from_secs(5), &req2, peer(), "alice", "tt");
        assert_eq!(resp.status(), Some(200));
        assert_eq!(
            resp.header_str(&HeaderName::Date),
            Some(crate::clock::format_http_date(1_795_428_005).as_str())
        );
        assert_eq!(r.lookup(t0, "alice").len(), 2);
        assert_eq!(
            r.lookup(t0 + Duration::from_secs(5 + 121), "alice").len(),
            1,
            "the 120 s contact expired"
        );
        let un = reg("Expires: 0\r\n", "*", 2);
        r.register(t0, &un, peer(), "alice", "tt");
        assert!(r.lookup(t0, "alice").is_empty());
        let brief = reg("Expires: 5\r\n", "<sip:alice@127.0.0.1:5070>", 3);
        assert_eq!(
            r.register(t0, &brief, peer(), "alice", "tt").status(),
            Some(423)
        );
    }

    #[test]
    fn one_md5_challenge_by_default_sha256_by_choice() {
        let t0 = crate::clock::now();
        let mut r = Registrar::new(RegistrarConfig::default(), "omnigate", [1; 32], t0);
        let req = reg("", "<sip:alice@127.0.0.1:5070>", 1);
        let AuthOutcome::Challenge(ch) = r.authenticate(t0, &req, peer(), false, &pw) else {
            panic!()
        };
        assert_eq!(ch.len(), 1);
        assert!(ch[0].contains("algorithm=MD5"), "{ch:?}");
        r.set_algorithms(vec![Algorithm::Md5, Algorithm::Sha256]);
        let good = authed(&mut r, t0, &req, "alice", "secret");
        assert!(good
            .header_str(&HeaderName::Authorization)
            .unwrap()
            .contains("SHA-256"));
        assert_eq!(
            r.authenticate(t0, &good, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same_and_get_delayed() {
        let t0 = crate::clock::now();
        let mut r = Registrar::new(RegistrarConfig::default(), "omnigate", [1; 32], t0);
        let req = reg("", "<sip:alice@127.0.0.1:5070>", 1);
        let wrong = authed(&mut r, t0, &req, "alice", "nope");
        let unknown = authed(&mut r, t0, &req, "mallory", "nope");
        let good = authed(&mut r, t0, &req, "alice", "secret");
        assert_eq!(
            r.authenticate(t0, &wrong, peer(), false, &pw),
            AuthOutcome::Forbidden
        );
        assert_eq!(
            r.authenticate(t0, &unknown, peer(), false, &pw),
            AuthOutcome::Forbidden
        );
        for _ in 0..9 {
            r.authenticate(t0, &wrong, peer(), false, &pw);
        }
        // The pair is throttled: its next answer waits a second, one at a time...
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            r.authenticate(t0, &good, peer(), false, &pw),
            AuthOutcome::Delay(t1)
        );
        assert_eq!(
            r.authenticate(t0, &wrong, peer(), false, &pw),
            AuthOutcome::Drop
        );
        // ...and is then checked as usual: the right password gets in.
        assert_eq!(
            r.authenticate(t1, &good, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
        assert!(!r.is_throttled(t1, peer().addr.ip(), "alice"));
        // Going on guessing doubles the wait, up to block_for.
        for _ in 0..10 {
            r.authenticate(t1, &wrong, peer(), false, &pw);
        }
        let mut at = t1;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let AuthOutcome::Delay(until) = r.authenticate(at, &wrong, peer(), false, &pw) else {
                panic!()
            };
            waits.push((until - at).as_secs());
            at = until;
            assert_eq!(
                r.authenticate(at, &wrong, peer(), false, &pw),
                AuthOutcome::Forbidden
            );
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn forged_failures_lock_nobody_out_and_other_pairs_are_untouched() {
        let t0 = crate::clock::now();
        let mut r = Registrar::new(RegistrarConfig::default(), "omnigate", [1; 32], t0);
        let req = reg("", "<sip:alice@127.0.0.1:5070>", 1);
        // Spoofed datagrams "from" the phone with a nonce the phone never got (one the
        // attacker fetched from their own address, or made up).
        let attacker = Peer::udp("198.51.100.66:5060".parse().unwrap());
        let theirs = authed_from(&mut r, t0, &req, "alice", "guess", attacker);
        let mut forged = req.clone();
        forged.push(
            HeaderName::Authorization,
            r#"Digest username="alice", realm="omnigate", nonce="1.2.0123456789abcdef0123456789abcdef", uri="sip:127.0.0.1", response="00", algorithm=MD5"#,
        );
        for _ in 0..100 {
            assert!(matches!(
                r.authenticate(t0, &theirs, peer(), false, &pw),
                AuthOutcome::Challenge(_)
            ));
            assert!(matches!(
                r.authenticate(t0, &forged, peer(), false, &pw),
                AuthOutcome::Challenge(_)
            ));
        }
        assert_eq!(r.failure_states(), 0);
        let good = authed(&mut r, t0, &req, "alice", "secret");
        assert_eq!(
            r.authenticate(t0, &good, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
        // The attacker guessing from their own address throttles only themselves.
        for _ in 0..20 {
            r.authenticate(t0, &theirs, attacker, false, &pw);
        }
        assert!(r.is_throttled(t0, attacker.addr.ip(), "alice"));
        assert!(!r.is_throttled(t0, peer().addr.ip(), "alice"));
        let good = authed(&mut r, t0, &req, "alice", "secret");
        assert_eq!(
            r.authenticate(t0, &good, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
    }

    #[test]
    fn a_sniffed_register_replayed_is_challenged_again() {
        let t0 = crate::clock::now();
        let mut r = Registrar::new(RegistrarConfig::default(), "omnigate", [1; 32], t0);
        let req = reg("", "<sip:alice@127.0.0.1:5070>", 1);
        let good = authed(&mut r, t0, &req, "alice", "secret");
        assert_eq!(
            r.authenticate(t0, &good, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
        let attacker = Peer::udp("198.51.100.66:5060".parse().unwrap());
        for from in [attacker, peer()] {
            let AuthOutcome::Challenge(ch) = r.authenticate(t0, &good, from, false, &pw) else {
                panic!("replay from {from:?} accepted")
            };
            assert_eq!(ch[0].contains("stale=true"), from == peer());
        }
    }
}
