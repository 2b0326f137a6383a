//! Header names (long and compact forms, case-insensitive) and typed views of the
//! header values the stack reads: Via, name-addr headers (From, To, Contact, Route,
//! Record-Route), CSeq, Max-Forwards, Date and digest credentials.

use super::syntax::{is_token_char, quoted_len, skip_lws, split_commas, trim_lws, Params};
use super::uri::{split_host_port, Uri};
use super::Method;

macro_rules! header_names {
    ($( $v:ident => $long:literal $(, $compact:literal)? ;)*) => {
        /// A header name. Known names are recognised in any case and in compact form;
        /// everything else is kept as written.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $($v,)*
            Other(String),
        }

        impl HeaderName {
            pub fn parse(s: &str) -> HeaderName {
                $(
                    if s.eq_ignore_ascii_case($long) $(|| s.eq_ignore_ascii_case($compact))? {
                        return HeaderName::$v;
                    }
                )*
                HeaderName::Other(s.to_string())
            }

            /// The canonical long form.
            pub fn as_str(&self) -> &str {
                match self {
                    $(HeaderName::$v => $long,)*
                    HeaderName::Other(s) => s,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    Contact => "Contact", "m";
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    Allow => "Allow";
    Supported => "Supported", "k";
    Require => "Require";
    Unsupported => "Unsupported";
    Accept => "Accept";
    Date => "Date";
    UserAgent => "User-Agent";
    Server => "Server";
    Subject => "Subject", "s";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
    Event => "Event", "o";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Reason => "Reason";
    Timestamp => "Timestamp";
}

impl HeaderName {
    /// Headers whose values may be joined by commas (RFC 3261 7.3.1).
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Allow
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::Unsupported
                | HeaderName::Accept
                | HeaderName::ContentEncoding
        )
    }
}

/// A typed Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// UDP, TCP, TLS, WS, WSS, SCTP or anything else (kept as written).
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    pub fn parse(s: &'a str) -> Result<Via<'a>, &'static str> {
        let b = s.as_bytes();
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport
        let mut parts = [""; 3];
        let mut i = skip_lws(b, 0);
        for (k, part) in parts.iter_mut().enumerate() {
            let st = i;
            while i < b.len() && is_token_char(b[i]) {
                i += 1;
            }
            if i == st {
                return Err("malformed Via sent-protocol");
            }
            *part = &s[st..i];
            i = skip_lws(b, i);
            if k < 2 {
                if i >= b.len() || b[i] != b'/' {
                    return Err("malformed Via sent-protocol");
                }
                i = skip_lws(b, i + 1);
            }
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" {
            return Err("unsupported SIP version in Via");
        }
        let st = i;
        while i < b.len() && !super::syntax::is_lws(b[i]) && b[i] != b';' {
            i += 1;
        }
        let (host, port) = split_host_port(&s[st..i]).map_err(|_| "malformed Via sent-by")?;
        let params = Params::parse_header_params(&s[i..]).map_err(|_| "malformed Via parameter")?;
        Ok(Via {
            transport: parts[2],
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    pub fn rport(&self) -> Option<Option<&'a str>> {
        self.params.get("rport")
    }
}

/// A name-addr or addr-spec with header parameters (From, To, Contact, Route...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quoted strings keep their quotes).
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    pub params: Params<'a>,
    /// True when the URI was enclosed in `<>`.
    pub angle: bool,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, &'static str> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        if b.is_empty() {
            return Err("empty address");
        }
        // name-addr: [ display-name ] LAQUOT addr-spec RAQUOT
        let mut i = 0;
        let mut display = None;
        if b[0] == b'"' {
            let n = quoted_len(b).ok_or("unterminated quoted display name")?;
            display = Some(&s[..n]);
            i = skip_lws(b, n);
            if i >= b.len() || b[i] != b'<' {
                return Err("display name not followed by <URI>");
            }
        } else if let Some(lt) = s.find('<') {
            // display-name = *(token LWS): everything before '<' must be tokens.
            let d = trim_lws(&s[..lt]);
            if !d.is_empty() {
                if !d
                    .bytes()
                    .all(|c| is_token_char(c) || super::syntax::is_lws(c))
                {
                    return Err("display name with characters outside token must be quoted");
                }
                display = Some(d);
            }
            i = lt;
        }
        if i < b.len() && b[i] == b'<' {
            let close = s[i..].find('>').ok_or("missing > after URI")? + i;
            let uri_s = &s[i + 1..close];
            if uri_s.starts_with(|c: char| c.is_ascii_whitespace())
                || uri_s.ends_with(|c: char| c.is_ascii_whitespace())
            {
                return Err("white space inside <> around URI");
            }
            let uri = Uri::parse(uri_s).map_err(|_| "malformed URI in address")?;
            let params = Params::parse_header_params(&s[close + 1..])?;
            return Ok(NameAddr {
                display,
                uri,
                params,
                angle: true,
            });
        }
        // addr-spec: the URI may not contain ';', ',' or '?' here (RFC 3261 20.10):
        // a ';' starts header parameters.
        let end = s
            .find(|c: char| c == ';' || super::syntax::is_lws(c as u8))
            .unwrap_or(s.len());
        let uri_s = &s[..end];
        if uri_s.contains('?') || uri_s.contains(',') {
            return Err("URI with '?' or ',' must be enclosed in <>");
        }
        let uri = Uri::parse(uri_s).map_err(|_| "malformed URI in address")?;
        let params = Params::parse_header_params(&s[end..])?;
        Ok(NameAddr {
            display,
            uri,
            params,
            angle: false,
        })
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// Contact: `*` or a list of name-addrs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactValue<'a> {
    Star,
    Addr(NameAddr<'a>),
}

pub fn parse_contacts(s: &str) -> Result<Vec<ContactValue<'_>>, &'static str> {
    if trim_lws(s) == "*" {
        return Ok(vec![ContactValue::Star]);
    }
    split_commas(s)
        .ok_or("unbalanced quotes or brackets in Contact")?
        .into_iter()
        .map(|v| NameAddr::parse(v).map(ContactValue::Addr))
        .collect()
}

/// CSeq: sequence number (< 2**31, RFC 3261 8.1.1.5) and method.
pub fn parse_cseq(s: &str) -> Result<(u32, Method), &'static str> {
    let s = trim_lws(s);
    let sp = s
        .find(|c: char| super::syntax::is_lws(c as u8))
        .ok_or("CSeq without method")?;
    let num = &s[..sp];
    let method = trim_lws(&s[sp..]);
    if num.is_empty() || num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err("CSeq number out of range");
    }
    let n: u64 = num.parse().map_err(|_| "CSeq number out of range")?;
    if n >= 1 << 31 {
        return Err("CSeq number out of range");
    }
    if method.is_empty() || !method.bytes().all(is_token_char) {
        return Err("malformed CSeq method");
    }
    Ok((n as u32, Method::parse(method)))
}

