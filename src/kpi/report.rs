//! KPIs over many interactions' facts, grouped, and per customer journey (case).

use super::event::Metric;
use super::facts::{Facts, OfferEnd, Stage};
use crate::dialplan::model::Hours;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How customers who leave a queue count in the service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Abandons {
    /// In the denominator, never met (Amazon Connect's "Service level X": answered
    /// within X / contacts queued). The default.
    #[default]
    Counted,
    /// Left out of the service level altogether.
    Ignored,
    /// Met if they left within X, missed after.
    MetIfWithin,
}

impl Abandons {
    pub fn from_name(s: &str) -> Option<Abandons> {
        match s {
            "counted" => Some(Abandons::Counted),
            "ignored" => Some(Abandons::Ignored),
            "met_if_within" => Some(Abandons::MetIfWithin),
            _ => None,
        }
    }
}

/// What a report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Queue,
    Agent,
    Channel,
    Hour,
    Day,
}

impl Key {
    pub fn from_name(s: &str) -> Option<Key> {
        match s {
            "queue" => Some(Key::Queue),
            "agent" => Some(Key::Agent),
            "channel" => Some(Key::Channel),
            "hour" => Some(Key::Hour),
            "day" => Some(Key::Day),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Key::Queue => "queue",
            Key::Agent => "agent",
            Key::Channel => "channel",
            Key::Hour => "hour",
            Key::Day => "day",
        }
    }
}

/// What a report covers and how it counts.
#[derive(Debug, Clone)]
pub struct Params {
    /// Interactions created in `from..to` (Unix ms); cases whose first interaction is.
    pub from: i64,
    pub to: i64,
    /// Now (Unix ms): a case resolved less than `fcr_days` ago is not yet judged.
    pub now: i64,
    pub tz: jiff::tz::TimeZone,
    pub group_by: Vec<Key>,
    /// The service-level threshold per queue (ms), and for queues not listed.
    pub sla: HashMap<String, i64>,
    pub default_sla: i64,
    pub abandons: Abandons,
    /// Customers who leave a queue sooner than this (ms) count in neither the service
    /// level nor the abandonment rate.
    pub short_abandon: i64,
    /// Days after a resolution within which a new contact means the case was not
    /// resolved at first contact.
    pub fcr_days: i64,
    /// Queues' opening hours, for the business-hours first response time.
    pub hours: HashMap<String, Hours>,
    /// A supervisor's view: only contacts in these queues or handled by these agents,
    /// offers to these agents (on any contact), and journeys that began with such a contact (a journey's
    /// later contacts still count wherever they went). None: everything.
    pub scope: Option<Scope>,
}

/// The queues and agents a report is limited to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub queues: std::collections::BTreeSet<String>,
    pub agents: std::collections::BTreeSet<String>,
}

impl Scope {
    fn has(&self, f: &Facts) -> bool {
        f.queue.as_ref().is_some_and(|q| self.queues.contains(&**q))
            || f.agents.iter().any(|a| self.agents.contains(&**a))
    }
}

impl Params {
    pub fn new(from: i64, to: i64, now: i64) -> Params {
        Params {
            from,
            to,
            now,
            tz: jiff::tz::TimeZone::UTC,
            group_by: vec![],
            sla: HashMap::new(),
            default_sla: 20_000,
            abandons: Abandons::Counted,
            short_abandon: 5_000,
            fcr_days: 7,
            hours: HashMap::new(),
            scope: None,
        }
    }

    fn sla_of(&self, queue: Option<&str>) -> i64 {
        queue
            .and_then(|q| self.sla.get(q))
            .copied()
            .unwrap_or(self.default_sla)
    }
}

/// A share: `num` of `den`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Ratio {
    pub num: u64,
    pub den: u64,
    /// num / den, none when den is 0.
    pub value: Option<f64>,
}

impl Ratio {
    fn merge(&mut self, o: &Ratio) {
        self.num += o.num;
        self.den += o.den;
    }

