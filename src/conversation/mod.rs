//! A text thread between a customer and the centre (the web chat today; the messaging
//! channels next), as a sans-IO state machine: `handle(time, Input)`, then `poll()` for
//! what to do. It decides the order of everything: a message is numbered, written to
//! the store, and only once the store said yes is the sender acknowledged and the other
//! side told; a client id makes a message re-sent after a lost ack count once; a
//! reconnecting page gets exactly what it missed (the recent messages from memory,
//! older ones read back from the store); the end is committed before anyone hears of
//! it, and nothing is taken after it. The driver (`actors::chat::ChatActor`) moves
//! bytes: it carries out the outputs and feeds back the store's answers.

use crate::logins::RateLimit;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// What a thread allows.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Messages one thread may hold; the customer is asked to start a new one beyond.
    pub max_messages: usize,
    /// Messages kept in memory (the store has them all).
    pub recent: usize,
    /// The customer's messages allowed per `rate_window`.
    pub customer_rate: u32,
    pub rate_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_messages: 1000,
            recent: 100,
            customer_rate: 10,
            rate_window: Duration::from_secs(10),
        }
    }
}

/// The time, injected: the monotonic clock (rates) and Unix milliseconds (what a
/// message says it was sent at).
#[derive(Debug, Clone, Copy)]
pub struct Time {
    pub now: Instant,
    pub unix_ms: u64,
}

impl Time {
    pub fn now() -> Time {
        Time {
            now: crate::clock::now(),
            unix_ms: crate::clock::unix_millis(),
        }
    }
}

/// One message of the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: u64,
    /// `customer`, `agent` or `system`.
    pub from: &'static str,
    pub name: String,
    pub text: String,
    pub at: u64,
    /// An approved template the agent sent through a provider (`{name, language,
    /// parameters}`); `text` says what it is for people.
    pub template: Option<Box<serde_json::Value>>,
}

impl Message {
    /// As the page and the desktop get it.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"type": "message", "seq": self.seq, "from": self.from, "name": self.name, "text": self.text, "at": self.at});
        if let Some(t) = &self.template {
            v["template"] = (**t).clone();
        }
        v
    }

    /// A message as the store keeps it, read back (`None`: not one of a thread's).
    pub fn from_stored(v: &serde_json::Value) -> Option<Message> {
        let from = match v["from"].as_str()? {
            "customer" => "customer",
            "agent" => "agent",
            "bot" => "bot",
            "system" => "system",
            _ => return None,
        };
        Some(Message {
            seq: v["seq"].as_u64()?,
            from,
            name: v["name"].as_str().unwrap_or_default().to_string(),
            text: v["text"].as_str().unwrap_or_default().to_string(),
            at: v["at"].as_u64().unwrap_or_default(),
            template: v
                .get("template")
                .filter(|t| t.is_object())
                .map(|t| Box::new(t.clone())),
        })
    }

    /// The sender's id for a stored message (a provider's message id, a page's client
    /// id), by which a resumed thread knows it again.
    pub fn client_id_of(stored: &serde_json::Value) -> Option<(String, u64)> {
        Some((
            stored["client_id"].as_str()?.to_string(),
            stored["seq"].as_u64()?,
        ))
    }

    /// As the store keeps it (a timeline entry's data).
    fn stored(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"from": self.from, "name": self.name, "text": self.text, "seq": self.seq, "at": self.at});
        if let Some(t) = &self.template {
            v["template"] = (**t).clone();
        }
        v
    }
}

/// Who asked for a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The customer's page, reconnecting.
    Customer,
    /// The agent the thread was just assigned to (their transcript).
    Agent,
}

