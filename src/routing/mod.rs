//! Routing work to agents. `engine` is the sans-IO ACD (queues, skills, capacity,
//! presence, strategies, offers, overflow; time injected); `board` is the waiting-list
//! view the IVR uses for positions until the call actors drive the engine.

pub mod board;
pub mod engine;

pub use board::QueueBoard;
