//! The media of one call, sans-IO: its legs (one per SIP or browser party), what each
//! leg hears (prompts, another leg, a conference mix), DTMF from all three sources
//! reported once, RTCP, recording, and video pass-through. The driver feeds it packets
//! and a 20 ms tick with `now`, and carries out the `Out`s it returns.
//!
//! Paths:
//! - **Alone** (IVR): a leg's audio is decoded through the jitter buffer (DTMF
//!   detection, recording) and it hears its play queue (silence when idle).
//! - **Bridge(a, b)**: packets are relayed as they arrive, without decoding when both
//!   legs use the same codec and transcoded µ-law ↔ A-law when not; telephone-events
//!   pass across (as RFC 4733 when the other leg has it, as in-band tones when not);
//!   video RTP and RTCP are relayed untouched.
//! - **Conference**: every leg hears the sum of the others, mixed on the tick.
//! - **Mix**: each listed leg hears the sum of the legs listed for it, mixed on the
//!   tick; a leg nobody lists is heard by no one (a supervisor listening: their
//!   microphone is dropped here, whatever their page sends). Changing who hears whom is
//!   a new list, with no renegotiation.

use crate::media::dtmf::{self, Digit, GoertzelDetector, Rfc4733Receiver, Rfc4733Sender};
use crate::media::g711;
use crate::media::jitter::{JitterBuffer, FRAME};
use crate::media::keyframe::Need;
use crate::media::player::{Item, Player};
use crate::media::recorder::Recorder;
use crate::media::rtp::{self, Arrival, RtpSender, SourceStats};
use crate::sdp::{Codec, Direction};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod video;
pub use video::{codec_of as video_codec_of, is_rtcp as is_video_rtcp, VideoLeg, VideoReport};

pub type LegId = usize;

/// Who hears whom: (listener, the legs it hears).
pub type Hears = Vec<(LegId, Vec<LegId>)>;

/// How often each leg sends RTCP (RFC 3550 minimum of 5 s).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// What a leg negotiated, from SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegParams {
    pub codec: Codec,
    pub pt: u8,
    pub telephone_event: Option<u8>,
    pub ptime_ms: u32,
    /// Our direction towards this leg.
    pub direction: Direction,
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    /// What the leg negotiated for video, when video was accepted on it.
    pub video: Option<VideoLeg>,
}

impl LegParams {
    pub fn from_sdp(n: &crate::sdp::Negotiated) -> LegParams {
        let a = &n.audio;
        LegParams {
            codec: a.codec,
            pt: a.pt,
            telephone_event: a.telephone_event,
            ptime_ms: a.ptime_ms,
            direction: a.direction,
            remote_rtp: a.remote_rtp,
            remote_rtcp: a.remote_rtcp,
            rtcp_mux: a.rtcp_mux,
            video: n.video.as_ref().map(VideoLeg::from_sdp),
        }
    }
}

/// Which way a key press came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfVia {
    Rfc4733,
    Info,
    InBand,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit {
        leg: LegId,
        digit: char,
        via: DtmfVia,
    },
    /// A queued item finished (`interrupted`: by barge-in or stop).
    PlayDone {
        leg: LegId,
        id: u64,
        interrupted: bool,
    },
    /// Symmetric RTP: the leg's media now goes where its packets come from.
    Latched {
        leg: LegId,
        addr: SocketAddr,
    },
    /// The remote stream restarted with a new SSRC.
    NewSource {
        leg: LegId,
        ssrc: u32,
    },
    RecordingError {
        error: String,
    },
    /// Ask the leg for a full picture by SIP `INFO` (RFC 5168): it negotiated neither
    /// PLI nor FIR.
    PictureFastUpdate {
        leg: LegId,
    },
}

/// Which socket of a leg a packet goes out of or came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Rtp,
    Rtcp,
    VideoRtp,
    VideoRtcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Send {
        leg: LegId,
        port: Port,
        to: SocketAddr,
        data: Bytes,
    },
    Event(MediaEvent),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Alone,
    Bridge(LegId, LegId),
    Conference,
    /// (listener, the legs it hears).
    Mix(Hears),
}

enum Outgoing {
    Event(Rfc4733Sender, u32),
    Tone(Digit, u32),
}

struct Leg {
    p: LegParams,
    rtp_to: Option<SocketAddr>,
    rtcp_to: Option<SocketAddr>,
    latch: Latch,
    video_to: Option<SocketAddr>,
    video_rtcp_to: Option<SocketAddr>,
    vs: video::VideoState,
    tx: RtpSender,
    src: SourceStats,
    packets_at_last_report: u32,
    next_rtcp: Instant,
    jb: JitterBuffer,
    rfc4733: Rfc4733Receiver,
    goertzel: GoertzelDetector,
    player: Player,
    /// Digits to send to this leg.
    dtmf_out: VecDeque<Digit>,
    sending: Option<Outgoing>,
    /// In-band tone overriding relayed audio: (digit, samples done, samples total).
    tone_over_relay: Option<(Digit, u32, u32)>,
    /// Generated audio waiting to fill a packet (ptime other than 20 ms).
    pending: Vec<i16>,
    /// This tick's decoded audio from the leg.
    heard: Vec<i16>,
    last_digit: Option<(char, Instant, DtmfVia)>,
    pub ignored: u64,
}

