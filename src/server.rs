//! The running node: binds the transports, drives the SIP core in one task (a thin
//! loop: sockets and timers in, core outputs out), spreads `CallActor`s over Arbiters,
//! serves HTTP, and shuts down gracefully when `shutdown` resolves.
//!
//! `run` is the wiring (transports, the core from `core_config`, the call policy from
//! `call_policy`, the WebRTC port, the store and dialplans, HTTP, arbiters); `Driver`
//! is the loop that owns the core. `run` must be called inside an actix `System` (see
//! `main.rs`).

use crate::actors::call::{CallActor, CallCommand, CallEvent, HandlerConfig, SipEvent};
use crate::api::{self, OriginateRequest, Shared};
use crate::config::Config;
use crate::media::RtpPorts;
use crate::metrics::Metrics;
use crate::sip::core::{CallRef, Core, CoreConfig, CoreEvent};
use crate::sip::registrar::RegistrarConfig;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{self, Inbound, Transports};
use crate::sip::Transport;
use actix::prelude::*;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a newcomer does next, printed at start-up (and served at `GET /`): None
/// without an HTTP listener.
pub fn next_steps(cfg: &Config) -> Option<String> {
    let http = cfg.http.listen?;
    let host = if http.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        http.ip().to_string()
    };
    let base = format!("http://{host}:{}", http.port());
    let mut t = format!(
        "\nomnigate is ready.\n  Agent desktop:  {base}/agent\n  Supervisors:    {base}/supervisor\n  Web chat:       {base}/chat\n  Metrics:        {base}/metrics\n"
    );
    if cfg.is_demo() {
        let sip = cfg
            .sip
            .udp
            .or(cfg.sip.tcp)
            .map_or("127.0.0.1:5060".into(), |a| a.to_string());
        t.push_str(&format!(
            "  Demo agents:    alice / demo-alice (desk phone 1001), bob / demo-bob (browser)\n  \
             Demo supervisor: sue / demo-sue (the demo queues, desk phone 1002)\n  \
             Demo phones:    register 1001 / demo1001 or 1002 / demo1002 at sip:{sip}\n  \
             Call the IVR:   any number, e.g. sipp -sn uac -m 1 {sip} (or dial 100 from a demo phone)\n"
        ));
    }
    Some(t)
}

/// Everything this process creates from now on is private to its user (umask 077:
/// the database, recordings, voicemail, certificates), and what an older version
/// left in the data directory is made so: directories 0700, files 0600.
pub fn private_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn walk(p: &std::path::Path, depth: usize) -> std::io::Result<()> {
            let meta = std::fs::symlink_metadata(p)?;
            if meta.file_type().is_symlink() {
                return Ok(()); // not ours to change
            }
            if meta.is_dir() {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
                if depth < 8 {
                    for e in std::fs::read_dir(p)? {
                        walk(&e?.path(), depth + 1)?;
                    }
                }
            } else if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        }
        walk(dir, 0)?;
    }
    Ok(())
}

/// Raises the descriptor limit to its hard maximum; returns the limit in force.
pub fn raise_descriptor_limit() -> u64 {
    #[cfg(unix)]
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        if l.rlim_cur < l.rlim_max {
            let want = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
        l.rlim_cur
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// Connection limits from the configuration, fitted to the descriptor limit: at
/// most half the descriptors go to SIP connections, the rest stay for RTP sockets,
/// the database, recordings and the HTTP side.
fn stream_limits(cfg: &Config) -> transport::StreamLimits {
    let fds = raise_descriptor_limit();
    let budget = (fds / 2).max(16) as usize;
    let max = cfg.sip.max_connections.min(budget);
    if max < cfg.sip.max_connections {
        tracing::warn!(
            descriptors = fds,
            max_connections = max,
            "[sip] max_connections lowered to fit the descriptor limit"
        );
    }
    transport::StreamLimits {
        max_connections: max,
        max_per_address: cfg.sip.max_connections_per_address.min(max),
        idle: std::time::Duration::from_secs(cfg.sip.connection_idle_secs.max(1)),
        ..Default::default()
    }
}

fn advertise_ip(cfg: &Config) -> IpAddr {
    if let Some(a) = cfg.sip.advertise {
        return a;
    }
    let l = cfg
        .sip
        .udp
        .or(cfg.sip.tcp)
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if l.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        l
    }
}

fn with_ip(a: SocketAddr, ip: IpAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        SocketAddr::new(ip, a.port())
    } else {
        a
    }
}

