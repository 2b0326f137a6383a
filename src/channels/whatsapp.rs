//! WhatsApp Cloud API, sans-IO: the webhook notifications Meta posts (after their
//! signature is checked, see [`super::signature`]) read into typed events, and the
//! bodies of the sends we post to the Graph API's `/{version}/{phone_number_id}/messages`.
//! The formats follow Meta's reference (webhooks `messages` field; Cloud API
//! messages endpoint); unknown fields are ignored, as Meta adds them over time.

use serde::Deserialize;

/// The longest text a WhatsApp message may carry (Cloud API reference).
pub const MAX_TEXT: usize = 4096;

/// The customer-service window: free-form replies within this long of the customer's
/// last message; templates after.
pub const WINDOW_SECS: u64 = 24 * 3600;

/// What one notification tells us, in the order Meta listed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(Inbound),
    Status(Status),
}

/// A customer's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The business number it was sent to (which account).
    pub phone_number_id: String,
    /// Meta's message id (`wamid.…`): a message delivered twice counts once by it.
    pub id: String,
    /// The customer's number in E.164 (`+` and digits).
    pub from: String,
    /// Their WhatsApp profile name, if Meta sent it.
    pub name: Option<String>,
    /// Unix seconds.
    pub timestamp: u64,
    pub body: Body,
    /// The message of ours (or theirs) this one answers.
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Text(String),
    /// An image, audio, video, document or sticker: downloaded through the Graph
    /// media endpoint by its id.
    Media {
        kind: String,
        media_id: String,
        mime_type: String,
        caption: Option<String>,
        filename: Option<String>,
    },
    /// A kind we show by name only (location, contacts, reaction, interactive...).
    Other(String),
}

impl Body {
    /// The line the agent reads.
    pub fn text(&self) -> String {
        match self {
            Body::Text(t) => t.clone(),
            Body::Media {
                kind,
                caption,
                filename,
                media_id,
                ..
            } => {
                // The id names the media for the agent's download (see `has_media`).
                let what = filename.as_deref().unwrap_or(kind);
                match caption {
                    Some(c) if !c.is_empty() => format!("[{what} media {media_id}] {c}"),
                    _ => format!("[{what} media {media_id}]"),
                }
            }
            Body::Other(kind) => format!("[{kind}]"),
        }
    }
}

/// Whether a thread message's text (as [`Body::text`] writes it) carries the media
/// `id`: the only media of a thread its agent may download.
pub fn has_media(text: &str, id: &str) -> bool {
    media_id_ok(id) && text.contains(&format!(" media {id}]"))
}

/// A media id as Meta gives them (digits; letters allowed), never a path.
pub fn media_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Media at most this big are downloaded for an agent (WhatsApp's images are 5 MB,
/// audio and video 16 MB).
pub const MAX_MEDIA: usize = 16 * 1024 * 1024;

/// What the Graph API says of a media id (`GET /{version}/{media-id}`): where to
/// download it (with the same token, within five minutes) and its type.
pub fn media_info(status: u16, body: &[u8]) -> Result<(String, String), String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("the Graph API answered {status} without JSON"))?;
    if !(200..300).contains(&status) {
        let why = v["error"]["message"].as_str().unwrap_or("no reason given");
        return Err(format!("the Graph API answered {status}: {why}"));
    }
    let url = v["url"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let mime = v["mime_type"]
        .as_str()
        .unwrap_or("application/octet-stream");
    let mime_ok = mime.len() <= 100
        && mime.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && (a.to_string() + b)
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        });
    match url {
        Some(u) => Ok((
            u.to_string(),
            if mime_ok {
                mime.to_string()
            } else {
                "application/octet-stream".into()
            },
        )),
        None => Err("the Graph API gave no download url".into()),
    }
}

/// Where one of our messages has got to.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub phone_number_id: String,
    /// Our message's `wamid.…`.
    pub id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub recipient: String,
    pub timestamp: u64,
    /// Why it failed: `code title` of each error Meta gave.
    pub error: Option<String>,
}

/// Why a notification could not be read: the 400's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a WhatsApp notification: {0}")]
pub struct BadNotification(pub String);

#[derive(Deserialize)]
struct Notification {
    object: String,
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    value: Value,
}

#[derive(Deserialize)]
struct Value {
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<RawMessage>,
    #[serde(default)]
    statuses: Vec<RawStatus>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    from: String,
    id: String,
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    context: Option<Context>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawMedia {
    id: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Deserialize)]
struct RawStatus {
    id: String,
    status: String,
    timestamp: String,
    recipient_id: String,
    #[serde(default)]
    errors: Vec<RawError>,
}

#[derive(Deserialize)]
struct RawError {
    code: i64,
    #[serde(default)]
    title: String,
}

