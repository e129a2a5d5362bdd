//! Figures computed from predictions, and the decision threshold: plain numbers, no tensors.

use serde::{Deserialize, Serialize};

use crate::settings::ThresholdMetric;

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

/// The standard error of `metric` at one threshold, from the counts alone, with the
/// plus-four (Agresti-Coull) estimate of each proportion, `p = (x + 2) / (n + 4)` and variance
/// `p (1 - p) / (n + 4)`, so that a recall of 50/50 does not count as certain: balanced
/// accuracy as the mean of the two recalls, `sqrt(var(recall) + var(specificity)) / 2`; F1 as
/// a proportion of true positives over its denominator `tp + (fp + fn) / 2`.
pub fn standard_error(s: &BinaryScores, metric: ThresholdMetric) -> f64 {
    let var = |x: f64, n: f64| {
        let p = (x + 2.0) / (n + 4.0);
        p * (1.0 - p) / (n + 4.0)
    };
    let (tp, fp, tn, fneg) = (
        s.true_positives as f64,
        s.false_positives as f64,
        s.true_negatives as f64,
        s.false_negatives as f64,
    );
    match metric {
        ThresholdMetric::BalancedAccuracy => (var(tp, tp + fneg) + var(tn, tn + fp)).sqrt() / 2.0,
        ThresholdMetric::F1 => var(tp, tp + (fp + fneg) / 2.0).sqrt(),
    }
}

/// The decision threshold on P(positive), tuned on validation predictions by the
/// one-standard-error rule: the cut nearest 0.5 among those whose `metric` is within one
/// standard error ([`standard_error`], at the best cut) of the best.
///
/// The candidates are 0.5 and the midpoints between consecutive distinct probabilities (every
/// decision the data can tell apart), and one cut below and above them all. The best cut alone
/// chases single images on a small validation split (one `john` image is a whole point of
/// balanced accuracy on 50); 0.5 is the decision the class-weighted loss trains for, so the
/// threshold moves away from it only as far as validation shows a gain larger than its own
/// noise.
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
    let scored: Vec<BinaryScores> = candidates
        .iter()
        .map(|&t| binary_scores(p_pos, is_pos, t))
        .collect();
    let nearer =
        |a: &BinaryScores, b: &BinaryScores| (a.threshold - 0.5).abs() < (b.threshold - 0.5).abs();
    let mut best = scored[0];
    for s in &scored {
        let (a, b) = (value(s), value(&best));
        if a > b + 1e-12 || ((a - b).abs() <= 1e-12 && nearer(s, &best)) {
            best = *s;
        }
    }
    let floor = value(&best) - standard_error(&best, metric) - 1e-12;
    let mut chosen = best;
    for s in &scored {
        if value(s) >= floor && nearer(s, &chosen) {
            chosen = *s;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_standard_error_is_the_plus_four_one() {
        // 45 of 46 positives, 180 of 186 negatives.
        let s = BinaryScores {
            threshold: 0.5,
            accuracy: 0.0,
            balanced_accuracy: 0.0,
            precision: 0.0,
            recall: 45.0 / 46.0,
            f1: 0.0,
            true_positives: 45,
            false_positives: 6,
            true_negatives: 180,
            false_negatives: 1,
        };
        let (p1, p0): (f64, f64) = (47.0 / 50.0, 182.0 / 190.0);
        let expected = (p1 * (1.0 - p1) / 50.0 + p0 * (1.0 - p0) / 190.0).sqrt() / 2.0;
        let got = standard_error(&s, ThresholdMetric::BalancedAccuracy);
        assert!((got - expected).abs() < 1e-12, "{got} {expected}");
        // F1: 45 true positives over 45 + 7 / 2.
        let p = 47.0 / 52.5;
        let expected = (p * (1.0f64 - p) / 52.5).sqrt();
        let got = standard_error(&s, ThresholdMetric::F1);
        assert!((got - expected).abs() < 1e-12, "{got} {expected}");
        // A perfect recall is not certain.
        let perfect = BinaryScores {
            true_positives: 50,
            false_negatives: 0,
            ..s
        };
        assert!(standard_error(&perfect, ThresholdMetric::BalancedAccuracy) > 0.01);
    }

    #[test]
    fn the_threshold_leaves_one_half_only_for_a_gain_beyond_one_standard_error() {
        // 50 positives and 200 negatives, separated at 0.5 but for one positive at 0.45 and
        // one at 0.3, and one negative at 0.35.
        let mut p = vec![0.9f32; 48];
        p.extend([0.45, 0.3]);
        p.extend(vec![0.1f32; 199]);
        p.push(0.35);
        let y: Vec<bool> = (0..250).map(|i| i < 50).collect();
        // The best cut takes every positive and the one negative (0.1 < cut < 0.3): balanced
        // accuracy (1 + 199/200) / 2. The cut between 0.35 and 0.45 misses one positive and no
        // negative: 0.99, within one standard error of the best (about 0.0135); 0.5, missing
        // two positives (0.98), is not. The chosen cut is the nearest 0.5 within it.
        let at = |t: f64| binary_scores(&p, &y, t).balanced_accuracy;
        assert!((at(0.2) - 0.9975).abs() < 1e-9 && (at(0.4) - 0.99).abs() < 1e-9);
        let best = tune_threshold(&p, &y, ThresholdMetric::BalancedAccuracy);
        assert!((best.threshold - 0.4).abs() < 1e-6, "{best:?}");
        assert_eq!((best.true_positives, best.false_positives), (49, 0));
        // With ten times the images the same shape of gain is beyond the noise: the best cut
        // wins.
        let p10: Vec<f32> = p.iter().flat_map(|&x| std::iter::repeat_n(x, 10)).collect();
        let y10: Vec<bool> = y.iter().flat_map(|&x| std::iter::repeat_n(x, 10)).collect();
        let best = tune_threshold(&p10, &y10, ThresholdMetric::BalancedAccuracy);
        assert!((0.1..0.3).contains(&best.threshold), "{best:?}");
        assert_eq!((best.true_positives, best.false_positives), (500, 10));
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
