//! Image validation: what bytes are accepted, and what is learnt from them.
//!
//! The order matters. The header is read first (format, dimensions) and too small, empty or
//! too large images are refused before a single pixel is decoded: `max_pixels` is the
//! decompression-bomb guard, and the decoder also gets a memory limit. Then the first frame is
//! decoded fully, so that truncated and corrupt files are caught, the EXIF orientation is applied
//! and the perceptual hashes are computed on the upright image. A panic inside a decoder is
//! caught and becomes [`RejectReason::DecoderPanic`]. No input makes validation fail otherwise.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::codecs::{gif::GifDecoder, jpeg::JpegDecoder, png::PngDecoder, webp::WebPDecoder};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use crate::hash::{HASH_VERSION, hash_image};
use crate::record::{Format, ImageMeta, RejectReason};

pub use lennonnet_core::Animated;

/// The acceptance rules, from the config's `[image]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub min_side_px: u32,
    pub max_pixels: u64,
    pub animated: Animated,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_side_px: 64,
            max_pixels: 40_000_000,
            animated: Animated::FirstFrame,
        }
    }
}

impl Rules {
    /// The decoder's memory budget: the largest accepted image at 16 bits × 4 channels, plus
    /// room for the decoder's own buffers.
    fn limits(&self) -> Limits {
        let mut l = Limits::default();
        l.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(64 << 20));
        l
    }
}

/// Refused bytes: a reason and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: RejectReason,
    pub detail: String,
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        detail: detail.into(),
    }
}

/// A decoded, upright image.
#[derive(Debug)]
pub struct Decoded {
    pub format: Format,
    pub stored_size: (u32, u32),
    pub orientation: u8,
    pub animated: bool,
    pub image: DynamicImage,
}

/// Validates `bytes` and, when accepted, returns their metadata and perceptual hashes.
pub fn validate(bytes: &[u8], rules: &Rules) -> Result<ImageMeta, Rejected> {
    let d = decode(bytes, rules)?;
    let hashes = match catch_unwind(AssertUnwindSafe(|| hash_image(&d.image))) {
        Ok(h) => h,
        Err(p) => {
            return Err(reject(
                RejectReason::DecoderPanic,
                format!("hashing panicked: {}", panic_text(&p)),
            ));
        }
    };
    let color = format!("{:?}", d.image.color()).to_ascii_lowercase();
    Ok(ImageMeta {
        format: d.format,
        width: d.stored_size.0,
        height: d.stored_size.1,
        orientation: d.orientation,
        oriented_width: d.image.width(),
        oriented_height: d.image.height(),
        has_alpha: d.image.color().has_alpha(),
        color,
        animated: d.animated,
        bytes: bytes.len() as u64,
        phash: hashes.phash,
        pdq: hashes.pdq,
        pdq_quality: hashes.pdq_quality,
        hash_version: HASH_VERSION,
    })
}

/// Decodes the first frame of `bytes` and applies its EXIF orientation, under `rules`. This is
/// what hashing sees and what training should see.
pub fn decode(bytes: &[u8], rules: &Rules) -> Result<Decoded, Rejected> {
    if bytes.is_empty() {
        return Err(reject(RejectReason::Empty, "no bytes"));
    }
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, rules))) {
        Ok(r) => r,
        Err(p) => Err(reject(
            RejectReason::DecoderPanic,
            format!("decoder panicked: {}", panic_text(&p)),
        )),
    }
}

/// Decodes bytes the store has accepted, as validation did: the first frame, turned upright by its
/// EXIF orientation. This is what training, evaluation and prediction see. Only the decoder's
/// memory is bounded (2 GiB), not the size, which the store checked on the way in. Errors,
/// including a decoder panic, come back as a sentence.
pub fn decode_upright(bytes: &[u8]) -> Result<DynamicImage, String> {
    let stored = Rules {
        min_side_px: 1,
        max_pixels: STORED_MAX_ALLOC / 8,
        animated: Animated::FirstFrame,
    };
    decode(bytes, &stored)
        .map(|d| d.image)
        .map_err(|r| format!("{}: {}", r.reason, r.detail))
}

