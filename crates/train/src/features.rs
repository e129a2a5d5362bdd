//! The feature cache of the `head` strategy: the frozen backbone's pooled features of every
//! train and val image, computed once and reused by every epoch and every run with the same
//! backbone, weights, preprocessing and images.
//!
//! View 0 of a training image is the eval transform (centre crop); with `feature_views = V > 1`,
//! views 1..V are training augmentations drawn from the run seed, the view and the image's
//! position, and each epoch picks one view per image at random. Validation images have one view.
//!
//! On disk: `<cache>/features-<snapshot, 16 hex>-<model>-<key, 16 hex>.safetensors` with
//! tensors `train.<view>` `[train images, features]` and `val` `[val images, features]`, f32;
//! the key hashes everything the features depend on.
//!
//! The boundary cache of `partial` with `cache_boundary = true` is the same idea one cut earlier:
//! the activations at the input of the first trainable block (for EfficientNet-Lite0's default,
//! the input of `blocks.5`: 112 channels at 14 × 14 for 224 px), in the backend's layout, for the
//! same views. On disk: `<cache>/boundary-<snapshot>-<model>-<key>.safetensors` with one tensor
//! `train` `[views × train images, ...]` in f16 (half the memory; the trainable part sees it as
//! f32) and `val` `[val images, ...]` in f32, so validation and the tuned threshold see exactly
//! the activations of the full forward pass.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use lennonnet_core::{ContentId, Progress};
use serde::Serialize;

use lennonnet_records::AugmentOptions;

use crate::augment::{Normalise, augment, centre_crop};
use crate::data::cache::PixelCache;
use crate::data::loader::{LoaderOptions, for_each_batch};
use crate::models::Classifier;
use crate::rng;
use crate::train_error::{TrainError, TrainResult};

/// Version of the feature files; part of the key.
pub const FORMAT_VERSION: u32 = 1;

/// Everything the features depend on.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureKey<'a> {
    pub format_version: u32,
    pub snapshot: &'a str,
    pub model: &'a str,
    /// The weights' blake3, or `random:<seed>` for a randomly initialised backbone.
    pub weights: String,
    pub input_px: usize,
    pub cache_px: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub dtype: String,
    pub views: usize,
    /// The augmentation and seed of views 1.. (absent with one view).
    pub augment: Option<(&'a AugmentOptions, u64)>,
    pub train: &'a [ContentId],
    pub val: &'a [ContentId],
    /// The boundary cache's cut (block index and name) and the backend whose layout it stores;
    /// absent for pooled features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary: Option<(usize, &'a str, &'a str)>,
}

impl FeatureKey<'_> {
    pub fn file_name(&self) -> String {
        let json = serde_json::to_vec(self).expect("the key serialises");
        let hash = blake3::hash(&json).to_hex();
        let short = &self.snapshot[..self.snapshot.len().min(16)];
        let kind = if self.boundary.is_some() {
            "boundary"
        } else {
            "features"
        };
        format!("{kind}-{short}-{}-{}.safetensors", self.model, &hash[..16])
    }
}

/// Features in memory, on the CPU.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub dim: usize,
    /// Per view, `[train images × dim]`, row-major.
    pub train: Vec<Vec<f32>>,
    pub val: Vec<f32>,
    pub path: PathBuf,
}

/// What a feature batch is made of: image slots, and the view of each (`None`: centre crop).
struct Item {
    slot: usize,
    view: Option<(usize, usize)>,
}

