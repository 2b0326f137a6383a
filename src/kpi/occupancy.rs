//! Occupancy: how much of the time agents were ready for work they spent on it
//! (Amazon Connect's *Occupancy*), from each agent's activity log, the router's
//! `idle` / `working` / `wrap-up` / `away` / `busy` / `offline` changes.
//!
//! `occupancy = (working + wrap-up) / (working + wrap-up + idle)`: `working` is any
//! time with work assigned (a call, any number of chats, a consult), whatever the
//! presence; `wrap-up` the after-contact work with nothing else assigned; `idle`
//! available without work (offers ringing included). Away, busy and offline time
//! without work is in neither side. Times are clipped to the report's period (and to
//! now); with `group_by` of `agent`, `hour` and `day` only, each group gets its share
//! (a span across an hour is cut at it); grouped by `queue` or `channel`, which an
//! agent's time is not spent in one of, it is only in the total.

use super::report::{Group, Key, Keys, Kpis, Params, Ratio, Report};
use std::collections::{BTreeMap, HashMap};

/// An agent's activity from `at` (Unix ms) on: the router's name for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub agent: String,
    pub at: i64,
    pub state: String,
}

/// How a state counts: (occupied, staffed).
fn counts(state: &str) -> (bool, bool) {
    match state {
        "working" | "wrap-up" => (true, true),
        "idle" => (false, true),
        _ => (false, false),
    }
}

pub const QUARTER: i64 = 900_000;

/// One quarter hour's occupancy, by agent: (agent, occupied ms, staffed ms), each
/// agent once, by name.
pub type Sums = Vec<(String, u64, u64)>;

/// Adds the occupancy of `changes` (each agent's in time order, with the last change
/// before `p.from` so the state at the start is known) to `report`'s groups and total.
pub fn add_occupancy(report: &mut Report, changes: &[Change], p: &Params) {
    let mut f = Fold::new(p);
    f.changes(changes, p.from, p.to.min(p.now));
    f.finish(report);
}

/// Occupancy being added up for a report: from agents' changes, or from quarter
/// hours' [`Sums`] kept by a [`Packer`] (the same figures: a span is cut at quarter
/// hours either way when the report is grouped by time).
pub struct Fold<'p> {
    p: &'p Params,
    keys: Keys<'p>,
    total: Ratio,
    by_time: bool,
    grouped: bool,
    by: (bool, bool, bool),
    /// Agents by small id (`ids` groups by (agent, local hour, local day) ids; 0 where
    /// not grouped by it): names are made once per group at the end.
    agents: Vec<String>,
    agent_ids: HashMap<String, usize>,
    ids: HashMap<(usize, u32, u32), Ratio>,
    /// Consecutive additions mostly share a group: added up here, put in the map when
    /// the group changes.
    pending: Option<((usize, u32, u32), Ratio)>,
}

