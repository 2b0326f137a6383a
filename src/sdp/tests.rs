//! Offer/answer cases modelled on RFC 4317 (host names replaced by addresses: we never
//! resolve names in SDP), plus what real phones send.

use super::*;

fn local(video: bool) -> Local {
    Local {
        ip: "192.0.2.10".parse().unwrap(),
        audio_port: 20000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: Some(101),
        video_port: video.then_some(20002),
        video_formats: vec![],
        video_bandwidth: vec![],
        session_id: 7,
        version: 1,
    }
}

fn remote(s: &str) -> RemoteSession {
    RemoteSession::parse(s.replace('\n', "\r\n").as_bytes()).unwrap()
}

fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.starts_with("m=")).collect()
}

const ALICE_AV: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0 8 97
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 iLBC/8000
m=video 51372 RTP/AVP 31 32
a=rtpmap:31 H261/90000
a=rtpmap:32 MPV/90000
";

#[test]
fn rfc4317_2_1_audio_and_video_accepted_when_video_can_be_relayed() {
    let (sdp, n) = answer(&remote(ALICE_AV), &local(true), None).unwrap();
    assert_eq!(
        m_lines(&sdp),
        ["m=audio 20000 RTP/AVP 0", "m=video 20002 RTP/AVP 31 32"]
    );
    assert_eq!(n.audio.codec, Codec::Pcmu);
    assert_eq!(n.audio.remote_rtp, Some("192.0.2.1:49170".parse().unwrap()));
    assert_eq!(
        n.audio.remote_rtcp,
        Some("192.0.2.1:49171".parse().unwrap())
    );
    let v = n.video.unwrap();
    assert_eq!(v.remote_rtp, Some("192.0.2.1:51372".parse().unwrap()));
    assert_eq!(
        v.formats
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["H261", "MPV"]
    );
    assert!(sdp.contains("a=rtpmap:31 H261/90000"));
}

#[test]
fn rfc4317_2_2_video_declined_with_port_zero() {
    let (sdp, n) = answer(&remote(ALICE_AV), &local(false), None).unwrap();
    // Same number and order of m-lines; the declined one has port 0.
    assert_eq!(
        m_lines(&sdp),
        ["m=audio 20000 RTP/AVP 0", "m=video 0 RTP/AVP 31 32"]
    );
    assert!(n.video.is_none());
    // Our answer parses back with our own parser (round trip through rtc's SDP types).
    let back = RemoteSession::parse(sdp.as_bytes()).unwrap();
    assert_eq!(back.media.len(), 2);
    assert_eq!(back.media[1].rtp_addr(), None);
}

#[test]
fn rfc4317_2_3_answerer_follows_offerer_codec_order() {
    let offer = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 97 8 0
a=rtpmap:97 iLBC/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
";
    let (sdp, n) = answer(&remote(offer), &local(false), None).unwrap();
    assert_eq!(n.audio.codec, Codec::Pcma);
    assert_eq!(m_lines(&sdp), ["m=audio 20000 RTP/AVP 8"]);
}

#[test]
fn rfc4317_2_4_two_audio_streams_second_declined() {
    let offer = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=audio 49172 RTP/AVP 98
a=rtpmap:98 telephone-event/8000
a=sendonly
";
    let (sdp, n) = answer(&remote(offer), &local(false), None).unwrap();
    assert_eq!(
        m_lines(&sdp),
        ["m=audio 20000 RTP/AVP 0", "m=audio 0 RTP/AVP 98"]
    );
    assert_eq!(n.audio.index, 0);
    assert_eq!(n.audio.telephone_event, None);
}

#[test]
fn rfc4317_2_6_audio_only_with_dynamic_telephone_event() {
    let offer = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0 8 97 98
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 iLBC/8000
a=rtpmap:98 telephone-event/8000
a=fmtp:98 0-15
a=ptime:30
";
    let (sdp, n) = answer(&remote(offer), &local(false), None).unwrap();
    assert_eq!(m_lines(&sdp), ["m=audio 20000 RTP/AVP 0 98"]);
    assert!(sdp.contains("a=rtpmap:98 telephone-event/8000"));
    assert_eq!(n.audio.telephone_event, Some(98));
    assert_eq!(n.audio.ptime_ms, 30);
    assert_eq!(n.audio.direction, Direction::SendRecv);
}

