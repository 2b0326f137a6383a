//! The customer web chat: the page at `GET /chat` and its WebSocket at `/chat/ws`.
//!
//! Protocol (JSON text frames). The first frame from the page is either
//! `{"type":"start","name":"Ada","address":"ada@example.com"}` (a phone number works
//! too) or `{"type":"resume","chat":ID,"token":T,"after":LAST_SEQ}`. The server answers
//! `{"type":"welcome","chat":ID,"token":T}` to a start, then `state`, then every
//! message after `after`. Then: the page sends `{"type":"message","id":CLIENT_ID,
//! "text":...}` (acknowledged with `{"type":"ack","id":...,"seq":N}` once stored; a
//! message re-sent with the same id after a reconnect is stored once),
//! `{"type":"typing","on":true}` and `{"type":"leave"}`; it receives `message`
//! (`from`: customer, agent or system), `typing`, `closed` and `error` frames.
//!
//! A video call with the chat's agent: the page sends `{"type":"video_offer","sdp":
//! OFFER}` (its browser's, with audio in G.711 and a camera in VP8 or H.264) and later
//! `{"type":"video_hangup"}`; it receives `{"type":"video_answer","sdp":ANSWER}`,
//! `{"type":"video_hold","on":BOOL}` and `{"type":"video_ended","reason":WHY}` (the
//! agent did not take it, either side hung up, the chat ended).
//!
//! Beside it: `GET /chat/status` (the business, its privacy notice, whether agents are
//! there) and `POST /chat/rating` (the ended chat's rating, with its token).

use super::error;
use super::Shared;
use crate::actors::chat::Customer;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

const PAGE: &str = include_str!("../../web/chat.html");

