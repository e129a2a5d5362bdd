//! The steps of a run before its first epoch: the run folder's state, the weights, the data,
//! what trains, the cached inputs, run.json and the resume checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use lennonnet_core::ContentId;
use lennonnet_records::{Balance, Strategy, TrainSettings};

use super::{
    Inputs, Item, TrainOptions, TrainOutcome, default_partial_prefixes, epoch_records,
    frozen_layers, hash_file, resize_px,
};
use crate::augment::Normalise;
use crate::data::cache::PixelCache;
use crate::data::{Sample, SnapshotData};
use crate::device;
use crate::features::{self, FeatureKey};
use crate::models::{Arch, Classifier, PretrainedCfg};
use crate::optim::AdamW;
use crate::report::TrainReporter;
use crate::run::{
    DataRecord, PreprocessRecord, RESUME, ResumeState, RunDir, RunRecord, RunStatus,
    TrainableRecord, WeightsRecord,
};
use crate::train_error::{TrainError, TrainResult};
use crate::weights::{HeadPolicy, WeightsSource};

/// The run folder's record, if a run may continue in it; `Break` with the outcome when the run
/// has already finished.
pub(super) fn existing_run(
    run: &RunDir,
    resume: bool,
) -> TrainResult<ControlFlow<TrainOutcome, Option<RunRecord>>> {
    let existing = run.read_record()?;
    match (&existing, resume) {
        (Some(_), false) => Err(TrainError::RunExists {
            dir: run.dir.clone(),
        }),
        (None, true) => Err(TrainError::NothingToResume {
            dir: run.dir.clone(),
            reason: "no run.json".into(),
        }),
        (Some(rec), true) if rec.status == RunStatus::Finished => {
            tracing::info!(run = %run.dir.display(), "the run has already finished");
            Ok(ControlFlow::Break(TrainOutcome {
                run_dir: run.dir.clone(),
                epochs: epoch_records(run)?,
                record: rec.clone(),
                completed: true,
                already_finished: true,
            }))
        }
        _ => Ok(ControlFlow::Continue(existing)),
    }
}

/// Loads the settings' pretrained weights into `model`, with a new head at zero.
pub(super) fn load_weights(
    model: &mut Classifier,
    s: &TrainSettings,
    opts: &TrainOptions,
) -> TrainResult<Option<WeightsRecord>> {
    let Some(spec) = &s.weights else {
        return Ok(None);
    };
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
    Ok(Some(WeightsRecord {
        source: spec.clone(),
        path,
        blake3: hash,
        format: report
            .format
            .map(|f| f.name().to_string())
            .unwrap_or_default(),
        mapping: report.mapping.name().to_string(),
        reinitialised: report.reinitialised,
    }))
}

/// The run's images in the pixel cache, with their preprocessing.
pub(super) struct Prepared {
    pub pre: PretrainedCfg,
    pub input_px: usize,
    /// The cached square's side.
    pub side: usize,
    pub norm: Normalise,
    pub pixels: PixelCache,
    pub train: Vec<Item>,
    pub train_ids: Vec<ContentId>,
    pub val: Vec<Item>,
    pub val_ids: Vec<ContentId>,
    /// Images per class.
    pub train_counts: Vec<usize>,
    pub val_counts: Vec<usize>,
}