/// Loads the features for `key`, computing and saving them first if they are not cached.
#[allow(clippy::too_many_arguments)]
pub fn open_or_build(
    cache_dir: &Path,
    key: &FeatureKey,
    model: &Classifier,
    pixels: &PixelCache,
    train_slots: &[usize],
    val_slots: &[usize],
    batch_size: usize,
    loader: LoaderOptions,
    norm: Normalise,
    progress: &dyn Progress,
) -> TrainResult<FeatureSet> {
    let path = cache_dir.join(key.file_name());
    if path.is_file() {
        match load(&path, key.views, train_slots.len(), val_slots.len()) {
            Ok(set) => {
                tracing::debug!(path = %path.display(), "feature cache found");
                return Ok(set);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable feature cache; computing it again")
            }
        }
    }
    let mut items: Vec<Item> = Vec::new();
    for view in 0..key.views {
        for (i, &slot) in train_slots.iter().enumerate() {
            items.push(Item {
                slot,
                view: (view > 0).then_some((view, i)),
            });
        }
    }
    items.extend(val_slots.iter().map(|&slot| Item { slot, view: None }));

    let started = std::time::Instant::now();
    let side = pixels.side();
    let px = key.input_px;
    let batches = items.len().div_ceil(batch_size);
    let augment_opts = key.augment.map(|(a, s)| (a.clone(), s));
    progress.start("features", Some(items.len() as u64));
    let mut rows: Vec<f32> = Vec::with_capacity(items.len() * model.num_features());
    for_each_batch(
        loader,
        0,
        batches,
        |b| {
            let chunk = &items[b * batch_size..((b + 1) * batch_size).min(items.len())];
            let mut images = vec![0f32; chunk.len() * 3 * px * px];
            let mut buf = vec![0u8; pixels.image_bytes()];
            for (item, dst) in chunk.iter().zip(images.chunks_exact_mut(3 * px * px)) {
                pixels.read(item.slot, &mut buf)?;
                match (item.view, &augment_opts) {
                    (Some((view, index)), Some((opts, seed))) => {
                        let mut r =
                            rng::stream(*seed, "feature-view", &[view as u64, index as u64]);
                        augment(&buf, side, px, opts, &mut r, &norm, dst);
                    }
                    _ => centre_crop(&buf, side, px, &norm, dst),
                }
            }
            Ok((chunk.len(), images))
        },
        |_, (n, images)| {
            let x = Tensor::from_vec(images, (n, 3, px, px), model.device())?;
            let f = model.features_t(&x, false)?;
            let f = f.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            rows.extend(f.flatten_all()?.to_vec1::<f32>()?);
            progress.advance("features", n as u64);
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )?;
    progress.finish("features");
    let dim = model.num_features();
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        images = items.len(),
        secs = format!("{secs:.1}"),
        images_per_sec = format!("{:.1}", items.len() as f64 / secs.max(1e-9)),
        "features computed"
    );
    let n_train = train_slots.len() * dim;
    let mut train = Vec::with_capacity(key.views);
    for v in 0..key.views {
        train.push(rows[v * n_train..(v + 1) * n_train].to_vec());
    }
    let val = rows[key.views * n_train..].to_vec();
    let set = FeatureSet {
        dim,
        train,
        val,
        path: path.clone(),
    };
    save(&set, train_slots.len(), val_slots.len())?;
    Ok(set)
}

fn save(set: &FeatureSet, n_train: usize, n_val: usize) -> TrainResult<()> {
    let mut tensors = Vec::new();
    for (v, rows) in set.train.iter().enumerate() {
        tensors.push((
            format!("train.{v}"),
            Tensor::from_slice(rows, (n_train, set.dim), &Device::Cpu)?,
        ));
    }
    tensors.push((
        "val".to_string(),
        Tensor::from_slice(&set.val, (n_val, set.dim), &Device::Cpu)?,
    ));
    if let Some(dir) = set.path.parent() {
        std::fs::create_dir_all(dir).map_err(TrainError::io("create", dir))?;
    }
    crate::weights::write_safetensors(&set.path, &tensors, &[])?;
    Ok(())
}

