//! Differentiable building blocks and the fast CPU kernels behind them.
//!
//! Two backends compute the same functions:
//!
//! - [`Backend::Candle`]: candle's own `conv2d` on NCHW tensors, plus differentiable compositions
//!   of candle ops for what candle lacks (a padded, overlapping max pool). Runs on any device.
//! - [`Backend::Fast`]: NHWC tensors and this module's CPU kernels: 1×1 convolutions as one matrix
//!   product, k×k convolutions as `im2col` + matrix product (backward: matrix products + `col2im`),
//!   depthwise convolutions, max pooling and fused batch norm + activation as candle custom ops
//!   with hand-written backward passes. CPU only, f32 and f64.
//!
//! Every fast kernel is tested equal to candle's own result, forward and backward, in `tests.rs`.

use candle_core::{CpuStorage, Layout, Tensor, WithDType};

mod conv;
mod depthwise;
mod gemm;
mod im2col;
mod norm;
mod pool;
#[cfg(test)]
pub(crate) mod tests;

pub use conv::{Conv2d, Padding};
pub use depthwise::depthwise_conv2d_nhwc;
pub use im2col::{Geometry, col2im_nhwc, conv2d_nhwc, im2col_nhwc};
pub use norm::{Activation, BatchNorm};
pub use pool::{avg_pool2x2_ceil, global_avg_pool, max_pool2d_composite, max_pool2d_nhwc};

/// Which kernels compute a model's layers, and so which memory layout its activations use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// candle's `conv2d`, NCHW activations, any device.
    Candle,
    /// This crate's CPU kernels, NHWC activations. CPU only.
    Fast,
}

impl Backend {
    /// The best backend for a device: [`Backend::Fast`] on the CPU, [`Backend::Candle`] elsewhere.
    pub fn for_device(device: &candle_core::Device) -> Self {
        if device.is_cpu() {
            Self::Fast
        } else {
            Self::Candle
        }
    }

    /// The channel axis of a 4-d activation in this backend's layout.
    pub fn channel_axis(self) -> usize {
        match self {
            Self::Candle => 1,
            Self::Fast => 3,
        }
    }

    /// The spatial axes (height, width) of a 4-d activation in this backend's layout.
    pub fn spatial_axes(self) -> (usize, usize) {
        match self {
            Self::Candle => (2, 3),
            Self::Fast => (1, 2),
        }
    }

    /// Converts an NCHW tensor (the public input layout) into this backend's layout.
    pub fn from_nchw(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle => Ok(x.clone()),
            Self::Fast => x.permute((0, 2, 3, 1))?.contiguous(),
        }
    }

    /// Converts a tensor in this backend's layout back to NCHW.
    pub fn to_nchw(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle => Ok(x.clone()),
            Self::Fast => x.permute((0, 3, 1, 2))?.contiguous(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Candle => "candle",
            Self::Fast => "fast",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "candle" => Ok(Self::Candle),
            "fast" => Ok(Self::Fast),
            other => Err(format!(
                "unknown backend `{other}`: expected `fast` or `candle`"
            )),
        }
    }
}

/// The float types the fast kernels support.
pub(crate) trait Real: WithDType {
    const NEG_INFINITY: Self;
}

impl Real for f32 {
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
}

impl Real for f64 {
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
}

/// The contiguous slice behind a CPU storage and layout.
pub(crate) fn contiguous_slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [T]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!(
            "{op}: input must be contiguous, got strides {:?}",
            layout.stride()
        )
    };
    Ok(&storage.as_slice::<T>()?[start..end])
}

/// Calls `$f::<f32>` or `$f::<f64>` after the storage's dtype, failing on other dtypes.
macro_rules! dispatch_float {
    ($op:expr, $storage:expr, $f:ident ( $($arg:expr),* )) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => $f::<f32>($($arg),*),
            candle_core::CpuStorage::F64(_) => $f::<f64>($($arg),*),
            other => candle_core::bail!(
                "{}: unsupported dtype {:?} (f32 and f64 only)",
                $op,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    };
}
pub(crate) use dispatch_float;

/// Runs `f` on the contiguous CPU slices of `tensors` (which must be contiguous, on the CPU,
/// and of type `T`).
pub(crate) fn with_slices<T: WithDType, R>(
    tensors: &[&Tensor],
    f: impl FnOnce(&[&[T]]) -> R,
) -> candle_core::Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(tensors.len());
    for (storage, layout) in &guards {
        let candle_core::Storage::Cpu(cpu) = &**storage else {
            candle_core::bail!("fast kernels: CPU tensors only")
        };
        slices.push(contiguous_slice::<T>(cpu, layout, "fast kernel backward")?);
    }
    Ok(f(&slices))
}

/// Rows per parallel task in reductions. Fixed, so that sums are the same whatever the thread count.
pub(crate) const REDUCE_ROWS: usize = 256;
