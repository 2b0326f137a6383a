//! The post-contact survey on a messaging channel (WhatsApp, SMS, an open channel),
//! sans-IO: when a thread an agent handled ends, the customer is asked one question
//! on the same channel ("reply with a number from 1 to 5"); their next message, if
//! it is an answer, is the interaction's survey answer and opens nothing new; any
//! other message is a new contact as usual (the question lapses).

use crate::kpi::event::Metric;
use serde::Deserialize;

/// `[[channel]] survey = { metric, question, thanks, within_hours }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyConfig {
    /// `csat` (1-5), `nps` (0-10) or `ces` (1-7).
    #[serde(default = "default_metric")]
    pub metric: String,
    /// What the customer is asked (say which numbers to reply with).
    pub question: String,
    /// Sent after an answer (empty: nothing).
    #[serde(default)]
    pub thanks: String,
    /// How long the question waits for its answer (1-168 hours).
    #[serde(default = "default_within")]
    pub within_hours: u32,
}

fn default_metric() -> String {
    "csat".into()
}

fn default_within() -> u32 {
    24
}

/// The longest question or thanks (an SMS of ten segments).
pub const MAX_TEXT: usize = 1600;

/// The longest answer taken as one: a score and a short comment. A longer message is
/// something else to say, so it is a new contact.
pub const MAX_ANSWER: usize = 500;

impl SurveyConfig {
    pub fn metric(&self) -> Metric {
        Metric::from_name(Some(&self.metric)).unwrap_or(Metric::Csat)
    }

    /// What is wrong with it, as (key, value, reason).
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        if Metric::from_name(Some(&self.metric)).is_none() {
            return Some((
                "survey.metric",
                self.metric.clone(),
                "one of csat (1-5), nps (0-10), ces (1-7)".into(),
            ));
        }
        for (key, text, empty_ok) in [
            ("survey.question", &self.question, false),
            ("survey.thanks", &self.thanks, true),
        ] {
            if (!empty_ok && text.trim().is_empty()) || text.chars().count() > MAX_TEXT {
                return Some((
                    key,
                    text.chars().take(40).collect(),
                    format!("1 to {MAX_TEXT} characters"),
                ));
            }
        }
        if !(1..=168).contains(&self.within_hours) {
            return Some((
                "survey.within_hours",
                self.within_hours.to_string(),
                "1 to 168 hours".into(),
            ));
        }
        None
    }

    /// How long the question waits, in ms.
    pub fn within_ms(&self) -> i64 {
        i64::from(self.within_hours) * 3_600_000
    }
}

/// Whether a thread that just ended asks its survey: it ended by its agent (not by
/// the customer leaving, an abandonment or a failure), an agent had it, the account
/// can send, and, on WhatsApp, the customer's 24-hour window is still open (a
/// free-form question may go only inside it: `None` for other channels).
pub fn should_ask(
    ended_by: &str,
    had_agent: bool,
    can_send: bool,
    window_open: Option<bool>,
) -> bool {
    ended_by == "agent" && had_agent && can_send && window_open != Some(false)
}

/// The answer in a customer's reply to the question of `metric`: (score, comment),
/// or `None` if the message is not one (then it is a new contact). Taken: a number
/// in the metric's range at the start (`4`, `4/5`, `4 - quick and kind`, `10!`), a
/// keycap emoji (`4️⃣`, `🔟`), or for CSAT a row of stars (`⭐⭐⭐⭐`); a comment may
/// follow. Not taken: a number out of range or with more digits (`45`, `1234 is my
/// order`), a decimal (`4.5`), text first, a message over [`MAX_ANSWER`] characters.
pub fn answer(metric: Metric, text: &str) -> Option<(i64, String)> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_ANSWER {
        return None;
    }
    let (score, rest) = leading_score(metric, t)?;
    if !metric.range().contains(&score) {
        return None;
    }
    // "4/5": the scale repeated is no comment.
    let max = *metric.range().end();
    let rest = rest
        .strip_prefix(&format!("/{max}"))
        .filter(|r| !r.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(rest);
    let comment = rest.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '-' | ':' | ',' | '.' | '!' | ')' | '–' | '—')
    });
    Some((score, comment.trim_end().to_string()))
}

