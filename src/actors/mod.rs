//! Actix actors. Each owns state and drives sans-IO cores; none makes protocol
//! decisions: `CallActor` (a call, its media and its IVR run), `ChatActor` (a web
//! chat and its message log), `AgentActor` (a logged-in agent and their sockets) and
//! the `RouterActor` (the ACD); `webcall` carries a chat's video call's signalling
//! between its `CallActor` and the chat page.

pub mod agent;
pub mod call;
pub mod chat;
pub mod in_order;
pub mod messages;
pub mod router;
pub mod webcall;

/// Test only: makes an actor panic, as a bug would.
#[cfg(test)]
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(test)]
mod centre_tests;