    fn add(&mut self, hit: bool) {
        self.den += 1;
        self.num += hit as u64;
    }

    fn done(&mut self) {
        self.value = (self.den > 0).then(|| self.num as f64 / self.den as f64);
    }
}

/// An average: `sum` over `n`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Mean {
    pub n: u64,
    pub sum: i64,
    pub mean: Option<f64>,
}

impl Mean {
    fn merge(&mut self, o: &Mean) {
        self.n += o.n;
        self.sum += o.sum;
    }

    fn add(&mut self, v: i64) {
        self.n += 1;
        self.sum += v;
    }

    fn done(&mut self) {
        self.mean = (self.n > 0).then(|| self.sum as f64 / self.n as f64);
    }
}

/// The KPIs of one group (times in ms). See the README for each definition.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Kpis {
    /// Interactions created in the period.
    pub contacts: u64,
    pub inbound: u64,
    /// Of those, the ones that joined a queue (Connect: contacts queued).
    pub queued: u64,
    /// Queued and reached an agent (Connect: contacts handled incoming).
    pub answered: u64,
    /// Answered within the queue's threshold, with abandons as configured.
    pub service_level: Ratio,
    /// Customers who left, by where they were.
    pub abandoned: BTreeMap<&'static str, u64>,
    /// Left a queue sooner than the short-abandon threshold.
    pub short_abandons: u64,
    /// Left a queue (waiting or ringing) / queued, short abandons out of both.
    pub abandonment: Ratio,
    /// Queue to agent (Connect: average queue answer time).
    pub speed_of_answer: Mean,
    /// Reached an agent (Connect: contacts handled).
    pub handled: u64,
    /// Talk + hold + after-contact work per handled interaction (Connect: average
    /// handle time).
    pub handle_time: Mean,
    /// Connect: average agent interaction time.
    pub talk_time: Mean,
    /// Per interaction put on hold (Connect: average customer hold time).
    pub hold_time: Mean,
    /// Holds in all (Connect: customer hold count... summed).
    pub holds: u64,
    /// Per interaction with a wrap-up (Connect: average after contact work time).
    pub after_contact_work: Mean,
    /// First human reply (text channels).
    pub first_response: Mean,
    /// The same counting only the queue's opening hours (queues with hours).
    pub first_response_business: Mean,
    /// Later waits for a human reply.
    pub reply_time: Mean,
    /// Offers made, and those rejected, lapsed or missed.
    pub offers: u64,
    pub missed_offers: u64,
    /// Cases opened in the period (by their first interaction).
    pub cases: u64,
    pub resolved_cases: u64,
    /// Resolved with exactly one handled interaction and no new inbound contact from
    /// the customer on any channel within `fcr_days`; only cases whose days are over.
    pub first_contact_resolution: Ratio,
    /// Resolved cases not yet judged (resolved less than `fcr_days` ago).
    pub fcr_pending: u64,
    /// Inbound interactions per case.
    pub contacts_per_case: Mean,
    /// Resolved cases whose customer came back within `fcr_days`.
    pub repeat_contact: Ratio,
    /// Resolved cases reopened.
    pub reopened: Ratio,
    /// Cases on two or more channels.
    pub channel_switch: Ratio,
    /// Consecutive interactions of a case on different channels, `from→to`.
    pub switches: BTreeMap<String, u64>,
    /// Satisfied (4 or 5) of the last CSAT answer per case.
    pub csat: Ratio,
    pub csat_score: Mean,
    /// Promoters (9-10) minus detractors (0-6), in percent of answers.
    pub nps: Option<f64>,
    pub nps_answers: u64,
    pub nps_promoters: u64,
    pub nps_detractors: u64,
    pub ces: Mean,
    /// Cases with an agent that got any survey answer.
    pub survey_response: Ratio,
    /// Conversations the first-level bot had whose bot part is over: ended without a
    /// hand-off and without a person ever on them.
    pub containment: Ratio,
    /// The same conversations: handed to a person by the bot.
    pub bot_handoff: Ratio,
    /// Per intent (the last article the bot matched, `(none)`): handed over of the
    /// bot's conversations with that intent.
    pub bot_handoff_by_intent: BTreeMap<String, Ratio>,
    /// Agents' time on work or in wrap-up (`num`, ms) of that plus their time
    /// available without work (`den`, ms) (Connect: occupancy). See [`super::occupancy`].
    pub occupancy: Ratio,
}

