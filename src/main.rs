//! The omnigate binary: `omnigate serve [--config FILE] [flags]` (the default command)
//! , `omnigate dialplan check|simulate|test` for IVR designers and `omnigate channel
//! test ACCOUNT` for whoever writes an open channel connector.

use clap::{Parser, Subcommand};
use omnigate::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "omnigate",
    version,
    about = "Contact-centre gateway: SIP trunks and phones, IVR, browser agents and chat in one binary."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the gateway (the default). Without --config: a demo node on 127.0.0.1.
    Serve(ServeArgs),
    /// IVR designers' tools: check, simulate and test flows without making a call.
    #[command(subcommand)]
    Dialplan(DialplanCmd),
    /// Messaging channel tools.
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Knowledge-base tools: check the articles and test the matcher on labelled
    /// questions.
    #[command(subcommand)]
    Kb(KbCmd),
}

#[derive(Subcommand, Debug)]
enum KbCmd {
    /// Validate articles (syntax, empty answers, duplicate or ambiguous questions,
    /// missing languages); prints file:line:column: message for each problem and exits
    /// 1 if there is any.
    Check {
        /// Knowledge-base files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The confidence below which nothing is answered (as `[kb] threshold`).
        #[arg(long)]
        threshold: Option<f32>,
    },
    /// Match each labelled question of the *.test.yaml files: PASS or FAIL with the
    /// best guess, then precision and recall; exits 1 on any failure.
    Test {
        /// Knowledge-base and test files, or directories of both.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        threshold: Option<f32>,
    },
}

fn kb(cmd: KbCmd) -> i32 {
    let mut out = std::io::stdout();
    match cmd {
        KbCmd::Check { files, threshold } => omnigate::kb::cli::check(&files, threshold, &mut out),
        KbCmd::Test { files, threshold } => omnigate::kb::cli::test(&files, threshold, &mut out),
    }
}

#[derive(Subcommand, Debug)]
enum ChannelCmd {
    /// Sign a sample event for an open channel ACCOUNT (as its connector would) and
    /// show what its callback would receive; with --gateway, post the event there
    /// and show the answer.
    Test {
        account: String,
        /// TOML config file (without one: the demo accounts).
        #[arg(long, short, env = "OMNIGATE_CONFIG")]
        config: Option<PathBuf>,
        /// The gateway's address, e.g. http://127.0.0.1:8080: post the event there.
        #[arg(long)]
        gateway: Option<String>,
    },
}

fn channel(cmd: ChannelCmd) -> i32 {
    let ChannelCmd::Test {
        account,
        config,
        gateway,
    } = cmd;
    let cfg = match config {
        Some(p) => match Config::load(&p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("omnigate: {e}");
                return 2;
            }
        },
        None => Config::default(),
    };
    let channels = cfg.effective_channels();
    let Some(a) = channels.iter().find(|c| c.name == account) else {
        let names: Vec<_> = channels.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "omnigate: no channel account \"{account}\" (there are: {})",
            names.join(", ")
        );
        return 2;
    };
    if a.kind != omnigate::config::ChannelKind::Open {
        eprintln!(
            "omnigate: channel \"{account}\" is a {} account; this test is for open channels",
            a.kind.name()
        );
        return 2;
    }
    let base = gateway.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            cfg.http
                .listen
                .map_or("127.0.0.1:8080".into(), |a| a.to_string())
        )
    });
    let sample = omnigate::channels::open::sample(
        &a.secret,
        &a.name,
        base.trim_end_matches('/'),
        omnigate::clock::unix_secs(),
    );
    print!("{sample}");
    if gateway.is_none() {
        return 0;
    }
    let r = actix_rt::System::new().block_on(async {
        let mut r = awc::Client::new()
            .post(&sample.url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Omnigate-Timestamp", sample.timestamp.to_string()))
            .insert_header(("X-Omnigate-Signature", sample.signature.clone()))
            .send_body(sample.event.clone())
            .await
            .map_err(|e| e.to_string())?;
        let body = r.body().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((r.status().as_u16(), body))
    });
    match r {
        Ok((status, body)) => {
            println!(
                "\n# The gateway answered {status}:\n{}",
                String::from_utf8_lossy(&body)
            );
            i32::from(!(200..300).contains(&status))
        }
        Err(e) => {
            eprintln!("omnigate: {}: {e}", sample.url);
            1
        }
    }
}

