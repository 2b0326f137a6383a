//! `CallActor`: one per call. It owns the call's SIP legs (the caller, and the far end
//! when the call is forwarded), its media task and its recording, and runs the built-in
//! handler until the IVR replaces it:
//! - **answer**: answer, play the welcome prompt (a key press stops it), log each key
//!   press once, record, hang up after `calls.hangup_after_secs`;
//! - **forward** (`calls.forward_trunk`): call the same number out through the trunk,
//!   answer the caller when the far end answers, bridge the two legs (relay, transcode
//!   when codecs differ, DTMF across, video relayed), record both sides;
//! - **extension**: a registered phone dialling another user's extension rings that
//!   user's registered phone the same way (a failure is relayed: busy stays busy).
//!
//! It makes no SIP decision: it sends commands to the SIP core and reacts to its
//! events. RTP moves in the media task, never through the actor's mailbox.

use crate::media::driver::{LegSockets, MediaHandle, MediaNotice};
use crate::media::player::{Item, Samples};
use crate::media::session::{LegId, LegParams, MediaEvent};
use crate::media::RtpPorts;
use crate::sdp::{self, Codec, Direction, Local, RemoteSession};
use crate::sip::core::{CallRef, EndReason};
use actix::prelude::*;
use bytes::Bytes;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[path = "ivr.rs"]
mod ivr;
#[path = "softphone.rs"]
mod softphone;
use ivr::ivr_input_failed;
pub use ivr::IvrContext;
pub use softphone::AgentCall;

impl std::fmt::Debug for IvrContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IvrContext")
            .field("dir", &self.library.dir())
            .finish()
    }
}

/// Commands the actors send to the SIP driver.
#[derive(Debug)]
pub enum CallCommand {
    Ring(CallRef),
    Answer(CallRef, Bytes),
    Reject(CallRef, u16, &'static str),
    Hangup(CallRef),
    /// Place a call to a registered user or a SIP URI (no trunk); `owner` receives
    /// its events.
    OriginateDirect {
        call: CallRef,
        target: DirectTarget,
        sdp: Bytes,
        owner: Addr<CallActor>,
    },
    /// Put the leg on hold (re-INVITE with sendonly) or take it off (sendrecv).
    Hold(CallRef, bool),
    /// Place a call; `owner` receives its events (a forwarding actor's second leg).
    Originate {
        call: CallRef,
        to: String,
        sdp: Bytes,
        trunk: Option<String>,
        owner: Option<Addr<CallActor>>,
    },
}

#[derive(Debug, Clone)]
pub enum DirectTarget {
    /// A registered user (extension).
    User(String),
    Uri(String),
}

/// How the built-in handler behaves.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    pub answer_after: Duration,
    pub hangup_after: Option<Duration>,
    pub rtp_ip: IpAddr,
    pub record: bool,
    pub recordings_dir: PathBuf,
    pub welcome: Samples,
    pub forward_trunk: Option<String>,
    /// The SIP users (extensions) registered phones may dial directly.
    pub extensions: Arc<std::collections::HashSet<String>>,
    /// The trunk registered phones dial out through (`calls.phones_trunk`).
    pub phones_trunk: Option<String>,
    /// How long an extension rings (`calls.ring_secs`; none: until the caller hangs up).
    pub ring: Option<Duration>,
    /// Dialplans, the store and the queues (none: the built-in handler only).
    pub ivr: Option<Arc<IvrContext>>,
    /// The port browser legs share (none: agents without a phone take no calls).
    pub webrtc: Option<Arc<crate::webrtc::WebRtcPort>>,
    /// What a caller on hold hears.
    pub hold_music: Samples,
}

/// Events for one SIP leg of a call, from the SIP driver.
#[derive(Debug)]
pub enum CallEvent {
    Established {
        remote_sdp: Bytes,
    },
    RemoteOffer {
        sdp: Bytes,
        negotiated: Box<sdp::Negotiated>,
    },
    Progress(u16),
    InfoDigit(char),
    Ended(EndReason),
}

