//! Where messaging providers reach us: `GET /webhooks/whatsapp/{account}` (Meta's
//! verification handshake), `POST /webhooks/whatsapp/{account}` (notifications),
//! `POST /webhooks/twilio/{account}` (an SMS) and `.../status` (Twilio's callbacks),
//! `POST /api/channels/{account}/events` (the open channel API, see
//! [`crate::channels::open`]).
//! A post is authenticated (its `X-Hub-Signature-256` over the raw body) before a
//! byte of it is parsed, and answered 200 only once every message in it is committed
//! to its thread; anything less is a 503, and the provider delivers it again (what was
//! committed counts once).

use super::agents::centre;
use super::error::ApiError;
use super::Shared;
use crate::centre::Centre;
use crate::channels::twilio;
use crate::channels::whatsapp::{self, Event};
use crate::config::ChannelKind;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// The largest notification taken (Meta's are a few kilobytes).
pub const MAX_BODY: usize = 1024 * 1024;

type Reply = Result<HttpResponse, ApiError>;

fn account(
    c: &Centre,
    name: &str,
    kind: ChannelKind,
) -> Result<std::sync::Arc<crate::config::ChannelConfig>, ApiError> {
    c.channel(name).filter(|a| a.kind == kind).ok_or_else(|| {
        let what = match kind {
            ChannelKind::Whatsapp => "WhatsApp account",
            ChannelKind::Twilio => "Twilio account",
            ChannelKind::Open => "open channel account",
            ChannelKind::Email => "mailbox",
        };
        ApiError::new(StatusCode::NOT_FOUND, format!("no {what} with that name"))
    })
}

/// What a provider posts to account `name` of `kind`: the centre, the account and
/// the raw body (within its kind's limit), before any of it is checked or parsed.
async fn arrival<'s>(
    req: &HttpRequest,
    name: &str,
    payload: web::Payload,
    shared: &'s Shared,
    kind: ChannelKind,
) -> Result<
    (
        &'s Centre,
        std::sync::Arc<crate::config::ChannelConfig>,
        web::Bytes,
    ),
    ApiError,
> {
    let c = centre(shared)?;
    let a = account(c, name, kind)?;
    let limit = if kind == ChannelKind::Twilio {
        MAX_FORM
    } else {
        MAX_BODY
    };
    Ok((c, a, read_body(req, payload, limit).await?))
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
    let a = account(centre(&shared)?, &path, ChannelKind::Whatsapp)?;
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
    let (c, a, body) = arrival(&req, &path, payload, &shared, ChannelKind::Whatsapp).await?;
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
            Event::Message(m) => c.channel_inbound(&a, m.into()).await.map(|_| messages += 1),
            Event::Status(s) => c
                .channel_status(&a, &s.id, &s.status, s.error.as_deref().unwrap_or_default())
                .await
                .map(|_| statuses += 1),
        };
        r.map_err(|e| not_committed(&a.name, e))?;
    }
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"messages": messages, "statuses": statuses, "ignored": ignored})))
}

/// The largest form Twilio posts (a message of 1,600 characters and its fields).
pub const MAX_FORM: usize = 64 * 1024;

/// A Twilio post, checked: the account (named in the path, or for the shared
/// `/webhooks/twilio`, found by the form's `MessagingServiceSid`, else its `To`), the
/// size, the form, then `X-Twilio-Signature` over the account's public address of
/// this request and the form's parameters.
async fn twilio_post(
    req: &HttpRequest,
    path: Option<&str>,
    payload: web::Payload,
    shared: &Shared,
) -> Result<(std::sync::Arc<crate::config::ChannelConfig>, twilio::Params), ApiError> {
    let (a, body) = match path {
        Some(name) => {
            let (_, a, body) = arrival(req, name, payload, shared, ChannelKind::Twilio).await?;
            (a, body)
        }
        None => {
            let c = centre(shared)?;
            let body = read_body(req, payload, MAX_FORM).await?;
            let params = twilio::form(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let accounts = c.channels();
            let a = twilio::find_account(
                &accounts,
                get("MessagingServiceSid"),
                get("To").unwrap_or_default(),
            )
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no Twilio account has this MessagingServiceSid or To number",
                )
            })?;
            (a, body)
        }
    };
    let params = twilio::form(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let url = format!(
        "{}{}",
        a.public_url,
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let sig = req
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    crate::channels::signature::check_twilio(&a.auth_token, sig, &url, &params)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    Ok((a, params))
}

fn not_committed(a: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(account = %a, error = %e, "not committed; the provider will deliver it again");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not committed ({e}); deliver it again"),
    )
    .retry_after(5)
}

