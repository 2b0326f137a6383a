//! The first-level bot's decisions, sans-IO: it owns a text conversation until it
//! hands it to a person, answering from the knowledge base ([`crate::kb`]). Each
//! customer message is an [`Input`]; [`Bot::poll`] gives what to do: a [`Output::Reply`]
//! to send, then at most once a [`Output::Handoff`] carrying the transcript, the
//! intent, the reason and a summary for the agent's screen-pop. After the hand-off
//! the bot is silent: what the customer writes is the agent's. Time is injected (the
//! transcript's times); nothing here does I/O.
//!
//! Hand-off happens at once when the customer asks for a person (a configured word,
//! as a whole word, accents and case folded: "agente", "humano", "agent", "human"),
//! when the matched article is a `handoff` topic, or after `misses` messages the
//! knowledge base could not answer surely.

use crate::dialplan::engine::{
    Ending as FlowEnding, HttpRequest, Input as FlowInput, Output as FlowOutput, Run,
};
use crate::dialplan::model::LookupBy;
use crate::kb::{Decision, Lang, Matcher};
use std::collections::VecDeque;
use std::time::Duration;

/// Hand-off words that are Spanish (the notice is then in Spanish).
const SPANISH_WORDS: &[&str] = &["agente", "humano", "persona", "asesor", "operador"];

/// What the bot keeps of a conversation (the oldest turns go first).
pub const MAX_TURNS: usize = 50;
/// What is kept of one message.
pub const MAX_TURN_CHARS: usize = 1000;

/// `[bot]` in the config file: when the first-level bot hands a conversation over.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// Words that ask for a person (whole words, any case, accents folded).
    pub handoff_words: Vec<String>,
    /// Messages the knowledge base could not answer before the bot hands off.
    pub misses: u32,
    /// An external bot instead of the knowledge base: the customers' messages are
    /// POSTed here (signed with `secret`); it answers and hands off through
    /// `/api/bot/conversations/{id}/...` with `token`. Empty: the built-in bot.
    pub url: String,
    pub secret: String,
    pub token: String,
    /// A text flow of the dialplans (`kind: text`) the bot runs instead of answering
    /// from the knowledge base alone. Empty: none.
    pub flow: String,
}

/// The most hand-off words a config may list.
pub const MAX_HANDOFF_WORDS: usize = 100;

impl BotConfig {
    /// What makes no sense in a `[bot]` section: the key, the value at fault and why.
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        if !(1..=20).contains(&self.misses) {
            let m = self.misses.to_string();
            return Some(("misses", m.clone(), format!("{m} is not 1 to 20")));
        }
        if self.handoff_words.len() > MAX_HANDOFF_WORDS {
            let why = format!("more than {MAX_HANDOFF_WORDS} words");
            return Some(("handoff_words", String::new(), why));
        }
        if !self.flow.is_empty() && !self.url.is_empty() {
            let why = "give an external bot's `url` or a `flow`, not both".to_string();
            return Some(("flow", self.flow.clone(), why));
        }
        if !self.url.is_empty() {
            if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
                let why = format!("\"{}\" is not an http(s) URL", self.url);
                return Some(("url", self.url.clone(), why));
            }
            for (key, v) in [("secret", &self.secret), ("token", &self.token)] {
                if v.len() < 16 {
                    let why = format!("an external bot's {key} must be at least 16 bytes");
                    return Some((key, v.clone(), why));
                }
            }
        }
        for w in &self.handoff_words {
            if w.is_empty() || w.chars().count() > 40 || !w.chars().all(char::is_alphanumeric) {
                let why = format!("\"{w}\" is not one word (letters and digits, at most 40)");
                return Some(("handoff_words", w.clone(), why));
            }
        }
        None
    }
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            handoff_words: [
                "agente", "humano", "persona", "asesor", "agent", "human", "person", "operator",
            ]
            .iter()
            .map(|w| w.to_string())
            .collect(),
            misses: 2,
            url: String::new(),
            secret: String::new(),
            token: String::new(),
            flow: String::new(),
        }
    }
}

/// One message of the conversation as the bot saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// `customer` or `bot`.
    pub from: &'static str,
    pub text: String,
    /// Unix milliseconds.
    pub at: u64,
    /// The article a bot's answer came from.
    pub article: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The customer asked for a person with this word.
    Asked(String),
    /// The topic always goes to a person (the article's id).
    Topic(String),
    /// This many messages had no sure answer.
    Misses(u32),
    /// The external bot handed over (its summary).
    Bot(String),
    /// The external bot could not be reached (why).
    Unreachable(String),
    /// The bot's flow handed over (its summary).
    Flow(String),
    /// The bot's flow broke at run time (why).
    FlowError(String),
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Asked(_) => "asked",
            Reason::Topic(_) => "topic",
            Reason::Misses(_) => "misses",
            Reason::Bot(_) => "bot",
            Reason::Unreachable(_) => "unreachable",
            Reason::Flow(_) => "flow",
            Reason::FlowError(_) => "flow_error",
        }
    }
}

