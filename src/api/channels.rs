//! Where messaging providers reach us: `GET /webhooks/whatsapp/{account}` (Meta's
//! verification handshake) and `POST /webhooks/whatsapp/{account}` (notifications).
//! A post is authenticated (its `X-Hub-Signature-256` over the raw body) before a
//! byte of it is parsed, and answered 200 only once every message in it is committed
//! to its thread; anything less is a 503, and the provider delivers it again (what was
//! committed counts once).

use super::agents::centre;
use super::error::ApiError;
use super::Shared;
use crate::centre::Centre;
use crate::channels::whatsapp::{self, Event};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// The largest notification taken (Meta's are a few kilobytes).
pub const MAX_BODY: usize = 1024 * 1024;

type Reply = Result<HttpResponse, ApiError>;

fn account(
    c: &Centre,
    name: &str,
) -> Result<std::sync::Arc<crate::config::ChannelConfig>, ApiError> {
    c.channel(name)
        .filter(|a| a.kind == crate::config::ChannelKind::Whatsapp)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no WhatsApp account with that name"))
}

/// The body, refused with 413 beyond `limit` (before reading it, if it says so).
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {limit} bytes"),
        )
    };
    let said: Option<usize> = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if said.is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut b = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the body was cut: {e}")))?;
        if b.len() + chunk.len() > limit {
            return Err(too_big());
        }
        b.extend_from_slice(&chunk);
    }
    Ok(b.freeze())
}

/// Meta's verification: `hub.mode=subscribe`, our `hub.verify_token`; answered with
/// `hub.challenge`.
async fn verify(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    let a = account(centre(&shared)?, &path)?;
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let get = |k: &str| q.get(k).map(String::as_str);
    if get("hub.mode") != Some("subscribe") {
        return Err(ApiError::bad_request("hub.mode must be subscribe"));
    }
    if !get("hub.verify_token").is_some_and(|t| super::token_eq(t, &a.verify_token)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "hub.verify_token does not match this account's verify_token",
        ));
    }
    let challenge = get("hub.challenge").unwrap_or_default();
    if challenge.is_empty()
        || challenge.len() > 128
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad_request(
            "hub.challenge must be 1-128 letters or digits",
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body(challenge.to_string()))
}

/// A notification: checked, read, each message committed to its thread and each
/// status on record. `{"messages": N, "statuses": N, "ignored": N}`.
async fn notify(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Reply {
    let c = centre(&shared)?;
    let a = account(c, &path)?;
    let body = read_body(&req, payload, MAX_BODY).await?;
    let sig = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    crate::channels::signature::check_whatsapp(&a.app_secret, sig, &body)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let events = whatsapp::parse(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (mut messages, mut statuses, mut ignored) = (0, 0, 0);
    for e in events {
        let number = match &e {
            Event::Message(m) => &m.phone_number_id,
            Event::Status(s) => &s.phone_number_id,
        };
        // Another business number's news (one app may serve several): not ours.
        if !a.phone_number_id.is_empty() && *number != a.phone_number_id {
            ignored += 1;
            continue;
        }
        let r = match e {
            Event::Message(m) => c.channel_inbound(&a, m).await.map(|_| messages += 1),
            Event::Status(s) => c.channel_status(&a, &s).await.map(|_| statuses += 1),
        };
        if let Err(e) = r {
            tracing::warn!(account = %a.name, error = %e, "notification not committed; the provider will deliver it again");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not committed ({e}); deliver it again"),
            )
            .retry_after(5));
        }
    }
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"messages": messages, "statuses": statuses, "ignored": ignored})))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/whatsapp/{account}", web::get().to(verify))
        .route("/webhooks/whatsapp/{account}", web::post().to(notify));
}
