//! The flow interpreter, sans-IO: inputs in (a key press, a prompt finished, a timer, a
//! lookup or webhook answer, the queue's news), outputs out (answer, play, start a
//! timer, look up, call a webhook, enqueue, transfer, record, hang up). Wall-clock time
//! is passed in with every call; the engine never reads a clock, owns no socket and
//! spawns nothing, so the simulator and tests run a flow in microseconds and the call
//! actor drives the same code with real media.
//!
//! Key presses made while no `gather` or `menu` is listening are kept (type-ahead) for
//! the next one, so callers who know the menu need not wait for the prompts.

use super::model::*;
use super::template::Vars;
use crate::media::player::Samples;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Where flows named by `goto: {flow: ...}` come from.
pub trait FlowSource: Send + Sync {
    fn flow(&self, name: &str) -> Option<Arc<Flow>>;
}

/// Facts about the call known before the flow starts.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    pub caller: String,
    pub caller_name: String,
    pub dialled: String,
    pub trunk: String,
    pub call_id: String,
}

#[derive(Debug, Clone)]
pub enum Input {
    Digit(char),
    PlayDone(u64),
    Timer(u64),
    /// The customer's fields, or `None` when no customer matches.
    LookupResult(Option<Vec<(String, String)>>),
    LookupFailed(String),
    /// The webhook's status and JSON body, or why it failed (timeout, refused...).
    HttpResult(Result<(u16, serde_json::Value), String>),
    QueueStatus {
        position: u32,
        wait: Duration,
    },
    /// An agent (enqueue) or the transfer target answered: the flow is done.
    Connected,
    TransferFailed(String),
    VoicemailDone {
        seconds: u32,
    },
    /// The caller hung up (text flows: the conversation ended).
    Hangup,
    /// Text flows: the customer wrote this.
    Text(String),
    /// Text flows: the knowledge base's answer to a `match_kb` (none: no sure answer).
    KbResult(Option<KbAnswer>),
}

/// The knowledge base's answer to a `match_kb` step.
#[derive(Debug, Clone, PartialEq)]
pub struct KbAnswer {
    /// The article's id.
    pub article: String,
    /// Its answer for this conversation's channel.
    pub answer: String,
    pub confidence: f32,
    /// The article is a topic that always goes to a person.
    pub handoff: bool,
    /// The article's language (`en`, `es`).
    pub lang: String,
}

/// A `handoff` step, rendered: the conversation goes to a person.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HandoffRequest {
    /// None: the channel's queue.
    pub queue: Option<String>,
    pub priority: Option<u8>,
    pub skills: Vec<String>,
    pub summary: String,
    pub intent: Option<String>,
}

/// The longest customer message a text flow keeps (in characters).
pub const MAX_TEXT: usize = 4000;

/// One thing to play, resolved.
#[derive(Debug, Clone)]
pub enum PlayItem {
    Audio { name: String, samples: Samples },
    Say(String),
    Silence(Duration),
    Beep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Uri(String),
    Extension(String),
    Number {
        number: String,
        trunk: Option<String>,
    },
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Uri(u) => f.write_str(u),
            Dest::Extension(e) => f.write_str(e),
            Dest::Number {
                number,
                trunk: Some(t),
            } => write!(f, "{number} via {t}"),
            Dest::Number {
                number,
                trunk: None,
            } => f.write_str(number),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The flow hung up (a `hangup` step, or the end of the flow).
    Hangup,
    CallerHangup,
    /// An agent of this queue took the call.
    Answered(String),
    Transferred(Dest),
    /// The flow broke at run time (step limit, a missing flow).
    Error(String),
    /// Text flows: handed to a person (the queue named, or "" for the channel's).
    HandedOff(String),
}

#[derive(Debug, Clone)]
pub enum Output {
    /// A step starts (for logs and the trace).
    Step {
        flow: String,
        step: String,
        kind: &'static str,
    },
    Answer,
    Play {
        id: u64,
        items: Vec<PlayItem>,
        barge_in: bool,
    },
    StopPlayback,
    Timer {
        id: u64,
        after: Duration,
    },
    Lookup {
        by: LookupBy,
        value: String,
    },
    Http(HttpRequest),
    Enqueue {
        queue: String,
        priority: u8,
        skills: Vec<String>,
    },
    /// Leave the queue (its `max_wait` passed).
    Dequeue,
    Transfer {
        to: Dest,
        timeout: Duration,
    },
    StartVoicemail {
        max_length: Duration,
    },
    StopVoicemail,
    Record(bool),
    /// The caller pressed the recording notice's opt-out key: recording stops for this
    /// call and their withdrawn recording consent is kept, with what they heard.
    RecordingOptOut {
        /// The notice's version.
        version: String,
        /// What the notice said (spoken texts as rendered, files by name).
        notice: String,
        key: char,
    },
    /// A `survey` step's answer, in its metric's range: kept as the interaction's.
    Survey {
        metric: Metric,
        score: i64,
    },
    Hangup,
    /// Text flows: send this to the customer.
    Reply(String),
    /// Text flows: ask the knowledge base (answer with [`Input::KbResult`]).
    MatchKb {
        text: String,
    },
    /// Text flows: the conversation goes to a person (the run is done).
    Handoff(HandoffRequest),
    /// What happened, in words (gathered digits, branch taken...).
    Note(String),
    Done(Ending),
}

