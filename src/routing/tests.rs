//! The ACD on a simulated clock: every strategy, the races, and a property test that
//! nothing is assigned twice, lost, or left waiting while a matching agent is free.

use super::*;

struct T {
    r: Router,
    t0: Instant,
    now: Instant,
}

impl T {
    fn new() -> T {
        let t0 = crate::clock::now();
        T {
            r: Router::new(t0),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, secs: f64) {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self.r.handle_timeout(self.now);
    }

    fn events(&mut self) -> Vec<RouterEvent> {
        std::iter::from_fn(|| self.r.poll_event()).collect()
    }

    fn offers(&mut self) -> Vec<(u64, u64)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                RouterEvent::Offer { item, agent, .. } => Some((item.0, agent.0)),
                _ => None,
            })
            .collect()
    }

    fn queue(&mut self, spec: QueueSpec) -> QueueId {
        self.r.add_queue(spec)
    }

    fn agent(&mut self, id: u64, q: &[QueueId], f: impl FnOnce(&mut AgentSpec)) {
        let mut s = AgentSpec::new(q.to_vec());
        f(&mut s);
        self.r.login(self.now, AgentId(id), s).unwrap();
        // Agents start Away; these are on duty.
        self.r
            .set_presence(self.now, AgentId(id), Presence::Available)
            .unwrap();
        self.check();
    }

    fn item(&mut self, id: u64, q: QueueId, f: impl FnOnce(&mut ItemSpec)) {
        let mut s = ItemSpec::new(Channel::Voice);
        f(&mut s);
        self.r.enqueue(self.now, ItemId(id), q, s).unwrap();
        self.check();
    }

    fn check(&self) {
        self.r.check(self.now).unwrap();
    }
}

fn strategy(s: Strategy) -> QueueSpec {
    let mut q = QueueSpec::new("q");
    q.strategy = s;
    q
}

#[test]
fn longest_idle_gets_the_call() {
    let mut t = T::new();
    let q = t.queue(strategy(Strategy::LongestIdle));
    t.agent(1, &[q], |_| {});
    t.at(10.0);
    t.agent(2, &[q], |_| {});
    t.events();
    t.item(100, q, |_| {});
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.accept(t.now, AgentId(1), ItemId(100)).unwrap();
    t.item(101, q, |_| {});
    assert_eq!(t.offers(), [(101, 2)]);
    // Agent 1 finishes; the next call goes to agent 2's... no: 2 is busy, 1 idle again.
    t.r.accept(t.now, AgentId(2), ItemId(101)).unwrap();
    t.at(20.0);
    t.r.finish(t.now, ItemId(100), None).unwrap();
    t.at(25.0);
    t.r.finish(t.now, ItemId(101), None).unwrap();
    t.events();
    t.item(102, q, |_| {});
    assert_eq!(
        t.offers(),
        [(102, 1)],
        "agent 1 has been idle since 20 s, agent 2 since 25 s"
    );
    t.check();
}

#[test]
fn least_occupied_spreads_chats() {
    let mut t = T::new();
    let q = t.queue(strategy(Strategy::LeastOccupied));
    t.agent(1, &[q], |_| {});
    t.agent(2, &[q], |a| {
        a.capacity.insert(Channel::Chat, 6);
    });
    let mut got = vec![];
    for i in 0..6 {
        t.item(100 + i, q, |s| s.channel = Channel::Chat);
        got.extend(t.offers().into_iter().map(|(_, a)| a));
    }
    // Agent 2 (capacity 6) takes two for each one agent 1 (capacity 3) takes.
    assert_eq!(got.iter().filter(|a| **a == 1).count(), 2, "{got:?}");
    assert_eq!(got.iter().filter(|a| **a == 2).count(), 4, "{got:?}");
    t.check();
}

#[test]
fn round_robin_takes_turns() {
    let mut t = T::new();
    let q = t.queue(strategy(Strategy::RoundRobin));
    for a in 1..=3 {
        t.agent(a, &[q], |s| {
            s.capacity.insert(Channel::Voice, 5);
            s.call_blocks_others = false;
        });
    }
    let mut order = vec![];
    for i in 0..6 {
        t.item(100 + i, q, |_| {});
        let (_, a) = t.offers()[0];
        t.r.accept(t.now, AgentId(a), ItemId(100 + i)).unwrap();
        order.push(a);
    }
    assert_eq!(order, [1, 2, 3, 1, 2, 3]);
}

#[test]
fn skills_with_levels_and_skills_weighted() {
    let mut t = T::new();
    let q = t.queue(strategy(Strategy::SkillsWeighted));
    t.agent(1, &[q], |a| {
        a.skills.insert("spanish".into(), 3);
    });
    t.agent(2, &[q], |a| {
        a.skills.insert("spanish".into(), 9);
    });
    t.agent(3, &[q], |a| {
        a.skills.insert("billing".into(), 9);
    });
    t.events();
    t.item(100, q, |s| s.skills = vec![("spanish".into(), 2)]);
    assert_eq!(t.offers(), [(100, 2)], "the best Spanish speaker");
    // Level 5 wanted: agent 1 (level 3) is not eligible even when free.
    t.r.accept(t.now, AgentId(2), ItemId(100)).unwrap();
    t.item(101, q, |s| s.skills = vec![("spanish".into(), 5)]);
    assert_eq!(t.offers(), []);
    assert_eq!(t.r.position(ItemId(101)), Some(1));
    t.r.finish(t.now, ItemId(100), None).unwrap();
    assert_eq!(t.offers(), [(101, 2)]);
    t.check();
}

