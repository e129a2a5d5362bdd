//! The parsers on recorded real responses (tests/fixtures/engines, see SOURCES.md there) and on
//! pages written to the documented structures, plus the request builders.

use std::path::PathBuf;
use std::time::Duration;

use lennonnet_core::{Candidate, EngineKind, Licence};
use lennonnet_search::{Cursor, EngineError, Page, Response, adapter, extract_vqd};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/engines")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(r) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from_str(r).unwrap());
    }
    Response {
        status,
        headers,
        body: body.to_vec(),
    }
}

fn settings(engine: EngineKind) -> lennonnet_config::EngineSettings {
    lennonnet_config::EngineConfig::default()
        .settings(engine, &lennonnet_config::HttpConfig::default())
}

fn parse(engine: EngineKind, cursor: &Cursor, r: &Response) -> Result<Page, EngineError> {
    adapter(engine).parse(&settings(engine), cursor, r)
}

fn page_cursor() -> Cursor {
    Cursor::results(Vec::new())
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a parse should give: a page summary or an error.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Candidate count, skipped count, next cursor params (`None`: last page).
    Page(usize, u32, Option<Vec<(String, String)>>),
    Err(EngineError),
}

/// The one table-driven helper: parses `body` with `status` (and `Retry-After`) at `cursor`.
fn check(
    engine: EngineKind,
    cursor: &Cursor,
    (status, retry_after, body): (u16, Option<&str>, &[u8]),
    expected: Expect,
) {
    let got = match parse(engine, cursor, &response(status, retry_after, body)) {
        Ok(p) => Expect::Page(p.candidates.len(), p.skipped, p.next.map(|c| c.params)),
        Err(e) => Expect::Err(e),
    };
    assert_eq!(
        got,
        expected,
        "{engine} status {status} body {:?}",
        String::from_utf8_lossy(&body[..body.len().min(120)])
    );
}

fn changed(expected: &str) -> Expect {
    Expect::Err(EngineError::Changed {
        expected: expected.into(),
    })
}

fn rate_limited(secs: Option<u64>) -> Expect {
    Expect::Err(EngineError::RateLimited {
        retry_after: secs.map(Duration::from_secs),
    })
}

// ---------------------------------------------------------------- DuckDuckGo

const DDG_VQD: &str =
    "3-126127733100704423094592086514747332676-199869977846294510399902480995708132308";

#[test]
fn ddg_ijs_recording_gives_100_candidates_with_urls_and_sizes() {
    let body = fixture("duckduckgo/i_js_minecraft_default.json");
    let page = parse(EngineKind::DuckDuckGo, &page_cursor(), &Response::ok(body)).unwrap();
    assert_eq!(page.candidates.len(), 100);
    assert_eq!(page.skipped, 0);
    for (i, c) in page.candidates.iter().enumerate() {
        assert!(c.image_url.starts_with("http"), "{c:?}");
        assert!(
            c.thumbnail_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        );
        assert!(c.page_url.as_deref().is_some_and(|u| u.starts_with("http")));
        assert!(c.title.is_some());
        assert!(c.width.is_some() && c.height.is_some(), "{c:?}");
        assert_eq!(c.rank as usize, i + 1);
        assert_eq!(c.engine, EngineKind::DuckDuckGo);
        assert_eq!(c.licence, None);
    }
    assert_eq!(
        page.candidates[0],
        Candidate {
            image_url:
                "https://www.gamepur.com/files/images/2019-11/minecraft-earth-how-to-craft-and-smelt.jpg"
                    .into(),
            thumbnail_url: Some(
                "https://tse2.explicit.bing.net/th?id=OIP.Gs1jkAe-9iVFH4-sNHSQoQHaFs&pid=Api"
                    .into()
            ),
            page_url: Some(
                "https://www.gamepur.com/guide/44494-minecraft-earth-how-craft-smelt.html".into()
            ),
            title: Some("Minecraft Earth - How to Craft and Smelt".into()),
            width: Some(1214),
            height: Some(933),
            licence: None,
            engine: EngineKind::DuckDuckGo,
            query_id: None,
            rank: 1,
        }
    );
    // `next` gives the offset; the (refreshed) token goes with it.
    assert_eq!(
        page.next,
        Some(Cursor::results(params(&[("s", "100"), ("vqd", DDG_VQD),])))
    );
}

