//! Decoding an object as the store validated it: first frame, EXIF orientation applied.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// Decoder memory budget: larger than any image the store accepts (40 Mpx at 16 bits × 4
/// channels by default).
const MAX_ALLOC: u64 = 2 << 30;

/// Decodes `bytes` and turns the picture upright by its EXIF orientation, as the store does
/// before hashing (so training sees what curation saw). Errors, including a decoder panic,
/// come back as a sentence.
pub fn decode_upright(bytes: &[u8]) -> Result<DynamicImage, String> {
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes))) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "decoder panicked: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into())
        )),
    }
}

fn decode_inner(bytes: &[u8]) -> Result<DynamicImage, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a known image format".into());
    }
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    decoder.set_limits(limits).map_err(|e| e.to_string())?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};

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
        assert!(err.contains("format"), "{err}");
    }
}