// Parsed once per run: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum DialplanCmd {
    /// Validate flows (syntax and meaning); prints file:line:column: message for each
    /// problem and exits 1 if there is any.
    Check {
        /// Flow files or directories of flows.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a flow without audio and print each step taken.
    Simulate {
        file: PathBuf,
        /// A text flow's customer messages, in order (repeatable): the first starts
        /// the conversation, the others answer its `ask` steps.
        #[arg(long = "message")]
        messages: Vec<String>,
        /// A text flow's channel (${channel}): webchat, whatsapp, sms or email.
        #[arg(long, default_value = "webchat")]
        channel: String,
        /// The knowledge base `match_kb` asks [default: kb/ when it exists].
        #[arg(long)]
        kb: Option<PathBuf>,
        /// The caller's number (${caller}).
        #[arg(long, default_value = "+15550000000")]
        caller: String,
        /// The number dialled (${dialled}).
        #[arg(long, default_value = "1000")]
        dialled: String,
        /// The trunk the call came in on (${trunk}).
        #[arg(long, default_value = "")]
        trunk: String,
        /// Keys pressed, one comma-separated group per gather or menu ("1,5#"; an
        /// empty group lets it time out).
        #[arg(long, default_value = "")]
        digits: String,
        /// When the call happens, e.g. 2026-11-22T20:00:00-05:00 [default: now].
        #[arg(long)]
        at: Option<String>,
        /// Preset a variable: --var NAME=VALUE (repeatable).
        #[arg(long = "var")]
        vars: Vec<String>,
        /// A customer for lookups: --lookup 'account:1234={"name":"Ada","tier":"gold"}'
        /// (or =null for not found; repeatable). Without one, lookups find nobody.
        #[arg(long)]
        lookup: Vec<String>,
        /// A webhook answer: --http 'GET https://crm/x={"status":200,"body":{...}}', or
        /// --http 'https://crm/x=timeout' for a failure (repeatable).
        #[arg(long)]
        http: Vec<String>,
        /// An agent answers the call's enqueue and hangs up first: the flow's
        /// `agent_hangup` step (a survey) goes on, answered by the following --digits.
        #[arg(long)]
        agent_hangs_up: bool,
    },
    /// Run the test cases written in (or beside) flows.
    Test {
        /// Flow files or directories of flows.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The knowledge base text flows' `match_kb` asks [default: kb/ when it exists].
        #[arg(long)]
        kb: Option<PathBuf>,
    },
}

fn dialplan(cmd: DialplanCmd) -> i32 {
    use omnigate::dialplan::cli;
    let mut out = std::io::stdout();
    match cmd {
        DialplanCmd::Check { files } => cli::check(&files, &mut out),
        DialplanCmd::Test { files, kb } => cli::test(&files, kb.as_deref(), &mut out),
        DialplanCmd::Simulate {
            file,
            messages,
            channel,
            kb,
            caller,
            dialled,
            trunk,
            digits,
            at,
            vars,
            lookup,
            http,
            agent_hangs_up,
        } => cli::simulate(
            &cli::SimArgs {
                file,
                messages,
                channel,
                kb,
                caller,
                dialled,
                trunk,
                digits,
                at,
                vars,
                lookup,
                http,
                agent_hangs_up,
            },
            &mut out,
        ),
    }
}

