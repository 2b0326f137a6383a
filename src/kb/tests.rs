use super::cli;
use super::load::{load_str, Expect};
use super::*;
use std::path::{Path, PathBuf};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn demo() -> std::sync::Arc<Matcher> {
    let lib = Library::new(&repo("kb"), matcher::DEFAULT_THRESHOLD);
    let r = lib.reload().expect("loaded");
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    lib.matcher()
}

fn answered(m: &Matcher, text: &str, lang: Option<Lang>) -> Option<String> {
    match m.decide(text, lang) {
        Decision::Answer(h) => Some(h.article.id.clone()),
        Decision::Handoff(h) => Some(format!("handoff:{}", h.article.id)),
        Decision::NotFound(_) => None,
    }
}

#[test]
fn the_demo_knowledge_base_answers_in_english_and_spanish_and_hands_off_its_topics() {
    let m = demo();
    assert_eq!(m.kb().languages(), [Lang::En, Lang::Es]);
    assert_eq!(
        answered(&m, "Where is my package??", None).as_deref(),
        Some("order-status")
    );
    // Synonyms: "shipment" is a parcel.
    assert_eq!(
        answered(&m, "track my shipment", Some(Lang::En)).as_deref(),
        Some("order-status")
    );
    // Stems and folded accents: "olvide" is "olvidé".
    assert_eq!(
        answered(&m, "olvide mi clave", Some(Lang::Es)).as_deref(),
        Some("reset-pin")
    );
    assert_eq!(
        answered(&m, "I would like to cancel my order", None).as_deref(),
        Some("handoff:cancel-order")
    );
    assert_eq!(answered(&m, "what's the weather like", None), None);
    assert_eq!(answered(&m, "", None), None);
    assert_eq!(
        answered(&m, "the and of", Some(Lang::En)),
        None,
        "stop words only"
    );
    // The answer fits the channel.
    let Decision::Answer(h) = m.decide("opening hours", Some(Lang::En)) else {
        panic!("opening hours");
    };
    assert!(h.article.answer_for("whatsapp").len() < h.article.answer_for("webchat").len());
    assert!(h.confidence > 0.5 && h.confidence <= 1.0, "{h:?}");
    // A question written as in the article is a sure match.
    let Decision::Answer(h) = m.decide("where is my order", Some(Lang::En)) else {
        panic!("where is my order");
    };
    assert!((h.confidence - 1.0).abs() < 1e-6, "{h:?}");
}

#[test]
fn search_ranks_articles_once_each_and_bounds_what_it_reads() {
    let m = demo();
    let hits = m.search("order", Some(Lang::En), 10);
    let ids: Vec<&str> = hits.iter().map(|h| h.article.id.as_str()).collect();
    assert!(
        ids.contains(&"order-status") && ids.contains(&"cancel-order"),
        "{ids:?}"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "one hit per article: {ids:?}");
    for w in hits.windows(2) {
        assert!(w[0].confidence >= w[1].confidence, "{hits:?}");
    }
    assert_eq!(m.search("order", Some(Lang::En), 1).len(), 1);
    // A huge message is read up to its first MAX_QUERY characters.
    let long = format!("where is my order {}", "x ".repeat(100_000));
    assert!(!m.search(&long, None, 3).is_empty());
}

