//! The parameter store: every tensor of a model by its timm/PyTorch name, seeded initialisation,
//! and the split between trainable parameters and batch-norm buffers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// What a stored tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Trained by the optimiser (unless frozen).
    Param,
    /// Batch-norm running statistics: saved and loaded, updated by the forward pass in training
    /// mode, never by the optimiser.
    Buffer,
}

impl Kind {
    /// PyTorch's buffers are named `running_mean` and `running_var` (and `num_batches_tracked`,
    /// which this crate never stores).
    pub fn of(name: &str) -> Self {
        let last = name.rsplit('.').next().unwrap_or(name);
        if matches!(last, "running_mean" | "running_var") {
            Self::Buffer
        } else {
            Self::Param
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Param => "param",
            Self::Buffer => "buffer",
        }
    }
}

/// `name` is `prefix` or lies under it (`layer1` covers `layer1.0.conv1.weight`, not
/// `layer10.weight`). The empty prefix covers everything.
pub fn under_prefix(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Named variables, created on first use with a deterministic initialisation: each tensor's
/// random stream is seeded by the store's seed and the tensor's name, so a model's initial
/// weights depend on the seed only, not on construction order or thread timing.
#[derive(Clone)]
pub struct ParamStore {
    vars: Arc<Mutex<BTreeMap<String, Var>>>,
    seed: u64,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore")
            .field("tensors", &self.lock().len())
            .field("seed", &self.seed)
            .finish()
    }
}

impl ParamStore {
    pub fn new(seed: u64) -> Self {
        Self {
            vars: Arc::default(),
            seed,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Var>> {
        self.vars.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A builder that creates this store's variables.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().get(name).cloned()
    }

    /// Every tensor, sorted by name.
    pub fn entries(&self) -> Vec<(String, Var)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Drops every tensor under `prefix` (to rebuild a layer with another shape).
    pub fn remove_prefix(&self, prefix: &str) {
        self.lock().retain(|name, _| !under_prefix(name, prefix));
    }

    /// The tensors as a name → tensor map, for saving.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// The random stream of one tensor.
    fn rng_for(&self, name: &str) -> ChaCha8Rng {
        let mut hasher = blake3::Hasher::new_derive_key("lennonnet-train parameter init v1");
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(name.as_bytes());
        ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
    }
}

/// Uniform in [0, 1) with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal samples by Box–Muller: stable across library versions, unlike distribution
/// crates' samplers.
fn normals(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - unit(rng); // (0, 1]
        let u2 = unit(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push(r * t.cos());
        out.push(r * t.sin());
    }
    out.truncate(n);
    out
}

fn init_values(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = shape.elem_count();
    match init {
        Init::Const(v) => vec![v; n],
        Init::Randn { mean, stdev } => normals(rng, n)
            .into_iter()
            .map(|z| mean + stdev * z)
            .collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| lo + (up - lo) * unit(rng)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Normal => {
                    normals(rng, n).into_iter().map(|z| std * z).collect()
                }
                candle_nn::init::NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| bound * (2.0 * unit(rng) - 1.0)).collect()
                }
            }
        }
    }
}

impl SimpleBackend for ParamStore {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut vars = self.lock();
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "parameter {name} exists with shape {:?}, asked for {shape:?}",
                    var.shape()
                )
            }
            return Ok(var.as_tensor().clone());
        }
        let values = init_values(init, &shape, &mut self.rng_for(name));
        let tensor = Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.lock().get(name) {
            Some(var) => var.as_tensor().to_device(dev)?.to_dtype(dtype),
            None => candle_core::bail!("no parameter {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_components() {
        for (name, prefix, want) in [
            ("layer1.0.conv1.weight", "layer1", true),
            ("layer1.0.conv1.weight", "layer1.0", true),
            ("layer10.weight", "layer1", false),
            ("fc.weight", "fc", true),
            ("fc", "fc", true),
            ("fcx.weight", "fc", false),
            ("anything", "", true),
        ] {
            assert_eq!(under_prefix(name, prefix), want, "{name} under {prefix}");
        }
    }

    #[test]
    fn buffers_are_the_running_statistics() {
        assert_eq!(Kind::of("bn1.running_mean"), Kind::Buffer);
        assert_eq!(Kind::of("layer1.0.bn1.running_var"), Kind::Buffer);
        assert_eq!(Kind::of("bn1.weight"), Kind::Param);
        assert_eq!(Kind::of("fc.bias"), Kind::Param);
    }

    #[test]
    fn initialisation_depends_on_seed_and_name_only() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let draw = |seed: u64, order: &[&str]| -> candle_core::Result<BTreeMap<String, Vec<f32>>> {
            let store = ParamStore::new(seed);
            let vb = store.var_builder(DType::F32, &dev);
            for name in order {
                vb.get_with_hints(64, name, init)?;
            }
            store
                .tensors()
                .into_iter()
                .map(|(k, t)| Ok((k, t.to_vec1::<f32>()?)))
                .collect()
        };
        let a = draw(7, &["x", "y"])?;
        let b = draw(7, &["y", "x"])?;
        let c = draw(8, &["x", "y"])?;
        assert_eq!(a, b, "construction order must not matter");
        assert_ne!(a["x"], c["x"], "the seed must matter");
        assert_ne!(a["x"], a["y"], "the name must matter");
        // A standard normal: mean near 0, variance near 1 over many draws.
        let many = normals(&mut ChaCha8Rng::seed_from_u64(1), 100_000);
        let mean = many.iter().sum::<f64>() / many.len() as f64;
        let var = many.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / many.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        Ok(())
    }
}
