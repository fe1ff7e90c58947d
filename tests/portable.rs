//! The device-generic path (`CLUSTERLAB_KERNELS=portable`: candle's ops and our portable
//! max-pool, what a GPU runs) trains like our CPU kernels: the same loss curve, epoch by
//! epoch, within 1e-5 relative for the smoke CNN (seen: 3e-8) and 5e-3 for a ResNet-18 with
//! the ImageNet stem (seen: 7e-5, 1.4e-4, 1.3e-3 over three epochs: the two paths round
//! differently, ReLUs near 0 switch, and Adam carries the difference forward).

mod common;

use common::*;

#[test]
fn portable_and_native_kernels_train_the_same_curves() {
    let dir = tempfile::tempdir().unwrap();
    let native = loss_curves(dir.path(), "native", KERNEL_PATHS);
    let portable = loss_curves(dir.path(), "portable", KERNEL_PATHS);
    assert_same_curves(&native, &portable, "portable", &[1e-5, 5e-3]);
    eprintln!("native {native:?}\nportable {portable:?}");
}

/// bf16 autocast (emulated on the CPU: operands and products rounded to bf16, f32
/// accumulation, f32 master weights, BatchNorm and losses) trains the smoke CNN along the f32
/// curve: every epoch's mean loss within 2 % (seen: 4e-5 at most); `tf32` is `f32` on the CPU,
/// bit for bit, under its own run id.
#[test]
fn bf16_and_tf32_train_along_the_f32_curve() {
    let grid = r#"
name: g
base:
  dataset: {size: 256, image_size: 32, num_classes: 4}
  model: {widths: [8, 16, 32]}
  method: {feature_dim: 16, head_hidden: 32}
  train: {epochs: 4, batch_size: 64, eval_every: 4}
  augment: {flip_p: 0.5, crop_scale: [0.3, 1.0]}
grid:
  train.precision: [bf16, f32, tf32]
"#;
    let dir = tempfile::tempdir().unwrap();
    // Sorted by config text: bf16, f32, tf32.
    let curves = loss_curves(dir.path(), "native", grid);
    assert_eq!(curves.len(), 3);
    let (bf16, f32_, tf32) = (&curves[0], &curves[1], &curves[2]);
    assert_eq!(f32_, tf32, "tf32 is f32 on the CPU");
    assert_ne!(bf16, f32_, "bf16 rounds");
    let mut worst = 0f64;
    for (a, b) in f32_.iter().zip(bf16) {
        let d = (a - b).abs() / a.abs();
        worst = worst.max(d);
        assert!(
            d < 2e-2,
            "loss {a} (f32) vs {b} (bf16): {d:e}\n{f32_:?}\n{bf16:?}"
        );
    }
    eprintln!("bf16 vs f32 loss curves: largest relative difference {worst:e}");
    let prov: Vec<String> = run_dirs(&dir.path().join("native"), "g")
        .iter()
        .map(|d| std::fs::read_to_string(d.join("provenance.json")).unwrap())
        .collect();
    for p in [
        "\"precision\": \"bf16\"",
        "\"precision\": \"f32\"",
        "\"precision\": \"tf32\"",
    ] {
        assert!(prov.iter().any(|x| x.contains(p)), "provenance records {p}");
    }
    assert!(prov.iter().all(|x| x.contains("\"kernels\": \"native\"")));
}
