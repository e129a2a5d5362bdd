//! A small synthetic two-class dataset for tests and benchmarks: a store's `objects/` folder
//! and a snapshot, written with the split crate's own API, of pictures that differ by shape and
//! colour (class `a`: warm discs; class `b`: cool squares) on noisy backgrounds of random
//! colours. Deterministic from a seed.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage};
use lennonnet_core::{ContentId, Group, Label, ManifestRow, Split};
use lennonnet_split::{Assignment, Policy, Snapshot};
use rand_chacha::ChaCha8Rng;

use crate::rng::{self, uniform};
use crate::train_error::{TrainError, TrainResult};
use lennonnet_dataset::{Dataset, object_path};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// Images of class `a` and `b` in train.
    pub train: [usize; 2],
    /// Images of class `a` and `b` in val.
    pub val: [usize; 2],
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Train images of class `b` whose object holds bytes that are not an image.
    pub corrupt: usize,
    /// Train images labelled `b` that show a picture of class `a` (wrong labels), after the
    /// corrupt ones; their group is `group_b_flipped`.
    pub flipped: usize,
    /// Write JPEGs of this quality instead of PNGs (as photos from the web mostly are).
    pub jpeg_quality: Option<u8>,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            train: [20, 40],
            val: [8, 16],
            width: 96,
            height: 80,
            seed: 1,
            corrupt: 0,
            flipped: 0,
            jpeg_quality: None,
        }
    }
}

/// Draws one picture of `class` (0: `a`, 1: `b`).
pub fn picture(class: usize, width: u32, height: u32, r: &mut ChaCha8Rng) -> RgbImage {
    let bg = [
        uniform(r, 40.0, 215.0),
        uniform(r, 40.0, 215.0),
        uniform(r, 40.0, 215.0),
    ];
    let fg = if class == 0 {
        [
            uniform(r, 190.0, 255.0),
            uniform(r, 30.0, 120.0),
            uniform(r, 20.0, 90.0),
        ]
    } else {
        [
            uniform(r, 20.0, 90.0),
            uniform(r, 60.0, 150.0),
            uniform(r, 190.0, 255.0),
        ]
    };
    let short = width.min(height) as f64;
    let radius = uniform(r, 0.2, 0.32) * short;
    let cx = width as f64 / 2.0 + uniform(r, -0.12, 0.12) * short;
    let cy = height as f64 / 2.0 + uniform(r, -0.12, 0.12) * short;
    let mut img = RgbImage::new(width, height);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
        let inside = if class == 0 {
            dx * dx + dy * dy <= radius * radius
        } else {
            dx.abs() <= radius * 0.9 && dy.abs() <= radius * 0.9
        };
        let base = if inside { fg } else { bg };
        let noise = uniform(r, -20.0, 20.0);
        *px = Rgb(base.map(|v| (v + noise).clamp(0.0, 255.0) as u8));
    }
    img
}

/// Writes the objects and a snapshot under `dataset_dir` (`objects/`, `snapshots/`) and returns
/// the snapshot.
pub fn write_dataset(dataset_dir: &Path, spec: &SyntheticSpec) -> TrainResult<Snapshot> {
    let dataset = Dataset::at(dataset_dir);
    let objects = dataset.objects_dir();
    let mut rows = Vec::new();
    for (split, counts) in [(Split::Train, spec.train), (Split::Val, spec.val)] {
        for (class, &n) in counts.iter().enumerate() {
            for i in 0..n {
                let mut r = rng::stream(
                    spec.seed,
                    "synthetic",
                    &[split.holdout_rank() as u64, class as u64, i as u64],
                );
                let corrupt = split == Split::Train && class == 1 && i < spec.corrupt;
                let flipped = split == Split::Train
                    && class == 1
                    && (spec.corrupt..spec.corrupt + spec.flipped).contains(&i);
                let (bytes, format) = if corrupt {
                    (format!("not an image {i}").into_bytes(), "png")
                } else {
                    let drawn = if flipped { 0 } else { class };
                    let img = picture(drawn, spec.width, spec.height, &mut r);
                    let mut out = std::io::Cursor::new(Vec::new());
                    let written = match spec.jpeg_quality {
                        Some(q) => JpegEncoder::new_with_quality(&mut out, q)
                            .encode_image(&img)
                            .map(|()| "jpg"),
                        None => img.write_to(&mut out, ImageFormat::Png).map(|()| "png"),
                    };
                    let format = written.map_err(|e| TrainError::BadOption {
                        option: "synthetic",
                        reason: e.to_string(),
                    })?;
                    (out.into_inner(), format)
                };
                let id = ContentId::of(&bytes);
                let path = object_path(&objects, &id);
                let dir = path.parent().expect("an object has a folder");
                std::fs::create_dir_all(dir).map_err(TrainError::io("create", dir))?;
                std::fs::write(&path, &bytes).map_err(TrainError::io("write", &path))?;
                let label = ["a", "b"][class];
                rows.push(ManifestRow {
                    id,
                    label: Label::new(label).expect("a valid name"),
                    // The wrong labels have a group of their own, so that tests can find them.
                    group: Group::new(if flipped {
                        format!("group_{label}_flipped")
                    } else {
                        format!("group_{label}")
                    })
                    .expect("a valid name"),
                    split,
                    cluster: id,
                    bytes: bytes.len() as u64,
                    format: format.into(),
                });
            }
        }
    }
    rows.sort_by_key(|r| r.id);
    let assignment = Assignment {
        rows,
        excluded: Vec::new(),
        moved: Vec::new(),
        shortfalls: Vec::new(),
    };
    let policy = Policy {
        key: "synthetic".into(),
        val_fraction: 0.25,
        test_per_class: Default::default(),
    };
    Ok(lennonnet_split::snapshot::create(
        &dataset.snapshots_dir(),
        &assignment,
        &policy,
        None,
        "synthetic",
    )?)
}