/// The conversation goes to a person, with what the bot learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    pub reason: Reason,
    /// The last article matched (what the customer wants), if any.
    pub intent: Option<String>,
    /// One line for the agent.
    pub summary: String,
    pub transcript: Vec<Turn>,
    /// The language the customer wrote in, as far as the bot could tell.
    pub lang: Option<Lang>,
    /// The flow's `handoff` step: its queue (none: the channel's), priority, skills.
    pub queue: Option<String>,
    pub priority: Option<u8>,
    pub skills: Vec<String>,
    /// What the flow collected (its own variables: answers, lookups, webhooks).
    pub vars: Vec<(String, String)>,
}

/// The most variables a hand-off carries to the screen-pop, and the longest value.
pub const MAX_VARS: usize = 50;
pub const MAX_VAR_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this to the customer (from the bot).
    Reply {
        text: String,
        article: Option<String>,
        confidence: f32,
    },
    Handoff(Box<Handoff>),
    /// The conversation ended while the bot had it (no person was needed, or the
    /// customer left): the last article matched, if any.
    Ended {
        intent: Option<String>,
    },
    /// An external bot decides: send it the customer's message.
    Forward {
        text: String,
    },
    /// The flow looks the customer up: answer with [`Input::FlowLookup`].
    Lookup {
        by: LookupBy,
        value: String,
    },
    /// The flow calls a webhook: answer with [`Input::FlowHttp`].
    Http(HttpRequest),
    /// The flow waits: [`Input::FlowTimer`] with `id` after `after`.
    Timer {
        id: u64,
        after: Duration,
    },
    /// The flow ended without a person: close the conversation (contained).
    Resolved {
        intent: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The customer wrote `text` on `channel` (`webchat`, `whatsapp`, `sms`, `email`);
    /// `lang` when the channel knows it.
    CustomerSays {
        text: String,
        channel: String,
        lang: Option<Lang>,
    },
    /// A person took the conversation some other way (a supervisor, an agent's
    /// outbound message): the bot is silent from now on, without a hand-off.
    PersonJoined,
    /// The conversation is over (closed by the customer, a timeout or the system).
    Closed,
    /// The external bot's answer to send to the customer.
    BotReply { text: String },
    /// The external bot hands the conversation to a person.
    BotHandoff {
        intent: Option<String>,
        summary: Option<String>,
    },
    /// The external bot could not be reached: a person takes over.
    BotUnreachable { why: String },
    /// The flow's lookup: the customer's fields, none found, or why it failed.
    FlowLookup(Result<Option<Vec<(String, String)>>, String>),
    /// The flow's webhook: status and JSON body, or why it failed.
    FlowHttp(Result<(u16, serde_json::Value), String>),
    /// A flow timer fired.
    FlowTimer(u64),
}

/// A text flow the bot runs, and the channel it runs on.
struct FlowBot {
    run: Run,
    started: bool,
    channel: String,
}

pub struct Bot {
    cfg: BotConfig,
    transcript: VecDeque<Turn>,
    misses: u32,
    intent: Option<String>,
    lang: Option<Lang>,
    owned: bool,
    out: VecDeque<Output>,
    flow: Option<FlowBot>,
}

/// Lower case with accents folded, for comparing words.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            c => c,
        })
        .collect()
}

/// The bot's time (Unix milliseconds) as a flow's.
fn flow_time(now: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(now.min(i64::MAX as u64) as i64).unwrap_or_default()
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_TURN_CHARS).collect()
}

impl Bot {
    pub fn new(cfg: BotConfig) -> Bot {
        Bot {
            cfg,
            transcript: VecDeque::new(),
            misses: 0,
            intent: None,
            lang: None,
            owned: true,
            out: VecDeque::new(),
            flow: None,
        }
    }

    /// A bot that runs a text flow (`run`, not started: the customer's first message
    /// starts it) on `channel`; the hand-off words still hand over at once.
    pub fn with_flow(cfg: BotConfig, run: Run, channel: &str) -> Bot {
        let mut b = Bot::new(cfg);
        b.flow = Some(FlowBot {
            run,
            started: false,
            channel: channel.to_string(),
        });
        b
    }

    /// Whether the bot still owns the conversation (routing leaves it alone).
    pub fn owned(&self) -> bool {
        self.owned
    }

    pub fn transcript(&self) -> impl Iterator<Item = &Turn> {
        self.transcript.iter()
    }

