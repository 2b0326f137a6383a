//! The core as user-agent client: placing calls (through trunks with failover, to a
//! registered user, to a SIP URI), their INVITE and its answers and timeouts, hold
//! (re-INVITE), hang-up (BYE or CANCEL).

use super::*;

impl Core {
    /// Puts the far end on hold (a re-INVITE with `sendonly`) or takes it off
    /// (`sendrecv`).
    pub fn hold(&mut self, now: Instant, call: CallRef, on: bool) {
        let dir = if on {
            crate::sdp::Direction::SendOnly
        } else {
            crate::sdp::Direction::SendRecv
        };
        self.reinvite(now, call, dir);
    }

    /// Sends a re-INVITE offering our last SDP with `dir` (hold: sendonly; resume:
    /// sendrecv), version + 1. Nothing happens while an offer of ours is pending.
    pub fn reinvite(&mut self, now: Instant, call: CallRef, dir: crate::sdp::Direction) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(sdp) = crate::sdp::reoffer(&c.local_sdp, dir) else {
            tracing::debug!(%call, "no SDP of ours to re-offer");
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        if c.state != CallState::Established || c.bye_after_reinvite {
            tracing::info!(%call, "re-INVITE not sent: the call is not up");
            return;
        }
        if d.pending_offer {
            // RFC 3261 14.1: one offer at a time; this one goes when that is answered.
            c.next_direction = Some(dir);
            return;
        }
        tracing::debug!(%call, direction = dir.attr(), "re-INVITE");
        c.local_sdp = Bytes::from(sdp);
        self.send_reinvite(now, call);
    }

    /// Offers the far end video besides its audio: a re-INVITE of our last SDP with an
    /// `m=video` on `port` in `formats` added (RFC 3264 §8.4). The outcome comes as
    /// [`CoreEvent::VideoAnswer`].
    pub fn add_video(
        &mut self,
        now: Instant,
        call: CallRef,
        port: u16,
        formats: &[crate::sdp::Format],
    ) {
        let sdp = self.calls.get(&call).and_then(|c| {
            let up = c.state == CallState::Established
                && !c.bye_after_reinvite
                && c.dialog.as_ref().is_some_and(|d| !d.pending_offer);
            up.then(|| crate::sdp::reoffer_adding_video(&c.local_sdp, port, formats))
                .flatten()
        });
        let Some(sdp) = sdp else {
            tracing::info!(%call, "video not offered: the call is not up, or an offer is pending");
            self.events
                .push_back(CoreEvent::VideoAnswer { call, answer: None });
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        tracing::debug!(%call, port, "re-INVITE adding video");
        c.video_offer = Some(std::mem::replace(&mut c.local_sdp, Bytes::from(sdp)));
        self.send_reinvite(now, call);
    }

    /// Sends a re-INVITE with our (new) local SDP.
    fn send_reinvite(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        let peer = d.peer;
        let mut r = d.request(Method::Invite);
        d.pending_offer = true;
        c.reinvite_out = true;
        r.push(HeaderName::Supported, SUPPORTED);
        r.push(HeaderName::Contact, self.contact_for(peer.transport));
        let sdp = self.calls[&call].local_sdp.clone();
        r.with_body("application/sdp", sdp);
        self.send_request(now, r, peer, Purpose::ReInvite(call));
        self.drain_tx_events(now);
    }

    /// Ends a call from our side: BYE when established (or answered), CANCEL or a
    /// final error before that.
    pub fn hangup(&mut self, now: Instant, call: CallRef) {
        tracing::debug!(%call, known = self.calls.contains_key(&call), "hangup");
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match (c.inbound, c.state) {
            (true, CallState::Offered) => {
                return self.reject(now, call, 480, "Temporarily Unavailable");
            }
            (false, CallState::Calling) => {
                if c.got_provisional {
                    self.send_cancel(now, call);
                    self.end_call(call, EndReason::LocalBye);
                } else {
                    // RFC 3261 9.1: CANCEL only after a provisional response.
                    c.cancel_pending = true;
                }
            }
            _ if c.reinvite_out => {
                // RFC 3261 allows a BYE now, but the 2xx to our re-INVITE must still
                // be ACKed and strict peers (SIPp) refuse a BYE before that ACK
                // (RFC 5407 3.1): it waits for the final response, at most Timer B.
                c.bye_after_reinvite = true;
                c.next_direction = None;
            }
            _ => {
                self.send_bye(now, call);
                self.end_call(call, EndReason::LocalBye);
            }
        }
        self.drain_tx_events(now);
    }

    /// Asks the far end's encoder for a full picture: an in-dialog `INFO` with RFC
    /// 5168's `picture_fast_update` (for peers that negotiated neither PLI nor FIR).
    pub fn picture_fast_update(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Established {
            return;
        }
        let Some(d) = c.dialog.as_mut() else { return };
        let peer = d.peer;
        let mut r = d.request(Method::Info);
        r.with_body(
            crate::media::keyframe::MEDIA_CONTROL,
            Bytes::from_static(crate::media::keyframe::PICTURE_FAST_UPDATE.as_bytes()),
        );
        self.send_request(now, r, peer, Purpose::InDialog(call));
        self.drain_tx_events(now);
    }

    pub(super) fn send_bye(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        let peer = d.peer;
        let bye = d.request(Method::Bye);
        self.send_request(now, bye, peer, Purpose::InDialog(call));
    }

    pub(super) fn send_cancel(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(key) = c.invite_tx.clone() else {
            return;
        };
        let Some(inv) = self.tx.request(&key).cloned() else {
            return;
        };
        let Some(peer) = self.tx.peer(&key) else {
            return;
        };
        // CANCEL: same Request-URI, Call-ID, From, To, Route and top Via as the INVITE.
        let mut cancel = Message::request(Method::Cancel, inv.request_uri().unwrap_or(""));
        if let Some(v) = inv.list_values(&HeaderName::Via).first() {
            cancel.push(HeaderName::Via, v.to_string());
        }
        for n in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
            if let Some(v) = inv.header_str(&n) {
                cancel.push(n, v);
            }
        }
        cancel.push(
            HeaderName::CSeq,
            format!("{} CANCEL", inv.cseq().map(|c| c.0).unwrap_or(1)),
        );
        cancel.push(HeaderName::MaxForwards, "70");
        if let Some(k) = self.tx.send_request(now, cancel, peer) {
            self.purposes.insert(k, Purpose::Other);
        }
    }

