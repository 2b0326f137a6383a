//! A step: its action by kind, its `next`, and the branches each action offers.

use super::*;

impl Decoder<'_> {
    pub(super) fn action(
        &mut self,
        kind: &str,
        node: &Node,
        branches: &Fields<'_>,
    ) -> Option<Action> {
        Some(match kind {
            "answer" => Action::Answer,
            "hangup" => Action::Hangup,
            "play" => {
                if let Some(map) = node.as_map() {
                    if map.iter().any(|(k, _)| k.as_str() == Some("prompts")) {
                        let f = self.fields(node, &["prompts", "barge_in"], "play")?;
                        let mut prompts = vec![];
                        let mut barge_in = false;
                        for (k, v) in f {
                            if k == "prompts" {
                                prompts = self.prompts(v);
                            } else {
                                barge_in = self.boolean(v, "barge_in").unwrap_or(false);
                            }
                        }
                        return Some(Action::Play { prompts, barge_in });
                    }
                }
                let prompts = self.prompts(node);
                if prompts.is_empty() && node.value == Value::Null {
                    self.err(node.pos, "play needs a prompt");
                }
                Action::Play {
                    prompts,
                    barge_in: false,
                }
            }
            "say" => {
                if let Some(_map) = node.as_map() {
                    let f = self.fields(node, &["text", "barge_in"], "say")?;
                    let mut prompts = vec![];
                    let mut barge_in = false;
                    for (k, v) in f {
                        if k == "text" {
                            prompts.extend(self.say(v));
                        } else {
                            barge_in = self.boolean(v, "barge_in").unwrap_or(false);
                        }
                    }
                    Action::Play { prompts, barge_in }
                } else {
                    Action::Play {
                        prompts: self.say(node).into_iter().collect(),
                        barge_in: false,
                    }
                }
            }
            "pause" => Action::Pause(self.duration(node, "pause")?),
            "gather" => self.gather(node, branches)?,
            "survey" => self.survey(node, branches)?,
            "menu" => self.menu(node, branches)?,
            "set" => {
                let Some(map) = node.as_map() else {
                    self.err(
                        node.pos,
                        "set must map variables to values, like `set: {department: support}`",
                    );
                    return None;
                };
                let mut out = vec![];
                for (k, v) in map {
                    let Some(name) = self.var_name(k, "set") else {
                        continue;
                    };
                    if BUILTINS.contains(&name.as_str())
                        || (self.kind == Kind::Text && TEXT_BUILTINS.contains(&name.as_str()))
                    {
                        self.err(
                            k.pos,
                            format!("`{name}` is set by the gateway and cannot be changed"),
                        );
                        continue;
                    }
                    if let Some(t) = self.template(v, &name) {
                        out.push((name, t));
                    }
                }
                Action::Set(out)
            }
            "branch" => self.branch(node)?,
            "hours" => self.hours(node, branches)?,
            "lookup" => self.lookup(node, branches)?,
            "http" => self.http(node, branches)?,
            "enqueue" => self.enqueue(node, branches)?,
            "transfer" => self.transfer(node, branches)?,
            "voicemail" => self.voicemail(node)?,
            "record" => Action::Record(self.boolean(node, "record")?),
            "recording_notice" => self.recording_notice(node, branches)?,
            "reply" => self.reply(node)?,
            "ask" => self.ask(node, branches)?,
            "match_kb" => self.match_kb(node, branches)?,
            "handoff" => self.handoff(node)?,
            _ => match &node.value {
                Value::Scalar { .. } => Action::Goto(Goto::Step(self.target(node, "goto")?)),
                _ => {
                    let f = self.fields(node, &["flow", "step"], "goto")?;
                    let mut flow = None;
                    let mut step = None;
                    for (k, v) in f {
                        if k == "flow" {
                            flow = self.text(v, "flow");
                        } else {
                            step = self.text(v, "step");
                        }
                    }
                    let Some(flow) = flow else {
                        self.err(
                            node.pos,
                            "goto needs a step name, or `flow:` (and optionally `step:`)",
                        );
                        return None;
                    };
                    Action::Goto(Goto::Flow {
                        flow,
                        step,
                        pos: node.pos,
                    })
                }
            },
        })
    }

    pub(super) fn step(
        &mut self,
        name: &str,
        pos: Pos,
        node: &Node,
        following: Option<StepId>,
    ) -> Option<Step> {
        let Some(map) = node.as_map() else {
            self.err(
                node.pos,
                format!("step `{name}` must be a mapping with one action, like `play: welcome`"),
            );
            return None;
        };
        let actions: Vec<&(Node, Node)> = map
            .iter()
            .filter(|(k, _)| {
                k.as_str()
                    .is_some_and(|k| ACTIONS.iter().any(|(a, _)| *a == k))
            })
            .collect();
        let (kind, body) = match actions.as_slice() {
            [(k, v)] => (k.as_str().unwrap_or_default().to_string(), v),
            [] => {
                let keys: Vec<&str> = map.iter().filter_map(|(k, _)| k.as_str()).collect();
                let known: Vec<&str> = ACTIONS.iter().map(|(a, _)| *a).collect();
                let unknown = keys.iter().find(|k| {
                    !["next", "note"].contains(k) && !ACTIONS.iter().any(|(_, b)| b.contains(k))
                });
                match unknown {
                    Some(u) => {
                        let at = map
                            .iter()
                            .find(|(k, _)| k.as_str() == Some(u))
                            .map(|(k, _)| k.pos)
                            .unwrap_or(pos);
                        let hint = suggest(u, known.iter().copied());
                        self.err(
                            at,
                            format!(
                                "unknown step type `{u}`{hint} (steps: {})",
                                known.join(", ")
                            ),
                        );
                    }
                    None => self.err(
                        pos,
                        format!("step `{name}` has no action (one of: {})", known.join(", ")),
                    ),
                }
                return None;
            }
            [_, (k2, _), ..] => {
                self.err(
                    k2.pos,
                    format!("step `{name}` has more than one action; give each its own step"),
                );
                return None;
            }
        };
        let allowed_branches = ACTIONS
            .iter()
            .find(|(a, _)| *a == kind)
            .map(|(_, b)| *b)
            .unwrap_or(&[]);
        let mut branches: Fields<'_> = vec![];
        let mut next = None;
        let mut explicit_next = false;
        for (k, v) in map {
            let Some(key) = k.as_str() else { continue };
            if key == kind || key == "note" {
                continue;
            }
            if key == "next" {
                explicit_next = true;
                next = self.target(v, "next");
            } else if allowed_branches.contains(&key) {
                branches.push((key, v));
            } else {
                let mut options: Vec<&str> = vec!["next", "note"];
                options.extend(allowed_branches.iter().copied());
                let hint = suggest(key, options.iter().copied());
                let what = if ACTIONS.iter().any(|(a, _)| *a == key) {
                    format!("step `{name}` has more than one action (`{kind}` and `{key}`); give each its own step")
                } else {
                    format!(
                        "unknown field `{key}` in a {kind} step{hint} (expected: {})",
                        options.join(", ")
                    )
                };
                self.err(k.pos, what);
            }
        }
        let action = self.action(&kind, body, &branches)?;
        if action.terminal() && explicit_next {
            self.err(pos, format!("a {kind} step does not go on: remove `next`"));
        }
        if !explicit_next && !action.terminal() {
            next = following.map(|step| Target { step, pos });
        }
        Some(Step {
            name: name.to_string(),
            pos,
            action,
            next,
            explicit_next,
        })
    }
}
