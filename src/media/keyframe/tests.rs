use super::*;

/// A VP8 key frame's first packet: descriptor (S = 1, PID = 0), frame tag with the
/// inverse key-frame bit 0, start code, 640 x 480.
const VP8_KEY: &[u8] = &[
    0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
];
/// A delta frame: the tag's lowest bit is 1 and there is no start code.
const VP8_DELTA: &[u8] = &[0x10, 0x31, 0x06, 0x00, 0x11, 0x22, 0x33];

#[test]
fn vp8_key_and_delta_frames_with_and_without_extensions() {
    assert!(vp8_keyframe(VP8_KEY));
    assert!(!vp8_keyframe(VP8_DELTA));
    // X with a 15-bit picture id, TL0PICIDX and a TID/KEYIDX byte before the tag.
    let mut ext = vec![0x90, 0xe0, 0x80, 0x01, 0x07, 0x20];
    ext.extend_from_slice(&VP8_KEY[1..]);
    assert!(vp8_keyframe(&ext));
    // A 7-bit picture id only.
    let mut short = vec![0x90, 0x80, 0x05];
    short.extend_from_slice(&VP8_KEY[1..]);
    assert!(vp8_keyframe(&short));
    // Not the start of partition 0: a later packet of the key frame.
    let mut later = VP8_KEY.to_vec();
    later[0] = 0x00;
    assert!(!vp8_keyframe(&later));
    let mut other_partition = VP8_KEY.to_vec();
    other_partition[0] = 0x11;
    assert!(!vp8_keyframe(&other_partition));
    // The descriptor, the tag and the start code must all be there (7 bytes).
    for cut in 0..7 {
        assert!(!vp8_keyframe(&VP8_KEY[..cut]), "cut at {cut}");
    }
    assert!(vp8_keyframe(&VP8_KEY[..7]));
    assert!(is_keyframe(Codec::Vp8, VP8_KEY));
}

#[test]
fn h264_idr_and_sps_alone_in_stap_a_and_at_the_start_of_fu_a() {
    // Single NAL units: IDR (5) and SPS (7) start a keyframe; a P slice (1), a PPS
    // (8) or SEI (6) alone do not.
    assert!(h264_keyframe(&[0x65, 0x88, 0x84]));
    assert!(h264_keyframe(&[0x67, 0x42, 0xe0, 0x1f]));
    for t in [0x41u8, 0x68, 0x06] {
        assert!(!h264_keyframe(&[t, 0x9a, 0x00]), "{t:#x}");
    }
    // STAP-A (24) of SPS and PPS, as browsers send before an IDR.
    let stap = [
        0x78, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f, 0x00, 0x02, 0x68, 0xce,
    ];
    assert!(h264_keyframe(&stap));
    // A STAP-A of PPS and SEI only.
    assert!(!h264_keyframe(&[
        0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x06, 0x05
    ]));
    // A STAP-A whose second unit is the IDR.
    assert!(h264_keyframe(&[
        0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88
    ]));
    // Lying sizes end the walk without reading past the packet.
    assert!(!h264_keyframe(&[0x78, 0xff, 0xff, 0x06]));
    assert!(!h264_keyframe(&[0x78, 0x00, 0x00, 0x65]));
    assert!(!h264_keyframe(&[0x78, 0x00, 0x09]));
    // FU-A (28): the first fragment of an IDR; not its middle or end, not a P slice.
    assert!(h264_keyframe(&[0x7c, 0x85, 0x88, 0x80]));
    assert!(!h264_keyframe(&[0x7c, 0x05, 0x11]));
    assert!(!h264_keyframe(&[0x7c, 0x45, 0x11]));
    assert!(!h264_keyframe(&[0x7c, 0x81, 0x9a]));
    assert!(!h264_keyframe(&[0x7c]));
    assert!(!h264_keyframe(&[]));
    assert!(is_keyframe(Codec::H264, &[0x65]));
}

#[test]
fn pli_and_fir_are_read_from_compound_rtcp_and_written_back() {
    // A receiver report (no blocks) then a PLI and a FIR.
    let mut c = vec![0x80, 201, 0x00, 0x01, 0, 0, 0, 9];
    c.extend_from_slice(&pli(0x1111_1111, 0x2222_2222));
    c.extend_from_slice(&fir(0x1111_1111, 0x3333_3333, 7));
    assert_eq!(
        requests(&c),
        [
            Request::Pli {
                sender: 0x1111_1111,
                media: 0x2222_2222
            },
            Request::Fir {
                sender: 0x1111_1111,
                entries: vec![(0x3333_3333, 7)]
            }
        ]
    );
    // RFC 4585 §6.1's layout: V = 2, FMT 1, PT 206, length 2.
    assert_eq!(&pli(1, 2)[..4], &[0x81, 206, 0, 2]);
    assert_eq!(&fir(1, 2, 3)[..4], &[0x84, 206, 0, 4]);
    assert_eq!(
        &fir(1, 2, 3)[8..12],
        &[0, 0, 0, 0],
        "FIR's media source is unused"
    );
    // Truncated or not RTCP: what came before stands, nothing is read past the end.
    let cut = &c[..c.len() - 3];
    assert_eq!(requests(cut).len(), 1);
    assert!(requests(&[0x00, 206, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]).is_empty());
    assert!(requests(&[0x81, 206, 0xff, 0xff]).is_empty());
    // A FIR claiming many entries is read up to the bound.
    let mut big = vec![0x84, 206];
    let n = 40u16;
    big.extend_from_slice(&(2 + 2 * n).to_be_bytes());
    big.extend_from_slice(&[0; 8]);
    for i in 0..n {
        big.extend_from_slice(&(i as u32).to_be_bytes());
        big.extend_from_slice(&[i as u8, 0, 0, 0]);
    }
    let Request::Fir { entries, .. } = &requests(&big)[0] else {
        panic!()
    };
    assert_eq!(entries.len(), MAX_FIR_ENTRIES);
}

