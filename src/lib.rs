//! omnigate: a contact-centre gateway (SIP, IVR, WebRTC agents and chat) in one binary.
//!
//! Layers, each a module: `sip` (sans-IO signalling, plus `sip::transport`, the only
//! SIP socket code), `sdp` and `media` (audio legs), `dialplan` (the IVR language),
//! `routing` (the ACD, sans-IO), `store` (customers, conversations, interactions in
//! SQLite), `actors` (actix actors owning calls), `api` (HTTP), `server` (wiring and
//! the driver loop), `config`, `redact` (personal data in logs) and `clock` (the only
//! place that reads the time).

pub mod actors;
pub mod api;
pub mod bot;
pub mod call;
pub mod canned;
pub mod centre;
pub mod channels;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod desk;
pub mod dialplan;
pub mod email;
pub mod kb;
pub mod kpi;
pub mod logins;
pub mod media;
pub mod metrics;
pub mod panics;
pub mod privacy;
pub mod ratings;
pub mod redact;
pub mod routing;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod store;
pub mod webhooks;
pub mod webrtc;
