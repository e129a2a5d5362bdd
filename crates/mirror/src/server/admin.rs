//! `/_mirror/...`: health, stats, the world and its rules, ground truth, and the benchmark's
//! static buffer.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use lennonnet_core::EngineKind;

use super::images::{CommonsFile, commons_file};
use super::respond::{Resp, error_page, image_resp, resp};
use super::{param, params};
use crate::engines;
use crate::spec::ImageSpec;
use crate::state::Mirror;
use crate::world::World;

/// A static buffer for the benchmark's baseline, made once.
pub(super) fn static_buffer(len: usize) -> Bytes {
    use std::sync::OnceLock;
    static BUF: OnceLock<Bytes> = OnceLock::new();
    let buf = BUF.get_or_init(|| Bytes::from(vec![0x5au8; 8 << 20]));
    buf.slice(..len.min(buf.len()))
}

pub(super) fn admin_route(m: &Mirror, route: &str, req: &Request<Incoming>) -> Resp {
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