const MEDIA: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

fn seconds(field: &str, v: &str) -> Result<u64, BadNotification> {
    v.parse()
        .map_err(|_| BadNotification(format!("{field} is not Unix seconds: {v:?}")))
}

/// E.164 from WhatsApp's digits-only ids.
fn e164(wa_id: &str) -> Result<String, BadNotification> {
    let d = wa_id.trim_start_matches('+');
    if d.is_empty() || d.len() > 15 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadNotification(format!("not a phone number: {wa_id:?}")));
    }
    Ok(format!("+{d}"))
}

/// Reads a notification's body (already authenticated) into its events.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, BadNotification> {
    let n: Notification =
        serde_json::from_slice(body).map_err(|e| BadNotification(e.to_string()))?;
    if n.object != "whatsapp_business_account" {
        return Err(BadNotification(format!(
            "object is {:?}, not \"whatsapp_business_account\"",
            n.object
        )));
    }
    let mut out = Vec::new();
    for change in n.entry.into_iter().flat_map(|e| e.changes) {
        if change.field != "messages" {
            continue;
        }
        let v = change.value;
        let pid = v.metadata.phone_number_id;
        for m in v.messages {
            let name = v
                .contacts
                .iter()
                .find(|c| c.wa_id == m.from)
                .and_then(|c| c.profile.as_ref()?.name.clone())
                .filter(|n| !n.trim().is_empty());
            let body = match m.kind.as_str() {
                "text" => Body::Text(
                    m.text
                        .ok_or_else(|| BadNotification("a text message without text.body".into()))?
                        .body,
                ),
                k if MEDIA.contains(&k) => {
                    let raw = m.rest.get(k).cloned().ok_or_else(|| {
                        BadNotification(format!("a {k} message without its {k} object"))
                    })?;
                    let r: RawMedia = serde_json::from_value(raw)
                        .map_err(|e| BadNotification(format!("{k}: {e}")))?;
                    Body::Media {
                        kind: k.to_string(),
                        media_id: r.id,
                        mime_type: r.mime_type,
                        caption: r.caption,
                        filename: r.filename,
                    }
                }
                k => Body::Other(k.to_string()),
            };
            out.push(Event::Message(Inbound {
                phone_number_id: pid.clone(),
                from: e164(&m.from)?,
                id: m.id,
                name,
                timestamp: seconds("timestamp", &m.timestamp)?,
                body,
                reply_to: m.context.and_then(|c| c.id),
            }));
        }
        for s in v.statuses {
            let error = (!s.errors.is_empty()).then(|| {
                s.errors
                    .iter()
                    .map(|e| format!("{} {}", e.code, e.title).trim().to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            out.push(Event::Status(Status {
                phone_number_id: pid.clone(),
                id: s.id,
                status: s.status,
                recipient: e164(&s.recipient_id)?,
                timestamp: seconds("timestamp", &s.timestamp)?,
                error,
            }));
        }
    }
    Ok(out)
}

/// What an agent (or a notification) sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Text {
        body: String,
        /// Quote this message (`context.message_id`).
        reply_to: Option<String>,
    },
    Template {
        name: String,
        language: String,
        /// The body's `{{1}}`, `{{2}}`...
        parameters: Vec<String>,
    },
}

impl Outgoing {
    /// An agent's thread message as it goes out: its template (`{name, language,
    /// parameters}`, as the message records it) if it has one, else its text.
    pub fn of(text: &str, template: Option<&serde_json::Value>) -> Outgoing {
        match template.filter(|t| t.is_object()) {
            Some(t) => Outgoing::Template {
                name: t["name"].as_str().unwrap_or_default().to_string(),
                language: t["language"].as_str().unwrap_or_default().to_string(),
                parameters: serde_json::from_value(t["parameters"].clone()).unwrap_or_default(),
            },
            None => Outgoing::Text {
                body: text.to_string(),
                reply_to: None,
            },
        }
    }
}

/// Why a send was refused before it left: the 4xx's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    #[error("a WhatsApp message holds at most {MAX_TEXT} characters; this one has {0}")]
    TooLong(usize),
    #[error("the message is empty")]
    Empty,
    #[error("a template needs a name and a language code")]
    TemplateIncomplete,
}

