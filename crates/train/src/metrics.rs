//! The loss, the figures computed from predictions, and the decision threshold.

use candle_core::{D, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// Cross-entropy with label smoothing and per-class weights, as PyTorch's
/// `cross_entropy(weight=w, label_smoothing=ε)`: the target of a sample of class `y` is
/// `(1 - ε) · onehot(y) + ε / C`, its loss `-Σ_c target_c · log p_c` is multiplied by `w_y`,
/// and the batch loss is `Σ w_y · loss / Σ w_y`.
pub fn cross_entropy(
    logits: &Tensor,
    labels: &[u32],
    class_weights: &[f32],
    smoothing: f64,
) -> candle_core::Result<Tensor> {
    let logits = logits.to_dtype(DType::F32)?;
    let (b, c) = logits.dims2()?;
    assert_eq!(b, labels.len());
    let off = (smoothing / c as f64) as f32;
    let on = (1.0 - smoothing) as f32 + off;
    let mut target = vec![off; b * c];
    let mut weights = Vec::with_capacity(b);
    for (i, &y) in labels.iter().enumerate() {
        target[i * c + y as usize] = on;
        weights.push(class_weights[y as usize]);
    }
    let total: f32 = weights.iter().sum();
    let device = logits.device();
    let target = Tensor::from_vec(target, (b, c), device)?;
    let weights = Tensor::from_vec(weights, b, device)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let per_sample = (target * logp)?.sum(D::Minus1)?.neg()?;
    (per_sample * weights)?.sum_all()? / total as f64
}

/// Row-wise softmax of logits, as plain numbers.
pub fn probabilities(logits: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    candle_nn::ops::softmax(
        &logits.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
        D::Minus1,
    )?
    .to_vec2::<f32>()
}

/// The index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// A confusion matrix: `counts[true class][predicted class]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        ratio(right, self.total())
    }

    /// The mean of the per-class recalls over the classes present.
    pub fn balanced_accuracy(&self) -> f64 {
        let recalls: Vec<f64> = (0..self.counts.len())
            .filter_map(|i| {
                let n: u64 = self.counts[i].iter().sum();
                (n > 0).then(|| self.counts[i][i] as f64 / n as f64)
            })
            .collect();
        if recalls.is_empty() {
            0.0
        } else {
            recalls.iter().sum::<f64>() / recalls.len() as f64
        }
    }

    /// Precision, recall and F1 of class `c`.
    pub fn precision_recall_f1(&self, c: usize) -> (f64, f64, f64) {
        let tp = self.counts[c][c];
        let predicted: u64 = self.counts.iter().map(|row| row[c]).sum();
        let actual: u64 = self.counts[c].iter().sum();
        let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
        let f1 = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        (p, r, f1)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// What the decision threshold maximises on the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMetric {
    /// The mean of the two classes' recalls: right for imbalanced classes.
    BalancedAccuracy,
    /// F1 of the positive class.
    F1,
}

impl ThresholdMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BalancedAccuracy => "balanced_accuracy",
            Self::F1 => "f1",
        }
    }
}

/// Figures of a binary decision at one threshold on P(positive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryScores {
    pub threshold: f64,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

/// Scores of "positive when P(positive) ≥ threshold".
pub fn binary_scores(p_pos: &[f32], is_pos: &[bool], threshold: f64) -> BinaryScores {
    let (mut tp, mut fp, mut tn, mut fneg) = (0u64, 0u64, 0u64, 0u64);
    for (&p, &pos) in p_pos.iter().zip(is_pos) {
        match (p as f64 >= threshold, pos) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fneg += 1,
        }
    }
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fneg);
    let specificity = ratio(tn, tn + fp);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    BinaryScores {
        threshold,
        accuracy: ratio(tp + tn, tp + tn + fp + fneg),
        balanced_accuracy: (recall + specificity) / 2.0,
        precision,
        recall,
        f1,
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fneg,
    }
}

