//! The image downloader.
//!
//! One [`Fetcher`] per run holds the one HTTP client (from `lennonnet-http`) and the limits:
//! a global concurrency limit, a per-host limit with per-host pacing, and a map of URLs in
//! flight so that the same URL asked for twice at once is fetched once. A fetch never panics
//! and never returns a process error: every URL ends in a [`Fetched`] image or a typed
//! [`Failure`] with a stable reason, which the caller records.
//!
//! What a fetch enforces:
//! - **Retries**: connect errors, timeouts, stalls, 5xx and 429 are retried with exponential
//!   backoff and jitter; a 429's or 503's `Retry-After` is honoured (up to the total timeout).
//!   Other 4xx are final.
//! - **Timeouts**: connect (the client), first byte (request to headers), total (one attempt,
//!   redirects included), and a stall timeout (fewer than `stall_min_bytes_per_sec` over
//!   `stall_window_secs`).
//! - **Size**: `max_bytes`, from `Content-Length` before reading and while streaming.
//! - **Redirects**: followed here, hop by hop, at most `max_redirects`, each hop checked by the
//!   address guard, loops detected.
//! - **Content**: the type is sniffed from the bytes, never taken from the URL or
//!   `Content-Type`; HTML, text and unknown bytes are refused with a reason.
//! - **Address guard**: targets resolving to loopback, private, link-local, multicast,
//!   unspecified (and other non-public) addresses are refused unless
//!   `[http] allow_private_addresses`.

mod fetcher;
mod guard;
mod hosts;
mod outcome;
mod sniff;

pub use fetcher::{FetchError, Fetcher};
pub use guard::{AddressGuard, forbidden_reason};
pub use outcome::{Failure, Fetched, Outcome};
pub use sniff::{Sniffed, sniff};
