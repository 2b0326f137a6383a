//! One interaction's [`Facts`] as a compact byte string, so the store can keep them
//! (table `kpi_facts`) and a report folds them without reading the timeline again.
//!
//! Format (version [`VERSION`]): a version byte, then the fields in declaration
//! order; integers as LEB128 varints (signed ones zig-zagged), times as offsets from
//! `created`, strings as a length and UTF-8, options and enums as one tag byte, lists
//! as a count and their items. Anything that does not decode (another version, a cut
//! or corrupt string) gives `None`, and the store makes the facts again from the log.
//! [`pack`] puts a quarter hour's interactions' facts in one byte string, so a month's
//! report reads a few thousand rows.

use super::event::{Metric, Party};
use super::facts::{BotPart, Facts, Name, OfferEnd, Stage};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Bumped whenever the format or the meaning of [`Facts`] changes; stored facts of
/// another version are made again.
pub const VERSION: u8 = 2;

struct W(Vec<u8>);

impl W {
    fn u(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }

    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }

    fn s(&mut self, s: &str) {
        self.u(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn oi(&mut self, v: Option<i64>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.i(v);
            }
        }
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn u(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn i(&mut self) -> Option<i64> {
        let v = self.u()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn len(&mut self) -> Option<usize> {
        // Every item takes at least a byte: a count beyond what is left is corrupt.
        let n = self.u()?;
        (n <= self.0.len() as u64).then_some(n as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(s)
    }

    fn s(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn oi(&mut self) -> Option<Option<i64>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.i()?)),
            _ => None,
        }
    }
}

fn party(p: Option<Party>) -> u8 {
    match p {
        None => 0,
        Some(Party::Customer) => 1,
        Some(Party::Agent) => 2,
        Some(Party::System) => 3,
    }
}

fn stage(s: Option<Stage>) -> u8 {
    s.map_or(0, |s| {
        1 + Stage::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
    })
}

fn offer_end(e: OfferEnd) -> u8 {
    match e {
        OfferEnd::Accepted => 0,
        OfferEnd::Rejected => 1,
        OfferEnd::Lapsed => 2,
        OfferEnd::Missed => 3,
        OfferEnd::Withdrawn => 4,
    }
}

fn metric(m: Metric) -> u8 {
    match m {
        Metric::Csat => 0,
        Metric::Nps => 1,
        Metric::Ces => 2,
    }
}

/// The facts as bytes.
pub fn encode(f: &Facts) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(64));
    w.0.push(VERSION);
    let c = f.created;
    let rel = |v: Option<i64>| v.map(|v| v.wrapping_sub(c));
    w.s(&f.id);
    w.s(&f.channel);
    w.0.push(f.inbound as u8);
    w.oi(f.customer);
    w.oi(f.case);
    w.i(c);
    match &f.queue {
        None => w.0.push(0),
        Some(q) => {
            w.0.push(1);
            w.s(q);
        }
    }
    w.oi(rel(f.queued));
    w.oi(rel(f.answered));
    w.oi(rel(f.answered_from_queue));
    w.u(f.agents.len() as u64);
    for a in &f.agents {
        w.s(a);
    }
    w.oi(rel(f.ended));
    w.0.push(party(f.ended_by));
    w.0.push(stage(f.abandoned));
    w.oi(f.abandoned_after);
    w.i(f.talk);
    w.i(f.hold);
    w.u(u64::from(f.holds));
    w.oi(f.acw);
    w.oi(f.first_response);
    match f.first_response_span {
        None => w.0.push(0),
        Some((a, b)) => {
            w.0.push(1);
            w.i(a.wrapping_sub(c));
            w.i(b.wrapping_sub(a));
        }
    }
    w.u(f.replies.len() as u64);
    for r in &f.replies {
        w.i(*r);
    }
    w.u(f.offers.len() as u64);
    for (a, e) in &f.offers {
        w.s(a);
        w.0.push(offer_end(*e));
    }
    w.u(f.dispositions.len() as u64);
    for d in &f.dispositions {
        w.s(d);
    }
    for list in [&f.resolved, &f.reopened] {
        w.u(list.len() as u64);
        for t in list {
            w.i(t.wrapping_sub(c));
        }
    }
    w.u(f.surveys.len() as u64);
    for (t, m, s) in &f.surveys {
        w.i(t.wrapping_sub(c));
        w.0.push(metric(*m));
        w.i(*s);
    }
    match &f.bot {
        None => w.0.push(0),
        Some(b) => {
            w.0.push(1 | (b.handoff as u8) << 1 | (b.ended as u8) << 2);
            match &b.intent {
                None => w.0.push(0),
                Some(i) => {
                    w.0.push(1);
                    w.s(i);
                }
            }
        }
    }
    w.0
}

