//! Routing work to agents. `engine` is the sans-IO ACD (queues, skills, capacity,
//! presence, strategies, offers, overflow; time injected), driven by
//! `actors::router`.

pub mod engine;

use engine::{Channel, Strategy};

/// A strategy by its config name.
pub fn parse_strategy(s: &str) -> Option<Strategy> {
    Some(match s {
        "longest_idle" => Strategy::LongestIdle,
        "least_occupied" => Strategy::LeastOccupied,
        "round_robin" => Strategy::RoundRobin,
        "skills_weighted" => Strategy::SkillsWeighted,
        "ring_all" => Strategy::RingAll,
        _ => return None,
    })
}

impl TryFrom<String> for Strategy {
    type Error = String;

    fn try_from(s: String) -> Result<Strategy, String> {
        parse_strategy(&s).ok_or_else(|| {
            format!("unknown strategy \"{s}\" (longest_idle, least_occupied, round_robin, skills_weighted or ring_all)")
        })
    }
}

impl From<Strategy> for String {
    fn from(s: Strategy) -> String {
        strategy_name(s).to_string()
    }
}

/// A strategy's config name.
pub fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::LongestIdle => "longest_idle",
        Strategy::LeastOccupied => "least_occupied",
        Strategy::RoundRobin => "round_robin",
        Strategy::SkillsWeighted => "skills_weighted",
        Strategy::RingAll => "ring_all",
    }
}

/// A channel by its config name.
pub fn parse_channel(s: &str) -> Option<Channel> {
    Some(match s {
        "voice" => Channel::Voice,
        "video" => Channel::Video,
        "chat" | "webchat" => Channel::Chat,
        "email" => Channel::Email,
        "sms" => Channel::Sms,
        "whatsapp" => Channel::Whatsapp,
        "api" => Channel::Api,
        _ => return None,
    })
}

/// A channel's name, as interactions store it.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Voice => "voice",
        Channel::Video => "video",
        Channel::Chat => "webchat",
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
        Channel::Api => "api",
    }
}
