//! The scrape pipeline: plan rows in, a store full of images out.
//!
//! Groups are worked concurrently (`scrape.groups_in_parallel`) and finish in any order. Within
//! a group, candidates come in a fixed order: tier by tier; within a tier, the pages of the
//! tier's queries in turn (round robin), each page in rank order. The group ends with the first
//! `wanted` distinct valid images of that order (counted by content id), so which images it
//! ends with depends on the engines' answers, not on timing, and a rerun after a crash ends
//! with the same objects as an uninterrupted run.
//!
//! A group's pipeline (see `group.rs`):
//!
//! 1. **Download and check, ahead.** Each candidate is a task: its recorded outcome (resume),
//!    or a download, whose bytes are then hashed and validated ([`Store::check`]: decode,
//!    orientation, perceptual hashes) on one of a few check threads (`checkers`, one per
//!    core). Tasks run on every worker thread and resolve out of order.
//! 2. **Store ahead when it is safe.** A resolved candidate is stored at once
//!    ([`Store::ingest_checked`], which only writes) when even if every unresolved candidate
//!    before it came to a new image, the group would still lack images: then it is certainly
//!    within the group's part of the order. Otherwise it waits until that holds or the frontier
//!    reaches it. A slow download therefore holds only its own place, and near the end of a
//!    group, the few candidates after it.
//! 3. **Count in order.** The frontier walks the order over stored candidates, counting
//!    images, duplicates, rejections and failures; the group stops when it holds `wanted`, and
//!    downloads beyond that point are cancelled unstored.
//!
//! Bounds: a group dispatches candidates while at most twice what it still lacks (plus a few)
//! are unresolved, and no further than `prefetch_per_group` past its frontier; downloads in
//! flight or waiting to be stored hold a unit of `prefetch_total` for the whole run, which
//! bounds the image bytes in memory. Decoded pictures exist only on the check threads.
//!
//! Resume: a URL with a recorded outcome is not fetched again; its recorded result counts as
//! before. With `retry_failed`, recorded failures whose reason is transient are fetched again.
//! Journal acknowledgements are awaited in batches; a crash loses only unacknowledged records,
//! whose URLs a rerun fetches again and which come to the same outcome in the same order.

mod group;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use lennonnet_config::Config;
use lennonnet_core::{FailureReason, Group, Label, Progress, Purpose, Query, QueryId};
use lennonnet_fetch::Fetcher;
use lennonnet_search::Searcher;
use lennonnet_store::{RejectReason, Store};
use serde::Serialize;

/// A process-level failure that stops the scrape (per-URL failures are data, in the report).
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("the store failed; nothing acknowledged is lost, rerun to continue")]
    Store(#[from] lennonnet_store::StoreError),
    #[error("a storing task failed: {0}")]
    Task(String),
}

/// What the scrape did, per group and per engine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub groups: Vec<GroupReport>,
    /// Per engine: requests, candidates, blocks, rate limits, cool-downs, changed pages.
    pub engines: Vec<lennonnet_search::EngineStats>,
    /// The run stopped early (interrupted).
    pub interrupted: bool,
    /// Every engine the plan uses was down when the run ended with groups short: the
    /// earliest time one of them comes back (rerun then; the rerun resumes).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "lennonnet_search::opt_http_date"
    )]
    pub engines_down_until: Option<std::time::SystemTime>,
}

impl Report {
    /// Queries whose results could not be read at all (a changed page, a missing token, an
    /// engine that kept refusing), over all groups.
    pub fn query_errors(&self) -> impl Iterator<Item = &QueryError> {
        self.groups.iter().flat_map(|g| g.query_errors.iter())
    }
}

/// One group's figures.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: Group,
    pub label: Label,
    pub purpose: Purpose,
    pub wanted: u32,
    /// Distinct valid images the group holds.
    pub got: u32,
    /// Candidates looked at.
    pub candidates: u64,
    /// Accepted images that were new to the store.
    pub new: u64,
    /// Accepted candidates whose image the group already had (the same picture under another
    /// URL, or found again by another query).
    pub duplicates: u64,
    /// Candidates whose outcome was already recorded (resume).
    pub resumed: u64,
    /// Downloaded bytes refused by validation, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Downloads that failed, by reason.
    pub failed: BTreeMap<FailureReason, u64>,
    pub query_errors: Vec<QueryError>,
}

/// A query whose results could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct QueryError {
    pub query_id: QueryId,
    pub text: String,
    pub engine: String,
    pub error: String,
    /// The engine's page was not understood (the adapter needs updating).
    pub changed: bool,
    /// The engine refused (blocks or rate limits that outlasted the retries, or the engine
    /// was down for its cool-down): the group fell through to the next engine.
    pub blocked: bool,
    /// Where the unrecognised page was saved (for `lennonnet engines parse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<String>,
}

