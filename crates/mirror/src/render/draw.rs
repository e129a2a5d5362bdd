//! Small drawing helpers over tiny-skia: anti-aliased fills and strokes, colours, gradients and
//! the per-pixel finishing passes (lighting, black and white, grain).

use tiny_skia::{
    Color, FillRule, GradientStop, Paint, Path, PathBuilder, Pixmap, Point, RadialGradient, Rect,
    SpreadMode, Stroke, Transform,
};

/// A colour as linear-ish RGB shares in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rgb(pub f32, pub f32, pub f32);

impl Rgb {
    pub fn color(self, alpha: f32) -> Color {
        Color::from_rgba(
            self.0.clamp(0.0, 1.0),
            self.1.clamp(0.0, 1.0),
            self.2.clamp(0.0, 1.0),
            alpha.clamp(0.0, 1.0),
        )
        .unwrap_or(Color::BLACK)
    }

    pub fn scale(self, k: f32) -> Rgb {
        Rgb(self.0 * k, self.1 * k, self.2 * k)
    }

    pub fn mix(self, other: Rgb, t: f32) -> Rgb {
        Rgb(
            self.0 + (other.0 - self.0) * t,
            self.1 + (other.1 - self.1) * t,
            self.2 + (other.2 - self.2) * t,
        )
    }

    /// From hue (degrees), saturation and value.
    pub fn hsv(h: f32, s: f32, v: f32) -> Rgb {
        let h = h.rem_euclid(360.0) / 60.0;
        let c = v * s;
        let x = c * (1.0 - (h % 2.0 - 1.0).abs());
        let (r, g, b) = match h as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = v - c;
        Rgb(r + m, g + m, b + m)
    }
}

pub fn paint(c: Rgb, alpha: f32) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(c.color(alpha));
    p.anti_alias = true;
    p
}

pub fn fill(pix: &mut Pixmap, path: &Path, c: Rgb, alpha: f32, t: Transform) {
    pix.fill_path(path, &paint(c, alpha), FillRule::Winding, t, None);
}

pub fn fill_with(pix: &mut Pixmap, path: &Path, p: &Paint, t: Transform) {
    pix.fill_path(path, p, FillRule::Winding, t, None);
}

pub fn stroke(pix: &mut Pixmap, path: &Path, c: Rgb, alpha: f32, width: f32, t: Transform) {
    let s = Stroke {
        width,
        line_cap: tiny_skia::LineCap::Round,
        line_join: tiny_skia::LineJoin::Round,
        ..Stroke::default()
    };
    pix.stroke_path(path, &paint(c, alpha), &s, t, None);
}

pub fn oval(cx: f32, cy: f32, rx: f32, ry: f32) -> Option<Path> {
    PathBuilder::from_oval(Rect::from_xywh(cx - rx, cy - ry, 2.0 * rx, 2.0 * ry)?)
}

pub fn rect(x: f32, y: f32, w: f32, h: f32) -> Option<Path> {
    Some(PathBuilder::from_rect(Rect::from_xywh(x, y, w, h)?))
}

/// A closed polygon through `pts`.
pub fn polygon(pts: &[(f32, f32)]) -> Option<Path> {
    let mut pb = PathBuilder::new();
    let (x, y) = *pts.first()?;
    pb.move_to(x, y);
    for &(x, y) in &pts[1..] {
        pb.line_to(x, y);
    }
    pb.close();
    pb.finish()
}

/// A smooth closed curve through `pts` (Catmull-Rom turned into cubics).
pub fn smooth_closed(pts: &[(f32, f32)]) -> Option<Path> {
    let n = pts.len();
    if n < 3 {
        return None;
    }
    let mut pb = PathBuilder::new();
    pb.move_to(pts[0].0, pts[0].1);
    for i in 0..n {
        let p0 = pts[(i + n - 1) % n];
        let p1 = pts[i];
        let p2 = pts[(i + 1) % n];
        let p3 = pts[(i + 2) % n];
        let c1 = (p1.0 + (p2.0 - p0.0) / 6.0, p1.1 + (p2.1 - p0.1) / 6.0);
        let c2 = (p2.0 - (p3.0 - p1.0) / 6.0, p2.1 - (p3.1 - p1.1) / 6.0);
        pb.cubic_to(c1.0, c1.1, c2.0, c2.1, p2.0, p2.1);
    }
    pb.close();
    pb.finish()
}

/// The gradient parameter `u = dot(P - from, to - from) / |to - from|²` of the canonical point
/// `P` under pixel `(px, py)`, as an affine function `A·px + B·py + C` of pixel coordinates.
pub fn affine_param(from: (f32, f32), to: (f32, f32), view: Transform) -> Option<(f32, f32, f32)> {
    let inv = view.invert()?;
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let dd = dx * dx + dy * dy;
    if dd <= f32::EPSILON {
        return None;
    }
    let a = (inv.sx * dx + inv.ky * dy) / dd;
    let b = (inv.kx * dx + inv.sy * dy) / dd;
    let c = ((inv.tx - from.0) * dx + (inv.ty - from.1) * dy) / dd;
    // Sample at pixel centres.
    Some((a, b, c + 0.5 * (a + b)))
}

