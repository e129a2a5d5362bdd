//! Perceptual hashes of an (already oriented) image, written for this project rather than
//! taken from a crate, so that their definition is pinned here and versioned by
//! [`HASH_VERSION`]:
//!
//! 1. Luma (Rec. 601), with transparent pixels composited over white, averaged over boxes into
//!    a working image whose longer side is at most 256 pixels.
//! 2. **PDQ-style 256-bit hash** (after Facebook's PDQ): two passes of a box ("Jarosz") filter
//!    whose window is about the working size / 128, decimation to 64×64, a 16×16 DCT (the lowest
//!    frequencies without the DC row and column), and one bit per coefficient: above the median.
//!    Its quality score is PDQ's: the summed absolute gradient of the 64×64 image, scaled to
//!    0–100; below about 50 the image is too flat for the hash to be trusted.
//! 3. **64-bit DCT pHash**: the 64×64 image averaged down to 32×32, its 8×8 lowest DCT
//!    frequencies without the DC row and column, one bit per coefficient above their median.
//!
//! Both hashes compare by Hamming distance. The 64-bit one is cheap to index (multi-index
//! hashing in curation); the 256-bit one confirms a match. Thresholds are in `docs/store.md`.

use std::sync::OnceLock;

use image::DynamicImage;

use crate::record::{Hash64, Hash256};

/// The version of the hashing scheme; stored with every image's hashes.
pub const HASH_VERSION: u32 = 1;

/// The longer side of the working luma image.
const WORK_MAX: usize = 256;

/// An image's perceptual hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashes {
    pub phash: Hash64,
    pub pdq: Hash256,
    pub pdq_quality: u8,
}

/// Hashes an image (orientation already applied).
pub fn hash_image(img: &DynamicImage) -> Hashes {
    let (luma, w, h) = working_luma(img);
    hash_luma(&luma, w, h)
}

/// Hashes a luma image (values 0–255, row-major, `w`×`h`).
pub fn hash_luma(luma: &[f32], w: usize, h: usize) -> Hashes {
    let mut buf = luma.to_vec();
    let mut tmp = vec![0f32; buf.len()];
    let wx = jarosz_window(w);
    let wy = jarosz_window(h);
    for _ in 0..2 {
        box_rows(&buf, &mut tmp, w, h, wx);
        box_cols(&tmp, &mut buf, w, h, wy);
    }
    let mut d64 = [0f32; 64 * 64];
    for i in 0..64 {
        let y = ((2 * i + 1) * h / 128).min(h - 1);
        for j in 0..64 {
            let x = ((2 * j + 1) * w / 128).min(w - 1);
            d64[i * 64 + j] = buf[y * w + x];
        }
    }
    let pdq_quality = quality(&d64);
    let pdq = Hash256(bits::<32>(&dct(&d64, 64, dct_matrix_16x64(), 16)));
    let mut d32 = [0f32; 32 * 32];
    for i in 0..32 {
        for j in 0..32 {
            let a = (2 * i) * 64 + 2 * j;
            d32[i * 32 + j] = (d64[a] + d64[a + 1] + d64[a + 64] + d64[a + 65]) * 0.25;
        }
    }
    let phash = Hash64(bits::<8>(&dct(&d32, 32, dct_matrix_8x32(), 8)));
    Hashes {
        phash,
        pdq,
        pdq_quality,
    }
}

/// PDQ's window: about the size / 128, so two passes blur to the 64×64 sampling.
fn jarosz_window(n: usize) -> usize {
    n.div_ceil(128).max(1)
}

/// A centred moving average along rows with a window of `win` (shrunk at the edges).
fn box_rows(src: &[f32], dst: &mut [f32], w: usize, h: usize, win: usize) {
    if win <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let before = (win - 1) / 2;
    let after = win - 1 - before;
    let mut prefix = vec![0f32; w + 1];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            prefix[x + 1] = prefix[x] + row[x];
        }
        for x in 0..w {
            let lo = x.saturating_sub(before);
            let hi = (x + after + 1).min(w);
            dst[y * w + x] = (prefix[hi] - prefix[lo]) / (hi - lo) as f32;
        }
    }
}

fn box_cols(src: &[f32], dst: &mut [f32], w: usize, h: usize, win: usize) {
    if win <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let before = (win - 1) / 2;
    let after = win - 1 - before;
    let mut prefix = vec![0f32; h + 1];
    for x in 0..w {
        for y in 0..h {
            prefix[y + 1] = prefix[y] + src[y * w + x];
        }
        for y in 0..h {
            let lo = y.saturating_sub(before);
            let hi = (y + after + 1).min(h);
            dst[y * w + x] = (prefix[hi] - prefix[lo]) / (hi - lo) as f32;
        }
    }
}

