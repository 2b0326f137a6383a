//! Canned responses: a queue's ready-made chat replies, with `{variables}` filled for
//! the customer and agent at hand. Checked where they are read (the config's
//! `[[queue]] canned`, the admin API), filled where an agent asks for them.

use serde::{Deserialize, Serialize};

/// The variables a canned response may use.
pub const VARIABLES: [&str; 4] = ["first_name", "name", "agent", "queue"];
/// At most this many per queue, each title and text at most this long.
pub const MAX_PER_QUEUE: usize = 50;
const MAX_TITLE: usize = 60;
const MAX_TEXT: usize = 2000;

/// One canned response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canned {
    pub title: String,
    #[serde(deserialize_with = "checked_text")]
    pub text: String,
}

fn checked_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let t = String::deserialize(d)?;
    check(&t).map_err(serde::de::Error::custom)?;
    Ok(t)
}

/// Whom a response is filled for.
#[derive(Debug, Clone, Default)]
pub struct Fill<'a> {
    /// The customer's full name, as the record has it or as they typed it.
    pub name: &'a str,
    /// The agent's display name.
    pub agent: &'a str,
    pub queue: &'a str,
}

/// The customer's name a response is filled with: their record's, else what the flow
/// looked up (`customer.name`) or what they typed into a chat (`name`), from the work's
/// details. A chat nobody verified has no record, so a stranger is never told the name
/// on the record of the address they typed.
pub fn customer_name(record: Option<&str>, details: &serde_json::Value) -> String {
    let typed = |k: &str| details[k].as_str().filter(|n| !n.is_empty());
    record
        .filter(|n| !n.is_empty())
        .or_else(|| typed("customer.name"))
        .or_else(|| typed("name"))
        .unwrap_or_default()
        .to_string()
}

/// Checks a response's text: its length, and that each `{...}` names a variable
/// (`{{` and `}}` are literal braces).
pub fn check(text: &str) -> Result<(), String> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        return Err(format!(
            "a canned response's text is 1 to {MAX_TEXT} characters"
        ));
    }
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        let (c, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(c) {
            rest = &after[1..];
            continue;
        }
        if c == "}" {
            return Err("a lone \"}\" in a canned response: write \"}}\" for a brace".into());
        }
        let Some(end) = after.find('}') else {
            return Err(
                "a \"{\" that never closes in a canned response: write \"{{\" for a brace".into(),
            );
        };
        let var = &after[..end];
        if !VARIABLES.contains(&var) {
            return Err(format!(
                "{{{var}}} is not a canned response variable: use {}",
                VARIABLES.map(|v| format!("{{{v}}}")).join(", ")
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// Checks a queue's list of responses (titles, count, texts).
pub fn check_all(list: &[Canned]) -> Result<(), String> {
    if list.len() > MAX_PER_QUEUE {
        return Err(format!(
            "at most {MAX_PER_QUEUE} canned responses per queue"
        ));
    }
    for c in list {
        if c.title.trim().is_empty() || c.title.chars().count() > MAX_TITLE {
            return Err(format!(
                "a canned response's title is 1 to {MAX_TITLE} characters"
            ));
        }
        check(&c.text)?;
    }
    Ok(())
}

/// The text with its variables filled (a checked text; anything else is left as is).
pub fn fill(text: &str, f: &Fill) -> String {
    let first = f.name.split_whitespace().next().unwrap_or("");
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let (c, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(c) {
            out.push_str(c);
            rest = &after[1..];
            continue;
        }
        let end = after.find('}').filter(|_| c == "{");
        let value = end.and_then(|e| match &after[..e] {
            "first_name" => Some(first),
            "name" => Some(f.name),
            "agent" => Some(f.agent),
            "queue" => Some(f.queue),
            _ => None,
        });
        match (end, value) {
            (Some(e), Some(v)) => {
                out.push_str(v);
                rest = &after[e + 1..];
            }
            _ => {
                out.push_str(c);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_checked_and_filled_without_panic(t in "\\PC{0,40}") {
            let ok = check(&t).is_ok();
            let filled = fill(&t, &Fill { name: "A B", agent: "C", queue: "q" });
            // A text without variables or braces comes back as it was.
            if ok && !t.contains(['{', '}']) {
                prop_assert_eq!(filled, t);
            }
        }
    }

    #[test]
    fn variables_are_filled_and_braces_kept() {
        let f = Fill {
            name: "Ada Lovelace",
            agent: "Bob Agent",
            queue: "support",
        };
        assert_eq!(
            fill(
                "Hello {first_name}, this is {agent} from {queue}. {{ok}}",
                &f
            ),
            "Hello Ada, this is Bob Agent from support. {ok}"
        );
        assert_eq!(fill("Dear {name}", &f), "Dear Ada Lovelace");
        let nobody = Fill::default();
        assert_eq!(fill("Hello {first_name}!", &nobody), "Hello !");
    }

    #[test]
    fn the_name_is_the_records_else_the_lookups_else_the_typed_one() {
        let typed = serde_json::json!({"name": "Someone", "verified": false});
        let looked_up = serde_json::json!({"customer.name": "Ada Lovelace"});
        assert_eq!(customer_name(Some("Ada Lovelace"), &typed), "Ada Lovelace");
        assert_eq!(customer_name(None, &looked_up), "Ada Lovelace");
        assert_eq!(customer_name(None, &typed), "Someone");
        assert_eq!(customer_name(Some(""), &serde_json::Value::Null), "");
    }

    #[test]
    fn unknown_variables_and_lone_braces_are_refused_with_the_reason() {
        assert!(check("Hi {first_name}").is_ok());
        assert!(check("{{literal}}").is_ok());
        let e = check("Hi {firstname}").unwrap_err();
        assert!(
            e.contains("{firstname} is not") && e.contains("{first_name}"),
            "{e}"
        );
        assert!(check("Hi {first_name")
            .unwrap_err()
            .contains("never closes"));
        assert!(check("Hi }").unwrap_err().contains("lone"));
        assert!(check("  ").is_err());
        assert!(check(&"x".repeat(MAX_TEXT + 1)).is_err());
        let many = vec![
            Canned {
                title: "t".into(),
                text: "x".into()
            };
            MAX_PER_QUEUE + 1
        ];
        assert!(check_all(&many).is_err());
        let untitled = [Canned {
            title: " ".into(),
            text: "x".into(),
        }];
        assert!(check_all(&untitled).is_err());
    }
}
