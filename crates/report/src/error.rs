use std::path::PathBuf;

use thiserror::Error;

/// Why a report could not be written. Each variant names the file it concerns.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{} is not a run folder: it has no run.json", .dir.display())]
    NotARun { dir: PathBuf },
    #[error(
        "{} has not finished training: run.json has no result (resume it with `lennonnet train --resume`)",
        .run.display()
    )]
    Unfinished { run: PathBuf },
    #[error(
        "{run} has no evaluation: {missing} is missing; run `lennonnet eval --run {run}` first",
        run = .run.display(),
        missing = .missing.display()
    )]
    NoEval { run: PathBuf, missing: PathBuf },
    #[error(transparent)]
    Run(Box<lennonnet_records::RecordError>),
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot draw {plot}: {message}")]
    Plot { plot: String, message: String },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;
