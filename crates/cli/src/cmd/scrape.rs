use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use lennonnet_fetch::Fetcher;
use lennonnet_scrape::{Report, Scraper};
use lennonnet_search::Searcher;

use super::{load_config, stdout_error};
use crate::cli::{OutputFormat, ScrapeArgs};
use crate::progress;

pub fn run(args: ScrapeArgs, quiet: bool) -> anyhow::Result<()> {
    let config = Arc::new(load_config(&args.config.config)?);
    let rows = lennonnet_plan::plan(&config);
    let (store, _) = super::store::open(&config, false)?;
    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let fetcher = Arc::new(
            Fetcher::new(&config.fetch, &config.http).context("cannot set up the downloader")?,
        );
        let searcher = Arc::new(
            Searcher::from_config(&config.http, &config.engines)
                .context("cannot set up the search engines")?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!(
                    "interrupted: finishing what is in flight, then stopping (rerun to continue)"
                );
                on_signal.store(true, Ordering::SeqCst);
            }
        });
        let mut scraper = Scraper::new(
            config.clone(),
            store.clone(),
            fetcher,
            searcher,
            Arc::from(progress::reporter(!args.no_progress && !quiet)),
        );
        scraper.stop = stop;
        scraper.retry_failed = args.retry_failed;
        scraper.run(&rows).await.context("scrape stopped")
    })?;
    drop(runtime);
    Arc::try_unwrap(store)
        .map_err(|_| anyhow::anyhow!("the store is still in use"))?
        .close()
        .context("cannot close the store")?;

    let mut out = BufWriter::new(std::io::stdout().lock());
    match args.format {
        OutputFormat::Table => out.write_all(render(&report).as_bytes()),
        OutputFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
    }
    .and_then(|()| out.flush())
    .map_err(stdout_error)?;

    if report.interrupted {
        anyhow::bail!("interrupted; rerun the same command to continue where it stopped");
    }
    let changed: Vec<_> = report.query_errors().filter(|e| e.changed).collect();
    if !changed.is_empty() {
        let engines: std::collections::BTreeSet<&str> =
            changed.iter().map(|e| e.engine.as_str()).collect();
        anyhow::bail!(
            "{} queries got pages whose structure was not recognised ({}); the adapter needs updating: save a page and check it with `lennonnet engines parse`",
            changed.len(),
            engines.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// The summary table: per group, wanted and got, and where the other candidates went.
fn render(report: &Report) -> String {
    use super::plan::thousands;
    let mut rows = vec![
        [
            "group",
            "purpose",
            "wanted",
            "got",
            "candidates",
            "duplicates",
            "rejected",
            "failed",
            "reasons",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut short = 0;
    for g in &report.groups {
        if g.got < g.wanted {
            short += 1;
        }
        let rejected: u64 = g.rejected.values().sum();
        let failed: u64 = g.failed.values().sum();
        let mut reasons: Vec<String> = g
            .failed
            .iter()
            .chain(g.rejected.iter())
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if !g.query_errors.is_empty() {
            reasons.push(format!("query errors {}", g.query_errors.len()));
        }
        rows.push(vec![
            g.group.to_string(),
            g.purpose.to_string(),
            thousands(g.wanted as u64),
            thousands(g.got as u64),
            thousands(g.candidates),
            thousands(g.duplicates),
            thousands(rejected),
            thousands(failed),
            reasons.join(", "),
        ]);
    }
    let mut t = super::plan::layout(
        &rows,
        &[false, false, true, true, true, true, true, true, false],
    );
    let wanted: u64 = report.groups.iter().map(|g| g.wanted as u64).sum();
    let got: u64 = report.groups.iter().map(|g| g.got as u64).sum();
    t += &format!(
        "\n{} of {} images in {} groups; {short} groups short of their wanted count\n",
        thousands(got),
        thousands(wanted),
        report.groups.len()
    );
    for e in report.query_errors() {
        t += &format!(
            "query error: {} on {} ({}): {}\n",
            e.text, e.engine, e.query_id, e.error
        );
    }
    t
}
