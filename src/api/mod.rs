//! HTTP (actix-web): `GET /healthz`, `GET /metrics` (Prometheus text),
//! `POST /api/calls` (admin: place a call through a trunk), interactions, the agent and
//! admin API (`agents`), the customer web chat (`chat`), messaging providers'
//! webhooks (`channels`), `GET /api/openapi.json`, and
//! the SIP-over-WebSocket endpoint (RFC 7118) on its own listener. Routers are built by functions so tests can
//! call them without a socket.

pub mod agents;
pub mod bot;
pub mod channels;
pub mod chat;
pub mod error;
pub mod kpis;
pub mod privacy;
pub mod supervisor;

/// A request from the HTTP API to place a call (the SIP driver places it).
pub struct OriginateRequest {
    pub to: String,
    pub trunk: Option<String>,
    /// Record this call (default: `calls.record`).
    pub record: Option<bool>,
    /// The callee (a customer by this number) withdrew their recording consent: the
    /// call is not recorded, whatever `record` says.
    pub consent_withdrawn: bool,
    pub reply: oneshot::Sender<CallRef>,
}

/// What the HTTP layer shares with the SIP driver (which builds it at start-up).
#[derive(Clone)]
pub struct Shared {
    pub metrics: Arc<Mutex<Metrics>>,
    pub originate: mpsc::Sender<OriginateRequest>,
    pub admin_token: Option<String>,
    pub transports: Arc<Transports>,
    pub store: Option<crate::store::Store>,
    pub centre: Option<crate::centre::Centre>,
    /// Origins allowed on SIP over WebSocket ("*": any).
    pub ws_origins: Arc<Vec<String>>,
    /// Bearer token for `/metrics` (None: open).
    pub metrics_token: Option<String>,
    /// The chat page's status as last computed, and when (`GET /chat/status`).
    pub chat_status: Arc<Mutex<Option<(std::time::Instant, serde_json::Value)>>>,
    /// Each queue's service level since a day's start (by its Unix ms), as last read
    /// for `/metrics` or an agent's status bar, and when.
    pub sl_today:
        Arc<tokio::sync::Mutex<std::collections::HashMap<i64, (std::time::Instant, SlToday)>>>,
}

/// `(queue, answered within target, counted)` for each queue with contacts today.
pub type SlToday = Vec<(String, u64, u64)>;

use crate::metrics::Metrics;
use crate::sip::core::CallRef;
use crate::sip::transport::Transports;
use crate::sip::Transport;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use error::ApiError;
use futures_util::StreamExt;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Calls placed through the API and not yet taken by the SIP driver; beyond, `POST
/// /api/calls` answers 503 with `Retry-After`.
pub const ORIGINATE_QUEUE: usize = 64;

async fn healthz(shared: web::Data<Shared>) -> HttpResponse {
    if shared.metrics.lock().unwrap().serving {
        HttpResponse::Ok().content_type("text/plain").body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("draining\n")
    }
}

async fn metrics(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(want) = &shared.metrics_token {
        let got = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !got.is_some_and(|g| token_eq(g, want)) {
            return error(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "/metrics needs Authorization: Bearer <http.metrics_token>",
            )
            .into();
        }
    }
    let mut body = shared.metrics.lock().unwrap().render();
    if let Some(c) = &shared.centre {
        crate::metrics::render_mailboxes(&mut body, &c.mail_statuses());
        if let Ok(g) = c.router().send(crate::actors::router::GaugesNow).await {
            crate::metrics::render_centre(&mut body, &g);
        }
        match kpis::service_level_since(&shared, c, kpis::utc_midnight()).await {
            Ok(v) => crate::metrics::render_service_level(&mut body, &v),
            Err(e) => {
                tracing::warn!(error = %e, "the service level of the day could not be read for /metrics")
            }
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    to: String,
    trunk: Option<String>,
    /// Record this call (default: `calls.record`).
    record: Option<bool>,
}

/// The pages' policy: scripts, styles and connections from this origin only (no
/// inline script, so injected markup cannot run), never framed (no clickjacking), types
/// not sniffed, no referrer sent away.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A page or asset built into the binary, with the security headers.
pub(crate) fn page(kind: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

/// A refusal: `{"error": reason}` with `status`.
pub(crate) fn error(status: actix_web::http::StatusCode, reason: &str) -> ApiError {
    ApiError::new(status, reason)
}

/// Compares a presented token with the configured one in constant time (over digests,
/// so not even the length shows).
pub(crate) fn token_eq(got: &str, want: &str) -> bool {
    use sha2::{Digest, Sha256};
    crate::sip::auth::constant_time_eq(&Sha256::digest(got), &Sha256::digest(want))
}

/// The bearer token a request carries.
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

pub(crate) fn authorised(req: &HttpRequest, shared: &Shared) -> Result<(), ApiError> {
    use actix_web::http::StatusCode;
    let Some(tok) = &shared.admin_token else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "no admin token is configured (http.admin_token)",
        ));
    };
    let got = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match got {
        Some(g) if token_eq(g, tok) => Ok(()),
        Some(_) => Err(error(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer token",
        )),
    }
}

