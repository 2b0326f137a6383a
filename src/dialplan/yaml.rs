//! A YAML document as a tree whose every node knows its line and column, built from
//! `yaml-rust2`'s event parser. The dialplan decoder reads this tree so each problem it
//! finds (an unknown field, a bad duration, an undefined step) points at the exact spot
//! in the designer's file. Mapping order is kept; duplicate keys are an error.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar; `quoted` when written in quotes (so `"1"` is text, never a number).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } => "a value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Null => "nothing",
        }
    }
}

/// The entries of a mapping, each key a name in `allowed`; anything else goes to
/// `err` (an unknown key with a "did you mean"), and a node that is no mapping gives
/// `None`.
pub fn fields<'n>(
    node: &'n Node,
    allowed: &[&str],
    what: &str,
    err: &mut dyn FnMut(Pos, String),
) -> Option<Vec<(&'n str, &'n Node)>> {
    let Some(map) = node.as_map() else {
        err(
            node.pos,
            format!("{what} must be a mapping, found {}", node.kind()),
        );
        return None;
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            err(k.pos, format!("{what}: keys must be names"));
            continue;
        };
        if allowed.contains(&key) {
            out.push((key, v));
        } else {
            let hint = super::problem::suggest(key, allowed.iter().copied());
            err(
                k.pos,
                format!(
                    "unknown field `{key}` in {what}{hint} (expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
    Some(out)
}

/// A test file's list: the value of its `tests:` key, or the document itself when it
/// is a bare list; `Err` with where the document starts when it is a mapping without
/// `tests:`.
pub fn tests_list(tree: Node) -> Result<Node, Pos> {
    match tree.as_map() {
        Some(m) => m
            .iter()
            .find(|(k, _)| k.as_str() == Some("tests"))
            .map(|(_, v)| v.clone())
            .ok_or(tree.pos),
        None => Ok(tree),
    }
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2 markers: line 1-based, column 0-based.
    Pos {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    pending_anchor: Vec<usize>,
    docs: Vec<Node>,
    errors: Vec<SyntaxError>,
}

impl Builder {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    if let Some(name) = k.as_str() {
                        if entries.iter().any(|(e, _)| e.as_str() == Some(name)) {
                            self.errors.push(SyntaxError {
                                pos: k.pos,
                                message: format!("`{name}` appears twice in this mapping"),
                            });
                        }
                    }
                    entries.push((k, node));
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let p = pos(mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = matches!(
                    style,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
                ) || tag.is_some();
                let value = if !quoted
                    && matches!(style, TScalarStyle::Plain)
                    && (text.is_empty() || text == "~" || text == "null")
                {
                    Value::Null
                } else {
                    Value::Scalar { text, quoted }
                };
                self.push_node(Node { pos: p, value }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.pending_anchor.push(anchor);
                self.stack.push(Frame::Seq(p, Vec::new()));
            }
            Event::MappingStart(anchor, _) => {
                self.pending_anchor.push(anchor);
                self.stack.push(Frame::Map(p, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let anchor = self.pending_anchor.pop().unwrap_or(0);
                let node = match self.stack.pop() {
                    Some(Frame::Seq(p, items)) => Node {
                        pos: p,
                        value: Value::Seq(items),
                    },
                    Some(Frame::Map(p, entries, _)) => Node {
                        pos: p,
                        value: Value::Map(entries),
                    },
                    None => return,
                };
                self.push_node(node, anchor);
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => Node {
                        pos: p,
                        value: n.value.clone(),
                    },
                    None => {
                        self.errors.push(SyntaxError {
                            pos: p,
                            message: "alias to an unknown anchor".into(),
                        });
                        Node {
                            pos: p,
                            value: Value::Null,
                        }
                    }
                };
                self.push_node(node, 0);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty file is `Null`.
pub fn parse(text: &str) -> Result<Node, Vec<SyntaxError>> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        return Err(vec![SyntaxError {
            pos: pos(*e.marker()),
            message: format!("YAML syntax: {}", e.info()),
        }]);
    }
    if b.docs.len() > 1 {
        b.errors.push(SyntaxError {
            pos: b.docs[1].pos,
            message: "one flow per file: a second YAML document starts here".into(),
        });
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    Ok(b.docs.into_iter().next().unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        value: Value::Null,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nsteps:\n  x:\n    play: hi\n").unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(m[1].0.pos, Pos { line: 2, col: 1 });
        let steps = m[1].1.as_map().unwrap();
        assert_eq!(steps[0].0.pos, Pos { line: 3, col: 3 });
        let play = steps[0].1.as_map().unwrap();
        assert_eq!(play[0].1.pos, Pos { line: 4, col: 11 });
        assert_eq!(play[0].1.as_str(), Some("hi"));
    }

    #[test]
    fn quoted_scalars_are_marked_and_null_is_null() {
        let n = parse("a: \"1\"\nb: 1\nc:\nd: ~\n").unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(
            m[0].1.value,
            Value::Scalar {
                text: "1".into(),
                quoted: true
            }
        );
        assert_eq!(
            m[1].1.value,
            Value::Scalar {
                text: "1".into(),
                quoted: false
            }
        );
        assert_eq!(m[2].1.value, Value::Null);
        assert_eq!(m[3].1.value, Value::Null);
    }

    #[test]
    fn syntax_errors_and_duplicates_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e[0].message.starts_with("YAML syntax"), "{e:?}");
        assert!(e[0].pos.line >= 1);
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e[0].pos, Pos { line: 3, col: 1 });
        assert!(e[0].message.contains("twice"));
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let n = parse("x: &p [a, b]\ny: *p\n").unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m[0].1.value, m[1].1.value);
    }
}
