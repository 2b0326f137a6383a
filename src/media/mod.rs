//! Media for the built-in call handler: the RTP port allocator and a G.711 silence
//! sender paced every 20 ms from a deadline-based timer (no drift), with symmetric RTP
//! (it latches to the address packets actually come from). The media issue replaces
//! the silence with prompts, recording and bridging.
//!
//! Sans-IO building blocks: `g711` (µ-law and A-law), `dtmf` (RFC 4733 telephone-event
//! payloads and an in-band Goertzel detector).

pub mod dtmf;
pub mod recorder;
pub mod g711;

use crate::sdp::Codec;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Hands out even RTP ports (RTCP on the next odd one) from a range.
pub struct RtpPorts {
    lo: u16,
    hi: u16,
    state: Mutex<(u16, BTreeSet<u16>)>,
}

impl RtpPorts {
    pub fn new(lo: u16, hi: u16) -> RtpPorts {
        let lo = lo + (lo % 2);
        RtpPorts { lo, hi, state: Mutex::new((lo, BTreeSet::new())) }
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

/// Counters of one media leg.
#[derive(Default, Debug)]
pub struct LegStats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// Sends G.711 silence to the remote party until stopped.
pub struct SilenceSender {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    pub stats: Arc<LegStats>,
    task: tokio::task::JoinHandle<()>,
}

impl SilenceSender {
    pub fn start(ip: IpAddr, port: u16, remote: SocketAddr, codec: Codec) -> std::io::Result<SilenceSender> {
        let std_sock = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
        std_sock.set_nonblocking(true)?;
        let sock = tokio::net::UdpSocket::from_std(std_sock)?;
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LegStats::default());
        let (s2, p2, st2) = (stop.clone(), paused.clone(), stats.clone());
        let task = tokio::spawn(async move {
            let mut target = remote;
            let ssrc: u32 = rand::random();
            let mut seq: u16 = rand::random();
            let mut ts: u32 = rand::random();
            let fill = match codec {
                Codec::Pcmu => 0xFFu8,
                Codec::Pcma => 0xD5u8,
            };
            let mut pkt = vec![fill; 12 + 160];
            pkt[0] = 0x80;
            pkt[1] = codec.pt();
            pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut rbuf = [0u8; 2048];
            let mut latched = false;
            loop {
                if s2.load(Ordering::Relaxed) {
                    break;
                }
                tokio::select! {
                    _ = tick.tick() => {
                        if !p2.load(Ordering::Relaxed) {
                            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                            pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                            if sock.send_to(&pkt, target).await.is_ok() {
                                st2.sent.fetch_add(1, Ordering::Relaxed);
                            }
                            seq = seq.wrapping_add(1);
                        }
                        ts = ts.wrapping_add(160);
                    }
                    r = sock.recv_from(&mut rbuf) => {
                        if let Ok((n, from)) = r {
                            if n >= 12 && rbuf[0] >> 6 == 2 {
                                st2.received.fetch_add(1, Ordering::Relaxed);
                                // Symmetric RTP: send where the peer's packets come from.
                                if !latched && from != target {
                                    target = from;
                                }
                                latched = true;
                            }
                        }
                    }
                }
            }
        });
        Ok(SilenceSender { stop, paused, stats, task })
    }

    pub fn set_paused(&self, p: bool) {
        self.paused.store(p, Ordering::Relaxed);
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
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