/// PDQ's quality: summed absolute neighbour differences, in percent of full scale, / 90.
fn quality(d: &[f32; 64 * 64]) -> u8 {
    let mut sum = 0i64;
    for i in 0..63 {
        for j in 0..64 {
            sum += (((d[i * 64 + j] - d[(i + 1) * 64 + j]) * 100.0 / 255.0) as i64).abs();
        }
    }
    for i in 0..64 {
        for j in 0..63 {
            sum += (((d[i * 64 + j] - d[i * 64 + j + 1]) * 100.0 / 255.0) as i64).abs();
        }
    }
    (sum / 90).min(100) as u8
}

/// `D · A · Dᵀ` for an `n`×`n` image `a` and a `k`×`n` DCT matrix `d`: `k`×`k` coefficients.
fn dct(a: &[f32], n: usize, d: &[f32], k: usize) -> Vec<f32> {
    let mut t = vec![0f32; k * n];
    for i in 0..k {
        let di = &d[i * n..(i + 1) * n];
        for (r, &dv) in di.iter().enumerate() {
            let row = &a[r * n..(r + 1) * n];
            let ti = &mut t[i * n..(i + 1) * n];
            for (tv, &av) in ti.iter_mut().zip(row) {
                *tv += dv * av;
            }
        }
    }
    let mut out = vec![0f32; k * k];
    for i in 0..k {
        let ti = &t[i * n..(i + 1) * n];
        for j in 0..k {
            let dj = &d[j * n..(j + 1) * n];
            out[i * k + j] = ti.iter().zip(dj).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// Rows 1..=k of the `n`-point DCT-II basis (the DC row left out).
fn dct_matrix(k: usize, n: usize) -> Vec<f32> {
    let scale = (2.0 / n as f64).sqrt();
    let mut m = vec![0f32; k * n];
    for i in 0..k {
        for j in 0..n {
            let angle =
                std::f64::consts::PI / (2.0 * n as f64) * (i + 1) as f64 * (2 * j + 1) as f64;
            m[i * n + j] = (scale * angle.cos()) as f32;
        }
    }
    m
}

fn dct_matrix_16x64() -> &'static [f32] {
    static M: OnceLock<Vec<f32>> = OnceLock::new();
    M.get_or_init(|| dct_matrix(16, 64))
}

fn dct_matrix_8x32() -> &'static [f32] {
    static M: OnceLock<Vec<f32>> = OnceLock::new();
    M.get_or_init(|| dct_matrix(8, 32))
}

/// One bit per value, set when above the median; most significant bit first.
fn bits<const N: usize>(v: &[f32]) -> [u8; N] {
    debug_assert_eq!(v.len(), N * 8);
    let mut sorted = v.to_vec();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut out = [0u8; N];
    for (k, x) in v.iter().enumerate() {
        if *x > median {
            out[k / 8] |= 0x80 >> (k % 8);
        }
    }
    out
}

/// The working luma image: box averages over a grid whose longer side is at most
/// [`WORK_MAX`], transparent pixels over white.
pub fn working_luma(img: &DynamicImage) -> (Vec<f32>, usize, usize) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let longer = w.max(h).max(1);
    let (lw, lh) = if longer > WORK_MAX {
        (
            ((w * WORK_MAX + longer / 2) / longer).max(1),
            ((h * WORK_MAX + longer / 2) / longer).max(1),
        )
    } else {
        (w.max(1), h.max(1))
    };
    let xmap: Vec<u32> = (0..w).map(|x| (x * lw / w) as u32).collect();
    let mut acc = vec![0f32; lw * lh];
    let mut add_rows = |row_luma: &mut dyn FnMut(usize, &mut [f32])| {
        let mut line = vec![0f32; w];
        for y in 0..h {
            row_luma(y, &mut line);
            let by = y * lh / h;
            let out = &mut acc[by * lw..(by + 1) * lw];
            for (x, l) in line.iter().enumerate() {
                out[xmap[x] as usize] += *l;
            }
        }
    };
    fn rgb(r: f32, g: f32, b: f32) -> f32 {
        0.299 * r + 0.587 * g + 0.114 * b
    }
    fn over_white(l: f32, a: f32) -> f32 {
        l * a + 255.0 * (1.0 - a)
    }
    match img {
        DynamicImage::ImageLuma8(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 1)) {
                *o = p[0] as f32;
            }
        }),
        DynamicImage::ImageLumaA8(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 2)) {
                *o = over_white(p[0] as f32, p[1] as f32 / 255.0);
            }
        }),
        DynamicImage::ImageRgb8(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 3)) {
                *o = rgb(p[0] as f32, p[1] as f32, p[2] as f32);
            }
        }),
        DynamicImage::ImageRgba8(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 4)) {
                let l = rgb(p[0] as f32, p[1] as f32, p[2] as f32);
                *o = over_white(l, p[3] as f32 / 255.0);
            }
        }),
        DynamicImage::ImageLuma16(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 1)) {
                *o = p[0] as f32 / 257.0;
            }
        }),
        DynamicImage::ImageLumaA16(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 2)) {
                *o = over_white(p[0] as f32 / 257.0, p[1] as f32 / 65535.0);
            }
        }),
        DynamicImage::ImageRgb16(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 3)) {
                *o = rgb(p[0] as f32, p[1] as f32, p[2] as f32) / 257.0;
            }
        }),
        DynamicImage::ImageRgba16(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 4)) {
                let l = rgb(p[0] as f32, p[1] as f32, p[2] as f32) / 257.0;
                *o = over_white(l, p[3] as f32 / 65535.0);
            }
        }),
        DynamicImage::ImageRgb32F(b) => add_rows(&mut |y, line| {
            for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 3)) {
                *o = (rgb(p[0], p[1], p[2]) * 255.0).clamp(0.0, 255.0);
            }
        }),
        other => {
            let b = other.to_rgba8();
            add_rows(&mut |y, line| {
                for (o, p) in line.iter_mut().zip(row(b.as_raw(), y, w, 4)) {
                    let l = rgb(p[0] as f32, p[1] as f32, p[2] as f32);
                    *o = over_white(l, p[3] as f32 / 255.0);
                }
            })
        }
    }
    // Divide each box by its pixel count.
    let mut xcount = vec![0u32; lw];
    for &bx in &xmap {
        xcount[bx as usize] += 1;
    }
    let mut ycount = vec![0u32; lh];
    for y in 0..h {
        ycount[y * lh / h] += 1;
    }
    for by in 0..lh {
        for bx in 0..lw {
            let n = (xcount[bx] * ycount[by]).max(1) as f32;
            acc[by * lw + bx] /= n;
        }
    }
    (acc, lw, lh)
}