#[test]
fn ring_all_first_accept_wins_and_the_others_stop_ringing() {
    let mut t = T::new();
    let q = t.queue(strategy(Strategy::RingAll));
    for a in 1..=3 {
        t.agent(a, &[q], |_| {});
    }
    t.events();
    t.item(100, q, |_| {});
    let mut offered: Vec<u64> = t.offers().into_iter().map(|(_, a)| a).collect();
    offered.sort();
    assert_eq!(offered, [1, 2, 3]);
    t.r.accept(t.now, AgentId(2), ItemId(100)).unwrap();
    let ev = t.events();
    assert!(ev.contains(&RouterEvent::Assigned {
        item: ItemId(100),
        agent: AgentId(2)
    }));
    for a in [1, 3] {
        assert!(ev.contains(&RouterEvent::Revoke {
            item: ItemId(100),
            agent: AgentId(a),
            reason: RevokeReason::Taken
        }));
    }
    assert_eq!(
        t.r.accept(t.now, AgentId(3), ItemId(100)),
        Err(RouteError::Taken)
    );
    assert_eq!(t.r.assigned(AgentId(2)), [ItemId(100)]);
    t.check();
}

#[test]
fn caller_hangs_up_while_an_agent_is_offered() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.item(100, q, |_| {});
    t.events();
    t.r.cancel(t.now, ItemId(100)).unwrap();
    assert_eq!(
        t.events(),
        [RouterEvent::Revoke {
            item: ItemId(100),
            agent: AgentId(1),
            reason: RevokeReason::Cancelled
        }]
    );
    assert_eq!(
        t.r.accept(t.now, AgentId(1), ItemId(100)),
        Err(RouteError::Gone)
    );
    assert_eq!(t.r.queue_stats(q).unwrap().abandoned, 1);
    // The agent is free for the next one.
    t.item(101, q, |_| {});
    assert_eq!(t.offers(), [(101, 1)]);
    t.check();
}

#[test]
fn agent_logs_out_mid_offer_and_the_item_goes_to_the_next_agent() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.at(1.0);
    t.agent(2, &[q], |_| {});
    t.item(100, q, |_| {});
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.logout(t.now, AgentId(1)).unwrap();
    let ev = t.events();
    assert!(ev.contains(&RouterEvent::Revoke {
        item: ItemId(100),
        agent: AgentId(1),
        reason: RevokeReason::LoggedOut
    }));
    assert!(ev.contains(&RouterEvent::Offer {
        item: ItemId(100),
        agent: AgentId(2),
        expires: t.now + Duration::from_secs(15)
    }));
    assert_eq!(
        t.r.accept(t.now, AgentId(1), ItemId(100)),
        Err(RouteError::UnknownAgent)
    );
    t.r.accept(t.now, AgentId(2), ItemId(100)).unwrap();
    t.check();
}

#[test]
fn a_lapsed_offer_sends_the_agent_away_and_the_item_keeps_its_place() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.item(100, q, |_| {});
    t.at(1.0);
    t.item(101, q, |_| {});
    assert_eq!(t.offers(), [(100, 1)]);
    t.at(15.0);
    let ev = t.events();
    assert!(ev.contains(&RouterEvent::Presence {
        agent: AgentId(1),
        presence: Presence::Away
    }));
    assert_eq!(t.r.presence(AgentId(1)), Some(Presence::Away));
    assert_eq!(
        t.r.position(ItemId(100)),
        Some(1),
        "back at the front, ahead of 101"
    );
    assert_eq!(t.r.position(ItemId(101)), Some(2));
    t.agent(2, &[q], |_| {});
    assert_eq!(t.offers(), [(100, 2)]);
    t.check();
}

