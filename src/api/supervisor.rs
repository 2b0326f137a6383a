//! Supervisors: `POST /api/supervisor/login` and `logout`, `GET /api/supervisor/me`
//! (who they are and what they may see), the console at `/supervisor` and its
//! WebSocket (`/api/supervisor/ws`); for admins, `/api/supervisors` (list, create,
//! change, remove) and `GET /api/audit` (what supervisors did).
//!
//! A supervisor's session token is not an agent's: each is accepted only where its role
//! is. What a supervisor sees is cut to their [`Scope`] here, on the server; the page
//! is never trusted to hide anything.

use super::agents::centre;
use super::error::ApiError;
use super::{authorised, bearer_token, token_eq, Shared};
use crate::actors::router::floor::Floor;
use crate::centre::{Centre, Scope};
use crate::config::SupervisorConfig;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Reply = Result<HttpResponse, ApiError>;

/// Who is asking: the admin (everything) or a supervisor (their scope).
pub(crate) enum Viewer {
    Admin,
    Supervisor { name: String, scope: Scope },
}

/// The admin token or a supervisor's session token; 401 otherwise.
pub(crate) fn viewer(req: &HttpRequest, shared: &Shared) -> Result<Viewer, ApiError> {
    let Some(got) = bearer_token(req) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer token (the admin token, or a supervisor's from POST /api/supervisor/login)",
        ));
    };
    if shared
        .admin_token
        .as_deref()
        .is_some_and(|want| token_eq(&got, want))
    {
        return Ok(Viewer::Admin);
    }
    supervisor(shared, &got).map(|(name, scope)| Viewer::Supervisor { name, scope })
}

/// The supervisor behind a session token, with what they may see now.
fn supervisor(shared: &Shared, token: &str) -> Result<(String, Scope), ApiError> {
    let c = centre(shared)?;
    let unknown = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown or expired token; log in again",
        )
    };
    let name = c.supervisor_session(token).ok_or_else(unknown)?;
    let scope = c.scope(&name).ok_or_else(unknown)?;
    Ok((name, scope))
}

/// The supervisor whose session token the request carries.
fn me(req: &HttpRequest, shared: &Shared) -> Result<(String, Scope), ApiError> {
    let t = bearer_token(req).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer token (log in at POST /api/supervisor/login)",
        )
    })?;
    supervisor(shared, &t)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let l: LoginBody = serde_json::from_slice(&b)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let from = req
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let token = c.supervisor_login_from(from, &l.name, &l.password).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"token": token, "supervisor": l.name})))
}

async fn logout(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let (name, _) = me(&req, &shared)?;
    let c = centre(&shared)?;
    c.audit(&name, "logout", None, serde_json::json!({}))
        .await?;
    c.supervisor_logout(&name);
    Ok(HttpResponse::NoContent().finish())
}

async fn whoami(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let (name, scope) = me(&req, &shared)?;
    let c = centre(&shared)?;
    let s = c
        .supervisor(&name)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "logged out"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": name,
        "display_name": s.spec.display_name,
        "teams": s.spec.teams,
        "queues": scope.queues,
        "agents": scope.agents,
        "extension": s.spec.extension,
    })))
}

// ---- the admin's side -------------------------------------------------------------

fn supervisor_json(s: &crate::centre::Supervisor) -> serde_json::Value {
    let mut j = serde_json::to_value(&s.spec).unwrap_or_default();
    if let Some(o) = j.as_object_mut() {
        o.remove("password");
        o.insert("source".into(), s.source.clone().into());
    }
    j
}

async fn list(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    authorised(&req, &shared)?;
    let c = centre(&shared)?;
    let v: Vec<_> = c.supervisor_list().iter().map(supervisor_json).collect();
    Ok(HttpResponse::Ok().json(v))
}

/// The body, checked against the queues there are (422 with the reason).
async fn spec(c: &Centre, b: &[u8]) -> Result<SupervisorConfig, ApiError> {
    let s: SupervisorConfig = serde_json::from_slice(b)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let queues: Vec<String> = c
        .router()
        .send(crate::actors::router::QueueConfigs)
        .await?
        .into_iter()
        .map(|q| q.name)
        .collect();
    let names: Vec<&str> = queues.iter().map(String::as_str).collect();
    if let Some((_, _, why)) = s.problem(&names) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, &why));
    }
    Ok(s)
}