impl Kpis {
    /// Adds another part's counts (before [`Kpis::done`]).
    fn merge(&mut self, o: &Kpis) {
        self.contacts += o.contacts;
        self.inbound += o.inbound;
        self.queued += o.queued;
        self.answered += o.answered;
        self.short_abandons += o.short_abandons;
        self.handled += o.handled;
        self.holds += o.holds;
        self.offers += o.offers;
        self.missed_offers += o.missed_offers;
        self.cases += o.cases;
        self.resolved_cases += o.resolved_cases;
        self.fcr_pending += o.fcr_pending;
        self.nps_answers += o.nps_answers;
        self.nps_promoters += o.nps_promoters;
        self.nps_detractors += o.nps_detractors;
        for (k, v) in &o.abandoned {
            *self.abandoned.entry(k).or_default() += v;
        }
        for (k, v) in &o.switches {
            *self.switches.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.bot_handoff_by_intent {
            self.bot_handoff_by_intent
                .entry(k.clone())
                .or_default()
                .merge(v);
        }
        for (a, b) in self.ratios_mut().into_iter().zip(o.ratios()) {
            a.merge(&b);
        }
        for (a, b) in self.means_mut().into_iter().zip(o.means()) {
            a.merge(&b);
        }
    }

    pub(super) fn done(&mut self) {
        self.nps = (self.nps_answers > 0).then(|| {
            (self.nps_promoters as f64 - self.nps_detractors as f64) * 100.0
                / self.nps_answers as f64
        });
        for r in self.ratios_mut() {
            r.done();
        }
        for r in self.bot_handoff_by_intent.values_mut() {
            r.done();
        }
        for m in self.means_mut() {
            m.done();
        }
    }

    fn ratios_mut(&mut self) -> [&mut Ratio; 11] {
        [
            &mut self.containment,
            &mut self.bot_handoff,
            &mut self.service_level,
            &mut self.abandonment,
            &mut self.first_contact_resolution,
            &mut self.repeat_contact,
            &mut self.reopened,
            &mut self.channel_switch,
            &mut self.csat,
            &mut self.survey_response,
            &mut self.occupancy,
        ]
    }

    fn means_mut(&mut self) -> [&mut Mean; 11] {
        [
            &mut self.speed_of_answer,
            &mut self.handle_time,
            &mut self.talk_time,
            &mut self.hold_time,
            &mut self.after_contact_work,
            &mut self.first_response,
            &mut self.first_response_business,
            &mut self.reply_time,
            &mut self.contacts_per_case,
            &mut self.csat_score,
            &mut self.ces,
        ]
    }

    /// The averages, in [`Kpis::means_mut`]'s order.
    fn means(&self) -> [Mean; 11] {
        [
            self.speed_of_answer,
            self.handle_time,
            self.talk_time,
            self.hold_time,
            self.after_contact_work,
            self.first_response,
            self.first_response_business,
            self.reply_time,
            self.contacts_per_case,
            self.csat_score,
            self.ces,
        ]
    }

    /// The shares, in [`Kpis::ratios_mut`]'s order: every numerator within its
    /// denominator (a property the tests check).
    pub fn ratios(&self) -> [Ratio; 11] {
        [
            self.containment,
            self.bot_handoff,
            self.service_level,
            self.abandonment,
            self.first_contact_resolution,
            self.repeat_contact,
            self.reopened,
            self.channel_switch,
            self.csat,
            self.survey_response,
            self.occupancy,
        ]
    }
}

/// One group's key values (in `group_by` order) and KPIs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: BTreeMap<&'static str, String>,
    pub kpis: Kpis,
}

