//! The media session on simulated time: packets in, packets out, no sockets.

use super::*;
use crate::media::dtmf::TelephoneEvent;
use crate::media::keyframe::Via;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], p))
}

fn params(codec: Codec, te: Option<u8>, port: u16) -> LegParams {
    LegParams {
        codec,
        pt: codec.pt(),
        telephone_event: te,
        ptime_ms: 20,
        direction: Direction::SendRecv,
        remote_rtp: Some(addr(port)),
        remote_rtcp: Some(addr(port + 1)),
        rtcp_mux: false,
        video: None,
    }
}

fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: Vec<u8>, marker: bool) -> Bytes {
    rtp::write(&Packet {
        header: Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            marker,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    })
}

fn sends(out: &[Out], leg: LegId) -> Vec<(SocketAddr, Packet)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send {
                leg: l,
                port: Port::Rtp,
                to,
                data,
            } if *l == leg => Some((*to, rtp::parse(data.clone())?)),
            _ => None,
        })
        .collect()
}

fn digits(out: &[Out]) -> Vec<(char, DtmfVia)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Event(MediaEvent::Digit { digit, via, .. }) => Some((*digit, *via)),
            _ => None,
        })
        .collect()
}

/// One RFC 4733 press of `event` from `leg` (at `port`), its packets' (duration,
/// end) 20 ms apart from `t0`, on one timestamp.
fn press(
    s: &mut MediaSession,
    t0: Instant,
    leg: LegId,
    port: u16,
    event: u8,
    steps: &[(u16, bool)],
    out: &mut Vec<Out>,
) {
    for (i, (duration, end)) in steps.iter().enumerate() {
        let ev = TelephoneEvent {
            event,
            end: *end,
            volume: 10,
            duration: *duration,
        }
        .encode()
        .to_vec();
        s.on_rtp(
            t0 + Duration::from_millis(20 * i as u64),
            leg,
            addr(port),
            pkt(101, i as u16, 8000, 1, ev, i == 0),
            out,
        );
    }
}

fn tone_payload(d: char, offset: u32, codec: Codec) -> Vec<u8> {
    let mut pcm = vec![0i16; 160];
    dtmf::tone(Digit(d), offset, &mut pcm);
    pcm.iter()
        .map(|&s| {
            if codec == Codec::Pcmu {
                g711::linear_to_ulaw(s)
            } else {
                g711::linear_to_alaw(s)
            }
        })
        .collect()
}

#[test]
fn alone_a_leg_hears_its_prompt_paced_at_its_ptime() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "test".into());
    let mut p = params(Codec::Pcma, Some(101), 4000);
    p.ptime_ms = 30;
    let leg = s.add_leg(t0, p);
    s.play(
        leg,
        Item::Prompt {
            id: 9,
            samples: vec![1000i16; 480].into(),
            barge_in: true,
        },
    );
    let mut out = Vec::new();
    for i in 0..6 {
        s.on_tick(t0 + Duration::from_millis(20 * i), &mut out);
    }
    let pk = sends(&out, leg);
    // 6 ticks × 160 = 960 samples = four 30 ms packets.
    assert_eq!(pk.len(), 4);
    assert!(pk
        .iter()
        .all(|(to, p)| *to == addr(4000) && p.header.payload_type == 8 && p.payload.len() == 240));
    assert_eq!(
        pk[1]
            .1
            .header
            .timestamp
            .wrapping_sub(pk[0].1.header.timestamp),
        240
    );
    assert!(pk[0].1.header.marker && !pk[1].1.header.marker);
    assert_eq!(pk[0].1.payload[0], g711::linear_to_alaw(1000));
    assert_eq!(
        pk[2].1.payload[0],
        g711::linear_to_alaw(0),
        "silence after the prompt"
    );
    assert!(out.contains(&Out::Event(MediaEvent::PlayDone {
        leg,
        id: 9,
        interrupted: false
    })));
}

fn rtp_sent_to(s: &mut MediaSession, at: Instant, leg: LegId) -> SocketAddr {
    let mut out = Vec::new();
    s.on_tick(at, &mut out);
    sends(&out, leg)[0].0
}

#[test]
fn symmetric_rtp_learns_a_nat_address_only_from_a_run_early_in_the_call() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let leg = s.add_leg(t0, params(Codec::Pcmu, None, 4000));
    let mut out = Vec::new();
    let nat = SocketAddr::from(([203, 0, 113, 7], 61000));
    for seq in 1..LATCH_RUN as u16 {
        s.on_rtp(
            t0,
            leg,
            nat,
            pkt(0, seq, 0, 77, vec![0xFF; 160], true),
            &mut out,
        );
    }
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        rtp_sent_to(&mut s, t0 + Duration::from_millis(20), leg),
        addr(4000)
    );
    let seq = LATCH_RUN as u16;
    s.on_rtp(
        t0,
        leg,
        nat,
        pkt(0, seq, 0, 77, vec![0xFF; 160], false),
        &mut out,
    );
    assert!(out.contains(&Out::Event(MediaEvent::Latched { leg, addr: nat })));
    assert_eq!(
        rtp_sent_to(&mut s, t0 + Duration::from_millis(40), leg),
        nat
    );
    // Once learnt, a whole run from elsewhere (same SSRC or a new one) moves nothing.
    out.clear();
    for seq in 100..130u16 {
        s.on_rtp(
            t0,
            leg,
            addr(9999),
            pkt(0, seq, 0, 78, vec![0xFF; 160], false),
            &mut out,
        );
    }
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        rtp_sent_to(&mut s, t0 + Duration::from_millis(60), leg),
        nat
    );
    assert_eq!(
        s.legs[leg].as_ref().unwrap().ignored,
        (LATCH_RUN - 1) as u64 + 30
    );
}

