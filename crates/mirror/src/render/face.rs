//! Rendered faces. Each identity has fixed traits (face shape, hair, glasses, nose, brows,
//! beard, ...); every picture varies them a little and varies the photo around them.
//!
//! The four Beatles are close: John and George share face shape, nose, hair and beard years
//! and differ mostly in glasses and brows, so George is the one most taken for John; Paul has a
//! rounder face, bigger eyes and no glasses; Ringo a bigger nose, sad eyes and an early beard.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tiny_skia::{PathBuilder, Pixmap, Transform};

use super::draw::{Rgb, fill, oval, polygon, stroke};
use crate::spec::Beatle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glasses {
    Round,
    Square,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beard {
    None,
    Moustache,
    Full,
}

/// What makes a face someone's.
#[derive(Debug, Clone)]
pub struct Traits {
    /// Half-height over half-width of the face.
    pub aspect: f32,
    /// 0: round chin, 1: square jaw.
    pub jaw: f32,
    pub skin: Rgb,
    pub hair: Rgb,
    /// Hair length at era 0 and its growth up to era 1 (0: cropped, 1: to the shoulders).
    pub hair_len: f32,
    pub hair_growth: f32,
    pub hair_volume: f32,
    /// How far the fringe falls over the forehead (0: none, 1: to the brows).
    pub fringe: f32,
    /// Hairline height for receding hair (0: normal, 1: bald on top).
    pub bald: f32,
    pub parting: f32,
    pub eye_spacing: f32,
    pub eye_size: f32,
    /// Tilt of the eyes' outer corners (negative: droopy).
    pub eye_tilt: f32,
    pub iris: Rgb,
    pub brow_thick: f32,
    pub brow_height: f32,
    pub brow_arch: f32,
    pub nose_len: f32,
    pub nose_width: f32,
    pub mouth_width: f32,
    pub lip: Rgb,
    /// Chance of glasses at era 0 and at era 1.
    pub glasses_p: (f32, f32),
    pub glasses: Glasses,
    /// Lens tint alpha (0: clear).
    pub tint: f32,
    pub frame: Rgb,
    /// From this era on, the beard below (before it, a smaller chance of it).
    pub beard_era: f32,
    pub beard: Beard,
    pub ear: f32,
}

impl Traits {
    pub fn beatle(b: Beatle) -> Self {
        let john = Traits {
            aspect: 1.34,
            jaw: 0.5,
            skin: Rgb(0.93, 0.78, 0.66),
            hair: Rgb(0.36, 0.25, 0.16),
            hair_len: 0.42,
            hair_growth: 0.55,
            hair_volume: 0.5,
            fringe: 0.85,
            bald: 0.0,
            parting: 0.0,
            eye_spacing: 0.38,
            eye_size: 0.85,
            eye_tilt: 0.0,
            iris: Rgb(0.45, 0.33, 0.2),
            brow_thick: 0.05,
            brow_height: 0.0,
            brow_arch: 0.04,
            nose_len: 1.25,
            nose_width: 0.95,
            mouth_width: 1.0,
            lip: Rgb(0.75, 0.5, 0.45),
            glasses_p: (0.45, 0.95),
            glasses: Glasses::Round,
            tint: 0.12,
            frame: Rgb(0.72, 0.6, 0.3),
            beard_era: 0.72,
            beard: Beard::Full,
            ear: 1.0,
        };
        match b {
            Beatle::John => john,
            Beatle::George => Traits {
                aspect: 1.37,
                jaw: 0.56,
                skin: Rgb(0.9, 0.75, 0.62),
                hair: Rgb(0.27, 0.18, 0.11),
                hair_volume: 0.6,
                fringe: 0.9,
                eye_spacing: 0.39,
                eye_size: 0.9,
                iris: Rgb(0.35, 0.24, 0.15),
                brow_thick: 0.085,
                brow_height: -0.02,
                brow_arch: 0.02,
                nose_len: 1.2,
                glasses_p: (0.04, 0.25),
                beard_era: 0.6,
                ..john
            },
            Beatle::Paul => Traits {
                aspect: 1.2,
                jaw: 0.3,
                skin: Rgb(0.95, 0.8, 0.7),
                hair: Rgb(0.2, 0.14, 0.1),
                hair_len: 0.38,
                hair_growth: 0.35,
                eye_spacing: 0.41,
                eye_size: 1.2,
                eye_tilt: 0.04,
                iris: Rgb(0.35, 0.28, 0.18),
                brow_thick: 0.06,
                brow_height: 0.05,
                brow_arch: 0.1,
                nose_len: 0.92,
                nose_width: 0.9,
                mouth_width: 1.08,
                glasses_p: (0.0, 0.05),
                beard_era: 0.55,
                beard: Beard::Moustache,
                ..john
            },
            Beatle::Ringo => Traits {
                aspect: 1.27,
                jaw: 0.45,
                skin: Rgb(0.92, 0.76, 0.64),
                hair: Rgb(0.18, 0.14, 0.12),
                hair_len: 0.35,
                hair_growth: 0.4,
                fringe: 0.7,
                eye_spacing: 0.37,
                eye_size: 0.95,
                eye_tilt: -0.08,
                iris: Rgb(0.3, 0.4, 0.5),
                brow_thick: 0.065,
                brow_height: -0.03,
                brow_arch: -0.02,
                nose_len: 1.5,
                nose_width: 1.4,
                mouth_width: 0.95,
                glasses_p: (0.05, 0.35),
                glasses: Glasses::Square,
                tint: 0.55,
                frame: Rgb(0.1, 0.1, 0.1),
                beard_era: 0.35,
                ..john
            },
        }
    }

    /// A random person: anyone, within broad ranges.
    pub fn random(rng: &mut ChaCha8Rng) -> Self {
        let skins = [
            Rgb(0.96, 0.84, 0.74),
            Rgb(0.92, 0.76, 0.62),
            Rgb(0.82, 0.62, 0.46),
            Rgb(0.66, 0.46, 0.32),
            Rgb(0.5, 0.34, 0.24),
            Rgb(0.36, 0.24, 0.17),
        ];
        let hairs = [
            Rgb(0.1, 0.08, 0.07),
            Rgb(0.25, 0.17, 0.1),
            Rgb(0.45, 0.3, 0.18),
            Rgb(0.8, 0.68, 0.42),
            Rgb(0.6, 0.3, 0.15),
            Rgb(0.7, 0.7, 0.7),
            Rgb(0.92, 0.92, 0.9),
        ];
        let long_haired = rng.random_bool(0.45);
        let skin = skins[rng.random_range(0..skins.len())].scale(rng.random_range(0.95..1.05));
        Traits {
            aspect: rng.random_range(1.12..1.48),
            jaw: rng.random_range(0.1..0.9),
            skin,
            hair: hairs[rng.random_range(0..hairs.len())],
            hair_len: if long_haired {
                rng.random_range(0.6..1.0)
            } else {
                rng.random_range(0.0..0.4)
            },
            hair_growth: 0.0,
            hair_volume: rng.random_range(0.1..0.9),
            fringe: rng.random_range(0.0..0.9),
            bald: if !long_haired && rng.random_bool(0.15) {
                rng.random_range(0.5..1.0)
            } else {
                0.0
            },
            parting: rng.random_range(-1.0..1.0),
            eye_spacing: rng.random_range(0.34..0.44),
            eye_size: rng.random_range(0.8..1.25),
            eye_tilt: rng.random_range(-0.08..0.08),
            iris: [Rgb(0.3, 0.2, 0.1), Rgb(0.2, 0.4, 0.6), Rgb(0.3, 0.45, 0.3)]
                [rng.random_range(0..3)],
            brow_thick: rng.random_range(0.03..0.1),
            brow_height: rng.random_range(-0.04..0.06),
            brow_arch: rng.random_range(-0.03..0.1),
            nose_len: rng.random_range(0.85..1.5),
            nose_width: rng.random_range(0.8..1.5),
            mouth_width: rng.random_range(0.85..1.2),
            lip: skin.mix(Rgb(0.75, 0.3, 0.35), rng.random_range(0.2..0.6)),
            glasses_p: if rng.random_bool(0.25) {
                (0.8, 0.8)
            } else {
                (0.0, 0.0)
            },
            glasses: if rng.random_bool(0.5) {
                Glasses::Round
            } else {
                Glasses::Square
            },
            tint: if rng.random_bool(0.2) { 0.6 } else { 0.1 },
            frame: [Rgb(0.1, 0.1, 0.1), Rgb(0.7, 0.6, 0.3), Rgb(0.5, 0.2, 0.2)]
                [rng.random_range(0..3)],
            beard_era: if !long_haired && rng.random_bool(0.3) {
                0.0
            } else {
                2.0
            },
            beard: if rng.random_bool(0.5) {
                Beard::Full
            } else {
                Beard::Moustache
            },
            ear: rng.random_range(0.85..1.2),
        }
    }
}

/// One face in one picture: the identity's traits as this picture shows them.
#[derive(Debug, Clone)]
pub struct Pose {
    pub cx: f32,
    pub cy: f32,
    /// Half-width of the face in canvas units.
    pub size: f32,
    /// Degrees.
    pub roll: f32,
    /// -1 (looking left) .. 1 (looking right).
    pub yaw: f32,
    pub smile: f32,
    pub hair_len: f32,
    pub glasses: bool,
    pub beard: Beard,
    pub clothes: Rgb,
    pub shirt: Option<Rgb>,
    pub tie: bool,
}

impl Pose {
    /// Draws the traits for one picture: era drifts hair, beard and glasses; small jitter
    /// stands for expression, camera and the day.
    pub fn new(t: &Traits, era: f32, rng: &mut ChaCha8Rng, cx: f32, cy: f32, size: f32) -> Self {
        let glasses_p = t.glasses_p.0 + (t.glasses_p.1 - t.glasses_p.0) * era;
        let beard = if era >= t.beard_era && rng.random_bool(0.85) {
            t.beard
        } else if era >= t.beard_era - 0.12 && rng.random_bool(0.3) {
            Beard::Moustache
        } else {
            Beard::None
        };
        let suit = era < 0.45 && rng.random_bool(0.8);
        let clothes = if suit {
            [
                Rgb(0.08, 0.08, 0.09),
                Rgb(0.25, 0.25, 0.28),
                Rgb(0.15, 0.15, 0.2),
            ][rng.random_range(0..3)]
        } else {
            Rgb::hsv(
                rng.random_range(0.0..360.0),
                rng.random_range(0.2..0.8),
                rng.random_range(0.3..0.9),
            )
        };
        Pose {
            cx,
            cy,
            size,
            roll: rng.random_range(-12.0..12.0),
            yaw: rng.random_range(-0.45..0.45),
            smile: rng.random_range(-0.3..1.0),
            hair_len: (t.hair_len + t.hair_growth * era + rng.random_range(-0.05..0.05))
                .clamp(0.0, 1.2),
            glasses: rng.random_bool(glasses_p.clamp(0.0, 1.0) as f64),
            beard,
            clothes,
            shirt: suit.then_some(Rgb(0.95, 0.95, 0.93)),
            tie: suit && rng.random_bool(0.7),
        }
    }
}

/// Draws a head and shoulders. `view` maps canvas coordinates to pixels.
pub fn draw_person(pix: &mut Pixmap, t: &Traits, p: &Pose, view: Transform) {
    let l = Layout::new(t, p, view);
    draw_shoulders(pix, p, &l);
    draw_long_hair(pix, t, p, &l);
    draw_neck_and_ears(pix, t, &l);
    draw_face_outline(pix, t, &l);
    draw_eyes(pix, t, &l);
    let tip = draw_nose(pix, t, &l);
    draw_beard_and_mouth(pix, t, p, &l, tip);
    draw_top_hair(pix, t, p, &l);
    // Glasses last, over everything.
    if p.glasses {
        draw_glasses(pix, t, &l);
    }
}

/// Where one face is drawn, and the measures its parts share.
struct Layout {
    /// Face units to pixels, rolled with the head.
    face: Transform,
    /// Face units to pixels, not rolled (shoulders and clothes).
    body: Transform,
    /// The traits' aspect: half-height over half-width of the face.
    a: f32,
    yaw: f32,
    /// How far the features shift with the head's turn.
    fx: f32,
    /// How far the outline shifts with the head's turn.
    sx: f32,
    /// Half-width of the jaw near the chin.
    jw: f32,
    /// Height of the eyes.
    ey: f32,
    hair_dark: Rgb,
    skin_shade: Rgb,
}

impl Layout {
    fn new(t: &Traits, p: &Pose, view: Transform) -> Self {
        let a = t.aspect;
        let yaw = p.yaw;
        Layout {
            face: view
                .pre_translate(p.cx, p.cy)
                .pre_rotate(p.roll)
                .pre_scale(p.size, p.size),
            body: view.pre_translate(p.cx, p.cy).pre_scale(p.size, p.size),
            a,
            yaw,
            fx: yaw * 0.28, // features shift with the head's turn
            sx: yaw * 0.06,
            jw: 0.3 + 0.55 * t.jaw,
            ey: -0.08 * a,
            hair_dark: t.hair.scale(0.7),
            skin_shade: t.skin.scale(0.82),
        }
    }
}

/// Shoulders and clothes (not rolled with the head).
fn draw_shoulders(pix: &mut Pixmap, p: &Pose, l: &Layout) {
    let body = l.body;
    let top = l.a * 1.15;
    if let Some(path) = polygon(&[
        (-0.5, top - 0.1),
        (0.5, top - 0.1),
        (2.9, top + 0.9),
        (3.4, top + 6.0),
        (-3.4, top + 6.0),
        (-2.9, top + 0.9),
    ]) {
        fill(pix, &path, p.clothes, 1.0, body);
    }
    if let Some(shirt) = p.shirt {
        if let Some(v) = polygon(&[(-0.5, top - 0.1), (0.5, top - 0.1), (0.0, top + 1.6)]) {
            fill(pix, &v, shirt, 1.0, body);
        }
        if p.tie {
            if let Some(tie) = polygon(&[
                (-0.09, top),
                (0.09, top),
                (0.05, top + 1.5),
                (-0.05, top + 1.5),
            ]) {
                fill(pix, &tie, Rgb(0.05, 0.05, 0.07), 1.0, body);
            }
        }
    }
}

/// Long hair falls behind the head onto the shoulders.
fn draw_long_hair(pix: &mut Pixmap, t: &Traits, p: &Pose, l: &Layout) {
    let a = l.a;
    let len = p.hair_len;
    if len > 0.35 && t.bald < 0.5 {
        let w = 1.2 + t.hair_volume * 0.25;
        let bottom = -0.2 * a + len * 1.5 * a;
        let mut pb = PathBuilder::new();
        pb.move_to(-w, -0.2 * a);
        pb.cubic_to(-w, -a * 1.3, w, -a * 1.3, w, -0.2 * a);
        pb.line_to(w * 0.95, bottom);
        pb.quad_to(0.0, bottom + 0.15, -w * 0.95, bottom);
        pb.close();
        if let Some(path) = pb.finish() {
            fill(pix, &path, l.hair_dark, 1.0, l.face);
        }
    }
}

fn draw_neck_and_ears(pix: &mut Pixmap, t: &Traits, l: &Layout) {
    let a = l.a;
    // Neck.
    if let Some(neck) = polygon(&[
        (-0.42, 0.4 * a),
        (0.42, 0.4 * a),
        (0.46, a * 1.25),
        (-0.46, a * 1.25),
    ]) {
        fill(pix, &neck, l.skin_shade, 1.0, l.face);
    }
    // Ears.
    for side in [-1.0f32, 1.0] {
        let ex = side * (1.0 - l.yaw * side * 0.12);
        if let Some(ear) = oval(ex, -0.02 * a, 0.15 * t.ear, 0.27 * t.ear) {
            fill(pix, &ear, l.skin_shade, 1.0, l.face);
        }
    }
}

/// Face outline: round forehead, jaw to the chin.
fn draw_face_outline(pix: &mut Pixmap, t: &Traits, l: &Layout) {
    let (a, jw, sx, yaw) = (l.a, l.jw, l.sx, l.yaw);
    let mut pb = PathBuilder::new();
    pb.move_to(sx, -a);
    pb.cubic_to(0.62 + sx, -a, 1.0 + sx, -0.72 * a, 1.0 + sx, -0.1 * a);
    pb.cubic_to(1.0 + sx, 0.45 * a, jw + sx, 0.9 * a, sx, a);
    pb.cubic_to(-jw + sx, 0.9 * a, -1.0 + sx, 0.45 * a, -1.0 + sx, -0.1 * a);
    pb.cubic_to(-1.0 + sx, -0.72 * a, -0.62 + sx, -a, sx, -a);
    pb.close();
    if let Some(path) = pb.finish() {
        fill(pix, &path, t.skin, 1.0, l.face);
        // Cheek shading on the side turned away.
        let shade_x = if yaw >= 0.0 { -0.75 } else { 0.75 };
        if let Some(s) = oval(shade_x + sx, 0.1 * a, 0.45, 0.8 * a) {
            fill(pix, &s, l.skin_shade, 0.12 + yaw.abs() * 0.3, l.face);
        }
    }
}

/// Eyes, lids and brows.
fn draw_eyes(pix: &mut Pixmap, t: &Traits, l: &Layout) {
    let (face, yaw, ey) = (l.face, l.yaw, l.ey);
    for side in [-1.0f32, 1.0] {
        let far = (side * yaw).min(0.0).abs(); // the eye on the far side looks smaller
        let k = t.eye_size * (1.0 - far * 0.35);
        let x = side * t.eye_spacing + l.fx;
        let eye = face
            .pre_translate(x, ey)
            .pre_rotate(-side * t.eye_tilt * 57.3);
        if let Some(white) = oval(0.0, 0.0, 0.19 * k, 0.085 * k) {
            fill(pix, &white, Rgb(0.95, 0.94, 0.92), 1.0, eye);
        }
        let look = yaw * 0.06;
        if let Some(iris) = oval(look, 0.0, 0.07 * k, 0.07 * k) {
            fill(pix, &iris, t.iris, 1.0, eye);
        }
        if let Some(pupil) = oval(look, 0.0, 0.032 * k, 0.032 * k) {
            fill(pix, &pupil, Rgb(0.04, 0.03, 0.03), 1.0, eye);
        }
        let mut lid = PathBuilder::new();
        lid.move_to(-0.2 * k, 0.01);
        lid.quad_to(0.0, -0.13 * k, 0.2 * k, 0.01);
        if let Some(lid) = lid.finish() {
            stroke(pix, &lid, Rgb(0.2, 0.13, 0.1), 1.0, 0.03, eye);
        }
        // Brow.
        let by = -0.2 - t.brow_height;
        let mut brow = PathBuilder::new();
        brow.move_to(-0.22, by + 0.02 + side * 0.0);
        brow.quad_to(0.0, by - 0.05 - t.brow_arch, 0.24, by + 0.03 - t.eye_tilt);
        if let Some(brow) = brow.finish() {
            let bt = face.pre_translate(x, ey).pre_scale(side, 1.0);
            stroke(pix, &brow, l.hair_dark, 1.0, t.brow_thick, bt);
        }
    }
}

/// Nose: ridge, bulb and nostrils. Returns the height of its tip.
fn draw_nose(pix: &mut Pixmap, t: &Traits, l: &Layout) -> f32 {
    let (face, yaw, ey, skin_shade) = (l.face, l.yaw, l.ey, l.skin_shade);
    let nx = yaw * 0.4;
    let tip = ey + 0.12 + t.nose_len * 0.33;
    let nw = 0.13 * t.nose_width;
    let mut ridge = PathBuilder::new();
    ridge.move_to(nx * 0.5 + 0.05 * yaw.signum(), ey + 0.05);
    ridge.quad_to(nx + 0.08, (ey + tip) / 2.0, nx + 0.04, tip);
    if let Some(ridge) = ridge.finish() {
        stroke(pix, &ridge, skin_shade.scale(0.85), 0.8, 0.035, face);
    }
    if let Some(bulb) = oval(nx, tip - 0.01, nw, 0.08) {
        fill(pix, &bulb, skin_shade, 0.7, face);
    }
    for side in [-1.0f32, 1.0] {
        if let Some(n) = oval(
            nx + side * nw * 0.55,
            tip + 0.03,
            0.035 * t.nose_width,
            0.022,
        ) {
            fill(pix, &n, Rgb(0.25, 0.15, 0.12), 0.85, face);
        }
    }
    tip
}

/// Beard, then the mouth over it, below the nose's `tip`.
fn draw_beard_and_mouth(pix: &mut Pixmap, t: &Traits, p: &Pose, l: &Layout, tip: f32) {
    let (face, a, fx, sx, jw) = (l.face, l.a, l.fx, l.sx, l.jw);
    let hair = t.hair;
    let my = tip + 0.27 * a.min(1.35);
    let mw = 0.28 * t.mouth_width;
    if p.beard == Beard::Full {
        let mut pb = PathBuilder::new();
        pb.move_to(-0.98 + sx, 0.05 * a);
        pb.cubic_to(-0.95 + sx, 0.6 * a, -jw + sx, 1.0 * a, sx, 1.08 * a);
        pb.cubic_to(jw + sx, 1.0 * a, 0.95 + sx, 0.6 * a, 0.98 + sx, 0.05 * a);
        pb.cubic_to(
            0.7 + sx,
            0.45 * a,
            -0.7 + sx,
            0.45 * a,
            -0.98 + sx,
            0.05 * a,
        );
        pb.close();
        if let Some(path) = pb.finish() {
            fill(pix, &path, hair, 0.92, face);
        }
    }
    if p.beard != Beard::None {
        let mut pb = PathBuilder::new();
        pb.move_to(fx - mw - 0.08, my + 0.02);
        pb.quad_to(fx, my - 0.2, fx + mw + 0.08, my + 0.02);
        pb.quad_to(fx, my - 0.07, fx - mw - 0.08, my + 0.02);
        pb.close();
        if let Some(path) = pb.finish() {
            fill(pix, &path, hair, 1.0, face);
        }
    }
    let s = p.smile * 0.07;
    let mut upper = PathBuilder::new();
    upper.move_to(fx - mw, my - s * 0.3);
    upper.quad_to(fx, my - 0.05, fx + mw, my - s * 0.3);
    upper.quad_to(fx, my + 0.03 + s, fx - mw, my - s * 0.3);
    upper.close();
    if let Some(path) = upper.finish() {
        fill(pix, &path, t.lip, 1.0, face);
    }
    let mut line = PathBuilder::new();
    line.move_to(fx - mw, my - s * 0.3);
    line.quad_to(fx, my + 0.02 + s, fx + mw, my - s * 0.3);
    if let Some(path) = line.finish() {
        stroke(pix, &path, t.lip.scale(0.55), 1.0, 0.025, face);
    }
}

/// Hair on top: a cap with a fringe line, and sideburns.
fn draw_top_hair(pix: &mut Pixmap, t: &Traits, p: &Pose, l: &Layout) {
    if t.bald >= 0.95 {
        return;
    }
    let (face, a, fx, sx) = (l.face, l.a, l.fx, l.sx);
    let vol = t.hair_volume;
    let w = 1.08 + vol * 0.15;
    let crown = -a - 0.18 - vol * 0.2;
    let fringe_y = -a * 0.62 + t.fringe * 0.32 * a * (1.0 - t.bald) - t.bald * 0.35 * a;
    let side_bottom = if p.hair_len > 0.4 { 0.12 * a } else { -0.3 * a };
    let part = t.parting * 0.3;
    let mut pb = PathBuilder::new();
    pb.move_to(-w + sx, side_bottom);
    pb.cubic_to(-w - 0.1 + sx, -0.9 * a, -0.6 + sx, crown, part + sx, crown);
    pb.cubic_to(0.6 + sx, crown, w + 0.1 + sx, -0.9 * a, w + sx, side_bottom);
    pb.line_to(0.9 + sx, side_bottom);
    pb.cubic_to(
        0.92 + sx,
        -0.3 * a,
        0.7 + sx,
        fringe_y - 0.05,
        0.4 + fx,
        fringe_y,
    );
    pb.quad_to(
        part + fx,
        fringe_y + 0.08 - t.parting.abs() * 0.1,
        -0.4 + fx,
        fringe_y,
    );
    pb.cubic_to(
        -0.7 + sx,
        fringe_y - 0.05,
        -0.92 + sx,
        -0.3 * a,
        -0.9 + sx,
        side_bottom,
    );
    pb.close();
    if let Some(path) = pb.finish() {
        fill(pix, &path, t.hair, 1.0, face);
    }
    // A few strands for texture.
    for i in 0..7 {
        let x = -0.8 + i as f32 * 0.27;
        let mut st = PathBuilder::new();
        st.move_to(part + sx, crown + 0.05);
        st.quad_to(x * 0.8 + sx, crown + 0.2, x + fx * 0.5, fringe_y - 0.05);
        if let Some(st) = st.finish() {
            stroke(pix, &st, l.hair_dark, 0.6, 0.03, face);
        }
    }
}

/// Lenses, arms and the bridge.
fn draw_glasses(pix: &mut Pixmap, t: &Traits, l: &Layout) {
    let (face, ey, fx, sx) = (l.face, l.ey, l.fx, l.sx);
    for side in [-1.0f32, 1.0] {
        let x = side * t.eye_spacing + fx;
        let lens = match t.glasses {
            Glasses::Round => oval(x, ey, 0.25, 0.25),
            Glasses::Square => {
                let mut pb = PathBuilder::new();
                pb.push_rect(tiny_skia::Rect::from_xywh(x - 0.27, ey - 0.19, 0.54, 0.38).unwrap());
                pb.finish()
            }
        };
        if let Some(lens) = lens {
            fill(pix, &lens, Rgb(0.3, 0.35, 0.3), t.tint, face);
            stroke(pix, &lens, t.frame, 1.0, 0.04, face);
        }
        let mut arm = PathBuilder::new();
        arm.move_to(x + side * 0.25, ey - 0.03);
        arm.line_to(side * 0.98 + sx, ey - 0.06);
        if let Some(arm) = arm.finish() {
            stroke(pix, &arm, t.frame, 1.0, 0.03, face);
        }
    }
    let mut bridge = PathBuilder::new();
    bridge.move_to(fx - t.eye_spacing + 0.25, ey - 0.02);
    bridge.quad_to(fx, ey - 0.1, fx + t.eye_spacing - 0.25, ey - 0.02);
    if let Some(b) = bridge.finish() {
        stroke(pix, &b, t.frame, 1.0, 0.035, face);
    }
}
