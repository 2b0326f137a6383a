//! Which ended chats may still be rated: a bounded, expiring registry of their resume
//! tokens, so only the customer who had the chat can rate it, once, soon after it
//! ended. Sans-IO: time is an input.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long after its end a chat may be rated.
pub const RATE_WITHIN: Duration = Duration::from_secs(3600);
/// Ended chats remembered at once (the oldest are forgotten first).
pub const MAX_RATABLE: usize = 10_000;

#[derive(Debug)]
pub struct Ratable {
    tokens: HashMap<String, ([u8; 32], Instant)>,
    order: VecDeque<(Instant, String)>,
    cap: usize,
    ttl: Duration,
}

impl Default for Ratable {
    fn default() -> Self {
        Ratable::new(MAX_RATABLE, RATE_WITHIN)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What is kept of a chat's resume token (in memory, in the store, here): its
/// SHA-256, hex.
pub fn token_digest(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Ratable {
    pub fn new(cap: usize, ttl: Duration) -> Ratable {
        Ratable {
            tokens: HashMap::new(),
            order: VecDeque::new(),
            cap,
            ttl,
        }
    }

    /// A chat ended at `now`: its customer (who holds the token of `digest`, see
    /// [`token_digest`]) may rate it.
    pub fn insert(&mut self, now: Instant, interaction: &str, digest: &str) {
        let Some(want) = from_hex(digest) else {
            return;
        };
        self.expire(now);
        while self.tokens.len() >= self.cap {
            let Some((_, id)) = self.order.pop_front() else {
                break;
            };
            self.tokens.remove(&id);
        }
        self.tokens.insert(interaction.to_string(), (want, now));
        self.order.push_back((now, interaction.to_string()));
    }

    /// The customer presents `token` for `interaction`: `true` (once) if it is theirs
    /// and the chat ended within the time allowed.
    pub fn take(&mut self, now: Instant, interaction: &str, token: &str) -> bool {
        self.expire(now);
        let Some((want, _)) = self.tokens.get(interaction) else {
            return false;
        };
        // Compared over digests, in constant time.
        let got = digest(token);
        let same = want.iter().zip(got).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
        if same {
            self.tokens.remove(interaction);
        }
        same
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            let gone = self.tokens.get(id).is_none_or(|(_, t)| t != at);
            if !gone && now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            if !gone {
                self.tokens.remove(id);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_once_and_only_in_time() {
        let t0 = crate::clock::now();
        let mut r = Ratable::new(3, Duration::from_secs(60));
        r.insert(t0, "c1", &token_digest("secret"));
        assert!(!r.take(t0, "c1", "guess"), "a wrong token rates nothing");
        assert!(!r.take(t0, "c2", "secret"), "nor another chat");
        assert!(r.take(t0, "c1", "secret"));
        assert!(!r.take(t0, "c1", "secret"), "once");
        r.insert(t0, "c3", &token_digest("s3"));
        assert!(
            !r.take(t0 + Duration::from_secs(61), "c3", "s3"),
            "too late"
        );
        assert!(r.is_empty());
    }

    #[test]
    fn bounded_the_oldest_forgotten_first() {
        let t0 = crate::clock::now();
        let mut r = Ratable::new(2, Duration::from_secs(60));
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            r.insert(t0 + Duration::from_secs(i as u64), id, &token_digest(id));
        }
        assert_eq!(r.len(), 2);
        assert!(!r.take(t0, "a", "a"), "the oldest went");
        assert!(r.take(t0 + Duration::from_secs(3), "c", "c"));
        // A taken entry's place in the order is skipped when it expires.
        assert!(r.take(t0 + Duration::from_secs(59), "b", "b"));
        r.insert(t0 + Duration::from_secs(200), "d", &token_digest("d"));
        assert_eq!(r.len(), 1);
    }
}
