//! The async driver: a [`Searcher`] holds one runtime per engine, and a [`Pager`] pages
//! through one query's results on one engine.

mod fetch;
mod options;
mod pager;
mod runtime;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lennonnet_config::{EngineSettings, EnginesConfig, HttpConfig};
use lennonnet_core::{Candidate, EngineKind, QueryId};
use lennonnet_http::ClientOptions;
use reqwest::Url;

pub use options::{EngineEvent, EventHook, ResponseHook, SearchOptions};
pub use pager::{Pager, PagerStats, Stop};
pub use runtime::{EngineStats, opt_http_date};

use crate::engine::{Cursor, Step, adapter};
use crate::error::SearchError;
use crate::pace::Pacer;
use runtime::{Counters, EngineRuntime, Health};

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
