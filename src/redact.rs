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

/// A URL built from a call's variables, for the logs: its origin only (scheme, host,
/// port), the path and query masked, unless personal data is shown.
pub struct Url<'a>(pub &'a str);

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if SHOW.load(Ordering::Relaxed) {
            return f.write_str(self.0);
        }
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", self.0));
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (host, tail) = rest.split_at(end);
        let host = host.rsplit('@').next().unwrap_or(host); // never userinfo
        if scheme.is_empty() {
            f.write_str("***")
        } else if tail.is_empty() {
            write!(f, "{scheme}://{host}")
        } else {
            write!(f, "{scheme}://{host}/***")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_origin_only() {
        assert_eq!(
            Url("https://crm.example:8443/customers/%2B15551234567?pin=1234").to_string(),
            "https://crm.example:8443/***"
        );
        assert_eq!(
            Url("http://user:pw@crm.example").to_string(),
            "http://crm.example"
        );
    }

    #[test]
    fn masks_by_default() {
        assert_eq!(Redacted("+15551234567").to_string(), "***67");
        assert_eq!(Redacted("bob").to_string(), "***");
    }
}
