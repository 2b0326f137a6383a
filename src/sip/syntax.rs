//! Lexical helpers shared by the SIP parsers: character classes, linear white space
//! (folded lines count as white space), quoted strings, generic parameters and
//! comma-separated lists that respect quotes and angle brackets.

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Linear white space inside a header value. A folded line leaves CRLF followed by
/// SP or HTAB in the value; the tokenizer guarantees CR/LF only appear that way.
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n')
}

/// Length of the quoted string starting at `s[0] == '"'`, including both quotes, or
/// `None` when it is not terminated. Quoted pairs (`\x`) are honoured.
pub fn quoted_len(s: &[u8]) -> Option<usize> {
    debug_assert!(s.first() == Some(&b'"'));
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                let n = *s.get(i + 1)?;
                if n == b'\n' || n == b'\r' || n > 0x7f {
                    return None;
                }
                i += 2;
            }
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits a header value at top-level commas (not inside quotes or `<>`).
/// Returns `None` when quotes or angle brackets are unbalanced.
pub fn split_commas(s: &str) -> Option<Vec<&str>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_angle = false;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += quoted_len(&b[i..])?;
                continue;
            }
            b'<' if !in_angle => in_angle = true,
            b'>' if in_angle => in_angle = false,
            b',' if !in_angle => {
                out.push(trim_lws(&s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if in_angle {
        return None;
    }
    out.push(trim_lws(&s[start..]));
    Some(out)
}

/// Generic parameters (`;name[=value]`), names kept as written, looked up
/// case-insensitively. Values keep their quotes when quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params<'a>(pub Vec<(&'a str, Option<&'a str>)>);

impl<'a> Params<'a> {
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The value of `name`, with surrounding quotes removed.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten().map(unquote)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// URI parameters: `;name[=value]` without LWS; names and values use the wide
    /// `paramchar` set, so only emptiness is refused.
    pub fn parse_uri_params(s: &'a str) -> Option<Params<'a>> {
        let mut v = Vec::new();
        if s.is_empty() {
            return Some(Params(v));
        }
        let s = s.strip_prefix(';')?;
        for p in s.split(';') {
            let (n, val) = match p.find('=') {
                Some(i) => (&p[..i], Some(&p[i + 1..])),
                None => (p, None),
            };
            if n.is_empty() {
                return None;
            }
            v.push((n, val));
        }
        Some(Params(v))
    }

    /// Header parameters after a value: `*( SEMI generic-param )` with LWS allowed
    /// around `;` and `=`. `s` starts at the first `;` (or is empty/LWS).
    /// A value is a token, a host (IPv6 reference) or a quoted string.
    pub fn parse_header_params(s: &'a str) -> Result<Params<'a>, &'static str> {
        let b = s.as_bytes();
        let mut v = Vec::new();
        let mut i = skip_lws(b, 0);
        while i < b.len() {
            if b[i] != b';' {
                return Err("unexpected characters after value");
            }
            i = skip_lws(b, i + 1);
            let ns = i;
            while i < b.len() && is_token_char(b[i]) {
                i += 1;
            }
            if i == ns {
                return Err("empty parameter");
            }
            let name = &s[ns..i];
            i = skip_lws(b, i);
            let mut value = None;
            if i < b.len() && b[i] == b'=' {
                i = skip_lws(b, i + 1);
                let vs = i;
                if i < b.len() && b[i] == b'"' {
                    i += quoted_len(&b[i..]).ok_or("unterminated quoted parameter value")?;
                } else if i < b.len() && b[i] == b'[' {
                    while i < b.len() && b[i] != b']' {
                        i += 1;
                    }
                    if i == b.len() {
                        return Err("unterminated IPv6 reference in parameter");
                    }
                    i += 1;
                } else {
                    while i < b.len() && (is_token_char(b[i]) || b[i] == b':') {
                        i += 1;
                    }
                }
                if i == vs {
                    return Err("empty parameter value");
                }
                value = Some(&s[vs..i]);
                i = skip_lws(b, i);
            }
            v.push((name, value));
        }
        Ok(Params(v))
    }
}

pub fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

/// Removes surrounding double quotes, if any (escapes are left as written).
pub fn unquote(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_respect_quotes_and_brackets() {
        let v = split_commas(r#""a, b" <sip:x@y;p=1,2>, <sip:z@w>"#).unwrap();
        assert_eq!(v, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z@w>"]);
        assert!(split_commas(r#""open"#).is_none());
        assert!(split_commas("<sip:x").is_none());
    }

    #[test]
    fn header_params_with_lws_and_quotes() {
        let p = Params::parse_header_params(" ;  tag = 98asjd8 ; q=0.5;x=\"a;b\"").unwrap();
        assert_eq!(p.get("TAG"), Some(Some("98asjd8")));
        assert_eq!(p.value("x"), Some("a;b"));
        assert!(Params::parse_header_params(";;").is_err());
        assert!(Params::parse_header_params("; a=").is_err());
    }

    #[test]
    fn quoted_pairs() {
        assert_eq!(quoted_len(br#""J Rosenberg \\\"" x"#), Some(18));
        assert_eq!(quoted_len(br#""unterminated"#), None);
    }
}
