//! Throttling agent logins (sans-IO: time is passed in). Failures are counted per
//! source address and per user name; past a few, further attempts are refused for a
//! while (a 429 with Retry-After) without the password being checked, so guessing runs
//! at a few tries a minute instead of hundreds a second. A success clears the user's
//! count and that address's. Both maps are bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    /// Failures for one user name before its attempts wait.
    pub per_user: u32,
    /// Failures from one address before its attempts wait.
    pub per_address: u32,
    /// The first wait; doubles with each further failure.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// Entries kept per map.
    pub capacity: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            per_user: 5,
            per_address: 20,
            first_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(300),
            window: Duration::from_secs(900),
            capacity: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    n: u32,
    last: Instant,
    until: Option<Instant>,
}

#[derive(Debug)]
struct Counts<K> {
    map: HashMap<K, Count>,
}

impl<K: std::hash::Hash + Eq + Clone> Counts<K> {
    fn wait(&self, now: Instant, k: &K) -> Option<Duration> {
        let until = self.map.get(k)?.until?;
        (now < until).then(|| until - now)
    }

    fn fail(&mut self, now: Instant, k: K, limit: u32, cfg: &GuardConfig) {
        if self.map.len() >= cfg.capacity && !self.map.contains_key(&k) {
            self.map
                .retain(|_, c| now.saturating_duration_since(c.last) < cfg.window);
            if self.map.len() >= cfg.capacity {
                if let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, c)| c.last)
                    .map(|(k, _)| k.clone())
                {
                    self.map.remove(&oldest);
                }
            }
        }
        let c = self.map.entry(k).or_insert(Count {
            n: 0,
            last: now,
            until: None,
        });
        if now.saturating_duration_since(c.last) >= cfg.window {
            c.n = 0;
            c.until = None;
        }
        c.n += 1;
        c.last = now;
        if c.n >= limit {
            let doublings = (c.n - limit).min(16);
            let wait = (cfg.first_wait * 2u32.pow(doublings)).min(cfg.max_wait);
            c.until = Some(now + wait);
        }
    }
}

/// The throttle on one node's agent logins.
#[derive(Debug)]
pub struct LoginGuard {
    cfg: GuardConfig,
    users: Counts<String>,
    addrs: Counts<IpAddr>,
}

impl LoginGuard {
    pub fn new(cfg: GuardConfig) -> LoginGuard {
        LoginGuard {
            cfg,
            users: Counts {
                map: HashMap::new(),
            },
            addrs: Counts {
                map: HashMap::new(),
            },
        }
    }

    /// Before checking a password: Err(how long to wait) when this address or this
    /// user name is throttled.
    pub fn check(&self, now: Instant, from: IpAddr, user: &str) -> Result<(), Duration> {
        let a = self.addrs.wait(now, &from);
        let u = self.users.wait(now, &key(user));
        match a.into_iter().chain(u).max() {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    pub fn failed(&mut self, now: Instant, from: IpAddr, user: &str) {
        let cfg = self.cfg;
        self.addrs.fail(now, from, cfg.per_address, &cfg);
        self.users.fail(now, key(user), cfg.per_user, &cfg);
    }

    pub fn succeeded(&mut self, from: IpAddr, user: &str) {
        self.users.map.remove(&key(user));
        self.addrs.map.remove(&from);
    }

    pub fn tracked(&self) -> (usize, usize) {
        (self.users.map.len(), self.addrs.map.len())
    }
}

/// Agents' sessions (sans-IO): a token per login, ended by logout, by a new password,
/// or after `idle` without use; an agent holds at most `per_agent` (a new login ends
/// the oldest).
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    per_agent: usize,
    map: HashMap<String, (String, Instant)>,
}

impl Sessions {
    pub fn new(idle: Duration, per_agent: usize) -> Sessions {
        Sessions {
            idle,
            per_agent: per_agent.max(1),
            map: HashMap::new(),
        }
    }

    pub fn create(&mut self, now: Instant, agent: &str, token: String) {
        let idle = self.idle;
        self.map
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < idle);
        let mut mine: Vec<(String, Instant)> = self
            .map
            .iter()
            .filter(|(_, (a, _))| a == agent)
            .map(|(k, (_, last))| (k.clone(), *last))
            .collect();
        mine.sort_by_key(|m| m.1);
        while mine.len() >= self.per_agent {
            self.map.remove(&mine.remove(0).0);
        }
        self.map.insert(token, (agent.to_string(), now));
    }

    /// The agent behind a token, counting as a use; None once it has ended.
    pub fn touch(&mut self, now: Instant, token: &str) -> Option<String> {
        let (agent, last) = self.map.get_mut(token)?;
        if now.saturating_duration_since(*last) >= self.idle {
            self.map.remove(token);
            return None;
        }
        *last = now;
        Some(agent.clone())
    }

    /// Whether a token is still good, without counting as a use.
    pub fn alive(&self, now: Instant, token: &str) -> bool {
        self.map
            .get(token)
            .is_some_and(|(_, last)| now.saturating_duration_since(*last) < self.idle)
    }

