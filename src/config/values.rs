//! Values read at the edge, with errors worded for people: listen addresses or
//! "off", ports or "off", log filters, port ranges.

use serde::Deserialize;
use std::net::SocketAddr;

/// A listen address, or "off".
pub(super) fn listener<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let v = String::deserialize(d)?;
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "\"{v}\" is not a listen address: write one like \"127.0.0.1:5060\" or \"[::]:5060\", or \"off\""
        ))
    })
}

/// A UDP port, or "off" (0).
pub(super) fn port_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        N(i64),
        S(String),
    }
    match P::deserialize(d)? {
        P::N(n) if (0..=65535).contains(&n) => Ok(n as u16),
        P::S(s) if s.eq_ignore_ascii_case("off") => Ok(0),
        P::N(n) => Err(serde::de::Error::custom(format!(
            "{n} is not a port (1 to 65535, or \"off\")"
        ))),
        P::S(s) => Err(serde::de::Error::custom(format!(
            "\"{s}\" is not a port: write a number from 1 to 65535, or \"off\""
        ))),
    }
}

/// The log levels a `[log] level` may name (alone or per target: `info,omnigate=debug`).
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a tracing filter: each comma-separated part is a level, or `target=level`.
pub fn check_log_level(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err("empty: write one of error, warn, info, debug, trace, off".into());
    }
    for part in v.split(',') {
        let level = part.rsplit_once('=').map_or(part, |(_, l)| l).trim();
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "\"{level}\" is not a log level: write one of error, warn, info, debug, trace, off (or target=level, e.g. \"info,omnigate=debug\")"
            ));
        }
    }
    Ok(())
}

/// serde's type names, in words for people editing a config file.
pub(super) fn for_people(msg: &str) -> String {
    let mut m = msg.to_string();
    for (from, to) in [
        (
            "expected u64",
            "expected a whole number (of seconds, or of what the setting counts)",
        ),
        ("expected u32", "expected a whole number"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected usize", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a string", "expected text in quotes"),
        ("expected a sequence", "expected a list in [brackets]"),
    ] {
        m = m.replace(from, to);
    }
    m
}

/// Parses "LOW-HIGH".
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("\"{s}\" is not LOW-HIGH"))?;
    let lo: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("\"{a}\" is not a port"))?;
    let hi: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("\"{b}\" is not a port"))?;
    if lo >= hi || lo < 1024 {
        return Err(format!("\"{s}\": need 1024 <= LOW < HIGH"));
    }
    Ok((lo, hi))
}

/// `[rtp] ports`: an even-sized range of UDP ports for RTP, read from "LOW-HIGH".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRange, String> {
        parse_port_range(s).map(|(lo, hi)| PortRange { lo, hi })
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<PortRange, String> {
        s.parse()
    }
}

/// A tracing filter, checked when read (`check_log_level`).
pub(super) fn log_level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    check_log_level(&v).map_err(serde::de::Error::custom)?;
    Ok(v)
}

/// `[data] database`, checked when read (`store::Database::parse`).
pub(super) fn database<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    crate::store::Database::parse(&v).map_err(serde::de::Error::custom)?;
    Ok(v)
}

/// A SIP transport: udp, tcp, tls or ws.
pub(super) fn transport<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<crate::sip::Transport, D::Error> {
    let v = String::deserialize(d)?;
    crate::sip::Transport::parse(&v)
        .ok_or_else(|| serde::de::Error::custom(format!("\"{v}\" is not udp, tcp, tls or ws")))
}

/// Addresses or CIDR blocks.
pub(super) fn cidrs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::sip::trunk::Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|c| {
            crate::sip::trunk::Cidr::parse(c).ok_or_else(|| {
                serde::de::Error::custom(format!("\"{c}\" is not an address or CIDR block"))
            })
        })
        .collect()
}

/// Digest algorithms: "MD5", "SHA-256".
pub(super) fn digest_algorithms<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::sip::auth::Algorithm>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|a| {
            crate::sip::auth::Algorithm::parse(Some(a))
                .ok_or_else(|| serde::de::Error::custom(format!("\"{a}\" is not MD5 or SHA-256")))
        })
        .collect()
}

/// What is wrong with an account's or a mailbox's name (`what`: `channel`,
/// `mailbox`): 1-64 letters, digits, `-`, `_` (it goes into paths and metrics), as
/// (key, value, reason) for the config's error.
pub(super) fn name_problem(what: &str, name: &str) -> Option<(&'static str, String, String)> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (!ok).then(|| {
        (
            "name",
            name.to_string(),
            format!("{what} \"{name}\": a name is 1-64 letters, digits, - or _"),
        )
    })
}

/// A (key, value, reason) problem as an API's refusal: `key "value": reason`.
pub(super) fn refusal(p: Option<(&'static str, String, String)>) -> Result<(), String> {
    match p {
        Some((key, value, why)) if value.is_empty() => Err(format!("{key}: {why}")),
        Some((key, value, why)) => Err(format!("{key} {value:?}: {why}")),
        None => Ok(()),
    }
}
