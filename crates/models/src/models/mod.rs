//! The model zoo: timm-compatible ResNets and EfficientNet-Lite0, each a backbone (pooled
//! features) plus a replaceable linear classifier head.

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Init;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::error::{Error, Result};
use crate::ops::Backend;
use crate::params::{Kind, ParamStore, under_prefix};

pub mod efficientnet;
pub mod resnet;
#[cfg(test)]
mod tests;

/// What every layer's forward pass needs besides its input.
pub struct Ctx<'a> {
    /// Training mode: batch statistics in batch norm, dropout and drop-path active.
    pub train: bool,
    pub backend: Backend,
    frozen: &'a [String],
    rng: Option<&'a Mutex<ChaCha8Rng>>,
}

impl<'a> Ctx<'a> {
    /// A context without frozen parts and without randomness (dropout must be off).
    pub fn new(train: bool, backend: Backend) -> Self {
        Self {
            train,
            backend,
            frozen: &[],
            rng: None,
        }
    }

    /// Whether the layer or tensor `name` lies under a frozen prefix.
    pub fn is_frozen(&self, name: &str) -> bool {
        self.frozen.iter().any(|p| under_prefix(name, p))
    }

    /// A parameter as the forward pass should see it: detached when frozen, so that no gradient
    /// is computed for it.
    pub fn param(&self, t: &Tensor, frozen: bool) -> Tensor {
        if frozen { t.detach() } else { t.clone() }
    }

    /// A mask of `n` values, each `1 / keep` with probability `keep` and 0 otherwise, from the
    /// model's seeded generator.
    fn keep_mask(&self, n: usize, keep: f64) -> candle_core::Result<Vec<f32>> {
        let Some(rng) = self.rng else {
            candle_core::bail!("dropout needs the model's random generator")
        };
        let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
        let scale = (1.0 / keep) as f32;
        Ok((0..n)
            .map(|_| {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                if u < keep { scale } else { 0.0 }
            })
            .collect())
    }

    /// Dropout of whole samples (stochastic depth) on a residual branch `[B, ...]`.
    pub fn drop_path(&self, x: &Tensor, rate: f64) -> candle_core::Result<Tensor> {
        if !self.train || rate <= 0.0 {
            return Ok(x.clone());
        }
        let b = x.dim(0)?;
        let mut shape = vec![1; x.rank()];
        shape[0] = b;
        let mask = Tensor::from_vec(self.keep_mask(b, 1.0 - rate)?, shape, x.device())?
            .to_dtype(x.dtype())?;
        x.broadcast_mul(&mask)
    }

    /// Element-wise dropout.
    pub fn dropout(&self, x: &Tensor, rate: f64) -> candle_core::Result<Tensor> {
        if !self.train || rate <= 0.0 {
            return Ok(x.clone());
        }
        let mask = Tensor::from_vec(
            self.keep_mask(x.elem_count(), 1.0 - rate)?,
            x.shape(),
            x.device(),
        )?
        .to_dtype(x.dtype())?;
        x * mask
    }
}

/// A fully connected layer, `weight [out, in]` and `bias [out]`, as PyTorch's `nn.Linear`.
#[derive(Debug)]
pub struct Linear {
    name: String,
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn new(
        c_in: usize,
        c_out: usize,
        weight_init: Init,
        bias_init: Init,
        vb: candle_nn::VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            name: vb.prefix(),
            weight: vb.get_with_hints((c_out, c_in), "weight", weight_init)?,
            bias: vb.get_with_hints(c_out, "bias", bias_init)?,
        })
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> candle_core::Result<Tensor> {
        let frozen = ctx.is_frozen(&self.name);
        let w = ctx.param(&self.weight, frozen);
        let b = ctx.param(&self.bias, frozen);
        x.matmul(&w.t()?)?.broadcast_add(&b)
    }
}

/// The models of the zoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    ResNet10t,
    ResNet18d,
    ResNet26d,
    ResNet34d,
    ResNet50d,
    EfficientNetLite0,
}

