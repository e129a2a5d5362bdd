//! One group's pipeline; see the crate documentation for the design.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use lennonnet_core::{Candidate, ContentId, FailureReason, Query};
use lennonnet_fetch::Fetcher;
use lennonnet_search::Pager;
use lennonnet_store::{
    Ack, Checked, FetchOutcome, Ingested, Provenance, RejectReason, Store, Timestamp, UrlState,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use crate::{GroupReport, QueryError, ScrapeError, Scraper};

/// Acknowledgements outstanding before the oldest half is awaited.
const MAX_PENDING_ACKS: usize = 256;

/// Candidates in flight beyond twice what the group still needs, so that its last images do
/// not wait for a round trip each.
const DISPATCH_SLACK: usize = 16;

/// What is known of a candidate before storing: its recorded outcome, or a fresh download,
/// already hashed and validated.
enum Resolved {
    Known(Box<UrlState>),
    Fetched {
        record: Box<FetchOutcome>,
        /// The checked bytes, or the reason the download failed.
        result: Result<Box<Checked<Bytes>>, FailureReason>,
    },
    /// Checking the bytes failed (the index could not be read, or the check task died).
    Broken(ScrapeError),
    /// The original's host refused it and the group accepts thumbnails: the engine's
    /// thumbnail at `url`, resolved as `inner`. `original` is the original's fresh fetch
    /// record to write (none when it was recorded by an earlier run).
    Thumbnail {
        original: Option<Box<FetchOutcome>>,
        url: String,
        inner: Box<Resolved>,
    },
}

impl Resolved {
    /// The content id of an image this candidate will be accepted as, `None` when it cannot be
    /// accepted.
    fn accepted_id(&self) -> Option<ContentId> {
        match self {
            Resolved::Known(state) => state
                .ingest
                .as_ref()
                .filter(|i| i.rejected.is_none())
                .map(|i| i.id),
            Resolved::Fetched {
                result: Ok(checked),
                ..
            } => (checked.valid() != Some(false)).then(|| checked.id()),
            Resolved::Fetched { result: Err(_), .. } | Resolved::Broken(_) => None,
            Resolved::Thumbnail { inner, .. } => inner.accepted_id(),
        }
    }

    /// Whether the host refused the URL (401, 403, a page instead of the image): where an
    /// engine's thumbnail may stand in.
    fn is_refusal(&self) -> bool {
        let (reason, status) = match self {
            Resolved::Known(state) if state.ingest.is_none() => match &state.fetch {
                Some(f) => (f.reason, f.status),
                None => return false,
            },
            Resolved::Fetched {
                record,
                result: Err(_),
            } => (record.reason, record.status),
            _ => return false,
        };
        reason.is_some_and(|r| r.is_refusal(status))
    }

    /// The fresh fetch record of a refused original, to be written with its thumbnail.
    fn into_fresh_record(self) -> Option<Box<FetchOutcome>> {
        match self {
            Resolved::Fetched { record, .. } => Some(record),
            _ => None,
        }
    }
}

/// What a candidate came to.
enum Settled {
    Accepted { id: ContentId, new: bool },
    Rejected(RejectReason),
    Failed(FailureReason),
}

/// A candidate in the group's window, from its dispatch until the frontier passes it.
enum Slot {
    /// Being fetched and checked.
    Pending,
    /// Resolved, not yet stored. The permit is one unit of the run's prefetch budget.
    Ready(Resolved, OwnedSemaphorePermit),
    /// Stored (its records appended).
    Done(Settled),
}

struct Entry<'a> {
    query: &'a Query,
    candidate: Candidate,
    slot: Slot,
    /// Counted in the group's `ahead`: resolved to an image the group did not hold then.
    ahead: bool,
    /// Its outcome was recorded by an earlier run.
    resumed: bool,
}

