//! Lennonnet's report (docs/report.md): a run's curves, its evaluation, the galleries and a
//! dataset summary as one self-contained HTML page, with every plot also written as a PNG file.
//!
//! ```text
//! <out>/                 default <run>/report/
//!   report.html          the page: CSS inline, every image a data: URI, no script, no request
//!   loss.png             train and val loss per epoch
//!   accuracy.png         train and val accuracy per epoch
//!   histograms.png       P(positive) per eval set, 25 bins and right/wrong (when there are eval sets)
//!   confusion.png        the test split's confusion matrix
//!   roc.png              the test split's ROC curve (when both classes are present)
//!   reliability.png      the test split's reliability diagram with its ECE
//! ```
//!
//! [`RunInputs::read`] reads the run folder (run.json, metrics.jsonl, eval/ as written by
//! `lennonnet eval`, whose types it uses), [`render`] draws and lays out in memory, and
//! [`write`] puts each file in place through a temporary file and a rename, the page last.
//! The same inputs give the same bytes.

pub mod error;
pub mod figures;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod html;
pub mod inputs;
pub mod plot;

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use error::{ReportError, Result};
pub use inputs::{DatasetInputs, Inputs, RunInputs, Thumbnail};
use plot::{Curves, HistogramRow, Line, Plot, ReliabilityBin};

pub const REPORT_HTML: &str = "report.html";
/// The default output folder, inside the run folder.
pub const REPORT_DIR: &str = "report";

/// A report in memory: the page and its plots.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    pub plots: Vec<Plot>,
}

/// What [`write`] put on disk.
#[derive(Debug, Clone)]
pub struct Written {
    pub html: PathBuf,
    pub html_bytes: usize,
    pub plots: Vec<PathBuf>,
}

/// Draws every plot and lays out the page.
pub fn render(inputs: &Inputs) -> Result<Rendered> {
    let (loss, accuracy) = curve_plots(&inputs.run)?;
    let histograms = histogram_plot(&inputs.run.eval)?;
    let (confusion, reliability, roc) = test_plots(&inputs.run)?;
    let html = html::page(
        inputs,
        &html::Plots {
            loss: &loss,
            accuracy: &accuracy,
            histograms: histograms.as_ref(),
            confusion: &confusion,
            reliability: &reliability,
            roc: roc.as_ref(),
        },
    );
    let mut plots = vec![loss, accuracy];
    plots.extend(histograms);
    plots.push(confusion);
    plots.extend(roc);
    plots.push(reliability);
    Ok(Rendered { html, plots })
}