/// A customer's SMS: committed to their thread, answered with empty TwiML (the reply
/// goes through the API).
async fn twilio_inbound(
    req: HttpRequest,
    path: Option<web::Path<String>>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Reply {
    let (a, params) =
        twilio_post(&req, path.as_deref().map(String::as_str), payload, &shared).await?;
    let m = twilio::inbound(&params).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let incoming = m.incoming(crate::clock::unix_secs());
    centre(&shared)?
        .channel_inbound(&a, incoming)
        .await
        .map_err(|e| not_committed(&a.name, e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/xml")
        .body(twilio::EMPTY_TWIML))
}

/// Twilio's status callback for one of our messages.
async fn twilio_status(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Reply {
    let (a, params) = twilio_post(&req, Some(&path), payload, &shared).await?;
    let s = twilio::status(&params).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(ours) = twilio::our_status(&s.status) {
        let error = s
            .error
            .map(|e| format!("Twilio error {e}"))
            .unwrap_or_default();
        centre(&shared)?
            .channel_status(&a, &s.sid, ours, &error)
            .await
            .map_err(|e| not_committed(&a.name, e))?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// An open channel's batch of events: checked (timestamp and signature over the raw
/// body), each event taken on its own and answered in order.
async fn open_events(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Reply {
    use crate::channels::open::{self, Event};
    let (c, a, body) = arrival(&req, &path, payload, &shared, ChannelKind::Open).await?;
    let header = |h: &str| req.headers().get(h).and_then(|v| v.to_str().ok());
    crate::channels::signature::check_open(
        &a.secret,
        crate::clock::unix_secs(),
        header("x-omnigate-timestamp"),
        header("x-omnigate-signature"),
        &body,
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let events = open::parse(&a.name, &body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut results = Vec::with_capacity(events.len());
    for e in events {
        let r = match e {
            Err((id, why)) => serde_json::json!({"id": id, "error": why}),
            Ok(Event::Message {
                id,
                thread,
                from,
                name,
                at,
                text,
            }) => {
                let m = crate::channels::Incoming {
                    id: id.clone(),
                    from,
                    thread: Some(thread),
                    name,
                    at: at.unwrap_or_else(crate::clock::unix_secs),
                    text,
                };
                let seq = c
                    .channel_inbound(&a, m)
                    .await
                    .map_err(|e| not_committed(&a.name, e))?;
                serde_json::json!({"id": id, "result": "stored", "seq": seq})
            }
            Ok(Event::Status {
                id,
                delivery,
                status,
                error,
            }) => {
                let known = c
                    .channel_status(&a, &delivery, &status, &error)
                    .await
                    .map_err(|e| not_committed(&a.name, e))?;
                if known {
                    serde_json::json!({"id": id, "result": "applied"})
                } else {
                    serde_json::json!({"id": id, "error": format!("no delivery {delivery:?} on this account")})
                }
            }
            Ok(Event::Typing { id, thread, on }) => {
                let live = c.channel_typing(&a, &thread, on);
                serde_json::json!({"id": id, "result": if live { "shown" } else { "no open thread" }})
            }
        };
        results.push(r);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "results": results })))
}

/// A proactive notification (admin token, an `Idempotency-Key`): sent on the first
/// channel of the preference order that can take it; the same key again gets the
/// same answer and sends nothing.
async fn notification(req: HttpRequest, payload: web::Payload, shared: web::Data<Shared>) -> Reply {
    super::authorised(&req, &shared)?;
    let c = centre(&shared)?;
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("the Idempotency-Key header is missing"))?
        .to_string();
    if !crate::channels::notify::key_ok(&key) {
        return Err(ApiError::bad_request(
            "Idempotency-Key is 1-128 printable characters without spaces",
        ));
    }
    let body = read_body(&req, payload, MAX_FORM).await?;
    let r: crate::channels::notify::Request = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let (code, answer) = c
        .notify(&key, &crate::channels::notify::digest(&body), &r)
        .await?;
    Ok(HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK)).json(answer))
}

/// `GET /api/channels` (admin): every messaging account, secrets only as set or not.
async fn list_channels(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    super::authorised(&req, &shared)?;
    Ok(HttpResponse::Ok().json(centre(&shared)?.channel_list()))
}

/// `GET /api/mailboxes` (admin): every mailbox (no passwords) and how its fetcher is
/// doing (connected, failing with the reason, last import, counts).
async fn list_mailboxes(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    super::authorised(&req, &shared)?;
    Ok(HttpResponse::Ok().json(centre(&shared)?.mailbox_list()))
}

/// `PUT /api/mailboxes/{name}` (admin): adds or replaces a mailbox as `[[mailbox]]`
/// spells it (the name in the path); its fetcher starts at once; 201 new, 200
/// replaced.
async fn put_mailbox(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Reply {
    super::authorised(&req, &shared)?;
    let m = named_body(&req, payload, &path, "a mailbox").await?;
    created_or_replaced(centre(&shared)?.put_mailbox(m).await?, &path)
}

/// `GET /api/mailboxes/{name}/quarantine` (admin): the messages set aside unimported,
/// newest first (at most 100): `[{message_id, reason, from, subject}]`.
async fn quarantine(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    super::authorised(&req, &shared)?;
    let c = centre(&shared)?;
    if c.mailbox(&path).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no mailbox {:?}", path.as_str()),
        ));
    }
    let list: Vec<_> = c
        .store()
        .quarantined_emails(&path, 100)
        .await?
        .into_iter()
        .map(|e| serde_json::json!({"message_id": e.message_id, "reason": e.reason, "from": e.sender, "subject": e.subject}))
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /api/mailboxes/{name}/quarantine/{message_id}` (admin): a quarantined message
/// as it arrived, as an `.eml` download (404 for one never downloaded: too large).
async fn quarantined_eml(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> Reply {
    super::authorised(&req, &shared)?;
    let (name, id) = path.into_inner();
    let c = centre(&shared)?;
    let row = c.store().email(&name, &id).await?;
    if row.is_none_or(|r| r.status != "quarantined") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no quarantined message with that id",
        ));
    }
    let raw = c.store().email_raw(&name, &id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "that message was never downloaded (its size)",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type("message/rfc822")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"quarantined.eml\"",
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(raw))
}

/// `DELETE /api/mailboxes/{name}` (admin): a mailbox added through the API; its
/// fetcher stops.
async fn delete_mailbox(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    super::authorised(&req, &shared)?;
    centre(&shared)?.delete_mailbox(&path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An admin body that is a JSON object named as the path names it (`name` may be left
/// out), read as `what` (`a mailbox`, `a channel account`).
async fn named_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    name: &str,
    what: &str,
) -> Result<T, ApiError> {
    let body = read_body(req, payload, MAX_FORM).await?;
    let mut v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body is a JSON object ({what})"
        )));
    }
    match v.get("name") {
        None => v["name"] = name.into(),
        Some(n) if n == name => {}
        Some(_) => return Err(ApiError::bad_request("name differs from the path's")),
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("not {what}: {e}")))
}

/// 201 for something new, 200 for a replacement, naming it.
fn created_or_replaced(new: bool, name: &str) -> Reply {
    let code = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(code).json(serde_json::json!({"name": name})))
}

/// `DELETE /api/cases/{id}/mail` (admin): erases a case's e-mail (each message's
/// text and bytes, on the record and the case's timeline); each message stays a
/// tombstone, so the mail server's copy is never imported again. `{"erased": n}`.
async fn erase_case_mail(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    super::authorised(&req, &shared)?;
    let case: i64 = path
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{:?} is not a case number", path.as_str())))?;
    let c = centre(&shared)?;
    let n = c.store().erase_case_mail(case).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"erased": n})))
}

/// `PUT /api/channels/{name}` (admin): adds or replaces an account as `[[channel]]`
/// spells it (the name in the path); 201 new, 200 replaced.
async fn put_channel(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> Reply {
    super::authorised(&req, &shared)?;
    let a = named_body(&req, payload, &path, "a channel account").await?;
    created_or_replaced(centre(&shared)?.put_channel(a).await?, &path)
}

/// `DELETE /api/channels/{name}` (admin): an account added through the API.
async fn delete_channel(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    super::authorised(&req, &shared)?;
    centre(&shared)?.delete_channel(&path).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/whatsapp/{account}", web::get().to(verify))
        .route("/webhooks/whatsapp/{account}", web::post().to(notify))
        .route("/webhooks/twilio", web::post().to(twilio_inbound))
        .route("/webhooks/twilio/{account}", web::post().to(twilio_inbound))
        .route(
            "/api/channels/{account}/events",
            web::post().to(open_events),
        )
        .route("/api/notifications", web::post().to(notification))
        .route("/api/channels", web::get().to(list_channels))
        .route("/api/mailboxes", web::get().to(list_mailboxes))
        .route("/api/mailboxes/{name}", web::put().to(put_mailbox))
        .route("/api/mailboxes/{name}", web::delete().to(delete_mailbox))
        .route(
            "/api/mailboxes/{name}/quarantine",
            web::get().to(quarantine),
        )
        .route(
            "/api/mailboxes/{name}/quarantine/{message_id}",
            web::get().to(quarantined_eml),
        )
        .route("/api/cases/{id}/mail", web::delete().to(erase_case_mail))
        .route("/api/channels/{name}", web::put().to(put_channel))
        .route("/api/channels/{name}", web::delete().to(delete_channel))
        .route(
            "/webhooks/twilio/{account}/status",
            web::post().to(twilio_status),
        );
}
