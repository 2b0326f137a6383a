//! What one interaction's log says for the KPIs: one pass over its events in
//! canonical order.

use super::event::{Contact, Entry, Event, Metric, Party};
use std::collections::BTreeSet;

/// Where a customer who left without being served (or while on hold or being
/// transferred) was when they left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Ivr,
    Bot,
    /// Waiting in a queue with no agent being offered it.
    Queue,
    /// Offered to an agent, or reaching one who accepted.
    Ringing,
    Hold,
    Transfer,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Ivr,
        Stage::Bot,
        Stage::Queue,
        Stage::Ringing,
        Stage::Hold,
        Stage::Transfer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ivr => "ivr",
            Stage::Bot => "bot",
            Stage::Queue => "queue",
            Stage::Ringing => "ringing",
            Stage::Hold => "hold",
            Stage::Transfer => "transfer",
        }
    }
}

/// How an offer to an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OfferEnd {
    Accepted,
    Rejected,
    Lapsed,
    /// Accepted, but the agent's phone or browser never connected.
    Missed,
    /// Withdrawn: another agent took it, or the customer left.
    Withdrawn,
}

/// A channel, queue, agent or disposition name in [`Facts`]: shared, as a month's
/// million interactions name a few dozen of each (decoding makes each once).
pub type Name = std::sync::Arc<str>;

/// An interaction's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub id: String,
    pub channel: Name,
    pub inbound: bool,
    pub customer: Option<i64>,
    pub case: Option<i64>,
    pub created: i64,
    /// The first queue it joined, and when.
    pub queue: Option<Name>,
    pub queued: Option<i64>,
    /// When an agent first reached the customer.
    pub answered: Option<i64>,
    /// When an agent first reached them after they first joined a queue.
    pub answered_from_queue: Option<i64>,
    /// The agents who reached the customer, in order.
    pub agents: Vec<Name>,
    pub ended: Option<i64>,
    pub ended_by: Option<Party>,
    /// The customer left here.
    pub abandoned: Option<Stage>,
    /// How long the customer had been in the queue when they left (queue or ringing).
    pub abandoned_after: Option<i64>,
    /// With an agent, not on hold (ms).
    pub talk: i64,
    pub hold: i64,
    pub holds: u32,
    /// After-contact work (ms): from the end (or the explicit start) to the wrap-up
    /// the agent gave; `None` when they gave none.
    pub acw: Option<i64>,
    /// Time to the first human reply (ms), from the moment the customer waited on a
    /// human: the later of joining a queue and the first customer message.
    pub first_response: Option<i64>,
    /// When that clock started and stopped (for the business-hours variant).
    pub first_response_span: Option<(i64, i64)>,
    /// Each later wait for a human reply (ms): from a customer message nobody had
    /// answered yet to the next human reply.
    pub replies: Vec<i64>,
    pub offers: Vec<(Name, OfferEnd)>,
    pub dispositions: Vec<Name>,
    /// Case events carried by this interaction (resolved / reopened, and when).
    pub resolved: Vec<i64>,
    pub reopened: Vec<i64>,
    /// The last answer per metric.
    pub surveys: Vec<(i64, Metric, i64)>,
    /// The first-level bot's part, if it had the conversation first.
    pub bot: Option<BotPart>,
}

/// What the bot did with a conversation it had.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BotPart {
    /// It handed the conversation to a person.
    pub handoff: bool,
    /// It ended: handed over, or the conversation ended while the bot had it.
    pub ended: bool,
    /// The last article it matched (what the customer wanted).
    pub intent: Option<Name>,
}

impl Facts {
    /// An agent reached the customer.
    pub fn handled(&self) -> bool {
        self.answered.is_some()
    }