async fn page() -> HttpResponse {
    super::page("text/html; charset=utf-8", PAGE)
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum First {
    Start {
        #[serde(default)]
        name: String,
        address: String,
    },
    Resume {
        chat: String,
        token: String,
        #[serde(default)]
        after: u64,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Frame {
    Message { id: String, text: String },
    Typing { on: bool },
    Leave,
    VideoOffer { sdp: String },
    VideoHangup,
}

fn err(reason: &str) -> String {
    serde_json::json!({"type": "error", "reason": reason}).to_string()
}

/// Checks the start frame: a name of sensible length and an address that is a phone
/// number or an e-mail address.
fn check_start(name: &str, address: &str) -> Result<(), String> {
    if name.chars().count() > 100 {
        return Err("name: at most 100 characters".into());
    }
    match crate::store::identity_of(address) {
        Some((crate::store::IdentityKind::Phone | crate::store::IdentityKind::Email, _)) => Ok(()),
        _ => Err("address: give an e-mail address or a phone number".into()),
    }
}

async fn chat_ws(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    let Some(centre) = shared.centre.clone() else {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the contact centre is not running",
        )
        .into());
    };
    let from = req
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let (resp, mut session, stream) = actix_ws::handle(&req, payload)?;
    let mut stream = stream.max_frame_size(64 << 10);
    actix_rt::spawn(async move {
        // The first frame says who this is.
        let first = loop {
            // A page that opens a socket and says nothing is let go after 10 s.
            let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next());
            match next.await.ok().flatten() {
                Some(Ok(actix_ws::Message::Text(t))) => break serde_json::from_str::<First>(&t),
                Some(Ok(actix_ws::Message::Ping(p))) => {
                    let _ = session.pong(&p).await;
                }
                Some(Ok(_)) => continue,
                _ => return,
            }
        };
        let (chat, after) = match first {
            Err(e) => {
                let _ = session
                    .text(err(&format!(
                        "the first frame must be start or resume: {e}"
                    )))
                    .await;
                let _ = session.close(None).await;
                return;
            }
            Ok(First::Start { name, address }) => {
                let (name, address) = (name.trim().to_string(), address.trim().to_string());
                if let Err(e) = check_start(&name, &address) {
                    let _ = session.text(err(&e)).await;
                    let _ = session.close(None).await;
                    return;
                }
                match centre.start_chat_from(from, &name, &address).await {
                    Ok((id, token)) => {
                        let w = serde_json::json!({"type": "welcome", "chat": id, "token": token});
                        if session.text(w.to_string()).await.is_err() {
                            return;
                        }
                        (id, 0)
                    }
                    Err(e) => {
                        let _ = session.text(err(&e.to_string())).await;
                        let _ = session.close(None).await;
                        return;
                    }
                }
            }
            Ok(First::Resume { chat, token, after }) => {
                if let Err(e) = centre.chat_for_customer(&chat, &token) {
                    let _ = session.text(err(&e.to_string())).await;
                    let _ = session.close(None).await;
                    return;
                }
                (chat, after)
            }
        };
        let addr = match centre.chat(&chat) {
            Some((_, addr)) => addr,
            None => {
                let _ = session.text(err("this chat has ended")).await;
                return;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(crate::actors::chat::SOCKET_QUEUE);
        addr.do_send(Customer::Hello { socket: tx, after });
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(t) => if session.text(t).await.is_err() { break },
                    // The chat replaced this socket (a newer one connected) or ended.
                    None => break,
                },
                m = stream.next() => match m {
                    Some(Ok(actix_ws::Message::Text(t))) => match serde_json::from_str::<Frame>(&t) {
                        Ok(Frame::Message { id, text }) => {
                            let text = text.trim().to_string();
                            if text.is_empty() || text.len() > 8000 || id.is_empty() || id.len() > 100 {
                                let e = serde_json::json!({"type": "error", "id": id, "reason": "text must be 1 to 8000 bytes and id 1 to 100"});
                                let _ = session.text(e.to_string()).await;
                                continue;
                            }
                            addr.do_send(Customer::Says { id, text });
                        }
                        Ok(Frame::Typing { on }) => addr.do_send(Customer::Typing(on)),
                        Ok(Frame::Leave) => addr.do_send(Customer::Leave),
                        Ok(Frame::VideoHangup) => addr.do_send(Customer::VideoHangup),
                        Ok(Frame::VideoOffer { sdp }) => {
                            if let Err(e) = start_video(&centre, &addr, sdp).await {
                                let v = serde_json::json!({"type": "video_ended", "reason": e});
                                let _ = session.text(v.to_string()).await;
                            }
                        }
                        Err(e) => {
                            let _ = session.text(err(&format!("bad frame: {e}"))).await;
                        }
                    },
                    Some(Ok(actix_ws::Message::Ping(p))) => { let _ = session.pong(&p).await; }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        // Gone: the chat is closed as abandoned unless the customer comes back.
        addr.do_send(Customer::Gone);
        let _ = session.close(None).await;
    });
    Ok(resp)
}

/// The customer's page offers a video call (its browser's SDP): the chat says whether
/// it may (an agent has it, none is on), then the SIP driver starts it; its answer and
/// end come on the chat's socket (see [`crate::actors::webcall`]).
async fn start_video(
    centre: &crate::centre::Centre,
    chat: &actix::Addr<crate::actors::chat::ChatActor>,
    sdp: String,
) -> Result<(), String> {
    use crate::actors::chat::{VideoStart, VideoStarted};
    if sdp.len() > 16 << 10 || !sdp.starts_with("v=0") {
        return Err("video_offer: sdp must be an SDP offer of at most 16 KiB".into());
    }
    let (escalation, address) = chat
        .send(VideoStart)
        .await
        .map_err(|_| "this chat has ended".to_string())??;
    let r = centre
        .start_web_call(sdp, address, escalation, chat.clone().recipient())
        .await;
    // The chat has the call's link by now, or tells the page why not.
    if let Err(e) = r {
        chat.do_send(VideoStarted(e));
    }
    Ok(())
}

/// What the chat page shows before a chat starts: the business, its privacy notice,
/// and whether anyone is there (agents of the chat queue logged in and available,
/// chats waiting). Computed at most every 2 s however often it is asked.
async fn status(shared: web::Data<Shared>) -> Result<HttpResponse, super::error::ApiError> {
    use std::time::Duration;
    let Some(c) = shared.centre.clone() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the contact centre is not running",
        ));
    };
    let now = crate::clock::now();
    if let Some((at, v)) = shared
        .chat_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        if now.saturating_duration_since(*at) < Duration::from_secs(2) {
            return Ok(HttpResponse::Ok().json(v));
        }
    }
    let mut v = serde_json::to_value(c.chat_page()).unwrap_or_default();
    v["open"] = c.chat_queue().is_some().into();
    if let Some(queue) = c.chat_queue() {
        let serves: Vec<String> = c
            .accounts()
            .into_iter()
            .filter(|a| a.spec.queues.iter().any(|q| q == queue))
            .map(|a| a.spec.name)
            .collect();
        let live = c.router().send(crate::actors::router::AgentList).await?;
        let here = |a: &&serde_json::Value| serves.iter().any(|n| a["name"] == n.as_str());
        v["agents_online"] = live.iter().filter(here).count().into();
        v["agents_available"] = live
            .iter()
            .filter(here)
            .filter(|a| a["presence"] == "available")
            .count()
            .into();
        v["waiting"] = crate::actors::chat::waiting_in(c.chat_waiting(), queue).into();
    }
    *shared.chat_status.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, v.clone()));
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rating {
    chat: String,
    token: String,
    score: u8,
    #[serde(default)]
    comment: String,
    /// Net promoter question, 0 (not at all likely) to 10 (extremely likely).
    #[serde(default)]
    nps: Option<u8>,
    /// Customer effort question, 1 (strongly disagree it was easy) to 7 (strongly agree).
    #[serde(default)]
    ces: Option<u8>,
}