/// Decodes the snapshot's train and val images into the pixel cache (or opens it) and keeps
/// those that decoded.
pub(super) fn prepare_data(
    arch: Arch,
    s: &TrainSettings,
    opts: &TrainOptions,
    data: &SnapshotData,
    reporter: &dyn TrainReporter,
) -> TrainResult<Prepared> {
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
    let usable = |samples: &[Sample]| -> Vec<(Item, ContentId)> {
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
    Ok(Prepared {
        pre,
        input_px,
        side,
        norm,
        pixels,
        train,
        train_ids,
        val,
        val_ids,
        train_counts,
        val_counts,
    })
}

/// What trains, and how each class's loss is weighted.
pub(super) struct Trainable {
    pub frozen: Vec<String>,
    pub vars: Vec<(String, Var)>,
    pub params: usize,
    pub class_weights: Vec<f32>,
}

/// Freezes what the strategy freezes and weighs the classes as `balance` says.
pub(super) fn select_trainable(
    model: &mut Classifier,
    arch: Arch,
    s: &TrainSettings,
    prepared: &Prepared,
) -> TrainResult<Trainable> {
    let trainable_prefixes = match s.strategy {
        Strategy::Head => Vec::new(),
        Strategy::Partial if s.trainable_prefixes.is_empty() => default_partial_prefixes(arch),
        Strategy::Partial => s.trainable_prefixes.clone(),
        Strategy::Full => Vec::new(),
    };
    let frozen = match s.strategy {
        Strategy::Head => model.backbone_prefixes(),
        Strategy::Partial => frozen_layers(model, &trainable_prefixes)?,
        Strategy::Full => Vec::new(),
    };
    model.freeze(&frozen);
    let vars = model.trainable_vars();
    let params = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let n_classes = prepared.train_counts.len();
    let n_train = prepared.train.len();
    let class_weights: Vec<f32> = match s.balance {
        Balance::WeightedLoss => prepared
            .train_counts
            .iter()
            .map(|&n| {
                if n == 0 {
                    0.0
                } else {
                    (n_train as f64 / (n_classes as f64 * n as f64)) as f32
                }
            })
            .collect(),
        Balance::None | Balance::Sampler => vec![1.0; n_classes],
    };
    Ok(Trainable {
        frozen,
        vars,
        params,
        class_weights,
    })
}

/// The inputs the loop trains on: cached pooled features (`head`), cached activations at the
/// boundary (`partial` with `cache_boundary`), or images; and the cache's path.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_inputs(
    model: &Classifier,
    arch: Arch,
    s: &TrainSettings,
    opts: &TrainOptions,
    snapshot: &str,
    prepared: &Prepared,
    weights: Option<&WeightsRecord>,
    dtype: DType,
    reporter: &dyn TrainReporter,
) -> TrainResult<(Inputs, Option<PathBuf>)> {
    let p = prepared;
    let weights_key = weights
        .map(|w| w.blake3.clone())
        .unwrap_or_else(|| format!("random:{}", s.seed));
    // What a feature or boundary cache depends on; `boundary` names the cut, if any.
    let cache_key = |boundary| FeatureKey {
        format_version: features::FORMAT_VERSION,
        snapshot,
        model: arch.name(),
        weights: weights_key.clone(),
        input_px: p.input_px,
        cache_px: p.side,
        mean: p.pre.mean,
        std: p.pre.std,
        dtype: format!("{dtype:?}"),
        views: s.feature_views,
        augment: (s.feature_views > 1).then_some((&s.augment, s.seed)),
        train: &p.train_ids,
        val: &p.val_ids,
        boundary,
    };
    let train_slots: Vec<usize> = p.train.iter().map(|x| x.slot).collect();
    let val_slots: Vec<usize> = p.val.iter().map(|x| x.slot).collect();
    if s.strategy == Strategy::Head {
        let key = cache_key(None);
        let set = features::open_or_build(
            &opts.cache_dir,
            &key,
            model,
            &p.pixels,
            &train_slots,
            &val_slots,
            s.batch_size.max(16),
            opts.loader,
            p.norm,
            reporter,
        )?;
        let path = set.path.clone();
        return Ok((Inputs::Features(std::sync::Arc::new(set)), Some(path)));
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
            model,
            &p.pixels,
            &train_slots,
            &val_slots,
            s.batch_size.max(16),
            opts.loader,
            p.norm,
            reporter,
        )?;
        let path = set.path.clone();
        let inputs = Inputs::Boundary {
            set: std::sync::Arc::new(set),
            at: boundary.index,
        };
        return Ok((inputs, Some(path)));
    }
    Ok((Inputs::Pixels, None))
}

