//! A synthetic run folder shaped like the founding study (john against the other Beatles,
//! people and words, three eval sets of other Beatles, a mirror-world truth with some label
//! noise) for tests, benchmarks and trying the report without training a model.
//!
//! Everything is a function of the seed: probabilities come from a hash of (seed, image), so
//! the same call writes the same bytes. The figures in `eval/metrics.json` are computed from
//! the written predictions the way `lennonnet eval` defines them, so the page's numbers agree
//! with each other.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use lennonnet_records::eval::{
    self as em, Calibration, ClassCount, ClassThreshold, ConfusionMatrix, EvalMetrics, EvalSet,
    GalleryIndex, GalleryItem, GallerySummary, GroupScores, Histogram, LabelNoise, PositiveScores,
    Prediction, ReliabilityBin, RunInfo, Scores, Source, SplitScores, Suspect, SuspectSummary,
    SuspectTruth, Timing, Truth, TruthSummary,
};
use lennonnet_records::run::{
    self, DataRecord, EndRecord, EpochRecord, MetricsRecord, PreprocessRecord, RunRecord,
    RunResult, RunStatus, StepRecord, StopReason, TrainableRecord, Versions,
};
use lennonnet_records::scores::BinaryScores;
use lennonnet_records::{ThresholdMetric, TrainSettings};

use crate::error::{ReportError, Result};

const POS: &str = "john";
const NEG: &str = "not_john";
const THRESHOLD: f64 = 0.46;

/// What to make.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    pub name: String,
    pub seed: u64,
    pub epochs: usize,
    /// Images per eval set (the founding study had 1,000).
    pub eval_set_images: usize,
    /// Scale of the train/val/test groups (1 = 25 test images per class).
    pub scale: usize,
    /// Thumbnails in the error gallery and the suspect gallery.
    pub gallery_errors: usize,
    pub gallery_suspects: usize,
    /// The snapshot id the run names (a real one lets the report find the dataset).
    pub snapshot: String,
}

impl Default for FixtureSpec {
    fn default() -> Self {
        Self {
            name: "efficientnet_lite0-head-0a1b2c3d-s7".into(),
            seed: 7,
            epochs: 12,
            eval_set_images: 200,
            scale: 1,
            gallery_errors: 12,
            gallery_suspects: 8,
            snapshot: "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
        }
    }
}

