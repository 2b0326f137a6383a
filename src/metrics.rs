//! What `/metrics` shows (Prometheus text): the SIP driver refreshes a [`Metrics`] every
//! 200 ms; the HTTP layer renders it.

use crate::sip::core::CoreStats;
use crate::sip::transaction::TxStats;
use std::fmt::Write;

/// What /metrics shows; the SIP driver refreshes it every 200 ms.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub serving: bool,
    pub transactions_live: u64,
    pub tx: TxStats,
    pub dialogs: u64,
    pub calls_live: u64,
    pub registrations: u64,
    pub connections: u64,
    pub connections_refused: u64,
    pub rtp_ports_in_use: u64,
    pub core: CoreStats,
    pub trunks: Vec<(String, bool)>,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(2048);
        let mut g = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = write!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        };
        g(
            "omnigate_up",
            "1 while serving, 0 while draining",
            "gauge",
            self.serving as u64,
        );
        g(
            "omnigate_sip_transactions",
            "Live SIP transactions",
            "gauge",
            self.transactions_live,
        );
        g(
            "omnigate_sip_server_transactions_total",
            "Server transactions created",
            "counter",
            self.tx.server_created,
        );
        g(
            "omnigate_sip_client_transactions_total",
            "Client transactions created",
            "counter",
            self.tx.client_created,
        );
        g(
            "omnigate_sip_retransmissions_total",
            "Requests and responses retransmitted",
            "counter",
            self.tx.retransmissions,
        );
        g(
            "omnigate_sip_transaction_timeouts_total",
            "Transactions ended by Timer B, F, H or L",
            "counter",
            self.tx.timeouts,
        );
        g(
            "omnigate_sip_dialogs",
            "Live dialogs",
            "gauge",
            self.dialogs,
        );
        g("omnigate_calls", "Live calls", "gauge", self.calls_live);
        g(
            "omnigate_calls_total",
            "Calls accepted or placed",
            "counter",
            self.core.calls_total,
        );
        g(
            "omnigate_sip_registrations",
            "Live registered contacts",
            "gauge",
            self.registrations,
        );
        g(
            "omnigate_sip_connections",
            "Open TCP, TLS and WebSocket connections",
            "gauge",
            self.connections,
        );
        g(
            "omnigate_sip_connections_refused_total",
            "Connections refused or closed by the limits (count, silence, unread answers)",
            "counter",
            self.connections_refused,
        );
        g(
            "omnigate_panics_total",
            "Panics contained (each cost one input or one interaction, not the node)",
            "counter",
            crate::panics::total(),
        );
        g(
            "omnigate_sip_parse_errors_total",
            "Messages refused by the parser",
            "counter",
            self.core.parse_errors,
        );
        g(
            "omnigate_rtp_ports_in_use",
            "RTP ports allocated",
            "gauge",
            self.rtp_ports_in_use,
        );
        s.push_str("# HELP omnigate_sip_responses_sent_total Responses sent, by status code\n# TYPE omnigate_sip_responses_sent_total counter\n");
        for (c, n) in &self.core.responses_sent {
            let _ = writeln!(s, "omnigate_sip_responses_sent_total{{code=\"{c}\"}} {n}");
        }
        s.push_str("# HELP omnigate_sip_responses_received_total Responses received, by status code\n# TYPE omnigate_sip_responses_received_total counter\n");
        for (c, n) in &self.core.responses_received {
            let _ = writeln!(
                s,
                "omnigate_sip_responses_received_total{{code=\"{c}\"}} {n}"
            );
        }
        s.push_str("# HELP omnigate_sip_requests_received_total Requests received, by method\n# TYPE omnigate_sip_requests_received_total counter\n");
        for (m, n) in &self.core.requests_received {
            let _ = writeln!(
                s,
                "omnigate_sip_requests_received_total{{method=\"{m}\"}} {n}"
            );
        }
        s.push_str("# HELP omnigate_trunk_registered 1 when registered to the provider\n# TYPE omnigate_trunk_registered gauge\n");
        for (t, r) in &self.trunks {
            let _ = writeln!(s, "omnigate_trunk_registered{{trunk=\"{t}\"}} {}", *r as u8);
        }
        s
    }
}

/// `omnigate_mailbox_up{mailbox=…}` (1 connected, 0 failing) and what each mailbox
/// imported and quarantined.
pub fn render_mailboxes(s: &mut String, all: &[(String, crate::email::imap::Status)]) {
    if all.is_empty() {
        return;
    }
    s.push_str("# HELP omnigate_mailbox_up 1 while the mailbox's IMAP connection is up\n# TYPE omnigate_mailbox_up gauge\n");
    for (n, st) in all {
        let _ = writeln!(s, "omnigate_mailbox_up{{mailbox=\"{n}\"}} {}", st.up as u8);
    }
    s.push_str("# HELP omnigate_mail_imported_total Messages imported into cases\n# TYPE omnigate_mail_imported_total counter\n");
    for (n, st) in all {
        let _ = writeln!(
            s,
            "omnigate_mail_imported_total{{mailbox=\"{n}\"}} {}",
            st.imported
        );
    }
    s.push_str("# HELP omnigate_mail_quarantined_total Messages set aside unimported\n# TYPE omnigate_mail_quarantined_total counter\n");
    for (n, st) in all {
        let _ = writeln!(
            s,
            "omnigate_mail_quarantined_total{{mailbox=\"{n}\"}} {}",
            st.quarantined
        );
    }
}

