//! Minimal SDP offer/answer for audio (RFC 3264 / RFC 4566): enough for the built-in
//! call handler to answer G.711 offers, make offers, and refuse offers with no common
//! codec (488). The media issue grows this into the full negotiator.

use std::net::{IpAddr, SocketAddr};

/// Payload types we can speak: PCMU (0) and PCMA (8), plus telephone-event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The direction that answers an offer of `self` (RFC 3264 6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What we read from a remote audio description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAudio {
    pub addr: SocketAddr,
    pub codec: Codec,
    pub telephone_event: Option<u8>,
    pub direction: Direction,
}

/// Why an offer cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8 text")]
    NotText,
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("no common codec (we speak PCMU and PCMA)")]
    NoCommonCodec,
    #[error("SDP connection address missing or invalid")]
    BadConnection,
}

/// Reads the first audio m-line of an SDP body.
pub fn parse_audio(body: &[u8]) -> Result<RemoteAudio, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port = 0u16;
    let mut pts: Vec<u8> = Vec::new();
    let mut te = None;
    let mut dir = Direction::SendRecv;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if seen_audio && in_audio {
                break;
            }
            in_audio = m.starts_with("audio ");
            if in_audio {
                seen_audio = true;
                let f: Vec<&str> = m.split_whitespace().collect();
                port = f.get(1).and_then(|p| p.split('/').next()?.parse().ok()).unwrap_or(0);
                pts = f.iter().skip(3).filter_map(|p| p.parse().ok()).collect();
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2).and_then(|a| a.split('/').next()?.parse().ok());
            if in_audio {
                media_ip = ip;
            } else if !seen_audio {
                session_ip = ip;
            }
        } else if let Some(a) = line.strip_prefix("a=") {
            if !seen_audio || in_audio {
                match a {
                    "sendonly" => dir = Direction::SendOnly,
                    "recvonly" => dir = Direction::RecvOnly,
                    "inactive" => dir = Direction::Inactive,
                    "sendrecv" => dir = Direction::SendRecv,
                    _ => {}
                }
            }
            if in_audio {
                if let Some(r) = a.strip_prefix("rtpmap:") {
                    let mut it = r.splitn(2, ' ');
                    let pt: Option<u8> = it.next().and_then(|p| p.parse().ok());
                    let enc = it.next().unwrap_or("");
                    if enc.to_ascii_lowercase().starts_with("telephone-event/8000") {
                        te = pt;
                    }
                }
            }
        }
    }
    if !seen_audio {
        return Err(SdpError::NoAudio);
    }
    let codec = pts
        .iter()
        .find_map(|&p| match p {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let ip = media_ip.or(session_ip).ok_or(SdpError::BadConnection)?;
    Ok(RemoteAudio { addr: SocketAddr::new(ip, port), codec, telephone_event: te.filter(|_| pts.contains(&te.unwrap_or(255))), direction: dir })
}

/// Builds our audio description: an answer (one codec) or an offer (`codecs` in order).
pub fn build(ip: IpAddr, port: u16, codecs: &[Codec], te: Option<u8>, dir: Direction, session_id: u64, version: u64) -> String {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts: Vec<String> = codecs.iter().map(|c| c.pt().to_string()).collect();
    if let Some(t) = te {
        pts.push(t.to_string());
    }
    let mut s = format!(
        "v=0\r\no=omnigate {session_id} {version} IN {fam} {ip}\r\ns=omnigate\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n",
        pts.join(" ")
    );
    for c in codecs {
        s.push_str(&format!("a=rtpmap:{} {}/8000\r\n", c.pt(), c.name()));
    }
    if let Some(t) = te {
        s.push_str(&format!("a=rtpmap:{t} telephone-event/8000\r\na=fmtp:{t} 0-16\r\n"));
    }
    s.push_str("a=ptime:20\r\n");
    s.push_str(&format!("a={}\r\n", dir.attr()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_sipp_style_offer() {
        let offer = b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let r = parse_audio(offer).unwrap();
        assert_eq!(r.codec, Codec::Pcma);
        assert_eq!(r.addr, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(r.telephone_event, Some(101));
        let ans = build(r.addr.ip(), 10000, &[r.codec], r.telephone_event, r.direction.answer(), 1, 1);
        assert!(ans.contains("m=audio 10000 RTP/AVP 8 101"));
    }

    #[test]
    fn no_common_codec_and_hold() {
        let offer = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\na=sendonly\r\n";
        assert_eq!(parse_audio(offer), Err(SdpError::NoCommonCodec));
        let hold = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
        assert_eq!(parse_audio(hold).unwrap().direction.answer(), Direction::RecvOnly);
        assert_eq!(parse_audio(b"v=0\r\n"), Err(SdpError::NoAudio));
    }
}
