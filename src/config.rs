//! Configuration: one TOML file, every key optional with a documented default (see
//! `omnigate.example.toml`), command-line flags on top. An unknown key or a bad value
//! stops start-up with `file:line:column` and the offending line.
//!
//! Without a file the node runs in demo mode: a demo trunk accepting calls from
//! 127.0.0.0/8 and demo users. With a file, nothing is accepted unless configured
//! (`demo = true` in the file restores the demo trunk and users).

use crate::sip::trunk::{Cidr, TrunkConfig};
use crate::sip::Transport;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    /// Demo mode: demo trunk from 127.0.0.0/8 and demo users. Default: true without a
    /// config file, false with one.
    pub demo: Option<bool>,
    pub sip: SipConfig,
    pub http: HttpConfig,
    pub rtp: RtpConfig,
    pub data: DataConfig,
    pub log: LogConfig,
    pub calls: CallsConfig,
    pub dialplan: DialplanConfig,
    pub shutdown: ShutdownConfig,
    #[serde(rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkToml>,
    #[serde(rename = "queue")]
    pub queues: Vec<QueueConfig>,
    #[serde(rename = "agent")]
    pub agents: Vec<AgentConfig>,
    pub chat: ChatConfig,
    pub webrtc: WebRtcConfig,
    #[serde(rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[webrtc]`: browser legs (agents answering calls in the desktop page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    /// The UDP port every browser leg shares (ICE, DTLS-SRTP); "off" (or 0): browser
    /// calls off.
    #[serde(deserialize_with = "port_or_off")]
    pub port: u16,
    /// Address browsers send to (our ICE host candidate), e.g. the public address of a
    /// NAT. Default: `[rtp] address`, else the SIP advertise address.
    pub public_address: Option<std::net::IpAddr>,
    /// Music a caller hears when the agent holds the call (8 kHz or any WAV, resampled).
    /// Default: `hold-music.wav` from the dialplans' prompts folder, else a soft tone.
    pub hold_music: String,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            port: 20100,
            public_address: None,
            hold_music: String::new(),
        }
    }
}

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
    #[serde(default = "default_webhook_events")]
    pub events: Vec<String>,
    /// Attempts before giving up (1-10), with 1 s, 2 s, 4 s... between them.
    #[serde(default = "default_webhook_attempts")]
    pub attempts: u32,
}

