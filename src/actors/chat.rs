//! The `ChatActor`: one per web chat, the driver of its [`conversation::Thread`] (which
//! decides: numbering, store-before-tell, de-duplication, replay, the end's order). The
//! actor carries the thread's outputs to the store, the customer's socket, the agent
//! and the router, and feeds back the store's answers; around it, what is the chat's
//! and not the thread's: routing events, the identity check, abandonment, webhooks.
//!
//! [`conversation::Thread`]: crate::conversation::Thread

use super::agent::AgentPush;
use super::in_order::{wait_in_order, InOrder, Waits};
use super::router::{Ended, Enqueue, RouterActor, Work, WorkEvent};
use crate::conversation::{Input, Limits, Output, Thread};
use crate::routing::engine::Channel;
use crate::store::Store;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;

/// Messages one chat may hold; the customer is asked to start a new chat beyond.
pub const MAX_MESSAGES: usize = 1000;
/// Messages kept in memory; older ones are read back from the store when a page or
/// an agent needs them.
pub const RECENT: usize = 100;
/// The customer's messages allowed per 10 seconds.
pub const MESSAGES_PER_10S: u32 = 10;
/// A provider thread's customer messages per 10 seconds (beyond, the webhook is
/// answered 503 and the provider delivers them again later).
pub const PROVIDER_MESSAGES_PER_10S: u32 = 100;
/// What the customer's socket may have waiting (a whole replay fits).
pub const SOCKET_QUEUE: usize = MAX_MESSAGES + 64;

/// Live chats by interaction id: (the customer's resume token, the actor).
pub type Chats = Arc<Mutex<HashMap<String, (String, Addr<ChatActor>)>>>;

/// Chats waiting for an agent (not assigned), by queue.
pub type Waiting = Arc<Mutex<HashMap<String, usize>>>;

/// How many chats wait in `queue`.
pub fn waiting_in(w: &Waiting, queue: &str) -> usize {
    w.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(queue)
        .copied()
        .unwrap_or(0)
}

/// One more (`up`) or one fewer chat waiting in `queue`.
pub fn count_waiting(w: &Waiting, queue: &str, up: bool) {
    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
    let n = w.entry(queue.to_string()).or_default();
    if up {
        *n += 1;
    } else {
        *n = n.saturating_sub(1);
        if *n == 0 {
            w.remove(queue);
        }
    }
}

/// Everything a new chat starts from.
pub struct ChatStart {
    pub interaction: String,
    pub customer: Option<i64>,
    pub conversation: Option<i64>,
    pub name: String,
    pub address: String,
    pub queue: String,
    pub priority: u8,
    pub greeting: String,
    pub store: Store,
    pub router: Addr<RouterActor>,
    pub chats: Chats,
    /// Where the screen-pop goes besides the agent's desktop (a CRM).
    pub webhooks: crate::webhooks::Webhooks,
    /// The chat is closed as abandoned when the customer has been gone this long.
    pub abandon_after: std::time::Duration,
    /// Where this chat is counted while no agent has it (counted by the starter).
    pub waiting: Waiting,
    /// Where a chat that closed goes, so its customer may rate it.
    pub ratable: Ratings,
    /// A thread whose customer writes through a provider (WhatsApp), not a page.
    pub provider: Option<ProviderLink>,
    /// A thread taken up again after a restart: what it had stored, and the agent's
    /// messages the provider had not taken yet (sent again, in order).
    pub resume: Option<Resume>,
    /// The bot owns the chat until it hands it off; `None`: queued at once.
    pub bot: Option<BotSetup>,
}

/// What a chat's bot answers from and when it hands over.
#[derive(Clone)]
pub struct BotSetup {
    pub kb: Arc<crate::kb::Library>,
    pub cfg: crate::bot::BotConfig,
    /// `[bot] flow`: the text flow the bot runs, with the flows it may `goto` (a
    /// snapshot: a chat keeps the version it started with).
    pub flow: Option<(Arc<crate::dialplan::FlowSet>, Arc<crate::dialplan::Flow>)>,
}

/// The channel as the bot knows it (the answer's form follows it).
fn bot_channel(provider: &Option<ProviderLink>) -> &'static str {
    match provider {
        None => "webchat",
        Some(p) if p.is_whatsapp() => "whatsapp",
        Some(p) => match p.account.kind {
            crate::config::ChannelKind::Twilio => "sms",
            crate::config::ChannelKind::Email => "email",
            _ => "webchat",
        },
    }
}

/// See [`ChatStart::resume`].
#[derive(Default)]
pub struct Resume {
    pub past: Vec<crate::conversation::Message>,
    /// The provider's ids of the customer's stored messages, with their numbers.
    pub ids: Vec<(String, u64)>,
    pub unsent: Vec<(u64, crate::channels::whatsapp::Outgoing)>,
}

/// Open provider threads by (account, the customer's number): the interaction id.
pub type Threads = Arc<Mutex<HashMap<(String, String), String>>>;

/// A thread whose customer writes through a provider: their messages come by webhook
/// (each answered once stored); the agent's go out through the provider's API, one
/// at a time in order, retried with back-off while the provider fails.
#[derive(Clone)]
pub struct ProviderLink {
    pub account: Arc<crate::config::ChannelConfig>,
    /// Where replies go: the customer's number (E.164), an open channel's thread, an
    /// e-mail address.
    pub peer: String,
    /// Its key in [`Threads`] beside the account: the peer, or an e-mail thread's
    /// case (`case:42`).
    pub key: String,
    /// Where this thread is listed while open.
    pub threads: Threads,
    /// When the customer sent the message that opened it (Unix s).
    pub first_at: u64,
}

impl ProviderLink {
    /// A WhatsApp thread: Meta's own, or WhatsApp through Twilio (`whatsapp:+…`).
    pub fn is_whatsapp(&self) -> bool {
        self.account.kind == crate::config::ChannelKind::Whatsapp
            || self
                .peer
                .starts_with(crate::channels::twilio::WHATSAPP_PREFIX)
    }
}

/// Ended chats their customers may still rate.
pub type Ratings = Arc<Mutex<crate::ratings::Ratable>>;

pub struct ChatActor {
    s: ChatStart,
    /// The messages and their rules.
    thread: Thread,
    /// Who waits for a reply from the thread (an agent's message, a close).
    replies: HashMap<u64, oneshot::Sender<Result<u64, String>>>,
    next_reply: u64,
    /// Counted in [`ChatStart::waiting`].
    is_waiting: bool,
    socket: Option<Sender<String>>,
    /// The agent's name as the customer sees it (their display name).
    agent_display: String,
    /// Bumped at each (re)connect and departure: a pending abandonment check only
    /// closes the chat if nothing happened since.
    presence: u64,
    agent: Option<(String, Recipient<AgentPush>)>,
    /// `stopped()` ran (a drop without it is a failure, see `crate::panics`).
    wound_up: bool,
    /// A provider thread: when the customer last wrote (Unix s; the reply window).
    last_inbound: Option<u64>,
    /// A provider thread: the agent's messages not yet taken by the provider, the
    /// first one in flight when `sending`.
    outbox: std::collections::VecDeque<(u64, crate::channels::whatsapp::Outgoing)>,
    sending: bool,
    /// A provider thread: the agent's messages that failed (the agent may retry them;
    /// at most the thread's messages).
    failed: std::collections::BTreeSet<u64>,
    /// Taken up again after a restart.
    resumed: bool,
    /// Supervisors' consoles following the chat live (at most [`MAX_WATCHERS`]; one
    /// that does not read is dropped).
    watchers: Vec<(String, Sender<String>)>,
    /// A provider thread that ended: its survey goes once the agent's last messages
    /// have (it must not overtake them).
    survey_due: bool,
    /// The first-level bot while it owns the chat (see [`ChatStart::bot`]).
    bot: Option<crate::bot::Bot>,
    /// Skills the bot's flow asked for at hand-off (routing's).
    skills: Vec<String>,
    /// Customer messages sent to an external bot (their events' ids).
    bot_forwarded: u64,
    /// Store writes waiting, made in the order asked for.
    waits: Waits<Self>,
    /// The customer's video call with the agent (see [`crate::actors::webcall`]):
    /// being started, or its link (dropping it hangs up).
    video_starting: bool,
    video: Option<crate::actors::webcall::WebCallLink>,
    /// The customer hung up while their call was starting: it ends once started.
    video_hangup: bool,
    /// Video calls started in this chat (at most [`MAX_VIDEO_CALLS`]).
    video_calls: u32,
}

