//! Image transforms from a cached `side × side` RGB square (see [`crate::data::cache`]) to a
//! normalised `[3, S, S]` model input.
//!
//! - Eval: the centre `S × S` crop. With `side = floor(S / crop_pct)` this equals the
//!   pretrained eval transform ([`crate::preprocess`]) on the original image.
//! - Training: a random resized crop (torchvision's algorithm: area a uniform fraction of the
//!   square in `[crop_scale_min, 1]`, aspect ratio log-uniform in `[crop_ratio_min,
//!   crop_ratio_max]`, ten tries then the whole square), resampled bilinearly to `S × S`; a
//!   horizontal flip; colour jitter (brightness, then contrast around the mean grey, then
//!   saturation, each factor uniform in `[1 - s, 1 + s]`); and an occasional conversion to
//!   grey (many real photos are black and white).
//!
//! The random draws come from the generator passed in, which the loader derives from the run
//! seed, the epoch and the sample's position (see [`crate::rng`]).

use rand_chacha::ChaCha8Rng;

use lennonnet_records::AugmentOptions;

use crate::rng::{below, uniform, unit};

/// Per-channel normalisation of pixel values scaled to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalise {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalise {
    #[inline]
    fn write(&self, dst: &mut [f32], plane: usize, at: usize, rgb: [f32; 3]) {
        for c in 0..3 {
            dst[c * plane + at] = (rgb[c] - self.mean[c]) / self.std[c];
        }
    }
}