/// The customer rates the chat that just ended: `{chat, token, score: 1-5, comment,
/// nps: 0-10, ces: 1-7}` (the last two optional).
async fn rating(
    b: web::Bytes,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, super::error::ApiError> {
    let Some(c) = shared.centre.clone() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the contact centre is not running",
        ));
    };
    if b.len() > 4096 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a rating is at most 4096 bytes",
        ));
    }
    let r: Rating = serde_json::from_slice(&b)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))?;
    if !(1..=5).contains(&r.score) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "score must be 1 (bad) to 5 (very good)",
        ));
    }
    let comment = r.comment.trim();
    if comment.chars().count() > 1000 || comment.chars().any(|c| c.is_control() && c != '\n') {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "comment: at most 1000 characters, no control characters",
        ));
    }
    if r.nps.is_some_and(|n| n > 10) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "nps must be 0 (not at all likely to recommend us) to 10 (extremely likely)",
        ));
    }
    if r.ces.is_some_and(|n| !(1..=7).contains(&n)) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "ces must be 1 (strongly disagree it was easy) to 7 (strongly agree)",
        ));
    }
    let more: Vec<(&'static str, u8)> = [("nps", r.nps), ("ces", r.ces)]
        .into_iter()
        .filter_map(|(m, v)| v.map(|v| (m, v)))
        .collect();
    c.rate_chat(&r.chat, &r.token, r.score, comment, &more)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"thanks": true})))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat", web::get().to(page))
        .route("/chat/status", web::get().to(status))
        .route("/chat/rating", web::post().to(rating))
        .route(
            "/chat/app.js",
            web::get().to(|| async {
                super::page(
                    "text/javascript; charset=utf-8",
                    include_str!("../../web/chat.js"),
                )
            }),
        )
        .route(
            "/chat/app.css",
            web::get().to(|| async {
                super::page(
                    "text/css; charset=utf-8",
                    include_str!("../../web/chat.css"),
                )
            }),
        )
        .route("/chat/ws", web::get().to(chat_ws));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_frames_are_checked() {
        assert!(check_start("Ada", "ada@example.com").is_ok());
        assert!(check_start("", "+1 555 123 4567").is_ok());
        assert!(check_start("Ada", "not an address").is_err());
        assert!(check_start(&"x".repeat(101), "a@b.c").is_err());
        assert!(
            serde_json::from_str::<First>(r#"{"type":"start","address":"a@b.c","x":1}"#).is_err()
        );
        assert!(matches!(
            serde_json::from_str::<Frame>(r#"{"type":"message","id":"1","text":"hi"}"#),
            Ok(Frame::Message { .. })
        ));
    }
}
