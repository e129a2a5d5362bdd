use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lennonnet_config::{EngineSettings, EnginesConfig, HttpConfig};
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
    /// Where a response no parser recognises (`Changed`) is saved, for `engines parse`.
    pub changed_dir: Option<PathBuf>,
    /// Called when an engine goes down, or is found to have changed its format (for the
    /// progress display).
    pub on_event: Option<EventHook>,
    /// Take an engine down after `block_threshold` blocks or rate limits in a row, and fail
    /// every query of an engine after `changed_threshold` changed pages in a row. On for
    /// scrapes; `engines check` turns it off to see each engine's own answer.
    pub breaker: bool,
}

/// See [`SearchOptions::on_response`].
pub type ResponseHook = Arc<dyn Fn(EngineKind, &Cursor, &Request, &Response) + Send + Sync>;

/// See [`SearchOptions::on_event`].
pub type EventHook = Arc<dyn Fn(&EngineEvent) + Send + Sync>;

/// Something that happened to an engine as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// `blocks` blocks or rate limits in a row: the engine is left alone until `until`.
    Down {
        engine: EngineKind,
        until: SystemTime,
        blocks: u32,
    },
    /// `queries` queries in a row were answered with pages no parser recognises: the engine's
    /// format has changed, and it is not asked again in this run.
    FormatChanged {
        engine: EngineKind,
        queries: u32,
        saved: Option<PathBuf>,
    },
}

impl fmt::Display for EngineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineEvent::Down {
                engine,
                until,
                blocks,
            } => write!(
                f,
                "{engine} is down until {} ({blocks} blocks or rate limits in a row); its queries fall through to the next engine",
                httpdate::fmt_http_date(*until)
            ),
            EngineEvent::FormatChanged {
                engine,
                queries,
                saved,
            } => {
                write!(
                    f,
                    "{engine} answered {queries} queries in a row with pages no parser recognises: its format has changed"
                )?;
                if let Some(p) = saved {
                    write!(f, " (the last is saved in {})", p.display())?;
                }
                Ok(())
            }
        }
    }
}

impl SearchOptions {
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            max_body_bytes: 16 * 1024 * 1024,
            on_response: None,
            changed_dir: None,
            on_event: None,
            breaker: true,
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
            .field("changed_dir", &self.changed_dir)
            .field("on_event", &self.on_event.is_some())
            .field("breaker", &self.breaker)
            .finish()
    }
}

/// One engine's runtime: where it is, its settings, its own client (User-Agent and cookie
/// jar), how fast it may be asked, and whether it is up.
#[derive(Debug)]
struct EngineRuntime {
    base: Url,
    settings: EngineSettings,
    client: reqwest::Client,
    pacer: Arc<Pacer>,
    timeout: Duration,
    health: Mutex<Health>,
    counters: Counters,
}

/// The circuit breaker's state for one engine.
#[derive(Debug, Default)]
struct Health {
    /// Refusals (blocks or rate limits) in a row. Refusals that arrive while the engine's last
    /// counted one still holds (its `Retry-After`, or the first backoff delay) are the same
    /// refusal: requests sent together, or already paced, before the engine said to wait.
    blocks_in_a_row: u32,
    /// Until when the last counted refusal holds.
    refusal_until: Option<tokio::time::Instant>,
    /// Down until then (monotonic, and the wall-clock time for messages).
    down_until: Option<(tokio::time::Instant, SystemTime)>,
    /// Queries in a row whose page no parser recognised.
    changed_in_a_row: u32,
    /// The last unrecognised page saved.
    last_saved: Option<PathBuf>,
    /// `changed_threshold` was reached: the engine is not asked again in this run.
    format_changed: bool,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    pages: AtomicU64,
    candidates: AtomicU64,
    blocks: AtomicU64,
    rate_limits: AtomicU64,
    cooldowns: AtomicU64,
    changed: AtomicU64,
    token_refreshes: AtomicU64,
}

