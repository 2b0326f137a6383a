//! `${name}` templates in prompts, URIs, webhook bodies and `set` values, with an
//! optional default: `${customer.name|there}`. `$$` is a literal dollar sign. A variable
//! that is not set renders as its default, or as nothing.

use super::yaml::Pos;
use std::collections::BTreeMap;

/// The variables of one call: text values by name (`caller`, `customer.name`...).
pub type Vars = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var {
        name: String,
        default: Option<String>,
        /// Byte offset of the `$` in the source text.
        offset: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
    /// Where the template's first character is in its file (for problems).
    pub pos: Pos,
}

/// A malformed template, with the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

pub fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.ends_with('.')
        && !name.contains("..")
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' && b.get(i + 1) == Some(&b'$') {
                lit.push('$');
                i += 2;
                continue;
            }
            if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
                let Some(end) = text[i + 2..].find('}') else {
                    return Err(TemplateError {
                        offset: i,
                        message: "`${` is not closed with `}`".into(),
                    });
                };
                let inner = &text[i + 2..i + 2 + end];
                let (name, default) = match inner.split_once('|') {
                    Some((n, d)) => (n.trim(), Some(d.to_string())),
                    None => (inner.trim(), None),
                };
                if !valid_var_name(name) {
                    return Err(TemplateError {
                        offset: i,
                        message: format!(
                            "`{name}` is not a variable name (letters, digits, `_` and `.`)"
                        ),
                    });
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var {
                    name: name.to_string(),
                    default,
                    offset: i,
                });
                i += 3 + end;
                continue;
            }
            let c = text[i..].chars().next().unwrap_or('\u{fffd}');
            lit.push(c);
            i += c.len_utf8().max(1);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            parts,
            pos: Pos::default(),
        })
    }

    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Lit(text.to_string())],
            pos: Pos::default(),
        }
    }

    /// The position of the variable at `offset` (exact on one-line values).
    pub fn pos_of(&self, offset: usize) -> Pos {
        Pos {
            line: self.pos.line,
            col: self.pos.col + offset as u32,
        }
    }

    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var { name, default, .. } => match vars.get(name) {
                    Some(v) if !v.is_empty() || default.is_none() => out.push_str(v),
                    _ => out.push_str(default.as_deref().unwrap_or("")),
                },
            }
        }
        out
    }

    /// Renders a URL: each substituted value is percent-encoded (RFC 3986: everything
    /// but the unreserved characters), so a caller's input stays one path segment or
    /// one query value (`../admin?all=true` cannot leave its place); the designer's own
    /// text (and a default) is kept as written.
    pub fn render_url(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var { name, default, .. } => match vars.get(name) {
                    Some(v) if !v.is_empty() || default.is_none() => percent_encode(v, &mut out),
                    _ => out.push_str(default.as_deref().unwrap_or("")),
                },
            }
        }
        out
    }

    /// Variables used without a default, with their offsets.
    pub fn required_vars(&self) -> impl Iterator<Item = (&str, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var {
                name,
                default: None,
                offset,
            } => Some((name.as_str(), *offset)),
            _ => None,
        })
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub fn percent_encode(v: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_values_are_encoded_the_designers_text_is_not() {
        let t = Template::parse(
            "https://crm.example/customers/${account}?caller=${caller}&x=${missing|a/b}",
        )
        .unwrap();
        let vars = Vars::from([
            (
                "account".to_string(),
                "123/../../admin/delete?all=true".to_string(),
            ),
            ("caller".to_string(), "+1 555 & co".to_string()),
        ]);
        assert_eq!(
            t.render_url(&vars),
            "https://crm.example/customers/123%2F..%2F..%2Fadmin%2Fdelete%3Fall%3Dtrue?caller=%2B1%20555%20%26%20co&x=a/b"
        );
        let mut s = String::new();
        percent_encode("é", &mut s);
        assert_eq!(s, "%C3%A9");
    }

    #[test]
    fn renders_vars_defaults_and_dollars() {
        let t = Template::parse("Hi ${customer.name|there}, you owe $$${amount}.").unwrap();
        let mut v = Vars::new();
        v.insert("amount".into(), "12".into());
        assert_eq!(t.render(&v), "Hi there, you owe $12.");
        v.insert("customer.name".into(), "Ada".into());
        assert_eq!(t.render(&v), "Hi Ada, you owe $12.");
        let req: Vec<_> = t.required_vars().collect();
        assert_eq!(req, vec![("amount", 37)]);
        assert!(!t.is_static());
        assert!(Template::parse("plain").unwrap().is_static());
    }

    #[test]
    fn errors_point_at_the_dollar() {
        let e = Template::parse("ab ${x").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = Template::parse("${1x}").unwrap_err();
        assert!(e.message.contains("not a variable name"));
        assert!(Template::parse("${a..b}").is_err());
    }

    #[test]
    fn unicode_text_survives() {
        let t = Template::parse("Grüß ${n} €").unwrap();
        let mut v = Vars::new();
        v.insert("n".into(), "dich".into());
        assert_eq!(t.render(&v), "Grüß dich €");
    }
}