#[derive(Debug)]
pub enum Input {
    /// The customer sends a message with their page's (or their provider's) id for
    /// it; `reply`, if any, hears its sequence number once stored (or at once for one
    /// stored before), or why not.
    CustomerSays {
        id: String,
        text: String,
        reply: Option<u64>,
    },
    /// The agent sends; `reply` hears the sequence number or why not.
    AgentSays {
        name: String,
        text: String,
        reply: u64,
        /// Sent as this approved template (a provider thread).
        template: Option<Box<serde_json::Value>>,
    },
    /// A supervisor writes to the customer (barging into the chat): shown to both as
    /// an agent's message under `name`, stored with who they are. The first one tells
    /// the customer they joined.
    SupervisorSays {
        supervisor: String,
        name: String,
        text: String,
        reply: u64,
    },
    /// A supervisor takes the conversation over from its agent (or from the queue):
    /// [`Output::TakenOver`], then the customer is told who looks after them now;
    /// their messages after it say no second join; from then only they write
    /// ([`Input::SupervisorSays`]) and end it ([`Input::SupervisorEnds`]). Refused once
    /// the thread is closed or taken over.
    TakeOver {
        supervisor: String,
        name: String,
        reply: u64,
    },
    /// The supervisor who took the conversation over ends it (closed by `supervisor`,
    /// as [`Input::Close`]); anyone else is refused.
    SupervisorEnds { supervisor: String, reply: u64 },
    /// A supervisor's private note to the agent (whispering): stored on the timeline,
    /// shown to the agent, never to the customer, and no message of the thread.
    Note {
        supervisor: String,
        name: String,
        text: String,
        reply: u64,
    },
    /// The store's answer to [`Output::StoreNote`].
    NoteStored {
        reply: u64,
        note: serde_json::Value,
        result: Result<(), String>,
    },
    /// The first-level bot answers (`crate::bot`): stored and shown like an agent's
    /// message, from `bot`; nothing once the thread is closed.
    BotSays(String),
    /// A line from the system (greeting, joins, transfers): shown, not stored (what it
    /// tells of is on the timeline).
    System(String),
    /// The store's answer to [`Output::Store`].
    Stored {
        seq: u64,
        result: Result<(), String>,
    },
    /// The customer's page connected, having seen messages up to `after`; `agent` is
    /// who has the thread now (the page shows it).
    Connect { after: u64, agent: Option<String> },
    /// An agent was assigned: they get the transcript, the customer a line saying so.
    AgentJoined { who: String },
    /// The store's stored messages, asked for by [`Output::LoadOlder`].
    Older {
        to: Reader,
        after: u64,
        messages: Vec<serde_json::Value>,
    },
    /// End the thread (`by`: customer, agent, system, abandoned); `reply` hears when
    /// it is committed.
    Close {
        by: &'static str,
        reply: Option<u64>,
    },
    /// The store's answer to [`Output::StoreClose`].
    CloseStored { result: Result<(), String> },
}

