//! Synthetic pictures and their near-duplicate copies, for tests and benchmarks. Deterministic
//! from a seed; no files needed.

#![allow(dead_code)]

use image::{DynamicImage, ImageEncoder, Rgb, RgbImage, imageops::FilterType};

/// splitmix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f()
    }

    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }

    fn color(&mut self) -> [f32; 3] {
        [
            self.range(0.0, 255.0),
            self.range(0.0, 255.0),
            self.range(0.0, 255.0),
        ]
    }
}

/// A picture: a gradient background and a dozen soft-edged shapes.
pub fn scene(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut rng = Rng::new(seed);
    let (c0, c1) = (rng.color(), rng.color());
    let angle = rng.range(0.0, std::f32::consts::TAU);
    let (dx, dy) = (angle.cos(), angle.sin());
    let mut px: Vec<[f32; 3]> = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let t =
                ((x as f32 / w as f32 - 0.5) * dx + (y as f32 / h as f32 - 0.5) * dy + 0.75) / 1.5;
            let t = t.clamp(0.0, 1.0);
            px.push([0, 1, 2].map(|i| c0[i] * (1.0 - t) + c1[i] * t));
        }
    }
    let shapes = 8 + rng.below(8);
    for _ in 0..shapes {
        let color = rng.color();
        let (cx, cy) = (
            rng.range(0.0, 1.0) * w as f32,
            rng.range(0.0, 1.0) * h as f32,
        );
        let (rx, ry) = (
            rng.range(0.05, 0.3) * w as f32,
            rng.range(0.05, 0.3) * h as f32,
        );
        let kind = rng.below(3);
        let alpha = rng.range(0.5, 1.0);
        let x0 = (cx - rx).max(0.0) as u32;
        let x1 = ((cx + rx) as u32 + 1).min(w);
        let y0 = (cy - ry).max(0.0) as u32;
        let y1 = ((cy + ry) as u32 + 1).min(h);
        for y in y0..y1 {
            for x in x0..x1 {
                let u = (x as f32 - cx) / rx;
                let v = (y as f32 - cy) / ry;
                let inside = match kind {
                    0 => u * u + v * v <= 1.0,
                    1 => u.abs() <= 1.0 && v.abs() <= 1.0,
                    _ => {
                        let r = u * u + v * v;
                        (0.4..=1.0).contains(&r)
                    }
                };
                if inside {
                    let p = &mut px[(y * w + x) as usize];
                    for i in 0..3 {
                        p[i] = p[i] * (1.0 - alpha) + color[i] * alpha;
                    }
                }
            }
        }
    }
    // A little texture so that flat areas are not perfectly flat.
    let (fx, fy, amp) = (
        rng.range(0.02, 0.2),
        rng.range(0.02, 0.2),
        rng.range(0.0, 12.0),
    );
    RgbImage::from_fn(w, h, |x, y| {
        let p = px[(y * w + x) as usize];
        let t = amp * ((x as f32 * fx).sin() + (y as f32 * fy).cos());
        Rgb(p.map(|c| (c + t).clamp(0.0, 255.0) as u8))
    })
}

/// A copy of a picture, as the web makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// JPEG at this quality.
    Reencode(u8),
    /// Scaled by this percentage (then JPEG 85).
    Resize(u32),
    /// This percentage cut from the left and top (then JPEG 85).
    Crop(u32),
    /// A semi-transparent caption box in a corner (then JPEG 85).
    Watermark,
    /// Brighter by this many levels (then JPEG 85).
    Brighter(u8),
    /// Grey-scale (then JPEG 85).
    Grey,
    /// A white border of this percentage on every side (then JPEG 85).
    Border(u32),
}

impl Copy {
    pub const ALL: [Copy; 11] = [
        Copy::Reencode(90),
        Copy::Reencode(50),
        Copy::Resize(50),
        Copy::Resize(25),
        Copy::Resize(150),
        Copy::Crop(5),
        Copy::Crop(10),
        Copy::Watermark,
        Copy::Brighter(30),
        Copy::Grey,
        Copy::Border(8),
    ];

    pub fn name(self) -> String {
        match self {
            Copy::Reencode(q) => format!("jpeg q{q}"),
            Copy::Resize(p) => format!("resize {p}%"),
            Copy::Crop(p) => format!("crop {p}%"),
            Copy::Watermark => "watermark".into(),
            Copy::Brighter(d) => format!("brighter +{d}"),
            Copy::Grey => "grey".into(),
            Copy::Border(p) => format!("border {p}%"),
        }
    }

    /// The copy's bytes.
    pub fn apply(self, img: &RgbImage, seed: u64) -> Vec<u8> {
        let (w, h) = img.dimensions();
        let out: DynamicImage = match self {
            Copy::Reencode(q) => return jpeg(img, q),
            Copy::Resize(p) => DynamicImage::ImageRgb8(image::imageops::resize(
                img,
                (w * p / 100).max(1),
                (h * p / 100).max(1),
                FilterType::Triangle,
            )),
            Copy::Crop(p) => {
                let (cx, cy) = (w * p / 100, h * p / 100);
                DynamicImage::ImageRgb8(
                    image::imageops::crop_imm(img, cx, cy, w - cx, h - cy).to_image(),
                )
            }
            Copy::Watermark => {
                let mut m = img.clone();
                let mut rng = Rng::new(seed);
                let (bw, bh) = (w * 35 / 100, h * 12 / 100);
                let (x0, y0) = (w - bw - w / 20, h - bh - h / 20);
                for y in y0..y0 + bh {
                    for x in x0..x0 + bw {
                        let p = m.get_pixel_mut(x, y);
                        p.0 = p.0.map(|c| (c as f32 * 0.4 + 255.0 * 0.6) as u8);
                    }
                }
                // "Text": dark blocks in a row.
                let glyph = (bh / 2).max(2);
                let mut x = x0 + glyph / 2;
                while x + glyph < x0 + bw {
                    if rng.below(4) != 0 {
                        for y in y0 + bh / 4..y0 + bh / 4 + glyph {
                            for xx in x..x + glyph * 2 / 3 {
                                m.put_pixel(xx, y, Rgb([30, 30, 30]));
                            }
                        }
                    }
                    x += glyph;
                }
                DynamicImage::ImageRgb8(m)
            }
            Copy::Brighter(d) => {
                let mut m = img.clone();
                for p in m.pixels_mut() {
                    p.0 = p.0.map(|c| c.saturating_add(d));
                }
                DynamicImage::ImageRgb8(m)
            }
            Copy::Grey => DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(img.clone()).to_luma8()),
            Copy::Border(p) => {
                let (bx, by) = (w * p / 100, h * p / 100);
                let mut m = RgbImage::from_pixel(w + 2 * bx, h + 2 * by, Rgb([255, 255, 255]));
                image::imageops::replace(&mut m, img, bx as i64, by as i64);
                DynamicImage::ImageRgb8(m)
            }
        };
        jpeg_dyn(&out, 85)
    }
}

pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("jpeg encodes");
    out
}

pub fn jpeg_dyn(img: &DynamicImage, quality: u8) -> Vec<u8> {
    match img {
        DynamicImage::ImageLuma8(g) => {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
                .write_image(
                    g.as_raw(),
                    g.width(),
                    g.height(),
                    image::ExtendedColorType::L8,
                )
                .expect("jpeg encodes");
            out
        }
        other => jpeg(&other.to_rgb8(), quality),
    }
}

pub fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png encodes");
    out.into_inner()
}
