//! SIP messages: a zero-copy parser (every header value is a `Bytes` slice of the
//! received buffer), validation of the headers the stack relies on, a serializer and
//! Content-Length framing for stream transports.
//!
//! Parsing is two-staged. `tokenize` splits the start line, header lines (unfolding
//! nothing: folded values keep their CRLF+WSP, which the typed parsers treat as LWS)
//! and the body. `validate` then checks the start line and the headers that RFC 4475
//! exercises. A message that fails the second stage but passed the first can still be
//! answered with a 400 naming the problem (see [`ParseError::answerable`]).
//!
//! ```
//! use bytes::Bytes;
//! use omnigate::sip::{Framing, HeaderName, Message};
//!
//! // Compact forms, folding and case-insensitive names are all fine.
//! let raw = "OPTIONS sip:100@example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!            f: <sip:alice@example.com>;tag=1\r\nTO: <sip:100@example.com>\r\ni: abc\r\n\
//!            CSeq: 1\r\n OPTIONS\r\nl: 0\r\n\r\n";
//! let m = Message::parse(Bytes::from_static(raw.as_bytes()), Framing::Datagram).unwrap();
//! assert_eq!(m.call_id(), "abc");
//! assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
//! let ok = Message::response_to(&m, 200, "OK", Some("t1"));
//! assert!(ok.to_string().starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"));
//! assert_eq!(ok.header_str(&HeaderName::To), Some("<sip:100@example.com>;tag=t1"));
//!
//! // A malformed request is refused with a reason that a 400 can carry.
//! let bad = raw.replace("CSeq: 1\r\n OPTIONS", "CSeq: 1 INVITE");
//! let e = Message::parse(Bytes::from(bad), Framing::Datagram).unwrap_err();
//! assert_eq!((e.status, e.reason), (400, "CSeq method does not match the request method"));
//! assert!(e.answerable().is_some());
//! ```

use super::header::{parse_contacts, parse_cseq, valid_sip_date, HeaderName, NameAddr, Via};
use super::syntax::{is_token_char, split_commas};
use super::uri::Uri;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// Limits on what the parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message: usize,
    pub max_header_line: usize,
    pub max_headers: usize,
    pub max_vias: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 65_535,
            max_header_line: 8_192,
            max_headers: 256,
            max_vias: 70,
        }
    }
}

/// A SIP method. Unknown methods are kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 7.1).
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            o => Method::Other(o.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line: its name and its raw value (LWS-trimmed, folding kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: Bytes,
}

impl Header {
    pub fn new(name: HeaderName, value: impl Into<Bytes>) -> Header {
        Header {
            name,
            value: value.into(),
        }
    }

    /// The value as text. The tokenizer only admits UTF-8 values.
    pub fn value_str(&self) -> &str {
        std::str::from_utf8(&self.value).unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: Bytes },
    Response { code: u16, reason: Bytes },
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Bytes,
}

/// Why a message was refused. `status` is what an answerable request gets (400, or 505
/// for a SIP version we do not speak, 513 for an oversized message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub status: u16,
    pub reason: &'static str,
    /// The message as far as it could be tokenized, for building the error response.
    pub partial: Option<Box<Message>>,
}

impl ParseError {
    fn new(status: u16, reason: &'static str) -> ParseError {
        ParseError {
            status,
            reason,
            partial: None,
        }
    }

    /// A request that can be answered: its start line and the headers needed to build
    /// a response (Via, From, To, Call-ID, CSeq) were found. ACK is never answered.
    pub fn answerable(&self) -> Option<&Message> {
        let m = self.partial.as_deref()?;
        match &m.start {
            StartLine::Request { method, .. } if *method != Method::Ack => {}
            _ => return None,
        }
        for n in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            m.header(&n)?;
        }
        Some(m)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// How a message arrived: datagrams carry exactly one message (extra octets after
/// Content-Length are dropped); streams are framed before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Datagram,
    Stream,
}