#[test]
fn a_third_address_never_takes_an_established_stream() {
    // The hijack: the caller is silent or talking; an attacker who finds the port
    // sends one packet with a new SSRC, or a run, or RTCP, late or early.
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let leg = s.add_leg(t0, params(Codec::Pcmu, None, 4000));
    let mut out = Vec::new();
    let attacker = SocketAddr::from(([198, 51, 100, 66], 5004));
    // Late in a silent call (the window has passed): nothing from the attacker counts.
    let late = t0 + LATCH_WINDOW + Duration::from_millis(1);
    for seq in 0..50u16 {
        s.on_rtp(
            late,
            leg,
            attacker,
            pkt(0, seq, 0, 4242, vec![0; 160], false),
            &mut out,
        );
    }
    s.on_rtcp(
        late,
        leg,
        SocketAddr::from(([198, 51, 100, 66], 5005)),
        Bytes::from_static(&[0x80, 200, 0, 1, 0, 0, 0, 1]),
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        rtp_sent_to(&mut s, late + Duration::from_millis(20), leg),
        addr(4000)
    );
    // Early, but after the signalled address has spoken: established, never moved.
    let mut s = MediaSession::new(t0, "t".into());
    let leg = s.add_leg(t0, params(Codec::Pcmu, None, 4000));
    s.on_rtp(
        t0,
        leg,
        addr(4000),
        pkt(0, 1, 0, 77, vec![0xFF; 160], true),
        &mut out,
    );
    for seq in 0..50u16 {
        s.on_rtp(
            t0,
            leg,
            attacker,
            pkt(0, seq, 0, 4242, vec![0; 160], false),
            &mut out,
        );
    }
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        rtp_sent_to(&mut s, t0 + Duration::from_millis(20), leg),
        addr(4000)
    );
    assert_eq!(s.legs[leg].as_ref().unwrap().ignored, 50);
    // A re-INVITE to a new address opens a new window for that address.
    let mut moved = params(Codec::Pcmu, None, 4000);
    moved.remote_rtp = Some(addr(4100));
    let t1 = t0 + Duration::from_secs(60);
    s.update_leg(t1, leg, moved);
    assert_eq!(rtp_sent_to(&mut s, t1, leg), addr(4100));
}

#[test]
fn each_press_is_reported_once_whichever_way_it_came() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let leg = s.add_leg(t0, params(Codec::Pcmu, Some(101), 4000));
    s.play(
        leg,
        Item::Prompt {
            id: 1,
            samples: vec![0i16; 80_000].into(),
            barge_in: true,
        },
    );
    let mut out = Vec::new();
    // RFC 4733: start, two updates, three end packets (one lost start would still count).
    let steps = [
        (160u16, false),
        (320, false),
        (480, false),
        (640, true),
        (640, true),
        (640, true),
    ];
    press(&mut s, t0, leg, 4000, 5, &steps, &mut out);
    // The same press also arrives by SIP INFO.
    s.on_info_digit(t0 + Duration::from_millis(30), leg, '5', &mut out);
    assert_eq!(digits(&out), vec![('5', DtmfVia::Rfc4733)]);
    assert!(
        out.contains(&Out::Event(MediaEvent::PlayDone {
            leg,
            id: 1,
            interrupted: true
        })),
        "barge-in"
    );
    // A second press of the same key later is a new press.
    out.clear();
    let ev = TelephoneEvent {
        event: 5,
        end: false,
        volume: 10,
        duration: 160,
    }
    .encode()
    .to_vec();
    s.on_rtp(
        t0 + Duration::from_secs(2),
        leg,
        addr(4000),
        pkt(101, 10, 8000 + 16000, 1, ev, true),
        &mut out,
    );
    assert_eq!(digits(&out), vec![('5', DtmfVia::Rfc4733)]);
    // INFO alone (a phone set to SIP INFO DTMF).
    out.clear();
    s.on_info_digit(t0 + Duration::from_secs(4), leg, '#', &mut out);
    assert_eq!(digits(&out), vec![('#', DtmfVia::Info)]);
}

#[test]
fn in_band_digits_when_no_telephone_event() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let leg = s.add_leg(t0, params(Codec::Pcma, None, 4000));
    let mut out = Vec::new();
    let mut seq = 0u16;
    for (k, d) in "19#".chars().enumerate() {
        // 100 ms of tone then 100 ms of silence, through the jitter buffer.
        for f in 0..10u32 {
            let ts = (k as u32 * 10 + f) * 160;
            let payload = if f < 5 {
                tone_payload(d, f * 160, Codec::Pcma)
            } else {
                vec![0xD5; 160]
            };
            let now = t0 + Duration::from_millis(ts as u64 / 8);
            s.on_rtp(
                now,
                leg,
                addr(4000),
                pkt(8, seq, ts, 3, payload, false),
                &mut out,
            );
            seq += 1;
            s.on_tick(now, &mut out);
        }
    }
    for i in 0..10 {
        s.on_tick(t0 + Duration::from_millis(600 + 20 * i), &mut out);
    }
    assert_eq!(
        digits(&out),
        vec![
            ('1', DtmfVia::InBand),
            ('9', DtmfVia::InBand),
            ('#', DtmfVia::InBand)
        ]
    );
}

