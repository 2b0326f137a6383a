//! The call core's agent part: agents who take the call on their desk phone or in the
//! browser (a WebRTC leg on the shared port, bridged to the caller without
//! transcoding), and what an agent on the call can do: hang up, hold and resume
//! (re-INVITE sendonly / sendrecv to the caller, music on hold), send DTMF to the
//! caller's side, and a warm transfer: consult a colleague (the caller on hold, the two
//! agents talking), then complete (the caller talks to the colleague, who now owns the
//! call) or cancel (back to the caller).

use super::{
    Colleague, LegKey, LegState, MediaCommand, Output, Role, RouterRequest, Session, SipCommand,
    Time, Timer, WorkNotice,
};
use crate::media::player::Item;
use crate::media::session::LegId;
use std::time::Duration;

/// Where the call is with its agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// No agent: before the queue, or waiting in it.
    None,
    /// Assigned to `agent`, whose leg (desk phone ringing, browser connecting) is not up.
    Connecting { agent: String, leg: LegKey },
    /// The caller talks to `agent`.
    Talking { agent: String, leg: LegKey },
    /// `agent` put the caller on hold (music).
    Held { agent: String, leg: LegKey },
    /// `agent` consults `colleague` while the caller waits with music.
    Consulting {
        agent: String,
        leg: LegKey,
        colleague: String,
        colleague_leg: LegKey,
        /// The colleague's leg is up (the two agents talk).
        connected: bool,
    },
    /// A completed consult: `agent` (the colleague) is on the line; the router's
    /// assignment makes the call theirs.
    HandingOver { agent: String, leg: LegKey },
    /// The agent handed the call on (a transfer): the caller hears music until the
    /// next agent connects; that assignment rings although the flow has ended.
    HandedOn,
}

