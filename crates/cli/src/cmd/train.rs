//! `lennonnet train`: a snapshot → a run folder with checkpoints, metrics and a tuned threshold.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lennonnet_config::{BalancePolicy, TrainConfig, TrainStrategy};
use lennonnet_core::Progress;
use lennonnet_train::augment::AugmentOptions;
use lennonnet_train::data::loader::LoaderOptions;
use lennonnet_train::metrics::ThresholdMetric;
use lennonnet_train::report::summary;
use lennonnet_train::run::{EpochRecord, StepRecord};
use lennonnet_train::trainer::Balance;
use lennonnet_train::{Strategy, TrainOptions, TrainReporter, TrainSettings};

use super::{load_config, stdout_error};
use crate::cli::{StrategyArg, TrainArgs};

pub fn run(args: TrainArgs, quiet: bool) -> anyhow::Result<()> {
    lennonnet_train::tune_allocator();
    let config = load_config(&args.config.config)?;
    let base = args
        .config
        .config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let relative_to_config = |p: &Path| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.to_path_buf()
        }
    };
    let t = &config.train;
    let runs_dir = args
        .runs_dir
        .clone()
        .unwrap_or_else(|| relative_to_config(&t.runs_dir));
    let cache_dir = t
        .cache_dir
        .as_deref()
        .map(relative_to_config)
        .unwrap_or_else(|| runs_dir.join("cache"));
    // Flags are relative to the working directory, config keys to the config file.
    let weights = match args.weights.as_deref() {
        Some("none") => None,
        Some(w) => Some(w.to_string()),
        None => t.weights.as_deref().map(|w| {
            if w.starts_with("hub:") {
                w.to_string()
            } else {
                relative_to_config(Path::new(w)).display().to_string()
            }
        }),
    };
    let settings = settings(&args, t, weights);

    let snapshots = config.dataset_dir().join("snapshots");
    let snapshot = lennonnet_split::snapshot::open(&snapshots, &args.snapshot)
        .with_context(|| format!("cannot open snapshot `{}`", args.snapshot))?;
    let run_name = args.run.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-{}-s{}",
            settings.model,
            settings.strategy.as_str(),
            &snapshot.id().to_string()[..8],
            settings.seed
        )
    });
    lennonnet_core::validate_name(&run_name)
        .with_context(|| format!("bad run name `{run_name}`"))?;
    let run_dir = runs_dir.join(&run_name);
    let classes = config.classes.iter().map(|c| c.name.to_string()).collect();
    let opts = TrainOptions {
        classes,
        resume: args.resume,
        loader: LoaderOptions {
            threads: t.loader_threads as usize,
            prefetch_batches: t.prefetch_batches as usize,
        },
        checkpoint_every_steps: t.checkpoint_every_steps,
        ..TrainOptions::new(settings, run_dir.clone(), cache_dir)
    };
    tracing::info!(run = %run_dir.display(), snapshot = %snapshot.id(), model = %opts.settings.model, strategy = opts.settings.strategy.as_str(), "training");

    let bars = !args.no_progress && !quiet && std::io::stderr().is_terminal();
    let reporter: Box<dyn TrainReporter> = if bars {
        Box::new(Bars::new())
    } else {
        Box::new(EpochLog)
    };
    let outcome = lennonnet_train::train(&snapshot, &opts, reporter.as_ref())
        .with_context(|| format!("training {} failed", run_dir.display()))?;
    drop(reporter);
    point_latest(&runs_dir, &run_name);

    let text = if args.json {
        serde_json::to_string_pretty(&outcome.record)? + "\n"
    } else {
        let mut text = summary(&outcome.record, &outcome.epochs);
        if outcome.already_finished {
            text.push_str("(the run had already finished; nothing was trained)\n");
        }
        text.push_str(&format!("folder    {}\n", outcome.run_dir.display()));
        text
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn settings(args: &TrainArgs, t: &TrainConfig, weights: Option<String>) -> TrainSettings {
    let strategy = match args.strategy {
        Some(StrategyArg::Head) => Strategy::Head,
        Some(StrategyArg::Partial) => Strategy::Partial,
        Some(StrategyArg::Full) => Strategy::Full,
        None => match t.strategy {
            TrainStrategy::Head => Strategy::Head,
            TrainStrategy::Partial => Strategy::Partial,
            TrainStrategy::Full => Strategy::Full,
        },
    };
    let a = &t.augment;
    TrainSettings {
        model: args.model.clone().unwrap_or_else(|| t.model.clone()),
        weights,
        strategy,
        trainable_prefixes: t.trainable_prefixes.clone(),
        epochs: args.epochs.unwrap_or(t.epochs) as usize,
        batch_size: args.batch_size.unwrap_or(t.batch_size) as usize,
        input_px: args.input_px.or(t.input_px).map(|p| p as usize),
        seed: args.seed.unwrap_or(t.seed),
        learning_rate: t.learning_rate,
        weight_decay: t.weight_decay,
        warmup_epochs: t.warmup_epochs,
        final_lr_fraction: t.final_lr_fraction,
        label_smoothing: t.label_smoothing,
        grad_clip_norm: (t.grad_clip_norm > 0.0).then_some(t.grad_clip_norm),
        balance: match t.balance {
            BalancePolicy::None => Balance::None,
            BalancePolicy::WeightedLoss => Balance::WeightedLoss,
            BalancePolicy::Sampler => Balance::Sampler,
        },
        patience_epochs: t.patience_epochs as usize,
        threshold_metric: match t.threshold_metric {
            lennonnet_config::ThresholdMetric::BalancedAccuracy => {
                ThresholdMetric::BalancedAccuracy
            }
            lennonnet_config::ThresholdMetric::F1 => ThresholdMetric::F1,
        },
        feature_views: t.feature_views as usize,
        cache_boundary: t.cache_boundary,
        augment: AugmentOptions {
            enabled: a.enabled,
            crop_scale_min: a.crop_scale_min,
            crop_ratio_min: a.crop_ratio_min,
            crop_ratio_max: a.crop_ratio_max,
            hflip_prob: a.hflip_prob,
            brightness: a.brightness,
            contrast: a.contrast,
            saturation: a.saturation,
            grayscale_prob: a.grayscale_prob,
        },
        device: args.device.clone().unwrap_or_else(|| t.device.clone()),
        bf16: args.bf16 || t.bf16,
    }
}

/// Points `<runs_dir>/latest` (a symbolic link) at the run, replacing an older link. A failure
/// is only logged: the run itself is complete.
fn point_latest(runs_dir: &Path, run_name: &str) {
    let link = runs_dir.join("latest");
    let tmp: PathBuf = runs_dir.join(format!(".latest.tmp-{}", std::process::id()));
    let result =
        std::os::unix::fs::symlink(run_name, &tmp).and_then(|()| std::fs::rename(&tmp, &link));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(link = %link.display(), error = %e, "cannot point runs/latest at the run");
    }
}

