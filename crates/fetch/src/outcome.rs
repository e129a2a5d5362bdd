use std::time::Duration;

use bytes::Bytes;

use lennonnet_core::FailureReason;

use crate::sniff::Sniffed;

/// The final outcome of one URL: an image's bytes, or a typed failure. Either way it says how
/// long it took, how many attempts it needed, and where it ended up.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub url: String,
    /// The URL after redirects, when it differs.
    pub final_url: Option<String>,
    /// The last HTTP status seen, if a response came.
    pub status: Option<u16>,
    pub duration: Duration,
    pub attempts: u32,
    pub result: Result<Fetched, Failure>,
}

impl Outcome {
    /// The stable reason of a failure (`None` for a success).
    pub fn reason(&self) -> Option<FailureReason> {
        self.result.as_ref().err().map(Failure::reason)
    }

    /// Bytes received: the body of a success, or nothing.
    pub fn bytes(&self) -> Option<u64> {
        self.result.as_ref().ok().map(|f| f.body.len() as u64)
    }
}

/// A downloaded image.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    /// What the bytes are, from their magic numbers.
    pub sniffed: Sniffed,
    /// The `Content-Type` the server claimed, for the record.
    pub content_type: Option<String>,
}

/// Why a URL gave no image. Each has a stable snake_case [`reason`](Failure::reason), which is
/// what the journal records and what `--retry-failed` selects on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("not a usable URL: {message}")]
    BadUrl { message: String },
    #[error("refused address: {message}")]
    AddressRefused { message: String },
    #[error("cannot connect: {message}")]
    Connect { message: String },
    #[error("no response headers within {}s", secs.as_secs_f64())]
    FirstByteTimeout { secs: Duration },
    #[error("not finished within {}s", secs.as_secs_f64())]
    TotalTimeout { secs: Duration },
    #[error("stalled: {bytes_per_sec} bytes/s, below the minimum {min_bytes_per_sec}")]
    Stalled {
        bytes_per_sec: u64,
        min_bytes_per_sec: u64,
    },
    #[error("connection broke while reading: {message}")]
    Body { message: String },
    #[error("HTTP {status}")]
    Http { status: u16 },
    #[error("rate limited (HTTP 429)")]
    RateLimited,
    #[error("larger than {max_bytes} bytes{}", declared.map(|d| format!(" (Content-Length {d})")).unwrap_or_default())]
    TooLarge {
        max_bytes: u64,
        declared: Option<u64>,
    },
    #[error("more than {max} redirects")]
    TooManyRedirects { max: u32 },
    #[error("redirect loop back to {url}")]
    RedirectLoop { url: String },
    #[error("redirect without a usable Location: {message}")]
    BadRedirect { message: String },
    #[error("not an image: the body is {}", sniffed.as_str())]
    NotAnImage { sniffed: Sniffed },
}

impl Failure {
    /// The stable name of this failure kind.
    pub fn reason(&self) -> FailureReason {
        match self {
            Failure::BadUrl { .. } => FailureReason::BadUrl,
            Failure::AddressRefused { .. } => FailureReason::AddressRefused,
            Failure::Connect { .. } => FailureReason::Connect,
            Failure::FirstByteTimeout { .. } => FailureReason::FirstByteTimeout,
            Failure::TotalTimeout { .. } => FailureReason::TotalTimeout,
            Failure::Stalled { .. } => FailureReason::Stalled,
            Failure::Body { .. } => FailureReason::Body,
            Failure::Http { status } if *status >= 500 => FailureReason::Http5xx,
            Failure::Http { status: 404 } => FailureReason::Http404,
            Failure::Http { status: 410 } => FailureReason::Http410,
            Failure::Http { .. } => FailureReason::Http4xx,
            Failure::RateLimited => FailureReason::RateLimited,
            Failure::TooLarge { .. } => FailureReason::TooLarge,
            Failure::TooManyRedirects { .. } => FailureReason::TooManyRedirects,
            Failure::RedirectLoop { .. } => FailureReason::RedirectLoop,
            Failure::BadRedirect { .. } => FailureReason::BadRedirect,
            Failure::NotAnImage { .. } => FailureReason::NotAnImage,
        }
    }

    /// Whether another attempt, later, might succeed: the failures `--retry-failed` retries.
    pub fn is_transient(&self) -> bool {
        self.reason().is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable_and_transience_follows_them() {
        let check = |f: Failure, reason: &str, transient: bool| {
            assert_eq!(f.reason().as_str(), reason);
            assert_eq!(f.is_transient(), transient, "{reason}");
        };
        check(Failure::Http { status: 503 }, "http_5xx", true);
        check(Failure::Http { status: 404 }, "http_404", false);
        check(Failure::Http { status: 403 }, "http_4xx", false);
        check(Failure::RateLimited, "rate_limited", true);
        check(
            Failure::Stalled {
                bytes_per_sec: 3,
                min_bytes_per_sec: 2048,
            },
            "stalled",
            true,
        );
        check(
            Failure::TooLarge {
                max_bytes: 1,
                declared: None,
            },
            "too_large",
            false,
        );
        check(
            Failure::NotAnImage {
                sniffed: Sniffed::Html,
            },
            "not_an_image",
            false,
        );
        check(
            Failure::AddressRefused {
                message: String::new(),
            },
            "address_refused",
            false,
        );
    }
}
