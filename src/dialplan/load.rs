//! Reads a flow file into a [`Flow`], collecting every problem with its line and column
//! rather than stopping at the first: unknown steps and fields (with a "did you mean"),
//! bad values, undefined branch targets, missing prompt files, bad time zones, `say`
//! without a speech engine. Meaning checks that need the whole flow are in `check`;
//! `compile` runs both.

use super::model::*;
use super::problem::{suggest, Problem, BUILTINS};
use super::template::{valid_var_name, Template};
use super::yaml::{self, Node, Pos, Value};
use crate::media::player::{load_wav, Samples};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the loader may rely on.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// A text-to-speech engine is installed (`say` is allowed).
    pub tts: bool,
}

impl LoadOptions {
    /// Looks for espeak-ng on PATH.
    pub fn detect() -> LoadOptions {
        LoadOptions {
            tts: super::tts::available(),
        }
    }
}

/// Actions and the branch fields each offers.
pub(crate) const ACTIONS: &[(&str, &[&str])] = &[
    ("answer", &[]),
    ("play", &[]),
    ("say", &[]),
    ("pause", &[]),
    ("gather", &["invalid", "timeout"]),
    ("menu", &["invalid", "timeout"]),
    ("set", &[]),
    ("branch", &[]),
    ("hours", &["open", "closed"]),
    ("lookup", &["found", "not_found"]),
    ("http", &["failure"]),
    ("enqueue", &["timeout"]),
    ("transfer", &["failure"]),
    ("voicemail", &[]),
    ("record", &[]),
    ("goto", &[]),
    ("hangup", &[]),
];

const FLOW_FIELDS: &[&str] = &[
    "flow",
    "description",
    "start",
    "inputs",
    "timezone",
    "max_steps",
    "steps",
    "tests",
];

pub(crate) struct Decoder<'a> {
    pub file: PathBuf,
    dir: PathBuf,
    opts: &'a LoadOptions,
    pub problems: Vec<Problem>,
    index: HashMap<String, StepId>,
    names: Vec<String>,
    prompts: HashMap<String, Samples>,
    timezone: jiff::tz::TimeZone,
}

type Fields<'n> = Vec<(&'n str, &'n Node)>;

