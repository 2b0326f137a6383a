//! SDP offer/answer (RFC 3264, RFC 4566) for G.711 audio with telephone-event, and
//! video pass-through. Parsing and writing use `rtc`'s SDP types; the negotiation is
//! ours: codec choice among PCMU and PCMA in the offerer's order, telephone-event at
//! 8 kHz, ptime, direction (hold: sendonly/recvonly/inactive and RFC 2543 `c=0.0.0.0`),
//! rtcp-mux (RFC 5761) and `a=rtcp` (RFC 3605), one answer m-line per offer m-line in
//! the same order, port 0 for what we decline (RFC 3264 6). Sans-IO: no sockets here.

use rtc::sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc::sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc::sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Audio codecs we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_name(name: &str, rate: u32) -> Option<Codec> {
        match (name.to_ascii_uppercase().as_str(), rate) {
            ("PCMU", 8000) => Some(Codec::Pcmu),
            ("PCMA", 8000) => Some(Codec::Pcma),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction that answers an offer of `self` (RFC 3264 6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the side that wrote this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side that wrote this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8 text")]
    NotText,
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("no common codec (we speak PCMU and PCMA)")]
    NoCommonCodec,
    #[error("SDP connection address missing or invalid")]
    BadConnection,
    #[error("answer does not match our offer: {0}")]
    AnswerMismatch(&'static str),
    #[error("the offer's audio is {0} only: plain RTP/AVP is taken here, and WebRTC (UDP/TLS/RTP/SAVPF with ICE and DTLS-SRTP) only from the SIP WebSocket transport with [webrtc] on")]
    SecureMediaOnly(String),
    #[error("the WebRTC offer has no G.711 (PCMU or PCMA): calls are bridged without transcoding")]
    WebRtcNoG711,
}

/// One payload format of a remote m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    pub name: String,
    pub rate: u32,
    pub channels: String,
    pub fmtp: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    Other(String),
}

/// One m-line as the remote side wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    pub kind: Kind,
    pub port: u16,
    pub proto: String,
    /// The connection address (media level, else session level).
    pub ip: Option<IpAddr>,
    pub formats: Vec<Format>,
    pub direction: Direction,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    pub rtcp_mux: bool,
    /// `a=rtcp:` port (and address) (RFC 3605).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// The keyframe feedback it takes (`a=rtcp-fb`).
    pub feedback: Feedback,
    /// `b=AS` and `b=TIAS` (what the author wants to receive), media level.
    pub bandwidth: Vec<(String, u64)>,
}

/// The keyframe feedback a video stream takes: RFC 4585's `nack pli` and RFC 5104's
/// `ccm fir` (`a=rtcp-fb` for `*` or one of the m-line's formats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feedback {
    pub pli: bool,
    pub fir: bool,
}

impl Feedback {
    /// What we take: both.
    pub const BOTH: Feedback = Feedback {
        pli: true,
        fir: true,
    };
}

/// The bandwidth modifiers carried across a bridge (RFC 4566 `AS`, RFC 3890 `TIAS`).
const CARRIED_BANDWIDTH: [&str; 2] = ["AS", "TIAS"];

/// Whether an m-line's protocol is one we relay video on: plain RTP, with or without
/// RFC 4585's feedback profile.
fn video_proto_ok(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

impl RemoteMedia {
    /// Where to send RTP; `None` when the stream is disabled or on RFC 2543 hold.
    pub fn rtp_addr(&self) -> Option<SocketAddr> {
        let ip = self.ip?;
        (self.port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, self.port))
    }

    /// Where to send RTCP.
    pub fn rtcp_addr(&self) -> Option<SocketAddr> {
        let rtp = self.rtp_addr()?;
        if self.rtcp_mux {
            return Some(rtp);
        }
        match self.rtcp {
            Some((p, ip)) => Some(SocketAddr::new(ip.unwrap_or(rtp.ip()), p)),
            None => Some(SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))),
        }
    }

    /// The direction as meant: RFC 2543 hold (`c=0.0.0.0`) is "do not send to me".
    pub fn effective_direction(&self) -> Direction {
        if self.ip.is_some_and(|ip| ip.is_unspecified()) {
            return match self.direction {
                Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
                _ => Direction::Inactive,
            };
        }
        self.direction
    }

    fn telephone_event(&self) -> Option<u8> {
        self.formats
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("telephone-event") && f.rate == 8000)
            .map(|f| f.pt)
    }
}

