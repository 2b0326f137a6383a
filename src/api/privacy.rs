//! Customers' data rights (`crate::privacy`), for the admin and privacy officers
//! (supervisors with `privacy_officer = true`):
//! - `GET /api/privacy/customers/{id}/consents`: the current consent per purpose and
//!   channel and every consent event; `POST` records one (`purpose`, `channel`,
//!   `granted`, `source`, `evidence`), 201 with its id;
//! - `GET /api/privacy/customers/{id}/export`: everything held of the customer as one
//!   tar archive (`export.json`, mail sources, recordings, voicemails);
//!   `?format=json` gives `export.json` alone;
//! - `POST /api/privacy/erasures` `{"customer": ID}`: 201 with the erasure's id and a
//!   preview (counts per kind of data); `POST /api/privacy/erasures/{id}/confirm`
//!   runs it (202); `GET /api/privacy/erasures/{id}` gives its status (`previewed`,
//!   `running`, `completed` with the proof, `failed` with the reason);
//! - `PUT /api/privacy/cases/{id}/hold` places a legal hold on a case, `DELETE`
//!   lifts it;
//! - `POST /api/privacy/retention/run` applies `[retention]` now (the daily job's
//!   work): counts of what it took;
//! - `POST /api/privacy/requests` records a customer's request (access,
//!   rectification, erasure, objection, portability), due in 15 days; `GET` lists
//!   them soonest due first with where each stands; `POST .../{id}/answer` answers
//!   one (an export answers access and portability, an erasure erasure).
//!
//! Every one of these acts is in the audit log.

use super::agents::centre;
use super::error::ApiError;
use super::supervisor::{viewer, Viewer};
use super::Shared;
use crate::centre::privacy::{Actor, ExportFile};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

type Reply = Result<HttpResponse, ApiError>;

/// Who asks, if they may: the admin, or a privacy officer (403 for other
/// supervisors, 401 for anyone else).
fn officer(req: &HttpRequest, shared: &Shared) -> Result<(String, &'static str), ApiError> {
    match viewer(req, shared)? {
        Viewer::Admin => Ok(("admin".into(), "admin")),
        Viewer::Supervisor { name, .. } => {
            let c = centre(shared)?;
            if c.supervisor(&name).is_some_and(|s| s.spec.privacy_officer) {
                Ok((name, "supervisor"))
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "only the admin and privacy officers (privacy_officer = true) handle customers' data rights",
                ))
            }
        }
    }
}

/// A JSON body, or a 400 saying what is wrong with it.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn id_in(path: &str, what: &str) -> Result<i64, ApiError> {
    path.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{path:?} is not {what} number")))
}

async fn consents(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    officer(&req, &shared)?;
    let id = id_in(&path, "a customer")?;
    Ok(HttpResponse::Ok().json(centre(&shared)?.consents_of(id).await?))
}

