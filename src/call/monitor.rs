//! A supervisor on a call: listen (they hear the caller and the agent; what their
//! microphone sends reaches no one), whisper (the agent hears them too, the caller
//! does not) and barge (all three talk). The supervisor's browser is one more WebRTC
//! leg on the shared port; the mode is who hears whom in the media session's mix, so
//! changing it is one command with no renegotiation. The mix holds while the caller
//! talks to the agent; on hold or in a consult the supervisor hears what the agent's
//! side does not get either (nothing). A transfer or the end of the call ends it.

use super::agents::{CallError, Stage};
use super::{CallPush, LegKey, LegState, MediaCommand, Output, Role, Session, Time, Timer};
use crate::media::session::LegId;
use std::time::Duration;

/// How the supervisor takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMode {
    Listen,
    Whisper,
    Barge,
}

impl MonitorMode {
    pub fn parse(s: &str) -> Option<MonitorMode> {
        match s {
            "listen" => Some(MonitorMode::Listen),
            "whisper" => Some(MonitorMode::Whisper),
            "barge" => Some(MonitorMode::Barge),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    /// Who hears whom: (listener, the legs it hears) for caller `c`, agent `a` and
    /// supervisor `s`.
    pub fn mix(self, c: LegId, a: LegId, s: LegId) -> crate::media::session::Hears {
        match self {
            MonitorMode::Listen => vec![(c, vec![a]), (a, vec![c]), (s, vec![c, a])],
            MonitorMode::Whisper => vec![(c, vec![a]), (a, vec![c, s]), (s, vec![c, a])],
            MonitorMode::Barge => vec![(c, vec![a, s]), (a, vec![c, s]), (s, vec![c, a])],
        }
    }
}

/// How the supervisor's audio joins the call.
#[derive(Debug, Clone)]
pub enum MonitorVia {
    /// The console's WebRTC leg: the browser's SDP offer.
    Browser { sdp: String },
    /// Their registered desk phone: this `[[user]]`, rung like an agent's.
    Phone { extension: String },
}

/// What a supervisor does to a call (their right to is checked before: the call is
/// in their scope).
#[derive(Debug, Clone)]
pub enum SupervisorCommand {
    /// Step in with the browser's leg (the reply carries our answer) or the desk phone
    /// (rung; the reply says so at once).
    Start {
        supervisor: String,
        /// How the agent is told who it is (their display name).
        name: String,
        mode: MonitorMode,
        via: MonitorVia,
    },
    Mode {
        supervisor: String,
        mode: MonitorMode,
    },
    Stop {
        supervisor: String,
    },
    /// The whole call ends now (every leg: the caller gets a BYE), for `reason` (the
    /// customer's erasure); `supervisor` is who asked.
    End {
        supervisor: String,
        reason: &'static str,
    },
}

impl SupervisorCommand {
    pub fn supervisor(&self) -> &str {
        match self {
            SupervisorCommand::Start { supervisor, .. }
            | SupervisorCommand::Mode { supervisor, .. }
            | SupervisorCommand::Stop { supervisor }
            | SupervisorCommand::End { supervisor, .. } => supervisor,
        }
    }
}

/// The supervisor on the call (one at a time).
#[derive(Debug, Clone)]
pub(super) struct Monitor {
    supervisor: String,
    /// Their display name, for the agent.
    name: String,
    leg: LegKey,
    mode: MonitorMode,
    /// Their browser leg connected.
    up: bool,
}

/// How long a supervisor's browser has to connect its leg.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a supervisor's desk phone rings.
const PHONE_RING: Duration = Duration::from_secs(30);

type Reply = Option<Result<serde_json::Value, CallError>>;

fn refused(why: impl Into<String>) -> Reply {
    Some(Err(CallError::Refused(why.into())))
}

impl Session {
    /// A supervisor's command; `None`: the reply follows (the browser's answer).
    pub(super) fn supervise(&mut self, _now: Time, cmd: SupervisorCommand) -> Reply {
        if self.customer_ended() {
            return Some(Err(CallError::Over));
        }
        let who = cmd.supervisor().to_string();
        let mine = self.monitor.as_ref().is_some_and(|m| m.supervisor == who);
        match cmd {
            SupervisorCommand::Start {
                mode, via, name, ..
            } => {
                if let Some(m) = &self.monitor {
                    return refused(if mine {
                        "you are on this call already".to_string()
                    } else {
                        format!("{} is on this call already", m.supervisor)
                    });
                }
                if self.agent.agent_up().is_none() {
                    return refused("no agent is on this call");
                }
                let Some(codec) = self.customer().codec else {
                    return refused("the caller has no media yet");
                };
                let (key, reply) = match via {
                    MonitorVia::Browser { sdp } => {
                        if !self.policy.browser_calls {
                            return refused("browser calls are off ([webrtc] port = 0)");
                        }
                        let key = self.add_leg(Role::Supervisor(who.clone()));
                        let id = self.new_media_id();
                        if let Some(l) = self.leg_mut(key) {
                            l.media = Some(id);
                            l.codec = Some(codec);
                        }
                        self.set_timer(CONNECT_TIMEOUT, Timer::Monitor(key));
                        self.media_cmd(MediaCommand::AddBrowser {
                            leg: key,
                            id,
                            offer: sdp,
                            codec,
                            // A supervisor listens: no video.
                            video: vec![],
                        });
                        (key, None)
                    }
                    MonitorVia::Phone { extension } => {
                        let key = self.add_leg(Role::SupervisorPhone(who.clone()));
                        let to = super::Target::User(extension.clone());
                        let ring = Some(PHONE_RING);
                        self.bind(
                            key,
                            false,
                            super::Then::Place {
                                to,
                                video: Default::default(),
                                ring,
                            },
                        );
                        (key, Some(Ok(serde_json::json!({"ringing": extension}))))
                    }
                };
                self.monitor = Some(Monitor {
                    supervisor: who,
                    name,
                    leg: key,
                    mode,
                    up: false,
                });
                reply
            }
            SupervisorCommand::Mode { mode, .. } => {
                if !mine {
                    return refused("you are not on this call");
                }
                if let Some(m) = self.monitor.as_mut() {
                    if m.mode == mode {
                        return Some(Ok(serde_json::json!({"mode": mode.as_str()})));
                    }
                    m.mode = mode;
                    if m.up {
                        self.note(
                            "monitor mode",
                            serde_json::json!({"supervisor": who, "mode": mode.as_str()}),
                        );
                    }
                }
                self.monitor_mix();
                self.tell_monitored();
                Some(Ok(serde_json::json!({"mode": mode.as_str()})))
            }
            SupervisorCommand::Stop { .. } => {
                if !mine {
                    return refused("you are not on this call");
                }
                self.end_monitor("stopped by the supervisor");
                Some(Ok(serde_json::json!({"stopped": true})))
            }
            SupervisorCommand::End { reason, .. } => {
                tracing::info!(call = %self.call(), supervisor = %who, reason, "the call is ended for everyone");
                self.note(
                    "ended",
                    serde_json::json!({"by": "supervisor", "supervisor": who, "reason": reason}),
                );
                // The caller's leg ending takes every other leg with it.
                self.end_customer(480, "Temporarily Unavailable");
                Some(Ok(serde_json::json!({"ended": true})))
            }
        }
    }

    /// The supervisor's media leg, once connected.
    fn monitor_media(&self) -> Option<(LegId, MonitorMode)> {
        let m = self.monitor.as_ref().filter(|m| m.up)?;
        let l = self.leg(m.leg)?;
        l.media
            .filter(|_| l.state == LegState::Up)
            .map(|id| (id, m.mode))
    }

    /// The caller (`c`) and the agent (`a`) talk: bridged, or mixed with the supervisor.
    pub(super) fn talk(&mut self, c: LegId, a: LegId) {
        match self.monitor_media() {
            Some((s, mode)) => self.media_if_open(MediaCommand::Mix(mode.mix(c, a, s))),
            None => self.media_if_open(MediaCommand::Bridge(c, a)),
        }
    }

    /// Re-applies who hears whom after the supervisor came, went or changed mode (only
    /// while the caller talks to the agent).
    fn monitor_mix(&mut self) {
        if let Stage::Talking { agent, .. } = &self.agent {
            let agent = agent.clone();
            if let (Some(c), Some(a)) = (self.customer_media(), self.agent_media(&agent)) {
                self.talk(c, a);
            }
        }
    }

    /// Tells the agent who has the call that they are monitored (listening: when the
    /// policy says so; whisper and barge: always), or no longer.
    fn tell_monitored(&mut self) {
        let Some(agent) = self.agent.agent_up().map(str::to_string) else {
            return;
        };
        let shown = self
            .monitor
            .as_ref()
            .filter(|m| m.up && (m.mode != MonitorMode::Listen || self.policy.monitor_notice))
            .map(|m| (m.supervisor.clone(), m.name.clone(), m.mode.as_str()));
        self.out.push_back(Output::Push {
            agent,
            push: CallPush::Monitored(shown),
        });
    }

    /// The supervisor's browser connected: they are on the call.
    pub(super) fn monitor_connected(&mut self, key: LegKey) {
        let Some(m) = self.monitor.as_mut().filter(|m| m.leg == key) else {
            return;
        };
        m.up = true;
        let (who, mode) = (m.supervisor.clone(), m.mode);
        if let Some(l) = self.leg_mut(key) {
            l.state = LegState::Up;
        }
        tracing::info!(call = %self.call(), supervisor = %who, mode = mode.as_str(), "supervisor on the call");
        self.note(
            "monitor started",
            serde_json::json!({"supervisor": who, "mode": mode.as_str()}),
        );
        self.monitor_mix();
        self.tell_monitored();
    }

    /// The supervisor's desk phone answered: its media joins, and they are on the call.
    pub(super) fn monitor_answered(&mut self, key: LegKey, remote_sdp: &[u8]) {
        let Some(local) = self.leg(key).and_then(|l| l.local.clone()) else {
            return;
        };
        match crate::sdp::RemoteSession::parse(remote_sdp)
            .and_then(|r| crate::sdp::accept_answer(&r, &local))
        {
            Ok(n) => {
                self.add_media(key, &n);
                self.monitor_connected(key);
            }
            Err(e) => self.end_monitor(&format!("unusable answer from the phone: {e}")),
        }
    }

    /// The supervisor's browser did not connect in time.
    pub(super) fn monitor_timeout(&mut self, key: LegKey) {
        if self.monitor.as_ref().is_some_and(|m| m.leg == key && !m.up) {
            self.end_monitor("the browser did not connect");
        }
    }

    /// The supervisor leaves (or is taken off): their leg goes, the caller and the
    /// agent are bridged as before, the agent is told, the timeline says why.
    pub(super) fn end_monitor(&mut self, why: &str) {
        let Some(m) = self.monitor.take() else { return };
        self.drop_leg(m.leg);
        if m.up {
            tracing::info!(call = %self.call(), supervisor = %m.supervisor, why, "supervisor off the call");
            self.note(
                "monitor stopped",
                serde_json::json!({"supervisor": m.supervisor, "why": why}),
            );
            if !self.customer_ended() {
                self.monitor_mix();
                self.tell_monitored();
            }
        }
    }

    /// The leg is the supervisor's.
    pub(super) fn is_monitor_leg(&self, key: LegKey) -> bool {
        self.monitor.as_ref().is_some_and(|m| m.leg == key)
    }

    /// The supervisor's leg, if `media` is its media leg.
    pub(super) fn monitor_leg_of(&self, media: LegId) -> Option<LegKey> {
        let m = self.monitor.as_ref()?;
        (self.leg(m.leg)?.media == Some(media)).then_some(m.leg)
    }
}
