//! Paging through one query's results: stops, deduplication, ranking.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use lennonnet_core::{Candidate, QueryId};
use serde::Serialize;

use super::runtime::{EngineRuntime, Unavailable};
use super::{EngineEvent, Searcher};
use crate::engine::{Cursor, Engine, Request, Response, Step};
use crate::error::SearchError;

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
    pub(super) searcher: &'a Searcher,
    pub(super) adapter: &'static dyn Engine,
    pub(super) runtime: &'a EngineRuntime,
    pub(super) query: String,
    pub(super) query_id: QueryId,
    pub(super) limit: u32,
    pub(super) limit_reason: Stop,
    pub(super) cursor: Option<Cursor>,
    pub(super) seen_urls: HashSet<String>,
    pub(super) seen_cursors: HashSet<Cursor>,
    /// Consecutive pages with skipped entries and nothing new.
    pub(super) barren: u32,
    pub(super) found: u32,
    pub(super) stats: PagerStats,
    pub(super) stop: Option<Stop>,
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

    pub(super) fn remember_token(&self, vqd: &str) {
        let key = (self.query.clone(), self.runtime.settings.user_agent.clone());
        self.searcher
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, vqd.to_string());
    }

    /// The error for an engine that is down or whose format changed, if it is.
    pub(super) fn check_up(&self) -> Result<(), SearchError> {
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

    pub(super) fn emit(&self, event: Option<EngineEvent>) {
        if let Some(event) = event {
            tracing::warn!("{event}");
            if let Some(hook) = &self.searcher.options.on_event {
                hook(&event);
            }
        }
    }

    /// Saves an unrecognised response under `changed_dir`, if set.
    pub(super) fn save_changed(
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
}
