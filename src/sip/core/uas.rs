//! The core as user-agent server: REGISTER, a new INVITE (trunk or phone, challenge,
//! loop and offer checks, 100 Trying), CANCEL, ACK, requests inside a dialog (BYE,
//! re-INVITE, UPDATE, INFO), and the actors' ring, answer and reject.

use super::*;

impl Core {
    pub(super) fn register(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        let users = self.cfg.users.clone();
        let outcome = self
            .registrar
            .authenticate(now, &req, source, false, &|u| users.get(u).cloned());
        let AuthOutcome::User(u) = outcome else {
            if outcome == AuthOutcome::Forbidden {
                tracing::info!(from = %source.addr, user = %auth_user(&req, false), "registration refused: wrong password, unknown user or unusable credentials");
            }
            return self.refuse_auth(key, req, source, outcome, false);
        };
        // One may only register one's own address of record.
        let aor_user = req
            .to()
            .and_then(|t| t.uri.user.map(crate::sip::uri::percent_decode));
        if aor_user.as_deref() != Some(u.as_str()) {
            tracing::info!(from = %source.addr, user = %u, "registration refused: the To address is another user's");
            return self.reply(
                now,
                &key,
                &req,
                403,
                "Forbidden",
                Some(&self.rand_hex(10)),
                &[],
            );
        }
        let mut r = self
            .registrar
            .register(now, &req, source, &u, &self.rand_hex(10));
        match r.status() {
            Some(200) => {
                let n = self.registrar.lookup(now, &u).len();
                tracing::info!(from = %source.addr, user = %u, bindings = n, "registered")
            }
            Some(code) => {
                tracing::info!(from = %source.addr, user = %u, code, "registration refused")
            }
            None => {}
        }
        r.push(HeaderName::Server, self.cfg.user_agent.clone());
        self.count_response(r.status().unwrap_or(500));
        self.tx.respond(now, &key, r);
    }

