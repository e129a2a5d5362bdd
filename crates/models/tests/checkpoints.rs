//! PyTorch checkpoint reading on fixtures written by `fixtures/make_torch_fixtures.py` the way
//! `torch.save` writes them (zip format and legacy format), checked value by value and against
//! candle's own zip reader; and the hub's offline error.

use std::path::{Path, PathBuf};

use lennonnet_models::Error;
use lennonnet_models::candle_core::{DType, Device, Tensor};
use lennonnet_models::weights::{self, FileFormat, HubOptions, TorchFormat, WeightsSource};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// What the fixture script writes.
fn check_state_dict(tensors: &[(String, Tensor)]) {
    let get = |n: &str| {
        &tensors
            .iter()
            .find(|(k, _)| k == n)
            .unwrap_or_else(|| panic!("no {n}"))
            .1
    };
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv.weight",
            "fc.weight",
            "fc.weight_t",
            "fc.bias",
            "bn.running_var",
            "bn.num_batches_tracked",
            "half"
        ]
    );
    let conv = get("conv.weight");
    assert_eq!((conv.dims(), conv.dtype()), (&[2, 3, 2, 2][..], DType::F32));
    assert_eq!(
        values(conv),
        (0..24).map(|i| 0.5 * i as f64).collect::<Vec<_>>()
    );
    let fc = get("fc.weight");
    assert_eq!(fc.dims(), [3, 4]);
    assert_eq!(
        values(fc),
        (0..12).map(|i| i as f64 - 6.0).collect::<Vec<_>>()
    );
    // The transpose shares the storage: element [i][j] is storage[j·4 + i].
    let fct = get("fc.weight_t");
    assert_eq!(fct.dims(), [4, 3]);
    let want: Vec<f64> = (0..4)
        .flat_map(|i| (0..3).map(move |j| (j * 4 + i) as f64 - 6.0))
        .collect();
    assert_eq!(values(fct), want);
    assert_eq!(values(get("fc.bias")), [2.0, 3.0, 4.0]);
    let var = get("bn.running_var");
    assert_eq!(var.dtype(), DType::F64);
    assert_eq!(
        values(var),
        (0..5).map(|i| 1.0 / (i + 1) as f64).collect::<Vec<_>>()
    );
    let nbt = get("bn.num_batches_tracked");
    assert_eq!((nbt.dims(), nbt.dtype()), (&[][..], DType::I64));
    assert_eq!(nbt.to_scalar::<i64>().unwrap(), 7);
    let half = get("half");
    assert_eq!(half.dtype(), DType::F16);
    assert_eq!(values(half), [0.0, 0.25, 0.5, 0.75]);
}

#[test]
fn zip_format_is_read_value_by_value() {
    let w = weights::read(&fixture("zip.pth"), None).unwrap();
    assert_eq!(w.format, FileFormat::Torch(TorchFormat::Zip));
    check_state_dict(&w.tensors);
}

#[test]
fn zip_format_agrees_with_candles_reader() {
    let ours = weights::read(&fixture("zip.pth"), None).unwrap().tensors;
    let theirs = lennonnet_models::candle_core::pickle::read_all(fixture("zip.pth")).unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (name, t) in theirs {
        let mine = &ours.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(t.dims(), mine.dims(), "{name}");
        assert_eq!(values(&t), values(mine), "{name}");
    }
}

#[test]
fn legacy_format_is_read_value_by_value() {
    let w = weights::read(&fixture("legacy.pth"), None).unwrap();
    assert_eq!(w.format, FileFormat::Torch(TorchFormat::Legacy));
    check_state_dict(&w.tensors);
}

#[test]
fn a_wrapped_state_dict_is_found_or_named() {
    let found = weights::read(&fixture("legacy_wrapped.pth"), None).unwrap();
    check_state_dict(&found.tensors);
    let named = weights::read(&fixture("legacy_wrapped.pth"), Some("state_dict")).unwrap();
    check_state_dict(&named.tensors);
    let err = weights::read(&fixture("legacy_wrapped.pth"), Some("model")).unwrap_err();
    assert!(err.to_string().contains("no entry `model`"), "{err}");
    let err = weights::read(&fixture("legacy_wrapped.pth"), Some("epoch")).unwrap_err();
    assert!(err.to_string().contains("not a dict"), "{err}");
}