    fn note(&mut self, turn: Turn) {
        if self.transcript.len() == MAX_TURNS {
            self.transcript.pop_front();
        }
        self.transcript.push_back(turn);
    }

    fn reply(&mut self, now: u64, text: String, article: Option<String>, confidence: f32) {
        if text.is_empty() {
            return;
        }
        self.note(Turn {
            from: "bot",
            text: clip(&text),
            at: now,
            article: article.clone(),
        });
        self.out.push_back(Output::Reply {
            text,
            article,
            confidence,
        });
    }

    fn hand_off(&mut self, now: u64, reason: Reason, said: &str) {
        self.hand_off_to(now, reason, said, Default::default());
    }

    fn hand_off_to(
        &mut self,
        now: u64,
        reason: Reason,
        said: &str,
        to: crate::dialplan::engine::HandoffRequest,
    ) {
        let es = self.lang == Some(Lang::Es);
        let tell = if es {
            "Le comunico con una persona del equipo; ya tiene esta conversación."
        } else {
            "I am passing you to a person on the team; they have this conversation."
        };
        // An external bot, or a flow, says what it wants before it hands off.
        if !matches!(reason, Reason::Bot(_) | Reason::Flow(_)) {
            self.reply(now, tell.to_string(), None, 0.0);
        }
        let summary = match &reason {
            Reason::Asked(w) => format!("asked for a person (\"{w}\") after: {said}"),
            Reason::Topic(id) => format!("topic `{id}` goes to a person: {said}"),
            Reason::Misses(n) => format!("{n} messages without a sure answer; last: {said}"),
            Reason::Bot(s) => s.clone(),
            Reason::Unreachable(why) => {
                format!("the bot could not be reached ({why}); last: {said}")
            }
            Reason::Flow(s) => s.clone(),
            Reason::FlowError(why) => format!("the bot's flow broke ({why}); last: {said}"),
        };
        self.owned = false;
        let vars = self.flow_vars();
        self.out.push_back(Output::Handoff(Box::new(Handoff {
            reason,
            intent: self.intent.clone(),
            summary: clip(&summary),
            transcript: self.transcript.iter().cloned().collect(),
            lang: self.lang,
            queue: to.queue,
            priority: to.priority,
            skills: to.skills,
            vars,
        })));
    }

    /// The flow's own variables (not the gateway's), bounded, for the screen-pop.
    fn flow_vars(&self) -> Vec<(String, String)> {
        use crate::dialplan::problem::{BUILTINS, TEXT_BUILTINS};
        let Some(f) = &self.flow else {
            return vec![];
        };
        f.run
            .vars()
            .iter()
            .filter(|(k, _)| {
                !BUILTINS.contains(&k.as_str())
                    && !TEXT_BUILTINS.contains(&k.as_str())
                    && !k.starts_with("queue.")
            })
            .take(MAX_VARS)
            .map(|(k, v)| (k.clone(), v.chars().take(MAX_VAR_CHARS).collect()))
            .collect()
    }

    /// Carries out what the flow decided, answering its `match_kb` steps from `kb`.
    fn pump(&mut self, now: u64, kb: &Matcher) {
        let at = flow_time(now);
        loop {
            let Some(f) = self.flow.as_mut() else { return };
            let Some(o) = f.run.poll() else { return };
            match o {
                FlowOutput::Reply(text) => self.reply(now, clip(&text), None, 1.0),
                FlowOutput::MatchKb { text } => {
                    let a = kb.flow_answer(&text, &f.channel, self.lang);
                    if let Some(a) = &a {
                        self.intent = Some(a.article.clone());
                        self.lang = Lang::parse(&a.lang).or(self.lang);
                    }
                    f.run.handle(at, FlowInput::KbResult(a));
                }
                FlowOutput::Lookup { by, value } => {
                    self.out.push_back(Output::Lookup { by, value });
                }
                FlowOutput::Http(r) => self.out.push_back(Output::Http(r)),
                FlowOutput::Timer { id, after } => {
                    self.out.push_back(Output::Timer { id, after });
                }
                FlowOutput::Handoff(h) => {
                    if h.intent.is_some() {
                        self.intent = h.intent.clone();
                    }
                    let said = self.last_said();
                    let reason = Reason::Flow(clip(&h.summary));
                    self.hand_off_to(now, reason, &said, h);
                }
                FlowOutput::Done(FlowEnding::Error(e)) => {
                    let said = self.last_said();
                    self.hand_off(now, Reason::FlowError(e), &said);
                }
                FlowOutput::Done(FlowEnding::Hangup) if self.owned => {
                    self.owned = false;
                    let intent = self.intent.clone();
                    self.out.push_back(Output::Resolved { intent });
                }
                FlowOutput::Step { flow, step, kind } => {
                    tracing::debug!(%flow, %step, kind, "bot flow step");
                }
                FlowOutput::Note(n) => tracing::debug!(note = %n, "bot flow"),
                _ => {}
            }
        }
    }