async fn create(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
    authorised(&req, &shared)?;
    let c = centre(&shared)?;
    let s = spec(c, &b).await?;
    if s.password.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password is required",
        ));
    }
    let name = s.name.clone();
    c.put_supervisor(s, true).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"supervisor": name})))
}

async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    authorised(&req, &shared)?;
    let c = centre(&shared)?;
    let s = spec(c, &b).await?;
    let name = path.into_inner();
    if s.name != name {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body's name must match the path (supervisors cannot be renamed)",
        ));
    }
    c.put_supervisor(s, false).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"supervisor": name})))
}

async fn remove(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    authorised(&req, &shared)?;
    let c = centre(&shared)?;
    c.delete_supervisor(&path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/audit?from&to&actor&after&limit` (admin): the audit log, oldest first;
/// `from`/`to` Unix ms (default: the last 24 hours), `limit` 1-1000 (default 100),
/// `after` the last id seen (for the next page).
async fn audit(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    authorised(&req, &shared)?;
    let c = centre(&shared)?;
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad query string"))?;
    let ask = audit_query(&q, crate::clock::unix_millis() as i64).map_err(ApiError::bad_request)?;
    let rows = c.store().audit_log(&ask).await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Reads `GET /api/audit`'s question, or says what is wrong with it.
pub fn audit_query(
    q: &HashMap<String, String>,
    now: i64,
) -> Result<crate::store::AuditQuery, String> {
    if let Some(k) = q
        .keys()
        .find(|k| !["from", "to", "actor", "after", "limit"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown parameter \"{k}\" (from, to, actor, after, limit)"
        ));
    }
    let num = |k: &str, default: i64| -> Result<i64, String> {
        q.get(k).map_or(Ok(default), |v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or(format!(
                "{k} must be a whole number ≥ 0 (Unix ms for times)"
            ))
        })
    };
    let from = num("from", now - 24 * 3_600_000)?;
    let to = num("to", now + 1)?;
    if to <= from {
        return Err("to must be after from".into());
    }
    let limit = num("limit", 100)?;
    if !(1..=1000).contains(&limit) {
        return Err("limit must be 1-1000".into());
    }
    Ok(crate::store::AuditQuery {
        from,
        to,
        actor: q.get("actor").filter(|a| !a.is_empty()).cloned(),
        after: num("after", 0)?,
        limit: limit as u32,
    })
}

// ---- the console --------------------------------------------------------------------

/// The console's files: `web/supervisor/`, built into the binary (no CDN, no build step).
macro_rules! console_file {
    ($name:literal, $kind:expr) => {
        (
            $name,
            $kind,
            include_str!(concat!("../../web/supervisor/", $name)),
        )
    };
}
const CONSOLE: &[(&str, &str, &str)] = &[
    console_file!("app.css", "text/css; charset=utf-8"),
    console_file!("main.js", "text/javascript; charset=utf-8"),
    console_file!("chart.js", "text/javascript; charset=utf-8"),
];

async fn console_file(name: web::Path<String>) -> HttpResponse {
    match CONSOLE.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, kind, body)) => super::page(kind, body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file"),
    }
}

/// How often the console's live part is looked at (pushed only when it changed); the
/// day's figures are read again every `TODAY_BUSY` while the floor changed within
/// `BUSY_FOR`, else every `TODAY_QUIET`.
const LIVE_EVERY: Duration = Duration::from_secs(1);
const TODAY_BUSY: Duration = Duration::from_secs(2);
const BUSY_FOR: Duration = Duration::from_secs(10);
const TODAY_QUIET: Duration = Duration::from_secs(60);

/// `GET /api/supervisor/ws`: `{"type": "auth", "token": T, "tz": "America/Guayaquil"}`
/// first (the time zone whose day the figures cover; default UTC), then `{"type": "floor", ...}` with the whole state the supervisor may see, again
/// whenever it changes; `{"type": "logged_out"}` and close when the session ends.
async fn console_ws(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    let c = match centre(&shared) {
        Ok(c) => c.clone(),
        Err(e) => return Ok(e.into()),
    };
    let header_token = bearer_token(&req);
    let (resp, mut session, stream) = actix_ws::handle(&req, payload)?;
    let mut stream = stream.max_frame_size(64 << 10);
    actix_rt::spawn(async move {
        let (token, tz) = match header_token {
            Some(t) => (Some(t), None),
            None => match super::agents::first_frame(&mut stream).await {
                Some(v) => (
                    v["token"].as_str().map(str::to_string),
                    v["tz"].as_str().map(str::to_string),
                ),
                None => (None, None),
            },
        };
        let tz = tz
            .filter(|t| t.len() <= 64)
            .and_then(|t| jiff::tz::TimeZone::get(&t).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let me = token.as_deref().and_then(|t| c.supervisor_session(t));
        let (Some(token), Some(me)) = (token, me) else {
            return super::agents::refuse(session).await;
        };
        let mut live = tokio::time::interval(LIVE_EVERY);
        let (mut last, mut last_floor) = (String::new(), String::new());
        let mut changed = crate::clock::now();
        let mut today: Option<(Instant, serde_json::Value)> = None;
        // The chat this console follows, if any: its frames come on `watching`.
        let mut watching: Option<tokio::sync::mpsc::Receiver<String>> = None;
        // Which chat that is (it must stay in the supervisor's scope).
        let mut watched = String::new();
        loop {
            let next_watched = async {
                match watching.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = next_watched => match frame {
                    Some(text) => { if session.text(text).await.is_err() { break } }
                    // The chat ended (its `closed` frame came first) or dropped us.
                    None => watching = None,
                },
                _ = live.tick() => {
                    if !c.supervisor_session_alive(&token) {
                        let _ = session.text(serde_json::json!({"type": "logged_out"}).to_string()).await;
                        break;
                    }
                    let Some(scope) = c.scope(&me) else { break };
                    let Ok(floor) = c.router().send(crate::actors::router::floor::FloorNow).await else { break };
                    let (floor, floor_text) = cut(&scope, floor);
                    // A chat that left the scope (moved to another queue, ended) is no
                    // longer followed; what it sent before is still delivered.
                    let left = !floor.work.iter().any(|w| w.interaction == watched);
                    if let Some(mut rx) = watching.take_if(|_| left) {
                        let mut gone = false;
                        while let Ok(text) = rx.try_recv() {
                            if session.text(text).await.is_err() { gone = true; break }
                        }
                        let ended = serde_json::json!({"type": "watch_ended", "interaction": watched});
                        if gone || session.text(ended.to_string()).await.is_err() { break }
                    }
                    if floor_text != last_floor {
                        changed = crate::clock::now();
                        last_floor = floor_text;
                    }
                    let every = if crate::clock::now().saturating_duration_since(changed) < BUSY_FOR { TODAY_BUSY } else { TODAY_QUIET };
                    if today.as_ref().is_none_or(|(at, _)| crate::clock::now().saturating_duration_since(*at) >= every) {
                        match super::kpis::today(&c, &tz, &scope).await {
                            Ok(t) => today = Some((crate::clock::now(), t)),
                            Err(e) => tracing::warn!(error = %e, "the console's figures of the day could not be read"),
                        }
                    }
                    let text = floor_json(&me, floor, today.as_ref().map(|t| &t.1)).to_string();
                    if text != last {
                        if session.text(text.clone()).await.is_err() { break }
                        last = text;
                    }
                }
                m = stream.next() => match m {
                    Some(Ok(actix_ws::Message::Ping(p))) => { let _ = session.pong(&p).await; }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(actix_ws::Message::Text(t))) => {
                        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                        match v["type"].as_str() {
                            Some("watch") => {
                                let id = v["interaction"].as_str().unwrap_or_default().chars().take(64).collect::<String>();
                                watching = None;
                                let answer = match watch(&c, &me, &id).await {
                                    Ok((rx, last_seq)) => {
                                        watching = Some(rx);
                                        watched = id.clone();
                                        serde_json::json!({"type": "watching", "interaction": id, "last_seq": last_seq})
                                    }
                                    Err(e) => serde_json::json!({"type": "watch_refused", "interaction": id, "error": e.to_string()}),
                                };
                                if session.text(answer.to_string()).await.is_err() { break }
                            }
                            Some("unwatch") => watching = None,
                            _ => {
                                let e = serde_json::json!({"type": "bad_frame", "error": "unknown frame: send {\"type\": \"watch\", \"interaction\": ID} or {\"type\": \"unwatch\"}"});
                                if session.text(e.to_string()).await.is_err() { break }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}

/// Follows the chat `id` for the console of `me` (in their scope, audited): its frames,
/// and the last message number so far.
async fn watch(
    c: &Centre,
    me: &str,
    id: &str,
) -> Result<(tokio::sync::mpsc::Receiver<String>, u64), ApiError> {
    let scope = c
        .scope(me)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "logged out"))?;
    let chat = chat_in_scope(c, &scope, id).await?;
    c.audit(me, "chat.watch", Some(id), serde_json::json!({}))
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(crate::actors::chat::WATCH_QUEUE);
    let last = chat
        .send(crate::actors::chat::SupervisorAct::Watch {
            supervisor: me.to_string(),
            to: tx,
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::GONE, "the chat has ended"))??;
    Ok((rx, last))
}

// ---- stepping into calls ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorBody {
    mode: String,
    #[serde(default)]
    sdp: Option<String>,
    /// Ring the supervisor's desk phone (their `extension`) instead of a browser leg.
    #[serde(default)]
    phone: bool,
}

fn mode_of(m: &str) -> Result<crate::call::MonitorMode, ApiError> {
    crate::call::MonitorMode::parse(m).ok_or_else(|| {
        ApiError::bad_request(format!(
            "mode must be listen, whisper or barge, not {:?}",
            m.chars().take(32).collect::<String>()
        ))
    })
}

/// Checks that the live work `id` is in the supervisor's scope: 404 when nothing
/// live has that id, 403 when it is someone else's work.
async fn live_in_scope(c: &Centre, scope: &Scope, id: &str) -> Result<(), ApiError> {
    let floor = c
        .router()
        .send(crate::actors::router::floor::FloorNow)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the router is not answering",
            )
        })?;
    let w = floor
        .work
        .iter()
        .find(|w| w.interaction == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no live work with that interaction id",
            )
        })?;
    if !scope.has_live(w) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this interaction is outside your queues and teams",
        ));
    }
    Ok(())
}

/// The live call `id` if it is in the supervisor's scope.
async fn call_in_scope(
    c: &Centre,
    scope: &Scope,
    id: &str,
) -> Result<actix::Recipient<crate::actors::messages::AgentCall>, ApiError> {
    live_in_scope(c, scope, id).await?;
    c.call(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no live call with that interaction id",
        )
    })
}

/// The live chat (web chat or provider thread) `id` if it is in the supervisor's
/// scope.
async fn chat_in_scope(
    c: &Centre,
    scope: &Scope,
    id: &str,
) -> Result<actix::Addr<crate::actors::chat::ChatActor>, ApiError> {
    live_in_scope(c, scope, id).await?;
    c.chat(id).map(|(_, a)| a).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no live chat with that interaction id",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

/// `POST /api/interactions/{id}/notes` `{"text"}` (whisper on a chat: a private note
/// to its agent, never shown to the customer) → 201 `{"at"}`; `POST
/// /api/interactions/{id}/messages` `{"text"}` (barge: the supervisor writes to the
/// customer, who is told they joined) → 201 `{"seq"}`.
async fn chat_act(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    use crate::actors::chat::SupervisorAct;
    let (supervisor, scope) = me(&req, &shared)?;
    let c = centre(&shared)?;
    let id = path.into_inner();
    let body: TextBody = super::agents::body(&b)?;
    let text = super::agents::text(&body.text)?;
    let chat = chat_in_scope(c, &scope, &id).await?;
    let name = c
        .supervisor(&supervisor)
        .map(|s| s.spec.display_name.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| supervisor.clone());
    let note = req.path().ends_with("/notes");
    let (action, act) = if note {
        let act = SupervisorAct::Note {
            supervisor: supervisor.clone(),
            name,
            text,
        };
        ("chat.note", act)
    } else {
        let act = SupervisorAct::Says {
            supervisor: supervisor.clone(),
            name,
            text,
        };
        ("chat.message", act)
    };
    c.audit(&supervisor, action, Some(&id), serde_json::json!({}))
        .await?;
    let n = chat
        .send(act)
        .await
        .map_err(|_| ApiError::new(StatusCode::GONE, "the chat has ended"))??;
    let key = if note { "at" } else { "seq" };
    Ok(HttpResponse::Created().json(serde_json::json!({ key: n })))
}

/// `POST /api/interactions/{id}/takeover` (barge outright: the supervisor takes the
/// chat from its agent, who is released to their wrap-up, or from its queue) → 200
/// `{"taken_over": id}`; `POST /api/interactions/{id}/close` ends a chat they took
/// over → 200 `{"closed": id}`. A chat taken over by someone else: 409.
async fn chat_own(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    use crate::actors::chat::SupervisorAct;
    let (supervisor, scope) = me(&req, &shared)?;
    let c = centre(&shared)?;
    let id = path.into_inner();
    let chat = chat_in_scope(c, &scope, &id).await?;
    let take = req.path().ends_with("/takeover");
    let (action, act, key) = if take {
        let name = c
            .supervisor(&supervisor)
            .map(|s| s.spec.display_name.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| supervisor.clone());
        let act = SupervisorAct::TakeOver {
            supervisor: supervisor.clone(),
            name,
        };
        ("chat.take_over", act, "taken_over")
    } else {
        let act = SupervisorAct::End {
            supervisor: supervisor.clone(),
        };
        ("chat.close", act, "closed")
    };
    c.audit(&supervisor, action, Some(&id), serde_json::json!({}))
        .await?;
    chat.send(act)
        .await
        .map_err(|_| ApiError::new(StatusCode::GONE, "the chat has ended"))??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ key: id })))
}

