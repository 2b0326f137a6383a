//! The SIP stack: message parsing and serialization, transactions, dialogs, digest
//! authentication, the registrar and trunks are sans-IO (they take `now` and return
//! what to send); `transport` is the only code that touches sockets.

pub mod header;
pub mod message;
pub mod syntax;
pub mod uri;

pub use header::HeaderName;
pub use message::{Frame, Framing, Header, Limits, Message, Method, ParseError, StartLine};
pub use uri::{Scheme, Uri};
pub mod addr;
pub mod transaction;
pub use addr::{ConnId, Peer, Transport};
pub mod auth;
pub mod core;
pub mod dialog;
pub mod registrar;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
pub(crate) mod simnet;
pub mod transport;
pub mod trunk;
