//! `[data]`, `[log]` and `[shutdown]`.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub dir: PathBuf,
    /// The session store: empty for SQLite in `<dir>/omnigate.db`, `sqlite:PATH` for
    /// another file, `postgres://user:password@host:port/db` for PostgreSQL.
    #[serde(deserialize_with = "super::values::database")]
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
    #[serde(deserialize_with = "super::values::log_level")]
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

/// How long each kind of data is kept (`privacy::retention`): `"365d"`, `"12h"`…;
/// empty: for ever. A daily job at `run_at` (UTC) deletes what is older, except on
/// a case under a legal hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub recordings: String,
    pub voicemail: String,
    pub messages: String,
    pub raw_mail: String,
    pub bot_logs: String,
    pub run_at: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            recordings: String::new(),
            voicemail: String::new(),
            messages: String::new(),
            raw_mail: String::new(),
            bot_logs: String::new(),
            run_at: "03:00".into(),
        }
    }
}

impl RetentionConfig {
    /// The policy (checked when the config was read: a bad value keeps nothing
    /// from expiring).
    pub fn policy(&self) -> crate::privacy::retention::Policy {
        crate::privacy::retention::Policy::parse(
            &self.recordings,
            &self.voicemail,
            &self.messages,
            &self.raw_mail,
            &self.bot_logs,
        )
        .unwrap_or_default()
    }

    /// Minutes after midnight UTC the job runs at.
    pub fn run_at_min(&self) -> u32 {
        crate::privacy::retention::parse_run_at(&self.run_at).unwrap_or(180)
    }
}
