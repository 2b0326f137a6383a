//! The call actor's agent part: agents who take the call in the browser (a WebRTC leg
//! negotiated over their WebSocket and bridged to the caller without transcoding), and
//! what an agent on the call can do from the desktop: hang up, hold and resume
//! (re-INVITE sendonly / sendrecv to the caller, music on hold), send DTMF to the
//! caller's side, and a warm transfer: consult a colleague (the caller on hold, the two
//! agents talking), then complete (the caller talks to the colleague, who now owns the
//! call) or cancel (back to the caller). Screen-pop webhooks go out when the call is
//! offered and connects.

use super::{CallActor, CallCommand};
use crate::actors::agent::AgentPush;
use crate::actors::router::{Answer, EndConsult, Transfer, TransferTarget};
use crate::media::player::Item;
use crate::media::session::LegId;
use actix::prelude::*;
use std::time::Duration;

/// An agent on this call in their browser.
pub(super) struct WebAgent {
    pub agent: String,
    pub media: Option<LegId>,
    pub connected: bool,
}

/// A warm transfer in progress: `from` (who has the call) consults `to`.
pub(super) struct Consult {
    pub from: String,
    pub to: String,
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
    /// Warm transfer, first step: the caller waits on hold while `to` is brought in.
    Consult {
        agent: String,
        to: String,
    },
    /// Warm transfer, done: the consulted agent takes the call.
    Complete {
        agent: String,
    },
    /// Warm transfer abandoned: the consulted agent goes, the caller comes back.
    CancelConsult {
        agent: String,
    },
}

impl AgentCall {
    fn agent(&self) -> &str {
        match self {
            AgentCall::Offer { agent, .. }
            | AgentCall::Hangup { agent }
            | AgentCall::Hold { agent, .. }
            | AgentCall::Digits { agent, .. }
            | AgentCall::Consult { agent, .. }
            | AgentCall::Complete { agent }
            | AgentCall::CancelConsult { agent } => agent,
        }
    }
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

    fn web_of(&self, agent: &str) -> Option<&WebAgent> {
        self.web.iter().find(|w| w.agent == agent)
    }

    /// The media leg an agent talks on, once connected (browser or desk phone).
    fn agent_leg(&self, agent: &str) -> Option<LegId> {
        if let Some(w) = self.web_of(agent) {
            return w.media.filter(|_| w.connected);
        }
        if self.b_agent.as_deref() == Some(agent) {
            return self
                .b
                .as_ref()
                .filter(|b| b.established)
                .and_then(|b| b.media);
        }
        None
    }

    /// An agent's browser will offer a leg over their WebSocket. If it has not
    /// connected in time: back to the queue (or, for a consult, the consult ends).
    pub(super) fn await_browser(&mut self, ctx: &mut Context<Self>, agent: String) {
        tracing::info!(call = %self.a.call, %agent, "waiting for the agent's browser");
        self.web.retain(|w| w.agent != agent);
        self.web.push(WebAgent {
            agent: agent.clone(),
            media: None,
            connected: false,
        });
        ctx.run_later(CONNECT_TIMEOUT, move |act, _| {
            if act.web_of(&agent).is_some_and(|w| !w.connected) {
                act.agent_gone(&agent, "the browser did not connect");
            }
        });
    }

