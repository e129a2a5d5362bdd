//! Unusual and malformed image files, made here so that the tests need no fixtures, each with
//! the outcome the store must give it.

#![allow(dead_code)]

use image::{DynamicImage, ImageEncoder, RgbImage, RgbaImage};
use lennonnet_store::{Format, RejectReason};

use super::synth::{self, Rng};

/// What ingesting a case must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Accepted {
        format: Format,
        /// Size after orientation.
        oriented: (u32, u32),
        orientation: u8,
        animated: bool,
        color: &'static str,
    },
    Rejected(RejectReason),
}

pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub expect: Expect,
}

fn acc(format: Format, oriented: (u32, u32), color: &'static str) -> Expect {
    Expect::Accepted {
        format,
        oriented,
        orientation: 1,
        animated: false,
        color,
    }
}

fn case(name: &str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect,
    }
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut c = kind.to_vec();
    c.extend_from_slice(data);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

/// A PNG whose header declares `w`×`h` RGB pixels, with a token of data.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// The TIFF bytes of an EXIF block holding only an orientation tag.
pub fn exif_orientation(n: u16) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&n.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

/// The stored pixels that EXIF orientation `n` turns into `upright` (mapping written from the
/// EXIF specification, independent of the decoder under test).
pub fn stored_for(upright: &RgbImage, n: u8) -> RgbImage {
    let (w, h) = upright.dimensions();
    let (sw, sh) = if n >= 5 { (h, w) } else { (w, h) };
    let mut s = RgbImage::new(sw, sh);
    for y in 0..h {
        for x in 0..w {
            // Displayed (x, y) shows stored (sx, sy).
            let (sx, sy) = match n {
                1 => (x, y),
                2 => (sw - 1 - x, y),
                3 => (sw - 1 - x, sh - 1 - y),
                4 => (x, sh - 1 - y),
                5 => (y, x),
                6 => (y, sh - 1 - x),
                7 => (sw - 1 - y, sh - 1 - x),
                8 => (sw - 1 - y, x),
                _ => unreachable!(),
            };
            s.put_pixel(sx, sy, *upright.get_pixel(x, y));
        }
    }
    s
}

pub fn png_with_exif(img: &RgbImage, orientation: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_chunk(png::chunk::eXIf, &exif_orientation(orientation as u16))
            .unwrap();
        w.write_image_data(img.as_raw()).unwrap();
    }
    out
}

pub fn jpeg_with_exif(img: &RgbImage, orientation: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 95);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&exif_orientation(orientation as u16));
    enc.add_app_segment(1, &app1).unwrap();
    enc.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .unwrap();
    out
}

pub fn cmyk_jpeg(img: &RgbImage) -> Vec<u8> {
    let data: Vec<u8> = img
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(
            &data,
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .unwrap();
    out
}

pub fn progressive_jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_progressive(true);
    enc.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .unwrap();
    out
}

pub fn palette_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        let palette: Vec<u8> = (0..16u32)
            .flat_map(|i| [(i * 16) as u8, (255 - i * 16) as u8, ((i * 37) % 255) as u8])
            .collect();
        enc.set_palette(palette);
        let mut wr = enc.write_header().unwrap();
        let data: Vec<u8> = (0..w * h)
            .map(|i| (((i % w) / 8 + (i / w) / 8) % 16) as u8)
            .collect();
        wr.write_image_data(&data).unwrap();
    }
    out
}

pub fn apng(a: &RgbaImage, b: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, a.width(), a.height());
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(2, 0).unwrap();
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(a.as_raw()).unwrap();
        wr.write_image_data(b.as_raw()).unwrap();
    }
    out
}

pub fn animated_gif(frames: &[RgbaImage]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.encode_frames(frames.iter().map(|f| image::Frame::new(f.clone())))
            .unwrap();
    }
    out
}