const WEBHOOK_EVENTS: [&str; 4] = [
    "call.offered",
    "call.connected",
    "chat.offered",
    "chat.connected",
];

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
    /// Items at once per channel: voice, video, chat, email, sms, whatsapp, api.
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
fn default_capacity() -> std::collections::BTreeMap<String, u8> {
    [("voice".to_string(), 1), ("chat".to_string(), 3)].into()
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Listen addresses; "off" turns a transport off.
    #[serde(deserialize_with = "listener")]
    pub udp: Option<SocketAddr>,
    #[serde(deserialize_with = "listener")]
    pub tcp: Option<SocketAddr>,
    #[serde(deserialize_with = "listener")]
    pub tls: Option<SocketAddr>,
    #[serde(deserialize_with = "listener")]
    pub ws: Option<SocketAddr>,
    /// Address put in Via and Contact when listening on 0.0.0.0 (default: the listen
    /// address, or 127.0.0.1 for an unspecified one).
    pub advertise: Option<std::net::IpAddr>,
    pub realm: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub t1_ms: u64,
    pub session_expires: u32,
    pub min_se: u32,
    pub keepalive_interval: u32,
    pub min_register_expires: u32,
    pub max_register_expires: u32,
    /// UDP receive buffer in bytes (large values prevent kernel drops under load).
    pub udp_recv_buffer: usize,
    /// Digest challenges offered, in preference order: "MD5", "SHA-256".
    pub digest_algorithms: Vec<String>,
    /// Web pages (origins, e.g. "https://phone.example.com") whose scripts may use SIP
    /// over WebSocket; "*" allows any. Clients that send no Origin (softphones) are
    /// always allowed. Default: this node's own HTTP origin.
    pub ws_origins: Vec<String>,
    /// TCP, TLS and WebSocket connections open at once (lowered to fit the process's
    /// descriptor limit, which is raised to its maximum at start-up).
    pub max_connections: usize,
    /// ...and from one IP address.
    pub max_connections_per_address: usize,
    /// A connection that has received nothing for this many seconds is closed.
    pub connection_idle_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            udp: Some("127.0.0.1:5060".parse().unwrap()),
            tcp: Some("127.0.0.1:5060".parse().unwrap()),
            tls: Some("127.0.0.1:5061".parse().unwrap()),
            ws: Some("127.0.0.1:5066".parse().unwrap()),
            advertise: None,
            realm: "omnigate".into(),
            tls_cert: "certs/omnigate.pem".into(),
            tls_key: "certs/omnigate.key".into(),
            t1_ms: 500,
            session_expires: 1800,
            min_se: 90,
            keepalive_interval: 30,
            min_register_expires: 60,
            max_register_expires: 7200,
            udp_recv_buffer: 4 << 20,
            digest_algorithms: vec!["MD5".into()],
            ws_origins: Vec::new(),
            max_connections: 4096,
            max_connections_per_address: 256,
            connection_idle_secs: 3660,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// "off" turns the HTTP side off.
    #[serde(deserialize_with = "listener")]
    pub listen: Option<SocketAddr>,
    /// Bearer token for the admin API (`POST /api/calls`). Demo default: "demo-admin".
    pub admin_token: Option<String>,
    /// Bearer token `GET /metrics` asks for (none: open, as Prometheus expects on a
    /// private network).
    pub metrics_token: Option<String>,
    /// An agent's session ends after this many minutes without use.
    pub session_idle_mins: u64,
    /// HTTPS listener for the same API and pages (off by default).
    #[serde(deserialize_with = "listener")]
    pub tls_listen: Option<SocketAddr>,
    /// Its certificate and key (PEM); default: the SIP TLS ones (`[sip] tls_cert`,
    /// generated self-signed on first start when missing).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some("127.0.0.1:8080".parse().unwrap()),
            admin_token: None,
            metrics_token: None,
            session_idle_mins: 480,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// "LOW-HIGH", even ports used for RTP.
    pub ports: String,
    /// Address for RTP sockets and SDP (default: the SIP advertise address).
    pub address: Option<std::net::IpAddr>,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            ports: "10000-20000".into(),
            address: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub dir: PathBuf,
    /// The session store: empty for SQLite in `<dir>/omnigate.db`, `sqlite:PATH` for
    /// another file, `postgres://user:password@host:port/db` for PostgreSQL.
    pub database: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: "data".into(),
            database: String::new(),
        }
    }
}

impl DataConfig {
    /// The database URL with any password hidden, for logs.
    pub fn database_for_log(&self) -> String {
        let d = self.database.trim();
        if d.is_empty() {
            return format!("sqlite:{}", self.dir.join("omnigate.db").display());
        }
        match (d.find("://"), d.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &d[s + 3..at];
                match creds.find(':') {
                    Some(c) => format!("{}{}:***{}", &d[..s + 3], &creds[..c], &d[at..]),
                    None => d.to_string(),
                }
            }
            _ => d.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter, overridden by RUST_LOG.
    pub level: String,
    /// Show caller numbers, user names and credentials in logs (debug only).
    pub personal_data: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            personal_data: false,
        }
    }
}

/// The built-in call handler used until the IVR exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    pub answer_after_ms: u64,
    /// Hang up answered calls after this many seconds (0: never).
    pub hangup_after_secs: u64,
    /// Record calls to `<data>/recordings/` (caller left, other party right).
    pub record: bool,
    /// WAV played to callers on answer (any rate, mono or stereo); empty: the built-in
    /// welcome prompt.
    pub welcome_prompt: String,
    /// Connect inbound calls out through this trunk (same number) and bridge the two
    /// legs, instead of the built-in handler. Empty: off.
    pub forward_trunk: String,
    /// Registered phones' calls to numbers that are neither users nor dialplan routes
    /// go out through this trunk (an agent calling a customer back). Empty: they go to
    /// the dialplan like any call.
    pub phones_trunk: String,
    /// How long a registered phone's call to another extension rings before the caller
    /// gets 480 (0: until the caller gives up).
    pub ring_secs: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            answer_after_ms: 100,
            hangup_after_secs: 30,
            record: true,
            welcome_prompt: String::new(),
            forward_trunk: String::new(),
            phones_trunk: String::new(),
            ring_secs: 60,
        }
    }
}