/// [`decode_upright`]'s decoder memory budget.
const STORED_MAX_ALLOC: u64 = 2 << 30;

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn decode_inner(bytes: &[u8], rules: &Rules) -> Result<Decoded, Rejected> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| reject(RejectReason::Corrupt, e.to_string()))?;
    if let Some(name) = unsupported_signature(bytes) {
        return Err(reject(
            RejectReason::UnsupportedFormat,
            format!("{name} images are not accepted (this build does not decode them)"),
        ));
    }
    let Some(image_format) = reader.format() else {
        return Err(reject(RejectReason::NotAnImage, sniff(bytes)));
    };
    let format = match image_format {
        ImageFormat::Jpeg => Format::Jpeg,
        ImageFormat::Png => Format::Png,
        ImageFormat::Gif => Format::Gif,
        ImageFormat::WebP => Format::Webp,
        ImageFormat::Bmp => Format::Bmp,
        ImageFormat::Tiff => Format::Tiff,
        other => {
            return Err(reject(
                RejectReason::UnsupportedFormat,
                format!("{other:?} images are not accepted"),
            ));
        }
    };
    if let Some((w, h)) = raw_size(bytes, format) {
        if w == 0 || h == 0 {
            return Err(reject(
                RejectReason::ZeroSize,
                format!("the header declares {w}x{h}"),
            ));
        }
        // Decoders refuse a huge declared size with a generic error: check it here first.
        check_size(w as u64, h as u64, rules)?;
    }
    let limits = rules.limits();
    let cur = || Cursor::new(bytes);
    let header_err = |e: ImageError| map_error(e, "reading the header");
    match format {
        Format::Jpeg => {
            check_jpeg_end(bytes)?;
            let d = JpegDecoder::new(cur()).map_err(header_err)?;
            finish(d, format, false, rules, limits)
        }
        Format::Png => {
            let d = PngDecoder::with_limits(cur(), limits.clone()).map_err(header_err)?;
            let animated = d.is_apng().map_err(header_err)?;
            finish(d, format, animated, rules, limits)
        }
        Format::Gif => {
            let animated = gif_frames(bytes) > 1;
            let d = GifDecoder::new(cur()).map_err(header_err)?;
            finish(d, format, animated, rules, limits)
        }
        Format::Webp => {
            let d = WebPDecoder::new(cur()).map_err(header_err)?;
            let (w, h) = d.dimensions();
            if w == 0 || h == 0 {
                // No WebP header can declare a zero side (VP8L and VP8X store side - 1; a VP8
                // frame of side 0 is refused above): the decoder read a broken header.
                return Err(reject(
                    RejectReason::Corrupt,
                    format!("the WebP header is broken (its decoder reads a {w}x{h} size)"),
                ));
            }
            let animated = d.has_animation();
            finish(d, format, animated, rules, limits)
        }
        Format::Bmp | Format::Tiff => {
            let mut r = ImageReader::with_format(cur(), image_format);
            r.limits(limits.clone());
            let d = r.into_decoder().map_err(header_err)?;
            finish(d, format, false, rules, limits)
        }
    }
}

/// The header checks, then the full decode and the orientation.
fn finish(
    mut d: impl ImageDecoder,
    format: Format,
    animated: bool,
    rules: &Rules,
    limits: Limits,
) -> Result<Decoded, Rejected> {
    let (w, h) = d.dimensions();
    if w == 0 || h == 0 {
        return Err(reject(RejectReason::ZeroSize, format!("{w}x{h}")));
    }
    check_size(w as u64, h as u64, rules)?;
    if animated && rules.animated == Animated::Reject {
        return Err(reject(
            RejectReason::Animated,
            format!("an animated {format}, and image.animated = \"reject\""),
        ));
    }
    let needed = d.total_bytes();
    if limits.max_alloc.is_some_and(|max| needed > max) {
        return Err(reject(
            RejectReason::LimitsExceeded,
            format!("decoding needs {needed} bytes"),
        ));
    }
    let orientation = exif_orientation(&mut d);
    d.set_limits(limits)
        .map_err(|e| map_error(e, "setting limits"))?;
    let mut image = DynamicImage::from_decoder(d).map_err(|e| map_error(e, "decoding"))?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        format,
        stored_size: (w, h),
        orientation: orientation_number(orientation),
        animated,
        image,
    })
}