/// Video calls one chat may start (each rings its agent): beyond, the customer is
/// told to go on in writing.
pub const MAX_VIDEO_CALLS: u32 = 10;

impl InOrder for ChatActor {
    fn waits(&mut self) -> &mut Waits<Self> {
        &mut self.waits
    }
}

/// Consoles that may follow one chat.
pub const MAX_WATCHERS: usize = 8;
/// What a console may have waiting from one chat before it is dropped.
pub const WATCH_QUEUE: usize = 64;

impl ChatActor {
    pub fn new(mut s: ChatStart) -> ChatActor {
        let limits = Limits {
            max_messages: MAX_MESSAGES,
            recent: RECENT,
            // A provider's customer cannot be told to slow down (their messages
            // are already sent): only a page's are rate-limited.
            customer_rate: if s.provider.is_some() {
                PROVIDER_MESSAGES_PER_10S
            } else {
                MESSAGES_PER_10S
            },
            rate_window: std::time::Duration::from_secs(10),
        };
        let last_inbound = s.provider.as_ref().map(|p| p.first_at);
        let resume = s.resume.take();
        let resumed = resume.is_some();
        let (thread, outbox) = match resume {
            Some(r) => (
                Thread::resume(limits, s.name.clone(), r.past, r.ids),
                r.unsent.into_iter().collect(),
            ),
            None => (
                Thread::new(limits, s.name.clone()),
                std::collections::VecDeque::new(),
            ),
        };
        // A chat taken up after a restart goes to the queue (the bot's state is not
        // kept).
        let bot = s.bot.as_ref().filter(|_| !resumed).map(|b| match &b.flow {
            Some((set, flow)) => {
                let info = crate::dialplan::CallInfo {
                    caller: s.address.clone(),
                    caller_name: s.name.clone(),
                    dialled: String::new(),
                    trunk: String::new(),
                    call_id: s.interaction.clone(),
                };
                let run = crate::dialplan::Run::new(set.clone(), flow.clone(), &info);
                crate::bot::Bot::with_flow(b.cfg.clone(), run, bot_channel(&s.provider))
            }
            None => crate::bot::Bot::new(b.cfg.clone()),
        });
        ChatActor {
            thread,
            s,
            replies: HashMap::new(),
            next_reply: 0,
            bot_forwarded: 0,
            waits: Waits::default(),
            video_starting: false,
            video: None,
            video_hangup: false,
            video_calls: 0,
            is_waiting: true,
            socket: None,
            agent_display: String::new(),
            presence: 0,
            agent: None,
            wound_up: false,
            last_inbound,
            outbox,
            sending: false,
            failed: std::collections::BTreeSet::new(),
            resumed,
            watchers: Vec::new(),
            survey_due: false,
            bot,
            skills: Vec::new(),
        }
    }

