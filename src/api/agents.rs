//! The agent API (`/api/agent/...`: log in, presence, offers, messages, transfers,
//! wrap-up, notes, customers they serve, and their WebSocket) and the admin API for
//! agents, queues and skills (`/api/agents`, `/api/queues`, `/api/skills`,
//! `/api/customers/{id}`). Every endpoint wants a bearer token: an agent's session
//! token (from `POST /api/agent/login`) or the admin token.

use super::authorised;
use super::error::ApiError;
use super::Shared;
use crate::actors::agent::{Connect, State};
use crate::actors::call::AgentCall;
use crate::actors::chat::{AgentAct, ChatError};
use crate::actors::router::{
    AgentList, Answer, Consult, EndConsult, QueueList, SetPresence, Transfer, TransferTarget,
};
use crate::call::AgentCommand;
use crate::centre::Centre;
use crate::config::{AgentConfig, QueueConfig};
use crate::routing::engine::Presence;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;

type Reply = Result<HttpResponse, ApiError>;

fn centre(shared: &Shared) -> Result<&Centre, ApiError> {
    shared.centre.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the contact centre is not running",
        )
    })
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

/// The agent whose session token this request carries.
fn agent(req: &HttpRequest, c: &Centre) -> Result<String, ApiError> {
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

fn body<T: DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

// ------------------------------------------------------------------ agents

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let l: LoginBody = body(&b)?;
    let from = req
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let token = c.login_from(from, &l.name, &l.password).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"token": token, "agent": l.name})))
}

async fn logout(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    c.logout(&me);
    Ok(HttpResponse::NoContent().finish())
}

async fn me(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
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

async fn presence(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
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

async fn answer(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let (interaction, verb) = path.into_inner();
    let accept = match verb.as_str() {
        "accept" => true,
        "reject" => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint (accept or reject)",
            ))
        }
    };
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

/// The interaction, if it is (or was) this agent's.
async fn own(c: &Centre, me: &str, id: &str) -> Result<crate::store::Interaction, ApiError> {
    let i = c
        .store()
        .interaction(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no interaction with that id"))?;
    if i.agent.as_deref() == Some(me) {
        return Ok(i);
    }
    // An agent who had it before a transfer may still note and wrap up their part.
    let had_it = c
        .store()
        .timeline(id)
        .await?
        .iter()
        .any(|e| e.kind == "assigned" && e.data["agent"] == me);
    if !had_it {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this interaction is not yours",
        ));
    }
    Ok(i)
}

fn chat_of(c: &Centre, id: &str) -> Result<actix::Addr<crate::actors::chat::ChatActor>, ApiError> {
    c.chat(id).map(|(_, a)| a).ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "no live chat with that id (ended, or not a chat)",
        )
    })
}

