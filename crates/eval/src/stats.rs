//! The figures, as pure functions of probabilities and classes: ROC AUC (ties count one half),
//! calibration (ECE, MCE, reliability bins), histograms, the scores of one reference, and
//! confident learning's thresholds, joint and suspects.

use crate::metrics::{
    Calibration, ClassCount, ClassThreshold, ConfusionMatrix, Histogram, PositiveScores,
    ReliabilityBin, Scores,
};

/// One scored image as the figures see it.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    /// P(class | image) for every class, in class order; the positive class is index 0.
    pub probs: &'a [f32],
    pub predicted: usize,
    /// The reference class (label or truth).
    pub reference: usize,
}

/// The class decided for `probs`: with two classes, the positive one (index 0) when
/// P(positive) ≥ threshold, else the other; with more, the argmax (first on ties).
pub fn decide(probs: &[f32], threshold: f64) -> usize {
    if probs.len() == 2 {
        return if f64::from(probs[0]) >= threshold {
            0
        } else {
            1
        };
    }
    let mut best = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > probs[best] {
            best = i;
        }
    }
    best
}

/// `0/0` is 0.
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Area under the ROC curve of `scores` for `positive` (Mann-Whitney U with mid-ranks, so tied
/// scores across the classes count one half). `None` when either class is absent.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positive.len());
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' mid-ranks (1-based).
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// `bins` equal-width edges over [0, 1]: `i / bins`.
pub fn edges(bins: usize) -> Vec<f64> {
    (0..=bins).map(|i| i as f64 / bins as f64).collect()
}

/// The bin of `v` among `edges`: the last `i` with `edges[i] <= v`, clamped to the bins (so the
/// top edge falls in the last bin, and values outside go to the end bins).
pub fn bin_of(v: f64, edges: &[f64]) -> usize {
    let bins = edges.len() - 1;
    // partition_point: the number of edges <= v.
    let above = edges.partition_point(|&e| e <= v);
    above.saturating_sub(1).min(bins - 1)
}

/// Counts of `values` in the bins of `edges` (see [`bin_of`]).
pub fn histogram(values: impl IntoIterator<Item = f64>, edges: Vec<f64>) -> Histogram {
    let mut counts = vec![0; edges.len() - 1];
    for v in values {
        counts[bin_of(v, &edges)] += 1;
    }
    Histogram { edges, counts }
}

/// Calibration of P(positive) against whether the reference is positive.
pub fn calibration(p: &[f32], positive: &[bool], bins: usize) -> Calibration {
    let e = edges(bins);
    let mut count = vec![0usize; bins];
    let mut sum_p = vec![0f64; bins];
    let mut pos = vec![0usize; bins];
    for (&pi, &yi) in p.iter().zip(positive) {
        let b = bin_of(f64::from(pi), &e);
        count[b] += 1;
        sum_p[b] += f64::from(pi);
        pos[b] += usize::from(yi);
    }
    let n = p.len();
    let (mut ece, mut mce) = (0.0f64, 0.0f64);
    let mut out = Vec::with_capacity(bins);
    for b in 0..bins {
        let (mean_p, frac) = if count[b] == 0 {
            (None, None)
        } else {
            let m = sum_p[b] / count[b] as f64;
            let f = pos[b] as f64 / count[b] as f64;
            let gap = (m - f).abs();
            ece += count[b] as f64 / n as f64 * gap;
            mce = mce.max(gap);
            (Some(m), Some(f))
        };
        out.push(ReliabilityBin {
            lower: e[b],
            upper: e[b + 1],
            count: count[b],
            mean_p,
            fraction_positive: frac,
        });
    }
    Calibration {
        ece,
        mce,
        bins: out,
    }
}

/// Every figure of `items` against their reference classes.
pub fn scores(items: &[Scored], classes: &[String], reference: &str, bins: usize) -> Scores {
    let k = classes.len();
    let mut rows = vec![vec![0usize; k]; k];
    for it in items {
        rows[it.reference][it.predicted] += 1;
    }
    let per_class: Vec<ClassCount> = (0..k)
        .map(|c| ClassCount {
            class: classes[c].clone(),
            right: rows[c][c],
            total: rows[c].iter().sum(),
        })
        .collect();
    let right: usize = (0..k).map(|c| rows[c][c]).sum();
    let present: Vec<&ClassCount> = per_class.iter().filter(|c| c.total > 0).collect();
    let balanced = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|c| ratio(c.right, c.total)).sum::<f64>() / present.len() as f64
    };
    let tp = rows[0][0];
    let predicted_pos: usize = (0..k).map(|r| rows[r][0]).sum();
    let support = per_class[0].total;
    let precision = ratio(tp, predicted_pos);
    let recall = ratio(tp, support);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let p: Vec<f32> = items.iter().map(|it| it.probs[0]).collect();
    let y: Vec<bool> = items.iter().map(|it| it.reference == 0).collect();
    let brier = if items.is_empty() {
        0.0
    } else {
        p.iter()
            .zip(&y)
            .map(|(&pi, &yi)| (f64::from(pi) - f64::from(u8::from(yi))).powi(2))
            .sum::<f64>()
            / items.len() as f64
    };
    Scores {
        reference: reference.to_string(),
        images: items.len(),
        per_class,
        accuracy: ratio(right, items.len()),
        balanced_accuracy: balanced,
        positive: PositiveScores {
            class: classes[0].clone(),
            precision,
            recall,
            f1,
            support,
            predicted: predicted_pos,
        },
        roc_auc: roc_auc(&p, &y),
        confusion: ConfusionMatrix {
            classes: classes.to_vec(),
            rows,
        },
        calibration: calibration(&p, &y, bins),
        brier,
    }
}

