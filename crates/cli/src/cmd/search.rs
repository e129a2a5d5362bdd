use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use lennonnet_core::{EngineKind, QueryId};
use lennonnet_search::{SearchError, SearchOptions, Searcher, save_responses_to};

use super::{load_config_for_requests, stdout_error};
use crate::cli::SearchArgs;

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let config = load_config_for_requests(&args.config.config)?;
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
