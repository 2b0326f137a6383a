//! The ACD, sans-IO: queues of work items (any channel), agents with skills, capacity
//! per channel and presence, and the decision of who gets offered what. Time comes in
//! with every call; deadlines come out of [`Router::poll_timeout`]; decisions come out
//! of [`Router::poll_event`]. No clock, no socket, no task.
//!
//! Order in a queue is by *virtual arrival time*: the time an item arrived, minus a head
//! start for its priority (`priority_step` per level) and for boosts (VIP, a repeat
//! contact on an open case). Older items therefore overtake newer high-priority ones
//! once they have waited longer than the head start: priority ageing without a timer,
//! and nothing starves. An item put back (offer rejected or lapsed, agent logged out)
//! keeps its place.
//!
//! Exactly one assignment: an item is `Waiting`, `Offered` to one agent (or to several
//! with ring-all) or `Assigned`; `accept` succeeds once, later accepts get
//! [`RouteError::Taken`], an accept after the customer left gets [`RouteError::Gone`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub u64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u32);

/// The channel of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Voice,
    Video,
    Chat,
    Email,
    Sms,
    Whatsapp,
    Api,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Voice,
        Channel::Video,
        Channel::Chat,
        Channel::Email,
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Api,
    ];

    fn idx(self) -> usize {
        self as usize
    }

    /// Calls (voice and video) can keep an agent from anything else.
    pub fn is_call(self) -> bool {
        matches!(self, Channel::Voice | Channel::Video)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Offline,
    Available,
    Away,
    Busy,
    /// After-call work; available again at `until`.
    WrapUp {
        until: Instant,
    },
}

/// What an agent is doing, for occupancy: their presence and whether they have work.
/// `Working` is any time with work assigned (or a consult), whatever the presence;
/// an agent without work is `Idle` when available, else as their presence says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    Offline,
    Away,
    Busy,
    Idle,
    Working,
    WrapUp,
}

impl Activity {
    pub fn name(self) -> &'static str {
        match self {
            Activity::Offline => "offline",
            Activity::Away => "away",
            Activity::Busy => "busy",
            Activity::Idle => "idle",
            Activity::Working => "working",
            Activity::WrapUp => "wrap-up",
        }
    }
}

/// How a queue hands out its work. Named in configuration and the API as
/// `longest_idle`, `least_occupied`, `round_robin`, `skills_weighted`, `ring_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Strategy {
    LongestIdle,
    LeastOccupied,
    RoundRobin,
    /// The agent whose skill levels for what the item wants add up highest.
    SkillsWeighted,
    /// Voice: offer to every eligible agent at once; the first to accept gets it.
    RingAll,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverflowTo {
    Queue(QueueId),
    Voicemail,
}

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub strategy: Strategy,
    /// Service-level target: answered within this time counts as in SLA.
    pub sla: Duration,
    pub offer_timeout: Duration,
    /// Head start per priority level (0-9).
    pub priority_step: Duration,
    pub vip_boost: Duration,
    pub repeat_boost: Duration,
    /// The last agent who served the customer is offered first for this long.
    pub sticky: Option<Duration>,
    /// After waiting this long here, the item moves on.
    pub overflow: Option<(Duration, OverflowTo)>,
    /// Only agents of these teams (empty: any member).
    pub teams: Vec<String>,
}

