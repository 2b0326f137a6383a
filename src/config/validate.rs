//! Checks that need more than one value or the whole file (names defined once,
//! references that resolve), each error at the line of the offending value.

use super::{Config, ConfigError};

impl Config {
    /// Checks what serde cannot; errors point at the line of the offending value.
    pub(super) fn validate(&self, name: &str, text: &str) -> Result<(), ConfigError> {
        let err = |key: &str, value: &str, msg: String| {
            ConfigError(format!("{name}:{}: {key}: {msg}", locate(text, key, value)))
        };
        let r = &self.retention;
        if let Err((key, why)) = crate::privacy::retention::Policy::parse(
            &r.recordings,
            &r.voicemail,
            &r.messages,
            &r.raw_mail,
            &r.bot_logs,
        ) {
            let value = match key {
                "recordings" => &r.recordings,
                "voicemail" => &r.voicemail,
                "messages" => &r.messages,
                "raw_mail" => &r.raw_mail,
                _ => &r.bot_logs,
            };
            return Err(err(key, value, why));
        }
        if let Err(why) = crate::privacy::retention::parse_run_at(&r.run_at) {
            return Err(err("run_at", &r.run_at, why));
        }
        let t = self.kb.threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(err(
                "threshold",
                &t.to_string(),
                format!("{t} is not a confidence: a number above 0 and at most 1"),
            ));
        }
        if let Some((key, value, why)) = self.bot.problem() {
            return Err(err(key, &value, why));
        }
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
        }
        for t in &self.trunks {
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
        let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for s in &self.supervisors {
            if !seen.insert(s.name.as_str()) {
                return Err(err(
                    "name",
                    &s.name,
                    format!("supervisor \"{}\" is defined twice", s.name),
                ));
            }
            if s.password.is_empty() {
                return Err(err(
                    "name",
                    &s.name,
                    format!("supervisor \"{}\" needs a password", s.name),
                ));
            }
            if let Some((key, value, why)) = s.problem(&names) {
                return Err(err(key, &value, why));
            }
            if let Some(e) = &s.extension {
                if !users.iter().any(|u| &u.name == e) {
                    return Err(err(
                        "extension",
                        e,
                        format!("supervisor \"{}\": no [[user]] named \"{e}\"", s.name),
                    ));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.channels {
            if let Some((key, value, why)) = c.problem() {
                return Err(err(key, &value, why));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(err(
                    "name",
                    &c.name,
                    format!("channel \"{}\" is defined twice", c.name),
                ));
            }
            if !queues.iter().any(|q| q.name == c.queue) {
                return Err(err(
                    "queue",
                    &c.queue,
                    format!("channel \"{}\": no queue named \"{}\"", c.name, c.queue),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.mailboxes {
            if let Some((key, value, why)) = m.problem() {
                return Err(err(key, &value, why));
            }
            if !seen.insert(m.name.as_str()) {
                return Err(err(
                    "name",
                    &m.name,
                    format!("mailbox \"{}\" is defined twice", m.name),
                ));
            }
            if !queues.iter().any(|q| q.name == m.queue) {
                return Err(err(
                    "queue",
                    &m.queue,
                    format!("mailbox \"{}\": no queue named \"{}\"", m.name, m.queue),
                ));
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
}

/// `line:column` of the first line that sets `key` with `value` in it (or just `key`),
/// so semantic errors point where the user must look; `1:1` when not found.
fn locate(text: &str, key: &str, value: &str) -> String {
    // A dotted key (`survey.metric`) is set in a sub-table (`metric = …`) or an inline
    // table (`survey = { metric = … }`).
    let (outer, inner) = key.split_once('.').unwrap_or((key, ""));
    let mut fallback = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let sets = |k: &str| {
            t.strip_prefix(k)
                .is_some_and(|r| r.trim_start().starts_with('='))
        };
        let is_key = if inner.is_empty() {
            sets(key)
        } else {
            sets(inner) || (sets(outer) && t.contains(inner))
        };
        if is_key {
            if value.is_empty() || line.contains(value) {
                return format!("{}:{}", i + 1, line.len() - t.len() + 1);
            }
            fallback.get_or_insert(format!("{}:{}", i + 1, line.len() - t.len() + 1));
        }
    }
    fallback.unwrap_or_else(|| "1:1".into())
}