#[test]
fn bridge_relays_without_decoding_and_transcodes_when_codecs_differ() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let a = s.add_leg(t0, params(Codec::Pcmu, Some(101), 4000));
    let b = s.add_leg(t0, params(Codec::Pcmu, Some(96), 5000));
    let c = s.add_leg(t0, params(Codec::Pcma, None, 6000));
    s.bridge(a, b);
    let mut out = Vec::new();
    let payload: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
    s.on_rtp(
        t0,
        a,
        addr(4000),
        pkt(0, 1, 1000, 11, payload.clone(), true),
        &mut out,
    );
    let to_b = sends(&out, b);
    assert_eq!(to_b.len(), 1);
    assert_eq!(to_b[0].0, addr(5000));
    assert_eq!(
        to_b[0].1.payload.to_vec(),
        payload,
        "same codec: bytes untouched"
    );
    assert_ne!(to_b[0].1.header.ssrc, 11, "our own SSRC towards b");
    // Nothing is generated for bridged legs on the tick.
    out.clear();
    s.on_tick(t0 + Duration::from_millis(20), &mut out);
    assert!(sends(&out, a).is_empty() && sends(&out, b).is_empty());
    // Telephone-event crosses with b's payload type.
    out.clear();
    let ev = TelephoneEvent {
        event: 3,
        end: false,
        volume: 10,
        duration: 160,
    }
    .encode()
    .to_vec();
    s.on_rtp(
        t0,
        a,
        addr(4000),
        pkt(101, 2, 1160, 11, ev.clone(), true),
        &mut out,
    );
    let to_b = sends(&out, b);
    assert_eq!(to_b[0].1.header.payload_type, 96);
    assert_eq!(to_b[0].1.payload.to_vec(), ev);
    assert_eq!(digits(&out), vec![('3', DtmfVia::Rfc4733)]);
    // Now bridge a (µ-law) with c (A-law, no telephone-event).
    s.bridge(a, c);
    out.clear();
    s.on_rtp(
        t0,
        a,
        addr(4000),
        pkt(0, 3, 1320, 11, payload.clone(), false),
        &mut out,
    );
    let mut want = payload.clone();
    g711::ulaw_to_alaw(&mut want);
    let to_c = sends(&out, c);
    assert_eq!(to_c[0].1.header.payload_type, 8);
    assert_eq!(to_c[0].1.payload.to_vec(), want, "transcoded");
    // A digit from a reaches c as in-band tones over the relayed audio.
    out.clear();
    let ev = TelephoneEvent {
        event: 7,
        end: false,
        volume: 10,
        duration: 160,
    }
    .encode()
    .to_vec();
    s.on_rtp(t0, a, addr(4000), pkt(101, 4, 1480, 11, ev, true), &mut out);
    let mut det = GoertzelDetector::new();
    let mut got = Vec::new();
    for i in 0..8u16 {
        out.clear();
        s.on_rtp(
            t0,
            a,
            addr(4000),
            pkt(0, 5 + i, 1640 + 160 * i as u32, 11, vec![0xFF; 160], false),
            &mut out,
        );
        let mut pcm = Vec::new();
        g711::decode_alaw(&sends(&out, c)[0].1.payload, &mut pcm);
        got.extend(det.push(&pcm));
    }
    assert_eq!(got, vec![Digit('7')]);
}

#[test]
fn conference_mixes_the_others() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let legs: Vec<LegId> = (0..3)
        .map(|i| s.add_leg(t0, params(Codec::Pcmu, None, 4000 + 10 * i)))
        .collect();
    s.conference();
    let levels = [1000i16, 2000, 4000];
    let mut out = Vec::new();
    for f in 0..10u32 {
        let now = t0 + Duration::from_millis(20 * f as u64);
        for (i, &l) in legs.iter().enumerate() {
            let payload = vec![g711::linear_to_ulaw(levels[i]); 160];
            s.on_rtp(
                now,
                l,
                addr(4000 + 10 * i as u16),
                pkt(0, f as u16, f * 160, 100 + i as u32, payload, false),
                &mut out,
            );
        }
        out.clear();
        s.on_tick(now, &mut out);
    }
    for (i, &l) in legs.iter().enumerate() {
        let p = sends(&out, l);
        let heard = g711::ulaw_to_linear(p[0].1.payload[80]) as i32;
        let want: i32 = levels
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, &v)| v as i32)
            .sum();
        assert!(
            (heard - want).abs() < want / 20,
            "leg {i} hears {heard}, want {want}"
        );
    }
}

