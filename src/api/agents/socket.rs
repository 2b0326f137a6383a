//! The agent desktop's WebSocket: the agent's state pushed as it changes, and the
//! desktop's requests (a browser leg's WebRTC offer) answered on it.

use super::{bearer, centre};
use crate::actors::agent::Connect;
use crate::actors::call::AgentCall;
use crate::api::Shared;
use crate::call::AgentCommand;
use crate::centre::Centre;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// The agent's WebSocket: `GET /api/agent/ws`, then `{"type": "auth", "token": T}` as
/// the first frame (browsers cannot set headers on a WebSocket; a token in the URL would
/// land in access logs), or an `Authorization: Bearer` header. Pushes the agent's state,
/// then every change, as JSON text frames; closes at logout, at the session's end or
/// when the desktop does not read.
pub(super) async fn agent_ws(
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
            return refuse(session).await;
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
    first_frame(stream).await?["token"]
        .as_str()
        .map(str::to_string)
}

/// Tells a page its session token is unknown or missing and closes its socket.
pub(crate) async fn refuse(mut session: actix_ws::Session) {
    let _ = session
        .text(serde_json::json!({"type": "error", "error": "unknown or missing session token: send {\"type\": \"auth\", \"token\": ...} first"}).to_string())
        .await;
    let _ = session
        .close(Some(actix_ws::CloseCode::Policy.into()))
        .await;
}

/// A page's first frame, `{"type": "auth", ...}`, if it comes within 10 s.
pub(crate) async fn first_frame(stream: &mut actix_ws::MessageStream) -> Option<serde_json::Value> {
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .ok()??;
    let actix_ws::Message::Text(t) = first.ok()? else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(&t).ok()?;
    (v["type"] == "auth").then_some(v)
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
                // A renegotiation: the answer comes later, pushed as `webrtc_answer`.
                Ok(Ok(a)) if a["renegotiating"] == true => {
                    serde_json::json!({"type": "renegotiating", "interaction": id})
                }
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
