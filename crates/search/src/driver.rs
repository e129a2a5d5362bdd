use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lennonnet_config::{EnginesConfig, HttpConfig};
use lennonnet_core::{Candidate, EngineKind, QueryId};
use lennonnet_http::{ClientOptions, read_body_limited};
use reqwest::Url;
use serde::Serialize;

use crate::engine::{Cursor, Engine, Page, Request, Response, Step, adapter};
use crate::error::{EngineError, SearchError, TransportError};
use crate::pace::Pacer;

/// How hard the driver tries: retries, backoff, limits.
#[derive(Clone)]
pub struct SearchOptions {
    /// Retries of one request after a rate limit, a block, a 5xx or a network error
    /// (`engines.max_retries`).
    pub max_retries: u32,
    /// First backoff delay when the engine gave no `Retry-After`; doubles on each retry, with
    /// up to 25 % jitter.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited out: the search fails at once, saying
    /// how long the engine asked for.
    pub max_retry_after: Duration,
    /// Engine responses larger than this are refused.
    pub max_body_bytes: u64,
    /// Called with every response received (for `lennonnet search --save-responses`).
    pub on_response: Option<ResponseHook>,
}

/// See [`SearchOptions::on_response`].
pub type ResponseHook = Arc<dyn Fn(EngineKind, &Cursor, &Request, &Response) + Send + Sync>;

impl SearchOptions {
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            max_body_bytes: 16 * 1024 * 1024,
            on_response: None,
        }
    }
}

impl fmt::Debug for SearchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchOptions")
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("max_retry_after", &self.max_retry_after)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("on_response", &self.on_response.is_some())
            .finish()
    }
}

/// One engine's runtime: where it is, how fast it may be asked, how far a query pages.
#[derive(Debug)]
struct EngineRuntime {
    base: Url,
    pacer: Arc<Pacer>,
    max_results: u32,
    timeout: Duration,
}

/// Runs searches: one HTTP client, one [`Pacer`] per engine shared by every query, and the
/// retry policy. Cheap to share by reference between tasks.
#[derive(Debug)]
pub struct Searcher {
    client: reqwest::Client,
    engines: Vec<(EngineKind, EngineRuntime)>,
    options: SearchOptions,
}

impl Searcher {
    /// A searcher for a config's `[http]` and `[engines]` sections.
    pub fn from_config(http: &HttpConfig, engines: &EnginesConfig) -> Result<Self, SearchError> {
        Self::new(http, engines, SearchOptions::new(engines.max_retries))
    }

    /// Like [`Searcher::from_config`] with explicit options (`max_retries` comes from them).
    pub fn new(
        http: &HttpConfig,
        engines: &EnginesConfig,
        options: SearchOptions,
    ) -> Result<Self, SearchError> {
        let client = ClientOptions::from_config(http).build()?;
        let mut runtimes = Vec::new();
        for kind in EngineKind::ALL {
            let conf = engines.engine(kind);
            let base_str = engines.base_url(kind);
            let base = Url::parse(base_str)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| SearchError::BaseUrl {
                    engine: kind,
                    url: base_str.to_string(),
                })?;
            runtimes.push((
                kind,
                EngineRuntime {
                    base,
                    pacer: Arc::new(Pacer::per_second(conf.requests_per_sec)),
                    max_results: conf.max_results,
                    timeout: Duration::from_secs(conf.timeout_secs),
                },
            ));
        }
        Ok(Self {
            client,
            engines: runtimes,
            options,
        })
    }

    fn runtime(&self, kind: EngineKind) -> &EngineRuntime {
        &self
            .engines
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every engine has a runtime")
            .1
    }

    /// The base URL requests to `kind` go to.
    pub fn base_url(&self, kind: EngineKind) -> &Url {
        &self.runtime(kind).base
    }

    /// A pager over `query`'s results on `engine`, stopping at `wanted` distinct candidates
    /// (or the engine's `max_results`, whichever is smaller).
    pub fn pager(
        &self,
        engine: EngineKind,
        query: &str,
        query_id: QueryId,
        wanted: u32,
    ) -> Pager<'_> {
        let runtime = self.runtime(engine);
        let (limit, limit_reason) = if wanted <= runtime.max_results {
            (wanted, Stop::Wanted)
        } else {
            (runtime.max_results, Stop::Cap)
        };
        let adapter = adapter(engine);
        Pager {
            searcher: self,
            adapter,
            runtime,
            query: query.to_string(),
            query_id,
            limit,
            limit_reason,
            cursor: Some(adapter.start()),
            seen_urls: HashSet::new(),
            seen_cursors: HashSet::new(),
            barren: 0,
            found: 0,
            stats: PagerStats::default(),
            stop: None,
        }
    }

    /// Every candidate of a query, paged to the end (see [`Pager`]).
    pub async fn search(
        &self,
        engine: EngineKind,
        query: &str,
        query_id: QueryId,
        wanted: u32,
    ) -> Result<(Vec<Candidate>, PagerStats, Stop), SearchError> {
        let mut pager = self.pager(engine, query, query_id, wanted);
        let mut all = Vec::new();
        while let Some(batch) = pager.next_batch().await? {
            all.extend(batch);
        }
        let stop = pager.stop_reason().expect("a finished pager has a reason");
        Ok((all, pager.stats().clone(), stop))
    }
}

