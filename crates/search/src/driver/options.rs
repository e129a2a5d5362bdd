//! What the driver is told: retries, backoff, limits, and the hooks that watch it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lennonnet_core::EngineKind;

use crate::engine::{Cursor, Request, Response};

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
