//! Customers' data rights end to end (issue 20): Ada (demo customer 1) calls from her
//! number (SIPp, recorded, a voicemail), writes on WhatsApp (the fake Graph API) while
//! a CRM receives her record with the chat's screen-pop; the privacy API records a
//! consent, exports everything held of her as a tar archive the system's `tar` reads,
//! previews and confirms her erasure. Afterwards: no file under the data directory
//! (the SQLite database and its log, recordings, voicemail) and no line of the
//! gateway's log holds her number, address, name or what she wrote; the KPI figures
//! are the same; the CRM was told (signed `customer.erased`); the proof is there; her
//! number calling again is a new, empty customer.

use crate::channels::{json, next, on_duty, post_signed, text_from, wa_account};
use crate::harness::*;
use std::time::Duration;

const PHONE: &str = "15551234567";
const SECRET_TEXT: &str = "my parcel code is QX-7731";
const MAIL_ID: &str = "ada-order-QX@example.com";

/// A recording gateway on the demo defaults whose default flow is `flow` (kept in the
/// directory returned with it), with `tables` added to its configuration.
fn recording_gateway(base: u16, flow: &str, tables: &str) -> (Gateway, tempfile::TempDir) {
    let dp = crate::ivr::flow_dir();
    std::fs::write(dp.path().join("main.yaml"), flow).unwrap();
    let g = Gateway::start(
        base,
        "demo = true",
        "answer_after_ms = 50\nhangup_after_secs = 0\nrecord = true",
        &format!(
            "[dialplan]\ndir = \"{}\"\ndefault_flow = \"main\"\n\n{tables}",
            dp.path().display()
        ),
    );
    g.wait_log("dialplan loaded");
    (g, dp)
}

/// Every file under `dir`, as (path, bytes).
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

/// A chunked body (RFC 9112 section 7.1) as its bytes.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let line = String::from_utf8_lossy(&b[..eol]).to_string();
        let n = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// Erasure `id` once it has run (`token`'s view); it must have completed.
fn completed_erasure(g: &Gateway, token: &str, id: i64) -> serde_json::Value {
    let mut done = serde_json::Value::Null;
    wait_for("the erasure to complete", Duration::from_secs(60), || {
        let (_, body) = g.get_auth(&format!("/api/privacy/erasures/{id}"), token);
        done = json(&body);
        done["status"] == "completed" || done["status"] == "failed"
    });
    assert_eq!(done["status"], "completed", "{done}\n{}", g.log());
    done
}

/// `GET path` with `token` over HTTP/1.0 (a streamed body runs until the connection
/// closes): the head, lower-cased, and the body, de-chunked.
fn streamed(g: &Gateway, path: &str, token: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", g.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("GET {path} HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut got).unwrap();
    let at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&got[..at]).to_lowercase();
    let mut body = got[at + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (head, body)
}

