//! Runs a flow without audio or network: the simulator behind `omnigate dialplan
//! simulate` and the test runner behind `omnigate dialplan test`. Prompts take their
//! real length in simulated time, key presses come from the inputs (one group per
//! gather or menu; an empty group lets it time out), lookups and webhooks answer from
//! fixtures. Nothing sleeps: timers jump the simulated clock.

use super::engine::{Dest, Ending, FlowSource, Input, KbAnswer, Output, PlayItem, Run, Wait};
use super::model::{Flow, Kind, TestCase};
use super::template::Vars;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// What a simulated call did.
#[derive(Debug, Clone)]
pub struct SimResult {
    pub path: Vec<String>,
    /// `hangup`, `caller_hangup`, `error`, `enqueue QUEUE`, `transfer DEST`.
    pub ending: String,
    pub error: Option<String>,
    pub vars: Vars,
    /// One line per step and event, with the simulated time.
    pub trace: Vec<String>,
    /// Key groups given but never asked for (the flow ended first).
    pub unused_digits: Vec<String>,
    /// Text flows: messages given but never read (the flow ended first).
    pub unused_messages: Vec<String>,
}

/// Answers a text flow's `match_kb`: the text and the channel in, the article out.
pub type KbLookup<'a> = &'a dyn Fn(&str, &str) -> Option<KbAnswer>;

fn play_len(items: &[PlayItem]) -> Duration {
    items
        .iter()
        .map(|i| match i {
            PlayItem::Audio { samples, .. } => Duration::from_millis(samples.len() as u64 / 8),
            // About 15 characters a second for espeak-ng at its default rate.
            PlayItem::Say(t) => Duration::from_millis(t.chars().count() as u64 * 65),
            PlayItem::Silence(d) => *d,
            PlayItem::Beep => Duration::from_millis(400),
        })
        .sum()
}