/// A parsed remote session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSession {
    pub session_id: u64,
    pub version: u64,
    pub media: Vec<RemoteMedia>,
}

impl RemoteSession {
    pub fn parse(body: &[u8]) -> Result<RemoteSession, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        // Some phones end lines with a bare LF; rtc's lexer wants CRLF or LF consistently,
        // and a missing final line break is common: normalise both.
        let mut norm = String::with_capacity(text.len() + 2);
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            norm.push_str(line);
            norm.push_str("\r\n");
        }
        let sd = SessionDescription::unmarshal(&mut std::io::Cursor::new(norm.as_bytes()))
            .map_err(|e| SdpError::Malformed(e.to_string()))?;
        let session_ip = sd.connection_information.as_ref().and_then(conn_ip);
        let session_dir = sd.attributes.iter().find_map(|a| Direction::parse(&a.key));
        let mut media = Vec::with_capacity(sd.media_descriptions.len());
        for md in &sd.media_descriptions {
            media.push(remote_media(md, session_ip, session_dir)?);
        }
        Ok(RemoteSession {
            session_id: sd.origin.session_id,
            version: sd.origin.session_version,
            media,
        })
    }

    pub fn first_audio(&self) -> Option<&RemoteMedia> {
        self.media
            .iter()
            .find(|m| m.kind == Kind::Audio && m.port != 0)
    }
}

fn conn_ip(c: &ConnectionInformation) -> Option<IpAddr> {
    c.address
        .as_ref()
        .and_then(|a| a.address.split('/').next()?.parse().ok())
}

fn remote_media(
    md: &MediaDescription,
    session_ip: Option<IpAddr>,
    session_dir: Option<Direction>,
) -> Result<RemoteMedia, SdpError> {
    let kind = match md.media_name.media.as_str() {
        "audio" => Kind::Audio,
        "video" => Kind::Video,
        other => Kind::Other(other.to_string()),
    };
    let port = u16::try_from(md.media_name.port.value)
        .map_err(|_| SdpError::Malformed(format!("bad port {}", md.media_name.port.value)))?;
    let ip = md
        .connection_information
        .as_ref()
        .and_then(conn_ip)
        .or(session_ip);
    if port != 0 && ip.is_none() && matches!(kind, Kind::Audio | Kind::Video) {
        return Err(SdpError::BadConnection);
    }
    let codecs = md.codecs();
    let mut formats = Vec::new();
    for f in &md.media_name.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let (name, rate, channels, fmtp) = match codecs.get(&pt) {
            Some(c) if !c.name.is_empty() => (
                c.name.clone(),
                c.clock_rate,
                c.encoding_parameters.clone(),
                c.fmtp.clone(),
            ),
            other => {
                let fmtp = other.map(|c| c.fmtp.clone()).unwrap_or_default();
                match pt {
                    0 => ("PCMU".into(), 8000, String::new(), fmtp),
                    8 => ("PCMA".into(), 8000, String::new(), fmtp),
                    _ => (String::new(), 0, String::new(), fmtp),
                }
            }
        };
        formats.push(Format {
            pt,
            name,
            rate,
            channels,
            fmtp,
        });
    }
    let direction = md
        .attributes
        .iter()
        .find_map(|a| Direction::parse(&a.key))
        .or(session_dir)
        .unwrap_or(Direction::SendRecv);
    let ptime = md
        .attribute("ptime")
        .flatten()
        .and_then(|v| v.trim().parse().ok());
    let rtcp_mux = md.has_attribute("rtcp-mux");
    let rtcp = md.attribute("rtcp").flatten().and_then(|v| {
        let mut it = v.split_whitespace();
        let p: u16 = it.next()?.parse().ok()?;
        let ip = it.nth(2).and_then(|a| a.parse().ok());
        Some((p, ip))
    });
    let proto = md.media_name.protos.join("/");
    let mut feedback = Feedback::default();
    for v in md
        .attributes
        .iter()
        .filter(|a| a.key == "rtcp-fb")
        .filter_map(|a| a.value.as_deref())
    {
        let mut it = v.split_whitespace();
        let (Some(pt), Some(kind), param) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let ours = pt == "*" || formats.iter().any(|f| f.pt.to_string() == pt);
        match (kind, param) {
            ("nack", Some("pli")) if ours => feedback.pli = true,
            ("ccm", Some("fir")) if ours => feedback.fir = true,
            _ => {}
        }
    }
    let bandwidth = md
        .bandwidth
        .iter()
        .filter(|b| !b.experimental && CARRIED_BANDWIDTH.contains(&b.bandwidth_type.as_str()))
        .map(|b| (b.bandwidth_type.clone(), b.bandwidth))
        .take(CARRIED_BANDWIDTH.len())
        .collect();
    Ok(RemoteMedia {
        kind,
        port,
        proto,
        ip,
        formats,
        direction,
        ptime,
        rtcp_mux,
        rtcp,
        feedback,
        bandwidth,
    })
}