/// Without bars: a log line per epoch.
struct EpochLog;

impl Progress for EpochLog {}

impl TrainReporter for EpochLog {
    fn epoch(&self, r: &EpochRecord) {
        tracing::info!(
            epoch = r.epoch,
            train_loss = format!("{:.4}", r.train_loss),
            train_accuracy = format!("{:.4}", r.train_accuracy),
            val_loss = format!("{:.4}", r.val_loss),
            val_accuracy = format!("{:.4}", r.val_accuracy),
            images_per_sec = format!("{:.1}", r.time.images_per_sec),
            best = r.best,
            "epoch done"
        );
    }
}

/// Progress bars on stderr: one per stage (decode, features, val), and per epoch a bar with
/// the loss, accuracy and images/s of the last step.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, stage: &str) -> Option<ProgressBar> {
        self.bars.lock().expect("bars poisoned").get(stage).cloned()
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: Option<u64>) {
        let template = if stage == "train" {
            "{prefix:>14} [{bar:30}] {pos}/{len} steps  {msg}  eta {eta}"
        } else {
            "{prefix:>14} [{bar:30}] {pos}/{len} images  {per_sec}  eta {eta}"
        };
        let bar = ProgressBar::new(total.unwrap_or(0)).with_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        let bar = self.multi.add(bar);
        self.bars
            .lock()
            .expect("bars poisoned")
            .insert(stage.to_string(), bar);
    }

    fn advance(&self, stage: &str, n: u64) {
        if let Some(bar) = self.bar(stage) {
            bar.inc(n);
        }
    }

    fn finish(&self, stage: &str) {
        if let Some(bar) = self.bars.lock().expect("bars poisoned").remove(stage) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl TrainReporter for Bars {
    fn step(&self, r: &StepRecord) {
        if let Some(bar) = self.bar("train") {
            bar.set_prefix(format!("epoch {}", r.epoch));
            bar.set_message(format!(
                "loss {:.4}  acc {:.1}%  {:.0} img/s  lr {:.1e}",
                r.loss,
                r.accuracy * 100.0,
                r.time.images_per_sec,
                r.lr
            ));
        }
    }

    fn epoch(&self, r: &EpochRecord) {
        let _ = self.multi.println(format!(
            "epoch {:>3}  train loss {:.4} acc {:.1}%  val loss {:.4} acc {:.1}% (balanced {:.1}%)  {:.0} img/s{}",
            r.epoch,
            r.train_loss,
            r.train_accuracy * 100.0,
            r.val_loss,
            r.val_accuracy * 100.0,
            r.val_balanced_accuracy * 100.0,
            r.time.images_per_sec,
            if r.best { "  best" } else { "" }
        ));
    }
}
