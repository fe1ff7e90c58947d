//! Our CUDA kernels (src/nn/device/kernels.cu), compiled for the CPU (feature `cuda-emu`) and
//! run by `CLUSTERLAB_KERNELS=emulated`, train like our CPU kernels: the same loss curve,
//! epoch by epoch, for the smoke CNN and a ResNet-18 with the ImageNet stem, within the
//! tolerances of the portable path's test (tests/portable.rs; seen: CNN 2.6e-8, 0, 0;
//! ResNet-18 8.6e-7, 1.1e-4, 3.1e-3); provenance says `emulated`.
//! Run: `cargo test --release --features cuda-emu --test cuda_emu`.
#![cfg(feature = "cuda-emu")]

mod common;

use common::*;

#[test]
fn emulated_device_kernels_and_native_kernels_train_the_same_curves() {
    let dir = tempfile::tempdir().unwrap();
    let native = loss_curves(dir.path(), "native", KERNEL_PATHS);
    let emulated = loss_curves(dir.path(), "emulated", KERNEL_PATHS);
    assert_same_curves(&native, &emulated, "emulated", &[1e-5, 5e-3]);
    eprintln!("native {native:?}\nemulated {emulated:?}");
}

/// `bench kernels` (what a GPU session runs first) under the emulated kernels: every op passes
/// against the native kernels, and the comparison is real (the convolutions differ in the
/// last bits: another summation order), not the native kernels against themselves.
#[test]
fn bench_kernels_passes_on_the_emulated_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &["bench", "kernels"])
        .env("CLUSTERLAB_KERNELS", "emulated")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernels"], "emulated");
    assert_eq!(v["ok"], true, "{v:#}");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 10);
    let conv = checks[0]["worst"].as_f64().unwrap();
    assert!(conv > 0.0 && conv < 1e-5, "{v:#}");
}
