//! Digest authentication (RFC 3261 22.4, RFC 2617 with qop=auth, RFC 8760 SHA-256).
//!
//! Server side: stateless nonces (a timestamp sealed with a keyed SHA-256) so nothing is
//! stored per challenge; a nonce older than `NONCE_TTL` is answered with `stale=true`.
//! Client side: building Authorization / Proxy-Authorization for a challenge.
//!
//! ```
//! use omnigate::sip::auth::{answer_challenge, Algorithm, NonceIssuer, Verdict};
//! use omnigate::sip::header::DigestParams;
//!
//! let server = NonceIssuer::new([42; 32]);
//! let challenge = server.challenge("omnigate", Algorithm::Sha256, 1_000, false);
//! let creds = answer_challenge(&challenge, "REGISTER", "sip:example.com", "1001", "pw", "cnonce", 1).unwrap();
//! let parsed = DigestParams::parse(&creds).unwrap();
//! assert_eq!(server.verify(&parsed, "REGISTER", "omnigate", Some("pw"), 1_010), Verdict::Ok);
//! assert_eq!(server.verify(&parsed, "REGISTER", "omnigate", Some("nope"), 1_010), Verdict::Denied);
//! ```

use super::header::DigestParams;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a nonce is accepted.
pub const NONCE_TTL: Duration = Duration::from_secs(300);

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
}

/// The verdict on a set of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Right password, expired nonce: challenge again with stale=true.
    Stale,
    /// Wrong password, unknown user or malformed credentials.
    Denied,
}

impl NonceIssuer {
    pub fn new(secret: [u8; 32]) -> Self {
        NonceIssuer { secret }
    }

    /// `now_secs` is seconds since an arbitrary epoch (the caller's clock).
    pub fn nonce(&self, now_secs: u64) -> String {
        let ts = format!("{now_secs:x}");
        format!("{ts}.{}", &self.seal(&ts)[..32])
    }

    fn seal(&self, ts: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(ts.as_bytes());
        hex(&h.finalize())
    }

    /// Some(age) for a nonce we issued, None for a forged one.
    fn nonce_age(&self, nonce: &str, now_secs: u64) -> Option<u64> {
        let (ts, mac) = nonce.split_once('.')?;
        if mac.len() != 32 || self.seal(ts)[..32] != *mac {
            return None;
        }
        let t = u64::from_str_radix(ts, 16).ok()?;
        Some(now_secs.saturating_sub(t))
    }

    /// A `WWW-Authenticate`/`Proxy-Authenticate` value.
    pub fn challenge(&self, realm: &str, alg: Algorithm, now_secs: u64, stale: bool) -> String {
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}",
            self.nonce(now_secs),
            alg.name(),
            if stale { ", stale=true" } else { "" }
        )
    }

    /// Checks credentials against `password` (None: unknown user, still hashed so that
    /// known and unknown users take the same path and answer).
    pub fn verify(
        &self,
        creds: &DigestParams<'_>,
        method: &str,
        realm: &str,
        password: Option<&str>,
        now_secs: u64,
    ) -> Verdict {
        let dummy = "\u{1}unknown-user-never-matches";
        let pw = password.unwrap_or(dummy);
        if !creds.scheme.eq_ignore_ascii_case("Digest") {
            return Verdict::Denied;
        }
        let (Some(user), Some(nonce), Some(uri), Some(resp)) = (
            creds.get("username"),
            creds.get("nonce"),
            creds.get("uri"),
            creds.get("response"),
        ) else {
            return Verdict::Denied;
        };
        let Some(alg) = Algorithm::parse(creds.get("algorithm")) else {
            return Verdict::Denied;
        };
        if creds.get("realm") != Some(realm) {
            return Verdict::Denied;
        }
        let expected = compute(
            alg,
            user,
            realm,
            pw,
            method,
            uri,
            nonce,
            creds.get("qop"),
            creds.get("nc"),
            creds.get("cnonce"),
        );
        let matches = constant_time_eq(expected.as_bytes(), resp.to_ascii_lowercase().as_bytes())
            && password.is_some();
        match self.nonce_age(nonce, now_secs) {
            None => Verdict::Denied,
            Some(_) if !matches => Verdict::Denied,
            Some(age) if age > NONCE_TTL.as_secs() => Verdict::Stale,
            Some(_) => Verdict::Ok,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

    #[test]
    fn challenge_answer_verify_round_trip_both_algorithms() {
        let n = NonceIssuer::new([7; 32]);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = n.challenge("omnigate", alg, 1000, false);
            let a = answer_challenge(
                &ch,
                "REGISTER",
                "sip:127.0.0.1",
                "alice",
                "secret",
                "abc",
                1,
            )
            .unwrap();
            let creds = DigestParams::parse(&a).unwrap();
            assert_eq!(
                n.verify(&creds, "REGISTER", "omnigate", Some("secret"), 1010),
                Verdict::Ok
            );
            assert_eq!(
                n.verify(&creds, "REGISTER", "omnigate", Some("wrong"), 1010),
                Verdict::Denied
            );
            assert_eq!(
                n.verify(&creds, "REGISTER", "omnigate", None, 1010),
                Verdict::Denied
            );
            assert_eq!(
                n.verify(&creds, "REGISTER", "omnigate", Some("secret"), 1000 + 301),
                Verdict::Stale
            );
        }
        // A nonce from another process is refused.
        let other = NonceIssuer::new([8; 32]);
        let ch = other.challenge("omnigate", Algorithm::Md5, 1000, false);
        let a = answer_challenge(&ch, "REGISTER", "sip:x", "alice", "secret", "c", 1).unwrap();
        assert_eq!(
            n.verify(
                &DigestParams::parse(&a).unwrap(),
                "REGISTER",
                "omnigate",
                Some("secret"),
                1000
            ),
            Verdict::Denied
        );
    }
}
