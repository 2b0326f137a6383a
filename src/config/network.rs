//! `[sip]`, `[http]`, `[webrtc]`, `[rtp]`, `[[user]]` and `[[trunk]]`.

use super::values::{cidrs, digest_algorithms, listener, port_or_off, transport, PortRange};
use crate::sip::auth::Algorithm;
use crate::sip::trunk::Cidr;
use crate::sip::Transport;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Listen addresses; "off" turns a transport off.
    #[serde(deserialize_with = "listener")]
    pub udp: Option<SocketAddr>,
    #[serde(deserialize_with = "listener")]
    pub tcp: Option<SocketAddr>,
    #[serde(deserialize_with = "listener")]
    pub tls: Option<SocketAddr>,
    #[serde(deserialize_with = "listener")]
    pub ws: Option<SocketAddr>,
    /// Address put in Via and Contact when listening on 0.0.0.0 (default: the listen
    /// address, or 127.0.0.1 for an unspecified one).
    pub advertise: Option<std::net::IpAddr>,
    pub realm: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub t1_ms: u64,
    pub session_expires: u32,
    pub min_se: u32,
    pub keepalive_interval: u32,
    pub min_register_expires: u32,
    pub max_register_expires: u32,
    /// UDP receive buffer in bytes (large values prevent kernel drops under load).
    pub udp_recv_buffer: usize,
    /// Digest challenges offered, in preference order: "MD5", "SHA-256".
    #[serde(deserialize_with = "digest_algorithms")]
    pub digest_algorithms: Vec<Algorithm>,
    /// Web pages (origins, e.g. "https://phone.example.com") whose scripts may use SIP
    /// over WebSocket; "*" allows any. Clients that send no Origin (softphones) are
    /// always allowed. Default: this node's own HTTP origin.
    pub ws_origins: Vec<String>,
    /// TCP, TLS and WebSocket connections open at once (lowered to fit the process's
    /// descriptor limit, which is raised to its maximum at start-up).
    pub max_connections: usize,
    /// ...and from one IP address.
    pub max_connections_per_address: usize,
    /// A connection that has received nothing for this many seconds is closed.
    pub connection_idle_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            udp: Some("127.0.0.1:5060".parse().unwrap()),
            tcp: Some("127.0.0.1:5060".parse().unwrap()),
            tls: Some("127.0.0.1:5061".parse().unwrap()),
            ws: Some("127.0.0.1:5066".parse().unwrap()),
            advertise: None,
            realm: "omnigate".into(),
            tls_cert: "certs/omnigate.pem".into(),
            tls_key: "certs/omnigate.key".into(),
            t1_ms: 500,
            session_expires: 1800,
            min_se: 90,
            keepalive_interval: 30,
            min_register_expires: 60,
            max_register_expires: 7200,
            udp_recv_buffer: 4 << 20,
            digest_algorithms: vec![Algorithm::Md5],
            ws_origins: Vec::new(),
            max_connections: 4096,
            max_connections_per_address: 256,
            connection_idle_secs: 3660,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// "off" turns the HTTP side off.
    #[serde(deserialize_with = "listener")]
    pub listen: Option<SocketAddr>,
    /// Bearer token for the admin API (`POST /api/calls`). Demo default: "demo-admin".
    pub admin_token: Option<String>,
    /// Bearer token `GET /metrics` asks for (none: open, as Prometheus expects on a
    /// private network).
    pub metrics_token: Option<String>,
    /// An agent's session ends after this many minutes without use.
    pub session_idle_mins: u64,
    /// HTTPS listener for the same API and pages (off by default).
    #[serde(deserialize_with = "listener")]
    pub tls_listen: Option<SocketAddr>,
    /// Its certificate and key (PEM); default: the SIP TLS ones (`[sip] tls_cert`,
    /// generated self-signed on first start when missing).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some("127.0.0.1:8080".parse().unwrap()),
            admin_token: None,
            metrics_token: None,
            session_idle_mins: 480,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// "LOW-HIGH", even ports used for RTP.
    pub ports: PortRange,
    /// Address for RTP sockets and SDP (default: the SIP advertise address).
    pub address: Option<std::net::IpAddr>,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            ports: PortRange {
                lo: 10000,
                hi: 20000,
            },
            address: None,
        }
    }
}

/// `[webrtc]`: browser legs (agents answering calls in the desktop page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    /// The UDP port every browser leg shares (ICE, DTLS-SRTP); "off" (or 0): browser
    /// calls off.
    #[serde(deserialize_with = "port_or_off")]
    pub port: u16,
    /// Address browsers send to (our ICE host candidate), e.g. the public address of a
    /// NAT. Default: `[rtp] address`, else the SIP advertise address.
    pub public_address: Option<std::net::IpAddr>,
    /// Music a caller hears when the agent holds the call (8 kHz or any WAV, resampled).
    /// Default: `hold-music.wav` from the dialplans' prompts folder, else a soft tone.
    pub hold_music: String,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            port: 20100,
            public_address: None,
            hold_music: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkToml {
    pub name: String,
    /// Addresses or CIDR blocks calls from this trunk come from.
    #[serde(default, deserialize_with = "cidrs")]
    pub inbound: Vec<Cidr>,
    pub inbound_username: Option<String>,
    pub inbound_password: Option<String>,
    pub proxy: Option<SocketAddr>,
    #[serde(default = "default_transport", deserialize_with = "transport")]
    pub transport: Transport,
    pub domain: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from_user: Option<String>,
    #[serde(default)]
    pub register: bool,
    #[serde(default = "default_reg_expires")]
    pub register_expires: u32,
    #[serde(default)]
    pub options_interval: u32,
    /// transport = "tls": CA bundle (PEM) that signs the provider's certificate
    /// (default: the system bundle /etc/ssl/certs/ca-certificates.crt).
    pub tls_ca: Option<PathBuf>,
}

fn default_transport() -> Transport {
    Transport::Udp
}

fn default_reg_expires() -> u32 {
    600
}
