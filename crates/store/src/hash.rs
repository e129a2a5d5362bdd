//! Perceptual hashes of an (already oriented) image, written for this project rather than
//! taken from a crate, so that their definition is pinned here and versioned by
//! [`HASH_VERSION`]:
//!
//! 1. Luma (Rec. 601), with transparent pixels composited over white, averaged over the cells of
//!    a 64×64 grid (the box filter that PDQ's two "Jarosz" box passes approximate). Large images
//!    are sampled on a lattice of at least 3×3 points per cell rather than read whole, so hashing
//!    costs a fraction of decoding. Images smaller than 64 pixels keep their size and are
//!    decimated (nearest sample) to 64×64.
//! 2. **PDQ-style 256-bit hash** (after Facebook's PDQ): a 16×16 DCT of the 64×64 image (the
//!    lowest frequencies without the DC row and column), and one bit per coefficient: above the
//!    median.
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

/// The working luma image is at most `WORK`×`WORK` cells.
const WORK: usize = 64;

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

/// The same along columns, computed a whole row at a time (row-major, so it vectorises).
fn box_cols(src: &[f32], dst: &mut [f32], w: usize, h: usize, win: usize) {
    if win <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let before = (win - 1) / 2;
    let after = win - 1 - before;
    // prefix[y] = sum of rows 0..y.
    let mut prefix = vec![0f32; (h + 1) * w];
    for y in 0..h {
        let (done, rest) = prefix.split_at_mut((y + 1) * w);
        let prev = &done[y * w..];
        let row = &src[y * w..(y + 1) * w];
        for ((p, a), b) in rest[..w].iter_mut().zip(prev).zip(row) {
            *p = a + b;
        }
    }
    for y in 0..h {
        let lo = y.saturating_sub(before);
        let hi = (y + after + 1).min(h);
        let inv = 1.0 / (hi - lo) as f32;
        let (top, bottom) = (&prefix[lo * w..(lo + 1) * w], &prefix[hi * w..(hi + 1) * w]);
        for ((d, t), b) in dst[y * w..(y + 1) * w].iter_mut().zip(top).zip(bottom) {
            *d = (b - t) * inv;
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

/// The working luma image: the average luma over each cell of a grid of at most 64×64 cells
/// (the image's own size when smaller), transparent pixels over white. Large images are
/// sampled on a regular lattice of at least 3×3 points per cell, so that the cost does not
/// grow with the image beyond one pass over a fraction of its rows.
pub fn working_luma(img: &DynamicImage) -> (Vec<f32>, usize, usize) {
    let (w, h) = (img.width().max(1) as usize, img.height().max(1) as usize);
    let (lw, lh) = (w.min(WORK), h.min(WORK));
    let (sx, sy) = ((w / (lw * 3)).max(1), (h / (lh * 3)).max(1));
    let xs: Vec<usize> = (sx / 2..w).step_by(sx).collect();
    let ys: Vec<usize> = (sy / 2..h).step_by(sy).collect();
    let xmap: Vec<u32> = xs.iter().map(|&x| (x * lw / w) as u32).collect();
    let ymap: Vec<u32> = ys.iter().map(|&y| (y * lh / h) as u32).collect();
    let grid = Grid {
        w,
        lw,
        lh,
        xs: &xs,
        ys: &ys,
        xmap: &xmap,
        ymap: &ymap,
    };
    let mut acc = match luma_sums_u8(img, &grid) {
        Some(a) => a,
        None => luma_sums_f32(img, &grid),
    };
    // Divide each cell by its number of samples.
    let mut xcount = vec![0u32; lw];
    for &b in &xmap {
        xcount[b as usize] += 1;
    }
    let mut ycount = vec![0u32; lh];
    for &b in &ymap {
        ycount[b as usize] += 1;
    }
    for by in 0..lh {
        for bx in 0..lw {
            acc[by * lw + bx] /= (xcount[bx] * ycount[by]).max(1) as f32;
        }
    }
    (acc, lw, lh)
}

/// The sampling lattice of [`working_luma`].
struct Grid<'a> {
    w: usize,
    lw: usize,
    lh: usize,
    xs: &'a [usize],
    ys: &'a [usize],
    xmap: &'a [u32],
    ymap: &'a [u32],
}

impl Grid<'_> {
    /// Sums `px` of every sample into its cell. `raw` holds `C` values per pixel.
    fn sum<T: Copy, const C: usize, A: Copy + Default + std::ops::AddAssign>(
        &self,
        raw: &[T],
        px: impl Fn(&[T]) -> A,
    ) -> Vec<A> {
        let mut acc = vec![A::default(); self.lw * self.lh];
        for (&y, &by) in self.ys.iter().zip(self.ymap) {
            let row = &raw[y * self.w * C..(y + 1) * self.w * C];
            let out = &mut acc[by as usize * self.lw..(by as usize + 1) * self.lw];
            for (&x, &bx) in self.xs.iter().zip(self.xmap) {
                out[bx as usize] += px(&row[x * C..x * C + C]);
            }
        }
        acc
    }
}

/// The common 8-bit layouts in integer arithmetic (luma × 256 in `u32` cells; a cell holds at
/// most a few thousand samples, far from overflow).
fn luma_sums_u8(img: &DynamicImage, g: &Grid<'_>) -> Option<Vec<f32>> {
    let largest = g.xs.len().div_ceil(g.lw) as u64 * g.ys.len().div_ceil(g.lh) as u64 * 4;
    if largest * 65_280 > u32::MAX as u64 {
        return None;
    }
    let acc: Vec<u32> = match img {
        DynamicImage::ImageRgb8(b) => g.sum::<u8, 3, u32>(b.as_raw(), |p| {
            77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32
        }),
        DynamicImage::ImageLuma8(b) => g.sum::<u8, 1, u32>(b.as_raw(), |p| 256 * p[0] as u32),
        DynamicImage::ImageRgba8(b) => g.sum::<u8, 4, u32>(b.as_raw(), |p| {
            let l = 77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32;
            let a = p[3] as u32;
            (l * a + 65_280 * (255 - a)) / 255
        }),
        _ => return None,
    };
    Some(acc.into_iter().map(|v| v as f32 / 256.0).collect())
}

/// Every other layout, in floating point.
fn luma_sums_f32(img: &DynamicImage, g: &Grid<'_>) -> Vec<f32> {
    fn rgb(r: f32, gr: f32, b: f32) -> f32 {
        0.299 * r + 0.587 * gr + 0.114 * b
    }
    fn over_white(l: f32, a: f32) -> f32 {
        l * a + 255.0 * (1.0 - a)
    }
    match img {
        DynamicImage::ImageLumaA8(b) => {
            g.sum::<u8, 2, f32>(b.as_raw(), |p| over_white(p[0] as f32, p[1] as f32 / 255.0))
        }
        DynamicImage::ImageLuma16(b) => g.sum::<u16, 1, f32>(b.as_raw(), |p| p[0] as f32 / 257.0),
        DynamicImage::ImageLumaA16(b) => g.sum::<u16, 2, f32>(b.as_raw(), |p| {
            over_white(p[0] as f32 / 257.0, p[1] as f32 / 65535.0)
        }),
        DynamicImage::ImageRgb16(b) => g.sum::<u16, 3, f32>(b.as_raw(), |p| {
            rgb(p[0] as f32, p[1] as f32, p[2] as f32) / 257.0
        }),
        DynamicImage::ImageRgba16(b) => g.sum::<u16, 4, f32>(b.as_raw(), |p| {
            let l = rgb(p[0] as f32, p[1] as f32, p[2] as f32) / 257.0;
            over_white(l, p[3] as f32 / 65535.0)
        }),
        DynamicImage::ImageRgb32F(b) => g.sum::<f32, 3, f32>(b.as_raw(), |p| {
            (rgb(p[0], p[1], p[2]) * 255.0).clamp(0.0, 255.0)
        }),
        other => {
            let b = other.to_rgba8();
            g.sum::<u8, 4, f32>(b.as_raw(), |p| {
                let l = rgb(p[0] as f32, p[1] as f32, p[2] as f32);
                over_white(l, p[3] as f32 / 255.0)
            })
        }
    }
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