/// One tick of each leg speaking at its level; what each leg then hears (0 for a leg
/// sent nothing).
fn mix_round(
    s: &mut MediaSession,
    t0: Instant,
    f: u32,
    legs: &[LegId],
    levels: &[i16],
) -> Vec<i32> {
    let mut out = Vec::new();
    let now = t0 + Duration::from_millis(20 * f as u64);
    for (i, &l) in legs.iter().enumerate() {
        let payload = vec![g711::linear_to_ulaw(levels[i]); 160];
        s.on_rtp(
            now,
            l,
            addr(4000 + 10 * i as u16),
            pkt(0, f as u16, f * 160, 100 + i as u32, payload, false),
            &mut out,
        );
    }
    out.clear();
    s.on_tick(now, &mut out);
    legs.iter()
        .map(|&l| {
            sends(&out, l)
                .first()
                .map_or(0, |p| g711::ulaw_to_linear(p.1.payload[80]) as i32)
        })
        .collect()
}

#[test]
fn a_mix_gives_each_listener_only_the_legs_listed_for_it_and_changes_without_renegotiation() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    // Caller, agent, supervisor.
    let legs: Vec<LegId> = (0..3)
        .map(|i| s.add_leg(t0, params(Codec::Pcmu, None, 4000 + 10 * i)))
        .collect();
    let (c, a, v) = (legs[0], legs[1], legs[2]);
    let levels = [1000i16, 2000, 4000];
    let near = |got: i32, want: i32| (got - want).abs() <= want / 20 + 8;
    let mut f = 0u32;
    let mut settle = |s: &mut MediaSession| {
        let mut heard = Vec::new();
        for _ in 0..10 {
            heard = mix_round(s, t0, f, &legs, &levels);
            f += 1;
        }
        heard
    };
    // Listen: the supervisor's microphone reaches no one.
    s.mix(vec![(c, vec![a]), (a, vec![c]), (v, vec![c, a])]);
    let h = settle(&mut s);
    assert!(
        near(h[0], 2000) && near(h[1], 1000) && near(h[2], 3000),
        "listen: {h:?}"
    );
    // Whisper: the agent hears the supervisor, the caller does not.
    s.mix(vec![(c, vec![a]), (a, vec![c, v]), (v, vec![c, a])]);
    let h = settle(&mut s);
    assert!(
        near(h[0], 2000) && near(h[1], 5000) && near(h[2], 3000),
        "whisper: {h:?}"
    );
    // Barge: everyone hears the other two (a listener never hears itself).
    s.mix(vec![(c, vec![a, v]), (a, vec![c, v]), (v, vec![c, a, v])]);
    let h = settle(&mut s);
    assert!(
        near(h[0], 6000) && near(h[1], 5000) && near(h[2], 3000),
        "barge: {h:?}"
    );
    // The supervisor leaves: the two go on hearing each other.
    s.remove_leg(v);
    let h = settle(&mut s);
    assert!(near(h[0], 2000) && near(h[1], 1000), "after: {h:?}");
    assert_eq!(h[2], 0, "a removed leg is sent nothing");
}

#[test]
fn recording_puts_the_caller_left_and_what_it_hears_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.wav");
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let leg = s.add_leg(t0, params(Codec::Pcmu, None, 4000));
    s.record(Recorder::create(&path).unwrap());
    s.play(
        leg,
        Item::Prompt {
            id: 1,
            samples: vec![-3000i16; 8000].into(),
            barge_in: false,
        },
    );
    let mut out = Vec::new();
    for f in 0..50u32 {
        let now = t0 + Duration::from_millis(20 * f as u64);
        s.on_rtp(
            now,
            leg,
            addr(4000),
            pkt(
                0,
                f as u16,
                f * 160,
                5,
                vec![g711::linear_to_ulaw(1500); 160],
                false,
            ),
            &mut out,
        );
        s.on_tick(now, &mut out);
    }
    s.stop_recording().unwrap().unwrap();
    let mut r = hound::WavReader::open(&path).unwrap();
    assert_eq!(r.spec().channels, 2);
    let v: Vec<i16> = r.samples::<i16>().map(|x| x.unwrap()).collect();
    assert_eq!(v.len(), 50 * 160 * 2);
    let (left, right): (Vec<i16>, Vec<i16>) = (
        v.iter().step_by(2).copied().collect(),
        v.iter().skip(1).step_by(2).copied().collect(),
    );
    assert!(
        left[2000..].iter().all(|&x| (x - 1500).abs() < 60),
        "caller left"
    );
    assert!(
        right.iter().all(|&x| (x + 3000).abs() < 100),
        "prompt right"
    );
}

fn video_params(port: u16, via: Via) -> LegParams {
    let mut p = params(Codec::Pcmu, None, port);
    p.video = Some(VideoLeg {
        remote_rtp: Some(addr(port + 2)),
        remote_rtcp: Some(addr(port + 3)),
        rtcp_mux: false,
        codecs: vec![(96, crate::media::keyframe::Codec::Vp8)],
        via,
    });
    p
}

/// A VP8 frame's first packet (RFC 7741: S = 1, PID 0; the frame tag's inverse key
/// bit, and the key frame's start code).
fn vp8(seq: u16, ts: u32, ssrc: u32, key: bool) -> Bytes {
    let mut payload = vec![0x10, if key { 0x00 } else { 0x01 }, 0, 0, 0x9d, 0x01, 0x2a];
    payload.resize(900, 0x55);
    pkt(96, seq, ts, ssrc, payload, true)
}

