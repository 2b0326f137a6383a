//! omnigate: a contact-centre gateway (SIP, IVR, WebRTC agents and chat) in one binary.
//!
//! Layers, each a module: `sip` (sans-IO signalling and the transports), `actors`
//! (actix actors owning calls), `api` (HTTP), `config`, and `clock` (the only place
//! that reads the time).

pub mod clock;
pub mod redact;
pub mod sdp;
pub mod sip;
