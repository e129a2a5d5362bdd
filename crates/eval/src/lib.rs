//! Evaluation of a training run (docs/eval.md): what `lennonnet eval` writes to `<run>/eval/`,
//! and the scorer `lennonnet predict` shares with it.
//!
//! [`metrics`] holds the on-disk schema: `metrics.json` ([`metrics::EvalMetrics`]),
//! `predictions.jsonl` ([`metrics::Prediction`]), `suspects.jsonl` ([`metrics::Suspect`]) and
//! `gallery/index.json` ([`metrics::GalleryIndex`]). [`stats`] computes the figures (pure),
//! [`score`] runs the model, [`evaluate`] puts them together and writes the folder, [`table`]
//! renders the stdout summary.

mod error;
pub mod evaluate;
pub mod metrics;
pub mod score;
pub mod stats;
pub mod table;

pub use error::{EvalError, Result};
pub use evaluate::{Annotations, EvalOptions, EvalOutput, evaluate};
pub use score::Scorer;
