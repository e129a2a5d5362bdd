//! The responses every route builds on: typed bodies, error pages, rate limits, redirects.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::Body;
use crate::engines;
use crate::error::MirrorError;

pub(super) type Resp = Response<Body>;

pub(super) fn resp(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::Full(Some(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(ctype)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    r
}

pub(super) fn html(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    resp(status, "text/html; charset=utf-8", body)
}

pub(super) fn error_page(status: StatusCode) -> Resp {
    let reason = status.canonical_reason().unwrap_or("Error");
    html(
        status,
        format!(
            "<!DOCTYPE html><html><head><title>{} {reason}</title></head><body><h1>{reason}</h1><p>The requested URL was not found on this server.</p><hr><address>Apache/2.4.41 (Ubuntu)</address></body></html>",
            status.as_u16()
        ),
    )
}

pub(super) fn simple_page(title: &str) -> Resp {
    let t = engines::html_escape(title);
    html(
        StatusCode::OK,
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>A page of the offline mirror.</p></body></html>"
        ),
    )
}

pub(super) fn too_many(retry_after: u64) -> Resp {
    let mut r = html(
        StatusCode::TOO_MANY_REQUESTS,
        "<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

pub(super) fn image_resp(status: StatusCode, ctype: &str, body: Bytes) -> Resp {
    let mut r = resp(status, ctype, body);
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    r
}

pub(super) fn redirect(location: String, nonce: u32) -> Resp {
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

pub(super) fn internal(e: MirrorError) -> Resp {
    tracing::error!(error = %e, "cannot render a picture");
    error_page(StatusCode::INTERNAL_SERVER_ERROR)
}