#[test]
fn a_video_escalation_goes_to_its_agent_alone_whatever_their_load_and_waits_for_its_owner() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.agent(2, &[q], |_| {});
    // Agent 1 has a chat; the customer escalates to video with them.
    let mut chat = ItemSpec::new(Channel::Chat);
    chat.priority = 5;
    t.r.enqueue(t.now, ItemId(100), q, chat).unwrap();
    let (item, agent) = t.offers()[0];
    assert_eq!(item, 100);
    t.r.accept(t.now, AgentId(agent), ItemId(100)).unwrap();
    let other = 3 - agent;
    let answered = t.r.queue_stats(q).unwrap().answered;
    t.item(101, q, |s| {
        s.channel = Channel::Video;
        s.only = Some(AgentId(agent));
    });
    assert_eq!(
        t.offers(),
        [(101, agent)],
        "no video capacity, a chat on: still theirs"
    );
    assert_eq!(t.r.waiting_total(), 0, "not waiting in the queue");
    // Declined: it goes to nobody else, not even the idle colleague.
    t.r.reject(t.now, AgentId(agent), ItemId(101)).unwrap();
    t.at(60.0);
    assert_eq!(t.offers(), []);
    assert_eq!(t.r.presence(AgentId(other)), Some(Presence::Available));
    // Its owner ends it; the queue's figures never counted it.
    t.r.cancel(t.now, ItemId(101)).unwrap();
    let stats = t.r.queue_stats(q).unwrap();
    assert_eq!((stats.answered, stats.abandoned), (answered, 0));
    // Accepted, it is a call: nothing else is offered to the agent meanwhile.
    t.item(102, q, |s| {
        s.channel = Channel::Video;
        s.only = Some(AgentId(agent));
    });
    assert_eq!(t.offers(), [(102, agent)]);
    t.r.accept(t.now, AgentId(agent), ItemId(102)).unwrap();
    t.r.set_presence(t.now, AgentId(other), Presence::Away)
        .unwrap();
    t.item(103, q, |s| s.channel = Channel::Chat);
    assert_eq!(t.offers(), [], "the agent is on a call");
    t.r.finish(t.now, ItemId(102), None).unwrap();
    assert_eq!(
        t.offers(),
        [(103, agent)],
        "the call over, the waiting chat is theirs"
    );
    // An agent logged out gets no escalation.
    t.r.logout(t.now, AgentId(other)).unwrap();
    let mut s = ItemSpec::new(Channel::Video);
    s.only = Some(AgentId(other));
    assert_eq!(
        t.r.enqueue(t.now, ItemId(104), q, s),
        Err(RouteError::UnknownAgent)
    );
    t.check();
}

#[test]
fn a_rejected_item_goes_to_someone_else_never_back_to_who_declined() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.item(100, q, |_| {});
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.reject(t.now, AgentId(1), ItemId(100)).unwrap();
    assert_eq!(t.offers(), []);
    assert_eq!(t.r.presence(AgentId(1)), Some(Presence::Available));
    t.item(101, q, |_| {});
    assert_eq!(t.offers(), [(101, 1)], "the next item is fine");
    t.at(1.0);
    t.agent(2, &[q], |_| {});
    assert_eq!(t.offers(), [(100, 2)]);
    t.check();
}

#[test]
fn priority_ages_so_nothing_starves() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q")); // 60 s per priority level
    t.item(1, q, |s| s.priority = 5); // vt 0 - 300 s
    t.at(30.0);
    t.item(2, q, |s| s.priority = 6); // vt 30 - 360 = -330: ahead
    t.at(90.0);
    t.item(3, q, |s| s.priority = 6); // vt 90 - 360 = -270: behind item 1 (waited 90 s)
    t.item(4, q, |s| {
        s.priority = 5;
        s.vip = true; // -120 s more: 90 - 420 = -330, ahead of 1 and tied with 2 (earlier id first)
    });
    let order: Vec<u64> = (1..=4)
        .map(|i| (t.r.position(ItemId(i)).unwrap(), i))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    assert_eq!(order, [2, 4, 1, 3]);
    t.agent(1, &[q], |s| {
        s.capacity.insert(Channel::Voice, 4);
        s.call_blocks_others = false;
    });
    let offered: Vec<u64> = t.offers().into_iter().map(|(i, _)| i).collect();
    assert_eq!(offered, [2, 4, 1, 3]);
}

#[test]
fn sticky_agent_first_then_anyone() {
    let mut t = T::new();
    let mut spec = QueueSpec::new("q");
    spec.sticky = Some(Duration::from_secs(20));
    let q = t.queue(spec);
    t.agent(1, &[q], |_| {});
    t.agent(2, &[q], |_| {});
    t.item(50, q, |_| {});
    let (_, first) = t.offers()[0];
    t.r.accept(t.now, AgentId(first), ItemId(50)).unwrap();
    let other = if first == 1 { 2 } else { 1 };
    // The same customer again: their last agent is busy; the other agent waits.
    t.item(100, q, |s| s.last_agent = Some(AgentId(first)));
    assert_eq!(t.offers(), []);
    t.at(5.0);
    t.r.finish(t.now, ItemId(50), None).unwrap();
    assert_eq!(
        t.offers(),
        [(100, first)],
        "the last agent, free again within the window"
    );
    t.r.accept(t.now, AgentId(first), ItemId(100)).unwrap();
    // Past the window anyone may take it.
    t.item(101, q, |s| s.last_agent = Some(AgentId(first)));
    assert_eq!(t.offers(), []);
    t.at(25.1);
    assert_eq!(t.offers(), [(101, other)]);
    t.check();
}

