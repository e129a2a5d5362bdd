//! The mirror over plain HTTP: a server on 127.0.0.1:0 in this process, requests with the Host
//! header set by hand. Never touches the real network.

mod strict;
mod util {
    pub mod client;
}

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lennonnet_mirror::config::{NoiseConfig, WorldConfig};
use lennonnet_mirror::{Options, Running, World, start};
use serde_json::Value;
use util::client::{Conn, Reply, get, get_url, split_url};

const UA: &str = "lennonnet-tests/0.1 (+https://example.invalid/lennonnet)";

/// The recorded real responses, as the repository keeps them (`tests/fixtures/engines/`, with
/// their sources).
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/engines")
}

fn fixture_json(rel: &str) -> Value {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A quiet, fast world: no noise, no rate limits, small pictures.
fn quiet(seed: u64) -> WorldConfig {
    let mut c = WorldConfig {
        seed,
        noise: NoiseConfig::none(),
        ..WorldConfig::default()
    };
    c.search.burst_limit = 0;
    c.search.ddg_anomaly = 0.0;
    c.search.ddg_missing_vqd = 0.0;
    c.images.min_side_px = 48;
    c.images.typical_max_px = 128;
    c.images.max_side_px = 160;
    c.timing.slow_first_byte_ms = 40;
    c.timing.trickle_bytes = 128;
    c.timing.trickle_interval_ms = 2;
    c.timing.huge_bytes = 400_000;
    c
}

async fn serve(config: WorldConfig) -> Running {
    config.validate().unwrap();
    let options = Options {
        cache_bytes: 64 << 20,
        ..Options::default()
    };
    start(
        World::new(config, None),
        "127.0.0.1:0".parse().unwrap(),
        &options,
    )
    .await
    .unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn enc(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// DuckDuckGo: the token from the HTML page, then one `i.js` page.
async fn ddg_page(addr: SocketAddr, q: &str, s: u32) -> Reply {
    let page = get(
        addr,
        "duckduckgo.mirror.test",
        &format!("/?q={}&ia=images", enc(q)),
        &[],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let vqd = vqd_of(&page.text()).expect("a vqd token");
    get(
        addr,
        "duckduckgo.mirror.test",
        &format!(
            "/i.js?l=us-en&o=json&q={}&vqd={vqd}&p=-1&f=,,,,&s={s}",
            enc(q)
        ),
        &[],
    )
    .await
}

fn vqd_of(html: &str) -> Option<String> {
    let i = html.find("vqd='")? + 5;
    let j = html[i..].find('\'')? + i;
    Some(html[i..j].to_string())
}

/// The `m` attributes of Bing's `a.iusc` elements, HTML-unescaped and parsed.
fn bing_results(html: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for part in html.split(r#"<a class="iusc""#).skip(1) {
        let i = part.find(" m=\"").unwrap() + 4;
        let j = part[i..].find('"').unwrap() + i;
        let m = part[i..j]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        out.push(serde_json::from_str(&m).unwrap_or_else(|e| panic!("{e}: {m}")));
    }
    out
}

/// Asks the mirror for the truth of a URL.
async fn truth(addr: SocketAddr, url: &str) -> Value {
    let r = get(
        addr,
        "127.0.0.1",
        &format!("/_mirror/truth?url={}", enc(url)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckduckgo_matches_the_recorded_shapes_and_pages_to_the_end() {
    let m = serve(quiet(1)).await;
    let addr = m.addr;
    // The token page carries both forms of the token, like the recorded one.
    let page = get(addr, "duckduckgo.mirror.test", "/?q=john+lennon", &[]).await;
    let html = page.text();
    let vqd = vqd_of(&html).unwrap();
    assert!(vqd.starts_with("3-"), "{vqd}");
    assert!(html.contains(&format!("&vqd={vqd}&")), "{html}");
    let recorded =
        std::fs::read_to_string(fixtures().join("duckduckgo/vqd_page_node.html")).unwrap();
    assert!(vqd_of(&recorded).is_some() && recorded.contains("&vqd=3-"));

    let fixture = fixture_json("duckduckgo/i_js_minecraft_default.json");
    let mut s = 0;
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    loop {
        let r = ddg_page(addr, "John Lennon", s).await;
        assert_eq!(r.status, 200);
        assert!(
            r.body.is_ascii(),
            "JSON escapes non-ASCII like the real one"
        );
        let v = r.json();
        let mut expected = keys(&fixture);
        if v.get("next").is_none() {
            expected.remove("next");
        }
        assert_eq!(keys(&v), expected);
        let results = v["results"].as_array().unwrap();
        for res in results {
            assert_eq!(keys(res), keys(&fixture["results"][0]));
            assert!(res["image"].as_str().unwrap().starts_with("http://img"));
            assert!(res["thumbnail"].as_str().unwrap().contains(".mirror.test:"));
            assert!(seen.insert(res["image"].as_str().unwrap().to_string()));
        }
        assert_eq!(
            v["vqd"]["John Lennon"].as_str(),
            Some(
                vqd_of(
                    &get(addr, "duckduckgo.mirror.test", "/?q=John+Lennon", &[])
                        .await
                        .text()
                )
                .unwrap()
                .as_str()
            )
        );
        pages += 1;
        match v.get("next").and_then(Value::as_str) {
            Some(next) => {
                assert_eq!(results.len(), 100);
                assert!(
                    next.starts_with("i.js?q=John%20Lennon&o=json&p=-1&s="),
                    "{next}"
                );
                assert!(next.ends_with("&u=bing&f=,,,,,&l=us-en"), "{next}");
                s = next
                    .split("&s=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
            }
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }
    let total = m
        .mirror
        .world
        .result_count(lennonnet_core::EngineKind::DuckDuckGo, "John Lennon");
    assert_eq!(seen.len() as u32, total);
    assert!((700..=1000).contains(&total), "{total}");
    // Past the end: no results, no next.
    let past = ddg_page(addr, "John Lennon", total + 100).await.json();
    assert_eq!(past["results"].as_array().unwrap().len(), 0);
    assert!(past.get("next").is_none());
    m.shutdown().await;
}

/// One request and what its answer must hold: a status and a piece of the body.
async fn check(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    body_has: &str,
) -> Reply {
    let r = get(addr, host, path, headers).await;
    assert_eq!(r.status, status, "{host}{path}: {}", r.text());
    assert!(
        r.text().contains(body_has),
        "{host}{path}: {:?} not in {}",
        body_has,
        r.text()
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_endpoints_refuse_like_the_real_ones() {
    let m = serve(quiet(2)).await;
    let a = m.addr;
    let forbidden = lennonnet_mirror::engines::DDG_FORBIDDEN;
    let ddg = "duckduckgo.mirror.test";
    let good = lennonnet_mirror::engines::ddg_vqd(&m.mirror.world, "cat");
    let with_good = format!("/i.js?l=us-en&o=json&q=cat&vqd={good}&p=-1&f=,,,,&s=0");
    for (host, path, headers, status, body) in [
        (ddg, "/i.js?o=json&q=cat&s=0".to_string(), vec![], 403, forbidden),
        (ddg, "/i.js?o=json&q=cat&vqd=3-1-2&s=0".to_string(), vec![], 403, forbidden),
        (ddg, with_good.clone(), vec![], 200, "\"results\":["),
        ("127.0.0.1", with_good, vec![], 200, "\"queryEncoded\":\"cat\""),
        ("bing.mirror.test", "/images/async?q=cat&first=1&count=35".to_string(), vec![], 200, "class=\"iusc\""),
        ("127.0.0.1", "/images/async?q=cat&first=1&count=35".to_string(), vec![], 200, " · "),
        ("commons.mirror.test", "/w/api.php?action=query&format=json&generator=search&gsrsearch=cat&gsrnamespace=6&gsrlimit=5&prop=imageinfo&iiprop=url|size|mime|extmetadata".to_string(), vec![], 403, "user-agent"),
        ("commons.mirror.test", "/w/api.php?action=query&format=json&generator=search&gsrsearch=cat&gsrnamespace=6&gsrlimit=5&prop=imageinfo&iiprop=url|size|mime|extmetadata".to_string(), vec![("user-agent", "python-requests/2.31")], 403, "user-agent"),
        ("commons.mirror.test", "/w/api.php?action=query&format=json&generator=search&gsrsearch=cat&gsrnamespace=6&gsrlimit=5&prop=imageinfo&iiprop=url|size|mime|extmetadata".to_string(), vec![("user-agent", UA)], 200, "\"gsroffset\":5"),
        ("commons.mirror.test", "/w/api.php?action=parse&format=json".to_string(), vec![("user-agent", UA)], 200, "\"badvalue\""),
        ("img03.mirror.test", "/images/not-a-token/x.jpg".to_string(), vec![], 404, "Not Found"),
        ("nowhere.example", "/".to_string(), vec![], 404, "Not Found"),
        ("127.0.0.1", "/_mirror/health".to_string(), vec![], 200, "ok"),
    ] {
        check(a, host, &path, &headers, status, body).await;
    }
    m.shutdown().await;

    // Search noise at full rate: the anomaly page, the missing token, the burst limit.
    let mut c = quiet(2);
    c.search.ddg_anomaly = 1.0;
    let m = serve(c).await;
    let r = check(m.addr, ddg, "/?q=cat", &[], 202, "anomaly-modal").await;
    assert!(vqd_of(&r.text()).is_none());
    m.shutdown().await;

    let mut c = quiet(2);
    c.search.ddg_missing_vqd = 1.0;
    let m = serve(c).await;
    let r = check(m.addr, ddg, "/?q=cat", &[], 200, "at DuckDuckGo").await;
    assert!(vqd_of(&r.text()).is_none() && !r.text().contains("vqd="));
    m.shutdown().await;

    let mut c = quiet(2);
    c.search.burst_limit = 5;
    c.search.retry_after_secs = 7;
    let m = serve(c).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = get(
            m.addr,
            "bing.mirror.test",
            "/images/async?q=cat&first=1&count=35",
            &[],
        )
        .await;
        if r.status == 429 {
            assert_eq!(r.header("retry-after").as_deref(), Some("7"));
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bing_and_commons_match_the_recorded_shapes_and_page_to_the_end() {
    let m = serve(quiet(3)).await;
    let a = m.addr;
    // Bing: first += count until a page has no result.
    let mut first = 1;
    let mut all = Vec::new();
    loop {
        let r = get(
            a,
            "bing.mirror.test",
            &format!("/images/async?q=george+harrison&first={first}&count=35"),
            &[],
        )
        .await;
        assert_eq!(r.status, 200);
        let html = r.text();
        let results = bing_results(&html);
        for m in &results {
            for k in ["murl", "turl", "purl", "t"] {
                assert!(m.get(k).is_some_and(Value::is_string), "{k} in {m}");
            }
        }
        if results.is_empty() {
            break;
        }
        assert!(html.contains("expw=") && html.contains("exph="));
        assert!(html.contains("view=detailV2"));
        first += results.len() as u32;
        all.extend(results);
        assert!(all.len() <= 1000);
    }
    let total = m
        .mirror
        .world
        .result_count(lennonnet_core::EngineKind::Bing, "george harrison");
    assert_eq!(all.len() as u32, total);

    // Commons: continue until there is no `continue`.
    let fixture =
        fixture_json("wikimedia_commons/allimages_imageinfo_globalusage_with_continue.json");
    let fixture_page = fixture_json("wikimedia_commons/page_imageinfo_extmetadata_cc_by_sa.json");
    let mut offset = 0;
    let mut ranks = BTreeSet::new();
    loop {
        let r = get(
            a,
            "commons.mirror.test",
            &format!("/w/api.php?action=query&format=json&generator=search&gsrsearch=ringo+starr&gsrnamespace=6&gsrlimit=50&gsroffset={offset}&prop=imageinfo&iiprop=url|size|mime|extmetadata"),
            &[("user-agent", UA)],
        )
        .await;
        assert!(r.body.is_ascii());
        let v = r.json();
        assert!(keys(&fixture).is_superset(&keys(&v)), "{:?}", keys(&v));
        assert_eq!(v["batchcomplete"], "");
        for (id, page) in v["query"]["pages"].as_object().unwrap() {
            assert_eq!(id, &page["pageid"].to_string());
            let mut fixture_keys = keys(&fixture_page);
            fixture_keys.insert("index".into());
            assert_eq!(keys(page), fixture_keys);
            assert_eq!(page["ns"], 6);
            assert!(page["title"].as_str().unwrap().starts_with("File:"));
            assert!(ranks.insert(page["index"].as_u64().unwrap()));
            let info = &page["imageinfo"][0];
            let mut expected = keys(&fixture_page["imageinfo"][0]);
            for k in ["user", "mediatype"] {
                expected.remove(k); // iiprop=user|mediatype were not asked for
            }
            expected.insert("mime".into());
            assert_eq!(keys(info), expected);
            let meta = &info["extmetadata"];
            let mut must: BTreeSet<String> = keys(&fixture_page["imageinfo"][0]["extmetadata"]);
            for optional in ["Attribution", "LicenseUrl"] {
                if meta.get(optional).is_none() {
                    must.remove(optional);
                }
            }
            assert_eq!(keys(meta), must);
            for (_, field) in meta.as_object().unwrap() {
                let k = keys(field);
                assert!(
                    k.contains("value")
                        && k.contains("source")
                        && k.is_subset(
                            &["value", "source", "hidden"]
                                .iter()
                                .map(|s| s.to_string())
                                .collect()
                        )
                );
            }
            assert!(
                info["url"]
                    .as_str()
                    .unwrap()
                    .starts_with("http://upload.mirror.test:")
            );
        }
        match v.get("continue") {
            Some(c) => {
                assert_eq!(c["continue"], "gsroffset||");
                offset = c["gsroffset"].as_u64().unwrap() as u32;
            }
            None => break,
        }
    }
    let total = m
        .mirror
        .world
        .result_count(lennonnet_core::EngineKind::WikimediaCommons, "ringo starr");
    assert_eq!(ranks, (1..=total as u64).collect());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_bytes_and_another_seed_another_world() {
    let (a, b, c) = (
        serve(quiet(7)).await,
        serve(quiet(7)).await,
        serve(quiet(8)).await,
    );
    // Search responses name the port; everything else is equal.
    let page = |m: &Running| {
        let addr = m.addr;
        async move {
            ddg_page(addr, "Paul McCartney", 0)
                .await
                .text()
                .replace(&format!(":{}/", addr.port()), ":PORT/")
        }
    };
    let (pa, pb, pc) = (page(&a).await, page(&b).await, page(&c).await);
    assert!(pa == pb, "the same seed gave different search responses");
    assert!(pa != pc, "another seed gave the same search response");
    let urls = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .take(12)
            .map(|r| r["image"].as_str().unwrap().to_string())
            .collect()
    };
    let ua = urls(&serde_json::from_str(&pa).unwrap());
    for u in &ua {
        let (host, path) = split_url(u);
        let ra = get(a.addr, &host, &path, &[]).await;
        let rb = get(b.addr, &host, &path, &[]).await;
        assert_eq!(ra.status, 200);
        assert_eq!(ra.body, rb.body, "{u}");
        // Another seed does not know this world's URLs.
        assert_eq!(get(c.addr, &host, &path, &[]).await.status, 404);
    }
    // The same rank of the same query in the other world is another picture.
    let uc = urls(&serde_json::from_str(&pc).unwrap());
    let ra = get_url(a.addr, &ua[0]).await;
    let rc = get_url(c.addr, &uc[0]).await;
    assert_ne!(ra.body, rc.body);
    for m in [a, b, c] {
        m.shutdown().await;
    }
}

/// Whether a file has its format's end (lenient decoders read truncated files without a word).
fn complete(b: &[u8]) -> bool {
    if b.starts_with(&[0xFF, 0xD8]) {
        b.ends_with(&[0xFF, 0xD9])
    } else if b.starts_with(b"\x89PNG") {
        b.ends_with(b"IEND\xAE\x42\x60\x82")
    } else if b.starts_with(b"GIF8") {
        b.ends_with(&[0x3B])
    } else if b.starts_with(b"RIFF") && b.len() >= 8 {
        u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize + 8 == b.len()
    } else {
        false
    }
}

/// What a client sees of an image URL, in the words of the truth's `noise`.
async fn observe(addr: SocketAddr, url: &str, c: &WorldConfig) -> &'static str {
    let mut url = url.to_string();
    let mut hops = 0;
    let first = loop {
        let r = get_url(addr, &url).await;
        if (300..400).contains(&r.status) {
            hops += 1;
            url = r.header("location").expect("a Location");
            if hops > 12 {
                return "redirect_loop";
            }
            continue;
        }
        break r;
    };
    if hops > 0 {
        assert_eq!(first.status, 200, "a chain ends at the picture");
        assert!(image::load_from_memory(&first.body).is_ok());
        return "redirect_chain";
    }
    let r = first;
    match r.status {
        404 => return "not_found",
        410 => return "gone",
        500 | 502 | 503 => return "server_error",
        200 => {}
        s => panic!("{url}: unexpected status {s}"),
    }
    let ctype = r.header("content-type").unwrap_or_default();
    let is_image_bytes = image::guess_format(&r.body).is_ok();
    if !is_image_bytes {
        assert!(
            ctype.starts_with("text/html") && r.text().contains("<html"),
            "{url}"
        );
        return "html_200";
    }
    if r.body.len() as u64 >= c.timing.huge_bytes {
        return "huge";
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(&r.body))
        .with_guessed_format()
        .unwrap();
    match reader.into_dimensions() {
        Ok((w, h)) if w >= 30_000 && h >= 30_000 => return "bomb",
        Ok(_) => {}
        Err(_) => return "truncated", // cut inside the header
    }
    if !complete(&r.body) {
        return "truncated";
    }
    assert!(image::load_from_memory(&r.body).is_ok(), "{url}");
    let mime_ok = ctype
        == format!(
            "image/{}",
            match image::guess_format(&r.body).unwrap() {
                image::ImageFormat::Jpeg => "jpeg",
                image::ImageFormat::Png => "png",
                image::ImageFormat::WebP => "webp",
                image::ImageFormat::Gif => "gif",
                f => panic!("{f:?}"),
            }
        );
    if !mime_ok {
        return "wrong_content_type";
    }
    // Time a second request, served from the cache: rendering is not slowness. A slow first
    // byte is timed once more: a slow link is slow every time, a loaded machine only now and then.
    let slow = Duration::from_millis(c.timing.slow_first_byte_ms);
    let r = get_url(addr, &url).await;
    if r.first_byte >= slow && get_url(addr, &url).await.first_byte >= slow {
        return "slow_first_byte";
    }
    // Rendering happens before the headers; only a trickle makes the body itself slow.
    let chunks = r.body.len().div_ceil(c.timing.trickle_bytes as usize) as u64;
    if chunks >= 2
        && r.total - r.first_byte
            >= Duration::from_millis((chunks - 1) * c.timing.trickle_interval_ms)
    {
        return "trickle";
    }
    "none"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_noise_kind_appears_at_about_its_rate() {
    let mut c = quiet(11);
    let n = &mut c.noise;
    for (rate, field) in [
        (0.04, &mut n.not_found),
        (0.04, &mut n.gone),
        (0.04, &mut n.server_error),
        (0.04, &mut n.slow_first_byte),
        (0.04, &mut n.trickle),
        (0.04, &mut n.wrong_content_type),
        (0.04, &mut n.html_200),
        (0.04, &mut n.truncated),
        (0.04, &mut n.bomb),
        (0.02, &mut n.huge),
        (0.04, &mut n.redirect_chain),
        (0.04, &mut n.redirect_loop),
        (0.06, &mut n.reencoded),
        (0.06, &mut n.resized),
        (0.06, &mut n.cropped),
        (0.06, &mut n.watermarked),
        (0.06, &mut n.thumbnail),
        (0.1, &mut n.john_in_others),
        (0.1, &mut n.group_in_others),
        (0.1, &mut n.john_in_people),
        (0.1, &mut n.group_in_people),
        (0.1, &mut n.other_in_john),
        (0.1, &mut n.group_in_john),
    ] {
        *field = rate;
    }
    let m = serve(c.clone()).await;
    let addr = m.addr;
    // About 3,500 URLs from DuckDuckGo pages of several queries.
    let queries = [
        "Paul McCartney",
        "Ringo Starr",
        "person portrait",
        "John Lennon",
        "teapot",
    ];
    let mut urls: Vec<(String, String)> = Vec::new();
    for q in queries {
        for s in (0..700).step_by(100) {
            let v = ddg_page(addr, q, s).await.json();
            for r in v["results"].as_array().unwrap() {
                urls.push((q.to_string(), r["image"].as_str().unwrap().to_string()));
            }
        }
    }
    assert!(urls.len() >= 3000, "{}", urls.len());
    // Truth of every URL, from the log of handed-out URLs.
    let log = get(addr, "127.0.0.1", "/_mirror/truth.jsonl", &[])
        .await
        .text();
    let truths: BTreeMap<String, Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|t| (t["url"].as_str().unwrap().to_string(), t))
        .collect();
    assert_eq!(truths.len(), urls.len());

    let count = |pred: &dyn Fn(&str, &Value) -> bool, among: &dyn Fn(&str) -> bool| {
        let pool: Vec<_> = urls.iter().filter(|(q, _)| among(q)).collect();
        let hits = pool.iter().filter(|(q, u)| pred(q, &truths[u])).count();
        (hits as f64, pool.len() as f64)
    };
    let near = |name: &str, (hits, pool): (f64, f64), rate: f64| {
        let expected = rate * pool;
        let tolerance = 5.0 * expected.sqrt() + 3.0;
        assert!(
            (hits - expected).abs() <= tolerance,
            "{name}: {hits} of {pool}, expected about {expected:.0} (rate {rate})"
        );
    };
    let all = |_: &str| true;
    for (kind, rate) in c.noise.delivery_rates() {
        let name = kind.as_str();
        if name == "none" {
            continue;
        }
        near(name, count(&|_, t| t["noise"] == name, &all), rate);
    }
    for (kind, rate) in c.noise.variant_rates() {
        let name = kind.as_str();
        near(name, count(&|_, t| t["variant"] == name, &all), rate);
    }
    let others = |q: &str| q == "Paul McCartney" || q == "Ringo Starr";
    near(
        "john_in_others",
        count(
            &|_, t| t["kind"] == "beatle" && t["name"] == "john",
            &others,
        ),
        c.noise.john_in_others,
    );
    near(
        "group_in_others",
        count(
            &|_, t| {
                t["kind"] == "group"
                    && t["identities"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|i| i == "john")
            },
            &others,
        ),
        c.noise.group_in_others,
    );
    let people = |q: &str| q == "person portrait";
    near(
        "john_in_people",
        count(
            &|_, t| t["kind"] == "beatle" && t["name"] == "john",
            &people,
        ),
        c.noise.john_in_people,
    );
    near(
        "group_in_people",
        count(&|_, t| t["kind"] == "group", &people),
        c.noise.group_in_people,
    );
    let john = |q: &str| q == "John Lennon";
    near(
        "other_in_john",
        count(&|_, t| t["kind"] == "beatle" && t["name"] != "john", &john),
        c.noise.other_in_john,
    );
    near(
        "group_in_john",
        count(&|_, t| t["kind"] == "group", &john),
        c.noise.group_in_john,
    );
    assert_eq!(
        count(&|_, t| t["kind"] != "word", &|q| q == "teapot").0,
        0.0
    );

    // Every URL behaves as its truth says, seen from a client (in parallel).
    let sample: Vec<String> = urls.iter().map(|(_, u)| u.clone()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in sample.chunks(sample.len().div_ceil(24)) {
        let chunk = chunk.to_vec();
        let c = c.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for u in chunk {
                let seen = observe(addr, &u, &c).await;
                out.push((u, seen));
            }
            out
        });
    }
    let mut mismatches = Vec::new();
    while let Some(r) = tasks.join_next().await {
        for (u, seen) in r.unwrap() {
            let said = truths[&u]["noise"].as_str().unwrap();
            if seen != said {
                mismatches.push(format!("{said} seen as {seen}: {u}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_come_in_many_formats_and_sizes_from_many_hosts_upright() {
    // The default world's formats and sizes, no noise.
    let mut c = quiet(5);
    c.images = WorldConfig::default().images;
    c.images.exif_orientation = 0.2;
    c.images.typical_max_px = 500; // keeps the test quick; the range below still holds
    let m = serve(c.clone()).await;
    let addr = m.addr;
    let mut formats = BTreeMap::new();
    let mut hosts = BTreeSet::new();
    let mut conn = Conn::open(addr).await;
    let mut oriented = 0;
    for q in ["George Harrison", "cathedral"] {
        let v = ddg_page(addr, q, 0).await.json();
        for r in v["results"].as_array().unwrap().iter().take(80) {
            let url = r["image"].as_str().unwrap();
            let (host, path) = split_url(url);
            hosts.insert(host.clone());
            let resp = conn.get(&host, &path, &[]).await;
            assert_eq!(resp.status, 200);
            let b = &resp.body;
            let kind = if b.starts_with(&[0xFF, 0xD8]) {
                if b.windows(2).any(|w| w == [0xFF, 0xC2]) {
                    "jpeg progressive"
                } else {
                    "jpeg baseline"
                }
            } else if b.starts_with(b"\x89PNG") {
                "png"
            } else if b.starts_with(b"RIFF") {
                "webp"
            } else if b.starts_with(b"GIF8") {
                "gif"
            } else {
                panic!("{url}: unknown format")
            };
            *formats.entry(kind).or_insert(0) += 1;
            let t = truth(addr, url).await;
            let shown = lennonnet_mirror::sheet::decode_oriented_bytes(b).unwrap();
            assert_eq!(
                (shown.width() as u64, shown.height() as u64),
                (t["width"].as_u64().unwrap(), t["height"].as_u64().unwrap()),
                "{url}"
            );
            assert!(
                (200..=2000).contains(&shown.width().max(shown.height())),
                "{url}"
            );
            if t["orientation"] != 1 {
                oriented += 1;
                assert!(b.windows(6).any(|w| w == b"Exif\0\0"));
            }
            assert_eq!(r["width"], t["width"]);
        }
    }
    assert_eq!(formats.len(), 5, "{formats:?}");
    assert!(formats["jpeg baseline"] > formats["png"], "{formats:?}");
    assert!(oriented > 0);
    assert!(hosts.len() >= 20, "{} hosts", hosts.len());
    // Thumbnails answer on their hosts, pages on theirs, engines on the bare address.
    let v = ddg_page(addr, "George Harrison", 0).await.json();
    let thumb = get_url(addr, v["results"][0]["thumbnail"].as_str().unwrap()).await;
    assert_eq!(thumb.status, 200);
    assert!(image::load_from_memory(&thumb.body).unwrap().width() <= 250);
    assert_eq!(
        get_url(addr, v["results"][0]["url"].as_str().unwrap())
            .await
            .status,
        200
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truth_is_served_and_generate_writes_the_same() {
    let mut c = quiet(9);
    c.noise.not_found = 0.2;
    c.noise.resized = 0.2;
    let m = serve(c.clone()).await;
    let addr = m.addr;
    let v = ddg_page(addr, "Ringo Starr", 0).await.json();
    let first = v["results"][0]["image"].as_str().unwrap().to_string();
    let t = truth(addr, &first).await;
    assert_eq!(t["url"], first.as_str());
    for k in [
        "kind",
        "name",
        "identities",
        "original",
        "variant",
        "noise",
        "format",
        "width",
        "height",
    ] {
        assert!(t.get(k).is_some(), "{k} in {t}");
    }
    let jsonl = get(
        addr,
        "127.0.0.1",
        "/_mirror/truth.jsonl?engine=duckduckgo&q=Ringo+Starr&limit=100",
        &[],
    )
    .await
    .text();
    let served: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(served.len(), 100);
    assert_eq!(served[0]["url"], first.as_str());
    assert_eq!(
        get(
            addr,
            "127.0.0.1",
            "/_mirror/truth?url=http://img01.mirror.test/x/y/z.jpg",
            &[]
        )
        .await
        .status,
        404
    );

    // generate: the same truth, on the server's port, and a file for each picture.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(c, None);
    let q = vec![(
        lennonnet_core::EngineKind::DuckDuckGo,
        "Ringo Starr".to_string(),
    )];
    let summary = lennonnet_mirror::generate::generate(
        &world,
        &q,
        100,
        addr.port(),
        dir.path(),
        2,
        &lennonnet_core::NoProgress,
    )
    .unwrap();
    assert_eq!(summary.urls, 100);
    let text = std::fs::read_to_string(dir.path().join("truth.jsonl")).unwrap();
    let written: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (w, s) in written.iter().zip(&served) {
        for k in ["url", "original", "variant", "noise", "kind", "name"] {
            assert_eq!(w[k], s[k]);
        }
        match w.get("file").and_then(Value::as_str) {
            Some(f) => {
                let bytes = std::fs::read(dir.path().join(f)).unwrap();
                if w["noise"] == "none" {
                    assert_eq!(get_url(addr, w["url"].as_str().unwrap()).await.body, bytes);
                }
            }
            None => assert_eq!(w["noise"], "not_found"),
        }
    }
    // A contact sheet of what was written.
    let out = dir.path().join("sheet.png");
    let n = lennonnet_mirror::sheet::write_sheet(
        &[dir.path().join("images")],
        &out,
        &lennonnet_mirror::sheet::SheetOptions {
            columns: 5,
            limit: 10,
            thumb_px: 64,
        },
        2,
    )
    .unwrap();
    assert_eq!(n, 10);
    let sheet = image::open(&out).unwrap();
    assert_eq!(sheet.width(), 5 * (64 + 6) + 6);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corpus_is_served_with_the_same_machinery() {
    let dir = tempfile::tempdir().unwrap();
    for (group, color) in [("cats", [200u8, 100, 50]), ("john", [20, 20, 220])] {
        std::fs::create_dir_all(dir.path().join(group)).unwrap();
        for i in 0..3 {
            let img = image::RgbImage::from_pixel(40 + i, 30, image::Rgb(color));
            img.save(dir.path().join(group).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(dir.path().join("cats/notes.txt"), "not an image").unwrap();
    let mut c = quiet(4);
    c.noise.resized = 0.3;
    let world = lennonnet_mirror::load_world(None, Some(4), Some(dir.path())).unwrap();
    let world = World::new(WorldConfig { seed: 4, ..c }, world.corpus);
    let m = start(world, "127.0.0.1:0".parse().unwrap(), &Options::default())
        .await
        .unwrap();
    let v = ddg_page(m.addr, "cats photo", 0).await.json();
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    let mut resized = 0;
    for r in results.iter().take(40) {
        let url = r["image"].as_str().unwrap();
        let t = truth(m.addr, url).await;
        assert_eq!(t["kind"], "corpus");
        assert_eq!(t["name"], "cats");
        let body = get_url(m.addr, url).await.body;
        let img = image::load_from_memory(&body).unwrap().to_rgb8();
        assert!(
            img.get_pixel(img.width() / 2, img.height() / 2)[0] > 150,
            "a cat picture"
        );
        if t["variant"] == "original" {
            let file = t["original"]
                .as_str()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .to_string();
            assert_eq!(
                body,
                std::fs::read(dir.path().join("cats").join(file)).unwrap()
            );
        } else {
            resized += 1;
        }
    }
    assert!(resized > 0);
    // A [[subject]] rule's folder: "john lennon" finds the john folder.
    let v = ddg_page(m.addr, "John Lennon", 0).await.json();
    let t = truth(m.addr, v["results"][0]["image"].as_str().unwrap()).await;
    assert_eq!(t["name"], "john");
    m.shutdown().await;
}

/// The default ("kind") world answers a strict client's requests byte for byte as the mirror
/// did before the strict profile existed (the digest was taken from that code): browser
/// headers, compression offers, `iiurlwidth=320` and `maxlag` change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kind_profile_answers_as_it_always_did() {
    let m = serve(WorldConfig::default()).await;
    let a = m.addr;
    // URLs name the port, as `:PORT` and percent-encoded in Bing's detail links.
    let port = |s: &str| {
        s.replace(&format!(":{}", a.port()), ":P")
            .replace(&format!("%3a{}", a.port()), "%3aP")
    };
    let browser = [
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        ),
        ("accept", "*/*"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://duckduckgo.com/"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-origin"),
    ];
    let bot = [("user-agent", UA), ("accept-encoding", "gzip, br")];
    let mut digest = blake3::Hasher::new();
    let mut log = |r: &Reply| {
        digest.update(&r.status.to_le_bytes());
        for h in [
            "content-type",
            "content-encoding",
            "content-length",
            "location",
            "retry-after",
        ] {
            digest.update(port(&r.header(h).unwrap_or_default()).as_bytes());
        }
        if r.header("content-type")
            .is_some_and(|t| t.starts_with("image/"))
        {
            digest.update(&r.body);
        } else {
            digest.update(port(&r.text()).as_bytes());
        }
    };
    let ddg = "duckduckgo.mirror.test";
    let page = get(a, ddg, "/?q=John+Lennon&iar=images&t=h_", &browser).await;
    log(&page);
    let vqd = vqd_of(&page.text()).unwrap();
    let mut images = Vec::new();
    for s in [0, 100] {
        let path = format!("/i.js?o=json&q=John%20Lennon&l=us-en&vqd={vqd}&p=1&s={s}");
        let r = get(a, ddg, &path, &browser).await;
        log(&r);
        images.extend(
            r.json()["results"]
                .as_array()
                .unwrap()
                .iter()
                .take(3)
                .map(|v| v["image"].as_str().unwrap().to_string()),
        );
    }
    for (path, headers) in [
        ("/images/async?q=red+car&first=1&count=35", &browser[..]),
        ("/images/async?q=red+car&first=36&count=35", &[][..]),
        ("/images/async?q=red+car&first=5000&count=35", &browser[..]),
    ] {
        log(&get(a, "bing.mirror.test", path, headers).await);
    }
    let commons = "/w/api.php?action=query&format=json&generator=search&gsrsearch=filetype%3Abitmap%20John%20Lennon&gsrnamespace=6&gsrlimit=50&prop=imageinfo&iiprop=url%7Csize%7Cmime%7Cextmetadata&iiurlwidth=320&maxlag=5";
    let r = get(a, "commons.mirror.test", commons, &bot).await;
    log(&r);
    let v = r.json();
    let mut pages: Vec<&Value> = v["query"]["pages"].as_object().unwrap().values().collect();
    pages.sort_by_key(|p| p["index"].as_u64());
    images.extend(
        pages
            .iter()
            .take(3)
            .map(|p| p["imageinfo"][0]["url"].as_str().unwrap().to_string()),
    );
    log(&get(a, "commons.mirror.test", commons, &[]).await);
    for url in &images {
        let (host, path) = split_url(url);
        log(&get(a, &host, &path, &bot).await);
    }
    log(&get(a, "127.0.0.1", "/_mirror/world", &[]).await);
    let digest = digest.finalize().to_hex().to_string();
    println!("kind digest {digest}");
    assert_eq!(digest, KIND_DIGEST);
    m.shutdown().await;
}

const KIND_DIGEST: &str = "7c3c6ffe3a4517384cdc6b77b14bd1b573cf630c15835ce69e3e34b8438b12e2";
