//! `lennonnet engines check`: one canary query over two pages on each engine, then a table of
//! what each answered and what to do about it.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use lennonnet_core::{EngineKind, QueryId};
use lennonnet_search::{
    Cursor, EngineError, Request, Response, SearchError, SearchOptions, Searcher, Step,
    save_response,
};
use serde::Serialize;

use crate::cli::{EnginesCheckArgs, OutputFormat, Require};
use crate::cmd::{load_config_for_requests, stdout_error};

/// Result pages asked of each engine.
const PAGES: u32 = 2;

/// One engine's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub engine: EngineKind,
    pub ok: bool,
    /// The last HTTP status the engine answered with (none: no answer at all).
    pub status: Option<u16>,
    pub pages: u32,
    pub candidates: u32,
    /// The first error, if any.
    pub error: Option<String>,
    /// What to do.
    pub advice: String,
    /// The saved response that shows the failure (or the last one).
    pub saved: Option<PathBuf>,
}

pub fn run(args: EnginesCheckArgs) -> anyhow::Result<()> {
    let config = load_config_for_requests(&args.config.config)?;
    let plan = lennonnet_plan::plan(&config);
    let engines: Vec<EngineKind> = if args.engine.is_empty() {
        let mut used: Vec<EngineKind> = config.engines.order.clone();
        for q in &plan {
            if !used.contains(&q.engine) {
                used.push(q.engine);
            }
        }
        used.retain(|e| plan.iter().any(|q| q.engine == *e));
        used
    } else {
        let mut e = args.engine.clone();
        e.dedup();
        e
    };
    let query = match &args.query {
        Some(q) => q.clone(),
        None => plan
            .first()
            .map(|q| q.text.clone())
            .context("the plan has no query; give one with --query")?,
    };
    let dir = match &args.save {
        Some(d) => d.clone(),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            lennonnet_dataset::Dataset::of_config(&config).engines_check_dir(secs)
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let seen = Arc::new(Seen::default());
    let mut options = SearchOptions::new(1);
    options.max_retry_after = Duration::from_secs(10);
    options.backoff_max = Duration::from_secs(5);
    options.breaker = false;
    options.on_response = Some(seen.clone().hook(dir.clone()));
    let searcher = Searcher::new(&config.http, &config.engines, options)
        .context("cannot set up the search engines")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tracing::info!(query = %query, engines = ?engines, dir = %dir.display(), "checking the engines");
    let rows: Vec<CheckRow> = runtime.block_on(async {
        let checks = engines
            .iter()
            .map(|&engine| check_one(&searcher, engine, &query, &seen));
        futures::future::join_all(checks).await
    });

    let mut out = BufWriter::new(std::io::stdout().lock());
    match args.format {
        OutputFormat::Table => out.write_all(render(&rows, &query, &dir).as_bytes()),
        OutputFormat::Json => serde_json::to_writer_pretty(&mut out, &rows)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
    }
    .and_then(|()| out.flush())
    .map_err(stdout_error)?;

    let failed: Vec<&CheckRow> = rows.iter().filter(|r| !r.ok).collect();
    let fail = match args.require {
        Require::All => !failed.is_empty(),
        Require::Any => failed.len() == rows.len(),
    };
    if fail {
        let what: Vec<String> = failed
            .iter()
            .map(|r| {
                let mut s = format!(
                    "{}: {}",
                    r.engine,
                    r.error.as_deref().unwrap_or("no candidates")
                );
                if let Some(p) = &r.saved {
                    s += &format!(" (response saved as {})", p.display());
                }
                s
            })
            .collect();
        anyhow::bail!(
            "{} of {} engines failed the check: {}",
            failed.len(),
            rows.len(),
            what.join("; ")
        );
    }
    if !failed.is_empty() {
        tracing::warn!(
            failed = failed.len(),
            "some engines failed the check; the others will be used"
        );
    }
    Ok(())
}

/// What each engine answered, from the response hook: the last status and saved file.
#[derive(Default)]
struct Seen {
    count: AtomicU32,
    last: Mutex<HashMap<EngineKind, (u16, Option<PathBuf>)>>,
}

impl Seen {
    fn hook(self: Arc<Self>, dir: PathBuf) -> lennonnet_search::ResponseHook {
        Arc::new(
            move |engine: EngineKind, cursor: &Cursor, request: &Request, response: &Response| {
                let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
                let step = match cursor.step {
                    Step::Token => "token",
                    Step::Results => "page",
                };
                let stem = format!("{n:03}-{engine}-{step}");
                let saved = match save_response(&dir, &stem, engine, cursor, request, response) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot save a response");
                        None
                    }
                };
                self.last
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(engine, (response.status, saved));
            },
        )
    }

    fn last(&self, engine: EngineKind) -> (Option<u16>, Option<PathBuf>) {
        match self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&engine)
        {
            Some((status, saved)) => (Some(*status), saved.clone()),
            None => (None, None),
        }
    }
}

