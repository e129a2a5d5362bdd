use std::time::Duration;

use lennonnet_config::EngineSettings;
use lennonnet_core::{Candidate, EngineKind};
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde::Serialize;

use crate::EngineError;

/// One search engine's adapter: how to ask for a page of results, and how to read the answer.
///
/// [`Engine::request`] builds the request for a query at a [`Cursor`]; [`Engine::parse`] is
/// pure: it reads a [`Response`] (status, headers, bytes) and returns a [`Page`] or a typed
/// [`EngineError`]. Neither does IO, so the parsers are tested on recorded responses and run by
/// `lennonnet engines parse` on a saved file exactly as they run in a search.
pub trait Engine: Send + Sync + 'static {
    fn kind(&self) -> EngineKind;

    /// The cursor of a query's first request: a token step for DuckDuckGo, the first results
    /// page for the others.
    fn start(&self) -> Cursor {
        Cursor::results(Vec::new())
    }

    /// The request for `query` at `cursor`. `base` is the engine's base URL (the real engine's
    /// or the offline mirror's); a path in it is kept. `settings` gives the region, filters,
    /// `Accept-Language` and the like (the client sets the User-Agent).
    fn request(
        &self,
        base: &Url,
        settings: &EngineSettings,
        query: &str,
        cursor: &Cursor,
    ) -> Request;

    /// Reads the response to the request made at `cursor`.
    ///
    /// "No results" is an empty page. A response that is not recognised as one of the engine's
    /// known answers is [`EngineError::Changed`], never an empty page. A redirect, a challenge
    /// page, or HTML where JSON was asked for is [`EngineError::Blocked`].
    fn parse(
        &self,
        settings: &EngineSettings,
        cursor: &Cursor,
        response: &Response,
    ) -> Result<Page, EngineError>;
}

/// The adapter for `kind`.
pub fn adapter(kind: EngineKind) -> &'static dyn Engine {
    match kind {
        EngineKind::DuckDuckGo => &crate::engines::DuckDuckGo,
        EngineKind::Bing => &crate::engines::Bing,
        EngineKind::WikimediaCommons => &crate::engines::WikimediaCommons,
    }
}

/// Where a query's paging stands: which kind of request comes next, and the query parameters
/// the engine's previous answer asked to send (DuckDuckGo's `next` and `vqd`, Bing's `first`,
/// Commons' `continue` object). Cursors compare equal when they would make the same request, so
/// the paging driver uses them to detect loops.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Cursor {
    pub step: Step,
    /// Parameters added to, or replacing, the engine's fixed ones, in order.
    pub params: Vec<(String, String)>,
}

/// The kind of request a cursor stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A setup request that brings no results (DuckDuckGo's HTML page holding the `vqd` token).
    Token,
    /// A page of results.
    Results,
}

impl Cursor {
    pub fn token() -> Self {
        Self {
            step: Step::Token,
            params: Vec::new(),
        }
    }

    pub fn results(params: Vec<(String, String)>) -> Self {
        Self {
            step: Step::Results,
            params,
        }
    }

    /// The value of parameter `name`, if the cursor sets it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A GET request an adapter wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: Url,
    /// Extra headers (`Accept`, `Referer`); the client adds the User-Agent.
    pub headers: Vec<(&'static str, String)>,
}

/// What came back: the status, the headers and the whole body.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// A 200 response with no headers: how a saved body is parsed by `engines parse`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// The `Retry-After` header as a delay: delta-seconds, or an HTTP date taken relative to
    /// the response's own `Date` header (or to now when it has none). Unparseable values are
    /// ignored.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self
            .headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?;
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        let now = self
            .headers
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or_else(std::time::SystemTime::now);
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A redirect (3xx). Search requests never follow one: the engines redirect a client they
    /// take for a bot to a challenge page.
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }

    /// Whether the body is an HTML document (by its Content-Type, or by its first bytes).
    pub fn is_html(&self) -> bool {
        let by_type = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().contains("text/html"));
        let start = self
            .body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(&[][..], |i| &self.body[i..]);
        let by_bytes = start.first() == Some(&b'<')
            && !start.starts_with(b"<?xml")
            && start
                .get(..64)
                .unwrap_or(start)
                .to_ascii_lowercase()
                .windows(4)
                .any(|w| {
                    w == b"html" || w == b"<hea" || w == b"<bod" || w == b"<div" || w == b"<for"
                });
        by_type || by_bytes
    }

    /// Whether the body holds a challenge form (`<form id="challenge-form"`), the page the
    /// engines serve a client they take for a bot.
    pub fn has_challenge_form(&self) -> bool {
        crate::engines::memmem(&self.body, b"challenge-form").is_some()
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The page's results in the engine's order. Their `rank` is the 1-based position on this
    /// page and their `query_id` is empty: the paging driver sets both for the whole query.
    pub candidates: Vec<Candidate>,
    /// Entries the page held that could not be read (a Bing anchor with no `m` or broken JSON,
    /// a DuckDuckGo result with no image, a Commons page without image info).
    pub skipped: u32,
    /// The next request, or `None` when the engine says there is no more.
    pub next: Option<Cursor>,
}

/// Builds `{base}/{path}` with `fixed` parameters, each replaced in place by a cursor parameter
/// of the same name, then the cursor's other parameters appended in order.
pub(crate) fn build_url(
    base: &Url,
    path: &str,
    fixed: &[(&str, &str)],
    cursor: &[(String, String)],
) -> Url {
    let mut url = base.clone();
    {
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}/{path}"));
    }
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in fixed {
            let v = cursor
                .iter()
                .find(|(ck, _)| ck == k)
                .map(|(_, cv)| cv.as_str())
                .unwrap_or(v);
            q.append_pair(k, v);
        }
        for (k, v) in cursor {
            if !fixed.iter().any(|(fk, _)| fk == k) {
                q.append_pair(k, v);
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}
