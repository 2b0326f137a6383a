//! Meaning checks over a whole flow: steps nothing leads to, loops that never wait
//! for the caller (they would spin until the step limit), variables used where no path
//! has set them, and test expectations naming steps that do not exist.

use super::model::*;
use super::problem::{suggest, Problem, BUILTINS, TEXT_BUILTINS};
use super::template::Template;
use std::collections::BTreeSet;
use std::path::Path;

/// Variables an announcement can use while the caller waits in a queue.
pub const QUEUE_VARS: &[&str] = &[
    "queue.name",
    "queue.position",
    "queue.wait",
    "queue.wait_minutes",
];

fn prompt_templates(p: &[Prompt]) -> impl Iterator<Item = &Template> {
    p.iter().filter_map(|p| match p {
        Prompt::Say { text, .. } => Some(text),
        _ => None,
    })
}

/// Every template a step renders, with variables only that place defines.
pub fn templates(a: &Action) -> Vec<(&Template, &'static [&'static str])> {
    let mut out: Vec<(&Template, &'static [&'static str])> = vec![];
    match a {
        Action::Play { prompts, .. } => out.extend(prompt_templates(prompts).map(|t| (t, &[][..]))),
        Action::Gather(g)
        | Action::Survey(Survey { gather: g, .. })
        | Action::RecordingNotice(RecordingNotice { gather: g, .. }) => {
            out.extend(prompt_templates(&g.prompt).map(|t| (t, &[][..])));
            out.extend(prompt_templates(&g.retry_prompt).map(|t| (t, &[][..])));
        }
        Action::Menu(m) => {
            out.extend(prompt_templates(&m.prompt).map(|t| (t, &[][..])));
            out.extend(prompt_templates(&m.retry_prompt).map(|t| (t, &[][..])));
        }
        Action::Set(vars) => out.extend(vars.iter().map(|(_, t)| (t, &[][..]))),
        Action::Branch(b) => {
            out.extend(b.value.iter().map(|t| (t, &[][..])));
            out.extend(
                b.cases
                    .iter()
                    .filter_map(|c| c.value.as_ref())
                    .map(|t| (t, &[][..])),
            );
        }
        Action::Lookup(l) => out.push((&l.value, &[])),
        Action::Http(h) => {
            out.push((&h.url, &[]));
            out.extend(h.headers.iter().map(|(_, t)| (t, &[][..])));
            out.extend(h.body.iter().flatten().map(|(_, t)| (t, &[][..])));
        }
        Action::Enqueue(q) => {
            out.extend(prompt_templates(&q.hold).map(|t| (t, QUEUE_VARS)));
            if let Some(a) = &q.announce {
                out.extend(prompt_templates(&a.prompts).map(|t| (t, QUEUE_VARS)));
            }
        }
        Action::Transfer(t) => match &t.to {
            TransferTo::Uri(t) | TransferTo::Extension(t) => out.push((t, &[])),
            TransferTo::Number { number, .. } => out.push((number, &[])),
        },
        Action::Voicemail(v) => out.extend(prompt_templates(&v.prompt).map(|t| (t, &[][..]))),
        Action::Reply(t) => out.push((t, &[])),
        Action::Ask(a) => {
            out.extend(a.prompt.iter().map(|t| (t, &[][..])));
            out.extend(a.retry_prompt.iter().map(|t| (t, &[][..])));
        }
        Action::MatchKb(m) => out.push((&m.text, &[])),
        Action::Handoff(h) => {
            out.extend(h.summary.iter().map(|t| (t, &[][..])));
            out.extend(h.intent.iter().map(|t| (t, &[][..])));
        }
        _ => {}
    }
    out
}

fn defined(set: &BTreeSet<String>, var: &str) -> bool {
    set.contains(var)
        || var
            .char_indices()
            .filter(|(_, c)| *c == '.')
            .any(|(i, _)| set.contains(&format!("{}.*", &var[..i])))
}