async fn place_call(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    use actix_web::http::StatusCode;
    authorised(&req, &shared)?;
    let b: CallBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if b.to.is_empty()
        || !b
            .to
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-._".contains(c))
    {
        return Err(ApiError::bad_request(
            "\"to\" must be a number or user name (digits, letters, + * # - . _)",
        ));
    }
    // A customer known by the number who withdrew their recording consent is not
    // recorded (their consent wins over the request).
    let store = store(&shared)?;
    let consent_withdrawn = match store.lookup("phone", &b.to).await? {
        Some(c) => store.recording_withdrawn(c.id).await?,
        None => false,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let shutting_down = || error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    let request = OriginateRequest {
        to: b.to,
        trunk: b.trunk,
        record: b.record,
        consent_withdrawn,
        reply: tx,
    };
    match shared.originate.try_send(request) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many calls being placed; try again",
            )
            .retry_after(1))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => return Err(shutting_down()),
    }
    let call = rx.await.map_err(|_| shutting_down())?;
    let mut reply = serde_json::json!({ "call": call.to_string() });
    if consent_withdrawn {
        reply["not_recorded"] = "the callee withdrew their recording consent".into();
    }
    Ok(HttpResponse::Accepted().json(reply))
}

/// `GET /api/interactions?limit=N`: the most recent interactions, newest first, with
/// what each caller entered (admin token).
async fn interactions(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    authorised(&req, &shared)?;
    let store = store(&shared)?;
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad query string"))?;
    let limit = match q.get("limit").map(|l| l.parse::<u32>()) {
        None => 50,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => {
            return Err(ApiError::bad_request(
                "limit must be a number from 1 to 1000",
            ))
        }
    };
    Ok(HttpResponse::Ok().json(store.recent_interactions(limit).await?))
}

/// `GET /api/interactions/{id}`: one interaction and its timeline (admin token, or a
/// supervisor's for the work of their queues and agents).
async fn interaction(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let who = supervisor::viewer(&req, &shared)?;
    let store = store(&shared)?;
    let id = path.into_inner();
    let i = store.interaction(&id).await?.ok_or_else(|| {
        error(
            actix_web::http::StatusCode::NOT_FOUND,
            "no interaction with that id",
        )
    })?;
    // A supervisor reads the work of their queues and agents only, and the read is on
    // record.
    if let supervisor::Viewer::Supervisor { name, scope } = &who {
        if !scope.has_work(i.queue.as_deref(), i.agent.as_deref()) {
            return Err(error(
                actix_web::http::StatusCode::FORBIDDEN,
                "this interaction is outside your queues and teams",
            ));
        }
        agents::centre(&shared)?
            .audit(name, "interaction.read", Some(&id), serde_json::json!({}))
            .await?;
    }
    let t = store.timeline(&id).await?;
    let mut v = serde_json::to_value(i).unwrap_or_default();
    v["timeline"] = serde_json::Value::Array(
        t.into_iter()
            .map(|e| serde_json::json!({"kind": e.kind, "data": e.data, "at": e.at}))
            .collect(),
    );
    // What the customer said of it (a chat's rating), if anything.
    v["survey"] = match store.survey_answer(&id).await? {
        Some(a) => {
            serde_json::json!({"channel": a.channel, "score": a.score, "comment": a.comment, "at": a.at})
        }
        None => serde_json::Value::Null,
    };
    Ok(HttpResponse::Ok().json(v))
}

/// `GET /api/interactions/{id}/recording`: the call's recording (WAV, streamed),
/// for the admin or a supervisor of its queue or agent; every read is in the audit
/// log (`recording.read`).
async fn recording(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    use actix_web::http::StatusCode;
    let who = supervisor::viewer(&req, &shared)?;
    let store = store(&shared)?;
    let id = path.into_inner();
    let i = store
        .interaction(&id)
        .await?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no interaction with that id"))?;
    let (name, role) = match &who {
        supervisor::Viewer::Admin => ("admin".to_string(), "admin"),
        supervisor::Viewer::Supervisor { name, scope } => {
            if !scope.has_work(i.queue.as_deref(), i.agent.as_deref()) {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "this interaction is outside your queues and teams",
                ));
            }
            (name.clone(), "supervisor")
        }
    };
    let c = agents::centre(&shared)?;
    let gone = || {
        error(StatusCode::NOT_FOUND, "this interaction has no recording (never recorded, or deleted by retention or an erasure)")
    };
    let path = i.recording.as_deref().ok_or_else(gone)?;
    let file = c.data_file(std::path::Path::new(path))?.ok_or_else(gone)?;
    let f = tokio::fs::File::open(&file).await.map_err(|_| gone())?;
    let size = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    c.store()
        .audit(&crate::store::Audit {
            actor: &name,
            role,
            action: "recording.read",
            interaction: Some(&id),
            detail: serde_json::json!({"bytes": size}),
        })
        .await?;
    // 64 KiB at a time: an hour's stereo WAV is never held in memory.
    let stream = futures_util::stream::unfold(Some(f), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("audio/wav")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}.wav\"",
                id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
            ),
        ))
        .streaming(stream))
}