#[test]
fn overflow_to_another_queue_then_to_voicemail() {
    let mut t = T::new();
    let mut b = QueueSpec::new("backup");
    b.overflow = Some((Duration::from_secs(30), OverflowTo::Voicemail));
    let backup = t.queue(b);
    let mut a = QueueSpec::new("sales");
    a.overflow = Some((Duration::from_secs(60), OverflowTo::Queue(backup)));
    let sales = t.queue(a);
    t.item(100, sales, |_| {});
    t.at(60.0);
    assert_eq!(
        t.events(),
        [RouterEvent::Overflow {
            item: ItemId(100),
            to: OverflowTo::Queue(backup)
        }]
    );
    assert_eq!(t.r.queue_stats(backup).unwrap().waiting, 1);
    t.at(90.0);
    assert_eq!(
        t.events(),
        [RouterEvent::Overflow {
            item: ItemId(100),
            to: OverflowTo::Voicemail
        }]
    );
    assert_eq!(t.r.waiting_total(), 0);
    assert_eq!(t.r.queue_stats(sales).unwrap().overflowed, 1);
    t.check();
}

#[test]
fn a_call_blocks_chats_and_chat_capacity_is_three() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    for i in 0..4 {
        t.item(100 + i, q, |s| s.channel = Channel::Chat);
    }
    assert_eq!(t.offers().len(), 3);
    for i in 0..3 {
        t.r.accept(t.now, AgentId(1), ItemId(100 + i)).unwrap();
    }
    // A call waits for an agent with nothing on.
    t.item(200, q, |_| {});
    assert_eq!(t.offers(), []);
    for i in 0..3 {
        t.r.finish(t.now, ItemId(100 + i), None).unwrap();
    }
    // The call came first in the queue order? No: chat 103 waited longer.
    let offers = t.offers();
    assert_eq!(offers[0], (103, 1), "{offers:?}");
    t.r.accept(t.now, AgentId(1), ItemId(103)).unwrap();
    t.r.finish(t.now, ItemId(103), None).unwrap();
    assert_eq!(t.offers(), [(200, 1)]);
    t.r.accept(t.now, AgentId(1), ItemId(200)).unwrap();
    t.item(300, q, |s| s.channel = Channel::Chat);
    assert_eq!(t.offers(), [], "on a call: no chats");
    t.check();
}

#[test]
fn wrap_up_then_available_and_presence_away_busy() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.item(100, q, |_| {});
    t.r.accept(t.now, AgentId(1), ItemId(100)).unwrap();
    t.at(10.0);
    t.r.finish(t.now, ItemId(100), Some(Duration::from_secs(30)))
        .unwrap();
    t.item(101, q, |_| {});
    t.events();
    t.at(39.0);
    assert_eq!(t.offers(), []);
    t.at(40.0);
    assert_eq!(t.offers(), [(101, 1)]);
    t.r.accept(t.now, AgentId(1), ItemId(101)).unwrap();
    t.r.finish(t.now, ItemId(101), None).unwrap();
    t.r.set_presence(t.now, AgentId(1), Presence::Busy).unwrap();
    t.item(102, q, |_| {});
    assert_eq!(t.offers(), []);
    t.r.set_presence(t.now, AgentId(1), Presence::Available)
        .unwrap();
    assert_eq!(t.offers(), [(102, 1)]);
    t.check();
}

#[test]
fn agents_log_in_away_the_first_time_then_as_they_last_chose() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.item(100, q, |_| {});
    let me = AgentId(1);
    t.r.login(t.now, me, AgentSpec::new(vec![q])).unwrap();
    assert_eq!(t.r.presence(me), Some(Presence::Away));
    assert_eq!(t.offers(), [], "nothing offered before they choose");
    t.r.set_presence(t.now, me, Presence::Available).unwrap();
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.logout(t.now, me).unwrap();
    t.at(5.0);
    t.r.login(t.now, me, AgentSpec::new(vec![q])).unwrap();
    assert_eq!(t.r.presence(me), Some(Presence::Available));
    assert_eq!(t.offers(), [(100, 1)], "available again, as they left");
    t.r.set_presence(t.now, me, Presence::Busy).unwrap();
    t.r.logout(t.now, me).unwrap();
    t.r.login(t.now, me, AgentSpec::new(vec![q])).unwrap();
    assert_eq!(t.r.presence(me), Some(Presence::Busy));
    t.check();
}

#[test]
fn a_queue_tells_how_many_wait_and_since_when_the_oldest_waits() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    assert_eq!(t.r.waiting_since(q), Some((0, None)));
    t.item(100, q, |_| {});
    t.at(5.0);
    t.item(101, q, |s| s.priority = 9); // ahead in line, but not the oldest
    assert_eq!(t.r.waiting_since(q), Some((2, Some(t.t0))));
    t.agent(1, &[q], |_| {});
    assert_eq!(t.offers(), [(101, 1)]);
    // Offered is not waiting: the oldest is still item 100.
    assert_eq!(t.r.waiting_since(q), Some((1, Some(t.t0))));
    t.r.cancel(t.now, ItemId(100)).unwrap();
    assert_eq!(t.r.waiting_since(q), Some((0, None)));
    assert_eq!(t.r.waiting_since(QueueId(9)), None);
    t.check();
}

