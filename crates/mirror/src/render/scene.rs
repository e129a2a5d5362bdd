//! Word scenes: pictures whose look depends on the word. A word's style (palette, object shape,
//! texture, background, how many objects) comes from a keyed hash of the word; each picture
//! places, turns, scales and lights the word's objects anew.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tiny_skia::{PathBuilder, Pixmap, Transform};

use super::draw::{Rgb, fill, linear_bg, oval, polygon, radial_glow, rect, smooth_closed, stroke};

/// A word's look, the same in all its pictures.
#[derive(Debug, Clone)]
pub struct WordStyle {
    pub palette: [Rgb; 5],
    /// The object's outline: radii around the centre (a lobed blob or a polygon).
    pub outline: Vec<f32>,
    pub smooth: bool,
    pub aspect: f32,
    /// 0: plain, 1: stripes, 2: dots, 3: rings.
    pub texture: u8,
    /// 0: gradient, 1: horizon, 2: tiles, 3: rays.
    pub background: u8,
    pub count: (u32, u32),
    /// A second part (stem, handle, roof...): angle and size, if any.
    pub appendage: Option<(f32, f32)>,
}

impl WordStyle {
    pub fn new(word_seed: [u8; 32]) -> Self {
        let mut rng = ChaCha8Rng::from_seed(word_seed);
        let h0 = rng.random_range(0.0..360.0);
        let spread = rng.random_range(20.0..160.0);
        let sat = rng.random_range(0.35..0.95);
        let palette = [
            Rgb::hsv(h0, sat, rng.random_range(0.55..0.95)),
            Rgb::hsv(h0 + spread, sat * 0.8, rng.random_range(0.4..0.9)),
            Rgb::hsv(h0 - spread * 0.5, sat * 0.6, rng.random_range(0.7..1.0)),
            Rgb::hsv(
                h0 + 180.0,
                rng.random_range(0.1..0.5),
                rng.random_range(0.2..0.6),
            ),
            Rgb::hsv(
                h0 + spread * 1.5,
                rng.random_range(0.1..0.4),
                rng.random_range(0.8..1.0),
            ),
        ];
        let n = rng.random_range(3..=9);
        let smooth = rng.random_bool(0.6);
        let depth = rng.random_range(0.0..0.45);
        let outline = (0..n)
            .map(|i| {
                let lobe = if i % 2 == 0 { 1.0 } else { 1.0 - depth };
                lobe * rng.random_range(0.85..1.0)
            })
            .collect();
        let lo = rng.random_range(1..=3);
        WordStyle {
            palette,
            outline,
            smooth,
            aspect: rng.random_range(0.55..1.6),
            texture: rng.random_range(0..4),
            background: rng.random_range(0..4),
            count: (lo, lo + rng.random_range(0..=4)),
            appendage: rng.random_bool(0.6).then(|| {
                (
                    rng.random_range(0.0..std::f32::consts::TAU),
                    rng.random_range(0.3..0.9),
                )
            }),
        }
    }
}

/// Draws one picture of a word onto a canvas of `w`×`h` canonical units.
pub fn draw_word(
    pix: &mut Pixmap,
    style: &WordStyle,
    w: f32,
    h: f32,
    rng: &mut ChaCha8Rng,
    view: Transform,
) {
    let p = &style.palette;
    draw_background(pix, style, w, h, rng, view);
    // Soft blobs in the background, out of focus.
    for _ in 0..rng.random_range(2..6) {
        let c = p[rng.random_range(0..5)];
        radial_glow(
            pix,
            w * rng.random_range(0.0..1.0),
            h * rng.random_range(0.0..1.0),
            w.max(h) * rng.random_range(0.1..0.35),
            c,
            0.35,
            view,
        );
    }
    let count = rng.random_range(style.count.0..=style.count.1);
    let base = w.min(h)
        * if count == 1 {
            0.32
        } else {
            0.5 / (count as f32).sqrt()
        };
    for i in 0..count {
        let r = base * rng.random_range(0.7..1.2);
        let cx = if count == 1 {
            w * rng.random_range(0.35..0.65)
        } else {
            w * rng.random_range(0.15..0.85)
        };
        let cy = h * rng.random_range(0.3..0.75);
        let t = view
            .pre_translate(cx, cy)
            .pre_rotate(rng.random_range(-25.0..25.0))
            .pre_scale(r, r * style.aspect);
        let main = jitter(rng, p[i as usize % 3]);
        draw_object(pix, style, main, t);
    }
}

/// A colour a little lighter or darker.
fn jitter(rng: &mut ChaCha8Rng, c: Rgb) -> Rgb {
    c.scale(rng.random_range(0.85..1.15))
}