pub fn check_flow(flow: &Flow) -> Vec<Problem> {
    let mut problems = vec![];
    let err = |pos, message: String| Problem {
        file: flow.file.clone(),
        pos,
        message,
    };
    let n = flow.steps.len();
    // Voice steps in a chat and text steps in a call.
    for s in &flow.steps {
        let Some(only) = s.action.only_in() else {
            continue;
        };
        if only != flow.kind {
            let kind = s.action.kind();
            let message = match flow.kind {
                Kind::Text => format!(
                    "`{kind}` is a voice step and this flow is `kind: text` (a chat): use reply, ask, match_kb or handoff"
                ),
                Kind::Voice => format!(
                    "`{kind}` is a text step: add `kind: text` at the top for a chat flow (this one is a call flow)"
                ),
            };
            problems.push(err(s.pos, message));
        }
    }
    let edges: Vec<Vec<(StepId, Vec<String>)>> = flow.steps.iter().map(|s| s.edges()).collect();

    // Reachability.
    let mut seen = vec![false; n];
    let mut stack = vec![flow.start];
    while let Some(s) = stack.pop() {
        if s >= n || seen[s] {
            continue;
        }
        seen[s] = true;
        stack.extend(edges[s].iter().map(|(t, _)| *t));
    }
    for (i, s) in flow.steps.iter().enumerate() {
        if !seen[i] {
            problems.push(err(
                s.pos,
                format!("step `{}` is never reached: no step leads to it", s.name),
            ));
        }
    }

    // Loops of steps that never wait (Tarjan's strongly connected components over the
    // steps that do not wait).
    let quick: Vec<bool> = flow.steps.iter().map(|s| !s.action.waits()).collect();
    let succ = |v: usize| -> Vec<usize> {
        edges[v]
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| quick[*t])
            .collect()
    };
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on = vec![false; n];
    let mut st: Vec<usize> = vec![];
    let mut next_index = 0;
    let mut sccs: Vec<Vec<usize>> = vec![];
    for root in 0..n {
        if !quick[root] || index[root] != usize::MAX {
            continue;
        }
        // Iterative Tarjan: (node, successor cursor).
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut cursor)) = work.last_mut() {
            if *cursor == 0 && index[v] == usize::MAX {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                st.push(v);
                on[v] = true;
            }
            let ss = succ(v);
            if *cursor < ss.len() {
                let w = ss[*cursor];
                *cursor += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = vec![];
                while let Some(w) = st.pop() {
                    on[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                let self_loop = comp.len() == 1 && succ(v).contains(&v);
                if comp.len() > 1 || self_loop {
                    comp.sort_unstable();
                    sccs.push(comp);
                }
            }
        }
    }
    for comp in sccs {
        let names: Vec<&str> = comp.iter().map(|&i| flow.steps[i].name.as_str()).collect();
        let first = &flow.steps[comp[0]];
        let add = match flow.kind {
            Kind::Voice => "add a play, gather, menu or pause to the loop",
            Kind::Text => "add an ask to the loop",
        };
        problems.push(err(
            first.pos,
            format!(
                "steps {} loop without waiting for the {}: {add}",
                names.join(", "),
                if flow.kind == Kind::Text {
                    "customer"
                } else {
                    "caller"
                }
            ),
        ));
    }

    // Variables: which are set on every path into each step.
    let mut entry: BTreeSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
    if flow.kind == Kind::Text {
        entry.extend(TEXT_BUILTINS.iter().map(|s| s.to_string()));
    }
    entry.extend(flow.inputs.iter().cloned());
    let mut all = entry.clone();
    for e in &edges {
        for (_, defs) in e {
            all.extend(defs.iter().cloned());
        }
    }
    let mut ins: Vec<Option<BTreeSet<String>>> = vec![None; n];
    ins[flow.start] = Some(entry);
    let mut work: Vec<usize> = vec![flow.start];
    while let Some(s) = work.pop() {
        let Some(cur) = ins[s].clone() else { continue };
        for (t, defs) in &edges[s] {
            let mut out = cur.clone();
            out.extend(defs.iter().cloned());
            let changed = match &ins[*t] {
                None => {
                    ins[*t] = Some(out);
                    true
                }
                Some(old) => {
                    let meet: BTreeSet<String> = old.intersection(&out).cloned().collect();
                    let changed = meet.len() != old.len();
                    ins[*t] = Some(meet);
                    changed
                }
            };
            if changed {
                work.push(*t);
            }
        }
    }
    let known: Vec<String> = all
        .iter()
        .map(|s| s.trim_end_matches(".*").to_string())
        .collect();
    for (i, s) in flow.steps.iter().enumerate() {
        let Some(have) = &ins[i] else { continue };
        for (t, local) in templates(&s.action) {
            for (var, offset) in t.required_vars() {
                if local.contains(&var) || defined(have, var) {
                    continue;
                }
                let pos = t.pos_of(offset);
                if defined(&all, var) {
                    problems.push(err(
                        pos,
                        format!(
                            "`{var}` may not be set when step `{}` runs (not every path here sets it); give a default like ${{{var}|...}}",
                            s.name
                        ),
                    ));
                } else {
                    let hint = suggest(
                        var,
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .chain(local.iter().copied()),
                    );
                    problems.push(err(pos, format!("undefined variable `{var}`{hint}")));
                }
            }
        }
    }
    problems
}

/// Test expectations must name steps and outcomes that exist.
pub fn check_tests(flow: &Flow, tests: &[TestCase], file: &Path) -> Vec<Problem> {
    let mut problems = vec![];
    for t in tests {
        if let Some((path, pos)) = &t.expect_path {
            for step in path {
                if step.contains('/') {
                    continue; // a step of another flow, checked when the test runs
                }
                if flow.step(step).is_none() {
                    let hint = suggest(step, flow.steps.iter().map(|s| s.name.as_str()));
                    problems.push(Problem {
                        file: file.to_path_buf(),
                        pos: *pos,
                        message: format!("test `{}`: path names `{step}`, which is not a step of this flow{hint}", t.name),
                    });
                }
            }
        }
    }
    problems
}
