//! `clusterlab bench kernels`: the kernels a device trains with (on a GPU, ours from
//! `nn::device`) against our CPU kernels, op by op, on the same seeded inputs: forward and every
//! gradient, with the tolerances of the tests that check the same ops on the CPU
//! (`nn::device::tests`). The first thing to run on a new GPU: a wrong kernel shows here by
//! name, before a training curve drifts. On the CPU it compares whatever `CLUSTERLAB_KERNELS`
//! selects (`emulated`: our CUDA kernels' CPU build) with the native kernels.

use candle_core::{Device, Tensor, Var};
use serde_json::json;

use crate::config::run::{OptimizerConfig, Precision};
use crate::error::Result;
use crate::nn::{kernels, with_kernels, with_precision, Kernels, Params};

fn rel_diff(a: &Tensor, reference: &Tensor) -> Result<f64> {
    Ok(f64::from(crate::nn::relative_difference(a, reference)?))
}

fn randn(seed: u64, dims: &[usize]) -> Result<Tensor> {
    Ok(crate::nn::seeded_normal(seed, "kernel-check", dims)?)
}

/// One op's outputs (forward, then gradients) on `dev` under `k`.
type Run<'a> = dyn Fn(&Device, Kernels) -> Result<Vec<Tensor>> + 'a;

/// The worst relative difference of `run` on `device` (ambient kernels) against the CPU's
/// native kernels, over every output.
fn compare(device: &Device, run: &Run) -> Result<(f64, Vec<f64>)> {
    let reference = run(&Device::Cpu, Kernels::Native)?;
    let got = run(device, kernels())?;
    let diffs = got
        .iter()
        .zip(&reference)
        .map(|(g, r)| rel_diff(g, r))
        .collect::<Result<Vec<_>>>()?;
    Ok((diffs.iter().cloned().fold(0.0, f64::max), diffs))
}

/// y, dx, dw of one convolution (Params seeded the same on every device) under `prec`.
fn conv(geom: [usize; 8], prec: Precision) -> impl Fn(&Device, Kernels) -> Result<Vec<Tensor>> {
    move |dev, k| {
        let [n, c, h, w, cout, ks, stride, pad] = geom;
        let mut p = Params::new(crate::rng::stream(1, "init"), dev.clone());
        let layer = crate::nn::layers::Conv2d::new(&mut p, "c", c, cout, ks, stride, pad)?;
        let wt = p.trainable().remove(0).1;
        let x = Var::from_tensor(&randn(2, &[n, c, h, w])?.to_device(dev)?)?;
        with_kernels(k, || {
            with_precision(prec, || {
                let y = layer.forward(&x)?;
                let m = randn(3, y.dims())?.to_device(dev)?;
                let g = (&y * &m)?.sum_all()?.backward()?;
                let grad = |v: &Var| {
                    g.get(v)
                        .cloned()
                        .ok_or_else(|| crate::Error::Other("a gradient is missing".into()))
                };
                Ok(vec![y, grad(&x)?, grad(&wt)?])
            })
        })
    }
}

/// y, dx, dγ, dβ and the running statistics of one BatchNorm (+ReLU) in train mode.
fn batchnorm(dims: [usize; 4], relu: bool) -> impl Fn(&Device, Kernels) -> Result<Vec<Tensor>> {
    move |dev, k| {
        let [n, c, h, w] = dims;
        let mut p = Params::new(crate::rng::stream(1, "init"), dev.clone());
        let bn = crate::nn::layers::BatchNorm2d::new(&mut p, "bn", c)?;
        let gb = p.trainable();
        for (i, (_, v)) in gb.iter().enumerate() {
            v.set(&(randn(10 + i as u64, &[c])? * 0.5)?.to_device(dev)?)?;
        }
        let x = Var::from_tensor(&randn(4, &[n, c, h, w])?.affine(3.0, 1.0)?.to_device(dev)?)?;
        with_kernels(k, || {
            let y = bn.apply(&x, true, relu)?;
            let m = randn(5, y.dims())?.to_device(dev)?;
            let g = (&y * &m)?.sum_all()?.backward()?;
            let mut out = vec![y];
            for v in [&x, &gb[0].1, &gb[1].1] {
                out.push(
                    g.get(v)
                        .cloned()
                        .ok_or_else(|| crate::Error::Other("a gradient is missing".into()))?,
                );
            }
            for (_, v) in p.entries_under("bn.running") {
                out.push(v.as_tensor().clone());
            }
            Ok(out)
        })
    }
}

