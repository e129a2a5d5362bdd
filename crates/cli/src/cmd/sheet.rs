//! `lennonnet sheet`: a contact sheet of image files or folders.

use std::io::Write;

use super::stdout_error;
use crate::cli::SheetArgs;

pub fn run(a: SheetArgs) -> anyhow::Result<()> {
    let opts = lennonnet_mirror::sheet::SheetOptions {
        columns: a.columns,
        limit: a.limit,
        thumb_px: a.thumb_px,
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let n = lennonnet_mirror::sheet::write_sheet(&a.paths, &a.out, &opts, threads)?;
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
