//! Batch normalisation with train and eval modes, running statistics, and an optional fused
//! activation.
//!
//! In training mode the batch statistics normalise the input and update the running mean and
//! (unbiased) variance with PyTorch's momentum rule; in eval mode, or when the layer is frozen,
//! the running statistics normalise it. Names follow PyTorch: `weight`, `bias`, `running_mean`,
//! `running_var`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use super::{Backend, REDUCE_ROWS, Real, contiguous_slice, dispatch_float, with_slices};
use crate::models::Ctx;

/// The activation applied after a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Relu6,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::None => Ok(x.clone()),
            Self::Relu => x.relu(),
            Self::Relu6 => x.clamp(0f32, 6f32),
        }
    }
}

/// A batch-norm layer. `forward` normalises over every axis but the backend's channel axis.
#[derive(Debug)]
pub struct BatchNorm {
    name: String,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// `eps` as in PyTorch (1e-5 by default, 1e-3 in TensorFlow ports); `momentum` is PyTorch's
    /// (the weight of the new batch statistic, 0.1 by default); `gamma` initialises the scale.
    pub fn new(
        channels: usize,
        eps: f64,
        momentum: f64,
        gamma: Init,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", gamma)?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        Ok(Self {
            name: vb.prefix(),
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps,
            momentum,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// `act(bn(x))`. Uses batch statistics (and updates the running ones) when `ctx.train` and
    /// the layer is not frozen.
    pub fn forward(&self, x: &Tensor, act: Activation, ctx: &Ctx) -> Result<Tensor> {
        self.forward_inner(x, None, act, ctx)
    }

    /// `act(bn(x) + residual)`, fused on the fast backend.
    pub fn forward_add(
        &self,
        x: &Tensor,
        residual: &Tensor,
        act: Activation,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        self.forward_inner(x, Some(residual), act, ctx)
    }

    fn forward_inner(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        act: Activation,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let frozen = ctx.is_frozen(&self.name);
        let train = ctx.train && !frozen;
        let weight = ctx.param(&self.weight, frozen);
        let bias = ctx.param(&self.bias, frozen);
        if ctx.backend == Backend::Fast
            && x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
        {
            return self.forward_fused(x, &weight, &bias, residual, act, train);
        }
        let y = if train {
            self.forward_train_composite(x, &weight, &bias, ctx.backend)?
        } else {
            self.forward_eval_composite(x, &weight, &bias, ctx.backend)?
        };
        match residual {
            Some(r) => act.apply(&(y + r)?),
            None => act.apply(&y),
        }
    }

    fn broadcast_shape(&self, x: &Tensor, backend: Backend) -> Vec<usize> {
        let mut shape = vec![1; x.rank()];
        shape[backend.channel_axis().min(x.rank() - 1)] =
            x.dim(backend.channel_axis().min(x.rank() - 1)).unwrap_or(1);
        shape
    }

    fn reduce_axes(x: &Tensor, backend: Backend) -> Vec<usize> {
        let c = backend.channel_axis().min(x.rank() - 1);
        (0..x.rank()).filter(|&a| a != c).collect()
    }

    fn forward_train_composite(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        backend: Backend,
    ) -> Result<Tensor> {
        let axes = Self::reduce_axes(x, backend);
        let n = axes
            .iter()
            .map(|&a| x.dim(a).unwrap_or(1))
            .product::<usize>();
        let shape = self.broadcast_shape(x, backend);
        let mean = x.mean_keepdim(axes.as_slice())?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(axes.as_slice())?;
        self.update_running(
            &mean.detach().flatten_all()?,
            &var.detach().flatten_all()?,
            n,
        )?;
        let y = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        y.broadcast_mul(&w.reshape(shape.as_slice())?)?
            .broadcast_add(&b.reshape(shape.as_slice())?)
    }

    fn forward_eval_composite(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        backend: Backend,
    ) -> Result<Tensor> {
        let shape = self.broadcast_shape(x, backend);
        let dtype = x.dtype();
        let mean = self.running_mean.as_detached_tensor().to_dtype(dtype)?;
        let var = self.running_var.as_detached_tensor().to_dtype(dtype)?;
        let scale = (w / (var + self.eps)?.sqrt()?)?;
        let shift = (b - (&mean * &scale)?)?;
        x.broadcast_mul(&scale.reshape(shape.as_slice())?)?
            .broadcast_add(&shift.reshape(shape.as_slice())?)
    }

    /// PyTorch's rule: `running = (1 - momentum) · running + momentum · batch`, with the unbiased
    /// batch variance.
    fn update_running(&self, mean: &Tensor, biased_var: &Tensor, n: usize) -> Result<()> {
        let m = self.momentum;
        let unbias = if n > 1 {
            n as f64 / (n as f64 - 1.0)
        } else {
            1.0
        };
        let dtype = self.running_mean.dtype();
        let rm = self.running_mean.as_detached_tensor();
        let rv = self.running_var.as_detached_tensor();
        let new_mean = ((rm * (1.0 - m))? + (mean.to_dtype(dtype)? * m)?)?;
        let new_var = ((rv * (1.0 - m))? + (biased_var.to_dtype(dtype)? * (m * unbias))?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)
    }

    fn forward_fused(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        residual: Option<&Tensor>,
        act: Activation,
        train: bool,
    ) -> Result<Tensor> {
        let c = x.dim(x.rank() - 1)?;
        let dtype = x.dtype();
        let mode = if train {
            Mode::Batch
        } else {
            Mode::Running {
                mean: self
                    .running_mean
                    .as_detached_tensor()
                    .to_dtype(DType::F64)?
                    .to_vec1()?,
                var: self
                    .running_var
                    .as_detached_tensor()
                    .to_dtype(DType::F64)?
                    .to_vec1()?,
            }
        };
        let saved = Arc::new(Mutex::new(None));
        let op = FusedBn {
            eps: self.eps,
            act,
            mode,
            saved: saved.clone(),
        };
        let wb = Tensor::stack(&[w.to_dtype(dtype)?, b.to_dtype(dtype)?], 0)?;
        let x = x.contiguous()?;
        let y = match residual {
            Some(r) => x.apply_op3(&wb, &r.contiguous()?, op)?,
            None => x.apply_op2(&wb, op)?,
        };
        if train {
            let saved = saved.lock().expect("batch-norm stats lock");
            let Some(s) = saved.as_ref() else {
                candle_core::bail!("batch norm {}: statistics missing after forward", self.name)
            };
            let dev = x.device();
            let mean = Tensor::from_slice(&s.mean, c, dev)?;
            let var = Tensor::from_slice(&s.biased_var, c, dev)?;
            self.update_running(&mean, &var, s.n)?;
        }
        Ok(y)
    }
}

enum Mode {
    Batch,
    Running { mean: Vec<f64>, var: Vec<f64> },
}

struct Saved {
    mean: Vec<f64>,
    biased_var: Vec<f64>,
    invstd: Vec<f64>,
    n: usize,
}

/// Batch norm, optional residual add, activation, on a contiguous `[..., C]` tensor (channels
/// last): `act(bn(x) [+ r])`. Inputs `x`, `wb = [weight; bias]` (`[2, C]`) and, for the residual
/// variant, `r`. The backward pass is the closed form.
struct FusedBn {
    eps: f64,
    act: Activation,
    mode: Mode,
    saved: Arc<Mutex<Option<Saved>>>,
}

/// Per-channel sums over the rows of an `[n, c]` array: `f(row, acc)` adds one row into `acc`
/// (in `T`), fixed-size groups of rows are summed in parallel, then the groups in order in f64,
/// so the result does not depend on the thread count.
fn channel_sums<T: Real>(n: usize, c: usize, f: impl Fn(usize, &mut [T]) + Sync) -> Vec<f64> {
    let partials: Vec<Vec<T>> = (0..n.div_ceil(REDUCE_ROWS))
        .into_par_iter()
        .map(|task| {
            let mut acc = vec![T::zero(); c];
            for row in task * REDUCE_ROWS..((task + 1) * REDUCE_ROWS).min(n) {
                f(row, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; c];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v.to_f64();
        }
    }
    total
}

const ACT_NONE: u8 = 0;
const ACT_RELU: u8 = 1;
const ACT_RELU6: u8 = 2;

/// The activation, chosen at compile time so that the row loops vectorise.
#[inline(always)]
fn activate<T: Real, const A: u8>(v: T) -> T {
    let zero = T::zero();
    let v = if A != ACT_NONE && v < zero { zero } else { v };
    let six = T::from_f64(6.0);
    if A == ACT_RELU6 && v > six { six } else { v }
}

/// The activation's derivative times `g`, read off the activation's output `y`.
#[inline(always)]
fn through<T: Real, const A: u8>(y: T, g: T) -> T {
    let zero = T::zero();
    let six = T::from_f64(6.0);
    let pass = match A {
        ACT_NONE => true,
        ACT_RELU => y > zero,
        _ => y > zero && y < six,
    };
    if pass { g } else { zero }
}

/// `y = act(x·scale + shift [+ r])`, row by row in parallel.
fn normalise_rows<T: Real, const A: u8>(
    x: &[T],
    r: Option<&[T]>,
    scale: &[T],
    shift: &[T],
    y: &mut [T],
) {
    let c = scale.len();
    y.par_chunks_mut(REDUCE_ROWS * c)
        .enumerate()
        .for_each(|(task, y)| {
            let base = task * REDUCE_ROWS * c;
            let x = &x[base..base + y.len()];
            match r {
                Some(r) => {
                    let r = &r[base..base + y.len()];
                    for ((yr, xr), rr) in y
                        .chunks_exact_mut(c)
                        .zip(x.chunks_exact(c))
                        .zip(r.chunks_exact(c))
                    {
                        for ((((o, xv), s), t), rv) in
                            yr.iter_mut().zip(xr).zip(scale).zip(shift).zip(rr)
                        {
                            *o = activate::<T, A>(*xv * *s + *t + *rv);
                        }
                    }
                }
                None => {
                    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                        for (((o, xv), s), t) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
                            *o = activate::<T, A>(*xv * *s + *t);
                        }
                    }
                }
            }
        });
}

