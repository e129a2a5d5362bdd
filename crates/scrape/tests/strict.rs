//! The client against the mirror's strict behaviours, one at a time and all together: each
//! happens (the engine's figures show it) and the client copes (the search or scrape still gets
//! its images). The mirror's own tests show each behaviour refusing a client that lacks what it
//! asks for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lennonnet_config::Config;
use lennonnet_core::{EngineKind, NoProgress, QueryId};
use lennonnet_fetch::Fetcher;
use lennonnet_mirror::{Options, WorldConfig, start, world::World};
use lennonnet_scrape::{Report, Scraper};
use lennonnet_search::{EngineStats, SearchError, Searcher, Stop};
use lennonnet_store::{Animated, Rules, Store};

/// A mirror whose world is the default with `tune` applied to its `[search]`.
async fn mirror(
    tune: impl FnOnce(&mut lennonnet_mirror::config::SearchConfig),
) -> lennonnet_mirror::Running {
    let mut config = WorldConfig {
        seed: 11,
        ..WorldConfig::default()
    };
    tune(&mut config.search);
    start(
        World::new(config, None),
        "127.0.0.1:0".parse().unwrap(),
        &Options::default(),
    )
    .await
    .unwrap()
}

/// A config against the mirror on `port`: `extra` is TOML added after the client sections.
fn config(port: u16, root: &Path, extra: &str, groups: &str) -> Config {
    let src = format!(
        r#"
[dataset]
name = "t"
root_dir = {root:?}

{client}
{extra}

[fetch]
concurrency = 32
per_host_concurrency = 8
per_host_requests_per_sec = 1000.0
first_byte_timeout_secs = 2
total_timeout_secs = 5
stall_window_secs = 1
max_retries = 1
retry_base_delay_ms = 10

[[class]]
name = "john"

[[class]]
name = "not_john"

{groups}

[split]
key = "k"
val_fraction = 0.1
"#,
        client =
            lennonnet_mirror::client_config(port, &["duckduckgo", "bing", "wikimedia_commons"]),
        root = root.to_str().unwrap()
    );
    lennonnet_config::parse(&src, Path::new("strict.toml")).unwrap()
}

const ONE_GROUP: &str = r#"
[[group]]
name = "john"
label = "john"
wanted = 10
queries = ["John Lennon"]

[[group]]
name = "paul"
label = "not_john"
wanted = 10
queries = ["Paul McCartney"]
"#;

fn stats(searcher: &Searcher, engine: EngineKind) -> EngineStats {
    searcher
        .engine_stats()
        .into_iter()
        .find(|s| s.engine == engine)
        .unwrap()
}

