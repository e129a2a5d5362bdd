//! The search engines' wire formats, as recorded from the real ones (see
//! `tests/fixtures/engines/`): DuckDuckGo's token page and `i.js` JSON, Bing's `images/async`
//! HTML, and the Wikimedia Commons `api.php` JSON. Pure functions from a world and a request to
//! a body; the server adds status codes, rate limits and noise.

use std::collections::BTreeMap;

use lennonnet_core::{EngineKind, keyed_hash};
use rand::Rng;
use serde::Serialize;

use crate::world::{DOMAIN, ResultItem, World, percent_encode, rng_for};

/// Results per DuckDuckGo `i.js` page.
pub const DDG_PAGE: u32 = 100;
/// Most results Bing gives for one `images/async` request.
pub const BING_MAX_COUNT: u32 = 150;
/// Most results Wikimedia Commons gives for one request (`gsrlimit`, as for bots).
pub const COMMONS_MAX_LIMIT: u32 = 500;

/// Escapes every non-ASCII character of serialised JSON as `\uXXXX` (surrogate pairs above the
/// BMP), as DuckDuckGo and MediaWiki do. Non-ASCII characters only occur inside JSON strings,
/// so this is safe on any serialised value.
pub fn ascii_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out += &format!("\\u{u:04x}");
            }
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out += "&amp;",
            '"' => out += "&quot;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

fn js_single_quoted(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('<', "\\x3c")
        .replace('\n', " ")
}