/// The JSON body of `POST /{version}/{phone_number_id}/messages` to `to` (E.164).
pub fn send_body(to: &str, m: &Outgoing) -> Result<serde_json::Value, SendRefused> {
    let to = to.trim_start_matches('+');
    let v = match m {
        Outgoing::Text { body, reply_to } => {
            let n = body.chars().count();
            if body.trim().is_empty() {
                return Err(SendRefused::Empty);
            }
            if n > MAX_TEXT {
                return Err(SendRefused::TooLong(n));
            }
            let mut v = serde_json::json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": false, "body": body},
            });
            if let Some(id) = reply_to {
                v["context"] = serde_json::json!({"message_id": id});
            }
            v
        }
        Outgoing::Template {
            name,
            language,
            parameters,
        } => {
            if name.trim().is_empty() || language.trim().is_empty() {
                return Err(SendRefused::TemplateIncomplete);
            }
            let mut t = serde_json::json!({"name": name, "language": {"code": language}});
            if !parameters.is_empty() {
                let p: Vec<_> = parameters
                    .iter()
                    .map(|p| serde_json::json!({"type": "text", "text": p}))
                    .collect();
                t["components"] = serde_json::json!([{"type": "body", "parameters": p}]);
            }
            serde_json::json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": t,
            })
        }
    };
    Ok(v)
}

/// What the Graph API answered a send: our message's id, or the error to show.
pub fn sent_id(status: u16, body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if (200..300).contains(&status) {
        return v["messages"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "the Graph API answered without a message id".to_string());
    }
    let e = &v["error"];
    match e["message"].as_str() {
        Some(m) => Err(format!("{} (code {})", m, e["code"])),
        None => Err(format!("the Graph API answered HTTP {status}")),
    }
}

