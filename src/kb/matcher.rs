//! Which article answers a customer's words, and how sure that is.
//!
//! Each language has its own index over every question variant: the `bm25` crate's
//! tokeniser for that language (Unicode folded to ASCII, lower case, stop words out,
//! Snowball stems), then the synonyms (each word of a group becomes the group's
//! first), then BM25 ranks the variants. BM25 scores have no scale, so the decision
//! uses a confidence in [0, 1]: how much of the customer's words the variant covers
//! and how much of the variant the words cover, each weighted by the words' rarity
//! (IDF, a word unknown to the knowledge base weighing the most), combined as their
//! harmonic mean. A variant that says exactly what the customer said scores 1; words
//! the knowledge base has never seen pull it down, so an unsure match goes to a
//! person instead of a wrong answer.

use super::{Article, Kb, Lang};
use bm25::{DefaultTokenizer, Embedder, EmbedderBuilder, Language, Scorer, Tokenizer};
use std::collections::HashMap;
use std::sync::Arc;

/// The default confidence below which nothing is answered.
pub const DEFAULT_THRESHOLD: f32 = 0.5;
/// What is read of a customer's message (the rest is ignored).
pub const MAX_QUERY: usize = 1000;

/// Words of a contact centre's messages that say nothing of the topic (greetings,
/// courtesy, wanting), on top of each language's stop words.
const FILLER_EN: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "please",
    "thanks",
    "thank",
    "good",
    "morning",
    "afternoon",
    "evening",
    "dear",
    "ok",
    "okay",
    "want",
    "would",
    "like",
    "need",
    "could",
    "can",
    "get",
    "should",
    "tell",
    "know",
];
const FILLER_ES: &[&str] = &[
    "hola",
    "buenos",
    "buenas",
    "dias",
    "tardes",
    "noches",
    "favor",
    "gracias",
    "saludos",
    "estimado",
    "estimados",
    "quiero",
    "quisiera",
    "necesito",
    "gustaria",
    "puedo",
    "podria",
    "debo",
    "deberia",
];

/// A language's tokeniser with its synonyms and filler words.
#[derive(Clone)]
struct Words(Arc<(DefaultTokenizer, HashMap<String, String>, Vec<String>)>);

impl Tokenizer for Words {
    fn tokenize(&self, text: &str) -> Vec<String> {
        let (t, syn, filler) = &*self.0;
        // "where's", "what’s": the apostrophe splits (the rest is a stop word).
        let text = text.replace(['\'', '\u{2019}'], " ");
        t.tokenize(&text)
            .into_iter()
            .filter(|w| !filler.contains(w))
            .map(|w| syn.get(&w).cloned().unwrap_or(w))
            .collect()
    }
}

impl Words {
    fn new(lang: Lang, kb: &Kb) -> Words {
        let language = match lang {
            Lang::En => Language::English,
            Lang::Es => Language::Spanish,
        };
        let t = DefaultTokenizer::builder()
            .language_mode(language)
            .normalization(true)
            .stopwords(true)
            .stemming(true)
            .build();
        let filler_words = match lang {
            Lang::En => FILLER_EN,
            Lang::Es => FILLER_ES,
        };
        let filler: Vec<String> = filler_words.iter().flat_map(|w| t.tokenize(w)).collect();
        let mut syn = HashMap::new();
        for g in kb.synonyms.iter().filter(|s| s.lang == lang) {
            let stems: Vec<Vec<String>> = g.words.iter().map(|w| t.tokenize(w)).collect();
            let Some(first) = stems.iter().find_map(|s| s.first().cloned()) else {
                continue;
            };
            for s in stems.iter().flatten() {
                if *s != first {
                    syn.insert(s.clone(), first.clone());
                }
            }
        }
        Words(Arc::new((t, syn, filler)))
    }

    /// The distinct words of `text`.
    fn set(&self, text: &str) -> Vec<String> {
        let mut w = self.tokenize(text);
        w.sort();
        w.dedup();
        w
    }
}

struct Variant {
    article: usize,
    text: String,
    words: Vec<String>,
}

struct Index {
    lang: Lang,
    words: Words,
    embedder: Embedder<u32, Words>,
    scorer: Scorer<usize, u32>,
    variants: Vec<Variant>,
    /// In how many variants each word is.
    df: HashMap<String, usize>,
}

impl Index {
    fn idf(&self, word: &str) -> f32 {
        let n = self.variants.len() as f32;
        let df = self.df.get(word).copied().unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn confidence(&self, query: &[String], variant: &[String]) -> f32 {
        let q: f32 = query.iter().map(|w| self.idf(w)).sum();
        let v: f32 = variant.iter().map(|w| self.idf(w)).sum();
        let both: f32 = query
            .iter()
            .filter(|w| variant.binary_search(w).is_ok())
            .map(|w| self.idf(w))
            .sum();
        if q <= 0.0 || v <= 0.0 || both <= 0.0 {
            return 0.0;
        }
        let (a, b) = (both / q, both / v);
        2.0 * a * b / (a + b)
    }
}

/// An article found for some words.
#[derive(Debug, Clone)]
pub struct Hit {
    pub article: Arc<Article>,
    /// The question variant that matched best.
    pub question: String,
    /// 0 to 1 (see the module's description).
    pub confidence: f32,
    /// BM25's score of that variant (ranks hits of equal confidence).
    pub score: f32,
}

/// What the bot should do with a message.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Sure enough: answer with the article.
    Answer(Hit),
    /// Sure enough, and the topic goes to a person.
    Handoff(Hit),
    /// Nothing sure enough (the best guess, if any).
    NotFound(Option<Hit>),
}

