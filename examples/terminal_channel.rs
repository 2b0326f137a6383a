//! A reference connector for omnigate's open channel API: a terminal chat client.
//! Each line you type is a customer's message on an open channel account; agents'
//! replies print as they arrive, and each is reported `delivered` back to omnigate.
//!
//! ```text
//! cargo run --example terminal_channel -- \
//!     --gateway http://127.0.0.1:8080 --account demo-open --secret demo-open-secret \
//!     --listen 127.0.0.1:9009 --phone +593991234567 --name Ada
//! ```
//!
//! and set the account's `callback_url = "http://127.0.0.1:9009/omnigate"`. Everything
//! a connector does is here, in three steps:
//!
//! 1. **Sign** each request: `X-Omnigate-Timestamp: <Unix seconds>` and
//!    `X-Omnigate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! 2. **Post events** to `/api/channels/{account}/events`: a `message` with your
//!    thread id, who wrote it and the text, each event with an id of yours (post it
//!    again after a failure: it counts once); the answer has a result per event.
//! 3. **Take callbacks**: check the same signature and a timestamp within five
//!    minutes, answer 2xx (a 5xx or no answer is retried; a 4xx with `{"error": ...}`
//!    fails the message with your reason), then report `delivered` (and `read`) as
//!    `status` events naming the callback's `delivery`.
//!
//! What it prints on stdout, one line each: `ready <callback URL>`, `posted <event
//! id> <result JSON>`, `reply <delivery> <agent>: <text>`, `reported <delivery>
//! delivered <result JSON>`. Run with no arguments it checks its signing against the
//! known answer and shows this usage.

use omnigate::channels::signature::{check_open, hex, hmac_sha256};
use std::io::BufRead;
use std::sync::Arc;

struct Args {
    gateway: String,
    account: String,
    secret: String,
    listen: String,
    phone: Option<String>,
    email: Option<String>,
    user: Option<String>,
    name: Option<String>,
    thread: Option<String>,
}

const USAGE: &str = "usage: terminal_channel --gateway URL --account NAME --secret SECRET \
--listen HOST:PORT [--phone E164 | --email ADDRESS | --user ID] [--name NAME] [--thread ID]";

fn args() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        gateway: String::new(),
        account: String::new(),
        secret: String::new(),
        listen: String::new(),
        phone: None,
        email: None,
        user: None,
        name: None,
        thread: None,
    };
    while let Some(k) = it.next() {
        let v = it.next()?;
        match k.as_str() {
            "--gateway" => a.gateway = v.trim_end_matches('/').to_string(),
            "--account" => a.account = v,
            "--secret" => a.secret = v,
            "--listen" => a.listen = v,
            "--phone" => a.phone = Some(v),
            "--email" => a.email = Some(v),
            "--user" => a.user = Some(v),
            "--name" => a.name = Some(v),
            "--thread" => a.thread = Some(v),
            _ => return None,
        }
    }
    let given = [&a.gateway, &a.account, &a.secret, &a.listen];
    given.iter().all(|v| !v.is_empty()).then_some(a)
}

/// The signature of `body` sent at `ts`, as the open channel API defines it.
fn sign(secret: &str, ts: u64, body: &[u8]) -> String {
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(body);
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &msg)))
}

fn now() -> u64 {
    omnigate::clock::unix_secs()
}

/// Posts a batch of events, signed; (status, body).
async fn post(a: &Args, events: serde_json::Value) -> Result<(u16, String), String> {
    let body = serde_json::json!({ "events": events }).to_string();
    let ts = now();
    let mut r = awc::Client::new()
        .post(format!("{}/api/channels/{}/events", a.gateway, a.account))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Omnigate-Timestamp", ts.to_string()))
        .insert_header(("X-Omnigate-Signature", sign(&a.secret, ts, body.as_bytes())))
        .send_body(body)
        .await
        .map_err(|e| e.to_string())?;
    let got = r.body().await.map_err(|e| e.to_string())?;
    Ok((
        r.status().as_u16(),
        String::from_utf8_lossy(&got).into_owned(),
    ))
}

