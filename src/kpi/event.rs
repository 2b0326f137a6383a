//! The event log of one interaction, typed: what the timeline stores, read into
//! [`Event`]s in one canonical order.

/// Who ended an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    Customer,
    Agent,
    /// The gateway (the flow hung up, a failure, a restart, a transfer away).
    System,
}

/// What a survey asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Satisfaction, 1 (bad) to 5 (very good).
    Csat,
    /// Would you recommend us, 0 to 10.
    Nps,
    /// Customer effort, 1 (very easy) to 7 (very hard).
    Ces,
}

impl Metric {
    /// The metric of a stored answer's `metric` field (absent: CSAT, the chat rating).
    pub fn from_name(s: Option<&str>) -> Option<Metric> {
        match s {
            None | Some("csat") => Some(Metric::Csat),
            Some("nps") => Some(Metric::Nps),
            Some("ces") => Some(Metric::Ces),
            _ => None,
        }
    }

    /// The scores an answer may have.
    pub fn range(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Metric::Csat => 1..=5,
            Metric::Nps => 0..=10,
            Metric::Ces => 1..=7,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Csat => "csat",
            Metric::Nps => "nps",
            Metric::Ces => "ces",
        }
    }

    /// The score keys typed on a phone say, if in range (`10` for NPS; no leading
    /// zero).
    pub fn score(self, keys: &str) -> Option<i64> {
        if keys.is_empty() || keys.len() > 2 || (keys.len() == 2 && keys.starts_with('0')) {
            return None;
        }
        let n: i64 = keys.parse().ok()?;
        self.range().contains(&n).then_some(n)
    }
}

/// One thing that happened to an interaction. The variants' order is the canonical
/// order of events with the same timestamp, so every result computed from a log is
/// the same however equal-time events were stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    /// The interaction began (a call arrived, a chat opened, a message came).
    Created,
    IvrStart,
    IvrEnd,
    BotStart,
    /// The bot's part ended: handed to a person (`handoff`), or the conversation
    /// ended while the bot had it; `intent` is the last article it matched.
    BotEnd {
        handoff: bool,
        intent: Option<String>,
    },
    /// It joined a queue (also again, after a transfer to a queue or an overflow).
    Queued {
        queue: String,
    },
    /// The customer wrote (text channels).
    CustomerMessage,
    /// The router offered it to an agent.
    Offered {
        agent: String,
    },
    /// The agent took the offer (a call still has to reach them).
    Accepted {
        agent: String,
    },
    Rejected {
        agent: String,
    },
    /// Nobody took the offer in time.
    Lapsed {
        agent: String,
    },
    /// The agent accepted but their phone or browser never connected.
    Missed {
        agent: String,
    },
    /// An agent is with the customer (on the call, or the chat is theirs).
    Connected {
        agent: String,
    },
    /// A message from the business: `human` for an agent's, not a bot's or the
    /// gateway's.
    AgentMessage {
        agent: String,
        human: bool,
    },
    HoldOn,
    HoldOff,
    /// The agent handed it on to another agent or queue.
    Transfer {
        from: String,
        to: String,
    },
    Ended {
        by: Party,
    },
    /// The agent's wrap-up began (the router's note), with when it runs out (Unix ms)
    /// if the queue gives it a time.
    WrapUpStart {
        agent: String,
        until: Option<i64>,
    },
    WrapUpEnd {
        agent: String,
    },
    Disposition {
        code: String,
    },
    CaseResolved,
    CaseReopened,
    Survey {
        metric: Metric,
        score: i64,
    },
}

/// An event and when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub at: i64,
    pub event: Event,
}

/// One interaction with its log.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: String,
    /// voice, chat, whatsapp, sms, email...
    pub channel: String,
    pub inbound: bool,
    pub customer: Option<i64>,
    /// The case (conversation) it is on.
    pub case: Option<i64>,
    /// Its events in canonical order (see [`Contact::new`]).
    pub events: Vec<Entry>,
}

impl Contact {
    /// A contact with its events put in canonical order: by time, then by [`Event`]'s
    /// order.
    pub fn new(
        id: impl Into<String>,
        channel: impl Into<String>,
        inbound: bool,
        customer: Option<i64>,
        case: Option<i64>,
        mut events: Vec<Entry>,
    ) -> Contact {
        events.sort();
        Contact {
            id: id.into(),
            channel: channel.into(),
            inbound,
            customer,
            case,
            events,
        }
    }
}

/// What an interaction's stored row says, for [`from_timeline`].
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub channel: String,
    pub inbound: bool,
    /// The IVR flow that answered it (voice), empty if none.
    pub flow: String,
    pub started_at: i64,
    /// When it first joined a queue, and which.
    pub offered_at: Option<i64>,
    pub queue: Option<String>,
}