/// The arrays of a batch-norm backward pass, `[n, c]` each.
struct Rows<'a, T> {
    x: &'a [T],
    y: &'a [T],
    dy: &'a [T],
    c: usize,
}

impl<T: Real> Rows<'_, T> {
    /// `[Σ dz; Σ dz·(x - mean)]` per channel.
    fn sums<const A: u8>(&self, mean: &[T]) -> Vec<f64> {
        let c = self.c;
        channel_sums::<T>(self.x.len() / c, 2 * c, |row, acc| {
            let (sdz, sdzx) = acc.split_at_mut(c);
            let at = row * c;
            let (x, y, dy) = (
                &self.x[at..at + c],
                &self.y[at..at + c],
                &self.dy[at..at + c],
            );
            for (((((a, b), xv), yv), gv), m) in sdz
                .iter_mut()
                .zip(sdzx.iter_mut())
                .zip(x)
                .zip(y)
                .zip(dy)
                .zip(mean)
            {
                let g = through::<T, A>(*yv, *gv);
                *a += g;
                *b += g * (*xv - *m);
            }
        })
    }

    /// `dx = k·dz - c1 - (x - mean)·c2`.
    fn dx<const A: u8>(&self, mean: &[T], k: &[T], c1: &[T], c2: &[T]) -> Vec<T> {
        let c = self.c;
        let mut dx = vec![T::zero(); self.x.len()];
        dx.par_chunks_mut(REDUCE_ROWS * c)
            .enumerate()
            .for_each(|(task, out)| {
                let base = task * REDUCE_ROWS * c;
                let len = out.len();
                let (x, y, dy) = (
                    &self.x[base..base + len],
                    &self.y[base..base + len],
                    &self.dy[base..base + len],
                );
                for (((o, xr), yr), gr) in out
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(y.chunks_exact(c))
                    .zip(dy.chunks_exact(c))
                {
                    for i in 0..c {
                        let g = through::<T, A>(yr[i], gr[i]);
                        o[i] = k[i] * g - c1[i] - (xr[i] - mean[i]) * c2[i];
                    }
                }
            });
        dx
    }

    /// `dz`, the gradient before the activation.
    fn dz<const A: u8>(&self) -> Vec<T> {
        let mut out = vec![T::zero(); self.dy.len()];
        out.par_chunks_mut(REDUCE_ROWS * self.c)
            .enumerate()
            .for_each(|(task, o)| {
                let base = task * REDUCE_ROWS * self.c;
                for ((o, yv), gv) in o.iter_mut().zip(&self.y[base..]).zip(&self.dy[base..]) {
                    *o = through::<T, A>(*yv, *gv);
                }
            });
        out
    }
}

