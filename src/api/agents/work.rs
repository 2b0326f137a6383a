//! Acts on an agent's assigned work, one handler per route
//! (`POST /api/agent/work/{id}/<act>`): chats (messages, typing, verify, end), calls
//! (hangup, hold, dtmf, consult, complete, cancel_consult) and any work (transfer,
//! wrap_up, notes).

use super::{body, who, Reply};
use crate::actors::agent::{Holds, State};
use crate::actors::call::AgentCall;
use crate::actors::chat::{AgentAct, ChatError};
use crate::actors::router::{Consult, EndConsult, QueueConfigs, Transfer, TransferTarget};
use crate::api::error::ApiError;
use crate::api::Shared;
use crate::call::AgentCommand;
use crate::centre::Centre;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

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
    // The desktop hears of its work as the router assigns it, while the store records
    // the answer: the agent's desk is the first to know.
    if let Some(a) = c.agent_addr(me) {
        if a.send(Holds(id.to_string())).await? {
            return Ok(i);
        }
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

/// `act` on the live chat `id`: its answer (a number), or why not.
async fn chat_act(c: &Centre, id: &str, act: AgentAct) -> Result<u64, ApiError> {
    let r: Result<Result<u64, ChatError>, actix::MailboxError> = chat_of(c, id)?.send(act).await;
    Ok(r??)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
    /// To the customer's phone on another channel (`sms`, `whatsapp`, an account's
    /// name) instead of the chat itself.
    #[serde(default)]
    channel: Option<String>,
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
struct TemplateBody {
    name: String,
    #[serde(default)]
    parameters: Vec<String>,
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

/// A message's text, trimmed: 1 to 8000 bytes, or a 400 saying so.
pub(crate) fn text(t: &str) -> Result<String, ApiError> {
    let t = t.trim();
    if t.is_empty() || t.len() > 8000 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "text must be 1 to 8000 bytes",
        ));
    }
    Ok(t.to_string())
}

/// What every act on work starts with: the agent (authenticated before anything else
/// in the request is read) and the interaction id.
fn start<'a>(
    req: &HttpRequest,
    shared: &'a Shared,
    path: web::Path<String>,
) -> Result<(&'a Centre, String, String), ApiError> {
    let (c, me) = who(req, shared)?;
    Ok((c, me, path.into_inner()))
}

/// A chat message from the agent: `{text}` → 201 `{seq}`.
pub(super) async fn messages(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let t: TextBody = body(&b)?;
    let text = text(&t.text)?;
    if let Some(channel) = t.channel {
        let i = own(c, &me, &id).await?;
        if i.ended_at.is_some() {
            return Err(ApiError::new(
                StatusCode::GONE,
                "this interaction has ended",
            ));
        }
        let (account, to) = c.send_on_channel(&i, &me, &channel, &text).await?;
        return Ok(HttpResponse::Accepted()
            .json(serde_json::json!({"status": "queued", "account": account, "to": to})));
    }
    let seq = chat_act(c, &id, AgentAct::Says { agent: me, text }).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"seq": seq})))
}

/// An approved template of a WhatsApp thread's account: `{name, parameters}` (what may
/// go once the 24-hour reply window has closed).
pub(super) async fn template(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let t: TemplateBody = body(&b)?;
    let seq = chat_act(
        c,
        &id,
        AgentAct::Template {
            agent: me,
            name: t.name,
            parameters: t.parameters,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"seq": seq})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    seq: u64,
}

/// One of the agent's messages on a provider thread that failed, sent again: `{seq}`
/// → 202 `{seq}`.
pub(super) async fn retry(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let r: RetryBody = body(&b)?;
    let seq = chat_act(
        c,
        &id,
        AgentAct::Retry {
            agent: me,
            seq: r.seq,
        },
    )
    .await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({"seq": seq})))
}

/// The agent is typing, or stopped: `{on}`.
pub(super) async fn typing(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let t: TypingBody = body(&b)?;
    chat_act(
        c,
        &id,
        AgentAct::Typing {
            agent: me,
            on: t.on,
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The agent checked the customer is who they typed.
pub(super) async fn verify(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let customer = chat_act(c, &id, AgentAct::Verify { agent: me }).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"customer": customer})))
}

/// Video with the customer (`POST /api/agent/work/{id}/video`). On a call: the
/// caller's phone is offered video (a re-INVITE); when it takes it, the desktop is
/// pushed `renegotiate`. On a web chat: the customer's page shows the invitation and,
/// when they join, calls (it rings the agent like any video call from the chat).
pub(super) async fn invite_video(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    if !c.browser_calls() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "video calls are off here (no [webrtc] port)",
        ));
    }
    if let Some(call) = c.call(&id) {
        let r = call
            .send(AgentCall(AgentCommand::AddVideo { agent: me }))
            .await??;
        return Ok(HttpResponse::Accepted().json(r));
    }
    chat_act(c, &id, AgentAct::InviteVideo { agent: me }).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({"invited": true})))
}

/// Ends a chat.
pub(super) async fn end(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    chat_act(c, &id, AgentAct::End { agent: me }).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ended": id})))
}

