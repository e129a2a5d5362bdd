//! `lennonnet curate [--explain ID]`.

use std::io::{BufWriter, Write};

use lennonnet_core::NoProgress;
use lennonnet_curate::{Policy, curate, explain};

use super::{load_config, stdout_error};
use crate::cli::CurateArgs;

pub fn run(args: CurateArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config.config)?;
    let (store, _) = super::store::open(&config, false)?;
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
    } else {
        let policy = Policy::from_config(&config);
        let r = curate(&store, &policy, &NoProgress)?;
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
