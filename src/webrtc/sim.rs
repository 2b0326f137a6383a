//! A browser played by a second `rtc` peer connection, in memory (full ICE; offers
//! opus, G722, PCMU, PCMA and telephone-event like Chromium). Used by the unit tests
//! and the `media` benchmark; real Chromium is in the e2e suite.

use super::*;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT,
};
use std::time::Duration;

/// The simulated browser's address.
pub const BROWSER: &str = "10.0.0.2:50000";
/// The gateway's address in the simulation.
pub const GATEWAY: &str = "10.0.0.1:40000";
/// The SSRC the simulated browser sends with.
pub const BROWSER_SSRC: u32 = 4242;
/// The SSRC of the simulated browser's camera.
pub const BROWSER_VIDEO_SSRC: u32 = 4343;
/// The payload types the simulated browser offers VP8 and H.264 under (Chromium's).
pub const BROWSER_VP8: u8 = 96;
pub const BROWSER_H264: u8 = 102;

pub fn codec(mime: &str, rate: u32, ch: u16, pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: rate,
            channels: ch,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

/// A browser-like offerer.
pub struct SimBrowser {
    pub pc: RTCPeerConnection,
    pub sender: RTCRtpSenderId,
    /// The camera, when it offers video.
    pub video: Option<RTCRtpSenderId>,
    pub offer: String,
    pub addr: SocketAddr,
    pub gateway: SocketAddr,
}

impl SimBrowser {
    pub fn new(now: Instant) -> SimBrowser {
        SimBrowser::build(now, false)
    }

    /// A browser with a camera: it also offers VP8 and H.264 (Chromium's payload
    /// types), BUNDLEd with its audio.
    pub fn with_video(now: Instant) -> SimBrowser {
        SimBrowser::build(now, true)
    }

    fn build(now: Instant, camera: bool) -> SimBrowser {
        let mut media = MediaEngine::default();
        if camera {
            for (mime, fmtp, pt) in [
                (MIME_TYPE_VP8, "", BROWSER_VP8),
                (MIME_TYPE_H264, H264_FMTP, BROWSER_H264),
            ] {
                let mut c = codec(mime, 90000, 0, pt);
                c.rtp_codec = video_codec(mime, fmtp);
                media.register_codec(c, RtpCodecKind::Video).unwrap();
            }
        }
        for c in [
            codec(MIME_TYPE_OPUS, 48000, 2, 111),
            codec("audio/G722", 8000, 0, 9),
            codec(MIME_TYPE_PCMU, 8000, 0, 0),
            codec(MIME_TYPE_PCMA, 8000, 0, 8),
            codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, 126),
        ] {
            media.register_codec(c, RtpCodecKind::Audio).unwrap();
        }
        // Chromium hands keyframe requests to its encoder: here they reach the test.
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .unwrap()
            .with(
                rtc::interceptor::Slot::IntervalPli,
                KeyframeFeedback::default(),
            );
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .unwrap();
        let track = MediaStreamTrack::new(
            "browser".into(),
            "mic".into(),
            "mic".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(BROWSER_SSRC),
                    ..Default::default()
                },
                codec: codec(MIME_TYPE_PCMU, 8000, 0, 0).rtp_codec,
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).unwrap();
        let video = camera.then(|| {
            let track = MediaStreamTrack::new(
                "browser".into(),
                "camera".into(),
                "camera".into(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(BROWSER_VIDEO_SSRC),
                        ..Default::default()
                    },
                    // Every registered codec offered, as Chromium does.
                    ..Default::default()
                }],
            );
            pc.add_track(track).unwrap()
        });
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(now, offer).unwrap();
        let addr: SocketAddr = BROWSER.parse().unwrap();
        add_host_candidate(&mut pc, addr).unwrap();
        let offer = pc.local_description().unwrap().sdp;
        SimBrowser {
            pc,
            sender,
            video,
            offer,
            addr,
            gateway: GATEWAY.parse().unwrap(),
        }
    }

    /// A new offer on the same connection (a renegotiation, as Chromium makes one).
    pub fn reoffer(&mut self, now: Instant) -> String {
        let offer = self.pc.create_offer(None).unwrap();
        self.pc.set_local_description(now, offer).unwrap();
        self.pc.local_description().unwrap().sdp
    }

    /// The gateway's answer to our last offer.
    pub fn answered(&mut self, now: Instant, sdp: String) {
        self.pc
            .set_remote_description(now, RTCSessionDescription::answer(sdp).unwrap())
            .unwrap();
    }

    /// A datagram from the gateway.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.addr,
                peer_addr: self.gateway,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
    }

    /// Sends RTP (its SSRC set to ours) through SRTP.
    pub fn send_rtp(&mut self, now: Instant, packet: &[u8]) {
        let mut p = rtc::rtp::packet::Packet::unmarshal(&mut &packet[..]).unwrap();
        p.header.ssrc = BROWSER_SSRC;
        let mut s = self.pc.rtp_sender(self.sender).unwrap();
        s.write_rtp(now, p).unwrap();
    }

    /// Sends video RTP from the camera (its SSRC set, the payload type as given).
    pub fn send_video(&mut self, now: Instant, packet: &[u8]) {
        let mut p = rtc::rtp::packet::Packet::unmarshal(&mut &packet[..]).unwrap();
        p.header.ssrc = BROWSER_VIDEO_SSRC;
        let mut s = self.pc.rtp_sender(self.video.expect("a camera")).unwrap();
        s.write_rtp(now, p).unwrap();
    }

    /// Sends a PLI about the stream `media` (what the gateway sends it).
    pub fn send_pli(&mut self, now: Instant, media: u32) {
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: BROWSER_VIDEO_SSRC,
            media_ssrc: media,
        };
        let mut s = self.pc.rtp_sender(self.video.expect("a camera")).unwrap();
        s.write_rtcp(now, vec![Box::new(pli)]).unwrap();
    }

    /// Datagrams for the gateway.
    pub fn transmit(&mut self, out: &mut Vec<BytesMut>) {
        while let Some(m) = self.pc.poll_write() {
            assert_eq!(
                m.transport.peer_addr, self.gateway,
                "the browser sends to our candidate"
            );
            out.push(m.message);
        }
    }

    /// True once the peer connection reports Connected (drains events).
    pub fn poll_connected(&mut self) -> bool {
        let mut up = false;
        while let Some(e) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) = e
            {
                up = true;
            }
        }
        up
    }

    /// RTP packets decrypted from the gateway: (payload type, payload).
    pub fn received(&mut self) -> Vec<(u8, Bytes)> {
        self.received_all()
            .into_iter()
            .filter_map(|m| match m {
                Received::Rtp(p) => Some((p.header.payload_type, p.payload)),
                Received::Pli { .. } => None,
            })
            .collect()
    }

    /// Everything decrypted from the gateway: RTP, and PLIs (media SSRC).
    pub fn received_all(&mut self) -> Vec<Received> {
        let mut v = vec![];
        while let Some(m) = self.pc.poll_read() {
            match m.message {
                RTCMessage::RtpPacket(_, p) => v.push(Received::Rtp(p)),
                RTCMessage::RtcpPacket(_, ps) => {
                    for p in ps {
                        if let Some(pli) = p.as_any().downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>() {
                            v.push(Received::Pli { media: pli.media_ssrc });
                        }
                    }
                }
                _ => {}
            }
        }
        v
    }
}

