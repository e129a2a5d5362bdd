//! Device choice: the only device-specific code of the crate, kept small so that the CUDA path is
//! right by reading (nobody here can build it).

use candle_core::{DType, Device};

use crate::error::{Error, Result};

/// Parses `cpu`, `cuda` or `cuda:N` into a device.
///
/// On a build without the `cuda` feature, `cuda` gives [`Error::CudaNotCompiled`] with the
/// rebuild instructions.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match spec.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => match rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return Err(Error::UnknownDevice { spec: spec.into() }),
        },
        None => return Err(Error::UnknownDevice { spec: spec.into() }),
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::CudaNotCompiled { spec: spec.into() });
    }
    Ok(Device::new_cuda(ordinal)?)
}

/// A short name for logs and run records: `cpu` or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The compute dtype: f32 everywhere, bf16 only when asked for on CUDA.
pub fn compute_dtype(device: &Device, bf16: bool) -> Result<DType> {
    match (bf16, device.is_cuda()) {
        (false, _) => Ok(DType::F32),
        (true, true) => Ok(DType::BF16),
        (true, false) => Err(Error::Bf16NeedsCuda),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_junk() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cuda:", "cudaa", ""] {
            let err = parse_device(bad).unwrap_err();
            assert!(matches!(err, Error::UnknownDevice { .. }), "{bad}: {err}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_on_a_cpu_build_says_how_to_fix_it() {
        for spec in ["cuda", "cuda:1"] {
            let err = parse_device(spec).unwrap_err();
            assert!(matches!(err, Error::CudaNotCompiled { .. }), "{err}");
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