async fn search(
    searcher: &Searcher,
    engine: EngineKind,
    query: &str,
    wanted: u32,
) -> Result<(usize, Stop), SearchError> {
    searcher
        .search(engine, query, QueryId("q".into()), wanted)
        .await
        .map(|(c, _, stop)| (c.len(), stop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckduckgo_browser_headers_and_user_agent_tokens_are_satisfied() {
    let m = mirror(|s| {
        s.ddg_require_browser_headers = Some(true);
        s.ddg_vqd_per_user_agent = Some(true);
        s.ddg_anomaly = 0.0;
        s.ddg_missing_vqd = 0.0;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(m.addr.port(), dir.path(), "", ONE_GROUP);
    let searcher = Searcher::from_config(&c.http, &c.engines).unwrap();
    let (n, _) = search(&searcher, EngineKind::DuckDuckGo, "John Lennon", 250)
        .await
        .unwrap();
    assert_eq!(n, 250);
    let s = stats(&searcher, EngineKind::DuckDuckGo);
    assert_eq!(
        (s.blocks, s.rate_limits, s.token_refreshes),
        (0, 0, 0),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckduckgo_challenges_and_redirects_are_blocks_the_client_retries() {
    let m = mirror(|s| {
        s.ddg_challenge_later_pages = Some(0.3);
        s.ddg_redirect_to_challenge = Some(0.1);
        s.ddg_anomaly = 0.0;
        s.ddg_missing_vqd = 0.0;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(m.addr.port(), dir.path(), "", ONE_GROUP);
    let mut options = lennonnet_search::SearchOptions::new(5);
    options.backoff_base = Duration::from_millis(20);
    let searcher = Searcher::new(&c.http, &c.engines, options).unwrap();
    let mut got = 0;
    for q in [
        "John Lennon",
        "Paul McCartney",
        "George Harrison",
        "Ringo Starr",
    ] {
        if let Ok((n, _)) = search(&searcher, EngineKind::DuckDuckGo, q, 500).await {
            got += n;
        }
    }
    let s = stats(&searcher, EngineKind::DuckDuckGo);
    assert!(s.blocks > 0, "no challenge or redirect was seen: {s:?}");
    assert!(got >= 1500, "{got} candidates; {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duckduckgo_block_after_a_burst_takes_it_down_and_groups_fall_through_to_bing() {
    // 5 requests in 10 s start a block of an hour on a clock 400 times fast: nine seconds, long
    // beside the breaker's three refusals (backoff 1 s, then 2 s) even on a loaded machine.
    let m = mirror(|s| {
        s.burst_limit = 5;
        s.ddg_block_secs = Some(3600);
        s.clock_scale = Some(400.0);
        s.ddg_anomaly = 0.0;
        s.ddg_missing_vqd = 0.0;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let groups = r#"
[[group]]
name = "john"
label = "john"
wanted = 300
queries = ["John Lennon", "John Lennon portrait", "John Lennon 1970s"]

[[group]]
name = "paul"
label = "not_john"
wanted = 20
queries = ["Paul McCartney"]
"#;
    // The cool-down on the parsed config (the client sections already name the engine).
    let mut c = config(m.addr.port(), dir.path(), "", groups);
    c.engines.duckduckgo.cooldown_secs = Some(2);
    c.engines.strategy = lennonnet_config::EngineStrategy::Fallback;
    let report = scrape(&c).await;
    let ddg = report
        .engines
        .iter()
        .find(|e| e.engine == EngineKind::DuckDuckGo)
        .unwrap();
    let bing = report
        .engines
        .iter()
        .find(|e| e.engine == EngineKind::Bing)
        .unwrap();
    assert!(ddg.cooldowns >= 1, "{ddg:?}");
    assert!(
        bing.candidates > 0,
        "no group fell through to Bing: {bing:?}"
    );
    for g in &report.groups {
        assert_eq!(g.got, g.wanted, "{g:?}");
    }
    assert!(
        report
            .groups
            .iter()
            .flat_map(|g| &g.query_errors)
            .any(|e| e.blocked),
        "{:?}",
        report.groups
    );
    // Once the block is over DuckDuckGo answers again.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let searcher = Searcher::from_config(&c.http, &c.engines).unwrap();
    let (n, _) = search(&searcher, EngineKind::DuckDuckGo, "teapot", 10)
        .await
        .unwrap();
    assert_eq!(n, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bing_gives_full_pages_to_a_browser_with_compression_and_its_repeated_last_page_ends_paging()
 {
    let m = mirror(|s| {
        s.bing_require_browser = Some(true);
        s.compress_responses = Some(true);
        s.bing_repeat_last_page = Some(true);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(m.addr.port(), dir.path(), "", ONE_GROUP);
    let searcher = Searcher::from_config(&c.http, &c.engines).unwrap();
    let (n, stop) = search(&searcher, EngineKind::Bing, "John Lennon", 100)
        .await
        .unwrap();
    assert_eq!((n, stop), (100, Stop::Wanted));
    let s = stats(&searcher, EngineKind::Bing);
    assert!(s.pages <= 3, "shortchanged: {s:?}");
    // Past the end Bing repeats its last page: paging ends there, not with an error.
    let (n, stop) = search(&searcher, EngineKind::Bing, "teapot", 100_000)
        .await
        .unwrap();
    assert!(n > 0);
    assert_eq!(stop, Stop::NoNew);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commons_maxlag_thumbnails_and_the_file_hosts_limit_are_respected() {
    let m = mirror(|s| {
        s.commons_maxlag = Some(0.5);
        s.commons_file_concurrency = Some(2);
        s.commons_strict_thumb_widths = Some(true);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let groups = r#"
[[group]]
name = "john"
label = "john"
wanted = 120
queries = ["John Lennon"]
engines = ["wikimedia_commons"]

[[group]]
name = "paul"
label = "not_john"
wanted = 60
queries = ["Paul McCartney"]
engines = ["wikimedia_commons"]
"#;
    let mut c = config(m.addr.port(), dir.path(), "", groups);
    c.fetch.host_concurrency = [("upload.mirror.test".to_string(), 2)].into();
    let report = scrape(&c).await;
    let wmc = report
        .engines
        .iter()
        .find(|e| e.engine == EngineKind::WikimediaCommons)
        .unwrap();
    assert!(wmc.rate_limits > 0, "no maxlag answer was seen: {wmc:?}");
    assert_eq!(wmc.cooldowns, 0, "{wmc:?}");
    for g in &report.groups {
        assert!(
            !g.failed
                .contains_key(&lennonnet_core::FailureReason::RateLimited),
            "{g:?}"
        );
        assert!(
            !g.failed
                .contains_key(&lennonnet_core::FailureReason::Http4xx),
            "thumbnail widths: {g:?}"
        );
        assert!(g.got > 0, "{g:?}");
    }
}

async fn scrape(config: &Config) -> Report {
    let rules = Rules {
        min_side_px: config.image.min_side_px,
        max_pixels: config.image.max_pixels,
        animated: Animated::FirstFrame,
    };
    let store = Arc::new(Store::open(&config.dataset_dir(), rules).unwrap());
    let scraper = Scraper::new(
        Arc::new(config.clone()),
        store,
        Arc::new(Fetcher::new(&config.fetch, &config.http).unwrap()),
        Arc::new(Searcher::from_config(&config.http, &config.engines).unwrap()),
        Arc::new(NoProgress),
    );
    scraper.run(&lennonnet_plan::plan(config)).await.unwrap()
}
