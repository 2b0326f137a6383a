//! Dialogs (RFC 3261 section 12): identifiers, route sets, CSeq rules and the building
//! of in-dialog requests; session timers (RFC 4028). Sans-IO: no clock reads.

use super::addr::Peer;
use super::header::{HeaderName, NameAddr};
use super::message::{Message, Method};
use std::time::{Duration, Instant};

/// Call-ID plus local and remote tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog an incoming request belongs to (we are the To side).
    pub fn of_request(req: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.call_id().to_string(),
            local_tag: req.to_tag()?.to_string(),
            remote_tag: req.from_tag()?.to_string(),
        })
    }

    /// The dialog an incoming response belongs to (we are the From side).
    pub fn of_response(resp: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.call_id().to_string(),
            local_tag: resp.from_tag()?.to_string(),
            remote_tag: resp.to_tag()?.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Who refreshes the session (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Us,
    Them,
}

#[derive(Debug, Clone)]
pub struct SessionTimer {
    pub interval: Duration,
    pub refresher: Refresher,
    /// When we refresh (Us) or when we give up waiting for a refresh (Them).
    pub deadline: Instant,
}

impl SessionTimer {
    pub fn new(now: Instant, interval: Duration, refresher: Refresher) -> SessionTimer {
        let deadline = match refresher {
            Refresher::Us => now + interval / 2,
            // RFC 4028 10: BYE at expiry minus min(32 s, interval/3).
            Refresher::Them => now + interval - (interval / 3).min(Duration::from_secs(32)),
        };
        SessionTimer {
            interval,
            refresher,
            deadline,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub role: Role,
    pub state: DialogState,
    pub local_uri: String,
    pub remote_uri: String,
    /// Remote target (the peer's Contact URI).
    pub remote_target: String,
    /// Route set, in the order requests must carry it.
    pub route_set: Vec<String>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go (connection reuse, NAT).
    pub peer: Peer,
    /// An INVITE or UPDATE we sent is pending: a crossing re-INVITE gets 491.
    pub pending_offer: bool,
    pub session_timer: Option<SessionTimer>,
    /// Does the peer accept UPDATE (its Allow)?
    pub peer_allows_update: bool,
}

/// Why an in-dialog request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDialogError {
    /// CSeq lower than the last one (RFC 3261 12.2.2): 500.
    CSeqOutOfOrder,
}

impl Dialog {
    /// UAS side, from the INVITE we answer with a 2xx carrying `local_tag`; our own
    /// requests in it start at CSeq `local_seq` (the caller's random choice).
    pub fn uas(invite: &Message, local_tag: &str, source: Peer, local_seq: u32) -> Option<Dialog> {
        let from = invite.from()?;
        let to = invite.to()?;
        let contact = invite
            .list_values(&HeaderName::Contact)
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.raw.to_string())?;
        let route_set: Vec<String> = invite
            .list_values(&HeaderName::RecordRoute)
            .into_iter()
            .map(str::to_string)
            .collect();
        Some(Dialog {
            id: DialogId {
                call_id: invite.call_id().to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: from.tag()?.to_string(),
            },
            role: Role::Uas,
            state: DialogState::Early,
            local_uri: to.uri.raw.to_string(),
            remote_uri: from.uri.raw.to_string(),
            remote_target: contact,
            peer: next_hop(&route_set, source),
            route_set,
            local_seq,
            remote_seq: invite.cseq().map(|c| c.0),
            pending_offer: false,
            session_timer: None,
            peer_allows_update: allows(invite, "UPDATE"),
        })
    }

    /// UAC side, from the INVITE we sent and the 2xx (or 1xx with tag) we got.
    pub fn uac(invite: &Message, resp: &Message, peer: Peer) -> Option<Dialog> {
        let from = invite.from()?;
        let to = resp.to()?;
        let contact = resp
            .list_values(&HeaderName::Contact)
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.raw.to_string())?;
        let mut route_set: Vec<String> = resp
            .list_values(&HeaderName::RecordRoute)
            .into_iter()
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Some(Dialog {
            id: DialogId {
                call_id: invite.call_id().to_string(),
                local_tag: from.tag()?.to_string(),
                remote_tag: to.tag()?.to_string(),
            },
            role: Role::Uac,
            state: if resp.status().unwrap_or(0) >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local_uri: from.uri.raw.to_string(),
            remote_uri: to.uri.raw.to_string(),
            remote_target: contact,
            peer: next_hop(&route_set, peer),
            route_set,
            local_seq: invite.cseq().map(|c| c.0).unwrap_or(1),
            remote_seq: None,
            pending_offer: false,
            session_timer: None,
            peer_allows_update: allows(resp, "UPDATE"),
        })
    }

    /// Applies the CSeq rule to an incoming in-dialog request (not ACK or CANCEL).
    pub fn check_remote_cseq(&mut self, req: &Message) -> Result<(), InDialogError> {
        let Some((n, m)) = req.cseq() else {
            return Ok(());
        };
        if matches!(m, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_seq {
            if n <= last && !(n == last && m == Method::Invite) {
                return Err(InDialogError::CSeqOutOfOrder);
            }
        }
        self.remote_seq = Some(n);
        Ok(())
    }

    /// A new in-dialog request (RFC 3261 12.2.1.1). The caller adds Via, Contact and body.
    /// ACK reuses the INVITE's CSeq number; everything else takes the next one.
    pub fn request(&mut self, method: Method) -> Message {
        if method != Method::Ack && method != Method::Cancel {
            self.local_seq += 1;
        }
        // Loose routing (lr): Request-URI is the remote target, Route carries the set.
        // Strict routing: the first route becomes the Request-URI.
        let strict = self.route_set.first().is_some_and(|r| {
            NameAddr::parse(r)
                .map(|n| !n.uri.params.has("lr"))
                .unwrap_or(false)
        });
        let (ruri, routes): (String, Vec<String>) = if strict {
            let first = NameAddr::parse(&self.route_set[0])
                .map(|n| n.uri.raw.to_string())
                .unwrap_or_default();
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (first, rest)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let mut m = Message::request(method.clone(), &ruri);
        for r in routes {
            m.push(HeaderName::Route, r);
        }
        m.push(HeaderName::MaxForwards, "70");
        m.push(
            HeaderName::From,
            format!("<{}>;tag={}", self.local_uri, self.id.local_tag),
        );
        m.push(
            HeaderName::To,
            format!("<{}>;tag={}", self.remote_uri, self.id.remote_tag),
        );
        m.push(HeaderName::CallId, self.id.call_id.clone());
        m.push(
            HeaderName::CSeq,
            format!("{} {}", self.local_seq, method.as_str()),
        );
        m
    }
}

/// Where in-dialog requests go (RFC 3261 12.2.1.1, 8.1.2): to the first route when a
/// proxy record-routed and it names another address than `fallback`; otherwise to
/// `fallback`, the address the dialog was made with (its connection, its NAT binding).
pub fn next_hop(route_set: &[String], fallback: Peer) -> Peer {
    let Some(na) = route_set.first().and_then(|r| NameAddr::parse(r).ok()) else {
        return fallback;
    };
    let Ok(ip) = na.uri.host_bare().parse::<std::net::IpAddr>() else {
        return fallback; // a name: resolving it is the driver's job; keep the peer
    };
    let sips = na.uri.scheme == super::uri::Scheme::Sips;
    let transport = match na.uri.param("transport").flatten() {
        Some(t) => super::addr::Transport::parse(t).unwrap_or(fallback.transport),
        None if sips => super::addr::Transport::Tls,
        None => super::addr::Transport::Udp,
    };
    let port = na.uri.port.unwrap_or(if sips { 5061 } else { 5060 });
    let addr = std::net::SocketAddr::new(ip, port);
    if addr == fallback.addr && transport == fallback.transport {
        return fallback;
    }
    Peer {
        transport,
        addr,
        conn: None,
    }
}

fn allows(m: &Message, method: &str) -> bool {
    m.list_values(&HeaderName::Allow)
        .iter()
        .any(|a| a.eq_ignore_ascii_case(method))
}

/// Reads `Session-Expires: N[;refresher=uac|uas]`.
pub fn parse_session_expires(m: &Message) -> Option<(u32, Option<&str>)> {
    let v = m.header_str(&HeaderName::SessionExpires)?;
    let (num, rest) = match v.find(';') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let n = super::header::parse_delta_seconds(num)?;
    let params = super::syntax::Params::parse_header_params(rest).ok()?;
    Some((n, params.get("refresher").flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Framing;
    use bytes::Bytes;

    fn invite() -> Message {
        Message::parse(
            Bytes::from_static(
                b"INVITE sip:100@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nRecord-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nFrom: <sip:a@x>;tag=ft\r\nTo: <sip:100@gw>\r\nCall-ID: d1\r\nCSeq: 10 INVITE\r\nContact: <sip:a@10.0.0.1:5062>\r\nAllow: INVITE, ACK, BYE, UPDATE\r\nContent-Length: 0\r\n\r\n",
            ),
            Framing::Datagram,
        )
        .unwrap()
    }

    #[test]
    fn uas_dialog_builds_loose_routed_bye() {
        let inv = invite();
        let mut d =
            Dialog::uas(&inv, "lt", Peer::udp("10.0.0.1:5060".parse().unwrap()), 1).unwrap();
        assert!(d.peer_allows_update);
        let bye = d.request(Method::Bye);
        assert_eq!(bye.request_uri(), Some("sip:a@10.0.0.1:5062"));
        let routes: Vec<_> = bye.list_values(&HeaderName::Route);
        assert_eq!(
            routes,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(bye.from_tag(), Some("lt"));
        assert_eq!(bye.to_tag(), Some("ft"));
    }

    #[test]
    fn cseq_must_increase() {
        let inv = invite();
        let mut d =
            Dialog::uas(&inv, "lt", Peer::udp("10.0.0.1:5060".parse().unwrap()), 1).unwrap();
        let mut bye = inv.clone();
        bye.set(HeaderName::CSeq, "9 BYE");
        assert_eq!(
            d.check_remote_cseq(&bye),
            Err(InDialogError::CSeqOutOfOrder)
        );
        bye.set(HeaderName::CSeq, "11 BYE");
        assert_eq!(d.check_remote_cseq(&bye), Ok(()));
    }

    #[test]
    fn session_timer_deadlines() {
        let t0 = crate::clock::now();
        let us = SessionTimer::new(t0, Duration::from_secs(1800), Refresher::Us);
        assert_eq!(us.deadline - t0, Duration::from_secs(900));
        let them = SessionTimer::new(t0, Duration::from_secs(90), Refresher::Them);
        assert_eq!(them.deadline - t0, Duration::from_secs(60));
    }
}
