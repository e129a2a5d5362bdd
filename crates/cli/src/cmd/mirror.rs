//! `lennonnet mirror serve|generate`: the offline mirror (crate `lennonnet-mirror`).

use std::io::Write;

use anyhow::Context;
use lennonnet_core::EngineKind;

use super::stdout_error;
use crate::cli::{MirrorArgs, MirrorCommand, MirrorGenerateArgs, MirrorServeArgs, WorldArgs};

pub fn run(args: MirrorArgs) -> anyhow::Result<()> {
    match args.command {
        MirrorCommand::Serve(a) => serve(a),
        MirrorCommand::Generate(a) => generate(a),
    }
}

fn world(a: &WorldArgs) -> anyhow::Result<lennonnet_mirror::World> {
    Ok(lennonnet_mirror::load_world(
        a.world.as_deref(),
        a.seed,
        a.corpus.as_deref(),
    )?)
}

fn serve(a: MirrorServeArgs) -> anyhow::Result<()> {
    let world = lennonnet_mirror::load_world_with(
        a.world.world.as_deref(),
        a.world.corpus.as_deref(),
        &lennonnet_mirror::Overrides {
            seed: a.world.seed,
            profile: a.profile,
            changed: a.changed.clone(),
        },
    )?;
    let seed = world.seed();
    let warm_queries = match &a.warm {
        Some(config) => plan_queries(config, false)?,
        None => Vec::new(),
    };
    let options = lennonnet_mirror::Options {
        cache_bytes: a.cache_mib.saturating_mul(1 << 20),
        warm_queries,
        warm_per_query: a.warm_per_query,
        ..Default::default()
    };
    let mut printed = Ok(());
    lennonnet_mirror::serve_until_signal(world, a.addr, &options, |addr| {
        let line = serde_json::json!({
            "addr": addr.to_string(),
            "base_url": format!("http://{addr}"),
            "seed": seed,
        });
        let mut out = std::io::stdout().lock();
        printed = writeln!(out, "{line}").and_then(|()| out.flush());
        tracing::info!(%addr, seed, "mirror listening");
    })?;
    printed.map_err(stdout_error)
}

fn generate(a: MirrorGenerateArgs) -> anyhow::Result<()> {
    let world = world(&a.world)?;
    let queries: Vec<(EngineKind, String)> = match &a.queries {
        Some(path) => {
            let text = lennonnet_config::read_small_file(path, 64 << 20)
                .with_context(|| format!("cannot read queries file {}", path.display()))?;
            parse_queries(&text, a.engine)
                .with_context(|| format!("in queries file {}", path.display()))?
        }
        None => plan_queries(&a.config, a.all_tiers)?,
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    tracing::info!(queries = queries.len(), limit = a.limit_per_query, out = %a.out.display(), "generating");
    let summary = lennonnet_mirror::generate::generate(
        &world,
        &queries,
        a.limit_per_query,
        a.port,
        &a.out,
        threads,
        &lennonnet_core::NoProgress,
    )?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &summary)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// The distinct (engine, text) rows of a config's plan: tier 0 only unless `all_tiers`.
fn plan_queries(
    config: &std::path::Path,
    all_tiers: bool,
) -> anyhow::Result<Vec<(EngineKind, String)>> {
    let config = super::load_config(config)?;
    let mut seen = std::collections::BTreeSet::new();
    Ok(lennonnet_plan::plan(&config)
        .into_iter()
        .filter(|row| all_tiers || row.tier == 0)
        .map(|row| (row.engine, row.text))
        .filter(|q| seen.insert(q.clone()))
        .collect())
}

/// One query per line, `#` comments and blank lines skipped; `engine<TAB>text` names the engine.
fn parse_queries(text: &str, default: EngineKind) -> anyhow::Result<Vec<(EngineKind, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('\t') {
            Some((engine, q)) => {
                let engine = engine
                    .trim()
                    .parse()
                    .with_context(|| format!("line {}", i + 1))?;
                out.push((engine, q.trim().to_string()));
            }
            None => out.push((default, line.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_file_lines() {
        let q = parse_queries(
            "# c\nJohn Lennon\n\nbing\tred car\n",
            EngineKind::DuckDuckGo,
        )
        .unwrap();
        assert_eq!(
            q,
            vec![
                (EngineKind::DuckDuckGo, "John Lennon".to_string()),
                (EngineKind::Bing, "red car".to_string())
            ]
        );
        assert!(parse_queries("google\tx\n", EngineKind::Bing).is_err());
    }
}
