//! The HTTP side of `lennonnet review`: a hyper 1 server on one loopback socket, the token every
//! request must carry (checked in constant time before anything else), and the routes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::api::{self, App};

pub type Reply = Response<Full<Bytes>>;

/// The page's secret: 16 bytes from the OS's random number generator, as 32 hex digits.
pub struct Token(String);

impl Token {
    pub fn random() -> anyhow::Result<Self> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)
            .map_err(|e| anyhow::anyhow!("cannot read the OS random number generator: {e}"))?;
        Ok(Self(raw.iter().map(|b| format!("{b:02x}")).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, in time that depends only on the lengths.
    pub fn matches(&self, given: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), given.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The `token` parameter of a query string, if any.
fn token_of(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(handle(app, req, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let authorised = token_of(req.uri().query()).is_some_and(|t| app.token.matches(t));
    if !authorised {
        tracing::warn!(%peer, path = req.uri().path(), "request without the right token refused");
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: this page needs its token\n",
        );
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let reply = match (&method, path.as_str()) {
        (&Method::GET, "/") => page(),
        (&Method::GET, "/api/state") => api::state(&app),
        (&Method::GET, p) if p.starts_with("/thumb/") => api::thumb(&app, &p[7..]).await,
        (&Method::POST, "/api/review") => api::review(&app, req).await,
        (&Method::POST, "/api/undo") => api::undo(&app).await,
        (&Method::POST, "/api/score") => api::score_upload(&app, req).await,
        (&Method::POST, "/api/score-url") => api::score_url(&app, req).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    tracing::debug!(%peer, %method, %path, status = reply.status().as_u16(), "served");
    reply
}

/// The page: one HTML file with its script and style inline. The policy lets it load nothing
/// from anywhere else, and the referrer policy keeps the token out of any Referer.
fn page() -> Reply {
    let mut r = with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(include_str!("page.html").as_bytes()),
    );
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self' blob: data:; style-src 'unsafe-inline'; \
             script-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn text(status: StatusCode, body: &str) -> Reply {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.to_string()),
    )
}

pub fn json(status: StatusCode, body: String) -> Reply {
    with_type(status, "application/json", Bytes::from(body))
}

/// A JSON `{"error": ...}` answer.
pub fn error(status: StatusCode, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let a = Token::random().unwrap();
        let b = Token::random().unwrap();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(&a.as_str()[..31]));
        assert!(!a.matches(""));
        assert!(!a.matches(&format!("{}0", a.as_str())));
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        let check = |q: Option<&str>, want: Option<&str>| assert_eq!(token_of(q), want, "{q:?}");
        check(None, None);
        check(Some(""), None);
        check(Some("token=abc"), Some("abc"));
        check(Some("x=1&token=abc"), Some("abc"));
        check(Some("xtoken=abc"), None);
        check(Some("token="), Some(""));
    }
}
