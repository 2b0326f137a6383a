//! Test cases written with a flow (`tests:`) or beside it (`<name>.test.yaml`).

use super::values::{parse_at, scalar_or_empty, to_json};
use super::*;

impl Decoder<'_> {
    pub(super) fn test_case(&mut self, node: &Node) -> Option<TestCase> {
        let f = self.fields(
            node,
            &[
                "name",
                "caller",
                "dialled",
                "trunk",
                "at",
                "digits",
                "messages",
                "channel",
                "variables",
                "lookup",
                "http",
                "transfer",
                "agent_hangs_up",
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
                "messages" => match &v.value {
                    Value::Seq(items) => {
                        t.messages = items
                            .iter()
                            .filter_map(|i| self.text(i, "messages"))
                            .collect()
                    }
                    _ => self.err(
                        v.pos,
                        "messages: a list of what the customer writes, like [\"hola\", \"1234\"]",
                    ),
                },
                "channel" => {
                    let c = self.text(v, "channel").unwrap_or_default();
                    if ["webchat", "whatsapp", "sms", "email"].contains(&c.as_str()) {
                        t.channel = c;
                    } else {
                        self.err(
                            v.pos,
                            format!("channel `{c}`: expected webchat, whatsapp, sms or email"),
                        );
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
                "agent_hangs_up" => {
                    t.agent_hangs_up = self.boolean(v, "agent_hangs_up").unwrap_or(false)
                }
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
                                    _ => self.err(ev.pos, "ends: one of hangup, caller_hangup, error, {enqueue: queue}, {transfer: target}, {goto: flow}, handoff, {handoff: queue}"),
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

pub(super) fn valid_ending(e: &str) -> bool {
    matches!(e, "hangup" | "caller_hangup" | "error" | "handoff")
        || ["enqueue ", "transfer ", "goto ", "handoff "]
            .iter()
            .any(|p| e.starts_with(p) && e.len() > p.len())
}
