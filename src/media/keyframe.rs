//! Keyframes across the bridge (issue 22), sans-IO: what a video bridge must get
//! right so that neither side is left with black video because a keyframe request
//! never crossed it.
//!
//! - Detection: whether an RTP payload starts a keyframe, for VP8 (RFC 7741 payload
//!   descriptor, then the frame tag's inverse key-frame bit) and H.264 (RFC 6184: an
//!   IDR slice or an SPS, alone, inside a STAP-A, or at the start of an FU-A).
//! - Requests: RTCP PLI (RFC 4585) and FIR (RFC 5104) are read from compound RTCP and
//!   written with the SSRCs of the leg they go to; RFC 5168's SIP `INFO`
//!   (`application/media_control+xml`, `picture_fast_update`) is built and recognised
//!   for SIP peers that did not negotiate `rtcp-fb ... pli`.
//! - [`Requester`]: when a leg needs a keyframe (video starts, resumes, a re-INVITE, a
//!   transfer) it asks at once, then every 500 ms until one is seen, for at most 3 s;
//!   a receiver's own requests (a browser's PLIs) are passed on at most once every
//!   500 ms. Time is injected; nothing here does I/O.

use std::time::{Duration, Instant};

/// A video codec the bridge passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    H264,
}

/// Whether this RTP payload begins a keyframe.
pub fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_keyframe(payload),
        Codec::H264 => h264_keyframe(payload),
    }
}

/// VP8 (RFC 7741 §4.2-4.3): the payload descriptor, then, at the start of a partition
/// 0 (S = 1, PID = 0), the frame tag whose lowest bit is 0 for a key frame.
pub fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (x, s, pid) = (b0 & 0x80 != 0, b0 & 0x10 != 0, b0 & 0x07);
    if !s || pid != 0 {
        return false;
    }
    let mut i = 1;
    if x {
        let Some(&b1) = p.get(i) else { return false };
        i += 1;
        let (pic, tl0, tid, key) = (
            b1 & 0x80 != 0,
            b1 & 0x40 != 0,
            b1 & 0x20 != 0,
            b1 & 0x10 != 0,
        );
        if pic {
            let Some(&m) = p.get(i) else { return false };
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if tl0 {
            i += 1;
        }
        if tid || key {
            i += 1;
        }
    }
    // The frame tag (3 bytes) and, on a key frame, the start code 9d 01 2a.
    match p.get(i..i + 6) {
        Some(h) => h[0] & 0x01 == 0 && h[3..6] == [0x9d, 0x01, 0x2a],
        None => false,
    }
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

fn starts_key(nal_type: u8) -> bool {
    nal_type == NAL_IDR || nal_type == NAL_SPS
}

/// H.264 (RFC 6184 §5): a single NAL unit, the units of a STAP-A, or the first
/// fragment of an FU-A, of an IDR slice or an SPS.
pub fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&h) = p.first() else { return false };
    match h & 0x1f {
        STAP_A => {
            let mut i = 1;
            while let Some(len) = p.get(i..i + 2) {
                let n = u16::from_be_bytes([len[0], len[1]]) as usize;
                let Some(&nal) = p.get(i + 2) else {
                    return false;
                };
                if n == 0 {
                    return false;
                }
                if starts_key(nal & 0x1f) {
                    return true;
                }
                i += 2 + n;
            }
            false
        }
        FU_A => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && starts_key(fu & 0x1f)),
        t => starts_key(t),
    }
}

/// A keyframe request found in RTCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Picture Loss Indication: the sender's SSRC and the media source's.
    Pli { sender: u32, media: u32 },
    /// Full Intra Request: the sender's SSRC and, per entry, the media source's SSRC
    /// and the command's sequence number.
    Fir {
        sender: u32,
        entries: Vec<(u32, u8)>,
    },
}

/// RTCP payload-specific feedback (RFC 4585 §6.1).
const PSFB: u8 = 206;
const FMT_PLI: u8 = 1;
const FMT_FIR: u8 = 4;
/// FIR entries read from one packet at most (hostile packets can claim many).
pub const MAX_FIR_ENTRIES: usize = 8;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The keyframe requests of a compound RTCP packet; anything malformed ends the walk
/// (what came before it stands).
pub fn requests(rtcp: &[u8]) -> Vec<Request> {
    let mut out = vec![];
    let mut i = 0;
    while let Some(h) = rtcp.get(i..i + 4) {
        if h[0] >> 6 != 2 {
            break;
        }
        let len = (u16::from_be_bytes([h[2], h[3]]) as usize + 1) * 4;
        let Some(pkt) = rtcp.get(i..i + len) else {
            break;
        };
        let fmt = h[0] & 0x1f;
        if h[1] == PSFB && len >= 12 {
            let sender = be32(&pkt[4..8]);
            match fmt {
                FMT_PLI => out.push(Request::Pli {
                    sender,
                    media: be32(&pkt[8..12]),
                }),
                FMT_FIR => {
                    let entries = pkt[12..]
                        .chunks_exact(8)
                        .take(MAX_FIR_ENTRIES)
                        .map(|e| (be32(&e[0..4]), e[4]))
                        .collect::<Vec<_>>();
                    if !entries.is_empty() {
                        out.push(Request::Fir { sender, entries });
                    }
                }
                _ => {}
            }
        }
        i += len;
    }
    out
}

/// A PLI from `sender` about the stream `media` sends.
pub fn pli(sender: u32, media: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = 0x80 | FMT_PLI;
    b[1] = PSFB;
    b[3] = 2;
    b[4..8].copy_from_slice(&sender.to_be_bytes());
    b[8..12].copy_from_slice(&media.to_be_bytes());
    b
}