#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SipEvent(pub CallRef, pub CallEvent);

/// Where a call from registered phone `user` (none: a trunk's call) to `dialled` goes
/// before any dialplan: another configured user's phone, or out through the phones'
/// trunk for a number that is not a user. A number a dialplan route names is the
/// dialplan's; so is a phone calling its own number.
fn phone_route(
    user: Option<&str>,
    dialled: &str,
    extensions: &std::collections::HashSet<String>,
    routed: impl Fn(&str) -> bool,
    phones_trunk: Option<&str>,
) -> Option<Forward> {
    let user = user?;
    if routed(dialled) || dialled == user {
        return None;
    }
    if extensions.contains(dialled) {
        return Some(Forward::Extension(dialled.to_string()));
    }
    phones_trunk.map(|t| Forward::Trunk(t.to_string()))
}

#[cfg(test)]
#[test]
fn a_phone_reaches_extensions_and_dials_out_unless_a_route_claims_the_number() {
    let ext: std::collections::HashSet<String> =
        ["1001", "1002"].iter().map(|s| s.to_string()).collect();
    let none = |_: &str| false;
    let out = Some("provider");
    let ext_1001 = Some(Forward::Extension("1001".into()));
    assert_eq!(phone_route(Some("1002"), "1001", &ext, none, out), ext_1001);
    assert_eq!(
        phone_route(Some("1002"), "1001", &ext, none, None),
        ext_1001
    );
    // A number that is not a user goes out when the phones have a trunk.
    assert_eq!(
        phone_route(Some("1002"), "+15550001111", &ext, none, out),
        Some(Forward::Trunk("provider".into()))
    );
    assert_eq!(phone_route(Some("1002"), "5000", &ext, none, None), None);
    // A trunk's call, the caller's own number: the dialplan's.
    assert_eq!(phone_route(None, "1001", &ext, none, out), None);
    assert_eq!(phone_route(Some("1002"), "1002", &ext, none, out), None);
    // A dialplan route for the number wins over both.
    let routed = |n: &str| n == "1001" || n == "100";
    assert_eq!(phone_route(Some("1002"), "1001", &ext, routed, out), None);
    assert_eq!(phone_route(Some("1002"), "100", &ext, routed, out), None);
}

/// Where a second leg is placed.
enum Dial {
    /// A number out through a trunk (none: the core picks one).
    Number {
        number: String,
        trunk: Option<String>,
    },
    /// A registered user or a SIP URI, directly.
    Direct(DirectTarget),
}

/// Where the built-in handler sends an inbound call on.
#[derive(Debug, PartialEq)]
enum Forward {
    /// The dialled number, out through this trunk.
    Trunk(String),
    /// This user's registered phone.
    Extension(String),
}

/// One SIP leg: its sockets until the media task takes them, its SDP side, its id in
/// the media session.
struct Leg {
    call: CallRef,
    sockets: Option<LegSockets>,
    local: Option<Local>,
    media: Option<LegId>,
    /// The codec negotiated on this leg, once it has media.
    codec: Option<Codec>,
    /// We sent the offer (answer comes in the 2xx or ACK).
    we_offered: bool,
    established: bool,
    ended: bool,
    /// A WebRTC caller (a SIP-over-WebSocket softphone) whose media is a browser leg:
    /// `Some(false)` until ICE and DTLS connect, then `Some(true)`.
    browser: Option<bool>,
}

impl Leg {
    fn new(call: CallRef) -> Leg {
        Leg {
            call,
            sockets: None,
            local: None,
            media: None,
            codec: None,
            we_offered: false,
            established: false,
            ended: false,
            browser: None,
        }
    }
}