/// A report: every group, and all together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub groups: Vec<Group>,
    pub total: Kpis,
}

const NONE: &str = "(none)";

/// One part of a group's key as the report works: borrowed from the facts, or a
/// local hour or day by number (nothing allocated per interaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part<'a> {
    Unused,
    Str(&'a str),
    Local(u32),
}

/// A group's key: `group_by` has at most the five keys, each once.
type Raw<'a> = [Part<'a>; 5];

/// Group keys, with the hour and day of each quarter hour worked out once (every time
/// zone's offset and transitions fall on quarter hours, so a quarter hour lies in one
/// local hour and one local day).
pub(super) struct Keys<'p> {
    p: &'p Params,
    quarters: HashMap<i64, (u32, u32)>,
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl<'p> Keys<'p> {
    fn name_id(&mut self, s: String) -> u32 {
        if let Some(id) = self.ids.get(&s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    pub(super) fn new(p: &'p Params) -> Keys<'p> {
        Keys {
            p,
            quarters: HashMap::new(),
            names: vec![],
            ids: HashMap::new(),
        }
    }

    /// The local hour and day (as [`Keys::name`] ids) of an instant.
    pub(super) fn local(&mut self, created: i64) -> (u32, u32) {
        let q = created.div_euclid(900_000);
        if let Some(v) = self.quarters.get(&q) {
            return *v;
        }
        let at = jiff::Timestamp::from_millisecond(created)
            .unwrap_or_default()
            .to_zoned(self.p.tz.clone());
        let v = (
            self.name_id(at.strftime("%Y-%m-%dT%H").to_string()),
            self.name_id(at.strftime("%Y-%m-%d").to_string()),
        );
        self.quarters.insert(q, v);
        v
    }

    fn group_key<'a>(&mut self, f: &'a Facts, agent: Option<&'a str>) -> Raw<'a> {
        let mut raw = [Part::Unused; 5];
        for (i, k) in self.p.group_by.iter().take(5).enumerate() {
            raw[i] = match k {
                Key::Queue => Part::Str(f.queue.as_deref().unwrap_or(NONE)),
                Key::Agent => Part::Str(
                    agent
                        .or_else(|| f.agents.last().map(|a| &**a))
                        .unwrap_or(NONE),
                ),
                Key::Channel => Part::Str(&f.channel),
                Key::Hour => Part::Local(self.local(f.created).0),
                Key::Day => Part::Local(self.local(f.created).1),
            };
        }
        raw
    }

    pub(super) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn strings(&self, raw: &Raw) -> Vec<String> {
        raw.iter()
            .take(self.p.group_by.len())
            .map(|part| match part {
                Part::Unused => String::new(),
                Part::Str(s) => s.to_string(),
                Part::Local(i) => self.names[*i as usize].clone(),
            })
            .collect()
    }
}

/// The groups being filled, found by key; consecutive interactions are mostly in one
/// group (they come in time order), so the last one found is tried first.
#[derive(Default)]
struct Groups<'a> {
    index: HashMap<Raw<'a>, usize>,
    kpis: Vec<Kpis>,
    last: Option<(Raw<'a>, usize)>,
}

impl<'a> Groups<'a> {
    fn get(&mut self, raw: Raw<'a>) -> &mut Kpis {
        let i = match self.last {
            Some((r, i)) if r == raw => i,
            _ => {
                let n = self.kpis.len();
                let i = *self.index.entry(raw).or_insert(n);
                if i == n {
                    self.kpis.push(Kpis::default());
                }
                self.last = Some((raw, i));
                i
            }
        };
        &mut self.kpis[i]
    }
}

/// One thread's share of a report: its groups by key, and its total.
type Share = (Vec<(Vec<String>, Kpis)>, Kpis);

/// Below this many interactions a report is made on one thread.
const PARALLEL_FROM: usize = 20_000;

/// The KPIs of `facts` (interactions created in the period, and any later ones of the
/// same customers, which only count as repeat contacts) grouped by `p.group_by`; on
/// as many threads as the machine has cores (at most 8) for large reports.
pub fn report(facts: &[Facts], p: &Params) -> Report {
    report_parts(&[facts], p)
}

/// [`report`] of facts held in parts (as the store decodes them, a part per thread),
/// read as one list in order.
pub fn report_parts(parts: &[&[Facts]], p: &Params) -> Report {
    let n: usize = parts.iter().map(|f| f.len()).sum();
    let threads = if n < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    report_on(parts, p, threads)
}

/// Facts in parts read as one list: by position, or a stretch of positions.
#[derive(Clone, Copy)]
struct List<'a> {
    parts: &'a [&'a [Facts]],
    /// Where each part starts.
    starts: &'a [usize],
}

impl<'a> List<'a> {
    fn get(self, i: usize) -> &'a Facts {
        let k = self.starts.partition_point(|s| *s <= i) - 1;
        &self.parts[k][i - self.starts[k]]
    }

    fn iter(self) -> impl Iterator<Item = &'a Facts> {
        self.parts.iter().flat_map(|f| f.iter())
    }

    fn range(self, a: usize, b: usize) -> impl Iterator<Item = &'a Facts> {
        self.parts.iter().zip(self.starts).flat_map(move |(f, s)| {
            let lo = a.saturating_sub(*s).min(f.len());
            let hi = b.saturating_sub(*s).min(f.len());
            f[lo..hi].iter()
        })
    }
}