/// What was agreed for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioParams {
    /// Index of the m-line.
    pub index: usize,
    pub codec: Codec,
    /// The payload type the codec uses (static 0 or 8).
    pub pt: u8,
    /// The telephone-event payload type both sides use, if any.
    pub telephone_event: Option<u8>,
    /// Packet duration we send, from the remote `a=ptime` (10..=60 ms, default 20).
    pub ptime_ms: u32,
    /// Our direction.
    pub direction: Direction,
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
}

/// What was agreed for a video stream (relayed, never decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    pub index: usize,
    pub formats: Vec<Format>,
    pub direction: Direction,
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    /// The keyframe feedback agreed (what the leg takes from us).
    pub feedback: Feedback,
    /// The leg's `b=AS`/`b=TIAS`: what it wants to receive.
    pub bandwidth: Vec<(String, u64)>,
}

/// A video stream to relay: the formats and bandwidth to offer or to accept, from the
/// other leg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoSpec {
    pub formats: Vec<Format>,
    pub bandwidth: Vec<(String, u64)>,
}

impl VideoSpec {
    pub fn is_empty(&self) -> bool {
        self.formats.is_empty()
    }
}

/// The outcome of a negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub audio: AudioParams,
    pub video: Option<VideoParams>,
}

/// Our side of a session: addresses, ports and preferences.
#[derive(Debug, Clone)]
pub struct Local {
    pub ip: IpAddr,
    pub audio_port: u16,
    /// Codecs in our order of preference (used for offers; answers follow the offerer).
    pub codecs: Vec<Codec>,
    /// The telephone-event payload type we offer.
    pub telephone_event: Option<u8>,
    /// A port for video when we can relay it (another video leg exists), else `None`
    /// and video is declined.
    pub video_port: Option<u16>,
    /// Video formats to offer (copied from the other leg's offer when relaying).
    pub video_formats: Vec<Format>,
    /// The video bandwidth to state (the other leg's, when relaying).
    pub video_bandwidth: Vec<(String, u64)>,
    pub session_id: u64,
    pub version: u64,
}

fn session(local: &Local) -> SessionDescription {
    let fam = if local.ip.is_ipv4() { "IP4" } else { "IP6" };
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "omnigate".into(),
            session_id: local.session_id,
            session_version: local.version,
            network_type: "IN".into(),
            address_type: fam.into(),
            unicast_address: local.ip.to_string(),
        },
        session_name: "omnigate".into(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: fam.into(),
            address: Some(Address {
                address: local.ip.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        ..Default::default()
    }
}

fn attr(key: &str, value: Option<String>) -> Attribute {
    Attribute {
        key: key.into(),
        value,
    }
}

fn m_line(media: &str, port: u16, proto: &str, formats: Vec<String>) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: media.into(),
            port: RangedPort {
                value: port as isize,
                range: None,
            },
            protos: proto.split('/').map(str::to_string).collect(),
            formats,
        },
        ..Default::default()
    }
}

