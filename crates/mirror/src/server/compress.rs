//! Content coding of the engines' answers: brotli or gzip, as the client accepts.

use bytes::Bytes;
use hyper::Response;
use hyper::header::{CONTENT_ENCODING, HeaderValue, VARY};

use super::Body;
use super::respond::Resp;

/// Compresses an engine's answer as the client accepts: br before gzip, else as it is.
pub(super) fn compress(r: Resp, accept: Option<&HeaderValue>) -> Resp {
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
pub(super) fn accepts(accept: &str, coding: &str) -> bool {
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
