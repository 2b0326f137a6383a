//! Digest authentication (RFC 3261 22.4, RFC 2617 with qop=auth, RFC 8760 SHA-256).
//!
//! Server side: a nonce is a timestamp, a serial number and the address it was issued
//! to, sealed with a keyed SHA-256: a nonce answered from another address is not ours.
//! Each nonce's highest nonce-count is tracked (in a bounded map, oldest forgotten
//! first), so a replayed request (same or lower `nc`, or a second use without `qop`)
//! is answered with a fresh `stale=true` challenge, as is a nonce older than
//! `NONCE_TTL`. The digest `uri` must name the Request-URI.
//! Client side: building Authorization / Proxy-Authorization for a challenge.
//!
//! ```
//! use omnigate::sip::auth::{answer_challenge, Algorithm, NonceIssuer, Verdict};
//! use omnigate::sip::header::DigestParams;
//!
//! let phone = "192.0.2.7".parse().unwrap();
//! let mut server = NonceIssuer::new([42; 32]);
//! let challenge = server.challenge("omnigate", Algorithm::Sha256, 1_000, phone, false);
//! let creds = answer_challenge(&challenge, "REGISTER", "sip:example.com", "1001", "pw", "cnonce", 1).unwrap();
//! let parsed = DigestParams::parse(&creds).unwrap();
//! let check = |s: &mut NonceIssuer, pw, from| s.verify(&parsed, "REGISTER", "sip:example.com", "omnigate", Some(pw), from, 1_010);
//! assert_eq!(check(&mut server, "nope", phone), Verdict::Denied);
//! assert_eq!(check(&mut server, "pw", phone), Verdict::Ok);
//! // The same header again (a replay) is stale; from elsewhere it is not even ours.
//! assert_eq!(check(&mut server, "pw", phone), Verdict::Stale);
//! assert_eq!(check(&mut server, "pw", "203.0.113.9".parse().unwrap()), Verdict::Foreign);
//! ```

use super::header::DigestParams;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// How long a nonce is accepted.
pub const NONCE_TTL: Duration = Duration::from_secs(300);
/// How many used nonces are remembered (with their highest nonce-count). Beyond it the
/// oldest are forgotten, and answers with them are stale (a fresh challenge).
pub const TRACKED_NONCES: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Issues and checks nonces. `secret` is random per process.
pub struct NonceIssuer {
    secret: [u8; 32],
    /// The next nonce's serial number.
    next: u64,
    /// Used nonces by serial: the highest nonce-count seen (0 without qop).
    used: BTreeMap<u64, u32>,
    /// Serials at or below this, not in `used`, were forgotten: stale.
    floor: u64,
    /// How many used nonces are remembered (`TRACKED_NONCES`).
    capacity: usize,
}

/// The verdict on a set of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Right password, but an expired or already used nonce (a replay): challenge
    /// again with stale=true.
    Stale,
    /// Wrong password or unknown user, with a nonce we issued to this address.
    Denied,
    /// A nonce we did not issue to this address (forged, or issued to someone else):
    /// challenge afresh; it says nothing about the password.
    Foreign,
    /// Credentials that cannot be checked: missing fields, another realm or
    /// algorithm, or a digest `uri` that is not the Request-URI.
    Malformed,
}

impl NonceIssuer {
    pub fn new(secret: [u8; 32]) -> Self {
        NonceIssuer {
            secret,
            next: 1,
            used: BTreeMap::new(),
            floor: 0,
            capacity: TRACKED_NONCES,
        }
    }

    /// A fresh nonce for `to`. `now_secs` is seconds since an arbitrary epoch (the
    /// caller's clock).
    pub fn nonce(&mut self, now_secs: u64, to: IpAddr) -> String {
        let (ts, serial) = (format!("{now_secs:x}"), format!("{:x}", self.next));
        self.next += 1;
        let mac = self.seal(&ts, &serial, to);
        format!("{ts}.{serial}.{}", &mac[..32])
    }

