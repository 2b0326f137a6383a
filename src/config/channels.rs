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
//!
//! ```toml
//! [[channel]]
//! name = "acme-sms"
//! kind = "twilio"                   # Twilio Messaging (SMS)
//! queue = "support"
//! account_sid = "AC…"
//! auth_token = "…"                  # Basic auth for sending; checks X-Twilio-Signature
//! from = "+15550001111"             # or messaging_service_sid = "MG…"
//! public_url = "https://cc.example.com"  # what Twilio posts to, as it signs it
//! # WhatsApp through Twilio (from = "whatsapp:+1…"): its Content API templates
//! templates = [{ name = "order_update", content_sid = "HX…", parameters = 1 }]
//! ```
//!
//!
//! ```toml
//! [[channel]]
//! name = "shop-app"
//! kind = "open"                     # the open channel API (any channel of your own)
//! queue = "support"
//! secret = "…"                      # signs both ways (X-Omnigate-Signature)
//! callback_url = "https://connector.example.com/omnigate"  # where replies go
//! send_attempts = 5                 # 1 s, 2 s, 4 s … between them
//! send_timeout_secs = 10            # one attempt's wait for an answer (any kind)
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Whatsapp,
    Twilio,
    Open,
    /// A `[[mailbox]]`'s threads (never written in `[[channel]]`: made from the
    /// mailbox).
    #[serde(skip_deserializing)]
    Email,
}

impl ChannelKind {
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Twilio => "twilio",
            ChannelKind::Open => "open",
            ChannelKind::Email => "email",
        }
    }
}

/// An approved message template an agent may send outside the reply window.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: String,
    /// Its language code (WhatsApp Cloud API: required).
    #[serde(default)]
    pub language: String,
    /// How many body parameters (`{{1}}`...) it takes.
    #[serde(default)]
    pub parameters: u8,
    /// Twilio (WhatsApp through Twilio): the Content API template's sid (`HX` and 32
    /// hex digits), sent as `ContentSid` with the parameters as `ContentVariables`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_sid: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// Where the provider's API is (default: `https://graph.facebook.com` for
    /// WhatsApp, `https://api.twilio.com` for Twilio).
    #[serde(default)]
    pub api_base: String,
    /// Twilio: the account's SID (`AC…`) and auth token (Basic auth for sending; the
    /// token checks `X-Twilio-Signature`).
    #[serde(default)]
    pub account_sid: String,
    #[serde(default)]
    pub auth_token: String,
    /// Twilio: our number (E.164) replies go from, unless a messaging service sends.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub messaging_service_sid: String,
    /// Twilio: the public address Twilio posts to (`https://cc.example.com`), as it
    /// signs it: behind a proxy, what the outside sees. Status callbacks go there too.
    #[serde(default)]
    pub public_url: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Open: the shared secret both sides sign with (at least 16 characters).
    #[serde(default)]
    pub secret: String,
    /// Open: where agents' messages are posted (empty: they stay queued, saying why).
    #[serde(default)]
    pub callback_url: String,
    /// How many times one outbound message is tried while the provider fails or does
    /// not answer (1-10; waits of 1 s, 2 s, 4 s … between).
    #[serde(default = "default_send_attempts")]
    pub send_attempts: u32,
    /// How long one attempt may wait for the provider's answer before it counts as a
    /// time-out (and is retried): 1-60 s.
    #[serde(default = "default_send_timeout")]
    pub send_timeout_secs: u64,
    /// Templates an agent may send once the reply window has closed.
    #[serde(default)]
    pub templates: Vec<TemplateConfig>,
    /// A customer message that is one of these words (any case, trimmed) withdraws
    /// their marketing consent for this kind of channel (`marketing:whatsapp`,
    /// `marketing:sms`); the message still reaches the agent.
    #[serde(default = "default_opt_out")]
    pub opt_out: Vec<String>,
    /// The survey asked when an agent ends a thread (off when absent): see
    /// [`crate::channels::survey`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<crate::channels::survey::SurveyConfig>,
    /// The first-level bot answers new threads from the knowledge base (`[kb]`, the
    /// short answers) and hands them to `queue` (see `[chat] bot`).
    #[serde(default)]
    pub bot: bool,
    /// An e-mail thread's mailbox (kind `email` only).
    #[serde(skip)]
    pub mailbox: Option<std::sync::Arc<super::MailboxConfig>>,
}

