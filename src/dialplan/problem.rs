//! What the dialplan tools say about a flow: a [`Problem`] at `file:line:column`, the
//! "did you mean" suggestion, and the built-in variables the loader and the checks
//! both know.

use super::yaml::Pos;
use std::path::PathBuf;

/// A problem in a flow file, shown as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn suggest<'a>(word: &str, options: impl IntoIterator<Item = &'a str>) -> String {
    let best = options
        .into_iter()
        .map(|o| (distance(word, o), o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 3))
        .min();
    match best {
        Some((_, o)) => format!("; did you mean `{o}`?"),
        None => String::new(),
    }
}

/// Variables a text flow also has: the channel (`webchat`, `whatsapp`, `sms`,
/// `email`) and the customer's latest message.
pub const TEXT_BUILTINS: &[&str] = &["channel", "message"];

/// Variables every call has.
pub const BUILTINS: &[&str] = &[
    "caller",
    "caller_name",
    "dialled",
    "trunk",
    "call_id",
    "flow",
    "date",
    "time",
    "weekday",
    "now",
];