/// A callback from omnigate: checked, printed, answered; `delivered` reported after.
async fn callback(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    a: actix_web::web::Data<Arc<Args>>,
) -> actix_web::HttpResponse {
    let header = |h: &str| req.headers().get(h).and_then(|v| v.to_str().ok());
    if let Err(e) = check_open(
        &a.secret,
        now(),
        header("x-omnigate-timestamp"),
        header("x-omnigate-signature"),
        &body,
    ) {
        return actix_web::HttpResponse::Unauthorized()
            .json(serde_json::json!({"error": e.to_string()}));
    }
    let Ok(m) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return actix_web::HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "not JSON"}));
    };
    let delivery = m["delivery"].as_str().unwrap_or_default().to_string();
    println!(
        "reply {delivery} {}: {}",
        m["agent"].as_str().unwrap_or("agent"),
        m["text"].as_str().unwrap_or_default().replace('\n', " ")
    );
    // Shown on the terminal: delivered. Reported once the answer is out.
    let a = a.get_ref().clone();
    actix_rt::spawn(async move {
        let event = serde_json::json!([{
            "id": format!("delivered-{delivery}"),
            "type": "status",
            "delivery": delivery,
            "status": "delivered",
        }]);
        match post(&a, event).await {
            Ok((_, r)) => println!("reported {delivery} delivered {r}"),
            Err(e) => println!("reported {delivery} failed {e}"),
        }
    });
    actix_web::HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

fn main() {
    let Some(a) = args() else {
        // The known answer every connector should reproduce.
        assert_eq!(
            hex(&hmac_sha256(b"secret", b"test")),
            "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
        eprintln!("{USAGE}");
        return;
    };
    let a = Arc::new(a);
    let me = a
        .phone
        .as_ref()
        .map(|p| serde_json::json!({ "phone": p }))
        .or_else(|| a.email.as_ref().map(|e| serde_json::json!({ "email": e })))
        .unwrap_or_else(
            || serde_json::json!({ "id": a.user.clone().unwrap_or_else(|| "terminal".into()) }),
        );
    let thread = a.thread.clone().unwrap_or_else(|| {
        let who = me
            .as_object()
            .and_then(|o| o.values().next()?.as_str().map(str::to_string));
        format!(
            "terminal-{}",
            who.unwrap_or_default()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        )
    });
    actix_rt::System::new().block_on(async move {
        let data = actix_web::web::Data::new(a.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .route("/omnigate", actix_web::web::post().to(callback))
        })
        .workers(1)
        .bind(&a.listen);
        let server = match server {
            Ok(s) => s.run(),
            Err(e) => {
                eprintln!("cannot listen on {} (--listen HOST:PORT): {e}", a.listen);
                std::process::exit(2);
            }
        };
        let handle = server.handle();
        actix_rt::spawn(server);
        println!("ready http://{}/omnigate", a.listen);

        // Lines from the terminal (a thread: stdin blocks), each a message.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        let run = format!("{:x}", now());
        let mut n = 0;
        while let Some(line) = rx.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            n += 1;
            let id = format!("term-{run}-{n}");
            let mut event = serde_json::json!({
                "id": id, "type": "message", "thread": thread, "from": me,
                "text": line, "at": now(),
            });
            if let Some(name) = &a.name {
                event["name"] = name.clone().into();
            }
            // Not taken (the gateway down, a 503): the same event again, counted once.
            let mut tries = 0;
            loop {
                tries += 1;
                match post(&a, serde_json::json!([event.clone()])).await {
                    Ok((200, r)) => {
                        println!("posted {id} {r}");
                        break;
                    }
                    Ok((code, r)) if code < 500 || tries >= 5 => {
                        println!("refused {id} {code} {r}");
                        break;
                    }
                    other => {
                        eprintln!("posting {id} failed ({other:?}); again in {tries} s");
                        tokio::time::sleep(std::time::Duration::from_secs(tries)).await;
                    }
                }
            }
        }
        // The terminal closed: the replies still on their way may land for a moment.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        handle.stop(true).await;
    });
}
