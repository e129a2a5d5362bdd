//! `lennonnet report`: a run folder and its eval/ → report.html and the plots as PNG files.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use lennonnet_dataset::{Dataset, RunPaths};
use lennonnet_report::{DatasetInputs, Inputs, RunInputs};

use super::{load_config, stdout_error};
use crate::cli::ReportArgs;

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let run = RunInputs::read(&args.run)?;
    let config = load_config(&args.config.config)?;
    let dataset = dataset(&config, &run.eval.snapshot);
    for note in &dataset.notes {
        tracing::warn!("{note}");
    }
    let inputs = Inputs { run, dataset };
    let rendered = lennonnet_report::render(&inputs)?;
    let out = args
        .out
        .unwrap_or_else(|| RunPaths::at(&args.run).report_dir());
    let written = lennonnet_report::write(&rendered, &out)
        .with_context(|| format!("cannot write the report to {}", out.display()))?;
    tracing::info!(
        millis = started.elapsed().as_millis() as u64,
        bytes = written.html_bytes,
        "report written"
    );
    let mut text = format!("report    {}\n", written.html.display());
    for p in &written.plots {
        text.push_str(&format!("plot      {}\n", p.display()));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// The evaluated snapshot's meta and the store's statistics, each with a note when it cannot be
/// read: the report is still written, saying what is missing and why.
fn dataset(config: &lennonnet_config::Config, snapshot: &str) -> DatasetInputs {
    let dataset = Dataset::of_config(config);
    let dir = dataset.root().to_path_buf();
    let mut d = DatasetInputs {
        dir: Some(dir.clone()),
        ..DatasetInputs::default()
    };
    match dataset.snapshot(snapshot) {
        Ok(s) => d.snapshot = Some(s.meta),
        Err(e) => d.notes.push(format!(
            "No snapshot summary: snapshot {snapshot} cannot be read ({e}). Pass --config with \
             the config the run was trained with."
        )),
    }
    if dataset.has_store() {
        let stats = dataset
            .open_store_read_only()
            .map_err(anyhow::Error::from)
            .and_then(|(store, _)| Ok(store.stats()?));
        match stats {
            Ok(stats) => d.store = Some(stats),
            Err(e) => d.notes.push(format!("No curation statistics: {e:#}.")),
        }
    } else {
        d.notes.push(format!(
            "No curation statistics: {} holds no store.",
            dir.display()
        ));
    }
    d
}