/// splitmix64: a well-mixed u64 from a u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(seed: u64, a: u64, b: u64) -> f64 {
    ((mix(mix(seed ^ a.wrapping_mul(0x1000_0001)) ^ b) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn normal(seed: u64, a: u64) -> f64 {
    let (u, v) = (unit(seed, a, 1), unit(seed, a, 2));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

struct GroupSpec {
    name: &'static str,
    label: &'static str,
    /// Mean logit of P(john).
    mu: f64,
    train: usize,
    val: usize,
    test: usize,
    eval: bool,
    word: bool,
}

fn groups(spec: &FixtureSpec) -> Vec<GroupSpec> {
    let k = spec.scale.max(1);
    let g = |name, label, mu, train, val, test, eval, word| GroupSpec {
        name,
        label,
        mu,
        train: train * k,
        val: val * k,
        test: test * k,
        eval,
        word,
    };
    let e = spec.eval_set_images;
    vec![
        g("john", POS, 2.6, 120, 30, 25, false, false),
        g("paul", NEG, -1.6, 16, 4, 4, false, false),
        g("george", NEG, -0.9, 16, 4, 4, false, false),
        g("ringo", NEG, -2.0, 16, 4, 4, false, false),
        g("person", NEG, -2.8, 60, 14, 8, false, false),
        g("word-harbour", NEG, -3.6, 16, 4, 3, false, true),
        g("word-lantern", NEG, -3.4, 16, 4, 2, false, true),
        g("eval_paul", NEG, -1.7, e, 0, 0, true, false),
        g("eval_george", NEG, -0.8, e, 0, 0, true, false),
        g("eval_ringo", NEG, -2.1, e, 0, 0, true, false),
    ]
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Writes a finished run with its `eval/` folder into `dir` (created) and returns `dir`.
pub fn write_run(dir: &Path, spec: &FixtureSpec) -> Result<PathBuf> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ReportError::Write { path: p, source }
    };
    let eval_dir = dir.join(em::EVAL_DIR);
    for sub in ["gallery/errors", "gallery/suspects"] {
        fs::create_dir_all(eval_dir.join(sub)).map_err(io(&eval_dir))?;
    }

    // Predictions, one per image, in eval's order: (split, group, id).
    let mut preds = Vec::new();
    let mut n = 0u64;
    for g in groups(spec) {
        let splits: Vec<(&str, usize)> = if g.eval {
            vec![("eval", g.train)]
        } else {
            vec![("train", g.train), ("val", g.val), ("test", g.test)]
        };
        for (split, count) in splits {
            for i in 0..count {
                n += 1;
                let id = format!(
                    "{:016x}{:016x}{:016x}{:016x}",
                    mix(spec.seed ^ n),
                    mix(n),
                    mix(n ^ 7),
                    mix(n ^ 9)
                );
                // A mirror world's noise: some images under a label are someone else.
                let flipped = unit(spec.seed, n, 3) < if g.label == POS { 0.04 } else { 0.02 };
                let truth_class = if flipped { other(g.label) } else { g.label };
                let truth_name = if flipped && truth_class == POS {
                    "john".to_string()
                } else if flipped {
                    "person-000412".to_string()
                } else {
                    g.name.trim_start_matches("eval_").to_string()
                };
                let mu = if flipped { -g.mu * 0.8 } else { g.mu };
                let p = sigmoid(mu + 1.5 * normal(spec.seed, n)) as f32;
                let predicted = if p as f64 >= THRESHOLD { POS } else { NEG };
                let engine = ["duckduckgo", "bing", "commons"][(n % 3) as usize];
                let query = if g.word {
                    g.name.trim_start_matches("word-").to_string()
                } else {
                    format!(
                        "{} {}",
                        g.name.trim_start_matches("eval_"),
                        ["lennon", "mccartney", "harrison", "starr", "portrait"][(n % 5) as usize]
                    )
                };
                preds.push(Prediction {
                    id: id.clone(),
                    split: split.into(),
                    group: g.name.into(),
                    label: g.label.into(),
                    p_positive: p,
                    predicted: predicted.into(),
                    correct: predicted == g.label,
                    truth: Some(Truth {
                        class: truth_class.into(),
                        name: truth_name.clone(),
                        identities: vec![truth_name],
                    }),
                    sources: vec![Source {
                        query,
                        engine: engine.into(),
                        url: format!(
                            "https://img{}.example.org/photos/{}/{}.jpg",
                            n % 7,
                            &id[..4],
                            &id[..16]
                        ),
                    }],
                });
                let _ = i;
            }
        }
    }
    preds.sort_by(|a, b| (&a.split, &a.group, &a.id).cmp(&(&b.split, &b.group, &b.id)));

    let record = run_record(spec, &preds);
    let json = serde_json::to_vec_pretty(&record).expect("the record serialises");
    fs::write(dir.join(run::RUN_JSON), json).map_err(io(dir))?;
    let mut metrics = String::new();
    for r in metrics_records(spec) {
        metrics.push_str(&serde_json::to_string(&r).expect("serialises"));
        metrics.push('\n');
    }
    fs::write(dir.join(run::METRICS), metrics).map_err(io(dir))?;

    // Suspects: train and val images whose label the model confidently disagrees with.
    let examined: Vec<&Prediction> = preds
        .iter()
        .filter(|p| p.split == "train" || p.split == "val")
        .collect();
    let p_label = |p: &Prediction| {
        if p.label == POS {
            p.p_positive
        } else {
            1.0 - p.p_positive
        }
    };
    let self_conf = |class: &str| {
        let v: Vec<f64> = examined
            .iter()
            .filter(|p| p.label == class)
            .map(|p| p_label(p) as f64)
            .collect();
        (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
    };
    let thresholds = [(POS, self_conf(POS)), (NEG, self_conf(NEG))];
    let mut suspects: Vec<Suspect> = examined
        .iter()
        .filter(|p| {
            let other_p = 1.0 - p_label(p) as f64;
            let t = thresholds
                .iter()
                .find(|t| t.0 != p.label)
                .expect("two classes")
                .1
                .0;
            other_p >= t && (p_label(p) as f64) < 0.5
        })
        .map(|p| {
            let pl = p_label(p);
            Suspect {
                rank: 0,
                id: p.id.clone(),
                split: p.split.clone(),
                group: p.group.clone(),
                label: p.label.clone(),
                suggested: other(&p.label).into(),
                p_label: pl,
                p_suggested: 1.0 - pl,
                margin: 1.0 - 2.0 * pl,
                truth: p.truth.clone(),
                sources: p.sources.clone(),
                thumbnail: None,
            }
        })
        .collect();
    suspects.sort_by(|a, b| b.margin.total_cmp(&a.margin).then_with(|| a.id.cmp(&b.id)));
    for (i, s) in suspects.iter_mut().enumerate() {
        s.rank = i + 1;
    }

    // The galleries and their thumbnails.
    let mut errors: Vec<&Prediction> = preds
        .iter()
        .filter(|p| (p.split == "test" || p.split == "eval") && !p.correct)
        .collect();
    let conf = |p: &Prediction| {
        if p.predicted == POS {
            p.p_positive
        } else {
            1.0 - p.p_positive
        }
    };
    errors.sort_by(|a, b| conf(b).total_cmp(&conf(a)).then_with(|| a.id.cmp(&b.id)));
    let mut gallery = GalleryIndex {
        format_version: em::FORMAT_VERSION,
        threshold: THRESHOLD,
        positive_class: POS.into(),
        errors: Vec::new(),
        suspects: Vec::new(),
    };
    for (i, p) in errors.iter().take(spec.gallery_errors).enumerate() {
        let thumb = format!("gallery/errors/{}-{}.png", i + 1, &p.id[..16]);
        fs::write(eval_dir.join(&thumb), thumbnail(&p.id, &p.group)).map_err(io(&eval_dir))?;
        gallery.errors.push(item(i + 1, p, conf(p), thumb));
    }
    let by_id: BTreeMap<&str, &Prediction> = preds.iter().map(|p| (p.id.as_str(), p)).collect();
    for (i, s) in suspects.iter_mut().take(spec.gallery_suspects).enumerate() {
        let thumb = format!("gallery/suspects/{}-{}.png", i + 1, &s.id[..16]);
        fs::write(eval_dir.join(&thumb), thumbnail(&s.id, &s.group)).map_err(io(&eval_dir))?;
        let p = by_id[s.id.as_str()];
        gallery
            .suspects
            .push(item(i + 1, p, s.p_suggested, thumb.clone()));
        s.thumbnail = Some(thumb);
    }

    let metrics = eval_metrics(
        spec,
        &record,
        &preds,
        &examined,
        &suspects,
        &thresholds,
        &gallery,
    );
    let write_json = |name: &str, v: &dyn erased::Json| -> Result<()> {
        let path = eval_dir.join(name);
        fs::write(&path, v.pretty()).map_err(io(&path))
    };
    write_json(em::METRICS_JSON, &metrics)?;
    write_json(em::GALLERY_INDEX, &gallery)?;
    let lines = |rows: Vec<String>| rows.into_iter().map(|l| l + "\n").collect::<String>();
    fs::write(
        eval_dir.join(em::PREDICTIONS_JSONL),
        lines(
            preds
                .iter()
                .map(|p| serde_json::to_string(p).expect("serialises"))
                .collect(),
        ),
    )
    .map_err(io(&eval_dir))?;
    fs::write(
        eval_dir.join(em::SUSPECTS_JSONL),
        lines(
            suspects
                .iter()
                .map(|p| serde_json::to_string(p).expect("serialises"))
                .collect(),
        ),
    )
    .map_err(io(&eval_dir))?;
    Ok(dir.to_path_buf())
}

mod erased {
    pub trait Json {
        fn pretty(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> Vec<u8> {
            let mut v = serde_json::to_vec_pretty(self).expect("serialises");
            v.push(b'\n');
            v
        }
    }
}

fn other(class: &str) -> &'static str {
    if class == POS { NEG } else { POS }
}

fn item(rank: usize, p: &Prediction, confidence: f32, thumbnail: String) -> GalleryItem {
    GalleryItem {
        rank,
        id: p.id.clone(),
        split: p.split.clone(),
        group: p.group.clone(),
        label: p.label.clone(),
        predicted: p.predicted.clone(),
        p_positive: p.p_positive,
        confidence,
        truth: p.truth.clone(),
        sources: p.sources.clone(),
        thumbnail,
    }
}

/// A 96 × 96 PNG: a face-like disc on a background, colours from the image's id.
fn thumbnail(id: &str, group: &str) -> Vec<u8> {
    let h = mix(id
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64)));
    let hue = |k: u32| ((h >> k) & 0xff) as u8;
    let (bg, skin) = if group.starts_with("word") {
        (
            [hue(0) / 2 + 100, hue(8) / 2 + 110, hue(16) / 3 + 60],
            [hue(24) / 2 + 60, 90, 140],
        )
    } else {
        (
            [hue(0) / 3 + 40, hue(8) / 3 + 50, hue(16) / 3 + 70],
            [225, 190 + hue(24) % 30, 160],
        )
    };
    let (w, hgt) = (96u32, 96u32);
    let mut px = Vec::with_capacity((w * hgt * 3) as usize);
    for y in 0..hgt {
        for x in 0..w {
            let (dx, dy) = (x as f64 - 48.0, y as f64 - 44.0);
            let face = (dx / 24.0).powi(2) + (dy / 30.0).powi(2) <= 1.0;
            let hair = (dx / 28.0).powi(2) + ((dy + 14.0) / 26.0).powi(2) <= 1.0 && dy < -6.0;
            let body = y > 78 && dx.abs() < 38.0;
            let c = if face && !hair {
                skin
            } else if hair {
                [60, 40, 30]
            } else if body {
                [bg[2] / 2, bg[0] / 2, bg[1] / 2]
            } else {
                let t = y as f64 / hgt as f64;
                [
                    (bg[0] as f64 * (1.0 - 0.3 * t)) as u8,
                    (bg[1] as f64 * (1.0 - 0.3 * t)) as u8,
                    (bg[2] as f64 * (1.0 - 0.2 * t)) as u8,
                ]
            };
            px.extend_from_slice(&c);
        }
    }
    crate::plot::encode_png(&px, w, hgt).expect("encodes in memory")
}

fn run_record(spec: &FixtureSpec, preds: &[Prediction]) -> RunRecord {
    let count = |split: &str, class: &str| {
        preds
            .iter()
            .filter(|p| p.split == split && p.label == class)
            .count()
    };
    let per_class = |split: &str| {
        [POS, NEG]
            .iter()
            .map(|c| (c.to_string(), count(split, c)))
            .collect::<BTreeMap<_, _>>()
    };
    let settings = TrainSettings {
        seed: spec.seed,
        epochs: spec.epochs,
        ..TrainSettings::default()
    };
    let (best_epoch, _) = best(spec);
    RunRecord {
        format_version: run::FORMAT_VERSION,
        name: spec.name.clone(),
        status: RunStatus::Finished,
        snapshot: spec.snapshot.clone(),
        classes: vec![POS.into(), NEG.into()],
        positive_class: POS.into(),
        model: "efficientnet_lite0".into(),
        weights: None,
        strategy: "head".into(),
        seed: spec.seed,
        config: settings,
        preprocess: PreprocessRecord {
            input_px: 224,
            resize_px: 256,
            crop_pct: 0.875,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            interpolation: "bilinear".into(),
        },
        data: DataRecord {
            train: per_class("train").values().sum(),
            val: per_class("val").values().sum(),
            train_per_class: per_class("train"),
            val_per_class: per_class("val"),
            class_weights: vec![1.0, 1.0],
            failed: BTreeMap::new(),
            pixel_cache: PathBuf::from("runs/cache/pixels.bin"),
            feature_cache: None,
        },
        trainable: TrainableRecord {
            params: 2562,
            tensors: 2,
            frozen: vec!["backbone".into()],
            num_features: 1280,
        },
        device: "cpu".into(),
        dtype: "f32".into(),
        backend: "gemm".into(),
        versions: Versions {
            lennonnet: env!("CARGO_PKG_VERSION").to_string(),
            candle: "0.11.1".to_string(),
            run_format: run::FORMAT_VERSION,
            pixel_cache_format: 1,
        },
        threshold: Some(THRESHOLD),
        result: Some(RunResult {
            stop_reason: StopReason::Epochs,
            epochs_run: spec.epochs,
            best_epoch,
            best_val_loss: curve(spec, best_epoch).2,
            val_accuracy: curve(spec, best_epoch).3,
            threshold_metric: ThresholdMetric::BalancedAccuracy,
            val_at_threshold: Some(BinaryScores {
                threshold: THRESHOLD,
                accuracy: 0.93,
                balanced_accuracy: 0.92,
                precision: 0.9,
                recall: 0.91,
                f1: 0.905,
                true_positives: 27,
                false_positives: 3,
                true_negatives: 54,
                false_negatives: 3,
            }),
        }),
    }
}

/// (train loss, train accuracy, val loss, val accuracy) of an epoch: smooth curves with noise,
/// validation flattening out.
fn curve(spec: &FixtureSpec, epoch: usize) -> (f64, f64, f64, f64) {
    let t = epoch as f64;
    let jitter = |k: u64| (unit(spec.seed, 10_000 + epoch as u64, k) - 0.5) * 0.03;
    let train_loss = 0.28 + 0.45 * (-t / 3.0).exp() + jitter(1);
    let val_loss = 0.33 + 0.38 * (-t / 2.5).exp() + 0.004 * (t - 7.0).max(0.0).powi(2) + jitter(2);
    let train_acc = 0.97 - 0.25 * (-t / 2.5).exp() + jitter(3);
    let val_acc = 0.94 - 0.22 * (-t / 2.0).exp() + jitter(4);
    (train_loss, train_acc.min(1.0), val_loss, val_acc.min(1.0))
}

fn best(spec: &FixtureSpec) -> (usize, f64) {
    (1..=spec.epochs.max(1))
        .map(|e| (e, curve(spec, e).2))
        .fold((1, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
}

fn metrics_records(spec: &FixtureSpec) -> Vec<MetricsRecord> {
    let (best_epoch, best_loss) = best(spec);
    let mut out = Vec::new();
    let mut elapsed = 0.0;
    let mut so_far = f64::INFINITY;
    for e in 1..=spec.epochs.max(1) {
        let (tl, ta, vl, va) = curve(spec, e);
        let secs = 4.0 + unit(spec.seed, e as u64, 5);
        elapsed += secs;
        out.push(MetricsRecord::Step(StepRecord {
            epoch: e,
            step: e as u64 * 8,
            epoch_step: 8,
            epoch_steps: 8,
            loss: tl,
            accuracy: ta,
            lr: 1e-3,
            grad_norm: 0.8,
            time: run::Timing {
                elapsed_secs: elapsed,
                secs: 0.4,
                images_per_sec: 80.0,
            },
        }));
        out.push(MetricsRecord::Epoch(EpochRecord {
            epoch: e,
            steps: e as u64 * 8,
            lr: 1e-3 * (0.5 + 0.5 * (std::f64::consts::PI * e as f64 / spec.epochs as f64).cos()),
            train_loss: tl,
            train_accuracy: ta,
            val_loss: vl,
            val_accuracy: va,
            val_balanced_accuracy: va - 0.015,
            best: vl < so_far,
            time: run::Timing {
                elapsed_secs: elapsed,
                secs,
                images_per_sec: 64.0,
            },
        }));
        so_far = so_far.min(vl);
    }
    out.push(MetricsRecord::End(EndRecord {
        result: RunResult {
            stop_reason: StopReason::Epochs,
            epochs_run: spec.epochs,
            best_epoch,
            best_val_loss: best_loss,
            val_accuracy: curve(spec, best_epoch).3,
            threshold_metric: ThresholdMetric::BalancedAccuracy,
            val_at_threshold: None,
        },
        time: run::Timing {
            elapsed_secs: elapsed,
            secs: elapsed,
            images_per_sec: 64.0,
        },
    }));
    out
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Scores of `preds` against the class `reference` gives each.
fn scores(
    preds: &[&Prediction],
    reference: &str,
    class_of: impl Fn(&Prediction) -> String,
) -> Scores {
    let classes = [POS, NEG];
    let idx = |c: &str| classes.iter().position(|x| *x == c).unwrap_or(1);
    let mut rows = vec![vec![0usize; 2]; 2];
    for p in preds {
        rows[idx(&class_of(p))][idx(&p.predicted)] += 1;
    }
    let per_class: Vec<ClassCount> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| ClassCount {
            class: c.to_string(),
            right: rows[i][i],
            total: rows[i].iter().sum(),
        })
        .collect();
    let right = rows[0][0] + rows[1][1];
    let (tp, fp, fneg) = (rows[0][0], rows[1][0], rows[0][1]);
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fneg);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let is_pos: Vec<bool> = preds.iter().map(|p| class_of(p) == POS).collect();
    let npos = is_pos.iter().filter(|b| **b).count();
    let nneg = preds.len() - npos;
    let roc_auc = (npos > 0 && nneg > 0).then(|| {
        let mut s = 0.0;
        for (a, pa) in preds.iter().zip(&is_pos) {
            for (b, pb) in preds.iter().zip(&is_pos) {
                if *pa && !*pb {
                    s += match a.p_positive.total_cmp(&b.p_positive) {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        s / (npos * nneg) as f64
    });
    let mut bins: Vec<ReliabilityBin> = (0..em::CALIBRATION_BINS)
        .map(|i| ReliabilityBin {
            lower: i as f64 / em::CALIBRATION_BINS as f64,
            upper: (i + 1) as f64 / em::CALIBRATION_BINS as f64,
            count: 0,
            mean_p: None,
            fraction_positive: None,
        })
        .collect();
    let mut sums = vec![(0.0f64, 0usize); em::CALIBRATION_BINS];
    for (p, pos) in preds.iter().zip(&is_pos) {
        let b = ((p.p_positive as f64 * em::CALIBRATION_BINS as f64) as usize)
            .min(em::CALIBRATION_BINS - 1);
        bins[b].count += 1;
        sums[b].0 += p.p_positive as f64;
        sums[b].1 += *pos as usize;
    }
    let (mut ece, mut mce) = (0.0f64, 0.0f64);
    for (b, (sp, np)) in bins.iter_mut().zip(&sums) {
        if b.count > 0 {
            let m = sp / b.count as f64;
            let f = *np as f64 / b.count as f64;
            b.mean_p = Some(m);
            b.fraction_positive = Some(f);
            ece += b.count as f64 / preds.len() as f64 * (m - f).abs();
            mce = mce.max((m - f).abs());
        }
    }
    let brier = preds
        .iter()
        .zip(&is_pos)
        .map(|(p, pos)| (p.p_positive as f64 - if *pos { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / preds.len().max(1) as f64;
    Scores {
        reference: reference.into(),
        images: preds.len(),
        balanced_accuracy: per_class
            .iter()
            .map(|c| ratio(c.right, c.total))
            .sum::<f64>()
            / 2.0,
        per_class,
        accuracy: ratio(right, preds.len()),
        positive: PositiveScores {
            class: POS.into(),
            precision,
            recall,
            f1,
            support: npos,
            predicted: tp + fp,
        },
        roc_auc,
        confusion: ConfusionMatrix {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            rows,
        },
        calibration: Calibration { ece, mce, bins },
        brier,
    }
}

fn split_scores(preds: &[Prediction], split: &str) -> SplitScores {
    let these: Vec<&Prediction> = preds.iter().filter(|p| p.split == split).collect();
    SplitScores {
        split: split.into(),
        labels: scores(&these, "label", |p| p.label.clone()),
        truth: Some(scores(&these, "truth", |p| {
            p.truth
                .as_ref()
                .map(|t| t.class.clone())
                .unwrap_or_default()
        })),
    }
}

fn histogram(values: &[f64], bins: usize) -> Histogram {
    let mut counts = vec![0usize; bins];
    for v in values {
        counts[((v * bins as f64) as usize).min(bins - 1)] += 1;
    }
    Histogram {
        edges: (0..=bins).map(|i| i as f64 / bins as f64).collect(),
        counts,
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_metrics(
    spec: &FixtureSpec,
    record: &RunRecord,
    preds: &[Prediction],
    examined: &[&Prediction],
    suspects: &[Suspect],
    thresholds: &[(&str, (f64, usize)); 2],
    gallery: &GalleryIndex,
) -> EvalMetrics {
    let mut scored = BTreeMap::new();
    for p in preds {
        *scored.entry(p.split.clone()).or_insert(0) += 1;
    }
    let mut per_split: BTreeMap<String, LabelNoise> = BTreeMap::new();
    for p in preds {
        let n = per_split.entry(p.split.clone()).or_insert(LabelNoise {
            images: 0,
            known: 0,
            wrong: 0,
            wrong_by_label: BTreeMap::new(),
        });
        n.images += 1;
        if let Some(t) = &p.truth {
            n.known += 1;
            if t.class != p.label {
                n.wrong += 1;
                *n.wrong_by_label.entry(p.label.clone()).or_insert(0) += 1;
            }
        }
    }
    let mut group_scores = Vec::new();
    for split in ["test", "val", "eval"] {
        let mut by_group: BTreeMap<(bool, &str), Vec<&Prediction>> = BTreeMap::new();
        for p in preds.iter().filter(|p| p.split == split) {
            by_group
                .entry((false, p.group.as_str()))
                .or_default()
                .push(p);
            if p.group.starts_with("word-") {
                by_group
                    .entry((true, em::WORDS_AGGREGATE))
                    .or_default()
                    .push(p);
            }
        }
        for ((aggregate, group), ps) in by_group {
            let right = ps.iter().filter(|p| p.correct).count();
            group_scores.push(GroupScores {
                group: group.into(),
                kind: if aggregate {
                    "words_aggregate"
                } else {
                    "group"
                }
                .into(),
                split: split.into(),
                label: ps[0].label.clone(),
                images: ps.len(),
                right,
                accuracy: ratio(right, ps.len()),
                mean_p_positive: ps.iter().map(|p| p.p_positive as f64).sum::<f64>()
                    / ps.len() as f64,
                predicted_positive: ps.iter().filter(|p| p.predicted == POS).count(),
                truth_positive: Some(
                    ps.iter()
                        .filter(|p| p.truth.as_ref().is_some_and(|t| t.class == POS))
                        .count(),
                ),
            });
        }
    }
    let mut eval_sets = Vec::new();
    let eval_groups: Vec<&str> = {
        let mut g: Vec<&str> = preds
            .iter()
            .filter(|p| p.split == "eval")
            .map(|p| p.group.as_str())
            .collect();
        g.dedup();
        g
    };
    for group in eval_groups {
        let ps: Vec<&Prediction> = preds
            .iter()
            .filter(|p| p.split == "eval" && p.group == group)
            .collect();
        let mut values: Vec<f64> = ps.iter().map(|p| p.p_positive as f64).collect();
        values.sort_by(f64::total_cmp);
        let right = ps.iter().filter(|p| p.correct).count();
        let below = values.iter().filter(|v| **v < THRESHOLD).count();
        eval_sets.push(EvalSet {
            group: group.into(),
            label: ps[0].label.clone(),
            images: ps.len(),
            right,
            accuracy: ratio(right, ps.len()),
            mean_p_positive: values.iter().sum::<f64>() / values.len() as f64,
            median_p_positive: values[values.len() / 2],
            histogram: histogram(&values, em::HISTOGRAM_BINS),
            threshold_histogram: Histogram {
                edges: vec![0.0, THRESHOLD, 1.0],
                counts: vec![below, values.len() - below],
            },
            wrong: ps.len() - right,
            truth_positive: Some(
                ps.iter()
                    .filter(|p| p.truth.as_ref().is_some_and(|t| t.class == POS))
                    .count(),
            ),
        });
    }
    let mut joint = vec![vec![0usize; 2]; 2];
    for p in examined {
        let li = if p.label == POS { 0 } else { 1 };
        let pp = p.p_positive as f64;
        let (ok_pos, ok_neg) = (pp >= thresholds[0].1.0, 1.0 - pp >= thresholds[1].1.0);
        match (ok_pos, ok_neg) {
            (true, false) => joint[li][0] += 1,
            (false, true) => joint[li][1] += 1,
            (true, true) => joint[li][if pp >= 0.5 { 0 } else { 1 }] += 1,
            (false, false) => {}
        }
    }
    let mut by_split = BTreeMap::new();
    for s in suspects {
        *by_split.entry(s.split.clone()).or_insert(0) += 1;
    }
    let known = suspects.iter().filter(|s| s.truth.is_some()).count();
    let label_wrong = suspects
        .iter()
        .filter(|s| s.truth.as_ref().is_some_and(|t| t.class != s.label))
        .count();
    let all_wrong = examined
        .iter()
        .filter(|p| p.truth.as_ref().is_some_and(|t| t.class != p.label))
        .count();
    EvalMetrics {
        format_version: em::FORMAT_VERSION,
        run: RunInfo {
            name: record.name.clone(),
            snapshot: record.snapshot.clone(),
            model: record.model.clone(),
            strategy: record.strategy.clone(),
            seed: record.seed,
            classes: record.classes.clone(),
            positive_class: POS.into(),
            threshold: THRESHOLD,
            threshold_source: "validation".into(),
            threshold_metric: Some("balanced_accuracy".into()),
        },
        snapshot: record.snapshot.clone(),
        scored,
        failed: Vec::new(),
        truth: TruthSummary {
            available: true,
            source: "mirror".into(),
            per_split,
        },
        test: split_scores(preds, "test"),
        val: split_scores(preds, "val"),
        groups: group_scores,
        eval_sets,
        suspects: SuspectSummary {
            splits: vec!["train".into(), "val".into()],
            images: examined.len(),
            thresholds: thresholds
                .iter()
                .map(|(c, (t, n))| ClassThreshold {
                    class: c.to_string(),
                    threshold: *t,
                    images: *n,
                })
                .collect(),
            confident_joint: ConfusionMatrix {
                classes: vec![POS.into(), NEG.into()],
                rows: joint,
            },
            suspects: suspects.len(),
            by_split,
            truth: Some(SuspectTruth {
                known,
                label_wrong,
                missed: all_wrong - label_wrong,
            }),
        },
        gallery: GallerySummary {
            errors: gallery.errors.len(),
            suspects: gallery.suspects.len(),
            index: em::GALLERY_INDEX.into(),
        },
        timing: Timing {
            total_secs: 9.5 + spec.scale as f64,
            load_secs: 0.4,
            score_secs: 9.0,
            images: preds.len(),
            images_per_sec: preds.len() as f64 / 9.0,
            threads: 2,
            batch_size: 32,
        },
    }
}
