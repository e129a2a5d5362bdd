//! `lennonnet weights import|fetch`: PyTorch checkpoints to safetensors, hub downloads.

use std::io::Write;

use anyhow::Context;
use lennonnet_models::Arch;
use lennonnet_models::weights::{self, HubOptions, WeightsSource};

use super::stdout_error;
use crate::cli::{WeightsArgs, WeightsCommand, WeightsFetchArgs, WeightsImportArgs};
use crate::table::thousands;

pub fn run(args: WeightsArgs) -> anyhow::Result<()> {
    match args.command {
        WeightsCommand::Import(a) => import(a),
        WeightsCommand::Fetch(a) => fetch(a),
    }
}

fn import(a: WeightsImportArgs) -> anyhow::Result<()> {
    let arch = a.arch.as_deref().map(Arch::from_name).transpose()?;
    let report = weights::import(&a.input, &a.out, arch, a.key.as_deref())
        .with_context(|| format!("cannot import {}", a.input.display()))?;
    tracing::info!(out = %a.out.display(), tensors = report.tensors, "weights imported");
    let mut lines = vec![
        (
            "source",
            format!("{} ({})", a.input.display(), report.format.name()),
        ),
        ("mapping", report.mapping.name().to_string()),
        (
            "tensors",
            format!(
                "{} ({} num_batches_tracked dropped)",
                report.tensors, report.dropped
            ),
        ),
        ("parameters", thousands(report.params as u64)),
    ];
    if let (Some(arch), Some(classes)) = (arch, report.num_classes) {
        lines.push((
            "checked",
            format!("{arch}, {classes} classes: every tensor and shape"),
        ));
    }
    lines.push(("wrote", a.out.display().to_string()));
    lines.push(("blake3", report.blake3.clone()));
    let mut out = std::io::stdout().lock();
    for (k, v) in lines {
        writeln!(out, "{k:<10} {v}").map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

fn fetch(a: WeightsFetchArgs) -> anyhow::Result<()> {
    let source = WeightsSource::parse(&a.spec)?;
    if matches!(source, WeightsSource::File(_)) {
        anyhow::bail!(
            "`{}` is not a hub spec: expected hub:ORG/REPO[/FILE]",
            a.spec
        );
    }
    let path = source.resolve(&HubOptions::default())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", path.display())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}