    /// Puts the chat in its queue (on the record first), with `extra` details for
    /// the screen-pop (the bot's summary and transcript).
    fn enqueue(&mut self, ctx: &mut Context<Self>, extra: serde_json::Value) {
        let (channel, details) = match &self.s.provider {
            // The provider vouches for the number: the customer's record and case.
            Some(p) => (
                match p.account.kind {
                    _ if p.is_whatsapp() => Channel::Whatsapp,
                    crate::config::ChannelKind::Twilio => Channel::Sms,
                    crate::config::ChannelKind::Whatsapp => Channel::Whatsapp,
                    crate::config::ChannelKind::Open => Channel::Api,
                    crate::config::ChannelKind::Email => Channel::Email,
                },
                {
                    let mut d = serde_json::json!({"customer.name": self.s.name, "address": self.s.address, "verified": true, "account": p.account.name});
                    if let Some(until) = self.window_until() {
                        d["window_until"] = until.into();
                    }
                    // What the desktop offers once the window has closed.
                    if p.is_whatsapp() {
                        d["templates"] = serde_json::json!(p.account.templates);
                    }
                    d
                },
            ),
            // Typed by the customer: the desktop shows it as unverified.
            None => (
                Channel::Chat,
                serde_json::json!({"name": self.s.name, "address": self.s.address, "verified": self.s.customer.is_some()}),
            ),
        };
        let mut details = details;
        // The bot's own details (`bot.*`) are set; what its flow collected never
        // replaces the gateway's (`verified`, `address`, `account`...).
        if let (Some(d), Some(x)) = (details.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                if k.starts_with("bot.") {
                    d.insert(k.clone(), v.clone());
                } else {
                    d.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let work = Work {
            interaction: self.s.interaction.clone(),
            channel,
            queue: self.s.queue.clone(),
            customer: self.s.customer,
            conversation: self.s.conversation,
            from: if self.s.name.is_empty() {
                self.s.address.clone()
            } else {
                format!("{} <{}>", self.s.name, self.s.address)
            },
            details,
            owner: ctx.address().recipient(),
        };
        let (store, id, queue) = (
            self.s.store.clone(),
            self.s.interaction.clone(),
            self.s.queue.clone(),
        );
        // Queued on the record first, then to the router (in that order:
        // `wait_in_order`, as actix would run two `ctx.wait`s last-pushed first).
        wait_in_order(
            self,
            ctx,
            async move {
                store
                    .update_interaction(
                        &id,
                        &crate::store::InteractionUpdate {
                            queue: Some(&queue),
                            ..Default::default()
                        },
                    )
                    .await
            }
            .into_actor(self)
            .map(|r, act, _| {
                if let Err(e) = r {
                    tracing::warn!(interaction = %act.s.interaction, error = %e, "cannot record the queue");
                }
            }),
        );
        let router = self.s.router.clone();
        let priority = self.s.priority;
        let skills = self.skills.clone();
        // No VIP, sticky agent or repeat-contact routing for an identity nobody has
        // verified; a provider's number is vouched for, so its customer gets them.
        let vouched = self.s.customer.filter(|_| self.s.provider.is_some());
        let (store, id) = (self.s.store.clone(), self.s.interaction.clone());
        wait_in_order(
            self,
            ctx,
            async move {
                let hints = match vouched {
                    Some(c) => store.routing_hints(c, &id).await.unwrap_or_else(|e| {
                        tracing::warn!(interaction = %id, error = %e, "routing without the customer's history");
                        Default::default()
                    }),
                    None => Default::default(),
                };
                router
                    .send(Enqueue {
                        work,
                        priority,
                        skills: skills.into_iter().map(|s| (s, 1)).collect(),
                        vip: hints.vip,
                        last_agent: hints.last_agent,
                        repeat: hints.repeat,
                        only: None,
                    })
                    .await
            }
            .into_actor(self)
            .map(|r, act, ctx| {
                if let Err(e) = r
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                {
                    tracing::warn!(interaction = %act.s.interaction, error = %e, "chat not queued");
                    act.system(
                        ctx,
                        format!("Sorry, this chat cannot reach an agent ({e})."),
                    );
                    act.close(ctx, "system", None);
                }
            }),
        );
    }

    /// A customer's message (from their page, or a provider's with `reply`) goes to
    /// the thread; while the bot owns the chat it hears it too, but only if the
    /// thread numbered it as new (not a page's resend or a provider's redelivery,
    /// not one refused for its length or pace).
    fn customer_says(
        &mut self,
        ctx: &mut Context<Self>,
        id: String,
        text: String,
        reply: Option<u64>,
    ) {
        let heard = self
            .bot
            .as_ref()
            .is_some_and(|b| b.owned())
            .then(|| (text.clone(), self.thread.last_seq()));
        self.feed(ctx, Input::CustomerSays { id, text, reply });
        if let Some((text, before)) = heard {
            if self.thread.last_seq() > before {
                self.tell_bot(ctx, &text);
            }
        }
    }

    /// The customer wrote `text`: while the bot owns the chat it answers, and hands
    /// the chat to the queue with what it learned.
    fn tell_bot(&mut self, ctx: &mut Context<Self>, text: &str) {
        if !self.bot.as_ref().is_some_and(|b| b.owned()) {
            return;
        }
        // The answer's form follows the channel (short on SMS and WhatsApp). A mail
        // is its subject and its new text (`email::parse::for_agent`, quotes folded):
        // the bot reads both as the customer's words.
        let channel = bot_channel(&self.s.provider);
        let text = match text.strip_prefix("Subject: ") {
            Some(rest) if channel == "email" => rest.replacen("\n\n", "\n", 1),
            _ => text.to_string(),
        };
        let input = crate::bot::Input::CustomerSays {
            text,
            channel: channel.into(),
            lang: None,
        };
        self.bot_input(ctx, input);
    }

    /// An external bot's turn: the customer's message POSTed to it (see
    /// [`crate::channels::send::to_bot`]); if it cannot be reached, a person takes over.
    fn forward_to_bot(&mut self, ctx: &mut Context<Self>, text: String) {
        let Some(cfg) = self.s.bot.as_ref().map(|b| b.cfg.clone()) else {
            return;
        };
        self.bot_forwarded += 1;
        let id = &self.s.interaction;
        let body = serde_json::json!({"events": [{
            "id": format!("{id}.{}", self.bot_forwarded),
            "type": "message",
            "conversation": id,
            "channel": bot_channel(&self.s.provider),
            "name": self.s.name,
            "text": text,
            "at": crate::clock::unix_millis(),
        }]})
        .to_string();
        ctx.spawn(
            async move { crate::channels::send::to_bot(&cfg, body).await }
                .into_actor(self)
                .map(|r, act, ctx| {
                    if let Err(e) = r {
                        tracing::warn!(interaction = %act.s.interaction, error = %e, "the bot did not take the customer's message: a person takes over");
                        act.bot_input(ctx, crate::bot::Input::BotUnreachable { why: e.to_string() });
                    }
                }),
        );
    }

    /// Hands the bot `input` and carries out what it decides.
    fn bot_input(&mut self, ctx: &mut Context<Self>, input: crate::bot::Input) {
        let (Some(bot), Some(b)) = (self.bot.as_mut(), self.s.bot.as_ref()) else {
            return;
        };
        bot.handle(crate::clock::unix_millis(), input, &b.kb.matcher());
        self.bot_says(ctx);
    }

    /// Carries out what the bot decided.
    fn bot_says(&mut self, ctx: &mut Context<Self>) {
        let Some(bot) = self.bot.as_mut() else {
            return;
        };
        let out: Vec<crate::bot::Output> = std::iter::from_fn(|| bot.poll()).collect();
        for o in out {
            match o {
                crate::bot::Output::Reply { text, .. } => self.feed(ctx, Input::BotSays(text)),
                crate::bot::Output::Handoff(h) => {
                    tracing::info!(interaction = %self.s.interaction, reason = h.reason.as_str(), intent = ?h.intent, "the bot hands the chat over");
                    let transcript: Vec<String> = h
                        .transcript
                        .iter()
                        .map(|t| format!("{}: {}", t.from, t.text))
                        .collect();
                    // The KPIs' bot stage ends here (queue time starts).
                    self.event(
                        ctx,
                        "bot ended",
                        serde_json::json!({"handoff": true, "reason": h.reason.as_str(), "intent": h.intent, "summary": h.summary}),
                    );
                    let mut d = serde_json::json!({
                        "bot.summary": h.summary,
                        "bot.transcript": transcript.join("\n"),
                    });
                    if let Some(i) = &h.intent {
                        d["bot.intent"] = i.as_str().into();
                    }
                    // What the flow collected, for the screen-pop (`enqueue` keeps
                    // the gateway's own details over these).
                    if let Some(m) = d.as_object_mut() {
                        for (k, v) in h.vars {
                            m.entry(k).or_insert(v.into());
                        }
                    }
                    // The flow's `handoff` step picks the queue, priority and skills.
                    if let Some(q) = h.queue {
                        self.s.queue = q;
                    }
                    if let Some(p) = h.priority {
                        self.s.priority = p;
                    }
                    self.skills = h.skills;
                    self.enqueue(ctx, d);
                }
                crate::bot::Output::Ended { intent } => self.event(
                    ctx,
                    "bot ended",
                    serde_json::json!({"handoff": false, "reason": "closed", "intent": intent}),
                ),
                crate::bot::Output::Forward { text } => self.forward_to_bot(ctx, text),
                crate::bot::Output::Lookup { by, value } => {
                    let store = self.s.store.clone();
                    ctx.spawn(
                        async move { store.lookup(by.name(), &value).await }
                            .into_actor(self)
                            .map(|r, act, ctx| {
                                let r = r.map(|c| c.map(|c| c.fields())).map_err(|e| e.to_string());
                                act.bot_input(ctx, crate::bot::Input::FlowLookup(r));
                            }),
                    );
                }
                crate::bot::Output::Http(req) => {
                    tracing::info!(interaction = %self.s.interaction, method = %req.method, url = %crate::redact::Url(&req.url), "bot webhook");
                    ctx.spawn(
                        crate::actors::call::webhook(req)
                            .into_actor(self)
                            .map(|r, act, ctx| act.bot_input(ctx, crate::bot::Input::FlowHttp(r))),
                    );
                }
                crate::bot::Output::Timer { id, after } => {
                    ctx.run_later(after, move |act, ctx| {
                        act.bot_input(ctx, crate::bot::Input::FlowTimer(id))
                    });
                }
                crate::bot::Output::Resolved { intent } => {
                    tracing::info!(interaction = %self.s.interaction, ?intent, "the bot's flow ended the chat");
                    self.event(
                        ctx,
                        "bot ended",
                        serde_json::json!({"handoff": false, "reason": "resolved", "intent": intent}),
                    );
                    self.leave_waiting();
                    self.feed(
                        ctx,
                        Input::Close {
                            by: "bot",
                            reply: None,
                        },
                    );
                }
            }
        }
    }

    /// The customer's page is gone (or, after a restart, not back yet): the chat is
    /// closed as abandoned unless they come back within `abandon_after`.
    fn await_customer(&mut self, ctx: &mut Context<Self>) {
        self.presence += 1;
        let seen = self.presence;
        let after = self.s.abandon_after;
        ctx.run_later(after, move |act, ctx| {
            if act.presence == seen && act.thread.closed().is_none() {
                tracing::info!(interaction = %act.s.interaction, "chat abandoned: the customer left");
                act.event(ctx, "abandoned", serde_json::json!({"after_secs": after.as_secs()}));
                act.close(ctx, "abandoned", None);
            }
        });
    }

    /// Posts the screen-pop (the customer's record and the chat so far) to the
    /// webhooks that want `event`.
    fn screen_pop(&self, event: &'static str, agent: &str) {
        if !self.s.webhooks.wants(event) {
            return;
        }
        let (hooks, store, customer) = (
            self.s.webhooks.clone(),
            self.s.store.clone(),
            self.s.customer,
        );
        let payload = serde_json::json!({
            "interaction": self.s.interaction,
            "channel": "webchat",
            "agent": agent,
            "queue": self.s.queue,
            // What the customer typed; `verified` once an agent checked it (then
            // `customer` is their record).
            "from": {"name": self.s.name, "address": self.s.address, "verified": customer.is_some()},
            "messages": self.thread.recent().map(|m| m.json()).collect::<Vec<_>>(),
        });
        actix_rt::spawn(async move {
            let mut payload = payload;
            if let Some(id) = customer {
                payload["customer"] = match store.customer_view(id).await {
                    Ok(v) => v.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(error = %e, "screen-pop without the customer record");
                        serde_json::Value::Null
                    }
                };
            }
            hooks.post(event, payload);
        });
    }

    /// Whether a video call may start: a web chat still open, none on.
    fn video_possible(&self) -> Result<(), String> {
        if self.s.provider.is_some() {
            return Err("video calls are for the web chat".into());
        }
        if self.thread.closed().is_some() {
            return Err("this chat has ended".into());
        }
        if self.video.is_some() || self.video_starting {
            return Err("a video call is already on".into());
        }
        if self.video_calls >= MAX_VIDEO_CALLS {
            return Err(format!(
                "this chat has had {MAX_VIDEO_CALLS} video calls: please go on in writing"
            ));
        }
        Ok(())
    }

    /// The agent's invitation to a video call, told to the customer's page (not kept:
    /// it means nothing once the page is gone).
    fn invite_video(&mut self) -> Result<(), String> {
        self.video_possible()?;
        if self.socket.is_none() {
            return Err("the customer's chat page is not open".into());
        }
        let name = match &self.agent {
            Some(_) if !self.agent_display.is_empty() => self.agent_display.clone(),
            Some((n, _)) => n.clone(),
            None => return Err("this chat is not assigned to you".into()),
        };
        self.tell_customer(serde_json::json!({"type": "video_invite", "agent": name}));
        Ok(())
    }

    fn tell_customer(&mut self, v: serde_json::Value) {
        if let Some(s) = &self.socket {
            // A page that does not read loses its socket (it reconnects and replays).
            if s.try_send(v.to_string()).is_err() {
                self.socket = None;
            }
        }
    }

    /// Tells the consoles following the chat (`{"type": ..., "interaction": ...}`).
    fn tell_watchers(&mut self, mut v: serde_json::Value) {
        if self.watchers.is_empty() {
            return;
        }
        v["interaction"] = self.s.interaction.as_str().into();
        let text = v.to_string();
        self.watchers
            .retain(|(_, tx)| tx.try_send(text.clone()).is_ok());
    }

    fn tell_agent(&self, p: AgentPush) {
        if let Some((_, a)) = &self.agent {
            a.do_send(p);
        }
    }

    /// A line from the system (joins, transfers) in the customer's log.
    fn system(&mut self, ctx: &mut Context<Self>, text: String) {
        self.feed(ctx, Input::System(text));
    }

    /// The chat no longer waits for an agent (assigned, closed, gone).
    fn leave_waiting(&mut self) {
        if self.is_waiting {
            self.is_waiting = false;
            count_waiting(&self.s.waiting, &self.s.queue, false);
        }
    }

    /// A reply slot for the thread to answer.
    fn reply_slot(&mut self) -> (u64, oneshot::Receiver<Result<u64, String>>) {
        let (tx, rx) = oneshot::channel();
        self.next_reply += 1;
        self.replies.insert(self.next_reply, tx);
        (self.next_reply, rx)
    }

    /// Writes an event on the interaction's timeline, in order with the messages.
    fn event(&mut self, ctx: &mut Context<Self>, kind: &'static str, data: serde_json::Value) {
        let (store, id) = (self.s.store.clone(), self.s.interaction.clone());
        wait_in_order(
            self,
            ctx,
            async move { store.add_timeline(&id, kind, data).await }
                .into_actor(self)
                .map(move |r, act, _| {
                    if let Err(e) = r {
                        tracing::warn!(interaction = %act.s.interaction, error = %e, kind, "timeline write failed");
                    }
                }),
        );
    }

    /// Hands `input` to the thread and carries out what it decides. Store writes are
    /// awaited in the order asked for ([`wait_in_order`]: nothing else happens in the
    /// chat meanwhile) and their answers fed back.
    fn feed(&mut self, ctx: &mut Context<Self>, input: Input) {
        self.thread.handle(crate::conversation::Time::now(), input);
        while let Some(out) = self.thread.poll() {
            self.carry_out(ctx, out);
        }
    }

    fn carry_out(&mut self, ctx: &mut Context<Self>, out: Output) {
        let (store, id) = (self.s.store.clone(), self.s.interaction.clone());
        match out {
            Output::Store { seq, data } => wait_in_order(
                self,
                ctx,
                async move { store.add_timeline(&id, "message", data).await }
                    .into_actor(self)
                    .map(move |r, act, ctx| {
                        if let Err(e) = &r {
                            tracing::warn!(interaction = %act.s.interaction, error = %e, "message not stored");
                        }
                        let result = r.map_err(|e| e.to_string());
                        act.feed(ctx, Input::Stored { seq, result });
                    }),
            ),
            Output::StoreClose { by } => wait_in_order(
                self,
                ctx,
                async move {
                    store
                        .add_timeline(&id, "closed", serde_json::json!({"by": by}))
                        .await?;
                    let outcome = if by == "abandoned" {
                        "abandoned".to_string()
                    } else {
                        format!("closed by {by}")
                    };
                    store.end_interaction(&id, &outcome).await
                }
                .into_actor(self)
                .map(|r, act, ctx| {
                    let result = r.map_err(|e| e.to_string());
                    act.feed(ctx, Input::CloseStored { result });
                }),
            ),
            Output::LoadOlder { to, after, .. } => wait_in_order(
                self,
                ctx,
                async move { store.interaction_messages(&id).await }
                    .into_actor(self)
                    .map(move |r, act, ctx| {
                        let messages = r.unwrap_or_else(|e| {
                            tracing::warn!(interaction = %act.s.interaction, error = %e, "older messages not read");
                            Vec::new()
                        });
                        act.feed(
                            ctx,
                            Input::Older {
                                to,
                                after,
                                messages,
                            },
                        );
                    }),
            ),
            Output::Customer(v) => {
                if self.s.provider.is_none() {
                    return self.tell_customer(v);
                }
                // Through a provider only the agent's and the bot's messages go (no
                // system lines, acks or replays: those are a page's).
                if v["type"] == "message" && (v["from"] == "agent" || v["from"] == "bot") {
                    let seq = v["seq"].as_u64().unwrap_or_default();
                    let out = crate::channels::whatsapp::Outgoing::of(
                        v["text"].as_str().unwrap_or_default(),
                        v.get("template"),
                    );
                    self.outbox.push_back((seq, out));
                    self.send_next(ctx);
                }
            }
            Output::Agent(m) => {
                self.tell_watchers(serde_json::json!({"type": "message", "message": m.json()}));
                self.tell_agent(AgentPush::Message {
                    interaction: id,
                    seq: m.seq,
                    from: m.from,
                    name: m.name,
                    text: m.text,
                    at: m.at,
                });
            }
            Output::Joined { supervisor, name } => {
                self.event(
                    ctx,
                    "supervisor joined",
                    serde_json::json!({"supervisor": supervisor}),
                );
                self.tell_agent(AgentPush::Monitored {
                    interaction: id,
                    supervisor: Some(supervisor),
                    name: Some(name),
                    mode: Some("barge"),
                });
            }
            Output::TakenOver { supervisor, name } => self.take_over(ctx, supervisor, name),
            Output::StoreNote { reply, note } => wait_in_order(
                self,
                ctx,
                {
                    let data = note.clone();
                    async move { store.add_timeline(&id, "note", data).await }
                }
                .into_actor(self)
                .map(move |r, act, ctx| {
                    if let Err(e) = &r {
                        tracing::warn!(interaction = %act.s.interaction, error = %e, "note not stored");
                    }
                    let result = r.map_err(|e| e.to_string());
                    act.feed(ctx, Input::NoteStored { reply, note, result });
                }),
            ),
            Output::Note(note) => {
                self.tell_watchers(serde_json::json!({"type": "note", "note": note.clone()}));
                let text = |k: &str| note[k].as_str().unwrap_or_default().to_string();
                self.tell_agent(AgentPush::Note {
                    interaction: id,
                    supervisor: text("supervisor"),
                    name: text("name"),
                    text: text("text"),
                    at: note["at"].as_u64().unwrap_or_default(),
                });
            }
            Output::Transcript(messages) => self.tell_agent(AgentPush::Transcript {
                interaction: id,
                messages,
            }),
            Output::Reply { reply, result } => {
                if let Some(r) = self.replies.remove(&reply) {
                    let _ = r.send(result);
                }
            }
            Output::Ended { by, result } => {
                if let Err(e) = result {
                    tracing::warn!(interaction = %id, error = %e, "chat end not stored");
                }
                self.tell_watchers(serde_json::json!({"type": "closed", "by": by}));
                self.watchers.clear();
                if by == "customer" {
                    self.tell_agent(AgentPush::CustomerLeft {
                        interaction: id.clone(),
                    });
                }
                // Its customer, who holds its token, may rate it now.
                let token = self
                    .s
                    .chats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .map(|(t, _)| t.clone());
                if let Some(t) = token {
                    self.s
                        .ratable
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(crate::clock::now(), &id, &t);
                }
                self.s.router.do_send(Ended { interaction: id });
                // The customer's next message starts a new thread on their case (or
                // answers the survey).
                self.survey_due = self.s.provider.as_ref().is_some_and(|p| {
                    p.account.survey.is_some()
                        && crate::channels::survey::should_ask(
                            by,
                            self.agent.is_some() || self.thread.taken().is_some(),
                            p.account.can_send(),
                            p.is_whatsapp().then(|| {
                                crate::channels::whatsapp::window_left(
                                    self.last_inbound,
                                    crate::clock::unix_secs(),
                                )
                                .is_some()
                            }),
                        )
                });
                self.ask_survey_when_sent();
                self.forget_thread();
                // The chat's video call ends with it.
                self.video = None;
                // Kept a little for a customer reconnecting to read the end.
                ctx.run_later(std::time::Duration::from_secs(60), |_, ctx| ctx.stop());
            }
        }
    }

    /// Ends the chat: committed first, then the customer, the agent and the router are
    /// told (so whoever hears of the end finds it on record). `done` hears when.
    fn close(
        &mut self,
        ctx: &mut Context<Self>,
        by: &'static str,
        done: Option<oneshot::Sender<Result<u64, String>>>,
    ) {
        self.leave_waiting();
        let reply = done.map(|d| {
            self.next_reply += 1;
            self.replies.insert(self.next_reply, d);
            self.next_reply
        });
        // Ended while the bot had it: `bot ended` (the KPIs' containment) is on the
        // timeline before `closed` (writes are made in order: `in_order`).
        self.bot_input(ctx, crate::bot::Input::Closed);
        self.feed(ctx, Input::Close { by, reply });
    }
}

impl ChatActor {
    /// `supervisor` (shown as `name`) takes the open chat over: on the timeline, the
    /// agent told and released by the router (or the work out of the queue).
    fn take_over(&mut self, ctx: &mut Context<Self>, supervisor: String, name: String) {
        let id = self.s.interaction.clone();
        tracing::info!(interaction = %id, %supervisor, "chat taken over");
        // A person has it: the bot says no more.
        self.bot_input(ctx, crate::bot::Input::PersonJoined);
        let from = self.agent.take();
        self.leave_waiting();
        if let Some((_, addr)) = &from {
            addr.do_send(AgentPush::Monitored {
                interaction: id.clone(),
                supervisor: Some(supervisor.clone()),
                name: Some(name.clone()),
                mode: Some("took_over"),
            });
        }
        self.s.router.do_send(super::router::TakeOver {
            interaction: id,
            supervisor: supervisor.clone(),
        });
        self.event(
            ctx,
            "taken over",
            serde_json::json!({"supervisor": supervisor, "agent": from.as_ref().map(|(a, _)| a)}),
        );
        self.tell_watchers(
            serde_json::json!({"type": "taken_over", "supervisor": supervisor, "name": name}),
        );
        self.agent_display = name;
    }