/// IVR flows: where they live and which one answers which call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialplanConfig {
    /// Directory of flow files, watched for changes.
    pub dir: PathBuf,
    /// Flow for calls no route matches. Default: "demo" in demo mode, none otherwise
    /// (calls then get the built-in handler of `[calls]`); "" for none in demo mode too.
    pub default_flow: Option<String>,
    /// How often the directory is checked for changes, in milliseconds.
    pub reload_ms: u64,
    /// Average handle time used to tell queued callers their expected wait, until
    /// routing measures it.
    pub queue_handle_secs: u64,
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

impl Default for DialplanConfig {
    fn default() -> Self {
        DialplanConfig {
            dir: "dialplans".into(),
            default_flow: None,
            reload_ms: 250,
            queue_handle_secs: 120,
            routes: vec![],
        }
    }
}

/// `[[dialplan.route]]`: calls to `number` (and/or arriving on `trunk`) run `flow`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub number: Option<String>,
    pub trunk: Option<String>,
    pub flow: String,
}

impl DialplanConfig {
    /// Whether a route names this number (so it is the dialplan's, not an extension).
    pub fn routes_number(&self, dialled: &str) -> bool {
        self.routes
            .iter()
            .any(|r| r.number.as_deref() == Some(dialled))
    }

    /// The flow for a call: number and trunk both matching first, then number, then
    /// trunk, then the default.
    pub fn flow_for(&self, dialled: &str, trunk: Option<&str>, demo: bool) -> Option<String> {
        let num = |r: &RouteConfig| r.number.as_deref().is_some_and(|n| n == dialled);
        let tr = |r: &RouteConfig| r.trunk.is_some() && r.trunk.as_deref() == trunk;
        self.routes
            .iter()
            .find(|r| num(r) && tr(r))
            .or_else(|| self.routes.iter().find(|r| num(r) && r.trunk.is_none()))
            .or_else(|| self.routes.iter().find(|r| tr(r) && r.number.is_none()))
            .map(|r| r.flow.clone())
            .or_else(|| match &self.default_flow {
                // `default_flow = ""`: no default, even in demo mode.
                Some(f) if f.is_empty() => None,
                Some(f) => Some(f.clone()),
                None => demo.then(|| "demo".to_string()),
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Live calls may go on this long after SIGTERM before they get a BYE.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_secs: 10 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkToml {
    pub name: String,
    #[serde(default)]
    pub inbound: Vec<String>,
    pub inbound_username: Option<String>,
    pub inbound_password: Option<String>,
    pub proxy: Option<SocketAddr>,
    #[serde(default = "default_transport")]
    pub transport: String,
    pub domain: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from_user: Option<String>,
    #[serde(default)]
    pub register: bool,
    #[serde(default = "default_reg_expires")]
    pub register_expires: u32,
    #[serde(default)]
    pub options_interval: u32,
    /// transport = "tls": CA bundle (PEM) that signs the provider's certificate
    /// (default: the system bundle /etc/ssl/certs/ca-certificates.crt).
    pub tls_ca: Option<PathBuf>,
}

fn default_transport() -> String {
    "udp".into()
}

fn default_reg_expires() -> u32 {
    600
}

/// A configuration error that names where it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A listen address, or "off".
fn listener<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let v = String::deserialize(d)?;
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "\"{v}\" is not a listen address: write one like \"127.0.0.1:5060\" or \"[::]:5060\", or \"off\""
        ))
    })
}

/// A UDP port, or "off" (0).
fn port_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        N(i64),
        S(String),
    }
    match P::deserialize(d)? {
        P::N(n) if (0..=65535).contains(&n) => Ok(n as u16),
        P::S(s) if s.eq_ignore_ascii_case("off") => Ok(0),
        P::N(n) => Err(serde::de::Error::custom(format!(
            "{n} is not a port (1 to 65535, or \"off\")"
        ))),
        P::S(s) => Err(serde::de::Error::custom(format!(
            "\"{s}\" is not a port: write a number from 1 to 65535, or \"off\""
        ))),
    }
}

