//! Robustness: no parser panics or hangs, whatever the bytes. Every input is parsed by every
//! engine at both cursor kinds and several statuses, on a watchdog thread that fails the test
//! if a parse takes longer than a few seconds.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use lennonnet_core::EngineKind;
use lennonnet_search::{Cursor, EngineError, Response, adapter, extract_vqd};
use proptest::prelude::*;

const WATCHDOG: Duration = Duration::from_secs(10);

/// Parses `body` with every engine, both cursor kinds and a few statuses, on another thread;
/// fails if that thread panics or does not finish in time. Also checks the contracts that
/// hold for any input: a successful page numbers its candidates 1..n, never has an empty
/// image URL, and a page with entries that were all skipped is not a silent empty page for
/// DuckDuckGo and Bing.
fn parse_everything(body: Vec<u8>) {
    let (tx, rx) = mpsc::channel();
    let len = body.len();
    std::thread::spawn(move || {
        for kind in EngineKind::ALL {
            for cursor in [Cursor::token(), Cursor::results(Vec::new())] {
                for status in [200, 202, 429, 503] {
                    let response = Response {
                        status,
                        headers: Default::default(),
                        body: body.clone(),
                    };
                    match adapter(kind).parse(&settings(kind), &cursor, &response) {
                        Ok(page) => {
                            for (i, c) in page.candidates.iter().enumerate() {
                                assert_eq!(c.rank as usize, i + 1);
                                assert!(!c.image_url.trim().is_empty());
                                assert_eq!(c.engine, kind);
                            }
                            if kind != EngineKind::WikimediaCommons {
                                assert!(
                                    !(page.candidates.is_empty() && page.skipped > 0),
                                    "{kind}: an all-skipped page must be Changed"
                                );
                            }
                        }
                        Err(EngineError::Changed { expected }) => assert!(!expected.is_empty()),
                        Err(_) => {}
                    }
                }
            }
        }
        let _ = extract_vqd(&body);
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a parser panicked on {len} bytes"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("a parser took more than {WATCHDOG:?} on {len} bytes")
        }
    }
}

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/engines")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const FIXTURES: [&str; 8] = [
    "duckduckgo/i_js_minecraft_default.json",
    "duckduckgo/i_js_minecraft_noresults.json",
    "duckduckgo/vqd_page_node.html",
    "bing/async_john_lennon_first1.html",
    "bing/async_no_results.html",
    "wikimedia_commons/allimages_imageinfo_globalusage_with_continue.json",
    "wikimedia_commons/search_john_lennon_gsroffset_handwritten.json",
    "wikimedia_commons/allimages_secondary_continue_globalusage.json",
];

/// One edit of a real response.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at this fraction of the length.
    Set(f64, u8),
    /// Remove `n` bytes there.
    Delete(f64, usize),
    /// Insert bytes there.
    Insert(f64, Vec<u8>),
    /// Keep only this fraction.
    Truncate(f64),
    /// Copy a span to another place (repeats structure: nested or doubled objects).
    Duplicate(f64, f64, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to the formats, and any byte.
    let special = prop::sample::select(&b"{}[]\",:<>'&=;x0\\\n "[..]);
    let byte = prop_oneof![special, any::<u8>()];
    prop_oneof![
        (0.0..1.0f64, byte).prop_map(|(at, b)| Mutation::Set(at, b)),
        (0.0..1.0f64, 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        (0.0..1.0f64, 0.0..1.0f64, 1..512usize).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
    ]
}

fn apply(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
    for m in mutations {
        let len = body.len();
        match m {
            Mutation::Set(f, b) if len > 0 => {
                let i = at(*f, len - 1);
                body[i] = *b;
            }
            Mutation::Set(..) => {}
            Mutation::Delete(f, n) => {
                let i = at(*f, len);
                let end = (i + n).min(len);
                body.drain(i..end);
            }
            Mutation::Insert(f, bytes) => {
                let i = at(*f, len);
                body.splice(i..i, bytes.iter().copied());
            }
            Mutation::Truncate(f) => body.truncate(at(*f, len)),
            Mutation::Duplicate(from, to, n) => {
                let i = at(*from, len);
                let span: Vec<u8> = body[i..(i + n).min(len)].to_vec();
                let j = at(*to, len);
                body.splice(j..j, span);
            }
        }
    }
    body
}

/// Random JSON, to reach deeper into the JSON parsers than random bytes do.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "http://a/b.jpg",
            "File:X.jpg",
            "i.js?q=a&s=100",
            "3-1-2",
            "<b>x</b>",
            "0",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        let key = prop::sample::select(vec![
            "results",
            "image",
            "width",
            "height",
            "next",
            "vqd",
            "query",
            "pages",
            "imageinfo",
            "url",
            "index",
            "continue",
            "error",
            "code",
            "extmetadata",
            "value",
            "batchcomplete",
            "title",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        parse_everything(body);
    }

    #[test]
    fn arbitrary_json(value in json()) {
        parse_everything(serde_json::to_vec(&value).unwrap());
        // The same value where each engine looks for its results.
        for wrapped in [
            serde_json::json!({ "results": value.clone(), "next": value.clone() }),
            serde_json::json!({ "results": [value.clone()] }),
            serde_json::json!({ "query": { "pages": value.clone() }, "continue": value.clone() }),
            serde_json::json!({ "query": { "pages": { "1": { "imageinfo": [value.clone()] } } } }),
        ] {
            parse_everything(serde_json::to_vec(&wrapped).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_responses(
        which in 0..FIXTURES.len(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        parse_everything(apply(fixture(FIXTURES[which]), &mutations));
    }

    #[test]
    fn bing_anchors_with_arbitrary_m_attributes(
        m in prop::collection::vec(any::<u8>(), 0..300),
        href in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let esc = |b: &[u8]| String::from_utf8_lossy(b).replace('&', "&amp;").replace('"', "&quot;");
        let body = format!(
            "<ul class=\"dgControl_list\"><li><div class=\"imgpt\"><a class=\"iusc\" m=\"{}\" href=\"{}\"></a><div class=\"img_info\"><span class=\"nowrap\">{}</span></div></div></li></ul>",
            esc(&m), esc(&href), esc(&href)
        );
        parse_everything(body.into_bytes());
    }
}

#[test]
fn huge_and_deep_inputs_do_not_hang_or_overflow() {
    // Deep nesting: serde_json's recursion limit answers it; the HTML parser is iterative.
    parse_everything("[".repeat(100_000).into_bytes());
    parse_everything("<div>".repeat(20_000).into_bytes());
    // Many tokens-to-be.
    parse_everything("vqd=".repeat(50_000).into_bytes());
    // A large valid page.
    let big = format!(
        r#"{{"results":[{}]}}"#,
        vec![r#"{"image":"http://a/b.jpg","width":1,"height":1}"#; 20_000].join(",")
    );
    parse_everything(big.into_bytes());
}

fn settings(kind: EngineKind) -> lennonnet_config::EngineSettings {
    lennonnet_config::EngineConfig::default()
        .settings(kind, &lennonnet_config::HttpConfig::default())
}
