//! E-mail into cases against real mail servers: Dovecot (IMAP, and LMTP to deliver
//! the customer's mail) and aiosmtpd (the SMTP server replies go through, delivering
//! into the customer's Dovecot mailbox), all on 127.0.0.1, started here.

use crate::channels::{customer_messages, json, next, on_duty};
pub(crate) use crate::dovecot::Dovecot;
use crate::harness::{wait_for, Gateway};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

/// aiosmtpd on `port`, delivering what it is given to Dovecot's LMTP.
pub(crate) struct Smtp(Child);

impl Smtp {
    pub fn start(port: u16, lmtp: u16) -> Smtp {
        let script = format!(
            r#"
import smtplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b'support' and data.password == b'support-pw'
    return AuthResult(success=ok)
class Relay:
    async def handle_DATA(self, server, session, envelope):
        rcpts = [r.split('@')[0] for r in envelope.rcpt_tos]
        with smtplib.LMTP('127.0.0.1', {lmtp}) as l:
            l.sendmail(envelope.mail_from, rcpts, envelope.original_content)
        return '250 OK delivered'
c = Controller(Relay(), hostname='127.0.0.1', port={port}, authenticator=check, auth_required=True, auth_require_tls=False)
c.start()
import time
while True: time.sleep(3600)
"#
        );
        let child = Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .spawn()
            .expect("aiosmtpd (Debian's python3-aiosmtpd; scripts/test.sh installs it)");
        wait_for("aiosmtpd", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Smtp(child)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn mailbox(imap: u16, smtp: u16) -> String {
    format!(
        r#"
[[mailbox]]
name = "support"
address = "support@acme.test"
imap = "127.0.0.1:{imap}"
imap_security = "none"
username = "support"
password = "support-pw"
smtp = "127.0.0.1:{smtp}"
smtp_security = "none"
smtp_username = ""
queue = "support"
after_import = "seen"
poll_secs = 5
import_attempts = 2
"#
    )
}

fn mail_lines(raw: &str, header: &str) -> Option<String> {
    // Unfolded header value.
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or(raw)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(header).then(|| v.trim().to_string())
    })
}

#[test]
fn a_customers_mail_becomes_a_case_the_reply_threads_and_nothing_is_imported_twice() {
    let base = 23200;
    let mut dv = Dovecot::start(base + 60, base + 61);
    let _smtp = Smtp::start(base + 62, base + 61);
    let mut g = Gateway::start(base, "demo = true", "", &mailbox(base + 60, base + 62));
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    // Ada writes to support (Bob is waiting: the fetcher is in IDLE).
    dv.deliver(
        "support",
        "From: Ada Lovelace <ada@example.com>\nTo: support@acme.test\nSubject: Order 1234 is late\nMessage-ID: <m1@example.com>\nDate: Thu, 03 Dec 2026 10:00:00 +0000\n\nHello, where is my order 1234?\n\n-- \nAda\n",
    );
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["channel"], "email", "{offer}");
    let id = offer["interaction"].as_str().unwrap().to_string();
    // The offer and her message on the timeline are two events: the second is waited for.
    let mut said = Vec::new();
    wait_for(
        "her message on the timeline",
        Duration::from_secs(10),
        || {
            said = customer_messages(&g, &id);
            !said.is_empty()
        },
    );
    assert_eq!(
        said,
        ["Subject: Order 1234 is late\n\nHello, where is my order 1234?"],
        "the signature folded away"
    );
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "It ships today <b>not bold</b> & arrives Friday."}"#,
    );
    assert_eq!(code, 201, "{body}");
    let sent = next(&g, &mut ws, "delivery");
    assert_eq!(sent["status"], "sent", "{sent}");
    // The reply is in Ada's mailbox, threaded.
    let mut inbox = Vec::new();
    wait_for(
        "the reply in Ada's mailbox",
        Duration::from_secs(20),
        || {
            inbox = dv.inbox("ada");
            !inbox.is_empty()
        },
    );
    let reply = &inbox[0];
    let h = |k: &str| mail_lines(reply, k).unwrap_or_else(|| panic!("no {k} in {reply}"));
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    let case = json(&body)["conversation_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(h("Subject"), format!("Re: Order 1234 is late [#{case}]"));
    assert_eq!(h("In-Reply-To"), "<m1@example.com>");
    assert_eq!(h("References"), "<m1@example.com>");
    let ours = format!("{id}.{}@acme.test", sent["seq"]);
    assert_eq!(h("Message-ID"), format!("<{ours}>"));
    let reply_to = h("Reply-To");
    assert!(
        reply_to.starts_with(&format!("support+c{case}.")) && reply_to.ends_with("@acme.test"),
        "{reply_to}"
    );
    assert!(h("From").contains("support@acme.test"), "{reply}");
    assert!(h("To").contains("ada@example.com"), "{reply}");
    assert!(reply.contains("multipart/alternative"), "{reply}");
    assert!(
        reply.contains("&lt;b&gt;not bold&lt;/b&gt;"),
        "the HTML part escapes: {reply}"
    );
    // Ada replies from a client that rewrote nothing but the subject, quoting: to the
    // plus-address, In-Reply-To our id.
    dv.deliver(
        "support",
        &format!("From: ada@example.com\nTo: {reply_to}\nSubject: RE: Re: Order 1234 is late\nMessage-ID: <m2@example.com>\nIn-Reply-To: <{ours}>\nReferences: <m1@example.com> <{ours}>\n\nThanks! Friday is fine.\n\nOn Thu, Bob wrote:\n> It ships today\n"),
    );
    let m = next(&g, &mut ws, "message");
    assert_eq!(m["interaction"], id.as_str(), "the same thread: {m}");
    assert_eq!(
        m["text"], "Subject: RE: Re: Order 1234 is late\n\nThanks! Friday is fine.",
        "{m}"
    );
    // Someone else replying to Ada's mail's id (a second recipient) does not join her case.
    dv.deliver(
        "support",
        "From: eve@example.org\nTo: support@acme.test\nSubject: Re: Order 1234 is late\nMessage-ID: <e1@example.org>\nIn-Reply-To: <m1@example.com>\n\nMe too!\n",
    );
    let eve = next(&g, &mut ws, "offer");
    assert_ne!(eve["interaction"], id.as_str(), "{eve}");
    let eve_id = eve["interaction"].as_str().unwrap().to_string();
    let (_, body) = g.get_auth(&format!("/api/interactions/{eve_id}"), "test-token");
    assert_ne!(
        json(&body)["conversation_id"].as_i64(),
        Some(case),
        "{body}"
    );
    // An auto-reply is noted, offered to nobody; a message with no From: is quarantined.
    dv.deliver(
        "support",
        "From: ada@example.com\nTo: support@acme.test\nSubject: Out of office\nAuto-Submitted: auto-replied\nMessage-ID: <ooo@example.com>\n\nI am away.\n",
    );
    dv.deliver(
        "support",
        "To: support@acme.test\nSubject: who?\nMessage-ID: <anon@x>\n\nno sender\n",
    );
    wait_for(
        "the anonymous message quarantined",
        Duration::from_secs(20),
        || {
            let (_, body) = g.get_auth("/api/mailboxes", "test-token");
            json(&body)[0]["status"]["quarantined"] == 1
        },
    );
    // The quarantined message, its reason, and its bytes as an .eml for whoever looks.
    let (code, body) = g.get_auth("/api/mailboxes/support/quarantine", "test-token");
    assert_eq!(code, 200, "{body}");
    let q = json(&body);
    assert_eq!(q[0]["message_id"], "anon@x", "{body}");
    assert_eq!(q[0]["reason"], "the message has no From: address", "{body}");
    let (code, eml) = g.get_auth("/api/mailboxes/support/quarantine/anon%40x", "test-token");
    assert_eq!(code, 200, "{eml}");
    assert!(
        eml.contains("Subject: who?") && eml.contains("no sender"),
        "{eml}"
    );
    assert_eq!(
        g.get_auth(
            "/api/mailboxes/support/quarantine/m1%40example.com",
            "test-token"
        )
        .0,
        404,
        "imported, not quarantined"
    );
    assert_eq!(g.get_auth("/api/mailboxes/support/quarantine", "").0, 401);
    let (_, body) = g.get_auth("/api/mailboxes", "test-token");
    let mb = &json(&body)[0];
    assert_eq!(mb["status"]["up"], true, "{mb}");
    assert!(
        mb.get("password").is_none() && mb.get("smtp_password").is_none(),
        "{mb}"
    );
    assert_eq!(
        mb["status"]["imported"], 4,
        "m1, m2, eve's and the auto-reply: {mb}"
    );
    let (_, metrics) = g.get("/metrics");
    assert!(
        metrics.contains("omnigate_mailbox_up{mailbox=\"support\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("omnigate_mail_quarantined_total{mailbox=\"support\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        customer_messages(&g, &id).len(),
        2,
        "the auto-reply is not on Ada's thread"
    );

    // Ada on the web chat: Bob checks who she is and e-mails her from the chat; the
    // mail names her case, so her answer joins it.
    use crate::centre::{send, ty, until};
    let mut cust = crate::centre::ws(&g, "/chat/ws");
    send(
        &mut cust,
        serde_json::json!({"type": "start", "name": "Ada", "address": "ada@example.com"}),
    );
    let chat = until(&mut cust, "welcome", ty("welcome")).last().unwrap()["chat"]
        .as_str()
        .unwrap()
        .to_string();
    let o = next(&g, &mut ws, "offer");
    assert_eq!(o["interaction"], chat.as_str(), "{o}");
    assert_eq!(
        g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "")
            .0,
        200
    );
    let (code, body) = g.post(&format!("/api/agent/work/{chat}/verify"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&bob),
        r#"{"text": "The label is attached to this mail.", "channel": "email"}"#,
    );
    assert_eq!(code, 202, "{body}");
    assert_eq!(json(&body)["to"], "ada@example.com", "{body}");
    wait_for(
        "the mail from the chat in Ada's mailbox",
        Duration::from_secs(20),
        || dv.inbox("ada").len() == 2,
    );
    let from_chat = dv.inbox("ada")[1].clone();
    assert_eq!(
        mail_lines(&from_chat, "Subject").as_deref(),
        Some(format!("Your case [#{case}]").as_str()),
        "{from_chat}"
    );
    assert!(
        mail_lines(&from_chat, "In-Reply-To").is_none(),
        "a new conversation: {from_chat}"
    );
    assert!(
        from_chat.contains("The label is attached to this mail."),
        "{from_chat}"
    );
    let (_, body) = g.get_auth(&format!("/api/interactions/{chat}"), "test-token");
    assert!(
        body.contains("The label is attached to this mail."),
        "on the chat's timeline: {body}"
    );
    drop(cust);

    // A crash and a restart: nothing imported twice (the mark and the Message-IDs).
    drop(ws);
    g.crash_and_restart();
    g.wait_log("open threads taken up again");
    wait_for("the mailbox up again", Duration::from_secs(30), || {
        let (_, body) = g.get_auth("/api/mailboxes", "test-token");
        json(&body)[0]["status"]["up"] == true
    });
    // The IMAP server goes away and comes back; mail sent meanwhile arrives once.
    dv.stop();
    wait_for("the mailbox failing", Duration::from_secs(30), || {
        let (_, body) = g.get_auth("/api/mailboxes", "test-token");
        json(&body)[0]["status"]["up"] == false
    });
    let (_, metrics) = g.get("/metrics");
    assert!(
        metrics.contains("omnigate_mailbox_up{mailbox=\"support\"} 0"),
        "{metrics}"
    );
    dv.restart();
    dv.deliver(
        "support",
        &format!("From: ada@example.com\nTo: support@acme.test\nSubject: Re: Order 1234 is late [#{case}]\nMessage-ID: <m3@example.com>\n\nOne more thing.\n"),
    );
    wait_for("m3 on Ada's thread", Duration::from_secs(60), || {
        customer_messages(&g, &id).len() == 3
    });
    let texts = customer_messages(&g, &id);
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("where is my order"))
            .count(),
        1,
        "{texts:?}"
    );
    assert!(
        texts[2].ends_with("One more thing."),
        "by the subject tag: {texts:?}"
    );
}