/// A label value as Prometheus reads it (backslash, quote and newline escaped).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The contact centre now: work waiting per queue and the oldest wait, agents by
/// presence and how many hold work.
pub fn render_centre(s: &mut String, g: &crate::actors::router::Gauges) {
    s.push_str("# HELP omnigate_queue_waiting Work waiting in the queue, not yet offered\n# TYPE omnigate_queue_waiting gauge\n");
    for q in &g.queues {
        let _ = writeln!(
            s,
            "omnigate_queue_waiting{{queue=\"{}\"}} {}",
            label(&q.name),
            q.waiting
        );
    }
    s.push_str("# HELP omnigate_queue_oldest_wait_seconds How long the oldest waiting item has waited\n# TYPE omnigate_queue_oldest_wait_seconds gauge\n");
    for q in &g.queues {
        let _ = writeln!(
            s,
            "omnigate_queue_oldest_wait_seconds{{queue=\"{}\"}} {:.3}",
            label(&q.name),
            q.oldest_wait.as_secs_f64()
        );
    }
    s.push_str(
        "# HELP omnigate_agents Logged-in agents by presence\n# TYPE omnigate_agents gauge\n",
    );
    for p in ["available", "away", "busy", "wrap_up"] {
        let n = g.agents.get(p).copied().unwrap_or(0);
        let _ = writeln!(s, "omnigate_agents{{presence=\"{p}\"}} {n}");
    }
    s.push_str("# HELP omnigate_agents_working Logged-in agents holding work\n# TYPE omnigate_agents_working gauge\n");
    let _ = writeln!(s, "omnigate_agents_working {}", g.agents_working);
}

/// Each queue's service level since midnight UTC, by the KPI definition: the ratio
/// (for a queue with something counted) and its two counts, to sum across queues.
pub fn render_service_level(s: &mut String, sl: &[(String, u64, u64)]) {
    s.push_str("# HELP omnigate_queue_service_level_today Answered within the queue's target over those counted, since midnight UTC (the KPI definition: short abandons left out)\n# TYPE omnigate_queue_service_level_today gauge\n");
    for (q, num, den) in sl.iter().filter(|(_, _, den)| *den > 0) {
        let _ = writeln!(
            s,
            "omnigate_queue_service_level_today{{queue=\"{}\"}} {:.4}",
            label(q),
            *num as f64 / *den as f64
        );
    }
    s.push_str("# HELP omnigate_queue_sl_in_target_today Contacts answered within the queue's target since midnight UTC\n# TYPE omnigate_queue_sl_in_target_today gauge\n");
    for (q, num, _) in sl {
        let _ = writeln!(
            s,
            "omnigate_queue_sl_in_target_today{{queue=\"{}\"}} {num}",
            label(q)
        );
    }
    s.push_str("# HELP omnigate_queue_sl_counted_today Contacts the service level counts since midnight UTC\n# TYPE omnigate_queue_sl_counted_today gauge\n");
    for (q, _, den) in sl {
        let _ = writeln!(
            s,
            "omnigate_queue_sl_counted_today{{queue=\"{}\"}} {den}",
            label(q)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::router::{Gauges, QueueGauge};

    #[test]
    fn the_centre_reads_as_prometheus_gauges() {
        let g = Gauges {
            queues: vec![QueueGauge {
                name: "sales \"east\"".into(),
                waiting: 3,
                oldest_wait: std::time::Duration::from_millis(12_500),
            }],
            agents: [("available", 2), ("wrap_up", 1)].into_iter().collect(),
            agents_working: 1,
        };
        let mut s = String::new();
        render_centre(&mut s, &g);
        for line in [
            "omnigate_queue_waiting{queue=\"sales \\\"east\\\"\"} 3",
            "omnigate_queue_oldest_wait_seconds{queue=\"sales \\\"east\\\"\"} 12.500",
            "omnigate_agents{presence=\"available\"} 2",
            "omnigate_agents{presence=\"away\"} 0",
            "omnigate_agents{presence=\"wrap_up\"} 1",
            "omnigate_agents_working 1",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} in\n{s}");
        }
    }

    #[test]
    fn the_days_service_level_reads_as_gauges_and_an_empty_queue_has_no_ratio() {
        let mut s = String::new();
        render_service_level(&mut s, &[("support".into(), 2, 3), ("sales".into(), 0, 0)]);
        assert!(
            s.contains("omnigate_queue_service_level_today{queue=\"support\"} 0.6667\n"),
            "{s}"
        );
        assert!(
            !s.contains("omnigate_queue_service_level_today{queue=\"sales\"}"),
            "{s}"
        );
        assert!(
            s.contains("omnigate_queue_sl_in_target_today{queue=\"support\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("omnigate_queue_sl_counted_today{queue=\"sales\"} 0\n"),
            "{s}"
        );
    }
}
