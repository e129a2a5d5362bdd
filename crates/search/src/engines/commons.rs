//! Wikimedia Commons: the MediaWiki action API, `generator=search` over the File namespace.

use lennonnet_core::{Candidate, EngineKind, Licence, QueryId};
use reqwest::Url;
use serde_json::{Map, Value};

use super::{json_dimension, json_str, strip_html};
use crate::engine::{Cursor, Engine, Page, Request, Response, build_url};
use crate::error::EngineError;

/// The Wikimedia Commons adapter.
///
/// `GET {base}/w/api.php?action=query&format=json&generator=search&gsrsearch=..&gsrnamespace=6
/// &gsrlimit=50&prop=imageinfo&iiprop=url|size|mime|extmetadata&iiurlwidth=320`, plus the
/// previous answer's whole `continue` object (`{"gsroffset": 50, "continue": "gsroffset||"}`)
/// as parameters. No `continue`: the end.
///
/// Pages are sorted by their search `index` (pages without one go last, by page id). Each page
/// with an `imageinfo` URL is a candidate carrying its licence from `extmetadata`:
/// `LicenseShortName`, `LicenseUrl`, `Artist` (HTML stripped) and `Attribution` (HTML
/// stripped; when the file has none, `<artist>, <licence>, via Wikimedia Commons`). Pages
/// without image info (a batch that only continues another property) are skipped and counted.
///
/// `{"batchcomplete": ""}` with no `query` is the API's "no results": an empty page. An
/// `error` object is [`EngineError::Api`], or [`EngineError::RateLimited`] for `ratelimited`
/// and `maxlag`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WikimediaCommons;

/// Results per request (`gsrlimit`).
pub const PAGE_SIZE: u32 = 50;
/// Width of the thumbnail the API is asked for (`iiurlwidth`).
pub const THUMB_WIDTH: u32 = 320;

impl Engine for WikimediaCommons {
    fn kind(&self) -> EngineKind {
        EngineKind::WikimediaCommons
    }

    fn request(&self, base: &Url, query: &str, cursor: &Cursor) -> Request {
        let limit = PAGE_SIZE.to_string();
        let thumb = THUMB_WIDTH.to_string();
        let fixed = [
            ("action", "query"),
            ("format", "json"),
            ("generator", "search"),
            ("gsrsearch", query),
            ("gsrnamespace", "6"),
            ("gsrlimit", limit.as_str()),
            ("prop", "imageinfo"),
            ("iiprop", "url|size|mime|extmetadata"),
            ("iiurlwidth", thumb.as_str()),
        ];
        Request {
            url: build_url(base, "w/api.php", &fixed, &cursor.params),
            headers: vec![("accept", "application/json".into())],
        }
    }

    fn parse(&self, _cursor: &Cursor, response: &Response) -> Result<Page, EngineError> {
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
        let expected = "MediaWiki API JSON: an object with `query.pages` or `batchcomplete`";
        let json: Value =
            serde_json::from_slice(&response.body).map_err(|_| EngineError::changed(expected))?;
        let Some(obj) = json.as_object() else {
            return Err(EngineError::changed(expected));
        };
        if let Some(err) = obj.get("error") {
            let code = json_str(err, "code").unwrap_or("unknown").to_string();
            let info = json_str(err, "info").unwrap_or("").to_string();
            return Err(match code.as_str() {
                "ratelimited" | "maxlag" => EngineError::RateLimited {
                    retry_after: response.retry_after(),
                },
                _ => EngineError::Api { code, info },
            });
        }
        let next = match obj.get("continue") {
            None => None,
            Some(Value::Object(c)) => Some(continue_cursor(c)?),
            Some(_) => return Err(EngineError::changed("`continue` as an object")),
        };
        let pages: Vec<&Value> = match obj.get("query") {
            None if obj.contains_key("batchcomplete") || next.is_some() => Vec::new(),
            None => return Err(EngineError::changed(expected)),
            Some(query) => match query.get("pages") {
                None => Vec::new(),
                Some(Value::Object(pages)) => pages.values().collect(),
                Some(Value::Array(pages)) => pages.iter().collect(),
                Some(_) => return Err(EngineError::changed("`query.pages` as an object or array")),
            },
        };

        let mut pages: Vec<&Value> = pages;
        pages.sort_by_key(|p| {
            (
                p.get("index").and_then(Value::as_u64).unwrap_or(u64::MAX),
                p.get("pageid").and_then(Value::as_u64).unwrap_or(u64::MAX),
                json_str(p, "title").unwrap_or(""),
            )
        });
        let mut candidates = Vec::with_capacity(pages.len());
        let mut skipped = 0;
        for page in pages {
            match candidate(page) {
                Some(mut c) => {
                    c.rank = candidates.len() as u32 + 1;
                    candidates.push(c);
                }
                None => skipped += 1,
            }
        }
        Ok(Page {
            candidates,
            skipped,
            next,
        })
    }
}

/// The whole `continue` object as parameters of the next request.
fn continue_cursor(c: &Map<String, Value>) -> Result<Cursor, EngineError> {
    let mut params = Vec::with_capacity(c.len());
    for (k, v) in c {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(EngineError::changed(
                    "`continue` values that are strings or numbers",
                ));
            }
        };
        params.push((k.clone(), v));
    }
    Ok(Cursor::results(params))
}

/// One search result page as a candidate; `None` when it has no image URL.
pub(crate) fn candidate(page: &Value) -> Option<Candidate> {
    let info = page.get("imageinfo")?.as_array()?.first()?;
    let image_url = json_str(info, "url")?.to_string();
    let title = json_str(page, "title").map(|t| t.strip_prefix("File:").unwrap_or(t).to_string());
    Some(Candidate {
        image_url,
        thumbnail_url: json_str(info, "thumburl").map(str::to_string),
        page_url: json_str(info, "descriptionurl").map(str::to_string),
        title,
        width: json_dimension(info, "width"),
        height: json_dimension(info, "height"),
        licence: info.get("extmetadata").and_then(licence),
        engine: EngineKind::WikimediaCommons,
        query_id: QueryId(String::new()),
        rank: 0,
    })
}

/// The licence fields of `extmetadata` (`{"LicenseShortName": {"value": …}, …}`).
fn licence(meta: &Value) -> Option<Licence> {
    let field = |key: &str| -> Option<String> {
        match meta.get(key)?.get("value")? {
            Value::String(s) => strip_html(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let short_name = field("LicenseShortName");
    let url = field("LicenseUrl");
    let artist = field("Artist");
    let attribution = field("Attribution").or_else(|| match (&artist, &short_name) {
        (None, None) => None,
        (a, l) => Some(
            [a.as_deref(), l.as_deref(), Some("via Wikimedia Commons")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
        ),
    });
    let licence = Licence {
        short_name,
        url,
        artist,
        attribution,
    };
    (licence != Licence::default()).then_some(licence)
}
