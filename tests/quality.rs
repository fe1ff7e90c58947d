//! Training quality against PyTorch, stage by stage (issue 19): the checks that find the cause
//! of a gap between a clusterlab run and its PyTorch twin (`bench/quality/twin.py`).
//!
//! References from `tests/fixtures/quality/generate.py` (PyTorch, torchvision; never imported
//! here):
//! - step-0 distribution of every parameter under each `model.weight_init`;
//! - one CC step from the same weights and batch (loss terms, every gradient, the parameters
//!   after Adam), and N = 3 steps (parameters, BatchNorm running statistics, Adam moments,
//!   backbone features in eval mode);
//! - augmentation statistics: crop areas and aspect ratios, jitter factors and op order,
//!   grayscale rate, full-view summaries, and the resize of a source smaller than the output.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use clusterlab::config::run::AugmentConfig;
use clusterlab::config::RunConfig;
use clusterlab::data::augment::{crop_params, jitter_params, Augmenter, Image, Scratch};
use clusterlab::rng::{stream, stream_at};
use clusterlab::train::Trainer;
use serde_json::Value;

const DIR: &str = "tests/fixtures/quality";

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The CC model of the init fixture: default CNN 32-64-128-256, heads 256 → 128 / → 10.
fn init_config(weight_init: &str, seed: u64) -> RunConfig {
    let mut cfg = RunConfig {
        seed,
        ..Default::default()
    };
    cfg.model.weight_init = weight_init.into();
    cfg.validate().unwrap();
    cfg
}

/// Our pooled (over `seeds` models) mean, std, min, max and fractions beyond 2 and 3 std of
/// every trainable parameter.
fn our_init_stats(weight_init: &str, seeds: u64) -> HashMap<String, [f64; 6]> {
    let mut pooled: HashMap<String, Vec<f64>> = HashMap::new();
    for s in 0..seeds {
        let t = Trainer::new(&init_config(weight_init, s), 3, &Device::Cpu).unwrap();
        for (name, var) in t.params.trainable() {
            let v = pooled.entry(name).or_default();
            v.extend(flat(var.as_tensor()).into_iter().map(f64::from));
        }
    }
    pooled
        .into_iter()
        .map(|(k, x)| {
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sd = var.sqrt();
            let tail = |t: f64| x.iter().filter(|v| (*v - mean).abs() > t * sd).count() as f64 / n;
            (k, [mean, sd, min, max, tail(2.0), tail(3.0)])
        })
        .collect()
}

/// Whether our statistics of one parameter match PyTorch's within sampling tolerance: mean
/// within 6 standard errors, std within 6 standard errors of a sample std (plus 0.5 %), and
/// the shape (bounds or tails, below).
fn matches(ours: &[f64; 6], theirs: &Value) -> Result<(), String> {
    let g = |k: &str| theirs[k].as_f64().unwrap();
    let (mean, std, min, max, n) = (g("mean"), g("std"), g("min"), g("max"), g("count"));
    if std == 0.0 {
        return if ours[1] == 0.0 && (ours[0] - mean).abs() < 1e-12 {
            Ok(())
        } else {
            Err(format!(
                "constant {mean} expected, got mean {} std {}",
                ours[0], ours[1]
            ))
        };
    }
    let se_mean = std / n.sqrt();
    let se_std = std / (2.0 * n).sqrt();
    if (ours[0] - mean).abs() > 6.0 * se_mean + 1e-9 {
        return Err(format!(
            "mean {} vs PyTorch {mean} (± {se_mean:.2e})",
            ours[0]
        ));
    }
    if (ours[1] - std).abs() > 6.0 * se_std + 0.005 * std {
        return Err(format!("std {} vs PyTorch {std} (± {se_std:.2e})", ours[1]));
    }
    // A uniform's bounds within 3 % of the range; a normal's (PyTorch's extremes beyond 3.5
    // std) by its tails instead: the fraction of draws beyond 2 and 3 std within 6 binomial
    // standard errors (extremes of ~1e6 normal draws are too noisy to compare).
    if max / std > 3.5 {
        for (k, key) in [(2.0, "beyond_2sd"), (3.0, "beyond_3sd")] {
            let p = g(key);
            let got = ours[4 + (k as usize - 2)];
            if (got - p).abs() > 6.0 * (p * (1.0 - p) / n).sqrt() + 1e-4 {
                return Err(format!("fraction beyond {k} std {got} vs PyTorch {p}"));
            }
        }
    } else {
        let close = |a: f64, b: f64| (a - b).abs() <= 0.03 * (max - min);
        if !(close(ours[2], min) && close(ours[3], max)) {
            return Err(format!(
                "range [{}, {}] vs PyTorch [{min}, {max}]",
                ours[2], ours[3]
            ));
        }
    }
    Ok(())
}