/// Hangs up the call.
pub(super) async fn hangup(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    call_act(c, &id, AgentCall(AgentCommand::Hangup { agent: me })).await
}

/// Holds or resumes the call: `{on}`.
pub(super) async fn hold(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let h: HoldBody = body(&b)?;
    call_act(
        c,
        &id,
        AgentCall(AgentCommand::Hold {
            agent: me,
            on: h.on,
        }),
    )
    .await
}

/// Sends keys on the call: `{digits}`.
pub(super) async fn dtmf(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let d: DtmfBody = body(&b)?;
    let digits = d.digits;
    call_act(
        c,
        &id,
        AgentCall(AgentCommand::Digits { agent: me, digits }),
    )
    .await
}

/// Calls a colleague while the caller holds: `{agent}`.
pub(super) async fn consult(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let t: ConsultBody = body(&b)?;
    // The router keeps the colleague for the consult (no other work is offered to
    // them meanwhile); they must be available.
    c.router()
        .send(Consult {
            agent: me.clone(),
            interaction: id.clone(),
            colleague: t.agent.clone(),
        })
        .await??;
    let to = t.agent.clone();
    let r = call_act(c, &id, AgentCall(AgentCommand::Consult { agent: me, to })).await;
    if r.is_err() {
        c.router().do_send(EndConsult {
            interaction: id.clone(),
            colleague: t.agent,
        });
    }
    r
}

/// Hands the caller to the consulted colleague.
pub(super) async fn complete(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    call_act(c, &id, AgentCall(AgentCommand::Complete { agent: me })).await
}

/// Ends the consult and returns to the caller.
pub(super) async fn cancel_consult(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    call_act(c, &id, AgentCall(AgentCommand::CancelConsult { agent: me })).await
}

/// Blind transfer: `{agent}` or `{queue}`.
pub(super) async fn transfer(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let to: TransferTarget = body(&b).map_err(|_| {
        ApiError::bad_request("body must be {\"agent\": NAME} or {\"queue\": NAME}")
    })?;
    c.router()
        .send(Transfer {
            agent: me,
            interaction: id.clone(),
            to,
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({"transferred": id})))
}

/// Wrap-up: `{disposition, resolved}`.
pub(super) async fn wrap_up(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let w: WrapBody = body(&b)?;
    let d = w.disposition.trim();
    if d.is_empty() || d.len() > 200 {
        return Err(ApiError::bad_request("disposition must be 1 to 200 bytes"));
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
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the interaction is still going on; end it first",
            ));
        }
        handed_on = true;
    }
    let resolved = w.resolved;
    if handed_on {
        // Handed on (a transfer): this agent's part is wrapped up on the timeline;
        // the interaction's disposition is the last agent's.
        let data = serde_json::json!({"agent": me, "disposition": d, "resolved": resolved, "handed_on": true});
        c.store().add_timeline(&id, "wrapped up", data).await?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({"interaction": id, "disposition": d, "resolved": resolved, "handed_on": true})));
    }
    c.store().wrap_up(&id, &me, d, resolved).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"interaction": id, "disposition": d, "resolved": resolved})))
}

/// A note on the interaction: `{text}`.
pub(super) async fn notes(
    req: HttpRequest,
    path: web::Path<String>,
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let t: TextBody = body(&b)?;
    let text = text(&t.text)?;
    own(c, &me, &id).await?;
    c.store()
        .add_timeline(&id, "note", serde_json::json!({"agent": me, "text": text}))
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"interaction": id})))
}

/// A media a WhatsApp customer sent in this agent's thread, fetched from the Graph
/// API for them: only a media id one of the thread's messages names; served as an
/// attachment, never rendered in the page's origin.
pub(super) async fn media(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me) = super::who(&req, &shared)?;
    let (id, media) = path.into_inner();
    let i = own(c, &me, &id).await?;
    let account = c
        .channel(&i.trunk)
        .filter(|a| a.kind == crate::config::ChannelKind::Whatsapp)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not a WhatsApp thread"))?;
    let named = c.store().interaction_messages(&id).await?.iter().any(|m| {
        m["from"] == "customer"
            && crate::channels::whatsapp::has_media(m["text"].as_str().unwrap_or_default(), &media)
    });
    if !named {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no media with that id in this thread",
        ));
    }
    use crate::channels::send::SendError;
    match crate::channels::send::whatsapp_media(&account, &media).await {
        Ok((mime, bytes)) => Ok(HttpResponse::Ok()
            .content_type(mime)
            .insert_header(("Content-Disposition", "attachment"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Cache-Control", "private, no-store"))
            .body(bytes)),
        Err(SendError::NotConfigured(why)) => Err(ApiError::new(StatusCode::CONFLICT, why)),
        Err(SendError::Refused(why)) | Err(SendError::Retry(why)) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, why))
        }
    }
}