#[derive(Debug, PartialEq)]
pub enum Output {
    /// Write this message's data on the interaction's timeline; answer with
    /// [`Input::Stored`].
    Store { seq: u64, data: serde_json::Value },
    /// Write the end (`closed` on the timeline, the interaction ended); answer with
    /// [`Input::CloseStored`].
    StoreClose { by: &'static str },
    /// A supervisor joined the conversation (before their first message is stored):
    /// on the timeline, and the agent told.
    Joined { supervisor: String, name: String },
    /// A supervisor took the conversation over: on the timeline, its agent released.
    TakenOver { supervisor: String, name: String },
    /// Write this note on the timeline (kind `note`); answer with [`Input::NoteStored`].
    StoreNote { reply: u64, note: serde_json::Value },
    /// A stored note, for the assigned agent (and whoever watches), never the customer.
    Note(serde_json::Value),
    /// A frame for the customer's page.
    Customer(serde_json::Value),
    /// A stored message for the assigned agent.
    Agent(Message),
    /// The messages so far, for the agent just assigned.
    Transcript(Vec<serde_json::Value>),
    /// Read the stored messages (those after `after` and before `before` are wanted);
    /// answer with [`Input::Older`].
    LoadOlder { to: Reader, after: u64, before: u64 },
    /// The answer to an agent's message or a close.
    Reply {
        reply: u64,
        result: Result<u64, String>,
    },
    /// The end is committed (`Err`: it could not be stored): the router and the agent
    /// are told now.
    Ended {
        by: &'static str,
        result: Result<(), String>,
    },
}

/// How a message came and who waits for it.
#[derive(Default)]
struct Via {
    /// The sender's own id for it (a page's, a provider's).
    client_id: Option<String>,
    /// Who hears its number once stored.
    reply: Option<u64>,
    template: Option<Box<serde_json::Value>>,
    /// Written by this supervisor (stored with the message).
    supervisor: Option<String>,
}

/// Supervisors who may write in one thread.
pub const MAX_SUPERVISORS: usize = 8;

/// A message sent to the store and not yet answered.
struct Pending {
    message: Message,
    client_id: Option<String>,
    reply: Option<u64>,
    /// Who sent the same message again meanwhile (a provider's retry) and waits too.
    also: Vec<u64>,
}

pub struct Thread {
    limits: Limits,
    /// The customer's name, on their messages.
    customer: String,
    recent: VecDeque<Message>,
    last_seq: u64,
    stored: usize,
    client_ids: HashMap<String, u64>,
    pending: HashMap<u64, Pending>,
    rate: RateLimit<()>,
    closed: Option<&'static str>,
    /// Waiting for the end to be stored: who asked.
    closing: Vec<u64>,
    /// The agent joining whose transcript is being read from the store.
    joining: Option<String>,
    /// Supervisors who have written in the thread (at most [`MAX_SUPERVISORS`]).
    joined: Vec<String>,
    /// The supervisor who took it over (login, display name).
    taken: Option<(String, String)>,
    out: VecDeque<Output>,
}

impl Thread {
    pub fn new(limits: Limits, customer: String) -> Thread {
        Thread {
            customer,
            rate: RateLimit::new(limits.customer_rate, limits.rate_window, 1),
            limits,
            recent: VecDeque::new(),
            last_seq: 0,
            stored: 0,
            client_ids: HashMap::new(),
            pending: HashMap::new(),
            closed: None,
            closing: Vec::new(),
            joining: None,
            joined: Vec::new(),
            taken: None,
            out: VecDeque::new(),
        }
    }

    /// A thread taken up again from the store (the node restarted): `past` is what
    /// it had stored, oldest first, and `ids` the senders' ids of those messages with
    /// their numbers. Numbering goes on after the last; the newest are in memory, the
    /// rest read from the store as for any long thread.
    pub fn resume(
        limits: Limits,
        customer: String,
        past: Vec<Message>,
        ids: Vec<(String, u64)>,
    ) -> Thread {
        let mut t = Thread::new(limits, customer);
        t.last_seq = past.iter().map(|m| m.seq).max().unwrap_or(0);
        t.stored = past.len();
        // A message the provider sends again after the restart is the one stored
        // (even where the crash came between storing it and acknowledging it).
        t.client_ids.extend(ids);
        for m in past {
            t.remember(m);
        }
        t
    }

    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The last sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Who ended the thread, once it is ended.
    pub fn closed(&self) -> Option<&'static str> {
        self.closed
    }

    /// The supervisor who took the thread over (login, display name), if one did.
    pub fn taken(&self) -> Option<(&str, &str)> {
        self.taken.as_ref().map(|(s, n)| (s.as_str(), n.as_str()))
    }

    /// Answers `reply` with why the thread takes nothing more (closed), if it does not.
    fn refused(&mut self, reply: u64) -> bool {
        let Some(why) = self.refusal() else {
            return false;
        };
        self.out.push_back(Output::Reply {
            reply,
            result: Err(why),
        });
        true
    }

    /// Answers `reply` with why `supervisor` may not act on a thread another took over.
    fn taken_by_another(&mut self, supervisor: &str, reply: u64) -> bool {
        let Some((_, name)) = self.taken.as_ref().filter(|(s, _)| s != supervisor) else {
            return false;
        };
        let why = format!("{name} has taken this chat over");
        self.out.push_back(Output::Reply {
            reply,
            result: Err(why),
        });
        true
    }

