//! `[[channel]]`: messaging accounts. Each names the queue its new threads wait in and
//! the secrets its provider signs with; its provider's address is configurable so
//! sandboxes and tests point elsewhere.
//!
//! ```toml
//! [[channel]]
//! name = "acme-whatsapp"
//! kind = "whatsapp"                 # Meta's WhatsApp Cloud API
//! queue = "support"
//! app_secret = "…"                  # checks X-Hub-Signature-256
//! verify_token = "…"                # answers Meta's webhook verification
//! access_token = "…"                # Bearer token for sending
//! phone_number_id = "1234567890"    # the business number's id
//! api_base = "https://graph.facebook.com"
//! api_version = "v21.0"
//! templates = [{ name = "order_update", language = "es" }]
//! ```
//!
//! Only `whatsapp` is built so far; `twilio` and `open` (issue 17) are refused with
//! that said, not accepted and ignored.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Whatsapp,
    Twilio,
    Open,
}

impl ChannelKind {
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Twilio => "twilio",
            ChannelKind::Open => "open",
        }
    }
}

/// An approved message template an agent may send outside the reply window.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: String,
    pub language: String,
    /// How many body parameters (`{{1}}`...) it takes.
    #[serde(default)]
    pub parameters: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// In the webhook path (`/webhooks/whatsapp/{name}`): letters, digits, `-`, `_`.
    pub name: String,
    pub kind: ChannelKind,
    /// The queue new threads wait in (a `[[queue]]`).
    pub queue: String,
    /// Priority of new threads (0-9).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// WhatsApp: the app secret that signs Meta's posts.
    #[serde(default)]
    pub app_secret: String,
    /// WhatsApp: what Meta's verification request must carry.
    #[serde(default)]
    pub verify_token: String,
    /// WhatsApp: the Graph API token for sending (empty: replies stay queued, saying
    /// why).
    #[serde(default)]
    pub access_token: String,
    /// WhatsApp: the business number's id (in the send URL; notifications for another
    /// number are refused).
    #[serde(default)]
    pub phone_number_id: String,
    /// Where the Graph API is.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Templates an agent may send once the reply window has closed.
    #[serde(default)]
    pub templates: Vec<TemplateConfig>,
}

fn default_priority() -> u8 {
    5
}

fn default_api_base() -> String {
    "https://graph.facebook.com".into()
}

fn default_api_version() -> String {
    "v21.0".into()
}

impl ChannelConfig {
    /// What is wrong with the account, as (key, value, reason) for the config's error.
    pub(super) fn problem(&self) -> Option<(&'static str, String, String)> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_name {
            return Some((
                "name",
                self.name.clone(),
                format!(
                    "channel \"{}\": a name is 1-64 letters, digits, - or _",
                    self.name
                ),
            ));
        }
        if self.kind != ChannelKind::Whatsapp {
            return Some((
                "kind",
                self.kind.name().into(),
                format!(
                    "channel \"{}\": kind \"{}\" is not built yet (only \"whatsapp\")",
                    self.name,
                    self.kind.name()
                ),
            ));
        }
        if self.priority > 9 {
            return Some((
                "priority",
                self.priority.to_string(),
                "must be 0 to 9".into(),
            ));
        }
        if self.app_secret.len() < 8 {
            return Some((
                "app_secret",
                self.app_secret.clone(),
                format!("channel \"{}\": a WhatsApp account needs its app_secret (the one Meta signs with)", self.name),
            ));
        }
        if self.verify_token.is_empty() {
            return Some((
                "verify_token",
                String::new(),
                format!(
                    "channel \"{}\": a WhatsApp account needs a verify_token",
                    self.name
                ),
            ));
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://"))
            || self.api_base.ends_with('/')
        {
            return Some((
                "api_base",
                self.api_base.clone(),
                format!(
                    "\"{}\" is not a base address (http(s)://host, no trailing /)",
                    self.api_base
                ),
            ));
        }
        let segment = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        };
        if !segment(&self.api_version) {
            return Some(("api_version", self.api_version.clone(), "like v21.0".into()));
        }
        if !self.phone_number_id.is_empty() && !segment(&self.phone_number_id) {
            return Some((
                "phone_number_id",
                self.phone_number_id.clone(),
                "the number's id, digits as Meta shows it".into(),
            ));
        }
        None
    }

    /// The demo WhatsApp account: signed with `demo-app-secret`, verified with
    /// `demo-verify`, no sending until an access token is configured.
    pub fn demo_whatsapp() -> ChannelConfig {
        ChannelConfig {
            name: "demo-whatsapp".into(),
            kind: ChannelKind::Whatsapp,
            queue: "support".into(),
            priority: default_priority(),
            app_secret: "demo-app-secret".into(),
            verify_token: "demo-verify".into(),
            access_token: String::new(),
            phone_number_id: String::new(),
            api_base: default_api_base(),
            api_version: default_api_version(),
            templates: vec![TemplateConfig {
                name: "follow_up".into(),
                language: "en".into(),
                parameters: 1,
            }],
        }
    }
}
