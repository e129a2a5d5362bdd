use std::path::PathBuf;

use lennonnet_core::ContentId;

/// A store operation failed. Per-image problems (a corrupt download, a too-small picture) are
/// not errors: they are [`crate::IngestOutcome`]s with a [`crate::RejectReason`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store at {path} is in use by another process (its lock file is held)")]
    Locked { path: PathBuf },
    #[error(
        "the store at {path} has layout version {found}; this build knows version {expected} and older"
    )]
    LayoutVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "{path}:{line}: unreadable journal record: {message} (`lennonnet store repair` moves the line aside into journal-quarantine/ with a report)"
    )]
    JournalCorrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{path}:{line}: journal record `{kind}` has version {found}; this build reads version {expected} (a newer lennonnet wrote it)"
    )]
    RecordVersion {
        path: PathBuf,
        line: u64,
        kind: String,
        found: u32,
        expected: u32,
    },
    #[error(
        "the journal folder {path} is missing (or holds no segment) while {objects} objects remain: \
the journal is the source of truth, so the store is not opened. Restore journal/ from a backup, \
or run `lennonnet store repair` to re-adopt the objects (their provenance is lost)"
    )]
    JournalMissing { path: PathBuf, objects: u64 },
    #[error("there is no store at {path}")]
    NoStore { path: PathBuf },
    #[error("the store is open read-only: nothing can be written")]
    ReadOnly,
    #[error("the journal stopped accepting records after a failed write: {message}")]
    JournalPoisoned { message: String },
    #[error("the journal writer has shut down")]
    JournalClosed,
    #[error("index at {path}")]
    Index {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("index entry for {key} is unreadable: {message}")]
    IndexCorrupt { key: String, message: String },
    #[error("no image {id} in the store")]
    UnknownId { id: ContentId },
    #[error("{prefix:?} matches no content id in the store")]
    NoSuchPrefix { prefix: String },
    #[error("{prefix:?} matches {count} content ids; give more digits")]
    AmbiguousPrefix { prefix: String, count: usize },
    #[error(
        "{prefix:?} is not a content id or a prefix of one: give 4 to 64 lowercase hex digits (0-9, a-f)"
    )]
    BadPrefix { prefix: String },
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
