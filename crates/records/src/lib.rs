//! The records Lennonnet writes about training and evaluation, as serde types, with no tensor
//! library: what `report` and any other reader build on.
//!
//! - [`settings`]: the settings that decide a run ([`TrainSettings`], [`Strategy`],
//!   [`Balance`], [`ThresholdMetric`], [`AugmentOptions`]), one type per concept, shared by the
//!   config, the training stage and the command line;
//! - [`run`]: a run folder's `run.json` and `metrics.jsonl`, and their readers;
//! - [`eval`]: the files of `<run>/eval/` (`metrics.json`, `predictions.jsonl`,
//!   `suspects.jsonl`, `gallery/index.json`);
//! - [`scores`]: figures computed from predictions and the decision threshold.

mod error;
pub mod eval;
pub mod run;
pub mod scores;
pub mod settings;

pub use error::{RecordError, Result};
pub use settings::{AugmentOptions, Balance, Strategy, ThresholdMetric, TrainSettings};