fn load(path: &Path, views: usize, n_train: usize, n_val: usize) -> TrainResult<FeatureSet> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
    let corrupt = |reason: String| TrainError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let get = |name: &str, rows: usize| -> TrainResult<(usize, Vec<f32>)> {
        let t = tensors
            .get(name)
            .ok_or_else(|| corrupt(format!("no tensor `{name}`")))?;
        let (r, dim) = t.dims2()?;
        if r != rows {
            return Err(corrupt(format!("`{name}` has {r} rows, expected {rows}")));
        }
        Ok((dim, t.flatten_all()?.to_vec1::<f32>()?))
    };
    let (dim, val) = get("val", n_val)?;
    let mut train = Vec::with_capacity(views);
    for v in 0..views {
        let (d, rows) = get(&format!("train.{v}"), n_train)?;
        if d != dim {
            return Err(corrupt(format!(
                "`train.{v}` has {d} features, `val` {dim}"
            )));
        }
        train.push(rows);
    }
    Ok(FeatureSet {
        dim,
        train,
        val,
        path: path.to_path_buf(),
    })
}

/// Boundary activations in memory, on the CPU: `train` `[views × train images, ...]` (f16, view
/// `v` of image `i` at row `v × images + i`) and `val` `[val images, ...]` (f32).
#[derive(Debug, Clone)]
pub struct BoundarySet {
    pub train: Tensor,
    pub val: Tensor,
    pub views: usize,
    pub path: PathBuf,
}

