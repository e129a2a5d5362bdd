//! The training run: from a snapshot to a run folder (see [`crate::run`]).
//!
//! 1. Read the snapshot's train and val images and decode them once into the pixel cache.
//! 2. Build the model, load the weights (the head is re-initialised for the snapshot's classes),
//!    freeze what the strategy freezes.
//! 3. `head`: compute the frozen backbone's features once (feature cache), then train the head on
//!    them. `partial` and `full`: train on augmented images from the loader.
//! 4. Every epoch: validate, keep `best.safetensors` (lowest validation loss), write
//!    `last.safetensors` and the resume checkpoint; stop early when the validation loss has not
//!    improved for `patience_epochs` epochs.
//! 5. At the end: reload the best model, tune the decision threshold on validation, write the
//!    result into run.json.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use lennonnet_split::Snapshot;

use lennonnet_records::scores::{BinaryScores, Confusion, argmax, tune_threshold};
use lennonnet_records::{Balance, Strategy, TrainSettings};

use crate::augment::{Normalise, augment, centre_crop};
use crate::data::SnapshotData;
use crate::data::cache::PixelCache;
use crate::data::loader::{LoaderOptions, for_each_batch};
use crate::device;
use crate::features::{BoundarySet, FeatureSet};
use crate::metrics::cross_entropy;
use crate::models::{Arch, Classifier, ModelOptions};
use crate::optim::{AdamW, AdamWOptions};
use crate::params::under_prefix;
use crate::report::TrainReporter;
use crate::rng;
use crate::run::{
    BEST, Best, EndRecord, EpochRecord, EpochSums, LAST, METRICS, MetricsLog, MetricsRecord,
    ResumeState, RunDir, RunRecord, RunResult, RunStatus, StepRecord, StopReason, Timing,
    WeightsRecord,
};
use crate::schedule::LrSchedule;
use crate::train_error::{TrainError, TrainResult};
use crate::weights::{HeadPolicy, HubOptions};
use lennonnet_models::scoring::probabilities;

/// A training run: the settings plus where things go and how the work is spread.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub settings: TrainSettings,
    /// Class order (the first is the positive class); empty: the snapshot's labels, sorted.
    pub classes: Vec<String>,
    /// The run folder, `runs/<run>`.
    pub run_dir: PathBuf,
    /// Pixel and feature caches, shared between runs.
    pub cache_dir: PathBuf,
    /// Continue the run in `run_dir` from its last checkpoint.
    pub resume: bool,
    pub loader: LoaderOptions,
    /// Also checkpoint every this many steps within an epoch (0: at epoch ends only).
    pub checkpoint_every_steps: u64,
    pub hub: HubOptions,
    /// Testing hook: return right after this many optimiser steps in total, writing nothing
    /// more, as if the process had been killed there.
    #[doc(hidden)]
    pub stop_after_steps: Option<u64>,
}

impl TrainOptions {
    pub fn new(settings: TrainSettings, run_dir: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            settings,
            classes: Vec::new(),
            run_dir,
            cache_dir,
            resume: false,
            loader: LoaderOptions {
                threads: 2,
                prefetch_batches: 4,
            },
            checkpoint_every_steps: 0,
            hub: HubOptions::default(),
            stop_after_steps: None,
        }
    }
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub record: RunRecord,
    /// Every epoch of the run, resumed parts included.
    pub epochs: Vec<EpochRecord>,
    /// False when stopped by [`TrainOptions::stop_after_steps`].
    pub completed: bool,
    /// The run had already finished; nothing was done.
    pub already_finished: bool,
}

/// The name prefixes that `partial` trains by default: the last stage (and, for
/// EfficientNet-Lite0, the last two block stages and the head convolution).
pub fn default_partial_prefixes(arch: Arch) -> Vec<String> {
    match arch {
        Arch::EfficientNetLite0 => ["blocks.5", "blocks.6", "conv_head", "bn2"],
        _ => ["layer4", "", "", ""],
    }
    .into_iter()
    .filter(|p| !p.is_empty())
    .map(String::from)
    .collect()
}

/// The eval resize of a model input: `floor(input_px / crop_pct)`, at least `input_px`.
pub fn resize_px(input_px: usize, crop_pct: f64) -> usize {
    ((input_px as f64 / crop_pct).floor() as usize).max(input_px)
}

