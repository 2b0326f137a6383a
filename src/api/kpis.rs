//! `GET /api/kpis`: the KPIs of a period as JSON or CSV (admin or supervisor token). The question is
//! read here ([`ask`], unit-tested); the definitions live in [`crate::kpi`].

use super::agents::centre;
use super::error::ApiError;
use super::supervisor::{viewer, Viewer};
use super::{Reply, Shared};
use crate::kpi;
use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::HashMap;

const DAY: i64 = 86_400_000;
/// The longest period one request may cover.
const MAX_DAYS: i64 = 366;
/// The most interactions one report reads (their facts are held in memory: about
/// a gigabyte at this bound; see the README's benchmark).
pub const MAX_INTERACTIONS: i64 = 1_000_000;
/// The most agents' activity changes one report reads as such (occupancy): the
/// whole quarter hours before the last minute are kept per quarter hour
/// (`Store::refresh_activity_packs`), so only the ragged ends and the last minutes
/// are read change by change, unless the packs could not be made; then each change is
/// read whole (about 3.6 µs and 0.9 KB resident apiece on this machine, `cargo bench
/// --bench kpis`), and more is refused with the same advice.
pub const MAX_ACTIVITY: i64 = 500_000;
const KNOWN: &[&str] = &[
    "from",
    "to",
    "tz",
    "group_by",
    "format",
    "sl_secs",
    "abandons",
    "short_abandon_secs",
    "fcr_days",
];

/// What a request asks for.
#[derive(Debug)]
pub struct Ask {
    pub params: kpi::Params,
    pub csv: bool,
    /// A service-level threshold for every queue (ms), instead of each queue's own.
    pub sl: Option<i64>,
}

/// Reads the query (`now`: Unix ms). An error says which parameter is wrong and what
/// it may be.
pub fn ask(q: &HashMap<String, String>, now: i64, accept_csv: bool) -> Result<Ask, String> {
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown parameter `{k}` (known: {})",
            KNOWN.join(", ")
        ));
    }
    let tz = match q.get("tz") {
        None => jiff::tz::TimeZone::UTC,
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|_| format!("tz `{name}` is not a time zone name like America/Guayaquil"))?,
    };
    let now_ts = jiff::Timestamp::from_millisecond(now).map_err(|e| e.to_string())?;
    let today = now_ts.to_zoned(tz.clone()).date();
    let when = |name: &str, end: bool| -> Result<Option<i64>, String> {
        let Some(v) = q.get(name) else {
            return Ok(None);
        };
        if let Ok(t) = v.parse::<jiff::Timestamp>() {
            return Ok(Some(t.as_millisecond()));
        }
        let d = v.parse::<jiff::civil::Date>().map_err(|_| {
            format!("{name} must be a date (2026-12-03) or an instant with its offset (2026-12-03T08:00:00-05:00)")
        })?;
        // A date as `to` includes that day.
        let d = if end {
            d.tomorrow().map_err(|e| e.to_string())?
        } else {
            d
        };
        let z = d.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
        Ok(Some(z.timestamp().as_millisecond()))
    };
    let from = match when("from", false)? {
        Some(t) => t,
        None => today
            .to_zoned(tz.clone())
            .map_err(|e| e.to_string())?
            .timestamp()
            .as_millisecond(),
    };
    let to = when("to", true)?.unwrap_or(now);
    if from >= to {
        return Err("from must be before to".into());
    }
    if to - from > MAX_DAYS * DAY {
        return Err(format!("a report covers at most {MAX_DAYS} days"));
    }
    let mut group_by = vec![];
    if let Some(g) = q.get("group_by").filter(|g| !g.is_empty()) {
        for name in g.split(',') {
            let k = kpi::Key::from_name(name.trim()).ok_or_else(|| {
                format!("group_by `{name}` is not one of queue, agent, channel, hour, day")
            })?;
            if group_by.contains(&k) {
                return Err(format!("group_by names `{name}` twice"));
            }
            group_by.push(k);
        }
    }
    if group_by.len() > 3 {
        return Err("group_by takes at most three keys".into());
    }
    let number =
        |name: &str, range: std::ops::RangeInclusive<i64>| -> Result<Option<i64>, String> {
            match q.get(name) {
                None => Ok(None),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if range.contains(&n) => Ok(Some(n)),
                    _ => Err(format!(
                        "{name} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    )),
                },
            }
        };
    let mut params = kpi::Params::new(from, to, now);
    params.tz = tz;
    params.group_by = group_by;
    if let Some(a) = q.get("abandons") {
        params.abandons = kpi::Abandons::from_name(a).ok_or_else(|| {
            format!("abandons `{a}` is not one of counted, ignored, met_if_within")
        })?;
    }
    if let Some(s) = number("short_abandon_secs", 0..=600)? {
        params.short_abandon = s * 1000;
    }
    if let Some(d) = number("fcr_days", 1..=90)? {
        params.fcr_days = d;
    }
    let sl = number("sl_secs", 1..=3600)?.map(|s| s * 1000);
    let csv = match q.get("format").map(String::as_str) {
        None => accept_csv,
        Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(format!("format `{f}` is not json or csv")),
    };
    Ok(Ask { params, csv, sl })
}

