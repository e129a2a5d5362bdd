//! The files `lennonnet eval` writes, as serde types. This is the contract the report and any
//! other reader build on: fields are only ever added (readers must ignore unknown fields); a
//! change of meaning bumps [`FORMAT_VERSION`].
//!
//! ```text
//! <run>/eval/
//!   metrics.json        EvalMetrics: figures on the test split (against the labels and, on a
//!                       mirror world, against the truth), per group, on the eval sets, the
//!                       suspect-label summary; pretty JSON, key order fixed, deterministic apart
//!                       from the `timing` object
//!   predictions.jsonl   one Prediction per scored image, sorted by (split, group, id)
//!   suspects.jsonl      one Suspect per line, most suspect first (every split)
//!   features.safetensors  `features`: the pooled features of every scored image (n × dim f32,
//!                       unit length), row order in the metadata key `ids` (a JSON array of
//!                       content ids); `lennonnet review` finds neighbours in it
//!   gallery/index.json  GalleryIndex: the worst errors and the top suspects, with thumbnails
//!   gallery/errors/<rank>-<id 16 hex>.jpg, gallery/suspects/<rank>-<id 16 hex>.jpg
//! ```
//!
//! Probabilities are P(positive class), the softmax output of the run's best model for the
//! first class of `run.json`'s `classes`. "Predicted positive" means P ≥ `threshold`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the `eval/` folder's files.
pub const FORMAT_VERSION: u32 = 1;

pub const EVAL_DIR: &str = "eval";
pub const METRICS_JSON: &str = "metrics.json";
pub const PREDICTIONS_JSONL: &str = "predictions.jsonl";
pub const SUSPECTS_JSONL: &str = "suspects.jsonl";
pub const FEATURES: &str = "features.safetensors";
pub const GALLERY_DIR: &str = "gallery";
/// Relative to the `eval/` folder.
pub const GALLERY_INDEX: &str = "gallery/index.json";
/// Bins of the per-eval-set P(positive) histogram (the founding figure's 25).
pub const HISTOGRAM_BINS: usize = 25;
/// Equal-width bins of the reliability diagram and the ECE.
pub const CALIBRATION_BINS: usize = 10;
/// The name of the aggregate of all word groups in [`GroupScores`].
pub const WORDS_AGGREGATE: &str = "words";

/// `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub format_version: u32,
    pub run: RunInfo,
    /// The snapshot scored (the run's own unless `--snapshot` named another).
    pub snapshot: String,
    /// Images scored per split (`train`, `val`, `test`, `eval`).
    pub scored: BTreeMap<String, usize>,
    /// Images of the snapshot that could not be scored (unreadable or undecodable), sorted by id.
    pub failed: Vec<FailedImage>,
    /// Whether a ground truth was available, and how much label noise it shows.
    pub truth: TruthSummary,
    /// The test split, at the threshold.
    pub test: SplitScores,
    /// The validation split, at the threshold (the threshold was tuned here: in-sample).
    pub val: SplitScores,
    /// Per group and split (test, val, eval), plus the `words` aggregate per split.
    pub groups: Vec<GroupScores>,
    /// The held-out eval sets (groups with purpose `eval`): the founding figure's histograms.
    pub eval_sets: Vec<EvalSet>,
    /// Confident learning on the train and val splits (suspects.jsonl has the rows).
    pub suspects: SuspectSummary,
    /// What the gallery holds (gallery/index.json has the rows).
    pub gallery: GallerySummary,
    /// Wall-clock figures: the only part of metrics.json that differs between two evaluations of
    /// the same run and snapshot.
    pub timing: Timing,
}

/// The run evaluated, from its `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub name: String,
    /// The snapshot the run trained on.
    pub snapshot: String,
    pub model: String,
    pub strategy: String,
    pub seed: u64,
    /// Class names in the model's output order.
    pub classes: Vec<String>,
    pub positive_class: String,
    /// Predicted positive when P(positive) ≥ threshold.
    pub threshold: f64,
    /// `validation` (run.json's threshold, tuned on val) or `default` (0.5: run.json had none).
    pub threshold_source: String,
    /// The metric the threshold was tuned for (run.json), if known.
    pub threshold_metric: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedImage {
    pub id: String,
    pub split: String,
    pub group: String,
    pub reason: String,
}

