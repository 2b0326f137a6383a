//! The contact centre's actors in process, on a real store file and real Arbiters.
//!
//! A chat's identity is only typed: no record, case, VIP or sticky routing until the
//! agent verifies it; waiting chats are capped per queue.
//!
//! A failing actor costs its own interaction and nothing else: a chat actor that panics
//! ends its chat as failed (in the store, to the customer, to the agent) while the
//! other chat on the node goes on; an agent actor that panics logs the agent out and
//! hands their chat back to the queue, where another agent gets it. Real store file,
//! real actors on their Arbiters; the panic is injected (`Crash`, test builds only).

use super::agent::Connect;
use super::chat::Customer;
use super::router::Answer;
use super::Crash;
use crate::centre::Centre;
use crate::config::Config;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// A customer's (unbounded) or an agent's (bounded) socket.
trait Inbox {
    async fn recv(&mut self) -> Option<String>;
}

impl Inbox for UnboundedReceiver<String> {
    async fn recv(&mut self) -> Option<String> {
        UnboundedReceiver::recv(self).await
    }
}

impl Inbox for tokio::sync::mpsc::Receiver<String> {
    async fn recv(&mut self) -> Option<String> {
        tokio::sync::mpsc::Receiver::recv(self).await
    }
}

/// The next pushed JSON that satisfies `f` (others skipped), within 5 s.
async fn next(
    rx: &mut impl Inbox,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if f(&v) {
                    return v;
                }
            }
            Ok(None) => panic!("{what}: the socket closed"),
            Err(_) => panic!("{what}: nothing within 5 s"),
        }
    }
}

async fn agent_socket(centre: &Centre, name: &str) -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(crate::actors::agent::SOCKET_QUEUE);
    centre
        .agent_addr(name)
        .unwrap()
        .send(Connect(tx))
        .await
        .unwrap();
    rx
}

async fn accept(centre: &Centre, agent: &str, chat: &str) {
    centre
        .router()
        .send(Answer {
            agent: agent.into(),
            interaction: chat.into(),
            accept: true,
        })
        .await
        .unwrap()
        .unwrap();
}

/// A demo centre (alice and bob serve "support") on a store file in `dir`.
async fn demo_centre(dir: &tempfile::TempDir) -> (Centre, crate::store::Store) {
    let store = crate::store::Store::open(&dir.path().join("t.db"))
        .await
        .unwrap();
    let centre = Centre::start(&Config::default(), store.clone())
        .await
        .unwrap();
    (centre, store)
}