/// One engine's figures over a run (the scrape's summary table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub engine: EngineKind,
    /// HTTP requests sent, retries and token requests included.
    pub requests: u64,
    /// Result pages read.
    pub pages: u64,
    /// Distinct candidates handed out (per query).
    pub candidates: u64,
    /// Answers that were a block: a challenge or anomaly page, a redirect, HTML for JSON, and
    /// DuckDuckGo's token page without a token (what it serves a client it distrusts).
    pub blocks: u64,
    /// Answers that asked to slow down (429, DuckDuckGo's 202/403/418, MediaWiki `maxlag`).
    pub rate_limits: u64,
    /// Times the engine was taken down for its cool-down.
    pub cooldowns: u64,
    /// Pages no parser recognised.
    pub changed: u64,
    /// DuckDuckGo tokens fetched afresh after a 403.
    pub token_refreshes: u64,
    /// Down until then, if it is down now.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_http_date")]
    pub down_until: Option<SystemTime>,
    /// The engine's format changed (`changed_threshold` queries in a row).
    pub format_changed: bool,
    /// The last unrecognised page saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_saved: Option<PathBuf>,
}

/// Serialises an optional time as an HTTP date (`Thu, 03 Dec 2026 10:42:00 GMT`), for reports.
pub mod opt_http_date {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&httpdate::fmt_http_date(*t)),
            None => s.serialize_none(),
        }
    }
}

/// Why an engine is not being asked now.
enum Unavailable {
    Down(SystemTime, u32),
    FormatChanged(u32, Option<PathBuf>),
}

impl EngineRuntime {
    /// `None` when the engine may be asked now.
    fn unavailable(&self) -> Option<Unavailable> {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if h.format_changed {
            return Some(Unavailable::FormatChanged(
                h.changed_in_a_row,
                h.last_saved.clone(),
            ));
        }
        match h.down_until {
            Some((at, wall)) if tokio::time::Instant::now() < at => {
                Some(Unavailable::Down(wall, h.blocks_in_a_row))
            }
            Some(_) => {
                // The cool-down is over: try again; one more block takes it down again.
                h.down_until = None;
                h.blocks_in_a_row = self.settings.block_threshold.saturating_sub(1);
                None
            }
            None => None,
        }
    }

    /// A page was read.
    fn succeeded(&self) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.blocks_in_a_row = 0;
        h.changed_in_a_row = 0;
    }

    /// A block or rate limit, which asks to wait `hold` (its `Retry-After`, or the first
    /// backoff delay). Every request to the engine is held back that long. Returns the event
    /// when it takes the engine down.
    fn blocked(&self, breaker: bool, hold: Duration) -> Option<EngineEvent> {
        let now = tokio::time::Instant::now();
        self.pacer.hold_until(now + hold);
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if h.refusal_until.is_some_and(|until| now < until) {
            return None;
        }
        h.refusal_until = Some(now + hold);
        h.blocks_in_a_row += 1;
        if !breaker || h.blocks_in_a_row < self.settings.block_threshold || h.down_until.is_some() {
            return None;
        }
        let cooldown = Duration::from_secs(self.settings.cooldown_secs);
        let until = SystemTime::now() + cooldown;
        h.down_until = Some((tokio::time::Instant::now() + cooldown, until));
        self.counters.cooldowns.fetch_add(1, Ordering::Relaxed);
        Some(EngineEvent::Down {
            engine: self.settings.kind,
            until,
            blocks: h.blocks_in_a_row,
        })
    }

    /// A page no parser recognised (saved at `saved`). Returns the event when it is the
    /// `changed_threshold`-th query in a row.
    fn changed(&self, saved: Option<PathBuf>, breaker: bool) -> Option<EngineEvent> {
        self.counters.changed.fetch_add(1, Ordering::Relaxed);
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.changed_in_a_row += 1;
        if saved.is_some() {
            h.last_saved = saved;
        }
        if !breaker || h.format_changed || h.changed_in_a_row < self.settings.changed_threshold {
            return None;
        }
        h.format_changed = true;
        Some(EngineEvent::FormatChanged {
            engine: self.settings.kind,
            queries: h.changed_in_a_row,
            saved: h.last_saved.clone(),
        })
    }

    fn stats(&self) -> EngineStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        EngineStats {
            engine: self.settings.kind,
            requests: get(&c.requests),
            pages: get(&c.pages),
            candidates: get(&c.candidates),
            blocks: get(&c.blocks),
            rate_limits: get(&c.rate_limits),
            cooldowns: get(&c.cooldowns),
            changed: get(&c.changed),
            token_refreshes: get(&c.token_refreshes),
            down_until: h
                .down_until
                .filter(|(at, _)| tokio::time::Instant::now() < *at)
                .map(|(_, wall)| wall),
            format_changed: h.format_changed,
            last_saved: h.last_saved.clone(),
        }
    }
}