pub struct CallActor {
    a: Leg,
    /// The forwarded leg.
    b: Option<Leg>,
    inbound: bool,
    offer: Bytes,
    callee: String,
    cmd: mpsc::UnboundedSender<CallCommand>,
    cfg: HandlerConfig,
    ports: Arc<RtpPorts>,
    media: Option<MediaHandle>,
    target: Option<(String, Option<String>)>,
    record_requested: bool,
    caller: String,
    trunk: Option<String>,
    /// The registered phone's user who placed this call, if a phone did.
    user: Option<String>,
    /// The caller was sent a 200 (by the IVR).
    answered: bool,
    ivr: Option<ivr::Ivr>,
    /// Prompts asked for before the caller's media is up.
    pending_media: Vec<Item>,
    /// `stopped()` ran (a drop without it is a failure, see `crate::panics`).
    wound_up: bool,
    /// Agents on this call in their browser (two during a consult).
    web: Vec<softphone::WebAgent>,
    /// The agent whose desk phone is the second leg.
    b_agent: Option<String>,
    /// A warm transfer in progress.
    consult: Option<softphone::Consult>,
    /// An agent put the caller on hold.
    held: bool,
}

impl CallActor {
    #[allow(clippy::too_many_arguments)]
    pub fn inbound(
        call: CallRef,
        offer: Bytes,
        callee: String,
        caller: String,
        trunk: Option<String>,
        user: Option<String>,
        cmd: mpsc::UnboundedSender<CallCommand>,
        cfg: HandlerConfig,
        ports: Arc<RtpPorts>,
    ) -> Self {
        let record = cfg.record;
        CallActor {
            a: Leg::new(call),
            b: None,
            inbound: true,
            offer,
            callee,
            cmd,
            cfg,
            ports,
            media: None,
            target: None,
            record_requested: record,
            caller,
            trunk,
            user,
            answered: false,
            ivr: None,
            pending_media: vec![],
            wound_up: false,
            web: Vec::new(),
            b_agent: None,
            consult: None,
            held: false,
        }
    }

    pub fn outbound(
        call: CallRef,
        to: String,
        trunk: Option<String>,
        record: Option<bool>,
        cmd: mpsc::UnboundedSender<CallCommand>,
        cfg: HandlerConfig,
        ports: Arc<RtpPorts>,
    ) -> Self {
        let record = record.unwrap_or(cfg.record);
        CallActor {
            a: Leg::new(call),
            b: None,
            inbound: false,
            offer: Bytes::new(),
            callee: to.clone(),
            cmd,
            cfg,
            ports,
            media: None,
            target: Some((to, trunk)),
            record_requested: record,
            caller: String::new(),
            trunk: None,
            user: None,
            answered: false,
            ivr: None,
            pending_media: vec![],
            wound_up: false,
            web: Vec::new(),
            b_agent: None,
            consult: None,
            held: false,
        }
    }

    fn send(&self, c: CallCommand) {
        let _ = self.cmd.send(c);
    }

    fn local(&self, s: &LegSockets, video_formats: Vec<sdp::Format>) -> Local {
        Local {
            ip: self.cfg.rtp_ip,
            audio_port: s.audio_port,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: Some(101),
            video_port: s.video_port.filter(|_| !video_formats.is_empty()),
            video_formats,
            session_id: rand::random::<u32>() as u64,
            version: 1,
        }
    }

    fn media(&mut self, ctx: &mut Context<Self>) -> &mut MediaHandle {
        let call = self.a.call;
        self.media
            .get_or_insert_with(|| MediaHandle::spawn(call.to_string(), ctx.address().recipient()))
    }

    /// Hands a leg's sockets to the media task with what was negotiated.
    fn add_media(
        &mut self,
        ctx: &mut Context<Self>,
        which_b: bool,
        n: &sdp::Negotiated,
    ) -> Option<LegId> {
        let sockets = if which_b {
            self.b.as_mut()?.sockets.take()?
        } else {
            self.a.sockets.take()?
        };
        let id = self.media(ctx).add_leg(LegParams::from_sdp(n), sockets);
        let leg = if which_b {
            self.b.as_mut()?
        } else {
            &mut self.a
        };
        leg.media = Some(id);
        leg.codec = Some(n.audio.codec);
        Some(id)
    }