/// `POST /api/interactions/{id}/monitor` `{"mode": "listen" | "whisper" | "barge",
/// "sdp": OFFER}`: the supervisor's browser joins the call; answers `{"sdp": ANSWER}`.
/// `PUT` with `{"mode": ...}` changes how (no renegotiation); `DELETE` leaves.
async fn monitor(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    use crate::actors::messages::AgentCall;
    use crate::call::{AgentCommand, MonitorVia, SupervisorCommand};
    let (name, scope) = me(&req, &shared)?;
    let c = centre(&shared)?;
    let id = path.into_inner();
    let call = call_in_scope(c, &scope, &id).await?;
    let (action, cmd) = if req.method() == actix_web::http::Method::DELETE {
        (
            "monitor.stop",
            SupervisorCommand::Stop {
                supervisor: name.clone(),
            },
        )
    } else {
        let body: MonitorBody = super::agents::body(&b)?;
        let mode = mode_of(&body.mode)?;
        if req.method() == actix_web::http::Method::POST {
            let spec = c.supervisor(&name).map(|s| s.spec);
            let via = if body.phone {
                if body.sdp.is_some() {
                    return Err(ApiError::bad_request(
                        "either \"sdp\" (the browser's offer) or \"phone\": true, not both",
                    ));
                }
                let extension =
                    spec.as_ref()
                        .and_then(|s| s.extension.clone())
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::CONFLICT,
                                "you have no desk phone: a supervisor's `extension` names it",
                            )
                        })?;
                MonitorVia::Phone { extension }
            } else {
                let sdp = body.sdp.filter(|s| !s.is_empty()).ok_or_else(|| {
                    ApiError::bad_request(
                        "\"sdp\" (the browser's offer) or \"phone\": true is required",
                    )
                })?;
                if sdp.len() > 64 << 10 {
                    return Err(ApiError::bad_request("\"sdp\" is over 64 KiB"));
                }
                MonitorVia::Browser { sdp }
            };
            let shown = spec
                .map(|s| s.display_name)
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| name.clone());
            let cmd = SupervisorCommand::Start {
                supervisor: name.clone(),
                name: shown,
                mode,
                via,
            };
            ("monitor.start", cmd)
        } else {
            (
                "monitor.mode",
                SupervisorCommand::Mode {
                    supervisor: name.clone(),
                    mode,
                },
            )
        }
    };
    let detail = match &cmd {
        SupervisorCommand::Start { mode, via, .. } => {
            let via = match via {
                MonitorVia::Browser { .. } => "browser",
                MonitorVia::Phone { .. } => "phone",
            };
            serde_json::json!({"mode": mode.as_str(), "via": via})
        }
        SupervisorCommand::Mode { mode, .. } => serde_json::json!({"mode": mode.as_str()}),
        SupervisorCommand::Stop { .. } | SupervisorCommand::End { .. } => serde_json::json!({}),
    };
    c.audit(&name, action, Some(&id), detail).await?;
    let r = call.send(AgentCall(AgentCommand::Supervise(cmd))).await??;
    Ok(HttpResponse::Ok().json(r))
}

