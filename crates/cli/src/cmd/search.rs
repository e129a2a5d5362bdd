use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use lennonnet_core::{EngineKind, QueryId};
use lennonnet_search::{Cursor, Request, Response, SearchError, SearchOptions, Searcher, Step};

use super::{load_config, stdout_error};
use crate::cli::SearchArgs;

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config.config)?;
    let mut options = SearchOptions::new(config.engines.max_retries);
    if let Some(dir) = &args.save_responses {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        options.on_response = Some(save_responses_to(dir.clone()));
    }
    let searcher = Searcher::new(&config.http, &config.engines, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(search(&searcher, &args))
}

async fn search(searcher: &Searcher, args: &SearchArgs) -> anyhow::Result<()> {
    let engine = args.engine;
    tracing::info!(
        %engine,
        query = %args.query,
        limit = args.limit,
        base_url = %searcher.base_url(engine),
        "searching"
    );
    let mut pager = searcher.pager(
        engine,
        &args.query,
        QueryId(args.query_id.clone()),
        args.limit,
    );
    let mut out = BufWriter::new(std::io::stdout().lock());
    loop {
        match pager.next_batch().await {
            Ok(Some(batch)) => {
                for c in &batch {
                    serde_json::to_writer(&mut out, c)
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(stdout_error)?;
                }
                out.flush().map_err(stdout_error)?;
            }
            Ok(None) => break,
            Err(e) => {
                out.flush().map_err(stdout_error)?;
                return Err(explain(
                    e,
                    engine,
                    pager.found(),
                    args.save_responses.as_deref(),
                ));
            }
        }
    }
    let stats = pager.stats();
    tracing::info!(
        %engine,
        found = pager.found(),
        pages = stats.pages,
        requests = stats.requests,
        retries = stats.retries,
        skipped = stats.skipped,
        duplicates = stats.duplicates,
        stop = %pager.stop_reason().expect("a finished pager has a reason"),
        "search finished"
    );
    Ok(())
}

/// Puts what the user can do on top of the typed error.
fn explain(e: SearchError, engine: EngineKind, found: u32, saved: Option<&Path>) -> anyhow::Error {
    let hint = if e.is_changed() {
        let save = match saved {
            Some(dir) => format!(
                "The responses are saved in {}; check the last one",
                dir.display()
            ),
            None => "Save the response with --save-responses DIR and check it".to_string(),
        };
        format!(
            "{engine} answered with a response Lennonnet does not recognise: the engine has probably \
             changed its page or API ({found} candidates were printed before). {save} with \
             `lennonnet engines parse --engine {engine} FILE`"
        )
    } else {
        format!("searching {engine} failed after {found} candidates")
    };
    anyhow::Error::new(e).context(hint)
}

/// A hook that writes each response's body to `dir/NNN-<engine>-<token|page>.body`, and its
/// status, URL and cursor to a `.meta` JSON file beside it.
fn save_responses_to(dir: PathBuf) -> lennonnet_search::ResponseHook {
    let counter = Arc::new(AtomicU32::new(0));
    Arc::new(
        move |engine: EngineKind, cursor: &Cursor, request: &Request, response: &Response| {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            let step = match cursor.step {
                Step::Token => "token",
                Step::Results => "page",
            };
            let stem = format!("{n:03}-{engine}-{step}");
            if let Err(e) = save(&dir, &stem, cursor, request, response) {
                tracing::warn!(dir = %dir.display(), file = %stem, error = %e, "cannot save a response");
            }
        },
    )
}

fn save(
    dir: &Path,
    stem: &str,
    cursor: &Cursor,
    request: &Request,
    response: &Response,
) -> std::io::Result<()> {
    std::fs::write(dir.join(format!("{stem}.body")), &response.body)?;
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
        "url": request.url.as_str(),
        "status": response.status,
        "cursor": cursor,
        "headers": headers,
    });
    std::fs::write(
        dir.join(format!("{stem}.meta")),
        serde_json::to_vec_pretty(&meta)?,
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn search_and_engines_arguments_are_well_formed() {
        // clap checks every argument of every command (unique names and short flags, ...).
        crate::cli::Cli::command().debug_assert();
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "lennonnet",
            "search",
            "--engine",
            "bing",
            "--query",
            "john lennon",
            "--limit",
            "300",
            "-c",
            "config/demo.toml",
        ])
        .unwrap();
        match cli.command {
            crate::cli::Command::Search(a) => {
                assert_eq!(a.engine, lennonnet_core::EngineKind::Bing);
                assert_eq!((a.query.as_str(), a.limit), ("john lennon", 300));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            <crate::cli::Cli as clap::Parser>::try_parse_from([
                "lennonnet",
                "search",
                "--engine",
                "google",
                "--query",
                "x"
            ])
            .is_err()
        );
    }
}