    fn start_recording(&mut self, ctx: &mut Context<Self>) {
        if !self.record_requested {
            return;
        }
        let name = format!("{}-{}.wav", crate::clock::unix_secs(), self.a.call);
        let path = self.cfg.recordings_dir.join(name);
        tracing::info!(call = %self.a.call, path = %path.display(), "recording");
        self.ivr_recording(&path);
        self.media(ctx).record(path);
    }

    /// The built-in handler once the caller's media is up.
    fn run_handler(&mut self, ctx: &mut Context<Self>) {
        let Some(leg) = self.a.media else { return };
        self.start_recording(ctx);
        let welcome = self.cfg.welcome.clone();
        let m = self.media(ctx);
        m.play(
            leg,
            Item::Silence {
                id: 0,
                samples: 1600,
            },
        );
        m.play(
            leg,
            Item::Prompt {
                id: 1,
                samples: welcome,
                barge_in: true,
            },
        );
    }

    /// Answers the caller: our answer to its offer, or our offer when it sent none.
    fn answer_caller(&mut self, ctx: &mut Context<Self>, video_formats: Vec<sdp::Format>) -> bool {
        if sdp::is_webrtc_offer(&self.offer) {
            return self.answer_webrtc_caller(ctx);
        }
        let want_video = !video_formats.is_empty();
        let sockets = match LegSockets::bind(self.cfg.rtp_ip, &self.ports, want_video) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(call = %self.a.call, error = %e, "no RTP port");
                self.send(CallCommand::Reject(self.a.call, 503, "No Media Port"));
                return false;
            }
        };
        let local = self.local(&sockets, video_formats);
        self.a.sockets = Some(sockets);
        if self.offer.is_empty() {
            // Offer in our 200, answer in the ACK.
            let body = sdp::offer(&local, Direction::SendRecv);
            self.a.local = Some(local);
            self.a.we_offered = true;
            self.send(CallCommand::Answer(self.a.call, Bytes::from(body)));
            return true;
        }
        let negotiated =
            RemoteSession::parse(&self.offer).and_then(|r| sdp::answer(&r, &local, None));
        match negotiated {
            Ok((body, n)) => {
                self.a.local = Some(local);
                self.send(CallCommand::Answer(self.a.call, Bytes::from(body)));
                self.add_media(ctx, false, &n);
                true
            }
            Err(e) => {
                tracing::info!(call = %self.a.call, error = %e, "cannot answer the offer");
                self.send(CallCommand::Reject(self.a.call, 488, "Not Acceptable Here"));
                false
            }
        }
    }

    /// Answers a WebRTC softphone (JsSIP, SIP.js over the WebSocket transport) with a
    /// browser leg on the shared WebRTC port: ICE-lite, DTLS-SRTP, the G.711 law it
    /// offered, bridged without transcoding. Its media is up when ICE and DTLS
    /// connect; one that does not connect in 20 s is hung up.
    fn answer_webrtc_caller(&mut self, ctx: &mut Context<Self>) -> bool {
        let refuse = |act: &mut Self, why: &str| {
            tracing::info!(call = %act.a.call, why, "cannot answer the WebRTC offer");
            act.send(CallCommand::Reject(act.a.call, 488, "Not Acceptable Here"));
            false
        };
        let codec = match sdp::webrtc_codec(&self.offer) {
            Ok(c) => c,
            Err(e) => return refuse(self, &e.to_string()),
        };
        let offer = String::from_utf8_lossy(&self.offer).into_owned();
        let (id, answer) = match self.add_browser_leg(ctx, &offer, codec) {
            Ok(x) => x,
            Err(e) => return refuse(self, &e),
        };
        self.send(CallCommand::Answer(self.a.call, Bytes::from(answer)));
        self.a.media = Some(id);
        self.a.codec = Some(codec);
        self.a.browser = Some(false);
        ctx.run_later(Duration::from_secs(20), |act, _| {
            if act.a.browser == Some(false) && !act.a.ended {
                tracing::info!(call = %act.a.call, "the WebRTC caller's media never connected; hanging up");
                act.send(CallCommand::Hangup(act.a.call));
            }
        });
        true
    }

    /// A browser leg on the shared WebRTC port answering `offer` with `codec` (key
    /// presses never go in its RTP, see `softphone`): its media leg and our answer.
    fn add_browser_leg(
        &mut self,
        ctx: &mut Context<Self>,
        offer: &str,
        codec: Codec,
    ) -> Result<(LegId, String), String> {
        let port = self
            .cfg
            .webrtc
            .clone()
            .ok_or("browser calls are off ([webrtc] port = 0)")?;
        let (leg, answer) = crate::webrtc::BrowserLeg::answer(
            crate::clock::now(),
            offer,
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
        Ok((self.media(ctx).add_browser(params, leg, port), answer))
    }

    /// The WebRTC caller's browser leg connected (or failed: `why`).
    fn caller_browser(&mut self, ctx: &mut Context<Self>, why: Option<String>) {
        match why {
            None => {
                tracing::info!(call = %self.a.call, "WebRTC caller's media connected (ICE, DTLS-SRTP)");
                self.a.browser = Some(true);
                if self.a.established {
                    self.caller_media_up(ctx);
                }
            }
            Some(why) => {
                tracing::info!(call = %self.a.call, %why, "WebRTC caller's media ended; hanging up");
                if !self.a.ended {
                    self.send(CallCommand::Hangup(self.a.call));
                }
            }
        }
    }

    /// Where a registered phone's call goes before any dialplan ([`phone_route`]).
    fn phone_route(&self) -> Option<Forward> {
        let routed = |n: &str| {
            self.cfg
                .ivr
                .as_ref()
                .is_some_and(|i| i.config.routes_number(n))
        };
        phone_route(
            self.user.as_deref(),
            &self.callee,
            &self.cfg.extensions,
            routed,
            self.cfg.phones_trunk.as_deref(),
        )
    }

    /// Forwarding: places the second leg (through a trunk, or to an extension's
    /// phone), offering what the caller offered (audio, and its video formats when it
    /// has video).
    fn place_forward(&mut self, ctx: &mut Context<Self>, to: Forward) {
        let caller_video: Vec<sdp::Format> = RemoteSession::parse(&self.offer)
            .ok()
            // A WebRTC caller's video is not bridged (its audio is, by a browser leg).
            .filter(|_| !sdp::is_webrtc_offer(&self.offer))
            .and_then(|r| {
                r.media
                    .into_iter()
                    .find(|m| m.kind == sdp::Kind::Video && m.port != 0)
            })
            .map(|m| m.formats)
            .unwrap_or_default();
        let sockets = match LegSockets::bind(self.cfg.rtp_ip, &self.ports, !caller_video.is_empty())
        {
            Ok(s) => s,
            Err(_) => {
                self.send(CallCommand::Reject(self.a.call, 503, "No Media Port"));
                return ctx.stop();
            }
        };
        let local = self.local(&sockets, caller_video);
        match to {
            Forward::Trunk(trunk) => {
                let number = self.callee.clone();
                let call = self.dial(
                    ctx,
                    sockets,
                    local,
                    Dial::Number {
                        number,
                        trunk: Some(trunk.clone()),
                    },
                );
                tracing::info!(call = %self.a.call, out_leg = %call, trunk, "forwarding");
            }
            Forward::Extension(ext) => {
                let call = self.dial(
                    ctx,
                    sockets,
                    local,
                    Dial::Direct(DirectTarget::User(ext.clone())),
                );
                tracing::info!(call = %self.a.call, out_leg = %call, extension = %ext, "calling an extension");
                // No answer: the phone's INVITE is cancelled and the caller gets 480.
                if let Some(ring) = self.cfg.ring {
                    ctx.run_later(ring, move |act, _| {
                        if act.still_ringing(call) {
                            tracing::info!(call = %act.a.call, out_leg = %call, "no answer");
                            act.send(CallCommand::Hangup(call));
                        }
                    });
                }
            }
        }
    }

    /// Places the second leg from sockets bound for it, offering `local`; returns its
    /// call. Its events come to this actor.
    fn dial(
        &mut self,
        ctx: &mut Context<Self>,
        sockets: LegSockets,
        local: Local,
        to: Dial,
    ) -> CallRef {
        let sdp = Bytes::from(sdp::offer(&local, Direction::SendRecv));
        let call = CallRef::next();
        let mut leg = Leg::new(call);
        leg.sockets = Some(sockets);
        leg.local = Some(local);
        leg.we_offered = true;
        self.b = Some(leg);
        let owner = ctx.address();
        self.send(match to {
            Dial::Number { number, trunk } => CallCommand::Originate {
                call,
                to: number,
                sdp,
                trunk,
                owner: Some(owner),
            },
            Dial::Direct(target) => CallCommand::OriginateDirect {
                call,
                target,
                sdp,
                owner,
            },
        });
        call
    }

    /// The second leg `call` was placed and is neither answered nor over.
    fn still_ringing(&self, call: CallRef) -> bool {
        self.b
            .as_ref()
            .is_some_and(|b| b.call == call && !b.established && !b.ended)
    }

    fn on_established(&mut self, ctx: &mut Context<Self>, is_b: bool, remote_sdp: Bytes) {
        if is_b && self.ivr.is_some() {
            return self.ivr_transfer_answered(ctx, remote_sdp);
        }
        if is_b {
            // The far end answered: answer the caller and bridge.
            let Some(b) = self.b.as_mut() else { return };
            b.established = true;
            let b_call = b.call;
            let n = RemoteSession::parse(&remote_sdp).and_then(|r| {
                sdp::accept_answer(&r, b.local.as_ref().expect("local set with offer"))
            });
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(call = %self.a.call, error = %e, "unusable answer from the far end");
                    self.send(CallCommand::Hangup(b_call));
                    self.send(CallCommand::Reject(self.a.call, 488, "Not Acceptable Here"));
                    return;
                }
            };
            let video = n
                .video
                .as_ref()
                .map(|v| v.formats.clone())
                .unwrap_or_default();
            if !self.answer_caller(ctx, video) {
                let b = self.b.as_ref().map(|b| b.call);
                if let Some(b) = b {
                    self.send(CallCommand::Hangup(b));
                }
                return;
            }
            self.add_media(ctx, true, &n);
            self.start_recording(ctx);
            return;
        }
        self.a.established = true;
        tracing::info!(call = %self.a.call, "call established");
        if self.a.we_offered && self.a.media.is_none() {
            let n = RemoteSession::parse(&remote_sdp).and_then(|r| {
                sdp::accept_answer(&r, self.a.local.as_ref().expect("local set with offer"))
            });
            match n {
                Ok(n) => {
                    self.add_media(ctx, false, &n);
                }
                Err(e) => {
                    tracing::warn!(call = %self.a.call, error = %e, "unusable answer; hanging up");
                    self.send(CallCommand::Hangup(self.a.call));
                    return;
                }
            }
        }
        if self.a.browser == Some(false) {
            // A WebRTC caller: media is up when its browser leg connects.
            return;
        }
        self.caller_media_up(ctx);
    }

    /// The caller is answered and their media flows: the IVR, the bridge or the
    /// built-in handler starts.
    fn caller_media_up(&mut self, ctx: &mut Context<Self>) {
        if self.ivr.is_some() {
            self.start_recording(ctx);
            self.ivr_media_up(ctx);
            return;
        }
        if let (Some(a), Some(b)) = (self.a.media, self.b.as_ref().and_then(|b| b.media)) {
            if let Some(m) = &self.media {
                m.bridge(a, b);
            }
        } else if self.b.is_none() {
            self.run_handler(ctx);
        }
        if let Some(after) = self.cfg.hangup_after.filter(|_| self.b.is_none()) {
            ctx.run_later(after, |act, _| {
                act.send(CallCommand::Hangup(act.a.call));
            });
        }
    }

    fn on_ended(&mut self, ctx: &mut Context<Self>, is_b: bool, reason: EndReason) {
        tracing::info!(call = %self.a.call, leg = if is_b { "out" } else { "in" }, ?reason, "call ended");
        if is_b && self.consult_phone_ended() {
            return;
        }
        if is_b {
            self.b_agent = None;
        }
        if is_b && self.ivr.is_some() && self.b.as_ref().is_some_and(|b| !b.established) {
            // A transfer that did not connect: the flow goes on (an agent's phone: the
            // caller waits in the queue again).
            if let Some(b) = self.b.take() {
                tracing::info!(call = %self.a.call, out_leg = %b.call, ?reason, "transfer failed");
            }
            if self.ivr_agent_failed(&format!("{reason:?}")) {
                return;
            }
            return self.ivr_input(ctx, ivr_input_failed(&reason));
        }
        if !is_b && self.ivr.is_some() {
            self.ivr_input(ctx, crate::dialplan::Input::Hangup);
        }
        if is_b {
            if let Some(b) = self.b.as_mut() {
                b.ended = true;
            }
            if !self.a.ended {
                // The far end's refusal goes back as it came (busy stays busy).
                let (code, why) = match reason {
                    EndReason::Failed(c) if (400..700).contains(&c) && c != 401 && c != 407 => {
                        (c, crate::sip::message::reason_phrase(c))
                    }
                    _ => (480, "Temporarily Unavailable"),
                };
                self.end_caller(code, why);
            }
        } else {
            self.a.ended = true;
            if let Some(b) = self.b.as_ref().filter(|b| !b.ended) {
                self.send(CallCommand::Hangup(b.call));
            }
        }
        let all_ended = self.a.ended && self.b.as_ref().is_none_or(|b| b.ended);
        if all_ended {
            // Ending the media task finalises the recording; we stop when it reports,
            // or after a few seconds whatever happens.
            if self.media.take().is_none() {
                return ctx.stop();
            }
            ctx.run_later(Duration::from_secs(5), |_, ctx| ctx.stop());
        }
    }
}