#[test]
fn step0_parameter_distributions_match_pytorch_for_each_init() {
    let fx = json("init.json");
    let seeds = fx["seeds"].as_u64().unwrap();
    for init in ["pytorch_default", "kaiming_fan_out"] {
        let ours = our_init_stats(init, seeds);
        let theirs = fx["inits"][init].as_object().unwrap();
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{init}: parameter sets differ: ours {:?}",
            ours.keys().collect::<Vec<_>>()
        );
        for (name, t) in theirs {
            let o = ours
                .get(name)
                .unwrap_or_else(|| panic!("{init}: no parameter {name}"));
            if let Err(e) = matches(o, t) {
                panic!("{init}: {name}: {e}");
            }
        }
        // The check tells the two schemes apart: every conv weight of the other scheme fails.
        let other = if init == "pytorch_default" {
            "kaiming_fan_out"
        } else {
            "pytorch_default"
        };
        for (name, t) in fx["inits"][other].as_object().unwrap() {
            if name.ends_with("conv.weight") {
                assert!(
                    matches(&ours[name], t).is_err(),
                    "{init} vs PyTorch's {other}: {name} should not match"
                );
            }
        }
    }
}

/// The step fixture's model with its initial weights loaded.
fn step_trainer(fx: &Value, init: &HashMap<String, Tensor>) -> Trainer {
    let mut cfg = RunConfig::default();
    cfg.model.widths = f64s(&fx["widths"]).iter().map(|&w| w as usize).collect();
    cfg.model.weight_init = fx["weight_init"].as_str().unwrap().into();
    cfg.method.head_hidden = fx["head_hidden"].as_u64().unwrap() as usize;
    cfg.method.feature_dim = fx["feature_dim"].as_u64().unwrap() as usize;
    cfg.dataset.num_classes = fx["clusters"].as_u64().unwrap() as usize;
    cfg.dataset.image_size = fx["image_size"].as_u64().unwrap() as usize;
    cfg.train.batch_size = fx["batch"].as_u64().unwrap() as usize;
    cfg.optimizer.lr = fx["lr"].as_f64().unwrap();
    cfg.validate().unwrap();
    let t = Trainer::new(&cfg, 3, &Device::Cpu).unwrap();
    t.params.load_state(init).unwrap();
    t
}

fn load_step() -> (Value, HashMap<String, Tensor>) {
    let tensors =
        candle_core::safetensors::load(format!("{DIR}/step.safetensors"), &Device::Cpu).unwrap();
    (json("step.json"), tensors)
}

