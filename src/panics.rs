//! Panics are bugs; one must cost one interaction, never the process. tokio catches a
//! panic at the task that raised it, so an actor that panics is dropped without its
//! `stopped()`: each actor that owns work tells apart a clean stop from that (a flag
//! set in `stopped()`) and, in its `Drop`, ends or hands over its own interaction. This
//! hook logs the panic as an error and remembers its message on the thread, so the
//! actor's `Drop` (which runs on the same thread right after) can say what happened.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Panics since start-up (`omnigate_panics_total`).
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// How many panics there have been since start-up (each one contained, or the
/// process would be gone).
pub fn total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Logs every panic through `tracing` (with the thread and the place) and keeps its
/// message for [`take_recent`]; the hook before it (Rust's: the message and, with
/// `RUST_BACKTRACE`, the backtrace on stderr) still runs.
pub fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        TOTAL.fetch_add(1, Ordering::Relaxed);
        tracing::error!(%thread, %at, "panic: {msg}");
        LAST.with(|l| *l.borrow_mut() = Some(format!("{msg} at {at}")));
        previous(info);
    }));
}

/// The message of the latest panic on this thread, once.
pub fn take_recent() -> Option<String> {
    LAST.with(|l| l.borrow_mut().take())
}

/// Why an actor went without a clean stop, for its log line.
pub fn reason() -> String {
    take_recent().unwrap_or_else(|| "stopped without finishing (panic or shutdown)".into())
}

/// Runs `f`, containing a panic: `None` when it panicked (the hook has logged it).
/// For drivers whose state outlives one input (the SIP core): the input is lost, the
/// rest goes on. `RateLimit` decides when failures come too fast to go on.
pub fn contain<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}