/// Without `stopped()`, failure handling runs when the actor is dropped.
impl Drop for CallActor {
    fn drop(&mut self) {
        if !self.wound_up {
            self.failed();
        }
    }
}

impl CallActor {
    /// Ends the caller's leg: a BYE once it is answered, else this final response.
    fn end_caller(&self, code: u16, reason: &'static str) {
        if self.a.established || self.answered || self.a.media.is_some() {
            self.send(CallCommand::Hangup(self.a.call));
        } else {
            self.send(CallCommand::Reject(self.a.call, code, reason));
        }
    }

    /// The actor failed (a panic): its legs are hung up (an unanswered caller gets a
    /// 500), the media task ends with its handle, and the interaction is ended as
    /// failed and taken out of its queue.
    fn failed(&mut self) {
        self.wound_up = true;
        tracing::error!(call = %self.a.call, reason = %crate::panics::reason(), "call actor failed; ending its call");
        if !self.a.ended {
            self.end_caller(500, "Server Internal Error");
        }
        if let Some(b) = self.b.as_ref().filter(|b| !b.ended) {
            self.send(CallCommand::Hangup(b.call));
        }
        self.ivr_failed();
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.wound_up = true;
        if std::thread::panicking() {
            // actix stops an actor whose handler panicked as its future is dropped.
            return self.failed();
        }
        self.ivr_call_over();
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.inbound {
            self.send(CallCommand::Ring(self.a.call));
            if let Some(to) = self.phone_route() {
                return self.place_forward(ctx, to);
            }
            if let Some(trunk) = self.cfg.forward_trunk.clone() {
                return self.place_forward(ctx, Forward::Trunk(trunk));
            }
            if self.start_ivr(ctx) {
                return;
            }
            ctx.run_later(self.cfg.answer_after, |act, ctx| {
                if !act.a.ended && !act.answer_caller(ctx, vec![]) {
                    ctx.stop();
                }
            });
        } else if let Some((to, trunk)) = self.target.clone() {
            let sockets = match LegSockets::bind(self.cfg.rtp_ip, &self.ports, false) {
                Ok(s) => s,
                Err(_) => return ctx.stop(),
            };
            let local = self.local(&sockets, vec![]);
            let body = sdp::offer(&local, Direction::SendRecv);
            self.a.sockets = Some(sockets);
            self.a.local = Some(local);
            self.a.we_offered = true;
            self.send(CallCommand::Originate {
                call: self.a.call,
                to,
                sdp: Bytes::from(body),
                trunk,
                owner: None,
            });
        }
    }
}