    /// A WhatsApp thread's reply window: free-form replies until then (Unix ms).
    fn window_until(&self) -> Option<u64> {
        self.s.provider.as_ref().filter(|p| p.is_whatsapp())?;
        Some((self.last_inbound? + crate::channels::whatsapp::WINDOW_SECS) * 1000)
    }

    /// Why a free-form reply may not go now: a WhatsApp thread whose 24-hour window
    /// has closed (only templates may).
    fn window_closed(&self) -> Option<ChatError> {
        let p = self.s.provider.as_ref().filter(|p| p.is_whatsapp())?;
        let now = crate::clock::unix_secs();
        if crate::channels::whatsapp::window_left(self.last_inbound, now).is_some() {
            return None;
        }
        let closed_secs = self.last_inbound.map_or(0, |l| {
            now.saturating_sub(l + crate::channels::whatsapp::WINDOW_SECS)
        });
        Some(ChatError::WindowClosed {
            closed_secs,
            templates: p.account.templates.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// The agent's desktop learns where the reply window stands.
    fn tell_window(&self) {
        if let Some(until) = self.window_until() {
            self.tell_agent(AgentPush::Window {
                interaction: self.s.interaction.clone(),
                until,
            });
        }
    }

    /// A provider thread leaves the registry (ended, stopped, failed) unless a newer
    /// thread took its place.
    fn forget_thread(&mut self) {
        if let Some(p) = &self.s.provider {
            let mut t = p.threads.lock().unwrap_or_else(|e| e.into_inner());
            let key = (p.account.name.clone(), p.key.clone());
            if t.get(&key) == Some(&self.s.interaction) {
                t.remove(&key);
            }
        }
    }

    /// The template `name` of this thread's account with `parameters`, as the
    /// message records it, or why not.
    fn template(&self, name: &str, parameters: &[String]) -> Result<serde_json::Value, String> {
        let Some(p) = &self.s.provider else {
            return Err("templates go through a messaging provider; this is a web chat".into());
        };
        let Some(t) = p.account.templates.iter().find(|t| t.name == name) else {
            let known: Vec<&str> = p
                .account
                .templates
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            return Err(format!(
                "no template \"{name}\" on channel {} (it has: {})",
                p.account.name,
                known.join(", ")
            ));
        };
        if parameters.len() != t.parameters as usize {
            return Err(format!(
                "template {name} takes {} parameters, not {}",
                t.parameters,
                parameters.len()
            ));
        }
        if let Some(bad) = parameters.iter().find(|x| {
            x.trim().is_empty() || x.chars().count() > 1024 || x.chars().any(char::is_control)
        }) {
            return Err(format!(
                "a template parameter is 1-1024 characters without control characters: {bad:?}"
            ));
        }
        Ok(serde_json::json!({"name": t.name, "language": t.language, "parameters": parameters}))
    }

    /// Sends the first queued message of a provider thread, if none is in flight:
    /// retried while the provider fails or does not answer
    /// ([`crate::channels::send::deliver`]); an account that cannot send yet keeps it
    /// queued. Each outcome is on record and on the agent's desktop.
    fn send_next(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = self.s.provider.clone() else {
            return;
        };
        if self.sending {
            return;
        }
        let Some((seq, m)) = self.outbox.front().cloned() else {
            return;
        };
        self.sending = true;
        let delivery = format!("{}-{seq}", self.s.interaction);
        let agent = self.agent_display.clone();
        let (store, id) = (self.s.store.clone(), self.s.interaction.clone());
        let me = ctx.address();
        ctx.spawn(
            async move {
                // An open channel's delivery id is ours: on record before the
                // connector can report on it.
                if p.account.kind == crate::config::ChannelKind::Open {
                    store
                        .add_channel_message(
                            &p.account.name,
                            &delivery,
                            &id,
                            "out",
                            seq as i64,
                            "queued",
                        )
                        .await
                        .map_err(|e| {
                            crate::channels::send::SendError::Retry(format!("not recorded: {e}"))
                        })?;
                }
                let to = crate::channels::send::Envelope {
                    to: &p.peer,
                    delivery: &delivery,
                    agent: &agent,
                };
                let retrying = move |_: u32, why: &str| {
                    me.do_send(DeliveryNews {
                        seq,
                        status: "queued".into(),
                        error: format!("not sent yet, trying again: {why}"),
                    })
                };
                if p.account.kind == crate::config::ChannelKind::Email {
                    let crate::channels::whatsapp::Outgoing::Text { body, .. } = &m else {
                        return Err(crate::channels::send::SendError::Refused(
                            "templates are for WhatsApp threads".into(),
                        ));
                    };
                    let o = crate::email::smtp::Outgoing {
                        interaction: &id,
                        seq,
                        to: &p.peer,
                        agent: &agent,
                        text: body,
                    };
                    return crate::email::smtp::reply(&store, &p.account, o, &retrying).await;
                }
                crate::channels::send::deliver(&p.account, to, &m, &retrying).await
            }
            .into_actor(self)
            .map(move |r, act, ctx| act.sent(ctx, seq, r)),
        );
    }

    /// What became of the first queued message.
    fn sent(
        &mut self,
        ctx: &mut Context<Self>,
        seq: u64,
        r: Result<String, crate::channels::send::SendError>,
    ) {
        use crate::channels::send::SendError;
        self.sending = false;
        let Some(p) = self.s.provider.clone() else {
            return;
        };
        let (status, error, done) = match &r {
            Ok(_) => ("sent", String::new(), true),
            Err(SendError::NotConfigured(why)) => ("queued", why.clone(), false),
            Err(e) => ("failed", e.to_string(), true),
        };
        if status != "sent" {
            tracing::warn!(interaction = %self.s.interaction, seq, status, error = %error, "message not sent");
        }
        self.tell_agent(AgentPush::Delivery {
            interaction: self.s.interaction.clone(),
            seq,
            status,
            error: error.clone(),
        });
        if let Ok(provider_id) = r {
            let (store, id, account) = (
                self.s.store.clone(),
                self.s.interaction.clone(),
                p.account.name.clone(),
            );
            let recorded = p.account.kind == crate::config::ChannelKind::Open;
            ctx.wait(
                async move {
                    if recorded {
                        store
                            .set_channel_status(&account, &provider_id, "sent", "")
                            .await
                            .map(|_| ())
                    } else {
                        store
                            .add_channel_message(&account, &provider_id, &id, "out", seq as i64, "sent")
                            .await
                            .map(|_| ())
                    }
                }
                .into_actor(self)
                .map(|r, act, _| {
                    if let Err(e) = r {
                        tracing::warn!(interaction = %act.s.interaction, error = %e, "sent message not recorded");
                    }
                }),
            );
        } else if status == "failed" {
            self.failed.insert(seq);
            self.event(
                ctx,
                "delivery failed",
                serde_json::json!({"seq": seq, "error": error}),
            );
        }
        if done {
            self.outbox.pop_front();
            self.send_next(ctx);
        }
        self.ask_survey_when_sent();
    }

    /// The ended thread's survey question, once nothing of the agent's is left to
    /// send: on record as waiting for the customer's answer first (a quick answer
    /// finds it), then sent through the provider, retried like any message; on the
    /// timeline as `survey asked`, or `survey not sent` (and no longer waiting).
    /// Carried on after this actor stops.
    fn ask_survey_when_sent(&mut self) {
        if !self.survey_due || self.sending || !self.outbox.is_empty() {
            return;
        }
        self.survey_due = false;
        let Some(p) = self.s.provider.clone() else {
            return;
        };
        let Some(survey) = p.account.survey.clone() else {
            return;
        };
        let (store, id) = (self.s.store.clone(), self.s.interaction.clone());
        actix::spawn(async move {
            let metric = survey.metric().name();
            let expires = crate::clock::unix_millis() as i64 + survey.within_ms();
            if let Err(e) = store
                .ask_survey(&p.account.name, &p.key, &id, metric, expires)
                .await
            {
                tracing::warn!(interaction = %id, error = %e, "survey not asked");
                return;
            }
            let r = if p.account.kind == crate::config::ChannelKind::Email {
                // A reply in the case's thread (number 0: no message of the thread).
                let o = crate::email::smtp::Outgoing {
                    interaction: &id,
                    seq: 0,
                    to: &p.peer,
                    agent: "",
                    text: &survey.question,
                };
                crate::email::smtp::reply(&store, &p.account, o, &|_, _| {}).await
            } else {
                let delivery = format!("{id}-survey");
                crate::channels::send::system_text(&p.account, &p.peer, &delivery, &survey.question)
                    .await
            };
            let (kind, data) = match &r {
                Ok(provider_id) => (
                    "survey asked",
                    serde_json::json!({"metric": metric, "question": survey.question, "id": provider_id}),
                ),
                Err(e) => {
                    tracing::warn!(interaction = %id, error = %e, "survey question not sent");
                    if let Err(e) = store.forget_survey_ask(&p.account.name, &p.key, &id).await {
                        tracing::warn!(interaction = %id, error = %e, "unsent survey still waiting");
                    }
                    (
                        "survey not sent",
                        serde_json::json!({"metric": metric, "error": e.to_string()}),
                    )
                }
            };
            if let Err(e) = store.add_timeline(&id, kind, data).await {
                tracing::warn!(interaction = %id, error = %e, "survey not on the timeline");
            }
        });
    }

    /// `agent` verified the customer's identity: the chat joins their record (found by
    /// the address they gave, or new, named as they gave) and open case, with what was
    /// said so far; the agent's desktop learns the customer.
    fn verify(
        &mut self,
        ctx: &mut Context<Self>,
        agent: String,
        done: oneshot::Sender<Result<u64, String>>,
    ) {
        if let Some(c) = self.s.customer {
            let _ = done.send(Ok(c as u64));
            return;
        }
        let (store, id) = (self.s.store.clone(), self.s.interaction.clone());
        let (address, name, by) = (self.s.address.clone(), self.s.name.clone(), agent.clone());
        ctx.wait(
            async move {
                // The agent verified who it is: theirs is the provenance.
                let p = crate::store::Provenance {
                    source: "agent",
                    interaction: Some(&id),
                    actor: &by,
                };
                let Some(c) = store.resolve_customer(&address, &p).await? else {
                    return Ok(None);
                };
                if !name.is_empty() {
                    store.name_customer(c, &name, &p).await?;
                }
                store
                    .update_interaction(
                        &id,
                        &crate::store::InteractionUpdate {
                            customer_id: Some(c),
                            ..Default::default()
                        },
                    )
                    .await?;
                store
                    .add_timeline(
                        &id,
                        "verified",
                        serde_json::json!({"agent": by, "identity": address}),
                    )
                    .await?;
                // The chat's video calls made before are theirs too.
                for call in store.unattached_chat_calls(&id).await? {
                    let u = crate::store::InteractionUpdate {
                        customer_id: Some(c),
                        ..Default::default()
                    };
                    store.update_interaction(&call, &u).await?;
                }
                let conversation = store.interaction(&id).await?.and_then(|i| i.conversation_id);
                Ok::<_, crate::store::StoreError>(Some((c, conversation)))
            }
            .into_actor(self)
            .map(move |r, act, _| match r {
                Ok(Some((c, conversation))) => {
                    tracing::info!(interaction = %act.s.interaction, customer = c, %agent, "chat identity verified");
                    act.s.customer = Some(c);
                    act.s.conversation = conversation;
                    act.tell_agent(AgentPush::Verified {
                        interaction: act.s.interaction.clone(),
                        customer: c,
                    });
                    let _ = done.send(Ok(c as u64));
                }
                Ok(None) => {
                    let _ = done.send(Err(
                        "the address given is neither a phone number nor an e-mail address"
                            .into(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(interaction = %act.s.interaction, error = %e, "verification not stored");
                    let _ = done.send(Err(format!("not stored: {e}")));
                }
            }),
        );
    }
}

impl Actor for ChatActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Taken up after a restart: what the provider had not taken goes now.
        self.send_next(ctx);
        let greeting = self.s.greeting.clone();
        if !greeting.is_empty() && self.s.provider.is_none() && !self.resumed {
            self.system(ctx, greeting);
        }
        if self.resumed && self.s.provider.is_none() {
            // A web chat after a restart: its customer's page has to come back.
            self.await_customer(ctx);
        }
        // The bot owns it first: queued at its hand-off.
        if self.bot.is_some() {
            self.event(ctx, "bot started", serde_json::json!({}));
        } else {
            self.enqueue(ctx, serde_json::json!({}));
        }
    }
    fn stopped(&mut self, _: &mut Self::Context) {
        self.wound_up = true;
        if std::thread::panicking() {
            // actix stops an actor whose handler panicked as its future is dropped.
            return self.failed();
        }
        self.leave_waiting();
        if self.thread.closed().is_none() {
            // Stopped without a close (shutdown): nobody waits for it any more.
            self.s.router.do_send(Ended {
                interaction: self.s.interaction.clone(),
            });
            tracing::warn!(interaction = %self.s.interaction, "chat actor stopped while open");
        }
        self.s.chats.lock().unwrap().remove(&self.s.interaction);
        self.forget_thread();
    }
}

/// Without `stopped()`, failure handling runs when the actor is dropped.
impl Drop for ChatActor {
    fn drop(&mut self) {
        if !self.wound_up {
            self.failed();
        }
    }
}

impl ChatActor {
    /// The actor failed (a panic): what was acknowledged is already in the store; the
    /// chat is ended there as failed, the customer is told, the router frees the agent
    /// (who hears it ended) and the registry forgets it.
    fn failed(&mut self) {
        self.wound_up = true;
        self.leave_waiting();
        let id = self.s.interaction.clone();
        tracing::error!(interaction = %id, reason = %crate::panics::reason(), "chat actor failed; ending the chat");
        if self.thread.closed().is_none() {
            self.tell_customer(serde_json::json!({"type": "error", "reason": "internal error: this chat has ended, please start a new one"}));
            self.tell_customer(serde_json::json!({"type": "closed", "by": "failure"}));
            self.s.router.do_send(Ended {
                interaction: id.clone(),
            });
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let store = self.s.store.clone();
                let id = id.clone();
                rt.spawn(async move {
                    let r = async {
                        store
                            .add_timeline(&id, "failed", serde_json::json!({"why": "internal error"}))
                            .await?;
                        store.end_interaction(&id, "failed: internal error").await
                    };
                    if let Err(e) = r.await {
                        tracing::warn!(interaction = %id, error = %e, "failed chat's end not stored");
                    }
                });
            }
        }
        self.s
            .chats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.forget_thread();
    }
}

/// From the customer's WebSocket.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Customer {
    /// A socket (re)connects and has seen messages up to `after`.
    Hello {
        socket: Sender<String>,
        after: u64,
    },
    Says {
        id: String,
        text: String,
    },
    Typing(bool),
    Leave,
    /// The customer's page went away (closed, lost its connection).
    Gone,
    /// The customer hangs up their video call.
    VideoHangup,
    /// A message through the customer's provider: `id` is the provider's (a message
    /// delivered twice counts once), `at` when they sent it (Unix s); `done` hears its
    /// number once stored.
    Provider {
        id: String,
        text: String,
        at: u64,
        done: oneshot::Sender<Result<u64, String>>,
    },
}

impl Handler<Customer> for ChatActor {
    type Result = ();

    fn handle(&mut self, m: Customer, ctx: &mut Context<Self>) {
        match m {
            Customer::Hello { socket, after } => {
                // The newest socket wins; what it missed is replayed in order.
                self.socket = Some(socket);
                self.presence += 1;
                let agent = self
                    .agent
                    .as_ref()
                    .map(|(n, _)| n.clone())
                    .or_else(|| self.thread.taken().map(|(_, name)| name.to_string()));
                self.feed(ctx, Input::Connect { after, agent });
            }
            Customer::Gone => self.await_customer(ctx),
            Customer::Says { id, text } => self.customer_says(ctx, id, text, None),
            Customer::Typing(on) => self.tell_agent(AgentPush::Typing {
                interaction: self.s.interaction.clone(),
                on,
            }),
            Customer::Leave => self.close(ctx, "customer", None),
            // The page is done with the call at once (a late frame of it is not
            // taken for the next one's).
            // Dropping the link hangs up.
            Customer::VideoHangup => {
                if self.video.take().is_none() {
                    self.video_hangup = self.video_starting;
                }
            }
            Customer::Provider { id, text, at, done } => {
                // The window runs from the customer's last message, as the provider
                // counts it (their timestamp, never later than now).
                let at = at.min(crate::clock::unix_secs());
                self.last_inbound = Some(self.last_inbound.map_or(at, |l| l.max(at)));
                self.tell_window();
                let (reply, rx) = self.reply_slot();
                self.customer_says(ctx, id, text, Some(reply));
                actix_rt::spawn(async move {
                    let r = rx.await.unwrap_or_else(|_| Err("the thread ended".into()));
                    let _ = done.send(r);
                });
            }
        }
    }
}

/// The customer's page asks for a video call with the chat's agent: what the call
/// needs to know of the chat (and its address), or why not.
#[derive(Message)]
#[rtype(result = "Result<(crate::call::Escalation, String), String>")]
pub struct VideoStart;

impl Handler<VideoStart> for ChatActor {
    type Result = Result<(crate::call::Escalation, String), String>;

    fn handle(&mut self, _: VideoStart, _: &mut Context<Self>) -> Self::Result {
        self.video_possible()?;
        let Some((agent, _)) = &self.agent else {
            return Err(
                "a video call is with the agent who has your chat: wait for them to join".into(),
            );
        };
        self.video_starting = true;
        self.video_hangup = false;
        self.video_calls += 1;
        let e = crate::call::Escalation {
            chat: self.s.interaction.clone(),
            agent: agent.clone(),
            queue: self.s.queue.clone(),
            customer: self.s.customer,
            conversation: self.s.conversation,
            name: self.s.name.clone(),
        };
        Ok((e, self.s.address.clone()))
    }
}

/// The video call asked for by [`VideoStart`] could not start: why.
#[derive(Message)]
#[rtype(result = "()")]
pub struct VideoStarted(pub String);

impl Handler<VideoStarted> for ChatActor {
    type Result = ();

    fn handle(&mut self, m: VideoStarted, _: &mut Context<Self>) {
        self.video_starting = false;
        self.tell_customer(serde_json::json!({"type": "video_ended", "reason": m.0}));
    }
}

impl Handler<crate::actors::webcall::PageFrame> for ChatActor {
    type Result = ();

    fn handle(&mut self, m: crate::actors::webcall::PageFrame, _: &mut Context<Self>) {
        use crate::actors::webcall::PageFrame;
        match m {
            PageFrame::Started(link) => {
                self.video_starting = false;
                // The chat ended, or the customer hung up, meanwhile: dropping the
                // link hangs up.
                if self.thread.closed().is_none() && !self.video_hangup {
                    self.video = Some(link);
                }
            }
            PageFrame::Frame(call, v) => {
                // Only the call on now speaks to the page.
                if self.video.as_ref().map(|l| l.call) != Some(call) {
                    return;
                }
                if v["type"] == "video_ended" {
                    self.video = None;
                }
                self.tell_customer(v);
            }
        }
    }
}

/// A provider's news of the agent's message `seq` (already on record).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliveryNews {
    pub seq: u64,
    pub status: String,
    pub error: String,
}

impl Handler<DeliveryNews> for ChatActor {
    type Result = ();