impl Stage {
    /// The agent who has the call (ringing, talking, holding, consulting).
    pub fn agent(&self) -> Option<&str> {
        match self {
            Stage::Connecting { agent, .. }
            | Stage::Talking { agent, .. }
            | Stage::Held { agent, .. }
            | Stage::Consulting { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// The agent who answered and has the call.
    pub fn agent_up(&self) -> Option<&str> {
        match self {
            Stage::Talking { agent, .. }
            | Stage::Held { agent, .. }
            | Stage::Consulting { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// The colleague being consulted (or taking over).
    fn consulted(&self) -> Option<&str> {
        match self {
            Stage::Consulting { colleague, .. } => Some(colleague),
            Stage::HandingOver { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// No agent has the call (the caller waits, if queued).
    pub fn is_waiting(&self) -> bool {
        matches!(self, Stage::None | Stage::HandedOn)
    }
}

/// What an agent does to their call from the desktop.
#[derive(Debug, Clone)]
pub enum AgentCommand {
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
    /// Add video to the audio call (the caller's phone is offered it).
    AddVideo {
        agent: String,
    },
    /// A supervisor steps in, changes how, or leaves (`agent()` is the supervisor).
    Supervise(super::SupervisorCommand),
}

impl AgentCommand {
    pub fn agent(&self) -> &str {
        match self {
            AgentCommand::Offer { agent, .. }
            | AgentCommand::Hangup { agent }
            | AgentCommand::Hold { agent, .. }
            | AgentCommand::Digits { agent, .. }
            | AgentCommand::Consult { agent, .. }
            | AgentCommand::Complete { agent }
            | AgentCommand::CancelConsult { agent }
            | AgentCommand::AddVideo { agent } => agent,
            AgentCommand::Supervise(c) => c.supervisor(),
        }
    }
}

/// Why an agent's command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The call has ended.
    Over,
    /// The agent is not on this call.
    NotYours,
    /// Not now, or not like that: why.
    Refused(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Over => f.write_str("the call has ended"),
            CallError::NotYours => f.write_str("you are not on this call"),
            CallError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for CallError {}

fn refused(why: impl Into<String>) -> CallError {
    CallError::Refused(why.into())
}

/// What an agent's desktop is told about this call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallPush {
    /// A colleague asks this agent to talk before handing the call over.
    Consult {
        from: String,
        caller: String,
        customer: Option<i64>,
        details: serde_json::Value,
        browser_call: bool,
    },
    /// `consulting`, `consult connected`, `consult ended`.
    CallState(&'static str),
    /// The agent put the caller on hold (`true`) or took them off it.
    Held(bool),
    /// A supervisor is on the call, as the agent may know it: (who, `listen` |
    /// `whisper` | `barge`), or no longer (`None`).
    Monitored(Option<(String, String, &'static str)>),
    /// The caller's phone took video: the desktop offers its connection again (its
    /// camera), answered by [`CallPush::Answer`].
    Renegotiate,
    /// Our answer to the browser's new offer.
    Answer(String),
    /// Video was not added: why.
    VideoRefused(String),
    /// The call left the agent.
    Ended,
}

/// How long a browser has, once the agent accepted, to connect its leg.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Media ids of music-on-hold items.
const HOLD_ID: u64 = u64::MAX - 1024;

type Reply = Option<Result<serde_json::Value, CallError>>;

impl Session {
    /// The live leg (browser or desk phone) of `agent`.
    fn leg_of(&self, agent: &str) -> Option<LegKey> {
        self.legs
            .iter()
            .find(|l| {
                l.state != LegState::Ended
                    && matches!(&l.role, Role::AgentPhone(a) | Role::AgentBrowser(a) if a == agent)
            })
            .map(|l| l.key)
    }

    /// The media leg an agent talks on, once connected.
    pub(super) fn agent_media(&self, agent: &str) -> Option<LegId> {
        let l = self.leg(self.leg_of(agent)?)?;
        l.media.filter(|_| l.state == LegState::Up)
    }

    /// What the router says about this call's work.
    pub(super) fn on_work(&mut self, now: Time, w: WorkNotice) {
        if self.ivr.is_none() {
            return;
        }
        match w {
            WorkNotice::Offered { agent } => {
                self.note("offered", serde_json::json!({"agent": agent}));
                self.screen_pop("call.offered", &agent);
            }
            WorkNotice::Assigned { agent, extension } => {
                self.note("assigned", serde_json::json!({"agent": agent}));
                let run_over = self.ivr.as_ref().is_some_and(|i| i.outcome.is_some());
                let handed = matches!(self.agent, Stage::HandedOn | Stage::HandingOver { .. });
                if self.customer_ended() || (run_over && !handed) {
                    return;
                }
                if let Stage::HandingOver { agent: a, leg } = &self.agent {
                    if *a == agent {
                        // The colleague we consulted is on the line already.
                        let leg = *leg;
                        tracing::info!(call = %self.call(), %agent, "warm transfer completed");
                        self.agent = Stage::Connecting {
                            agent: agent.clone(),
                            leg,
                        };
                        self.caller_with(&agent);
                        return self.agent_connected(now);
                    }
                }
                let leg = match extension {
                    None if !self.policy.browser_calls => {
                        tracing::warn!(call = %self.call(), %agent, "agent has no phone and browser calls are off; the call goes back to the queue");
                        self.agent = Stage::None;
                        self.out.push_back(Output::Router(RouterRequest::Requeue));
                        return;
                    }
                    None => self.await_browser(&agent),
                    Some(ext) => {
                        tracing::info!(call = %self.call(), %agent, extension = %ext, "ringing the agent");
                        self.ring_extension(&agent, ext)
                    }
                };
                self.agent = Stage::Connecting { agent, leg };
            }
            WorkNotice::Transferred { from, to } => {
                self.note("transferred", serde_json::json!({"from": from, "to": to}));
                self.handed_on(&from);
            }
            WorkNotice::OfferEnded { agent, lapsed } => {
                let kind = if lapsed {
                    "offer lapsed"
                } else {
                    "offer rejected"
                };
                self.note(kind, serde_json::json!({"agent": agent}));
                if self.escalation.is_some() && self.agent.is_waiting() {
                    // A video call from the chat is for its agent alone: the customer
                    // hears at once that they could not take it (the chat goes on).
                    tracing::info!(call = %self.call(), %agent, kind, "the chat's agent did not take the video call");
                    // The customer's leg is the chat page, not a SIP dialog: a final
                    // refusal (even after the answer) tells it why.
                    if !self.customer_ended() {
                        self.sip(SipCommand::Reject(
                            self.call(),
                            480,
                            "Temporarily Unavailable",
                        ));
                    }
                }
            }
            WorkNotice::Overflow { to } => {
                self.note("overflow", serde_json::json!({"to": to}));
                if to != "voicemail" {
                    if let Some(ivr) = self.ivr.as_mut() {
                        ivr.queue = Some(to);
                    }
                }
            }
        }
    }

    /// An agent's browser will offer a leg over their WebSocket; if it has not
    /// connected in time, the caller goes back to their place (or the consult ends).
    fn await_browser(&mut self, agent: &str) -> LegKey {
        tracing::info!(call = %self.call(), %agent, "waiting for the agent's browser");
        self.drop_browser(agent);
        let key = self.add_leg(Role::AgentBrowser(agent.to_string()));
        self.set_timer(CONNECT_TIMEOUT, Timer::Browser(agent.to_string()));
        key
    }

    pub(super) fn browser_timeout(&mut self, now: Time, agent: &str) {
        let waiting = self.legs.iter().any(|l| {
            l.role == Role::AgentBrowser(agent.to_string())
                && !matches!(l.state, LegState::Up | LegState::Ended)
        });
        if waiting {
            self.agent_gone(now, agent, "the browser did not connect");
        }
    }

    /// Takes a leg out of the call: a SIP leg is hung up (its end is no news), a
    /// browser leg's media closes.
    pub(super) fn drop_leg(&mut self, key: LegKey) {
        let Some(l) = self.leg_mut(key) else { return };
        if l.state == LegState::Ended {
            return;
        }
        l.state = LegState::Ended;
        l.dropped = true;
        let (sip, media) = (l.sip, l.media);
        if let Role::AgentBrowser(_) | Role::Supervisor(_) = l.role {
            if let Some(m) = media {
                self.media_if_open(MediaCommand::Remove(m));
            }
            return;
        }
        match sip {
            Some(call) => self.sip(SipCommand::Hangup(call)),
            None => {
                if let Some(l) = self.leg_mut(key) {
                    l.hangup_when_placed = true;
                }
            }
        }
    }

    fn drop_browser(&mut self, agent: &str) {
        let keys: Vec<LegKey> = self
            .legs
            .iter()
            .filter(|l| l.role == Role::AgentBrowser(agent.to_string()))
            .map(|l| l.key)
            .collect();
        for k in keys {
            self.drop_leg(k);
        }
    }

    /// Takes an agent's legs (browser, desk phone) out of the call.
    fn drop_agent_legs(&mut self, agent: &str) {
        let keys: Vec<LegKey> = self
            .legs
            .iter()
            .filter(
                |l| matches!(&l.role, Role::AgentPhone(a) | Role::AgentBrowser(a) if a == agent),
            )
            .map(|l| l.key)
            .collect();
        for k in keys {
            self.drop_leg(k);
        }
    }

    fn drop_all_agent_legs(&mut self) {
        let keys: Vec<LegKey> = self
            .legs
            .iter()
            .filter(|l| matches!(l.role, Role::AgentPhone(_) | Role::AgentBrowser(_)))
            .map(|l| l.key)
            .collect();
        for k in keys {
            self.drop_leg(k);
        }
    }

    /// The agent who had the call handed it on: their legs go; unless the colleague
    /// they consulted is on the line (a completed consult), the caller hears music
    /// until the next agent connects. The recording goes on.
    fn handed_on(&mut self, from: &str) {
        self.end_monitor("the call was transferred");
        if let Stage::Consulting {
            agent,
            colleague,
            colleague_leg,
            connected,
            ..
        } = &self.agent
        {
            if agent == from {
                let (colleague, leg, connected) = (colleague.clone(), *colleague_leg, *connected);
                self.drop_agent_legs(from);
                if connected {
                    self.agent = Stage::HandingOver {
                        agent: colleague,
                        leg,
                    };
                    return;
                }
                self.release_colleague(&colleague);
            }
        }
        self.drop_all_agent_legs();
        self.media_if_open(MediaCommand::Unbridge);
        self.set_hold(false);
        self.play_hold_music();
        self.agent = Stage::HandedOn;
    }

    /// An agent's leg failed or never connected.
    fn agent_gone(&mut self, now: Time, agent: &str, why: &str) {
        match &self.agent {
            Stage::Consulting { colleague, .. } if colleague == agent => {
                tracing::info!(call = %self.call(), %agent, why, "consulted agent gone");
                return self.end_consult();
            }
            Stage::HandingOver { agent: a, .. } if a == agent => {
                tracing::info!(call = %self.call(), %agent, why, "the colleague taking over is gone");
                self.release_colleague(agent);
                self.play_hold_music();
                self.agent = Stage::HandedOn;
                return;
            }
            _ => {}
        }
        let connected = self.agent_media(agent).is_some();
        self.drop_agent_legs(agent);
        if self.agent.agent() != Some(agent) {
            return;
        }
        if connected {
            // The agent's browser went away mid-call: the call ends, as a hang-up would.
            self.end_customer(480, "Temporarily Unavailable");
        } else {
            self.agent_missed(agent, why);
        }
        let _ = now;
    }

    /// The agent did not take the call (their phone did not answer, their browser
    /// did not connect): on the timeline, and the caller waits again.
    pub(super) fn agent_missed(&mut self, agent: &str, why: &str) -> bool {
        if !matches!(&self.agent, Stage::Connecting { agent: a, .. } if a == agent) {
            return false;
        }
        tracing::info!(call = %self.call(), %agent, why, "agent did not answer; back to the queue");
        self.note(
            "agent missed",
            serde_json::json!({"agent": agent, "why": why}),
        );
        self.out.push_back(Output::Router(RouterRequest::Requeue));
        self.agent = Stage::None;
        true
    }

    /// An agent's desk phone ended (`was_up`: after answering).
    pub(super) fn agent_phone_ended(
        &mut self,
        now: Time,
        agent: &str,
        was_up: bool,
        reason: &super::EndReason,
    ) {
        if self.agent.consulted() == Some(agent) {
            return self.agent_gone(now, agent, "the phone hung up");
        }
        if !was_up {
            if !self.agent_missed(agent, &format!("{reason:?}")) {
                self.ivr_input(now, super::transfer_failed(reason));
            }
            return;
        }
        if self.agent.agent_up() == Some(agent) && reason == &super::EndReason::RemoteBye {
            // The agent put their phone down (who ended it, for the KPIs): the caller
            // may go on in the flow.
            tracing::info!(call = %self.call(), %agent, "the agent's phone hung up");
            self.note("hung up", serde_json::json!({"agent": agent}));
            self.end_monitor("the agent hung up");
            if self.after_agent(now) {
                return;
            }
        }
        if !self.customer_ended() {
            let (code, why) = super::relayed_failure(reason);
            self.end_customer(code, why);
        }
    }

    /// Holds or resumes the caller's side (re-INVITE), once per change.
    pub(super) fn set_hold(&mut self, on: bool) {
        if self.customer().held != on {
            self.customer_mut().held = on;
            let call = self.call();
            self.sip(SipCommand::Hold(call, on));
        }
    }

    fn play_hold_music(&mut self) {
        let Some(a) = self.customer_media() else {
            return;
        };
        if self.media != super::MediaState::Open {
            return;
        }
        let music = self.policy.hold_music.clone();
        self.media_cmd(MediaCommand::StopPlayback(a));
        // About an hour of music; resume stops it.
        let reps = (3600 * 8 / music.len().max(8000)).max(1) as u64;
        for i in 0..reps {
            self.media_cmd(MediaCommand::Play(
                a,
                Item::Prompt {
                    id: HOLD_ID + i.min(1000),
                    samples: music.clone(),
                    barge_in: false,
                },
            ));
        }
    }

    /// The caller talks to `agent` again (music off, bridged, resumed).
    fn caller_with(&mut self, agent: &str) -> bool {
        let (Some(a), Some(l)) = (self.customer_media(), self.agent_media(agent)) else {
            return false;
        };
        self.media_if_open(MediaCommand::StopPlayback(a));
        self.talk(a, l);
        self.set_hold(false);
        true
    }

    /// An agent's leg is up (browser connected, or desk phone answered): the caller
    /// talks to them, or, for a consult, the two agents talk while the caller waits.
    pub(super) fn agent_leg_up(&mut self, now: Time, agent: &str) {
        if let Stage::Consulting {
            agent: from,
            colleague,
            connected,
            ..
        } = &mut self.agent
        {
            if colleague == agent {
                *connected = true;
                let from = from.clone();
                tracing::info!(call = %self.call(), %from, to = %agent, "consult connected");
                self.tell(&from, "consult connected");
                // The colleague's desk shows the consult as work in progress.
                self.tell(agent, "consult connected");
                if let (Some(x), Some(y)) = (self.agent_media(&from), self.agent_media(agent)) {
                    self.media_if_open(MediaCommand::Bridge(x, y));
                }
                return;
            }
        }
        if self.agent.agent() != Some(agent) {
            return;
        }
        self.caller_with(agent);
        self.agent_connected(now);
    }

    /// The agent is on the call: on record, the run learns it, the screen-pop webhook
    /// says so.
    fn agent_connected(&mut self, now: Time) {
        if let Stage::Connecting { agent, leg } = &self.agent {
            let (agent, leg) = (agent.clone(), *leg);
            tracing::info!(call = %self.call(), %agent, "agent on the call");
            self.store(super::StoreWrite::Answered(agent.clone()));
            self.note("connected", serde_json::json!({"agent": agent}));
            self.screen_pop("call.connected", &agent);
            self.agent = Stage::Talking { agent, leg };
        }
        self.ivr_input(now, crate::dialplan::Input::Connected);
    }

    /// A browser leg connected.
    pub(super) fn browser_connected(&mut self, now: Time, media: LegId) {
        if let Some(key) = self.monitor_leg_of(media) {
            return self.monitor_connected(key);
        }
        let Some(l) = self.legs.iter_mut().find(|l| {
            l.media == Some(media)
                && matches!(l.role, Role::AgentBrowser(_))
                && l.state != LegState::Ended
        }) else {
            return;
        };
        l.state = LegState::Up;
        let Role::AgentBrowser(agent) = l.role.clone() else {
            return;
        };
        tracing::info!(call = %self.call(), %agent, "agent connected in the browser");
        self.agent_leg_up(now, &agent);
    }

    /// A browser leg failed or closed.
    pub(super) fn browser_failed(&mut self, now: Time, media: LegId, why: String) {
        if self.monitor_leg_of(media).is_some() {
            return self.end_monitor(&format!("browser: {why}"));
        }
        let Some(l) = self.legs.iter().find(|l| {
            l.media == Some(media)
                && matches!(l.role, Role::AgentBrowser(_))
                && l.state != LegState::Ended
        }) else {
            return;
        };
        let Role::AgentBrowser(agent) = l.role.clone() else {
            return;
        };
        tracing::info!(call = %self.call(), %agent, %why, "agent's browser leg ended");
        self.agent_gone(now, &agent, &format!("browser: {why}"));
    }

    /// The colleague leaves the consult: the router frees them, their legs go, their
    /// desktop is told.
    fn release_colleague(&mut self, colleague: &str) {
        self.out
            .push_back(Output::Router(RouterRequest::EndConsult {
                colleague: colleague.to_string(),
            }));
        self.drop_agent_legs(colleague);
        self.out.push_back(Output::Push {
            agent: colleague.to_string(),
            push: CallPush::Ended,
        });
    }

    /// The consult is over without a transfer: the consulted agent goes, the agent who
    /// has the call talks to the caller again.
    fn end_consult(&mut self) {
        let Stage::Consulting {
            agent,
            leg,
            colleague,
            ..
        } = self.agent.clone()
        else {
            return;
        };
        self.agent = Stage::Talking {
            agent: agent.clone(),
            leg,
        };
        self.release_colleague(&colleague);
        if !self.caller_with(&agent) {
            self.play_hold_music();
        }
        self.tell(&agent, "consult ended");
        self.note(
            "consult ended",
            serde_json::json!({"agent": agent, "with": colleague}),
        );
    }

    /// Tells an agent's desktop what is happening on the call.
    fn tell(&mut self, agent: &str, state: &'static str) {
        self.out.push_back(Output::Push {
            agent: agent.to_string(),
            push: CallPush::CallState(state),
        });
    }

    /// The agent's browser offers its leg: answered by [`Session::browser_answered`].
    fn answer_browser(&mut self, agent: &str, sdp: String) -> Reply {
        let Some(key) = self
            .legs
            .iter()
            .find(|l| l.role == Role::AgentBrowser(agent.to_string()) && l.state != LegState::Ended)
            .map(|l| l.key)
        else {
            return Some(Err(refused("this call is not waiting for your browser")));
        };
        if let Some(id) = self.leg(key).and_then(|l| l.media) {
            // A renegotiation (the agent adds video), or a mistake.
            return self.browser_reoffer(agent, key, id, sdp);
        }
        let Some(codec) = self.customer().codec else {
            return Some(Err(refused("the caller has no media yet")));
        };
        if !self.policy.browser_calls {
            return Some(Err(refused("browser calls are off ([webrtc] port = 0)")));
        }
        let id = self.new_media_id();
        if let Some(l) = self.leg_mut(key) {
            l.media = Some(id);
            l.codec = Some(codec);
        }
        let video = self.customer().video.clone();
        self.media_cmd(MediaCommand::AddBrowser {
            leg: key,
            id,
            offer: sdp,
            codec,
            video,
        });
        None
    }

    /// The driver answered an agent's browser offer (or could not).
    pub(super) fn agent_browser_answered(&mut self, key: LegKey, answer: Result<String, String>) {
        let r = match answer {
            Ok(sdp) => {
                if let Some(l) = self.leg_mut(key) {
                    l.state = LegState::Ringing;
                }
                Ok(serde_json::json!({"sdp": sdp}))
            }
            Err(e) => {
                if let Some(l) = self.leg_mut(key) {
                    l.media = None;
                }
                Err(CallError::Refused(e))
            }
        };
        self.out.push_back(Output::Reply(r));
    }

    fn consult(&mut self, from: &str, to: &str, colleague: Option<Colleague>) -> Reply {
        if matches!(self.agent, Stage::Consulting { .. }) {
            return Some(Err(refused("a consult is already going on")));
        }
        let Some(leg) = self
            .leg_of(from)
            .filter(|_| self.agent_media(from).is_some())
        else {
            return Some(Err(refused("the call is not connected")));
        };
        if to == from {
            return Some(Err(refused("you cannot consult yourself")));
        }
        if self.ivr.is_none() {
            return Some(Err(refused("this call has no contact centre")));
        }
        let colleague = colleague.unwrap_or(Colleague {
            logged_in: false,
            account: None,
        });
        if !colleague.logged_in {
            return Some(Err(refused(format!("agent \"{to}\" is not logged in"))));
        }
        let Some(account) = colleague.account else {
            return Some(Err(refused(format!("no agent named \"{to}\""))));
        };
        let phone = account.extension;
        let phone_leg = self.legs.iter().any(|l| {
            l.state != LegState::Ended && matches!(l.role, Role::AgentPhone(_) | Role::Transfer)
        });
        if phone.is_some() && phone_leg {
            return Some(Err(refused(
                "a consult from a desk phone to a desk phone is not supported yet",
            )));
        }
        if phone.is_none() && !self.policy.browser_calls {
            return Some(Err(refused(format!(
                "agent \"{to}\" has no phone and browser calls are off"
            ))));
        }
        // The caller waits with music; the agent hears nothing until the colleague
        // answers.
        self.media_if_open(MediaCommand::Unbridge);
        self.set_hold(true);
        self.play_hold_music();
        let details = serde_json::Value::Object(self.ivr_vars());
        let customer = self.ivr.as_ref().and_then(|i| i.customer_id);
        self.out.push_back(Output::Push {
            agent: to.to_string(),
            push: CallPush::Consult {
                from: from.to_string(),
                caller: self.caller.clone(),
                customer,
                details,
                browser_call: phone.is_none(),
            },
        });
        self.note("consult", serde_json::json!({"agent": from, "with": to}));
        self.tell(from, "consulting");
        let colleague_leg = match phone {
            Some(ext) => {
                tracing::info!(call = %self.call(), %from, %to, extension = %ext, "consult: ringing the colleague's phone");
                self.ring_extension(to, ext)
            }
            None => self.await_browser(to),
        };
        self.agent = Stage::Consulting {
            agent: from.to_string(),
            leg,
            colleague: to.to_string(),
            colleague_leg,
            connected: false,
        };
        Some(Ok(serde_json::json!({"consulting": to})))
    }

    /// Completes a warm transfer: the router hands the work to the consulted agent
    /// (who accepts at once); its assignment bridges them to the caller.
    fn complete(&mut self, from: &str) -> Reply {
        let Stage::Consulting {
            agent,
            colleague,
            connected,
            ..
        } = &self.agent
        else {
            return Some(Err(refused("no consult of yours is going on")));
        };
        if agent != from {
            return Some(Err(refused("no consult of yours is going on")));
        }
        if !connected {
            return Some(Err(refused("your colleague has not answered yet")));
        }
        let to = colleague.clone();
        self.out.push_back(Output::Router(RouterRequest::HandOver {
            from: from.to_string(),
            to: to.clone(),
        }));
        Some(Ok(serde_json::json!({"transferred_to": to})))
    }

    pub(super) fn hand_over_failed(&mut self, why: String) {
        tracing::warn!(call = %self.call(), error = %why, "warm transfer not completed");
        self.end_consult();
    }

    /// An agent's command; `None`: the reply follows (a browser's answer).
    pub(super) fn agent_command(
        &mut self,
        now: Time,
        cmd: AgentCommand,
        colleague: Option<Colleague>,
    ) -> Reply {
        let cmd = match cmd {
            AgentCommand::Supervise(c) => return self.supervise(now, c),
            cmd => cmd,
        };
        let agent = cmd.agent().to_string();
        if self.customer_ended() {
            return Some(Err(CallError::Over));
        }
        if self.agent.consulted() == Some(agent.as_str()) {
            // The colleague being consulted can connect their browser and hang up.
            return match cmd {
                AgentCommand::Offer { sdp, .. } => self.answer_browser(&agent, sdp),
                AgentCommand::Hangup { .. } => {
                    self.agent_gone(now, &agent, "hung up");
                    Some(Ok(serde_json::json!({"hung_up": true})))
                }
                _ => Some(Err(refused(
                    "you are consulted on this call; the agent who has it decides",
                ))),
            };
        }
        if self.agent.agent() != Some(agent.as_str()) {
            return Some(Err(CallError::NotYours));
        }
        match cmd {
            AgentCommand::Offer { sdp, .. } => self.answer_browser(&agent, sdp),
            AgentCommand::Hangup { .. } => {
                tracing::info!(call = %self.call(), %agent, "the agent hung up");
                self.note("hung up", serde_json::json!({"agent": agent}));
                if matches!(self.agent, Stage::Consulting { .. }) {
                    self.end_consult();
                }
                self.end_monitor("the agent hung up");
                self.drop_all_agent_legs();
                if !self.after_agent(now) {
                    self.end_customer(480, "Temporarily Unavailable");
                }
                Some(Ok(serde_json::json!({"hung_up": true})))
            }
            AgentCommand::Hold { on, .. } => Some(self.hold(&agent, on)),
            AgentCommand::Digits { digits, .. } => {
                let valid = !digits.is_empty()
                    && digits.len() <= 32
                    && digits
                        .chars()
                        .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c));
                if !valid {
                    return Some(Err(refused("digits must be 1 to 32 of 0-9 * # A-D")));
                }
                let Some(a) = self.customer_media() else {
                    return Some(Err(refused("the call is not connected")));
                };
                self.media_if_open(MediaCommand::SendDigits(a, digits.clone()));
                Some(Ok(serde_json::json!({"sent": digits})))
            }
            AgentCommand::Consult { to, .. } => self.consult(&agent, &to, colleague),
            AgentCommand::Complete { .. } => self.complete(&agent),
            AgentCommand::AddVideo { .. } => Some(self.add_video(&agent)),
            AgentCommand::Supervise(_) => Some(Err(CallError::NotYours)),
            AgentCommand::CancelConsult { .. } => {
                if !matches!(&self.agent, Stage::Consulting { agent: a, .. } if *a == agent) {
                    return Some(Err(refused("no consult of yours is going on")));
                }
                self.end_consult();
                Some(Ok(serde_json::json!({"consulting": null})))
            }
        }
    }

    fn hold(&mut self, agent: &str, on: bool) -> Result<serde_json::Value, CallError> {
        let leg = match &self.agent {
            Stage::Consulting { .. } => {
                return Err(refused("the caller is on hold while you consult"))
            }
            Stage::Held { leg, .. }
            | Stage::Talking { leg, .. }
            | Stage::Connecting { leg, .. } => *leg,
            _ => return Err(CallError::NotYours),
        };
        let held = matches!(self.agent, Stage::Held { .. });
        if on == held {
            return Ok(serde_json::json!({"held": on}));
        }
        if self.agent_media(agent).is_none() {
            return Err(refused("the call is not connected"));
        }
        let agent_s = agent.to_string();
        if on {
            self.media_if_open(MediaCommand::Unbridge);
            self.set_hold(true);
            self.play_hold_music();
            self.agent = Stage::Held {
                agent: agent_s,
                leg,
            };
        } else {
            self.caller_with(agent);
            self.agent = Stage::Talking {
                agent: agent_s,
                leg,
            };
        }
        self.note(
            if on { "held" } else { "resumed" },
            serde_json::json!({"agent": agent}),
        );
        self.out.push_back(Output::Push {
            agent: agent.to_string(),
            push: CallPush::Held(on),
        });
        Ok(serde_json::json!({"held": on}))
    }
}