/// The results of `query` on `engine` from 0-based `start`, at most `n`.
pub fn page(world: &World, engine: EngineKind, query: &str, start: u32, n: u32) -> Vec<ResultItem> {
    let total = world.result_count(engine, query);
    (start..start.saturating_add(n).min(total))
        .map(|rank| world.result(engine, query, rank))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// DuckDuckGo

/// The `vqd` token DuckDuckGo hands out for a query: `3-<digits>-<digits>`, the second part
/// shared by every query of this world (as in the recorded responses).
pub fn ddg_vqd(world: &World, query: &str) -> String {
    let q = World::normalize(query);
    let a = keyed_hash("lennonnet mirror vqd v1", world.key(), &[q.as_bytes()]);
    let b = keyed_hash("lennonnet mirror vqd v1", world.key(), &[b"session"]);
    let n = |h: &[u8; 32]| u128::from_le_bytes(h[..16].try_into().unwrap()) >> 2;
    format!("3-{}-{}", n(&a), n(&b))
}

/// The `vqd` token of DuckDuckGo when it ties tokens to the User-Agent (`ddg_vqd_per_user_agent`):
/// the same shape, from the query and the User-Agent.
pub fn ddg_vqd_for_user_agent(world: &World, query: &str, user_agent: &str) -> String {
    let q = World::normalize(query);
    let a = keyed_hash(
        "lennonnet mirror vqd per user agent v1",
        world.key(),
        &[q.as_bytes(), user_agent.as_bytes()],
    );
    let b = keyed_hash("lennonnet mirror vqd v1", world.key(), &[b"session"]);
    let n = |h: &[u8; 32]| u128::from_le_bytes(h[..16].try_into().unwrap()) >> 2;
    format!("3-{}-{}", n(&a), n(&b))
}

/// Where DuckDuckGo sends a client it wants to check: its challenge page on the same host.
pub fn ddg_challenge_location(query: &str) -> String {
    format!(
        "/anomaly?q={}&cc=botnet&ti=1&gk=d4cd0dabcf4caa22ad92fab40844c786",
        percent_encode(query)
    )
}

/// Whether a request carries the headers a browser's `i.js` fetch has: `Sec-Fetch-Mode: cors`,
/// `Sec-Fetch-Dest: empty`, `Sec-Fetch-Site: same-origin`, a Referer, an Accept-Language and a
/// User-Agent containing `Mozilla/5.0`. `header` looks a header up by its lowercase name.
pub fn ddg_browser_headers_ok<'a>(header: impl Fn(&str) -> Option<&'a str>) -> bool {
    let is = |name: &str, value: &str| {
        header(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let present = |name: &str| header(name).is_some_and(|v| !v.trim().is_empty());
    is("sec-fetch-mode", "cors")
        && is("sec-fetch-dest", "empty")
        && is("sec-fetch-site", "same-origin")
        && present("referer")
        && present("accept-language")
        && header("user-agent").is_some_and(|ua| ua.contains("Mozilla/5.0"))
}

/// `i.js` in a "changed format": well-formed JSON with the results under other keys, so an
/// adapter that looks for `results` cannot read it.
pub fn ddg_changed_json(world: &World, port: u16, query: &str, s: u32) -> String {
    let items: Vec<serde_json::Value> = page(world, EngineKind::DuckDuckGo, query, s, DDG_PAGE)
        .iter()
        .map(|it| {
            serde_json::json!({
                "src": world.image_url(it, port),
                "preview": world.thumbnail_url(it, port),
                "origin": world.page_url(it, port),
                "caption": it.title,
                "dims": [it.look.width, it.look.height],
            })
        })
        .collect();
    ascii_json(
        &serde_json::json!({
            "schema": 2,
            "query": query,
            "data": {"images": items, "cursor": s + DDG_PAGE},
        })
        .to_string(),
    )
}

/// The HTML page of `GET /?q=..`: carries the token as `vqd='…'` and in a `&vqd=…&` URL, like
/// the recorded page. `token = None` gives the same page without any token.
pub fn ddg_html(query: &str, token: Option<&str>) -> String {
    let q_js = js_single_quoted(query);
    let q_html = html_escape(query);
    let q_url = percent_encode(query);
    let vqd_var = token.map(|t| format!("vqd='{t}';")).unwrap_or_default();
    let vqd_param = token.map(|t| format!("&vqd={t}")).unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html lang="en-US" class="no-js has-zcm  no-theme is-link-style-exp is-link-order-exp is-link-breadcrumb-exp is-related-search-exp is-vertical-tabs-exp"><head><meta name="description" content="DuckDuckGo. Privacy, Simplified."><meta http-equiv="content-type" content="text/html; charset=utf-8"><title>{q_html} at DuckDuckGo</title><link rel="stylesheet" href="/s2059.css" type="text/css"><link rel="stylesheet" href="/r2059.css" type="text/css"><meta name="robots" content="noindex,nofollow"><meta name="referrer" content="origin"><meta name="apple-mobile-web-app-title" content="{q_html}"><link rel="shortcut icon" href="/favicon.ico" type="image/x-icon" /><script type="text/javascript">var ct,fd,fq,it,iqa,iqm,iqs,iqp,iqq,qw,dl,ra,rv,rad,r1hc,r1c,r2c,r3c,rfq,rq,rds,rs,rt,rl,y,y1,ti,tig,iqd,shfl,shrl,locale,settings_js_version='s2484.js',is_twitter='',rpl=1;fq=0;fd=1;it=0;iqa=0;iqbi=0;iqm=0;iqs=0;iqp=0;iqq=0;qw=1;dl='en';ct='US';iqd=0;r1hc=0;r1c=0;r3c=0;rq='{q_js}';rqd="{q_html}";rfq=0;rt='D';ra='';rv='';rad='';rds=30;rs=0;spice_version='2000';spice_paths='{{}}';locale='en_US';settings_url_params={{}};rl='us-en';shfl=1;shrl='us-en';rlo=0;df='';ds='';sfq='';iar='';{vqd_var}safe_ddg=0;show_covid=0;window.didNotLoadScripts=[];function handleScriptError(el) {{ if (el && el.getAttribute) {{ window.didNotLoadScripts.push(el.getAttribute('src')); }}}}</script><meta name="viewport" content="width=device-width, initial-scale=1" /><meta name="HandheldFriendly" content="true" /><script src="/b23.js" onerror="handleScriptError(this)"></script><script>window.Bootstrap._region="";window.Bootstrap.hostRegion="usc";window.Bootstrap.isMobile=false;window.Bootstrap.isDesktop=true;if(window.Bootstrap.searchExperiments.getExperimentGroup('reactexp') === 'h' && !window.Bootstrap.shouldDeferDeep(window.Bootstrap.validateRequery)){{window.deepPreloader=new window.Bootstrap.DeepPreloader();window.deepPreloader.fetch(window.Bootstrap.addFrontendQsToBackendDeepUrl("/d.js?q={q_url}&t=D&l=us-en&s=0&dl=en&ct=US&ss_mkt=us{vqd_param}&p_ent=&ex=-1&sp=0",window.Bootstrap.searchExperiments),window.Bootstrap.TIMEOUT_PRELOADED_DEEP_REQUEST);}}</script></head><!-- snip --></html><script type="text/JavaScript">DDG.index = DDG.index || {{}}; DDG.index.signalSummary = "";</script>"#
    )
}

/// DuckDuckGo's bot check, served instead of results.
pub fn ddg_anomaly_html(query: &str) -> String {
    let q = html_escape(query);
    format!(
        r#"<!DOCTYPE html><html lang="en-US"><head><meta http-equiv="content-type" content="text/html; charset=utf-8"><title>{q} at DuckDuckGo</title></head><body><div class="anomaly-modal__mask"><div class="anomaly-modal__modal" data-testid="anomaly-modal"><div class="anomaly-modal__title">Unfortunately, bots use DuckDuckGo too.</div><div class="anomaly-modal__description">Please complete the following challenge to confirm this search was made by a human.</div><div class="anomaly-modal__instructions">Select all squares containing a duck:</div><form id="challenge-form" action="/anomaly.js?sv=html&amp;cc=botnet&amp;ti=1&amp;gk=d4cd0dabcf4caa22ad92fab40844c786&amp;p=1&amp;q={q}" method="POST"></form></div></div><script>DDG.deep.anomalyDetectionBlock({{gk:'d4cd0dabcf4caa22ad92fab40844c786',q:'{qj}',iadb:1}});</script></body></html>"#,
        qj = js_single_quoted(query)
    )
}

/// The body of DuckDuckGo's refusal of a bad or missing token (HTTP 403), as recorded.
pub const DDG_FORBIDDEN: &str = "If this error persists, please let us know: ops@duckduckgo.com";

#[derive(Serialize)]
struct DdgResult {
    height: u32,
    image: String,
    source: &'static str,
    thumbnail: String,
    title: String,
    url: String,
    width: u32,
}

/// Fields in the recorded order (alphabetical), whatever serde_json's map order is.
#[derive(Serialize)]
struct DdgPage {
    ads: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    query: String,
    #[serde(rename = "queryEncoded")]
    query_encoded: String,
    response_type: &'static str,
    results: Vec<DdgResult>,
    vqd: BTreeMap<String, String>,
}

/// The `i.js` JSON for one page: 100 results from offset `s`, `next` unless it is the last page.
/// `p` (safe search) and `l` (region) are echoed into `next` as the real engine does, and the
/// token `vqd` into `vqd`.
pub fn ddg_ijs(
    world: &World,
    port: u16,
    query: &str,
    s: u32,
    p: &str,
    l: &str,
    vqd: &str,
) -> (String, Vec<ResultItem>) {
    let items = page(world, EngineKind::DuckDuckGo, query, s, DDG_PAGE);
    let total = world.result_count(EngineKind::DuckDuckGo, query);
    let enc = percent_encode(query);
    let next = (s.saturating_add(DDG_PAGE) < total).then(|| {
        format!(
            "i.js?q={enc}&o=json&p={p}&s={}&u=bing&f=,,,,,&l={l}",
            s + DDG_PAGE
        )
    });
    let results = items
        .iter()
        .map(|it| DdgResult {
            height: it.look.height,
            image: world.image_url(it, port),
            source: "Bing",
            thumbnail: world.thumbnail_url(it, port),
            title: it.title.clone(),
            url: world.page_url(it, port),
            width: it.look.width,
        })
        .collect();
    let body = DdgPage {
        ads: None,
        next,
        query: query.to_string(),
        query_encoded: enc,
        response_type: "places",
        results,
        vqd: BTreeMap::from([(query.to_string(), vqd.to_string())]),
    };
    let json = serde_json::to_string(&body).expect("plain data serialises");
    (ascii_json(&json), items)
}

// ---------------------------------------------------------------------------------------------
// Bing

#[derive(Serialize)]
struct BingM<'a> {
    sid: &'a str,
    cturl: &'a str,
    cid: &'a str,
    purl: &'a str,
    murl: &'a str,
    turl: &'a str,
    md5: &'a str,
    shkey: &'a str,
    t: &'a str,
    mid: &'a str,
    desc: &'a str,
}

