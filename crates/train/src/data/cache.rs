//! The pixel cache: every train and val image of a snapshot, decoded once, upright, resized so
//! that its shorter side is `side` pixels and centre-cropped to `side × side`, stored as u8 RGB.
//!
//! `side` is the model's eval resize (`floor(input_px / crop_pct)`, 256 for a 224 input), which
//! leaves a margin around the training crop: the eval transform is then an exact centre crop of
//! a cached image, identical to [`crate::preprocess::resize_crop`] on the original, and the
//! random-resized crops of training are taken from the cached square.
//!
//! On disk, under the cache folder (one per snapshot, side and filter, shared by every run):
//!
//! ```text
//! pixels-<snapshot id, 16 hex>-<side>px-<filter>-v1/
//!   pixels.u8     images in slot order, side × side × 3 bytes each, rows top to bottom, RGB
//!   index.json    CacheIndex: format version, snapshot, side, filter, the ids in slot order, and
//!                 the images that could not be decoded with the reason (their slots are zeros)
//! ```
//!
//! The folder is built under a temporary name and renamed into place, so a cache that exists is
//! complete. Images are read back with positioned reads (`pread`); the page cache keeps the hot
//! ones in memory.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use lennonnet_core::{ContentId, Progress};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::PretrainedCfg;
use crate::preprocess::resize_crop;
use crate::train_error::{TrainError, TrainResult};
use lennonnet_dataset::{decode_upright, object_path};

/// Version of the cache layout; part of the folder name.
pub const FORMAT_VERSION: u32 = 1;
const PIXELS: &str = "pixels.u8";
const INDEX: &str = "index.json";

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheIndex {
    pub format_version: u32,
    pub snapshot: String,
    pub side: usize,
    pub interpolation: String,
    /// Content ids in slot order.
    pub ids: Vec<ContentId>,
    /// Images that could not be read or decoded, with the reason, by id.
    pub failed: BTreeMap<ContentId, String>,
}

/// An open pixel cache.
#[derive(Debug)]
pub struct PixelCache {
    dir: PathBuf,
    index: CacheIndex,
    slots: HashMap<ContentId, usize>,
    file: File,
}

/// The cache folder's name for a snapshot, side and resampling filter.
pub fn folder_name(snapshot: &str, side: usize, interpolation: &str) -> String {
    let short = &snapshot[..snapshot.len().min(16)];
    format!("pixels-{short}-{side}px-{interpolation}-v{FORMAT_VERSION}")
}

impl PixelCache {
    /// Opens the cache of these images, building it first if it does not exist: each object is
    /// read from `objects_dir`, decoded and resized in parallel (on rayon's pool), reporting
    /// `decode` progress. An object that cannot be read or decoded is recorded, not fatal.
    pub fn open_or_build(
        cache_dir: &Path,
        snapshot: &str,
        ids: &[ContentId],
        objects_dir: &Path,
        side: usize,
        interpolation: &'static str,
        progress: &dyn Progress,
    ) -> TrainResult<Self> {
        let dir = cache_dir.join(folder_name(snapshot, side, interpolation));
        if dir.join(INDEX).is_file() {
            let cache = Self::open(&dir)?;
            if cache.index.ids == ids && cache.index.side == side {
                tracing::debug!(dir = %dir.display(), images = ids.len(), "pixel cache found");
                return Ok(cache);
            }
            tracing::warn!(dir = %dir.display(), "pixel cache holds other images; rebuilding it");
            fs::remove_dir_all(&dir).map_err(TrainError::io("remove", &dir))?;
        }
        build(
            &dir,
            snapshot,
            ids,
            objects_dir,
            side,
            interpolation,
            progress,
        )?;
        Self::open(&dir)
    }

