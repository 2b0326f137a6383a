//! The `Router` actor: one per node, on its own Arbiter. It owns the sans-IO ACD
//! ([`crate::routing::engine::Router`]), feeds it the clock, and carries its decisions
//! out: offers and revocations to `AgentActor`s, assignments to the work's owner (the
//! `CallActor` or `ChatActor`, which records them on its interaction). It names things
//! the way the outside does (queue names, agent login names, interaction ids) and maps
//! them to the engine's ids.

pub use super::messages::Logout;
use super::messages::{AgentPush, QueueStatus};
use crate::config::QueueConfig;
use crate::routing::engine::{
    AgentId, AgentSpec, Channel, ItemId, ItemSpec, OverflowTo, Presence, QueueId, QueueSpec,
    RevokeReason, RouteError, Router, RouterEvent,
};
use actix::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub mod floor;

/// A piece of work handed to the router: who it is for and what the agent sees.
#[derive(Clone)]
pub struct Work {
    pub interaction: String,
    pub channel: Channel,
    pub queue: String,
    pub customer: Option<i64>,
    pub conversation: Option<i64>,
    /// Caller number or the customer's name, for the offer.
    pub from: String,
    /// Screen-pop details (IVR answers...).
    pub details: serde_json::Value,
    /// The actor that owns the interaction and hears what becomes of it.
    pub owner: Recipient<WorkEvent>,
}

/// What becomes of a piece of work, told to its owner.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum WorkEvent {
    Offered {
        agent: String,
    },
    Assigned {
        agent: String,
        display: String,
        extension: Option<String>,
        addr: Recipient<AgentPush>,
    },
    /// The agent who had it handed it on (a transfer); it is waiting or offered again.
    Transferred {
        from: String,
        to: String,
    },
    /// It left its queue for another queue, or for voicemail.
    Overflow {
        to: String,
    },
    /// An offer ended without the agent taking it: they rejected it, or it lapsed.
    OfferEnded {
        agent: String,
        lapsed: bool,
    },
}

/// An agent as the router knows them.
#[derive(Clone, Debug)]
pub struct AgentLogin {
    pub name: String,
    pub display: String,
    pub extension: Option<String>,
    pub skills: HashMap<String, u8>,
    pub capacity: HashMap<Channel, u8>,
    pub call_blocks_others: bool,
    pub team: Option<String>,
    pub queues: Vec<String>,
}

struct AgentEntry {
    id: AgentId,
    login: AgentLogin,
    addr: Recipient<AgentPush>,
    /// What the engine was told at login (to tell a rebuilt engine again).
    spec: AgentSpec,
    /// Since when their presence is what it is.
    since: Instant,
}

struct Entry {
    /// What the engine was told at enqueue, and the queue (to tell a rebuilt engine).
    spec: ItemSpec,
    queue: QueueId,
    work: Work,
    /// The agent holding it (assigned).
    agent: Option<AgentId>,
}

pub struct RouterActor {
    engine: Router,
    queues: Vec<QueueConfig>,
    queue_ids: HashMap<String, QueueId>,
    items: HashMap<ItemId, Entry>,
    by_interaction: HashMap<String, ItemId>,
    agents: HashMap<AgentId, AgentEntry>,
    agent_ids: HashMap<String, AgentId>,
    /// The other way round (an agent logged out with work left is still told).
    agent_names: HashMap<AgentId, String>,
    next_item: u64,
    next_agent: u64,
    timer: Option<(Instant, SpawnHandle)>,
    /// Per queue (by id), what its members were last told: waiting items and since
    /// when the oldest waits.
    told_waiting: Vec<(usize, Option<Instant>)>,
    /// Where an agent's wrap-up is noted (its start and when it runs out, for the
    /// after-contact work of an agent who lets it run out).
    store: Option<crate::store::Store>,
    /// The agents' activity changes on their way to `store` (one writer, in order).
    activity: Option<tokio::sync::mpsc::Sender<(String, i64, &'static str)>>,
    /// Told when that writer has written everything it was given (its sender gone).
    activity_written: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Changes dropped on a full queue since the last warning, and when that was.
    activity_dropped: u64,
    activity_warned: Option<std::time::Instant>,
    /// Chats a supervisor took over (out of the engine: no agent holds them), by
    /// interaction, until they end: still on the floor, as the supervisor's.
    taken: HashMap<String, floor::Taken>,
}

/// Activity changes waiting to be written at most (beyond, one is dropped and said).
const ACTIVITY_QUEUE: usize = 4096;

impl RouterActor {
    /// Notes each wrap-up's start on the interaction's timeline in `store`, and the
    /// agents' activity (occupancy) in its log.
    pub fn with_store(mut self, store: crate::store::Store) -> RouterActor {
        self.store = Some(store);
        self
    }

    pub fn new(queues: &[QueueConfig]) -> Result<RouterActor, String> {
        let mut r = RouterActor {
            engine: Router::new(crate::clock::now()),
            queues: vec![],
            queue_ids: HashMap::new(),
            items: HashMap::new(),
            by_interaction: HashMap::new(),
            agents: HashMap::new(),
            agent_ids: HashMap::new(),
            agent_names: HashMap::new(),
            next_item: 1,
            next_agent: 1,
            timer: None,
            told_waiting: Vec::new(),
            store: None,
            activity: None,
            activity_written: None,
            activity_dropped: 0,
            activity_warned: None,
            taken: HashMap::new(),
        };
        // Overflow targets may name queues defined later: add them all first.
        for q in queues {
            r.add_queue(q.clone())?;
        }
        for q in queues {
            r.set_overflow(q)?;
        }
        Ok(r)
    }

