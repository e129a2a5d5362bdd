//! DuckDuckGo images: a `vqd` token from the HTML page, then `i.js` JSON pages following `next`.

use lennonnet_config::EngineSettings;
use lennonnet_core::{Candidate, EngineKind};
use reqwest::Url;
use serde_json::Value;

use super::{json_dimension, json_str, memmem};
use crate::engine::{Cursor, Engine, Page, Request, Response, Step, build_url};
use crate::error::EngineError;

/// The DuckDuckGo adapter, as the clients kept working against DuckDuckGo send it (ddgs,
/// duckduckgo_search v8, SearXNG; docs/engines.md):
///
/// 1. `GET {base}/?q=..&iar=images&t=h_` (the HTML page) holds the `vqd` token:
///    [`extract_vqd`]. The token is tied to the User-Agent, which is one per run.
/// 2. `GET {base}/i.js?o=json&q=..&l=<region>&vqd=..&p=1&s=0&ct=<country>` (and `f` only when a
///    filter is set), with a browser's `Accept: */*`, `Referer`, `Sec-Fetch-*` and
///    `Accept-Language`, returns `{results: [{image, thumbnail, url, title, width, height,
///    source}], next, vqd}`.
/// 3. `next` (`i.js?q=..&o=json&p=-1&s=100&u=bing&f=,,,,,&l=us-en`) gives the next offset `s`;
///    the next request is built like the first with that offset. No `next`: the end.
///
/// Statuses 202, 403, 418 and 429 are [`EngineError::RateLimited`]; a redirect (to a
/// challenge), the anomaly page, a challenge form, or HTML where `i.js` JSON was asked for is
/// [`EngineError::Blocked`]. A 200 `i.js` answer with `results: []` is an empty page.
#[derive(Debug, Clone, Copy, Default)]
pub struct DuckDuckGo;

/// Byte strings that only DuckDuckGo's anomaly (bot check) page holds.
const ANOMALY_MARKERS: [&[u8]; 5] = [
    b"anomalyDetectionBlock",
    b"anomaly-modal",
    b"bots use DuckDuckGo too",
    b"/anomaly.js",
    b"challenge-form",
];

/// The statuses DuckDuckGo answers a too-fast client with.
const RATE_LIMIT_STATUSES: [u16; 4] = [202, 403, 418, 429];

/// The cursor parameters of the results step that come from the engine (the rest is fixed).
const CURSOR_PARAMS: [&str; 2] = ["s", "vqd"];

impl Engine for DuckDuckGo {
    fn kind(&self) -> EngineKind {
        EngineKind::DuckDuckGo
    }

    fn start(&self) -> Cursor {
        Cursor::token()
    }

    fn request(
        &self,
        base: &Url,
        settings: &EngineSettings,
        query: &str,
        cursor: &Cursor,
    ) -> Request {
        let lang = ("accept-language", settings.accept_language.clone());
        match cursor.step {
            Step::Token => Request {
                url: build_url(
                    base,
                    "",
                    &[("q", query), ("iar", "images"), ("t", "h_")],
                    &cursor.params,
                ),
                headers: vec![
                    (
                        "accept",
                        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".into(),
                    ),
                    lang,
                    ("sec-fetch-dest", "document".into()),
                    ("sec-fetch-mode", "navigate".into()),
                    ("sec-fetch-site", "none".into()),
                    ("upgrade-insecure-requests", "1".into()),
                ],
            },
            Step::Results => {
                let region = settings.region.as_deref().unwrap_or("us-en");
                let country = region
                    .split('-')
                    .next()
                    .unwrap_or("us")
                    .to_ascii_uppercase();
                let mut fixed = vec![
                    ("o", "json"),
                    ("q", query),
                    ("l", region),
                    ("vqd", ""),
                    ("p", "1"),
                    ("s", "0"),
                    ("ct", country.as_str()),
                ];
                if let Some(f) = settings.filter.as_deref() {
                    fixed.push(("f", f));
                }
                let params: Vec<(String, String)> = cursor
                    .params
                    .iter()
                    .filter(|(k, _)| CURSOR_PARAMS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                let mut referer = base.clone();
                referer.set_query(None);
                if !referer.path().ends_with('/') {
                    let path = format!("{}/", referer.path());
                    referer.set_path(&path);
                }
                Request {
                    url: build_url(base, "i.js", &fixed, &params),
                    headers: vec![
                        ("accept", "*/*".into()),
                        lang,
                        ("referer", referer.to_string()),
                        ("sec-fetch-dest", "empty".into()),
                        ("sec-fetch-mode", "cors".into()),
                        ("sec-fetch-site", "same-origin".into()),
                    ],
                }
            }
        }
    }

    fn parse(
        &self,
        _settings: &EngineSettings,
        cursor: &Cursor,
        response: &Response,
    ) -> Result<Page, EngineError> {
        let body = &response.body;
        let anomaly = || ANOMALY_MARKERS.iter().any(|m| memmem(body, m).is_some());
        if response.is_redirect() {
            return Err(EngineError::Blocked);
        }
        if !response.is_success() || RATE_LIMIT_STATUSES.contains(&response.status) {
            if anomaly() {
                return Err(EngineError::Blocked);
            }
            if RATE_LIMIT_STATUSES.contains(&response.status) {
                return Err(EngineError::RateLimited {
                    retry_after: response.retry_after(),
                });
            }
            return Err(EngineError::Http {
                status: response.status,
            });
        }
        match cursor.step {
            Step::Token => match extract_vqd(body) {
                Some(vqd) => Ok(Page {
                    candidates: Vec::new(),
                    skipped: 0,
                    next: Some(Cursor::results(vec![("vqd".into(), vqd)])),
                }),
                None if anomaly() => Err(EngineError::Blocked),
                None => Err(EngineError::TokenMissing),
            },
            Step::Results => parse_results(cursor, body).map_err(|e| match e {
                EngineError::Changed { .. } if anomaly() || response.is_html() => {
                    EngineError::Blocked
                }
                e => e,
            }),
        }
    }
}

fn parse_results(cursor: &Cursor, body: &[u8]) -> Result<Page, EngineError> {
    let expected = "i.js JSON: an object with a `results` array";
    let json: Value = serde_json::from_slice(body).map_err(|_| EngineError::changed(expected))?;
    let results = json
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| EngineError::changed(expected))?;

