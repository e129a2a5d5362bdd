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

mod admin;
mod body;
mod compress;
mod engine_routes;
mod images;
mod respond;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use admin::truth_of_url;
pub use body::Body;

use crate::engines;
use crate::error::{MirrorError, Result};
use crate::spec::ImageSpec;
use crate::state::{Mirror, Options};
use crate::world::{DOMAIN, World};
use admin::admin_route;
use compress::compress;
use engine_routes::{bing, commons, ddg_ijs, ddg_page};
use images::{image, upload};
use respond::{Resp, error_page, html, simple_page};

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

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
