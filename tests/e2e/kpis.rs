//! The KPI API after a scripted stretch of a day: real SIPp callers through the IVR
//! into a queue (two leave while nobody is there, one after 2 s, one after 8 s; one
//! reaches Ann's desk phone), and a web chat Ann answers, verifies, resolves and the
//! customer rates. `GET /api/kpis` must give the figures worked out by hand below, as
//! JSON grouped by channel and as CSV.
#![allow(clippy::disallowed_methods)] // real time for real processes

use crate::centre::{agent_ws, chat_with_first_message, log_in, login, put, ty, until};
use crate::harness::*;
use std::time::Duration;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn the_kpis_of_a_scripted_day_match_the_figures_worked_out_by_hand() {
    let base = 21950;
    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    // Callers wait in support for up to a minute.
    let (g, _dp) = crate::channels::queueing_gateway(
        base,
        "[[queue]]\nname = \"support\"\nsla_secs = 20\noffer_timeout_secs = 30\nwrap_up_secs = 0\nhours = { timezone = \"UTC\", open = { daily = \"00:00-24:00\" } }\n\n[[agent]]\nname = \"ann\"\npassword = \"ann-secret\"\ndisplay_name = \"Ann\"\nqueues = [\"support\"]\nextension = \"1001\"\n\n[chat]\nqueue = \"support\"\n",
    );
    let sip = format!("127.0.0.1:{}", g.sip);
    let caller = |port: u16, hold_ms: u32| {
        sipp_spawn(
            g.dir.path(),
            &[
                "-sn",
                "uac",
                "-s",
                "100",
                "-d",
                &hold_ms.to_string(),
                "-p",
                &port.to_string(),
                "-mp",
                &(port + 4).to_string(),
                "-m",
                "1",
                &sip,
            ],
        )
    };

    // ---- Ann is logged in but away: two callers wait and give up, one after 2 s
    // (a short abandon), one after 8 s.
    let ann = log_in(&g, "ann", "ann-secret");
    let mut ann_ws = agent_ws(&g, &ann);
    until(&mut ann_ws, "ann's state", ty("state"));
    let patient = caller(base + 30, 8000);
    // The live gauges: one waiting, nobody to take it, Ann away.
    g.wait_metric("omnigate_queue_waiting{queue=\"support\"}", 1.0);
    g.wait_metric("omnigate_agents{presence=\"away\"}", 1.0);
    g.wait_metric("omnigate_agents{presence=\"available\"}", 0.0);
    let quick = caller(base + 20, 2000);
    g.wait_metric("omnigate_queue_waiting{queue=\"support\"}", 2.0);
    wait_for("the oldest wait to grow", Duration::from_secs(5), || {
        g.metric("omnigate_queue_oldest_wait_seconds{queue=\"support\"}")
            .is_some_and(|s| s >= 1.0)
    });
    assert_sipp_done(quick, "the caller who leaves after 2 s", &g);
    assert_sipp_done(patient, "the caller who leaves after 8 s", &g);
    g.wait_metric("omnigate_queue_waiting{queue=\"support\"}", 0.0);

    // ---- Ann is available: a caller reaches her desk phone and talks 5 s.
    let phone = desk_phone_answering(&g, "1001", base + 10);
    let available_at = std::time::Instant::now();
    let (code, body) = put(
        &g,
        "/api/agent/presence",
        &ann,
        r#"{"presence":"available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let talker = caller(base + 40, 5000);
    let o = until(&mut ann_ws, "the call offered", ty("offer"));
    let call = o.last().unwrap()["interaction"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{call}/accept"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    assert_sipp_done(talker, "the caller who talks to Ann", &g);
    assert_sipp_done(phone, "Ann's desk phone", &g);
    until(&mut ann_ws, "the call ended", |v| {
        v["type"] == "ended" && v["interaction"] == call.as_str()
    });

    // ---- a web chat: the customer writes, Ann answers, verifies her, ends, resolves
    // the case; the customer rates it 5.
    let (mut cust, chat, token, _) = chat_with_first_message(&g, "Grace Hopper", "+1 555 123 0001");
    until(&mut ann_ws, "the chat offered", |v| {
        v["type"] == "offer" && v["interaction"] == chat.as_str()
    });
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(&format!("/api/agent/work/{chat}/verify"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/messages"),
        Some(&ann),
        r#"{"text":"Let me fix that."}"#,
    );
    assert_eq!(code, 201, "{body}");
    until(&mut cust, "ann's reply", |v| v["from"] == "agent");
    let (code, body) = g.post(&format!("/api/agent/work/{chat}/end"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    until(&mut cust, "closed", ty("closed"));
    let (code, body) = g.post(
        &format!("/api/agent/work/{chat}/wrap_up"),
        Some(&ann),
        r#"{"disposition":"fixed","resolved":true}"#,
    );
    assert_eq!(code, 200, "{body}");
    // A bad further answer is refused with its range and spends nothing.
    let rate = |extra: serde_json::Value| {
        let mut b = serde_json::json!({"chat": chat, "token": token, "score": 5});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        g.post("/chat/rating", None, &b.to_string())
    };
    let (code, body) = rate(serde_json::json!({"nps": 11}));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("nps must be 0"), "{body}");
    let (code, body) = rate(serde_json::json!({"ces": 0}));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("ces must be 1"), "{body}");
    let (code, body) = rate(serde_json::json!({"nps": 9, "ces": 6}));
    assert!((200..300).contains(&code), "{code} {body}");

    // ---- the KPIs, as worked out by hand.
    let from = started.to_string();
    let ask = |q: &str| g.get_auth(&format!("/api/kpis?from={from}{q}"), "test-token");
    // Every record written (the last call's end comes with its BYE).
    wait_for("the calls' ends on record", Duration::from_secs(10), || {
        let (_, body) = ask("");
        json(&body)["total"]["contacts"] == 4 && json(&body)["total"]["abandoned"]["queue"] == 2
    });
    let (code, body) = ask("&group_by=channel");
    assert_eq!(code, 200, "{body}");
    let r = json(&body);
    assert_eq!(r["group_by"], serde_json::json!(["channel"]), "{r}");
    let group = |ch: &str| {
        r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"]["channel"] == ch)
            .unwrap_or_else(|| panic!("no {ch} group: {r}"))["kpis"]
            .clone()
    };
    let voice = group("voice");
    let pair = |v: &serde_json::Value| (v["num"].as_u64().unwrap(), v["den"].as_u64().unwrap());
    assert_eq!(voice["contacts"], 3, "{voice}");
    assert_eq!(voice["queued"], 3, "{voice}");
    assert_eq!(voice["answered"], 1, "{voice}");
    assert_eq!(voice["handled"], 1, "{voice}");
    // Answered within 20 s, and the 8 s abandon missed; the 2 s one is left out.
    assert_eq!(pair(&voice["service_level"]), (1, 2), "{voice}");
    assert_eq!(voice["short_abandons"], 1, "{voice}");
    assert_eq!(
        voice["abandoned"],
        serde_json::json!({"queue": 2}),
        "{voice}"
    );
    assert_eq!(pair(&voice["abandonment"]), (1, 2), "{voice}");
    // Talked about 5 s (SIPp's pause after the answer).
    let talk = voice["talk_time"]["mean"].as_f64().unwrap();
    assert!((4_000.0..8_000.0).contains(&talk), "{voice}");
    // The three calls come from one customer: one case.
    assert_eq!(voice["cases"], 1, "{voice}");
    let chat_k = group("webchat");
    assert_eq!(
        (chat_k["contacts"].clone(), chat_k["handled"].clone()),
        (1.into(), 1.into()),
        "{chat_k}"
    );
    assert_eq!(pair(&chat_k["service_level"]), (1, 1), "{chat_k}");
    assert_eq!(chat_k["first_response"]["n"], 1, "{chat_k}");
    // Open all day: the business-hours time is the same.
    assert_eq!(
        chat_k["first_response_business"]["sum"], chat_k["first_response"]["sum"],
        "{chat_k}"
    );
    assert_eq!(chat_k["resolved_cases"], 1, "{chat_k}");
    // Resolved just now: judged once seven days have passed.
    assert_eq!(chat_k["fcr_pending"], 1, "{chat_k}");
    assert_eq!(pair(&chat_k["csat"]), (1, 1), "{chat_k}");
    // The same survey's NPS (a 9: one promoter of one) and CES.
    assert_eq!(chat_k["nps_answers"], 1, "{chat_k}");
    assert_eq!(chat_k["nps"], 100.0, "{chat_k}");
    assert_eq!(chat_k["ces"]["mean"], 6.0, "{chat_k}");
    let total = &r["total"];
    assert_eq!(total["contacts"], 4, "{total}");
    assert_eq!(total["cases"], 2, "{total}");
    assert_eq!(total["contacts_per_case"]["mean"], 2.0, "{total}");
    assert_eq!(pair(&total["survey_response"]), (1, 2), "{total}");
    assert_eq!(pair(&total["channel_switch"]), (0, 2), "{total}");
    assert_eq!(total["offers"], 2, "{total}");
    assert_eq!(total["missed_offers"], 0, "{total}");

    // Occupancy: Ann's time on the call and the chat over her time available since
    // she said so (the time away before is on neither side); per agent and per hour
    // the same as the total.
    let asked_at = std::time::Instant::now();
    let (code, body) = ask("&group_by=agent");
    let floor_ms = asked_at.duration_since(available_at).as_millis() as u64;
    assert_eq!(code, 200, "{body}");
    let by_agent = json(&body);
    let occ = pair(&by_agent["total"]["occupancy"]);
    let ann_occ = by_agent["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"]["agent"] == "ann")
        .unwrap_or_else(|| panic!("{by_agent}"))["kpis"]["occupancy"]
        .clone();
    assert_eq!(pair(&ann_occ), occ, "{by_agent}");
    let talk_sum = voice["talk_time"]["sum"].as_u64().unwrap();
    assert!(
        occ.0 >= talk_sum && occ.0 < occ.1,
        "{occ:?}, talk {talk_sum}"
    );
    assert!(
        occ.1 <= floor_ms + 1000 && occ.1 + 3000 >= floor_ms,
        "staffed {} ms, available for {floor_ms} ms",
        occ.1
    );

    // The day's service level in /metrics is the report's for the day (read again at
    // most every 10 s).
    let day = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let (code, body) = g.get_auth(
        &format!("/api/kpis?from={day}&group_by=queue"),
        "test-token",
    );
    assert_eq!(code, 200, "{body}");
    let by_queue = json(&body);
    let support = by_queue["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"]["queue"] == "support")
        .unwrap_or_else(|| panic!("{by_queue}"))["kpis"]["service_level"]
        .clone();
    let (num, den) = pair(&support);
    assert!(
        den >= 3,
        "today's support contacts include this test's: {support}"
    );
    wait_for(
        "the day's service level in /metrics",
        Duration::from_secs(15),
        || {
            g.metric("omnigate_queue_sl_counted_today{queue=\"support\"}") == Some(den as f64)
                && g.metric("omnigate_queue_sl_in_target_today{queue=\"support\"}")
                    == Some(num as f64)
        },
    );
    let ratio = g
        .metric("omnigate_queue_service_level_today{queue=\"support\"}")
        .unwrap();
    assert!((ratio - num as f64 / den as f64).abs() < 1e-3, "{ratio}");

    // Abandons left out of the service level on request; a threshold for all queues.
    let (_, body) = ask("&abandons=ignored");
    assert_eq!(
        pair(&json(&body)["total"]["service_level"]),
        (2, 2),
        "{body}"
    );
    let (_, body) = ask("&short_abandon_secs=0");
    assert_eq!(
        pair(&json(&body)["total"]["service_level"]),
        (2, 4),
        "{body}"
    );

    // CSV: a row per group and the total.
    let (code, csv) = ask("&group_by=channel&format=csv");
    assert_eq!(code, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("channel,contacts,inbound,queued,answered,service_level,"),
        "{csv}"
    );
    assert!(lines[1].starts_with("voice,3,3,3,1,0.5000,1,2,"), "{csv}");
    assert!(lines[2].starts_with("webchat,1,1,1,1,1.0000,"), "{csv}");
    assert!(lines[3].starts_with("(total),4,4,4,2,"), "{csv}");

    // Refusals: no token, a wrong parameter.
    let (code, body) = g.get("/api/kpis");
    assert_eq!(code, 401, "{body}");
    let (code, body) = ask("&tz=Mars/Olympus");
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("not a time zone"),
        "{body}"
    );
    let (code, body) = ask("&group_by=planet");
    assert_eq!(code, 400, "{body}");
}