fn check(s: &TrainSettings) -> TrainResult<()> {
    let bad = |option, reason: String| Err(TrainError::BadOption { option, reason });
    if s.epochs == 0 {
        return bad("epochs", "expected at least 1".into());
    }
    if s.batch_size == 0 {
        return bad("batch_size", "expected at least 1".into());
    }
    if let Some(px) = s.input_px {
        if px < 32 || px % 32 != 0 {
            return bad("input_px", format!("expected a multiple of 32, found {px}"));
        }
    }
    if !(s.learning_rate.is_finite() && s.learning_rate > 0.0) {
        return bad(
            "learning_rate",
            format!("expected a positive number, found {}", s.learning_rate),
        );
    }
    if !(s.weight_decay >= 0.0 && s.weight_decay.is_finite()) {
        return bad(
            "weight_decay",
            format!("expected 0 or more, found {}", s.weight_decay),
        );
    }
    if !(s.warmup_epochs >= 0.0 && s.warmup_epochs.is_finite()) {
        return bad(
            "warmup_epochs",
            format!("expected 0 or more, found {}", s.warmup_epochs),
        );
    }
    if !(0.0..=1.0).contains(&s.final_lr_fraction) {
        return bad(
            "final_lr_fraction",
            format!("expected a number in [0, 1], found {}", s.final_lr_fraction),
        );
    }
    if !(0.0..1.0).contains(&s.label_smoothing) {
        return bad(
            "label_smoothing",
            format!("expected a number in [0, 1), found {}", s.label_smoothing),
        );
    }
    if let Some(c) = s.grad_clip_norm {
        if !(c.is_finite() && c > 0.0) {
            return bad(
                "grad_clip_norm",
                format!("expected a positive number, found {c}"),
            );
        }
    }
    if s.patience_epochs == 0 {
        return bad("patience_epochs", "expected at least 1".into());
    }
    if s.feature_views == 0 {
        return bad("feature_views", "expected at least 1".into());
    }
    if s.cache_boundary && s.strategy != Strategy::Partial {
        return bad(
            "cache_boundary",
            format!(
                "only the `partial` strategy has a boundary to cache, the strategy is `{}` \
                 (`head` caches pooled features already)",
                s.strategy.as_str()
            ),
        );
    }
    if let Err((option, reason)) = s.augment.check() {
        return bad(option, reason);
    }
    Ok(())
}

/// A training or validation image: its slot in the pixel cache and its class.
#[derive(Debug, Clone, Copy)]
struct Item {
    slot: usize,
    class: usize,
}

/// The training order of an epoch: positions into the train items.
fn epoch_order(
    seed: u64,
    epoch: usize,
    classes: &[usize],
    n_classes: usize,
    balance: Balance,
) -> Vec<usize> {
    let mut r = rng::stream(seed, "epoch-order", &[epoch as u64]);
    match balance {
        Balance::Sampler => {
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
            for (i, &c) in classes.iter().enumerate() {
                by_class[c].push(i);
            }
            let present: Vec<&Vec<usize>> = by_class.iter().filter(|v| !v.is_empty()).collect();
            (0..classes.len())
                .map(|_| {
                    let members = present[rng::below(&mut r, present.len() as u64) as usize];
                    members[rng::below(&mut r, members.len() as u64) as usize]
                })
                .collect()
        }
        Balance::None | Balance::WeightedLoss => {
            let mut order: Vec<usize> = (0..classes.len()).collect();
            rng::shuffle(&mut r, &mut order);
            order
        }
    }
}

mod setup;
mod steps;

use steps::{Inputs, Trainer};

