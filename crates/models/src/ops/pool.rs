//! Pooling: max pooling with padding and overlapping windows (differentiable, unlike candle's
//! `max_pool2d` when kernel ≠ stride), timm's 2×2 average-pool downsample, global average pooling.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::im2col::{Dims, Geometry};
use super::{Backend, Real, contiguous_slice, dispatch_float};

/// Max pooling of NHWC tensors; padding counts as -∞, as in PyTorch.
struct MaxPool {
    g: Geometry,
}

/// Its input gradient: each output's gradient goes to the first maximum of its window (scan order
/// ky, kx), as in PyTorch.
struct MaxPoolGrad {
    g: Geometry,
}

fn max_pool<T: Real>(g: &Geometry, d: &Dims, x: &[T]) -> Vec<T> {
    let c = d.c;
    let mut out = vec![T::NEG_INFINITY; d.b * d.oh * d.ow * c];
    out.par_chunks_mut(d.ow * c)
        .enumerate()
        .for_each(|(row, out)| {
            let (b, oy) = (row / d.oh, row % d.oh);
            for ky in 0..g.kh {
                let Some(iy) = g.src(oy, ky, g.pad_top, d.h) else {
                    continue;
                };
                let xrow = &x[(b * d.h + iy) * d.w * c..][..d.w * c];
                for ox in 0..d.ow {
                    let o = &mut out[ox * c..][..c];
                    for kx in 0..g.kw {
                        let Some(ix) = g.src(ox, kx, g.pad_left, d.w) else {
                            continue;
                        };
                        for (o, v) in o.iter_mut().zip(&xrow[ix * c..][..c]) {
                            if *v > *o {
                                *o = *v;
                            }
                        }
                    }
                }
            }
        });
    out
}

fn max_pool_grad<T: Real>(g: &Geometry, d: &Dims, x: &[T], grad: &[T]) -> Vec<T> {
    let c = d.c;
    let mut dx = vec![T::zero(); d.b * d.h * d.w * c];
    // Windows overlap, so one task per image: each writes only its own image.
    dx.par_chunks_mut(d.h * d.w * c)
        .enumerate()
        .for_each(|(b, dx)| {
            let x = &x[b * d.h * d.w * c..][..d.h * d.w * c];
            let mut best = vec![T::NEG_INFINITY; c];
            let mut arg = vec![usize::MAX; c];
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    best.fill(T::NEG_INFINITY);
                    arg.fill(usize::MAX);
                    for ky in 0..g.kh {
                        let Some(iy) = g.src(oy, ky, g.pad_top, d.h) else {
                            continue;
                        };
                        for kx in 0..g.kw {
                            let Some(ix) = g.src(ox, kx, g.pad_left, d.w) else {
                                continue;
                            };
                            let base = (iy * d.w + ix) * c;
                            for ch in 0..c {
                                let v = x[base + ch];
                                if v > best[ch] || arg[ch] == usize::MAX {
                                    best[ch] = v;
                                    arg[ch] = base + ch;
                                }
                            }
                        }
                    }
                    let gs = &grad[((b * d.oh + oy) * d.ow + ox) * c..][..c];
                    for (a, gv) in arg.iter().zip(gs) {
                        if *a != usize::MAX {
                            dx[*a] += *gv;
                        }
                    }
                }
            }
        });
    dx
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool2d-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(g: &Geometry, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let d = Dims::of(l.shape(), g)?;
            let x = contiguous_slice::<T>(s, l, "max-pool")?;
            let out = max_pool(g, &d, x);
            Ok((
                T::to_cpu_storage_owned(out),
                Shape::from((d.b, d.oh, d.ow, d.c)),
            ))
        }
        dispatch_float!("max-pool", s, run(&self.g, s, l))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(&grad, &MaxPoolGrad { g: self.g })?))
    }
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool2d-nhwc-grad"
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
            if l2.shape().dims4()? != (d.b, d.oh, d.ow, d.c) {
                candle_core::bail!("max-pool grad: unexpected gradient shape {:?}", l2.shape())
            }
            let x = contiguous_slice::<T>(s1, l1, "max-pool grad")?;
            let grad = contiguous_slice::<T>(s2, l2, "max-pool grad")?;
            let dx = max_pool_grad(g, &d, x, grad);
            Ok((T::to_cpu_storage_owned(dx), l1.shape().clone()))
        }
        dispatch_float!("max-pool grad", s1, run(&self.g, s1, l1, s2, l2))
    }
}

/// Max pooling of an NHWC tensor with a `k×k` window, stride and symmetric padding (padding is
/// -∞). The fast CPU kernel; differentiable.
pub fn max_pool2d_nhwc(x: &Tensor, k: usize, stride: usize, pad: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool {
        g: Geometry::square(k, stride, pad),
    })
}

