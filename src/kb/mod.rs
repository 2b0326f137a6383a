//! The knowledge base: articles designers write as YAML files under `kb/` (documented
//! in `kb/README.md`, schema `kb/kb.schema.json`), each with question variants, an
//! answer per kind of channel (short for SMS and WhatsApp, long for chat and e-mail),
//! tags, a language and an optional `handoff` (the topic always goes to a person).
//! `load` reads them with every problem at `file:line:column`; `matcher` ranks
//! articles for a customer's words with BM25 (the `bm25` crate's English and Spanish
//! tokenisers: Unicode folding, stop words, Snowball stemming; synonyms per language)
//! and says how sure it is; `library` serves a directory and reloads it on change,
//! keeping a broken file's previous version; `cli` is `omnigate kb check|test`. No
//! I/O at match time: the matcher is a pure function of the articles and the words.

pub mod cli;
pub mod library;
pub mod load;
pub mod matcher;

pub use library::Library;
pub use matcher::{Decision, Hit, Matcher};

use crate::dialplan::yaml::Pos;
use std::path::PathBuf;
use std::sync::Arc;

/// A language the matcher has a tokeniser for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Es];

    /// `en`, `es` (also `en-US`, `es_EC`...: the language part).
    pub fn parse(s: &str) -> Option<Lang> {
        let base = s.split(['-', '_']).next().unwrap_or("");
        match base.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One article in one language (the same `id` in another language is its
/// translation).
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub id: String,
    pub lang: Lang,
    /// The ways customers ask it, each with where it is written.
    pub questions: Vec<(String, Pos)>,
    /// For SMS and WhatsApp.
    pub short: String,
    /// For web chat and e-mail.
    pub long: String,
    pub tags: Vec<String>,
    /// This topic always goes to a person.
    pub handoff: bool,
    pub file: PathBuf,
    pub pos: Pos,
}

impl Article {
    /// The answer for a channel: the short one on SMS and WhatsApp, the long one
    /// elsewhere (each falls back on the other when empty).
    pub fn answer_for(&self, channel: &str) -> &str {
        let short = matches!(channel, "sms" | "whatsapp");
        let (first, other) = if short {
            (&self.short, &self.long)
        } else {
            (&self.long, &self.short)
        };
        if first.is_empty() {
            other
        } else {
            first
        }
    }

    /// Where it is written, as `file:line:column`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.pos)
    }
}

/// Words that mean the same in a language (the first is the one kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Synonyms {
    pub lang: Lang,
    pub words: Vec<String>,
}

/// Articles and synonyms, as loaded from one or more files.
#[derive(Debug, Clone, Default)]
pub struct Kb {
    pub articles: Vec<Arc<Article>>,
    pub synonyms: Vec<Synonyms>,
}

impl Kb {
    pub fn languages(&self) -> Vec<Lang> {
        let mut l: Vec<Lang> = self.articles.iter().map(|a| a.lang).collect();
        l.sort();
        l.dedup();
        l
    }

    /// The article `id` in `lang`.
    pub fn article(&self, id: &str, lang: Lang) -> Option<&Arc<Article>> {
        self.articles.iter().find(|a| a.id == id && a.lang == lang)
    }
}

/// Channels whose answers are the short ones.
pub const CHANNELS: &[&str] = &["webchat", "whatsapp", "sms", "email", "voice"];

/// An agent's search (`q`, `language`, `channel`, `limit` of the query string):
/// the hits with the answer for the channel, or why the search is refused.
pub fn search_request(
    m: &Matcher,
    params: &std::collections::HashMap<String, String>,
) -> Result<serde_json::Value, String> {
    let q = params.get("q").map(|q| q.trim()).unwrap_or("");
    if q.is_empty() {
        return Err("`q` (what to look for) is required".into());
    }
    if q.chars().count() > matcher::MAX_QUERY {
        return Err(format!("`q` is over {} characters", matcher::MAX_QUERY));
    }
    let lang = match params.get("language").map(String::as_str) {
        None | Some("") => None,
        Some(l) => Some(Lang::parse(l).ok_or_else(|| format!("language `{l}`: `en` or `es`"))?),
    };
    let channel = params
        .get("channel")
        .map(String::as_str)
        .unwrap_or("webchat");
    if !CHANNELS.contains(&channel) {
        return Err(format!(
            "channel `{channel}`: one of {}",
            CHANNELS.join(", ")
        ));
    }
    let limit = match params.get("limit") {
        None => 5,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=20).contains(l))
            .ok_or("`limit` is a number from 1 to 20")?,
    };
    let results: Vec<serde_json::Value> = m
        .search(q, lang, limit)
        .into_iter()
        .map(|h| {
            serde_json::json!({
                "id": h.article.id,
                "language": h.article.lang.code(),
                "question": h.question,
                "answer": h.article.answer_for(channel),
                "tags": h.article.tags,
                "handoff": h.article.handoff,
                "confidence": (h.confidence * 100.0).round() / 100.0,
                "sure": h.confidence >= m.threshold(),
            })
        })
        .collect();
    Ok(serde_json::json!({"results": results, "threshold": m.threshold()}))
}

#[cfg(test)]
mod tests;