/// Runs the node until `shutdown` resolves, then drains. Returns when everything stopped.
/// Contains panics in the SIP core's driver loop: the input being handled is lost and
/// the node goes on. A core that fails 20 times in 10 s is wedged (a timer that
/// panics each time it fires): the node stops with the reason, for its service
/// manager to restart it, rather than spin.
struct CoreGuard {
    failures: crate::logins::RateLimit<()>,
}

impl CoreGuard {
    fn new() -> CoreGuard {
        CoreGuard {
            failures: crate::logins::RateLimit::new(20, Duration::from_secs(10), 1),
        }
    }

    /// `f`'s value, `None` when it panicked, or an error when that happens too often.
    fn run<T>(
        &mut self,
        now: Instant,
        what: &str,
        f: impl FnOnce() -> T,
    ) -> Result<Option<T>, String> {
        if let Some(v) = crate::panics::contain(f) {
            return Ok(Some(v));
        }
        let reason = crate::panics::reason();
        tracing::error!(%reason, "the SIP core failed on {what}; that input is lost, the node goes on");
        match self.failures.take(now, &()) {
            Ok(()) => Ok(None),
            Err(_) => Err(format!("the SIP core keeps failing ({reason}); stopping")),
        }
    }
}

pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let adv = advertise_ip(&cfg);
    let repaired = crate::media::recorder::repair_dir(&cfg.data.dir.join("recordings"));
    if repaired > 0 {
        tracing::warn!(repaired, "recordings left open by a crash were repaired");
    }
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(65_536);

    // ---- transports
    let udp = match cfg.sip.udp {
        Some(a) => Some(Arc::new(
            transport::bind_udp(a, cfg.sip.udp_recv_buffer)
                .map_err(|e| format!("SIP UDP {a}: {e}"))?,
        )),
        None => None,
    };
    let transports = Transports::with_udp(in_tx.clone(), udp.clone(), stream_limits(&cfg));
    if let Some(u) = udp.clone() {
        tokio::spawn(transport::run_udp(u, in_tx.clone()));
    }
    for t in &cfg.trunks {
        if let (Some(proxy), true) = (t.proxy, t.transport == crate::sip::Transport::Tls) {
            let ca = t
                .tls_ca
                .clone()
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
            let name = t.domain.clone().unwrap_or_else(|| proxy.ip().to_string());
            transports
                .add_tls_destination(proxy, &name, &ca)
                .map_err(|e| format!("trunk \"{}\": tls_ca: {e}", t.name))?;
        }
    }
    if let Some(a) = cfg.sip.tcp {
        let l = tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| format!("SIP TCP {a}: {e}"))?;
        tokio::spawn(transport::run_tcp(l, transports.clone()));
    }
    if let Some(a) = cfg.sip.tls {
        let names = vec!["localhost".to_string(), adv.to_string()];
        let acc = transport::tls_acceptor(&cfg.sip.tls_cert, &cfg.sip.tls_key, names)?;
        let l = tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| format!("SIP TLS {a}: {e}"))?;
        tokio::spawn(transport::run_tls(l, acc, transports.clone()));
    }

    // ---- core
    let core = Core::new(core_config(&cfg, adv), crate::clock::now());

    let ports = Arc::new(RtpPorts::new(cfg.rtp.ports.lo, cfg.rtp.ports.hi));
    let policy = call_policy(&cfg, adv)?;
    let webrtc = webrtc_port(&cfg, adv)?;
    std::fs::create_dir_all(&policy.recordings_dir)
        .map_err(|e| format!("{}: {e}", policy.recordings_dir.display()))?;
    let handler = HandlerConfig {
        policy: Arc::new(policy),
        webrtc,
        ivr: Some(start_ivr(&cfg).await?),
    };
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<CallCommand>();
    // Calls placed through the API wait here for the driver; bounded, so a flood of
    // requests is refused (503) rather than queued without end.
    let (orig_tx, orig_rx) = mpsc::channel::<OriginateRequest>(crate::api::ORIGINATE_QUEUE);
    // Video calls from the web chat wait here for the driver (bounded likewise).
    let (web_tx, web_rx) = mpsc::channel(crate::actors::webcall::QUEUE);
    if let Some(i) = &handler.ivr {
        i.centre.set_web_calls(web_tx);
    }
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let shared = Shared {
        metrics: metrics.clone(),
        originate: orig_tx,
        admin_token: cfg.admin_token(),
        transports: transports.clone(),
        store: handler.ivr.as_ref().map(|i| i.store.clone()),
        centre: handler.ivr.as_ref().map(|i| i.centre.clone()),
        ws_origins: Arc::new(cfg.ws_origins()),
        metrics_token: cfg.http.metrics_token.clone(),
        chat_status: Default::default(),
        sl_today: Default::default(),
    };

    // ---- HTTP and SIP over WebSocket
    let mut http_servers = Vec::new();
    if let Some(a) = cfg.http.listen {
        http_servers
            .push(api::serve_http(a, shared.clone()).map_err(|e| format!("HTTP {a}: {e}"))?);
    }
    if let Some(a) = cfg.http.tls_listen {
        let cert = cfg
            .http
            .tls_cert
            .clone()
            .unwrap_or_else(|| cfg.sip.tls_cert.clone());
        let key = cfg
            .http
            .tls_key
            .clone()
            .unwrap_or_else(|| cfg.sip.tls_key.clone());
        let names = vec!["localhost".to_string(), adv.to_string()];
        let tls = transport::tls_server_config(&cert, &key, names)
            .map_err(|e| format!("[http] tls_listen {a}: {e}"))?;
        http_servers.push(
            api::serve_https(a, shared.clone(), tls)
                .map_err(|e| format!("HTTPS {a} ([http] tls_listen): {e}"))?,
        );
    }
    if let Some(a) = cfg.sip.ws {
        http_servers
            .push(api::serve_sip_ws(a, shared.clone()).map_err(|e| format!("SIP WS {a}: {e}"))?);
    }
    let http_handles: Vec<_> = http_servers.iter().map(|s| s.handle()).collect();
    for s in http_servers {
        actix_rt::spawn(async move {
            let _ = s.await;
        });
    }

    // ---- actors spread over arbiters
    let arbiters: Vec<Arbiter> = (0..std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(1))
        .map(|_| Arbiter::new())
        .collect();

    let show = |a: Option<SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    tracing::info!(
        udp = %show(cfg.sip.udp), tcp = %show(cfg.sip.tcp), tls = %show(cfg.sip.tls),
        ws = %show(cfg.sip.ws), http = %show(cfg.http.listen),
        demo = cfg.is_demo(), "omnigate serving"
    );
    if let Some(text) = next_steps(&cfg) {
        println!("{text}");
    }
    metrics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .serving = true;

    let driver = Driver {
        core,
        transports,
        actors: HashMap::new(),
        arbiters,
        next_arbiter: 0,
        cmd_tx,
        handler,
        ports,
        metrics,
    };
    let grace = Duration::from_secs(cfg.shutdown.grace_secs);
    let arbiters = driver
        .run(in_rx, cmd_rx, orig_rx, web_rx, shutdown, grace)
        .await?;
    for h in http_handles {
        h.stop(true).await;
    }
    if let Some(c) = &shared.centre {
        c.close_activity().await;
    }
    for a in arbiters {
        a.stop();
    }
    tracing::info!("omnigate stopped");
    Ok(())
}