/// What the simulated browser decrypted.
#[derive(Debug)]
pub enum Received {
    Rtp(rtc::rtp::packet::Packet),
    Pli { media: u32 },
}

/// An RTP packet: version 2, `pt`, `seq`, timestamp 160·seq, SSRC 0x01020304.
pub fn rtp(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
    let ts = (seq as u32).wrapping_mul(160).to_be_bytes();
    let mut v = vec![
        0x80,
        pt,
        (seq >> 8) as u8,
        seq as u8,
        ts[0],
        ts[1],
        ts[2],
        ts[3],
        1,
        2,
        3,
        4,
    ];
    v.extend_from_slice(payload);
    v
}

/// A browser leg answering a simulated browser, ICE and DTLS connected on a simulated
/// clock (5 ms steps). Returns both and the clock after the handshake.
pub fn connected(now: Instant, law: Codec) -> (SimBrowser, BrowserLeg, Instant) {
    connect(now, SimBrowser::new(now), law, &[])
}

/// As [`connected`], with a browser with a camera and the SIP side's `video` formats.
pub fn connected_with_video(
    now: Instant,
    law: Codec,
    video: &[crate::sdp::Format],
) -> (SimBrowser, BrowserLeg, Instant) {
    connect(now, SimBrowser::with_video(now), law, video)
}

fn connect(
    mut now: Instant,
    mut b: SimBrowser,
    law: Codec,
    video: &[crate::sdp::Format],
) -> (SimBrowser, BrowserLeg, Instant) {
    let gw = b.gateway;
    let (mut leg, answer) = BrowserLeg::answer(now, &b.offer, law, video, gw, gw).unwrap();
    b.pc.set_remote_description(now, RTCSessionDescription::answer(answer).unwrap())
        .unwrap();
    let (mut up, mut b_up) = (false, false);
    let (mut to_leg, mut out) = (vec![], vec![]);
    for _ in 0..2000 {
        b.transmit(&mut to_leg);
        for d in to_leg.drain(..) {
            leg.handle_read(now, b.addr, d);
        }
        b_up |= b.poll_connected();
        leg.drain(&mut out);
        for o in out.drain(..) {
            match o {
                WebOut::Transmit(_, d) => b.receive(now, &d),
                WebOut::Connected => up = true,
                WebOut::Failed(why) => panic!("browser leg failed: {why}"),
                WebOut::Rtp(_) | WebOut::VideoRtp(_) | WebOut::VideoRtcp(_) => {}
            }
        }
        if up && b_up {
            return (b, leg, now);
        }
        now += Duration::from_millis(5);
        let _ = b.pc.handle_timeout(now);
        leg.handle_timeout(now);
    }
    panic!("ICE + DTLS did not connect in 10 simulated seconds");
}
