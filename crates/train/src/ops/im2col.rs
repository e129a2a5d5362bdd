//! `im2col` / `col2im` for NHWC tensors, and the k×k convolution built on them.
//!
//! `im2col` turns `[B, H, W, C]` into the patch matrix `[B·Ho·Wo, kh·kw·C]` (patch order ky, kx, c),
//! so that a convolution is one matrix product with the weight seen as `[kh·kw·C, Cout]`. Its
//! backward pass is `col2im` (sum each patch entry back into the pixel it came from) and the
//! backward pass of `col2im` is `im2col`, so the convolution's gradients are matrix products plus one
//! `col2im`, all through candle's autograd.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{Real, contiguous_slice, dispatch_float};

/// Kernel size, stride and (possibly asymmetric) zero padding of a 2-d window op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_bottom: usize,
    pub pad_left: usize,
    pub pad_right: usize,
}

impl Geometry {
    /// A square kernel with the same padding on every side.
    pub fn square(k: usize, stride: usize, pad: usize) -> Self {
        Self {
            kh: k,
            kw: k,
            stride,
            pad_top: pad,
            pad_bottom: pad,
            pad_left: pad,
            pad_right: pad,
        }
    }

    pub fn is_symmetric(&self) -> bool {
        self.pad_top == self.pad_bottom
            && self.pad_left == self.pad_right
            && self.pad_top == self.pad_left
    }

    /// Output size for an input of `h × w`.
    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (ph, pw) = (
            h + self.pad_top + self.pad_bottom,
            w + self.pad_left + self.pad_right,
        );
        if ph < self.kh || pw < self.kw || self.stride == 0 {
            candle_core::bail!("window {self:?} does not fit an input of {h}×{w}")
        }
        Ok((
            (ph - self.kh) / self.stride + 1,
            (pw - self.kw) / self.stride + 1,
        ))
    }

    /// Input coordinate of output `o` and kernel offset `k` along one axis, if inside the input.
    #[inline]
    pub(crate) fn src(&self, o: usize, k: usize, pad: usize, size: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(pad).filter(|&i| i < size)
    }

    /// Output coordinate whose window puts kernel offset `k` on input `i`, if any.
    #[inline]
    pub(crate) fn dst(&self, i: usize, k: usize, pad: usize, out: usize) -> Option<usize> {
        let t = (i + pad).checked_sub(k)?;
        (t % self.stride == 0 && t / self.stride < out).then_some(t / self.stride)
    }
}

/// Dimensions of an NHWC window op: input `[b, h, w, c]`, output `[b, oh, ow, ..]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub b: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Dims {
    pub(crate) fn of(shape: &Shape, g: &Geometry) -> Result<Self> {
        let (b, h, w, c) = shape.dims4()?;
        let (oh, ow) = g.out_hw(h, w)?;
        Ok(Self {
            b,
            h,
            w,
            c,
            oh,
            ow,
        })
    }
}

struct Im2Col {
    g: Geometry,
}

struct Col2Im {
    g: Geometry,
    d: Dims,
}

fn im2col<T: Real>(g: &Geometry, d: &Dims, src: &[T]) -> Vec<T> {
    let k = g.kh * g.kw * d.c;
    let mut dst = vec![T::zero(); d.b * d.oh * d.ow * k];
    dst.par_chunks_mut(d.ow * k)
        .enumerate()
        .for_each(|(row, out)| {
            let (b, oy) = (row / d.oh, row % d.oh);
            for ox in 0..d.ow {
                let patch = &mut out[ox * k..(ox + 1) * k];
                for ky in 0..g.kh {
                    let iy = g.src(oy, ky, g.pad_top, d.h);
                    for kx in 0..g.kw {
                        let seg = &mut patch[(ky * g.kw + kx) * d.c..][..d.c];
                        match (iy, g.src(ox, kx, g.pad_left, d.w)) {
                            (Some(iy), Some(ix)) => {
                                seg.copy_from_slice(&src[((b * d.h + iy) * d.w + ix) * d.c..][..d.c])
                            }
                            _ => seg.fill(T::zero()),
                        }
                    }
                }
            }
        });
    dst
}

