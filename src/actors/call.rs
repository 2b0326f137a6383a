//! `CallActor`: one per call. It owns the call's media leg and runs the built-in call
//! handler (answer, send silence, hang up after a configured time) until the IVR
//! replaces it. It makes no SIP decision: it sends commands to the SIP core and reacts
//! to its events. RTP moves in a tokio task owned by the actor, never through its
//! mailbox.

use crate::media::{RtpPorts, SilenceSender};
use crate::sdp::{self, Codec, Direction};
use crate::sip::core::{CallRef, EndReason};
use actix::prelude::*;
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Commands the actors send to the SIP driver.
#[derive(Debug)]
pub enum CallCommand {
    Ring(CallRef),
    Answer(CallRef, Bytes),
    Reject(CallRef, u16, &'static str),
    Hangup(CallRef),
    Originate { call: CallRef, to: String, sdp: Bytes, trunk: Option<String> },
}

/// How the built-in handler behaves.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub answer_after: Duration,
    pub hangup_after: Option<Duration>,
    pub rtp_ip: IpAddr,
}

/// Events for one call, from the SIP driver.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum CallEvent {
    Established { remote_sdp: Bytes },
    RemoteOffer { sdp: Bytes },
    Progress(u16),
    Ended(EndReason),
}

pub struct CallActor {
    call: CallRef,
    inbound: bool,
    offer: Bytes,
    cmd: mpsc::UnboundedSender<CallCommand>,
    cfg: HandlerConfig,
    ports: Arc<RtpPorts>,
    media: Option<SilenceSender>,
    codec: Codec,
    local_port: Option<u16>,
    /// Outbound: who to call.
    target: Option<(String, Option<String>)>,
}

impl CallActor {
    pub fn inbound(call: CallRef, offer: Bytes, cmd: mpsc::UnboundedSender<CallCommand>, cfg: HandlerConfig, ports: Arc<RtpPorts>) -> Self {
        CallActor { call, inbound: true, offer, cmd, cfg, ports, media: None, codec: Codec::Pcmu, local_port: None, target: None }
    }

    pub fn outbound(call: CallRef, to: String, trunk: Option<String>, cmd: mpsc::UnboundedSender<CallCommand>, cfg: HandlerConfig, ports: Arc<RtpPorts>) -> Self {
        CallActor { call, inbound: false, offer: Bytes::new(), cmd, cfg, ports, media: None, codec: Codec::Pcmu, local_port: None, target: Some((to, trunk)) }
    }

    fn local_sdp(&mut self, codecs: &[Codec], te: Option<u8>, dir: Direction) -> Option<Bytes> {
        let port = match self.local_port {
            Some(p) => p,
            None => {
                let p = self.ports.allocate()?;
                self.local_port = Some(p);
                p
            }
        };
        Some(Bytes::from(sdp::build(self.cfg.rtp_ip, port, codecs, te, dir, self.call.0, 1)))
    }

    fn start_media(&mut self, remote_sdp: &[u8]) {
        let Ok(remote) = sdp::parse_audio(remote_sdp) else {
            tracing::info!(call = %self.call, "no usable remote audio; no media sent");
            return;
        };
        if let (Some(port), None) = (self.local_port, &self.media) {
            match SilenceSender::start(self.cfg.rtp_ip, port, remote.addr, remote.codec) {
                Ok(m) => self.media = Some(m),
                Err(e) => tracing::warn!(call = %self.call, error = %e, "cannot start RTP"),
            }
        }
    }

    fn stop_media(&mut self) {
        if let Some(m) = self.media.take() {
            m.stop();
        }
        if let Some(p) = self.local_port.take() {
            self.ports.release(p);
        }
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.inbound {
            let _ = self.cmd.send(CallCommand::Ring(self.call));
            ctx.run_later(self.cfg.answer_after, |act, ctx| {
                let answer = if act.offer.is_empty() {
                    // Offer in our 200, answer in the ACK.
                    act.local_sdp(&[Codec::Pcmu, Codec::Pcma], Some(101), Direction::SendRecv)
                } else {
                    match sdp::parse_audio(&act.offer) {
                        Ok(r) => {
                            act.codec = r.codec;
                            act.local_sdp(&[r.codec], r.telephone_event, r.direction.answer())
                        }
                        Err(_) => None,
                    }
                };
                match answer {
                    Some(s) => {
                        let _ = act.cmd.send(CallCommand::Answer(act.call, s));
                    }
                    None => {
                        let _ = act.cmd.send(CallCommand::Reject(act.call, 503, "No Media Port"));
                        ctx.stop();
                    }
                }
            });
        } else if let Some((to, trunk)) = self.target.clone() {
            match self.local_sdp(&[Codec::Pcmu, Codec::Pcma], Some(101), Direction::SendRecv) {
                Some(s) => {
                    let _ = self.cmd.send(CallCommand::Originate { call: self.call, to, sdp: s, trunk });
                }
                None => ctx.stop(),
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop_media();
    }
}

impl Handler<CallEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, ev: CallEvent, ctx: &mut Self::Context) {
        match ev {
            CallEvent::Established { remote_sdp } => {
                tracing::info!(call = %self.call, "call established");
                self.start_media(&remote_sdp);
                if let Some(after) = self.cfg.hangup_after {
                    ctx.run_later(after, |act, _| {
                        let _ = act.cmd.send(CallCommand::Hangup(act.call));
                    });
                }
            }
            CallEvent::RemoteOffer { sdp } => {
                if let Ok(r) = sdp::parse_audio(&sdp) {
                    if let Some(m) = &self.media {
                        m.set_paused(matches!(r.direction, Direction::SendOnly | Direction::Inactive));
                    }
                }
            }
            CallEvent::Progress(_) => {}
            CallEvent::Ended(reason) => {
                tracing::info!(call = %self.call, ?reason, "call ended");
                ctx.stop();
            }
        }
    }
}
