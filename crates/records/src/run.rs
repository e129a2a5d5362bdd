//! The run folder and what is written in it.
//!
//! ```text
//! runs/<run>/
//!   run.json            RunRecord: snapshot, classes, model, weights (source and blake3), the
//!                       training settings, preprocessing, data counts, device, versions; once
//!                       finished, the result and the decision threshold tuned on validation
//!   metrics.jsonl       one MetricsRecord per line: `step` (every optimiser step), `epoch`
//!                       (every epoch, with validation), `end` (once); wall-clock figures only
//!                       under each record's `time` object
//!   best.safetensors    the model at the epoch with the lowest validation loss
//!   last.safetensors    the model at the last checkpoint
//!   resume.safetensors  the model, the optimiser's moments and (in the metadata) the loop's
//!                       position, written atomically at every checkpoint: what --resume reads
//! ```
//!
//! Every file is written to a temporary name and renamed into place, except metrics.jsonl,
//! which is appended to and cut back on resume to the length the checkpoint recorded. So a run
//! killed at any moment resumes from its last checkpoint and ends with the same files as a run
//! that was never interrupted (apart from the `time` objects).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RecordError, Result};
use crate::scores::BinaryScores;
use crate::settings::{ThresholdMetric, TrainSettings};

/// Version of the run folder layout and of run.json.
pub const FORMAT_VERSION: u32 = 1;

/// The candle release the workspace builds with, recorded in run.json (checked against
/// Cargo.lock by a test in lennonnet-train).
pub const CANDLE_VERSION: &str = "0.11.1";

pub const RUN_JSON: &str = "run.json";
pub const METRICS: &str = "metrics.jsonl";
pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";
pub const RESUME: &str = "resume.safetensors";

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished: resumable.
    Running,
    Finished,
}

/// The weights a run started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsRecord {
    /// As given: a path or `hub:ORG/REPO[/FILE]`.
    pub source: String,
    /// The local file read.
    pub path: PathBuf,
    /// blake3 of that file, hex.
    pub blake3: String,
    pub format: String,
    /// The renaming applied to the checkpoint's tensor names.
    pub mapping: String,
    /// Head tensors left freshly initialised (the checkpoint's head has other classes).
    pub reinitialised: Vec<String>,
}

/// How images become model inputs, for eval and predict to repeat it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessRecord {
    pub input_px: usize,
    /// Eval: resize the shorter side to `resize_px`, centre-crop `input_px`.
    pub resize_px: usize,
    pub crop_pct: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub interpolation: String,
}

/// What the run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub train: usize,
    pub val: usize,
    /// class → images, per split.
    pub train_per_class: BTreeMap<String, usize>,
    pub val_per_class: BTreeMap<String, usize>,
    /// The loss weight of each class, in class order (all 1 unless `balance = weighted_loss`).
    pub class_weights: Vec<f32>,
    /// Images left out because they could not be decoded: id → reason.
    pub failed: BTreeMap<String, String>,
    pub pixel_cache: PathBuf,
    pub feature_cache: Option<PathBuf>,
}

/// What is trained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainableRecord {
    /// Trainable parameters (elements).
    pub params: usize,
    pub tensors: usize,
    /// Frozen name prefixes.
    pub frozen: Vec<String>,
    pub num_features: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub lennonnet: String,
    pub candle: String,
    pub run_format: u32,
    pub pixel_cache_format: u32,
}

/// Why the epochs stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All the epochs asked for ran.
    Epochs,
    /// The validation loss did not improve for `patience_epochs` epochs.
    EarlyStopping,
}

/// The outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub stop_reason: StopReason,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    /// Validation accuracy of the best model by argmax.
    pub val_accuracy: f64,
    pub threshold_metric: ThresholdMetric,
    /// The best model on validation at the tuned threshold (binary tasks).
    pub val_at_threshold: Option<BinaryScores>,
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format_version: u32,
    pub name: String,
    pub status: RunStatus,
    pub snapshot: String,
    /// Class names in the model's output order.
    pub classes: Vec<String>,
    /// The class whose probability the threshold applies to: the first.
    pub positive_class: String,
    pub model: String,
    pub weights: Option<WeightsRecord>,
    pub strategy: String,
    pub seed: u64,
    /// The training settings (the `[train]` section after command-line overrides).
    pub config: TrainSettings,
    pub preprocess: PreprocessRecord,
    pub data: DataRecord,
    pub trainable: TrainableRecord,
    pub device: String,
    pub dtype: String,
    pub backend: String,
    pub versions: Versions,
    /// Decide "positive" when P(positive) ≥ threshold (tuned on validation; binary tasks).
    pub threshold: Option<f64>,
    pub result: Option<RunResult>,
}