impl Entry<'_> {
    /// Whether this candidate may still add an image the group does not hold yet.
    fn may_count(&self, held: &HashSet<ContentId>) -> bool {
        let id = match &self.slot {
            // Unknown yet; a broken one stops the group when stored.
            Slot::Pending | Slot::Ready(Resolved::Broken(_), _) => return true,
            Slot::Ready(r, _) => r.accepted_id(),
            Slot::Done(Settled::Accepted { id, .. }) => Some(*id),
            Slot::Done(_) => None,
        };
        id.is_some_and(|id| !held.contains(&id))
    }
}

/// What a download task needs, owned, so that it runs on any worker thread.
#[derive(Clone)]
struct TaskCtx {
    store: Arc<Store>,
    fetcher: Arc<Fetcher>,
    checkers: Arc<rayon::ThreadPool>,
    check_jobs: Arc<tokio::sync::Semaphore>,
    retry_failed: bool,
}

impl TaskCtx {
    fn of(s: &Scraper) -> Self {
        Self {
            store: s.store.clone(),
            fetcher: s.fetcher.clone(),
            checkers: s.checkers.clone(),
            check_jobs: s.check_jobs.clone(),
            retry_failed: s.retry_failed,
        }
    }
}

pub(crate) async fn work(s: &Scraper, rows: Vec<Query>) -> Result<GroupReport, ScrapeError> {
    let first = &rows[0];
    let wanted = first.wanted as usize;
    let stage = format!("group {}", first.group);
    let mut report = empty_report(first);
    s.progress.start(&stage, Some(first.wanted as u64));
    let errors: Arc<Mutex<Vec<QueryError>>> = Arc::new(Mutex::new(Vec::new()));
    let ctx = TaskCtx::of(s);

    let mut candidates = Box::pin(group_candidates(s, &rows, errors.clone()));
    let mut candidates_done = false;

    let max_window = s.config.scrape.prefetch_per_group.max(1) as usize;
    let mut p = Pipeline::new(wanted);
    while p.held.len() < wanted && !s.stop.load(Ordering::SeqCst) {
        // Store what is safe to store, then move the frontier over what is stored.
        p.advance(s, &stage, &mut report)?;
        if p.held.len() >= wanted {
            break;
        }
        p.await_oldest_acks().await?;

        let dispatch = !candidates_done && p.may_dispatch(max_window);
        if !dispatch && p.tasks.is_empty() {
            if p.window.is_empty() {
                // Out of candidates.
                break;
            }
            // Nothing in flight: the frontier entry is resolved, and is stored next round.
            continue;
        }
        let next_candidate = async {
            let permit = s
                .prefetch_budget
                .clone()
                .acquire_owned()
                .await
                .expect("budget never closes");
            (candidates.next().await, permit)
        };
        tokio::select! {
            biased;
            joined = p.tasks.join_next(), if !p.tasks.is_empty() => {
                let (k, resolved, permit) = joined
                    .expect("tasks not empty")
                    .map_err(|e| ScrapeError::Task(e.to_string()))?;
                p.resolved(s, k, resolved, permit)?;
            }
            (next, permit) = next_candidate, if dispatch => match next {
                Some((query, candidate)) => p.dispatch(&ctx, query, candidate, permit),
                None => candidates_done = true,
            },
        }
    }
    let (got, unused) = p.finish().await?;
    report.got = got as u32;
    report.query_errors = std::mem::take(&mut *errors.lock().expect("errors poisoned"));
    s.progress.finish(&stage);
    tracing::info!(group = %report.group, wanted = report.wanted, got = report.got, candidates = report.candidates, unused, "group done");
    Ok(report)
}

/// The report of `first`'s group before it looks at any candidate.
fn empty_report(first: &Query) -> GroupReport {
    GroupReport {
        group: first.group.clone(),
        label: first.label.clone(),
        purpose: first.purpose,
        wanted: first.wanted,
        got: 0,
        candidates: 0,
        new: 0,
        duplicates: 0,
        resumed: 0,
        rejected: Default::default(),
        failed: Default::default(),
        query_errors: Vec::new(),
    }
}

