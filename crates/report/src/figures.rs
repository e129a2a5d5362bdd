//! Figures the report derives from eval's outputs: the ROC curve's points and the headline.

use lennonnet_records::eval::{EvalMetrics, Prediction, SplitScores};

/// The split the headline and the test figures show: the test split, or validation when the
/// snapshot has no test images (its threshold was tuned on it, which the page says).
pub fn headline_split(eval: &EvalMetrics) -> &SplitScores {
    if eval.test.labels.images > 0 {
        &eval.test
    } else {
        &eval.val
    }
}

/// The ROC curve of P(positive) over `preds` against their labels: (false positive rate, true
/// positive rate) from (0, 0) to (1, 1), one point per distinct probability (tied images move
/// together, so the area under these points counts ties one half, as eval's AUC does). `None`
/// when one class is absent.
pub fn roc_points(preds: &[&Prediction], positive: &str) -> Option<Vec<(f64, f64)>> {
    let mut scored: Vec<(f32, bool)> = preds
        .iter()
        .map(|p| (p.p_positive, p.label == positive))
        .collect();
    let pos = scored.iter().filter(|s| s.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < scored.len() {
        let p = scored[i].0;
        while i < scored.len() && scored[i].0 == p {
            if scored[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
    }
    Some(points)
}

/// The area under a curve through `points` (trapezoids).
pub fn area(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// The eval set of another class most often taken for the positive class (the founding study's
/// "George is taken for John"), with the others for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Confused {
    pub group: String,
    /// Share of its images decided positive (wrong).
    pub wrong: f64,
    pub images: usize,
    /// The other eval sets of other classes: (group, share wrong), most confused first.
    pub others: Vec<(String, f64)>,
}

/// The [`Confused`] finding; `None` with fewer than two eval sets of other classes.
pub fn most_confused(eval: &EvalMetrics) -> Option<Confused> {
    let positive = &eval.run.positive_class;
    let mut sets: Vec<(String, f64, usize)> = eval
        .eval_sets
        .iter()
        .filter(|s| &s.label != positive && s.images > 0)
        .map(|s| (s.group.clone(), s.wrong as f64 / s.images as f64, s.images))
        .collect();
    if sets.len() < 2 {
        return None;
    }
    sets.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let (group, wrong, images) = sets.remove(0);
    Some(Confused {
        group,
        wrong,
        images,
        others: sets.into_iter().map(|(g, w, _)| (g, w)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(p: f32, label: &str) -> Prediction {
        Prediction {
            id: format!("{p}{label}"),
            split: "test".into(),
            group: label.into(),
            label: label.into(),
            p_positive: p,
            predicted: if p >= 0.5 { "john" } else { "not_john" }.into(),
            correct: true,
            suspicion: None,
            oof_p_label: None,
            neighbour_disagreement: None,
            training_margin: None,
            truth: None,
            sources: Vec::new(),
        }
    }

    /// AUC by counting pairs, ties one half: what eval computes.
    fn pairwise_auc(preds: &[Prediction]) -> f64 {
        let pos: Vec<f32> = preds
            .iter()
            .filter(|p| p.label == "john")
            .map(|p| p.p_positive)
            .collect();
        let neg: Vec<f32> = preds
            .iter()
            .filter(|p| p.label != "john")
            .map(|p| p.p_positive)
            .collect();
        let mut s = 0.0;
        for &a in &pos {
            for &b in &neg {
                s += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        s / (pos.len() * neg.len()) as f64
    }

    #[test]
    fn roc_area_matches_pairwise_auc_with_ties() {
        let preds = vec![
            pred(0.9, "john"),
            pred(0.8, "john"),
            pred(0.8, "not_john"),
            pred(0.6, "john"),
            pred(0.3, "not_john"),
            pred(0.3, "john"),
            pred(0.1, "not_john"),
        ];
        let refs: Vec<&Prediction> = preds.iter().collect();
        let pts = roc_points(&refs, "john").expect("both classes");
        assert_eq!(pts.first(), Some(&(0.0, 0.0)));
        assert_eq!(pts.last(), Some(&(1.0, 1.0)));
        assert!((area(&pts) - pairwise_auc(&preds)).abs() < 1e-12);
    }

    #[test]
    fn roc_needs_both_classes() {
        let preds = [pred(0.9, "john")];
        let refs: Vec<&Prediction> = preds.iter().collect();
        assert_eq!(roc_points(&refs, "john"), None);
    }
}
