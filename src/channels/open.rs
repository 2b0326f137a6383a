//! The open channel API, sans-IO: how any channel a business runs (an app's chat, a
//! marketplace's inbox, a terminal) reaches omnigate in a few steps.
//!
//! **In**: `POST /api/channels/{account}/events` with `X-Omnigate-Timestamp` (Unix
//! seconds, within five minutes of ours) and `X-Omnigate-Signature: sha256=<hex>`
//! (HMAC-SHA256 under the account's secret of `<timestamp>.<raw body>`), the body a
//! batch:
//!
//! ```json
//! {"events": [
//!   {"id": "e-1", "type": "message", "thread": "t-42",
//!    "from": {"phone": "+593991234567", "email": "ada@example.com", "id": "u-7"},
//!    "name": "Ada", "text": "Hello", "at": 1764763200,
//!    "attachments": [{"url": "https://cdn.example.com/a.png", "name": "a.png"}]},
//!   {"id": "e-2", "type": "status", "delivery": "d-…", "status": "delivered"},
//!   {"id": "e-3", "type": "typing", "thread": "t-42", "on": true}
//! ]}
//! ```
//!
//! Each event's `id` makes a re-sent one count once; the answer lists each event's
//! result in order (`{"results": [{"id": "e-1", "result": "stored", "seq": 3}, ...]}`,
//! an event that cannot be taken gets `"error"` with the reason and the rest still go).
//!
//! **Out**: each agent message is a signed `POST` to the account's `callback_url`
//! (same headers, same scheme) of
//! `{"delivery": "<stable id>", "type": "message", "thread": "t-42", "text": "…",
//! "agent": "Bob", "at": <Unix ms>}`. A 2xx means the connector took it (`sent`); a
//! 5xx or no answer is retried (1 s, 2 s, 4 s … up to the account's `send_attempts`);
//! a 4xx fails it with the connector's reason (its `{"error": …}` or its text). The
//! connector reports progress with `status` events naming the `delivery`.

use serde::Deserialize;

/// Events in one batch at most.
pub const MAX_EVENTS: usize = 100;
/// Characters in one message's text at most.
pub const MAX_TEXT: usize = 4096;
/// Attachments on one message at most.
pub const MAX_ATTACHMENTS: usize = 10;

/// Why a batch could not be read at all: the 400's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBatch(pub String);

/// One event of a batch, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A customer's message on the connector's thread `thread`.
    Message {
        id: String,
        thread: String,
        /// The identity the customer is known by: a phone number (E.164), else an
        /// e-mail address, else `{account}:{id}`.
        from: String,
        name: Option<String>,
        /// Unix seconds (the connector's; never later than ours is taken).
        at: Option<u64>,
        /// The text, with each attachment's URL on a line of its own.
        text: String,
    },
    /// Progress of one of our deliveries.
    Status {
        id: String,
        delivery: String,
        /// `sent`, `delivered`, `read` or `failed`.
        status: String,
        error: String,
    },
    Typing {
        id: String,
        thread: String,
        on: bool,
    },
}

/// The event as it came, or why it cannot be taken (its id, if it has one).
pub type Checked = Result<Event, (String, String)>;

