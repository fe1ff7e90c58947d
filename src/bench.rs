//! Benchmarks that print figures (never tests that fail on a slow machine).
//!
//! `bench train`: timed training steps on random inputs (after warm-up), one JSON line.
//! `bench augment`: augmentation throughput of the training pipeline, one JSON line.

use candle_core::{Device, Tensor};
use serde_json::json;
use std::time::Instant;

use crate::config::RunConfig;
use crate::data::{augment::Augmenter, loader, synthetic};
use crate::error::Result;
use crate::rng::{stream, uniform};
use crate::train::Trainer;

/// Times `steps` training steps (after `warmup`) of the configured method on random images.
pub fn train(cfg: &RunConfig, steps: usize, warmup: usize) -> Result<serde_json::Value> {
    let device = Device::Cpu;
    let mut trainer = Trainer::new(cfg, 3, &device)?;
    let (b, s) = (cfg.train.batch_size, cfg.dataset.image_size);
    let mut rng = stream(cfg.seed, "bench");
    let views: Vec<Tensor> = (0..trainer.method.num_views())
        .map(|_| {
            let data: Vec<f32> = (0..b * 3 * s * s)
                .map(|_| uniform(&mut rng, 0.0, 1.0) as f32)
                .collect();
            Tensor::from_vec(data, (b, 3, s, s), &device)
        })
        .collect::<candle_core::Result<_>>()?;
    for _ in 0..warmup {
        trainer.step(&views)?;
    }
    let t = Instant::now();
    for _ in 0..steps {
        trainer.step(&views)?;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "train",
        "images_per_s": (steps * b) as f64 / secs,
        "step_ms": secs * 1e3 / steps as f64,
        "device": "cpu",
        "threads": rayon::current_num_threads(),
        "steps": steps,
        "config": {
            "method": cfg.method.name, "backbone": cfg.model.backbone, "widths": cfg.model.widths,
            "batch": b, "image_size": s, "views": trainer.method.num_views(),
            "params": trainer.params.count(),
        },
    }))
}

/// Times the augmentation pipeline: `batches` batches of `batch_size` training views.
pub fn augment(cfg: &RunConfig, batches: usize) -> Result<serde_json::Value> {
    let ds = synthetic::generate(&cfg.dataset);
    let aug = Augmenter::new(cfg.augment.clone(), cfg.dataset.image_size);
    let b = cfg.train.batch_size.min(ds.len());
    let idx: Vec<usize> = (0..b).collect();
    let device = Device::Cpu;
    loader::train_batch(&ds, &aug, &idx, cfg.seed, 0, 0, &device)?;
    let t = Instant::now();
    for i in 0..batches {
        loader::train_batch(&ds, &aug, &idx, cfg.seed, i + 1, 0, &device)?;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "augment",
        "images_per_s": (batches * b) as f64 / secs,
        "batch_ms": secs * 1e3 / batches as f64,
        "threads": rayon::current_num_threads(),
        "config": {"batch": b, "image_size": cfg.dataset.image_size, "source_size": ds.height},
    }))
}