#[actix_rt::test]
async fn a_failing_actor_ends_or_hands_over_its_own_work_and_nothing_else() {
    crate::panics::install();
    let dir = tempfile::tempdir().unwrap();
    let (centre, store) = demo_centre(&dir).await;
    on_duty(&centre, "alice", "demo-alice").await;
    let mut alice = agent_socket(&centre, "alice").await;

    let (one, _) = centre.start_chat("One", "one@example.com").await.unwrap();
    let (two, _) = centre.start_chat("Two", "two@example.com").await.unwrap();
    let (mut cust1, mut cust2) = (
        tokio::sync::mpsc::channel(crate::actors::chat::SOCKET_QUEUE),
        tokio::sync::mpsc::channel(crate::actors::chat::SOCKET_QUEUE),
    );
    for (id, tx) in [(&one, cust1.0.clone()), (&two, cust2.0.clone())] {
        let (_, chat) = centre.chat(id).unwrap();
        chat.send(Customer::Hello {
            socket: tx,
            after: 0,
        })
        .await
        .unwrap();
    }
    // Both offered to alice (chat capacity 3), in either order; she takes both.
    let mut offered = vec![];
    while offered.len() < 2 {
        let o = next(&mut alice, "the offers", |v| v["type"] == "offer").await;
        offered.push(o["interaction"].as_str().unwrap().to_string());
    }
    offered.sort();
    let mut want = vec![one.clone(), two.clone()];
    want.sort();
    assert_eq!(offered, want);
    for id in [&one, &two] {
        accept(&centre, "alice", id).await;
    }

    // ---- chat one's actor fails.
    let (_, chat1) = centre.chat(&one).unwrap();
    assert!(
        chat1.send(Crash).await.is_err(),
        "the actor died with its reply"
    );
    let e = next(&mut cust1.1, "the customer told", |v| v["type"] == "error").await;
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("this chat has ended"),
        "{e}"
    );
    next(&mut alice, "alice told it ended", |v| {
        v["type"] == "ended" && v["interaction"] == one.as_str()
    })
    .await;
    let mut ended = None;
    for _ in 0..100 {
        ended = store
            .interaction(&one)
            .await
            .unwrap()
            .filter(|i| i.ended_at.is_some());
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = ended.expect("the failed chat's end in the store");
    assert_eq!(ended.outcome.as_deref(), Some("failed: internal error"));
    let kinds: Vec<String> = store
        .timeline(&one)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"failed".to_string()), "{kinds:?}");
    assert!(centre.chat(&one).is_none(), "the registry forgot it");

    // ---- chat two, on the same node, goes on: a message is stored and acknowledged.
    let (_, chat2) = centre.chat(&two).unwrap();
    chat2
        .send(Customer::Says {
            id: "m1".into(),
            text: "still here?".into(),
        })
        .await
        .unwrap();
    next(&mut cust2.1, "the ack", |v| {
        v["type"] == "ack" && v["id"] == "m1"
    })
    .await;
    next(&mut alice, "the message", |v| {
        v["type"] == "message" && v["text"] == "still here?"
    })
    .await;

    // ---- alice's actor fails: she is logged out and chat two goes back to the queue,
    // where bob gets it; the customer hears of the transfer.
    on_duty(&centre, "bob", "demo-bob").await;
    let mut bob = agent_socket(&centre, "bob").await;
    let alice_addr = centre.agent_addr("alice").unwrap();
    assert!(alice_addr.send(Crash).await.is_err());
    assert!(alice.recv().await.is_none(), "alice's socket closed");
    next(&mut bob, "chat two offered to bob", |v| {
        v["type"] == "offer" && v["interaction"] == two.as_str()
    })
    .await;
    next(&mut cust2.1, "the customer told", |v| {
        v["type"] == "message"
            && v["from"] == "system"
            && v["text"].as_str().unwrap().contains("transferred")
    })
    .await;
    assert!(
        centre.agent_addr("alice").is_none(),
        "a dead actor is not handed out"
    );
    // Alice can log in again and gets a working desk.
    on_duty(&centre, "alice", "demo-alice").await;
    let mut alice = agent_socket(&centre, "alice").await;
    let s = next(&mut alice, "her state", |v| v["type"] == "state").await;
    assert_eq!(s["presence"], "available", "{s}");
}

