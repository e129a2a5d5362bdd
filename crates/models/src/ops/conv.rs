//! The 2-d convolution layer: PyTorch weight layout and names, either backend.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::{Backend, Geometry, conv2d_nhwc, depthwise_conv2d_nhwc};
use crate::models::Ctx;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The same number of zeros on every side (PyTorch's `padding=p`).
    Symmetric(usize),
    /// TensorFlow's `SAME`: output size `ceil(input / stride)`, the odd zero at the bottom and
    /// right (what EfficientNet ports from TensorFlow need).
    Same,
}

/// A bias-free convolution with a `[c_out, c_in / groups, k, k]` weight named `weight`, as
/// PyTorch's `nn.Conv2d(..., bias=False)` (every convolution of the zoo is followed by a batch norm).
#[derive(Debug)]
pub struct Conv2d {
    name: String,
    weight: Tensor,
    k: usize,
    stride: usize,
    padding: Padding,
    groups: usize,
}

impl Conv2d {
    /// A bias-free convolution whose weight is initialised from a normal distribution with
    /// standard deviation `std`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        groups: usize,
        std: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        if groups == 0 || c_in % groups != 0 || c_out % groups != 0 {
            candle_core::bail!(
                "conv {}: {c_in} → {c_out} channels in {groups} groups",
                vb.prefix()
            )
        }
        let weight = vb.get_with_hints(
            (c_out, c_in / groups, k, k),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        Ok(Self {
            name: vb.prefix(),
            weight,
            k,
            stride,
            padding,
            groups,
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The window geometry for an input of `h × w`.
    pub fn geometry(&self, h: usize, w: usize) -> Geometry {
        match self.padding {
            Padding::Symmetric(p) => Geometry::square(self.k, self.stride, p),
            Padding::Same => {
                let total = |i: usize| {
                    let out = i.div_ceil(self.stride);
                    ((out - 1) * self.stride + self.k).saturating_sub(i)
                };
                let (th, tw) = (total(h), total(w));
                Geometry {
                    kh: self.k,
                    kw: self.k,
                    stride: self.stride,
                    pad_top: th / 2,
                    pad_bottom: th - th / 2,
                    pad_left: tw / 2,
                    pad_right: tw - tw / 2,
                }
            }
        }
    }

    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let frozen = ctx.is_frozen(&self.name);
        let w = ctx.param(&self.weight, frozen);
        let (ha, wa) = ctx.backend.spatial_axes();
        let g = self.geometry(x.dim(ha)?, x.dim(wa)?);
        let c_in = x.dim(ctx.backend.channel_axis())?;
        match ctx.backend {
            Backend::Candle => candle_conv(x, &w, &g, self.groups),
            Backend::Fast if self.groups == 1 => conv2d_nhwc(x, &w, &g),
            Backend::Fast if self.groups == c_in && w.dim(0)? == c_in => {
                depthwise_conv2d_nhwc(x, &w, &g)
            }
            Backend::Fast => {
                // Other grouped convolutions: none of the zoo's models has one.
                let y = candle_conv(&x.permute((0, 3, 1, 2))?, &w, &g, self.groups)?;
                y.permute((0, 2, 3, 1))?.contiguous()
            }
        }
    }
}

/// candle's own convolution on NCHW, with the padding done first when it is asymmetric.
fn candle_conv(x: &Tensor, w: &Tensor, g: &Geometry, groups: usize) -> Result<Tensor> {
    if g.is_symmetric() {
        x.conv2d(w, g.pad_top, g.stride, 1, groups)
    } else {
        let x = x
            .pad_with_zeros(2, g.pad_top, g.pad_bottom)?
            .pad_with_zeros(3, g.pad_left, g.pad_right)?;
        x.conv2d(w, 0, g.stride, 1, groups)
    }
}
