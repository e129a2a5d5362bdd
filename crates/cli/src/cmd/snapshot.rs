//! `lennonnet snapshot create|list|show|diff|verify|export`: curated store → immutable splits.

use lennonnet_dataset::Dataset;
use lennonnet_dataset::items::{items, policy, reviewed};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use anyhow::{Context, bail};
use lennonnet_core::Split;
use lennonnet_split::assign;
use lennonnet_split::export::{Format, export};
use lennonnet_split::snapshot::{self, Snapshot};

use super::{load_config, stdout_error};
use crate::cli::{ExportFormat, OutputFormat, SnapshotArgs, SnapshotCommand};
use crate::table::{layout, thousands};

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config.config)?;
    let dataset = Dataset::of_config(&config);
    let dir = dataset.snapshots_dir();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let text = match args.command {
        SnapshotCommand::Create { parent } => {
            let config_bytes = std::fs::read(&args.config.config)
                .with_context(|| format!("cannot read {}", args.config.config.display()))?;
            let (store, _) = dataset.open_store(false)?;
            let items = items(&config, &store)?;
            let policy = policy(&config);
            let parent = parent.map(|p| snapshot::open(&dir, &p)).transpose()?;
            let parent_rows = parent.as_ref().map(Snapshot::rows).transpose()?;
            let assignment = assign(&items, &policy, parent_rows.as_deref());
            let config_hash = blake3::hash(&config_bytes).to_hex().to_string();
            let snap = snapshot::create(
                &dir,
                &assignment,
                &policy,
                parent.map(|p| p.id()),
                &config_hash,
            )?;
            store.close().context("cannot close the store")?;
            for s in &snap.meta.shortfalls {
                tracing::warn!(class = %s.class, wanted = s.wanted, got = s.got, "test holdout could not be filled exactly");
            }
            let (relabelled, excluded) = reviewed(&items);
            let mut summary = render_counts(&snap);
            if relabelled + excluded > 0 {
                summary += &format!(
                    "label reviews: {} relabelled, {} excluded\n",
                    thousands(relabelled),
                    thousands(excluded)
                );
            }
            crate::eprint_quiet!("{}", summary);
            format!("{}\n", snap.id())
        }
        SnapshotCommand::List => {
            let mut rows = vec![
                ["id", "parent", "images", "train", "val", "test", "eval"]
                    .map(String::from)
                    .to_vec(),
            ];
            for s in snapshot::list(&dir)? {
                let n = |split| thousands(s.meta.counts.by_split.get(&split).copied().unwrap_or(0));
                rows.push(vec![
                    s.id().to_string(),
                    s.meta
                        .parent
                        .map(|p| p.to_string()[..12].to_string())
                        .unwrap_or_else(|| "-".into()),
                    thousands(s.meta.counts.total),
                    n(Split::Train),
                    n(Split::Val),
                    n(Split::Test),
                    n(Split::Eval),
                ]);
            }
            layout(&rows, &[false, false, true, true, true, true, true])
        }
        SnapshotCommand::Show { id, format } => {
            let snap = snapshot::open(&dir, &id)?;
            match format {
                OutputFormat::Table => render_counts(&snap),
                OutputFormat::Json => serde_json::to_string_pretty(&snap.meta)? + "\n",
            }
        }
        SnapshotCommand::Diff { a, b } => {
            let (a, b) = (snapshot::open(&dir, &a)?, snapshot::open(&dir, &b)?);
            let mut text = String::new();
            for c in snapshot::diff(&a, &b)? {
                text += &serde_json::to_string(&c)?;
                text.push('\n');
            }
            text
        }
        SnapshotCommand::Verify { id } => {
            let snap = snapshot::open(&dir, &id)?;
            let (store, _) = dataset.open_store(false)?;
            let report = snap.verify(|id| store.object_path(id))?;
            let mut text = format!(
                "snapshot {}: manifest {}, {} objects, {} bytes, {} missing, {} corrupt\n",
                snap.id(),
                if report.manifest_ok {
                    "intact"
                } else {
                    "CHANGED"
                },
                thousands(report.objects),
                thousands(report.bytes),
                report.missing.len(),
                report.corrupt.len()
            );
            for id in &report.missing {
                text += &format!("missing {id}\n");
            }
            for id in &report.corrupt {
                text += &format!("corrupt {id}\n");
            }
            if !report.is_clean() {
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(stdout_error)?;
                bail!("snapshot {} is not intact", snap.id());
            }
            text
        }
        SnapshotCommand::Export {
            id,
            format,
            out: dest,
            per_shard,
        } => {
            let snap = snapshot::open(&dir, &id)?;
            let (store, _) = dataset.open_store(false)?;
            let format = match format {
                ExportFormat::Imagefolder => Format::ImageFolder,
                ExportFormat::Webdataset => Format::WebDataset { per_shard },
            };
            let summary = export(&snap, format, &dest, |id| store.object_path(id))?;
            format!(
                "exported snapshot {} to {}: {} images, {} bytes, {} files\n",
                snap.id(),
                dest.display(),
                thousands(summary.images),
                thousands(summary.bytes),
                thousands(summary.files)
            )
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Images per class and split, then per group and split.
fn render_counts(snap: &Snapshot) -> String {
    let m = &snap.meta;
    let mut t = format!(
        "snapshot {}{}\n\n",
        m.id,
        m.parent
            .map(|p| format!(" (parent {p})"))
            .unwrap_or_default()
    );
    let splits = Split::ALL;
    let header: Vec<String> = ["", "train", "val", "test", "eval", "total"]
        .map(String::from)
        .to_vec();
    let row = |name: &str, per: &BTreeMap<Split, u64>| {
        let mut r = vec![name.to_string()];
        r.extend(
            splits
                .iter()
                .map(|s| thousands(per.get(s).copied().unwrap_or(0))),
        );
        r.push(thousands(per.values().sum()));
        r
    };
    let right = [false, true, true, true, true, true];
    let mut rows = vec![header.clone()];
    rows[0][0] = "class".into();
    rows.extend(m.counts.by_class.iter().map(|(c, per)| row(c, per)));
    rows.push(row("all", &m.counts.by_split));
    t += &layout(&rows, &right);
    let mut rows = vec![header];
    rows[0][0] = "group".into();
    rows.extend(m.counts.by_group.iter().map(|(g, per)| row(g, per)));
    t += "\n";
    t += &layout(&rows, &right);
    if !m.excluded.is_empty() {
        t += "\nkept out: ";
        t += &m
            .excluded
            .iter()
            .map(|(r, n)| format!("{r} {}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        t += "\n";
    }
    for s in &m.shortfalls {
        t += &format!(
            "shortfall: {} test holdout has {} of {} images\n",
            s.class, s.got, s.wanted
        );
    }
    t
}