/// `GET /api/kpis`: the admin sees everything; a supervisor their queues and agents
/// (and the read is in the audit log).
pub(super) async fn kpis(req: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let who = viewer(&req, &shared)?;
    let c = centre(&shared)?;
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::bad_request("bad query string"))?;
    let accept_csv = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let now = crate::clock::unix_millis() as i64;
    let Ask {
        mut params,
        csv,
        sl,
    } = ask(&q, now, accept_csv).map_err(ApiError::bad_request)?;
    if let Viewer::Supervisor { name, scope } = &who {
        params.scope = Some(kpi::report::Scope {
            queues: scope.queues.clone(),
            agents: scope.agents.clone(),
        });
        c.audit(
            name,
            "kpis.read",
            None,
            serde_json::json!({"query": req.query_string()}),
        )
        .await?;
    }
    let report = run(c, &mut params, sl, now).await?;
    let keys: Vec<&str> = params.group_by.iter().map(|k| k.name()).collect();
    if csv {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Content-Disposition", "attachment; filename=\"kpis.csv\""))
            .body(kpi::csv::csv(&report, &keys)));
    }
    let instant = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": instant(params.from),
        "to": instant(params.to),
        "tz": params.tz.iana_name().unwrap_or("UTC"),
        "group_by": keys,
        "fcr_days": params.fcr_days,
        "groups": report.groups,
        "total": report.total,
    })))
}

/// Reads the period's log (and `fcr_days` after it, up to now) and reports on it with
/// the queues' own service-level targets (or `sl` ms for all) and opening hours.
/// A period holding more than a report reads (`n` of `max` `what`) is refused (422).
fn at_most(n: i64, max: i64, what: &str) -> Result<(), ApiError> {
    if n > max {
        return Err(too_many(n, max, what));
    }
    Ok(())
}

fn too_many(n: i64, max: i64, what: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "the period holds {n} {what}; a report reads at most {max}: ask for a shorter period"
        ),
    )
}