/// Delta-seconds, clamped to 2**32-1 as RFC 3261 asks for larger values.
pub fn parse_delta_seconds(s: &str) -> Option<u32> {
    let s = trim_lws(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map(|v| v.min(u32::MAX as u64) as u32)
            .unwrap_or(u32::MAX),
    )
}

/// RFC 1123 date as SIP allows it: `Thu, 21 Feb 2002 13:02:03 GMT`; only GMT.
pub fn valid_sip_date(s: &str) -> bool {
    let parts: Vec<&str> = trim_lws(s).split_ascii_whitespace().collect();
    if parts.len() != 6 {
        return false;
    }
    let days = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let time_ok = {
        let t: Vec<&str> = parts[4].split(':').collect();
        t.len() == 3
            && t.iter()
                .all(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit()))
    };
    days.contains(&parts[0])
        && parts[1].len() == 2
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && months.contains(&parts[2])
        && parts[3].len() == 4
        && parts[3].bytes().all(|b| b.is_ascii_digit())
        && time_ok
        && parts[5] == "GMT"
}

/// Digest credentials or challenge: `Digest k=v, k="v", ...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestParams<'a> {
    pub scheme: &'a str,
    pub params: Vec<(&'a str, &'a str)>,
}

impl<'a> DigestParams<'a> {
    pub fn parse(s: &'a str) -> Option<DigestParams<'a>> {
        let s = trim_lws(s);
        let sp = s.find([' ', '\t', '\r', '\n'])?;
        let scheme = &s[..sp];
        let mut params = Vec::new();
        for part in split_commas(&s[sp..])? {
            if part.is_empty() {
                continue;
            }
            let eq = part.find('=')?;
            let k = trim_lws(&part[..eq]);
            let v = trim_lws(&part[eq + 1..]);
            if k.is_empty() || !k.bytes().all(is_token_char) {
                return None;
            }
            params.push((k, super::syntax::unquote(v)));
        }
        Some(DigestParams { scheme, params })
    }

    pub fn get(&self, k: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v =
            Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse(
            "SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas;received=[2001:db8::9:255]",
        )
        .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/7.0/UDP c.example.com").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(n.uri.host, "example.com");
        let n = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert!(!n.angle);
        assert_eq!(n.tag(), Some("1"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("caller"));
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
    }

    #[test]
    fn cseq_and_dates() {
        assert_eq!(parse_cseq("0009\r\n  INVITE").unwrap(), (9, Method::Invite));
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(valid_sip_date("Thu, 04 Aug 2005 06:18:25 GMT"));
        assert!(!valid_sip_date("Fri, 01 Jan 2010 16:00:00 EST"));
        assert_eq!(parse_delta_seconds("1000000000000000"), Some(u32::MAX));
    }

    #[test]
    fn digest() {
        let d = DigestParams::parse(r#"Digest username="bob", realm="omnigate", nonce="abc", uri="sip:x", response="ff", algorithm=MD5"#).unwrap();
        assert_eq!(d.scheme, "Digest");
        assert_eq!(d.get("username"), Some("bob"));
        assert_eq!(d.get("ALGORITHM"), Some("MD5"));
    }
}
