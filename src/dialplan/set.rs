//! The flows of a `dialplans/` directory, and the routes that pick one for a call.
//!
//! Hot reload: [`Library::reload`] re-reads the directory; a file that changed and loads
//! cleanly replaces its flow, one that does not is refused (its problems are returned,
//! with line and column) and its previous version keeps serving. Calls take an
//! `Arc<FlowSet>` snapshot when they start, so a call in progress keeps its version.

use super::compile::load_file;
use super::decode::LoadOptions;
use super::engine::FlowSource;
use super::model::{Action, Goto};
use super::problem::Problem;
use super::yaml::Pos;
use super::Flow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// A consistent set of flows, by name.
#[derive(Debug, Default)]
pub struct FlowSet {
    pub flows: BTreeMap<String, Arc<Flow>>,
}

impl FlowSource for FlowSet {
    fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name).cloned()
    }
}

impl FlowSet {
    /// `goto: {flow, step}` must name a loaded flow and one of its steps.
    pub fn check_gotos(&self, only: Option<&Path>) -> Vec<Problem> {
        let mut out = vec![];
        for f in self.flows.values() {
            if only.is_some_and(|p| p != f.file) {
                continue;
            }
            for s in &f.steps {
                let Action::Goto(Goto::Flow { flow, step, pos }) = &s.action else {
                    continue;
                };
                let err = |message: String| Problem {
                    file: f.file.clone(),
                    pos: *pos,
                    message,
                };
                match self.flows.get(flow) {
                    None => {
                        let hint =
                            super::problem::suggest(flow, self.flows.keys().map(|k| k.as_str()));
                        out.push(err(format!("goto: there is no flow named `{flow}`{hint}")));
                    }
                    Some(target) if target.kind != f.kind => out.push(err(format!(
                        "goto: flow `{flow}` is a {} flow and this one a {} flow",
                        target.kind.name(),
                        f.kind.name()
                    ))),
                    Some(target) => {
                        if let Some(st) = step {
                            if target.step(st).is_none() {
                                out.push(err(format!("goto: flow `{flow}` has no step `{st}`")));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Flow files in a directory (`*.yaml` and `*.yml`, not `*.test.yaml`), sorted.
pub fn flow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (n.ends_with(".yaml") || n.ends_with(".yml"))
                && !n.ends_with(".test.yaml")
                && !n.starts_with('.')
        })
        .collect();
    files.sort();
    Ok(files)
}

/// What the last reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub loaded: Vec<(String, String)>,
    pub removed: Vec<String>,
    pub problems: Vec<Problem>,
}

/// Per file: modification time, size, and the flow it last gave.
type Seen = HashMap<PathBuf, (Option<SystemTime>, u64, Option<Arc<Flow>>)>;

/// The served flows of one directory, reloaded on change.
pub struct Library {
    dir: PathBuf,
    opts: LoadOptions,
    current: RwLock<Arc<FlowSet>>,
    /// Per file: its modification time and size when last read, and the flow it gave.
    seen: RwLock<Seen>,
}

fn stamp(p: &Path) -> (Option<SystemTime>, u64) {
    let m = std::fs::metadata(p).ok();
    let side = std::fs::metadata(p.with_extension("test.yaml")).ok();
    let t = m.as_ref().and_then(|m| m.modified().ok());
    let st = side.as_ref().and_then(|m| m.modified().ok());
    (
        t.max(st),
        m.map(|m| m.len()).unwrap_or(0) + side.map(|m| m.len()).unwrap_or(0),
    )
}

impl Library {
    pub fn new(dir: &Path, opts: LoadOptions) -> Library {
        Library {
            dir: dir.to_path_buf(),
            opts,
            current: RwLock::new(Arc::new(FlowSet::default())),
            seen: RwLock::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The flows serving new calls.
    pub fn snapshot(&self) -> Arc<FlowSet> {
        self.current.read().unwrap().clone()
    }

    /// Re-reads changed files. Returns `None` when nothing changed.
    pub fn reload(&self) -> Option<ReloadReport> {
        let files = match flow_files(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                let mut r = ReloadReport::default();
                r.problems.push(Problem {
                    file: self.dir.clone(),
                    pos: Pos { line: 1, col: 1 },
                    message: format!("cannot read the dialplan directory: {e}"),
                });
                let mut seen = self.seen.write().unwrap();
                if seen.get(&self.dir).is_some() {
                    return None;
                }
                seen.insert(self.dir.clone(), (None, 0, None));
                return Some(r);
            }
        };
        let mut seen = self.seen.write().unwrap();
        seen.remove(&self.dir);
        let mut report = ReloadReport::default();
        let mut changed = false;
        for f in &files {
            let (t, len) = stamp(f);
            if let Some((st, sl, _)) = seen.get(f) {
                if *st == t && *sl == len {
                    continue;
                }
            }
            changed = true;
            match load_file(f, &self.opts) {
                Ok(flow) => {
                    report
                        .loaded
                        .push((flow.name.clone(), flow.version.clone()));
                    seen.insert(f.clone(), (t, len, Some(Arc::new(flow))));
                }
                Err(p) => {
                    report.problems.extend(p);
                    let old = seen.get(f).and_then(|(_, _, fl)| fl.clone());
                    seen.insert(f.clone(), (t, len, old));
                }
            }
        }
        let before = seen.len();
        seen.retain(|p, _| files.contains(p));
        if seen.len() != before {
            changed = true;
        }
        if !changed {
            return None;
        }
        let mut set = FlowSet::default();
        let mut by_name: BTreeMap<String, &PathBuf> = BTreeMap::new();
        for f in &files {
            let Some((_, _, Some(flow))) = seen.get(f) else {
                continue;
            };
            if let Some(other) = by_name.get(&flow.name) {
                report.problems.push(Problem {
                    file: f.clone(),
                    pos: Pos { line: 1, col: 1 },
                    message: format!(
                        "flow `{}` is already defined in {}; this file is not served",
                        flow.name,
                        other.display()
                    ),
                });
                continue;
            }
            by_name.insert(flow.name.clone(), f);
            set.flows.insert(flow.name.clone(), flow.clone());
        }
        let old = self.snapshot();
        for name in old.flows.keys() {
            if !set.flows.contains_key(name) {
                report.removed.push(name.clone());
            }
        }
        report.problems.extend(set.check_gotos(None));
        *self.current.write().unwrap() = Arc::new(set);
        Some(report)
    }
}