/// Trains a model on `snapshot` as `opts` says, reporting to `reporter`.
pub fn train(
    snapshot: &Snapshot,
    opts: &TrainOptions,
    reporter: &dyn TrainReporter,
) -> TrainResult<TrainOutcome> {
    let s = &opts.settings;
    check(s)?;
    let started = Instant::now();
    let arch = Arch::from_name(&s.model)?;
    let device = device::parse_device(&s.device)?;
    let dtype = device::compute_dtype(&device, s.bf16)?;
    let data = SnapshotData::load(snapshot, &opts.classes)?;
    let run = RunDir::new(&opts.run_dir);
    let existing = match setup::existing_run(&run, opts.resume)? {
        ControlFlow::Break(outcome) => return Ok(outcome),
        ControlFlow::Continue(existing) => existing,
    };

    let mut model = Classifier::new(
        arch,
        &ModelOptions {
            num_classes: data.classes.len(),
            seed: s.seed,
            dtype,
            ..Default::default()
        },
        &device,
    )?;
    let weights = setup::load_weights(&mut model, s, opts)?;
    if let Some(rec) = &existing {
        check_resumable(&run, rec, s, &data.snapshot, weights.as_ref())?;
    }
    let prepared = setup::prepare_data(arch, s, opts, &data, reporter)?;
    let trainable = setup::select_trainable(&mut model, arch, s, &prepared)?;
    let (inputs, feature_cache) = setup::build_inputs(
        &model,
        arch,
        s,
        opts,
        &data.snapshot,
        &prepared,
        weights.as_ref(),
        dtype,
        reporter,
    )?;
    let record = setup::run_record(setup::RecordParts {
        run: &run,
        data: &data,
        arch,
        s,
        weights,
        prepared: &prepared,
        trainable: &trainable,
        feature_cache,
        model: &model,
        device: &device,
        dtype,
    });
    std::fs::create_dir_all(&run.dir).map_err(TrainError::io("create", &run.dir))?;
    if existing.is_none() {
        run.write_record(&record)?;
    }

    let mut optimizer = AdamW::new(
        trainable.vars,
        AdamWOptions {
            weight_decay: s.weight_decay,
            ..Default::default()
        },
    )?;
    let mut state = setup::resume_state(&run, opts.resume, &device, &mut model, &mut optimizer)?;
    let log = MetricsLog::open(&run.path(METRICS), state.metrics_bytes)?;
    let setup::Prepared {
        input_px,
        norm,
        pixels,
        train,
        train_ids,
        val,
        ..
    } = prepared;
    // The training dynamics' sums, one per training image (a checkpoint from before they were
    // kept has none: they start from zero).
    if state.margin_sums.len() != train.len() {
        state.margin_sums = vec![0f64.to_bits(); train.len()];
        state.margin_counts = vec![0; train.len()];
    }
    let steps_per_epoch = (train.len() / s.batch_size).max(1);
    let total_steps = (s.epochs * steps_per_epoch) as u64;
    let schedule = LrSchedule {
        base: s.learning_rate,
        warmup_steps: ((s.warmup_epochs * steps_per_epoch as f64).round() as u64).min(total_steps),
        total_steps,
        final_fraction: s.final_lr_fraction,
    };
    let mut t = Trainer {
        opts,
        s,
        reporter,
        model,
        optimizer,
        schedule,
        class_weights: trainable.class_weights,
        n_classes: data.classes.len(),
        device,
        pixels: Arc::new(pixels),
        input_px,
        norm,
        train,
        train_ids,
        classes: data.classes.clone(),
        val,
        inputs,
        run,
        log,
        state,
        steps_per_epoch,
        started,
        epoch_started: Instant::now(),
    };
    let completed = t.epochs()?;
    let record = if completed { t.finish(record)? } else { record };
    Ok(TrainOutcome {
        run_dir: t.run.dir.clone(),
        epochs: epoch_records(&t.run)?,
        record,
        completed,
        already_finished: false,
    })
}

fn epoch_records(run: &RunDir) -> TrainResult<Vec<EpochRecord>> {
    Ok(run
        .read_metrics()?
        .into_iter()
        .filter_map(|r| match r {
            MetricsRecord::Epoch(e) => Some(e),
            _ => None,
        })
        .collect())
}

fn hash_file(path: &std::path::Path) -> TrainResult<String> {
    let mut f = std::fs::File::open(path).map_err(TrainError::io("open", path))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).map_err(TrainError::io("read", path))?;
    Ok(h.finalize().to_hex().to_string())
}

/// The layers outside `trainable` and the head, to freeze for `partial`.
fn frozen_layers(model: &Classifier, trainable: &[String]) -> TrainResult<Vec<String>> {
    let head = model.arch().head_prefix();
    let entries = model.store().entries();
    for p in trainable {
        if !entries.iter().any(|(n, _)| under_prefix(n, p)) {
            return Err(TrainError::BadOption {
                option: "trainable_prefixes",
                reason: format!("`{p}` names no tensor of {}", model.arch()),
            });
        }
    }
    let mut layers = BTreeSet::new();
    for (name, _) in entries {
        let layer = name.rsplit_once('.').map(|(l, _)| l).unwrap_or(&name);
        if under_prefix(layer, head) || trainable.iter().any(|p| under_prefix(layer, p)) {
            continue;
        }
        layers.insert(layer.to_string());
    }
    Ok(layers.into_iter().collect())
}

