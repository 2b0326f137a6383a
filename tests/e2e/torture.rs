//! Every RFC 4475 vector and hostile inputs, sent over UDP and TCP to a running
//! gateway; the answers are checked, then the gateway must still answer OPTIONS.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

fn vectors(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rfc4475")
        .join(kind);
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
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

/// Adds `;rport` to the first Via so the UDP answer comes back to our socket
/// (RFC 3581) instead of the vector's made-up host; nothing else changes.
fn with_rport(data: &[u8]) -> Vec<u8> {
    let text = data.to_vec();
    for pat in [&b"\r\nVia:"[..], b"\r\nv:", b"\r\nVia  :", b"\r\nVia:     "] {
        if let Some(i) = text.windows(pat.len()).position(|w| w == pat) {
            let line_end = text[i + 2..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map(|e| i + 2 + e)
                .unwrap();
            // Only a Via whose value is on one line.
            if text[line_end + 2] != b' ' {
                let mut out = text[..line_end].to_vec();
                out.extend_from_slice(b";rport");
                out.extend_from_slice(&text[line_end..]);
                return out;
            }
        }
    }
    text
}

fn udp_exchange(sock: &UdpSocket, to: &str, data: &[u8]) -> Vec<String> {
    sock.send_to(data, to).unwrap();
    let mut answers = Vec::new();
    let mut buf = [0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    answers
}

fn status_line(a: &str) -> &str {
    a.lines().next().unwrap_or("")
}

fn expected_invalid(name: &str) -> Option<&'static str> {
    Some(match name {
        "badaspec" => "SIP/2.0 400 malformed To",
        "baddate" => "SIP/2.0 400 malformed Date (must be RFC 1123 in GMT)",
        "baddn" => "SIP/2.0 400 malformed From",
        "badinv01" => "SIP/2.0 400 malformed Via parameter",
        "badvers" => "SIP/2.0 505 Version Not Supported",
        "clerr" => "SIP/2.0 400 Content-Length larger than message",
        "escruri" => "SIP/2.0 400 Request-URI must not carry headers",
        "ltgtruri" => "SIP/2.0 400 malformed Request-URI",
        "lwsruri" | "lwsstart" | "trws" => "SIP/2.0 400 malformed Request-Line",
        "mismatch01" | "mismatch02" => "SIP/2.0 400 CSeq method does not match the request method",
        "ncl" => "SIP/2.0 400 invalid Content-Length",
        "quotbal" => "SIP/2.0 400 malformed To",
        "regbadct" => "SIP/2.0 400 malformed Contact",
        "scalar02" => "SIP/2.0 400 CSeq number out of range",
        "scalarlg" | "bigcode" => return None, // malformed responses: dropped
        other => panic!("unexpected vector {other}"),
    })
}

fn options(branch: &str) -> String {
    format!("OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{branch};rport\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: {branch}@t\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn rfc4475_vectors_and_hostile_inputs_over_udp_and_tcp() {
    let g = Gateway::start(
        21700,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 1",
        "",
    );
    let to = format!("127.0.0.1:{}", g.sip);
    let sock = UdpSocket::bind("127.0.0.1:21720").unwrap();

    // Malformed: the exact 400/505, or nothing for malformed responses.
    for (name, data) in vectors("invalid") {
        let answers = udp_exchange(&sock, &to, &with_rport(&data));
        match expected_invalid(&name) {
            Some(want) => {
                assert_eq!(answers.len(), 1, "{name}: {answers:?}");
                assert_eq!(status_line(&answers[0]), want, "{name}");
            }
            None => assert!(answers.is_empty(), "{name}: {answers:?}"),
        }
    }
    // Well-formed: never a 400 (requests get a real answer, responses are dropped).
    for (name, data) in vectors("valid") {
        let answers = udp_exchange(&sock, &to, &with_rport(&data));
        if data.starts_with(b"SIP/") {
            assert!(answers.is_empty(), "{name}: {answers:?}");
        } else {
            assert!(!answers.is_empty(), "{name}: no answer");
            for a in &answers {
                assert!(!status_line(a).starts_with("SIP/2.0 400"), "{name}: {a}");
            }
        }
    }
    let intmeth = udp_exchange(
        &sock,
        &to,
        &with_rport(
            &vectors("valid")
                .into_iter()
                .find(|v| v.0 == "intmeth")
                .unwrap()
                .1,
        ),
    );
    assert!(
        status_line(&intmeth[0]).starts_with("SIP/2.0 501"),
        "unknown method gets 501: {intmeth:?}"
    );

    // Hostile inputs over UDP.
    let base = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:21720;branch=z9hG4bKh1;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: hostile\r\nCSeq: 1 OPTIONS\r\n";
    let long_line = format!(
        "{base}X-Long: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(60_000)
    );
    assert_eq!(
        status_line(&udp_exchange(&sock, &to, long_line.as_bytes())[0]),
        "SIP/2.0 400 header line too long"
    );
    // 4,000 Via values (as many as a datagram holds), 400 per line.
    let via_lines: String = (0..10)
        .map(|_| format!("Via: {}\r\n", vec!["SIP/2.0/UDP h"; 400].join(",")))
        .collect();
    let many_vias = format!("{base}{via_lines}Content-Length: 0\r\n\r\n");
    assert_eq!(
        status_line(
            &udp_exchange(
                &sock,
                &to,
                many_vias
                    .replace("hostile", "hostile2")
                    .replace("bKh1", "bKh2")
                    .as_bytes()
            )[0]
        ),
        "SIP/2.0 400 too many Via values"
    );
    for (i, cl) in ["-5", "99999999999999999999"].iter().enumerate() {
        let m = format!("{base}Content-Length: {cl}\r\n\r\n")
            .replace("hostile", &format!("cl{i}"))
            .replace("bKh1", &format!("bKcl{i}"));
        assert_eq!(
            status_line(&udp_exchange(&sock, &to, m.as_bytes())[0]),
            "SIP/2.0 400 invalid Content-Length"
        );
    }
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..200 {
        let n = (seed % 1400) as usize + 1;
        let junk: Vec<u8> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        sock.send_to(&junk, &to).unwrap();
    }
    let truncated = &base.as_bytes()[..base.len() / 2];
    sock.send_to(truncated, &to).unwrap();

    // Still serving over UDP.
    let pong = udp_exchange(&sock, &to, options("after-udp").as_bytes());
    assert!(
        pong.iter().any(|a| status_line(a) == "SIP/2.0 200 OK"),
        "{pong:?}\n{}",
        g.log()
    );

    // Over TCP, against a fresh gateway (the UDP pass left these branches' transactions
    // alive, and a request on a live transaction is a retransmission): each vector on
    // its own connection.
    drop(g);
    let g = Gateway::start(
        21750,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 1",
        "",
    );
    let to = format!("127.0.0.1:{}", g.sip);
    let valid_names: Vec<String> = vectors("valid").into_iter().map(|v| v.0).collect();
    for (name, data) in vectors("invalid").into_iter().chain(vectors("valid")) {
        let mut s = TcpStream::connect(&to).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let mut data = data.clone();
        if name == "dblreq" {
            // On a stream the second message is a message of its own.
            data.truncate(data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
        }
        s.write_all(&data).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if valid_names.contains(&name) {
            if !data.starts_with(b"SIP/") {
                assert!(
                    answer.starts_with("SIP/2.0 ") && !answer.starts_with("SIP/2.0 400"),
                    "TCP {name}: {answer:?}"
                );
            }
        } else if let Some(want) = expected_invalid(&name) {
            if name == "clerr" {
                // On a stream a too-large Content-Length just waits for more bytes.
                assert!(answer.is_empty(), "TCP clerr: {answer:?}");
            } else {
                assert_eq!(status_line(&answer), want, "TCP {name}");
            }
        }
    }
    // Hostile inputs over TCP: a 64 KB header line and 10,000 Via values cannot be
    // framed within the 64 KB limit: the connection is closed (after a 400 when the
    // headers seen so far allow one), and the gateway goes on serving.
    let tcp_base = base.replace("UDP", "TCP");
    for (what, msg) in [
        (
            "64 KB header line",
            format!(
                "{tcp_base}X-Long: {}\r\nContent-Length: 0\r\n\r\n",
                "a".repeat(64 * 1024)
            ),
        ),
        (
            "10,000 Via values",
            format!(
                "{tcp_base}Via: {}\r\nContent-Length: 0\r\n\r\n",
                vec!["SIP/2.0/TCP h"; 10_000].join(",")
            ),
        ),
    ] {
        let mut s = TcpStream::connect(&to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(msg.as_bytes());
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("SIP/2.0 400 "),
            "{what}: {answer}"
        );
    }
    let mut s = TcpStream::connect(&to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"garbage that never ends a header section")
        .unwrap();
    drop(s);

    // Still serving over TCP.
    let mut s = TcpStream::connect(&to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(options("after-tcp").replace("UDP", "TCP").as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));
    // 18 malformed vectors answered over TCP (clerr waits for its body), plus the
    // hostile streams.
    wait_for("parse errors counted", Duration::from_secs(5), || {
        g.metric("omnigate_sip_parse_errors_total").unwrap_or(0.0) >= 18.0
    });
}