/// A webhook the flow calls (`http` step), its templates rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub timeout: Duration,
}

/// What the run waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A prompt to finish (its id).
    Prompt(u64),
    /// Key presses (a gather or menu is listening; a timer is set or the prompt plays).
    Digits,
    Timer,
    Lookup,
    Http,
    Queue,
    Transfer,
    Voicemail,
    /// Text flows: the customer's next message (an `ask`).
    Message,
    /// Text flows: the knowledge base's answer.
    Kb,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Ask,
    Collect,
    Pause,
    Announce,
    MaxWait,
}

#[derive(Debug)]
struct Collect {
    digits: String,
    attempt: u32,
    playing: Option<u64>,
}

#[derive(Debug)]
enum State {
    Running,
    Playing(u64),
    Pausing,
    Collecting(Collect),
    Lookup,
    Http,
    Queued {
        playing: Option<u64>,
        announcing: bool,
    },
    Transferring(Dest),
    VoicemailPrompt(u64),
    Voicemail,
    /// An `ask` waits for the customer's answer (wrong answers so far).
    Asking(u32),
    Matching,
    Done(Ending),
}

pub struct Run {
    source: Arc<dyn FlowSource>,
    first_flow: String,
    flow: Arc<Flow>,
    at: StepId,
    vars: Vars,
    state: State,
    steps: u32,
    typeahead: String,
    next_id: u64,
    timers: Vec<(u64, TimerKind)>,
    answered: bool,
    path: Vec<String>,
    out: VecDeque<Output>,
    pending: Option<StepId>,
    /// Text flows: the article the knowledge base matched last (a hand-off's intent).
    last_article: Option<String>,
}

const TYPEAHEAD_MAX: usize = 32;

impl Run {
    pub fn new(source: Arc<dyn FlowSource>, flow: Arc<Flow>, info: &CallInfo) -> Run {
        let mut vars = Vars::new();
        vars.insert("caller".into(), info.caller.clone());
        vars.insert("caller_name".into(), info.caller_name.clone());
        vars.insert("dialled".into(), info.dialled.clone());
        vars.insert("trunk".into(), info.trunk.clone());
        vars.insert("call_id".into(), info.call_id.clone());
        vars.insert("flow".into(), flow.name.clone());
        Run {
            source,
            first_flow: flow.name.clone(),
            at: flow.start,
            flow,
            vars,
            state: State::Running,
            steps: 0,
            typeahead: String::new(),
            next_id: 1,
            timers: vec![],
            answered: false,
            path: vec![],
            out: VecDeque::new(),
            pending: None,
            last_article: None,
        }
    }