/// [`report_parts`] on `threads` threads: each folds a share of the interactions and
/// a share of the cases, and the parts are added up (the same answer on any number).
pub fn report_on(parts: &[&[Facts]], p: &Params, threads: usize) -> Report {
    let threads = threads.max(1);
    let mut starts = Vec::with_capacity(parts.len());
    let mut len = 0;
    for f in parts {
        starts.push(len);
        len += f.len();
    }
    let facts = List {
        parts,
        starts: &starts,
    };
    // Journeys: each case's interactions together in order (sorted as numbers, the
    // rare equal times then by id); every customer's inbound interactions by time, for
    // repeat contacts.
    let (cases, inbound) = std::thread::scope(|s| {
        let inbound = s.spawn(|| {
            let mut inbound: Vec<(i64, i64)> = facts
                .iter()
                .filter(|f| f.inbound)
                .filter_map(|f| f.customer.map(|c| (c, f.created)))
                .collect();
            inbound.sort_unstable();
            inbound
        });
        let mut cases: Vec<(i64, i64, usize)> = facts
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.case.map(|c| (c, f.created, i)))
            .collect();
        cases.sort_unstable();
        for run in cases.chunk_by_mut(|a, b| (a.0, a.1) == (b.0, b.1)) {
            if run.len() > 1 {
                run.sort_by(|a, b| facts.get(a.2).id.cmp(&facts.get(b.2).id));
            }
        }
        (
            cases,
            inbound
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        )
    });
    // Shares: interactions by position, cases cut only between two cases.
    let per = len.div_ceil(threads).max(1);
    let mut case_cuts = vec![0];
    for t in 1..threads {
        let mut at = (cases.len() * t / threads).max(*case_cuts.last().unwrap_or(&0));
        while at > 0 && at < cases.len() && cases[at].0 == cases[at - 1].0 {
            at += 1;
        }
        case_cuts.push(at.min(cases.len()));
    }
    case_cuts.push(cases.len());
    let parts: Vec<Share> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine = facts.range(t * per, (t + 1) * per);
                let my_cases = &cases[case_cuts[t]..case_cuts[t + 1]];
                let inbound = &inbound;
                s.spawn(move || part(mine, facts, my_cases, inbound, p))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut total = Kpis::default();
    let mut merged: HashMap<Vec<String>, Kpis> = HashMap::new();
    for (groups, t) in parts {
        total.merge(&t);
        for (k, kpis) in groups {
            merged.entry(k).or_default().merge(&kpis);
        }
    }
    let mut groups: Vec<(Vec<String>, Kpis)> = merged.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(k, mut kpis)| {
            kpis.done();
            Group {
                key: p.group_by.iter().map(|k| k.name()).zip(k).collect(),
                kpis,
            }
        })
        .collect();
    if p.group_by.is_empty() {
        groups.clear();
    }
    total.done();
    Report { groups, total }
}