#[test]
fn a_broken_file_is_refused_with_its_line_and_column() {
    let file = Path::new("kb/x.yaml");
    let bad = "language: en\narticles:\n  - id: a\n    questions: [hello there]\n    answr: hi\n  - id: Bad Id\n    questions: []\n";
    let p = load_str(bad, file).unwrap_err();
    let shown: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("kb/x.yaml:5:5: unknown field `answr`")
                && s.contains("did you mean `answer`")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("kb/x.yaml:6:9: `id` is a name")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("kb/x.yaml:6:5: an article needs `questions`")),
        "{shown:?}"
    );
    let p = load_str("language: fr\narticles: []\n", file).unwrap_err();
    assert_eq!(
        p[0].to_string(),
        "kb/x.yaml:1:11: language `fr` has no tokeniser here: `en` or `es`"
    );
    let p = load_str("articles:\n  - id: a\n    questions: [hi]\n", file).unwrap_err();
    assert!(p[0].to_string().contains("no `language`"), "{p:?}");
    let p = load_str(
        "language: en\narticles:\n  - {id: a, questions: [x]}\n  - {id: a, questions: [y]}\n",
        file,
    )
    .unwrap_err();
    assert_eq!(
        p[0].to_string(),
        "kb/x.yaml:4:6: article `a` (en) is defined twice"
    );
    let p = load_str("language: en\narticles: [\n", file).unwrap_err();
    assert_eq!(p[0].pos.line, 3, "a syntax error: {p:?}");
    let kb = load_str("language: es\narticles:\n  - id: a\n    language: en\n    questions: [hi there]\n    answer: {short: s, long: l}\n", file).unwrap();
    assert_eq!(kb.articles[0].lang, Lang::En);
    assert_eq!(
        (kb.articles[0].short.as_str(), kb.articles[0].long.as_str()),
        ("s", "l")
    );
}

#[test]
fn a_reload_keeps_the_previous_version_of_a_broken_file_and_drops_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.yaml");
    std::fs::write(&f, "language: en\narticles:\n  - id: hours\n    questions: [opening hours]\n    answer: nine to five\n").unwrap();
    let lib = Library::new(dir.path(), 0.5);
    let r = lib.reload().unwrap();
    assert_eq!((r.articles, r.problems.len()), (1, 0));
    assert!(lib.reload().is_none(), "nothing changed");
    // Broken: refused, the previous version serves.
    std::fs::write(
        &f,
        "language: en\narticles:\n  - id: hours\n    question: [x]\n",
    )
    .unwrap();
    let r = lib.reload().unwrap();
    assert!(!r.problems.is_empty());
    assert_eq!(r.articles, 1);
    assert_eq!(
        answered(&lib.matcher(), "opening hours", None).as_deref(),
        Some("hours")
    );
    // A second file with the same article is not served; the first keeps it.
    let g = dir.path().join("b.yaml");
    std::fs::write(&g, "language: en\narticles:\n  - id: hours\n    questions: [when are you open]\n    answer: x\n").unwrap();
    let r = lib.reload().unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.message.contains("already defined")),
        "{r:?}"
    );
    std::fs::remove_file(&f).unwrap();
    std::fs::remove_file(&g).unwrap();
    let r = lib.reload().unwrap();
    assert_eq!(r.articles, 0);
    assert_eq!(answered(&lib.matcher(), "opening hours", None), None);
}