#[test]
fn rfc_5168_picture_fast_update_is_built_and_recognised() {
    assert!(is_picture_fast_update(PICTURE_FAST_UPDATE.as_bytes()));
    // As other phones write it: one line, open and close tags.
    assert!(is_picture_fast_update(
        b"<?xml version=\"1.0\"?><media_control><vc_primitive><to_encoder><picture_fast_update></picture_fast_update></to_encoder></vc_primitive></media_control>"
    ));
    // Another primitive, the element outside `to_encoder`, not XML, too long.
    assert!(!is_picture_fast_update(
        b"<media_control><vc_primitive><to_encoder><other/></to_encoder></vc_primitive></media_control>"
    ));
    assert!(!is_picture_fast_update(
        b"<media_control><picture_fast_update/><to_encoder></to_encoder></media_control>"
    ));
    assert!(!is_picture_fast_update(b"picture_fast_update"));
    assert!(!is_picture_fast_update(&[0xff, 0xfe, 0x00]));
    let mut long = PICTURE_FAST_UPDATE.as_bytes().to_vec();
    long.extend(std::iter::repeat_n(b' ', MAX_MEDIA_CONTROL));
    assert!(!is_picture_fast_update(&long));
    assert_eq!(MEDIA_CONTROL, "application/media_control+xml");
}

#[test]
fn the_way_to_ask_follows_what_the_leg_negotiated() {
    assert_eq!(Via::of(true, true), Via::Pli);
    assert_eq!(Via::of(false, true), Via::Fir);
    assert_eq!(Via::of(false, false), Via::Info);
}

fn ms(t0: Instant, n: u64) -> Instant {
    t0 + Duration::from_millis(n)
}

#[test]
fn the_bridge_asks_every_500_ms_until_a_keyframe_comes_for_at_most_3_s() {
    let t0 = crate::clock::now();
    let mut r = Requester::new(Via::Pli);
    assert_eq!(r.deadline(t0), None);
    r.need(t0, Need::Start);
    assert_eq!(r.deadline(t0), Some(t0));
    assert_eq!(r.poll(t0), Some(1));
    assert_eq!(r.poll(ms(t0, 100)), None, "rate-limited");
    assert_eq!(r.deadline(ms(t0, 100)), Some(ms(t0, 500)));
    assert_eq!(r.poll(ms(t0, 500)), Some(2));
    r.keyframe_seen();
    assert_eq!(r.deadline(ms(t0, 600)), None);
    assert_eq!(r.poll(ms(t0, 1000)), None);

    // No keyframe ever: requests at 0, 0.5 ... 2.5 s, then it gives up.
    let mut r = Requester::new(Via::Info);
    r.need(t0, Need::Resume);
    let mut at = vec![];
    let mut now = t0;
    while let Some(d) = r.deadline(now) {
        now = d;
        if r.poll(now).is_some() {
            at.push(now.duration_since(t0).as_millis());
        }
        assert!(now <= ms(t0, 3000), "asked past 3 s");
    }
    assert_eq!(at, [0, 500, 1000, 1500, 2000, 2500]);
    assert_eq!(r.sent, 6);
}

#[test]
fn a_receivers_requests_pass_at_most_every_500_ms_and_are_not_retried() {
    let t0 = crate::clock::now();
    let mut r = Requester::new(Via::Pli);
    r.need(t0, Need::Asked);
    assert_eq!(r.poll(t0), Some(1));
    // A burst of browser PLIs: one more after 500 ms, then nothing.
    for n in [50, 120, 300, 450] {
        r.need(ms(t0, n), Need::Asked);
        assert_eq!(r.poll(ms(t0, n)), None);
    }
    assert_eq!(r.deadline(ms(t0, 450)), Some(ms(t0, 500)));
    assert_eq!(r.poll(ms(t0, 500)), Some(2), "the FIR number moves on");
    assert_eq!(r.deadline(ms(t0, 501)), None);
    assert_eq!(r.poll(ms(t0, 2000)), None);
    // A transfer while a receiver's request waits: retried as the bridge's own.
    r.need(ms(t0, 2000), Need::Transfer);
    assert_eq!(r.poll(ms(t0, 2000)), Some(3));
    assert_eq!(r.poll(ms(t0, 2500)), Some(4));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Hostile payloads and RTCP never panic and never read past their end.
        #[test]
        fn any_bytes_are_safe(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = vp8_keyframe(&b);
            let _ = h264_keyframe(&b);
            let _ = requests(&b);
            let _ = is_picture_fast_update(&b);
        }
    }
}