#[derive(Deserialize)]
struct Batch {
    events: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// Read before (a bad event's answer names it); here so it is not "unknown".
    #[serde(rename = "id")]
    _id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    thread: Option<String>,
    #[serde(default)]
    from: Option<From>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    delivery: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    on: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct From {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attachment {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    _type: Option<String>,
}

/// An id the connector gives (an event's, a thread's, a user's): 1-128 printable
/// ASCII characters without spaces.
fn token(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

fn clean(v: &str, max: usize) -> bool {
    v.chars().count() <= max && !v.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// Reads a batch: each event checked on its own (`account` names user-id identities).
pub fn parse(account: &str, body: &[u8]) -> Result<Vec<Checked>, BadBatch> {
    let b: Batch = serde_json::from_slice(body)
        .map_err(|e| BadBatch(format!("not an event batch ({{\"events\": [...]}}): {e}")))?;
    if b.events.is_empty() {
        return Err(BadBatch("events is empty".into()));
    }
    if b.events.len() > MAX_EVENTS {
        return Err(BadBatch(format!(
            "events holds {} events; at most {MAX_EVENTS} go in one batch",
            b.events.len()
        )));
    }
    Ok(b.events.into_iter().map(|v| event(account, v)).collect())
}

fn event(account: &str, v: serde_json::Value) -> Checked {
    let id = v
        .get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_default()
        .to_string();
    let bad = |why: String| Err((id.clone(), why));
    if !token(&id) {
        return bad("id must be 1-128 printable characters without spaces".into());
    }
    let r: Raw = match serde_json::from_value(v) {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    let thread = || match r.thread.as_deref() {
        Some(t) if token(t) => Ok(t.to_string()),
        Some(_) => Err("thread must be 1-128 printable characters without spaces".to_string()),
        None => Err(format!("a {} event needs its thread", r.kind)),
    };
    match r.kind.as_str() {
        "message" => {
            let thread = match thread() {
                Ok(t) => t,
                Err(e) => return bad(e),
            };
            let from = match identity(account, r.from.as_ref()) {
                Ok(f) => f,
                Err(e) => return bad(e),
            };
            let mut text = r.text.clone().unwrap_or_default();
            if !clean(&text, MAX_TEXT) {
                return bad(format!(
                    "text is at most {MAX_TEXT} characters without control characters"
                ));
            }
            if r.attachments.len() > MAX_ATTACHMENTS {
                return bad(format!("at most {MAX_ATTACHMENTS} attachments"));
            }
            for a in &r.attachments {
                let web = (a.url.starts_with("https://") || a.url.starts_with("http://"))
                    && a.url.len() <= 2048
                    && a.url.bytes().all(|b| b.is_ascii_graphic());
                if !web {
                    return bad(format!("attachments: {:?} is not an http(s) URL", a.url));
                }
                let name = a
                    .name
                    .as_deref()
                    .filter(|n| clean(n, 200) && !n.contains('\n'));
                text.push_str(&format!(
                    "\n[attachment{}] {}",
                    name.map(|n| format!(" {n}")).unwrap_or_default(),
                    a.url
                ));
            }
            let text = text.trim().to_string();
            if text.is_empty() {
                return bad("a message needs text or attachments".into());
            }
            let name = r
                .name
                .filter(|n| !n.trim().is_empty())
                .map(|n| n.trim().to_string());
            if name
                .as_deref()
                .is_some_and(|n| !clean(n, 100) || n.contains('\n'))
            {
                return bad("name is at most 100 characters on one line".into());
            }
            Ok(Event::Message {
                id,
                thread,
                from,
                name,
                at: r.at,
                text,
            })
        }
        "status" => {
            let delivery = r.delivery.unwrap_or_default();
            if !token(&delivery) {
                return bad("a status event needs the delivery it is about".into());
            }
            let status = r.status.unwrap_or_default();
            if !["sent", "delivered", "read", "failed"].contains(&status.as_str()) {
                return bad(format!(
                    "status {status:?} is not one of sent, delivered, read, failed"
                ));
            }
            let error = r.error.unwrap_or_default();
            if !clean(&error, 500) {
                return bad("error is at most 500 characters".into());
            }
            Ok(Event::Status {
                id,
                delivery,
                status,
                error,
            })
        }
        "typing" => match thread() {
            Ok(thread) => Ok(Event::Typing {
                id,
                thread,
                on: r.on.unwrap_or(true),
            }),
            Err(e) => bad(e),
        },
        k => bad(format!("type {k:?} is not one of message, status, typing")),
    }
}

/// The identity a sender is known by: their phone number, else their e-mail
/// address, else the connector's id for them within this account.
fn identity(account: &str, from: Option<&From>) -> Result<String, String> {
    let f = from.ok_or("a message needs from (phone, email or id)")?;
    if let Some(p) = f.phone.as_deref().filter(|p| !p.is_empty()) {
        return crate::store::normalize_phone(p)
            .ok_or_else(|| format!("from.phone {p:?} is not a phone number"));
    }
    if let Some(e) = f.email.as_deref().filter(|e| !e.is_empty()) {
        let ok = e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'))
            && e.bytes().all(|b| b.is_ascii_graphic());
        return if ok {
            Ok(e.to_lowercase())
        } else {
            Err(format!("from.email {e:?} is not an e-mail address"))
        };
    }
    match f.id.as_deref() {
        Some(i) if token(i) => Ok(format!("{account}:{i}")),
        Some(_) => Err("from.id must be 1-128 printable characters without spaces".into()),
        None => Err("from needs phone, email or id".into()),
    }
}

/// What the connector's callback receives for an agent's message.
pub fn callback_body(delivery: &str, thread: &str, text: &str, agent: &str, at_ms: u64) -> String {
    serde_json::json!({
        "delivery": delivery,
        "type": "message",
        "thread": thread,
        "text": text,
        "agent": agent,
        "at": at_ms,
    })
    .to_string()
}

/// What a connector's answer means: `Ok` it took the message; `Err((retry, why))`.
pub fn answer(status: u16, body: &[u8]) -> Result<(), (bool, String)> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let said: String = said.chars().filter(|c| !c.is_control()).take(300).collect();
    let why = if said.is_empty() {
        format!("the connector answered {status}")
    } else {
        format!("the connector answered {status}: {said}")
    };
    Err((status >= 500 || status == 429 || status == 408, why))
}

/// What `omnigate channel test ACCOUNT` shows: a sample event signed as a connector
/// signs it, and what the account's callback would receive for an agent's reply.
pub fn sample(secret: &str, account: &str, gateway: &str, now: u64) -> Sample {
    let event = serde_json::json!({"events": [{
        "id": format!("test-{now}"),
        "type": "message",
        "thread": "test-thread",
        "from": {"phone": "+593991234567"},
        "name": "Test Customer",
        "text": "Hello from omnigate channel test",
        "at": now,
    }]})
    .to_string();
    let callback = callback_body(
        "0123456789abcdef-2",
        "test-thread",
        "Hello, how can I help?",
        "Bob",
        now * 1000,
    );
    Sample {
        url: format!("{gateway}/api/channels/{account}/events"),
        timestamp: now,
        signature: super::signature::sign_open(secret, now, event.as_bytes()),
        callback_signature: super::signature::sign_open(secret, now, callback.as_bytes()),
        event,
        callback,
    }
}

/// See [`sample`].
#[derive(Debug, Clone)]
pub struct Sample {
    pub url: String,
    pub timestamp: u64,
    pub event: String,
    pub signature: String,
    pub callback: String,
    pub callback_signature: String,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Single quotes in a shell word: closed, escaped, reopened.
        let sh = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        writeln!(f, "# A customer's message, as your connector posts it:")?;
        writeln!(
            f,
            "curl -sS -X POST {} \\\n  -H 'Content-Type: application/json' \\\n  -H 'X-Omnigate-Timestamp: {}' \\\n  -H 'X-Omnigate-Signature: {}' \\\n  --data-binary {}",
            sh(&self.url),
            self.timestamp,
            self.signature,
            sh(&self.event)
        )?;
        writeln!(
            f,
            "# (valid for 5 minutes; the signature is HMAC-SHA256(secret, \"<timestamp>.<body>\"))"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "# What your callback_url receives when an agent replies:"
        )?;
        writeln!(f, "POST <callback_url>")?;
        writeln!(f, "Content-Type: application/json")?;
        writeln!(f, "X-Omnigate-Timestamp: {}", self.timestamp)?;
        writeln!(f, "X-Omnigate-Signature: {}", self.callback_signature)?;
        writeln!(f)?;
        writeln!(f, "{}", self.callback)?;
        writeln!(f)?;
        writeln!(
            f,
            "# Answer 2xx to take it; report progress with {{\"type\": \"status\", \"delivery\": \"0123456789abcdef-2\", \"status\": \"delivered\"}}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_each_event_on_its_own() {
        let body = br#"{"events": [
            {"id": "e-1", "type": "message", "thread": "t-42",
             "from": {"phone": "+593 99 123 4567", "id": "u-7"}, "name": " Ada ",
             "text": "Hello", "at": 1764763200,
             "attachments": [{"url": "https://cdn.example.com/a.png", "name": "a.png", "type": "image/png"}]},
            {"id": "e-2", "type": "status", "delivery": "d-1", "status": "delivered"},
            {"id": "e-3", "type": "typing", "thread": "t-42"},
            {"id": "e-4", "type": "message", "thread": "t-9", "from": {"id": "u-9"}, "text": "x"},
            {"id": "e-5", "type": "message", "thread": "t-9", "from": {"email": "Ann@Example.com"}, "text": "y"}
        ]}"#;
        let got = parse("shop", body).unwrap();
        assert_eq!(
            got[0],
            Ok(Event::Message {
                id: "e-1".into(),
                thread: "t-42".into(),
                from: "+593991234567".into(),
                name: Some("Ada".into()),
                at: Some(1764763200),
                text: "Hello\n[attachment a.png] https://cdn.example.com/a.png".into(),
            })
        );
        assert_eq!(
            got[1],
            Ok(Event::Status {
                id: "e-2".into(),
                delivery: "d-1".into(),
                status: "delivered".into(),
                error: String::new()
            })
        );
        assert_eq!(
            got[2],
            Ok(Event::Typing {
                id: "e-3".into(),
                thread: "t-42".into(),
                on: true
            })
        );
        assert!(matches!(&got[3], Ok(Event::Message { from, .. }) if from == "shop:u-9"));
        assert!(matches!(&got[4], Ok(Event::Message { from, .. }) if from == "ann@example.com"));
    }

    #[test]
    fn a_bad_event_says_what_is_wrong_and_the_others_still_count() {
        let body = br#"{"events": [
            {"id": "a", "type": "message", "from": {"id": "u"}, "text": "no thread"},
            {"id": "b", "type": "message", "thread": "t", "from": {"phone": "call me"}, "text": "x"},
            {"id": "c", "type": "message", "thread": "t", "from": {"id": "u"}, "text": ""},
            {"id": "d", "type": "status", "delivery": "x", "status": "lost"},
            {"id": "e", "type": "wave"},
            {"type": "message"},
            {"id": "f", "type": "message", "thread": "t", "from": {"id": "u"}, "text": "x", "colour": 1},
            {"id": "g", "type": "message", "thread": "t", "from": {"id": "u"}, "text": "x",
             "attachments": [{"url": "javascript:alert(1)"}]},
            {"id": "h", "type": "message", "thread": "t", "from": {"id": "u"}, "text": "fine"}
        ]}"#;
        let got = parse("shop", body).unwrap();
        let why = |i: usize| got[i].clone().unwrap_err().1;
        assert!(why(0).contains("needs its thread"), "{}", why(0));
        assert!(why(1).contains("from.phone"), "{}", why(1));
        assert!(why(2).contains("needs text"), "{}", why(2));
        assert!(why(3).contains("not one of sent"), "{}", why(3));
        assert!(why(4).contains("\"wave\""), "{}", why(4));
        assert_eq!(got[5].clone().unwrap_err().0, "");
        assert!(why(6).contains("colour"), "{}", why(6));
        assert!(why(7).contains("not an http(s) URL"), "{}", why(7));
        assert!(got[8].is_ok());
    }