    /// Presets a variable (test inputs, values carried over from another channel).
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_string(), value.to_string());
    }

    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Steps taken so far: `step`, or `flow/step` in a flow reached by `goto`.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    pub fn ending(&self) -> Option<&Ending> {
        match &self.state {
            State::Done(e) => Some(e),
            _ => None,
        }
    }

    /// The queue the caller waits in, if any.
    pub fn queued(&self) -> bool {
        matches!(self.state, State::Queued { .. })
    }

    pub fn transferring(&self) -> Option<&Dest> {
        match &self.state {
            State::Transferring(d) => Some(d),
            _ => None,
        }
    }

    pub fn wait(&self) -> Wait {
        match &self.state {
            State::Running => Wait::Done,
            State::Playing(id) | State::VoicemailPrompt(id) => Wait::Prompt(*id),
            State::Pausing => Wait::Timer,
            State::Collecting(c) => match c.playing {
                Some(id) => Wait::Prompt(id),
                None => Wait::Digits,
            },
            State::Lookup => Wait::Lookup,
            State::Http => Wait::Http,
            State::Queued { .. } => Wait::Queue,
            State::Transferring(_) => Wait::Transfer,
            State::Voicemail => Wait::Voicemail,
            State::Asking(_) => Wait::Message,
            State::Matching => Wait::Kb,
            State::Done(_) => Wait::Done,
        }
    }

    /// Whether a timer this run asked for still matters (later ones replace earlier).
    pub fn timer_live(&self, id: u64) -> bool {
        self.timers.iter().any(|(t, _)| *t == id)
    }

    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Runs the first steps. Does nothing once the run ended (the caller may hang up
    /// before the flow starts).
    pub fn start(&mut self, now: jiff::Timestamp) {
        if !matches!(self.state, State::Running) || !self.path.is_empty() {
            return;
        }
        let s = self.flow.start;
        self.go(now, Some(s));
    }

    /// The agent hung up first on a call this run put through a queue: when that
    /// `enqueue` step names an `agent_hangup` step (a survey), the caller goes on
    /// there (keys pressed while talking are dropped) and this is `true`; otherwise
    /// the run stays ended and the call ends with the agent.
    pub fn agent_left(&mut self, now: jiff::Timestamp) -> bool {
        if !matches!(self.state, State::Done(Ending::Answered(_))) {
            return false;
        }
        let Action::Enqueue(q) = &self.flow.steps[self.at].action else {
            return false;
        };
        let Some(t) = q.agent_hangup else {
            return false;
        };
        self.typeahead.clear();
        self.note("the agent hung up; the caller goes on".into());
        self.go(now, Some(t.step));
        true
    }

    pub fn handle(&mut self, now: jiff::Timestamp, input: Input) {
        if matches!(self.state, State::Done(_)) {
            return;
        }
        match input {
            Input::Hangup => {
                if matches!(self.state, State::Voicemail) {
                    self.out.push_back(Output::StopVoicemail);
                }
                self.finish(Ending::CallerHangup);
            }
            Input::Digit(d) => self.on_digit(now, d),
            Input::Text(t) => self.on_text(now, t),
            Input::KbResult(r) => self.on_kb(now, r),
            Input::PlayDone(id) => self.on_play_done(now, id),
            Input::Timer(id) => {
                let Some(i) = self.timers.iter().position(|(t, _)| *t == id) else {
                    return; // stale
                };
                let (_, kind) = self.timers.remove(i);
                self.on_timer(now, kind);
            }
            Input::LookupResult(r) => {
                if !matches!(self.state, State::Lookup) {
                    return;
                }
                let Action::Lookup(l) = &self.flow.steps[self.at].action else {
                    return;
                };
                let (into, found, not_found) = (l.into.clone(), l.found, l.not_found);
                match r {
                    Some(fields) => {
                        self.note(format!("customer found ({} fields)", fields.len()));
                        for (k, v) in fields {
                            self.vars.insert(format!("{into}.{k}"), v);
                        }
                        self.branch(now, found);
                    }
                    None => {
                        self.note("no customer found".into());
                        self.branch(now, not_found);
                    }
                }
            }
            Input::LookupFailed(e) => {
                if !matches!(self.state, State::Lookup) {
                    return;
                }
                let Action::Lookup(l) = &self.flow.steps[self.at].action else {
                    return;
                };
                let nf = l.not_found;
                self.note(format!("lookup failed: {e}"));
                self.branch(now, nf);
            }
            Input::HttpResult(r) => {
                if !matches!(self.state, State::Http) {
                    return;
                }
                let Action::Http(h) = &self.flow.steps[self.at].action else {
                    return;
                };
                let (into, failure) = (h.into.clone(), h.failure);
                match r {
                    Ok((status, body)) if (200..300).contains(&status) => {
                        self.vars
                            .insert(format!("{into}.status"), status.to_string());
                        flatten(&into, &body, &mut self.vars);
                        self.note(format!("webhook answered {status}"));
                        self.branch(now, None);
                    }
                    Ok((status, _)) => {
                        self.vars
                            .insert(format!("{into}.status"), status.to_string());
                        self.vars
                            .insert(format!("{into}.error"), format!("HTTP {status}"));
                        self.note(format!("webhook failed: HTTP {status}"));
                        self.branch(now, failure);
                    }
                    Err(e) => {
                        self.vars.insert(format!("{into}.error"), e.clone());
                        self.note(format!("webhook failed: {e}"));
                        self.branch(now, failure);
                    }
                }
            }
            Input::QueueStatus { position, wait } => {
                self.vars
                    .insert("queue.position".into(), position.to_string());
                self.vars
                    .insert("queue.wait".into(), wait.as_secs().to_string());
                self.vars.insert(
                    "queue.wait_minutes".into(),
                    wait.as_secs().div_ceil(60).max(1).to_string(),
                );
            }
            Input::Connected => match &self.state {
                State::Queued { .. } => {
                    let q = self.vars.get("queue.name").cloned().unwrap_or_default();
                    self.out.push_back(Output::StopPlayback);
                    self.finish(Ending::Answered(q));
                }
                State::Transferring(d) => {
                    let d = d.clone();
                    self.finish(Ending::Transferred(d));
                }
                _ => {}
            },
            Input::TransferFailed(why) => {
                if !matches!(self.state, State::Transferring(_)) {
                    return;
                }
                let Action::Transfer(t) = &self.flow.steps[self.at].action else {
                    return;
                };
                let f = t.failure;
                self.note(format!("transfer failed: {why}"));
                self.vars.insert("transfer.error".into(), why);
                self.branch(now, f);
            }
            Input::VoicemailDone { seconds } => {
                if !matches!(self.state, State::Voicemail) {
                    return;
                }
                self.vars
                    .insert("voicemail.seconds".into(), seconds.to_string());
                self.note(format!("voicemail of {seconds} s"));
                self.branch(now, None);
            }
        }
    }

    fn note(&mut self, s: String) {
        self.out.push_back(Output::Note(s));
    }

    fn finish(&mut self, e: Ending) {
        self.timers.clear();
        self.out.push_back(Output::Done(e.clone()));
        self.state = State::Done(e);
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn timer(&mut self, kind: TimerKind, after: Duration) {
        let id = self.id();
        self.timers.retain(|(_, k)| *k != kind);
        self.timers.push((id, kind));
        self.out.push_back(Output::Timer { id, after });
    }

    fn ensure_answered(&mut self) {
        if !self.answered {
            self.answered = true;
            self.out.push_back(Output::Answer);
        }
    }

    /// What prompts say, as the caller heard them: spoken texts rendered, files by
    /// name in brackets.
    fn spoken(&self, prompts: &[Prompt]) -> String {
        prompts
            .iter()
            .filter_map(|p| match p {
                Prompt::Say { text, .. } => Some(text.render(&self.vars)),
                Prompt::File { name, .. } => Some(format!("[{name}]")),
                Prompt::Silence(_) | Prompt::Beep => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn items(&self, prompts: &[Prompt]) -> Vec<PlayItem> {
        prompts
            .iter()
            .filter_map(|p| match p {
                Prompt::File { name, .. } => self.flow.prompts.get(name).map(|s| PlayItem::Audio {
                    name: name.clone(),
                    samples: s.clone(),
                }),
                Prompt::Say { text, .. } => Some(PlayItem::Say(text.render(&self.vars))),
                Prompt::Silence(d) => Some(PlayItem::Silence(*d)),
                Prompt::Beep => Some(PlayItem::Beep),
            })
            .collect()
    }

    fn play(&mut self, items: Vec<PlayItem>, barge_in: bool) -> u64 {
        let id = self.id();
        self.out.push_back(Output::Play {
            id,
            items,
            barge_in,
        });
        id
    }

    /// Goes to `target`, or the step's `next` when `None`.
    fn branch(&mut self, now: jiff::Timestamp, target: Option<Target>) {
        let to = target.or(self.flow.steps[self.at].next).map(|t| t.step);
        self.go(now, to);
    }

    fn go(&mut self, now: jiff::Timestamp, to: Option<StepId>) {
        self.timers.clear();
        self.pending = to;
        if to.is_none() {
            self.out.push_back(Output::Hangup);
            self.finish(Ending::Hangup);
            return;
        }
        while let Some(s) = self.pending.take() {
            self.state = State::Running;
            self.exec(now, s);
        }
    }

    fn time_vars(&mut self, now: jiff::Timestamp) {
        let z = now.to_zoned(self.flow.timezone.clone());
        self.vars.insert("date".into(), z.date().to_string());
        self.vars
            .insert("time".into(), format!("{:02}:{:02}", z.hour(), z.minute()));
        self.vars
            .insert("weekday".into(), weekday_name(z.weekday()).to_string());
        self.vars.insert("now".into(), now.to_string());
    }

    fn exec(&mut self, now: jiff::Timestamp, s: StepId) {
        self.steps += 1;
        if self.steps > self.flow.max_steps {
            let msg = format!(
                "more than {} steps in one call (a loop?); hanging up",
                self.flow.max_steps
            );
            self.note(msg.clone());
            self.out.push_back(Output::Hangup);
            return self.finish(Ending::Error(msg));
        }
        self.at = s;
        self.time_vars(now);
        let flow = self.flow.clone();
        let step = &flow.steps[s];
        self.path.push(if flow.name == self.first_flow {
            step.name.clone()
        } else {
            format!("{}/{}", flow.name, step.name)
        });
        self.out.push_back(Output::Step {
            flow: flow.name.clone(),
            step: step.name.clone(),
            kind: step.action.kind(),
        });
        let next = step.next.map(|t| t.step);
        match &step.action {
            Action::Answer => {
                self.ensure_answered();
                self.pending = next.or_else(|| self.end());
            }
            Action::Play { prompts, barge_in } => {
                self.ensure_answered();
                let items = self.items(prompts);
                if items.is_empty() {
                    self.pending = next.or_else(|| self.end());
                } else {
                    let id = self.play(items, *barge_in);
                    self.state = State::Playing(id);
                }
            }
            Action::Pause(d) => {
                self.ensure_answered();
                self.timer(TimerKind::Pause, *d);
                self.state = State::Pausing;
            }
            Action::Gather(_)
            | Action::Survey(_)
            | Action::Menu(_)
            | Action::RecordingNotice(_) => {
                self.ensure_answered();
                self.state = State::Collecting(Collect {
                    digits: String::new(),
                    attempt: 0,
                    playing: None,
                });
                // Keys pressed before the notice was heard are no answer to it: they
                // stay for the next gather.
                let typed = if matches!(step.action, Action::RecordingNotice(_)) {
                    String::new()
                } else {
                    std::mem::take(&mut self.typeahead)
                };
                if !typed.is_empty() {
                    self.note(format!("type-ahead: {} key(s)", typed.len()));
                }
                for d in typed.chars() {
                    if !matches!(self.state, State::Collecting(_)) || self.at != s {
                        // Leftover keys are kept for the next gather.
                        self.typeahead.push(d);
                        continue;
                    }
                    self.collect_digit(now, d);
                }
                if matches!(&self.state, State::Collecting(c) if c.digits.is_empty())
                    && self.at == s
                {
                    self.prompt_collect(false);
                } else if matches!(self.state, State::Collecting(_)) && self.at == s {
                    let inter = self.collect_params().1;
                    self.timer(TimerKind::Collect, inter);
                }
            }
            Action::Set(vars) => {
                for (k, t) in vars {
                    let v = t.render(&self.vars);
                    self.vars.insert(k.clone(), v);
                }
                self.pending = next.or_else(|| self.end());
            }
            Action::Branch(b) => {
                let mut to = None;
                for (i, c) in b.cases.iter().enumerate() {
                    let v = c
                        .value
                        .as_ref()
                        .or(b.value.as_ref())
                        .map(|t| t.render(&self.vars))
                        .unwrap_or_default();
                    if matches(&c.cond, &v) {
                        self.note(format!("case {} matched", i + 1));
                        to = Some(c.goto.step);
                        break;
                    }
                }
                if to.is_none() {
                    self.note("no case matched".into());
                }
                self.pending = to.or(next).or_else(|| self.end());
            }
            Action::Hours(h) => {
                let z = now.to_zoned(h.tz.clone());
                let open = is_open(h, &z);
                self.note(format!(
                    "{} ({} {:02}:{:02} {})",
                    if open { "open" } else { "closed" },
                    weekday_name(z.weekday()),
                    z.hour(),
                    z.minute(),
                    h.tz_name
                ));
                let t = if open { h.open } else { h.closed };
                self.pending = t.map(|t| t.step).or(next).or_else(|| self.end());
            }
            Action::Lookup(l) => {
                let value = l.value.render(&self.vars);
                self.out.push_back(Output::Lookup { by: l.by, value });
                self.state = State::Lookup;
            }
            Action::Http(h) => {
                let url = h.url.render_url(&self.vars);
                let headers = h
                    .headers
                    .iter()
                    .map(|(k, t)| (k.clone(), t.render(&self.vars)))
                    .collect();
                let body = h.body.as_ref().map(|b| {
                    serde_json::Value::Object(
                        b.iter()
                            .map(|(k, t)| {
                                (k.clone(), serde_json::Value::String(t.render(&self.vars)))
                            })
                            .collect(),
                    )
                });
                self.out.push_back(Output::Http(HttpRequest {
                    method: h.method.clone(),
                    url,
                    headers,
                    body,
                    timeout: h.timeout,
                }));
                self.state = State::Http;
            }
            Action::Enqueue(q) => {
                self.ensure_answered();
                self.vars.insert("queue.name".into(), q.queue.clone());
                self.out.push_back(Output::Enqueue {
                    queue: q.queue.clone(),
                    priority: q.priority,
                    skills: q.skills.clone(),
                });
                let items = self.items(&q.hold);
                let playing = (!items.is_empty()).then(|| self.play(items, false));
                if let Some(a) = &q.announce {
                    self.timer(TimerKind::Announce, a.every);
                }
                if let Some(w) = q.max_wait {
                    self.timer(TimerKind::MaxWait, w);
                }
                self.state = State::Queued {
                    playing,
                    announcing: false,
                };
            }
            Action::Transfer(t) => {
                let to = match &t.to {
                    TransferTo::Uri(u) => Dest::Uri(u.render(&self.vars)),
                    TransferTo::Extension(e) => Dest::Extension(e.render(&self.vars)),
                    TransferTo::Number { number, trunk } => Dest::Number {
                        number: number.render(&self.vars),
                        trunk: trunk.clone(),
                    },
                };
                self.out.push_back(Output::Transfer {
                    to: to.clone(),
                    timeout: t.timeout,
                });
                self.state = State::Transferring(to);
            }
            Action::Voicemail(v) => {
                self.ensure_answered();
                let mut items = self.items(&v.prompt);
                if v.beep {
                    items.push(PlayItem::Beep);
                }
                if items.is_empty() {
                    self.out.push_back(Output::StartVoicemail {
                        max_length: v.max_length,
                    });
                    self.state = State::Voicemail;
                } else {
                    let id = self.play(items, false);
                    self.state = State::VoicemailPrompt(id);
                }
            }
            Action::Record(on) => {
                self.out.push_back(Output::Record(*on));
                self.pending = next.or_else(|| self.end());
            }
            Action::Goto(Goto::Step(t)) => self.pending = Some(t.step),
            Action::Goto(Goto::Flow {
                flow: name, step, ..
            }) => {
                let Some(f) = self.source.flow(name) else {
                    let msg = format!("goto: no flow named `{name}` is loaded");
                    self.note(msg.clone());
                    self.out.push_back(Output::Hangup);
                    return self.finish(Ending::Error(msg));
                };
                let start = match step {
                    Some(st) => match f.step(st) {
                        Some(i) => i,
                        None => {
                            let msg = format!("goto: flow `{name}` has no step `{st}`");
                            self.note(msg.clone());
                            self.out.push_back(Output::Hangup);
                            return self.finish(Ending::Error(msg));
                        }
                    },
                    None => f.start,
                };
                self.vars.insert("flow".into(), f.name.clone());
                self.flow = f;
                self.pending = Some(start);
            }
            Action::Hangup => {
                self.out.push_back(Output::Hangup);
                self.finish(Ending::Hangup);
            }
            Action::Reply(t) => {
                let text = t.render(&self.vars);
                if !text.trim().is_empty() {
                    self.out.push_back(Output::Reply(text));
                }
                self.pending = next.or_else(|| self.end());
            }
            Action::Ask(a) => {
                if let Some(p) = &a.prompt {
                    let text = p.render(&self.vars);
                    self.out.push_back(Output::Reply(text));
                }
                self.state = State::Asking(0);
                self.timer(TimerKind::Ask, a.timeout);
            }
            Action::MatchKb(m) => {
                let text = m.text.render(&self.vars);
                self.out.push_back(Output::MatchKb { text });
                self.state = State::Matching;
            }
            Action::Handoff(h) => {
                let summary = match &h.summary {
                    Some(t) => t.render(&self.vars),
                    None => format!(
                        "handed over at step `{}`; last message: {}",
                        step.name,
                        self.vars.get("message").map(String::as_str).unwrap_or("")
                    ),
                };
                let intent = match &h.intent {
                    Some(t) => Some(t.render(&self.vars)),
                    None => self.last_article.clone(),
                }
                .filter(|i| !i.is_empty());
                self.hand_off(HandoffRequest {
                    queue: h.queue.clone(),
                    priority: h.priority,
                    skills: h.skills.clone(),
                    summary,
                    intent,
                });
            }
        }
    }

    fn hand_off(&mut self, h: HandoffRequest) {
        let q = h.queue.clone().unwrap_or_default();
        self.note(format!(
            "handed to a person ({})",
            if q.is_empty() {
                "the channel's queue"
            } else {
                &q
            }
        ));
        self.out.push_back(Output::Handoff(h));
        self.finish(Ending::HandedOff(q));
    }

    /// Text flows: the customer wrote `text`. It is always `${message}`; an `ask`
    /// waiting takes it as its answer when it is valid.
    fn on_text(&mut self, now: jiff::Timestamp, text: String) {
        let text: String = text.chars().take(MAX_TEXT).collect();
        self.vars.insert("message".into(), text.clone());
        let State::Asking(wrong) = self.state else {
            self.note("a message while no ask waits: kept as ${message}".into());
            return;
        };
        let flow = self.flow.clone();
        let Action::Ask(a) = &flow.steps[self.at].action else {
            return;
        };
        match a.validate.accept(&text) {
            Some(v) => {
                self.note(format!("answered ({})", a.validate.name()));
                if let Some(into) = &a.into {
                    self.vars.insert(into.clone(), v);
                }
                self.branch(now, None);
            }
            None if wrong + 1 > a.retries => {
                self.note(format!(
                    "not a valid {}; no retries left",
                    a.validate.name()
                ));
                self.branch(now, a.invalid);
            }
            None => {
                self.note(format!(
                    "not a valid {}; retry {} of {}",
                    a.validate.name(),
                    wrong + 1,
                    a.retries
                ));
                if let Some(p) = a.retry_prompt.as_ref().or(a.prompt.as_ref()) {
                    let text = p.render(&self.vars);
                    self.out.push_back(Output::Reply(text));
                }
                self.state = State::Asking(wrong + 1);
                self.timer(TimerKind::Ask, a.timeout);
            }
        }
    }

    /// Text flows: the knowledge base answered a `match_kb`.
    fn on_kb(&mut self, now: jiff::Timestamp, r: Option<KbAnswer>) {
        if !matches!(self.state, State::Matching) {
            return;
        }
        let flow = self.flow.clone();
        let Action::MatchKb(m) = &flow.steps[self.at].action else {
            return;
        };
        let Some(k) = r else {
            self.note("the knowledge base has no sure answer".into());
            return self.branch(now, m.not_found);
        };
        let into = &m.into;
        self.last_article = Some(k.article.clone());
        self.vars
            .insert(format!("{into}.article"), k.article.clone());
        self.vars.insert(format!("{into}.answer"), k.answer.clone());
        self.vars
            .insert(format!("{into}.confidence"), format!("{:.2}", k.confidence));
        self.vars
            .insert(format!("{into}.handoff"), k.handoff.to_string());
        self.vars.insert(format!("{into}.lang"), k.lang.clone());
        self.note(format!(
            "the knowledge base answers with `{}` ({:.2})",
            k.article, k.confidence
        ));
        if !k.handoff {
            return self.branch(now, m.found);
        }
        match m.handoff {
            Some(t) => self.go(now, Some(t.step)),
            None => {
                let said = self.vars.get("message").cloned().unwrap_or_default();
                self.hand_off(HandoffRequest {
                    queue: None,
                    priority: None,
                    skills: vec![],
                    summary: format!("topic `{}` goes to a person: {said}", k.article),
                    intent: Some(k.article),
                });
            }
        }
    }

    /// The end of the flow: hang up.
    fn end(&mut self) -> Option<StepId> {
        self.out.push_back(Output::Hangup);
        self.finish(Ending::Hangup);
        None
    }

    /// (first-key timeout, inter-digit timeout) of the gather or menu at hand.
    fn collect_params(&self) -> (Duration, Duration) {
        let a = &self.flow.steps[self.at].action;
        match (a, a.gather()) {
            (_, Some(g)) => (g.timeout, g.inter_digit),
            (Action::Menu(m), _) => (m.timeout, m.inter_digit),
            _ => (Duration::from_secs(5), Duration::from_secs(3)),
        }
    }

    /// Plays the gather's prompt (after the retry prompt on a retry) and listens.
    fn prompt_collect(&mut self, retry: bool) {
        let flow = self.flow.clone();
        let a = &flow.steps[self.at].action;
        let (prompt, retry_prompt) = match (a, a.gather()) {
            (_, Some(g)) => (&g.prompt, &g.retry_prompt),
            (Action::Menu(m), _) => (&m.prompt, &m.retry_prompt),
            _ => return,
        };
        let mut items = vec![];
        if retry {
            items.extend(self.items(retry_prompt));
        }
        items.extend(self.items(prompt));
        if items.is_empty() {
            let t = self.collect_params().0;
            self.timer(TimerKind::Collect, t);
            if let State::Collecting(c) = &mut self.state {
                c.playing = None;
            }
        } else {
            let id = self.play(items, true);
            self.timers.retain(|(_, k)| *k != TimerKind::Collect);
            if let State::Collecting(c) = &mut self.state {
                c.playing = Some(id);
            }
        }
    }

    fn on_digit(&mut self, now: jiff::Timestamp, d: char) {
        match &mut self.state {
            State::Collecting(c) => {
                if c.playing.take().is_some() {
                    self.out.push_back(Output::StopPlayback);
                }
                let at = self.at;
                self.collect_digit(now, d);
                if matches!(self.state, State::Collecting(_)) && self.at == at {
                    let inter = self.collect_params().1;
                    self.timer(TimerKind::Collect, inter);
                }
            }
            State::Voicemail => {
                let Action::Voicemail(v) = &self.flow.steps[self.at].action else {
                    return;
                };
                if v.finish == Some(d) {
                    self.out.push_back(Output::StopVoicemail);
                }
            }
            State::Queued { .. } | State::Transferring(_) | State::Done(_) => {}
            _ => {
                if self.typeahead.len() < TYPEAHEAD_MAX {
                    self.typeahead.push(d);
                }
            }
        }
    }

    /// One key for the gather or menu at hand.
    fn collect_digit(&mut self, now: jiff::Timestamp, d: char) {
        let flow = self.flow.clone();
        let State::Collecting(c) = &mut self.state else {
            return;
        };
        let a = &flow.steps[self.at].action;
        match (a, a.gather()) {
            (_, Some(g)) => {
                if g.finish == Some(d) {
                    self.complete_gather(now);
                    return;
                }
                c.digits.push(d);
                if c.digits.len() >= g.max {
                    self.complete_gather(now);
                }
            }
            (Action::Menu(m), _) => {
                c.digits.push(d);
                let typed = c.digits.clone();
                let exact = m.options.iter().find(|(k, _)| *k == typed).map(|(_, t)| *t);
                let longer = m
                    .options
                    .iter()
                    .any(|(k, _)| k.len() > typed.len() && k.starts_with(&typed));
                match (exact, longer) {
                    (Some(t), false) => {
                        self.vars.insert("digits".into(), typed.clone());
                        self.note(format!("pressed {typed}"));
                        self.go(now, Some(t.step));
                    }
                    (None, false) => self.failed_attempt(now, false),
                    _ => {} // wait for more keys
                }
            }
            _ => {}
        }
    }

    fn complete_gather(&mut self, now: jiff::Timestamp) {
        let flow = self.flow.clone();
        let action = &flow.steps[self.at].action;
        let Some(g) = action.gather() else {
            return;
        };
        let State::Collecting(c) = &self.state else {
            return;
        };
        let digits = c.digits.clone();
        let survey = match action {
            Action::Survey(sv) => Some((sv.metric, sv.metric.score(&digits))),
            _ => None,
        };
        let ok = digits.len() >= g.min.max(1)
            && digits.len() <= g.max
            && g.pattern.as_ref().is_none_or(|p| p.is_match(&digits))
            && survey.is_none_or(|(_, score)| score.is_some());
        if !ok {
            return self.failed_attempt(now, digits.is_empty());
        }
        self.vars.insert("digits".into(), digits.clone());
        if let Action::RecordingNotice(n) = action {
            if digits.chars().eq([n.opt_out]) {
                self.note(format!(
                    "pressed {digits}: recording off (notice {})",
                    n.version
                ));
                let notice = self.spoken(&n.gather.prompt);
                self.out.push_back(Output::RecordingOptOut {
                    version: n.version.clone(),
                    notice,
                    key: n.opt_out,
                });
                return self.branch(now, n.opted_out);
            }
            self.note(format!("pressed {digits}: recording stays on"));
            return self.branch(now, None);
        }
        if let Some((metric, Some(score))) = survey {
            self.vars
                .insert(format!("survey.{}", metric.name()), score.to_string());
            self.out.push_back(Output::Survey { metric, score });
        } else {
            self.note(format!("gathered {} key(s)", digits.len()));
        }
        if let Some(into) = &g.into {
            self.vars.insert(into.clone(), digits);
        }
        self.branch(now, None);
    }

    fn failed_attempt(&mut self, now: jiff::Timestamp, timeout: bool) {
        let flow = self.flow.clone();
        let a = &flow.steps[self.at].action;
        let (retries, invalid, on_timeout) = match (a, a.gather()) {
            (_, Some(g)) => (g.retries, g.invalid, g.on_timeout),
            (Action::Menu(m), _) => (m.retries, m.invalid, m.on_timeout),
            _ => return,
        };
        let State::Collecting(c) = &mut self.state else {
            return;
        };
        let digits = std::mem::take(&mut c.digits);
        c.attempt += 1;
        let attempt = c.attempt;
        self.typeahead.clear();
        let what = if timeout { "no input" } else { "invalid input" };
        if attempt > retries {
            self.note(format!("{what}; no retries left"));
            self.vars.insert("digits".into(), digits);
            let t = if timeout { on_timeout } else { invalid };
            self.branch(now, t);
        } else {
            self.note(format!("{what}; retry {attempt} of {retries}"));
            self.prompt_collect(true);
        }
    }

    fn on_play_done(&mut self, now: jiff::Timestamp, id: u64) {
        match &mut self.state {
            State::Playing(p) if *p == id => self.branch(now, None),
            State::Collecting(c) if c.playing == Some(id) => {
                c.playing = None;
                let t = self.collect_params().0;
                self.timer(TimerKind::Collect, t);
            }
            State::VoicemailPrompt(p) if *p == id => {
                let Action::Voicemail(v) = &self.flow.steps[self.at].action else {
                    return;
                };
                let max_length = v.max_length;
                self.out.push_back(Output::StartVoicemail { max_length });
                self.state = State::Voicemail;
            }
            State::Queued {
                playing,
                announcing,
            } if *playing == Some(id) => {
                let was_announcing = *announcing;
                *announcing = false;
                let Action::Enqueue(q) = &self.flow.steps[self.at].action else {
                    return;
                };
                let hold = self.items(&q.hold);
                let every = q.announce.as_ref().map(|a| a.every);
                let next = (!hold.is_empty()).then(|| self.play(hold, false));
                if let State::Queued { playing, .. } = &mut self.state {
                    *playing = next;
                }
                if was_announcing {
                    if let Some(e) = every {
                        self.timer(TimerKind::Announce, e);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, now: jiff::Timestamp, kind: TimerKind) {
        match kind {
            TimerKind::Ask => {
                let Action::Ask(a) = &self.flow.steps[self.at].action else {
                    return;
                };
                if matches!(self.state, State::Asking(_)) {
                    let t = a.on_timeout;
                    self.note("no answer in time".into());
                    self.branch(now, t);
                }
            }
            TimerKind::Pause => {
                if matches!(self.state, State::Pausing) {
                    self.branch(now, None);
                }
            }
            TimerKind::Collect => {
                let flow = self.flow.clone();
                let State::Collecting(c) = &self.state else {
                    return;
                };
                let typed = c.digits.clone();
                let a = &flow.steps[self.at].action;
                match (a, a.gather()) {
                    (_, Some(_)) if typed.is_empty() => self.failed_attempt(now, true),
                    (_, Some(_)) => self.complete_gather(now),
                    (Action::Menu(m), _) => {
                        if typed.is_empty() {
                            return self.failed_attempt(now, true);
                        }
                        match m.options.iter().find(|(k, _)| *k == typed) {
                            Some((_, t)) => {
                                let t = *t;
                                self.vars.insert("digits".into(), typed.clone());
                                self.note(format!("pressed {typed}"));
                                self.go(now, Some(t.step));
                            }
                            None => self.failed_attempt(now, false),
                        }
                    }
                    _ => {}
                }
            }
            TimerKind::Announce => {
                let flow = self.flow.clone();
                let Action::Enqueue(q) = &flow.steps[self.at].action else {
                    return;
                };
                let Some(a) = &q.announce else { return };
                let items = self.items(&a.prompts);
                if let State::Queued { playing, .. } = &self.state {
                    if playing.is_some() {
                        self.out.push_back(Output::StopPlayback);
                    }
                }
                let id = self.play(items, false);
                if let State::Queued {
                    playing,
                    announcing,
                } = &mut self.state
                {
                    *playing = Some(id);
                    *announcing = true;
                }
            }
            TimerKind::MaxWait => {
                if !matches!(self.state, State::Queued { .. }) {
                    return;
                }
                let Action::Enqueue(q) = &self.flow.steps[self.at].action else {
                    return;
                };
                let t = q.on_timeout;
                self.out.push_back(Output::StopPlayback);
                self.out.push_back(Output::Dequeue);
                self.note("waited too long in the queue".into());
                self.branch(now, t);
            }
        }
    }
}

fn weekday_name(w: jiff::civil::Weekday) -> &'static str {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][w.to_monday_zero_offset() as usize]
}

/// Whether business hours are open at this local time.
pub fn is_open(h: &Hours, z: &jiff::Zoned) -> bool {
    if h.holidays.contains(&z.date()) {
        return false;
    }
    let day = z.weekday().to_monday_zero_offset() as usize;
    let m = z.hour() as u16 * 60 + z.minute() as u16;
    h.week[day].iter().any(|(a, b)| *a <= m && m < *b)
}

fn matches(c: &Cond, v: &str) -> bool {
    let num = v.trim().parse::<f64>().ok();
    match c {
        Cond::Equals(s) => v == s,
        Cond::NotEquals(s) => v != s,
        Cond::In(list) => list.iter().any(|s| s == v),
        Cond::Matches(r) => r.is_match(v),
        Cond::StartsWith(s) => v.starts_with(s.as_str()),
        Cond::LessThan(x) => num.is_some_and(|n| n < *x),
        Cond::AtMost(x) => num.is_some_and(|n| n <= *x),
        Cond::GreaterThan(x) => num.is_some_and(|n| n > *x),
        Cond::AtLeast(x) => num.is_some_and(|n| n >= *x),
        Cond::Empty(e) => v.is_empty() == *e,
    }
}

/// A JSON answer as variables: `http.customer.name`, `http.items.0.id`...
pub fn flatten(prefix: &str, v: &serde_json::Value, vars: &mut Vars) {
    use serde_json::Value as J;
    match v {
        J::Object(m) => {
            for (k, v) in m {
                flatten(&format!("{prefix}.{k}"), v, vars);
            }
        }
        J::Array(a) => {
            vars.insert(format!("{prefix}.count"), a.len().to_string());
            for (i, v) in a.iter().enumerate().take(100) {
                flatten(&format!("{prefix}.{i}"), v, vars);
            }
        }
        J::Null => {}
        J::String(s) => {
            vars.insert(prefix.to_string(), s.clone());
        }
        other => {
            vars.insert(prefix.to_string(), other.to_string());
        }
    }
}
