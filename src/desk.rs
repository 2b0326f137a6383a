//! One agent's desk as typed state: presence (and since when), the offers waiting for
//! them, the work they have (with a call's consult progress), kept from the pushes
//! the agent is sent. Sans-IO: [`Desk::apply`] takes the time and a push,
//! [`Desk::snapshot`] gives the whole state as the desktop's `state` message, so a
//! desktop that connects or reconnects renders exactly what is true: a consult taken
//! shows as work in progress (not as an offer again), a consult's progress as it is
//! now, a chat with its messages. The agent actor is its driver and the only writer.
//!
//! A chat's messages come from the chat, its assignment from the router: the two may
//! reach the desk in either order. Messages for a chat not on the desk yet wait (a
//! few chats' worth) and join it when it is assigned; the `assigned` push the desktop
//! gets is the desk's item, with them ([`Desk::item_push`]), so no message is missing
//! from the agent's view.

use crate::actors::messages::{AgentPush, QueueStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch (the desk's clock, passed in).
pub type Millis = u64;

/// What an item on the desk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Offered by routing: accept or reject before it expires.
    Offer,
    /// A colleague asks this agent to talk before handing a call over.
    Consult,
    /// The agent has it.
    Work,
}

/// An offer or a piece of work, as the desktop shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub interaction: String,
    pub channel: String,
    pub queue: String,
    /// Who: the caller's number or the customer's name; for a consult, the colleague.
    pub from: String,
    /// A consult's caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    pub customer: Option<i64>,
    pub conversation: Option<i64>,
    pub details: serde_json::Value,
    /// 0-9, higher first.
    pub priority: u8,
    pub vip: bool,
    /// An offer's time left (at the snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    #[serde(skip)]
    expires_at: Option<Millis>,
    /// The desktop takes this call in the browser.
    pub browser_call: bool,
    /// Work this agent was consulted on (the call is a colleague's).
    pub consult: bool,
    /// A call's consult progress: `consulting`, `consult connected`, `consult ended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_state: Option<&'static str>,
    pub customer_left: bool,
    /// A call on hold: since when (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_since: Option<Millis>,
    /// How many times the call was put on hold.
    pub holds: u32,
    /// A WhatsApp thread: free-form replies until then (Unix ms); templates after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_until: Option<Millis>,
    /// When it reached the desk.
    pub since: Millis,
    /// A chat's messages (the last [`MAX_MESSAGES`]), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<serde_json::Value>,
    /// A chat's private notes from supervisors (the last [`MAX_NOTES`]), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<serde_json::Value>,
    /// A supervisor on this work now: `{supervisor, mode}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitored: Option<serde_json::Value>,
}

/// Notes a chat item keeps (all are on the timeline).
pub const MAX_NOTES: usize = 50;

/// Messages a chat item keeps (older ones are in the store's timeline).
pub const MAX_MESSAGES: usize = 200;
/// Chats whose messages may wait for their assignment at once.
const MAX_PENDING: usize = 8;

impl Item {
    /// Adds messages not already there (by `seq`), keeping the last [`MAX_MESSAGES`].
    fn add_messages(&mut self, more: impl IntoIterator<Item = serde_json::Value>) {
        add_messages(&mut self.messages, more);
    }
}

fn add_messages(
    to: &mut Vec<serde_json::Value>,
    more: impl IntoIterator<Item = serde_json::Value>,
) {
    for m in more {
        let seq = m["seq"].as_u64();
        if seq.is_some() && to.iter().any(|x| x["seq"].as_u64() == seq) {
            continue;
        }
        to.push(m);
    }
    to.sort_by_key(|m| m["seq"].as_u64().unwrap_or(0));
    if to.len() > MAX_MESSAGES {
        to.drain(..to.len() - MAX_MESSAGES);
    }
}

/// How long a consult waits for the colleague (the desktop's countdown).
const CONSULT_OFFER_MS: u64 = 30_000;

