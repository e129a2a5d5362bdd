//! Why a download failed, as recorded in the journal and counted in reports.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable name of a download failure. Written to the journal by name, so the names never
/// change; judged again on resume (`--retry-failed` retries the transient ones).
/// Ordered by name, as reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    BadUrl,
    AddressRefused,
    Connect,
    FirstByteTimeout,
    TotalTimeout,
    Stalled,
    Body,
    #[serde(rename = "http_5xx")]
    Http5xx,
    #[serde(rename = "http_404")]
    Http404,
    #[serde(rename = "http_410")]
    Http410,
    /// Another 4xx status (401 and 403 among them).
    #[serde(rename = "http_4xx")]
    Http4xx,
    RateLimited,
    TooLarge,
    TooManyRedirects,
    RedirectLoop,
    BadRedirect,
    NotAnImage,
}

impl FailureReason {
    pub const ALL: [FailureReason; 17] = [
        Self::BadUrl,
        Self::AddressRefused,
        Self::Connect,
        Self::FirstByteTimeout,
        Self::TotalTimeout,
        Self::Stalled,
        Self::Body,
        Self::Http5xx,
        Self::Http404,
        Self::Http410,
        Self::Http4xx,
        Self::RateLimited,
        Self::TooLarge,
        Self::TooManyRedirects,
        Self::RedirectLoop,
        Self::BadRedirect,
        Self::NotAnImage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadUrl => "bad_url",
            Self::AddressRefused => "address_refused",
            Self::Connect => "connect",
            Self::FirstByteTimeout => "first_byte_timeout",
            Self::TotalTimeout => "total_timeout",
            Self::Stalled => "stalled",
            Self::Body => "body",
            Self::Http5xx => "http_5xx",
            Self::Http404 => "http_404",
            Self::Http410 => "http_410",
            Self::Http4xx => "http_4xx",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::TooManyRedirects => "too_many_redirects",
            Self::RedirectLoop => "redirect_loop",
            Self::BadRedirect => "bad_redirect",
            Self::NotAnImage => "not_an_image",
        }
    }

    /// Whether another attempt, later, might succeed: the failures `--retry-failed` retries.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Connect
                | Self::FirstByteTimeout
                | Self::TotalTimeout
                | Self::Stalled
                | Self::Body
                | Self::Http5xx
                | Self::RateLimited
        )
    }

    /// Whether the host refused to serve the file to us (401, 403, or a page instead of the
    /// image, as hotlink protection serves), given the HTTP status: the case where an engine's
    /// thumbnail may stand in for the original.
    pub fn is_refusal(self, status: Option<u16>) -> bool {
        match self {
            Self::NotAnImage => true,
            Self::Http4xx => matches!(status, Some(401 | 403)),
            _ => false,
        }
    }
}

impl Ord for FailureReason {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for FailureReason {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json() {
        for r in FailureReason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<FailureReason>(&json).unwrap(), r);
        }
    }
}