fn row<T>(raw: &[T], y: usize, w: usize, channels: usize) -> std::slice::ChunksExact<'_, T> {
    raw[y * w * channels..(y + 1) * w * channels].chunks_exact(channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    fn pattern(w: u32, h: u32, seed: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| {
            let v = ((x * 7 + seed) / 13 + (y * 3 + seed * 5) / 11 + (x * y) / (97 + seed)) % 256;
            Luma([v as u8])
        }))
    }

    #[test]
    fn hashes_are_stable_under_resizing_and_differ_between_images() {
        let a = pattern(640, 480, 1);
        let a_small = a.resize_exact(320, 240, image::imageops::FilterType::Triangle);
        let b = pattern(640, 480, 40);
        let (ha, hs, hb) = (hash_image(&a), hash_image(&a_small), hash_image(&b));
        assert!(
            ha.pdq.distance(&hs.pdq) <= 24,
            "{}",
            ha.pdq.distance(&hs.pdq)
        );
        assert!(
            ha.phash.distance(&hs.phash) <= 6,
            "{}",
            ha.phash.distance(&hs.phash)
        );
        assert!(
            ha.pdq.distance(&hb.pdq) > 64,
            "{}",
            ha.pdq.distance(&hb.pdq)
        );
        assert!(ha.pdq_quality > 50);
        // A flat image has no structure to hash.
        let flat = DynamicImage::ImageLuma8(GrayImage::from_pixel(100, 100, Luma([128])));
        assert_eq!(hash_image(&flat).pdq_quality, 0);
    }

    #[test]
    fn about_half_the_bits_are_set() {
        let h = hash_image(&pattern(300, 200, 3));
        let ones: u32 = h.pdq.0.iter().map(|b| b.count_ones()).sum();
        assert!((110..=128).contains(&ones), "{ones}");
        let ones = h.phash.as_u64().count_ones();
        assert!((26..=32).contains(&ones), "{ones}");
    }
}
