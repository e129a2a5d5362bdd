//! `lennonnet train`: a snapshot → a run folder with checkpoints, metrics and a tuned threshold.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lennonnet_config::{TrainConfig, TrainSettings};
use lennonnet_core::Progress;
use lennonnet_dataset::{Dataset, Runs, relative_to};
use lennonnet_records::run::{EpochRecord, StepRecord};
use lennonnet_train::data::loader::LoaderOptions;
use lennonnet_train::report::summary;
use lennonnet_train::{TrainOptions, TrainReporter};

use super::{load_config, stdout_error};
use crate::cli::TrainArgs;

pub fn run(args: TrainArgs, quiet: bool) -> anyhow::Result<()> {
    lennonnet_models::tune_allocator();
    let config = load_config(&args.config.config)?;
    let config_path = &args.config.config;
    let t = &config.train;
    let runs = Runs::of_config(&config, config_path, args.runs_dir.as_deref());
    // Flags are relative to the working directory, config keys to the config file.
    let weights = match args.weights.as_deref() {
        Some("none") => None,
        Some(w) => Some(w.to_string()),
        None => t.weights.as_deref().map(|w| {
            if w.starts_with("hub:") {
                w.to_string()
            } else {
                relative_to(config_path, Path::new(w)).display().to_string()
            }
        }),
    };
    let settings = settings(&args, t, weights);

    let dataset = Dataset::of_config(&config);
    let snapshot = dataset
        .snapshot(&args.snapshot)
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
    let run_dir = runs.run(&run_name).dir().to_path_buf();
    let classes = config.classes.iter().map(|c| c.name.to_string()).collect();
    let opts = TrainOptions {
        classes,
        resume: args.resume,
        loader: LoaderOptions {
            threads: t.loader_threads as usize,
            prefetch_batches: t.prefetch_batches as usize,
        },
        checkpoint_every_steps: t.checkpoint_every_steps,
        ..TrainOptions::new(settings, run_dir.clone(), runs.cache_dir().to_path_buf())
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
    runs.point_latest(&run_name);

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

/// The config's `[train]` settings with the command line's overrides.
fn settings(args: &TrainArgs, t: &TrainConfig, weights: Option<String>) -> TrainSettings {
    let mut s = t.settings(weights);
    s.strategy = args.strategy.unwrap_or(s.strategy);
    if let Some(model) = &args.model {
        s.model = model.clone();
    }
    s.epochs = args.epochs.map_or(s.epochs, |e| e as usize);
    s.batch_size = args.batch_size.map_or(s.batch_size, |b| b as usize);
    s.input_px = args.input_px.map(|p| p as usize).or(s.input_px);
    s.seed = args.seed.unwrap_or(s.seed);
    if let Some(device) = &args.device {
        s.device = device.clone();
    }
    s.bf16 |= args.bf16;
    s
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
