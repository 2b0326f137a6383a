//! The thin driver around a [`MediaSession`]: UDP sockets, a 20 ms deadline timer (no
//! drift: each tick is scheduled from the previous deadline, not from when it ran), and
//! a command channel from the call actor. Packets move in tokio tasks on the actor's
//! arbiter and never pass through an actor mailbox.

use crate::media::player::Item;
use crate::media::recorder::Recorder;
use crate::media::session::{LegId, LegParams, MediaEvent, MediaSession, Out, Port};
use crate::media::RtpPorts;
use crate::webrtc::{BrowserLeg, Registration, WebOut, WebPacket, WebRtcPort};
use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The sockets of one leg, bound before its SDP is written.
pub struct LegSockets {
    pub audio_port: u16,
    pub video_port: Option<u16>,
    // Moved into the media task (no duplicated descriptors: a call costs two, or four
    // with video).
    rtp: Option<std::net::UdpSocket>,
    rtcp: Option<std::net::UdpSocket>,
    video: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    ports: Arc<RtpPorts>,
    held: Vec<u16>,
}

impl Drop for LegSockets {
    fn drop(&mut self) {
        for p in self.held.drain(..) {
            self.ports.release(p);
        }
    }
}

fn bind_pair(
    ip: IpAddr,
    ports: &Arc<RtpPorts>,
) -> std::io::Result<(u16, std::net::UdpSocket, std::net::UdpSocket)> {
    // A port in the range may be taken by another program: try a few.
    for _ in 0..16 {
        let Some(p) = ports.allocate() else { break };
        let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, p));
        let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, p + 1));
        match (rtp, rtcp) {
            (Ok(a), Ok(b)) => {
                a.set_nonblocking(true)?;
                b.set_nonblocking(true)?;
                return Ok((p, a, b));
            }
            _ => ports.release(p),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free RTP port pair",
    ))
}

impl LegSockets {
    /// Binds an even RTP port and the next one for RTCP (and a second pair for video).
    pub fn bind(ip: IpAddr, ports: &Arc<RtpPorts>, video: bool) -> std::io::Result<LegSockets> {
        let (audio_port, rtp, rtcp) = bind_pair(ip, ports)?;
        let mut s = LegSockets {
            audio_port,
            video_port: None,
            rtp: Some(rtp),
            rtcp: Some(rtcp),
            video: None,
            ports: ports.clone(),
            held: vec![audio_port],
        };
        if video {
            let (vp, a, b) = bind_pair(ip, ports)?;
            s.held.push(vp);
            s.video_port = Some(vp);
            s.video = Some((a, b));
        }
        Ok(s)
    }
}

impl LegSockets {
    /// Binds a pair for video alone (video added to a leg whose audio is up).
    pub fn bind_video(ip: IpAddr, ports: &Arc<RtpPorts>) -> std::io::Result<LegSockets> {
        let (vp, a, b) = bind_pair(ip, ports)?;
        Ok(LegSockets {
            audio_port: 0,
            video_port: Some(vp),
            rtp: None,
            rtcp: None,
            video: Some((a, b)),
            ports: ports.clone(),
            held: vec![vp],
        })
    }
}

fn tokio_socket(s: std::net::UdpSocket) -> Option<Arc<UdpSocket>> {
    UdpSocket::from_std(s).ok().map(Arc::new)
}

/// What the driver tells the call actor.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum MediaNotice {
    Event(MediaEvent),
    /// The session ended; the recording (if any) is finalised at this path.
    Closed {
        recording: Option<PathBuf>,
    },
    /// A voicemail was saved (or could not be).
    Voicemail(Result<(PathBuf, f64), String>),
    /// A browser leg connected (DTLS-SRTP up), or failed or closed.
    Browser(LegId, Result<(), String>),
}

