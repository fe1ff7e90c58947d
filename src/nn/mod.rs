//! Networks: seeded parameters, layers, backbones and heads.
//!
//! candle's CPU RNG cannot be seeded, so every initial weight is drawn from our own stream
//! (`init`) with PyTorch's default schemes, and stored in a [`Params`] registry whose names
//! follow PyTorch state-dict keys.

pub mod backbone;
pub mod cnn;
pub mod conv;
pub mod fused;
pub mod heads;
pub mod layers;
pub mod params;
pub mod pool;
pub mod pretrained;
pub mod residual;
pub mod resnet;
pub mod winograd;

pub use backbone::Backbone;
pub use params::Params;

/// Which kernels a layer takes (`CLUSTERLAB_KERNELS`): `native`, the default, runs our CPU
/// kernels on CPU f32 tensors; `portable` makes the CPU take the device-generic path every
/// other device takes (candle's ops, and the portable ops of this module), so that path is
/// proven against the native kernels on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Native,
    Portable,
}

thread_local! {
    static KERNELS: std::cell::Cell<Option<Kernels>> = const { std::cell::Cell::new(None) };
}

/// The kernels chosen for this thread: [`with_kernels`]'s, else `CLUSTERLAB_KERNELS`.
pub fn kernels() -> Kernels {
    if let Some(k) = KERNELS.with(|k| k.get()) {
        return k;
    }
    static FROM_ENV: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    *FROM_ENV.get_or_init(|| match std::env::var("CLUSTERLAB_KERNELS").as_deref() {
        Ok("portable") => Kernels::Portable,
        Ok("native") | Err(_) => Kernels::Native,
        Ok(other) => {
            tracing::warn!(
                "CLUSTERLAB_KERNELS={other:?} is neither native nor portable; using native"
            );
            Kernels::Native
        }
    })
}

/// Runs `f` with `k` as this thread's kernels (tests compare both paths in one process).
pub fn with_kernels<R>(k: Kernels, f: impl FnOnce() -> R) -> R {
    let before = KERNELS.with(|c| c.replace(Some(k)));
    let out = f();
    KERNELS.with(|c| c.set(before));
    out
}

/// Whether `x` goes through our native CPU kernels (a CPU f32 tensor, native kernels chosen).
pub(crate) fn native(x: &candle_core::Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && kernels() == Kernels::Native
}

/// The f32 data of a contiguous CPU tensor (our custom kernels' input); `kernel` names the
/// kernel in the error for a strided input.
pub(crate) fn contiguous_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    kernel: &str,
) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{kernel} kernel needs contiguous inputs"),
    }
}

/// Runs `f` compiled for the widest SIMD this CPU has (AVX-512, else AVX2 + FMA), chosen at
/// run time so that one binary still runs on any x86-64. Our kernels' loops are written to
/// auto-vectorise; built for the x86-64 baseline they get 128-bit SSE only. Code reached from
/// `f` gets the wider instructions where it is inlined (mark helpers `#[inline(always)]`). The
/// results are the same bits on every path: Rust never contracts a multiply and an add into an
/// FMA, and vectorising element-wise loops does not reorder any sum.
#[inline(always)]
pub(crate) fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,avx,fma,bmi1,bmi2")]
        fn v4<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,avx,fma,bmi1,bmi2")]
        fn v3<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        use std::sync::OnceLock;
        static LEVEL: OnceLock<u8> = OnceLock::new();
        let level = *LEVEL.get_or_init(|| {
            let v3 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("bmi1")
                && is_x86_feature_detected!("bmi2");
            let v4 = v3
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq");
            if std::env::var_os("CLUSTERLAB_NO_SIMD").is_some() {
                0
            } else {
                u8::from(v3) + u8::from(v4)
            }
        });
        // SAFETY: the CPU has every feature the chosen function enables (checked above).
        match level {
            2 => return unsafe { v4(f) },
            1 => return unsafe { v3(f) },
            _ => {}
        }
    }
    f()
}

/// An f32 vector of `len` elements written by `fill` in parallel chunks of `chunk` elements
/// (arguments: chunk index, its uninitialised slice), without the zeroing `vec![0.0; len]` costs
/// (a tenth of a ResNet training step), and what `fill` returned for each chunk, in chunk order.
/// `fill` must write every element of its chunk. The vector has room for `extra` more elements
/// (appended by the caller without a reallocation).
pub(crate) fn par_fill_collect<R: Send>(
    len: usize,
    extra: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) -> R + Sync + Send,
) -> (Vec<f32>, Vec<R>) {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len + extra);
    let mut results = Vec::new();
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .map(|(i, c)| fill(i, c))
        .collect_into_vec(&mut results);
    // SAFETY: `fill` wrote every element of every chunk (its contract above).
    unsafe { v.set_len(len) };
    (v, results)
}

/// [`par_fill_collect`] for a `fill` that returns nothing.
pub(crate) fn par_filled(
    len: usize,
    extra: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    par_fill_collect(len, extra, chunk, fill).0
}

/// Largest absolute difference of two tensors relative to the reference's largest magnitude
/// (at least 1): the tolerance measure of the kernel tests.
#[cfg(test)]
pub(crate) fn rel_diff(a: &candle_core::Tensor, reference: &candle_core::Tensor) -> f32 {
    let d = (a - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let s = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1.0);
    d / s
}

/// Checks a convolution's output and both gradients against candle's `conv2d` (the reference
/// of the kernel tests), within 1e-5 by [`rel_diff`]: `ours` applies our op to (x, w).
#[cfg(test)]
pub(crate) fn assert_conv_matches_candle(
    (n, c, h, w): (usize, usize, usize, usize),
    (cout, k, stride, pad): (usize, usize, usize, usize),
    ours: impl Fn(&candle_core::Tensor, &candle_core::Tensor) -> candle_core::Tensor,
) {
    use candle_core::{Device, Tensor, Var};
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, c, h, w), &dev).unwrap()).unwrap();
    let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (cout, c, k, k), &dev).unwrap()).unwrap();
    let a = ours(&x, &wt);
    let b = x.conv2d(&wt, pad, stride, 1, 1).unwrap();
    assert_eq!(a.dims(), b.dims());
    let what = format!("{n}×{c}×{h}×{w} → {cout}, k {k}, stride {stride}, pad {pad}");
    let d = rel_diff(&a, &b);
    assert!(d < 1e-5, "output of {what}: {d}");
    // A loss that weights every output differently.
    let m = Tensor::randn(0f32, 1., a.shape(), &dev).unwrap();
    let ga = (a * &m).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (b * &m).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("dx", &x), ("dw", &wt)] {
        let d = rel_diff(ga.get(v).unwrap(), gb.get(v).unwrap());
        assert!(d < 1e-5, "{name} of {what}: {d}");
    }
}
