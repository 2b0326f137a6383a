//! The one place that reads the wall clock and the monotonic clock. Sans-IO cores take
//! `now` as an argument; drivers call [`now`] and pass it in.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time for the sans-IO cores.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time for the dialplan engine (business hours, `${time}`).
#[allow(clippy::disallowed_methods)]
pub fn timestamp() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Seconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The current wall-clock time as a 64-bit NTP timestamp (RTCP sender reports).
#[allow(clippy::disallowed_methods)]
pub fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    (secs << 32) | (((d.subsec_nanos() as u64) << 32) / 1_000_000_000)
}

pub fn format_http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {h:02}:{m:02}:{s:02} GMT")
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc1123() {
        assert_eq!(super::format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::format_http_date(1_795_305_600),
            "Sun, 22 Nov 2026 00:00:00 GMT"
        );
        assert!(crate::sip::header::valid_sip_date(
            &super::format_http_date(super::unix_secs())
        ));
    }
}
