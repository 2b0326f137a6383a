//! SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966), parsed as borrowed views.
//!
//! Parsing never allocates for the URI text itself: every field borrows from the input.
//! Depends on nothing but `syntax`.

use super::syntax::{is_token_char, Params};
use std::fmt;

/// The URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other absoluteURI (kept intact, e.g. `http:`, `urn:`).
    Other,
}

/// A parsed URI borrowing from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri<'a> {
    pub raw: &'a str,
    pub scheme: Scheme,
    /// User part, still %-escaped (for `tel:` the number).
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host as written; IPv6 references keep their brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The `?headers` part, without the `?`.
    pub headers: Option<&'a str>,
}

/// Why a URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("missing URI scheme")]
    NoScheme,
    #[error("empty host in URI")]
    EmptyHost,
    #[error("malformed IPv6 reference in URI")]
    BadIpv6,
    #[error("invalid host in URI")]
    BadHost,
    #[error("invalid port in URI")]
    BadPort,
    #[error("invalid URI parameter")]
    BadParam,
    #[error("whitespace or angle bracket inside URI")]
    BadChar,
    #[error("empty tel: number")]
    BadTel,
}

impl<'a> Uri<'a> {
    /// Parses a URI. The text must be the URI alone (no surrounding `<>` or spaces).
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        if s.bytes()
            .any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b'"' || b == 0x7f)
        {
            return Err(UriError::BadChar);
        }
        let colon = s.find(':').ok_or(UriError::NoScheme)?;
        let scheme_s = &s[..colon];
        if scheme_s.is_empty()
            || !scheme_s.as_bytes()[0].is_ascii_alphabetic()
            || !scheme_s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        {
            return Err(UriError::NoScheme);
        }
        let scheme = if scheme_s.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_s.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_s.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let rest = &s[colon + 1..];
        match scheme {
            Scheme::Sip | Scheme::Sips => Self::parse_sip(s, scheme, rest),
            Scheme::Tel => {
                let (num, params) = match rest.find(';') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                if num.is_empty() {
                    return Err(UriError::BadTel);
                }
                Ok(Uri {
                    raw: s,
                    scheme,
                    user: Some(num),
                    password: None,
                    host: "",
                    port: None,
                    params: Params::parse_uri_params(params).ok_or(UriError::BadParam)?,
                    headers: None,
                })
            }
            Scheme::Other => Ok(Uri {
                raw: s,
                scheme,
                user: None,
                password: None,
                host: "",
                port: None,
                params: Params::default(),
                headers: None,
            }),
        }
    }

    fn parse_sip(raw: &'a str, scheme: Scheme, rest: &'a str) -> Result<Uri<'a>, UriError> {
        // Userinfo may hold ';', '?', '/' and ':' (RFC 4475 3.1.1.2), but never '@':
        // the last '@' ends it.
        let (user, password, hostpart) = match rest.rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let (u, p) = match userinfo.find(':') {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                (Some(u), p, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let (hostport, headers) = match hostpart.find('?') {
            Some(q) => (&hostpart[..q], Some(&hostpart[q + 1..])),
            None => (hostpart, None),
        };
        let (hostport, params) = match hostport.find(';') {
            Some(i) => (&hostport[..i], &hostport[i..]),
            None => (hostport, ""),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Uri {
            raw,
            scheme,
            user,
            password,
            host,
            port,
            params: Params::parse_uri_params(params).ok_or(UriError::BadParam)?,
            headers,
        })
    }

    /// The host without IPv6 brackets.
    pub fn host_bare(&self) -> &'a str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// `user` with %-escapes decoded (lossy for non-UTF-8).
    pub fn user_decoded(&self) -> Option<String> {
        self.user.map(percent_decode)
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Splits `host[:port]`, validating the host (hostname, IPv4 or `[IPv6]`).
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), UriError> {
    if s.is_empty() {
        return Err(UriError::EmptyHost);
    }
    let (host, port_s) = if s.starts_with('[') {
        let end = s.find(']').ok_or(UriError::BadIpv6)?;
        let host = &s[..=end];
        let inner = &host[1..host.len() - 1];
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UriError::BadIpv6);
        }
        let after = &s[end + 1..];
        if after.is_empty() {
            (host, None)
        } else if let Some(p) = after.strip_prefix(':') {
            (host, Some(p))
        } else {
            return Err(UriError::BadHost);
        }
    } else {
        match s.find(':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    if !host.starts_with('[') {
        if host.is_empty() {
            return Err(UriError::EmptyHost);
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(UriError::BadHost);
        }
    }
    let port = match port_s {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UriError::BadPort);
            }
            Some(p.parse::<u16>().map_err(|_| UriError::BadPort)?)
        }
    };
    Ok((host, port))
}

/// Decodes %XX escapes; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `s` is a token (RFC 3261 25.1).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_with_everything() {
        let u = Uri::parse("sips:alice:pw@[2001:db8::10]:5061;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.host_bare(), "2001:db8::10");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, Some("subject=x"));
    }

    #[test]
    fn tel_uri() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
    }

    #[test]
    fn user_part_with_semicolons_and_escapes() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert_eq!(percent_decode("I%20have%20spaces"), "I have spaces");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn rejects_bad_uris() {
        assert_eq!(Uri::parse("sip:user@[::1"), Err(UriError::BadIpv6));
        assert_eq!(Uri::parse("sip:user@host:99999"), Err(UriError::BadPort));
        assert_eq!(Uri::parse("sip:user@ho st"), Err(UriError::BadChar));
        assert_eq!(Uri::parse("nocolon"), Err(UriError::NoScheme));
        assert_eq!(Uri::parse("sip:"), Err(UriError::EmptyHost));
    }
}