    fn add_queue(&mut self, q: QueueConfig) -> Result<QueueId, String> {
        if self.queue_ids.contains_key(&q.name) {
            return Err(format!("queue \"{}\" exists", q.name));
        }
        let strategy = q.strategy;
        let mut spec = QueueSpec::new(&q.name);
        spec.strategy = strategy;
        spec.sla = Duration::from_secs(q.sla_secs);
        spec.offer_timeout = Duration::from_secs(q.offer_timeout_secs.max(1));
        spec.sticky = (q.sticky_secs > 0).then(|| Duration::from_secs(q.sticky_secs));
        spec.teams = q.teams.clone();
        let id = self.engine.add_queue(spec);
        self.queue_ids.insert(q.name.clone(), id);
        self.queues.push(q);
        Ok(id)
    }

    fn set_overflow(&mut self, q: &QueueConfig) -> Result<(), String> {
        if q.overflow_secs == 0 || q.overflow_to.is_empty() {
            return Ok(());
        }
        let to = if q.overflow_to == "voicemail" {
            OverflowTo::Voicemail
        } else {
            OverflowTo::Queue(
                *self
                    .queue_ids
                    .get(&q.overflow_to)
                    .ok_or_else(|| format!("no queue named \"{}\"", q.overflow_to))?,
            )
        };
        self.engine.set_overflow(
            self.queue_ids[&q.name],
            Some((Duration::from_secs(q.overflow_secs), to)),
        );
        Ok(())
    }

    fn queue_cfg(&self, id: QueueId) -> &QueueConfig {
        &self.queues[id.0 as usize]
    }

