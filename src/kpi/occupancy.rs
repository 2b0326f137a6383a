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

const QUARTER: i64 = 900_000;

/// Adds the occupancy of `changes` (each agent's in time order, with the last change
/// before `p.from` so the state at the start is known) to `report`'s groups and total.
pub fn add_occupancy(report: &mut Report, changes: &[Change], p: &Params) {
    let end = p.to.min(p.now);
    let by_time = p.group_by.iter().any(|k| matches!(k, Key::Hour | Key::Day));
    let grouped = !p.group_by.is_empty()
        && p.group_by
            .iter()
            .all(|k| matches!(k, Key::Agent | Key::Hour | Key::Day));
    let in_scope = |a: &str| p.scope.as_ref().is_none_or(|s| s.agents.contains(a));
    let mut keys = Keys::new(p);
    let mut total = Ratio::default();
    // Groups by small ids while adding up (an agent's run, the local hour and day as
    // `Keys` ids; 0 where not grouped by it): names are made once per group at the end.
    let has = |k: Key| p.group_by.contains(&k);
    let (by_agent, by_hour, by_day) = (has(Key::Agent), has(Key::Hour), has(Key::Day));
    let mut agents: Vec<&str> = Vec::new();
    let mut ids: HashMap<(usize, u32, u32), Ratio> = HashMap::new();
    let mut pending: Option<((usize, u32, u32), Ratio)> = None;
    for run in changes.chunk_by(|a, b| a.agent == b.agent) {
        if !in_scope(&run[0].agent) {
            continue;
        }
        let agent = if by_agent {
            agents.push(&run[0].agent);
            agents.len() - 1
        } else {
            0
        };
        for (i, c) in run.iter().enumerate() {
            let (occupied, staffed) = counts(&c.state);
            if !staffed {
                continue;
            }
            let until = run.get(i + 1).map_or(end, |n| n.at).min(end);
            let mut from = c.at.max(p.from);
            while from < until {
                // Cut at quarter hours only when grouped by time.
                let to = if by_time {
                    (from.div_euclid(QUARTER) + 1) * QUARTER
                } else {
                    until
                }
                .min(until);
                let ms = (to - from) as u64;
                let add = |r: &mut Ratio| {
                    r.den += ms;
                    r.num += if occupied { ms } else { 0 };
                };
                add(&mut total);
                if grouped {
                    let (hour, day) = if by_time { keys.local(from) } else { (0, 0) };
                    let key = (
                        agent,
                        if by_hour { hour } else { 0 },
                        if by_day { day } else { 0 },
                    );
                    // Consecutive quarters mostly share a group: added up here, put in
                    // the map when the group changes.
                    match &mut pending {
                        Some((k, r)) if *k == key => add(r),
                        _ => {
                            if let Some((k, r)) = pending.take() {
                                let g = ids.entry(k).or_default();
                                g.num += r.num;
                                g.den += r.den;
                            }
                            let mut r = Ratio::default();
                            add(&mut r);
                            pending = Some((key, r));
                        }
                    }
                }
                from = to;
            }
        }
    }
    if let Some((k, r)) = pending {
        let g = ids.entry(k).or_default();
        g.num += r.num;
        g.den += r.den;
    }
    let mut groups: HashMap<Vec<String>, Ratio> = HashMap::new();
    for ((agent, hour, day), r) in ids {
        let key: Vec<String> = p
            .group_by
            .iter()
            .map(|k| match k {
                Key::Hour => keys.name(hour).to_string(),
                Key::Day => keys.name(day).to_string(),
                _ => agents[agent].to_string(),
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