    fn handle(&mut self, n: DeliveryNews, _: &mut Context<Self>) {
        let status = match n.status.as_str() {
            "queued" => "queued",
            "delivered" => "delivered",
            "read" => "read",
            "failed" => "failed",
            _ => "sent",
        };
        self.tell_agent(AgentPush::Delivery {
            interaction: self.s.interaction.clone(),
            seq: n.seq,
            status,
            error: n.error,
        });
    }
}

/// Why an agent's act in a chat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("this chat is not assigned to you")]
    NotYours,
    /// The chat cannot do it (ended, not stored, an address that is not one...).
    #[error("{0}")]
    Refused(String),
    /// A provider thread's reply window has closed: only an approved template may go.
    #[error("the 24-hour reply window closed {closed_secs} s ago: send an approved template ({})", templates.join(", "))]
    WindowClosed {
        closed_secs: u64,
        templates: Vec<String>,
    },
}

/// What an external bot does in a conversation it owns (`/api/bot/...`).
#[derive(Message)]
#[rtype(result = "Result<(), ChatError>")]
pub enum BotAct {
    Says {
        text: String,
    },
    Handoff {
        intent: Option<String>,
        summary: Option<String>,
    },
}

impl Handler<BotAct> for ChatActor {
    type Result = Result<(), ChatError>;

