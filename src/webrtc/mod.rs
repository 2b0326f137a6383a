//! Browser legs: the agent desktop's WebRTC audio, terminated here and bridged to SIP.
//!
//! - [`BrowserLeg`] is sans-IO: a `rtc` 0.21.1 peer connection (ICE-lite, DTLS-SRTP)
//!   that answers the browser's offer with exactly one codec, the G.711 law the SIP leg
//!   already uses, so the bridge relays packets without transcoding. It takes datagrams
//!   and a clock and hands back datagrams to send, decrypted RTP, and state changes.
//! - [`WebRtcPort`] is the I/O: **one UDP port for every browser leg**. A datagram from
//!   an address not seen before must be a STUN binding request; its USERNAME
//!   (`our-ufrag:their-ufrag`, RFC 8445 §7.2.2) names the leg, and the address is then
//!   routed to that leg until it ends. Everything else from unknown addresses is dropped.
//!
//! Video, when the SIP side has it: the browser's VP8 or H.264 (packetization-mode 1,
//! constrained baseline) is taken in the SIP leg's order, BUNDLEd on the same transport
//! as the audio; RTP goes through untouched but for SSRC and payload type, and the
//! browser's PLIs and FIRs come out as RTCP for the media session's keyframe logic.
//!
//! DTMF from the desktop's dial pad travels over the agent's WebSocket, not as RFC 4733
//! in the browser's RTP: rtc 0.21.1 writes a malformed answer when telephone-event is
//! registered (`rtc_0_21_1_answers_telephone_event_wrongly` in the tests), so we never
//! register it, and the media session sends the digits to the SIP leg as RFC 4733.

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection};
use rtc::sansio::Protocol;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::sdp::Codec;

/// What a browser leg asks of its driver.
#[derive(Debug)]
pub enum WebOut {
    /// A datagram for the browser.
    Transmit(SocketAddr, Bytes),
    /// Decrypted RTP from the browser (a whole packet, header included).
    Rtp(Bytes),
    /// Decrypted video RTP from the browser.
    VideoRtp(Bytes),
    /// The browser's keyframe requests (PLI, FIR) as RTCP.
    VideoRtcp(Bytes),
    Connected,
    /// ICE or DTLS failed, or the browser closed: the leg is gone.
    Failed(String),
}

/// What went through one browser leg, logged when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserStats {
    /// Datagrams from the browser (STUN, DTLS, SRTP, SRTCP).
    pub datagrams_in: u64,
    /// Datagrams to the browser.
    pub datagrams_out: u64,
    /// Decrypted RTP packets from the browser.
    pub rtp_in: u64,
    /// RTP packets handed to the peer connection for the browser.
    pub rtp_out: u64,
    /// RTP packets the peer connection refused (not connected, or an error).
    pub rtp_out_refused: u64,
    /// Datagrams the peer connection could not read.
    pub unreadable: u64,
    /// Where media (SRTP and SRTCP) to the browser went last, and how often that
    /// changed (the browser moved to another candidate pair).
    pub media_to: Option<SocketAddr>,
    pub media_to_changes: u32,
}

/// The browser leg's video, when negotiated.
struct Video {
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// The payload types of our answer, and their codecs.
    codecs: Vec<(u8, crate::media::keyframe::Codec)>,
    /// The browser's video SSRC (from its first packet).
    remote_ssrc: Option<u32>,
}

/// The H.264 the browser leg takes (RFC 6184 packetization-mode 1, constrained
/// baseline level 3.1), as browsers write it.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// The video a browser leg takes when the other side is a browser too (a customer's
/// video call from the chat): VP8, then H.264 in packetization-mode 1.
pub fn browser_video_formats() -> Vec<crate::sdp::Format> {
    let f = |pt: u8, name: &str, fmtp: &str| crate::sdp::Format {
        pt,
        name: name.into(),
        rate: 90000,
        channels: String::new(),
        fmtp: fmtp.into(),
    };
    vec![f(96, "VP8", ""), f(97, "H264", H264_FMTP)]
}

/// The video codec a browser leg can pass a SIP leg's format through as: VP8, and
/// H.264 in packetization-mode 1 (browsers send FU-A and STAP-A; mode 0 peers cannot
/// take them).
pub fn browser_takes(f: &crate::sdp::Format) -> Option<crate::media::keyframe::Codec> {
    use crate::media::keyframe::Codec as V;
    match crate::media::session::video_codec_of(&f.name)? {
        V::Vp8 => Some(V::Vp8),
        V::H264 => f
            .fmtp
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k.trim().eq_ignore_ascii_case("packetization-mode") && v.trim() == "1")
            .then_some(V::H264),
    }
}

