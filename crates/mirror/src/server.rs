//! The HTTP server: one listening socket, virtual hosts by the Host header.
//!
//! | host | serves |
//! | --- | --- |
//! | `duckduckgo.mirror.test` | `/` (token page), `/i.js` |
//! | `bing.mirror.test` | `/images/async` |
//! | `commons.mirror.test` | `/w/api.php`, `/wiki/...` pages |
//! | `img00.mirror.test` .. `img23.mirror.test`, `upload.mirror.test` | images: `/<prefix>/<token>/<name>` |
//! | `tse1.mirror.test` .. `tse4.mirror.test` | thumbnails: `/th?id=OIP.<token>&pid=Api` |
//! | `www.<site>.mirror.test` | the pages results were found on |
//! | `127.0.0.1:PORT`, `localhost:PORT` | all of the above by path |
//!
//! `/_mirror/...` answers on every host: `health`, `truth?url=`, `truth.jsonl`, `stats`, `world`,
//! `rules` (the real engines' behaviours in force),
//! `static?bytes=N` (a fixed buffer, the benchmark's baseline).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HOST, HeaderValue, LOCATION, RETRY_AFTER,
    USER_AGENT, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lennonnet_core::EngineKind;
use tokio::net::TcpListener;

use crate::engines;
use crate::error::{MirrorError, Result};
use crate::spec::{Delivery, ImageSpec};
use crate::state::{FileSlot, Gate, Mirror, Options};
use crate::world::{DOMAIN, World};

