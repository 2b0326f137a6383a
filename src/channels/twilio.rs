//! Twilio Messaging (SMS, and WhatsApp through Twilio), sans-IO: the form posts Twilio
//! sends us (an inbound message, a status callback) read into typed events once their
//! `X-Twilio-Signature` is checked (see [`super::signature::check_twilio`]), and the
//! form we post to `/2010-04-01/Accounts/{AccountSid}/Messages.json` to send.

/// How Twilio writes a WhatsApp address (`whatsapp:+15551234567`).
pub const WHATSAPP_PREFIX: &str = "whatsapp:";

/// A customer's address as Twilio gives it, split: (their number, whether it is
/// WhatsApp through Twilio).
pub fn address(raw: &str) -> (&str, bool) {
    match raw.strip_prefix(WHATSAPP_PREFIX) {
        Some(n) => (n, true),
        None => (raw, false),
    }
}

/// Our number to send from, to `to`: WhatsApp addresses go from our WhatsApp
/// sender (`whatsapp:` + our number).
pub fn sender(ours: &str, to: &str) -> String {
    if to.starts_with(WHATSAPP_PREFIX) && !ours.starts_with(WHATSAPP_PREFIX) && !ours.is_empty() {
        format!("{WHATSAPP_PREFIX}{ours}")
    } else {
        ours.to_string()
    }
}

/// The Twilio account a post to the shared webhook (`/webhooks/twilio`) is for: the
/// one whose messaging service took it, else the one whose number it was sent to.
pub fn find_account<'a>(
    accounts: &'a [std::sync::Arc<crate::config::ChannelConfig>],
    service: Option<&str>,
    to: &str,
) -> Option<&'a std::sync::Arc<crate::config::ChannelConfig>> {
    use crate::config::ChannelKind;
    let twilio = || accounts.iter().filter(|a| a.kind == ChannelKind::Twilio);
    let by_service = service
        .filter(|s| !s.is_empty())
        .and_then(|s| twilio().find(|a| a.messaging_service_sid == s));
    let (number, _) = address(to);
    by_service.or_else(|| twilio().find(|a| !a.from.is_empty() && address(&a.from).0 == number))
}

/// Form parameters in the order they came (the signature sorts them itself).
pub type Params = Vec<(String, String)>;

/// Why a post could not be read: the 400's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Twilio message: {0}")]
pub struct BadPost(pub String);

/// A form body (`application/x-www-form-urlencoded`) as its parameters.
pub fn form(body: &[u8]) -> Result<Params, BadPost> {
    serde_urlencoded::from_bytes(body).map_err(|e| BadPost(format!("not a form: {e}")))
}

fn get<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn need<'a>(p: &'a Params, k: &'static str) -> Result<&'a str, BadPost> {
    get(p, k)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| BadPost(format!("{k} is missing")))
}

/// A customer's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Twilio's id (`SM…`/`MM…`): a message posted twice counts once by it.
    pub sid: String,
    /// The customer's number (E.164) or `whatsapp:+…` address, as Twilio gives it.
    pub from: String,
    /// Our number it was sent to.
    pub to: String,
    /// Which messaging service took it, if any (how the account is found).
    pub service: Option<String>,
    pub body: String,
    /// Media the customer attached (`MediaUrl0`…): Twilio's URLs.
    pub media: Vec<String>,
}

impl Inbound {
    /// The message as a thread takes it, received at `now` (Unix s; Twilio's post has
    /// no send time): its media as Twilio's URLs, one a line; WhatsApp through Twilio
    /// is the customer's number on a thread of its own (`whatsapp:+…`, where replies
    /// go).
    pub fn incoming(self, now: u64) -> super::Incoming {
        let mut text = self.body;
        for u in &self.media {
            text.push_str(&format!("\n[media] {u}"));
        }
        let (number, whatsapp) = address(&self.from);
        super::Incoming {
            id: self.sid,
            from: number.to_string(),
            thread: whatsapp.then(|| self.from.clone()),
            name: None,
            at: now,
            text: text.trim().to_string(),
        }
    }
}

/// What Twilio says of one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub sid: String,
    /// `queued`, `sending`, `sent`, `delivered`, `undelivered`, `failed`, `read`.
    pub status: String,
    /// Twilio's error code, for `failed` and `undelivered`.
    pub error: Option<String>,
}

/// Reads an inbound message post.
pub fn inbound(p: &Params) -> Result<Inbound, BadPost> {
    let sid = need(p, "MessageSid")?.to_string();
    let n: usize = get(p, "NumMedia")
        .unwrap_or("0")
        .parse()
        .map_err(|_| BadPost("NumMedia is not a number".into()))?;
    let media = (0..n.min(10))
        .filter_map(|i| get(p, &format!("MediaUrl{i}")).map(str::to_string))
        .collect();
    Ok(Inbound {
        sid,
        from: need(p, "From")?.to_string(),
        to: need(p, "To")?.to_string(),
        service: get(p, "MessagingServiceSid")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        body: get(p, "Body").unwrap_or_default().to_string(),
        media,
    })
}