/// Facts from [`encode`]'s bytes; `None` for anything else.
pub fn decode(b: &[u8]) -> Option<Facts> {
    Names::default().decode(b)
}

/// FNV-1a: names are short and made by us, so a simple hash is enough.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// At most this many names are shared by one decoder; more are made each time.
const MAX_NAMES: usize = 4096;

/// A decoder that makes each channel, queue, agent and disposition name once and
/// shares it between the facts it decodes (a month names a few dozen of each: a
/// million interactions then cost no allocation for their names).
#[derive(Default)]
pub struct Names(HashMap<Box<[u8]>, Name, BuildHasherDefault<Fnv>>);

impl Names {
    fn name(&mut self, b: &[u8]) -> Option<Name> {
        if let Some(n) = self.0.get(b) {
            return Some(n.clone());
        }
        let n: Name = std::str::from_utf8(b).ok()?.into();
        if self.0.len() < MAX_NAMES {
            self.0.insert(b.into(), n.clone());
        }
        Some(n)
    }

    /// Facts from [`encode`]'s bytes; `None` for anything else.
    pub fn decode(&mut self, b: &[u8]) -> Option<Facts> {
        let mut r = R(b);
        if r.byte()? != VERSION {
            return None;
        }
        let id = r.s()?;
        let channel = self.name(r.bytes()?)?;
        let inbound = match r.byte()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let customer = r.oi()?;
        let case = r.oi()?;
        let c = r.i()?;
        let abs = |v: Option<i64>| v.map(|v| v.wrapping_add(c));
        let queue = match r.byte()? {
            0 => None,
            1 => Some(self.name(r.bytes()?)?),
            _ => return None,
        };
        let queued = abs(r.oi()?);
        let answered = abs(r.oi()?);
        let answered_from_queue = abs(r.oi()?);
        let n = r.len()?;
        let mut agents = Vec::with_capacity(n);
        for _ in 0..n {
            agents.push(self.name(r.bytes()?)?);
        }
        let ended = abs(r.oi()?);
        let ended_by = match r.byte()? {
            0 => None,
            1 => Some(Party::Customer),
            2 => Some(Party::Agent),
            3 => Some(Party::System),
            _ => return None,
        };
        let abandoned = match r.byte()? {
            0 => None,
            k => Some(*Stage::ALL.get(usize::from(k) - 1)?),
        };
        let abandoned_after = r.oi()?;
        let talk = r.i()?;
        let hold = r.i()?;
        let holds = u32::try_from(r.u()?).ok()?;
        let acw = r.oi()?;
        let first_response = r.oi()?;
        let first_response_span = match r.byte()? {
            0 => None,
            1 => {
                let a = r.i()?.wrapping_add(c);
                Some((a, r.i()?.wrapping_add(a)))
            }
            _ => return None,
        };
        let n = r.len()?;
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            replies.push(r.i()?);
        }
        let n = r.len()?;
        let mut offers = Vec::with_capacity(n);
        for _ in 0..n {
            let a = self.name(r.bytes()?)?;
            let e = match r.byte()? {
                0 => OfferEnd::Accepted,
                1 => OfferEnd::Rejected,
                2 => OfferEnd::Lapsed,
                3 => OfferEnd::Missed,
                4 => OfferEnd::Withdrawn,
                _ => return None,
            };
            offers.push((a, e));
        }
        let n = r.len()?;
        let mut dispositions = Vec::with_capacity(n);
        for _ in 0..n {
            dispositions.push(self.name(r.bytes()?)?);
        }
        let mut times = || -> Option<Vec<i64>> {
            let n = r.len()?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.i()?.wrapping_add(c));
            }
            Some(v)
        };
        let resolved = times()?;
        let reopened = times()?;
        let n = r.len()?;
        let mut surveys = Vec::with_capacity(n);
        for _ in 0..n {
            let t = r.i()?.wrapping_add(c);
            let m = match r.byte()? {
                0 => Metric::Csat,
                1 => Metric::Nps,
                2 => Metric::Ces,
                _ => return None,
            };
            surveys.push((t, m, r.i()?));
        }
        let bot = match r.byte()? {
            0 => None,
            b if b & 1 == 1 && b < 8 => Some(BotPart {
                handoff: b & 2 != 0,
                ended: b & 4 != 0,
                intent: match r.byte()? {
                    0 => None,
                    1 => Some(self.name(r.bytes()?)?),
                    _ => return None,
                },
            }),
            _ => return None,
        };
        if !r.0.is_empty() {
            return None;
        }
        Some(Facts {
            id,
            channel,
            inbound,
            customer,
            case,
            created: c,
            queue,
            queued,
            answered,
            answered_from_queue,
            agents,
            ended,
            ended_by,
            abandoned,
            abandoned_after,
            talk,
            hold,
            holds,
            acw,
            first_response,
            first_response_span,
            replies,
            offers,
            dispositions,
            resolved,
            reopened,
            surveys,
            bot,
        })
    }
}

