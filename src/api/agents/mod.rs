//! The agent API (`/api/agent/...`: log in, presence, offers, messages, transfers,
//! wrap-up, notes, customers they serve, and their WebSocket) and the admin API for
//! agents, queues and skills (`/api/agents`, `/api/queues`, `/api/skills`,
//! `/api/customers/{id}`). Every endpoint wants a bearer token: an agent's session
//! token (from `POST /api/agent/login`) or the admin token.
//!
//! One handler per route: `session` (log in and out, presence, offers, the customers
//! an agent serves), `work` (each act on assigned work), `socket` (the desktop's
//! WebSocket), `admin` (agents, queues, skills, customers).

mod admin;
mod session;
mod socket;
mod work;

use super::error::ApiError;
use super::Shared;
use crate::centre::Centre;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

type Reply = Result<HttpResponse, ApiError>;

pub(crate) fn centre(shared: &Shared) -> Result<&Centre, ApiError> {
    shared.centre.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the contact centre is not running",
        )
    })
}

use super::bearer_token as bearer;
pub(crate) use socket::{first_frame, refuse};
pub(crate) use work::text;

/// The agent whose session token this request carries.
pub(super) fn agent(req: &HttpRequest, c: &Centre) -> Result<String, ApiError> {
    match bearer(req) {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer token (log in at POST /api/agent/login)",
        )),
        Some(t) => c.session(&t).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown or expired session token; log in again",
            )
        }),
    }
}

/// A JSON body, or a 400 saying what is wrong with it.
pub(crate) fn body<T: DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The centre and the agent whose session token this request carries (checked before
/// anything in the request is read).
fn who<'a>(req: &HttpRequest, shared: &'a Shared) -> Result<(&'a Centre, String), ApiError> {
    let c = centre(shared)?;
    let me = agent(req, c)?;
    Ok((c, me))
}

async fn customer_view(c: &Centre, id: i64) -> Result<serde_json::Value, ApiError> {
    c.customer_view(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no customer with that id"))
}

/// The agent desktop: `web/agent/`, built into the binary (no CDN, no build step):
/// the page, its style sheet and its ES modules, each under its own name.
/// One desktop file: its name under `/agent/`, its type, its text (from `web/agent/`).
macro_rules! desktop_file {
    ($name:literal, $kind:expr) => {
        (
            $name,
            $kind,
            include_str!(concat!("../../../web/agent/", $name)),
        )
    };
}
const DESKTOP: &[(&str, &str, &str)] = &[
    desktop_file!("app.css", CSS),
    desktop_file!("main.js", JS),
    desktop_file!("state.js", JS),
    desktop_file!("dom.js", JS),
    desktop_file!("api.js", JS),
    desktop_file!("socket.js", JS),
    desktop_file!("status.js", JS),
    desktop_file!("offers.js", JS),
    desktop_file!("pop.js", JS),
    desktop_file!("work.js", JS),
    desktop_file!("keys.js", JS),
    desktop_file!("tabs.js", JS),
    desktop_file!("directory.js", JS),
    desktop_file!("mail.js", JS),
    desktop_file!("kb.js", JS),
];
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// One of the desktop's files by name; anything else is 404.
async fn desktop_file(name: web::Path<String>) -> HttpResponse {
    match DESKTOP.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, kind, body)) => super::page(kind, body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file"),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/agent",
        web::get().to(|| async {
            super::page(
                "text/html; charset=utf-8",
                include_str!("../../../web/agent/index.html"),
            )
        }),
    )
    .route("/agent/{file}", web::get().to(desktop_file));
    cfg.route("/api/agent/login", web::post().to(session::login))
        .route("/api/agent/logout", web::post().to(session::logout))
        .route("/api/agent/me", web::get().to(session::me))
        .route("/api/agent/presence", web::put().to(session::presence))
        .route(
            "/api/agent/offers/{id}/accept",
            web::post().to(session::accept),
        )
        .route(
            "/api/agent/offers/{id}/reject",
            web::post().to(session::reject),
        )
        .route(
            "/api/agent/customers/{id}",
            web::get().to(session::agent_customer),
        )
        .route("/api/agent/directory", web::get().to(session::directory))
        .route("/api/agent/kb", web::get().to(session::kb_search))
        .route(
            "/api/agent/service_level",
            web::get().to(session::service_level),
        )
        .route("/api/agent/ws", web::get().to(socket::agent_ws));
    for (act, handler) in [
        ("messages", web::post().to(work::messages)),
        ("template", web::post().to(work::template)),
        ("retry", web::post().to(work::retry)),
        ("typing", web::post().to(work::typing)),
        ("verify", web::post().to(work::verify)),
        ("end", web::post().to(work::end)),
        ("video", web::post().to(work::invite_video)),
        ("hangup", web::post().to(work::hangup)),
        ("hold", web::post().to(work::hold)),
        ("dtmf", web::post().to(work::dtmf)),
        ("consult", web::post().to(work::consult)),
        ("complete", web::post().to(work::complete)),
        ("cancel_consult", web::post().to(work::cancel_consult)),
        ("transfer", web::post().to(work::transfer)),
        ("wrap_up", web::post().to(work::wrap_up)),
        ("notes", web::post().to(work::notes)),
        ("canned", web::get().to(work::canned)),
        ("mails", web::get().to(work::mails)),
    ] {
        cfg.route(&format!("/api/agent/work/{{id}}/{act}"), handler);
    }
    cfg.route(
        "/api/agent/work/{id}/media/{media}",
        web::get().to(work::media),
    );
    cfg.route(
        "/api/agent/work/{id}/mails/{seq}/attachments/{n}",
        web::get().to(work::mail_attachment),
    );
    cfg.route("/api/agents", web::get().to(admin::list_agents))
        .route("/api/agents", web::post().to(admin::create_agent))
        .route("/api/agents/{name}", web::put().to(admin::update_agent))
        .route("/api/agents/{name}", web::delete().to(admin::delete_agent))
        .route("/api/queues", web::get().to(admin::list_queues))
        .route("/api/queues", web::post().to(admin::create_queue))
        .route("/api/skills", web::get().to(admin::skills))
        .route("/api/customers/{id}", web::get().to(admin::admin_customer));
}
