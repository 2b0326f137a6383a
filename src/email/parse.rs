//! A raw message read into what the gateway decides with (sans-IO, on
//! `mail-parser`): who sent it and to whom, its ids and references, its text, whether
//! it is automatic (never answered) or a bounce (about one of ours).

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};

/// One address and the name with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Lower-cased.
    pub address: String,
    pub name: String,
}

/// What a delivery-status report says about one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The Message-IDs of the message it reports on (from its returned headers).
    pub refers: Vec<String>,
    /// Why, as the report gives it (`5.1.1 user unknown`).
    pub reason: String,
}

/// An attachment as listed for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// A message as the gateway reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Its Message-ID without the angle brackets; a message without one gets
    /// `sha256-<hex of the raw message>@omnigate.invalid`, so the same bytes are the
    /// same message.
    pub message_id: String,
    pub from: Option<Person>,
    /// Where the sender asks replies to go (`Reply-To`), else `from`.
    pub reply_to: Option<Person>,
    /// Every recipient (`To`, `Cc`, `Delivered-To`, `X-Original-To`), lower-cased.
    pub recipients: Vec<String>,
    pub subject: String,
    pub in_reply_to: Vec<String>,
    /// Oldest first, as the header lists them.
    pub references: Vec<String>,
    /// When it says it was written (Unix s).
    pub date: Option<i64>,
    /// The text to read: the plain part, or the HTML's text.
    pub text: String,
    /// The HTML part as sent (shown only sanitised).
    pub html: Option<String>,
    /// Why this message is automatic and is never answered (`Auto-Submitted:
    /// auto-replied`, `Precedence: bulk`...).
    pub automatic: Option<String>,
    pub bounce: Option<Bounce>,
    pub attachments: Vec<Attachment>,
}

/// Why a message cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("the message is {0} bytes, over the mailbox's limit of {1}")]
    TooLarge(usize, usize),
    #[error("not an e-mail message (no header could be read)")]
    NotMail,
}

/// `<a@b>` → `a@b`; ids are compared as written (their local part is
/// case-sensitive), without brackets or white space.
pub fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn ids(v: &HeaderValue) -> Vec<String> {
    v.as_text_list()
        .map(|l| {
            l.iter()
                .map(|s| bare_id(s))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn people(a: Option<&Address>) -> Vec<Person> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                Some(Person {
                    address: x.address()?.trim().to_lowercase(),
                    name: x.name().unwrap_or("").trim().to_string(),
                })
            })
            .filter(|p| p.address.contains('@'))
            .collect()
    })
    .unwrap_or_default()
}

/// Reads `raw`, refusing what is over `max_bytes`.
pub fn read(raw: &[u8], max_bytes: usize) -> Result<Mail, Unreadable> {
    if raw.len() > max_bytes {
        return Err(Unreadable::TooLarge(raw.len(), max_bytes));
    }
    let m = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or(Unreadable::NotMail)?;
    let message_id = match m.message_id().map(bare_id).filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => {
            use sha2::Digest;
            format!(
                "sha256-{}@omnigate.invalid",
                crate::channels::signature::hex(&sha2::Sha256::digest(raw))
            )
        }
    };
    let from = people(m.from()).into_iter().next();
    let reply_to = people(m.reply_to())
        .into_iter()
        .next()
        .or_else(|| from.clone());
    let mut recipients: Vec<String> = people(m.to())
        .into_iter()
        .chain(people(m.cc()))
        .map(|p| p.address)
        .collect();
    for h in ["Delivered-To", "X-Original-To"] {
        for (name, value) in m.headers_raw() {
            if name.eq_ignore_ascii_case(h) {
                let a = bare_id(value).to_lowercase();
                if a.contains('@') {
                    recipients.push(a);
                }
            }
        }
    }
    recipients.dedup();
    let html = m.body_html(0).map(|h| h.into_owned());
    let text = match m.text_bodies().next() {
        Some(p) if !p.is_text_html() => m.body_text(0).map(|t| t.into_owned()),
        _ => None,
    }
    .or_else(|| html.as_deref().map(crate::email::html::to_text))
    .unwrap_or_default()
    .replace("\r\n", "\n");
    let raw_header = |h: &str| {
        m.headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(h))
            .map(|(_, v)| v.trim().to_string())
    };
    let attachments = m
        .attachments()
        .map(|p| Attachment {
            name: p.attachment_name().unwrap_or("attachment").to_string(),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{s}", c.ctype()),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: p.contents().len(),
        })
        .collect();
    let mut mail = Mail {
        message_id,
        from,
        reply_to,
        recipients,
        subject: m.subject().unwrap_or("").trim().to_string(),
        in_reply_to: ids(m.in_reply_to()),
        references: ids(m.references()),
        date: m.date().map(|d| d.to_timestamp()),
        text,
        html,
        automatic: None,
        bounce: bounce(&m),
        attachments,
    };
    mail.automatic = automatic(&|h| raw_header(h), &mail);
    Ok(mail)
}