/// The SIP driver: one task owns the core; it wakes on an inbound message, a call's
/// command, an origination from the API or the core's next deadline, then flushes the
/// core's datagrams to the transports and its events to the call actors.
struct Driver {
    core: Core,
    transports: Arc<Transports>,
    actors: HashMap<CallRef, Addr<CallActor>>,
    arbiters: Vec<Arbiter>,
    next_arbiter: usize,
    cmd_tx: mpsc::UnboundedSender<CallCommand>,
    handler: HandlerConfig,
    ports: Arc<RtpPorts>,
    metrics: Arc<Mutex<Metrics>>,
}

impl Driver {
    /// The core's output: datagrams to the transports, events to the call actors.
    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.transports.send(t);
        }
        while let Some(ev) = self.core.poll_event() {
            dispatch(
                ev,
                &mut self.actors,
                &self.arbiters,
                &mut self.next_arbiter,
                &self.cmd_tx,
                &self.handler,
                &self.ports,
            );
        }
    }

    /// Runs until `shutdown` and the drain after it; gives back the arbiters to stop.
    async fn run(
        mut self,
        mut in_rx: mpsc::Receiver<Inbound>,
        mut cmd_rx: mpsc::UnboundedReceiver<CallCommand>,
        mut orig_rx: mpsc::Receiver<OriginateRequest>,
        mut web_rx: mpsc::Receiver<crate::actors::webcall::WebCallRequest>,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<Vec<Arbiter>, String> {
        tokio::pin!(shutdown);
        let mut guard = CoreGuard::new();
        let mut draining_since: Option<Instant> = None;
        let mut ended_all_at: Option<Instant> = None;
        let mut last_publish = crate::clock::now() - Duration::from_secs(1);
        loop {
            let deadline = self
                .core
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| {
                    tokio::time::Instant::from_std(crate::clock::now() + Duration::from_secs(3600))
                });
            // Wakes the loop to publish metrics and to advance a shutdown.
            let tick = tokio::time::sleep(Duration::from_millis(if draining_since.is_some() {
                100
            } else {
                200
            }));
            tokio::select! {
                biased;
                _ = &mut shutdown, if draining_since.is_none() => {
                    tracing::info!(live_calls = self.core.live_calls(), grace_secs = grace.as_secs(), "shutting down: refusing new calls");
                    self.core.start_draining(crate::clock::now());
                    self.metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).serving = false;
                    draining_since = Some(crate::clock::now());
                }
                Some(m) = in_rx.recv() => {
                    let now = crate::clock::now();
                    let core = &mut self.core;
                    // A panic in the core costs the message it was handling, not the
                    // node (nor the rest of the batch, which stays queued).
                    guard.run(now, "a SIP message", || {
                        core.handle_message(now, m.parsed, m.source);
                        // Batch what is already queued.
                        for _ in 0..256 {
                            match in_rx.try_recv() {
                                Ok(m) => core.handle_message(now, m.parsed, m.source),
                                Err(_) => break,
                            }
                        }
                    })?;
                }
                Some(c) = cmd_rx.recv() => {
                    let now = crate::clock::now();
                    let (core, actors) = (&mut self.core, &mut self.actors);
                    guard.run(now, "a call's command", || {
                        apply(core, actors, now, c);
                        while let Ok(c) = cmd_rx.try_recv() {
                            apply(core, actors, now, c);
                        }
                    })?;
                }
                Some(o) = orig_rx.recv() => {
                    let call = self.core.new_call();
                    let a = CallActor::outbound(call, o.to, o.trunk, crate::call::Recording { asked: o.record, consent_withdrawn: o.consent_withdrawn }, self.cmd_tx.clone(), self.handler.clone(), self.ports.clone());
                    let arb = &self.arbiters[self.next_arbiter % self.arbiters.len()];
                    self.next_arbiter += 1;
                    self.actors.insert(call, CallActor::start_in_arbiter(&arb.handle(), move |_| a));
                    let _ = o.reply.send(call);
                }
                Some(w) = web_rx.recv(), if draining_since.is_none() => {
                    // A reference of the core's, so it names no other call; no SIP
                    // dialog has it.
                    let call = self.core.new_call();
                    let arb = self.arbiters[self.next_arbiter % self.arbiters.len()].handle();
                    self.next_arbiter += 1;
                    crate::actors::webcall::start(w, call, &arb, self.cmd_tx.clone(), self.handler.clone(), self.ports.clone());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = crate::clock::now();
                    let core = &mut self.core;
                    guard.run(now, "a SIP timer", || core.handle_timeout(now))?;
                }
                _ = tick => {}
            }
            // Outputs.
            guard.run(crate::clock::now(), "the SIP core's output", || {
                self.flush()
            })?;
            // Graceful shutdown: grace period, then BYE to what is left, then stop.
            if let Some(since) = draining_since {
                let now = crate::clock::now();
                let live = self.core.live_calls();
                if ended_all_at.is_none() && (live == 0 || now.duration_since(since) >= grace) {
                    if live > 0 {
                        tracing::info!(live_calls = live, "grace period over: ending live calls");
                    }
                    self.core.end_all(crate::clock::now());
                    self.flush();
                    ended_all_at = Some(now);
                }
                // Give BYEs a moment to be answered (or retransmitted once).
                if let Some(t) = ended_all_at {
                    if now.duration_since(t) >= Duration::from_millis(1500)
                        || (self.core.tx.is_empty()
                            && now.duration_since(t) >= Duration::from_millis(200))
                    {
                        break;
                    }
                }
            }
            if last_publish.elapsed() >= Duration::from_millis(200) {
                publish(&self.core, &self.metrics, &self.transports, &self.ports);
                last_publish = crate::clock::now();
            }
        }
        Ok(self.arbiters)
    }
}