/// The shorter side and pixel count checks, on a size read from a header.
fn check_size(w: u64, h: u64, rules: &Rules) -> Result<(), Rejected> {
    if w.min(h) < rules.min_side_px as u64 {
        return Err(reject(
            RejectReason::TooSmall,
            format!(
                "{w}x{h}: the shorter side is below min_side_px = {}",
                rules.min_side_px
            ),
        ));
    }
    let pixels = w.saturating_mul(h);
    if pixels > rules.max_pixels {
        return Err(reject(
            RejectReason::TooManyPixels,
            format!(
                "{w}x{h} = {pixels} pixels, above max_pixels = {}",
                rules.max_pixels
            ),
        ));
    }
    Ok(())
}

/// The EXIF orientation, also when the EXIF block keeps the `Exif\0\0` prefix of JPEG's APP1
/// segment (as many WebP files' `EXIF` chunks do, which the decoder then does not read). A
/// missing or bad orientation tag is not worth refusing a picture for: upright is assumed.
fn exif_orientation(d: &mut impl ImageDecoder) -> Orientation {
    if let Ok(Some(exif)) = d.exif_metadata() {
        let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(&exif);
        if let Some(o) = Orientation::from_exif_chunk(tiff) {
            return o;
        }
    }
    d.orientation().unwrap_or(Orientation::NoTransforms)
}

fn orientation_number(o: Orientation) -> u8 {
    match o {
        Orientation::NoTransforms => 1,
        Orientation::FlipHorizontal => 2,
        Orientation::Rotate180 => 3,
        Orientation::FlipVertical => 4,
        Orientation::Rotate90FlipH => 5,
        Orientation::Rotate90 => 6,
        Orientation::Rotate270FlipH => 7,
        Orientation::Rotate270 => 8,
    }
}

fn map_error(e: ImageError, during: &str) -> Rejected {
    let text = format!("{during}: {e}");
    let eof = {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut found = false;
        while let Some(c) = cur {
            if c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
            {
                found = true;
            }
            cur = c.source();
        }
        found || {
            let t = text.to_ascii_lowercase();
            t.contains("unexpected end")
                || t.contains("eof")
                || t.contains("truncated")
                || t.contains("no more data")
                || t.contains("failed to fill whole buffer")
        }
    };
    match e {
        ImageError::Limits(_) => reject(RejectReason::LimitsExceeded, text),
        ImageError::Unsupported(_) => reject(RejectReason::UnsupportedFormat, text),
        _ if eof => reject(RejectReason::Truncated, text),
        _ => reject(RejectReason::Corrupt, text),
    }
}

/// The size a PNG, GIF or BMP header declares, read before any decoder sees it (decoders refuse
/// a zero or huge size with a generic error).
fn raw_size(b: &[u8], format: Format) -> Option<(u32, u32)> {
    match format {
        // BITMAPCOREHEADER (12 bytes): u16 sides; the others: i32 sides (a negative height
        // means rows top-down).
        Format::Bmp if b.len() >= 26 => {
            let header = u32::from_le_bytes(b[14..18].try_into().ok()?);
            if header == 12 {
                Some((
                    u16::from_le_bytes([b[18], b[19]]) as u32,
                    u16::from_le_bytes([b[20], b[21]]) as u32,
                ))
            } else {
                Some((
                    i32::from_le_bytes(b[18..22].try_into().ok()?).unsigned_abs(),
                    i32::from_le_bytes(b[22..26].try_into().ok()?).unsigned_abs(),
                ))
            }
        }
        Format::Png if b.len() >= 24 && &b[12..16] == b"IHDR" => Some((
            u32::from_be_bytes(b[16..20].try_into().ok()?),
            u32::from_be_bytes(b[20..24].try_into().ok()?),
        )),
        Format::Gif if b.len() >= 10 => Some((
            u16::from_le_bytes([b[6], b[7]]) as u32,
            u16::from_le_bytes([b[8], b[9]]) as u32,
        )),
        _ => None,
    }
}