    /// The recent messages, oldest first (for a screen-pop webhook).
    pub fn recent(&self) -> impl Iterator<Item = &Message> {
        self.recent.iter()
    }

    pub fn handle(&mut self, t: Time, input: Input) {
        match input {
            Input::CustomerSays { id, text, reply } => self.customer_says(t, id, text, reply),
            Input::AgentSays {
                name,
                text,
                reply,
                template,
            } => {
                if self.refused(reply) {
                    return;
                }
                let via = Via {
                    reply: Some(reply),
                    template,
                    ..Via::default()
                };
                self.post(t, "agent", name, text, via);
            }
            Input::SupervisorSays {
                supervisor,
                name,
                text,
                reply,
            } => {
                if self.taken_by_another(&supervisor, reply) {
                    return;
                }
                let joined = self.joined.contains(&supervisor);
                let refusal = self.refusal().or_else(|| {
                    (!joined && self.joined.len() >= MAX_SUPERVISORS).then(|| {
                        format!("{MAX_SUPERVISORS} supervisors have joined this chat already")
                    })
                });
                if let Some(why) = refusal {
                    return self.out.push_back(Output::Reply {
                        reply,
                        result: Err(why),
                    });
                }
                if !joined {
                    self.joined.push(supervisor.clone());
                    self.out.push_back(Output::Joined {
                        supervisor: supervisor.clone(),
                        name: name.clone(),
                    });
                    self.handle(t, Input::System(format!("{name} joined the chat.")));
                }
                let via = Via {
                    reply: Some(reply),
                    supervisor: Some(supervisor),
                    ..Via::default()
                };
                self.post(t, "agent", name, text, via);
            }
            Input::TakeOver {
                supervisor,
                name,
                reply,
            } => {
                if self.refused(reply) || self.taken_by_another(&supervisor, reply) {
                    return;
                }
                if self.taken.is_some() {
                    return self.out.push_back(Output::Reply {
                        reply,
                        result: Err("you have taken this chat over already".into()),
                    });
                }
                // The one who takes over may always write, however many joined.
                if !self.joined.contains(&supervisor) {
                    self.joined.push(supervisor.clone());
                }
                self.taken = Some((supervisor.clone(), name.clone()));
                self.out.push_back(Output::TakenOver {
                    supervisor,
                    name: name.clone(),
                });
                self.handle(
                    t,
                    Input::System(format!("{name} is looking after you now.")),
                );
                self.out.push_back(Output::Reply {
                    reply,
                    result: Ok(self.last_seq),
                });
            }
            Input::SupervisorEnds { supervisor, reply } => {
                if self.taken.as_ref().map(|(s, _)| s) != Some(&supervisor) {
                    let why = "only the supervisor who took the chat over ends it (its agent does otherwise)";
                    return self.out.push_back(Output::Reply {
                        reply,
                        result: Err(why.into()),
                    });
                }
                self.handle(
                    t,
                    Input::Close {
                        by: "supervisor",
                        reply: Some(reply),
                    },
                );
            }
            Input::Note {
                supervisor,
                name,
                text,
                reply,
            } => {
                if self.refused(reply) {
                    return;
                }
                let note = serde_json::json!({"supervisor": supervisor, "name": name, "text": text, "at": t.unix_ms});
                self.out.push_back(Output::StoreNote { reply, note });
            }
            Input::NoteStored {
                reply,
                note,
                result,
            } => {
                let result = match result {
                    Ok(()) => {
                        let at = note["at"].as_u64().unwrap_or(t.unix_ms);
                        self.out.push_back(Output::Note(note));
                        Ok(at)
                    }
                    Err(e) => Err(format!("the note was not stored ({e}); send it again")),
                };
                self.out.push_back(Output::Reply { reply, result });
            }
            Input::BotSays(text) => {
                if self.refusal().is_none() {
                    self.post(t, "bot", "Bot".into(), text, Via::default());
                }
            }
            Input::System(text) => {
                let m = Message {
                    seq: self.next_seq(),
                    from: "system",
                    name: String::new(),
                    text,
                    at: t.unix_ms,
                    template: None,
                };
                self.out.push_back(Output::Customer(m.json()));
                self.remember(m);
            }
            Input::Stored { seq, result } => self.stored(seq, result),
            Input::Connect { after, agent } => {
                self.out.push_back(Output::Customer(serde_json::json!({
                    "type": "state",
                    "agent": agent,
                    "closed": self.closed,
                    "last_seq": self.last_seq,
                })));
                self.replay(t, Reader::Customer, after);
            }
            Input::AgentJoined { who } => {
                self.joining = Some(who);
                self.replay(t, Reader::Agent, 0);
            }
            Input::Older {
                to,
                after,
                messages,
            } => {
                let first = self.first_in_memory();
                let mut all: Vec<serde_json::Value> = messages
                    .into_iter()
                    .filter(|d| d["seq"].as_u64().is_some_and(|s| s > after && s < first))
                    .map(|mut d| {
                        d["type"] = "message".into();
                        d
                    })
                    .collect();
                all.extend(self.recent_after(after));
                self.deliver(t, to, all);
            }
            Input::Close { by, reply } => {
                if self.closed.is_some() {
                    if let Some(reply) = reply {
                        self.out.push_back(Output::Reply {
                            reply,
                            result: Ok(0),
                        });
                    }
                    return;
                }
                self.closed = Some(by);
                self.closing.extend(reply);
                self.out.push_back(Output::StoreClose { by });
            }
            Input::CloseStored { result } => {
                let Some(by) = self.closed else { return };
                self.out.push_back(Output::Customer(
                    serde_json::json!({"type": "closed", "by": by}),
                ));
                self.out.push_back(Output::Ended {
                    by,
                    result: result.clone(),
                });
                for reply in std::mem::take(&mut self.closing) {
                    self.out.push_back(Output::Reply {
                        reply,
                        result: result.clone().map(|_| 0),
                    });
                }
            }
        }
    }