#[test]
fn ddg_no_results_recording_is_an_empty_page() {
    let body = fixture("duckduckgo/i_js_minecraft_noresults.json");
    check(
        EngineKind::DuckDuckGo,
        &page_cursor(),
        (200, None, &body),
        Expect::Page(0, 0, Some(params(&[("s", "100"), ("vqd", DDG_VQD)]))),
    );
}

#[test]
fn ddg_vqd_is_extracted_from_the_saved_page() {
    let body = fixture("duckduckgo/vqd_page_node.html");
    let token = "3-320068370671196460038575011587633753929-199869977846294510399902480995708132308";
    assert_eq!(extract_vqd(&body).as_deref(), Some(token));
    check(
        EngineKind::DuckDuckGo,
        &Cursor::token(),
        (200, None, &body),
        Expect::Page(0, 0, Some(params(&[("vqd", token)]))),
    );
}

#[test]
fn ddg_vqd_quoting_variants() {
    let check = |text: &str, expected: Option<&str>| {
        assert_eq!(
            extract_vqd(text.as_bytes()).as_deref(),
            expected,
            "{text:?}"
        );
    };
    check("x;vqd='3-111-222';y", Some("3-111-222"));
    check(r#"vqd="3-111-222";"#, Some("3-111-222"));
    check("/d.js?q=a&vqd=3-111-222&p_ent=", Some("3-111-222"));
    check("/d.js?q=a&vqd=3-111-222", Some("3-111-222"));
    check(r#"{"vqd":"4-abc_DEF-9"}"#, Some("4-abc_DEF-9"));
    check(r#"{ "vqd" : "4-abc" }"#, Some("4-abc"));
    check("vqd = '3-x'", Some("3-x"));
    check("{'vqd':'3-y'}", Some("3-y"));
    // Not tokens: part of a longer name, empty, an object, a JS expression, unterminated.
    check("xvqd='3-1'", None);
    check("vqd_old='3-1'", None);
    check("vqd=''", None);
    check(r#""vqd":{"minecraft":"3-1"}"#, None);
    check("vqd=e.vqd;", None);
    check("vqd='3-1", None);
    check("vqd", None);
    check("", None);
    // The first well-formed one wins.
    check("vqd=''; vqd='3-2'; vqd='3-3'", Some("3-2"));
}

#[test]
fn ddg_statuses_and_broken_answers() {
    let ddg = EngineKind::DuckDuckGo;
    let anomaly: &[u8] =
        b"DDG.deep.anomalyDetectionBlock({gk:'d4cd',q:'minecraft',iadb:1,ctx:'q',dn:''});";
    let ops: &[u8] = b"If this error persists, please let us know: ops@duckduckgo.com";
    let c = page_cursor();
    check(ddg, &c, (202, None, b""), rate_limited(None));
    check(ddg, &c, (403, None, ops), rate_limited(None));
    check(ddg, &c, (418, None, b""), rate_limited(None));
    check(ddg, &c, (429, Some("7"), b"{}"), rate_limited(Some(7)));
    check(
        ddg,
        &c,
        (200, None, anomaly),
        Expect::Err(EngineError::Blocked),
    );
    check(
        ddg,
        &c,
        (403, None, anomaly),
        Expect::Err(EngineError::Blocked),
    );
    check(
        ddg,
        &c,
        (500, None, b"oops"),
        Expect::Err(EngineError::Http { status: 500 }),
    );
    let ijs = "i.js JSON: an object with a `results` array";
    // HTML where i.js JSON was asked for is a block (a challenge page), not a changed format.
    check(
        ddg,
        &c,
        (200, None, b"<html>hello</html>"),
        Expect::Err(EngineError::Blocked),
    );
    check(
        ddg,
        &c,
        (200, None, b"<form id=\"challenge-form\"></form>"),
        Expect::Err(EngineError::Blocked),
    );
    check(ddg, &c, (302, None, b""), Expect::Err(EngineError::Blocked));
    check(ddg, &c, (200, None, b"{\"res\":[]}"), changed(ijs));
    check(ddg, &c, (200, None, b"{\"results\":{}}"), changed(ijs));
    check(
        ddg,
        &c,
        (
            200,
            None,
            br#"{"results":[{"title":"no image"},{"image":""}]}"#,
        ),
        changed("i.js results with an `image` URL (every result lacked one)"),
    );
    check(
        ddg,
        &c,
        (200, None, br#"{"results":[],"next":42}"#),
        changed("`next` as a relative i.js URL"),
    );
    // Partly unreadable results are skipped and counted; no `next` is the last page.
    check(
        ddg,
        &c,
        (
            200,
            None,
            br#"{"results":[{"image":"https://a/1.jpg","width":"640","height":0},{"thumbnail":"t"}]}"#,
        ),
        Expect::Page(1, 1, None),
    );
    let t = Cursor::token();
    check(
        ddg,
        &t,
        (200, None, b"<html>no token here</html>"),
        Expect::Err(EngineError::TokenMissing),
    );
    check(
        ddg,
        &t,
        (200, None, anomaly),
        Expect::Err(EngineError::Blocked),
    );
    check(ddg, &t, (429, None, b""), rate_limited(None));
}

#[test]
fn ddg_requests() {
    let ddg = adapter(EngineKind::DuckDuckGo);
    let base = Url::parse("http://127.0.0.1:8080/ddg/").unwrap();
    let token = ddg.request(
        &base,
        &settings(EngineKind::DuckDuckGo),
        "john lennon",
        &ddg.start(),
    );
    assert_eq!(
        token.url.as_str(),
        "http://127.0.0.1:8080/ddg/?q=john+lennon&iar=images&t=h_"
    );
    let first = ddg.request(
        &base,
        &settings(EngineKind::DuckDuckGo),
        "john lennon",
        &Cursor::results(params(&[("vqd", "3-1-2")])),
    );
    assert_eq!(
        first.url.as_str(),
        "http://127.0.0.1:8080/ddg/i.js?o=json&q=john+lennon&l=us-en&vqd=3-1-2&p=1&s=0&ct=US"
    );
    assert!(
        first
            .headers
            .contains(&("referer", "http://127.0.0.1:8080/ddg/".to_string()))
    );
    let next = ddg.request(
        &Url::parse("https://duckduckgo.com").unwrap(),
        &settings(EngineKind::DuckDuckGo),
        "john lennon",
        &Cursor::results(params(&[
            ("q", "john lennon"),
            ("o", "json"),
            ("p", "-1"),
            ("s", "100"),
            ("u", "bing"),
            ("f", ",,,,,"),
            ("l", "us-en"),
            ("vqd", "3-1-2"),
        ])),
    );
    // Only the offset and the token come from the cursor; the rest is this client's own.
    assert_eq!(
        next.url.as_str(),
        "https://duckduckgo.com/i.js?o=json&q=john+lennon&l=us-en&vqd=3-1-2&p=1&s=100&ct=US"
    );
    // `f` only when a filter is set; the region sets `l` and `ct`.
    let mut filtered = settings(EngineKind::DuckDuckGo);
    filtered.filter = Some(",,,,,Public".into());
    filtered.region = Some("de-de".into());
    let with_filter = ddg.request(
        &Url::parse("https://duckduckgo.com").unwrap(),
        &filtered,
        "x",
        &Cursor::results(params(&[("vqd", "3-1-2")])),
    );
    assert_eq!(
        with_filter.url.as_str(),
        "https://duckduckgo.com/i.js?o=json&q=x&l=de-de&vqd=3-1-2&p=1&s=0&ct=DE&f=%2C%2C%2C%2C%2CPublic"
    );
    let headers: Vec<(&str, &str)> = first
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    for expected in [
        ("accept", "*/*"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-origin"),
        ("accept-language", "en-US,en;q=0.9"),
    ] {
        assert!(headers.contains(&expected), "{expected:?} in {headers:?}");
    }
}

// ---------------------------------------------------------------- Bing

#[test]
fn bing_page_reads_anchors_and_counts_broken_ones() {
    let body = fixture("bing/async_john_lennon_first1.html");
    let page = parse(EngineKind::Bing, &page_cursor(), &Response::ok(body)).unwrap();
    // 7 anchors: no `m`, broken JSON and JSON without `murl` are skipped.
    assert_eq!(page.skipped, 3);
    assert_eq!(page.next, Some(Cursor::results(params(&[("first", "8")]))));
    let c = &page.candidates;
    assert_eq!(c.len(), 4);
    assert_eq!(
        c[0],
        Candidate {
            image_url: "https://images.example.org/john-1969.jpg".into(),
            thumbnail_url: Some("https://tse1.mm.bing.net/th?id=OIP.aaa1&pid=15.1".into()),
            page_url: Some("https://www.example.org/beatles/john-1969".into()),
            title: Some("John Lennon in 1969 & Yoko".into()),
            width: Some(1200),
            height: Some(800),
            licence: None,
            engine: EngineKind::Bing,
            query_id: None,
            rank: 1,
        }
    );
    let summary: Vec<_> = c
        .iter()
        .map(|c| (c.rank, c.image_url.as_str(), c.width, c.height))
        .collect();
    assert_eq!(
        summary,
        [
            (
                1,
                "https://images.example.org/john-1969.jpg",
                Some(1200),
                Some(800)
            ),
            // Size from the info text ("640 × 480 · png"), as the href has none.
            (
                2,
                "https://cdn.example.net/42/lennon_glasses.png",
                Some(640),
                Some(480)
            ),
            (
                3,
                "https://archive.example.com/item/7/full.webp",
                None,
                None
            ),
            (
                4,
                "https://blog.example.org/wp-content/uploads/lennon-nyc.jpg",
                Some(2048),
                Some(1365)
            ),
        ]
    );
}

#[test]
fn bing_pages_without_results() {
    let bing = EngineKind::Bing;
    let c = page_cursor();
    let no_results = fixture("bing/async_no_results.html");
    check(bing, &c, (200, None, &no_results), Expect::Page(0, 0, None));
    check(bing, &c, (200, None, b" \n "), Expect::Page(0, 0, None));
    check(
        bing,
        &c,
        (200, None, b"<ul class=\"dgControl_list\"></ul>"),
        Expect::Page(0, 0, None),
    );
    let changed_markup = fixture("bing/async_changed_markup.html");
    let not_anchors = "`a.iusc` result anchors, an empty body, or Bing's no-results markup";
    check(bing, &c, (200, None, &changed_markup), changed(not_anchors));
    check(
        bing,
        &c,
        (200, None, b"<html><body>Hello</body></html>"),
        changed(not_anchors),
    );
    check(
        bing,
        &c,
        (200, None, b"{\"json\":true}"),
        changed(not_anchors),
    );
    let challenge = fixture("bing/challenge_page.html");
    check(
        bing,
        &c,
        (200, None, &challenge),
        Expect::Err(EngineError::Blocked),
    );
    check(
        bing,
        &c,
        (
            200,
            None,
            b"<a class=\"iusc\"></a><a class=\"iusc\" m=\"{oops\"></a>",
        ),
        changed("`a.iusc` anchors whose `m` attribute is JSON with a `murl` (every anchor failed)"),
    );
    check(bing, &c, (429, Some("3"), b""), rate_limited(Some(3)));
    check(
        bing,
        &c,
        (503, None, b""),
        Expect::Err(EngineError::Http { status: 503 }),
    );
}

#[test]
fn bing_next_first_counts_every_anchor() {
    let body = fixture("bing/async_john_lennon_first1.html");
    check(
        EngineKind::Bing,
        &Cursor::results(params(&[("first", "36")])),
        (200, None, &body),
        Expect::Page(4, 3, Some(params(&[("first", "43")]))),
    );
}

#[test]
fn bing_requests() {
    let bing = adapter(EngineKind::Bing);
    let base = Url::parse("https://www.bing.com").unwrap();
    let first = bing.request(
        &base,
        &settings(EngineKind::Bing),
        "john lennon",
        &bing.start(),
    );
    assert_eq!(
        first.url.as_str(),
        "https://www.bing.com/images/async?q=john+lennon&first=1&count=35&async=1&mkt=en-US"
    );
    let later = bing.request(
        &base,
        &settings(EngineKind::Bing),
        "john lennon",
        &Cursor::results(params(&[("first", "36")])),
    );
    assert_eq!(
        later.url.as_str(),
        "https://www.bing.com/images/async?q=john+lennon&first=36&count=35&async=1&mkt=en-US"
    );
}

// ---------------------------------------------------------------- Wikimedia Commons

fn licence(short: &str, url: Option<&str>, artist: Option<&str>, attr: &str) -> Option<Licence> {
    Some(Licence {
        short_name: Some(short.into()),
        url: url.map(Into::into),
        artist: artist.map(Into::into),
        attribution: Some(attr.into()),
    })
}

#[test]
fn commons_recording_gives_licences_and_the_continuation() {
    let body = fixture("wikimedia_commons/allimages_imageinfo_globalusage_with_continue.json");
    let page = parse(
        EngineKind::WikimediaCommons,
        &page_cursor(),
        &Response::ok(body),
    )
    .unwrap();
    assert_eq!(page.candidates.len(), 9);
    assert_eq!(page.skipped, 0);
    assert_eq!(
        page.next,
        Some(Cursor::results(params(&[
            ("continue", "gaicontinue||"),
            (
                "gaicontinue",
                "20151031230201|Lancelot_'Capability'_BROWN_-_Wilderness_House_Moat_Lane_Hampton_Court_Palace_Hampton_Court_London_KT8_9AR.jpg"
            ),
        ])))
    );
    // No search `index` in an allimages answer: pages come in page-id order.
    let first = &page.candidates[0];
    assert_eq!(first.title.as_deref(), Some("Minchinmavida Volcano.jpg"));
    assert_eq!(
        first.image_url,
        "https://upload.wikimedia.org/wikipedia/commons/f/fb/Minchinmavida_Volcano.jpg"
    );
    assert_eq!(
        first.page_url.as_deref(),
        Some("https://commons.wikimedia.org/wiki/File:Minchinmavida_Volcano.jpg")
    );
    assert_eq!((first.width, first.height), (Some(1440), Some(1440)));
    assert_eq!(
        first.licence,
        licence(
            "Public domain",
            None,
            Some("The original uploader was Elvezio at Italian Wikipedia."),
            "The original uploader was Elvezio at Italian Wikipedia., Public domain, via Wikimedia Commons"
        )
    );
    let second = &page.candidates[1];
    let l = second.licence.as_ref().unwrap();
    assert_eq!(l.short_name.as_deref(), Some("CC BY-SA 3.0 de"));
    assert_eq!(
        l.url.as_deref(),
        Some("https://creativecommons.org/licenses/by-sa/3.0/de/deed.en")
    );
    assert!(
        l.attribution
            .as_deref()
            .is_some_and(|a| a.starts_with("Photo: Eckhard Henkel / ") && !a.contains('<')),
        "{l:?}"
    );
    let mut names: Vec<_> = page
        .candidates
        .iter()
        .map(|c| c.licence.as_ref().unwrap().short_name.clone().unwrap())
        .collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "Public domain",
            "CC BY-SA 3.0 de",
            "CC BY-SA 4.0",
            "Public domain"
        ]
    );
    assert!(
        page.candidates
            .iter()
            .all(|c| c.width.is_some() && c.height.is_some())
    );
}

#[test]
fn commons_secondary_continuation_skips_pages_without_image_info() {
    let body = fixture("wikimedia_commons/allimages_secondary_continue_globalusage.json");
    check(
        EngineKind::WikimediaCommons,
        &page_cursor(),
        (200, None, &body),
        Expect::Page(
            0,
            9,
            Some(params(&[
                ("continue", "||imageinfo"),
                (
                    "gucontinue",
                    "Niedercunnersdorf_Gartenweg_12.JPG|dewiki|9849507",
                ),
            ])),
        ),
    );
}

#[test]
fn commons_page_object_with_full_extmetadata() {
    let page = String::from_utf8(fixture(
        "wikimedia_commons/page_imageinfo_extmetadata_cc_by_sa.json",
    ))
    .unwrap();
    let body = format!(r#"{{"batchcomplete":"","query":{{"pages":{{"81754323":{page}}}}}}}"#);
    let parsed = parse(
        EngineKind::WikimediaCommons,
        &page_cursor(),
        &Response::ok(body),
    )
    .unwrap();
    assert_eq!(parsed.next, None);
    let c = &parsed.candidates[0];
    assert_eq!(
        c.image_url,
        "https://upload.wikimedia.org/wikipedia/commons/2/25/20120925_PlozevetBretagne_LoneTree_DSC07971_PtrQs.jpg"
    );
    assert_eq!((c.width, c.height), (Some(5514), Some(3102)));
    assert_eq!(
        c.licence,
        licence(
            "CC BY-SA 4.0",
            Some("https://creativecommons.org/licenses/by-sa/4.0"),
            Some("PtrQs"),
            "Photo by PtrQs"
        )
    );
}

#[test]
fn commons_search_response_is_sorted_by_index() {
    let body = fixture("wikimedia_commons/search_john_lennon_gsroffset_handwritten.json");
    // This answer was asked with `iiurlwidth=320`, as in `originals` mode (the thumbnail is
    // only the candidate's thumbnail).
    let mut originals = settings(EngineKind::WikimediaCommons);
    originals.thumbnail_width_px = None;
    let page = adapter(EngineKind::WikimediaCommons)
        .parse(&originals, &page_cursor(), &Response::ok(body.clone()))
        .unwrap();
    // By default (thumbnails), the API's thumbnail is the image to download.
    let thumbs = parse(
        EngineKind::WikimediaCommons,
        &page_cursor(),
        &Response::ok(body),
    )
    .unwrap();
    assert_eq!(
        thumbs.candidates[0].image_url,
        "https://upload.wikimedia.org/wikipedia/commons/thumb/2/2c/Lennon_Wall_Prague_2019.jpg/320px-Lennon_Wall_Prague_2019.jpg"
    );
    assert_eq!(thumbs.candidates[0].thumbnail_url, None);
    assert_eq!(thumbs.candidates.len(), page.candidates.len());
    let titles: Vec<_> = page
        .candidates
        .iter()
        .map(|c| (c.rank, c.title.as_deref().unwrap()))
        .collect();
    assert_eq!(
        titles,
        [
            (1, "Lennon Wall Prague 2019.jpg"),
            (2, "John Lennon 1969 (cropped).jpg"),
            (3, "Imagine mosaic, Strawberry Fields.jpg"),
        ]
    );
    assert_eq!(
        page.next,
        Some(Cursor::results(params(&[
            ("continue", "gsroffset||"),
            ("gsroffset", "3"),
        ])))
    );
    let c = &page.candidates;
    assert_eq!(
        c[0].thumbnail_url.as_deref(),
        Some(
            "https://upload.wikimedia.org/wikipedia/commons/thumb/2/2c/Lennon_Wall_Prague_2019.jpg/320px-Lennon_Wall_Prague_2019.jpg"
        )
    );
    assert_eq!(
        c[0].licence,
        licence(
            "CC BY 4.0",
            Some("https://creativecommons.org/licenses/by/4.0"),
            Some("Jan Novák"),
            "Photo: Jan Novák / Wikimedia Commons"
        )
    );
    assert_eq!(
        c[1].licence,
        licence(
            "CC BY-SA 3.0 nl",
            Some("https://creativecommons.org/licenses/by-sa/3.0/nl/deed.en"),
            Some("Example photographer for Het Nieuws"),
            "Example photographer for Het Nieuws, CC BY-SA 3.0 nl, via Wikimedia Commons"
        )
    );
    assert_eq!(
        c[2].licence,
        licence(
            "Public domain",
            None,
            None,
            "Public domain, via Wikimedia Commons"
        )
    );
}

#[test]
fn commons_errors_and_empty_answers() {
    let wmc = EngineKind::WikimediaCommons;
    let c = page_cursor();
    let none = fixture("wikimedia_commons/search_no_results_handwritten.json");
    check(wmc, &c, (200, None, &none), Expect::Page(0, 0, None));
    check(
        wmc,
        &c,
        (
            200,
            None,
            br#"{"batchcomplete":"","query":{"searchinfo":{"totalhits":0}}}"#,
        ),
        Expect::Page(0, 0, None),
    );
    check(
        wmc,
        &c,
        (
            200,
            Some("5"),
            br#"{"error":{"code":"maxlag","info":"Waiting for a database server: 7 seconds lagged."}}"#,
        ),
        rate_limited(Some(5)),
    );
    check(
        wmc,
        &c,
        (
            200,
            None,
            br#"{"error":{"code":"ratelimited","info":"slow down"}}"#,
        ),
        rate_limited(None),
    );
    check(
        wmc,
        &c,
        (200, None, br#"{"error":{"code":"badvalue","info":"Unrecognized value for parameter \"generator\"."}}"#),
        Expect::Err(EngineError::Api {
            code: "badvalue".into(),
            info: "Unrecognized value for parameter \"generator\".".into(),
        }),
    );
    let api = "MediaWiki API JSON: an object with `query.pages` or `batchcomplete`";
    check(
        wmc,
        &c,
        (200, None, b"<!DOCTYPE html><html>Wikimedia Error</html>"),
        Expect::Err(EngineError::Blocked),
    );
    check(wmc, &c, (301, None, b""), Expect::Err(EngineError::Blocked));
    check(wmc, &c, (200, None, b"[1,2,3]"), changed(api));
    check(wmc, &c, (200, None, br#"{"warnings":{}}"#), changed(api));
    check(
        wmc,
        &c,
        (200, None, br#"{"query":{"pages":"none"}}"#),
        changed("`query.pages` as an object or array"),
    );
    check(
        wmc,
        &c,
        (200, None, br#"{"continue":[1],"query":{"pages":{}}}"#),
        changed("`continue` as an object"),
    );
    // formatversion=2: pages as an array.
    check(
        wmc,
        &c,
        (
            200,
            None,
            br#"{"query":{"pages":[{"index":2,"title":"File:B.jpg","imageinfo":[{"url":"https://u/b.jpg"}]},{"index":1,"title":"File:A.jpg"}]}}"#,
        ),
        Expect::Page(1, 1, None),
    );
    check(wmc, &c, (429, Some("60"), b""), rate_limited(Some(60)));
    check(
        wmc,
        &c,
        (403, None, b"Please set a user-agent"),
        Expect::Err(EngineError::Http { status: 403 }),
    );
}

#[test]
fn commons_requests_merge_the_whole_continue_object() {
    let wmc = adapter(EngineKind::WikimediaCommons);
    let base = Url::parse("https://commons.wikimedia.org").unwrap();
    let first = wmc.request(
        &base,
        &settings(EngineKind::WikimediaCommons),
        "John Lennon",
        &wmc.start(),
    );
    assert_eq!(
        first.url.as_str(),
        "https://commons.wikimedia.org/w/api.php?action=query&format=json&generator=search&gsrsearch=filetype%3Abitmap%7Cdrawing+John+Lennon&gsrnamespace=6&gsrlimit=50&prop=imageinfo&iiprop=url%7Csize%7Cmime%7Cextmetadata&iiurlwidth=1280&maxlag=5"
    );
    let next = wmc.request(
        &base,
        &settings(EngineKind::WikimediaCommons),
        "John Lennon",
        &Cursor::results(params(&[("continue", "gsroffset||"), ("gsroffset", "50")])),
    );
    assert!(
        next.url
            .as_str()
            .ends_with("&iiurlwidth=1280&maxlag=5&continue=gsroffset%7C%7C&gsroffset=50"),
        "{}",
        next.url
    );
}

#[test]
fn retry_after_as_an_http_date_is_relative_to_the_response_date() {
    let mut r = response(429, Some("Wed, 21 Oct 2015 07:28:30 GMT"), b"");
    r.headers.insert(
        reqwest::header::DATE,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(r.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(response(429, Some("soon"), b"").retry_after(), None);
    assert_eq!(response(429, None, b"").retry_after(), None);
}
