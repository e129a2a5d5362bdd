//! From an image spec to pixels: the original picture drawn in canonical coordinates, seen
//! through the copy's view (whole, resized, cropped) and finished like a photo.

pub mod draw;
pub mod face;
pub mod scene;

use image::RgbaImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tiny_skia::{Pixmap, Transform};

use crate::error::{MirrorError, Result};
use crate::spec::{Beatle, ImageSpec, Original, Subject, VariantKind};
use crate::world::{World, rng_for};
use draw::{Finish, Rgb, fill, linear_bg, oval, radial_glow, rect};
use face::{Pose, Traits, draw_person};

/// The upright pixels a spec's URL shows (before orientation and encoding).
pub fn spec_pixels(world: &World, spec: &ImageSpec) -> Result<RgbaImage> {
    let base = world.original_look(&spec.original);
    let params = world.variant_params(spec);
    let (bw, bh) = (base.width, base.height);
    if let Subject::Corpus(_) = spec.original.subject {
        return corpus_pixels(world, spec);
    }
    let mut img = match (spec.variant.kind, params.size, params.crop) {
        (VariantKind::Cropped, Some((cw, ch)), Some([x0, y0, fw, fh])) => {
            let sx = cw as f32 / (fw as f32 * bw as f32);
            let sy = ch as f32 / (fh as f32 * bh as f32);
            let view = Transform::from_scale(sx, sy)
                .pre_translate(-(x0 as f32) * bw as f32, -(y0 as f32) * bh as f32);
            original_pixels(world, &spec.original, cw, ch, view)
        }
        (_, Some((w, h)), _) => {
            let view = Transform::from_scale(w as f32 / bw as f32, h as f32 / bh as f32);
            original_pixels(world, &spec.original, w, h, view)
        }
        _ => original_pixels(world, &spec.original, bw, bh, Transform::identity()),
    }?;
    if let Some(i) = params.watermark {
        watermark(&mut img, crate::world::WATERMARKS[i], spec.variant.nonce);
    }
    Ok(img)
}

/// Draws an original at `pw`×`ph` pixels; `view` maps its canonical coordinates to pixels.
pub fn original_pixels(
    world: &World,
    original: &Original,
    pw: u32,
    ph: u32,
    view: Transform,
) -> Result<RgbaImage> {
    let look = world.original_look(original);
    let (w, h) = (look.width as f32, look.height as f32);
    let mut pix = Pixmap::new(pw.max(1), ph.max(1)).ok_or_else(|| MirrorError::Encode {
        what: "canvas".into(),
        message: format!("cannot make a {pw}x{ph} canvas"),
    })?;
    let mut rng = world.original_rng(original, "picture");
    let era = world.era(original);
    let bw_share = world.config.images.black_and_white as f32;
    let (bw_p, grain) = match &original.subject {
        Subject::Beatle(b) => {
            let traits = Traits::beatle(*b);
            backdrop(&mut pix, w, h, &mut rng, era, view);
            let size = w.min(h) * rng.random_range(0.15..0.3);
            let cx = w * rng.random_range(0.38..0.62);
            let cy = h * rng.random_range(0.34..0.5);
            let pose = Pose::new(&traits, era, &mut rng, cx, cy, size);
            draw_person(&mut pix, &traits, &pose, view);
            (bw_share * (1.7 - 1.6 * era), 0.05)
        }
        Subject::Person => {
            let person = world.person_of(original.index);
            let mut prng = rng_for(
                world.key(),
                "lennonnet mirror person v1",
                &[&person.to_le_bytes()],
            );
            let traits = Traits::random(&mut prng);
            let person_era = prng.random::<f32>();
            backdrop(&mut pix, w, h, &mut rng, 0.9, view);
            let size = w.min(h) * rng.random_range(0.15..0.3);
            let cx = w * rng.random_range(0.38..0.62);
            let cy = h * rng.random_range(0.34..0.5);
            let pose = Pose::new(&traits, person_era, &mut rng, cx, cy, size);
            draw_person(&mut pix, &traits, &pose, view);
            (bw_share * 0.4, 0.03)
        }
        Subject::Group { beatles, people } => {
            backdrop(&mut pix, w, h, &mut rng, era, view);
            let mut faces: Vec<Traits> = Beatle::ALL
                .iter()
                .filter(|b| beatles & b.bit() != 0)
                .map(|b| Traits::beatle(*b))
                .collect();
            for p in world.group_people(original, *people) {
                let mut prng = rng_for(
                    world.key(),
                    "lennonnet mirror person v1",
                    &[&p.to_le_bytes()],
                );
                faces.push(Traits::random(&mut prng));
            }
            // Shuffle who stands where.
            for i in (1..faces.len()).rev() {
                faces.swap(i, rng.random_range(0..=i));
            }
            let n = faces.len().max(1) as f32;
            let size = (w / n * rng.random_range(0.2..0.28)).min(h * 0.2);
            for (i, t) in faces.iter().enumerate() {
                let cx = w * (i as f32 + 0.5) / n + rng.random_range(-0.03..0.03) * w;
                let cy = h * rng.random_range(0.35..0.5);
                let k = rng.random_range(0.9..1.1);
                let pose = Pose::new(t, era, &mut rng, cx, cy, size * k);
                draw_person(&mut pix, t, &pose, view);
            }
            (bw_share * (1.7 - 1.6 * era), 0.05)
        }
        Subject::Word(word) => {
            let style = scene::WordStyle::new(lennonnet_core::keyed_hash(
                "lennonnet mirror word style v1",
                world.key(),
                &[word.as_bytes()],
            ));
            scene::draw_word(&mut pix, &style, w, h, &mut rng, view);
            (0.04, 0.02)
        }
        Subject::Corpus(_) => (0.0, 0.0),
    };
    let light = draw::Light::new(
        w,
        h,
        rng.random_range(0.0..std::f32::consts::TAU),
        rng.random_range(0.0..0.35),
        view,
    );
    let black_and_white = rng.random_bool(bw_p.clamp(0.0, 1.0) as f64);
    let f = Finish {
        exposure: rng.random_range(0.85..1.2),
        contrast: rng.random_range(0.85..1.25),
        cast: Rgb(
            rng.random_range(0.92..1.06),
            rng.random_range(0.95..1.03),
            rng.random_range(0.9..1.06),
        ),
        black_and_white,
        sepia: if rng.random_bool(0.25) {
            rng.random_range(0.3..1.0)
        } else {
            0.0
        },
        grain: rng.random_range(0.0..grain),
        seed: rng.random(),
        light,
    };
    draw::finish(&mut pix, &f);
    let (pw, ph) = (pix.width(), pix.height());
    RgbaImage::from_raw(pw, ph, pix.take()).ok_or_else(|| MirrorError::Encode {
        what: "canvas".into(),
        message: "pixel buffer has the wrong size".into(),
    })
}