/// The `images/async` HTML: one `a.iusc` per result with its `m` attribute holding HTML-escaped
/// JSON, results `first` (1-based) to `first + count - 1`. Past the last result, a list with no
/// results.
pub fn bing_async(
    world: &World,
    port: u16,
    query: &str,
    first: u32,
    count: u32,
) -> (String, Vec<ResultItem>) {
    let start = first.max(1) - 1;
    let items = page(
        world,
        EngineKind::Bing,
        query,
        start,
        count.clamp(1, BING_MAX_COUNT),
    );
    let q_plus = percent_encode(query).replace("%20", "+");
    let mut html = String::with_capacity(items.len() * 2200 + 512);
    html += r#"<div id="mmComponent_images_2" class="mmComponent_images" data-nextfirst=""#;
    html += &(start + items.len() as u32 + 1).to_string();
    html += r#""><ul class="dgControl_list " data-row="0">"#;
    for (i, it) in items.iter().enumerate() {
        let rank = start + i as u32;
        if i > 0 && i % 7 == 0 {
            html += &format!(r#"</ul><ul class="dgControl_list " data-row="{}">"#, i / 7);
        }
        let h = keyed_hash(
            "lennonnet mirror bing ids v1",
            world.key(),
            &[query.as_bytes(), &rank.to_le_bytes()],
        );
        let hex = blake3::Hash::from_bytes(h).to_hex();
        let cid = &hex[..8];
        let md5 = &hex[8..40];
        let mid = hex[40..64].to_uppercase();
        let murl = world.image_url(it, port);
        let turl = world.thumbnail_url(it, port);
        let purl = world.page_url(it, port);
        let m = serde_json::to_string(&BingM {
            sid: "",
            cturl: "",
            cid,
            purl: &purl,
            murl: &murl,
            turl: &turl,
            md5,
            shkey: "",
            t: &it.title,
            mid: &mid,
            desc: "",
        })
        .expect("plain data serialises");
        let mut rng = rng_for(world.key(), "lennonnet mirror bing box v1", &[&h]);
        let th = 180u32;
        let tw = (th * it.look.width / it.look.height.max(1)).clamp(90, 400);
        let bg = format!(
            "#{:02x}{:02x}{:02x}",
            rng.random::<u8>() / 2 + 40,
            rng.random::<u8>() / 2 + 40,
            rng.random::<u8>() / 2 + 40
        );
        let detail = format!(
            "/images/search?view=detailV2&ccid={cid}&id={mid}&thid=OIP.{cid}&mediaurl={}&exph={}&expw={}&q={q_plus}&simid={}&FORM=IRPRST&ck={md5}&selectedIndex={rank}&itb=0",
            percent_encode(&murl).to_lowercase(),
            it.look.height,
            it.look.width,
            u64::from_le_bytes(h[..8].try_into().unwrap()) % 1_000_000_000_000_000
        );
        let site = format!("www.{}.{DOMAIN}", it.site);
        let title = html_escape(&it.title);
        html += &format!(
            concat!(
                r#"<li data-idx="{idx}"><div class="iuscp isv" data-tag="{cid}"><div class="imgpt">"#,
                r#"<a class="iusc" style="height:{th}px;width:{tw}px" m="{m}" mad="{mad}" href="{detail}" h="ID=images.5061.1,5102.1">"#,
                r#"<div class="img_cont hoff"><img class="mimg" style="background-color:{bg};color:{bg}" height="{th}" width="{tw}" src="{turl}" alt="{title}"/></div></a>"#,
                r#"<div class="img_info hon"><span class="nowrap">{w} x {h} · {fmt}</span><div class="lnkw"><a target="_blank" href="{purl}" h="ID=images,5013.1" tabindex="-1" aria-hidden="true">{site}</a></div></div></div>"#,
                r#"<div class="infnmpt"><div class="infopt"><a class="inflnk" aria-label="Image result for {qa}" href="{detail}" h="ID=images,5014.1">{title}</a>"#,
                r#"<ul class="b_dataList"><li class="b_lin">{site}</li></ul></div></div></div></li>"#
            ),
            idx = rank + 1,
            cid = cid,
            th = th,
            tw = tw,
            m = html_escape(&m),
            mad = html_escape(&format!(
                r#"{{"turl":"{turl}","maw":"{tw}","mah":"{th}","mid":"{mid}"}}"#
            )),
            detail = html_escape(&detail),
            bg = bg,
            turl = html_escape(&turl),
            title = title,
            w = it.look.width,
            h = it.look.height,
            fmt = it.look.format.short_name(),
            purl = html_escape(&purl),
            site = site,
            qa = html_escape(query),
        );
    }
    html += "</ul></div>";
    (html, items)
}

/// The 0-based start of Bing's last non-empty page of `count` results (pages counted from the
/// first result: 0, `count`, 2 `count`, ...): what Bing answers again when asked past its end
/// (`bing_repeat_last_page`). `None` when `first` (1-based) is not past the end or the query has
/// no results.
pub fn bing_last_page_start(world: &World, query: &str, first: u32, count: u32) -> Option<u32> {
    let total = world.result_count(EngineKind::Bing, query);
    let start = first.max(1) - 1;
    let count = count.clamp(1, BING_MAX_COUNT);
    (start >= total && total > 0).then(|| (total - 1) / count * count)
}

/// `images/async` in a "changed format": well-formed HTML whose results are not `a.iusc`
/// anchors and that has no results list and no "no results" text, so an adapter can only say
/// the format changed.
pub fn bing_changed_html(world: &World, port: u16, query: &str, first: u32, count: u32) -> String {
    let start = first.max(1) - 1;
    let items = page(
        world,
        EngineKind::Bing,
        query,
        start,
        count.clamp(1, BING_MAX_COUNT),
    );
    let mut html = format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>{} - Images</title></head><body><main class="gx-grid" data-version="2">"#,
        html_escape(query)
    );
    for it in &items {
        let payload = serde_json::json!({
            "media": world.image_url(it, port),
            "preview": world.thumbnail_url(it, port),
            "host": world.page_url(it, port),
            "label": it.title,
        })
        .to_string();
        html += &format!(
            r#"<figure class="gx-tile" data-payload="{}"><img src="{}" alt="{}"/></figure>"#,
            html_escape(&payload),
            html_escape(&world.thumbnail_url(it, port)),
            html_escape(&it.title)
        );
    }
    html += "</main></body></html>";
    html
}