    /// A new call reference, for a call this core is about to place.
    pub fn new_call(&mut self) -> CallRef {
        let c = CallRef(self.next_call);
        self.next_call += 1;
        c
    }

    /// Places call `call` (from [`Core::new_call`]) to `to`. A call that cannot be placed ends at once, as a
    /// refused one would ([`CoreEvent::Ended`] with `Failed`): 503 when no trunk can
    /// carry it, 480 for a user who is not registered, 404 for a URI we cannot reach.
    pub fn place(&mut self, now: Instant, call: CallRef, to: &Target, sdp: Bytes) {
        let r = match to {
            Target::Number { number, trunk } => self
                .originate(now, call, number, sdp, trunk.as_deref())
                .map_err(|e| (e, 503)),
            Target::User(u) => self.originate_user(now, call, u, sdp).map_err(|e| (e, 480)),
            Target::Uri(u) => self.originate_uri(now, call, u, sdp).map_err(|e| (e, 404)),
        };
        if let Err((why, code)) = r {
            tracing::info!(%call, error = why, to = %crate::redact::Redacted(&to.to_string()), "cannot place call");
            self.events.push_back(CoreEvent::Ended {
                call,
                reason: EndReason::Failed(code),
            });
        }
    }

    /// Places an outbound call to `to_user` through `trunk` (by name) or through the
    /// trunks in configured order, failing over on timeouts, 408 and 5xx/6xx.
    pub fn originate(
        &mut self,
        now: Instant,
        call: CallRef,
        to_user: &str,
        sdp: Bytes,
        trunk: Option<&str>,
    ) -> Result<(), &'static str> {
        let mut order: VecDeque<usize> = match trunk {
            Some(name) => self
                .cfg
                .trunks
                .iter()
                .position(|t| t.name == name && t.proxy.is_some())
                .into_iter()
                .collect(),
            None => {
                let all: Vec<usize> = (0..self.cfg.trunks.len())
                    .filter(|&i| self.cfg.trunks[i].proxy.is_some())
                    .collect();
                let healthy: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|&i| self.trunk_state[i].healthy != Some(false))
                    .collect();
                if healthy.is_empty() { all } else { healthy }
                    .into_iter()
                    .collect()
            }
        };
        let Some(first) = order.pop_front() else {
            return Err("no trunk with a proxy address");
        };
        self.stats.calls_total += 1;
        let mut c = Call::new(
            false,
            CallState::Calling,
            Message::request(Method::Invite, "sip:invalid"),
            sdp,
            Peer::udp(SocketAddr::from(([0, 0, 0, 0], 0))),
            to_user.to_string(),
            self.rand_hex(10),
        );
        c.trunks_left = order;
        self.calls.insert(call, c);
        self.send_invite(now, call, first, None);
        self.drain_tx_events(now);
        Ok(())
    }

    /// Places a call to a registered user: its most recently refreshed contact, sent to
    /// the address (or connection) it registered from, so phones behind NAT ring.
    pub fn originate_user(
        &mut self,
        now: Instant,
        call: CallRef,
        user: &str,
        sdp: Bytes,
    ) -> Result<(), &'static str> {
        let Some(b) = self
            .registrar
            .lookup(now, user)
            .into_iter()
            .max_by_key(|b| b.expires_at)
        else {
            return Err("the user is not registered");
        };
        let c = b.contact.trim();
        let ruri = match (c.find('<'), c.find('>')) {
            (Some(a), Some(z)) if a < z => &c[a + 1..z],
            _ => c.split(';').next().unwrap_or(c),
        };
        if Uri::parse(ruri).is_err() {
            return Err("the registered contact is not a URI");
        }
        self.originate_direct(now, call, ruri.to_string(), user, b.source, sdp);
        Ok(())
    }

    /// Places a call to a `sip:`/`sips:` URI whose host is an IP address, or whose
    /// host is a trunk's domain (then through that trunk). Host names are not resolved
    /// (no DNS in the core).
    pub fn originate_uri(
        &mut self,
        now: Instant,
        call: CallRef,
        uri: &str,
        sdp: Bytes,
    ) -> Result<(), &'static str> {
        let u = Uri::parse(uri).map_err(|_| "not a SIP URI")?;
        if !u.is_sip() {
            return Err("only sip: and sips: URIs can be called");
        }
        let user = u.user_decoded().unwrap_or_default();
        if let Ok(ip) = u.host_bare().parse::<IpAddr>() {
            let sips = uri.to_ascii_lowercase().starts_with("sips:");
            let transport = match u.param("transport") {
                Some(Some(t)) => Transport::parse(t).ok_or("unknown transport in the URI")?,
                _ if sips => Transport::Tls,
                _ => Transport::Udp,
            };
            let port = u.port.unwrap_or(if transport == Transport::Tls {
                5061
            } else {
                5060
            });
            let peer = Peer {
                transport,
                addr: SocketAddr::new(ip, port),
                conn: None,
            };
            self.originate_direct(now, call, uri.to_string(), &user, peer, sdp);
            return Ok(());
        }
        let host = u.host_bare().to_ascii_lowercase();
        let trunk = self
            .cfg
            .trunks
            .iter()
            .find(|t| t.domain().eq_ignore_ascii_case(&host) && t.proxy.is_some())
            .map(|t| t.name.clone());
        match trunk {
            Some(t) => self.originate(now, call, &user, sdp, Some(&t)),
            None => Err("the URI's host is neither an IP address nor a trunk's domain"),
        }
    }

    pub(super) fn originate_direct(
        &mut self,
        now: Instant,
        call: CallRef,
        ruri: String,
        to_user: &str,
        peer: Peer,
        sdp: Bytes,
    ) {
        self.stats.calls_total += 1;
        let c = Call::new(
            false,
            CallState::Calling,
            Message::request(Method::Invite, "sip:invalid"),
            sdp,
            peer,
            to_user.to_string(),
            self.rand_hex(10),
        );
        let local = self.local_addr(peer.transport);
        let inv = self.invite(InviteParts {
            ruri: &ruri,
            from: &format!("<sip:omnigate@{local}>;tag={}", c.local_tag),
            to: &format!("<{ruri}>"),
            call_id: format!("{}@omnigate", self.rand_hex(20)),
            cseq: 1,
            transport: peer.transport,
            auth: None,
            sdp: &c.local_sdp,
        });
        self.calls.insert(call, c);
        self.send_call_invite(now, call, inv, peer);
        self.drain_tx_events(now);
    }

    /// An outbound INVITE with our Contact, Allow, Supported and Session-Expires.
    pub(super) fn invite(&self, p: InviteParts<'_>) -> Message {
        let mut inv = Message::request(Method::Invite, p.ruri);
        inv.push(HeaderName::MaxForwards, "70");
        inv.push(HeaderName::From, p.from.to_string());
        inv.push(HeaderName::To, p.to.to_string());
        inv.push(HeaderName::CallId, p.call_id);
        inv.push(HeaderName::CSeq, format!("{} INVITE", p.cseq));
        inv.push(HeaderName::Contact, self.contact_for(p.transport));
        inv.push(HeaderName::Allow, ALLOW);
        inv.push(HeaderName::Supported, SUPPORTED);
        inv.push(
            HeaderName::SessionExpires,
            self.cfg.session_expires.to_string(),
        );
        if let Some((n, v)) = p.auth {
            inv.push(n, v);
        }
        if !p.sdp.is_empty() {
            inv.with_body("application/sdp", p.sdp.clone());
        }
        inv
    }

    /// Sends a call's INVITE and remembers its transaction and the message as sent.
    pub(super) fn send_call_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        inv: Message,
        peer: Peer,
    ) {
        if let Some(k) = self.send_request(now, inv, peer, Purpose::Invite(call)) {
            let inv = self.tx.request(&k).cloned();
            if let Some(c) = self.calls.get_mut(&call) {
                c.invite_tx = Some(k);
                if let Some(i) = inv {
                    c.invite = i;
                }
            }
        }
    }

    pub(super) fn send_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        trunk: usize,
        auth: Option<(HeaderName, String)>,
    ) {
        let t = self.cfg.trunks[trunk].clone();
        let Some(peer) = t.proxy_peer() else { return };
        let fresh_call_id = format!("{}@omnigate", self.rand_hex(20));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let domain = t.domain();
        let ruri = format!("sip:{}@{}", c.to_user, domain);
        let (call_id, cseq) = if c.trunk == Some(trunk) && c.invite.cseq().is_some() {
            (
                c.invite.call_id().to_string(),
                c.invite.cseq().unwrap().0 + 1,
            )
        } else {
            (fresh_call_id, 1)
        };
        let from_user = t
            .from_user
            .clone()
            .or(t.username.clone())
            .unwrap_or_else(|| "omnigate".into());
        let from = format!("<sip:{from_user}@{domain}>;tag={}", c.local_tag);
        let to = format!("<sip:{}@{}>", c.to_user, domain);
        c.trunk = Some(trunk);
        c.got_provisional = false;
        let sdp = c.local_sdp.clone();
        let inv = self.invite(InviteParts {
            ruri: &ruri,
            from: &from,
            to: &to,
            call_id,
            cseq,
            transport: peer.transport,
            auth,
            sdp: &sdp,
        });
        self.send_call_invite(now, call, inv, peer);
    }

    pub(super) fn next_cnonce(&mut self) -> (String, u32) {
        self.cnonce_seq += 1;
        (self.rand_hex(16), 1)
    }

    pub(super) fn on_client_response(&mut self, now: Instant, key: TxKey, resp: Message) {
        let code = resp.status().unwrap_or(0);
        match self.purposes.get(&key).cloned() {
            Some(Purpose::Invite(call)) => self.on_invite_response(now, call, key, resp, code),
            Some(Purpose::Register(i)) => self.on_register_response(now, i, resp, code),
            Some(Purpose::TrunkOptions(i)) if code >= 200 => {
                self.trunk_state[i].healthy = Some(true);
            }
            Some(Purpose::ReInvite(call)) if code >= 200 => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.reinvite_out = false;
                let bye = c.bye_after_reinvite;
                if let Some(before) = c.video_offer.take() {
                    let answer = Some(resp.body.clone())
                        .filter(|b| (200..300).contains(&code) && !b.is_empty());
                    if answer.is_none() {
                        // Refused (or a 2xx without its answer): the media stays as it was.
                        tracing::info!(%call, code, "the far end did not take video");
                        c.local_sdp = before;
                    }
                    self.events
                        .push_back(CoreEvent::VideoAnswer { call, answer });
                }
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                let Some(d) = c.dialog.as_mut() else {
                    return;
                };
                d.pending_offer = false;
                if (200..300).contains(&code) {
                    // RFC 3261 14.1: the UAC ACKs a 2xx to a re-INVITE, same CSeq number.
                    let peer = d.peer;
                    let mut ack = d.request(Method::Ack);
                    self.push_our_via(&mut ack, peer.transport);
                    self.tx.send_stateless(peer, &ack);
                } else if code == 481 || code == 408 {
                    self.end_call(call, EndReason::RemoteBye);
                } else {
                    tracing::info!(%call, code, "re-INVITE refused; media unchanged on their side");
                }
                if bye && self.calls.contains_key(&call) {
                    self.send_bye(now, call);
                    self.end_call(call, EndReason::LocalBye);
                    return;
                }
                if let Some(dir) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.next_direction.take())
                {
                    self.reinvite(now, call, dir);
                }
            }
            Some(Purpose::InDialog(call)) if code >= 200 => {
                if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
                    d.pending_offer = false;
                }
                if code == 481 || code == 408 {
                    self.end_call(call, EndReason::RemoteBye);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        call: CallRef,
        key: TxKey,
        resp: Message,
        code: u16,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            // The call is gone (we hung up): ACK and BYE a late 2xx.
            if (200..300).contains(&code) {
                self.ack_and_bye_orphan(now, &key, &resp);
            }
            return;
        };
        if c.invite_tx.as_ref() != Some(&key) {
            return;
        }
        if code < 200 {
            c.got_provisional = true;
            if c.cancel_pending {
                self.send_cancel(now, call);
                self.end_call(call, EndReason::LocalBye);
                return;
            }
            self.events.push_back(CoreEvent::Progress { call, code });
            return;
        }
        if code < 300 {
            if let (Some(ack), Some(d)) = (c.ack.clone(), c.dialog.as_ref()) {
                // A retransmitted 2xx: our ACK was lost; send it again (RFC 3261 13.2.2.4).
                let peer = d.peer;
                self.tx.send_stateless(peer, &ack);
                return;
            }
            let peer = self.tx.peer(&key).unwrap_or(c.source);
            let Some(mut d) = Dialog::uac(&c.invite, &resp, peer) else {
                return;
            };
            d.state = DialogState::Confirmed;
            let mut ack = d.request(Method::Ack);
            self.push_our_via(&mut ack, peer.transport);
            let c = self.calls.get_mut(&call).unwrap();
            c.state = CallState::Established;
            self.dialogs.insert(d.id.clone(), call);
            if let Some((se, r)) = parse_session_expires(&resp) {
                let who = if r.is_some_and(|r| r.eq_ignore_ascii_case("uac")) {
                    Refresher::Us
                } else {
                    Refresher::Them
                };
                let st = SessionTimer::new(
                    now,
                    Duration::from_secs(se.max(self.cfg.min_se) as u64),
                    who,
                );
                let dl = st.deadline;
                d.session_timer = Some(st);
                self.timer_seq += 1;
                self.timers
                    .insert((dl, self.timer_seq), CoreTimer::Session(call));
            }
            c.dialog = Some(d);
            c.ack = Some(ack.clone());
            self.tx.send_stateless(peer, &ack);
            let cancel = c.cancel_pending;
            if cancel {
                self.send_bye(now, call);
                self.end_call(call, EndReason::LocalBye);
            } else {
                self.events.push_back(CoreEvent::Established {
                    call,
                    remote_sdp: resp.body.clone(),
                });
            }
            return;
        }
        c.last_code = code;
        // Challenge: answer once per trunk.
        if (code == 401 || code == 407) && !c.auth_tried {
            let t = c.trunk.map(|i| self.cfg.trunks[i].clone());
            if let Some(t) = t {
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
                    let ruri = c.invite.request_uri().unwrap_or("").to_string();
                    let trunk = c.trunk.unwrap();
                    c.auth_tried = true;
                    let (cn, nc) = self.next_cnonce();
                    if let Some(a) = answer_challenge(&ch, "INVITE", &ruri, &u, &p, &cn, nc) {
                        self.send_invite(now, call, trunk, Some((an, a)));
                        return;
                    }
                }
            }
        }
        self.failover_or_fail(now, call, code);
    }

    pub(super) fn failover_or_fail(&mut self, now: Instant, call: CallRef, code: u16) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let retryable = code == 408 || code >= 500;
        if retryable && !c.cancel_pending {
            if let Some(next) = c.trunks_left.pop_front() {
                c.auth_tried = false;
                c.trunk = None;
                tracing::info!(%call, code, trunk = %self.cfg.trunks[next].name, "outbound call failing over");
                self.send_invite(now, call, next, None);
                return;
            }
        }
        let reason = if c.cancel_pending {
            EndReason::LocalBye
        } else {
            EndReason::Failed(code)
        };
        self.end_call(call, reason);
    }

    pub(super) fn ack_and_bye_orphan(&mut self, now: Instant, key: &TxKey, resp: &Message) {
        let Some(inv) = self.tx.request(key).cloned() else {
            return;
        };
        let Some(peer) = self.tx.peer(key) else {
            return;
        };
        let Some(mut d) = Dialog::uac(&inv, resp, peer) else {
            return;
        };
        let mut ack = d.request(Method::Ack);
        self.push_our_via(&mut ack, peer.transport);
        self.tx.send_stateless(peer, &ack);
        let bye = d.request(Method::Bye);
        self.send_request(now, bye, peer, Purpose::Other);
    }

    pub(super) fn on_client_timeout(&mut self, now: Instant, key: TxKey, timer: TimerKind) {
        match self.purposes.get(&key).cloned() {
            Some(Purpose::Invite(call)) => {
                if timer == TimerKind::C {
                    self.send_cancel(now, call);
                    self.end_call(call, EndReason::Failed(408));
                } else if self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.invite_tx.as_ref() == Some(&key))
                {
                    self.failover_or_fail(now, call, 408);
                }
                self.purposes.remove(&key);
            }
            Some(Purpose::Register(i)) => {
                self.trunk_state[i].registered = false;
                self.trunk_state[i].register_failures += 1;
                self.arm(now + Duration::from_secs(30), CoreTimer::TrunkRegister(i));
                self.events.push_back(CoreEvent::TrunkRegistration {
                    trunk: self.cfg.trunks[i].name.clone(),
                    registered: false,
                });
            }
            Some(Purpose::TrunkOptions(i)) => {
                if self.trunk_state[i].healthy != Some(false) {
                    tracing::warn!(trunk = %self.cfg.trunks[i].name, "trunk did not answer OPTIONS: marked down");
                }
                self.trunk_state[i].healthy = Some(false);
            }
            Some(Purpose::Keepalive(user, contact)) => {
                tracing::info!(user = %crate::redact::Redacted(&user), "registered contact did not answer OPTIONS: binding dropped");
                self.registrar.drop_binding(&user, &contact);
            }
            Some(Purpose::ReInvite(call))
                if self.calls.get(&call).is_some_and(|c| c.bye_after_reinvite) =>
            {
                // We were hanging up anyway: the BYE goes (the peer may be back).
                self.send_bye(now, call);
                self.end_call(call, EndReason::LocalBye)
            }
            Some(Purpose::InDialog(call) | Purpose::ReInvite(call)) => {
                self.end_call(call, EndReason::RemoteBye)
            }
            _ => {}
        }
    }
}