impl<'p> Fold<'p> {
    pub fn new(p: &'p Params) -> Fold<'p> {
        let has = |k: Key| p.group_by.contains(&k);
        Fold {
            p,
            keys: Keys::new(p),
            total: Ratio::default(),
            by_time: has(Key::Hour) || has(Key::Day),
            grouped: !p.group_by.is_empty()
                && p.group_by
                    .iter()
                    .all(|k| matches!(k, Key::Agent | Key::Hour | Key::Day)),
            by: (has(Key::Agent), has(Key::Hour), has(Key::Day)),
            agents: Vec::new(),
            agent_ids: HashMap::new(),
            ids: HashMap::new(),
            pending: None,
        }
    }

    fn in_scope(&self, agent: &str) -> bool {
        self.p
            .scope
            .as_ref()
            .is_none_or(|s| s.agents.contains(agent))
    }

    /// `staffed` ms from `from` (within one quarter hour when grouped by time) of
    /// `agent`, `occupied` of them on work.
    fn add(&mut self, agent: &str, from: i64, occupied: u64, staffed: u64) {
        let add = |r: &mut Ratio| {
            r.den += staffed;
            r.num += occupied;
        };
        add(&mut self.total);
        if !self.grouped {
            return;
        }
        let (by_agent, by_hour, by_day) = self.by;
        let agent = if by_agent {
            match self.agent_ids.get(agent) {
                Some(&i) => i,
                None => {
                    self.agents.push(agent.to_string());
                    self.agent_ids
                        .insert(agent.to_string(), self.agents.len() - 1);
                    self.agents.len() - 1
                }
            }
        } else {
            0
        };
        let (hour, day) = if self.by_time {
            self.keys.local(from)
        } else {
            (0, 0)
        };
        let key = (
            agent,
            if by_hour { hour } else { 0 },
            if by_day { day } else { 0 },
        );
        match &mut self.pending {
            Some((k, r)) if *k == key => add(r),
            _ => {
                if let Some((k, r)) = self.pending.take() {
                    let g = self.ids.entry(k).or_default();
                    g.num += r.num;
                    g.den += r.den;
                }
                let mut r = Ratio::default();
                add(&mut r);
                self.pending = Some((key, r));
            }
        }
    }

    /// Adds `changes` (each agent's in time order, with their last change before
    /// `from`), clipped to `from..until`.
    pub fn changes(&mut self, changes: &[Change], from: i64, until: i64) {
        for run in changes.chunk_by(|a, b| a.agent == b.agent) {
            let agent = run[0].agent.as_str();
            if !self.in_scope(agent) {
                continue;
            }
            for (i, c) in run.iter().enumerate() {
                let (occupied, staffed) = counts(&c.state);
                if !staffed {
                    continue;
                }
                let end = run.get(i + 1).map_or(until, |n| n.at).min(until);
                let mut at = c.at.max(from);
                while at < end {
                    // Cut at quarter hours only when grouped by time.
                    let to = if self.by_time {
                        (at.div_euclid(QUARTER) + 1) * QUARTER
                    } else {
                        end
                    }
                    .min(end);
                    let ms = (to - at) as u64;
                    self.add(agent, at, if occupied { ms } else { 0 }, ms);
                    at = to;
                }
            }
        }
    }

    /// Adds kept quarter hours (numbered from the epoch, as [`Packer`] does).
    pub fn quarters(&mut self, packs: &[(i64, Sums)]) {
        for (q, sums) in packs {
            for (agent, occupied, staffed) in sums {
                if self.in_scope(agent) {
                    self.add(agent, q * QUARTER, *occupied, *staffed);
                }
            }
        }
    }

    /// Puts the occupancy in `report`'s total and groups (a group with time on the
    /// floor but no contact is added).
    pub fn finish(mut self, report: &mut Report) {
        if let Some((k, r)) = self.pending.take() {
            let g = self.ids.entry(k).or_default();
            g.num += r.num;
            g.den += r.den;
        }
        let (p, keys, agents, total) = (self.p, self.keys, self.agents, self.total);
        let ids = self.ids;
        let mut groups: HashMap<Vec<String>, Ratio> = HashMap::new();
        for ((agent, hour, day), r) in ids {
            let key: Vec<String> = p
                .group_by
                .iter()
                .map(|k| match k {
                    Key::Hour => keys.name(hour).to_string(),
                    Key::Day => keys.name(day).to_string(),
                    _ => agents[agent].clone(),
                })
                .collect();
            let g = groups.entry(key).or_default();
            g.num += r.num;
            g.den += r.den;
        }
        report.total.occupancy = total;
        report.total.done();
        let key_of = |g: &Group| -> Vec<String> {
            p.group_by
                .iter()
                .map(|k| g.key.get(k.name()).cloned().unwrap_or_default())
                .collect()
        };
        for g in report.groups.iter_mut() {
            if let Some(r) = groups.remove(&key_of(g)) {
                g.kpis.occupancy = r;
                g.kpis.done();
            }
        }
        // Hours and agents with time on the floor but no contact in the period.
        for (key, r) in groups {
            let mut kpis = Kpis {
                occupancy: r,
                ..Kpis::default()
            };
            kpis.done();
            let key: BTreeMap<&'static str, String> =
                p.group_by.iter().map(|k| k.name()).zip(key).collect();
            report.groups.push(Group { key, kpis });
        }
        report.groups.sort_by_cached_key(key_of);
    }
}

/// Makes quarter hours' [`Sums`] from agents' changes, for keeping: changes are
/// pushed (each agent's in time order; the first of each may be from before the
/// start), then [`Packer::cut`] closes every quarter before a boundary. What a report
/// adds from the kept sums is what it adds from the changes.
pub struct Packer {
    from: i64,
    /// Each agent's state since when (not before `from`): (since, occupied, staffed).
    open: HashMap<String, (i64, bool, bool)>,
    sums: BTreeMap<i64, HashMap<String, (u64, u64)>>,
}

impl Packer {
    /// Packs from `from` (a quarter hour's start) on.
    pub fn new(from: i64) -> Packer {
        Packer {
            from,
            open: HashMap::new(),
            sums: BTreeMap::new(),
        }
    }

