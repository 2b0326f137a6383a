//! The call actor's agent part: an agent who takes the call in the browser (a WebRTC
//! leg negotiated over their WebSocket and bridged to the caller without transcoding),
//! and what any agent on the call can do from the desktop: hang up, hold and resume
//! (re-INVITE sendonly / sendrecv to the caller, music on hold), send DTMF to the
//! caller's side. Screen-pop webhooks go out when the call is offered and connects.

use super::{CallActor, CallCommand};
use crate::media::player::Item;
use crate::media::session::{LegId, LegParams};
use crate::sdp::Direction;
use actix::prelude::*;
use std::time::Duration;

/// A browser agent on this call.
pub(super) struct WebAgent {
    pub agent: String,
    pub media: Option<LegId>,
    pub connected: bool,
}

/// What an agent does to their call from the desktop.
#[derive(Message, Debug)]
#[rtype(result = "Result<serde_json::Value, String>")]
pub enum AgentCall {
    /// The agent's browser offers its leg (SDP); the reply carries our answer.
    Offer {
        agent: String,
        sdp: String,
    },
    Hangup {
        agent: String,
    },
    Hold {
        agent: String,
        on: bool,
    },
    Digits {
        agent: String,
        digits: String,
    },
}

/// How long a browser has, once the agent accepted, to connect its leg.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Media ids of music-on-hold items.
const HOLD_ID: u64 = u64::MAX - 1024;

impl CallActor {
    /// The agent with this call (ringing or talking).
    fn agent_on_call(&self) -> Option<&str> {
        self.ivr.as_ref()?.agent.as_ref().map(|(a, _)| a.as_str())
    }

    /// The router gave the call to an agent without a phone: their browser will offer
    /// a leg over their WebSocket. If it has not connected in time, back to the queue.
    pub(super) fn await_browser(&mut self, ctx: &mut Context<Self>, agent: String) {
        tracing::info!(call = %self.a.call, %agent, "waiting for the agent's browser");
        self.web = Some(WebAgent {
            agent: agent.clone(),
            media: None,
            connected: false,
        });
        ctx.run_later(CONNECT_TIMEOUT, move |act, _| {
            if act
                .web
                .as_ref()
                .is_some_and(|w| w.agent == agent && !w.connected)
            {
                act.drop_browser();
                act.ivr_agent_failed("the browser did not connect");
            }
        });
    }

    /// Takes the browser leg out of the call (its media leg closes).
    pub(super) fn drop_browser(&mut self) {
        if let Some(w) = self.web.take() {
            if let (Some(m), Some(l)) = (&self.media, w.media) {
                m.remove(l);
            }
        }
    }

    /// The agent's leg is gone but the caller stays (a transfer): they hear music.
    pub(super) fn agent_leg_gone(&mut self) {
        self.drop_browser();
        if let Some(b) = self.b.take() {
            if !b.ended {
                self.send(CallCommand::Hangup(b.call));
            }
        }
        if let Some(m) = &self.media {
            m.unbridge();
        }
        if self.held {
            self.held = false;
            self.send(CallCommand::Hold(self.a.call, false));
        }
        self.play_hold_music();
    }

    fn play_hold_music(&mut self) {
        let Some(a) = self.a.media else { return };
        let music = self.cfg.hold_music.clone();
        let Some(m) = &self.media else { return };
        m.stop_playback(a);
        // About an hour of music; resume stops it.
        let reps = (3600 * 8 / music.len().max(8000)).max(1) as u64;
        for i in 0..reps {
            m.play(
                a,
                Item::Prompt {
                    id: HOLD_ID + i.min(1000),
                    samples: music.clone(),
                    barge_in: false,
                },
            );
        }
    }

    /// The browser leg connected: caller and agent talk.
    pub(super) fn browser_connected(&mut self, ctx: &mut Context<Self>, leg: LegId) {
        let Some(w) = self.web.as_mut().filter(|w| w.media == Some(leg)) else {
            return;
        };
        w.connected = true;
        let agent = w.agent.clone();
        tracing::info!(call = %self.a.call, %agent, "agent connected in the browser");
        if let (Some(m), Some(a)) = (&self.media, self.a.media) {
            m.stop_playback(a);
            m.bridge(a, leg);
        }
        self.ivr_agent_connected(ctx);
    }