fn describe(items: &[PlayItem]) -> String {
    items
        .iter()
        .map(|i| match i {
            PlayItem::Audio { name, .. } => name.clone(),
            PlayItem::Say(t) => format!("say \"{t}\""),
            PlayItem::Silence(d) => format!("silence {}ms", d.as_millis()),
            PlayItem::Beep => "beep".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `flow` with the inputs of `case` (its expectations are not looked at). A
/// text flow starts with the case's first message; its `match_kb` steps ask `kb`
/// (none: no knowledge base, nothing is found).
pub fn simulate(
    source: Arc<dyn FlowSource>,
    flow: Arc<Flow>,
    case: &TestCase,
    kb: Option<KbLookup<'_>>,
) -> SimResult {
    let text = flow.kind == Kind::Text;
    let info = super::engine::CallInfo {
        caller: case.caller.clone(),
        caller_name: String::new(),
        dialled: case.dialled.clone(),
        trunk: case.trunk.clone(),
        call_id: "simulated".into(),
    };
    let mut run = Run::new(source, flow, &info);
    for (k, v) in &case.variables {
        run.set_var(k, v);
    }
    let channel = if case.channel.is_empty() {
        "webchat".to_string()
    } else {
        case.channel.clone()
    };
    let mut messages: VecDeque<String> = case.messages.iter().cloned().collect();
    let t0 = case.at.unwrap_or_else(crate::clock::timestamp);
    let mut elapsed = Duration::ZERO;
    let now = |e: Duration| t0 + jiff::SignedDuration::try_from(e).unwrap_or_default();
    let mut trace = vec![];
    let mut timers: Vec<(Duration, u64)> = vec![];
    let mut playing: Option<(u64, Duration)> = None;
    let mut inputs: VecDeque<Input> = VecDeque::new();
    let mut chunks: VecDeque<String> = case.digits.iter().cloned().collect();
    let mut fed = false;
    let mut ending: Option<String> = None;
    let mut error = None;
    let mut agent_to_come = case.agent_hangs_up;
    if text {
        let first = messages.pop_front().unwrap_or_default();
        trace.push(format!("[{:>6.1}s]   customer: {first:?} ({channel})", 0.0));
        run.set_var("channel", &channel);
        run.set_var("message", &first);
    }
    run.start(now(elapsed));
    for _ in 0..100_000 {
        while let Some(o) = run.poll() {
            let at = format!("[{:>6.1}s]", elapsed.as_secs_f64());
            match o {
                Output::Step { flow, step, kind } => {
                    fed = false;
                    trace.push(format!("{at} {flow}/{step} ({kind})"));
                }
                Output::Answer => trace.push(format!("{at}   answer")),
                Output::Play { id, items, .. } => {
                    fed = false;
                    trace.push(format!(
                        "{at}   play {} ({:.1}s)",
                        describe(&items),
                        play_len(&items).as_secs_f64()
                    ));
                    playing = Some((id, elapsed + play_len(&items)));
                }
                Output::StopPlayback => playing = None,
                Output::Timer { id, after } => timers.push((elapsed + after, id)),
                Output::Lookup { by, value } => {
                    let key = format!("{}:{value}", by.name());
                    trace.push(format!("{at}   lookup {key}"));
                    inputs.push_back(Input::LookupResult(
                        case.lookup.get(&key).cloned().flatten(),
                    ));
                }
                Output::Http(crate::dialplan::engine::HttpRequest {
                    method, url, body, ..
                }) => {
                    let body = body.map(|b| format!(" {b}")).unwrap_or_default();
                    trace.push(format!("{at}   http {method} {url}{body}"));
                    let answer = case
                        .http
                        .get(&format!("{method} {url}"))
                        .or_else(|| case.http.get(&url))
                        .cloned()
                        .unwrap_or_else(|| Err(format!("no fixture for {method} {url}")));
                    inputs.push_back(Input::HttpResult(answer));
                }
                Output::Enqueue {
                    queue,
                    priority,
                    skills,
                } => trace.push(format!(
                    "{at}   enqueue {queue} (priority {priority}, skills [{}])",
                    skills.join(", ")
                )),
                Output::Dequeue => trace.push(format!("{at}   leave the queue")),
                Output::Transfer { to, .. } => {
                    trace.push(format!("{at}   transfer to {to}"));
                    if let Some(why) = &case.transfer_fails {
                        inputs.push_back(Input::TransferFailed(why.clone()));
                    }
                }
                Output::StartVoicemail { max_length } => {
                    trace.push(format!(
                        "{at}   record a voicemail (up to {}s)",
                        max_length.as_secs()
                    ));
                    let secs = max_length.as_secs().min(10) as u32;
                    elapsed += Duration::from_secs(secs as u64);
                    inputs.push_back(Input::VoicemailDone { seconds: secs });
                }
                Output::StopVoicemail => {}
                Output::Record(on) => trace.push(format!(
                    "{at}   recording {}",
                    if on { "on" } else { "off" }
                )),
                Output::RecordingOptOut { version, key, .. } => trace.push(format!(
                    "{at}   recording off: the caller pressed {key} (notice {version}, kept as a withdrawn recording consent)"
                )),
                Output::Survey { metric, score } => {
                    trace.push(format!("{at}   survey answer {} {score}", metric.name()))
                }
                Output::Hangup if text => trace.push(format!("{at}   the bot ends the conversation")),
                Output::Hangup => trace.push(format!("{at}   hang up")),
                Output::Reply(t) => trace.push(format!("{at}   bot: {t:?}")),
                Output::MatchKb { text } => {
                    let answer = kb.and_then(|kb| kb(&text, &channel));
                    trace.push(format!(
                        "{at}   match_kb {text:?}: {}",
                        match (&answer, kb.is_some()) {
                            (Some(a), _) => format!("`{}` ({:.2})", a.article, a.confidence),
                            (None, true) => "no sure answer".into(),
                            (None, false) => "no knowledge base loaded".into(),
                        }
                    ));
                    inputs.push_back(Input::KbResult(answer));
                }
                Output::Handoff(h) => trace.push(format!(
                    "{at}   hand off to {} (priority {}, skills [{}], intent {}): {}",
                    h.queue.as_deref().unwrap_or("the channel's queue"),
                    h.priority.map(|p| p.to_string()).unwrap_or_else(|| "as the channel's".into()),
                    h.skills.join(", "),
                    h.intent.as_deref().unwrap_or("none"),
                    h.summary
                )),
                Output::Note(n) => trace.push(format!("{at}   {n}")),
                Output::Done(e) => {
                    ending = Some(match e {
                        Ending::Hangup => "hangup".into(),
                        Ending::CallerHangup => "caller_hangup".into(),
                        Ending::Answered(q) => format!("answered {q}"),
                        Ending::Transferred(d) => format!("transfer {d}"),
                        Ending::HandedOff(q) if q.is_empty() => "handoff".into(),
                        Ending::HandedOff(q) => format!("handoff {q}"),
                        Ending::Error(m) => {
                            error = Some(m);
                            "error".into()
                        }
                    })
                }
            }
        }
        if let Some(i) = inputs.pop_front() {
            run.handle(now(elapsed), i);
            continue;
        }
        match run.wait() {
            Wait::Done => break,
            Wait::Queue if agent_to_come => {
                agent_to_come = false;
                trace.push(format!(
                    "[{:>6.1}s]   an agent answers, talks and hangs up first",
                    elapsed.as_secs_f64()
                ));
                run.handle(now(elapsed), Input::Connected);
                while let Some(o) = run.poll() {
                    if let Output::Done(Ending::Answered(q)) = o {
                        ending = Some(format!("answered {q}"));
                    }
                }
                elapsed += Duration::from_secs(60);
                if run.agent_left(now(elapsed)) {
                    ending = None;
                }
            }
            Wait::Queue => {
                let q = run.vars().get("queue.name").cloned().unwrap_or_default();
                ending = Some(format!("enqueue {q}"));
                break;
            }
            Wait::Transfer => {
                let d = run.transferring().map(Dest::to_string).unwrap_or_default();
                ending = Some(format!("transfer {d}"));
                break;
            }
            Wait::Prompt(id) => {
                if let Some((p, end)) = playing.filter(|(p, _)| *p == id) {
                    elapsed = elapsed.max(end);
                    playing = None;
                    run.handle(now(elapsed), Input::PlayDone(p));
                    continue;
                }
                if !fire_timer(&mut timers, &mut elapsed, &mut run, now) {
                    break;
                }
            }
            Wait::Message => {
                let Some(m) = messages.pop_front() else {
                    trace.push(format!(
                        "[{:>6.1}s]   (the customer writes nothing)",
                        elapsed.as_secs_f64()
                    ));
                    if !fire_timer(&mut timers, &mut elapsed, &mut run, now) {
                        break;
                    }
                    continue;
                };
                elapsed += Duration::from_secs(5);
                trace.push(format!(
                    "[{:>6.1}s]   customer: {m:?}",
                    elapsed.as_secs_f64()
                ));
                run.handle(now(elapsed), Input::Text(m));
            }
            Wait::Digits if !fed => {
                fed = true;
                let chunk = chunks.pop_front().unwrap_or_default();
                if chunk.is_empty() {
                    trace.push(format!(
                        "[{:>6.1}s]   (caller presses nothing)",
                        elapsed.as_secs_f64()
                    ));
                    if !fire_timer(&mut timers, &mut elapsed, &mut run, now) {
                        break;
                    }
                    continue;
                }
                trace.push(format!(
                    "[{:>6.1}s]   caller presses {chunk}",
                    elapsed.as_secs_f64()
                ));
                for d in chunk.chars() {
                    elapsed += Duration::from_millis(250);
                    run.handle(now(elapsed), Input::Digit(d));
                }
            }
            _ => {
                if !fire_timer(&mut timers, &mut elapsed, &mut run, now) {
                    error = Some(format!(
                        "the flow waits for {:?} and nothing comes",
                        run.wait()
                    ));
                    ending = Some("error".into());
                    break;
                }
            }
        }
    }
    SimResult {
        path: run.path().to_vec(),
        ending: ending.unwrap_or_else(|| "error".into()),
        error,
        vars: run.vars().clone(),
        trace,
        unused_digits: chunks.into_iter().collect(),
        unused_messages: messages.into_iter().collect(),
    }
}

fn fire_timer(
    timers: &mut Vec<(Duration, u64)>,
    elapsed: &mut Duration,
    run: &mut Run,
    now: impl Fn(Duration) -> jiff::Timestamp,
) -> bool {
    timers.retain(|(_, id)| run.timer_live(*id));
    timers.sort();
    if timers.is_empty() {
        return false;
    }
    let (due, id) = timers.remove(0);
    *elapsed = (*elapsed).max(due);
    run.handle(now(*elapsed), Input::Timer(id));
    true
}

/// The outcome of one test case.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub failures: Vec<String>,
    pub result: SimResult,
}

/// Runs a flow's test cases (`kb` answers text flows' `match_kb`).
pub fn run_tests(
    source: Arc<dyn FlowSource>,
    flow: &Arc<Flow>,
    kb: Option<KbLookup<'_>>,
) -> Vec<TestOutcome> {
    flow.tests
        .iter()
        .map(|case| {
            let result = simulate(source.clone(), flow.clone(), case, kb);
            let mut failures = vec![];
            if let Some((path, pos)) = &case.expect_path {
                if *path != result.path {
                    failures.push(format!(
                        "{}:{}: path\n      expected: {}\n      got:      {}",
                        flow.file.display(),
                        pos,
                        path.join(", "),
                        result.path.join(", ")
                    ));
                }
            }
            if let Some((ends, pos)) = &case.expect_ends {
                if *ends != result.ending {
                    let why = result
                        .error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    failures.push(format!(
                        "{}:{}: ends\n      expected: {ends}\n      got:      {}{why}",
                        flow.file.display(),
                        pos,
                        result.ending
                    ));
                }
            }
            for (k, v, pos) in &case.expect_vars {
                let got = result.vars.get(k);
                if got != Some(v) {
                    failures.push(format!(
                        "{}:{}: variable {k}\n      expected: {v:?}\n      got:      {}",
                        flow.file.display(),
                        pos,
                        got.map(|g| format!("{g:?}"))
                            .unwrap_or_else(|| "(not set)".into())
                    ));
                }
            }
            if case.expect_path.is_none()
                && case.expect_ends.is_none()
                && case.expect_vars.is_empty()
            {
                failures.push(format!(
                    "{}:{}: the test expects nothing; add `expect:` with path, ends or variables",
                    flow.file.display(),
                    case.pos
                ));
            }
            TestOutcome {
                name: case.name.clone(),
                failures,
                result,
            }
        })
        .collect()
}
