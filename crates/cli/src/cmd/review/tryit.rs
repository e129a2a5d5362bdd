//! The "try it" tab: a picture scored with the run's best model (loaded on first use: a second or
//! two on the CPU), and its nearest training pictures by cosine of the pooled features against
//! `eval/features.safetensors`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail};
use lennonnet_eval::Scorer;
use lennonnet_models::candle_core::Device;
use lennonnet_records::eval::{EVAL_DIR, FEATURES};
use serde::Serialize;

/// Nearest pictures shown.
const NEIGHBOURS: usize = 8;

/// The pooled features of every scored image: `n × dim`, unit rows, with their ids.
pub use lennonnet_eval::features_file::FeatureFile as Features;

/// What the snapshot says of an image.
#[derive(Debug, Clone, Serialize)]
pub struct Known {
    pub label: String,
    pub split: String,
    pub group: String,
}

#[derive(Debug, Serialize)]
pub struct Near {
    pub id: String,
    pub similarity: f32,
    #[serde(flatten)]
    pub known: Option<Known>,
}

#[derive(Debug, Serialize)]
pub struct Scored {
    /// P(class), in the run's class order.
    pub probabilities: Vec<(String, f32)>,
    pub predicted: String,
    pub threshold: f64,
    pub neighbours: Vec<Near>,
    /// Seconds the model took (loading it included, the first time).
    pub secs: f64,
}

/// Loaded on first use: the model, the features and the snapshot's rows.
struct Loaded {
    scorer: Scorer,
    pool: rayon::ThreadPool,
    features: Option<Features>,
}

pub struct TryIt {
    run_dir: PathBuf,
    device: Device,
    /// Content id → label, split and group, from the run's snapshot.
    known: HashMap<String, Known>,
    loaded: Mutex<Option<Arc<Loaded>>>,
}

impl TryIt {
    pub fn new(run_dir: &Path, device: Device, known: HashMap<String, Known>) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            device,
            known,
            loaded: Mutex::new(None),
        }
    }

    fn loaded(&self) -> anyhow::Result<Arc<Loaded>> {
        let mut slot = self.loaded.lock().expect("try-it poisoned");
        if let Some(l) = slot.as_ref() {
            return Ok(Arc::clone(l));
        }
        let scorer = Scorer::load(&self.run_dir, &self.device)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .context("cannot start the decoding thread")?;
        let path = self.run_dir.join(EVAL_DIR).join(FEATURES);
        let features = match read_features(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "no nearest pictures in the try-it tab");
                None
            }
        };
        let l = Arc::new(Loaded {
            scorer,
            pool,
            features,
        });
        *slot = Some(Arc::clone(&l));
        Ok(l)
    }

    /// Scores an image file's bytes. Blocking: a forward pass.
    pub fn score(&self, bytes: Vec<u8>) -> anyhow::Result<Result<Scored, String>> {
        let started = std::time::Instant::now();
        let l = self.loaded()?;
        let out = l.scorer.score_all_with_features(
            1,
            |_| Ok(bytes.clone()),
            1,
            &l.pool,
            &|_| {},
            true,
        )?;
        let (probs, features) = match out.into_iter().next() {
            Some(Ok(x)) => x,
            Some(Err(why)) => return Ok(Err(why)),
            None => bail!("the scorer returned nothing"),
        };
        let classes = l.scorer.classes();
        let threshold = l.scorer.record.threshold.unwrap_or(0.5);
        let predicted = classes[lennonnet_eval::stats::decide(&probs, threshold)].clone();
        let neighbours = match &l.features {
            Some(f) => self.nearest(f, &features),
            None => Vec::new(),
        };
        Ok(Ok(Scored {
            probabilities: classes.iter().cloned().zip(probs).collect(),
            predicted,
            threshold,
            neighbours,
            secs: started.elapsed().as_secs_f64(),
        }))
    }

    /// The most similar training pictures (every picture when the snapshot says of none that
    /// it is a training one).
    fn nearest(&self, f: &Features, query: &[f32]) -> Vec<Near> {
        let any_train = f
            .ids
            .iter()
            .any(|id| self.known.get(id).is_some_and(|k| k.split == "train"));
        let keep =
            |id: &String| !any_train || self.known.get(id).is_some_and(|k| k.split == "train");
        nearest(f, query, NEIGHBOURS, keep)
            .into_iter()
            .map(|(i, similarity)| Near {
                id: f.ids[i].clone(),
                similarity,
                known: self.known.get(&f.ids[i]).cloned(),
            })
            .collect()
    }
}

/// The `k` rows of `f` most similar to `query` (cosine; `query` need not be unit length) among
/// those `keep` accepts, most similar first (then by row).
pub fn nearest(
    f: &Features,
    query: &[f32],
    k: usize,
    keep: impl Fn(&String) -> bool,
) -> Vec<(usize, f32)> {
    if query.len() != f.dim || f.dim == 0 {
        return Vec::new();
    }
    let norm = query.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    let mut scored: Vec<(usize, f32)> = f
        .rows
        .chunks_exact(f.dim)
        .enumerate()
        .filter(|(i, _)| keep(&f.ids[*i]))
        .map(|(i, row)| {
            (
                i,
                row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() / norm,
            )
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// Reads `features.safetensors` (eval's [`lennonnet_eval::features_file`]).
pub fn read_features(path: &Path) -> anyhow::Result<Features> {
    let buf = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_features(&buf).with_context(|| format!("{} is not eval's features file", path.display()))
}

fn parse_features(buf: &[u8]) -> anyhow::Result<Features> {
    lennonnet_eval::features_file::decode(buf).map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A features file written by hand, so that it can disagree with itself.
    fn write(ids: &[&str], rows: &[f32], dim: usize) -> Vec<u8> {
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![rows.len() / dim, dim],
            &bytes,
        )
        .unwrap();
        let meta = HashMap::from([("ids".to_string(), serde_json::to_string(ids).unwrap())]);
        safetensors::serialize([("features", view)], Some(meta)).unwrap()
    }

    #[test]
    fn features_are_read_and_searched_by_cosine() {
        let buf = write(&["a", "b", "c"], &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 2);
        let f = parse_features(&buf).unwrap();
        assert_eq!((f.ids.len(), f.dim), (3, 2));
        let near = nearest(&f, &[2.0, 0.1], 2, |_| true);
        assert_eq!(near.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 2]);
        assert!((near[0].1 - 0.9988).abs() < 1e-3, "{near:?}");
        let only_b = nearest(&f, &[2.0, 0.1], 2, |id| id == "b");
        assert_eq!(only_b.len(), 1);
        assert!(nearest(&f, &[1.0, 0.0, 0.0], 2, |_| true).is_empty());
    }

    #[test]
    fn a_features_file_that_does_not_match_is_refused() {
        let err = parse_features(&write(&["a", "b", "c"], &[1.0, 0.0], 2)).unwrap_err();
        assert_eq!(err.to_string(), "1 rows of features but 3 ids");
        assert!(parse_features(b"junk").is_err());
    }
}
