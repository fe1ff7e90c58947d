//! `bench heads`: head training on precomputed features — N × D seeded vectors (a mixture of K
//! Gaussian clusters), each method at its published schedule (batch, steps), timed step by step
//! after one warm-up step; k-means timed whole. One JSON line: per method the seconds per step
//! and per epoch, samples/s, and the whole default schedule extrapolated from them (with the
//! neighbour mining added for a method that draws neighbours). The mining is timed once, for
//! the largest k (TEMI's 50; SCAN takes the first 20 of each row, its 20 nearest).

use candle_core::{Device, Tensor};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::error::Result;
use crate::methods::{neighbours, View};
use crate::rng::{normal, permutation, stream, stream_at};
use crate::train::Trainer;

/// Each method's published schedule: (name, batch, epochs on the published data, steps of the
/// whole schedule on `n` samples or 0 for per-epoch schedules, learning rate).
/// TEMI: batch 1024, 100 epochs, AdamW lr 1e-4 · 1024/256, weight decay 1e-4, 20 warm-up
/// epochs. TURTLE: batch 10 000, T = 6 000 steps, lr 1e-3. SCAN (CIFAR configs): batch 128,
/// 50 epochs, Adam lr 1e-4 with weight decay 1e-4, 10 linear heads ([`published_setup`]).
pub const SCHEDULES: &[(&str, usize, usize, usize, f64)] = &[
    ("temi", 1024, 100, 0, 4e-4),
    ("turtle", 10_000, 0, 6_000, 1e-3),
    ("scan", 128, 50, 0, 1e-4),
];

/// The rest of a method's published setup (what the foundation grids set): TEMI's AdamW
/// with its warm-up, SCAN's 10 linear heads and weight decay.
pub fn published_setup(cfg: &mut RunConfig) {
    match cfg.method.name.as_str() {
        "temi" => {
            cfg.optimizer.name = "adamw".into();
            cfg.optimizer.weight_decay = 1e-4;
            cfg.optimizer.warmup_epochs = 20;
            cfg.method.temi.freeze_last_layer = 1;
        }
        "scan" => {
            cfg.method.scan.heads = 10;
            cfg.method.scan.linear = true;
            cfg.optimizer.weight_decay = 1e-4;
        }
        _ => {}
    }
}

/// N × D vectors around K random centres (unit-variance noise, centres N(0, 4)), seeded.
pub fn mixture(n: usize, d: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = stream(seed, "bench_heads");
    let centres: Vec<f64> = (0..k * d).map(|_| 2.0 * normal(&mut rng)).collect();
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % k;
        for j in 0..d {
            x.push((centres[c * d + j] + normal(&mut rng)) as f32);
        }
        y.push(c as i64);
    }
    (x, y)
}

/// Times `steps` steps of every method in `methods` (and k-means) on `n × d` features, K = `k`.
pub fn heads(
    n: usize,
    d: usize,
    k: usize,
    steps: usize,
    methods: &[String],
) -> Result<serde_json::Value> {
    let device = Device::Cpu;
    let (x, labels) = mixture(n, d, k, 0);
    let ds = Dataset {
        name: "bench-features".into(),
        images: Vec::new(),
        labels,
        height: 1,
        width: 1,
        channels: d,
        num_classes: k,
        features: Some(Arc::new(x)),
    };
    let mut out = serde_json::Map::new();
    // One mining for every method that draws neighbours: the largest k, truncated per method.
    let k_max = methods
        .iter()
        .filter_map(|m| match m.as_str() {
            "temi" => Some(crate::config::frozen::TemiConfig::default().knn),
            "scan" => Some(crate::config::frozen::ScanConfig::default().knn),
            _ => None,
        })
        .max();
    let t = Instant::now();
    let mined = match k_max {
        Some(kk) => Some(neighbours::mine(
            ds.features.as_deref().expect("features"),
            n,
            d,
            kk,
        )?),
        None => None,
    };
    let mine_s = t.elapsed().as_secs_f64();
    for name in methods {
        let mut cfg = RunConfig::default();
        cfg.method.name = name.clone();
        cfg.dataset.name = "embeddings".into();
        cfg.dataset.num_classes = k;
        cfg.model.backbone = "none".into();
        if name == "kmeans" {
            let t = Instant::now();
            let f = ds.pixels_f32();
            let r = crate::methods::kmeans::kmeans(
                &f,
                n,
                d,
                k,
                cfg.method.kmeans_restarts,
                cfg.method.kmeans_iterations,
                &mut stream(0, "kmeans"),
            )?;
            let secs = t.elapsed().as_secs_f64();
            let nmi = crate::eval::Scores::compute(&ds.labels, &r.labels).nmi;
            out.insert(
                name.clone(),
                json!({"seconds": secs, "restarts": cfg.method.kmeans_restarts, "nmi": nmi}),
            );
            continue;
        }
        let Some(&(_, batch, epochs, total_steps, lr)) = SCHEDULES.iter().find(|s| s.0 == name)
        else {
            return Err(crate::Error::BadInput(format!(
                "bench heads: no schedule for method {name:?}; expected kmeans or one of {}",
                SCHEDULES.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
            )));
        };
        let batch = batch.min(n);
        cfg.train.batch_size = batch;
        cfg.optimizer.lr = lr;
        published_setup(&mut cfg);
        let mut trainer = Trainer::new(&cfg, d, &device)?;
        trainer.opt.warmup_steps = (cfg.optimizer.warmup_epochs * (n / batch)) as u64;
        let kinds = trainer.method.views();
        let knn = match (trainer.method.neighbours(), &mined) {
            (0, _) | (_, None) => None,
            (kk, Some(t)) => Some(t.truncated(kk)),
        };
        let mine = if knn.is_some() { mine_s } else { 0.0 };
        let order = permutation(&mut stream_at(0, "data_order", &[1]), n);
        let per_epoch = n / batch;
        let batch_views = |step: usize| -> Result<Vec<Tensor>> {
            let at = step % per_epoch;
            let idx = &order[at * batch..(at + 1) * batch];
            (kinds.iter().enumerate())
                .map(|(v, kind)| {
                    let rows = match (kind, &knn) {
                        (View::Neighbour, Some(t)) => t.pick(idx, 0, 1, v),
                        _ => idx.to_vec(),
                    };
                    crate::data::embeddings::rows(&ds, &rows, &device)
                })
                .collect()
        };
        trainer.step(&batch_views(0)?)?;
        let t = Instant::now();
        let mut last = None;
        for s in 0..steps {
            last = Some(trainer.step_deferred(&batch_views(s + 1)?)?);
        }
        if let Some(l) = last {
            l.read()?;
        }
        let step_s = t.elapsed().as_secs_f64() / steps as f64;
        let schedule_steps = if total_steps > 0 {
            total_steps
        } else {
            epochs * per_epoch
        };
        out.insert(
            name.clone(),
            json!({
                "batch": batch,
                "step_s": step_s,
                "samples_per_s": batch as f64 / step_s,
                "steps_per_epoch": per_epoch,
                "epoch_s": step_s * per_epoch as f64,
                "schedule_steps": schedule_steps,
                "schedule_s": step_s * schedule_steps as f64 + mine,
                "timed_steps": steps,
            }),
        );
    }
    Ok(json!({
        "bench": "heads",
        "n": n,
        "dim": d,
        "k": k,
        "threads": rayon::current_num_threads(),
        "knn_mining_s": mine_s,
        "knn_k": k_max,
        "methods": out,
    }))
}