#[test]
fn service_level_and_teams() {
    let mut t = T::new();
    let mut spec = QueueSpec::new("q");
    spec.teams = vec!["tier2".into()];
    spec.sla = Duration::from_secs(20);
    let q = t.queue(spec);
    t.agent(1, &[q], |_| {}); // no team: never offered
    t.item(100, q, |_| {});
    assert_eq!(t.offers(), []);
    t.at(30.0);
    t.agent(2, &[q], |a| a.team = Some("tier2".into()));
    assert_eq!(t.offers(), [(100, 2)]);
    t.r.accept(t.now, AgentId(2), ItemId(100)).unwrap();
    t.item(101, q, |_| {});
    t.r.finish(t.now, ItemId(100), None).unwrap();
    t.r.accept(t.now, AgentId(2), ItemId(101)).unwrap();
    let s = t.r.queue_stats(q).unwrap();
    assert_eq!((s.answered, s.answered_in_sla), (2, 1));
    t.check();
}

mod props {
    use super::{strategy, T};
    use crate::routing::engine::{
        AgentId, AgentSpec, Channel, ItemId, ItemSpec, OverflowTo, Presence, QueueId, RouterEvent,
        Strategy as Acd,
    };
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue {
            q: u8,
            ch: u8,
            prio: u8,
            skill: bool,
            last: Option<u8>,
        },
        Cancel(u8),
        Accept(u8, u8),
        Reject(u8, u8),
        /// Accept / reject one of the offers made so far (most are still live).
        AcceptOffer(u16),
        RejectOffer(u16),
        Finish(u8, bool),
        Login(u8),
        Logout(u8),
        Away(u8),
        Back(u8),
        Transfer(u8, u8),
        /// A warm transfer: consult a colleague, then end it or hand the item over.
        Consult(u8, u8),
        EndConsult(u8, u8),
        OfferTo(u8, u8),
        /// A customer escalates to a video call with the agent who has their chat.
        Escalate(u8, u8),
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3, 0u8..3, 0u8..10, any::<bool>(), proptest::option::of(0u8..5)).prop_map(|(q, ch, prio, skill, last)| Op::Enqueue { q, ch, prio, skill, last }),
            1 => (0u8..40).prop_map(Op::Cancel),
            4 => (0u8..5, 0u8..40).prop_map(|(a, i)| Op::Accept(a, i)),
            1 => (0u8..5, 0u8..40).prop_map(|(a, i)| Op::Reject(a, i)),
            6 => any::<u16>().prop_map(Op::AcceptOffer),
            2 => any::<u16>().prop_map(Op::RejectOffer),
            3 => (0u8..40, any::<bool>()).prop_map(|(i, w)| Op::Finish(i, w)),
            1 => (0u8..5).prop_map(Op::Login),
            1 => (0u8..5).prop_map(Op::Logout),
            1 => (0u8..5).prop_map(Op::Away),
            1 => (0u8..5).prop_map(Op::Back),
            1 => (0u8..40, 0u8..3).prop_map(|(i, q)| Op::Transfer(i, q)),
            3 => (0u8..8, 0u8..5).prop_map(|(i, a)| Op::Consult(i, a)),
            1 => (0u8..8, 0u8..5).prop_map(|(i, a)| Op::EndConsult(i, a)),
            1 => (0u8..8, 0u8..5).prop_map(|(i, a)| Op::OfferTo(i, a)),
            1 => (0u8..3, 0u8..5).prop_map(|(q, a)| Op::Escalate(q, a)),
            2 => (0u16..40_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn never_twice_never_lost_never_idle_while_work_waits(ops in proptest::collection::vec(op(), 1..120)) {
            let mut t = T::new();
            let strategies = [Acd::LongestIdle, Acd::RingAll, Acd::SkillsWeighted];
            let mut qs = vec![];
            for (i, s) in strategies.iter().enumerate() {
                let mut spec = strategy(*s);
                spec.sticky = Some(Duration::from_secs(10));
                if i == 0 {
                    spec.overflow = Some((Duration::from_secs(30), OverflowTo::Queue(QueueId(2))));
                }
                if i == 2 {
                    spec.overflow = Some((Duration::from_secs(25), OverflowTo::Voicemail));
                }
                qs.push(t.queue(spec));
            }
            let spec_for = |a: u8, qs: &[QueueId]| {
                let mut s = AgentSpec::new(qs.iter().copied().filter(|q| (q.0 as u8 + a) % 3 != 0 || a == 0).collect());
                if a % 2 == 0 { s.skills.insert("x".into(), 5); }
                s
            };
            for a in 0..5u8 {
                t.r.login(t.now, AgentId(a as u64), spec_for(a, &qs)).unwrap();
                t.r.set_presence(t.now, AgentId(a as u64), Presence::Available).unwrap();
            }
            let mut assigned_once: HashSet<u64> = HashSet::new();
            let mut open: HashSet<u64> = HashSet::new(); // enqueued, not finished/cancelled/voicemailed
            let mut next_item = 0u64;
            let mut offers: Vec<(AgentId, ItemId)> = vec![];
            let mut accepted = 0usize;
            let mut elapsed = 0u64;
            // Items for one agent alone, until a transfer makes them ordinary.
            let mut only: HashMap<u64, u64> = HashMap::new();
            for o in ops {
                match o {
                    Op::Enqueue { q, ch, prio, skill, last } => {
                        let mut s = ItemSpec::new([Channel::Voice, Channel::Chat, Channel::Email][ch as usize]);
                        s.priority = prio;
                        if skill { s.skills = vec![("x".into(), 3)]; }
                        s.last_agent = last.map(|a| AgentId(a as u64));
                        t.r.enqueue(t.now, ItemId(next_item), qs[q as usize], s).unwrap();
                        open.insert(next_item);
                        next_item += 1;
                    }
                    Op::Cancel(i) => { if t.r.cancel(t.now, ItemId(i as u64)).is_ok() { open.remove(&(i as u64)); } }
                    Op::Accept(a, i) => { let _ = t.r.accept(t.now, AgentId(a as u64), ItemId(i as u64)); }
                    Op::Reject(a, i) => { let _ = t.r.reject(t.now, AgentId(a as u64), ItemId(i as u64)); }
                    Op::AcceptOffer(k) if !offers.is_empty() => {
                        let (a, i) = offers[k as usize % offers.len()];
                        if t.r.accept(t.now, a, i).is_ok() { accepted += 1; }
                    }
                    Op::RejectOffer(k) if !offers.is_empty() => {
                        let (a, i) = offers[k as usize % offers.len()];
                        let _ = t.r.reject(t.now, a, i);
                    }
                    Op::AcceptOffer(_) | Op::RejectOffer(_) => {}
                    Op::Finish(i, w) => {
                        if t.r.finish(t.now, ItemId(i as u64), w.then(|| Duration::from_secs(5))).is_ok() {
                            open.remove(&(i as u64));
                        }
                    }
                    Op::Login(a) => {
                        t.r.login(t.now, AgentId(a as u64), spec_for(a, &qs)).unwrap();
                        t.r.set_presence(t.now, AgentId(a as u64), Presence::Available).unwrap();
                    }
                    Op::Logout(a) => { let _ = t.r.logout(t.now, AgentId(a as u64)); }
                    Op::Away(a) => { let _ = t.r.set_presence(t.now, AgentId(a as u64), Presence::Away); }
                    Op::Back(a) => { let _ = t.r.set_presence(t.now, AgentId(a as u64), Presence::Available); }
                    Op::Transfer(i, q) => { if t.r.transfer(t.now, ItemId(i as u64), qs[q as usize]).is_ok() { only.remove(&(i as u64)); } }
                    Op::Consult(i, a) => { let _ = t.r.consult(t.now, ItemId(i as u64), AgentId(a as u64)); }
                    Op::EndConsult(i, a) => t.r.end_consult(t.now, ItemId(i as u64), AgentId(a as u64)),
                    Op::OfferTo(i, a) => { if t.r.offer_to(t.now, ItemId(i as u64), AgentId(a as u64)).is_ok() { only.remove(&(i as u64)); } }
                    Op::Escalate(q, a) => {
                        let mut s = ItemSpec::new(Channel::Video);
                        s.only = Some(AgentId(a as u64));
                        if t.r.enqueue(t.now, ItemId(next_item), qs[q as usize], s).is_ok() {
                            open.insert(next_item);
                            only.insert(next_item, a as u64);
                        }
                        next_item += 1;
                    }
                    Op::Wait(ms) => { elapsed += ms as u64; t.at(elapsed as f64 / 1000.0); }
                }
                for e in t.events() {
                    match e {
                        RouterEvent::Assigned { item, .. } => {
                            // Items are assigned again only after a transfer put them back.
                            assigned_once.insert(item.0);
                        }
                        RouterEvent::Overflow { item, to: OverflowTo::Voicemail } => { open.remove(&item.0); }
                        RouterEvent::Offer { item, agent, .. } => {
                            if let Some(a) = only.get(&item.0) {
                                prop_assert_eq!(*a, agent.0, "one agent's item offered to another");
                            }
                            offers.push((agent, item))
                        }
                        _ => {}
                    }
                }
                // The router's own invariants: loads, queue membership, and nobody
                // eligible idles while work waits.
                if let Err(e) = t.r.check(t.now) { prop_assert!(false, "{}", e); }
                // Nothing lost: every open item is still known to the router.
                for i in &open {
                    prop_assert!(t.r.items.contains_key(&ItemId(*i)), "item {} lost", i);
                }
                // Never assigned to two agents at once.
                let mut holders: HashMap<ItemId, usize> = HashMap::new();
                for a in t.r.agents.values() {
                    for i in &a.assigned { *holders.entry(*i).or_default() += 1; }
                }
                prop_assert!(holders.values().all(|n| *n == 1));
            }
            let _ = accepted;
        }
    }
}