fn audio_attrs(
    md: &mut MediaDescription,
    codecs: &[Codec],
    te: Option<u8>,
    dir: Direction,
    mux: bool,
) {
    for c in codecs {
        md.attributes.push(attr(
            "rtpmap",
            Some(format!("{} {}/8000", c.pt(), c.name())),
        ));
    }
    if let Some(t) = te {
        md.attributes
            .push(attr("rtpmap", Some(format!("{t} telephone-event/8000"))));
        md.attributes.push(attr("fmtp", Some(format!("{t} 0-16"))));
    }
    md.attributes.push(attr("ptime", Some("20".into())));
    if mux {
        md.attributes.push(attr("rtcp-mux", None));
    }
    md.attributes.push(attr(dir.attr(), None));
}

fn video_attrs(
    md: &mut MediaDescription,
    formats: &[Format],
    dir: Direction,
    mux: bool,
    fb: Feedback,
    bandwidth: &[(String, u64)],
) {
    md.bandwidth = bandwidth
        .iter()
        .map(|(t, b)| rtc::sdp::description::common::Bandwidth {
            experimental: false,
            bandwidth_type: t.clone(),
            bandwidth: *b,
        })
        .collect();
    for f in formats {
        if !f.name.is_empty() {
            let ch = if f.channels.is_empty() {
                String::new()
            } else {
                format!("/{}", f.channels)
            };
            md.attributes.push(attr(
                "rtpmap",
                Some(format!("{} {}/{}{}", f.pt, f.name, f.rate, ch)),
            ));
        }
        if !f.fmtp.is_empty() {
            md.attributes
                .push(attr("fmtp", Some(format!("{} {}", f.pt, f.fmtp))));
        }
    }
    if fb.pli {
        md.attributes
            .push(attr("rtcp-fb", Some("* nack pli".into())));
    }
    if fb.fir {
        md.attributes
            .push(attr("rtcp-fb", Some("* ccm fir".into())));
    }
    if mux {
        md.attributes.push(attr("rtcp-mux", None));
    }
    md.attributes.push(attr(dir.attr(), None));
}

/// Builds our offer (initial, for offerless INVITEs, or for outbound calls).
pub fn offer(local: &Local, dir: Direction) -> String {
    let mut sd = session(local);
    let mut fmts: Vec<String> = local.codecs.iter().map(|c| c.pt().to_string()).collect();
    if let Some(t) = local.telephone_event {
        fmts.push(t.to_string());
    }
    let mut md = m_line("audio", local.audio_port, "RTP/AVP", fmts);
    audio_attrs(&mut md, &local.codecs, local.telephone_event, dir, false);
    sd.media_descriptions.push(md);
    if let (Some(vp), false) = (local.video_port, local.video_formats.is_empty()) {
        let mut md = m_line(
            "video",
            vp,
            "RTP/AVP",
            local
                .video_formats
                .iter()
                .map(|f| f.pt.to_string())
                .collect(),
        );
        video_attrs(
            &mut md,
            &local.video_formats,
            dir,
            false,
            Feedback::BOTH,
            &local.video_bandwidth,
        );
        sd.media_descriptions.push(md);
    }
    sd.marshal()
}

