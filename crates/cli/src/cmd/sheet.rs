//! `lennonnet sheet`: a contact sheet of image files or folders, or of a snapshot's images.

use std::io::Write;

use anyhow::{Context, bail};
use lennonnet_mirror::sheet::{SheetItem, SheetOptions};

use super::{load_config, stdout_error};
use crate::cli::SheetArgs;

pub fn run(a: SheetArgs) -> anyhow::Result<()> {
    let opts = SheetOptions {
        columns: a.columns,
        limit: a.limit,
        thumb_px: a.thumb_px,
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let n = match &a.snapshot {
        None => lennonnet_mirror::sheet::write_sheet(&a.paths, &a.out, &opts, threads)?,
        Some(id) => snapshot_sheet(&a, id, &opts, threads)?,
    };
    tracing::info!(images = n, out = %a.out.display(), "contact sheet written");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        serde_json::json!({ "out": a.out.display().to_string(), "images": n })
    )
    .and_then(|()| out.flush())
    .map_err(stdout_error)
}

/// The first `limit` images (content-id order) of a snapshot's group and split.
fn snapshot_sheet(
    a: &SheetArgs,
    id: &str,
    opts: &SheetOptions,
    threads: usize,
) -> anyhow::Result<usize> {
    let config = load_config(&a.config)?;
    let dataset = lennonnet_dataset::Dataset::of_config(&config);
    let snapshot = dataset.snapshot(id).with_context(|| {
        format!(
            "cannot open snapshot `{id}` in {}",
            dataset.snapshots_dir().display()
        )
    })?;
    let rows = snapshot.rows()?;
    let items: Vec<SheetItem> = rows
        .iter()
        .filter(|r| a.group.as_deref().is_none_or(|g| r.group.as_str() == g))
        .filter(|r| a.split.is_none_or(|s| r.split == s))
        .take(a.limit)
        .map(|r| SheetItem {
            path: dataset.object_path(&r.id),
            group: format!("{}/{}", r.group, r.split),
            name: format!("{} {}", &r.id.to_hex()[..12], r.label),
        })
        .collect();
    if items.is_empty() {
        let groups: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.group.as_str()).collect();
        bail!(
            "snapshot {} has no images in group {} and split {} (its groups: {})",
            &snapshot.id().to_string()[..8],
            a.group.as_deref().unwrap_or("(any)"),
            a.split
                .map(|s| s.to_string())
                .unwrap_or_else(|| "(any)".into()),
            groups.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let sheet = lennonnet_mirror::sheet::draw(&items, opts, threads);
    let mut bytes = Vec::new();
    sheet
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .context("cannot encode the contact sheet")?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = a.out.with_extension("png.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out).with_context(|| format!("cannot write {}", a.out.display()))?;
    Ok(items.len())
}
