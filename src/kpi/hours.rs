//! Time counted only while a queue is open (the business-hours variants).

use crate::dialplan::model::Hours;

/// At most this many days are walked (a reply a year later counts its first year).
const MAX_DAYS: i64 = 400;

/// Milliseconds between `from` and `to` (Unix ms) during which `h` is open: each day's
/// open intervals in its time zone (holidays closed; a day that skips or repeats an
/// hour at a DST change counts the hours that exist).
pub fn open_ms(h: &Hours, from: i64, to: i64) -> i64 {
    if to <= from {
        return 0;
    }
    let (Ok(a), Ok(b)) = (
        jiff::Timestamp::from_millisecond(from),
        jiff::Timestamp::from_millisecond(to),
    ) else {
        return 0;
    };
    let first = a.to_zoned(h.tz.clone()).date();
    let last = b.to_zoned(h.tz.clone()).date();
    let mut total = 0;
    let mut day = first;
    for _ in 0..MAX_DAYS {
        if day > last {
            break;
        }
        if !h.holidays.contains(&day) {
            let wd = day.weekday().to_monday_zero_offset() as usize;
            for &(s, e) in &h.week[wd] {
                let (Some(s), Some(e)) = (at_minute(h, day, s), at_minute(h, day, e)) else {
                    continue;
                };
                let (s, e) = (s.max(from), e.min(to));
                total += (e - s).max(0);
            }
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    total
}

/// `minute` minutes after the start of `day` in the schedule's zone (1440: the next
/// day's start), as Unix ms.
fn at_minute(h: &Hours, day: jiff::civil::Date, minute: u16) -> Option<i64> {
    let (day, minute) = if minute >= 24 * 60 {
        (day.tomorrow().ok()?, minute - 24 * 60)
    } else {
        (day, minute)
    };
    let t = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    Some(t.to_zoned(h.tz.clone()).ok()?.timestamp().as_millisecond())
}
