//! Evaluation of a training run (docs/eval.md): what `lennonnet eval` writes to `<run>/eval/`.
//!
//! [`metrics`] holds the on-disk schema: `metrics.json` ([`metrics::EvalMetrics`]),
//! `predictions.jsonl` ([`metrics::Prediction`]), `suspects.jsonl` ([`metrics::Suspect`]) and
//! `gallery/index.json` ([`metrics::GalleryIndex`]).

pub mod metrics;