/// The typed events of one interaction from its stored row and timeline rows
/// (kind, data, at), as the gateway writes them. Kinds that carry no KPI (notes,
/// recordings...) are left out. A voice call answered by a flow is in the IVR from its
/// start until it joins a queue, reaches an agent or ends.
pub fn from_timeline<'a>(
    row: &Row,
    timeline: impl IntoIterator<Item = (&'a str, &'a serde_json::Value, i64)>,
) -> Vec<Entry> {
    let mut out = vec![Entry {
        at: row.started_at,
        event: Event::Created,
    }];
    let voice = matches!(row.channel.as_str(), "voice" | "video");
    if voice && row.inbound && !row.flow.is_empty() {
        out.push(Entry {
            at: row.started_at,
            event: Event::IvrStart,
        });
    }
    if let Some(at) = row.offered_at {
        out.push(Entry {
            at,
            event: Event::Queued {
                queue: row.queue.clone().unwrap_or_default(),
            },
        });
    }
    let text = |d: &serde_json::Value, k: &str| d[k].as_str().unwrap_or_default().to_string();
    for (kind, d, at) in timeline {
        let agent = || text(d, "agent");
        let mut push = |event| out.push(Entry { at, event });
        match kind {
            "offered" => push(Event::Offered { agent: agent() }),
            // A chat is the agent's once they accept; a call once it reaches them.
            "assigned" if voice => push(Event::Accepted { agent: agent() }),
            "assigned" => {
                push(Event::Accepted { agent: agent() });
                push(Event::Connected { agent: agent() });
            }
            "connected" => push(Event::Connected { agent: agent() }),
            // A supervisor took the chat over: they handle it from here.
            "taken over" => push(Event::Connected {
                agent: text(d, "supervisor"),
            }),
            "offer rejected" => push(Event::Rejected { agent: agent() }),
            "offer lapsed" => push(Event::Lapsed { agent: agent() }),
            "agent missed" => push(Event::Missed { agent: agent() }),
            "held" => push(Event::HoldOn),
            "resumed" => push(Event::HoldOff),
            "transferred" => push(Event::Transfer {
                from: text(d, "from"),
                to: text(d, "to"),
            }),
            "overflow" if d["to"] != "voicemail" => push(Event::Queued {
                queue: text(d, "to"),
            }),
            "requeued" => push(Event::Queued {
                queue: text(d, "queue"),
            }),
            "message" => match d["from"].as_str() {
                Some("customer") => push(Event::CustomerMessage),
                Some("agent") => push(Event::AgentMessage {
                    agent: agent(),
                    human: true,
                }),
                Some("bot") => push(Event::AgentMessage {
                    agent: "bot".into(),
                    human: false,
                }),
                _ => {}
            },
            "ivr ended" => push(Event::IvrEnd),
            "bot started" => push(Event::BotStart),
            // Logs from before containment was counted have no `handoff`: those
            // were all hand-offs.
            "bot ended" => push(Event::BotEnd {
                handoff: d["handoff"].as_bool().unwrap_or(true),
                intent: d["intent"].as_str().map(str::to_string),
            }),
            "caller hung up" => push(Event::Ended {
                by: Party::Customer,
            }),
            "hung up" => push(Event::Ended { by: Party::Agent }),
            "closed" => push(Event::Ended {
                by: match d["by"].as_str() {
                    Some("customer") | Some("abandoned") => Party::Customer,
                    Some("agent") | Some("supervisor") => Party::Agent,
                    _ => Party::System,
                },
            }),
            "interaction ended" => push(Event::Ended {
                by: match d["outcome"].as_str() {
                    Some("caller_hangup") | Some("abandoned") => Party::Customer,
                    _ => Party::System,
                },
            }),
            "wrap-up started" => push(Event::WrapUpStart {
                agent: agent(),
                until: d["until"].as_i64(),
            }),
            "wrapped up" => {
                push(Event::WrapUpEnd { agent: agent() });
                let code = text(d, "disposition");
                if !code.is_empty() {
                    push(Event::Disposition { code });
                }
                if d["resolved"] == true {
                    push(Event::CaseResolved);
                }
            }
            "reopened" => push(Event::CaseReopened),
            "rated" => {
                if let (Some(metric), Some(score)) =
                    (Metric::from_name(d["metric"].as_str()), d["score"].as_i64())
                {
                    if metric.range().contains(&score) {
                        push(Event::Survey { metric, score });
                    }
                }
            }
            _ => {}
        }
    }
    out
}
