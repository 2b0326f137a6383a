//! An agent's session: log in and out, presence, accepting or rejecting offers, and
//! the customers they serve.

use super::{agent, body, centre, customer_view, who, Reply};
use crate::actors::agent::State;
use crate::actors::router::{AgentList, Answer, QueueConfigs, QueueList, SetPresence};
use crate::api::error::ApiError;
use crate::api::Shared;
use crate::routing::engine::Presence;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

pub(super) async fn login(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let l: LoginBody = body(&b)?;
    let from = req
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let token = c.login_from(from, &l.name, &l.password).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"token": token, "agent": l.name})))
}

pub(super) async fn logout(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    c.logout(&me);
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn me(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let a = c
        .agent_addr(&me)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "logged out"))?;
    Ok(HttpResponse::Ok().json(a.send(State).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    presence: String,
}

pub(super) async fn presence(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let p: PresenceBody = body(&b)?;
    let presence = match p.presence.as_str() {
        "available" => Presence::Available,
        "away" => Presence::Away,
        "busy" => Presence::Busy,
        other => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST,
                format!("presence \"{other}\" is not available, away or busy (log out with POST /api/agent/logout)"),
            ))
        }
    };
    c.router()
        .send(SetPresence {
            agent: me,
            presence,
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({"presence": p.presence})))
}

pub(super) async fn accept(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    answer(req, path, shared, true).await
}

pub(super) async fn reject(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    answer(req, path, shared, false).await
}

async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
    accept: bool,
) -> Reply {
    let (c, me) = who(&req, &shared)?;
    let interaction = path.into_inner();
    c.router()
        .send(Answer {
            agent: me.clone(),
            interaction: interaction.clone(),
            accept,
        })
        .await??;
    if accept {
        // On record before the reply, so what the agent does next (a note, a
        // look at the customer) finds the work theirs.
        c.store().interaction_assigned(&interaction, &me).await?;
    }
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({"interaction": interaction, "accepted": accept})),
    )
}

/// Only customers the agent serves: offered or assigned now, or served before.
pub(super) async fn agent_customer(
    req: HttpRequest,
    path: web::Path<i64>,
    shared: web::Data<Shared>,
) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let id = path.into_inner();
    let live = match c.agent_addr(&me) {
        Some(a) => {
            let s = a.send(State).await?;
            ["offers", "work"].iter().any(|k| {
                s[k].as_array()
                    .is_some_and(|v| v.iter().any(|w| w["customer"].as_i64() == Some(id)))
            })
        }
        None => false,
    };
    let served = live || c.store().agent_served(&me, id).await?;
    if !served {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "you do not serve this customer",
        ));
    }
    Ok(HttpResponse::Ok().json(customer_view(c, id).await?))
}

/// Who and where an agent can hand a call to: the other agents with their presence now
/// (logged out ones as `offline`), and the queues with what waits in each; and the
/// channels they may text the customer's phone on (`texts`). For the desktop's
/// transfer, consult and text pickers; any logged-in agent may read it.
pub(super) async fn directory(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let live = c.router().send(AgentList).await?;
    let agents: Vec<_> = c
        .accounts()
        .into_iter()
        .filter(|a| a.spec.name != me)
        .map(|a| {
            let presence = live
                .iter()
                .find(|l| l["name"] == a.spec.name.as_str())
                .map_or("offline".into(), |l| l["presence"].clone());
            serde_json::json!({"name": a.spec.name, "presence": presence})
        })
        .collect();
    let queues: Vec<_> = c
        .router()
        .send(QueueList)
        .await?
        .into_iter()
        .map(|q| serde_json::json!({"name": q["name"], "waiting": q["waiting"]}))
        .collect();
    let mut texts = crate::channels::text_channels(&c.channels());
    if c.has_mailboxes() {
        texts.push("email");
    }
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"agents": agents, "queues": queues, "texts": texts})))
}

/// The service level today of the agent's queues that show it to their agents:
/// `?since=MS` (the agent's midnight, Unix ms, within the last 48 hours) →
/// `[{queue, sla_secs, handled, in_sla}]` by the KPI definition (`handled`: the
/// contacts counted since then, `in_sla`: those answered within the queue's target),
/// so the status bar agrees with the reports and the console.
pub(super) async fn service_level(
    req: HttpRequest,
    q: web::Query<std::collections::HashMap<String, String>>,
    shared: web::Data<Shared>,
) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let now = crate::clock::unix_millis() as i64;
    let since = q
        .get("since")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| (now - 48 * 3_600_000..=now).contains(s))
        .ok_or_else(|| {
            ApiError::bad_request("since must be a Unix time in ms within the last 48 hours")
        })?;
    let mine: Vec<String> = c
        .accounts()
        .into_iter()
        .find(|a| a.spec.name == me)
        .map(|a| a.spec.queues)
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut today = None;
    for q in c.router().send(QueueConfigs).await? {
        if !mine.contains(&q.name) || !q.agents_see_service_level {
            continue;
        }
        if today.is_none() {
            today = Some(super::super::kpis::service_level_since(&shared, c, since).await?);
        }
        let (in_sla, handled) = today
            .iter()
            .flatten()
            .find(|(name, _, _)| *name == q.name)
            .map_or((0, 0), |(_, n, d)| (*n, *d));
        out.push(serde_json::json!({"queue": q.name, "sla_secs": q.sla_secs, "handled": handled, "in_sla": in_sla}));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `GET /api/agent/kb?q=TEXT&language=en&channel=whatsapp&limit=5`: knowledge-base
/// articles for some words (the bot's matcher), best first, each with the answer for
/// the channel and how sure the match is.
pub(super) async fn kb_search(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    agent(&req, c)?;
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad query string"))?;
    let found = crate::kb::search_request(&c.kb(), &q).map_err(ApiError::bad_request)?;
    Ok(HttpResponse::Ok().json(found))
}