/// The ground truth (a mirror world's identity behind each URL) and the label noise it reveals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthSummary {
    /// Truth was found for at least one image.
    pub available: bool,
    /// Where it came from: `mirror` or `none`.
    pub source: String,
    /// Per split: images with a known truth, and how many of them carry a label that differs
    /// from their true class.
    pub per_split: BTreeMap<String, LabelNoise>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelNoise {
    pub images: usize,
    pub known: usize,
    /// Images whose label is not their true class.
    pub wrong: usize,
    /// label class → wrongly labelled images with that label.
    pub wrong_by_label: BTreeMap<String, usize>,
}

/// One split's figures, against the labels and (when known for every image) the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitScores {
    pub split: String,
    pub labels: Scores,
    /// The same predictions scored against the true classes; `None` without a truth for every
    /// image of the split.
    pub truth: Option<Scores>,
}

/// Figures of one set of predictions against one reference (labels or truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// `label` or `truth`.
    pub reference: String,
    pub images: usize,
    /// The founding study's form, one row per class in class order: "96/100 john".
    pub per_class: Vec<ClassCount>,
    pub accuracy: f64,
    /// Mean of the per-class recalls.
    pub balanced_accuracy: f64,
    /// Precision, recall and F1 of the positive class.
    pub positive: PositiveScores,
    /// Area under the ROC curve of P(positive) (ties count one half); `None` when one class is
    /// absent.
    pub roc_auc: Option<f64>,
    pub confusion: ConfusionMatrix,
    pub calibration: Calibration,
    /// Mean squared error of P(positive) against 1/0.
    pub brier: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCount {
    pub class: String,
    /// Images of this class (by the reference) predicted as this class.
    pub right: usize,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositiveScores {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Images of the positive class by the reference.
    pub support: usize,
    /// Images predicted positive.
    pub predicted: usize,
}

/// `rows[reference][predicted]`, classes in class order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub classes: Vec<String>,
    pub rows: Vec<Vec<usize>>,
}

/// Calibration of P(positive) in [`CALIBRATION_BINS`] equal-width bins over [0, 1] (the last
/// bin includes 1.0). ECE = Σ (count/N)·|mean_p − fraction_positive|; MCE is the largest gap of a
/// non-empty bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub ece: f64,
    pub mce: f64,
    pub bins: Vec<ReliabilityBin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean P(positive) in the bin; `None` when empty.
    pub mean_p: Option<f64>,
    /// Share of the bin's images that are positive by the reference; `None` when empty.
    pub fraction_positive: Option<f64>,
}

/// One group (or the `words` aggregate) on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScores {
    /// The group name, or `words` for the aggregate of the word groups.
    pub group: String,
    /// `group`, `words_aggregate`.
    pub kind: String,
    pub split: String,
    /// The group's label (the class all its images carry).
    pub label: String,
    pub images: usize,
    /// Predicted as their label.
    pub right: usize,
    pub accuracy: f64,
    pub mean_p_positive: f64,
    /// Images predicted positive.
    pub predicted_positive: usize,
    /// Images whose truth is the positive class, when the truth is known.
    pub truth_positive: Option<usize>,
}

/// A held-out eval set (a group with purpose `eval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    pub group: String,
    pub label: String,
    pub images: usize,
    /// Predicted as the label.
    pub right: usize,
    pub accuracy: f64,
    pub mean_p_positive: f64,
    pub median_p_positive: f64,
    /// P(positive) in [`HISTOGRAM_BINS`] equal-width bins over [0, 1].
    pub histogram: Histogram,
    /// Two bins split at the threshold: `counts[0]` below it, `counts[1]` at or above it.
    pub threshold_histogram: Histogram,
    /// The founding figure's two bins: right and wrong (against the label).
    pub wrong: usize,
    /// Images whose truth is the positive class, when the truth is known.
    pub truth_positive: Option<usize>,
}

