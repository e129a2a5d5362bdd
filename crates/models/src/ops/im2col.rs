//! `im2col` / `col2im` for NHWC tensors, and the convolution built on them.
//!
//! `im2col` turns `[B, H, W, C]` into the patch matrix `[B·Ho·Wo, kh·kw·C]` (patch order ky, kx, c),
//! so that a convolution is one matrix product with the weight seen as `[kh·kw·C, Cout]`. Its
//! transpose is `col2im` (sum each patch entry back into the pixel it came from), so the
//! convolution's gradients are matrix products plus one `col2im`. [`im2col_nhwc`] and
//! [`col2im_nhwc`] are also differentiable ops on their own (each the other's backward pass).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{Mat, matmul};
use super::{Real, contiguous_slice, dispatch_float, with_slices};

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
        Ok(Self { b, h, w, c, oh, ow })
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
                            (Some(iy), Some(ix)) => seg
                                .copy_from_slice(&src[((b * d.h + iy) * d.w + ix) * d.c..][..d.c]),
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
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im { g: self.g, d })?))
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
            Ok((
                T::to_cpu_storage_owned(out),
                Shape::from((d.b, d.h, d.w, d.c)),
            ))
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
pub fn col2im_nhwc(
    cols: &Tensor,
    g: &Geometry,
    bhwc: (usize, usize, usize, usize),
) -> Result<Tensor> {
    let (b, h, w, c) = bhwc;
    let (oh, ow) = g.out_hw(h, w)?;
    let d = Dims { b, h, w, c, oh, ow };
    cols.contiguous()?.apply_op1(Col2Im { g: *g, d })
}

/// A dense convolution as one op: forward `im2col` + one matrix product (a 1×1 stride-1 unpadded
/// convolution needs no `im2col`: its input is the patch matrix); backward two matrix products
/// (weight gradient from the recomputed patches, patch gradient from the weight) and `col2im`.
/// One graph node, so candle's autograd adds no per-node copies on the large activations.
struct Conv {
    g: Geometry,
}

fn pointwise(g: &Geometry) -> bool {
    *g == Geometry::square(1, 1, 0)
}

/// `[Cout, Cin, kh, kw]` → `[Cout, kh·kw·Cin]` (the patch order).
fn weight_rows<T: Real>(w: &[T], c_out: usize, c_in: usize, kk: usize) -> Vec<T> {
    let mut out = vec![T::zero(); w.len()];
    for n in 0..c_out {
        for c in 0..c_in {
            for k in 0..kk {
                out[(n * kk + k) * c_in + c] = w[(n * c_in + c) * kk + k];
            }
        }
    }
    out
}

/// The inverse of [`weight_rows`].
fn weight_unrows<T: Real>(wk: &[T], c_out: usize, c_in: usize, kk: usize) -> Vec<T> {
    let mut out = vec![T::zero(); wk.len()];
    for n in 0..c_out {
        for c in 0..c_in {
            for k in 0..kk {
                out[(n * c_in + c) * kk + k] = wk[(n * kk + k) * c_in + c];
            }
        }
    }
    out
}

fn conv_forward<T: Real>(g: &Geometry, d: &Dims, x: &[T], w: &[T], c_out: usize) -> Vec<T> {
    let kk = g.kh * g.kw;
    let k = kk * d.c;
    let m = d.b * d.oh * d.ow;
    let wk = weight_rows(w, c_out, d.c, kk);
    let patches;
    let cols: &[T] = if pointwise(g) {
        x
    } else {
        patches = im2col(g, d, x);
        &patches
    };
    let mut out = vec![T::zero(); m * c_out];
    matmul(
        Mat::rows(cols, m, k),
        Mat::rows(&wk, c_out, k).t(),
        &mut out,
    );
    out
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-nhwc"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            g: &Geometry,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let d = Dims::of(l1.shape(), g)?;
            let (c_out, c_in, kh, kw) = l2.shape().dims4()?;
            if c_in != d.c || kh != g.kh || kw != g.kw {
                candle_core::bail!(
                    "conv2d_nhwc: input {:?} and weight {:?} do not match {g:?}",
                    l1.shape(),
                    l2.shape()
                )
            }
            let x = contiguous_slice::<T>(s1, l1, "conv2d")?;
            let w = contiguous_slice::<T>(s2, l2, "conv2d")?;
            let out = conv_forward(g, &d, x, w, c_out);
            Ok((
                T::to_cpu_storage_owned(out),
                Shape::from((d.b, d.oh, d.ow, c_out)),
            ))
        }
        dispatch_float!("conv2d", s1, run(&self.g, s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(
            g: &Geometry,
            x: &Tensor,
            w: &Tensor,
            grad: &Tensor,
        ) -> Result<(Option<Tensor>, Option<Tensor>)> {
            let d = Dims::of(x.shape(), g)?;
            let (c_out, c_in, _, _) = w.dims4()?;
            let kk = g.kh * g.kw;
            let k = kk * c_in;
            let m = d.b * d.oh * d.ow;
            let (need_dx, need_dw) = (x.track_op(), w.track_op());
            let w = w.contiguous()?;
            let grad = grad.contiguous()?;
            let (dx, dw) = with_slices::<T, _>(&[x, &w, &grad], |s| {
                let (x, w, gr) = (s[0], s[1], s[2]);
                let dx = need_dx.then(|| {
                    let wk = weight_rows(w, c_out, c_in, kk);
                    let mut dcols = vec![T::zero(); m * k];
                    matmul(
                        Mat::rows(gr, m, c_out),
                        Mat::rows(&wk, c_out, k),
                        &mut dcols,
                    );
                    if pointwise(g) {
                        dcols
                    } else {
                        col2im(g, &d, &dcols)
                    }
                });
                let dw = need_dw.then(|| {
                    let patches;
                    let cols: &[T] = if pointwise(g) {
                        x
                    } else {
                        patches = im2col(g, &d, x);
                        &patches
                    };
                    let mut dwk = vec![T::zero(); c_out * k];
                    matmul(Mat::rows(gr, m, c_out).t(), Mat::rows(cols, m, k), &mut dwk);
                    weight_unrows(&dwk, c_out, c_in, kk)
                });
                (dx, dw)
            })?;
            let dev = x.device();
            let dx = dx
                .map(|v| Tensor::from_vec(v, x.shape(), dev))
                .transpose()?;
            let dw = dw
                .map(|v| Tensor::from_vec(v, w.shape(), dev))
                .transpose()?;
            Ok((dx, dw))
        }
        match x.dtype() {
            DType::F32 => run::<f32>(&self.g, x, w, grad),
            DType::F64 => run::<f64>(&self.g, x, w, grad),
            other => candle_core::bail!("conv2d backward: unsupported dtype {other:?}"),
        }
    }
}

/// A dense (groups = 1) convolution of an NHWC input with a PyTorch-layout weight
/// `[Cout, Cin, kh, kw]`, returning NHWC. Differentiable in both arguments.
pub fn conv2d_nhwc(x: &Tensor, weight: &Tensor, g: &Geometry) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv { g: *g })
}
