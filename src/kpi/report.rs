//! KPIs over many interactions' facts, grouped, and per customer journey (case).

use super::event::Metric;
use super::facts::{Facts, OfferEnd, Stage};
use crate::dialplan::model::Hours;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
        f.queue.as_ref().is_some_and(|q| self.queues.contains(q))
            || f.agents.iter().any(|a| self.agents.contains(a))
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
}

impl Kpis {
    fn done(&mut self) {
        self.nps = (self.nps_answers > 0).then(|| {
            (self.nps_promoters as f64 - self.nps_detractors as f64) * 100.0
                / self.nps_answers as f64
        });
        for r in [
            &mut self.service_level,
            &mut self.abandonment,
            &mut self.first_contact_resolution,
            &mut self.repeat_contact,
            &mut self.reopened,
            &mut self.channel_switch,
            &mut self.csat,
            &mut self.survey_response,
        ] {
            r.done();
        }
        for m in [
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
        ] {
            m.done();
        }
    }

    /// Every share's numerator within its denominator (a property the tests check).
    pub fn ratios(&self) -> [Ratio; 8] {
        [
            self.service_level,
            self.abandonment,
            self.first_contact_resolution,
            self.repeat_contact,
            self.reopened,
            self.channel_switch,
            self.csat,
            self.survey_response,
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

fn key_of(f: &Facts, k: Key, agent: Option<&str>, tz: &jiff::tz::TimeZone) -> String {
    let at = || {
        jiff::Timestamp::from_millisecond(f.created)
            .unwrap_or_default()
            .to_zoned(tz.clone())
    };
    match k {
        Key::Queue => f.queue.clone().unwrap_or_else(|| NONE.into()),
        Key::Agent => agent
            .map(str::to_string)
            .or_else(|| f.agents.last().cloned())
            .unwrap_or_else(|| NONE.into()),
        Key::Channel => f.channel.clone(),
        Key::Hour => at().strftime("%Y-%m-%dT%H").to_string(),
        Key::Day => at().strftime("%Y-%m-%d").to_string(),
    }
}

fn group_key(p: &Params, f: &Facts, agent: Option<&str>) -> Vec<String> {
    p.group_by
        .iter()
        .map(|k| key_of(f, *k, agent, &p.tz))
        .collect()
}

/// The KPIs of `facts` (interactions created in the period, and any later ones of the
/// same customers, which only count as repeat contacts) grouped by `p.group_by`.
pub fn report(facts: &[Facts], p: &Params) -> Report {
    let mut groups: BTreeMap<Vec<String>, Kpis> = BTreeMap::new();
    let mut total = Kpis::default();
    let in_scope = |f: &Facts| p.scope.as_ref().is_none_or(|s| s.has(f));
    let agent_in_scope = |a: &str| p.scope.as_ref().is_none_or(|s| s.agents.contains(a));
    let in_time = |f: &Facts| f.created >= p.from && f.created < p.to;
    let in_period = |f: &Facts| in_time(f) && in_scope(f);
    for f in facts.iter().filter(|f| in_time(f)) {
        if in_scope(f) {
            let g = groups.entry(group_key(p, f, None)).or_default();
            contact(g, f, p);
            contact(&mut total, f, p);
        }
        for (agent, end) in f.offers.iter().filter(|(a, _)| agent_in_scope(a)) {
            let g = groups.entry(group_key(p, f, Some(agent))).or_default();
            offer(g, *end);
            offer(&mut total, *end);
        }
    }
    // Journeys: cases by their first interaction; a customer's inbound interactions
    // by time, for repeat contacts.
    let mut cases: HashMap<i64, Vec<&Facts>> = HashMap::new();
    let mut inbound_of: HashMap<i64, Vec<i64>> = HashMap::new();
    for f in facts {
        if let Some(c) = f.case {
            cases.entry(c).or_default().push(f);
        }
        if let (Some(c), true) = (f.customer, f.inbound) {
            inbound_of.entry(c).or_default().push(f.created);
        }
    }
    for v in inbound_of.values_mut() {
        v.sort_unstable();
    }
    for list in cases.values_mut() {
        list.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let first = list[0];
        if !in_period(first) {
            continue;
        }
        let g = groups.entry(group_key(p, first, None)).or_default();
        journey(g, list, &inbound_of, p);
        journey(&mut total, list, &inbound_of, p);
    }
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
            f.queue.as_ref().and_then(|q| p.hours.get(q)),
        ) {
            k.first_response_business
                .add(super::hours::open_ms(h, a, b));
        }
    }
    for r in &f.replies {
        k.reply_time.add(*r);
    }
}

fn journey(k: &mut Kpis, list: &[&Facts], inbound_of: &HashMap<i64, Vec<i64>>, p: &Params) {
    k.cases += 1;
    k.contacts_per_case
        .add(list.iter().filter(|f| f.inbound).count() as i64);
    let channels: BTreeSet<&str> = list.iter().map(|f| f.channel.as_str()).collect();
    k.channel_switch.add(channels.len() >= 2);
    for w in list.windows(2) {
        if w[0].channel != w[1].channel {
            *k.switches
                .entry(format!("{}→{}", w[0].channel, w[1].channel))
                .or_default() += 1;
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
            let customer = list[0].customer;
            let came_back = customer
                .and_then(|c| inbound_of.get(&c))
                .is_some_and(|times| {
                    let i = times.partition_point(|t| *t <= resolved);
                    times.get(i).is_some_and(|t| *t <= horizon)
                });
            k.repeat_contact.add(came_back);
            k.first_contact_resolution.add(handled == 1 && !came_back);
        }
    }
    // The journey's answer: the last per metric across its interactions.
    let mut last: BTreeMap<Metric, (i64, i64)> = BTreeMap::new();
    for f in list {
        for (t, m, s) in &f.surveys {
            let e = last.entry(*m).or_insert((*t, *s));
            if (*t, *s) > *e {
                *e = (*t, *s);
            }
        }
    }
    if handled > 0 {
        k.survey_response.add(!last.is_empty());
    }
    if let Some((_, s)) = last.get(&Metric::Csat) {
        k.csat.add(*s >= 4);
        k.csat_score.add(*s);
    }
    if let Some((_, s)) = last.get(&Metric::Nps) {
        k.nps_answers += 1;
        k.nps_promoters += (*s >= 9) as u64;
        k.nps_detractors += (*s <= 6) as u64;
    }
    if let Some((_, s)) = last.get(&Metric::Ces) {
        k.ces.add(*s);
    }
}