/// The SIP core's configuration: our addresses per transport (advertised as `adv`),
/// users, trunks, timers, registrar and session-timer limits.
fn core_config(cfg: &Config, adv: IpAddr) -> CoreConfig {
    let mut local = HashMap::new();
    if let Some(a) = cfg.sip.udp {
        local.insert(Transport::Udp, with_ip(a, adv));
    }
    if let Some(a) = cfg.sip.tcp {
        local.insert(Transport::Tcp, with_ip(a, adv));
    }
    if let Some(a) = cfg.sip.tls {
        local.insert(Transport::Tls, with_ip(a, adv));
    }
    if let Some(a) = cfg.sip.ws {
        local.insert(Transport::Ws, with_ip(a, adv));
    }
    CoreConfig {
        realm: cfg.sip.realm.clone(),
        local,
        users: cfg
            .effective_users()
            .into_iter()
            .map(|u| (u.name, u.password))
            .collect(),
        trunks: cfg.effective_trunks(),
        timers: TimerConfig {
            t1: Duration::from_millis(cfg.sip.t1_ms),
            ..TimerConfig::default()
        },
        registrar: RegistrarConfig {
            min_expires: cfg.sip.min_register_expires,
            max_expires: cfg.sip.max_register_expires,
            unix_at_epoch: crate::clock::unix_secs(),
            ..RegistrarConfig::default()
        },
        session_expires: cfg.sip.session_expires,
        min_se: cfg.sip.min_se,
        keepalive_interval: cfg.sip.keepalive_interval,
        digest_algorithms: cfg.sip.digest_algorithms.clone(),
        webrtc: cfg.webrtc.port != 0,
        ..CoreConfig::default()
    }
}