/// The messages in a Maildir folder of `user` (`""`: the inbox; `".Done"`: Done).
pub(crate) fn folder(dv: &Dovecot, user: &str, folder: &str) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| {
            std::fs::read_dir(dv.dir.path().join("mail").join(user).join(folder).join(sub)).ok()
        })
        .map(|d| d.count())
        .sum()
}

#[test]
fn an_erased_cases_mail_never_comes_back_and_moved_mail_leaves_the_inbox() {
    let base = 23900;
    let mut dv = Dovecot::start(base + 60, base + 61);
    let _smtp = Smtp::start(base + 62, base + 61);
    let mailboxes =
        mailbox(base + 60, base + 62).replace("after_import = \"seen\"", "after_import = \"keep\"");
    let mut g = Gateway::start(base, "demo = true", "", &mailboxes);
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    dv.deliver(
        "support",
        "From: ada@example.com\nTo: support@acme.test\nSubject: Delete me\nMessage-ID: <gone@example.com>\n\nPlease forget this.\n",
    );
    let offer = next(&g, &mut ws, "offer");
    let id = offer["interaction"].as_str().unwrap().to_string();
    assert_eq!(
        g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "")
            .0,
        200
    );
    let (code, body) = g.post(&format!("/api/agent/work/{id}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    let case = json(&body)["conversation_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"));
    // The case's mail is erased; the server still holds the message (keep).
    let (code, body) = crate::centre::raw(
        &g,
        "DELETE",
        &format!("/api/cases/{case}/mail"),
        "test-token",
        "",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["erased"], 1, "{body}");
    let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    assert!(
        !body.contains("Please forget this."),
        "gone from the timeline: {body}"
    );
    assert_eq!(folder(&dv, "support", ""), 1, "kept on the server");
    // The server's UIDs start again (a restored or rebuilt mailbox: a new
    // UIDVALIDITY): every message is looked at again and the erased one stays away,
    // while a new one is imported.
    dv.stop();
    for f in std::fs::read_dir(dv.dir.path().join("mail/support"))
        .unwrap()
        .flatten()
    {
        if f.file_name().to_string_lossy().starts_with("dovecot") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    dv.restart();
    dv.deliver(
        "support",
        "From: ada@example.com\nTo: support@acme.test\nSubject: Something else\nMessage-ID: <new@example.com>\n\nA new question.\n",
    );
    let offer = next(&g, &mut ws, "offer");
    let again = offer["interaction"].as_str().unwrap().to_string();
    assert_eq!(
        customer_messages(&g, &again),
        ["Subject: Something else\n\nA new question."]
    );
    g.wait_log("UIDVALIDITY changed");
    // A restart changes nothing either.
    drop(ws);
    g.crash_and_restart();
    let mut ws = crate::harness::agent_socket(&g, "bob", "demo-bob").1;
    // Sales, added through the admin API (it survives the restart), moves what it
    // imported to Done.
    let admin = |method: &str, path: &str, body: &str| {
        crate::centre::raw(&g, method, path, "test-token", body)
    };
    let sales = serde_json::json!({
        "address": "sales@acme.test",
        "imap": format!("127.0.0.1:{}", base + 60), "imap_security": "none",
        "username": "sales", "password": "sales-pw",
        "smtp": format!("127.0.0.1:{}", base + 62), "smtp_security": "none",
        "smtp_username": "support", "smtp_password": "support-pw",
        "queue": "support", "after_import": "move:Done",
    });
    let mut far = sales.clone();
    far["imap"] = "imap.example.com:143".into();
    let (code, body) = admin("PUT", "/api/mailboxes/sales", &far.to_string());
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("only for a loopback host"), "{body}");
    let (code, body) = admin("PUT", "/api/mailboxes/support", &sales.to_string());
    assert_eq!(code, 409, "the config file's: {body}");
    let (code, body) = admin("PUT", "/api/mailboxes/sales", &sales.to_string());
    assert_eq!(code, 201, "{body}");
    dv.deliver(
        "sales",
        "From: grace@example.com\nTo: sales@acme.test\nSubject: A quote\nMessage-ID: <q1@example.com>\n\nHow much for 10?\n",
    );
    // A move is a copy then an expunge (two steps on Dovecot's disk): both awaited.
    wait_for(
        "the sales mail moved to Done and out of the inbox",
        Duration::from_secs(30),
        || folder(&dv, "sales", ".Done") == 1 && folder(&dv, "sales", "") == 0,
    );
    let (_, body) = g.get_auth("/api/mailboxes", "test-token");
    let all = json(&body);
    let by = |n: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by("sales")["status"]["imported"], 1, "{all}");
    assert_eq!(
        by("support")["status"]["imported"],
        0,
        "nothing re-imported after the restart: {all}"
    );
    let (_, body) = g.get_auth(&format!("/api/interactions/{again}"), "test-token");
    assert_eq!(customer_messages(&g, &again).len(), 1, "{body}");
    assert_eq!(by("sales")["source"], "api", "{all}");
    assert!(by("sales").get("password").is_none(), "{all}");
    // Kept across a restart, then removed: its fetcher stops.
    g.crash_and_restart();
    let (_, body) = g.get_auth("/api/mailboxes", "test-token");
    assert_eq!(json(&body).as_array().unwrap().len(), 2, "{body}");
    let admin = |method: &str, path: &str| crate::centre::raw(&g, method, path, "test-token", "");
    assert_eq!(admin("DELETE", "/api/mailboxes/sales").0, 204);
    assert_eq!(admin("DELETE", "/api/mailboxes/sales").0, 404);
    assert_eq!(admin("DELETE", "/api/mailboxes/support").0, 409);
    let (_, body) = g.get_auth("/api/mailboxes", "test-token");
    assert_eq!(json(&body).as_array().unwrap().len(), 1, "{body}");
    let _ = &mut ws;
}

