//! The store on a real SQLite file: identities, conversations across contacts,
//! migrations from the first schema, the timeline.

use super::*;

async fn fresh() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&d.path().join("t.db")).await.unwrap();
    (d, s)
}

fn new<'a>(id: &'a str, from: &'a str) -> NewInteraction<'a> {
    NewInteraction {
        id,
        kind: "voice",
        direction: "inbound",
        from,
        dialled: "100",
        trunk: "demo",
        flow: "demo",
        flow_version: "v",
    }
}

#[test]
fn phone_numbers_and_identities() {
    assert_eq!(
        normalize_phone("+1 (555) 123-4567").as_deref(),
        Some("+15551234567")
    );
    assert_eq!(
        normalize_phone("0044 20 7946 0000").as_deref(),
        Some("+442079460000")
    );
    assert_eq!(
        normalize_phone("tel:+33.1.23.45.67.89").as_deref(),
        Some("+33123456789")
    );
    assert_eq!(normalize_phone("5551234").as_deref(), Some("5551234"));
    assert_eq!(normalize_phone("alice"), None);
    assert_eq!(
        normalize_phone("+1234567890123456"),
        None,
        "longer than E.164 allows"
    );
    assert_eq!(
        identity_of(" Ada@Example.COM "),
        Some((IdentityKind::Email, "ada@example.com".into()))
    );
    assert_eq!(
        identity_of("sipp"),
        Some((IdentityKind::Sip, "sipp".into()))
    );
    assert_eq!(identity_of(""), None);
}

#[tokio::test]
async fn a_second_contact_joins_the_open_conversation() {
    let (_d, s) = fresh().await;
    s.seed_demo().await.unwrap();
    // Ada calls from her number written another way: same customer, one conversation.
    let (c1, conv1) = s
        .start_interaction(&new("i1", "+1 555-123-4567"))
        .await
        .unwrap();
    let (c2, conv2) = s
        .start_interaction(&new("i2", "+15551234567"))
        .await
        .unwrap();
    assert!(c1.is_some());
    assert_eq!((c1, conv1), (c2, conv2));
    // Her e-mail identity (a chat) lands on the same case.
    let (c3, conv3) = s
        .start_interaction(&NewInteraction {
            kind: "webchat",
            ..new("i3", "ADA@example.com")
        })
        .await
        .unwrap();
    assert_eq!((c3, conv3), (c1, conv1));
    // Resolved: the next contact opens a new conversation.
    s.resolve_conversation(conv1.unwrap()).await.unwrap();
    let (c4, conv4) = s
        .start_interaction(&new("i4", "+15551234567"))
        .await
        .unwrap();
    assert_eq!(c4, c1);
    assert_ne!(conv4, conv1);
    // A stranger becomes a new customer with that identity.
    let (c5, _) = s
        .start_interaction(&new("i5", "+447700900123"))
        .await
        .unwrap();
    assert_ne!(c5, c1);
    assert_eq!(
        s.customer_by_identity(IdentityKind::Phone, "+447700900123")
            .await
            .unwrap(),
        c5
    );
    let (c6, _) = s
        .start_interaction(&new("i6", "0044 7700 900123"))
        .await
        .unwrap();
    assert_eq!(c6, c5);
}

#[tokio::test]
async fn lookups_and_a_customer_found_later_moves_the_interaction() {
    let (_d, s) = fresh().await;
    s.seed_demo().await.unwrap();
    let ada = s.lookup("account", "1234").await.unwrap().unwrap();
    assert!(ada.contains(&("name".into(), "Ada Lovelace".into())));
    assert!(ada.contains(&("phone".into(), "+15551234567".into())));
    assert!(ada.contains(&("email".into(), "ada@example.com".into())));
    assert_eq!(
        s.lookup("caller", "+1 555 123 4567").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        s.lookup("email", "ADA@example.com").await.unwrap(),
        Some(ada.clone())
    );
    let id: i64 = ada
        .iter()
        .find(|(k, _)| k == "id")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(s.lookup("id", &id.to_string()).await.unwrap(), Some(ada));
    assert!(s.lookup("account", "0000").await.unwrap().is_none());
    assert!(s.lookup("email", "' OR 1=1 --").await.unwrap().is_none());

    // An unknown number calls, then gives Ada's account number.
    let (stranger, _) = s
        .start_interaction(&new("i1", "+15550009999"))
        .await
        .unwrap();
    assert_ne!(stranger, Some(id));
    let ada_conv = s.open_conversation(id).await.unwrap();
    let mut vars = serde_json::Map::new();
    vars.insert("account".into(), "1234".into());
    s.update_interaction(
        "i1",
        &InteractionUpdate {
            customer_id: Some(id),
            queue: Some("support"),
            path: &["a".into()],
            variables: Some(&vars),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.add_timeline("i1", "voicemail", serde_json::json!({"seconds": 3}))
        .await
        .unwrap();
    s.update_interaction(
        "i1",
        &InteractionUpdate {
            outcome: Some("caller_hangup"),
            path: &["a".into(), "b".into()],
            ended: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let i = s.interaction("i1").await.unwrap().unwrap();
    assert_eq!(i.customer_id, Some(id));
    assert_eq!(i.conversation_id, Some(ada_conv));
    assert_eq!(i.queue.as_deref(), Some("support"));
    assert_eq!(i.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(
        i.variables["account"], "1234",
        "variables kept when an update has none"
    );
    assert!(i.ended_at.is_some());
    let kinds: Vec<String> = s
        .conversation_timeline(ada_conv)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, k, _)| k)
        .collect();
    // The whole interaction now shows in her conversation.
    assert_eq!(
        kinds,
        [
            "interaction started",
            "queued",
            "voicemail",
            "interaction ended"
        ]
    );
    let all: Vec<String> = s
        .timeline("i1")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        all,
        [
            "interaction started",
            "queued",
            "voicemail",
            "interaction ended"
        ]
    );
}

#[tokio::test]
async fn migrates_a_first_version_database_and_refuses_a_newer_one() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("old.db");
    {
        // The schema as issue 4 shipped it, with data.
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
        for s in MIGRATIONS[0].1 {
            sqlx::query(*s).execute(&pool).await.unwrap();
        }
        sqlx::query("INSERT INTO customers (name, phone, email, account, tier, created_at) VALUES ('Old', '+15550001234', 'Old@Example.com', '77', 'gold', 1)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO interactions (id, kind, customer_id, started_at) VALUES ('old1', 'voice', 1, 1)").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let s = Store::open(&path).await.unwrap();
    assert_eq!(s.version().await.unwrap(), SCHEMA_VERSION);
    let old = s.lookup("caller", "+15550001234").await.unwrap().unwrap();
    assert!(old.contains(&("email".into(), "old@example.com".into())));
    let i = s.interaction("old1").await.unwrap().unwrap();
    assert_eq!((i.direction.as_str(), i.conversation_id), ("inbound", None));
    // Opening again applies nothing twice.
    drop(s);
    let s = Store::open(&path).await.unwrap();
    assert_eq!(s.version().await.unwrap(), SCHEMA_VERSION);
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        .execute(&s.pool)
        .await
        .unwrap();
    drop(s);
    match Store::open(&path).await {
        Err(StoreError::TooNew(99, SCHEMA_VERSION)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}
