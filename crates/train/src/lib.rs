//! Lennonnet's training stage (docs/training.md): [`trainer::train`] runs a training run from a
//! snapshot into a run folder ([`run`]), with [`data`] (the snapshot's images, the pixel cache,
//! the loader), [`augment`], [`features`] (the head strategy's feature cache), [`optim`]
//! (AdamW), [`schedule`], [`metrics`] (the loss), [`rng`] (the run's random streams) and
//! [`report`] (progress and summary). The models, kernels and weight import are
//! `lennonnet-models`'; the records a run writes are `lennonnet-records`'.

pub mod augment;
pub mod data;
pub mod features;
pub mod metrics;
pub mod optim;
pub mod report;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod synthetic;
mod train_error;
pub mod trainer;

// The model crate's modules under their old paths inside this crate.
use lennonnet_models::{device, models, params, preprocess, weights};

pub use report::TrainReporter;
pub use train_error::{TrainError, TrainResult};
pub use trainer::{TrainOptions, TrainOutcome, train};