/// Runs searches: one HTTP client per engine (its own User-Agent and cookie jar; redirects
/// are never followed), one [`Pacer`] per engine shared by every query, the retry policy, and
/// a circuit breaker per engine. Cheap to share by reference between tasks.
#[derive(Debug)]
pub struct Searcher {
    engines: Vec<(EngineKind, EngineRuntime)>,
    options: SearchOptions,
    /// DuckDuckGo's tokens, by (query, User-Agent): a token is tied to the User-Agent.
    tokens: Mutex<HashMap<(String, String), String>>,
    /// Numbers the saved unrecognised pages.
    saved_count: AtomicU32,
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
        let mut runtimes = Vec::new();
        for kind in EngineKind::ALL {
            let settings = engines.settings(kind, http);
            let base = Url::parse(&settings.base_url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| SearchError::BaseUrl {
                    engine: kind,
                    url: settings.base_url.clone(),
                })?;
            let client = ClientOptions {
                user_agent: settings.user_agent.clone(),
                max_redirects: 0,
                cookies: true,
                ..ClientOptions::from_config(http)
            }
            .build()?;
            runtimes.push((
                kind,
                EngineRuntime {
                    base,
                    client,
                    pacer: Arc::new(Pacer::per_second(settings.requests_per_sec)),
                    timeout: Duration::from_secs(settings.timeout_secs),
                    settings,
                    health: Mutex::new(Health::default()),
                    counters: Counters::default(),
                },
            ));
        }
        Ok(Self {
            engines: runtimes,
            options,
            tokens: Mutex::new(HashMap::new()),
            saved_count: AtomicU32::new(0),
        })
    }

    /// Each engine's figures so far, in [`EngineKind::ALL`] order.
    pub fn engine_stats(&self) -> Vec<EngineStats> {
        self.engines.iter().map(|(_, rt)| rt.stats()).collect()
    }

    /// Whether `kind` may be asked now (not down, format not changed).
    pub fn is_up(&self, kind: EngineKind) -> bool {
        self.runtime(kind).unavailable().is_none()
    }

    /// `kind`'s settings, defaults filled in.
    pub fn settings(&self, kind: EngineKind) -> &EngineSettings {
        &self.runtime(kind).settings
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
        let (limit, limit_reason) = if wanted <= runtime.settings.max_results {
            (wanted, Stop::Wanted)
        } else {
            (runtime.settings.max_results, Stop::Cap)
        };
        let adapter = adapter(engine);
        let mut cursor = adapter.start();
        if cursor.step == Step::Token {
            let key = (query.to_string(), runtime.settings.user_agent.clone());
            if let Some(vqd) = self
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                cursor = Cursor::results(vec![("vqd".into(), vqd.clone())]);
            }
        }
        Pager {
            searcher: self,
            adapter,
            runtime,
            query: query.to_string(),
            query_id,
            limit,
            limit_reason,
            cursor: Some(cursor),
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
    /// The engine's page cap (`max_pages`) was reached.
    PageCap,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Wanted => "the wanted count was reached",
            Stop::Cap => "the engine's max_results was reached",
            Stop::End => "the engine has no more pages",
            Stop::NoNew => "a page brought nothing new",
            Stop::RepeatedCursor => "the engine repeated a page cursor",
            Stop::PageCap => "the engine's max_pages was reached",
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
            if self
                .runtime
                .settings
                .max_pages
                .is_some_and(|max| self.stats.pages >= max)
            {
                self.finish(Stop::PageCap);
                continue;
            }
            let Some(mut cursor) = self.cursor.take() else {
                self.finish(Stop::End);
                continue;
            };
            if !self.seen_cursors.insert(cursor.clone()) {
                tracing::warn!(%engine, query = %self.query, cursor = ?cursor.params, "the engine repeated a cursor; stopping");
                self.finish(Stop::RepeatedCursor);
                continue;
            }
            let seen_as = cursor.clone();
            let page = match self.fetch(&mut cursor).await {
                Ok(page) => page,
                Err(e) => {
                    // Stay where we were: calling again retries the same request.
                    self.seen_cursors.remove(&seen_as);
                    self.cursor = Some(cursor);
                    return Err(e);
                }
            };
            self.cursor = page.next;
            if cursor.step == Step::Token {
                if let Some(vqd) = self.cursor.as_ref().and_then(|c| c.param("vqd")) {
                    self.remember_token(vqd);
                }
                continue;
            }
            self.stats.pages += 1;
            self.runtime.counters.pages.fetch_add(1, Ordering::Relaxed);
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
                self.runtime
                    .counters
                    .candidates
                    .fetch_add(1, Ordering::Relaxed);
                c.rank = self.found;
                c.query_id = Some(self.query_id.clone());
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

    fn remember_token(&self, vqd: &str) {
        let key = (self.query.clone(), self.runtime.settings.user_agent.clone());
        self.searcher
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, vqd.to_string());
    }

    /// The error for an engine that is down or whose format changed, if it is.
    fn check_up(&self) -> Result<(), SearchError> {
        let engine = self.adapter.kind();
        match self.runtime.unavailable() {
            None => Ok(()),
            Some(Unavailable::Down(until, blocks)) => Err(SearchError::Down {
                engine,
                until,
                blocks,
            }),
            Some(Unavailable::FormatChanged(queries, saved)) => Err(SearchError::FormatChanged {
                engine,
                queries,
                saved,
            }),
        }
    }

    fn emit(&self, event: Option<EngineEvent>) {
        if let Some(event) = event {
            tracing::warn!("{event}");
            if let Some(hook) = &self.searcher.options.on_event {
                hook(&event);
            }
        }
    }

    /// Saves an unrecognised response under `changed_dir`, if set.
    fn save_changed(
        &self,
        cursor: &Cursor,
        request: &Request,
        response: &Response,
    ) -> Option<PathBuf> {
        let dir = self.searcher.options.changed_dir.as_ref()?;
        let n = self.searcher.saved_count.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let engine = self.adapter.kind();
        let stem = format!("{engine}-{secs}-{n:03}");
        match crate::save::save_response(dir, &stem, engine, cursor, request, response) {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot save an unrecognised response");
                None
            }
        }
    }

    /// Sends one request (paced, counted) and hands the response to the hook.
    async fn exchange(
        &mut self,
        cursor: &Cursor,
        request: &Request,
    ) -> Result<Response, TransportError> {
        self.runtime.pacer.wait().await;
        self.stats.requests += 1;
        self.runtime
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let response = self.send(request).await?;
        if let Some(hook) = &self.searcher.options.on_response {
            hook(self.adapter.kind(), cursor, request, &response);
        }
        Ok(response)
    }

    /// DuckDuckGo's token for this query, fetched afresh (after a 403 on a results page: the
    /// token may have expired). `Err` is the failure of the token request.
    async fn refresh_token(&mut self) -> Result<String, Failure> {
        let cursor = Cursor::token();
        let request = self.adapter.request(
            &self.runtime.base,
            &self.runtime.settings,
            &self.query,
            &cursor,
        );
        let response = self
            .exchange(&cursor, &request)
            .await
            .map_err(Failure::Transport)?;
        let page = self
            .adapter
            .parse(&self.runtime.settings, &cursor, &response)
            .map_err(Failure::Engine)?;
        let vqd = page
            .next
            .as_ref()
            .and_then(|c| c.param("vqd"))
            .map(str::to_string)
            .ok_or(Failure::Engine(EngineError::TokenMissing))?;
        self.remember_token(&vqd);
        Ok(vqd)
    }

    /// One request, paced and retried; the parsed page or the error of the last attempt. A
    /// DuckDuckGo token refreshed on the way is written into `cursor`.
    async fn fetch(&mut self, cursor: &mut Cursor) -> Result<Page, SearchError> {
        let engine = self.adapter.kind();
        let options = self.searcher.options.clone();
        let mut attempts = 0;
        let mut refreshed = false;
        loop {
            self.check_up()?;
            let request = self.adapter.request(
                &self.runtime.base,
                &self.runtime.settings,
                &self.query,
                cursor,
            );
            let url = request.url.to_string();
            attempts += 1;
            let mut saved = None;
            let failure = match self.exchange(cursor, &request).await {
                Ok(response) => match self
                    .adapter
                    .parse(&self.runtime.settings, cursor, &response)
                {
                    Ok(page) => {
                        self.runtime.succeeded();
                        return Ok(page);
                    }
                    // A 403 on a DuckDuckGo results page: the token may be stale. Fetch it
                    // afresh once before counting the answer as a refusal.
                    Err(EngineError::RateLimited { .. })
                        if engine == EngineKind::DuckDuckGo
                            && cursor.step == Step::Results
                            && response.status == 403
                            && !refreshed =>
                    {
                        refreshed = true;
                        self.runtime
                            .counters
                            .token_refreshes
                            .fetch_add(1, Ordering::Relaxed);
                        match self.refresh_token().await {
                            Ok(vqd) => {
                                cursor.params.retain(|(k, _)| k != "vqd");
                                cursor.params.push(("vqd".into(), vqd));
                                attempts -= 1;
                                continue;
                            }
                            Err(f) => f,
                        }
                    }
                    Err(e) => {
                        if matches!(e, EngineError::Changed { .. }) {
                            saved = self.save_changed(cursor, &request, &response);
                        }
                        Failure::Engine(e)
                    }
                },
                Err(e) => Failure::Transport(e),
            };
            if let Failure::Engine(e) = &failure {
                let counter = match e {
                    EngineError::Blocked | EngineError::TokenMissing => {
                        Some(&self.runtime.counters.blocks)
                    }
                    EngineError::RateLimited { .. } => Some(&self.runtime.counters.rate_limits),
                    _ => None,
                };
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let hold = e
                        .retry_after()
                        .filter(|d| *d <= options.max_retry_after)
                        .unwrap_or(options.backoff_base);
                    let event = self.runtime.blocked(options.breaker, hold);
                    let down = event.is_some();
                    self.emit(event);
                    if down {
                        self.check_up()?;
                    }
                }
                if matches!(e, EngineError::Changed { .. }) {
                    let event = self.runtime.changed(saved.clone(), options.breaker);
                    self.emit(event);
                }
            }
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
                        saved,
                    },
                    Failure::Transport(source) => SearchError::Transport {
                        engine,
                        url,
                        attempts,
                        source,
                    },
                });
            }
            let delay = asked.unwrap_or_else(|| backoff(&options, attempts));
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
            .runtime
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