/// Every tier's candidates, in the group's fixed order; a tier's searches start once the tier
/// before has handed out all its candidates.
fn group_candidates<'a>(
    s: &'a Scraper,
    rows: &'a [Query],
    errors: Arc<Mutex<Vec<QueryError>>>,
) -> impl futures::Stream<Item = (&'a Query, Candidate)> + 'a {
    let max_tier = rows.iter().map(|r| r.tier).max().unwrap_or(0);
    let tiers: Vec<Vec<&Query>> = (0..=max_tier)
        .map(|t| rows.iter().filter(|r| r.tier == t).collect())
        .collect();
    futures::stream::iter(tiers).flat_map(move |tier_rows| {
        let pagers = tier_rows
            .into_iter()
            .map(|q| {
                (
                    q,
                    s.searcher.pager(q.engine, &q.text, q.id.clone(), u32::MAX),
                )
            })
            .collect();
        candidate_stream(pagers, errors.clone())
    })
}

/// A group's candidates from their dispatch until the frontier passes them, their downloads
/// and the journal acknowledgements still to come. (Fields drop in declaration order, on an
/// early return too: the acknowledgements, then the downloads, then the window.)
struct Pipeline<'a> {
    /// Journal acknowledgements still to come. Durability is awaited in batches and before the
    /// group reports, so fsync latency never serialises the group. A crash loses only
    /// unacknowledged records, whose URLs a rerun fetches again in the same order.
    acks: VecDeque<Ack>,
    tasks: JoinSet<(usize, Resolved, OwnedSemaphorePermit)>,
    /// Entries resolved ahead of the frontier to an image the group may not hold yet.
    ahead: usize,
    ready_count: usize,
    pending_count: usize,
    held: HashSet<ContentId>,
    base: usize,
    /// The window: entry k is the candidate at position `base + k` of the group's order. Every
    /// candidate before `base` is settled and counted; `held` is what they came to.
    window: VecDeque<Entry<'a>>,
    wanted: usize,
}

impl<'a> Pipeline<'a> {
    fn new(wanted: usize) -> Self {
        Self {
            acks: VecDeque::new(),
            tasks: JoinSet::new(),
            ahead: 0,
            ready_count: 0,
            pending_count: 0,
            held: HashSet::new(),
            base: 0,
            window: VecDeque::new(),
            wanted,
        }
    }

    /// Stores what is safe to store, then moves the frontier over what is stored, counting it
    /// in `report`, until the group holds what it wants.
    fn advance(
        &mut self,
        s: &Scraper,
        stage: &str,
        report: &mut GroupReport,
    ) -> Result<(), ScrapeError> {
        if self.ready_count > 0 {
            self.ready_count -=
                commit_safe(s, &mut self.window, &self.held, self.wanted, &mut self.acks)?;
        }
        while let Some(Entry {
            slot: Slot::Done(_),
            ..
        }) = self.window.front()
        {
            let entry = self.window.pop_front().expect("front exists");
            self.base += 1;
            if entry.ahead {
                self.ahead -= 1;
            }
            if entry.resumed {
                report.resumed += 1;
            }
            let Slot::Done(settled) = entry.slot else {
                unreachable!()
            };
            account(s, stage, report, &mut self.held, settled);
            if self.held.len() >= self.wanted {
                break;
            }
        }
        Ok(())
    }

    /// Awaits the oldest acknowledgements while more than [`MAX_PENDING_ACKS`] are outstanding.
    async fn await_oldest_acks(&mut self) -> Result<(), ScrapeError> {
        while self.acks.len() > MAX_PENDING_ACKS {
            for ack in self.acks.drain(..MAX_PENDING_ACKS / 2) {
                ack.await?;
            }
        }
        Ok(())
    }

    fn may_dispatch(&self, max_window: usize) -> bool {
        // Dispatch more while the group may need them: at most twice what it still lacks,
        // counting the images resolved ahead of the frontier as had.
        let needed = self.wanted.saturating_sub(self.held.len() + self.ahead);
        let allowed = if needed > 0 {
            2 * needed + DISPATCH_SLACK
        } else {
            0
        };
        self.window.len() < max_window && self.pending_count < allowed
    }

