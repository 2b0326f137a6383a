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