/// The log levels a `[log] level` may name (alone or per target: `info,omnigate=debug`).
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a tracing filter: each comma-separated part is a level, or `target=level`.
pub fn check_log_level(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err("empty: write one of error, warn, info, debug, trace, off".into());
    }
    for part in v.split(',') {
        let level = part.rsplit_once('=').map_or(part, |(_, l)| l).trim();
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "\"{level}\" is not a log level: write one of error, warn, info, debug, trace, off (or target=level, e.g. \"info,omnigate=debug\")"
            ));
        }
    }
    Ok(())
}

/// serde's type names, in words for people editing a config file.
fn for_people(msg: &str) -> String {
    let mut m = msg.to_string();
    for (from, to) in [
        (
            "expected u64",
            "expected a whole number (of seconds, or of what the setting counts)",
        ),
        ("expected u32", "expected a whole number"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected usize", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a string", "expected text in quotes"),
        ("expected a sequence", "expected a list in [brackets]"),
    ] {
        m = m.replace(from, to);
    }
    m
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        let mut c = Self::parse(&text, &path.display().to_string())?;
        if c.demo.is_none() {
            c.demo = Some(false);
        }
        Ok(c)
    }

    /// Parses TOML text; `name` is used in messages.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let (line, col, src) = match e.span() {
                Some(sp) => {
                    let before = &text[..sp.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                    (
                        line,
                        col,
                        text.lines().nth(line - 1).unwrap_or("").to_string(),
                    )
                }
                None => (1, 1, String::new()),
            };
            ConfigError(format!(
                "{name}:{line}:{col}: {}\n    {src}",
                for_people(e.message())
            ))
        })?;
        c.validate(name, text)?;
        Ok(c)
    }

    /// Checks what serde cannot; errors point at the line of the offending value.
    fn validate(&self, name: &str, text: &str) -> Result<(), ConfigError> {
        let err = |key: &str, value: &str, msg: String| {
            ConfigError(format!("{name}:{}: {key}: {msg}", locate(text, key, value)))
        };
        parse_port_range(&self.rtp.ports).map_err(|e| err("ports", &self.rtp.ports, e))?;
        check_log_level(&self.log.level).map_err(|e| err("level", &self.log.level, e))?;
        let db = self.data.database.trim();
        crate::store::Database::parse(db).map_err(|e| err("database", db, e))?;
        for w in &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(err(
                    "url",
                    &w.url,
                    format!("\"{}\" is not an http(s) URL", w.url),
                ));
            }
            if w.secret.len() < 16 {
                return Err(err(
                    "secret",
                    &w.secret,
                    "a webhook secret must be at least 16 bytes".into(),
                ));
            }
            if !(1..=10).contains(&w.attempts) {
                return Err(err(
                    "attempts",
                    &w.attempts.to_string(),
                    "must be 1 to 10".into(),
                ));
            }
            for e in &w.events {
                if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                    return Err(err(
                        "events",
                        e,
                        format!("\"{e}\" is not one of {}", WEBHOOK_EVENTS.join(", ")),
                    ));
                }
            }
        }
        for t in &self.trunks {
            for c in &t.inbound {
                if Cidr::parse(c).is_none() {
                    return Err(err(
                        "inbound",
                        c,
                        format!(
                            "\"{c}\" is not an address or CIDR block (trunk \"{}\")",
                            t.name
                        ),
                    ));
                }
            }
            if Transport::parse(&t.transport).is_none() {
                return Err(err(
                    "transport",
                    &t.transport,
                    format!(
                        "\"{}\" is not udp, tcp, tls or ws (trunk \"{}\")",
                        t.transport, t.name
                    ),
                ));
            }
            if t.register && (t.proxy.is_none() || t.username.is_none() || t.password.is_none()) {
                return Err(err(
                    "register",
                    "true",
                    format!(
                        "trunk \"{}\": register = true needs proxy, username and password",
                        t.name
                    ),
                ));
            }
            if t.inbound_username.is_some() != t.inbound_password.is_some() {
                let key = if t.inbound_username.is_some() {
                    "inbound_username"
                } else {
                    "inbound_password"
                };
                return Err(err(
                    key,
                    "",
                    format!(
                        "trunk \"{}\": inbound_username and inbound_password go together",
                        t.name
                    ),
                ));
            }
        }
        for r in &self.dialplan.routes {
            if r.number.is_none() && r.trunk.is_none() {
                return Err(err(
                    "flow",
                    &r.flow,
                    format!("route to flow \"{}\" needs a number or a trunk", r.flow),
                ));
            }
            if let Some(t) = &r.trunk {
                if !(self.trunks.iter().any(|x| &x.name == t) || (t == "demo" && self.is_demo())) {
                    return Err(err(
                        "trunk",
                        t,
                        format!("route to flow \"{}\": no trunk named \"{t}\"", r.flow),
                    ));
                }
            }
        }
        for a in &self.sip.digest_algorithms {
            if crate::sip::auth::Algorithm::parse(Some(a)).is_none() {
                return Err(err(
                    "digest_algorithms",
                    a,
                    format!("\"{a}\" is not MD5 or SHA-256"),
                ));
            }
        }
        let queues = self.effective_queues();
        let mut seen = std::collections::HashSet::new();
        for q in &queues {
            if !seen.insert(q.name.as_str()) {
                return Err(err(
                    "name",
                    &q.name,
                    format!("queue \"{}\" is defined twice", q.name),
                ));
            }
            if !q.overflow_to.is_empty()
                && q.overflow_to != "voicemail"
                && !queues.iter().any(|x| x.name == q.overflow_to)
            {
                return Err(err(
                    "overflow_to",
                    &q.overflow_to,
                    format!("queue \"{}\": no queue named \"{}\"", q.name, q.overflow_to),
                ));
            }
            if q.offer_timeout_secs == 0 {
                return Err(err("offer_timeout_secs", "0", "must be positive".into()));
            }
        }
        let users = self.effective_users();
        let mut seen = std::collections::HashSet::new();
        for a in &self.agents {
            if !seen.insert(a.name.as_str()) {
                return Err(err(
                    "name",
                    &a.name,
                    format!("agent \"{}\" is defined twice", a.name),
                ));
            }
            if a.password.len() < 8 {
                return Err(err(
                    "password",
                    &a.password,
                    format!(
                        "agent \"{}\": a password needs at least 8 characters",
                        a.name
                    ),
                ));
            }
            for q in &a.queues {
                if !queues.iter().any(|x| &x.name == q) {
                    return Err(err(
                        "queues",
                        q,
                        format!("agent \"{}\": no queue named \"{q}\"", a.name),
                    ));
                }
            }
            for c in a.capacity.keys() {
                if crate::routing::parse_channel(c).is_none() {
                    return Err(err("capacity", c, format!("agent \"{}\": \"{c}\" is not voice, video, chat, email, sms, whatsapp or api", a.name)));
                }
            }
            for (s, l) in &a.skills {
                if !(1..=10).contains(l) {
                    return Err(err(
                        "skills",
                        s,
                        format!("agent \"{}\": skill \"{s}\" level {l} is not 1-10", a.name),
                    ));
                }
            }
            if let Some(e) = &a.extension {
                if !users.iter().any(|u| &u.name == e) {
                    return Err(err(
                        "extension",
                        e,
                        format!("agent \"{}\": no [[user]] named \"{e}\"", a.name),
                    ));
                }
            }
        }
        if !self.chat.queue.is_empty() && !queues.iter().any(|q| q.name == self.chat.queue) {
            return Err(err(
                "queue",
                &self.chat.queue,
                format!("[chat]: no queue named \"{}\"", self.chat.queue),
            ));
        }
        if self.sip.t1_ms == 0 {
            return Err(err("t1_ms", "0", "must be positive".into()));
        }
        for (key, t) in [
            ("forward_trunk", &self.calls.forward_trunk),
            ("phones_trunk", &self.calls.phones_trunk),
        ] {
            if !t.is_empty() && !self.trunks.iter().any(|x| &x.name == t) {
                return Err(err(key, t, format!("no trunk is named \"{t}\"")));
            }
        }
        if !self.calls.welcome_prompt.is_empty() {
            if let Err(e) =
                crate::media::player::load_wav(std::path::Path::new(&self.calls.welcome_prompt))
            {
                return Err(err(
                    "welcome_prompt",
                    &self.calls.welcome_prompt,
                    e.to_string(),
                ));
            }
        }
        Ok(())
    }

    pub fn is_demo(&self) -> bool {
        self.demo.unwrap_or(true)
    }

    /// Users, with the demo users added in demo mode.
    pub fn effective_users(&self) -> Vec<UserConfig> {
        let mut u = self.users.clone();
        if self.is_demo() {
            for (n, p) in [("1001", "demo1001"), ("1002", "demo1002")] {
                if !u.iter().any(|x| x.name == n) {
                    u.push(UserConfig {
                        name: n.into(),
                        password: p.into(),
                    });
                }
            }
        }
        u
    }

    /// Trunks, with the demo trunk (calls from 127.0.0.0/8) added in demo mode.
    pub fn effective_trunks(&self) -> Vec<TrunkConfig> {
        let mut v: Vec<TrunkConfig> = self
            .trunks
            .iter()
            .map(|t| TrunkConfig {
                name: t.name.clone(),
                inbound_cidrs: t.inbound.iter().filter_map(|c| Cidr::parse(c)).collect(),
                inbound_username: t.inbound_username.clone(),
                inbound_password: t.inbound_password.clone(),
                proxy: t.proxy,
                transport: Transport::parse(&t.transport).unwrap_or(Transport::Udp),
                domain: t.domain.clone(),
                username: t.username.clone(),
                password: t.password.clone(),
                from_user: t.from_user.clone(),
                register: t.register,
                register_expires: t.register_expires,
                options_interval: t.options_interval,
            })
            .collect();
        if self.is_demo() && !v.iter().any(|t| t.name == "demo") {
            v.push(TrunkConfig {
                inbound_cidrs: vec![Cidr::parse("127.0.0.0/8").unwrap()],
                ..TrunkConfig::new("demo")
            });
        }
        v
    }

    /// Queues, with the demo flow's queues in demo mode.
    pub fn effective_queues(&self) -> Vec<QueueConfig> {
        let mut v = self.queues.clone();
        if self.is_demo() {
            for n in ["sales", "support", "operator"] {
                if !v.iter().any(|q| q.name == n) {
                    v.push(QueueConfig {
                        wrap_up_secs: 5,
                        ..QueueConfig::new(n)
                    });
                }
            }
        }
        v
    }

    /// Agents, with demo agents (alice on extension 1001, bob in the browser) in demo
    /// mode.
    pub fn effective_agents(&self) -> Vec<AgentConfig> {
        let mut v = self.agents.clone();
        if self.is_demo() {
            let demo =
                |name: &str, display: &str, skills: &[(&str, u8)], ext: Option<&str>| AgentConfig {
                    name: name.into(),
                    password: format!("demo-{name}"),
                    display_name: display.into(),
                    skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
                    queues: vec!["sales".into(), "support".into(), "operator".into()],
                    capacity: default_capacity(),
                    call_blocks_others: true,
                    team: None,
                    extension: ext.map(String::from),
                };
            for a in [
                demo(
                    "alice",
                    "Alice Agent",
                    &[("sales", 9), ("support", 6), ("english", 9)],
                    Some("1001"),
                ),
                demo(
                    "bob",
                    "Bob Agent",
                    &[("support", 9), ("sales", 5), ("spanish", 9)],
                    // Bob takes calls in the browser (the agent desktop at /agent);
                    // Alice's ring her desk phone, extension 1001.
                    None,
                ),
            ] {
                if !v.iter().any(|x| x.name == a.name) {
                    v.push(a);
                }
            }
        }
        v
    }

    /// The chat queue: `[chat] queue`, or "support" in demo mode.
    pub fn chat_queue(&self) -> Option<String> {
        if !self.chat.queue.is_empty() {
            Some(self.chat.queue.clone())
        } else {
            self.is_demo().then(|| "support".to_string())
        }
    }

    /// The origins allowed on SIP over WebSocket: `[sip] ws_origins`, or this node's
    /// own HTTP origin (with `localhost` for a loopback listener).
    pub fn ws_origins(&self) -> Vec<String> {
        if !self.sip.ws_origins.is_empty() {
            return self
                .sip
                .ws_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect();
        }
        let mut v = Vec::new();
        for (scheme, a) in [("http", self.http.listen), ("https", self.http.tls_listen)] {
            let Some(a) = a else { continue };
            v.push(format!("{scheme}://{a}"));
            if a.ip().is_loopback() || a.ip().is_unspecified() {
                v.push(format!("{scheme}://localhost:{}", a.port()));
                v.push(format!("{scheme}://127.0.0.1:{}", a.port()));
            }
        }
        v
    }

    pub fn admin_token(&self) -> Option<String> {
        self.http
            .admin_token
            .clone()
            .or_else(|| self.is_demo().then(|| "demo-admin".to_string()))
    }
}