/// A JPEG must hold an end-of-image marker after its first scan: the JPEG decoder fills a cut
/// file with grey instead of failing, so the cut is caught here.
fn check_jpeg_end(b: &[u8]) -> Result<(), Rejected> {
    let mut i = 2;
    // Walk the marker segments up to the first start-of-scan.
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return Err(reject(
                RejectReason::Corrupt,
                format!("no JPEG marker at byte {i}"),
            ));
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if marker == 0xDA {
            let scan = (i + 2 + len).min(b.len());
            // Searched from the end, where the marker (or trailing junk) is.
            return if b[scan..].windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
                Ok(())
            } else {
                Err(reject(
                    RejectReason::Truncated,
                    format!(
                        "the JPEG data ends after {} bytes with no end-of-image marker",
                        b.len()
                    ),
                ))
            };
        }
        i += 2 + len;
    }
    Err(reject(
        RejectReason::Truncated,
        format!(
            "the JPEG data ends after {} bytes, before its first scan",
            b.len()
        ),
    ))
}

/// Counts the frames of a GIF by walking its blocks, without decoding. A broken stream counts
/// the frames seen so far (the decoder then reports the damage).
fn gif_frames(b: &[u8]) -> usize {
    let mut frames = 0;
    if b.len() < 13 {
        return 0;
    }
    let mut i = 13;
    if b[10] & 0x80 != 0 {
        i += 3 << ((b[10] & 7) + 1);
    }
    let skip_sub_blocks = |mut i: usize| -> Option<usize> {
        loop {
            let n = *b.get(i)? as usize;
            i += 1 + n;
            if n == 0 {
                return Some(i);
            }
        }
    };
    while let Some(&tag) = b.get(i) {
        match tag {
            // A stray block terminator between blocks (some encoders write one; decoders and
            // browsers skip it).
            0x00 => i += 1,
            0x21 => match skip_sub_blocks(i + 2) {
                Some(next) => i = next,
                None => break,
            },
            0x2C => {
                frames += 1;
                let Some(&flags) = b.get(i + 9) else { break };
                i += 10;
                if flags & 0x80 != 0 {
                    i += 3 << ((flags & 7) + 1);
                }
                match skip_sub_blocks(i + 1) {
                    Some(next) => i = next,
                    None => break,
                }
                if frames > 1 {
                    break;
                }
            }
            _ => break,
        }
    }
    frames
}

/// The name of a known image format this build does not decode, from its signature: JPEG 2000
/// (JP2 box or bare codestream), JPEG XL, BigTIFF, HEIF/HEIC and AVIF (stills and sequences,
/// ISO-BMFF `ftyp` brands), SVG. The decoders' own format guess misses most of them, which
/// would make them `not_an_image`.
fn unsupported_signature(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\0\0\0\x0cjP  \r\n\x87\n") || b.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Some("JPEG 2000");
    }
    if b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") || b.starts_with(&[0xFF, 0x0A]) {
        return Some("JPEG XL");
    }
    if b.starts_with(b"II\x2b\0") || b.starts_with(b"MM\0\x2b") {
        return Some("BigTIFF");
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        let size = (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).clamp(12, b.len());
        // The major brand, then the compatible brands.
        let brands = std::iter::once(&b[8..12]).chain(b[16.min(size)..size].chunks_exact(4));
        for brand in brands {
            match brand {
                b"avif" | b"avis" => return Some("AVIF"),
                b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs"
                | b"mif1" | b"msf1" | b"mif2" => return Some("HEIF"),
                _ => {}
            }
        }
    }
    let head = String::from_utf8_lossy(&b[..b.len().min(1024)]).to_ascii_lowercase();
    let t = head.trim_start_matches('\u{feff}').trim_start();
    if (t.starts_with("<svg") || (t.starts_with("<?xml") && head.contains("<svg")))
        && !head.contains("<html")
    {
        return Some("SVG");
    }
    None
}