/// Answers a remote offer. `prefer` is a codec to keep if still offered (re-INVITEs keep
/// the codec in use). Returns our SDP and what was agreed; `NoCommonCodec` means 488.
pub fn answer(
    offer: &RemoteSession,
    local: &Local,
    prefer: Option<Codec>,
) -> Result<(String, Negotiated), SdpError> {
    let mut sd = session(local);
    let mut audio: Option<AudioParams> = None;
    let mut video: Option<VideoParams> = None;
    let mut saw_audio = false;
    for (index, m) in offer.media.iter().enumerate() {
        let proto_ok = m.proto.eq_ignore_ascii_case("RTP/AVP");
        match m.kind {
            Kind::Audio if audio.is_none() && m.port != 0 && proto_ok => {
                saw_audio = true;
                let ours: Vec<(Codec, u8)> = m
                    .formats
                    .iter()
                    .filter_map(|f| {
                        Codec::from_name(&f.name, f.rate)
                            .filter(|c| local.codecs.contains(c))
                            .map(|c| (c, f.pt))
                    })
                    .collect();
                let chosen = prefer
                    .and_then(|p| ours.iter().find(|(c, _)| *c == p))
                    .or(ours.first())
                    .copied();
                let Some((codec, pt)) = chosen else { continue };
                let te = m.telephone_event();
                let dir = m.effective_direction().answer();
                let ptime_ms = m
                    .ptime
                    .filter(|p| (10..=60).contains(p) && p % 10 == 0)
                    .unwrap_or(20);
                let mut fmts = vec![pt.to_string()];
                if let Some(t) = te {
                    fmts.push(t.to_string());
                }
                let mut md = m_line("audio", local.audio_port, &m.proto, fmts);
                // Our answer names the offerer's payload type (static 0/8 in practice).
                md.attributes
                    .push(attr("rtpmap", Some(format!("{pt} {}/8000", codec.name()))));
                if let Some(t) = te {
                    md.attributes
                        .push(attr("rtpmap", Some(format!("{t} telephone-event/8000"))));
                    md.attributes.push(attr("fmtp", Some(format!("{t} 0-16"))));
                }
                md.attributes.push(attr("ptime", Some("20".into())));
                if m.rtcp_mux {
                    md.attributes.push(attr("rtcp-mux", None));
                }
                md.attributes.push(attr(dir.attr(), None));
                sd.media_descriptions.push(md);
                audio = Some(AudioParams {
                    index,
                    codec,
                    pt,
                    telephone_event: te,
                    ptime_ms,
                    direction: dir,
                    remote_rtp: m.rtp_addr(),
                    remote_rtcp: m.rtcp_addr(),
                    rtcp_mux: m.rtcp_mux,
                });
                continue;
            }
            Kind::Video
                if video.is_none()
                    && m.port != 0
                    && video_proto_ok(&m.proto)
                    && local.video_port.is_some() =>
            {
                // Relay: accept the formats the other video leg also has (all, when it
                // has not stated any yet).
                let fmts: Vec<Format> =
                    m.formats
                        .iter()
                        .filter(|f| {
                            local.video_formats.is_empty()
                                || local.video_formats.iter().any(|o| {
                                    o.name.eq_ignore_ascii_case(&f.name) && o.rate == f.rate
                                })
                        })
                        .cloned()
                        .collect();
                if !fmts.is_empty() {
                    let dir = m.effective_direction().answer();
                    let mut md = m_line(
                        "video",
                        local.video_port.unwrap_or(0),
                        &m.proto,
                        fmts.iter().map(|f| f.pt.to_string()).collect(),
                    );
                    // An answer keeps the feedback offered that we take (both kinds).
                    video_attrs(
                        &mut md,
                        &fmts,
                        dir,
                        m.rtcp_mux,
                        m.feedback,
                        &local.video_bandwidth,
                    );
                    sd.media_descriptions.push(md);
                    video = Some(VideoParams {
                        index,
                        formats: fmts,
                        direction: dir,
                        remote_rtp: m.rtp_addr(),
                        remote_rtcp: m.rtcp_addr(),
                        rtcp_mux: m.rtcp_mux,
                        feedback: m.feedback,
                        bandwidth: m.bandwidth.clone(),
                    });
                    continue;
                }
            }
            Kind::Audio => saw_audio = true,
            _ => {}
        }
        // Declined: same media and formats, port 0 (RFC 3264 6).
        let media = match &m.kind {
            Kind::Audio => "audio".to_string(),
            Kind::Video => "video".to_string(),
            Kind::Other(s) => s.clone(),
        };
        let mut fmts: Vec<String> = m.formats.iter().map(|f| f.pt.to_string()).collect();
        if fmts.is_empty() {
            fmts.push("0".into());
        }
        sd.media_descriptions
            .push(m_line(&media, 0, &m.proto, fmts));
    }
    match audio {
        Some(audio) => Ok((sd.marshal(), Negotiated { audio, video })),
        None if saw_audio => Err(SdpError::NoCommonCodec),
        None => Err(SdpError::NoAudio),
    }
}

