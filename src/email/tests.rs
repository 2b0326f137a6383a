//! The threading resolver on a corpus of raw messages (the cases help desks get
//! wrong), read by the real parser.

use super::parse::{read, Mail};
use super::thread::{clues, resolve, token, Case, Facts, Placement};

const KEY: &[u8] = b"a test key of thirty-two bytes!!";
const US: &str = "support@acme.test";

fn mail(raw: &str) -> Mail {
    read(raw.replace('\n', "\r\n").as_bytes(), 1 << 20).unwrap()
}

/// Case 7 is Ada's (open to ada@example.com); our reply on it was `<i7.3@acme.test>`;
/// Ada's first mail was `<m1@example.com>`.
fn facts() -> Facts {
    let mut f = Facts::default();
    f.messages.insert("i7.3@acme.test".into(), 7);
    f.messages.insert("m1@example.com".into(), 7);
    f.cases.insert(
        7,
        Case {
            customer: Some(1),
            addresses: vec!["ada@example.com".into()],
        },
    );
    f
}

fn place(raw: &str) -> Placement {
    let m = mail(raw);
    let f = facts();
    resolve(&clues(&m, US, KEY), &m.from.unwrap().address, &f)
}

#[test]
fn a_reply_with_in_reply_to_joins_its_case() {
    let p = place("From: Ada <ADA@example.com>\nTo: support@acme.test\nSubject: Re: Order\nMessage-ID: <m2@example.com>\nIn-Reply-To: <i7.3@acme.test>\n\nthanks\n");
    assert_eq!(
        p,
        Placement::Case {
            conversation: 7,
            by: "reference"
        }
    );
}

#[test]
fn an_outlook_reply_with_rewritten_ids_joins_by_the_plus_address() {
    let t = token(KEY, 7);
    let p = place(&format!("From: ada@example.com\nTo: \"Support\" <support+{t}@acme.test>\nSubject: RE: Order\nMessage-ID: <AM0PR01MB@outlook.com>\nIn-Reply-To: <AM0PR01MB-never-seen@outlook.com>\nThread-Index: AQHZ\n\nok\n"));
    assert_eq!(
        p,
        Placement::Case {
            conversation: 7,
            by: "token"
        }
    );
    // A forged token (another case's number with this MAC) names nothing.
    let forged = t.replace("c7.", "c8.");
    let p = place(&format!("From: ada@example.com\nTo: support+{forged}@acme.test\nSubject: x\nMessage-ID: <f@x>\n\nx\n"));
    assert_eq!(p, Placement::Sender);
}

#[test]
fn only_a_case_tag_in_the_subject_is_enough_for_the_customer() {
    let p = place("From: ada@example.com\nTo: support@acme.test\nSubject: Fwd: my order [#7]\nMessage-ID: <m5@example.com>\n\nsee above\n");
    assert_eq!(
        p,
        Placement::Case {
            conversation: 7,
            by: "subject tag"
        }
    );
}

#[test]
fn a_second_recipient_of_a_mail_does_not_join_someone_elses_case() {
    // Eve was on Ada's mail (a newsletter-style Cc) and replies to all.
    let p = place("From: eve@example.org\nTo: support@acme.test, ada@example.com\nSubject: Re: Order [#7]\nMessage-ID: <e1@example.org>\nIn-Reply-To: <m1@example.com>\nReferences: <m1@example.com>\n\nme too\n");
    assert_eq!(
        p,
        Placement::Sender,
        "neither the reference nor the tag lets Eve in"
    );
}

#[test]
fn a_forwarded_message_goes_to_the_forwarders_case() {
    // Bob forwards Ada's mail: its id is in the body, not the headers.
    let p = place("From: bob@example.net\nTo: support@acme.test\nSubject: Fwd: Order\nMessage-ID: <b1@example.net>\n\n---------- Forwarded message ---------\nFrom: ada@example.com\nMessage-ID: <m1@example.com>\n");
    assert_eq!(p, Placement::Sender);
}