/// The word's background: a gradient, a horizon, tiles or rays.
fn draw_background(
    pix: &mut Pixmap,
    style: &WordStyle,
    w: f32,
    h: f32,
    rng: &mut ChaCha8Rng,
    view: Transform,
) {
    let p = &style.palette;
    let bg0 = jitter(rng, p[3]);
    let bg1 = jitter(rng, p[4]);
    match style.background {
        0 => linear_bg(
            pix,
            w,
            h,
            (0.0, 0.0, bg0),
            (w * rng.random_range(0.0..1.0), h, bg1),
            view,
        ),
        1 => {
            let horizon = h * rng.random_range(0.4..0.75);
            linear_bg(
                pix,
                w,
                h,
                (0.0, 0.0, bg1),
                (0.0, horizon, bg1.mix(bg0, 0.3)),
                view,
            );
            if let Some(r) = rect(-w, horizon, 3.0 * w, 2.0 * h) {
                fill(pix, &r, bg0, 1.0, view);
            }
        }
        2 => {
            linear_bg(pix, w, h, (0.0, 0.0, bg0), (0.0, h, bg0.scale(0.8)), view);
            let tile = w.max(h) / rng.random_range(6.0..14.0);
            let mut y = 0.0;
            let mut row = 0;
            while y < h {
                let mut x = if row % 2 == 0 { 0.0 } else { tile };
                while x < w {
                    if let Some(r) = rect(x, y, tile, tile) {
                        fill(pix, &r, bg1, 0.35, view);
                    }
                    x += 2.0 * tile;
                }
                y += tile;
                row += 1;
            }
        }
        _ => {
            linear_bg(pix, w, h, (0.0, 0.0, bg0), (w, h, bg0.scale(0.7)), view);
            let (cx, cy) = (
                w * rng.random_range(0.2..0.8),
                h * rng.random_range(0.2..0.8),
            );
            for i in 0..12 {
                let a0 = i as f32 * std::f32::consts::TAU / 12.0;
                let r = w.max(h) * 2.0;
                if let Some(ray) = polygon(&[
                    (cx, cy),
                    (cx + r * a0.cos(), cy + r * a0.sin()),
                    (cx + r * (a0 + 0.2).cos(), cy + r * (a0 + 0.2).sin()),
                ]) {
                    fill(pix, &ray, bg1, 0.25, view);
                }
            }
        }
    }
}

/// One of the word's objects in colour `main`: shadow, appendage, body, texture, outline and
/// highlight. `t` maps the object's unit circle to pixels.
fn draw_object(pix: &mut Pixmap, style: &WordStyle, main: Rgb, t: Transform) {
    let p = &style.palette;
    // Shadow.
    if let Some(s) = oval(0.1, 1.05, 1.0, 0.18) {
        fill(pix, &s, Rgb(0.0, 0.0, 0.0), 0.25, t);
    }
    let n = style.outline.len();
    let pts: Vec<(f32, f32)> = style
        .outline
        .iter()
        .enumerate()
        .map(|(k, rad)| {
            let a = k as f32 * std::f32::consts::TAU / n as f32 - std::f32::consts::FRAC_PI_2;
            (rad * a.cos(), rad * a.sin())
        })
        .collect();
    let body = if style.smooth {
        smooth_closed(&pts)
    } else {
        polygon(&pts)
    };
    if let Some((angle, size)) = style.appendage {
        let mut pb = PathBuilder::new();
        pb.move_to(0.0, 0.0);
        pb.line_to(angle.cos() * (1.0 + size), angle.sin() * (1.0 + size));
        if let Some(path) = pb.finish() {
            stroke(pix, &path, p[1].scale(0.7), 1.0, 0.18, t);
        }
        if let Some(knob) = oval(
            angle.cos() * (1.0 + size),
            angle.sin() * (1.0 + size),
            0.22,
            0.22,
        ) {
            fill(pix, &knob, p[2], 1.0, t);
        }
    }
    let Some(body) = body else { return };
    fill(pix, &body, main, 1.0, t);
    draw_texture(pix, style, t);
    stroke(pix, &body, main.scale(0.5), 0.9, 0.04, t);
    // Highlight.
    if let Some(hl) = oval(-0.35, -0.4, 0.25, 0.15) {
        fill(pix, &hl, Rgb(1.0, 1.0, 1.0), 0.35, t);
    }
}

/// The word's texture over an object: stripes, dots or rings.
fn draw_texture(pix: &mut Pixmap, style: &WordStyle, t: Transform) {
    let p = &style.palette;
    match style.texture {
        1 => {
            for k in 0..7 {
                let y = -1.0 + k as f32 * 0.3;
                let mut pb = PathBuilder::new();
                pb.move_to(-0.8, y);
                pb.line_to(0.8, y + 0.1);
                if let Some(path) = pb.finish() {
                    stroke(pix, &path, p[4], 0.6, 0.08, t);
                }
            }
        }
        2 => {
            for k in 0..9 {
                let (x, y) = ((k % 3) as f32 * 0.5 - 0.5, (k / 3) as f32 * 0.5 - 0.5);
                if let Some(d) = oval(x, y, 0.1, 0.1) {
                    fill(pix, &d, p[4], 0.8, t);
                }
            }
        }
        3 => {
            for k in 1..4 {
                if let Some(ring) = oval(0.0, 0.0, k as f32 * 0.22, k as f32 * 0.22) {
                    stroke(pix, &ring, p[1], 0.7, 0.06, t);
                }
            }
        }
        _ => {}
    }
}
