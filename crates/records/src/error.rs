use std::path::PathBuf;

/// A record could not be read. Variants name the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

impl RecordError {
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

pub type Result<T, E = RecordError> = std::result::Result<T, E>;