#[test]
fn an_auto_reply_and_a_bounce_are_recognised() {
    let ooo = mail("From: ada@example.com\nTo: support@acme.test\nSubject: Out of office\nAuto-Submitted: auto-replied\nMessage-ID: <o@x>\nIn-Reply-To: <i7.3@acme.test>\n\naway\n");
    assert_eq!(
        ooo.automatic.as_deref(),
        Some("Auto-Submitted: auto-replied")
    );
    let ms = mail("From: ada@example.com\nTo: support@acme.test\nSubject: Automatic reply\nX-Auto-Response-Suppress: All\nMessage-ID: <o2@x>\n\naway\n");
    assert!(ms.automatic.is_some());
    let list = mail("From: news@shop.test\nTo: support@acme.test\nPrecedence: bulk\nSubject: Sale\nMessage-ID: <n@x>\n\nsale\n");
    assert_eq!(list.automatic.as_deref(), Some("Precedence: bulk"));
    let person = mail("From: ada@example.com\nTo: support@acme.test\nAuto-Submitted: no\nSubject: hi\nMessage-ID: <p@x>\n\nhi\n");
    assert_eq!(person.automatic, None);
    let bounce = mail("From: MAILER-DAEMON@mx.example.com\nTo: support@acme.test\nSubject: Undelivered Mail Returned to Sender\nMessage-ID: <bounce1@mx>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; nobody@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n--B\nContent-Type: text/rfc822-headers\n\nFrom: support@acme.test\nTo: nobody@example.com\nSubject: Re: Order [#7]\nMessage-ID: <i7.3@acme.test>\n--B--\n");
    let b = bounce.bounce.clone().expect("a delivery report");
    assert_eq!(b.refers, ["i7.3@acme.test"]);
    assert_eq!(b.reason, "5.1.1 smtp; 550 5.1.1 user unknown");
    assert_eq!(bounce.automatic.as_deref(), Some("a delivery report"));
}

#[test]
fn bad_input_reads_or_is_refused_with_a_reason() {
    // No Message-ID: the same bytes get the same id.
    let a = mail("From: ada@example.com\nSubject: x\n\nbody\n");
    let b = mail("From: ada@example.com\nSubject: x\n\nbody\n");
    assert_eq!(a.message_id, b.message_id);
    assert!(a.message_id.starts_with("sha256-"), "{}", a.message_id);
    // A wrong charset still reads; no From: reads (the importer quarantines it).
    let c = mail("From: ada@example.com\nSubject: =?x-unknown?B?SGVsbG8=?=\nContent-Type: text/plain; charset=x-nonsense\n\nHola\n");
    assert!(c.text.contains("Hola"));
    assert!(mail("Subject: anon\n\nx\n").from.is_none());
    assert!(
        read(&[0xff; 64], 1 << 20).is_err()
            || read(&[0xff; 64], 1 << 20).is_ok_and(|m| m.from.is_none())
    );
    let big = vec![b'a'; 2048];
    assert!(read(&big, 1024)
        .unwrap_err()
        .to_string()
        .contains("over the mailbox's limit"));
    // Quoted history and signatures fold away; the text stays when nothing else would.
    let q = mail("From: ada@example.com\nSubject: x\n\nYes please.\n\nOn Mon, Bob <b@x> wrote:\n> old\n> text\n-- \nAda\n");
    assert_eq!(super::parse::fold_quoted(&q.text), "Yes please.");
    assert_eq!(super::parse::fold_quoted("> only quote"), "> only quote");
}

#[test]
fn html_mail_reads_as_text_and_its_attachments_are_listed() {
    let m = mail("From: ada@example.com\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"M\"\n\n--M\nContent-Type: text/html; charset=utf-8\n\n<p>Hello <b>there</b></p><script>alert(1)</script>\n--M\nContent-Type: application/pdf; name=\"invoice.pdf\"\nContent-Disposition: attachment; filename=\"invoice.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--M--\n");
    assert_eq!(m.text, "Hello there");
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].name, "invoice.pdf");
    let shown = super::parse::for_agent(&m);
    assert!(
        shown.contains("[attachment: invoice.pdf (application/pdf, 9 bytes)]"),
        "{shown}"
    );
    assert!(!super::html::sanitise(m.html.as_deref().unwrap()).contains("script"));
}

proptest::proptest! {
    /// Whatever bytes arrive, reading, showing and placing them never panics, and the
    /// HTML the desktop gets never holds a script or an event handler.
    #[test]
    fn any_message_reads_or_is_refused_and_any_html_comes_out_harmless(
        raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        html in "(<[a-zA-Z/!]{0,8}( [a-z]{1,6}(=[\"']?[a-zA-Z:()<>& ]{0,12}[\"']?)?){0,3}>?|[a-z <>&;\"'=]{0,10}){0,24}",
    ) {
        if let Ok(m) = read(&raw, 1 << 20) {
            let _ = super::parse::for_agent(&m);
            let _ = super::parse::view(&raw);
            let _ = clues(&m, US, KEY);
        }
        let _ = super::html::to_text(&html);
        let out = super::html::sanitise(&html).to_ascii_lowercase();
        proptest::prop_assert!(!out.contains("<script"), "{}", out);
        // No attribute of an event handler survives inside a tag.
        let mut rest = out.as_str();
        while let Some(i) = rest.find('<') {
            let tag = &rest[i..rest[i..].find('>').map_or(rest.len(), |e| i + e)];
            // The tag without its (double-quoted, escaped) attribute values.
            let bare: String = tag.split('"').step_by(2).collect();
            proptest::prop_assert!(!bare.contains(" on"), "{}", tag);
            rest = &rest[i + 1..];
        }
    }
}
