//! Media benchmarks: G.711 transcoding and in-band DTMF detection.
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

criterion_group!(benches, codecs, dtmf);
criterion_main!(benches);
