//! Lennonnet's models in candle: timm-compatible ResNets (`resnet50d` and small ones for CPU
//! work) and EfficientNet-Lite0, with batch norm in train and eval modes, freezing by name prefix,
//! a replaceable head and pooled-feature extraction; fast CPU kernels for their convolutions and
//! pooling; PyTorch checkpoint import (zip and legacy formats) and safetensors weights.
//!
//! Layout: [`models`] (architectures, [`Classifier`]), [`ops`] (layers and kernels), [`weights`]
//! (reading, mapping, loading and writing weights), [`params`] (the named, seeded parameter
//! store), [`device`] (device choice), [`preprocess`] (image to input tensor), [`scoring`] (a
//! finished run's model and probabilities). Training is `lennonnet-train`'s.

pub mod device;
mod error;
pub mod models;
pub mod ops;
pub mod params;
pub mod preprocess;
pub mod scoring;
pub mod weights;

pub use error::{Error, Result};
pub use models::{Arch, Classifier, ModelOptions, ParamInfo, PretrainedCfg};
pub use ops::Backend;
pub use weights::{HeadPolicy, HubOptions, LoadReport, WeightsSource};

/// Re-exported so that callers use the same candle version.
pub use candle_core;
pub use candle_nn;

/// Makes glibc's allocator keep freed memory for reuse: large blocks (up to 32 MiB) come from the
/// heap instead of fresh `mmap`s, and the heap is not trimmed. Training and scoring allocate and
/// free activation-sized buffers at every step; without this each one is page-faulted in anew (about
/// 20 % of a ResNet-50d training step's CPU time here). Call once at start-up, before threads
/// allocate; a no-op off Linux/glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; both values are in their valid ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
