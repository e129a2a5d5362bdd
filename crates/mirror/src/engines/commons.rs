//! Wikimedia Commons: the `api.php` JSON of a file search, its errors and its User-Agent rule.

use std::collections::BTreeMap;

use lennonnet_core::EngineKind;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{ascii_json, html_escape, page};
use crate::world::{DOMAIN, ResultItem, World, percent_encode, rng_for};

/// Most results Wikimedia Commons gives for one request (`gsrlimit`, as for bots).
pub const COMMONS_MAX_LIMIT: u32 = 500;

/// The thumbnail widths Wikimedia serves; other `iiurlwidth` values are rounded up to one.
pub const THUMB_STEPS: [u32; 11] = [20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840];

/// The thumbnail width the API gives for `iiurlwidth`: the next standard step when `round`
/// (widths past the largest step get the largest), else the width only if it is a step.
pub fn thumb_step(requested: u32, round: bool) -> Option<u32> {
    if requested == 0 {
        return None;
    }
    if round {
        Some(
            THUMB_STEPS
                .iter()
                .copied()
                .find(|s| *s >= requested)
                .unwrap_or(THUMB_STEPS[THUMB_STEPS.len() - 1]),
        )
    } else {
        THUMB_STEPS.contains(&requested).then_some(requested)
    }
}

#[derive(Serialize)]
struct MetaValue {
    value: serde_json::Value,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<&'static str>,
}

fn meta(value: impl Into<serde_json::Value>, source: &'static str, hidden: bool) -> MetaValue {
    MetaValue {
        value: value.into(),
        source,
        hidden: hidden.then_some(""),
    }
}

#[derive(Serialize)]
struct ImageInfo {
    size: u64,
    width: u32,
    height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumburl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbwidth: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbheight: Option<u32>,
    url: String,
    descriptionurl: String,
    descriptionshorturl: String,
    mime: &'static str,
    extmetadata: BTreeMap<&'static str, MetaValue>,
}

#[derive(Serialize)]
struct CommonsPage {
    pageid: u64,
    ns: u32,
    title: String,
    index: u32,
    imagerepository: &'static str,
    imageinfo: Vec<ImageInfo>,
}

#[derive(Serialize)]
struct CommonsContinue {
    gsroffset: u32,
    #[serde(rename = "continue")]
    cont: &'static str,
}

#[derive(Serialize)]
struct CommonsQuery {
    pages: BTreeMap<String, CommonsPage>,
}

#[derive(Serialize)]
struct CommonsResponse {
    batchcomplete: &'static str,
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    cont: Option<CommonsContinue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<CommonsQuery>,
}

const LICENCES: [(&str, &str, Option<&str>, &str); 5] = [
    (
        "CC BY-SA 4.0",
        "cc-by-sa-4.0",
        Some("https://creativecommons.org/licenses/by-sa/4.0"),
        "Creative Commons Attribution-Share Alike 4.0",
    ),
    (
        "CC BY-SA 3.0",
        "cc-by-sa-3.0",
        Some("https://creativecommons.org/licenses/by-sa/3.0"),
        "Creative Commons Attribution-Share Alike 3.0",
    ),
    (
        "CC BY 2.0",
        "cc-by-2.0",
        Some("https://creativecommons.org/licenses/by/2.0"),
        "Creative Commons Attribution 2.0",
    ),
    (
        "CC0",
        "cc0",
        Some("http://creativecommons.org/publicdomain/zero/1.0/deed.en"),
        "Creative Commons Zero, Public Domain Dedication",
    ),
    ("Public domain", "pd", None, "Public domain"),
];

const USERS: [&str; 8] = [
    "PtrQs",
    "Elvezio",
    "Baroc",
    "Jac16888",
    "Mirror Bot",
    "Ablaise",
    "Sönke Rahn",
    "Evrik",
];

/// The `api.php` JSON of `action=query&generator=search&gsrnamespace=6&prop=imageinfo`:
/// `gsrlimit` results from `gsroffset`, with `continue` unless it is the last batch. Like the
/// real API, `query.pages` is keyed by page id (so in page-id order); `index` gives the rank.
/// With `thumb_width` (a standard step), each file also gets `thumburl`, `thumbwidth` and
/// `thumbheight`: a thumbnail of that width, or the original when it is not wider.
pub fn commons_search(
    world: &World,
    port: u16,
    query: &str,
    offset: u32,
    limit: u32,
    thumb_width: Option<u32>,
) -> (String, Vec<ResultItem>, Vec<String>) {
    let total = world.result_count(EngineKind::WikimediaCommons, query);
    let items = page(
        world,
        EngineKind::WikimediaCommons,
        query,
        offset,
        limit.clamp(1, COMMONS_MAX_LIMIT),
    );
    let mut pages = BTreeMap::new();
    let mut urls = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let rank = offset + i as u32;
        let (page, url) = file_page(world, port, query, it, rank, thumb_width);
        pages.insert(page.pageid.to_string(), page);
        urls.push(url);
    }
    let next = offset.saturating_add(items.len() as u32);
    let body = CommonsResponse {
        batchcomplete: "",
        cont: (next < total && !items.is_empty()).then_some(CommonsContinue {
            gsroffset: next,
            cont: "gsroffset||",
        }),
        query: (!items.is_empty()).then_some(CommonsQuery { pages }),
    };
    let json = serde_json::to_string(&body).expect("plain data serialises");
    (ascii_json(&json), items, urls)
}

