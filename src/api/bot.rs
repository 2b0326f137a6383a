//! An external bot's side of the open channel contract (`[bot] url`): the gateway
//! POSTs it each customer message of a conversation the bot owns (signed, see
//! [`crate::channels::send::to_bot`]); the bot answers and hands off here, with
//! `Authorization: Bearer <[bot] token>` (checked before the body is read):
//!
//! - `POST /api/bot/conversations/{id}/messages` `{"text": "..."}`: said to the
//!   customer as the bot's message;
//! - `POST /api/bot/conversations/{id}/handoff` `{"intent": "...", "summary": "..."}`
//!   (both optional): the conversation goes to its queue with the transcript, the
//!   intent and the summary, like the built-in bot's hand-off.
//!
//! Both answer 200 `{"ok": true}`; 401 without the token (or with no `[bot] url`);
//! 404 for a conversation that is not live here; 409 once it is not the bot's (handed over, taken, ended).

use super::agents::centre;
use super::{bearer_token, token_eq, ApiError, Shared};
use crate::actors::chat::BotAct;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// The longest text a bot may send at once (characters).
pub const MAX_TEXT: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Says {
    text: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Handoff {
    intent: Option<String>,
    summary: Option<String>,
}

/// The conversation's chat, once the caller is the configured bot.
fn conversation(
    req: &HttpRequest,
    shared: &Shared,
    id: &str,
) -> Result<actix::Addr<crate::actors::chat::ChatActor>, ApiError> {
    let c = centre(shared)?;
    let cfg = c.bot_config();
    // No bot can authenticate while none is configured.
    if cfg.url.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no external bot is configured ([bot] url), so no bot token is valid",
        ));
    }
    if !bearer_token(req).is_some_and(|t| token_eq(&t, &cfg.token)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the bot API needs Authorization: Bearer <[bot] token>",
        ));
    }
    c.chat(id)
        .map(|(_, addr)| addr)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no live conversation {id}")))
}

fn body<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

async fn says(
    req: HttpRequest,
    id: web::Path<String>,
    raw: web::Bytes,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, ApiError> {
    let chat = conversation(&req, &shared, &id)?;
    let m: Says = body(&raw)?;
    let text = m.text.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::bad_request("`text` is empty"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "`text` is over {MAX_TEXT} characters"
        )));
    }
    chat.send(BotAct::Says { text }).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

async fn handoff(
    req: HttpRequest,
    id: web::Path<String>,
    raw: web::Bytes,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, ApiError> {
    let chat = conversation(&req, &shared, &id)?;
    let m: Handoff = if raw.iter().all(u8::is_ascii_whitespace) {
        Handoff::default()
    } else {
        body(&raw)?
    };
    if let Some(i) = &m.intent {
        let ok = !i.is_empty()
            && i.len() <= 100
            && i.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(ApiError::bad_request(
                "`intent` is a name: letters, digits, - _ . (at most 100)",
            ));
        }
    }
    chat.send(BotAct::Handoff {
        intent: m.intent,
        summary: m.summary,
    })
    .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/bot/conversations/{id}/messages", web::post().to(says))
        .route(
            "/api/bot/conversations/{id}/handoff",
            web::post().to(handoff),
        );
}
