//! How training reports progress (the binary draws bars from it) and the end-of-run summary.

use lennonnet_core::{NoProgress, Progress};

use crate::run::{EpochRecord, RunRecord, StepRecord};

/// Progress of a training run. The [`Progress`] stages are `decode` (building the pixel cache,
/// per image), `features` (the head strategy's feature cache, per image), `train` (one per
/// epoch, per step) and `val` (per image); [`TrainReporter::step`] and
/// [`TrainReporter::epoch`] carry the figures (loss, accuracy, images/s).
pub trait TrainReporter: Progress {
    /// A training step finished.
    fn step(&self, record: &StepRecord) {
        let _ = record;
    }
    /// An epoch and its validation finished.
    fn epoch(&self, record: &EpochRecord) {
        let _ = record;
    }
}

impl TrainReporter for NoProgress {}

/// The summary table: one row per epoch, then the result.
pub fn summary(record: &RunRecord, epochs: &[EpochRecord]) -> String {
    let mut rows: Vec<[String; 9]> = vec![
        [
            "epoch",
            "train loss",
            "train acc",
            "val loss",
            "val acc",
            "val bal acc",
            "lr",
            "img/s",
            "",
        ]
        .map(String::from),
    ];
    for e in epochs {
        rows.push([
            e.epoch.to_string(),
            format!("{:.4}", e.train_loss),
            pct(e.train_accuracy),
            format!("{:.4}", e.val_loss),
            pct(e.val_accuracy),
            pct(e.val_balanced_accuracy),
            format!("{:.2e}", e.lr),
            format!("{:.0}", e.time.images_per_sec),
            if e.best { "best".into() } else { String::new() },
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            if c == 8 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:>w$}", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&format!(
        "run       {}\nsnapshot  {}\nmodel     {} ({}, {} trainable parameters)\n",
        record.name, record.snapshot, record.model, record.strategy, record.trainable.params
    ));
    out.push_str(&format!(
        "data      {} train, {} val images{}\n",
        record.data.train,
        record.data.val,
        if record.data.failed.is_empty() {
            String::new()
        } else {
            format!(" ({} left out: cannot decode)", record.data.failed.len())
        }
    ));
    if let Some(r) = &record.result {
        out.push_str(&format!(
            "stopped   {} after {} epochs; best epoch {} (val loss {:.4}, val accuracy {})\n",
            match r.stop_reason {
                crate::run::StopReason::Epochs => "all epochs done",
                crate::run::StopReason::EarlyStopping => "early stopping",
            },
            r.epochs_run,
            r.best_epoch,
            r.best_val_loss,
            pct(r.val_accuracy)
        ));
        if let Some(s) = &r.val_at_threshold {
            out.push_str(&format!(
                "threshold P({}) >= {:.4}, tuned for {} on val: accuracy {}, balanced accuracy {}, \
                 precision {}, recall {}, F1 {:.3}\n",
                record.positive_class,
                s.threshold,
                r.threshold_metric.as_str(),
                pct(s.accuracy),
                pct(s.balanced_accuracy),
                pct(s.precision),
                pct(s.recall),
                s.f1
            ));
        }
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}
