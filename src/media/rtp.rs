//! RTP and RTCP bookkeeping, sans-IO, on `rtc`'s packet types: our sending side
//! (SSRC, sequence, timestamp, counters), the receiving side of one remote source
//! (RFC 3550 A.1 sequence validation with wrap, A.8 interarrival jitter, loss), and
//! RTCP compound packets (SR or RR + SDES CNAME) with round-trip time from the peer's
//! reports (RFC 3550 6.4).

use bytes::{Bytes, BytesMut};
use rtc::rtcp::packet::Packet as RtcpPacket;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};
use std::time::{Duration, Instant};

/// Parses an RTP packet; `None` for anything that is not RTP version 2.
pub fn parse(buf: Bytes) -> Option<Packet> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    let mut b = buf;
    Packet::unmarshal(&mut b).ok()
}

/// Writes an RTP packet.
pub fn write(p: &Packet) -> Bytes {
    let mut out = BytesMut::zeroed(p.marshal_size());
    match p.marshal_to(&mut out) {
        Ok(n) => {
            out.truncate(n);
            out.freeze()
        }
        Err(_) => Bytes::new(),
    }
}

/// RTCP and RTP share a port under rtcp-mux: RTCP packet types 192-223 (RFC 5761 4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// Our sending side of one stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    pub ssrc: u32,
    seq: u16,
    ts: u32,
    pub packets: u32,
    pub octets: u32,
    /// The next packet starts a talk spurt (marker bit).
    spurt: bool,
    /// Relay mapping: (source SSRC, timestamp offset, sequence offset).
    relay: Option<(u32, u32)>,
}

impl RtpSender {
    pub fn new(ssrc: u32, seq: u16, ts: u32) -> RtpSender {
        RtpSender {
            ssrc,
            seq,
            ts,
            packets: 0,
            octets: 0,
            spurt: true,
            relay: None,
        }
    }

    pub fn random() -> RtpSender {
        RtpSender::new(
            rand::random(),
            rand::random::<u16>() & 0x7FFF,
            rand::random(),
        )
    }

    /// The RTP timestamp of the next packet.
    pub fn timestamp(&self) -> u32 {
        self.ts
    }

    /// Builds the next packet carrying `samples` samples; the timestamp advances.
    pub fn packet(&mut self, pt: u8, payload: Bytes, samples: u32) -> Packet {
        let marker = std::mem::take(&mut self.spurt);
        let p = self.at(pt, payload, self.ts, marker);
        self.ts = self.ts.wrapping_add(samples);
        p
    }

    /// A packet with an explicit timestamp (telephone-event updates keep the event's).
    pub fn at(&mut self, pt: u8, payload: Bytes, ts: u32, marker: bool) -> Packet {
        let header = Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
            ..Default::default()
        };
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        Packet { header, payload }
    }

    /// Time passes without sending (hold, silence suppression): the next packet starts
    /// a new talk spurt.
    pub fn skip(&mut self, samples: u32) {
        self.ts = self.ts.wrapping_add(samples);
        self.spurt = true;
    }

    /// Relays a packet from another leg as our own stream: our SSRC and sequence, its
    /// timestamps shifted onto our timeline (re-anchored when its source changes), so
    /// the far end sees one continuous stream across the other leg's SSRC changes.
    pub fn relay(&mut self, p: &Packet, pt: u8, payload: Bytes) -> Packet {
        let off = match self.relay {
            Some((ssrc, off)) if ssrc == p.header.ssrc => off,
            _ => {
                let off = self.ts.wrapping_sub(p.header.timestamp);
                self.relay = Some((p.header.ssrc, off));
                self.spurt = true;
                off
            }
        };
        let ts = p.header.timestamp.wrapping_add(off);
        let marker = p.header.marker || std::mem::take(&mut self.spurt);
        let out = self.at(pt, payload, ts, marker);
        // Keep our own clock ahead of what we relayed, for a later switch back to
        // locally generated audio.
        if ts.wrapping_sub(self.ts) as i32 >= 0 {
            self.ts = ts.wrapping_add(1);
        }
        out
    }

    /// Forgets the relay anchor (the other leg was unbridged).
    pub fn end_relay(&mut self) {
        self.relay = None;
        self.spurt = true;
    }
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// What happened to a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In sequence (or reordered within bounds): use it.
    Ok,
    /// A new SSRC: the stream restarted (phone re-INVITE, transfer, media server switch).
    NewSource,
    /// A large sequence jump not yet confirmed: drop it (RFC 3550 A.1).
    Jump,
}