async fn check_one(searcher: &Searcher, engine: EngineKind, query: &str, seen: &Seen) -> CheckRow {
    let mut pager = searcher.pager(engine, query, QueryId("canary".into()), u32::MAX);
    let mut error = None;
    while pager.stats().pages < PAGES {
        match pager.next_batch().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let (status, saved) = seen.last(engine);
    let candidates = pager.found();
    let pages = pager.stats().pages;
    let ok = error.is_none() && candidates > 0;
    let advice = advice(engine, error.as_ref(), candidates, status);
    CheckRow {
        engine,
        ok,
        status,
        pages,
        candidates,
        error: error.as_ref().map(short_error),
        advice,
        saved,
    }
}

/// The error without the URL (the table names the engine; the saved .meta has the URL).
fn short_error(e: &SearchError) -> String {
    match e {
        SearchError::Engine {
            source, attempts, ..
        } => format!("{source} (after {attempts} attempt(s))"),
        SearchError::Transport { source, .. } => {
            let mut s = source.to_string();
            let mut cause = std::error::Error::source(source);
            while let Some(c) = cause {
                s += &format!(": {c}");
                cause = c.source();
            }
            s
        }
        other => other.to_string(),
    }
}

fn advice(
    engine: EngineKind,
    e: Option<&SearchError>,
    candidates: u32,
    status: Option<u16>,
) -> String {
    let Some(e) = e else {
        return if candidates > 0 {
            "works".into()
        } else {
            "answered, but with no results for the canary: try another --query".into()
        };
    };
    match e.engine_error() {
        Some(EngineError::Blocked) => format!(
            "{engine} takes this client for a bot (a challenge or redirect): wait (DuckDuckGo's blocks last about an hour), lower requests_per_sec, or put another engine first in engines.order"
        ),
        Some(EngineError::RateLimited { .. }) if engine == EngineKind::WikimediaCommons && status == Some(403) => {
            "Wikimedia refuses the User-Agent: name the tool and your contact in [http] user_agent".into()
        }
        Some(EngineError::RateLimited { .. }) => {
            "rate limited: wait, then rerun; lower requests_per_sec".into()
        }
        Some(EngineError::TokenMissing) => {
            "the page held no vqd token: check the saved token page with `lennonnet engines parse --engine duckduckgo --kind vqd FILE`".into()
        }
        Some(EngineError::Changed { .. }) => format!(
            "the format changed: check the saved page with `lennonnet engines parse --engine {engine} FILE` and update the adapter"
        ),
        Some(EngineError::Http { status: 403 }) if engine == EngineKind::WikimediaCommons => {
            "Wikimedia refuses the User-Agent: name the tool and your contact in [http] user_agent".into()
        }
        Some(EngineError::Http { status }) if *status >= 500 => {
            "the engine has trouble: try again later".into()
        }
        Some(EngineError::Http { .. }) => {
            "check base_url, the proxy and the User-Agent".into()
        }
        Some(EngineError::Api { .. }) => "read the API's message".into(),
        None => match e {
            SearchError::Transport { .. } => {
                "no answer: check the network, [http] proxy (or HTTPS_PROXY) and base_url".into()
            }
            _ => "see the error".into(),
        },
    }
}

fn render(rows: &[CheckRow], query: &str, dir: &Path) -> String {
    let mut table = vec![
        [
            "engine",
            "status",
            "pages",
            "candidates",
            "first error",
            "what to do",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in rows {
        table.push(vec![
            r.engine.to_string(),
            r.status.map_or("-".into(), |s| s.to_string()),
            r.pages.to_string(),
            r.candidates.to_string(),
            r.error.clone().unwrap_or_else(|| "-".into()),
            r.advice.clone(),
        ]);
    }
    let mut t = crate::table::layout(&table, &[false, true, true, true, false, false]);
    let ok = rows.iter().filter(|r| r.ok).count();
    t += &format!(
        "\n{ok} of {} engines work for {query:?} ({PAGES} pages each); every response is saved in {}\n",
        rows.len(),
        dir.display()
    );
    t
}
