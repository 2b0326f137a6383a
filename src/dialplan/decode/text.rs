//! Steps of text flows (the bot on web chat, WhatsApp, SMS and e-mail): `reply`,
//! `ask`, `match_kb` and `handoff`.

use super::*;

/// How long `ask` waits for an answer by default.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest a customer may be given to answer.
const ASK_TIMEOUT_MAX: Duration = Duration::from_secs(86_400);

impl Decoder<'_> {
    /// `reply: "text ${var}"` or `reply: {text: ...}`.
    pub(super) fn reply(&mut self, node: &Node) -> Option<Action> {
        let t = if node.as_map().is_some() {
            let f = self.fields(node, &["text"], "reply")?;
            f.first().and_then(|(_, v)| self.template(v, "text"))
        } else {
            self.template(node, "reply")
        };
        match t {
            Some(t) if !t.render(&Default::default()).trim().is_empty() || !t.is_static() => {
                Some(Action::Reply(t))
            }
            Some(_) | None => {
                self.err(
                    node.pos,
                    "reply needs the text to send, like `reply: \"Hello ${caller_name}\"`",
                );
                None
            }
        }
    }

    pub(super) fn ask(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut a = Ask {
            prompt: None,
            validate: Validate::Text,
            into: None,
            retries: 2,
            retry_prompt: None,
            timeout: ASK_TIMEOUT,
            invalid: None,
            on_timeout: None,
        };
        if let Value::Scalar { .. } = node.value {
            a.prompt = self.template(node, "ask");
        } else if node.value != Value::Null {
            let f = self.fields(
                node,
                &[
                    "prompt",
                    "validate",
                    "pattern",
                    "into",
                    "retries",
                    "retry_prompt",
                    "timeout",
                ],
                "ask",
            )?;
            let mut pattern = None;
            let mut validate = None;
            for (k, v) in f {
                match k {
                    "prompt" => a.prompt = self.template(v, "prompt"),
                    "validate" => {
                        let t = self.text(v, "validate")?;
                        validate = match t.as_str() {
                            "text" => Some(Validate::Text),
                            "number" => Some(Validate::Number),
                            "email" => Some(Validate::Email),
                            "phone" => Some(Validate::Phone),
                            _ => {
                                let hint = suggest(&t, ["text", "number", "email", "phone"]);
                                self.err(
                                    v.pos,
                                    format!("validate `{t}`: expected text, number, email or phone{hint} (or `pattern:` for a regular expression)"),
                                );
                                None
                            }
                        };
                        if validate.is_some() && pattern.is_some() {
                            self.err(v.pos, "give `validate` or `pattern`, not both");
                        }
                    }
                    "pattern" => {
                        pattern = self.regex(v, "pattern");
                        if validate.is_some() {
                            self.err(v.pos, "give `validate` or `pattern`, not both");
                        }
                    }
                    "into" => a.into = self.var_name(v, "into"),
                    "retries" => a.retries = self.uint(v, "retries", 10).unwrap_or(2) as u32,
                    "retry_prompt" => a.retry_prompt = self.template(v, "retry_prompt"),
                    _ => {
                        if let Some(d) = self.duration(v, "timeout") {
                            if d.is_zero() || d > ASK_TIMEOUT_MAX {
                                self.err(v.pos, "timeout must be between 1s and 24h");
                            } else {
                                a.timeout = d;
                            }
                        }
                    }
                }
            }
            if let Some(p) = pattern {
                a.validate = Validate::Pattern(p);
            } else if let Some(v) = validate {
                a.validate = v;
            }
        }
        if let Some(into) = &a.into {
            if BUILTINS.contains(&into.as_str()) || TEXT_BUILTINS.contains(&into.as_str()) {
                self.err(
                    node.pos,
                    format!("`{into}` is set by the gateway and cannot be an ask's `into`"),
                );
            }
        }
        for (k, v) in branches {
            match *k {
                "invalid" => a.invalid = self.target(v, "invalid"),
                "timeout" => a.on_timeout = self.target(v, "timeout"),
                _ => {}
            }
        }
        Some(Action::Ask(a))
    }

    pub(super) fn match_kb(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut m = MatchKb {
            text: Template::parse("${message}").ok()?,
            into: "kb".into(),
            found: None,
            not_found: None,
            handoff: None,
        };
        if let Value::Scalar { .. } = node.value {
            m.text = self.template(node, "match_kb")?;
        } else if node.value != Value::Null {
            let f = self.fields(node, &["text", "into"], "match_kb")?;
            for (k, v) in f {
                if k == "text" {
                    m.text = self.template(v, "text").unwrap_or(m.text);
                } else {
                    m.into = self.var_name(v, "into").unwrap_or(m.into);
                }
            }
        }
        for (k, v) in branches {
            match *k {
                "found" => m.found = self.target(v, "found"),
                "not_found" => m.not_found = self.target(v, "not_found"),
                "handoff_topic" => m.handoff = self.target(v, "handoff_topic"),
                _ => {}
            }
        }
        Some(Action::MatchKb(m))
    }

    /// `handoff:` (the channel's queue), `handoff: billing`, or `{queue, priority,
    /// skills, summary, intent}`.
    pub(super) fn handoff(&mut self, node: &Node) -> Option<Action> {
        let mut h = Handoff::default();
        match &node.value {
            Value::Null => {}
            Value::Scalar { .. } => h.queue = self.text(node, "handoff"),
            _ => {
                let f = self.fields(
                    node,
                    &["queue", "priority", "skills", "summary", "intent"],
                    "handoff",
                )?;
                for (k, v) in f {
                    match k {
                        "queue" => h.queue = self.text(v, "queue"),
                        "priority" => h.priority = self.uint(v, "priority", 9).map(|p| p as u8),
                        "skills" => h.skills = self.strings(v, "skills"),
                        "summary" => h.summary = self.template(v, "summary"),
                        _ => h.intent = self.template(v, "intent"),
                    }
                }
            }
        }
        if let Some(q) = &h.queue {
            if q.is_empty()
                || !q
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.err(
                    node.pos,
                    format!("handoff: a queue name is letters, digits, - and _, found `{q}`"),
                );
            }
        }
        Some(Action::Handoff(h))
    }
}
