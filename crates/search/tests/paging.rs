//! The paging driver against a tiny in-process HTTP server on 127.0.0.1: paging to the wanted
//! count and to the cap, stopping when nothing new comes, loop detection, rate limits waited
//! out, errors surfacing with their URL, pacing, the requests the engines expect, redirects and
//! HTML read as blocks, the circuit breaker, DuckDuckGo's token cache and refresh, unrecognised
//! pages saved and counted. No test touches the real network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lennonnet_config::{BROWSER_USER_AGENT, EngineConfig, EnginesConfig, HttpConfig};
use lennonnet_core::{Candidate, EngineKind, QueryId};
use lennonnet_search::{
    EngineError, PagerStats, SearchError, SearchOptions, Searcher, Stop, TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One answer of the test server.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn ok(body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.into(),
    }
}

/// A request the server saw: path and query, headers (lowercase names), when.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: HashMap<String, String>,
    at: Instant,
}

impl Seen {
    fn param(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://x{}", self.target)).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

type Handler = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// Starts a loopback HTTP/1.1 server; `handler` gets each request and its 0-based number.
async fn serve(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let seen_log = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = seen_log.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let mut lines = head.split("\r\n");
                let target = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("/")
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let seen = Seen {
                    target,
                    headers,
                    at: Instant::now(),
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(seen.clone());
                    log.len() - 1
                };
                let reply = handler(&seen, n);
                let mut out = format!(
                    "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    out += &format!("{k}: {v}\r\n");
                }
                out += "\r\n";
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.write_all(&reply.body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (base, log)
}

const UA: &str = "lennonnet-tests/1 (paging driver tests; +https://example.invalid)";

fn searcher(base: &str, max_results: u32, requests_per_sec: f64) -> Searcher {
    searcher_with(base, max_results, requests_per_sec, |_| {}, |_| {})
}

/// A searcher whose engine settings and options `tune` and `options` may change.
fn searcher_with(
    base: &str,
    max_results: u32,
    requests_per_sec: f64,
    tune: impl Fn(&mut EngineConfig),
    options: impl FnOnce(&mut SearchOptions),
) -> Searcher {
    let http = HttpConfig {
        user_agent: UA.into(),
        ..HttpConfig::default()
    };
    let mut engine = EngineConfig {
        base_url: Some(base.to_string()),
        requests_per_sec: Some(requests_per_sec),
        max_results: Some(max_results),
        timeout_secs: Some(5),
        max_pages: Some(0),
        ..EngineConfig::default()
    };
    tune(&mut engine);
    let engines = EnginesConfig {
        max_retries: 3,
        duckduckgo: engine.clone(),
        bing: engine.clone(),
        wikimedia_commons: engine,
        ..EnginesConfig::default()
    };
    let mut o = SearchOptions {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(2),
        ..SearchOptions::new(engines.max_retries)
    };
    options(&mut o);
    Searcher::new(&http, &engines, o).unwrap()
}

type Outcome = Result<(Vec<Candidate>, PagerStats, Stop), SearchError>;

/// Runs one search against `handler` and returns its outcome and the requests the server saw.
async fn run(
    engine: EngineKind,
    handler: Handler,
    wanted: u32,
    max_results: u32,
) -> (Outcome, Vec<Seen>) {
    let (base, log) = serve(handler).await;
    let searcher = searcher(&base, max_results, 1000.0);
    let outcome = searcher
        .search(engine, "john lennon", QueryId("q-test".into()), wanted)
        .await;
    let seen = log.lock().unwrap().clone();
    (outcome, seen)
}

/// What a search should end with.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Distinct candidates, why paging stopped, requests sent.
    Done(usize, Stop, u32),
    /// Candidates found before the failure are not returned by `search`; the error's parser
    /// verdict (or `None` for a transport failure) and the attempts of the failing request.
    Failed(Option<EngineError>, u32),
    /// The circuit breaker took the engine down after this many blocks in a row.
    Down(u32),
}

/// The one helper the table-like tests go through: checks the outcome's shape and the
/// invariants of every successful search (distinct image URLs, ranks 1..n, the query id).
fn check(outcome: &Outcome, expected: Expect) {
    let got = match outcome {
        Ok((candidates, stats, stop)) => {
            let mut urls: Vec<_> = candidates.iter().map(|c| &c.image_url).collect();
            urls.sort();
            urls.dedup();
            assert_eq!(urls.len(), candidates.len(), "duplicate image URLs");
            for (i, c) in candidates.iter().enumerate() {
                assert_eq!(c.rank as usize, i + 1);
                assert_eq!(c.query_id, Some(QueryId("q-test".into())));
            }
            Expect::Done(candidates.len(), *stop, stats.requests)
        }
        Err(SearchError::Engine {
            source, attempts, ..
        }) => Expect::Failed(Some(source.clone()), *attempts),
        Err(SearchError::Transport { attempts, .. }) => Expect::Failed(None, *attempts),
        Err(SearchError::Down { blocks, .. }) => Expect::Down(*blocks),
        Err(e) => panic!("unexpected error {e:?}"),
    };
    assert_eq!(got, expected);
}

/// A Bing results page: `n` anchors whose image URLs are numbered from `from`.
fn bing_page(from: u32, n: u32) -> String {
    let mut html = String::from("<ul class=\"dgControl_list\">");
    for i in from..from + n {
        html += &format!(
            "<li><div class=\"imgpt\"><a class=\"iusc\" m=\"{{&quot;murl&quot;:&quot;http://img.test/{i}.jpg&quot;,&quot;purl&quot;:&quot;http://page.test/{i}&quot;,&quot;t&quot;:&quot;image {i}&quot;}}\" href=\"/images/search?expw=640&amp;exph=480\"></a></div></li>"
        );
    }
    html + "</ul>"
}

/// A Bing engine with `total` results: each page starts at the request's `first`.
fn bing_engine(total: u32) -> Handler {
    Arc::new(move |seen, _| {
        let first: u32 = seen.param("first").unwrap().parse().unwrap();
        let count: u32 = seen.param("count").unwrap().parse().unwrap();
        let n = (total + 1).saturating_sub(first).min(count);
        if n == 0 {
            ok("")
        } else {
            ok(bing_page(first, n))
        }
    })
}

#[tokio::test]
async fn pages_to_the_wanted_count() {
    let (outcome, seen) = run(EngineKind::Bing, bing_engine(1000), 100, 1000).await;
    check(&outcome, Expect::Done(100, Stop::Wanted, 3));
    let firsts: Vec<_> = seen.iter().map(|s| s.param("first").unwrap()).collect();
    assert_eq!(firsts, ["1", "36", "71"]);
    let (candidates, _, _) = outcome.unwrap();
    assert_eq!(candidates[99].image_url, "http://img.test/100.jpg");
    assert_eq!(
        (candidates[0].width, candidates[0].height),
        (Some(640), Some(480))
    );
    // Bing gets a browser's User-Agent (it shortchanges others), compression and the market.
    for s in &seen {
        assert_eq!(s.headers["user-agent"], BROWSER_USER_AGENT);
        let encodings = &s.headers["accept-encoding"];
        assert!(
            encodings.contains("gzip") && encodings.contains("br"),
            "{encodings}"
        );
        assert_eq!(s.headers["accept-language"], "en-US,en;q=0.9");
        assert_eq!(s.param("async").as_deref(), Some("1"));
        assert_eq!(s.param("mkt").as_deref(), Some("en-US"));
    }
}

#[tokio::test]
async fn stops_at_the_engines_cap_and_at_the_end() {
    let (outcome, _) = run(EngineKind::Bing, bing_engine(1000), 500, 50).await;
    check(&outcome, Expect::Done(50, Stop::Cap, 2));
    // 40 results in all: page 2 has 5, page 3 is Bing's empty body.
    let (outcome, _) = run(EngineKind::Bing, bing_engine(40), 500, 1000).await;
    check(&outcome, Expect::Done(40, Stop::End, 3));
}

#[tokio::test]
async fn stops_when_a_page_brings_nothing_new() {
    // An engine that answers every `first` with the same 35 results.
    let same: Handler = Arc::new(|_, _| ok(bing_page(1, 35)));
    let (outcome, seen) = run(EngineKind::Bing, same, 300, 1000).await;
    check(&outcome, Expect::Done(35, Stop::NoNew, 2));
    assert_eq!(seen.len(), 2);
    let (_, stats, _) = outcome.unwrap();
    assert_eq!(stats.duplicates, 35);
}

/// A DuckDuckGo engine: the HTML page with the token, then i.js pages of 10 results, each
/// numbered from the request number, whose `next` is always `s=100`.
fn ddg_repeating_next() -> Handler {
    Arc::new(|seen, n| {
        if !seen.target.starts_with("/i.js") {
            return ok("<script>vqd='4-123-456';</script>");
        }
        let results: Vec<String> = (0..10)
            .map(|i| {
                format!(r#"{{"image":"http://img.test/{n}-{i}.jpg","thumbnail":"http://t.test/{n}-{i}","url":"http://p.test/{n}","title":"t","width":800,"height":600}}"#)
            })
            .collect();
        ok(format!(
            r#"{{"results":[{}],"next":"i.js?q=john+lennon&o=json&p=-1&s=100&u=bing&f=,,,,,&l=us-en","vqd":{{"john lennon":"4-123-456"}}}}"#,
            results.join(",")
        ))
    })
}

#[tokio::test]
async fn never_follows_the_same_cursor_twice() {
    let (outcome, seen) = run(EngineKind::DuckDuckGo, ddg_repeating_next(), 300, 1000).await;
    // Token page, the first i.js page (s=0), the `next` page (s=100), then `next` repeats.
    check(&outcome, Expect::Done(20, Stop::RepeatedCursor, 3));
    assert_eq!(seen[0].target, "/?q=john+lennon&iar=images&t=h_");
    assert_eq!(seen[1].param("vqd").as_deref(), Some("4-123-456"));
    assert_eq!(seen[1].param("s").as_deref(), Some("0"));
    assert_eq!(seen[2].param("vqd").as_deref(), Some("4-123-456"));
    assert_eq!(seen[2].param("s").as_deref(), Some("100"));
    // Only the offset comes from `next`: no `u`, and `f` only when a filter is set.
    assert_eq!(seen[2].param("u"), None);
    assert_eq!(seen[2].param("f"), None);
    for s in &seen[1..] {
        assert_eq!(s.param("o").as_deref(), Some("json"));
        assert_eq!(s.param("l").as_deref(), Some("us-en"));
        assert_eq!(s.param("ct").as_deref(), Some("US"));
        assert_eq!(s.param("p").as_deref(), Some("1"));
        let h = &s.headers;
        assert!(h["referer"].starts_with("http://127.0.0.1:"), "{h:?}");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h["sec-fetch-dest"], "empty");
        assert_eq!(h["sec-fetch-mode"], "cors");
        assert_eq!(h["sec-fetch-site"], "same-origin");
        assert_eq!(h["accept-language"], "en-US,en;q=0.9");
    }
    // One User-Agent for the token and the pages: the token is tied to it.
    assert!(
        seen.iter()
            .all(|s| s.headers["user-agent"] == BROWSER_USER_AGENT)
    );
}

/// A Commons engine with three batches of 2; `first_reply` answers the very first request.
fn commons_engine(first_reply: fn() -> Option<Reply>) -> Handler {
    Arc::new(move |seen, n| {
        if n == 0 {
            if let Some(r) = first_reply() {
                return r;
            }
        }
        let offset: u32 = seen.param("gsroffset").map_or(0, |o| o.parse().unwrap());
        let pages: Vec<String> = (offset..offset + 2)
            .map(|i| {
                format!(
                    r#""{}":{{"pageid":{},"ns":6,"title":"File:P{i}.jpg","index":{},"imageinfo":[{{"url":"http://up.test/{i}.jpg","descriptionurl":"http://c.test/File:P{i}.jpg","width":100,"height":80,"extmetadata":{{"LicenseShortName":{{"value":"CC0"}}}}}}]}}"#,
                    1000 + i,
                    1000 + i,
                    i + 1
                )
            })
            .collect();
        let cont = if offset + 2 < 6 {
            format!(
                r#""continue":{{"gsroffset":{},"continue":"gsroffset||"}},"#,
                offset + 2
            )
        } else {
            String::new()
        };
        ok(format!(
            r#"{{"batchcomplete":"",{cont}"query":{{"pages":{{{}}}}}}}"#,
            pages.join(",")
        ))
    })
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_paging_continues() {
    fn limited() -> Option<Reply> {
        Some(Reply {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: b"Too many requests".to_vec(),
        })
    }
    let (outcome, seen) = run(
        EngineKind::WikimediaCommons,
        commons_engine(limited),
        100,
        1000,
    )
    .await;
    check(&outcome, Expect::Done(6, Stop::End, 4));
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(990),
        "waited only {waited:?}"
    );
    assert_eq!(
        seen[0].target, seen[1].target,
        "the same request is retried"
    );
    let offsets: Vec<_> = seen.iter().map(|s| s.param("gsroffset")).collect();
    assert_eq!(offsets, [None, None, Some("2".into()), Some("4".into())]);
    let (candidates, stats, _) = outcome.unwrap();
    assert_eq!(stats.retries, 1);
    assert_eq!(
        candidates[0]
            .licence
            .as_ref()
            .unwrap()
            .short_name
            .as_deref(),
        Some("CC0")
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_a_bounded_number_of_times() {
    fn unavailable() -> Option<Reply> {
        Some(Reply {
            status: 503,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
    let (outcome, _) = run(
        EngineKind::WikimediaCommons,
        commons_engine(unavailable),
        100,
        1000,
    )
    .await;
    check(&outcome, Expect::Done(6, Stop::End, 4));

    let always_429: Handler = Arc::new(|_, _| Reply {
        status: 429,
        headers: Vec::new(),
        body: Vec::new(),
    });
    let (outcome, seen) = run(EngineKind::Bing, always_429, 100, 1000).await;
    // The breaker takes the engine down at the third rate limit in a row (block_threshold),
    // before the retries (3) are used up.
    check(&outcome, Expect::Down(3));
    assert_eq!(seen.len(), 3);

    // A Retry-After longer than the driver will wait fails at once, saying so.
    let far: Handler = Arc::new(|_, _| Reply {
        status: 429,
        headers: vec![("retry-after", "3600".into())],
        body: Vec::new(),
    });
    let (outcome, seen) = run(EngineKind::Bing, far, 100, 1000).await;
    check(
        &outcome,
        Expect::Failed(
            Some(EngineError::RateLimited {
                retry_after: Some(Duration::from_secs(3600)),
            }),
            1,
        ),
    );
    assert_eq!(seen.len(), 1);
    let err = outcome.unwrap_err();
    assert!(
        err.to_string()
            .contains("/images/async?q=john+lennon&first=1&count=35"),
        "{err}"
    );

    // DuckDuckGo's anomaly page is retried like a rate limit, then reported as a block.
    let anomaly: Handler = Arc::new(|_, _| Reply {
        status: 418,
        headers: Vec::new(),
        body: b"<div class=\"anomaly-modal__title\">Unfortunately, bots use DuckDuckGo too.</div>"
            .to_vec(),
    });
    let (outcome, seen) = run(EngineKind::DuckDuckGo, anomaly, 100, 1000).await;
    check(&outcome, Expect::Down(3));
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn changed_pages_surface_as_errors_with_their_url() {
    // Page 1 is fine, page 2 is not Bing's structure.
    let handler: Handler = Arc::new(|seen, _| {
        if seen.param("first").as_deref() == Some("1") {
            ok(bing_page(1, 35))
        } else {
            ok("<html><body><div class=\"new-grid\"><img src=\"x\"></div></body></html>")
        }
    });
    let (base, log) = serve(handler).await;
    let searcher = searcher(&base, 1000, 1000.0);
    let mut pager = searcher.pager(EngineKind::Bing, "john lennon", QueryId("q".into()), 300);
    let first = pager.next_batch().await.unwrap().unwrap();
    assert_eq!(first.len(), 35);
    let err = pager.next_batch().await.unwrap_err();
    assert!(err.is_changed(), "{err:?}");
    match &err {
        SearchError::Engine {
            engine,
            url,
            attempts,
            ..
        } => {
            assert_eq!(*engine, EngineKind::Bing);
            assert_eq!(
                *url,
                format!("{base}/images/async?q=john+lennon&first=36&count=35&async=1&mkt=en-US")
            );
            assert_eq!(*attempts, 1, "Changed is never retried");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.lock().unwrap().len(), 2);
    // The pager stays on the failed page: asking again sends the same request again.
    let again = pager.next_batch().await.unwrap_err();
    assert!(again.is_changed());
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].target, seen[1].target);
    assert_eq!(pager.stop_reason(), None);

    // A missing token is reported as such.
    let no_token: Handler = Arc::new(|_, _| ok("<html>a page without a token</html>"));
    let (outcome, _) = run(EngineKind::DuckDuckGo, no_token, 10, 1000).await;
    check(&outcome, Expect::Failed(Some(EngineError::TokenMissing), 1));
}

#[tokio::test]
async fn unreachable_engines_fail_after_the_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let searcher = searcher(&format!("http://127.0.0.1:{port}"), 1000, 1000.0);
    let outcome = searcher
        .search(
            EngineKind::Bing,
            "john lennon",
            QueryId("q-test".into()),
            10,
        )
        .await;
    check(&outcome, Expect::Failed(None, 4));
    assert!(matches!(
        outcome,
        Err(SearchError::Transport {
            source: TransportError::Request(_),
            ..
        })
    ));
}

#[tokio::test]
async fn requests_are_paced_per_engine() {
    let (base, log) = serve(bing_engine(1000)).await;
    let searcher = searcher(&base, 1000, 20.0);
    // Two queries on the same engine share its pacer.
    let (a, b) = tokio::join!(
        searcher.search(EngineKind::Bing, "a", QueryId("q-test".into()), 70),
        searcher.search(EngineKind::Bing, "b", QueryId("q-test".into()), 70),
    );
    check(&a, Expect::Done(70, Stop::Wanted, 2));
    check(&b, Expect::Done(70, Stop::Wanted, 2));
    let mut times: Vec<Instant> = log.lock().unwrap().iter().map(|s| s.at).collect();
    times.sort();
    assert_eq!(times.len(), 4);
    // 50 ms apart as sent; the server sees them with the jitter of accepting connections on a
    // loaded machine, so each gap is checked against half the interval (unpaced requests arrive
    // within a millisecond of each other) and the whole span against three intervals less 30 ms.
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(25), "gap {gap:?}");
    }
    let span = times[3] - times[0];
    assert!(span >= Duration::from_millis(120), "span {span:?}");
}

#[tokio::test]
async fn a_barren_run_of_skipped_entries_ends_paging() {
    // Commons batches that only continue another property: pages without image info.
    let handler: Handler = Arc::new(|seen, _| {
        let n: u32 = seen.param("gsroffset").map_or(0, |o| o.parse().unwrap());
        ok(format!(
            r#"{{"continue":{{"gsroffset":{},"continue":"gsroffset||"}},"query":{{"pages":{{"1":{{"pageid":1,"title":"File:A.jpg"}}}}}}}}"#,
            n + 1
        ))
    });
    let (outcome, _) = run(EngineKind::WikimediaCommons, handler, 100, 1000).await;
    check(&outcome, Expect::Done(0, Stop::NoNew, 3));
}

/// A DuckDuckGo engine whose token is `4-<n>` for the n-th token page, and whose `i.js`
/// answers `ijs(seen, request number)`.
fn ddg_engine(ijs: fn(&Seen, usize) -> Reply) -> Handler {
    let tokens = Arc::new(Mutex::new(0u32));
    Arc::new(move |seen, n| {
        if !seen.target.starts_with("/i.js") {
            let mut t = tokens.lock().unwrap();
            *t += 1;
            return ok(format!("<script>vqd='4-{t}';</script>"));
        }
        ijs(seen, n)
    })
}

fn ddg_results(n: usize, next: bool) -> Reply {
    let results: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"image":"http://img.test/{n}-{i}.jpg","title":"t"}}"#))
        .collect();
    let next = if next {
        r#","next":"i.js?q=x&o=json&p=-1&s=100&u=bing&f=,,,,,&l=us-en""#
    } else {
        ""
    };
    ok(format!(r#"{{"results":[{}]{next}}}"#, results.join(",")))
}

#[tokio::test]
async fn redirects_challenges_and_html_for_json_are_blocks() {
    // A 302 to a challenge page is a block, and is not followed.
    let redirect: Handler = Arc::new(|seen, _| {
        if seen.target.starts_with("/challenge") {
            return ok("<html><form id=\"challenge-form\"></form></html>");
        }
        Reply {
            status: 302,
            headers: vec![("location", "/challenge?x=1".into())],
            body: Vec::new(),
        }
    });
    let (outcome, seen) = run(EngineKind::Bing, redirect, 10, 1000).await;
    check(&outcome, Expect::Down(3));
    assert!(
        seen.iter().all(|s| s.target.starts_with("/images/async")),
        "redirect followed"
    );

    // DuckDuckGo's i.js answered with an HTML challenge (200): a block, not a changed format.
    let (outcome, _) = run(
        EngineKind::DuckDuckGo,
        ddg_engine(|_, _| {
            ok("<!DOCTYPE html><html><body><form id=\"challenge-form\" action=\"/anomaly.js\"></form></body></html>")
        }),
        10,
        1000,
    )
    .await;
    check(&outcome, Expect::Down(3));

    // Commons answering HTML where the API's JSON was asked for.
    let html: Handler = Arc::new(|_, _| {
        Reply {
        status: 200,
        headers: vec![("content-type", "text/html; charset=utf-8".into())],
        body: b"<!DOCTYPE html><html><head><title>Wikimedia Error</title></head><body>Too many requests</body></html>".to_vec(),
    }
    });
    let (outcome, _) = run(EngineKind::WikimediaCommons, html, 10, 1000).await;
    check(&outcome, Expect::Down(3));
}

#[tokio::test]
async fn a_down_engine_is_not_asked_until_its_cooldown_ends() {
    // Every answer is a 429 until request 3; then results.
    let handler: Handler = Arc::new(|_, n| {
        if n < 3 {
            Reply {
                status: 429,
                headers: Vec::new(),
                body: Vec::new(),
            }
        } else {
            ok(bing_page(1, 10))
        }
    });
    let (base, log) = serve(handler).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen_events = events.clone();
    let searcher = searcher_with(
        &base,
        1000,
        1000.0,
        |e| e.cooldown_secs = Some(1),
        |o| {
            o.on_event = Some(Arc::new(move |e| {
                seen_events.lock().unwrap().push(e.to_string())
            }))
        },
    );
    let q = || QueryId("q-test".into());
    let first = searcher.search(EngineKind::Bing, "a", q(), 10).await;
    check(&first, Expect::Down(3));
    assert!(!searcher.is_up(EngineKind::Bing));
    // Another query during the cool-down fails at once, without a request.
    let second = searcher.search(EngineKind::Bing, "b", q(), 10).await;
    check(&second, Expect::Down(3));
    assert_eq!(log.lock().unwrap().len(), 3);
    let stats = &searcher.engine_stats()[1];
    assert_eq!(stats.engine, EngineKind::Bing);
    assert_eq!((stats.rate_limits, stats.cooldowns), (3, 1));
    assert!(stats.down_until.is_some());
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert!(events[0].starts_with("bing is down until"), "{events:?}");
    // After the cool-down the engine is asked again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = searcher.search(EngineKind::Bing, "c", q(), 10).await;
    check(&third, Expect::Done(10, Stop::Wanted, 1));
    assert!(searcher.is_up(EngineKind::Bing));
}

#[tokio::test]
async fn a_403_fetches_duckduckgos_token_afresh_once_and_tokens_are_cached() {
    // The first i.js request is refused (a stale token); the token is fetched again and the
    // page asked again with it.
    let handler = ddg_engine(|seen, n| {
        if n == 1 {
            Reply {
                status: 403,
                headers: Vec::new(),
                body: b"If this error persists, please let us know: ops@duckduckgo.com".to_vec(),
            }
        } else {
            ddg_results(n, seen.param("s").as_deref() == Some("0"))
        }
    });
    let (base, log) = serve(handler).await;
    let searcher = searcher(&base, 1000, 1000.0);
    let outcome = searcher
        .search(
            EngineKind::DuckDuckGo,
            "john lennon",
            QueryId("q-test".into()),
            15,
        )
        .await;
    check(&outcome, Expect::Done(15, Stop::Wanted, 5));
    let seen = log.lock().unwrap().clone();
    let kinds: Vec<String> = seen
        .iter()
        .map(|s| match s.param("vqd") {
            Some(v) => format!("i.js vqd={v} s={}", s.param("s").unwrap()),
            None => "token".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "token",
            "i.js vqd=4-1 s=0",
            "token",
            "i.js vqd=4-2 s=0",
            "i.js vqd=4-2 s=100"
        ]
    );
    assert_eq!(searcher.engine_stats()[0].token_refreshes, 1);
    assert_eq!(searcher.engine_stats()[0].rate_limits, 0);

    // The same query again: the cached token, no token page.
    let again = searcher
        .search(
            EngineKind::DuckDuckGo,
            "john lennon",
            QueryId("q-test".into()),
            5,
        )
        .await;
    check(&again, Expect::Done(5, Stop::Wanted, 1));
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[5].param("vqd").as_deref(), Some("4-2"));
}

#[tokio::test]
async fn duckduckgo_stops_at_its_page_cap() {
    let (base, _) = serve(ddg_engine(|seen, n| {
        let s: usize = seen.param("s").unwrap().parse().unwrap();
        ok(format!(
            r#"{{"results":[{{"image":"http://img.test/{n}.jpg"}}],"next":"i.js?q=x&s={}"}}"#,
            s + 100
        ))
    }))
    .await;
    // The default cap of 5 pages for DuckDuckGo.
    let searcher = searcher_with(&base, 1000, 1000.0, |e| e.max_pages = None, |_| {});
    let outcome = searcher
        .search(EngineKind::DuckDuckGo, "x", QueryId("q-test".into()), 100)
        .await;
    check(&outcome, Expect::Done(5, Stop::PageCap, 6));
}

#[tokio::test]
async fn unrecognised_pages_are_saved_and_several_in_a_row_fail_the_engine() {
    let handler: Handler =
        Arc::new(|_, _| ok("<html><body><div class=\"new-grid\"></div></body></html>"));
    let (base, log) = serve(handler).await;
    let dir = tempfile::tempdir().unwrap();
    let changed_dir = dir.path().join("changed");
    let searcher = searcher_with(
        &base,
        1000,
        1000.0,
        |_| {},
        |o| o.changed_dir = Some(changed_dir.clone()),
    );
    let q = || QueryId("q".into());
    for (i, text) in ["a", "b"].iter().enumerate() {
        let err = searcher
            .search(EngineKind::Bing, text, q(), 10)
            .await
            .unwrap_err();
        assert!(err.is_changed(), "{err:?}");
        let saved = err.saved().expect("saved").to_path_buf();
        assert!(saved.starts_with(&changed_dir), "{}", saved.display());
        assert!(std::fs::read(&saved).unwrap().starts_with(b"<html>"));
        assert!(saved.with_extension("meta").exists());
        assert!(searcher.is_up(EngineKind::Bing), "query {i}");
    }
    // The third query in a row: the format changed; the engine is not asked again.
    let err = searcher
        .search(EngineKind::Bing, "c", q(), 10)
        .await
        .unwrap_err();
    assert!(err.is_changed());
    assert!(!searcher.is_up(EngineKind::Bing));
    let err = searcher
        .search(EngineKind::Bing, "d", q(), 10)
        .await
        .unwrap_err();
    match &err {
        SearchError::FormatChanged { queries, saved, .. } => {
            assert_eq!(*queries, 3);
            assert!(saved.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.lock().unwrap().len(), 3);
    let stats = &searcher.engine_stats()[1];
    assert!(stats.format_changed);
    assert_eq!(stats.changed, 3);
    assert_eq!(
        std::fs::read_dir(&changed_dir).unwrap().count(),
        6,
        "3 bodies and their .meta"
    );
}