async fn add_consent(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let id = id_in(&path, "a customer")?;
    let v: serde_json::Value = json_body(&body)?;
    let e = crate::privacy::ConsentEvent::from_json(&v, &name).map_err(ApiError::bad_request)?;
    let event = centre(&shared)?
        .record_consent(id, &e, &Actor { name: &name, role })
        .await?;
    Ok(HttpResponse::Created()
        .json(serde_json::json!({"event": event, "consent": e.kind(), "granted": e.granted})))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

async fn export(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ExportQuery>,
    shared: web::Data<Shared>,
) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let id = id_in(&path, "a customer")?;
    let json_only = match q.format.as_deref() {
        None | Some("tar") => false,
        Some("json") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {f:?} is not tar or json"
            )))
        }
    };
    let mut files = centre(&shared)?
        .export_customer(id, &Actor { name: &name, role })
        .await?;
    if json_only {
        if let Some(ExportFile::Bytes(_, body)) = files.into_iter().next() {
            return Ok(HttpResponse::Ok()
                .content_type("application/json")
                .body(body));
        }
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the export is empty",
        ));
    }
    // Streamed: a recording is read from disk as the archive goes out.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let mtime = crate::clock::unix_secs();
    actix_rt::spawn(async move {
        use tokio::io::AsyncReadExt;
        for f in files.drain(..) {
            let (name, size) = match &f {
                ExportFile::Bytes(n, b) => (n.clone(), b.len() as u64),
                ExportFile::File(n, _, size) => (n.clone(), *size),
            };
            let Ok(h) = crate::privacy::tar_header(&name, size, mtime) else {
                continue;
            };
            if tx
                .send(Ok(bytes::Bytes::copy_from_slice(&h)))
                .await
                .is_err()
            {
                return;
            }
            match f {
                ExportFile::Bytes(_, b) => {
                    if tx.send(Ok(b.into())).await.is_err() {
                        return;
                    }
                }
                ExportFile::File(_, path, _) => {
                    let mut left = size;
                    let mut file = match tokio::fs::File::open(&path).await {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let mut buf = vec![0u8; 64 * 1024];
                    while left > 0 {
                        let want = buf.len().min(left as usize);
                        match file.read(&mut buf[..want]).await {
                            Ok(0) => {
                                // Shorter than when it was listed: the archive cannot
                                // be completed truthfully.
                                let _ = tx
                                    .send(Err(std::io::Error::other(
                                        "a file shrank while it was exported",
                                    )))
                                    .await;
                                return;
                            }
                            Ok(n) => {
                                left -= n as u64;
                                if tx
                                    .send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                    }
                }
            }
            let pad = crate::privacy::tar_padding(size);
            if pad > 0
                && tx
                    .send(Ok(bytes::Bytes::from(vec![0u8; pad])))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let _ = tx
            .send(Ok(bytes::Bytes::from_static(&crate::privacy::TAR_END)))
            .await;
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok(HttpResponse::Ok()
        .content_type("application/x-tar")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"customer-{id}.tar\""),
        ))
        .streaming(stream))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureBody {
    customer: i64,
}

async fn request_erasure(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let b: ErasureBody = json_body(&body)?;
    let c = centre(&shared)?;
    let (id, _) = c
        .request_erasure(b.customer, &Actor { name: &name, role })
        .await?;
    Ok(HttpResponse::Created().json(c.erasure_json(id).await?))
}

async fn confirm_erasure(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let id = id_in(&path, "an erasure")?;
    let v = centre(&shared)?
        .confirm_erasure(id, &Actor { name: &name, role })
        .await?;
    Ok(HttpResponse::Accepted().json(v))
}

async fn erasure(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    officer(&req, &shared)?;
    let id = id_in(&path, "an erasure")?;
    Ok(HttpResponse::Ok().json(centre(&shared)?.erasure_json(id).await?))
}

/// `PUT` places a legal hold on a case (retention leaves it alone, its customer
/// cannot be erased); `DELETE` lifts it.
async fn hold(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let id = id_in(&path, "a case")?;
    let place = req.method() == actix_web::http::Method::PUT;
    let v = centre(&shared)?
        .legal_hold(id, place, &Actor { name: &name, role })
        .await?;
    Ok(HttpResponse::Ok().json(v))
}

/// Applies retention now (as the daily job does): what it took.
async fn retention(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let v = centre(&shared)?
        .apply_retention(
            crate::clock::unix_millis() as i64,
            &Actor { name: &name, role },
        )
        .await?;
    Ok(HttpResponse::Ok().json(v))
}

/// `POST /api/privacy/requests`: a customer's request recorded (201), due in 15 days.
async fn add_request(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let v: serde_json::Value = json_body(&body)?;
    let r = crate::privacy::requests::NewRequest::from_json(&v, crate::clock::unix_millis() as i64)
        .map_err(ApiError::bad_request)?;
    let v = centre(&shared)?
        .record_request(&r, &Actor { name: &name, role })
        .await?;
    Ok(HttpResponse::Created().json(v))
}

/// `GET /api/privacy/requests?open=true`: the requests, soonest due first, each with
/// where it stands (`open`, `overdue`, `answered`, `answered_late`).
async fn requests(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    officer(&req, &shared)?;
    let open = match web::Query::<std::collections::HashMap<String, String>>::from_query(
        req.query_string(),
    )
    .map_err(|_| ApiError::bad_request("bad query string"))?
    .get("open")
    .map(String::as_str)
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "open must be true or false, not {o:?}"
            )))
        }
    };
    Ok(HttpResponse::Ok().json(centre(&shared)?.requests_json(open).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    answer: String,
}

/// `POST /api/privacy/requests/{id}/answer` `{"answer": text}`: answered (once).
async fn answer_request(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (name, role) = officer(&req, &shared)?;
    let id = id_in(&path, "a request")?;
    let b: AnswerBody = json_body(&body)?;
    let max = crate::privacy::requests::MAX_NOTE;
    if b.answer.trim().is_empty() || b.answer.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "\"answer\" must be text of 1 to {max} characters"
        )));
    }
    let v = centre(&shared)?
        .answer_request(id, &b.answer, &Actor { name: &name, role })
        .await?;
    Ok(HttpResponse::Ok().json(v))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/privacy/customers/{id}/consents",
        web::get().to(consents),
    )
    .route(
        "/api/privacy/customers/{id}/consents",
        web::post().to(add_consent),
    )
    .route("/api/privacy/customers/{id}/export", web::get().to(export))
    .route("/api/privacy/erasures", web::post().to(request_erasure))
    .route("/api/privacy/erasures/{id}", web::get().to(erasure))
    .route(
        "/api/privacy/erasures/{id}/confirm",
        web::post().to(confirm_erasure),
    )
    .route("/api/privacy/cases/{id}/hold", web::put().to(hold))
    .route("/api/privacy/cases/{id}/hold", web::delete().to(hold))
    .route("/api/privacy/retention/run", web::post().to(retention))
    .route("/api/privacy/requests", web::post().to(add_request))
    .route("/api/privacy/requests", web::get().to(requests))
    .route(
        "/api/privacy/requests/{id}/answer",
        web::post().to(answer_request),
    );
}
