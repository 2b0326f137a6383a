//! Steps that choose a way by data or time: `branch` (with its conditions) and `hours`.

use super::values::{parse_days, parse_range};
use super::*;

impl Decoder<'_> {
    pub(super) fn branch(&mut self, node: &Node) -> Option<Action> {
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

    pub(super) fn cond(&mut self, op: &str, v: &Node) -> Option<Cond> {
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

    pub(super) fn hours(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
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
}