    pub(super) fn new_invite(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        if self.draining {
            return self.reply(
                now,
                &key,
                &req,
                503,
                "Service Unavailable",
                Some(&self.rand_hex(10)),
                &[(HeaderName::RetryAfter, "30".into())],
            );
        }
        if req.max_forwards() == Some(0) {
            return self.reply(now, &key, &req, 483, "Too Many Hops", None, &[]);
        }
        // A request that already went through us is a loop.
        let ours = self
            .cfg
            .local
            .values()
            .map(|a| a.to_string())
            .collect::<Vec<_>>();
        let looped = req
            .list_values(&HeaderName::Via)
            .iter()
            .skip(1)
            .filter_map(|v| crate::sip::header::Via::parse(v).ok())
            .any(|v| {
                v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                    && ours
                        .iter()
                        .any(|a| *a == format!("{}:{}", v.host, v.port.unwrap_or(5060)))
            });
        if looped {
            return self.reply(now, &key, &req, 482, "Loop Detected", None, &[]);
        }
        // Who is calling. A registered user's phone (its credentials name a user, or it
        // calls from where it registered) is the user's, even inside a trunk's
        // addresses; so is anything on the WebSocket transport, which is never a
        // trunk. Then a trunk by source address (maybe with credentials), then trunks
        // known by credentials alone. Anyone else is refused, once and statelessly.
        let ip = source.addr.ip();
        let ws = matches!(source.transport, Transport::Ws | Transport::Wss);
        let users_creds = auth_user(&req, true);
        let caller_user = req
            .from()
            .and_then(|f| f.uri.user.map(crate::sip::uri::percent_decode));
        let registered = self
            .registrar
            .registered_at(now, source, caller_user.as_deref());
        let is_user = ws || registered || self.cfg.users.contains_key(&users_creds);
        let trunk = if is_user {
            None
        } else {
            self.cfg.trunks.iter().position(|t| t.matches_source(ip))
        };
        let mut user = None;
        let mut trunk_name = None;
        let outcome = if is_user {
            let users = self.cfg.users.clone();
            match self
                .registrar
                .authenticate(now, &req, source, true, &|u| users.get(u).cloned())
            {
                AuthOutcome::User(u) => {
                    user = Some(u);
                    None
                }
                other => Some(other),
            }
        } else if let Some(ti) = trunk {
            let t = self.cfg.trunks[ti].clone();
            trunk_name = Some(t.name.clone());
            match (t.inbound_username.clone(), t.inbound_password.clone()) {
                (Some(u), Some(p)) => {
                    match self
                        .registrar
                        .authenticate(now, &req, source, true, &|x| (x == u).then(|| p.clone()))
                    {
                        AuthOutcome::User(_) => None,
                        other => Some(other),
                    }
                }
                _ => None,
            }
        } else if self
            .cfg
            .trunks
            .iter()
            .any(|t| t.inbound_cidrs.is_empty() && t.inbound_username.is_some())
        {
            // Trunks matched by credentials alone (providers without fixed addresses).
            let creds: Vec<(String, String, String)> = self
                .cfg
                .trunks
                .iter()
                .filter(|t| t.inbound_cidrs.is_empty())
                .filter_map(|t| {
                    Some((
                        t.inbound_username.clone()?,
                        t.inbound_password.clone()?,
                        t.name.clone(),
                    ))
                })
                .collect();
            let lookup = |u: &str| creds.iter().find(|c| c.0 == u).map(|c| c.1.clone());
            match self
                .registrar
                .authenticate(now, &req, source, true, &lookup)
            {
                AuthOutcome::User(u) => {
                    trunk_name = creds.iter().find(|c| c.0 == u).map(|c| c.2.clone());
                    None
                }
                other => Some(other),
            }
        } else {
            Some(AuthOutcome::Forbidden)
        };
        if let Some(refusal) = outcome {
            if refusal == AuthOutcome::Forbidden {
                tracing::info!(from = %source.addr, user = %users_creds, trunk = %trunk_name.as_deref().unwrap_or("none"), "call refused: not a trunk, or wrong credentials");
            }
            return self.refuse_auth(key, req, source, refusal, true);
        }
        if let Some((se, _)) = parse_session_expires(&req) {
            if se < self.cfg.min_se {
                return self.reply(
                    now,
                    &key,
                    &req,
                    422,
                    "Session Interval Too Small",
                    None,
                    &[(HeaderName::MinSe, self.cfg.min_se.to_string())],
                );
            }
        }
        let has_sdp = !req.body.is_empty();
        if has_sdp {
            let webrtc = self.cfg.webrtc && source.transport == Transport::Ws;
            if let Err(e) = crate::sdp::check_offer(&req.body, webrtc) {
                let warning = match e {
                    crate::sdp::SdpError::NoCommonCodec => {
                        "304 omnigate \"no common media format\"".to_string()
                    }
                    crate::sdp::SdpError::NoAudio => "301 omnigate \"no audio stream\"".to_string(),
                    e => format!(
                        "399 omnigate \"{}\"",
                        e.to_string().replace(['"', '\\'], "'")
                    ),
                };
                return self.reply(
                    now,
                    &key,
                    &req,
                    488,
                    "Not Acceptable Here",
                    None,
                    &[(HeaderName::Warning, warning)],
                );
            }
        }
        // 100 Trying once the request is known good and its caller known (RFC 3261
        // 17.2.1: the core answers within 200 ms; nothing is rung and then refused).
        let trying = Message::response_to(&req, 100, "Trying", None);
        self.count_response(100);
        self.tx.respond(now, &key, trying);
        let call = self.new_call();
        self.stats.calls_total += 1;
        let caller = req
            .from()
            .and_then(|f| f.uri.user.map(crate::sip::uri::percent_decode))
            .unwrap_or_default();
        let callee = req
            .request_uri()
            .and_then(|u| crate::sip::uri::Uri::parse(u).ok())
            .and_then(|u| u.user.map(crate::sip::uri::percent_decode))
            .unwrap_or_default();
        let sdp = req.body.clone();
        self.invites.insert(key.clone(), call);
        let mut c = Call::new(
            true,
            CallState::Offered,
            req,
            Bytes::new(),
            source,
            callee.clone(),
            self.rand_hex(10),
        );
        c.invite_tx = Some(key);
        self.calls.insert(call, c);
        self.events.push_back(CoreEvent::IncomingCall {
            call,
            caller,
            callee,
            sdp,
            trunk: trunk_name,
            user,
            source,
        });
    }

