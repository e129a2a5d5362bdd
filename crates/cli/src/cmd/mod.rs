use std::path::Path;

use crate::cli::{Cli, Command};

mod curate;
mod engines;
mod eval;
mod failures;
mod mirror;
mod model;
mod plan;
mod predict;
mod report;
mod review;
mod scrape;
mod search;
mod sheet;
mod snapshot;
mod store;
mod train;
mod weights;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Scrape(args) => scrape::run(args, quiet),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Train(args) => train::run(args, quiet),
        Command::Report(args) => report::run(args),
        Command::Eval(args) => eval::run(args, quiet),
        Command::Predict(args) => predict::run(args),
        Command::Review(args) => review::run(args),
        Command::Search(args) => search::run(args),
        Command::Engines(args) => engines::run(args),
        Command::Store(args) => store::run(args),
        Command::Curate(args) => curate::run(args),
        Command::Mirror(args) => mirror::run(args),
        Command::Sheet(args) => sheet::run(args),
        Command::Model(args) => model::run(args),
        Command::Weights(args) => weights::run(args),
    }
}

/// Loads and validates a config file. Its errors keep their [`lennonnet_config::ConfigError`]
/// type so that `main` can give them the usage exit code.
pub fn load_config(path: &Path) -> anyhow::Result<lennonnet_config::Config> {
    let config = lennonnet_config::load(path)?;
    tracing::debug!(path = %path.display(), groups = config.groups.len(), "config loaded");
    Ok(config)
}

/// [`load_config`] for commands that send requests to the engines: also checks what the real
/// engines require of a client (a real contact in the User-Agent Wikimedia Commons gets).
pub fn load_config_for_requests(path: &Path) -> anyhow::Result<lennonnet_config::Config> {
    let config = lennonnet_config::load_for_requests(path)?;
    tracing::debug!(path = %path.display(), groups = config.groups.len(), "config loaded");
    Ok(config)
}

/// Writes to stdout with a context that names it, so a closed pipe is recognised.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("cannot write to stdout")
}

/// Bad usage found after parsing (a bad `--label`, `--group` or `--purpose` value): exit code 2,
/// as for the argument parser's own errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a [`UsageError`] from the current function.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cmd::UsageError(format!($($arg)*))))
    };
}