/// What a handler answers: a response, or an [`ApiError`].
pub(crate) type Reply = Result<HttpResponse, ApiError>;

fn store(shared: &Shared) -> Result<&crate::store::Store, ApiError> {
    shared.store.as_ref().ok_or_else(|| {
        error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "the store is not open",
        )
    })
}

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// The HTTP routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| async {
            page(
                "text/html; charset=utf-8",
                include_str!("../../web/index.html"),
            )
        }),
    )
    .route("/healthz", web::get().to(healthz))
    .route("/metrics", web::get().to(metrics))
    .route("/api/calls", web::post().to(place_call))
    .route("/api/interactions", web::get().to(interactions))
    .route("/api/interactions/{id}", web::get().to(interaction))
    .route("/api/kpis", web::get().to(kpis::kpis))
    .route("/api/openapi.json", web::get().to(openapi))
    .route("/api/interactions/{id}/recording", web::get().to(recording))
    .configure(agents::routes)
    .configure(supervisor::routes)
    .configure(privacy::routes)
    .configure(chat::routes)
    .configure(channels::routes)
    .configure(bot::routes)
    .default_service(web::to(|| async {
        HttpResponse::from(error(
            actix_web::http::StatusCode::NOT_FOUND,
            "no such endpoint",
        ))
    }));
}

pub fn serve_http(addr: SocketAddr, shared: Shared) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(shared);
    Ok(
        HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(2)
            .bind(addr)?
            .run(),
    )
}

/// The same API and pages over HTTPS (rustls).
pub fn serve_https(
    addr: SocketAddr,
    shared: Shared,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(shared);
    let cfg = (*tls).clone();
    Ok(
        HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(2)
            .bind_rustls_0_23(addr, cfg)?
            .run(),
    )
}

/// SIP over WebSocket (RFC 7118): subprotocol "sip", one SIP message per frame.
async fn sip_ws(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    let wants_sip = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("sip")));
    if !wants_sip {
        return Ok(error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "WebSocket subprotocol \"sip\" required (RFC 7118)",
        )
        .into());
    }
    // A web page's script is allowed only from a listed origin: otherwise any site
    // could drive SIP from its visitors' browsers (and their addresses).
    if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
        let o = origin
            .to_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        if !shared.ws_origins.iter().any(|a| a == "*" || *a == o) {
            return Ok(error(
                actix_web::http::StatusCode::FORBIDDEN,
                &format!(
                    "Origin {o:?} may not use SIP over WebSocket (allow it in [sip] ws_origins)"
                ),
            )
            .into());
        }
    }
    let peer = req
        .peer_addr()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let transports = shared.transports.clone();
    let (id, _, mut rx) = match transports.register(Transport::Ws, peer) {
        Ok(x) => x,
        Err(why) => {
            return Ok(error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                &why.to_string(),
            )
            .into())
        }
    };
    let (mut resp, mut session, stream) = match actix_ws::handle(&req, body) {
        Ok(x) => x,
        Err(e) => {
            transports.unregister(id);
            return Err(e);
        }
    };
    resp.headers_mut().insert(
        actix_web::http::header::SEC_WEBSOCKET_PROTOCOL,
        actix_web::http::header::HeaderValue::from_static("sip"),
    );
    // One SIP message per WebSocket message, no bigger than a SIP message may be.
    let mut stream = stream.max_frame_size(65_536);
    let lim = transports.stream_limits;
    actix_rt::spawn(async move {
        let close = rx.close.clone();
        let opened = tokio::time::Instant::now();
        let mut spoke = false;
        let mut last = opened;
        loop {
            let deadline = if spoke {
                last + lim.idle
            } else {
                opened + lim.first_message
            };
            tokio::select! {
                out = rx.recv() => match out {
                    Some(b) => {
                        let n = b.len();
                        let r = match std::str::from_utf8(&b) {
                            Ok(t) => session.text(t.to_string()).await,
                            Err(_) => session.binary(b).await,
                        };
                        rx.written(n);
                        if r.is_err() { break; }
                    }
                    None => break,
                },
                msg = stream.next() => {
                    last = tokio::time::Instant::now();
                    match msg {
                        Some(Ok(actix_ws::Message::Text(t))) => { spoke = true; transports.deliver_ws(id, peer, bytes::Bytes::copy_from_slice(t.as_bytes())).await }
                        Some(Ok(actix_ws::Message::Binary(b))) => { spoke = true; transports.deliver_ws(id, peer, b).await }
                        Some(Ok(actix_ws::Message::Ping(p))) => { let _ = session.pong(&p).await; }
                        Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => {}
                    }
                },
                _ = close.notified() => {
                    tracing::info!(%peer, "closing a SIP WebSocket that does not read its answers");
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::info!(%peer, "closing a silent SIP WebSocket");
                    break;
                }
            }
        }
        transports.unregister(id);
        let _ = session.close(None).await;
    });
    Ok(resp)
}

pub fn serve_sip_ws(addr: SocketAddr, shared: Shared) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(shared);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/", web::get().to(sip_ws))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?
    .run())
}
