use std::time::Duration;

use bytes::Bytes;

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
    pub fn reason(&self) -> Option<&'static str> {
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
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::BadUrl { .. } => "bad_url",
            Failure::AddressRefused { .. } => "address_refused",
            Failure::Connect { .. } => "connect",
            Failure::FirstByteTimeout { .. } => "first_byte_timeout",
            Failure::TotalTimeout { .. } => "total_timeout",
            Failure::Stalled { .. } => "stalled",
            Failure::Body { .. } => "body",
            Failure::Http { status } if *status >= 500 => "http_5xx",
            Failure::Http { status: 404 } => "http_404",
            Failure::Http { status: 410 } => "http_410",
            Failure::Http { .. } => "http_4xx",
            Failure::RateLimited => "rate_limited",
            Failure::TooLarge { .. } => "too_large",
            Failure::TooManyRedirects { .. } => "too_many_redirects",
            Failure::RedirectLoop { .. } => "redirect_loop",
            Failure::BadRedirect { .. } => "bad_redirect",
            Failure::NotAnImage { .. } => "not_an_image",
        }
    }

    /// Whether another attempt, later, might succeed: the failures `--retry-failed` retries.
    pub fn is_transient(&self) -> bool {
        Self::reason_is_transient(self.reason())
    }

    /// Whether the host refused to serve the file to us (401, 403, or a page instead of the
    /// image, as hotlink protection serves), by reason name and status, for records read back
    /// from a journal: the case where an engine's thumbnail may stand in for the original.
    pub fn reason_is_refusal(reason: &str, status: Option<u16>) -> bool {
        match reason {
            "not_an_image" => true,
            "http_4xx" => matches!(status, Some(401 | 403)),
            _ => false,
        }
    }

    /// [`is_transient`](Self::is_transient) by reason name, for records read back from a journal.
    pub fn reason_is_transient(reason: &str) -> bool {
        matches!(
            reason,
            "connect"
                | "first_byte_timeout"
                | "total_timeout"
                | "stalled"
                | "body"
                | "http_5xx"
                | "rate_limited"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable_and_transience_follows_them() {
        let check = |f: Failure, reason: &str, transient: bool| {
            assert_eq!(f.reason(), reason);
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
