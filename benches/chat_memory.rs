//! Memory per idle web chat: N customers open a chat (a real SQLite store, the real
//! `Centre`, `ChatActor`s spread over Arbiters, each queued in the `RouterActor` with
//! its greeting in its log) and nobody answers. Prints the resident memory the chats
//! added, per chat and for 100,000.
//!
//! Run: `cargo bench --bench chat_memory` (100,000 chats; `CHATS=N` to change).
//! Under `cargo test` it runs 2,000 chats as a smoke test.

use omnigate::centre::Centre;
use omnigate::config::Config;
use std::time::Instant;

mod support;
use support::rss_bytes;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("CHATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let dir = tempfile::tempdir().unwrap();
    let sys = support::system();
    sys.block_on(async move {
        let store = omnigate::store::Store::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        // The node's caps on open and waiting chats ([chat] max_open, max_waiting) are
        // lifted: this measures them.
        let mut cfg = Config::default();
        cfg.chat.max_open = n + 1_000;
        cfg.chat.max_waiting = n + 1_000;
        let centre = Centre::start(&cfg, store).await.unwrap();
        // Warm up allocators and the store with a few chats first.
        for i in 0..100 {
            centre
                .start_chat("Warm Up", &format!("warm{i}@example.com"))
                .await
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let before = rss_bytes();
        #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
        let t0 = Instant::now();
        for i in 0..n {
            centre
                .start_chat(&format!("Customer {i}"), &format!("c{i}@example.com"))
                .await
                .unwrap();
        }
        let opened = t0.elapsed();
        // Let every actor start (write its queue entry, join the router).
        let waiting = loop {
            let q = centre
                .router()
                .send(omnigate::actors::router::QueueList)
                .await
                .unwrap();
            let w: u64 = q.iter().map(|q| q["waiting"].as_u64().unwrap_or(0)).sum();
            if w >= (n + 100) as u64 {
                break w;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let after = rss_bytes();
        let per = (after.saturating_sub(before)) as f64 / n as f64;
        println!(
            "idle chats: {n} opened in {:.1} s ({:.0}/s), {waiting} waiting in the router",
            opened.as_secs_f64(),
            n as f64 / opened.as_secs_f64()
        );
        println!(
            "resident memory: {:.1} MiB before, {:.1} MiB after: {:.0} bytes per idle chat, {:.0} MiB per 100,000",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per,
            per * 100_000.0 / 1048576.0
        );
        assert!(
            per * 100_000.0 < 1024.0 * 1048576.0,
            "100,000 idle chats would need more than 1 GiB"
        );
    });
}
