//! Trunks: registration (with digest authentication and refresh) and OPTIONS pings
//! that mark a trunk healthy or down.

use super::*;

impl Core {
    pub(super) fn send_register(
        &mut self,
        now: Instant,
        i: usize,
        auth: Option<(HeaderName, String)>,
        expires: u32,
    ) {
        let t = self.cfg.trunks[i].clone();
        let Some(peer) = t.proxy_peer() else { return };
        let Some(user) = t.username.clone() else {
            return;
        };
        let domain = t.domain();
        let st = &mut self.trunk_state[i];
        st.reg_cseq += 1;
        let mut reg = Message::request(Method::Register, &format!("sip:{domain}"));
        reg.push(HeaderName::MaxForwards, "70");
        reg.push(
            HeaderName::From,
            format!("<sip:{user}@{domain}>;tag={}", rand_hex(&self.rng, 10)),
        );
        reg.push(HeaderName::To, format!("<sip:{user}@{domain}>"));
        reg.push(HeaderName::CallId, st.reg_call_id.clone());
        reg.push(HeaderName::CSeq, format!("{} REGISTER", st.reg_cseq));
        reg.push(HeaderName::Contact, self.contact_for(peer.transport));
        reg.push(HeaderName::Expires, expires.to_string());
        if let Some((n, v)) = auth {
            reg.push(n, v);
        }
        self.send_request(now, reg, peer, Purpose::Register(i));
    }

    pub(super) fn on_register_response(
        &mut self,
        now: Instant,
        i: usize,
        resp: Message,
        code: u16,
    ) {
        if code < 200 {
            return;
        }
        let t = self.cfg.trunks[i].clone();
        if (code == 401 || code == 407) && self.trunk_state[i].register_failures < 1 {
            let hn = if code == 401 {
                HeaderName::WwwAuthenticate
            } else {
                HeaderName::ProxyAuthenticate
            };
            let an = if code == 401 {
                HeaderName::Authorization
            } else {
                HeaderName::ProxyAuthorization
            };
            if let (Some(u), Some(p), Some(ch)) = (
                t.username.clone(),
                t.password.clone(),
                resp.header_str(&hn).map(str::to_string),
            ) {
                let uri = format!("sip:{}", t.domain());
                let (cn, nc) = self.next_cnonce();
                if let Some(a) = answer_challenge(&ch, "REGISTER", &uri, &u, &p, &cn, nc) {
                    self.trunk_state[i].register_failures += 1;
                    self.send_register(now, i, Some((an, a)), t.register_expires);
                    return;
                }
            }
        }
        if (200..300).contains(&code) {
            let granted = resp
                .list_values(&HeaderName::Contact)
                .iter()
                .filter_map(|c| crate::sip::header::NameAddr::parse(c).ok())
                .filter_map(|n| {
                    n.params
                        .value("expires")
                        .and_then(crate::sip::header::parse_delta_seconds)
                })
                .next()
                .or_else(|| {
                    resp.header_str(&HeaderName::Expires)
                        .and_then(crate::sip::header::parse_delta_seconds)
                })
                .unwrap_or(t.register_expires)
                .max(10);
            let st = &mut self.trunk_state[i];
            let was = st.registered;
            st.registered = true;
            st.register_failures = 0;
            st.registered_until = Some(now + Duration::from_secs(granted as u64));
            self.arm(
                now + Duration::from_secs((granted / 2).max(5) as u64),
                CoreTimer::TrunkRegister(i),
            );
            if !was {
                tracing::info!(trunk = %t.name, expires = granted, "registered to provider");
                self.events.push_back(CoreEvent::TrunkRegistration {
                    trunk: t.name.clone(),
                    registered: true,
                });
            }
        } else {
            let st = &mut self.trunk_state[i];
            st.registered = false;
            st.register_failures = 0;
            tracing::warn!(trunk = %t.name, code, "registration to provider failed; retrying in 60 s");
            self.arm(now + Duration::from_secs(60), CoreTimer::TrunkRegister(i));
            self.events.push_back(CoreEvent::TrunkRegistration {
                trunk: t.name.clone(),
                registered: false,
            });
        }
    }

    pub(super) fn send_options(
        &mut self,
        now: Instant,
        peer: Peer,
        uri: &str,
        to: &str,
        purpose: Purpose,
    ) {
        let mut o = Message::request(Method::Options, uri);
        o.push(HeaderName::MaxForwards, "70");
        o.push(
            HeaderName::From,
            format!(
                "<sip:omnigate@{}>;tag={}",
                self.local_addr(peer.transport),
                self.rand_hex(10)
            ),
        );
        o.push(HeaderName::To, format!("<{to}>"));
        o.push(
            HeaderName::CallId,
            format!("{}@omnigate", self.rand_hex(16)),
        );
        o.push(HeaderName::CSeq, "1 OPTIONS");
        self.send_request(now, o, peer, purpose);
    }
}
