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
