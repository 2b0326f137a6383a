//! An agent adds video to an audio call: the caller's phone is offered video by a
//! re-INVITE of ours (an `m=video` on a port bound for it, in the formats a browser
//! takes), and when it takes some, the agent's browser renegotiates its connection
//! (its camera's m-section, answered inactive so far, is turned on in the format the
//! phone chose). Nothing is transcoded: the phone and the browser agree on one codec.
//!
//! The steps, each a state of [`VideoAdd`]: the agent asks (`Binding`: a port is
//! bound); the phone is offered video (`Offered`: the re-INVITE is out); the phone took
//! it (`Answered`: the desktop is told to renegotiate); the browser's new offer is
//! being answered (`Renegotiating`). Any refusal ends it, the call going on as audio,
//! and the agent hears why.

use super::agents::{CallError, CallPush};
use super::*;

/// Where adding video to the call is (none: not going on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum VideoAdd {
    Binding { agent: String },
    Offered { agent: String },
    Answered { agent: String },
    Renegotiating { agent: String },
}

impl VideoAdd {
    fn agent(&self) -> &str {
        match self {
            VideoAdd::Binding { agent }
            | VideoAdd::Offered { agent }
            | VideoAdd::Answered { agent }
            | VideoAdd::Renegotiating { agent } => agent,
        }
    }
}

fn refused(why: impl Into<String>) -> CallError {
    CallError::Refused(why.into())
}

impl Session {
    /// The agent who has the call asks to add video (`POST /api/agent/work/{id}/video`).
    pub(super) fn add_video(&mut self, agent: &str) -> Result<serde_json::Value, CallError> {
        let leg = match &self.agent {
            agents::Stage::Talking { leg, .. } => *leg,
            agents::Stage::Held { .. } => return Err(refused("take the caller off hold first")),
            agents::Stage::Consulting { .. } => return Err(refused("not while you consult")),
            _ => return Err(refused("the call is not connected")),
        };
        let browser = self.leg(leg).is_some_and(|l| {
            l.role == Role::AgentBrowser(agent.to_string())
                && l.state == LegState::Up
                && l.media.is_some()
        });
        if !browser {
            return Err(refused("video needs the call in your browser"));
        }
        if self.video_add.is_some() {
            return Err(refused("video is being added already"));
        }
        let c = self.customer();
        if !c.video.is_empty() {
            return Err(refused("the call has video already"));
        }
        if c.browser || self.escalation.is_some() {
            return Err(refused(
                "the caller's browser cannot be offered video on this call",
            ));
        }
        if c.sip.is_none() || c.state != LegState::Up || c.media.is_none() || c.local.is_none() {
            return Err(refused("the caller's media is not up"));
        }
        tracing::info!(call = %self.call(), %agent, "the agent adds video");
        self.video_add = Some(VideoAdd::Binding {
            agent: agent.to_string(),
        });
        self.out.push_back(Output::BindVideo { leg: CUSTOMER });
        Ok(serde_json::json!({"adding_video": true}))
    }

    /// The port for the caller's video was bound (or not): the phone is offered video.
    pub(super) fn video_bound(&mut self, leg: LegKey, port: Result<u16, String>) {
        let Some(VideoAdd::Binding { agent }) = self.video_add.clone() else {
            self.out.push_back(Output::DropVideo { leg });
            return;
        };
        let (port, call) = match (port, self.customer().sip) {
            (Ok(p), Some(call)) if !self.customer_ended() => (p, call),
            (Err(e), _) => {
                tracing::warn!(call = %self.call(), error = %e, "no port for video");
                return self.video_failed(leg, "no port for video is free");
            }
            _ => return self.video_failed(leg, "the call has ended"),
        };
        let formats = crate::webrtc::browser_video_formats();
        if let Some(l) = self.customer_mut().local.as_mut() {
            l.video_port = Some(port);
            l.video_formats = formats.clone();
        }
        self.video_add = Some(VideoAdd::Offered { agent });
        self.sip(SipCommand::AddVideo(call, port, formats));
    }

