use super::*;
use serde_json::json;

#[test]
fn a_consent_event_is_read_strictly_and_the_actor_is_who_asks() {
    let e = ConsentEvent::from_json(
        &json!({"purpose": "marketing", "channel": "sms", "granted": false, "source": "agent",
                "evidence": {"interaction": "abc", "note": "said so on the phone"}}),
        "bob",
    )
    .unwrap();
    assert_eq!(e.kind(), "marketing:sms");
    assert_eq!(e.actor, "bob");
    assert!(!e.granted);
    let any = ConsentEvent::from_json(&json!({"purpose": "recording", "granted": true}), "admin")
        .unwrap();
    assert_eq!(
        (any.kind().as_str(), any.source.as_str()),
        ("recording:any", "api")
    );
    for (body, why) in [
        (
            json!({"purpose": "spam", "granted": true}),
            "purpose \"spam\" is not one of",
        ),
        (
            json!({"purpose": "bot", "channel": "fax", "granted": true}),
            "channel \"fax\"",
        ),
        (
            json!({"purpose": "bot"}),
            "granted (true or false) is missing",
        ),
        (
            json!({"purpose": "bot", "granted": "yes"}),
            "granted (true or false) is missing",
        ),
        (
            json!({"purpose": "bot", "granted": true, "source": "rumour"}),
            "source \"rumour\"",
        ),
        (
            json!({"purpose": "bot", "granted": true, "evidence": "x"}),
            "evidence must be a JSON object",
        ),
        (
            json!({"purpose": "bot", "granted": true, "actor": "someone"}),
            "unknown field \"actor\"",
        ),
        (
            json!({"purpose": "bot", "granted": true, "evidence": {"t": "x".repeat(5000)}}),
            "longer than 4096",
        ),
        (json!([1]), "must be a JSON object"),
    ] {
        let e = ConsentEvent::from_json(&body, "admin").unwrap_err();
        assert!(e.contains(why), "{body}: {e}");
    }
}

#[test]
fn the_later_of_a_channel_and_any_decides_and_silence_is_no_withdrawal() {
    let c = |k: &str, g: bool, at: i64| (k.to_string(), g, at);
    assert!(!withdrawn(&[], Purpose::Marketing, "sms"));
    let only_any = [c("marketing:any", false, 10)];
    assert!(withdrawn(&only_any, Purpose::Marketing, "sms"));
    assert!(withdrawn(&only_any, Purpose::Marketing, "whatsapp"));
    assert!(!withdrawn(&only_any, Purpose::Recording, "voice"));
    // Granted again on SMS after withdrawing everywhere: SMS only.
    let later = [c("marketing:any", false, 10), c("marketing:sms", true, 20)];
    assert!(!withdrawn(&later, Purpose::Marketing, "sms"));
    assert!(withdrawn(&later, Purpose::Marketing, "whatsapp"));
    // Withdrawn everywhere after granting SMS.
    let earlier = [c("marketing:any", false, 30), c("marketing:sms", true, 20)];
    assert!(withdrawn(&earlier, Purpose::Marketing, "sms"));
}

#[test]
fn a_scrubbed_event_keeps_what_the_kpis_read_and_nothing_personal() {
    let d = json!({"from": "customer", "text": "my card is 4111 1111", "name": "Ada Lovelace",
                   "agent": "bob", "queue": "support", "score": 5, "comment": "great",
                   "to": "+15551234567", "by": "ada@example.com", "path": "/data/voicemail/x.wav",
                   "resolved": true, "nested": {"agent": "x"}});
    assert_eq!(
        scrub(&d),
        json!({"from": "customer", "agent": "bob", "queue": "support", "score": 5,
               "resolved": true, "erased": true})
    );
    assert_eq!(scrub(&json!("text")), json!({"erased": true}));
}

#[test]
fn a_tombstone_is_keyed_stable_and_kind_bound() {
    let a = tombstone(b"k1", "phone", "+15551234567");
    assert_eq!(a.len(), 64);
    assert_eq!(a, tombstone(b"k1", "phone", "+15551234567"));
    assert_ne!(a, tombstone(b"k2", "phone", "+15551234567"));
    assert_ne!(a, tombstone(b"k1", "email", "+15551234567"));
    // The separator keeps kind and value apart.
    assert_ne!(tombstone(b"k", "ab", "c"), tombstone(b"k", "a", "bc"));
    assert!(!a.contains("5551234567"));
}

/// The archive format is read back by the system's own `tar`.
#[test]
fn a_ustar_archive_is_read_by_tar() {
    let d = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for (name, body) in [
        ("export.json", b"{\"a\": 1}".to_vec()),
        ("recordings/x.wav", vec![7u8; 1000]),
    ] {
        out.extend(tar_header(name, body.len() as u64, 1_700_000_000).unwrap());
        out.extend(&body);
        out.extend(vec![0u8; tar_padding(body.len() as u64)]);
    }
    out.extend(TAR_END);
    assert_eq!(out.len() % 512, 0);
    let file = d.path().join("a.tar");
    std::fs::write(&file, &out).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(d.path())
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(
        std::fs::read(d.path().join("export.json")).unwrap(),
        b"{\"a\": 1}"
    );
    assert_eq!(
        std::fs::read(d.path().join("recordings/x.wav")).unwrap(),
        vec![7u8; 1000]
    );
    assert!(tar_header(&"x".repeat(101), 0, 0).is_err());
    assert!(tar_header("", 0, 0).is_err());
    assert_eq!(
        (tar_padding(0), tar_padding(1), tar_padding(512)),
        (0, 511, 0)
    );
}
