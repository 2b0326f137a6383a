//! Routing benchmarks on the sans-IO ACD with 10,000 agents (all busy) and 100,000
//! waiting items: one decision is an agent finishing its work and being offered the
//! best waiting item it can take across its queues (then accepting it, and a new item
//! arriving, so the load stays constant). Also prints the p99 decision latency.
//! Run: `cargo bench --bench routing`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use omnigate::routing::engine::*;
use std::time::{Duration, Instant};

const AGENTS: u64 = 10_000;
const WAITING: u64 = 100_000;
const QUEUES: u32 = 20;

struct Load {
    r: Router,
    now: Instant,
    next_item: u64,
    /// What each agent holds.
    holding: Vec<Option<ItemId>>,
    /// Decisions where the free agent found nothing it could take.
    idle: u64,
    turn: u64,
}

fn skill(i: u64) -> String {
    format!("s{}", i % 5)
}

/// A third of the items want a skill at level 3 or more (every agent has it); one in a
/// hundred of the first 100,000 wants a skill nobody has, and waits for ever without
/// slowing the rest.
fn item_spec(i: u64) -> ItemSpec {
    let mut s = ItemSpec::new(Channel::Voice);
    s.priority = (i % 10) as u8;
    s.vip = i % 97 == 0;
    if i % 100 == 7 && i < WAITING {
        s.skills = vec![("unicorn".into(), 1)];
    } else if i % 3 == 0 {
        s.skills = vec![(skill(i), 3)];
    }
    s
}

#[allow(clippy::disallowed_methods)]
fn setup() -> Load {
    let now = Instant::now();
    let mut r = Router::new(now);
    let qs: Vec<QueueId> = (0..QUEUES)
        .map(|i| r.add_queue(QueueSpec::new(&format!("q{i}"))))
        .collect();
    let mut holding = vec![];
    for a in 0..AGENTS {
        let mut s = AgentSpec::new(vec![
            qs[(a % QUEUES as u64) as usize],
            qs[((a * 7 + 3) % QUEUES as u64) as usize],
        ]);
        for k in 0..5 {
            s.skills.insert(skill(k), ((a + k) % 8) as u8 + 3);
        }
        r.login(now, AgentId(a), s).unwrap();
        r.set_presence(now, AgentId(a), Presence::Available)
            .unwrap();
        // Keep them busy: one call each.
        let id = ItemId(1_000_000_000 + a);
        r.enqueue(
            now,
            id,
            qs[(a % QUEUES as u64) as usize],
            ItemSpec::new(Channel::Voice),
        )
        .unwrap();
        r.accept(now, AgentId(a), id).unwrap();
        holding.push(Some(id));
    }
    for i in 0..WAITING {
        r.enqueue(
            now,
            ItemId(i),
            qs[(i % QUEUES as u64) as usize],
            item_spec(i),
        )
        .unwrap();
    }
    while r.poll_event().is_some() {}
    assert_eq!(r.waiting_total(), WAITING as usize);
    Load {
        r,
        now,
        next_item: WAITING,
        holding,
        turn: 0,
        idle: 0,
    }
}

impl Load {
    /// Agent `turn % AGENTS` finishes; it is offered the best item it can take and
    /// accepts; a new item arrives.
    fn decision(&mut self) {
        let a = self.turn % AGENTS;
        self.turn += 1;
        self.now += Duration::from_millis(1);
        if let Some(held) = self.holding[a as usize].take() {
            self.r.finish(self.now, held, None).unwrap();
        }
        let took = self.answer_offers(Some(AgentId(a)));
        if took.is_none() {
            self.idle += 1;
        }
        // The new item replaces the one taken, in its queue, so the load stays the same
        // everywhere.
        let q = took
            .and_then(|i| self.r.queue_of(i))
            .unwrap_or(QueueId((a % QUEUES as u64) as u32));
        self.r
            .enqueue(
                self.now,
                ItemId(self.next_item),
                q,
                item_spec(self.next_item),
            )
            .unwrap();
        self.next_item += 1;
        // An idle agent may be offered the new item: it answers at once too.
        self.answer_offers(None);
    }

    /// Every offered agent accepts. Returns what `who` got.
    fn answer_offers(&mut self, who: Option<AgentId>) -> Option<ItemId> {
        let mut got = None;
        let mut offers = vec![];
        while let Some(e) = self.r.poll_event() {
            if let RouterEvent::Offer { item, agent, .. } = e {
                offers.push((agent, item));
            }
        }
        for (agent, item) in offers {
            self.r.accept(self.now, agent, item).unwrap();
            self.holding[agent.0 as usize] = Some(item);
            if Some(agent) == who {
                got = Some(item);
            }
        }
        while self.r.poll_event().is_some() {}
        got
    }
}

#[allow(clippy::disallowed_methods)]
fn routing(c: &mut Criterion) {
    let mut load = setup();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        "decision: 10,000 agents busy, 100,000 waiting (finish, offer, accept, new item)",
        |b| b.iter(|| load.decision()),
    );
    g.finish();
    // p99 of single decisions.
    let mut lat: Vec<Duration> = (0..50_000)
        .map(|_| {
            let t = Instant::now();
            load.decision();
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "routing: decision latency p50 {:?}, p99 {:?}, max {:?} over {} decisions ({} waiting, {} agents, {} decisions found nothing to take)",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1],
        lat.len(),
        load.r.waiting_total(),
        AGENTS,
        load.idle
    );
}

criterion_group!(benches, routing);
criterion_main!(benches);