/// The median of `v` (mean of the middle two for an even count); 0 for none.
pub fn median(v: &[f32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Confident learning's result over a set of labelled images.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidentLearning {
    pub thresholds: Vec<ClassThreshold>,
    /// `joint[label][confident class]`.
    pub joint: Vec<Vec<usize>>,
    /// `(index, suggested class, margin)` of the off-diagonal images, most suspect first:
    /// margin = P(suggested) − P(label), larger first, then the index.
    pub suspects: Vec<(usize, usize, f32)>,
}

/// Confident learning (Northcutt, Jiang and Chuang 2021), as cleanlab's
/// `find_label_issues(filter_by = "confident_learning")`: the threshold of class j is the mean
/// P(j | x) over the images labelled j; an image counts in the confident joint at
/// (label, c) where c is the most probable class among those whose probability reaches their
/// threshold (not counted when none does); the off-diagonal images are the suspects, ranked by
/// margin. A class with no images has threshold +∞ (nothing is confidently that class).
pub fn confident_learning(
    probs: &[&[f32]],
    labels: &[usize],
    classes: &[String],
) -> ConfidentLearning {
    let k = classes.len();
    let mut sum = vec![0f64; k];
    let mut n = vec![0usize; k];
    for (p, &l) in probs.iter().zip(labels) {
        sum[l] += f64::from(p[l]);
        n[l] += 1;
    }
    let t: Vec<f64> = (0..k)
        .map(|j| {
            if n[j] == 0 {
                f64::INFINITY
            } else {
                sum[j] / n[j] as f64
            }
        })
        .collect();
    let mut joint = vec![vec![0usize; k]; k];
    let mut suspects = Vec::new();
    for (i, (p, &l)) in probs.iter().zip(labels).enumerate() {
        let mut best: Option<usize> = None;
        for j in 0..k {
            if f64::from(p[j]) >= t[j] && best.is_none_or(|b| p[j] > p[b]) {
                best = Some(j);
            }
        }
        let Some(c) = best else { continue };
        joint[l][c] += 1;
        if c != l {
            suspects.push((i, c, p[c] - p[l]));
        }
    }
    suspects.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    ConfidentLearning {
        thresholds: (0..k)
            .map(|j| ClassThreshold {
                class: classes[j].clone(),
                threshold: t[j],
                images: n[j],
            })
            .collect(),
        joint,
        suspects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn auc_by_hand() {
        // Perfect, reversed, and the chance case.
        assert_eq!(roc_auc(&[0.9, 0.8, 0.1], &[true, true, false]), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        // Positives 0.8, 0.4; negatives 0.4, 0.2, 0.1. Pairs (pos > neg): 0.8 beats all 3,
        // 0.4 ties 0.4 (1/2) and beats 0.2 and 0.1 → (3 + 2.5) / 6.
        let auc = roc_auc(
            &[0.8, 0.4, 0.4, 0.2, 0.1],
            &[true, true, false, false, false],
        );
        close(auc.unwrap(), 5.5 / 6.0);
        // A three-way tie across classes: pos {0.3, 0.3}, neg {0.3, 0.9}: 2 × ½ + 0 = 1 of 4.
        let auc = roc_auc(&[0.3, 0.3, 0.3, 0.9], &[true, true, false, false]);
        close(auc.unwrap(), 0.25);
        assert_eq!(roc_auc(&[0.3, 0.4], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }

    #[test]
    fn histogram_edges_and_the_top_value() {
        check_bins(
            &[0.0, 0.04, 0.0399, 0.04001, 0.5, 0.96, 0.99999, 1.0],
            25,
            &[(0, 2), (1, 2), (12, 1), (24, 3)],
        );
        // A value exactly on an inner edge goes to the bin that starts there.
        let e = edges(4);
        assert_eq!(bin_of(0.25, &e), 1);
        assert_eq!(bin_of(0.2499, &e), 0);
        assert_eq!(bin_of(1.0, &e), 3);
        assert_eq!(bin_of(0.0, &e), 0);
        // Two bins split at a threshold.
        let h = histogram([0.1, 0.3, 0.3, 0.7, 1.0], vec![0.0, 0.3, 1.0]);
        assert_eq!(h.counts, vec![1, 4]);
    }

    fn check_bins(values: &[f64], bins: usize, nonzero: &[(usize, usize)]) {
        let h = histogram(values.iter().copied(), edges(bins));
        assert_eq!(h.edges.len(), bins + 1);
        assert_eq!(h.edges[bins], 1.0);
        let mut want = vec![0; bins];
        for &(b, c) in nonzero {
            want[b] = c;
        }
        assert_eq!(h.counts, want);
    }

    #[test]
    fn ece_by_hand() {
        // Bin 0 [0, 0.5): p 0.2, 0.4 (one positive): mean 0.3, fraction 0.5, gap 0.2.
        // Bin 1 [0.5, 1]: p 0.6, 0.8, 1.0 (positive) and 0.9 (negative): mean 0.825, fraction
        // 0.75, gap 0.075. ECE = 2/6 · 0.2 + 4/6 · 0.075 = 0.11667; MCE = 0.2.
        let p = [0.2f32, 0.4, 0.6, 0.8, 1.0, 0.9];
        let y = [false, true, true, true, true, false];
        let c = calibration(&p, &y, 2);
        let (g0, g1) = (0.5 - (0.2f32 as f64 + 0.4f32 as f64) / 2.0, {
            let m = (0.6f32 as f64 + 0.8f32 as f64 + 1.0 + 0.9f32 as f64) / 4.0;
            m - 0.75
        });
        close(c.ece, 2.0 / 6.0 * g0.abs() + 4.0 / 6.0 * g1.abs());
        close(c.mce, g0.abs().max(g1.abs()));
        assert_eq!(c.bins[0].count, 2);
        assert_eq!(c.bins[1].count, 4);
        assert_eq!(c.bins[1].fraction_positive, Some(0.75));
        // Empty bins have no means and add nothing.
        let c = calibration(&[1.0], &[true], 10);
        assert_eq!(c.ece, 0.0);
        assert_eq!(c.bins[9].count, 1);
        assert_eq!(c.bins[0].mean_p, None);
    }

    #[test]
    fn scores_by_hand() {
        let classes = vec!["john".to_string(), "not_john".to_string()];
        // 4 john (3 right), 6 not_john (5 right), at threshold 0.5.
        let probs: Vec<[f32; 2]> = [0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.1, 0.4, 0.0]
            .iter()
            .map(|&p| [p, 1.0 - p])
            .collect();
        let reference = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
        let items: Vec<Scored> = probs
            .iter()
            .zip(reference)
            .map(|(p, r)| Scored {
                probs: p,
                predicted: decide(p, 0.5),
                reference: r,
            })
            .collect();
        let s = scores(&items, &classes, "label", 10);
        assert_eq!(
            (s.per_class[0].right, s.per_class[0].total),
            (3, 4),
            "3/4 john"
        );
        assert_eq!((s.per_class[1].right, s.per_class[1].total), (5, 6));
        assert_eq!(s.confusion.rows, vec![vec![3, 1], vec![1, 5]]);
        close(s.accuracy, 0.8);
        close(s.balanced_accuracy, (0.75 + 5.0 / 6.0) / 2.0);
        close(s.positive.precision, 0.75);
        close(s.positive.recall, 0.75);
        close(s.positive.f1, 0.75);
        // AUC: john {0.9, 0.8, 0.6, 0.3} vs not {0.7, 0.2, 0.1, 0.1, 0.4, 0.0}: 0.9 and 0.8 beat
        // all 6, 0.6 beats 5, 0.3 beats 4 → 21 / 24.
        close(s.roc_auc.unwrap(), 21.0 / 24.0);
        assert_eq!(decide(&[0.5, 0.5], 0.5), 0, "P = threshold is positive");
        assert_eq!(
            decide(&[0.1, 0.7, 0.2], 0.5),
            1,
            "argmax with three classes"
        );
    }

    #[test]
    fn confident_joint_on_a_small_example() {
        let classes = vec!["a".to_string(), "b".to_string()];
        // Labelled a: P(a) 0.9, 0.8, 0.1 → t_a = 0.6. Labelled b: P(b) 0.7, 0.9, 0.2, 0.4 →
        // t_b = 0.55.
        let p: Vec<[f32; 2]> = vec![
            [0.9, 0.1],   // a, confidently a
            [0.8, 0.2],   // a, confidently a
            [0.1, 0.9],   // a, confidently b: suspect, margin 0.8
            [0.3, 0.7],   // b, confidently b
            [0.1, 0.9],   // b, confidently b
            [0.8, 0.2],   // b, confidently a: suspect, margin 0.6
            [0.65, 0.35], // b, P(a) = 0.65 ≥ 0.6: confidently a, margin 0.3
        ];
        let labels = [0, 0, 0, 1, 1, 1, 1];
        let probs: Vec<&[f32]> = p.iter().map(|x| &x[..]).collect();
        let cl = confident_learning(&probs, &labels, &classes);
        close(
            cl.thresholds[0].threshold,
            (0.9f32 as f64 + 0.8f32 as f64 + 0.1f32 as f64) / 3.0,
        );
        assert_eq!(cl.thresholds[1].images, 4);
        assert_eq!(cl.joint, vec![vec![2, 1], vec![2, 2]]);
        let order: Vec<usize> = cl.suspects.iter().map(|s| s.0).collect();
        assert_eq!(order, vec![2, 5, 6]);
        assert!(cl.suspects.iter().all(|s| s.1 != labels[s.0]));
        // An image below every threshold is not counted at all.
        let p2: Vec<[f32; 2]> = vec![[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]];
        let probs: Vec<&[f32]> = p2.iter().map(|x| &x[..]).collect();
        let cl = confident_learning(&probs, &[0, 0, 1], &classes);
        // t_a = 0.7, t_b = 0.9: [0.5, 0.5] reaches neither.
        assert_eq!(cl.joint, vec![vec![1, 0], vec![0, 1]]);
        assert!(cl.suspects.is_empty());
    }

    #[test]
    fn median_by_hand() {
        assert_eq!(median(&[0.5, 0.25, 1.0]), 0.5);
        assert_eq!(median(&[0.5, 0.25, 1.0, 0.0]), 0.375);
        assert_eq!(median(&[]), 0.0);
    }
}
