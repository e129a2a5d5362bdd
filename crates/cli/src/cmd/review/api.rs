//! The routes behind the token: the page's data, the review actions, thumbnails and scoring.
//! Blocking work (the journal's fsync, decoding, forward passes) runs on tokio's blocking pool.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, HeaderValue};
use lennonnet_core::ContentId;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::server::{Reply, Token, error, json, with_type};
use super::state::{Answer, Asked, Refused, ReviewState};
use super::thumbs::{ThumbError, Thumbs};
use super::tryit::TryIt;

/// The largest action body taken.
const MAX_ACTION_BYTES: usize = 16 * 1024;

pub struct App {
    pub token: Token,
    pub state: ReviewState,
    pub thumbs: Thumbs,
    pub tryit: TryIt,
    /// The config's downloader settings, for the try-it tab's URLs.
    pub fetch: lennonnet_config::FetchConfig,
    pub http: lennonnet_config::HttpConfig,
    pub fetcher: OnceCell<lennonnet_fetch::Fetcher>,
    /// The run's eval truth source (`mirror` or `none`), for the page's label.
    pub truth_source: String,
}

/// Everything the page draws: classes, run, reviewer, the suspects and the reviews in force.
pub fn state(app: &App) -> Reply {
    let s = &app.state;
    let head = serde_json::json!({
        "classes": s.classes,
        "run": s.run_name,
        "reviewer": s.reviewer,
        "truth_source": app.truth_source,
    })
    .to_string();
    let body = format!(
        "{},\"suspects\":{},\"reviews\":{}}}",
        &head[..head.len() - 1],
        s.suspects_json,
        s.reviews_json()
    );
    json(StatusCode::OK, body)
}

pub async fn thumb(app: &Arc<App>, name: &str) -> Reply {
    let Ok(id) = name.trim_end_matches(".jpg").parse::<ContentId>() else {
        return error(StatusCode::NOT_FOUND, "not a content id");
    };
    let a = Arc::clone(app);
    match tokio::task::spawn_blocking(move || a.thumbs.get(&id)).await {
        Ok(Ok(bytes)) => {
            let mut r = with_type(StatusCode::OK, "image/jpeg", bytes);
            r.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400, immutable"),
            );
            r
        }
        Ok(Err(ThumbError::Missing)) => error(StatusCode::NOT_FOUND, "no such object in the store"),
        Ok(Err(ThumbError::Bad(why))) => {
            tracing::warn!(%id, %why, "no thumbnail");
            error(StatusCode::UNPROCESSABLE_ENTITY, &why)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn review(app: &Arc<App>, req: hyper::Request<Incoming>) -> Reply {
    let body = match read_body(req, MAX_ACTION_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let asked: Asked = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad action: {e}")),
    };
    let a = Arc::clone(app);
    answer(tokio::task::spawn_blocking(move || a.state.apply(asked)).await)
}

pub async fn undo(app: &Arc<App>) -> Reply {
    let a = Arc::clone(app);
    answer(tokio::task::spawn_blocking(move || a.state.undo()).await)
}

fn answer(r: Result<Result<Answer, Refused>, tokio::task::JoinError>) -> Reply {
    match r {
        Ok(Ok(a)) => json(
            StatusCode::OK,
            serde_json::to_string(&a).expect("serialises"),
        ),
        Ok(Err(Refused::Bad(why))) => error(StatusCode::BAD_REQUEST, &why),
        Ok(Err(Refused::Failed(why))) => {
            tracing::error!(%why, "review not journaled");
            error(StatusCode::INTERNAL_SERVER_ERROR, &why)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Scores the picture in the body (the file's bytes as they are).
pub async fn score_upload(app: &Arc<App>, req: hyper::Request<Incoming>) -> Reply {
    let max = usize::try_from(app.fetch.max_bytes).unwrap_or(usize::MAX);
    match read_body(req, max).await {
        Ok(b) => score(app, b.to_vec()).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlAsked {
    url: String,
}

/// Downloads `{"url": ...}` with the scraper's guarded fetcher (the config's `[fetch]` and
/// `[http]`: size cap, timeouts, private addresses refused unless allowed) and scores it.
pub async fn score_url(app: &Arc<App>, req: hyper::Request<Incoming>) -> Reply {
    let body = match read_body(req, MAX_ACTION_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let asked: UrlAsked = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request: {e}")),
    };
    if !(asked.url.starts_with("http://") || asked.url.starts_with("https://")) {
        return error(
            StatusCode::BAD_REQUEST,
            "the URL must start with http:// or https://",
        );
    }
    let fetcher = app
        .fetcher
        .get_or_try_init(|| async { lennonnet_fetch::Fetcher::new(&app.fetch, &app.http) })
        .await;
    let fetcher = match fetcher {
        Ok(f) => f,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let outcome = fetcher.fetch(&asked.url).await;
    match outcome.result {
        Ok(f) => score(app, f.body.to_vec()).await,
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            &format!("cannot fetch {}: {e} ({})", asked.url, e.reason()),
        ),
    }
}

async fn score(app: &Arc<App>, bytes: Vec<u8>) -> Reply {
    let a = Arc::clone(app);
    match tokio::task::spawn_blocking(move || a.tryit.score(bytes)).await {
        Ok(Ok(Ok(scored))) => json(
            StatusCode::OK,
            serde_json::to_string(&scored).expect("json"),
        ),
        Ok(Ok(Err(why))) => error(StatusCode::UNPROCESSABLE_ENTITY, &why),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The request's body, refused with 413 beyond `max` bytes.
async fn read_body(req: hyper::Request<Incoming>, max: usize) -> Result<Bytes, Reply> {
    match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over {max} bytes"),
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {e}"),
        )),
    }
}