/// How every call behaves (the call core's policy), from `[calls]`, `[rtp]`,
/// `[webrtc]` and `[dialplan]`.
fn call_policy(cfg: &Config, adv: IpAddr) -> Result<crate::call::Policy, String> {
    Ok(crate::call::Policy {
        answer_after: Duration::from_millis(cfg.calls.answer_after_ms),
        hangup_after: (cfg.calls.hangup_after_secs > 0)
            .then(|| Duration::from_secs(cfg.calls.hangup_after_secs)),
        rtp_ip: cfg.rtp.address.unwrap_or(adv),
        record: cfg.calls.record,
        recordings_dir: cfg.data.dir.join("recordings"),
        welcome: if cfg.calls.welcome_prompt.is_empty() {
            crate::media::player::builtin_welcome()
        } else {
            crate::media::player::load_wav(std::path::Path::new(&cfg.calls.welcome_prompt))
                .map_err(|e| e.to_string())?
        },
        forward_trunk: (!cfg.calls.forward_trunk.is_empty())
            .then(|| cfg.calls.forward_trunk.clone()),
        extensions: Arc::new(cfg.effective_users().into_iter().map(|u| u.name).collect()),
        phones_trunk: (!cfg.calls.phones_trunk.is_empty()).then(|| cfg.calls.phones_trunk.clone()),
        ring: (cfg.calls.ring_secs > 0).then(|| Duration::from_secs(cfg.calls.ring_secs)),
        browser_calls: cfg.webrtc.port != 0,
        monitor_notice: cfg.calls.monitor_notice,
        hold_music: hold_music(cfg)?,
        dialplan: Some(crate::call::DialplanPolicy {
            config: cfg.dialplan.clone(),
            demo: cfg.is_demo(),
            voicemail_dir: cfg.data.dir.join("voicemail"),
        }),
    })
}