    fn handle(&mut self, m: BotAct, ctx: &mut Context<Self>) -> Self::Result {
        let external = self.s.bot.as_ref().is_some_and(|b| !b.cfg.url.is_empty());
        if !external
            || !self.bot.as_ref().is_some_and(|b| b.owned())
            || self.thread.closed().is_some()
        {
            return Err(ChatError::Refused(
                "this conversation is not the bot's: handed to a person, or ended".into(),
            ));
        }
        let input = match m {
            BotAct::Says { text } => crate::bot::Input::BotReply { text },
            BotAct::Handoff { intent, summary } => {
                crate::bot::Input::BotHandoff { intent, summary }
            }
        };
        self.bot_input(ctx, input);
        Ok(())
    }
}

/// What an agent does in the chat; refused unless the chat is theirs.
#[derive(Message)]
#[rtype(result = "Result<u64, ChatError>")]
pub enum AgentAct {
    Says {
        agent: String,
        text: String,
    },
    Typing {
        agent: String,
        on: bool,
    },
    /// An approved template of the thread's account, with its body parameters: what
    /// may go once the reply window has closed.
    Template {
        agent: String,
        name: String,
        parameters: Vec<String>,
    },
    End {
        agent: String,
    },
    /// A provider thread's message of the agent's that failed, sent again (the same
    /// message, and for an open channel the same delivery). Answers its number.
    Retry {
        agent: String,
        seq: u64,
    },
    /// The agent has checked the customer is who they say (asked what only they
    /// know): the chat joins that customer's record (created if new) and open case.
    /// Answers the customer id.
    Verify {
        agent: String,
    },
    /// The agent asks the customer on the web chat to join a video call: their page
    /// offers it (see [`VideoStart`]).
    InviteVideo {
        agent: String,
    },
}

impl Handler<AgentAct> for ChatActor {
    type Result = ResponseFuture<Result<u64, ChatError>>;

