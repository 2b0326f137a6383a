//! `[[queue]]`, `[[agent]]`, `[chat]` and `[[webhook]]`.

use serde::Deserialize;

/// `[[webhook]]`: screen-pop events posted to a CRM, signed with HMAC-SHA256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Key for the `X-Omnigate-Signature` header (`sha256=` hex HMAC of
    /// `<timestamp>.<body>`, timestamp in `X-Omnigate-Timestamp`).
    pub secret: String,
    /// Events to post: `call.offered`, `call.connected`, `chat.offered`,
    /// `chat.connected` (default: all four).
    #[serde(
        default = "default_webhook_events",
        deserialize_with = "webhook_events"
    )]
    pub events: Vec<String>,
    /// Attempts before giving up (1-10), with 1 s, 2 s, 4 s... between them.
    #[serde(default = "default_webhook_attempts")]
    pub attempts: u32,
}

pub(super) const WEBHOOK_EVENTS: [&str; 4] = [
    "call.offered",
    "call.connected",
    "chat.offered",
    "chat.connected",
];

/// Webhook event names, each one of [`WEBHOOK_EVENTS`].
fn webhook_events<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if let Some(e) = v.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
        return Err(serde::de::Error::custom(format!(
            "\"{e}\" is not one of {}",
            WEBHOOK_EVENTS.join(", ")
        )));
    }
    Ok(v)
}

fn default_webhook_events() -> Vec<String> {
    WEBHOOK_EVENTS.iter().map(|e| e.to_string()).collect()
}

fn default_webhook_attempts() -> u32 {
    4
}

/// `[[queue]]`: where work waits for agents and how it is handed out.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// longest_idle (the default), least_occupied, round_robin, skills_weighted or
    /// ring_all; anything else is refused where it is read.
    #[serde(default = "default_strategy")]
    pub strategy: crate::routing::engine::Strategy,
    /// Service-level target: answered within this many seconds counts as in SLA.
    #[serde(default = "default_sla")]
    pub sla_secs: u64,
    /// An agent who does not accept an offer within this goes to away.
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout_secs: u64,
    /// The agent who last served the customer gets the first offer for this long (0: off).
    #[serde(default)]
    pub sticky_secs: u64,
    /// After waiting this long, move on to `overflow_to` (0: never).
    #[serde(default)]
    pub overflow_secs: u64,
    /// Another queue's name, or "voicemail".
    #[serde(default)]
    pub overflow_to: String,
    /// Only agents of these teams take work here (empty: any member).
    #[serde(default)]
    pub teams: Vec<String>,
    /// After-work time given to agents when work from this queue ends.
    #[serde(default)]
    pub wrap_up_secs: u64,
    /// Ready-made chat replies (`{ title = "...", text = "Hello {first_name}..." }`;
    /// variables: first_name, name, agent, queue).
    #[serde(default, deserialize_with = "canned_list")]
    pub canned: Vec<crate::canned::Canned>,
    /// The queue's agents see its service level today in their status bar.
    #[serde(default = "yes")]
    pub agents_see_service_level: bool,
}

fn canned_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::canned::Canned>, D::Error> {
    let v = Vec::<crate::canned::Canned>::deserialize(d)?;
    crate::canned::check_all(&v).map_err(serde::de::Error::custom)?;
    Ok(v)
}

fn default_strategy() -> crate::routing::engine::Strategy {
    crate::routing::engine::Strategy::LongestIdle
}
fn default_sla() -> u64 {
    20
}
fn default_offer_timeout() -> u64 {
    15
}

impl QueueConfig {
    pub fn new(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.into(),
            strategy: default_strategy(),
            sla_secs: default_sla(),
            offer_timeout_secs: default_offer_timeout(),
            sticky_secs: 0,
            overflow_secs: 0,
            overflow_to: String::new(),
            teams: vec![],
            wrap_up_secs: 0,
            canned: vec![],
            agents_see_service_level: true,
        }
    }
}

/// `[[agent]]`: someone who takes calls and chats.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Login name.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default)]
    pub display_name: String,
    /// Skill → level 1-10.
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, u8>,
    /// Queues they serve.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Items at once per channel: voice, video, chat, email, sms, whatsapp, api
    /// (default: voice 1, chat 3, whatsapp 3, sms 3).
    #[serde(default = "default_capacity")]
    pub capacity: std::collections::BTreeMap<String, u8>,
    /// A call keeps other work away.
    #[serde(default = "yes")]
    pub call_blocks_others: bool,
    #[serde(default)]
    pub team: Option<String>,
    /// The SIP user (a `[[user]]`) whose phone rings for their calls; without one they
    /// take calls in the browser (the agent desktop).
    #[serde(default)]
    pub extension: Option<String>,
}

fn yes() -> bool {
    true
}
pub(super) fn default_capacity() -> std::collections::BTreeMap<String, u8> {
    [
        ("voice".to_string(), 1),
        ("chat".to_string(), 3),
        ("whatsapp".to_string(), 3),
        ("sms".to_string(), 3),
        ("api".to_string(), 3),
        ("email".to_string(), 5),
    ]
    .into()
}

/// `[chat]`: the customer web chat at `/chat`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Queue new chats wait in (must be a `[[queue]]`; empty: the chat page is off).
    pub queue: String,
    /// Priority of new chats (0-9).
    pub priority: u8,
    /// Greeting shown to a customer when the chat opens.
    pub greeting: String,
    /// A chat whose customer has been gone (no page connected) this long is closed as
    /// abandoned.
    pub abandon_after_secs: u64,
    /// Chats open at once on this node; beyond, new ones are asked to try later.
    pub max_open: usize,
    /// New chats one address may open per minute.
    pub starts_per_minute: u32,
    /// Chats waiting for an agent in the chat queue; beyond, new ones are asked to try
    /// later (the queue cannot fill with chats nobody will answer soon).
    pub max_waiting: usize,
    /// The business's name at the top of the chat page (empty: "Chat with us").
    pub business_name: String,
    /// The short privacy notice under the chat form.
    pub privacy_notice: String,
    /// Where the full privacy policy is (an `https://` or `http://` address; empty:
    /// no link).
    #[serde(deserialize_with = "web_address")]
    pub privacy_url: String,
}

fn web_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let u = String::deserialize(d)?;
    let ok = u.is_empty()
        || ((u.starts_with("https://") || u.starts_with("http://"))
            && u.len() <= 500
            && !u
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"'));
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "\"{u}\" is not a web address: write one starting with https://"
        )));
    }
    Ok(u)
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            queue: String::new(),
            priority: 5,
            greeting: "Thanks for getting in touch. An agent will be with you shortly.".into(),
            abandon_after_secs: 300,
            max_open: 1000,
            starts_per_minute: 5,
            max_waiting: 200,
            business_name: String::new(),
            privacy_notice: "We keep this conversation and the contact details you give us to answer you and to improve our service. You may ask us to see or erase them.".into(),
            privacy_url: String::new(),
        }
    }
}
