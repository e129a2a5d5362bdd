//! AdamW with decoupled weight decay on weight matrices and convolution kernels only (not on
//! biases, batch-norm scales and shifts: every tensor of rank ≤ 1, as timm does), global-norm
//! gradient clipping, and a state that can be saved and restored for `--resume`.
//!
//! candle's own `AdamW` decays every variable and keeps its moments private, hence this one. Its
//! update is PyTorch's: `m ← β1 m + (1 - β1) g`, `v ← β2 v + (1 - β2) g²`,
//! `θ ← θ (1 - lr · wd) - lr · m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`. Moments are kept in
//! f32; a variable of another dtype (bf16 on CUDA) gets an f32 master copy that the update is
//! applied to, then cast back.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

/// AdamW's hyper-parameters (the learning rate comes with each step, from the schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWOptions {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWOptions {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
    /// f32 copy of a variable stored in another dtype.
    master: Option<Tensor>,
}

/// The optimiser over a model's trainable variables.
pub struct AdamW {
    slots: Vec<Slot>,
    opts: AdamWOptions,
    step: u64,
}

/// Whether a tensor gets weight decay: matrices and kernels yes; biases and batch-norm
/// parameters (rank ≤ 1) no.
pub fn decays(shape: &[usize]) -> bool {
    shape.len() >= 2
}