impl QueueSpec {
    pub fn new(name: &str) -> QueueSpec {
        QueueSpec {
            name: name.to_string(),
            strategy: Strategy::LongestIdle,
            sla: Duration::from_secs(20),
            offer_timeout: Duration::from_secs(15),
            priority_step: Duration::from_secs(60),
            vip_boost: Duration::from_secs(120),
            repeat_boost: Duration::from_secs(60),
            sticky: None,
            overflow: None,
            teams: vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Skill name → level (1-10).
    pub skills: HashMap<String, u8>,
    /// How many items of each channel at once (voice 1, chat 3...).
    pub capacity: HashMap<Channel, u8>,
    /// A call in progress (or offered) keeps other work away.
    pub call_blocks_others: bool,
    pub team: Option<String>,
    pub queues: Vec<QueueId>,
}

impl AgentSpec {
    pub fn new(queues: Vec<QueueId>) -> AgentSpec {
        AgentSpec {
            skills: HashMap::new(),
            capacity: HashMap::from([(Channel::Voice, 1), (Channel::Chat, 3)]),
            call_blocks_others: true,
            team: None,
            queues,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ItemSpec {
    pub channel: Channel,
    /// 0-9, higher first.
    pub priority: u8,
    /// Skill name → minimum level.
    pub skills: Vec<(String, u8)>,
    pub vip: bool,
    /// A repeat contact on a case that is still open.
    pub repeat: bool,
    pub last_agent: Option<AgentId>,
    /// Work that belongs with this agent alone (a customer escalating their chat to a
    /// video call with the agent who has the chat): offered to them at once, whatever
    /// their load and capacity (it is part of work they already hold), never to anyone
    /// else, and not counted in its queue. Declined or lapsed, it stays out of the
    /// queue until its owner cancels it. A transfer makes it ordinary work.
    pub only: Option<AgentId>,
}

impl ItemSpec {
    pub fn new(channel: Channel) -> ItemSpec {
        ItemSpec {
            channel,
            priority: 5,
            skills: vec![],
            vip: false,
            repeat: false,
            last_agent: None,
            only: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// Another agent accepted it (ring-all).
    Taken,
    /// The customer left.
    Cancelled,
    /// Nobody answered in time.
    Expired,
    /// The agent declined.
    Rejected,
    LoggedOut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    Offer {
        item: ItemId,
        agent: AgentId,
        expires: Instant,
    },
    Revoke {
        item: ItemId,
        agent: AgentId,
        reason: RevokeReason,
    },
    Assigned {
        item: ItemId,
        agent: AgentId,
    },
    /// The item left its queue for another queue or voicemail.
    Overflow {
        item: ItemId,
        to: OverflowTo,
    },
    Presence {
        agent: AgentId,
        presence: Presence,
    },
    /// What the agent does changed (see [`Activity`]), at `at`.
    Activity {
        agent: AgentId,
        activity: Activity,
        at: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no such agent")]
    UnknownAgent,
    #[error("no such queue")]
    UnknownQueue,
    #[error("no such item")]
    UnknownItem,
    #[error("the item already exists")]
    Duplicate,
    #[error("this item is not offered to this agent")]
    NotOffered,
    #[error("another agent took it")]
    Taken,
    #[error("the customer left")]
    Gone,
    #[error("the agent is not logged in")]
    Offline,
    #[error("the agent cannot take this now (not available, or no capacity left)")]
    Unavailable,
    #[error("internal error in the router (it has been restarted): try again")]
    Internal,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub waiting: usize,
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sla: u64,
    pub abandoned: u64,
    pub overflowed: u64,
}

/// Where an item stands, for supervisors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Waiting,
    Offered,
    Assigned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Waiting,
    Offered(Vec<AgentId>),
    Assigned(AgentId),
}

#[derive(Debug, Clone)]
struct Item {
    spec: ItemSpec,
    queue: QueueId,
    /// Virtual arrival (ms from the router's epoch; smaller goes first).
    vt: i64,
    queued_at: Instant,
    state: State,
    declined: Vec<AgentId>,
    sticky_until: Option<Instant>,
    offer_seq: u64,
    class: u32,
    /// Colleagues consulted on it (a warm transfer in progress).
    consulted: Vec<AgentId>,
}

impl Item {
    /// A new item, waiting.
    fn new(
        spec: ItemSpec,
        queue: QueueId,
        vt: i64,
        now: Instant,
        sticky_until: Option<Instant>,
        class: u32,
    ) -> Item {
        Item {
            spec,
            queue,
            vt,
            queued_at: now,
            state: State::Waiting,
            declined: vec![],
            sticky_until,
            offer_seq: 0,
            class,
            consulted: vec![],
        }
    }
}

#[derive(Debug, Clone)]
struct Agent {
    spec: AgentSpec,
    presence: Presence,
    idle_since: Instant,
    /// Items offered or assigned, per channel.
    load: [u8; 7],
    assigned: Vec<ItemId>,
    offered: Vec<ItemId>,
    /// Calls they are consulted on (someone else's), counted in `load`.
    consults: Vec<(ItemId, Channel)>,
    ready_key: Option<(Instant, AgentId)>,
    /// The activity last told in a [`RouterEvent::Activity`].
    activity: Activity,
}

impl Agent {
    fn activity(&self) -> Activity {
        if !self.assigned.is_empty() || !self.consults.is_empty() {
            return Activity::Working;
        }
        match self.presence {
            Presence::Offline => Activity::Offline,
            Presence::Available => Activity::Idle,
            Presence::Away => Activity::Away,
            Presence::Busy => Activity::Busy,
            Presence::WrapUp { .. } => Activity::WrapUp,
        }
    }

    fn has_call(&self) -> bool {
        self.load[Channel::Voice.idx()] > 0 || self.load[Channel::Video.idx()] > 0
    }

    fn total_load(&self) -> u32 {
        self.load.iter().map(|&l| l as u32).sum()
    }

    fn capacity_total(&self) -> u32 {
        self.spec
            .capacity
            .values()
            .map(|&c| c as u32)
            .sum::<u32>()
            .max(1)
    }

    fn can_take(&self, ch: Channel) -> bool {
        if self.presence != Presence::Available {
            return false;
        }
        let cap = self.spec.capacity.get(&ch).copied().unwrap_or(0);
        if self.load[ch.idx()] >= cap {
            return false;
        }
        if self.spec.call_blocks_others {
            if self.has_call() {
                return false;
            }
            // A call waits for an agent with nothing else on.
            if ch.is_call() && self.total_load() > 0 {
                return false;
            }
        }
        true
    }

    /// Has spare capacity for something.
    fn ready(&self) -> bool {
        Channel::ALL.iter().any(|&c| self.can_take(c))
    }

    fn skilled_for(&self, wanted: &[(String, u8)]) -> bool {
        wanted
            .iter()
            .all(|(s, l)| self.spec.skills.get(s).is_some_and(|have| have >= l))
    }

    fn skill_score(&self, wanted: &[(String, u8)]) -> u32 {
        if wanted.is_empty() {
            self.spec.skills.values().map(|&l| l as u32).sum()
        } else {
            wanted
                .iter()
                .map(|(s, _)| self.spec.skills.get(s).copied().unwrap_or(0) as u32)
                .sum()
        }
    }
}

#[derive(Debug, Clone)]
struct Queue {
    spec: QueueSpec,
    waiting: BTreeSet<(i64, ItemId)>,
    /// The same items split by what they need (channel and skills), so a free agent
    /// checks each kind of work once instead of every item: work nobody here can
    /// serve does not slow down the rest.
    classes: HashMap<u32, BTreeSet<(i64, ItemId)>>,
    /// Ready members (available, some capacity) by how long they have been idle.
    ready: BTreeSet<(Instant, AgentId)>,
    rr_last: Option<AgentId>,
    stats: QueueStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// An offer lapses (item, offer sequence).
    Offer(ItemId, u64),
    WrapUp(AgentId),
    Overflow(ItemId, QueueId),
    Sticky(ItemId),
}

pub struct Router {
    epoch: Instant,
    /// Kinds of work (channel, sorted skills wanted), interned.
    classes: Vec<(Channel, Vec<(String, u8)>)>,
    class_ids: HashMap<(Channel, Vec<(String, u8)>), u32>,
    queues: Vec<Queue>,
    agents: HashMap<AgentId, Agent>,
    /// The presence each agent last chose (Available, Away or Busy): where they start
    /// when they log in again. One entry per agent who has logged in (accounts).
    chosen: HashMap<AgentId, Presence>,
    items: HashMap<ItemId, Item>,
    timers: BTreeSet<(Instant, Timer)>,
    events: VecDeque<RouterEvent>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Router {
    fn class_of(&mut self, spec: &ItemSpec) -> u32 {
        let mut skills = spec.skills.clone();
        skills.sort();
        let key = (spec.channel, skills);
        if let Some(&c) = self.class_ids.get(&key) {
            return c;
        }
        let c = self.classes.len() as u32;
        self.classes.push(key.clone());
        self.class_ids.insert(key, c);
        c
    }

    fn wait_insert(&mut self, id: ItemId) {
        let Some(it) = self.items.get(&id) else {
            return;
        };
        let q = &mut self.queues[it.queue.0 as usize];
        q.waiting.insert((it.vt, id));
        q.classes.entry(it.class).or_default().insert((it.vt, id));
    }

    fn wait_remove(&mut self, q: QueueId, vt: i64, class: u32, id: ItemId) {
        let q = &mut self.queues[q.0 as usize];
        q.waiting.remove(&(vt, id));
        if let Some(set) = q.classes.get_mut(&class) {
            set.remove(&(vt, id));
            if set.is_empty() {
                q.classes.remove(&class);
            }
        }
    }

    pub fn new(epoch: Instant) -> Router {
        Router {
            epoch,
            classes: vec![],
            class_ids: HashMap::new(),
            queues: vec![],
            agents: HashMap::new(),
            chosen: HashMap::new(),
            items: HashMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
        }
    }

    pub fn add_queue(&mut self, spec: QueueSpec) -> QueueId {
        self.queues.push(Queue {
            spec,
            waiting: BTreeSet::new(),
            classes: HashMap::new(),
            ready: BTreeSet::new(),
            rr_last: None,
            stats: QueueStats::default(),
        });
        QueueId(self.queues.len() as u32 - 1)
    }

    /// Sets where a queue's items go after waiting too long (queues may name each
    /// other, so this comes after they all exist).
    pub fn set_overflow(&mut self, q: QueueId, overflow: Option<(Duration, OverflowTo)>) {
        if let Some(q) = self.queues.get_mut(q.0 as usize) {
            q.spec.overflow = overflow;
        }
    }

    /// How many items wait in a queue (not offered, not assigned) and since when the
    /// oldest of them waits. (A scan of that queue's waiting items.)
    pub fn waiting_since(&self, q: QueueId) -> Option<(usize, Option<Instant>)> {
        let q = self.queues.get(q.0 as usize)?;
        let oldest = q
            .waiting
            .iter()
            .filter_map(|(_, id)| self.items.get(id))
            .map(|i| i.queued_at)
            .min();
        Some((q.waiting.len(), oldest))
    }

    pub fn queue_stats(&self, q: QueueId) -> Option<QueueStats> {
        self.queues.get(q.0 as usize).map(|q| QueueStats {
            waiting: q.waiting.len(),
            ..q.stats.clone()
        })
    }

    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    pub fn presence(&self, agent: AgentId) -> Option<Presence> {
        self.agents.get(&agent).map(|a| a.presence)
    }

    /// Items assigned to an agent.
    pub fn assigned(&self, agent: AgentId) -> Vec<ItemId> {
        self.agents
            .get(&agent)
            .map(|a| a.assigned.clone())
            .unwrap_or_default()
    }

    /// The items an agent is consulted on (warm transfers in progress).
    pub fn consults(&self, agent: AgentId) -> Vec<ItemId> {
        self.agents
            .get(&agent)
            .map(|a| a.consults.iter().map(|(i, _)| *i).collect())
            .unwrap_or_default()
    }

    /// Since when an item is queued, and whether it waits, is offered or is assigned.
    pub fn item_status(&self, item: ItemId) -> Option<(Instant, ItemStatus)> {
        self.items.get(&item).map(|i| {
            let st = match i.state {
                State::Waiting => ItemStatus::Waiting,
                State::Offered(_) => ItemStatus::Offered,
                State::Assigned(_) => ItemStatus::Assigned,
            };
            (i.queued_at, st)
        })
    }

    /// The queue an item is in.
    pub fn queue_of(&self, item: ItemId) -> Option<QueueId> {
        self.items.get(&item).map(|i| i.queue)
    }

    /// 1-based place of a waiting item in its queue.
    pub fn position(&self, item: ItemId) -> Option<usize> {
        let it = self.items.get(&item)?;
        let q = &self.queues[it.queue.0 as usize];
        q.waiting
            .range(..(it.vt, item))
            .count()
            .checked_add(1)
            .filter(|_| it.state == State::Waiting)
    }

    pub fn waiting_total(&self) -> usize {
        self.queues.iter().map(|q| q.waiting.len()).sum()
    }

    // ------------------------------------------------------------ agents

    /// Logs an agent in (as they last chose, Available, Away or Busy; Away the first
    /// time) or updates what they can do.
    pub fn login(&mut self, now: Instant, id: AgentId, spec: AgentSpec) -> Result<(), RouteError> {
        if spec
            .queues
            .iter()
            .any(|q| q.0 as usize >= self.queues.len())
        {
            return Err(RouteError::UnknownQueue);
        }
        // Agents choose when they take work: they start as they last chose, or Away.
        let start = self.chosen.get(&id).copied().unwrap_or(Presence::Away);
        match self.agents.get_mut(&id) {
            Some(_) => {
                self.unready(id);
                let a = self.agents.get_mut(&id).unwrap();
                a.spec = spec;
                if a.presence == Presence::Offline {
                    a.presence = start;
                    a.idle_since = now;
                }
            }
            None => {
                self.agents.insert(
                    id,
                    Agent {
                        spec,
                        presence: start,
                        idle_since: now,
                        load: [0; 7],
                        assigned: vec![],
                        offered: vec![],
                        consults: vec![],
                        ready_key: None,
                        activity: Activity::Offline,
                    },
                );
            }
        }
        let presence = self.agents[&id].presence;
        self.events.push_back(RouterEvent::Presence {
            agent: id,
            presence,
        });
        self.agent_changed(now, id);
        Ok(())
    }

    /// Logs an agent out: offers to them go back to their queues (keeping their place).
    /// Assigned work stays theirs until finished.
    pub fn logout(&mut self, now: Instant, id: AgentId) -> Result<(), RouteError> {
        if !self.agents.contains_key(&id) {
            return Err(RouteError::UnknownAgent);
        }
        self.set_presence_inner(id, Presence::Offline);
        let offered = self.agents[&id].offered.clone();
        for item in offered {
            self.withdraw_offer(now, item, id, RevokeReason::LoggedOut);
        }
        let consults = self.agents[&id].consults.clone();
        for (item, ch) in consults {
            self.drop_consult(item, id, ch);
        }
        self.note_activity(now, id);
        if self.agents[&id].assigned.is_empty() {
            self.agents.remove(&id);
        }
        Ok(())
    }

    /// Available, Away, Busy (a wrap-up ends by itself; Offline is `logout`).
    pub fn set_presence(
        &mut self,
        now: Instant,
        id: AgentId,
        p: Presence,
    ) -> Result<(), RouteError> {
        let a = self.agents.get(&id).ok_or(RouteError::UnknownAgent)?;
        if a.presence == Presence::Offline {
            return Err(RouteError::Offline);
        }
        if p == Presence::Offline {
            return self.logout(now, id);
        }
        if let Presence::WrapUp { until } = p {
            self.timers.insert((until, Timer::WrapUp(id)));
        }
        if p == Presence::Available && a.presence != Presence::Available {
            self.agents.get_mut(&id).unwrap().idle_since = now;
        }
        self.set_presence_inner(id, p);
        self.agent_changed(now, id);
        Ok(())
    }

    fn set_presence_inner(&mut self, id: AgentId, p: Presence) {
        if !self.agents.contains_key(&id) {
            return;
        }
        if matches!(p, Presence::Available | Presence::Away | Presence::Busy) {
            self.chosen.insert(id, p);
        }
        let Some(a) = self.agents.get_mut(&id) else {
            return;
        };
        if a.presence != p {
            a.presence = p;
            self.events.push_back(RouterEvent::Presence {
                agent: id,
                presence: p,
            });
        }
        self.unready(id);
    }

    fn unready(&mut self, id: AgentId) {
        let Some(a) = self.agents.get_mut(&id) else {
            return;
        };
        if let Some(k) = a.ready_key.take() {
            for q in &a.spec.queues {
                self.queues[q.0 as usize].ready.remove(&k);
            }
        }
    }

    /// Re-indexes an agent and gives them work if they can take some.
    fn agent_changed(&mut self, now: Instant, id: AgentId) {
        self.note_activity(now, id);
        self.unready(id);
        let Some(a) = self.agents.get_mut(&id) else {
            return;
        };
        if !a.ready() {
            return;
        }
        let k = (a.idle_since, id);
        a.ready_key = Some(k);
        let queues = a.spec.queues.clone();
        for q in &queues {
            self.queues[q.0 as usize].ready.insert(k);
        }
        self.feed_agent(now, id);
    }

    /// Tells the agent's activity if it changed.
    fn note_activity(&mut self, now: Instant, id: AgentId) {
        let Some(a) = self.agents.get_mut(&id) else {
            return;
        };
        let activity = a.activity();
        if a.activity != activity {
            a.activity = activity;
            self.events.push_back(RouterEvent::Activity {
                agent: id,
                activity,
                at: now,
            });
        }
    }

    /// Offers the agent the best waiting items they can take, while they can take more.
    fn feed_agent(&mut self, now: Instant, id: AgentId) {
        loop {
            let Some(a) = self.agents.get(&id) else {
                return;
            };
            if !a.ready() {
                return;
            }
            let mut best: Option<(i64, ItemId)> = None;
            for q in &a.spec.queues {
                let queue = &self.queues[q.0 as usize];
                if !queue.spec.teams.is_empty()
                    && !a
                        .spec
                        .team
                        .as_ref()
                        .is_some_and(|t| queue.spec.teams.contains(t))
                {
                    continue;
                }
                for (class, set) in &queue.classes {
                    let (ch, skills) = &self.classes[*class as usize];
                    if !a.can_take(*ch) || !a.skilled_for(skills) {
                        continue;
                    }
                    for &(vt, item) in set {
                        if best.is_some_and(|b| b <= (vt, item)) {
                            break;
                        }
                        let it = &self.items[&item];
                        if self.eligible(a, id, it, now) {
                            best = Some((vt, item));
                            break;
                        }
                    }
                }
            }
            match best {
                Some((_, item)) => {
                    let q = self.items[&item].queue;
                    if self.queues[q.0 as usize].spec.strategy == Strategy::RingAll {
                        // Ring everyone eligible, this agent included.
                        self.offer_item(now, item);
                        if !self
                            .agents
                            .get(&id)
                            .is_some_and(|a| a.offered.contains(&item))
                        {
                            return;
                        }
                    } else {
                        self.make_offer(now, item, vec![id]);
                    }
                }
                None => return,
            }
        }
    }

    fn eligible(&self, a: &Agent, id: AgentId, it: &Item, now: Instant) -> bool {
        if !a.can_take(it.spec.channel)
            || !a.skilled_for(&it.spec.skills)
            || it.declined.contains(&id)
        {
            return false;
        }
        if let (Some(until), Some(last)) = (it.sticky_until, it.spec.last_agent) {
            if now < until && last != id {
                return false;
            }
        }
        let q = &self.queues[it.queue.0 as usize];
        q.spec.teams.is_empty()
            || a.spec
                .team
                .as_ref()
                .is_some_and(|t| q.spec.teams.contains(t))
    }

    // ------------------------------------------------------------ items

    /// A new work item (a call, a chat...) waits in `queue`.
    pub fn enqueue(
        &mut self,
        now: Instant,
        id: ItemId,
        queue: QueueId,
        spec: ItemSpec,
    ) -> Result<(), RouteError> {
        if self.items.contains_key(&id) {
            return Err(RouteError::Duplicate);
        }
        if let Some(agent) = spec.only {
            return self.enqueue_for(now, id, queue, spec, agent);
        }
        let q = self
            .queues
            .get(queue.0 as usize)
            .ok_or(RouteError::UnknownQueue)?;
        let mut head = q.spec.priority_step * spec.priority.min(9) as u32;
        if spec.vip {
            head += q.spec.vip_boost;
        }
        if spec.repeat {
            head += q.spec.repeat_boost;
        }
        let vt = ms(now.saturating_duration_since(self.epoch)) - ms(head);
        let sticky_until = match (q.spec.sticky, spec.last_agent) {
            (Some(d), Some(_)) => Some(now + d),
            _ => None,
        };
        let overflow = q.spec.overflow.as_ref().map(|(after, _)| now + *after);
        let class = self.class_of(&spec);
        if let Some(t) = sticky_until {
            self.timers.insert((t, Timer::Sticky(id)));
        }
        if let Some(t) = overflow {
            self.timers.insert((t, Timer::Overflow(id, queue)));
        }
        self.items
            .insert(id, Item::new(spec, queue, vt, now, sticky_until, class));
        self.wait_insert(id);
        self.offer_item(now, id);
        Ok(())
    }

    /// See [`ItemSpec::only`].
    fn enqueue_for(
        &mut self,
        now: Instant,
        id: ItemId,
        queue: QueueId,
        spec: ItemSpec,
        agent: AgentId,
    ) -> Result<(), RouteError> {
        if queue.0 as usize >= self.queues.len() {
            return Err(RouteError::UnknownQueue);
        }
        let a = self.agents.get(&agent).ok_or(RouteError::UnknownAgent)?;
        if a.presence == Presence::Offline {
            return Err(RouteError::Offline);
        }
        let class = self.class_of(&spec);
        let vt = ms(now.saturating_duration_since(self.epoch));
        self.items
            .insert(id, Item::new(spec, queue, vt, now, None, class));
        self.make_offer(now, id, vec![agent]);
        Ok(())
    }

    /// The customer left (hung up, closed the chat) before the work was done.
    pub fn cancel(&mut self, now: Instant, id: ItemId) -> Result<(), RouteError> {
        let it = self.items.get(&id).ok_or(RouteError::UnknownItem)?.clone();
        match &it.state {
            State::Waiting => {
                self.wait_remove(it.queue, it.vt, it.class, id);
                if it.spec.only.is_none() {
                    self.queues[it.queue.0 as usize].stats.abandoned += 1;
                }
            }
            State::Offered(agents) => {
                if it.spec.only.is_none() {
                    self.queues[it.queue.0 as usize].stats.abandoned += 1;
                }
                self.items.remove(&id);
                for a in agents {
                    self.release(*a, id, it.spec.channel, false);
                    self.events.push_back(RouterEvent::Revoke {
                        item: id,
                        agent: *a,
                        reason: RevokeReason::Cancelled,
                    });
                }
                for a in agents.clone() {
                    self.agent_changed(now, a);
                }
            }
            State::Assigned(_) => return self.finish(now, id, None),
        }
        self.items.remove(&id);
        // Consulted colleagues are freed once the item is gone (not offered it again).
        self.end_consults(now, id, it.consulted, it.spec.channel);
        Ok(())
    }

    /// The agent takes the item.
    pub fn accept(&mut self, now: Instant, agent: AgentId, id: ItemId) -> Result<(), RouteError> {
        if !self.agents.contains_key(&agent) {
            return Err(RouteError::UnknownAgent);
        }
        let Some(it) = self.items.get(&id) else {
            return Err(RouteError::Gone);
        };
        let State::Offered(agents) = &it.state else {
            return Err(match it.state {
                State::Assigned(a) if a == agent => RouteError::NotOffered,
                State::Assigned(_) => RouteError::Taken,
                _ => RouteError::NotOffered,
            });
        };
        if !agents.contains(&agent) {
            return Err(if it.declined.contains(&agent) || agents.is_empty() {
                RouteError::NotOffered
            } else {
                RouteError::Taken
            });
        }
        let others: Vec<AgentId> = agents.iter().copied().filter(|a| *a != agent).collect();
        let (ch, q, waited, queued) = (
            it.spec.channel,
            it.queue,
            now.saturating_duration_since(it.queued_at),
            it.spec.only.is_none(),
        );
        let it = self.items.get_mut(&id).unwrap();
        it.state = State::Assigned(agent);
        let a = self.agents.get_mut(&agent).unwrap();
        a.offered.retain(|i| *i != id);
        a.assigned.push(id);
        let qs = &mut self.queues[q.0 as usize];
        if queued {
            qs.stats.answered += 1;
            if waited <= qs.spec.sla {
                qs.stats.answered_in_sla += 1;
            }
            qs.rr_last = Some(agent);
        }
        self.events
            .push_back(RouterEvent::Assigned { item: id, agent });
        for o in others {
            self.release(o, id, ch, false);
            self.events.push_back(RouterEvent::Revoke {
                item: id,
                agent: o,
                reason: RevokeReason::Taken,
            });
            self.agent_changed(now, o);
        }
        self.agent_changed(now, agent);
        Ok(())
    }

    /// The agent declines: the item goes back to its place and to someone else.
    pub fn reject(&mut self, now: Instant, agent: AgentId, id: ItemId) -> Result<(), RouteError> {
        let it = self.items.get(&id).ok_or(RouteError::Gone)?;
        match &it.state {
            State::Offered(a) if a.contains(&agent) => {}
            _ => return Err(RouteError::NotOffered),
        }
        self.items.get_mut(&id).unwrap().declined.push(agent);
        self.withdraw_offer(now, id, agent, RevokeReason::Rejected);
        Ok(())
    }

    /// The work is done (call ended, chat closed): capacity comes back, after a
    /// wrap-up when given.
    pub fn finish(
        &mut self,
        now: Instant,
        id: ItemId,
        wrap_up: Option<Duration>,
    ) -> Result<(), RouteError> {
        let it = self.items.get(&id).ok_or(RouteError::UnknownItem)?;
        let State::Assigned(agent) = it.state else {
            return Err(RouteError::NotOffered);
        };
        let ch = it.spec.channel;
        let it = self.items.remove(&id).unwrap();
        self.end_consults(now, id, it.consulted, ch);
        self.release(agent, id, ch, true);
        if let Some(a) = self.agents.get_mut(&agent) {
            if a.presence == Presence::Offline {
                self.note_activity(now, agent);
                if self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.assigned.is_empty())
                {
                    self.agents.remove(&agent);
                }
                return Ok(());
            }
            if a.total_load() == 0 {
                a.idle_since = now;
            }
            if let Some(w) = wrap_up.filter(|w| !w.is_zero()) {
                let p = Presence::WrapUp { until: now + w };
                self.timers.insert((now + w, Timer::WrapUp(agent)));
                self.set_presence_inner(agent, p);
            }
        }
        self.agent_changed(now, agent);
        Ok(())
    }

    /// Moves a waiting item to another queue (a transfer), keeping its age.
    pub fn transfer(&mut self, now: Instant, id: ItemId, to: QueueId) -> Result<(), RouteError> {
        if to.0 as usize >= self.queues.len() {
            return Err(RouteError::UnknownQueue);
        }
        let it = self.items.get(&id).ok_or(RouteError::UnknownItem)?.clone();
        match it.state {
            State::Waiting => {
                self.wait_remove(it.queue, it.vt, it.class, id);
            }
            State::Offered(agents) => {
                for a in &agents {
                    self.release(*a, id, it.spec.channel, false);
                    self.events.push_back(RouterEvent::Revoke {
                        item: id,
                        agent: *a,
                        reason: RevokeReason::Cancelled,
                    });
                }
                for a in agents {
                    self.agent_changed(now, a);
                }
            }
            State::Assigned(a) => {
                // An assigned item handed over: free the agent, wait in the new queue.
                self.release(a, id, it.spec.channel, true);
                self.agent_changed(now, a);
            }
        }
        let it = self.items.get_mut(&id).unwrap();
        it.spec.only = None;
        it.queue = to;
        it.state = State::Waiting;
        it.declined.clear();
        it.queued_at = now;
        self.wait_insert(id);
        if let Some((after, _)) = &self.queues[to.0 as usize].spec.overflow {
            self.timers.insert((now + *after, Timer::Overflow(id, to)));
        }
        self.offer_item(now, id);
        Ok(())
    }

    /// Hands an item to one agent (a transfer to a named colleague): it is offered to
    /// them alone, whatever their queues and skills. The agent who held it is freed.
    /// If they decline or let it lapse, it waits in its queue again, in its old place.
    ///
    /// A colleague consulted on the item (a warm transfer being completed) stops
    /// counting the consult: the offer takes its place in their load.
    pub fn offer_to(&mut self, now: Instant, id: ItemId, agent: AgentId) -> Result<(), RouteError> {
        let it = self.items.get(&id).ok_or(RouteError::UnknownItem)?.clone();
        let a = self.agents.get(&agent).ok_or(RouteError::UnknownAgent)?;
        if a.presence == Presence::Offline {
            return Err(RouteError::Offline);
        }
        let holds = match &it.state {
            State::Waiting => false,
            State::Offered(x) => x.contains(&agent),
            State::Assigned(x) => *x == agent,
        };
        // Their consult on this item makes way for the offer.
        let ch = it.spec.channel;
        let consulted = it.consulted.contains(&agent);
        let mut room = a.clone();
        if consulted {
            room.load[ch.idx()] -= 1;
        }
        if holds || !room.can_take(ch) {
            return Err(RouteError::Unavailable);
        }
        if consulted {
            self.drop_consult(id, agent, ch);
        }
        // Straight from whoever holds it to the new agent: it never waits in between,
        // so nobody else can be offered it meanwhile.
        let freed: Vec<AgentId> = match it.state {
            State::Waiting => vec![],
            State::Offered(agents) => {
                for a in &agents {
                    self.release(*a, id, it.spec.channel, false);
                    self.events.push_back(RouterEvent::Revoke {
                        item: id,
                        agent: *a,
                        reason: RevokeReason::Cancelled,
                    });
                }
                agents
            }
            State::Assigned(a) => {
                self.release(a, id, it.spec.channel, true);
                vec![a]
            }
        };
        let item = self.items.get_mut(&id).unwrap();
        item.spec.only = None;
        item.state = State::Waiting;
        item.declined.clear();
        item.sticky_until = None;
        self.make_offer(now, id, vec![agent]);
        // A consult that made way ended their work on it.
        self.note_activity(now, agent);
        for a in freed {
            self.agent_changed(now, a);
        }
        Ok(())
    }

    /// A colleague is consulted on `id` (a warm transfer): they are on that call, so it
    /// counts against their capacity (no other work is offered to them) until the
    /// consult ends ([`Router::end_consult`]), the item is handed to them
    /// ([`Router::offer_to`]), or it ends. They must be available with room for it.
    pub fn consult(&mut self, now: Instant, id: ItemId, agent: AgentId) -> Result<(), RouteError> {
        let it = self.items.get(&id).ok_or(RouteError::UnknownItem)?;
        let ch = it.spec.channel;
        // Someone else has the item; the colleague is not already on it.
        if it.consulted.contains(&agent) || !matches!(it.state, State::Assigned(x) if x != agent) {
            return Err(RouteError::Unavailable);
        }
        let a = self
            .agents
            .get_mut(&agent)
            .ok_or(RouteError::UnknownAgent)?;
        if a.presence == Presence::Offline {
            return Err(RouteError::Offline);
        }
        if !a.can_take(ch) {
            return Err(RouteError::Unavailable);
        }
        a.consults.push((id, ch));
        a.load[ch.idx()] += 1;
        self.items.get_mut(&id).unwrap().consulted.push(agent);
        self.agent_changed(now, agent);
        Ok(())
    }

    /// The consult on `id` ended without a transfer: the colleague's capacity is back.
    pub fn end_consult(&mut self, now: Instant, id: ItemId, agent: AgentId) {
        let Some(ch) = self
            .agents
            .get(&agent)
            .and_then(|a| a.consults.iter().find(|(i, _)| *i == id))
            .map(|(_, ch)| *ch)
        else {
            return;
        };
        self.drop_consult(id, agent, ch);
        self.agent_changed(now, agent);
    }

    fn end_consults(&mut self, now: Instant, id: ItemId, agents: Vec<AgentId>, ch: Channel) {
        for a in agents {
            self.drop_consult(id, a, ch);
            self.agent_changed(now, a);
        }
    }

    fn drop_consult(&mut self, id: ItemId, agent: AgentId, ch: Channel) {
        if let Some(it) = self.items.get_mut(&id) {
            it.consulted.retain(|a| *a != agent);
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            let before = a.consults.len();
            a.consults.retain(|(i, _)| *i != id);
            if a.consults.len() < before {
                a.load[ch.idx()] = a.load[ch.idx()].saturating_sub(1);
            }
        }
    }

    fn release(&mut self, agent: AgentId, item: ItemId, ch: Channel, assigned: bool) {
        if let Some(a) = self.agents.get_mut(&agent) {
            let before = a.offered.len() + a.assigned.len();
            if assigned {
                a.assigned.retain(|i| *i != item);
            } else {
                a.offered.retain(|i| *i != item);
            }
            if a.offered.len() + a.assigned.len() < before {
                a.load[ch.idx()] = a.load[ch.idx()].saturating_sub(1);
            }
        }
    }

    /// An offer to `agent` ends without an answer: the item goes back to its place.
    fn withdraw_offer(&mut self, now: Instant, id: ItemId, agent: AgentId, reason: RevokeReason) {
        let Some(it) = self.items.get_mut(&id) else {
            return;
        };
        let State::Offered(agents) = &mut it.state else {
            return;
        };
        agents.retain(|a| *a != agent);
        let back = agents.is_empty();
        let ch = it.spec.channel;
        // Work for one agent does not go back to the queue: its owner decides.
        let queued = it.spec.only.is_none();
        if back {
            it.state = State::Waiting;
            if queued {
                self.wait_insert(id);
            }
        }
        self.release(agent, id, ch, false);
        self.events.push_back(RouterEvent::Revoke {
            item: id,
            agent,
            reason,
        });
        self.agent_changed(now, agent);
        if back
            && queued
            && self
                .items
                .get(&id)
                .is_some_and(|i| i.state == State::Waiting)
        {
            self.offer_item(now, id);
        }
    }

    /// Finds agents for a waiting item by its queue's strategy.
    fn offer_item(&mut self, now: Instant, id: ItemId) {
        let Some(it) = self.items.get(&id) else {
            return;
        };
        if it.state != State::Waiting {
            return;
        }
        let q = &self.queues[it.queue.0 as usize];
        let candidates: Vec<AgentId> = q
            .ready
            .iter()
            .map(|(_, a)| *a)
            .filter(|a| self.eligible(&self.agents[a], *a, it, now))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let chosen: Vec<AgentId> = match q.spec.strategy {
            Strategy::LongestIdle => vec![candidates[0]],
            Strategy::RingAll => candidates,
            Strategy::LeastOccupied => {
                let a = candidates
                    .iter()
                    .min_by(|x, y| {
                        let (ax, ay) = (&self.agents[x], &self.agents[y]);
                        // load/capacity, compared without division
                        (ax.total_load() * ay.capacity_total())
                            .cmp(&(ay.total_load() * ax.capacity_total()))
                    })
                    .copied();
                a.into_iter().collect()
            }
            Strategy::RoundRobin => {
                let mut sorted = candidates.clone();
                sorted.sort();
                let next = match q.rr_last {
                    Some(last) => sorted.iter().find(|a| **a > last).or(sorted.first()),
                    None => sorted.first(),
                };
                next.copied().into_iter().collect()
            }
            Strategy::SkillsWeighted => {
                let a = candidates
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, a)| {
                        (
                            self.agents[a].skill_score(&it.spec.skills),
                            std::cmp::Reverse(*i),
                        )
                    })
                    .map(|(_, a)| *a);
                a.into_iter().collect()
            }
        };
        self.make_offer(now, id, chosen);
    }

    fn make_offer(&mut self, now: Instant, id: ItemId, agents: Vec<AgentId>) {
        let Some(it) = self.items.get_mut(&id) else {
            return;
        };
        if agents.is_empty() || it.state != State::Waiting {
            return;
        }
        let q = it.queue;
        let (vt, class) = (it.vt, it.class);
        self.wait_remove(q, vt, class, id);
        let it = self.items.get_mut(&id).unwrap();
        it.offer_seq += 1;
        let seq = it.offer_seq;
        let ch = it.spec.channel;
        let queued = it.spec.only.is_none();
        it.state = State::Offered(agents.clone());
        let expires = now + self.queues[q.0 as usize].spec.offer_timeout;
        self.timers.insert((expires, Timer::Offer(id, seq)));
        if queued {
            self.queues[q.0 as usize].stats.offered += 1;
        }
        for a in &agents {
            let ag = self.agents.get_mut(a).unwrap();
            ag.load[ch.idx()] += 1;
            ag.offered.push(id);
            self.events.push_back(RouterEvent::Offer {
                item: id,
                agent: *a,
                expires,
            });
        }
        for a in agents {
            self.unready(a);
            let ag = &self.agents[&a];
            if ag.ready() {
                let k = (ag.idle_since, a);
                let queues = ag.spec.queues.clone();
                self.agents.get_mut(&a).unwrap().ready_key = Some(k);
                for q in queues {
                    self.queues[q.0 as usize].ready.insert(k);
                }
            }
        }
    }

    // ------------------------------------------------------------ time

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, timer)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Offer(id, seq) => {
                    let Some(it) = self.items.get(&id) else {
                        continue;
                    };
                    let State::Offered(agents) = &it.state else {
                        continue;
                    };
                    if it.offer_seq != seq {
                        continue;
                    }
                    // Whoever let it lapse is away; the item goes back to its place.
                    for a in agents.clone() {
                        self.set_presence_inner(a, Presence::Away);
                        self.withdraw_offer(now, id, a, RevokeReason::Expired);
                    }
                }
                Timer::WrapUp(agent) => {
                    let Some(a) = self.agents.get_mut(&agent) else {
                        continue;
                    };
                    if matches!(a.presence, Presence::WrapUp { until } if until <= now) {
                        a.idle_since = now;
                        self.set_presence_inner(agent, Presence::Available);
                        self.agent_changed(now, agent);
                    }
                }
                Timer::Sticky(id) => {
                    if let Some(it) = self.items.get_mut(&id) {
                        it.sticky_until = None;
                    }
                    self.offer_item(now, id);
                }
                Timer::Overflow(id, q) => {
                    let Some(it) = self.items.get(&id) else {
                        continue;
                    };
                    if it.queue != q || it.state != State::Waiting {
                        continue;
                    }
                    let Some((_, to)) = self.queues[q.0 as usize].spec.overflow.clone() else {
                        continue;
                    };
                    self.queues[q.0 as usize].stats.overflowed += 1;
                    self.events.push_back(RouterEvent::Overflow {
                        item: id,
                        to: to.clone(),
                    });
                    match to {
                        OverflowTo::Queue(nq) => {
                            let _ = self.transfer(now, id, nq);
                        }
                        OverflowTo::Voicemail => {
                            let it = self.items.remove(&id).unwrap();
                            self.wait_remove(q, it.vt, it.class, id);
                            // A colleague consulted before a transfer here is free again.
                            self.end_consults(now, id, it.consulted, it.spec.channel);
                        }
                    }
                }
            }
        }
    }

    /// Checks the invariants (tests and debug builds): loads match offers and
    /// assignments, waiting sets match item states, no ready agent could take a waiting
    /// item it is eligible for.
    pub fn check(&self, now: Instant) -> Result<(), String> {
        for (id, a) in &self.agents {
            let mut load = [0u8; 7];
            for i in a.offered.iter().chain(&a.assigned) {
                let it = self
                    .items
                    .get(i)
                    .ok_or(format!("{id:?} holds unknown {i:?}"))?;
                load[it.spec.channel.idx()] += 1;
            }
            for (i, ch) in &a.consults {
                let it = self
                    .items
                    .get(i)
                    .ok_or(format!("{id:?} consulted on unknown {i:?}"))?;
                if !it.consulted.contains(id) || it.spec.channel != *ch {
                    return Err(format!("{id:?} consult on {i:?} not on the item"));
                }
                load[ch.idx()] += 1;
            }
            if load != a.load {
                return Err(format!("{id:?} load {:?} != {:?}", a.load, load));
            }
            if a.activity != a.activity() {
                return Err(format!(
                    "{id:?} last told {:?}, is {:?}",
                    a.activity,
                    a.activity()
                ));
            }
        }
        for (qi, q) in self.queues.iter().enumerate() {
            let n: usize = q.classes.values().map(|c| c.len()).sum();
            if n != q.waiting.len() || q.classes.values().any(|c| c.is_empty()) {
                return Err(format!(
                    "queue {qi}: classes hold {n}, waiting {}",
                    q.waiting.len()
                ));
            }
        }
        for (id, it) in &self.items {
            for a in &it.consulted {
                if !self
                    .agents
                    .get(a)
                    .is_some_and(|x| x.consults.iter().any(|(i, _)| i == id))
                {
                    return Err(format!("{id:?} consulted by {a:?}, who does not know"));
                }
            }
            let in_q = self.queues[it.queue.0 as usize]
                .waiting
                .contains(&(it.vt, *id));
            if in_q
                != self.queues[it.queue.0 as usize]
                    .classes
                    .get(&it.class)
                    .is_some_and(|c| c.contains(&(it.vt, *id)))
            {
                return Err(format!("{id:?} in waiting and classes disagree"));
            }
            match &it.state {
                State::Waiting if !in_q && it.spec.only.is_none() => {
                    return Err(format!("{id:?} waiting but not queued"))
                }
                State::Waiting if in_q && it.spec.only.is_some() => {
                    return Err(format!("{id:?} is one agent's but queued"))
                }
                State::Offered(_) | State::Assigned(_) if in_q => {
                    return Err(format!("{id:?} queued but {:?}", it.state))
                }
                State::Assigned(a)
                    if !self.agents.get(a).is_some_and(|x| x.assigned.contains(id)) =>
                {
                    return Err(format!("{id:?} assigned to {a:?} who does not hold it"))
                }
                State::Offered(ags) => {
                    for a in ags {
                        if !self.agents.get(a).is_some_and(|x| x.offered.contains(id)) {
                            return Err(format!("{id:?} offered to {a:?} who does not hold it"));
                        }
                    }
                }
                _ => {}
            }
            if it.state == State::Waiting && it.spec.only.is_none() {
                for (aid, a) in &self.agents {
                    if a.spec.queues.contains(&it.queue) && self.eligible(a, *aid, it, now) {
                        return Err(format!("{id:?} waits while {aid:?} could take it"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
