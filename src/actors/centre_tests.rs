//! The contact centre's actors in process, on a real store file and real Arbiters.
//!
//! Sticky routing and repeat contacts: a customer's new chat goes first to the agent
//! who served them, although another is less busy.
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

#[actix_rt::test]
async fn a_failing_actor_ends_or_hands_over_its_own_work_and_nothing_else() {
    crate::panics::install();
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("t.db"))
        .await
        .unwrap();
    // Demo mode: chats wait in "support"; alice and bob serve it.
    let centre = Centre::start(&Config::default(), store.clone())
        .await
        .unwrap();
    centre.login("alice", "demo-alice").await.unwrap();
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
        .map(|(k, _)| k)
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
    centre.login("bob", "demo-bob").await.unwrap();
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
    centre.login("alice", "demo-alice").await.unwrap();
    let mut alice = agent_socket(&centre, "alice").await;
    let s = next(&mut alice, "her state", |v| v["type"] == "state").await;
    assert_eq!(s["presence"], "available", "{s}");
}

#[actix_rt::test]
async fn a_returning_customer_is_offered_first_to_the_agent_who_served_them() {
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
",
        "t.toml",
    )
    .unwrap();
    let centre = Centre::start(&cfg, store.clone()).await.unwrap();
    centre.login("ann", "ann-secret").await.unwrap();
    let mut ann = agent_socket(&centre, "ann").await;
    // Ann serves X and Y; X's chat ends with the case left open.
    let (x1, _) = centre.start_chat("X", "x@example.com").await.unwrap();
    let (y1, _) = centre.start_chat("Y", "y@example.com").await.unwrap();
    for id in [&x1, &y1] {
        next(&mut ann, "ann's offers", |v| {
            v["type"] == "offer" && v["interaction"] == id.as_str()
        })
        .await;
        accept(&centre, "ann", id).await;
    }
    let (_, x1_chat) = centre.chat(&x1).unwrap();
    x1_chat.send(Customer::Leave).await.unwrap();
    next(&mut ann, "x1 ended", |v| {
        v["type"] == "ended" && v["interaction"] == x1.as_str()
    })
    .await;

    // Ben arrives with nothing on: least-occupied would pick him.
    centre.login("ben", "ben-secret").await.unwrap();
    let mut ben = agent_socket(&centre, "ben").await;
    next(&mut ben, "ben's state", |v| v["type"] == "state").await;
    // X comes back: offered to ann (sticky), marked as a repeat contact.
    let (x2, _) = centre.start_chat("X", "x@example.com").await.unwrap();
    let o = next(&mut ann, "x2 offered to ann", |v| v["type"] == "offer").await;
    assert_eq!(o["interaction"], x2.as_str(), "{o}");
    // A new customer Z goes to ben, the less busy: and it is the first thing he is
    // offered (x2 never was).
    let (z1, _) = centre.start_chat("Z", "z@example.com").await.unwrap();
    let o = next(&mut ben, "ben's first offer", |v| v["type"] == "offer").await;
    assert_eq!(o["interaction"], z1.as_str(), "{o}");
    let i = store.interaction(&x2).await.unwrap().unwrap();
    assert_eq!(
        store
            .routing_hints(i.customer_id.unwrap(), &x2)
            .await
            .unwrap(),
        (Some("ann".to_string()), true, false)
    );
}
