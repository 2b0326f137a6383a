//! Trunks: who may send us calls (source CIDRs and/or digest credentials), where our
//! outbound calls go, registration to a provider, and health from OPTIONS pings.

use super::addr::{Peer, Transport};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// An address block, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse().ok().filter(|&v| v <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// A trunk as configured.
#[derive(Debug, Clone)]
pub struct TrunkConfig {
    pub name: String,
    /// Sources allowed to send calls on this trunk.
    pub inbound_cidrs: Vec<Cidr>,
    /// When set, inbound calls must also authenticate with these credentials.
    pub inbound_username: Option<String>,
    pub inbound_password: Option<String>,
    /// The provider's proxy/registrar: where outbound calls and REGISTER go.
    pub proxy: Option<SocketAddr>,
    pub transport: Transport,
    /// Domain for Request-URI, From and To (defaults to the proxy address).
    pub domain: Option<String>,
    /// Credentials answering the provider's challenges.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Caller id we present (From user) on outbound calls.
    pub from_user: Option<String>,
    pub register: bool,
    pub register_expires: u32,
    /// OPTIONS ping interval in seconds (0: off).
    pub options_interval: u32,
}

impl TrunkConfig {
    /// A trunk that matches nothing and goes nowhere until its fields are set.
    pub fn new(name: &str) -> TrunkConfig {
        TrunkConfig {
            name: name.to_string(),
            inbound_cidrs: Vec::new(),
            inbound_username: None,
            inbound_password: None,
            proxy: None,
            transport: Transport::Udp,
            domain: None,
            username: None,
            password: None,
            from_user: None,
            register: false,
            register_expires: 600,
            options_interval: 0,
        }
    }

    pub fn domain(&self) -> String {
        match (&self.domain, self.proxy) {
            (Some(d), _) => d.clone(),
            (None, Some(p)) => p.to_string(),
            (None, None) => "invalid".into(),
        }
    }

    pub fn proxy_peer(&self) -> Option<Peer> {
        self.proxy.map(|addr| Peer {
            transport: self.transport,
            addr,
            conn: None,
        })
    }

    pub fn matches_source(&self, ip: IpAddr) -> bool {
        self.inbound_cidrs.iter().any(|c| c.contains(ip))
    }
}

/// Runtime state of a trunk.
#[derive(Debug, Clone, Default)]
pub struct TrunkState {
    pub registered: bool,
    pub registered_until: Option<Instant>,
    pub register_failures: u32,
    /// None until the first OPTIONS answer or timeout; outbound routing treats
    /// unknown as healthy.
    pub healthy: Option<bool>,
    pub reg_call_id: String,
    pub reg_cseq: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