/// y, dx of one max-pool over ReLU outputs (ties at 0).
fn max_pool(dims: [usize; 7]) -> impl Fn(&Device, Kernels) -> Result<Vec<Tensor>> {
    move |dev, k| {
        let [n, c, h, w, ks, stride, pad] = dims;
        let x = Var::from_tensor(&randn(6, &[n, c, h, w])?.relu()?.to_device(dev)?)?;
        with_kernels(k, || {
            let y = crate::nn::pool::max_pool(&x, ks, stride, pad)?;
            let m = randn(7, y.dims())?.to_device(dev)?;
            let g = (&y * &m)?.sum_all()?.backward()?;
            let dx = g
                .get(&x)
                .cloned()
                .ok_or_else(|| crate::Error::Other("a gradient is missing".into()))?;
            Ok(vec![y, dx])
        })
    }
}

/// The parameters and moments after three Adam steps with weight decay.
fn adam(dev: &Device, k: Kernels) -> Result<Vec<Tensor>> {
    let p = Var::from_tensor(&randn(8, &[64, 33])?.to_device(dev)?)?;
    let target = randn(9, &[64, 33])?.to_device(dev)?;
    let cfg = OptimizerConfig {
        weight_decay: 0.01,
        ..OptimizerConfig::default()
    };
    with_kernels(k, || {
        let mut opt = crate::train::optim::Adam::new(vec![("p".into(), p.clone())], cfg)?;
        for _ in 0..3 {
            let loss = (p.as_tensor() - &target)?.sqr()?.sum_all()?;
            opt.step(&loss.backward()?)?;
        }
        let mut out = vec![p.as_tensor().clone()];
        out.extend(opt.state().into_iter().map(|(_, t)| t));
        Ok(out)
    })
}

/// Runs every check on `device`; one JSON object with each op's worst relative difference,
/// its tolerance, and whether all pass.
pub fn check(device: &Device) -> Result<serde_json::Value> {
    let f32_ = Precision::F32;
    let cases: Vec<(String, f64, Box<Run>)> = vec![
        (
            "conv 3x3/1 pad 1, 32 px".into(),
            1e-5,
            Box::new(conv([4, 16, 32, 32, 32, 3, 1, 1], f32_)),
        ),
        (
            "conv 3x3/2 pad 1".into(),
            1e-5,
            Box::new(conv([4, 16, 16, 16, 32, 3, 2, 1], f32_)),
        ),
        (
            "conv 1x1/2 shortcut".into(),
            1e-5,
            Box::new(conv([4, 16, 16, 16, 32, 1, 2, 0], f32_)),
        ),
        (
            "conv 7x7/2 pad 3 stem".into(),
            1e-5,
            Box::new(conv([2, 3, 64, 64, 16, 7, 2, 3], f32_)),
        ),
        // train.precision bf16 on both sides (the CPU rounds operands and result around its f32
        // kernels; a GPU runs the bf16 kernels and cuBLAS's bf16 product): bf16 rounding apart.
        (
            "conv 3x3/1 bf16".into(),
            3e-2,
            Box::new(conv([4, 16, 32, 32, 32, 3, 1, 1], Precision::Bf16)),
        ),
        (
            "batchnorm+relu".into(),
            1e-5,
            Box::new(batchnorm([8, 32, 16, 16], true)),
        ),
        (
            "batchnorm".into(),
            1e-5,
            Box::new(batchnorm([8, 32, 8, 8], false)),
        ),
        (
            "max-pool 3x3/2 pad 1".into(),
            1e-6,
            Box::new(max_pool([4, 8, 17, 16, 3, 2, 1])),
        ),
        (
            "max-pool 2x2/2".into(),
            1e-6,
            Box::new(max_pool([4, 8, 16, 16, 2, 2, 0])),
        ),
        ("adam, 3 steps".into(), 1e-5, Box::new(adam)),
    ];
    let mut checks = Vec::new();
    let mut all_ok = true;
    for (op, tol, run) in &cases {
        let (worst, diffs) = compare(device, run.as_ref())?;
        let ok = worst <= *tol;
        all_ok &= ok;
        checks.push(json!({"op": op, "worst": worst, "per_output": diffs, "tol": tol, "ok": ok}));
    }
    Ok(json!({
        "bench": "kernels",
        "device": crate::device::name(device),
        "kernels": kernels().name(device),
        "reference": "native CPU kernels",
        "checks": checks,
        "ok": all_ok,
    }))
}
