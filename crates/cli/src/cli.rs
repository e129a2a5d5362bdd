use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Lennonnet turns image search results into a clean, reproducible training set and a trained
/// classifier.
///
/// Data goes to stdout, logs to stderr. Exit codes: 0 success, 1 the command failed,
/// 2 bad usage or an invalid config.
#[derive(Debug, Parser)]
#[command(
    name = "lennonnet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the queries a config asks for, one JSON object per line.
    ///
    /// Each row is one search text on one engine for one group: id, text, group, label, engine,
    /// wanted (the group's wanted image count), purpose (train or eval) and tier (0 for the first
    /// engines, 1.. for fallbacks). The output is byte-identical between runs and machines.
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file.
    #[arg(
        long,
        short = 'c',
        default_value = "config/lennonnet.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `jsonl`: one query per line (data). `table`: wanted images per class, purpose and group.
    #[arg(long, value_enum, default_value_t = PlanFormat::Jsonl)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Jsonl,
    Table,
}
