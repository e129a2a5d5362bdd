//! The evidence about every scored image's label, and the suspects it flags: out-of-fold
//! probabilities and feature-space neighbours (both from [`crate::noise`]), the run's training
//! dynamics, and confident learning on the out-of-fold probabilities of train and val.
//!
//! Pure: the same features, labels, clusters, dynamics and options give the same evidence.

use std::collections::HashMap;
use std::time::Instant;

use lennonnet_core::{ContentId, Split};

use crate::noise::{self, Features, OofOptions};
use crate::stats::{self, ConfidentLearning};

/// Neighbours per image.
pub const NEIGHBOURS: usize = 10;

/// The signal names, as `suspects.jsonl` writes them.
pub mod signal {
    pub const OUT_OF_FOLD: &str = "out_of_fold";
    pub const NEIGHBOURS: &str = "neighbours";
    pub const TRAINING_DYNAMICS: &str = "training_dynamics";
    pub const CONFIDENT_LEARNING: &str = "confident_learning";
}

/// The weights of the combined score, which is the weighted mean of the signals an image has
/// (test and eval images have no training dynamics). Chosen on the train and val splits of the
/// demo (the mirror's simulated world), never on test: docs/eval.md, "Suspect labels".
const W_OUT_OF_FOLD: f32 = 1.0;
const W_NEIGHBOURS: f32 = 1.0;
const W_TRAINING_DYNAMICS: f32 = 2.0;

/// A training image is flagged by its dynamics when its margin is negative or among the lowest
/// this share of its label's training margins (the wrong labels of the demo's world sit there:
/// docs/eval.md, "Suspect labels").
pub const DYNAMICS_QUANTILE: f64 = 0.05;

/// One image as the evidence sees it.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub id: ContentId,
    pub cluster: ContentId,
    pub split: Split,
    /// Class index of its label.
    pub label: usize,
    /// The pooled features the run's head saw.
    pub features: &'a [f32],
    /// The mean training margin of its label, for a training image the run trained on.
    pub training_margin: Option<f32>,
}

/// What is known about one image's label.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEvidence {
    /// Out-of-fold class probabilities.
    pub oof: Vec<f32>,
    /// Its nearest neighbours (index, cosine), most similar first, outside its cluster.
    pub neighbours: Vec<(usize, f32)>,
    /// The similarity-weighted share of the neighbours with another label.
    pub disagreement: f32,
    pub training_margin: Option<f32>,
    /// The combined suspicion in [0, 1].
    pub score: f32,
    /// The class the evidence suggests instead of the label (the label when none).
    pub suggested: usize,
    /// The signals that flagged it ([`signal`]); empty: not a suspect.
    pub signals: Vec<&'static str>,
}

/// The evidence about every image, confident learning over train and val, and timings.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub images: Vec<ImageEvidence>,
    /// Over the train and val images, in input order ([`Evidence::examined`] maps back).
    pub cl: ConfidentLearning,
    pub examined: Vec<usize>,
    /// The features the evidence was computed on: each row scaled to unit length.
    pub features: Features,
    pub search: noise::NeighbourSearch,
    pub oof_secs: f64,
    pub neighbour_secs: f64,
    pub secs: f64,
}

