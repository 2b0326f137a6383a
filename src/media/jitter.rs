//! An adaptive, bounded jitter buffer for the legs we decode (prompts with DTMF
//! detection, recording, transcoding, conference mixing). Sans-IO: the caller inserts
//! decoded 8 kHz samples with their RTP timestamp and arrival time (in samples), and
//! pops a fixed number of samples per tick.
//!
//! It works in samples, not packets, so a 30 ms sender (SIPp's pcap) plays out through
//! our 20 ms clock without gaps. The target delay follows the RFC 3550 interarrival
//! jitter (3 J + one frame, between `MIN_DELAY` and `MAX_DELAY`); it grows at once and
//! shrinks by skipping when the buffer is deeper than needed. Late and duplicate
//! packets are dropped; missing audio is concealed with silence and counted; a buffer
//! that would exceed `CAPACITY` resynchronises instead of growing.

use std::collections::BTreeMap;

/// Samples per 20 ms at 8 kHz.
pub const FRAME: u32 = 160;
pub const MIN_DELAY: u32 = FRAME;
pub const MAX_DELAY: u32 = 8 * 200;
/// Samples held at most (1 s): the bound on memory per leg.
pub const CAPACITY: u32 = 8000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub played: u64,
    pub concealed: u64,
    pub late: u64,
    pub duplicate: u64,
    pub skipped: u64,
    pub resyncs: u64,
    pub underruns: u64,
}

/// What a pop produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// The frame is audio (possibly with concealed gaps, counted in the stats).
    Audio,
    /// Nothing to play yet (buffering) or any more (underrun): the frame is silence.
    Empty,
}

#[derive(Debug)]
pub struct JitterBuffer {
    frames: BTreeMap<u64, Box<[i16]>>,
    held: u32,
    last_ts: Option<(u32, u64)>,
    cursor: Option<u64>,
    target: u32,
    transit: Option<i64>,
    jitter_q4: u32,
    /// Samples of playout time spent buffering (a burst shorter than the target delay
    /// still plays once it has waited that long).
    waited: u32,
    pub stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    pub fn new() -> JitterBuffer {
        JitterBuffer {
            frames: BTreeMap::new(),
            held: 0,
            last_ts: None,
            cursor: None,
            target: MIN_DELAY + FRAME,
            transit: None,
            jitter_q4: 0,
            waited: 0,
            stats: JitterStats::default(),
        }
    }

    /// The current target delay in samples.
    pub fn target(&self) -> u32 {
        self.target
    }

    /// Samples buffered ahead of the play cursor.
    pub fn depth(&self) -> u32 {
        match (self.cursor, self.frames.iter().next_back()) {
            (Some(c), Some((ts, f))) => (ts + f.len() as u64).saturating_sub(c) as u32,
            (None, _) => self.held,
            _ => 0,
        }
    }

    /// Interarrival jitter in samples.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Forget everything (a new source: SSRC change, re-INVITE to another device).
    pub fn reset(&mut self) {
        let stats = self.stats;
        *self = JitterBuffer::new();
        self.stats = stats;
    }

    fn unwrap_ts(&mut self, ts: u32) -> u64 {
        match self.last_ts {
            None => {
                // Start well away from zero so earlier (reordered) packets stay positive.
                let ext = (1u64 << 32) + ts as u64;
                self.last_ts = Some((ts, ext));
                ext
            }
            Some((last, last_ext)) => {
                let d = ts.wrapping_sub(last) as i32 as i64;
                let ext = (last_ext as i64 + d) as u64;
                if d > 0 {
                    self.last_ts = Some((ts, ext));
                }
                ext
            }
        }
    }