/// A short description of what non-image bytes look like.
fn sniff(b: &[u8]) -> String {
    let head: Vec<u8> = b.iter().take(512).copied().collect();
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let trimmed = text.trim_start();
    let kind = if trimmed.starts_with("<!doctype html")
        || trimmed.starts_with("<html")
        || text.contains("<body")
    {
        "an HTML page"
    } else if trimmed.starts_with("<?xml") || trimmed.starts_with("<svg") {
        "XML or SVG"
    } else if trimmed.starts_with('{') || trimmed.starts_with('[') {
        "JSON"
    } else if head
        .iter()
        .all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace())
    {
        "text"
    } else {
        "unknown binary data"
    };
    let hex: String = b.iter().take(8).map(|c| format!("{c:02x}")).collect();
    format!(
        "no image signature: {kind} ({} bytes, starting {hex})",
        b.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_frame_walker_counts() {
        // Header, 1x1 screen without colour table, one image, trailer.
        let mut g = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        let frame = [0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0];
        g.extend_from_slice(&frame);
        assert_eq!(gif_frames(&g), 1);
        g.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
        g.extend_from_slice(&frame);
        g.push(0x3B);
        assert_eq!(gif_frames(&g), 2);
        assert_eq!(gif_frames(b"GIF89a"), 0);
    }

    #[test]
    fn sniff_names_html() {
        assert!(sniff(b"<!DOCTYPE html><html>").contains("HTML"));
        assert!(sniff(b"\x00\x01binary").contains("unknown binary"));
    }
}

#[cfg(test)]
mod decode_upright_tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};
    use std::io::Cursor;

    /// A JPEG with an EXIF APP1 segment holding only an orientation tag.
    fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
        let mut jpeg = Cursor::new(Vec::new());
        img.write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        let mut app1 = vec![0xFF, 0xE1, 0x00, 0x22];
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(&[b'M', b'M', 0x00, 0x2A, 0, 0, 0, 8]); // big-endian TIFF header
        app1.extend_from_slice(&[0x00, 0x01]); // one entry
        app1.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]); // orientation, SHORT, 1
        app1.extend_from_slice(&orientation.to_be_bytes());
        app1.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, no next IFD
        assert_eq!(app1.len(), 2 + 0x22);
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_turns_the_picture_upright() {
        // 40 × 20: left half white, right half black.
        let img = RgbImage::from_fn(
            40,
            20,
            |x, _| if x < 20 { Rgb([255; 3]) } else { Rgb([0; 3]) },
        );
        let plain = decode_upright(&jpeg_with_orientation(&img, 1))
            .unwrap()
            .to_rgb8();
        assert_eq!(plain.dimensions(), (40, 20));
        // Orientation 6: the stored picture must turn 90° clockwise to be upright, so its left
        // column becomes the top row.
        let turned = decode_upright(&jpeg_with_orientation(&img, 6))
            .unwrap()
            .to_rgb8();
        assert_eq!(turned.dimensions(), (20, 40));
        assert!(
            turned.get_pixel(10, 5).0[0] > 200,
            "{:?}",
            turned.get_pixel(10, 5)
        );
        assert!(
            turned.get_pixel(10, 35).0[0] < 50,
            "{:?}",
            turned.get_pixel(10, 35)
        );
        let err = decode_upright(b"definitely not an image").unwrap_err();
        assert!(err.contains("no image signature"), "{err}");
    }
}