    fn customer_says(&mut self, t: Time, id: String, text: String, reply: Option<u64>) {
        if let Some(seq) = self.client_ids.get(&id).copied() {
            // Stored already; the ack was lost: ack again, store nothing.
            if let Some(reply) = reply {
                self.out.push_back(Output::Reply {
                    reply,
                    result: Ok(seq),
                });
            }
            return self.out.push_back(Output::Customer(
                serde_json::json!({"type": "ack", "id": id, "seq": seq}),
            ));
        }
        // The same id on its way to the store: this one is that one.
        if let Some((_, p)) = self
            .pending
            .iter_mut()
            .find(|(_, p)| p.client_id.as_deref() == Some(id.as_str()))
        {
            if let Some(reply) = reply {
                p.also.push(reply);
            }
            return;
        }
        let refusal = self.refusal().or_else(|| {
            if self.stored + self.pending.len() >= self.limits.max_messages {
                Some("this chat is too long: please start a new one".to_string())
            } else if self.rate.take(t.now, &()).is_err() {
                Some(format!(
                    "slow down: at most {} messages in {} seconds; send it again in a moment",
                    self.limits.customer_rate,
                    self.limits.rate_window.as_secs()
                ))
            } else {
                None
            }
        });
        if let Some(why) = refusal {
            if let Some(reply) = reply {
                self.out.push_back(Output::Reply {
                    reply,
                    result: Err(why.clone()),
                });
            }
            return self.out.push_back(Output::Customer(
                serde_json::json!({"type": "error", "id": id, "reason": why}),
            ));
        }
        let name = self.customer.clone();
        let via = Via {
            client_id: Some(id),
            reply,
            ..Via::default()
        };
        self.post(t, "customer", name, text, via);
    }

