//! Personal data in logs: caller numbers, user names and credentials go through
//! [`Redacted`], which prints a masked form unless redaction was switched off at start-up
//! (`--log-personal-data`, for debugging on a lab machine).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static SHOW: AtomicBool = AtomicBool::new(false);

/// Switches redaction off (true) or on (false) for the whole process.
pub fn show_personal_data(show: bool) {
    SHOW.store(show, Ordering::Relaxed);
}

/// Wraps a value that must not reach the logs in clear.
pub struct Redacted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if SHOW.load(Ordering::Relaxed) {
            return self.0.fmt(f);
        }
        let s = self.0.to_string();
        let n = s.chars().count();
        // Keep the last two characters of longer values, so calls can be told apart.
        if n > 6 {
            let tail: String = s.chars().skip(n - 2).collect();
            write!(f, "***{tail}")
        } else {
            f.write_str("***")
        }
    }
}

impl<T: fmt::Display> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_by_default() {
        assert_eq!(Redacted("+15551234567").to_string(), "***67");
        assert_eq!(Redacted("bob").to_string(), "***");
    }
}
