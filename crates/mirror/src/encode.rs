//! Pixels to files: JPEG (baseline and progressive, with an EXIF Orientation tag on some),
//! PNG, lossless WebP and GIF (some animated); and the hostile files: decompression bombs,
//! very large files, truncated files.

use image::{ExtendedColorType, ImageEncoder, RgbaImage};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{MirrorError, Result};
use crate::spec::Format;
use crate::world::Look;

fn encode_err(what: &str, e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Encode {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Stores upright pixels so that a viewer applying EXIF `orientation` shows them upright.
pub fn to_stored(img: RgbaImage, orientation: u8) -> RgbaImage {
    use image::imageops::{flip_horizontal, rotate90, rotate180, rotate270};
    match orientation {
        // The viewer flips back.
        2 => flip_horizontal(&img),
        3 => rotate180(&img),
        // The viewer turns the stored picture 90° clockwise: store it turned counter-clockwise.
        6 => rotate270(&img),
        // The viewer turns it 90° counter-clockwise: store it turned clockwise.
        8 => rotate90(&img),
        _ => img,
    }
}

/// An APP1 Exif payload with a single Orientation tag (big-endian TIFF).
pub fn exif_orientation(orientation: u8) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(b"Exif\0\0");
    b.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // TIFF header, IFD0 at offset 8
    b.extend_from_slice(&1u16.to_be_bytes()); // one entry
    b.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    b.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    b.extend_from_slice(&1u32.to_be_bytes()); // count
    b.extend_from_slice(&(orientation as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    b
}

/// Encodes upright pixels in `look`'s format, orientation and quality.
pub fn encode(img: RgbaImage, look: &Look) -> Result<Vec<u8>> {
    let img = to_stored(img, look.orientation);
    let (w, h) = img.dimensions();
    let mut out = Vec::with_capacity((w * h / 4) as usize);
    match look.format {
        Format::JpegBaseline | Format::JpegProgressive => {
            if w > u16::MAX as u32 || h > u16::MAX as u32 {
                return Err(encode_err("jpeg", "too large"));
            }
            let mut enc = jpeg_encoder::Encoder::new(&mut out, look.quality.clamp(1, 100));
            enc.set_progressive(look.format == Format::JpegProgressive);
            if look.orientation != 1 {
                enc.add_app_segment(1, &exif_orientation(look.orientation))
                    .map_err(|e| encode_err("exif", e))?;
            }
            enc.encode(
                img.as_raw(),
                w as u16,
                h as u16,
                jpeg_encoder::ColorType::Rgba,
            )
            .map_err(|e| encode_err("jpeg", e))?;
        }
        Format::Png => {
            let rgb = image::DynamicImage::ImageRgba8(img).to_rgb8();
            image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            )
            .write_image(rgb.as_raw(), w, h, ExtendedColorType::Rgb8)
            .map_err(|e| encode_err("png", e))?;
        }
        Format::Webp => {
            let rgb = image::DynamicImage::ImageRgba8(img).to_rgb8();
            image::codecs::webp::WebPEncoder::new_lossless(&mut out)
                .write_image(rgb.as_raw(), w, h, ExtendedColorType::Rgb8)
                .map_err(|e| encode_err("webp", e))?;
        }
        Format::Gif => {
            let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 30);
            enc.set_repeat(image::codecs::gif::Repeat::Infinite)
                .map_err(|e| encode_err("gif", e))?;
            let frames = look.frames.max(1);
            for i in 0..frames {
                let mut f = img.clone();
                if i > 0 {
                    // Later frames: the same picture, a little brighter each time.
                    for p in f.pixels_mut() {
                        for k in 0..3 {
                            p[k] = p[k].saturating_add(12 * i);
                        }
                    }
                }
                let frame =
                    image::Frame::from_parts(f, 0, 0, image::Delay::from_numer_denom_ms(400, 1));
                enc.encode_frame(frame).map_err(|e| encode_err("gif", e))?;
            }
        }
    }
    Ok(out)
}

/// A decompression bomb: a small file whose header declares a huge picture. PNG with a short
/// zlib stream of zeros (every row decodes to black until the data runs out), or a baseline JPEG
/// whose frame header claims 65,000 px on each side.
pub fn bomb(seed: u64, png: bool) -> Vec<u8> {
    let side = 30_000 + (seed % 35_000) as u32;
    if png {
        let mut out = Vec::new();
        out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&side.to_be_bytes());
        ihdr.extend_from_slice(&side.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
        png_chunk(&mut out, b"IHDR", &ihdr);
        let zeros = vec![0u8; 4 << 20];
        let z = miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 9);
        png_chunk(&mut out, b"IDAT", &z);
        png_chunk(&mut out, b"IEND", &[]);
        out
    } else {
        let img = RgbaImage::from_pixel(16, 16, image::Rgba([128, 128, 128, 255]));
        let mut out = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut out, 80);
        if enc
            .encode(img.as_raw(), 16, 16, jpeg_encoder::ColorType::Rgba)
            .is_err()
        {
            return out;
        }
        // Patch the SOF0 segment: FF C0, length, precision, height, width.
        if let Some(i) = out.windows(2).position(|w| w == [0xFF, 0xC0]) {
            let side = side.min(65_000) as u16;
            out[i + 5..i + 7].copy_from_slice(&side.to_be_bytes());
            out[i + 7..i + 9].copy_from_slice(&side.to_be_bytes());
        }
        out
    }
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A very large but valid JPEG: `jpeg`'s bytes with comment segments of seeded noise inserted
/// after the start marker until the file is `size` bytes (or just over).
pub fn huge(jpeg: &[u8], size: u64, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(size as usize + 70_000);
    out.extend_from_slice(&jpeg[..2.min(jpeg.len())]);
    let mut chunk = vec![0u8; 65_533];
    while (out.len() + jpeg.len()) < size as usize {
        rng.fill_bytes(&mut chunk);
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&(chunk.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(&chunk);
    }
    out.extend_from_slice(&jpeg[2.min(jpeg.len())..]);
    out
}

/// Where a truncated file is cut: between 20 % and 90 % of it, by `seed`.
pub fn truncate_at(len: usize, seed: u32) -> usize {
    let share = 0.2 + (seed % 1000) as f64 / 1000.0 * 0.7;
    ((len as f64 * share) as usize).clamp(1, len.saturating_sub(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_orientation_is_read_back_and_pixels_are_stored_turned() {
        let mut img = RgbaImage::from_pixel(40, 20, image::Rgba([0, 0, 0, 255]));
        img.put_pixel(0, 0, image::Rgba([255, 255, 255, 255])); // top-left marker
        for o in [1u8, 3, 6, 8, 2] {
            let look = Look {
                width: 40,
                height: 20,
                format: Format::JpegBaseline,
                orientation: o,
                quality: 95,
                frames: 1,
            };
            let bytes = encode(img.clone(), &look).unwrap();
            let mut dec = image::ImageReader::new(std::io::Cursor::new(&bytes))
                .with_guessed_format()
                .unwrap()
                .into_decoder()
                .unwrap();
            use image::ImageDecoder;
            let orient = dec.orientation().unwrap();
            let mut shown = image::DynamicImage::from_decoder(dec).unwrap();
            shown.apply_orientation(orient);
            assert_eq!((shown.width(), shown.height()), (40, 20), "orientation {o}");
            let p = shown.to_rgba8().get_pixel(0, 0).0;
            assert!(
                p[0] > 150,
                "orientation {o}: the marker is not back at the top left"
            );
        }
    }

    #[test]
    fn bombs_declare_huge_sizes_in_small_files() {
        for png in [true, false] {
            let b = bomb(12345, png);
            assert!(b.len() < 64_000, "{}", b.len());
            let (w, h) = image::ImageReader::new(std::io::Cursor::new(&b))
                .with_guessed_format()
                .unwrap()
                .into_dimensions()
                .unwrap();
            assert!(w >= 30_000 && h >= 30_000, "{w}x{h}");
        }
    }

    #[test]
    fn huge_files_are_large_valid_jpegs() {
        let img = RgbaImage::from_pixel(32, 32, image::Rgba([10, 200, 30, 255]));
        let look = Look {
            width: 32,
            height: 32,
            format: Format::JpegBaseline,
            orientation: 1,
            quality: 90,
            frames: 1,
        };
        let j = encode(img, &look).unwrap();
        let h = huge(&j, 1_000_000, 1);
        assert!(h.len() >= 1_000_000);
        assert_eq!(image::load_from_memory(&h).unwrap().width(), 32);
    }
}