/// The UDP port browser legs share (none: `[webrtc] port = 0`).
fn webrtc_port(
    cfg: &Config,
    adv: IpAddr,
) -> Result<Option<Arc<crate::webrtc::WebRtcPort>>, String> {
    if cfg.webrtc.port == 0 {
        return Ok(None);
    }
    let ip = cfg.rtp.address.unwrap_or(adv);
    let port = crate::webrtc::WebRtcPort::bind(
        std::net::SocketAddr::new(ip, cfg.webrtc.port),
        cfg.webrtc.public_address.unwrap_or(ip),
    )
    .map_err(|e| {
        format!(
            "[webrtc] port {}: {e} (another node on this machine? set [webrtc] port or --webrtc-port to a free port, or \"off\")",
            cfg.webrtc.port
        )
    })?;
    tracing::info!(listen = %port.local(), advertised = %port.advertised(), "browser calls (WebRTC) on one UDP port");
    Ok(Some(port))
}

/// Opens the store, loads the dialplans and starts watching their directory.
async fn start_ivr(cfg: &Config) -> Result<Arc<crate::actors::call::IvrContext>, String> {
    use crate::dialplan::{Library, LoadOptions};
    let store = crate::store::Store::connect(&cfg.data.database, &cfg.data.dir.join("omnigate.db"))
        .await
        .map_err(|e| format!("{}: {e}", cfg.data.database_for_log()))?;
    tracing::info!(database = %cfg.data.database_for_log(), "store open");
    if cfg.is_demo() {
        store.seed_demo().await.map_err(|e| e.to_string())?;
    }
    // The KPI facts of what changed while stopped (all of them after the upgrade to
    // schema 12) are made now, not by the first report that asks.
    let kept = store.clone();
    tokio::spawn(async move {
        match kept.refresh_kpi_facts().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(interactions = n, "KPI facts made"),
            Err(e) => tracing::warn!(error = %e, "cannot make the KPI facts"),
        }
        // And the agents' occupancy per quarter hour (all of it after the upgrade to
        // schema 15).
        match kept
            .refresh_activity_packs(crate::clock::unix_millis() as i64)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(quarter_hours = n, "occupancy kept"),
            Err(e) => tracing::warn!(error = %e, "cannot keep the occupancy"),
        }
    });
    let voicemail_dir = cfg.data.dir.join("voicemail");
    std::fs::create_dir_all(&voicemail_dir)
        .map_err(|e| format!("{}: {e}", voicemail_dir.display()))?;
    // What a crash or a stop left: voicemails cut off are closed and put on their
    // interaction's timeline; calls still open are ended as interrupted (the threads
    // the centre takes up next are left open for it).
    for path in crate::media::recorder::repair_dir_files(&voicemail_dir) {
        let Some(interaction) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit_once('-'))
            .map(|(id, _)| id.to_string())
        else {
            continue;
        };
        let seconds = hound::WavReader::open(&path)
            .map(|r| r.duration() as f64 / r.spec().sample_rate.max(1) as f64)
            .unwrap_or(0.0);
        let data = serde_json::json!({"path": path.display().to_string(), "seconds": seconds, "repaired": true});
        match store.add_timeline(&interaction, "voicemail", data).await {
            Ok(()) => {
                tracing::warn!(%interaction, path = %path.display(), "a voicemail cut off by a crash was saved")
            }
            Err(e) => {
                tracing::warn!(%interaction, error = %e, "cannot put a repaired voicemail on the timeline")
            }
        }
    }
    match store.close_interrupted().await {
        Ok(ids) if !ids.is_empty() => {
            tracing::warn!(
                count = ids.len(),
                "interactions left open by a crash or a stop were ended as interrupted"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot close interrupted interactions"),
    }
    let centre = crate::centre::Centre::start(cfg, store.clone()).await?;
    centre.start_mail();
    tokio::spawn(centre.clone().run_retention());
    tokio::spawn(centre.clone().run_kb_reload());
    let library = Arc::new(Library::new(&cfg.dialplan.dir, LoadOptions::detect()));
    log_reload(library.reload());
    centre.set_flows(library.clone())?;
    let lib = library.clone();
    let every = Duration::from_millis(cfg.dialplan.reload_ms.max(50));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let l = lib.clone();
            match tokio::task::spawn_blocking(move || l.reload()).await {
                Ok(r) => log_reload(r),
                Err(_) => break,
            }
        }
    });
    Ok(Arc::new(crate::actors::call::IvrContext {
        library,
        store,
        centre,
    }))
}