/// A VP8 packet (sequence, timestamp, SSRC, key) from a test leg's video address
/// (leg n at 4002 + 1000 n).
fn frame(
    s: &mut MediaSession,
    at: Instant,
    leg: LegId,
    (seq, ts, ssrc, key): (u16, u32, u32, bool),
    out: &mut Vec<Out>,
) {
    let from = addr(4002 + 1000 * leg as u16);
    s.on_video(at, leg, Port::VideoRtp, from, vp8(seq, ts, ssrc, key), out);
}

fn video_sends(out: &[Out], leg: LegId) -> Vec<(Port, SocketAddr, Bytes)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send {
                leg: l,
                port,
                to,
                data,
            } if *l == leg && matches!(port, Port::VideoRtp | Port::VideoRtcp) => {
                Some((*port, *to, data.clone()))
            }
            _ => None,
        })
        .collect()
}

fn fast_updates(out: &[Out]) -> Vec<LegId> {
    out.iter()
        .filter_map(|o| match o {
            Out::Event(MediaEvent::PictureFastUpdate { leg }) => Some(*leg),
            _ => None,
        })
        .collect()
}

fn rtp_fields(b: &[u8]) -> (u16, u32, u32) {
    (
        u16::from_be_bytes([b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    )
}

#[test]
fn video_goes_to_each_receiver_as_one_stream_across_a_transfer() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let a = s.add_leg(t0, video_params(4000, Via::Pli));
    let b = s.add_leg(t0, video_params(5000, Via::Pli));
    let c = s.add_leg(t0, video_params(6000, Via::Pli));
    s.bridge(a, b);
    let mut out = Vec::new();
    for i in 0..3u16 {
        frame(
            &mut s,
            t0,
            a,
            (100 + i, 9000 + 3000 * i as u32, 42, i == 0),
            &mut out,
        );
    }
    let got = video_sends(&out, b);
    assert_eq!(got.len(), 3);
    let ours = rtp_fields(&got[0].2).2;
    assert_ne!(ours, 42, "relayed under b's own SSRC");
    for (i, (port, to, data)) in got.iter().enumerate() {
        assert_eq!((*port, *to), (Port::VideoRtp, addr(5002)));
        assert_eq!(
            rtp_fields(data),
            (100 + i as u16, 9000 + 3000 * i as u32, ours)
        );
        // The payload is untouched.
        assert_eq!(data[12..], vp8(0, 0, 0, i == 0)[12..]);
    }
    // A transfer: c's stream (another SSRC, numbering and clock) continues b's.
    s.bridge(c, b);
    out.clear();
    frame(&mut s, t0, c, (60000, 777, 77, true), &mut out);
    frame(&mut s, t0, c, (60001, 3777, 77, false), &mut out);
    let got = video_sends(&out, b);
    assert_eq!(rtp_fields(&got[0].2), (103, 9000 + 6000 + 3000, ours));
    assert_eq!(rtp_fields(&got[1].2), (104, 9000 + 6000 + 6000, ours));
    assert_eq!(s.video_report(b).unwrap().relayed, 5);
    assert_eq!(s.video_report(c).unwrap().keyframes, 1);
}

#[test]
fn the_bridge_asks_both_senders_for_a_keyframe_until_one_comes() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let a = s.add_leg(t0, video_params(4000, Via::Pli));
    let b = s.add_leg(t0, video_params(5000, Via::Info));
    s.bridge(a, b);
    let mut out = Vec::new();
    s.on_tick(t0, &mut out);
    // b takes INFO: asked at once. a takes PLI, which names a's SSRC: asked once its
    // first packet shows it.
    assert_eq!(fast_updates(&out), vec![b]);
    assert!(video_sends(&out, a).is_empty());
    out.clear();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    frame(&mut s, ms(10), a, (1, 0, 42, false), &mut out);
    s.on_tick(ms(20), &mut out);
    let pli = video_sends(&out, a);
    assert_eq!(pli.len(), 1);
    let (port, to, data) = &pli[0];
    assert_eq!((*port, *to), (Port::VideoRtcp, addr(4003)));
    let ours_to_a = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    assert_eq!(
        crate::media::keyframe::requests(data),
        vec![crate::media::keyframe::Request::Pli {
            sender: ours_to_a,
            media: 42
        }]
    );
    // Every 500 ms until a keyframe: b is asked again at 500, a at 520.
    out.clear();
    s.on_tick(ms(300), &mut out);
    assert!(out.iter().all(|o| !matches!(
        o,
        Out::Send {
            port: Port::VideoRtcp,
            ..
        }
    )));
    assert!(fast_updates(&out).is_empty());
    s.on_tick(ms(520), &mut out);
    assert_eq!(fast_updates(&out), vec![b]);
    assert_eq!(
        video_sends(&out, a)
            .iter()
            .filter(|x| x.0 == Port::VideoRtcp)
            .count(),
        1
    );
    // a's keyframe comes: a is asked no more; b, silent, is given up at 3 s.
    out.clear();
    frame(&mut s, ms(600), a, (2, 3000, 42, true), &mut out);
    for t in (620..5000).step_by(20) {
        s.on_tick(ms(t), &mut out);
    }
    assert!(video_sends(&out, a).iter().all(|x| x.0 == Port::VideoRtp));
    // b: at 1000, 1500, 2000, 2500; none at 3000 or after.
    assert_eq!(fast_updates(&out).len(), 4);
    assert_eq!(s.video_report(b).unwrap().requests_out, 6);
    assert_eq!(s.video_report(a).unwrap().requests_out, 2);
}