impl FusedBn {
    fn invstd(&self, var: &[f64]) -> Vec<f64> {
        var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect()
    }

    fn forward<T: Real>(&self, x: &[T], c: usize, wb: &[T], r: Option<&[T]>) -> Vec<T> {
        let n = x.len() / c;
        let (w, b) = wb.split_at(c);
        let (mean, var) = match &self.mode {
            Mode::Batch => {
                let sum = channel_sums::<T>(n, c, |row, acc| {
                    for (a, v) in acc.iter_mut().zip(&x[row * c..][..c]) {
                        *a += *v;
                    }
                });
                let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
                let mean_t: Vec<T> = mean.iter().map(|m| T::from_f64(*m)).collect();
                let sq = channel_sums::<T>(n, c, |row, acc| {
                    for ((a, v), m) in acc.iter_mut().zip(&x[row * c..][..c]).zip(&mean_t) {
                        let d = *v - *m;
                        *a += d * d;
                    }
                });
                (mean, sq.iter().map(|s| s / n as f64).collect::<Vec<f64>>())
            }
            Mode::Running { mean, var } => (mean.clone(), var.clone()),
        };
        let invstd = self.invstd(&var);
        let scale: Vec<T> = (0..c)
            .map(|i| T::from_f64(invstd[i] * w[i].to_f64()))
            .collect();
        let shift: Vec<T> = (0..c)
            .map(|i| T::from_f64(b[i].to_f64() - mean[i] * invstd[i] * w[i].to_f64()))
            .collect();
        let mut y = vec![T::zero(); x.len()];
        match self.act {
            Activation::None => normalise_rows::<T, ACT_NONE>(x, r, &scale, &shift, &mut y),
            Activation::Relu => normalise_rows::<T, ACT_RELU>(x, r, &scale, &shift, &mut y),
            Activation::Relu6 => normalise_rows::<T, ACT_RELU6>(x, r, &scale, &shift, &mut y),
        }
        if matches!(self.mode, Mode::Batch) {
            *self.saved.lock().expect("batch-norm stats lock") = Some(Saved {
                mean,
                biased_var: var,
                invstd,
                n,
            });
        }
        y
    }

