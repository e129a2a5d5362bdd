use std::fmt;
use std::time::Duration;

use lennonnet_core::EngineKind;

/// What a parser found wrong with a response. The parser does not know the URL; the paging
/// driver wraps this in a [`SearchError`] that does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine asks us to slow down (HTTP 429, and DuckDuckGo's 202, 403 and 418, or a
    /// MediaWiki `ratelimited`/`maxlag` error). Retried after `retry_after`, or a backoff.
    #[error("rate limited{}", RetryAfter(*retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// The engine answered with its anomaly or captcha page: it takes us for a bot. Retried
    /// like a rate limit; if it persists, slow down (`requests_per_sec`) or try later.
    #[error("blocked: the engine answered with its anomaly/captcha page")]
    Blocked,
    /// DuckDuckGo's HTML page held no `vqd` token, so no image search can be made.
    #[error("no search token (vqd) in the page")]
    TokenMissing,
    /// The response is not one of the engine's known answers: the engine changed its page or
    /// its API. Never retried; check the saved response with `lennonnet engines parse`.
    #[error("the response's structure was not recognised: expected {expected}")]
    Changed { expected: String },
    /// An HTTP error status that means nothing more specific. 5xx are retried.
    #[error("HTTP status {status}")]
    Http { status: u16 },
    /// The MediaWiki API answered with an error object.
    #[error("API error {code:?}: {info}")]
    Api { code: String, info: String },
}

impl EngineError {
    pub(crate) fn changed(expected: impl Into<String>) -> Self {
        Self::Changed {
            expected: expected.into(),
        }
    }

    /// Whether the same request may succeed later: rate limits, blocks and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::RateLimited { .. } | EngineError::Blocked => true,
            EngineError::Http { status } => *status >= 500,
            EngineError::TokenMissing | EngineError::Changed { .. } | EngineError::Api { .. } => {
                false
            }
        }
    }

    /// The delay the engine asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EngineError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

struct RetryAfter(Option<Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, " (Retry-After {} s)", d.as_secs_f64()),
            None => Ok(()),
        }
    }
}

/// A search that failed: the engine, the request that failed, how many times it was tried,
/// and why.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The engine's answer was understood to be an error (or not understood at all).
    #[error("{engine}: GET {url} failed after {attempts} attempt(s){}", Saved(saved.as_deref()))]
    Engine {
        engine: EngineKind,
        url: String,
        attempts: u32,
        #[source]
        source: EngineError,
        /// Where the unrecognised response was saved (for `Changed`, when saving is on).
        saved: Option<std::path::PathBuf>,
    },
    /// The engine blocked or rate-limited `blocks` answers in a row and is left alone until
    /// `until` (its `cooldown_secs`).
    #[error("{engine} is down until {} after {blocks} blocks or rate limits in a row", httpdate::fmt_http_date(*until))]
    Down {
        engine: EngineKind,
        until: std::time::SystemTime,
        blocks: u32,
    },
    /// The engine answered `queries` queries in a row with pages no parser recognises: its
    /// format changed, and it is not asked again in this run.
    #[error("{engine} answered {queries} queries in a row with pages no parser recognises: its format has changed{}", Saved(saved.as_deref()))]
    FormatChanged {
        engine: EngineKind,
        queries: u32,
        saved: Option<std::path::PathBuf>,
    },
    /// No answer: connection refused, timeout, a body that could not be read.
    #[error("{engine}: GET {url} failed after {attempts} attempt(s)")]
    Transport {
        engine: EngineKind,
        url: String,
        attempts: u32,
        #[source]
        source: TransportError,
    },
    /// The engine's base URL from config is not a URL.
    #[error("{engine}: base URL {url:?} is not a valid http(s) URL")]
    BaseUrl { engine: EngineKind, url: String },
    #[error(transparent)]
    Client(#[from] lennonnet_http::ClientError),
}

impl SearchError {
    /// The parser's verdict, when the failure was one.
    pub fn engine_error(&self) -> Option<&EngineError> {
        match self {
            SearchError::Engine { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the engine's answer was not recognised (see [`EngineError::Changed`]).
    pub fn is_changed(&self) -> bool {
        matches!(self.engine_error(), Some(EngineError::Changed { .. }))
            || matches!(self, SearchError::FormatChanged { .. })
    }

    /// Whether the engine refused: a block or rate limit that outlasted the retries, or an
    /// engine down for its cool-down.
    pub fn is_block(&self) -> bool {
        matches!(
            self.engine_error(),
            Some(EngineError::Blocked | EngineError::RateLimited { .. })
        ) || matches!(self, SearchError::Down { .. })
    }

    /// Where the unrecognised response was saved, if it was.
    pub fn saved(&self) -> Option<&std::path::Path> {
        match self {
            SearchError::Engine { saved, .. } | SearchError::FormatChanged { saved, .. } => {
                saved.as_deref()
            }
            _ => None,
        }
    }
}

struct Saved<'a>(Option<&'a std::path::Path>);

impl fmt::Display for Saved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, " (the response is saved in {})", p.display()),
            None => Ok(()),
        }
    }
}

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error(transparent)]
    Body(#[from] lennonnet_http::BodyError),
}