#[test]
fn a_receivers_request_reaches_the_sender_in_its_own_form_rate_limited() {
    let t0 = crate::clock::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut s = MediaSession::new(t0, "t".into());
    let sip = s.add_leg(t0, video_params(4000, Via::Info));
    let browser = s.add_leg(t0, video_params(5000, Via::Pli));
    s.bridge(sip, browser);
    let mut out = Vec::new();
    // The bridge asks at once; both send keyframes: its own requests end.
    s.on_tick(t0, &mut out);
    frame(&mut s, ms(10), sip, (1, 0, 42, true), &mut out);
    frame(&mut s, ms(10), browser, (1, 0, 43, true), &mut out);
    s.on_tick(ms(20), &mut out);
    out.clear();
    // The browser's PLI (about the stream it sees, in its SSRC) becomes an INFO to
    // the SIP leg; a second one within 500 ms waits its turn.
    let seen = rtp_fields(
        &video_sends(
            &{
                let mut o = vec![];
                s.on_video(
                    ms(1000),
                    sip,
                    Port::VideoRtp,
                    addr(4002),
                    vp8(2, 3000, 42, false),
                    &mut o,
                );
                o
            },
            browser,
        )[0]
        .2,
    )
    .2;
    let pli = Bytes::copy_from_slice(&crate::media::keyframe::pli(43, seen));
    s.on_video(
        ms(1010),
        browser,
        Port::VideoRtcp,
        addr(5003),
        pli.clone(),
        &mut out,
    );
    s.on_tick(ms(1020), &mut out);
    assert_eq!(fast_updates(&out), vec![sip]);
    // Receivers' requests are not relayed as they are.
    assert!(video_sends(&out, sip).is_empty());
    out.clear();
    s.on_video(
        ms(1100),
        browser,
        Port::VideoRtcp,
        addr(5003),
        pli.clone(),
        &mut out,
    );
    s.on_tick(ms(1120), &mut out);
    assert!(fast_updates(&out).is_empty());
    s.on_tick(ms(1520), &mut out);
    assert_eq!(fast_updates(&out), vec![sip]);
    // A receiver's request is not retried by the bridge: nothing more.
    out.clear();
    for t in (1540..4000).step_by(20) {
        s.on_tick(ms(t), &mut out);
    }
    assert!(fast_updates(&out).is_empty());
    // The SIP leg's INFO becomes a PLI to the browser, with the browser's SSRC.
    s.on_picture_fast_update(ms(4000), sip);
    s.on_tick(ms(4000), &mut out);
    let sent = video_sends(&out, browser);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, Port::VideoRtcp);
    assert!(matches!(
        crate::media::keyframe::requests(&sent[0].2)[..],
        [crate::media::keyframe::Request::Pli { media: 43, .. }]
    ));
    assert_eq!(s.video_report(browser).unwrap().requests_in, 2);
    assert_eq!(s.video_report(sip).unwrap().requests_in, 1);
}

#[test]
fn a_fir_leg_gets_firs_with_new_command_numbers_and_reports_are_not_relayed() {
    let t0 = crate::clock::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut s = MediaSession::new(t0, "t".into());
    let mut pa = video_params(4000, Via::Fir);
    // a muxes its video RTCP on the RTP port (RFC 5761).
    pa.video.as_mut().unwrap().rtcp_mux = true;
    let a = s.add_leg(t0, pa);
    let b = s.add_leg(t0, video_params(5000, Via::Pli));
    s.bridge(a, b);
    let mut out = Vec::new();
    frame(&mut s, t0, a, (1, 0, 42, false), &mut out);
    frame(&mut s, t0, b, (1, 0, 43, true), &mut out);
    s.on_tick(ms(20), &mut out);
    s.on_tick(ms(520), &mut out);
    let firs: Vec<_> = video_sends(&out, a)
        .into_iter()
        .filter(|(_, _, d)| d[1] == 206)
        .collect();
    assert_eq!(firs.len(), 2);
    for (i, (port, to, d)) in firs.iter().enumerate() {
        // Muxed: on the RTP port, to the RTP address.
        assert_eq!((*port, *to), (Port::VideoRtp, addr(4002)));
        match &crate::media::keyframe::requests(d)[..] {
            [crate::media::keyframe::Request::Fir { entries, .. }] => {
                assert_eq!(entries[..], [(42, i as u8 + 1)])
            }
            other => panic!("{other:?}"),
        }
    }
    // A sender report and a receiver report from b, and a's muxed receiver report:
    // none is relayed, none is taken for a request.
    out.clear();
    let sr = Bytes::from_static(&[
        0x80, 200, 0, 6, 0, 0, 0, 43, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2,
    ]);
    s.on_video(ms(600), b, Port::VideoRtcp, addr(5003), sr, &mut out);
    let rr = Bytes::from_static(&[0x80, 201, 0, 1, 0, 0, 0, 42]);
    s.on_video(ms(600), a, Port::VideoRtp, addr(4002), rr, &mut out);
    s.on_tick(ms(620), &mut out);
    assert!(video_sends(&out, a).iter().all(|(_, _, d)| d[1] == 206));
    assert!(video_sends(&out, b).is_empty());
    assert_eq!(s.video_report(a).unwrap().requests_in, 0);
    assert_eq!(s.video_report(b).unwrap().requests_in, 0);
}

