//! Video across a bridge, sans-IO: what each leg's video stream needs so that neither
//! side is left with black video.
//!
//! - **One stream per receiver**: what is relayed to a leg goes out under that leg's
//!   own SSRC, with sequence numbers and timestamps continued across a change of
//!   sender (a transfer, a re-INVITE that restarts the far encoder), so the receiver's
//!   decoder sees one stream and never a jump it would drop.
//! - **RTCP is per leg**: receivers' reports and senders' reports are not relayed (the
//!   SSRCs they name are not the ones the other side sees); keyframe requests are.
//!   A PLI or FIR from a receiver, or an RFC 5168 `INFO` from a SIP receiver, becomes
//!   a request to the sender in the form the sender negotiated (PLI, FIR or `INFO`),
//!   with the sender's SSRCs, rate-limited by [`Requester`].
//! - **The bridge asks on its own** when a receiver starts to see a new stream (video
//!   bridged, resumed, renegotiated, transferred): at once, then every 500 ms until the
//!   sender's keyframe is seen, for at most 3 s.

use crate::media::keyframe::{self, Codec, Need, Requester, Via};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;

/// What a leg negotiated for video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoLeg {
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    /// The payload types whose keyframes can be recognised, and their codec.
    pub codecs: Vec<(u8, Codec)>,
    /// How a keyframe is asked of this leg.
    pub via: Via,
}

impl VideoLeg {
    pub fn from_sdp(v: &crate::sdp::VideoParams) -> VideoLeg {
        VideoLeg {
            remote_rtp: v.remote_rtp,
            remote_rtcp: v.remote_rtcp,
            rtcp_mux: v.rtcp_mux,
            codecs: v
                .formats
                .iter()
                .filter_map(|f| Some((f.pt, codec_of(&f.name)?)))
                .collect(),
            via: Via::of(v.feedback.pli, v.feedback.fir),
        }
    }
}

/// The payload type a packet of `codec` (none: one we do not know, numbered `pt`) has
/// on a leg with `to` codecs: that codec's there; the same number for a codec we do not
/// know; none when the receiver did not take the sender's codec.
pub fn map_pt(pt: u8, codec: Option<Codec>, to: &[(u8, Codec)]) -> Option<u8> {
    match codec {
        Some(c) => to.iter().find(|(_, d)| *d == c).map(|(p, _)| *p),
        None => Some(pt),
    }
}

/// The pass-through codecs whose keyframes we recognise.
pub fn codec_of(name: &str) -> Option<Codec> {
    if name.eq_ignore_ascii_case("VP8") {
        Some(Codec::Vp8)
    } else if name.eq_ignore_ascii_case("H264") {
        Some(Codec::H264)
    } else {
        None
    }
}

/// Counters for one leg's video.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoReport {
    /// Packets relayed to this leg.
    pub relayed: u64,
    /// Keyframes this leg sent.
    pub keyframes: u64,
    /// Keyframe requests this leg made (PLI, FIR, INFO).
    pub requests_in: u64,
    /// Keyframe requests sent to this leg.
    pub requests_out: u32,
}

/// One leg's video state.
pub(super) struct VideoState {
    pub ask: Requester,
    /// The SSRC this leg sends video from (the last seen).
    pub source: Option<u32>,
    /// Our SSRC for the video relayed to this leg (and our feedback to it).
    pub ssrc: u32,
    rw: Option<Rewrite>,
    /// A need found without a clock (bridging): applied at the next tick.
    pub pending: Option<Need>,
    pub bridged_before: bool,
    pub report: VideoReport,
}

/// How the stream relayed to a leg is renumbered.
#[derive(Debug, Clone, Copy)]
struct Rewrite {
    from: u32,
    seq_delta: u16,
    ts_delta: u32,
    last_seq: u16,
    last_ts: u32,
}

/// The timestamp step between two senders' streams (one frame at 30 fps, 90 kHz).
const TS_STEP: u32 = 3000;

