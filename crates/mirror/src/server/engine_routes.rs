//! The engines' routes: DuckDuckGo's token page and `i.js`, Bing's `images/async` and the
//! Commons API, with their refusals, rate limits and noise.

use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, HeaderValue, LOCATION, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode};
use lennonnet_core::EngineKind;

use super::compress::accepts;
use super::respond::{Resp, html, resp, too_many};
use super::{param, params};
use crate::engines;
use crate::state::{Gate, Mirror};
use crate::world::World;

/// DuckDuckGo refusing a blocked client: the anomaly page with 403 and a 302 to the challenge
/// page, in turn.
pub(super) fn ddg_blocked(q: &str, refusal: u64) -> Resp {
    if refusal % 2 == 0 {
        html(StatusCode::FORBIDDEN, engines::ddg_anomaly_html(q))
    } else {
        challenge_redirect(q)
    }
}

/// A 302 to DuckDuckGo's challenge page on the same host.
pub(super) fn challenge_redirect(q: &str) -> Resp {
    let location = engines::ddg_challenge_location(q);
    let mut r = html(
        StatusCode::FOUND,
        format!(
            "<html><head><title>302 Found</title></head><body><a href=\"{0}\">{0}</a></body></html>",
            engines::html_escape(&location)
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

pub(super) fn user_agent(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `vqd` token for a query, tied to the User-Agent when `ddg_vqd_per_user_agent` is on.
pub(super) fn vqd(m: &Mirror, req: &Request<Incoming>, q: &str) -> String {
    if m.rules.ddg_vqd_per_user_agent {
        engines::ddg_vqd_for_user_agent(&m.world, q, user_agent(req))
    } else {
        engines::ddg_vqd(&m.world, q)
    }
}

pub(super) fn ddg_page(m: &Mirror, req: &Request<Incoming>) -> Resp {
    let ps = params(req);
    let q = param(&ps, "q").unwrap_or("").trim().to_string();
    if q.is_empty() {
        return html(StatusCode::OK, engines::ddg_html("", None));
    }
    match m.gate(EngineKind::DuckDuckGo) {
        Gate::Open => {}
        Gate::TooMany(s) => return too_many(s),
        Gate::Blocked(n) => return ddg_blocked(&q, n),
    }
    let request = format!("html|{}", World::normalize(&q));
    let attempt = m.attempt(EngineKind::DuckDuckGo, &request);
    let s = &m.world.config.search;
    if m.chance("anomaly", &request, attempt) < s.ddg_anomaly {
        return html(StatusCode::ACCEPTED, engines::ddg_anomaly_html(&q));
    }
    if m.chance("challenge redirect", &request, attempt) < m.rules.ddg_redirect_to_challenge {
        return challenge_redirect(&q);
    }
    let token =
        (m.chance("missing vqd", &request, attempt) >= s.ddg_missing_vqd).then(|| vqd(m, req, &q));
    html(StatusCode::OK, engines::ddg_html(&q, token.as_deref()))
}

pub(super) fn ddg_ijs(m: &Mirror, req: &Request<Incoming>) -> Resp {
    let ps = params(req);
    let q = param(&ps, "q").unwrap_or("").to_string();
    let forbidden = || html(StatusCode::FORBIDDEN, engines::DDG_FORBIDDEN);
    if q.trim().is_empty() {
        return forbidden();
    }
    match m.gate(EngineKind::DuckDuckGo) {
        Gate::Open => {}
        Gate::TooMany(s) => return too_many(s),
        Gate::Blocked(n) => return ddg_blocked(&q, n),
    }
    if m.rules.ddg_require_browser_headers
        && !engines::ddg_browser_headers_ok(|name| {
            req.headers().get(name).and_then(|v| v.to_str().ok())
        })
    {
        return forbidden();
    }
    if param(&ps, "vqd") != Some(vqd(m, req, &q).as_str()) {
        return forbidden();
    }
    let s: u32 = param(&ps, "s").and_then(|s| s.parse().ok()).unwrap_or(0);
    if m.world
        .config
        .search
        .changed
        .contains(&EngineKind::DuckDuckGo)
    {
        return resp(
            StatusCode::OK,
            "application/json; charset=UTF-8",
            engines::ddg_changed_json(&m.world, m.port, &q, s),
        );
    }
    let request = format!("ijs|{}|{s}", World::normalize(&q));
    let attempt = m.attempt(EngineKind::DuckDuckGo, &request);
    if m.chance("anomaly", &request, attempt) < m.world.config.search.ddg_anomaly {
        return html(StatusCode::IM_A_TEAPOT, engines::ddg_anomaly_html(&q));
    }
    if m.chance("challenge redirect", &request, attempt) < m.rules.ddg_redirect_to_challenge {
        return challenge_redirect(&q);
    }
    if s > 0 && m.chance("challenge", &request, attempt) < m.rules.ddg_challenge_later_pages {
        return html(StatusCode::OK, engines::ddg_anomaly_html(&q));
    }
    let p = param(&ps, "p").unwrap_or("-1");
    let l = param(&ps, "l").unwrap_or("us-en");
    let token = vqd(m, req, &q);
    let (json, items) = engines::ddg_ijs(&m.world, m.port, &q, s, p, l, &token);
    let urls: Vec<String> = items
        .iter()
        .map(|it| m.world.image_url(it, m.port))
        .collect();
    m.record(EngineKind::DuckDuckGo, &q, s, &items, &urls);
    resp(StatusCode::OK, "application/json; charset=UTF-8", json)
}

pub(super) fn bing(m: &Mirror, req: &Request<Incoming>) -> Resp {
    let ps = params(req);
    let q = param(&ps, "q").unwrap_or("").to_string();
    if let Some(s) = m.over_burst(EngineKind::Bing) {
        return too_many(s);
    }
    let first: u32 = param(&ps, "first")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count: u32 = param(&ps, "count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(35);
    if m.world.config.search.changed.contains(&EngineKind::Bing) {
        return html(
            StatusCode::OK,
            engines::bing_changed_html(&m.world, m.port, &q, first, count),
        );
    }
    // Past the end, Bing answers its last page again.
    let first = match m
        .rules
        .bing_repeat_last_page
        .then(|| engines::bing_last_page_start(&m.world, &q, first, count))
        .flatten()
    {
        Some(start) => start + 1,
        None => first,
    };
    // A client that is not a browser, or that cannot take compressed answers, gets one result.
    let count = if m.rules.bing_require_browser && !bing_browser(req) {
        1
    } else {
        count
    };
    let (body, items) = engines::bing_async(&m.world, m.port, &q, first, count);
    let urls: Vec<String> = items
        .iter()
        .map(|it| m.world.image_url(it, m.port))
        .collect();
    m.record(EngineKind::Bing, &q, first.max(1) - 1, &items, &urls);
    html(StatusCode::OK, body)
}

/// Whether Bing takes a request for a browser's: a `Mozilla/5.0` User-Agent that accepts gzip or br.
pub(super) fn bing_browser(req: &Request<Incoming>) -> bool {
    let accept = req
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    user_agent(req).contains("Mozilla/5.0") && (accepts(accept, "gzip") || accepts(accept, "br"))
}

pub(super) fn commons(m: &Mirror, req: &Request<Incoming>) -> Resp {
    let ua = req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok());
    if m.world.config.search.commons_require_user_agent && !engines::commons_user_agent_ok(ua) {
        return resp(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            engines::COMMONS_FORBIDDEN,
        );
    }
    if let Some(s) = m.over_burst(EngineKind::WikimediaCommons) {
        return too_many(s);
    }
    let ps = params(req);
    let json = |body: String| resp(StatusCode::OK, "application/json; charset=utf-8", body);
    if m.rules.commons_maxlag > 0.0 && param(&ps, "maxlag").is_some() {
        let request = format!("api|{}", req.uri().query().unwrap_or(""));
        let attempt = m.attempt(EngineKind::WikimediaCommons, &request);
        if m.chance("maxlag", &request, attempt) < m.rules.commons_maxlag {
            let lag = 6;
            let mut r = json(engines::commons_maxlag_error(lag));
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r.headers_mut()
                .insert("x-database-lag", HeaderValue::from(lag));
            return r;
        }
    }
    if param(&ps, "action") != Some("query") {
        return json(engines::commons_error(
            "badvalue",
            "Unrecognized value for parameter \"action\".",
        ));
    }
    if param(&ps, "generator") != Some("search") {
        return json(engines::commons_error(
            "badvalue",
            "The mirror serves generator=search only.",
        ));
    }
    let Some(q) = param(&ps, "gsrsearch").filter(|q| !q.trim().is_empty()) else {
        return json(engines::commons_error(
            "missingparam",
            "The \"gsrsearch\" parameter must be set.",
        ));
    };
    let limit = match param(&ps, "gsrlimit") {
        Some("max") => engines::COMMONS_MAX_LIMIT,
        Some(n) => n.parse().unwrap_or(10),
        None => 10,
    };
    let offset: u32 = param(&ps, "gsroffset")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if m.world
        .config
        .search
        .changed
        .contains(&EngineKind::WikimediaCommons)
    {
        return json(engines::commons_changed_json(
            &m.world, m.port, q, offset, limit,
        ));
    }
    // Thumbnails in the standard widths only: a width off the steps is rounded up (strict) or,
    // as the mirror always did, ignored.
    let thumb_width = param(&ps, "iiurlwidth")
        .and_then(|w| w.parse().ok())
        .and_then(|w| engines::thumb_step(w, m.rules.commons_strict_thumb_widths));
    let (body, items, upload_urls) =
        engines::commons_search(&m.world, m.port, q, offset, limit, thumb_width);
    m.record(
        EngineKind::WikimediaCommons,
        q,
        offset,
        &items,
        &upload_urls,
    );
    json(body)
}
