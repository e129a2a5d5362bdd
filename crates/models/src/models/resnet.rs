//! timm's ResNet "d" and "t" variants: a deep 3×3 stem, max pooling, residual stages whose
//! shortcut downsamples with 2×2 average pooling then a 1×1 convolution.
//!
//! Tensor names and shapes are timm's: `conv1.{0,3,6}.weight` and `conv1.{1,4}.*` (stem),
//! `bn1.*`, `layerS.B.{conv1,bn1,conv2,bn2[,conv3,bn3]}.*`, `layerS.0.downsample.{1,2}.*`, `fc.*`.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::{Arch, Ctx};
use crate::ops::{
    Activation, Backend, BatchNorm, Conv2d, Padding, avg_pool2x2_ceil, global_avg_pool,
    max_pool2d_composite, max_pool2d_nhwc,
};

/// PyTorch's batch-norm defaults, as timm's ResNets use them.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convolutions; expansion 1.
    Basic,
    /// 1×1, 3×3 (with the stride), 1×1; expansion 4.
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetConfig {
    pub block: Block,
    pub layers: [usize; 4],
    /// Output channels of the three stem convolutions.
    pub stem: [usize; 3],
}

impl ResNetConfig {
    pub fn of(arch: Arch) -> Option<Self> {
        let deep = [32, 32, 64];
        Some(match arch {
            Arch::ResNet10t => Self {
                block: Block::Basic,
                layers: [1, 1, 1, 1],
                stem: [24, 32, 64],
            },
            Arch::ResNet18d => Self {
                block: Block::Basic,
                layers: [2, 2, 2, 2],
                stem: deep,
            },
            Arch::ResNet26d => Self {
                block: Block::Bottleneck,
                layers: [2, 2, 2, 2],
                stem: deep,
            },
            Arch::ResNet34d => Self {
                block: Block::Basic,
                layers: [3, 4, 6, 3],
                stem: deep,
            },
            Arch::ResNet50d => Self {
                block: Block::Bottleneck,
                layers: [3, 4, 6, 3],
                stem: deep,
            },
            Arch::EfficientNetLite0 => return None,
        })
    }
}

/// timm's init: Kaiming normal, fan-out, ReLU gain.
fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let std = (2.0 / (c_out * k * k) as f64).sqrt();
    Conv2d::new(
        c_in,
        c_out,
        k,
        stride,
        Padding::Symmetric(k / 2),
        1,
        std,
        vb,
    )
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    BatchNorm::new(c, BN_EPS, BN_MOMENTUM, Init::Const(1.0), vb)
}

/// The last batch norm of a residual branch starts at zero (timm's `zero_init_last`), so each
/// block starts as the identity.
fn bn_zero(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    BatchNorm::new(c, BN_EPS, BN_MOMENTUM, Init::Const(0.0), vb)
}

struct Downsample {
    pool: bool,
    conv: Conv2d,
    bn: BatchNorm,
}

impl Downsample {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let x = if self.pool {
            avg_pool2x2_ceil(x, ctx.backend)?
        } else {
            x.clone()
        };
        self.bn
            .forward(&self.conv.forward(&x, ctx)?, Activation::None, ctx)
    }
}

struct ResBlock {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
    downsample: Option<Downsample>,
    drop_path: f64,
}

impl ResBlock {
    fn new(
        block: Block,
        c_in: usize,
        planes: usize,
        stride: usize,
        drop_path: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c_out = planes * block.expansion();
        let (convs, bns) = match block {
            Block::Basic => (
                vec![
                    conv(c_in, planes, 3, stride, vb.pp("conv1"))?,
                    conv(planes, planes, 3, 1, vb.pp("conv2"))?,
                ],
                vec![bn(planes, vb.pp("bn1"))?, bn_zero(planes, vb.pp("bn2"))?],
            ),
            Block::Bottleneck => (
                vec![
                    conv(c_in, planes, 1, 1, vb.pp("conv1"))?,
                    conv(planes, planes, 3, stride, vb.pp("conv2"))?,
                    conv(planes, c_out, 1, 1, vb.pp("conv3"))?,
                ],
                vec![
                    bn(planes, vb.pp("bn1"))?,
                    bn(planes, vb.pp("bn2"))?,
                    bn_zero(c_out, vb.pp("bn3"))?,
                ],
            ),
        };
        let downsample = if stride != 1 || c_in != c_out {
            let vb = vb.pp("downsample");
            Some(Downsample {
                pool: stride != 1,
                conv: conv(c_in, c_out, 1, 1, vb.pp("1"))?,
                bn: bn(c_out, vb.pp("2"))?,
            })
        } else {
            None
        };
        Ok(Self {
            convs,
            bns,
            downsample,
            drop_path,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x, ctx)?,
            None => x.clone(),
        };
        let last = self.convs.len() - 1;
        let mut y = x.clone();
        for (conv, bn) in self.convs[..last].iter().zip(&self.bns) {
            y = bn.forward(&conv.forward(&y, ctx)?, Activation::Relu, ctx)?;
        }
        let y = self.convs[last].forward(&y, ctx)?;
        let bn = &self.bns[last];
        if ctx.train && self.drop_path > 0.0 {
            let y = ctx.drop_path(&bn.forward(&y, Activation::None, ctx)?, self.drop_path)?;
            (y + shortcut)?.relu()
        } else {
            // relu(bn(y) + shortcut) in one pass on the fast backend.
            bn.forward_add(&y, &shortcut, Activation::Relu, ctx)
        }
    }
}

