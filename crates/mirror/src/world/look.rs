//! The look of a picture: the original's size, format and orientation, and what a copy changes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{World, original_id, rng_for};
use crate::spec::{Format, ImageSpec, Original, Subject, VariantKind};

/// The shape of what a URL serves: size as displayed (after EXIF orientation), file format,
/// orientation tag, JPEG quality and GIF frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Look {
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub orientation: u8,
    pub quality: u8,
    pub frames: u8,
}

impl World {
    /// An age-like parameter of an original in `[0, 1)`: 0 is 1958, 1 is 1980.
    pub fn era(&self, original: &Original) -> f32 {
        let mut rng = self.original_rng(original, "era");
        rng.random::<f32>()
    }

    /// A seeded RNG for one aspect of an original.
    pub fn original_rng(&self, original: &Original, aspect: &str) -> ChaCha8Rng {
        rng_for(
            &self.key,
            "lennonnet mirror original v1",
            &[aspect.as_bytes(), original_id(original, self).as_bytes()],
        )
    }

    /// The look of the original picture itself.
    pub fn original_look(&self, original: &Original) -> Look {
        if let (Subject::Corpus(g), Some(c)) = (&original.subject, &self.corpus) {
            let f = c.file(*g, original.index);
            return Look {
                width: f.width,
                height: f.height,
                format: f.format,
                orientation: 1,
                quality: 90,
                frames: 1,
            };
        }
        let im = &self.config.images;
        let mut rng = self.original_rng(original, "look");
        let total = im.jpeg + im.png + im.webp + im.gif;
        let u = rng.random::<f64>() * total;
        let jpeg_progressive = rng.random_bool(im.progressive);
        let format = if u < im.jpeg {
            if jpeg_progressive {
                Format::JpegProgressive
            } else {
                Format::JpegBaseline
            }
        } else if u < im.jpeg + im.png {
            Format::Png
        } else if u < im.jpeg + im.png + im.webp {
            Format::Webp
        } else {
            Format::Gif
        };
        let long = if rng.random_bool(im.large_share) {
            rng.random_range(im.typical_max_px..=im.max_side_px)
        } else {
            // Log-uniform: more small pictures than large ones, as on the web.
            let (lo, hi) = (im.min_side_px as f64, im.typical_max_px as f64);
            (lo * (hi / lo).powf(rng.random::<f64>())).round() as u32
        };
        let long = if format == Format::Gif {
            long.min(700)
        } else {
            long
        };
        let ratios: &[(u32, u32)] = match original.subject {
            Subject::Word(_) | Subject::Group { .. } => &[(4, 3), (3, 2), (16, 9), (1, 1), (5, 4)],
            _ => &[(3, 4), (4, 5), (1, 1), (2, 3), (4, 3), (3, 2)],
        };
        let (a, b) = ratios[rng.random_range(0..ratios.len())];
        let (width, height) = if a >= b {
            (long, (long * b / a).max(16))
        } else {
            ((long * a / b).max(16), long)
        };
        let orientation = if matches!(format, Format::JpegBaseline | Format::JpegProgressive)
            && rng.random_bool(im.exif_orientation)
        {
            [6, 6, 8, 3, 2][rng.random_range(0..5)]
        } else {
            1
        };
        let frames = if format == Format::Gif && rng.random_bool(im.animated_gif) {
            rng.random_range(2..=3)
        } else {
            1
        };
        Look {
            width,
            height,
            format,
            orientation,
            quality: rng.random_range(72..=95),
            frames,
        }
    }

    /// What a URL serves: its original's look, changed by its variant.
    pub fn look(&self, spec: &ImageSpec) -> Look {
        let base = self.original_look(&spec.original);
        let p = self.variant_params(spec);
        let Some((w, h)) = p.size else {
            return Look {
                format: p.format.unwrap_or(base.format),
                ..base
            };
        };
        Look {
            width: w,
            height: h,
            format: p.format.unwrap_or(base.format),
            orientation: 1,
            quality: p.quality,
            frames: 1,
        }
    }

    /// The parameters of a copy, from the original's look and the variant's nonce.
    pub fn variant_params(&self, spec: &ImageSpec) -> VariantParams {
        let base = self.original_look(&spec.original);
        let v = spec.variant;
        let mut rng = rng_for(
            &self.key,
            "lennonnet mirror variant v1",
            &[
                original_id(&spec.original, self).as_bytes(),
                &v.nonce.to_le_bytes(),
                v.kind.as_str().as_bytes(),
            ],
        );
        let (w, h) = (base.width, base.height);
        let quality = rng.random_range(45..=85);
        let jpeg = if rng.random_bool(0.3) {
            Format::JpegProgressive
        } else {
            Format::JpegBaseline
        };
        let mut p = VariantParams {
            size: None,
            crop: None,
            format: None,
            quality,
            watermark: None,
        };
        match v.kind {
            VariantKind::Original => {}
            VariantKind::Reencoded => {
                p.format =
                    Some([jpeg, jpeg, jpeg, Format::Png, Format::Webp][rng.random_range(0..5)]);
                p.size = Some((w, h));
            }
            VariantKind::Resized => {
                let s = rng.random_range(0.3..0.8);
                p.size = Some(scaled(w, h, s));
                p.format = Some(jpeg);
            }
            VariantKind::Cropped => {
                let fw = rng.random_range(0.55..0.9);
                let fh = rng.random_range(0.55..0.9);
                let x0 = rng.random_range(0.0..(1.0 - fw));
                let y0 = rng.random_range(0.0..(1.0 - fh));
                p.crop = Some([x0, y0, fw, fh]);
                let cw = ((w as f64 * fw).round() as u32).max(16);
                let ch = ((h as f64 * fh).round() as u32).max(16);
                p.size = Some((cw, ch));
                p.format = Some(jpeg);
            }
            VariantKind::Watermarked => {
                p.size = Some((w, h));
                p.format = Some(jpeg);
                p.watermark = Some(rng.random_range(0..WATERMARKS.len()));
            }
            VariantKind::Thumbnail => {
                let long = rng.random_range(100..=250).min(w.max(h));
                p.size = Some(scaled(w, h, long as f64 / w.max(h) as f64));
                p.format = Some(Format::JpegBaseline);
                p.quality = rng.random_range(55..=80);
            }
        }
        p
    }
}

/// The parameters of a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantParams {
    /// Size of the copy (before orientation), when it differs from the original's or is re-encoded.
    pub size: Option<(u32, u32)>,
    /// Crop box: x, y, width, height as shares of the original.
    pub crop: Option<[f64; 4]>,
    pub format: Option<Format>,
    pub quality: u8,
    /// Index into [`WATERMARKS`].
    pub watermark: Option<usize>,
}

/// Watermark texts of copies.
pub const WATERMARKS: [&str; 5] = [
    "STOCKPIX",
    "(C) GETTYISH IMAGES",
    "ALAMODE",
    "PREVIEW ONLY",
    "wallpaperz.mirror.test",
];

fn scaled(w: u32, h: u32, s: f64) -> (u32, u32) {
    (
        ((w as f64 * s).round() as u32).max(16),
        ((h as f64 * s).round() as u32).max(16),
    )
}