#[test]
fn damaged_checkpoints_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["legacy.pth", "zip.pth"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in [3, 20, 100, 400, bytes.len() - 30, bytes.len() - 1] {
            let p = dir.path().join(format!("{cut}-{name}"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(
                weights::read(&p, None).is_err(),
                "{name} cut at {cut} must fail"
            );
        }
    }
    let p = dir.path().join("junk.pth");
    std::fs::write(&p, b"GIF89a....").unwrap();
    assert!(matches!(
        weights::read(&p, None),
        Err(Error::NotACheckpoint { .. })
    ));
}

#[test]
fn import_writes_safetensors_without_num_batches_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let report = weights::import(&fixture("legacy.pth"), &out, None, None).unwrap();
    assert_eq!((report.tensors, report.dropped), (6, 1));
    // The same checkpoint gives the same bytes.
    let again = dir.path().join("again.safetensors");
    let report2 = weights::import(&fixture("legacy.pth"), &again, None, None).unwrap();
    assert_eq!(report2.blake3, report.blake3);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let back = weights::read(&out, None).unwrap();
    assert_eq!(back.format, FileFormat::Safetensors);
    let names: Vec<&str> = back.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "bn.running_var",
            "conv.weight",
            "fc.bias",
            "fc.weight",
            "fc.weight_t",
            "half"
        ]
    );
    let fct = &back
        .tensors
        .iter()
        .find(|(n, _)| n == "fc.weight_t")
        .unwrap()
        .1;
    assert_eq!(values(fct)[..3], [-6.0, -2.0, 2.0]);
    // Imported for an architecture, a checkpoint of another one is refused.
    let err = weights::import(
        &fixture("legacy.pth"),
        &out,
        Some(lennonnet_models::Arch::ResNet10t),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnexpectedWeights { .. }), "{err}");
    // One without the architecture's head tensor is named as such.
    let err = weights::import(
        &fixture("legacy.pth"),
        &out,
        Some(lennonnet_models::Arch::EfficientNetLite0),
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a efficientnet_lite0 checkpoint"),
        "{err}"
    );
}

#[test]
fn hub_specs_parse_and_offline_is_a_clear_error() {
    assert_eq!(
        WeightsSource::parse("hub:timm/resnet50d.ra2_in1k").unwrap(),
        WeightsSource::Hub {
            repo: "timm/resnet50d.ra2_in1k".into(),
            file: "model.safetensors".into()
        }
    );
    assert_eq!(
        WeightsSource::parse("hub:org/repo/sub/w.pth").unwrap(),
        WeightsSource::Hub {
            repo: "org/repo".into(),
            file: "sub/w.pth".into()
        }
    );
    assert_eq!(
        WeightsSource::parse("weights/x.safetensors").unwrap(),
        WeightsSource::File("weights/x.safetensors".into())
    );
    for bad in ["hub:", "hub:timm", "hub:/x", ""] {
        assert!(WeightsSource::parse(bad).is_err(), "{bad}");
    }
    // A hub on a closed loopback port stands for no network: nothing leaves the machine.
    let cache = tempfile::tempdir().unwrap();
    let opts = HubOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        cache_dir: Some(cache.path().to_path_buf()),
    };
    let err = WeightsSource::parse("hub:timm/resnet50d.ra2_in1k")
        .unwrap()
        .resolve(&opts)
        .unwrap_err();
    assert!(matches!(err, Error::Hub { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("timm/resnet50d.ra2_in1k") && msg.contains("offline"),
        "{msg}"
    );
}

#[test]
fn weights_load_on_the_cpu_device() {
    // Loaded tensors live on the CPU until a model moves them.
    let w = weights::read(&fixture("zip.pth"), None).unwrap();
    assert!(
        w.tensors
            .iter()
            .all(|(_, t)| matches!(t.device(), Device::Cpu))
    );
}
