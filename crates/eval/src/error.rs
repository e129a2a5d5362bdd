use std::path::PathBuf;

/// An evaluation failed (a single unreadable image is not an error: it is listed as failed).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot load the run in {dir}")]
    Run {
        dir: PathBuf,
        source: Box<lennonnet_models::Error>,
    },
    #[error("the model failed: {0}")]
    Model(String),
    #[error("cannot read snapshot: {0}")]
    Snapshot(#[from] lennonnet_split::snapshot::SnapshotError),
    /// A file of the run (dynamics.jsonl) could not be read.
    #[error(transparent)]
    Record(#[from] lennonnet_records::RecordError),
    #[error("run {run}: label `{label}` of image {id} is not one of the run's classes ({classes})")]
    UnknownLabel {
        run: String,
        id: String,
        label: String,
        classes: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("cannot write thumbnail {path}: {message}")]
    Thumbnail { path: PathBuf, message: String },
}

impl EvalError {
    pub fn model(e: impl std::fmt::Display) -> Self {
        EvalError::Model(e.to_string())
    }

    pub fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| EvalError::Io { what, path, source }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;