/// Input preprocessing that a model's pretrained weights expect.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PretrainedCfg {
    /// Square input side in pixels.
    pub input_size: usize,
    /// Resize the shorter side to `input_size / crop_pct`, then centre-crop `input_size`.
    pub crop_pct: f64,
    /// Per-channel RGB mean and standard deviation of pixel values scaled to [0, 1].
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The resampling filter: `bicubic` or `bilinear`.
    pub interpolation: &'static str,
}

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::ResNet10t,
        Arch::ResNet18d,
        Arch::ResNet26d,
        Arch::ResNet34d,
        Arch::ResNet50d,
        Arch::EfficientNetLite0,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ResNet10t => "resnet10t",
            Self::ResNet18d => "resnet18d",
            Self::ResNet26d => "resnet26d",
            Self::ResNet34d => "resnet34d",
            Self::ResNet50d => "resnet50d",
            Self::EfficientNetLite0 => "efficientnet_lite0",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::UnknownModel {
                name: name.into(),
                known: Self::ALL.map(Arch::name).join(", "),
            })
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::ResNet10t => {
                "timm resnet10t: BasicBlock [1,1,1,1], tiered deep stem (24, 32, 64), avg-pool downsample"
            }
            Self::ResNet18d => {
                "timm resnet18d: BasicBlock [2,2,2,2], deep stem (32, 32, 64), avg-pool downsample"
            }
            Self::ResNet26d => {
                "timm resnet26d: Bottleneck [2,2,2,2], deep stem (32, 32, 64), avg-pool downsample"
            }
            Self::ResNet34d => {
                "timm resnet34d: BasicBlock [3,4,6,3], deep stem (32, 32, 64), avg-pool downsample"
            }
            Self::ResNet50d => {
                "timm resnet50d: Bottleneck [3,4,6,3], deep stem (32, 32, 64), avg-pool downsample"
            }
            Self::EfficientNetLite0 => {
                "EfficientNet-Lite0 (TensorFlow port: SAME padding, BN eps 1e-3, ReLU6, no SE), timm names as tf_efficientnet_lite0"
            }
        }
    }

    /// The name prefix of the classifier head.
    pub fn head_prefix(self) -> &'static str {
        match self {
            Self::EfficientNetLite0 => "classifier",
            _ => "fc",
        }
    }

    /// The Hugging Face hub repository of timm's ImageNet weights for this architecture.
    pub fn hub_repo(self) -> &'static str {
        match self {
            Self::ResNet10t => "timm/resnet10t.c3_in1k",
            Self::ResNet18d => "timm/resnet18d.ra2_in1k",
            Self::ResNet26d => "timm/resnet26d.bt_in1k",
            Self::ResNet34d => "timm/resnet34d.ra2_in1k",
            Self::ResNet50d => "timm/resnet50d.ra2_in1k",
            Self::EfficientNetLite0 => "timm/tf_efficientnet_lite0.in1k",
        }
    }

    /// The preprocessing the pretrained weights expect.
    pub fn pretrained_cfg(self) -> PretrainedCfg {
        let timm = |input_size| PretrainedCfg {
            input_size,
            crop_pct: 0.875,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            interpolation: "bicubic",
        };
        match self {
            Self::ResNet10t => timm(176),
            Self::EfficientNetLite0 => PretrainedCfg {
                // The checkpoint is TensorFlow's EfficientNet-Lite0, trained on pixels normalised
                // as (v - 127) / 128 and evaluated on a bicubic centre crop of 224 / (224 + 32).
                // (The companion code's ImageNet mean and std also classify the test photos
                // right, with less confidence.)
                input_size: 224,
                crop_pct: 0.875,
                mean: [127.0 / 255.0; 3],
                std: [128.0 / 255.0; 3],
                interpolation: "bicubic",
            },
            _ => timm(224),
        }
    }

    fn default_drop_rate(self) -> f64 {
        match self {
            Self::EfficientNetLite0 => 0.2,
            _ => 0.0,
        }
    }

    fn default_drop_path_rate(self) -> f64 {
        match self {
            Self::EfficientNetLite0 => 0.2,
            _ => 0.0,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to build a [`Classifier`].
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub num_classes: usize,
    /// Dropout before the classifier; `None`: the architecture's default (0.2 for
    /// EfficientNet-Lite0, 0 for the ResNets).
    pub drop_rate: Option<f64>,
    /// Stochastic depth on residual branches, growing linearly to this rate in the last block;
    /// `None`: the architecture's default (0.2 for EfficientNet-Lite0, 0 for the ResNets).
    pub drop_path_rate: Option<f64>,
    /// Seeds the initial weights and the dropout masks.
    pub seed: u64,
    /// `None`: [`Backend::for_device`].
    pub backend: Option<Backend>,
    pub dtype: DType,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            num_classes: 1000,
            drop_rate: None,
            drop_path_rate: None,
            seed: 0,
            backend: None,
            dtype: DType::F32,
        }
    }
}

enum Net {
    ResNet(resnet::ResNet),
    EfficientNet(Box<efficientnet::EfficientNet>),
}

/// One stored tensor: name, shape and kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: Kind,
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A cut through a model's forward pass: before block `index` (named `name`, its name prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub index: usize,
    pub name: String,
}

/// An image classifier: backbone, global average pooling, dropout, linear head.
pub struct Classifier {
    arch: Arch,
    store: ParamStore,
    net: Net,
    head: Linear,
    num_features: usize,
    drop_rate: f64,
    backend: Backend,
    frozen: Vec<String>,
    rng: Mutex<ChaCha8Rng>,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("arch", &self.arch)
            .field("num_classes", &self.num_classes())
            .field("backend", &self.backend)
            .field("frozen", &self.frozen)
            .finish()
    }
}

