//! Bing images: `images/async` HTML fragments, one `a.iusc` anchor per result.

use std::sync::LazyLock;

use lennonnet_config::EngineSettings;
use lennonnet_core::{Candidate, EngineKind};
use reqwest::Url;
use scraper::{ElementRef, Html, Selector};
use serde::Deserialize;

use super::{memmem, positive_dimension, size_from_text};
use crate::engine::{Cursor, Engine, Page, Request, Response, build_url};
use crate::error::EngineError;

/// The Bing adapter.
///
/// `GET {base}/images/async?q=..&first=N&count=35&async=1&mkt=<region>` (with a browser's
/// User-Agent, `Accept-Language`, and gzip and brotli accepted: Bing sends about one result to
/// other clients) returns an HTML fragment with one
/// `<a class="iusc" m="…" href="…">` per result. `m` is HTML-escaped JSON:
/// `{"murl": image, "turl": thumbnail, "purl": page, "t": title, …}`. Width and height come
/// from the anchor's `href` (`expw`, `exph`) or, failing that, from the result's info text
/// (`1200 x 800 · jpeg`) next to the anchor.
///
/// - Anchors with no `m`, or whose `m` is not JSON with a `murl`, are skipped and counted; if
///   *every* anchor is, the page is [`EngineError::Changed`] (the format moved).
/// - No anchor at all: an empty body (what `images/async` returns past the last result), or a
///   page with Bing's empty results list or its "There are no results for" text, is an empty
///   page; a captcha/challenge page is [`EngineError::Blocked`]; anything else is
///   [`EngineError::Changed`].
/// - The next request's `first` is this one's plus the number of anchors on the page; a page
///   with no anchor ends the query. Past its last result Bing may repeat its last page: the
///   paging driver ends a query at the first page that brings no new image URL.
/// - A redirect (to a challenge) is [`EngineError::Blocked`], as is a challenge form.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bing;

/// Results per request (Bing's own page size for `images/async`).
pub const PAGE_SIZE: u32 = 35;

static ANCHOR: LazyLock<Selector> = LazyLock::new(|| Selector::parse("a.iusc").unwrap());
static INFO: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse(".img_info, .nowrap, .infnmpt").unwrap());
static ITEMS: LazyLock<Selector> = LazyLock::new(|| Selector::parse("li, img, a").unwrap());
static EMPTY_LIST: LazyLock<Selector> = LazyLock::new(|| {
    Selector::parse("ul.dgControl_list, div.dgControl, .dg_b, #mmComponent_images_1").unwrap()
});

const NO_RESULTS_TEXT: [&[u8]; 2] = [b"There are no results for", b"No results found for"];
const BLOCKED_TEXT: [&[u8]; 4] = [
    b"captcha",
    b"CAPTCHA",
    b"/challenge/verify",
    b"challenge-form",
];

/// The JSON in an anchor's `m` attribute (other keys are ignored).
#[derive(Deserialize)]
struct Meta {
    murl: Option<String>,
    turl: Option<String>,
    purl: Option<String>,
    t: Option<String>,
}

impl Engine for Bing {
    fn kind(&self) -> EngineKind {
        EngineKind::Bing
    }

    fn request(
        &self,
        base: &Url,
        settings: &EngineSettings,
        query: &str,
        cursor: &Cursor,
    ) -> Request {
        let count = PAGE_SIZE.to_string();
        let mut fixed = vec![
            ("q", query),
            ("first", "1"),
            ("count", count.as_str()),
            ("async", "1"),
        ];
        if let Some(mkt) = settings.region.as_deref() {
            fixed.push(("mkt", mkt));
        }
        Request {
            url: build_url(base, "images/async", &fixed, &cursor.params),
            headers: vec![
                ("accept", "text/html,application/xhtml+xml,*/*;q=0.8".into()),
                ("accept-language", settings.accept_language.clone()),
            ],
        }
    }