/// A crop of the source square, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// The centre `out × out` crop of a `side × side` RGB image, normalised, into `dst`
/// (`[3, out, out]`).
pub fn centre_crop(src: &[u8], side: usize, out: usize, norm: &Normalise, dst: &mut [f32]) {
    assert!(out <= side && src.len() == side * side * 3 && dst.len() == 3 * out * out);
    let off = (side - out) / 2;
    let plane = out * out;
    for y in 0..out {
        let row = &src[((y + off) * side + off) * 3..];
        for x in 0..out {
            let p = &row[x * 3..x * 3 + 3];
            let rgb = [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ];
            norm.write(dst, plane, y * out + x, rgb);
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params` on a `side × side` square.
pub fn random_crop(side: usize, opts: &AugmentOptions, rng: &mut ChaCha8Rng) -> Crop {
    let area = (side * side) as f64;
    let (lo, hi) = (opts.crop_ratio_min.ln(), opts.crop_ratio_max.ln());
    for _ in 0..10 {
        let target = area * uniform(rng, opts.crop_scale_min, 1.0);
        let ratio = uniform(rng, lo, hi).exp();
        let w = (target * ratio).sqrt().round() as usize;
        let h = (target / ratio).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= side && h <= side {
            let y = below(rng, (side - h + 1) as u64) as usize;
            let x = below(rng, (side - w + 1) as u64) as usize;
            return Crop { x, y, w, h };
        }
    }
    Crop {
        x: 0,
        y: 0,
        w: side,
        h: side,
    }
}

/// Source sample positions of a bilinear resize of `len` pixels from `start` to `out` pixels:
/// (lower index, upper index, weight of the upper).
fn taps(start: usize, len: usize, out: usize, side: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f64 / out as f64;
    (0..out)
        .map(|o| {
            let s = start as f64 + (o as f64 + 0.5) * scale - 0.5;
            let s = s.clamp(0.0, (side - 1) as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(side - 1);
            (i0, i1, (s - i0 as f64) as f32)
        })
        .collect()
}

/// The training transform of one image into `dst` (`[3, out, out]`), drawing from `rng`.
pub fn augment(
    src: &[u8],
    side: usize,
    out: usize,
    opts: &AugmentOptions,
    rng: &mut ChaCha8Rng,
    norm: &Normalise,
    dst: &mut [f32],
) {
    assert!(out <= side && src.len() == side * side * 3 && dst.len() == 3 * out * out);
    if !opts.enabled {
        centre_crop(src, side, out, norm, dst);
        return;
    }
    let crop = random_crop(side, opts, rng);
    let flip = unit(rng) < opts.hflip_prob;
    let jitter = |rng: &mut ChaCha8Rng, s: f64| uniform(rng, (1.0 - s).max(0.0), 1.0 + s) as f32;
    let brightness = jitter(rng, opts.brightness);
    let contrast = jitter(rng, opts.contrast);
    let saturation = jitter(rng, opts.saturation);
    let grey = unit(rng) < opts.grayscale_prob;

    // Resample the crop, with brightness, into an RGB buffer in [0, 1].
    let xs = taps(crop.x, crop.w, out, side);
    let ys = taps(crop.y, crop.h, out, side);
    let mut px = vec![0f32; out * out * 3];
    let at = |x: usize, y: usize, c: usize| src[(y * side + x) * 3 + c] as f32;
    let mut grey_sum = 0f64;
    for (oy, &(y0, y1, wy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, wx)) in xs.iter().enumerate() {
            let ox = if flip { out - 1 - ox } else { ox };
            let base = (oy * out + ox) * 3;
            for c in 0..3 {
                let top = at(x0, y0, c) * (1.0 - wx) + at(x1, y0, c) * wx;
                let bottom = at(x0, y1, c) * (1.0 - wx) + at(x1, y1, c) * wx;
                let v = (top * (1.0 - wy) + bottom * wy) / 255.0;
                px[base + c] = (v * brightness).clamp(0.0, 1.0);
            }
            grey_sum += luma(&px[base..base + 3]) as f64;
        }
    }
    let mean_grey = (grey_sum / (out * out) as f64) as f32;
    let plane = out * out;
    for (i, p) in px.chunks_exact(3).enumerate() {
        let mut rgb = [0f32; 3];
        for c in 0..3 {
            rgb[c] = (mean_grey + contrast * (p[c] - mean_grey)).clamp(0.0, 1.0);
        }
        let g = luma(&rgb);
        for v in &mut rgb {
            *v = (g + saturation * (*v - g)).clamp(0.0, 1.0);
        }
        if grey {
            let g = luma(&rgb);
            rgb = [g; 3];
        }
        norm.write(dst, plane, i, rgb);
    }
}

/// ITU-R 601 luma, as torchvision's `rgb_to_grayscale`.
#[inline]
fn luma(p: &[f32]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    const NORM: Normalise = Normalise {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    fn square(side: usize) -> Vec<u8> {
        (0..side * side * 3).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn crops_stay_inside_and_respect_scale_and_ratio() {
        let opts = AugmentOptions::default();
        let mut rng = stream(3, "t", &[]);
        let mut fallbacks = 0;
        for _ in 0..2000 {
            let c = random_crop(100, &opts, &mut rng);
            assert!(c.x + c.w <= 100 && c.y + c.h <= 100, "{c:?}");
            if c.w == 100 && c.h == 100 {
                fallbacks += 1;
                continue;
            }
            let area = (c.w * c.h) as f64 / 10_000.0;
            assert!((0.23..=1.0).contains(&area), "{c:?}");
            let ratio = c.w as f64 / c.h as f64;
            assert!((0.7..=1.45).contains(&ratio), "{c:?}");
        }
        assert!(fallbacks < 200, "{fallbacks}");
    }

    #[test]
    fn disabled_augmentation_is_the_centre_crop_and_flip_mirrors() {
        let side = 20;
        let src = square(side);
        let mut a = vec![0f32; 3 * 16 * 16];
        let mut b = vec![0f32; 3 * 16 * 16];
        centre_crop(&src, side, 16, &NORM, &mut a);
        let off = AugmentOptions {
            enabled: false,
            ..Default::default()
        };
        augment(
            &src,
            side,
            16,
            &off,
            &mut stream(0, "t", &[]),
            &NORM,
            &mut b,
        );
        assert_eq!(a, b);
        assert_eq!(a[0], src[(2 * side + 2) * 3] as f32 / 255.0);

        // Whole-square crop (scale 1, ratio 1), flip always, no jitter: the mirrored resample.
        let flip = AugmentOptions {
            crop_scale_min: 1.0,
            crop_ratio_min: 1.0,
            crop_ratio_max: 1.0,
            hflip_prob: 1.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            grayscale_prob: 0.0,
            enabled: true,
        };
        let mut c = vec![0f32; 3 * side * side];
        augment(
            &src,
            side,
            side,
            &flip,
            &mut stream(0, "t", &[]),
            &NORM,
            &mut c,
        );
        for y in 0..side {
            for x in 0..side {
                for ch in 0..3 {
                    let want = src[(y * side + (side - 1 - x)) * 3 + ch] as f32 / 255.0;
                    let got = c[ch * side * side + y * side + x];
                    assert!((want - got).abs() < 1e-5, "({x},{y},{ch}) {want} {got}");
                }
            }
        }
    }

    #[test]
    fn grey_images_have_equal_channels_and_draws_are_reproducible() {
        let side = 24;
        let src = square(side);
        let grey = AugmentOptions {
            grayscale_prob: 1.0,
            ..Default::default()
        };
        let mut a = vec![0f32; 3 * 16 * 16];
        augment(
            &src,
            side,
            16,
            &grey,
            &mut stream(5, "t", &[1]),
            &NORM,
            &mut a,
        );
        let plane = 16 * 16;
        for i in 0..plane {
            assert_eq!(a[i], a[plane + i]);
            assert_eq!(a[i], a[2 * plane + i]);
        }
        let opts = AugmentOptions::default();
        let mut b = vec![0f32; 3 * plane];
        let mut c = vec![0f32; 3 * plane];
        augment(
            &src,
            side,
            16,
            &opts,
            &mut stream(5, "t", &[2]),
            &NORM,
            &mut b,
        );
        augment(
            &src,
            side,
            16,
            &opts,
            &mut stream(5, "t", &[2]),
            &NORM,
            &mut c,
        );
        assert_eq!(b, c);
        augment(
            &src,
            side,
            16,
            &opts,
            &mut stream(5, "t", &[3]),
            &NORM,
            &mut c,
        );
        assert_ne!(b, c);
        assert!(b.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
