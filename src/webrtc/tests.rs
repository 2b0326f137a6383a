//! The browser leg against a second `rtc` peer connection playing the browser (full
//! ICE, offers opus, G722, PCMU, PCMA and telephone-event like Chromium), in memory on
//! a simulated clock: the answer is what a browser can use, ICE and DTLS connect, and
//! SRTP carries RTP both ways. Real Chromium is in the e2e suite.

use super::sim::{codec, connected, rtp, GATEWAY};
use super::*;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_TELEPHONE_EVENT;
use std::time::Duration;

/// An offer Chromium 156 made (audio transceiver, candidates hidden behind mDNS).
const CHROMIUM_OFFER: &str = include_str!("../../tests/data/chromium-offer.sdp");

#[test]
fn answers_g711_only_lite_with_our_candidate() {
    let now = crate::clock::now();
    let offer = CHROMIUM_OFFER;
    assert!(offer.contains("telephone-event/8000"), "{offer}");
    let gw: SocketAddr = GATEWAY.parse().unwrap();
    let (_leg, answer) = BrowserLeg::answer(now, offer, Codec::Pcma, &[], gw, gw).unwrap();
    let m = answer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(
        m.ends_with(" 8"),
        "exactly PCMA in the answer: {m}\n{answer}"
    );
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=fingerprint:sha-256"), "{answer}");
    assert!(
        answer.contains("10.0.0.1 40000 typ host"),
        "our host candidate: {answer}"
    );
    assert!(!answer.contains("telephone-event"), "{answer}");
    // A browser that offers no G.711 is told why.
    let opus_only: String = offer
        .lines()
        .filter(|l| !l.contains("PCMU") && !l.contains("PCMA"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let e = BrowserLeg::answer(now, &opus_only, Codec::Pcmu, &[], gw, gw)
        .err()
        .unwrap();
    assert!(e.to_string().contains("no PCMU"), "{e}");
}

/// One 20 ms exchange: the leg sends `to_browser`, the browser sends `to_leg`, every
/// datagram is delivered, and the clock moves on. Returns the RTP each side got: (the
/// leg's decrypted packets, the browser's (payload type, payload)).
fn exchange(
    b: &mut super::sim::SimBrowser,
    leg: &mut BrowserLeg,
    now: &mut Instant,
    to_browser: &[u8],
    to_leg: &[u8],
) -> (Vec<Bytes>, Vec<(u8, Bytes)>) {
    leg.write_rtp(*now, to_browser);
    b.send_rtp(*now, to_leg);
    let (mut datagrams, mut out, mut got_leg) = (vec![], vec![], vec![]);
    b.transmit(&mut datagrams);
    for d in datagrams {
        leg.handle_read(*now, b.addr, d);
    }
    leg.drain(&mut out);
    for o in out {
        match o {
            WebOut::Transmit(to, d) => {
                assert_eq!(to, b.addr);
                b.receive(*now, &d);
            }
            WebOut::Rtp(p) => got_leg.push(p),
            WebOut::VideoRtp(_) | WebOut::VideoRtcp(_) => panic!("no video here"),
            WebOut::Failed(why) => panic!("failed: {why}"),
            WebOut::Connected => {}
        }
    }
    let got_b = b.received();
    *now += Duration::from_millis(20);
    let _ = b.pc.handle_timeout(*now);
    leg.handle_timeout(*now);
    (got_leg, got_b)
}

#[test]
fn connects_and_carries_rtp_both_ways_in_memory() {
    let (mut b, mut leg, mut now) = connected(crate::clock::now(), Codec::Pcmu);
    let mut from_browser = vec![];
    let mut to_browser = 0;
    for seq in 1..=50u16 {
        // The leg sets its own SSRC and payload type, whatever the SIP side used.
        let to_b = rtp(seq, 99, &[0x55; 160]);
        let (got_leg, got_b) = exchange(
            &mut b,
            &mut leg,
            &mut now,
            &to_b,
            &rtp(seq, 0, &[0x11; 160]),
        );
        from_browser.extend(got_leg);
        for (pt, payload) in got_b {
            assert_eq!(pt, 0);
            assert_eq!(&payload[..], &[0x55; 160][..]);
            to_browser += 1;
        }
    }
    assert!(to_browser >= 45, "browser got {to_browser} of 50");
    assert!(
        from_browser.len() >= 45,
        "gateway got {}",
        from_browser.len()
    );
    let first = rtc::rtp::packet::Packet::unmarshal(&mut &from_browser[0][..]).unwrap();
    assert_eq!(first.header.payload_type, 0);
    assert_eq!(&first.payload[..], &[0x11; 160][..]);
}

#[test]
fn stun_username_is_read_only_from_binding_requests() {
    // A binding request with USERNAME "abcd:efgh" and a trailing FINGERPRINT-like attr.
    let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    m.extend_from_slice(&[7; 12]);
    let mut attrs = vec![0x00, 0x06, 0x00, 0x09];
    attrs.extend_from_slice(b"abcd:efgh\0\0\0");
    attrs.extend_from_slice(&[0x80, 0x28, 0, 4, 1, 2, 3, 4]);
    let len = attrs.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&attrs);
    assert_eq!(stun_username(&m), Some("abcd:efgh"));
    // A response, an RTP packet, a truncated message: nothing.
    let mut resp = m.clone();
    resp[1] = 0x01;
    resp[0] = 0x01;
    assert_eq!(stun_username(&resp), None);
    assert_eq!(stun_username(&rtp(1, 0, &[0; 160])), None);
    assert_eq!(stun_username(&m[..30]), None);
    // An attribute claiming more than there is.
    let mut bad = m.clone();
    bad[22..24].copy_from_slice(&400u16.to_be_bytes());
    assert_eq!(stun_username(&bad), None);
}

/// Why browser legs never register telephone-event: rtc 0.21.1, answering Chromium's
/// offer with PCMU + telephone-event/8000 registered, picks Chromium's
/// telephone-event/48000 payload type and lists it twice (`m=audio 9 ... 0 110 110`),
/// an answer Chromium cannot use. When this test fails after an upgrade, the trap is
/// gone and RFC 4733 from the browser can be negotiated.
#[test]
fn rtc_0_21_1_answers_telephone_event_wrongly() {
    let now = crate::clock::now();
    let mut media = MediaEngine::default();
    media
        .register_codec(codec(MIME_TYPE_PCMU, 8000, 0, 0), RtpCodecKind::Audio)
        .unwrap();
    media
        .register_codec(
            codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, 126),
            RtpCodecKind::Audio,
        )
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)
        .unwrap();
    pc.set_remote_description(
        now,
        RTCSessionDescription::offer(CHROMIUM_OFFER.into()).unwrap(),
    )
    .unwrap();
    let sdp = pc.create_answer(None).unwrap().sdp;
    let m = sdp.lines().find(|l| l.starts_with("m=audio")).unwrap();
    let events: Vec<&str> = sdp
        .lines()
        .filter(|l| l.contains("telephone-event"))
        .collect();
    assert!(
        m.ends_with(" 0 110 110") && events.iter().all(|l| l.ends_with("/48000")),
        "rtc's telephone-event answer changed: {m} {events:?}\n{sdp}"
    );
}