    fn parse(
        &self,
        _settings: &EngineSettings,
        cursor: &Cursor,
        response: &Response,
    ) -> Result<Page, EngineError> {
        if response.is_redirect() || response.has_challenge_form() {
            return Err(EngineError::Blocked);
        }
        if response.status == 429 {
            return Err(EngineError::RateLimited {
                retry_after: response.retry_after(),
            });
        }
        if !response.is_success() {
            return Err(EngineError::Http {
                status: response.status,
            });
        }
        let body = &response.body;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Page::default());
        }
        let html = Html::parse_document(&String::from_utf8_lossy(body));

        let mut candidates = Vec::new();
        let mut anchors = 0u32;
        let mut skipped = 0u32;
        for anchor in html.select(&ANCHOR) {
            anchors += 1;
            match candidate(anchor) {
                Some(mut c) => {
                    c.rank = candidates.len() as u32 + 1;
                    candidates.push(c);
                }
                None => skipped += 1,
            }
        }

        if anchors == 0 {
            // An empty results container is "no results"; one that holds items we could not
            // find anchors in means the markup changed.
            let empty_list = html
                .select(&EMPTY_LIST)
                .any(|list| list.select(&ITEMS).next().is_none());
            if empty_list || NO_RESULTS_TEXT.iter().any(|t| memmem(body, t).is_some()) {
                return Ok(Page::default());
            }
            if BLOCKED_TEXT.iter().any(|t| memmem(body, t).is_some()) {
                return Err(EngineError::Blocked);
            }
            return Err(EngineError::changed(
                "`a.iusc` result anchors, an empty body, or Bing's no-results markup",
            ));
        }
        if candidates.is_empty() {
            return Err(EngineError::changed(
                "`a.iusc` anchors whose `m` attribute is JSON with a `murl` (every anchor failed)",
            ));
        }
        let first = cursor
            .param("first")
            .and_then(|f| f.parse::<u32>().ok())
            .unwrap_or(1);
        Ok(Page {
            candidates,
            skipped,
            next: Some(Cursor::results(vec![(
                "first".into(),
                first.saturating_add(anchors).to_string(),
            )])),
        })
    }
}

fn candidate(anchor: ElementRef<'_>) -> Option<Candidate> {
    let meta: Meta = serde_json::from_str(anchor.attr("m")?).ok()?;
    let image_url = nonempty(meta.murl)?;
    let (width, height) = anchor
        .attr("href")
        .and_then(size_from_href)
        .or_else(|| size_from_info(anchor))
        .map_or((None, None), |(w, h)| (Some(w), Some(h)));
    Some(Candidate {
        image_url,
        thumbnail_url: nonempty(meta.turl),
        page_url: nonempty(meta.purl),
        title: nonempty(meta.t.map(|t| clean_title(&t))),
        width,
        height,
        licence: None,
        engine: EngineKind::Bing,
        query_id: None,
        rank: 0,
    })
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// Bing marks the matched words of titles with private-use characters U+E000 and U+E001.
fn clean_title(t: &str) -> String {
    t.chars()
        .filter(|c| !('\u{e000}'..='\u{f8ff}').contains(c))
        .collect()
}

/// `expw` and `exph` from a result link such as `/images/search?view=detailV2&…&expw=1200&exph=800`.
fn size_from_href(href: &str) -> Option<(u32, u32)> {
    let base = Url::parse("https://bing.invalid/").expect("a valid URL");
    let url = base.join(href).ok()?;
    let (mut w, mut h) = (None, None);
    for (k, v) in url.query_pairs() {
        let n = v.trim().parse::<u64>().ok().and_then(positive_dimension);
        match &*k {
            "expw" => w = n,
            "exph" => h = n,
            _ => {}
        }
    }
    Some((w?, h?))
}

/// The size in the info text of the result box that holds the anchor (`1200 x 800 · jpeg`).
fn size_from_info(anchor: ElementRef<'_>) -> Option<(u32, u32)> {
    let parent = ElementRef::wrap(anchor.parent()?)?;
    parent.select(&INFO).find_map(|info| {
        let text: String = info.text().collect();
        size_from_text(&text)
    })
}