/// The floor cut to what a supervisor may see, and as text (to see it change).
fn cut(scope: &Scope, f: Floor) -> (Floor, String) {
    let f = Floor {
        queues: f
            .queues
            .into_iter()
            .filter(|q| scope.has_queue(&q.name))
            .collect(),
        agents: f
            .agents
            .into_iter()
            .filter(|a| scope.has_agent(&a.name))
            .collect(),
        work: f.work.into_iter().filter(|w| scope.has_live(w)).collect(),
    };
    let text = serde_json::to_string(&f).unwrap_or_default();
    (f, text)
}

fn floor_json(me: &str, f: Floor, today: Option<&serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "type": "floor",
        "supervisor": me,
        "queues": f.queues,
        "agents": f.agents,
        "work": f.work,
        "today": today.cloned().unwrap_or(serde_json::Value::Null),
    })
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/supervisor",
        web::get().to(|| async {
            super::page(
                "text/html; charset=utf-8",
                include_str!("../../web/supervisor/index.html"),
            )
        }),
    )
    .route("/supervisor/{file}", web::get().to(console_file))
    .route("/api/supervisor/login", web::post().to(login))
    .route("/api/supervisor/logout", web::post().to(logout))
    .route("/api/supervisor/me", web::get().to(whoami))
    .route("/api/supervisor/ws", web::get().to(console_ws))
    .route("/api/supervisors", web::get().to(list))
    .route("/api/supervisors", web::post().to(create))
    .route("/api/supervisors/{name}", web::put().to(update))
    .route("/api/supervisors/{name}", web::delete().to(remove))
    .route("/api/audit", web::get().to(audit))
    .route("/api/interactions/{id}/monitor", web::post().to(monitor))
    .route("/api/interactions/{id}/monitor", web::put().to(monitor))
    .route("/api/interactions/{id}/monitor", web::delete().to(monitor))
    .route("/api/interactions/{id}/notes", web::post().to(chat_act))
    .route("/api/interactions/{id}/messages", web::post().to(chat_act))
    .route("/api/interactions/{id}/takeover", web::post().to(chat_own))
    .route("/api/interactions/{id}/close", web::post().to(chat_own));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_audit_question_is_read_or_refused_with_its_reason() {
        let now = 10 * 86_400_000;
        let a = audit_query(&q(&[]), now).unwrap();
        assert_eq!(
            (a.from, a.to, a.limit, a.after),
            (now - 86_400_000, now + 1, 100, 0)
        );
        let a = audit_query(&q(&[("actor", "sue"), ("after", "7"), ("limit", "5")]), now).unwrap();
        assert_eq!((a.actor.as_deref(), a.after, a.limit), (Some("sue"), 7, 5));
        for (bad, why) in [
            (vec![("who", "sue")], "unknown parameter \"who\""),
            (vec![("limit", "0")], "limit must be 1-1000"),
            (vec![("from", "-1")], "from must be a whole number"),
            (vec![("from", "5"), ("to", "5")], "to must be after from"),
        ] {
            let e = audit_query(&q(&bad), now).unwrap_err();
            assert!(e.starts_with(why), "{e}");
        }
    }
}
