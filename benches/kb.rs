//! Knowledge-base benchmarks: loading the demo articles and building the matcher,
//! one customer message decided (the bot's work per message), and an agent's search.
//! Run: `cargo bench --bench kb`

use criterion::{criterion_group, criterion_main, Criterion};
use omnigate::kb::{Decision, Lang, Library};
use std::hint::black_box;
use std::path::PathBuf;

fn kb(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kb");
    let mut g = c.benchmark_group("kb");
    g.bench_function(
        "load the demo (44 articles, 2 languages) and build the matcher",
        |b| {
            b.iter(|| {
                let lib = Library::new(black_box(&dir), 0.5);
                assert!(lib.reload().is_some());
                black_box(lib.matcher());
            })
        },
    );
    let lib = Library::new(&dir, 0.5);
    lib.reload();
    let m = lib.matcher();
    g.bench_function(
        "decide a message, any language (\"Hi, where's my parcel?\")",
        |b| {
            b.iter(|| {
                let d = m.decide(black_box("Hi, where's my parcel?"), None);
                assert!(matches!(d, Decision::Answer(_)));
            })
        },
    );
    g.bench_function("decide a message nothing matches, in Spanish", |b| {
        b.iter(|| {
            let d = m.decide(black_box("mi gato es de color morado"), Some(Lang::Es));
            assert!(matches!(d, Decision::NotFound(_)));
        })
    });
    g.bench_function("an agent's search, 5 hits (\"order\")", |b| {
        b.iter(|| black_box(m.search(black_box("order"), None, 5)))
    });
    g.finish();
}

criterion_group!(benches, kb);
criterion_main!(benches);