    /// Adds decoded samples starting at RTP timestamp `ts`, arrived at `arrival` (in
    /// samples on the receiver's clock).
    pub fn insert(&mut self, ts: u32, pcm: &[i16], arrival: u32) {
        if pcm.is_empty() {
            return;
        }
        let ext = self.unwrap_ts(ts);
        let transit = arrival as i64 - ts as i64;
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs().min(CAPACITY as u64) as u32;
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
            let want = (3 * self.jitter() + FRAME).clamp(MIN_DELAY, MAX_DELAY);
            if want > self.target {
                self.target = want;
            } else if want + FRAME < self.target {
                // Shrink slowly: a sample per packet.
                self.target -= 1;
            }
        }
        self.transit = Some(transit);
        if let Some(c) = self.cursor {
            if ext + (pcm.len() as u64) <= c {
                self.stats.late += 1;
                return;
            }
            if ext > c + CAPACITY as u64 {
                // Far ahead of playout: the sender jumped. Start again from here.
                self.stats.resyncs += 1;
                let stats = self.stats;
                let (target, j) = (self.target, self.jitter_q4);
                *self = JitterBuffer::new();
                self.stats = stats;
                self.target = target;
                self.jitter_q4 = j;
                self.unwrap_ts(ts);
                return self.insert(ts, pcm, arrival);
            }
        }
        if self.frames.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        self.frames.insert(ext, pcm.into());
        self.held += pcm.len() as u32;
        // Bounded: drop the oldest beyond capacity.
        while self.held > CAPACITY {
            if let Some((_, f)) = self.frames.pop_first() {
                self.held -= f.len() as u32;
                self.stats.skipped += f.len() as u64;
            }
        }
    }

    fn span(&self) -> Option<(u64, u64)> {
        let (first, _) = self.frames.iter().next()?;
        let (last, f) = self.frames.iter().next_back()?;
        Some((*first, last + f.len() as u64))
    }

    /// Fills `out` with the next samples of playout.
    pub fn pop(&mut self, out: &mut [i16]) -> Pop {
        out.fill(0);
        let Some((first, end)) = self.span() else {
            if self.cursor.take().is_some() {
                self.stats.underruns += 1;
            }
            return Pop::Empty;
        };
        let cursor = match self.cursor {
            Some(c) => c,
            None => {
                if end - first < self.target as u64 && self.waited < self.target {
                    self.waited += out.len() as u32;
                    return Pop::Empty;
                }
                self.waited = 0;
                first
            }
        };
        // Too deep: skip ahead to the target delay.
        let depth = end.saturating_sub(cursor);
        let cursor = if depth > (self.target + self.target / 2 + FRAME) as u64 {
            let to = end - self.target as u64;
            self.stats.skipped += to - cursor;
            to
        } else {
            cursor
        };
        let n = out.len() as u64;
        let (lo, hi) = (cursor, cursor + n);
        let mut covered = 0u64;
        for (&ts, f) in self.frames.range(..hi) {
            let fe = ts + f.len() as u64;
            if fe <= lo {
                continue;
            }
            let s = ts.max(lo);
            let e = fe.min(hi);
            out[(s - lo) as usize..(e - lo) as usize]
                .copy_from_slice(&f[(s - ts) as usize..(e - ts) as usize]);
            covered += e - s;
        }
        // Drop what has been played.
        while let Some((&ts, f)) = self.frames.first_key_value() {
            if ts + f.len() as u64 <= hi {
                self.held -= f.len() as u32;
                self.frames.pop_first();
            } else {
                break;
            }
        }
        self.cursor = Some(hi);
        self.stats.played += covered;
        self.stats.concealed += n - covered;
        if covered == 0 && hi >= end {
            // Ran dry: buffer again before playing.
            self.cursor = None;
            self.stats.underruns += 1;
            return Pop::Empty;
        }
        Pop::Audio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame `i` of a ramp: sample k of frame i is i*160+k (mod 2^15).
    fn frame(i: u32) -> Vec<i16> {
        (0..FRAME)
            .map(|k| ((i * FRAME + k) % 30000) as i16)
            .collect()
    }

    fn play(jb: &mut JitterBuffer, ticks: u32) -> Vec<i16> {
        let mut all = Vec::new();
        let mut out = [0i16; FRAME as usize];
        for _ in 0..ticks {
            if jb.pop(&mut out) == Pop::Audio {
                all.extend_from_slice(&out);
            }
        }
        all
    }

    #[test]
    fn in_order_stream_plays_unchanged() {
        let mut jb = JitterBuffer::new();
        let mut got = Vec::new();
        let mut out = [0i16; 160];
        let base = u32::MAX - 10 * FRAME; // timestamps wrap during the test
        for i in 0..100 {
            jb.insert(base.wrapping_add(i * FRAME), &frame(i), i * FRAME);
            if jb.pop(&mut out) == Pop::Audio {
                got.extend_from_slice(&out);
            }
        }
        got.extend(play(&mut jb, 5));
        let want: Vec<i16> = (0..100).flat_map(frame).collect();
        assert_eq!(got, want);
        assert_eq!(jb.stats.concealed, 0);
    }

    #[test]
    fn reordering_within_the_delay_is_repaired() {
        let mut jb = JitterBuffer::new();
        // Swap every pair, and move every 10th frame two places later.
        let mut order: Vec<u32> = (0..200).collect();
        for c in order.chunks_mut(2) {
            c.swap(0, 1);
        }
        for i in (10..190).step_by(10) {
            order.swap(i, i + 2);
        }
        let mut got = Vec::new();
        let mut out = [0i16; 160];
        for (k, &i) in order.iter().enumerate() {
            jb.insert(i * FRAME, &frame(i), k as u32 * FRAME);
            if jb.pop(&mut out) == Pop::Audio {
                got.extend_from_slice(&out);
            }
        }
        got.extend(play(&mut jb, 10));
        let want: Vec<i16> = (0..200).flat_map(frame).collect();
        assert_eq!(jb.stats.late, 0, "{:?}", jb.stats);
        assert_eq!(got, want);
    }

    #[test]
    fn duplicates_are_dropped_and_loss_is_concealed() {
        let mut jb = JitterBuffer::new();
        let mut out = [0i16; 160];
        let mut got = Vec::new();
        for i in 0..100u32 {
            // 10 % loss; every packet that arrives arrives twice.
            if i % 10 != 3 {
                jb.insert(i * FRAME, &frame(i), i * FRAME);
                jb.insert(i * FRAME, &frame(i), i * FRAME + 5);
            }
            if jb.pop(&mut out) == Pop::Audio {
                got.extend_from_slice(&out);
            }
        }
        got.extend(play(&mut jb, 5));
        assert_eq!(jb.stats.duplicate, 90);
        assert_eq!(jb.stats.concealed, 10 * FRAME as u64);
        assert_eq!(
            got.len(),
            100 * FRAME as usize,
            "playout keeps time through loss"
        );
        // Lost frames play as silence, the rest are intact.
        for i in 0..100u32 {
            let s = &got[(i * FRAME) as usize..((i + 1) * FRAME) as usize];
            if i % 10 == 3 {
                assert!(s.iter().all(|&x| x == 0));
            } else {
                assert_eq!(s, &frame(i)[..]);
            }
        }
    }

    #[test]
    fn thirty_ms_packets_through_a_twenty_ms_clock() {
        let mut jb = JitterBuffer::new();
        let mut out = [0i16; 160];
        let mut got = Vec::new();
        let ramp: Vec<i16> = (0..240 * 100).map(|k| (k % 30000) as i16).collect();
        let mut next_pkt = 0u32;
        // 3 ticks of 20 ms = 2 packets of 30 ms.
        for tick in 0..150u32 {
            while next_pkt * 240 <= tick * 160 && next_pkt < 100 {
                let s = (next_pkt * 240) as usize;
                jb.insert(next_pkt * 240, &ramp[s..s + 240], next_pkt * 240);
                next_pkt += 1;
            }
            if jb.pop(&mut out) == Pop::Audio {
                got.extend_from_slice(&out);
            }
        }
        got.extend(play(&mut jb, 5));
        assert_eq!(jb.stats.concealed, 0, "{:?}", jb.stats);
        assert_eq!(&got[..], &ramp[..got.len()]);
        assert!(got.len() >= ramp.len() - 160);
    }

    #[test]
    fn adapts_to_jitter_and_stays_bounded() {
        let mut jb = JitterBuffer::new();
        let quiet = jb.target();
        let mut out = [0i16; 160];
        // Arrivals vary by up to 60 ms.
        for i in 0..500u32 {
            let wobble = [0, 480, 120, 360, 240][(i % 5) as usize];
            jb.insert(i * FRAME, &frame(i), i * FRAME + wobble);
            jb.pop(&mut out);
        }
        assert!(
            jb.target() > quiet + 2 * FRAME,
            "target {} from {}",
            jb.target(),
            quiet
        );
        assert!(jb.target() <= MAX_DELAY);
        // A sender that floods (no pops) never grows the buffer past its capacity.
        let mut jb = JitterBuffer::new();
        for i in 0..10_000u32 {
            jb.insert(i * FRAME, &frame(i), 0);
        }
        assert!(jb.depth() <= CAPACITY);
        // A sender that jumps far ahead resynchronises.
        let mut jb = JitterBuffer::new();
        for i in 0..10u32 {
            jb.insert(i * FRAME, &frame(i), i * FRAME);
            jb.pop(&mut out);
        }
        jb.insert(1_000_000, &frame(1), 10 * FRAME);
        assert_eq!(jb.stats.resyncs, 1);
    }

    #[test]
    fn a_short_burst_plays_after_waiting_the_target_delay() {
        let mut jb = JitterBuffer::new();
        // A high jitter estimate makes the target larger than the burst.
        for i in 0..20u32 {
            jb.insert(
                i * FRAME,
                &frame(i),
                i * FRAME + if i % 2 == 0 { 0 } else { 2000 },
            );
        }
        play(&mut jb, 60);
        assert!(jb.target() > 5 * FRAME);
        // Then a 3-packet burst after a long pause still comes out.
        for i in 100..103u32 {
            jb.insert(i * FRAME, &frame(i), i * FRAME + 40_000);
        }
        let got = play(&mut jb, 60);
        assert_eq!(got, (100..103).flat_map(frame).collect::<Vec<_>>());
    }

    #[test]
    fn late_packets_are_dropped() {
        let mut jb = JitterBuffer::new();
        let mut out = [0i16; 160];
        for i in 0..20u32 {
            if i != 5 {
                jb.insert(i * FRAME, &frame(i), i * FRAME);
            }
            jb.pop(&mut out);
        }
        jb.insert(5 * FRAME, &frame(5), 20 * FRAME);
        assert_eq!(jb.stats.late, 1);
    }
}
