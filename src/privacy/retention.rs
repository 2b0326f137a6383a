//! Retention (pure): how long each kind of data is kept (`[retention]`), the instants
//! before which each kind has expired at a given time, and when the daily job runs.
//! The store deletes what is older (`Store::apply_retention`), leaving alone every
//! case under a legal hold; the centre deletes the files and audits the run.

use std::time::Duration;

/// How long each kind of data is kept; `None`: for ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Call recordings (WAV files), by the call's start.
    pub recordings: Option<Duration>,
    /// Voicemail files, by when they were left.
    pub voicemail: Option<Duration>,
    /// What customers and agents wrote (chat, WhatsApp, SMS and e-mail text on the
    /// timelines), by when it was written: replaced by a marker.
    pub messages: Option<Duration>,
    /// Mail sources (headers, attachments) kept with each e-mail, by its arrival.
    pub raw_mail: Option<Duration>,
    /// What the bot kept of a conversation it handed off (its summary, with the
    /// customer's words), by the hand-off; the bot's messages are `messages`.
    pub bot_logs: Option<Duration>,
}

/// The instants (Unix ms) before which each kind has expired; `None`: kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cutoffs {
    pub recordings: Option<i64>,
    pub voicemail: Option<i64>,
    pub messages: Option<i64>,
    pub raw_mail: Option<i64>,
    pub bot_logs: Option<i64>,
}

impl Policy {
    /// Reads `[retention]`'s durations (`recordings`, `voicemail`, `messages`,
    /// `raw_mail`, `bot_logs`, each `""` for ever); the first bad one as (key,
    /// reason).
    pub fn parse(
        recordings: &str,
        voicemail: &str,
        messages: &str,
        raw_mail: &str,
        bot_logs: &str,
    ) -> Result<Policy, (&'static str, String)> {
        let one = |key: &'static str, v: &str| parse_keep(v).map_err(|e| (key, e));
        Ok(Policy {
            recordings: one("recordings", recordings)?,
            voicemail: one("voicemail", voicemail)?,
            messages: one("messages", messages)?,
            raw_mail: one("raw_mail", raw_mail)?,
            bot_logs: one("bot_logs", bot_logs)?,
        })
    }

    /// Whether anything expires at all.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// What has expired at `now` (Unix ms).
    pub fn cutoffs(&self, now: i64) -> Cutoffs {
        let before = |d: Option<Duration>| d.map(|d| now.saturating_sub(d.as_millis() as i64));
        Cutoffs {
            recordings: before(self.recordings),
            voicemail: before(self.voicemail),
            messages: before(self.messages),
            raw_mail: before(self.raw_mail),
            bot_logs: before(self.bot_logs),
        }
    }
}

/// Longest retention that can be written: 100 years.
const MAX_DAYS: u64 = 36_500;

/// `365d`, `12h`, `30m`, `90s`, `500ms` (or a combination such as `1h30m`); `""`:
/// kept for ever. Zero is refused (it would delete everything as it is made).
pub fn parse_keep(t: &str) -> Result<Option<Duration>, String> {
    let t = t.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let d = match t.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .filter(|d| *d <= MAX_DAYS)
            .map(|d| Duration::from_secs(d * 86_400)),
        _ => crate::dialplan::decode::parse_duration(t),
    };
    match d {
        Some(d) if !d.is_zero() => Ok(Some(d)),
        Some(_) => Err(format!("\"{t}\" keeps nothing: leave it empty to keep for ever, or give a length such as \"90d\"")),
        None => Err(format!(
            "\"{t}\" is not a length of time (such as \"365d\", \"12h\", \"30m\"; at most {MAX_DAYS}d)"
        )),
    }
}