#[derive(Debug, Clone)]
pub struct Desk {
    pub name: String,
    presence: &'static str,
    presence_since: Millis,
    /// When wrap-up ends by itself.
    presence_until: Option<Millis>,
    offers: BTreeMap<String, Item>,
    work: BTreeMap<String, Item>,
    /// Messages of chats not on the desk yet (oldest first, at most [`MAX_PENDING`]).
    pending: Vec<(String, Vec<serde_json::Value>)>,
    /// The agent's queues: waiting items and the oldest's age (the status bar).
    queues: Vec<QueueStatus>,
}

impl Desk {
    pub fn new(name: String, now: Millis) -> Desk {
        Desk {
            name,
            presence: "offline",
            presence_since: now,
            presence_until: None,
            offers: BTreeMap::new(),
            work: BTreeMap::new(),
            pending: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// An item as a push of `kind` (`assigned`: the work with what is known of it).
    pub fn item_push(&self, kind: &str, interaction: &str) -> Option<serde_json::Value> {
        let item = self
            .work
            .get(interaction)
            .or_else(|| self.offers.get(interaction))?;
        let mut v = serde_json::to_value(item).ok()?;
        v["type"] = kind.into();
        Some(v)
    }

    /// Messages for a chat: on its item, or waiting for it.
    fn messages(&mut self, interaction: &str, more: Vec<serde_json::Value>) {
        if let Some(i) = self.work.get_mut(interaction) {
            return i.add_messages(more);
        }
        if let Some(i) = self.offers.get_mut(interaction) {
            return i.add_messages(more);
        }
        match self.pending.iter_mut().find(|(id, _)| id == interaction) {
            Some((_, m)) => add_messages(m, more),
            None => {
                if self.pending.len() == MAX_PENDING {
                    self.pending.remove(0);
                }
                let mut m = Vec::new();
                add_messages(&mut m, more);
                self.pending.push((interaction.to_string(), m));
            }
        }
    }

    fn take_pending(&mut self, interaction: &str) -> Vec<serde_json::Value> {
        match self.pending.iter().position(|(id, _)| id == interaction) {
            Some(i) => self.pending.remove(i).1,
            None => Vec::new(),
        }
    }

    pub fn presence(&self) -> &'static str {
        self.presence
    }

    pub fn offer(&self, interaction: &str) -> Option<&Item> {
        self.offers.get(interaction)
    }

    pub fn work(&self, interaction: &str) -> Option<&Item> {
        self.work.get(interaction)
    }

    /// What a push changes on the desk.
    pub fn apply(&mut self, now: Millis, p: &AgentPush) {
        match p {
            AgentPush::Offer {
                interaction,
                channel,
                queue,
                from,
                customer,
                conversation,
                details,
                priority,
                vip,
                expires_in_ms,
                browser_call,
            } => {
                let item = Item {
                    kind: Kind::Offer,
                    interaction: interaction.clone(),
                    channel: channel.to_string(),
                    queue: queue.clone(),
                    from: from.clone(),
                    caller: None,
                    customer: *customer,
                    conversation: *conversation,
                    details: details.clone(),
                    priority: *priority,
                    vip: *vip,
                    expires_in_ms: None,
                    expires_at: Some(now + expires_in_ms),
                    browser_call: *browser_call,
                    consult: false,
                    call_state: None,
                    customer_left: false,
                    held_since: None,
                    window_until: None,
                    holds: 0,
                    since: now,
                    messages: Vec::new(),
                    notes: Vec::new(),
                    monitored: None,
                };
                self.offers.insert(interaction.clone(), item);
            }
            AgentPush::Consult {
                interaction,
                from,
                caller,
                customer,
                details,
                browser_call,
            } => {
                let item = Item {
                    kind: Kind::Consult,
                    interaction: interaction.clone(),
                    channel: "voice".into(),
                    queue: "consult".into(),
                    from: from.clone(),
                    caller: Some(caller.clone()),
                    customer: *customer,
                    conversation: None,
                    details: details.clone(),
                    priority: 5,
                    vip: false,
                    expires_in_ms: None,
                    expires_at: Some(now + CONSULT_OFFER_MS),
                    browser_call: *browser_call,
                    consult: true,
                    call_state: None,
                    customer_left: false,
                    held_since: None,
                    window_until: None,
                    holds: 0,
                    since: now,
                    messages: Vec::new(),
                    notes: Vec::new(),
                    monitored: None,
                };
                self.offers.insert(interaction.clone(), item);
            }
            AgentPush::Revoked { interaction, .. } => {
                self.offers.remove(interaction);
            }
            AgentPush::Assigned {
                interaction,
                channel,
                customer,
                browser_call,
            } => {
                // A completed warm transfer: the consult we are on becomes our work.
                let mut w = match self.work.remove(interaction) {
                    Some(w) => w,
                    None => self.offers.remove(interaction).unwrap_or_else(|| Item {
                        kind: Kind::Work,
                        interaction: interaction.clone(),
                        channel: channel.to_string(),
                        queue: String::new(),
                        from: String::new(),
                        caller: None,
                        customer: *customer,
                        conversation: None,
                        details: serde_json::Value::Null,
                        priority: 5,
                        vip: false,
                        expires_in_ms: None,
                        expires_at: None,
                        browser_call: false,
                        consult: false,
                        call_state: None,
                        customer_left: false,
                        held_since: None,
                        window_until: None,
                        holds: 0,
                        since: now,
                        messages: Vec::new(),
                        notes: Vec::new(),
                        monitored: None,
                    }),
                };
                let early = self.take_pending(interaction);
                w.add_messages(early);
                w.kind = Kind::Work;
                w.consult = false;
                w.call_state = None;
                w.expires_at = None;
                w.browser_call = *browser_call;
                w.since = now;
                self.offers.remove(interaction);
                self.work.insert(interaction.clone(), w);
            }
            AgentPush::CallState { interaction, state } => {
                if let Some(mut c) = self.offers.remove(interaction) {
                    // The consult this agent was asked into is up: it is work now.
                    c.kind = Kind::Work;
                    c.expires_at = None;
                    c.since = now;
                    self.work.insert(interaction.clone(), c);
                }
                if let Some(w) = self.work.get_mut(interaction) {
                    w.call_state = Some(state);
                }
            }
            AgentPush::Window { interaction, until } => {
                for w in [
                    self.offers.get_mut(interaction),
                    self.work.get_mut(interaction),
                ]
                .into_iter()
                .flatten()
                {
                    w.window_until = Some(*until);
                }
            }
            AgentPush::Held { interaction, on } => {
                if let Some(w) = self.work.get_mut(interaction) {
                    if *on && w.held_since.is_none() {
                        w.holds += 1;
                        w.held_since = Some(now);
                    } else if !*on {
                        w.held_since = None;
                    }
                }
            }
            AgentPush::Ended { interaction } => {
                self.work.remove(interaction);
                self.offers.remove(interaction);
                self.take_pending(interaction);
            }
            AgentPush::Message {
                interaction,
                seq,
                from,
                name,
                text,
                at,
            } => {
                let m = serde_json::json!({"seq": seq, "from": from, "name": name, "text": text, "at": at});
                self.messages(interaction, vec![m]);
            }
            AgentPush::Transcript {
                interaction,
                messages,
            } => self.messages(interaction, messages.clone()),
            // A reconnecting desktop shows each message's delivery as it is.
            AgentPush::Delivery {
                interaction,
                seq,
                status,
                error,
            } => {
                if let Some(m) = self
                    .work
                    .get_mut(interaction)
                    .and_then(|w| w.messages.iter_mut().find(|m| m["seq"] == *seq))
                {
                    // News arrive out of order (our own `sent` after a connector's
                    // `delivered`): only forward moves, or a queued message's reason.
                    // An agent's retry is the one way back from failed.
                    let old = m["status"].as_str().unwrap_or("queued");
                    let retry = old == "failed" && *status == "queued";
                    if old == *status || retry || crate::channels::advances(old, status) {
                        m["status"] = (*status).into();
                        m["error"] = error.as_str().into();
                    }
                }
            }
            AgentPush::Verified {
                interaction,
                customer,
            } => {
                if let Some(w) = self.work.get_mut(interaction) {
                    w.customer = Some(*customer);
                    if !w.details.is_object() {
                        w.details = serde_json::json!({});
                    }
                    if let Some(d) = w.details.as_object_mut() {
                        d.insert("verified".into(), true.into());
                    }
                }
            }
            AgentPush::Note {
                interaction,
                supervisor,
                name,
                text,
                at,
            } => {
                if let Some(w) = self.work.get_mut(interaction) {
                    w.notes.push(serde_json::json!({"supervisor": supervisor, "name": name, "text": text, "at": at}));
                    if w.notes.len() > MAX_NOTES {
                        w.notes.remove(0);
                    }
                }
            }
            AgentPush::Monitored {
                interaction,
                supervisor,
                name,
                mode,
            } => {
                if let Some(w) = self.work.get_mut(interaction) {
                    w.monitored = supervisor
                        .as_ref()
                        .map(|s| serde_json::json!({"supervisor": s, "name": name, "mode": mode}));
                }
            }
            AgentPush::CustomerLeft { interaction } => {
                if let Some(w) = self.work.get_mut(interaction) {
                    w.customer_left = true;
                }
            }
            AgentPush::Queues { queues } => self.queues = queues.clone(),
            AgentPush::Presence { presence, until } => {
                if self.presence != *presence {
                    self.presence = presence;
                    self.presence_since = now;
                }
                self.presence_until = *until;
            }
            _ => {}
        }
    }

    /// The whole desk as the desktop's `state` message.
    pub fn snapshot(&self, now: Millis) -> serde_json::Value {
        let offers: Vec<Item> = self
            .offers
            .values()
            .map(|o| {
                let mut o = o.clone();
                o.expires_in_ms = o.expires_at.map(|t| t.saturating_sub(now));
                o
            })
            .collect();
        serde_json::json!({
            "type": "state",
            "agent": self.name,
            "presence": self.presence,
            "presence_since": self.presence_since,
            "presence_until": self.presence_until,
            "offers": offers,
            "work": self.work.values().collect::<Vec<_>>(),
            "queues": self.queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consult(id: &str) -> AgentPush {
        AgentPush::Consult {
            interaction: id.into(),
            from: "ann".into(),
            caller: "+15551234567".into(),
            customer: Some(7),
            details: serde_json::json!({"account": "1234"}),
            browser_call: true,
        }
    }

    fn state(id: &str, s: &'static str) -> AgentPush {
        AgentPush::CallState {
            interaction: id.into(),
            state: s,
        }
    }

    #[test]
    fn a_reconnect_mid_consult_shows_the_consult_as_it_is() {
        // The agent who has the call: the consult's progress is on their work.
        let mut ann = Desk::new("ann".into(), 0);
        ann.apply(
            10,
            &AgentPush::Offer {
                interaction: "c1".into(),
                channel: "voice",
                queue: "sales".into(),
                from: "+15551234567".into(),
                customer: Some(7),
                conversation: None,
                details: serde_json::json!({}),
                priority: 5,
                vip: false,
                expires_in_ms: 15_000,
                browser_call: true,
            },
        );
        assert_eq!(ann.snapshot(5_010)["offers"][0]["expires_in_ms"], 10_000);
        assert_eq!(ann.snapshot(5_010)["offers"][0]["browser_call"], true);
        ann.apply(
            20,
            &AgentPush::Assigned {
                interaction: "c1".into(),
                channel: "voice",
                customer: Some(7),
                browser_call: true,
            },
        );
        ann.apply(30, &state("c1", "consulting"));
        ann.apply(40, &state("c1", "consult connected"));
        let s = ann.snapshot(50);
        assert_eq!(s["offers"], serde_json::json!([]));
        assert_eq!(s["work"][0]["type"], "work");
        assert_eq!(s["work"][0]["from"], "+15551234567");
        assert_eq!(s["work"][0]["browser_call"], true);
        assert_eq!(s["work"][0]["call_state"], "consult connected");

        // The colleague: offered, then on the consult (work, not an offer again).
        let mut bob = Desk::new("bob".into(), 0);
        bob.apply(30, &consult("c1"));
        let s = bob.snapshot(31);
        assert_eq!(s["offers"][0]["type"], "consult");
        assert_eq!(s["offers"][0]["caller"], "+15551234567");
        bob.apply(40, &state("c1", "consult connected"));
        let s = bob.snapshot(41);
        assert_eq!(s["offers"], serde_json::json!([]));
        assert_eq!(s["work"][0]["consult"], true);
        assert_eq!(s["work"][0]["call_state"], "consult connected");
        // The transfer completes: the call is Bob's own work.
        bob.apply(
            50,
            &AgentPush::Assigned {
                interaction: "c1".into(),
                channel: "voice",
                customer: Some(7),
                browser_call: true,
            },
        );
        let w = bob.work("c1").unwrap();
        assert!(!w.consult && w.call_state.is_none() && w.kind == Kind::Work);
        assert_eq!(w.details["account"], "1234", "what the IVR gathered stays");
        bob.apply(
            60,
            &AgentPush::Ended {
                interaction: "c1".into(),
            },
        );
        assert!(bob.work("c1").is_none());
    }

    #[test]
    fn hold_keeps_since_when_and_how_often_and_wrap_up_its_end() {
        let mut d = Desk::new("ann".into(), 0);
        d.apply(
            1,
            &AgentPush::Assigned {
                interaction: "c1".into(),
                channel: "voice",
                customer: None,
                browser_call: true,
            },
        );
        let held = |on| AgentPush::Held {
            interaction: "c1".into(),
            on,
        };
        d.apply(100, &held(true));
        d.apply(150, &held(true)); // said twice: one hold
        assert_eq!(d.work("c1").unwrap().held_since, Some(100));
        d.apply(200, &held(false));
        d.apply(300, &held(true));
        let w = d.item_push("held", "c1").unwrap();
        assert_eq!(
            (w["held_since"].as_u64(), w["holds"].as_u64()),
            (Some(300), Some(2))
        );
        assert_eq!(w["since"], 1, "the call's own timer is unchanged");
        d.apply(400, &held(false));
        assert!(d.snapshot(500)["work"][0].get("held_since").is_none());
        d.apply(
            600,
            &AgentPush::Presence {
                presence: "wrap_up",
                until: Some(30_600),
            },
        );
        let s = d.snapshot(700);
        assert_eq!(
            (s["presence_since"].as_u64(), s["presence_until"].as_u64()),
            (Some(600), Some(30_600))
        );
        d.apply(
            30_600,
            &AgentPush::Presence {
                presence: "available",
                until: None,
            },
        );
        assert!(d.snapshot(30_700)["presence_until"].is_null());
    }

    #[test]
    fn presence_keeps_since_when_and_chat_flags_land_on_the_work() {
        let mut d = Desk::new("ann".into(), 0);
        d.apply(
            5,
            &AgentPush::Presence {
                presence: "available",
                until: None,
            },
        );
        d.apply(
            9,
            &AgentPush::Presence {
                presence: "available",
                until: None,
            },
        );
        assert_eq!(d.snapshot(10)["presence_since"], 5);
        d.apply(
            11,
            &AgentPush::Assigned {
                interaction: "chat1".into(),
                channel: "chat",
                customer: None,
                browser_call: false,
            },
        );
        d.apply(
            12,
            &AgentPush::Verified {
                interaction: "chat1".into(),
                customer: 3,
            },
        );
        d.apply(
            13,
            &AgentPush::CustomerLeft {
                interaction: "chat1".into(),
            },
        );
        let w = d.work("chat1").unwrap();
        assert_eq!(w.customer, Some(3));
        assert!(w.customer_left);
        // A revoked offer leaves; pushes about unknown work change nothing.
        d.apply(14, &consult("c2"));
        d.apply(
            15,
            &AgentPush::Revoked {
                interaction: "c2".into(),
                reason: "rejected",
            },
        );
        d.apply(16, &state("zzz", "consulting"));
        let s = d.snapshot(17);
        assert_eq!(s["offers"], serde_json::json!([]));
        assert_eq!(s["work"].as_array().unwrap().len(), 1);
    }

    fn message(id: &str, seq: u64, text: &str) -> AgentPush {
        AgentPush::Message {
            interaction: id.into(),
            seq,
            from: "customer",
            name: "Ada".into(),
            text: text.into(),
            at: 1000 + seq,
        }
    }

    fn chat_assigned(id: &str) -> AgentPush {
        AgentPush::Assigned {
            interaction: id.into(),
            channel: "chat",
            customer: None,
            browser_call: false,
        }
    }

    fn texts(v: &serde_json::Value) -> Vec<String> {
        v["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["text"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_chat_keeps_every_message_whichever_comes_first_the_assignment_or_the_messages() {
        // The transcript and a live message reach the desk before the assignment.
        let mut d = Desk::new("bob".into(), 0);
        d.apply(
            1,
            &AgentPush::Transcript {
                interaction: "x".into(),
                messages: vec![serde_json::json!({"seq": 1, "from": "customer", "name": "Ada", "text": "hello"})],
            },
        );
        d.apply(2, &message("x", 2, "my order is late"));
        d.apply(2, &message("x", 1, "hello")); // the same message again counts once
        assert!(d.snapshot(3)["work"].as_array().unwrap().is_empty());
        d.apply(4, &chat_assigned("x"));
        let pushed = d.item_push("assigned", "x").unwrap();
        assert_eq!(pushed["type"], "assigned");
        assert_eq!(texts(&pushed), ["hello", "my order is late"]);
        d.apply(5, &message("x", 3, "are you there?"));
        let s = d.snapshot(6);
        assert_eq!(
            texts(&s["work"][0]),
            ["hello", "my order is late", "are you there?"]
        );

        // The usual order: assigned, then the transcript.
        d.apply(7, &chat_assigned("y"));
        d.apply(
            8,
            &AgentPush::Transcript {
                interaction: "y".into(),
                messages: vec![serde_json::json!({"seq": 1, "from": "customer", "text": "hi"})],
            },
        );
        assert_eq!(texts(&d.snapshot(9)["work"][1]), ["hi"]);

        // Messages waiting for chats that never come are bounded, and an end drops them.
        for i in 0..50 {
            d.apply(10, &message(&format!("ghost{i}"), 1, "boo"));
        }
        assert!(d.pending.len() <= MAX_PENDING);
        d.apply(
            11,
            &AgentPush::Ended {
                interaction: "ghost49".into(),
            },
        );
        assert!(d.pending.iter().all(|(id, _)| id != "ghost49"));
        // A long chat keeps its last messages.
        for i in 4..(MAX_MESSAGES as u64 + 50) {
            d.apply(12, &message("x", i, "more"));
        }
        assert_eq!(d.work("x").unwrap().messages.len(), MAX_MESSAGES);
    }

    /// A WhatsApp thread's window moves with each customer message, on the offer and
    /// then on the work it becomes (a reconnecting desktop shows it as it is).
    #[test]
    fn the_reply_window_follows_the_thread_from_offer_to_work() {
        let mut d = Desk::new("bob".into(), 0);
        d.apply(
            10,
            &AgentPush::Offer {
                interaction: "w".into(),
                channel: "whatsapp",
                queue: "support".into(),
                from: "Ada".into(),
                customer: Some(1),
                conversation: Some(1),
                details: serde_json::json!({"window_until": 1_000}),
                priority: 5,
                vip: true,
                expires_in_ms: 15_000,
                browser_call: false,
            },
        );
        let window = |v: &serde_json::Value| v["window_until"].clone();
        d.apply(
            11,
            &AgentPush::Window {
                interaction: "w".into(),
                until: 2_000,
            },
        );
        assert_eq!(window(&d.snapshot(12)["offers"][0]), 2_000);
        d.apply(
            20,
            &AgentPush::Assigned {
                interaction: "w".into(),
                channel: "whatsapp",
                customer: Some(1),
                browser_call: false,
            },
        );
        assert_eq!(window(&d.snapshot(21)["work"][0]), 2_000);
        d.apply(
            30,
            &AgentPush::Window {
                interaction: "w".into(),
                until: 3_000,
            },
        );
        assert_eq!(window(&d.snapshot(31)["work"][0]), 3_000);
        // Not this desk's: nothing changes, nothing appears.
        d.apply(
            40,
            &AgentPush::Window {
                interaction: "zzz".into(),
                until: 9,
            },
        );
        assert_eq!(d.snapshot(41)["work"].as_array().unwrap().len(), 1);
    }

    /// Delivery news arrive out of order (our own `sent` after the provider's
    /// `delivered`): the message only moves forward.
    #[test]
    fn a_message_delivery_only_moves_forward() {
        let mut d = Desk::new("bob".into(), 0);
        d.apply(1, &chat_assigned("x"));
        d.apply(2, &message("x", 1, "it ships today"));
        let status = |d: &Desk| {
            let m = &d.snapshot(9)["work"][0]["messages"][0];
            (m["status"].clone(), m["error"].clone())
        };
        let news = |status: &'static str, error: &str| AgentPush::Delivery {
            interaction: "x".into(),
            seq: 1,
            status,
            error: error.into(),
        };
        d.apply(3, &news("queued", "no callback_url yet"));
        d.apply(3, &news("queued", "the connector did not answer"));
        assert_eq!(
            status(&d),
            ("queued".into(), "the connector did not answer".into())
        );
        d.apply(4, &news("delivered", ""));
        d.apply(5, &news("sent", ""));
        assert_eq!(status(&d).0, "delivered", "a late sent");
        d.apply(6, &news("read", ""));
        d.apply(7, &news("failed", "too late"));
        assert_eq!(
            status(&d),
            ("read".into(), "".into()),
            "read is where it stays"
        );
        // A failed message goes again only by the agent's retry (queued again).
        d.apply(8, &message("x", 2, "second"));
        let on2 = |status: &'static str, error: &str| AgentPush::Delivery {
            interaction: "x".into(),
            seq: 2,
            status,
            error: error.into(),
        };
        d.apply(9, &on2("failed", "timeout"));
        d.apply(9, &on2("delivered", ""));
        let second = |d: &Desk| d.snapshot(10)["work"][0]["messages"][1]["status"].clone();
        assert_eq!(second(&d), "failed");
        d.apply(10, &on2("queued", "sending again"));
        d.apply(11, &on2("sent", ""));
        assert_eq!(second(&d), "sent");
    }

    #[test]
    fn a_reconnect_shows_a_supervisors_notes_and_who_is_on_the_work() {
        let mut ann = Desk::new("ann".into(), 0);
        ann.apply(
            1,
            &AgentPush::Assigned {
                interaction: "w1".into(),
                channel: "webchat",
                customer: None,
                browser_call: false,
            },
        );
        let note = |i: u64| AgentPush::Note {
            interaction: "w1".into(),
            supervisor: "sam".into(),
            name: "Sam".into(),
            text: format!("note {i}"),
            at: i,
        };
        for i in 0..(MAX_NOTES as u64 + 2) {
            ann.apply(2, &note(i));
        }
        ann.apply(
            3,
            &AgentPush::Monitored {
                interaction: "w1".into(),
                supervisor: Some("sam".into()),
                name: Some("Sam".into()),
                mode: Some("barge"),
            },
        );
        // Nothing kept for work the agent does not have.
        ann.apply(
            3,
            &AgentPush::Note {
                interaction: "other".into(),
                supervisor: "sam".into(),
                name: "Sam".into(),
                text: "lost".into(),
                at: 3,
            },
        );
        let s = ann.snapshot(4);
        let w = &s["work"][0];
        let notes = w["notes"].as_array().unwrap();
        assert_eq!(notes.len(), MAX_NOTES, "{w}");
        assert_eq!(notes[0]["text"], "note 2", "the oldest go first: {w}");
        assert_eq!(
            w["monitored"],
            serde_json::json!({"supervisor": "sam", "name": "Sam", "mode": "barge"})
        );
        assert!(!s.to_string().contains("lost"));
        ann.apply(
            5,
            &AgentPush::Monitored {
                interaction: "w1".into(),
                supervisor: None,
                name: None,
                mode: None,
            },
        );
        assert!(ann.snapshot(6)["work"][0].get("monitored").is_none());
    }
}
