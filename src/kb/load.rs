//! Reads knowledge-base files: `language`, `synonyms` and `articles` (see
//! `kb/README.md`), every problem at its line and column; and the test files
//! (`*.test.yaml`: labelled questions with the article or decision expected).

use super::{Article, Kb, Lang, Synonyms};
use crate::dialplan::problem::Problem;
use crate::dialplan::yaml::{self, Node, Pos, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Limits on what one file may hold (a designer's file, still bounded).
pub const MAX_ARTICLES: usize = 2000;
pub const MAX_QUESTIONS: usize = 200;
pub const MAX_QUESTION: usize = 500;
pub const MAX_ANSWER: usize = 4000;
pub const MAX_FILE: u64 = 4 << 20;

pub(crate) const FILE_FIELDS: &[&str] = &["language", "synonyms", "articles"];
pub(crate) const ARTICLE_FIELDS: &[&str] =
    &["id", "language", "questions", "answer", "tags", "handoff"];
const ANSWER_FIELDS: &[&str] = &["short", "long"];
const TEST_FIELDS: &[&str] = &["say", "language", "expect"];

/// Knowledge-base files in a directory (`*.yaml`, `*.yml`, not `*.test.yaml`), sorted.
pub fn kb_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    crate::dialplan::set::flow_files(dir)
}

/// The test files of a directory (`*.test.yaml`), sorted.
pub fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.yaml") && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

struct Reader {
    file: PathBuf,
    problems: Vec<Problem>,
}

impl Reader {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }

    fn fields<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        what: &str,
    ) -> Option<Vec<(&'n str, &'n Node)>> {
        let mut found = vec![];
        let out = yaml::fields(node, allowed, what, &mut |pos, m| found.push((pos, m)));
        for (pos, m) in found {
            self.err(pos, m);
        }
        out
    }

    fn text(&mut self, node: &Node, what: &str, max: usize) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if text.chars().count() > max => {
                self.err(node.pos, format!("{what} is over {max} characters"));
                None
            }
            Value::Scalar { text, .. } => Some(text.trim().to_string()),
            Value::Null => Some(String::new()),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be text, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn list(&mut self, node: &Node, what: &str) -> Vec<Node> {
        match &node.value {
            Value::Seq(items) => items.clone(),
            Value::Null => vec![],
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a list, found {}", node.kind()),
                );
                vec![]
            }
        }
    }

    fn lang(&mut self, node: &Node) -> Option<Lang> {
        let text = self.text(node, "`language`", 16)?;
        let l = Lang::parse(&text);
        if l.is_none() {
            self.err(
                node.pos,
                format!("language `{text}` has no tokeniser here: `en` or `es`"),
            );
        }
        l
    }

    fn article(&mut self, node: &Node, lang: Option<Lang>) -> Option<Article> {
        let f = self.fields(node, ARTICLE_FIELDS, "an article")?;
        let mut a = Article {
            id: String::new(),
            lang: lang.unwrap_or(Lang::En),
            questions: vec![],
            short: String::new(),
            long: String::new(),
            tags: vec![],
            handoff: false,
            file: self.file.clone(),
            pos: start(node),
        };
        let mut lang = lang;
        let mut ok = true;
        for (k, v) in &f {
            match *k {
                "id" => {
                    let id = self.text(v, "`id`", 64).unwrap_or_default();
                    if id.is_empty()
                        || !id
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    {
                        self.err(
                            v.pos,
                            "`id` is a name of letters, digits, `-` and `_` (at most 64)",
                        );
                        ok = false;
                    }
                    a.id = id;
                }
                "language" => {
                    lang = self.lang(v);
                    ok &= lang.is_some();
                }
                "questions" => {
                    let items = self.list(v, "`questions`");
                    if items.len() > MAX_QUESTIONS {
                        self.err(v.pos, format!("over {MAX_QUESTIONS} questions"));
                    }
                    for q in items.iter().take(MAX_QUESTIONS) {
                        match self.text(q, "a question", MAX_QUESTION) {
                            Some(t) if t.is_empty() => self.err(q.pos, "an empty question"),
                            Some(t) => a.questions.push((t, q.pos)),
                            None => {}
                        }
                    }
                }
                "answer" => match &v.value {
                    Value::Map(_) => {
                        for (k, w) in self
                            .fields(v, ANSWER_FIELDS, "`answer`")
                            .unwrap_or_default()
                        {
                            let t = self.text(w, "an answer", MAX_ANSWER).unwrap_or_default();
                            if k == "short" {
                                a.short = t;
                            } else {
                                a.long = t;
                            }
                        }
                    }
                    _ => {
                        let t = self.text(v, "`answer`", MAX_ANSWER).unwrap_or_default();
                        a.short = t.clone();
                        a.long = t;
                    }
                },
                "tags" => {
                    for t in self.list(v, "`tags`") {
                        if let Some(t) = self.text(&t, "a tag", 64) {
                            a.tags.push(t);
                        }
                    }
                }
                "handoff" => match v.as_str() {
                    Some("true") => a.handoff = true,
                    Some("false") => a.handoff = false,
                    _ => self.err(v.pos, "`handoff` is true or false"),
                },
                _ => {}
            }
        }
        if !f.iter().any(|(k, _)| *k == "id") {
            self.err(a.pos, "an article needs an `id`");
            ok = false;
        }
        if a.questions.is_empty() {
            self.err(a.pos, "an article needs `questions` (how customers ask it)");
            ok = false;
        }
        match lang {
            Some(l) => a.lang = l,
            None => {
                self.err(
                    a.pos,
                    "no `language` for this article (set it in the file or the article)",
                );
                ok = false;
            }
        }
        ok.then_some(a)
    }
}

