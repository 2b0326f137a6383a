//! A loaded flow: steps with their positions, branch targets resolved to step indexes,
//! prompts decoded, regexes compiled, time zones resolved. Built by `decode`, read by the
//! engine and the checker.

use super::template::Template;
use super::yaml::Pos;
pub use crate::kpi::Metric;
use crate::media::player::Samples;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub type StepId = usize;

/// A branch target: a step of the same flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub step: StepId,
    pub pos: Pos,
}

/// One thing to play.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A WAV file, decoded when the flow loaded.
    File {
        name: String,
        pos: Pos,
    },
    /// Text to speech.
    Say {
        text: Template,
        pos: Pos,
    },
    Silence(Duration),
    /// The 400 ms 1 kHz beep before a voicemail.
    Beep,
}

#[derive(Debug, Clone)]
pub struct Gather {
    pub prompt: Vec<Prompt>,
    pub min: usize,
    pub max: usize,
    pub finish: Option<char>,
    pub timeout: Duration,
    pub inter_digit: Duration,
    pub retries: u32,
    pub retry_prompt: Vec<Prompt>,
    pub into: Option<String>,
    pub pattern: Option<regex::Regex>,
    pub invalid: Option<Target>,
    pub on_timeout: Option<Target>,
}

#[derive(Debug, Clone)]
pub struct Menu {
    pub prompt: Vec<Prompt>,
    pub options: Vec<(String, Target)>,
    pub timeout: Duration,
    pub inter_digit: Duration,
    pub retries: u32,
    pub retry_prompt: Vec<Prompt>,
    pub invalid: Option<Target>,
    pub on_timeout: Option<Target>,
}

#[derive(Debug, Clone)]
pub enum Cond {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    Matches(regex::Regex),
    StartsWith(String),
    LessThan(f64),
    AtMost(f64),
    GreaterThan(f64),
    AtLeast(f64),
    Empty(bool),
}

#[derive(Debug, Clone)]
pub struct Case {
    pub value: Option<Template>,
    pub cond: Cond,
    pub goto: Target,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub value: Option<Template>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone)]
pub struct Hours {
    pub tz: jiff::tz::TimeZone,
    pub tz_name: String,
    /// Open intervals per weekday (Monday = 0), minutes since midnight, end exclusive.
    pub week: [Vec<(u16, u16)>; 7],
    pub holidays: Vec<jiff::civil::Date>,
    pub open: Option<Target>,
    pub closed: Option<Target>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupBy {
    Caller,
    Phone,
    Account,
    Email,
    Id,
}

impl LookupBy {
    pub fn name(self) -> &'static str {
        match self {
            LookupBy::Caller => "caller",
            LookupBy::Phone => "phone",
            LookupBy::Account => "account",
            LookupBy::Email => "email",
            LookupBy::Id => "id",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub by: LookupBy,
    pub value: Template,
    pub into: String,
    pub found: Option<Target>,
    pub not_found: Option<Target>,
}

#[derive(Debug, Clone)]
pub struct Http {
    pub method: String,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    /// JSON object body (values are templates, sent as strings).
    pub body: Option<Vec<(String, Template)>>,
    pub timeout: Duration,
    pub into: String,
    pub failure: Option<Target>,
}

#[derive(Debug, Clone)]
pub struct Announce {
    pub every: Duration,
    pub prompts: Vec<Prompt>,
}

#[derive(Debug, Clone)]
pub struct Enqueue {
    pub queue: String,
    pub priority: u8,
    pub skills: Vec<String>,
    /// Played while waiting, looped (none: comfort noise).
    pub hold: Vec<Prompt>,
    pub announce: Option<Announce>,
    pub max_wait: Option<Duration>,
    pub on_timeout: Option<Target>,
    /// Where the caller goes on when the agent hangs up first (`agent_hangup:`, a
    /// survey); without it the call ends with the agent.
    pub agent_hangup: Option<Target>,
}

/// A question answered with keys (a post-call survey): a gather whose answer must be
/// in the metric's range, kept as the interaction's survey answer.
#[derive(Debug, Clone)]
pub struct Survey {
    pub metric: Metric,
    /// The keys: one for CSAT and CES, up to two for NPS (`10`, or `#` after one).
    pub gather: Gather,
}

/// A recording notice (`recording_notice`): the notice played with one key listened
/// for; that key turns recording off for the call and is kept as the caller's
/// withdrawn recording consent, with the notice's version and text as its evidence.
#[derive(Debug, Clone)]
pub struct RecordingNotice {
    /// The notice and how long to listen after it (one key, no retries).
    pub gather: Gather,
    pub opt_out: char,
    /// The notice's version (what the caller was told, for the evidence).
    pub version: String,
    /// Where the flow goes when the caller opted out (none: the next step).
    pub opted_out: Option<Target>,
}

#[derive(Debug, Clone)]
pub enum TransferTo {
    Uri(Template),
    Extension(Template),
    Number {
        number: Template,
        trunk: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub to: TransferTo,
    pub timeout: Duration,
    pub failure: Option<Target>,
}

#[derive(Debug, Clone)]
pub struct Voicemail {
    pub prompt: Vec<Prompt>,
    pub beep: bool,
    pub max_length: Duration,
    pub finish: Option<char>,
}

/// What a text flow's `ask` accepts.
#[derive(Debug, Clone)]
pub enum Validate {
    /// Any text that is not blank.
    Text,
    /// Digits (spaces and dashes between them are dropped), like an account number.
    Number,
    /// One address: `local@domain.tld`, no spaces.
    Email,
    /// A phone number: `+` and 6 to 15 digits (spaces, dashes, dots and brackets
    /// dropped).
    Phone,
    /// The whole (trimmed) message must match.
    Pattern(regex::Regex),
}

impl Validate {
    pub fn name(&self) -> &'static str {
        match self {
            Validate::Text => "text",
            Validate::Number => "number",
            Validate::Email => "email",
            Validate::Phone => "phone",
            Validate::Pattern(_) => "pattern",
        }
    }

