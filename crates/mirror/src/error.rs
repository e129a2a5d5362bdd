use std::path::PathBuf;

/// What can go wrong in the mirror. Per-request problems are HTTP responses, not errors; these
/// are the failures of setting the mirror up or writing its output.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot read world file {path}")]
    ReadWorld {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid world file {path}: {message}")]
    ParseWorld { path: PathBuf, message: String },
    #[error("invalid world settings: {0}")]
    InvalidWorld(String),
    #[error("cannot read corpus folder {path}")]
    ReadCorpus {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corpus folder {path} has no sub-folder with images (one sub-folder per group)")]
    EmptyCorpus { path: PathBuf },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    #[error("{path} is not a decodable image: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("no images found in {paths}")]
    NoImages { paths: String },
}

pub type Result<T, E = MirrorError> = std::result::Result<T, E>;