/// Fills the whole canvas with an opaque linear gradient between two canonical points, written
/// straight into the pixels (much cheaper than a shader fill over the whole canvas).
pub fn linear_bg(
    pix: &mut Pixmap,
    _w: f32,
    _h: f32,
    from: (f32, f32, Rgb),
    to: (f32, f32, Rgb),
    t: Transform,
) {
    let c0 = [from.2.0, from.2.1, from.2.2].map(|v| v.clamp(0.0, 1.0) * 255.0);
    let c1 = [to.2.0, to.2.1, to.2.2].map(|v| v.clamp(0.0, 1.0) * 255.0);
    let (a, b, c) = affine_param((from.0, from.1), (to.0, to.1), t).unwrap_or((0.0, 0.0, 0.0));
    let width = pix.width() as usize;
    for (py, row) in pix.data_mut().chunks_exact_mut(width * 4).enumerate() {
        let mut u = b * py as f32 + c;
        for px in row.chunks_exact_mut(4) {
            let k = u.clamp(0.0, 1.0);
            for i in 0..3 {
                px[i] = (c0[i] + (c1[i] - c0[i]) * k) as u8;
            }
            px[3] = 255;
            u += a;
        }
    }
}

/// A soft radial light (or shadow) centred at `(x, y)`.
pub fn radial_glow(pix: &mut Pixmap, x: f32, y: f32, r: f32, c: Rgb, alpha: f32, t: Transform) {
    let shader = RadialGradient::new(
        Point::from_xy(x, y),
        Point::from_xy(x, y),
        r,
        vec![
            GradientStop::new(0.0, c.color(alpha)),
            GradientStop::new(1.0, c.color(0.0)),
        ],
        SpreadMode::Pad,
        Transform::identity(),
    );
    let Some(shader) = shader else { return };
    let p = Paint {
        shader,
        anti_alias: true,
        ..Paint::default()
    };
    if let Some(path) = oval(x, y, r, r) {
        fill_with(pix, &path, &p, t);
    }
}

/// A directional light across the canvas: brighter on one side, darker on the other.
#[derive(Debug, Clone, Copy)]
pub struct Light {
    /// `u = A·px + B·py + C`: 0 on the lit side, 1 on the dark side.
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub strength: f32,
}

impl Light {
    /// Light from `angle` (radians) over a canonical `w`×`h` canvas seen through `view`.
    pub fn new(w: f32, h: f32, angle: f32, strength: f32, view: Transform) -> Option<Light> {
        let (dx, dy) = (angle.cos(), angle.sin());
        let (cx, cy) = (w / 2.0, h / 2.0);
        let l = w.max(h) * 0.6;
        let (a, b, c) = affine_param((cx - dx * l, cy - dy * l), (cx + dx * l, cy + dy * l), view)?;
        Some(Light { a, b, c, strength })
    }
}

/// The per-pixel finish of a photo: exposure and contrast, a colour cast, black and white (with
/// an optional sepia tone) and film grain. `seed` makes the grain deterministic.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    pub exposure: f32,
    pub contrast: f32,
    pub cast: Rgb,
    pub black_and_white: bool,
    pub sepia: f32,
    pub grain: f32,
    pub seed: u64,
    pub light: Option<Light>,
}

pub fn finish(pix: &mut Pixmap, f: &Finish) {
    let mut state = f.seed | 1;
    let range = (f.grain * 255.0) as u64 * 2 + 1;
    let half = (range / 2) as i32;
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        let x = i as f32 / 255.0 * f.exposure;
        let y = (x - 0.5) * f.contrast + 0.5;
        *v = (y.clamp(0.0, 1.0) * 255.0) as u8;
    }
    let cast = [f.cast.0, f.cast.1, f.cast.2];
    let width = pix.width() as usize;
    let light = f.light.unwrap_or(Light {
        a: 0.0,
        b: 0.0,
        c: 0.5,
        strength: 0.0,
    });
    let (lift, shade) = (light.strength * 0.35, light.strength);
    for (y, row) in pix.data_mut().chunks_exact_mut(width * 4).enumerate() {
        let mut u = light.b * y as f32 + light.c;
        for px in row.chunks_exact_mut(4) {
            let mut c = [px[0] as f32, px[1] as f32, px[2] as f32];
            if shade > 0.0 {
                let uc = u.clamp(0.0, 1.0);
                if uc < 0.5 {
                    let k = lift * (1.0 - 2.0 * uc);
                    for v in &mut c {
                        *v += (255.0 - *v) * k;
                    }
                } else {
                    let k = 1.0 - shade * (2.0 * uc - 1.0);
                    for v in &mut c {
                        *v *= k;
                    }
                }
                u += light.a;
            }
            if f.black_and_white {
                let l = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
                c = [l + f.sepia * 40.0, l + f.sepia * 20.0, l - f.sepia * 10.0];
            } else {
                for k in 0..3 {
                    c[k] *= cast[k];
                }
            }
            // xorshift64 grain, scaled by multiply-shift (no division).
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (((state >> 32) * range) >> 32) as i32 - half;
            for k in 0..3 {
                px[k] = lut[(c[k] as i32 + n).clamp(0, 255) as usize];
            }
            px[3] = 255;
        }
    }
}
