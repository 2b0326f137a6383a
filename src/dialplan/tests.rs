//! Loader, checker and engine tests on simulated time.

use super::compile::load_str;
use super::decode::LoadOptions;
use super::engine::*;
use super::model::{Flow, Metric};
use super::problem::Problem;
use super::set::FlowSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A directory with a `prompts/` folder holding `hello.wav` (0.5 s) and `bye.wav`.
fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("prompts")).unwrap();
    for (name, secs) in [("hello", 0.5), ("bye", 0.25)] {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w =
            hound::WavWriter::create(d.path().join("prompts").join(format!("{name}.wav")), spec)
                .unwrap();
        for i in 0..(8000.0 * secs) as i32 {
            w.write_sample(((i as f32 * 0.2).sin() * 8000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
    }
    d
}

fn opts(tts: bool) -> LoadOptions {
    LoadOptions { tts }
}

fn load(d: &Path, text: &str) -> Result<Flow, Vec<Problem>> {
    load_str(text, &d.join("f.yaml"), &opts(true))
}

fn problems(text: &str) -> Vec<String> {
    let d = dir();
    match load(d.path(), text) {
        Ok(_) => vec![],
        Err(p) => p
            .iter()
            .map(|p| format!("{}:{}: {}", p.pos.line, p.pos.col, p.message))
            .collect(),
    }
}

fn has(ps: &[String], at: &str, text: &str) {
    assert!(
        ps.iter().any(|p| p.starts_with(at) && p.contains(text)),
        "no problem at {at} containing {text:?} in {ps:#?}"
    );
}

#[test]
fn unknown_steps_and_fields_are_located_with_suggestions() {
    let ps = problems("steps:\n  a:\n    gahter: {}\n  b:\n    play: hello\n    nxt: a\n");
    has(
        &ps,
        "3:5",
        "unknown step type `gahter`; did you mean `gather`?",
    );
    has(
        &ps,
        "6:5",
        "unknown field `nxt` in a play step; did you mean `next`?",
    );
    let ps = problems("steps:\n  a:\n    gather: {prompt: hello, mix: 3}\n");
    has(&ps, "3:29", "unknown field `mix` in gather; did you mean");
    let ps = problems("stepz:\n  a:\n    hangup:\n");
    has(
        &ps,
        "1:1",
        "unknown field `stepz` in a flow; did you mean `steps`?",
    );
}

#[test]
fn bad_targets_prompts_zones_and_values() {
    let ps = problems(
        "steps:\n  a:\n    play: helo\n    next: bb\n  b:\n    hours:\n      timezone: America/New_Yrok\n      open: {mon-fri: 9-5}\n    open: a\n    closed: b\n  c:\n    pause: soon\n",
    );
    has(&ps, "3:11", "prompt `helo` not found");
    has(&ps, "4:11", "there is no step named `bb`");
    has(
        &ps,
        "7:17",
        "unknown time zone `America/New_Yrok`; did you mean `America/New_York`?",
    );
    has(&ps, "8:23", "`9-5` is not a time range");
    has(&ps, "12:12", "`soon` is not a duration");
}

#[test]
fn syntax_errors_have_line_and_column() {
    let ps = problems("steps:\n  a:\n    play: [hello\n  b: x\n");
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(ps[0].contains("YAML syntax"), "{ps:?}");
    let ps = problems("steps:\n  a:\n    hangup:\n  a:\n    hangup:\n");
    has(&ps, "4:3", "`a` appears twice");
}

#[test]
fn unreachable_steps_and_spinning_loops_are_refused() {
    let ps = problems(
        "steps:\n  a:\n    set: {x: 1}\n    next: b\n  b:\n    branch:\n      value: ${x}\n      cases:\n        - equals: '1'\n          goto: a\n  c:\n    hangup:\n",
    );
    has(&ps, "2:3", "steps a, b loop without waiting for the caller");
    let ps = problems("steps:\n  a:\n    hangup:\n  b:\n    play: hello\n");
    has(&ps, "4:3", "step `b` is never reached");
    // A loop through a prompt is fine.
    let ps = problems("steps:\n  a:\n    play: hello\n  b:\n    goto: a\n");
    assert!(ps.is_empty(), "{ps:?}");
}

#[test]
fn variables_must_be_set_on_every_path() {
    let ps = problems(
        "steps:\n  a:\n    menu:\n      prompt: hello\n      options: {1: b, 2: c}\n  b:\n    set: {dept: sales}\n    next: c\n  c:\n    say: \"Welcome to ${dept}, ${custmer.name}\"\n",
    );
    has(&ps, "10:22", "`dept` may not be set when step `c` runs");
    has(&ps, "10:31", "undefined variable `custmer.name`");
    // A default silences it; lookup results exist on the found path only.
    let ps = problems(
        "steps:\n  a:\n    lookup: caller\n    found: b\n    not_found: c\n  b:\n    say: \"Hi ${customer.name}\"\n  c:\n    say: \"Hi ${customer.name|there}\"\n",
    );
    assert!(ps.is_empty(), "{ps:?}");
    let ps = problems("steps:\n  a:\n    set: {caller: x}\n");
    has(&ps, "3:11", "`caller` is set by the gateway");
}

#[test]
fn say_without_a_speech_engine_is_refused_at_load() {
    let d = dir();
    let e = load_str(
        "steps:\n  a:\n    say: Hello\n",
        &d.path().join("f.yaml"),
        &opts(false),
    )
    .unwrap_err();
    assert!(e[0].message.contains("espeak-ng is not installed"), "{e:?}");
    assert_eq!((e[0].pos.line, e[0].pos.col), (3, 10));
    assert!(e[0]
        .to_string()
        .starts_with(&format!("{}:3:10: ", d.path().join("f.yaml").display())));
}

#[test]
fn bad_regex_and_menu_keys() {
    let ps = problems(
        "steps:\n  a:\n    gather: {prompt: hello, pattern: '[0-9'}\n  b:\n    menu:\n      prompt: hello\n      options: {x: a}\n",
    );
    has(&ps, "3:38", "bad regular expression");
    has(&ps, "7:17", "option `x` must be keys");
}

// ---------------------------------------------------------------- engine

struct Sim {
    run: Run,
    t: jiff::Timestamp,
    timers: Vec<(Duration, u64)>,
    elapsed: Duration,
    outs: Vec<Output>,
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

impl Sim {
    fn new(flow: Flow) -> Sim {
        Sim::with_set(Arc::new(flow), FlowSet::default())
    }

    fn with_set(flow: Arc<Flow>, set: FlowSet) -> Sim {
        let info = CallInfo {
            caller: "+15551234567".into(),
            dialled: "100".into(),
            ..Default::default()
        };
        let mut s = Sim {
            run: Run::new(Arc::new(set), flow, &info),
            t: at("2026-11-23T15:00:00Z"),
            timers: vec![],
            elapsed: Duration::ZERO,
            outs: vec![],
        };
        s.run.start(s.t);
        s.drain();
        s
    }

    fn now(&self) -> jiff::Timestamp {
        self.t + jiff::SignedDuration::try_from(self.elapsed).unwrap()
    }

    fn drain(&mut self) {
        while let Some(o) = self.run.poll() {
            if let Output::Timer { id, after } = &o {
                self.timers.push((self.elapsed + *after, *id));
            }
            self.outs.push(o);
        }
    }

    fn input(&mut self, i: Input) {
        let now = self.now();
        self.run.handle(now, i);
        self.drain();
    }

    fn digits(&mut self, d: &str) {
        for c in d.chars() {
            self.input(Input::Digit(c));
        }
    }

    /// Fires the earliest pending timer.
    fn tick(&mut self) {
        let run = &self.run;
        self.timers.retain(|(_, id)| run.timer_live(*id));
        self.timers.sort();
        let (due, id) = self.timers.remove(0);
        self.elapsed = self.elapsed.max(due);
        self.input(Input::Timer(id));
    }

    fn last_play(&self) -> u64 {
        self.outs
            .iter()
            .rev()
            .find_map(|o| match o {
                Output::Play { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a prompt was played")
    }

    fn finish_prompt(&mut self) {
        let id = self.last_play();
        self.input(Input::PlayDone(id));
    }

    fn path(&self) -> Vec<&str> {
        self.run.path().iter().map(|s| s.as_str()).collect()
    }
}

fn flow(text: &str) -> (tempfile::TempDir, Flow) {
    let d = dir();
    let f = load(d.path(), text).unwrap_or_else(|e| panic!("{e:#?}"));
    (d, f)
}

const GATHER: &str = "steps:
  ask:
    gather: {prompt: hello, min: 3, max: 5, finish: '#', timeout: 5s, inter_digit: 2s, retries: 1, retry_prompt: bye, into: acct}
    invalid: bad
    timeout: silent
  ok:
    hangup:
  bad:
    hangup:
  silent:
    hangup:
";

#[test]
fn gather_ends_on_finish_key_max_or_inter_digit_timeout() {
    let (_d, f) = flow(GATHER);
    let mut s = Sim::new(f);
    assert!(matches!(s.outs[1], Output::Answer));
    s.finish_prompt();
    s.digits("123#");
    assert_eq!(s.path(), ["ask", "ok"]);
    assert_eq!(s.run.vars()["acct"], "123");

    let (_d, f) = flow(GATHER);
    let mut s = Sim::new(f);
    s.digits("12345"); // barge-in during the prompt, max reached
    assert!(s.outs.iter().any(|o| matches!(o, Output::StopPlayback)));
    assert_eq!(s.run.vars()["acct"], "12345");

    let (_d, f) = flow(GATHER);
    let mut s = Sim::new(f);
    s.finish_prompt();
    s.digits("1234");
    s.tick(); // inter-digit timeout completes
    assert_eq!(s.run.vars()["acct"], "1234");
    assert_eq!(s.elapsed, Duration::from_secs(2));
}

#[test]
fn gather_retries_then_takes_the_invalid_or_timeout_branch() {
    let (_d, f) = flow(GATHER);
    let mut s = Sim::new(f);
    s.finish_prompt();
    s.digits("1#"); // too short
                    // The retry plays the retry prompt then the prompt.
    let Some(Output::Play { items, .. }) = s
        .outs
        .iter()
        .rev()
        .find(|o| matches!(o, Output::Play { .. }))
    else {
        panic!()
    };
    assert_eq!(items.len(), 2);
    s.finish_prompt();
    s.digits("9#");
    assert_eq!(s.path(), ["ask", "bad"]);
    assert_eq!(s.run.vars()["digits"], "9");

    let (_d, f) = flow(GATHER);
    let mut s = Sim::new(f);
    s.finish_prompt();
    s.tick();
    s.finish_prompt();
    s.tick();
    assert_eq!(s.path(), ["ask", "silent"]);
    assert_eq!(s.elapsed, Duration::from_secs(10));
    assert_eq!(s.run.ending(), Some(&Ending::Hangup));
}

#[test]
fn menu_with_multi_key_options_and_type_ahead() {
    let (_d, f) = flow(
        "steps:
  intro:
    play: hello
  m:
    menu: {prompt: hello, options: {1: one, 12: twelve, 3: three}, inter_digit: 1s}
  one:
    hangup:
  twelve:
    hangup:
  three:
    hangup:
",
    );
    let mut s = Sim::new(f);
    // Keys pressed during the intro are kept for the menu.
    s.digits("12");
    s.finish_prompt();
    assert_eq!(s.path(), ["intro", "m", "twelve"]);

    let (_d, f) = flow(
        "steps:\n  m:\n    menu: {prompt: hello, options: {1: one, 12: twelve}, inter_digit: 1s}\n  one:\n    hangup:\n  twelve:\n    hangup:\n",
    );
    let mut s = Sim::new(f);
    s.digits("1");
    assert_eq!(s.path(), ["m"]); // 1 or 12? wait
    s.tick();
    assert_eq!(s.path(), ["m", "one"]);
}

#[test]
fn hours_use_the_zone_and_holidays() {
    let text = "steps:
  h:
    hours:
      timezone: Europe/Paris
      open: {mon-fri: 09:00-18:00}
      holidays: [2026-12-25]
    open: o
    closed: c
  o:
    hangup:
  c:
    hangup:
";
    for (when, path) in [
        ("2026-11-23T08:30:00Z", "o"), // 09:30 in Paris, Monday
        ("2026-11-23T07:30:00Z", "c"), // 08:30 in Paris
        ("2026-11-22T12:00:00Z", "c"), // Sunday
        ("2026-12-25T12:00:00Z", "c"), // holiday
        ("2026-07-01T15:59:00Z", "o"), // 17:59 summer time
        ("2026-07-01T16:00:00Z", "c"), // 18:00 summer time
    ] {
        let (_d, f) = flow(text);
        let info = CallInfo::default();
        let mut r = Run::new(Arc::new(FlowSet::default()), Arc::new(f), &info);
        r.start(at(when));
        assert_eq!(r.path(), ["h", path], "{when}");
    }
}

#[test]
fn lookup_http_and_branch() {
    let (_d, f) = flow(
        "steps:
  l:
    lookup: caller
    found: w
    not_found: x
  w:
    http:
      url: https://crm.example/api/${customer.id}
      body: {caller: '${caller}'}
      timeout: 2s
    failure: x
  b:
    branch:
      value: ${http.balance}
      cases:
        - greater_than: 100
          goto: rich
        - matches: '^-'
          goto: x
  x:
    hangup:
  rich:
    hangup:
",
    );
    let mut s = Sim::new(f);
    assert!(s
        .outs
        .iter()
        .any(|o| matches!(o, Output::Lookup { value, .. } if value == "+15551234567")));
    s.input(Input::LookupResult(Some(vec![("id".into(), "42".into())])));
    let Some(Output::Http(HttpRequest {
        method,
        url,
        body,
        timeout,
        ..
    })) = s.outs.iter().find(|o| matches!(o, Output::Http(_)))
    else {
        panic!()
    };
    assert_eq!(
        (method.as_str(), url.as_str(), *timeout),
        ("POST", "https://crm.example/api/42", Duration::from_secs(2))
    );
    assert_eq!(body.as_ref().unwrap()["caller"], "+15551234567");
    s.input(Input::HttpResult(Ok((
        200,
        serde_json::json!({"balance": 250, "tags": ["a"]}),
    ))));
    assert_eq!(s.path(), ["l", "w", "b", "rich"]);
    assert_eq!(s.run.vars()["http.tags.0"], "a");

    let (_d, f) = flow("steps:\n  w:\n    http: {url: 'http://x/'}\n    failure: f\n  ok:\n    hangup:\n  f:\n    hangup:\n");
    let mut s = Sim::new(f);
    s.input(Input::HttpResult(Err("timeout".into())));
    assert_eq!(s.path(), ["w", "f"]);
    assert_eq!(s.run.vars()["http.error"], "timeout");
}

#[test]
fn queue_announces_position_and_leaves_after_max_wait() {
    let (_d, f) = flow(
        "steps:
  q:
    enqueue:
      queue: support
      priority: 7
      skills: [billing]
      hold: hello
      announce: {every: 30s, say: 'You are number ${queue.position}, about ${queue.wait_minutes} minutes'}
      max_wait: 95s
    timeout: vm
  vm:
    voicemail: {prompt: bye, max_length: 30s}
  done:
    hangup:
",
    );
    let mut s = Sim::new(f);
    assert!(s.outs.iter().any(|o| matches!(o, Output::Enqueue { queue, priority: 7, skills } if queue == "support" && skills == &["billing".to_string()])));
    s.input(Input::QueueStatus {
        position: 3,
        wait: Duration::from_secs(70),
    });
    s.finish_prompt(); // hold prompt loops
    s.tick(); // 30 s: announcement
    let Some(Output::Play { items, .. }) = s
        .outs
        .iter()
        .rev()
        .find(|o| matches!(o, Output::Play { .. }))
    else {
        panic!()
    };
    match &items[0] {
        PlayItem::Say(t) => assert_eq!(t, "You are number 3, about 2 minutes"),
        other => panic!("{other:?}"),
    }
    s.finish_prompt(); // back to hold, next announcement in 30 s
    s.tick();
    assert_eq!(s.elapsed, Duration::from_secs(60));
    s.finish_prompt();
    s.tick(); // 90 s announcement
    s.tick(); // 95 s: max wait
    assert!(s.outs.iter().any(|o| matches!(o, Output::Dequeue)));
    assert_eq!(s.path(), ["q", "vm"]);
    s.finish_prompt(); // prompt + beep
    assert!(s.outs.iter().any(|o| matches!(o, Output::StartVoicemail { max_length } if *max_length == Duration::from_secs(30))));
    s.digits("#");
    assert!(matches!(s.outs.last(), Some(Output::StopVoicemail)));
    s.input(Input::VoicemailDone { seconds: 12 });
    assert_eq!(s.path(), ["q", "vm", "done"]);
    assert_eq!(s.run.vars()["voicemail.seconds"], "12");
}

#[test]
fn agent_answer_ends_the_flow_and_caller_hangup_is_reported() {
    let (_d, f) = flow("steps:\n  q:\n    enqueue: sales\n");
    let mut s = Sim::new(f);
    assert!(s.run.queued());
    s.input(Input::Connected);
    assert_eq!(s.run.ending(), Some(&Ending::Answered("sales".into())));

    // A caller who hangs up before the flow starts: nothing runs afterwards.
    let (_d, f) = flow(GATHER);
    let mut r = Run::new(
        Arc::new(FlowSet::default()),
        Arc::new(f),
        &CallInfo::default(),
    );
    r.handle(at("2026-11-23T15:00:00Z"), Input::Hangup);
    r.start(at("2026-11-23T15:00:00Z"));
    assert!(r.path().is_empty());
    assert_eq!(r.ending(), Some(&Ending::CallerHangup));

    let (_d, f) = flow(GATHER);
    let mut s = Sim::new(f);
    s.input(Input::Hangup);
    assert_eq!(s.run.ending(), Some(&Ending::CallerHangup));
    s.input(Input::Digit('1')); // nothing happens after the end
    assert_eq!(s.path(), ["ask"]);
}

const SURVEY: &str = "steps:
  q:
    enqueue: support
    agent_hangup: rate
  rate:
    survey: {metric: csat, prompt: hello, timeout: 4s, retries: 1, retry_prompt: bye}
    invalid: bad
    timeout: silent
  nps:
    survey: {metric: nps, prompt: hello}
  thanks:
    play: bye
  end:
    hangup:
  bad:
    hangup:
  silent:
    hangup:
";

fn surveys(s: &Sim) -> Vec<(Metric, i64)> {
    s.outs
        .iter()
        .filter_map(|o| match o {
            Output::Survey { metric, score } => Some((*metric, *score)),
            _ => None,
        })
        .collect()
}

#[test]
fn after_the_agent_hangs_up_the_caller_answers_a_survey_with_keys() {
    let (_d, f) = flow(SURVEY);
    let mut s = Sim::new(f);
    // Keys while queued and while talking are not answers.
    s.digits("5");
    s.input(Input::Connected);
    assert_eq!(s.run.ending(), Some(&Ending::Answered("support".into())));
    s.digits("3");
    assert!(s.run.agent_left(s.now()));
    assert!(!s.run.agent_left(s.now()), "once");
    assert_eq!(s.path(), ["q", "rate"]);
    assert!(surveys(&s).is_empty());
    // A key out of range (CSAT is 1-5) is a wrong answer: the retry prompt, then 4.
    s.digits("7");
    assert_eq!(s.path(), ["q", "rate"]);
    s.digits("4");
    assert_eq!(surveys(&s), [(Metric::Csat, 4)]);
    assert_eq!(s.run.vars()["survey.csat"], "4");
    // NPS takes 10 as two keys, and 9 once the inter-digit time passes.
    assert_eq!(s.path(), ["q", "rate", "nps"]);
    s.digits("10");
    assert_eq!(surveys(&s)[1], (Metric::Nps, 10));
    s.finish_prompt();
    assert_eq!(s.path(), ["q", "rate", "nps", "thanks", "end"]);
    assert_eq!(s.run.ending(), Some(&Ending::Hangup));

    let (_d, f) = flow(SURVEY);
    let mut s = Sim::new(f);
    s.input(Input::Connected);
    s.run.agent_left(s.now());
    s.drain();
    s.digits("9"); // out of range
    s.digits("0"); // out of range again: no retries left
    assert_eq!(s.path(), ["q", "rate", "bad"]);
    assert!(surveys(&s).is_empty());

    // Silence: no answer, the timeout branch after the retry.
    let (_d, f) = flow(SURVEY);
    let mut s = Sim::new(f);
    s.input(Input::Connected);
    s.run.agent_left(s.now());
    s.drain();
    s.finish_prompt();
    s.tick();
    s.finish_prompt();
    s.tick();
    assert_eq!(s.path(), ["q", "rate", "silent"]);
    assert!(surveys(&s).is_empty());

    // An enqueue without `agent_hangup`: the call ends with the agent.
    let (_d, f) = flow("steps:\n  q:\n    enqueue: sales\n");
    let mut s = Sim::new(f);
    s.input(Input::Connected);
    assert!(!s.run.agent_left(s.now()));
    // Nor does a run that did not reach an agent go on.
    let (_d, f) = flow(SURVEY);
    let mut s = Sim::new(f);
    assert!(!s.run.agent_left(s.now()));
}

#[test]
fn nps_answers_nine_after_the_inter_digit_time() {
    let (_d, f) = flow(SURVEY);
    let mut s = Sim::new(f);
    s.input(Input::Connected);
    s.run.agent_left(s.now());
    s.drain();
    s.digits("4");
    s.digits("9");
    s.tick();
    assert_eq!(surveys(&s), [(Metric::Csat, 4), (Metric::Nps, 9)]);
}

#[test]
fn survey_steps_are_checked_where_they_are_written() {
    let ps = problems("steps:\n  a:\n    survey: {metric: nsp, prompt: hello}\n");
    has(
        &ps,
        "3:22",
        "survey metric `nsp`: one of csat (1-5), nps (0-10), ces (1-7)",
    );
    let ps = problems("steps:\n  a:\n    survey: {metric: ces}\n");
    has(&ps, "3:13", "survey needs a `prompt`");
    let ps = problems("steps:\n  q:\n    enqueue: s\n    agent_hangup: nowhere\n");
    has(&ps, "4:19", "nowhere");
    // A step reached only after the agent is reachable.
    assert!(problems(SURVEY).is_empty(), "{:?}", problems(SURVEY));
}

#[test]
fn transfer_failure_branch() {
    let (_d, f) = flow(
        "steps:\n  t:\n    transfer: {number: '+1555${dialled}', trunk: carrier}\n    failure: sorry\n  sorry:\n    play: bye\n",
    );
    let mut s = Sim::new(f);
    assert!(s.outs.iter().any(|o| matches!(o, Output::Transfer { to: Dest::Number { number, trunk: Some(t) }, .. } if number == "+1555100" && t == "carrier")));
    s.input(Input::TransferFailed("486 Busy Here".into()));
    assert_eq!(s.path(), ["t", "sorry"]);
    assert_eq!(s.run.vars()["transfer.error"], "486 Busy Here");
}

#[test]
fn goto_another_flow_and_the_step_limit() {
    let d = dir();
    let a = Arc::new(load_str("flow: a\nmax_steps: 50\nsteps:\n  s:\n    set: {n: x}\n    next: t\n  t:\n    goto: {flow: b}\n", &d.path().join("a.yaml"), &opts(true)).unwrap());
    let b = Arc::new(
        load_str(
            "flow: b\nsteps:\n  u:\n    goto: {flow: a}\n",
            &d.path().join("b.yaml"),
            &opts(true),
        )
        .unwrap(),
    );
    let mut set = FlowSet::default();
    set.flows.insert("a".into(), a.clone());
    set.flows.insert("b".into(), b);
    assert!(set.check_gotos(None).is_empty());
    let mut s = Sim::with_set(a, set);
    // Flows that goto each other forever hit the step limit instead of spinning.
    assert!(matches!(s.run.ending(), Some(Ending::Error(m)) if m.contains("more than")));
    assert_eq!(&s.path()[..4], ["s", "t", "b/u", "s"]);
    s.drain();
}

#[test]
fn goto_to_a_missing_flow_is_a_check_error() {
    let d = dir();
    let a = Arc::new(
        load_str(
            "flow: a\nsteps:\n  t:\n    goto: {flow: bb, step: x}\n",
            &d.path().join("a.yaml"),
            &opts(true),
        )
        .unwrap(),
    );
    let mut set = FlowSet::default();
    set.flows.insert("a".into(), a);
    let p = set.check_gotos(None);
    assert_eq!((p[0].pos.line, p[0].pos.col), (4, 11));
    assert!(p[0].message.contains("no flow named `bb`"));
}

#[test]
fn demo_flow_loads_and_its_tests_pass() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/demo.yaml");
    let f = Arc::new(super::load_file(&path, &opts(false)).unwrap_or_else(|e| panic!("{e:#?}")));
    assert!(f.tests.len() >= 5);
    let mut set = FlowSet::default();
    set.flows.insert(f.name.clone(), f.clone());
    for t in super::sim::run_tests(Arc::new(set), &f, None) {
        assert!(t.failures.is_empty(), "{}: {:#?}", t.name, t.failures);
    }
}

#[test]
fn json_schema_knows_every_action_and_branch() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/flow.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let step = &schema["properties"]["steps"]["additionalProperties"]["properties"];
    for (action, branches) in super::decode::ACTIONS {
        assert!(
            step.get(*action).is_some(),
            "schema lacks the action {action}"
        );
        for b in *branches {
            assert!(step.get(*b).is_some(), "schema lacks the branch {b}");
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any text, and any mutation of a real flow, loads or fails with problems:
        /// never a panic.
        #[test]
        fn loader_never_panics(s in ".{0,400}") {
            let d = std::env::temp_dir();
            let _ = load_str(&s, &d.join("p.yaml"), &LoadOptions { tts: false });
        }

        /// Any sequence of inputs, stale or out of place, drives the demo flow without a
        /// panic, within the step limit, and nothing happens after the end.
        #[test]
        fn engine_takes_any_input_sequence(inputs in proptest::collection::vec((0u8..9, 0u64..40, 0u8..16), 0..80)) {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/demo.yaml");
            let flow = Arc::new(super::super::load_file(&path, &LoadOptions { tts: false }).unwrap());
            let mut run = Run::new(Arc::new(FlowSet::default()), flow.clone(), &CallInfo::default());
            let t0: jiff::Timestamp = "2026-11-23T15:00:00Z".parse().unwrap();
            run.start(t0);
            let mut done_at = None;
            for (n, (kind, id, key)) in inputs.into_iter().enumerate() {
                let now = t0 + jiff::SignedDuration::from_secs(n as i64);
                let input = match kind {
                    0 | 1 => Input::Digit(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'][key as usize]),
                    2 => Input::PlayDone(id),
                    3 => Input::Timer(id),
                    4 => Input::LookupResult(if key % 2 == 0 { None } else { Some(vec![("tier".into(), "gold".into())]) }),
                    5 => Input::HttpResult(Err("x".into())),
                    6 => Input::QueueStatus { position: key as u32, wait: Duration::from_secs(id) },
                    7 => Input::VoicemailDone { seconds: key as u32 },
                    _ => Input::Hangup,
                };
                let before = run.path().len();
                run.handle(now, input);
                while run.poll().is_some() {}
                if done_at.is_some() {
                    prop_assert_eq!(run.path().len(), before, "steps after the end");
                }
                if run.ending().is_some() && done_at.is_none() {
                    done_at = Some(n);
                }
                prop_assert!(run.path().len() as u32 <= flow.max_steps);
            }
        }

        #[test]
        fn mutated_demo_never_panics(cut in 0usize..6000, len in 0usize..40, junk in "[ :\\-\\[\\]{}#'\"a-z0-9\n$]{0,12}") {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/demo.yaml");
            let text = std::fs::read_to_string(&path).unwrap();
            let mut b = text.into_bytes();
            let at = cut.min(b.len());
            let end = (at + len).min(b.len());
            b.splice(at..end, junk.bytes());
            let s = String::from_utf8_lossy(&b).to_string();
            let _ = load_str(&s, &path, &LoadOptions { tts: false });
        }
    }
}

const NOTICE: &str = "steps:
  menu:
    menu: {prompt: hello, options: {1: notice}}
  notice:
    recording_notice:
      prompt: {say: 'Hello ${caller}: this call is recorded. Press 9 not to be recorded.'}
      version: '2026-12'
      timeout: 2s
    opted_out: sorry
  main:
    play: bye
    next: end
  sorry:
    play: hello
  end:
    hangup:
";

fn opt_outs(s: &Sim) -> Vec<(String, String, char)> {
    s.outs
        .iter()
        .filter_map(|o| match o {
            Output::RecordingOptOut {
                version,
                notice,
                key,
            } => Some((version.clone(), notice.clone(), *key)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_recording_notice_turns_recording_off_with_its_key_and_says_what_was_heard() {
    let (_d, f) = flow(NOTICE);
    let mut s = Sim::new(f);
    s.digits("1");
    assert_eq!(s.path(), ["menu", "notice"]);
    assert!(opt_outs(&s).is_empty());
    // The key during the notice: recording off, the opted_out branch.
    s.digits("9");
    assert_eq!(
        opt_outs(&s),
        [(
            "2026-12".to_string(),
            "Hello +15551234567: this call is recorded. Press 9 not to be recorded.".to_string(),
            '9'
        )]
    );
    assert_eq!(s.path(), ["menu", "notice", "sorry"]);

    // Another key keeps recording on and goes on.
    let (_d, f) = flow(NOTICE);
    let mut s = Sim::new(f);
    s.digits("1");
    s.digits("4");
    assert!(opt_outs(&s).is_empty());
    assert_eq!(s.path(), ["menu", "notice", "main"]);

    // Silence after the notice: on after the timeout (simulated), recording stays.
    let (_d, f) = flow(NOTICE);
    let mut s = Sim::new(f);
    s.digits("1");
    s.finish_prompt();
    s.tick();
    assert!(opt_outs(&s).is_empty());
    assert_eq!(s.path(), ["menu", "notice", "main"]);
    assert_eq!(s.elapsed, Duration::from_secs(2));

    // A key pressed before the notice (type-ahead in a prompt) is no answer to a
    // notice not yet heard: it stays for the next gather.
    let (_d, f) = flow("steps:\n  p:\n    play: bye\n  n:\n    recording_notice: {prompt: hello, version: v1, opt_out: '*'}\n  g:\n    gather: {prompt: bye, max: 2, into: typed}\n");
    let mut s = Sim::new(f);
    s.digits("*");
    s.finish_prompt();
    assert_eq!(s.path(), ["p", "n"]);
    assert!(opt_outs(&s).is_empty());
    s.finish_prompt();
    s.tick();
    assert_eq!(s.path(), ["p", "n", "g"]);
    assert!(opt_outs(&s).is_empty());
    // Its own key, with a file as the notice.
    let (_d, f) = flow("steps:\n  n:\n    recording_notice: {prompt: hello, version: v1, opt_out: '*'}\n  g:\n    gather: {prompt: bye, max: 2}\n");
    let mut s = Sim::new(f);
    s.digits("*");
    assert_eq!(
        opt_outs(&s),
        [("v1".to_string(), "[hello]".to_string(), '*')]
    );
    assert_eq!(s.path(), ["n", "g"]);
}

#[test]
fn recording_notices_are_checked_where_they_are_written() {
    let ps = problems("steps:\n  a:\n    recording_notice: {prompt: hello}\n");
    has(&ps, "3:23", "recording_notice needs a `version`");
    let ps = problems("steps:\n  a:\n    recording_notice: {version: v1}\n");
    has(&ps, "3:23", "recording_notice needs a `prompt`");
    let ps = problems(
        "steps:\n  a:\n    recording_notice: {prompt: hello, version: v1, opt_out: '99'}\n",
    );
    has(&ps, "3:61", "opt_out must be one key");
    let ps = problems("steps:\n  a:\n    recording_notice: {prompt: hello, version: v1}\n    opted_out: nowhere\n");
    has(&ps, "4:16", "nowhere");
    assert!(problems(NOTICE).is_empty(), "{:?}", problems(NOTICE));
}

// ---------------------------------------------------------------- text flows

impl Sim {
    /// A text flow started by the customer's first message on `channel`.
    fn text(flow: Flow, channel: &str, first: &str) -> Sim {
        let info = CallInfo {
            caller: "+593991234567".into(),
            caller_name: "Grace".into(),
            ..Default::default()
        };
        let mut run = Run::new(Arc::new(FlowSet::default()), Arc::new(flow), &info);
        run.set_var("channel", channel);
        run.set_var("message", first);
        let mut s = Sim {
            run,
            t: at("2026-11-23T15:00:00Z"),
            timers: vec![],
            elapsed: Duration::ZERO,
            outs: vec![],
        };
        s.run.start(s.t);
        s.drain();
        s
    }

    fn says(&mut self, text: &str) {
        self.elapsed += Duration::from_secs(3);
        self.input(Input::Text(text.into()));
    }

    /// What the bot sent, in order.
    fn replies(&self) -> Vec<&str> {
        self.outs
            .iter()
            .filter_map(|o| match o {
                Output::Reply(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    fn handoff(&self) -> Option<&HandoffRequest> {
        self.outs.iter().find_map(|o| match o {
            Output::Handoff(h) => Some(h),
            _ => None,
        })
    }
}

const ASK: &str = "kind: text
steps:
  hello:
    reply: Hi ${caller_name}, this is the ${channel} bot.
  acct:
    ask:
      prompt: Your account number?
      validate: number
      into: account
      retries: 2
      retry_prompt: Digits only, please (${message} is not one).
      timeout: 2m
    invalid: person
    timeout: gone
  mail:
    ask: {prompt: And your e-mail?, validate: email, into: email, retries: 0}
    invalid: person
  person:
    handoff:
      queue: billing
      priority: 7
      skills: [billing]
      summary: account ${account|none}, e-mail ${email|none}, last said ${message}
      intent: billing
  gone:
    reply: Bye for now.
";

#[test]
fn ask_validates_retries_and_keeps_the_answer() {
    let (_d, f) = flow(ASK);
    let mut s = Sim::text(f, "whatsapp", "hello");
    assert_eq!(
        s.replies(),
        [
            "Hi Grace, this is the whatsapp bot.",
            "Your account number?"
        ]
    );
    assert_eq!(s.run.wait(), Wait::Message);
    s.says("my account");
    s.says("12-34 x");
    assert_eq!(
        s.replies()[2..],
        [
            "Digits only, please (my account is not one).",
            "Digits only, please (12-34 x is not one)."
        ]
    );
    s.says(" 12-34 ");
    assert_eq!(s.run.vars()["account"], "1234", "normalised");
    assert_eq!(s.path(), ["hello", "acct", "mail"]);
    s.says("Grace@Example.ORG");
    assert_eq!(s.run.vars()["email"], "Grace@example.org");
    // The end of the steps (the `person` step runs next here): a hand-off with the
    // queue, priority, skills, intent and the summary rendered.
    assert_eq!(s.path(), ["hello", "acct", "mail", "person"]);
    let h = s.handoff().expect("handed off");
    assert_eq!(h.queue.as_deref(), Some("billing"));
    assert_eq!(h.priority, Some(7));
    assert_eq!(h.skills, ["billing"]);
    assert_eq!(h.intent.as_deref(), Some("billing"));
    assert_eq!(
        h.summary,
        "account 1234, e-mail Grace@example.org, last said Grace@Example.ORG"
    );
    assert_eq!(s.run.ending(), Some(&Ending::HandedOff("billing".into())));
    // Nothing more after the hand-off.
    let n = s.outs.len();
    s.says("hello?");
    assert_eq!(s.outs.len(), n);
}

#[test]
fn ask_gives_up_after_its_retries_or_its_timeout() {
    let (_d, f) = flow(ASK);
    let mut s = Sim::text(f, "webchat", "hi");
    for wrong in ["a", "b", "c"] {
        s.says(wrong);
    }
    assert_eq!(s.path(), ["hello", "acct", "person"]);
    assert_eq!(
        s.handoff().unwrap().summary,
        "account none, e-mail none, last said c"
    );

    let (_d, f) = flow(ASK);
    let mut s = Sim::text(f, "webchat", "hi");
    s.says("x"); // one wrong answer re-arms the 2-minute timer
    s.tick();
    assert_eq!(s.elapsed, Duration::from_secs(3 + 120));
    assert_eq!(s.path(), ["hello", "acct", "gone"]);
    assert_eq!(s.replies().last(), Some(&"Bye for now."));
    assert_eq!(s.run.ending(), Some(&Ending::Hangup));

    // No retries: the first wrong e-mail goes to the `invalid` branch.
    let (_d, f) = flow(ASK);
    let mut s = Sim::text(f, "sms", "hi");
    s.says("1");
    s.says("not an address");
    assert_eq!(s.path(), ["hello", "acct", "mail", "person"]);
}

#[test]
fn validations_normalise_what_they_accept() {
    use super::model::Validate;
    assert_eq!(Validate::Number.accept(" 12 34-5 "), Some("12345".into()));
    assert_eq!(Validate::Number.accept("12a"), None);
    assert_eq!(Validate::Number.accept(""), None);
    assert_eq!(
        Validate::Email.accept("Ana@Correo.EC"),
        Some("Ana@correo.ec".into())
    );
    for bad in [
        "ana", "ana@", "@x.ec", "a b@x.ec", "a@x", "a@@x.ec", "a@.ec", "a@x.",
    ] {
        assert_eq!(Validate::Email.accept(bad), None, "{bad}");
    }
    assert_eq!(
        Validate::Phone.accept("+593 (99) 123-4567"),
        Some("+593991234567".into())
    );
    assert_eq!(Validate::Phone.accept("12345"), None);
    assert_eq!(Validate::Phone.accept("+1 555 CALL NOW"), None);
    assert_eq!(Validate::Text.accept("   "), None);
    let p = Validate::Pattern(regex::Regex::new("^[A-Z]{3}-[0-9]{4}$").unwrap());
    assert_eq!(p.accept(" ABC-1234 "), Some("ABC-1234".into()));
    assert_eq!(p.accept("abc-1234"), None);
}

const KB: &str = "kind: text
steps:
  first:
    match_kb:
    not_found: sorry
  answer:
    reply: ${kb.answer}
  again:
    ask:
  match:
    match_kb: {text: '${message}', into: faq}
    found: answer2
    not_found: sorry
    handoff_topic: topic
  answer2:
    reply: ${faq.answer} (${faq.article}, ${faq.confidence})
  bye:
    hangup:
  sorry:
    handoff: {summary: 'no answer for: ${message}'}
  topic:
    handoff: {queue: complaints}
";

fn kb(article: &str, handoff: bool) -> Option<KbAnswer> {
    Some(KbAnswer {
        article: article.into(),
        answer: format!("about {article}"),
        confidence: 0.875,
        handoff,
        lang: "en".into(),
    })
}

fn asked_kb(s: &Sim) -> Vec<&str> {
    s.outs
        .iter()
        .filter_map(|o| match o {
            Output::MatchKb { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn match_kb_found_not_found_and_topics_for_a_person() {
    let (_d, f) = flow(KB);
    let mut s = Sim::text(f, "webchat", "where is my parcel");
    assert_eq!(asked_kb(&s), ["where is my parcel"]);
    assert_eq!(s.run.wait(), Wait::Kb);
    s.input(Input::KbResult(kb("order-status", false)));
    assert_eq!(s.replies(), ["about order-status"]);
    assert_eq!(s.run.vars()["kb.article"], "order-status");
    assert_eq!(s.run.vars()["kb.lang"], "en");
    assert_eq!(s.run.wait(), Wait::Message);
    s.says("opening hours?");
    assert_eq!(asked_kb(&s)[1], "opening hours?");
    s.input(Input::KbResult(kb("opening-hours", false)));
    assert_eq!(s.replies()[1], "about opening-hours (opening-hours, 0.88)");
    assert_eq!(s.run.ending(), Some(&Ending::Hangup));

    // Not found: the `not_found` branch, with the summary of what was said.
    let (_d, f) = flow(KB);
    let mut s = Sim::text(f, "webchat", "what's the weather");
    s.input(Input::KbResult(None));
    assert_eq!(s.path(), ["first", "sorry"]);
    let h = s.handoff().unwrap();
    assert_eq!(h.summary, "no answer for: what's the weather");
    assert_eq!((h.queue.as_deref(), h.intent.as_deref()), (None, None));

    // A topic for a person: the `handoff_topic` branch where there is one...
    let (_d, f) = flow(KB);
    let mut s = Sim::text(f, "webchat", "parcel");
    s.input(Input::KbResult(kb("order-status", false)));
    s.says("this is unacceptable");
    s.input(Input::KbResult(kb("complaint", true)));
    assert_eq!(s.path(), ["first", "answer", "again", "match", "topic"]);
    let h = s.handoff().unwrap();
    assert_eq!(h.queue.as_deref(), Some("complaints"));
    assert_eq!(
        h.intent.as_deref(),
        Some("complaint"),
        "the article matched"
    );

    // ...and a hand-off at once where there is none.
    let (_d, f) = flow(KB);
    let mut s = Sim::text(f, "webchat", "cancel my order");
    s.input(Input::KbResult(kb("cancel-order", true)));
    assert_eq!(s.path(), ["first"]);
    let h = s.handoff().unwrap();
    assert_eq!(h.intent.as_deref(), Some("cancel-order"));
    assert_eq!(
        h.summary,
        "topic `cancel-order` goes to a person: cancel my order"
    );
    assert!(s.replies().is_empty());
}

#[test]
fn a_message_while_no_ask_waits_is_the_latest_message_not_an_answer() {
    let (_d, f) = flow(KB);
    let mut s = Sim::text(f, "webchat", "parcel");
    s.says("hello?"); // while the knowledge base is asked
    assert_eq!(s.run.vars()["message"], "hello?");
    s.input(Input::KbResult(kb("order-status", false)));
    // The ask that follows still waits for the next message.
    assert_eq!(s.run.wait(), Wait::Message);
    // Over-long messages are cut.
    s.says(&"x".repeat(MAX_TEXT + 100));
    assert_eq!(s.run.vars()["message"].len(), MAX_TEXT);
}

#[test]
fn text_and_voice_steps_stay_in_their_kind_of_flow() {
    let ps = problems("kind: text\nsteps:\n  a:\n    play: hello\n  b:\n    handoff:\n");
    has(
        &ps,
        "3:3",
        "`play` is a voice step and this flow is `kind: text`",
    );
    let ps = problems("steps:\n  a:\n    reply: hi\n  b:\n    hangup:\n");
    has(&ps, "2:3", "`reply` is a text step: add `kind: text`");
    let ps = problems("kind: chat\nsteps:\n  a:\n    hangup:\n");
    has(
        &ps,
        "1:7",
        "kind `chat`: expected voice (a call) or text (a chat)",
    );
    // A loop of replies never waits for the customer.
    let ps = problems("kind: text\nsteps:\n  a:\n    reply: hi\n  b:\n    match_kb:\n    not_found: a\n  c:\n    goto: a\n");
    has(
        &ps,
        "3:3",
        "loop without waiting for the customer: add an ask",
    );
    // Fields, validations and variables are checked where they are written.
    let ps = problems(
        "kind: text\nsteps:\n  a:\n    ask: {prompt: x, validate: mail, into: message}\n  b:\n    reply: ${kb.answer}\n  c:\n    handoff: {queue: 'a b'}\n",
    );
    has(
        &ps,
        "4:32",
        "validate `mail`: expected text, number, email or phone; did you mean `email`?",
    );
    has(&ps, "4:10", "`message` is set by the gateway");
    has(
        &ps,
        "8:14",
        "handoff: a queue name is letters, digits, - and _",
    );
    let ps = problems("kind: text\nsteps:\n  a:\n    reply: ${kb.answer}\n");
    has(&ps, "4:12", "undefined variable `kb.answer`");
    let ps =
        problems("kind: text\nsteps:\n  a:\n    match_kb:\n    handoff: b\n  b:\n    handoff:\n");
    has(&ps, "5:5", "more than one action");
    let ps = problems("kind: text\nsteps:\n  a:\n    reply: ''\n");
    has(&ps, "4:12", "reply needs the text to send");
}

#[test]
fn a_goto_between_a_call_flow_and_a_text_flow_is_refused() {
    let d = dir();
    let a = Arc::new(
        load_str(
            "flow: a\nsteps:\n  t:\n    goto: {flow: bot}\n",
            &d.path().join("a.yaml"),
            &opts(true),
        )
        .unwrap(),
    );
    let bot = Arc::new(
        load_str(
            "flow: bot\nkind: text\nsteps:\n  r:\n    reply: hi\n",
            &d.path().join("bot.yaml"),
            &opts(true),
        )
        .unwrap(),
    );
    let mut set = FlowSet::default();
    set.flows.insert("a".into(), a);
    set.flows.insert("bot".into(), bot);
    let p = set.check_gotos(None);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0]
        .message
        .contains("flow `bot` is a text flow and this one a voice flow"));
}

#[test]
fn the_demo_bot_flow_passes_its_tests_against_the_demo_knowledge_base() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let f = Arc::new(
        super::load_file(&root.join("dialplans/shop-bot.yaml"), &opts(false))
            .unwrap_or_else(|e| panic!("{e:#?}")),
    );
    assert_eq!(f.kind, super::model::Kind::Text);
    assert!(f.tests.len() >= 5);
    let lib = crate::kb::Library::new(&root.join("kb"), crate::kb::matcher::DEFAULT_THRESHOLD);
    lib.reload();
    let m = lib.matcher();
    let lookup = |text: &str, channel: &str| m.flow_answer(text, channel, None);
    let mut set = FlowSet::default();
    set.flows.insert(f.name.clone(), f.clone());
    let outcomes = super::sim::run_tests(Arc::new(set), &f, Some(&lookup));
    for t in &outcomes {
        assert!(t.failures.is_empty(), "{}: {:#?}", t.name, t.failures);
    }
    // The WhatsApp test got the short answer.
    let wa = &outcomes[0].result;
    assert!(
        wa.trace
            .iter()
            .any(|l| l.contains("bot: \"Track your parcel")),
        "{:#?}",
        wa.trace
    );
}
