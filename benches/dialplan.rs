//! Dialplan benchmarks: loading and checking the demo flow (prompts decoded), a whole
//! simulated call through it, and one key press through the interpreter.
//! Run: `cargo bench --bench dialplan`

use criterion::{criterion_group, criterion_main, Criterion};
use omnigate::dialplan::engine::{CallInfo, Input, Run};
use omnigate::dialplan::model::TestCase;
use omnigate::dialplan::{load_str, FlowSet, LoadOptions};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

fn demo() -> (String, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/demo.yaml");
    (std::fs::read_to_string(&path).unwrap(), path)
}

fn dialplan(c: &mut Criterion) {
    let (text, path) = demo();
    let opts = LoadOptions { tts: false };
    let mut g = c.benchmark_group("dialplan");
    g.bench_function("load and check the demo flow (20 steps, 14 prompts)", |b| {
        b.iter(|| black_box(load_str(black_box(&text), &path, &opts).unwrap()))
    });
    let flow = Arc::new(load_str(&text, &path, &opts).unwrap());
    let set = Arc::new(FlowSet::default());
    let case = TestCase {
        at: Some("2026-11-23T10:00:00-05:00".parse().unwrap()),
        digits: vec!["2".into(), "1234#".into()],
        lookup: [(
            "account:1234".to_string(),
            Some(vec![("tier".to_string(), "gold".to_string())]),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    g.bench_function(
        "simulated call: welcome to the support queue (8 steps)",
        |b| {
            b.iter(|| {
                let r = omnigate::dialplan::sim::simulate(
                    set.clone(),
                    flow.clone(),
                    black_box(&case),
                    None,
                );
                assert_eq!(r.ending, "enqueue support");
            })
        },
    );
    let now: jiff::Timestamp = "2026-11-23T15:00:00Z".parse().unwrap();
    g.bench_function("start a call and press 2 at the menu", |b| {
        b.iter(|| {
            let mut run = Run::new(set.clone(), flow.clone(), &CallInfo::default());
            run.start(now);
            run.handle(now, Input::Digit('2'));
            while let Some(o) = run.poll() {
                black_box(o);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, dialplan);
criterion_main!(benches);
