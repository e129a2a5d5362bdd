//! `lennonnet curate [--explain ID]`.

use lennonnet_dataset::Dataset;
use std::io::{BufWriter, Write};

use lennonnet_core::NoProgress;
use lennonnet_curate::{Policy, ReviewPick, curate_releasing, explain, quarantine_reviewed};

use super::{load_config, stdout_error};
use crate::cli::CurateArgs;

pub fn run(args: CurateArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config.config)?;
    let (store, _) = Dataset::of_config(&config).open_store(false)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if let Some(prefix) = &args.explain {
        let id = store.resolve(prefix)?;
        let e = explain(&store, &id)?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &e)?;
            writeln!(out).map_err(stdout_error)?;
        } else {
            out.write_all(e.render().as_bytes()).map_err(stdout_error)?;
        }
    } else if let Some(run) = &args.from_run {
        from_run(&store, run, &args, &mut out)?;
    } else {
        let policy = Policy::from_config(&config);
        let mut release = std::collections::BTreeSet::new();
        for prefix in &args.release {
            let id = store.resolve(prefix)?;
            release.insert(id);
            if let Some(d) = store.decision(&id)? {
                release.extend(store.cluster_members(&d.cluster)?);
            }
        }
        let r = curate_releasing(&store, &policy, &release, &NoProgress)?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &r)?;
            writeln!(out).map_err(stdout_error)?;
        } else {
            let mut t = format!(
                "{} images in {} clusters; {} clusters of near-duplicates hold {} images (largest {}); {} too flat to match\n",
                r.images,
                r.clusters,
                r.duplicate_clusters,
                r.images_in_duplicate_clusters,
                r.largest_cluster,
                r.low_quality
            );
            t += &format!(
                "{} clusters found under several labels: {} images relabelled, {} quarantined; {} eval images excluded as leaks\n",
                r.conflicting_clusters, r.relabelled, r.quarantined, r.eval_excluded
            );
            if r.no_provenance > 0 {
                t += &format!(
                    "{} images left out: no provenance names them (an interrupted scrape or `store add`: rerun it)\n",
                    r.no_provenance
                );
            }
            t += &format!(
                "{} images stay quarantined after review of suspect labels; {} released\n",
                r.review_quarantined, r.released
            );
            t += &format!(
                "{} decisions journaled (the others were already in force)\n\nby status and label\n",
                r.decisions_written
            );
            for (k, v) in &r.by_status_label {
                t += &format!("  {k:<24} {v}\n");
            }
            out.write_all(t.as_bytes()).map_err(stdout_error)?;
        }
    }
    out.flush().map_err(stdout_error)?;
    store.close()?;
    Ok(())
}

/// `curate --from-run DIR`: quarantine reviewed suspects of an evaluated run.
fn from_run(
    store: &lennonnet_store::Store,
    run: &std::path::Path,
    args: &CurateArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use lennonnet_records::eval::{SUSPECTS_JSONL, Suspect};
    let path = lennonnet_dataset::RunPaths::at(run)
        .eval_dir()
        .join(SUSPECTS_JSONL);
    let suspects = super::review::read_suspects(run)?;
    let wanted =
        |s: &&Suspect| args.splits.is_empty() || args.splits.iter().any(|x| x.as_str() == s.split);
    let chosen: Vec<&Suspect> = if args.ids.is_empty() {
        suspects.iter().filter(wanted).take(args.top).collect()
    } else {
        let mut v = Vec::new();
        for prefix in &args.ids {
            let id = store.resolve(prefix)?.to_string();
            let s = suspects
                .iter()
                .find(|s| s.id == id)
                .with_context(|| format!("{id} is not among the suspects in {}", path.display()))?;
            v.push(s);
        }
        v
    };
    let run_name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if args.simulated_reviewer {
        return simulated_review(store, &run_name, &chosen, args, out);
    }
    let mut picks = Vec::new();
    for s in &chosen {
        picks.push(ReviewPick {
            id: s.id.parse().with_context(|| format!("bad id {} in {}", s.id, path.display()))?,
            detail: format!(
                "suspect #{} of run {run_name}: labelled {}, the model says {} (P({}) {:.3}, P({}) {:.3}); quarantined after review",
                s.rank, s.label, s.suggested, s.label, s.p_label, s.suggested, s.p_suggested
            ),
        });
    }
    let r = quarantine_reviewed(store, &picks, args.dry_run)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &r)?;
        writeln!(out).map_err(stdout_error)?;
        return Ok(());
    }
    let mut t = String::new();
    for s in &chosen {
        t += &format!(
            "#{:<4} {}  {:<8} {:<16} labelled {:<10} model: {:<10} P(label) {:.3}  {}\n",
            s.rank,
            &s.id[..16],
            s.split,
            s.group,
            s.label,
            s.suggested,
            s.p_label,
            s.sources.first().map(|x| x.url.as_str()).unwrap_or("")
        );
    }
    t += &format!(
        "{} {} images ({} of them near-duplicates of the picks); {} already quarantined; {} not curated yet\n",
        if args.dry_run {
            "would quarantine"
        } else {
            "quarantined"
        },
        r.quarantined.len(),
        r.via_cluster,
        r.already.len(),
        r.uncurated.len()
    );
    if !args.dry_run && !r.quarantined.is_empty() {
        t += "the next `lennonnet snapshot create` leaves them out (reason suspect_label); undo with `lennonnet curate --release ID...`\n";
    }
    out.write_all(t.as_bytes()).map_err(stdout_error)
}