    let mut candidates = Vec::with_capacity(results.len());
    let mut skipped = 0;
    for r in results {
        let Some(image) = json_str(r, "image") else {
            skipped += 1;
            continue;
        };
        candidates.push(Candidate {
            image_url: image.to_string(),
            thumbnail_url: json_str(r, "thumbnail").map(str::to_string),
            page_url: json_str(r, "url").map(str::to_string),
            title: json_str(r, "title").map(str::to_string),
            width: json_dimension(r, "width"),
            height: json_dimension(r, "height"),
            licence: None,
            engine: EngineKind::DuckDuckGo,
            query_id: None,
            rank: candidates.len() as u32 + 1,
        });
    }
    if candidates.is_empty() && skipped > 0 {
        return Err(EngineError::changed(
            "i.js results with an `image` URL (every result lacked one)",
        ));
    }

    // The token may be refreshed by the answer: `vqd: {"<query>": "<token>"}`.
    let vqd = match json.get("vqd") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Object(m)) => m
            .values()
            .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string)),
        _ => None,
    }
    .or_else(|| cursor.param("vqd").map(str::to_string));

    let next = match json.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(next)) => Some(next_cursor(next, vqd.as_deref())?),
        Some(_) => return Err(EngineError::changed("`next` as a relative i.js URL")),
    };
    Ok(Page {
        candidates,
        skipped,
        next,
    })
}

/// The cursor of `next` (`i.js?q=..&p=..&s=..`): its offset `s`, with the token added. The
/// other parameters of `next` are the ones the request is built with anyway.
fn next_cursor(next: &str, vqd: Option<&str>) -> Result<Cursor, EngineError> {
    let bad = || EngineError::changed("`next` as a relative i.js URL with an offset `s`");
    let base = Url::parse("http://next.invalid/").expect("a valid URL");
    let url = base.join(next).map_err(|_| bad())?;
    let s = url
        .query_pairs()
        .find(|(k, _)| k == "s")
        .map(|(_, v)| v.into_owned())
        .filter(|s| s.parse::<u64>().is_ok())
        .ok_or_else(bad)?;
    let mut params = vec![("s".to_string(), s)];
    if let Some(vqd) = vqd {
        params.push(("vqd".into(), vqd.to_string()));
    }
    Ok(Cursor::results(params))
}

/// Finds DuckDuckGo's `vqd` token in an HTML page or script, in any of the forms it has been
/// seen in: `vqd='…'`, `vqd="…"`, `vqd=…&` (in a URL) and `"vqd":"…"` (in JSON). The token is
/// made of ASCII letters, digits, `-` and `_`; an unquoted one must end at `&`, a quote,
/// whitespace, `#` or the end of the text. The first well-formed one wins.
pub fn extract_vqd(body: &[u8]) -> Option<String> {
    const MAX_TOKEN: usize = 512;
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let skip_space = |mut j: usize| {
        while j < body.len() && body[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let mut from = 0;
    while let Some(pos) = memmem(&body[from..], b"vqd") {
        let start = from + pos;
        from = start + 3;
        if start > 0 && is_ident(body[start - 1]) {
            continue;
        }
        let mut j = start + 3;
        // A quoted key: "vqd": or 'vqd':
        if start > 0
            && matches!(body[start - 1], b'"' | b'\'')
            && body.get(j) == Some(&body[start - 1])
        {
            j += 1;
        }
        j = skip_space(j);
        if !matches!(body.get(j), Some(b'=' | b':')) {
            continue;
        }
        j = skip_space(j + 1);
        let quote = match body.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                j += 1;
                Some(q)
            }
            _ => None,
        };
        let token_start = j;
        while j < body.len() && j - token_start < MAX_TOKEN && is_token(body[j]) {
            j += 1;
        }
        if j == token_start {
            continue;
        }
        let ends_well = match quote {
            Some(q) => body.get(j) == Some(&q),
            None => match body.get(j) {
                None => true,
                Some(&b) => matches!(b, b'&' | b'"' | b'\'' | b'#') || b.is_ascii_whitespace(),
            },
        };
        if ends_well {
            // Token bytes are ASCII, so this is valid UTF-8.
            return Some(String::from_utf8_lossy(&body[token_start..j]).into_owned());
        }
    }
    None
}
