//! Finding wrong labels from pooled features, without the model that memorised them:
//! out-of-fold scores from a linear head trained k times on the other folds, and each image's
//! nearest neighbours in feature space (cosine) with the labels they carry.
//!
//! Pure and deterministic: the same features, labels, ids and seed give the same numbers on every
//! machine (fold membership is a keyed hash of the content id, the head starts at zero and takes
//! a fixed number of full-batch steps, and sums run in a fixed order).

use lennonnet_core::{ContentId, keyed_hash};
use rayon::prelude::*;

/// The domain-separation context of fold membership.
const FOLD_CONTEXT: &str = "lennonnet out-of-fold v1";

/// Row-major features, one row per image, each row scaled to unit length.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub dim: usize,
    pub rows: Vec<f32>,
}

impl Features {
    /// `rows` (n × dim), each scaled to unit length (a zero row stays zero).
    pub fn normalised(dim: usize, mut rows: Vec<f32>) -> Self {
        assert!(dim > 0 && rows.len() % dim == 0, "rows must be n × dim");
        for r in rows.chunks_exact_mut(dim) {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Self { dim, rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }
}

/// The fold (0..k) of each image: a keyed hash of its content id and the seed, so membership
/// does not depend on order or on the other images.
pub fn folds(ids: &[ContentId], k: usize, seed: u64) -> Vec<usize> {
    assert!(k >= 2, "out-of-fold scoring needs at least two folds");
    ids.iter()
        .map(|id| {
            let h = keyed_hash(FOLD_CONTEXT, &seed.to_le_bytes(), &[&id.as_bytes()[..]]);
            (u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) % k as u64) as usize
        })
        .collect()
}

/// How the linear head is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadOptions {
    /// Full-batch gradient steps.
    pub steps: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the biases).
    pub weight_decay: f32,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            steps: 300,
            learning_rate: 2.0,
            weight_decay: 1e-3,
        }
    }
}

/// A softmax-regression head: `classes × dim` weights and `classes` biases.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub classes: usize,
    pub dim: usize,
    pub weights: Vec<f32>,
    pub biases: Vec<f32>,
}

impl Head {
    /// Trains on the rows `train` of `x` with `labels` (class indices), each class weighted by
    /// `rows / (classes × class rows)` so that the larger class does not win by size.
    pub fn fit(
        x: &Features,
        labels: &[usize],
        classes: usize,
        train: &[usize],
        opts: HeadOptions,
    ) -> Self {
        let dim = x.dim;
        let mut head = Head {
            classes,
            dim,
            weights: vec![0.0; classes * dim],
            biases: vec![0.0; classes],
        };
        let mut counts = vec![0usize; classes];
        for &i in train {
            counts[labels[i]] += 1;
        }
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    0.0
                } else {
                    train.len() as f32 / (classes * c) as f32
                }
            })
            .collect();
        let total: f32 = train.iter().map(|&i| class_weight[labels[i]]).sum();
        if total == 0.0 {
            return head;
        }
        for _ in 0..opts.steps {
            // Gradients of the weighted mean cross-entropy, summed in chunks in a fixed order.
            let chunks: Vec<(Vec<f32>, Vec<f32>)> = train
                .par_chunks(256)
                .map(|chunk| {
                    let mut gw = vec![0.0f32; classes * dim];
                    let mut gb = vec![0.0f32; classes];
                    let mut p = vec![0.0f32; classes];
                    for &i in chunk {
                        let row = x.row(i);
                        head.probabilities_into(row, &mut p);
                        let w = class_weight[labels[i]];
                        for c in 0..classes {
                            let err = w * (p[c] - f32::from(u8::from(labels[i] == c)));
                            gb[c] += err;
                            let g = &mut gw[c * dim..(c + 1) * dim];
                            for (g, v) in g.iter_mut().zip(row) {
                                *g += err * v;
                            }
                        }
                    }
                    (gw, gb)
                })
                .collect();
            let mut gw = vec![0.0f32; classes * dim];
            let mut gb = vec![0.0f32; classes];
            for (w, b) in chunks {
                gw.iter_mut().zip(&w).for_each(|(a, b)| *a += b);
                gb.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            }
            let lr = opts.learning_rate;
            for (w, g) in head.weights.iter_mut().zip(&gw) {
                *w -= lr * (g / total + opts.weight_decay * *w);
            }
            for (b, g) in head.biases.iter_mut().zip(&gb) {
                *b -= lr * g / total;
            }
        }
        head
    }

    /// Class probabilities of one feature row.
    pub fn probabilities(&self, row: &[f32]) -> Vec<f32> {
        let mut p = vec![0.0; self.classes];
        self.probabilities_into(row, &mut p);
        p
    }

    fn probabilities_into(&self, row: &[f32], p: &mut [f32]) {
        for (c, out) in p.iter_mut().enumerate() {
            let w = &self.weights[c * self.dim..(c + 1) * self.dim];
            *out = self.biases[c] + w.iter().zip(row).map(|(a, b)| a * b).sum::<f32>();
        }
        let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in p.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        p.iter_mut().for_each(|v| *v /= sum);
    }
}

