//! Saving engine responses to disk: every response (`lennonnet search --save-responses`,
//! `lennonnet engines check --save`), and each page no parser recognises (the scrape), so that
//! `lennonnet engines parse` can be run on it and it can become a recorded fixture.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use lennonnet_core::EngineKind;

use crate::driver::ResponseHook;
use crate::engine::{Cursor, Request, Response, Step};

/// Writes `response`'s body to `dir/<stem>.body` and its URL, status, cursor and headers to
/// `dir/<stem>.meta` (JSON) beside it. Returns the body's path. Each file is written to a
/// temporary name first and renamed, so a saved response is never half-written.
pub fn save_response(
    dir: &Path,
    stem: &str,
    engine: EngineKind,
    cursor: &Cursor,
    request: &Request,
    response: &Response,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let meta = serde_json::json!({
        "engine": engine,
        "url": request.url.as_str(),
        "status": response.status,
        "cursor": cursor,
        "headers": headers,
    });
    let body_path = dir.join(format!("{stem}.body"));
    write_atomic(&body_path, &response.body)?;
    write_atomic(
        &dir.join(format!("{stem}.meta")),
        &serde_json::to_vec_pretty(&meta)?,
    )?;
    Ok(body_path)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A hook that saves each response as `dir/NNN-<engine>-<token|page>.body` (and `.meta`).
pub fn save_responses_to(dir: PathBuf) -> ResponseHook {
    let counter = Arc::new(AtomicU32::new(0));
    Arc::new(
        move |engine: EngineKind, cursor: &Cursor, request: &Request, response: &Response| {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            let step = match cursor.step {
                Step::Token => "token",
                Step::Results => "page",
            };
            let stem = format!("{n:03}-{engine}-{step}");
            if let Err(e) = save_response(&dir, &stem, engine, cursor, request, response) {
                tracing::warn!(dir = %dir.display(), file = %stem, error = %e, "cannot save a response");
            }
        },
    )
}
