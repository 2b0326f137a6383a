//! An agent's reply as a message (sans-IO: headers decided here, bytes built by
//! `lettre`'s builder): our own `Message-ID`, `In-Reply-To` the last inbound message,
//! `References` carried on (the first and the last 19, as RFC 5322 suggests for long
//! chains), `Reply-To` the case's signed plus-address, `Re: <subject> [#case]`, plain
//! text and an HTML part.

use lettre::message::{Mailbox, MultiPart};

/// What a reply is made of.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    /// Our mailbox's address, and the name shown with it (the agent's, and the
    /// mailbox's).
    pub from: &'a str,
    pub from_name: &'a str,
    /// The case's plus-address.
    pub reply_to: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    /// Our id for it, without brackets.
    pub message_id: &'a str,
    /// The message it answers, and the chain of that message (oldest first).
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub text: &'a str,
    /// When it is sent (Unix s).
    pub date: u64,
}

/// Why a reply cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsendable(pub String);

fn mailbox(name: &str, address: &str) -> Result<Mailbox, Unsendable> {
    let a = address
        .parse()
        .map_err(|e| Unsendable(format!("{address:?} is not an e-mail address: {e}")))?;
    Ok(Mailbox::new(
        (!name.trim().is_empty()).then(|| name.trim().to_string()),
        a,
    ))
}

/// The `References` of a reply to a message with `chain` (its own References,
/// oldest first) and id `parent`: the chain and the parent, the first and the last
/// 19 when longer.
pub fn references(chain: &[String], parent: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = chain.to_vec();
    if let Some(p) = parent {
        if !v.iter().any(|x| x == p) {
            v.push(p.to_string());
        }
    }
    if v.len() > 20 {
        let keep_from = v.len() - 19;
        let first = v[0].clone();
        v = std::iter::once(first).chain(v.drain(keep_from..)).collect();
    }
    v
}

/// Plain text as a small HTML document (escaped, paragraphs and line breaks kept).
pub fn text_to_html(text: &str) -> String {
    let mut out = String::from("<!DOCTYPE html><html><body>");
    for para in text.split("\n\n") {
        out.push_str("<p>");
        for (i, line) in para.lines().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            for c in line.chars() {
                match c {
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '&' => out.push_str("&amp;"),
                    '"' => out.push_str("&quot;"),
                    c => out.push(c),
                }
            }
        }
        out.push_str("</p>");
    }
    out.push_str("</body></html>");
    out
}

/// The reply as it goes on the wire.
pub fn reply(r: &Reply) -> Result<Vec<u8>, Unsendable> {
    if r.text.trim().is_empty() {
        return Err(Unsendable("the message is empty".into()));
    }
    let brackets = |id: &str| format!("<{id}>");
    let mut b = lettre::Message::builder()
        .from(mailbox(r.from_name, r.from)?)
        .reply_to(mailbox("", r.reply_to)?)
        .to(mailbox("", r.to)?)
        .subject(r.subject)
        .message_id(Some(brackets(r.message_id)))
        .date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.date))
        .user_agent("omnigate".into());
    if let Some(p) = r.in_reply_to {
        b = b.in_reply_to(brackets(p));
    }
    if !r.references.is_empty() {
        b = b.references(
            r.references
                .iter()
                .map(|x| brackets(x))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let m = b
        .multipart(MultiPart::alternative_plain_html(
            r.text.to_string(),
            text_to_html(r.text),
        ))
        .map_err(|e| Unsendable(e.to_string()))?;
    Ok(m.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_carries_the_thread_and_reads_back_as_it_was_meant() {
        let refs = references(&["a@x".into(), "b@x".into()], Some("c@x"));
        let raw = reply(&Reply {
            from: "support@acme.test",
            from_name: "Bob (Acme support)",
            reply_to: "support+c7.0123456789ab@acme.test",
            to: "ada@example.com",
            subject: "Re: My order [#7]",
            message_id: "i1.2@acme.test",
            in_reply_to: Some("c@x"),
            references: &refs,
            text: "Hello Ada,\n\nit ships <today> & tomorrow.",
            date: 1_800_000_000,
        })
        .unwrap();
        let m = crate::email::parse::read(&raw, 1 << 20).unwrap();
        assert_eq!(m.message_id, "i1.2@acme.test");
        assert_eq!(m.in_reply_to, ["c@x"]);
        assert_eq!(m.references, ["a@x", "b@x", "c@x"]);
        assert_eq!(m.subject, "Re: My order [#7]");
        assert_eq!(
            m.reply_to.unwrap().address,
            "support+c7.0123456789ab@acme.test"
        );
        assert_eq!(m.from.unwrap().name, "Bob (Acme support)");
        assert_eq!(
            m.text.trim_end(),
            "Hello Ada,\n\nit ships <today> & tomorrow."
        );
        assert!(m
            .html
            .unwrap()
            .contains("it ships &lt;today&gt; &amp; tomorrow."));
        assert_eq!(m.date, Some(1_800_000_000));
        assert!(m.automatic.is_none());
    }

    #[test]
    fn a_long_chain_keeps_its_first_and_last_nineteen() {
        let chain: Vec<String> = (0..30).map(|i| format!("m{i}@x")).collect();
        let r = references(&chain, Some("p@x"));
        assert_eq!(r.len(), 20);
        assert_eq!(r[0], "m0@x");
        assert_eq!(r[1], "m12@x");
        assert_eq!(r[19], "p@x");
        assert_eq!(references(&[], None), Vec::<String>::new());
    }

    #[test]
    fn nothing_is_sent_without_text_or_to_a_bad_address() {
        let ok = Reply {
            from: "support@acme.test",
            from_name: "",
            reply_to: "support@acme.test",
            to: "ada@example.com",
            subject: "s",
            message_id: "x@y",
            in_reply_to: None,
            references: &[],
            text: "hi",
            date: 0,
        };
        assert!(reply(&ok).is_ok());
        assert!(reply(&Reply {
            text: " ",
            ..ok.clone()
        })
        .is_err());
        let e = reply(&Reply {
            to: "ada@exa mple.com\r\nBcc: x@y",
            ..ok
        })
        .unwrap_err();
        assert!(e.0.contains("not an e-mail address"), "{e}");
    }
}