/// The score a reply starts with and what follows it.
fn leading_score(metric: Metric, t: &str) -> Option<(i64, &str)> {
    // 🔟 (keycap ten).
    if let Some(rest) = t.strip_prefix('\u{1F51F}') {
        return Some((10, rest));
    }
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        let (n, rest) = t.split_at(digits);
        // A keycap: the digit, an optional variation selector, the enclosing keycap.
        let keycap = rest
            .strip_prefix('\u{FE0F}')
            .unwrap_or(rest)
            .strip_prefix('\u{20E3}');
        if let Some(rest) = keycap {
            return if digits == 1 {
                Some((n.parse().ok()?, rest))
            } else {
                None
            };
        }
        // No leading zero, at most two digits, not a decimal (4.5, 4,5).
        let mut after = rest.chars();
        let decimal = matches!(after.next(), Some('.' | ','))
            && after.next().is_some_and(|c| c.is_ascii_digit());
        if digits > 2 || (digits == 2 && n.starts_with('0')) || decimal {
            return None;
        }
        return Some((n.parse().ok()?, rest));
    }
    if metric == Metric::Csat {
        let rest = t.trim_start_matches(['⭐', '★', '\u{FE0F}', ' ']);
        let stars = t[..t.len() - rest.len()]
            .chars()
            .filter(|c| matches!(c, '⭐' | '★'))
            .count();
        if stars > 0 {
            return Some((stars as i64, rest));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_starts_with_a_score_in_range_is_an_answer_with_its_comment() {
        let csat = |t| answer(Metric::Csat, t);
        let a = |n: i64, c: &str| Some((n, c.to_string()));
        assert_eq!(csat("5"), a(5, ""));
        assert_eq!(csat("  4 \n"), a(4, ""));
        assert_eq!(csat("4/5"), a(4, ""));
        assert_eq!(csat("4/5 fast"), a(4, "fast"));
        assert_eq!(csat("3 - slow but kind"), a(3, "slow but kind"));
        assert_eq!(csat("2: still broken"), a(2, "still broken"));
        assert_eq!(csat("5!"), a(5, ""));
        assert_eq!(csat("5. Gracias"), a(5, "Gracias"));
        assert_eq!(csat("4️⃣"), a(4, ""));
        assert_eq!(csat("4\u{20E3}"), a(4, ""));
        assert_eq!(csat("⭐⭐⭐⭐"), a(4, ""));
        assert_eq!(csat("⭐️⭐️⭐️ ok"), a(3, "ok"));
        assert_eq!(csat("★★★★★"), a(5, ""));
        assert_eq!(answer(Metric::Nps, "10"), a(10, ""));
        assert_eq!(answer(Metric::Nps, "0"), a(0, ""));
        assert_eq!(answer(Metric::Nps, "🔟 great"), a(10, "great"));
        assert_eq!(answer(Metric::Nps, "9/10"), a(9, ""));
        assert_eq!(answer(Metric::Ces, "7"), a(7, ""));
    }

    #[test]
    fn anything_else_is_a_new_contact_not_an_answer() {
        let csat = |t| answer(Metric::Csat, t);
        for t in [
            "",
            "   ",
            "0",
            "6",
            "45",
            "05",
            "1234 is my order",
            "4.5",
            "4,5",
            "thanks!",
            "my order 5 never came",
            "Hola",
            "10",
            "⭐⭐⭐⭐⭐⭐",
        ] {
            assert_eq!(csat(t), None, "{t:?}");
        }
        assert_eq!(answer(Metric::Nps, "11"), None);
        assert_eq!(answer(Metric::Nps, "⭐⭐⭐"), None, "stars are CSAT's");
        assert_eq!(answer(Metric::Ces, "8"), None);
        assert_eq!(answer(Metric::Ces, "0"), None);
        let long = format!("5 {}", "x".repeat(MAX_ANSWER));
        assert_eq!(csat(&long), None, "a long message is something to say");
        assert_eq!(csat("4/50"), Some((4, "/50".into())), "not the scale: kept");
    }

    #[test]
    fn only_a_thread_its_agent_ended_asks_and_only_where_it_may_be_sent() {
        assert!(should_ask("agent", true, true, None));
        assert!(should_ask("agent", true, true, Some(true)));
        assert!(
            !should_ask("agent", true, true, Some(false)),
            "window closed"
        );
        assert!(!should_ask("agent", true, false, None), "cannot send");
        assert!(!should_ask("agent", false, true, None), "no agent had it");
        for by in ["customer", "abandoned", "system"] {
            assert!(!should_ask(by, true, true, None), "{by}");
        }
    }

    #[test]
    fn a_survey_is_checked_where_it_is_configured() {
        let ok = SurveyConfig {
            metric: "csat".into(),
            question: "Rate us 1-5".into(),
            thanks: String::new(),
            within_hours: 24,
        };
        assert_eq!(ok.problem(), None);
        assert_eq!(ok.within_ms(), 86_400_000);
        let bad = |f: fn(&mut SurveyConfig)| {
            let mut s = ok.clone();
            f(&mut s);
            s.problem().map(|p| p.0)
        };
        assert_eq!(bad(|s| s.metric = "nsp".into()), Some("survey.metric"));
        assert_eq!(bad(|s| s.question = " ".into()), Some("survey.question"));
        assert_eq!(bad(|s| s.thanks = "x".repeat(1601)), Some("survey.thanks"));
        assert_eq!(bad(|s| s.within_hours = 0), Some("survey.within_hours"));
        assert_eq!(bad(|s| s.within_hours = 169), Some("survey.within_hours"));
    }
}
