//! Customers' requests under data-protection law (pure): what a request may say, when
//! its answer is due, and where it stands at a given time. Ecuador's LOPDP gives 15
//! days to answer access, rectification, erasure and objection requests; the GDPR's
//! month is longer, so the 15 days serve both.

/// Days to answer a request.
pub const DUE_DAYS: i64 = 15;
const DAY_MS: i64 = 86_400_000;

/// What a customer asks for.
pub const KINDS: [&str; 5] = [
    "access",
    "rectification",
    "erasure",
    "objection",
    "portability",
];

/// A request as recorded (`POST /api/privacy/requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub customer: i64,
    pub kind: &'static str,
    /// When the customer made it (Unix ms): the deadline counts from then.
    pub received_at: i64,
    pub note: String,
}

/// The longest note kept with a request or its answer.
pub const MAX_NOTE: usize = 2000;

impl NewRequest {
    /// Reads `{"customer": ID, "kind": K, "received_at"?: Unix ms (default: now, never
    /// in the future), "note"?: text}` strictly, or says what is wrong.
    pub fn from_json(v: &serde_json::Value, now: i64) -> Result<NewRequest, String> {
        let o = v.as_object().ok_or("the body must be a JSON object")?;
        if let Some(k) = o
            .keys()
            .find(|k| !["customer", "kind", "received_at", "note"].contains(&k.as_str()))
        {
            return Err(format!("unknown field \"{k}\""));
        }
        let customer = o
            .get("customer")
            .and_then(|c| c.as_i64())
            .filter(|c| *c > 0)
            .ok_or("\"customer\" (a customer id) is required")?;
        let kind = o
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| format!("\"kind\" is required: one of {}", KINDS.join(", ")))?;
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| *k == kind)
            .ok_or_else(|| format!("kind \"{kind}\" is not one of {}", KINDS.join(", ")))?;
        let received_at = match o.get("received_at") {
            None => now,
            Some(t) => t
                .as_i64()
                .filter(|t| *t > 0 && *t <= now)
                .ok_or("\"received_at\" must be a time (Unix ms) not in the future")?,
        };
        let note = match o.get("note") {
            None => String::new(),
            Some(n) => n
                .as_str()
                .filter(|n| n.chars().count() <= MAX_NOTE)
                .ok_or_else(|| format!("\"note\" must be text of at most {MAX_NOTE} characters"))?
                .to_string(),
        };
        Ok(NewRequest {
            customer,
            kind,
            received_at,
            note,
        })
    }

    /// When the answer is due (Unix ms).
    pub fn due_at(&self) -> i64 {
        due_at(self.received_at)
    }
}

pub fn due_at(received_at: i64) -> i64 {
    received_at + DUE_DAYS * DAY_MS
}

/// Where a request stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    /// Open past its due time.
    Overdue,
    Answered,
    /// Answered after its due time.
    AnsweredLate,
}

impl State {
    pub fn of(due_at: i64, answered_at: Option<i64>, now: i64) -> State {
        match answered_at {
            Some(a) if a > due_at => State::AnsweredLate,
            Some(_) => State::Answered,
            None if now > due_at => State::Overdue,
            None => State::Open,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Overdue => "overdue",
            State::Answered => "answered",
            State::AnsweredLate => "answered_late",
        }
    }
}

/// Whole days left before `due_at` at `now` (negative once overdue; a part day
/// counts as a day left).
pub fn days_left(due_at: i64, now: i64) -> i64 {
    (due_at - now).div_euclid(DAY_MS) + i64::from((due_at - now).rem_euclid(DAY_MS) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_request_is_read_strictly_and_its_deadline_is_fifteen_days() {
        let r = NewRequest::from_json(&json!({"customer": 7, "kind": "access"}), NOW).unwrap();
        assert_eq!((r.customer, r.kind, r.received_at), (7, "access", NOW));
        assert_eq!(r.due_at() - r.received_at, 15 * DAY_MS);
        let r = NewRequest::from_json(
            &json!({"customer": 7, "kind": "rectification", "received_at": NOW - DAY_MS, "note": "by letter"}),
            NOW,
        )
        .unwrap();
        assert_eq!(
            (r.received_at, r.note.as_str()),
            (NOW - DAY_MS, "by letter")
        );
        for (bad, why) in [
            (json!([]), "JSON object"),
            (json!({"kind": "access"}), "\"customer\""),
            (json!({"customer": 0, "kind": "access"}), "\"customer\""),
            (json!({"customer": 7}), "\"kind\" is required"),
            (
                json!({"customer": 7, "kind": "refund"}),
                "kind \"refund\" is not one of",
            ),
            (
                json!({"customer": 7, "kind": "access", "received_at": NOW + 1}),
                "not in the future",
            ),
            (
                json!({"customer": 7, "kind": "access", "note": "x".repeat(2001)}),
                "at most 2000",
            ),
            (
                json!({"customer": 7, "kind": "access", "by": "me"}),
                "unknown field \"by\"",
            ),
        ] {
            let e = NewRequest::from_json(&bad, NOW).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_request_is_open_then_overdue_and_answered_on_time_or_late() {
        let due = due_at(NOW);
        assert_eq!(State::of(due, None, NOW), State::Open);
        assert_eq!(State::of(due, None, due), State::Open);
        assert_eq!(State::of(due, None, due + 1), State::Overdue);
        assert_eq!(State::of(due, Some(due), due + 5), State::Answered);
        assert_eq!(State::of(due, Some(due + 1), due + 5), State::AnsweredLate);
        assert_eq!(days_left(due, NOW), 15);
        assert_eq!(days_left(due, NOW + 1), 15, "a part day counts");
        assert_eq!(days_left(due, due), 0);
        assert_eq!(days_left(due, due + 1), 0);
        assert_eq!(days_left(due, due + DAY_MS + 1), -1);
    }
}
