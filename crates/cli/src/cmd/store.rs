//! `lennonnet store add|stats|verify|gc|reindex`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lennonnet_core::{Group, Label, NoProgress, Purpose};
use lennonnet_dataset::Dataset;
use lennonnet_store::{Ingested, Provenance};
use rayon::prelude::*;

use super::{load_config, stdout_error};
use crate::cli::{StoreAddArgs, StoreArgs, StoreCommand};

pub fn run(args: StoreArgs) -> anyhow::Result<()> {
    match args.command {
        StoreCommand::Add(a) => add(a),
        StoreCommand::Failures(a) => super::failures::run(a),
        StoreCommand::Stats(a) => {
            let (store, _) =
                Dataset::of_config(&load_config(&a.config.config)?).open_store_read_only()?;
            let stats = store.stats()?;
            let mut out = BufWriter::new(std::io::stdout().lock());
            if a.json {
                serde_json::to_writer_pretty(&mut out, &stats)?;
                writeln!(out).map_err(stdout_error)?;
            } else {
                out.write_all(render_stats(&stats).as_bytes())
                    .map_err(stdout_error)?;
            }
            out.flush().map_err(stdout_error)?;
            store.close()?;
            Ok(())
        }
        StoreCommand::Verify(a) => {
            let (store, _) =
                Dataset::of_config(&load_config(&a.config.config)?).open_store_read_only()?;
            let report = store.verify(&NoProgress)?;
            let mut out = BufWriter::new(std::io::stdout().lock());
            if a.json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out).map_err(stdout_error)?;
            } else {
                out.write_all(render_verify(&report).as_bytes())
                    .map_err(stdout_error)?;
            }
            out.flush().map_err(stdout_error)?;
            store.close()?;
            if report.is_damaged() {
                bail!(
                    "the store is damaged: {} corrupt, {} missing, {} unreadable objects (`lennonnet store repair` fetches lost bytes again where a provenance URL or a given file still has them)",
                    report.corrupt.len(),
                    report.missing.len(),
                    report.unreadable.len()
                );
            }
            Ok(())
        }
        StoreCommand::Gc(a) => {
            let (store, _) =
                Dataset::of_config(&load_config(&a.config.config)?).open_store(false)?;
            let report = store.gc(a.yes, a.force)?;
            let mut out = BufWriter::new(std::io::stdout().lock());
            let verb = if report.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for p in &report.orphans {
                writeln!(out, "{verb} orphan {}", p.display()).map_err(stdout_error)?;
            }
            for p in &report.strays {
                writeln!(out, "{verb} stray {}", p.display()).map_err(stdout_error)?;
            }
            writeln!(
                out,
                "{verb} {} orphan objects and {} stray files, {} bytes{}",
                report.orphans.len(),
                report.strays.len(),
                report.bytes,
                if a.yes {
                    ""
                } else {
                    " (dry run: add --yes to delete)"
                }
            )
            .map_err(stdout_error)?;
            out.flush().map_err(stdout_error)?;
            store.close()?;
            if let Some(why) = report.refused {
                bail!("nothing deleted: {why}");
            }
            Ok(())
        }
        StoreCommand::Repair(a) => repair(a),
        StoreCommand::Reindex(a) => {
            let (store, report) =
                Dataset::of_config(&load_config(&a.config.config)?).open_store(true)?;
            let stats = store.stats()?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "rebuilt the index of {} from {} journal records in {:.2} s: {} images, {} rejected, {} provenance records, {} accepted images without an object file",
                store.root().display(),
                report.records_replayed,
                report.millis as f64 / 1e3,
                stats.images,
                stats.rejected,
                stats.provenance_records,
                report.missing_objects
            )
            .map_err(stdout_error)?;
            store.close()?;
            Ok(())
        }
    }
}

