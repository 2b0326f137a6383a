//! The signatures providers put on what they send us, checked before a byte of the
//! body is parsed, and the one we put on what we send connectors. All compare in
//! constant time.
//!
//! - WhatsApp Cloud API: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw
//!   body under the app secret.
//! - Twilio: `X-Twilio-Signature: <base64>`, HMAC-SHA1 under the auth token of the
//!   public URL (with its query) followed by each form parameter's name and value,
//!   sorted by name.
//! - The open channel API: `X-Omnigate-Signature: sha256=<hex>` of
//!   `<X-Omnigate-Timestamp>.<raw body>` under the account's secret, the timestamp
//!   within five minutes of ours.

use base64::Engine;
use sha1::Sha1;
use sha2::digest::{Digest, FixedOutputReset};
use sha2::Sha256;

/// Why a signature was refused: the reason a 401 gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("{0} does not match the body")]
    Mismatch(&'static str),
    #[error("X-Omnigate-Timestamp is {0} s away from our clock (at most 300 s)")]
    Stale(u64),
}

/// HMAC (RFC 2104) over a hash with a 64-byte block (SHA-1, SHA-256).
fn hmac<D: Digest + FixedOutputReset>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    const B: usize = 64;
    let mut k = [0u8; B];
    if key.len() > B {
        let h = D::digest(key);
        k[..h.len()].copy_from_slice(&h);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = D::new();
    Digest::update(&mut inner, k.map(|b| b ^ 0x36));
    Digest::update(&mut inner, msg);
    let mut outer = D::new();
    Digest::update(&mut outer, k.map(|b| b ^ 0x5c));
    Digest::update(&mut outer, inner.finalize());
    outer.finalize().to_vec()
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::<Sha256>(key, msg)
}

pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::<Sha1>(key, msg)
}

pub use crate::sip::auth::hex;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    crate::sip::auth::constant_time_eq(a, b)
}

/// Checks WhatsApp's `X-Hub-Signature-256` (`header`: its value, if any).
pub fn check_whatsapp(app_secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), Refused> {
    const H: &str = "X-Hub-Signature-256";
    let v = header.ok_or(Refused::Missing(H))?;
    let got = v
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or(Refused::Malformed(H))?;
    if same(&got, &hmac_sha256(app_secret.as_bytes(), body)) {
        Ok(())
    } else {
        Err(Refused::Mismatch(H))
    }
}

/// The `X-Hub-Signature-256` value for `body` (what Meta sends; the tests' fake Graph).
pub fn sign_whatsapp(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(app_secret.as_bytes(), body)))
}

/// Twilio's signature of a request to `url` with form `params`.
pub fn twilio(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut msg = url.to_string();
    for (k, v) in sorted {
        msg.push_str(k);
        msg.push_str(v);
    }
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(auth_token.as_bytes(), msg.as_bytes()))
}

/// Checks `X-Twilio-Signature` for a request to the public `url`.
pub fn check_twilio(
    auth_token: &str,
    header: Option<&str>,
    url: &str,
    params: &[(String, String)],
) -> Result<(), Refused> {
    const H: &str = "X-Twilio-Signature";
    let v = header.ok_or(Refused::Missing(H))?;
    let got = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| Refused::Malformed(H))?;
    let want = base64::engine::general_purpose::STANDARD
        .decode(twilio(auth_token, url, params))
        .unwrap_or_default();
    if same(&got, &want) {
        Ok(())
    } else {
        Err(Refused::Mismatch(H))
    }
}

/// How far a connector's clock may be from ours.
pub const OPEN_SKEW_SECS: u64 = 300;

/// The open channel API's signature of `body` sent at `timestamp` (Unix seconds).
pub fn sign_open(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &msg)))
}

