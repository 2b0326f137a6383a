//! An in-memory network of SIP cores for simulations: lossy, delayed datagrams and
//! simulated time stepped to the next deadline (no sleeping, no sockets).

use super::core::{Core, CoreConfig, CoreEvent};
use super::message::{Framing, Message};
use super::{Peer, Transport};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) struct Node {
    pub(crate) addr: SocketAddr,
    pub(crate) core: Core,
    pub(crate) events: Vec<CoreEvent>,
}

/// A lossy network: each datagram is dropped with probability `loss` (deterministic
/// xorshift), otherwise delivered after `delay`.
pub(crate) struct Net {
    pub(crate) now: Instant,
    pub(crate) nodes: Vec<Node>,
    pub(crate) in_flight: Vec<(Instant, SocketAddr, SocketAddr, Bytes)>,
    pub(crate) loss: f64,
    pub(crate) delay: Duration,
    pub(crate) rng: u64,
    pub(crate) dropped: usize,
}

impl Net {
    pub(crate) fn new(loss: f64) -> Net {
        Net {
            now: crate::clock::now(),
            nodes: Vec::new(),
            in_flight: Vec::new(),
            loss,
            delay: Duration::from_millis(20),
            rng: 0x9E3779B97F4A7C15,
            dropped: 0,
        }
    }

    /// Adds a node with registrar keepalives off (they would keep the network busy forever).
    pub(crate) fn add(&mut self, addr: &str, mut cfg: CoreConfig) -> usize {
        cfg.keepalive_interval = 0;
        self.add_raw(addr, cfg)
    }

    pub(crate) fn add_raw(&mut self, addr: &str, mut cfg: CoreConfig) -> usize {
        let addr: SocketAddr = addr.parse().unwrap();
        cfg.local = HashMap::from([(Transport::Udp, addr)]);
        self.nodes.push(Node {
            addr,
            core: Core::new(cfg, self.now),
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    pub(crate) fn rand(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 10_000) as f64 / 10_000.0
    }

    pub(crate) fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].core.poll_transmit() {
                if self.rand() < self.loss {
                    self.dropped += 1;
                    continue;
                }
                let from = self.nodes[i].addr;
                self.in_flight
                    .push((self.now + self.delay, from, t.to.addr, t.data));
            }
            while let Some(e) = self.nodes[i].core.poll_event() {
                self.nodes[i].events.push(e);
            }
        }
    }

    /// When the next datagram arrives or the next core timer fires.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let next_msg = self.in_flight.iter().map(|m| m.0).min();
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|n| n.core.poll_timeout())
            .min();
        [next_msg, next_timer].into_iter().flatten().min()
    }

    /// Moves time to `at` (never back): delivers what is due, fires due timers.
    pub(crate) fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|m| m.0 <= now);
        self.in_flight = rest;
        for (_, from, to, data) in due {
            if let Some(n) = self.nodes.iter_mut().find(|n| n.addr == to) {
                n.core.handle_message(
                    now,
                    Message::parse(data, Framing::Datagram),
                    Peer::udp(from),
                );
            }
        }
        for n in &mut self.nodes {
            if n.core.poll_timeout().is_some_and(|t| t <= now) {
                n.core.handle_timeout(now);
            }
        }
        self.flush();
    }

    /// Advances to the next delivery or timer; false when nothing is pending.
    pub(crate) fn step(&mut self) -> bool {
        self.flush();
        let Some(at) = self.next_deadline() else {
            return false;
        };
        self.advance_to(at);
        true
    }

    pub(crate) fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(
                self.now < end,
                "flow did not complete in {limit:?} of simulated time"
            );
            assert!(self.step(), "nothing pending and not done");
        }
    }
}