impl Classifier {
    pub fn new(arch: Arch, opts: &ModelOptions, device: &Device) -> Result<Self> {
        let store = ParamStore::new(opts.seed);
        let vb = store.var_builder(opts.dtype, device);
        let drop_path = opts
            .drop_path_rate
            .unwrap_or_else(|| arch.default_drop_path_rate());
        let (net, num_features) = match arch {
            Arch::EfficientNetLite0 => {
                let net = efficientnet::EfficientNet::lite0(drop_path, vb.clone())?;
                let f = net.num_features();
                (Net::EfficientNet(Box::new(net)), f)
            }
            resnet_arch => {
                let cfg = resnet::ResNetConfig::of(resnet_arch).expect("a ResNet architecture");
                let net = resnet::ResNet::new(&cfg, drop_path, vb.clone())?;
                let f = net.num_features();
                (Net::ResNet(net), f)
            }
        };
        let head = Self::build_head(
            arch,
            num_features,
            opts.num_classes,
            &store,
            opts.dtype,
            device,
        )?;
        Ok(Self {
            arch,
            store,
            net,
            head,
            num_features,
            drop_rate: opts.drop_rate.unwrap_or_else(|| arch.default_drop_rate()),
            backend: opts.backend.unwrap_or_else(|| Backend::for_device(device)),
            frozen: Vec::new(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(opts.seed)),
            device: device.clone(),
            dtype: opts.dtype,
        })
    }

    fn build_head(
        arch: Arch,
        num_features: usize,
        num_classes: usize,
        store: &ParamStore,
        dtype: DType,
        device: &Device,
    ) -> Result<Linear> {
        let vb = store.var_builder(dtype, device).pp(arch.head_prefix());
        let (w, b) = match arch {
            // timm's EfficientNet init: uniform ±1/sqrt(out), zero bias.
            Arch::EfficientNetLite0 => {
                let r = 1.0 / (num_classes as f64).sqrt();
                (Init::Uniform { lo: -r, up: r }, Init::Const(0.0))
            }
            // PyTorch's nn.Linear default: uniform ±1/sqrt(in) for weight and bias.
            _ => {
                let r = 1.0 / (num_features as f64).sqrt();
                (
                    Init::Uniform { lo: -r, up: r },
                    Init::Uniform { lo: -r, up: r },
                )
            }
        };
        Ok(Linear::new(num_features, num_classes, w, b, vb)?)
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn num_classes(&self) -> usize {
        self.head.out_features()
    }

    /// Width of the pooled features that feed the head.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Switches kernels; the weights are shared, so the function computed stays the same.
    pub fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
    }