/// How out-of-fold scores are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OofOptions {
    /// Folds (at least 2).
    pub folds: usize,
    /// Seeds fold membership.
    pub seed: u64,
    pub head: HeadOptions,
}

impl Default for OofOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            seed: 0,
            head: HeadOptions::default(),
        }
    }
}

/// Out-of-fold class probabilities of every image. The rows in `labelled` (train and val) are
/// split into folds by [`folds`] of `keys` (each image's near-duplicate cluster, so that copies
/// stay in one fold); each is scored by a head trained on the other folds. Every other row
/// (test, eval) is scored by the mean of the heads, none of which saw it.
pub fn out_of_fold(
    x: &Features,
    ids: &[ContentId],
    labels: &[usize],
    classes: usize,
    labelled: &[bool],
    opts: OofOptions,
) -> Vec<Vec<f32>> {
    let n = x.len();
    assert!(ids.len() == n && labels.len() == n && labelled.len() == n);
    let k = opts.folds;
    let fold = folds(ids, k, opts.seed);
    let heads: Vec<Head> = (0..k)
        .map(|f| {
            let train: Vec<usize> = (0..n).filter(|&i| labelled[i] && fold[i] != f).collect();
            Head::fit(x, labels, classes, &train, opts.head)
        })
        .collect();
    (0..n)
        .into_par_iter()
        .map(|i| {
            if labelled[i] {
                heads[fold[i]].probabilities(x.row(i))
            } else {
                let mut mean = vec![0.0; classes];
                for h in &heads {
                    for (m, p) in mean.iter_mut().zip(h.probabilities(x.row(i))) {
                        *m += p / k as f32;
                    }
                }
                mean
            }
        })
        .collect()
}

/// Above this many images, [`neighbours`] uses an approximate index.
pub const EXACT_LIMIT: usize = 100_000;

/// How the neighbours are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourSearch {
    /// Every pair compared.
    Exact,
    /// A seeded HNSW index (the `instant-distance` crate), built on one thread so that the same
    /// features and seed give the same graph, searched in parallel.
    Hnsw { seed: u64 },
}

impl NeighbourSearch {
    /// Exact up to [`EXACT_LIMIT`] images, HNSW above.
    pub fn for_size(n: usize, seed: u64) -> Self {
        if n > EXACT_LIMIT {
            Self::Hnsw { seed }
        } else {
            Self::Exact
        }
    }

    /// As `metrics.json`'s `suspects.method.search` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Hnsw { .. } => "hnsw (instant-distance)",
        }
    }
}

/// Each row's `k` nearest other rows by cosine similarity (rows are unit length, so the dot
/// product), most similar first, leaving out the rows of its own group (`group`: its
/// near-duplicate cluster; copies would vouch for each other's label), by `search`.
pub fn neighbours_by(
    x: &Features,
    group: &[ContentId],
    k: usize,
    search: NeighbourSearch,
) -> Vec<Vec<(usize, f32)>> {
    match search {
        NeighbourSearch::Exact => neighbours(x, group, k),
        NeighbourSearch::Hnsw { seed } => approximate_neighbours(x, group, k, seed),
    }
}

/// A feature row as the HNSW index sees it: cosine distance, 1 − the dot product.
#[derive(Clone)]
struct Row<'a>(&'a [f32]);

impl instant_distance::Point for Row<'_> {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - self.0.iter().zip(other.0).map(|(a, b)| a * b).sum::<f32>()
    }
}