async fn run(
    c: &crate::centre::Centre,
    params: &mut kpi::Params,
    sl: Option<i64>,
    now: i64,
) -> Result<kpi::Report, ApiError> {
    for queue in c.router().send(crate::actors::router::QueueConfigs).await? {
        let ms = i64::try_from(queue.sla_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        params.sla.insert(queue.name.clone(), sl.unwrap_or(ms));
        if let Some(h) = queue.hours.as_ref().and_then(|h| h.hours().ok()) {
            params.hours.insert(queue.name, h);
        }
    }
    if let Some(s) = sl {
        params.default_sla = s;
    }
    // Later contacts of the same customers decide first contact resolution.
    let until = (params.to + params.fcr_days * DAY)
        .min(now + 1)
        .max(params.to);
    let n = c.store().interactions_between(params.from, until).await?;
    at_most(n, MAX_INTERACTIONS, "interactions")?;
    // Each interaction's facts as kept (made again first where its log changed),
    // folded off the async threads.
    let facts = c.store().kpi_facts_all(params.from, until).await?;
    // The agents' occupancy in the period: kept per quarter hour, the rest read as
    // changes (bounded).
    let to = params.to.min(now + 1);
    let occupancy = match c
        .store()
        .occupancy_input(params.from, to, now, MAX_ACTIVITY)
        .await?
    {
        Ok(o) => o,
        Err(n) => return Err(too_many(n, MAX_ACTIVITY, "changes of agents' activity")),
    };
    let p = params.clone();
    tokio::task::spawn_blocking(move || {
        let parts: Vec<&[kpi::Facts]> = facts.iter().map(Vec::as_slice).collect();
        let mut r = kpi::report::report_parts(&parts, &p);
        occupancy.add_to(&mut r, &p);
        r
    })
    .await
    .map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("the report failed: {e}"),
        )
    })
}

/// The supervisor console's figures of the day in time zone `tz` (since its
/// midnight): per queue of their scope, and per hour for the charts, computed by the
/// same definitions as `GET /api/kpis` (so the tiles and the report agree).
pub(super) async fn today(
    c: &crate::centre::Centre,
    tz: &jiff::tz::TimeZone,
    scope: &crate::centre::Scope,
) -> Result<serde_json::Value, ApiError> {
    let now = crate::clock::unix_millis() as i64;
    let since = jiff::Timestamp::from_millisecond(now)
        .ok()
        .and_then(|t| t.to_zoned(tz.clone()).start_of_day().ok())
        .map_or(now - now.rem_euclid(DAY), |z| {
            z.timestamp().as_millisecond()
        });
    let scope = kpi::report::Scope {
        queues: scope.queues.clone(),
        agents: scope.agents.clone(),
    };
    let mut out = serde_json::json!({"since": since});
    for (name, key) in [("queues", kpi::Key::Queue), ("hours", kpi::Key::Hour)] {
        let mut p = kpi::Params::new(since, now + 1, now);
        p.group_by = vec![key];
        p.scope = Some(scope.clone());
        p.fcr_days = 1;
        p.tz = tz.clone();
        let r = run(c, &mut p, None, now).await?;
        let groups: Vec<_> = r
            .groups
            .into_iter()
            .map(|g| {
                serde_json::json!({
                    "key": g.key.values().next().cloned().unwrap_or_default(),
                    "kpis": g.kpis,
                })
            })
            .collect();
        out[name] = groups.into();
    }
    Ok(out)
}

/// How long a day's service level is reused (by `/metrics` and the agents' status
/// bars) before the log is read again.
pub const SL_TODAY_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// Days (`since` values) whose service level is kept at once.
pub const SL_TODAY_KEPT: usize = 64;

/// Each queue's service level since `since` (Unix ms, taken to the minute: the
/// `GET /api/kpis` definition: answered within the queue's target over those counted)
/// as `(queue, num, den)`, read at most every [`SL_TODAY_FOR`] per `since`; one read at
/// a time, the others wait for its answer.
pub(super) async fn service_level_since(
    shared: &super::Shared,
    c: &crate::centre::Centre,
    since: i64,
) -> Result<super::SlToday, ApiError> {
    let since = since - since.rem_euclid(60_000);
    let mut kept = shared.sl_today.lock().await;
    let now_i = crate::clock::now();
    let fresh = |at: &std::time::Instant| now_i.saturating_duration_since(*at) < SL_TODAY_FOR;
    if let Some((at, v)) = kept.get(&since) {
        if fresh(at) {
            return Ok(v.clone());
        }
    }
    let now = crate::clock::unix_millis() as i64;
    let mut p = kpi::Params::new(since, now + 1, now);
    p.group_by = vec![kpi::Key::Queue];
    p.fcr_days = 1;
    let r = run(c, &mut p, None, now).await?;
    let v: super::SlToday = r
        .groups
        .into_iter()
        .map(|g| {
            let q = g.key.values().next().cloned().unwrap_or_default();
            (q, g.kpis.service_level.num, g.kpis.service_level.den)
        })
        .collect();
    kept.retain(|_, (at, _)| fresh(at));
    if kept.len() >= SL_TODAY_KEPT {
        kept.clear();
    }
    kept.insert(since, (crate::clock::now(), v.clone()));
    Ok(v)
}