/// One share: the contacts of `mine`, the journeys of `cases` (positions in `all`).
fn part<'a>(
    mine: impl Iterator<Item = &'a Facts>,
    all: List<'a>,
    cases: &[(i64, i64, usize)],
    inbound: &[(i64, i64)],
    p: &Params,
) -> Share {
    let mut groups = Groups::default();
    let mut keys = Keys::new(p);
    let mut total = Kpis::default();
    let in_scope = |f: &Facts| p.scope.as_ref().is_none_or(|s| s.has(f));
    let agent_in_scope = |a: &str| p.scope.as_ref().is_none_or(|s| s.agents.contains(a));
    let in_time = |f: &Facts| f.created >= p.from && f.created < p.to;
    let in_period = |f: &Facts| in_time(f) && in_scope(f);
    for f in mine.filter(|f| in_time(f)) {
        if in_scope(f) {
            let g = groups.get(keys.group_key(f, None));
            contact(g, f, p);
            contact(&mut total, f, p);
        }
        for (agent, end) in f.offers.iter().filter(|(a, _)| agent_in_scope(a)) {
            let g = groups.get(keys.group_key(f, Some(agent)));
            offer(g, *end);
            offer(&mut total, *end);
        }
    }
    let mut list: Vec<&Facts> = vec![];
    for case in cases.chunk_by(|a, b| a.0 == b.0) {
        let first = all.get(case[0].2);
        if !in_period(first) {
            continue;
        }
        list.clear();
        list.extend(case.iter().map(|x| all.get(x.2)));
        let g = groups.get(keys.group_key(first, None));
        journey(g, &list, inbound, p);
        journey(&mut total, &list, inbound, p);
    }
    let Groups {
        index, mut kpis, ..
    } = groups;
    let groups = index
        .into_iter()
        .map(|(raw, i)| (keys.strings(&raw), std::mem::take(&mut kpis[i])))
        .collect();
    (groups, total)
}

fn offer(k: &mut Kpis, end: OfferEnd) {
    k.offers += 1;
    k.missed_offers += matches!(
        end,
        OfferEnd::Rejected | OfferEnd::Lapsed | OfferEnd::Missed
    ) as u64;
}

