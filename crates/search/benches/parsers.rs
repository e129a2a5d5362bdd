//! Parser throughput on the fixtures, against a baseline measured in the same run on the same
//! bytes: `serde_json::from_slice::<Value>` for JSON answers, `scraper::Html::parse_document`
//! for HTML ones. The ratio says what reading the engine's structure costs on top of merely
//! parsing the format.
//!
//! `cargo bench -p lennonnet-search --bench parsers` (BENCH_MS=<ms per measurement>, default 400).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lennonnet_core::EngineKind;
use lennonnet_search::{Cursor, Response, adapter, extract_vqd};

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/engines")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A full Bing `images/async` page of 35 results, in the documented structure.
fn bing_full_page() -> Vec<u8> {
    let mut html = String::from(
        "<div id=\"mmComponent_images_1\" class=\"dgControl\"><ul class=\"dgControl_list\">",
    );
    for i in 0..35 {
        html += &format!(
            "<li data-idx=\"{i}\"><div class=\"iuscp isv\"><div class=\"imgpt\"><a class=\"iusc\" style=\"height:186px;width:280px\" \
             m=\"{{&quot;cid&quot;:&quot;c{i}&quot;,&quot;purl&quot;:&quot;https://www.example.org/page/{i}&quot;,&quot;murl&quot;:&quot;https://images.example.org/{i}/full.jpg&quot;,\
             &quot;turl&quot;:&quot;https://tse1.mm.bing.net/th?id=OIP.{i}&amp;pid=15.1&quot;,&quot;md5&quot;:&quot;{i:032x}&quot;,&quot;t&quot;:&quot;\\ue000John Lennon\\ue001 photo {i}&quot;,&quot;mid&quot;:&quot;M{i}&quot;,&quot;desc&quot;:&quot;&quot;}}\" \
             href=\"/images/search?view=detailV2&amp;ccid=c{i}&amp;id=M{i}&amp;q=john+lennon&amp;expw=1200&amp;exph=800&amp;FORM=IRPRST&amp;selectedIndex={i}\">\
             <div class=\"img_cont hoff\"><img class=\"mimg\" height=\"186\" width=\"280\" src=\"https://tse1.mm.bing.net/th?id=OIP.{i}&amp;w=280&amp;h=186\" alt=\"John Lennon photo {i}\"></div></a>\
             <div class=\"img_info hon\"><span class=\"nowrap\">1200 x 800 · jpeg</span><div class=\"lnkw\"><a target=\"_blank\" href=\"https://www.example.org/page/{i}\">example.org</a></div></div></div></div></li>"
        );
    }
    (html + "</ul></div>").into_bytes()
}

/// Runs `f` repeatedly for about `budget`; the mean time of one run.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    let warm = Instant::now();
    while warm.elapsed() < budget / 8 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    start.elapsed() / n
}

enum Baseline {
    Json,
    Html,
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(400),
    );
    let cases: Vec<(&str, EngineKind, Cursor, Vec<u8>, Baseline)> = vec![
        (
            "duckduckgo i.js (100 results)",
            EngineKind::DuckDuckGo,
            Cursor::results(Vec::new()),
            fixture("duckduckgo/i_js_minecraft_default.json"),
            Baseline::Json,
        ),
        (
            "duckduckgo vqd page",
            EngineKind::DuckDuckGo,
            Cursor::token(),
            fixture("duckduckgo/vqd_page_node.html"),
            Baseline::Html,
        ),
        (
            "bing async (35 results)",
            EngineKind::Bing,
            Cursor::results(Vec::new()),
            bing_full_page(),
            Baseline::Html,
        ),
        (
            "bing async (7 anchors, 3 broken)",
            EngineKind::Bing,
            Cursor::results(Vec::new()),
            fixture("bing/async_john_lennon_first1.html"),
            Baseline::Html,
        ),
        (
            "commons allimages (9 pages)",
            EngineKind::WikimediaCommons,
            Cursor::results(Vec::new()),
            fixture("wikimedia_commons/allimages_imageinfo_globalusage_with_continue.json"),
            Baseline::Json,
        ),
        (
            "commons search (3 pages)",
            EngineKind::WikimediaCommons,
            Cursor::results(Vec::new()),
            fixture("wikimedia_commons/search_john_lennon_gsroffset_handwritten.json"),
            Baseline::Json,
        ),
    ];

    println!(
        "{:<34} {:>8} {:>11} {:>9} {:>11} {:>9} {:>7}",
        "parser", "bytes", "pages/s", "MB/s", "baseline", "MB/s", "ratio"
    );
    let mut bench_lines = Vec::new();
    for (name, engine, cursor, body, baseline) in cases {
        let response = Response::ok(body.clone());
        let settings = lennonnet_config::EngineConfig::default()
            .settings(engine, &lennonnet_config::HttpConfig::default());
        let parsed = adapter(engine)
            .parse(&settings, &cursor, &response)
            .expect("fixture parses");
        assert!(parsed.next.is_some() || !parsed.candidates.is_empty());
        let t_parse = time(budget, || {
            black_box(
                adapter(engine)
                    .parse(&settings, black_box(&cursor), black_box(&response))
                    .ok(),
            );
        });
        let (base_name, t_base) = match baseline {
            Baseline::Json => (
                "serde_json",
                time(budget, || {
                    black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).ok());
                }),
            ),
            Baseline::Html => {
                let text = String::from_utf8_lossy(&body).into_owned();
                (
                    "html5ever",
                    time(budget, || {
                        black_box(scraper::Html::parse_document(black_box(&text)));
                    }),
                )
            }
        };
        let mb_s = |t: Duration| body.len() as f64 / t.as_secs_f64() / 1e6;
        println!(
            "{:<34} {:>8} {:>11.0} {:>9.1} {:>11} {:>9.1} {:>6.2}x",
            name,
            body.len(),
            1.0 / t_parse.as_secs_f64(),
            mb_s(t_parse),
            base_name,
            mb_s(t_base),
            t_parse.as_secs_f64() / t_base.as_secs_f64(),
        );
        bench_lines.push(lennonnet_core::bench::BenchLine::new(
            "search",
            &format!("{name} parser, MB/s"),
            mb_s(t_parse),
            &format!("{base_name} alone on the same bytes, MB/s"),
            Some(mb_s(t_base)),
        ));
    }
    // The token scan alone, for scale.
    let page = fixture("duckduckgo/vqd_page_node.html");
    let t = time(budget, || {
        black_box(extract_vqd(black_box(&page)));
    });
    println!(
        "{:<34} {:>8} {:>11.0} {:>9.1}",
        "extract_vqd (scan only)",
        page.len(),
        1.0 / t.as_secs_f64(),
        page.len() as f64 / t.as_secs_f64() / 1e6
    );
    println!(
        "ratio = parser time / baseline time on the same bytes (1.00x: no cost over the format parse)"
    );
    for line in bench_lines {
        println!("{line}");
    }
}