#[test]
fn rtp_flows_across_a_sequence_number_wrap_both_ways() {
    let (mut b, mut leg, mut now) = connected(crate::clock::now(), Codec::Pcmu);
    let (mut got_b, mut got_leg) = (0, 0);
    for i in 0..200u16 {
        let seq = 65_450u16.wrapping_add(i);
        let (l, r) = exchange(
            &mut b,
            &mut leg,
            &mut now,
            &rtp(seq, 0, &[0x55; 160]),
            &rtp(seq, 0, &[0x11; 160]),
        );
        got_leg += l.len();
        got_b += r.len();
    }
    assert_eq!(got_b, 200, "to the browser across the wrap");
    assert_eq!(got_leg, 200, "from the browser across the wrap");
}

fn format(pt: u8, name: &str, fmtp: &str) -> crate::sdp::Format {
    crate::sdp::Format {
        pt,
        name: name.into(),
        rate: 90000,
        channels: String::new(),
        fmtp: fmtp.into(),
    }
}

/// Delivers everything each side has for the other until both are quiet, moving the
/// clock 5 ms a round; returns what the leg produced (besides datagrams).
fn settle(b: &mut super::sim::SimBrowser, leg: &mut BrowserLeg, now: &mut Instant) -> Vec<WebOut> {
    let mut got = vec![];
    for _ in 0..20 {
        let (mut datagrams, mut out) = (vec![], vec![]);
        b.transmit(&mut datagrams);
        for d in datagrams {
            leg.handle_read(*now, b.addr, d);
        }
        leg.drain(&mut out);
        for o in out {
            match o {
                WebOut::Transmit(_, d) => b.receive(*now, &d),
                other => got.push(other),
            }
        }
        *now += Duration::from_millis(5);
        let _ = b.pc.handle_timeout(*now);
        leg.handle_timeout(*now);
    }
    got
}

