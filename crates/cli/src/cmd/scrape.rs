use lennonnet_dataset::Dataset;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use lennonnet_fetch::Fetcher;
use lennonnet_scrape::{Report, Scraper};
use lennonnet_search::{SearchOptions, Searcher};

use super::{load_config_for_requests, stdout_error};
use crate::cli::{OutputFormat, ScrapeArgs};
use crate::progress;

pub fn run(args: ScrapeArgs, quiet: bool) -> anyhow::Result<()> {
    let config = Arc::new(load_config_for_requests(&args.config.config)?);
    let rows = lennonnet_plan::plan(&config);
    let (store, _) = Dataset::of_config(&config).open_store(false)?;
    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let fetcher = Arc::new(
            Fetcher::new(&config.fetch, &config.http).context("cannot set up the downloader")?,
        );
        let progress: Arc<dyn lennonnet_core::Progress> =
            Arc::from(progress::reporter(!args.no_progress && !quiet));
        let mut options = SearchOptions::new(config.engines.max_retries);
        options.changed_dir = Some(Dataset::of_config(&config).changed_pages_dir());
        let notes = progress.clone();
        options.on_event = Some(Arc::new(move |event| {
            notes.note("scrape", &event.to_string())
        }));
        let searcher = Arc::new(
            Searcher::new(&config.http, &config.engines, options)
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
        let mut scraper = Scraper::new(config.clone(), store.clone(), fetcher, searcher, progress);
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
    // One changed page fails its query; an engine that answers several queries in a row with
    // pages no parser recognises has changed its format: that fails the run.
    let changed: Vec<_> = report.engines.iter().filter(|e| e.format_changed).collect();
    if !changed.is_empty() {
        let what: Vec<String> = changed
            .iter()
            .map(|e| match &e.last_saved {
                Some(p) => format!(
                    "{} (the last page is saved as {}; check it with `lennonnet engines parse --engine {} {}`)",
                    e.engine,
                    p.display(),
                    e.engine,
                    p.display()
                ),
                None => e.engine.to_string(),
            })
            .collect();
        // Each engine's own `changed_threshold` (they are equal unless the config says not).
        let mut thresholds: Vec<u32> = changed
            .iter()
            .map(|e| {
                config
                    .engines
                    .settings(e.engine, &config.http)
                    .changed_threshold
            })
            .collect();
        thresholds.dedup();
        let queries = match thresholds.as_slice() {
            [n] => n.to_string(),
            _ => "changed_threshold".to_string(),
        };
        anyhow::bail!(
            "the format of {} has changed: {queries} queries in a row got pages no parser recognises; everything stored is kept, and the adapter needs updating: {}",
            changed
                .iter()
                .map(|e| e.engine.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
            what.join("; ")
        );
    }
    if let Some(until) = report.engines_down_until {
        anyhow::bail!(
            "every search engine this plan uses is down after blocks (its cool-down); the scrape stopped with what it has. Rerun the same command after {} (in {} min): it resumes where it stopped",
            httpdate::fmt_http_date(until),
            until
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_secs().div_ceil(60))
        );
    }
    Ok(())
}

/// The summary table: per group, wanted and got, and where the other candidates went.
fn render(report: &Report) -> String {
    use crate::table::thousands;
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
            .map(|(r, n)| format!("{r} {n}"))
            .chain(g.rejected.iter().map(|(r, n)| format!("{r} {n}")))
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
    let mut t = crate::table::layout(
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
    t += "\n";
    t += &render_engines(report);
    for e in report.query_errors() {
        t += &format!(
            "query error: {} on {} ({}): {}\n",
            e.text, e.engine, e.query_id, e.error
        );
    }
    t
}

/// The engines table: what each engine was asked and how it answered.
fn render_engines(report: &Report) -> String {
    use crate::table::thousands;
    let mut rows = vec![
        [
            "engine",
            "requests",
            "pages",
            "candidates",
            "blocks",
            "rate limits",
            "cool-downs",
            "changed",
            "fell through",
            "state",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for e in &report.engines {
        if e.requests == 0 {
            continue;
        }
        let fell_through = report
            .query_errors()
            .filter(|q| q.engine == e.engine.as_str())
            .count() as u64;
        let state = if e.format_changed {
            "format changed".to_string()
        } else if let Some(until) = e.down_until {
            format!("down until {}", httpdate::fmt_http_date(until))
        } else {
            "up".to_string()
        };
        rows.push(vec![
            e.engine.to_string(),
            thousands(e.requests),
            thousands(e.pages),
            thousands(e.candidates),
            thousands(e.blocks),
            thousands(e.rate_limits),
            thousands(e.cooldowns),
            thousands(e.changed),
            thousands(fell_through),
            state,
        ]);
    }
    if rows.len() == 1 {
        return String::new();
    }
    crate::table::layout(
        &rows,
        &[false, true, true, true, true, true, true, true, true, false],
    )
}