    /// Carries out the engine's decisions, then re-arms its timer.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                RouterEvent::Offer {
                    item,
                    agent,
                    expires,
                } => {
                    let (Some(e), Some(a)) = (self.items.get(&item), self.agents.get(&agent))
                    else {
                        continue;
                    };
                    let w = &e.work;
                    let q = self
                        .engine
                        .queue_of(item)
                        .map(|q| self.queue_cfg(q).name.clone())
                        .unwrap_or_default();
                    a.addr.do_send(AgentPush::Offer {
                        interaction: w.interaction.clone(),
                        channel: crate::routing::channel_name(w.channel),
                        queue: q,
                        from: w.from.clone(),
                        customer: w.customer,
                        conversation: w.conversation,
                        details: w.details.clone(),
                        priority: e.spec.priority,
                        vip: e.spec.vip,
                        expires_in_ms: expires
                            .saturating_duration_since(crate::clock::now())
                            .as_millis() as u64,
                        browser_call: matches!(w.channel, Channel::Voice | Channel::Video)
                            && a.login.extension.is_none(),
                    });
                    w.owner.do_send(WorkEvent::Offered {
                        agent: a.login.name.clone(),
                    });
                }
                RouterEvent::Revoke {
                    item,
                    agent,
                    reason,
                } => {
                    let Some(a) = self.agents.get(&agent) else {
                        continue;
                    };
                    let e = self.items.get(&item);
                    if let (Some(e), RevokeReason::Rejected | RevokeReason::Expired) = (e, reason) {
                        e.work.owner.do_send(WorkEvent::OfferEnded {
                            agent: a.login.name.clone(),
                            lapsed: reason == RevokeReason::Expired,
                        });
                    }
                    let interaction = e.map(|e| e.work.interaction.clone()).unwrap_or_default();
                    a.addr.do_send(AgentPush::Revoked {
                        interaction,
                        reason: match reason {
                            RevokeReason::Taken => "taken by another agent",
                            RevokeReason::Cancelled => "the customer left",
                            RevokeReason::Expired => "not accepted in time",
                            RevokeReason::Rejected => "rejected",
                            RevokeReason::LoggedOut => "logged out",
                        },
                    });
                }
                RouterEvent::Assigned { item, agent } => {
                    let Some(a) = self.agents.get(&agent) else {
                        continue;
                    };
                    let Some(e) = self.items.get_mut(&item) else {
                        continue;
                    };
                    e.agent = Some(agent);
                    e.work.owner.do_send(WorkEvent::Assigned {
                        agent: a.login.name.clone(),
                        display: a.login.display.clone(),
                        extension: a.login.extension.clone(),
                        addr: a.addr.clone(),
                    });
                    a.addr.do_send(AgentPush::Assigned {
                        interaction: e.work.interaction.clone(),
                        channel: crate::routing::channel_name(e.work.channel),
                        customer: e.work.customer,
                        // No phone: the desktop offers a WebRTC leg for the call.
                        browser_call: matches!(e.work.channel, Channel::Voice | Channel::Video)
                            && a.login.extension.is_none(),
                    });
                }
                RouterEvent::Overflow { item, to } => {
                    let to = match to {
                        OverflowTo::Voicemail => {
                            if let Some(e) = self.items.remove(&item) {
                                self.by_interaction.remove(&e.work.interaction);
                                e.work.owner.do_send(WorkEvent::Overflow {
                                    to: "voicemail".into(),
                                });
                            }
                            continue;
                        }
                        OverflowTo::Queue(q) => self.queue_cfg(q).name.clone(),
                    };
                    if let Some(e) = self.items.get(&item) {
                        e.work.owner.do_send(WorkEvent::Overflow { to });
                    }
                }
                RouterEvent::Activity {
                    agent,
                    activity,
                    at,
                } => {
                    if let (Some(tx), Some(name)) = (&self.activity, self.agent_names.get(&agent)) {
                        let row = (name.clone(), unix_at(at) as i64, activity.name());
                        if tx.try_send(row).is_err() {
                            // Said once per 10 s with how many, not once per change.
                            self.activity_dropped += 1;
                            let now = crate::clock::now();
                            let due = self.activity_warned.is_none_or(|t| {
                                now.saturating_duration_since(t)
                                    >= std::time::Duration::from_secs(10)
                            });
                            if due {
                                tracing::warn!(
                                    dropped = self.activity_dropped,
                                    "agents' activity log full: changes dropped"
                                );
                                self.activity_warned = Some(now);
                                self.activity_dropped = 0;
                            }
                        }
                    }
                }
                RouterEvent::Presence { agent, presence } => {
                    if let Some(a) = self.agents.get_mut(&agent) {
                        a.since = crate::clock::now();
                        let until = match presence {
                            Presence::WrapUp { until } => Some(unix_at(until)),
                            _ => None,
                        };
                        a.addr.do_send(AgentPush::Presence {
                            presence: presence_name(presence),
                            until,
                        });
                    }
                }
            }
        }
        self.tell_waiting(None);
        self.rearm(ctx);
    }

    /// Tells the members of each queue whose waiting items changed (and `also`, an
    /// agent who just logged in) how their queues stand: their status bar shows work
    /// waiting even while they are busy on something else.
    fn tell_waiting(&mut self, also: Option<AgentId>) {
        let n = self.queues.len();
        self.told_waiting.resize(n, (0, None));
        // Only queues someone logged in serves are looked at (a scan of their waiting
        // items): a node under load with nobody logged in does no work here.
        let mut served = vec![false; n];
        for a in self.agents.values() {
            for q in &a.spec.queues {
                if let Some(s) = served.get_mut(q.0 as usize) {
                    *s = true;
                }
            }
        }
        let mut changed = vec![false; n];
        for (i, told) in self.told_waiting.iter_mut().enumerate() {
            if !served[i] {
                continue;
            }
            let now = self
                .engine
                .waiting_since(QueueId(i as u32))
                .unwrap_or_default();
            if *told != now {
                *told = now;
                changed[i] = true;
            }
        }
        if also.is_none() && !changed.contains(&true) {
            return;
        }
        for a in self.agents.values() {
            let mine = |q: &QueueId| changed.get(q.0 as usize) == Some(&true);
            if !(a.spec.queues.iter().any(mine) || also == Some(a.id)) {
                continue;
            }
            let queues = a
                .spec
                .queues
                .iter()
                .filter_map(|q| {
                    let (waiting, oldest) = *self.told_waiting.get(q.0 as usize)?;
                    Some(QueueStatus {
                        name: self.queues.get(q.0 as usize)?.name.clone(),
                        waiting,
                        oldest_since: oldest.map(unix_at),
                    })
                })
                .collect();
            a.addr.do_send(AgentPush::Queues { queues });
        }
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let next = self.engine.poll_timeout();
        if self.timer.as_ref().map(|(t, _)| *t) == next {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = next {
            let d = at.saturating_duration_since(crate::clock::now());
            let h = ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.guarded(ctx, |act, ctx| {
                    act.engine.handle_timeout(crate::clock::now());
                    act.drain(ctx);
                });
            });
            self.timer = Some((at, h));
        }
    }

    fn item(&self, interaction: &str) -> Result<ItemId, RouteError> {
        self.by_interaction
            .get(interaction)
            .copied()
            .ok_or(RouteError::Gone)
    }

    fn agent(&self, name: &str) -> Result<AgentId, RouteError> {
        self.agent_ids
            .get(name)
            .copied()
            .filter(|id| self.agents.contains_key(id))
            .ok_or(RouteError::Offline)
    }

    /// The agent and the item, when the item is assigned to that agent.
    fn owned(&self, agent: &str, interaction: &str) -> Result<(AgentId, ItemId), RouterError> {
        let from = self.agent(agent)?;
        let item = self.item(interaction)?;
        if self.items.get(&item).and_then(|e| e.agent) != Some(from) {
            return Err(RouterError::NotYours);
        }
        Ok((from, item))
    }

    /// Runs `f`; a panic in it (a bug in the engine or here) is contained: the
    /// message's sender gets an error, the engine is rebuilt from what this actor
    /// knows ([`RouterActor::recover`]) and routing goes on.
    fn guarded<R: OnPanic>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut Self, &mut Context<Self>) -> R,
    ) -> R {
        if let Some(r) = crate::panics::contain(|| f(self, ctx)) {
            return r;
        }
        let reason = crate::panics::reason();
        tracing::error!(%reason, "the router failed; rebuilding it from the agents and work it knows");
        if crate::panics::contain(|| self.recover(ctx)).is_none() {
            tracing::error!(reason = %crate::panics::reason(), "the router could not be rebuilt; starting empty");
            self.engine = Router::new(crate::clock::now());
            self.items.clear();
            self.by_interaction.clear();
            self.agents.clear();
        }
        R::on_panic()
    }

    /// A new engine told everything this actor knows: the queues (same ids, same
    /// overflows), the logged-in agents with their presence where the old engine can
    /// still tell it (else away: nobody is offered work they did not ask for), the
    /// assigned work back with its agent (nobody is told again), and the waiting work
    /// in arrival order (offered afresh; its waiting time starts again).
    fn recover(&mut self, ctx: &mut Context<Self>) {
        let now = crate::clock::now();
        let old = std::mem::replace(&mut self.engine, Router::new(now));
        let presence: HashMap<AgentId, Presence> = self
            .agents
            .keys()
            .filter_map(|id| {
                crate::panics::contain(|| old.presence(*id))
                    .flatten()
                    .map(|p| (*id, p))
            })
            .collect();
        let queue_of: HashMap<ItemId, QueueId> = self
            .items
            .keys()
            .filter_map(|id| {
                crate::panics::contain(|| old.queue_of(*id))
                    .flatten()
                    .map(|q| (*id, q))
            })
            .collect();
        drop(old);
        let queues = std::mem::take(&mut self.queues);
        self.queue_ids.clear();
        for q in &queues {
            let _ = self.add_queue(q.clone());
        }
        for q in &queues {
            let _ = self.set_overflow(q);
        }
        let agents: Vec<(AgentId, AgentSpec)> = self
            .agents
            .values()
            .map(|a| (a.id, a.spec.clone()))
            .collect();
        for (id, spec) in &agents {
            // Available while their work is given back to them (an agent logs in as
            // they last chose, which a new engine does not know); their presence is
            // restored below.
            let _ = self.engine.login(now, *id, spec.clone());
            let _ = self.engine.set_presence(now, *id, Presence::Available);
        }
        let mut items: Vec<(ItemId, ItemSpec, QueueId, Option<AgentId>)> = self
            .items
            .iter()
            .map(|(id, e)| {
                let q = queue_of.get(id).copied().unwrap_or(e.queue);
                (*id, e.spec.clone(), q, e.agent)
            })
            .collect();
        items.sort_by_key(|(id, ..)| *id);
        let mut lost = Vec::new();
        for (id, spec, q, agent) in items.iter().filter(|i| i.3.is_some()) {
            let agent = agent.expect("filtered");
            // (Enqueued, it may be offered to its agent at once; if not, it is offered
            // to them.)
            let back = self
                .engine
                .enqueue(now, *id, *q, spec.clone())
                .and_then(|_| match self.engine.accept(now, agent, *id) {
                    Ok(()) => Ok(()),
                    Err(_) => self
                        .engine
                        .offer_to(now, *id, agent)
                        .and_then(|_| self.engine.accept(now, agent, *id)),
                });
            if back.is_err() {
                let _ = self.engine.cancel(now, *id);
                lost.push(*id);
            }
        }
        // Then their presence (work goes back first: an away agent keeps what they hold).
        for (id, _) in &agents {
            let p = presence.get(id).copied().unwrap_or(Presence::Away);
            if self.engine.set_presence(now, *id, p).is_err() {
                let _ = self.engine.set_presence(now, *id, Presence::Away);
            }
        }
        // The agents have that work already: what the engine says of it is not news.
        while self.engine.poll_event().is_some() {}
        for id in lost {
            // Assigned work the engine would not take back: its agent keeps it, the
            // router no longer counts it.
            tracing::warn!(interaction = %self.items[&id].work.interaction, "assigned work not restored to the router");
        }
        for (id, spec, q, _) in items.into_iter().filter(|i| i.3.is_none()) {
            if self.engine.enqueue(now, id, q, spec).is_err() {
                self.forget(id);
            }
        }
        self.timer = None;
        self.drain(ctx);
        tracing::info!(
            agents = self.agents.len(),
            work = self.items.len(),
            "router rebuilt"
        );
    }

    fn forget(&mut self, item: ItemId) {
        if let Some(e) = self.items.remove(&item) {
            self.by_interaction.remove(&e.work.interaction);
        }
    }
}