/// A FIR from `sender` asking `media` for a keyframe, command number `seq`.
pub fn fir(sender: u32, media: u32, seq: u8) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[0] = 0x80 | FMT_FIR;
    b[1] = PSFB;
    b[3] = 4;
    b[4..8].copy_from_slice(&sender.to_be_bytes());
    // The media source field of a FIR is unused (RFC 5104 §4.3.1.2): zero.
    b[12..16].copy_from_slice(&media.to_be_bytes());
    b[16] = seq;
    b
}

/// The SIP `INFO` body type of RFC 5168.
pub const MEDIA_CONTROL: &str = "application/media_control+xml";

/// RFC 5168 §3's body asking the far end's encoder for a full picture.
pub const PICTURE_FAST_UPDATE: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n<media_control>\r\n  <vc_primitive>\r\n    <to_encoder>\r\n      <picture_fast_update/>\r\n    </to_encoder>\r\n  </vc_primitive>\r\n</media_control>\r\n";

/// The largest `media_control` body read.
pub const MAX_MEDIA_CONTROL: usize = 4096;

/// Whether an `INFO` body of type [`MEDIA_CONTROL`] asks for a full picture: a
/// `media_control` document whose `to_encoder` holds `picture_fast_update` (in any
/// spacing; the empty-element and open/close forms). Over-long bodies are refused.
pub fn is_picture_fast_update(body: &[u8]) -> bool {
    if body.len() > MAX_MEDIA_CONTROL {
        return false;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (Some(mc), Some(enc), Some(pfu)) = (
        squeezed.find("<media_control>"),
        squeezed.find("<to_encoder>"),
        squeezed
            .find("<picture_fast_update/>")
            .or_else(|| squeezed.find("<picture_fast_update></picture_fast_update>")),
    ) else {
        return false;
    };
    let closes = squeezed.find("</to_encoder>").is_some_and(|c| c > pfu);
    mc < enc && enc < pfu && closes && squeezed.contains("</media_control>")
}

/// How a keyframe is asked of a leg's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// RTCP PLI (browsers; SIP peers with `a=rtcp-fb:* nack pli`).
    Pli,
    /// RTCP FIR (SIP peers with `ccm fir` and no `pli`).
    Fir,
    /// SIP `INFO` with `picture_fast_update` (neither negotiated).
    Info,
}

impl Via {
    /// From what the leg's SDP negotiated.
    pub fn of(pli: bool, fir: bool) -> Via {
        match (pli, fir) {
            (true, _) => Via::Pli,
            (false, true) => Via::Fir,
            _ => Via::Info,
        }
    }
}

/// Why a leg needs a keyframe from its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Video starts (answer, or video added).
    Start,
    /// Resumed from hold.
    Resume,
    /// A re-INVITE changed the media.
    Reinvite,
    /// The leg was bridged to another party.
    Transfer,
    /// The receiver asked (a relayed PLI or FIR, or an INFO).
    Asked,
}

/// Between two requests to one sender, and how long to keep asking.
pub const RETRY: Duration = Duration::from_millis(500);
pub const GIVE_UP: Duration = Duration::from_secs(3);

/// When to ask one sender for a keyframe (one per video stream a leg sends). Feed it
/// [`Requester::need`] and [`Requester::keyframe_seen`]; [`Requester::poll`] at
/// [`Requester::deadline`] (or after any input) says whether to send a request now.
#[derive(Debug, Clone)]
pub struct Requester {
    via: Via,
    /// Keep asking until this time (a request not yet answered by a keyframe).
    until: Option<Instant>,
    last: Option<Instant>,
    /// A request is due (asked for since the last one was sent).
    due: bool,
    /// Requests sent, and FIR command numbers.
    pub sent: u32,
    fir_seq: u8,
}

impl Requester {
    pub fn new(via: Via) -> Requester {
        Requester {
            via,
            until: None,
            last: None,
            due: false,
            sent: 0,
            fir_seq: 0,
        }
    }

    pub fn via(&self) -> Via {
        self.via
    }

    /// The sender renegotiated how it takes requests; what is pending and the rate
    /// limit carry on.
    pub fn set_via(&mut self, via: Via) {
        self.via = via;
    }

    /// A keyframe is needed from this sender.
    pub fn need(&mut self, now: Instant, why: Need) {
        self.due = true;
        // A receiver's request is passed on (rate-limited) but not retried: it asks
        // again itself. The bridge's own needs are retried until a keyframe comes.
        if why != Need::Asked {
            self.until = Some(now + GIVE_UP);
        }
    }

    /// A keyframe came from this sender: stop asking. True when it answers a request
    /// still open (it was being asked for).
    pub fn keyframe_seen(&mut self) -> bool {
        let asked = self.until.is_some();
        self.until = None;
        self.due = false;
        asked
    }

    /// When [`poll`](Self::poll) should next be called (none: nothing pending).
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        if !(self.due || self.until.is_some()) {
            return None;
        }
        let next = self.last.map_or(now, |l| (l + RETRY).max(now));
        Some(match self.until {
            Some(u) => next.min(u),
            None => next,
        })
    }

    /// Whether to send a request now; `Some(seq)` is the FIR command number to use
    /// (it only changes with a new request, RFC 5104 §4.3.1.1).
    pub fn poll(&mut self, now: Instant) -> Option<u8> {
        if let Some(u) = self.until {
            if now >= u {
                self.until = None;
                self.due = false;
                return None;
            }
        }
        if !(self.due || self.until.is_some()) {
            return None;
        }
        if self.last.is_some_and(|l| now < l + RETRY) {
            return None;
        }
        self.last = Some(now);
        self.due = false;
        self.sent += 1;
        self.fir_seq = self.fir_seq.wrapping_add(1);
        Some(self.fir_seq)
    }
}

#[cfg(test)]
mod tests;