    /// The answer as kept (normalised), or `None` when the message is not one.
    pub fn accept(&self, text: &str) -> Option<String> {
        let t = text.trim();
        match self {
            Validate::Text => (!t.is_empty()).then(|| t.to_string()),
            Validate::Number => {
                let d: String = t.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
                (!d.is_empty() && d.len() <= 32 && d.chars().all(|c| c.is_ascii_digit()))
                    .then_some(d)
            }
            Validate::Email => {
                let (local, domain) = t.split_once('@')?;
                let ok = !local.is_empty()
                    && t.len() <= 254
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !t.chars().any(|c| c.is_whitespace() || c.is_control());
                ok.then(|| format!("{local}@{}", domain.to_lowercase()))
            }
            Validate::Phone => {
                let plus = t.starts_with('+');
                let d: String = t
                    .trim_start_matches('+')
                    .chars()
                    .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                    .collect();
                ((6..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit())).then(|| {
                    if plus {
                        format!("+{d}")
                    } else {
                        d
                    }
                })
            }
            Validate::Pattern(r) => r.is_match(t).then(|| t.to_string()),
        }
    }
}

/// `ask` (text flows): a question sent to the customer, and their next message as the
/// answer, validated.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The question (none: just wait for the next message).
    pub prompt: Option<Template>,
    pub validate: Validate,
    pub into: Option<String>,
    pub retries: u32,
    /// Sent instead of the question after an answer that is not valid.
    pub retry_prompt: Option<Template>,
    pub timeout: Duration,
    pub invalid: Option<Target>,
    pub on_timeout: Option<Target>,
}

/// `match_kb` (text flows): the knowledge base's answer to a text.
#[derive(Debug, Clone)]
pub struct MatchKb {
    pub text: Template,
    pub into: String,
    pub found: Option<Target>,
    pub not_found: Option<Target>,
    /// Where an article that always goes to a person leads (none: a hand-off at once).
    pub handoff: Option<Target>,
}

/// `handoff` (text flows): the conversation goes to a person.
#[derive(Debug, Clone, Default)]
pub struct Handoff {
    /// None: the channel's queue.
    pub queue: Option<String>,
    pub priority: Option<u8>,
    pub skills: Vec<String>,
    pub summary: Option<Template>,
    pub intent: Option<Template>,
}

/// What a flow talks over: a call (`voice`, the default) or a text conversation
/// (`text`: web chat, WhatsApp, SMS, e-mail), where the bot runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Voice,
    Text,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Voice => "voice",
            Kind::Text => "text",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Goto {
    Step(Target),
    Flow {
        flow: String,
        step: Option<String>,
        pos: Pos,
    },
}

#[derive(Debug, Clone)]
pub enum Action {
    Answer,
    Play {
        prompts: Vec<Prompt>,
        barge_in: bool,
    },
    Pause(Duration),
    Gather(Gather),
    Menu(Menu),
    Set(Vec<(String, Template)>),
    Branch(Branch),
    Hours(Hours),
    Lookup(Lookup),
    Http(Http),
    Enqueue(Enqueue),
    Transfer(Transfer),
    Voicemail(Voicemail),
    Survey(Survey),
    Record(bool),
    RecordingNotice(RecordingNotice),
    Goto(Goto),
    Hangup,
    /// Text flows: a message to the customer.
    Reply(Template),
    Ask(Ask),
    MatchKb(MatchKb),
    Handoff(Handoff),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Answer => "answer",
            Action::Play { .. } => "play",
            Action::Pause(_) => "pause",
            Action::Gather(_) => "gather",
            Action::Menu(_) => "menu",
            Action::Set(_) => "set",
            Action::Branch(_) => "branch",
            Action::Hours(_) => "hours",
            Action::Lookup(_) => "lookup",
            Action::Http(_) => "http",
            Action::Enqueue(_) => "enqueue",
            Action::Transfer(_) => "transfer",
            Action::Voicemail(_) => "voicemail",
            Action::Survey(_) => "survey",
            Action::Record(_) => "record",
            Action::RecordingNotice(_) => "recording_notice",
            Action::Goto(_) => "goto",
            Action::Hangup => "hangup",
            Action::Reply(_) => "reply",
            Action::Ask(_) => "ask",
            Action::MatchKb(_) => "match_kb",
            Action::Handoff(_) => "handoff",
        }
    }

    /// The kind of flow a step belongs in (`None`: both).
    pub fn only_in(&self) -> Option<Kind> {
        match self {
            Action::Set(_)
            | Action::Branch(_)
            | Action::Hours(_)
            | Action::Lookup(_)
            | Action::Http(_)
            | Action::Goto(_)
            | Action::Hangup => None,
            Action::Reply(_) | Action::Ask(_) | Action::MatchKb(_) | Action::Handoff(_) => {
                Some(Kind::Text)
            }
            _ => Some(Kind::Voice),
        }
    }

    /// Whether the step waits for the caller or for time to pass (so a loop through it
    /// cannot spin).
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Action::Play { .. }
                | Action::Pause(_)
                | Action::Gather(_)
                | Action::Survey(_)
                | Action::RecordingNotice(_)
                | Action::Menu(_)
                | Action::Enqueue(_)
                | Action::Transfer(_)
                | Action::Voicemail(_)
                | Action::Ask(_)
        )
    }

    /// Whether the flow can go on after this step (through `next` or a branch).
    pub fn terminal(&self) -> bool {
        matches!(self, Action::Hangup | Action::Goto(_) | Action::Handoff(_))
    }

    /// The keys a `gather` or `survey` step collects.
    pub fn gather(&self) -> Option<&Gather> {
        match self {
            Action::Gather(g)
            | Action::Survey(Survey { gather: g, .. })
            | Action::RecordingNotice(RecordingNotice { gather: g, .. }) => Some(g),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub pos: Pos,
    pub action: Action,
    /// `next`, or (when absent) the following step in the file; `None` at the end of
    /// the file: the call is hung up.
    pub next: Option<Target>,
    pub explicit_next: bool,
}

impl Step {
    /// Every step this one can lead to, with the variables defined on that edge.
    pub fn edges(&self) -> Vec<(StepId, Vec<String>)> {
        let mut e: Vec<(StepId, Vec<String>)> = Vec::new();
        let next = self.next.map(|t| t.step);
        fn add(
            e: &mut Vec<(StepId, Vec<String>)>,
            next: Option<StepId>,
            t: Option<Target>,
            defs: Vec<String>,
        ) {
            if let Some(s) = t.map(|t| t.step).or(next) {
                e.push((s, defs));
            }
        }
        match &self.action {
            Action::Hangup | Action::Goto(Goto::Flow { .. }) | Action::Handoff(_) => {}
            Action::Ask(a) => {
                let mut ok = vec!["message".to_string()];
                ok.extend(a.into.clone());
                add(&mut e, next, None, ok);
                add(&mut e, next, a.invalid, vec!["message".into()]);
                add(&mut e, next, a.on_timeout, vec![]);
            }
            Action::MatchKb(m) => {
                let found = vec![format!("{}.*", m.into)];
                add(&mut e, next, m.found, found.clone());
                add(&mut e, next, m.not_found, vec![]);
                if let Some(t) = m.handoff {
                    e.push((t.step, found));
                }
            }
            Action::Goto(Goto::Step(t)) => e.push((t.step, vec![])),
            Action::Set(vars) => add(
                &mut e,
                next,
                None,
                vars.iter().map(|(k, _)| k.clone()).collect(),
            ),
            Action::Survey(s) => {
                let ok = vec!["digits".to_string(), format!("survey.{}", s.metric.name())];
                add(&mut e, next, None, ok);
                add(&mut e, next, s.gather.invalid, vec!["digits".into()]);
                add(&mut e, next, s.gather.on_timeout, vec!["digits".into()]);
            }
            Action::RecordingNotice(n) => {
                add(&mut e, next, None, vec!["digits".into()]);
                add(&mut e, next, n.opted_out, vec!["digits".into()]);
            }
            Action::Gather(g) => {
                let mut ok = vec!["digits".to_string()];
                ok.extend(g.into.clone());
                add(&mut e, next, None, ok);
                add(&mut e, next, g.invalid, vec!["digits".into()]);
                add(&mut e, next, g.on_timeout, vec!["digits".into()]);
            }
            Action::Menu(m) => {
                for (_, t) in &m.options {
                    e.push((t.step, vec!["digits".into()]));
                }
                add(&mut e, next, m.invalid, vec!["digits".into()]);
                add(&mut e, next, m.on_timeout, vec!["digits".into()]);
            }
            Action::Branch(b) => {
                for c in &b.cases {
                    e.push((c.goto.step, vec![]));
                }
                add(&mut e, next, None, vec![]);
            }
            Action::Hours(h) => {
                add(&mut e, next, h.open, vec![]);
                add(&mut e, next, h.closed, vec![]);
            }
            Action::Lookup(l) => {
                add(&mut e, next, l.found, vec![format!("{}.*", l.into)]);
                add(&mut e, next, l.not_found, vec![]);
            }
            Action::Http(h) => {
                add(&mut e, next, None, vec![format!("{}.*", h.into)]);
                add(&mut e, next, h.failure, vec![format!("{}.error", h.into)]);
            }
            Action::Enqueue(q) => {
                if q.max_wait.is_some() {
                    add(&mut e, next, q.on_timeout, vec![]);
                }
                if let Some(t) = q.agent_hangup {
                    e.push((t.step, vec![]));
                }
            }
            Action::Transfer(t) => add(&mut e, next, t.failure, vec!["transfer.error".into()]),
            _ => add(&mut e, next, None, vec![]),
        }
        e
    }
}

/// Inputs and expectations of one flow test.
#[derive(Debug, Clone, Default)]
pub struct TestCase {
    pub name: String,
    pub pos: Pos,
    pub caller: String,
    pub dialled: String,
    pub trunk: String,
    pub at: Option<jiff::Timestamp>,
    pub digits: Vec<String>,
    /// Text flows: the customer's messages, the first one starting the conversation.
    pub messages: Vec<String>,
    /// Text flows: `webchat`, `whatsapp`, `sms` or `email` (default `webchat`).
    pub channel: String,
    pub variables: Vec<(String, String)>,
    /// `by:value` → fields (`None`: not found).
    pub lookup: HashMap<String, Option<Vec<(String, String)>>>,
    /// `METHOD url` or `url` → (status, JSON body) or an error.
    pub http: HashMap<String, Result<(u16, serde_json::Value), String>>,
    /// Transfers fail with this reason (busy, no answer...).
    pub transfer_fails: Option<String>,
    /// An agent answers the `enqueue` and hangs up first (the flow's `agent_hangup`
    /// step, a survey, goes on; later key groups answer it).
    pub agent_hangs_up: bool,
    pub expect_path: Option<(Vec<String>, Pos)>,
    pub expect_ends: Option<(String, Pos)>,
    pub expect_vars: Vec<(String, String, Pos)>,
}

#[derive(Debug)]
pub struct Flow {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    pub kind: Kind,
    /// Variables a flow reached by `goto` expects from the flow that called it.
    pub inputs: Vec<String>,
    pub timezone: jiff::tz::TimeZone,
    pub max_steps: u32,
    pub steps: Vec<Step>,
    pub index: HashMap<String, StepId>,
    pub start: StepId,
    pub tests: Vec<TestCase>,
    /// Prompt audio by name, decoded at load.
    pub prompts: HashMap<String, Samples>,
    /// A short hash of the source, to tell versions apart in logs.
    pub version: String,
}

impl Flow {
    pub fn step(&self, name: &str) -> Option<StepId> {
        self.index.get(name).copied()
    }

    pub fn uses_say(&self) -> bool {
        fn has(p: &[Prompt]) -> bool {
            p.iter().any(|p| matches!(p, Prompt::Say { .. }))
        }
        self.steps.iter().any(|s| match &s.action {
            Action::Play { prompts, .. } => has(prompts),
            Action::Gather(g)
            | Action::Survey(Survey { gather: g, .. })
            | Action::RecordingNotice(RecordingNotice { gather: g, .. }) => {
                has(&g.prompt) || has(&g.retry_prompt)
            }
            Action::Menu(m) => has(&m.prompt) || has(&m.retry_prompt),
            Action::Enqueue(q) => {
                has(&q.hold) || q.announce.as_ref().is_some_and(|a| has(&a.prompts))
            }
            Action::Voicemail(v) => has(&v.prompt),
            _ => false,
        })
    }
}
