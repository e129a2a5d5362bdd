//! The scrape pipeline against the offline mirror, in process, on loopback.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use lennonnet_config::Config;
use lennonnet_core::{ContentId, NoProgress};
use lennonnet_fetch::Fetcher;
use lennonnet_mirror::{Options, load_world, start};
use lennonnet_scrape::{Report, Scraper};
use lennonnet_search::Searcher;
use lennonnet_store::{Animated, Rules, Store};

/// A small plan against the mirror on `port`, with its dataset under `root`.
fn config(port: u16, root: &Path) -> Config {
    config_with(port, root, 2, 8)
}

/// The small plan with a first-byte timeout and a window of the caller's choice.
fn config_with(port: u16, root: &Path, first_byte_secs: u32, prefetch_per_group: u32) -> Config {
    let src = format!(
        r#"
[dataset]
name = "t"
root_dir = {root:?}

{client}
[fetch]
concurrency = 32
per_host_concurrency = 4
per_host_requests_per_sec = 1000.0
first_byte_timeout_secs = {first_byte_secs}
total_timeout_secs = 5
stall_window_secs = 1
max_retries = 1
retry_base_delay_ms = 10

[scrape]
groups_in_parallel = 4
prefetch_per_group = {prefetch_per_group}

[[class]]
name = "john"

[[class]]
name = "not_john"

[[group]]
name = "john"
label = "john"
wanted = 40
queries = ["John Lennon", "John Lennon portrait"]

[[group]]
name = "paul"
label = "not_john"
wanted = 15
queries = ["Paul McCartney"]

[[group]]
name = "person"
label = "not_john"
wanted = 15
queries = ["person"]

[[group]]
name = "word_teapot"
label = "not_john"
wanted = 10
queries = ["teapot"]

[split]
key = "k"
val_fraction = 0.1
"#,
        client = lennonnet_mirror::client_config(port, &["duckduckgo", "bing"]),
        root = root.to_str().unwrap()
    );
    lennonnet_config::parse(&src, Path::new("test.toml")).unwrap()
}

fn open(config: &Config) -> Store {
    let rules = Rules {
        min_side_px: config.image.min_side_px,
        max_pixels: config.image.max_pixels,
        animated: Animated::FirstFrame,
    };
    Store::open(&config.dataset_dir(), rules).unwrap()
}

async fn scrape(config: &Config, store: Arc<Store>) -> Report {
    let scraper = Scraper::new(
        Arc::new(config.clone()),
        store,
        Arc::new(Fetcher::new(&config.fetch, &config.http).unwrap()),
        Arc::new(Searcher::from_config(&config.http, &config.engines).unwrap()),
        Arc::new(NoProgress),
    );
    scraper.run(&lennonnet_plan::plan(config)).await.unwrap()
}

