//! Customers' data held lawfully (GDPR articles 15-20, Ecuador's LOPDP articles 13-15):
//! consent as events, and the erasure of a customer everywhere the centre holds them.
//!
//! What is decided here is pure: what a consent event may say and which one is in
//! force, what of a timeline event survives an erasure (what the KPIs read, nothing
//! personal), and the keyed hash a tombstone keeps instead of an identity or a
//! Message-ID. The store carries it out (`Store::erase_customer`), the centre runs the
//! workflow (preview, confirm, files, proof), the API answers for it.

use crate::channels::signature::{hex, hmac_sha256};

pub mod requests;
pub mod retention;

/// What a consent is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Service,
    Marketing,
    Recording,
    Analytics,
    Bot,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Purpose::Service,
        Purpose::Marketing,
        Purpose::Recording,
        Purpose::Analytics,
        Purpose::Bot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Purpose::Service => "service",
            Purpose::Marketing => "marketing",
            Purpose::Recording => "recording",
            Purpose::Analytics => "analytics",
            Purpose::Bot => "bot",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// Which channel a consent covers (`any`: all of them).
pub const CHANNELS: [&str; 6] = ["any", "voice", "sms", "whatsapp", "email", "chat"];

/// How the centre learnt it.
pub const SOURCES: [&str; 6] = ["ivr", "chat_form", "sms_keyword", "agent", "api", "import"];

/// A consent given or withdrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvent {
    pub purpose: Purpose,
    /// One of [`CHANNELS`].
    pub channel: String,
    pub granted: bool,
    /// One of [`SOURCES`].
    pub source: String,
    /// What proves it: the interaction, the recording offset, the notice's text and
    /// version, the keyword... (a JSON object).
    pub evidence: serde_json::Value,
    /// Who recorded it: an agent's or supervisor's name, `admin`, or `customer`.
    pub actor: String,
}

/// The most evidence a consent event keeps (bytes of JSON).
pub const MAX_EVIDENCE: usize = 4096;

impl ConsentEvent {
    /// Reads a consent event from the API's JSON (`purpose`, `channel`, `granted`,
    /// `source`, `evidence`); the actor is who is asking, never the body.
    pub fn from_json(v: &serde_json::Value, actor: &str) -> Result<ConsentEvent, String> {
        let o = v.as_object().ok_or("the body must be a JSON object")?;
        for k in o.keys() {
            if !["purpose", "channel", "granted", "source", "evidence"].contains(&k.as_str()) {
                return Err(format!("unknown field {k:?}"));
            }
        }
        let purpose = o
            .get("purpose")
            .and_then(|p| p.as_str())
            .ok_or("purpose is missing")?;
        let purpose = Purpose::parse(purpose).ok_or_else(|| {
            format!(
                "purpose {purpose:?} is not one of {}",
                Purpose::ALL.map(Purpose::name).join(", ")
            )
        })?;
        let channel = o.get("channel").and_then(|c| c.as_str()).unwrap_or("any");
        if !CHANNELS.contains(&channel) {
            return Err(format!(
                "channel {channel:?} is not one of {}",
                CHANNELS.join(", ")
            ));
        }
        let granted = o
            .get("granted")
            .and_then(|g| g.as_bool())
            .ok_or("granted (true or false) is missing")?;
        let source = o.get("source").and_then(|s| s.as_str()).unwrap_or("api");
        if !SOURCES.contains(&source) {
            return Err(format!(
                "source {source:?} is not one of {}",
                SOURCES.join(", ")
            ));
        }
        let evidence = o.get("evidence").cloned().unwrap_or(serde_json::json!({}));
        if !evidence.is_object() {
            return Err("evidence must be a JSON object".into());
        }
        if evidence.to_string().len() > MAX_EVIDENCE {
            return Err(format!("evidence is longer than {MAX_EVIDENCE} bytes"));
        }
        Ok(ConsentEvent {
            purpose,
            channel: channel.into(),
            granted,
            source: source.into(),
            evidence,
            actor: actor.into(),
        })
    }

    /// The key of the consent it sets: `purpose:channel` (`marketing:sms`).
    pub fn kind(&self) -> String {
        kind(self.purpose, &self.channel)
    }
}

/// The key of a consent: `purpose:channel`.
pub fn kind(purpose: Purpose, channel: &str) -> String {
    format!("{}:{channel}", purpose.name())
}