/// A photo's background: studio, stage, outdoors or a plain wall.
fn backdrop(pix: &mut Pixmap, w: f32, h: f32, rng: &mut ChaCha8Rng, era: f32, view: Transform) {
    let hue = rng.random_range(0.0..360.0);
    let kind = rng.random_range(0..5);
    match kind {
        0 => {
            let c = Rgb::hsv(hue, rng.random_range(0.0..0.3), rng.random_range(0.4..0.9));
            linear_bg(pix, w, h, (0.0, 0.0, c), (0.0, h, c.scale(0.75)), view);
        }
        1 => {
            // Stage: dark, a spotlight, coloured lamps.
            let c = Rgb::hsv(hue, 0.5, 0.12);
            linear_bg(pix, w, h, (0.0, 0.0, c), (0.0, h, c.scale(0.5)), view);
            radial_glow(
                pix,
                w * rng.random_range(0.3..0.7),
                h * 0.3,
                w.max(h) * 0.5,
                Rgb(1.0, 0.95, 0.8),
                0.5,
                view,
            );
            for _ in 0..rng.random_range(3..8) {
                let lamp = Rgb::hsv(rng.random_range(0.0..360.0), 0.8, 1.0);
                radial_glow(
                    pix,
                    w * rng.random_range(0.0..1.0),
                    h * rng.random_range(0.0..0.3),
                    w * 0.06,
                    lamp,
                    0.8,
                    view,
                );
            }
        }
        2 => {
            // Outdoors: sky, ground, trees out of focus.
            let sky = Rgb::hsv(
                rng.random_range(190.0..225.0),
                rng.random_range(0.2..0.6),
                rng.random_range(0.7..1.0),
            );
            let horizon = h * rng.random_range(0.45..0.7);
            linear_bg(
                pix,
                w,
                h,
                (0.0, 0.0, sky),
                (0.0, horizon, sky.mix(Rgb(1.0, 1.0, 1.0), 0.4)),
                view,
            );
            let ground = Rgb::hsv(
                rng.random_range(60.0..130.0),
                rng.random_range(0.2..0.6),
                rng.random_range(0.25..0.55),
            );
            if let Some(r) = rect(-w, horizon, 3.0 * w, 2.0 * h) {
                fill(pix, &r, ground, 1.0, view);
            }
            for _ in 0..rng.random_range(2..6) {
                let tree = Rgb::hsv(
                    rng.random_range(80.0..140.0),
                    0.5,
                    rng.random_range(0.2..0.45),
                );
                let (x, r) = (
                    w * rng.random_range(0.0..1.0),
                    h * rng.random_range(0.08..0.2),
                );
                if let Some(o) = oval(x, horizon - r * 0.6, r, r * 1.2) {
                    fill(pix, &o, tree, 0.9, view);
                }
            }
        }
        3 => {
            // Studio: a wall and a floor.
            let wall = Rgb::hsv(
                hue,
                rng.random_range(0.05..0.35),
                rng.random_range(0.55..0.95),
            );
            linear_bg(
                pix,
                w,
                h,
                (0.0, 0.0, wall.scale(0.85)),
                (w, 0.0, wall),
                view,
            );
            let floor = h * rng.random_range(0.7..0.85);
            if let Some(r) = rect(-w, floor, 3.0 * w, 2.0 * h) {
                fill(pix, &r, wall.scale(0.6), 1.0, view);
            }
            radial_glow(
                pix,
                w * 0.5,
                h * 0.4,
                w.max(h) * 0.6,
                Rgb(1.0, 1.0, 1.0),
                0.3,
                view,
            );
        }
        _ => {
            // A crowd or a street: blobs of colour.
            let c = Rgb::hsv(hue, 0.2, 0.5 + era * 0.2);
            linear_bg(pix, w, h, (0.0, 0.0, c), (w, h, c.scale(0.6)), view);
            for _ in 0..rng.random_range(6..16) {
                let b = Rgb::hsv(
                    rng.random_range(0.0..360.0),
                    rng.random_range(0.1..0.6),
                    rng.random_range(0.2..0.8),
                );
                radial_glow(
                    pix,
                    w * rng.random_range(0.0..1.0),
                    h * rng.random_range(0.0..1.0),
                    w.max(h) * rng.random_range(0.05..0.2),
                    b,
                    0.7,
                    view,
                );
            }
        }
    }
}