/// The canned responses of the work's queue, filled for its customer and this agent:
/// `[{title, text}]`.
pub(super) async fn canned(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    let i = own(c, &me, &id).await?;
    let Some(queue) = i.queue.as_deref() else {
        return Ok(HttpResponse::Ok().json(serde_json::json!([])));
    };
    let record = match i.customer_id {
        Some(cid) => c.store().customer(cid).await?.map(|r| r.name),
        None => None,
    };
    // What the flow looked up or the chat typed: on the agent's desk.
    let desk = match c.agent_addr(&me) {
        Some(a) => a.send(State).await?,
        None => serde_json::Value::Null,
    };
    let details = desk["work"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["interaction"] == id.as_str()))
        .map(|w| w["details"].clone())
        .unwrap_or_default();
    let name = crate::canned::customer_name(record.as_deref(), &details);
    let agent = c
        .accounts()
        .into_iter()
        .find(|a| a.spec.name == me)
        .map(|a| a.spec.display_name)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| me.clone());
    let list = c
        .router()
        .send(QueueConfigs)
        .await?
        .into_iter()
        .find(|q| q.name == queue)
        .map(|q| q.canned)
        .unwrap_or_default();
    let fill = crate::canned::Fill {
        name: &name,
        agent: &agent,
        queue,
    };
    let filled: Vec<_> = list
        .iter()
        .map(|r| serde_json::json!({"title": r.title, "text": crate::canned::fill(&r.text, &fill)}))
        .collect();
    Ok(HttpResponse::Ok().json(filled))
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

/// The e-mail of this agent's thread, oldest first, as the desktop shows it beside
/// the messages: `[{seq, direction, from, subject, status, reason, html, remote_images,
/// attachments: [{index, name, content_type, size}]}]`; `html` is the message's HTML
/// rebuilt from an allow-list (shown in a sandboxed frame), `null` without one.
pub(super) async fn mails(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me, id) = start(&req, &shared, path)?;
    own(c, &me, &id).await?;
    let mut out = Vec::new();
    for e in c.store().interaction_emails(&id).await? {
        let raw = c
            .store()
            .email_raw(&e.mailbox, &e.message_id)
            .await?
            .unwrap_or_default();
        let v = crate::email::parse::view(&raw);
        out.push(serde_json::json!({
            "seq": e.seq,
            "direction": e.direction,
            "from": e.sender,
            "subject": e.subject,
            "status": e.status,
            "reason": e.reason,
            "html": v.html,
            "remote_images": v.remote_images,
            "attachments": v.attachments.iter().enumerate().map(|(i, a)| serde_json::json!({
                "index": i, "name": a.name, "content_type": a.content_type, "size": a.size,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, no-store"))
        .json(out))
}

/// An attachment of a message of this agent's e-mail thread (`n` from 0 in the
/// message's order): always a download (`application/octet-stream`, `attachment`),
/// never rendered in the page's origin.
pub(super) async fn mail_attachment(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    shared: web::Data<Shared>,
) -> Reply {
    let (c, me) = super::who(&req, &shared)?;
    let (id, seq, n) = path.into_inner();
    let (Ok(seq), Ok(n)) = (seq.parse::<i64>(), n.parse::<usize>()) else {
        return Err(ApiError::bad_request(
            "a message's number and an attachment's index are whole numbers",
        ));
    };
    own(c, &me, &id).await?;
    let e = c
        .store()
        .interaction_emails(&id)
        .await?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no e-mail with that number in this thread",
            )
        })?;
    let raw = c
        .store()
        .email_raw(&e.mailbox, &e.message_id)
        .await?
        .unwrap_or_default();
    let (name, bytes) = crate::email::parse::attachment(&raw, n)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no attachment with that number"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Content-Disposition",
            crate::email::parse::disposition(&name),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::own;
    use crate::actors::messages::AgentPush;
    use crate::store::{NewInteraction, Store};
    use actix_web::http::StatusCode;

    /// The desktop is told of its work by the router while the chat records the answer
    /// in the store: what the agent asks for at once (the canned replies, a note) is
    /// theirs as soon as their desk holds it, and still nobody else's.
    #[actix_rt::test]
    async fn work_on_the_desk_is_the_agents_before_the_store_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        let c = crate::centre::Centre::start(&crate::config::Config::default(), store.clone())
            .await
            .unwrap();
        c.login("bob", "demo-bob").await.unwrap();
        c.login("alice", "demo-alice").await.unwrap();
        store
            .start_interaction(&NewInteraction {
                id: "w1",
                kind: "chat",
                direction: "inbound",
                from: "ada@example.com",
                dialled: "",
                trunk: "",
                flow: "",
                flow_version: "",
                unverified: true,
                conversation: None,
            })
            .await
            .unwrap();
        let refused = own(&c, "bob", "w1").await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        c.agent_addr("bob")
            .unwrap()
            .send(AgentPush::Assigned {
                interaction: "w1".into(),
                channel: "chat",
                customer: None,
                browser_call: false,
            })
            .await
            .unwrap();
        assert_eq!(store.interaction("w1").await.unwrap().unwrap().agent, None);
        own(&c, "bob", "w1").await.expect("bob's desk holds it");
        let other = own(&c, "alice", "w1").await.unwrap_err();
        assert_eq!(other.status(), StatusCode::FORBIDDEN);
    }
}
