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

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::features::{self, BoundarySet, FeatureKey, FeatureSet};
use crate::metrics::cross_entropy;
use crate::models::{Arch, Classifier, ModelOptions};
use crate::optim::{AdamW, AdamWOptions};
use crate::params::under_prefix;
use crate::report::TrainReporter;
use crate::rng;
use crate::run::{
    BEST, Best, DataRecord, EndRecord, EpochRecord, EpochSums, LAST, METRICS, MetricsLog,
    MetricsRecord, PreprocessRecord, ResumeState, RunDir, RunRecord, RunResult, RunStatus,
    StepRecord, StopReason, Timing, TrainableRecord, WeightsRecord,
};
use crate::schedule::LrSchedule;
use crate::train_error::{TrainError, TrainResult};
use crate::weights::{HeadPolicy, HubOptions, WeightsSource};
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

/// The inputs the steps are made of.
enum Inputs {
    Features(Arc<FeatureSet>),
    /// The cached activations at the input of block `at`.
    Boundary {
        set: Arc<BoundarySet>,
        at: usize,
    },
    Pixels,
}

/// Validation figures.
struct Validation {
    loss: f64,
    probs: Vec<Vec<f32>>,
    confusion: Confusion,
}

/// Everything the loop needs, in one place so that the loader's consumer can borrow it.
struct Trainer<'a> {
    opts: &'a TrainOptions,
    s: &'a TrainSettings,
    reporter: &'a dyn TrainReporter,
    model: Classifier,
    optimizer: AdamW,
    schedule: LrSchedule,
    class_weights: Vec<f32>,
    n_classes: usize,
    device: Device,
    pixels: Arc<PixelCache>,
    input_px: usize,
    norm: Normalise,
    train: Vec<Item>,
    val: Vec<Item>,
    inputs: Inputs,
    run: RunDir,
    log: MetricsLog,
    state: ResumeState,
    steps_per_epoch: usize,
    started: Instant,
    epoch_started: Instant,
}

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

    let existing = run.read_record()?;
    match (&existing, opts.resume) {
        (Some(_), false) => {
            return Err(TrainError::RunExists {
                dir: run.dir.clone(),
            });
        }
        (None, true) => {
            return Err(TrainError::NothingToResume {
                dir: run.dir.clone(),
                reason: "no run.json".into(),
            });
        }
        (Some(rec), true) if rec.status == RunStatus::Finished => {
            tracing::info!(run = %run.dir.display(), "the run has already finished");
            return Ok(TrainOutcome {
                run_dir: run.dir.clone(),
                epochs: epoch_records(&run)?,
                record: rec.clone(),
                completed: true,
                already_finished: true,
            });
        }
        _ => {}
    }

    // The model and its weights.
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
    let weights = match &s.weights {
        None => None,
        Some(spec) => {
            let source = WeightsSource::parse(spec)?;
            let path = source.resolve(&opts.hub)?;
            let hash = hash_file(&path)?;
            let report = model.load_weights(&path, HeadPolicy::Reinit)?;
            // A new head on pretrained features starts at zero: every class at the same
            // probability, so the first steps fit the head instead of undoing a random one
            // (timm's EfficientNet init, uniform ±1/√classes, is ±0.7 for two classes).
            for name in &report.reinitialised {
                if let Some(var) = model.store().get(name) {
                    var.set(&var.zeros_like()?)?;
                }
            }
            tracing::info!(weights = %spec, loaded = report.loaded, reinitialised = ?report.reinitialised, "weights loaded");
            Some(WeightsRecord {
                source: spec.clone(),
                path,
                blake3: hash,
                format: report
                    .format
                    .map(|f| f.name().to_string())
                    .unwrap_or_default(),
                mapping: report.mapping.name().to_string(),
                reinitialised: report.reinitialised,
            })
        }
    };
    if let Some(rec) = &existing {
        check_resumable(&run, rec, s, &data.snapshot, weights.as_ref())?;
    }

    // Preprocessing and the pixel cache.
    let pre = arch.pretrained_cfg();
    let input_px = s.input_px.unwrap_or(pre.input_size);
    let side = resize_px(input_px, pre.crop_pct);
    let norm = Normalise {
        mean: pre.mean,
        std: pre.std,
    };
    let ids: Vec<_> = data.train.iter().chain(&data.val).map(|x| x.id).collect();
    let pixels = PixelCache::open_or_build(
        &opts.cache_dir,
        &data.snapshot,
        &ids,
        &data.objects_dir,
        side,
        pre.interpolation,
        reporter,
    )?;
    let usable = |samples: &[crate::data::Sample]| -> Vec<(Item, lennonnet_core::ContentId)> {
        samples
            .iter()
            .filter_map(|x| {
                pixels.slot(&x.id).map(|slot| {
                    (
                        Item {
                            slot,
                            class: x.class,
                        },
                        x.id,
                    )
                })
            })
            .collect()
    };
    let (train, train_ids): (Vec<Item>, Vec<_>) = usable(&data.train).into_iter().unzip();
    let (val, val_ids): (Vec<Item>, Vec<_>) = usable(&data.val).into_iter().unzip();
    for (split, items) in [("train", &train), ("val", &val)] {
        if items.is_empty() {
            return Err(TrainError::NoImages {
                snapshot: data.snapshot.clone(),
                split,
            });
        }
    }
    let n_classes = data.classes.len();
    let count = |items: &[Item]| {
        let mut c = vec![0usize; n_classes];
        for x in items {
            c[x.class] += 1;
        }
        c
    };
    let (train_counts, val_counts) = (count(&train), count(&val));

    // What trains.
    let trainable_prefixes = match s.strategy {
        Strategy::Head => Vec::new(),
        Strategy::Partial if s.trainable_prefixes.is_empty() => default_partial_prefixes(arch),
        Strategy::Partial => s.trainable_prefixes.clone(),
        Strategy::Full => Vec::new(),
    };
    let frozen = match s.strategy {
        Strategy::Head => model.backbone_prefixes(),
        Strategy::Partial => frozen_layers(&model, &trainable_prefixes)?,
        Strategy::Full => Vec::new(),
    };
    model.freeze(&frozen);
    let trainable = model.trainable_vars();
    let trainable_params = trainable.iter().map(|(_, v)| v.elem_count()).sum();
    let class_weights: Vec<f32> = match s.balance {
        Balance::WeightedLoss => train_counts
            .iter()
            .map(|&n| {
                if n == 0 {
                    0.0
                } else {
                    (train.len() as f64 / (n_classes as f64 * n as f64)) as f32
                }
            })
            .collect(),
        Balance::None | Balance::Sampler => vec![1.0; n_classes],
    };

    let weights_key = weights
        .as_ref()
        .map(|w| w.blake3.clone())
        .unwrap_or_else(|| format!("random:{}", s.seed));
    // What a feature or boundary cache depends on; `boundary` names the cut, if any.
    let cache_key = |boundary| FeatureKey {
        format_version: features::FORMAT_VERSION,
        snapshot: &data.snapshot,
        model: arch.name(),
        weights: weights_key.clone(),
        input_px,
        cache_px: side,
        mean: pre.mean,
        std: pre.std,
        dtype: format!("{dtype:?}"),
        views: s.feature_views,
        augment: (s.feature_views > 1).then_some((&s.augment, s.seed)),
        train: &train_ids,
        val: &val_ids,
        boundary,
    };
    let train_slots: Vec<usize> = train.iter().map(|x| x.slot).collect();
    let val_slots: Vec<usize> = val.iter().map(|x| x.slot).collect();
    let mut inputs = Inputs::Pixels;
    let mut feature_cache = None;
    if s.strategy == Strategy::Head {
        let key = cache_key(None);
        let set = features::open_or_build(
            &opts.cache_dir,
            &key,
            &model,
            &pixels,
            &train_slots,
            &val_slots,
            s.batch_size.max(16),
            opts.loader,
            norm,
            reporter,
        )?;
        feature_cache = Some(set.path.clone());
        inputs = Inputs::Features(Arc::new(set));
    }
    if s.strategy == Strategy::Partial && s.cache_boundary {
        let boundary = model.boundary()?;
        tracing::info!(boundary = %boundary.name, index = boundary.index, "caching the frozen layers' output");
        let key = cache_key(Some((
            boundary.index,
            &boundary.name,
            model.backend().name(),
        )));
        let set = features::open_or_build_boundary(
            &opts.cache_dir,
            &key,
            &model,
            &pixels,
            &train_slots,
            &val_slots,
            s.batch_size.max(16),
            opts.loader,
            norm,
            reporter,
        )?;
        feature_cache = Some(set.path.clone());
        inputs = Inputs::Boundary {
            set: Arc::new(set),
            at: boundary.index,
        };
    }

    let names = |counts: &[usize]| -> BTreeMap<String, usize> {
        data.classes
            .iter()
            .cloned()
            .zip(counts.iter().copied())
            .collect()
    };
    let record = RunRecord {
        format_version: crate::run::FORMAT_VERSION,
        name: run
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        status: RunStatus::Running,
        snapshot: data.snapshot.clone(),
        classes: data.classes.clone(),
        positive_class: data.classes[0].clone(),
        model: arch.name().to_string(),
        weights,
        strategy: s.strategy.as_str().to_string(),
        seed: s.seed,
        config: s.clone(),
        preprocess: PreprocessRecord {
            input_px,
            resize_px: side,
            crop_pct: pre.crop_pct,
            mean: pre.mean,
            std: pre.std,
            interpolation: pre.interpolation.to_string(),
        },
        data: DataRecord {
            train: train.len(),
            val: val.len(),
            train_per_class: names(&train_counts),
            val_per_class: names(&val_counts),
            class_weights: class_weights.clone(),
            failed: pixels
                .failed()
                .iter()
                .filter(|(id, _)| data.train.iter().chain(&data.val).any(|x| x.id == **id))
                .map(|(id, r)| (id.to_string(), r.clone()))
                .collect(),
            pixel_cache: pixels.dir().to_path_buf(),
            feature_cache,
        },
        trainable: TrainableRecord {
            params: trainable_params,
            tensors: trainable.len(),
            frozen,
            num_features: model.num_features(),
        },
        device: device::device_name(&device),
        dtype: format!("{dtype:?}").to_lowercase(),
        backend: model.backend().name().to_string(),
        versions: crate::run::versions(),
        threshold: None,
        result: None,
    };
    std::fs::create_dir_all(&run.dir).map_err(TrainError::io("create", &run.dir))?;
    if existing.is_none() {
        run.write_record(&record)?;
    }

    let mut optimizer = AdamW::new(
        trainable,
        AdamWOptions {
            weight_decay: s.weight_decay,
            ..Default::default()
        },
    )?;
    // A run killed after run.json was written but before its first checkpoint (during the
    // first epoch, with checkpoints at epoch ends) committed nothing: it starts over from its
    // first step, which gives what an uninterrupted run gives.
    let resume_from_checkpoint = opts.resume && run.path(crate::run::RESUME).exists();
    if opts.resume && !resume_from_checkpoint {
        tracing::info!(run = %run.dir.display(), "no checkpoint yet: the run starts over from its first step");
    }
    let state = if resume_from_checkpoint {
        let (mut tensors, state) = run.read_resume(&device)?;
        let optim: HashMap<String, Tensor> = tensors
            .iter()
            .filter(|(k, _)| k.starts_with("optim."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tensors.retain(|k, _| !k.starts_with("optim."));
        model.load_tensors(
            &run.path(crate::run::RESUME),
            tensors.into_iter().collect(),
            HeadPolicy::Require,
        )?;
        optimizer
            .load_state(&optim, state.global_step)
            .map_err(|reason| TrainError::Corrupt {
                path: run.path(crate::run::RESUME),
                reason,
            })?;
        tracing::info!(epoch = state.epoch, step = state.global_step, "resuming");
        state
    } else {
        ResumeState::start()
    };
    let log = MetricsLog::open(&run.path(METRICS), state.metrics_bytes)?;

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
        class_weights,
        n_classes,
        device,
        pixels: Arc::new(pixels),
        input_px,
        norm,
        train,
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
    if !completed {
        return Ok(TrainOutcome {
            run_dir: t.run.dir.clone(),
            epochs: epoch_records(&t.run)?,
            record,
            completed: false,
            already_finished: false,
        });
    }
    let record = t.finish(record)?;
    Ok(TrainOutcome {
        run_dir: t.run.dir.clone(),
        epochs: epoch_records(&t.run)?,
        record,
        completed: true,
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

impl Trainer<'_> {
    /// Runs the remaining epochs. False when stopped by the testing hook.
    fn epochs(&mut self) -> TrainResult<bool> {
        while self.state.done.is_none() {
            let epoch = self.state.epoch;
            let classes: Vec<usize> = self.train.iter().map(|x| x.class).collect();
            let order = epoch_order(self.s.seed, epoch, &classes, self.n_classes, self.s.balance);
            let batches: Vec<Vec<usize>> = order
                .chunks(self.s.batch_size)
                .take(self.steps_per_epoch)
                .map(<[usize]>::to_vec)
                .collect();
            if self.state.step_in_epoch == 0 {
                self.state.sums = EpochSums::default();
            }
            self.epoch_started = Instant::now();
            self.reporter.start("train", Some(batches.len() as u64));
            self.reporter
                .advance("train", self.state.step_in_epoch as u64);
            let finished = self.run_steps(epoch, &batches)?;
            self.reporter.finish("train");
            if !finished {
                return Ok(false);
            }
            self.end_epoch(epoch)?;
        }
        Ok(true)
    }

    /// The steps of `epoch` from `state.step_in_epoch` on. False when stopped by the hook.
    fn run_steps(&mut self, epoch: usize, batches: &[Vec<usize>]) -> TrainResult<bool> {
        let start = self.state.step_in_epoch;
        let mut stopped = false;
        match &self.inputs {
            Inputs::Features(set) => {
                let set = Arc::clone(set);
                for (i, batch) in batches.iter().enumerate().skip(start) {
                    let x = self.feature_batch(&set, epoch, i, batch)?;
                    let labels: Vec<u32> =
                        batch.iter().map(|&p| self.train[p].class as u32).collect();
                    if self.step(epoch, i, batches.len(), &x, &labels)?.is_break() {
                        stopped = true;
                        break;
                    }
                }
            }
            Inputs::Boundary { set, .. } => {
                let set = Arc::clone(set);
                let n_train = self.train.len();
                for (i, batch) in batches.iter().enumerate().skip(start) {
                    let rows: Vec<u32> = batch
                        .iter()
                        .enumerate()
                        .map(|(k, &p)| {
                            (self.view_choice(set.views, epoch, i, k) * n_train + p) as u32
                        })
                        .collect();
                    let x = set.train_rows(&rows, self.model.dtype(), &self.device)?;
                    let labels: Vec<u32> =
                        batch.iter().map(|&p| self.train[p].class as u32).collect();
                    if self.step(epoch, i, batches.len(), &x, &labels)?.is_break() {
                        stopped = true;
                        break;
                    }
                }
            }
            Inputs::Pixels => {
                let (px, side) = (self.input_px, self.pixels.side());
                let seed = self.s.seed;
                let augment_opts = self.s.augment.clone();
                let norm = self.norm;
                let train = self.train.clone();
                let pixels = Arc::clone(&self.pixels);
                for_each_batch(
                    self.opts.loader,
                    start,
                    batches.len(),
                    |b| {
                        let batch = &batches[b];
                        let mut images = vec![0f32; batch.len() * 3 * px * px];
                        let mut buf = vec![0u8; pixels.image_bytes()];
                        for (k, (&p, dst)) in batch
                            .iter()
                            .zip(images.chunks_exact_mut(3 * px * px))
                            .enumerate()
                        {
                            pixels.read(train[p].slot, &mut buf)?;
                            let position = (b * batches[0].len() + k) as u64;
                            let mut r = rng::stream(seed, "augment", &[epoch as u64, position]);
                            augment(&buf, side, px, &augment_opts, &mut r, &norm, dst);
                        }
                        let labels: Vec<u32> =
                            batch.iter().map(|&p| train[p].class as u32).collect();
                        Ok((images, labels))
                    },
                    |i, (images, labels)| {
                        let x = Tensor::from_vec(images, (labels.len(), 3, px, px), &self.device)?;
                        let flow = self.step(epoch, i, batches.len(), &x, &labels)?;
                        stopped = flow.is_break();
                        Ok(flow)
                    },
                )?;
            }
        }
        Ok(!stopped)
    }

    /// The features of a training batch, each image's view drawn from its position.
    fn feature_batch(
        &self,
        set: &FeatureSet,
        epoch: usize,
        batch_index: usize,
        batch: &[usize],
    ) -> TrainResult<Tensor> {
        let views = set.train.len();
        let mut rows = Vec::with_capacity(batch.len() * set.dim);
        for (k, &p) in batch.iter().enumerate() {
            let view = self.view_choice(views, epoch, batch_index, k);
            rows.extend_from_slice(&set.train[view][p * set.dim..(p + 1) * set.dim]);
        }
        Ok(
            Tensor::from_vec(rows, (batch.len(), set.dim), &self.device)?
                .to_dtype(self.model.dtype())?,
        )
    }

    /// The cached view that image `k` of batch `batch_index` of `epoch` trains on.
    fn view_choice(&self, views: usize, epoch: usize, batch_index: usize, k: usize) -> usize {
        if views > 1 {
            let position = (batch_index * self.s.batch_size + k) as u64;
            let mut r = rng::stream(self.s.seed, "view-choice", &[epoch as u64, position]);
            rng::below(&mut r, views as u64) as usize
        } else {
            0
        }
    }

    /// One optimiser step on a batch; breaks when the testing hook says so.
    fn step(
        &mut self,
        epoch: usize,
        index: usize,
        epoch_steps: usize,
        x: &Tensor,
        labels: &[u32],
    ) -> TrainResult<ControlFlow<()>> {
        let step_started = Instant::now();
        let step = self.state.global_step;
        let lr = self.schedule.at(step);
        self.model
            .set_rng_seed(rng::seed(self.s.seed, "dropout", &[step]));
        let logits = match self.inputs {
            Inputs::Features(_) => self.model.head_t(x, true)?,
            Inputs::Boundary { at, .. } => self.model.forward_from_t(x, at, true)?,
            Inputs::Pixels => self.model.forward_t(x, true)?,
        };
        let loss = cross_entropy(&logits, labels, &self.class_weights, self.s.label_smoothing)?;
        let mut grads = loss.backward()?;
        let grad_norm = self
            .optimizer
            .clip_grad_norm(&mut grads, self.s.grad_clip_norm)?;
        self.optimizer.step(&grads, lr)?;
        let loss = loss.to_scalar::<f32>()? as f64;
        let correct = probabilities(&logits)?
            .iter()
            .zip(labels)
            .filter(|(p, y)| argmax(p) == **y as usize)
            .count() as u64;
        let n = labels.len() as u64;
        self.state.global_step += 1;
        self.state.step_in_epoch = index + 1;
        let sums = &mut self.state.sums;
        sums.loss += loss * n as f64;
        sums.correct += correct;
        sums.images += n;
        sums.steps += 1;
        let secs = step_started.elapsed().as_secs_f64();
        let record = StepRecord {
            epoch,
            step: self.state.global_step,
            epoch_step: index + 1,
            epoch_steps,
            loss,
            accuracy: correct as f64 / n as f64,
            lr,
            grad_norm,
            time: Timing {
                elapsed_secs: self.started.elapsed().as_secs_f64(),
                secs,
                images_per_sec: n as f64 / secs.max(1e-9),
            },
        };
        self.log.append(&MetricsRecord::Step(record.clone()))?;
        self.reporter.step(&record);
        self.reporter.advance("train", 1);
        let every = self.opts.checkpoint_every_steps;
        if every > 0 && self.state.global_step % every == 0 && index + 1 < epoch_steps {
            self.checkpoint()?;
        }
        if self.opts.stop_after_steps == Some(self.state.global_step) {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Writes last.safetensors and the resume checkpoint at the current position.
    fn checkpoint(&mut self) -> TrainResult<()> {
        self.state.metrics_bytes = self.log.sync()?;
        self.model.save_safetensors(&self.run.path(LAST))?;
        let mut tensors: Vec<(String, Tensor)> = self.model.store().tensors().into_iter().collect();
        tensors.extend(self.optimizer.state_tensors());
        self.run.write_resume(&tensors, &self.state)
    }

    /// Validation, best checkpoint, epoch record, early stopping, checkpoint.
    fn end_epoch(&mut self, epoch: usize) -> TrainResult<()> {
        let train_secs = self.epoch_started.elapsed().as_secs_f64();
        let v = self.validate()?;
        let improved = self.state.best.is_none_or(|b| v.loss < b.val_loss);
        if improved {
            self.state.best = Some(Best {
                epoch,
                val_loss: v.loss,
            });
            self.state.epochs_since_best = 0;
            self.model.save_safetensors(&self.run.path(BEST))?;
        } else {
            self.state.epochs_since_best += 1;
        }
        let sums = self.state.sums;
        let last_lr = self.schedule.at(self.state.global_step.saturating_sub(1));
        let record = EpochRecord {
            epoch,
            steps: sums.steps,
            lr: last_lr,
            train_loss: sums.loss / sums.images.max(1) as f64,
            train_accuracy: sums.correct as f64 / sums.images.max(1) as f64,
            val_loss: v.loss,
            val_accuracy: v.confusion.accuracy(),
            val_balanced_accuracy: v.confusion.balanced_accuracy(),
            best: improved,
            time: Timing {
                elapsed_secs: self.started.elapsed().as_secs_f64(),
                secs: self.epoch_started.elapsed().as_secs_f64(),
                images_per_sec: sums.images as f64 / train_secs.max(1e-9),
            },
        };
        self.log.append(&MetricsRecord::Epoch(record.clone()))?;
        self.reporter.epoch(&record);
        tracing::debug!(
            epoch,
            train_loss = format!("{:.4}", record.train_loss),
            val_loss = format!("{:.4}", record.val_loss),
            val_accuracy = format!("{:.4}", record.val_accuracy),
            best = improved,
            "epoch done"
        );
        if epoch >= self.s.epochs {
            self.state.done = Some(StopReason::Epochs);
        } else if self.state.epochs_since_best >= self.s.patience_epochs {
            tracing::info!(
                epoch,
                patience = self.s.patience_epochs,
                "early stopping: the validation loss stopped improving"
            );
            self.state.done = Some(StopReason::EarlyStopping);
        }
        self.state.epoch = epoch + 1;
        self.state.step_in_epoch = 0;
        self.state.sums = EpochSums::default();
        self.checkpoint()
    }

    /// Loss, probabilities and confusion of the model on the val split.
    fn validate(&self) -> TrainResult<Validation> {
        let logits = match &self.inputs {
            Inputs::Features(set) => {
                let x = Tensor::from_slice(&set.val, (self.val.len(), set.dim), &self.device)?
                    .to_dtype(self.model.dtype())?;
                self.model.head_t(&x, false)?.to_dtype(DType::F32)?
            }
            Inputs::Boundary { set, at } => {
                let batch = self.s.batch_size;
                let n = self.val.len();
                let mut parts = Vec::with_capacity(n.div_ceil(batch));
                for start in (0..n).step_by(batch) {
                    let end = (start + batch).min(n);
                    let x = set.val_rows(start, end, self.model.dtype(), &self.device)?;
                    parts.push(
                        self.model
                            .forward_from_t(&x, *at, false)?
                            .to_dtype(DType::F32)?,
                    );
                }
                Tensor::cat(&parts, 0)?
            }
            Inputs::Pixels => {
                let (px, side) = (self.input_px, self.pixels.side());
                let batch = self.s.batch_size;
                let n_batches = self.val.len().div_ceil(batch);
                let mut parts = Vec::with_capacity(n_batches);
                self.reporter.start("val", Some(self.val.len() as u64));
                for_each_batch(
                    self.opts.loader,
                    0,
                    n_batches,
                    |b| {
                        let items = &self.val[b * batch..((b + 1) * batch).min(self.val.len())];
                        let mut images = vec![0f32; items.len() * 3 * px * px];
                        let mut buf = vec![0u8; self.pixels.image_bytes()];
                        for (x, dst) in items.iter().zip(images.chunks_exact_mut(3 * px * px)) {
                            self.pixels.read(x.slot, &mut buf)?;
                            centre_crop(&buf, side, px, &self.norm, dst);
                        }
                        Ok((items.len(), images))
                    },
                    |_, (n, images)| {
                        let x = Tensor::from_vec(images, (n, 3, px, px), &self.device)?;
                        parts.push(self.model.forward_t(&x, false)?.to_dtype(DType::F32)?);
                        self.reporter.advance("val", n as u64);
                        Ok(ControlFlow::Continue(()))
                    },
                )?;
                self.reporter.finish("val");
                Tensor::cat(&parts, 0)?
            }
        };
        let labels: Vec<u32> = self.val.iter().map(|x| x.class as u32).collect();
        let loss = cross_entropy(
            &logits,
            &labels,
            &self.class_weights,
            self.s.label_smoothing,
        )?
        .to_scalar::<f32>()? as f64;
        let probs = probabilities(&logits)?;
        let mut confusion = Confusion::new(self.n_classes);
        for (p, &y) in probs.iter().zip(&labels) {
            confusion.add(y as usize, argmax(p));
        }
        Ok(Validation {
            loss,
            probs,
            confusion,
        })
    }

    /// Reloads the best model, tunes the threshold, writes the end record and run.json.
    fn finish(&mut self, mut record: RunRecord) -> TrainResult<RunRecord> {
        let best = self.state.best.expect("at least one epoch ran");
        let stop_reason = self.state.done.expect("the epochs are over");
        self.model
            .load_weights(&self.run.path(BEST), HeadPolicy::Require)?;
        let v = self.validate()?;
        let val_at_threshold: Option<BinaryScores> = (self.n_classes == 2).then(|| {
            let p_pos: Vec<f32> = v.probs.iter().map(|p| p[0]).collect();
            let is_pos: Vec<bool> = self.val.iter().map(|x| x.class == 0).collect();
            tune_threshold(&p_pos, &is_pos, self.s.threshold_metric)
        });
        let result = RunResult {
            stop_reason,
            epochs_run: self.state.epoch - 1,
            best_epoch: best.epoch,
            best_val_loss: best.val_loss,
            val_accuracy: v.confusion.accuracy(),
            threshold_metric: self.s.threshold_metric,
            val_at_threshold,
        };
        self.log.append(&MetricsRecord::End(EndRecord {
            result: result.clone(),
            time: Timing {
                elapsed_secs: self.started.elapsed().as_secs_f64(),
                ..Default::default()
            },
        }))?;
        self.log.sync()?;
        record.threshold = val_at_threshold.map(|s| s.threshold);
        record.result = Some(result);
        record.status = RunStatus::Finished;
        self.run.write_record(&record)?;
        Ok(record)
    }
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
