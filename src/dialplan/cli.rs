//! `omnigate dialplan check|simulate|test`: the designer's tools. Each returns the
//! process exit status (0 fine, 1 problems or failures, 2 bad usage) and writes to the
//! given output, so tests call them directly.

use super::compile::load_file;
use super::decode::LoadOptions;
use super::model::{Flow, TestCase};
use super::problem::Problem;
use super::set::{flow_files, FlowSet};
use super::sim;
use crate::kb::Matcher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files named on the command line; a directory stands for its flows.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            out.extend(flow_files(p).map_err(|e| format!("{}: {e}", p.display()))?);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file", p.display()));
        }
    }
    Ok(out)
}

/// A set of flows, each given file with its flow (if it loaded), and the problems.
type Loaded = (FlowSet, Vec<(PathBuf, Option<Arc<Flow>>)>, Vec<Problem>);

/// Loads the given files, plus the other flows of their directories (quietly) so that
/// `goto: {flow: ...}` can be checked. Returns the set and the problems of the given
/// files.
fn load_set(files: &[PathBuf], opts: &LoadOptions) -> Loaded {
    let mut set = FlowSet::default();
    let mut given = vec![];
    let mut problems = vec![];
    for f in files {
        match load_file(f, opts) {
            Ok(flow) => {
                let flow = Arc::new(flow);
                set.flows.insert(flow.name.clone(), flow.clone());
                given.push((f.clone(), Some(flow)));
            }
            Err(p) => {
                problems.extend(p);
                given.push((f.clone(), None));
            }
        }
    }
    let dirs: std::collections::BTreeSet<PathBuf> = files
        .iter()
        .map(|f| f.parent().map(Path::to_path_buf).unwrap_or_default())
        .collect();
    for d in dirs {
        let d = if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d
        };
        for f in flow_files(&d).unwrap_or_default() {
            if files.iter().any(|g| same_file(g, &f)) {
                continue;
            }
            if let Ok(flow) = load_file(&f, opts) {
                set.flows
                    .entry(flow.name.clone())
                    .or_insert_with(|| Arc::new(flow));
            }
        }
    }
    for (f, flow) in &given {
        if flow.is_some() {
            problems.extend(set.check_gotos(Some(f)));
        }
    }
    (set, given, problems)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Loads the flows named on the command line and prints their problems; `Err` is the
/// exit status for bad usage (no such file, nothing given).
fn load_paths(paths: &[PathBuf], out: &mut dyn Write) -> Result<Loaded, i32> {
    let files = match expand(paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            let _ = writeln!(out, "no flow files given");
            return Err(2);
        }
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return Err(2);
        }
    };
    let loaded = load_set(&files, &LoadOptions::detect());
    for p in &loaded.2 {
        let _ = writeln!(out, "{p}");
    }
    Ok(loaded)
}

pub fn check(paths: &[PathBuf], out: &mut dyn Write) -> i32 {
    let (_, given, problems) = match load_paths(paths, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    for (f, flow) in &given {
        if let Some(flow) = flow {
            if !problems.iter().any(|p| p.file == *f) {
                let _ = writeln!(
                    out,
                    "{}: ok: flow `{}`, {} steps, {} tests",
                    f.display(),
                    flow.name,
                    flow.steps.len(),
                    flow.tests.len()
                );
            }
        }
    }
    if problems.is_empty() {
        0
    } else {
        let _ = writeln!(out, "{} problem(s)", problems.len());
        1
    }
}

/// The knowledge base text flows' `match_kb` steps ask: `dir`, else `kb/` when it
/// exists (none: nothing is found). `Err` is the exit status after its problems.
fn load_kb(dir: Option<&Path>, out: &mut dyn Write) -> Result<Option<Arc<Matcher>>, i32> {
    let dir = match dir {
        Some(d) if !d.is_dir() => {
            let _ = writeln!(out, "--kb {}: no such directory", d.display());
            return Err(2);
        }
        Some(d) => d.to_path_buf(),
        None if Path::new("kb").is_dir() => PathBuf::from("kb"),
        None => return Ok(None),
    };
    let lib = crate::kb::Library::new(&dir, crate::kb::matcher::DEFAULT_THRESHOLD);
    if let Some(r) = lib.reload() {
        if !r.problems.is_empty() {
            for p in &r.problems {
                let _ = writeln!(out, "{p}");
            }
            let _ = writeln!(out, "the knowledge base in {} has problems", dir.display());
            return Err(1);
        }
    }
    Ok(Some(lib.matcher()))
}

/// `match_kb` against `m`.
fn kb_lookup(m: &Matcher) -> impl Fn(&str, &str) -> Option<super::engine::KbAnswer> + '_ {
    move |text, channel| m.flow_answer(text, channel, None)
}