/// The stored settings must equal the given ones, and the weights must be the same file.
fn check_resumable(
    run: &RunDir,
    rec: &RunRecord,
    s: &TrainSettings,
    snapshot: &str,
    weights: Option<&WeightsRecord>,
) -> TrainResult<()> {
    let mismatch = |key: &str, stored: String, given: String| TrainError::ResumeMismatch {
        dir: run.dir.clone(),
        key: key.to_string(),
        stored,
        given,
    };
    if rec.snapshot != snapshot {
        return Err(mismatch(
            "snapshot",
            rec.snapshot.clone(),
            snapshot.to_string(),
        ));
    }
    let (a, b) = (
        serde_json::to_value(&rec.config).expect("settings serialise"),
        serde_json::to_value(s).expect("settings serialise"),
    );
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (key, stored) in a {
            let given = b.get(key).cloned().unwrap_or(serde_json::Value::Null);
            // The weights are compared by content below (a path may be spelt differently).
            if key != "weights" && *stored != given {
                return Err(mismatch(key, stored.to_string(), given.to_string()));
            }
        }
    }
    let hash =
        |w: Option<&WeightsRecord>| w.map(|w| w.blake3.clone()).unwrap_or_else(|| "none".into());
    if hash(rec.weights.as_ref()) != hash(weights) {
        return Err(mismatch(
            "weights (blake3)",
            hash(rec.weights.as_ref()),
            hash(weights),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lennonnet_records::AugmentOptions;

    #[test]
    fn epoch_orders_are_seeded_permutations_or_balanced_draws() {
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i >= 90)).collect();
        let a = epoch_order(7, 1, &classes, 2, Balance::None);
        assert_eq!(a, epoch_order(7, 1, &classes, 2, Balance::WeightedLoss));
        assert_ne!(a, epoch_order(7, 2, &classes, 2, Balance::None));
        assert_ne!(a, epoch_order(8, 1, &classes, 2, Balance::None));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        // The sampler draws the 10 minority images about as often as the 90 others.
        let b = epoch_order(7, 1, &classes, 2, Balance::Sampler);
        assert_eq!(b.len(), 100);
        let minority = b.iter().filter(|&&i| classes[i] == 1).count();
        assert!((35..=65).contains(&minority), "{minority}");
    }

    #[test]
    fn partial_freezes_everything_but_the_last_stage_and_the_head() -> TrainResult<()> {
        let model = Classifier::new(
            Arch::ResNet10t,
            &ModelOptions {
                num_classes: 2,
                ..Default::default()
            },
            &Device::Cpu,
        )?;
        let frozen = frozen_layers(&model, &default_partial_prefixes(Arch::ResNet10t))?;
        assert!(frozen.contains(&"layer3.0.conv1".to_string()), "{frozen:?}");
        assert!(frozen.contains(&"conv1.0".to_string()), "{frozen:?}");
        assert!(
            !frozen
                .iter()
                .any(|l| l.starts_with("layer4") || l.starts_with("fc")),
            "{frozen:?}"
        );
        let mut model = model;
        model.freeze(&frozen);
        let names: Vec<String> = model.trainable_vars().into_iter().map(|(n, _)| n).collect();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("layer4.") || n.starts_with("fc.")),
            "{names:?}"
        );
        assert!(
            names.contains(&"fc.weight".to_string())
                && names.contains(&"layer4.0.conv1.weight".to_string())
        );
        let err = frozen_layers(&model, &["layer9".to_string()]).unwrap_err();
        assert!(
            err.to_string().contains("`layer9` names no tensor"),
            "{err}"
        );
        // EfficientNet-Lite0's default names real tensors.
        let eff = Classifier::new(
            Arch::EfficientNetLite0,
            &ModelOptions {
                num_classes: 2,
                ..Default::default()
            },
            &Device::Cpu,
        )?;
        let frozen = frozen_layers(&eff, &default_partial_prefixes(Arch::EfficientNetLite0))?;
        assert!(
            frozen.iter().any(|l| l.starts_with("blocks.4."))
                && !frozen.iter().any(|l| l.starts_with("blocks.5."))
        );
        Ok(())
    }

    #[test]
    fn bad_settings_name_the_option() {
        for (s, option) in [
            (
                TrainSettings {
                    epochs: 0,
                    ..Default::default()
                },
                "epochs",
            ),
            (
                TrainSettings {
                    input_px: Some(100),
                    ..Default::default()
                },
                "input_px",
            ),
            (
                TrainSettings {
                    label_smoothing: 1.0,
                    ..Default::default()
                },
                "label_smoothing",
            ),
            (
                TrainSettings {
                    grad_clip_norm: Some(0.0),
                    ..Default::default()
                },
                "grad_clip_norm",
            ),
            (
                TrainSettings {
                    augment: AugmentOptions {
                        hflip_prob: 2.0,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "hflip_prob",
            ),
            (
                TrainSettings {
                    cache_boundary: true,
                    ..Default::default()
                },
                "cache_boundary",
            ),
        ] {
            match check(&s) {
                Err(TrainError::BadOption { option: o, .. }) => assert_eq!(o, option),
                other => panic!("{option}: {other:?}"),
            }
        }
        assert!(check(&TrainSettings::default()).is_ok());
        assert_eq!(resize_px(224, 0.875), 256);
        assert_eq!(resize_px(64, 1.0), 64);
    }
}
