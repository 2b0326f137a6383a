//! Prompts: recorded files (read and checked once), `say` texts, lists of either.

use super::*;

impl Decoder<'_> {
    pub(super) fn prompt_file(&mut self, name: &str, pos: Pos) -> Option<Prompt> {
        if name.contains("${") {
            self.err(
                pos,
                format!("prompt `{name}`: file names cannot use variables; use `say` for text that changes"),
            );
            return None;
        }
        if !self.prompts.contains_key(name) {
            let path = prompt_path(&self.dir, name);
            match load_wav(&path) {
                Ok(s) => {
                    self.prompts.insert(name.to_string(), s);
                }
                Err(e) => {
                    let why = if path.exists() {
                        format!("cannot be played: {e}")
                    } else {
                        format!("not found (looked for {})", path.display())
                    };
                    self.err(pos, format!("prompt `{name}` {why}"));
                    return None;
                }
            }
        }
        Some(Prompt::File {
            name: name.to_string(),
            pos,
        })
    }

    pub(super) fn say(&mut self, node: &Node) -> Option<Prompt> {
        let text = self.template(node, "say")?;
        if !self.opts.tts {
            self.err(
                node.pos,
                "`say` needs a text-to-speech engine and espeak-ng is not installed \
                 (apt install espeak-ng), or play a recorded WAV prompt instead",
            );
            return None;
        }
        Some(Prompt::Say {
            text,
            pos: node.pos,
        })
    }

    pub(super) fn prompt_item(&mut self, node: &Node) -> Option<Prompt> {
        match &node.value {
            Value::Scalar { text, .. } => {
                let text = text.clone();
                self.prompt_file(&text, node.pos)
            }
            Value::Map(_) => {
                let f = self.fields(node, &["file", "say", "silence", "beep"], "a prompt")?;
                if f.len() != 1 {
                    self.err(
                        node.pos,
                        "a prompt is one of: a file name, {say: text}, {silence: 1s}, {beep: true}",
                    );
                    return None;
                }
                let (k, v) = f[0];
                match k {
                    "file" => {
                        let name = self.text(v, "file")?;
                        self.prompt_file(&name, v.pos)
                    }
                    "say" => self.say(v),
                    "silence" => self.duration(v, "silence").map(Prompt::Silence),
                    _ => self.boolean(v, "beep").map(|_| Prompt::Beep),
                }
            }
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "a prompt must be a file name or a mapping, found {}",
                        node.kind()
                    ),
                );
                None
            }
        }
    }

    /// A prompt list: one item or a list of items.
    pub(super) fn prompts(&mut self, node: &Node) -> Vec<Prompt> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.prompt_item(i)).collect(),
            Value::Null => vec![],
            _ => self.prompt_item(node).into_iter().collect(),
        }
    }

    pub(super) fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.text(i, what)).collect(),
            Value::Scalar { text, .. } => text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Value::Null => vec![],
            Value::Map(_) => {
                self.err(node.pos, format!("{what} must be a list"));
                vec![]
            }
        }
    }
}

/// Where a prompt name points: `name.wav` (or a path) beside the flow, else
/// `prompts/<name>.wav` beside the flow.
pub fn prompt_path(dir: &Path, name: &str) -> PathBuf {
    if name.ends_with(".wav") || name.contains('/') {
        dir.join(name)
    } else {
        dir.join("prompts").join(format!("{name}.wav"))
    }
}