/// A response body: whole, or trickling a few bytes at a time.
pub enum Body {
    Full(Option<Bytes>),
    Trickle {
        data: Bytes,
        chunk: usize,
        interval: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    /// A body that holds a download slot of the Commons file host until it is sent (or dropped).
    Held(Box<Body>, FileSlot),
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Trickle {
                data,
                chunk,
                interval,
                sleep,
            } => {
                if data.is_empty() {
                    return Poll::Ready(None);
                }
                if let Some(s) = sleep {
                    if s.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                let n = (*chunk).min(data.len());
                let part = data.split_to(n);
                *sleep = Some(Box::pin(tokio::time::sleep(*interval)));
                Poll::Ready(Some(Ok(Frame::data(part))))
            }
            Body::Held(inner, _) => Pin::new(inner.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::Trickle { data, .. } => data.is_empty(),
            Body::Held(inner, _) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Trickle { data, .. } => SizeHint::with_exact(data.len() as u64),
            Body::Held(inner, _) => inner.size_hint(),
        }
    }
}

use std::future::Future;

type Resp = Response<Body>;

fn resp(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::Full(Some(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(ctype)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    r
}

fn html(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    resp(status, "text/html; charset=utf-8", body)
}

fn error_page(status: StatusCode) -> Resp {
    let reason = status.canonical_reason().unwrap_or("Error");
    html(
        status,
        format!(
            "<!DOCTYPE html><html><head><title>{} {reason}</title></head><body><h1>{reason}</h1><p>The requested URL was not found on this server.</p><hr><address>Apache/2.4.41 (Ubuntu)</address></body></html>",
            status.as_u16()
        ),
    )
}

/// A running mirror.
pub struct Running {
    pub addr: SocketAddr,
    pub mirror: Arc<Mirror>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr` (port 0 picks a free port) and serves the world until shut down.
pub async fn start(world: World, addr: SocketAddr, options: &Options) -> Result<Running> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MirrorError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| MirrorError::Bind { addr, source })?;
    let mirror = Arc::new(Mirror::new(world, addr.port(), options));
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let m = Arc::clone(&mirror);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => break,
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let m = Arc::clone(&m);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let m = Arc::clone(&m);
                            async move { Ok::<_, Infallible>(handle(m, req).await) }
                        });
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
            }
        }
    });
    if !options.warm_queries.is_empty() {
        let m = Arc::clone(&mirror);
        let queries = options.warm_queries.clone();
        let per_query = options.warm_per_query;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let n = m.warm(&queries, per_query).await;
            tracing::info!(
                pictures = n,
                secs = started.elapsed().as_secs_f64(),
                "cache warmed"
            );
        });
    }
    Ok(Running {
        addr,
        mirror,
        shutdown: tx,
        task,
    })
}

fn params(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(ps: &'a [(String, String)], name: &str) -> Option<&'a str> {
    ps.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ddg,
    Bing,
    Commons,
    /// An IP address or localhost: everything, by path.
    Any,
    Image(u8),
    /// Wikimedia Commons' file host (image host 0 for redirects).
    Upload,
    Thumbnails,
    Page,
    Unknown,
}

fn host_kind(name: &str) -> Host {
    let name = name.to_ascii_lowercase();
    let Some(sub) = name.strip_suffix(&format!(".{DOMAIN}")) else {
        return if name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok()
            || name.starts_with('[')
        {
            Host::Any
        } else {
            Host::Unknown
        };
    };
    match sub {
        "duckduckgo" => Host::Ddg,
        "bing" => Host::Bing,
        "commons" => Host::Commons,
        "upload" => Host::Upload,
        s if s.starts_with("tse") => Host::Thumbnails,
        s if s.starts_with("img") => s[3..].parse().map(Host::Image).unwrap_or(Host::Unknown),
        s if s.starts_with("www.") => Host::Page,
        _ => Host::Unknown,
    }
}

async fn handle(m: Arc<Mirror>, req: Request<Incoming>) -> Resp {
    let host_name = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| match h.rsplit_once(':') {
                    Some((name, port)) if port.parse::<u16>().is_ok() => name.to_string(),
                    _ => h.to_string(),
                })
        })
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error_page(StatusCode::METHOD_NOT_ALLOWED);
    }
    if let Some(admin) = path.strip_prefix("/_mirror/") {
        return admin_route(&m, admin, &req);
    }
    let host = host_kind(&host_name);
    let engine = match (&host, path.as_str()) {
        (Host::Ddg | Host::Any, "/") => Some(ddg_page(&m, &req)),
        (Host::Ddg | Host::Any, "/i.js") => Some(ddg_ijs(&m, &req)),
        (Host::Ddg | Host::Any, "/anomaly") => {
            let ps = params(&req);
            Some(html(
                StatusCode::OK,
                engines::ddg_anomaly_html(param(&ps, "q").unwrap_or("")),
            ))
        }
        (Host::Bing | Host::Any, "/images/async") => Some(bing(&m, &req)),
        (Host::Commons | Host::Any, "/w/api.php") => Some(commons(&m, &req)),
        _ => None,
    };
    if let Some(r) = engine {
        return if m.rules.compress_responses {
            compress(r, req.headers().get(ACCEPT_ENCODING))
        } else {
            r
        };
    }
    match (&host, path.as_str()) {
        (Host::Commons, p) if p.starts_with("/wiki/") || p == "/w/index.php" => {
            simple_page(&format!(
                "{} - Wikimedia Commons",
                percent_decode(p.trim_start_matches("/wiki/"))
            ))
        }
        (Host::Thumbnails | Host::Any, "/th") => {
            let ps = params(&req);
            let token = param(&ps, "id").and_then(|id| id.strip_prefix("OIP."));
            match token.and_then(|t| ImageSpec::from_token(t, m.world.key())) {
                Some(spec) => image(&m, spec, 0).await,
                None => error_page(StatusCode::NOT_FOUND),
            }
        }
        (Host::Upload, p) | (Host::Any, p) if p.starts_with("/wikipedia/commons/") => {
            upload(&m, &req, p).await
        }
        (Host::Image(_) | Host::Any, p) if p.len() > 1 => {
            let h = if let Host::Image(h) = host { h } else { 0 };
            let segments: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
            let spec = (segments.len() >= 2)
                .then(|| ImageSpec::from_token(segments[segments.len() - 2], m.world.key()))
                .flatten();
            match spec {
                Some(spec) => image(&m, spec, h).await,
                None => error_page(StatusCode::NOT_FOUND),
            }
        }
        (Host::Page, p) => simple_page(&p.trim_start_matches('/').replace(['-', '/'], " ")),
        _ => error_page(StatusCode::NOT_FOUND),
    }
}

/// Wikimedia Commons' file host: originals `/wikipedia/commons/<h>/<hh>/<token>/<File_name>` and
/// thumbnails `/wikipedia/commons/thumb/<h>/<hh>/<token>/<File_name>/<W>px-<File_name>`, at most
/// `commons_file_concurrency` at once per User-Agent.
async fn upload(m: &Arc<Mirror>, req: &Request<Incoming>, path: &str) -> Resp {
    let client = req
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(slot) = m.file_slot(client) else {
        return too_many(1);
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let r = match commons_file(&segments) {
        Some(CommonsFile::Original(token)) => match ImageSpec::from_token(token, m.world.key()) {
            Some(spec) => image(m, spec, 0).await,
            None => error_page(StatusCode::NOT_FOUND),
        },
        Some(CommonsFile::Thumb(token, width)) => {
            match ImageSpec::from_token(token, m.world.key()) {
                Some(spec) => commons_thumb(m, spec, width).await,
                None => error_page(StatusCode::NOT_FOUND),
            }
        }
        None => error_page(StatusCode::NOT_FOUND),
    };
    let (parts, body) = r.into_parts();
    Response::from_parts(parts, Body::Held(Box::new(body), slot))
}

enum CommonsFile<'a> {
    Original(&'a str),
    /// The token and the width in pixels (`None` when the last segment is not `<W>px-<name>`).
    Thumb(&'a str, Option<u32>),
}

/// Reads a path of the Commons file host, split into its segments.
fn commons_file<'a>(segments: &[&'a str]) -> Option<CommonsFile<'a>> {
    match segments {
        ["wikipedia", "commons", "thumb", _, _, token, rest @ ..] if rest.len() >= 2 => {
            let width = rest[1..]
                .iter()
                .find_map(|s| s.split_once("px-"))
                .and_then(|(w, _)| w.parse().ok());
            Some(CommonsFile::Thumb(token, width))
        }
        ["wikipedia", "commons", _, _, token, _, ..] => Some(CommonsFile::Original(token)),
        _ => None,
    }
}

/// A Commons thumbnail: the picture scaled to `width` (the original when it is not wider). With
/// `commons_strict_thumb_widths`, widths off the standard steps get 400, as on Wikimedia. A file
/// that does not answer (404, 410, 5xx) has no thumbnails either.
async fn commons_thumb(m: &Arc<Mirror>, spec: ImageSpec, width: Option<u32>) -> Resp {
    let Some(width) = width.filter(|w| *w > 0) else {
        return error_page(StatusCode::BAD_REQUEST);
    };
    if m.rules.commons_strict_thumb_widths && !engines::THUMB_STEPS.contains(&width) {
        return error_page(StatusCode::BAD_REQUEST);
    }
    match spec.delivery {
        Delivery::NotFound | Delivery::Gone | Delivery::ServerError => {
            return image(m, spec, 0).await;
        }
        _ => {}
    }
    let look = m.world.look(&spec);
    if look.width <= width {
        let clean = ImageSpec {
            delivery: Delivery::Ok,
            hops: 0,
            ..spec
        };
        return image(m, clean, 0).await;
    }
    match m.thumb(&spec, width).await {
        Ok(bytes) => image_resp(
            StatusCode::OK,
            crate::state::thumb_mime(&m.world, &spec),
            bytes,
        ),
        Err(e) => internal(e),
    }
}

/// Compresses an engine's answer as the client accepts: br before gzip, else as it is.
fn compress(r: Resp, accept: Option<&HeaderValue>) -> Resp {
    let accept = accept.and_then(|v| v.to_str().ok()).unwrap_or("");
    let coding = if accepts(accept, "br") {
        "br"
    } else if accepts(accept, "gzip") {
        "gzip"
    } else {
        return r;
    };
    let (mut parts, body) = r.into_parts();
    let Body::Full(Some(bytes)) = body else {
        return Response::from_parts(parts, body);
    };
    let packed = match coding {
        "br" => {
            let mut out = Vec::with_capacity(bytes.len() / 4 + 64);
            let params = brotli::enc::BrotliEncoderParams {
                quality: 5,
                lgwin: 22,
                ..Default::default()
            };
            let mut input = &bytes[..];
            if brotli::BrotliCompress(&mut input, &mut out, &params).is_err() {
                return Response::from_parts(parts, Body::Full(Some(bytes)));
            }
            out
        }
        _ => {
            use std::io::Write as _;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            match enc.write_all(&bytes).and_then(|()| enc.finish()) {
                Ok(out) => out,
                Err(_) => return Response::from_parts(parts, Body::Full(Some(bytes))),
            }
        }
    };
    parts
        .headers
        .insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
    parts
        .headers
        .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    Response::from_parts(parts, Body::Full(Some(Bytes::from(packed))))
}

/// Whether an Accept-Encoding value accepts `coding` (named, and not with `q=0`).
fn accepts(accept: &str, coding: &str) -> bool {
    accept.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        name.eq_ignore_ascii_case(coding) && !refused
    })
}

fn simple_page(title: &str) -> Resp {
    let t = engines::html_escape(title);
    html(
        StatusCode::OK,
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>A page of the offline mirror.</p></body></html>"
        ),
    )
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn too_many(retry_after: u64) -> Resp {
    let mut r = html(
        StatusCode::TOO_MANY_REQUESTS,
        "<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// DuckDuckGo refusing a blocked client: the anomaly page with 403 and a 302 to the challenge
/// page, in turn.
fn ddg_blocked(q: &str, refusal: u64) -> Resp {
    if refusal % 2 == 0 {
        html(StatusCode::FORBIDDEN, engines::ddg_anomaly_html(q))
    } else {
        challenge_redirect(q)
    }
}

/// A 302 to DuckDuckGo's challenge page on the same host.
fn challenge_redirect(q: &str) -> Resp {
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

fn user_agent(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `vqd` token for a query, tied to the User-Agent when `ddg_vqd_per_user_agent` is on.
fn vqd(m: &Mirror, req: &Request<Incoming>, q: &str) -> String {
    if m.rules.ddg_vqd_per_user_agent {
        engines::ddg_vqd_for_user_agent(&m.world, q, user_agent(req))
    } else {
        engines::ddg_vqd(&m.world, q)
    }
}

fn ddg_page(m: &Mirror, req: &Request<Incoming>) -> Resp {
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

fn ddg_ijs(m: &Mirror, req: &Request<Incoming>) -> Resp {
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

fn bing(m: &Mirror, req: &Request<Incoming>) -> Resp {
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
fn bing_browser(req: &Request<Incoming>) -> bool {
    let accept = req
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    user_agent(req).contains("Mozilla/5.0") && (accepts(accept, "gzip") || accepts(accept, "br"))
}

fn commons(m: &Mirror, req: &Request<Incoming>) -> Resp {
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

async fn image(m: &Arc<Mirror>, spec: ImageSpec, host: u8) -> Resp {
    let world = &m.world;
    let t = &world.config.timing;
    let nonce = spec.url_nonce;
    match spec.delivery {
        Delivery::NotFound => return error_page(StatusCode::NOT_FOUND),
        Delivery::Gone => return error_page(StatusCode::GONE),
        Delivery::ServerError => {
            let codes = [
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
            ];
            return error_page(codes[nonce as usize % 3]);
        }
        Delivery::RedirectLoop => {
            return redirect(world.redirect_target(&spec, host, m.port), nonce);
        }
        Delivery::RedirectChain if spec.hops > 0 => {
            return redirect(world.redirect_target(&spec, host, m.port), nonce);
        }
        Delivery::Html200 => {
            return html(
                StatusCode::OK,
                "<!DOCTYPE html><html><head><title>Page not found</title></head><body><h1>Oops! That page can't be found.</h1><p>It looks like nothing was found at this location. Maybe try a search?</p></body></html>",
            );
        }
        Delivery::Bomb => {
            let png = nonce % 2 == 0;
            let ctype = if png { "image/png" } else { "image/jpeg" };
            return image_resp(
                StatusCode::OK,
                ctype,
                Bytes::from(crate::encode::bomb(nonce as u64, png)),
            );
        }
        Delivery::Huge => {
            let thumb = world.thumbnail_spec(&spec);
            return match m.content(&thumb).await {
                Ok(small) => {
                    let size = t.huge_bytes;
                    let big = tokio::task::spawn_blocking(move || {
                        crate::encode::huge(&small, size, nonce as u64)
                    })
                    .await
                    .unwrap_or_default();
                    image_resp(StatusCode::OK, "image/jpeg", Bytes::from(big))
                }
                Err(e) => internal(e),
            };
        }
        _ => {}
    }
    let bytes = match m.content(&spec).await {
        Ok(b) => b,
        Err(e) => return internal(e),
    };
    let mime = world.look(&spec).format.mime();
    match spec.delivery {
        Delivery::Truncated => {
            let cut = crate::encode::truncate_at(bytes.len(), nonce);
            image_resp(StatusCode::OK, mime, bytes.slice(..cut))
        }
        Delivery::WrongContentType => {
            let wrong = [
                "text/html; charset=UTF-8",
                "text/plain",
                "application/octet-stream",
                if mime == "image/png" {
                    "image/jpeg"
                } else {
                    "image/png"
                },
            ];
            image_resp(StatusCode::OK, wrong[nonce as usize % wrong.len()], bytes)
        }
        Delivery::SlowFirstByte => {
            tokio::time::sleep(Duration::from_millis(t.slow_first_byte_ms)).await;
            image_resp(StatusCode::OK, mime, bytes)
        }
        Delivery::Trickle => {
            let mut r = image_resp(StatusCode::OK, mime, Bytes::new());
            *r.body_mut() = Body::Trickle {
                data: bytes,
                chunk: t.trickle_bytes.max(1) as usize,
                interval: Duration::from_millis(t.trickle_interval_ms),
                sleep: None,
            };
            r
        }
        _ => image_resp(StatusCode::OK, mime, bytes),
    }
}

fn image_resp(status: StatusCode, ctype: &str, body: Bytes) -> Resp {
    let mut r = resp(status, ctype, body);
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    r
}

fn redirect(location: String, nonce: u32) -> Resp {
    let codes = [
        StatusCode::FOUND,
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ];
    let status = codes[nonce as usize % codes.len()];
    let mut r = html(
        status,
        format!(
            "<html><body>Moved to <a href=\"{0}\">{0}</a></body></html>",
            engines::html_escape(&location)
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn internal(e: MirrorError) -> Resp {
    tracing::error!(error = %e, "cannot render a picture");
    error_page(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A static buffer for the benchmark's baseline, made once.
fn static_buffer(len: usize) -> Bytes {
    use std::sync::OnceLock;
    static BUF: OnceLock<Bytes> = OnceLock::new();
    let buf = BUF.get_or_init(|| Bytes::from(vec![0x5au8; 8 << 20]));
    buf.slice(..len.min(buf.len()))
}

fn admin_route(m: &Mirror, route: &str, req: &Request<Incoming>) -> Resp {
    let ps = params(req);
    let json_ok = |s: String| resp(StatusCode::OK, "application/json", s);
    match route {
        "health" => resp(StatusCode::OK, "text/plain", "ok\n"),
        "stats" => json_ok(serde_json::to_string(&m.stats()).unwrap_or_default()),
        "world" => json_ok(serde_json::to_string(&m.world.config).unwrap_or_default()),
        "rules" => json_ok(serde_json::to_string(&m.rules).unwrap_or_default()),
        "static" => {
            let n = param(&ps, "bytes")
                .and_then(|s| s.parse().ok())
                .unwrap_or(50_000);
            image_resp(StatusCode::OK, "image/jpeg", static_buffer(n))
        }
        "truth" => {
            let Some(url) = param(&ps, "url") else {
                return resp(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    r#"{"error":"missing url"}"#,
                );
            };
            match truth_of_url(&m.world, url) {
                Some(t) => json_ok(serde_json::to_string(&t).unwrap_or_default()),
                None => resp(
                    StatusCode::NOT_FOUND,
                    "application/json",
                    r#"{"error":"not a URL of this world"}"#,
                ),
            }
        }
        "truth.jsonl" => {
            let truths = match (param(&ps, "engine"), param(&ps, "q")) {
                (Some(engine), Some(q)) => {
                    let Ok(engine) = engine.parse::<EngineKind>() else {
                        return resp(
                            StatusCode::BAD_REQUEST,
                            "application/json",
                            r#"{"error":"unknown engine"}"#,
                        );
                    };
                    let limit = param(&ps, "limit")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u32::MAX);
                    crate::generate::query_truths(&m.world, m.port, engine, q, limit)
                }
                _ => m.emitted(),
            };
            let mut out = String::new();
            for t in truths {
                out += &serde_json::to_string(&t).unwrap_or_default();
                out.push('\n');
            }
            resp(StatusCode::OK, "application/x-ndjson", out)
        }
        _ => error_page(StatusCode::NOT_FOUND),
    }
}

/// The truth of any image or thumbnail URL of this world, read off its token.
pub fn truth_of_url(world: &World, url: &str) -> Option<crate::world::Truth> {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let token = if let Some(id) = url
        .split_once('?')
        .and_then(|(_, q)| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "id"))
    {
        id.1.strip_prefix("OIP.").map(str::to_string)
    } else {
        let path = without_query
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(without_query);
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let Some(CommonsFile::Thumb(token, Some(width))) = commons_file(&segments) {
            // A Commons thumbnail shows the file's picture, scaled.
            let spec = ImageSpec::from_token(token, world.key())?;
            let mut truth = world.truth(&spec, url.to_string());
            if truth.width > width {
                truth.height = engines::thumb_height(truth.width, truth.height, width);
                truth.width = width;
            }
            return Some(truth);
        }
        (segments.len() >= 2).then(|| segments[segments.len() - 2].to_string())
    }?;
    let spec = ImageSpec::from_token(&token, world.key())?;
    Some(world.truth(&spec, url.to_string()))
}