#[test]
fn video_is_bundled_with_the_audio_and_carried_with_keyframe_requests_both_ways() {
    use super::sim::{Received, BROWSER_VIDEO_SSRC};
    use crate::media::keyframe::Codec as V;
    // The SIP side has H.264 and VP8 (its own payload types); the browser offers both.
    let sip = [
        format(97, "H264", "packetization-mode=1"),
        format(100, "VP8", ""),
    ];
    let (mut b, mut leg, mut now) =
        super::sim::connected_with_video(crate::clock::now(), Codec::Pcmu, &sip);
    let codecs = leg.video_codecs().expect("video negotiated");
    assert!(codecs.iter().any(|c| c.1 == V::Vp8) && codecs.iter().any(|c| c.1 == V::H264));
    let answer = b.pc.remote_description().unwrap().sdp.clone();
    assert!(answer.contains("a=group:BUNDLE 0 1"), "{answer}");
    assert!(answer.contains("packetization-mode=1"), "{answer}");
    let vp8 = codecs.iter().find(|c| c.1 == V::Vp8).unwrap().0;
    // The gateway's VP8 reaches the browser with its payload intact.
    for seq in 1..=5u16 {
        leg.write_video_rtp(now, &rtp(seq, vp8, &[0x10, 0, 0, 0, 0x9d, 1, 0x2a, 7]));
    }
    // The camera's VP8 reaches the gateway as video.
    for seq in 1..=5u16 {
        b.send_video(now, &rtp(seq, vp8, &[0x10, 1, 2, 3]));
    }
    let got = settle(&mut b, &mut leg, &mut now);
    let from_camera = got
        .iter()
        .filter(|o| matches!(o, WebOut::VideoRtp(p) if p[1] & 0x7f == vp8))
        .count();
    assert!(from_camera >= 4, "{got:?}");
    assert!(
        !got.iter().any(|o| matches!(o, WebOut::Rtp(_))),
        "video taken as audio"
    );
    let at_browser: Vec<_> = b
        .received_all()
        .into_iter()
        .filter_map(|r| match r {
            Received::Rtp(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(at_browser.len() >= 4, "{at_browser:?}");
    assert!(at_browser
        .iter()
        .all(|p| p.header.payload_type == vp8 && p.payload[..4] == [0x10, 0, 0, 0]));
    // The browser's PLI comes out as RTCP the session reads as a request.
    b.send_pli(now, at_browser[0].header.ssrc);
    let got = settle(&mut b, &mut leg, &mut now);
    let asked: Vec<_> = got
        .iter()
        .filter_map(|o| match o {
            WebOut::VideoRtcp(r) => Some(crate::media::keyframe::requests(r)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{got:?}");
    assert!(matches!(
        asked[0][..],
        [crate::media::keyframe::Request::Pli { .. }]
    ));
    // Ours reaches the browser, about its camera's stream.
    leg.request_keyframe(now);
    settle(&mut b, &mut leg, &mut now);
    let plis: Vec<_> = b
        .received_all()
        .into_iter()
        .filter_map(|r| match r {
            Received::Pli { media } => Some(media),
            _ => None,
        })
        .collect();
    assert_eq!(plis, vec![BROWSER_VIDEO_SSRC]);
}

#[test]
fn video_is_declined_when_the_sip_side_has_none_the_browser_takes() {
    let now = crate::clock::now();
    let b = super::sim::SimBrowser::with_video(now);
    let gw = b.gateway;
    // H.263, and H.264 in packetization-mode 0 (which cannot take a browser's FU-A), on
    // the SIP side: nothing to pass through.
    let sip = [
        format(34, "H263", ""),
        format(96, "H264", "profile-level-id=42e01f; packetization-mode=0"),
    ];
    let (leg, answer) = BrowserLeg::answer(now, &b.offer, Codec::Pcmu, &sip, gw, gw).unwrap();
    assert!(leg.video_codecs().is_none());
    let video_line = answer
        .lines()
        .find(|l| l.starts_with("m=video"))
        .unwrap_or("");
    assert!(
        video_line.is_empty()
            || video_line.starts_with("m=video 0 ")
            || answer.contains("a=inactive"),
        "{answer}"
    );
}

#[test]
fn video_left_inactive_for_an_audio_call_is_turned_on_by_a_renegotiation() {
    use super::sim::{Received, BROWSER_VP8};
    use crate::media::keyframe::Codec as V;
    // The SIP side has no video: the camera's m-section is answered inactive, not
    // refused, so the agent can add video later without a new connection.
    let (mut b, mut leg, mut now) =
        super::sim::connected_with_video(crate::clock::now(), Codec::Pcmu, &[]);
    assert!(leg.video_codecs().is_none() && leg.video_later());
    let first = b.pc.remote_description().unwrap().sdp.clone();
    let m = first.split("m=video").nth(1).expect("a video m-section");
    assert!(!m.starts_with(" 0 ") && m.contains("a=inactive"), "{first}");
    // A video format the browser cannot take is refused, and the leg keeps going.
    let offer = b.reoffer(now);
    let h263 = [format(34, "H263", "")];
    assert!(leg.reanswer(now, &offer, &h263).is_err());
    // The SIP phone took VP8: the browser's new offer is answered with VP8 alone.
    let offer = b.reoffer(now);
    let answer = leg
        .reanswer(now, &offer, &[format(96, "VP8", "")])
        .expect("renegotiated");
    b.answered(now, answer.clone());
    let m = answer.split("m=video").nth(1).unwrap();
    assert!(m.contains("a=sendrecv") && !m.contains("H264"), "{answer}");
    let codecs = leg.video_codecs().expect("video on");
    assert_eq!(codecs, vec![(BROWSER_VP8, V::Vp8)]);
    assert!(!leg.video_later());
    // Video now goes both ways on the same transport, audio unchanged.
    for seq in 1..=5u16 {
        leg.write_video_rtp(
            now,
            &rtp(seq, BROWSER_VP8, &[0x10, 0, 0, 0, 0x9d, 1, 0x2a, 7]),
        );
        b.send_video(now, &rtp(seq, BROWSER_VP8, &[0x10, 1, 2, 3]));
        leg.write_rtp(now, &rtp(seq, 0, &[0xff; 160]));
    }
    let got = settle(&mut b, &mut leg, &mut now);
    let from_camera = got
        .iter()
        .filter(|o| matches!(o, WebOut::VideoRtp(p) if p[1] & 0x7f == BROWSER_VP8))
        .count();
    assert!(from_camera >= 4, "{got:?}");
    let at_browser = b.received_all();
    let video = at_browser
        .iter()
        .filter(|r| matches!(r, Received::Rtp(p) if p.header.payload_type == BROWSER_VP8))
        .count();
    let audio = at_browser
        .iter()
        .filter(|r| matches!(r, Received::Rtp(p) if p.header.payload_type == 0))
        .count();
    assert!(video >= 4 && audio >= 4, "{at_browser:?}");
    // Once on, it cannot be turned on twice.
    let offer = b.reoffer(now);
    assert!(leg.reanswer(now, &offer, &[format(96, "VP8", "")]).is_err());
}
