//! DuckDuckGo: the token page `/?q=..` and the `i.js` JSON.

use std::collections::BTreeMap;

use lennonnet_core::{EngineKind, keyed_hash};
use serde::Serialize;

use super::{ascii_json, html_escape, js_single_quoted, page};
use crate::world::{ResultItem, World, percent_encode};

/// Results per DuckDuckGo `i.js` page.
pub const DDG_PAGE: u32 = 100;

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
