//! End-to-end tests: the real gateway binary, real SIPp, real sockets.
//! One test binary with submodules, so the suite links once.

mod bot;
mod centre;
mod channels;
mod desktop;
mod dovecot;
mod hardening;
mod harness;
mod ivr;
mod kpis;
mod mail;
mod media;
mod open_channel;
mod privacy;
mod sipp_calls;
mod supervisor;
#[path = "../../src/store/testpg.rs"]
mod testpg;
mod torture;
mod transports;
mod video;