    /// Opens a complete cache folder.
    pub fn open(dir: &Path) -> TrainResult<Self> {
        let index_path = dir.join(INDEX);
        let bytes = fs::read(&index_path).map_err(TrainError::io("read", &index_path))?;
        let index: CacheIndex =
            serde_json::from_slice(&bytes).map_err(|e| TrainError::Corrupt {
                path: index_path.clone(),
                reason: e.to_string(),
            })?;
        if index.format_version != FORMAT_VERSION {
            return Err(TrainError::Corrupt {
                path: index_path,
                reason: format!(
                    "format version {}, this build reads {FORMAT_VERSION}",
                    index.format_version
                ),
            });
        }
        let pixels = dir.join(PIXELS);
        let file = File::open(&pixels).map_err(TrainError::io("open", &pixels))?;
        let len = file
            .metadata()
            .map_err(TrainError::io("stat", &pixels))?
            .len();
        let want = (index.ids.len() * index.side * index.side * 3) as u64;
        if len != want {
            return Err(TrainError::Corrupt {
                path: pixels,
                reason: format!("{len} bytes, expected {want}"),
            });
        }
        let slots = index
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            slots,
            file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn side(&self) -> usize {
        self.index.side
    }

    /// Bytes of one cached image.
    pub fn image_bytes(&self) -> usize {
        self.index.side * self.index.side * 3
    }

    pub fn len(&self) -> usize {
        self.index.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.ids.is_empty()
    }

    /// The slot of an image, unless it is not in the cache or failed to decode.
    pub fn slot(&self, id: &ContentId) -> Option<usize> {
        if self.index.failed.contains_key(id) {
            return None;
        }
        self.slots.get(id).copied()
    }

    /// The images that could not be decoded, with the reason.
    pub fn failed(&self) -> &BTreeMap<ContentId, String> {
        &self.index.failed
    }

    /// Reads the image in `slot` into `buf` (`image_bytes()` long).
    pub fn read(&self, slot: usize, buf: &mut [u8]) -> TrainResult<()> {
        let n = self.image_bytes();
        debug_assert_eq!(buf.len(), n);
        self.file
            .read_exact_at(buf, (slot * n) as u64)
            .map_err(TrainError::io("read", self.dir.join(PIXELS)))
    }
}

/// The complete pixel caches in `parent` with this side and filter (other snapshots'), by
/// name. An image's cached pixels depend only on its bytes (its content id), the side and the
/// filter, so a new cache copies the images they hold instead of decoding them again: a
/// snapshot of reviewed labels decodes nothing its parent's cache has.
fn donors(parent: &Path, side: usize, interpolation: &str) -> Vec<PixelCache> {
    let suffix = format!("-{side}px-{interpolation}-v{FORMAT_VERSION}");
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pixels-") && n.ends_with(&suffix))
                && p.join(INDEX).is_file()
        })
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|d| PixelCache::open(d).ok())
        .filter(|c| c.index.side == side && c.index.interpolation == interpolation)
        .collect()
}