/// The articles of a knowledge base, indexed per language.
pub struct Matcher {
    kb: Arc<Kb>,
    indexes: Vec<Index>,
    threshold: f32,
}

impl Matcher {
    pub fn new(kb: Arc<Kb>, threshold: f32) -> Matcher {
        let mut indexes = vec![];
        for lang in kb.languages() {
            let words = Words::new(lang, &kb);
            let mut variants = vec![];
            for (i, a) in kb.articles.iter().enumerate() {
                if a.lang != lang {
                    continue;
                }
                for (q, _) in &a.questions {
                    variants.push(Variant {
                        article: i,
                        text: q.clone(),
                        words: words.set(q),
                    });
                }
            }
            let corpus: Vec<&str> = variants.iter().map(|v| v.text.as_str()).collect();
            let embedder: Embedder<u32, Words> =
                EmbedderBuilder::with_tokenizer_and_fit_to_corpus(words.clone(), &corpus).build();
            let mut scorer = Scorer::new();
            let mut df: HashMap<String, usize> = HashMap::new();
            for (i, v) in variants.iter().enumerate() {
                scorer.upsert(&i, embedder.embed(&v.text));
                for w in &v.words {
                    *df.entry(w.clone()).or_default() += 1;
                }
            }
            indexes.push(Index {
                lang,
                words,
                embedder,
                scorer,
                variants,
                df,
            });
        }
        Matcher {
            kb,
            indexes,
            threshold,
        }
    }

    pub fn kb(&self) -> &Arc<Kb> {
        &self.kb
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The articles for `text`, best first (one hit per article and language), at
    /// most `limit`; in `lang` only when given, else in every language.
    pub fn search(&self, text: &str, lang: Option<Lang>, limit: usize) -> Vec<Hit> {
        let text: String = text.chars().take(MAX_QUERY).collect();
        let mut hits: Vec<Hit> = vec![];
        for ix in self
            .indexes
            .iter()
            .filter(|i| lang.is_none_or(|l| l == i.lang))
        {
            let query = ix.words.set(&text);
            if query.is_empty() {
                continue;
            }
            let mut best: HashMap<usize, Hit> = HashMap::new();
            for m in ix.scorer.matches(&ix.embedder.embed(&text)) {
                let v = &ix.variants[m.id];
                let confidence = ix.confidence(&query, &v.words);
                let better = best
                    .get(&v.article)
                    .is_none_or(|h| (confidence, m.score) > (h.confidence, h.score));
                if better {
                    best.insert(
                        v.article,
                        Hit {
                            article: self.kb.articles[v.article].clone(),
                            question: v.text.clone(),
                            confidence,
                            score: m.score,
                        },
                    );
                }
            }
            hits.extend(best.into_values());
        }
        hits.sort_by(|a, b| {
            (b.confidence, b.score)
                .partial_cmp(&(a.confidence, a.score))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.article.id.cmp(&b.article.id))
        });
        hits.truncate(limit);
        hits
    }

    /// What to do with a customer's message.
    pub fn decide(&self, text: &str, lang: Option<Lang>) -> Decision {
        let best = self.search(text, lang, 1).into_iter().next();
        match best {
            Some(h) if h.confidence >= self.threshold => {
                if h.article.handoff {
                    Decision::Handoff(h)
                } else {
                    Decision::Answer(h)
                }
            }
            other => Decision::NotFound(other),
        }
    }

    /// The words the matcher keeps of `text` in `lang` (for `kb check` and tests).
    pub fn words(&self, text: &str, lang: Lang) -> Vec<String> {
        self.indexes
            .iter()
            .find(|i| i.lang == lang)
            .map(|i| i.words.set(text))
            .unwrap_or_default()
    }
}

impl Matcher {
    /// A text flow's `match_kb`: the article sure enough for `text`, with its answer
    /// for `channel` (none: no sure answer).
    pub fn flow_answer(
        &self,
        text: &str,
        channel: &str,
        lang: Option<super::Lang>,
    ) -> Option<crate::dialplan::engine::KbAnswer> {
        let (h, handoff) = match self.decide(text, lang) {
            Decision::Answer(h) => (h, false),
            Decision::Handoff(h) => (h, true),
            Decision::NotFound(_) => return None,
        };
        Some(crate::dialplan::engine::KbAnswer {
            article: h.article.id.clone(),
            answer: h.article.answer_for(channel).to_string(),
            confidence: h.confidence,
            handoff,
            lang: h.article.lang.code().to_string(),
        })
    }
}