/// The demo flow's survey after a sales call: a SIPp caller presses 1 for sales,
/// Alice's desk phone (SIPp) takes the call, Alice hangs up from the API, and the
/// caller, still on the line, hears the question and answers with a key (4 or 5: the
/// caller alternates them, see `uac_rates.xml`). The key is the interaction's survey
/// answer, on the timeline after Alice's hang-up, and `GET /api/kpis` counts one
/// satisfied case; Alice was free before the caller answered.
#[test]
fn a_caller_rates_a_sales_call_with_a_key_after_the_agent_hangs_up() {
    rates_after_the_agent(27500, false);
}

/// The same when Alice puts her desk phone down (its BYE) instead of using the API.
#[test]
fn a_caller_rates_the_call_after_the_agents_desk_phone_hangs_up() {
    rates_after_the_agent(27600, true);
}

fn rates_after_the_agent(base: u16, phone_hangs_up: bool) {
    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let (g, _dp) = demo_ivr_gateway(base);
    let alice = login(&g, "alice", "demo-alice");
    let mut ws = agent_ws(&g, &alice);
    until(&mut ws, "alice's state", ty("state"));
    let phone = if phone_hangs_up {
        register_demo_phone(&g, "1001", base + 10);
        sipp_spawn(
            g.dir.path(),
            &[
                "-sf",
                &scenario("uas_answer_then_bye.xml"),
                "-p",
                &(base + 10).to_string(),
                "-mp",
                &(base + 14).to_string(),
                "-m",
                "1",
            ],
        )
    } else {
        desk_phone_answering(&g, "1001", base + 10)
    };
    let caller = sipp_spawn(
        g.dir.path(),
        &[
            "-sf",
            &scenario("uac_rates.xml"),
            "-s",
            "100",
            "-m",
            "1",
            "-timeout",
            "90s",
            "-p",
            &(base + 20).to_string(),
            "-mp",
            &(base + 24).to_string(),
            &format!("127.0.0.1:{}", g.sip),
        ],
    );
    g.wait_log_within("queue=sales", Duration::from_secs(20));
    let o = until(&mut ws, "the call offered", ty("offer"));
    let id = o.last().unwrap()["interaction"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = g.post(&format!("/api/agent/offers/{id}/accept"), Some(&alice), "");
    assert_eq!(code, 200, "{body}");
    wait_for("alice's phone to answer", Duration::from_secs(20), || {
        g.log().contains("agent on the call")
    });
    if !phone_hangs_up {
        let (code, body) = g.post(&format!("/api/agent/work/{id}/hangup"), Some(&alice), "");
        assert_eq!(code, 200, "{body}");
    }
    // Alice is free (wrap-up) while the caller is still on the line (the question,
    // a key, then 3 s of thanks).
    until(&mut ws, "the call ended for alice", |v| {
        v["type"] == "ended" && v["interaction"] == id.as_str()
    });
    assert!(
        !g.log().contains("call ended call=call-1 leg=0"),
        "alice was freed before the caller's call ended"
    );
    assert_sipp_done(phone, "alice's phone", &g);
    assert_sipp_done(caller, "the caller", &g);

    let mut i = serde_json::Value::Null;
    wait_for(
        "the survey answer on record",
        Duration::from_secs(10),
        || {
            let (_, body) = g.get_auth(&format!("/api/interactions/{id}"), "test-token");
            i = json(&body);
            !i["survey"].is_null()
        },
    );
    let score = i["survey"]["score"].as_i64().unwrap();
    assert!(score == 4 || score == 5, "{i}");
    assert_eq!(i["survey"]["channel"], "voice", "{i}");
    assert_eq!(
        i["outcome"], "answered sales",
        "the agent's answer stays: {i}"
    );
    let kinds = timeline_kinds(&i);
    let at = |k: &str| kinds.iter().position(|x| *x == k);
    assert!(
        at("hung up").is_some() && at("hung up") < at("rated"),
        "{kinds:?}"
    );
    let (code, body) = g.get_auth(&format!("/api/kpis?from={started}"), "test-token");
    assert_eq!(code, 200, "{body}");
    let total = &json(&body)["total"];
    assert_eq!(total["csat"]["num"], 1, "{total}");
    assert_eq!(total["csat"]["den"], 1, "{total}");
    assert_eq!(total["csat_score"]["mean"], score as f64, "{total}");
    assert_eq!(total["survey_response"]["num"], 1, "{total}");
    // Alice never gave her wrap-up: the router noted its start and when it runs out
    // (the demo queues give 5 s), and after-contact work counts the whole of it.
    let w = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "wrap-up started")
        .unwrap_or_else(|| panic!("{i}"))
        .clone();
    assert_eq!(w["data"]["agent"], "alice", "{w}");
    let acw = total["after_contact_work"]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("{total} {i}"));
    assert!((4_500.0..=5_000.0).contains(&acw), "{total}");
}