/// Every-element-strided view along `axis`: elements `start, start + stride, ...`, `count` of
/// them. Built from `narrow` and `reshape`, so differentiable on any device.
fn strided(x: &Tensor, axis: usize, start: usize, stride: usize, count: usize) -> Result<Tensor> {
    let x = x.narrow(axis, start, stride * count)?;
    if stride == 1 {
        return Ok(x);
    }
    let mut dims = x.dims().to_vec();
    dims[axis] = count;
    dims.insert(axis + 1, stride);
    x.contiguous()?
        .reshape(dims)?
        .narrow(axis + 1, 0, 1)?
        .squeeze(axis + 1)
}

/// Pads `axis` with `before` and `after` entries of `value`.
fn pad_value(x: &Tensor, axis: usize, before: usize, after: usize, value: f64) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(3);
    let mut dims = x.dims().to_vec();
    if before > 0 {
        dims[axis] = before;
        parts.push(Tensor::full(value, dims.as_slice(), x.device())?.to_dtype(x.dtype())?);
    }
    parts.push(x.clone());
    if after > 0 {
        dims[axis] = after;
        parts.push(Tensor::full(value, dims.as_slice(), x.device())?.to_dtype(x.dtype())?);
    }
    Tensor::cat(&parts, axis)
}

/// Max pooling with a `k×k` window, stride and symmetric padding in the layout of `backend`,
/// composed of candle ops (pad with -∞, take the k² strided shifted views, fold with `maximum`),
/// so that it is differentiable on every device. Exactly PyTorch's `MaxPool2d(k, stride, pad)`.
pub fn max_pool2d_composite(
    x: &Tensor,
    k: usize,
    stride: usize,
    pad: usize,
    backend: Backend,
) -> Result<Tensor> {
    let (ha, wa) = backend.spatial_axes();
    let (h, w) = (x.dim(ha)?, x.dim(wa)?);
    let g = Geometry::square(k, stride, pad);
    let (oh, ow) = g.out_hw(h, w)?;
    // Pad so that every shifted view has room for `stride · out` entries; the extra entries past
    // the PyTorch padding are never selected.
    let need = |out: usize| (k - 1) + stride * out;
    let x = pad_value(
        x,
        ha,
        pad,
        need(oh).saturating_sub(h + pad),
        f64::NEG_INFINITY,
    )?;
    let x = pad_value(
        &x,
        wa,
        pad,
        need(ow).saturating_sub(w + pad),
        f64::NEG_INFINITY,
    )?;
    let mut acc: Option<Tensor> = None;
    for ky in 0..k {
        let rows = strided(&x, ha, ky, stride, oh)?;
        for kx in 0..k {
            let view = strided(&rows, wa, kx, stride, ow)?;
            acc = Some(match acc {
                None => view,
                Some(a) => a.maximum(&view)?,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("max pool: empty window".into()))
}

/// timm's average-pool downsample: `AvgPool2d(2, stride 2, ceil_mode=True,
/// count_include_pad=False)` in the layout of `backend`. On odd sizes the last window covers one
/// row or column and is averaged over the elements it has. Differentiable on every device.
pub fn avg_pool2x2_ceil(x: &Tensor, backend: Backend) -> Result<Tensor> {
    let (ha, wa) = backend.spatial_axes();
    let (h, w) = (x.dim(ha)?, x.dim(wa)?);
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let x = pad_value(x, ha, 0, oh * 2 - h, 0.0)?;
    let x = pad_value(&x, wa, 0, ow * 2 - w, 0.0)?;
    let mut dims = x.dims().to_vec();
    // Split each spatial axis into (out, 2) and sum over the pairs.
    dims[wa] = ow;
    dims.insert(wa + 1, 2);
    dims[ha] = oh;
    dims.insert(ha + 1, 2);
    let summed = x.contiguous()?.reshape(dims)?.sum(wa + 2)?.sum(ha + 1)?;
    if h % 2 == 0 && w % 2 == 0 {
        return summed.affine(0.25, 0.0);
    }
    // Elements per window: 4 inside, 2 on the odd last row or column, 1 in the odd corner.
    let counts: Vec<f32> = (0..oh)
        .flat_map(|y| {
            (0..ow).map(move |xx| {
                let ry = if 2 * y + 1 < h { 2.0 } else { 1.0 };
                let rx = if 2 * xx + 1 < w { 2.0 } else { 1.0 };
                1.0 / (ry * rx)
            })
        })
        .collect();
    let mut shape = vec![1usize; summed.rank()];
    shape[ha] = oh;
    shape[wa] = ow;
    let scale = Tensor::from_vec(counts, shape, summed.device())?.to_dtype(summed.dtype())?;
    summed.broadcast_mul(&scale)
}

/// Global average pooling to `[B, C]` from a 4-d activation in the layout of `backend`.
pub fn global_avg_pool(x: &Tensor, backend: Backend) -> Result<Tensor> {
    match backend {
        Backend::Candle => x.flatten_from(2)?.mean(D::Minus1),
        Backend::Fast => {
            let (b, h, w, c) = x.dims4()?;
            x.reshape((b, h * w, c))?.mean(1)
        }
    }
}