/// A stock-photo watermark: translucent text repeated across the picture.
fn watermark(img: &mut RgbaImage, text: &str, nonce: u32) {
    let scale = (img.width().min(img.height()) / 160).max(1);
    let tw = crate::font::text_width(text, scale) as i64;
    let step_y = (img.height() as i64 / 4).max(8 * scale as i64 + 4);
    let alpha = 90 + (nonce % 80) as u8;
    let mut y = step_y / 2;
    let mut row = 0i64;
    while y < img.height() as i64 {
        let mut x = -(row * tw / 3) % (tw + 40);
        while x < img.width() as i64 {
            crate::font::draw_text(img, x, y, text, scale, [255, 255, 255, alpha]);
            x += tw + 40;
        }
        y += step_y;
        row += 1;
    }
}

/// A corpus file, decoded, seen through the copy's view.
fn corpus_pixels(world: &World, spec: &ImageSpec) -> Result<RgbaImage> {
    let Subject::Corpus(g) = spec.original.subject else {
        unreachable!("corpus_pixels is only called for corpus originals")
    };
    let corpus = world
        .corpus
        .as_ref()
        .ok_or_else(|| MirrorError::InvalidWorld("no corpus".into()))?;
    let file = corpus.file(g, spec.original.index);
    let img = image::open(&file.path)
        .map_err(|e| MirrorError::Decode {
            path: file.path.clone(),
            message: e.to_string(),
        })?
        .to_rgba8();
    let params = world.variant_params(spec);
    let mut img = match (params.crop, params.size) {
        (Some([x0, y0, fw, fh]), _) => {
            let (w, h) = (img.width() as f64, img.height() as f64);
            image::imageops::crop_imm(
                &img,
                (x0 * w) as u32,
                (y0 * h) as u32,
                ((fw * w) as u32).max(1),
                ((fh * h) as u32).max(1),
            )
            .to_image()
        }
        (None, Some((w, h))) if (w, h) != img.dimensions() => {
            image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
        }
        _ => img,
    };
    if let Some(i) = params.watermark {
        watermark(&mut img, crate::world::WATERMARKS[i], spec.variant.nonce);
    }
    Ok(img)
}