    /// Ends every session of an agent.
    pub fn end(&mut self, agent: &str) {
        self.map.retain(|_, (a, _)| a != agent);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// At most `n` events per `per` for each key (sliding window), over a bounded map:
/// chat starts per address, messages per chat.
#[derive(Debug)]
pub struct RateLimit<K> {
    n: usize,
    per: Duration,
    capacity: usize,
    map: HashMap<K, std::collections::VecDeque<Instant>>,
}

impl<K: std::hash::Hash + Eq + Clone> RateLimit<K> {
    pub fn new(n: u32, per: Duration, capacity: usize) -> Self {
        RateLimit {
            n: n.max(1) as usize,
            per,
            capacity: capacity.max(1),
            map: HashMap::new(),
        }
    }

    /// Counts an event now; Err(how long until one is allowed) when over the limit
    /// (and then it is not counted).
    pub fn take(&mut self, now: Instant, k: &K) -> Result<(), Duration> {
        let per = self.per;
        if self.map.len() >= self.capacity && !self.map.contains_key(k) {
            self.map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < per)
            });
            if self.map.len() >= self.capacity {
                return Err(per);
            }
        }
        let q = self.map.entry(k.clone()).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= per)
        {
            q.pop_front();
        }
        if q.len() >= self.n {
            return Err(per - now.saturating_duration_since(q[0]));
        }
        q.push_back(now);
        Ok(())
    }
}

/// User names as a stranger may type them: bounded, case-folded.
fn key(user: &str) -> String {
    user.chars().take(64).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn guessing_one_user_waits_longer_and_longer() {
        let t0 = crate::clock::now();
        let mut g = LoginGuard::new(GuardConfig::default());
        for _ in 0..4 {
            assert!(g.check(t0, A, "alice").is_ok());
            g.failed(t0, A, "alice");
        }
        g.failed(t0, A, "alice");
        assert_eq!(g.check(t0, A, "alice"), Err(Duration::from_secs(2)));
        // From another address too: it is the user name that is being guessed.
        assert_eq!(g.check(t0, B, "Alice"), Err(Duration::from_secs(2)));
        assert!(g.check(t0, A, "bob").is_ok());
        let t1 = t0 + Duration::from_secs(2);
        assert!(g.check(t1, A, "alice").is_ok());
        g.failed(t1, A, "alice");
        assert_eq!(g.check(t1, A, "alice"), Err(Duration::from_secs(4)));
        // So a guesser gets at most a few hundred tries in an hour, not millions.
        let mut at = t1;
        let mut tries = 0;
        while at < t0 + Duration::from_secs(3600) {
            match g.check(at, A, "alice") {
                Ok(()) => {
                    tries += 1;
                    g.failed(at, A, "alice");
                }
                Err(w) => at += w,
            }
        }
        assert!(tries < 30, "{tries}");
        g.succeeded(A, "alice");
        assert!(g.check(at, A, "alice").is_ok());
    }

    #[test]
    fn sessions_end_when_idle_at_logout_and_beyond_the_per_agent_limit() {
        let t0 = crate::clock::now();
        let mut s = Sessions::new(Duration::from_secs(600), 2);
        s.create(t0, "alice", "t1".into());
        let t1 = t0 + Duration::from_secs(599);
        assert_eq!(s.touch(t1, "t1").as_deref(), Some("alice"));
        // Used at t1: good until t1 + 600 s, not a second longer.
        assert!(s.alive(t1 + Duration::from_secs(599), "t1"));
        assert_eq!(s.touch(t1 + Duration::from_secs(600), "t1"), None);
        assert!(s.is_empty());
        s.create(t0, "alice", "a".into());
        s.create(t0 + Duration::from_secs(1), "alice", "b".into());
        s.create(t0 + Duration::from_secs(2), "alice", "c".into());
        assert!(
            !s.alive(t0 + Duration::from_secs(3), "a"),
            "the oldest went"
        );
        s.create(t0, "bob", "d".into());
        s.end("alice");
        assert_eq!(s.len(), 1);
        assert!(s.alive(t0, "d"));
    }

    #[test]
    fn rate_limits_slide_and_stay_bounded() {
        let t0 = crate::clock::now();
        let mut r = RateLimit::new(5, Duration::from_secs(60), 3);
        for i in 0..5 {
            assert!(r.take(t0 + Duration::from_secs(i), &A).is_ok());
        }
        assert_eq!(
            r.take(t0 + Duration::from_secs(10), &A),
            Err(Duration::from_secs(50))
        );
        assert!(r.take(t0 + Duration::from_secs(10), &B).is_ok());
        assert!(r.take(t0 + Duration::from_secs(60), &A).is_ok());
        // A full map refuses new keys rather than growing.
        let c = IpAddr::from([192, 0, 2, 3]);
        let d = IpAddr::from([192, 0, 2, 4]);
        assert!(r.take(t0 + Duration::from_secs(61), &c).is_ok());
        assert!(r.take(t0 + Duration::from_secs(61), &d).is_err());
    }

    #[test]
    fn one_address_trying_many_users_is_slowed_and_the_maps_are_bounded() {
        let t0 = crate::clock::now();
        let mut g = LoginGuard::new(GuardConfig {
            capacity: 100,
            ..Default::default()
        });
        for i in 0..20 {
            g.failed(t0, A, &format!("user{i}"));
        }
        assert!(g.check(t0, A, "someone-else").is_err());
        assert!(g.check(t0, B, "someone-else").is_ok());
        for i in 0..1000 {
            g.failed(t0, B, &format!("spray{i}"));
        }
        let (users, addrs) = g.tracked();
        assert!(users <= 100 && addrs <= 100);
    }
}