#[actix_rt::test]
async fn a_chat_identity_joins_no_record_case_or_sticky_agent_until_an_agent_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("t.db"))
        .await
        .unwrap();
    let cfg = Config::parse(
        "demo = false
[[queue]]
name = \"support\"
strategy = \"least_occupied\"
sticky_secs = 30
[[agent]]
name = \"ann\"
password = \"ann-secret\"
queues = [\"support\"]
[[agent]]
name = \"ben\"
password = \"ben-secret\"
queues = [\"support\"]
[chat]
queue = \"support\"
max_waiting = 3
",
        "t.toml",
    )
    .unwrap();
    let centre = Centre::start(&cfg, store.clone()).await.unwrap();
    let email = crate::store::IdentityKind::Email;
    on_duty(&centre, "ann", "ann-secret").await;
    let mut ann = agent_socket(&centre, "ann").await;
    // X opens a chat and writes: no customer record exists for a typed address yet.
    let (x1, _) = centre.start_chat("X", "x@example.com").await.unwrap();
    let (_, x1_chat) = centre.chat(&x1).unwrap();
    x1_chat
        .send(Customer::Says {
            id: "c1".into(),
            text: "my order".into(),
        })
        .await
        .unwrap();
    let o = next(&mut ann, "x1 offered", |v| v["type"] == "offer").await;
    assert_eq!(o["customer"], serde_json::Value::Null, "{o}");
    assert_eq!(o["details"]["verified"], false, "{o}");
    assert_eq!(
        store
            .customer_by_identity(email, "x@example.com")
            .await
            .unwrap(),
        None,
        "no customer created for a typed address"
    );
    accept(&centre, "ann", &x1).await;
    // Only the assigned agent verifies.
    let r = x1_chat
        .send(super::chat::AgentAct::Verify {
            agent: "ben".into(),
        })
        .await
        .unwrap();
    assert_eq!(r.unwrap_err(), super::chat::ChatError::NotYours);
    let c = x1_chat
        .send(super::chat::AgentAct::Verify {
            agent: "ann".into(),
        })
        .await
        .unwrap()
        .unwrap() as i64;
    let v = next(&mut ann, "verified push", |v| v["type"] == "verified").await;
    assert_eq!(v["customer"], c, "{v}");
    assert_eq!(
        store
            .customer_by_identity(email, "x@example.com")
            .await
            .unwrap(),
        Some(c)
    );
    let i = store.interaction(&x1).await.unwrap().unwrap();
    assert_eq!(i.customer_id, Some(c));
    // What was said before verification moved to the case with it.
    let tl = store
        .conversation_timeline(i.conversation_id.unwrap())
        .await
        .unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.as_str()).collect();
    for k in ["queued", "offered", "message", "assigned", "verified"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    x1_chat.send(Customer::Leave).await.unwrap();
    next(&mut ann, "x1 ended", |v| {
        v["type"] == "ended" && v["interaction"] == x1.as_str()
    })
    .await;

    // Ann has one other chat; ben arrives with nothing. Someone typing X's address
    // comes: they are not X until verified, so no sticky offer to ann, no record.
    let (y1, _) = centre.start_chat("Y", "y@example.com").await.unwrap();
    next(&mut ann, "y1 offered", |v| {
        v["type"] == "offer" && v["interaction"] == y1.as_str()
    })
    .await;
    accept(&centre, "ann", &y1).await;
    on_duty(&centre, "ben", "ben-secret").await;
    let mut ben = agent_socket(&centre, "ben").await;
    next(&mut ben, "ben's state", |v| v["type"] == "state").await;
    let (x2, _) = centre.start_chat("X", "x@example.com").await.unwrap();
    let o = next(&mut ben, "ben's first offer", |v| v["type"] == "offer").await;
    assert_eq!(
        o["interaction"],
        x2.as_str(),
        "least occupied, not sticky: {o}"
    );
    assert_eq!(o["customer"], serde_json::Value::Null, "{o}");
    let i = store.interaction(&x2).await.unwrap().unwrap();
    assert_eq!((i.customer_id, i.conversation_id), (None, None));

    // Waiting chats are capped per queue (3 here): x2 waits (offered), two more wait,
    // the next is refused; a chat taken by an agent frees a place.
    centre.start_chat("W1", "w1@example.com").await.unwrap();
    centre.start_chat("W2", "w2@example.com").await.unwrap();
    let e = centre.start_chat("W3", "w3@example.com").await.unwrap_err();
    assert!(e.to_string().contains("many chats are waiting"), "{e}");
    accept(&centre, "ben", &x2).await;
    // (The chat hears of it after the router: ben acting in it waits for that.)
    let (_, x2_chat) = centre.chat(&x2).unwrap();
    x2_chat
        .send(super::chat::AgentAct::Typing {
            agent: "ben".into(),
            on: true,
        })
        .await
        .unwrap()
        .unwrap();
    centre.start_chat("W3", "w3@example.com").await.unwrap();
}

#[actix_rt::test]
async fn a_long_chat_keeps_only_recent_messages_in_memory_and_replays_the_rest_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (centre, store) = demo_centre(&dir).await;
    on_duty(&centre, "alice", "demo-alice").await;
    let mut alice = agent_socket(&centre, "alice").await;
    let (id, _) = centre.start_chat("Long", "long@example.com").await.unwrap();
    next(&mut alice, "the offer", |v| v["type"] == "offer").await;
    accept(&centre, "alice", &id).await;
    let (_, chat) = centre.chat(&id).unwrap();
    let n = super::chat::RECENT + 30;
    for i in 0..n {
        chat.send(super::chat::AgentAct::Says {
            agent: "alice".into(),
            text: format!("line {i}"),
        })
        .await
        .unwrap()
        .unwrap();
    }
    // A page that saw nothing gets every stored message, in order, once.
    let (tx, mut rx) = tokio::sync::mpsc::channel(crate::actors::chat::SOCKET_QUEUE);
    chat.send(Customer::Hello {
        socket: tx,
        after: 0,
    })
    .await
    .unwrap();
    let mut got = vec![];
    while got.len() < n {
        let v = next(&mut rx, "replayed lines", |v| v["from"] == "agent").await;
        got.push(v["text"].as_str().unwrap().to_string());
    }
    let want: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want);
    // A page that saw up to line 4 gets line 5 onwards.
    let (tx, mut rx) = tokio::sync::mpsc::channel(crate::actors::chat::SOCKET_QUEUE);
    let seq4 = store.interaction_messages(&id).await.unwrap()[4]["seq"]
        .as_u64()
        .unwrap();
    chat.send(Customer::Hello {
        socket: tx,
        after: seq4,
    })
    .await
    .unwrap();
    let v = next(&mut rx, "first replayed", |v| v["type"] == "message").await;
    assert_eq!(v["text"], "line 5", "{v}");
}

