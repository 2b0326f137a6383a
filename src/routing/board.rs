//! The IVR's waiting lists: who waits in which queue, in what order (priority first,
//! then arrival), so the IVR can tell a caller their position and an expected wait.
//! It stands in until the call actors drive the routing engine (`engine`), which
//! knows agents, skills and offers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Waiting {
    id: String,
    priority: u8,
    since: Instant,
}

/// Who waits where, shared by the call actors.
#[derive(Debug, Default)]
pub struct QueueBoard {
    queues: Mutex<HashMap<String, Vec<Waiting>>>,
}

impl QueueBoard {
    pub fn join(&self, queue: &str, id: &str, priority: u8, now: Instant) {
        let mut q = self.queues.lock().unwrap();
        let list = q.entry(queue.to_string()).or_default();
        list.retain(|w| w.id != id);
        list.push(Waiting {
            id: id.to_string(),
            priority,
            since: now,
        });
        // Higher priority first; within a priority, who came first.
        list.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.since.cmp(&b.since)));
    }

    pub fn leave(&self, id: &str) {
        let mut q = self.queues.lock().unwrap();
        for list in q.values_mut() {
            list.retain(|w| w.id != id);
        }
        q.retain(|_, l| !l.is_empty());
    }

    /// 1-based position of `id` in `queue`.
    pub fn position(&self, queue: &str, id: &str) -> Option<u32> {
        let q = self.queues.lock().unwrap();
        q.get(queue)?
            .iter()
            .position(|w| w.id == id)
            .map(|p| p as u32 + 1)
    }

    /// Expected wait at a position, from an average handle time.
    pub fn expected_wait(position: u32, handle: Duration) -> Duration {
        handle * position
    }

    pub fn waiting(&self, queue: &str) -> usize {
        self.queues
            .lock()
            .unwrap()
            .get(queue)
            .map(|l| l.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_arrival() {
        let b = QueueBoard::default();
        let t = crate::clock::now();
        b.join("s", "a", 5, t);
        b.join("s", "b", 5, t + Duration::from_secs(1));
        b.join("s", "vip", 8, t + Duration::from_secs(2));
        assert_eq!(b.position("s", "vip"), Some(1));
        assert_eq!(b.position("s", "a"), Some(2));
        assert_eq!(b.position("s", "b"), Some(3));
        b.leave("a");
        assert_eq!(b.position("s", "b"), Some(2));
        assert_eq!(b.position("x", "b"), None);
        assert_eq!(b.waiting("s"), 2);
    }
}
