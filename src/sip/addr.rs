//! Where a message came from or goes to: transport kind, socket address and, for
//! stream transports, the connection it arrived on (so responses and in-dialog requests
//! reuse it, RFC 3261 18.2.2 and RFC 5923 style connection reuse).

use super::header::Via;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Reliable transports need no retransmissions (RFC 3261 17.1.1.2).
    pub fn reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            "WS" => Transport::Ws,
            "WSS" => Transport::Wss,
            _ => return None,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_name())
    }
}

/// Identifies one stream connection inside the transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A remote end: how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
            conn: None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// Where responses to a request received from `source` go (RFC 3261 18.2.2 with
/// RFC 3581 rport): the same connection for streams; for UDP the source address when
/// the top Via asked for rport or names another host, else the Via's sent-by port.
pub fn response_peer(via: Option<&Via<'_>>, source: Peer) -> Peer {
    if source.transport.reliable() {
        return source;
    }
    let Some(via) = via else { return source };
    if via.rport().is_some() {
        return source;
    }
    let port = via.port.unwrap_or(5060);
    let same_host = via.host_ip() == Some(source.addr.ip());
    if same_host {
        Peer {
            addr: SocketAddr::new(source.addr.ip(), port),
            ..source
        }
    } else {
        // "received" rule: send to the source address, at the sent-by port.
        Peer {
            addr: SocketAddr::new(source.addr.ip(), port),
            ..source
        }
    }
}

impl Via<'_> {
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}