impl Leg {
    fn new(p: LegParams, now: Instant) -> Leg {
        let (rtp_to, rtcp_to) = (p.remote_rtp, p.remote_rtcp);
        let (video_to, video_rtcp_to) = p
            .video
            .as_ref()
            .map_or((None, None), |v| (v.remote_rtp, v.remote_rtcp));
        let via = p
            .video
            .as_ref()
            .map_or(crate::media::keyframe::Via::Info, |v| v.via);
        let tx = RtpSender::random();
        // Video goes out under its own SSRC, distinct from the audio's (BUNDLE).
        let vs = video::VideoState::new(via, tx.ssrc ^ 0x5654_0000 | 1);
        Leg {
            p,
            rtp_to,
            rtcp_to,
            latch: Latch::new(now),
            video_to,
            video_rtcp_to,
            vs,
            tx,
            src: SourceStats::default(),
            packets_at_last_report: 0,
            next_rtcp: now + Duration::from_millis(2500),
            jb: JitterBuffer::new(),
            rfc4733: Rfc4733Receiver::default(),
            goertzel: GoertzelDetector::new(),
            player: Player::new(),
            dtmf_out: VecDeque::new(),
            sending: None,
            tone_over_relay: None,
            pending: Vec::with_capacity(480),
            heard: vec![0; FRAME as usize],
            last_digit: None,
            ignored: 0,
        }
    }

    fn sends(&self) -> bool {
        self.p.direction.sends()
    }

    /// Whether `from` is on the host this leg's audio comes from (or is signalled at).
    fn same_host(&self, from: SocketAddr) -> bool {
        self.rtp_to.is_some_and(|a| a.ip() == from.ip())
    }

    fn encode(&self, pcm: &[i16]) -> Bytes {
        let mut v = Vec::with_capacity(pcm.len());
        match self.p.codec {
            Codec::Pcmu => v.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            Codec::Pcma => v.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
        }
        Bytes::from(v)
    }
}

/// How long after a leg starts (or moves) another address may be learnt.
pub const LATCH_WINDOW: Duration = Duration::from_secs(10);
/// How many in-sequence packets of one source another address must send first.
pub const LATCH_RUN: u8 = 5;

#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// From the leg's address.
    Known,
    /// From a new address, now learnt.
    Learn,
    Drop,
}

/// Which sources a leg's RTP is taken from.
struct Latch {
    since: Instant,
    /// The leg's address has sent: the stream is established and never moves.
    established: bool,
    /// A run of packets from another address: (address, SSRC, last sequence, length).
    candidate: Option<(SocketAddr, u32, u16, u8)>,
}

impl Latch {
    fn new(now: Instant) -> Latch {
        Latch {
            since: now,
            established: false,
            candidate: None,
        }
    }

    fn admit(
        &mut self,
        now: Instant,
        to: Option<SocketAddr>,
        from: SocketAddr,
        h: &rtc::rtp::header::Header,
    ) -> Admit {
        if to == Some(from) {
            self.established = true;
            self.candidate = None;
            return Admit::Known;
        }
        if self.established || now.saturating_duration_since(self.since) >= LATCH_WINDOW {
            return Admit::Drop;
        }
        let run = match self.candidate {
            Some((a, ssrc, seq, n))
                if a == from && ssrc == h.ssrc && seq.wrapping_add(1) == h.sequence_number =>
            {
                n + 1
            }
            _ => 1,
        };
        if run >= LATCH_RUN {
            self.established = true;
            self.candidate = None;
            return Admit::Learn;
        }
        self.candidate = Some((from, h.ssrc, h.sequence_number, run));
        Admit::Drop
    }
}

/// Counters for one leg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegReport {
    pub sent: u32,
    pub received: u32,
    pub lost: i64,
    pub jitter_ms: u32,
    pub concealed_samples: u64,
    pub ssrc_changes: u32,
}

pub struct MediaSession {
    legs: Vec<Option<Leg>>,
    mode: Mode,
    recorder: Option<Recorder>,
    /// A voicemail: what the caller says, on both channels.
    voicemail: Option<Recorder>,
    start: Instant,
    /// The wall clock at `start` as a 64-bit NTP timestamp (RTCP sender reports and
    /// round trips): an input, 0 unless [`MediaSession::wall_clock`] sets it.
    ntp_at_start: u64,
    cname: String,
    /// How close in time a digit from another source counts as the same press.
    pub dedupe_window: Duration,
}

