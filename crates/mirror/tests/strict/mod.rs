//! The strict profile: each behaviour of the real engines, shown on raw requests, with the
//! request that gets through. Worlds are quiet (no image noise, no burst limit) and turn on only
//! the behaviour under test, except where the test is about the profile as a whole.

use std::io::Read as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lennonnet_core::EngineKind;
use lennonnet_mirror::Profile;
use lennonnet_mirror::config::WorldConfig;
use lennonnet_mirror::engines::{DDG_FORBIDDEN, THUMB_STEPS};
use serde_json::Value;

use super::{bing_results, enc, quiet, serve, split_url, vqd_of};
use crate::util::client::{Reply, get};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36";
const BOT: &str = "lennonnet-tests/0.1 (+https://example.invalid/lennonnet)";
const DDG: &str = "duckduckgo.mirror.test";
const BING: &str = "bing.mirror.test";
const COMMONS: &str = "commons.mirror.test";

/// A quiet world in the strict profile with the rated behaviours at 0: each test turns on
/// what it shows.
fn strict(seed: u64) -> WorldConfig {
    let mut c = quiet(seed);
    c.search.profile = Profile::Strict;
    c.search.ddg_challenge_later_pages = Some(0.0);
    c.search.ddg_redirect_to_challenge = Some(0.0);
    c.search.commons_maxlag = Some(0.0);
    c
}

/// The headers of a browser's `i.js` fetch.
fn browser(ua: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("user-agent", ua),
        ("accept", "*/*"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://duckduckgo.com/"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-origin"),
    ]
}

/// The body as sent, decompressed per its Content-Encoding.
fn body(r: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("content-encoding").as_deref() {
        None => return r.body.clone(),
        Some("gzip") => flate2::read::GzDecoder::new(&r.body[..])
            .read_to_end(&mut out)
            .expect("gzip"),
        Some("br") => brotli::Decompressor::new(&r.body[..], 4096)
            .read_to_end(&mut out)
            .expect("brotli"),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    };
    out
}

fn text(r: &Reply) -> String {
    String::from_utf8(body(r)).expect("UTF-8")
}

fn json(r: &Reply) -> Value {
    serde_json::from_slice(&body(r)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(r)))
}

/// DuckDuckGo's token for `q`, asked with `headers`.
async fn token(addr: SocketAddr, q: &str, headers: &[(&str, &str)]) -> String {
    let page = get(
        addr,
        DDG,
        &format!("/?q={}&iar=images&t=h_", enc(q)),
        headers,
    )
    .await;
    assert_eq!(page.status, 200, "{}", text(&page));
    vqd_of(&text(&page)).expect("a vqd token")
}

fn ijs(q: &str, vqd: &str, s: u32) -> String {
    format!(
        "/i.js?o=json&q={}&l=us-en&vqd={vqd}&p=1&s={s}&u=bing&bpia=1&a=h_",
        enc(q)
    )
}

fn is_results(r: &Reply) -> bool {
    r.status == 200
        && r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        && json(r)["results"].is_array()
}