#[test]
fn a_freed_agent_always_finds_servable_work_among_unservable_items() {
    let mut t = T::new();
    let qs: Vec<QueueId> = (0..4)
        .map(|i| t.queue(QueueSpec::new(&format!("q{i}"))))
        .collect();
    let mut holding = vec![];
    for a in 0..40u64 {
        t.agent(
            a,
            &[qs[(a % 4) as usize], qs[((a * 3 + 1) % 4) as usize]],
            |s| {
                for k in 0..5 {
                    s.skills.insert(format!("s{k}"), 3 + ((a + k) % 8) as u8);
                }
            },
        );
        let id = ItemId(1_000_000 + a);
        t.r.enqueue(
            t.now,
            id,
            qs[(a % 4) as usize],
            ItemSpec::new(Channel::Voice),
        )
        .unwrap();
        t.r.accept(t.now, AgentId(a), id).unwrap();
        holding.push(Some(id));
    }
    let spec = |i: u64| {
        let mut s = ItemSpec::new(Channel::Voice);
        s.priority = (i % 10) as u8;
        if i % 100 == 7 {
            s.skills = vec![("unicorn".into(), 1)];
        } else if i % 3 == 0 {
            s.skills = vec![(format!("s{}", i % 5), 3)];
        }
        s
    };
    for i in 0..1000u64 {
        t.r.enqueue(t.now, ItemId(i), qs[(i % 4) as usize], spec(i))
            .unwrap();
    }
    t.events();
    t.check();
    for (next, turn) in (1000u64..).zip(0..5000u64) {
        let a = turn % 40;
        t.now += Duration::from_millis(1);
        if let Some(h) = holding[a as usize].take() {
            t.r.finish(t.now, h, None).unwrap();
        }
        let offers: Vec<(AgentId, ItemId)> = t
            .events()
            .into_iter()
            .filter_map(|e| match e {
                RouterEvent::Offer { item, agent, .. } => Some((agent, item)),
                _ => None,
            })
            .collect();
        assert!(
            offers.iter().any(|(ag, _)| *ag == AgentId(a)),
            "turn {turn}: agent {a} found nothing; {} waiting",
            t.r.waiting_total()
        );
        for (ag, it) in offers {
            t.r.accept(t.now, ag, it).unwrap();
            holding[ag.0 as usize] = Some(it);
        }
        let q = if turn % 2 == 0 {
            a % 4
        } else {
            (a * 3 + 1) % 4
        };
        t.r.enqueue(t.now, ItemId(next), qs[q as usize], spec(next))
            .unwrap();
        t.check();
    }
}