impl Handler<crate::actors::router::WorkEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, ev: crate::actors::router::WorkEvent, ctx: &mut Self::Context) {
        self.ivr_work(ctx, ev);
    }
}

impl Handler<SipEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, SipEvent(call, ev): SipEvent, ctx: &mut Self::Context) {
        let is_b = self.b.as_ref().is_some_and(|b| b.call == call);
        let leg = if is_b {
            self.b.as_ref().and_then(|b| b.media)
        } else {
            self.a.media
        };
        match ev {
            CallEvent::Established { remote_sdp } => self.on_established(ctx, is_b, remote_sdp),
            CallEvent::RemoteOffer { negotiated, .. } => {
                tracing::info!(call = %self.a.call, direction = negotiated.audio.direction.attr(), "media renegotiated");
                if let (Some(m), Some(l)) = (&self.media, leg) {
                    m.update(l, LegParams::from_sdp(&negotiated));
                }
            }
            CallEvent::Progress(code) => tracing::debug!(call = %self.a.call, code, "progress"),
            CallEvent::InfoDigit(d) => {
                if let (Some(m), Some(l)) = (&self.media, leg) {
                    m.info_digit(l, d);
                }
            }
            CallEvent::Ended(reason) => self.on_ended(ctx, is_b, reason),
        }
    }
}

