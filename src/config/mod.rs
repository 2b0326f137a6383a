//! Configuration: one TOML file, every key optional with a documented default (see
//! `omnigate.example.toml`), command-line flags on top. An unknown key or a bad value
//! stops start-up with `file:line:column` and the offending line.
//!
//! Without a file the node runs in demo mode: a demo trunk accepting calls from
//! 127.0.0.0/8 and demo users. With a file, nothing is accepted unless configured
//! (`demo = true` in the file restores the demo trunk and users).
//!
//! `values` holds the typed values read at the edge (listen addresses, ports, log
//! filters...), `network` the SIP, HTTP, WebRTC and RTP sections with users and
//! trunks, `centre` queues, agents, the chat and webhooks, `channels` the messaging
//! accounts, `mail` the mailboxes, `calls` the call handler
//! and the dialplan routes, `node` data, logs and shutdown; `validate` the checks
//! that need more than one value.

mod calls;
mod centre;
mod channels;
mod mail;
mod network;
mod node;
mod validate;
mod values;

pub use calls::{CallsConfig, DialplanConfig, KbConfig, RouteConfig};
pub use centre::{AgentConfig, ChatConfig, QueueConfig, SupervisorConfig, WebhookConfig};
pub use channels::{ChannelConfig, ChannelKind, TemplateConfig};
pub use mail::{host_port, is_loopback, AfterImport, MailboxConfig, Security};
pub use network::{HttpConfig, RtpConfig, SipConfig, TrunkToml, UserConfig, WebRtcConfig};
pub use node::{DataConfig, LogConfig, RetentionConfig, ShutdownConfig};
pub use values::{check_log_level, parse_port_range, PortRange};

use crate::sip::trunk::{Cidr, TrunkConfig};
use centre::default_capacity;
use serde::Deserialize;
use std::path::Path;
use values::for_people;

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
    pub kb: KbConfig,
    pub bot: crate::bot::BotConfig,
    pub shutdown: ShutdownConfig,
    pub retention: RetentionConfig,
    #[serde(rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkToml>,
    #[serde(rename = "queue")]
    pub queues: Vec<QueueConfig>,
    #[serde(rename = "agent")]
    pub agents: Vec<AgentConfig>,
    #[serde(rename = "supervisor")]
    pub supervisors: Vec<SupervisorConfig>,
    pub chat: ChatConfig,
    pub webrtc: WebRtcConfig,
    #[serde(rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    #[serde(rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
}

/// A configuration error that names where it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
                inbound_cidrs: t.inbound.clone(),
                inbound_username: t.inbound_username.clone(),
                inbound_password: t.inbound_password.clone(),
                proxy: t.proxy,
                transport: t.transport,
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
                        canned: demo_canned(n),
                        ..QueueConfig::new(n)
                    });
                }
            }
        }
        v
    }

    /// Messaging accounts, with the demo WhatsApp and open channel accounts in demo
    /// mode.
    pub fn effective_channels(&self) -> Vec<ChannelConfig> {
        let mut v = self.channels.clone();
        if self.is_demo() {
            for demo in [ChannelConfig::demo_whatsapp(), ChannelConfig::demo_open()] {
                if !v.iter().any(|c| c.name == demo.name) {
                    v.push(demo);
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

    /// Supervisors, with the demo supervisor (`sue`, password `demo-sue`, over the demo
    /// queues, her desk phone extension 1002) added in demo mode.
    pub fn effective_supervisors(&self) -> Vec<SupervisorConfig> {
        let mut v = self.supervisors.clone();
        if self.is_demo() && !v.iter().any(|s| s.name == "sue") {
            v.push(SupervisorConfig {
                name: "sue".into(),
                password: "demo-sue".into(),
                display_name: "Sue Supervisor".into(),
                teams: vec![],
                queues: vec!["sales".into(), "support".into(), "operator".into()],
                // Her desk phone, for listening from a phone.
                extension: Some("1002".into()),
                privacy_officer: false,
            });
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

/// The demo queues' canned responses.
fn demo_canned(queue: &str) -> Vec<crate::canned::Canned> {
    let c = |title: &str, text: &str| crate::canned::Canned {
        title: title.into(),
        text: text.into(),
    };
    let mut v = vec![c(
        "Greeting",
        "Hello {first_name}, this is {agent}. How can I help you today?",
    )];
    if queue == "support" {
        v.push(c(
            "Account number",
            "Could you tell me your account number, {first_name}? It is on your invoice.",
        ));
    }
    v.push(c(
        "Closing",
        "Thank you for contacting us, {first_name}. Is there anything else I can help with?",
    ));
    v
}

#[cfg(test)]
mod tests;