/// Checks an open channel request: its timestamp near `now` (Unix seconds) and its
/// signature over that timestamp and the body.
pub fn check_open(
    secret: &str,
    now: u64,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<u64, Refused> {
    const T: &str = "X-Omnigate-Timestamp";
    const S: &str = "X-Omnigate-Signature";
    let t: u64 = timestamp
        .ok_or(Refused::Missing(T))?
        .trim()
        .parse()
        .map_err(|_| Refused::Malformed(T))?;
    let sig = signature.ok_or(Refused::Missing(S))?;
    let got = sig
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or(Refused::Malformed(S))?;
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    if !same(&got, &hmac_sha256(secret.as_bytes(), &msg)) {
        return Err(Refused::Mismatch(S));
    }
    // Checked after the signature, so a stranger learns nothing about our clock.
    let off = now.abs_diff(t);
    if off > OPEN_SKEW_SECS {
        return Err(Refused::Stale(off));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmacs_give_the_known_answers() {
        assert_eq!(
            hex(&hmac_sha256(b"secret", b"test")),
            "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
        // RFC 2202, test case 2.
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // A key longer than the block is hashed first (RFC 4231, test case 6).
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn twilio_matches_its_documented_example() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let params = [
            p("CallSid", "CA1234567890ABCDE"),
            p("Caller", "+12349013030"),
            p("Digits", "1234"),
            p("From", "+12349013030"),
            p("To", "+18005551212"),
        ];
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        let sig = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(check_twilio("12345", Some(sig), url, &params), Ok(()));
        // The order they arrive in does not matter; a changed value, URL or token does.
        let mut shuffled = params.to_vec();
        shuffled.reverse();
        assert_eq!(check_twilio("12345", Some(sig), url, &shuffled), Ok(()));
        let mut tampered = params.to_vec();
        tampered[2].1 = "1235".into();
        let h = "X-Twilio-Signature";
        assert_eq!(
            check_twilio("12345", Some(sig), url, &tampered),
            Err(Refused::Mismatch(h))
        );
        let other = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert_eq!(
            check_twilio("12345", Some(sig), other, &params),
            Err(Refused::Mismatch(h))
        );
        assert_eq!(
            check_twilio("54321", Some(sig), url, &params),
            Err(Refused::Mismatch(h))
        );
        assert_eq!(
            check_twilio("12345", None, url, &params),
            Err(Refused::Missing(h))
        );
        assert_eq!(
            check_twilio("12345", Some("%%%"), url, &params),
            Err(Refused::Malformed(h))
        );
    }

    #[test]
    fn whatsapp_signatures_are_checked_on_the_raw_body() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let sig = sign_whatsapp("app-secret", body);
        assert_eq!(check_whatsapp("app-secret", Some(&sig), body), Ok(()));
        let h = "X-Hub-Signature-256";
        let mut tampered = body.to_vec();
        tampered[3] ^= 1;
        assert_eq!(
            check_whatsapp("app-secret", Some(&sig), &tampered),
            Err(Refused::Mismatch(h))
        );
        assert_eq!(
            check_whatsapp("other", Some(&sig), body),
            Err(Refused::Mismatch(h))
        );
        assert_eq!(
            check_whatsapp("app-secret", None, body),
            Err(Refused::Missing(h))
        );
        for bad in ["", "sha256=", "sha256=zz", "sha1=abcd", &sig[7..]] {
            assert!(
                check_whatsapp("app-secret", Some(bad), body).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn open_channel_signatures_carry_a_fresh_timestamp() {
        let body = br#"{"events":[]}"#;
        let sig = sign_open("s3cret", 1_000_000, body);
        assert_eq!(
            check_open("s3cret", 1_000_100, Some("1000000"), Some(&sig), body),
            Ok(1_000_000)
        );
        // Replayed later, or from a clock far off: refused, with how far.
        assert_eq!(
            check_open("s3cret", 1_000_301, Some("1000000"), Some(&sig), body),
            Err(Refused::Stale(301))
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            check_open("s3cret", 1_000_100, Some("1000050"), Some(&sig), body),
            Err(Refused::Mismatch("X-Omnigate-Signature"))
        );
        assert_eq!(
            check_open("s3cret", 1_000_100, None, Some(&sig), body),
            Err(Refused::Missing("X-Omnigate-Timestamp"))
        );
        assert_eq!(
            check_open("s3cret", 1_000_100, Some("soon"), Some(&sig), body),
            Err(Refused::Malformed("X-Omnigate-Timestamp"))
        );
        assert_eq!(
            check_open("s3cret", 1_000_100, Some("1000000"), None, body),
            Err(Refused::Missing("X-Omnigate-Signature"))
        );
    }
}