/// [`neighbours`] from a seeded HNSW index: approximate, for large stores.
fn approximate_neighbours(
    x: &Features,
    group: &[ContentId],
    k: usize,
    seed: u64,
) -> Vec<Vec<(usize, f32)>> {
    use instant_distance::{Builder, Search};
    let n = x.len();
    let points: Vec<Row> = (0..n).map(|i| Row(x.row(i))).collect();
    let values: Vec<usize> = (0..n).collect();
    // Parallel insertion would make the graph depend on thread timing.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let map = one.install(|| Builder::default().seed(seed).build(points, values));
    (0..n)
        .into_par_iter()
        .map_init(Search::default, |search, i| {
            let mut best = Vec::with_capacity(k);
            for item in map.search(&Row(x.row(i)), search) {
                let j = *item.value;
                if j == i || group[j] == group[i] {
                    continue;
                }
                best.push((j, 1.0 - item.distance));
                if best.len() == k {
                    break;
                }
            }
            best
        })
        .collect()
}

/// Each row's `k` nearest other rows by cosine similarity (rows are unit length, so the dot
/// product), most similar first, ties by index, leaving out the rows of its own group (`group`:
/// its near-duplicate cluster; copies would vouch for each other's label). Exact: every pair is
/// compared.
pub fn neighbours(x: &Features, group: &[ContentId], k: usize) -> Vec<Vec<(usize, f32)>> {
    let n = x.len();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let a = x.row(i);
            let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
            for j in 0..n {
                if j == i || group[j] == group[i] {
                    continue;
                }
                let s: f32 = a.iter().zip(x.row(j)).map(|(p, q)| p * q).sum();
                if best.len() < k || s > best[best.len() - 1].1 {
                    let at = best.partition_point(|&(_, t)| t >= s);
                    best.insert(at, (j, s));
                    best.truncate(k);
                }
            }
            best
        })
        .collect()
}