/// `counts[i]` holds the values in `[edges[i], edges[i+1])`; the last bin also holds
/// `edges[last]` (so P = 1.0 is counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<usize>,
}

/// The suspect labels of every split: out-of-fold scores, feature-space neighbours and the
/// training dynamics, with confident learning (Northcutt et al.; cleanlab's
/// `find_label_issues` with `filter_by = "confident_learning"`) on the out-of-fold scores of
/// the train and val splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectSummary {
    /// Splits examined.
    pub splits: Vec<String>,
    pub images: usize,
    /// Per class: the mean out-of-fold self-confidence P(class | image) over the train and val
    /// images labelled with it.
    pub thresholds: Vec<ClassThreshold>,
    /// `rows[given label][confident class]` over train and val: images counted where some
    /// class's out-of-fold probability reaches its threshold (the argmax among those that do);
    /// the rest are not counted.
    pub confident_joint: ConfusionMatrix,
    /// Images flagged by at least one signal: the rows of suspects.jsonl.
    pub suspects: usize,
    /// Suspects per split.
    pub by_split: BTreeMap<String, usize>,
    /// Suspects per signal that flagged them (one suspect may count under several).
    #[serde(default)]
    pub by_signal: BTreeMap<String, usize>,
    /// When the truth is known: suspects whose label is really wrong, and the label errors in
    /// the examined splits that were not flagged.
    pub truth: Option<SuspectTruth>,
    /// When the truth is known: of the wrong labels, how many the top K of the ranking hold
    /// (train, val and test together; the eval sets apart).
    #[serde(default)]
    pub recall: Vec<SuspectRecall>,
    /// How the evidence was gathered.
    #[serde(default)]
    pub method: Option<SuspectMethod>,
}

/// The wrong labels among the top `k` suspects of a pool of splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectRecall {
    /// `train+val+test` or `eval`.
    pub pool: String,
    pub k: usize,
    /// Wrong labels in the pool (known truth).
    pub wrong: usize,
    /// Of them, in the pool's top `k` suspects.
    pub found: usize,
}

/// The settings of the suspect search (its time is in [`Timing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectMethod {
    /// Out-of-fold folds (keyed by near-duplicate cluster) and the seed of their membership.
    pub folds: usize,
    pub seed: u64,
    /// Neighbours per image, and `exact` (every pair compared).
    pub neighbours: usize,
    pub search: String,
    /// Whether the run's training dynamics (dynamics.jsonl) were found.
    pub training_dynamics: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassThreshold {
    pub class: String,
    pub threshold: f64,
    /// Images labelled with the class.
    pub images: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectTruth {
    /// Suspects with a known truth.
    pub known: usize,
    /// Of those, whose label is wrong.
    pub label_wrong: usize,
    /// Wrongly labelled images (known truth) in the examined splits that are not suspects.
    pub missed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GallerySummary {
    /// Misclassified test and eval images in the gallery.
    pub errors: usize,
    /// Suspects in the gallery.
    pub suspects: usize,
    /// Relative to `eval/`.
    pub index: String,
}

/// Wall-clock figures (never compared between runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub total_secs: f64,
    pub load_secs: f64,
    /// Decoding and preprocessing plus the forward passes.
    pub score_secs: f64,
    pub images: usize,
    pub images_per_sec: f64,
    pub threads: usize,
    pub batch_size: usize,
    /// The suspect search once the features are scored: the out-of-fold heads, the neighbours,
    /// and all of it.
    #[serde(default)]
    pub suspects_oof_secs: f64,
    #[serde(default)]
    pub suspects_neighbour_secs: f64,
    #[serde(default)]
    pub suspects_secs: f64,
}

/// Where an image came from: one search result that led to it (the store keeps every one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    pub query: String,
    pub engine: String,
    pub url: String,
}

/// The true class of an image and who is in it (mirror worlds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub class: String,
    /// The mirror's subject name: `john`, `person-000123`, a word, `group`.
    pub name: String,
    pub identities: Vec<String>,
}

