//! Messaging channels (WhatsApp; Twilio SMS; the open channel API for any other):
//! the providers' wire formats and signatures as sans-IO functions. The HTTP
//! handlers in `api::channels` check and read what arrives, and the conversation core
//! carries each thread like a web chat.

pub mod notify;
pub mod open;
pub mod send;
pub mod signature;
pub mod survey;
pub mod twilio;
pub mod whatsapp;

/// Attempts at one outbound message before it is marked failed, unless the account
/// says otherwise (`send_attempts`).
pub const SEND_ATTEMPTS: u32 = 5;

/// How long to wait before attempt `attempt + 1` of a send whose attempt `attempt`
/// (from 1) failed in a way worth retrying: 1 s, 2 s, 4 s, 8 s …; `None` once
/// `attempts` are spent.
pub fn retry_after(attempt: u32, attempts: u32) -> Option<std::time::Duration> {
    (1..attempts.min(16))
        .contains(&attempt)
        .then(|| std::time::Duration::from_secs(1 << (attempt - 1)))
}

/// The account an agent's message to a customer's phone goes through, asked for as
/// `channel`: `sms` (a Twilio account), `whatsapp` (a WhatsApp account), or an
/// account's name; with several of a kind, one that can send (configured to) before
/// one that cannot (the demo account), then the first by name.
pub fn account_for<'a>(
    accounts: &'a [std::sync::Arc<crate::config::ChannelConfig>],
    channel: &str,
) -> Result<&'a std::sync::Arc<crate::config::ChannelConfig>, String> {
    use crate::config::ChannelKind;
    let kind = match channel {
        "sms" => Some(ChannelKind::Twilio),
        "whatsapp" => Some(ChannelKind::Whatsapp),
        _ => None,
    };
    let mut fit: Vec<_> = accounts
        .iter()
        .filter(|a| match kind {
            Some(k) => a.kind == k,
            None => a.name == channel && a.kind != ChannelKind::Open,
        })
        .collect();
    fit.sort_by(|a, b| (!a.can_send(), &a.name).cmp(&(!b.can_send(), &b.name)));
    fit.first().copied().ok_or_else(|| match kind {
        Some(_) => format!("no {channel} account is configured ([[channel]])"),
        None => format!(
            "channel must be sms, whatsapp or the name of one of those accounts, not {channel:?}"
        ),
    })
}

/// The channels an agent may text a customer's phone on (`sms`, `whatsapp`): those
/// with an account of their kind, in that order (the desktop's choice).
pub fn text_channels(
    accounts: &[std::sync::Arc<crate::config::ChannelConfig>],
) -> Vec<&'static str> {
    use crate::config::ChannelKind;
    [
        ("sms", ChannelKind::Twilio),
        ("whatsapp", ChannelKind::Whatsapp),
    ]
    .into_iter()
    .filter(|(_, k)| accounts.iter().any(|a| a.kind == *k))
    .map(|(c, _)| c)
    .collect()
}

/// A customer's message from any provider, as a thread takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The provider's id for it (a message delivered twice counts once by it).
    pub id: String,
    /// The customer's address (E.164 for phones).
    pub from: String,
    /// The provider's conversation it belongs to, where that is not the customer's
    /// address (an open channel's thread id).
    pub thread: Option<String>,
    /// The name the provider gives (a WhatsApp profile name).
    pub name: Option<String>,
    /// When they sent it (Unix s).
    pub at: u64,
    /// What the agent reads.
    pub text: String,
}

impl From<whatsapp::Inbound> for Incoming {
    fn from(m: whatsapp::Inbound) -> Incoming {
        Incoming {
            text: m.body.text(),
            id: m.id,
            from: m.from,
            thread: None,
            name: m.name,
            at: m.timestamp,
        }
    }
}

/// Where an outbound message has got to, in order: `queued` < `sent` < `delivered`
/// < `read`. A provider's later status for an earlier step (they arrive out of order)
/// changes nothing; `failed` ends a message that was not yet read, and only an
/// agent's retry (a new send) moves it again.
pub fn advances(old: &str, new: &str) -> bool {
    fn rank(s: &str) -> Option<u8> {
        ["queued", "sent", "delivered", "read"]
            .iter()
            .position(|x| *x == s)
            .map(|p| p as u8)
    }
    match (rank(old), new) {
        (None, _) => false, // failed (final) or unknown
        (Some(3), _) => false,
        (Some(_), "failed") => true,
        (Some(o), n) => rank(n).is_some_and(|n| n > o),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_are_retried_after_1_2_4_8_seconds_then_given_up() {
        use std::time::Duration;
        let waits: Vec<_> = (1..=6).map(|a| super::retry_after(a, 5)).collect();
        let s = Duration::from_secs;
        assert_eq!(
            waits,
            [Some(s(1)), Some(s(2)), Some(s(4)), Some(s(8)), None, None]
        );
        assert_eq!(super::retry_after(0, 5), None);
        assert_eq!(super::retry_after(1, 1), None, "one attempt: no retry");
        assert_eq!(super::retry_after(3, 10), Some(s(4)));
    }

    #[test]
    fn an_agents_message_to_a_phone_picks_its_account_by_kind_or_name() {
        use crate::config::{ChannelConfig, ChannelKind};
        use std::sync::Arc;
        let acc = |name: &str, kind| {
            Arc::new(ChannelConfig {
                name: name.into(),
                kind,
                ..ChannelConfig::demo_whatsapp()
            })
        };
        let all = [
            acc("wa-2", ChannelKind::Whatsapp),
            acc("sms", ChannelKind::Twilio),
            acc("wa-1", ChannelKind::Whatsapp),
            acc("shop", ChannelKind::Open),
        ];
        let name = |c: &str| super::account_for(&all, c).map(|a| a.name.clone());
        assert_eq!(name("whatsapp").unwrap(), "wa-1");
        let mut with_token = all.to_vec();
        with_token[0] = Arc::new(ChannelConfig {
            access_token: "t".into(),
            phone_number_id: "1".into(),
            ..(*all[0]).clone()
        });
        let sender = super::account_for(&with_token, "whatsapp").unwrap();
        assert_eq!(sender.name, "wa-2", "the one that can send");
        assert_eq!(name("sms").unwrap(), "sms");
        assert_eq!(name("wa-2").unwrap(), "wa-2");
        assert!(
            name("shop").unwrap_err().contains("not \"shop\""),
            "open threads are the connector's"
        );
        assert!(name("fax").unwrap_err().contains("sms, whatsapp"));
        assert!(super::account_for(&all[..1], "sms")
            .unwrap_err()
            .contains("no sms account"));
        // What the desktop offers to text on: the kinds with an account, sms first.
        assert_eq!(super::text_channels(&all), ["sms", "whatsapp"]);
        assert_eq!(super::text_channels(&all[..1]), ["whatsapp"]);
        assert!(super::text_channels(&all[3..]).is_empty(), "open only");
    }

    #[test]
    fn statuses_only_move_forward_and_failed_is_final() {
        use super::advances;
        assert!(
            advances("queued", "sent") && advances("sent", "read") && advances("sent", "delivered")
        );
        assert!(
            !advances("delivered", "sent"),
            "a late 'sent' after 'delivered'"
        );
        assert!(!advances("read", "delivered") && !advances("read", "failed"));
        assert!(advances("sent", "failed") && advances("delivered", "failed"));
        assert!(!advances("failed", "delivered") && !advances("failed", "sent"));
        assert!(!advances("sent", "sent") && !advances("sent", "bogus"));
    }
}