#[test]
fn no_common_codec_is_488_material() {
    let offer = "v=0
o=alice 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 18 97
a=rtpmap:18 G729/8000
a=rtpmap:97 iLBC/8000
";
    assert_eq!(
        answer(&remote(offer), &local(false), None),
        Err(SdpError::NoCommonCodec)
    );
    let video_only = "v=0
o=alice 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=video 51372 RTP/AVP 31
";
    assert_eq!(
        answer(&remote(video_only), &local(false), None),
        Err(SdpError::NoAudio)
    );
    // PCMA at 16 kHz is not PCMA.
    let wide = "v=0
o=alice 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 96
a=rtpmap:96 PCMA/16000
";
    assert_eq!(
        answer(&remote(wide), &local(false), None),
        Err(SdpError::NoCommonCodec)
    );
}

#[test]
fn rfc4317_3_1_hold_and_unhold() {
    let hold = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0 97
a=rtpmap:0 PCMU/8000
a=rtpmap:97 iLBC/8000
a=sendonly
";
    let (sdp, n) = answer(&remote(hold), &local(false), None).unwrap();
    assert!(sdp.contains("a=recvonly"));
    assert_eq!(n.audio.direction, Direction::RecvOnly);
    assert!(!n.audio.direction.sends());
    let unhold = hold.replace("a=sendonly", "a=sendrecv");
    let (sdp, n) = answer(&remote(&unhold), &local(false), None).unwrap();
    assert!(sdp.contains("a=sendrecv"));
    assert!(n.audio.direction.sends());
    // Inactive both ways.
    let inactive = hold.replace("a=sendonly", "a=inactive");
    assert_eq!(
        answer(&remote(&inactive), &local(false), None)
            .unwrap()
            .1
            .audio
            .direction,
        Direction::Inactive
    );
}

#[test]
fn rfc4317_3_2_hold_with_two_streams_session_level_direction() {
    let offer = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
a=sendonly
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
";
    let (sdp, n) = answer(&remote(offer), &local(true), None).unwrap();
    assert_eq!(n.audio.direction, Direction::RecvOnly);
    assert_eq!(n.video.unwrap().direction, Direction::RecvOnly);
    assert_eq!(sdp.matches("a=recvonly").count(), 2);
}

#[test]
fn rfc2543_hold_with_zero_address() {
    let offer = "v=0
o=phone 1 2 IN IP4 192.0.2.1
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 49170 RTP/AVP 8
";
    let (sdp, n) = answer(&remote(offer), &local(false), None).unwrap();
    assert_eq!(n.audio.remote_rtp, None, "nothing is sent to 0.0.0.0");
    assert!(!n.audio.direction.sends());
    assert!(sdp.contains("a=recvonly"));
}

#[test]
fn rfc4317_4_2_video_added_then_removed_by_reoffer() {
    // The first offer is audio only; the re-offer adds video, which we decline when no
    // other leg has video, keeping our audio port and codec and bumping the version.
    let first = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 8 0
";
    let (ans, n) = answer(&remote(first), &local(false), None).unwrap();
    assert_eq!(n.audio.codec, Codec::Pcma);
    let mut l = local_of(ans.as_bytes(), UNSPECIFIED).unwrap();
    assert_eq!((l.audio_port, l.session_id, l.version), (20000, 7, 1));
    l.version += 1;
    let re = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.1
s=
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0 8
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
";
    let (ans2, n2) = answer(&remote(re), &l, Some(n.audio.codec)).unwrap();
    assert_eq!(n2.audio.codec, Codec::Pcma, "the codec in use is kept");
    assert_eq!(
        m_lines(&ans2),
        ["m=audio 20000 RTP/AVP 8", "m=video 0 RTP/AVP 31"]
    );
    assert!(ans2.contains("o=omnigate 7 2 IN IP4 192.0.2.10"));
}

