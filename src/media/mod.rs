//! The media engine. Sans-IO: `g711` (µ-law, A-law, transcoding), `rtp` (RTP/RTCP
//! bookkeeping on `rtc`'s packet types), `jitter` (adaptive bounded jitter buffer),
//! `dtmf` (RFC 4733 receive/send, Goertzel), `player` (WAV prompts, resampling),
//! `recorder` (stereo WAV, crash repair), `keyframe` (keyframe detection and
//! requests across a video bridge: PLI, FIR, RFC 5168 INFO), `session` (one call's legs: prompts, bridge,
//! conference, video relay). I/O: `driver` (sockets and the 20 ms clock) and the RTP
//! port allocator here.

pub mod driver;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod keyframe;
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
    state: Mutex<(rand::rngs::StdRng, BTreeSet<u16>)>,
}

impl RtpPorts {
    pub fn new(lo: u16, hi: u16) -> RtpPorts {
        use rand::SeedableRng;
        Self::with_rng(lo, hi, rand::rngs::StdRng::from_entropy())
    }

    /// With a given generator (a seeded one in tests).
    pub fn with_rng(lo: u16, hi: u16, rng: rand::rngs::StdRng) -> RtpPorts {
        let lo = lo + (lo % 2);
        RtpPorts {
            lo,
            hi,
            state: Mutex::new((rng, BTreeSet::new())),
        }
    }

    /// An even port, chosen at random among the free ones: an attacker who sees one
    /// call's port cannot guess the next call's (the RTP hijack and injection).
    pub fn allocate(&self) -> Option<u16> {
        use rand::Rng;
        let mut g = self.state.lock().unwrap();
        if self.hi < self.lo + 1 {
            return None;
        }
        let span = (self.hi - 1 - self.lo) / 2 + 1;
        let start = g.0.gen_range(0..span);
        // From a random slot, the next free one (wrapping): O(1) while the range is
        // mostly free, and it always finds a free port if there is one.
        for i in 0..span {
            let p = self.lo + 2 * ((start + i) % span);
            if g.1.insert(p) {
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
    fn ports_are_even_distinct_reused_and_not_sequential() {
        let p = RtpPorts::new(10001, 10007);
        let mut got: Vec<u16> = (0..3).map(|_| p.allocate().unwrap()).collect();
        assert!(p.allocate().is_none());
        p.release(got[1]);
        assert_eq!(p.allocate(), Some(got[1]));
        got.sort();
        assert_eq!(got, [10002, 10004, 10006]);
        // In a large range, ten calls' ports do not follow one another.
        let p = RtpPorts::new(20000, 40000);
        let ten: Vec<u16> = (0..10).map(|_| p.allocate().unwrap()).collect();
        assert!(ten.iter().all(|x| x % 2 == 0 && (20000..40000).contains(x)));
        let steps = ten.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(steps < 3, "{ten:?}");
    }
}