    /// Gradients of x, [weight; bias] and the residual, each when wanted.
    #[allow(clippy::type_complexity)]
    fn backward<T: Real>(
        &self,
        x: &[T],
        c: usize,
        wb: &[T],
        y: &[T],
        dy: &[T],
        want: (bool, bool, bool),
    ) -> candle_core::Result<(Option<Vec<T>>, Option<Vec<T>>, Option<Vec<T>>)> {
        let n = x.len() / c;
        let (mean, invstd) = match &self.mode {
            Mode::Batch => {
                let saved = self.saved.lock().expect("batch-norm stats lock");
                let Some(s) = saved.as_ref() else {
                    candle_core::bail!("batch norm backward: no saved statistics")
                };
                (s.mean.clone(), s.invstd.clone())
            }
            Mode::Running { mean, var } => (mean.clone(), self.invstd(var)),
        };
        let mean_t: Vec<T> = mean.iter().map(|m| T::from_f64(*m)).collect();
        let batch = matches!(self.mode, Mode::Batch);
        let (want_dx, want_wb, want_r) = want;
        let rows = Rows { x, y, dy, c };
        // Σ dz and Σ dz·(x - mean) per channel, dz being the gradient before the activation.
        let sums = if want_wb || (want_dx && batch) {
            match self.act {
                Activation::None => rows.sums::<ACT_NONE>(&mean_t),
                Activation::Relu => rows.sums::<ACT_RELU>(&mean_t),
                Activation::Relu6 => rows.sums::<ACT_RELU6>(&mean_t),
            }
        } else {
            vec![0.0; 2 * c]
        };
        let (sum_dz, sum_dzx) = sums.split_at(c);
        let dwb = want_wb.then(|| {
            let mut out = vec![T::zero(); 2 * c];
            for i in 0..c {
                out[i] = T::from_f64(sum_dzx[i] * invstd[i]);
                out[c + i] = T::from_f64(sum_dz[i]);
            }
            out
        });
        let dx = want_dx.then(|| {
            // dx = k·dz - c1 - (x - mean)·c2 with k = w/σ, and in batch mode c1 = k·mean(dz),
            // c2 = k·Σdz(x - mean)/(N σ²) (the closed form of the batch statistics' gradient).
            let inv_n = 1.0 / n as f64;
            let mut k = vec![T::zero(); c];
            let mut c1 = vec![T::zero(); c];
            let mut c2 = vec![T::zero(); c];
            for i in 0..c {
                let kf = wb[i].to_f64() * invstd[i];
                k[i] = T::from_f64(kf);
                if batch {
                    c1[i] = T::from_f64(kf * sum_dz[i] * inv_n);
                    c2[i] = T::from_f64(kf * invstd[i] * invstd[i] * sum_dzx[i] * inv_n);
                }
            }
            match self.act {
                Activation::None => rows.dx::<ACT_NONE>(&mean_t, &k, &c1, &c2),
                Activation::Relu => rows.dx::<ACT_RELU>(&mean_t, &k, &c1, &c2),
                Activation::Relu6 => rows.dx::<ACT_RELU6>(&mean_t, &k, &c1, &c2),
            }
        });
        let dr = want_r.then(|| match self.act {
            Activation::None => dy.to_vec(),
            Activation::Relu => rows.dz::<ACT_RELU>(),
            Activation::Relu6 => rows.dz::<ACT_RELU6>(),
        });
        Ok((dx, dwb, dr))
    }

