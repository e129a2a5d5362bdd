//! Thumbnails of store objects for the page: decoded upright as every stage sees them, fitted in
//! [`THUMB_PX`] square, JPEG, kept in memory for the server's life.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use lennonnet_core::ContentId;
use lennonnet_dataset::{Dataset, decode_upright};

/// The longest side of a thumbnail, in pixels.
pub const THUMB_PX: u32 = 160;
/// Thumbnails kept at most (about 8 KB each); beyond, the cache starts over.
const MAX_CACHED: usize = 20_000;

pub enum ThumbError {
    /// The store holds no such object.
    Missing,
    /// It could not be read or decoded: why.
    Bad(String),
}

pub struct Thumbs {
    dataset: Dataset,
    cache: Mutex<HashMap<ContentId, Bytes>>,
}

impl Thumbs {
    pub fn new(dataset: Dataset) -> Self {
        Self {
            dataset,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The thumbnail of `id`, made on first use. Blocking (reads and decodes).
    pub fn get(&self, id: &ContentId) -> Result<Bytes, ThumbError> {
        if let Some(b) = self.cache.lock().expect("thumbs poisoned").get(id) {
            return Ok(b.clone());
        }
        let bytes = Bytes::from(make(&self.dataset.object_path(id))?);
        let mut cache = self.cache.lock().expect("thumbs poisoned");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(*id, bytes.clone());
        Ok(bytes)
    }
}

fn make(path: &Path) -> Result<Vec<u8>, ThumbError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ThumbError::Missing),
        Err(e) => {
            return Err(ThumbError::Bad(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    encode(&bytes).map_err(ThumbError::Bad)
}

/// An image file's bytes as a JPEG thumbnail.
pub fn encode(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let img = decode_upright(bytes)?;
    lennonnet_eval::evaluate::jpeg_thumbnail(&img, THUMB_PX, 80)
        .map_err(|e| format!("cannot encode the thumbnail: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbnail_fits_the_square_and_keeps_the_shape() {
        let img = image::RgbImage::from_pixel(400, 200, image::Rgb([200, 30, 30]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let jpeg = encode(png.get_ref()).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (THUMB_PX, THUMB_PX / 2));
        assert!(encode(b"not an image").is_err());
    }
}
