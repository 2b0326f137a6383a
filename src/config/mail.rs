//! `[[mailbox]]`: e-mail accounts whose mail becomes cases.
//!
//! ```toml
//! [[mailbox]]
//! name = "support"
//! address = "support@acme.example"   # replies come from it; support+<token>@ is ours too
//! imap = "imap.acme.example:993"
//! imap_security = "tls"              # tls | starttls | none (none: loopback hosts only)
//! username = "support@acme.example"
//! password = "…"
//! smtp = "smtp.acme.example:465"
//! smtp_security = "tls"              # tls | starttls | none (none: loopback hosts only)
//! # smtp_username / smtp_password default to the IMAP ones
//! queue = "support"                  # where new cases wait
//! after_import = "seen"              # keep | seen | move:FOLDER | delete
//! ```

use serde::Deserialize;

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain, then `STARTTLS` (IMAP 143, submission 587); refused if the server does
    /// not offer it.
    Starttls,
    /// No TLS: loopback hosts only (tests, a local relay).
    None,
}

/// What is done with a message in the server's folder once it is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterImport {
    Keep,
    Seen,
    Move(String),
    Delete,
}

impl AfterImport {
    pub fn parse(s: &str) -> Result<AfterImport, String> {
        match s {
            "keep" => Ok(AfterImport::Keep),
            "seen" => Ok(AfterImport::Seen),
            "delete" => Ok(AfterImport::Delete),
            _ => match s.strip_prefix("move:") {
                Some(f)
                    if !f.trim().is_empty() && !f.chars().any(|c| c.is_control() || c == '"') =>
                {
                    Ok(AfterImport::Move(f.trim().to_string()))
                }
                _ => Err(format!(
                    "after_import is keep, seen, move:FOLDER or delete, not {s:?}"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Letters, digits, `-`, `_` (in metrics and the admin API).
    pub name: String,
    /// Our address: replies are from it; `local+<token>@domain` reaches it too.
    pub address: String,
    /// `host:port` of the IMAP server.
    pub imap: String,
    pub imap_security: Security,
    pub username: String,
    pub password: String,
    /// `host:port` of the SMTP server replies go through.
    pub smtp: String,
    pub smtp_security: Security,
    /// Default: the IMAP ones.
    #[serde(default)]
    pub smtp_username: String,
    #[serde(default)]
    pub smtp_password: String,
    /// The queue new cases wait in.
    pub queue: String,
    /// Priority of new e-mail work (0-9).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The folder read.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// `keep`, `seen`, `move:FOLDER` or `delete`.
    #[serde(default = "default_after_import")]
    pub after_import: String,
    /// How often the folder is checked when the server has no IDLE (seconds, 5-3600).
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// The largest message imported (bytes); larger ones are quarantined without
    /// being downloaded. Default 25 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Tries at importing one message before it is quarantined (1-10).
    #[serde(default = "default_import_attempts")]
    pub import_attempts: u32,
    /// Tries at sending one reply while the SMTP server fails (1-10).
    #[serde(default = "default_send_attempts")]
    pub send_attempts: u32,
    /// One SMTP attempt's time limit (1-60 s).
    #[serde(default = "default_send_timeout")]
    pub send_timeout_secs: u64,
    /// The survey asked when an agent ends a thread (off when absent): a reply in the
    /// case's thread that starts with a score answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<crate::channels::survey::SurveyConfig>,
    /// The first-level bot answers new threads (the long answers, by e-mail) and
    /// hands them to `queue` (see `[chat] bot`).
    #[serde(default)]
    pub bot: bool,
}

fn default_priority() -> u8 {
    5
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_after_import() -> String {
    "seen".into()
}
fn default_poll() -> u64 {
    60
}
fn default_max_bytes() -> u64 {
    25 << 20
}
fn default_import_attempts() -> u32 {
    3
}
fn default_send_attempts() -> u32 {
    crate::channels::SEND_ATTEMPTS
}
fn default_send_timeout() -> u64 {
    30
}

/// `host:port` split, the port checked.
pub fn host_port(v: &str) -> Result<(String, u16), String> {
    let (h, p) = v
        .rsplit_once(':')
        .ok_or_else(|| format!("{v:?} is not host:port"))?;
    let host = h.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = p
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{v:?}: the port must be 1-65535"))?;
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!("{v:?} is not host:port"));
    }
    Ok((host.to_string(), port))
}

/// Whether `host` is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

impl MailboxConfig {
    pub fn smtp_login(&self) -> (&str, &str) {
        if self.smtp_username.is_empty() {
            (&self.username, &self.password)
        } else {
            (&self.smtp_username, &self.smtp_password)
        }
    }

    pub fn after(&self) -> AfterImport {
        AfterImport::parse(&self.after_import).unwrap_or(AfterImport::Seen)
    }

    /// The domain of our address (our Message-IDs end with it).
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("omnigate.invalid")
    }

    /// What is wrong with the mailbox, for an API's refusal.
    pub fn check(&self) -> Result<(), String> {
        super::values::refusal(self.problem())
    }

    /// What is wrong, as (key, value, reason) for the config's error.
    pub(super) fn problem(&self) -> Option<(&'static str, String, String)> {
        if let Some(p) = super::values::name_problem("mailbox", &self.name) {
            return Some(p);
        }
        if let Some(p) = self.survey.as_ref().and_then(|s| s.problem()) {
            return Some(p);
        }
        let addr_ok =
            self.address.parse::<lettre::Address>().is_ok() && !self.address.contains('+');
        if !addr_ok {
            return Some((
                "address",
                self.address.clone(),
                "is not an e-mail address (local@domain, without a +detail)".into(),
            ));
        }
        for (key, value, security) in [
            ("imap", &self.imap, self.imap_security),
            ("smtp", &self.smtp, self.smtp_security),
        ] {
            match host_port(value) {
                Err(why) => return Some((key, value.clone(), why)),
                Ok((host, _)) if security == Security::None && !is_loopback(&host) => {
                    return Some((
                        key,
                        value.clone(),
                        format!(
                            "{key}_security = \"none\" sends the password in the clear: only for a loopback host, use tls or starttls"
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        if self.username.is_empty() || self.password.is_empty() {
            return Some((
                "username",
                String::new(),
                format!("mailbox \"{}\" needs a username and a password", self.name),
            ));
        }
        if let Err(why) = AfterImport::parse(&self.after_import) {
            return Some(("after_import", self.after_import.clone(), why));
        }
        for (key, v, lo, hi) in [
            ("poll_secs", self.poll_secs, 5, 3600),
            ("import_attempts", self.import_attempts as u64, 1, 10),
            ("send_attempts", self.send_attempts as u64, 1, 10),
            ("send_timeout_secs", self.send_timeout_secs, 1, 60),
            ("max_bytes", self.max_bytes, 1024, 100 << 20),
            ("priority", self.priority as u64, 0, 9),
        ] {
            if !(lo..=hi).contains(&v) {
                return Some((key, v.to_string(), format!("must be {lo} to {hi}")));
            }
        }
        if self.folder.is_empty() || self.folder.chars().any(|c| c.is_control() || c == '"') {
            return Some(("folder", self.folder.clone(), "is not a folder name".into()));
        }
        None
    }

    /// The same mailbox as the admin API shows it: no passwords.
    pub fn public(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("password");
            o.remove("smtp_password");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> MailboxConfig {
        toml::from_str(
            r#"name = "support"
address = "support@acme.test"
imap = "127.0.0.1:14143"
imap_security = "none"
username = "support"
password = "pw"
smtp = "127.0.0.1:14025"
smtp_security = "none"
queue = "support""#,
        )
        .unwrap()
    }

    #[test]
    fn a_mailbox_without_tls_is_only_for_loopback() {
        let m = sample();
        assert!(m.check().is_ok(), "{:?}", m.check());
        assert_eq!(m.after(), AfterImport::Seen);
        assert_eq!(m.smtp_login(), ("support", "pw"));
        let far = MailboxConfig {
            imap: "imap.acme.test:143".into(),
            ..m.clone()
        };
        assert!(far
            .check()
            .unwrap_err()
            .contains("only for a loopback host"));
        let tls = MailboxConfig {
            imap_security: Security::Tls,
            ..far
        };
        assert!(tls.check().is_ok());
        assert!(MailboxConfig {
            smtp: "[::1]:25".into(),
            ..m.clone()
        }
        .check()
        .is_ok());
        assert!(MailboxConfig {
            imap: "127.0.0.1".into(),
            ..m.clone()
        }
        .check()
        .unwrap_err()
        .contains("host:port"));
        assert!(MailboxConfig {
            after_import: "move:".into(),
            ..m.clone()
        }
        .check()
        .unwrap_err()
        .contains("move:FOLDER"));
        assert_eq!(
            AfterImport::parse("move:Done").unwrap(),
            AfterImport::Move("Done".into())
        );
        assert!(MailboxConfig {
            address: "support+x@acme.test".into(),
            ..m.clone()
        }
        .check()
        .is_err());
        assert!(m.public().get("password").is_none());
    }
}