/// `[webrtc] hold_music`, else the dialplans' `prompts/hold-music.wav`, else a soft
/// 440 Hz tone, one second in four.
fn hold_music(cfg: &Config) -> Result<crate::media::player::Samples, String> {
    let configured = !cfg.webrtc.hold_music.is_empty();
    let path = if configured {
        std::path::PathBuf::from(&cfg.webrtc.hold_music)
    } else {
        cfg.dialplan.dir.join("prompts").join("hold-music.wav")
    };
    if configured || path.exists() {
        return crate::media::player::load_wav(&path)
            .map_err(|e| format!("hold music {}: {e}", path.display()));
    }
    let tone: Vec<i16> = (0..32000)
        .map(|i| {
            if i < 8000 {
                ((i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin() * 2000.0) as i16
            } else {
                0
            }
        })
        .collect();
    Ok(tone.into())
}

fn log_reload(r: Option<crate::dialplan::set::ReloadReport>) {
    let Some(r) = r else { return };
    for (flow, version) in &r.loaded {
        tracing::info!(%flow, %version, "dialplan loaded");
    }
    for flow in &r.removed {
        tracing::info!(%flow, "dialplan removed");
    }
    for p in &r.problems {
        tracing::error!("dialplan refused: {p}");
    }
    if !r.problems.is_empty() {
        tracing::warn!(
            problems = r.problems.len(),
            "dialplan changes with problems were refused; the previous versions keep serving"
        );
    }
}

fn apply(
    core: &mut Core,
    actors: &mut HashMap<CallRef, Addr<CallActor>>,
    now: Instant,
    c: CallCommand,
) {
    match c {
        CallCommand::Ring(call) => core.ring(now, call),
        CallCommand::Answer(call, sdp) => core.answer(now, call, sdp),
        CallCommand::Reject(call, code, why) => core.reject(now, call, code, why),
        CallCommand::Hangup(call) => core.hangup(now, call),
        CallCommand::Hold(call, on) => core.hold(now, call, on),
        CallCommand::PictureFastUpdate(call) => core.picture_fast_update(now, call),
        CallCommand::AddVideo(call, port, formats) => core.add_video(now, call, port, &formats),
        CallCommand::Place {
            call,
            leg,
            to,
            sdp,
            owner,
        } => {
            // The core names the call; its owner learns the name before any event
            // of the call (one mailbox, in order), a failure to place included (the
            // core ends the call at once, as a refused one).
            let call = call.unwrap_or_else(|| core.new_call());
            if let Some(owner) = owner {
                owner.do_send(crate::actors::call::Placed { leg, call });
                actors.insert(call, owner);
            }
            core.place(now, call, &to, sdp);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    ev: CoreEvent,
    actors: &mut HashMap<CallRef, Addr<CallActor>>,
    arbiters: &[Arbiter],
    next: &mut usize,
    cmd_tx: &mpsc::UnboundedSender<CallCommand>,
    handler: &HandlerConfig,
    ports: &Arc<RtpPorts>,
) {
    match ev {
        ev @ CoreEvent::IncomingCall { .. } => {
            let Some((c, source)) = crate::call::Inbound::from_event(ev) else {
                return;
            };
            let call = c.call;
            tracing::info!(%call, caller = %crate::redact::Redacted(&c.caller), callee = %crate::redact::Redacted(&c.callee), trunk = %c.trunk.as_deref().unwrap_or("-"), user = %c.user.as_deref().map_or("-".to_string(), |u| crate::redact::Redacted(u).to_string()), %source, "incoming call");
            let a = CallActor::inbound(c, cmd_tx.clone(), handler.clone(), ports.clone());
            let arb = &arbiters[*next % arbiters.len()];
            *next += 1;
            actors.insert(call, CallActor::start_in_arbiter(&arb.handle(), move |_| a));
        }
        CoreEvent::Established { call, remote_sdp } => {
            send(actors, call, CallEvent::Established { remote_sdp })
        }
        CoreEvent::RemoteOffer {
            call,
            sdp,
            negotiated,
        } => {
            let _ = sdp;
            send(actors, call, CallEvent::RemoteOffer { negotiated })
        }
        CoreEvent::Progress { call, code } => send(actors, call, CallEvent::Progress(code)),
        CoreEvent::InfoDigit { call, digit } => send(actors, call, CallEvent::InfoDigit(digit)),
        CoreEvent::PictureFastUpdate { call } => send(actors, call, CallEvent::PictureFastUpdate),
        CoreEvent::VideoAnswer { call, answer } => {
            send(actors, call, CallEvent::VideoAnswer(answer))
        }
        CoreEvent::Ended { call, reason } => {
            if let Some(a) = actors.remove(&call) {
                a.do_send(SipEvent(call, CallEvent::Ended(reason)));
            }
        }
        CoreEvent::TrunkRegistration { trunk, registered } => {
            tracing::info!(trunk, registered, "trunk registration changed");
        }
    }
}

fn send(actors: &HashMap<CallRef, Addr<CallActor>>, call: CallRef, ev: CallEvent) {
    if let Some(a) = actors.get(&call) {
        a.do_send(SipEvent(call, ev));
    }
}

fn publish(
    core: &Core,
    metrics: &Arc<Mutex<Metrics>>,
    transports: &Arc<Transports>,
    ports: &Arc<RtpPorts>,
) {
    let now = crate::clock::now();
    let mut m = metrics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.transactions_live = core.tx.len() as u64;
    m.tx = core.tx.stats;
    m.dialogs = core.dialog_count() as u64;
    m.calls_live = core.live_calls() as u64;
    m.registrations = core.registrar.count(now) as u64;
    m.core = core.stats.clone();
    m.connections = transports.connection_count() as u64;
    m.connections_refused = transports
        .refused
        .load(std::sync::atomic::Ordering::Relaxed);
    m.rtp_ports_in_use = ports.in_use() as u64;
    m.trunks = core
        .cfg
        .trunks
        .iter()
        .filter(|t| t.register)
        .map(|t| {
            (
                t.name.clone(),
                core.trunk_registered(&t.name).unwrap_or(false),
            )
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_guard_contains_panics_and_gives_up_on_a_wedged_core() {
        let mut g = CoreGuard::new();
        let t0 = crate::clock::now();
        assert_eq!(g.run(t0, "x", || 7), Ok(Some(7)));
        // Twenty failures in 10 s are contained, one at a time.
        for i in 0..20 {
            let r = g.run(t0 + Duration::from_millis(i), "x", || -> u8 {
                panic!("boom")
            });
            assert_eq!(r, Ok(None), "failure {i}");
        }
        // The next within the window: the core is wedged.
        let r = g.run(t0 + Duration::from_secs(1), "x", || -> u8 {
            panic!("boom")
        });
        assert!(r.unwrap_err().contains("keeps failing"));
        // Spread out, failures are contained again.
        let r = g.run(t0 + Duration::from_secs(30), "x", || -> u8 {
            panic!("boom")
        });
        assert_eq!(r, Ok(None));
    }
}
