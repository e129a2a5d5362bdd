//! Errors of the training stage (data, run folder, loop). Model and weight errors keep their own
//! type, [`lennonnet_models::Error`], wrapped here.

use std::path::PathBuf;

/// Everything that can stop a training run. Variants carry the path, option or value they
/// concern. A single image that cannot be decoded is not an error: it is recorded in the pixel
/// cache's index and left out (see [`crate::data::cache`]).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Building or loading the model failed.
    #[error(transparent)]
    Model(#[from] lennonnet_models::Error),

    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A record of the run folder could not be read.
    #[error(transparent)]
    Record(#[from] lennonnet_records::RecordError),

    #[error(transparent)]
    Snapshot(#[from] lennonnet_split::SnapshotError),

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },

    #[error("bad training option `{option}`: {reason}")]
    BadOption {
        option: &'static str,
        reason: String,
    },

    #[error("snapshot {snapshot} has no usable {split} images: training needs both train and val")]
    NoImages {
        snapshot: String,
        split: &'static str,
    },

    #[error(
        "snapshot {snapshot} labels images `{label}`, which is not one of the classes ({known})"
    )]
    UnknownClass {
        snapshot: String,
        label: String,
        known: String,
    },

    #[error(
        "run folder {} already holds a run; pass --resume to continue it, or choose another --run",
        dir.display()
    )]
    RunExists { dir: PathBuf },

    #[error("nothing to resume in {}: {reason}", dir.display())]
    NothingToResume { dir: PathBuf, reason: String },

    #[error(
        "{} is not a run folder: {reason} (`lennonnet train` writes run folders under runs/)",
        dir.display()
    )]
    NotARun { dir: PathBuf, reason: String },

    #[error(
        "cannot resume {}: it was started with {key} = {stored}, now {given}; resume with the \
         options it was started with, or start a new --run",
        dir.display()
    )]
    ResumeMismatch {
        dir: PathBuf,
        key: String,
        stored: String,
        given: String,
    },
}

impl TrainError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

pub type TrainResult<T> = std::result::Result<T, TrainError>;
