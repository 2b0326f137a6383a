//! `[calls]` (the built-in handler and forwarding) and `[dialplan]` with its routes.

use serde::Deserialize;
use std::path::PathBuf;

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
    /// The agent's desktop shows when a supervisor listens to their call (whisper and
    /// barge are always shown: the agent hears the supervisor).
    pub monitor_notice: bool,
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
            monitor_notice: true,
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

/// `[kb]`: the knowledge base (articles under `dir`, reloaded on change) the bot
/// answers from and agents search.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    pub dir: PathBuf,
    /// The confidence (0 to 1) below which the matcher answers nothing.
    pub threshold: f32,
    /// How often the directory is checked for changes, in milliseconds.
    pub reload_ms: u64,
}

impl Default for KbConfig {
    fn default() -> Self {
        KbConfig {
            dir: "kb".into(),
            threshold: crate::kb::matcher::DEFAULT_THRESHOLD,
            reload_ms: 1000,
        }
    }
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