/// Where a mapping starts: its first key (a block mapping's own mark is after it).
fn start(node: &Node) -> Pos {
    node.as_map()
        .and_then(|m| m.first())
        .map_or(node.pos, |(k, _)| k.pos)
}

/// Reads a file's text, bounded (a problem at 1:1 when it cannot be read).
fn read(path: &Path) -> Result<String, Vec<Problem>> {
    let at = |message: String| {
        vec![Problem {
            file: path.to_path_buf(),
            pos: Pos { line: 1, col: 1 },
            message,
        }]
    };
    let len = std::fs::metadata(path)
        .map_err(|e| at(format!("cannot read: {e}")))?
        .len();
    if len > MAX_FILE {
        return Err(at(format!("over {} MiB", MAX_FILE >> 20)));
    }
    std::fs::read_to_string(path).map_err(|e| at(format!("cannot read: {e}")))
}

fn parse(text: &str, file: &Path) -> Result<Node, Vec<Problem>> {
    yaml::parse(text).map_err(|e| crate::dialplan::decode::syntax_problems(file, e))
}

/// One file's articles and synonyms, or every problem in it.
pub fn load_str(text: &str, file: &Path) -> Result<Kb, Vec<Problem>> {
    let tree = parse(text, file)?;
    let mut r = Reader {
        file: file.to_path_buf(),
        problems: vec![],
    };
    let mut kb = Kb::default();
    let Some(f) = r.fields(&tree, FILE_FIELDS, "a knowledge-base file") else {
        return Err(r.problems);
    };
    let lang = match f.iter().find(|(k, _)| *k == "language") {
        Some((_, v)) => r.lang(v),
        None => None,
    };
    let mut ids: Vec<(String, Lang)> = vec![];
    for (k, v) in &f {
        match *k {
            "synonyms" => {
                let Some(l) = lang else {
                    r.err(v.pos, "`synonyms` need the file's `language`");
                    continue;
                };
                for group in r.list(v, "`synonyms`") {
                    let words: Vec<String> = r
                        .list(&group, "a synonym group")
                        .iter()
                        .filter_map(|w| r.text(w, "a synonym", 64))
                        .filter(|w| !w.is_empty())
                        .collect();
                    if words.len() < 2 {
                        r.err(group.pos, "a synonym group lists two words or more");
                        continue;
                    }
                    kb.synonyms.push(Synonyms { lang: l, words });
                }
            }
            "articles" => {
                let items = r.list(v, "`articles`");
                if items.len() > MAX_ARTICLES {
                    r.err(v.pos, format!("over {MAX_ARTICLES} articles in one file"));
                }
                for item in items.iter().take(MAX_ARTICLES) {
                    let Some(a) = r.article(item, lang) else {
                        continue;
                    };
                    if ids.iter().any(|(id, l)| *id == a.id && *l == a.lang) {
                        r.err(
                            a.pos,
                            format!("article `{}` ({}) is defined twice", a.id, a.lang),
                        );
                        continue;
                    }
                    ids.push((a.id.clone(), a.lang));
                    kb.articles.push(Arc::new(a));
                }
            }
            _ => {}
        }
    }
    if !f.iter().any(|(k, _)| *k == "articles") {
        r.err(tree.pos, "a knowledge-base file holds `articles:`");
    }
    if r.problems.is_empty() {
        Ok(kb)
    } else {
        Err(r.problems)
    }
}

pub fn load_file(path: &Path) -> Result<Kb, Vec<Problem>> {
    load_str(&read(path)?, path)
}

/// What a labelled example expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Article(String),
    /// A hand-off topic.
    Handoff,
    /// Nothing sure enough.
    Nothing,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Article(id) => f.write_str(id),
            Expect::Handoff => f.write_str("handoff"),
            Expect::Nothing => f.write_str("none"),
        }
    }
}

/// A labelled example question.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub say: String,
    pub lang: Option<Lang>,
    pub expect: Expect,
    pub file: PathBuf,
    pub pos: Pos,
}

/// A test file's examples: `tests:` (or a bare list) of `{say, expect, language}`;
/// `expect` is an article id, `handoff` or `none`.
pub fn load_examples(path: &Path) -> Result<Vec<Example>, Vec<Problem>> {
    let text = read(path)?;
    let tree = parse(&text, path)?;
    let mut r = Reader {
        file: path.to_path_buf(),
        problems: vec![],
    };
    let list = match yaml::tests_list(tree) {
        Ok(l) => l,
        Err(pos) => {
            r.err(pos, "a test file holds `tests:`, a list of examples");
            return Err(r.problems);
        }
    };
    let mut out = vec![];
    for item in r.list(&list, "`tests`") {
        let Some(f) = r.fields(&item, TEST_FIELDS, "an example") else {
            continue;
        };
        let (mut say, mut lang, mut expect) = (None, None, None);
        for (k, v) in f {
            match k {
                "say" => say = r.text(v, "`say`", MAX_QUESTION),
                "language" => lang = r.lang(v),
                _ => {
                    expect = r.text(v, "`expect`", 64).map(|e| match e.as_str() {
                        "handoff" => Expect::Handoff,
                        "none" | "" => Expect::Nothing,
                        _ => Expect::Article(e),
                    })
                }
            }
        }
        match (say, expect) {
            (Some(say), Some(expect)) if !say.is_empty() => out.push(Example {
                say,
                lang,
                expect,
                file: path.to_path_buf(),
                pos: start(&item),
            }),
            _ => r.err(
                start(&item),
                "an example needs `say` (what the customer writes) and `expect` (an article id, `handoff` or `none`)",
            ),
        }
    }
    if r.problems.is_empty() {
        Ok(out)
    } else {
        Err(r.problems)
    }
}
