//! The media engine. Sans-IO: `g711` (µ-law, A-law, transcoding), `rtp` (RTP/RTCP
//! bookkeeping on `rtc`'s packet types), `jitter` (adaptive bounded jitter buffer),
//! `dtmf` (RFC 4733 receive/send, Goertzel), `player` (WAV prompts, resampling),
//! `recorder` (stereo WAV, crash repair), `session` (one call's legs: prompts, bridge,
//! conference, video relay). I/O: `driver` (sockets and the 20 ms clock) and the RTP
//! port allocator here.

pub mod driver;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod player;
pub mod recorder;
pub mod rtp;
pub mod session;

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Hands out even RTP ports (RTCP on the next odd one) from a range.
pub struct RtpPorts {
    lo: u16,
    hi: u16,
    state: Mutex<(u16, BTreeSet<u16>)>,
}

impl RtpPorts {
    pub fn new(lo: u16, hi: u16) -> RtpPorts {
        let lo = lo + (lo % 2);
        RtpPorts {
            lo,
            hi,
            state: Mutex::new((lo, BTreeSet::new())),
        }
    }

    pub fn allocate(&self) -> Option<u16> {
        let mut g = self.state.lock().unwrap();
        let span = (self.hi - self.lo) / 2 + 1;
        for _ in 0..span {
            let p = g.0;
            g.0 = if p + 2 >= self.hi { self.lo } else { p + 2 };
            if !g.1.contains(&p) {
                g.1.insert(p);
                return Some(p);
            }
        }
        None
    }

    pub fn release(&self, p: u16) {
        self.state.lock().unwrap().1.remove(&p);
    }

    pub fn in_use(&self) -> usize {
        self.state.lock().unwrap().1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_even_and_reused() {
        let p = RtpPorts::new(10001, 10007);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        let c = p.allocate().unwrap();
        assert_eq!((a, b, c), (10002, 10004, 10006));
        assert!(p.allocate().is_none());
        p.release(b);
        assert_eq!(p.allocate(), Some(10004));
    }
}