#[derive(clap::Args, Debug, Default, Clone)]
struct ServeArgs {
    /// TOML config file (see omnigate.example.toml). Without it: demo mode.
    #[arg(long, short, env = "OMNIGATE_CONFIG")]
    config: Option<PathBuf>,
    /// SIP over UDP listen address [default 127.0.0.1:5060]; "off" disables.
    #[arg(long, value_name = "ADDR")]
    sip_udp: Option<String>,
    /// SIP over TCP listen address [default 127.0.0.1:5060]; "off" disables.
    #[arg(long, value_name = "ADDR")]
    sip_tcp: Option<String>,
    /// SIP over TLS listen address [default 127.0.0.1:5061]; "off" disables.
    #[arg(long, value_name = "ADDR")]
    sip_tls: Option<String>,
    /// SIP over WebSocket listen address [default 127.0.0.1:5066]; "off" disables.
    #[arg(long, value_name = "ADDR")]
    sip_ws: Option<String>,
    /// HTTP listen address (/healthz, /metrics, /api) [default 127.0.0.1:8080]; "off" disables.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// The UDP port browser calls share (WebRTC) [default 20100]; "off" disables.
    #[arg(long, value_name = "PORT")]
    webrtc_port: Option<String>,
    /// RTP port range [default 10000-20000].
    #[arg(long, value_name = "LOW-HIGH")]
    rtp_ports: Option<String>,
    /// Data directory [default ./data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Show caller numbers, user names and credentials in logs (debugging only).
    #[arg(long)]
    log_personal_data: bool,
}

fn addr_flag(name: &str, v: &Option<String>, slot: &mut Option<SocketAddr>) -> Result<(), String> {
    if let Some(v) = v {
        if v == "off" {
            *slot = None;
        } else {
            *slot =
                Some(v.parse().map_err(|_| {
                    format!("--{name}: \"{v}\" is not an address like 127.0.0.1:5060")
                })?);
        }
    }
    Ok(())
}

fn build_config(a: &ServeArgs) -> Result<Config, String> {
    let mut c = match &a.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    addr_flag("sip-udp", &a.sip_udp, &mut c.sip.udp)?;
    addr_flag("sip-tcp", &a.sip_tcp, &mut c.sip.tcp)?;
    addr_flag("sip-tls", &a.sip_tls, &mut c.sip.tls)?;
    addr_flag("sip-ws", &a.sip_ws, &mut c.sip.ws)?;
    addr_flag("http", &a.http, &mut c.http.listen)?;
    if let Some(p) = &a.webrtc_port {
        c.webrtc.port = match p.as_str() {
            "off" => 0,
            n => n.parse().map_err(|_| {
                format!("--webrtc-port: \"{n}\" is not a port (1 to 65535, or \"off\")")
            })?,
        };
    }
    if let Some(r) = &a.rtp_ports {
        c.rtp.ports = r.parse().map_err(|e| format!("--rtp-ports: {e}"))?;
    }
    if let Some(d) = &a.data {
        c.data.dir = d.clone();
    }
    if a.log_personal_data {
        c.log.personal_data = true;
    }
    Ok(c)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() {
    let cli = Cli::parse();
    let args = match cli.cmd {
        Some(Cmd::Serve(a)) => a,
        Some(Cmd::Dialplan(d)) => std::process::exit(dialplan(d)),
        Some(Cmd::Channel(c)) => std::process::exit(channel(c)),
        Some(Cmd::Kb(k)) => std::process::exit(kb(k)),
        None => cli.serve,
    };
    let cfg = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("omnigate: {e}");
            std::process::exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    // Colours only for a person at a terminal, never in a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    omnigate::panics::install();
    omnigate::redact::show_personal_data(cfg.log.personal_data);
    if let Err(e) = omnigate::server::private_data_dir(&cfg.data.dir) {
        eprintln!("omnigate: data directory {}: {e}", cfg.data.dir.display());
        std::process::exit(2);
    }
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    let result = system.block_on(omnigate::server::run(cfg, shutdown_signal()));
    if let Err(e) = result {
        eprintln!("omnigate: {e}");
        std::process::exit(1);
    }
}
