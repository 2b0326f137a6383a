//! The `AgentActor`: one per logged-in agent, the driver of their [`Desk`] (offers,
//! work, a call's consult progress, presence and since when). It applies every push to
//! the desk and sends it to the agent's WebSockets as JSON; a socket that connects (or
//! reconnects) first gets the desk's snapshot, so a reconnect shows what is true now.

pub use super::messages::AgentPush;
use super::messages::Logout;
use crate::desk::Desk;
use actix::prelude::*;
use tokio::sync::mpsc::Sender;

pub struct AgentActor {
    pub name: String,
    /// The agent's desktops, each with a bounded queue: one that does not read is
    /// dropped (its WebSocket closes) rather than buffered for.
    sockets: Vec<Sender<String>>,
    /// What the agent has on their plate (this actor is its only writer).
    desk: Desk,
    /// Told to log the agent out if this actor fails.
    router: Option<Recipient<Logout>>,
    /// `stopped()` ran (a drop without it is a failure, see `crate::panics`).
    wound_up: bool,
}

impl AgentActor {
    pub fn new(name: String, router: Option<Recipient<Logout>>) -> AgentActor {
        AgentActor {
            desk: Desk::new(name.clone(), crate::clock::unix_millis()),
            name,
            sockets: vec![],
            router,
            wound_up: false,
        }
    }

    fn state(&self) -> serde_json::Value {
        self.desk.snapshot(crate::clock::unix_millis())
    }

    fn send(&mut self, text: String) {
        self.sockets.retain(|s| s.try_send(text.clone()).is_ok());
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.wound_up = true;
        if std::thread::panicking() {
            self.failed();
        }
    }
}

/// Without `stopped()`, failure handling runs when the actor is dropped.
impl Drop for AgentActor {
    fn drop(&mut self) {
        if !self.wound_up {
            self.failed();
        }
    }
}

impl AgentActor {
    /// The actor failed (a panic): the agent is logged out, so their offers go back to
    /// the queues and their chats are handed back; their desktop's sockets close (it
    /// logs in again).
    fn failed(&mut self) {
        self.wound_up = true;
        self.sockets.clear();
        tracing::error!(agent = %self.name, reason = %crate::panics::reason(), "agent actor failed; logging the agent out");
        if let Some(r) = &self.router {
            r.do_send(Logout {
                agent: self.name.clone(),
                hand_over: true,
            });
        }
    }
}

impl Handler<AgentPush> for AgentActor {
    type Result = ();

    fn handle(&mut self, p: AgentPush, _: &mut Context<Self>) {
        self.desk.apply(crate::clock::unix_millis(), &p);
        // An assignment goes out as the desk has the work: with what the offer said
        // and the chat's messages that came first; a hold with its time and count.
        let json = match &p {
            AgentPush::Assigned { interaction, .. } => self
                .desk
                .item_push("assigned", interaction)
                .map(|v| v.to_string()),
            // Hold goes out with since when and how many times (the desktop's timer).
            AgentPush::Held { interaction, .. } => self
                .desk
                .item_push("held", interaction)
                .map(|v| v.to_string()),
            _ => None,
        }
        .unwrap_or_else(|| serde_json::to_string(&p).unwrap_or_default());
        self.send(json);
    }
}

/// Messages queued for one agent WebSocket before it counts as not reading.
pub const SOCKET_QUEUE: usize = 256;

/// A WebSocket of this agent connects: it gets the whole state, then every change.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect(pub Sender<String>);

impl Handler<Connect> for AgentActor {
    type Result = ();

    fn handle(&mut self, Connect(tx): Connect, _: &mut Context<Self>) {
        if tx.try_send(self.state().to_string()).is_ok() {
            self.sockets.push(tx);
        }
    }
}

/// The agent's state as JSON (for `GET /api/agent/me`).
#[derive(Message)]
#[rtype(result = "serde_json::Value")]
pub struct State;

impl Handler<State> for AgentActor {
    type Result = MessageResult<State>;

    fn handle(&mut self, _: State, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state())
    }
}

/// Whether the agent's desk holds this interaction as work now (assigned to them, or
/// being consulted on). The gateway's own record of what it told the agent: the store
/// catches up a moment later.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Holds(pub String);

impl Handler<Holds> for AgentActor {
    type Result = bool;

    fn handle(&mut self, Holds(id): Holds, _: &mut Context<Self>) -> bool {
        self.desk.work(&id).is_some()
    }
}

/// Logged out: sockets are told and closed, the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for AgentActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.send(serde_json::json!({"type": "logged_out"}).to_string());
        self.sockets.clear();
        ctx.stop();
    }
}

#[cfg(test)]
impl Handler<super::Crash> for AgentActor {
    type Result = ();

    fn handle(&mut self, _: super::Crash, _: &mut Context<Self>) {
        panic!("injected failure");
    }
}
