//! Steps that read the caller's keys: `gather` and `menu`.

use super::values::is_key;
use super::*;

/// A gather's defaults: up to `max` keys, `#` to finish, 5 s for the first key,
/// `inter_digit` seconds between keys, `retries`.
fn keys(max: usize, inter_digit: u64, retries: u32) -> Gather {
    Gather {
        prompt: vec![],
        min: 1,
        max,
        finish: Some('#'),
        timeout: Duration::from_secs(5),
        inter_digit: Duration::from_secs(inter_digit),
        retries,
        retry_prompt: vec![],
        into: None,
        pattern: None,
        invalid: None,
        on_timeout: None,
    }
}

impl Decoder<'_> {
    pub(super) fn gather(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let f = self.fields(
            node,
            &[
                "prompt",
                "min",
                "max",
                "finish",
                "timeout",
                "inter_digit",
                "retries",
                "retry_prompt",
                "into",
                "pattern",
            ],
            "gather",
        )?;
        let mut g = keys(16, 3, 2);
        for (k, v) in f {
            match k {
                "prompt" => g.prompt = self.prompts(v),
                "min" => g.min = self.uint(v, "min", 64).unwrap_or(1) as usize,
                "max" => g.max = self.uint(v, "max", 64).unwrap_or(16) as usize,
                "finish" => g.finish = self.key(v, "finish").unwrap_or(Some('#')),
                "timeout" => g.timeout = self.duration(v, "timeout").unwrap_or(g.timeout),
                "inter_digit" => {
                    g.inter_digit = self.duration(v, "inter_digit").unwrap_or(g.inter_digit)
                }
                "retries" => g.retries = self.uint(v, "retries", 10).unwrap_or(2) as u32,
                "retry_prompt" => g.retry_prompt = self.prompts(v),
                "into" => g.into = self.var_name(v, "into"),
                _ => g.pattern = self.regex(v, "pattern"),
            }
        }
        if g.max == 0 || g.min > g.max {
            self.err(
                node.pos,
                format!(
                    "gather: min ({}) must be at most max ({}) and max at least 1",
                    g.min, g.max
                ),
            );
        }
        for (k, v) in branches {
            match *k {
                "invalid" => g.invalid = self.target(v, "invalid"),
                "timeout" => g.on_timeout = self.target(v, "timeout"),
                _ => {}
            }
        }
        Some(Action::Gather(g))
    }

    /// `survey`: one question answered with keys, like `survey: {metric: csat, prompt:
    /// rate-us}`. The answer must be in the metric's range (CSAT 1-5, NPS 0-10, CES
    /// 1-7); a key out of range is a wrong answer (retry prompt, then `invalid`).
    pub(super) fn survey(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let f = self.fields(
            node,
            &[
                "metric",
                "prompt",
                "timeout",
                "inter_digit",
                "retries",
                "retry_prompt",
            ],
            "survey",
        )?;
        let mut metric = Metric::Csat;
        let mut g = keys(1, 2, 1);
        for (k, v) in f {
            match k {
                "metric" => match self.text(v, "metric").as_deref() {
                    Some("csat") => metric = Metric::Csat,
                    Some("nps") => metric = Metric::Nps,
                    Some("ces") => metric = Metric::Ces,
                    Some(other) => self.err(
                        v.pos,
                        format!(
                            "survey metric `{other}`: one of csat (1-5), nps (0-10), ces (1-7)"
                        ),
                    ),
                    None => {}
                },
                "prompt" => g.prompt = self.prompts(v),
                "timeout" => g.timeout = self.duration(v, "timeout").unwrap_or(g.timeout),
                "inter_digit" => {
                    g.inter_digit = self.duration(v, "inter_digit").unwrap_or(g.inter_digit)
                }
                "retries" => g.retries = self.uint(v, "retries", 10).unwrap_or(1) as u32,
                _ => g.retry_prompt = self.prompts(v),
            }
        }
        if g.prompt.is_empty() {
            self.err(
                node.pos,
                "survey needs a `prompt` (the question), like `prompt: rate-us`",
            );
        }
        // The answer's keys; `Metric::score` says whether they are in range.
        g.max = if *metric.range().end() >= 10 { 2 } else { 1 };
        for (k, v) in branches {
            match *k {
                "invalid" => g.invalid = self.target(v, "invalid"),
                "timeout" => g.on_timeout = self.target(v, "timeout"),
                _ => {}
            }
        }
        Some(Action::Survey(Survey { metric, gather: g }))
    }

    /// `recording_notice`: the notice that calls are recorded, with the key that turns
    /// recording off, like `recording_notice: {prompt: {say: ...}, version: "2026-12",
    /// opt_out: "9"}`. Any other key, or none within `timeout` after the notice, keeps
    /// recording on; the opt-out key also goes to `opted_out` when there is one.
    pub(super) fn recording_notice(
        &mut self,
        node: &Node,
        branches: &Fields<'_>,
    ) -> Option<Action> {
        let f = self.fields(
            node,
            &["prompt", "version", "opt_out", "timeout"],
            "recording_notice",
        )?;
        let mut g = keys(1, 1, 0);
        g.finish = None;
        g.timeout = Duration::from_secs(3);
        let mut opt_out = '9';
        let mut version = None;
        for (k, v) in f {
            match k {
                "prompt" => g.prompt = self.prompts(v),
                "version" => version = self.text(v, "version"),
                "opt_out" => {
                    if let Some(k) = self.key(v, "opt_out").flatten() {
                        opt_out = k;
                    }
                }
                _ => g.timeout = self.duration(v, "timeout").unwrap_or(g.timeout),
            }
        }
        if g.prompt.is_empty() {
            self.err(
                node.pos,
                "recording_notice needs a `prompt` (the notice, saying which key stops the recording)",
            );
        }
        let version = match version.filter(|v| !v.trim().is_empty()) {
            Some(v) if v.len() <= 64 => v,
            Some(_) => {
                self.err(
                    node.pos,
                    "recording_notice: `version` is at most 64 characters",
                );
                return None;
            }
            None => {
                self.err(
                    node.pos,
                    "recording_notice needs a `version` (which notice the caller heard, kept with their choice), like `version: \"2026-12\"`",
                );
                return None;
            }
        };
        let opted_out = branches
            .iter()
            .find(|(k, _)| *k == "opted_out")
            .and_then(|(_, v)| self.target(v, "opted_out"));
        Some(Action::RecordingNotice(RecordingNotice {
            gather: g,
            opt_out,
            version,
            opted_out,
        }))
    }

    pub(super) fn menu(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let f = self.fields(
            node,
            &[
                "prompt",
                "options",
                "timeout",
                "inter_digit",
                "retries",
                "retry_prompt",
            ],
            "menu",
        )?;
        let mut m = Menu {
            prompt: vec![],
            options: vec![],
            timeout: Duration::from_secs(5),
            inter_digit: Duration::from_secs(2),
            retries: 2,
            retry_prompt: vec![],
            invalid: None,
            on_timeout: None,
        };
        let mut had_options = false;
        for (k, v) in f {
            match k {
                "prompt" => m.prompt = self.prompts(v),
                "timeout" => m.timeout = self.duration(v, "timeout").unwrap_or(m.timeout),
                "inter_digit" => {
                    m.inter_digit = self.duration(v, "inter_digit").unwrap_or(m.inter_digit)
                }
                "retries" => m.retries = self.uint(v, "retries", 10).unwrap_or(2) as u32,
                "retry_prompt" => m.retry_prompt = self.prompts(v),
                _ => {
                    had_options = true;
                    let Some(map) = v.as_map() else {
                        self.err(v.pos, "options must map keys to steps, like `1: sales`");
                        continue;
                    };
                    for (key, to) in map {
                        let Some(keys) = key.as_str() else {
                            self.err(key.pos, "an option key must be digits");
                            continue;
                        };
                        if keys.is_empty() || !keys.chars().all(is_key) {
                            self.err(
                                key.pos,
                                format!("option `{keys}` must be keys 0-9, *, # or A-D (quote \"#\" and \"*\")"),
                            );
                            continue;
                        }
                        if let Some(t) = self.target(to, &format!("option {keys}")) {
                            m.options.push((keys.to_string(), t));
                        }
                    }
                }
            }
        }
        if !had_options {
            self.err(
                node.pos,
                "menu needs `options`, like `options: {1: sales, 2: support}`",
            );
        }
        for (k, v) in branches {
            match *k {
                "invalid" => m.invalid = self.target(v, "invalid"),
                "timeout" => m.on_timeout = self.target(v, "timeout"),
                _ => {}
            }
        }
        Some(Action::Menu(m))
    }
}
