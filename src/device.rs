//! Which device a process trains on: `auto`, `cpu` or `cuda[:i]`.
//!
//! The CUDA backend is a cargo feature (`cuda`, off by default; `just build-cuda`). `auto` takes
//! the first GPU when the binary has CUDA and a GPU answers, and otherwise falls back to the CPU
//! with one warning line; `cuda` never falls back, so a sweep cannot quietly run on the CPU.
//! `Device::cuda_if_available` is not used: with the feature it passes on CUDA's error instead
//! of falling back.

use candle_core::Device;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A device as asked for on the command line or in `CLUSTERLAB_DEVICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// CUDA device 0 when available, else the CPU (one warning line).
    #[default]
    Auto,
    Cpu,
    /// CUDA device `i`; an error when the binary has no CUDA or the device does not answer.
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::BadInput(format!(
                "device {s:?}: use `auto`, `cpu`, `cuda` or `cuda:<index>` (e.g. cuda:1)"
            ))
        };
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(i) => i.parse().map(Self::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Whether this binary was built with the CUDA backend.
pub const HAS_CUDA: bool = cfg!(feature = "cuda");

/// The device a request resolves to on this machine.
pub fn select(req: DeviceRequest) -> Result<Device> {
    match req {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(i) => open_cuda(i).map_err(|why| {
            Error::BadInput(format!(
                "--device cuda:{i}: {why}; use `--device auto` to fall back to the CPU"
            ))
        }),
        DeviceRequest::Auto => match open_cuda(0) {
            Ok(d) => Ok(d),
            Err(why) => {
                if HAS_CUDA {
                    tracing::warn!("no usable GPU ({why}); training on the CPU");
                }
                Ok(Device::Cpu)
            }
        },
    }
}

/// A short name for provenance and bench output: `cpu` or `cuda:<i>`.
pub fn name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(i: usize) -> std::result::Result<Device, String> {
    // A missing CUDA library may panic inside cudarc instead of returning an error: catch it
    // (silently: the caller reports one line).
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| Device::new_cuda(i));
    std::panic::set_hook(prev);
    match r {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => {
            // One line: drop the backtrace candle attaches when RUST_BACKTRACE is set.
            let e = match e {
                candle_core::Error::WithBacktrace { inner, .. } => *inner,
                e => e,
            };
            Err(format!("CUDA device {i} did not initialise: {e}"))
        }
        Err(_) => Err("the CUDA libraries could not be loaded".into()),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_: usize) -> std::result::Result<Device, String> {
    Err("this binary was built without CUDA (build it with `just build-cuda`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print() {
        for (s, r) in [
            ("auto", DeviceRequest::Auto),
            ("cpu", DeviceRequest::Cpu),
            ("cuda", DeviceRequest::Cuda(0)),
            ("cuda:3", DeviceRequest::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceRequest>().unwrap(), r);
        }
        assert_eq!(DeviceRequest::Cuda(2).to_string(), "cuda:2");
        let e = "gpu".parse::<DeviceRequest>().unwrap_err().to_string();
        assert!(
            e.contains("device \"gpu\": use `auto`, `cpu`, `cuda`"),
            "{e}"
        );
        assert!("cuda:x".parse::<DeviceRequest>().is_err());
    }

    /// The default (CPU-only) build: auto falls back, cuda is a clear error.
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cpu_build_falls_back_or_refuses() {
        assert!(select(DeviceRequest::Auto).unwrap().is_cpu());
        let e = select(DeviceRequest::Cuda(0)).unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
        assert_eq!(name(&Device::Cpu), "cpu");
    }
}
