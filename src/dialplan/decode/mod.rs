//! Reads a flow file into a [`Flow`], collecting every problem with its line and column
//! rather than stopping at the first: unknown steps and fields (with a "did you mean"),
//! bad values, undefined branch targets, missing prompt files, bad time zones, `say`
//! without a speech engine. Meaning checks that need the whole flow are in `check`;
//! `compile` runs both.
//!
//! `values` reads field values, `prompts` prompt files and texts, `input`, `control`,
//! `services` and `routing` the step families, `steps` a step and its `next`, `cases`
//! the test cases.

mod cases;
mod control;
mod input;
mod prompts;
mod routing;
mod services;
mod steps;
mod text;
mod values;

pub use prompts::prompt_path;
pub use text::ASK_TIMEOUT;
pub use values::{is_key, parse_at, parse_days, parse_duration, parse_range, to_json};

use super::model::*;
use super::problem::{suggest, Problem, BUILTINS, TEXT_BUILTINS};
use super::template::{valid_var_name, Template};
use super::yaml::{self, Node, Pos, Value};
use crate::media::player::{load_wav, Samples};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the loader may rely on.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// A text-to-speech engine is installed (`say` is allowed).
    pub tts: bool,
}

impl LoadOptions {
    /// Looks for espeak-ng on PATH.
    pub fn detect() -> LoadOptions {
        LoadOptions {
            tts: super::tts::available(),
        }
    }
}

/// Actions and the branch fields each offers.
pub(crate) const ACTIONS: &[(&str, &[&str])] = &[
    ("answer", &[]),
    ("play", &[]),
    ("say", &[]),
    ("pause", &[]),
    ("gather", &["invalid", "timeout"]),
    ("menu", &["invalid", "timeout"]),
    ("set", &[]),
    ("branch", &[]),
    ("hours", &["open", "closed"]),
    ("lookup", &["found", "not_found"]),
    ("http", &["failure"]),
    ("enqueue", &["timeout", "agent_hangup"]),
    ("transfer", &["failure"]),
    ("voicemail", &[]),
    ("survey", &["invalid", "timeout"]),
    ("record", &[]),
    ("recording_notice", &["opted_out"]),
    ("goto", &[]),
    ("hangup", &[]),
    ("reply", &[]),
    ("ask", &["invalid", "timeout"]),
    ("match_kb", &["found", "not_found", "handoff_topic"]),
    ("handoff", &[]),
];

const FLOW_FIELDS: &[&str] = &[
    "flow",
    "description",
    "kind",
    "start",
    "inputs",
    "timezone",
    "max_steps",
    "steps",
    "tests",
];

pub(crate) struct Decoder<'a> {
    pub file: PathBuf,
    dir: PathBuf,
    opts: &'a LoadOptions,
    pub problems: Vec<Problem>,
    index: HashMap<String, StepId>,
    names: Vec<String>,
    prompts: HashMap<String, Samples>,
    timezone: jiff::tz::TimeZone,
    kind: Kind,
}

type Fields<'n> = Vec<(&'n str, &'n Node)>;

impl Decoder<'_> {
    pub(super) fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }
}
/// Reads a flow file's text (a problem at 1:1 when it cannot be read).
pub fn read(path: &Path) -> Result<String, Vec<Problem>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.to_path_buf(),
            pos: Pos { line: 1, col: 1 },
            message: format!("cannot read: {e}"),
        }]
    })
}

/// Decodes a side file of tests (`<name>.test.yaml`: `tests:`, or a bare list): the
/// cases, with the problems found in them.
pub fn decode_tests(
    text: &str,
    side: &Path,
    opts: &LoadOptions,
) -> Result<(Vec<TestCase>, Vec<Problem>), Vec<Problem>> {
    let mut d = Decoder::new(side, opts);
    let tree = yaml::parse(text).map_err(|e| syntax_problems(side, e))?;
    let node = match yaml::tests_list(tree) {
        Ok(n) => n,
        Err(pos) => {
            d.err(pos, "a test file holds `tests:`, a list of test cases");
            return Err(d.problems);
        }
    };
    let more = d.tests(&node);
    Ok((more, d.problems))
}

/// YAML syntax errors as problems of `file`.
pub fn syntax_problems(file: &Path, e: Vec<yaml::SyntaxError>) -> Vec<Problem> {
    e.into_iter()
        .map(|e| Problem {
            file: file.to_path_buf(),
            pos: e.pos,
            message: e.message,
        })
        .collect()
}