/// An instant of the actor clock as Unix milliseconds (for the desktop's timers).
fn unix_at(t: std::time::Instant) -> u64 {
    let (now, unix_now) = (crate::clock::now(), crate::clock::unix_millis());
    match t.checked_duration_since(now) {
        Some(ahead) => unix_now + ahead.as_millis() as u64,
        None => unix_now.saturating_sub(now.saturating_duration_since(t).as_millis() as u64),
    }
}

pub fn presence_name(p: Presence) -> &'static str {
    match p {
        Presence::Offline => "offline",
        Presence::Available => "available",
        Presence::Away => "away",
        Presence::Busy => "busy",
        Presence::WrapUp { .. } => "wrap_up",
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        // The agents' activity log (occupancy), written in order, in batches.
        if let Some(store) = self.store.clone() {
            let (tx, mut rx) = tokio::sync::mpsc::channel(ACTIVITY_QUEUE);
            let (written, done) = tokio::sync::oneshot::channel();
            self.activity = Some(tx);
            self.activity_written = Some(done);
            actix::spawn(async move {
                let mut rows = Vec::new();
                while rx.recv_many(&mut rows, 256).await > 0 {
                    if let Err(e) = store.add_agent_activity(&rows).await {
                        tracing::warn!(error = %e, rows = rows.len(), "agents' activity not written");
                    }
                    rows.clear();
                }
                let _ = written.send(());
            });
        }
    }
}

