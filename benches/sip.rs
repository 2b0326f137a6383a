//! SIP benchmarks: parse and serialize a typical INVITE and 200 OK, transaction-layer
//! throughput, and a whole inbound call through the UA core (INVITE, 200, ACK, BYE),
//! all sans-IO on a simulated clock.
//!
//! Run: `cargo bench --bench sip`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use omnigate::sip::core::{Core, CoreConfig, CoreEvent};
use omnigate::sip::transaction::{Incoming, TimerConfig, TransactionLayer};
use omnigate::sip::trunk::{Cidr, TrunkConfig};
use omnigate::sip::{Framing, Message, Peer, Transport};
use std::hint::black_box;

const INVITE: &str = "INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4242-1-0;rport\r\n\
From: sipp <sip:sipp@127.0.0.1:5070>;tag=4242SIPpTag001\r\n\
To: <sip:100@127.0.0.1:5060>\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5070\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 129\r\n\r\n\
v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn invite(n: u64) -> Message {
    let s = INVITE
        .replace("4242-1-0", &format!("{n}-1-0"))
        .replace("1-4242@", &format!("{n}-4242@"));
    Message::parse(Bytes::from(s), Framing::Datagram).unwrap()
}

fn parse_serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Elements(1));
    let raw = Bytes::from_static(INVITE.as_bytes());
    g.bench_function("parse INVITE", |b| {
        b.iter(|| black_box(Message::parse(raw.clone(), Framing::Datagram).unwrap()))
    });
    let inv = Message::parse(raw.clone(), Framing::Datagram).unwrap();
    let mut ok = Message::response_to(&inv, 200, "OK", Some("abcdef1234"));
    ok.push(
        omnigate::sip::HeaderName::Contact,
        "<sip:omnigate@127.0.0.1:5060>",
    );
    ok.with_body("application/sdp", Bytes::from_static(b"v=0\r\no=omnigate 1 1 IN IP4 127.0.0.1\r\ns=omnigate\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"));
    g.bench_function("serialize 200 OK", |b| b.iter(|| black_box(ok.to_bytes())));
    let ok_bytes = ok.to_bytes();
    g.bench_function("parse 200 OK", |b| {
        b.iter(|| black_box(Message::parse(ok_bytes.clone(), Framing::Datagram).unwrap()))
    });
    g.bench_function("serialize INVITE", |b| b.iter(|| black_box(inv.to_bytes())));
    g.finish();
}

fn transactions(c: &mut Criterion) {
    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1000));
    let peer = Peer::udp("127.0.0.1:5070".parse().unwrap());
    let invites: Vec<Message> = (0..1000).map(invite).collect();
    g.bench_function(
        "1000 server INVITE transactions (100, 200, timers to end)",
        |b| {
            b.iter_batched(
                || invites.clone(),
                |invs| {
                    let mut l = TransactionLayer::new(TimerConfig::default());
                    let t0 = omnigate::clock::now();
                    for inv in invs {
                        if let Incoming::New(k) = l.on_request(t0, inv.clone(), peer) {
                            l.respond(t0, &k, Message::response_to(&inv, 200, "OK", Some("t")));
                        }
                    }
                    while l.poll_transmit().is_some() {}
                    while let Some(t) = l.poll_timeout() {
                        l.handle_timeout(t);
                        while l.poll_transmit().is_some() {}
                    }
                    while l.poll_event().is_some() {}
                    black_box(l.len())
                },
                BatchSize::LargeInput,
            )
        },
    );
    g.finish();
}

fn whole_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
        conn: None,
    };
    let cfg = CoreConfig {
        trunks: vec![TrunkConfig {
            inbound_cidrs: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            ..TrunkConfig::new("demo")
        }],
        keepalive_interval: 0,
        ..CoreConfig::default()
    };
    let t0 = omnigate::clock::now();
    let mut core = Core::new(cfg, t0);
    let mut n = 0u64;
    let sdp = Bytes::from_static(b"v=0\r\no=omnigate 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n");
    g.bench_function("inbound call: INVITE, 200, ACK, BYE, 200", |b| {
        b.iter(|| {
            n += 1;
            // Simulated time moves 40 s a call, so the previous call's transactions end.
            let t0 = t0 + std::time::Duration::from_secs(40 * n);
            core.handle_timeout(t0);
            while core.poll_transmit().is_some() {}
            let inv = invite(n);
            core.handle_message(t0, Ok(inv), peer);
            let mut call = None;
            while let Some(ev) = core.poll_event() {
                if let CoreEvent::IncomingCall { call: c, .. } = ev {
                    call = Some(c);
                }
            }
            let call = call.unwrap();
            core.answer(t0, call, sdp.clone());
            let mut to_tag = String::new();
            while let Some(t) = core.poll_transmit() {
                let m = Message::parse(t.data, Framing::Datagram).unwrap();
                if m.status() == Some(200) {
                    to_tag = m.to_tag().unwrap().to_string();
                }
            }
            let ack = format!("ACK sip:omnigate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-ack\r\nFrom: <sip:sipp@127.0.0.1:5070>;tag=4242SIPpTag001\r\nTo: <sip:100@127.0.0.1:5060>;tag={to_tag}\r\nCall-ID: {n}-4242@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
            core.handle_message(t0, Message::parse(Bytes::from(ack), Framing::Datagram), peer);
            let bye = format!("BYE sip:omnigate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-bye\r\nFrom: <sip:sipp@127.0.0.1:5070>;tag=4242SIPpTag001\r\nTo: <sip:100@127.0.0.1:5060>;tag={to_tag}\r\nCall-ID: {n}-4242@127.0.0.1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
            core.handle_message(t0, Message::parse(Bytes::from(bye), Framing::Datagram), peer);
            while core.poll_transmit().is_some() {}
            while core.poll_event().is_some() {}
        })
    });
    g.finish();
    assert_eq!(core.live_calls(), 0);
}

criterion_group!(benches, parse_serialize, transactions, whole_call);
criterion_main!(benches);
