use std::path::PathBuf;

/// Everything that can go wrong in this crate. Variants carry the path, name or spec they concern.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape mismatch, unsupported op on a device, ...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel { name: String, known: String },

    #[error("unknown device `{spec}`: expected `cpu`, `cuda` or `cuda:N`")]
    UnknownDevice { spec: String },

    #[error(
        "device `{spec}` asked for, but this binary was built without CUDA support; rebuild with \
         `--features cuda` (needs the CUDA toolkit and nvcc), or use `--device cpu`"
    )]
    CudaNotCompiled { spec: String },

    #[error("bf16 is only supported on a cuda device")]
    Bf16NeedsCuda,

    #[error(
        "input must be [batch, 3, height, width] with height and width of 32 or more, got {shape:?}"
    )]
    BadInput { shape: Vec<usize> },

    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a PyTorch checkpoint: {reason}")]
    NotACheckpoint { path: PathBuf, reason: String },

    #[error("{path}: malformed pickle at byte {offset}: {reason}")]
    Pickle {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    #[error("{path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },

    #[error("{path}: the model's {missing} tensor(s) are missing from the weights, first: {first}")]
    MissingWeights {
        path: PathBuf,
        missing: usize,
        first: String,
    },

    #[error("{path}: {unexpected} tensor(s) the model does not have, first: {first}")]
    UnexpectedWeights {
        path: PathBuf,
        unexpected: usize,
        first: String,
    },

    #[error("cannot cache activations inside {arch}: {reason}")]
    NoBoundary { arch: &'static str, reason: String },

    #[error(
        "{} is not a run folder: {reason} (`lennonnet train` writes run folders under runs/)",
        dir.display()
    )]
    NotARun { dir: PathBuf, reason: String },

    /// A run folder's record could not be read.
    #[error(transparent)]
    Record(#[from] lennonnet_records::RecordError),

    #[error("bad weights spec `{spec}`: {reason}")]
    BadWeightsSpec { spec: String, reason: String },

    #[error(
        "cannot download `{file}` of `{repo}` from the Hugging Face hub (offline, or the hub is \
         unreachable?); download it elsewhere and pass its path instead"
    )]
    Hub {
        repo: String,
        file: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