impl BoundarySet {
    /// The training rows `rows` (as indices into `train`), in the given dtype, on `device`.
    pub fn train_rows(&self, rows: &[u32], dtype: DType, device: &Device) -> TrainResult<Tensor> {
        let ids = Tensor::from_slice(rows, rows.len(), &Device::Cpu)?;
        Ok(self
            .train
            .index_select(&ids, 0)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }

    /// Validation rows `start..end`.
    pub fn val_rows(
        &self,
        start: usize,
        end: usize,
        dtype: DType,
        device: &Device,
    ) -> TrainResult<Tensor> {
        Ok(self
            .val
            .narrow(0, start, end - start)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }
}

/// Loads the boundary activations for `key` (whose `boundary` is set), computing and saving
/// them first if they are not cached.
#[allow(clippy::too_many_arguments)]
pub fn open_or_build_boundary(
    cache_dir: &Path,
    key: &FeatureKey,
    model: &Classifier,
    pixels: &PixelCache,
    train_slots: &[usize],
    val_slots: &[usize],
    batch_size: usize,
    loader: LoaderOptions,
    norm: Normalise,
    progress: &dyn Progress,
) -> TrainResult<BoundarySet> {
    let (at, _, _) = key.boundary.expect("a boundary key names the boundary");
    let path = cache_dir.join(key.file_name());
    if path.is_file() {
        match load_boundary(&path, key.views, train_slots.len(), val_slots.len()) {
            Ok(set) => {
                tracing::debug!(path = %path.display(), "boundary cache found");
                return Ok(set);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable boundary cache; computing it again")
            }
        }
    }
    let mut train_items: Vec<Item> = Vec::new();
    for view in 0..key.views {
        for (i, &slot) in train_slots.iter().enumerate() {
            train_items.push(Item {
                slot,
                view: (view > 0).then_some((view, i)),
            });
        }
    }
    let val_items: Vec<Item> = val_slots
        .iter()
        .map(|&slot| Item { slot, view: None })
        .collect();
    let started = std::time::Instant::now();
    let total = (train_items.len() + val_items.len()) as u64;
    progress.start("boundary", Some(total));
    let mut parts = Vec::new();
    let forward = |x: &Tensor, dtype: DType| -> TrainResult<Tensor> {
        let a = model.boundary_t(x, at)?;
        Ok(a.to_dtype(dtype)?.to_device(&Device::Cpu)?)
    };
    for_each_view_batch(
        key,
        pixels,
        &train_items,
        batch_size,
        loader,
        norm,
        model.device(),
        |x| {
            parts.push(forward(x, DType::F16)?);
            progress.advance("boundary", x.dim(0)? as u64);
            Ok(())
        },
    )?;
    let train = Tensor::cat(&parts, 0)?;
    parts.clear();
    for_each_view_batch(
        key,
        pixels,
        &val_items,
        batch_size,
        loader,
        norm,
        model.device(),
        |x| {
            parts.push(forward(x, DType::F32)?);
            progress.advance("boundary", x.dim(0)? as u64);
            Ok(())
        },
    )?;
    let val = Tensor::cat(&parts, 0)?;
    progress.finish("boundary");
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        images = total,
        secs = format!("{secs:.1}"),
        images_per_sec = format!("{:.1}", total as f64 / secs.max(1e-9)),
        shape = ?val.dims(),
        "boundary activations computed"
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(TrainError::io("create", dir))?;
    }
    crate::weights::write_safetensors(
        &path,
        &[
            ("train".to_string(), train.clone()),
            ("val".to_string(), val.clone()),
        ],
        &[],
    )?;
    Ok(BoundarySet {
        train,
        val,
        views: key.views,
        path,
    })
}

/// Builds the input batches of `items` (centre crops or their seeded augmented views) on the
/// loader's threads and hands each, in order, to `consume`.
#[allow(clippy::too_many_arguments)]
fn for_each_view_batch(
    key: &FeatureKey,
    pixels: &PixelCache,
    items: &[Item],
    batch_size: usize,
    loader: LoaderOptions,
    norm: Normalise,
    device: &Device,
    mut consume: impl FnMut(&Tensor) -> TrainResult<()>,
) -> TrainResult<()> {
    let side = pixels.side();
    let px = key.input_px;
    let augment_opts = key.augment.map(|(a, s)| (a.clone(), s));
    for_each_batch(
        loader,
        0,
        items.len().div_ceil(batch_size),
        |b| {
            let chunk = &items[b * batch_size..((b + 1) * batch_size).min(items.len())];
            let mut images = vec![0f32; chunk.len() * 3 * px * px];
            let mut buf = vec![0u8; pixels.image_bytes()];
            for (item, dst) in chunk.iter().zip(images.chunks_exact_mut(3 * px * px)) {
                pixels.read(item.slot, &mut buf)?;
                match (item.view, &augment_opts) {
                    (Some((view, index)), Some((opts, seed))) => {
                        let mut r =
                            rng::stream(*seed, "feature-view", &[view as u64, index as u64]);
                        augment(&buf, side, px, opts, &mut r, &norm, dst);
                    }
                    _ => centre_crop(&buf, side, px, &norm, dst),
                }
            }
            Ok((chunk.len(), images))
        },
        |_, (n, images)| {
            let x = Tensor::from_vec(images, (n, 3, px, px), device)?;
            consume(&x)?;
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )
}

fn load_boundary(
    path: &Path,
    views: usize,
    n_train: usize,
    n_val: usize,
) -> TrainResult<BoundarySet> {
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
    let corrupt = |reason: String| TrainError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut take = |name: &str, rows: usize, dtype: DType| -> TrainResult<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| corrupt(format!("no tensor `{name}`")))?;
        if t.dims().first() != Some(&rows) || t.dtype() != dtype {
            return Err(corrupt(format!(
                "`{name}` is {:?} {:?}, expected {rows} rows of {dtype:?}",
                t.dims(),
                t.dtype()
            )));
        }
        Ok(t)
    };
    let train = take("train", views * n_train, DType::F16)?;
    let val = take("val", n_val, DType::F32)?;
    if train.dims()[1..] != val.dims()[1..] {
        return Err(corrupt(format!(
            "`train` rows are {:?}, `val` rows {:?}",
            &train.dims()[1..],
            &val.dims()[1..]
        )));
    }
    Ok(BoundarySet {
        train,
        val,
        views,
        path: path.to_path_buf(),
    })
}