    /// Starts resolving `candidate`, the next in the group's order, and puts it in the window.
    fn dispatch(
        &mut self,
        ctx: &TaskCtx,
        query: &'a Query,
        candidate: Candidate,
        permit: OwnedSemaphorePermit,
    ) {
        let k = self.base + self.window.len();
        let url = candidate.image_url.clone();
        let thumbnail = candidate
            .thumbnail_url
            .clone()
            .filter(|t| query.accept_thumbnails && *t != url);
        let query_id = query.id.clone();
        let ctx = ctx.clone();
        self.tasks.spawn(async move {
            let mut resolved = resolve(&ctx, &query_id, url).await;
            if let Some(thumb) = thumbnail.filter(|_| resolved.is_refusal()) {
                let inner = resolve(&ctx, &query_id, thumb.clone()).await;
                resolved = Resolved::Thumbnail {
                    original: resolved.into_fresh_record(),
                    url: thumb,
                    inner: Box::new(inner),
                };
            }
            (k, resolved, permit)
        });
        self.window.push_back(Entry {
            query,
            candidate,
            slot: Slot::Pending,
            ahead: false,
            resumed: false,
        });
        self.pending_count += 1;
    }

    /// Takes in what a task resolved the candidate at position `k` to.
    fn resolved(
        &mut self,
        s: &Scraper,
        k: usize,
        resolved: Resolved,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), ScrapeError> {
        self.pending_count -= 1;
        let entry = &mut self.window[k - self.base];
        entry.resumed = matches!(resolved, Resolved::Known(_));
        if resolved
            .accepted_id()
            .is_some_and(|id| !self.held.contains(&id))
        {
            entry.ahead = true;
            self.ahead += 1;
        }
        if self.held.len() + (k - self.base) < self.wanted {
            // Even if every candidate before it adds an image, the group still lacks
            // this one: store it now (see `commit_safe`).
            entry.slot = Slot::Done(store(
                s,
                entry.query,
                &entry.candidate,
                resolved,
                &mut self.acks,
            )?);
            drop(permit);
        } else {
            entry.slot = Slot::Ready(resolved, permit);
            self.ready_count += 1;
        }
        Ok(())
    }

    /// Stops what the group no longer needs and waits for its records to be durable. Returns
    /// the images it holds and the candidates dispatched past its last counted one.
    async fn finish(self) -> Result<(usize, usize), ScrapeError> {
        let Pipeline {
            acks,
            mut tasks,
            held,
            window,
            ..
        } = self;
        // Downloads beyond the group's last image are not needed: stop them.
        tasks.abort_all();
        // Wait for them to end, so that none holds the store once the group reports.
        while tasks.join_next().await.is_some() {}
        // Dispatched past the group's last counted candidate: fetched (or cancelled) for nothing.
        let unused = window.len();
        drop(window);
        for ack in acks {
            ack.await?;
        }
        Ok((held.len(), unused))
    }
}

/// Stores every resolved candidate of the window that is sure to be within the group's part of
/// the order: one where, even if every unresolved candidate before it came to a new image, the
/// group would still lack images. The images a group ends with are therefore the same as if it
/// stored strictly in order. Returns how many it stored.
fn commit_safe(
    s: &Scraper,
    window: &mut VecDeque<Entry<'_>>,
    held: &HashSet<ContentId>,
    wanted: usize,
    acks: &mut VecDeque<Ack>,
) -> Result<usize, ScrapeError> {
    let mut stored = 0;
    // An upper bound of the distinct images the group holds before the entry looked at.
    let mut could_hold = held.len();
    for entry in window.iter_mut() {
        if could_hold >= wanted {
            break;
        }
        if matches!(entry.slot, Slot::Ready(..)) {
            let Slot::Ready(resolved, permit) = std::mem::replace(&mut entry.slot, Slot::Pending)
            else {
                unreachable!()
            };
            let settled = store(s, entry.query, &entry.candidate, resolved, acks)?;
            drop(permit);
            entry.slot = Slot::Done(settled);
            stored += 1;
        }
        if entry.may_count(held) {
            could_hold += 1;
        }
    }
    Ok(stored)
}

