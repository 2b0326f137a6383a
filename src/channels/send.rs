//! Sends through a provider's API (the driver: bytes over HTTP; what to send and
//! what the answer means are [`super::whatsapp`]'s). One attempt per call; the caller
//! retries what is worth retrying.

use super::whatsapp::{self, Outgoing};
use crate::config::ChannelConfig;
use std::time::Duration;

/// Why a send did not go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The account cannot send yet (no token or number configured): the message stays
    /// queued, saying so.
    #[error("{0}")]
    NotConfigured(String),
    /// The provider refused it (4xx): final.
    #[error("{0}")]
    Refused(String),
    /// The provider failed or did not answer (5xx, time-out, connection): retried.
    #[error("{0}")]
    Retry(String),
}

/// Whom one outbound message is for.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The customer's address (a phone number), or an open channel's thread.
    pub to: &'a str,
    /// Our stable id for the message (an open channel's `delivery`: the same on
    /// every attempt).
    pub delivery: &'a str,
    /// The agent's name as the customer sees it.
    pub agent: &'a str,
}

/// Sends `m` through `a`'s provider, retried as [`super::retry_after`] says while the
/// provider fails or does not answer; the provider's id for it.
/// `on_retry(attempt, why)` hears each failed attempt that will be tried again (the
/// agent sees the message waiting, and why).
pub async fn deliver(
    a: &ChannelConfig,
    e: Envelope<'_>,
    m: &Outgoing,
    on_retry: &(dyn Fn(u32, &str) + Send + Sync),
) -> Result<String, SendError> {
    use crate::config::ChannelKind;
    let mut attempt = 1;
    loop {
        let r = match (a.kind, m) {
            (ChannelKind::Whatsapp, _) => whatsapp(a, e.to, m).await,
            (ChannelKind::Twilio, _) => twilio(a, e.to, m).await,
            (ChannelKind::Open, Outgoing::Text { body, .. }) => open(a, e, body).await,
            (ChannelKind::Email, _) => Err(SendError::Refused(
                "an e-mail reply goes through email::smtp::reply".into(),
            )),
            (ChannelKind::Open, Outgoing::Template { .. }) => Err(SendError::Refused(
                "templates are for WhatsApp threads".into(),
            )),
        };
        match (r, super::retry_after(attempt, a.send_attempts)) {
            (Err(SendError::Retry(why)), Some(wait)) => {
                tracing::warn!(account = %a.name, attempt, error = %why, "send failed; retrying");
                on_retry(attempt, &why);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            (r, _) => return r,
        }
    }
}

/// Sends the gateway's own text (not an agent's: no name, no message of a thread) to
/// `to` through `a`, retried as [`deliver`] does; `delivery` is our id for it.
pub async fn system_text(
    a: &ChannelConfig,
    to: &str,
    delivery: &str,
    body: &str,
) -> Result<String, SendError> {
    let m = Outgoing::Text {
        body: body.to_string(),
        reply_to: None,
    };
    let e = Envelope {
        to,
        delivery,
        agent: "",
    };
    deliver(a, e, &m, &|_, _| {}).await
}

/// `POST {api_base}/{api_version}/{phone_number_id}/messages` with the Bearer token;
/// the provider's id for the message.
pub async fn whatsapp(a: &ChannelConfig, to: &str, m: &Outgoing) -> Result<String, SendError> {
    if a.access_token.is_empty() || a.phone_number_id.is_empty() {
        return Err(SendError::NotConfigured(format!(
            "channel {} has no access_token and phone_number_id yet: configure them to send",
            a.name
        )));
    }
    let body = whatsapp::send_body(to, m).map_err(|e| SendError::Refused(e.to_string()))?;
    let url = format!(
        "{}/{}/{}/messages",
        a.api_base(),
        a.api_version,
        a.phone_number_id
    );
    let req = client(a)
        .post(&url)
        .insert_header(("Authorization", format!("Bearer {}", a.access_token)))
        .insert_header(("Content-Type", "application/json"));
    let (status, bytes) = exchange(req, Some(body.to_string()), "the Graph API", 64 * 1024).await?;
    whatsapp::sent_id(status, &bytes).map_err(|why| refusal(status, why))
}

/// `POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json` (Basic auth with
/// the SID and token; from our number or messaging service; Twilio calls back with
/// statuses at `{public_url}/webhooks/twilio/{name}/status`); the message's sid.
pub async fn twilio(a: &ChannelConfig, to: &str, m: &Outgoing) -> Result<String, SendError> {
    use super::twilio::Content;
    use base64::Engine;
    let content = match m {
        Outgoing::Text { body, .. } if body.trim().is_empty() => {
            return Err(SendError::Refused("the message is empty".into()));
        }
        // Twilio's own limit for one message's body.
        Outgoing::Text { body, .. } if body.chars().count() > 1600 => {
            return Err(SendError::Refused(format!(
                "an SMS holds at most 1600 characters; this one has {}",
                body.chars().count()
            )));
        }
        Outgoing::Text { body, .. } => Content::Body(body),
        Outgoing::Template {
            name, parameters, ..
        } => match a.templates.iter().find(|t| &t.name == name) {
            Some(t) if !t.content_sid.is_empty() => Content::Template {
                sid: &t.content_sid,
                parameters,
            },
            _ => {
                return Err(SendError::Refused(format!(
                    "channel {} has no Content API template {name:?} (content_sid)",
                    a.name
                )))
            }
        },
    };
    let callback = format!("{}/webhooks/twilio/{}/status", a.public_url, a.name);
    let service = (!a.messaging_service_sid.is_empty()).then_some(a.messaging_service_sid.as_str());
    let from = super::twilio::sender(&a.from, to);
    let form = super::twilio::send_form(to, &from, service, content, Some(&callback));
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        a.api_base(),
        a.account_sid
    );
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", a.account_sid, a.auth_token));
    let req = client(a)
        .post(&url)
        .insert_header(("Authorization", format!("Basic {auth}")))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
    let (status, bytes) = exchange(req, Some(form), "Twilio", 64 * 1024).await?;
    super::twilio::sent_sid(status, &bytes).map_err(|why| refusal(status, why))
}