enum Cmd {
    AddLeg(LegId, LegParams, LegSockets),
    AddBrowser(LegId, LegParams, Box<BrowserLeg>, Arc<WebRtcPort>),
    AddVideo(LegId, LegSockets),
    Reanswer(
        LegId,
        String,
        Vec<crate::sdp::Format>,
        tokio::sync::oneshot::Sender<Result<String, String>>,
    ),
    Update(LegId, LegParams),
    Remove(LegId),
    Play(LegId, Item),
    StopPlayback(LegId),
    Digits(LegId, String),
    InfoDigit(LegId, char),
    PictureFastUpdate(LegId),
    Bridge(LegId, LegId),
    Conference,
    Mix(crate::media::session::Hears),
    Unbridge,
    Record(PathBuf),
    Voicemail(PathBuf),
    StopVoicemail,
    StopRecording,
}

/// The call actor's handle on its media task. Dropping it ends the task (and
/// finalises the recording).
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<Cmd>,
}

type Packet = (LegId, Port, SocketAddr, Bytes);

/// A SIP leg's sockets, read by the media task itself (no reader task per socket: a
/// packet wakes the one task that handles it).
struct LegIo {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    video: Option<(Arc<UdpSocket>, Arc<UdpSocket>)>,
    _sockets: LegSockets,
}

impl LegIo {
    fn sockets(&self) -> impl Iterator<Item = (&UdpSocket, Port)> {
        let v = self.video.as_ref();
        [
            Some((&*self.rtp, Port::Rtp)),
            Some((&*self.rtcp, Port::Rtcp)),
            v.map(|v| (&*v.0, Port::VideoRtp)),
            v.map(|v| (&*v.1, Port::VideoRtcp)),
        ]
        .into_iter()
        .flatten()
    }
}

/// The next datagram on any leg's socket, each wake starting one leg further (a
/// flooded leg does not starve the others); registers for every socket when none has
/// one.
fn poll_recv_any(
    cx: &mut std::task::Context<'_>,
    io: &[Option<LegIo>],
    next: &mut usize,
    buf: &mut [u8],
) -> std::task::Poll<Packet> {
    use std::task::Poll;
    let n = io.len();
    for k in 0..n {
        let leg = (*next + k) % n;
        let Some(l) = &io[leg] else { continue };
        for (sock, port) in l.sockets() {
            // ICMP port unreachable and the like: read on (a few at most).
            for _ in 0..4 {
                let mut rb = tokio::io::ReadBuf::new(buf);
                match sock.poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(from)) => {
                        *next = (leg + 1) % n;
                        return Poll::Ready((leg, port, from, Bytes::copy_from_slice(rb.filled())));
                    }
                    Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    // Pending (registered), or a socket that fails: the next one.
                    _ => break,
                }
            }
        }
    }
    Poll::Pending
}

