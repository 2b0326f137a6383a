//! What a mailbox's fetcher does next (sans-IO): where to start after selecting the
//! folder (the stored `UIDVALIDITY` and last UID), what to do with each new message
//! once its header is known (skip what is on record or erased, refuse what is too
//! large without downloading it, fetch the rest), when a message that fails to
//! import is given up and quarantined, and how long to wait before reconnecting.

use std::time::Duration;

/// The IMAP server drops an idle connection after 30 minutes (RFC 2177): IDLE is
/// re-issued before 29.
pub const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);

/// An IDLE connection silent this long (servers send a keep-alive every minute or
/// two) is checked with DONE: a server that vanished without closing is noticed.
pub const IDLE_SILENCE: Duration = Duration::from_secs(5 * 60);

/// A message left for later (the node busy, an import that failed) is tried again
/// after this long.
pub const RETRY_SOON: Duration = Duration::from_secs(10);

/// Where the fetcher last got to in a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// Where to start after `SELECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Messages after this UID (0: all of them, the first time).
    After(u32),
    /// The folder's `UIDVALIDITY` changed: UIDs mean nothing any more; every message
    /// is looked at again and those on record (by Message-ID) are skipped.
    Resync,
}

pub fn start(stored: Option<Mark>, uidvalidity: u32) -> Start {
    match stored {
        None => Start::After(0),
        Some(m) if m.uidvalidity == uidvalidity => Start::After(m.last_uid),
        Some(_) => Start::Resync,
    }
}

/// What the store knows of a message by its Message-ID (or raw digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    New,
    /// Imported already (a restart, a resync).
    Imported,
    /// Its case was erased or deleted: never imported again.
    Tombstone,
    /// Quarantined earlier.
    Quarantined,
    /// Failed to import this many times.
    Failed(u32),
}

/// What to do with one new message, its header read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Download the whole message and import it.
    Fetch,
    /// Nothing to import (the reason, for the log).
    Skip(&'static str),
    /// Nothing to import, but the after-import policy is applied again (an import
    /// whose move or flag did not happen before a failure, an erased case's copy).
    Settle(&'static str),
    /// Keep it aside with this reason, never fetched again.
    Quarantine(String),
}

/// Decides for a message of `size` bytes the store knows as `known`, in a mailbox
/// that takes at most `max_bytes` and tries each message `attempts` times.
pub fn on_header(size: u64, known: &Known, max_bytes: u64, attempts: u32) -> Action {
    match known {
        Known::Imported => Action::Settle("on record"),
        Known::Tombstone => Action::Settle("its case was erased"),
        Known::Quarantined => Action::Skip("quarantined"),
        Known::Failed(n) if *n >= attempts => {
            Action::Quarantine(format!("failed to import {n} times"))
        }
        _ if size > max_bytes => Action::Quarantine(format!(
            "the message is {size} bytes, over the mailbox's limit of {max_bytes}"
        )),
        _ => Action::Fetch,
    }
}

/// After an import failed (`tries` failures so far, this one included): quarantine
/// once `attempts` are spent.
pub fn after_failure(tries: u32, attempts: u32) -> bool {
    tries >= attempts
}

/// The key a message without a Message-ID is recorded under: its UID in the folder
/// as it was (`UIDVALIDITY`).
pub fn synthetic_key(uidvalidity: u32, uid: u32) -> String {
    format!("uid-{uidvalidity}-{uid}@omnigate.invalid")
}

/// The UID a [`synthetic_key`] names, if it is one and the folder is the same.
pub fn synthetic_uid(key: &str, uidvalidity: u32) -> Option<u32> {
    let (v, uid) = key
        .strip_prefix("uid-")?
        .strip_suffix("@omnigate.invalid")?
        .split_once('-')?;
    (v.parse::<u32>().ok()? == uidvalidity)
        .then(|| uid.parse().ok())
        .flatten()
}

/// The `UID SEARCH` criteria that find a message by its (bare) Message-ID, as an IMAP
/// quoted string (RFC 3501: 7-bit, no CR, LF or NUL; `"` and `\` escaped); `None`
/// for an id that cannot be written so. The server matches a substring: what it
/// finds is kept only when its Message-ID is exactly this one.
pub fn search_by_id(id: &str) -> Option<String> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| (1..0x80).contains(&b) && b != b'\r' && b != b'\n')
    {
        return None;
    }
    let mut q = String::with_capacity(id.len() + 24);
    q.push_str("HEADER Message-ID \"");
    for c in id.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    Some(q)
}

