//! Depthwise convolution (groups = channels) on NHWC tensors with hand-written backward passes.
//!
//! candle runs a grouped convolution as one convolution per group, which for EfficientNet's
//! depthwise layers means hundreds of tiny convolutions. Here the channel is the innermost axis, so
//! each output pixel is a handful of vectorised multiply-adds over the channels.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::im2col::{Dims, Geometry};
use super::{REDUCE_ROWS, Real, contiguous_slice, dispatch_float};

/// Forward: `x [B, H, W, C]`, `wk [kh·kw, C]` → `[B, Ho, Wo, C]`.
struct Depthwise {
    g: Geometry,
}

/// Input gradient: `grad [B, Ho, Wo, C]`, `wk` → `[B, H, W, C]`.
struct DepthwiseGradInput {
    g: Geometry,
    d: Dims,
}

/// Weight gradient: `x`, `grad` → `[kh·kw, C]`.
struct DepthwiseGradWeight {
    g: Geometry,
}

fn check_kernel(g: &Geometry, c: usize, wl: &Layout) -> Result<()> {
    if wl.shape().dims2()? != (g.kh * g.kw, c) {
        candle_core::bail!(
            "depthwise: kernel {:?} does not match {}×{} over {c} channels",
            wl.shape(),
            g.kh,
            g.kw
        )
    }
    Ok(())
}

fn forward<T: Real>(g: &Geometry, d: &Dims, x: &[T], wk: &[T]) -> Vec<T> {
    let c = d.c;
    let mut out = vec![T::zero(); d.b * d.oh * d.ow * c];
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
                        let xs = &xrow[ix * c..][..c];
                        let ws = &wk[(ky * g.kw + kx) * c..][..c];
                        for ((o, x), w) in o.iter_mut().zip(xs).zip(ws) {
                            *o += *x * *w;
                        }
                    }
                }
            }
        });
    out
}

fn grad_input<T: Real>(g: &Geometry, d: &Dims, grad: &[T], wk: &[T]) -> Vec<T> {
    let c = d.c;
    let mut dx = vec![T::zero(); d.b * d.h * d.w * c];
    dx.par_chunks_mut(d.w * c)
        .enumerate()
        .for_each(|(row, dx)| {
            let (b, iy) = (row / d.h, row % d.h);
            for ky in 0..g.kh {
                let Some(oy) = g.dst(iy, ky, g.pad_top, d.oh) else {
                    continue;
                };
                let grow = &grad[(b * d.oh + oy) * d.ow * c..][..d.ow * c];
                for ox in 0..d.ow {
                    let gs = &grow[ox * c..][..c];
                    for kx in 0..g.kw {
                        let Some(ix) = g.src(ox, kx, g.pad_left, d.w) else {
                            continue;
                        };
                        let ws = &wk[(ky * g.kw + kx) * c..][..c];
                        for ((o, gv), w) in dx[ix * c..][..c].iter_mut().zip(gs).zip(ws) {
                            *o += *gv * *w;
                        }
                    }
                }
            }
        });
    dx
}

