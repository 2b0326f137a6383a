//! The served knowledge base of one directory, reloaded when a file changes: a file
//! that no longer loads is refused with its problems while its previous version keeps
//! serving (as the dialplans do); the matcher is rebuilt once per change.

use super::load::{kb_files, load_file};
use super::{Kb, Matcher};
use crate::dialplan::problem::Problem;
use crate::dialplan::yaml::Pos;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Articles served (in every language).
    pub articles: usize,
    pub files: usize,
    pub problems: Vec<Problem>,
}

type Stamp = (Option<SystemTime>, u64);

pub struct Library {
    dir: PathBuf,
    threshold: f32,
    current: RwLock<Arc<Matcher>>,
    /// Per file: its stamp when last read and what it last gave.
    seen: RwLock<HashMap<PathBuf, (Stamp, Option<Kb>)>>,
}

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok();
    (
        m.as_ref().and_then(|m| m.modified().ok()),
        m.map(|m| m.len()).unwrap_or(0),
    )
}

impl Library {
    pub fn new(dir: &Path, threshold: f32) -> Library {
        Library {
            dir: dir.to_path_buf(),
            threshold,
            current: RwLock::new(Arc::new(Matcher::new(Arc::new(Kb::default()), threshold))),
            seen: RwLock::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The matcher serving now.
    pub fn matcher(&self) -> Arc<Matcher> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads changed files; `None` when nothing changed. A missing directory is an
    /// empty knowledge base.
    pub fn reload(&self) -> Option<ReloadReport> {
        let files = if self.dir.is_dir() {
            match kb_files(&self.dir) {
                Ok(f) => f,
                Err(e) => {
                    return Some(ReloadReport {
                        problems: vec![Problem {
                            file: self.dir.clone(),
                            pos: Pos { line: 1, col: 1 },
                            message: format!("cannot read the knowledge-base directory: {e}"),
                        }],
                        ..Default::default()
                    })
                }
            }
        } else {
            vec![]
        };
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        let mut report = ReloadReport::default();
        let mut changed = false;
        for f in &files {
            let st = stamp(f);
            if seen.get(f).is_some_and(|(s, _)| *s == st) {
                continue;
            }
            changed = true;
            match load_file(f) {
                Ok(kb) => {
                    seen.insert(f.clone(), (st, Some(kb)));
                }
                Err(p) => {
                    report.problems.extend(p);
                    let old = seen.get(f).and_then(|(_, k)| k.clone());
                    seen.insert(f.clone(), (st, old));
                }
            }
        }
        let before = seen.len();
        seen.retain(|p, _| files.contains(p));
        if !changed && seen.len() == before {
            return None;
        }
        let mut kb = Kb::default();
        for f in &files {
            let Some((_, Some(part))) = seen.get(f) else {
                continue;
            };
            report.files += 1;
            for a in &part.articles {
                if let Some(other) = kb.article(&a.id, a.lang) {
                    report.problems.push(Problem {
                        file: a.file.clone(),
                        pos: a.pos,
                        message: format!(
                            "article `{}` ({}) is already defined at {}; this one is not served",
                            a.id,
                            a.lang,
                            other.at()
                        ),
                    });
                    continue;
                }
                kb.articles.push(a.clone());
            }
            kb.synonyms.extend(part.synonyms.iter().cloned());
        }
        report.articles = kb.articles.len();
        let m = Arc::new(Matcher::new(Arc::new(kb), self.threshold));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = m;
        Some(report)
    }
}