pub struct SimArgs {
    pub file: PathBuf,
    /// Text flows: the customer's messages, the first starting the conversation.
    pub messages: Vec<String>,
    /// Text flows: the channel (`webchat`, `whatsapp`, `sms`, `email`).
    pub channel: String,
    /// The knowledge base for `match_kb` (default `kb/` when it exists).
    pub kb: Option<PathBuf>,
    pub caller: String,
    pub dialled: String,
    pub trunk: String,
    pub digits: String,
    pub at: Option<String>,
    pub vars: Vec<String>,
    /// `by:value={"field": "value"}` or `by:value=null`.
    pub lookup: Vec<String>,
    /// `[METHOD ]url={"status": 200, "body": {...}}`, or `url=error text`.
    pub http: Vec<String>,
    /// An agent answers the enqueue and hangs up first.
    pub agent_hangs_up: bool,
}

/// Splits `key=value` where the key may itself hold `=` (URL queries): at the first
/// `={`, `=[` or `=null`, else at the last `=`.
fn split_fixture(s: &str) -> Option<(&str, &str)> {
    ["={", "=[", "=null"]
        .iter()
        .filter_map(|m| s.find(m))
        .min()
        .or_else(|| s.rfind('='))
        .map(|i| (&s[..i], &s[i + 1..]))
}

/// The demo customers as lookup answers (by account, phone, e-mail and caller id), as
/// the demo node's store would give them.
fn demo_lookups(case: &mut TestCase) {
    for (i, c) in crate::store::DEMO_CUSTOMERS.iter().enumerate() {
        let (account, phone, email) = (c.account, c.phone, c.email);
        let fields = crate::store::Customer {
            id: i as i64 + 1,
            name: c.name.into(),
            account: account.into(),
            tier: c.tier.into(),
            phone: phone.into(),
            email: email.into(),
        }
        .fields();
        for key in [
            format!("account:{account}"),
            format!("phone:{phone}"),
            format!("caller:{phone}"),
            format!("email:{email}"),
        ] {
            case.lookup
                .entry(key)
                .or_insert_with(|| Some(fields.clone()));
        }
    }
}

fn fixtures(a: &SimArgs, case: &mut TestCase) -> Result<(), String> {
    for l in &a.lookup {
        let (k, v) =
            split_fixture(l).ok_or_else(|| format!("--lookup: `{l}` is not by:value=JSON"))?;
        let v: serde_json::Value =
            serde_json::from_str(v).map_err(|e| format!("--lookup {k}: {e}"))?;
        let fields = match v {
            serde_json::Value::Null => None,
            serde_json::Value::Object(m) => Some(
                m.into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect(),
            ),
            _ => return Err(format!("--lookup {k}: a JSON object of fields, or null")),
        };
        case.lookup.insert(k.to_string(), fields);
    }
    for h in &a.http {
        let (k, v) = split_fixture(h).ok_or_else(|| format!("--http: `{h}` is not URL=JSON"))?;
        let answer = match serde_json::from_str::<serde_json::Value>(v) {
            Ok(j) if j.is_object() && (j.get("status").is_some() || j.get("body").is_some()) => {
                Ok((
                    j.get("status").and_then(|s| s.as_u64()).unwrap_or(200) as u16,
                    j.get("body").cloned().unwrap_or_default(),
                ))
            }
            Ok(j) => Ok((200, j)),
            Err(_) => Err(v.to_string()),
        };
        case.http.insert(k.to_string(), answer);
    }
    Ok(())
}