/// Running sums of a training epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Σ batch loss × batch size.
    #[serde(with = "f64_bits")]
    pub loss: f64,
    pub correct: u64,
    pub images: u64,
    pub steps: u64,
}

/// The best epoch so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub epoch: usize,
    #[serde(with = "f64_bits")]
    pub val_loss: f64,
}

/// An f64 saved as its bit pattern: JSON's decimal form does not always read back to the same
/// number, and a resumed run must continue from exactly the same sums.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

/// The loop's position, saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    pub format_version: u32,
    /// The epoch in progress (1-based) and the next step in it (0-based).
    pub epoch: usize,
    pub step_in_epoch: usize,
    /// Optimiser steps taken.
    pub global_step: u64,
    pub sums: EpochSums,
    pub best: Option<Best>,
    pub epochs_since_best: usize,
    /// The length of metrics.jsonl at this checkpoint.
    pub metrics_bytes: u64,
    /// Set once the epochs are over.
    pub done: Option<StopReason>,
    /// The training dynamics so far, per training image in the trainer's order: the sum of
    /// its label's margins (f64 bits) and how many steps saw it ([`DynamicsRow`]). Empty in a
    /// checkpoint written before they were kept.
    #[serde(default)]
    pub margin_sums: Vec<u64>,
    #[serde(default)]
    pub margin_counts: Vec<u32>,
}

impl ResumeState {
    pub fn start() -> Self {
        Self {
            format_version: FORMAT_VERSION,
            epoch: 1,
            step_in_epoch: 0,
            global_step: 0,
            sums: EpochSums::default(),
            best: None,
            epochs_since_best: 0,
            metrics_bytes: 0,
            done: None,
            margin_sums: Vec::new(),
            margin_counts: Vec::new(),
        }
    }
}

/// Wall-clock figures of a record: everything that differs between two identical runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds since this process started training.
    pub elapsed_secs: f64,
    /// Seconds of this step or epoch.
    pub secs: f64,
    /// Training images per second over this step or epoch.
    pub images_per_sec: f64,
}

/// One optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub epoch: usize,
    /// Optimiser steps so far, this one included.
    pub step: u64,
    /// This step's number in its epoch (1-based) and the epoch's steps.
    pub epoch_step: usize,
    pub epoch_steps: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub time: Timing,
}

/// One epoch, with its validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub steps: u64,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_balanced_accuracy: f64,
    /// The best validation loss so far: best.safetensors now holds this epoch.
    pub best: bool,
    pub time: Timing,
}

/// The end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndRecord {
    pub result: RunResult,
    pub time: Timing,
}

/// A line of metrics.jsonl, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricsRecord {
    Step(StepRecord),
    Epoch(EpochRecord),
    End(EndRecord),
}

/// run.json of the run in `dir`, if there is one.
pub fn read_record(dir: &Path) -> Result<Option<RunRecord>> {
    let path = dir.join(RUN_JSON);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecordError::io("read", &path)(e)),
    };
    let record: RunRecord = serde_json::from_slice(&bytes).map_err(|e| RecordError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some(record))
}

/// Every record of a metrics.jsonl file.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRecord>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RecordError::io("read", path)(e)),
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| RecordError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// The training dynamics of the run in `dir` (`dynamics.jsonl`), if it wrote them.
pub fn read_dynamics(dir: &Path) -> Result<Option<Vec<DynamicsRow>>> {
    let path = dir.join(DYNAMICS_JSONL);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecordError::io("read", &path)(e)),
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| RecordError::Corrupt {
                path: path.clone(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A metrics.jsonl line without its `time` object: what two runs with the same seed share.
pub fn without_time(line: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(line).ok()?;
    if let Some(obj) = v.as_object_mut() {
        obj.remove("time");
    }
    Some(v)
}

/// `dynamics.jsonl` in a finished run: one [`DynamicsRow`] per training image, sorted by id.
pub const DYNAMICS_JSONL: &str = "dynamics.jsonl";

/// How the model saw one training image while it trained (the area under the margin, Pleiss
/// et al. 2020): a wrong label is learned late, by memorising, so its margin stays low or
/// negative for most of the run while a right one's grows early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicsRow {
    pub id: String,
    pub label: String,
    /// The mean over the steps that saw it of (logit of its label − the largest other logit),
    /// as computed in the training forward pass (augmented view, dropout on).
    pub margin: f32,
    /// Steps that saw it (one per epoch, or none with a balancing sampler that left it out).
    pub seen: u32,
}