/// Whether the customer has withdrawn `purpose` on `channel`, given their current
/// consents (kind, granted, at): the later of what they said for that channel and for
/// `any` decides. Nothing said is not a withdrawal.
pub fn withdrawn(current: &[(String, bool, i64)], purpose: Purpose, channel: &str) -> bool {
    let on = |k: &str| {
        current
            .iter()
            .find(|(c, _, _)| c == k)
            .map(|(_, g, at)| (*at, *g))
    };
    let here = on(&kind(purpose, channel));
    let any = on(&kind(purpose, "any"));
    let last = match (here, any) {
        (Some(h), Some(a)) => Some(if a.0 > h.0 { a } else { h }),
        (h, a) => h.or(a),
    };
    last.is_some_and(|(_, granted)| !granted)
}

/// The keys of a timeline event's data an erasure keeps: what the KPIs and the
/// supervisor's reports read (agents, queues, parties by role, outcomes, times,
/// dispositions, scores), never what the customer wrote or said.
const KEPT: [&str; 16] = [
    "agent",
    "supervisor",
    "from",
    "to",
    "queue",
    "by",
    "outcome",
    "until",
    "disposition",
    "resolved",
    "metric",
    "score",
    "seconds",
    // The bot's hand-off: why and which article (no words of the customer's).
    "reason",
    "intent",
    "handoff",
];

/// A timeline event's data after its customer is erased: the kept keys whose values
/// are not addresses (a phone number or an e-mail address), and `"erased": true`.
pub fn scrub(data: &serde_json::Value) -> serde_json::Value {
    cut(data, "erased")
}

/// A timeline event's data once retention took its content: as [`scrub`], marked
/// `"expired": true`.
pub fn expire(data: &serde_json::Value) -> serde_json::Value {
    cut(data, "expired")
}

fn cut(data: &serde_json::Value, marker: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(o) = data.as_object() {
        for k in KEPT {
            let Some(v) = o.get(k) else { continue };
            let personal = v
                .as_str()
                .is_some_and(|s| s.contains('@') || crate::store::normalize_phone(s).is_some());
            if !personal && (v.is_string() || v.is_number() || v.is_boolean() || v.is_null()) {
                out.insert(k.into(), v.clone());
            }
        }
    }
    out.insert(marker.into(), true.into());
    serde_json::Value::Object(out)
}

/// What a tombstone keeps of an erased identity or Message-ID: the HMAC-SHA256 of
/// `kind`, a NUL and `value` under the node's tombstone key, in hex. The same value
/// always gives the same tombstone; the tombstone never gives the value back.
pub fn tombstone(key: &[u8], kind: &str, value: &str) -> String {
    let mut m = Vec::with_capacity(kind.len() + 1 + value.len());
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(value.as_bytes());
    hex(&hmac_sha256(key, &m))
}

/// An erasure's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStatus {
    /// Counted and shown; nothing erased yet.
    Previewed,
    Running,
    Completed,
    Failed,
}

impl ErasureStatus {
    pub fn name(self) -> &'static str {
        match self {
            ErasureStatus::Previewed => "previewed",
            ErasureStatus::Running => "running",
            ErasureStatus::Completed => "completed",
            ErasureStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ErasureStatus> {
        [
            ErasureStatus::Previewed,
            ErasureStatus::Running,
            ErasureStatus::Completed,
            ErasureStatus::Failed,
        ]
        .into_iter()
        .find(|e| e.name() == s)
    }
}

#[cfg(test)]
mod tests;

/// A ustar header (POSIX.1-1988) for a regular file `name` (at most 100 bytes, ASCII)
/// of `size` bytes, modified at `mtime` (Unix seconds), readable by its owner only.
/// An archive is each file's header, its bytes padded with zeros to 512, then two
/// zero blocks ([`tar_padding`], [`TAR_END`]).
pub fn tar_header(name: &str, size: u64, mtime: u64) -> Result<[u8; 512], String> {
    if name.is_empty() || name.len() > 100 || !name.is_ascii() {
        return Err(format!("{name:?} cannot be a ustar name"));
    }
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, v: &[u8]| h[at..at + v.len()].copy_from_slice(v);
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000600\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(
        &mut h,
        136,
        format!("{:011o}\0", mtime.min(0o77777777777)).as_bytes(),
    );
    put(&mut h, 148, b"        ");
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// The zeros after a file of `size` bytes, up to the next 512-byte block.
pub fn tar_padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The end of an archive: two zero blocks.
pub const TAR_END: [u8; 1024] = [0; 1024];