fn default_priority() -> u8 {
    5
}

fn default_opt_out() -> Vec<String> {
    ["STOP", "BAJA", "CANCELAR"].map(String::from).to_vec()
}

fn default_send_attempts() -> u32 {
    crate::channels::SEND_ATTEMPTS
}

fn default_send_timeout() -> u64 {
    10
}

fn default_api_version() -> String {
    "v21.0".into()
}

impl ChannelConfig {
    /// Whether the account is configured to send (a WhatsApp token and number, an
    /// open channel's callback; a Twilio account always is).
    pub fn can_send(&self) -> bool {
        match self.kind {
            ChannelKind::Whatsapp => {
                !self.access_token.is_empty() && !self.phone_number_id.is_empty()
            }
            ChannelKind::Twilio => true,
            ChannelKind::Open => !self.callback_url.is_empty(),
            ChannelKind::Email => self.mailbox.is_some(),
        }
    }

    /// Whether `text` is an opt-out word of this account.
    pub fn is_opt_out(&self, text: &str) -> bool {
        let t = text.trim();
        self.opt_out.iter().any(|w| w.eq_ignore_ascii_case(t))
    }

    /// What a customer's opt-out withdraws on this account, for a thread whose
    /// replies go to `peer` (a Twilio `whatsapp:+…` address is WhatsApp; empty: the
    /// account's own kind).
    pub fn marketing_consent(&self, peer: &str) -> String {
        let kind = match self.kind {
            ChannelKind::Twilio if peer.starts_with(crate::channels::twilio::WHATSAPP_PREFIX) => {
                "whatsapp"
            }
            ChannelKind::Twilio => "sms",
            ChannelKind::Open => return format!("marketing:{}", self.name),
            ChannelKind::Email => "email",
            k => k.name(),
        };
        format!("marketing:{kind}")
    }

    /// The demo open channel account: signed with `demo-open-secret`, no callback
    /// until one is configured.
    pub fn demo_open() -> ChannelConfig {
        ChannelConfig {
            name: "demo-open".into(),
            kind: ChannelKind::Open,
            secret: "demo-open-secret".into(),
            app_secret: String::new(),
            verify_token: String::new(),
            templates: Vec::new(),
            ..ChannelConfig::demo_whatsapp()
        }
    }

    pub fn api_base(&self) -> &str {
        match (self.api_base.is_empty(), self.kind) {
            (false, _) => &self.api_base,
            (true, ChannelKind::Twilio) => "https://api.twilio.com",
            (true, _) => "https://graph.facebook.com",
        }
    }

    /// What is wrong with the account, for an API's refusal (the config file reports
    /// it at its line).
    pub fn check(&self) -> Result<(), String> {
        super::values::refusal(self.problem())
    }