#[test]
fn rtcp_mux_and_rtcp_attribute() {
    let offer = "v=0
o=x 1 1 IN IP4 192.0.2.1
s=-
t=0 0
m=audio 4000 RTP/AVP 0
c=IN IP4 192.0.2.5
a=rtcp:4011 IN IP4 192.0.2.6
";
    let (_, n) = answer(&remote(offer), &local(false), None).unwrap();
    assert_eq!(n.audio.remote_rtp, Some("192.0.2.5:4000".parse().unwrap()));
    assert_eq!(n.audio.remote_rtcp, Some("192.0.2.6:4011".parse().unwrap()));
    let mux = offer.replace("a=rtcp:4011 IN IP4 192.0.2.6", "a=rtcp-mux");
    let (sdp, n) = answer(&remote(&mux), &local(false), None).unwrap();
    assert!(n.audio.rtcp_mux);
    assert_eq!(n.audio.remote_rtcp, n.audio.remote_rtp);
    assert!(sdp.contains("a=rtcp-mux"));
}

#[test]
fn our_offer_and_its_answer() {
    let o = offer(&local(false), Direction::SendRecv);
    assert_eq!(m_lines(&o), ["m=audio 20000 RTP/AVP 0 8 101"]);
    assert!(o.contains("a=rtpmap:101 telephone-event/8000") && o.contains("a=fmtp:101 0-16"));
    assert!(o.starts_with(
        "v=0\r\no=omnigate 7 1 IN IP4 192.0.2.10\r\ns=omnigate\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    ));
    let ans = "v=0
o=bob 1 1 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 30000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
";
    let n = accept_answer(&remote(ans), &local(false)).unwrap();
    assert_eq!(
        (n.audio.codec, n.audio.telephone_event),
        (Codec::Pcma, Some(101))
    );
    let bad = ans.replace("RTP/AVP 8 101", "RTP/AVP 18");
    assert!(accept_answer(&remote(&bad), &local(false)).is_err());
}

#[test]
fn sipp_offer_with_bare_lf_and_static_types_without_rtpmap() {
    let offer = b"v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-11,16";
    let r = RemoteSession::parse(offer).unwrap();
    let (_, n) = answer(&r, &local(false), None).unwrap();
    assert_eq!(
        (n.audio.codec, n.audio.telephone_event),
        (Codec::Pcma, Some(101))
    );
}

#[test]
fn malformed_sdp_is_an_error_not_a_panic() {
    for bad in [
        &b"\xff\xfe"[..],
        b"hello",
        b"v=0\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n",
    ] {
        assert!(
            RemoteSession::parse(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Audio without any address is refused for lack of a connection line.
    let no_c = b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(RemoteSession::parse(no_c), Err(SdpError::BadConnection));
}

#[test]
fn a_webrtc_offer_is_refused_with_the_real_reason() {
    // What JsSIP sends over SIP-over-WebSocket (trimmed): DTLS-SRTP, ICE, Opus and PCMU.
    let offer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
    // Not over the WebSocket transport (or browser legs off): refused, saying why.
    match check_offer(offer.as_bytes(), false) {
        Err(SdpError::SecureMediaOnly(p)) => assert_eq!(p, "UDP/TLS/RTP/SAVPF"),
        other => panic!("{other:?}"),
    }
    let e = SdpError::SecureMediaOnly("UDP/TLS/RTP/SAVPF".into()).to_string();
    assert!(e.contains("only from the SIP WebSocket transport"), "{e}");
    // Over it: a browser leg answers with PCMU.
    assert_eq!(check_offer(offer.as_bytes(), true), Ok(()));
    assert!(is_webrtc_offer(offer.as_bytes()));
    assert_eq!(webrtc_codec(offer.as_bytes()), Ok(Codec::Pcmu));
    // Opus only: nothing to bridge without transcoding.
    let opus = offer
        .replace(" 111 0 8\r\n", " 111\r\n")
        .replace("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "");
    assert_eq!(
        check_offer(opus.as_bytes(), true),
        Err(SdpError::WebRtcNoG711)
    );
    // SDES-SRTP (RTP/SAVP) from a desk phone is not WebRTC.
    let sdes = offer.replace("UDP/TLS/RTP/SAVPF", "RTP/SAVP");
    assert!(matches!(
        check_offer(sdes.as_bytes(), true),
        Err(SdpError::SecureMediaOnly(_))
    ));
}

#[test]
fn video_in_avpf_is_accepted_with_the_keyframe_feedback_offered_and_bandwidth_carried() {
    // A video phone offering RTP/AVPF with PLI (for one format) and generic NACK, and
    // stating what it can receive.
    let phone = "v=0
o=phone 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0
m=video 49172 RTP/AVPF 96 97
b=AS:512
b=TIAS:500000
b=X-YZ:9
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42e01f;packetization-mode=1
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 nack
a=rtcp-fb:98 ccm fir
";
    let r = remote(phone);
    let v = &r.media[1];
    assert_eq!(
        v.feedback,
        Feedback {
            pli: true,
            fir: false
        },
        "fir named a format not offered"
    );
    assert_eq!(
        v.bandwidth,
        vec![("AS".to_string(), 512), ("TIAS".to_string(), 500000)]
    );
    let mut l = local(true);
    // The other leg wants at most 256 kb/s.
    l.video_bandwidth = vec![("AS".into(), 256)];
    let (sdp, n) = answer(&r, &l, None).unwrap();
    let v = n.video.unwrap();
    assert_eq!(
        v.feedback,
        Feedback {
            pli: true,
            fir: false
        }
    );
    assert_eq!(
        v.bandwidth,
        vec![("AS".to_string(), 512), ("TIAS".to_string(), 500000)]
    );
    assert_eq!(v.formats.len(), 2);
    assert!(sdp.contains("m=video 20002 RTP/AVPF 96 97\r\n"), "{sdp}");
    assert!(sdp.contains("b=AS:256\r\n"), "{sdp}");
    assert!(sdp.contains("a=rtcp-fb:* nack pli\r\n"), "{sdp}");
    assert!(
        !sdp.contains("ccm fir"),
        "an answer adds no feedback: {sdp}"
    );
    // Our offer to the other leg takes both kinds and states the caller's bandwidth.
    let mut o = local(true);
    o.video_formats = r.media[1].formats.clone();
    o.video_bandwidth = r.media[1].bandwidth.clone();
    let ours = offer(&o, Direction::SendRecv);
    assert!(ours.contains("m=video 20002 RTP/AVP 96 97\r\n"), "{ours}");
    assert!(ours.contains("b=AS:512\r\nb=TIAS:500000\r\n"), "{ours}");
    assert!(
        ours.contains("a=rtcp-fb:* nack pli\r\na=rtcp-fb:* ccm fir\r\n"),
        "{ours}"
    );
    assert!(
        ours.contains("a=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\n"),
        "{ours}"
    );
    // Read back (a re-INVITE re-offers it): the same feedback and bandwidth.
    let back = local_of(ours.as_bytes(), UNSPECIFIED).unwrap();
    assert_eq!(back.video_bandwidth, o.video_bandwidth);
    // And the leg's answer with only FIR gives FIR.
    let ans = "v=0
o=callee 1 1 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 40000 RTP/AVP 0
m=video 40002 RTP/AVP 96
a=rtpmap:96 VP8/90000
a=rtcp-fb:* ccm fir
";
    let n = accept_answer(&remote(ans), &o).unwrap();
    assert_eq!(
        n.video.unwrap().feedback,
        Feedback {
            pli: false,
            fir: true
        }
    );
}

#[test]
fn video_in_a_secure_or_unknown_profile_is_declined() {
    let offer = "v=0
o=phone 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0
m=video 49172 RTP/SAVPF 96
a=rtpmap:96 VP8/90000
";
    let (sdp, n) = answer(&remote(offer), &local(true), None).unwrap();
    assert!(n.video.is_none());
    assert!(sdp.contains("m=video 0 RTP/SAVPF 96"), "{sdp}");
}
