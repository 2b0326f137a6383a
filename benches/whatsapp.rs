//! Inbound WhatsApp messages: N customers each write once (a new thread each: the
//! interaction and its customer on a real SQLite file, a `ChatActor` queued in the
//! `RouterActor`), then each writes again on their open thread. Every message goes the
//! webhook's way minus the socket: its `X-Hub-Signature-256` checked over the raw body,
//! the notification parsed, `Centre::channel_inbound` waiting until the thread has
//! stored it (committed, as the 200 would say). 32 notifications in flight at once, as
//! Meta delivers them. Prints messages per second for both rounds and the resident
//! memory per idle thread.
//!
//! Run: `cargo bench --bench whatsapp` (20,000 customers; `THREADS=N` to change).
//! Under `cargo test` it runs 300 as a smoke test.

use futures_util::stream::{self, StreamExt};
use omnigate::centre::Centre;
use omnigate::channels::{signature, whatsapp};
use omnigate::config::Config;
use std::time::Instant;

mod support;
use support::rss_bytes;

fn notification(from: u64, id: &str, ts: u64) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "contacts": [{"profile": {"name": format!("Customer {from}")}, "wa_id": from.to_string()}],
            "messages": [{"from": from.to_string(), "id": id, "timestamp": ts.to_string(),
                "type": "text", "text": {"body": "Hola, where is my order?"}}]
        }}]}]
    })
    .to_string()
}

/// One round: every customer writes once; the messages per second.
async fn round(centre: &Centre, n: u64, round: u32) -> f64 {
    let account = centre.channel("demo-whatsapp").unwrap();
    let now = omnigate::clock::unix_secs();
    let bodies: Vec<(String, String)> = (0..n)
        .map(|i| {
            let b = notification(593_990_000_000 + i, &format!("wamid.{round}.{i}"), now);
            let sig = signature::sign_whatsapp("demo-app-secret", b.as_bytes());
            (b, sig)
        })
        .collect();
    #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
    let t0 = Instant::now();
    stream::iter(bodies)
        .for_each_concurrent(32, |(b, sig)| {
            let account = account.clone();
            async move {
                signature::check_whatsapp(&account.app_secret, Some(&sig), b.as_bytes()).unwrap();
                for e in whatsapp::parse(b.as_bytes()).unwrap() {
                    if let whatsapp::Event::Message(m) = e {
                        centre.channel_inbound(&account, m.into()).await.unwrap();
                    }
                }
            }
        })
        .await;
    n as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 20_000 } else { 300 });
    let dir = tempfile::tempdir().unwrap();
    let sys = support::system();
    sys.block_on(async move {
        let store = omnigate::store::Store::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        // Demo mode brings the demo-whatsapp account; the node's cap on open threads is
        // lifted: this measures them.
        let mut cfg = Config::default();
        cfg.chat.max_open = n as usize + 1_000;
        let centre = Centre::start(&cfg, store).await.unwrap();
        // Warm up allocators and the store.
        round(&centre, 100, 0).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let before = rss_bytes();
        let first = round(&centre, n, 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let after = rss_bytes();
        let second = round(&centre, n, 1).await; // the same ids again: redeliveries
        let third = round(&centre, n, 2).await;
        let per = after.saturating_sub(before) as f64 / n as f64;
        println!("new threads: {n} customers' first messages committed at {first:.0}/s");
        println!("redelivered (same ids, counted once): {second:.0}/s");
        println!("on open threads: {n} second messages committed at {third:.0}/s");
        println!(
            "resident memory: {:.1} MiB before, {:.1} MiB after: {per:.0} bytes per idle thread",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
        );
    });
}
