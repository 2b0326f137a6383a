//! A report as CSV (RFC 4180): a row per group and a last `(total)` row; times in
//! milliseconds, shares as fractions; an empty cell where a figure has no value.

use super::facts::Stage;
use super::report::{Kpis, Mean, Ratio, Report};

/// The columns after the group's keys.
const COLUMNS: &[&str] = &[
    "contacts",
    "inbound",
    "queued",
    "answered",
    "service_level",
    "service_level_met",
    "service_level_counted",
    "abandoned_ivr",
    "abandoned_bot",
    "abandoned_queue",
    "abandoned_ringing",
    "abandoned_hold",
    "abandoned_transfer",
    "short_abandons",
    "abandonment",
    "speed_of_answer_ms",
    "handled",
    "handle_time_ms",
    "talk_time_ms",
    "hold_time_ms",
    "holds",
    "after_contact_work_ms",
    "first_response_ms",
    "first_response_business_ms",
    "reply_time_ms",
    "offers",
    "missed_offers",
    "cases",
    "resolved_cases",
    "first_contact_resolution",
    "fcr_pending",
    "contacts_per_case",
    "repeat_contact",
    "reopened",
    "channel_switch",
    "csat",
    "csat_score",
    "nps",
    "ces",
    "survey_response",
    "containment",
    "bot_handoff",
    "occupancy",
    "occupied_ms",
    "staffed_ms",
];

/// `report` as CSV, with `keys` the group-by names in order.
pub fn csv(report: &Report, keys: &[&str]) -> String {
    let mut out = String::new();
    let header: Vec<String> = keys.iter().map(|k| cell(k)).collect();
    out.push_str(&header.join(","));
    if !keys.is_empty() {
        out.push(',');
    }
    out.push_str(&COLUMNS.join(","));
    out.push_str("\r\n");
    for g in &report.groups {
        let ks: Vec<String> = keys
            .iter()
            .map(|k| cell(g.key.get(k).map(String::as_str).unwrap_or("")))
            .collect();
        row(&mut out, &ks, &g.kpis);
    }
    let total: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == 0 {
                "(total)".into()
            } else {
                String::new()
            }
        })
        .collect();
    row(&mut out, &total, &report.total);
    out
}

fn row(out: &mut String, keys: &[String], k: &Kpis) {
    let r = |x: Ratio| x.value.map(|v| format!("{v:.4}")).unwrap_or_default();
    let m = |x: Mean| x.mean.map(|v| format!("{v:.0}")).unwrap_or_default();
    let m2 = |x: Mean| x.mean.map(|v| format!("{v:.2}")).unwrap_or_default();
    let n = |x: u64| x.to_string();
    let stage = |s: Stage| n(k.abandoned.get(s.name()).copied().unwrap_or(0));
    let cells = [
        n(k.contacts),
        n(k.inbound),
        n(k.queued),
        n(k.answered),
        r(k.service_level),
        n(k.service_level.num),
        n(k.service_level.den),
        stage(Stage::Ivr),
        stage(Stage::Bot),
        stage(Stage::Queue),
        stage(Stage::Ringing),
        stage(Stage::Hold),
        stage(Stage::Transfer),
        n(k.short_abandons),
        r(k.abandonment),
        m(k.speed_of_answer),
        n(k.handled),
        m(k.handle_time),
        m(k.talk_time),
        m(k.hold_time),
        n(k.holds),
        m(k.after_contact_work),
        m(k.first_response),
        m(k.first_response_business),
        m(k.reply_time),
        n(k.offers),
        n(k.missed_offers),
        n(k.cases),
        n(k.resolved_cases),
        r(k.first_contact_resolution),
        n(k.fcr_pending),
        m2(k.contacts_per_case),
        r(k.repeat_contact),
        r(k.reopened),
        r(k.channel_switch),
        r(k.csat),
        m2(k.csat_score),
        k.nps.map(|v| format!("{v:.1}")).unwrap_or_default(),
        m2(k.ces),
        r(k.survey_response),
        r(k.containment),
        r(k.bot_handoff),
        r(k.occupancy),
        n(k.occupancy.num),
        n(k.occupancy.den),
    ];
    let all: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .chain(cells.iter().map(String::as_str))
        .collect();
    out.push_str(&all.join(","));
    out.push_str("\r\n");
}

/// One text cell: quoted when it must be (RFC 4180), and never read as a formula by a
/// spreadsheet (a leading `=`, `+`, `-`, `@`, tab or return gets a `'`).
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::*;

    #[test]
    fn a_report_reads_as_csv_with_its_groups_and_total() {
        let c = Contact::new(
            "a",
            "voice",
            true,
            Some(1),
            Some(1),
            vec![
                Entry {
                    at: 0,
                    event: Event::Created,
                },
                Entry {
                    at: 0,
                    event: Event::Queued {
                        queue: "=sales, \"east\"".into(),
                    },
                },
                Entry {
                    at: 4000,
                    event: Event::Connected {
                        agent: "bob".into(),
                    },
                },
                Entry {
                    at: 64000,
                    event: Event::Ended { by: Party::Agent },
                },
            ],
        );
        let mut p = Params::new(0, 100_000, 100_000);
        p.group_by = vec![Key::Queue];
        let r = report(&[facts(&c)], &p);
        let text = csv(&r, &["queue"]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("queue,contacts,inbound,queued,answered,service_level,"));
        assert_eq!(lines[0].split(',').count(), COLUMNS.len() + 1);
        // The queue's name is quoted and cannot run as a formula.
        assert!(
            lines[1].starts_with("\"'=sales, \"\"east\"\"\",1,1,1,1,1.0000,1,1,"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("(total),1,1,1,1,1.0000,"));
        assert_eq!(lines[3], "");
        let speed = COLUMNS
            .iter()
            .position(|c| *c == "speed_of_answer_ms")
            .unwrap();
        let cells: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(cells[speed + 1], "4000");
        // No group: the total only.
        let r = report(&[facts(&c)], &Params::new(0, 100_000, 100_000));
        let text = csv(&r, &[]);
        assert_eq!(text.split("\r\n").count(), 3);
        assert!(text.starts_with("contacts,"));
    }
}