pub fn simulate(a: &SimArgs, out: &mut dyn Write) -> i32 {
    let (set, given, problems) = load_set(std::slice::from_ref(&a.file), &LoadOptions::detect());
    if !problems.is_empty() {
        for p in &problems {
            let _ = writeln!(out, "{p}");
        }
        return 1;
    }
    let Some((_, Some(flow))) = given.into_iter().next() else {
        return 1;
    };
    let mut case = TestCase {
        caller: a.caller.clone(),
        dialled: a.dialled.clone(),
        trunk: a.trunk.clone(),
        digits: if a.digits.is_empty() {
            vec![]
        } else {
            a.digits.split(',').map(|s| s.trim().to_string()).collect()
        },
        agent_hangs_up: a.agent_hangs_up,
        messages: a.messages.clone(),
        channel: a.channel.clone(),
        ..Default::default()
    };
    if let Some(at) = &a.at {
        match super::decode::parse_at(at) {
            Some(t) => case.at = Some(t),
            None => {
                let _ = writeln!(
                    out,
                    "--at: `{at}` is not a time like 2026-11-22T20:00:00-05:00"
                );
                return 2;
            }
        }
    }
    if let Err(e) = fixtures(a, &mut case) {
        let _ = writeln!(out, "{e}");
        return 2;
    }
    // Lookups not given with --lookup answer as the demo node would (its customers).
    demo_lookups(&mut case);
    for v in &a.vars {
        match v.split_once('=') {
            Some((k, val)) => case.variables.push((k.to_string(), val.to_string())),
            None => {
                let _ = writeln!(out, "--var: `{v}` is not NAME=VALUE");
                return 2;
            }
        }
    }
    let kb = match load_kb(a.kb.as_deref(), out) {
        Ok(kb) => kb,
        Err(code) => return code,
    };
    let lookup = kb.as_deref().map(kb_lookup);
    let r = sim::simulate(
        Arc::new(set),
        flow,
        &case,
        lookup.as_ref().map(|f| f as sim::KbLookup<'_>),
    );
    for line in &r.trace {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "path: {}", r.path.join(" -> "));
    let _ = writeln!(out, "ends: {}", r.ending);
    let shown: Vec<String> = r
        .vars
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "now" | "date" | "time" | "weekday" | "call_id"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(out, "variables: {}", shown.join(" "));
    if !r.unused_digits.is_empty() {
        let _ = writeln!(
            out,
            "digits not used: {} (the flow ended before asking for them{})",
            r.unused_digits.join(","),
            if a.at.is_none() {
                "; without --at it runs at the current time, so `hours` may have closed it"
            } else {
                ""
            }
        );
    }
    if !r.unused_messages.is_empty() {
        let _ = writeln!(
            out,
            "messages not read: {:?} (the conversation ended or went to a person first)",
            r.unused_messages
        );
    }
    if let Some(e) = r.error {
        let _ = writeln!(out, "error: {e}");
        return 1;
    }
    0
}

/// Runs the flows' tests; text flows' `match_kb` asks the knowledge base in `kb`
/// (default `kb/` when it exists).
pub fn test(paths: &[PathBuf], kb: Option<&Path>, out: &mut dyn Write) -> i32 {
    let (set, given, problems) = match load_paths(paths, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let kb = match load_kb(kb, out) {
        Ok(kb) => kb,
        Err(code) => return code,
    };
    let lookup = kb.as_deref().map(kb_lookup);
    let lookup = lookup.as_ref().map(|f| f as sim::KbLookup<'_>);
    let set = Arc::new(set);
    let (mut passed, mut failed) = (0, 0);
    for (f, flow) in given {
        let Some(flow) = flow else { continue };
        if flow.tests.is_empty() {
            let _ = writeln!(
                out,
                "{}: no tests (add `tests:` to the flow or a {} file)",
                f.display(),
                f.with_extension("test.yaml").display()
            );
            failed += 1;
            continue;
        }
        for t in sim::run_tests(set.clone(), &flow, lookup) {
            if t.failures.is_empty() {
                passed += 1;
                let _ = writeln!(out, "PASS {} :: {}", flow.name, t.name);
            } else {
                failed += 1;
                let _ = writeln!(out, "FAIL {} :: {}", flow.name, t.name);
                for fl in &t.failures {
                    let _ = writeln!(out, "    {fl}");
                }
                let _ = writeln!(out, "    trace:");
                for line in &t.result.trace {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{passed} passed, {failed} failed, {} problem(s)",
        problems.len()
    );
    if failed == 0 && problems.is_empty() {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixture_arguments() {
        assert_eq!(
            super::split_fixture("account:1234={\"a\":1}"),
            Some(("account:1234", "{\"a\":1}"))
        );
        assert_eq!(
            super::split_fixture("GET http://x/?a=b={\"status\":500}"),
            Some(("GET http://x/?a=b", "{\"status\":500}"))
        );
        assert_eq!(
            super::split_fixture("http://x/?a=b=timeout"),
            Some(("http://x/?a=b", "timeout"))
        );
        assert_eq!(
            super::split_fixture("caller:+1=null"),
            Some(("caller:+1", "null"))
        );
    }
}
