//! Text on images with the public-domain 8×8 bitmap font of the `font8x8` crate: labels on
//! contact sheets and watermarks on copies. ASCII only; other characters are drawn as '?'.

use image::RgbaImage;

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a `scale`×`scale` block,
/// blended with `color`'s alpha. Pixels outside the image are skipped.
pub fn draw_text(img: &mut RgbaImage, x: i64, y: i64, text: &str, scale: u32, color: [u8; 4]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let a = color[3] as u32;
    let s = scale.max(1) as i64;
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() && !ch.is_ascii_control() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let gx = x + i as i64 * 8 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let px = gx + col * s + dx;
                        let py = y + row as i64 * s + dy;
                        if px < 0 || py < 0 || px >= w || py >= h {
                            continue;
                        }
                        let p = img.get_pixel_mut(px as u32, py as u32);
                        for k in 0..3 {
                            p[k] = ((p[k] as u32 * (255 - a) + color[k] as u32 * a) / 255) as u8;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_inside_the_image_only() {
        let mut img = RgbaImage::from_pixel(20, 10, image::Rgba([0, 0, 0, 255]));
        draw_text(&mut img, -4, 1, "Hi!", 1, [255, 255, 255, 255]);
        assert!(img.pixels().any(|p| p[0] == 255));
        assert_eq!(text_width("abc", 2), 48);
    }
}
