//! End-to-end tests: the real gateway binary, real SIPp, real sockets.
//! One test binary with submodules, so the suite links once.

mod centre;
mod harness;
mod ivr;
mod media;
mod sipp_calls;
mod torture;
mod transports;