/// The reviewer name of `curate --from-run --simulated-reviewer`.
pub const SIMULATED_REVIEWER: &str = "simulated-reviewer (mirror truth)";

/// `curate --from-run DIR --simulated-reviewer`: each chosen suspect relabelled to its true
/// class, or its label confirmed, from the mirror's truth in suspects.jsonl.
fn simulated_review(
    store: &lennonnet_store::Store,
    run_name: &str,
    chosen: &[&lennonnet_records::eval::Suspect],
    args: &CurateArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use lennonnet_core::Label;
    use lennonnet_store::{LabelReview, ReviewAction, Timestamp};
    let at = Timestamp::now();
    let mut reviews = Vec::with_capacity(chosen.len());
    let mut already = 0usize;
    for s in chosen {
        let truth = s.truth.as_ref().with_context(|| {
            format!(
                "suspect #{} ({}) has no truth: the simulated reviewer reads a mirror world's truth, which eval records only for datasets scraped from the mirror",
                s.rank, s.id
            )
        })?;
        let action = if truth.class == s.label {
            ReviewAction::Confirm
        } else {
            ReviewAction::Relabel {
                label: Label::new(&truth.class)
                    .with_context(|| format!("suspect {}: truth class {:?}", s.id, truth.class))?,
            }
        };
        let id =
            s.id.parse()
                .with_context(|| format!("bad suspect id {}", s.id))?;
        // Already decided so (a rerun): nothing to journal.
        if store.label_review(&id)?.is_some_and(|r| r.action == action) {
            already += 1;
            continue;
        }
        reviews.push(LabelReview {
            id,
            at,
            old_label: Label::new(&s.label)
                .with_context(|| format!("suspect {}: label {:?}", s.id, s.label))?,
            action,
            reviewer: SIMULATED_REVIEWER.into(),
            run: Some(run_name.to_string()),
        });
    }
    let relabelled = reviews
        .iter()
        .filter(|r| matches!(r.action, ReviewAction::Relabel { .. }))
        .count();
    let n = reviews.len();
    if !args.dry_run && n > 0 {
        store.record_label_reviews(reviews).wait()?;
    }
    let t = format!(
        "simulated reviewer (reads the mirror's truth of the {} suspects it reviews, nothing else): {} {relabelled} relabelled, {} confirmed; {already} already reviewed so\n{}",
        chosen.len(),
        if args.dry_run {
            "would journal"
        } else {
            "journaled"
        },
        n - relabelled,
        if args.dry_run {
            ""
        } else {
            "the next `lennonnet snapshot create` applies them (with --parent, the test holdout keeps its membership)\n"
        }
    );
    out.write_all(t.as_bytes()).map_err(stdout_error)
}