    /// The browser leg failed or closed.
    pub(super) fn browser_failed(&mut self, leg: LegId, why: String) {
        let Some(w) = self.web.as_ref().filter(|w| w.media == Some(leg)) else {
            return;
        };
        let (agent, connected) = (w.agent.clone(), w.connected);
        tracing::info!(call = %self.a.call, %agent, %why, connected, "agent's browser leg ended");
        self.drop_browser();
        if connected {
            // The agent's browser went away mid-call: the call ends, as a hang-up would.
            if !self.a.ended {
                self.end_caller(480, "Temporarily Unavailable");
            }
        } else {
            self.ivr_agent_failed(&format!("browser: {why}"));
        }
    }

    fn answer_browser(
        &mut self,
        ctx: &mut Context<Self>,
        agent: &str,
        sdp: &str,
    ) -> Result<serde_json::Value, String> {
        let Some(w) = self.web.as_ref().filter(|w| w.agent == agent) else {
            return Err("this call is not waiting for your browser".into());
        };
        if w.media.is_some() {
            return Err("your browser already has a leg on this call".into());
        }
        let port = self
            .cfg
            .webrtc
            .clone()
            .ok_or("browser calls are off ([webrtc] port = 0)")?;
        let codec = self.a.codec.ok_or("the caller has no media yet")?;
        let (leg, answer) = crate::webrtc::BrowserLeg::answer(
            crate::clock::now(),
            sdp,
            codec,
            port.local(),
            port.advertised(),
        )
        .map_err(|e| e.to_string())?;
        let params = LegParams {
            codec,
            pt: codec.pt(),
            telephone_event: None,
            ptime_ms: 20,
            direction: Direction::SendRecv,
            remote_rtp: Some(port.advertised()),
            remote_rtcp: None,
            rtcp_mux: true,
            video: None,
        };
        let id = self.media(ctx).add_browser(params, leg, port);
        if let Some(w) = self.web.as_mut() {
            w.media = Some(id);
        }
        Ok(serde_json::json!({"sdp": answer}))
    }
}

impl Handler<AgentCall> for CallActor {
    type Result = Result<serde_json::Value, String>;

    fn handle(&mut self, m: AgentCall, ctx: &mut Context<Self>) -> Self::Result {
        let agent = match &m {
            AgentCall::Offer { agent, .. }
            | AgentCall::Hangup { agent }
            | AgentCall::Hold { agent, .. }
            | AgentCall::Digits { agent, .. } => agent.clone(),
        };
        if self.agent_on_call() != Some(agent.as_str()) || self.a.ended {
            return Err("you are not on this call".into());
        }
        match m {
            AgentCall::Offer { sdp, .. } => self.answer_browser(ctx, &agent, &sdp),
            AgentCall::Hangup { .. } => {
                tracing::info!(call = %self.a.call, %agent, "the agent hung up");
                self.ivr_agent_note("hung up", serde_json::json!({"agent": agent}));
                self.drop_browser();
                if let Some(b) = self.b.as_ref().filter(|b| !b.ended) {
                    self.send(CallCommand::Hangup(b.call));
                }
                self.end_caller(480, "Temporarily Unavailable");
                Ok(serde_json::json!({"hung_up": true}))
            }
            AgentCall::Hold { on, .. } => {
                if on == self.held {
                    return Ok(serde_json::json!({"held": on}));
                }
                let agent_leg = self
                    .web
                    .as_ref()
                    .and_then(|w| w.media.filter(|_| w.connected))
                    .or_else(|| {
                        self.b
                            .as_ref()
                            .filter(|b| b.established)
                            .and_then(|b| b.media)
                    });
                let (Some(a), Some(l)) = (self.a.media, agent_leg) else {
                    return Err("the call is not connected".into());
                };
                self.held = on;
                self.send(CallCommand::Hold(self.a.call, on));
                if on {
                    if let Some(m) = &self.media {
                        m.unbridge();
                    }
                    self.play_hold_music();
                } else if let Some(m) = &self.media {
                    m.stop_playback(a);
                    m.bridge(a, l);
                }
                self.ivr_agent_note(
                    if on { "held" } else { "resumed" },
                    serde_json::json!({"agent": agent}),
                );
                Ok(serde_json::json!({"held": on}))
            }
            AgentCall::Digits { digits, .. } => {
                if digits.is_empty()
                    || digits.len() > 32
                    || !digits
                        .chars()
                        .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c))
                {
                    return Err("digits must be 1 to 32 of 0-9 * # A-D".into());
                }
                let Some(a) = self.a.media else {
                    return Err("the call is not connected".into());
                };
                if let Some(m) = &self.media {
                    m.send_digits(a, &digits);
                }
                Ok(serde_json::json!({"sent": digits}))
            }
        }
    }
}