fn contact(k: &mut Kpis, f: &Facts, p: &Params) {
    k.contacts += 1;
    k.inbound += f.inbound as u64;
    if let Some(b) = f.bot.as_ref().filter(|b| b.ended || f.ended.is_some()) {
        let person = b.handoff || f.queued.is_some() || f.handled();
        k.containment.add(!person);
        k.bot_handoff.add(b.handoff);
        let intent = b.intent.as_deref().unwrap_or(NONE);
        match k.bot_handoff_by_intent.get_mut(intent) {
            Some(r) => r.add(b.handoff),
            None => {
                let mut r = Ratio::default();
                r.add(b.handoff);
                k.bot_handoff_by_intent.insert(intent.to_string(), r);
            }
        }
    }
    if let Some(stage) = f.abandoned {
        *k.abandoned.entry(stage.name()).or_default() += 1;
    }
    let short = f.abandoned_after.is_some_and(|w| w < p.short_abandon);
    k.short_abandons += short as u64;
    if let Some(q) = f.queued {
        k.queued += 1;
        let left = matches!(f.abandoned, Some(Stage::Queue | Stage::Ringing));
        if !short {
            k.abandonment.add(left);
        }
        let sla = p.sla_of(f.queue.as_deref());
        let settled = f.answered_from_queue.is_some() || f.ended.is_some();
        match (f.answered_from_queue, left) {
            (Some(a), _) => {
                k.answered += 1;
                k.speed_of_answer.add(a - q);
                k.service_level.add(a - q <= sla);
            }
            (None, true) if short => {}
            (None, true) => match p.abandons {
                Abandons::Counted => k.service_level.add(false),
                Abandons::Ignored => {}
                Abandons::MetIfWithin => k
                    .service_level
                    .add(f.abandoned_after.unwrap_or(i64::MAX) <= sla),
            },
            (None, false) if settled => k.service_level.add(false),
            (None, false) => {}
        }
    }
    if f.handled() {
        k.handled += 1;
        k.handle_time.add(f.handle_time());
        k.talk_time.add(f.talk);
        if f.holds > 0 {
            k.hold_time.add(f.hold);
        }
        k.holds += f.holds as u64;
        if let Some(a) = f.acw {
            k.after_contact_work.add(a);
        }
    }
    if let Some(r) = f.first_response {
        k.first_response.add(r);
        if let (Some((a, b)), Some(h)) = (
            f.first_response_span,
            f.queue.as_ref().and_then(|q| p.hours.get(&**q)),
        ) {
            k.first_response_business
                .add(super::hours::open_ms(h, a, b));
        }
    }
    for r in &f.replies {
        k.reply_time.add(*r);
    }
}

fn journey(k: &mut Kpis, list: &[&Facts], inbound: &[(i64, i64)], p: &Params) {
    k.cases += 1;
    k.contacts_per_case
        .add(list.iter().filter(|f| f.inbound).count() as i64);
    k.channel_switch
        .add(list.iter().any(|f| f.channel != list[0].channel));
    let mut key = String::new();
    for w in list.windows(2) {
        if w[0].channel != w[1].channel {
            key.clear();
            key.extend([&*w[0].channel, "→", &*w[1].channel]);
            match k.switches.get_mut(key.as_str()) {
                Some(n) => *n += 1,
                None => {
                    k.switches.insert(key.clone(), 1);
                }
            }
        }
    }
    let handled = list.iter().filter(|f| f.handled()).count();
    if let Some(resolved) = list.iter().flat_map(|f| f.resolved.iter().copied()).min() {
        k.resolved_cases += 1;
        k.reopened.add(
            list.iter()
                .flat_map(|f| f.reopened.iter())
                .any(|t| *t >= resolved),
        );
        let horizon = resolved + p.fcr_days * 86_400_000;
        if horizon > p.now {
            k.fcr_pending += 1;
        } else {
            let came_back = list[0].customer.is_some_and(|c| {
                let i = inbound.partition_point(|x| *x <= (c, resolved));
                inbound
                    .get(i)
                    .is_some_and(|(who, t)| *who == c && *t <= horizon)
            });
            k.repeat_contact.add(came_back);
            k.first_contact_resolution.add(handled == 1 && !came_back);
        }
    }
    // The journey's answer: the last per metric across its interactions.
    let mut last: [Option<(i64, i64)>; 3] = [None; 3];
    for f in list {
        for (t, m, s) in &f.surveys {
            let e = &mut last[*m as usize];
            if e.is_none_or(|e| (*t, *s) > e) {
                *e = Some((*t, *s));
            }
        }
    }
    if handled > 0 {
        k.survey_response.add(last.iter().any(Option::is_some));
    }
    if let Some((_, s)) = last[Metric::Csat as usize] {
        k.csat.add(s >= 4);
        k.csat_score.add(s);
    }
    if let Some((_, s)) = last[Metric::Nps as usize] {
        k.nps_answers += 1;
        k.nps_promoters += (s >= 9) as u64;
        k.nps_detractors += (s <= 6) as u64;
    }
    if let Some((_, s)) = last[Metric::Ces as usize] {
        k.ces.add(s);
    }
}