    /// Answers a request that is not (yet) authenticated: challenges and 403s once,
    /// statelessly (a forged request from a spoofed address costs one packet and no
    /// state: no reflection, no retransmissions); a throttled pair's request is held
    /// and checked again when its delay ends.
    pub(super) fn refuse_auth(
        &mut self,
        key: TxKey,
        req: Message,
        source: Peer,
        outcome: AuthOutcome,
        proxy: bool,
    ) {
        match outcome {
            AuthOutcome::User(_) => {}
            AuthOutcome::Challenge(ch) => {
                let (code, reason, name) = if proxy {
                    (
                        407,
                        "Proxy Authentication Required",
                        HeaderName::ProxyAuthenticate,
                    )
                } else {
                    (401, "Unauthorized", HeaderName::WwwAuthenticate)
                };
                let extra: Vec<_> = ch.into_iter().map(|c| (name.clone(), c)).collect();
                self.tx.forget(&key);
                self.reply_stateless_with(&req, source, code, reason, &extra);
            }
            AuthOutcome::Forbidden => {
                self.tx.forget(&key);
                self.reply_stateless_with(&req, source, 403, "Forbidden", &[]);
            }
            AuthOutcome::Delay(at) if self.parked.len() < MAX_PARKED => {
                self.parked_seq += 1;
                self.parked.insert(self.parked_seq, (key, req, source));
                self.arm(at, CoreTimer::Parked(self.parked_seq));
            }
            AuthOutcome::Delay(_) | AuthOutcome::Drop => self.tx.forget(&key),
        }
    }

