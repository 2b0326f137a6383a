//! Field values: the map of fields a node allows, text, templates, variable names,
//! numbers, booleans, durations, keys, targets, patterns, time zones; and the plain
//! parsers behind them (durations, days, hour ranges, instants).

use super::*;

impl Decoder<'_> {
    /// The entries of a mapping, refusing keys not in `allowed`.
    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        what: &str,
    ) -> Option<Fields<'n>> {
        yaml::fields(node, allowed, what, &mut |pos, m| self.err(pos, m))
    }

    pub(super) fn text(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
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

    pub(super) fn var_name(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn uint(&mut self, node: &Node, what: &str, max: u64) -> Option<u64> {
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

    pub(super) fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
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

    pub(super) fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
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

    pub(super) fn key(&mut self, node: &Node, what: &str) -> Option<Option<char>> {
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

    pub(super) fn target(&mut self, node: &Node, what: &str) -> Option<Target> {
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

    pub(super) fn regex(&mut self, node: &Node, what: &str) -> Option<regex::Regex> {
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

    pub(super) fn timezone(&mut self, node: &Node) -> Option<jiff::tz::TimeZone> {
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
}

pub(super) fn scalar_or_empty(n: &Node) -> Option<String> {
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
