//! Batch normalisation with train and eval modes, running statistics, and an optional fused
//! activation.
//!
//! In training mode the batch statistics normalise the input and update the running mean and
//! (unbiased) variance with PyTorch's momentum rule; in eval mode, or when the layer is frozen,
//! the running statistics normalise it. Names follow PyTorch: `weight`, `bias`, `running_mean`,
//! `running_var`.

use std::sync::{Arc, Mutex};

use candle_core::{
    CpuStorage, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor, Var,
};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use super::{Backend, REDUCE_ROWS, Real, contiguous_slice, dispatch_float};
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

    /// The derivative, read off the activation's output.
    #[inline]
    fn passes<T: Real>(self, y: T, six: T) -> bool {
        match self {
            Self::None => true,
            Self::Relu => y > T::zero(),
            Self::Relu6 => y > T::zero() && y < six,
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

    /// Normalises `x` and applies `act`. Uses batch statistics (and updates the running ones) when
    /// `ctx.train` and the layer is not frozen.
    pub fn forward(&self, x: &Tensor, act: Activation, ctx: &Ctx) -> Result<Tensor> {
        let frozen = ctx.is_frozen(&self.name);
        let train = ctx.train && !frozen;
        let weight = ctx.param(&self.weight, frozen);
        let bias = ctx.param(&self.bias, frozen);
        if ctx.backend == Backend::Fast && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
            return self.forward_fused(x, &weight, &bias, act, train);
        }
        let y = if train {
            self.forward_train_composite(x, &weight, &bias, ctx.backend)?
        } else {
            self.forward_eval_composite(x, &weight, &bias, ctx.backend)?
        };
        act.apply(&y)
    }

    fn broadcast_shape(&self, x: &Tensor, backend: Backend) -> Vec<usize> {
        let mut shape = vec![1; x.rank()];
        shape[backend.channel_axis().min(x.rank() - 1)] = x.dim(backend.channel_axis().min(x.rank() - 1)).unwrap_or(1);
        shape
    }

    fn reduce_axes(x: &Tensor, backend: Backend) -> Vec<usize> {
        let c = backend.channel_axis().min(x.rank() - 1);
        (0..x.rank()).filter(|&a| a != c).collect()
    }

    fn forward_train_composite(&self, x: &Tensor, w: &Tensor, b: &Tensor, backend: Backend) -> Result<Tensor> {
        let axes = Self::reduce_axes(x, backend);
        let n = axes.iter().map(|&a| x.dim(a).unwrap_or(1)).product::<usize>();
        let shape = self.broadcast_shape(x, backend);
        let mean = x.mean_keepdim(axes.as_slice())?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(axes.as_slice())?;
        self.update_running(&mean.detach().flatten_all()?, &var.detach().flatten_all()?, n)?;
        let y = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        y.broadcast_mul(&w.reshape(shape.as_slice())?)?
            .broadcast_add(&b.reshape(shape.as_slice())?)
    }

    fn forward_eval_composite(&self, x: &Tensor, w: &Tensor, b: &Tensor, backend: Backend) -> Result<Tensor> {
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
        let unbias = if n > 1 { n as f64 / (n as f64 - 1.0) } else { 1.0 };
        let dtype = self.running_mean.dtype();
        let rm = self.running_mean.as_detached_tensor();
        let rv = self.running_var.as_detached_tensor();
        let new_mean = ((rm * (1.0 - m))? + (mean.to_dtype(dtype)? * m)?)?;
        let new_var = ((rv * (1.0 - m))? + (biased_var.to_dtype(dtype)? * (m * unbias))?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)
    }

    fn forward_fused(&self, x: &Tensor, w: &Tensor, b: &Tensor, act: Activation, train: bool) -> Result<Tensor> {
        let c = x.dim(x.rank() - 1)?;
        let dtype = x.dtype();
        let mode = if train {
            Mode::Batch
        } else {
            Mode::Running {
                mean: self.running_mean.as_detached_tensor().to_dtype(DType::F64)?.to_vec1()?,
                var: self.running_var.as_detached_tensor().to_dtype(DType::F64)?.to_vec1()?,
            }
        };
        let saved = Arc::new(Mutex::new(None));
        let op = FusedBn {
            eps: self.eps,
            act,
            mode,
            saved: saved.clone(),
        };
        let y = x
            .contiguous()?
            .apply_op3(&w.to_dtype(dtype)?, &b.to_dtype(dtype)?, op)?;
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

/// Batch norm + activation on a contiguous `[..., C]` tensor (channels last), one pass for each
/// statistic and one for the output; the backward pass is the closed form.
struct FusedBn {
    eps: f64,
    act: Activation,
    mode: Mode,
    saved: Arc<Mutex<Option<Saved>>>,
}

/// Per-channel sums of `f(row)` over the rows of a `[n, c]` slice, in fixed-size groups so that
/// the result does not depend on the thread count.
fn channel_sums<T: Real>(n: usize, c: usize, f: impl Fn(usize, &mut [f64]) + Sync) -> Vec<f64> {
    let partials: Vec<Vec<f64>> = (0..n.div_ceil(REDUCE_ROWS))
        .into_par_iter()
        .map(|task| {
            let mut acc = vec![0f64; c];
            for row in task * REDUCE_ROWS..((task + 1) * REDUCE_ROWS).min(n) {
                f(row, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; c];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

fn fused_forward<T: Real>(
    op: &FusedBn,
    x: &[T],
    c: usize,
    w: &[T],
    b: &[T],
) -> (Vec<T>, Option<Saved>) {
    let n = x.len() / c;
    let (mean, var, saved) = match &op.mode {
        Mode::Batch => {
            let sum = channel_sums::<T>(n, c, |row, acc| {
                for (a, v) in acc.iter_mut().zip(&x[row * c..][..c]) {
                    *a += v.to_f64();
                }
            });
            let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
            let sq = channel_sums::<T>(n, c, |row, acc| {
                for ((a, v), m) in acc.iter_mut().zip(&x[row * c..][..c]).zip(&mean) {
                    let d = v.to_f64() - m;
                    *a += d * d;
                }
            });
            let var: Vec<f64> = sq.iter().map(|s| s / n as f64).collect();
            (mean.clone(), var.clone(), Some((mean, var)))
        }
        Mode::Running { mean, var } => (mean.clone(), var.clone(), None),
    };
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + op.eps).sqrt()).collect();
    let scale: Vec<T> = (0..c).map(|i| T::from_f64(invstd[i] * w[i].to_f64())).collect();
    let shift: Vec<T> = (0..c)
        .map(|i| T::from_f64(b[i].to_f64() - mean[i] * invstd[i] * w[i].to_f64()))
        .collect();
    let mut y = vec![T::zero(); x.len()];
    let act = op.act;
    let (zero, six) = (T::zero(), T::from_f64(6.0));
    y.par_chunks_mut(REDUCE_ROWS * c)
        .zip(x.par_chunks(REDUCE_ROWS * c))
        .for_each(|(y, x)| {
            for (yr, xr) in y.chunks_mut(c).zip(x.chunks(c)) {
                for (((yv, xv), s), t) in yr.iter_mut().zip(xr).zip(&scale).zip(&shift) {
                    let v = *xv * *s + *t;
                    *yv = match act {
                        Activation::None => v,
                        Activation::Relu => if v > zero { v } else { zero },
                        Activation::Relu6 => if v > six { six } else if v > zero { v } else { zero },
                    };
                }
            }
        });
    let saved = saved.map(|(mean, biased_var)| Saved {
        mean,
        biased_var,
        invstd,
        n,
    });
    (y, saved)
}

impl CustomOp3 for FusedBn {
    fn name(&self) -> &'static str {
        "batch-norm-nhwc"
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
        fn run<T: Real>(
            op: &FusedBn,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let c = *l1.dims().last().unwrap_or(&0);
            if c == 0 || l2.dims() != [c] || l3.dims() != [c] {
                candle_core::bail!(
                    "batch norm: input {:?}, weight {:?} and bias {:?} disagree on channels",
                    l1.shape(),
                    l2.shape(),
                    l3.shape()
                )
            }
            let x = contiguous_slice::<T>(s1, l1, "batch norm")?;
            let w = contiguous_slice::<T>(s2, l2, "batch norm")?;
            let b = contiguous_slice::<T>(s3, l3, "batch norm")?;
            let (y, saved) = fused_forward(op, x, c, w, b);
            *op.saved.lock().expect("batch-norm stats lock") = saved;
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        }
        dispatch_float!("batch norm", s1, run(self, s1, l1, s2, l2, s3, l3))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(
            op: &FusedBn,
            x: &Tensor,
            w: &Tensor,
            y: &Tensor,
            dy: &Tensor,
        ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let c = x.dim(x.rank() - 1)?;
            let n = x.elem_count() / c;
            let (mean, invstd) = match &op.mode {
                Mode::Batch => {
                    let saved = op.saved.lock().expect("batch-norm stats lock");
                    let Some(s) = saved.as_ref() else {
                        candle_core::bail!("batch norm backward: no saved statistics")
                    };
                    (s.mean.clone(), s.invstd.clone())
                }
                Mode::Running { mean, var } => (
                    mean.clone(),
                    var.iter().map(|v| 1.0 / (v + op.eps).sqrt()).collect(),
                ),
            };
            let w: Vec<f64> = w.to_dtype(DType::F64)?.to_vec1()?;
            let dy = dy.contiguous()?;
            with_slices::<T, _>(&[x, y, &dy], |s| {
                let (x, y, dy) = (s[0], s[1], s[2]);
                let act = op.act;
                let six = T::from_f64(6.0);
                // dz: the gradient before the activation.
                let dz = |i: usize| -> f64 {
                    if act.passes(y[i], six) { dy[i].to_f64() } else { 0.0 }
                };
                let sums = channel_sums::<T>(n, 2 * c, |row, acc| {
                    let (sdz, sdzx) = acc.split_at_mut(c);
                    for ch in 0..c {
                        let i = row * c + ch;
                        let g = dz(i);
                        sdz[ch] += g;
                        sdzx[ch] += g * (x[i].to_f64() - mean[ch]) * invstd[ch];
                    }
                });
                let (sum_dz, sum_dz_xhat) = sums.split_at(c);
                let batch = matches!(op.mode, Mode::Batch);
                let inv_n = 1.0 / n as f64;
                let mut dx = vec![T::zero(); x.len()];
                dx.par_chunks_mut(REDUCE_ROWS * c)
                    .enumerate()
                    .for_each(|(task, out)| {
                        let base = task * REDUCE_ROWS * c;
                        for (j, o) in out.iter_mut().enumerate() {
                            let i = base + j;
                            let ch = i % c;
                            let k = w[ch] * invstd[ch];
                            let g = dz(i);
                            *o = T::from_f64(if batch {
                                let xhat = (x[i].to_f64() - mean[ch]) * invstd[ch];
                                k * (g - sum_dz[ch] * inv_n - xhat * sum_dz_xhat[ch] * inv_n)
                            } else {
                                k * g
                            });
                        }
                    });
                (dx, sum_dz_xhat.to_vec(), sum_dz.to_vec())
            })
            .and_then(|(dx, dw, db)| {
                let dev = x.device();
                let dx = Tensor::from_vec(dx, x.shape(), dev)?;
                let dw = Tensor::from_vec(dw, c, dev)?.to_dtype(x.dtype())?;
                let db = Tensor::from_vec(db, c, dev)?.to_dtype(x.dtype())?;
                Ok((Some(dx), Some(dw), Some(db)))
            })
        }
        match x.dtype() {
            DType::F32 => run::<f32>(self, x, w, y, dy),
            DType::F64 => run::<f64>(self, x, w, y, dy),
            other => candle_core::bail!("batch norm backward: unsupported dtype {other:?}"),
        }
    }
}

/// Runs `f` on the contiguous CPU slices of `tensors`.
fn with_slices<T: Real, R>(tensors: &[&Tensor], f: impl FnOnce(&[&[T]]) -> R) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(tensors.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(cpu) = &**storage else {
            candle_core::bail!("batch norm backward: CPU tensors only")
        };
        slices.push(contiguous_slice::<T>(cpu, layout, "batch norm backward")?);
    }
    Ok(f(&slices))
}
