//! One engine's runtime: its client, its pacer, its circuit breaker and its counters.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lennonnet_config::EngineSettings;
use lennonnet_core::EngineKind;
use reqwest::Url;
use serde::Serialize;

use super::EngineEvent;
use crate::pace::Pacer;

/// One engine's runtime: where it is, its settings, its own client (User-Agent and cookie
/// jar), how fast it may be asked, and whether it is up.
#[derive(Debug)]
pub(super) struct EngineRuntime {
    pub(super) base: Url,
    pub(super) settings: EngineSettings,
    pub(super) client: reqwest::Client,
    pub(super) pacer: Arc<Pacer>,
    pub(super) timeout: Duration,
    pub(super) health: Mutex<Health>,
    pub(super) counters: Counters,
}

/// The circuit breaker's state for one engine.
#[derive(Debug, Default)]
pub(super) struct Health {
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
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) pages: AtomicU64,
    pub(super) candidates: AtomicU64,
    pub(super) blocks: AtomicU64,
    pub(super) rate_limits: AtomicU64,
    pub(super) cooldowns: AtomicU64,
    pub(super) changed: AtomicU64,
    pub(super) token_refreshes: AtomicU64,
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
pub(super) enum Unavailable {
    Down(SystemTime, u32),
    FormatChanged(u32, Option<PathBuf>),
}

impl EngineRuntime {
    /// `None` when the engine may be asked now.
    pub(super) fn unavailable(&self) -> Option<Unavailable> {
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
    pub(super) fn succeeded(&self) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.blocks_in_a_row = 0;
        h.changed_in_a_row = 0;
    }

    /// A block or rate limit, which asks to wait `hold` (its `Retry-After`, or the first
    /// backoff delay). Every request to the engine is held back that long. Returns the event
    /// when it takes the engine down.
    pub(super) fn blocked(&self, breaker: bool, hold: Duration) -> Option<EngineEvent> {
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
    pub(super) fn changed(&self, saved: Option<PathBuf>, breaker: bool) -> Option<EngineEvent> {
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

    pub(super) fn stats(&self) -> EngineStats {
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
