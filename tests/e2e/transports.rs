//! Calls over TCP (SIPp), OPTIONS over TLS (rustls client trusting the generated
//! certificate) and over WebSocket (RFC 7118, a minimal client written here).

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn call_over_tcp() {
    let g = Gateway::start(
        21800,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 0",
        "",
    );
    let out = sipp(
        g.dir.path(),
        &[
            "-sn",
            "uac",
            "-t",
            "t1",
            "-s",
            "100",
            "-d",
            "500",
            "-p",
            "21810",
            "-m",
            "1",
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    assert_sipp_ok(&out, "uac over TCP", &g);
    assert!(
        g.log().contains("source=TCP:127.0.0.1:21810"),
        "{}",
        g.log()
    );
}

fn options(transport: &str, branch: &str) -> String {
    format!("OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:1;branch=z9hG4bK{branch}\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: {branch}@t\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn options_over_tls_with_the_generated_certificate() {
    let g = Gateway::start(21900, "demo = true", "", "");
    let pem = std::fs::read(g.path("cert.pem")).expect("certificate generated on first start");
    let key = std::fs::metadata(g.path("cert.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        key.permissions().mode() & 0o777,
        0o600,
        "private key readable by its owner only"
    );
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", g.tls)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(options("TLS", "tls1").as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    assert!(answer.contains("Allow: INVITE"), "{answer}");
}

/// A minimal WebSocket client: handshake with subprotocol "sip", one masked text frame
/// out, one frame in.
#[test]
fn options_over_websocket() {
    let g = Gateway::start(22000, "demo = true", "", "");
    let mut s = TcpStream::connect(("127.0.0.1", g.ws)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("sec-websocket-protocol: sip"), "{head}");
    let payload = options("WS", "ws1").into_bytes();
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81u8];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, c)| c ^ mask[i % 4]));
    s.write_all(&frame).unwrap();
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).unwrap();
    assert_eq!(hdr[0] & 0x0f, 1, "text frame");
    let len = match hdr[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    let answer = String::from_utf8_lossy(&body);
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    // Without the "sip" subprotocol the upgrade is refused.
    let mut s2 = TcpStream::connect(("127.0.0.1", g.ws)).unwrap();
    write!(s2, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = String::new();
    let _ = s2.read_to_string(&mut r);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // A page on another site may not drive SIP from its visitors' browsers; the
    // node's own pages (its HTTP origin) may.
    let upgrade = |origin: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", g.ws)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\nOrigin: {origin}\r\n\r\n").unwrap();
        let mut r = vec![0u8; 512];
        let n = s.read(&mut r).unwrap();
        String::from_utf8_lossy(&r[..n]).into_owned()
    };
    let evil = upgrade("https://evil.example");
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    assert!(evil.contains("ws_origins"), "{evil}");
    let own = upgrade(&format!("http://127.0.0.1:{}", g.http));
    assert!(own.starts_with("HTTP/1.1 101"), "{own}");
}

/// A call out through a trunk over TLS: the "provider" is a second gateway, whose
/// generated certificate the first one trusts (tls_ca) and verifies as "localhost".
#[test]
fn outbound_call_through_a_tls_trunk() {
    let provider = Gateway::start(
        22100,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 0",
        "",
    );
    let trunk = format!(
        "[[trunk]]\nname = \"tls-provider\"\nproxy = \"127.0.0.1:{}\"\ntransport = \"tls\"\ndomain = \"localhost\"\ntls_ca = \"{}\"\n",
        provider.tls,
        provider.path("cert.pem").display()
    );
    let g = Gateway::start(
        22200,
        "demo = false",
        "answer_after_ms = 0\nhangup_after_secs = 1",
        &trunk,
    );
    let (code, body) = g.post("/api/calls", Some("test-token"), r#"{"to": "100"}"#);
    assert_eq!(code, 202, "{body}");
    g.wait_log("call established");
    provider.wait_log("source=TLS:127.0.0.1");
    provider.wait_log("reason=RemoteBye");
    g.wait_log("reason=LocalBye");
}
