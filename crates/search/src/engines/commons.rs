//! Wikimedia Commons: the MediaWiki action API, `generator=search` over the File namespace.

use lennonnet_config::EngineSettings;
use lennonnet_core::{Candidate, EngineKind, Licence};
use reqwest::Url;
use serde_json::{Map, Value};

use super::{json_dimension, json_str, strip_html};
use crate::engine::{Cursor, Engine, Page, Request, Response, build_url};
use crate::error::EngineError;

/// The Wikimedia Commons adapter.
///
/// `GET {base}/w/api.php?action=query&format=json&generator=search&gsrsearch=filetype:bitmap|drawing
/// ..&gsrnamespace=6&gsrlimit=50&prop=imageinfo&iiprop=url|size|mime|extmetadata&iiurlwidth=W
/// &maxlag=5`, plus the previous answer's whole `continue` object (`{"gsroffset": 50,
/// "continue": "gsroffset||"}`) as parameters. No `continue`: the end. `W` is the standard
/// thumbnail width of `thumbnail_width_px` (default 1,280): the candidate's image is that
/// thumbnail (`thumburl`; the original itself when it is not wider), unless `originals` is
/// set, when `W` is 330 and the thumbnail is only the candidate's thumbnail.
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
/// Width of the thumbnail the API is asked for (`iiurlwidth`) when originals are downloaded: a
/// standard width, so the file servers have it.
pub const THUMB_WIDTH: u32 = 330;

impl Engine for WikimediaCommons {
    fn kind(&self) -> EngineKind {
        EngineKind::WikimediaCommons
    }

    fn request(
        &self,
        base: &Url,
        settings: &EngineSettings,
        query: &str,
        cursor: &Cursor,
    ) -> Request {
        let limit = PAGE_SIZE.to_string();
        let thumb = settings
            .thumbnail_width_px
            .unwrap_or(THUMB_WIDTH)
            .to_string();
        let search = format!("filetype:bitmap|drawing {query}");
        let mut fixed = vec![
            ("action", "query"),
            ("format", "json"),
            ("generator", "search"),
            ("gsrsearch", search.as_str()),
            ("gsrnamespace", "6"),
            ("gsrlimit", limit.as_str()),
            ("prop", "imageinfo"),
            ("iiprop", "url|size|mime|extmetadata"),
            ("iiurlwidth", thumb.as_str()),
        ];
        let maxlag = settings.maxlag_secs.map(|m| m.to_string());
        if let Some(m) = maxlag.as_deref() {
            fixed.push(("maxlag", m));
        }
        Request {
            url: build_url(base, "w/api.php", &fixed, &cursor.params),
            headers: vec![
                ("accept", "application/json".into()),
                ("accept-language", settings.accept_language.clone()),
            ],
        }
    }

    fn parse(
        &self,
        settings: &EngineSettings,
        _cursor: &Cursor,
        response: &Response,
    ) -> Result<Page, EngineError> {
        if response.is_redirect() {
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
        let expected = "MediaWiki API JSON: an object with `query.pages` or `batchcomplete`";
        let json: Value = match serde_json::from_slice(&response.body) {
            Ok(json) => json,
            // An HTML page where the API's JSON was asked for: a block or challenge page.
            Err(_) if response.is_html() => return Err(EngineError::Blocked),
            Err(_) => return Err(EngineError::changed(expected)),
        };
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
            match candidate(page, settings.thumbnail_width_px.is_some()) {
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

/// One search result page as a candidate; `None` when it has no image URL. With `thumbnails`,
/// the image is the API's thumbnail (`thumburl`, at the standard width asked for, which is the
/// original's URL when the original is not wider), and the candidate has no other thumbnail.
pub(crate) fn candidate(page: &Value, thumbnails: bool) -> Option<Candidate> {
    let info = page.get("imageinfo")?.as_array()?.first()?;
    let original = json_str(info, "url")?.to_string();
    let thumb = json_str(info, "thumburl").map(str::to_string);
    let title = json_str(page, "title").map(|t| t.strip_prefix("File:").unwrap_or(t).to_string());
    let (image_url, thumbnail_url, width, height) = match thumb {
        Some(thumb) if thumbnails => (
            thumb,
            None,
            json_dimension(info, "thumbwidth").or_else(|| json_dimension(info, "width")),
            json_dimension(info, "thumbheight").or_else(|| json_dimension(info, "height")),
        ),
        thumb => (
            original,
            thumb,
            json_dimension(info, "width"),
            json_dimension(info, "height"),
        ),
    };
    Some(Candidate {
        image_url,
        thumbnail_url,
        page_url: json_str(info, "descriptionurl").map(str::to_string),
        title,
        width,
        height,
        licence: info.get("extmetadata").and_then(licence),
        engine: EngineKind::WikimediaCommons,
        query_id: None,
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