/// A datagram already queued on any leg's socket, without waiting.
fn try_recv_any(io: &[Option<LegIo>], buf: &mut [u8]) -> Option<Packet> {
    for (leg, l) in io.iter().enumerate() {
        let Some(l) = l else { continue };
        for (sock, port) in l.sockets() {
            for _ in 0..4 {
                match sock.try_recv_from(buf) {
                    Ok((len, from)) => {
                        return Some((leg, port, from, Bytes::copy_from_slice(&buf[..len])))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    Err(_) => break,
                }
            }
        }
    }
    None
}

fn on_packet(
    session: &mut MediaSession,
    now: std::time::Instant,
    (leg, port, from, data): Packet,
    out: &mut Vec<Out>,
) {
    match port {
        Port::Rtp => session.on_rtp(now, leg, from, data, out),
        Port::Rtcp => session.on_rtcp(now, leg, from, data, out),
        p => session.on_video(now, leg, p, from, data, out),
    }
}

/// A browser leg in the media task: its peer connection and its place on the port.
struct WebIo {
    leg: BrowserLeg,
    port: Arc<WebRtcPort>,
    /// Where the browser's media comes from, for the session's bookkeeping.
    from: SocketAddr,
    _reg: Registration,
}

/// Logs what went through a leg as it leaves the call: the figures to look at first
/// when someone says they could not hear.
fn log_leg(session: &MediaSession, id: LegId, web: Option<&WebIo>) {
    let Some(r) = session.report(id) else { return };
    if let Some(v) = session.video_report(id) {
        // Black video starts here: whether keyframes were asked for and came.
        tracing::info!(
            leg = id,
            relayed_to = v.relayed,
            keyframes_from = v.keyframes,
            keyframe_requests_from = v.requests_in,
            keyframe_requests_to = v.requests_out,
            "leg video"
        );
    }
    match web {
        Some(w) => {
            let (send_failed, queue_full) = w.port.dropped();
            tracing::info!(
                leg = id,
                ufrag = %w.leg.ufrag,
                rtp_to_browser = w.leg.stats.rtp_out,
                rtp_refused = w.leg.stats.rtp_out_refused,
                rtp_from_browser = w.leg.stats.rtp_in,
                datagrams_in = w.leg.stats.datagrams_in,
                datagrams_out = w.leg.stats.datagrams_out,
                unreadable = w.leg.stats.unreadable,
                media_to = ?w.leg.stats.media_to,
                media_to_changes = w.leg.stats.media_to_changes,
                port_send_failed = send_failed,
                port_queue_full = queue_full,
                sent = r.sent,
                received = r.received,
                lost = r.lost,
                jitter_ms = r.jitter_ms,
                "browser leg media"
            );
        }
        None => tracing::debug!(
            leg = id,
            sent = r.sent,
            received = r.received,
            lost = r.lost,
            jitter_ms = r.jitter_ms,
            concealed_samples = r.concealed_samples,
            ssrc_changes = r.ssrc_changes,
            "leg media"
        ),
    }
}

/// Carries out what browser legs asked for; decrypted RTP goes into the session (which
/// may produce more `Out`s). Returns whether anything was produced.
fn drain_web(
    session: &mut MediaSession,
    web: &mut std::collections::BTreeMap<LegId, WebIo>,
    now: std::time::Instant,
    notify: &actix::Recipient<MediaNotice>,
    out: &mut Vec<Out>,
) {
    let mut w = Vec::new();
    let mut gone = Vec::new();
    for (&id, io) in web.iter_mut() {
        io.leg.drain(&mut w);
        for o in w.drain(..) {
            match o {
                WebOut::Transmit(to, data) => io.port.send(to, &data),
                WebOut::Rtp(data) => session.on_rtp(now, id, io.from, data, out),
                WebOut::VideoRtp(data) => {
                    session.on_video(now, id, Port::VideoRtp, io.from, data, out)
                }
                WebOut::VideoRtcp(data) => {
                    session.on_video(now, id, Port::VideoRtcp, io.from, data, out)
                }
                WebOut::Connected => notify.do_send(MediaNotice::Browser(id, Ok(()))),
                WebOut::Failed(why) => {
                    notify.do_send(MediaNotice::Browser(id, Err(why)));
                    gone.push(id);
                }
            }
        }
    }
    for id in gone {
        web.remove(&id);
    }
}

impl MediaHandle {
    /// Starts the media task of a call (on the current arbiter's runtime).
    pub fn spawn(cname: String, notify: actix::Recipient<MediaNotice>) -> MediaHandle {
        let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
        tokio::spawn(async move {
            let mut session =
                MediaSession::new(crate::clock::now(), cname).wall_clock(crate::clock::ntp_now());
            let mut next_leg = 0;
            let mut buf = vec![0u8; 2048];
            let (wtx, mut wrx) = mpsc::channel::<WebPacket>(1024);
            let mut io: Vec<Option<LegIo>> = Vec::new();
            let mut web = std::collections::BTreeMap::<LegId, WebIo>::new();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut out = Vec::with_capacity(16);
            loop {
                tokio::select! {
                    biased;
                    c = rx.recv() => {
                        let Some(c) = c else { break };
                        let now = crate::clock::now();
                        match c {
                            Cmd::AddLeg(id, p, mut s) => {
                                let conv = |s: Option<std::net::UdpSocket>| s.and_then(|s| UdpSocket::from_std(s).ok()).map(Arc::new);
                                let (Some(rtp), Some(rtcp)) = (conv(s.rtp.take()), conv(s.rtcp.take())) else { continue };
                                let video = s.video.take().and_then(|(a, b)| Some((conv(Some(a))?, conv(Some(b))?)));
                                session.add_leg_at(now, id, p);
                                if io.len() <= id {
                                    io.resize_with(id + 1, || None);
                                }
                                io[id] = Some(LegIo { rtp, rtcp, video, _sockets: s });
                            }
                            Cmd::AddBrowser(id, mut p, mut leg, port) => {
                                // SRTP authenticates a browser's packets: they are the
                                // leg's whatever their address, from the first one.
                                let from = p.remote_rtp.unwrap_or_else(|| port.advertised());
                                p.remote_rtp = Some(from);
                                let reg = port.register(&leg.ufrag, id, wtx.clone());
                                session.add_leg_at(now, id, p);
                                if io.len() <= id {
                                    io.resize_with(id + 1, || None);
                                }
                                leg.handle_timeout(now);
                                web.insert(id, WebIo { leg: *leg, port, from, _reg: reg });
                            }
                            Cmd::AddVideo(id, mut s) => {
                                let Some(Some(l)) = io.get_mut(id) else { continue };
                                let Some((a, b)) = s.video.take() else { continue };
                                let (Some(v), Some(vr)) = (tokio_socket(a), tokio_socket(b)) else { continue };
                                l.video = Some((v, vr));
                                // The port is freed with the leg's.
                                l._sockets.held.append(&mut s.held);
                            }
                            Cmd::Reanswer(id, offer, video, tx) => {
                                let r = match web.get_mut(&id) {
                                    Some(w) => w.leg.reanswer(now, &offer, &video).map_err(|e| e.to_string()),
                                    None => Err("the browser leg has gone".to_string()),
                                };
                                let codecs = web.get(&id).and_then(|w| w.leg.video_codecs());
                                if let (Ok(_), Some(codecs), Some(mut p)) = (&r, codecs, session.params(id).cloned()) {
                                    // A browser takes PLI; its video shares the audio's transport.
                                    p.video = Some(crate::media::session::VideoLeg {
                                        remote_rtp: p.remote_rtp,
                                        remote_rtcp: None,
                                        rtcp_mux: true,
                                        codecs,
                                        via: crate::media::keyframe::Via::Pli,
                                    });
                                    session.update_leg(now, id, p);
                                }
                                let _ = tx.send(r);
                            }
                            Cmd::Update(l, p) => session.update_leg(crate::clock::now(), l, p),
                            Cmd::Remove(l) => {
                                log_leg(&session, l, web.get(&l));
                                session.remove_leg(l);
                                if let Some(mut w) = web.remove(&l) {
                                    w.leg.close();
                                    let mut o = Vec::new();
                                    w.leg.drain(&mut o);
                                    for x in o {
                                        if let WebOut::Transmit(to, data) = x {
                                            w.port.send(to, &data);
                                        }
                                    }
                                }
                                if let Some(slot) = io.get_mut(l) {
                                    *slot = None;
                                }
                            }
                            Cmd::Play(l, item) => session.play(l, item),
                            Cmd::StopPlayback(l) => session.stop_playback(l, &mut out),
                            Cmd::Digits(l, d) => session.send_digits(l, &d),
                            Cmd::InfoDigit(l, d) => session.on_info_digit(now, l, d, &mut out),
                            Cmd::PictureFastUpdate(l) => session.on_picture_fast_update(now, l),
                            Cmd::Bridge(a, b) => session.bridge(a, b),
                            Cmd::Conference => session.conference(),
                            Cmd::Mix(hears) => session.mix(hears),
                            Cmd::Unbridge => session.unbridge(),
                            Cmd::Record(path) => match Recorder::create(&path) {
                                Ok(r) => session.record(r),
                                Err(e) => out.push(Out::Event(MediaEvent::RecordingError { error: format!("{}: {e}", path.display()) })),
                            },
                            Cmd::Voicemail(path) => match Recorder::create(&path) {
                                Ok(r) => session.start_voicemail(r),
                                Err(e) => notify.do_send(MediaNotice::Voicemail(Err(format!("{}: {e}", path.display())))),
                            },
                            Cmd::StopRecording => match session.stop_recording() {
                                Some(Ok(p)) => tracing::info!(path = %p.display(), "recording saved"),
                                Some(Err(e)) => tracing::warn!(error = %e, "cannot finalise recording"),
                                None => {}
                            },
                            Cmd::StopVoicemail => {
                                if let Some(r) = session.stop_voicemail() {
                                    notify.do_send(MediaNotice::Voicemail(r.map_err(|e| e.to_string())));
                                }
                            }
                        }
                    }
                    p = std::future::poll_fn(|cx| poll_recv_any(cx, &io, &mut next_leg, &mut buf)) => {
                        let now = crate::clock::now();
                        on_packet(&mut session, now, p, &mut out);
                        // What else is queued, before sending (bounded: a flood must
                        // not hold the tick back).
                        for _ in 0..64 {
                            let Some(p) = try_recv_any(&io, &mut buf) else { break };
                            on_packet(&mut session, now, p, &mut out);
                        }
                    }
                    Some((leg, from, data)) = wrx.recv() => {
                        let now = crate::clock::now();
                        if let Some(w) = web.get_mut(&leg) {
                            w.leg.handle_read(now, from, data);
                        }
                        while let Ok((leg, from, data)) = wrx.try_recv() {
                            if let Some(w) = web.get_mut(&leg) {
                                w.leg.handle_read(now, from, data);
                            }
                        }
                        drain_web(&mut session, &mut web, now, &notify, &mut out);
                    }
                    _ = tick.tick() => {
                        let now = crate::clock::now();
                        for w in web.values_mut() {
                            if w.leg.timeout().is_some_and(|t| t <= now) {
                                w.leg.handle_timeout(now);
                            }
                        }
                        session.on_tick(now, &mut out);
                        drain_web(&mut session, &mut web, now, &notify, &mut out);
                    }
                }
                let mut sent_web = false;
                for o in out.drain(..) {
                    match o {
                        Out::Send {
                            leg,
                            port,
                            to,
                            data,
                        } => {
                            if let Some(w) = web.get_mut(&leg) {
                                // Our RTCP is not sent to browsers: their peer connection
                                // reports for itself.
                                let now = crate::clock::now();
                                match port {
                                    Port::Rtp => w.leg.write_rtp(now, &data),
                                    // The session's keyframe request: a PLI of the
                                    // peer connection's own.
                                    Port::VideoRtp
                                        if crate::media::session::is_video_rtcp(&data) =>
                                    {
                                        w.leg.request_keyframe(now)
                                    }
                                    Port::VideoRtcp => w.leg.request_keyframe(now),
                                    Port::VideoRtp => w.leg.write_video_rtp(now, &data),
                                    Port::Rtcp => continue,
                                }
                                sent_web = true;
                                continue;
                            }
                            let Some(Some(l)) = io.get(leg) else { continue };
                            let sock = match port {
                                Port::Rtp => &l.rtp,
                                Port::Rtcp => &l.rtcp,
                                Port::VideoRtp => match &l.video {
                                    Some(v) => &v.0,
                                    None => continue,
                                },
                                Port::VideoRtcp => match &l.video {
                                    Some(v) => &v.1,
                                    None => continue,
                                },
                            };
                            // Never wait on a full socket buffer: a late packet is a lost one.
                            let _ = sock.try_send_to(&data, to);
                        }
                        Out::Event(e) => notify.do_send(MediaNotice::Event(e)),
                    }
                }
                if sent_web {
                    // Encrypted RTP out now (what the browser sent is in already, so
                    // this produces no new session output).
                    drain_web(
                        &mut session,
                        &mut web,
                        crate::clock::now(),
                        &notify,
                        &mut out,
                    );
                    for o in out.drain(..) {
                        if let Out::Event(e) = o {
                            notify.do_send(MediaNotice::Event(e));
                        }
                    }
                }
            }
            for id in session.leg_ids() {
                log_leg(&session, id, web.get(&id));
            }
            if let Some(r) = session.stop_voicemail() {
                notify.do_send(MediaNotice::Voicemail(r.map_err(|e| e.to_string())));
            }
            let recording = match session.stop_recording() {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot finalise recording");
                    None
                }
                None => None,
            };
            drop(io);
            notify.do_send(MediaNotice::Closed { recording });
        });
        MediaHandle { tx }
    }

    /// Adds leg `id` (the call core's number for it) with what was negotiated.
    pub fn add_leg(&self, id: LegId, p: LegParams, sockets: LegSockets) {
        let _ = self.tx.send(Cmd::AddLeg(id, p, sockets));
    }

    /// Adds browser leg `id` (its answer already made).
    pub fn add_browser(&self, id: LegId, p: LegParams, leg: BrowserLeg, port: Arc<WebRtcPort>) {
        let _ = self.tx.send(Cmd::AddBrowser(id, p, Box::new(leg), port));
    }

    /// Leg `leg`'s video sockets (bound since it was added).
    pub fn add_video(&self, leg: LegId, sockets: LegSockets) {
        let _ = self.tx.send(Cmd::AddVideo(leg, sockets));
    }

    /// Browser leg `leg`'s answer to its new offer, video in one of `video`.
    pub fn reanswer(
        &self,
        leg: LegId,
        offer: String,
        video: Vec<crate::sdp::Format>,
    ) -> tokio::sync::oneshot::Receiver<Result<String, String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(Cmd::Reanswer(leg, offer, video, tx));
        rx
    }

    pub fn update(&self, leg: LegId, p: LegParams) {
        let _ = self.tx.send(Cmd::Update(leg, p));
    }

    pub fn remove(&self, leg: LegId) {
        let _ = self.tx.send(Cmd::Remove(leg));
    }

    pub fn play(&self, leg: LegId, item: Item) {
        let _ = self.tx.send(Cmd::Play(leg, item));
    }

    pub fn stop_playback(&self, leg: LegId) {
        let _ = self.tx.send(Cmd::StopPlayback(leg));
    }

    pub fn send_digits(&self, leg: LegId, digits: &str) {
        let _ = self.tx.send(Cmd::Digits(leg, digits.to_string()));
    }

    pub fn info_digit(&self, leg: LegId, digit: char) {
        let _ = self.tx.send(Cmd::InfoDigit(leg, digit));
    }

    pub fn picture_fast_update(&self, leg: LegId) {
        let _ = self.tx.send(Cmd::PictureFastUpdate(leg));
    }

    pub fn bridge(&self, a: LegId, b: LegId) {
        let _ = self.tx.send(Cmd::Bridge(a, b));
    }

    pub fn conference(&self) {
        let _ = self.tx.send(Cmd::Conference);
    }

    /// Who hears whom (see [`MediaSession::mix`]).
    pub fn mix(&self, hears: crate::media::session::Hears) {
        let _ = self.tx.send(Cmd::Mix(hears));
    }

    pub fn unbridge(&self) {
        let _ = self.tx.send(Cmd::Unbridge);
    }

    /// Records what the caller says to `path` until [`MediaHandle::stop_voicemail`].
    pub fn voicemail(&self, path: PathBuf) {
        let _ = self.tx.send(Cmd::Voicemail(path));
    }

    pub fn stop_recording(&self) {
        let _ = self.tx.send(Cmd::StopRecording);
    }

    pub fn stop_voicemail(&self) {
        let _ = self.tx.send(Cmd::StopVoicemail);
    }

    pub fn record(&self, path: PathBuf) {
        let _ = self.tx.send(Cmd::Record(path));
    }
}