fn build(
    dir: &Path,
    snapshot: &str,
    ids: &[ContentId],
    objects_dir: &Path,
    side: usize,
    interpolation: &'static str,
    progress: &dyn Progress,
) -> TrainResult<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(TrainError::io("create", parent))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(TrainError::io("remove", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(TrainError::io("create", &tmp))?;
    let pixels_path = tmp.join(PIXELS);
    let file = File::create(&pixels_path).map_err(TrainError::io("create", &pixels_path))?;
    let n = side * side * 3;
    file.set_len((ids.len() * n) as u64)
        .map_err(TrainError::io("size", &pixels_path))?;

    let started = std::time::Instant::now();
    let donors = donors(parent, side, interpolation);
    let reuse: HashMap<ContentId, (usize, usize)> = ids
        .iter()
        .filter_map(|id| {
            donors
                .iter()
                .enumerate()
                .find_map(|(d, c)| c.slot(id).map(|slot| (*id, (d, slot))))
        })
        .collect();
    progress.start("decode", Some(ids.len() as u64));
    let cfg = PretrainedCfg {
        input_size: side,
        crop_pct: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        interpolation,
    };
    let outcomes: Vec<TrainResult<Option<String>>> = ids
        .par_iter()
        .enumerate()
        .map(|(slot, id)| {
            if let Some(&(d, from)) = reuse.get(id) {
                let mut buf = vec![0u8; n];
                donors[d].read(from, &mut buf)?;
                file.write_all_at(&buf, (slot * n) as u64)
                    .map_err(TrainError::io("write", &pixels_path))?;
                progress.advance("decode", 1);
                return Ok(None);
            }
            let path = object_path(objects_dir, id);
            let failure = match fs::read(&path) {
                Err(e) => Some(format!("cannot read {}: {e}", path.display())),
                Ok(bytes) => match decode_upright(&bytes) {
                    Err(reason) => Some(reason),
                    Ok(img) => {
                        let rgb = resize_crop(&img, &cfg);
                        file.write_all_at(rgb.as_raw(), (slot * n) as u64)
                            .map_err(TrainError::io("write", &pixels_path))?;
                        None
                    }
                },
            };
            progress.advance("decode", 1);
            Ok(failure)
        })
        .collect();
    progress.finish("decode");
    let mut failed = BTreeMap::new();
    for (id, outcome) in ids.iter().zip(outcomes) {
        if let Some(reason) = outcome? {
            tracing::warn!(id = %id, %reason, "image left out of training: cannot decode it");
            failed.insert(*id, reason);
        }
    }
    file.sync_all()
        .map_err(TrainError::io("fsync", &pixels_path))?;
    let index = CacheIndex {
        format_version: FORMAT_VERSION,
        snapshot: snapshot.to_string(),
        side,
        interpolation: interpolation.to_string(),
        ids: ids.to_vec(),
        failed,
    };
    let index_path = tmp.join(INDEX);
    let json = serde_json::to_vec(&index).expect("the index serialises");
    fs::write(&index_path, json).map_err(TrainError::io("write", &index_path))?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        images = ids.len(),
        copied = reuse.len(),
        failed = index.failed.len(),
        side,
        secs = format!("{secs:.1}"),
        images_per_sec = format!("{:.0}", ids.len() as f64 / secs.max(1e-9)),
        "pixel cache built"
    );
    match fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another process built the same cache meanwhile: keep theirs.
        Err(_) if dir.join(INDEX).is_file() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(TrainError::io("rename into place", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};

    /// Writes `n` small pictures as objects; returns their ids.
    fn objects(dir: &Path, n: usize) -> Vec<ContentId> {
        (0..n)
            .map(|i| {
                let img = RgbImage::from_fn(40 + i as u32, 30, |x, y| {
                    Rgb([(x * 7 + i as u32 * 31) as u8, (y * 5) as u8, (x ^ y) as u8])
                });
                let mut out = std::io::Cursor::new(Vec::new());
                img.write_to(&mut out, ImageFormat::Png).unwrap();
                let bytes = out.into_inner();
                let id = ContentId::of(&bytes);
                let path = object_path(dir, &id);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, &bytes).unwrap();
                id
            })
            .collect()
    }

    fn all_pixels(c: &PixelCache) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; c.image_bytes()];
        for slot in 0..c.len() {
            c.read(slot, &mut buf).unwrap();
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn a_new_cache_copies_what_another_snapshots_cache_holds_bit_for_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let objects_dir = tmp.path().join("objects");
        let ids = objects(&objects_dir, 6);
        let p = &lennonnet_core::NoProgress;
        let cache = tmp.path().join("cache");
        let first =
            PixelCache::open_or_build(&cache, "aaaa", &ids[..4], &objects_dir, 16, "bicubic", p)
                .unwrap();
        // Images 2..6: 2 and 3 are copied from the first cache (their objects are gone, so a
        // decode would fail), 4 and 5 decoded.
        for id in &ids[2..4] {
            fs::remove_file(object_path(&objects_dir, id)).unwrap();
        }
        let second =
            PixelCache::open_or_build(&cache, "bbbb", &ids[2..], &objects_dir, 16, "bicubic", p)
                .unwrap();
        assert!(second.failed().is_empty(), "{:?}", second.failed());
        let mut buf = vec![0u8; second.image_bytes()];
        let mut want = vec![0u8; first.image_bytes()];
        second
            .read(second.slot(&ids[2]).unwrap(), &mut buf)
            .unwrap();
        first.read(first.slot(&ids[2]).unwrap(), &mut want).unwrap();
        assert_eq!(buf, want);
        // The same bytes as a cache built with nothing to copy from.
        let restored = objects(&objects_dir, 6);
        assert_eq!(restored, ids);
        let alone = tmp.path().join("alone");
        let decoded =
            PixelCache::open_or_build(&alone, "bbbb", &ids[2..], &objects_dir, 16, "bicubic", p)
                .unwrap();
        assert_eq!(all_pixels(&second), all_pixels(&decoded));
        // Another side is never a donor: with their objects gone, images 0 and 1 (in the 16 px
        // caches) must be decoded at 20 px, and fail.
        for id in &ids[..2] {
            fs::remove_file(object_path(&objects_dir, id)).unwrap();
        }
        let other =
            PixelCache::open_or_build(&cache, "cccc", &ids[..2], &objects_dir, 20, "bicubic", p)
                .unwrap();
        assert_eq!(other.side(), 20);
        assert_eq!(other.failed().len(), 2, "nothing copied from a 16 px cache");
    }
}