/// `line:column` of the first line that sets `key` with `value` in it (or just `key`),
/// so semantic errors point where the user must look; `1:1` when not found.
fn locate(text: &str, key: &str, value: &str) -> String {
    let mut fallback = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let is_key = t
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='));
        if is_key {
            if value.is_empty() || line.contains(value) {
                return format!("{}:{}", i + 1, line.len() - t.len() + 1);
            }
            fallback.get_or_insert(format!("{}:{}", i + 1, line.len() - t.len() + 1));
        }
    }
    fallback.unwrap_or_else(|| "1:1".into())
}

/// Parses "LOW-HIGH".
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("\"{s}\" is not LOW-HIGH"))?;
    let lo: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("\"{a}\" is not a port"))?;
    let hi: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("\"{b}\" is not a port"))?;
    if lo >= hi || lo < 1024 {
        return Err(format!("\"{s}\": need 1024 <= LOW < HIGH"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../omnigate.example.toml");
        let c = Config::parse(text, "omnigate.example.toml").unwrap();
        assert!(!c.trunks.is_empty());
    }

    #[test]
    fn listeners_and_the_webrtc_port_can_be_off() {
        let c = Config::parse(
            "[sip]\ntcp = \"off\"\nws = \"OFF\"\nudp = \"127.0.0.1:5070\"\n[http]\nlisten = \"off\"\n[webrtc]\nport = \"off\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!((c.sip.tcp, c.sip.ws, c.http.listen), (None, None, None));
        assert_eq!(c.sip.udp, Some("127.0.0.1:5070".parse().unwrap()));
        assert_eq!(c.webrtc.port, 0);
        let e = Config::parse("[sip]\ntcp = \"localhost\"\n", "t.toml").unwrap_err();
        assert!(
            e.0.starts_with("t.toml:2:7: \"localhost\" is not a listen address"),
            "{}",
            e.0
        );
    }

    #[test]
    fn an_unknown_log_level_is_refused_at_its_line() {
        let e = Config::parse("[log]\nlevel = \"verbose\"\n", "t.toml").unwrap_err();
        assert!(e.0.starts_with("t.toml:2:"), "{}", e.0);
        assert!(e.0.contains("\"verbose\" is not a log level"), "{}", e.0);
        assert!(Config::parse("[log]\nlevel = \"info,omnigate=debug\"\n", "t.toml").is_ok());
        assert!(Config::parse("[log]\nlevel = \"omnigate=loud\"\n", "t.toml").is_err());
    }

    #[test]
    fn type_errors_are_worded_for_people() {
        let e = Config::parse("[shutdown]\ngrace_secs = \"ten\"\n", "t.toml").unwrap_err();
        assert!(e.0.contains("expected a whole number"), "{}", e.0);
        assert!(!e.0.contains("u64"), "{}", e.0);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = Config::parse(
            "[sip]\nrealm = \"x\"\nudpp = \"127.0.0.1:5060\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("t.toml:3:1: unknown field `udpp`"),
            "{}",
            e.0
        );
    }

    #[test]
    fn database_url_checked_and_password_kept_out_of_logs() {
        let e = Config::parse(
            "[data]\ndir = \"d\"\ndatabase = \"mysql://x/y\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.0.starts_with("t.toml:3:"), "{}", e.0);
        assert!(e.0.contains("is not sqlite:PATH, postgres://"), "{}", e.0);
        let c = Config::parse(
            "[data]\ndatabase = \"postgres://og:s3cret@db:5432/og\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.data.database_for_log(), "postgres://og:***@db:5432/og");
        let c = Config::parse("[data]\ndir = \"/srv/og\"\n", "t.toml").unwrap();
        assert_eq!(c.data.database_for_log(), "sqlite:/srv/og/omnigate.db");
    }

    #[test]
    fn bad_value_names_line() {
        let e = Config::parse("[sip]\nudp = \"not-an-address\"\n", "t.toml").unwrap_err();
        assert!(e.0.starts_with("t.toml:2:7:"), "{}", e.0);
        assert!(e.0.contains("udp = \"not-an-address\""), "{}", e.0);
        let e = Config::parse(
            "[[trunk]]\nname = \"p\"\ninbound = [\"300.1.1.1/8\"]\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("t.toml:3:1: inbound: \"300.1.1.1/8\" is not an address"),
            "{}",
            e.0
        );
        let e = Config::parse(
            "[sip]\nrealm = \"x\"\n\n[rtp]\nports = \"20000-10000\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.0.starts_with("t.toml:5:1: ports:"), "{}", e.0);
    }

    #[test]
    fn webhook_events_default_to_all_and_unknown_ones_are_refused_with_their_line() {
        let hook = "[[webhook]]\nurl = \"http://crm/x\"\nsecret = \"0123456789abcdef\"\n";
        let c = Config::parse(hook, "t.toml").unwrap();
        assert_eq!(c.webhooks[0].events, WEBHOOK_EVENTS);
        let e = Config::parse(&format!("{hook}events = [\"chat.ended\"]\n"), "t.toml").unwrap_err();
        assert!(e.0.starts_with("t.toml:4:"), "{}", e.0);
        assert!(
            e.0.contains("\"chat.ended\" is not one of call.offered"),
            "{}",
            e.0
        );
    }

    #[test]
    fn demo_only_without_file() {
        let c = Config::default();
        assert!(c.is_demo());
        assert!(c.effective_trunks().iter().any(|t| t.name == "demo"));
        let mut f = Config::parse("", "x").unwrap();
        f.demo = Some(false);
        assert!(f.effective_trunks().is_empty());
        assert!(f.effective_users().is_empty());
    }

    #[test]
    fn dialplan_routes_pick_a_flow() {
        let text = "[dialplan]\ndefault_flow = \"main\"\n[[dialplan.route]]\nnumber = \"100\"\nflow = \"sales\"\n[[dialplan.route]]\nnumber = \"100\"\ntrunk = \"b\"\nflow = \"vip\"\n[[dialplan.route]]\ntrunk = \"b\"\nflow = \"support\"\n[[trunk]]\nname = \"b\"\ninbound = [\"10.0.0.0/8\"]\n";
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        let c = Config::load(&p).unwrap();
        let f = |n: &str, t: Option<&str>| c.dialplan.flow_for(n, t, false);
        assert_eq!(f("100", Some("b")).as_deref(), Some("vip"));
        assert_eq!(f("100", None).as_deref(), Some("sales"));
        assert_eq!(f("200", Some("b")).as_deref(), Some("support"));
        assert_eq!(f("200", None).as_deref(), Some("main"));
        let demo = Config::default();
        assert_eq!(
            demo.dialplan.flow_for("1", None, true).as_deref(),
            Some("demo")
        );
        assert_eq!(demo.dialplan.flow_for("1", None, false), None);
        let mut off = Config::default();
        off.dialplan.default_flow = Some(String::new());
        assert_eq!(off.dialplan.flow_for("1", None, true), None);
        // A route naming a trunk that does not exist is refused with its line.
        std::fs::write(&p, "[[dialplan.route]]\ntrunk = \"nope\"\nflow = \"x\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("no trunk named"), "{e}");
    }
}