#[test]
fn resuming_from_hold_asks_both_ends_and_strangers_are_ignored() {
    let t0 = crate::clock::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut s = MediaSession::new(t0, "t".into());
    let a = s.add_leg(t0, video_params(4000, Via::Info));
    let b = s.add_leg(t0, video_params(5000, Via::Info));
    s.bridge(a, b);
    let mut out = Vec::new();
    frame(&mut s, t0, a, (1, 0, 42, true), &mut out);
    frame(&mut s, t0, b, (1, 0, 43, true), &mut out);
    s.on_tick(ms(20), &mut out);
    out.clear();
    let mut held = video_params(4000, Via::Info);
    held.direction = Direction::RecvOnly;
    s.update_leg(ms(1000), a, held);
    let mut resumed = video_params(4000, Via::Info);
    resumed.direction = Direction::SendRecv;
    s.update_leg(ms(5000), a, resumed);
    s.on_tick(ms(5000), &mut out);
    let mut asked = fast_updates(&out);
    asked.sort();
    assert_eq!(asked, vec![a, b]);
    // A packet from a third host neither reaches b nor counts as a's keyframe.
    out.clear();
    let stranger = SocketAddr::from(([198, 51, 100, 7], 4002));
    s.on_video(
        ms(5010),
        a,
        Port::VideoRtp,
        stranger,
        vp8(2, 3000, 99, true),
        &mut out,
    );
    assert!(video_sends(&out, b).is_empty());
    assert_eq!(s.video_report(a).unwrap().keyframes, 1);
}

#[test]
fn new_source_hold_rtcp_and_digits_sent() {
    let t0 = crate::clock::now();
    // The wall clock is an input: 2026-11-23 10:00:00 UTC as NTP at t0.
    let ntp0: u64 = (1_795_428_000 + 2_208_988_800) << 32;
    let mut s = MediaSession::new(t0, "t".into()).wall_clock(ntp0);
    let leg = s.add_leg(t0, params(Codec::Pcmu, Some(101), 4000));
    let mut out = Vec::new();
    s.on_rtp(
        t0,
        leg,
        addr(4000),
        pkt(0, 1, 0, 1, vec![0xFF; 160], false),
        &mut out,
    );
    s.on_rtp(
        t0,
        leg,
        addr(4000),
        pkt(0, 9000, 50, 2, vec![0xFF; 160], false),
        &mut out,
    );
    assert!(out.contains(&Out::Event(MediaEvent::NewSource { leg, ssrc: 2 })));
    assert_eq!(s.report(leg).unwrap().ssrc_changes, 1);
    // Digits out: one RFC 4733 press, marker on the first packet, one timestamp.
    out.clear();
    s.send_digits(leg, "4");
    for i in 0..10 {
        s.on_tick(t0 + Duration::from_millis(20 * i), &mut out);
    }
    let pk = sends(&out, leg);
    let events: Vec<&Packet> = pk
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.header.payload_type == 101)
        .collect();
    assert_eq!(events.len(), 7);
    assert!(events[0].header.marker);
    assert!(events
        .iter()
        .all(|p| p.header.timestamp == events[0].header.timestamp));
    let audio_after: Vec<&Packet> = pk
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.header.payload_type == 0)
        .collect();
    assert!(
        audio_after[0]
            .header
            .timestamp
            .wrapping_sub(events[0].header.timestamp)
            >= 7 * 160
    );
    // Hold: the phone sends sendonly, we answer recvonly and stop sending.
    let mut held = params(Codec::Pcmu, Some(101), 4000);
    held.direction = Direction::RecvOnly;
    s.update_leg(t0 + Duration::from_millis(380), leg, held);
    out.clear();
    s.on_tick(t0 + Duration::from_millis(400), &mut out);
    assert!(sends(&out, leg).is_empty());
    // RTCP: the first report 2.5 s in, to the RTCP port.
    out.clear();
    s.on_tick(t0 + Duration::from_millis(2600), &mut out);
    let rtcp: Vec<&Out> = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Out::Send {
                    port: Port::Rtcp,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(rtcp.len(), 1);
    let Out::Send { to, data, .. } = rtcp[0] else {
        unreachable!()
    };
    assert_eq!(*to, addr(4001));
    assert!(rtp::is_rtcp(data));
    // A sender report stamped with the injected wall clock, 2.6 s on.
    let mut b = data.clone();
    let pkts = rtc::rtcp::packet::unmarshal(&mut b).unwrap();
    let sr = pkts
        .iter()
        .find_map(|p| {
            p.as_any()
                .downcast_ref::<rtc::rtcp::sender_report::SenderReport>()
        })
        .expect("a sender report (audio was sent)");
    let want = ntp0 + (2u64 << 32) + ((600_000_000u64 << 32) / 1_000_000_000);
    assert_eq!(sr.ntp_time, want);
}