/// Gathers the evidence about every input's label.
pub fn gather(inputs: &[Input<'_>], classes: &[String], opts: OofOptions) -> Evidence {
    let started = Instant::now();
    let n = inputs.len();
    let k = classes.len();
    let dim = inputs.first().map_or(1, |i| i.features.len().max(1));
    let mut rows = Vec::with_capacity(n * dim);
    for i in inputs {
        rows.extend_from_slice(i.features);
    }
    let x = Features::normalised(dim, rows);
    let clusters: Vec<ContentId> = inputs.iter().map(|i| i.cluster).collect();
    let labels: Vec<usize> = inputs.iter().map(|i| i.label).collect();
    let labelled: Vec<bool> = inputs
        .iter()
        .map(|i| matches!(i.split, Split::Train | Split::Val))
        .collect();
    let oof = if n == 0 {
        Vec::new()
    } else {
        noise::out_of_fold(&x, &clusters, &labels, k, &labelled, opts)
    };
    let oof_secs = started.elapsed().as_secs_f64();
    let search = noise::NeighbourSearch::for_size(n, opts.seed);
    let nn = if n == 0 {
        Vec::new()
    } else {
        noise::neighbours_by(&x, &clusters, NEIGHBOURS, search)
    };
    let neighbour_secs = started.elapsed().as_secs_f64() - oof_secs;

    let examined: Vec<usize> = (0..n).filter(|&i| labelled[i]).collect();
    let probs: Vec<&[f32]> = examined.iter().map(|&i| oof[i].as_slice()).collect();
    let cl_labels: Vec<usize> = examined.iter().map(|&i| labels[i]).collect();
    let cl = stats::confident_learning(&probs, &cl_labels, classes);
    let mut in_cl = vec![false; n];
    for &(e, _, _) in &cl.suspects {
        in_cl[examined[e]] = true;
    }

    let low_margin = margin_thresholds(inputs, k);
    let images = oof
        .into_iter()
        .zip(nn)
        .enumerate()
        .map(|(i, (p, near))| {
            let label = labels[i];
            let disagreement = noise::disagreement(&near, &labels, label);
            let margin = inputs[i].training_margin;
            let suggested = suggest(&p, &near, &labels, label, k);
            let mut signals = Vec::new();
            if in_cl[i] {
                signals.push(signal::CONFIDENT_LEARNING);
            }
            if argmax(&p) != label {
                signals.push(signal::OUT_OF_FOLD);
            }
            if disagreement > 0.5 {
                signals.push(signal::NEIGHBOURS);
            }
            if margin.is_some_and(|m| m < 0.0 || m < low_margin[label]) {
                signals.push(signal::TRAINING_DYNAMICS);
            }
            ImageEvidence {
                score: combined(p[label], disagreement, margin),
                oof: p,
                neighbours: near,
                disagreement,
                training_margin: margin,
                suggested,
                signals,
            }
        })
        .collect();
    Evidence {
        images,
        cl,
        examined,
        features: x,
        search,
        oof_secs,
        neighbour_secs,
        secs: started.elapsed().as_secs_f64(),
    }
}

/// Per class: the [`DYNAMICS_QUANTILE`] quantile of the training margins of the images with
/// that label (−∞ when none has one).
fn margin_thresholds(inputs: &[Input<'_>], k: usize) -> Vec<f32> {
    (0..k)
        .map(|c| {
            let mut m: Vec<f32> = inputs
                .iter()
                .filter(|i| i.label == c)
                .filter_map(|i| i.training_margin)
                .collect();
            if m.is_empty() {
                return f32::NEG_INFINITY;
            }
            m.sort_by(f32::total_cmp);
            m[((m.len() as f64 * DYNAMICS_QUANTILE) as usize).min(m.len() - 1)]
        })
        .collect()
}

/// The combined suspicion: the weighted mean of 1 − P(label) out of fold, the neighbours'
/// disagreement and, when known, the training-dynamics signal σ(−margin).
pub fn combined(oof_p_label: f32, disagreement: f32, training_margin: Option<f32>) -> f32 {
    let mut sum = W_OUT_OF_FOLD * (1.0 - oof_p_label) + W_NEIGHBOURS * disagreement;
    let mut weight = W_OUT_OF_FOLD + W_NEIGHBOURS;
    if let Some(m) = training_margin {
        sum += W_TRAINING_DYNAMICS / (1.0 + m.exp());
        weight += W_TRAINING_DYNAMICS;
    }
    (sum / weight).clamp(0.0, 1.0)
}

/// The other class the evidence points at most: out-of-fold probability plus the neighbours'
/// similarity-weighted share of the class. The label itself when there is no other class.
fn suggest(p: &[f32], near: &[(usize, f32)], labels: &[usize], label: usize, k: usize) -> usize {
    let mut votes: Vec<f32> = p.to_vec();
    let total: f32 = near.iter().map(|&(_, s)| s.max(0.0)).sum();
    if total > 0.0 {
        for &(j, s) in near {
            votes[labels[j]] += s.max(0.0) / total;
        }
    }
    (0..k)
        .filter(|&c| c != label)
        .max_by(|&a, &b| votes[a].total_cmp(&votes[b]).then(b.cmp(&a)))
        .unwrap_or(label)
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |(i, _)| i)
}

/// The suspects' order: flagged images by score (larger first), then id.
pub fn ranking(inputs: &[Input<'_>], ev: &Evidence) -> Vec<usize> {
    let mut order: Vec<usize> = (0..inputs.len())
        .filter(|&i| !ev.images[i].signals.is_empty())
        .collect();
    order.sort_by(|&a, &b| {
        ev.images[b]
            .score
            .total_cmp(&ev.images[a].score)
            .then(inputs[a].id.cmp(&inputs[b].id))
    });
    order
}

/// The training margins of a run's dynamics.jsonl, by content id.
pub fn margins(rows: &[lennonnet_records::run::DynamicsRow]) -> HashMap<ContentId, f32> {
    rows.iter()
        .filter(|r| r.seen > 0)
        .filter_map(|r| r.id.parse().ok().map(|id| (id, r.margin)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_combined_score_weighs_the_signals_it_has() {
        // No dynamics: the mean of the two others.
        assert!((combined(0.2, 0.6, None) - 0.7).abs() < 1e-6);
        // A large positive margin pulls a training image down, a negative one up.
        assert!(combined(0.2, 0.6, Some(8.0)) < combined(0.2, 0.6, None));
        assert!(combined(0.2, 0.6, Some(-8.0)) > combined(0.2, 0.6, None));
        assert!((0.0..=1.0).contains(&combined(0.0, 1.0, Some(-50.0))));
    }

    #[test]
    fn a_flipped_label_is_flagged_and_ranked_first() {
        // Two tight clusters in 4 dimensions; one image of class 0's cluster labelled 1.
        let mut feats = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            let class = i % 2;
            let jitter = (i as f32) * 0.001;
            let row = if class == 0 {
                [1.0, jitter, 0.0, 0.1]
            } else {
                [0.0, 0.1, 1.0, jitter]
            };
            feats.push(row);
            labels.push(if i == 6 { 1 } else { class });
        }
        let ids: Vec<ContentId> = (0..40)
            .map(|i| ContentId::of(format!("img {i}").as_bytes()))
            .collect();
        let inputs: Vec<Input> = (0..40)
            .map(|i| Input {
                id: ids[i],
                cluster: ids[i],
                split: if i % 5 == 0 {
                    Split::Test
                } else {
                    Split::Train
                },
                label: labels[i],
                features: &feats[i],
                training_margin: (i % 5 != 0).then_some(if i == 6 { -2.0 } else { 3.0 }),
            })
            .collect();
        let classes = vec!["a".to_string(), "b".to_string()];
        let ev = gather(&inputs, &classes, OofOptions::default());
        let order = ranking(&inputs, &ev);
        assert_eq!(order.first(), Some(&6), "{:?}", ev.images[6]);
        let e = &ev.images[6];
        assert_eq!(e.suggested, 0);
        for s in [
            signal::OUT_OF_FOLD,
            signal::NEIGHBOURS,
            signal::TRAINING_DYNAMICS,
        ] {
            assert!(e.signals.contains(&s), "{s} in {:?}", e.signals);
        }
        assert!(e.neighbours.iter().all(|&(j, _)| j != 6));
        assert_eq!(e.neighbours.len(), NEIGHBOURS);
        // Same input, same evidence.
        let again = gather(&inputs, &classes, OofOptions::default());
        assert_eq!(again.images, ev.images);
    }
}