/// How long a pack's stretch of time is (ms): a quarter hour.
pub const QUARTER: i64 = 900_000;

/// The quarter hour `at` (Unix ms) lies in.
pub fn quarter_of(at: i64) -> i64 {
    at.div_euclid(QUARTER)
}

/// Many interactions' encoded facts as one byte string: for each, when it started
/// (from `base`) and its [`encode`]d facts, each length-prefixed.
pub fn pack<'a>(base: i64, entries: impl IntoIterator<Item = (i64, &'a [u8])>) -> Vec<u8> {
    let mut w = W(vec![]);
    for (started, facts) in entries {
        w.i(started.wrapping_sub(base));
        w.u(facts.len() as u64);
        w.0.extend_from_slice(facts);
    }
    w.0
}

/// A [`pack`]'s entries as they are (when each started, its encoded facts), or `None`
/// if it is cut short.
pub fn entries(base: i64, b: &[u8]) -> Option<Vec<(i64, &[u8])>> {
    let mut r = R(b);
    let mut out = vec![];
    while !r.0.is_empty() {
        let started = r.i()?.wrapping_add(base);
        let n = r.len()?;
        let (facts, rest) = r.0.split_at(n);
        r.0 = rest;
        out.push((started, facts));
    }
    Some(out)
}

/// The interaction an [`encode`]d facts is of, read without decoding the rest.
pub fn id_of(facts: &[u8]) -> Option<&str> {
    let mut r = R(facts);
    if r.byte()? != VERSION {
        return None;
    }
    let n = r.len()?;
    std::str::from_utf8(&r.0[..n]).ok()
}

/// The facts of interactions that started in `from..to` from quarter hours' packs
/// `(quarter, pack)`, in the packs' order, on up to `threads` threads, as a part per
/// thread (read them as one list in order, as [`super::report::report_parts`] does);
/// and the quarters whose packs did not decode.
///
/// The entries are counted first so each thread's part is made once at its size (a
/// month's million facts are neither grown nor copied into one list).
pub fn unpack_all(
    packs: &[(i64, Vec<u8>)],
    from: i64,
    to: i64,
    threads: usize,
) -> (Vec<Vec<Facts>>, Vec<i64>) {
    let counts: Vec<usize> = packs
        .iter()
        .map(|(q, b)| {
            entries(q * QUARTER, b).map_or(0, |list| {
                list.iter().filter(|(t, _)| (from..to).contains(t)).count()
            })
        })
        .collect();
    let total: usize = counts.iter().sum();
    // Shares of about equal counts, cut between packs.
    let per = total.div_ceil(threads.max(1)).max(1);
    let mut shares: Vec<(usize, usize, usize)> = vec![]; // (first pack, end pack, facts)
    let (mut first, mut n) = (0, 0);
    for (i, c) in counts.iter().enumerate() {
        n += c;
        if n >= per || i + 1 == packs.len() {
            shares.push((first, i + 1, n));
            (first, n) = (i + 1, 0);
        }
    }
    let parts: Vec<(Vec<Facts>, Vec<i64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .map(|&(a, b, n)| {
                let packs = &packs[a..b];
                s.spawn(move || {
                    let mut names = Names::default();
                    let mut facts = Vec::with_capacity(n);
                    let mut bad = vec![];
                    for (q, b) in packs {
                        // Decoded straight into the part; a pack that fails is taken
                        // back out whole.
                        let had = facts.len();
                        let whole = entries(q * QUARTER, b).is_some_and(|list| {
                            list.into_iter()
                                .filter(|(t, _)| (from..to).contains(t))
                                .all(|(_, b)| names.decode(b).map(|f| facts.push(f)).is_some())
                        });
                        if !whole {
                            facts.truncate(had);
                            bad.push(*q);
                        }
                    }
                    (facts, bad)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut bad = vec![];
    let parts = parts
        .into_iter()
        .map(|(f, b)| {
            bad.extend(b);
            f
        })
        .collect();
    (parts, bad)
}