    /// What is wrong with the account, as (key, value, reason) for the config's error.
    pub(super) fn problem(&self) -> Option<(&'static str, String, String)> {
        if let Some(p) = super::values::name_problem("channel", &self.name) {
            return Some(p);
        }
        if let Some(p) = self.survey.as_ref().and_then(|s| s.problem()) {
            return Some(p);
        }
        if !(1..=10).contains(&self.send_attempts) {
            return Some((
                "send_attempts",
                self.send_attempts.to_string(),
                "must be 1 to 10".into(),
            ));
        }
        if !(1..=60).contains(&self.send_timeout_secs) {
            return Some((
                "send_timeout_secs",
                self.send_timeout_secs.to_string(),
                "must be 1 to 60".into(),
            ));
        }
        if self.priority > 9 {
            return Some((
                "priority",
                self.priority.to_string(),
                "must be 0 to 9".into(),
            ));
        }
        let web = |u: &str| {
            (u.starts_with("https://") || u.starts_with("http://"))
                && !u.ends_with('/')
                && !u.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if !self.api_base.is_empty() && !web(&self.api_base) {
            return Some((
                "api_base",
                self.api_base.clone(),
                format!(
                    "\"{}\" is not a base address (http(s)://host, no trailing /)",
                    self.api_base
                ),
            ));
        }
        if self.kind == ChannelKind::Open {
            if self.secret.chars().count() < 16 {
                return Some((
                    "secret",
                    String::new(),
                    format!(
                        "channel \"{}\": an open channel needs a secret of at least 16 characters",
                        self.name
                    ),
                ));
            }
            if !self.callback_url.is_empty()
                && !((self.callback_url.starts_with("https://")
                    || self.callback_url.starts_with("http://"))
                    && !self
                        .callback_url
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control()))
            {
                return Some((
                    "callback_url",
                    self.callback_url.clone(),
                    format!("\"{}\" is not an http(s) URL", self.callback_url),
                ));
            }
            return None;
        }
        if self.kind == ChannelKind::Twilio {
            let missing = [
                ("account_sid", &self.account_sid),
                ("auth_token", &self.auth_token),
                ("public_url", &self.public_url),
            ]
            .into_iter()
            .find(|(_, v)| v.is_empty());
            if let Some((k, _)) = missing {
                return Some((
                    k,
                    String::new(),
                    format!("channel \"{}\": a Twilio account needs {k}", self.name),
                ));
            }
            if !web(&self.public_url) {
                return Some((
                    "public_url",
                    self.public_url.clone(),
                    format!(
                        "\"{}\" is not a base address (http(s)://host, no trailing /)",
                        self.public_url
                    ),
                ));
            }
            if self.from.is_empty() && self.messaging_service_sid.is_empty() {
                return Some((
                    "from",
                    String::new(),
                    format!("channel \"{}\": a Twilio account sends from a number (from) or a messaging_service_sid", self.name),
                ));
            }
            if !self.account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Some((
                    "account_sid",
                    self.account_sid.clone(),
                    "letters and digits (AC…)".into(),
                ));
            }
            let content_sid = |t: &&TemplateConfig| {
                t.content_sid.len() == 34
                    && t.content_sid.starts_with("HX")
                    && t.content_sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
            };
            if let Some(t) = self.templates.iter().find(|t| !content_sid(t)) {
                return Some((
                    "templates",
                    t.content_sid.clone(),
                    format!(
                        "channel \"{}\": template \"{}\" needs its content_sid (HX and 32 hex digits, from Twilio's Content API)",
                        self.name, t.name
                    ),
                ));
            }
            return None;
        }
        if let Some(t) = self.templates.iter().find(|t| t.language.is_empty()) {
            return Some((
                "templates",
                String::new(),
                format!(
                    "channel \"{}\": template \"{}\" needs its language (the code Meta approved it in, like es or en_US)",
                    self.name, t.name
                ),
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
            api_base: String::new(),
            account_sid: String::new(),
            auth_token: String::new(),
            from: String::new(),
            messaging_service_sid: String::new(),
            public_url: String::new(),
            api_version: default_api_version(),
            secret: String::new(),
            callback_url: String::new(),
            send_attempts: default_send_attempts(),
            send_timeout_secs: default_send_timeout(),
            opt_out: default_opt_out(),
            survey: None,
            bot: false,
            templates: vec![TemplateConfig {
                name: "follow_up".into(),
                language: "en".into(),
                parameters: 1,
                content_sid: String::new(),
            }],
            mailbox: None,
        }
    }

    /// The account an e-mail thread of `m` goes through (its replies by SMTP).
    pub fn of_mailbox(m: &super::MailboxConfig) -> ChannelConfig {
        ChannelConfig {
            name: m.name.clone(),
            kind: ChannelKind::Email,
            queue: m.queue.clone(),
            priority: m.priority,
            app_secret: String::new(),
            verify_token: String::new(),
            send_attempts: m.send_attempts,
            send_timeout_secs: m.send_timeout_secs,
            opt_out: Vec::new(),
            templates: Vec::new(),
            mailbox: Some(std::sync::Arc::new(m.clone())),
            survey: m.survey.clone(),
            bot: m.bot,
            ..ChannelConfig::demo_whatsapp()
        }
    }
}