    fn add(&mut self, agent: &str, mut at: i64, end: i64, occupied: bool, staffed: bool) {
        if !staffed {
            return;
        }
        while at < end {
            let q = at.div_euclid(QUARTER);
            let to = ((q + 1) * QUARTER).min(end);
            let ms = (to - at) as u64;
            let s = self
                .sums
                .entry(q)
                .or_default()
                .entry(agent.to_string())
                .or_default();
            s.1 += ms;
            if occupied {
                s.0 += ms;
            }
            at = to;
        }
    }

    pub fn push(&mut self, c: &Change) {
        let at = c.at.max(self.from);
        if let Some(&(since, occupied, staffed)) = self.open.get(&c.agent) {
            self.add(&c.agent, since, at, occupied, staffed);
        }
        let (occupied, staffed) = counts(&c.state);
        self.open.insert(c.agent.clone(), (at, occupied, staffed));
    }

    /// Closes every agent's time at `until` (a quarter hour's start, not before the
    /// last cut) and gives each quarter hour from the last cut to it, in order (one
    /// with nobody staffed has no sums); those after it are started from there.
    pub fn cut(&mut self, until: i64) -> Vec<(i64, Sums)> {
        let open: Vec<(String, (i64, bool, bool))> =
            self.open.iter().map(|(a, s)| (a.clone(), *s)).collect();
        for (agent, (since, occupied, staffed)) in open {
            if since < until {
                self.add(&agent, since, until, occupied, staffed);
                self.open.insert(agent, (until, occupied, staffed));
            }
        }
        let (first, last) = (self.from.div_euclid(QUARTER), until.div_euclid(QUARTER));
        let later = self.sums.split_off(&last);
        let mut done = std::mem::replace(&mut self.sums, later);
        self.from = until;
        (first..last)
            .map(|q| {
                let mut sums: Sums = done
                    .remove(&q)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(a, (o, s))| (a, o, s))
                    .collect();
                sums.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                (q, sums)
            })
            .collect()
    }
}

/// The kept form of a quarter hour's [`Sums`]: a version byte (1), then per agent its
/// name's length (u16) and bytes, occupied and staffed ms (u64), little-endian.
pub fn encode(sums: &Sums) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sums.len() * 24);
    out.push(1);
    for (agent, occupied, staffed) in sums {
        let name = &agent.as_bytes()[..agent.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&occupied.to_le_bytes());
        out.extend_from_slice(&staffed.to_le_bytes());
    }
    out
}

/// [`encode`]'s sums again; `None` for anything else (another version, cut short).
pub fn decode(b: &[u8]) -> Option<Sums> {
    let (&version, mut rest) = b.split_first()?;
    if version != 1 {
        return None;
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, r) = rest.split_first_chunk::<2>()?;
        let len = u16::from_le_bytes(*len) as usize;
        if r.len() < len + 16 {
            return None;
        }
        let name = std::str::from_utf8(&r[..len]).ok()?.to_string();
        let occupied = u64::from_le_bytes(r[len..len + 8].try_into().ok()?);
        let staffed = u64::from_le_bytes(r[len + 8..len + 16].try_into().ok()?);
        out.push((name, occupied, staffed));
        rest = &r[len + 16..];
    }
    Some(out)
}
