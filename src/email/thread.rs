//! Which case an inbound message belongs to (sans-IO). In order: the signed
//! plus-address token of our replies' `Reply-To` (`support+c42.<mac>@…`, which
//! survives providers that rewrite Message-IDs); then `In-Reply-To` and each
//! `References` id among the messages we sent and received; then a `[#42]` tag in the
//! subject. A match counts only when its sender may join that case (an address of the
//! case's customer, or one the case's mail went to), so a second recipient of the
//! same mail does not join someone else's case. Otherwise the sender's open case, or a
//! new one (the caller's one-open-case rule).
//!
//! The driver gathers [`Facts`] for the [`Clues`] a message carries (the store's
//! lookups), then [`resolve`] decides.

use super::parse::Mail;
use std::collections::HashMap;

/// The bytes of a token's MAC kept (hex): 48 bits, enough that guessing one is
/// hopeless at mail rates, short enough for an address.
const MAC_HEX: usize = 12;

/// The plus-address token for `conversation`, signed with `key`: `c42.<mac>`.
pub fn token(key: &[u8], conversation: i64) -> String {
    let mac =
        crate::channels::signature::hmac_sha256(key, format!("case:{conversation}").as_bytes());
    let hex = crate::channels::signature::hex(&mac);
    format!("c{conversation}.{}", &hex[..MAC_HEX])
}

/// The conversation a token names, if its MAC is ours (constant time).
pub fn check_token(key: &[u8], t: &str) -> Option<i64> {
    let (c, mac) = t.strip_prefix('c')?.split_once('.')?;
    let conversation: i64 = c.parse().ok()?;
    let want = token(key, conversation);
    let got = format!("c{c}.{}", mac.to_ascii_lowercase());
    (got.len() == want.len()
        && got
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |d, (a, b)| d | (a ^ b))
            == 0)
        .then_some(conversation)
}

/// `support@example.com` with `token` as its detail: `support+token@example.com`.
pub fn plus_address(address: &str, token: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => address.to_string(),
    }
}

/// `Re: <subject> [#42]`: one `Re:` (any `Re:`/`RE:`/`Aw:`/`Fwd:`… in front folded
/// into it) and one case tag.
pub fn reply_subject(subject: &str, conversation: i64) -> String {
    // A header's value: a line break or control character from the customer's
    // subject never reaches our headers.
    let flat: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    let base = base_subject(&flat);
    let base = strip_tag(&base);
    let base = if base.is_empty() {
        "(no subject)"
    } else {
        &base
    };
    format!("Re: {base} [#{conversation}]")
}

/// The subject of a message that starts a conversation on a case (an agent writing
/// from a call or chat): the case's tag, so an answer finds it.
pub fn new_subject(conversation: i64) -> String {
    format!("Your case [#{conversation}]")
}

/// The subject without reply and forward prefixes (`Re:`, `RE[2]:`, `Fwd:`, `Fw:`,
/// `Aw:`, `Rv:`, `Tr:`).
pub fn base_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let cut = [
            "re", "fwd", "fw", "aw", "rv", "tr", "wg", "sv", "res", "enc",
        ]
        .iter()
        .find_map(|p| {
            let rest = lower.strip_prefix(p)?;
            let rest =
                rest.trim_start_matches(|c: char| c == '[' || c.is_ascii_digit() || c == ']');
            let rest = rest.strip_prefix(':')?;
            // ASCII lower-casing keeps byte lengths: what was consumed of `s`.
            Some(lower.len() - rest.len())
        });
        match cut {
            Some(n) => s = s[n..].trim_start(),
            None => return s.to_string(),
        }
    }
}

fn strip_tag(s: &str) -> String {
    match case_tag(s) {
        Some(c) => s.replace(&format!("[#{c}]"), "").trim().to_string(),
        None => s.trim().to_string(),
    }
}

/// The last `[#42]` in a subject.
pub fn case_tag(subject: &str) -> Option<i64> {
    let mut found = None;
    let mut rest = subject;
    while let Some(i) = rest.find("[#") {
        let after = &rest[i + 2..];
        if let Some(end) = after.find(']') {
            if let Ok(n) = after[..end].trim().parse::<i64>() {
                if n > 0 {
                    found = Some(n);
                }
            }
        }
        rest = after;
    }
    found
}

/// What a message offers to place it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clues {
    /// A valid token in an address it was sent to: its conversation.
    pub token: Option<i64>,
    /// `In-Reply-To` first, then `References` newest first.
    pub ids: Vec<String>,
    /// A `[#42]` in the subject.
    pub tag: Option<i64>,
}