fn repair(a: crate::cli::StoreRepairArgs) -> anyhow::Result<()> {
    let config = load_config(&a.config.config)?;
    let dataset = Dataset::of_config(&config);
    // The downloader is set up only if a URL has to be fetched.
    let fetcher: std::cell::OnceCell<Option<(tokio::runtime::Runtime, lennonnet_fetch::Fetcher)>> =
        std::cell::OnceCell::new();
    let fetch = |url: &str| -> Option<Vec<u8>> {
        if a.no_fetch || !(url.starts_with("http://") || url.starts_with("https://")) {
            return None;
        }
        let f = fetcher.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let f = lennonnet_fetch::Fetcher::new(&config.fetch, &config.http).ok()?;
            Some((rt, f))
        });
        let (rt, f) = f.as_ref()?;
        let outcome = rt.block_on(f.fetch(url));
        match outcome.result {
            Ok(fetched) => Some(fetched.body.to_vec()),
            Err(e) => {
                tracing::info!(%url, reason = e.reason().as_str(), "cannot fetch a lost object's bytes");
                None
            }
        }
    };
    let report = lennonnet_store::repair(
        dataset.root(),
        lennonnet_dataset::rules(&config),
        &a.files,
        &fetch,
    )
    .with_context(|| format!("cannot repair the store at {}", dataset.root().display()))?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out).map_err(stdout_error)?;
    } else {
        let mut t = String::new();
        for q in &report.quarantined {
            t += &format!(
                "quarantined {}:{} ({}): saved as {}\n",
                q.segment.display(),
                q.line,
                q.error,
                q.saved_as.display()
            );
        }
        for id in &report.adopted {
            t += &format!("adopted {id} (recovered; provenance unknown)\n");
        }
        for (p, why) in &report.not_adopted {
            t += &format!(
                "not_adopted {} ({why}; `store gc --yes --force` deletes it)\n",
                p.display()
            );
        }
        for (id, from) in &report.restored {
            t += &format!("restored {id} from {from}\n");
        }
        for (id, tried) in &report.unrestored {
            t += &format!(
                "unrestored {id} (tried: {})\n",
                if tried.is_empty() {
                    "no source".to_string()
                } else {
                    tried.join(", ")
                }
            );
        }
        t += &format!(
            "repair: {} journal lines quarantined, {} objects re-adopted ({} not), {} restored, {} left without a source\n",
            report.quarantined.len(),
            report.adopted.len(),
            report.not_adopted.len(),
            report.restored.len(),
            report.unrestored.len()
        );
        out.write_all(t.as_bytes()).map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    if report.incomplete() {
        bail!(
            "{} corrupt or missing objects have no source left: give their files with --file",
            report.unrestored.len()
        );
    }
    Ok(())
}

fn add(a: StoreAddArgs) -> anyhow::Result<()> {
    let config = load_config(&a.config.config)?;
    let group = match Group::new(a.group.clone()) {
        Ok(g) => g,
        Err(e) => crate::usage!("bad --group {:?}: {e}", a.group),
    };
    let label = match Label::new(a.label.clone()) {
        Ok(l) => l,
        Err(e) => crate::usage!("bad --label {:?}: {e}", a.label),
    };
    if !config.classes.iter().any(|c| c.name == label) {
        let classes: Vec<String> = config.classes.iter().map(|c| c.name.to_string()).collect();
        crate::usage!(
            "--label {label} is not a class of the config (classes: {})",
            classes.join(", ")
        );
    }
    let declared = lennonnet_plan::plan(&config)
        .into_iter()
        .find(|q| q.group == group)
        .map(|q| (q.label, q.purpose));
    if let Some((l, _)) = &declared {
        if *l != label {
            crate::usage!("group {group} has label {l} in the config, not {label}");
        }
    }
    let purpose = match a.purpose.as_deref() {
        Some("train") => Purpose::Train,
        Some("eval") => Purpose::Eval,
        Some(other) => crate::usage!("--purpose must be `train` or `eval`, not {other:?}"),
        None => declared.map_or(Purpose::Train, |(_, p)| p),
    };
    let mut files = Vec::new();
    for p in &a.paths {
        collect(p, &mut files)?;
    }
    files.sort();
    files.dedup();
    let max_bytes = config.fetch.max_bytes;
    let (store, _) = Dataset::of_config(&config).open_store(false)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs.max(1))
        .build()
        .context("cannot start the ingest threads")?;
    tracing::info!(files = files.len(), %group, %label, "adding local files");
    let results: Vec<anyhow::Result<serde_json::Value>> = pool.install(|| {
        files
            .par_iter()
            .map(|path| {
                let shown = lennonnet_store::record::path_text(path);
                let bytes = match read_capped(path, max_bytes)
                    .with_context(|| format!("cannot read {}", path.display()))?
                {
                    Ok(bytes) => bytes,
                    Err(len) => {
                        tracing::warn!(path = %shown, bytes = len, max_bytes, "file skipped: larger than fetch.max_bytes");
                        return Ok(serde_json::json!({
                            "path": shown, "status": "skipped", "reason": "too_large",
                            "detail": format!("{len} bytes or more: larger than fetch.max_bytes = {max_bytes}"),
                        }));
                    }
                };
                let prov = Provenance::local(path, group.clone(), label.clone(), purpose);
                let o = store.ingest(&bytes, prov)?;
                Ok(match &o.result {
                    Ingested::Accepted { new, .. } => serde_json::json!({
                        "path": shown, "id": o.id, "status": "accepted", "new": new,
                    }),
                    Ingested::Rejected { reason, detail } => serde_json::json!({
                        "path": shown, "id": o.id, "status": "rejected", "reason": reason, "detail": detail,
                    }),
                })
            })
            .collect()
    });
    let mut out = BufWriter::new(std::io::stdout().lock());
    let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
    let mut first_err = None;
    for r in results {
        match r {
            Ok(v) => {
                match v["status"].as_str() {
                    Some("accepted") => accepted += 1,
                    Some("rejected") => rejected += 1,
                    _ => skipped += 1,
                }
                serde_json::to_writer(&mut out, &v)?;
                writeln!(out).map_err(stdout_error)?;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "a file could not be added");
                first_err.get_or_insert(e);
            }
        }
    }
    out.flush().map_err(stdout_error)?;
    store.close()?;
    tracing::info!(accepted, rejected, skipped, "done");
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The bytes of the file at `path`, or `Err(len)` when it holds more than `max` bytes (the
/// download cap applies to local files too, so a huge file never fills memory). Reads at most
/// `max + 1` bytes whatever the file claims.
fn read_capped(path: &Path, max: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        return Ok(Err(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// Regular files under `p` (or `p` itself), following no symlinked folders.
fn collect(p: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let abs = std::path::absolute(p).with_context(|| format!("bad path {}", p.display()))?;
    let meta = std::fs::metadata(&abs).with_context(|| format!("cannot read {}", p.display()))?;
    if meta.is_file() {
        out.push(abs);
        return Ok(());
    }
    if !meta.is_dir() {
        bail!(
            "{} is neither a regular file nor a folder (a FIFO, socket or device is not read)",
            p.display()
        );
    }
    let mut stack = vec![abs];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() || (ft.is_symlink() && entry.path().is_file()) {
                out.push(entry.path());
            }
        }
    }
    Ok(())
}

fn render_stats(s: &lennonnet_store::Stats) -> String {
    let mut t = format!(
        "{} images ({:.1} MB), {} rejected, {} provenance records\n",
        s.images,
        s.bytes as f64 / 1e6,
        s.rejected,
        s.provenance_records
    );
    if s.no_provenance > 0 {
        t += &format!(
            "{} of the images have no provenance (under no group or label; an interrupted scrape or `store add`: rerun it)\n",
            s.no_provenance
        );
    }
    let section = |t: &mut String, title: &str, rows: Vec<(String, String)>| {
        if rows.is_empty() {
            return;
        }
        *t += &format!("\n{title}\n");
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (k, v) in rows {
            *t += &format!("  {k:<w$}  {v}\n");
        }
    };
    let plain = |m: &std::collections::BTreeMap<String, u64>| -> Vec<(String, String)> {
        m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
    };
    let counts =
        |m: &std::collections::BTreeMap<String, lennonnet_store::Counts>| -> Vec<(String, String)> {
            m.iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        format!("{:>7} accepted {:>7} rejected", c.accepted, c.rejected),
                    )
                })
                .collect()
        };
    section(&mut t, "by format", plain(&s.by_format));
    section(&mut t, "rejected by reason", plain(&s.rejected_by_reason));
    section(&mut t, "by label", counts(&s.by_label));
    section(&mut t, "by group", counts(&s.by_group));
    section(
        &mut t,
        "fetch outcomes (last per URL)",
        plain(&s.fetch_by_outcome),
    );
    section(&mut t, "curation", plain(&s.by_curation));
    t
}