fn find_header_end(b: &[u8]) -> Option<(usize, usize)> {
    // Returns (end of header section, start of body).
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\n' {
            if b[i + 1] == b'\n' {
                return Some((i, i + 2));
            }
            if b[i + 1] == b'\r' && b.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

impl Message {
    /// Parses one message from a datagram (or a frame cut by [`frame_stream`]).
    pub fn parse(buf: Bytes, framing: Framing) -> Result<Message, ParseError> {
        Self::parse_with(buf, framing, &Limits::default())
    }

    pub fn parse_with(
        buf: Bytes,
        framing: Framing,
        limits: &Limits,
    ) -> Result<Message, ParseError> {
        let msg = Self::tokenize(buf, framing, limits)?;
        if let Err(reason) = msg.validate(limits) {
            return Err(ParseError {
                status: 400,
                reason,
                partial: Some(Box::new(msg)),
            });
        }
        Ok(msg)
    }

    fn tokenize(mut buf: Bytes, framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
        // RFC 3261 7.5: ignore CRLFs before the start line (keepalives on streams).
        let lead = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let _ = buf.split_to(lead);
        if buf.is_empty() {
            return Err(ParseError::new(400, "empty message"));
        }
        if buf.len() > limits.max_message {
            return Err(ParseError::new(513, "Message Too Large"));
        }
        let (hend, bstart) = match find_header_end(&buf) {
            Some(x) => x,
            // A datagram with headers but no blank line: tolerate a missing final CRLF.
            None if framing == Framing::Datagram && buf.ends_with(b"\n") => {
                (buf.len() - 1, buf.len())
            }
            None => return Err(ParseError::new(400, "truncated message: no end of headers")),
        };
        let head = buf.slice(..hend);
        let mut lines = Vec::new();
        let mut s = 0;
        for (i, &b) in head.iter().enumerate() {
            if b == b'\n' {
                lines.push((s, i + 1));
                s = i + 1;
            }
        }
        lines.push((s, head.len()));
        // Start line.
        let (ls, le) = lines[0];
        let start_raw = trim_crlf(&head[ls..le]);
        if start_raw.len() > limits.max_header_line {
            return Err(ParseError::new(400, "start line too long"));
        }
        let start_s = std::str::from_utf8(start_raw)
            .map_err(|_| ParseError::new(400, "start line is not UTF-8"))?;
        // A malformed request line is a soft error: the headers are still tokenized so
        // the request can be answered with a 400 naming the problem.
        let mut soft: Option<(u16, &'static str)> = None;
        let (start, version_ok) = match parse_start_line(start_s, &head.slice_ref(start_raw)) {
            Ok(x) => x,
            Err(e) => match salvage_request_line(start_s, &head.slice_ref(start_raw)) {
                Some(sl) => {
                    soft = Some((e.status, e.reason));
                    (sl, true)
                }
                None => return Err(e),
            },
        };

        // Header lines, with continuation lines (folding) joined to their header.
        let mut headers: Vec<Header> = Vec::new();
        let mut cur: Option<(usize, usize, usize)> = None; // (name start, name end, value start), value end = line end
        let mut cur_end = 0;
        let finish = |cur: Option<(usize, usize, usize)>,
                      end: usize,
                      headers: &mut Vec<Header>,
                      soft: &mut Option<(u16, &'static str)>|
         -> Result<(), ParseError> {
            if let Some((ns, ne, vs)) = cur {
                if end - ns > limits.max_header_line {
                    soft.get_or_insert((400, "header line too long"));
                    return Ok(());
                }
                if headers.len() >= limits.max_headers {
                    soft.get_or_insert((400, "too many header lines"));
                    return Ok(());
                }
                let name = std::str::from_utf8(&head[ns..ne])
                    .map_err(|_| ParseError::new(400, "header name is not UTF-8"))?;
                let raw_v = trim_crlf(&head[vs.min(end)..end]);
                let v = trim_lws_bytes(raw_v);
                if std::str::from_utf8(v).is_err() {
                    return Err(ParseError::new(400, "header value is not UTF-8"));
                }
                headers.push(Header {
                    name: HeaderName::parse(name),
                    value: head.slice_ref(v),
                });
            }
            Ok(())
        };
        for &(ls, le) in &lines[1..] {
            let line = &head[ls..le];
            if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                if cur.is_none() {
                    return Err(ParseError::new(400, "continuation line without a header"));
                }
                cur_end = le;
                continue;
            }
            finish(cur.take(), cur_end, &mut headers, &mut soft)?;
            let colon = line
                .iter()
                .position(|&c| c == b':')
                .ok_or(ParseError::new(400, "header line without a colon"))?;
            let mut ne = colon;
            while ne > 0 && (line[ne - 1] == b' ' || line[ne - 1] == b'\t') {
                ne -= 1;
            }
            if ne == 0 || !line[..ne].iter().all(|&c| is_token_char(c)) {
                return Err(ParseError::new(400, "malformed header name"));
            }
            cur = Some((ls, ls + ne, ls + colon + 1));
            cur_end = le;
        }
        finish(cur.take(), cur_end, &mut headers, &mut soft)?;

        let mut msg = Message {
            start,
            headers,
            body: Bytes::new(),
        };
        // Body and Content-Length.
        let avail = buf.len() - bstart;
        if msg.headers_named(&HeaderName::ContentLength).count() > 1 {
            return Err(ParseError {
                status: 400,
                reason: "more than one Content-Length",
                partial: Some(Box::new(msg)),
            });
        }
        let cl = match msg.header(&HeaderName::ContentLength) {
            Some(h) => {
                let v = h.value_str();
                if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError {
                        status: 400,
                        reason: "invalid Content-Length",
                        partial: Some(Box::new(msg)),
                    });
                }
                Some(v.parse::<usize>().unwrap_or(usize::MAX))
            }
            None => None,
        };
        let body_len = match (cl, framing) {
            (Some(n), _) if n > avail => {
                return Err(ParseError {
                    status: 400,
                    reason: "Content-Length larger than message",
                    partial: Some(Box::new(msg)),
                });
            }
            (Some(n), _) => n,
            (None, Framing::Datagram) => avail,
            (None, Framing::Stream) => {
                return Err(ParseError {
                    status: 400,
                    reason: "missing Content-Length on a stream",
                    partial: Some(Box::new(msg)),
                })
            }
        };
        msg.body = buf.slice(bstart..bstart + body_len);
        if let Some((status, reason)) = soft {
            return Err(ParseError {
                status,
                reason,
                partial: Some(Box::new(msg)),
            });
        }
        if !version_ok {
            return Err(ParseError {
                status: 505,
                reason: "Version Not Supported",
                partial: Some(Box::new(msg)),
            });
        }
        Ok(msg)
    }

    /// Checks the start line and the headers the stack depends on.
    fn validate(&self, limits: &Limits) -> Result<(), &'static str> {
        let mut via_count = 0usize;
        let mut has = [false; 5];
        // Headers that must appear once (RFC 3261 7.3.1, 20): two of them leave the
        // transaction, dialog or hop count to a guess.
        let mut max_forwards = false;
        for h in &self.headers {
            let v = h.value_str();
            let seen = match &h.name {
                HeaderName::From => Some((has[1], "more than one From")),
                HeaderName::To => Some((has[2], "more than one To")),
                HeaderName::CallId => Some((has[3], "more than one Call-ID")),
                HeaderName::CSeq => Some((has[4], "more than one CSeq")),
                HeaderName::MaxForwards => Some((
                    std::mem::replace(&mut max_forwards, true),
                    "more than one Max-Forwards",
                )),
                _ => None,
            };
            if let Some((true, why)) = seen {
                return Err(why);
            }
            match &h.name {
                HeaderName::Via => {
                    has[0] = true;
                    for part in split_commas(v).ok_or("malformed Via")? {
                        via_count += 1;
                        if via_count > limits.max_vias {
                            return Err("too many Via values");
                        }
                        Via::parse(part)?;
                    }
                }
                HeaderName::From | HeaderName::To => {
                    if h.name == HeaderName::From {
                        has[1] = true
                    } else {
                        has[2] = true
                    }
                    NameAddr::parse(v).map_err(|_| {
                        if h.name == HeaderName::From {
                            "malformed From"
                        } else {
                            "malformed To"
                        }
                    })?;
                }
                HeaderName::CallId => {
                    has[3] = true;
                    if v.is_empty() || v.bytes().any(|b| b <= b' ') {
                        return Err("malformed Call-ID");
                    }
                }
                HeaderName::CSeq => {
                    has[4] = true;
                    let (_, m) = parse_cseq(v)?;
                    if let StartLine::Request { method, .. } = &self.start {
                        if *method != m {
                            return Err("CSeq method does not match the request method");
                        }
                    }
                }
                HeaderName::MaxForwards
                    if (v.is_empty()
                        || v.len() > 10
                        || !v.bytes().all(|b| b.is_ascii_digit())
                        || v.parse::<u64>().unwrap_or(999) > 255) =>
                {
                    return Err("Max-Forwards out of range");
                }
                HeaderName::Contact => {
                    parse_contacts(v).map_err(|_| "malformed Contact")?;
                }
                HeaderName::Route | HeaderName::RecordRoute => {
                    for part in split_commas(v).ok_or("malformed Route")? {
                        let na = NameAddr::parse(part).map_err(|_| "malformed Route")?;
                        if !na.angle {
                            return Err("Route URI must be enclosed in <>");
                        }
                    }
                }
                HeaderName::Date if !valid_sip_date(v) => {
                    return Err("malformed Date (must be RFC 1123 in GMT)");
                }
                HeaderName::Expires if !v.is_empty() && !v.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err("malformed Expires");
                }
                _ => {}
            }
        }
        let names = [
            "missing Via",
            "missing From",
            "missing To",
            "missing Call-ID",
            "missing CSeq",
        ];
        for (ok, why) in has.iter().zip(names) {
            if !ok {
                return Err(why);
            }
        }
        if let StartLine::Request { uri, method, .. } = &self.start {
            let u = Uri::parse(std::str::from_utf8(uri).unwrap_or(""))
                .map_err(|_| "malformed Request-URI")?;
            if u.is_sip() && u.headers.is_some() {
                return Err("Request-URI must not carry headers");
            }
            // RFC 3261 8.1.1.8: a dialog-creating INVITE carries exactly one Contact.
            if *method == Method::Invite {
                let contacts: usize = self
                    .headers_named(&HeaderName::Contact)
                    .map(|h| split_commas(h.value_str()).map_or(0, |p| p.len()))
                    .sum();
                if contacts == 0 {
                    return Err("missing Contact");
                }
                if contacts > 1 {
                    return Err("more than one Contact in an INVITE");
                }
            }
        }
        Ok(())
    }

    // ---- accessors ----

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => std::str::from_utf8(uri).ok(),
            _ => None,
        }
    }

    pub fn header(&self, name: &HeaderName) -> Option<&Header> {
        self.headers.iter().find(|h| &h.name == name)
    }

    pub fn header_str(&self, name: &HeaderName) -> Option<&str> {
        self.header(name).map(|h| h.value_str())
    }

    pub fn headers_named<'s>(
        &'s self,
        name: &'s HeaderName,
    ) -> impl Iterator<Item = &'s Header> + 's {
        self.headers.iter().filter(move |h| &h.name == name)
    }

    /// All values of a list header, in order, comma-joined ones split.
    pub fn list_values<'s>(&'s self, name: &'s HeaderName) -> Vec<&'s str> {
        self.headers_named(name)
            .flat_map(|h| split_commas(h.value_str()).unwrap_or_default())
            .collect()
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Option<Via<'_>> {
        let h = self.header(&HeaderName::Via)?;
        let first = split_commas(h.value_str())?.into_iter().next()?;
        Via::parse(first).ok()
    }

    pub fn call_id(&self) -> &str {
        self.header_str(&HeaderName::CallId).unwrap_or("")
    }

    pub fn cseq(&self) -> Option<(u32, Method)> {
        parse_cseq(self.header_str(&HeaderName::CSeq)?).ok()
    }

    pub fn from(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header_str(&HeaderName::From)?).ok()
    }

    pub fn to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header_str(&HeaderName::To)?).ok()
    }

    pub fn from_tag(&self) -> Option<&str> {
        self.from().and_then(|n| n.tag())
    }

    pub fn to_tag(&self) -> Option<&str> {
        self.to().and_then(|n| n.tag())
    }

    pub fn max_forwards(&self) -> Option<u8> {
        self.header_str(&HeaderName::MaxForwards)
            .and_then(|v| v.parse::<u16>().ok())
            .map(|v| v.min(255) as u8)
    }

    // ---- building ----

    pub fn request(method: Method, uri: &str) -> Message {
        Message {
            start: StartLine::Request {
                method,
                uri: Bytes::copy_from_slice(uri.as_bytes()),
            },
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) -> &mut Self {
        self.headers.push(Header {
            name,
            value: Bytes::from(value.into()),
        });
        self
    }

    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) -> &mut Self {
        self.remove(&name);
        self.push(name, value)
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.headers.retain(|h| &h.name != name);
    }

    pub fn with_body(&mut self, content_type: &str, body: impl Into<Bytes>) -> &mut Self {
        self.set(HeaderName::ContentType, content_type);
        self.body = body.into();
        self
    }

    /// A response to `req` (RFC 3261 8.2.6.2): Via, From, To, Call-ID and CSeq copied,
    /// plus `to_tag` on To when the request's To had none and the code is not 100.
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers = Vec::with_capacity(8);
        for h in &req.headers {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.clone())
                }
                HeaderName::To => {
                    let has_tag = NameAddr::parse(h.value_str())
                        .ok()
                        .and_then(|n| n.tag().map(|_| ()))
                        .is_some();
                    match to_tag {
                        Some(t) if !has_tag && code > 100 => headers.push(Header {
                            name: HeaderName::To,
                            value: Bytes::from(format!("{};tag={}", h.value_str(), t)),
                        }),
                        _ => headers.push(h.clone()),
                    }
                }
                _ => {}
            }
        }
        Message {
            start: StartLine::Response {
                code,
                reason: Bytes::copy_from_slice(reason.as_bytes()),
            },
            headers,
            body: Bytes::new(),
        }
    }

    /// Serializes the message; Content-Length always states the body length.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256 + self.headers.len() * 48 + self.body.len());
        self.write(&mut out);
        out.freeze()
    }

    pub fn write(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request { method, uri } => {
                out.put_slice(method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri);
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.put_slice(b"SIP/2.0 ");
                let mut num = itoa_buf(*code as u32);
                out.put_slice(num.as_bytes_mut());
                out.put_u8(b' ');
                out.put_slice(reason);
                out.put_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            if h.name == HeaderName::ContentLength {
                continue;
            }
            out.put_slice(h.name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(&h.value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Length: ");
        let mut num = itoa_buf(self.body.len() as u32);
        out.put_slice(num.as_bytes_mut());
        out.put_slice(b"\r\n\r\n");
        out.put_slice(&self.body);
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

struct NumBuf {
    buf: [u8; 10],
    start: usize,
}

impl NumBuf {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u32) -> NumBuf {
    let mut buf = [0u8; 10];
    let mut i = 10;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    NumBuf { buf, start: i }
}

fn trim_crlf(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && (b[e - 1] == b'\n' || b[e - 1] == b'\r') {
        e -= 1;
    }
    &b[..e]
}

fn trim_lws_bytes(b: &[u8]) -> &[u8] {
    let is = |c: u8| c == b' ' || c == b'\t' || c == b'\r' || c == b'\n';
    let s = b.iter().position(|&c| !is(c)).unwrap_or(b.len());
    let e = b.iter().rposition(|&c| !is(c)).map(|p| p + 1).unwrap_or(s);
    &b[s..e]
}

fn parse_start_line(s: &str, raw: &Bytes) -> Result<(StartLine, bool), ParseError> {
    if let Some(rest) = s.strip_prefix("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        if !rest.starts_with("2.0 ") {
            return Err(ParseError::new(400, "unsupported SIP version"));
        }
        let rest = &rest[4..];
        let (code_s, reason) = match rest.find(' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if code_s.len() != 3 || !code_s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(400, "malformed status code"));
        }
        let code: u16 = code_s.parse().unwrap_or(0);
        if !(100..=699).contains(&code) {
            return Err(ParseError::new(400, "status code out of range"));
        }
        let off = s.len() - reason.len();
        return Ok((
            StartLine::Response {
                code,
                reason: raw.slice(off..),
            },
            true,
        ));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces.
    let mut it = s.split(' ');
    let (m, u, v) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(m), Some(u), Some(v), None) => (m, u, v),
        _ => return Err(ParseError::new(400, "malformed Request-Line")),
    };
    if m.is_empty() || !m.bytes().all(is_token_char) {
        return Err(ParseError::new(400, "malformed method"));
    }
    if u.is_empty() || u.starts_with('<') {
        return Err(ParseError::new(400, "malformed Request-URI"));
    }
    let version_ok = v.eq_ignore_ascii_case("SIP/2.0");
    if !(version_ok || v.len() > 4 && v[..4].eq_ignore_ascii_case("SIP/")) {
        return Err(ParseError::new(400, "malformed SIP version"));
    }
    let uoff = m.len() + 1;
    Ok((
        StartLine::Request {
            method: Method::parse(m),
            uri: raw.slice(uoff..uoff + u.len()),
        },
        version_ok,
    ))
}

/// For a request line that failed strict parsing, a best-effort start line (method =
/// first word, URI = the second) so the request can still be answered.
fn salvage_request_line(s: &str, raw: &Bytes) -> Option<StartLine> {
    if s.starts_with("SIP/") {
        return None;
    }
    let m = s.split(' ').next()?;
    if m.is_empty() || !m.bytes().all(is_token_char) {
        return None;
    }
    let rest = s[m.len()..].trim_start();
    let u = rest.split(' ').next().unwrap_or("");
    let off = s.len() - rest.len();
    Some(StartLine::Request {
        method: Method::parse(m),
        uri: raw.slice(off..off + u.len()),
    })
}

/// Result of looking for one message at the front of a stream buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message occupies `buf[skip..len]` (`skip` leading CRLF keepalives).
    Message { skip: usize, len: usize },
    /// Only keepalive CRLFs (RFC 5626 double-CRLF ping) are present: consume `n` bytes.
    Keepalive { n: usize, ping: bool },
    /// Need more bytes.
    Incomplete,
    /// The stream cannot be framed (no or bad Content-Length, oversized headers):
    /// the connection should be closed.
    Invalid(&'static str),
}

/// Frames the next message on a stream transport (RFC 3261 18.3).
/// The reason phrase RFC 3261 §21 (and the RFCs after it) give a status code; a code
/// it does not list gets its class's.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

pub fn frame_stream(buf: &[u8], limits: &Limits) -> Frame {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip == buf.len() {
        if skip >= 4 && &buf[..4] == b"\r\n\r\n" {
            return Frame::Keepalive { n: 4, ping: true };
        }
        if skip >= 2 && &buf[skip - 2..skip] == b"\r\n" && skip < 4 {
            // Could be the start of a double-CRLF ping; wait unless it is a pong.
            return if skip == 2 {
                Frame::Incomplete
            } else {
                Frame::Keepalive {
                    n: skip,
                    ping: false,
                }
            };
        }
        return if skip == 0 {
            Frame::Incomplete
        } else {
            Frame::Keepalive {
                n: skip,
                ping: false,
            }
        };
    }
    let b = &buf[skip..];
    let (hend, bstart) = match find_header_end(b) {
        Some(x) => x,
        None => {
            return if b.len() > limits.max_message {
                Frame::Invalid("headers too large")
            } else {
                Frame::Incomplete
            };
        }
    };
    // Find Content-Length (or compact "l") among the header lines.
    let head = &b[..hend];
    let mut cl: Option<usize> = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        let line = trim_crlf(line);
        if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
            continue;
        }
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let name = trim_lws_bytes(&line[..colon]);
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                let v = trim_lws_bytes(&line[colon + 1..]);
                if v.is_empty() || v.len() > 9 || !v.iter().all(|c| c.is_ascii_digit()) {
                    return Frame::Invalid("invalid Content-Length");
                }
                if cl.is_some() {
                    // Two lengths: where the next message starts would be a guess.
                    return Frame::Invalid("more than one Content-Length");
                }
                cl = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
        }
    }
    let Some(cl) = cl else {
        return Frame::Invalid("missing Content-Length on a stream");
    };
    let total = bstart + cl;
    if total > limits.max_message {
        return Frame::Invalid("message too large");
    }
    if b.len() < total {
        return Frame::Incomplete;
    }
    Frame::Message {
        skip,
        len: skip + total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn parse_and_serialize_round_trip() {
        let m = Message::parse(Bytes::from_static(INVITE.as_bytes()), Framing::Datagram).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.call_id(), "a84b4c76e66710");
        assert_eq!(m.cseq(), Some((314159, Method::Invite)));
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(&m.body[..], b"v=0\n");
        let again = Message::parse(m.to_bytes(), Framing::Datagram).unwrap();
        assert_eq!(again.headers.len(), m.headers.len());
        assert_eq!(again.body, m.body);
    }

    #[test]
    fn stream_framing_split_and_joined() {
        let l = Limits::default();
        let two = format!("\r\n{INVITE}{INVITE}");
        let b = two.as_bytes();
        match frame_stream(b, &l) {
            Frame::Message { skip, len } => {
                assert_eq!(skip, 2);
                assert_eq!(len, 2 + INVITE.len());
                assert_eq!(
                    frame_stream(&b[len..], &l),
                    Frame::Message {
                        skip: 0,
                        len: INVITE.len()
                    }
                );
            }
            f => panic!("{f:?}"),
        }
        for cut in [1, 10, INVITE.len() - 5, INVITE.len() - 1] {
            assert_eq!(
                frame_stream(&INVITE.as_bytes()[..cut], &l),
                Frame::Incomplete,
                "cut at {cut}"
            );
        }
        assert_eq!(
            frame_stream(b"\r\n\r\n", &l),
            Frame::Keepalive { n: 4, ping: true }
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n", &l),
            Frame::Invalid("missing Content-Length on a stream")
        );
    }

    #[test]
    fn answerable_error_keeps_headers() {
        let bad = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS");
        let e = Message::parse(Bytes::from(bad), Framing::Datagram).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.answerable().is_some());
        let r = Message::response_to(e.answerable().unwrap(), 400, e.reason, Some("x"));
        assert!(r
            .to_string()
            .starts_with("SIP/2.0 400 CSeq method does not match"));
    }

    #[test]
    fn headers_that_must_be_single_and_a_missing_contact_are_refused() {
        let first = |name: &str| {
            let line = INVITE
                .split("\r\n")
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_string();
            INVITE.replacen(&line, &format!("{line}\r\n{line}"), 1)
        };
        for (name, why) in [
            ("Call-ID:", "more than one Call-ID"),
            ("CSeq:", "more than one CSeq"),
            ("From:", "more than one From"),
            ("To:", "more than one To"),
            ("Max-Forwards:", "more than one Max-Forwards"),
            ("Content-Length:", "more than one Content-Length"),
        ] {
            let e = Message::parse(Bytes::from(first(name)), Framing::Datagram).unwrap_err();
            assert_eq!((e.status, e.reason), (400, why), "{name}");
            assert!(e.answerable().is_some(), "{name}: answered with its reason");
        }
        // On a stream, two lengths cannot be framed at all.
        let two = first("Content-Length:");
        assert!(matches!(
            frame_stream(two.as_bytes(), &Limits::default()),
            Frame::Invalid("more than one Content-Length")
        ));
        let contact = INVITE
            .split("\r\n")
            .find(|l| l.starts_with("Contact:"))
            .unwrap();
        let none = INVITE.replace(&format!("{contact}\r\n"), "");
        let e = Message::parse(Bytes::from(none), Framing::Datagram).unwrap_err();
        assert_eq!((e.status, e.reason), (400, "missing Contact"));
    }
}