/// `HH:MM` (UTC) → minutes after midnight.
pub fn parse_run_at(t: &str) -> Result<u32, String> {
    let bad = || format!("\"{t}\" is not a time of day as HH:MM (UTC)");
    let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || t.trim().len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The daily job's schedule: once shortly after the node starts (a node that was
/// down at the hour catches up), then every day at `run_at` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    run_at_min: u32,
    next: i64,
}

/// The first run waits this long after start-up (the node settles first).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

const DAY_MS: i64 = 86_400_000;

impl Schedule {
    /// Started at `now` (Unix ms), running daily at `run_at_min` minutes after
    /// midnight UTC.
    pub fn new(now: i64, run_at_min: u32) -> Schedule {
        Schedule {
            run_at_min,
            next: now + FIRST_RUN_AFTER.as_millis() as i64,
        }
    }

    /// When the job runs next (Unix ms).
    pub fn next(&self) -> i64 {
        self.next
    }

    /// Whether the job is due at `now`; if it is, the next run is the first `run_at`
    /// after `now` (a late run does not bring on a second one).
    pub fn due(&mut self, now: i64) -> bool {
        if now < self.next {
            return false;
        }
        let at = self.run_at_min as i64 * 60_000;
        let today = now - now.rem_euclid(DAY_MS) + at;
        self.next = if today > now { today } else { today + DAY_MS };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn lengths_of_time_are_read_or_refused_with_the_reason() {
        let d = |s| parse_keep(s).unwrap();
        assert_eq!(d(""), None);
        assert_eq!(d("90d"), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(d("12h"), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        for bad in ["0d", "0", "forever", "d", "-3d", "36501d", "5y"] {
            assert!(parse_keep(bad).is_err(), "{bad}");
        }
        assert!(parse_keep("0d").unwrap_err().contains("keeps nothing"));
        let e = Policy::parse("", "30d", "a week", "", "").unwrap_err();
        assert_eq!(e.0, "messages");
        assert!(e.1.contains("\"a week\""), "{}", e.1);
        assert_eq!(parse_run_at("03:00"), Ok(180));
        assert_eq!(parse_run_at("23:59"), Ok(1439));
        for bad in ["3:00", "24:00", "03:60", "noon", "03-00"] {
            assert!(parse_run_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_kind_expires_at_its_own_cutoff_and_unset_kinds_never() {
        let p = Policy::parse("30d", "", "1h", "", "").unwrap();
        let now = 100 * 24 * H;
        let c = p.cutoffs(now);
        assert_eq!(c.recordings, Some(now - 30 * 24 * H));
        assert_eq!(c.messages, Some(now - H));
        assert_eq!((c.voicemail, c.raw_mail), (None, None));
        assert!(Policy::default().is_empty() && !p.is_empty());
    }

    #[test]
    fn the_job_runs_after_start_then_daily_at_its_hour_on_a_simulated_clock() {
        // Started at 10:00 UTC on day 5, running at 03:00.
        let start = 5 * 24 * H + 10 * H;
        let mut s = Schedule::new(start, 180);
        assert!(!s.due(start));
        assert!(!s.due(start + 59_999));
        assert!(s.due(start + 60_000), "a minute after start");
        assert_eq!(s.next(), 6 * 24 * H + 3 * H, "tomorrow 03:00");
        assert!(!s.due(6 * 24 * H + 3 * H - 1));
        // Late (the node was busy): one run, and the next is the day after.
        assert!(s.due(6 * 24 * H + 5 * H));
        assert!(!s.due(6 * 24 * H + 5 * H));
        assert_eq!(s.next(), 7 * 24 * H + 3 * H);
        // Exactly at the hour: the next is a day later.
        assert!(s.due(7 * 24 * H + 3 * H));
        assert_eq!(s.next(), 8 * 24 * H + 3 * H);
        // Over 30 simulated days, an hour at a time: the first run, then one a day.
        let mut s = Schedule::new(0, 0);
        let runs = (1..=30 * 24).filter(|h| s.due(h * H)).count();
        assert_eq!(runs, 1 + 30);
    }
}