/// Counts a settled candidate at the frontier, in the group's order.
fn account(
    s: &Scraper,
    stage: &str,
    report: &mut GroupReport,
    held: &mut HashSet<ContentId>,
    settled: Settled,
) {
    report.candidates += 1;
    match settled {
        Settled::Accepted { id, new } => {
            if new {
                report.new += 1;
            }
            if held.insert(id) {
                s.progress.advance(stage, 1);
                s.progress.advance("scrape", 1);
            } else {
                report.duplicates += 1;
            }
        }
        Settled::Rejected(reason) => *report.rejected.entry(reason).or_default() += 1,
        Settled::Failed(reason) => *report.failed.entry(reason).or_default() += 1,
    }
}

/// The candidates of a tier's queries in a fixed order: one page of each query in turn.
fn candidate_stream<'a>(
    pagers: Vec<(&'a Query, Pager<'a>)>,
    errors: Arc<Mutex<Vec<QueryError>>>,
) -> impl futures::Stream<Item = (&'a Query, Candidate)> + 'a {
    struct State<'a> {
        pagers: VecDeque<(&'a Query, Pager<'a>)>,
        ready: VecDeque<(&'a Query, Candidate)>,
        errors: Arc<Mutex<Vec<QueryError>>>,
    }
    let state = State {
        pagers: pagers.into(),
        ready: VecDeque::new(),
        errors,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.ready.pop_front() {
                return Some((item, st));
            }
            let (query, mut pager) = st.pagers.pop_front()?;
            match pager.next_batch().await {
                Ok(Some(batch)) => {
                    st.ready.extend(batch.into_iter().map(|c| (query, c)));
                    st.pagers.push_back((query, pager));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(query = %query.text, engine = %query.engine, "search failed: {e}");
                    st.errors.lock().expect("errors poisoned").push(QueryError {
                        query_id: query.id.clone(),
                        text: query.text.clone(),
                        engine: query.engine.to_string(),
                        error: error_chain(&e),
                        changed: e.is_changed(),
                        blocked: e.is_block(),
                        saved: e.saved().map(|p| p.display().to_string()),
                    });
                }
            }
        }
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        out.push_str(": ");
        out.push_str(&x.to_string());
        source = x.source();
    }
    out
}

/// The candidate's recorded outcome, or a download whose bytes are then hashed and validated
/// (on one of the `checkers` threads). Runs ahead of storing, in the window.
async fn resolve(ctx: &TaskCtx, query_id: &lennonnet_core::QueryId, url: String) -> Resolved {
    if let Ok(Some(state)) = ctx.store.url_state(&url) {
        let failed_transiently = state.ingest.is_none()
            && state
                .fetch
                .as_ref()
                .and_then(|f| f.reason)
                .is_some_and(FailureReason::is_transient);
        let usable =
            state.ingest.is_some() || state.fetch.as_ref().is_some_and(|f| f.reason.is_some());
        if usable && !(ctx.retry_failed && failed_transiently) {
            return Resolved::Known(Box::new(state));
        }
    }
    let outcome = ctx.fetcher.fetch(&url).await;
    let record = FetchOutcome {
        url,
        final_url: outcome.final_url.clone(),
        query_id: Some(query_id.clone()),
        status: outcome.status,
        reason: outcome.reason(),
        bytes: outcome.bytes(),
        duration_ms: outcome.duration.as_millis() as u64,
        at: Timestamp::now(),
    };
    let fetched = match outcome.result {
        Ok(fetched) => fetched,
        Err(failure) => {
            return Resolved::Fetched {
                record: Box::new(record),
                result: Err(failure.reason()),
            };
        }
    };
    let store = ctx.store.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = ctx
        .check_jobs
        .clone()
        .acquire_owned()
        .await
        .expect("check_jobs never closes");
    ctx.checkers.spawn(move || {
        let checked = store.check(fetched.body);
        drop(store);
        // The receiver is gone when the group stopped meanwhile.
        let _ = tx.send(checked);
        drop(job);
    });
    match rx.await {
        Ok(Ok(checked)) => Resolved::Fetched {
            record: Box::new(record),
            result: Ok(Box::new(checked)),
        },
        Ok(Err(e)) => Resolved::Broken(e.into()),
        Err(_) => Resolved::Broken(ScrapeError::Task("an image check thread died".into())),
    }
}