fn acted(r: Result<Result<u64, ChatError>, actix::MailboxError>) -> Result<u64, ApiError> {
    Ok(r??)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingBody {
    on: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    on: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsultBody {
    agent: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DtmfBody {
    digits: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrapBody {
    disposition: String,
    #[serde(default)]
    resolved: bool,
}

fn text(t: &str) -> Result<String, ApiError> {
    let t = t.trim();
    if t.is_empty() || t.len() > 8000 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "text must be 1 to 8000 bytes",
        ));
    }
    Ok(t.to_string())
}

async fn work(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let c = centre(&shared)?;
    let me = agent(&req, c)?;
    let (id, verb) = path.into_inner();
    match verb.as_str() {
        "messages" => {
            let t: TextBody = body(&b)?;
            let text = text(&t.text)?;
            let seq = acted(
                chat_of(c, &id)?
                    .send(AgentAct::Says { agent: me, text })
                    .await,
            )?;
            Ok(HttpResponse::Created().json(serde_json::json!({"seq": seq})))
        }
        "typing" => {
            let t: TypingBody = body(&b)?;
            acted(
                chat_of(c, &id)?
                    .send(AgentAct::Typing { agent: me, on: t.on })
                    .await,
            )?;
            Ok(HttpResponse::NoContent().finish())
        }
        "hangup" => call_act(c, &id, AgentCall(AgentCommand::Hangup { agent: me })).await,
        "hold" => {
            let h: HoldBody = body(&b)?;
            call_act(c, &id, AgentCall(AgentCommand::Hold { agent: me, on: h.on })).await
        }
        "consult" => {
            let t: ConsultBody = body(&b)?;
            // The router keeps the colleague for the consult (no other work is
            // offered to them meanwhile); they must be available.
            c.router()
                .send(Consult {
                    agent: me.clone(),
                    interaction: id.clone(),
                    colleague: t.agent.clone(),
                })
                .await
                ??;
            let r = call_act(
                c,
                &id,
                AgentCall(AgentCommand::Consult {
                    agent: me,
                    to: t.agent.clone(),
                }),
            )
            .await;
            if r.is_err() {
                c.router().do_send(EndConsult {
                    interaction: id.clone(),
                    colleague: t.agent,
                });
            }
            r
        }
        "complete" => call_act(c, &id, AgentCall(AgentCommand::Complete { agent: me })).await,
        "cancel_consult" => call_act(c, &id, AgentCall(AgentCommand::CancelConsult { agent: me })).await,
        "dtmf" => {
            let d: DtmfBody = body(&b)?;
            call_act(
                c,
                &id,
                AgentCall(AgentCommand::Digits {
                    agent: me,
                    digits: d.digits,
                }),
            )
            .await
        }
        "verify" => {
            let customer = acted(chat_of(c, &id)?.send(AgentAct::Verify { agent: me }).await)?;
            Ok(HttpResponse::Ok().json(serde_json::json!({"customer": customer})))
        }
        "end" => {
            acted(chat_of(c, &id)?.send(AgentAct::End { agent: me }).await)?;
            Ok(HttpResponse::Ok().json(serde_json::json!({"ended": id})))
        }
        "transfer" => {
            let to: TransferTarget = body(&b).map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST,
                    "body must be {\"agent\": NAME} or {\"queue\": NAME}",
                )
            })?;
            c.router()
                .send(Transfer {
                    agent: me,
                    interaction: id.clone(),
                    to,
                })
                .await
                ??;
            Ok(HttpResponse::Ok().json(serde_json::json!({"transferred": id})))
        }
        "wrap_up" => {
            let w: WrapBody = body(&b)?;
            let d = w.disposition.trim();
            if d.is_empty() || d.len() > 200 {
                return Err(ApiError::new(StatusCode::BAD_REQUEST,
                    "disposition must be 1 to 200 bytes",
                ));
            }
            let i = own(c, &me, &id).await?;
            let mut handed_on = i.agent.as_deref() != Some(me.as_str());
            if i.ended_at.is_none() && !handed_on {
                let still_mine = match c.agent_addr(&me) {
                    Some(a) => a.send(State).await?["work"]
                        .as_array()
                        .is_some_and(|w| w.iter().any(|x| x["interaction"] == id.as_str())),
                    None => false,
                };
                if still_mine {
                    return Err(ApiError::new(StatusCode::CONFLICT,
                        "the interaction is still going on; end it first",
                    ));
                }
                handed_on = true;
            }
            if handed_on {
                // Handed on (a transfer): this agent's part is wrapped up on the
                // timeline; the interaction's disposition is the last agent's.
                c.store()
                    .add_timeline(
                        &id,
                        "wrapped up",
                        serde_json::json!({"agent": me, "disposition": d, "resolved": w.resolved, "handed_on": true}),
                    )
                    .await?;
                return Ok(HttpResponse::Ok().json(serde_json::json!({"interaction": id, "disposition": d, "resolved": w.resolved, "handed_on": true})));
            }
            c.store()
                .wrap_up(&id, &me, d, w.resolved)
                .await?;
            Ok(HttpResponse::Ok().json(serde_json::json!({"interaction": id, "disposition": d, "resolved": w.resolved})))
        }
        "notes" => {
            let t: TextBody = body(&b)?;
            let text = text(&t.text)?;
            own(c, &me, &id).await?;
            c.store()
                .add_timeline(&id, "note", serde_json::json!({"agent": me, "text": text}))
                .await?;
            Ok(HttpResponse::Created().json(serde_json::json!({"interaction": id})))
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND,
            "no such endpoint (messages, typing, end, verify, hangup, hold, dtmf, consult, complete, cancel_consult, transfer, wrap_up, notes)",
        )),
    }
}