/// Midnight UTC of today (Unix ms).
pub(super) fn utc_midnight() -> i64 {
    let now = crate::clock::unix_millis() as i64;
    now - now.rem_euclid(DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOW: i64 = 1_796_331_600_000; // 2026-12-03T21:00:00Z

    #[test]
    fn a_period_is_read_in_the_time_zone_asked_for() {
        let a = ask(&q(&[]), NOW, false).unwrap();
        assert_eq!(a.params.from, NOW - 21 * 3_600_000, "today, UTC");
        assert_eq!(a.params.to, NOW);
        assert!(!a.csv);
        let a = ask(
            &q(&[
                ("from", "2026-12-01"),
                ("to", "2026-12-02"),
                ("tz", "America/Guayaquil"),
                ("group_by", "queue,hour"),
                ("format", "csv"),
            ]),
            NOW,
            false,
        )
        .unwrap();
        // 1 December 00:00 in Guayaquil (UTC-5) to the end of the 2nd.
        assert_eq!(a.params.from, 1_796_101_200_000);
        assert_eq!(a.params.to - a.params.from, 2 * DAY);
        assert_eq!(a.params.group_by, [kpi::Key::Queue, kpi::Key::Hour]);
        assert!(a.csv);
        let a = ask(&q(&[("from", "2026-12-03T08:00:00-05:00")]), NOW, true).unwrap();
        assert_eq!(a.params.from, NOW - 8 * 3_600_000);
        assert!(a.csv, "Accept: text/csv");
        let a = ask(
            &q(&[
                ("sl_secs", "30"),
                ("abandons", "ignored"),
                ("short_abandon_secs", "0"),
                ("fcr_days", "3"),
            ]),
            NOW,
            false,
        )
        .unwrap();
        assert_eq!(a.sl, Some(30_000));
        assert_eq!(a.params.abandons, kpi::Abandons::Ignored);
        assert_eq!((a.params.short_abandon, a.params.fcr_days), (0, 3));
    }

    #[test]
    fn a_bad_question_says_what_is_wrong() {
        let err = |pairs: &[(&str, &str)]| ask(&q(pairs), NOW, false).unwrap_err();
        assert!(err(&[("form", "2026-12-01")]).contains("unknown parameter `form`"));
        assert!(err(&[("tz", "Mars/Olympus")]).contains("not a time zone"));
        assert!(err(&[("from", "yesterday")]).contains("from must be a date"));
        assert!(err(&[("from", "2026-12-03"), ("to", "2026-12-01")]).contains("before"));
        assert!(err(&[("from", "2024-01-01")]).contains("at most 366 days"));
        assert!(err(&[("group_by", "queue,planet")]).contains("`planet`"));
        assert!(err(&[("group_by", "day,day")]).contains("twice"));
        assert!(err(&[("group_by", "day,hour,queue,agent")]).contains("at most three"));
        assert!(err(&[("sl_secs", "0")]).contains("from 1 to 3600"));
        assert!(err(&[("fcr_days", "x")]).contains("fcr_days"));
        assert!(err(&[("abandons", "some")]).contains("counted, ignored, met_if_within"));
        assert!(err(&[("format", "xml")]).contains("json or csv"));
    }
}