impl Handler<MediaNotice> for CallActor {
    type Result = ();

    fn handle(&mut self, n: MediaNotice, ctx: &mut Self::Context) {
        match n {
            MediaNotice::Event(MediaEvent::Digit { leg, digit, via }) => {
                tracing::info!(call = %self.a.call, leg, digit = %crate::redact::Redacted(digit), ?via, "dtmf");
                if Some(leg) == self.a.media && self.ivr.is_some() {
                    self.ivr_input(ctx, crate::dialplan::Input::Digit(digit));
                }
            }
            MediaNotice::Event(MediaEvent::PlayDone {
                id, interrupted, ..
            }) => {
                tracing::debug!(call = %self.a.call, id, interrupted, "prompt done");
                self.ivr_play_done(ctx, id, interrupted);
            }
            MediaNotice::Voicemail(r) => self.ivr_voicemail(ctx, r),
            MediaNotice::Event(MediaEvent::Latched { leg, addr }) => {
                tracing::debug!(call = %self.a.call, leg, %addr, "rtp latched")
            }
            MediaNotice::Event(MediaEvent::NewSource { leg, ssrc }) => {
                tracing::debug!(call = %self.a.call, leg, ssrc, "new rtp source")
            }
            MediaNotice::Event(MediaEvent::RecordingError { error }) => {
                tracing::warn!(call = %self.a.call, %error, "recording failed")
            }
            MediaNotice::Browser(leg, r)
                if self.a.browser.is_some() && self.a.media == Some(leg) =>
            {
                self.caller_browser(ctx, r.err())
            }
            MediaNotice::Browser(leg, Ok(())) => self.browser_connected(ctx, leg),
            MediaNotice::Browser(leg, Err(why)) => self.browser_failed(leg, why),
            MediaNotice::Closed { recording } => {
                if let Some(p) = recording {
                    tracing::info!(call = %self.a.call, path = %p.display(), "recording saved");
                }
                if self.media.is_none() {
                    ctx.stop();
                }
            }
        }
    }
}