    fn check(l1: &Layout, l2: &Layout, l3: Option<&Layout>) -> candle_core::Result<usize> {
        let c = *l1.dims().last().unwrap_or(&0);
        if c == 0 || l2.dims() != [2, c] || l3.is_some_and(|l| l.dims() != l1.dims()) {
            candle_core::bail!(
                "batch norm: input {:?}, [weight; bias] {:?} and residual {:?} disagree",
                l1.shape(),
                l2.shape(),
                l3.map(|l| l.shape())
            )
        }
        Ok(c)
    }

    /// The backward pass for tensors: `(x, wb, residual)` gradients.
    fn bwd_tensors(
        &self,
        x: &Tensor,
        wb: &Tensor,
        r: Option<&Tensor>,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(
            op: &FusedBn,
            x: &Tensor,
            wb: &Tensor,
            r: Option<&Tensor>,
            y: &Tensor,
            dy: &Tensor,
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let c = x.dim(x.rank() - 1)?;
            let want = (x.track_op(), wb.track_op(), r.is_some_and(|r| r.track_op()));
            let dy = dy.contiguous()?;
            let wb_c = wb.contiguous()?;
            let (dx, dwb, dr) = with_slices::<T, _>(&[x, &wb_c, y, &dy], |s| {
                op.backward(s[0], c, s[1], s[2], s[3], want)
            })??;
            let dev = x.device();
            Ok((
                dx.map(|v| Tensor::from_vec(v, x.shape(), dev))
                    .transpose()?,
                dwb.map(|v| Tensor::from_vec(v, (2, c), dev)).transpose()?,
                dr.map(|v| Tensor::from_vec(v, x.shape(), dev))
                    .transpose()?,
            ))
        }
        match x.dtype() {
            DType::F32 => run::<f32>(self, x, wb, r, y, dy),
            DType::F64 => run::<f64>(self, x, wb, r, y, dy),
            other => candle_core::bail!("batch norm backward: unsupported dtype {other:?}"),
        }
    }
}

impl CustomOp2 for FusedBn {
    fn name(&self) -> &'static str {
        "batch-norm-nhwc"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            op: &FusedBn,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let c = FusedBn::check(l1, l2, None)?;
            let x = contiguous_slice::<T>(s1, l1, "batch norm")?;
            let wb = contiguous_slice::<T>(s2, l2, "batch norm")?;
            let y = op.forward(x, c, wb, None);
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        }
        dispatch_float!("batch norm", s1, run(self, s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dwb, _) = self.bwd_tensors(x, wb, None, y, dy)?;
        Ok((dx, dwb))
    }
}

impl CustomOp3 for FusedBn {
    fn name(&self) -> &'static str {
        "batch-norm-add-nhwc"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        #[allow(clippy::too_many_arguments)]
        fn run<T: Real>(
            op: &FusedBn,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let c = FusedBn::check(l1, l2, Some(l3))?;
            let x = contiguous_slice::<T>(s1, l1, "batch norm")?;
            let wb = contiguous_slice::<T>(s2, l2, "batch norm")?;
            let r = contiguous_slice::<T>(s3, l3, "batch norm")?;
            let y = op.forward(x, c, wb, Some(r));
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        }
        dispatch_float!("batch norm", s1, run(self, s1, l1, s2, l2, s3, l3))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        r: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.bwd_tensors(x, wb, Some(r), y, dy)
    }
}
