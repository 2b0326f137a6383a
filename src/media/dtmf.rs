//! DTMF, sans-IO: RFC 4733 telephone-event payloads (decode, encode, and a receiver that
//! reports each key press exactly once despite redundant start and end packets), and
//! an in-band Goertzel detector for peers that offer no telephone-event.

/// A DTMF key: 0-9, *, #, A-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(pub char);

impl Digit {
    /// From an RFC 4733 event code (0-15).
    pub fn from_event(e: u8) -> Option<Digit> {
        "0123456789*#ABCD".chars().nth(e as usize).map(Digit)
    }

    pub fn event(self) -> u8 {
        "0123456789*#ABCD".find(self.0).unwrap_or(0) as u8
    }
}

/// One telephone-event payload (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(p: &[u8]) -> Option<TelephoneEvent> {
        if p.len() < 4 {
            return None;
        }
        Some(TelephoneEvent {
            event: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3F,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    pub fn encode(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (self.end as u8) << 7 | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Turns a stream of telephone-event packets into key presses, each reported once: on
/// the first packet of an event (a new RTP timestamp), ignoring its updates and its
/// (usually triplicated) end packets. An end packet whose start was lost still reports.
#[derive(Debug, Default)]
pub struct Rfc4733Receiver {
    last: Option<(u32, u8)>,
}

impl Rfc4733Receiver {
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<Digit> {
        let ev = TelephoneEvent::parse(payload)?;
        let digit = Digit::from_event(ev.event)?;
        if self.last == Some((rtp_timestamp, ev.event)) {
            return None;
        }
        self.last = Some((rtp_timestamp, ev.event));
        Some(digit)
    }
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Samples per analysis block at 8 kHz (the classic N = 205, about 25.6 ms).
pub const BLOCK: usize = 205;

/// The power at each DTMF frequency (rows, then columns) in `block`: the eight
/// Goertzel filters run side by side in one pass (independent lanes the compiler
/// vectorises; each lane's arithmetic is the single filter's, in the same order).
fn goertzel8(block: &[f32]) -> [f32; 8] {
    let n = block.len() as f32;
    let mut coeff = [0f32; 8];
    for (c, f) in coeff.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
        let k = (0.5 + n * f / 8000.0).floor();
        *c = 2.0 * (2.0 * std::f32::consts::PI * k / n).cos();
    }
    let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
    for &x in block {
        for j in 0..8 {
            let s0 = x + coeff[j] * s1[j] - s2[j];
            s2[j] = s1[j];
            s1[j] = s0;
        }
    }
    let mut p = [0f32; 8];
    for j in 0..8 {
        p[j] = s1[j] * s1[j] + s2[j] * s2[j] - coeff[j] * s1[j] * s2[j];
    }
    p
}

/// In-band DTMF detection on 8 kHz linear PCM. A key is reported once when two
/// consecutive blocks agree, and again only after a block without it (so a held key is
/// one press). Checks: minimum level, one row and one column tone clearly above the
/// others, twist within limits, and the two tones carrying most of the block's energy
/// (which rejects speech and music).
#[derive(Debug, Default)]
pub struct GoertzelDetector {
    buf: Vec<f32>,
    candidate: Option<char>,
    reported: Option<char>,
}

impl GoertzelDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds samples; returns the keys newly pressed.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Digit> {
        let mut out = Vec::new();
        for &s in samples {
            self.buf.push(s as f32);
            if self.buf.len() == BLOCK {
                let d = Self::classify(&self.buf);
                self.buf.clear();
                match d {
                    Some(k) if self.candidate == Some(k) && self.reported != Some(k) => {
                        self.reported = Some(k);
                        out.push(Digit(k));
                    }
                    Some(_) => {}
                    None => self.reported = None,
                }
                self.candidate = d;
            }
        }
        out
    }

    fn classify(block: &[f32]) -> Option<char> {
        let energy: f32 = block.iter().map(|x| x * x).sum();
        // About -30 dBm0: quieter blocks are silence.
        if energy < block.len() as f32 * 300.0 * 300.0 {
            return None;
        }
        let p = goertzel8(block);
        let (rows, cols) = p.split_at(4);
        let (ri, &r) = rows.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        let (ci, &c) = cols.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        // Each tone well above the other tones of its group.
        if rows
            .iter()
            .enumerate()
            .any(|(i, &v)| i != ri && v * 6.3 > r)
            || cols
                .iter()
                .enumerate()
                .any(|(i, &v)| i != ci && v * 6.3 > c)
        {
            return None;
        }
        // Twist: column (high group) at most 8 dB below or 4 dB above the row.
        if c < r / 6.3 || c > r * 2.5 {
            return None;
        }
        // The two tones carry most of the energy (Goertzel power ≈ (N·A/2)² per tone,
        // block energy ≈ N·A²/2 per tone): anything else is speech, music or noise.
        let tone_energy = (r + c) * 2.0 / block.len() as f32;
        if tone_energy < 0.6 * energy {
            return None;
        }
        Some(KEYS[ri][ci])
    }
}

/// Sends one key press as RFC 4733 telephone-events, one call per packet interval: the
/// first packet has the marker bit; all share the event's timestamp; the duration grows;
/// the end packet is sent three times (section 2.5.1.4) with the final duration.
#[derive(Debug, Clone)]
pub struct Rfc4733Sender {
    event: u8,
    /// Duration of the tone in samples.
    total: u16,
    step: u16,
    sent: u16,
    ends_left: u8,
    started: bool,
}

/// One packet to send: its payload and whether it carries the marker bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub payload: [u8; 4],
    pub marker: bool,
    pub end: bool,
}

impl Rfc4733Sender {
    /// A press of `digit` lasting `ms` milliseconds, updated every `ptime_ms`.
    pub fn new(digit: Digit, ms: u32, ptime_ms: u32) -> Rfc4733Sender {
        Rfc4733Sender {
            event: digit.event(),
            total: (ms * 8).min(u16::MAX as u32) as u16,
            step: (ptime_ms * 8) as u16,
            sent: 0,
            ends_left: 3,
            started: false,
        }
    }

    /// The next packet, or `None` when the press is over.
    pub fn next_packet(&mut self) -> Option<EventPacket> {
        if self.ends_left == 0 {
            return None;
        }
        let marker = !self.started;
        self.started = true;
        self.sent = (self.sent + self.step).min(self.total);
        let end = self.sent >= self.total;
        if end {
            self.ends_left -= 1;
        }
        let ev = TelephoneEvent {
            event: self.event,
            end,
            volume: 10,
            duration: self.sent,
        };
        Some(EventPacket {
            payload: ev.encode(),
            marker,
            end,
        })
    }
}

/// Writes the two tones of a key (in-band DTMF for peers without telephone-event),
/// each at about -7 dBm0, continuing from sample `offset` of the tone.
pub fn tone(digit: Digit, offset: u32, out: &mut [i16]) {
    let Some((r, c)) = KEYS
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == digit.0).map(|c| (r, c)))
    else {
        out.fill(0);
        return;
    };
    let (f1, f2) = (ROWS[r], COLS[c]);
    for (i, s) in out.iter_mut().enumerate() {
        let t = (offset as usize + i) as f32 / 8000.0;
        let v = (2.0 * std::f32::consts::PI * f1 * t).sin()
            + (2.0 * std::f32::consts::PI * f2 * t).sin();
        *s = (v * 7000.0) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(key: char, ms: usize, amp: f32, noise: f32, seed: &mut u64) -> Vec<i16> {
        let (r, c) = (0..4)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .find(|&(r, c)| KEYS[r][c] == key)
            .unwrap();
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                let n = ((*seed % 2001) as f32 / 1000.0 - 1.0) * noise;
                let v = amp
                    * ((2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
                        + (2.0 * std::f32::consts::PI * COLS[c] * t).sin())
                    + n;
                v.clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn detects_all_16_keys_once_each_with_noise() {
        let mut seed = 7u64;
        for key in "0123456789*#ABCD".chars() {
            let mut d = GoertzelDetector::new();
            let mut got = Vec::new();
            got.extend(d.push(&tone(key, 40, 0.0, 300.0, &mut seed)));
            got.extend(d.push(&tone(key, 120, 6000.0, 600.0, &mut seed)));
            got.extend(d.push(&tone(key, 60, 0.0, 300.0, &mut seed)));
            got.extend(d.push(&tone(key, 100, 6000.0, 600.0, &mut seed)));
            assert_eq!(got, vec![Digit(key), Digit(key)], "{key}: two presses");
        }
    }

    #[test]
    fn speech_like_audio_gives_no_false_positives() {
        // Vowel-like signals: harmonics of a moving 100-250 Hz pitch shaped by formants,
        // plus noise, for 20 seconds.
        let mut d = GoertzelDetector::new();
        let mut seed = 99u64;
        let mut phase = [0f32; 40];
        let mut out = Vec::new();
        let formants = [
            [700.0, 1220.0, 2600.0],
            [300.0, 2300.0, 3000.0],
            [500.0, 900.0, 2400.0],
            [250.0, 850.0, 2100.0],
        ];
        for i in 0..160_000 {
            let t = i as f32 / 8000.0;
            let f0 = 175.0 + 75.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
            let f = formants[(i / 2400) % 4];
            let mut v = 0.0;
            for (h, ph) in phase.iter_mut().enumerate() {
                let fh = f0 * (h + 1) as f32;
                if fh > 3800.0 {
                    break;
                }
                *ph += 2.0 * std::f32::consts::PI * fh / 8000.0;
                let gain: f32 = f
                    .iter()
                    .map(|&fc| 1.0 / (1.0 + ((fh - fc) / 120.0).powi(2)))
                    .sum();
                v += gain * ph.sin();
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = ((seed % 2001) as f32 / 1000.0 - 1.0) * 200.0;
            out.push((v * 2500.0 + n).clamp(-32768.0, 32767.0) as i16);
        }
        // The audio is loud enough to be analysed (not rejected as silence)...
        let loud = out
            .chunks(BLOCK)
            .filter(|b| {
                b.iter().map(|&x| (x as f32).powi(2)).sum::<f32>() >= BLOCK as f32 * 300.0 * 300.0
            })
            .count();
        assert!(loud * 10 >= out.len() / BLOCK * 9, "{loud} loud blocks");
        // ...and never taken for a key.
        assert!(d.push(&out).is_empty());
    }

    #[test]
    fn rfc4733_reports_each_press_once() {
        let mut r = Rfc4733Receiver::default();
        let start = TelephoneEvent {
            event: 5,
            end: false,
            volume: 10,
            duration: 160,
        }
        .encode();
        let update = TelephoneEvent {
            event: 5,
            end: false,
            volume: 10,
            duration: 320,
        }
        .encode();
        let end = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        }
        .encode();
        let mut got = Vec::new();
        for (ts, p) in [
            (1000, start),
            (1000, update),
            (1000, end),
            (1000, end),
            (1000, end),
        ] {
            got.extend(r.on_packet(ts, &p));
        }
        // Next press of the same key: new timestamp; its start packets were lost.
        for p in [end, end, end] {
            got.extend(r.on_packet(5000, &p));
        }
        let hash = TelephoneEvent {
            event: 11,
            end: false,
            volume: 10,
            duration: 160,
        }
        .encode();
        got.extend(r.on_packet(9000, &hash));
        assert_eq!(got, vec![Digit('5'), Digit('5'), Digit('#')]);
        assert_eq!(r.on_packet(9000, &[1, 2]), None, "short payload");
        assert_eq!(
            TelephoneEvent::parse(&end),
            Some(TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            })
        );
    }

    #[test]
    fn rfc4733_sender_end_packets_are_sent_three_times() {
        let mut tx = Rfc4733Sender::new(Digit('7'), 100, 20);
        let pkts: Vec<EventPacket> = std::iter::from_fn(|| tx.next_packet()).collect();
        assert_eq!(
            pkts.len(),
            5 + 2,
            "4 updates, then the end packet three times"
        );
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        let evs: Vec<TelephoneEvent> = pkts
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert_eq!(
            evs.iter().map(|e| e.duration).collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
        assert!(evs.iter().all(|e| e.event == 7));
        // Our own receiver reports the press once.
        let mut rx = Rfc4733Receiver::default();
        let got: Vec<Digit> = pkts
            .iter()
            .filter_map(|p| rx.on_packet(4242, &p.payload))
            .collect();
        assert_eq!(got, vec![Digit('7')]);
    }

    #[test]
    fn generated_tones_are_detected() {
        for k in "0123456789*#ABCD".chars() {
            let mut det = GoertzelDetector::new();
            let mut buf = vec![0i16; 800];
            super::tone(Digit(k), 0, &mut buf);
            let mut got = det.push(&buf);
            got.extend(det.push(&[0i16; 800]));
            assert_eq!(got, vec![Digit(k)], "key {k}");
        }
    }
}