    pub fn handle(&mut self, now: u64, input: Input, kb: &Matcher) {
        if !self.owned {
            return;
        }
        let (text, channel, lang) = match input {
            Input::PersonJoined => {
                self.owned = false;
                return;
            }
            Input::Closed => {
                self.owned = false;
                let intent = self.intent.clone();
                return self.out.push_back(Output::Ended { intent });
            }
            Input::BotReply { text } => {
                let text = clip(text.trim());
                return self.reply(now, text, None, 1.0);
            }
            Input::BotHandoff { intent, summary } => {
                if intent.is_some() {
                    self.intent = intent;
                }
                let said = self.last_said();
                let summary = summary
                    .map(|s| clip(s.trim()))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("the bot handed over after: {said}"));
                return self.hand_off(now, Reason::Bot(summary), &said);
            }
            Input::BotUnreachable { why } => {
                let said = self.last_said();
                return self.hand_off(now, Reason::Unreachable(clip(&why)), &said);
            }
            Input::FlowLookup(r) => {
                return self.flow_input(
                    now,
                    kb,
                    match r {
                        Ok(found) => FlowInput::LookupResult(found),
                        Err(e) => FlowInput::LookupFailed(e),
                    },
                )
            }
            Input::FlowHttp(r) => return self.flow_input(now, kb, FlowInput::HttpResult(r)),
            Input::FlowTimer(id) => return self.flow_input(now, kb, FlowInput::Timer(id)),
            Input::CustomerSays {
                text,
                channel,
                lang,
            } => (text, channel, lang),
        };
        let said = clip(text.trim());
        if lang.is_some() {
            self.lang = lang;
        }
        self.note(Turn {
            from: "customer",
            text: said.clone(),
            at: now,
            article: None,
        });
        let folded = fold(&said);
        let words: Vec<&str> = folded
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(w) = self
            .cfg
            .handoff_words
            .iter()
            .find(|h| words.contains(&fold(h).as_str()))
        {
            let w = w.clone();
            // Asked in Spanish ("agente", "humano"...): told in Spanish.
            if SPANISH_WORDS.contains(&fold(&w).as_str()) {
                self.lang = Some(Lang::Es);
            }
            return self.hand_off(now, Reason::Asked(w), &said);
        }
        if !self.cfg.url.is_empty() {
            return self.out.push_back(Output::Forward { text: said });
        }
        if let Some(f) = self.flow.as_mut() {
            let at = flow_time(now);
            if f.started {
                f.run.handle(at, FlowInput::Text(said));
            } else {
                // The first message starts the flow (it is `${message}`).
                f.started = true;
                f.run.set_var("channel", &f.channel.clone());
                f.run.set_var("message", &said);
                f.run.start(at);
            }
            return self.pump(now, kb);
        }
        match kb.decide(&said, self.lang) {
            Decision::Answer(h) => {
                self.lang = Some(h.article.lang);
                self.intent = Some(h.article.id.clone());
                let text = h.article.answer_for(&channel).to_string();
                self.reply(now, text, Some(h.article.id.clone()), h.confidence);
            }
            Decision::Handoff(h) => {
                self.lang = Some(h.article.lang);
                self.intent = Some(h.article.id.clone());
                let text = h.article.answer_for(&channel).to_string();
                self.reply(now, text, Some(h.article.id.clone()), h.confidence);
                let id = h.article.id.clone();
                self.hand_off(now, Reason::Topic(id), &said);
            }
            Decision::NotFound(_) => {
                self.misses += 1;
                if self.misses >= self.cfg.misses.max(1) {
                    let n = self.misses;
                    return self.hand_off(now, Reason::Misses(n), &said);
                }
                let sorry = if self.lang == Some(Lang::Es) {
                    "Disculpe, no le entendí. ¿Puede decirlo de otra forma? O escriba «agente» para hablar con una persona."
                } else {
                    "Sorry, I did not understand. Could you say it another way? Or write \"agent\" to talk to a person."
                };
                self.reply(now, sorry.to_string(), None, 0.0);
            }
        }
    }

    fn flow_input(&mut self, now: u64, kb: &Matcher, input: FlowInput) {
        let Some(f) = self.flow.as_mut() else { return };
        let at = flow_time(now);
        f.run.handle(at, input);
        self.pump(now, kb);
    }

    /// The customer's last message (for a summary).
    fn last_said(&self) -> String {
        self.transcript
            .iter()
            .rev()
            .find(|t| t.from == "customer")
            .map(|t| t.text.clone())
            .unwrap_or_default()
    }

    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests;
