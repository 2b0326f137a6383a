//! The floor as the router sees it now, for supervisors: each queue (waiting, since
//! when the oldest waits, its agents by presence), each logged-in agent (presence and since when, their
//! work) and each piece of work in a queue or with an agent. The API keeps what a
//! supervisor may see.

use super::{presence_name, unix_at, RouterActor};
use crate::routing::engine::ItemStatus;
use actix::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Message)]
#[rtype(result = "Floor")]
pub struct FloorNow;

#[derive(Debug, Clone, Default, PartialEq, Serialize, actix::MessageResponse)]
pub struct Floor {
    pub queues: Vec<FloorQueue>,
    pub agents: Vec<FloorAgent>,
    pub work: Vec<FloorWork>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorQueue {
    pub name: String,
    pub waiting: usize,
    /// Since when the oldest waits (Unix ms).
    pub oldest_since: Option<u64>,
    /// The logged-in agents who serve it, by presence.
    pub agents: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorAgent {
    pub name: String,
    pub display: String,
    pub team: Option<String>,
    pub queues: Vec<String>,
    pub presence: &'static str,
    /// Since when (Unix ms).
    pub presence_since: u64,
    /// Their work (interaction ids), and how many per channel.
    pub work: Vec<String>,
    pub channels: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorWork {
    pub interaction: String,
    pub channel: &'static str,
    pub queue: String,
    pub from: String,
    /// `waiting`, `offered`, `assigned`, or `taken_over` (by `supervisor`).
    pub status: &'static str,
    pub agent: Option<String>,
    /// The supervisor who took the chat over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<String>,
    /// Since when it is queued (last; Unix ms).
    pub since: u64,
}

/// A chat a supervisor took over (see [`super::TakeOver`]).
pub(super) struct Taken {
    pub supervisor: String,
    pub channel: crate::routing::engine::Channel,
    pub queue: String,
    pub from: String,
    pub since: std::time::Instant,
}

impl RouterActor {
    pub(super) fn on_floor(&mut self, _: FloorNow, _: &mut Context<Self>) -> Floor {
        let presence = |id| {
            self.engine
                .presence(id)
                .map(presence_name)
                .unwrap_or("offline")
        };
        let queues = self
            .queues
            .iter()
            .map(|q| {
                let (waiting, oldest) = self
                    .engine
                    .waiting_since(self.queue_ids[&q.name])
                    .unwrap_or_default();
                let mut agents = BTreeMap::new();
                for a in self
                    .agents
                    .values()
                    .filter(|a| a.login.queues.contains(&q.name))
                {
                    *agents.entry(presence(a.id)).or_default() += 1;
                }
                FloorQueue {
                    name: q.name.clone(),
                    waiting,
                    oldest_since: oldest.map(unix_at),
                    agents,
                }
            })
            .collect();
        let mut agents: Vec<FloorAgent> = self
            .agents
            .values()
            .map(|a| {
                let mut work = vec![];
                let mut channels = BTreeMap::new();
                for i in self.engine.assigned(a.id) {
                    if let Some(e) = self.items.get(&i) {
                        work.push(e.work.interaction.clone());
                        *channels
                            .entry(crate::routing::channel_name(e.work.channel))
                            .or_default() += 1;
                    }
                }
                FloorAgent {
                    name: a.login.name.clone(),
                    display: a.login.display.clone(),
                    team: a.login.team.clone(),
                    queues: a.login.queues.clone(),
                    presence: presence(a.id),
                    presence_since: unix_at(a.since),
                    work,
                    channels,
                }
            })
            .collect();
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        let mut work: Vec<FloorWork> = self
            .items
            .iter()
            .filter_map(|(id, e)| {
                let (queued, status) = self.engine.item_status(*id)?;
                Some(FloorWork {
                    interaction: e.work.interaction.clone(),
                    channel: crate::routing::channel_name(e.work.channel),
                    // Where it is now (a transfer to a queue moves it).
                    queue: self
                        .engine
                        .queue_of(*id)
                        .map_or_else(|| e.work.queue.clone(), |q| self.queue_cfg(q).name.clone()),
                    from: e.work.from.clone(),
                    status: match status {
                        ItemStatus::Waiting => "waiting",
                        ItemStatus::Offered => "offered",
                        ItemStatus::Assigned => "assigned",
                    },
                    agent: e
                        .agent
                        .and_then(|a| self.agents.get(&a))
                        .map(|a| a.login.name.clone()),
                    supervisor: None,
                    since: unix_at(queued),
                })
            })
            .chain(self.taken.iter().map(|(id, t)| FloorWork {
                interaction: id.clone(),
                channel: crate::routing::channel_name(t.channel),
                queue: t.queue.clone(),
                from: t.from.clone(),
                status: "taken_over",
                agent: None,
                supervisor: Some(t.supervisor.clone()),
                since: unix_at(t.since),
            }))
            .collect();
        work.sort_by(|a, b| (a.since, &a.interaction).cmp(&(b.since, &b.interaction)));
        Floor {
            queues,
            agents,
            work,
        }
    }
}
