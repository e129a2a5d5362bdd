//! `lennonnet store failures`: every URL's final outcome, like img2dataset's per-sample status.

use lennonnet_dataset::Dataset;
use std::io::{BufWriter, Write};

use super::{load_config, stdout_error};
use crate::cli::{FailuresFormat, StoreFailuresArgs};

/// One row: a URL and what became of it.
struct Row<'a> {
    url: &'a str,
    /// `ok`, a download failure reason, or `rejected:<reason>` when the bytes were refused.
    outcome: String,
    status: Option<u16>,
    bytes: Option<u64>,
    duration_ms: Option<u64>,
    final_url: Option<&'a str>,
    query_id: Option<&'a str>,
    id: Option<String>,
}

pub fn run(a: StoreFailuresArgs) -> anyhow::Result<()> {
    let (store, _) = Dataset::of_config(&load_config(&a.config.config)?).open_store(false)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.format == FailuresFormat::Csv {
        writeln!(
            out,
            "url,outcome,status,bytes,duration_ms,final_url,query_id,id"
        )
        .map_err(stdout_error)?;
    }
    for entry in store.url_states() {
        let (url, state) = entry?;
        let fetch = state.fetch.as_ref();
        let outcome = match (fetch.and_then(|f| f.reason), &state.ingest) {
            (Some(reason), _) => reason.to_string(),
            (None, Some(i)) => match i.rejected {
                Some(r) => format!("rejected:{}", r.as_str()),
                None => "ok".to_string(),
            },
            (None, None) => "ok".to_string(),
        };
        if outcome == "ok" && !a.all {
            continue;
        }
        let row = Row {
            url: &url,
            outcome,
            status: fetch.and_then(|f| f.status),
            bytes: fetch.and_then(|f| f.bytes),
            duration_ms: fetch.map(|f| f.duration_ms),
            final_url: fetch.and_then(|f| f.final_url.as_deref()),
            query_id: fetch
                .and_then(|f| f.query_id.as_ref())
                .map(|q| q.0.as_str()),
            id: state.ingest.as_ref().map(|i| i.id.to_string()),
        };
        match a.format {
            FailuresFormat::Jsonl => {
                let value = serde_json::json!({
                    "url": row.url,
                    "outcome": row.outcome,
                    "status": row.status,
                    "bytes": row.bytes,
                    "duration_ms": row.duration_ms,
                    "final_url": row.final_url,
                    "query_id": row.query_id,
                    "id": row.id,
                });
                serde_json::to_writer(&mut out, &value)?;
                writeln!(out).map_err(stdout_error)?;
            }
            FailuresFormat::Csv => {
                let opt = |v: Option<String>| v.unwrap_or_default();
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    csv(row.url),
                    csv(&row.outcome),
                    opt(row.status.map(|s| s.to_string())),
                    opt(row.bytes.map(|s| s.to_string())),
                    opt(row.duration_ms.map(|s| s.to_string())),
                    csv(row.final_url.unwrap_or("")),
                    csv(row.query_id.unwrap_or("")),
                    row.id.unwrap_or_default()
                )
                .map_err(stdout_error)?;
            }
        }
    }
    out.flush().map_err(stdout_error)?;
    store.close()?;
    Ok(())
}

/// A CSV field, quoted when it holds a comma, quote or newline.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