/// Stores what `resolve` found and records the outcome; the acknowledgements of the records it
/// wrote go to `acks`. Cheap: the bytes were checked ahead.
fn store(
    s: &Scraper,
    query: &Query,
    candidate: &Candidate,
    resolved: Resolved,
    acks: &mut VecDeque<Ack>,
) -> Result<Settled, ScrapeError> {
    let url = &candidate.image_url;
    match resolved {
        Resolved::Broken(e) => Err(e),
        Resolved::Thumbnail {
            original,
            url: thumb,
            inner,
        } => {
            if let Some(record) = original {
                acks.push_back(s.store.record_fetch(*record));
            }
            let mut stand_in = candidate.clone();
            stand_in.image_url = thumb;
            stand_in.thumbnail_url = None;
            store_as(s, query, &stand_in, Some(url), *inner, acks)
        }
        other => store_as(s, query, candidate, None, other, acks),
    }
}

/// [`store`] for a candidate whose bytes are at `candidate.image_url`; `thumbnail_of` is the
/// refused original's URL when they are the engine's thumbnail of it.
fn store_as(
    s: &Scraper,
    query: &Query,
    candidate: &Candidate,
    thumbnail_of: Option<&String>,
    resolved: Resolved,
    acks: &mut VecDeque<Ack>,
) -> Result<Settled, ScrapeError> {
    let url = &candidate.image_url;
    let provenance = || {
        let mut p = Provenance::from_candidate(query, candidate, Timestamp::now());
        p.thumbnail_of = thumbnail_of.cloned();
        p
    };
    match resolved {
        Resolved::Broken(e) => Err(e),
        Resolved::Thumbnail { .. } => Err(ScrapeError::Task(
            "a thumbnail stands in for a thumbnail".into(),
        )),
        Resolved::Known(state) => {
            if let Some(ingest) = &state.ingest {
                if let Some(reason) = ingest.rejected {
                    return Ok(Settled::Rejected(reason));
                }
                let known = s.store.provenance(&ingest.id)?;
                let recorded = known
                    .iter()
                    .any(|p| &p.image_url == url && p.query_id.as_ref() == Some(&query.id));
                if !recorded {
                    // The same URL found by another query: keep this provenance too.
                    let path = s.store.object_path(&ingest.id);
                    if let Ok(bytes) = std::fs::read(&path) {
                        let (_, ack) = s.store.ingest_nowait(&bytes, provenance())?;
                        acks.push_back(ack);
                    }
                }
                return Ok(Settled::Accepted {
                    id: ingest.id,
                    new: false,
                });
            }
            // `resolve` keeps a recorded outcome without an ingest only when it names a failure.
            let reason = state.fetch.as_ref().and_then(|f| f.reason).ok_or_else(|| {
                ScrapeError::Task(format!(
                    "{url}: a recorded download with neither an image nor a failure"
                ))
            })?;
            Ok(Settled::Failed(reason))
        }
        Resolved::Fetched { record, result } => {
            let settled = match result {
                Ok(checked) => {
                    let (ingested, ack) = s.store.ingest_checked(*checked, provenance())?;
                    acks.push_back(ack);
                    match ingested.result {
                        Ingested::Accepted { new, .. } => Settled::Accepted {
                            id: ingested.id,
                            new,
                        },
                        Ingested::Rejected { reason, .. } => Settled::Rejected(reason),
                    }
                }
                Err(reason) => Settled::Failed(reason),
            };
            acks.push_back(s.store.record_fetch(*record));
            Ok(settled)
        }
    }
}