/// Why a message is automatic (RFC 3834's `Auto-Submitted`, `Precedence`, Microsoft's
/// `X-Auto-Response-Suppress`, list mail, a bounce, mail from a mailer daemon), or
/// `None` for a person's message.
fn automatic(header: &dyn Fn(&str) -> Option<String>, m: &Mail) -> Option<String> {
    if m.bounce.is_some() {
        return Some("a delivery report".into());
    }
    if let Some(v) = header("Auto-Submitted") {
        if !v.eq_ignore_ascii_case("no") {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = header("Precedence") {
        let l = v.to_ascii_lowercase();
        if ["bulk", "list", "junk", "auto_reply"].contains(&l.as_str()) {
            return Some(format!("Precedence: {v}"));
        }
    }
    if let Some(v) = header("X-Auto-Response-Suppress") {
        let l = v.to_ascii_lowercase();
        if l.contains("all") || l.contains("autoreply") || l.contains("oof") {
            return Some(format!("X-Auto-Response-Suppress: {v}"));
        }
    }
    if header("List-Id").is_some() || header("List-Unsubscribe").is_some() {
        return Some("mailing-list mail".into());
    }
    if let Some(a) = &m.from {
        let local = a.address.split('@').next().unwrap_or("");
        if [
            "mailer-daemon",
            "postmaster",
            "noreply",
            "no-reply",
            "donotreply",
        ]
        .contains(&local)
        {
            return Some(format!("from {}", a.address));
        }
    }
    None
}

/// A delivery-status report (`multipart/report; report-type=delivery-status`): the
/// returned message's ids and the status it gives.
fn bounce(m: &mail_parser::Message) -> Option<Bounce> {
    let ct = m.root_part().content_type()?;
    let report = ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && ct
            .attribute("report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    if !report {
        return None;
    }
    let mut refers = Vec::new();
    let mut reason = String::new();
    for p in m.parts.iter() {
        let Some(pct) = p.content_type() else {
            continue;
        };
        let sub = pct.subtype().unwrap_or("").to_ascii_lowercase();
        match (pct.ctype().to_ascii_lowercase().as_str(), sub.as_str()) {
            ("message", "delivery-status") => {
                let text = String::from_utf8_lossy(p.contents());
                let field = |name: &str| {
                    text.lines()
                        .rev()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                };
                reason = match (field("Status"), field("Diagnostic-Code")) {
                    (Some(s), Some(d)) => format!("{s} {d}"),
                    (Some(s), None) => s,
                    (None, Some(d)) => d,
                    (None, None) => "undeliverable".into(),
                };
            }
            ("message", "rfc822") | ("message", "global") => {
                if let Some(id) = p.message().and_then(|o| o.message_id()) {
                    refers.push(bare_id(id));
                }
            }
            ("text", "rfc822-headers") => {
                // The returned headers: parsed, or their Message-ID line read.
                let id = p
                    .message()
                    .and_then(|o| o.message_id().map(bare_id))
                    .or_else(|| {
                        String::from_utf8_lossy(p.contents())
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.trim().eq_ignore_ascii_case("message-id"))
                            .map(|(_, v)| bare_id(v))
                    });
                if let Some(id) = id.filter(|i| !i.is_empty()) {
                    refers.push(id);
                }
            }
            _ => {}
        }
    }
    if reason.is_empty() {
        reason = "undeliverable".into();
    }
    Some(Bounce { refers, reason })
}

/// What the agent reads of a message's text: the new part, without the quoted
/// history below it (`> …` lines, `On … wrote:`, an Outlook `-----Original
/// Message-----` or `From:` block) or the signature after `-- `; the whole text when
/// that would leave nothing.
pub fn fold_quoted(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim_end();
        let tl = t.trim_start();
        if t == "--" || t == "-- " || line == "-- " {
            break;
        }
        if tl.starts_with("-----Original Message-----")
            || tl.starts_with("________________________________")
            || (tl.starts_with("On ") && tl.ends_with("wrote:"))
            || (tl.starts_with("El ") && tl.ends_with("escribió:"))
        {
            break;
        }
        if tl.starts_with('>') {
            continue;
        }
        kept.push(t);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    while kept.first().is_some_and(|l| l.trim().is_empty()) {
        kept.remove(0);
    }
    if kept.is_empty() {
        return text.trim().to_string();
    }
    kept.join("\n")
}

/// What the agent's thread shows of a message: its subject, the new part of its
/// text (quoted history and signature folded away: the raw message is kept), and its
/// attachments by name and size.
pub fn for_agent(m: &Mail) -> String {
    let mut out = String::new();
    if !m.subject.is_empty() {
        out.push_str("Subject: ");
        out.push_str(&m.subject);
        out.push_str("\n\n");
    }
    out.push_str(&fold_quoted(&m.text));
    for a in &m.attachments {
        out.push_str(&format!(
            "\n[attachment: {} ({}, {} bytes)]",
            a.name, a.content_type, a.size
        ));
    }
    // A thread's message has a size limit; the raw message keeps the rest.
    const MAX: usize = 16 * 1024;
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n[…]");
    }
    out
}

