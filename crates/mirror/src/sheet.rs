//! Contact sheets: a grid of labelled thumbnails, to eyeball a class or a folder of downloads.

use std::path::{Path, PathBuf};

use image::{ImageDecoder, Rgba, RgbaImage};

use crate::error::{MirrorError, Result};
use crate::font::{draw_text, text_width};

/// How a sheet is laid out.
#[derive(Debug, Clone)]
pub struct SheetOptions {
    pub columns: u32,
    /// At most this many images from each path given.
    pub limit: usize,
    /// Side of a thumbnail's square cell, in pixels.
    pub thumb_px: u32,
}

impl Default for SheetOptions {
    fn default() -> Self {
        Self {
            columns: 8,
            limit: 64,
            thumb_px: 160,
        }
    }
}

/// One image of a sheet and its two label lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetItem {
    pub path: PathBuf,
    /// The sub-folder (or the folder given) the image is in.
    pub group: String,
    pub name: String,
}

const EXTS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// The images of `paths`: files as given, folders searched recursively for image files
/// (by extension), each path's images in byte order of their paths, at most `limit` of each.
pub fn collect(paths: &[PathBuf], limit: usize) -> Result<Vec<SheetItem>> {
    let mut items = Vec::new();
    for root in paths {
        let mut found = Vec::new();
        if root.is_dir() {
            walk(root, &mut found)?;
            found.sort();
        } else if root.is_file() {
            found.push(root.clone());
        } else {
            return Err(MirrorError::Read {
                path: root.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
        for path in found.into_iter().take(limit) {
            let group = path
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            items.push(SheetItem { path, group, name });
        }
    }
    if items.is_empty() {
        return Err(MirrorError::NoImages {
            paths: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(items)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| MirrorError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Decodes a file the way a viewer shows it (EXIF orientation applied), refusing pictures over
/// 100 megapixels (decompression bombs).
pub fn decode_oriented(path: &Path) -> std::result::Result<image::DynamicImage, String> {
    // Only regular files (a FIFO would block), and none larger than a picture can be.
    const MAX_BYTES: u64 = 256 << 20;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_BYTES {
        return Err(format!("{} bytes: larger than {MAX_BYTES}", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode_oriented_bytes(&bytes)
}

/// [`decode_oriented`] for bytes in memory.
pub fn decode_oriented_bytes(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > 100_000_000 {
        return Err(format!("{w}x{h} is too large"));
    }
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Draws the sheet: cells of `thumb_px` with the picture fitted in, its size under it, then
/// the group and file name. Unreadable files get a red cell saying why.
pub fn draw(items: &[SheetItem], opts: &SheetOptions, threads: usize) -> RgbaImage {
    let cols = opts.columns.max(1);
    let t = opts.thumb_px.max(32);
    let label_h = 3 * 10 + 4;
    let pad = 6;
    let cell_w = t + pad;
    let cell_h = t + label_h + pad;
    let rows = (items.len() as u32).div_ceil(cols);
    let mut sheet = RgbaImage::from_pixel(
        cols * cell_w + pad,
        rows * cell_h + pad,
        Rgba([24, 24, 28, 255]),
    );
    // Thumbnails in parallel, drawn in order.
    let thumbs: Vec<std::result::Result<(RgbaImage, u32, u32), String>> = {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<_>>> =
            items.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let r = decode_oriented(&item.path).map(|img| {
                            let (w, h) = (img.width(), img.height());
                            (img.thumbnail(t, t).to_rgba8(), w, h)
                        });
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or(Err("not read".into()))
            })
            .collect()
    };
    let chars = (t / 8) as usize;
    let cut = |s: &str| -> String {
        if s.chars().count() <= chars {
            s.to_string()
        } else {
            let tail: String = s
                .chars()
                .rev()
                .take(chars.saturating_sub(1))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("~{tail}")
        }
    };
    for (i, (item, thumb)) in items.iter().zip(thumbs).enumerate() {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        let (x0, y0) = (pad + c * cell_w, pad + r * cell_h);
        let size_line = match thumb {
            Ok((img, w, h)) => {
                let ox = x0 + (t - img.width()) / 2;
                let oy = y0 + (t - img.height()) / 2;
                image::imageops::overlay(&mut sheet, &img, ox as i64, oy as i64);
                format!("{w}x{h}")
            }
            Err(e) => {
                for y in y0..y0 + t {
                    for x in x0..x0 + t {
                        sheet.put_pixel(x, y, Rgba([90, 20, 20, 255]));
                    }
                }
                draw_text(
                    &mut sheet,
                    x0 as i64 + 4,
                    (y0 + t / 2) as i64,
                    &cut(&e),
                    1,
                    [255, 220, 220, 255],
                );
                "unreadable".to_string()
            }
        };
        let ly = (y0 + t + 2) as i64;
        draw_text(
            &mut sheet,
            x0 as i64,
            ly,
            &cut(&size_line),
            1,
            [150, 150, 160, 255],
        );
        draw_text(
            &mut sheet,
            x0 as i64,
            ly + 10,
            &cut(&item.group),
            1,
            [255, 210, 120, 255],
        );
        draw_text(
            &mut sheet,
            x0 as i64,
            ly + 20,
            &cut(&item.name),
            1,
            [230, 230, 235, 255],
        );
        let _ = text_width;
    }
    sheet
}

/// Collects, draws and writes a sheet as PNG. Returns how many images it shows.
pub fn write_sheet(
    paths: &[PathBuf],
    out: &Path,
    opts: &SheetOptions,
    threads: usize,
) -> Result<usize> {
    let items = collect(paths, opts.limit)?;
    let sheet = draw(&items, opts, threads);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| MirrorError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut bytes = Vec::new();
    sheet
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| MirrorError::Encode {
            what: "contact sheet".into(),
            message: e.to_string(),
        })?;
    crate::generate::write_atomic(out, &bytes)?;
    Ok(items.len())
}
