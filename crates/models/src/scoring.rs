//! A finished run's model, for scoring: the run folder's best checkpoint loaded into a
//! [`Classifier`], the preprocessing it was validated with, and softmax probabilities.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use lennonnet_records::run::{BEST, RunRecord, read_record};

use crate::error::{Error, Result};
use crate::{Arch, Classifier, HeadPolicy, ModelOptions, PretrainedCfg};

/// A finished run's best model, ready for inference (eval mode: call `forward_t(x, false)`),
/// with its record. Inputs are prepared with [`preprocess_cfg`] and
/// [`crate::preprocess::image_to_tensor`], which give the pixels validation saw.
pub fn load_best(dir: &Path, device: &Device) -> Result<(RunRecord, Classifier)> {
    if !dir.is_dir() {
        return Err(Error::NotARun {
            dir: dir.to_path_buf(),
            reason: "no such folder".into(),
        });
    }
    let record = read_record(dir)?.ok_or_else(|| Error::NotARun {
        dir: dir.to_path_buf(),
        reason: "it holds no run.json".into(),
    })?;
    let arch = Arch::from_name(&record.model)?;
    let model = Classifier::new(
        arch,
        &ModelOptions {
            num_classes: record.classes.len(),
            ..Default::default()
        },
        device,
    )?;
    model.load_weights(&dir.join(BEST), HeadPolicy::Require)?;
    Ok((record, model))
}

/// The preprocessing a run trained and validated with, for
/// [`crate::preprocess::image_to_tensor`].
pub fn preprocess_cfg(record: &RunRecord) -> PretrainedCfg {
    let p = &record.preprocess;
    PretrainedCfg {
        input_size: p.input_px,
        crop_pct: p.crop_pct,
        mean: p.mean,
        std: p.std,
        interpolation: match p.interpolation.as_str() {
            "bicubic" => "bicubic",
            "nearest" => "nearest",
            _ => "bilinear",
        },
    }
}

/// Row-wise softmax of logits, as plain numbers.
pub fn probabilities(logits: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    candle_nn::ops::softmax(
        &logits.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
        D::Minus1,
    )?
    .to_vec2::<f32>()
}