fn is_challenge(r: &Reply) -> bool {
    r.status == 200
        && r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
        && text(r).contains(r#"<form id="challenge-form""#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddg_refuses_i_js_without_a_browsers_headers() {
    let m = serve(strict(31)).await;
    let a = m.addr;
    let full = browser(FIREFOX);
    let vqd = token(a, "red car", &full).await;
    let path = ijs("red car", &vqd, 0);
    let r = get(a, DDG, &path, &full).await;
    assert!(is_results(&r), "{}", text(&r));
    for missing in [
        "sec-fetch-mode",
        "sec-fetch-dest",
        "sec-fetch-site",
        "referer",
        "accept-language",
    ] {
        let less: Vec<_> = full
            .iter()
            .filter(|(k, _)| *k != missing)
            .copied()
            .collect();
        let r = get(a, DDG, &path, &less).await;
        assert_eq!(r.status, 403, "without {missing}");
        assert_eq!(text(&r), DDG_FORBIDDEN, "without {missing}");
    }
    for (name, wrong) in [
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-site", "none"),
    ] {
        let mut other = full.clone();
        other.retain(|(k, _)| *k != name);
        other.push((name, wrong));
        assert_eq!(
            get(a, DDG, &path, &other).await.status,
            403,
            "{name}: {wrong}"
        );
    }
    // A User-Agent that is not a browser's: its own token, still refused.
    let mut bot = full.clone();
    bot.retain(|(k, _)| *k != "user-agent");
    bot.push(("user-agent", BOT));
    let bot_vqd = token(a, "red car", &bot).await;
    let r = get(a, DDG, &ijs("red car", &bot_vqd, 0), &bot).await;
    assert_eq!((r.status, text(&r).as_str()), (403, DDG_FORBIDDEN));
    m.shutdown().await;

    // The kind profile asks for none of it.
    let m = serve(quiet(31)).await;
    let vqd = token(m.addr, "red car", &[]).await;
    assert!(is_results(
        &get(m.addr, DDG, &ijs("red car", &vqd, 0), &[]).await
    ));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddg_tokens_are_tied_to_the_user_agent() {
    let m = serve(strict(32)).await;
    let a = m.addr;
    let (firefox, chrome) = (browser(FIREFOX), browser(CHROME));
    let for_firefox = token(a, "teapot", &firefox).await;
    let for_chrome = token(a, "teapot", &chrome).await;
    assert_ne!(for_firefox, for_chrome);
    assert!(for_chrome.starts_with("3-"));
    // Each token works for its own User-Agent and is echoed back in `vqd`...
    let r = get(a, DDG, &ijs("teapot", &for_firefox, 0), &firefox).await;
    assert!(is_results(&r));
    assert_eq!(
        json(&r)["vqd"]["teapot"].as_str(),
        Some(for_firefox.as_str())
    );
    assert!(is_results(
        &get(a, DDG, &ijs("teapot", &for_chrome, 0), &chrome).await
    ));
    // ...and gets 403 for another.
    let r = get(a, DDG, &ijs("teapot", &for_firefox, 0), &chrome).await;
    assert_eq!((r.status, text(&r).as_str()), (403, DDG_FORBIDDEN));
    // Still one token per query.
    assert_ne!(token(a, "teapots", &firefox).await, for_firefox);
    m.shutdown().await;

    // The kind profile gives every User-Agent the same token.
    let m = serve(quiet(32)).await;
    assert_eq!(
        token(m.addr, "teapot", &firefox).await,
        token(m.addr, "teapot", &chrome).await
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddg_challenges_some_later_pages_and_a_retry_gets_through() {
    let mut c = strict(33);
    c.search.ddg_challenge_later_pages = Some(0.3);
    let m = serve(c).await;
    let a = m.addr;
    let h = browser(FIREFOX);
    let (mut later, mut challenged, mut first_pages) = (0, 0, 0);
    for q in [
        "red car",
        "teapot",
        "blue whale",
        "old tree",
        "city at night",
    ] {
        let vqd = token(a, q, &h).await;
        for s in (0..700).step_by(100) {
            let mut tries = 0;
            loop {
                let r = get(a, DDG, &ijs(q, &vqd, s), &h).await;
                tries += 1;
                if is_results(&r) {
                    break;
                }
                assert!(is_challenge(&r), "{}: {}", r.status, text(&r));
                assert!(s > 0, "the first page is never challenged");
                challenged += 1;
                assert!(tries < 10, "a retry of {q} s={s} never got through");
            }
            if s == 0 {
                first_pages += 1;
            } else {
                later += 1;
            }
        }
    }
    assert_eq!((first_pages, later), (5, 30));
    assert!((3..=20).contains(&challenged), "{challenged} of {later}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddg_sends_some_searches_to_the_challenge_page() {
    let mut c = strict(34);
    c.search.ddg_redirect_to_challenge = Some(0.3);
    let m = serve(c).await;
    let a = m.addr;
    let h = browser(FIREFOX);
    let (mut asked, mut redirected) = (0, 0);
    for q in [
        "red car",
        "teapot",
        "blue whale",
        "old tree",
        "city at night",
        "dog",
    ] {
        // The token page...
        let mut vqd = None;
        for _ in 0..10 {
            let r = get(a, DDG, &format!("/?q={}", enc(q)), &h).await;
            asked += 1;
            if r.status == 302 {
                redirected += 1;
                check_challenge_redirect(a, &r).await;
                continue;
            }
            vqd = vqd_of(&text(&r));
            break;
        }
        let vqd = vqd.expect("a retry of the token page gets through");
        // ...and the result pages.
        for s in [0, 100, 200] {
            let mut ok = false;
            for _ in 0..10 {
                let r = get(a, DDG, &ijs(q, &vqd, s), &h).await;
                asked += 1;
                if r.status == 302 {
                    redirected += 1;
                    check_challenge_redirect(a, &r).await;
                    continue;
                }
                assert!(is_results(&r), "{}: {}", r.status, text(&r));
                ok = true;
                break;
            }
            assert!(ok, "a retry of {q} s={s} never got through");
        }
    }
    assert!(
        (3..=asked / 2).contains(&redirected),
        "{redirected} of {asked}"
    );
    m.shutdown().await;
}

/// A 302 to the challenge page on the same host, which serves `form#challenge-form`.
async fn check_challenge_redirect(addr: SocketAddr, r: &Reply) {
    assert_eq!(r.status, 302);
    let location = r.header("location").expect("a Location");
    assert!(location.starts_with("/anomaly?"), "{location}");
    let page = get(addr, DDG, &location, &browser(FIREFOX)).await;
    assert!(is_challenge(&page), "{}: {}", page.status, text(&page));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddg_blocks_a_burst_for_an_hour_on_the_compressed_clock() {
    let mut c = strict(35);
    c.search.burst_limit = 4;
    c.search.burst_window_ms = 60_000;
    // One mirror-hour lasts 3 real seconds.
    c.search.ddg_block_secs = Some(3600);
    c.search.clock_scale = Some(1200.0);
    let m = serve(c).await;
    let a = m.addr;
    let h = browser(FIREFOX);
    let vqd = token(a, "red car", &h).await;
    for s in [0, 100, 200] {
        assert!(is_results(&get(a, DDG, &ijs("red car", &vqd, s), &h).await));
    }
    // The fifth request in the window starts the block.
    let started = Instant::now();
    let block = Duration::from_millis(3000);
    let mut refusals = Vec::new();
    while started.elapsed() < block / 2 {
        let r = get(a, DDG, &ijs("red car", &vqd, 300), &h).await;
        refusals.push(r.status);
        match r.status {
            403 => assert!(text(&r).contains("anomaly-modal"), "{}", text(&r)),
            302 => check_challenge_redirect(a, &r).await,
            other => panic!("{other} during a block: {}", text(&r)),
        }
        // The token page is refused too; Bing is not.
        let page = get(a, DDG, "/?q=teapot", &h).await;
        assert!([302, 403].contains(&page.status), "{}", page.status);
        refusals.push(page.status);
        if refusals.len() == 2 {
            let bing = get(a, BING, "/images/async?q=teapot&first=1&count=35", &h).await;
            assert_eq!(bing.status, 200);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refusals.len() >= 4, "{refusals:?}");
    let alternating: Vec<u16> = (0..refusals.len())
        .map(|i| if i % 2 == 0 { 403 } else { 302 })
        .collect();
    assert_eq!(refusals, alternating);
    // Requests during the block did not extend it: it ends on time.
    tokio::time::sleep(
        (started + block + Duration::from_millis(100)).saturating_duration_since(Instant::now()),
    )
    .await;
    let r = get(a, DDG, &ijs("red car", &vqd, 300), &h).await;
    assert!(is_results(&r), "{}: {}", r.status, text(&r));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bing_shortchanges_clients_that_are_not_browsers_and_compresses_for_those_that_are() {
    let m = serve(strict(36)).await;
    let a = m.addr;
    let path = "/images/async?q=red+car&first=1&count=35&async=1";
    for headers in [
        vec![],
        vec![("user-agent", BOT), ("accept-encoding", "gzip, br")],
        vec![("user-agent", FIREFOX)],
        vec![("user-agent", FIREFOX), ("accept-encoding", "identity")],
        vec![
            ("user-agent", FIREFOX),
            ("accept-encoding", "gzip;q=0, deflate"),
        ],
    ] {
        let r = get(a, BING, path, &headers).await;
        assert_eq!(r.status, 200);
        assert_eq!(bing_results(&text(&r)).len(), 1, "{headers:?}");
    }
    let mut pages = Vec::new();
    for coding in ["gzip", "br", "gzip, deflate, br, zstd"] {
        let r = get(
            a,
            BING,
            path,
            &[("user-agent", FIREFOX), ("accept-encoding", coding)],
        )
        .await;
        let expected = if coding == "gzip" { "gzip" } else { "br" };
        assert_eq!(r.header("content-encoding").as_deref(), Some(expected));
        assert_eq!(r.header("vary").as_deref(), Some("Accept-Encoding"));
        assert!(r.body.len() < body(&r).len() / 2);
        assert_eq!(bing_results(&text(&r)).len(), 35);
        pages.push(text(&r));
    }
    assert!(pages.iter().all(|p| *p == pages[0]));
    // The other engines compress too.
    let r = get(a, DDG, "/?q=red+car", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    assert!(vqd_of(&text(&r)).is_some());
    let r = get(
        a,
        COMMONS,
        &commons_path("red car", 0, None, false),
        &[("user-agent", BOT), ("accept-encoding", "br")],
    )
    .await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("br"));
    assert!(json(&r)["query"]["pages"].is_object());
    m.shutdown().await;

    // The kind profile sends every client everything, uncompressed.
    let m = serve(quiet(36)).await;
    let r = get(m.addr, BING, path, &[("accept-encoding", "gzip, br")]).await;
    assert!(r.header("content-encoding").is_none());
    assert_eq!(bing_results(&r.text()).len(), 35);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bing_repeats_its_last_page_past_the_end() {
    let m = serve(strict(37)).await;
    let a = m.addr;
    let h = [("user-agent", FIREFOX), ("accept-encoding", "gzip")];
    let total = m.mirror.world.result_count(EngineKind::Bing, "teapot");
    let mut first = 1;
    let mut last_page = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let r = get(
            a,
            BING,
            &format!("/images/async?q=teapot&first={first}&count=35"),
            &h,
        )
        .await;
        let urls: Vec<String> = bing_results(&text(&r))
            .iter()
            .map(|m| m["murl"].as_str().unwrap().to_string())
            .collect();
        assert!(!urls.is_empty());
        // A page that brings no new image is the end.
        let new = urls.iter().filter(|u| seen.insert((*u).clone())).count();
        if new == 0 {
            assert_eq!(urls, last_page, "past the end: the last page again");
            break;
        }
        last_page = urls;
        first += 35;
        assert!(first < 5000, "paging does not end");
    }
    assert_eq!(seen.len() as u32, total);
    // Far past the end, too.
    let r = get(
        a,
        BING,
        &format!("/images/async?q=teapot&first={}&count=35", total + 1000),
        &h,
    )
    .await;
    let urls: Vec<String> = bing_results(&text(&r))
        .iter()
        .map(|m| m["murl"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls, last_page);
    m.shutdown().await;

    // The kind profile answers an empty list.
    let m = serve(quiet(37)).await;
    let r = get(
        m.addr,
        BING,
        &format!("/images/async?q=teapot&first={}&count=35", total + 1),
        &[],
    )
    .await;
    assert!(bing_results(&r.text()).is_empty());
    m.shutdown().await;
}

fn commons_path(q: &str, offset: u32, width: Option<u32>, maxlag: bool) -> String {
    let mut p = format!(
        "/w/api.php?action=query&format=json&generator=search&gsrsearch={}&gsrnamespace=6&gsrlimit=50&gsroffset={offset}&prop=imageinfo&iiprop=url%7Csize%7Cmime%7Cextmetadata",
        enc(&format!("filetype:bitmap {q}"))
    );
    if let Some(w) = width {
        p += &format!("&iiurlwidth={w}");
    }
    if maxlag {
        p += "&maxlag=5";
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commons_answers_maxlag_and_a_retry_gets_through() {
    let mut c = strict(38);
    c.search.commons_maxlag = Some(0.3);
    let m = serve(c).await;
    let a = m.addr;
    let h = [("user-agent", BOT), ("accept-encoding", "gzip")];
    let (mut asked, mut lagged) = (0, 0);
    for q in ["John Lennon", "teapot", "red car", "person"] {
        for offset in [0, 50] {
            let path = commons_path(q, offset, None, true);
            let mut ok = false;
            for _ in 0..10 {
                let r = get(a, COMMONS, &path, &h).await;
                asked += 1;
                assert_eq!(r.status, 200);
                let v = json(&r);
                if v["error"]["code"] == "maxlag" {
                    lagged += 1;
                    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
                    assert_eq!(r.header("x-database-lag").as_deref(), Some("6"));
                    assert_eq!(
                        v["error"]["info"].as_str(),
                        Some("Waiting for db1234: 6 seconds lagged.")
                    );
                    continue;
                }
                assert!(v["query"]["pages"].is_object(), "{v}");
                ok = true;
                break;
            }
            assert!(ok, "a retry of {q} at {offset} never got through");
            // Without maxlag, never.
            let r = get(a, COMMONS, &commons_path(q, offset, None, false), &h).await;
            assert!(json(&r)["query"]["pages"].is_object());
        }
    }
    assert!((2..=asked / 2).contains(&lagged), "{lagged} of {asked}");
    m.shutdown().await;
}

/// The first `n` file URLs of a Commons search.
async fn commons_files(addr: SocketAddr, q: &str, width: Option<u32>, n: usize) -> Vec<Value> {
    let r = get(
        addr,
        COMMONS,
        &commons_path(q, 0, width, false),
        &[("user-agent", BOT)],
    )
    .await;
    let v = json(&r);
    let mut infos: Vec<(u64, Value)> = v["query"]["pages"]
        .as_object()
        .unwrap_or_else(|| panic!("{v}"))
        .values()
        .map(|p| (p["index"].as_u64().unwrap(), p["imageinfo"][0].clone()))
        .collect();
    infos.sort_by_key(|(i, _)| *i);
    infos.into_iter().take(n).map(|(_, info)| info).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commons_files_download_two_at_a_time_per_client() {
    let mut c = strict(39);
    c.noise.slow_first_byte = 1.0;
    c.timing.slow_first_byte_ms = 1500;
    let m = serve(c).await;
    let a = m.addr;
    let urls: Vec<String> = commons_files(a, "John Lennon", None, 6)
        .await
        .iter()
        .map(|i| i["url"].as_str().unwrap().to_string())
        .collect();
    assert!(urls[0].starts_with("http://upload.mirror.test:"));
    let fetch = |url: String, ua: &'static str| {
        tokio::spawn(async move {
            let (host, path) = split_url(&url);
            get(a, &host, &path, &[("user-agent", ua)]).await
        })
    };
    let first = fetch(urls[0].clone(), BOT);
    let second = fetch(urls[1].clone(), BOT);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A third at once from the same client is refused; another client's gets through.
    let (host, path) = split_url(&urls[2]);
    let third = get(a, &host, &path, &[("user-agent", BOT)]).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.header("retry-after").as_deref(), Some("1"));
    let other = fetch(urls[3].clone(), FIREFOX);
    for r in [first, second, other] {
        let r = r.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("image/"));
    }
    // Once they are done, the client may go on.
    assert_eq!(
        get(a, &host, &path, &[("user-agent", BOT)]).await.status,
        200
    );
    m.shutdown().await;

    // The kind profile has no limit.
    let mut c = quiet(39);
    c.noise.slow_first_byte = 1.0;
    c.timing.slow_first_byte_ms = 300;
    let m = serve(c).await;
    let a = m.addr;
    let urls = commons_files(a, "John Lennon", None, 4).await;
    let all: Vec<_> = urls
        .iter()
        .map(|i| {
            let url = i["url"].as_str().unwrap().to_string();
            tokio::spawn(async move {
                let (host, path) = split_url(&url);
                get(a, &host, &path, &[("user-agent", BOT)]).await.status
            })
        })
        .collect();
    for s in all {
        assert_eq!(s.await.unwrap(), 200);
    }
    m.shutdown().await;
}

fn image_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("an image");
    (img.width(), img.height())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commons_thumbnails_come_in_the_standard_widths() {
    // Kind: iiurlwidth off the steps is ignored, as it always was; on a step it is honoured.
    let m = serve(quiet(40)).await;
    let a = m.addr;
    let plain = get(
        a,
        COMMONS,
        &commons_path("teapot", 0, None, false),
        &[("user-agent", BOT)],
    )
    .await;
    let off_step = get(
        a,
        COMMONS,
        &commons_path("teapot", 0, Some(320), false),
        &[("user-agent", BOT)],
    )
    .await;
    assert_eq!(off_step.body, plain.body);
    assert!(!off_step.text().contains("thumburl"));
    let on_step = commons_files(a, "teapot", Some(60), 50).await;
    assert!(on_step.iter().all(|i| i["thumbwidth"].is_u64()));
    // The kind file host scales to any width.
    let wide = on_step
        .iter()
        .find(|i| i["width"].as_u64().unwrap() > 60)
        .expect("a file wider than 60 px");
    let thumb = wide["thumburl"]
        .as_str()
        .unwrap()
        .replace("/60px-", "/51px-");
    let r = crate::util::client::get_url(a, &thumb).await;
    assert_eq!(r.status, 200);
    assert_eq!(image_size(&r.body).0, 51);
    m.shutdown().await;

    // Strict: 50 is rounded up to 60; the file host refuses other widths.
    let m = serve(strict(40)).await;
    let a = m.addr;
    let infos = commons_files(a, "teapot", Some(50), 50).await;
    let (mut scaled, mut whole) = (0, 0);
    for i in &infos {
        let (w, h) = (i["width"].as_u64().unwrap(), i["height"].as_u64().unwrap());
        let thumb = i["thumburl"].as_str().unwrap();
        let (tw, th) = (
            i["thumbwidth"].as_u64().unwrap(),
            i["thumbheight"].as_u64().unwrap(),
        );
        if w <= 60 {
            // Not wider than the step: the original itself.
            assert_eq!(thumb, i["url"].as_str().unwrap());
            assert_eq!((tw, th), (w, h));
            whole += 1;
            continue;
        }
        scaled += 1;
        assert_eq!(tw, 60);
        assert!(thumb.contains("/wikipedia/commons/thumb/"), "{thumb}");
        let name = i["url"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(thumb.ends_with(&format!("/{name}/60px-{name}")), "{thumb}");
        if scaled <= 3 {
            let r = crate::util::client::get_url(a, thumb).await;
            assert_eq!(r.status, 200, "{thumb}");
            assert_eq!(image_size(&r.body), (60, th as u32), "{thumb}");
            let truth = super::truth(a, thumb).await;
            assert_eq!(truth["width"], 60);
            let off = crate::util::client::get_url(a, &thumb.replace("/60px-", "/61px-")).await;
            assert_eq!(off.status, 400);
        }
    }
    assert!(scaled > 0 && whole > 0, "{scaled} scaled, {whole} whole");
    assert!(THUMB_STEPS.contains(&60));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_engine_answers_a_format_its_adapter_cannot_read() {
    let mut c = quiet(41);
    c.search.changed = vec![EngineKind::Bing];
    let m = serve(c).await;
    let a = m.addr;
    let r = get(a, BING, "/images/async?q=red+car&first=1&count=35", &[]).await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("red car"));
    for absent in [
        "iusc",
        "dgControl",
        "dg_b",
        "mmComponent_images",
        "no results",
        "No results",
    ] {
        assert!(!html.contains(absent), "{absent} in {html}");
    }
    // The others answer as ever.
    let vqd = token(a, "red car", &[]).await;
    assert!(is_results(
        &get(a, DDG, &ijs("red car", &vqd, 0), &[]).await
    ));
    m.shutdown().await;

    let mut c = strict(41);
    c.search.changed = vec![EngineKind::DuckDuckGo, EngineKind::WikimediaCommons];
    let m = serve(c).await;
    let a = m.addr;
    let h = browser(FIREFOX);
    let vqd = token(a, "red car", &h).await;
    let r = get(a, DDG, &ijs("red car", &vqd, 0), &h).await;
    assert_eq!(r.status, 200);
    let v = json(&r);
    assert!(v.is_object() && v.get("results").is_none(), "{v}");
    let r = get(
        a,
        COMMONS,
        &commons_path("red car", 0, None, false),
        &[("user-agent", BOT)],
    )
    .await;
    assert_eq!(r.status, 200);
    let v = json(&r);
    assert!(
        v.is_object()
            && v.get("query").is_none()
            && v.get("batchcomplete").is_none()
            && v.get("error").is_none(),
        "{v}"
    );
    let r = get(
        a,
        BING,
        "/images/async?q=red+car&first=1&count=35",
        &[("user-agent", FIREFOX), ("accept-encoding", "br")],
    )
    .await;
    assert_eq!(bing_results(&text(&r)).len(), 35);
    m.shutdown().await;
}

/// The whole strict profile, as `[search] profile = "strict"` in a world file, gives the same
/// bytes for the same request sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_profile_is_deterministic() {
    let world: WorldConfig =
        toml::from_str("seed = 42\n[search]\nprofile = \"strict\"\nburst_limit = 0\n").unwrap();
    let rules = world.search.rules();
    assert_eq!(rules, lennonnet_mirror::EngineRules::STRICT);
    let m = serve(world.clone()).await;
    let served = get(m.addr, "127.0.0.1", "/_mirror/rules", &[]).await.json();
    assert_eq!(served["ddg_block_secs"], 3600);
    assert_eq!(served["commons_file_concurrency"], 2);
    m.shutdown().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut c = world.clone();
        c.images = quiet(42).images;
        let m = serve(c).await;
        let a = m.addr;
        let h = browser(FIREFOX);
        // Statuses and digests of the decompressed bodies, the port taken out of URLs.
        let mut log: Vec<(u16, String)> = Vec::new();
        let mut keep = |r: &Reply| {
            let b = String::from_utf8_lossy(&body(r))
                .replace(&format!(":{}", a.port()), ":P")
                .replace(&format!("%3a{}", a.port()), "%3aP");
            log.push((r.status, blake3::hash(b.as_bytes()).to_hex().to_string()));
        };
        for q in ["red car", "teapot", "John Lennon"] {
            let page = get(a, DDG, &format!("/?q={}", enc(q)), &h).await;
            keep(&page);
            let Some(vqd) = vqd_of(&text(&page)) else {
                continue;
            };
            for s in [0, 100, 200, 300] {
                keep(&get(a, DDG, &ijs(q, &vqd, s), &h).await);
            }
            let path = format!("/images/async?q={}&first=36&count=35", enc(q));
            keep(&get(a, BING, &path, &h).await);
            let commons = [("user-agent", BOT), ("accept-encoding", "gzip")];
            keep(&get(a, COMMONS, &commons_path(q, 0, Some(1280), true), &commons).await);
        }
        runs.push(log);
        m.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
}