/// The receiving side of one remote stream.
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub ssrc: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: u32,
    pub received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: Option<i64>,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8), scaled by 16.
    jitter_q4: u32,
    /// Middle 32 bits of the NTP time of the last SR, and when it came.
    last_sr: Option<(u32, Instant)>,
    pub ssrc_changes: u32,
}

impl SourceStats {
    fn reset(&mut self, ssrc: u32, seq: u16) {
        let changes = self.ssrc_changes + self.started as u32;
        *self = SourceStats {
            ssrc,
            started: true,
            base_seq: seq as u32,
            max_seq: seq,
            bad_seq: u32::MAX,
            ssrc_changes: changes,
            ..Default::default()
        };
    }

    /// Records a packet; `arrival` is the arrival time in timestamp units.
    pub fn on_packet(&mut self, h: &Header, arrival: u32) -> Arrival {
        let mut result = Arrival::Ok;
        if !self.started || h.ssrc != self.ssrc {
            let fresh = !self.started;
            self.reset(h.ssrc, h.sequence_number);
            if !fresh {
                result = Arrival::NewSource;
            }
        } else {
            let seq = h.sequence_number;
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if udelta <= u16::MAX - MAX_MISORDER {
                if seq as u32 == self.bad_seq {
                    // Two sequential packets after a jump: the source restarted.
                    let changes = self.ssrc_changes;
                    self.reset(h.ssrc, seq);
                    self.ssrc_changes = changes;
                } else {
                    self.bad_seq = (seq.wrapping_add(1)) as u32;
                    return Arrival::Jump;
                }
            }
            // else: duplicate or reordered, counted.
        }
        self.received = self.received.wrapping_add(1);
        let transit = arrival as i64 - h.timestamp as i64;
        if let Some(prev) = self.transit {
            let mut d = (transit - prev).unsigned_abs();
            // Wrapped timestamps: take the short way round.
            if d > 1 << 31 {
                d = (1u64 << 32) - d;
            }
            let d = d.min(u32::MAX as u64 / 32) as u32;
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
        result
    }

    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// A reception report block for this source (and advances the interval).
    pub fn report(&mut self, now: Instant) -> ReceptionReport {
        let expected = self.expected();
        let lost = self.lost().clamp(-0x80_0000, 0x7F_FFFF);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (
                lsr,
                (now.saturating_duration_since(at).as_secs_f64() * 65536.0) as u32,
            ),
            None => (0, 0),
        };
        ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost: fraction,
            total_lost: (lost as i32 as u32) & 0x00FF_FFFF,
            last_sequence_number: self.extended_max(),
            jitter: self.jitter(),
            last_sender_report: lsr,
            delay: dlsr,
        }
    }
}

/// Builds our compound RTCP packet: SR when we have sent since the last report, else
/// RR; then SDES with our CNAME (RFC 3550 6.1).
pub fn compound(
    sender: &RtpSender,
    sent_since_last: bool,
    ntp: u64,
    source: Option<&mut SourceStats>,
    now: Instant,
    cname: &str,
) -> Bytes {
    let reports: Vec<ReceptionReport> = source
        .filter(|s| s.started)
        .map(|s| vec![s.report(now)])
        .unwrap_or_default();
    let first: Box<dyn RtcpPacket> = if sent_since_last {
        Box::new(SenderReport {
            ssrc: sender.ssrc,
            ntp_time: ntp,
            rtp_time: sender.timestamp(),
            packet_count: sender.packets,
            octet_count: sender.octets,
            reports,
            profile_extensions: Bytes::new(),
        })
    } else {
        Box::new(ReceiverReport {
            ssrc: sender.ssrc,
            reports,
            profile_extensions: Bytes::new(),
        })
    };
    let sdes: Box<dyn RtcpPacket> = Box::new(SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source: sender.ssrc,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: Bytes::copy_from_slice(cname.as_bytes()),
            }],
        }],
    });
    rtc::rtcp::packet::marshal(&[first, sdes])
        .map(|b| b.freeze())
        .unwrap_or_default()
}