/// How long to wait before connecting again after `failures` failures in a row:
/// 1 s, 2 s, 4 s … at most 5 minutes.
pub fn reconnect_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

/// How many of the next messages (their sizes, in order) to download in one command:
/// at most `max_count`, and at most `max_bytes` together unless the first alone is
/// larger (it then goes alone).
pub fn batch(sizes: impl Iterator<Item = u64>, max_count: usize, max_bytes: u64) -> usize {
    let mut total = 0u64;
    let mut n = 0;
    for s in sizes.take(max_count) {
        if n > 0 && total + s > max_bytes {
            break;
        }
        total += s;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_uidvalidity_resynchronises_and_an_unchanged_one_goes_on() {
        assert_eq!(start(None, 7), Start::After(0));
        let m = Mark {
            uidvalidity: 7,
            last_uid: 41,
        };
        assert_eq!(start(Some(m), 7), Start::After(41));
        assert_eq!(start(Some(m), 8), Start::Resync);
    }

    #[test]
    fn each_message_is_fetched_once_and_a_poisoned_one_is_quarantined() {
        let (max, tries) = (1000, 3);
        assert_eq!(on_header(10, &Known::New, max, tries), Action::Fetch);
        assert_eq!(on_header(10, &Known::Failed(2), max, tries), Action::Fetch);
        assert!(
            matches!(on_header(10, &Known::Failed(3), max, tries), Action::Quarantine(r) if r.contains("3 times"))
        );
        assert_eq!(
            on_header(10, &Known::Imported, max, tries),
            Action::Settle("on record")
        );
        assert_eq!(
            on_header(10, &Known::Tombstone, max, tries),
            Action::Settle("its case was erased")
        );
        assert_eq!(
            on_header(10, &Known::Quarantined, max, tries),
            Action::Skip("quarantined")
        );
        assert!(
            matches!(on_header(1001, &Known::New, max, tries), Action::Quarantine(r) if r.contains("over the mailbox's limit"))
        );
        assert!(!after_failure(2, 3) && after_failure(3, 3));
    }

    #[test]
    fn erased_mail_is_searched_by_its_exact_id_and_a_hostile_id_is_not_sent() {
        assert_eq!(
            search_by_id("a1@example.com").as_deref(),
            Some("HEADER Message-ID \"a1@example.com\"")
        );
        assert_eq!(
            search_by_id(r#"x"y\z@e"#).as_deref(),
            Some(r#"HEADER Message-ID "x\"y\\z@e""#)
        );
        for bad in ["", "a\r\nA1 LOGOUT", "caf\u{e9}@e", "a\0b"] {
            assert_eq!(search_by_id(bad), None, "{bad:?}");
        }
        let k = synthetic_key(7, 42);
        assert_eq!(synthetic_uid(&k, 7), Some(42));
        assert_eq!(synthetic_uid(&k, 8), None, "another UIDVALIDITY");
        assert_eq!(synthetic_uid("uid-7-42@example.com", 7), None);
        assert_eq!(synthetic_uid("a1@example.com", 7), None);
    }

    #[test]
    fn reconnects_back_off_to_five_minutes() {
        let s = Duration::from_secs;
        let w: Vec<_> = [1, 2, 3, 4, 9, 10, 50].map(reconnect_after).to_vec();
        assert_eq!(w, [s(1), s(2), s(4), s(8), s(256), s(256), s(256)]);
        assert_eq!(reconnect_after(0), s(1));
        assert!(IDLE_RENEW < Duration::from_secs(29 * 60));
        assert!(IDLE_SILENCE < IDLE_RENEW);
    }

    #[test]
    fn bodies_come_in_batches_bounded_in_count_and_bytes() {
        let b = |sizes: &[u64]| batch(sizes.iter().copied(), 3, 100);
        assert_eq!(b(&[10, 10, 10, 10]), 3, "by count");
        assert_eq!(b(&[60, 30, 20]), 2, "by bytes");
        assert_eq!(b(&[500, 1]), 1, "a large one goes alone");
        assert_eq!(b(&[]), 0);
    }
}