/// Everything a scrape needs. Share the parts between runs as you like; `stop` interrupts a run
/// cleanly (in-flight results are stored or dropped, nothing half-written).
pub struct Scraper {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub fetcher: Arc<Fetcher>,
    pub searcher: Arc<Searcher>,
    pub progress: Arc<dyn Progress>,
    pub stop: Arc<AtomicBool>,
    /// Fetch again recorded failures whose reason is transient.
    pub retry_failed: bool,
    /// Downloads of all groups together that may wait, downloaded but not yet stored, for the
    /// result before them (see [`Scraper::new`]).
    pub prefetch_budget: Arc<tokio::sync::Semaphore>,
    /// The threads that hash and validate downloaded bytes (one per core by default). Their
    /// number bounds the decoded pictures in memory; being few and long-lived, they also keep
    /// the allocator's memory from spreading over many threads.
    pub checkers: Arc<rayon::ThreadPool>,
    /// One permit per check queued or running on `checkers`; [`Scraper::run`] waits for all
    /// of them to come back, so that no check holds the store when it returns.
    check_jobs: Arc<tokio::sync::Semaphore>,
}

/// Permits of `check_jobs`: more than checks can ever be queued at once.
const CHECK_JOB_PERMITS: u32 = 1 << 24;

impl Scraper {
    /// A scraper with the prefetch budget of `config.scrape.prefetch_total`, not interrupted, not
    /// retrying failures.
    pub fn new(
        config: Arc<Config>,
        store: Arc<Store>,
        fetcher: Arc<Fetcher>,
        searcher: Arc<Searcher>,
        progress: Arc<dyn Progress>,
    ) -> Self {
        let budget = config.scrape.prefetch_total.max(1) as usize;
        Self {
            config,
            store,
            fetcher,
            searcher,
            progress,
            stop: Arc::new(AtomicBool::new(false)),
            retry_failed: false,
            prefetch_budget: Arc::new(tokio::sync::Semaphore::new(budget)),
            checkers: Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                    .thread_name(|i| format!("lennonnet-check-{i}"))
                    .build()
                    .expect("cannot start the image check threads"),
            ),
            check_jobs: Arc::new(tokio::sync::Semaphore::new(CHECK_JOB_PERMITS as usize)),
        }
    }

    /// Works every group of `plan` (rows of one group must be contiguous, as `plan` makes them).
    pub async fn run(&self, plan: &[Query]) -> Result<Report, ScrapeError> {
        let mut groups: Vec<Vec<Query>> = Vec::new();
        for row in plan {
            match groups.last_mut() {
                Some(g) if g[0].group == row.group => g.push(row.clone()),
                _ => groups.push(vec![row.clone()]),
            }
        }
        let total: u64 = groups.iter().map(|g| g[0].wanted as u64).sum();
        self.progress.start("scrape", Some(total));
        let parallel = self.config.scrape.groups_in_parallel.max(1) as usize;
        // Groups finish in any order (a big group must not keep the small ones after it
        // waiting); the report lists them in plan order.
        let mut results: Vec<(usize, Result<GroupReport, ScrapeError>)> =
            futures::stream::iter(groups.into_iter().enumerate())
                .map(|(i, rows)| async move { (i, group::work(self, rows).await) })
                .buffer_unordered(parallel)
                .collect()
                .await;
        results.sort_by_key(|(i, _)| *i);
        // Checks of downloads the groups no longer needed may still run: let them finish.
        drop(
            self.check_jobs
                .acquire_many(CHECK_JOB_PERMITS)
                .await
                .expect("check_jobs never closes"),
        );
        self.progress.finish("scrape");
        let mut report = Report {
            interrupted: self.stop.load(Ordering::SeqCst),
            engines: self.searcher.engine_stats(),
            ..Report::default()
        };
        for (_, r) in results {
            report.groups.push(r?);
        }
        let used: std::collections::BTreeSet<_> = plan.iter().map(|q| q.engine).collect();
        let short = report.groups.iter().any(|g| g.got < g.wanted);
        if short && !used.is_empty() && used.iter().all(|&e| !self.searcher.is_up(e)) {
            report.engines_down_until = report
                .engines
                .iter()
                .filter(|e| used.contains(&e.engine))
                .filter_map(|e| e.down_until)
                .min();
            if report.engines_down_until.is_none() {
                // Every engine's format changed: nothing to wait for.
                tracing::warn!("every engine this plan uses has changed its format");
            }
        }
        Ok(report)
    }
}