impl<'a> Decoder<'a> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }

    /// The entries of a mapping, refusing keys not in `allowed`.
    fn fields<'n>(&mut self, node: &'n Node, allowed: &[&str], what: &str) -> Option<Fields<'n>> {
        let Some(map) = node.as_map() else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.kind()),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                self.err(k.pos, format!("{what}: keys must be names"));
                continue;
            };
            if allowed.contains(&key) {
                out.push((key, v));
            } else {
                let hint = suggest(key, allowed.iter().copied());
                self.err(
                    k.pos,
                    format!(
                        "unknown field `{key}` in {what}{hint} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(out)
    }

    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a value, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
        let (text, quoted) = match &node.value {
            Value::Scalar { text, quoted } => (text.clone(), *quoted),
            Value::Null => (String::new(), false),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be text, found {}", node.kind()),
                );
                return None;
            }
        };
        let start = Pos {
            line: node.pos.line,
            col: node.pos.col + u32::from(quoted),
        };
        match Template::parse(&text) {
            Ok(mut t) => {
                t.pos = start;
                Some(t)
            }
            Err(e) => {
                let pos = Pos {
                    line: start.line,
                    col: start.col + e.offset as u32,
                };
                self.err(pos, format!("{what}: {}", e.message));
                None
            }
        }
    }

    fn var_name(&mut self, node: &Node, what: &str) -> Option<String> {
        let name = self.text(node, what)?;
        if valid_var_name(&name) {
            Some(name)
        } else {
            self.err(
                node.pos,
                format!("{what}: `{name}` is not a variable name (letters, digits, `_` and `.`)"),
            );
            None
        }
    }

    fn uint(&mut self, node: &Node, what: &str, max: u64) -> Option<u64> {
        let t = self.text(node, what)?;
        match t.trim().parse::<u64>() {
            Ok(v) if v <= max => Some(v),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a whole number from 0 to {max}, found `{t}`"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        let t = self.text(node, what)?;
        match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be true or false, found `{t}`"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let t = self.text(node, what)?;
        match parse_duration(&t) {
            Some(d) => Some(d),
            None => {
                self.err(
                    node.pos,
                    format!("{what}: `{t}` is not a duration (like 5s, 500ms, 2m or 1h)"),
                );
                None
            }
        }
    }

    fn key(&mut self, node: &Node, what: &str) -> Option<Option<char>> {
        if node.value == Value::Null {
            return Some(None);
        }
        let t = self.text(node, what)?;
        let mut c = t.chars();
        match (c.next(), c.next()) {
            (None, _) => Some(None),
            (Some(k), None) if is_key(k) => Some(Some(k)),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be one key: 0-9, *, # or A-D, found `{t}` (write \"#\" in quotes)"),
                );
                None
            }
        }
    }

    fn target(&mut self, node: &Node, what: &str) -> Option<Target> {
        let name = self.text(node, what)?;
        match self.index.get(&name) {
            Some(&step) => Some(Target {
                step,
                pos: node.pos,
            }),
            None => {
                let hint = suggest(&name, self.names.iter().map(|s| s.as_str()));
                self.err(
                    node.pos,
                    format!("{what}: there is no step named `{name}`{hint}"),
                );
                None
            }
        }
    }

    fn regex(&mut self, node: &Node, what: &str) -> Option<regex::Regex> {
        let t = self.text(node, what)?;
        match regex::Regex::new(&t) {
            Ok(r) => Some(r),
            Err(e) => {
                let first = e.to_string();
                let msg = first.lines().last().unwrap_or("invalid").trim().to_string();
                self.err(node.pos, format!("{what}: bad regular expression: {msg}"));
                None
            }
        }
    }

    fn timezone(&mut self, node: &Node) -> Option<jiff::tz::TimeZone> {
        let name = self.text(node, "timezone")?;
        match jiff::tz::TimeZone::get(&name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                let hint = suggest(
                    &name,
                    [
                        "UTC",
                        "Europe/London",
                        "Europe/Paris",
                        "America/New_York",
                        "America/Chicago",
                        "America/Los_Angeles",
                        "Asia/Tokyo",
                    ],
                );
                self.err(
                    node.pos,
                    format!(
                        "unknown time zone `{name}`{hint} (use an IANA name like America/New_York)"
                    ),
                );
                None
            }
        }
    }

    fn prompt_file(&mut self, name: &str, pos: Pos) -> Option<Prompt> {
        if name.contains("${") {
            self.err(
                pos,
                format!("prompt `{name}`: file names cannot use variables; use `say` for text that changes"),
            );
            return None;
        }
        if !self.prompts.contains_key(name) {
            let path = prompt_path(&self.dir, name);
            match load_wav(&path) {
                Ok(s) => {
                    self.prompts.insert(name.to_string(), s);
                }
                Err(e) => {
                    let why = if path.exists() {
                        format!("cannot be played: {e}")
                    } else {
                        format!("not found (looked for {})", path.display())
                    };
                    self.err(pos, format!("prompt `{name}` {why}"));
                    return None;
                }
            }
        }
        Some(Prompt::File {
            name: name.to_string(),
            pos,
        })
    }

    fn say(&mut self, node: &Node) -> Option<Prompt> {
        let text = self.template(node, "say")?;
        if !self.opts.tts {
            self.err(
                node.pos,
                "`say` needs a text-to-speech engine and espeak-ng is not installed \
                 (apt install espeak-ng), or play a recorded WAV prompt instead",
            );
            return None;
        }
        Some(Prompt::Say {
            text,
            pos: node.pos,
        })
    }

    fn prompt_item(&mut self, node: &Node) -> Option<Prompt> {
        match &node.value {
            Value::Scalar { text, .. } => {
                let text = text.clone();
                self.prompt_file(&text, node.pos)
            }
            Value::Map(_) => {
                let f = self.fields(node, &["file", "say", "silence", "beep"], "a prompt")?;
                if f.len() != 1 {
                    self.err(
                        node.pos,
                        "a prompt is one of: a file name, {say: text}, {silence: 1s}, {beep: true}",
                    );
                    return None;
                }
                let (k, v) = f[0];
                match k {
                    "file" => {
                        let name = self.text(v, "file")?;
                        self.prompt_file(&name, v.pos)
                    }
                    "say" => self.say(v),
                    "silence" => self.duration(v, "silence").map(Prompt::Silence),
                    _ => self.boolean(v, "beep").map(|_| Prompt::Beep),
                }
            }
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "a prompt must be a file name or a mapping, found {}",
                        node.kind()
                    ),
                );
                None
            }
        }
    }

    /// A prompt list: one item or a list of items.
    fn prompts(&mut self, node: &Node) -> Vec<Prompt> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.prompt_item(i)).collect(),
            Value::Null => vec![],
            _ => self.prompt_item(node).into_iter().collect(),
        }
    }

    fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.text(i, what)).collect(),
            Value::Scalar { text, .. } => text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Value::Null => vec![],
            Value::Map(_) => {
                self.err(node.pos, format!("{what} must be a list"));
                vec![]
            }
        }
    }

    fn gather(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
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
        let mut g = Gather {
            prompt: vec![],
            min: 1,
            max: 16,
            finish: Some('#'),
            timeout: Duration::from_secs(5),
            inter_digit: Duration::from_secs(3),
            retries: 2,
            retry_prompt: vec![],
            into: None,
            pattern: None,
            invalid: None,
            on_timeout: None,
        };
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

    fn menu(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
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

    fn branch(&mut self, node: &Node) -> Option<Action> {
        let f = self.fields(node, &["value", "cases"], "branch")?;
        let mut b = Branch {
            value: None,
            cases: vec![],
        };
        let mut cases_node = None;
        for (k, v) in f {
            match k {
                "value" => b.value = self.template(v, "value"),
                _ => cases_node = Some(v),
            }
        }
        let Some(cases) = cases_node else {
            self.err(
                node.pos,
                "branch needs `cases`: a list like `- equals: \"1\"` with `goto: step`",
            );
            return None;
        };
        let Value::Seq(items) = &cases.value else {
            self.err(cases.pos, "cases must be a list");
            return None;
        };
        const OPS: &[&str] = &[
            "equals",
            "not_equals",
            "in",
            "matches",
            "starts_with",
            "less_than",
            "at_most",
            "greater_than",
            "at_least",
            "empty",
        ];
        let mut allowed: Vec<&str> = OPS.to_vec();
        allowed.extend(["value", "goto"]);
        for item in items {
            let Some(cf) = self.fields(item, &allowed, "a case") else {
                continue;
            };
            let mut value = None;
            let mut goto = None;
            let mut cond = None;
            let mut ops = 0;
            for (k, v) in cf {
                match k {
                    "value" => value = self.template(v, "value"),
                    "goto" => goto = self.target(v, "goto"),
                    op => {
                        ops += 1;
                        cond = self.cond(op, v);
                    }
                }
            }
            if ops != 1 {
                self.err(
                    item.pos,
                    format!("a case needs exactly one test: {}", OPS.join(", ")),
                );
                continue;
            }
            if value.is_none() && b.value.is_none() {
                self.err(
                    item.pos,
                    "a case needs a `value` to test (on the case or on the branch)",
                );
            }
            match (cond, goto) {
                (Some(cond), Some(goto)) => b.cases.push(Case { value, cond, goto }),
                (Some(_), None)
                    if !item
                        .as_map()
                        .is_some_and(|m| m.iter().any(|(k, _)| k.as_str() == Some("goto"))) =>
                {
                    self.err(item.pos, "a case needs `goto: step`");
                }
                _ => {}
            }
        }
        Some(Action::Branch(b))
    }

    fn cond(&mut self, op: &str, v: &Node) -> Option<Cond> {
        let num = |d: &mut Self, v: &Node| -> Option<f64> {
            let t = d.text(v, op)?;
            match t.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    d.err(v.pos, format!("{op} needs a number, found `{t}`"));
                    None
                }
            }
        };
        Some(match op {
            "equals" => Cond::Equals(self.text(v, op)?),
            "not_equals" => Cond::NotEquals(self.text(v, op)?),
            "in" => Cond::In(self.strings(v, op)),
            "matches" => Cond::Matches(self.regex(v, op)?),
            "starts_with" => Cond::StartsWith(self.text(v, op)?),
            "less_than" => Cond::LessThan(num(self, v)?),
            "at_most" => Cond::AtMost(num(self, v)?),
            "greater_than" => Cond::GreaterThan(num(self, v)?),
            "at_least" => Cond::AtLeast(num(self, v)?),
            _ => Cond::Empty(self.boolean(v, op)?),
        })
    }

    fn hours(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let f = self.fields(node, &["timezone", "open", "holidays"], "hours")?;
        let mut h = Hours {
            tz: self.timezone.clone(),
            tz_name: self.timezone.iana_name().unwrap_or("UTC").to_string(),
            week: Default::default(),
            holidays: vec![],
            open: None,
            closed: None,
        };
        let mut had_open = false;
        for (k, v) in f {
            match k {
                "timezone" => {
                    if let Some(tz) = self.timezone(v) {
                        h.tz = tz;
                        h.tz_name = v.as_str().unwrap_or_default().to_string();
                    }
                }
                "holidays" => {
                    let items: Vec<&Node> = match &v.value {
                        Value::Seq(items) => items.iter().collect(),
                        _ => vec![v],
                    };
                    for i in items {
                        let Some(t) = self.text(i, "holiday") else {
                            continue;
                        };
                        match t.trim().parse::<jiff::civil::Date>() {
                            Ok(d) => h.holidays.push(d),
                            Err(_) => self.err(
                                i.pos,
                                format!("holiday `{t}` is not a date like 2026-12-25"),
                            ),
                        }
                    }
                }
                _ => {
                    had_open = true;
                    let Some(map) = v.as_map() else {
                        self.err(
                            v.pos,
                            "open must map days to hours, like `mon-fri: 09:00-17:00`",
                        );
                        continue;
                    };
                    for (days, ranges) in map {
                        let Some(ds) = days.as_str() else { continue };
                        let Some(set) = parse_days(ds) else {
                            self.err(days.pos, format!("`{ds}` is not a day or days (mon, tue, ..., sun, mon-fri, sat,sun, daily)"));
                            continue;
                        };
                        let rs: Vec<&Node> = match &ranges.value {
                            Value::Seq(items) => items.iter().collect(),
                            _ => vec![ranges],
                        };
                        for r in rs {
                            let Some(t) = self.text(r, "hours") else {
                                continue;
                            };
                            match parse_range(&t) {
                                Some(iv) => {
                                    for d in &set {
                                        h.week[*d].push(iv);
                                    }
                                }
                                None => self.err(
                                    r.pos,
                                    format!("`{t}` is not a time range like 09:00-17:30 (24-hour clock, end after start; 24:00 is midnight)"),
                                ),
                            }
                        }
                    }
                }
            }
        }
        if !had_open {
            self.err(
                node.pos,
                "hours needs `open`, like `open: {mon-fri: 09:00-17:00}`",
            );
        }
        for (k, v) in branches {
            match *k {
                "open" => h.open = self.target(v, "open"),
                "closed" => h.closed = self.target(v, "closed"),
                _ => {}
            }
        }
        Some(Action::Hours(h))
    }

    fn lookup(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut by = LookupBy::Caller;
        let mut value = None;
        let mut into = "customer".to_string();
        let parse_by = |d: &mut Self, v: &Node| -> Option<LookupBy> {
            let t = d.text(v, "by")?;
            Some(match t.as_str() {
                "caller" => LookupBy::Caller,
                "phone" => LookupBy::Phone,
                "account" => LookupBy::Account,
                "email" => LookupBy::Email,
                "id" => LookupBy::Id,
                _ => {
                    let hint = suggest(&t, ["caller", "phone", "account", "email", "id"]);
                    d.err(
                        v.pos,
                        format!(
                            "lookup by `{t}`: expected caller, phone, account, email or id{hint}"
                        ),
                    );
                    return None;
                }
            })
        };
        if let Value::Scalar { .. } = node.value {
            by = parse_by(self, node)?;
        } else if node.value != Value::Null {
            let f = self.fields(node, &["by", "value", "into"], "lookup")?;
            for (k, v) in f {
                match k {
                    "by" => by = parse_by(self, v).unwrap_or(by),
                    "value" => value = self.template(v, "value"),
                    _ => into = self.var_name(v, "into").unwrap_or(into),
                }
            }
        }
        let value = match value {
            Some(v) => v,
            None if by == LookupBy::Caller => Template::parse("${caller}").ok()?,
            None => {
                self.err(
                    node.pos,
                    format!(
                        "lookup by {} needs a `value`, like `value: ${{account}}`",
                        by.name()
                    ),
                );
                return None;
            }
        };
        let mut l = Lookup {
            by,
            value,
            into,
            found: None,
            not_found: None,
        };
        for (k, v) in branches {
            match *k {
                "found" => l.found = self.target(v, "found"),
                "not_found" => l.not_found = self.target(v, "not_found"),
                _ => {}
            }
        }
        Some(Action::Lookup(l))
    }

    fn http(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let f = self.fields(
            node,
            &["url", "method", "headers", "body", "timeout", "into"],
            "http",
        )?;
        let mut url = None;
        let mut method = None;
        let mut h = Http {
            method: String::new(),
            url: Template::default(),
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(5),
            into: "http".into(),
            failure: None,
        };
        for (k, v) in f {
            match k {
                "url" => {
                    url = self.template(v, "url");
                    if let Some(Some(text)) =
                        v.as_str().map(|s| s.split("${").next().map(str::to_string))
                    {
                        if !(text.starts_with("http://")
                            || text.starts_with("https://")
                            || text.is_empty())
                        {
                            self.err(v.pos, "url must start with http:// or https://");
                        }
                    }
                }
                "method" => {
                    let m = self.text(v, "method").map(|m| m.to_ascii_uppercase());
                    if let Some(m) = m {
                        if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                            method = Some(m);
                        } else {
                            self.err(
                                v.pos,
                                format!("method `{m}`: expected GET, POST, PUT, PATCH or DELETE"),
                            );
                        }
                    }
                }
                "headers" | "body" => {
                    let Some(map) = v.as_map() else {
                        self.err(v.pos, format!("{k} must be a mapping"));
                        continue;
                    };
                    let mut out = vec![];
                    for (name, val) in map {
                        let Some(n) = self.text(name, k) else {
                            continue;
                        };
                        if let Some(t) = self.template(val, &n) {
                            out.push((n, t));
                        }
                    }
                    if k == "headers" {
                        h.headers = out;
                    } else {
                        h.body = Some(out);
                    }
                }
                "timeout" => {
                    if let Some(d) = self.duration(v, "timeout") {
                        if d > Duration::from_secs(30) || d.is_zero() {
                            self.err(
                                v.pos,
                                "timeout must be between 1ms and 30s: the caller is waiting",
                            );
                        } else {
                            h.timeout = d;
                        }
                    }
                }
                _ => h.into = self.var_name(v, "into").unwrap_or(h.into),
            }
        }
        let Some(url) = url else {
            self.err(node.pos, "http needs a `url`");
            return None;
        };
        h.url = url;
        h.method = method.unwrap_or_else(|| {
            if h.body.is_some() {
                "POST".into()
            } else {
                "GET".into()
            }
        });
        for (k, v) in branches {
            if *k == "failure" {
                h.failure = self.target(v, "failure");
            }
        }
        Some(Action::Http(h))
    }

    fn enqueue(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut q = Enqueue {
            queue: String::new(),
            priority: 5,
            skills: vec![],
            hold: vec![],
            announce: None,
            max_wait: None,
            on_timeout: None,
        };
        if let Value::Scalar { text, .. } = &node.value {
            q.queue = text.clone();
        } else {
            let f = self.fields(
                node,
                &[
                    "queue", "priority", "skills", "hold", "announce", "max_wait",
                ],
                "enqueue",
            )?;
            for (k, v) in f {
                match k {
                    "queue" => q.queue = self.text(v, "queue").unwrap_or_default(),
                    "priority" => q.priority = self.uint(v, "priority", 9).unwrap_or(5) as u8,
                    "skills" => q.skills = self.strings(v, "skills"),
                    "hold" => q.hold = self.prompts(v),
                    "max_wait" => q.max_wait = self.duration(v, "max_wait"),
                    _ => {
                        let Some(af) = self.fields(v, &["every", "play", "say"], "announce") else {
                            continue;
                        };
                        let mut every = None;
                        let mut prompts = vec![];
                        for (ak, av) in af {
                            match ak {
                                "every" => every = self.duration(av, "every"),
                                "play" => prompts.extend(self.prompts(av)),
                                _ => prompts.extend(self.say(av)),
                            }
                        }
                        match every {
                            Some(e) if e >= Duration::from_secs(5) => {
                                q.announce = Some(Announce { every: e, prompts })
                            }
                            Some(_) => self.err(v.pos, "announce every: at least 5s"),
                            None => self.err(v.pos, "announce needs `every`, like `every: 30s`"),
                        }
                    }
                }
            }
        }
        if q.queue.is_empty()
            || !q
                .queue
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.err(
                node.pos,
                format!(
                    "enqueue needs a queue name (letters, digits, - and _), found `{}`",
                    q.queue
                ),
            );
        }
        for (k, v) in branches {
            if *k == "timeout" {
                q.on_timeout = self.target(v, "timeout");
                if q.max_wait.is_none() {
                    self.err(v.pos, "`timeout` needs `max_wait` in the enqueue");
                }
            }
        }
        Some(Action::Enqueue(q))
    }

    fn transfer(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut to = None;
        let mut timeout = Duration::from_secs(30);
        if let Value::Scalar { text, .. } = &node.value {
            let t = self.template(node, "transfer")?;
            let lower = text.to_ascii_lowercase();
            to = Some(
                if lower.starts_with("sip:")
                    || lower.starts_with("sips:")
                    || lower.starts_with("tel:")
                {
                    TransferTo::Uri(t)
                } else {
                    TransferTo::Extension(t)
                },
            );
        } else {
            let f = self.fields(
                node,
                &["uri", "extension", "number", "trunk", "timeout"],
                "transfer",
            )?;
            let mut trunk = None;
            let mut number = None;
            for (k, v) in f {
                match k {
                    "uri" => to = self.template(v, "uri").map(TransferTo::Uri),
                    "extension" => to = self.template(v, "extension").map(TransferTo::Extension),
                    "number" => number = self.template(v, "number"),
                    "trunk" => trunk = self.text(v, "trunk"),
                    _ => timeout = self.duration(v, "timeout").unwrap_or(timeout),
                }
            }
            if let Some(n) = number {
                to = Some(TransferTo::Number { number: n, trunk });
            } else if trunk.is_some() {
                self.err(node.pos, "`trunk` goes with `number`");
            }
        }
        let Some(to) = to else {
            self.err(
                node.pos,
                "transfer needs one of `uri`, `extension` or `number`",
            );
            return None;
        };
        let mut t = Transfer {
            to,
            timeout,
            failure: None,
        };
        for (k, v) in branches {
            if *k == "failure" {
                t.failure = self.target(v, "failure");
            }
        }
        Some(Action::Transfer(t))
    }

    fn voicemail(&mut self, node: &Node) -> Option<Action> {
        let mut vm = Voicemail {
            prompt: vec![],
            beep: true,
            max_length: Duration::from_secs(120),
            finish: Some('#'),
        };
        if node.value != Value::Null {
            let f = self.fields(
                node,
                &["prompt", "beep", "max_length", "finish"],
                "voicemail",
            )?;
            for (k, v) in f {
                match k {
                    "prompt" => vm.prompt = self.prompts(v),
                    "beep" => vm.beep = self.boolean(v, "beep").unwrap_or(true),
                    "max_length" => {
                        vm.max_length = self.duration(v, "max_length").unwrap_or(vm.max_length)
                    }
                    _ => vm.finish = self.key(v, "finish").unwrap_or(Some('#')),
                }
            }
        }
        Some(Action::Voicemail(vm))
    }

    fn action(&mut self, kind: &str, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        Some(match kind {
            "answer" => Action::Answer,
            "hangup" => Action::Hangup,
            "play" => {
                if let Some(map) = node.as_map() {
                    if map.iter().any(|(k, _)| k.as_str() == Some("prompts")) {
                        let f = self.fields(node, &["prompts", "barge_in"], "play")?;
                        let mut prompts = vec![];
                        let mut barge_in = false;
                        for (k, v) in f {
                            if k == "prompts" {
                                prompts = self.prompts(v);
                            } else {
                                barge_in = self.boolean(v, "barge_in").unwrap_or(false);
                            }
                        }
                        return Some(Action::Play { prompts, barge_in });
                    }
                }
                let prompts = self.prompts(node);
                if prompts.is_empty() && node.value == Value::Null {
                    self.err(node.pos, "play needs a prompt");
                }
                Action::Play {
                    prompts,
                    barge_in: false,
                }
            }
            "say" => {
                if let Some(_map) = node.as_map() {
                    let f = self.fields(node, &["text", "barge_in"], "say")?;
                    let mut prompts = vec![];
                    let mut barge_in = false;
                    for (k, v) in f {
                        if k == "text" {
                            prompts.extend(self.say(v));
                        } else {
                            barge_in = self.boolean(v, "barge_in").unwrap_or(false);
                        }
                    }
                    Action::Play { prompts, barge_in }
                } else {
                    Action::Play {
                        prompts: self.say(node).into_iter().collect(),
                        barge_in: false,
                    }
                }
            }
            "pause" => Action::Pause(self.duration(node, "pause")?),
            "gather" => self.gather(node, branches)?,
            "menu" => self.menu(node, branches)?,
            "set" => {
                let Some(map) = node.as_map() else {
                    self.err(
                        node.pos,
                        "set must map variables to values, like `set: {department: support}`",
                    );
                    return None;
                };
                let mut out = vec![];
                for (k, v) in map {
                    let Some(name) = self.var_name(k, "set") else {
                        continue;
                    };
                    if BUILTINS.contains(&name.as_str()) {
                        self.err(
                            k.pos,
                            format!("`{name}` is set by the gateway and cannot be changed"),
                        );
                        continue;
                    }
                    if let Some(t) = self.template(v, &name) {
                        out.push((name, t));
                    }
                }
                Action::Set(out)
            }
            "branch" => self.branch(node)?,
            "hours" => self.hours(node, branches)?,
            "lookup" => self.lookup(node, branches)?,
            "http" => self.http(node, branches)?,
            "enqueue" => self.enqueue(node, branches)?,
            "transfer" => self.transfer(node, branches)?,
            "voicemail" => self.voicemail(node)?,
            "record" => Action::Record(self.boolean(node, "record")?),
            _ => match &node.value {
                Value::Scalar { .. } => Action::Goto(Goto::Step(self.target(node, "goto")?)),
                _ => {
                    let f = self.fields(node, &["flow", "step"], "goto")?;
                    let mut flow = None;
                    let mut step = None;
                    for (k, v) in f {
                        if k == "flow" {
                            flow = self.text(v, "flow");
                        } else {
                            step = self.text(v, "step");
                        }
                    }
                    let Some(flow) = flow else {
                        self.err(
                            node.pos,
                            "goto needs a step name, or `flow:` (and optionally `step:`)",
                        );
                        return None;
                    };
                    Action::Goto(Goto::Flow {
                        flow,
                        step,
                        pos: node.pos,
                    })
                }
            },
        })
    }

    fn step(
        &mut self,
        name: &str,
        pos: Pos,
        node: &Node,
        following: Option<StepId>,
    ) -> Option<Step> {
        let Some(map) = node.as_map() else {
            self.err(
                node.pos,
                format!("step `{name}` must be a mapping with one action, like `play: welcome`"),
            );
            return None;
        };
        let actions: Vec<&(Node, Node)> = map
            .iter()
            .filter(|(k, _)| {
                k.as_str()
                    .is_some_and(|k| ACTIONS.iter().any(|(a, _)| *a == k))
            })
            .collect();
        let (kind, body) = match actions.as_slice() {
            [(k, v)] => (k.as_str().unwrap_or_default().to_string(), v),
            [] => {
                let keys: Vec<&str> = map.iter().filter_map(|(k, _)| k.as_str()).collect();
                let known: Vec<&str> = ACTIONS.iter().map(|(a, _)| *a).collect();
                let unknown = keys.iter().find(|k| {
                    !["next", "note"].contains(k) && !ACTIONS.iter().any(|(_, b)| b.contains(k))
                });
                match unknown {
                    Some(u) => {
                        let at = map
                            .iter()
                            .find(|(k, _)| k.as_str() == Some(u))
                            .map(|(k, _)| k.pos)
                            .unwrap_or(pos);
                        let hint = suggest(u, known.iter().copied());
                        self.err(
                            at,
                            format!(
                                "unknown step type `{u}`{hint} (steps: {})",
                                known.join(", ")
                            ),
                        );
                    }
                    None => self.err(
                        pos,
                        format!("step `{name}` has no action (one of: {})", known.join(", ")),
                    ),
                }
                return None;
            }
            [_, (k2, _), ..] => {
                self.err(
                    k2.pos,
                    format!("step `{name}` has more than one action; give each its own step"),
                );
                return None;
            }
        };
        let allowed_branches = ACTIONS
            .iter()
            .find(|(a, _)| *a == kind)
            .map(|(_, b)| *b)
            .unwrap_or(&[]);
        let mut branches: Fields<'_> = vec![];
        let mut next = None;
        let mut explicit_next = false;
        for (k, v) in map {
            let Some(key) = k.as_str() else { continue };
            if key == kind || key == "note" {
                continue;
            }
            if key == "next" {
                explicit_next = true;
                next = self.target(v, "next");
            } else if allowed_branches.contains(&key) {
                branches.push((key, v));
            } else {
                let mut options: Vec<&str> = vec!["next", "note"];
                options.extend(allowed_branches.iter().copied());
                let hint = suggest(key, options.iter().copied());
                let what = if ACTIONS.iter().any(|(a, _)| *a == key) {
                    format!("step `{name}` has more than one action (`{kind}` and `{key}`); give each its own step")
                } else {
                    format!(
                        "unknown field `{key}` in a {kind} step{hint} (expected: {})",
                        options.join(", ")
                    )
                };
                self.err(k.pos, what);
            }
        }
        let action = self.action(&kind, body, &branches)?;
        if action.terminal() && explicit_next {
            self.err(pos, format!("a {kind} step does not go on: remove `next`"));
        }
        if !explicit_next && !action.terminal() {
            next = following.map(|step| Target { step, pos });
        }
        Some(Step {
            name: name.to_string(),
            pos,
            action,
            next,
            explicit_next,
        })
    }

    fn test_case(&mut self, node: &Node) -> Option<TestCase> {
        let f = self.fields(
            node,
            &[
                "name",
                "caller",
                "dialled",
                "trunk",
                "at",
                "digits",
                "variables",
                "lookup",
                "http",
                "transfer",
                "expect",
            ],
            "a test",
        )?;
        let mut t = TestCase {
            pos: node.pos,
            caller: "+15550000000".into(),
            dialled: "1000".into(),
            ..Default::default()
        };
        for (k, v) in f {
            match k {
                "name" => t.name = self.text(v, "name").unwrap_or_default(),
                "caller" => t.caller = self.text(v, "caller").unwrap_or_default(),
                "dialled" => t.dialled = self.text(v, "dialled").unwrap_or_default(),
                "trunk" => t.trunk = self.text(v, "trunk").unwrap_or_default(),
                "at" => {
                    let s = self.text(v, "at").unwrap_or_default();
                    match parse_at(&s) {
                        Some(ts) => t.at = Some(ts),
                        None => self.err(
                            v.pos,
                            format!("at: `{s}` is not a time like 2026-11-22T20:00:00-05:00"),
                        ),
                    }
                }
                "digits" => {
                    t.digits = match &v.value {
                        Value::Seq(items) => items
                            .iter()
                            .filter_map(|i| match &i.value {
                                Value::Null => Some(String::new()),
                                _ => self.text(i, "digits"),
                            })
                            .collect(),
                        Value::Scalar { text, .. } => {
                            text.split(',').map(|s| s.trim().to_string()).collect()
                        }
                        _ => vec![],
                    };
                    for d in &t.digits {
                        if !d.chars().all(is_key) {
                            self.err(v.pos, format!("digits `{d}`: only 0-9, *, # and A-D"));
                        }
                    }
                }
                "variables" => {
                    if let Some(map) = v.as_map() {
                        for (name, val) in map {
                            if let (Some(n), Some(val)) =
                                (self.var_name(name, "variable"), scalar_or_empty(val))
                            {
                                t.variables.push((n, val));
                            }
                        }
                    }
                }
                "lookup" => {
                    let Some(map) = v.as_map() else {
                        self.err(v.pos, "lookup fixtures map `by:value` to the customer's fields, like `\"account:1234\": {name: Ada}`");
                        continue;
                    };
                    for (key, val) in map {
                        let Some(key) = self.text(key, "lookup") else {
                            continue;
                        };
                        let fields = match &val.value {
                            Value::Null => None,
                            Value::Map(m) => Some(
                                m.iter()
                                    .filter_map(|(a, b)| {
                                        Some((a.as_str()?.to_string(), scalar_or_empty(b)?))
                                    })
                                    .collect(),
                            ),
                            _ => {
                                self.err(val.pos, "a lookup fixture is the customer's fields, or null for not found");
                                continue;
                            }
                        };
                        t.lookup.insert(key, fields);
                    }
                }
                "http" => {
                    let Some(map) = v.as_map() else {
                        self.err(v.pos, "http fixtures map URLs to answers, like `\"GET https://crm/x\": {status: 200, body: {...}}`");
                        continue;
                    };
                    for (key, val) in map {
                        let Some(key) = self.text(key, "http") else {
                            continue;
                        };
                        let answer = match &val.value {
                            Value::Scalar { text, .. } => Err(text.clone()),
                            Value::Map(_) => {
                                let Some(af) =
                                    self.fields(val, &["status", "body"], "an http fixture")
                                else {
                                    continue;
                                };
                                let mut status = 200u16;
                                let mut body = serde_json::Value::Null;
                                for (ak, av) in af {
                                    if ak == "status" {
                                        status = self.uint(av, "status", 599).unwrap_or(200) as u16;
                                    } else {
                                        body = to_json(av);
                                    }
                                }
                                Ok((status, body))
                            }
                            _ => {
                                self.err(val.pos, "an http fixture is {status, body}, or an error text like `timeout`");
                                continue;
                            }
                        };
                        t.http.insert(key, answer);
                    }
                }
                "transfer" => t.transfer_fails = self.text(v, "transfer"),
                _ => {
                    let Some(ef) = self.fields(v, &["path", "ends", "variables"], "expect") else {
                        continue;
                    };
                    for (ek, ev) in ef {
                        match ek {
                            "path" => t.expect_path = Some((self.strings(ev, "path"), ev.pos)),
                            "ends" => {
                                let ends = match &ev.value {
                                    Value::Scalar { text, .. } => Some(text.clone()),
                                    Value::Map(m) if m.len() == 1 => {
                                        let (a, b) = &m[0];
                                        Some(format!(
                                            "{} {}",
                                            a.as_str().unwrap_or_default(),
                                            b.as_str().unwrap_or_default()
                                        ))
                                    }
                                    _ => None,
                                };
                                match ends {
                                    Some(e) if valid_ending(&e) => t.expect_ends = Some((e, ev.pos)),
                                    _ => self.err(ev.pos, "ends: one of hangup, caller_hangup, error, {enqueue: queue}, {transfer: target}, {goto: flow}"),
                                }
                            }
                            _ => {
                                if let Some(map) = ev.as_map() {
                                    for (name, val) in map {
                                        if let (Some(n), Some(val)) =
                                            (self.text(name, "variable"), scalar_or_empty(val))
                                        {
                                            t.expect_vars.push((n, val, name.pos));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if t.name.is_empty() {
            t.name = format!("test at line {}", node.pos.line);
        }
        Some(t)
    }

    pub fn tests(&mut self, node: &Node) -> Vec<TestCase> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.test_case(i)).collect(),
            Value::Null => vec![],
            _ => {
                self.err(node.pos, "tests must be a list");
                vec![]
            }
        }
    }
}

fn valid_ending(e: &str) -> bool {
    matches!(e, "hangup" | "caller_hangup" | "error")
        || ["enqueue ", "transfer ", "goto "]
            .iter()
            .any(|p| e.starts_with(p) && e.len() > p.len())
}

fn scalar_or_empty(n: &Node) -> Option<String> {
    match &n.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// YAML (as written in a test fixture) to JSON: unquoted numbers, booleans and null are
/// typed, everything else is text.
pub fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &n.value {
        Value::Null => J::Null,
        Value::Scalar { text, quoted: true } => J::String(text.clone()),
        Value::Scalar { text, .. } => {
            if let Ok(i) = text.parse::<i64>() {
                J::from(i)
            } else if let Ok(f) = text.parse::<f64>() {
                J::from(f)
            } else if text == "true" || text == "false" {
                J::Bool(text == "true")
            } else {
                J::String(text.clone())
            }
        }
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

pub fn is_key(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

/// `5s`, `500ms`, `2m`, `1h`, `1m30s` or a bare number of seconds.
pub fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite() && secs < 1e7)
            .then(|| Duration::from_secs_f64(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += Duration::from_secs_f64(v * unit);
    }
    (total < Duration::from_secs(10_000_000)).then_some(total)
}

/// `mon`, `mon-fri`, `sat,sun`, `daily`, `weekdays`, `weekends` → weekday indexes.
pub fn parse_days(s: &str) -> Option<Vec<usize>> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let day = |d: &str| {
        let d = d.trim().to_ascii_lowercase();
        NAMES.iter().position(|n| d.starts_with(n) && d.len() <= 9)
    };
    let mut out = vec![];
    for part in s.split(',') {
        let p = part.trim().to_ascii_lowercase();
        match p.as_str() {
            "daily" | "every day" => out.extend(0..7),
            "weekdays" => out.extend(0..5),
            "weekends" => out.extend(5..7),
            _ => match p.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        out.push(d);
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => out.push(day(&p)?),
            },
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// `09:00-17:30` → minutes since midnight, end exclusive (`24:00` allowed as the end).
pub fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.trim().split_once('-')?;
    let hm = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (a, b) = (hm(a)?, hm(b)?);
    (a < b).then_some((a, b))
}

/// An instant with its offset, like `2026-11-22T20:00:00-05:00` (or `...Z`).
pub fn parse_at(s: &str) -> Option<jiff::Timestamp> {
    s.trim().parse::<jiff::Timestamp>().ok()
}

/// Where a prompt name points: `name.wav` (or a path) beside the flow, else
/// `prompts/<name>.wav` beside the flow.
pub fn prompt_path(dir: &Path, name: &str) -> PathBuf {
    if name.ends_with(".wav") || name.contains('/') {
        dir.join(name)
    } else {
        dir.join("prompts").join(format!("{name}.wav"))
    }
}

/// Reads a flow file's text (a problem at 1:1 when it cannot be read).
pub fn read(path: &Path) -> Result<String, Vec<Problem>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.to_path_buf(),
            pos: Pos { line: 1, col: 1 },
            message: format!("cannot read: {e}"),
        }]
    })
}

/// Decodes a side file of tests (`<name>.test.yaml`: `tests:`, or a bare list): the
/// cases, with the problems found in them.
pub fn decode_tests(
    text: &str,
    side: &Path,
    opts: &LoadOptions,
) -> Result<(Vec<TestCase>, Vec<Problem>), Vec<Problem>> {
    let mut d = Decoder::new(side, opts);
    let tree = yaml::parse(text).map_err(|e| syntax_problems(side, e))?;
    let node = match tree.as_map() {
        Some(m) => match m.iter().find(|(k, _)| k.as_str() == Some("tests")) {
            Some((_, v)) => v.clone(),
            None => {
                d.err(tree.pos, "a test file holds `tests:`, a list of test cases");
                return Err(d.problems);
            }
        },
        None => tree,
    };
    let more = d.tests(&node);
    Ok((more, d.problems))
}

fn syntax_problems(file: &Path, e: Vec<yaml::SyntaxError>) -> Vec<Problem> {
    e.into_iter()
        .map(|e| Problem {
            file: file.to_path_buf(),
            pos: e.pos,
            message: e.message,
        })
        .collect()
}

impl<'a> Decoder<'a> {
    fn new(file: &Path, opts: &'a LoadOptions) -> Decoder<'a> {
        Decoder {
            file: file.to_path_buf(),
            dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            opts,
            problems: vec![],
            index: HashMap::new(),
            names: vec![],
            prompts: HashMap::new(),
            timezone: jiff::tz::TimeZone::UTC,
        }
    }
}

/// Decodes a flow from text (`file` names it in problems and anchors prompt paths);
/// the whole-flow checks are `check`'s (see `compile`).
pub fn decode_str(text: &str, file: &Path, opts: &LoadOptions) -> Result<Flow, Vec<Problem>> {
    let tree = yaml::parse(text).map_err(|e| syntax_problems(file, e))?;
    let mut d = Decoder::new(file, opts);
    let Some(top) = d.fields(&tree, FLOW_FIELDS, "a flow") else {
        return Err(d.problems);
    };
    let get = |k: &str| top.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let stem = file
        .file_name()
        .and_then(|s| s.to_str())
        .map(|s| {
            s.trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .to_string()
        })
        .unwrap_or_default();
    let name = match get("flow") {
        Some(n) => d.text(n, "flow").unwrap_or(stem),
        None => stem,
    };
    if let Some(tz) = get("timezone") {
        if let Some(tz) = d.timezone(tz) {
            d.timezone = tz;
        }
    }
    let max_steps = get("max_steps")
        .and_then(|n| d.uint(n, "max_steps", 100_000))
        .unwrap_or(1000) as u32;
    let inputs = get("inputs")
        .map(|n| d.strings(n, "inputs"))
        .unwrap_or_default();
    let description = get("description")
        .and_then(|n| d.text(n, "description"))
        .unwrap_or_default();
    let Some(steps_node) = get("steps") else {
        d.err(tree.pos, "a flow needs `steps`");
        return Err(d.problems);
    };
    let Some(steps_map) = steps_node.as_map() else {
        d.err(
            steps_node.pos,
            "steps must be a mapping of step names to steps",
        );
        return Err(d.problems);
    };
    if steps_map.is_empty() {
        d.err(steps_node.pos, "a flow needs at least one step");
    }
    for (i, (k, _)) in steps_map.iter().enumerate() {
        match k.as_str() {
            Some(n) if valid_var_name(n) && !n.contains('.') => {
                d.index.insert(n.to_string(), i);
                d.names.push(n.to_string());
            }
            _ => {
                d.err(
                    k.pos,
                    "a step name is letters, digits and `_`, starting with a letter",
                );
                d.names.push(String::new());
            }
        }
    }
    let mut steps = vec![];
    for (i, (k, v)) in steps_map.iter().enumerate() {
        let following = (i + 1 < steps_map.len()).then_some(i + 1);
        let name = k.as_str().unwrap_or_default().to_string();
        match d.step(&name, k.pos, v, following) {
            Some(s) => steps.push(s),
            // Keep indexes aligned: a broken step becomes a hangup (never served).
            None => steps.push(Step {
                name,
                pos: k.pos,
                action: Action::Hangup,
                next: None,
                explicit_next: false,
            }),
        }
    }
    let start = match get("start") {
        Some(n) => d.target(n, "start").map(|t| t.step).unwrap_or(0),
        None => 0,
    };
    let tests = get("tests").map(|n| d.tests(n)).unwrap_or_default();
    let version = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        format!("{:08x}", h.finish() as u32)
    };
    let flow = Flow {
        name,
        file: file.to_path_buf(),
        description,
        inputs,
        timezone: d.timezone.clone(),
        max_steps,
        index: d.index.clone(),
        steps,
        start,
        tests,
        prompts: std::mem::take(&mut d.prompts),
        version,
    };
    let mut problems = d.problems;
    if problems.is_empty() {
        Ok(flow)
    } else {
        problems.sort();
        problems.dedup();
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "s", "5x", "-1", "5 s", "ms5"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_and_ranges() {
        assert_eq!(parse_days("mon-fri"), Some(vec![0, 1, 2, 3, 4]));
        assert_eq!(parse_days("sat,sun"), Some(vec![5, 6]));
        assert_eq!(parse_days("fri-mon"), Some(vec![0, 4, 5, 6]));
        assert_eq!(parse_days("Monday"), Some(vec![0]));
        assert_eq!(parse_days("funday"), None);
        assert_eq!(parse_range("09:00-17:30"), Some((540, 1050)));
        assert_eq!(parse_range("00:00-24:00"), Some((0, 1440)));
        assert_eq!(parse_range("17:00-09:00"), None);
        assert_eq!(parse_range("9-5"), None);
        assert_eq!(parse_range("25:00-26:00"), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("gahter", ["gather", "menu"]),
            "; did you mean `gather`?"
        );
        assert_eq!(suggest("zzzzzz", ["gather", "menu"]), "");
    }
}