#[test]
fn a_customer_is_exported_then_erased_everywhere_with_proof() {
    let base = 22050;
    let _graph = serve(base + 30, |n, _, _, _| {
        (
            "200 OK".into(),
            format!(
                r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"{PHONE}","wa_id":"{PHONE}"}}],"messages":[{{"id":"wamid.OUT{n}"}}]}}"#
            ),
        )
    });
    let hooks = serve(base + 35, |_, _, _, _| ("200 OK".into(), String::new()));
    let crm_secret = "crm-secret-for-privacy";
    // Her mail comes through a real Dovecot; what is imported is moved to Done.
    let dv = crate::mail::Dovecot::start(base + 45, base + 46);
    let mailbox = crate::mail::mailbox(base + 45, base + 47)
        .replace("after_import = \"seen\"", "after_import = \"move:Done\"");
    // Personal data redacted in the log, as in production.
    let (g, _flows) = recording_gateway(
        base,
        "flow: main\nsteps:\n  who:\n    lookup: { by: caller }\n    found: vm\n    not_found: vm\n  vm:\n    voicemail: { prompt: hello, max_length: 3s }\n  bye:\n    hangup:\n",
        &format!(
            "[log]\nlevel = \"info\"\npersonal_data = false\n\n{}\n[[webhook]]\nurl = \"http://127.0.0.1:{}/crm\"\nsecret = \"{crm_secret}\"\nevents = [\"chat.offered\"]\n\n[[supervisor]]\nname = \"dora\"\npassword = \"dora-secret\"\nprivacy_officer = true\n{mailbox}",
            // Her thread's end asks her how it went.
            wa_account(base + 30) + "survey = { question = \"How did we do? Reply 1 (poor) to 5 (great).\" }\n",
            base + 35
        ),
    );
    let admin = "test-token";

    // Only the admin and privacy officers; Sue (a supervisor) is refused.
    let login = |name: &str, pw: &str| {
        let (code, body) = g.post(
            "/api/supervisor/login",
            None,
            &serde_json::json!({"name": name, "password": pw}).to_string(),
        );
        assert_eq!(code, 200, "{body}");
        json(&body)["token"].as_str().unwrap().to_string()
    };
    let dora = login("dora", "dora-secret");
    let sue = login("sue", "demo-sue");
    let (code, body) = g.get_auth("/api/privacy/customers/1/consents", &sue);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("privacy officers"), "{body}");
    let (code, _) = g.get_auth("/api/privacy/customers/1/consents", "wrong");
    assert_eq!(code, 401);

    // Ada calls: recorded, she leaves a voicemail.
    let args = speaker_args_from(&g, base + 40, base + 20, &format!("+{PHONE}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sipp(g.dir.path(), &args);
    assert_sipp_ok(&out, "Ada leaving a voicemail", &g);
    g.wait_log("voicemail saved");
    wait_for("the call on record", Duration::from_secs(10), || {
        let (_, body) = g.get_auth("/api/interactions?limit=1", admin);
        !json(&body)[0]["ended_at"].is_null()
    });
    // Ada writes on WhatsApp: offered to Bob, her record goes to the CRM; Bob takes
    // the thread and ends it.
    let (bob, mut ws) = on_duty(&g, "bob", "demo-bob");
    let now = omnigate::clock::unix_secs();
    let (code, body) = post_signed(
        &g,
        "wa",
        &text_from(PHONE, "wamid.IN1", now, SECRET_TEXT),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["customer"], 1, "{offer}");
    let thread = offer["interaction"].as_str().unwrap().to_string();
    wait_for("the CRM's screen-pop", Duration::from_secs(10), || {
        !hooks.lock().unwrap().is_empty()
    });
    let (code, body) = g.post(
        &format!("/api/agent/offers/{thread}/accept"),
        Some(&bob),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.post(&format!("/api/agent/work/{thread}/end"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    wait_for(
        "her thread ended and asked",
        Duration::from_secs(10),
        || {
            let (_, body) = g.get_auth(&format!("/api/interactions/{thread}"), admin);
            !json(&body)["ended_at"].is_null() && body.contains("survey asked")
        },
    );
    // She answers with a score and a comment: the thread's survey answer.
    let (code, body) = post_signed(
        &g,
        "wa",
        &text_from(PHONE, "wamid.IN2", now, "5 - great, QX-7731 arrived"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_for("her survey answer", Duration::from_secs(10), || {
        let (_, body) = g.get_auth(&format!("/api/interactions/{thread}"), admin);
        json(&body)["survey"]["score"] == 5
    });
    // She e-mails support: a case Bob takes and ends; the mail is moved to Done.
    // (With an attachment.)
    let mail = format!(
        "From: Ada Lovelace <ada@example.com>\nTo: support@acme.test\nSubject: My order\nMessage-ID: <{MAIL_ID}>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nAbout {SECRET_TEXT}.\n--b1\nContent-Type: text/plain; name=\"order.txt\"\nContent-Disposition: attachment; filename=\"order.txt\"\n\nOrder of Ada Lovelace, QX-7731.\n--b1--\n"
    );
    dv.deliver("support", &mail);
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["customer"], 1, "{offer}");
    let case_mail = offer["interaction"].as_str().unwrap().to_string();
    for step in ["offers/{}/accept", "work/{}/end"] {
        let path = format!("/api/agent/{}", step.replace("{}", &case_mail));
        let (code, body) = g.post(&path, Some(&bob), "");
        assert_eq!(code, 200, "{path}: {body}");
    }
    wait_for("her mail moved to Done", Duration::from_secs(30), || {
        crate::mail::folder(&dv, "support", ".Done") == 1
            && crate::mail::folder(&dv, "support", "") == 0
    });
    // The KPIs of her call and thread are compared before and after the erasure
    // (the web chat below, live until the erasure ends it, comes after).
    let end = omnigate::clock::unix_millis() as i64;
    let instant = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    let (from, to) = (instant(end - 3_600_000), instant(end));
    // She opens a web chat with her name and address (unverified) and is still in it.
    let (_page, chat, _, _) =
        crate::centre::chat_with_first_message(&g, "Ada Lovelace", "ada@example.com");
    // Offered to Bob, who takes it: its screen-pop reaches the CRM with what she
    // typed and no customer record, so only its interaction ties it to her.
    let offer = next(&g, &mut ws, "offer");
    assert_eq!(offer["interaction"], chat.as_str(), "{offer}");
    let (code, body) = g.post(&format!("/api/agent/offers/{chat}/accept"), Some(&bob), "");
    assert_eq!(code, 200, "{body}");
    wait_for("the web chat's screen-pop", Duration::from_secs(10), || {
        signed_posts(&hooks, crm_secret)
            .iter()
            .any(|(_, b)| b["interaction"] == chat.as_str() && b["customer"].is_null())
    });

    // A consent, with its evidence; a bad one is refused with its reason.
    let (code, body) = g.post(
        "/api/privacy/customers/1/consents",
        Some(&dora),
        r#"{"purpose": "marketing", "channel": "whatsapp", "granted": false, "source": "agent", "evidence": {"note": "asked on the phone"}}"#,
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = g.post(
        "/api/privacy/customers/1/consents",
        Some(&dora),
        r#"{"purpose": "spam", "granted": true}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("purpose \"spam\""),
        "{body}"
    );
    let (code, body) = g.get_auth("/api/privacy/customers/1/consents", &dora);
    assert_eq!(code, 200, "{body}");
    let c = json(&body);
    assert_eq!(c["current"]["marketing:whatsapp"]["granted"], false, "{c}");
    assert_eq!(c["events"][0]["actor"], "dora", "{c}");

    // Her requests, received by letter, are tracked with their deadline.
    let request = |body: &str| g.post("/api/privacy/requests", Some(&dora), body);
    let (code, body) = request(r#"{"customer": 1, "kind": "refund"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("kind \"refund\" is not one of"),
        "{body}"
    );
    let mut asked = Vec::new();
    for kind in ["access", "erasure", "rectification"] {
        let (code, body) = request(&format!(
            r#"{{"customer": 1, "kind": "{kind}", "note": "letter from Ada Lovelace"}}"#
        ));
        assert_eq!(code, 201, "{body}");
        let r = json(&body);
        assert_eq!(
            (r["state"].as_str(), r["days_left"].as_i64()),
            (Some("open"), Some(15)),
            "{r}"
        );
        asked.push(r["id"].as_i64().unwrap());
    }
    let answer = |id: i64| {
        g.post(
            &format!("/api/privacy/requests/{id}/answer"),
            Some(&dora),
            r#"{"answer": "corrected her address"}"#,
        )
    };
    assert_eq!(answer(asked[2]).0, 200);
    assert_eq!(answer(asked[2]).0, 409, "once");
    assert_eq!(answer(999_999).0, 404);
    let (_, body) = g.get_auth("/api/privacy/requests?open=true", &dora);
    assert_eq!(json(&body).as_array().unwrap().len(), 2, "{body}");

    // The export: everything held, as an archive `tar` reads.
    let (code, _) = g.get_auth("/api/privacy/customers/1/export?format=zip", &dora);
    assert_eq!(code, 400);
    // (HTTP/1.0: the archive is streamed until the connection closes.)
    let (head, body) = streamed(&g, "/api/privacy/customers/1/export", "test-token");
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert!(head.contains("content-type: application/x-tar"), "{head}");
    std::fs::write(g.dir.path().join("export.tar"), &body).unwrap();
    let x = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-xf")
        .arg(g.dir.path().join("export.tar"))
        .arg("-C")
        .arg(x.path())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "tar: {}\n{head}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let doc = json(&std::fs::read_to_string(x.path().join("export.json")).unwrap());
    assert_eq!(doc["customer"]["name"], "Ada Lovelace", "{doc}");
    assert_eq!(doc["identities"].as_array().unwrap().len(), 2, "{doc}");
    // Where her record came from: the demo data here.
    let prov = &doc["provenance"];
    assert_eq!(prov["identities"][0]["source"], "demo", "{prov}");
    assert_eq!(prov["fields"]["name"]["source"], "demo", "{prov}");
    assert_eq!(doc["consents"].as_array().unwrap().len(), 1, "{doc}");
    let kinds: Vec<&str> = doc["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"voice") && kinds.contains(&"whatsapp") && kinds.contains(&"email"),
        "{kinds:?}"
    );
    assert_eq!(doc["mails"].as_array().unwrap().len(), 1, "{doc}");
    let eml =
        std::fs::read_to_string(x.path().join(doc["mails"][0]["file"].as_str().unwrap())).unwrap();
    assert!(
        eml.contains(MAIL_ID) && eml.contains(SECRET_TEXT) && eml.contains("order.txt"),
        "{eml}"
    );
    assert!(
        doc.to_string().contains(SECRET_TEXT),
        "her message is in the export"
    );
    let rated: Vec<&serde_json::Value> = doc["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["survey_answer"].is_null())
        .collect();
    assert_eq!(rated.len(), 1, "{doc}");
    assert_eq!(
        rated[0]["survey_answer"]["comment"], "great, QX-7731 arrived",
        "{doc}"
    );
    assert_eq!(
        doc["webhook_recipients"].as_array().unwrap().len(),
        1,
        "{doc}"
    );
    let (recs, vms) = (
        doc["recordings"].as_array().unwrap(),
        doc["voicemails"].as_array().unwrap(),
    );
    assert_eq!((recs.len(), vms.len()), (1, 1), "{doc}");
    for f in recs.iter().chain(vms) {
        let wav = x.path().join(f.as_str().unwrap());
        assert!(
            hound::WavReader::open(&wav).unwrap().duration() > 0,
            "{}",
            wav.display()
        );
    }
    let due = doc["request"]["due_at"].as_i64().unwrap() - doc["request"]["at"].as_i64().unwrap();
    assert_eq!(due, 15 * 86_400_000);
    // The export answered her access request; the erasure request stays open.
    let (_, body) = g.get_auth("/api/privacy/requests?open=true", &dora);
    let open = json(&body);
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["kind"], "erasure", "{open}");

    // The KPIs before.
    let kpis = || {
        let (code, body) = g.get_auth(&format!("/api/kpis?from={from}&to={to}"), admin);
        assert_eq!(code, 200, "{body}");
        json(&body)
    };
    let before = kpis();

    // The erasure: preview, confirm, completed with its proof.
    let (code, body) = g.post(
        "/api/privacy/erasures",
        Some(&dora),
        r#"{"customer": 1, "why": "x"}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = g.post("/api/privacy/erasures", Some(&dora), r#"{"customer": 1}"#);
    assert_eq!(code, 201, "{body}");
    let e = json(&body);
    assert_eq!(e["status"], "previewed", "{e}");
    let p = &e["preview"];
    assert_eq!(
        (
            p["identities"].as_u64(),
            p["recordings"].as_u64(),
            p["voicemails"].as_u64(),
            p["webhook_recipients"].as_u64(),
            p["consents"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(1)),
        "{e}"
    );
    assert!(p["messages"].as_u64().unwrap() >= 1, "{e}");
    assert_eq!(
        (&p["mails"], &p["attachments"]),
        (&1.into(), &1.into()),
        "{e}"
    );
    assert_eq!(p["survey_answers"], 1, "{e}");
    let id = e["id"].as_i64().unwrap();
    let (code, body) = g.post(
        &format!("/api/privacy/erasures/{id}/confirm"),
        Some(&dora),
        "",
    );
    assert_eq!(code, 202, "{body}");
    let done = completed_erasure(&g, &dora, id);
    assert_eq!(done["executed_by"], "dora", "{done}");
    assert_eq!(done["proof"]["files_deleted"], 2, "{done}");
    assert_eq!(done["proof"]["live_chats_ended"], 1, "the web chat: {done}");
    let (code, _) = g.post(
        &format!("/api/privacy/erasures/{id}/confirm"),
        Some(&dora),
        "",
    );
    assert_eq!(code, 409, "once");
    // The CRM is told, signed.
    wait_for(
        "customer.erased at the CRM",
        Duration::from_secs(10),
        || {
            signed_posts(&hooks, crm_secret)
                .iter()
                .any(|(ev, b)| ev == "customer.erased" && b["customer"] == 1 && b["erasure"] == id)
        },
    );
    // Told which of its screen-pops were hers: the WhatsApp thread's and the
    // unverified web chat's.
    let told = signed_posts(&hooks, crm_secret)
        .into_iter()
        .find(|(ev, _)| ev == "customer.erased")
        .unwrap()
        .1;
    let pops: Vec<&str> = told["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.as_str())
        .collect();
    assert!(
        pops.contains(&thread.as_str()) && pops.contains(&chat.as_str()),
        "{told}"
    );
    // Her erasure request is answered by the erasure; the requests' words are gone,
    // the requests stay as the proof.
    let (_, body) = g.get_auth("/api/privacy/requests", &dora);
    let all = json(&body);
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    for r in all.as_array().unwrap() {
        assert_eq!(r["state"], "answered", "{r}");
        assert_eq!(r["note"], "", "{r}");
    }
    assert!(body.contains(&format!("erasure {id}")), "{body}");
    // Her mail is deleted from the mail server too (from Done, where it was moved),
    // and the erasure says when none is left; nothing of hers in the server's files.
    wait_for(
        "her mail deleted on the server",
        Duration::from_secs(30),
        || {
            let (_, body) = g.get_auth(&format!("/api/privacy/erasures/{id}"), &dora);
            json(&body)["mail_server_pending"] == 0
        },
    );
    assert_eq!(crate::mail::folder(&dv, "support", ".Done"), 0);
    assert_eq!(crate::mail::folder(&dv, "support", ""), 0);
    // The same mail sent again is not imported again (it is moved to Done untouched).
    dv.deliver("support", &mail);
    wait_for("the re-sent mail settled", Duration::from_secs(30), || {
        crate::mail::folder(&dv, "support", ".Done") == 1
    });
    let (_, body) = g.get_auth("/api/mailboxes", admin);
    assert_eq!(json(&body)[0]["status"]["imported"], 1, "{body}");
    // Her live web chat was ended.
    wait_for("her web chat ended", Duration::from_secs(10), || {
        let (_, body) = g.get_auth(&format!("/api/interactions/{chat}"), admin);
        !json(&body)["ended_at"].is_null()
    });
    // A message she sent before the erasure, delivered late by Meta: taken (200) but
    // not stored; nothing of it comes back.
    let (_, before_late) = g.get_auth("/api/interactions?limit=50", admin);
    let late = text_from(PHONE, "wamid.LATE", now - 30, "late QX-7731 again");
    let (code, body) = post_signed(&g, "wa", &late, None);
    assert_eq!(code, 200, "{body}");
    let (_, after_late) = g.get_auth("/api/interactions?limit=50", admin);
    assert_eq!(
        json(&after_late).as_array().unwrap().len(),
        json(&before_late).as_array().unwrap().len()
    );
    // Nothing of hers in any file of the data directory or line of the log.
    let needles = ["5551234567", "ada@example.com", "Ada Lovelace", "QX-7731"];
    for (path, bytes) in files_under(&g.path("data")) {
        let text = String::from_utf8_lossy(&bytes);
        for n in needles {
            assert!(!text.contains(n), "{n:?} is still in {}", path.display());
        }
    }
    let log = g.log();
    for n in needles {
        assert!(
            !log.contains(n),
            "{n:?} is in the log:\n{}",
            log.lines()
                .filter(|l| l.contains(n))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The KPIs did not move; the audit log has the acts.
    assert_eq!(kpis(), before);
    let (_, body) = g.get_auth("/api/audit", admin);
    for act in [
        "consent.changed",
        "customer.exported",
        "erasure.requested",
        "erasure.confirmed",
        "erasure.completed",
        "request.recorded",
        "request.answered",
    ] {
        assert!(body.contains(act), "{act} not audited: {body}");
    }
    // She is gone from the API; her number calling again is a new, empty customer.
    let (code, _) = g.get_auth("/api/privacy/customers/1/export", &dora);
    assert_eq!(code, 404);
    let args = speaker_args_from(&g, base + 41, base + 24, &format!("+{PHONE}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_sipp_ok(&sipp(g.dir.path(), &args), "the same number again", &g);
    let (_, body) = g.get_auth("/api/interactions?limit=1", admin);
    let again = json(&body)[0]["customer_id"].as_i64().unwrap();
    assert_ne!(again, 1);
    let (_, card) = g.get_auth(&format!("/api/customers/{again}"), admin);
    assert!(!card.contains("Ada"), "{card}");
}

/// A call to the recording notice from SIPp (her number, +15557654321), pressing `key` by SIP INFO.
fn notice_call(g: &Gateway, port: u16, media: u16, key: &str) {
    let keys = [("from", "+15557654321"), ("digit", key)];
    let args = uac_args(g, "uac_info_key_from.xml", port, media, &keys);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_sipp_ok(
        &sipp(g.dir.path(), &args),
        "a call to the recording notice",
        g,
    );
}

#[test]
fn the_recording_notices_key_stops_the_recording_and_her_later_calls_are_not_recorded() {
    let base = 23650;
    let (g, _flows) = recording_gateway(
        base,
        "flow: main\nsteps:\n  notice:\n    recording_notice: { prompt: { silence: 1s }, version: '2026-12', timeout: 3s }\n  rest:\n    pause: 20s\n",
        "",
    );
    let admin = "test-token";
    let last = || {
        wait_for("the call on record", Duration::from_secs(10), || {
            let (_, body) = g.get_auth("/api/interactions?limit=1", admin);
            !json(&body)[0]["ended_at"].is_null()
        });
        let (_, body) = g.get_auth("/api/interactions?limit=1", admin);
        json(&body)[0].clone()
    };

    // She presses 9 during the notice, 1.5 s in: recording stops, her choice is kept.
    notice_call(&g, base + 10, base + 20, "9");
    let first = last();
    let customer = first["customer_id"]
        .as_i64()
        .expect("her number is a customer");
    let (code, body) = g.get_auth(
        &format!("/api/privacy/customers/{customer}/consents"),
        admin,
    );
    assert_eq!(code, 200, "{body}");
    let c = json(&body);
    assert_eq!(c["current"]["recording:voice"]["granted"], false, "{body}");
    let e = &c["events"][0];
    assert_eq!(
        [&e["purpose"], &e["source"], &e["actor"]].map(|v| v.as_str().unwrap_or("")),
        ["recording", "ivr", "customer"],
        "{body}"
    );
    assert_eq!(e["evidence"]["notice_version"], "2026-12");
    assert_eq!(e["evidence"]["interaction"], first["id"]);
    let offset = e["evidence"]["recording_offset_ms"].as_i64().unwrap();
    assert!((1000..4000).contains(&offset), "{offset}");
    // The recording holds the notice and her key, not the rest of the call (4.5 s).
    g.wait_log("recording saved");
    let path = first["recording"]
        .as_str()
        .expect("recorded until she pressed");
    let wav = hound::WavReader::open(g.dir.path().join(path)).unwrap();
    let secs = wav.duration() as f64 / wav.spec().sample_rate as f64;
    assert!(secs * 1000.0 <= offset as f64 + 500.0, "{secs} s recorded");

    // Her next call is not recorded at all, whatever key she presses.
    notice_call(&g, base + 11, base + 24, "1");
    let second = last();
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["customer_id"].as_i64(), Some(customer));
    assert!(
        second["recording"].as_str().unwrap_or("").is_empty(),
        "{second}"
    );
    g.wait_log("withdrew their recording consent");
}

/// The files in `data/<dir>` of the gateway.
fn data_files(g: &Gateway, dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(g.path("data").join(dir))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn retention_deletes_what_expired_but_not_a_held_case_and_a_held_customer_is_not_erased() {
    let base = 26050;
    // Everything expires at once (1 ms): only the legal hold keeps Ada's call.
    let (g, _flows) = recording_gateway(
        base,
        "flow: main\nsteps:\n  vm:\n    voicemail: { prompt: hello, max_length: 2s }\n",
        "[retention]\nrecordings = \"1ms\"\nvoicemail = \"1ms\"\nmessages = \"1ms\"\nraw_mail = \"1ms\"\n",
    );
    let admin = "test-token";
    let mut calls = Vec::new();
    for (n, from) in ["+15551234567", "+15557654321"].iter().enumerate() {
        let n = n as u16;
        let args = speaker_args_from(&g, base + 10 + n, base + 20 + 4 * n, from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_sipp_ok(&sipp(g.dir.path(), &args), "a voicemail", &g);
        let mut row = serde_json::Value::Null;
        wait_for("the call on record", Duration::from_secs(10), || {
            let (_, body) = g.get_auth("/api/interactions?limit=1", admin);
            row = json(&body)[0].clone();
            !row["ended_at"].is_null()
                && row["caller"]
                    .as_str()
                    .is_some_and(|c| c.contains(&from[2..]))
        });
        calls.push(row);
    }
    let (ada, alan) = (&calls[0], &calls[1]);
    let ada_case = ada["conversation_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{ada}"));
    let ada_rec = std::path::PathBuf::from(ada["recording"].as_str().unwrap());
    assert_eq!(data_files(&g, "recordings").len(), 2);
    assert_eq!(data_files(&g, "voicemail").len(), 2);
    // Her recording can be heard by the admin (the WAV as on disk), and every read is
    // audited; Sue (her queues only) may not: the call was in none.
    let rec_of = |row: &serde_json::Value| {
        format!(
            "/api/interactions/{}/recording",
            row["id"].as_str().unwrap()
        )
    };
    let (head, wav) = streamed(&g, &rec_of(ada), admin);
    assert!(
        head.contains(" 200 ") && head.contains("content-type: audio/wav"),
        "{head}"
    );
    assert_eq!(wav, std::fs::read(&ada_rec).unwrap(), "the file as on disk");
    let sue = {
        let (code, body) = g.post(
            "/api/supervisor/login",
            None,
            r#"{"name": "sue", "password": "demo-sue"}"#,
        );
        assert_eq!(code, 200, "{body}");
        json(&body)["token"].as_str().unwrap().to_string()
    };
    let (code, body) = g.get_auth(&rec_of(ada), &sue);
    assert_eq!(code, 403, "{body}");
    let (code, _) = g.get_auth("/api/interactions/nope/recording", admin);
    assert_eq!(code, 404);

    // A legal hold on Ada's case (a bad id, an unknown case refused).
    let hold = |method: &str, case: &str| {
        crate::centre::raw(
            &g,
            method,
            &format!("/api/privacy/cases/{case}/hold"),
            admin,
            "",
        )
    };
    assert_eq!(hold("PUT", "x").0, 400);
    assert_eq!(hold("PUT", "999999").0, 404);
    let (code, body) = hold("PUT", &ada_case.to_string());
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["held"], true, "{body}");

    // Retention now: Alan's recording and voicemail go, Ada's stay.
    let (code, body) = g.post("/api/privacy/retention/run", Some(admin), "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(data_files(&g, "recordings"), std::slice::from_ref(&ada_rec));
    assert_eq!(data_files(&g, "voicemail").len(), 1);
    let (_, body) = g.get_auth(
        &format!("/api/interactions/{}", alan["id"].as_str().unwrap()),
        admin,
    );
    assert!(json(&body)["recording"].is_null(), "{body}");
    let (code, body) = g.get_auth(&rec_of(alan), admin);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("deleted by retention"), "{body}");

    // Her erasure is refused while the hold is on, with the reason.
    let (code, body) = g.post(
        "/api/privacy/erasures",
        Some(admin),
        &format!("{{\"customer\": {}}}", ada["customer_id"]),
    );
    assert_eq!(code, 201, "{body}");
    let id = json(&body)["id"].as_i64().unwrap();
    let (code, body) = g.post(
        &format!("/api/privacy/erasures/{id}/confirm"),
        Some(admin),
        "",
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("legal hold"), "{body}");

    // Lifted: the next run takes hers too.
    let (code, body) = hold("DELETE", &ada_case.to_string());
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["held"], false, "{body}");
    let (code, body) = g.post("/api/privacy/retention/run", Some(admin), "");
    assert_eq!(code, 200, "{body}");
    assert!(data_files(&g, "recordings").is_empty(), "{body}");
    assert!(data_files(&g, "voicemail").is_empty(), "{body}");
    let (_, body) = g.get_auth("/api/audit", admin);
    for act in [
        "hold.placed",
        "hold.lifted",
        "retention.applied",
        "recording.read",
    ] {
        assert!(body.contains(act), "{act} not audited: {body}");
    }
}

#[test]
fn an_erasure_ends_the_customers_live_call_first() {
    let base = 26170;
    // Ada waits in a queue nobody is on, recorded.
    let (g, _flows) = recording_gateway(
        base,
        "flow: main\nsteps:\n  q:\n    enqueue:\n      queue: support\n",
        "",
    );
    let admin = "test-token";
    let args = speaker_args_from(&g, base + 10, base + 20, "+15551234567");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let caller = sipp_spawn(g.dir.path(), &args);
    let mut call = serde_json::Value::Null;
    wait_for("her call queued", Duration::from_secs(10), || {
        let (_, body) = g.get_auth("/api/interactions?limit=1", admin);
        call = json(&body)[0].clone();
        call["queue"] == "support"
    });
    assert!(call["ended_at"].is_null(), "{call}");
    let (code, body) = g.post("/api/privacy/erasures", Some(admin), r#"{"customer": 1}"#);
    assert_eq!(code, 201, "{body}");
    let id = json(&body)["id"].as_i64().unwrap();
    let (code, body) = g.post(
        &format!("/api/privacy/erasures/{id}/confirm"),
        Some(admin),
        "",
    );
    assert_eq!(code, 202, "{body}");
    // Her phone gets a BYE (SIPp answers it and ends well), then the erasure runs.
    let out = caller.wait_with_output().unwrap();
    assert_sipp_ok(&out, "the call ended by the erasure", &g);
    let done = completed_erasure(&g, admin, id);
    assert_eq!(done["proof"]["live_calls_ended"], 1, "{done}");
    assert_eq!(done["proof"]["files_deleted"], 1, "the recording: {done}");
    assert!(data_files(&g, "recordings").is_empty());
    let (_, body) = g.get_auth(
        &format!("/api/interactions/{}", call["id"].as_str().unwrap()),
        admin,
    );
    let row = json(&body);
    assert!(!row["ended_at"].is_null() && row["caller"] == "", "{row}");
}

#[test]
fn a_call_placed_to_a_customer_who_withdrew_recording_consent_is_not_recorded() {
    let base = 26360;
    let far = base + 10;
    // The far end answers each call, talks 2 s and hangs up.
    let dir = tempfile::tempdir().unwrap();
    let callee = sipp_spawn(
        dir.path(),
        &[
            "-sf",
            &scenario("uas_answer_then_bye.xml"),
            "-p",
            &far.to_string(),
            "-m",
            "2",
        ],
    );
    let g = Gateway::start(
        base,
        "demo = true",
        "answer_after_ms = 0\nhangup_after_secs = 0\nrecord = false",
        &format!("[[trunk]]\nname = \"far\"\nproxy = \"127.0.0.1:{far}\"\n"),
    );
    let admin = "test-token";
    // Alan (demo customer 2) withdraws his recording consent for voice.
    let (code, body) = g.post(
        "/api/privacy/customers/2/consents",
        Some(admin),
        r#"{"purpose": "recording", "channel": "voice", "granted": false, "source": "api"}"#,
    );
    assert_eq!(code, 201, "{body}");
    // Asked to record him: refused by his consent, said in the answer.
    let place = |to: &str| {
        let (code, body) = g.post(
            "/api/calls",
            Some(admin),
            &format!(r#"{{"to": "{to}", "trunk": "far", "record": true}}"#),
        );
        assert_eq!(code, 202, "{body}");
        json(&body)
    };
    let r = place("+15557654321");
    assert_eq!(
        r["not_recorded"], "the callee withdrew their recording consent",
        "{r}"
    );
    g.wait_log("reason=RemoteBye");
    assert!(data_files(&g, "recordings").is_empty());
    // Ada did not: her call is recorded as asked.
    let r = place("+15551234567");
    assert!(r.get("not_recorded").is_none(), "{r}");
    assert_sipp_ok(&callee.wait_with_output().unwrap(), "the far end", &g);
    wait_for("her recording", Duration::from_secs(10), || {
        data_files(&g, "recordings").len() == 1
    });
}