#[test]
fn transfer_to_a_named_agent_and_back_to_the_queue_when_they_decline() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    let other = t.queue(QueueSpec::new("other"));
    t.agent(1, &[q], |_| {});
    t.agent(2, &[other], |s| {
        s.capacity = HashMap::from([(Channel::Chat, 3)]);
    });
    t.item(100, q, |s| s.channel = Channel::Chat);
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.accept(t.now, AgentId(1), ItemId(100)).unwrap();
    t.events();
    // Agent 2 is not in the item's queue: a named transfer reaches them anyway, and
    // agent 1 (now free) is not offered it meanwhile.
    t.r.offer_to(t.now, ItemId(100), AgentId(2)).unwrap();
    assert_eq!(t.offers(), [(100, 2)]);
    assert!(t.r.assigned(AgentId(1)).is_empty());
    t.check();
    assert_eq!(
        t.r.offer_to(t.now, ItemId(100), AgentId(2)),
        Err(RouteError::Unavailable),
        "already theirs"
    );
    // Declined: back in its queue, where agent 1 gets it again.
    t.r.reject(t.now, AgentId(2), ItemId(100)).unwrap();
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.accept(t.now, AgentId(1), ItemId(100)).unwrap();
    t.check();
    // A busy colleague cannot be handed work.
    t.r.set_presence(t.now, AgentId(2), Presence::Away).unwrap();
    assert_eq!(
        t.r.offer_to(t.now, ItemId(100), AgentId(2)),
        Err(RouteError::Unavailable)
    );
    assert_eq!(t.r.assigned(AgentId(1)), [ItemId(100)], "nothing changed");
    t.r.accept(t.now, AgentId(2), ItemId(100)).unwrap_err();
    t.check();
}