/// The threshold on P(positive) that maximises `metric` on validation predictions.
///
/// The candidates are 0.5 and the midpoints between consecutive distinct probabilities (every
/// decision the data can tell apart); among equally good ones the nearest to 0.5 wins, so a
/// validation split that any threshold separates keeps the plain argmax rule.
pub fn tune_threshold(p_pos: &[f32], is_pos: &[bool], metric: ThresholdMetric) -> BinaryScores {
    let mut ps: Vec<f64> = p_pos.iter().map(|&p| p as f64).collect();
    ps.sort_by(f64::total_cmp);
    ps.dedup();
    let mut candidates = vec![0.5];
    candidates.extend(ps.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    if let (Some(first), Some(last)) = (ps.first(), ps.last()) {
        // Everything positive, everything negative.
        candidates.push(first / 2.0);
        candidates.push((last + 1.0) / 2.0);
    }
    let value = |s: &BinaryScores| match metric {
        ThresholdMetric::BalancedAccuracy => s.balanced_accuracy,
        ThresholdMetric::F1 => s.f1,
    };
    let mut best = binary_scores(p_pos, is_pos, 0.5);
    for t in candidates {
        let s = binary_scores(p_pos, is_pos, t);
        let (a, b) = (value(&s), value(&best));
        if a > b + 1e-12
            || ((a - b).abs() <= 1e-12 && (t - 0.5).abs() < (best.threshold - 0.5).abs())
        {
            best = s;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_a_hand_computation() -> candle_core::Result<()> {
        let logits = Tensor::new(&[[2f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &Device::Cpu)?;
        let labels = [0u32, 1, 0];
        let lse = |a: f64, b: f64| (a.exp() + b.exp()).ln();
        let nll = [
            (lse(2.0, 0.0) - 2.0, lse(2.0, 0.0)),
            (lse(0.0, 1.0), lse(0.0, 1.0) - 1.0),
            (lse(1.0, 1.0) - 1.0, lse(1.0, 1.0) - 1.0),
        ];
        // -log p(class) for (class 0, class 1) of each row; the true class: 0, 1, 0.
        let check = |weights: [f32; 2], eps: f64| -> candle_core::Result<()> {
            let got = cross_entropy(&logits, &labels, &weights, eps)?.to_scalar::<f32>()? as f64;
            let mut num = 0.0;
            let mut den = 0.0;
            for (i, &y) in labels.iter().enumerate() {
                let (n0, n1) = nll[i];
                let (t0, t1) = if y == 0 {
                    (1.0 - eps + eps / 2.0, eps / 2.0)
                } else {
                    (eps / 2.0, 1.0 - eps + eps / 2.0)
                };
                let w = weights[y as usize] as f64;
                num += w * (t0 * n0 + t1 * n1);
                den += w;
            }
            assert!((got - num / den).abs() < 1e-6, "{got} {}", num / den);
            Ok(())
        };
        check([1.0, 1.0], 0.0)?;
        check([1.0, 1.0], 0.1)?;
        check([0.25, 3.0], 0.1)?;
        Ok(())
    }

    #[test]
    fn confusion_figures() {
        let mut c = Confusion::new(2);
        for (t, p, n) in [(0, 0, 8), (0, 1, 2), (1, 1, 1), (1, 0, 1)] {
            for _ in 0..n {
                c.add(t, p);
            }
        }
        assert_eq!(c.total(), 12);
        assert!((c.accuracy() - 9.0 / 12.0).abs() < 1e-12);
        assert!((c.balanced_accuracy() - (0.8 + 0.5) / 2.0).abs() < 1e-12);
        let (p, r, f1) = c.precision_recall_f1(0);
        assert!((p - 8.0 / 9.0).abs() < 1e-12 && (r - 0.8).abs() < 1e-12);
        assert!((f1 - 2.0 * p * r / (p + r)).abs() < 1e-12);
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
    }

    #[test]
    fn the_threshold_maximises_the_metric_and_prefers_one_half_on_ties() {
        // Positives sit at 0.3-0.4, negatives at 0.05-0.2: 0.5 gets every positive wrong.
        let p = [0.3f32, 0.35, 0.4, 0.05, 0.1, 0.15, 0.2, 0.12];
        let y = [true, true, true, false, false, false, false, false];
        let best = tune_threshold(&p, &y, ThresholdMetric::BalancedAccuracy);
        assert!((0.2..=0.3).contains(&best.threshold), "{best:?}");
        assert_eq!(best.balanced_accuracy, 1.0);
        assert!((best.threshold - 0.25).abs() < 1e-6, "{best:?}");
        let f1 = tune_threshold(&p, &y, ThresholdMetric::F1);
        assert_eq!(f1.f1, 1.0);
        // Separable around 0.5: 0.5 itself is kept.
        let p = [0.9f32, 0.8, 0.1, 0.2];
        let y = [true, true, false, false];
        assert_eq!(
            tune_threshold(&p, &y, ThresholdMetric::BalancedAccuracy).threshold,
            0.5
        );
        // A lone positive below every negative: the best is to call everything positive or
        // everything negative; balanced accuracy is 0.5 either way.
        let s = binary_scores(&[0.1, 0.6, 0.7], &[true, false, false], 0.5);
        assert_eq!(
            (s.true_positives, s.false_positives, s.false_negatives),
            (0, 2, 1)
        );
    }
}