/// `POST {callback_url}` of an open channel: the message, signed as the connector's
/// events are; our delivery id is its id.
pub async fn open(a: &ChannelConfig, e: Envelope<'_>, text: &str) -> Result<String, SendError> {
    if a.callback_url.is_empty() {
        return Err(SendError::NotConfigured(format!(
            "channel {} has no callback_url yet: configure it to send",
            a.name
        )));
    }
    let at = crate::clock::unix_millis();
    let body = super::open::callback_body(e.delivery, e.to, text, e.agent, at);
    let ts = at / 1000;
    let req = client(a)
        .post(&a.callback_url)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Omnigate-Timestamp", ts.to_string()))
        .insert_header((
            "X-Omnigate-Signature",
            super::signature::sign_open(&a.secret, ts, body.as_bytes()),
        ));
    let (status, bytes) = exchange(req, Some(body), "the connector", 16 * 1024).await?;
    match super::open::answer(status, &bytes) {
        Ok(()) => Ok(e.delivery.to_string()),
        Err((true, why)) => Err(SendError::Retry(why)),
        Err((false, why)) => Err(SendError::Refused(why)),
    }
}

/// A WhatsApp media for an agent: its id looked up at the Graph API
/// (`GET {api_base}/{api_version}/{media_id}`, Bearer token), then downloaded from
/// the address it gives (the same token), at most [`whatsapp::MAX_MEDIA`] bytes.
/// (type, bytes).
pub async fn whatsapp_media(
    a: &ChannelConfig,
    media_id: &str,
) -> Result<(String, bytes::Bytes), SendError> {
    if a.access_token.is_empty() {
        return Err(SendError::NotConfigured(format!(
            "channel {} has no access_token: media cannot be fetched",
            a.name
        )));
    }
    if !whatsapp::media_id_ok(media_id) {
        return Err(SendError::Refused("not a media id".into()));
    }
    let bearer = format!("Bearer {}", a.access_token);
    let url = format!("{}/{}/{media_id}", a.api_base(), a.api_version);
    let req = client(a)
        .get(&url)
        .insert_header(("Authorization", bearer.as_str()));
    let (status, meta) = exchange(req, None, "the Graph API", 64 * 1024).await?;
    let (download, mime) = whatsapp::media_info(status, &meta).map_err(SendError::Refused)?;
    let req = client(a)
        .get(&download)
        .insert_header(("Authorization", bearer.as_str()));
    let (status, bytes) = exchange(req, None, "the media download", whatsapp::MAX_MEDIA).await?;
    if !(200..300).contains(&status) {
        return Err(SendError::Refused(format!(
            "the media download answered {status}"
        )));
    }
    Ok((mime, bytes))
}

/// A client whose requests time out as the account says (`send_timeout_secs`).
fn client(a: &ChannelConfig) -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(a.send_timeout_secs))
        .finish()
}

/// One request to a provider (`who`, for the reasons) and its answer: the status and
/// at most `limit` bytes. No answer, or one cut short or over `limit`, is worth a
/// retry.
async fn exchange(
    req: awc::ClientRequest,
    body: Option<String>,
    who: &str,
    limit: usize,
) -> Result<(u16, bytes::Bytes), SendError> {
    let sent = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    };
    let mut r = sent.map_err(|e| SendError::Retry(format!("{who} did not answer: {e}")))?;
    let bytes = r.body().limit(limit).await.map_err(|e| {
        SendError::Retry(format!("{who}'s answer was cut or over {limit} bytes: {e}"))
    })?;
    Ok((r.status().as_u16(), bytes))
}

/// A provider's refusal: worth a retry when it failed (5xx) or asked us to slow
/// down (429); final otherwise.
fn refusal(status: u16, why: String) -> SendError {
    if status >= 500 || status == 429 {
        SendError::Retry(why)
    } else {
        SendError::Refused(why)
    }
}

/// `POST [bot] url`: a customer's message for an external bot, signed as an open
/// channel's callback is (`X-Omnigate-Timestamp`, `X-Omnigate-Signature`), retried
/// after 1, 2 and 4 s while the bot fails (5xx, 429) or does not answer (10 s each).
pub async fn to_bot(bot: &crate::bot::BotConfig, body: String) -> Result<(), SendError> {
    let mut attempt = 1;
    loop {
        let ts = crate::clock::unix_secs();
        let req = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish()
            .post(&bot.url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Omnigate-Timestamp", ts.to_string()))
            .insert_header((
                "X-Omnigate-Signature",
                super::signature::sign_open(&bot.secret, ts, body.as_bytes()),
            ));
        let r = match exchange(req, Some(body.clone()), "the bot", 16 * 1024).await {
            Ok((status, bytes)) => super::open::answer(status, &bytes).map_err(|(again, why)| {
                let why = why.replace("the connector", "the bot");
                if again {
                    SendError::Retry(why)
                } else {
                    SendError::Refused(why)
                }
            }),
            Err(e) => Err(e),
        };
        match (r, super::retry_after(attempt, 4)) {
            (Err(SendError::Retry(why)), Some(wait)) => {
                tracing::warn!(attempt, %why, "the bot did not take a message; trying again");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            (r, _) => return r,
        }
    }
}