    /// Handle time (ms): talk + hold + after-contact work.
    pub fn handle_time(&self) -> i64 {
        self.talk + self.hold + self.acw.unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Start,
    Ivr,
    Bot,
    Queue,
    Talking(i64),
    Held(i64),
    Transfer,
    Over,
}

/// The facts of one interaction.
pub fn facts(c: &Contact) -> Facts {
    let mut f = Facts {
        id: c.id.clone(),
        channel: c.channel.as_str().into(),
        inbound: c.inbound,
        customer: c.customer,
        case: c.case,
        created: c.events.first().map(|e| e.at).unwrap_or_default(),
        queue: None,
        queued: None,
        answered: None,
        answered_from_queue: None,
        agents: vec![],
        ended: None,
        ended_by: None,
        abandoned: None,
        abandoned_after: None,
        talk: 0,
        hold: 0,
        holds: 0,
        acw: None,
        first_response: None,
        first_response_span: None,
        replies: vec![],
        offers: vec![],
        dispositions: vec![],
        resolved: vec![],
        reopened: vec![],
        surveys: vec![],
        bot: None,
    };
    let mut at = At::Start;
    // Offers outstanding (agent names), ordered so results do not depend on a map's.
    let mut open: BTreeSet<String> = BTreeSet::new();
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut first_customer: Option<i64> = None;
    let mut waiting: Option<i64> = None;
    let mut wrap_start: Option<i64> = None;
    let mut wrap_end: Option<i64> = None;
    let mut wrap_until: Option<i64> = None;
    for &Entry { at: t, ref event } in &c.events {
        match event {
            Event::Created => f.created = f.created.min(t),
            Event::IvrStart if at == At::Start => at = At::Ivr,
            Event::IvrEnd if at == At::Ivr => at = At::Start,
            Event::BotStart => {
                f.bot.get_or_insert_with(BotPart::default);
                if matches!(at, At::Start | At::Ivr) {
                    at = At::Bot;
                }
            }
            Event::BotEnd { handoff, intent } => {
                if let Some(b) = f.bot.as_mut().filter(|b| !b.ended) {
                    b.ended = true;
                    b.handoff = *handoff;
                    b.intent = intent.as_deref().map(Name::from);
                }
                // Handed over: the customer waits for a person from here. Ended
                // with the bot: the customer left (or was done) there.
                if *handoff && at == At::Bot {
                    at = At::Start;
                }
            }
            Event::Queued { queue } => {
                if f.queued.is_none() {
                    f.queued = Some(t);
                    f.queue = Some(queue.as_str().into());
                }
                // After a transfer the customer is being transferred until someone
                // takes them.
                if matches!(at, At::Start | At::Ivr | At::Bot) {
                    at = At::Queue;
                }
            }
            Event::CustomerMessage => {
                first_customer.get_or_insert(t);
                if f.first_response.is_some() {
                    waiting.get_or_insert(t);
                }
            }
            Event::Offered { agent } => {
                open.insert(agent.clone());
            }
            Event::Accepted { agent } => {
                if open.remove(agent) {
                    f.offers.push((agent.as_str().into(), OfferEnd::Accepted));
                }
                accepted.insert(agent.clone());
            }
            Event::Rejected { agent } if open.remove(agent) => {
                f.offers.push((agent.as_str().into(), OfferEnd::Rejected));
            }
            Event::Lapsed { agent } if open.remove(agent) => {
                f.offers.push((agent.as_str().into(), OfferEnd::Lapsed));
            }
            Event::Missed { agent } if accepted.remove(agent) => {
                if let Some(o) = f
                    .offers
                    .iter_mut()
                    .rev()
                    .find(|(a, e)| **a == **agent && *e == OfferEnd::Accepted)
                {
                    o.1 = OfferEnd::Missed;
                }
            }
            Event::Connected { agent } => {
                if open.remove(agent) {
                    f.offers.push((agent.as_str().into(), OfferEnd::Accepted));
                }
                accepted.remove(agent);
                for other in std::mem::take(&mut open) {
                    f.offers.push((other.into(), OfferEnd::Withdrawn));
                }
                accepted.clear();
                if at == At::Over {
                    continue;
                }
                f.answered.get_or_insert(t);
                if f.queued.is_some() {
                    f.answered_from_queue.get_or_insert(t);
                }
                f.agents.push(agent.as_str().into());
                close(&mut f, at, t);
                at = At::Talking(t);
            }
            Event::AgentMessage { human: true, .. } => {
                if f.first_response.is_none() {
                    if let Some(q) = f.queued {
                        let from = first_customer.map_or(q, |m| m.max(q));
                        if t >= from && first_customer.is_some() {
                            f.first_response = Some(t - from);
                            f.first_response_span = Some((from, t));
                        }
                    }
                } else if let Some(w) = waiting.take() {
                    f.replies.push(t - w);
                }
            }
            Event::AgentMessage { human: false, .. } => {}
            Event::HoldOn => {
                if let At::Talking(s) = at {
                    f.talk += t - s;
                    f.holds += 1;
                    at = At::Held(t);
                }
            }
            Event::HoldOff => {
                if let At::Held(s) = at {
                    f.hold += t - s;
                    at = At::Talking(t);
                }
            }
            Event::Transfer { .. } => {
                if matches!(at, At::Talking(_) | At::Held(_)) {
                    close(&mut f, at, t);
                    at = At::Transfer;
                }
            }
            Event::Ended { by } => {
                if at == At::Over {
                    continue;
                }
                f.ended = Some(t);
                f.ended_by = Some(*by);
                if *by == Party::Customer {
                    f.abandoned = match at {
                        At::Ivr => Some(Stage::Ivr),
                        At::Bot => Some(Stage::Bot),
                        At::Queue if !open.is_empty() || !accepted.is_empty() => {
                            Some(Stage::Ringing)
                        }
                        At::Queue => Some(Stage::Queue),
                        At::Held(_) => Some(Stage::Hold),
                        At::Transfer => Some(Stage::Transfer),
                        At::Start | At::Talking(_) | At::Over => None,
                    };
                    if matches!(f.abandoned, Some(Stage::Queue | Stage::Ringing)) {
                        f.abandoned_after = f.queued.map(|q| t - q);
                    }
                }
                for other in std::mem::take(&mut open) {
                    f.offers.push((other.into(), OfferEnd::Withdrawn));
                }
                close(&mut f, at, t);
                at = At::Over;
            }
            Event::WrapUpStart { until, .. } => {
                wrap_start.get_or_insert(t);
                wrap_until = *until;
            }
            Event::WrapUpEnd { .. } => wrap_end = Some(t),
            Event::Disposition { code } => f.dispositions.push(code.as_str().into()),
            Event::CaseResolved => f.resolved.push(t),
            Event::CaseReopened => f.reopened.push(t),
            Event::Survey { metric, score } => {
                f.surveys.retain(|(_, m, _)| m != metric);
                f.surveys.push((t, *metric, *score));
            }
            _ => {}
        }
    }
    // After-contact work ends with the wrap-up given, or when its time ran out (the
    // agent was free again then), whichever came first.
    let end = match (wrap_end, wrap_until) {
        (Some(e), Some(u)) => Some(e.min(u)),
        (e, u) => e.or(u),
    };
    if let (Some(e), true) = (end, f.handled()) {
        // Counted from the end at the earliest: an agent released from a chat a
        // supervisor took over wraps up while the talk goes on (counted once, as talk).
        let s = match (wrap_start, f.ended) {
            (Some(w), Some(x)) => w.max(x),
            (w, x) => w.or(x).unwrap_or(e),
        };
        f.acw = Some((e - s).max(0));
    }
    f
}

/// Adds the talk or hold that ends at `t`.
fn close(f: &mut Facts, at: At, t: i64) {
    match at {
        At::Talking(s) => f.talk += t - s,
        At::Held(s) => f.hold += t - s,
        _ => {}
    }
}
