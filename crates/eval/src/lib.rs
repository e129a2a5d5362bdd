//! Evaluation of a training run (docs/eval.md): what `lennonnet eval` writes to `<run>/eval/`,
//! and the scorer `lennonnet predict` shares with it.
//!
//! The on-disk schema is [`lennonnet_records::eval`]: `metrics.json` (`EvalMetrics`),
//! `predictions.jsonl` (`Prediction`), `suspects.jsonl` (`Suspect`) and `gallery/index.json`
//! (`GalleryIndex`). [`stats`] computes the figures (pure),
//! [`score`] runs the model, [`evaluate`] puts them together and writes the folder, [`table`]
//! renders the stdout summary.

mod error;
use lennonnet_records::eval as metrics;
pub mod evaluate;
pub mod features_file;
pub mod noise;
pub mod score;
pub mod stats;
pub mod suspects;
pub mod table;

pub use error::{EvalError, Result};
pub use evaluate::{Annotations, EvalOptions, EvalOutput, evaluate};
pub use score::Scorer;
