//! Supervisors end to end: Sam supervises the day team and the support queue, Tom the
//! sales queue. Sam's console in headless Chromium shows his queue, his agent and a web
//! chat as it waits and is answered (and the whole state again after a dropped
//! socket), never Tom's; the KPI API gives each his own figures; Tom is refused Sam's
//! chat (403); every read is in the audit log; admins manage supervisors through the
//! API. Roles do not mix: an agent's token is no supervisor's and the other way round.
#![allow(clippy::disallowed_methods)] // real time for real processes

use crate::centre::{agent_ws, chat_with_first_message, log_in, put, raw, ty, until};
use crate::desktop::Browser;
use crate::harness::*;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

const CENTRE: &str = r#"
[[queue]]
name = "support"
sla_secs = 20
wrap_up_secs = 0

[[queue]]
name = "sales"

[[agent]]
name = "ann"
password = "ann-secret"
display_name = "Ann"
team = "day"
queues = ["support"]

[[agent]]
name = "ben"
password = "ben-secret"
display_name = "Ben"
team = "night"
queues = ["sales"]

[[supervisor]]
name = "sam"
password = "sam-secret"
display_name = "Sam"
teams = ["day"]
queues = ["support"]

[[supervisor]]
name = "tom"
password = "tom-secret"
queues = ["sales"]

[chat]
queue = "support"
"#;

fn sup_login(g: &Gateway, name: &str, pw: &str) -> (u16, String) {
    g.post(
        "/api/supervisor/login",
        None,
        &serde_json::json!({"name": name, "password": pw}).to_string(),
    )
}

fn token(g: &Gateway, name: &str, pw: &str) -> String {
    let (code, body) = sup_login(g, name, pw);
    assert_eq!(code, 200, "{body}");
    json(&body)["token"].as_str().unwrap().to_string()
}