    pub(super) fn cancel(&mut self, now: Instant, key: TxKey, req: Message) {
        let Some(ikey) = TxKey::invite_of_cancel(&req) else {
            return self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
        };
        let Some(&call) = self.invites.get(&ikey) else {
            return self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
        };
        self.reply(now, &key, &req, 200, "OK", None, &[]);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state == CallState::Offered {
            let (invite, tag) = (c.invite.clone(), c.local_tag.clone());
            self.reply(
                now,
                &ikey,
                &invite,
                487,
                "Request Terminated",
                Some(&tag),
                &[],
            );
            self.end_call(call, EndReason::Cancelled);
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: &Message) {
        let _ = now;
        let Some(id) = DialogId::of_request(ack) else {
            return;
        };
        let Some(&call) = self.dialogs.get(&id) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state == CallState::Answered {
            c.state = CallState::Established;
            if let Some(d) = c.dialog.as_mut() {
                d.state = DialogState::Confirmed;
            }
            let sdp = if c.invite.body.is_empty() {
                ack.body.clone()
            } else {
                c.invite.body.clone()
            };
            self.events.push_back(CoreEvent::Established {
                call,
                remote_sdp: sdp,
            });
        }
    }

    pub(super) fn in_dialog(&mut self, now: Instant, key: TxKey, req: Message, source: Peer) {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        let id = DialogId::of_request(&req);
        let call = id.as_ref().and_then(|i| self.dialogs.get(i)).copied();
        let Some(call) = call else {
            return self.reply(
                now,
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
        };
        let cseq_ok = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog.as_mut())
            .map(|d| d.check_remote_cseq(&req).is_ok())
            .unwrap_or(false);
        if !cseq_ok {
            return self.reply(now, &key, &req, 500, "CSeq Out of Order", None, &[]);
        }
        match method {
            Method::Bye => {
                self.reply(now, &key, &req, 200, "OK", None, &[]);
                self.end_call(call, EndReason::RemoteBye);
            }
            Method::Invite | Method::Update => {
                let pending = self
                    .calls
                    .get(&call)
                    .and_then(|c| c.dialog.as_ref())
                    .is_some_and(|d| d.pending_offer);
                if pending {
                    return self.reply(now, &key, &req, 491, "Request Pending", None, &[]);
                }
                self.answer_offer(now, key, req, source, call);
            }
            Method::Info => {
                let ctype = req.header_str(&HeaderName::ContentType).unwrap_or("");
                let base = ctype.split(';').next().unwrap_or("").trim();
                if base.eq_ignore_ascii_case(crate::media::keyframe::MEDIA_CONTROL) {
                    if !crate::media::keyframe::is_picture_fast_update(&req.body) {
                        return self.reply(
                            now,
                            &key,
                            &req,
                            400,
                            "Media Control Is Not A picture_fast_update",
                            None,
                            &[],
                        );
                    }
                    self.reply(now, &key, &req, 200, "OK", None, &[]);
                    self.events.push_back(CoreEvent::PictureFastUpdate { call });
                    return;
                }
                match info_digit(ctype, &req.body) {
                    Ok(Some(digit)) => {
                        self.reply(now, &key, &req, 200, "OK", None, &[]);
                        self.events.push_back(CoreEvent::InfoDigit { call, digit });
                    }
                    Ok(None) => self.reply(now, &key, &req, 200, "OK", None, &[]),
                    Err(why) => self.reply(now, &key, &req, 400, why, None, &[]),
                }
            }
            Method::Options => self.reply(now, &key, &req, 200, "OK", None, &[]),
            Method::Other(_) => self.reply(
                now,
                &key,
                &req,
                501,
                "Not Implemented",
                None,
                &[(HeaderName::Allow, ALLOW.to_string())],
            ),
            _ => self.reply(
                now,
                &key,
                &req,
                405,
                "Method Not Allowed",
                None,
                &[(HeaderName::Allow, ALLOW.to_string())],
            ),
        }
    }

    /// Answers a re-INVITE or UPDATE: same media, direction mirrored (hold/resume),
    /// session timer refreshed.
    pub(super) fn answer_offer(
        &mut self,
        now: Instant,
        key: TxKey,
        req: Message,
        source: Peer,
        call: CallRef,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut body = c.local_sdp.clone();
        if !req.body.is_empty() {
            match crate::sdp::reanswer(&c.local_sdp, &req.body) {
                Ok((answer, negotiated)) => {
                    body = Bytes::from(answer);
                    c.local_sdp = body.clone();
                    self.events.push_back(CoreEvent::RemoteOffer {
                        call,
                        sdp: req.body.clone(),
                        negotiated: Box::new(negotiated),
                    });
                }
                Err(e) => {
                    let warning = format!(
                        "399 omnigate \"{}\"",
                        e.to_string().replace(['"', '\\'], "'")
                    );
                    return self.reply(
                        now,
                        &key,
                        &req,
                        488,
                        "Not Acceptable Here",
                        None,
                        &[(HeaderName::Warning, warning)],
                    );
                }
            }
        }
        let mut extra = vec![
            (HeaderName::Contact, self.contact_for(source.transport)),
            (HeaderName::Allow, ALLOW.to_string()),
            (HeaderName::Supported, SUPPORTED.into()),
        ];
        extra.extend(self.session_timer_headers(now, call, &req));
        let mut r = Message::response_to(&req, 200, "OK", None);
        for (n, v) in extra {
            r.push(n, v);
        }
        if !body.is_empty() {
            r.with_body("application/sdp", body);
        }
        self.count_response(200);
        self.tx.respond(now, &key, r);
    }

    /// Sends 180 Ringing for an offered inbound call.
    pub fn ring(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let (key, invite, tag, t) = (
            c.invite_tx.clone().unwrap(),
            c.invite.clone(),
            c.local_tag.clone(),
            c.source.transport,
        );
        let mut extra = vec![(HeaderName::Contact, self.contact_for(t))];
        extra.extend(record_routes(&invite));
        self.reply(now, &key, &invite, 180, "Ringing", Some(&tag), &extra);
    }

    /// Answers an offered inbound call with `sdp` (an answer, or an offer when the
    /// INVITE had none).
    pub fn answer(&mut self, now: Instant, call: CallRef, sdp: Bytes) {
        let local_seq = {
            use rand::Rng;
            self.rng.borrow_mut().gen::<u16>() as u32 + 1
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let Some(dialog) = Dialog::uas(&c.invite, &c.local_tag, c.source, local_seq) else {
            let (key, invite, tag) = (
                c.invite_tx.clone().unwrap(),
                c.invite.clone(),
                c.local_tag.clone(),
            );
            self.reply(now, &key, &invite, 400, "Missing Contact", Some(&tag), &[]);
            return self.end_call(call, EndReason::Rejected(400));
        };
        c.local_sdp = sdp.clone();
        c.state = CallState::Answered;
        let (key, invite, tag, t) = (
            c.invite_tx.clone().unwrap(),
            c.invite.clone(),
            c.local_tag.clone(),
            c.source.transport,
        );
        self.dialogs.insert(dialog.id.clone(), call);
        self.calls.get_mut(&call).unwrap().dialog = Some(dialog);
        let mut r = Message::response_to(&invite, 200, "OK", Some(&tag));
        // RFC 3261 12.1.1: the dialog's route set goes back in the 2xx, so the
        // caller's ACK and BYE come through the proxies that record-routed.
        for (n, v) in record_routes(&invite) {
            r.push(n, v);
        }
        r.push(HeaderName::Contact, self.contact_for(t));
        r.push(HeaderName::Allow, ALLOW);
        r.push(HeaderName::Supported, SUPPORTED);
        for (n, v) in self.session_timer_headers(now, call, &invite) {
            r.push(n, v);
        }
        r.push(HeaderName::Server, self.cfg.user_agent.clone());
        r.with_body("application/sdp", sdp);
        self.count_response(200);
        self.tx.respond(now, &key, r);
    }

    /// Rejects an offered inbound call.
    pub fn reject(&mut self, now: Instant, call: CallRef, code: u16, reason: &str) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let (key, invite, tag) = (
            c.invite_tx.clone().unwrap(),
            c.invite.clone(),
            c.local_tag.clone(),
        );
        self.reply(now, &key, &invite, code, reason, Some(&tag), &[]);
        self.end_call(call, EndReason::Rejected(code));
        self.drain_tx_events(now);
    }
}

/// Reads a key press from an INFO body: `application/dtmf-relay` (`Signal=5`, the
/// common Cisco form) or `application/dtmf` (the key itself). Other or empty bodies
/// (keepalive INFOs) carry no digit; a DTMF body without a valid key is an error.
pub(super) fn info_digit(content_type: &str, body: &[u8]) -> Result<Option<char>, &'static str> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| "Bad DTMF Body")?;
    let key = match ct.as_str() {
        "application/dtmf-relay" => text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("signal")
                    .then(|| v.trim().to_string())
            })
            .ok_or("Missing DTMF Signal")?,
        "application/dtmf" => text.trim().to_string(),
        _ => return Ok(None),
    };
    let key = match key.as_str() {
        "10" => "*".to_string(),
        "11" => "#".to_string(),
        k => k.to_ascii_uppercase(),
    };
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if "0123456789*#ABCD".contains(c) => Ok(Some(c)),
        _ => Err("Bad DTMF Signal"),
    }
}

#[cfg(test)]
mod info_tests {
    #[test]
    fn info_dtmf_bodies() {
        use super::info_digit;
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Ok(Some('5'))
        );
        assert_eq!(
            info_digit("Application/DTMF-Relay", b"Signal= #\nDuration= 250"),
            Ok(Some('#'))
        );
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=11\r\n"),
            Ok(Some('#'))
        );
        assert_eq!(info_digit("application/dtmf", b"7"), Ok(Some('7')));
        assert_eq!(info_digit("application/dtmf", b"d"), Ok(Some('D')));
        assert_eq!(
            info_digit("application/broadsoft", b"event flashhook"),
            Ok(None)
        );
        assert_eq!(info_digit("", b""), Ok(None));
        assert!(info_digit("application/dtmf-relay", b"Duration=160").is_err());
        assert!(info_digit("application/dtmf-relay", b"Signal=55").is_err());
        assert!(info_digit("application/dtmf", b"\xff").is_err());
    }
}
