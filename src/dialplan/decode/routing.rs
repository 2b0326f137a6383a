//! Steps that hand the call on: `enqueue`, `transfer`, `voicemail`.

use super::*;

impl Decoder<'_> {
    pub(super) fn enqueue(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut q = Enqueue {
            queue: String::new(),
            priority: 5,
            skills: vec![],
            hold: vec![],
            announce: None,
            max_wait: None,
            on_timeout: None,
            agent_hangup: None,
        };
        if let Value::Scalar { text, .. } = &node.value {
            q.queue = text.clone();
        } else {
            let f = self.fields(
                node,
                &[
                    "queue", "priority", "skills", "hold", "announce", "max_wait",
                ],
                "enqueue",
            )?;
            for (k, v) in f {
                match k {
                    "queue" => q.queue = self.text(v, "queue").unwrap_or_default(),
                    "priority" => q.priority = self.uint(v, "priority", 9).unwrap_or(5) as u8,
                    "skills" => q.skills = self.strings(v, "skills"),
                    "hold" => q.hold = self.prompts(v),
                    "max_wait" => q.max_wait = self.duration(v, "max_wait"),
                    _ => {
                        let Some(af) = self.fields(v, &["every", "play", "say"], "announce") else {
                            continue;
                        };
                        let mut every = None;
                        let mut prompts = vec![];
                        for (ak, av) in af {
                            match ak {
                                "every" => every = self.duration(av, "every"),
                                "play" => prompts.extend(self.prompts(av)),
                                _ => prompts.extend(self.say(av)),
                            }
                        }
                        match every {
                            Some(e) if e >= Duration::from_secs(5) => {
                                q.announce = Some(Announce { every: e, prompts })
                            }
                            Some(_) => self.err(v.pos, "announce every: at least 5s"),
                            None => self.err(v.pos, "announce needs `every`, like `every: 30s`"),
                        }
                    }
                }
            }
        }
        if q.queue.is_empty()
            || !q
                .queue
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.err(
                node.pos,
                format!(
                    "enqueue needs a queue name (letters, digits, - and _), found `{}`",
                    q.queue
                ),
            );
        }
        for (k, v) in branches {
            if *k == "timeout" {
                q.on_timeout = self.target(v, "timeout");
                if q.max_wait.is_none() {
                    self.err(v.pos, "`timeout` needs `max_wait` in the enqueue");
                }
            } else if *k == "agent_hangup" {
                q.agent_hangup = self.target(v, "agent_hangup");
            }
        }
        Some(Action::Enqueue(q))
    }

    pub(super) fn transfer(&mut self, node: &Node, branches: &Fields<'_>) -> Option<Action> {
        let mut to = None;
        let mut timeout = Duration::from_secs(30);
        if let Value::Scalar { text, .. } = &node.value {
            let t = self.template(node, "transfer")?;
            let lower = text.to_ascii_lowercase();
            to = Some(
                if lower.starts_with("sip:")
                    || lower.starts_with("sips:")
                    || lower.starts_with("tel:")
                {
                    TransferTo::Uri(t)
                } else {
                    TransferTo::Extension(t)
                },
            );
        } else {
            let f = self.fields(
                node,
                &["uri", "extension", "number", "trunk", "timeout"],
                "transfer",
            )?;
            let mut trunk = None;
            let mut number = None;
            for (k, v) in f {
                match k {
                    "uri" => to = self.template(v, "uri").map(TransferTo::Uri),
                    "extension" => to = self.template(v, "extension").map(TransferTo::Extension),
                    "number" => number = self.template(v, "number"),
                    "trunk" => trunk = self.text(v, "trunk"),
                    _ => timeout = self.duration(v, "timeout").unwrap_or(timeout),
                }
            }
            if let Some(n) = number {
                to = Some(TransferTo::Number { number: n, trunk });
            } else if trunk.is_some() {
                self.err(node.pos, "`trunk` goes with `number`");
            }
        }
        let Some(to) = to else {
            self.err(
                node.pos,
                "transfer needs one of `uri`, `extension` or `number`",
            );
            return None;
        };
        let mut t = Transfer {
            to,
            timeout,
            failure: None,
        };
        for (k, v) in branches {
            if *k == "failure" {
                t.failure = self.target(v, "failure");
            }
        }
        Some(Action::Transfer(t))
    }

    pub(super) fn voicemail(&mut self, node: &Node) -> Option<Action> {
        let mut vm = Voicemail {
            prompt: vec![],
            beep: true,
            max_length: Duration::from_secs(120),
            finish: Some('#'),
        };
        if node.value != Value::Null {
            let f = self.fields(
                node,
                &["prompt", "beep", "max_length", "finish"],
                "voicemail",
            )?;
            for (k, v) in f {
                match k {
                    "prompt" => vm.prompt = self.prompts(v),
                    "beep" => vm.beep = self.boolean(v, "beep").unwrap_or(true),
                    "max_length" => {
                        vm.max_length = self.duration(v, "max_length").unwrap_or(vm.max_length)
                    }
                    _ => vm.finish = self.key(v, "finish").unwrap_or(Some('#')),
                }
            }
        }
        Some(Action::Voicemail(vm))
    }
}
