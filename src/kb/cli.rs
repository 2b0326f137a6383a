//! `omnigate kb check|test`: the designer's tools for the knowledge base, mirroring
//! `omnigate dialplan check|test`. Each returns the exit status (0 fine, 1 problems
//! or failures, 2 bad usage) and writes to the given output, so tests call them.

use super::load::{kb_files, load_examples, load_file, test_files, Example, Expect};
use super::matcher::DEFAULT_THRESHOLD;
use super::{Decision, Kb, Matcher};
use crate::dialplan::problem::Problem;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The knowledge-base files and test files named (a directory stands for both kinds
/// in it).
fn expand(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), String> {
    let (mut kb, mut tests) = (vec![], vec![]);
    for p in paths {
        if p.is_dir() {
            kb.extend(kb_files(p).map_err(|e| format!("{}: {e}", p.display()))?);
            tests.extend(test_files(p).map_err(|e| format!("{}: {e}", p.display()))?);
        } else if !p.exists() {
            return Err(format!("{}: no such file", p.display()));
        } else if p.to_string_lossy().ends_with(".test.yaml") {
            tests.push(p.clone());
        } else {
            kb.push(p.clone());
        }
    }
    Ok((kb, tests))
}

/// The articles of `files` (a duplicate id in a language is a problem), and the
/// problems.
fn load(files: &[PathBuf]) -> (Kb, Vec<Problem>) {
    let (mut kb, mut problems) = (Kb::default(), vec![]);
    for f in files {
        match load_file(f) {
            Ok(part) => {
                for a in part.articles {
                    if let Some(other) = kb.article(&a.id, a.lang) {
                        problems.push(Problem {
                            file: a.file.clone(),
                            pos: a.pos,
                            message: format!(
                                "article `{}` ({}) is already defined at {}",
                                a.id,
                                a.lang,
                                other.at()
                            ),
                        });
                        continue;
                    }
                    kb.articles.push(a);
                }
                kb.synonyms.extend(part.synonyms);
            }
            Err(p) => problems.extend(p),
        }
    }
    (kb, problems)
}

/// What a knowledge base's own content says about it: empty answers, questions with
/// no word the matcher keeps, the same question in two articles, a question another
/// article answers better or that is not sure enough, an article missing in one of
/// the languages.
pub fn findings(m: &Matcher) -> Vec<Problem> {
    let kb = m.kb();
    let mut out = vec![];
    let mut at = |a: &super::Article, pos, message: String| {
        out.push(Problem {
            file: a.file.clone(),
            pos,
            message,
        })
    };
    let langs = kb.languages();
    let mut words_seen: Vec<(super::Lang, Vec<String>, String)> = vec![];
    for a in &kb.articles {
        if !a.handoff && a.short.is_empty() && a.long.is_empty() {
            at(a, a.pos, format!("article `{}` has an empty answer", a.id));
        }
        if langs.len() > 1 {
            for l in &langs {
                if kb.article(&a.id, *l).is_none() {
                    at(
                        a,
                        a.pos,
                        format!(
                            "article `{}` has no `{l}` version (the knowledge base has {})",
                            a.id,
                            langs
                                .iter()
                                .map(|l| l.code())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
        }
        for (q, pos) in &a.questions {
            let words = m.words(q, a.lang);
            if words.is_empty() {
                at(
                    a,
                    *pos,
                    format!("question {q:?} has no word the matcher keeps (only stop words)"),
                );
                continue;
            }
            if let Some((_, _, other)) = words_seen
                .iter()
                .find(|(l, w, _)| *l == a.lang && *w == words)
            {
                at(
                    a,
                    *pos,
                    format!("question {q:?} is the same words as one of `{other}`"),
                );
                continue;
            }
            words_seen.push((a.lang, words, a.id.clone()));
            match m.decide(q, Some(a.lang)) {
                Decision::Answer(h) | Decision::Handoff(h) if h.article.id != a.id => at(
                    a,
                    *pos,
                    format!(
                        "question {q:?} of `{}` is matched by `{}` ({:?}, confidence {:.2})",
                        a.id, h.article.id, h.question, h.confidence
                    ),
                ),
                Decision::NotFound(best) => at(
                    a,
                    *pos,
                    format!(
                        "question {q:?} of `{}` is below the threshold ({:.2} < {:.2})",
                        a.id,
                        best.map(|h| h.confidence).unwrap_or(0.0),
                        m.threshold()
                    ),
                ),
                _ => {}
            }
        }
    }
    out
}

/// `omnigate kb check FILES|DIRS`: every problem as `file:line:column: message`;
/// exit 1 if there is any.
pub fn check(paths: &[PathBuf], threshold: Option<f32>, out: &mut dyn Write) -> i32 {
    let (files, _) = match expand(paths) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return 2;
        }
    };
    if files.is_empty() {
        let _ = writeln!(out, "no knowledge-base files (*.yaml) in {}", show(paths));
        return 2;
    }
    let (kb, mut problems) = load(&files);
    let m = Matcher::new(Arc::new(kb), threshold.unwrap_or(DEFAULT_THRESHOLD));
    problems.extend(findings(&m));
    problems.sort();
    for p in &problems {
        let _ = writeln!(out, "{p}");
    }
    let langs: Vec<&str> = m.kb().languages().iter().map(|l| l.code()).collect();
    let _ = writeln!(
        out,
        "{} article(s) in {} file(s), languages: {}; {} problem(s)",
        m.kb().articles.len(),
        files.len(),
        if langs.is_empty() {
            "none".to_string()
        } else {
            langs.join(", ")
        },
        problems.len()
    );
    i32::from(!problems.is_empty())
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of one labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub example: Example,
    /// The article answered or handed off with (and whether it is a hand-off), or
    /// none; with the confidence of the best guess.
    pub got: Option<(String, bool)>,
    pub best: Option<(String, f32)>,
    pub passed: bool,
}

/// Runs labelled examples against a matcher.
pub fn run_examples(m: &Matcher, examples: &[Example]) -> Vec<Outcome> {
    examples
        .iter()
        .map(|e| {
            let d = m.decide(&e.say, e.lang);
            let (got, best) = match &d {
                Decision::Answer(h) => (
                    Some((h.article.id.clone(), false)),
                    Some((h.question.clone(), h.confidence)),
                ),
                Decision::Handoff(h) => (
                    Some((h.article.id.clone(), true)),
                    Some((h.question.clone(), h.confidence)),
                ),
                Decision::NotFound(h) => (
                    None,
                    h.as_ref()
                        .map(|h| (format!("{} ({:?})", h.article.id, h.question), h.confidence)),
                ),
            };
            let passed = match (&e.expect, &got) {
                (Expect::Article(id), Some((g, _))) => id == g,
                (Expect::Handoff, Some((_, true))) => true,
                (Expect::Nothing, None) => true,
                _ => false,
            };
            Outcome {
                example: e.clone(),
                got,
                best,
                passed,
            }
        })
        .collect()
}

/// Precision (right answers among answers given) and recall (right answers among
/// examples that expect one), as fractions; `None` when there is nothing to divide.
pub fn scores(outcomes: &[Outcome]) -> (Option<f64>, Option<f64>) {
    let answered = outcomes.iter().filter(|o| o.got.is_some()).count();
    let right = outcomes
        .iter()
        .filter(|o| o.got.is_some() && o.passed)
        .count();
    let expecting = outcomes
        .iter()
        .filter(|o| o.example.expect != Expect::Nothing)
        .count();
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    (ratio(right, answered), ratio(right, expecting))
}

/// `omnigate kb test FILES|DIRS`: each labelled example (`*.test.yaml`) as PASS or
/// FAIL with what was expected and found; precision and recall; exit 1 on any
/// failure or problem.
pub fn test(paths: &[PathBuf], threshold: Option<f32>, out: &mut dyn Write) -> i32 {
    let (files, tests) = match expand(paths) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return 2;
        }
    };
    let (kb, mut problems) = load(&files);
    let mut examples = vec![];
    for t in &tests {
        match load_examples(t) {
            Ok(e) => examples.extend(e),
            Err(p) => problems.extend(p),
        }
    }
    for p in &problems {
        let _ = writeln!(out, "{p}");
    }
    if examples.is_empty() {
        let _ = writeln!(
            out,
            "no examples: write labelled questions in a *.test.yaml file beside the articles"
        );
        return 1;
    }
    let m = Matcher::new(Arc::new(kb), threshold.unwrap_or(DEFAULT_THRESHOLD));
    for e in &examples {
        if let Expect::Article(id) = &e.expect {
            if !m.kb().articles.iter().any(|a| a.id == *id) {
                problems.push(Problem {
                    file: e.file.clone(),
                    pos: e.pos,
                    message: format!("`expect: {id}`: no such article"),
                });
                let _ = writeln!(out, "{}", problems[problems.len() - 1]);
            }
        }
    }
    let outcomes = run_examples(&m, &examples);
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    for o in &outcomes {
        let e = &o.example;
        let got = match &o.got {
            Some((id, true)) => format!("{id} (hand-off)"),
            Some((id, false)) => id.clone(),
            None => "none".into(),
        };
        let conf = o.best.as_ref().map(|b| b.1).unwrap_or(0.0);
        if o.passed {
            let _ = writeln!(out, "PASS {:?} -> {got} ({conf:.2})", e.say);
        } else {
            let _ = writeln!(
                out,
                "FAIL {}:{}: {:?}: expected {}, got {got}",
                e.file.display(),
                e.pos,
                e.say,
                e.expect
            );
            if let Some((q, c)) = &o.best {
                let _ = writeln!(
                    out,
                    "    best guess: {q} at {c:.2} (threshold {:.2})",
                    m.threshold()
                );
            }
        }
    }
    let pct = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{:.1}%", x * 100.0));
    let (precision, recall) = scores(&outcomes);
    let _ = writeln!(
        out,
        "{} passed, {failed} failed, {} problem(s); precision {}, recall {}",
        outcomes.len() - failed,
        problems.len(),
        pct(precision),
        pct(recall)
    );
    i32::from(failed > 0 || !problems.is_empty())
}
