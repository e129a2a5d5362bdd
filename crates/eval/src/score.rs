//! Scoring images with a run's best model: decode (EXIF-upright) and preprocess in parallel as
//! validation did, then forward passes in batches, the next batch prepared while the model runs.

use std::path::Path;
use std::sync::mpsc;

use lennonnet_dataset::decode_upright;
use lennonnet_models::candle_core::{DType, Device, Tensor};
use lennonnet_models::scoring::{load_best, preprocess_cfg, probabilities};
use lennonnet_models::{Classifier, PretrainedCfg, preprocess};
use lennonnet_records::run::RunRecord;
use rayon::prelude::*;

use crate::error::{EvalError, Result};

/// A run's best model, ready to score images.
pub struct Scorer {
    pub record: RunRecord,
    model: Classifier,
    cfg: PretrainedCfg,
    device: Device,
}

/// Why one input could not be scored (the others still are).
pub type ItemResult = std::result::Result<Vec<f32>, String>;

/// One row of numbers per input.
type Rows = Vec<Vec<f32>>;

/// One input's probabilities and pooled features, or why it could not be scored.
pub type FeatureResult = std::result::Result<(Vec<f32>, Vec<f32>), String>;

impl Scorer {
    /// Loads `<run_dir>/best.safetensors` and the run's preprocessing.
    pub fn load(run_dir: &Path, device: &Device) -> Result<Self> {
        let (record, model) = load_best(run_dir, device).map_err(|source| EvalError::Run {
            dir: run_dir.to_path_buf(),
            source: Box::new(source),
        })?;
        let cfg = preprocess_cfg(&record);
        Ok(Self {
            record,
            model,
            cfg,
            device: device.clone(),
        })
    }

    pub fn classes(&self) -> &[String] {
        &self.record.classes
    }

    /// The model input of an image file's bytes: `[3, S, S]`.
    pub fn prepare(&self, bytes: &[u8]) -> std::result::Result<Tensor, String> {
        let img = decode_upright(bytes)?;
        preprocess::image_to_tensor(&img, &self.cfg, &self.device).map_err(|e| e.to_string())
    }

    /// Class probabilities for a batch of prepared inputs.
    pub fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Vec<f32>>> {
        Ok(self.forward_features(inputs, false)?.0)
    }

    /// Class probabilities and, when asked, the pooled features the head saw, for a batch of
    /// prepared inputs. The probabilities are the same numbers either way.
    fn forward_features(&self, inputs: &[Tensor], keep_features: bool) -> Result<(Rows, Rows)> {
        if inputs.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let x = Tensor::stack(inputs, 0).map_err(EvalError::model)?;
        let features = self.model.features_t(&x, false).map_err(EvalError::model)?;
        let logits = self
            .model
            .head_t(&features, false)
            .map_err(EvalError::model)?;
        let probs = probabilities(&logits).map_err(EvalError::model)?;
        let rows = if keep_features {
            features
                .to_dtype(DType::F32)
                .and_then(|f| f.to_device(&Device::Cpu))
                .and_then(|f| f.to_vec2::<f32>())
                .map_err(EvalError::model)?
        } else {
            Vec::new()
        };
        Ok((probs, rows))
    }

    /// Scores `n` inputs whose bytes `load(i)` returns, `batch` at a time, preparing on `pool`
    /// while the model runs the previous batch. Per-input failures (unreadable, undecodable) are
    /// returned in place; `done(k)` is called after each batch with the inputs it held.
    pub fn score_all<L>(
        &self,
        n: usize,
        load: L,
        batch: usize,
        pool: &rayon::ThreadPool,
        done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<ItemResult>>
    where
        L: Fn(usize) -> std::result::Result<Vec<u8>, String> + Sync,
    {
        let scored = self.score_all_with_features(n, load, batch, pool, done, false)?;
        Ok(scored.into_iter().map(|r| r.map(|(p, _)| p)).collect())
    }

    /// As [`Scorer::score_all`], and with `keep_features` each scored input's pooled features
    /// beside its probabilities (empty otherwise).
    pub fn score_all_with_features<L>(
        &self,
        n: usize,
        load: L,
        batch: usize,
        pool: &rayon::ThreadPool,
        done: &(dyn Fn(usize) + Sync),
        keep_features: bool,
    ) -> Result<Vec<FeatureResult>>
    where
        L: Fn(usize) -> std::result::Result<Vec<u8>, String> + Sync,
    {
        let batch = batch.max(1);
        let mut out: Vec<FeatureResult> = Vec::with_capacity(n);
        let starts: Vec<usize> = (0..n).step_by(batch).collect();
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = mpsc::sync_channel::<Vec<std::result::Result<Tensor, String>>>(1);
            let load = &load;
            s.spawn(move || {
                for &start in &starts {
                    let end = (start + batch).min(n);
                    let prepared: Vec<_> = pool.install(|| {
                        (start..end)
                            .into_par_iter()
                            .map(|i| load(i).and_then(|b| self.prepare(&b)))
                            .collect()
                    });
                    if tx.send(prepared).is_err() {
                        return;
                    }
                }
            });
            for prepared in rx {
                let k = prepared.len();
                let ok: Vec<Tensor> = prepared
                    .iter()
                    .filter_map(|r| r.as_ref().ok().cloned())
                    .collect();
                let (probs, features) = self.forward_features(&ok, keep_features)?;
                let mut probs = probs.into_iter();
                let mut features = features.into_iter();
                for r in prepared {
                    out.push(match r {
                        Ok(_) => Ok((
                            probs.next().expect("one row per input"),
                            features.next().unwrap_or_default(),
                        )),
                        Err(e) => Err(e),
                    });
                }
                done(k);
            }
            Ok(())
        })?;
        Ok(out)
    }
}