    fn handle(&mut self, m: AgentAct, ctx: &mut Context<Self>) -> Self::Result {
        // What the chat answers, once it has (a dropped reply: the chat is gone).
        fn answer(
            rx: oneshot::Receiver<Result<u64, String>>,
        ) -> ResponseFuture<Result<u64, ChatError>> {
            Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err("chat ended".into()))
                    .map_err(ChatError::Refused)
            })
        }
        let agent = match &m {
            AgentAct::Says { agent, .. }
            | AgentAct::Template { agent, .. }
            | AgentAct::Typing { agent, .. }
            | AgentAct::End { agent }
            | AgentAct::Retry { agent, .. }
            | AgentAct::Verify { agent }
            | AgentAct::InviteVideo { agent } => agent.clone(),
        };
        if self.agent.as_ref().map(|(n, _)| n) != Some(&agent) {
            return Box::pin(async { Err(ChatError::NotYours) });
        }
        match m {
            AgentAct::InviteVideo { .. } => {
                let r = self.invite_video();
                Box::pin(async move { r.map(|_| 0).map_err(ChatError::Refused) })
            }
            AgentAct::Says { text, .. } => {
                if let Some(e) = self.window_closed() {
                    return Box::pin(async move { Err(e) });
                }
                let (reply, rx) = self.reply_slot();
                self.feed(
                    ctx,
                    Input::AgentSays {
                        name: if self.agent_display.is_empty() {
                            agent
                        } else {
                            self.agent_display.clone()
                        },
                        text,
                        reply,
                        template: None,
                    },
                );
                answer(rx)
            }
            AgentAct::Template {
                name, parameters, ..
            } => {
                let t = match self.template(&name, &parameters) {
                    Ok(t) => t,
                    Err(why) => return Box::pin(async move { Err(ChatError::Refused(why)) }),
                };
                let (reply, rx) = self.reply_slot();
                let text = if parameters.is_empty() {
                    format!("[template {name}]")
                } else {
                    format!("[template {name}: {}]", parameters.join(", "))
                };
                let who = if self.agent_display.is_empty() {
                    agent
                } else {
                    self.agent_display.clone()
                };
                self.feed(
                    ctx,
                    Input::AgentSays {
                        name: who,
                        text,
                        reply,
                        template: Some(Box::new(t)),
                    },
                );
                answer(rx)
            }
            AgentAct::Retry { seq, .. } => {
                let m = self
                    .thread
                    .recent()
                    .find(|m| m.seq == seq && m.from == "agent")
                    .cloned();
                let refused = |why: String| -> ResponseFuture<Result<u64, ChatError>> {
                    Box::pin(async move { Err(ChatError::Refused(why)) })
                };
                let Some(m) = m.filter(|_| self.failed.contains(&seq)) else {
                    return refused(format!(
                        "message {seq} is not one of yours that failed (only those are sent again)"
                    ));
                };
                if m.template.is_none() {
                    if let Some(e) = self.window_closed() {
                        return Box::pin(async move { Err(e) });
                    }
                }
                self.failed.remove(&seq);
                self.tell_agent(AgentPush::Delivery {
                    interaction: self.s.interaction.clone(),
                    seq,
                    status: "queued",
                    error: "sending again".into(),
                });
                let out = crate::channels::whatsapp::Outgoing::of(&m.text, m.template.as_deref());
                self.outbox.push_back((seq, out));
                self.send_next(ctx);
                Box::pin(async move { Ok(seq) })
            }
            AgentAct::Typing { on, .. } => {
                self.tell_customer(serde_json::json!({"type": "typing", "on": on}));
                Box::pin(async { Ok(0) })
            }
            AgentAct::End { .. } => {
                let (tx, rx) = oneshot::channel();
                self.close(ctx, "agent", Some(tx));
                answer(rx)
            }
            AgentAct::Verify { agent } => {
                let (tx, rx) = oneshot::channel();
                self.verify(ctx, agent, tx);
                answer(rx)
            }
        }
    }
}