fn objects(store: &Store) -> BTreeSet<ContentId> {
    store.images().map(|r| r.unwrap().0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_fill_every_candidate_is_accounted_for_and_a_rerun_fetches_nothing() {
    let world = load_world(None, Some(7), None).unwrap();
    let mirror = start(world, "127.0.0.1:0".parse().unwrap(), &Options::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(mirror.addr.port(), dir.path());

    let store = Arc::new(open(&config));
    let first = scrape(&config, store.clone()).await;
    for g in &first.groups {
        assert_eq!(g.got, g.wanted, "{}: {g:?}", g.group);
        let accounted = g.got as u64
            + g.duplicates
            + g.rejected.values().sum::<u64>()
            + g.failed.values().sum::<u64>();
        assert_eq!(
            accounted, g.candidates,
            "{}: every candidate is stored, a duplicate, rejected or failed",
            g.group
        );
        assert!(g.query_errors.is_empty(), "{:?}", g.query_errors);
    }
    let held = objects(&store);
    assert!(held.len() >= 70, "{}", held.len());
    drop(store);

    // A rerun resolves every candidate from the journal: nothing new is fetched or stored.
    let store = Arc::new(open(&config));
    let second = scrape(&config, store.clone()).await;
    for (a, b) in first.groups.iter().zip(&second.groups) {
        assert_eq!(b.got, a.got);
        assert_eq!(b.resumed, b.candidates, "{}: rerun fetched again", b.group);
        assert_eq!(b.new, 0);
    }
    assert_eq!(objects(&store), held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_from_scratch_end_with_the_same_objects() {
    let world = load_world(None, Some(11), None).unwrap();
    let mirror = start(world, "127.0.0.1:0".parse().unwrap(), &Options::default())
        .await
        .unwrap();
    let mut sets = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let config = config(mirror.addr.port(), dir.path());
        let store = Arc::new(open(&config));
        scrape(&config, store.clone()).await;
        sets.push(objects(&store));
    }
    assert_eq!(
        sets[0], sets[1],
        "which images a group keeps depends on timing"
    );
}

/// Storing ahead of a slow candidate must not change what a group ends with: with many slow
/// and dead links, a wide window ends with the same objects and the same per-group counts as a
/// window of one (which stores strictly in order, one candidate at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_ahead_of_slow_links_ends_like_storing_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let world_file = dir.path().join("world.toml");
    std::fs::write(
        &world_file,
        "[search]\nburst_limit = 0\nddg_anomaly = 0.0\nddg_missing_vqd = 0.0\n\
         [noise]\nslow_first_byte = 0.05\nnot_found = 0.1\ntruncated = 0.05\n\
         [timing]\nslow_first_byte_ms = 4000\n",
    )
    .unwrap();
    let world = load_world(Some(&world_file), Some(12), None).unwrap();
    let mirror = start(world, "127.0.0.1:0".parse().unwrap(), &Options::default())
        .await
        .unwrap();
    let mut runs = Vec::new();
    for window in [1, 64] {
        let dir = tempfile::tempdir().unwrap();
        // A 2 s first-byte timeout against 4 s slow links: wide enough on both sides that a
        // loaded machine's slow render is not taken for a slow link.
        let config = config_with(mirror.addr.port(), dir.path(), 2, window);
        let store = Arc::new(open(&config));
        let report = scrape(&config, store.clone()).await;
        let counts: Vec<_> = report
            .groups
            .iter()
            .map(|g| {
                (
                    g.group.to_string(),
                    g.got,
                    g.candidates,
                    g.duplicates,
                    g.rejected.clone(),
                    g.failed.clone(),
                )
            })
            .collect();
        runs.push((objects(&store), counts));
    }
    let slow: u64 = runs[1]
        .1
        .iter()
        .map(|c| {
            c.5.get(&lennonnet_core::FailureReason::FirstByteTimeout)
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(slow > 0, "the drill had no slow link: {:?}", runs[1].1);
    assert_eq!(runs[0].1, runs[1].1, "per-group counts differ");
    assert_eq!(
        runs[0].0, runs[1].0,
        "storing ahead changed which images the groups ended with"
    );
}

/// A Bing-like engine on loopback that lists `thumbs` (real pictures on the mirror) as the
/// thumbnails of originals on a host that refuses them (403, as hotlink protection does).
async fn hotlinked_engine(thumbs: Vec<String>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let me = base.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let thumbs = thumbs.clone();
            let me = me.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = if target.starts_with("/images/async") {
                    let body = if target.contains("first=1&") {
                        let anchors: String = thumbs
                            .iter()
                            .enumerate()
                            .map(|(i, t)| {
                                format!(
                                    "<li><a class=\"iusc\" m=\"{{&quot;murl&quot;:&quot;{me}/hotlink/{i}.jpg&quot;,&quot;turl&quot;:&quot;{t}&quot;}}\"></a></li>"
                                )
                            })
                            .collect();
                        format!("<ul class=\"dgControl_list\">{anchors}</ul>")
                    } else {
                        String::new()
                    };
                    ("200 OK", body)
                } else {
                    (
                        "403 Forbidden",
                        "<html><body>Hotlinking is not allowed</body></html>".into(),
                    )
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_original_is_replaced_by_the_engines_thumbnail_when_the_group_accepts_it() {
    let world = load_world(None, Some(7), None).unwrap();
    let mirror = start(world, "127.0.0.1:0".parse().unwrap(), &Options::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = config(mirror.addr.port(), dir.path());
    // Real pictures: the mirror's Bing results for a word.
    let searcher = Searcher::from_config(&base.http, &base.engines).unwrap();
    let (found, _, _) = searcher
        .search(
            lennonnet_core::EngineKind::Bing,
            "teapot",
            lennonnet_core::QueryId("q".into()),
            30,
        )
        .await
        .unwrap();
    let thumbs: Vec<String> = found.into_iter().map(|c| c.image_url).collect();
    let engine = hotlinked_engine(thumbs.clone()).await;

    let src = format!(
        r#"
[dataset]
name = "t"
root_dir = {root:?}

{client}
[engines]
order = ["bing"]

[engines.bing]
base_url = "{engine}"
requests_per_sec = 1000.0

[fetch]
per_host_requests_per_sec = 1000.0
first_byte_timeout_secs = 2
total_timeout_secs = 5
max_retries = 1
retry_base_delay_ms = 10

[[class]]
name = "a"

[[class]]
name = "b"

[[group]]
name = "thumbs"
label = "a"
wanted = 8
queries = ["teapot"]
accept_thumbnails = true

[[group]]
name = "originals_only"
label = "b"
wanted = 8
queries = ["teapot"]

[split]
key = "k"
val_fraction = 0.1
"#,
        root = dir.path().to_str().unwrap(),
        client = lennonnet_mirror::client_config(mirror.addr.port(), &[])
            .replace("[engines]\norder = []\n", ""),
    );
    let config = lennonnet_config::parse(&src, Path::new("test.toml")).unwrap();
    let store = Arc::new(open(&config));
    let report = scrape(&config, store.clone()).await;
    let thumbs_group = &report.groups[0];
    assert_eq!(thumbs_group.got, 8, "{thumbs_group:?}");
    // Without accept_thumbnails every original's refusal is the candidate's outcome.
    let originals = &report.groups[1];
    assert_eq!(originals.got, 0, "{originals:?}");
    assert_eq!(
        originals
            .failed
            .get(&lennonnet_core::FailureReason::Http4xx),
        Some(&originals.candidates)
    );
    // Every image of the first group came as the thumbnail of a refused original.
    for id in objects(&store) {
        for p in store.provenance(&id).unwrap() {
            assert_eq!(p.group.as_str(), "thumbs");
            assert!(thumbs.contains(&p.image_url), "{}", p.image_url);
            let original = p.thumbnail_of.as_deref().expect("thumbnail_of");
            assert!(
                original.starts_with(&format!("{engine}/hotlink/")),
                "{original}"
            );
        }
    }
    assert_eq!(objects(&store).len(), 8);
}
