//! Media benchmarks: RTP relay through a bridged media session (same codec and
//! transcoding), a browser leg's SRTP both ways, G.711 transcoding and in-band DTMF
//! detection.
//! Run: `cargo bench --bench media`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use omnigate::media::dtmf::GoertzelDetector;
use omnigate::media::g711;
use std::hint::black_box;

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("g711");
    // One 20 ms packet: 160 samples.
    let ulaw: Vec<u8> = (0..160u32).map(|i| (i * 37 % 256) as u8).collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("µ-law -> A-law, one 20 ms packet", |b| {
        let mut buf = ulaw.clone();
        b.iter(|| {
            buf.copy_from_slice(&ulaw);
            g711::ulaw_to_alaw(black_box(&mut buf));
        })
    });
    g.bench_function("decode µ-law, one 20 ms packet", |b| {
        let mut out = Vec::with_capacity(160);
        b.iter(|| g711::decode_ulaw(black_box(&ulaw), &mut out))
    });
    g.finish();
}

fn dtmf(c: &mut Criterion) {
    let mut g = c.benchmark_group("dtmf");
    // One second of 8 kHz speech-band noise per iteration.
    let mut seed = 1u64;
    let second: Vec<i16> = (0..8000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 8000) as i16 - 4000
        })
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("Goertzel detection, one channel-second", |b| {
        let mut d = GoertzelDetector::new();
        b.iter(|| black_box(d.push(black_box(&second))))
    });
    g.finish();
}

fn relay(c: &mut Criterion) {
    use bytes::Bytes;
    use omnigate::media::session::{LegParams, MediaSession};
    use omnigate::sdp::{Codec, Direction};
    use rtc::rtp::{header::Header, packet::Packet};
    let mut g = c.benchmark_group("relay");
    let params = |codec: Codec, port: u16| LegParams {
        codec,
        pt: codec.pt(),
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: Direction::SendRecv,
        remote_rtp: Some(([127, 0, 0, 1], port).into()),
        remote_rtcp: None,
        rtcp_mux: false,
        video: None,
    };
    let from: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
    for (name, other) in [
        ("same codec (no decoding)", Codec::Pcmu),
        ("µ-law -> A-law (transcoding)", Codec::Pcma),
    ] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("one RTP packet in, one out: {name}"), |b| {
            let now = omnigate::clock::now();
            let mut s = MediaSession::new(now, "bench".into());
            let a = s.add_leg(now, params(Codec::Pcmu, 4000));
            let bl = s.add_leg(now, params(other, 5000));
            s.bridge(a, bl);
            let mut out = Vec::with_capacity(4);
            let mut seq = 0u16;
            b.iter(|| {
                seq = seq.wrapping_add(1);
                let p = Packet {
                    header: Header {
                        version: 2,
                        payload_type: 0,
                        sequence_number: seq,
                        timestamp: seq as u32 * 160,
                        ssrc: 7,
                        ..Default::default()
                    },
                    payload: Bytes::from_static(&[0x55; 160]),
                };
                let data = omnigate::media::rtp::write(&p);
                s.on_rtp(now, a, from, data, &mut out);
                black_box(out.pop());
                out.clear();
            })
        });
    }
    g.finish();
}

/// A browser leg (rtc 0.21.1, DTLS-SRTP connected to a simulated browser in memory):
/// what one 20 ms packet costs each way, interceptors (RTCP reports, NACK) included.
fn browser_leg(c: &mut Criterion) {
    use omnigate::sdp::Codec;
    use omnigate::webrtc::sim::{connected, rtp};
    use omnigate::webrtc::WebOut;
    use std::time::{Duration, Instant};
    let mut g = c.benchmark_group("browser leg");
    g.throughput(Throughput::Elements(1));
    g.bench_function("to the browser: SRTP-protect one RTP packet", |b| {
        let (_browser, mut leg, now) = connected(omnigate::clock::now(), Codec::Pcmu);
        let mut out = Vec::with_capacity(4);
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            leg.write_rtp(now, &rtp(seq, 0, &[0x55; 160]));
            leg.drain(&mut out);
            assert!(matches!(out.first(), Some(WebOut::Transmit(..))));
            black_box(&out);
            out.clear();
        })
    });
    g.bench_function("from the browser: SRTP-unprotect one RTP packet", |b| {
        let (mut browser, mut leg, now) = connected(omnigate::clock::now(), Codec::Pcmu);
        let mut seq = 0u16;
        let (mut wire, mut out) = (Vec::new(), Vec::with_capacity(4));
        // The browser's packets are protected outside the timed part, in batches.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(10_000);
                left -= n;
                for _ in 0..n {
                    seq = seq.wrapping_add(1);
                    browser.send_rtp(now, &rtp(seq, 0, &[0x11; 160]));
                }
                browser.transmit(&mut wire);
                #[allow(clippy::disallowed_methods)] // criterion wants wall time here
                let t = Instant::now();
                for d in wire.drain(..) {
                    leg.handle_read(now, browser.addr, d);
                    leg.drain(&mut out);
                    assert!(out.iter().any(|o| matches!(o, WebOut::Rtp(_))));
                    black_box(&out);
                    out.clear();
                }
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, relay, browser_leg, codecs, dtmf);
criterion_main!(benches);