/// What a supervisor does in a chat of their scope (the API checked the scope).
#[derive(Message)]
#[rtype(result = "Result<u64, ChatError>")]
pub enum SupervisorAct {
    /// Write to the customer (barge): answers the message's number.
    Says {
        supervisor: String,
        name: String,
        text: String,
    },
    /// A private note to the agent (whisper): answers when it was stored (Unix ms).
    Note {
        supervisor: String,
        name: String,
        text: String,
    },
    /// Follow the chat live: each stored message, note and the end, as JSON text on
    /// `to` (what came before is on the interaction's timeline). Answers the last
    /// message number, so the console knows where the timeline it reads must reach.
    Watch {
        supervisor: String,
        to: Sender<String>,
    },
    /// Take the chat over (barge, outright): its agent is released (to their wrap-up,
    /// told why), or it leaves the queue; the customer is told who looks after them
    /// now; from then on only this supervisor writes and ends it. Answers the last
    /// message number.
    TakeOver { supervisor: String, name: String },
    /// End a chat this supervisor took over.
    End { supervisor: String },
}

impl Handler<SupervisorAct> for ChatActor {
    type Result = ResponseFuture<Result<u64, ChatError>>;

    fn handle(&mut self, m: SupervisorAct, ctx: &mut Context<Self>) -> Self::Result {
        let refused =
            |why: String| -> Self::Result { Box::pin(async move { Err(ChatError::Refused(why)) }) };
        let rx = match m {
            SupervisorAct::Watch { supervisor, to } => {
                if self.thread.closed().is_some() {
                    return refused("the chat has ended".into());
                }
                self.watchers
                    .retain(|(s, tx)| *s != supervisor && !tx.is_closed());
                if self.watchers.len() >= MAX_WATCHERS {
                    return refused(format!("{MAX_WATCHERS} consoles follow this chat already"));
                }
                self.watchers.push((supervisor, to));
                let last = self.thread.last_seq();
                return Box::pin(async move { Ok(last) });
            }
            SupervisorAct::TakeOver { supervisor, name } => {
                let (reply, rx) = self.reply_slot();
                self.feed(
                    ctx,
                    Input::TakeOver {
                        supervisor,
                        name,
                        reply,
                    },
                );
                rx
            }
            SupervisorAct::End { supervisor } => {
                let (reply, rx) = self.reply_slot();
                self.feed(ctx, Input::SupervisorEnds { supervisor, reply });
                rx
            }
            SupervisorAct::Note {
                supervisor,
                name,
                text,
            } => {
                if self.agent.is_none() {
                    return refused("no agent has this chat yet: a note is for its agent".into());
                }
                let (reply, rx) = self.reply_slot();
                self.feed(
                    ctx,
                    Input::Note {
                        supervisor,
                        name,
                        text,
                        reply,
                    },
                );
                rx
            }
            SupervisorAct::Says {
                supervisor,
                name,
                text,
            } => {
                if let Some(e) = self.window_closed() {
                    return Box::pin(async move { Err(e) });
                }
                let (reply, rx) = self.reply_slot();
                self.feed(
                    ctx,
                    Input::SupervisorSays {
                        supervisor,
                        name,
                        text,
                        reply,
                    },
                );
                rx
            }
        };
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("chat ended".into()))
                .map_err(ChatError::Refused)
        })
    }
}

impl Handler<WorkEvent> for ChatActor {
    type Result = ();

    fn handle(&mut self, ev: WorkEvent, ctx: &mut Context<Self>) {
        if self.thread.taken().is_some() {
            // Crossed the take-over on its way: the router has let the work go.
            return;
        }
        match ev {
            WorkEvent::Offered { agent } => {
                self.event(ctx, "offered", serde_json::json!({"agent": agent}));
                self.screen_pop("chat.offered", &agent);
            }
            WorkEvent::Assigned {
                agent,
                display,
                addr,
                ..
            } => {
                tracing::info!(interaction = %self.s.interaction, %agent, "chat assigned");
                let (store, id, a) = (
                    self.s.store.clone(),
                    self.s.interaction.clone(),
                    agent.clone(),
                );
                ctx.wait(
                    async move { store.interaction_answered(&id, &a).await }
                        .into_actor(self)
                        .map(|_, _, _| ()),
                );
                self.event(ctx, "assigned", serde_json::json!({"agent": agent}));
                self.screen_pop("chat.connected", &agent);
                self.leave_waiting();
                self.agent = Some((agent.clone(), addr));
                self.tell_window();
                // The customer knows the agent by their display name.
                let who = if display.is_empty() { agent } else { display };
                self.agent_display = who.clone();
                self.feed(ctx, Input::AgentJoined { who });
            }
            WorkEvent::Transferred { from, to } => {
                tracing::info!(interaction = %self.s.interaction, %from, %to, "chat transferred");
                self.agent = None;
                if !self.is_waiting && self.thread.closed().is_none() {
                    self.is_waiting = true;
                    count_waiting(&self.s.waiting, &self.s.queue, true);
                }
                self.event(
                    ctx,
                    "transferred",
                    serde_json::json!({"from": from, "to": to}),
                );
                self.system(ctx, "You are being transferred to a colleague.".into());
            }
            WorkEvent::OfferEnded { agent, lapsed } => {
                let kind = if lapsed {
                    "offer lapsed"
                } else {
                    "offer rejected"
                };
                self.event(ctx, kind, serde_json::json!({"agent": agent}));
            }
            WorkEvent::Overflow { to } => {
                self.event(ctx, "overflow", serde_json::json!({"to": to}));
                if to == "voicemail" {
                    self.system(
                        ctx,
                        "No agent is free right now; we will answer by e-mail or phone.".into(),
                    );
                    self.close(ctx, "system", None);
                }
            }
        }
    }
}

#[cfg(test)]
impl Handler<super::Crash> for ChatActor {
    type Result = ();

    fn handle(&mut self, _: super::Crash, _: &mut Context<Self>) {
        panic!("injected failure");
    }
}