/// The node stops: the agents' activity log takes no more changes; the answer is
/// told once everything given before is written (so the stop's `offline` rows come
/// last). `None`: no log.
#[derive(Message)]
#[rtype(result = "Option<tokio::sync::oneshot::Receiver<()>>")]
pub struct CloseActivity;

impl Handler<CloseActivity> for RouterActor {
    type Result = Option<tokio::sync::oneshot::Receiver<()>>;

    fn handle(&mut self, _: CloseActivity, _: &mut Context<Self>) -> Self::Result {
        self.activity = None;
        self.activity_written.take()
    }
}

/// Work joins a queue.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Enqueue {
    pub work: Work,
    pub priority: u8,
    pub skills: Vec<(String, u8)>,
    pub vip: bool,
    /// The agent who last served this customer (sticky routing).
    pub last_agent: Option<String>,
    /// A repeat contact on an unresolved case.
    pub repeat: bool,
    /// Work for this agent alone ([`ItemSpec::only`]).
    pub only: Option<String>,
}

impl RouterActor {
    fn on_enqueue(&mut self, m: Enqueue, ctx: &mut Context<Self>) -> Result<(), RouterError> {
        let q = *self
            .queue_ids
            .get(&m.work.queue)
            .ok_or_else(|| RouterError::NoQueue(m.work.queue.clone()))?;
        if self.by_interaction.contains_key(&m.work.interaction) {
            return Err(RouterError::AlreadyQueued);
        }
        let id = ItemId(self.next_item);
        self.next_item += 1;
        let mut spec = ItemSpec::new(m.work.channel);
        spec.priority = m.priority.min(9);
        spec.skills = m.skills;
        spec.vip = m.vip;
        spec.repeat = m.repeat;
        spec.last_agent = m.last_agent.and_then(|n| self.agent_ids.get(&n).copied());
        if let Some(name) = &m.only {
            let id = self.agent_ids.get(name).copied();
            spec.only = Some(id.ok_or_else(|| RouterError::NotLoggedIn(name.clone()))?);
        }
        self.by_interaction.insert(m.work.interaction.clone(), id);
        self.items.insert(
            id,
            Entry {
                spec: spec.clone(),
                queue: q,
                work: m.work,
                agent: None,
            },
        );
        let r = self.engine.enqueue(crate::clock::now(), id, q, spec);
        if let Err(e) = r {
            self.forget(id);
            return Err(e.into());
        }
        self.drain(ctx);
        Ok(())
    }
}

/// The work is over (caller hung up, chat closed): withdrawn if waiting, finished
/// (with the queue's wrap-up for the agent) if assigned.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ended {
    pub interaction: String,
}

impl RouterActor {
    fn on_ended(&mut self, m: Ended, ctx: &mut Context<Self>) {
        self.taken.remove(&m.interaction);
        let Ok(id) = self.item(&m.interaction) else {
            return;
        };
        let now = crate::clock::now();
        let assigned = self.items.get(&id).and_then(|e| e.agent);
        if let Some(agent) = assigned {
            let wrap = self
                .engine
                .queue_of(id)
                .map(|q| Duration::from_secs(self.queue_cfg(q).wrap_up_secs));
            let _ = self.engine.finish(now, id, wrap);
            if let Some(a) = self.agents.get(&agent) {
                a.addr.do_send(AgentPush::Ended {
                    interaction: m.interaction.clone(),
                });
                if let (Some(w), Some(store)) = (wrap.filter(|w| !w.is_zero()), &self.store) {
                    // The KPIs count a wrap-up nobody gave until it ran out.
                    let data = serde_json::json!({
                        "agent": a.login.name,
                        "until": unix_at(now + w),
                    });
                    let (store, id) = (store.clone(), m.interaction.clone());
                    actix::spawn(async move {
                        if let Err(e) = store.add_timeline(&id, "wrap-up started", data).await {
                            tracing::warn!(interaction = %id, error = %e, "wrap-up start not noted");
                        }
                    });
                }
            }
        } else {
            let _ = self.engine.cancel(now, id);
        }
        self.forget(id);
        self.drain(ctx);
    }
}

/// A supervisor takes the chat over: it leaves the engine as if it had ended (its
/// agent finished with the queue's wrap-up and free for other work; withdrawn if it
/// was waiting or offered) and stays on the floor as the supervisor's until it ends.
/// The chat itself decided (one take-over per chat); refused if the work is unknown.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct TakeOver {
    pub interaction: String,
    pub supervisor: String,
}

impl RouterActor {
    fn on_take_over(&mut self, m: TakeOver, ctx: &mut Context<Self>) -> Result<(), RouterError> {
        let id = self.item(&m.interaction)?;
        let e = &self.items[&id];
        let queue = self
            .engine
            .queue_of(id)
            .map_or_else(|| e.work.queue.clone(), |q| self.queue_cfg(q).name.clone());
        let taken = floor::Taken {
            supervisor: m.supervisor,
            channel: e.work.channel,
            queue,
            from: e.work.from.clone(),
            since: crate::clock::now(),
        };
        self.on_ended(
            Ended {
                interaction: m.interaction.clone(),
            },
            ctx,
        );
        self.taken.insert(m.interaction, taken);
        Ok(())
    }
}

/// The agent's phone did not answer: the work waits again, in its old place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Requeue {
    pub interaction: String,
}