/// A stored message as the desktop shows it beside the thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The HTML part rebuilt from the allow-list ([`crate::email::html::sanitise`]).
    pub html: Option<String>,
    /// Whether it names pictures elsewhere (kept unloaded: `data-src`).
    pub remote_images: bool,
    pub attachments: Vec<Attachment>,
}

/// What the desktop shows of a stored raw message (nothing for bytes that do not read).
pub fn view(raw: &[u8]) -> View {
    let Ok(m) = read(raw, usize::MAX) else {
        return View::default();
    };
    let html = m.html.as_deref().map(crate::email::html::sanitise);
    View {
        remote_images: html.as_deref().is_some_and(|h| h.contains(" data-src=")),
        html,
        attachments: m.attachments,
    }
}

/// Attachment `n` (from 0, in the message's order) of a raw message: its name and
/// bytes.
pub fn attachment(raw: &[u8], n: usize) -> Option<(String, Vec<u8>)> {
    let m = MessageParser::default().parse(raw)?;
    let p = m.attachments().nth(n)?;
    Some((
        p.attachment_name().unwrap_or("attachment").to_string(),
        p.contents().to_vec(),
    ))
}

/// `Content-Disposition: attachment` with a file name a browser cannot be tricked by
/// (quotes, control characters and path separators replaced; RFC 5987 for the rest).
pub fn disposition(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_control() || "\"\\/;".contains(c) {
                '_'
            } else {
                c
            }
        })
        .take(200)
        .collect();
    let ascii: String = safe
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let encoded: String = safe
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}
