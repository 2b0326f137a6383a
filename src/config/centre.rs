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
    /// When the queue is staffed, for the KPIs' business-hours first response time
    /// (`{ timezone = "America/Guayaquil", open = { "mon-fri" = "08:00-18:00" },
    /// holidays = ["2026-12-25"] }`).
    #[serde(
        default,
        deserialize_with = "checked_hours",
        skip_serializing_if = "Option::is_none"
    )]
    pub hours: Option<QueueHours>,
}

/// A queue's opening hours as written (checked when read: [`QueueHours::hours`]).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueHours {
    pub timezone: String,
    /// Days (`mon`, `mon-fri`, `sat,sun`, `daily`) to one range or a list
    /// (`"09:00-13:00"`, `["09:00-13:00", "14:00-18:00"]`).
    pub open: std::collections::BTreeMap<String, Ranges>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// One time range or several.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Ranges {
    One(String),
    Many(Vec<String>),
}

impl QueueHours {
    /// The hours the KPIs count with, or what is wrong with them.
    pub fn hours(&self) -> Result<crate::dialplan::model::Hours, String> {
        use crate::dialplan::decode::{parse_days, parse_range};
        let tz = jiff::tz::TimeZone::get(&self.timezone).map_err(|_| {
            format!(
                "timezone \"{}\" is not a time zone name like America/Guayaquil",
                self.timezone
            )
        })?;
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        if self.open.is_empty() {
            return Err(
                "open needs at least one day, like { \"mon-fri\" = \"08:00-18:00\" }".into(),
            );
        }
        for (days, ranges) in &self.open {
            let set = parse_days(days).ok_or_else(|| {
                format!(
                    "\"{days}\" is not a day or days (mon, tue, ..., sun, mon-fri, sat,sun, daily)"
                )
            })?;
            let list = match ranges {
                Ranges::One(r) => std::slice::from_ref(r),
                Ranges::Many(v) => v.as_slice(),
            };
            for r in list {
                let iv = parse_range(r).ok_or_else(|| {
                    format!("\"{r}\" is not a time range like 09:00-17:30 (24-hour clock, end after start; 24:00 is midnight)")
                })?;
                for d in &set {
                    week[*d].push(iv);
                }
            }
        }
        let holidays = self
            .holidays
            .iter()
            .map(|h| {
                h.trim()
                    .parse::<jiff::civil::Date>()
                    .map_err(|_| format!("holiday \"{h}\" is not a date like 2026-12-25"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::dialplan::model::Hours {
            tz,
            tz_name: self.timezone.clone(),
            week,
            holidays,
            open: None,
            closed: None,
        })
    }
}

fn checked_hours<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<QueueHours>, D::Error> {
    let h = QueueHours::deserialize(d)?;
    h.hours().map_err(serde::de::Error::custom)?;
    Ok(Some(h))
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
            hours: None,
        }
    }
}

/// `[[supervisor]]`: someone who watches the agents of their teams and the queues
/// they are given, and steps into that work (nothing else).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    /// Login name.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default)]
    pub display_name: String,
    /// The agents whose `team` is one of these.
    #[serde(default)]
    pub teams: Vec<String>,
    /// These queues, their work and the agents who serve them.
    #[serde(default)]
    pub queues: Vec<String>,
    /// The SIP user (a `[[user]]`) whose phone rings when they listen, whisper or
    /// barge from their desk phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// The centre's privacy officer: may read and change customers' consent, export
    /// a customer's data and erase a customer (`/api/privacy`), as the admin may.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privacy_officer: bool,
}

impl SupervisorConfig {
    /// What is wrong with this supervisor, given the queues there are: (key, value,
    /// reason).
    pub fn problem(&self, queues: &[&str]) -> Option<(&'static str, String, String)> {
        let who = &self.name;
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Some((
                "name",
                self.name.clone(),
                "a supervisor's name must be 1-64 letters, digits, . _ -".into(),
            ));
        }
        if !self.password.is_empty() && self.password.len() < 8 {
            return Some((
                "password",
                self.password.clone(),
                format!("supervisor \"{who}\": a password needs at least 8 characters"),
            ));
        }
        if self.teams.is_empty() && self.queues.is_empty() && !self.privacy_officer {
            return Some((
                "name",
                self.name.clone(),
                format!("supervisor \"{who}\" needs teams or queues to supervise (or privacy_officer = true)"),
            ));
        }
        if let Some(q) = self.queues.iter().find(|q| !queues.contains(&q.as_str())) {
            return Some((
                "queues",
                q.clone(),
                format!("supervisor \"{who}\": no queue named \"{q}\""),
            ));
        }
        if let Some(t) = self.teams.iter().find(|t| t.is_empty() || t.len() > 64) {
            return Some((
                "teams",
                t.clone(),
                format!("supervisor \"{who}\": a team name must be 1-64 characters"),
            ));
        }
        None
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
    /// The first-level bot answers new chats from the knowledge base (`[kb]`) and
    /// hands them to the queue when the customer asks for a person, on a hand-off
    /// topic or after two messages it could not answer.
    pub bot: bool,
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
            bot: false,
        }
    }
}