/// What run.json is made of.
pub(super) struct RecordParts<'a> {
    pub run: &'a RunDir,
    pub data: &'a SnapshotData,
    pub arch: Arch,
    pub s: &'a TrainSettings,
    pub weights: Option<WeightsRecord>,
    pub prepared: &'a Prepared,
    pub trainable: &'a Trainable,
    pub feature_cache: Option<PathBuf>,
    pub model: &'a Classifier,
    pub device: &'a Device,
    pub dtype: DType,
}

/// run.json of a run that starts (or resumes).
pub(super) fn run_record(parts: RecordParts<'_>) -> RunRecord {
    let RecordParts {
        run,
        data,
        arch,
        s,
        weights,
        prepared: p,
        trainable,
        feature_cache,
        model,
        device,
        dtype,
    } = parts;
    let names = |counts: &[usize]| -> BTreeMap<String, usize> {
        data.classes
            .iter()
            .cloned()
            .zip(counts.iter().copied())
            .collect()
    };
    RunRecord {
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
            input_px: p.input_px,
            resize_px: p.side,
            crop_pct: p.pre.crop_pct,
            mean: p.pre.mean,
            std: p.pre.std,
            interpolation: p.pre.interpolation.to_string(),
        },
        data: DataRecord {
            train: p.train.len(),
            val: p.val.len(),
            train_per_class: names(&p.train_counts),
            val_per_class: names(&p.val_counts),
            class_weights: trainable.class_weights.clone(),
            failed: p
                .pixels
                .failed()
                .iter()
                .filter(|(id, _)| data.train.iter().chain(&data.val).any(|x| x.id == **id))
                .map(|(id, r)| (id.to_string(), r.clone()))
                .collect(),
            pixel_cache: p.pixels.dir().to_path_buf(),
            feature_cache,
        },
        trainable: TrainableRecord {
            params: trainable.params,
            tensors: trainable.vars.len(),
            frozen: trainable.frozen.clone(),
            num_features: model.num_features(),
        },
        device: device::device_name(device),
        dtype: format!("{dtype:?}").to_lowercase(),
        backend: model.backend().name().to_string(),
        versions: crate::run::versions(),
        threshold: None,
        result: None,
    }
}

/// The loop's position: from the resume checkpoint (restoring the model and the optimiser), or
/// the start.
pub(super) fn resume_state(
    run: &RunDir,
    resume: bool,
    device: &Device,
    model: &mut Classifier,
    optimizer: &mut AdamW,
) -> TrainResult<ResumeState> {
    // A run killed after run.json was written but before its first checkpoint (during the
    // first epoch, with checkpoints at epoch ends) committed nothing: it starts over from its
    // first step, which gives what an uninterrupted run gives.
    let resume_from_checkpoint = resume && run.path(RESUME).exists();
    if resume && !resume_from_checkpoint {
        tracing::info!(run = %run.dir.display(), "no checkpoint yet: the run starts over from its first step");
    }
    if !resume_from_checkpoint {
        return Ok(ResumeState::start());
    }
    let (mut tensors, state) = run.read_resume(device)?;
    let optim: HashMap<String, Tensor> = tensors
        .iter()
        .filter(|(k, _)| k.starts_with("optim."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tensors.retain(|k, _| !k.starts_with("optim."));
    model.load_tensors(
        &run.path(RESUME),
        tensors.into_iter().collect(),
        HeadPolicy::Require,
    )?;
    optimizer
        .load_state(&optim, state.global_step)
        .map_err(|reason| TrainError::Corrupt {
            path: run.path(RESUME),
            reason,
        })?;
    tracing::info!(epoch = state.epoch, step = state.global_step, "resuming");
    Ok(state)
}