#[test]
fn a_consulted_colleague_is_busy_until_the_consult_ends_or_the_call_is_theirs() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    t.agent(1, &[q], |_| {});
    t.item(100, q, |_| {});
    assert_eq!(t.offers(), [(100, 1)]);
    t.r.accept(t.now, AgentId(1), ItemId(100)).unwrap();
    t.agent(2, &[q], |_| {});
    t.events();
    assert_eq!(
        t.r.consult(t.now, ItemId(100), AgentId(1)),
        Err(RouteError::Unavailable),
        "nobody consults themselves"
    );
    t.r.consult(t.now, ItemId(100), AgentId(2)).unwrap();
    t.check();
    // Agent 2 talks to agent 1 about the caller: a new call waits rather than ring them.
    t.item(101, q, |_| {});
    assert_eq!(t.offers(), []);
    // The consult ends without a transfer: agent 2 is free and gets the waiting call.
    t.r.end_consult(t.now, ItemId(100), AgentId(2));
    assert_eq!(t.offers(), [(101, 2)]);
    t.r.accept(t.now, AgentId(2), ItemId(101)).unwrap();
    t.check();
    // A busy colleague cannot be consulted.
    assert_eq!(
        t.r.consult(t.now, ItemId(100), AgentId(2)),
        Err(RouteError::Unavailable)
    );

    // Completing: the consult makes way for the transfer's offer, then it is theirs.
    t.agent(3, &[q], |_| {});
    t.r.consult(t.now, ItemId(100), AgentId(3)).unwrap();
    t.item(102, q, |_| {});
    assert_eq!(t.offers(), [], "agent 3 is on the consult");
    t.r.offer_to(t.now, ItemId(100), AgentId(3)).unwrap();
    let offers = t.offers();
    assert!(offers.contains(&(100, 3)), "{offers:?}");
    assert!(
        offers.contains(&(102, 1)),
        "agent 1, freed, takes the next call: {offers:?}"
    );
    t.r.accept(t.now, AgentId(3), ItemId(100)).unwrap();
    assert_eq!(t.r.assigned(AgentId(3)), [ItemId(100)]);
    t.check();

    // The caller hangs up during a consult: the colleague is free again.
    t.r.accept(t.now, AgentId(1), ItemId(102)).unwrap();
    t.agent(4, &[q], |_| {});
    t.r.consult(t.now, ItemId(102), AgentId(4)).unwrap();
    t.item(103, q, |_| {});
    assert_eq!(t.offers(), []);
    t.r.cancel(t.now, ItemId(102)).unwrap();
    assert_eq!(t.offers(), [(103, 4)]);
    t.check();
    // Logging out mid-consult leaves nothing behind.
    t.r.accept(t.now, AgentId(4), ItemId(103)).unwrap();
    t.agent(5, &[q], |_| {});
    t.r.consult(t.now, ItemId(103), AgentId(5)).unwrap();
    t.r.logout(t.now, AgentId(5)).unwrap();
    t.check();
    t.r.finish(t.now, ItemId(103), None).unwrap();
    t.check();
}

#[test]
fn an_agents_activity_is_told_as_it_changes_for_occupancy() {
    let mut t = T::new();
    let q = t.queue(QueueSpec::new("q"));
    let acts = |t: &mut T| -> Vec<(&'static str, u64)> {
        t.events()
            .into_iter()
            .filter_map(|e| match e {
                RouterEvent::Activity {
                    agent: AgentId(1),
                    activity,
                    at,
                } => Some((activity.name(), (at - t.t0).as_secs())),
                _ => None,
            })
            .collect()
    };
    t.r.login(t.now, AgentId(1), AgentSpec::new(vec![q]))
        .unwrap();
    assert_eq!(acts(&mut t), [("away", 0)], "logged in, not yet ready");
    t.at(5.0);
    t.r.set_presence(t.now, AgentId(1), Presence::Available)
        .unwrap();
    assert_eq!(acts(&mut t), [("idle", 5)]);
    t.at(10.0);
    t.item(100, q, |_| {});
    assert_eq!(acts(&mut t), [], "ringing is not work yet");
    t.at(12.0);
    t.r.accept(t.now, AgentId(1), ItemId(100)).unwrap();
    assert_eq!(acts(&mut t), [("working", 12)]);
    // Busy while on the call: still working.
    t.r.set_presence(t.now, AgentId(1), Presence::Busy).unwrap();
    assert_eq!(acts(&mut t), []);
    t.r.set_presence(t.now, AgentId(1), Presence::Available)
        .unwrap();
    t.at(60.0);
    t.r.finish(t.now, ItemId(100), Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(acts(&mut t), [("wrap-up", 60)]);
    t.at(70.0);
    assert_eq!(acts(&mut t), [("idle", 70)], "the wrap-up ran out");
    t.r.set_presence(t.now, AgentId(1), Presence::Busy).unwrap();
    assert_eq!(acts(&mut t), [("busy", 70)]);
    t.r.set_presence(t.now, AgentId(1), Presence::Available)
        .unwrap();
    t.item(101, q, |_| {});
    t.r.accept(t.now, AgentId(1), ItemId(101)).unwrap();
    assert_eq!(acts(&mut t), [("idle", 70), ("working", 70)]);
    // Logged out with the call still theirs: working until it ends, then offline.
    t.at(80.0);
    t.r.logout(t.now, AgentId(1)).unwrap();
    assert_eq!(acts(&mut t), []);
    t.at(90.0);
    t.r.finish(t.now, ItemId(101), None).unwrap();
    assert_eq!(acts(&mut t), [("offline", 90)]);
    t.check();
}