impl RouterActor {
    fn on_requeue(&mut self, m: Requeue, ctx: &mut Context<Self>) {
        let Ok(id) = self.item(&m.interaction) else {
            return;
        };
        let Some(q) = self.engine.queue_of(id) else {
            return;
        };
        if let Some(e) = self.items.get_mut(&id) {
            if let Some(a) = e.agent.take().and_then(|a| self.agents.get(&a)) {
                a.addr.do_send(AgentPush::Ended {
                    interaction: m.interaction.clone(),
                });
            }
        }
        let _ = self.engine.transfer(crate::clock::now(), id, q);
        self.drain(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Login {
    pub login: AgentLogin,
    /// Where the agent's pushes go.
    pub addr: Recipient<AgentPush>,
}

impl RouterActor {
    fn on_login(&mut self, m: Login, ctx: &mut Context<Self>) -> Result<(), RouterError> {
        let queues = m
            .login
            .queues
            .iter()
            .map(|q| {
                self.queue_ids
                    .get(q)
                    .copied()
                    .ok_or_else(|| RouterError::NoQueue(q.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let id = *self
            .agent_ids
            .entry(m.login.name.clone())
            .or_insert_with(|| {
                self.next_agent += 1;
                AgentId(self.next_agent)
            });
        self.agent_names.insert(id, m.login.name.clone());
        let mut spec = AgentSpec::new(queues);
        spec.skills = m.login.skills.clone();
        spec.capacity = m.login.capacity.clone();
        spec.call_blocks_others = m.login.call_blocks_others;
        spec.team = m.login.team.clone();
        let now = crate::clock::now();
        let was = self.engine.presence(id);
        self.engine.login(now, id, spec.clone())?;
        let since = match self.agents.get(&id) {
            Some(e) if was == self.engine.presence(id) => e.since,
            _ => now,
        };
        self.agents.insert(
            id,
            AgentEntry {
                id,
                login: m.login,
                addr: m.addr,
                spec,
                since,
            },
        );
        self.drain(ctx);
        self.tell_waiting(Some(id));
        Ok(())
    }
}

impl RouterActor {
    fn on_logout(&mut self, m: Logout, ctx: &mut Context<Self>) {
        if let Ok(id) = self.agent(&m.agent) {
            let now = crate::clock::now();
            if m.hand_over {
                // Their chats and other non-call work go back to their queues (a call
                // goes on on the agent's phone whatever their desktop does).
                let held: Vec<ItemId> = self
                    .items
                    .iter()
                    .filter(|(_, e)| e.agent == Some(id) && e.work.channel != Channel::Voice)
                    .map(|(i, _)| *i)
                    .collect();
                for item in held {
                    let Some(q) = self.engine.queue_of(item) else {
                        continue;
                    };
                    if self.engine.transfer(now, item, q).is_err() {
                        continue;
                    }
                    let name = self.queue_cfg(q).name.clone();
                    if let Some(e) = self.items.get_mut(&item) {
                        e.agent = None;
                        e.work.owner.do_send(WorkEvent::Transferred {
                            from: m.agent.clone(),
                            to: format!("queue {name}"),
                        });
                    }
                    tracing::warn!(agent = %m.agent, interaction = %self.items[&item].work.interaction, "work handed back to its queue");
                }
            }
            let _ = self.engine.logout(now, id);
            self.drain(ctx);
            self.agents.remove(&id);
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), RouteError>")]
pub struct SetPresence {
    pub agent: String,
    pub presence: Presence,
}

impl RouterActor {
    fn on_set_presence(
        &mut self,
        m: SetPresence,
        ctx: &mut Context<Self>,
    ) -> Result<(), RouteError> {
        let id = self.agent(&m.agent)?;
        let r = self
            .engine
            .set_presence(crate::clock::now(), id, m.presence);
        self.drain(ctx);
        r
    }
}

/// An agent answers an offer.
#[derive(Message)]
#[rtype(result = "Result<(), RouteError>")]
pub struct Answer {
    pub agent: String,
    pub interaction: String,
    pub accept: bool,
}

impl RouterActor {
    fn on_answer(&mut self, m: Answer, ctx: &mut Context<Self>) -> Result<(), RouteError> {
        let agent = self.agent(&m.agent)?;
        let item = self.item(&m.interaction)?;
        let now = crate::clock::now();
        let r = if m.accept {
            self.engine.accept(now, agent, item)
        } else {
            self.engine.reject(now, agent, item)
        };
        self.drain(ctx);
        r
    }
}

/// Where an agent hands work on to.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Agent(String),
    Queue(String),
}

#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Transfer {
    pub agent: String,
    pub interaction: String,
    pub to: TransferTarget,
}

impl RouterActor {
    fn on_transfer(&mut self, m: Transfer, ctx: &mut Context<Self>) -> Result<(), RouterError> {
        let (from, item) = self.owned(&m.agent, &m.interaction)?;
        let now = crate::clock::now();
        let to_name = match &m.to {
            TransferTarget::Agent(name) => {
                let to = self
                    .agent(name)
                    .map_err(|_| RouterError::NotLoggedIn(name.clone()))?;
                self.engine
                    .offer_to(now, item, to)
                    .map_err(|error| RouterError::Agent {
                        agent: name.clone(),
                        error,
                    })?;
                name.clone()
            }
            TransferTarget::Queue(q) => {
                let qid = *self
                    .queue_ids
                    .get(q)
                    .ok_or_else(|| RouterError::NoQueue(q.clone()))?;
                self.engine.transfer(now, item, qid)?;
                format!("queue {q}")
            }
        };
        if let Some(e) = self.items.get_mut(&item) {
            e.agent = None;
            e.work.owner.do_send(WorkEvent::Transferred {
                from: m.agent.clone(),
                to: to_name,
            });
        }
        if let Some(a) = self.agents.get(&from) {
            a.addr.do_send(AgentPush::Ended {
                interaction: m.interaction.clone(),
            });
        }
        self.drain(ctx);
        Ok(())
    }
}

/// A warm transfer begins: `agent`, who has the work, consults `colleague`, who
/// counts the call against their capacity until [`EndConsult`] or the transfer.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Consult {
    pub agent: String,
    pub interaction: String,
    pub colleague: String,
}

impl RouterActor {
    fn on_consult(&mut self, m: Consult, ctx: &mut Context<Self>) -> Result<(), RouterError> {
        let (_, item) = self.owned(&m.agent, &m.interaction)?;
        let to = self
            .agent(&m.colleague)
            .map_err(|_| RouterError::NotLoggedIn(m.colleague.clone()))?;
        let r = self
            .engine
            .consult(crate::clock::now(), item, to)
            .map_err(|error| RouterError::Agent {
                agent: m.colleague.clone(),
                error,
            });
        self.drain(ctx);
        r
    }
}

/// The consult is over without a transfer: the colleague is free again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndConsult {
    pub interaction: String,
    pub colleague: String,
}

impl RouterActor {
    fn on_end_consult(&mut self, m: EndConsult, ctx: &mut Context<Self>) {
        let (Ok(item), Ok(to)) = (self.item(&m.interaction), self.agent(&m.colleague)) else {
            return;
        };
        self.engine.end_consult(crate::clock::now(), item, to);
        self.drain(ctx);
    }
}

/// A waiting item's place in its queue (1-based).
#[derive(Message)]
#[rtype(result = "Option<usize>")]
pub struct Position {
    pub interaction: String,
}

impl RouterActor {
    fn on_position(&mut self, m: Position, _: &mut Context<Self>) -> Option<usize> {
        self.engine.position(self.item(&m.interaction).ok()?)
    }
}

/// The queues' configurations as the router has them now (the config's and those
/// added through the admin API).
#[derive(Message)]
#[rtype(result = "Vec<QueueConfig>")]
pub struct QueueConfigs;

impl RouterActor {
    fn on_queue_configs(&mut self, _: QueueConfigs, _: &mut Context<Self>) -> Vec<QueueConfig> {
        self.queues.clone()
    }
}

/// Queues with their live figures, for admins.
#[derive(Message)]
#[rtype(result = "Vec<serde_json::Value>")]
pub struct QueueList;

impl RouterActor {
    fn on_queue_list(&mut self, _: QueueList, _: &mut Context<Self>) -> Vec<serde_json::Value> {
        self.queues
            .iter()
            .map(|q| {
                let s = self
                    .engine
                    .queue_stats(self.queue_ids[&q.name])
                    .unwrap_or_default();
                serde_json::json!({
                    "name": q.name, "config": q,
                    "waiting": s.waiting, "offered": s.offered, "answered": s.answered,
                    "answered_in_sla": s.answered_in_sla, "abandoned": s.abandoned,
                    "overflowed": s.overflowed,
                    "agents_logged_in": self.agents.values().filter(|a| a.login.queues.contains(&q.name)).count(),
                })
            })
            .collect()
    }
}

/// How the queues and agents stand now, for `/metrics`.
#[derive(Message)]
#[rtype(result = "Gauges")]
pub struct GaugesNow;

/// A queue now: items waiting (not offered) and the oldest one's wait.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueGauge {
    pub name: String,
    pub waiting: usize,
    pub oldest_wait: std::time::Duration,
}

/// Queues and logged-in agents by presence (and how many hold work).
#[derive(Debug, Clone, Default, PartialEq, actix::MessageResponse)]
pub struct Gauges {
    pub queues: Vec<QueueGauge>,
    pub agents: std::collections::BTreeMap<&'static str, usize>,
    pub agents_working: usize,
}

impl RouterActor {
    fn on_gauges(&mut self, _: GaugesNow, _: &mut Context<Self>) -> Gauges {
        let now = crate::clock::now();
        let queues = self
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let (waiting, oldest) = self
                    .engine
                    .waiting_since(QueueId(i as u32))
                    .unwrap_or_default();
                QueueGauge {
                    name: q.name.clone(),
                    waiting,
                    oldest_wait: oldest
                        .map(|t| now.saturating_duration_since(t))
                        .unwrap_or_default(),
                }
            })
            .collect();
        let mut agents = std::collections::BTreeMap::new();
        let mut agents_working = 0;
        for a in self.agents.values() {
            let p = self
                .engine
                .presence(a.id)
                .map(presence_name)
                .unwrap_or("offline");
            *agents.entry(p).or_default() += 1;
            agents_working += !self.engine.assigned(a.id).is_empty() as usize;
        }
        Gauges {
            queues,
            agents,
            agents_working,
        }
    }
}

/// Why the router refused a request about work or agents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("no queue named \"{0}\"")]
    NoQueue(String),
    #[error("already queued")]
    AlreadyQueued,
    #[error("this work is not assigned to you")]
    NotYours,
    #[error("agent \"{0}\" is not logged in")]
    NotLoggedIn(String),
    /// The routing engine refused it for this agent.
    #[error("agent \"{agent}\": {error}")]
    Agent { agent: String, error: RouteError },
    #[error("{0}")]
    Route(#[from] RouteError),
}

/// Why a queue was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A queue by that name exists.
    #[error("{0}")]
    Exists(String),
    /// The queue's own settings are wrong (strategy, overflow target).
    #[error("{0}")]
    Invalid(String),
}

#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct AddQueue(pub QueueConfig);

impl RouterActor {
    fn on_add_queue(&mut self, m: AddQueue, _: &mut Context<Self>) -> Result<(), QueueError> {
        let q = m.0;
        if self.queue_ids.contains_key(&q.name) {
            return Err(QueueError::Exists(format!("queue \"{}\" exists", q.name)));
        }
        if !q.overflow_to.is_empty()
            && q.overflow_to != "voicemail"
            && !self.queue_ids.contains_key(&q.overflow_to)
        {
            return Err(QueueError::Invalid(format!(
                "no queue named \"{}\"",
                q.overflow_to
            )));
        }
        self.add_queue(q.clone()).map_err(QueueError::Invalid)?;
        self.set_overflow(&q).map_err(QueueError::Invalid)
    }
}

/// Who is logged in, with presence, for admins.
#[derive(Message)]
#[rtype(result = "Vec<serde_json::Value>")]
pub struct AgentList;

impl RouterActor {
    fn on_agent_list(&mut self, _: AgentList, _: &mut Context<Self>) -> Vec<serde_json::Value> {
        let mut v: Vec<_> = self
            .agents
            .values()
            .map(|a| {
                let work: Vec<String> = self
                    .engine
                    .assigned(a.id)
                    .iter()
                    .filter_map(|i| self.items.get(i).map(|e| e.work.interaction.clone()))
                    .collect();
                let consulting: Vec<String> = self
                    .engine
                    .consults(a.id)
                    .iter()
                    .filter_map(|i| self.items.get(i).map(|e| e.work.interaction.clone()))
                    .collect();
                serde_json::json!({
                    "name": a.login.name,
                    "presence": self.engine.presence(a.id).map(presence_name).unwrap_or("offline"),
                    "work": work,
                    "consulting": consulting,
                })
            })
            .collect();
        v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        v
    }
}

/// What a message whose handling panicked answers.
pub trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for () {
    fn on_panic() {}
}

impl<T> OnPanic for Option<T> {
    fn on_panic() -> Self {
        None
    }
}

impl OnPanic for Gauges {
    fn on_panic() -> Self {
        Gauges::default()
    }
}

impl OnPanic for floor::Floor {
    fn on_panic() -> Self {
        floor::Floor::default()
    }
}

impl<T> OnPanic for Vec<T> {
    fn on_panic() -> Self {
        Vec::new()
    }
}

impl<T> OnPanic for Result<T, String> {
    fn on_panic() -> Self {
        Err(RouteError::Internal.to_string())
    }
}

impl<T> OnPanic for Result<T, RouterError> {
    fn on_panic() -> Self {
        Err(RouterError::Route(RouteError::Internal))
    }
}

impl<T> OnPanic for Result<T, QueueError> {
    fn on_panic() -> Self {
        Err(QueueError::Invalid(RouteError::Internal.to_string()))
    }
}

impl<T> OnPanic for Result<T, RouteError> {
    fn on_panic() -> Self {
        Err(RouteError::Internal)
    }
}

/// Every message runs through [`RouterActor::guarded`]: a panic in it is contained and
/// the engine rebuilt from what the actor knows.
macro_rules! guarded {
    ($($msg:ty => $result:ty, $method:ident;)*) => {$(
        impl Handler<$msg> for RouterActor {
            type Result = $result;

            fn handle(&mut self, m: $msg, ctx: &mut Context<Self>) -> $result {
                self.guarded(ctx, |act, ctx| act.$method(m, ctx))
            }
        }
    )*};
}

#[cfg(test)]
impl RouterActor {
    fn on_crash(&mut self, _: super::Crash, _: &mut Context<Self>) {
        panic!("injected failure");
    }
}

#[cfg(test)]
guarded! {
    super::Crash => (), on_crash;
}

guarded! {
    Enqueue => Result<(), RouterError>, on_enqueue;
    Ended => (), on_ended;
    TakeOver => Result<(), RouterError>, on_take_over;
    Requeue => (), on_requeue;
    Login => Result<(), RouterError>, on_login;
    Logout => (), on_logout;
    SetPresence => Result<(), RouteError>, on_set_presence;
    Answer => Result<(), RouteError>, on_answer;
    Transfer => Result<(), RouterError>, on_transfer;
    Consult => Result<(), RouterError>, on_consult;
    EndConsult => (), on_end_consult;
    Position => Option<usize>, on_position;
    QueueList => Vec<serde_json::Value>, on_queue_list;
    QueueConfigs => Vec<QueueConfig>, on_queue_configs;
    AddQueue => Result<(), QueueError>, on_add_queue;
    AgentList => Vec<serde_json::Value>, on_agent_list;
    GaugesNow => Gauges, on_gauges;
    floor::FloorNow => floor::Floor, on_floor;
}
