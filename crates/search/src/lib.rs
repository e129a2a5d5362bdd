//! Lennonnet's search stage: image-search engine adapters and the driver that pages through
//! them politely.
//!
//! - [`Engine`]: one interface for every engine. It builds the [`Request`] for a query at a
//!   [`Cursor`], and *parses without IO*: a [`Response`] (status, headers, bytes) becomes a
//!   [`Page`] (candidates and the next cursor) or a typed [`EngineError`]. "No results" is an
//!   empty page; a response whose structure is not recognised is [`EngineError::Changed`],
//!   never an empty page.
//! - The adapters: [`DuckDuckGo`] (`vqd` token, then `i.js` JSON), [`Bing`] (`images/async`
//!   HTML) and [`WikimediaCommons`] (the MediaWiki API, with licences).
//! - [`Searcher`] and [`Pager`]: the async driver. One HTTP client per engine (from
//!   `lennonnet-http`: the engine's User-Agent, its own cookie jar, gzip and brotli, redirects
//!   never followed), one [`Pacer`] per engine at its `requests_per_sec`, bounded retries that
//!   honour `Retry-After`, a circuit breaker per engine (down for `cooldown_secs` after
//!   `block_threshold` blocks in a row; failed for the run after `changed_threshold`
//!   unrecognised pages in a row, each saved for `engines parse`), DuckDuckGo's tokens cached
//!   per (query, User-Agent) and fetched afresh once after a 403, a page cap, deduplication by
//!   image URL and loop detection by cursor. Errors carry the engine and the URL
//!   ([`SearchError`]).
//!
//! Search never downloads images: candidates are URLs and what the engine said about them.

mod driver;
mod engine;
mod engines;
mod error;
mod pace;
mod save;

pub use driver::{
    EngineEvent, EngineStats, EventHook, Pager, PagerStats, ResponseHook, SearchOptions, Searcher,
    Stop, opt_http_date,
};
pub use engine::{Cursor, Engine, Page, Request, Response, Step, adapter};
pub use engines::{Bing, DuckDuckGo, WikimediaCommons, extract_vqd};
pub use error::{EngineError, SearchError, TransportError};
pub use pace::Pacer;
pub use save::{save_response, save_responses_to};