fn names(v: &serde_json::Value, list: &str, key: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_supervisor_sees_and_acts_on_their_queues_and_teams_only() {
    let base = 25050;
    let g = Gateway::start(base, "", "", CENTRE);
    let artifacts = repo("target/e2e-artifacts/supervisor");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    // ---- Roles: a supervisor's token is not an agent's, nor the other way round.
    let (code, body) = sup_login(&g, "sam", "wrong-password");
    assert_eq!(code, 401, "{body}");
    let sam = token(&g, "sam", "sam-secret");
    let tom = token(&g, "tom", "tom-secret");
    let (code, body) = g.get_auth("/api/supervisor/me", &sam);
    assert_eq!(code, 200, "{body}");
    let me = json(&body);
    assert_eq!(me["queues"], serde_json::json!(["support"]), "{me}");
    assert_eq!(me["agents"], serde_json::json!(["ann"]), "{me}");
    assert_eq!(g.get_auth("/api/agent/me", &sam).0, 401);
    let (code, _) = sup_login(&g, "ann", "ann-secret");
    assert_eq!(code, 401, "an agent is no supervisor");

    // ---- Sam's console: his queue only.
    let mut b = Browser::run(
        "supervisor.mjs",
        &[
            &format!("http://127.0.0.1:{}", g.http),
            "sam",
            "sam-secret",
            &artifacts.display().to_string(),
        ],
    );
    let shown = b.step("console", &g);
    assert_eq!(names(&shown, "tiles", "queue"), ["support"], "{shown}");

    // Ann and Ben log in (away): Sam sees Ann, not Ben.
    let ann = log_in(&g, "ann", "ann-secret");
    let _ben = log_in(&g, "ben", "ben-secret");
    assert_eq!(g.get_auth("/api/supervisor/me", &ann).0, 401);
    let mut ann_ws = agent_ws(&g, &ann);
    until(&mut ann_ws, "ann's state", ty("state"));
    let shown = b.step("agents", &g);
    assert_eq!(names(&shown, "agents", "agent"), ["ann"], "{shown}");

    // A customer chats while Ann is away: it waits in support.
    let (_cust, chat, _, _) = chat_with_first_message(&g, "Carla Cliente", "carla@example.com");
    let shown = b.step("waiting", &g);
    let row = &shown["work"][0];
    assert_eq!(row["interaction"], chat.as_str(), "{shown}");
    assert_eq!(
        row["cells"][1], "Carla Cliente <carla@example.com>",
        "{shown}"
    );
    assert_eq!(row["cells"][2], "support", "{shown}");

    // Ann takes it: with an agent, answered within the target (the day's service
    // level on the tile, by the KPI definitions).
    let (code, body) = put(
        &g,
        "/api/agent/presence",
        &ann,
        r#"{"presence":"available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    until(&mut ann_ws, "the chat offered", |v| {
        v["type"] == "offer" && v["interaction"] == chat.as_str()
    });
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&ann), "");
    assert_eq!(code, 200, "{body}");
    let shown = b.step("assigned", &g);
    let row = &shown["work"][0];
    assert_eq!(row["cells"][3], "assigned", "{shown}");
    assert_eq!(row["cells"][4], "ann", "{shown}");
    let ann_row = &shown["agents"][0];
    assert_eq!(ann_row["cells"][2], "available", "{shown}");
    assert_eq!(ann_row["cells"][4], "1", "one piece of work: {shown}");
    assert!(
        shown["bars"].as_u64().unwrap() >= 1,
        "the day's chart: {shown}"
    );
    let again = b.step("reconnected", &g);
    assert_eq!(again["tiles"], shown["tiles"], "after a reconnect: {again}");
    assert_eq!(names(&again, "agents", "agent"), ["ann"], "{again}");
    assert_eq!(
        names(&again, "work", "interaction"),
        [chat.as_str()],
        "{again}"
    );
    b.step("logged_out", &g);
    b.finish();

    // Logging out on the console ended his every session.
    assert_eq!(g.get_auth("/api/supervisor/me", &sam).0, 401);
    let sam = token(&g, "sam", "sam-secret");

    // ---- The KPI API: each supervisor his own figures; the admin everything.
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let kpis = |who: &str| {
        let (code, body) = g.get_auth(&format!("/api/kpis?from={today}&group_by=queue"), who);
        assert_eq!(code, 200, "{body}");
        json(&body)
    };
    let r = kpis(&sam);
    assert_eq!(r["groups"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["groups"][0]["key"]["queue"], "support", "{r}");
    assert_eq!(r["total"]["contacts"], 1, "{r}");
    assert_eq!(r["total"]["service_level"]["num"], 1, "{r}");
    let r = kpis(&tom);
    assert_eq!(
        r["total"]["contacts"], 0,
        "Tom sees nothing of support: {r}"
    );
    let r = kpis("test-token");
    assert_eq!(r["total"]["contacts"], 1, "{r}");
    assert_eq!(
        g.get_auth("/api/kpis", &ann).0,
        401,
        "an agent reads no KPIs"
    );

    // ---- Sam reads his chat; Tom is refused it.
    let (code, body) = g.get_auth(&format!("/api/interactions/{chat}"), &tom);
    assert_eq!(code, 403, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("outside your queues and teams"));
    let (code, body) = g.get_auth(&format!("/api/interactions/{chat}"), &sam);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["agent"], "ann");

    // ---- What Sam did is in the audit log, for the admin only.
    let (code, body) = g.get_auth("/api/audit?actor=sam", "test-token");
    assert_eq!(code, 200, "{body}");
    let log = json(&body);
    let acts: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        acts,
        [
            "login",
            "login",
            "logout",
            "login",
            "kpis.read",
            "interaction.read"
        ],
        "{log}"
    );
    let read = log.as_array().unwrap().last().unwrap();
    assert_eq!(read["interaction"], chat.as_str(), "{read}");
    assert_eq!(read["role"], "supervisor", "{read}");
    assert_eq!(
        g.get_auth("/api/audit", &sam).0,
        401,
        "supervisors do not read the audit log"
    );
    let (code, body) = g.get_auth("/api/audit?limit=0", "test-token");
    assert_eq!(code, 400, "{body}");

    // ---- Admins manage supervisors: the config file's are read-only.
    let (code, body) = g.get_auth("/api/supervisors", "test-token");
    assert_eq!(code, 200, "{body}");
    let list = json(&body);
    assert_eq!(list[0]["name"], "sam", "{list}");
    assert_eq!(list[0]["source"], "config", "{list}");
    assert!(list[0].get("password").is_none(), "{list}");
    let zoe =
        |queues: &str, pw: &str| format!(r#"{{"name":"zoe","password":"{pw}","queues":{queues}}}"#);
    let (code, body) = g.post(
        "/api/supervisors",
        Some("test-token"),
        &zoe(r#"["nowhere"]"#, "zoe-secret"),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("no queue named \\\"nowhere\\\""), "{body}");
    let (code, body) = g.post(
        "/api/supervisors",
        Some("test-token"),
        &zoe(r#"["sales"]"#, "zoe-secret"),
    );
    assert_eq!(code, 201, "{body}");
    let zoe_token = token(&g, "zoe", "zoe-secret");
    let (code, body) = raw(
        &g,
        "PUT",
        "/api/supervisors/zoe",
        "test-token",
        &zoe(r#"["sales"]"#, "zoe-new-secret"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        g.get_auth("/api/supervisor/me", &zoe_token).0,
        401,
        "a new password ends her sessions"
    );
    let (code, body) = raw(
        &g,
        "PUT",
        "/api/supervisors/sam",
        "test-token",
        r#"{"name":"sam","queues":["sales"]}"#,
    );
    assert_eq!(code, 409, "{body}");
    let (code, body) = raw(&g, "DELETE", "/api/supervisors/zoe", "test-token", "");
    assert_eq!(code, 204, "{body}");
    assert_eq!(sup_login(&g, "zoe", "zoe-new-secret").0, 401);
}