/// Reads the clues of `mail` sent to `mailbox` (our address): tokens are looked for
/// in the recipients whose address is the mailbox's with a `+` detail.
pub fn clues(mail: &Mail, mailbox: &str, key: &[u8]) -> Clues {
    let (local, domain) = mailbox
        .to_ascii_lowercase()
        .split_once('@')
        .map(|(l, d)| (l.to_string(), d.to_string()))
        .unwrap_or_default();
    let token = mail.recipients.iter().find_map(|r| {
        let (l, d) = r.split_once('@')?;
        let detail = l.strip_prefix(&local)?.strip_prefix('+')?;
        (d == domain).then_some(())?;
        check_token(key, detail)
    });
    let mut ids: Vec<String> = mail.in_reply_to.clone();
    for r in mail.references.iter().rev() {
        if !ids.contains(r) {
            ids.push(r.clone());
        }
    }
    ids.truncate(64);
    Clues {
        token,
        ids,
        tag: case_tag(&mail.subject),
    }
}

/// A case as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Case {
    pub customer: Option<i64>,
    /// Addresses that may write on it: the customer's e-mail identities, and every
    /// address the case's mail (ours and theirs) was from or to... as the driver
    /// gathers them.
    pub addresses: Vec<String>,
}

/// What the store knows about the clues.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// Message-ids we sent or received, with their conversation.
    pub messages: HashMap<String, i64>,
    /// The cases named by the token, the ids and the tag.
    pub cases: HashMap<i64, Case>,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this case, found by `by` (`token`, `reference`, `subject tag`).
    Case { conversation: i64, by: &'static str },
    /// On the sender's open case, or a new one.
    Sender,
}

/// Decides where a message from `sender` with `clues` goes (see the module).
pub fn resolve(clues: &Clues, sender: &str, facts: &Facts) -> Placement {
    let sender = sender.to_ascii_lowercase();
    let may_join = |c: i64| {
        facts.cases.get(&c).is_some_and(|case| {
            case.addresses
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&sender))
        })
    };
    let mut candidates: Vec<(i64, &'static str)> = Vec::new();
    if let Some(c) = clues.token {
        candidates.push((c, "token"));
    }
    for id in &clues.ids {
        if let Some(&c) = facts.messages.get(id) {
            candidates.push((c, "reference"));
        }
    }
    if let Some(c) = clues.tag {
        candidates.push((c, "subject tag"));
    }
    for (c, by) in candidates {
        if may_join(c) {
            return Placement::Case {
                conversation: c,
                by,
            };
        }
    }
    Placement::Sender
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_case_and_refuse_a_forgery() {
        let k = b"0123456789abcdef0123456789abcdef";
        let t = token(k, 42);
        assert!(t.starts_with("c42.") && t.len() == 4 + MAC_HEX, "{t}");
        assert_eq!(check_token(k, &t), Some(42));
        assert_eq!(
            check_token(k, &t.to_uppercase().replacen('C', "c", 1)),
            Some(42)
        );
        assert_eq!(check_token(k, &t.replace("c42", "c43")), None);
        assert_eq!(check_token(b"another key", &t), None);
        assert_eq!(check_token(k, "c42"), None);
        assert_eq!(check_token(k, "x42.000000000000"), None);
        assert_eq!(
            plus_address("support@acme.test", &t),
            format!("support+{t}@acme.test")
        );
    }

    #[test]
    fn subjects_get_one_re_and_one_tag() {
        assert_eq!(reply_subject("My order", 7), "Re: My order [#7]");
        assert_eq!(
            reply_subject("RE: Re: Fwd: My order [#7]", 7),
            "Re: My order [#7]"
        );
        assert_eq!(
            reply_subject("Aw: RE[2]: Mi pedido", 9),
            "Re: Mi pedido [#9]"
        );
        assert_eq!(reply_subject("", 3), "Re: (no subject) [#3]");
        assert_eq!(
            reply_subject("Order\r\nBcc: eve@example.org", 3),
            "Re: Order  Bcc: eve@example.org [#3]",
            "no header of the customer's making"
        );
        assert_eq!(
            reply_subject("Regarding my order", 3),
            "Re: Regarding my order [#3]"
        );
        assert_eq!(case_tag("Re: x [#12] and [#13]"), Some(13));
        assert_eq!(case_tag(&new_subject(5)), Some(5));
        assert_eq!(case_tag("Re: x [#abc] [#0]"), None);
    }
}