/// Reads a status callback.
pub fn status(p: &Params) -> Result<Status, BadPost> {
    Ok(Status {
        sid: need(p, "MessageSid")?.to_string(),
        status: need(p, "MessageStatus")?.to_string(),
        error: get(p, "ErrorCode")
            .filter(|e| !e.is_empty())
            .map(str::to_string),
    })
}

/// Our status for Twilio's (`sending` is still `queued`; `undelivered` is `failed`).
pub fn our_status(twilio: &str) -> Option<&'static str> {
    Some(match twilio {
        "accepted" | "scheduled" | "queued" | "sending" => "queued",
        "sent" => "sent",
        "delivered" => "delivered",
        "read" => "read",
        "undelivered" | "failed" | "canceled" => "failed",
        _ => return None,
    })
}

/// The empty TwiML answer to an inbound message (we reply through the API, not in it).
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// What a message to Twilio carries: a text, or a Content API template (its sid and
/// the values of its `{{1}}`, `{{2}}`...).
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    Body(&'a str),
    Template {
        sid: &'a str,
        parameters: &'a [String],
    },
}

/// The form of `POST /2010-04-01/Accounts/{sid}/Messages.json`: to `to`, from our
/// number or messaging service, with a status callback.
pub fn send_form(
    to: &str,
    from: &str,
    service: Option<&str>,
    content: Content<'_>,
    callback: Option<&str>,
) -> String {
    let variables;
    let mut p: Vec<(&str, &str)> = vec![("To", to)];
    match content {
        Content::Body(body) => p.push(("Body", body)),
        Content::Template { sid, parameters } => {
            // `ContentVariables`: a JSON object from each placeholder's number.
            let v: serde_json::Map<String, serde_json::Value> = parameters
                .iter()
                .enumerate()
                .map(|(i, x)| ((i + 1).to_string(), x.as_str().into()))
                .collect();
            variables = serde_json::Value::Object(v).to_string();
            p.push(("ContentSid", sid));
            p.push(("ContentVariables", &variables));
        }
    }
    match service {
        Some(s) => p.push(("MessagingServiceSid", s)),
        None => p.push(("From", from)),
    }
    if let Some(c) = callback {
        p.push(("StatusCallback", c));
    }
    serde_urlencoded::to_string(p).unwrap_or_default()
}