#[actix_rt::test]
async fn a_panic_in_the_router_is_contained_and_routing_goes_on_with_what_it_knew() {
    crate::panics::install();
    let dir = tempfile::tempdir().unwrap();
    let (centre, _store) = demo_centre(&dir).await;
    on_duty(&centre, "alice", "demo-alice").await;
    let mut alice = agent_socket(&centre, "alice").await;
    let (one, _) = centre.start_chat("One", "one@example.com").await.unwrap();
    next(&mut alice, "one offered", |v| {
        v["type"] == "offer" && v["interaction"] == one.as_str()
    })
    .await;
    accept(&centre, "alice", &one).await;
    // Alice goes away; a second chat waits.
    centre
        .router()
        .send(super::router::SetPresence {
            agent: "alice".into(),
            presence: crate::routing::engine::Presence::Away,
        })
        .await
        .unwrap()
        .unwrap();
    let (two, _) = centre.start_chat("Two", "two@example.com").await.unwrap();

    // The router panics on a message: contained, rebuilt.
    centre
        .router()
        .send(Crash)
        .await
        .expect("the router lives on");
    assert!(centre.router().connected());

    // Alice is still away (nothing offered to her); bob logs in and gets the waiting chat.
    on_duty(&centre, "bob", "demo-bob").await;
    let mut bob = agent_socket(&centre, "bob").await;
    // (Offered at his login: in the state his desktop gets first, or pushed after.)
    let offered = |v: &serde_json::Value| {
        (v["type"] == "offer" && v["interaction"] == two.as_str())
            || (v["type"] == "state"
                && v["offers"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["interaction"] == two.as_str())))
    };
    next(&mut bob, "two offered to bob", offered).await;
    // Alice holds one still (restored with her), and nothing new was offered to her.
    let agents = centre
        .router()
        .send(super::router::AgentList)
        .await
        .unwrap();
    let alice_row = agents.iter().find(|a| a["name"] == "alice").unwrap();
    assert_eq!(alice_row["work"], serde_json::json!([one]), "{agents:?}");
    assert_eq!(alice_row["presence"], "away", "{agents:?}");
    accept(&centre, "bob", &two).await;
    // Alice still holds chat one: acting in it works, and its end reaches her.
    let (_, one_chat) = centre.chat(&one).unwrap();
    one_chat
        .send(super::chat::AgentAct::Says {
            agent: "alice".into(),
            text: "still here".into(),
        })
        .await
        .unwrap()
        .unwrap();
    one_chat.send(Customer::Leave).await.unwrap();
    next(&mut alice, "one ended", |v| {
        v["type"] == "ended" && v["interaction"] == one.as_str()
    })
    .await;
    // The router's answers are real again: alice's presence can be set.
    centre
        .router()
        .send(super::router::SetPresence {
            agent: "alice".into(),
            presence: crate::routing::engine::Presence::Available,
        })
        .await
        .unwrap()
        .unwrap();
}

/// Logs an agent in and makes them Available (agents start Away).
async fn on_duty(centre: &Centre, name: &str, password: &str) {
    centre.login(name, password).await.unwrap();
    centre
        .router()
        .send(crate::actors::router::SetPresence {
            agent: name.to_string(),
            presence: crate::routing::engine::Presence::Available,
        })
        .await
        .unwrap()
        .unwrap();
}