/// The loss and accuracy curves over the epochs, the best epoch marked.
fn curve_plots(run: &RunInputs) -> Result<(Plot, Plot)> {
    let epochs = &run.epochs;
    let best = run.record.result.as_ref().map(|r| r.best_epoch);
    let marker = best.map(|b| (b as f64, format!(" best: epoch {b}")));

    let pts = |f: fn(&lennonnet_records::run::EpochRecord) -> f64| -> Vec<(f64, f64)> {
        epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    let loss = plot::curves(Curves {
        file: "loss.png",
        title: "Loss",
        y_desc: "cross-entropy",
        // Headroom on top for the legend.
        y_range: plot::y_range(
            epochs.iter().flat_map(|e| [e.train_loss, e.val_loss]),
            Some(0.0),
            None,
            0.3,
        ),
        lines: vec![
            Line {
                name: "train",
                color: plot::TRAIN,
                dashed: false,
                points: pts(|e| e.train_loss),
            },
            Line {
                name: "val",
                color: plot::VAL,
                dashed: false,
                points: pts(|e| e.val_loss),
            },
        ],
        marker: marker.clone(),
        legend_at_top: true,
    })?;
    let accuracy = plot::curves(Curves {
        file: "accuracy.png",
        title: "Accuracy",
        y_desc: "accuracy",
        y_range: plot::y_range(
            epochs
                .iter()
                .flat_map(|e| [e.train_accuracy, e.val_accuracy, e.val_balanced_accuracy]),
            None,
            Some(1.0),
            0.0,
        ),
        lines: vec![
            Line {
                name: "train",
                color: plot::TRAIN,
                dashed: false,
                points: pts(|e| e.train_accuracy),
            },
            Line {
                name: "val",
                color: plot::VAL,
                dashed: false,
                points: pts(|e| e.val_accuracy),
            },
            Line {
                name: "val balanced",
                color: plot::VAL,
                dashed: true,
                points: pts(|e| e.val_balanced_accuracy),
            },
        ],
        marker,
        legend_at_top: false,
    })?;
    Ok((loss, accuracy))
}

/// The eval sets' P(positive) histograms, if there are eval sets.
fn histogram_plot(eval: &lennonnet_records::eval::EvalMetrics) -> Result<Option<Plot>> {
    let positive = eval.run.positive_class.as_str();
    let bins: Vec<Vec<u64>> = eval
        .eval_sets
        .iter()
        .map(|s| s.histogram.counts.iter().map(|&c| c as u64).collect())
        .collect();
    let rows: Vec<HistogramRow<'_>> = eval
        .eval_sets
        .iter()
        .zip(&bins)
        .map(|(s, bins)| HistogramRow {
            group: &s.group,
            positive: s.label == positive,
            bins,
            right: s.right as u64,
            wrong: s.wrong as u64,
        })
        .collect();
    Ok(if rows.is_empty() {
        None
    } else {
        Some(plot::histograms(
            "histograms.png",
            positive,
            eval.run.threshold,
            &rows,
        )?)
    })
}

/// The headline split's confusion matrix, reliability diagram and ROC curve.
fn test_plots(run: &RunInputs) -> Result<(Plot, Plot, Option<Plot>)> {
    let eval = &run.eval;
    let positive = eval.run.positive_class.as_str();
    let shown = figures::headline_split(eval);
    let test = &shown.labels;
    let matrix: Vec<Vec<u64>> = test
        .confusion
        .rows
        .iter()
        .map(|r| r.iter().map(|&c| c as u64).collect())
        .collect();
    let confusion = plot::confusion("confusion.png", &test.confusion.classes, &matrix)?;
    let rel_bins: Vec<ReliabilityBin> = test
        .calibration
        .bins
        .iter()
        .map(|b| ReliabilityBin {
            lo: b.lower,
            hi: b.upper,
            count: b.count as u64,
            mean_p: b.mean_p.unwrap_or((b.lower + b.upper) / 2.0),
            positive_rate: b.fraction_positive.unwrap_or(0.0),
        })
        .collect();
    let reliability =
        plot::reliability("reliability.png", positive, test.calibration.ece, &rel_bins)?;
    let test_preds: Vec<&lennonnet_records::eval::Prediction> = run
        .predictions
        .iter()
        .filter(|p| p.split == shown.split)
        .collect();
    let roc = match (figures::roc_points(&test_preds, positive), test.roc_auc) {
        (Some(points), Some(auc)) => Some(plot::roc("roc.png", auc, &points)?),
        _ => None,
    };
    Ok((confusion, reliability, roc))
}

/// Writes the plots and then the page into `out_dir` (created if missing), each through a
/// temporary file renamed into place.
pub fn write(rendered: &Rendered, out_dir: &Path) -> Result<Written> {
    fs::create_dir_all(out_dir).map_err(|source| ReportError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut plots = Vec::new();
    for p in &rendered.plots {
        let path = out_dir.join(&p.file);
        write_atomic(&path, &p.png)?;
        plots.push(path);
    }
    let html = out_dir.join(REPORT_HTML);
    write_atomic(&html, rendered.html.as_bytes())?;
    Ok(Written {
        html,
        html_bytes: rendered.html.len(),
        plots,
    })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let failed = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ReportError::Write { path: p, source }
    };
    let result = (|| {
        let mut f = File::create(&tmp).map_err(failed(&tmp))?;
        f.write_all(bytes).map_err(failed(&tmp))?;
        f.sync_all().map_err(failed(&tmp))?;
        fs::rename(&tmp, path).map_err(failed(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