    fn seal(&self, ts: &str, serial: &str, to: IpAddr) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(ts.as_bytes());
        h.update(b".");
        h.update(serial.as_bytes());
        h.update(b".");
        h.update(to.to_string().as_bytes());
        hex(&h.finalize())
    }

    /// (age, serial) for a nonce we issued to `from`, None otherwise.
    fn open(&self, nonce: &str, from: IpAddr, now_secs: u64) -> Option<(u64, u64)> {
        let mut it = nonce.splitn(3, '.');
        let (ts, serial, mac) = (it.next()?, it.next()?, it.next()?);
        if ts.len() > 16 || serial.len() > 16 || mac.len() != 32 {
            return None;
        }
        let sealed = self.seal(ts, serial, from);
        if !constant_time_eq(&sealed.as_bytes()[..32], mac.as_bytes()) {
            return None;
        }
        let t = u64::from_str_radix(ts, 16).ok()?;
        let n = u64::from_str_radix(serial, 16).ok()?;
        Some((now_secs.saturating_sub(t), n))
    }

    /// A `WWW-Authenticate`/`Proxy-Authenticate` value for a request from `to`.
    pub fn challenge(
        &mut self,
        realm: &str,
        alg: Algorithm,
        now_secs: u64,
        to: IpAddr,
        stale: bool,
    ) -> String {
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}",
            self.nonce(now_secs, to),
            alg.name(),
            if stale { ", stale=true" } else { "" }
        )
    }

    /// Checks credentials for a `method` request to `request_uri`, received from
    /// `from`, against `password` (None: unknown user, still hashed so that known and
    /// unknown users take the same path and answer). A success uses up the nonce-count.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &mut self,
        creds: &DigestParams<'_>,
        method: &str,
        request_uri: &str,
        realm: &str,
        password: Option<&str>,
        from: IpAddr,
        now_secs: u64,
    ) -> Verdict {
        let dummy = "\u{1}unknown-user-never-matches";
        let pw = password.unwrap_or(dummy);
        if !creds.scheme.eq_ignore_ascii_case("Digest") {
            return Verdict::Malformed;
        }
        let (Some(user), Some(nonce), Some(uri), Some(resp)) = (
            creds.get("username"),
            creds.get("nonce"),
            creds.get("uri"),
            creds.get("response"),
        ) else {
            return Verdict::Malformed;
        };
        let Some(alg) = Algorithm::parse(creds.get("algorithm")) else {
            return Verdict::Malformed;
        };
        if creds.get("realm") != Some(realm) {
            return Verdict::Malformed;
        }
        let Some((age, serial)) = self.open(nonce, from, now_secs) else {
            return Verdict::Foreign;
        };
        if !same_uri(uri, request_uri) {
            return Verdict::Malformed;
        }
        let qop = creds.get("qop");
        let nc = match qop {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match creds
                    .get("nc")
                    .and_then(|n| u32::from_str_radix(n, 16).ok())
                {
                    Some(n) if n > 0 => n,
                    _ => return Verdict::Malformed,
                }
            }
            Some(_) => return Verdict::Malformed,
            // RFC 2069 style (no qop, no count): the nonce is good for one request.
            None => 1,
        };
        let expected = compute(
            alg,
            user,
            realm,
            pw,
            method,
            uri,
            nonce,
            qop,
            creds.get("nc"),
            creds.get("cnonce"),
        );
        let matches = constant_time_eq(expected.as_bytes(), resp.to_ascii_lowercase().as_bytes())
            && password.is_some();
        if !matches {
            return Verdict::Denied;
        }
        if age > NONCE_TTL.as_secs() {
            return Verdict::Stale;
        }
        // A replay: this nonce-count (or a higher one) was used, or the nonce was
        // forgotten.
        let seen = self.used.get(&serial).copied();
        if seen.is_some_and(|s| nc <= s) || (seen.is_none() && serial <= self.floor) {
            return Verdict::Stale;
        }
        self.used.insert(serial, nc);
        while self.used.len() > self.capacity {
            if let Some((s, _)) = self.used.pop_first() {
                self.floor = self.floor.max(s);
            }
        }
        Verdict::Ok
    }

    /// How many used nonces are remembered.
    pub fn tracked(&self) -> usize {
        self.used.len()
    }
}

