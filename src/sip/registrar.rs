//! The registrar (RFC 3261 section 10): digest-authenticated REGISTER, several contacts
//! per address of record, expiry, unregister (`Expires: 0`, `Contact: *`), and a
//! per-source throttle on authentication failures. Sans-IO: `now` is passed in and the
//! answer is returned as a message.
//!
//! A wrong password and an unknown user get the same 403, after the same work, so
//! extensions cannot be enumerated.

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
        }
    }
}

#[derive(Debug, Default)]
struct FailState {
    count: u32,
    window_start: Option<Instant>,
    blocked_until: Option<Instant>,
}

/// Result of an authentication check shared by REGISTER and INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated as this user.
    User(String),
    /// Send this challenge (401/407) with these header values.
    Challenge(Vec<String>),
    /// 403 (wrong password or unknown user, indistinguishable), or throttled.
    Forbidden,
}

pub struct Registrar {
    pub cfg: RegistrarConfig,
    pub realm: String,
    nonces: NonceIssuer,
    bindings: HashMap<String, Vec<Binding>>,
    failures: HashMap<IpAddr, FailState>,
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
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        }
    }

    fn secs(&self, now: Instant) -> u64 {
        // Offset so that nonces issued in the first seconds are not zero.
        now.saturating_duration_since(self.epoch).as_secs() + 1_000_000
    }

    pub fn is_blocked(&self, now: Instant, ip: IpAddr) -> bool {
        self.failures
            .get(&ip)
            .and_then(|f| f.blocked_until)
            .is_some_and(|t| now < t)
    }

    fn record_failure(&mut self, now: Instant, ip: IpAddr) {
        let cfg = self.cfg;
        let f = self.failures.entry(ip).or_default();
        match f.window_start {
            Some(ws) if now.duration_since(ws) <= cfg.fail_window => f.count += 1,
            _ => {
                f.window_start = Some(now);
                f.count = 1;
            }
        }
        if f.count >= cfg.max_failures {
            f.blocked_until = Some(now + cfg.block_for);
            f.count = 0;
            f.window_start = None;
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
        if self.is_blocked(now, ip) {
            return AuthOutcome::Forbidden;
        }
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
            return AuthOutcome::Challenge(self.challenges(secs, false));
        };
        let user = creds.get("username").unwrap_or("").to_string();
        let pw = password_of(&user);
        match self
            .nonces
            .verify(&creds, &method, &self.realm, pw.as_deref(), secs)
        {
            Verdict::Ok => {
                self.failures.remove(&ip);
                AuthOutcome::User(user)
            }
            Verdict::Stale => AuthOutcome::Challenge(self.challenges(secs, true)),
            Verdict::Denied => {
                self.record_failure(now, ip);
                AuthOutcome::Forbidden
            }
        }
    }

    /// Sets the challenge order. MD5 first is the interoperable default: many phones (and
    /// SIPp 3.6) answer only the first challenge and know only MD5.
    pub fn set_algorithms(&mut self, algs: Vec<Algorithm>) {
        if !algs.is_empty() {
            self.algorithms = algs;
        }
    }

    fn challenges(&self, secs: u64, stale: bool) -> Vec<String> {
        self.algorithms
            .iter()
            .map(|&a| self.nonces.challenge(&self.realm, a, secs, stale))
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
        r.push(HeaderName::Date, httpdate_now_placeholder());
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

    /// True when `ip` currently holds a binding (a registered phone).
    pub fn is_registered_source(&self, now: Instant, ip: IpAddr) -> Option<String> {
        self.bindings
            .iter()
            .find(|(_, l)| {
                l.iter()
                    .any(|b| b.expires_at > now && b.source.addr.ip() == ip)
            })
            .map(|(u, _)| u.clone())
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

/// RFC 1123 date for the Date header, computed from the system clock by `clock`.
fn httpdate_now_placeholder() -> String {
    crate::clock::http_date()
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
        let AuthOutcome::Challenge(ch) = r.authenticate(now, req, peer(), false, &pw) else {
            panic!()
        };
        assert_eq!(ch.len(), 2, "MD5 and SHA-256 challenges");
        assert!(ch[1].contains("algorithm=SHA-256"));
        // Answer the SHA-256 one for user alice, MD5 for others: both must verify.
        let which = if user == "alice" { 1 } else { 0 };
        let a =
            answer_challenge(&ch[which], "REGISTER", "sip:127.0.0.1", user, pass, "cn", 1).unwrap();
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
        let mut r = Registrar::new(RegistrarConfig::default(), "omnigate", [1; 32], t0);
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
        let resp = r.register(t0, &req2, peer(), "alice", "tt");
        assert_eq!(resp.status(), Some(200));
        assert_eq!(r.lookup(t0, "alice").len(), 2);
        assert_eq!(
            r.lookup(t0 + Duration::from_secs(121), "alice").len(),
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
    fn wrong_password_and_unknown_user_look_the_same_and_get_throttled() {
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
        for _ in 0..8 {
            r.authenticate(t0, &wrong, peer(), false, &pw);
        }
        assert_eq!(
            r.authenticate(t0, &good, peer(), false, &pw),
            AuthOutcome::Forbidden,
            "throttled"
        );
        assert_eq!(
            r.authenticate(t0 + Duration::from_secs(61), &good, peer(), false, &pw),
            AuthOutcome::User("alice".into())
        );
    }
}