fn video_codec(mime: &str, fmtp: &str) -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
    }
}

/// rtc 0.21.1 keeps inbound RTCP for its interceptors unless one marks a packet for
/// the application: this one marks keyframe requests (PLI, FIR), which the media
/// session turns into requests to the sender on the other side of the bridge. It sits
/// in the interval-PLI slot, unused here (keyframes are asked for when needed).
#[derive(Default)]
struct KeyframeFeedback {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

impl Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for KeyframeFeedback
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        use rtc::rtcp::payload_feedbacks::{
            full_intra_request::FullIntraRequest, picture_loss_indication::PictureLossIndication,
        };
        if let rtc::interceptor::Packet::Rtcp(ps) = &msg.message.packet {
            let asks = ps.iter().any(|p| {
                p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
            });
            if asks {
                msg.message
                    .add(rtc::interceptor::Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for KeyframeFeedback {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

/// What our answer `sdp` took of video: the m-line's formats we know (none: no
/// video).
fn answered_video(sdp: &str, sender: RTCRtpSenderId, ssrc: u32) -> Option<Video> {
    let r = crate::sdp::RemoteSession::parse(sdp.as_bytes()).ok()?;
    let m = r.media.iter().find(|m| {
        m.kind == crate::sdp::Kind::Video
            && m.port != 0
            && m.direction != crate::sdp::Direction::Inactive
    })?;
    let codecs: Vec<_> = m
        .formats
        .iter()
        .filter_map(|f| Some((f.pt, crate::media::session::video_codec_of(&f.name)?)))
        .collect();
    (!codecs.is_empty()).then_some(Video {
        sender,
        ssrc,
        codecs,
        remote_ssrc: None,
    })
}

/// Our video track towards the browser (SSRC `ssrc`). No codec named: the negotiated
/// ones, in the other side's order.
fn video_track(ufrag: &str, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        format!("omnigate-{ufrag}"),
        format!("video-{ufrag}"),
        "caller-video".to_string(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            ..Default::default()
        }],
    )
}

/// The codec a browser leg registers for a SIP format it can pass through.
fn browser_codec(f: &crate::sdp::Format) -> Option<RTCRtpCodec> {
    Some(match browser_takes(f)? {
        crate::media::keyframe::Codec::Vp8 => video_codec(MIME_TYPE_VP8, ""),
        crate::media::keyframe::Codec::H264 => video_codec(MIME_TYPE_H264, H264_FMTP),
    })
}

/// The transceiver of the offer's (first) video m-section, by its `a=mid`.
fn video_transceiver(
    pc: &mut RTCPeerConnection,
    offer_sdp: &str,
) -> Result<rtc::rtp_transceiver::RTCRtpTransceiverId, OfferError> {
    let mid = offer_sdp
        .split("\nm=")
        .skip(1)
        .find(|m| m.starts_with("video ") && !m.starts_with("video 0 "))
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.trim_end().strip_prefix("a=mid:").map(str::to_string))
        })
        .ok_or_else(|| OfferError::Rtc("the offer has no video with a mid".into()))?;
    let ids: Vec<_> = pc.get_transceivers().collect();
    ids.into_iter()
        .find(|&id| {
            pc.rtp_transceiver(id)
                .is_some_and(|t| t.mid().as_deref() == Some(mid.as_str()))
        })
        .ok_or_else(|| OfferError::Rtc(format!("no transceiver for video mid {mid}")))
}

/// One browser's peer connection.
pub struct BrowserLeg {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    ssrc: u32,
    pt: u8,
    video: Option<Video>,
    /// The browser offered video and the other side had none: VP8 and H.264 are
    /// registered and the video left inactive, for [`BrowserLeg::reanswer`] to turn on
    /// when the agent adds video to the call.
    video_later: bool,
    local: SocketAddr,
    pub ufrag: String,
    connected: bool,
    failed: bool,
    pub stats: BrowserStats,
}

/// Why a browser's offer cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("the offer has no {0}: the gateway bridges G.711 without transcoding")]
    NoCodec(&'static str),
    #[error("cannot answer the offer: {0}")]
    Rtc(String),
}

