//! The config file: defaults, errors at their line, demo mode, routes.

use super::centre::WEBHOOK_EVENTS;
use super::*;

#[test]
fn example_config_parses() {
    let text = include_str!("../../omnigate.example.toml");
    let c = Config::parse(text, "omnigate.example.toml").unwrap();
    assert!(!c.trunks.is_empty());
    assert_eq!(
        c.bot,
        crate::bot::BotConfig::default(),
        "the example shows the defaults"
    );
}

#[test]
fn listeners_and_the_webrtc_port_can_be_off() {
    let c = Config::parse(
        "[sip]\ntcp = \"off\"\nws = \"OFF\"\nudp = \"127.0.0.1:5070\"\n[http]\nlisten = \"off\"\n[webrtc]\nport = \"off\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!((c.sip.tcp, c.sip.ws, c.http.listen), (None, None, None));
    assert_eq!(c.sip.udp, Some("127.0.0.1:5070".parse().unwrap()));
    assert_eq!(c.webrtc.port, 0);
    let e = Config::parse("[sip]\ntcp = \"localhost\"\n", "t.toml").unwrap_err();
    assert!(
        e.0.starts_with("t.toml:2:7: \"localhost\" is not a listen address"),
        "{}",
        e.0
    );
}

#[test]
fn an_unknown_log_level_is_refused_at_its_line() {
    let e = Config::parse("[log]\nlevel = \"verbose\"\n", "t.toml").unwrap_err();
    assert!(e.0.starts_with("t.toml:2:"), "{}", e.0);
    assert!(e.0.contains("\"verbose\" is not a log level"), "{}", e.0);
    assert!(Config::parse("[log]\nlevel = \"info,omnigate=debug\"\n", "t.toml").is_ok());
    assert!(Config::parse("[log]\nlevel = \"omnigate=loud\"\n", "t.toml").is_err());
}

#[test]
fn type_errors_are_worded_for_people() {
    let e = Config::parse("[shutdown]\ngrace_secs = \"ten\"\n", "t.toml").unwrap_err();
    assert!(e.0.contains("expected a whole number"), "{}", e.0);
    assert!(!e.0.contains("u64"), "{}", e.0);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = Config::parse(
        "[sip]\nrealm = \"x\"\nudpp = \"127.0.0.1:5060\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(
        e.0.starts_with("t.toml:3:1: unknown field `udpp`"),
        "{}",
        e.0
    );
}

#[test]
fn database_url_checked_and_password_kept_out_of_logs() {
    let e = Config::parse(
        "[data]\ndir = \"d\"\ndatabase = \"mysql://x/y\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(e.0.starts_with("t.toml:3:"), "{}", e.0);
    assert!(e.0.contains("is not sqlite:PATH, postgres://"), "{}", e.0);
    let c = Config::parse(
        "[data]\ndatabase = \"postgres://og:s3cret@db:5432/og\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.data.database_for_log(), "postgres://og:***@db:5432/og");
    let c = Config::parse("[data]\ndir = \"/srv/og\"\n", "t.toml").unwrap();
    assert_eq!(c.data.database_for_log(), "sqlite:/srv/og/omnigate.db");
}

#[test]
fn bad_value_names_line() {
    let e = Config::parse("[sip]\nudp = \"not-an-address\"\n", "t.toml").unwrap_err();
    assert!(e.0.starts_with("t.toml:2:7:"), "{}", e.0);
    assert!(e.0.contains("udp = \"not-an-address\""), "{}", e.0);
    let e = Config::parse(
        "[[trunk]]\nname = \"p\"\ninbound = [\"300.1.1.1/8\"]\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(
        e.0.starts_with("t.toml:3:11: \"300.1.1.1/8\" is not an address or CIDR block"),
        "{}",
        e.0
    );
    let e = Config::parse(
        "[sip]\nrealm = \"x\"\n\n[rtp]\nports = \"20000-10000\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(
        e.0.starts_with("t.toml:5:9: \"20000-10000\": need 1024 <= LOW < HIGH"),
        "{}",
        e.0
    );
    // Read once, typed: a transport, digest algorithms, a port range.
    let e = Config::parse("[[trunk]]\nname = \"p\"\ntransport = \"sctp\"\n", "t.toml").unwrap_err();
    assert!(
        e.0.starts_with("t.toml:3:13: \"sctp\" is not udp, tcp, tls or ws"),
        "{}",
        e.0
    );
    let e = Config::parse("[sip]\ndigest_algorithms = [\"SHA-1\"]\n", "t.toml").unwrap_err();
    assert!(e.0.starts_with("t.toml:2:"), "{}", e.0);
    assert!(e.0.contains("\"SHA-1\" is not MD5 or SHA-256"), "{}", e.0);
    let c = Config::parse(
        "[sip]\ndigest_algorithms = [\"sha-256\", \"MD5\"]\n[rtp]\nports = \"30000-30100\"\n[[trunk]]\nname = \"p\"\ntransport = \"TLS\"\ninbound = [\"10.0.0.0/8\"]\n",
        "t.toml",
    )
    .unwrap();
    use crate::sip::auth::Algorithm;
    assert_eq!(c.sip.digest_algorithms, [Algorithm::Sha256, Algorithm::Md5]);
    assert_eq!((c.rtp.ports.lo, c.rtp.ports.hi), (30000, 30100));
    assert_eq!(c.trunks[0].transport, crate::sip::Transport::Tls);
    assert_eq!(c.effective_trunks()[0].inbound_cidrs.len(), 1);
}

#[test]
fn webhook_events_default_to_all_and_unknown_ones_are_refused_with_their_line() {
    let hook = "[[webhook]]\nurl = \"http://crm/x\"\nsecret = \"0123456789abcdef\"\n";
    let c = Config::parse(hook, "t.toml").unwrap();
    assert_eq!(c.webhooks[0].events, WEBHOOK_EVENTS);
    let e = Config::parse(&format!("{hook}events = [\"chat.ended\"]\n"), "t.toml").unwrap_err();
    assert!(e.0.starts_with("t.toml:4:"), "{}", e.0);
    assert!(
        e.0.contains("\"chat.ended\" is not one of call.offered"),
        "{}",
        e.0
    );
}

#[test]
fn demo_only_without_file() {
    let c = Config::default();
    assert!(c.is_demo());
    assert!(c.effective_trunks().iter().any(|t| t.name == "demo"));
    let mut f = Config::parse("", "x").unwrap();
    f.demo = Some(false);
    assert!(f.effective_trunks().is_empty());
    assert!(f.effective_users().is_empty());
}

#[test]
fn dialplan_routes_pick_a_flow() {
    let text = "[dialplan]\ndefault_flow = \"main\"\n[[dialplan.route]]\nnumber = \"100\"\nflow = \"sales\"\n[[dialplan.route]]\nnumber = \"100\"\ntrunk = \"b\"\nflow = \"vip\"\n[[dialplan.route]]\ntrunk = \"b\"\nflow = \"support\"\n[[trunk]]\nname = \"b\"\ninbound = [\"10.0.0.0/8\"]\n";
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    let c = Config::load(&p).unwrap();
    let f = |n: &str, t: Option<&str>| c.dialplan.flow_for(n, t, false);
    assert_eq!(f("100", Some("b")).as_deref(), Some("vip"));
    assert_eq!(f("100", None).as_deref(), Some("sales"));
    assert_eq!(f("200", Some("b")).as_deref(), Some("support"));
    assert_eq!(f("200", None).as_deref(), Some("main"));
    let demo = Config::default();
    assert_eq!(
        demo.dialplan.flow_for("1", None, true).as_deref(),
        Some("demo")
    );
    assert_eq!(demo.dialplan.flow_for("1", None, false), None);
    let mut off = Config::default();
    off.dialplan.default_flow = Some(String::new());
    assert_eq!(off.dialplan.flow_for("1", None, true), None);
    // A route naming a trunk that does not exist is refused with its line.
    std::fs::write(&p, "[[dialplan.route]]\ntrunk = \"nope\"\nflow = \"x\"\n").unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(e.contains(":2:") && e.contains("no trunk named"), "{e}");
}

#[test]
fn canned_responses_are_checked_at_their_line_and_the_demo_has_some() {
    let q = "[[queue]]\nname = \"support\"\ncanned = [\n  { title = \"Hi\", text = \"Hello {first_name}\" },\n";
    let c = Config::parse(&format!("{q}]\n"), "t.toml").unwrap();
    assert_eq!(c.queues[0].canned[0].text, "Hello {first_name}");
    let e = Config::parse(
        &format!("{q}  {{ title = \"Bye\", text = \"Bye {{firstname}}\" }},\n]\n"),
        "t.toml",
    )
    .unwrap_err();
    assert!(e.0.starts_with("t.toml:5:"), "{}", e.0);
    assert!(
        e.0.contains("{firstname} is not a canned response variable"),
        "{}",
        e.0
    );
    let demo = Config::parse("", "t.toml").unwrap().effective_queues();
    let support = demo.iter().find(|q| q.name == "support").unwrap();
    assert!(support.canned.iter().any(|c| c.title == "Greeting"));
    for q in &demo {
        crate::canned::check_all(&q.canned).unwrap();
    }
}

#[test]
fn channel_accounts_are_checked_at_their_line() {
    let ok = "demo = true\n[[channel]]\nname = \"acme-wa\"\nkind = \"whatsapp\"\nqueue = \"support\"\napp_secret = \"0123456789abcdef\"\nverify_token = \"v\"\nphone_number_id = \"1234\"\napi_base = \"http://127.0.0.1:9\"\ntemplates = [{ name = \"order_update\", language = \"es\", parameters = 1 }]\n";
    let c = Config::parse(ok, "t.toml").unwrap();
    let names: Vec<_> = c.effective_channels().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["acme-wa", "demo-whatsapp", "demo-open"]);
    assert_eq!(c.channels[0].api_version, "v21.0");
    let bad = |from: &str, to: &str| {
        Config::parse(&ok.replace(from, to), "t.toml")
            .unwrap_err()
            .0
    };
    let e = bad("queue = \"support\"", "queue = \"nowhere\"");
    assert!(
        e.starts_with("t.toml:5:1: queue: channel \"acme-wa\": no queue named \"nowhere\""),
        "{e}"
    );
    // An open channel needs its secret; its callback is an http(s) URL.
    let open = "[[channel]]\nname = \"shop\"\nkind = \"open\"\nqueue = \"support\"\nsecret = \"0123456789abcdef\"\ncallback_url = \"http://127.0.0.1:9/cb\"\n";
    let c = Config::parse(open, "t.toml").unwrap();
    assert_eq!(c.channels[0].send_attempts, 5);
    let e = Config::parse(&open.replace("0123456789abcdef", "short"), "t.toml")
        .unwrap_err()
        .0;
    assert!(e.contains("at least 16 characters"), "{e}");
    let e = Config::parse(&open.replace("http://127.0.0.1:9/cb", "ftp://x"), "t.toml")
        .unwrap_err()
        .0;
    assert!(
        e.contains("callback_url") && e.contains("not an http(s) URL"),
        "{e}"
    );
    let e = Config::parse(&format!("{open}send_attempts = 0\n"), "t.toml")
        .unwrap_err()
        .0;
    assert!(e.contains("send_attempts") && e.contains("1 to 10"), "{e}");
    assert_eq!(c.channels[0].send_timeout_secs, 10);
    let e = Config::parse(&format!("{open}send_timeout_secs = 0\n"), "t.toml")
        .unwrap_err()
        .0;
    assert!(
        e.contains("send_timeout_secs") && e.contains("1 to 60"),
        "{e}"
    );
    // A Twilio account names what it needs.
    let e = bad("kind = \"whatsapp\"", "kind = \"twilio\"");
    assert!(e.contains("a Twilio account needs account_sid"), "{e}");
    // Its templates are Content API templates (a sid each); a WhatsApp account's
    // have their language.
    let twilio = "[[channel]]\nname = \"tw\"\nkind = \"twilio\"\nqueue = \"support\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"whatsapp:+15550001111\"\npublic_url = \"https://cc.example.com\"\n";
    let with = |t: &str| Config::parse(&format!("{twilio}templates = [{t}]\n"), "t.toml");
    let c = with("{ name = \"order\", content_sid = \"HXb5b62575e6e4ff6129ad7c8efe1f983e\", parameters = 1 }").unwrap();
    assert_eq!(c.channels[0].templates[0].content_sid.len(), 34);
    let e = with("{ name = \"order\", language = \"es\" }")
        .unwrap_err()
        .0;
    assert!(
        e.contains("template \"order\" needs its content_sid"),
        "{e}"
    );
    let e = with("{ name = \"order\", content_sid = \"HX12\" }")
        .unwrap_err()
        .0;
    assert!(e.contains("content_sid"), "{e}");
    let e = bad("language = \"es\", parameters = 1", "parameters = 1");
    assert!(e.contains("needs its language"), "{e}");
    let e = bad("kind = \"whatsapp\"", "kind = \"telegram\"");
    assert!(e.starts_with("t.toml:4:8"), "{e}");
    let e = bad("app_secret = \"0123456789abcdef\"", "app_secret = \"x\"");
    assert!(e.contains("t.toml:6:1") && e.contains("app_secret"), "{e}");
    let e = bad("name = \"acme-wa\"", "name = \"acme/../wa\"");
    assert!(
        e.contains("t.toml:3:1") && e.contains("letters, digits"),
        "{e}"
    );
    let e = bad(
        "api_base = \"http://127.0.0.1:9\"",
        "api_base = \"ftp://x\"",
    );
    assert!(
        e.contains("t.toml:9:1") && e.contains("not a base address"),
        "{e}"
    );
    let e = bad("phone_number_id = \"1234\"", "phone_number_id = \"12/34\"");
    assert!(e.contains("t.toml:8:1"), "{e}");
    // A survey asked at the end of a thread: checked where it is written, inline or
    // as a sub-table.
    let c = Config::parse(
        &format!("{ok}survey = {{ question = \"Rate us: reply 1 to 5\" }}\n"),
        "t.toml",
    )
    .unwrap();
    let s = c.channels[0].survey.as_ref().unwrap();
    assert_eq!((s.metric.as_str(), s.within_hours), ("csat", 24));
    let e = Config::parse(
        &format!("{ok}survey = {{ metric = \"nsp\", question = \"Rate us\" }}\n"),
        "t.toml",
    )
    .unwrap_err()
    .0;
    assert!(
        e.starts_with("t.toml:11:1: survey.metric") && e.contains("one of csat"),
        "{e}"
    );
    let e = Config::parse(
        &format!("{ok}[channel.survey]\nquestion = \"Rate us\"\nwithin_hours = 200\n"),
        "t.toml",
    )
    .unwrap_err()
    .0;
    assert!(
        e.starts_with("t.toml:13:1") && e.contains("1 to 168"),
        "{e}"
    );
    let twice = format!("{ok}{}", &ok["demo = true\n".len()..]);
    let e = Config::parse(&twice, "t.toml").unwrap_err().0;
    assert!(e.contains("defined twice"), "{e}");
}

#[test]
fn queue_hours_are_checked_at_their_line() {
    let good = "[[queue]]\nname = \"support\"\nhours = { timezone = \"America/Guayaquil\", open = { \"mon-fri\" = \"08:00-18:00\", sat = [\"09:00-13:00\"] }, holidays = [\"2026-12-25\"] }\n";
    let c = Config::parse(good, "t.toml").unwrap();
    let h = c.queues[0].hours.as_ref().unwrap().hours().unwrap();
    assert_eq!(h.week[0], [(480, 1080)]);
    assert_eq!(h.week[5], [(540, 780)]);
    assert!(h.week[6].is_empty());
    assert_eq!(h.holidays.len(), 1);
    for (bad, why) in [
        (
            "timezone = \"Mars/Olympus\", open = { daily = \"08:00-18:00\" }",
            "not a time zone",
        ),
        (
            "timezone = \"UTC\", open = { funday = \"08:00-18:00\" }",
            "not a day",
        ),
        (
            "timezone = \"UTC\", open = { daily = \"18:00-08:00\" }",
            "not a time range",
        ),
        (
            "timezone = \"UTC\", open = { daily = \"08:00-18:00\" }, holidays = [\"xmas\"]",
            "not a date",
        ),
        ("timezone = \"UTC\", open = {}", "at least one day"),
    ] {
        let e = Config::parse(
            &format!("[[queue]]\nname = \"support\"\nhours = {{ {bad} }}\n"),
            "t.toml",
        )
        .unwrap_err();
        assert!(e.0.starts_with("t.toml:3:"), "{}", e.0);
        assert!(e.0.contains(why), "{why}: {}", e.0);
    }
}

#[test]
fn a_supervisors_desk_phone_is_a_user_named_at_its_line() {
    let cfg = "[[user]]\nname = \"1002\"\npassword = \"secret-1002\"\n\n[[queue]]\nname = \"support\"\n\n[[supervisor]]\nname = \"sam\"\npassword = \"sam-secret\"\nqueues = [\"support\"]\nextension = \"1002\"\n";
    let c = Config::parse(cfg, "t.toml").unwrap();
    assert_eq!(c.supervisors[0].extension.as_deref(), Some("1002"));
    let e = Config::parse(
        &cfg.replace("extension = \"1002\"", "extension = \"1003\""),
        "t.toml",
    )
    .unwrap_err()
    .0;
    assert!(
        e.starts_with("t.toml:12:1: extension: supervisor \"sam\": no [[user]] named \"1003\""),
        "{e}"
    );
    // The demo's supervisor has the demo's second phone.
    let demo = Config::parse("demo = true\n", "t.toml").unwrap();
    let sue = demo.effective_supervisors();
    assert_eq!(sue[0].extension.as_deref(), Some("1002"));
}

#[test]
fn a_bad_retention_is_refused_at_its_line_with_the_reason() {
    let e = Config::parse(
        "[retention]\nrecordings = \"365d\"\nmessages = \"a week\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(e.0.starts_with("t.toml:3:"), "{}", e.0);
    assert!(
        e.0.contains("messages") && e.0.contains("\"a week\" is not a length of time"),
        "{}",
        e.0
    );
    let e = Config::parse("[retention]\nrun_at = \"25:00\"\n", "t.toml").unwrap_err();
    assert!(
        e.0.starts_with("t.toml:2:") && e.0.contains("HH:MM"),
        "{}",
        e.0
    );
    let c = Config::parse("[retention]\nrecordings = \"90d\"\n", "t.toml").unwrap();
    assert_eq!(
        c.retention.policy().recordings,
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
    assert_eq!(c.retention.run_at_min(), 180);
    assert!(Config::default().retention.policy().is_empty());
}

#[test]
fn a_kb_threshold_that_is_no_confidence_is_refused_at_its_line() {
    for bad in ["0", "1.5", "-0.2", "nan"] {
        let e = Config::parse(
            &format!("[kb]\ndir = \"kb\"\nthreshold = {bad}\n"),
            "t.toml",
        )
        .unwrap_err();
        assert!(e.0.starts_with("t.toml:3:"), "{bad}: {}", e.0);
        assert!(e.0.contains("not a confidence"), "{}", e.0);
    }
    let c = Config::parse("[kb]\nthreshold = 0.7\n", "t.toml").unwrap();
    assert!((c.kb.threshold - 0.7).abs() < 1e-6);
    assert_eq!(Config::default().kb.dir, std::path::PathBuf::from("kb"));
}

#[test]
fn the_bots_hand_off_words_and_misses_are_configured_and_checked_at_their_line() {
    let c = Config::parse(
        "[bot]\nhandoff_words = [\"asesor\", \"Mensch\"]\nmisses = 3\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.bot.handoff_words, ["asesor", "Mensch"]);
    assert_eq!(c.bot.misses, 3);
    assert_eq!(Config::default().bot, crate::bot::BotConfig::default());
    for (bad, line, says) in [
        ("misses = 0", "t.toml:3:", "0 is not 1 to 20"),
        ("misses = 99", "t.toml:3:", "99 is not 1 to 20"),
        (
            "handoff_words = [\"a person\"]",
            "t.toml:3:",
            "\"a person\" is not one word",
        ),
        (
            "handoff_words = [\"\"]",
            "t.toml:3:",
            "\"\" is not one word",
        ),
    ] {
        let e = Config::parse(&format!("[bot]\n\n{bad}\n"), "t.toml").unwrap_err();
        assert!(e.0.starts_with(line), "{bad}: {}", e.0);
        assert!(e.0.contains(says), "{bad}: {}", e.0);
    }
    let e = Config::parse("[bot]\nwords = []\n", "t.toml").unwrap_err();
    assert!(e.0.contains("unknown field `words`"), "{}", e.0);
}

#[test]
fn an_external_bot_needs_an_http_url_a_secret_and_a_token() {
    let ok = "[bot]\nurl = \"https://bot.example.com/omnigate\"\nsecret = \"0123456789abcdef\"\ntoken = \"fedcba9876543210\"\n";
    let c = Config::parse(ok, "t.toml").unwrap();
    assert_eq!(c.bot.url, "https://bot.example.com/omnigate");
    for (bad, line, says) in [
        (
            ok.replace("https://bot", "ftp://bot"),
            "t.toml:2:",
            "is not an http(s) URL",
        ),
        (
            ok.replace("0123456789abcdef", "short"),
            "t.toml:3:",
            "secret must be at least 16 bytes",
        ),
        (
            ok.replace("fedcba9876543210", ""),
            "t.toml:4:",
            "token must be at least 16 bytes",
        ),
    ] {
        let e = Config::parse(&bad, "t.toml").unwrap_err();
        assert!(e.0.starts_with(line), "{bad}: {}", e.0);
        assert!(e.0.contains(says), "{}", e.0);
    }
}