/// What a received RTCP compound packet told us.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RtcpInfo {
    pub sender_report: bool,
    /// Round-trip time from a report block about our SSRC.
    pub rtt: Option<Duration>,
    pub fraction_lost: Option<u8>,
    pub bye: bool,
}

/// Reads a compound RTCP packet from the peer.
pub fn on_rtcp(
    buf: Bytes,
    our_ssrc: u32,
    ntp_now: u64,
    source: &mut SourceStats,
    now: Instant,
) -> Option<RtcpInfo> {
    let mut b = buf;
    let pkts = rtc::rtcp::packet::unmarshal(&mut b).ok()?;
    let mut info = RtcpInfo::default();
    let a = (ntp_now >> 16) as u32;
    let block = |r: &ReceptionReport, info: &mut RtcpInfo| {
        if r.ssrc == our_ssrc {
            info.fraction_lost = Some(r.fraction_lost);
            if r.last_sender_report != 0 {
                let rtt = a.wrapping_sub(r.last_sender_report).wrapping_sub(r.delay);
                if rtt < 0x8000_0000 {
                    info.rtt = Some(Duration::from_secs_f64(rtt as f64 / 65536.0));
                }
            }
        }
    };
    for p in &pkts {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            info.sender_report = true;
            if sr.ssrc == source.ssrc {
                source.on_sender_report(sr.ntp_time, now);
            }
            sr.reports.iter().for_each(|r| block(r, &mut info));
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            rr.reports.iter().for_each(|r| block(r, &mut info));
        } else if any.downcast_ref::<rtc::rtcp::goodbye::Goodbye>().is_some() {
            info.bye = true;
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(seq: u16, ts: u32, ssrc: u32) -> Header {
        Header {
            version: 2,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            payload_type: 0,
            ..Default::default()
        }
    }

    #[test]
    fn packet_round_trip_and_sequence_wrap() {
        let mut s = RtpSender::new(0x1234, 65534, u32::MAX - 159);
        let a = s.packet(8, Bytes::from_static(&[0xD5; 160]), 160);
        let b = s.packet(8, Bytes::from_static(&[0xD5; 160]), 160);
        let c = s.packet(8, Bytes::from_static(&[0xD5; 160]), 160);
        assert!(a.header.marker && !b.header.marker);
        assert_eq!(
            (
                a.header.sequence_number,
                b.header.sequence_number,
                c.header.sequence_number
            ),
            (65534, 65535, 0)
        );
        assert_eq!((b.header.timestamp, c.header.timestamp), (0, 160));
        let back = parse(write(&c)).unwrap();
        assert_eq!(back, c);
        assert!(parse(Bytes::from_static(b"hello world, not rtp")).is_none());
        assert!(parse(Bytes::from_static(&[0x80, 0])).is_none());
    }

    #[test]
    fn stats_count_loss_across_wrap_and_reorder() {
        let mut st = SourceStats::default();
        let mut arrival = 0u32;
        // 65530 .. 65535, 0 .. 9 with 3 lost and one reordered pair.
        let seqs: Vec<u16> = (65530u16..=65535)
            .chain(0..10)
            .filter(|s| ![65533u16, 2, 7].contains(s))
            .collect();
        let mut order = seqs.clone();
        order.swap(4, 5);
        for s in order {
            let ts = s.wrapping_sub(65530) as u32 * 160;
            arrival += 160;
            assert_eq!(st.on_packet(&hdr(s, ts, 9), arrival), Arrival::Ok);
        }
        assert_eq!(st.extended_max(), 65536 + 9);
        assert_eq!(st.expected(), 16);
        assert_eq!(st.lost(), 3);
        let rr = st.report(crate::clock::now());
        assert_eq!(rr.fraction_lost, (3 * 256 / 16) as u8);
        assert_eq!(rr.total_lost, 3);
    }

    #[test]
    fn ssrc_change_and_sequence_jump() {
        let mut st = SourceStats::default();
        assert_eq!(st.on_packet(&hdr(100, 0, 1), 0), Arrival::Ok);
        assert_eq!(st.on_packet(&hdr(101, 160, 1), 160), Arrival::Ok);
        assert_eq!(st.on_packet(&hdr(5000, 320, 2), 320), Arrival::NewSource);
        assert_eq!(st.ssrc_changes, 1);
        assert_eq!(st.received, 1);
        // A jump of 20000 is held back until a second packet confirms it.
        assert_eq!(st.on_packet(&hdr(25000, 480, 2), 480), Arrival::Jump);
        assert_eq!(st.on_packet(&hdr(25001, 640, 2), 640), Arrival::Ok);
        assert_eq!(st.expected(), 1);
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut st = SourceStats::default();
        // Packets every 160 samples arriving alternately 40 samples early and late.
        for i in 0..2000u32 {
            let jitter = if i % 2 == 0 { 0 } else { 80 };
            st.on_packet(&hdr(i as u16, i * 160, 5), i * 160 + jitter);
        }
        assert!((75..=85).contains(&st.jitter()), "jitter {}", st.jitter());
    }

    #[test]
    fn rtcp_sr_rr_round_trip_gives_rtt() {
        let now = crate::clock::now();
        let mut a = RtpSender::new(111, 0, 0);
        for _ in 0..50 {
            a.packet(0, Bytes::from_static(&[0xFF; 160]), 160);
        }
        let mut b_view_of_a = SourceStats::default();
        for i in 0..50u16 {
            b_view_of_a.on_packet(&hdr(i, i as u32 * 160, 111), i as u32 * 160);
        }
        let ntp_a: u64 = 0xE123_4567_89AB_0000;
        // A sends SR; B records it.
        let sr = compound(&a, true, ntp_a, None, now, "a@omnigate");
        let info = on_rtcp(sr, 222, ntp_a, &mut b_view_of_a, now).unwrap();
        assert!(info.sender_report);
        // 0.25 s later B sends RR about A, having held it 0.125 s; A reads it 0.25 s after SR.
        let b = RtpSender::new(222, 0, 0);
        let rr = compound(
            &b,
            false,
            0,
            Some(&mut b_view_of_a),
            now + Duration::from_millis(125),
            "b",
        );
        let mut a_view_of_b = SourceStats::default();
        let later = ntp_a + (1u64 << 30); // +0.25 s in NTP units
        let info = on_rtcp(rr, 111, later, &mut a_view_of_b, now).unwrap();
        let rtt = info.rtt.unwrap().as_secs_f64();
        assert!((rtt - 0.125).abs() < 0.002, "rtt {rtt}");
        assert_eq!(info.fraction_lost, Some(0));
        assert!(is_rtcp(&compound(&b, false, 0, None, now, "b")));
    }

    #[test]
    fn relay_keeps_one_timeline_across_source_changes() {
        let mut out = RtpSender::new(7, 10, 1000);
        let src = |ssrc, seq, ts| Packet {
            header: hdr(seq, ts, ssrc),
            payload: Bytes::from_static(&[0; 160]),
        };
        let a = out.relay(&src(1, 5, 50_000), 0, Bytes::from_static(&[0; 160]));
        let b = out.relay(&src(1, 6, 50_160), 0, Bytes::from_static(&[0; 160]));
        let c = out.relay(&src(2, 900, 7), 0, Bytes::from_static(&[0; 160]));
        assert_eq!(
            (a.header.ssrc, a.header.sequence_number, a.header.timestamp),
            (7, 10, 1000)
        );
        assert_eq!((b.header.sequence_number, b.header.timestamp), (11, 1160));
        assert_eq!(c.header.sequence_number, 12);
        assert!(
            c.header.timestamp.wrapping_sub(b.header.timestamp) as i32 > 0,
            "monotonic after the source changed"
        );
        assert!(c.header.marker);
    }
}