async fn customer_view(c: &Centre, id: i64) -> Result<serde_json::Value, ApiError> {
    c.customer_view(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no customer with that id"))
}

/// Only customers the agent serves: offered or assigned now, or served before.
async fn agent_customer(
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

/// The agent's WebSocket: `GET /api/agent/ws`, then `{"type": "auth", "token": T}` as
/// the first frame (browsers cannot set headers on a WebSocket; a token in the URL would
/// land in access logs), or an `Authorization: Bearer` header. Pushes the agent's state,
/// then every change, as JSON text frames; closes at logout, at the session's end or
/// when the desktop does not read.
async fn agent_ws(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    let c = match centre(&shared) {
        Ok(c) => c.clone(),
        Err(e) => return Ok(e.into()),
    };
    // The session token comes in the first frame (`{"type": "auth", "token": T}`) or
    // an Authorization header, never in the URL (where access logs keep it).
    let header_token = bearer(&req);
    let (resp, mut session, stream) = actix_ws::handle(&req, payload)?;
    let mut stream = stream.max_frame_size(1 << 20);
    actix_rt::spawn(async move {
        let token = match header_token {
            Some(t) => Some(t),
            None => first_frame_token(&mut stream).await,
        };
        let me = token.as_deref().and_then(|t| c.session(t));
        let (Some(token), Some(me)) = (token, me) else {
            let _ = session
                .text(serde_json::json!({"type": "error", "error": "unknown or missing session token: send {\"type\": \"auth\", \"token\": ...} first"}).to_string())
                .await;
            let _ = session
                .close(Some(actix_ws::CloseCode::Policy.into()))
                .await;
            return;
        };
        let Some(addr) = c.agent_addr(&me) else {
            let _ = session
                .text(serde_json::json!({"type": "logged_out"}).to_string())
                .await;
            let _ = session.close(None).await;
            return;
        };
        // The agent's pushes (bounded: the actor drops a socket that does not read,
        // and a logout stops the actor; either way this channel closes and so does
        // the socket) and the answers to this socket's own requests.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(crate::actors::agent::SOCKET_QUEUE);
        addr.do_send(Connect(tx));
        let (reply_tx, mut replies) = tokio::sync::mpsc::channel::<String>(16);
        let mut check = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(t) => if session.text(t).await.is_err() { break },
                    None => break,
                },
                Some(t) = replies.recv() => if session.text(t).await.is_err() { break },
                _ = check.tick() => if !c.session_alive(&token) {
                    let _ = session.text(serde_json::json!({"type": "logged_out"}).to_string()).await;
                    break;
                },
                m = stream.next() => match m {
                    Some(Ok(actix_ws::Message::Ping(p))) => { let _ = session.pong(&p).await; }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(actix_ws::Message::Text(t))) => {
                        if c.session(&token).is_none() {
                            let _ = session.text(serde_json::json!({"type": "logged_out"}).to_string()).await;
                            break;
                        }
                        let (c, me, reply_tx) = (c.clone(), me.clone(), reply_tx.clone());
                        actix_rt::spawn(async move {
                            // A desktop that floods requests loses answers, not memory.
                            let _ = reply_tx.try_send(ws_request(&c, &me, &t).await.to_string());
                        });
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}

/// The token in a desktop's first frame, if it comes within 10 s.
async fn first_frame_token(stream: &mut actix_ws::MessageStream) -> Option<String> {
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .ok()??;
    let actix_ws::Message::Text(t) = first.ok()? else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(&t).ok()?;
    (v["type"] == "auth").then(|| v["token"].as_str().map(str::to_string))?
}

/// What an agent's desktop asks over its WebSocket, answered on it:
/// `{"type": "webrtc_offer", "interaction": ID, "sdp": OFFER}` → `{"type":
/// "webrtc_answer", "interaction": ID, "sdp": ANSWER}`; failures come back as
/// `{"type": "error", "interaction": ID, "error": WHY}`.
async fn ws_request(c: &Centre, me: &str, text: &str) -> serde_json::Value {
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return serde_json::json!({"type": "error", "error": format!("not JSON: {e}")}),
    };
    let id = v["interaction"].as_str().unwrap_or_default().to_string();
    let fail = |e: &str| serde_json::json!({"type": "error", "interaction": id, "error": e});
    match v["type"].as_str() {
        Some("webrtc_offer") => {
            let Some(sdp) = v["sdp"].as_str() else {
                return fail("webrtc_offer needs \"sdp\"");
            };
            let Some(call) = c.call(&id) else {
                return fail("no live call with that interaction id");
            };
            let r = call
                .send(AgentCall(AgentCommand::Offer {
                    agent: me.to_string(),
                    sdp: sdp.to_string(),
                }))
                .await;
            match r {
                Ok(Ok(a)) => {
                    serde_json::json!({"type": "webrtc_answer", "interaction": id, "sdp": a["sdp"]})
                }
                Ok(Err(e)) => fail(&e.to_string()),
                Err(e) => fail(&e.to_string()),
            }
        }
        _ => fail("unknown request type (webrtc_offer)"),
    }
}

/// A call's agent acts on it (`hangup`, `hold`, `dtmf`).
async fn call_act(c: &Centre, id: &str, act: AgentCall) -> Result<HttpResponse, ApiError> {
    let call = c.call(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no live call with that interaction id",
        )
    })?;
    let r = call.send(act).await??;
    Ok(HttpResponse::Ok().json(r))
}

// ------------------------------------------------------------------ admin

fn admin(req: &HttpRequest, shared: &Shared) -> Result<(), ApiError> {
    authorised(req, shared)
}

async fn list_agents(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
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

async fn create_agent(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
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

async fn update_agent(
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

async fn delete_agent(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    c.delete_agent(&path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_queues(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    Ok(HttpResponse::Ok().json(c.router().send(QueueList).await?))
}

async fn create_queue(req: HttpRequest, b: web::Bytes, shared: web::Data<Shared>) -> Reply {
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

async fn skills(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
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

async fn admin_customer(
    req: HttpRequest,
    path: web::Path<i64>,
    shared: web::Data<Shared>,
) -> Reply {
    admin(&req, &shared)?;
    let c = centre(&shared)?;
    Ok(HttpResponse::Ok().json(customer_view(c, path.into_inner()).await?))
}

/// The agent desktop: three files from `web/`, built into the binary (no CDN).
fn asset(kind: &'static str, body: &'static str) -> HttpResponse {
    super::page(kind, body)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/agent",
        web::get().to(|| async {
            asset(
                "text/html; charset=utf-8",
                include_str!("../../web/agent.html"),
            )
        }),
    )
    .route(
        "/agent/app.js",
        web::get().to(|| async {
            asset(
                "text/javascript; charset=utf-8",
                include_str!("../../web/agent.js"),
            )
        }),
    )
    .route(
        "/agent/app.css",
        web::get().to(|| async {
            asset(
                "text/css; charset=utf-8",
                include_str!("../../web/agent.css"),
            )
        }),
    );
    cfg.route("/api/agent/login", web::post().to(login))
        .route("/api/agent/logout", web::post().to(logout))
        .route("/api/agent/me", web::get().to(me))
        .route("/api/agent/presence", web::put().to(presence))
        .route("/api/agent/offers/{id}/{verb}", web::post().to(answer))
        .route("/api/agent/work/{id}/{verb}", web::post().to(work))
        .route("/api/agent/customers/{id}", web::get().to(agent_customer))
        .route("/api/agent/ws", web::get().to(agent_ws))
        .route("/api/agents", web::get().to(list_agents))
        .route("/api/agents", web::post().to(create_agent))
        .route("/api/agents/{name}", web::put().to(update_agent))
        .route("/api/agents/{name}", web::delete().to(delete_agent))
        .route("/api/queues", web::get().to(list_queues))
        .route("/api/queues", web::post().to(create_queue))
        .route("/api/skills", web::get().to(skills))
        .route("/api/customers/{id}", web::get().to(admin_customer));
}
