//! E-mail import: a mailbox holding N messages (10,000 by default: 2,000 customers
//! writing 5 each) in a real Dovecot on 127.0.0.1, imported by the gateway's fetcher
//! (`Centre::start_mail`: headers first, then each body over IMAP, parsed, threaded,
//! stored on a real SQLite file, each customer's thread queued) until the mailbox's
//! count says all are in. Prints messages imported per second and the resident
//! memory it took (the fetcher, and the open threads it made).
//!
//! Run: `cargo bench --bench mail` (`MESSAGES=N` to change). Under `cargo test` it
//! runs 100 as a smoke test.

#[path = "../tests/e2e/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
mod support;

use omnigate::centre::Centre;
use omnigate::config::{Config, MailboxConfig, Security};
use std::time::{Duration, Instant};

/// Writes `n` messages into `user`'s inbox as Dovecot's Maildir (a mailbox that
/// filled up while no one read it).
fn fill(dv: &dovecot::Dovecot, user: &str, n: usize) {
    let new = dv.dir.path().join("mail").join(user).join("new");
    std::fs::create_dir_all(&new).unwrap();
    for i in 0..n {
        let c = i % (n / 5).max(1);
        let body = format!(
            "From: Customer {c} <c{c}@example.com>\r\nTo: support@acme.test\r\nSubject: Order {c}\r\nMessage-ID: <b{i}@example.com>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nHello, this is message {i} about order {c}.\r\n\r\n> earlier text\r\n-- \r\nCustomer {c}\r\n"
        );
        std::fs::write(new.join(format!("{i}.bench:2,")), body).unwrap();
    }
    let ok = std::process::Command::new("chown")
        .args(["-R", "mail:mail"])
        .arg(dv.dir.path().join("mail"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown the Maildir");
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 10_000 } else { 100 });
    let dv = dovecot::Dovecot::start(27960, 27961);
    fill(&dv, "support", n);
    let dir = tempfile::tempdir().unwrap();
    let sys = support::system();
    sys.block_on(async move {
        let store = omnigate::store::Store::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        let mut cfg = Config::default();
        cfg.chat.max_open = n + 1_000;
        cfg.mailboxes.push(MailboxConfig {
            name: "support".into(),
            address: "support@acme.test".into(),
            imap: "127.0.0.1:27960".into(),
            imap_security: Security::None,
            username: "support".into(),
            password: "support-pw".into(),
            smtp: "127.0.0.1:27962".into(),
            smtp_security: Security::None,
            smtp_username: String::new(),
            smtp_password: String::new(),
            queue: "support".into(),
            priority: 5,
            folder: "INBOX".into(),
            after_import: "keep".into(),
            poll_secs: 60,
            max_bytes: 25 << 20,
            import_attempts: 3,
            send_attempts: 5,
            survey: None,
            bot: false,
            send_timeout_secs: 30,
        });
        let centre = Centre::start(&cfg, store).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = support::rss_bytes();
        #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
        let t0 = Instant::now();
        centre.start_mail();
        let imported = || {
            centre
                .mail_statuses()
                .first()
                .map(|(_, s)| s.imported + s.quarantined)
                .unwrap_or(0)
        };
        while imported() < n as u64 {
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "only {} of {n} imported: {:?}",
                imported(),
                centre.mail_statuses()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = support::rss_bytes();
        let status = centre.mail_statuses()[0].1.clone();
        assert_eq!(status.quarantined, 0, "{status:?}");
        println!(
            "imported {n} messages ({} customers) from one mailbox in {secs:.2} s: {:.0} messages/s",
            n / 5,
            n as f64 / secs
        );
        println!(
            "resident memory: {:.1} MiB before, {:.1} MiB after ({:.0} bytes per message, the open threads included)",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / n as f64
        );
    });
    drop(dv);
}