// ---------------------------------------------------------------------------------------------
// Wikimedia Commons

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
                name.rsplit_once('.').map(|x| x.0).unwrap_or(&name),
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
        urls.push(world.commons_url(&it.spec, &name, port));
        let thumb = thumb_width.map(|w| {
            let (ow, oh) = (it.look.width, it.look.height);
            if ow <= w {
                (urls[i].clone(), ow, oh)
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
            url: urls[i].clone(),
            descriptionurl: format!(
                "http://commons.{DOMAIN}:{port}/wiki/{}",
                percent_encode(&file_title.replace(' ', "_")).replace("%3A", ":")
            ),
            descriptionshorturl: format!(
                "http://commons.{DOMAIN}:{port}/w/index.php?curid={pageid}"
            ),
            mime: it.look.format.mime(),
            extmetadata: m,
        };
        pages.insert(
            pageid.to_string(),
            CommonsPage {
                pageid,
                ns: 6,
                title: file_title,
                index: rank + 1,
                imagerepository: "local",
                imageinfo: vec![info],
            },
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_ascii_escaped_like_the_recorded_responses() {
        assert_eq!(
            ascii_json(r#"{"t":"Café 😋"}"#),
            r#"{"t":"Caf\u00e9 \ud83d\ude0b"}"#
        );
    }

    #[test]
    fn thumbnail_steps() {
        for (asked, round, step) in [
            (320, true, Some(330)),
            (320, false, None),
            (330, false, Some(330)),
            (1280, false, Some(1280)),
            (1, true, Some(20)),
            (5000, true, Some(3840)),
            (0, true, None),
        ] {
            assert_eq!(thumb_step(asked, round), step, "{asked} {round}");
        }
    }

    #[test]
    fn browser_headers() {
        let full = [
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-site", "same-origin"),
            ("referer", "https://duckduckgo.com/"),
            ("accept-language", "en-US,en;q=0.9"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            ),
        ];
        let lookup = |hs: Vec<(&'static str, &'static str)>| {
            move |n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
        };
        assert!(ddg_browser_headers_ok(lookup(full.to_vec())));
        for i in 0..full.len() {
            let mut less = full.to_vec();
            less.remove(i);
            assert!(
                !ddg_browser_headers_ok(lookup(less)),
                "without {}",
                full[i].0
            );
        }
    }

    #[test]
    fn user_agents() {
        for (ua, ok) in [
            (None, false),
            (Some("curl/8.0"), false),
            (Some("python-requests/2.31"), false),
            (
                Some("lennonnet/0.1 (+https://example.invalid/lennonnet)"),
                true,
            ),
            (Some("mybot/1.0 (me@example.org)"), true),
            (Some("Mozilla/5.0"), false),
        ] {
            assert_eq!(commons_user_agent_ok(ua), ok, "{ua:?}");
        }
    }
}
