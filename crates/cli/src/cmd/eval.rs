//! `lennonnet eval --run DIR`: score a snapshot with a run's best model, write `<run>/eval/`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, bail};
use lennonnet_core::{ContentId, ManifestRow};
use lennonnet_eval::metrics::{Source, Truth};
use lennonnet_eval::{Annotations, EvalOptions, Scorer};
use lennonnet_store::Store;

use super::{load_config, stdout_error};
use crate::cli::{EvalArgs, TruthArg};

pub fn run(args: EvalArgs, quiet: bool) -> anyhow::Result<()> {
    lennonnet_train::tune_allocator();
    let started = Instant::now();
    let device = lennonnet_train::device::parse_device(&args.device)?;
    let scorer = Scorer::load(&args.run, &device)?;
    let load_secs = started.elapsed().as_secs_f64();
    let config = load_config(&args.config.config)?;
    let snapshots = config.dataset_dir().join("snapshots");
    let wanted = args
        .snapshot
        .clone()
        .unwrap_or_else(|| scorer.record.snapshot.clone());
    let snapshot = lennonnet_split::snapshot::open(&snapshots, &wanted).with_context(|| {
        format!(
            "cannot open snapshot `{wanted}` in {} (is --config the run's dataset?)",
            snapshots.display()
        )
    })?;
    let rows = snapshot.rows()?;

    // The store only adds each image's provenance: eval reads it read-only, and scores a
    // snapshot whose dataset holds no store (a synthetic one) without it.
    let (sources, positive_queries) = match super::store::open_read_only(&config) {
        Ok((store, _)) => {
            let found = sources(&store, &rows, &scorer.record.classes[0])?;
            store.close()?;
            found
        }
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<lennonnet_store::StoreError>(),
                    Some(
                        lennonnet_store::StoreError::NoStore { .. }
                            | lennonnet_store::StoreError::JournalMissing { .. }
                    )
                )
            }) =>
        {
            tracing::warn!(error = %format!("{e:#}"), "scoring without provenance");
            (BTreeMap::new(), BTreeSet::new())
        }
        Err(e) => return Err(e),
    };
    let mut ann = Annotations {
        sources,
        truth: BTreeMap::new(),
        truth_source: "none".into(),
    };
    if args.truth != TruthArg::None {
        let world = lennonnet_mirror::load_world(args.world.as_deref(), args.world_seed, None)
            .context("cannot build the mirror world to read the truth")?;
        ann.truth = mirror_truth(
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

/// Every search result that led to each image.
pub type SourceMap = BTreeMap<ContentId, Vec<Source>>;

/// Every search result that led to each image, sorted; and the query texts of the groups
/// labelled `positive` (what the positive class was searched for).
pub fn sources(
    store: &Store,
    rows: &[ManifestRow],
    positive: &str,
) -> anyhow::Result<(SourceMap, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    let mut queries = BTreeSet::new();
    for r in rows {
        let provenance = store.provenance(&r.id)?;
        for p in &provenance {
            if let (true, Some(q)) = (p.label.as_str() == positive, &p.query_text) {
                queries.insert(q.clone());
            }
        }
        let mut s: Vec<Source> = provenance
            .into_iter()
            .map(|p| Source {
                query: p.query_text.unwrap_or_default(),
                engine: p
                    .engine
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_else(|| "local".into()),
                url: p.image_url,
            })
            .collect();
        s.sort();
        s.dedup();
        out.insert(r.id, s);
    }
    Ok((out, queries))
}

/// The truth of each image whose URLs carry this world's tokens. The positive class's identities
/// are the mirror subjects that the positive groups' queries resolve to (John for "John Lennon
/// portrait"); an image is truly positive when one of them is in the picture, else truly the
/// other class. Only for two-class runs.
pub fn mirror_truth(
    world: &lennonnet_mirror::World,
    rows: &[ManifestRow],
    sources: &BTreeMap<ContentId, Vec<Source>>,
    positive_queries: &BTreeSet<String>,
    classes: &[String],
) -> BTreeMap<ContentId, Truth> {
    use lennonnet_mirror::world::QuerySubject;
    let mut out = BTreeMap::new();
    if classes.len() != 2 {
        tracing::warn!(
            classes = classes.len(),
            "ground truth is only mapped to classes for two-class runs: skipped"
        );
        return out;
    }
    let mut positive: BTreeSet<String> = BTreeSet::new();
    for q in positive_queries {
        match world.resolve(q) {
            QuerySubject::Beatle(b) => {
                positive.insert(b.as_str().to_string());
            }
            QuerySubject::Corpus(g) => {
                if let Some(c) = &world.corpus {
                    positive.insert(c.groups[g as usize].name.clone());
                }
            }
            _ => {}
        }
    }
    tracing::debug!(?positive, "identities of the positive class");
    for r in rows {
        let Some(t) = sources
            .get(&r.id)
            .into_iter()
            .flatten()
            .find_map(|s| lennonnet_mirror::server::truth_of_url(world, &s.url))
        else {
            continue;
        };
        let is_pos = t.identities.iter().any(|i| positive.contains(i));
        out.insert(
            r.id,
            Truth {
                class: classes[usize::from(!is_pos)].clone(),
                name: t.name,
                identities: t.identities,
            },
        );
    }
    out
}