/// Reads the answer to our offer.
pub fn accept_answer(answer: &RemoteSession, local: &Local) -> Result<Negotiated, SdpError> {
    let mut audio = None;
    let mut video = None;
    for (index, m) in answer.media.iter().enumerate() {
        match m.kind {
            Kind::Audio if audio.is_none() && m.port != 0 => {
                let (codec, pt) = m
                    .formats
                    .iter()
                    .find_map(|f| {
                        Codec::from_name(&f.name, f.rate)
                            .filter(|c| local.codecs.contains(c))
                            .map(|c| (c, f.pt))
                    })
                    .ok_or(SdpError::AnswerMismatch("no codec we offered"))?;
                let te = m
                    .telephone_event()
                    .filter(|_| local.telephone_event.is_some());
                audio = Some(AudioParams {
                    index,
                    codec,
                    pt,
                    telephone_event: te,
                    ptime_ms: m
                        .ptime
                        .filter(|p| (10..=60).contains(p) && p % 10 == 0)
                        .unwrap_or(20),
                    direction: m.effective_direction().answer(),
                    remote_rtp: m.rtp_addr(),
                    remote_rtcp: m.rtcp_addr(),
                    rtcp_mux: m.rtcp_mux,
                });
            }
            Kind::Video if video.is_none() && m.port != 0 && local.video_port.is_some() => {
                video = Some(VideoParams {
                    index,
                    formats: m.formats.clone(),
                    direction: m.effective_direction().answer(),
                    remote_rtp: m.rtp_addr(),
                    remote_rtcp: m.rtcp_addr(),
                    rtcp_mux: m.rtcp_mux,
                    // We offered both: the answer says which it takes.
                    feedback: m.feedback,
                    bandwidth: m.bandwidth.clone(),
                });
            }
            _ => {}
        }
    }
    let audio = audio.ok_or(SdpError::NoCommonCodec)?;
    Ok(Negotiated { audio, video })
}

/// Our local parameters as our own SDP states them (for answering re-INVITEs with the
/// same ports).
pub fn local_of(our_sdp: &[u8], ip_fallback: IpAddr) -> Option<Local> {
    let s = RemoteSession::parse(our_sdp).ok()?;
    let a = s
        .media
        .iter()
        .find(|m| m.kind == Kind::Audio && m.port != 0)?;
    let v = s
        .media
        .iter()
        .find(|m| m.kind == Kind::Video && m.port != 0);
    Some(Local {
        ip: a.ip.unwrap_or(ip_fallback),
        audio_port: a.port,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: Some(101),
        video_port: v.map(|v| v.port),
        video_formats: v.map(|v| v.formats.clone()).unwrap_or_default(),
        video_bandwidth: v.map(|v| v.bandwidth.clone()).unwrap_or_default(),
        session_id: s.session_id,
        version: s.version,
    })
}

/// The codec our last SDP put first.
fn codec_in_use(our_last: &[u8]) -> Option<Codec> {
    RemoteSession::parse(our_last).ok().and_then(|s| {
        s.first_audio().and_then(|a| {
            a.formats
                .iter()
                .find_map(|f| Codec::from_name(&f.name, f.rate))
        })
    })
}

/// A new offer of our last SDP with another direction (hold, resume): same ports and
/// session id, version + 1, the codec in use first.
pub fn reoffer(our_last: &[u8], dir: Direction) -> Option<String> {
    let mut local = local_of(our_last, UNSPECIFIED)?;
    local.version += 1;
    let current = codec_in_use(our_last);
    if let Some(c) = current {
        local.codecs.retain(|x| *x != c);
        local.codecs.insert(0, c);
    }
    Some(offer(&local, dir))
}