/// Whether the digest `uri` names the Request-URI: equal, or the same scheme, host (any
/// case) and port, and the same user, or none in the digest (some UAs, SIPp among them,
/// sign the server's address rather than the full Request-URI).
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (
        super::uri::Uri::parse(digest_uri),
        super::uri::Uri::parse(request_uri),
    ) {
        (Ok(a), Ok(b)) => {
            a.scheme == b.scheme
                && (a.user == b.user || a.user.is_none())
                && a.host.eq_ignore_ascii_case(b.host)
                && a.port == b.port
        }
        _ => false,
    }
}

/// Equality in time that depends only on the length (tokens, digests).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The digest `response` value.
#[allow(clippy::too_many_arguments)]
pub fn compute(
    alg: Algorithm,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<&str>,
    nc: Option<&str>,
    cnonce: Option<&str>,
) -> String {
    let ha1 = alg.hash(&format!("{user}:{realm}:{password}"));
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    match qop {
        Some(q) if q.eq_ignore_ascii_case("auth") => alg.hash(&format!(
            "{ha1}:{nonce}:{}:{}:auth:{ha2}",
            nc.unwrap_or(""),
            cnonce.unwrap_or("")
        )),
        _ => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Client side: the credentials answering `challenge` (a WWW-/Proxy-Authenticate value).
/// Returns None when the challenge is not Digest or uses an unknown algorithm.
pub fn answer_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    let c = DigestParams::parse(challenge)?;
    if !c.scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let alg = Algorithm::parse(c.get("algorithm"))?;
    let realm = c.get("realm")?;
    let nonce = c.get("nonce")?;
    let qop_auth = c
        .get("qop")
        .is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
    let nc_s = format!("{nc:08x}");
    let resp = if qop_auth {
        compute(
            alg,
            user,
            realm,
            password,
            method,
            uri,
            nonce,
            Some("auth"),
            Some(&nc_s),
            Some(cnonce),
        )
    } else {
        compute(
            alg, user, realm, password, method, uri, nonce, None, None, None,
        )
    };
    let mut out = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        alg.name()
    );
    if qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = c.get("opaque") {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_example() {
        // RFC 2617 3.5 (HTTP, same algorithm).
        let r = compute(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some("auth"),
            Some("00000001"),
            Some("0a4f113b"),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    const PHONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    fn answer(ch: &str, pw: &str, nc: u32) -> String {
        answer_challenge(ch, "REGISTER", "sip:127.0.0.1", "alice", pw, "abc", nc).unwrap()
    }

    fn check(n: &mut NonceIssuer, a: &str, pw: Option<&str>, from: IpAddr, at: u64) -> Verdict {
        let creds = DigestParams::parse(a).unwrap();
        n.verify(
            &creds,
            "REGISTER",
            "sip:127.0.0.1",
            "omnigate",
            pw,
            from,
            at,
        )
    }

    #[test]
    fn challenge_answer_verify_round_trip_both_algorithms() {
        let mut n = NonceIssuer::new([7; 32]);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = n.challenge("omnigate", alg, 1000, PHONE, false);
            let a = answer(&ch, "secret", 1);
            assert_eq!(
                check(&mut n, &a, Some("wrong"), PHONE, 1010),
                Verdict::Denied
            );
            assert_eq!(check(&mut n, &a, None, PHONE, 1010), Verdict::Denied);
            assert_eq!(
                check(&mut n, &a, Some("secret"), PHONE, 1000 + 301),
                Verdict::Stale
            );
            assert_eq!(check(&mut n, &a, Some("secret"), PHONE, 1010), Verdict::Ok);
        }
        // A nonce from another process is not ours.
        let mut other = NonceIssuer::new([8; 32]);
        let ch = other.challenge("omnigate", Algorithm::Md5, 1000, PHONE, false);
        let a = answer(&ch, "secret", 1);
        assert_eq!(
            check(&mut n, &a, Some("secret"), PHONE, 1000),
            Verdict::Foreign
        );
    }

    #[test]
    fn a_replayed_answer_is_stale_and_from_elsewhere_foreign() {
        let mut n = NonceIssuer::new([7; 32]);
        let ch = n.challenge("omnigate", Algorithm::Md5, 1000, PHONE, false);
        let first = answer(&ch, "secret", 1);
        assert_eq!(
            check(&mut n, &first, Some("secret"), PHONE, 1001),
            Verdict::Ok
        );
        // The sniffed header, replayed from the phone's address or from anywhere else.
        assert_eq!(
            check(&mut n, &first, Some("secret"), PHONE, 1002),
            Verdict::Stale
        );
        assert_eq!(
            check(&mut n, &first, Some("secret"), ELSEWHERE, 1002),
            Verdict::Foreign
        );
        // The phone itself goes on with the next nonce-count (RFC 2617 3.2.2).
        let second = answer(&ch, "secret", 2);
        assert_eq!(
            check(&mut n, &second, Some("secret"), PHONE, 1003),
            Verdict::Ok
        );
        assert_eq!(
            check(&mut n, &second, Some("secret"), PHONE, 1004),
            Verdict::Stale
        );
        // Another Request-URI than the one signed is refused.
        let third = answer(&ch, "secret", 3);
        let creds = DigestParams::parse(&third).unwrap();
        assert_eq!(
            n.verify(
                &creds,
                "REGISTER",
                "sip:other.example",
                "omnigate",
                Some("secret"),
                PHONE,
                1005
            ),
            Verdict::Malformed
        );
        // The same URI written differently is the same.
        assert_eq!(
            n.verify(
                &creds,
                "REGISTER",
                "sip:127.0.0.1",
                "omnigate",
                Some("secret"),
                PHONE,
                1005
            ),
            Verdict::Ok
        );
        assert!(same_uri(
            "sip:1001@Example.COM:5060",
            "sip:1001@example.com:5060;transport=udp"
        ));
        assert!(!same_uri("sip:1001@example.com", "sip:1002@example.com"));
        assert!(same_uri(
            "sip:example.com:5060",
            "sip:1002@example.com:5060"
        ));
        assert!(!same_uri(
            "sip:example.com:5060",
            "sip:1002@example.com:5070"
        ));
        assert!(!same_uri("sip:other.example", "sip:1002@example.com"));
    }

    #[test]
    fn forgotten_nonces_are_stale_and_the_map_is_bounded() {
        let mut n = NonceIssuer::new([7; 32]);
        n.capacity = 64;
        let old = n.challenge("omnigate", Algorithm::Md5, 1000, PHONE, false);
        assert_eq!(
            check(&mut n, &answer(&old, "pw", 1), Some("pw"), PHONE, 1000),
            Verdict::Ok
        );
        for _ in 0..64 {
            let ch = n.challenge("omnigate", Algorithm::Md5, 1000, PHONE, false);
            let a = answer(&ch, "pw", 1);
            let creds = DigestParams::parse(&a).unwrap();
            // Cheap path: record the use directly, as verify does.
            let (_, serial) = n.open(creds.get("nonce").unwrap(), PHONE, 1000).unwrap();
            n.used.insert(serial, 1);
        }
        let unused = n.challenge("omnigate", Algorithm::Md5, 1000, PHONE, false);
        assert_eq!(
            check(&mut n, &answer(&unused, "pw", 1), Some("pw"), PHONE, 1000),
            Verdict::Ok
        );
        assert!(n.tracked() <= 64);
        assert_eq!(
            check(&mut n, &answer(&old, "pw", 2), Some("pw"), PHONE, 1000),
            Verdict::Stale
        );
    }
}
