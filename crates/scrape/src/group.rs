use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lennonnet_core::{Candidate, ContentId, Query};
use lennonnet_fetch::{Failure, Outcome};
use lennonnet_search::Pager;
use lennonnet_store::{Ack, FetchOutcome, Ingested, Provenance, Timestamp, UrlState};

use crate::{GroupReport, QueryError, ScrapeError, Scraper};

/// Acknowledgements awaited at once when this many are outstanding.
const MAX_PENDING_ACKS: usize = 64;

/// What is known of a candidate before storing: its recorded outcome, or a fresh download.
enum Resolved {
    Known(Box<UrlState>),
    Fetched(Outcome),
}

/// What a candidate came to.
enum Settled {
    Accepted { id: ContentId, new: bool },
    Rejected(String),
    Failed(String),
}

pub(crate) async fn work(s: &Scraper, rows: Vec<Query>) -> Result<GroupReport, ScrapeError> {
    let first = &rows[0];
    let stage = format!("group {}", first.group);
    let mut report = GroupReport {
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
    };
    s.progress.start(&stage, Some(first.wanted as u64));
    let mut held: HashSet<ContentId> = HashSet::new();
    let errors: Arc<Mutex<Vec<QueryError>>> = Arc::new(Mutex::new(Vec::new()));
    let max_tier = rows.iter().map(|r| r.tier).max().unwrap_or(0);
    // Journal acknowledgements still to come. Results are counted as soon as they are known
    // (validation is synchronous); durability is awaited in batches and before the group
    // reports, so fsync latency never serialises the group. A crash loses only unacknowledged
    // records, whose URLs a rerun fetches again in the same order.
    let mut pending: Vec<Ack> = Vec::new();

    'tiers: for tier in 0..=max_tier {
        if held.len() as u32 >= first.wanted || s.stop.load(Ordering::SeqCst) {
            break;
        }
        let tier_rows: Vec<&Query> = rows.iter().filter(|r| r.tier == tier).collect();
        let pagers: Vec<(&Query, Pager<'_>)> = tier_rows
            .iter()
            .map(|q| {
                (
                    *q,
                    s.searcher.pager(q.engine, &q.text, q.id.clone(), u32::MAX),
                )
            })
            .collect();
        let candidates = candidate_stream(pagers, errors.clone());
        let prefetch = s.config.scrape.prefetch_per_group.max(1) as usize;
        let mut results = Box::pin(
            candidates
                .map(|(q, c)| async move {
                    // A download holds one unit of the run's prefetch budget until stored.
                    let permit = s
                        .prefetch_budget
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("budget never closes");
                    let r = resolve(s, &c).await;
                    (q, c, r, permit)
                })
                .buffered(prefetch),
        );
        while let Some((query, candidate, resolved, _permit)) = results.next().await {
            if s.stop.load(Ordering::SeqCst) {
                break 'tiers;
            }
            report.candidates += 1;
            if matches!(resolved, Resolved::Known(_)) {
                report.resumed += 1;
            }
            if pending.len() >= MAX_PENDING_ACKS {
                for ack in pending.drain(..) {
                    ack.await?;
                }
            }
            match settle(s, query, &candidate, resolved, &mut pending).await? {
                Settled::Accepted { id, new } => {
                    if new {
                        report.new += 1;
                    }
                    if held.insert(id) {
                        s.progress.advance(&stage, 1);
                        s.progress.advance("scrape", 1);
                    } else {
                        report.duplicates += 1;
                    }
                }
                Settled::Rejected(reason) => *report.rejected.entry(reason).or_default() += 1,
                Settled::Failed(reason) => *report.failed.entry(reason).or_default() += 1,
            }
            if held.len() as u32 >= first.wanted {
                break 'tiers;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    report.got = held.len() as u32;
    report.query_errors = std::mem::take(&mut *errors.lock().expect("errors poisoned"));
    s.progress.finish(&stage);
    tracing::info!(group = %report.group, wanted = report.wanted, got = report.got, candidates = report.candidates, "group done");
    Ok(report)
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
                        query_id: query.id.to_string(),
                        text: query.text.clone(),
                        engine: query.engine.to_string(),
                        error: error_chain(&e),
                        changed: e.is_changed(),
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

/// The candidate's recorded outcome, or a download. Runs ahead of storing, in the prefetch window.
async fn resolve(s: &Scraper, candidate: &Candidate) -> Resolved {
    let url = &candidate.image_url;
    if let Ok(Some(state)) = s.store.url_state(url) {
        let failed_transiently = state.ingest.is_none()
            && state
                .fetch
                .as_ref()
                .and_then(|f| f.reason.as_deref())
                .is_some_and(Failure::reason_is_transient);
        let usable =
            state.ingest.is_some() || state.fetch.as_ref().is_some_and(|f| f.reason.is_some());
        if usable && !(s.retry_failed && failed_transiently) {
            return Resolved::Known(Box::new(state));
        }
    }
    Resolved::Fetched(s.fetcher.fetch(url).await)
}

/// Stores what `resolve` found, in order, and records the outcome; the acknowledgements of the
/// records it wrote go to `pending`.
async fn settle(
    s: &Scraper,
    query: &Query,
    candidate: &Candidate,
    resolved: Resolved,
    pending: &mut Vec<Ack>,
) -> Result<Settled, ScrapeError> {
    let url = &candidate.image_url;
    match resolved {
        Resolved::Known(state) => {
            if let Some(ingest) = &state.ingest {
                if let Some(reason) = ingest.rejected {
                    return Ok(Settled::Rejected(reason.as_str().to_string()));
                }
                let known = s.store.provenance(&ingest.id)?;
                let recorded = known
                    .iter()
                    .any(|p| &p.image_url == url && p.query_id.as_ref() == Some(&query.id));
                if !recorded {
                    // The same URL found by another query: keep this provenance too.
                    let path = s.store.object_path(&ingest.id);
                    if let Ok(bytes) = std::fs::read(&path) {
                        let prov = Provenance::from_candidate(query, candidate, Timestamp::now());
                        let (_, ack) = ingest_blocking(s, bytes, prov).await?;
                        pending.push(ack);
                    }
                }
                return Ok(Settled::Accepted {
                    id: ingest.id,
                    new: false,
                });
            }
            let reason = state
                .fetch
                .as_ref()
                .and_then(|f| f.reason.clone())
                .unwrap_or_else(|| "unknown".into());
            Ok(Settled::Failed(reason))
        }
        Resolved::Fetched(outcome) => {
            let record = FetchOutcome {
                url: url.clone(),
                final_url: outcome.final_url.clone(),
                query_id: Some(query.id.clone()),
                status: outcome.status,
                reason: outcome.reason().map(str::to_string),
                bytes: outcome.bytes(),
                duration_ms: outcome.duration.as_millis() as u64,
                at: Timestamp::now(),
            };
            let settled = match outcome.result {
                Ok(fetched) => {
                    let prov = Provenance::from_candidate(query, candidate, Timestamp::now());
                    let (ingested, ack) = ingest_blocking(s, fetched.body.to_vec(), prov).await?;
                    pending.push(ack);
                    match ingested.result {
                        Ingested::Accepted { new, .. } => Settled::Accepted {
                            id: ingested.id,
                            new,
                        },
                        Ingested::Rejected { reason, .. } => {
                            Settled::Rejected(reason.as_str().to_string())
                        }
                    }
                }
                Err(failure) => Settled::Failed(failure.reason().to_string()),
            };
            pending.push(s.store.record_fetch(record));
            Ok(settled)
        }
    }
}

/// Validates, hashes and stores off the async threads; the ack resolves once durable.
async fn ingest_blocking(
    s: &Scraper,
    bytes: Vec<u8>,
    prov: Provenance,
) -> Result<(lennonnet_store::IngestOutcome, Ack), ScrapeError> {
    let store = s.store.clone();
    let out = tokio::task::spawn_blocking(move || store.ingest_nowait(&bytes, prov))
        .await
        .map_err(|e| ScrapeError::Task(e.to_string()))??;
    Ok(out)
}
