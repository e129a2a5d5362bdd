//! Pictures: the image hosts, the engines' thumbnails and Wikimedia Commons' file host, each
//! answering as its URL's delivery says (errors, redirects, bombs, slow or cut bodies).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::USER_AGENT;
use hyper::{Request, Response, StatusCode};

use super::Body;
use super::respond::{Resp, error_page, html, image_resp, internal, redirect, too_many};
use crate::engines;
use crate::spec::{Delivery, ImageSpec};
use crate::state::Mirror;

/// Wikimedia Commons' file host: originals `/wikipedia/commons/<h>/<hh>/<token>/<File_name>` and
/// thumbnails `/wikipedia/commons/thumb/<h>/<hh>/<token>/<File_name>/<W>px-<File_name>`, at most
/// `commons_file_concurrency` at once per User-Agent.
pub(super) async fn upload(m: &Arc<Mirror>, req: &Request<Incoming>, path: &str) -> Resp {
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

pub(super) enum CommonsFile<'a> {
    Original(&'a str),
    /// The token and the width in pixels (`None` when the last segment is not `<W>px-<name>`).
    Thumb(&'a str, Option<u32>),
}

/// Reads a path of the Commons file host, split into its segments.
pub(super) fn commons_file<'a>(segments: &[&'a str]) -> Option<CommonsFile<'a>> {
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
pub(super) async fn commons_thumb(m: &Arc<Mirror>, spec: ImageSpec, width: Option<u32>) -> Resp {
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

pub(super) async fn image(m: &Arc<Mirror>, spec: ImageSpec, host: u8) -> Resp {
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