fn rtc_err(e: impl std::fmt::Display) -> OfferError {
    OfferError::Rtc(e.to_string())
}

fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..n)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

/// Adds a UDP host candidate at `addr` to `pc`'s local description.
fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> Result<(), OfferError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(rtc_err)?;
    let init = RTCIceCandidate::from(&candidate)
        .to_json()
        .map_err(rtc_err)?;
    pc.add_local_candidate(init).map_err(rtc_err)
}

impl BrowserLeg {
    /// Answers a browser's offer with `codec` only, and with video when `video` (the
    /// SIP leg's video formats, in its order) has VP8 or H.264 the browser offers too.
    /// `advertised` is the address put in our host candidate (the configured public
    /// address and the shared port); `local` is where the shared socket is bound.
    pub fn answer(
        now: Instant,
        offer_sdp: &str,
        codec: Codec,
        video: &[crate::sdp::Format],
        local: SocketAddr,
        advertised: SocketAddr,
    ) -> Result<(BrowserLeg, String), OfferError> {
        let (mime, pt, name) = match codec {
            Codec::Pcmu => (MIME_TYPE_PCMU, 0u8, "PCMU"),
            Codec::Pcma => (MIME_TYPE_PCMA, 8u8, "PCMA"),
        };
        if !offer_sdp
            .lines()
            .any(|l| l.starts_with("a=rtpmap:") && l.to_ascii_uppercase().contains(name))
        {
            return Err(OfferError::NoCodec(name));
        }
        let rtp_codec = RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 8000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: rtp_codec.clone(),
                    payload_type: pt,
                },
                RtpCodecKind::Audio,
            )
            .map_err(rtc_err)?;
        // Video: the SIP leg's VP8 and H.264, in its order (pass-through: the browser
        // must take one of them as it is). When the SIP leg has no video, the
        // browser's is registered but left inactive: video may be added later.
        let later = video.is_empty();
        let formats = if later {
            browser_video_formats()
        } else {
            video.to_vec()
        };
        let mut video_codecs = vec![];
        for f in &formats {
            let Some(c) = browser_codec(f) else { continue };
            if video_codecs
                .iter()
                .any(|v: &RTCRtpCodec| v.mime_type == c.mime_type)
            {
                continue;
            }
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: c.clone(),
                        payload_type: f.pt,
                    },
                    RtpCodecKind::Video,
                )
                .map_err(rtc_err)?;
            video_codecs.push(c);
        }
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(rtc_err)?
            .with(
                rtc::interceptor::Slot::IntervalPli,
                KeyframeFeedback::default(),
            );
        let ufrag = random_token(16);
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), random_token(24))
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(rtc_err)?;
        let offer = RTCSessionDescription::offer(offer_sdp.to_string()).map_err(rtc_err)?;
        pc.set_remote_description(now, offer).map_err(rtc_err)?;
        let ssrc = rand::random::<u32>();
        let track = MediaStreamTrack::new(
            format!("omnigate-{ufrag}"),
            format!("audio-{ufrag}"),
            "caller".to_string(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: rtp_codec,
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).map_err(rtc_err)?;
        let offers_video = offer_sdp
            .lines()
            .any(|l| l.starts_with("m=video ") && !l.starts_with("m=video 0 "));
        let mut video_sender = None;
        let video_later = later && offers_video;
        if video_later {
            // Answered `inactive` (not refused: a refused m-section is gone for good).
            let t = video_transceiver(&mut pc, offer_sdp)?;
            if let Some(mut t) = pc.rtp_transceiver(t) {
                t.set_direction(RTCRtpTransceiverDirection::Inactive);
            }
        } else if !video_codecs.is_empty() && offers_video {
            let vssrc = ssrc.wrapping_add(1);
            let track = video_track(&ufrag, vssrc);
            // No codec in common: the browser's video is declined, the call goes on
            // with audio.
            match pc.add_track(track) {
                Ok(sender) => video_sender = Some((sender, vssrc)),
                Err(e) => tracing::info!(error = %e, "browser leg: no video in common"),
            }
        }
        add_host_candidate(&mut pc, advertised)?;
        let answer = pc.create_answer(None).map_err(rtc_err)?;
        pc.set_local_description(now, answer).map_err(rtc_err)?;
        let sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| OfferError::Rtc("no local description".into()))?;
        let video = video_sender.and_then(|(sender, ssrc)| answered_video(&sdp, sender, ssrc));
        Ok((
            BrowserLeg {
                pc,
                sender,
                ssrc,
                pt,
                video,
                video_later,
                local,
                ufrag,
                connected: false,
                failed: false,
                stats: BrowserStats::default(),
            },
            sdp,
        ))
    }

    /// Answers the browser's new offer on the same connection (a renegotiation),
    /// turning on the video its first answer left inactive, in the formats of `video`
    /// (what the SIP leg agreed) that a browser takes. Our answer.
    pub fn reanswer(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        video: &[crate::sdp::Format],
    ) -> Result<String, OfferError> {
        if self.video.is_some() || !self.video_later {
            return Err(OfferError::Rtc(
                "this leg has no video to turn on (on already, or never offered)".into(),
            ));
        }
        let mut prefs: Vec<RTCRtpCodecParameters> = vec![];
        for f in video {
            let Some(c) = browser_codec(f) else { continue };
            // The payload type it was registered under (the answer takes the
            // browser's own).
            let Some(pt) = browser_video_formats()
                .into_iter()
                .find(|b| b.name.eq_ignore_ascii_case(&f.name))
                .map(|b| b.pt)
            else {
                continue;
            };
            if !prefs.iter().any(|p| p.rtp_codec.mime_type == c.mime_type) {
                prefs.push(RTCRtpCodecParameters {
                    rtp_codec: c,
                    payload_type: pt,
                });
            }
        }
        if prefs.is_empty() {
            return Err(OfferError::NoCodec("VP8 or H.264 on the other side"));
        }
        let offer = RTCSessionDescription::offer(offer_sdp.to_string()).map_err(rtc_err)?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(rtc_err)?;
        let t = video_transceiver(&mut self.pc, offer_sdp)?;
        let vssrc = self.ssrc.wrapping_add(1);
        let track = video_track(&self.ufrag, vssrc);
        // The inactive transceiver has no sender: the track takes it.
        let sender = self.pc.add_track(track).map_err(rtc_err)?;
        if let Some(mut tr) = self.pc.rtp_transceiver(t) {
            tr.set_direction(RTCRtpTransceiverDirection::Sendrecv);
            tr.set_codec_preferences(prefs).map_err(rtc_err)?;
        }
        let answer = self.pc.create_answer(None).map_err(rtc_err)?;
        self.pc
            .set_local_description(now, answer)
            .map_err(rtc_err)?;
        let sdp = self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| OfferError::Rtc("no local description".into()))?;
        self.video = answered_video(&sdp, sender, vssrc);
        if self.video.is_none() {
            return Err(OfferError::NoCodec("VP8 or H.264 in the browser's offer"));
        }
        self.video_later = false;
        Ok(sdp)
    }

    /// Whether video can still be turned on by [`BrowserLeg::reanswer`].
    pub fn video_later(&self) -> bool {
        self.video_later
    }

    /// A datagram from the browser.
    pub fn handle_read(&mut self, now: Instant, from: SocketAddr, data: BytesMut) {
        self.stats.datagrams_in += 1;
        let r = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        });
        if let Err(e) = r {
            self.stats.unreadable += 1;
            tracing::debug!(error = %e, "browser leg: unreadable datagram");
        }
    }

    /// RTP for the browser (whole packet; its SSRC and payload type are ours to set).
    pub fn write_rtp(&mut self, now: Instant, packet: &[u8]) {
        if !self.connected {
            self.stats.rtp_out_refused += 1;
            return;
        }
        let mut b = packet;
        let Ok(mut p) = rtc::rtp::packet::Packet::unmarshal(&mut b) else {
            return;
        };
        p.header.ssrc = self.ssrc;
        p.header.payload_type = self.pt;
        if let Some(mut s) = self.pc.rtp_sender(self.sender) {
            match s.write_rtp(now, p) {
                Ok(()) => self.stats.rtp_out += 1,
                Err(e) => {
                    self.stats.rtp_out_refused += 1;
                    tracing::trace!(error = %e, "browser leg: RTP not sent");
                }
            }
        }
    }

    /// The video codecs negotiated with the browser (payload type, codec); none: no
    /// video on this leg.
    pub fn video_codecs(&self) -> Option<Vec<(u8, crate::media::keyframe::Codec)>> {
        self.video.as_ref().map(|v| v.codecs.clone())
    }

    /// Video RTP for the browser: our SSRC; the payload type is the session's (one of
    /// ours); header extensions from the SIP side are dropped (none is negotiated).
    pub fn write_video_rtp(&mut self, now: Instant, packet: &[u8]) {
        let Some(v) = &self.video else { return };
        if !self.connected {
            self.stats.rtp_out_refused += 1;
            return;
        }
        let Ok(mut p) = rtc::rtp::packet::Packet::unmarshal(&mut &packet[..]) else {
            return;
        };
        p.header.ssrc = v.ssrc;
        p.header.extension = false;
        p.header.extensions.clear();
        let sender = v.sender;
        if let Some(mut s) = self.pc.rtp_sender(sender) {
            match s.write_rtp(now, p) {
                Ok(()) => self.stats.rtp_out += 1,
                Err(e) => {
                    self.stats.rtp_out_refused += 1;
                    tracing::trace!(error = %e, "browser leg: video RTP not sent");
                }
            }
        }
    }

    /// Asks the browser's encoder for a keyframe (a PLI about its video stream, once
    /// its first packet has shown its SSRC).
    pub fn request_keyframe(&mut self, now: Instant) {
        let Some(v) = &self.video else { return };
        let Some(media_ssrc) = v.remote_ssrc else {
            return;
        };
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: v.ssrc,
            media_ssrc,
        };
        let sender = v.sender;
        if let Some(mut s) = self.pc.rtp_sender(sender) {
            if let Err(e) = s.write_rtcp(now, vec![Box::new(pli)]) {
                tracing::debug!(error = %e, "browser leg: PLI not sent");
            }
        }
    }

    /// When [`BrowserLeg::handle_timeout`] is next due.
    pub fn timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
    }

    /// Everything the peer connection has to say since the last call.
    pub fn drain(&mut self, out: &mut Vec<WebOut>) {
        while let Some(m) = self.pc.poll_write() {
            let to = m.transport.peer_addr;
            // RFC 7983: 128..=191 is RTP or RTCP (STUN and DTLS go to whoever asked).
            let media = matches!(m.message.first(), Some(128..=191));
            if media && self.stats.media_to != Some(to) {
                if self.stats.media_to.is_some() {
                    self.stats.media_to_changes += 1;
                    tracing::debug!(ufrag = %self.ufrag, %to, "browser leg: media to a new address");
                }
                self.stats.media_to = Some(to);
            }
            self.stats.datagrams_out += 1;
            out.push(WebOut::Transmit(m.transport.peer_addr, m.message.freeze()));
        }
        while let Some(e) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = e {
                tracing::debug!(ufrag = %self.ufrag, state = %s, "browser leg");
                match s {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        out.push(WebOut::Connected);
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                        if !self.failed =>
                    {
                        self.failed = true;
                        out.push(WebOut::Failed(s.to_string()));
                    }
                    _ => {}
                }
            }
        }
        while let Some(m) = self.pc.poll_read() {
            match m.message {
                RTCMessage::RtpPacket(_, p) => {
                    let is_video = match self.video.as_mut() {
                        Some(v) if v.codecs.iter().any(|(pt, _)| *pt == p.header.payload_type) => {
                            v.remote_ssrc = Some(p.header.ssrc);
                            true
                        }
                        _ => false,
                    };
                    if let Ok(b) = p.marshal() {
                        self.stats.rtp_in += 1;
                        out.push(if is_video {
                            WebOut::VideoRtp(b.freeze())
                        } else {
                            WebOut::Rtp(b.freeze())
                        });
                    }
                }
                RTCMessage::RtcpPacket(_, packets) if self.video.is_some() => {
                    // Only keyframe requests matter to the session (the peer
                    // connection reports for itself).
                    for p in packets {
                        let Ok(b) = p.marshal() else { continue };
                        if !crate::media::keyframe::requests(&b).is_empty() {
                            out.push(WebOut::VideoRtcp(b.freeze()));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    pub fn close(&mut self) {
        let _ = self.pc.close();
    }
}

/// Datagrams for one leg: (leg id in its media session, from, data).
pub type WebPacket = (usize, SocketAddr, BytesMut);

struct Route {
    leg: usize,
    tx: mpsc::Sender<WebPacket>,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, String>,
}

/// The UDP port all browser legs share.
pub struct WebRtcPort {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    advertised: SocketAddr,
    routes: Mutex<Routes>,
    /// Datagrams not sent (socket buffer full) and not delivered to a leg (its queue
    /// full), since the port was bound.
    send_failed: AtomicU64,
    queue_full: AtomicU64,
}

/// A leg's place on the shared port; dropping it frees the ufrag and its addresses.
pub struct Registration {
    port: Arc<WebRtcPort>,
    ufrag: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = self.port.routes.lock().unwrap();
        r.by_ufrag.remove(&self.ufrag);
        r.by_addr.retain(|_, u| *u != self.ufrag);
    }
}

/// The USERNAME of a STUN binding request (RFC 5389 §15.3), if `b` is one.
pub fn stun_username(b: &[u8]) -> Option<&str> {
    if b.len() < 20 || b[0] != 0x00 || b[1] != 0x01 || b[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let body = b.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let t = u16::from_be_bytes([body[i], body[i + 1]]);
        let l = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let v = body.get(i + 4..i + 4 + l)?;
        if t == 0x0006 {
            return std::str::from_utf8(v).ok();
        }
        i += 4 + l.div_ceil(4) * 4;
    }
    None
}

impl std::fmt::Debug for WebRtcPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcPort")
            .field("local", &self.local)
            .field("advertised", &self.advertised)
            .finish()
    }
}

impl WebRtcPort {
    /// Binds the shared port and starts its reader (on the current tokio runtime).
    pub fn bind(bind: SocketAddr, public_ip: std::net::IpAddr) -> std::io::Result<Arc<WebRtcPort>> {
        let std_sock = std::net::UdpSocket::bind(bind)?;
        std_sock.set_nonblocking(true)?;
        let s2 = socket2::SockRef::from(&std_sock);
        let _ = s2.set_recv_buffer_size(4 << 20);
        let _ = s2.set_send_buffer_size(4 << 20);
        let local = std_sock.local_addr()?;
        let socket = Arc::new(UdpSocket::from_std(std_sock)?);
        let port = Arc::new(WebRtcPort {
            socket: socket.clone(),
            local,
            advertised: SocketAddr::new(public_ip, local.port()),
            routes: Mutex::new(Routes::default()),
            send_failed: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&port);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, from) = match socket.recv_from(&mut buf).await {
                    Ok(r) => r,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "WebRTC port: read failed");
                        break;
                    }
                };
                let Some(port) = weak.upgrade() else { break };
                port.dispatch(from, &buf[..n]);
            }
        });
        Ok(port)
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// What browsers are told to send to.
    pub fn advertised(&self) -> SocketAddr {
        self.advertised
    }

    fn dispatch(&self, from: SocketAddr, data: &[u8]) {
        let mut r = self.routes.lock().unwrap();
        let ufrag = match r.by_addr.get(&from) {
            Some(u) => u.clone(),
            None => {
                let Some(user) = stun_username(data) else {
                    return;
                };
                let ours = user.split(':').next().unwrap_or_default();
                if !r.by_ufrag.contains_key(ours) {
                    return;
                }
                r.by_addr.insert(from, ours.to_string());
                ours.to_string()
            }
        };
        if let Some(route) = r.by_ufrag.get(&ufrag) {
            // A full queue drops: the leg's task is behind and old media is useless.
            if route
                .tx
                .try_send((route.leg, from, BytesMut::from(data)))
                .is_err()
            {
                self.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Routes datagrams for `ufrag` to `tx`, tagged with `leg`.
    pub fn register(
        self: &Arc<Self>,
        ufrag: &str,
        leg: usize,
        tx: mpsc::Sender<WebPacket>,
    ) -> Registration {
        self.routes
            .lock()
            .unwrap()
            .by_ufrag
            .insert(ufrag.to_string(), Route { leg, tx });
        Registration {
            port: self.clone(),
            ufrag: ufrag.to_string(),
        }
    }

    /// Sends without waiting (a late packet is a lost one).
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        if self.socket.try_send_to(data, to).is_err() {
            self.send_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Datagrams dropped since the port was bound: (not sent, not delivered to a leg).
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.send_failed.load(Ordering::Relaxed),
            self.queue_full.load(Ordering::Relaxed),
        )
    }

    /// Browser legs on the port now.
    pub fn legs(&self) -> usize {
        self.routes.lock().unwrap().by_ufrag.len()
    }
}

#[doc(hidden)]
pub mod sim;
#[cfg(test)]
mod tests;
