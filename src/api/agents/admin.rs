//! The admin API: agents (`/api/agents`), queues (`/api/queues`), skills
//! (`/api/skills`) and customers (`/api/customers/{id}`), all behind the admin token.

use super::{body, centre, customer_view, Reply};
use crate::actors::router::{AgentList, QueueList};
use crate::api::authorised;
use crate::api::error::ApiError;
use crate::api::Shared;
use crate::config::{AgentConfig, QueueConfig};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
fn admin(req: &HttpRequest, shared: &Shared) -> Result<(), ApiError> {
    authorised(req, shared)
}

pub(super) async fn list_agents(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    let live = c.router().send(AgentList).await?;
    let v: Vec<_> = c
        .accounts()
        .into_iter()
        .map(|a| {
            let l = live.iter().find(|l| l["name"] == a.spec.name.as_str());
            let mut j = serde_json::to_value(&a.spec).unwrap_or_default();
            if let Some(o) = j.as_object_mut() {
                o.remove("password");
                o.insert("source".into(), a.source.clone().into());
                o.insert(
                    "presence".into(),
                    l.map(|l| l["presence"].clone()).unwrap_or("offline".into()),
                );
                for k in ["work", "consulting"] {
                    o.insert(
                        k.into(),
                        l.map(|l| l[k].clone()).unwrap_or(serde_json::json!([])),
                    );
                }
            }
            j
        })
        .collect();
    Ok(HttpResponse::Ok().json(v))
}

fn check_agent(a: &AgentConfig, queues: &[serde_json::Value]) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, &m));
    if a.name.is_empty()
        || a.name.len() > 64
        || !a
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return bad("name must be 1-64 letters, digits, . _ -".into());
    }
    if !a.password.is_empty() && a.password.len() < 8 {
        return bad("password needs at least 8 characters".into());
    }
    for q in &a.queues {
        if !queues.iter().any(|x| x["name"] == q.as_str()) {
            return bad(format!("no queue named \"{q}\""));
        }
    }
    for c in a.capacity.keys() {
        if crate::routing::parse_channel(c).is_none() {
            return bad(format!(
                "capacity: \"{c}\" is not voice, video, chat, email, sms, whatsapp or api"
            ));
        }
    }
    for (s, l) in &a.skills {
        if !(1..=10).contains(l) {
            return bad(format!("skill \"{s}\": level {l} is not 1-10"));
        }
    }
    Ok(())
}

pub(super) async fn create_agent(
    req: HttpRequest,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    let a: AgentConfig = body(&b)?;
    if a.password.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password is required",
        ));
    }
    let queues = c.router().send(QueueList).await?;
    check_agent(&a, &queues)?;
    let name = a.name.clone();
    c.put_agent(a, true).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"agent": name})))
}

pub(super) async fn update_agent(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    let a: AgentConfig = body(&b)?;
    let name = path.into_inner();
    if a.name != name {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body's name must match the path (agents cannot be renamed)",
        ));
    }
    let queues = c.router().send(QueueList).await?;
    check_agent(&a, &queues)?;
    c.put_agent(a, false).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"agent": name})))
}

pub(super) async fn delete_agent(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    c.delete_agent(&path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn list_queues(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    Ok(HttpResponse::Ok().json(c.router().send(QueueList).await?))
}

pub(super) async fn create_queue(
    req: HttpRequest,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    let q: QueueConfig = body(&b)?;
    if q.name.is_empty() || q.name.len() > 64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name must be 1-64 bytes",
        ));
    }
    if q.offer_timeout_secs == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "offer_timeout_secs must be positive",
        ));
    }
    let name = q.name.clone();
    c.add_queue(q).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"queue": name})))
}

pub(super) async fn skills(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    let mut m: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
    for a in c.accounts() {
        for (s, l) in &a.spec.skills {
            m.entry(s.clone())
                .or_default()
                .push(serde_json::json!({"agent": a.spec.name, "level": l}));
        }
    }
    Ok(HttpResponse::Ok().json(m))
}

pub(super) async fn admin_customer(
    req: HttpRequest,
    path: web::Path<i64>,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    Ok(HttpResponse::Ok().json(customer_view(c, path.into_inner()).await?))
}