/// The file page of the result at 0-based `rank` of `query`, and the URL of its file.
fn file_page(
    world: &World,
    port: u16,
    query: &str,
    it: &ResultItem,
    rank: u32,
    thumb_width: Option<u32>,
) -> (CommonsPage, String) {
    let mut rng = rng_for(
        world.key(),
        "lennonnet mirror commons page v1",
        &[query.as_bytes(), &rank.to_le_bytes()],
    );
    let pageid: u64 = rng.random_range(1_000_000..120_000_000);
    let name = format!(
        "{} {}.{}",
        it.title.trim(),
        pageid % 10_000,
        it.look.format.ext()
    );
    let file_title = format!("File:{name}");
    let m = extmetadata(&mut rng, it, &name);
    let url = world.commons_url(&it.spec, &name, port);
    let thumb = thumb_width.map(|w| {
        let (ow, oh) = (it.look.width, it.look.height);
        if ow <= w {
            (url.clone(), ow, oh)
        } else {
            (
                world.commons_thumb_url(&it.spec, &name, port, w),
                w,
                thumb_height(ow, oh, w),
            )
        }
    });
    let info = ImageInfo {
        size: estimated_size(it),
        width: it.look.width,
        height: it.look.height,
        thumburl: thumb.as_ref().map(|t| t.0.clone()),
        thumbwidth: thumb.as_ref().map(|t| t.1),
        thumbheight: thumb.as_ref().map(|t| t.2),
        url: url.clone(),
        descriptionurl: format!(
            "http://commons.{DOMAIN}:{port}/wiki/{}",
            percent_encode(&file_title.replace(' ', "_")).replace("%3A", ":")
        ),
        descriptionshorturl: format!("http://commons.{DOMAIN}:{port}/w/index.php?curid={pageid}"),
        mime: it.look.format.mime(),
        extmetadata: m,
    };
    let page = CommonsPage {
        pageid,
        ns: 6,
        title: file_title,
        index: rank + 1,
        imagerepository: "local",
        imageinfo: vec![info],
    };
    (page, url)
}

/// A file's `extmetadata`: its licence, author, dates and categories, drawn from the page's
/// `rng` after its page id.
fn extmetadata(
    rng: &mut ChaCha8Rng,
    it: &ResultItem,
    name: &str,
) -> BTreeMap<&'static str, MetaValue> {
    let (short, code, url, terms) = LICENCES[rng.random_range(0..LICENCES.len())];
    let user = USERS[rng.random_range(0..USERS.len())];
    let mut m = BTreeMap::new();
    let year = 1958 + rng.random_range(0..60);
    m.insert(
        "DateTime",
        meta(
            format!(
                "{}-0{}-1{} 12:3{}:00",
                2010 + rng.random_range(0..14),
                rng.random_range(1..10),
                rng.random_range(0..10),
                rng.random_range(0..10)
            ),
            "mediawiki-metadata",
            true,
        ),
    );
    m.insert(
        "ObjectName",
        meta(
            name.rsplit_once('.').map(|x| x.0).unwrap_or(name),
            "mediawiki-metadata",
            true,
        ),
    );
    m.insert("CommonsMetadataExtension", meta(1.2, "extension", true));
    m.insert(
        "Categories",
        meta(
            format!("{}|Self-published work|Photographs by year", it.title),
            "commons-categories",
            true,
        ),
    );
    m.insert("Assessments", meta("", "commons-categories", true));
    m.insert(
        "ImageDescription",
        meta(html_escape(&it.title), "commons-desc-page", false),
    );
    m.insert(
        "DateTimeOriginal",
        meta(year.to_string(), "commons-desc-page", false),
    );
    m.insert(
        "Credit",
        meta(
            r#"<span class="int-own-work" lang="en">Own work</span>"#,
            "commons-desc-page",
            true,
        ),
    );
    let artist = format!(
        r#"<a href="//commons.{DOMAIN}/wiki/User:{}" title="User:{user}">{user}</a>"#,
        user.replace(' ', "_")
    );
    m.insert("Artist", meta(artist.clone(), "commons-desc-page", false));
    m.insert("LicenseShortName", meta(short, "commons-desc-page", true));
    m.insert("UsageTerms", meta(terms, "commons-desc-page", true));
    let attribution_required = url.is_some() && code != "cc0";
    m.insert(
        "AttributionRequired",
        meta(attribution_required.to_string(), "commons-desc-page", true),
    );
    if attribution_required {
        m.insert(
            "Attribution",
            meta(format!("Photo by {artist}"), "commons-desc-page", true),
        );
    }
    if let Some(url) = url {
        m.insert("LicenseUrl", meta(url, "commons-desc-page", true));
    }
    m.insert(
        "Copyrighted",
        meta(
            if code == "pd" || code == "cc0" {
                "False"
            } else {
                "True"
            },
            "commons-desc-page",
            true,
        ),
    );
    m.insert("Restrictions", meta("", "commons-desc-page", true));
    m.insert("License", meta(code, "commons-templates", true));
    m
}