/// A ResNet backbone: stem, four stages, global average pooling.
pub struct ResNet {
    stem_convs: Vec<Conv2d>,
    stem_bns: Vec<BatchNorm>,
    blocks: Vec<ResBlock>,
    /// Each block's name prefix, `layerS.B`.
    block_names: Vec<String>,
    num_features: usize,
}

impl ResNet {
    pub fn new(cfg: &ResNetConfig, drop_path_rate: f64, vb: VarBuilder) -> Result<Self> {
        let [s0, s1, s2] = cfg.stem;
        let stem = vb.pp("conv1");
        let stem_convs = vec![
            conv(3, s0, 3, 2, stem.pp("0"))?,
            conv(s0, s1, 3, 1, stem.pp("3"))?,
            conv(s1, s2, 3, 1, stem.pp("6"))?,
        ];
        let stem_bns = vec![
            bn(s0, stem.pp("1"))?,
            bn(s1, stem.pp("4"))?,
            bn(s2, vb.pp("bn1"))?,
        ];
        let total: usize = cfg.layers.iter().sum();
        let mut blocks = Vec::with_capacity(total);
        let mut block_names = Vec::with_capacity(total);
        let mut c_in = s2;
        let mut index = 0;
        for (stage, (&n, planes)) in cfg.layers.iter().zip([64, 128, 256, 512]).enumerate() {
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                // timm's linear stochastic-depth rule.
                let dpr = if total > 1 {
                    drop_path_rate * index as f64 / (total - 1) as f64
                } else {
                    0.0
                };
                let vb = vb.pp(format!("layer{}", stage + 1)).pp(b.to_string());
                block_names.push(vb.prefix());
                blocks.push(ResBlock::new(cfg.block, c_in, planes, stride, dpr, vb)?);
                c_in = planes * cfg.block.expansion();
                index += 1;
            }
        }
        Ok(Self {
            stem_convs,
            stem_bns,
            blocks,
            block_names,
            num_features: c_in,
        })
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The blocks' name prefixes in forward order (`layerS.B`).
    pub fn block_names(&self) -> &[String] {
        &self.block_names
    }

    /// The name prefixes of the layers before the first block (the deep stem).
    pub fn stem_prefixes(&self) -> [&'static str; 2] {
        ["conv1", "bn1"]
    }

    /// The stem, the max pool and the blocks before block `end`: the input of block `end` (or
    /// of the pooling when `end` is the number of blocks).
    pub fn forward_to(&self, x: &Tensor, end: usize, ctx: &Ctx) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv, bn) in self.stem_convs.iter().zip(&self.stem_bns) {
            x = bn.forward(&conv.forward(&x, ctx)?, Activation::Relu, ctx)?;
        }
        x = match ctx.backend {
            Backend::Fast => max_pool2d_nhwc(&x, 3, 2, 1)?,
            Backend::Candle => max_pool2d_composite(&x, 3, 2, 1, ctx.backend)?,
        };
        for block in &self.blocks[..end] {
            x = block.forward(&x, ctx)?;
        }
        Ok(x)
    }

    /// Pooled features from the input of block `start`: the remaining blocks and global
    /// average pooling.
    pub fn features_from(&self, x: &Tensor, start: usize, ctx: &Ctx) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.blocks[start..] {
            x = block.forward(&x, ctx)?;
        }
        global_avg_pool(&x, ctx.backend)
    }

    /// Pooled features `[B, C]` of an input in the backend's layout.
    pub fn features(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.features_from(&self.forward_to(x, 0, ctx)?, 0, ctx)
    }
}