fn grad_weight<T: Real>(g: &Geometry, d: &Dims, x: &[T], grad: &[T]) -> Vec<T> {
    let c = d.c;
    let kk = g.kh * g.kw;
    let rows = d.b * d.oh;
    // Fixed-size groups of output rows, partial sums in order: the same result on any thread count.
    let per_task = REDUCE_ROWS.div_ceil(d.ow).max(1);
    let partials: Vec<Vec<T>> = (0..rows.div_ceil(per_task))
        .into_par_iter()
        .map(|task| {
            let mut acc = vec![T::zero(); kk * c];
            for row in task * per_task..((task + 1) * per_task).min(rows) {
                let (b, oy) = (row / d.oh, row % d.oh);
                for ky in 0..g.kh {
                    let Some(iy) = g.src(oy, ky, g.pad_top, d.h) else {
                        continue;
                    };
                    let xrow = &x[(b * d.h + iy) * d.w * c..][..d.w * c];
                    for ox in 0..d.ow {
                        let gs = &grad[((b * d.oh + oy) * d.ow + ox) * c..][..c];
                        for kx in 0..g.kw {
                            let Some(ix) = g.src(ox, kx, g.pad_left, d.w) else {
                                continue;
                            };
                            let a = &mut acc[(ky * g.kw + kx) * c..][..c];
                            for ((a, xv), gv) in a.iter_mut().zip(&xrow[ix * c..][..c]).zip(gs) {
                                *a += *xv * *gv;
                            }
                        }
                    }
                }
            }
            acc
        })
        .collect();
    let mut total = vec![T::zero(); kk * c];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-nhwc"
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
            check_kernel(g, d.c, l2)?;
            let x = contiguous_slice::<T>(s1, l1, "depthwise")?;
            let wk = contiguous_slice::<T>(s2, l2, "depthwise")?;
            let out = forward(g, &d, x, wk);
            Ok((
                T::to_cpu_storage_owned(out),
                Shape::from((d.b, d.oh, d.ow, d.c)),
            ))
        }
        dispatch_float!("depthwise", s1, run(&self.g, s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wk: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = Dims::of(x.shape(), &self.g)?;
        let grad = grad.contiguous()?;
        let dx = grad.apply_op2_no_bwd(wk, &DepthwiseGradInput { g: self.g, d })?;
        let dw = x.apply_op2_no_bwd(&grad, &DepthwiseGradWeight { g: self.g })?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp2 for DepthwiseGradInput {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-nhwc-grad-input"
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
            d: &Dims,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            if l1.shape().dims4()? != (d.b, d.oh, d.ow, d.c) {
                candle_core::bail!("depthwise grad: unexpected gradient shape {:?}", l1.shape())
            }
            check_kernel(g, d.c, l2)?;
            let grad = contiguous_slice::<T>(s1, l1, "depthwise grad")?;
            let wk = contiguous_slice::<T>(s2, l2, "depthwise grad")?;
            let dx = grad_input(g, d, grad, wk);
            Ok((
                T::to_cpu_storage_owned(dx),
                Shape::from((d.b, d.h, d.w, d.c)),
            ))
        }
        dispatch_float!("depthwise grad", s1, run(&self.g, &self.d, s1, l1, s2, l2))
    }
}

impl CustomOp2 for DepthwiseGradWeight {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-nhwc-grad-weight"
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
                candle_core::bail!("depthwise grad: unexpected gradient shape {:?}", l2.shape())
            }
            let x = contiguous_slice::<T>(s1, l1, "depthwise grad")?;
            let grad = contiguous_slice::<T>(s2, l2, "depthwise grad")?;
            let dw = grad_weight(g, &d, x, grad);
            Ok((T::to_cpu_storage_owned(dw), Shape::from((g.kh * g.kw, d.c))))
        }
        dispatch_float!("depthwise grad", s1, run(&self.g, s1, l1, s2, l2))
    }
}

/// Depthwise convolution of an NHWC input `[B, H, W, C]` with a PyTorch-layout weight
/// `[C, 1, kh, kw]`, returning NHWC. Differentiable in both arguments.
pub fn depthwise_conv2d_nhwc(x: &Tensor, weight: &Tensor, g: &Geometry) -> Result<Tensor> {
    let (c, one, kh, kw) = weight.dims4()?;
    if one != 1 || kh != g.kh || kw != g.kw || x.dim(3)? != c {
        candle_core::bail!(
            "depthwise_conv2d_nhwc: input {:?} and weight {:?} do not match {g:?}",
            x.shape(),
            weight.shape()
        )
    }
    // [C, 1, kh, kw] -> [kh·kw, C]: channels innermost, like the activations.
    let wk = weight.reshape((c, kh * kw))?.t()?.contiguous()?;
    x.contiguous()?.apply_op2(&wk, Depthwise { g: *g })
}