/// Why a query's paging ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The wanted count was reached.
    Wanted,
    /// The engine's cap (`max_results`) was reached.
    Cap,
    /// The engine gave no next page.
    End,
    /// A page brought no candidate that was not already seen.
    NoNew,
    /// The engine sent back a cursor already followed: it would loop.
    RepeatedCursor,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Wanted => "the wanted count was reached",
            Stop::Cap => "the engine's max_results was reached",
            Stop::End => "the engine has no more pages",
            Stop::NoNew => "a page brought nothing new",
            Stop::RepeatedCursor => "the engine repeated a page cursor",
        })
    }
}

/// Counters of one query's paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PagerStats {
    /// HTTP requests sent, retries included.
    pub requests: u32,
    /// Requests that were retried.
    pub retries: u32,
    /// Result pages read.
    pub pages: u32,
    /// Entries the parsers could not read (see [`Page::skipped`]).
    pub skipped: u32,
    /// Results already seen on an earlier page (same image URL).
    pub duplicates: u32,
}

/// Pages through one query's results.
///
/// Paging stops when the wanted count or the engine's cap is reached, when the engine gives no
/// next page, when a page brings nothing new (every candidate's image URL already seen), or
/// when the engine hands back a cursor already followed. A page whose entries were all
/// skipped (none readable, some present) does not end paging by itself, but three such pages
/// in a row do. Candidates are deduplicated by image URL and ranked 1, 2, 3... in the order
/// first seen.
pub struct Pager<'a> {
    searcher: &'a Searcher,
    adapter: &'static dyn Engine,
    runtime: &'a EngineRuntime,
    query: String,
    query_id: QueryId,
    limit: u32,
    limit_reason: Stop,
    cursor: Option<Cursor>,
    seen_urls: HashSet<String>,
    seen_cursors: HashSet<Cursor>,
    /// Consecutive pages with skipped entries and nothing new.
    barren: u32,
    found: u32,
    stats: PagerStats,
    stop: Option<Stop>,
}

/// Pages in a row that bring only skipped entries before paging gives up.
const MAX_BARREN_PAGES: u32 = 3;

