//! One agent's desk as typed state: presence (and since when), the offers waiting for
//! them, the work they have (with a call's consult progress), kept from the pushes
//! the agent is sent. Sans-IO: [`Desk::apply`] takes the time and a push,
//! [`Desk::snapshot`] gives the whole state as the desktop's `state` message, so a
//! desktop that connects or reconnects renders exactly what is true: a consult taken
//! shows as work in progress (not as an offer again), a consult's progress as it is
//! now. The agent actor is its driver and the only writer.

use crate::actors::messages::AgentPush;
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
    /// When it reached the desk.
    pub since: Millis,
}

/// How long a consult waits for the colleague (the desktop's countdown).
const CONSULT_OFFER_MS: u64 = 30_000;

#[derive(Debug, Clone)]
pub struct Desk {
    pub name: String,
    presence: &'static str,
    presence_since: Millis,
    offers: BTreeMap<String, Item>,
    work: BTreeMap<String, Item>,
}

impl Desk {
    pub fn new(name: String, now: Millis) -> Desk {
        Desk {
            name,
            presence: "offline",
            presence_since: now,
            offers: BTreeMap::new(),
            work: BTreeMap::new(),
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
                expires_in_ms,
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
                    expires_in_ms: None,
                    expires_at: Some(now + expires_in_ms),
                    browser_call: false,
                    consult: false,
                    call_state: None,
                    customer_left: false,
                    since: now,
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
                    expires_in_ms: None,
                    expires_at: Some(now + CONSULT_OFFER_MS),
                    browser_call: *browser_call,
                    consult: true,
                    call_state: None,
                    customer_left: false,
                    since: now,
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
                        expires_in_ms: None,
                        expires_at: None,
                        browser_call: false,
                        consult: false,
                        call_state: None,
                        customer_left: false,
                        since: now,
                    }),
                };
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
            AgentPush::Ended { interaction } => {
                self.work.remove(interaction);
                self.offers.remove(interaction);
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
            AgentPush::CustomerLeft { interaction } => {
                if let Some(w) = self.work.get_mut(interaction) {
                    w.customer_left = true;
                }
            }
            AgentPush::Presence { presence } if self.presence != *presence => {
                self.presence = presence;
                self.presence_since = now;
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
            "offers": offers,
            "work": self.work.values().collect::<Vec<_>>(),
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
                expires_in_ms: 15_000,
            },
        );
        assert_eq!(ann.snapshot(5_010)["offers"][0]["expires_in_ms"], 10_000);
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
    fn presence_keeps_since_when_and_chat_flags_land_on_the_work() {
        let mut d = Desk::new("ann".into(), 0);
        d.apply(
            5,
            &AgentPush::Presence {
                presence: "available",
            },
        );
        d.apply(
            9,
            &AgentPush::Presence {
                presence: "available",
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
}
