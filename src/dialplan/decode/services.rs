//! Steps that ask outside: `lookup` (the customer store) and `http` (a webhook).

use super::*;

impl Decoder<'_> {
    pub(super) fn lookup(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
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

    pub(super) fn http(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
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
}
