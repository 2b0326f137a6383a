//! Actix actors. Each owns state and drives sans-IO cores; none makes protocol
//! decisions. Only `call` exists yet (chat, agent and router actors come with the
//! contact-centre issue).

pub mod call;
