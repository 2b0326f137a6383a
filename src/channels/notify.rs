//! Proactive notifications, sans-IO: which channel a business-initiated message goes
//! on, given the customer's preference order, the accounts, their consents and what
//! the message carries. A WhatsApp message a business starts must be an approved
//! template; an SMS carries text; a marketing message never goes where the customer
//! opted out.

use super::whatsapp::Outgoing;
use crate::config::{ChannelConfig, ChannelKind};
use serde::Deserialize;
use std::sync::Arc;

/// `POST /api/notifications`'s body.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The customer by id …
    #[serde(default)]
    pub customer: Option<i64>,
    /// … or by an identity (a phone number).
    #[serde(default)]
    pub identity: Option<String>,
    /// For WhatsApp: an approved template of the account.
    #[serde(default)]
    pub template: Option<TemplateRef>,
    /// For SMS (and a WhatsApp reply inside the window is not what this is for).
    #[serde(default)]
    pub text: Option<String>,
    /// Channels to try, in order: `whatsapp`, `sms` or accounts' names.
    pub channels: Vec<String>,
    /// A marketing message: refused where the customer withdrew that consent.
    #[serde(default)]
    pub marketing: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    #[serde(default)]
    pub parameters: Vec<String>,
}

/// What to send, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    pub account: Arc<ChannelConfig>,
    /// The channel as asked for (`whatsapp`, `sms`, an account's name).
    pub channel: String,
    pub message: Outgoing,
}

/// The first channel of `r.channels` that can take the notification, or why each
/// cannot (in order). `withdrawn(consent)` says whether the customer withdrew one
/// (`marketing:whatsapp`...).
pub fn plan(
    r: &Request,
    accounts: &[Arc<ChannelConfig>],
    withdrawn: impl Fn(&str) -> bool,
) -> Result<Plan, Vec<String>> {
    let mut why = Vec::new();
    if r.channels.is_empty() || r.channels.len() > 5 {
        return Err(vec!["channels lists 1 to 5 channels to try in order".into()]);
    }
    for channel in &r.channels {
        let a = match super::account_for(accounts, channel) {
            Ok(a) => a,
            Err(e) => {
                why.push(format!("{channel}: {e}"));
                continue;
            }
        };
        let consent = a.marketing_consent("");
        if r.marketing && withdrawn(&consent) {
            why.push(format!(
                "{channel}: the customer opted out of marketing there ({consent} withdrawn)"
            ));
            continue;
        }
        let message = match a.kind {
            ChannelKind::Whatsapp => {
                let Some(t) = &r.template else {
                    why.push(format!(
                        "{channel}: a message the business starts on WhatsApp must be an approved template"
                    ));
                    continue;
                };
                let Some(known) = a.templates.iter().find(|k| k.name == t.name) else {
                    why.push(format!(
                        "{channel}: no template {:?} on account {}",
                        t.name, a.name
                    ));
                    continue;
                };
                if t.parameters.len() != known.parameters as usize {
                    why.push(format!(
                        "{channel}: template {} takes {} parameters, not {}",
                        t.name,
                        known.parameters,
                        t.parameters.len()
                    ));
                    continue;
                }
                Outgoing::Template {
                    name: known.name.clone(),
                    language: known.language.clone(),
                    parameters: t.parameters.clone(),
                }
            }
            _ => match r.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                Some(t) if t.chars().count() <= 1600 => Outgoing::Text {
                    body: t.to_string(),
                    reply_to: None,
                },
                Some(_) => {
                    why.push(format!("{channel}: text is at most 1600 characters"));
                    continue;
                }
                None => {
                    why.push(format!("{channel}: an SMS needs text"));
                    continue;
                }
            },
        };
        return Ok(Plan {
            account: a.clone(),
            channel: channel.clone(),
            message,
        });
    }
    Err(why)
}

/// A digest of the request (what an `Idempotency-Key` is bound to).
pub fn digest(body: &[u8]) -> String {
    use sha2::Digest;
    super::signature::hex(&sha2::Sha256::digest(body))
}

/// An `Idempotency-Key` as taken: 1-128 printable ASCII characters.
pub fn key_ok(k: &str) -> bool {
    !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TemplateConfig;

    fn accounts() -> Vec<Arc<ChannelConfig>> {
        let wa = ChannelConfig {
            name: "wa".into(),
            templates: vec![TemplateConfig {
                name: "order_update".into(),
                language: "es".into(),
                parameters: 1,
                content_sid: String::new(),
            }],
            ..ChannelConfig::demo_whatsapp()
        };
        let sms = ChannelConfig {
            name: "sms".into(),
            kind: ChannelKind::Twilio,
            ..ChannelConfig::demo_whatsapp()
        };
        vec![Arc::new(wa), Arc::new(sms)]
    }

    fn req(v: serde_json::Value) -> Request {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_first_channel_that_can_take_it_wins() {
        let r = req(
            serde_json::json!({"customer": 1, "channels": ["whatsapp", "sms"],
            "template": {"name": "order_update", "parameters": ["1234"]}, "text": "Order 1234 ships today"}),
        );
        let p = plan(&r, &accounts(), |_| false).unwrap();
        assert_eq!(p.account.name, "wa");
        assert!(
            matches!(&p.message, Outgoing::Template { name, language, parameters } if name == "order_update" && language == "es" && parameters == &["1234"])
        );
        // Without a template WhatsApp cannot start it: SMS does.
        let r = req(
            serde_json::json!({"customer": 1, "channels": ["whatsapp", "sms"], "text": "Order 1234 ships"}),
        );
        let p = plan(&r, &accounts(), |_| false).unwrap();
        assert_eq!(p.account.name, "sms");
        assert!(matches!(&p.message, Outgoing::Text { body, .. } if body == "Order 1234 ships"));
    }

    #[test]
    fn marketing_never_goes_where_the_customer_opted_out_and_each_refusal_says_why() {
        let r = req(
            serde_json::json!({"customer": 1, "channels": ["sms", "whatsapp", "fax"],
            "template": {"name": "order_update", "parameters": []}, "text": "Sale!", "marketing": true}),
        );
        let why = plan(&r, &accounts(), |c| c == "marketing:sms").unwrap_err();
        assert!(
            why[0].contains("opted out") && why[0].contains("marketing:sms"),
            "{why:?}"
        );
        assert!(why[1].contains("takes 1 parameters, not 0"), "{why:?}");
        assert!(why[2].starts_with("fax: channel must be"), "{why:?}");
        // Not marketing: the opt-out does not stop a service message.
        let r = Request {
            marketing: false,
            ..r
        };
        assert_eq!(plan(&r, &accounts(), |_| true).unwrap().account.name, "sms");
        let none = Request {
            channels: vec![],
            ..r
        };
        assert!(plan(&none, &accounts(), |_| false).unwrap_err()[0].contains("1 to 5"));
    }

    #[test]
    fn keys_and_digests() {
        assert!(key_ok("order-1234-shipped"));
        assert!(!key_ok("") && !key_ok("has space") && !key_ok(&"k".repeat(129)));
        assert_eq!(digest(b"a"), digest(b"a"));
        assert_ne!(digest(b"a"), digest(b"b"));
    }
}
