//! The contact centre's shared handle: agent accounts and their sessions, the router,
//! the live agents and chats. The HTTP API and the call actors reach the actors
//! through it; it decides nothing about routing itself.

mod mail;
pub mod privacy;
mod supervisors;

pub use supervisors::{Scope, Supervisor};

use crate::actors::agent::{AgentActor, Stop};
use crate::actors::chat::{ChatActor, ChatStart, Chats};
use crate::actors::router::{AddQueue, AgentLogin, Login, Logout, RouterActor};
use crate::config::{AgentConfig, Config, QueueConfig};
use crate::store::{AgentRow, QueueRow, Store};
use actix::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// An agent account: what they are (the config form, password left out) and the
/// password's hash.
#[derive(Clone, Debug)]
pub struct Account {
    pub spec: AgentConfig,
    pub hash: String,
    /// "config" (from the config file; read-only to the API) or "api".
    pub source: String,
}

/// A provider thread's key: (account, the customer's number).
type ThreadKey = (String, String);

struct Inner {
    store: Store,
    /// The knowledge base the bot answers from and agents search (reloaded on change
    /// by `run_kb_reload`).
    kb: Arc<crate::kb::Library>,
    kb_reload: std::time::Duration,
    /// The dialplans, for `[bot] flow` (set once by the server after loading them).
    flows: std::sync::OnceLock<Arc<crate::dialplan::Library>>,
    /// Where video calls from the chat are started (the SIP driver; set once by the
    /// server).
    web_calls:
        std::sync::OnceLock<tokio::sync::mpsc::Sender<crate::actors::webcall::WebCallRequest>>,
    /// New web chats start with the bot (`[chat] bot`).
    chat_bot: bool,
    /// When the bot hands over (`[bot]`).
    bot: crate::bot::BotConfig,
    router: Addr<RouterActor>,
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    accounts: Mutex<HashMap<String, Account>>,
    /// Failed logins by address and by user name.
    guard: Mutex<crate::logins::LoginGuard>,
    sessions: Mutex<crate::logins::Sessions>,
    agents: Mutex<HashMap<String, Addr<AgentActor>>>,
    chats: Chats,
    /// Live calls with an interaction (queued or with an agent), by interaction id.
    calls: Mutex<HashMap<String, Recipient<crate::actors::messages::AgentCall>>>,
    /// Agents without a phone take calls in the browser (`[webrtc] port` set).
    browser_calls: bool,
    webhooks: crate::webhooks::Webhooks,
    /// Where the node keeps its files (recordings, voicemail): an erasure deletes
    /// files under it only.
    data_dir: std::path::PathBuf,
    /// How long each kind of data is kept, and when the daily job runs.
    retention: crate::config::RetentionConfig,
    chat_queue: Option<String>,
    chat_priority: u8,
    greeting: String,
    chat_abandon_after: std::time::Duration,
    chat_max_open: usize,
    chat_max_waiting: usize,
    /// Chats not yet with an agent, by the queue they wait in.
    chat_waiting: crate::actors::chat::Waiting,
    /// New chats per source address.
    chat_starts: Mutex<crate::logins::RateLimit<std::net::IpAddr>>,
    /// Ended chats their customers may still rate.
    ratable: crate::actors::chat::Ratings,
    /// What the chat page says of the business (name, privacy notice and link).
    chat_page: ChatPage,
    /// Messaging accounts by name.
    /// Messaging accounts: the config file's (read-only, named in
    /// `config_channels`) and those added through the admin API (stored).
    channels: Mutex<HashMap<String, Arc<crate::config::ChannelConfig>>>,
    config_channels: std::collections::HashSet<String>,
    /// Open provider threads by (account, the customer's number).
    threads: crate::actors::chat::Threads,
    /// Threads being started, by (account, number): two first messages from one
    /// customer arriving together make one thread; different customers' start side
    /// by side. An entry lives while its thread starts.
    thread_starts: Mutex<HashMap<ThreadKey, Arc<tokio::sync::Mutex<()>>>>,
    /// The mailboxes, as the accounts their threads go through: the config file's
    /// (read-only, named in `config_mailboxes`) and those added through the admin API
    /// (stored).
    mailboxes: Mutex<HashMap<String, Arc<crate::config::ChannelConfig>>>,
    config_mailboxes: std::collections::HashSet<String>,
    /// Each mailbox's fetcher, to stop it when the mailbox changes or goes.
    fetchers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Fetchers run (`start_mail` was called): a mailbox added later starts its own.
    mail_started: std::sync::atomic::AtomicBool,
    /// How each mailbox's fetcher is doing.
    mail_status: crate::email::imap::Statuses,
    /// Bumped when an erasure leaves mail to delete on the mail servers: wakes the
    /// fetchers.
    mail_purge: tokio::sync::watch::Sender<u64>,
    /// Supervisors by name, and their sessions (apart from agents': an agent's token
    /// never acts as a supervisor's).
    supervisors: Mutex<HashMap<String, Supervisor>>,
    supervisor_sessions: Mutex<crate::logins::Sessions>,
    /// The key that signs our plus-address tokens (the store's, the same on every
    /// node), read once.
    mail_key: tokio::sync::OnceCell<Vec<u8>>,
}

/// What the chat page shows of the business.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatPage {
    pub business_name: String,
    pub privacy_notice: String,
    pub privacy_url: String,
}

#[derive(Clone)]
pub struct Centre(Arc<Inner>);

/// An argon2id hash in PHC form (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, the
/// OWASP minimum: 19 MiB, two passes), memory-hard against guessing on GPUs.
pub fn hash_password(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Whether a stored hash should be replaced at the next successful login (an older
/// scheme: iterated SHA-256).
pub fn needs_rehash(stored: &str) -> bool {
    !stored.starts_with("$argon2id$")
}

fn stretch(pw: &str, salt: &str, rounds: u32) -> String {
    let mut h: [u8; 32] = Sha256::new()
        .chain_update(salt)
        .chain_update(pw)
        .finalize()
        .into();
    for _ in 1..rounds {
        h = Sha256::new()
            .chain_update(h)
            .chain_update(pw)
            .finalize()
            .into();
    }
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a password against an argon2id hash, or the older `sha256i$ROUNDS$SALT$HASH`.
pub fn verify_password(pw: &str, stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        return PasswordHash::new(stored).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(pw.as_bytes(), &h)
                .is_ok()
        });
    }
    let mut p = stored.split('$');
    let (Some("sha256i"), Some(rounds), Some(salt), Some(hash), None) =
        (p.next(), p.next(), p.next(), p.next(), p.next())
    else {
        return false;
    };
    let Ok(rounds) = rounds.parse::<u32>() else {
        return false;
    };
    let got = stretch(pw, salt, rounds.clamp(1, 1_000_000));
    crate::sip::auth::constant_time_eq(got.as_bytes(), hash.as_bytes())
}

/// Checked against for unknown user names, so they cost what known ones do.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("\u{1}no such agent"));

/// Whether `password` matches the stored hash; the same work for a known and an
/// unknown name (`None`), off the async threads.
async fn password_matches(password: &str, stored: Option<String>) -> bool {
    let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || verify_password(&pw, &stored))
        .await
        .unwrap_or(false)
}

/// Sessions one agent may hold at once (more logins end the oldest).
pub const SESSIONS_PER_AGENT: usize = 8;

fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The router's view of an agent account.
pub fn login_of(a: &AgentConfig, browser_calls: bool) -> AgentLogin {
    let mut capacity: HashMap<_, _> = a
        .capacity
        .iter()
        .filter_map(|(c, n)| crate::routing::parse_channel(c).map(|c| (c, *n)))
        .collect();
    if a.extension.is_none() && !browser_calls {
        // No phone, and browser calls (`[webrtc] port = 0`) are off.
        capacity.remove(&crate::routing::engine::Channel::Voice);
        capacity.remove(&crate::routing::engine::Channel::Video);
    }
    AgentLogin {
        name: a.name.clone(),
        display: a.display_name.clone(),
        extension: a.extension.clone(),
        skills: a.skills.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        capacity,
        call_blocks_others: a.call_blocks_others,
        team: a.team.clone(),
        queues: a.queues.clone(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CentreError {
    #[error("wrong name or password")]
    BadLogin,
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    Throttled(std::time::Duration),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl Centre {
    /// Writes the config file's queues and agents to the store, loads everything the
    /// store holds and starts the router on its own Arbiter.
    pub async fn start(cfg: &Config, store: Store) -> Result<Centre, String> {
        let e = |e: crate::store::StoreError| e.to_string();
        let stored = store.agents().await.map_err(e)?;
        for a in cfg.effective_agents() {
            // Keep the stored hash while the password is unchanged (no re-hash per start).
            let hash = stored
                .iter()
                .find(|r| {
                    r.name == a.name
                        && r.source == "config"
                        && verify_password(&a.password, &r.password_hash)
                })
                .map(|r| r.password_hash.clone())
                .unwrap_or_else(|| hash_password(&a.password));
            let spec = AgentConfig {
                password: String::new(),
                ..a.clone()
            };
            store
                .put_agent(
                    &a.name,
                    &serde_json::to_value(&spec).unwrap_or_default(),
                    &hash,
                    "config",
                )
                .await
                .map_err(e)?;
        }
        for q in cfg.effective_queues() {
            store
                .put_queue(
                    &q.name,
                    &serde_json::to_value(&q).unwrap_or_default(),
                    "config",
                )
                .await
                .map_err(e)?;
        }
        let mut queues = vec![];
        for QueueRow { name, spec, .. } in store.queues().await.map_err(e)? {
            match serde_json::from_value::<QueueConfig>(spec) {
                Ok(q) => queues.push(q),
                Err(err) => {
                    tracing::error!(queue = %name, error = %err, "stored queue unreadable; skipped")
                }
            }
        }
        let mut accounts = HashMap::new();
        for row in store.agents().await.map_err(e)? {
            let AgentRow {
                name,
                spec,
                password_hash: hash,
                source,
            } = row;
            match serde_json::from_value::<AgentConfig>(spec) {
                Ok(spec) => {
                    accounts.insert(name, Account { spec, hash, source });
                }
                Err(err) => {
                    tracing::error!(agent = %name, error = %err, "stored agent unreadable; skipped")
                }
            }
        }
        let supervisors = supervisors::load(cfg, &store).await.map_err(e)?;
        // Agents on the floor when this node last stopped are off it now.
        let closed = store
            .close_agent_activity(crate::clock::unix_millis() as i64)
            .await
            .map_err(e)?;
        if closed > 0 {
            tracing::info!(
                agents = closed,
                "agents logged in at the last stop noted offline"
            );
        }
        let router = RouterActor::new(&queues)?.with_store(store.clone());
        let arb = Arbiter::new();
        let router = RouterActor::start_in_arbiter(&arb.handle(), move |_| router);
        let arbiters = (0..std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        tracing::info!(
            queues = queues.len(),
            agents = accounts.len(),
            "contact centre ready"
        );
        // The config's accounts, then those added through the API (a name the config
        // now has is the config's).
        let mut channels: HashMap<String, Arc<crate::config::ChannelConfig>> = cfg
            .effective_channels()
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(c)))
            .collect();
        let config_channels: std::collections::HashSet<String> = channels.keys().cloned().collect();
        for (name, spec) in store
            .accounts(crate::store::Accounts::Channel)
            .await
            .map_err(e)?
        {
            match serde_json::from_value::<crate::config::ChannelConfig>(spec) {
                Ok(c) if c.name == name && c.check().is_ok() => {
                    channels.entry(name).or_insert_with(|| Arc::new(c));
                }
                _ => {
                    tracing::warn!(account = %name, "a stored channel account no longer reads: left out")
                }
            }
        }
        let mut mailboxes: HashMap<String, Arc<crate::config::ChannelConfig>> = cfg
            .mailboxes
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    Arc::new(crate::config::ChannelConfig::of_mailbox(m)),
                )
            })
            .collect();
        let config_mailboxes: std::collections::HashSet<String> =
            mailboxes.keys().cloned().collect();
        for (name, spec) in store
            .accounts(crate::store::Accounts::Mailbox)
            .await
            .map_err(e)?
        {
            match serde_json::from_value::<crate::config::MailboxConfig>(spec) {
                Ok(m) if m.name == name && m.check().is_ok() => {
                    mailboxes
                        .entry(name)
                        .or_insert_with(|| Arc::new(crate::config::ChannelConfig::of_mailbox(&m)));
                }
                _ => tracing::warn!(mailbox = %name, "a stored mailbox no longer reads: left out"),
            }
        }
        let centre = Centre(Arc::new(Inner {
            store: store.clone(),
            router,
            arbiters,
            next: AtomicUsize::new(0),
            accounts: Mutex::new(accounts),
            guard: Mutex::new(crate::logins::LoginGuard::new(Default::default())),
            sessions: Mutex::new(crate::logins::Sessions::new(
                std::time::Duration::from_secs(cfg.http.session_idle_mins.max(1) * 60),
                SESSIONS_PER_AGENT,
            )),
            agents: Mutex::new(HashMap::new()),
            chats: Arc::new(Mutex::new(HashMap::new())),
            ratable: Default::default(),
            chat_page: ChatPage {
                business_name: cfg.chat.business_name.clone(),
                privacy_notice: cfg.chat.privacy_notice.clone(),
                privacy_url: cfg.chat.privacy_url.clone(),
            },
            calls: Mutex::new(HashMap::new()),
            browser_calls: cfg.webrtc.port != 0,
            data_dir: cfg.data.dir.clone(),
            retention: cfg.retention.clone(),
            webhooks: crate::webhooks::Webhooks::new(cfg.webhooks.clone())
                .with_store(store.clone()),
            kb: Arc::new(crate::kb::Library::new(&cfg.kb.dir, cfg.kb.threshold)),
            kb_reload: std::time::Duration::from_millis(cfg.kb.reload_ms.max(50)),
            flows: Default::default(),
            chat_bot: cfg.chat.bot,
            bot: cfg.bot.clone(),
            chat_queue: cfg.chat_queue(),
            chat_priority: cfg.chat.priority,
            greeting: cfg.chat.greeting.clone(),
            chat_abandon_after: std::time::Duration::from_secs(cfg.chat.abandon_after_secs.max(1)),
            chat_max_open: cfg.chat.max_open.max(1),
            chat_max_waiting: cfg.chat.max_waiting.max(1),
            chat_waiting: Default::default(),
            chat_starts: Mutex::new(crate::logins::RateLimit::new(
                cfg.chat.starts_per_minute,
                std::time::Duration::from_secs(60),
                10_000,
            )),
            channels: Mutex::new(channels),
            config_channels,
            threads: Default::default(),
            thread_starts: Mutex::new(HashMap::new()),
            mailboxes: Mutex::new(mailboxes),
            config_mailboxes,
            fetchers: Mutex::new(HashMap::new()),
            mail_started: Default::default(),
            mail_status: Default::default(),
            mail_purge: tokio::sync::watch::Sender::new(0),
            mail_key: tokio::sync::OnceCell::new(),
            web_calls: std::sync::OnceLock::new(),
            supervisors: Mutex::new(supervisors),
            supervisor_sessions: Mutex::new(crate::logins::Sessions::new(
                std::time::Duration::from_secs(cfg.http.session_idle_mins.max(1) * 60),
                SESSIONS_PER_AGENT,
            )),
        }));
        centre.resume_threads().await.map_err(|e| e.to_string())?;
        Ok(centre)
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn router(&self) -> &Addr<RouterActor> {
        &self.0.router
    }

    /// An agent account by name.
    fn account(&self, name: &str) -> Option<Account> {
        self.0
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn arbiter(&self) -> ArbiterHandle {
        let i = self.0.next.fetch_add(1, Ordering::Relaxed);
        self.0.arbiters[i % self.0.arbiters.len()].clone()
    }

    /// Logs an agent in (Available): a session token for the API.
    /// A login attempt from `from` (the connection's address, never a header): refused
    /// without checking the password while this address or this name is throttled.
    pub async fn login_from(
        &self,
        from: std::net::IpAddr,
        name: &str,
        password: &str,
    ) -> Result<String, CentreError> {
        self.throttled(from, name, self.login(name, password)).await
    }

    /// A login attempt under the guard: refused without being tried while `from` or
    /// `name` is throttled; a wrong password counted against both.
    async fn throttled(
        &self,
        from: std::net::IpAddr,
        name: &str,
        attempt: impl std::future::Future<Output = Result<String, CentreError>>,
    ) -> Result<String, CentreError> {
        let now = crate::clock::now();
        if let Err(wait) = self
            .0
            .guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(now, from, name)
        {
            return Err(CentreError::Throttled(wait));
        }
        let r = attempt.await;
        let mut g = self
            .0
            .guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &r {
            Ok(_) => g.succeeded(from, name),
            Err(CentreError::BadLogin) => {
                g.failed(crate::clock::now(), from, name);
                tracing::info!(%from, user = %crate::redact::Redacted(name), "login failed");
            }
            Err(_) => {}
        }
        r
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<String, CentreError> {
        let acc = self.account(name);
        let ok = password_matches(password, acc.as_ref().map(|a| a.hash.clone())).await;
        let Some(acc) = acc.filter(|_| ok) else {
            return Err(CentreError::BadLogin);
        };
        if needs_rehash(&acc.hash) {
            self.rehash(&acc, password).await;
        }
        let addr = {
            let mut agents = self
                .0
                .agents
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match agents.get(name).filter(|a| a.connected()) {
                Some(a) => a.clone(),
                // New, or its actor failed: a fresh one.
                None => {
                    let (n, r) = (name.to_string(), self.0.router.clone());
                    let a = AgentActor::start_in_arbiter(&self.arbiter(), move |_| {
                        AgentActor::new(n, Some(r.recipient()))
                    });
                    agents.insert(name.to_string(), a.clone());
                    a
                }
            }
        };
        self.0
            .router
            .send(Login {
                login: login_of(&acc.spec, self.0.browser_calls),
                addr: addr.recipient(),
            })
            .await
            .map_err(|e| CentreError::Internal(e.to_string()))?
            .map_err(|e| CentreError::Refused(e.to_string()))?;
        let t = token();
        self.0
            .sessions
            .lock()
            .unwrap()
            .create(crate::clock::now(), name, t.clone());
        tracing::info!(agent = %name, "agent logged in");
        Ok(t)
    }

    /// Replaces an older-scheme hash with argon2id after a successful login.
    async fn rehash(&self, acc: &Account, password: &str) {
        let pw = password.to_string();
        let Ok(hash) = tokio::task::spawn_blocking(move || hash_password(&pw)).await else {
            return;
        };
        let stored = serde_json::to_value(&acc.spec).unwrap_or_default();
        if let Err(e) = self
            .0
            .store
            .put_agent(&acc.spec.name, &stored, &hash, &acc.source)
            .await
        {
            tracing::warn!(agent = %acc.spec.name, error = %e, "cannot store the upgraded password hash");
            return;
        }
        if let Some(a) = self
            .0
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&acc.spec.name)
        {
            a.hash = hash;
        }
        tracing::info!(agent = %acc.spec.name, "password hash upgraded to argon2id");
    }

    /// Ends every session of the agent behind `token`.
    pub fn logout(&self, agent: &str) {
        self.0
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .end(agent);
        if let Some(a) = self
            .0
            .agents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(agent)
        {
            a.do_send(Stop);
        }
        self.0.router.do_send(Logout {
            agent: agent.to_string(),
            hand_over: false,
        });
        tracing::info!(%agent, "agent logged out");
    }

    /// The agent a session token belongs to.
    pub fn session(&self, token: &str) -> Option<String> {
        let now = crate::clock::now();
        self.0
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .touch(now, token)
    }

    /// Whether a session is still valid, without counting as a use.
    pub fn session_alive(&self, token: &str) -> bool {
        let now = crate::clock::now();
        self.0
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .alive(now, token)
    }

    /// The agent's actor, while it runs.
    pub fn agent_addr(&self, name: &str) -> Option<Addr<AgentActor>> {
        self.0
            .agents
            .lock()
            .unwrap()
            .get(name)
            .filter(|a| a.connected())
            .cloned()
    }

    pub fn accounts(&self) -> Vec<Account> {
        let mut v: Vec<_> = self
            .0
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        v
    }

    /// Creates or changes an agent made through the API (config-file agents are
    /// changed in the file). A logged-in agent gets the change at their next login.
    pub async fn put_agent(&self, spec: AgentConfig, create: bool) -> Result<(), CentreError> {
        let existing = self.account(&spec.name);
        match (&existing, create) {
            (Some(_), true) => {
                return Err(CentreError::Conflict(format!(
                    "agent \"{}\" exists",
                    spec.name
                )))
            }
            (None, false) => {
                return Err(CentreError::NotFound(format!(
                    "no agent named \"{}\"",
                    spec.name
                )))
            }
            (Some(a), _) if a.source == "config" => {
                return Err(CentreError::Conflict(format!(
                    "agent \"{}\" is defined in the config file; change it there",
                    spec.name
                )))
            }
            _ => {}
        }
        let hash = if spec.password.is_empty() {
            match &existing {
                Some(a) => a.hash.clone(),
                None => return Err(CentreError::Refused("password is required".into())),
            }
        } else {
            hash_password(&spec.password)
        };
        let stored = AgentConfig {
            password: String::new(),
            ..spec
        };
        self.0
            .store
            .put_agent(
                &stored.name,
                &serde_json::to_value(&stored).unwrap_or_default(),
                &hash,
                "api",
            )
            .await?;
        let changed_password = existing.is_some_and(|a| a.hash != hash);
        let name = stored.name.clone();
        self.0
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                stored.name.clone(),
                Account {
                    spec: stored,
                    hash,
                    source: "api".into(),
                },
            );
        if changed_password {
            // A new password ends every session made with the old one.
            self.logout(&name);
        }
        Ok(())
    }

    pub async fn delete_agent(&self, name: &str) -> Result<(), CentreError> {
        let acc = self.account(name);
        match acc {
            None => Err(CentreError::NotFound(format!("no agent named \"{name}\""))),
            Some(a) if a.source == "config" => Err(CentreError::Conflict(format!(
                "agent \"{name}\" is defined in the config file; remove it there"
            ))),
            Some(_) => {
                self.0.store.delete_agent(name).await?;
                self.0
                    .accounts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(name);
                self.logout(name);
                Ok(())
            }
        }
    }

    pub async fn add_queue(&self, q: QueueConfig) -> Result<(), CentreError> {
        self.0
            .router
            .send(AddQueue(q.clone()))
            .await
            .map_err(|e| CentreError::Internal(e.to_string()))?
            .map_err(|e| match e {
                crate::actors::router::QueueError::Exists(m) => CentreError::Conflict(m),
                crate::actors::router::QueueError::Invalid(m) => CentreError::Refused(m),
            })?;
        self.0
            .store
            .put_queue(
                &q.name,
                &serde_json::to_value(&q).unwrap_or_default(),
                "api",
            )
            .await?;
        Ok(())
    }

    /// A new chat from `from` (the connection's address), within the per-address rate.
    pub async fn start_chat_from(
        &self,
        from: std::net::IpAddr,
        name: &str,
        address: &str,
    ) -> Result<(String, String), CentreError> {
        let now = crate::clock::now();
        if let Err(wait) = self
            .0
            .chat_starts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(now, &from)
        {
            return Err(CentreError::Refused(format!(
                "too many new chats from your address: try again in {} s",
                wait.as_secs().max(1)
            )));
        }
        self.start_chat(name, address).await
    }

    /// A customer opens a chat. Who they say they are is only typed into a form: the
    /// chat is recorded without a customer, joins no case and gets no VIP or sticky
    /// routing until an agent verifies the identity ([`AgentAct::Verify`]); no customer
    /// record is created for it before then. Returns the interaction id and the
    /// customer's resume token.
    ///
    /// [`AgentAct::Verify`]: crate::actors::chat::AgentAct::Verify
    pub async fn start_chat(
        &self,
        name: &str,
        address: &str,
    ) -> Result<(String, String), CentreError> {
        let Some(queue) = self.0.chat_queue.clone() else {
            return Err(CentreError::Refused(
                "web chat is not configured ([chat] queue)".into(),
            ));
        };
        if self
            .0
            .chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
            >= self.0.chat_max_open
        {
            return Err(CentreError::Refused(
                "all our chat lines are busy: please try again in a few minutes".into(),
            ));
        }
        if crate::actors::chat::waiting_in(&self.0.chat_waiting, &queue) >= self.0.chat_max_waiting
        {
            return Err(CentreError::Refused(
                "all our agents are busy and many chats are waiting: please try again in a few minutes".into(),
            ));
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let t = token();
        let digest = crate::ratings::token_digest(&t);
        self.0
            .store
            .start_web_chat(&id, address, &digest, name, &queue)
            .await?;
        let start = ChatStart {
            name: name.to_string(),
            address: address.to_string(),
            priority: self.0.chat_priority,
            greeting: self.0.greeting.clone(),
            bot: self.bot_if(self.0.chat_bot),
            ..self.chat_start(&id, queue)
        };
        self.spawn_chat(start, digest);
        tracing::info!(interaction = %id, "chat started (identity unverified)");
        Ok((id, t))
    }

    /// `[bot]`: when the bot hands over, and an external bot's address and keys.
    pub fn bot_config(&self) -> &crate::bot::BotConfig {
        &self.0.bot
    }

    /// Gives the centre the served dialplans; with `[bot] flow`, that text flow must
    /// be among them (the reason it is not, otherwise).
    pub fn set_flows(&self, flows: Arc<crate::dialplan::Library>) -> Result<(), String> {
        let name = &self.0.bot.flow;
        if !name.is_empty() {
            use crate::dialplan::FlowSource;
            match flows.snapshot().flow(name) {
                None => {
                    return Err(format!(
                        "[bot] flow = \"{name}\": no flow of that name loaded from {}",
                        flows.dir().display()
                    ))
                }
                Some(f) if f.kind != crate::dialplan::model::Kind::Text => {
                    return Err(format!(
                        "[bot] flow = \"{name}\": {} is a call flow; a bot's flow has `kind: text`",
                        f.file.display()
                    ))
                }
                Some(_) => {}
            }
        }
        let _ = self.0.flows.set(flows);
        Ok(())
    }

    /// Agents without a phone take calls in the browser, and customers may call from
    /// the chat page (`[webrtc] port` set).
    pub fn browser_calls(&self) -> bool {
        self.0.browser_calls
    }

    /// Where video calls from the chat start (the SIP driver's queue).
    pub fn set_web_calls(
        &self,
        tx: tokio::sync::mpsc::Sender<crate::actors::webcall::WebCallRequest>,
    ) {
        let _ = self.0.web_calls.set(tx);
    }

    /// Starts a video call from the chat (see [`crate::actors::webcall`]): its link
    /// goes to `page`, before any of its frames.
    pub async fn start_web_call(
        &self,
        offer: String,
        address: String,
        escalation: crate::call::Escalation,
        page: Recipient<crate::actors::webcall::PageFrame>,
    ) -> Result<(), String> {
        if !self.0.browser_calls {
            return Err("video calls are off here (no [webrtc] port)".into());
        }
        let tx = self
            .0
            .web_calls
            .get()
            .ok_or("video calls are not running on this node")?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = crate::actors::webcall::WebCallRequest {
            offer,
            address,
            escalation,
            page,
            reply,
        };
        tx.try_send(req)
            .map_err(|_| "too many video calls are starting: try again in a moment")?;
        rx.await
            .map(|_| ())
            .map_err(|_| "the gateway is shutting down".to_string())
    }

    /// The bot for a new chat, when its channel has one: `[bot] flow`'s text flow as
    /// served now (a chat keeps that version), else the knowledge base alone.
    fn bot_if(&self, on: bool) -> Option<crate::actors::chat::BotSetup> {
        if !on {
            return None;
        }
        let name = &self.0.bot.flow;
        let flow = (!name.is_empty())
            .then(|| self.0.flows.get())
            .flatten()
            .and_then(|lib| {
                use crate::dialplan::FlowSource;
                let set = lib.snapshot();
                let f = set
                    .flow(name)
                    .filter(|f| f.kind == crate::dialplan::model::Kind::Text);
                if f.is_none() {
                    tracing::warn!(flow = %name, "the bot's flow is not loaded: the bot answers from the knowledge base");
                }
                Some((set, f?))
            });
        Some(crate::actors::chat::BotSetup {
            kb: self.0.kb.clone(),
            cfg: self.0.bot.clone(),
            flow,
        })
    }

    /// A chat of `queue` with what every chat shares (the store, the router, the
    /// registries); no customer, name or greeting yet.
    fn chat_start(&self, id: &str, queue: String) -> ChatStart {
        ChatStart {
            interaction: id.to_string(),
            customer: None,
            conversation: None,
            name: String::new(),
            address: String::new(),
            queue,
            priority: 5,
            greeting: String::new(),
            store: self.0.store.clone(),
            router: self.0.router.clone(),
            chats: self.0.chats.clone(),
            webhooks: self.0.webhooks.clone(),
            abandon_after: self.0.chat_abandon_after,
            waiting: self.0.chat_waiting.clone(),
            ratable: self.0.ratable.clone(),
            provider: None,
            resume: None,
            bot: None,
        }
    }

    /// The chat a customer's page reconnects to with its resume token.
    pub fn chat_for_customer(
        &self,
        chat: &str,
        token: &str,
    ) -> Result<Addr<ChatActor>, CentreError> {
        let Some((digest, addr)) = self.chat(chat) else {
            return Err(CentreError::NotFound("this chat has ended".into()));
        };
        // A provider thread has no token (its digest is empty): no page resumes it.
        if digest.is_empty()
            || !crate::sip::auth::constant_time_eq(
                digest.as_bytes(),
                crate::ratings::token_digest(token).as_bytes(),
            )
        {
            return Err(CentreError::Forbidden("wrong token for this chat".into()));
        }
        Ok(addr)
    }

    /// Starts a chat's actor: counted as waiting and registered before it starts, so
    /// its own `stopped` always finds both. `token`: the digest of the customer's
    /// resume token (empty for a provider thread).
    fn spawn_chat(&self, start: ChatStart, token: String) -> Addr<ChatActor> {
        crate::actors::chat::count_waiting(&self.0.chat_waiting, &start.queue, true);
        let id = start.interaction.clone();
        let mut chats = self
            .0
            .chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let addr = ChatActor::start_in_arbiter(&self.arbiter(), move |_| ChatActor::new(start));
        chats.insert(id, (token, addr.clone()));
        addr
    }

    /// Every messaging account, by name.
    pub fn channels(&self) -> Vec<Arc<crate::config::ChannelConfig>> {
        let mut v: Vec<_> = self
            .0
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A messaging account by name.
    pub fn channel(&self, name: &str) -> Option<Arc<crate::config::ChannelConfig>> {
        self.0
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The accounts as the admin API lists them: secrets shown only as set or not.
    pub fn channel_list(&self) -> Vec<serde_json::Value> {
        self.channels()
            .iter()
            .map(|a| {
                let mut v = serde_json::to_value(&**a).unwrap_or_default();
                for k in [
                    "app_secret",
                    "verify_token",
                    "access_token",
                    "auth_token",
                    "secret",
                ] {
                    let set = v[k].as_str().is_some_and(|s| !s.is_empty());
                    v[k] = serde_json::Value::Bool(set);
                }
                v["source"] = if self.0.config_channels.contains(&a.name) {
                    "config"
                } else {
                    "api"
                }
                .into();
                v["can_send"] = a.can_send().into();
                v
            })
            .collect()
    }

    /// Adds or replaces an account through the admin API (checked as the config file
    /// checks it; its queue must exist; the config file's accounts are read-only).
    /// Whether it is new. Threads already open keep the account they started with.
    pub async fn put_channel(&self, a: crate::config::ChannelConfig) -> Result<bool, CentreError> {
        if self.0.config_channels.contains(&a.name) {
            return Err(CentreError::Conflict(format!(
                "channel {} is in the config file: change it there",
                a.name
            )));
        }
        a.check().map_err(CentreError::Refused)?;
        self.queue_exists(&a.queue).await?;
        self.0
            .store
            .put_account(
                crate::store::Accounts::Channel,
                &a.name,
                &serde_json::to_value(&a).unwrap_or_default(),
            )
            .await?;
        let new = self
            .0
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(a.name.clone(), Arc::new(a))
            .is_none();
        Ok(new)
    }

    /// Refuses a queue the router does not have (for an account or mailbox that
    /// routes there).
    async fn queue_exists(&self, queue: &str) -> Result<(), CentreError> {
        let queues = self
            .0
            .router
            .send(crate::actors::router::QueueConfigs)
            .await
            .map_err(|e| CentreError::Internal(e.to_string()))?;
        if queues.iter().any(|q| q.name == queue) {
            Ok(())
        } else {
            Err(CentreError::Refused(format!("no queue named {queue:?}")))
        }
    }

    /// Removes an account added through the admin API (new messages for it get 404;
    /// its open threads go on to their end).
    pub async fn delete_channel(&self, name: &str) -> Result<(), CentreError> {
        if self.0.config_channels.contains(name) {
            return Err(CentreError::Conflict(format!(
                "channel {name} is in the config file: remove it there"
            )));
        }
        if !self
            .0
            .store
            .delete_account(crate::store::Accounts::Channel, name)
            .await?
        {
            return Err(CentreError::NotFound(format!(
                "no channel account {name:?}"
            )));
        }
        self.0
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    /// A customer's message through `account`, committed: stored on their thread (the
    /// open one, or a new one on their case, routed to the account's queue). Returns
    /// its number in the thread; a message the provider delivered before counts once.
    pub async fn channel_inbound(
        &self,
        account: &Arc<crate::config::ChannelConfig>,
        m: crate::channels::Incoming,
    ) -> Result<u64, CentreError> {
        let store = &self.0.store;
        if let Some(prev) = store.channel_message(&account.name, &m.id).await? {
            return Ok(prev.seq as u64);
        }
        // Sent before its sender was erased (a provider's late delivery): not taken,
        // so the erased data does not come back without a new contact.
        if let Some((kind, value)) = crate::store::identity_of(&m.from) {
            let kind = format!("identity:{}", kind.name());
            if let Some(erased_at) = store.tombstoned(&kind, &value).await? {
                if (m.at as i64).saturating_mul(1000) < erased_at {
                    tracing::info!(account = %account.name, "a message sent before its sender was erased: dropped");
                    return Ok(0);
                }
            }
        }
        if let Some(seq) = self.survey_reply(account, &m).await? {
            return Ok(seq);
        }
        let (id, addr) = self.thread_for(account, &m).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        addr.send(crate::actors::chat::Customer::Provider {
            id: m.id.clone(),
            text: m.text.clone(),
            at: m.at,
            done: tx,
        })
        .await
        .map_err(|e| CentreError::Internal(e.to_string()))?;
        let seq = rx
            .await
            .map_err(|_| CentreError::Internal("the thread ended".into()))?
            .map_err(CentreError::Refused)?;
        store
            .add_channel_message(&account.name, &m.id, &id, "in", seq as i64, "received")
            .await?;
        if account.is_opt_out(&m.text) {
            if let Some(c) = store.interaction(&id).await?.and_then(|i| i.customer_id) {
                let kind = account.marketing_consent(m.thread.as_deref().unwrap_or(&m.from));
                let channel = kind.split_once(':').map_or("any", |(_, ch)| ch);
                store
                    .record_consent(
                        c,
                        &crate::privacy::ConsentEvent {
                            purpose: crate::privacy::Purpose::Marketing,
                            channel: channel.into(),
                            granted: false,
                            source: "sms_keyword".into(),
                            evidence: serde_json::json!({"interaction": id, "message": m.id, "keyword": m.text.trim()}),
                            actor: "customer".into(),
                        },
                    )
                    .await?;
                store
                    .add_timeline(
                        &id,
                        "opted out",
                        serde_json::json!({"consent": kind, "word": m.text.trim()}),
                    )
                    .await?;
                tracing::info!(interaction = %id, customer = c, %kind, "marketing consent withdrawn");
            }
        }
        Ok(seq)
    }

    /// The customer's message, if it answers the survey question their last thread
    /// on `account` asked and no thread of theirs is open there: kept as that
    /// interaction's answer (see [`Centre::survey_answer`]), the message counted
    /// once, thanked (if the account says how); `Some(0)`. Anything else (`None`)
    /// is a new contact, and the question waits no more.
    async fn survey_reply(
        &self,
        account: &Arc<crate::config::ChannelConfig>,
        m: &crate::channels::Incoming,
    ) -> Result<Option<u64>, CentreError> {
        let Some(survey) = &account.survey else {
            return Ok(None);
        };
        let peer = m.thread.as_deref().unwrap_or(&m.from);
        let Some(id) = self
            .survey_answer(account, peer, &m.text, account.kind.name())
            .await?
        else {
            return Ok(None);
        };
        let store = &self.0.store;
        store
            .add_channel_message(&account.name, &m.id, &id, "in", 0, "survey answer")
            .await?;
        if !survey.thanks.is_empty() {
            let (account, to, thanks) = (account.clone(), peer.to_string(), survey.thanks.clone());
            actix::spawn(async move {
                let delivery = format!("{id}-survey-thanks");
                let sent =
                    crate::channels::send::system_text(&account, &to, &delivery, &thanks).await;
                if let Err(e) = sent {
                    tracing::warn!(interaction = %id, error = %e, "survey thanks not sent");
                }
            });
        }
        Ok(Some(0))
    }

    /// The interaction whose survey question `text` answers: the question waiting at
    /// `key` (a customer's address, an e-mail case's key) on `account`, where no
    /// thread is open, taken; if `text` starts with a score in range
    /// ([`crate::channels::survey::answer`]) it is kept (given on `channel`, with the
    /// comment: [`crate::store::Store::add_survey_of`]). `None`: no question waits
    /// there, or this is no answer (then it waits no more: a new contact).
    pub(crate) async fn survey_answer(
        &self,
        account: &crate::config::ChannelConfig,
        key: &str,
        text: &str,
        channel: &str,
    ) -> Result<Option<String>, CentreError> {
        use crate::kpi::event::Metric;
        if account.survey.is_none() {
            return Ok(None);
        }
        let open = self
            .0
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(account.name.clone(), key.to_string()));
        if open {
            return Ok(None);
        }
        let store = &self.0.store;
        let Some((id, metric)) = store.take_survey_ask(&account.name, key).await? else {
            return Ok(None);
        };
        let metric = Metric::from_name(Some(&metric)).unwrap_or(Metric::Csat);
        let Some((score, comment)) = crate::channels::survey::answer(metric, text) else {
            tracing::info!(interaction = %id, account = %account.name, "survey not answered: a new contact");
            return Ok(None);
        };
        store
            .add_survey_of(&id, channel, metric, score, &comment)
            .await?;
        tracing::info!(interaction = %id, metric = metric.name(), score, "survey answer");
        Ok(Some(id))
    }

    /// Takes up the provider threads a previous run left open (a restart, a crash):
    /// each gets its actor again with what it stored, is listed for its customer's
    /// next message, is queued again (sticky to the agent who had it), and sends what
    /// the provider had not taken. Returns how many.
    async fn resume_threads(&self) -> Result<usize, CentreError> {
        let store = &self.0.store;
        let mut n = 0;
        for i in store.open_threads().await? {
            let Some(account) = self.channel(&i.trunk).or_else(|| self.mailbox(&i.trunk)) else {
                tracing::warn!(interaction = %i.id, account = %i.trunk, "open thread of an account no longer configured: left as it is");
                continue;
            };
            let (past, ids) = self.stored_thread(&i.id).await?;
            // Taken by the provider, or given up on (failed, on the timeline): not
            // sent again.
            let mut sent: std::collections::HashSet<i64> =
                store.sent_seqs(&i.id).await?.into_iter().collect();
            sent.extend(
                store
                    .timeline(&i.id)
                    .await?
                    .iter()
                    .filter(|e| e.kind == "delivery failed")
                    .filter_map(|e| e.data["seq"].as_i64()),
            );
            let unsent = past
                .iter()
                .filter(|m| m.from == "agent" && !sent.contains(&(m.seq as i64)))
                .map(|m| {
                    let out =
                        crate::channels::whatsapp::Outgoing::of(&m.text, m.template.as_deref());
                    (m.seq, out)
                })
                .collect();
            let last_in = past
                .iter()
                .filter(|m| m.from == "customer")
                .map(|m| m.at / 1000)
                .max()
                .unwrap_or((i.started_at / 1000) as u64);
            let peer = if i.dialled.is_empty() {
                i.caller.clone()
            } else {
                i.dialled.clone()
            };
            // An e-mail thread is listed by its case.
            let key = match (account.kind, i.conversation_id) {
                (crate::config::ChannelKind::Email, Some(c)) => mail::thread_key(c),
                _ => peer.clone(),
            };
            let name = match i.customer_id {
                Some(c) => store.customer(c).await?.map(|r| r.name).unwrap_or_default(),
                None => String::new(),
            };
            let start = ChatStart {
                customer: i.customer_id,
                conversation: i.conversation_id,
                name,
                address: i.caller.clone(),
                priority: account.priority,
                provider: Some(crate::actors::chat::ProviderLink {
                    account: account.clone(),
                    peer: peer.clone(),
                    key: key.clone(),
                    threads: self.0.threads.clone(),
                    first_at: last_in,
                }),
                resume: Some(crate::actors::chat::Resume { past, ids, unsent }),
                ..self.chat_start(&i.id, account.queue.clone())
            };
            self.0
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((account.name.clone(), key), i.id.clone());
            self.spawn_chat(start, String::new());
            n += 1;
        }
        if n > 0 {
            tracing::info!(threads = n, "open threads taken up again");
        }
        Ok(n + self.resume_web_chats().await?)
    }

    /// What a thread stored: its messages, oldest first, and the senders' ids of
    /// those that have one (with their numbers).
    async fn stored_thread(
        &self,
        id: &str,
    ) -> Result<(Vec<crate::conversation::Message>, Vec<(String, u64)>), CentreError> {
        use crate::conversation::Message;
        let stored = self.0.store.interaction_messages(id).await?;
        Ok((
            stored.iter().filter_map(Message::from_stored).collect(),
            stored.iter().filter_map(Message::client_id_of).collect(),
        ))
    }

    /// Takes up the web chats a previous run left open: each gets its actor again
    /// with what it stored, queued again, waiting for the customer's page to come
    /// back with its token (closed as abandoned if it does not within the usual
    /// time). A chat without a kept session (started before sessions were kept) is
    /// ended as lost.
    async fn resume_web_chats(&self) -> Result<usize, CentreError> {
        let store = &self.0.store;
        let mut n = 0;
        for chat in store.open_web_chats().await? {
            let i = chat.interaction;
            let Some(session) = chat.session else {
                tracing::warn!(interaction = %i.id, "open web chat without a session to take up: ended");
                store.end_interaction(&i.id, "lost in a restart").await?;
                continue;
            };
            let (past, ids) = self.stored_thread(&i.id).await?;
            let start = ChatStart {
                customer: i.customer_id,
                conversation: i.conversation_id,
                name: session.name,
                address: i.caller.clone(),
                priority: self.0.chat_priority,
                resume: Some(crate::actors::chat::Resume {
                    past,
                    ids,
                    unsent: Vec::new(),
                }),
                ..self.chat_start(&i.id, session.queue)
            };
            self.spawn_chat(start, session.token_digest);
            n += 1;
        }
        if n > 0 {
            tracing::info!(chats = n, "open web chats taken up again");
        }
        Ok(n)
    }

    /// The customer's open thread on `account`, or a new one: an interaction of the
    /// account's kind from their number (the provider vouches for it: their record
    /// and open case), queued like a chat.
    async fn thread_for(
        &self,
        account: &Arc<crate::config::ChannelConfig>,
        m: &crate::channels::Incoming,
    ) -> Result<(String, Addr<ChatActor>), CentreError> {
        let peer = m.thread.clone().unwrap_or_else(|| m.from.clone());
        let key = (account.name.clone(), peer.clone());
        let lock = self
            .0
            .thread_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _one = lock.lock().await;
        // Gone from the map however this ends (its thread is listed by then, or not
        // started); a later start makes a new lock.
        struct Done<'a>(&'a Centre, ThreadKey);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                let mut m = self
                    .0
                     .0
                    .thread_starts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if m.get(&self.1).is_some_and(|l| Arc::strong_count(l) <= 2) {
                    m.remove(&self.1);
                }
            }
        }
        let _done = Done(self, key.clone());
        let live = |c: &Centre| {
            let id =
                c.0.threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned()?;
            let addr = c.chat(&id)?.1;
            Some((id, addr))
        };
        if let Some(t) = live(self) {
            return Ok(t);
        }
        if self.0.chats.lock().unwrap_or_else(|e| e.into_inner()).len() >= self.0.chat_max_open {
            return Err(CentreError::Refused(
                "all chat lines of this node are busy".into(),
            ));
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let (customer, conversation) = self
            .0
            .store
            .start_interaction(&crate::store::NewInteraction {
                id: &id,
                kind: account.kind.name(),
                direction: "inbound",
                from: &m.from,
                // Where replies go (a thread taken up after a restart finds it).
                dialled: &peer,
                trunk: &account.name,
                ..Default::default()
            })
            .await?;
        let p = crate::store::Provenance {
            source: account.kind.name(),
            interaction: Some(&id),
            actor: "",
        };
        let name = self
            .name_for(customer, m.name.clone().unwrap_or_default(), &p)
            .await?;
        let start = ChatStart {
            customer,
            conversation,
            name,
            address: m.from.clone(),
            priority: account.priority,
            provider: Some(crate::actors::chat::ProviderLink {
                account: account.clone(),
                key: peer.clone(),
                peer,
                threads: self.0.threads.clone(),
                first_at: m.at.min(crate::clock::unix_secs()),
            }),
            bot: self.bot_if(account.bot),
            ..self.chat_start(&id, account.queue.clone())
        };
        self.0
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, id.clone());
        let addr = self.spawn_chat(start, String::new());
        tracing::info!(interaction = %id, account = %account.name, "thread started");
        Ok((id, addr))
    }

    /// The name a thread shows for `customer`: a known customer keeps their record's
    /// name; a new record takes `given` (a profile name, an e-mail's display name).
    async fn name_for(
        &self,
        customer: Option<i64>,
        given: String,
        p: &crate::store::Provenance<'_>,
    ) -> Result<String, CentreError> {
        let mut name = given;
        if let Some(c) = customer {
            let named = !name.is_empty() && self.0.store.name_customer(c, &name, p).await?;
            if !named {
                if let Some(r) = self.0.store.customer(c).await? {
                    if !r.name.is_empty() {
                        name = r.name;
                    }
                }
            }
        }
        Ok(name)
    }

    /// The customer is typing (or stopped) on an open channel's `thread`: shown to its
    /// agent if the thread is live (whether it is).
    pub fn channel_typing(
        &self,
        account: &crate::config::ChannelConfig,
        thread: &str,
        on: bool,
    ) -> bool {
        let id = self
            .0
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(account.name.clone(), thread.to_string()))
            .cloned();
        match id.and_then(|id| self.chat(&id)) {
            Some((_, addr)) => {
                addr.do_send(crate::actors::chat::Customer::Typing(on));
                true
            }
            None => false,
        }
    }

    /// A provider's status (`sent`, `delivered`, `read`, `failed` with `error`) for our
    /// message `id`: on record if it moves the message forward, and on the agent's
    /// desktop if the thread is live. Whether the message is ours.
    pub async fn channel_status(
        &self,
        account: &crate::config::ChannelConfig,
        id: &str,
        status: &str,
        error: &str,
    ) -> Result<bool, CentreError> {
        let Some((m, changed)) = self
            .0
            .store
            .set_channel_status(&account.name, id, status, error)
            .await?
        else {
            return Ok(false);
        };
        if changed {
            if let Some((_, addr)) = self.chat(&m.interaction) {
                addr.do_send(crate::actors::chat::DeliveryNews {
                    seq: m.seq as u64,
                    status: m.status,
                    error: m.error,
                });
            }
        }
        Ok(true)
    }

    /// `agent`, working on `interaction` (a call, a chat), sends `text` to its
    /// customer's phone on another channel (`sms`, `whatsapp` or an account's name):
    /// on the case's timeline at once, then sent through the account in the background
    /// (retried while the provider fails; its statuses land on record; a failure on
    /// the timeline). A WhatsApp message needs the customer to have written within
    /// 24 hours (templates go in their thread). Returns (account, number).
    pub async fn send_on_channel(
        &self,
        interaction: &crate::store::Interaction,
        agent: &str,
        channel: &str,
        text: &str,
    ) -> Result<(String, String), CentreError> {
        if channel == "email" || self.mailbox(channel).is_some() {
            return self
                .email_on_channel(interaction, agent, channel, text)
                .await;
        }
        let accounts = self.channels();
        let account = crate::channels::account_for(&accounts, channel)
            .map_err(CentreError::Refused)?
            .clone();
        let store = &self.0.store;
        let customer = interaction.customer_id.ok_or_else(|| {
            CentreError::Conflict(
                "the customer is not identified on this interaction yet (verify them first)".into(),
            )
        })?;
        let to = store
            .customer(customer)
            .await?
            .map(|c| c.phone)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                CentreError::Conflict("the customer has no phone number on record".into())
            })?;
        if account.kind == crate::config::ChannelKind::Whatsapp {
            let last = store.last_inbound(&account.name, customer).await?;
            let now = crate::clock::unix_secs();
            if crate::channels::whatsapp::window_left(last.map(|ms| ms as u64 / 1000), now)
                .is_none()
            {
                let names: Vec<&str> = account.templates.iter().map(|t| t.name.as_str()).collect();
                return Err(CentreError::Conflict(format!(
                    "the customer has not written on WhatsApp ({}) in the last 24 hours: only an approved template may go (templates: {})",
                    account.name,
                    names.join(", ")
                )));
            }
        }
        let delivery = format!("{}-out-{:08x}", interaction.id, rand::random::<u32>());
        // Signed as their chat messages are: with the agent's display name.
        let display = self.display_name(agent);
        // The channel it goes on, whichever way the agent named it.
        let channel = match account.kind {
            crate::config::ChannelKind::Whatsapp => "whatsapp",
            _ => "sms",
        };
        store
            .add_timeline(
                &interaction.id,
                "message",
                serde_json::json!({"from": "agent", "agent": agent, "name": display, "text": text, "channel": channel, "account": account.name, "to": to, "delivery": delivery}),
            )
            .await?;
        tracing::info!(interaction = %interaction.id, account = %account.name, "message to the customer's phone queued");
        self.send_later(
            account.clone(),
            &interaction.id,
            &to,
            delivery,
            agent,
            crate::channels::whatsapp::Outgoing::Text {
                body: text.to_string(),
                reply_to: None,
            },
            false,
        );
        Ok((account.name.clone(), to))
    }

    /// An agent's name as customers see it (their display name, else their login).
    fn display_name(&self, agent: &str) -> String {
        self.0
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(agent)
            .map(|a| a.spec.display_name.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| agent.to_string())
    }

    /// Sends `m` to `to` through `a` in the background for `interaction` (retried
    /// while the provider fails): the provider's id on record once it takes it, a
    /// failure on the timeline with its reason; `end`: the interaction ends with the
    /// outcome (`sent`, `not sent`).
    #[allow(clippy::too_many_arguments)]
    fn send_later(
        &self,
        a: Arc<crate::config::ChannelConfig>,
        interaction: &str,
        to: &str,
        delivery: String,
        agent: &str,
        m: crate::channels::whatsapp::Outgoing,
        end: bool,
    ) {
        let (store, id, to, agent) = (
            self.0.store.clone(),
            interaction.to_string(),
            to.to_string(),
            agent.to_string(),
        );
        actix_rt::spawn(async move {
            let e = crate::channels::send::Envelope {
                to: &to,
                delivery: &delivery,
                agent: &agent,
            };
            let sent = crate::channels::send::deliver(&a, e, &m, &|_, _| {}).await;
            let r = match &sent {
                Ok(provider_id) => store
                    .add_channel_message(&a.name, provider_id, &id, "out", 0, "sent")
                    .await
                    .map(|_| ()),
                Err(e) => {
                    tracing::warn!(interaction = %id, account = %a.name, error = %e, "message to the customer's phone not sent");
                    store
                        .add_timeline(
                            &id,
                            "delivery failed",
                            serde_json::json!({"delivery": delivery, "error": e.to_string()}),
                        )
                        .await
                }
            };
            let r = match (r, end) {
                (Ok(()), true) => {
                    let outcome = if sent.is_ok() { "sent" } else { "not sent" };
                    store.end_interaction(&id, outcome).await
                }
                (r, _) => r,
            };
            if let Err(e) = r {
                tracing::warn!(interaction = %id, error = %e, "message outcome not recorded");
            }
        });
    }

    /// A proactive notification (`POST /api/notifications`) under `key`, its body's
    /// `digest`: at most once per key (a repeat gets the first answer; a key reused for
    /// another request is refused). Sent on the first channel of the customer's
    /// preference that can take it ([`crate::channels::notify::plan`]) as an outbound
    /// interaction on their open case, so their reply joins that conversation.
    /// Returns the HTTP status and the answer.
    pub async fn notify(
        &self,
        key: &str,
        digest: &str,
        r: &crate::channels::notify::Request,
    ) -> Result<(u16, serde_json::Value), CentreError> {
        let store = &self.0.store;
        // A request takes seconds; one unanswered after five minutes died with its node.
        const STALE_MS: i64 = 5 * 60 * 1000;
        if let Some((d, answer)) = store.claim_notification(key, digest, STALE_MS).await? {
            if d != digest {
                return Err(CentreError::Refused(
                    "this Idempotency-Key was used for another request".into(),
                ));
            }
            let v: serde_json::Value = serde_json::from_str(&answer).map_err(|_| {
                CentreError::Conflict(
                    "a request with this Idempotency-Key is still being handled".into(),
                )
            })?;
            let code = v["status"].as_u64().unwrap_or(200) as u16;
            return Ok((code, v["body"].clone()));
        }
        let answer = self.notify_once(key, r).await;
        let kept = match &answer {
            Ok((code, body)) => serde_json::json!({"status": code, "body": body}).to_string(),
            Err(_) => String::new(),
        };
        if kept.is_empty() {
            store.release_notification(key).await?;
        } else {
            store.answer_notification(key, &kept).await?;
        }
        answer
    }

    async fn notify_once(
        &self,
        key: &str,
        r: &crate::channels::notify::Request,
    ) -> Result<(u16, serde_json::Value), CentreError> {
        let store = &self.0.store;
        let customer = match (r.customer, r.identity.as_deref()) {
            (Some(c), None) => store
                .customer(c)
                .await?
                .ok_or_else(|| CentreError::NotFound(format!("no customer {c}")))?,
            (None, Some(i)) => {
                let c = store
                    .resolve_customer(i, &crate::store::Provenance::of("api"))
                    .await?
                    .ok_or_else(|| {
                        CentreError::Refused(format!("identity {i:?} is not an address"))
                    })?;
                store
                    .customer(c)
                    .await?
                    .ok_or_else(|| CentreError::NotFound(format!("no customer {c}")))?
            }
            _ => {
                return Err(CentreError::Refused(
                    "give the customer (id) or an identity (a phone number), one of them".into(),
                ))
            }
        };
        if customer.phone.is_empty() {
            return Err(CentreError::Conflict(
                "the customer has no phone number on record".into(),
            ));
        }
        let consents = store.consents(customer.id).await?;
        let accounts = self.channels();
        let plan = match crate::channels::notify::plan(r, &accounts, |k| {
            let channel = k.split_once(':').map_or("any", |(_, ch)| ch);
            crate::privacy::withdrawn(&consents, crate::privacy::Purpose::Marketing, channel)
        }) {
            Ok(p) => p,
            Err(why) => {
                return Ok((
                    409,
                    serde_json::json!({"error": format!("no channel could take it: {}", why.join("; ")), "reasons": why}),
                ))
            }
        };
        let id = format!("{:016x}", rand::random::<u64>());
        store
            .start_interaction(&crate::store::NewInteraction {
                id: &id,
                kind: plan.account.kind.name(),
                direction: "outbound",
                from: &customer.phone,
                trunk: &plan.account.name,
                ..Default::default()
            })
            .await?;
        let (text, template) = match &plan.message {
            crate::channels::whatsapp::Outgoing::Text { body, .. } => (body.clone(), None),
            crate::channels::whatsapp::Outgoing::Template {
                name, parameters, ..
            } => (
                format!("[template {name}] {}", parameters.join(" | ")),
                Some(serde_json::json!({"name": name, "parameters": parameters})),
            ),
        };
        store
            .add_timeline(
                &id,
                "message",
                serde_json::json!({"from": "business", "notification": key, "text": text, "template": template, "channel": plan.channel, "account": plan.account.name, "to": customer.phone, "marketing": r.marketing}),
            )
            .await?;
        tracing::info!(interaction = %id, account = %plan.account.name, "notification queued");
        self.send_later(
            plan.account.clone(),
            &id,
            &customer.phone,
            format!("{id}-1"),
            "",
            plan.message,
            true,
        );
        Ok((
            202,
            serde_json::json!({"status": "queued", "interaction": id, "customer": customer.id, "channel": plan.channel, "account": plan.account.name, "to": customer.phone}),
        ))
    }

    /// A call joins (or leaves, `None`) the live calls agents can act on.
    pub fn set_call(
        &self,
        interaction: &str,
        addr: Option<Recipient<crate::actors::messages::AgentCall>>,
    ) {
        let mut calls = self
            .0
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match addr {
            Some(a) => calls.insert(interaction.to_string(), a),
            None => calls.remove(interaction),
        };
    }

    /// The node stops (its calls are over): once the router's activity log has
    /// written what it was given, every agent still on the floor is noted `offline`
    /// now, so their time while the node is down is not counted as available (a
    /// crash is closed at the next start instead). Bounded: 5 s at most.
    pub async fn close_activity(&self) {
        let wait = async {
            if let Ok(Some(written)) = self
                .0
                .router
                .send(crate::actors::router::CloseActivity)
                .await
            {
                let _ = written.await;
            }
            self.0
                .store
                .close_agent_activity(crate::clock::unix_millis() as i64)
                .await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), wait).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(agents = n, "agents on the floor noted offline at the stop")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "agents' activity not closed at the stop"),
            Err(_) => tracing::warn!("agents' activity not closed at the stop: the store is slow"),
        }
    }

    /// A live call by interaction id.
    pub fn call(&self, interaction: &str) -> Option<Recipient<crate::actors::messages::AgentCall>> {
        self.0
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(interaction)
            .cloned()
    }

    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.0.webhooks
    }

    /// The knowledge base serving now.
    pub fn kb(&self) -> Arc<crate::kb::Matcher> {
        self.0.kb.matcher()
    }

    /// Loads the knowledge base, then re-reads it whenever a file changes (off the
    /// runtime's threads); each reload is logged with its problems.
    pub async fn run_kb_reload(self) {
        loop {
            let lib = self.0.kb.clone();
            match tokio::task::spawn_blocking(move || lib.reload()).await {
                Ok(Some(r)) => {
                    for p in &r.problems {
                        tracing::warn!(problem = %p, "knowledge base: refused");
                    }
                    tracing::info!(
                        articles = r.articles,
                        files = r.files,
                        problems = r.problems.len(),
                        dir = %self.0.kb.dir().display(),
                        "knowledge base loaded"
                    );
                }
                Ok(None) => {}
                Err(_) => break,
            }
            tokio::time::sleep(self.0.kb_reload).await;
        }
    }

    /// A customer's card, recent interactions and the timeline of their open case (the
    /// screen-pop; `None`: no such customer).
    pub async fn customer_view(
        &self,
        id: i64,
    ) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
        self.store().customer_view(id).await
    }

    /// The customer rates their chat (`score` 1 to 5, a comment): once, with the
    /// chat's token, within an hour of its end. Kept as the interaction's survey answer.
    pub async fn rate_chat(
        &self,
        interaction: &str,
        token: &str,
        score: u8,
        comment: &str,
        more: &[(&'static str, u8)],
    ) -> Result<(), CentreError> {
        let ok = self
            .0
            .ratable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(crate::clock::now(), interaction, token);
        if !ok {
            return Err(CentreError::Forbidden(
                "this chat cannot be rated: it was rated already, ended over an hour ago, or the token is wrong".into(),
            ));
        }
        self.0
            .store
            .add_survey_answer(interaction, "webchat", score.into(), comment)
            .await?;
        for (metric, score) in more {
            self.0
                .store
                .add_survey_score(interaction, metric, (*score).into(), "")
                .await?;
        }
        Ok(())
    }

    /// What the chat page says of the business.
    pub fn chat_page(&self) -> &ChatPage {
        &self.0.chat_page
    }

    /// Chats waiting for an agent, by queue.
    pub fn chat_waiting(&self) -> &crate::actors::chat::Waiting {
        &self.0.chat_waiting
    }

    /// The chat queue's name, if the chat is on.
    pub fn chat_queue(&self) -> Option<&str> {
        self.0.chat_queue.as_deref()
    }

    /// A live chat by interaction id.
    pub fn chat(&self, interaction: &str) -> Option<(String, Addr<ChatActor>)> {
        self.0
            .chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(interaction)
            .cloned()
    }
}