fn with_prefix(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// max |a − b| / max(max |b|, floor).
fn rel_err(a: &Tensor, b: &Tensor, floor: f32) -> f32 {
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn one_step_losses_and_gradients_equal_pytorch() {
    let (fx, all) = load_step();
    let init = with_prefix(&all, "init.");
    let t = step_trainer(&fx, &init);
    let views = [all["input.a"].clone(), all["input.b"].clone()];
    let feats: Vec<Tensor> = views
        .iter()
        .map(|x| t.backbone.forward(x, true).unwrap())
        .collect();
    let terms = t.method.losses(&feats).unwrap();
    let want = &fx["losses_step1"];
    let mut total: Option<Tensor> = None;
    for (name, v) in &terms {
        let got = v.to_scalar::<f32>().unwrap() as f64;
        let exp = want[*name].as_f64().unwrap();
        assert!(
            (got - exp).abs() < 2e-5 * exp.abs().max(1.0),
            "loss term {name}: ours {got}, PyTorch {exp}"
        );
        total = Some(match total {
            Some(acc) => (acc + v).unwrap(),
            None => v.clone(),
        });
    }
    let total = total.unwrap();
    let exp = want["total"].as_f64().unwrap();
    let got = total.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (got - exp).abs() < 2e-5 * exp.abs(),
        "total: {got} vs {exp}"
    );
    let grads = total.backward().unwrap();
    let want_g = with_prefix(&all, "grad.");
    let trainable = t.params.trainable();
    assert_eq!(trainable.len(), want_g.len());
    let mut worst = 0f32;
    for (name, var) in trainable {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let e = rel_err(g, &want_g[&name], 1e-6);
        assert!(e < 1e-3, "gradient of {name}: relative error {e}");
        worst = worst.max(e);
    }
    eprintln!("loss total {got} vs PyTorch {exp}; worst gradient relative error {worst:.2e}");
}

#[test]
fn adam_steps_batchnorm_statistics_and_eval_mode_match_pytorch() {
    let (fx, all) = load_step();
    let init = with_prefix(&all, "init.");
    let views = [all["input.a"].clone(), all["input.b"].clone()];
    let lr = fx["lr"].as_f64().unwrap() as f32;
    let n = fx["steps"].as_u64().unwrap();
    let mut t = step_trainer(&fx, &init);
    for step in 1..=n {
        t.step(&views).unwrap();
        if step == 1 {
            // Adam's first update is ±lr·g/|g| per element: compare in units of lr.
            let want = with_prefix(&all, "step1.");
            for (name, var) in t.params.trainable() {
                let d = flat(&(var.as_tensor() - &want[&name]).unwrap());
                let worst = d.iter().fold(0f32, |m, v| m.max(v.abs())) / lr;
                assert!(worst < 1e-2, "{name} after step 1: off by {worst} lr");
            }
        }
    }
    let state = t.params.state_dict();
    let want = with_prefix(&all, "stepN.");
    let mut worst = [0f32; 3];
    for (name, exp) in &want {
        let e = rel_err(&state[name], exp, 1e-3);
        assert!(e < 1e-3, "{name} after {n} steps: relative error {e}");
        worst[0] = worst[0].max(e);
    }
    let moments: HashMap<String, Tensor> = t.opt.state().into_iter().collect();
    for (key, exp) in all.iter().filter(|(k, _)| k.starts_with("adam.")) {
        let got = moments
            .get(key)
            .unwrap_or_else(|| panic!("no Adam state {key}"));
        let e = rel_err(got, exp, 1e-8);
        assert!(e < 2e-3, "{key} after {n} steps: relative error {e}");
        worst[1] = worst[1].max(e);
    }
    let feats = t.backbone.forward(&views[0], false).unwrap();
    let e = rel_err(&feats, &all["eval.features"], 1e-3);
    assert!(e < 1e-3, "eval-mode features: relative error {e}");
    worst[2] = e;
    eprintln!(
        "after {n} steps, worst relative error: parameters and running statistics {:.2e}, \
         Adam moments {:.2e}, eval-mode features {:.2e}",
        worst[0], worst[1], worst[2]
    );
    // Eval mode reads the running statistics: train mode on the same batch differs.
    let train_feats = t.backbone.forward(&views[0], true).unwrap();
    assert!(rel_err(&train_feats, &all["eval.features"], 1e-3) > 1e-2);
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    // numpy's default (linear) quantile.
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn assert_quantiles(what: &str, mut ours: Vec<f64>, theirs: &Value, tol: f64) {
    ours.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = [0.05, 0.25, 0.5, 0.75, 0.95];
    for (q, exp) in at.iter().zip(f64s(theirs)) {
        let got = quantile(&ours, *q);
        assert!(
            (got - exp).abs() <= tol,
            "{what}: quantile {q}: ours {got:.4}, torchvision {exp:.4} (tolerance {tol})"
        );
    }
}

#[test]
fn crop_and_jitter_draws_match_torchvision_statistics() {
    let fx = json("augment.json");
    let draws = fx["draws"].as_u64().unwrap() as usize;
    let mut rng = stream(0, "quality-check");
    for (key, scale) in [("0.2-1.0", [0.2, 1.0]), ("0.08-1.0", [0.08, 1.0])] {
        let (mut areas, mut ratios) = (Vec::new(), Vec::new());
        for _ in 0..draws {
            let (_, _, h, w) = crop_params(&mut rng, 28, 28, scale, [3.0 / 4.0, 4.0 / 3.0]);
            areas.push((h * w) as f64 / 784.0);
            ratios.push(w as f64 / h as f64);
        }
        let t = &fx["crop_28"][key];
        // Means within 5 standard errors (sd ≤ 0.26 for areas and ≤ 0.17 for ratios over
        // 20 000 draws each side); quantiles loosely, as crop areas take discrete values on a
        // 28×28 grid and a quantile jumps between neighbours.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let se = (2.0 / draws as f64).sqrt();
        for (what, v, m, sd) in [
            ("area", &areas, "area_mean", 0.26),
            ("ratio", &ratios, "ratio_mean", 0.17),
        ] {
            let (got, exp) = (mean(v), t[m].as_f64().unwrap());
            assert!(
                (got - exp).abs() < 5.0 * sd * se,
                "crop {what} mean, scale {key}: {got} vs torchvision {exp}"
            );
        }
        assert_quantiles(&format!("crop area, scale {key}"), areas, &t["area"], 0.03);
        assert_quantiles(
            &format!("crop ratio, scale {key}"),
            ratios,
            &t["ratio"],
            0.04,
        );
    }
    let cfg = AugmentConfig::default();
    let (mut b, mut c, mut s, mut h) = (vec![], vec![], vec![], vec![]);
    let mut first = [0usize; 4];
    for _ in 0..draws {
        let j = jitter_params(&mut rng, &cfg);
        first[j.order[0]] += 1;
        b.push(j.brightness.unwrap() as f64);
        c.push(j.contrast.unwrap() as f64);
        s.push(j.saturation.unwrap() as f64);
        h.push(j.hue.unwrap() as f64);
    }
    let t = &fx["jitter"];
    assert_quantiles("brightness factor", b, &t["brightness"], 0.02);
    assert_quantiles("contrast factor", c, &t["contrast"], 0.02);
    assert_quantiles("saturation factor", s, &t["saturation"], 0.02);
    assert_quantiles("hue shift", h, &t["hue"], 0.005);
    for (op, exp) in f64s(&t["first_op_rate"]).into_iter().enumerate() {
        let got = first[op] as f64 / draws as f64;
        assert!((got - exp).abs() < 0.015, "op {op} first: {got} vs {exp}");
    }
}

#[test]
fn full_views_match_torchvision_view_statistics() {
    let fx = json("augment.json");
    let v = &fx["views"];
    let src: Vec<u8> = f64s(&v["source"]).iter().map(|&x| x as u8).collect();
    let n = v["n"].as_u64().unwrap() as usize;
    let aug = Augmenter::new(AugmentConfig::default(), 32);
    let img = Image {
        data: &src,
        h: 28,
        w: 28,
        c: 3,
    };
    let mut scratch = Scratch::default();
    let mut out = vec![0f32; 3 * 32 * 32];
    let (mut means, mut stds, mut spreads, mut gray) = (vec![], vec![], vec![], 0usize);
    for i in 0..n {
        let mut rng = stream_at(7, "augment", &[0, i as u64, 0]);
        aug.train_view(img, &mut rng, &mut scratch, &mut out);
        let x: Vec<f64> = out.iter().map(|&p| p as f64).collect();
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let sd = (x.iter().map(|p| (p - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt();
        let plane = 32 * 32;
        let spread = (0..plane)
            .map(|p| {
                let ch = [x[p], x[plane + p], x[2 * plane + p]];
                ch.iter().cloned().fold(f64::MIN, f64::max)
                    - ch.iter().cloned().fold(f64::MAX, f64::min)
            })
            .sum::<f64>()
            / plane as f64;
        gray += (spread < 1e-6) as usize;
        means.push(m);
        stds.push(sd);
        spreads.push(spread);
    }
    // torchvision's float path computes what we compute: tight. Its PIL path (CC's, and the
    // twin's) rounds to uint8 after every op, which shifts the upper quantiles of the view
    // mean by up to ~0.01: looser.
    for (path, tol) in [("float", 0.01), ("pil", 0.02)] {
        let t = &v[path];
        assert_quantiles(
            &format!("{path}: view mean"),
            means.clone(),
            &t["mean"],
            tol,
        );
        assert_quantiles(&format!("{path}: view std"), stds.clone(), &t["std"], tol);
        assert_quantiles(
            &format!("{path}: channel spread"),
            spreads.clone(),
            &t["channel_spread"],
            tol,
        );
        let (got, exp) = (gray as f64 / n as f64, t["gray_rate"].as_f64().unwrap());
        assert!(
            (got - exp).abs() < 0.015,
            "{path}: grayscale rate {got} vs torchvision {exp}"
        );
    }
}

#[test]
fn test_view_upsampling_matches_pil() {
    let fx = json("augment.json");
    for (key, s_in, s_out) in [("28-32", 28, 32), ("8-16", 8, 16)] {
        let t = &fx["resize"][key];
        let src: Vec<u8> = f64s(&t["source"]).iter().map(|&x| x as u8).collect();
        let pil: Vec<f64> = f64s(&t["pil"]);
        let aug = Augmenter::new(AugmentConfig::default(), s_out);
        let mut out = vec![0f32; 3 * s_out * s_out];
        let img = Image {
            data: &src,
            h: s_in,
            w: s_in,
            c: 3,
        };
        aug.test_view(img, &mut Scratch::default(), &mut out);
        let plane = s_out * s_out;
        let mut worst = 0f64;
        for p in 0..plane {
            for c in 0..3 {
                let ours = out[c * plane + p] as f64;
                worst = worst.max((ours - pil[p * 3 + c] / 255.0).abs());
            }
        }
        // PIL rounds to uint8; ours stays f32: at most half a level apart, plus PIL's
        // fixed-point coefficients.
        assert!(worst <= 1.0 / 255.0, "{key}: max difference {worst} vs PIL");
    }
}