impl Pager<'_> {
    /// The next batch of new candidates, or `None` when paging has stopped (see
    /// [`Pager::stop_reason`]). A batch is never empty. After an error the pager stays where
    /// it was: calling again sends the failed request again (with a fresh round of retries).
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Candidate>>, SearchError> {
        let engine = self.adapter.kind();
        loop {
            if self.stop.is_some() {
                return Ok(None);
            }
            if self.found >= self.limit {
                self.finish(self.limit_reason);
                continue;
            }
            let Some(cursor) = self.cursor.take() else {
                self.finish(Stop::End);
                continue;
            };
            if !self.seen_cursors.insert(cursor.clone()) {
                tracing::warn!(%engine, query = %self.query, cursor = ?cursor.params, "the engine repeated a cursor; stopping");
                self.finish(Stop::RepeatedCursor);
                continue;
            }
            let page = match self.fetch(&cursor).await {
                Ok(page) => page,
                Err(e) => {
                    // Stay where we were: calling again retries the same request.
                    self.seen_cursors.remove(&cursor);
                    self.cursor = Some(cursor);
                    return Err(e);
                }
            };
            self.cursor = page.next;
            if cursor.step == Step::Token {
                continue;
            }
            self.stats.pages += 1;
            self.stats.skipped += page.skipped;
            let offered = page.candidates.len();
            let mut batch = Vec::new();
            for mut c in page.candidates {
                if self.found >= self.limit {
                    break;
                }
                if !self.seen_urls.insert(c.image_url.clone()) {
                    self.stats.duplicates += 1;
                    continue;
                }
                self.found += 1;
                c.rank = self.found;
                c.query_id = self.query_id.clone();
                batch.push(c);
            }
            tracing::debug!(
                %engine,
                query = %self.query,
                page = self.stats.pages,
                offered,
                new = batch.len(),
                skipped = page.skipped,
                total = self.found,
                "page read"
            );
            if !batch.is_empty() {
                self.barren = 0;
                return Ok(Some(batch));
            }
            if self.cursor.is_none() {
                self.finish(Stop::End);
            } else if page.skipped > 0 && offered == 0 {
                self.barren += 1;
                if self.barren >= MAX_BARREN_PAGES {
                    self.finish(Stop::NoNew);
                }
            } else {
                self.finish(Stop::NoNew);
            }
        }
    }

    /// Why paging stopped, once it has.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    pub fn stats(&self) -> &PagerStats {
        &self.stats
    }

    /// Distinct candidates returned so far.
    pub fn found(&self) -> u32 {
        self.found
    }

    fn finish(&mut self, stop: Stop) {
        tracing::debug!(engine = %self.adapter.kind(), query = %self.query, found = self.found, reason = %stop, "paging stopped");
        self.stop = Some(stop);
    }

    /// One request, paced and retried; the parsed page or the error of the last attempt.
    async fn fetch(&mut self, cursor: &Cursor) -> Result<Page, SearchError> {
        let engine = self.adapter.kind();
        let options = &self.searcher.options;
        let request = self
            .adapter
            .request(&self.runtime.base, &self.query, cursor);
        let url = request.url.to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.runtime.pacer.wait().await;
            self.stats.requests += 1;
            let failure = match self.send(&request).await {
                Ok(response) => {
                    if let Some(hook) = &options.on_response {
                        hook(engine, cursor, &request, &response);
                    }
                    match self.adapter.parse(cursor, &response) {
                        Ok(page) => return Ok(page),
                        Err(e) => Failure::Engine(e),
                    }
                }
                Err(e) => Failure::Transport(e),
            };
            let retryable = match &failure {
                Failure::Engine(e) => e.is_retryable(),
                Failure::Transport(TransportError::Body(lennonnet_http::BodyError::TooLarge {
                    ..
                })) => false,
                Failure::Transport(_) => true,
            };
            let asked = match &failure {
                Failure::Engine(e) => e.retry_after(),
                Failure::Transport(_) => None,
            };
            let give_up = !retryable
                || attempts > options.max_retries
                || asked.is_some_and(|d| d > options.max_retry_after);
            if give_up {
                return Err(match failure {
                    Failure::Engine(source) => SearchError::Engine {
                        engine,
                        url,
                        attempts,
                        source,
                    },
                    Failure::Transport(source) => SearchError::Transport {
                        engine,
                        url,
                        attempts,
                        source,
                    },
                });
            }
            let delay = asked.unwrap_or_else(|| backoff(options, attempts));
            tracing::warn!(
                %engine,
                %url,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                error = %failure,
                "retrying"
            );
            self.stats.retries += 1;
            tokio::time::sleep(delay).await;
        }
    }

    async fn send(&self, request: &Request) -> Result<Response, TransportError> {
        let mut builder = self
            .searcher
            .client
            .get(request.url.clone())
            .timeout(self.runtime.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body_limited(response, self.searcher.options.max_body_bytes).await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

enum Failure {
    Engine(EngineError),
    Transport(TransportError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Engine(e) => e.fmt(f),
            Failure::Transport(e) => {
                e.fmt(f)?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

/// `base * 2^(attempt-1)`, capped, plus up to 25 % jitter.
fn backoff(options: &SearchOptions, attempt: u32) -> Duration {
    let exp = options
        .backoff_base
        .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
        .min(options.backoff_max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = exp.mul_f64((nanos % 1000) as f64 / 4000.0);
    exp + jitter
}
