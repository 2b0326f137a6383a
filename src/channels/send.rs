//! Sends through a provider's API (the driver: bytes over HTTP; what to send and
//! what the answer means are [`super::whatsapp`]'s). One attempt per call; the caller
//! retries what is worth retrying.

use super::whatsapp::{self, Outgoing};
use crate::config::ChannelConfig;
use std::time::Duration;

/// How long one send may take before it counts as a time-out (retried).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Sends `m` to `to` through `a`'s provider, retried as [`super::retry_after`] says
/// while the provider fails or does not answer.
pub async fn deliver(a: &ChannelConfig, to: &str, m: &Outgoing) -> Result<String, SendError> {
    let mut attempt = 1;
    loop {
        let r = match (a.kind, m) {
            (crate::config::ChannelKind::Twilio, Outgoing::Text { body, .. }) => {
                twilio(a, to, body).await
            }
            (crate::config::ChannelKind::Twilio, _) => Err(SendError::Refused(
                "templates are for WhatsApp threads".into(),
            )),
            _ => whatsapp(a, to, m).await,
        };
        match (r, super::retry_after(attempt)) {
            (Err(SendError::Retry(why)), Some(wait)) => {
                tracing::warn!(account = %a.name, attempt, error = %why, "send failed; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            (r, _) => return r,
        }
    }
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
    let client = awc::Client::builder().timeout(SEND_TIMEOUT).finish();
    let mut r = client
        .post(&url)
        .insert_header(("Authorization", format!("Bearer {}", a.access_token)))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_string())
        .await
        .map_err(|e| SendError::Retry(format!("the Graph API did not answer: {e}")))?;
    let status = r.status().as_u16();
    let bytes = r
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| SendError::Retry(format!("the Graph API's answer was cut: {e}")))?;
    match whatsapp::sent_id(status, &bytes) {
        Ok(id) => Ok(id),
        Err(why) if status >= 500 || status == 429 => Err(SendError::Retry(why)),
        Err(why) => Err(SendError::Refused(why)),
    }
}

/// `POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json` (Basic auth with
/// the SID and token; from our number or messaging service; Twilio calls back with
/// statuses at `{public_url}/webhooks/twilio/{name}/status`); the message's sid.
pub async fn twilio(a: &ChannelConfig, to: &str, text: &str) -> Result<String, SendError> {
    use base64::Engine;
    if text.trim().is_empty() {
        return Err(SendError::Refused("the message is empty".into()));
    }
    // Twilio's own limit for one message's body.
    if text.chars().count() > 1600 {
        return Err(SendError::Refused(format!(
            "an SMS holds at most 1600 characters; this one has {}",
            text.chars().count()
        )));
    }
    let callback = format!("{}/webhooks/twilio/{}/status", a.public_url, a.name);
    let service = (!a.messaging_service_sid.is_empty()).then_some(a.messaging_service_sid.as_str());
    let form = super::twilio::send_form(to, &a.from, service, text, Some(&callback));
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        a.api_base(),
        a.account_sid
    );
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", a.account_sid, a.auth_token));
    let client = awc::Client::builder().timeout(SEND_TIMEOUT).finish();
    let mut r = client
        .post(&url)
        .insert_header(("Authorization", format!("Basic {auth}")))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(form)
        .await
        .map_err(|e| SendError::Retry(format!("Twilio did not answer: {e}")))?;
    let status = r.status().as_u16();
    let bytes = r
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| SendError::Retry(format!("Twilio's answer was cut: {e}")))?;
    match super::twilio::sent_sid(status, &bytes) {
        Ok(id) => Ok(id),
        Err(why) if status >= 500 || status == 429 => Err(SendError::Retry(why)),
        Err(why) => Err(SendError::Refused(why)),
    }
}