/// The share of `neighbours` whose label differs from `label`, each weighted by its similarity
/// (negative similarities count zero).
pub fn disagreement(neighbours: &[(usize, f32)], labels: &[usize], label: usize) -> f32 {
    let (mut other, mut all) = (0.0f32, 0.0f32);
    for &(j, s) in neighbours {
        let w = s.max(0.0);
        all += w;
        if labels[j] != label {
            other += w;
        }
    }
    if all > 0.0 { other / all } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes as two noisy directions in 16 dimensions, with every tenth label flipped.
    fn world(n: usize) -> (Features, Vec<ContentId>, Vec<usize>, Vec<usize>) {
        let dim = 16;
        let mut rows = Vec::with_capacity(n * dim);
        let mut truth = Vec::with_capacity(n);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for i in 0..n {
            let class = i % 2;
            truth.push(class);
            for d in 0..dim {
                let centre = if d % 2 == class { 1.0 } else { 0.0 };
                rows.push(centre + 0.8 * noise());
            }
        }
        let ids = (0..n)
            .map(|i| ContentId::of(format!("image {i}").as_bytes()))
            .collect();
        let labels = truth
            .iter()
            .enumerate()
            .map(|(i, &c)| if i % 10 == 3 { 1 - c } else { c })
            .collect();
        (Features::normalised(dim, rows), ids, labels, truth)
    }

    #[test]
    fn folds_are_keyed_by_id_and_balanced() {
        let (_, ids, _, _) = world(1000);
        let f = folds(&ids, 5, 7);
        assert_eq!(f, folds(&ids, 5, 7));
        assert_ne!(f, folds(&ids, 5, 8));
        let reversed: Vec<ContentId> = ids.iter().rev().copied().collect();
        let mut back = folds(&reversed, 5, 7);
        back.reverse();
        assert_eq!(f, back, "a fold does not depend on order");
        for k in 0..5 {
            let c = f.iter().filter(|&&x| x == k).count();
            assert!((150..=250).contains(&c), "fold {k} holds {c} of 1000");
        }
    }

    #[test]
    fn out_of_fold_scores_disown_the_flipped_labels() {
        let (x, ids, labels, truth) = world(600);
        let labelled = vec![true; 600];
        let opts = OofOptions {
            seed: 1,
            ..OofOptions::default()
        };
        let p = out_of_fold(&x, &ids, &labels, 2, &labelled, opts);
        assert_eq!(p, out_of_fold(&x, &ids, &labels, 2, &labelled, opts));
        // The held-out head agrees with the truth, not with a flipped label.
        let flipped: Vec<usize> = (0..600).filter(|&i| labels[i] != truth[i]).collect();
        let disowned = flipped.iter().filter(|&&i| p[i][labels[i]] < 0.5).count();
        assert!(
            disowned * 10 >= flipped.len() * 9,
            "{disowned} of {} flipped labels disowned",
            flipped.len()
        );
        let kept = (0..600)
            .filter(|&i| labels[i] == truth[i] && p[i][labels[i]] >= 0.5)
            .count();
        assert!(
            kept * 10 >= (600 - flipped.len()) * 9,
            "{kept} right labels kept"
        );
    }

    #[test]
    fn a_head_memorises_random_labels_that_out_of_fold_scores_do_not_believe() {
        // More dimensions than images and labels with no signal: a head trained on an image
        // learns its label; the head that did not see it is at chance.
        let (n, dim) = (120, 400);
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f32 / (1u64 << 31) as f32 - 0.5
        };
        let rows: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let x = Features::normalised(dim, rows);
        let labels: Vec<usize> = (0..n).map(|_| usize::from(next() > 0.0)).collect();
        let ids: Vec<ContentId> = (0..n)
            .map(|i| ContentId::of(format!("random {i}").as_bytes()))
            .collect();
        let all: Vec<usize> = (0..n).collect();
        let opts = OofOptions {
            seed: 3,
            ..OofOptions::default()
        };
        let seen = Head::fit(&x, &labels, 2, &all, opts.head);
        let right_seen = (0..n)
            .filter(|&i| seen.probabilities(x.row(i))[labels[i]] > 0.5)
            .count();
        assert!(right_seen >= n * 95 / 100, "memorised {right_seen} of {n}");
        let p = out_of_fold(&x, &ids, &labels, 2, &vec![true; n], opts);
        let right_oof = (0..n).filter(|&i| p[i][labels[i]] > 0.5).count();
        assert!(right_oof <= n * 70 / 100, "out of fold {right_oof} of {n}");
    }

    #[test]
    fn the_hnsw_index_finds_nearly_the_exact_neighbours_and_the_same_each_time() {
        let (x, ids, _, _) = world(600);
        let exact = neighbours(&x, &ids, 10);
        let search = NeighbourSearch::Hnsw { seed: 4 };
        let approx = neighbours_by(&x, &ids, 10, search);
        assert_eq!(
            approx,
            neighbours_by(&x, &ids, 10, search),
            "seeded: the same"
        );
        let found: usize = exact
            .iter()
            .zip(&approx)
            .map(|(e, a)| a.iter().filter(|p| e.iter().any(|q| q.0 == p.0)).count())
            .sum();
        assert!(found * 10 >= 600 * 10 * 9, "recall {found} of 6000");
        assert!(
            approx
                .iter()
                .enumerate()
                .all(|(i, a)| a.len() == 10 && a.iter().all(|p| p.0 != i))
        );
        assert_eq!(
            NeighbourSearch::for_size(EXACT_LIMIT, 1),
            NeighbourSearch::Exact
        );
        assert_eq!(
            NeighbourSearch::for_size(EXACT_LIMIT + 1, 1),
            NeighbourSearch::Hnsw { seed: 1 }
        );
    }

    #[test]
    fn neighbours_are_exact_and_their_labels_point_at_the_flips() {
        let (x, ids, labels, truth) = world(400);
        let nn = neighbours(&x, &ids, 10);
        // Brute force for one row.
        let mut all: Vec<(usize, f32)> = (1..400)
            .map(|j| (j, x.row(0).iter().zip(x.row(j)).map(|(a, b)| a * b).sum()))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(
            nn[0].iter().map(|n| n.0).collect::<Vec<_>>(),
            all[..10].iter().map(|n| n.0).collect::<Vec<_>>()
        );
        let flipped: Vec<usize> = (0..400).filter(|&i| labels[i] != truth[i]).collect();
        let flagged = flipped
            .iter()
            .filter(|&&i| disagreement(&nn[i], &labels, labels[i]) > 0.5)
            .count();
        assert!(
            flagged * 10 >= flipped.len() * 8,
            "{flagged} of {} flipped labels flagged by their neighbours",
            flipped.len()
        );
    }
}