    /// Reseeds the dropout and drop-path generator (for example from the run seed and the step,
    /// so that a resumed run draws the same masks).
    pub fn set_rng_seed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = ChaCha8Rng::seed_from_u64(seed);
    }

    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    fn ctx(&self, train: bool) -> Ctx<'_> {
        Ctx {
            train,
            backend: self.backend,
            frozen: &self.frozen,
            rng: Some(&self.rng),
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let dims = x.dims();
        if dims.len() != 4 || dims[1] != 3 || dims[2] < 32 || dims[3] < 32 {
            return Err(Error::BadInput {
                shape: dims.to_vec(),
            });
        }
        Ok(())
    }

    /// Pooled features `[B, num_features]` of images `[B, 3, H, W]` (normalised as in
    /// [`Arch::pretrained_cfg`]).
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(x)?;
        let ctx = self.ctx(train);
        let x = self.backend.from_nchw(&x.to_dtype(self.dtype)?)?;
        Ok(match &self.net {
            Net::ResNet(n) => n.features(&x, &ctx)?,
            Net::EfficientNet(n) => n.features(&x, &ctx)?,
        })
    }

    /// Logits from pooled features: dropout (in training mode), then the linear head.
    pub fn head_t(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        let ctx = self.ctx(train);
        let x = ctx.dropout(features, self.drop_rate)?;
        Ok(self.head.forward(&x, &ctx)?)
    }

    /// Logits `[B, num_classes]` of images `[B, 3, H, W]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let f = self.features_t(x, train)?;
        self.head_t(&f, train)
    }

    /// Where a model whose frozen prefixes are set ([`Classifier::freeze`]) can be cut so that
    /// everything before the cut is frozen: the first block (in forward order) that holds a
    /// trainable parameter, or the end of the blocks when only the layers after them (and the
    /// head) train. The activations at the cut are then a fixed function of the input
    /// ([`Classifier::boundary_t`]), and [`Classifier::forward_from_t`] computes the rest.
    /// Fails when the stem trains or when nothing but the head does.
    pub fn boundary(&self) -> Result<Boundary> {
        let (blocks, stem) = match &self.net {
            Net::ResNet(n) => (n.block_names(), n.stem_prefixes()),
            Net::EfficientNet(n) => (n.block_names(), n.stem_prefixes()),
        };
        let head = self.arch.head_prefix();
        let mut first: Option<usize> = None;
        for (name, _) in self.trainable_vars() {
            if under_prefix(&name, head) {
                continue;
            }
            if stem.iter().any(|p| under_prefix(&name, p)) {
                return Err(Error::NoBoundary {
                    arch: self.arch.name(),
                    reason: format!("`{name}` trains, and it lies before the first block"),
                });
            }
            let index = blocks
                .iter()
                .position(|b| under_prefix(&name, b))
                .unwrap_or(blocks.len());
            first = Some(first.map_or(index, |f| f.min(index)));
        }
        let index = first.ok_or_else(|| Error::NoBoundary {
            arch: self.arch.name(),
            reason: "only the head trains (use the `head` strategy)".into(),
        })?;
        let name = blocks
            .get(index)
            .cloned()
            .unwrap_or_else(|| "end of the blocks".into());
        Ok(Boundary { index, name })
    }

    /// The activations at the boundary `at` (the input of block `at`) of images `[B, 3, H, W]`,
    /// in the backend's layout (NHWC on the CPU's fast backend), computed in eval mode: the
    /// frozen layers before the boundary use their running batch-norm statistics and no
    /// stochastic depth.
    pub fn boundary_t(&self, x: &Tensor, at: usize) -> Result<Tensor> {
        self.check_input(x)?;
        let ctx = self.ctx(false);
        let x = self.backend.from_nchw(&x.to_dtype(self.dtype)?)?;
        Ok(match &self.net {
            Net::ResNet(n) => n.forward_to(&x, at, &ctx)?,
            Net::EfficientNet(n) => n.forward_to(&x, at, &ctx)?,
        })
    }

    /// Logits from the activations at the boundary `at` (as [`Classifier::boundary_t`] gives
    /// them): the blocks from `at` on, pooling, dropout (in training mode) and the head.
    pub fn forward_from_t(&self, a: &Tensor, at: usize, train: bool) -> Result<Tensor> {
        let ctx = self.ctx(train);
        let a = a.to_dtype(self.dtype)?;
        let f = match &self.net {
            Net::ResNet(n) => n.features_from(&a, at, &ctx)?,
            Net::EfficientNet(n) => n.features_from(&a, at, &ctx)?,
        };
        self.head_t(&f, train)
    }

    /// A new, freshly initialised head for `num_classes` classes.
    pub fn replace_head(&mut self, num_classes: usize) -> Result<()> {
        self.store.remove_prefix(self.arch.head_prefix());
        self.head = Self::build_head(
            self.arch,
            self.num_features,
            num_classes,
            &self.store,
            self.dtype,
            &self.device,
        )?;
        Ok(())
    }

    /// Freezes every tensor under the given name prefixes (`layer1`, `conv1`, `blocks.0`, ...):
    /// no gradient flows into them, [`Classifier::trainable_vars`] leaves them out, and their
    /// batch norms use the running statistics even in training mode. Replaces earlier freezes.
    pub fn freeze(&mut self, prefixes: &[impl AsRef<str>]) {
        self.frozen = prefixes.iter().map(|p| p.as_ref().to_string()).collect();
    }

    pub fn frozen(&self) -> &[String] {
        &self.frozen
    }

    /// The top-level name prefixes of everything but the head: freezing them leaves a trainable
    /// head on a frozen backbone.
    pub fn backbone_prefixes(&self) -> Vec<String> {
        let head = self.arch.head_prefix();
        let mut out: Vec<String> = Vec::new();
        for (name, _) in self.store.entries() {
            let top = name.split('.').next().unwrap_or(&name).to_string();
            if top != head && !out.contains(&top) {
                out.push(top);
            }
        }
        out
    }

    /// The variables the optimiser should update: parameters (not buffers) outside the frozen
    /// prefixes, sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.store
            .entries()
            .into_iter()
            .filter(|(name, _)| {
                Kind::of(name) == Kind::Param && !self.frozen.iter().any(|p| under_prefix(name, p))
            })
            .collect()
    }

    /// Every stored tensor, sorted by name.
    pub fn param_info(&self) -> Vec<ParamInfo> {
        self.store
            .entries()
            .into_iter()
            .map(|(name, var)| ParamInfo {
                kind: Kind::of(&name),
                shape: var.dims().to_vec(),
                name,
            })
            .collect()
    }

    /// The number of trainable parameters (buffers excluded), as timm counts them.
    pub fn num_params(&self) -> usize {
        self.param_info()
            .iter()
            .filter(|p| p.kind == Kind::Param)
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }
}