    #[test]
    fn batches_that_cannot_be_read_are_refused_whole() {
        assert!(parse("a", b"[]")
            .unwrap_err()
            .0
            .contains("not an event batch"));
        assert!(parse("a", br#"{"events": []}"#)
            .unwrap_err()
            .0
            .contains("empty"));
        let many = format!("{{\"events\": [{}]}}", vec!["{}"; MAX_EVENTS + 1].join(","));
        assert!(parse("a", many.as_bytes())
            .unwrap_err()
            .0
            .contains("at most 100"));
    }

    #[test]
    fn the_sample_is_signed_as_the_gateway_checks_it() {
        let s = sample(
            "0123456789abcdef",
            "shop",
            "http://127.0.0.1:8080",
            1_764_763_200,
        );
        assert_eq!(s.url, "http://127.0.0.1:8080/api/channels/shop/events");
        super::super::signature::check_open(
            "0123456789abcdef",
            1_764_763_200,
            Some("1764763200"),
            Some(&s.signature),
            s.event.as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            parse("shop", s.event.as_bytes()).unwrap()[0],
            Ok(Event::Message { .. })
        ));
        let shown = s.to_string();
        assert!(shown.contains("X-Omnigate-Signature: sha256="), "{shown}");
        assert!(shown.contains(&s.callback), "{shown}");
    }

    #[test]
    fn the_connectors_answer_decides_retry_or_failure() {
        assert_eq!(answer(200, b""), Ok(()));
        assert_eq!(answer(204, b""), Ok(()));
        assert_eq!(
            answer(500, b"oops"),
            Err((true, "the connector answered 500: oops".into()))
        );
        assert_eq!(
            answer(422, br#"{"error": "user blocked us"}"#),
            Err((false, "the connector answered 422: user blocked us".into()))
        );
        assert_eq!(
            answer(404, b""),
            Err((false, "the connector answered 404".into()))
        );
        assert!(answer(429, b"").unwrap_err().0);
    }
}