/// `store verify`'s report: one line per finding with the repair that fits it, then a summary.
fn render_verify(r: &lennonnet_store::VerifyReport) -> String {
    let mut t = String::new();
    for (id, actual) in &r.corrupt {
        t += &format!(
            "corrupt {id} (its bytes hash to {actual}); repair: `lennonnet store repair` fetches the bytes again from its provenance URLs, or `lennonnet store repair --file PATH` takes them from a file\n"
        );
    }
    for id in &r.missing {
        t += &format!(
            "missing {id}; repair: `lennonnet store repair` fetches the bytes again from its provenance URLs, or `lennonnet store repair --file PATH` takes them from a file\n"
        );
    }
    for (p, e) in &r.unreadable {
        t += &format!(
            "unreadable {}: {e}; repair: make it readable (permissions, disk), then verify again\n",
            p.display()
        );
    }
    for p in &r.orphans {
        t += &format!(
            "orphan {} (an object the journal does not account for: an interrupted write, or lost journal records); repair: rerun the interrupted scrape or `store add`, or `lennonnet store repair` to re-adopt it without provenance\n",
            p.display()
        );
    }
    for p in &r.strays {
        t += &format!(
            "stray {} (not an object); repair: `lennonnet store gc --yes` removes it\n",
            p.display()
        );
    }
    for id in &r.no_provenance {
        t += &format!(
            "no_provenance {id} (stored, but no record says where it came from, so curation leaves it out); repair: rerun the interrupted scrape or `store add`\n"
        );
    }
    t += &format!(
        "verified {} objects, {:.1} MB in {:.2} s ({:.0} MB/s): {} corrupt, {} missing, {} unreadable, {} orphans, {} strays, {} without provenance\n",
        r.objects,
        r.bytes as f64 / 1e6,
        r.millis as f64 / 1e3,
        r.mb_per_sec(),
        r.corrupt.len(),
        r.missing.len(),
        r.unreadable.len(),
        r.orphans.len(),
        r.strays.len(),
        r.no_provenance.len()
    );
    t
}