/// One line of `predictions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub split: String,
    pub group: String,
    pub label: String,
    /// P(positive), f32 as the model computed it.
    pub p_positive: f32,
    pub predicted: String,
    /// `predicted == label`.
    pub correct: bool,
    /// The evidence about its label ([`Suspect`] has the same fields): the combined suspicion
    /// score, P(label) out of fold, the neighbours' disagreement and, for training images, the
    /// training margin. Every image has them, flagged or not.
    #[serde(default)]
    pub suspicion: Option<f32>,
    #[serde(default)]
    pub oof_p_label: Option<f32>,
    #[serde(default)]
    pub neighbour_disagreement: Option<f32>,
    #[serde(default)]
    pub training_margin: Option<f32>,
    pub truth: Option<Truth>,
    /// Every search result that led to these bytes, sorted (first: the one shown in galleries).
    pub sources: Vec<Source>,
}

/// One line of `suspects.jsonl`: an image whose label the evidence disagrees with, in every
/// split (train, val, test, eval), most suspect first by [`Suspect::score`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    /// 1 = most suspect.
    pub rank: usize,
    pub id: String,
    pub split: String,
    pub group: String,
    pub label: String,
    /// The class the evidence puts it in.
    pub suggested: String,
    /// P(label | image): out of fold when known (`oof_p_label`), else the run's model.
    pub p_label: f32,
    /// P(suggested | image), from the same model as `p_label`.
    pub p_suggested: f32,
    /// `p_suggested − p_label`.
    pub margin: f32,
    /// The combined suspicion in [0, 1], the ranking key (larger first, then id): the mean of
    /// the signals known for the image (1 − `oof_p_label`, `neighbour_disagreement`, and for
    /// training images the training-dynamics signal from `training_margin`).
    #[serde(default)]
    pub score: f32,
    /// The signals that flagged it: `out_of_fold`, `neighbours`, `training_dynamics`,
    /// `confident_learning`.
    #[serde(default)]
    pub signals: Vec<String>,
    /// P(label | image) from linear heads trained on the pooled features of the other folds
    /// (train and val), or from the mean of those heads (test and eval): never a model that saw
    /// the image's label.
    #[serde(default)]
    pub oof_p_label: Option<f32>,
    /// The run's own model's P(label | image) (it trained on train images).
    #[serde(default)]
    pub model_p_label: Option<f32>,
    /// Of its nearest neighbours, the similarity-weighted share that carries another label.
    #[serde(default)]
    pub neighbour_disagreement: Option<f32>,
    /// Its nearest neighbours (cosine of the pooled features) outside its own near-duplicate
    /// cluster, most similar first: the evidence.
    #[serde(default)]
    pub neighbours: Vec<Neighbour>,
    /// Training images only: the mean over epochs of the margin of its label (logit of the
    /// label minus the largest other logit) while the run trained; negative means the model
    /// mostly disagreed with the label until it memorised it.
    #[serde(default)]
    pub training_margin: Option<f32>,
    /// Its near-duplicate cluster (the representative's content id) and the cluster's size in
    /// the snapshot.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub cluster_size: Option<usize>,
    pub truth: Option<Truth>,
    pub sources: Vec<Source>,
    /// The thumbnail, relative to `eval/`, when in the gallery.
    pub thumbnail: Option<String>,
}

/// One neighbour of a suspect in feature space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub id: String,
    pub split: String,
    pub group: String,
    pub label: String,
    /// Cosine similarity of the pooled features, in [−1, 1].
    pub similarity: f32,
}

/// `gallery/index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryIndex {
    pub format_version: u32,
    pub threshold: f64,
    pub positive_class: String,
    /// Misclassified test and eval images, most confident first.
    pub errors: Vec<GalleryItem>,
    /// The top suspects, in suspects.jsonl's order.
    pub suspects: Vec<GalleryItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    pub rank: usize,
    pub id: String,
    pub split: String,
    pub group: String,
    pub label: String,
    pub predicted: String,
    pub p_positive: f32,
    /// How sure the model is of its (wrong) answer: P(predicted class).
    pub confidence: f32,
    pub truth: Option<Truth>,
    pub sources: Vec<Source>,
    /// Relative to `eval/`.
    pub thumbnail: String,
}