/// The height of a thumbnail `width` pixels wide of a `w` x `h` picture (at least 1).
pub fn thumb_height(w: u32, h: u32, width: u32) -> u32 {
    ((h as u64 * width as u64 + w as u64 / 2) / w.max(1) as u64).max(1) as u32
}

/// The Commons API in a "changed format": well-formed JSON without `query` or
/// `batchcomplete` (the files under other keys), so an adapter can only say the format changed.
pub fn commons_changed_json(
    world: &World,
    port: u16,
    query: &str,
    offset: u32,
    limit: u32,
) -> String {
    let items: Vec<serde_json::Value> = page(
        world,
        EngineKind::WikimediaCommons,
        query,
        offset,
        limit.clamp(1, COMMONS_MAX_LIMIT),
    )
    .iter()
    .map(|it| {
        serde_json::json!({
            "key": format!("File:{}", it.title),
            "excerpt": it.title,
            "thumbnail": {"url": world.thumbnail_url(it, port), "width": it.look.width, "height": it.look.height},
        })
    })
    .collect();
    ascii_json(&serde_json::json!({ "pages": items, "offset": offset }).to_string())
}

/// MediaWiki's answer to a request with `maxlag` when its replicas lag more than that (HTTP
/// 200, with `Retry-After` and `X-Database-Lag`).
pub fn commons_maxlag_error(lag_secs: u32) -> String {
    ascii_json(
        &serde_json::json!({
            "error": {
                "code": "maxlag",
                "info": format!("Waiting for db1234: {lag_secs} seconds lagged."),
                "host": "db1234",
                "lag": lag_secs,
                "type": "db",
                "*": "See http://commons.mirror.test/w/api.php for API usage."
            },
            "servedby": "mw-api-mirror"
        })
        .to_string(),
    )
}

/// What an engine says a file weighs: an estimate from its size and format (the mirror does not
/// render a picture to list it).
fn estimated_size(it: &ResultItem) -> u64 {
    let px = it.look.width as u64 * it.look.height as u64;
    match it.look.format {
        crate::spec::Format::Png | crate::spec::Format::Webp => px * 3 / 2,
        crate::spec::Format::Gif => px / 2,
        _ => px / 6,
    }
}

/// The JSON error MediaWiki gives for a request it does not understand.
pub fn commons_error(code: &str, info: &str) -> String {
    ascii_json(
        &serde_json::json!({
            "error": {
                "code": code,
                "info": info,
                "*": "See http://commons.mirror.test/w/api.php for API usage."
            },
            "servedby": "mw-api-mirror"
        })
        .to_string(),
    )
}

/// The body Wikimedia sends when a request has no acceptable User-Agent (HTTP 403).
pub const COMMONS_FORBIDDEN: &str = "Please set a user-agent and respect our robot policy https://w.wiki/4wJS. See also https://phabricator.wikimedia.org/T400119.\n";

/// Whether a User-Agent is descriptive enough for Wikimedia: it names the client and gives a
/// way to reach its operator (a URL or an e-mail address), and is not a library's default.
pub fn commons_user_agent_ok(ua: Option<&str>) -> bool {
    let Some(ua) = ua.map(str::trim) else {
        return false;
    };
    let lower = ua.to_lowercase();
    let generic = [
        "python-requests",
        "curl/",
        "wget/",
        "go-http-client",
        "java/",
        "okhttp",
        "python-urllib",
    ];
    if ua.len() < 10 || generic.iter().any(|g| lower.starts_with(g)) {
        return false;
    }
    lower.contains("http") || lower.contains('@') || lower.contains("+")
}