impl<'a> Decoder<'a> {
    fn new(file: &Path, opts: &'a LoadOptions) -> Decoder<'a> {
        Decoder {
            file: file.to_path_buf(),
            dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            opts,
            problems: vec![],
            index: HashMap::new(),
            names: vec![],
            prompts: HashMap::new(),
            timezone: jiff::tz::TimeZone::UTC,
            kind: Kind::Voice,
        }
    }
}

/// Decodes a flow from text (`file` names it in problems and anchors prompt paths);
/// the whole-flow checks are `check`'s (see `compile`).
pub fn decode_str(text: &str, file: &Path, opts: &LoadOptions) -> Result<Flow, Vec<Problem>> {
    let tree = yaml::parse(text).map_err(|e| syntax_problems(file, e))?;
    let mut d = Decoder::new(file, opts);
    let Some(top) = d.fields(&tree, FLOW_FIELDS, "a flow") else {
        return Err(d.problems);
    };
    let get = |k: &str| top.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let stem = file
        .file_name()
        .and_then(|s| s.to_str())
        .map(|s| {
            s.trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .to_string()
        })
        .unwrap_or_default();
    let name = match get("flow") {
        Some(n) => d.text(n, "flow").unwrap_or(stem),
        None => stem,
    };
    if let Some(tz) = get("timezone") {
        if let Some(tz) = d.timezone(tz) {
            d.timezone = tz;
        }
    }
    if let Some(k) = get("kind") {
        match d.text(k, "kind").as_deref() {
            Some("voice") => d.kind = Kind::Voice,
            Some("text") => d.kind = Kind::Text,
            Some(other) => {
                let hint = suggest(other, ["voice", "text"]);
                d.err(
                    k.pos,
                    format!("kind `{other}`: expected voice (a call) or text (a chat){hint}"),
                );
            }
            None => {}
        }
    }
    let max_steps = get("max_steps")
        .and_then(|n| d.uint(n, "max_steps", 100_000))
        .unwrap_or(1000) as u32;
    let inputs = get("inputs")
        .map(|n| d.strings(n, "inputs"))
        .unwrap_or_default();
    let description = get("description")
        .and_then(|n| d.text(n, "description"))
        .unwrap_or_default();
    let Some(steps_node) = get("steps") else {
        d.err(tree.pos, "a flow needs `steps`");
        return Err(d.problems);
    };
    let Some(steps_map) = steps_node.as_map() else {
        d.err(
            steps_node.pos,
            "steps must be a mapping of step names to steps",
        );
        return Err(d.problems);
    };
    if steps_map.is_empty() {
        d.err(steps_node.pos, "a flow needs at least one step");
    }
    for (i, (k, _)) in steps_map.iter().enumerate() {
        match k.as_str() {
            Some(n) if valid_var_name(n) && !n.contains('.') => {
                d.index.insert(n.to_string(), i);
                d.names.push(n.to_string());
            }
            _ => {
                d.err(
                    k.pos,
                    "a step name is letters, digits and `_`, starting with a letter",
                );
                d.names.push(String::new());
            }
        }
    }
    let mut steps = vec![];
    for (i, (k, v)) in steps_map.iter().enumerate() {
        let following = (i + 1 < steps_map.len()).then_some(i + 1);
        let name = k.as_str().unwrap_or_default().to_string();
        match d.step(&name, k.pos, v, following) {
            Some(s) => steps.push(s),
            // Keep indexes aligned: a broken step becomes a hangup (never served).
            None => steps.push(Step {
                name,
                pos: k.pos,
                action: Action::Hangup,
                next: None,
                explicit_next: false,
            }),
        }
    }
    let start = match get("start") {
        Some(n) => d.target(n, "start").map(|t| t.step).unwrap_or(0),
        None => 0,
    };
    let tests = get("tests").map(|n| d.tests(n)).unwrap_or_default();
    let version = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        format!("{:08x}", h.finish() as u32)
    };
    let flow = Flow {
        name,
        file: file.to_path_buf(),
        description,
        kind: d.kind,
        inputs,
        timezone: d.timezone.clone(),
        max_steps,
        index: d.index.clone(),
        steps,
        start,
        tests,
        prompts: std::mem::take(&mut d.prompts),
        version,
    };
    let mut problems = d.problems;
    if problems.is_empty() {
        Ok(flow)
    } else {
        problems.sort();
        problems.dedup();
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::values::{parse_days, parse_duration, parse_range};
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "s", "5x", "-1", "5 s", "ms5"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_and_ranges() {
        assert_eq!(parse_days("mon-fri"), Some(vec![0, 1, 2, 3, 4]));
        assert_eq!(parse_days("sat,sun"), Some(vec![5, 6]));
        assert_eq!(parse_days("fri-mon"), Some(vec![0, 4, 5, 6]));
        assert_eq!(parse_days("Monday"), Some(vec![0]));
        assert_eq!(parse_days("funday"), None);
        assert_eq!(parse_range("09:00-17:30"), Some((540, 1050)));
        assert_eq!(parse_range("00:00-24:00"), Some((0, 1440)));
        assert_eq!(parse_range("17:00-09:00"), None);
        assert_eq!(parse_range("9-5"), None);
        assert_eq!(parse_range("25:00-26:00"), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("gahter", ["gather", "menu"]),
            "; did you mean `gather`?"
        );
        assert_eq!(suggest("zzzzzz", ["gather", "menu"]), "");
    }
}