    /// Why nothing more is taken (the thread ended).
    fn refusal(&self) -> Option<String> {
        self.closed.map(|by| {
            if by == "abandoned" {
                "the chat was closed after the customer left".to_string()
            } else {
                format!("the chat was closed by the {by}")
            }
        })
    }

    /// Numbers a message now (a message that fails to store leaves a gap) and sends it
    /// to the store; it is told to anyone only once stored.
    fn post(&mut self, t: Time, from: &'static str, name: String, text: String, via: Via) {
        let Via {
            client_id,
            reply,
            template,
            supervisor,
        } = via;
        let message = Message {
            seq: self.next_seq(),
            from,
            name,
            text,
            at: t.unix_ms,
            template,
        };
        let mut data = message.stored();
        if let Some(id) = &client_id {
            data["client_id"] = id.as_str().into();
        }
        if let Some(s) = supervisor {
            data["supervisor"] = s.into();
        }
        self.out.push_back(Output::Store {
            seq: message.seq,
            data,
        });
        self.pending.insert(
            message.seq,
            Pending {
                message,
                client_id,
                reply,
                also: Vec::new(),
            },
        );
    }

    fn stored(&mut self, seq: u64, result: Result<(), String>) {
        let Some(p) = self.pending.remove(&seq) else {
            return;
        };
        if let Err(e) = result {
            let why = format!("not stored ({e}); send it again");
            if let Some(id) = p.client_id {
                self.out.push_back(Output::Customer(
                    serde_json::json!({"type": "error", "id": id, "reason": why}),
                ));
            }
            for reply in p.reply.into_iter().chain(p.also) {
                self.out.push_back(Output::Reply {
                    reply,
                    result: Err(why.clone()),
                });
            }
            return;
        }
        self.stored += 1;
        if let Some(id) = p.client_id {
            self.client_ids.insert(id.clone(), seq);
            self.out.push_back(Output::Customer(
                serde_json::json!({"type": "ack", "id": id, "seq": seq}),
            ));
        }
        self.out.push_back(Output::Customer(p.message.json()));
        self.out.push_back(Output::Agent(p.message.clone()));
        for reply in p.reply.into_iter().chain(p.also) {
            self.out.push_back(Output::Reply {
                reply,
                result: Ok(seq),
            });
        }
        self.remember(p.message);
    }

    fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    fn remember(&mut self, m: Message) {
        self.recent.push_back(m);
        while self.recent.len() > self.limits.recent {
            self.recent.pop_front();
        }
    }

    fn first_in_memory(&self) -> u64 {
        self.recent.front().map_or(self.last_seq + 1, |m| m.seq)
    }

    fn recent_after(&self, after: u64) -> Vec<serde_json::Value> {
        self.recent
            .iter()
            .filter(|m| m.seq > after)
            .map(Message::json)
            .collect()
    }

    /// Everything after `after` for `to`: from memory when it holds it all, else the
    /// store is asked for the older part first.
    fn replay(&mut self, t: Time, to: Reader, after: u64) {
        let first = self.first_in_memory();
        if after + 1 >= first {
            let all = self.recent_after(after);
            return self.deliver(t, to, all);
        }
        self.out.push_back(Output::LoadOlder {
            to,
            after,
            before: first,
        });
    }

    fn deliver(&mut self, t: Time, to: Reader, all: Vec<serde_json::Value>) {
        match to {
            Reader::Customer => {
                self.out.extend(all.into_iter().map(Output::Customer));
                if let Some(by) = self.closed.filter(|_| self.closing.is_empty()) {
                    self.out.push_back(Output::Customer(
                        serde_json::json!({"type": "closed", "by": by}),
                    ));
                }
            }
            Reader::Agent => {
                self.out.push_back(Output::Transcript(all));
                if let Some(who) = self.joining.take() {
                    self.handle(t, Input::System(format!("{who} joined the chat.")));
                }
            }
        }
    }
}
