//! Builds our CUDA kernels (src/nn/device/kernels.cu) where a feature asks for them; the
//! default build does nothing here.
//!
//! - `cuda`: nvcc compiles the kernels to PTX for `compute_$CUDA_COMPUTE_CAP` (default 90),
//!   embedded in the binary and JIT-compiled by the driver at the first launch. nvcc is
//!   `$NVCC`, else `$CUDA_HOME/bin/nvcc`, else `nvcc` on the PATH (`just build-cuda` sets
//!   PATH and CUDA_HOME to the CUDA 13.0 wheels). A compile error fails the build.
//! - `cuda-emu`: the C++ compiler builds the same kernels for the CPU (src/nn/device/emu.cpp),
//!   which the tests use to run them without a GPU.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: &str = "src/nn/device/kernels.cu";

fn main() {
    println!("cargo:rerun-if-changed={KERNELS}");
    println!("cargo:rerun-if-changed=src/nn/device/kernels_emu.h");
    println!("cargo:rerun-if-changed=src/nn/device/emu.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        ptx(&out);
    }
    #[cfg(feature = "cuda-emu")]
    emu();
}

fn ptx(out: &std::path::Path) {
    let nvcc = std::env::var_os("NVCC")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CUDA_HOME")
                .map(|h| PathBuf::from(h).join("bin/nvcc"))
                .filter(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    let dest = out.join("clusterlab_kernels.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", "-lineinfo"])
        .arg(format!("--gpu-architecture=compute_{cap}"))
        .arg(KERNELS)
        .arg("-o")
        .arg(&dest)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "the cuda feature compiles {KERNELS} with nvcc, but {} did not start ({e}): \
                 build with `just build-cuda`, or set NVCC or CUDA_HOME",
                nvcc.display()
            )
        });
    assert!(status.success(), "nvcc failed on {KERNELS} ({status})");
}

#[cfg(feature = "cuda-emu")]
fn emu() {
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("src/nn/device/emu.cpp")
        .include("src/nn/device")
        .opt_level(2)
        .warnings(false)
        .compile("clusterlab_emu");
}