#[test]
fn a_customer_answers_the_survey_mail_with_a_score_and_it_opens_no_thread() {
    let base = 27800;
    let dv = Dovecot::start(base + 60, base + 61);
    let _smtp = Smtp::start(base + 62, base + 61);
    let survey = "survey = { question = \"How did we do? Reply with a number from 1 (poor) to 5 (great).\" }\n";
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!("{}{survey}", mailbox(base + 60, base + 62)),
    );
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    dv.deliver(
        "support",
        "From: Ada Lovelace <ada@example.com>\nTo: support@acme.test\nSubject: Charged twice\nMessage-ID: <s1@example.com>\n\nMy card was charged twice.\n",
    );
    let id = crate::channels::take_thread(&g, &mut ws, &bob);
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "Refunded, sorry!"}"#,
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(next(&g, &mut ws, "delivery")["status"], "sent");
    let (code, body) = g.post(&format!("/api/agent/work/{id}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");

    // After Bob's reply, the question: in the same thread, to her, from support.
    let mut inbox = Vec::new();
    wait_for("the survey mail", Duration::from_secs(20), || {
        inbox = dv.inbox("ada");
        inbox.len() >= 2
    });
    assert!(inbox[0].contains("Refunded, sorry!"), "{}", inbox[0]);
    let q = &inbox[1];
    assert!(q.contains("How did we do? Reply with a number"), "{q}");
    let h = |k: &str| mail_lines(q, k).unwrap_or_else(|| panic!("no {k} in {q}"));
    let ours = format!("{id}.0@acme.test");
    assert_eq!(h("Message-ID"), format!("<{ours}>"));
    assert_eq!(h("In-Reply-To"), "<s1@example.com>");
    assert!(h("Subject").starts_with("Re: Charged twice [#"), "{q}");
    let reply_to = h("Reply-To");

    // Her answer, quoting the question: the thread's survey answer, no new thread.
    dv.deliver(
        "support",
        &format!("From: ada@example.com\nTo: {reply_to}\nSubject: Re: Charged twice\nMessage-ID: <s2@example.com>\nIn-Reply-To: <{ours}>\nReferences: <s1@example.com> <{ours}>\n\n5 - quick refund\n\nOn Thu, support wrote:\n> How did we do?\n"),
    );
    let mut i = serde_json::Value::Null;
    wait_for("her answer", Duration::from_secs(20), || {
        let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
        i = json(&body);
        !i["survey"].is_null()
    });
    assert_eq!(i["survey"]["score"], 5, "{i}");
    assert_eq!(i["survey"]["channel"], "email", "{i}");
    assert_eq!(i["survey"]["comment"], "quick refund", "{i}");
    assert_eq!(
        customer_messages(&g, &id),
        ["Subject: Charged twice\n\nMy card was charged twice."]
    );

    // What she writes next is a new contact on her case (the answer made none: this
    // is the next offer).
    dv.deliver(
        "support",
        &format!("From: ada@example.com\nTo: {reply_to}\nSubject: Re: Charged twice\nMessage-ID: <s3@example.com>\nIn-Reply-To: <{ours}>\n\nAnd my invoice?\n"),
    );
    let again = next(&g, &mut ws, "offer");
    let id2 = again["interaction"].as_str().unwrap().to_string();
    assert_ne!(id2, id);
    assert_eq!(
        customer_messages(&g, &id2),
        ["Subject: Re: Charged twice\n\nAnd my invoice?"]
    );
}

