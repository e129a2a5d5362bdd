//! `lennonnet eval --run DIR`: score a snapshot with a run's best model, write `<run>/eval/`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, bail};
use lennonnet_dataset::sources::sources;
use lennonnet_dataset::{Dataset, DatasetError};
use lennonnet_eval::{Annotations, EvalOptions, Scorer};
use lennonnet_store::StoreError;

use super::{load_config, stdout_error};
use crate::cli::{EvalArgs, TruthArg};

pub fn run(args: EvalArgs, quiet: bool) -> anyhow::Result<()> {
    lennonnet_models::tune_allocator();
    let started = Instant::now();
    let device = lennonnet_models::device::parse_device(&args.device)?;
    let scorer = Scorer::load(&args.run, &device)?;
    let load_secs = started.elapsed().as_secs_f64();
    let config = load_config(&args.config.config)?;
    let dataset = Dataset::of_config(&config);
    let snapshots = dataset.snapshots_dir();
    let wanted = args
        .snapshot
        .clone()
        .unwrap_or_else(|| scorer.record.snapshot.clone());
    let snapshot = dataset.snapshot(&wanted).with_context(|| {
        format!(
            "cannot open snapshot `{wanted}` in {} (is --config the run's dataset?)",
            snapshots.display()
        )
    })?;
    let rows = snapshot.rows()?;

    // The store only adds each image's provenance: eval reads it read-only, and scores a
    // snapshot whose dataset holds no store (a synthetic one) without it.
    let (sources, positive_queries) = match dataset.open_store_read_only() {
        Ok((store, _)) => {
            let found = sources(&store, &rows, &scorer.record.classes[0])?;
            store.close()?;
            found
        }
        Err(
            e @ DatasetError::Store {
                source: StoreError::NoStore { .. } | StoreError::JournalMissing { .. },
                ..
            },
        ) => {
            let e = anyhow::Error::from(e);
            tracing::warn!(error = %format!("{e:#}"), "scoring without provenance");
            (BTreeMap::new(), BTreeSet::new())
        }
        Err(e) => return Err(e.into()),
    };
    let mut ann = Annotations {
        sources,
        truth: BTreeMap::new(),
        truth_source: "none".into(),
    };
    if args.truth != TruthArg::None {
        let world = lennonnet_mirror::load_world(args.world.as_deref(), args.world_seed, None)
            .context("cannot build the mirror world to read the truth")?;
        ann.truth = lennonnet_mirror::truth::eval_truth(
            &world,
            &rows,
            &ann.sources,
            &positive_queries,
            &scorer.record.classes,
        );
        ann.truth_source = "mirror".into();
        if ann.truth.is_empty() && args.truth == TruthArg::Mirror {
            bail!(
                "--truth mirror: no image's URL carries this mirror world's truth (another --world or --world-seed?)"
            );
        }
        tracing::info!(
            known = ann.truth.len(),
            images = rows.len(),
            "ground truth read off mirror URLs"
        );
    }
    let opts = EvalOptions {
        batch_size: args.batch_size.max(1),
        threads: args.threads.unwrap_or(EvalOptions::default().threads),
        words_prefix: args.words_prefix.clone(),
        gallery_errors: args.gallery,
        gallery_suspects: args.gallery,
        ..EvalOptions::default()
    };
    let progress = crate::progress::reporter(!quiet);
    let out = lennonnet_eval::evaluate(
        &args.run,
        &scorer,
        &snapshot,
        &ann,
        &opts,
        progress.as_ref(),
        load_secs,
    )?;
    tracing::info!(
        dir = %out.dir.display(),
        images = out.metrics.timing.images,
        images_per_sec = out.metrics.timing.images_per_sec,
        "evaluation written"
    );
    let text = if args.json {
        serde_json::to_string_pretty(&out.metrics)? + "\n"
    } else {
        lennonnet_eval::table::render(&out.metrics) + &format!("written    {}\n", out.dir.display())
    };
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(stdout_error)
}