    /// Takes an agent's browser leg out of the call (its media leg closes).
    fn drop_browser(&mut self, agent: &str) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.web)
            .into_iter()
            .partition(|w| w.agent == agent);
        self.web = kept;
        for w in gone {
            if let (Some(m), Some(l)) = (&self.media, w.media) {
                m.remove(l);
            }
        }
    }

    /// Takes an agent's legs (browser, desk phone) out of the call.
    fn drop_agent_legs(&mut self, agent: &str) {
        self.drop_browser(agent);
        if self.b_agent.as_deref() == Some(agent) {
            self.b_agent = None;
            if let Some(b) = self.b.take() {
                if !b.ended {
                    self.send(CallCommand::Hangup(b.call));
                }
            }
        }
    }

    /// The agent who had the call handed it on (a transfer): their leg goes; unless
    /// the next agent is already on the line (a completed consult), the caller hears
    /// music until the next agent connects. The recording goes on.
    pub(super) fn agent_handed_on(&mut self, from: &str) {
        self.drop_agent_legs(from);
        if self.consult.as_ref().is_some_and(|c| c.from == from) {
            return; // the consulted agent takes over when the router assigns them
        }
        self.drop_all_agent_legs();
        if let Some(m) = &self.media {
            m.unbridge();
        }
        self.set_hold(false);
        self.play_hold_music();
    }

    fn drop_all_agent_legs(&mut self) {
        let agents: Vec<String> = self.web.iter().map(|w| w.agent.clone()).collect();
        for a in agents {
            self.drop_browser(&a);
        }
        if let Some(b) = self.b.take() {
            self.b_agent = None;
            if !b.ended {
                self.send(CallCommand::Hangup(b.call));
            }
        }
    }

    /// An agent's leg failed or never connected.
    fn agent_gone(&mut self, agent: &str, why: &str) {
        if self.consult.as_ref().is_some_and(|c| c.to == agent) {
            tracing::info!(call = %self.a.call, %agent, why, "consulted agent gone");
            self.end_consult();
            return;
        }
        let connected = self.agent_leg(agent).is_some();
        self.drop_agent_legs(agent);
        if self.agent_on_call() != Some(agent) {
            return;
        }
        if connected {
            // The agent's browser went away mid-call: the call ends, as a hang-up would.
            if !self.a.ended {
                self.end_caller(480, "Temporarily Unavailable");
            }
        } else {
            self.ivr_agent_failed(why);
        }
    }

    /// Holds or resumes the caller's side (re-INVITE), once per change.
    fn set_hold(&mut self, on: bool) {
        if self.held != on {
            self.held = on;
            self.send(CallCommand::Hold(self.a.call, on));
        }
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

    /// The caller talks to `agent` again (music off, bridged, resumed).
    fn caller_with(&mut self, agent: &str) -> bool {
        let (Some(a), Some(l)) = (self.a.media, self.agent_leg(agent)) else {
            return false;
        };
        if let Some(m) = &self.media {
            m.stop_playback(a);
            m.bridge(a, l);
        }
        self.set_hold(false);
        true
    }

    /// An agent's leg is up (browser connected, or desk phone answered): the caller
    /// talks to them, or, for a consult, the two agents talk while the caller waits.
    pub(super) fn agent_leg_up(&mut self, ctx: &mut Context<Self>, agent: &str) {
        if let Some(c) = self.consult.as_mut().filter(|c| c.to == agent) {
            c.connected = true;
            let from = c.from.clone();
            tracing::info!(call = %self.a.call, %from, to = %agent, "consult connected");
            self.tell(&from, "consult connected");
            if let (Some(m), Some(x), Some(y)) =
                (&self.media, self.agent_leg(&from), self.agent_leg(agent))
            {
                m.bridge(x, y);
            }
            return;
        }
        self.caller_with(agent);
        self.ivr_agent_connected(ctx);
    }

    /// The browser leg connected.
    pub(super) fn browser_connected(&mut self, ctx: &mut Context<Self>, leg: LegId) {
        let Some(w) = self.web.iter_mut().find(|w| w.media == Some(leg)) else {
            return;
        };
        w.connected = true;
        let agent = w.agent.clone();
        tracing::info!(call = %self.a.call, %agent, "agent connected in the browser");
        self.agent_leg_up(ctx, &agent);
    }

    /// The browser leg failed or closed.
    pub(super) fn browser_failed(&mut self, leg: LegId, why: String) {
        let Some(w) = self.web.iter().find(|w| w.media == Some(leg)) else {
            return;
        };
        let agent = w.agent.clone();
        tracing::info!(call = %self.a.call, %agent, %why, "agent's browser leg ended");
        self.agent_gone(&agent, &format!("browser: {why}"));
    }

    /// A desk phone ringing for a consult ended before or after answering.
    pub(super) fn consult_phone_ended(&mut self) -> bool {
        let Some(to) = self.b_agent.clone() else {
            return false;
        };
        if self.consult.as_ref().is_none_or(|c| c.to != to) {
            return false;
        }
        self.b = None;
        self.b_agent = None;
        self.end_consult();
        true
    }

    /// The consult is over without a transfer: the consulted agent goes, the agent who
    /// has the call talks to the caller again.
    fn end_consult(&mut self) {
        let Some(c) = self.consult.take() else { return };
        if let Some(centre) = self.centre() {
            centre.router().do_send(EndConsult {
                interaction: self.interaction_id(),
                colleague: c.to.clone(),
            });
        }
        self.drop_agent_legs(&c.to);
        if let Some(addr) = self.centre().and_then(|x| x.agent_addr(&c.to)) {
            addr.do_send(AgentPush::Ended {
                interaction: self.interaction_id(),
            });
        }
        if !self.caller_with(&c.from) {
            self.play_hold_music();
        }
        self.tell(&c.from, "consult ended");
        self.ivr_agent_note(
            "consult ended",
            serde_json::json!({"agent": c.from, "with": c.to}),
        );
    }

    /// Tells an agent's desktop what is happening on the call.
    fn tell(&self, agent: &str, state: &'static str) {
        if let Some(addr) = self.centre().and_then(|x| x.agent_addr(agent)) {
            addr.do_send(AgentPush::CallState {
                interaction: self.interaction_id(),
                state,
            });
        }
    }

    fn centre(&self) -> Option<crate::centre::Centre> {
        Some(self.ivr.as_ref()?.ctx.centre.clone())
    }

    fn interaction_id(&self) -> String {
        self.ivr
            .as_ref()
            .map(|i| i.interaction.clone())
            .unwrap_or_default()
    }

    fn answer_browser(
        &mut self,
        ctx: &mut Context<Self>,
        agent: &str,
        sdp: &str,
    ) -> Result<serde_json::Value, String> {
        let Some(w) = self.web_of(agent) else {
            return Err("this call is not waiting for your browser".into());
        };
        if w.media.is_some() {
            return Err("your browser already has a leg on this call".into());
        }
        let codec = self.a.codec.ok_or("the caller has no media yet")?;
        let (id, answer) = self.add_browser_leg(ctx, sdp, codec)?;
        if let Some(w) = self.web.iter_mut().find(|w| w.agent == agent) {
            w.media = Some(id);
        }
        Ok(serde_json::json!({"sdp": answer}))
    }

    fn consult(
        &mut self,
        ctx: &mut Context<Self>,
        from: &str,
        to: &str,
    ) -> Result<serde_json::Value, String> {
        if self.consult.is_some() {
            return Err("a consult is already going on".into());
        }
        if self.agent_leg(from).is_none() {
            return Err("the call is not connected".into());
        }
        if to == from {
            return Err("you cannot consult yourself".into());
        }
        let centre = self.centre().ok_or("this call has no contact centre")?;
        let to_addr = centre
            .agent_addr(to)
            .ok_or_else(|| format!("agent \"{to}\" is not logged in"))?;
        let account = centre
            .accounts()
            .into_iter()
            .find(|a| a.spec.name == to)
            .ok_or_else(|| format!("no agent named \"{to}\""))?;
        let phone = account.spec.extension.clone();
        if phone.is_some() && self.b.is_some() {
            return Err("a consult from a desk phone to a desk phone is not supported yet".into());
        }
        if phone.is_none() && self.cfg.webrtc.is_none() {
            return Err(format!(
                "agent \"{to}\" has no phone and browser calls are off"
            ));
        }
        // The caller waits with music; the agent hears nothing until the colleague
        // answers.
        if let Some(m) = &self.media {
            m.unbridge();
        }
        self.set_hold(true);
        self.play_hold_music();
        self.consult = Some(Consult {
            from: from.to_string(),
            to: to.to_string(),
            connected: false,
        });
        let interaction = self.interaction_id();
        let ivr = self.ivr.as_ref();
        to_addr.do_send(AgentPush::Consult {
            interaction: interaction.clone(),
            from: from.to_string(),
            caller: self.caller.clone(),
            customer: ivr.and_then(|i| i.customer_id),
            details: serde_json::Value::Object(self.ivr_vars()),
            browser_call: phone.is_none(),
        });
        self.ivr_agent_note("consult", serde_json::json!({"agent": from, "with": to}));
        self.tell(from, "consulting");
        match phone {
            Some(ext) => {
                tracing::info!(call = %self.a.call, %from, %to, extension = %ext, "consult: ringing the colleague's phone");
                self.b_agent = Some(to.to_string());
                self.ring_extension(ctx, ext);
            }
            None => self.await_browser(ctx, to.to_string()),
        }
        Ok(serde_json::json!({"consulting": to}))
    }

    /// Completes a warm transfer: the router hands the work to the consulted agent
    /// (who accepts at once); its assignment bridges them to the caller.
    fn complete(
        &mut self,
        ctx: &mut Context<Self>,
        from: &str,
    ) -> Result<serde_json::Value, String> {
        let Some(c) = self.consult.as_ref().filter(|c| c.from == from) else {
            return Err("no consult of yours is going on".into());
        };
        if !c.connected {
            return Err("your colleague has not answered yet".into());
        }
        let to = c.to.clone();
        let centre = self.centre().ok_or("this call has no contact centre")?;
        let interaction = self.interaction_id();
        let router = centre.router().clone();
        let (from, to2) = (from.to_string(), to.clone());
        let hand_over = async move {
            router
                .send(Transfer {
                    agent: from,
                    interaction: interaction.clone(),
                    to: TransferTarget::Agent(to2.clone()),
                })
                .await
                .map_err(|e| e.to_string())??;
            router
                .send(Answer {
                    agent: to2,
                    interaction,
                    accept: true,
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(hand_over).map(|r, act, _| {
                if let Err(e) = r {
                    tracing::warn!(call = %act.a.call, error = %e, "warm transfer not completed");
                    act.end_consult();
                }
            }),
        );
        Ok(serde_json::json!({"transferred_to": to}))
    }

    /// The router assigned the call to the agent we consulted: they are on the line
    /// already; the caller talks to them now.
    pub(super) fn consult_assigned(&mut self, ctx: &mut Context<Self>, agent: &str) -> bool {
        if !self
            .consult
            .as_ref()
            .is_some_and(|c| c.to == agent && c.connected)
        {
            return false;
        }
        self.consult = None;
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.agent = Some((agent.to_string(), false));
        }
        tracing::info!(call = %self.a.call, %agent, "warm transfer completed");
        self.caller_with(agent);
        self.ivr_agent_connected(ctx);
        true
    }
}

impl Handler<AgentCall> for CallActor {
    type Result = Result<serde_json::Value, String>;

    fn handle(&mut self, m: AgentCall, ctx: &mut Context<Self>) -> Self::Result {
        let agent = m.agent().to_string();
        if self.a.ended {
            return Err("the call has ended".into());
        }
        let consulted = self.consult.as_ref().is_some_and(|c| c.to == agent);
        if consulted {
            // The colleague being consulted can connect their browser and hang up.
            return match m {
                AgentCall::Offer { sdp, .. } => self.answer_browser(ctx, &agent, &sdp),
                AgentCall::Hangup { .. } => {
                    self.end_consult();
                    Ok(serde_json::json!({"hung_up": true}))
                }
                _ => Err("you are consulted on this call; the agent who has it decides".into()),
            };
        }
        if self.agent_on_call() != Some(agent.as_str()) {
            return Err("you are not on this call".into());
        }
        match m {
            AgentCall::Offer { sdp, .. } => self.answer_browser(ctx, &agent, &sdp),
            AgentCall::Hangup { .. } => {
                tracing::info!(call = %self.a.call, %agent, "the agent hung up");
                self.ivr_agent_note("hung up", serde_json::json!({"agent": agent}));
                if self.consult.is_some() {
                    self.end_consult();
                }
                self.drop_all_agent_legs();
                self.end_caller(480, "Temporarily Unavailable");
                Ok(serde_json::json!({"hung_up": true}))
            }
            AgentCall::Hold { on, .. } => {
                if self.consult.is_some() {
                    return Err("the caller is on hold while you consult".into());
                }
                if on == self.held {
                    return Ok(serde_json::json!({"held": on}));
                }
                if self.agent_leg(&agent).is_none() {
                    return Err("the call is not connected".into());
                }
                if on {
                    if let Some(m) = &self.media {
                        m.unbridge();
                    }
                    self.set_hold(true);
                    self.play_hold_music();
                } else {
                    self.caller_with(&agent);
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
            AgentCall::Consult { to, .. } => self.consult(ctx, &agent, &to),
            AgentCall::Complete { .. } => self.complete(ctx, &agent),
            AgentCall::CancelConsult { .. } => {
                if self.consult.as_ref().is_none_or(|c| c.from != agent) {
                    return Err("no consult of yours is going on".into());
                }
                self.end_consult();
                Ok(serde_json::json!({"consulting": null}))
            }
        }
    }
}
