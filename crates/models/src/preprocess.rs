//! From an image to a model input, as timm's eval transform: resize the shorter side to
//! `floor(input_size / crop_pct)`, centre-crop `input_size`, scale to [0, 1], normalise per channel.

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

use crate::error::Result;
use crate::models::PretrainedCfg;

/// The resized and centre-cropped RGB image, before normalisation.
pub fn resize_crop(img: &DynamicImage, cfg: &PretrainedCfg) -> RgbImage {
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let size = cfg.input_size as u32;
    let scale = ((cfg.input_size as f64) / cfg.crop_pct).floor() as u32;
    let (nw, nh) = if w <= h {
        (scale, ((scale as u64 * h as u64) / w.max(1) as u64) as u32)
    } else {
        (((scale as u64 * w as u64) / h.max(1) as u64) as u32, scale)
    };
    let filter = match cfg.interpolation {
        "bicubic" => FilterType::CatmullRom,
        "nearest" => FilterType::Nearest,
        _ => FilterType::Triangle,
    };
    let resized = image::imageops::resize(&rgb, nw.max(size), nh.max(size), filter);
    let (rw, rh) = resized.dimensions();
    let (x0, y0) = ((rw - size) / 2, (rh - size) / 2);
    image::imageops::crop_imm(&resized, x0, y0, size, size).to_image()
}

/// `[3, S, S]` f32: RGB scaled to [0, 1] and normalised with the config's mean and std.
pub fn normalise(img: &RgbImage, cfg: &PretrainedCfg, device: &Device) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = vec![0f32; 3 * w * h];
    for (x, y, px) in img.enumerate_pixels() {
        for c in 0..3 {
            let v = px.0[c] as f32 / 255.0;
            data[c * w * h + y as usize * w + x as usize] = (v - cfg.mean[c]) / cfg.std[c];
        }
    }
    Ok(Tensor::from_vec(data, (3, h, w), device)?)
}

/// [`resize_crop`] then [`normalise`].
pub fn image_to_tensor(img: &DynamicImage, cfg: &PretrainedCfg, device: &Device) -> Result<Tensor> {
    normalise(&resize_crop(img, cfg), cfg, device)
}
