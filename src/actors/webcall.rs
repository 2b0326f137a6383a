//! A video call from the web chat: the customer's leg is signalled over the chat
//! page's socket instead of SIP. The call is an ordinary [`CallActor`] whose session
//! ([`crate::call::Session::escalated`]) decides everything; this module only carries
//! the SIP commands on the customer's leg to the page (our answer, the hold, the
//! end) and the page's hang-up back as the SIP events the session expects. Commands on
//! the call's other legs (an agent's desk phone, a transfer) go to the SIP driver.
//!
//! Frames to the page (through the chat actor, on the chat's socket):
//! `{"type": "video_answer", "sdp": ANSWER}`, `{"type": "video_hold", "on": BOOL}`,
//! `{"type": "video_ended", "reason": WHY}`.

use super::call::{CallActor, CallCommand, CallEvent, SipEvent};
use crate::call::Escalation;
use crate::sip::core::{CallRef, EndReason};
use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// How many video call starts may wait for the SIP driver (beyond: refused).
pub const QUEUE: usize = 64;

/// News for the chat of its video call, in order from one task: first the link, then
/// the frames for the customer's page (each naming its call, so a late frame of a call
/// that is over is not taken for the next one's).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum PageFrame {
    Started(WebCallLink),
    Frame(CallRef, serde_json::Value),
}

/// A request to the SIP driver to start a video call from the chat.
pub struct WebCallRequest {
    /// The customer's browser's offer.
    pub offer: String,
    /// The chat's address (as the customer gave it).
    pub address: String,
    pub escalation: Escalation,
    /// Where the page's frames go (the chat actor).
    pub page: Recipient<PageFrame>,
    /// Told once the call's actor runs (the link goes to `page`).
    pub reply: oneshot::Sender<CallRef>,
}

/// The chat's handle on its video call: dropping it hangs up (the customer hung up, or
/// the chat ended). The page's only word to its call is that one, so nothing queues.
#[derive(Debug)]
pub struct WebCallLink {
    pub call: CallRef,
    /// Never sent: its drop is the hang-up.
    _hangup: oneshot::Sender<()>,
}

fn frame(call: CallRef, kind: &str, field: &str, v: serde_json::Value) -> PageFrame {
    PageFrame::Frame(call, serde_json::json!({"type": kind, field: v}))
}

/// Why a call's end is told to the page, by the SIP code the session chose.
fn ended_reason(code: u16) -> &'static str {
    match code {
        480 | 486 | 603 => "the agent could not take the video call",
        488 => "your browser's offer could not be answered (it needs G.711 audio)",
        _ => "the video call could not be set up",
    }
}

/// Starts the call's actor in `arbiter` and the task that carries its customer leg's
/// signalling, which gives the chat its link before anything else.
pub fn start(
    w: WebCallRequest,
    call: CallRef,
    arbiter: &ArbiterHandle,
    sip: mpsc::UnboundedSender<CallCommand>,
    cfg: super::call::HandlerConfig,
    ports: std::sync::Arc<crate::media::RtpPorts>,
) {
    // Unbounded as the SIP driver's command channel every call actor writes to (the
    // actor takes that type): only this call's session feeds it, a few commands per
    // input it handles, and `carry` drains it at once; the page cannot add to it (its
    // one word is the hang-up, after which the session has nothing for its leg).
    let (link_tx, link_rx) = mpsc::unbounded_channel::<CallCommand>();
    let WebCallRequest {
        offer,
        address,
        escalation,
        page,
        reply,
    } = w;
    tracing::info!(%call, chat = %escalation.chat, agent = %escalation.agent, "video call from the chat");
    let a = CallActor::escalated(call, offer, address, escalation, link_tx, cfg, ports);
    let addr = CallActor::start_in_arbiter(arbiter, move |_| a);
    let (hangup_tx, hangup_rx) = oneshot::channel::<()>();
    page.do_send(PageFrame::Started(WebCallLink {
        call,
        _hangup: hangup_tx,
    }));
    tokio::spawn(carry(call, addr, link_rx, hangup_rx, sip, page));
    let _ = reply.send(call);
}

async fn carry(
    call: CallRef,
    actor: Addr<CallActor>,
    mut commands: mpsc::UnboundedReceiver<CallCommand>,
    mut hangup: oneshot::Receiver<()>,
    sip: mpsc::UnboundedSender<CallCommand>,
    page: Recipient<PageFrame>,
) {
    let mut ended = false;
    let mut page_open = true;
    let end = |actor: &Addr<CallActor>, reason: EndReason| {
        actor.do_send(SipEvent(call, CallEvent::Ended(reason)));
    };
    loop {
        tokio::select! {
            c = commands.recv() => match c {
                // The actor stopped: the call is over.
                None => break,
                Some(CallCommand::Answer(c, sdp)) if c == call => {
                    page.do_send(frame(call, "video_answer", "sdp", String::from_utf8_lossy(&sdp).into()));
                    // The page has the answer: for the session, the leg is established
                    // (its media is up when the browser leg connects).
                    actor.do_send(SipEvent(call, CallEvent::Established { remote_sdp: Bytes::new() }));
                }
                Some(CallCommand::Reject(c, code, _)) if c == call => {
                    if !ended {
                        ended = true;
                        page.do_send(frame(call, "video_ended", "reason", ended_reason(code).into()));
                        end(&actor, EndReason::Rejected(code));
                    }
                }
                Some(CallCommand::Hangup(c)) if c == call => {
                    if !ended {
                        ended = true;
                        page.do_send(frame(call, "video_ended", "reason", "the call ended".into()));
                        end(&actor, EndReason::LocalBye);
                    }
                }
                Some(CallCommand::Hold(c, on)) if c == call => {
                    page.do_send(frame(call, "video_hold", "on", on.into()));
                }
                Some(CallCommand::Ring(c) | CallCommand::PictureFastUpdate(c)) if c == call => {}
                // The call's other legs are SIP's.
                Some(other) => {
                    let _ = sip.send(other);
                }
            },
            _ = &mut hangup, if page_open => {
                // The chat let go of the call: the customer hung up, or the chat ended.
                page_open = false;
                if !ended {
                    ended = true;
                    end(&actor, EndReason::RemoteBye);
                }
            }
        }
    }
    if !ended {
        page.do_send(frame(
            call,
            "video_ended",
            "reason",
            "the call ended".into(),
        ));
    }
}