/// The free-form reply window after the customer's last message at `last_inbound`
/// (Unix seconds): seconds left at `now`, `None` once closed (templates only).
pub fn window_left(last_inbound: Option<u64>, now: u64) -> Option<u64> {
    let end = last_inbound? + WINDOW_SECS;
    (now < end).then(|| end - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification as Meta sends it: two entries, a text with the profile name, an
    /// image with a caption, a reply, a status with an error, and a change of another
    /// field (ignored).
    const NOTE: &str = r#"{
      "object": "whatsapp_business_account",
      "entry": [
        {"id": "WABA1", "changes": [
          {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "contacts": [{"profile": {"name": "Ada Lovelace"}, "wa_id": "593991234567"}],
            "messages": [
              {"from": "593991234567", "id": "wamid.A", "timestamp": "1764700000", "type": "text",
               "text": {"body": "Hola, mi pedido 1234"}},
              {"from": "593991234567", "id": "wamid.B", "timestamp": "1764700005", "type": "image",
               "image": {"id": "MEDIA9", "mime_type": "image/jpeg", "sha256": "x", "caption": "la factura"},
               "context": {"from": "15550001111", "id": "wamid.OURS"}}
            ]}},
          {"field": "account_update", "value": {"metadata": {"phone_number_id": "PN1"}}}
        ]},
        {"id": "WABA1", "changes": [
          {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "statuses": [
              {"id": "wamid.OURS", "status": "failed", "timestamp": "1764700010", "recipient_id": "593991234567",
               "errors": [{"code": 131047, "title": "Re-engagement message"}]},
              {"id": "wamid.OURS2", "status": "read", "timestamp": "1764700011", "recipient_id": "593991234567"}
            ]}}
        ]}
      ]
    }"#;

    #[test]
    fn media_info_gives_the_download_and_a_safe_type() {
        let ok = br#"{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/x?mid=1","mime_type":"image/jpeg","sha256":"ab","file_size":10,"id":"MEDIA9"}"#;
        assert_eq!(
            media_info(200, ok),
            Ok((
                "https://lookaside.fbsbx.com/x?mid=1".into(),
                "image/jpeg".into()
            ))
        );
        let odd = br#"{"url":"https://x/y","mime_type":"text/html; charset=utf-8<script>"}"#;
        assert_eq!(media_info(200, odd).unwrap().1, "application/octet-stream");
        let gone = br#"{"error":{"message":"Unsupported get request.","code":100}}"#;
        assert!(media_info(400, gone)
            .unwrap_err()
            .contains("Unsupported get request"));
        assert!(media_info(200, br#"{"url":"file:///etc/passwd"}"#).is_err());
    }

    #[test]
    fn a_notification_reads_into_its_events_in_order() {
        let ev = parse(NOTE.as_bytes()).unwrap();
        assert_eq!(ev.len(), 4);
        let Event::Message(a) = &ev[0] else { panic!() };
        assert_eq!(a.from, "+593991234567");
        assert_eq!(a.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(a.id, "wamid.A");
        assert_eq!(a.timestamp, 1_764_700_000);
        assert_eq!(a.body, Body::Text("Hola, mi pedido 1234".into()));
        assert_eq!(a.phone_number_id, "PN1");
        let Event::Message(b) = &ev[1] else { panic!() };
        assert_eq!(b.body.text(), "[image media MEDIA9] la factura");
        assert!(has_media(&b.body.text(), "MEDIA9"));
        assert!(!has_media(&b.body.text(), "MEDIA") && !has_media("[x media ../a]", "../a"));
        assert_eq!(b.reply_to.as_deref(), Some("wamid.OURS"));
        let Body::Media {
            media_id,
            mime_type,
            ..
        } = &b.body
        else {
            panic!()
        };
        assert_eq!(
            (media_id.as_str(), mime_type.as_str()),
            ("MEDIA9", "image/jpeg")
        );
        let Event::Status(f) = &ev[2] else { panic!() };
        assert_eq!(f.status, "failed");
        assert_eq!(f.error.as_deref(), Some("131047 Re-engagement message"));
        let Event::Status(r) = &ev[3] else { panic!() };
        assert_eq!((r.status.as_str(), r.error.as_ref()), ("read", None));
    }

    #[test]
    fn a_bad_notification_says_what_is_wrong() {
        let e = |b: &str| parse(b.as_bytes()).unwrap_err().0;
        assert!(e("{").contains("EOF"), "{}", e("{"));
        assert!(e(r#"{"object":"page","entry":[]}"#).contains("\"page\""));
        assert!(e(r#"{"entry":[]}"#).contains("missing field `object`"));
        let no_from = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"w","timestamp":"1","type":"text","text":{"body":"x"}}]}}]}]}"#;
        assert!(
            e(no_from).contains("missing field `from`"),
            "{}",
            e(no_from)
        );
        let bad_phone = no_from.replace(r#""id":"w""#, r#""from":"12ab","id":"w""#);
        assert!(
            e(&bad_phone).contains("not a phone number"),
            "{}",
            e(&bad_phone)
        );
        let bad_time = no_from.replace(
            r#""id":"w","timestamp":"1""#,
            r#""from":"1","id":"w","timestamp":"soon""#,
        );
        assert!(e(&bad_time).contains("Unix seconds"), "{}", e(&bad_time));
        let no_text = no_from.replace(
            r#""id":"w","timestamp":"1","type":"text","text":{"body":"x"}"#,
            r#""from":"1","id":"w","timestamp":"1","type":"text""#,
        );
        assert!(e(&no_text).contains("text.body"), "{}", e(&no_text));
    }

    #[test]
    fn sends_are_built_as_the_graph_api_wants_them() {
        let t = send_body(
            "+593991234567",
            &Outgoing::Text {
                body: "Su pedido sale hoy".into(),
                reply_to: Some("wamid.A".into()),
            },
        )
        .unwrap();
        assert_eq!(
            t,
            serde_json::json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": "593991234567", "type": "text",
                "text": {"preview_url": false, "body": "Su pedido sale hoy"},
                "context": {"message_id": "wamid.A"}})
        );
        let tpl = send_body(
            "+593991234567",
            &Outgoing::Template {
                name: "order_update".into(),
                language: "es".into(),
                parameters: vec!["1234".into()],
            },
        )
        .unwrap();
        assert_eq!(tpl["template"]["name"], "order_update");
        assert_eq!(tpl["template"]["language"]["code"], "es");
        assert_eq!(
            tpl["template"]["components"][0]["parameters"][0],
            serde_json::json!({"type": "text", "text": "1234"})
        );
        let long = "é".repeat(MAX_TEXT + 1);
        let e = send_body(
            "+1",
            &Outgoing::Text {
                body: long,
                reply_to: None,
            },
        )
        .unwrap_err();
        assert_eq!(e, SendRefused::TooLong(MAX_TEXT + 1));
        assert!(e.to_string().contains("4096"), "{e}");
        // Exactly the limit, counted in characters (not bytes), goes.
        assert!(send_body(
            "+1",
            &Outgoing::Text {
                body: "é".repeat(MAX_TEXT),
                reply_to: None
            }
        )
        .is_ok());
    }

    #[test]
    fn the_graph_api_answer_gives_the_id_or_the_reason() {
        let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"593991234567","wa_id":"593991234567"}],"messages":[{"id":"wamid.NEW"}]}"#;
        assert_eq!(sent_id(200, ok), Ok("wamid.NEW".into()));
        let err = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"fbtrace_id":"A"}}"#;
        assert_eq!(
            sent_id(400, err),
            Err("(#131047) Re-engagement message (code 131047)".into())
        );
        assert_eq!(
            sent_id(502, b"<html>"),
            Err("the Graph API answered HTTP 502".into())
        );
    }

    #[test]
    fn the_window_is_a_day_from_the_last_customer_message() {
        assert_eq!(window_left(None, 100), None);
        assert_eq!(window_left(Some(1000), 1000), Some(WINDOW_SECS));
        assert_eq!(window_left(Some(1000), 1000 + WINDOW_SECS - 1), Some(1));
        assert_eq!(window_left(Some(1000), 1000 + WINDOW_SECS), None);
    }
}