#[test]
fn key_presses_reach_whoever_hears_the_leg_while_a_supervisor_listens() {
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    // Caller and agent with telephone-event, the supervisor's leg without.
    let c = s.add_leg(t0, params(Codec::Pcmu, Some(101), 4000));
    let a = s.add_leg(t0, params(Codec::Pcmu, Some(101), 4010));
    let v = s.add_leg(t0, params(Codec::Pcmu, None, 4020));
    // Listen: the agent and the supervisor hear the caller; the caller the agent.
    s.mix(vec![(c, vec![a]), (a, vec![c]), (v, vec![c, a])]);
    let mut out = Vec::new();
    let steps = [(160u16, false), (320, false), (480, true)];
    press(&mut s, t0, c, 4000, 5, &steps, &mut out);
    // The caller's press by SIP INFO from the agent's phone reaches the caller.
    s.on_info_digit(t0, a, '9', &mut out);
    assert_eq!(
        digits(&out),
        vec![('5', DtmfVia::Rfc4733), ('9', DtmfVia::Info)]
    );
    out.clear();
    for i in 0..12 {
        s.on_tick(t0 + Duration::from_millis(20 * i), &mut out);
    }
    let events = |leg| -> Vec<u8> {
        sends(&out, leg)
            .iter()
            .filter(|(_, p)| p.header.payload_type == 101)
            .filter_map(|(_, p)| TelephoneEvent::parse(&p.payload).map(|e| e.event))
            .collect()
    };
    // The agent's phone gets the caller's 5 as RFC 4733, once (one press).
    let to_agent = events(a);
    assert!(
        !to_agent.is_empty() && to_agent.iter().all(|&e| e == 5),
        "{to_agent:?}"
    );
    // The caller gets the agent's 9.
    let to_caller = events(c);
    assert!(
        !to_caller.is_empty() && to_caller.iter().all(|&e| e == 9),
        "{to_caller:?}"
    );
    // The supervisor's leg has no telephone-event: the 5 and the 9 as tones in what
    // they hear (Goertzel finds them in its audio).
    let mut det = dtmf::GoertzelDetector::default();
    let mut heard = Vec::new();
    for (_, p) in sends(&out, v) {
        let pcm: Vec<i16> = p.payload.iter().map(|&b| g711::ulaw_to_linear(b)).collect();
        heard.extend(det.push(&pcm).into_iter().map(|d| d.0));
    }
    assert_eq!(heard, ['5', '9'], "tones to the supervisor");
}

#[test]
fn video_takes_the_receivers_payload_type_and_a_codec_it_lacks_is_dropped() {
    use crate::media::keyframe::Codec as V;
    let t0 = crate::clock::now();
    let mut s = MediaSession::new(t0, "t".into());
    let a = s.add_leg(t0, video_params(4000, Via::Pli));
    let mut pb = video_params(5000, Via::Pli);
    pb.video.as_mut().unwrap().codecs = vec![(100, V::Vp8), (97, V::H264)];
    let b = s.add_leg(t0, pb);
    s.bridge(a, b);
    let mut out = Vec::new();
    frame(&mut s, t0, a, (1, 0, 42, true), &mut out);
    s.on_video(
        t0,
        a,
        Port::VideoRtp,
        addr(4002),
        pkt(120, 2, 0, 42, vec![1; 20], false),
        &mut out,
    );
    // b's H.264 (97) means nothing to a, which took VP8 only.
    s.on_video(
        t0,
        b,
        Port::VideoRtp,
        addr(5002),
        pkt(97, 1, 0, 43, vec![0x65; 20], true),
        &mut out,
    );
    let pts: Vec<u8> = video_sends(&out, b)
        .iter()
        .map(|(_, _, d)| d[1] & 0x7f)
        .collect();
    assert_eq!(
        pts,
        vec![100, 120],
        "VP8 as b numbers it; an unknown codec as it came"
    );
    assert!(video_sends(&out, a).is_empty());
    // The marker bit stays.
    assert_eq!(video_sends(&out, b)[0].2[1] & 0x80, 0x80);
}

#[test]
fn a_session_refresh_with_the_same_media_asks_for_no_keyframe() {
    let t0 = crate::clock::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut s = MediaSession::new(t0, "t".into());
    let a = s.add_leg(t0, video_params(4000, Via::Info));
    let b = s.add_leg(t0, video_params(5000, Via::Info));
    s.bridge(a, b);
    let mut out = Vec::new();
    s.on_tick(t0, &mut out);
    frame(&mut s, ms(10), a, (1, 0, 42, true), &mut out);
    frame(&mut s, ms(10), b, (1, 0, 43, true), &mut out);
    out.clear();
    // The same SDP again (RFC 4028 refresh): nothing asked.
    s.update_leg(ms(1000), a, video_params(4000, Via::Info));
    for t in (1000..2000).step_by(20) {
        s.on_tick(ms(t), &mut out);
    }
    assert!(fast_updates(&out).is_empty(), "{out:?}");
    // The leg now takes PLI (a new via, the same addresses): both ends asked, a by PLI
    // once its SSRC is known (it is).
    s.update_leg(ms(2000), a, video_params(4000, Via::Pli));
    s.on_tick(ms(2000), &mut out);
    assert_eq!(fast_updates(&out), vec![b]);
    assert_eq!(video_sends(&out, a).len(), 1, "a PLI to a");
}