/// The first-level bot on e-mail (`[[mailbox]] bot = true`, issue 21), against real
/// Dovecot and SMTP: Ada's mail about her parcel is answered by e-mail with the
/// knowledge base's long answer, in her thread, and nobody is offered it; her reply
/// asking for a person hands the thread to Bob with the transcript (her notice comes
/// by mail too), and Bob's reply reaches her; the bot says nothing more.
#[test]
fn the_bot_answers_a_mail_in_its_thread_and_hands_the_case_over_when_asked() {
    let base = 27580;
    let dv = Dovecot::start(base + 10, base + 11);
    let _smtp = Smtp::start(base + 12, base + 11);
    let g = Gateway::start(
        base,
        "demo = true",
        "",
        &format!("{}bot = true\n", mailbox(base + 10, base + 12)),
    );
    g.wait_log("knowledge base loaded");
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    dv.deliver(
        "support",
        "From: Ada Lovelace <ada@example.com>\nTo: support@acme.test\nSubject: Where is my parcel?\nMessage-ID: <b1@example.com>\n\nHi, my package has not arrived yet.\n",
    );
    let mut inbox = Vec::new();
    wait_for("the bot's answer by mail", Duration::from_secs(30), || {
        inbox = dv.inbox("ada");
        !inbox.is_empty()
    });
    let answer = &inbox[0];
    assert!(
        answer.contains("You can follow your parcel at https://acme.test/track"),
        "the long answer: {answer}"
    );
    let h = |m: &str, k: &str| mail_lines(m, k).unwrap_or_else(|| panic!("no {k} in {m}"));
    assert_eq!(h(answer, "In-Reply-To"), "<b1@example.com>");
    assert!(
        h(answer, "Subject").starts_with("Re: Where is my parcel? [#"),
        "{answer}"
    );
    let ours = h(answer, "Message-ID");
    let reply_to = h(answer, "Reply-To");
    // The bot has it: no queue on record.
    let (_, list) = g.get_auth("/api/interactions?limit=10", "test-token");
    let id = json(&list)
        .as_array()
        .and_then(|a| a.iter().find(|i| i["kind"] == "email"))
        .and_then(|i| i["id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("the e-mail thread: {list}"));
    let (_, one) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
    let one = json(&one);
    assert!(
        one["queue"].is_null(),
        "not queued while the bot has it: {one}"
    );

    // She asks for a person, quoting the answer: handed over at once.
    dv.deliver(
        "support",
        &format!("From: ada@example.com\nTo: {reply_to}\nSubject: Re: Where is my parcel?\nMessage-ID: <b2@example.com>\nIn-Reply-To: {ours}\nReferences: <b1@example.com> {ours}\n\nIt is late. I want to talk to a human, please.\n\nOn Thu, support wrote:\n> You can follow your parcel\n"),
    );
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["interaction"], id.as_str(), "{offer}");
    assert_eq!(offer["channel"], "email", "{offer}");
    let d = &offer["details"];
    assert_eq!(d["bot.intent"], "order-status", "{offer}");
    assert!(
        d["bot.summary"]
            .as_str()
            .unwrap()
            .contains("asked for a person (\"human\")"),
        "{offer}"
    );
    let transcript = d["bot.transcript"].as_str().unwrap();
    assert!(
        transcript.contains("customer: Where is my parcel?")
            && transcript.contains("bot: You can follow your parcel")
            && !transcript.contains("> You can follow"),
        "the mails' own words, quotes folded: {transcript}"
    );
    wait_for(
        "the hand-off notice by mail",
        Duration::from_secs(30),
        || {
            inbox = dv.inbox("ada");
            inbox.len() >= 2
        },
    );
    assert!(
        inbox[1].contains("I am passing you to a person on the team"),
        "{}",
        inbox[1]
    );
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{id}/messages"),
        Some(&bob),
        r#"{"text": "Bob here: it ships today."}"#,
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(next(&g, &mut ws, "delivery")["status"], "sent");
    wait_for("Bob's reply by mail", Duration::from_secs(30), || {
        inbox = dv.inbox("ada");
        inbox.len() >= 3
    });
    assert!(
        inbox[2].contains("Bob here: it ships today."),
        "{}",
        inbox[2]
    );
    assert_eq!(inbox.len(), 3, "nothing from the bot after the hand-off");
    assert_eq!(
        customer_messages(&g, &id).len(),
        2,
        "her two mails on the thread"
    );
}