impl AdamW {
    /// `vars`: name and variable, in a fixed order (the model gives them sorted by name).
    pub fn new(vars: Vec<(String, Var)>, opts: AdamWOptions) -> candle_core::Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = Tensor::zeros(var.shape(), DType::F32, var.device())?;
                let master = if var.dtype() == DType::F32 {
                    None
                } else {
                    Some(var.as_tensor().to_dtype(DType::F32)?)
                };
                Ok(Slot {
                    decay: decays(var.dims()),
                    name,
                    var,
                    m: zeros.clone(),
                    v: zeros,
                    master,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            slots,
            opts,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Names of the variables with and without weight decay.
    pub fn decay_groups(&self) -> (Vec<&str>, Vec<&str>) {
        let (a, b): (Vec<&Slot>, Vec<&Slot>) = self.slots.iter().partition(|s| s.decay);
        (
            a.into_iter().map(|s| s.name.as_str()).collect(),
            b.into_iter().map(|s| s.name.as_str()).collect(),
        )
    }

    /// The global L2 norm of the gradients; when above `max_norm`, scales every gradient by
    /// `max_norm / norm` (PyTorch's `clip_grad_norm_`). Returns the norm before clipping.
    pub fn clip_grad_norm(
        &self,
        grads: &mut GradStore,
        max_norm: Option<f64>,
    ) -> candle_core::Result<f64> {
        let mut sum = 0f64;
        for s in &self.slots {
            if let Some(g) = grads.get(s.var.as_tensor()) {
                sum += g
                    .to_dtype(DType::F32)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f32>()? as f64;
            }
        }
        let norm = sum.sqrt();
        if let Some(max) = max_norm {
            if norm > max {
                let scale = max / (norm + 1e-6);
                for s in &self.slots {
                    if let Some(g) = grads.remove(s.var.as_tensor()) {
                        grads.insert(s.var.as_tensor(), g.affine(scale, 0.0)?);
                    }
                }
            }
        }
        Ok(norm)
    }

    /// One update with learning rate `lr`. Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let o = self.opts;
        let t = self.step as i32;
        let c1 = 1.0 - o.beta1.powi(t);
        let c2 = 1.0 - o.beta2.powi(t);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let g = g.to_dtype(DType::F32)?;
            s.m = ((&s.m * o.beta1)? + (&g * (1.0 - o.beta1))?)?;
            s.v = ((&s.v * o.beta2)? + (g.sqr()? * (1.0 - o.beta2))?)?;
            let m_hat = (&s.m / c1)?;
            let v_hat = (&s.v / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + o.eps)?)?;
            let theta = match &s.master {
                Some(master) => master.clone(),
                None => s.var.as_tensor().clone(),
            };
            let theta = if s.decay && o.weight_decay > 0.0 {
                (theta * (1.0 - lr * o.weight_decay))?
            } else {
                theta
            };
            let theta = (theta - (update * lr)?)?;
            match &mut s.master {
                Some(master) => {
                    s.var.set(&theta.to_dtype(s.var.dtype())?)?;
                    *master = theta;
                }
                None => s.var.set(&theta)?,
            }
        }
        Ok(())
    }

    /// The moments (and f32 master copies), named `optim.m.<var>`, `optim.v.<var>`,
    /// `optim.master.<var>`, for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.slots.len() * 2);
        for s in &self.slots {
            out.push((format!("optim.m.{}", s.name), s.m.clone()));
            out.push((format!("optim.v.{}", s.name), s.v.clone()));
            if let Some(master) = &s.master {
                out.push((format!("optim.master.{}", s.name), master.clone()));
            }
        }
        out
    }

    /// Restores the state saved by [`AdamW::state_tensors`] after `steps` steps.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<(), String> {
        for s in &mut self.slots {
            let get = |kind: &str| {
                let key = format!("optim.{kind}.{}", s.name);
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| format!("optimizer state `{key}` is missing"))?;
                if t.dims() != s.var.dims() {
                    return Err(format!(
                        "optimizer state `{key}` has shape {:?}, the variable {:?}",
                        t.dims(),
                        s.var.dims()
                    ));
                }
                t.to_dtype(DType::F32)
                    .and_then(|t| t.to_device(s.var.device()))
                    .map_err(|e| e.to_string())
            };
            s.m = get("m")?;
            s.v = get("v")?;
            if s.master.is_some() {
                s.master = Some(get("master")?);
            }
        }
        self.step = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(values: &[f32], shape: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// PyTorch's AdamW by hand, in f64.
    fn reference(theta: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut m, mut v, mut th) = (0.0, 0.0, theta);
        for (i, g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            th *= 1.0 - lr * wd;
            th -= lr * (m / (1.0 - b1.powi(t))) / ((v / (1.0 - b2.powi(t))).sqrt() + eps);
        }
        th
    }

    #[test]
    fn matches_pytorch_and_spares_biases_and_norms_from_decay() -> candle_core::Result<()> {
        let w = var(&[1.0, -2.0, 0.5, 3.0], &[2, 2]);
        let b = var(&[1.0, -2.0], &[2]);
        let opts = AdamWOptions {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("b".into(), b.clone()), ("w".into(), w.clone())], opts)?;
        assert_eq!(opt.decay_groups(), (vec!["w"], vec!["b"]));
        let lr = 0.01;
        // loss = sum(w · c) + sum(b · c) with a changing c: gradient c.
        let cs = [
            [0.5f32, -1.0, 2.0, 0.1],
            [1.0, 1.0, -0.3, 0.2],
            [-0.2, 0.4, 0.4, -1.0],
        ];
        for c in &cs {
            let cw = Tensor::from_vec(c.to_vec(), (2, 2), &Device::Cpu)?;
            let cb = Tensor::from_vec(c[..2].to_vec(), 2, &Device::Cpu)?;
            let loss = ((w.as_tensor() * &cw)?.sum_all()? + (b.as_tensor() * &cb)?.sum_all()?)?;
            opt.step(&loss.backward()?, lr)?;
        }
        let got_w = w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let got_b = b.as_tensor().to_vec1::<f32>()?;
        for i in 0..4 {
            let g: Vec<f64> = cs.iter().map(|c| c[i] as f64).collect();
            let want = reference([1.0, -2.0, 0.5, 3.0][i], &g, lr, 0.1);
            assert!(
                (got_w[i] as f64 - want).abs() < 1e-6,
                "w[{i}] {} {want}",
                got_w[i]
            );
            if i < 2 {
                let want = reference([1.0, -2.0][i], &g, lr, 0.0);
                assert!(
                    (got_b[i] as f64 - want).abs() < 1e-6,
                    "b[{i}] {} {want}",
                    got_b[i]
                );
            }
        }
        assert_eq!(opt.steps(), 3);
        Ok(())
    }

    #[test]
    fn clipping_scales_to_the_global_norm_and_state_round_trips() -> candle_core::Result<()> {
        let a = var(&[0.0, 0.0], &[2]);
        let b = var(&[0.0], &[1]);
        let mut opt = AdamW::new(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            AdamWOptions::default(),
        )?;
        // Gradients (3, 0) and (4): global norm 5.
        let ga = Tensor::new(&[3f32, 0.0], &Device::Cpu)?;
        let gb = Tensor::new(&[4f32], &Device::Cpu)?;
        let loss = ((a.as_tensor() * &ga)?.sum_all()? + (b.as_tensor() * &gb)?.sum_all()?)?;
        let mut grads = loss.backward()?;
        assert!((opt.clip_grad_norm(&mut grads, None)? - 5.0).abs() < 1e-6);
        let norm = opt.clip_grad_norm(&mut grads, Some(1.0))?;
        assert!((norm - 5.0).abs() < 1e-6);
        let clipped = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!((clipped[0] - 0.6).abs() < 1e-5, "{clipped:?}");
        assert!((opt.clip_grad_norm(&mut grads, None)? - 1.0).abs() < 1e-5);

        opt.step(&grads, 0.1)?;
        let state: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
        assert_eq!(state.len(), 4);
        let mut fresh = AdamW::new(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            AdamWOptions::default(),
        )?;
        fresh.load_state(&state, opt.steps()).unwrap();
        let (before_a, before_b) = (
            a.as_tensor().to_vec1::<f32>()?,
            b.as_tensor().to_vec1::<f32>()?,
        );
        opt.step(&grads, 0.1)?;
        let want = (
            a.as_tensor().to_vec1::<f32>()?,
            b.as_tensor().to_vec1::<f32>()?,
        );
        a.set(&Tensor::new(before_a.as_slice(), &Device::Cpu)?)?;
        b.set(&Tensor::new(before_b.as_slice(), &Device::Cpu)?)?;
        fresh.step(&grads, 0.1)?;
        let got = (
            a.as_tensor().to_vec1::<f32>()?,
            b.as_tensor().to_vec1::<f32>()?,
        );
        assert_eq!(got, want);
        let missing: HashMap<String, Tensor> = HashMap::new();
        assert!(
            fresh
                .load_state(&missing, 1)
                .unwrap_err()
                .contains("optim.m.a")
        );
        Ok(())
    }
}
