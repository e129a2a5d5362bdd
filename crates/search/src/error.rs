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
    #[error("{engine}: GET {url} failed after {attempts} attempt(s)")]
    Engine {
        engine: EngineKind,
        url: String,
        attempts: u32,
        #[source]
        source: EngineError,
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
