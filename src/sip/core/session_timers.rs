//! Session timers (RFC 4028): the headers we answer with, and the refresh or BYE when
//! a session's interval runs out.

use super::*;

impl Core {
    /// Negotiates RFC 4028 from a request we answer with 2xx; arms the timer.
    pub(super) fn session_timer_headers(
        &mut self,
        now: Instant,
        call: CallRef,
        req: &Message,
    ) -> Vec<(HeaderName, String)> {
        let Some((se, refresher)) = parse_session_expires(req) else {
            return vec![];
        };
        let se = se.max(self.cfg.min_se);
        let uac_supports = req
            .list_values(&HeaderName::Supported)
            .iter()
            .any(|s| s.eq_ignore_ascii_case("timer"));
        // We received the request: its sender is "uac" for this transaction.
        let who = match refresher {
            Some(r) if r.eq_ignore_ascii_case("uas") => Refresher::Us,
            Some(_) => Refresher::Them,
            None if uac_supports => Refresher::Them,
            None => Refresher::Us,
        };
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
            d.session_timer = Some(SessionTimer::new(now, Duration::from_secs(se as u64), who));
        }
        let deadline = self
            .calls
            .get(&call)
            .and_then(|c| c.dialog.as_ref())
            .and_then(|d| d.session_timer.as_ref())
            .map(|s| s.deadline);
        if let Some(dl) = deadline {
            self.arm(dl, CoreTimer::Session(call));
        }
        let r = if who == Refresher::Us { "uas" } else { "uac" };
        let mut v = vec![(HeaderName::SessionExpires, format!("{se};refresher={r}"))];
        if uac_supports {
            v.push((HeaderName::Require, "timer".into()));
        }
        v
    }

    pub(super) fn session_timer_fired(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else { return };
        let Some(st) = d.session_timer.clone() else {
            return;
        };
        if st.deadline > now {
            return; // refreshed meanwhile; a later entry is armed
        }
        match st.refresher {
            Refresher::Them => {
                tracing::info!(%call, "session timer expired without refresh: sending BYE");
                self.send_bye(now, call);
                self.end_call(call, EndReason::SessionExpired);
            }
            Refresher::Us => {
                let method = if d.peer_allows_update {
                    Method::Update
                } else {
                    Method::Invite
                };
                let peer = d.peer;
                let mut r = d.request(method.clone());
                d.pending_offer = true;
                let next = SessionTimer::new(now, st.interval, Refresher::Us);
                let dl = next.deadline;
                d.session_timer = Some(next);
                r.push(
                    HeaderName::SessionExpires,
                    format!("{};refresher=uac", st.interval.as_secs()),
                );
                r.push(HeaderName::Supported, SUPPORTED);
                r.push(HeaderName::Contact, self.contact_for(peer.transport));
                let sdp = self.calls[&call].local_sdp.clone();
                if method == Method::Invite && !sdp.is_empty() {
                    r.with_body("application/sdp", sdp);
                }
                let purpose = if method == Method::Invite {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.reinvite_out = true;
                    }
                    Purpose::ReInvite(call)
                } else {
                    Purpose::InDialog(call)
                };
                self.send_request(now, r, peer, purpose);
                self.arm(dl, CoreTimer::Session(call));
            }
        }
    }
}