pub fn webp_lossless(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

fn u24(v: u32) -> [u8; 3] {
    let b = v.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// An animated WebP built by hand around lossless frames (the encoder makes only still ones).
pub fn animated_webp(frames: &[RgbaImage]) -> Vec<u8> {
    let (w, h) = frames[0].dimensions();
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02 | 0x10, 0, 0, 0];
    vp8x.extend_from_slice(&u24(w - 1));
    vp8x.extend_from_slice(&u24(h - 1));
    riff_chunk(&mut body, b"VP8X", &vp8x);
    riff_chunk(&mut body, b"ANIM", &[255, 255, 255, 255, 0, 0]);
    for f in frames {
        let still = webp_lossless(f);
        // The still file is RIFF....WEBP then one VP8L chunk: take that chunk whole.
        let chunk = &still[12..];
        let mut anmf = Vec::new();
        anmf.extend_from_slice(&u24(0));
        anmf.extend_from_slice(&u24(0));
        anmf.extend_from_slice(&u24(w - 1));
        anmf.extend_from_slice(&u24(h - 1));
        anmf.extend_from_slice(&u24(100));
        anmf.push(0);
        anmf.extend_from_slice(chunk);
        riff_chunk(&mut body, b"ANMF", &anmf);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A still lossless WebP in an extended (VP8X) container with an `EXIF` chunk holding
/// `orientation`; with `prefix`, the chunk starts with `Exif\0\0` as JPEG's APP1 does (as many
/// real files' do).
pub fn webp_with_exif(img: &RgbaImage, orientation: u8, prefix: bool) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let still = webp_lossless(img);
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x08 | 0x10, 0, 0, 0];
    vp8x.extend_from_slice(&u24(w - 1));
    vp8x.extend_from_slice(&u24(h - 1));
    riff_chunk(&mut body, b"VP8X", &vp8x);
    body.extend_from_slice(&still[12..]);
    let mut exif = if prefix {
        b"Exif\0\0".to_vec()
    } else {
        Vec::new()
    };
    exif.extend_from_slice(&exif_orientation(orientation as u16));
    riff_chunk(&mut body, b"EXIF", &exif);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A BMP header (BITMAPINFOHEADER, 24-bit) declaring `w`×`h`, followed by a few pixel bytes.
pub fn bmp_header_only(w: i32, h: i32) -> Vec<u8> {
    let mut b = b"BM".to_vec();
    b.extend_from_slice(&(54u32 + 64).to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    b.extend_from_slice(&[0x80; 64]);
    b
}

/// An ISO-BMFF file start (`ftyp` box) with `major` and `compatible` brands, then junk: how HEIF
/// and AVIF files begin.
pub fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = 16 + 4 * compatible.len() as u32;
    let mut b = size.to_be_bytes().to_vec();
    b.extend_from_slice(b"ftyp");
    b.extend_from_slice(major);
    b.extend_from_slice(&[0, 0, 0, 0]);
    for c in compatible {
        b.extend_from_slice(*c);
    }
    b.extend_from_slice(&[0, 0, 0, 8, b'm', b'e', b't', b'a']);
    b.extend_from_slice(&[0x5A; 200]);
    b
}

/// A 2-frame GIF with a stray zero byte (an extra block terminator) between its frames, as some
/// encoders write.
pub fn gif_with_stray_terminator(frames: &[RgbaImage]) -> Vec<u8> {
    let g = animated_gif(frames);
    // Walk the blocks to the end of the first image's data.
    let mut i = 13;
    if g[10] & 0x80 != 0 {
        i += 3 << ((g[10] & 7) + 1);
    }
    let skip = |mut i: usize| loop {
        let n = g[i] as usize;
        i += 1 + n;
        if n == 0 {
            return i;
        }
    };
    loop {
        match g[i] {
            0x21 => i = skip(i + 2),
            0x2C => {
                let flags = g[i + 9];
                i += 10;
                if flags & 0x80 != 0 {
                    i += 3 << ((flags & 7) + 1);
                }
                i = skip(i + 1);
                break;
            }
            b => panic!("unexpected GIF block {b:#x}"),
        }
    }
    let mut out = g[..i].to_vec();
    out.push(0);
    out.extend_from_slice(&g[i..]);
    out
}

fn rgba(img: &RgbImage) -> RgbaImage {
    DynamicImage::ImageRgb8(img.clone()).to_rgba8()
}

/// Every case, with its expected outcome under the default rules (min side 64, first frame).
pub fn cases() -> Vec<Case> {
    let pic = synth::scene(7, 160, 96);
    let pic2 = synth::scene(8, 160, 96);
    let dynpic = DynamicImage::ImageRgb8(pic.clone());
    let full_jpeg = synth::jpeg(&pic, 90);
    let full_png = synth::png(&dynpic);
    let mut cases = vec![
        case("empty", Vec::new(), Expect::Rejected(RejectReason::Empty)),
        case(
            "html_as_jpeg",
            b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>\n".to_vec(),
            Expect::Rejected(RejectReason::NotAnImage),
        ),
        case(
            "jpeg_magic_then_junk",
            {
                let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
                let mut rng = Rng::new(3);
                b.extend((0..400).map(|_| rng.next_u64() as u8));
                b
            },
            Expect::Rejected(RejectReason::Corrupt),
        ),
        case(
            "truncated_jpeg",
            full_jpeg[..full_jpeg.len() / 2].to_vec(),
            Expect::Rejected(RejectReason::Truncated),
        ),
        case(
            "truncated_png",
            full_png[..full_png.len() * 6 / 10].to_vec(),
            Expect::Rejected(RejectReason::Truncated),
        ),
        case(
            "png_cut_in_header",
            full_png[..20].to_vec(),
            Expect::Rejected(RejectReason::Truncated),
        ),
        case(
            "bomb_png_60000x60000",
            png_header_only(60_000, 60_000),
            Expect::Rejected(RejectReason::TooManyPixels),
        ),
        case("zero_width_png", png_header_only(0, 100), Expect::Rejected(RejectReason::ZeroSize)),
        case(
            "zero_size_gif",
            b"GIF89a\x00\x00\x00\x00\x00\x00\x00\x3b".to_vec(),
            Expect::Rejected(RejectReason::ZeroSize),
        ),
        case(
            "too_small_png",
            synth::png(&DynamicImage::ImageRgb8(synth::scene(9, 48, 200))),
            Expect::Rejected(RejectReason::TooSmall),
        ),
        case("jpeg", full_jpeg.clone(), acc(Format::Jpeg, (160, 96), "rgb8")),
        case("cmyk_jpeg", cmyk_jpeg(&pic), acc(Format::Jpeg, (160, 96), "rgb8")),
        case(
            "grey_jpeg",
            synth::jpeg_dyn(&DynamicImage::ImageLuma8(dynpic.to_luma8()), 90),
            acc(Format::Jpeg, (160, 96), "l8"),
        ),
        case("progressive_jpeg", progressive_jpeg(&pic), acc(Format::Jpeg, (160, 96), "rgb8")),
        case(
            "png_16bit",
            synth::png(&DynamicImage::ImageRgb16(dynpic.to_rgb16())),
            acc(Format::Png, (160, 96), "rgb16"),
        ),
        case(
            "grey_png_16bit",
            synth::png(&DynamicImage::ImageLuma16(dynpic.to_luma16())),
            acc(Format::Png, (160, 96), "l16"),
        ),
        case("palette_png", palette_png(128, 80), acc(Format::Png, (128, 80), "rgb8")),
        case(
            "alpha_png",
            synth::png(&DynamicImage::ImageRgba8(rgba(&pic))),
            acc(Format::Png, (160, 96), "rgba8"),
        ),
        case("webp", webp_lossless(&rgba(&pic)), acc(Format::Webp, (160, 96), "rgba8")),
        case(
            "gif",
            animated_gif(&[rgba(&pic)]),
            acc(Format::Gif, (160, 96), "rgba8"),
        ),
        case(
            "bmp",
            {
                let mut c = std::io::Cursor::new(Vec::new());
                dynpic.write_to(&mut c, image::ImageFormat::Bmp).unwrap();
                c.into_inner()
            },
            acc(Format::Bmp, (160, 96), "rgb8"),
        ),
    ];
    let animated = |format, color| Expect::Accepted {
        format,
        oriented: (160, 96),
        orientation: 1,
        animated: true,
        color,
    };
    cases.push(case(
        "gif_2_frames_stray_terminator",
        gif_with_stray_terminator(&[rgba(&pic), rgba(&pic2)]),
        animated(Format::Gif, "rgba8"),
    ));
    let unsupported = Expect::Rejected(RejectReason::UnsupportedFormat);
    for (name, bytes) in [
        ("jpeg2000_jp2", {
            let mut b = b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\x14ftypjp2 ".to_vec();
            b.extend_from_slice(&[0x11; 100]);
            b
        }),
        ("jpeg2000_codestream", {
            let mut b = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x2F];
            b.extend_from_slice(&[0x22; 100]);
            b
        }),
        ("bigtiff_le", {
            let mut b = b"II\x2b\0\x08\0\0\0".to_vec();
            b.extend_from_slice(&[0x10; 100]);
            b
        }),
        ("bigtiff_be", {
            let mut b = b"MM\0\x2b\0\x08\0\0".to_vec();
            b.extend_from_slice(&[0x10; 100]);
            b
        }),
        ("heic", ftyp(b"heic", &[b"mif1", b"heic"])),
        ("heif_sequence", ftyp(b"msf1", &[b"msf1", b"hevc"])),
        ("avif", ftyp(b"avif", &[b"avif", b"mif1"])),
        ("avif_sequence", ftyp(b"avis", &[b"avis", b"msf1"])),
    ] {
        cases.push(case(name, bytes, unsupported.clone()));
    }
    cases.push(case(
        "bmp_3000000x2000000",
        bmp_header_only(3_000_000, 2_000_000),
        Expect::Rejected(RejectReason::TooManyPixels),
    ));
    cases.push(case(
        "bmp_top_down_3000000x2000000",
        bmp_header_only(3_000_000, -2_000_000),
        Expect::Rejected(RejectReason::TooManyPixels),
    ));
    for n in 1..=8u8 {
        for prefix in [false, true] {
            let stored = stored_for(&pic, n);
            cases.push(case(
                &format!(
                    "webp_exif_orientation_{n}{}",
                    if prefix { "_exif_prefix" } else { "" }
                ),
                webp_with_exif(&rgba(&stored), n, prefix),
                Expect::Accepted {
                    format: Format::Webp,
                    oriented: (160, 96),
                    orientation: n,
                    animated: false,
                    color: "rgba8",
                },
            ));
        }
    }
    cases.push(case(
        "animated_gif",
        animated_gif(&[rgba(&pic), rgba(&pic2)]),
        animated(Format::Gif, "rgba8"),
    ));
    cases.push(case(
        "apng",
        apng(&rgba(&pic), &rgba(&pic2)),
        animated(Format::Png, "rgba8"),
    ));
    cases.push(case(
        "animated_webp",
        animated_webp(&[rgba(&pic), rgba(&pic2)]),
        animated(Format::Webp, "rgba8"),
    ));
    for n in 1..=8u8 {
        let stored = stored_for(&pic, n);
        let expect = Expect::Accepted {
            format: Format::Png,
            oriented: (160, 96),
            orientation: n,
            animated: false,
            color: "rgb8",
        };
        cases.push(case(
            &format!("png_exif_orientation_{n}"),
            png_with_exif(&stored, n),
            expect,
        ));
        let expect = Expect::Accepted {
            format: Format::Jpeg,
            oriented: (160, 96),
            orientation: n,
            animated: false,
            color: "rgb8",
        };
        cases.push(case(
            &format!("jpeg_exif_orientation_{n}"),
            jpeg_with_exif(&stored, n),
            expect,
        ));
    }
    cases
}