/// Whether a packet on a muxed port is RTCP (RFC 5761 §4: payload types 64-95).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// An RTP packet's payload (after CSRCs and the header extension, before padding).
fn payload(data: &[u8]) -> Option<&[u8]> {
    let cc = (data.first()? & 0x0f) as usize;
    let mut at = 12 + 4 * cc;
    if data[0] & 0x10 != 0 {
        let ext = data.get(at + 2..at + 4)?;
        at += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let pad = if data[0] & 0x20 != 0 {
        *data.last()? as usize
    } else {
        0
    };
    data.get(at..data.len().checked_sub(pad)?)
}

impl VideoState {
    pub fn new(via: Via, ssrc: u32) -> VideoState {
        VideoState {
            ask: Requester::new(via),
            source: None,
            ssrc,
            rw: None,
            pending: None,
            bridged_before: false,
            report: VideoReport::default(),
        }
    }

    /// A packet from `source` relayed to this leg: renumbered into this leg's stream,
    /// with the payload type `pt` this leg uses for its codec. `None` for what is not
    /// RTP.
    pub fn rewrite(&mut self, data: &[u8], pt: u8) -> Option<Bytes> {
        if data.len() < 12 || data[0] >> 6 != 2 {
            return None;
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let rw = match self.rw {
            Some(r) if r.from == ssrc => r,
            // A new sender continues where the last one stopped.
            Some(r) => Rewrite {
                from: ssrc,
                seq_delta: r.last_seq.wrapping_add(1).wrapping_sub(seq),
                ts_delta: r.last_ts.wrapping_add(TS_STEP).wrapping_sub(ts),
                last_seq: r.last_seq,
                last_ts: r.last_ts,
            },
            None => Rewrite {
                from: ssrc,
                seq_delta: 0,
                ts_delta: 0,
                last_seq: seq.wrapping_sub(1),
                last_ts: ts,
            },
        };
        let out_seq = seq.wrapping_add(rw.seq_delta);
        let out_ts = ts.wrapping_add(rw.ts_delta);
        let mut r = rw;
        // Only a newer packet moves the high-water marks (reordering stays reordered).
        if (out_seq.wrapping_sub(r.last_seq) as i16) > 0 {
            r.last_seq = out_seq;
        }
        if (out_ts.wrapping_sub(r.last_ts) as i32) > 0 {
            r.last_ts = out_ts;
        }
        self.rw = Some(r);
        let mut b = BytesMut::from(data);
        b[1] = (b[1] & 0x80) | (pt & 0x7f);
        b[2..4].copy_from_slice(&out_seq.to_be_bytes());
        b[4..8].copy_from_slice(&out_ts.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Some(b.freeze())
    }

    /// A packet this leg sent: its source, and whether it starts a keyframe. True when
    /// it is a keyframe the bridge was asking this leg for.
    pub fn sent(&mut self, data: &[u8], codecs: &[(u8, Codec)]) -> bool {
        if data.len() < 12 || data[0] >> 6 != 2 {
            return false;
        }
        self.source = Some(u32::from_be_bytes([data[8], data[9], data[10], data[11]]));
        let pt = data[1] & 0x7f;
        let Some(codec) = codecs.iter().find(|(p, _)| *p == pt).map(|(_, c)| *c) else {
            return false;
        };
        let Some(payload) = payload(data) else {
            return false;
        };
        if keyframe::is_keyframe(codec, payload) {
            self.report.keyframes += 1;
            return self.ask.keyframe_seen();
        }
        false
    }

    /// The request to send this leg now, if one is due: RTCP bytes for PLI and FIR,
    /// `Err(())` for an `INFO`.
    pub fn request(&mut self, now: std::time::Instant) -> Option<Result<Bytes, ()>> {
        let via = self.ask.via();
        // An RTCP request names the sender's SSRC: wait for its first packet.
        if via != Via::Info && self.source.is_none() {
            return None;
        }
        let seq = self.ask.poll(now)?;
        self.report.requests_out += 1;
        let media = self.source.unwrap_or(0);
        Some(match via {
            Via::Pli => Ok(Bytes::copy_from_slice(&keyframe::pli(self.ssrc, media))),
            Via::Fir => Ok(Bytes::copy_from_slice(&keyframe::fir(
                self.ssrc, media, seq,
            ))),
            Via::Info => Err(()),
        })
    }
}