fn decode(pt: u8, payload: &[u8], out: &mut Vec<i16>) -> bool {
    out.clear();
    match pt {
        0 => g711::decode_ulaw(payload, out),
        8 => g711::decode_alaw(payload, out),
        _ => return false,
    }
    true
}

impl MediaSession {
    pub fn new(now: Instant, cname: String) -> MediaSession {
        MediaSession {
            legs: Vec::new(),
            mode: Mode::Alone,
            recorder: None,
            voicemail: None,
            start: now,
            ntp_at_start: 0,
            cname,
            dedupe_window: Duration::from_millis(500),
        }
    }

    /// The wall clock at the session's start, as a 64-bit NTP timestamp (the driver
    /// reads it once; the session counts on from `now`).
    pub fn wall_clock(mut self, ntp_at_start: u64) -> MediaSession {
        self.ntp_at_start = ntp_at_start;
        self
    }

    /// The NTP timestamp at `now`.
    fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.start);
        let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
        self.ntp_at_start
            .wrapping_add(d.as_secs() << 32)
            .wrapping_add(frac)
    }

    pub fn add_leg(&mut self, now: Instant, p: LegParams) -> LegId {
        self.legs.push(Some(Leg::new(p, now)));
        self.legs.len() - 1
    }

    /// Adds a leg under the id its owner chose (ids are never reused in a session).
    pub fn add_leg_at(&mut self, now: Instant, id: LegId, p: LegParams) {
        if self.legs.len() <= id {
            self.legs.resize_with(id + 1, || None);
        }
        self.legs[id] = Some(Leg::new(p, now));
    }

    /// New parameters after a re-INVITE or UPDATE (hold, resume, new address or codec).
    pub fn update_leg(&mut self, now: Instant, leg: LegId, p: LegParams) {
        if let Some(l) = self.leg_mut(leg) {
            if p.remote_rtp != l.p.remote_rtp {
                l.rtp_to = p.remote_rtp;
                l.rtcp_to = p.remote_rtcp;
                l.latch = Latch::new(now);
            }
            let mut need = None;
            if let Some(v) = &p.video {
                l.video_to = v.remote_rtp.or(l.video_to);
                l.video_rtcp_to = v.remote_rtcp.or(l.video_rtcp_to);
                l.vs.ask.set_via(v.via);
                // A session refresh (the same media again) needs no new picture.
                if !l.p.direction.sends() && p.direction.sends() {
                    need = Some(Need::Resume);
                } else if p.direction != l.p.direction || l.p.video.as_ref() != Some(v) {
                    need = Some(Need::Reinvite);
                }
            }
            l.p = p;
            // The renegotiated leg's sender may restart its encoder, and its own
            // decoder may have been starved (hold): ask both ends for a full picture.
            if let Some(why) = need {
                l.vs.ask.need(now, why);
                if let Some(peer) = self.peer_of(leg) {
                    if let Some(pl) = self.leg_mut(peer).filter(|pl| pl.p.video.is_some()) {
                        pl.vs.ask.need(now, why);
                    }
                }
            }
        }
    }

    pub fn remove_leg(&mut self, leg: LegId) {
        if let Some(slot) = self.legs.get_mut(leg) {
            *slot = None;
        }
        match &mut self.mode {
            Mode::Bridge(a, b) if *a == leg || *b == leg => self.unbridge(),
            Mode::Mix(hears) => {
                hears.retain(|(l, _)| *l != leg);
                for (_, from) in hears.iter_mut() {
                    from.retain(|f| *f != leg);
                }
            }
            _ => {}
        }
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        self.legs.get_mut(leg).and_then(|l| l.as_mut())
    }

    /// Leg `leg`'s parameters now.
    pub fn params(&self, leg: LegId) -> Option<&LegParams> {
        Some(&self.legs.get(leg)?.as_ref()?.p)
    }

    /// The ids of the legs in the session now.
    pub fn leg_ids(&self) -> Vec<LegId> {
        (0..self.legs.len())
            .filter(|&i| self.legs[i].is_some())
            .collect()
    }

    pub fn report(&self, leg: LegId) -> Option<LegReport> {
        let l = self.legs.get(leg)?.as_ref()?;
        Some(LegReport {
            sent: l.tx.packets,
            received: l.src.received,
            lost: l.src.lost().max(0),
            jitter_ms: l.src.jitter() / 8,
            concealed_samples: l.jb.stats.concealed,
            ssrc_changes: l.src.ssrc_changes,
        })
    }

    pub fn play(&mut self, leg: LegId, item: Item) {
        if let Some(l) = self.leg_mut(leg) {
            l.player.enqueue(item);
        }
    }

    pub fn stop_playback(&mut self, leg: LegId, out: &mut Vec<Out>) {
        if let Some(l) = self.leg_mut(leg) {
            for id in l.player.stop() {
                out.push(Out::Event(MediaEvent::PlayDone {
                    leg,
                    id,
                    interrupted: true,
                }));
            }
        }
    }

    /// Queues key presses to send to a leg (RFC 4733 when negotiated, else in-band).
    pub fn send_digits(&mut self, leg: LegId, digits: &str) {
        if let Some(l) = self.leg_mut(leg) {
            l.dtmf_out.extend(
                digits
                    .chars()
                    .filter(|c| "0123456789*#ABCD".contains(*c))
                    .map(Digit),
            );
        }
    }

    pub fn bridge(&mut self, a: LegId, b: LegId) {
        self.unbridge();
        self.mode = Mode::Bridge(a, b);
        // Each side's decoder starts on the other's stream: a keyframe from both (at
        // the next tick, which has the time).
        let both_video = [a, b].iter().all(|&l| {
            self.legs
                .get(l)
                .and_then(|l| l.as_ref())
                .is_some_and(|l| l.p.video.is_some())
        });
        if both_video {
            for l in [a, b] {
                if let Some(l) = self.leg_mut(l) {
                    l.vs.pending = Some(if l.vs.bridged_before {
                        Need::Transfer
                    } else {
                        Need::Start
                    });
                    l.vs.bridged_before = true;
                }
            }
        }
    }

    pub fn conference(&mut self) {
        self.unbridge();
        self.mode = Mode::Conference;
    }

    /// Each `(listener, sources)`: the listener hears the sum of the sources (itself
    /// never); legs not listed hear their play queue.
    pub fn mix(&mut self, hears: Hears) {
        self.unbridge();
        self.mode = Mode::Mix(hears);
    }

    pub fn unbridge(&mut self) {
        for l in self.legs.iter_mut().flatten() {
            l.tx.end_relay();
        }
        self.mode = Mode::Alone;
    }

    pub fn is_bridged(&self) -> bool {
        matches!(self.mode, Mode::Bridge(..))
    }

    /// Starts recording: leg 0 (the caller) left, what it hears right.
    pub fn record(&mut self, rec: Recorder) {
        self.recorder = Some(rec);
    }

    /// Starts recording what the caller says (a voicemail), besides any call recording.
    pub fn start_voicemail(&mut self, rec: Recorder) {
        self.voicemail = Some(rec);
    }

    /// Ends the voicemail: its file and length in seconds.
    pub fn stop_voicemail(&mut self) -> Option<std::io::Result<(std::path::PathBuf, f64)>> {
        self.voicemail.take().map(|r| {
            let secs = r.seconds();
            r.finish().map(|p| (p, secs)).map_err(std::io::Error::other)
        })
    }

    pub fn stop_recording(&mut self) -> Option<std::io::Result<std::path::PathBuf>> {
        self.recorder
            .take()
            .map(|r| r.finish().map_err(std::io::Error::other))
    }

    fn samples_since_start(&self, now: Instant) -> u32 {
        (now.saturating_duration_since(self.start).as_micros() * 8 / 1000) as u32
    }

    fn peer_of(&self, leg: LegId) -> Option<LegId> {
        match self.mode {
            Mode::Bridge(a, b) if a == leg => Some(b),
            Mode::Bridge(a, b) if b == leg => Some(a),
            _ => None,
        }
    }

    /// Who hears `leg` in a mix (a supervisor listening, whispering, barging): its
    /// key presses go to them as RFC 4733 or tones, since the mix carries audio only
    /// (a press in-band is already in what they hear).
    fn mix_listeners(&self, leg: LegId) -> Vec<LegId> {
        match &self.mode {
            Mode::Mix(hears) => hears
                .iter()
                .filter(|(l, from)| *l != leg && from.contains(&leg))
                .map(|(l, _)| *l)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn report_digit(
        &mut self,
        now: Instant,
        leg: LegId,
        digit: Digit,
        via: DtmfVia,
        out: &mut Vec<Out>,
    ) {
        let window = self.dedupe_window;
        let Some(l) = self.leg_mut(leg) else { return };
        if let Some((d, at, v)) = l.last_digit {
            // The same press seen a second way (RFC 4733 and in-band, or INFO too).
            if d == digit.0 && v != via && now.saturating_duration_since(at) < window {
                return;
            }
        }
        l.last_digit = Some((digit.0, now, via));
        for id in l.player.barge_in() {
            out.push(Out::Event(MediaEvent::PlayDone {
                leg,
                id,
                interrupted: true,
            }));
        }
        out.push(Out::Event(MediaEvent::Digit {
            leg,
            digit: digit.0,
            via,
        }));
    }

    /// A key press from SIP INFO.
    pub fn on_info_digit(&mut self, now: Instant, leg: LegId, digit: char, out: &mut Vec<Out>) {
        if "0123456789*#ABCD".contains(digit) {
            self.report_digit(now, leg, Digit(digit), DtmfVia::Info, out);
            let to = self.peer_of(leg).into_iter().chain(self.mix_listeners(leg));
            for peer in to.collect::<Vec<_>>() {
                self.send_digits(peer, &digit.to_string());
            }
        }
    }

    /// A packet on a leg's RTP port (RTCP too under rtcp-mux).
    pub fn on_rtp(
        &mut self,
        now: Instant,
        leg: LegId,
        from: SocketAddr,
        data: Bytes,
        out: &mut Vec<Out>,
    ) {
        if rtp::is_rtcp(&data) {
            return self.on_rtcp(now, leg, from, data, out);
        }
        let arrival = self.samples_since_start(now);
        let peer = self.peer_of(leg);
        let decode_needed = !matches!(self.mode, Mode::Bridge(..)) || self.recorder.is_some();
        let Some(l) = self.leg_mut(leg) else { return };
        let Some(pkt) = rtp::parse(data) else {
            l.ignored += 1;
            return;
        };
        // Symmetric RTP (RFC 4961), hardened against hijack: packets from the address
        // in the SDP are always the leg's; another address (a NAT's) is learnt only
        // early in the call, before the signalled one has spoken, and only after a
        // run of in-sequence packets of one source. Anything else is dropped.
        match l.latch.admit(now, l.rtp_to, from, &pkt.header) {
            Admit::Known => {}
            Admit::Learn => {
                l.rtp_to = Some(from);
                l.rtcp_to = if l.p.rtcp_mux {
                    Some(from)
                } else {
                    let port = l.rtcp_to.map_or(from.port().wrapping_add(1), |r| r.port());
                    Some(SocketAddr::new(from.ip(), port))
                };
                out.push(Out::Event(MediaEvent::Latched { leg, addr: from }));
            }
            Admit::Drop => {
                l.ignored += 1;
                return;
            }
        }
        match l.src.on_packet(&pkt.header, arrival) {
            Arrival::Jump => return,
            Arrival::NewSource => {
                l.jb.reset();
                l.rfc4733 = Rfc4733Receiver::default();
                out.push(Out::Event(MediaEvent::NewSource {
                    leg,
                    ssrc: pkt.header.ssrc,
                }));
            }
            Arrival::Ok => {}
        }
        let pt = pkt.header.payload_type;
        if Some(pt) == l.p.telephone_event {
            let digit = l.rfc4733.on_packet(pkt.header.timestamp, &pkt.payload);
            if let Some(d) = digit {
                self.report_digit(now, leg, d, DtmfVia::Rfc4733, out);
                for l in self.mix_listeners(leg) {
                    self.send_digits(l, &d.0.to_string());
                }
            }
            // Relay the event to the bridged leg.
            if let Some(p) = peer {
                let Some(pl) = self.leg_mut(p) else { return };
                match (pl.p.telephone_event, pl.rtp_to) {
                    (Some(te), Some(to)) if pl.sends() => {
                        let o = pl.tx.relay(&pkt, te, pkt.payload.clone());
                        out.push(Out::Send {
                            leg: p,
                            port: Port::Rtp,
                            to,
                            data: rtp::write(&o),
                        });
                    }
                    (None, Some(to)) if pl.sends() => {
                        // No telephone-event on the other leg: play the key as tones,
                        // one audio packet per event packet while the key is down (and
                        // over relayed audio, if the caller sends both).
                        if let Some(d) = digit {
                            pl.tone_over_relay = Some((d, 0, 800));
                        }
                        let down =
                            dtmf::TelephoneEvent::parse(&pkt.payload).is_some_and(|e| !e.end);
                        if let (true, Some((d, done, total))) = (down, pl.tone_over_relay) {
                            let mut pcm = vec![0i16; FRAME as usize];
                            dtmf::tone(d, done, &mut pcm);
                            let done = done + FRAME;
                            pl.tone_over_relay = (done < total).then_some((d, done, total));
                            let payload = pl.encode(&pcm);
                            let ppt = pl.p.pt;
                            // On the caller's timeline: the event's start plus the tone
                            // already played.
                            let mut at = pkt.clone();
                            at.header.timestamp = pkt.header.timestamp.wrapping_add(done - FRAME);
                            let o = pl.tx.relay(&at, ppt, payload);
                            out.push(Out::Send {
                                leg: p,
                                port: Port::Rtp,
                                to,
                                data: rtp::write(&o),
                            });
                        }
                    }
                    _ => {}
                }
            }
            return;
        }
        if pt != 0 && pt != 8 {
            // Comfort noise (13) and anything else we did not negotiate.
            l.ignored += 1;
            return;
        }
        if decode_needed {
            let mut pcm = Vec::with_capacity(pkt.payload.len());
            decode(pt, &pkt.payload, &mut pcm);
            l.jb.insert(pkt.header.timestamp, &pcm, arrival);
        }
        if let Some(p) = peer {
            let Some(pl) = self.leg_mut(p) else { return };
            let Some(to) = pl.rtp_to.filter(|_| pl.sends()) else {
                return;
            };
            let payload = if let Some((d, done, total)) = pl.tone_over_relay {
                let mut pcm = vec![0i16; pkt.payload.len()];
                dtmf::tone(d, done, &mut pcm);
                let done = done + pcm.len() as u32;
                pl.tone_over_relay = (done < total).then_some((d, done, total));
                pl.encode(&pcm)
            } else if pl.p.pt == pt {
                pkt.payload.clone()
            } else {
                let mut v = pkt.payload.to_vec();
                if pt == 0 {
                    g711::ulaw_to_alaw(&mut v);
                } else {
                    g711::alaw_to_ulaw(&mut v);
                }
                Bytes::from(v)
            };
            let ppt = pl.p.pt;
            let o = pl.tx.relay(&pkt, ppt, payload);
            out.push(Out::Send {
                leg: p,
                port: Port::Rtp,
                to,
                data: rtp::write(&o),
            });
        }
    }

    /// A packet on a leg's RTCP port.
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        leg: LegId,
        from: SocketAddr,
        data: Bytes,
        out: &mut Vec<Out>,
    ) {
        let _ = out;
        let ntp = self.ntp(now);
        let Some(l) = self.leg_mut(leg) else { return };
        // Reports count only from the host the leg's audio is latched to.
        if !l.same_host(from) {
            l.ignored += 1;
            return;
        }
        if !l.p.rtcp_mux {
            l.rtcp_to = Some(from);
        }
        let ssrc = l.tx.ssrc;
        if let Some(info) = rtp::on_rtcp(data, ssrc, ntp, &mut l.src, now) {
            if let Some(rtt) = info.rtt {
                tracing::debug!(leg, rtt_ms = rtt.as_millis() as u64, "rtcp");
            }
        }
    }

    /// A video packet (RTP or RTCP) from `leg`. RTP is relayed to the bridged leg's
    /// video, renumbered into that leg's stream; of RTCP only keyframe requests cross,
    /// as requests to the sender in its own form (see [`video`]).
    pub fn on_video(
        &mut self,
        now: Instant,
        leg: LegId,
        port: Port,
        from: SocketAddr,
        data: Bytes,
        out: &mut Vec<Out>,
    ) {
        let peer = self.peer_of(leg);
        let Some(l) = self.leg_mut(leg) else { return };
        let Some(v) = &l.p.video else {
            l.ignored += 1;
            return;
        };
        // Video follows the host of the leg's audio (or its own SDP address): a
        // packet from a third host neither moves the stream nor is relayed.
        if !l.same_host(from) && v.remote_rtp.map(|v| v.ip()) != Some(from.ip()) {
            l.ignored += 1;
            return;
        }
        let rtcp = port == Port::VideoRtcp || (v.rtcp_mux && video::is_rtcp(&data));
        if rtcp {
            if port == Port::VideoRtcp {
                l.video_rtcp_to = Some(from);
            }
            let asked = !crate::media::keyframe::requests(&data).is_empty();
            if asked {
                l.vs.report.requests_in += 1;
                self.ask_peer(now, leg, peer);
            }
            return;
        }
        l.video_to = Some(from);
        let pt = data.get(1).map_or(0, |b| b & 0x7f);
        let codec = v.codecs.iter().find(|(p, _)| *p == pt).map(|(_, c)| *c);
        if l.vs.sent(&data, &v.codecs) {
            // Once per start, resume, re-INVITE or transfer: where a black picture
            // would show, this says the picture came.
            tracing::debug!(leg, "keyframe came as asked");
        }
        let Some(p) = peer else { return };
        let Some(pl) = self.leg_mut(p) else { return };
        let (Some(pv), Some(to)) = (&pl.p.video, pl.video_to) else {
            return;
        };
        let Some(pt) = video::map_pt(pt, codec, &pv.codecs) else {
            pl.ignored += 1;
            return;
        };
        let Some(data) = pl.vs.rewrite(&data, pt) else {
            return;
        };
        pl.vs.report.relayed += 1;
        out.push(Out::Send {
            leg: p,
            port: Port::VideoRtp,
            to,
            data,
        });
    }

    /// `leg` (a SIP leg) asked by `INFO` for a full picture (RFC 5168): asked of the
    /// leg it sees.
    pub fn on_picture_fast_update(&mut self, now: Instant, leg: LegId) {
        let peer = self.peer_of(leg);
        if let Some(l) = self.leg_mut(leg) {
            l.vs.report.requests_in += 1;
        }
        self.ask_peer(now, leg, peer);
    }

    /// A receiver asked for a keyframe: its bridged peer's sender is asked, in the
    /// peer's form, rate-limited.
    fn ask_peer(&mut self, now: Instant, leg: LegId, peer: Option<LegId>) {
        let Some(pl) = peer.and_then(|p| self.leg_mut(p)) else {
            return;
        };
        if pl.p.video.is_some() {
            pl.vs.ask.need(now, crate::media::keyframe::Need::Asked);
        } else {
            tracing::trace!(leg, "keyframe asked of a leg without video");
        }
    }

    /// The keyframe requests due now, each in its leg's form.
    fn video_requests(&mut self, now: Instant, out: &mut Vec<Out>) {
        let Mode::Bridge(a, b) = self.mode else {
            return;
        };
        for id in [a, b] {
            let Some(l) = self.leg_mut(id) else { continue };
            let Some(v) = &l.p.video else { continue };
            if let Some(why) = l.vs.pending.take() {
                l.vs.ask.need(now, why);
            }
            let mux = v.rtcp_mux;
            match l.vs.request(now) {
                Some(Ok(data)) => {
                    let (port, to) = if mux {
                        (Port::VideoRtp, l.video_to)
                    } else {
                        (Port::VideoRtcp, l.video_rtcp_to)
                    };
                    if let Some(to) = to {
                        out.push(Out::Send {
                            leg: id,
                            port,
                            to,
                            data,
                        });
                    }
                }
                Some(Err(())) => out.push(Out::Event(MediaEvent::PictureFastUpdate { leg: id })),
                None => {}
            }
        }
    }

    /// Video counters for one leg (none: the leg has no video).
    pub fn video_report(&self, leg: LegId) -> Option<VideoReport> {
        let l = self.legs.get(leg)?.as_ref()?;
        l.p.video.as_ref().map(|_| l.vs.report)
    }

    /// The 20 ms clock.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Out>) {
        self.video_requests(now, out);
        let n = FRAME as usize;
        // 1. What each leg said this tick (decoded legs only), and in-band DTMF.
        let mut digits = Vec::new();
        for (id, l) in self.legs.iter_mut().enumerate() {
            let Some(l) = l else { continue };
            l.heard.resize(n, 0);
            l.jb.pop(&mut l.heard);
            if l.p.telephone_event.is_none() {
                for d in l.goertzel.push(&l.heard) {
                    digits.push((id, d));
                }
            }
        }
        for (id, d) in digits {
            self.report_digit(now, id, d, DtmfVia::InBand, out);
            if let Some(peer) = self.peer_of(id) {
                self.send_digits(peer, &d.0.to_string());
            }
        }
        // 2. What each leg hears, for legs we generate audio for.
        let mix: Option<Vec<i32>> = (self.mode == Mode::Conference).then(|| {
            let mut sum = vec![0i32; n];
            for l in self.legs.iter().flatten() {
                for (s, &h) in sum.iter_mut().zip(&l.heard) {
                    *s += h as i32;
                }
            }
            sum
        });
        let mut mixed: std::collections::HashMap<LegId, Vec<i32>> = Default::default();
        if let Mode::Mix(hears) = &self.mode {
            for (listener, from) in hears {
                let mut sum = vec![0i32; n];
                for f in from.iter().filter(|f| *f != listener) {
                    let Some(Some(l)) = self.legs.get(*f) else {
                        continue;
                    };
                    for (s, &h) in sum.iter_mut().zip(&l.heard) {
                        *s += h as i32;
                    }
                }
                mixed.insert(*listener, sum);
            }
        }
        let bridged = self.peer_of(0).is_some();
        let mut caller_hears: Option<Vec<i16>> = None;
        let n_legs = self.legs.len();
        for id in 0..n_legs {
            let in_bridge = self.peer_of(id).is_some();
            let peer_heard = self
                .peer_of(id)
                .and_then(|p| self.legs.get(p)?.as_ref().map(|l| l.heard.clone()));
            let Some(l) = self.legs[id].as_mut() else {
                continue;
            };
            let mut pcm = vec![0i16; n];
            let mut finished = Vec::new();
            if in_bridge {
                // The relay sends; we only note what the leg hears, for the recording.
                if let Some(h) = peer_heard {
                    pcm = h;
                }
            } else if let Some(sum) = &mix {
                for ((o, &s), &own) in pcm.iter_mut().zip(sum).zip(&l.heard) {
                    *o = (s - own as i32).clamp(-32768, 32767) as i16;
                }
            } else if let Some(sum) = mixed.get(&id) {
                for (o, &s) in pcm.iter_mut().zip(sum) {
                    *o = s.clamp(-32768, 32767) as i16;
                }
            } else {
                finished = l.player.fill(&mut pcm).finished;
            }
            for fid in finished {
                out.push(Out::Event(MediaEvent::PlayDone {
                    leg: id,
                    id: fid,
                    interrupted: false,
                }));
            }
            if id == 0 {
                caller_hears = Some(pcm.clone());
            }
            if in_bridge {
                continue;
            }
            Self::send_generated(l, id, &mut pcm, out);
        }
        let _ = bridged;
        // 3. Recording: caller left, what the caller hears right.
        if let (Some(rec), Some(l0)) = (
            self.recorder.as_mut(),
            self.legs.first().and_then(|l| l.as_ref()),
        ) {
            let other = caller_hears.unwrap_or_else(|| vec![0; n]);
            if let Err(e) = rec.write(&l0.heard, &other) {
                out.push(Out::Event(MediaEvent::RecordingError {
                    error: e.to_string(),
                }));
                self.recorder = None;
            }
        }
        if let (Some(vm), Some(l0)) = (
            self.voicemail.as_mut(),
            self.legs.first().and_then(|l| l.as_ref()),
        ) {
            if let Err(e) = vm.write(&l0.heard, &l0.heard) {
                out.push(Out::Event(MediaEvent::RecordingError {
                    error: e.to_string(),
                }));
                self.voicemail = None;
            }
        }
        // 4. RTCP.
        let ntp = self.ntp(now);
        let cname = self.cname.clone();
        for (id, l) in self.legs.iter_mut().enumerate() {
            let Some(l) = l else { continue };
            if now < l.next_rtcp {
                continue;
            }
            l.next_rtcp = now + RTCP_INTERVAL;
            let Some(to) = l
                .rtcp_to
                .or(l.rtp_to.map(|a| SocketAddr::new(a.ip(), a.port() + 1)))
            else {
                continue;
            };
            let sent = l.tx.packets != l.packets_at_last_report;
            l.packets_at_last_report = l.tx.packets;
            let data = rtp::compound(&l.tx, sent, ntp, Some(&mut l.src), now, &cname);
            let port = if l.p.rtcp_mux { Port::Rtp } else { Port::Rtcp };
            out.push(Out::Send {
                leg: id,
                port,
                to,
                data,
            });
        }
    }

    /// Sends one tick of locally generated audio to a leg: DTMF first, then `pcm`,
    /// packetised at the leg's ptime.
    fn send_generated(l: &mut Leg, id: LegId, pcm: &mut [i16], out: &mut Vec<Out>) {
        let n = pcm.len() as u32;
        if l.sending.is_none() {
            if let Some(d) = l.dtmf_out.pop_front() {
                l.sending = Some(match l.p.telephone_event {
                    Some(_) => Outgoing::Event(Rfc4733Sender::new(d, 100, 20), l.tx.timestamp()),
                    None => Outgoing::Tone(d, 0),
                });
            }
        }
        let to = l.rtp_to.filter(|_| l.sends());
        match l.sending.as_mut() {
            Some(Outgoing::Event(s, ts)) => {
                let ts = *ts;
                match s.next_packet() {
                    Some(ev) => {
                        let te = l.p.telephone_event.unwrap_or(101);
                        let p =
                            l.tx.at(te, Bytes::copy_from_slice(&ev.payload), ts, ev.marker);
                        if let Some(to) = to {
                            out.push(Out::Send {
                                leg: id,
                                port: Port::Rtp,
                                to,
                                data: rtp::write(&p),
                            });
                        }
                        // Real time passes during the event: audio resumes later.
                        l.tx.skip(n);
                        return;
                    }
                    None => {
                        // Inter-digit gap of one frame.
                        l.sending = None;
                    }
                }
            }
            Some(Outgoing::Tone(d, done)) => {
                dtmf::tone(*d, *done, pcm);
                *done += n;
                // 100 ms tone, then 60 ms of silence.
                if *done > 800 {
                    pcm.fill(0);
                }
                if *done >= 1280 {
                    l.sending = None;
                }
            }
            None => {}
        }
        let Some(to) = to else {
            l.tx.skip(n);
            l.pending.clear();
            return;
        };
        l.pending.extend_from_slice(pcm);
        let per = (l.p.ptime_ms * 8) as usize;
        while l.pending.len() >= per {
            // Encoded in place (no copy of the chunk): the tick's 20 ms is usually all
            // that is pending.
            let payload = l.encode(&l.pending[..per]);
            l.pending.drain(..per);
            let p = l.tx.packet(l.p.pt, payload, per as u32);
            out.push(Out::Send {
                leg: id,
                port: Port::Rtp,
                to,
                data: rtp::write(&p),
            });
        }
    }
}

#[cfg(test)]
mod tests;
