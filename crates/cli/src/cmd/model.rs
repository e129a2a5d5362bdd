//! `lennonnet model list|info`: the model zoo's architectures, tensors and parameter counts.

use std::io::{BufWriter, Write};

use anyhow::Context;
use lennonnet_models::candle_core::Device;
use lennonnet_models::params::Kind;
use lennonnet_models::{Arch, Classifier, HeadPolicy, HubOptions, ModelOptions, WeightsSource};

use super::stdout_error;
use crate::cli::{ModelArgs, ModelCommand, ModelInfoArgs, ModelListArgs};
use crate::table::thousands;

pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::List(a) => list(a),
        ModelCommand::Info(a) => info(a),
    }
}

fn build(arch: Arch, classes: usize) -> anyhow::Result<Classifier> {
    let opts = ModelOptions {
        num_classes: classes,
        ..Default::default()
    };
    Classifier::new(arch, &opts, &Device::Cpu).with_context(|| format!("cannot build {arch}"))
}

fn list(a: ModelListArgs) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let rows: Vec<(Arch, usize)> = Arch::ALL
        .iter()
        .map(|&arch| Ok((arch, build(arch, 1000)?.num_params())))
        .collect::<anyhow::Result<_>>()?;
    let width = Arch::ALL.iter().map(|a| a.name().len()).max().unwrap_or(0);
    for (arch, params) in rows {
        if a.json {
            let row = serde_json::json!({
                "name": arch.name(),
                "params": params,
                "description": arch.description(),
                "hub": format!("hub:{}", arch.hub_repo()),
            });
            writeln!(out, "{row}")
        } else {
            writeln!(
                out,
                "{:<width$}  {:>10}  {}",
                arch.name(),
                thousands(params as u64),
                arch.description()
            )
        }
        .map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

fn info(a: ModelInfoArgs) -> anyhow::Result<()> {
    let arch = Arch::from_name(&a.name)?;
    let model = build(arch, a.classes)?;
    let loaded = match &a.weights {
        None => None,
        Some(spec) => {
            let source = WeightsSource::parse(spec)?;
            let path = source.resolve(&HubOptions::default())?;
            let report = model
                .load_weights(&path, HeadPolicy::Require)
                .with_context(|| {
                    format!(
                        "weights {source} do not fit {arch} with {} classes",
                        a.classes
                    )
                })?;
            Some((source, report))
        }
    };
    let params = model.param_info();
    let n_params = model.num_params();
    let buffers = params.iter().filter(|p| p.kind == Kind::Buffer).count();
    let cfg = arch.pretrained_cfg();
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.json {
        let mut v = serde_json::json!({
            "name": arch.name(),
            "description": arch.description(),
            "params": n_params,
            "tensors": params.len(),
            "buffers": buffers,
            "features": model.num_features(),
            "classes": model.num_classes(),
            "head": arch.head_prefix(),
            "pretrained_cfg": cfg,
            "hub": format!("hub:{}", arch.hub_repo()),
        });
        if let Some((source, report)) = &loaded {
            v["weights"] = serde_json::json!({
                "source": source.to_string(),
                "loaded": report.loaded,
                "format": report.format.map(|f| f.name()),
                "mapping": report.mapping.name(),
            });
        }
        if a.params {
            v["tensors_list"] = params
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.name,
                        "shape": p.shape,
                        "kind": p.kind.as_str(),
                        "count": p.shape.iter().product::<usize>(),
                    })
                })
                .collect();
        }
        writeln!(out, "{v}").map_err(stdout_error)?;
        return out.flush().map_err(stdout_error);
    }
    let mut lines = vec![
        ("model", arch.name().to_string()),
        ("description", arch.description().to_string()),
        ("parameters", thousands(n_params as u64)),
        (
            "tensors",
            format!(
                "{} ({} parameters, {buffers} batch-norm buffers)",
                params.len(),
                params.len() - buffers
            ),
        ),
        ("features", model.num_features().to_string()),
        (
            "head",
            format!("{} ({} classes)", arch.head_prefix(), model.num_classes()),
        ),
        (
            "input",
            format!(
                "{} px, resize {} then centre crop, {}, mean {:?}, std {:?}",
                cfg.input_size,
                (cfg.input_size as f64 / cfg.crop_pct).floor(),
                cfg.interpolation,
                cfg.mean,
                cfg.std
            ),
        ),
        ("hub weights", format!("hub:{}", arch.hub_repo())),
    ];
    if let Some((source, report)) = &loaded {
        lines.push((
            "weights",
            format!(
                "{source}: {} tensors loaded ({}, names {})",
                report.loaded,
                report.format.map_or("?", |f| f.name()),
                report.mapping.name()
            ),
        ));
    }
    for (k, v) in lines {
        writeln!(out, "{k:<12} {v}").map_err(stdout_error)?;
    }
    if a.params {
        writeln!(out).map_err(stdout_error)?;
        let shapes: Vec<String> = params.iter().map(|p| format!("{:?}", p.shape)).collect();
        let wn = params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        let ws = shapes.iter().map(String::len).max().unwrap_or(0);
        for (p, shape) in params.iter().zip(&shapes) {
            let count: usize = p.shape.iter().product();
            writeln!(
                out,
                "{:<wn$}  {:<ws$}  {:<6}  {:>10}",
                p.name,
                shape,
                p.kind.as_str(),
                thousands(count as u64)
            )
            .map_err(stdout_error)?;
        }
        writeln!(
            out,
            "{} tensors, {} parameters",
            params.len(),
            thousands(n_params as u64)
        )
        .map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}
