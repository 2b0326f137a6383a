//! RFC 4475 torture vectors and hostile inputs against the message parser.

use bytes::Bytes;
use omnigate::sip::{Framing, Message};
use std::path::PathBuf;

fn vectors(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rfc4475")
        .join(kind);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn accepts_every_valid_rfc4475_message() {
    let v = vectors("valid");
    assert_eq!(v.len(), 13, "RFC 4475 3.1.1 has 13 messages");
    for (name, data) in v {
        let m = Message::parse(Bytes::from(data), Framing::Datagram);
        assert!(m.is_ok(), "{name}: {:?}", m.err());
    }
}

#[test]
fn rejects_every_invalid_rfc4475_message_with_its_reason() {
    let expected = [
        ("badaspec", "malformed To"),
        ("baddate", "malformed Date (must be RFC 1123 in GMT)"),
        ("baddn", "malformed From"),
        ("badinv01", "malformed Via parameter"),
        ("badvers", "Version Not Supported"),
        ("bigcode", "malformed status code"),
        ("clerr", "Content-Length larger than message"),
        ("escruri", "Request-URI must not carry headers"),
        ("ltgtruri", "malformed Request-URI"),
        ("lwsruri", "malformed Request-Line"),
        ("lwsstart", "malformed Request-Line"),
        (
            "mismatch01",
            "CSeq method does not match the request method",
        ),
        (
            "mismatch02",
            "CSeq method does not match the request method",
        ),
        ("ncl", "invalid Content-Length"),
        ("quotbal", "malformed To"),
        ("regbadct", "malformed Contact"),
        ("scalar02", "CSeq number out of range"),
        ("scalarlg", "CSeq number out of range"),
        ("trws", "malformed Request-Line"),
    ];
    let v = vectors("invalid");
    assert_eq!(v.len(), expected.len(), "RFC 4475 3.1.2 has 19 messages");
    for ((name, data), (ename, reason)) in v.into_iter().zip(expected) {
        assert_eq!(name, ename);
        let is_response = data.starts_with(b"SIP/");
        let e = Message::parse(Bytes::from(data), Framing::Datagram).expect_err(&name);
        assert_eq!(e.reason, reason, "{name}");
        // Every malformed request can be answered (400, or 505 for badvers); the two
        // malformed responses are dropped.
        assert_eq!(e.answerable().is_some(), !is_response, "{name}");
    }
}

#[test]
fn valid_messages_survive_a_serialize_round_trip() {
    for (name, data) in vectors("valid") {
        let m = Message::parse(Bytes::from(data), Framing::Datagram).unwrap();
        let again = Message::parse(m.to_bytes(), Framing::Datagram)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.start, again.start, "{name}");
        assert_eq!(m.body, again.body, "{name}");
        let cl = omnigate::sip::HeaderName::ContentLength;
        let n = |m: &Message| m.headers.iter().filter(|h| h.name != cl).count();
        assert_eq!(n(&m), n(&again), "{name}");
    }
}

#[test]
fn extra_octets_after_content_length_are_dropped_on_udp() {
    let (_, data) = vectors("valid")
        .into_iter()
        .find(|(n, _)| n == "dblreq")
        .unwrap();
    let m = Message::parse(Bytes::from(data), Framing::Datagram).unwrap();
    assert_eq!(m.method().unwrap().as_str(), "REGISTER");
    assert!(m.body.is_empty());
}

#[test]
fn hostile_inputs_are_refused_without_panic() {
    let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";
    let long_line = format!(
        "{base}X-Long: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert!(Message::parse(Bytes::from(long_line), Framing::Datagram).is_err());
    let many_vias = format!(
        "{base}Via: {}\r\nContent-Length: 0\r\n\r\n",
        vec!["SIP/2.0/UDP h"; 10_000].join(",")
    );
    assert!(Message::parse(Bytes::from(many_vias), Framing::Datagram).is_err());
    let huge_cl = format!("{base}Content-Length: 99999999999999999999\r\n\r\n");
    assert!(Message::parse(Bytes::from(huge_cl), Framing::Datagram).is_err());
    let neg_cl = format!("{base}Content-Length: -1\r\n\r\n");
    assert!(Message::parse(Bytes::from(neg_cl), Framing::Datagram).is_err());
    let full = format!("{base}Content-Length: 0\r\n\r\n");
    for cut in 0..full.len() - 2 {
        let _ = Message::parse(
            Bytes::copy_from_slice(&full.as_bytes()[..cut]),
            Framing::Datagram,
        );
    }
    assert!(Message::parse(Bytes::from(full), Framing::Datagram).is_ok());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Message::parse(Bytes::from(data.clone()), Framing::Datagram);
            let _ = omnigate::sip::message::frame_stream(&data, &Default::default());
        }

        #[test]
        fn mutated_valid_messages_never_panic(idx in 0usize..13, pos in 0usize..4000, byte in any::<u8>()) {
            let v = vectors("valid");
            let mut data = v[idx].1.clone();
            let p = pos % data.len();
            data[p] = byte;
            let _ = Message::parse(Bytes::from(data), Framing::Datagram);
        }
    }
}