#[test]
fn kb_check_passes_the_demo_and_finds_what_is_wrong_in_a_bad_one() {
    let mut out = vec![];
    assert_eq!(
        cli::check(&[repo("kb")], None, &mut out),
        0,
        "{}",
        String::from_utf8_lossy(&out)
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("44 article(s) in 2 file(s), languages: en, es; 0 problem(s)"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("en.yaml"),
        "language: en\narticles:\n  - id: hours\n    questions: [opening hours, when are you open]\n    answer: nine to five\n  - id: open\n    questions: [are you open, hours opening]\n    answer: ''\n  - id: hi\n    questions: [hello, the]\n    answer: hi\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("es.yaml"),
        "language: es\narticles:\n  - id: hours\n    questions: [horario de atención]\n    answer: de nueve a cinco\n",
    )
    .unwrap();
    let mut out = vec![];
    assert_eq!(cli::check(&[dir.path().to_path_buf()], None, &mut out), 1);
    let text = String::from_utf8(out).unwrap();
    for want in [
        "en.yaml:6:5: article `open` has an empty answer",
        "en.yaml:6:5: article `open` has no `es` version",
        "en.yaml:7:31: question \"hours opening\" is the same words as one of `hours`",
        "en.yaml:10:24: question \"the\" has no word the matcher keeps",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    let mut out = vec![];
    assert_eq!(cli::check(&[dir.path().join("nope")], None, &mut out), 2);
}

#[test]
fn kb_test_reports_each_example_with_precision_and_fails_on_a_regression() {
    let mut out = vec![];
    let code = cli::test(&[repo("kb")], None, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("55 passed, 0 failed, 0 problem(s); precision 100.0%, recall 100.0%"),
        "{text}"
    );

    // A labelled example the knowledge base gets wrong: exit 1, with the best guess.
    let dir = tempfile::tempdir().unwrap();
    for f in ["acme-en.yaml", "acme-es.yaml"] {
        std::fs::copy(repo("kb").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("more.test.yaml"),
        "tests:\n  - say: where is my order\n    expect: returns\n  - say: hello\n    expect: nope\n",
    )
    .unwrap();
    let mut out = vec![];
    assert_eq!(cli::test(&[dir.path().to_path_buf()], None, &mut out), 1);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(
            "more.test.yaml:2:5: \"where is my order\": expected returns, got order-status"
        ),
        "{text}"
    );
    assert!(
        text.contains("more.test.yaml:4:5: `expect: nope`: no such article"),
        "{text}"
    );
    assert!(text.contains("precision 0.0%"), "{text}");
    let outcomes = cli::run_examples(
        &demo(),
        &[load::Example {
            say: "stop my order".into(),
            lang: Some(Lang::En),
            expect: Expect::Handoff,
            file: "x".into(),
            pos: Default::default(),
        }],
    );
    assert!(outcomes[0].passed && outcomes[0].got == Some(("cancel-order".into(), true)));
}

#[test]
fn an_agents_search_gives_the_answer_for_the_channel_and_refuses_bad_parameters() {
    let m = demo();
    let q = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let found = search_request(
        &m,
        &q(&[("q", "where is my parcel"), ("channel", "whatsapp")]),
    )
    .unwrap();
    let first = &found["results"][0];
    assert_eq!(first["id"], "order-status", "{found}");
    assert_eq!(first["sure"], true, "{found}");
    assert!(
        first["answer"]
            .as_str()
            .unwrap()
            .starts_with("Track your parcel"),
        "short on WhatsApp: {found}"
    );
    let found = search_request(
        &m,
        &q(&[
            ("q", "dónde está mi paquete"),
            ("language", "es"),
            ("limit", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(found["results"].as_array().unwrap().len(), 1);
    assert_eq!(found["results"][0]["language"], "es");
    assert!(
        found["results"][0]["answer"]
            .as_str()
            .unwrap()
            .starts_with("Puede seguir"),
        "long on web chat: {found}"
    );
    for (bad, why) in [
        (q(&[]), "`q`"),
        (q(&[("q", "  ")]), "`q`"),
        (q(&[("q", "x"), ("language", "fr")]), "language `fr`"),
        (q(&[("q", "x"), ("channel", "fax")]), "channel `fax`"),
        (q(&[("q", "x"), ("limit", "0")]), "`limit`"),
        (q(&[("q", "x"), ("limit", "99")]), "`limit`"),
    ] {
        let e = search_request(&m, &bad).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
    let long = "x".repeat(matcher::MAX_QUERY + 1);
    assert!(search_request(&m, &q(&[("q", &long)]))
        .unwrap_err()
        .contains("over"));
}

/// The JSON Schema names every field the loader reads.
#[test]
fn the_json_schema_knows_every_field() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("kb/kb.schema.json")).unwrap()).unwrap();
    for f in load::FILE_FIELDS {
        assert!(schema["properties"].get(f).is_some(), "file field {f}");
    }
    let article = &schema["$defs"]["article"]["properties"];
    for f in load::ARTICLE_FIELDS {
        assert!(article.get(f).is_some(), "article field {f}");
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any text loads or fails with problems; any words are matched without a
        /// panic and with a confidence in [0, 1].
        #[test]
        fn loader_and_matcher_never_panic(file in ".{0,400}", words in ".{0,300}") {
            let _ = load_str(&file, Path::new("p.yaml"));
            let m = demo();
            for h in m.search(&words, None, 5) {
                prop_assert!((0.0..=1.0).contains(&h.confidence), "{h:?}");
            }
        }
    }
}