/// A new offer of our last SDP adding a video stream on `port` in `formats` (the
/// agent adds video to an audio call): same audio, version + 1, sendrecv. None when
/// our last SDP has video already, or no audio.
pub fn reoffer_adding_video(our_last: &[u8], port: u16, formats: &[Format]) -> Option<String> {
    let s = RemoteSession::parse(our_last).ok()?;
    if s.media.iter().any(|m| m.kind == Kind::Video) || formats.is_empty() {
        // A video m-line, even refused, keeps its place: RFC 3264 §8 reuses it, and
        // the answers we write never add one after the fact.
        return None;
    }
    let mut local = local_of(our_last, UNSPECIFIED)?;
    local.version += 1;
    if let Some(c) = codec_in_use(our_last) {
        local.codecs.retain(|x| *x != c);
        local.codecs.insert(0, c);
    }
    local.video_port = Some(port);
    local.video_formats = formats.to_vec();
    Some(offer(&local, Direction::SendRecv))
}

/// Placeholder address for "no address yet".
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests;

/// Whether we could answer this offer (initial INVITE screening: 488 otherwise).
/// `webrtc`: a WebRTC offer (DTLS-SRTP) can be answered by a browser leg (the request
/// came over the SIP WebSocket transport and browser legs are on).
pub fn check_offer(body: &[u8], webrtc: bool) -> Result<(), SdpError> {
    let r = RemoteSession::parse(body)?;
    // Say why a WebRTC offer is refused, rather than "no common codec".
    let audio: Vec<&RemoteMedia> = r
        .media
        .iter()
        .filter(|m| m.kind == Kind::Audio && m.port != 0)
        .collect();
    if !audio.is_empty() && audio.iter().all(|m| m.proto.contains("SAVP")) {
        if webrtc && audio[0].proto == WEBRTC_PROTO {
            return webrtc_codec(body).map(|_| ());
        }
        return Err(SdpError::SecureMediaOnly(audio[0].proto.clone()));
    }
    let probe = Local {
        ip: UNSPECIFIED,
        audio_port: 9,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: Some(101),
        video_port: None,
        video_formats: vec![],
        video_bandwidth: vec![],
        session_id: 0,
        version: 0,
    };
    answer(&r, &probe, None).map(|_| ())
}

/// The audio profile of WebRTC offers: DTLS-SRTP with RTCP feedback.
pub const WEBRTC_PROTO: &str = "UDP/TLS/RTP/SAVPF";

/// Whether this offer's audio is WebRTC's (a browser leg answers it).
pub fn is_webrtc_offer(body: &[u8]) -> bool {
    RemoteSession::parse(body).is_ok_and(|r| {
        r.media
            .iter()
            .find(|m| m.kind == Kind::Audio && m.port != 0)
            .is_some_and(|m| m.proto == WEBRTC_PROTO)
    })
}

/// The video formats of a description's first video stream that is not declined.
pub fn video_formats(body: &[u8]) -> Vec<Format> {
    RemoteSession::parse(body)
        .ok()
        .and_then(|r| {
            r.media
                .into_iter()
                .find(|m| m.kind == Kind::Video && m.port != 0)
        })
        .map(|m| m.formats)
        .unwrap_or_default()
}

/// The G.711 law a browser leg answers a WebRTC offer with (PCMU first), so the call
/// is bridged without transcoding.
pub fn webrtc_codec(body: &[u8]) -> Result<Codec, SdpError> {
    let r = RemoteSession::parse(body)?;
    let audio = r
        .media
        .iter()
        .find(|m| m.kind == Kind::Audio && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let has = |name: &str, pt: u8| {
        audio
            .formats
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name) || (f.name.is_empty() && f.pt == pt))
    };
    if has("PCMU", 0) {
        Ok(Codec::Pcmu)
    } else if has("PCMA", 8) {
        Ok(Codec::Pcma)
    } else {
        Err(SdpError::WebRtcNoG711)
    }
}

/// Answers a re-offer (re-INVITE or UPDATE) from the SDP we last sent: same ports and
/// session id, version + 1, and the codec in use kept when the offer still has it.
pub fn reanswer(our_last: &[u8], offer: &[u8]) -> Result<(String, Negotiated), SdpError> {
    let mut local = local_of(our_last, UNSPECIFIED).ok_or(SdpError::NoAudio)?;
    local.version += 1;
    let current = codec_in_use(our_last);
    answer(&RemoteSession::parse(offer)?, &local, current)
}