fn col2im<T: Real>(g: &Geometry, d: &Dims, cols: &[T]) -> Vec<T> {
    let k = g.kh * g.kw * d.c;
    let mut dst = vec![T::zero(); d.b * d.h * d.w * d.c];
    // One task per input row: it gathers from every patch that covers the row, so no two tasks
    // write the same place and the summation order is fixed.
    dst.par_chunks_mut(d.w * d.c)
        .enumerate()
        .for_each(|(row, out)| {
            let (b, iy) = (row / d.h, row % d.h);
            for ky in 0..g.kh {
                let Some(oy) = g.dst(iy, ky, g.pad_top, d.oh) else {
                    continue;
                };
                for ox in 0..d.ow {
                    let patch = &cols[((b * d.oh + oy) * d.ow + ox) * k..][..k];
                    for kx in 0..g.kw {
                        let Some(ix) = g.src(ox, kx, g.pad_left, d.w) else {
                            continue;
                        };
                        let seg = &patch[(ky * g.kw + kx) * d.c..][..d.c];
                        for (o, s) in out[ix * d.c..][..d.c].iter_mut().zip(seg) {
                            *o += *s;
                        }
                    }
                }
            }
        });
    dst
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(g: &Geometry, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let d = Dims::of(l.shape(), g)?;
            let src = contiguous_slice::<T>(s, l, "im2col")?;
            let out = im2col(g, &d, src);
            let shape = Shape::from((d.b * d.oh * d.ow, g.kh * g.kw * d.c));
            Ok((T::to_cpu_storage_owned(out), shape))
        }
        dispatch_float!("im2col", s, run(&self.g, s, l))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = Dims::of(arg.shape(), &self.g)?;
        Ok(Some(
            grad.contiguous()?
                .apply_op1(Col2Im { g: self.g, d })?,
        ))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            g: &Geometry,
            d: &Dims,
            s: &CpuStorage,
            l: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let want = (d.b * d.oh * d.ow, g.kh * g.kw * d.c);
            if l.shape().dims2()? != want {
                candle_core::bail!("col2im: expected {want:?}, got {:?}", l.shape())
            }
            let cols = contiguous_slice::<T>(s, l, "col2im")?;
            let out = col2im(g, d, cols);
            Ok((T::to_cpu_storage_owned(out), Shape::from((d.b, d.h, d.w, d.c))))
        }
        dispatch_float!("col2im", s, run(&self.g, &self.d, s, l))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(im2col_nhwc(grad, &self.g)?))
    }
}

/// `[B, H, W, C]` → patch matrix `[B·Ho·Wo, kh·kw·C]`, differentiable.
pub fn im2col_nhwc(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Im2Col { g: *g })
}

/// The inverse arrangement of [`im2col_nhwc`]: sums each patch entry into its pixel of a
/// `[b, h, w, c]` tensor. Differentiable.
pub fn col2im_nhwc(cols: &Tensor, g: &Geometry, bhwc: (usize, usize, usize, usize)) -> Result<Tensor> {
    let (b, h, w, c) = bhwc;
    let (oh, ow) = g.out_hw(h, w)?;
    let d = Dims { b, h, w, c, oh, ow };
    cols.contiguous()?.apply_op1(Col2Im { g: *g, d })
}

/// A dense (groups = 1) convolution of an NHWC input with a PyTorch-layout weight
/// `[Cout, Cin, kh, kw]`, returning NHWC. 1×1 stride-1 unpadded convolutions are a single matrix
/// product; the others go through [`im2col_nhwc`]. Differentiable in both arguments.
pub fn conv2d_nhwc(x: &Tensor, weight: &Tensor, g: &Geometry) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let (c_out, c_in, kh, kw) = weight.dims4()?;
    if c_in != c || kh != g.kh || kw != g.kw {
        candle_core::bail!(
            "conv2d_nhwc: input {:?} and weight {:?} do not match {g:?}",
            x.shape(),
            weight.shape()
        )
    }
    let (oh, ow) = g.out_hw(h, w)?;
    let pointwise = kh == 1 && kw == 1 && g.stride == 1 && g == &Geometry::square(1, 1, 0);
    let out = if pointwise {
        let w2 = weight.reshape((c_out, c_in))?;
        x.reshape((b * h * w, c))?.matmul(&w2.t()?)?
    } else {
        // [Cout, Cin, kh, kw] -> [Cout, kh, kw, Cin] to match the patch order.
        let w2 = weight
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((c_out, kh * kw * c_in))?;
        im2col_nhwc(x, g)?.matmul(&w2.t()?)?
    };
    out.reshape((b, oh, ow, c_out))
}