    /// The phone answered our offer of video (or refused it).
    pub(super) fn video_answer(&mut self, answer: Option<Bytes>) {
        let Some(VideoAdd::Offered { agent }) = self.video_add.clone() else {
            return;
        };
        let Some(answer) = answer else {
            return self.video_failed(CUSTOMER, "the caller's phone did not take video");
        };
        let Some(local) = self.customer().local.clone() else {
            return self.video_failed(CUSTOMER, "the caller's media is not up");
        };
        let n = match RemoteSession::parse(&answer).and_then(|r| sdp::accept_answer(&r, &local)) {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(call = %self.call(), error = %e, "unusable answer to our video offer");
                return self.video_failed(CUSTOMER, "the caller's phone answered unusably");
            }
        };
        // The formats the phone took that a browser takes, in the phone's order.
        let formats: Vec<sdp::Format> = n
            .video
            .as_ref()
            .map(|v| {
                v.formats
                    .iter()
                    .filter(|f| crate::webrtc::browser_takes(f).is_some())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if formats.is_empty() {
            return self.video_failed(CUSTOMER, "the caller's phone did not take video");
        }
        let Some(id) = self.customer_media() else {
            return self.video_failed(CUSTOMER, "the caller's media is not up");
        };
        tracing::info!(call = %self.call(), codec = %formats[0].name, "the caller's phone took video");
        self.customer_mut().video = formats;
        self.media_if_open(MediaCommand::AddVideo { leg: CUSTOMER, id });
        self.media_if_open(MediaCommand::Update(id, LegParams::from_sdp(&n)));
        self.video_add = Some(VideoAdd::Answered {
            agent: agent.clone(),
        });
        self.out.push_back(Output::Push {
            agent,
            push: CallPush::Renegotiate,
        });
    }

    /// The agent's browser offers again (its connection is up): while video is being
    /// added, its camera is answered in the phone's format.
    pub(super) fn browser_reoffer(
        &mut self,
        agent: &str,
        key: LegKey,
        id: LegId,
        sdp: String,
    ) -> Option<Result<serde_json::Value, CallError>> {
        match &self.video_add {
            Some(VideoAdd::Answered { agent: a }) if a == agent => {}
            _ => return Some(Err(refused("your browser already has a leg on this call"))),
        }
        self.video_add = Some(VideoAdd::Renegotiating {
            agent: agent.to_string(),
        });
        let video = self.customer().video.clone();
        self.media_if_open(MediaCommand::Reanswer {
            leg: key,
            id,
            offer: sdp,
            video,
        });
        Some(Ok(serde_json::json!({"renegotiating": true})))
    }

    /// The media task answered the browser's new offer (or could not).
    pub(super) fn browser_reanswered(&mut self, leg: LegKey, answer: Result<String, String>) {
        let Some(VideoAdd::Renegotiating { agent }) = self.video_add.take() else {
            return;
        };
        match answer {
            Ok(sdp) => {
                tracing::info!(call = %self.call(), %agent, "video added");
                self.note("video added", serde_json::json!({"agent": agent}));
                self.out.push_back(Output::Push {
                    agent,
                    push: CallPush::Answer(sdp),
                });
            }
            Err(e) => {
                tracing::info!(call = %self.call(), %agent, error = %e, "the browser's video could not be added");
                let _ = leg;
                self.out.push_back(Output::Push {
                    agent,
                    push: CallPush::VideoRefused(format!(
                        "your browser's video could not be added: {e}"
                    )),
                });
            }
        }
    }

    /// Adding video ends without it: the port goes, the agent is told why.
    fn video_failed(&mut self, leg: LegKey, why: &str) {
        let Some(v) = self.video_add.take() else {
            return;
        };
        tracing::info!(call = %self.call(), agent = v.agent(), why, "video not added");
        if let Some(l) = self.customer_mut().local.as_mut() {
            l.video_port = None;
            l.video_formats.clear();
        }
        self.out.push_back(Output::DropVideo { leg });
        self.out.push_back(Output::Push {
            agent: v.agent().to_string(),
            push: CallPush::VideoRefused(why.to_string()),
        });
    }
}