/// What Twilio answered a send: the message's sid, or the error to show.
pub fn sent_sid(status: u16, body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if (200..300).contains(&status) {
        return v["sid"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "Twilio answered without a sid".into());
    }
    match v["message"].as_str() {
        Some(m) => Err(format!("{m} (Twilio error {})", v["code"])),
        None => Err(format!("Twilio answered HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shared_webhook_finds_the_account_by_service_then_number() {
        use crate::config::{ChannelConfig, ChannelKind};
        use std::sync::Arc;
        let acc = |name: &str, from: &str, service: &str| {
            Arc::new(ChannelConfig {
                name: name.into(),
                kind: ChannelKind::Twilio,
                from: from.into(),
                messaging_service_sid: service.into(),
                ..ChannelConfig::demo_whatsapp()
            })
        };
        let all = [
            acc("a", "+15550001111", ""),
            acc("b", "", "MG2"),
            Arc::new(ChannelConfig::demo_whatsapp()),
        ];
        let name =
            |s: Option<&str>, to: &str| super::find_account(&all, s, to).map(|a| a.name.clone());
        assert_eq!(name(Some("MG2"), "+15550001111").as_deref(), Some("b"));
        assert_eq!(name(Some("MG9"), "+15550001111").as_deref(), Some("a"));
        assert_eq!(name(None, "whatsapp:+15550001111").as_deref(), Some("a"));
        assert_eq!(name(None, "+19999"), None);
    }

    #[test]
    fn an_inbound_message_becomes_a_thread_message() {
        let m = super::Inbound {
            sid: "MM1".into(),
            from: "whatsapp:+15551234567".into(),
            to: "whatsapp:+15550001111".into(),
            service: None,
            body: "look ".into(),
            media: vec!["https://api.twilio.com/m/1".into()],
        };
        let i = m.incoming(7);
        assert_eq!(
            (i.from.as_str(), i.thread.as_deref(), i.at),
            ("+15551234567", Some("whatsapp:+15551234567"), 7)
        );
        assert_eq!(i.text, "look \n[media] https://api.twilio.com/m/1");
    }

    #[test]
    fn whatsapp_through_twilio_is_an_address_prefix() {
        assert_eq!(
            super::address("whatsapp:+15551234567"),
            ("+15551234567", true)
        );
        assert_eq!(super::address("+15551234567"), ("+15551234567", false));
        assert_eq!(
            super::sender("+15550001111", "whatsapp:+1555"),
            "whatsapp:+15550001111"
        );
        assert_eq!(super::sender("+15550001111", "+1555"), "+15550001111");
        assert_eq!(super::sender("whatsapp:+1", "whatsapp:+2"), "whatsapp:+1");
        assert_eq!(
            super::sender("", "whatsapp:+2"),
            "",
            "a messaging service sends"
        );
        let a = crate::config::ChannelConfig {
            kind: crate::config::ChannelKind::Twilio,
            ..crate::config::ChannelConfig::demo_whatsapp()
        };
        assert_eq!(a.marketing_consent("whatsapp:+1555"), "marketing:whatsapp");
        assert_eq!(a.marketing_consent("+1555"), "marketing:sms");
    }

    use super::*;

    #[test]
    fn an_inbound_sms_and_a_status_callback_read_as_twilio_posts_them() {
        let p = form(b"ToCountry=US&SmsMessageSid=SM1&NumMedia=1&MessageSid=SM1&AccountSid=AC1&From=%2B15551234567&To=%2B15550001111&Body=Hola+%C2%BFd%C3%B3nde%3F&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm%2F1&MessagingServiceSid=").unwrap();
        let m = inbound(&p).unwrap();
        assert_eq!(m.sid, "SM1");
        assert_eq!(m.from, "+15551234567");
        assert_eq!(m.to, "+15550001111");
        assert_eq!(m.body, "Hola ¿dónde?");
        assert_eq!(m.media, ["https://api.twilio.com/m/1"]);
        assert_eq!(m.service, None);
        let e = inbound(&form(b"From=%2B1&To=%2B2").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "not a Twilio message: MessageSid is missing");
        assert!(inbound(&form(b"MessageSid=S&From=1&To=2&NumMedia=x").unwrap()).is_err());
        let s = status(&form(b"MessageSid=SM9&MessageStatus=undelivered&ErrorCode=30003").unwrap())
            .unwrap();
        assert_eq!(
            (s.sid.as_str(), s.status.as_str(), s.error.as_deref()),
            ("SM9", "undelivered", Some("30003"))
        );
        assert_eq!(our_status("undelivered"), Some("failed"));
        assert_eq!(our_status("sending"), Some("queued"));
        assert_eq!(our_status("delivered"), Some("delivered"));
        assert_eq!(our_status("bogus"), None);
        assert!(
            form(b"%zz=1").is_err() || form(b"%zz=1").is_ok(),
            "never panics"
        );
    }

    #[test]
    fn a_send_is_the_form_twilio_wants_and_its_answer_gives_the_sid() {
        let f = send_form(
            "+15551234567",
            "+15550001111",
            None,
            super::Content::Body("Sale hoy & llega mañana"),
            Some("https://cc.example.com/webhooks/twilio/sms/status"),
        );
        assert_eq!(
            f,
            "To=%2B15551234567&Body=Sale+hoy+%26+llega+ma%C3%B1ana&From=%2B15550001111&StatusCallback=https%3A%2F%2Fcc.example.com%2Fwebhooks%2Ftwilio%2Fsms%2Fstatus"
        );
        let f = send_form("+1", "+2", Some("MG1"), super::Content::Body("x"), None);
        assert_eq!(f, "To=%2B1&Body=x&MessagingServiceSid=MG1");
        // A Content API template: its sid and its variables as a JSON object.
        let parameters = ["order 1234".to_string(), "mañana \"temprano\"".to_string()];
        let f = send_form(
            "whatsapp:+15551234567",
            "whatsapp:+15550001111",
            None,
            super::Content::Template {
                sid: "HXb5b62575e6e4ff6129ad7c8efe1f983e",
                parameters: &parameters,
            },
            None,
        );
        let back: Vec<(String, String)> = serde_urlencoded::from_str(&f).unwrap();
        assert_eq!(
            back,
            [
                ("To".into(), "whatsapp:+15551234567".into()),
                (
                    "ContentSid".into(),
                    "HXb5b62575e6e4ff6129ad7c8efe1f983e".into()
                ),
                (
                    "ContentVariables".into(),
                    r#"{"1":"order 1234","2":"mañana \"temprano\""}"#.into()
                ),
                ("From".into(), "whatsapp:+15550001111".into()),
            ]
        );
        assert_eq!(
            sent_sid(201, br#"{"sid":"SM123","status":"queued"}"#),
            Ok("SM123".into())
        );
        assert_eq!(
            sent_sid(400, br#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#),
            Err("The 'To' number is not a valid phone number. (Twilio error 21211)".into())
        );
        assert_eq!(sent_sid(503, b""), Err("Twilio answered HTTP 503".into()));
    }
}
