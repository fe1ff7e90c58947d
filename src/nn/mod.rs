//! Networks: seeded parameters, layers, backbones and heads.
//!
//! candle's CPU RNG cannot be seeded, so every initial weight is drawn from our own stream
//! (`init`) with PyTorch's default schemes, and stored in a [`Params`] registry whose names
//! follow PyTorch state-dict keys.

pub mod backbone;
pub mod cnn;
pub mod conv;
pub mod device;
pub mod fused;
pub mod grad;
pub mod heads;
pub mod layers;
pub mod legacy_pth;
pub mod params;
pub mod pool;
pub mod pretrained;
pub mod residual;
pub mod resnet;
pub mod winograd;

pub use crate::config::run::Precision;
pub use backbone::Backbone;
pub use grad::{no_grad, read};
pub use params::Params;

use candle_core::{DType, Tensor};

/// Which kernels a layer takes (`CLUSTERLAB_KERNELS`): `native`, the default, runs our CPU
/// kernels on CPU f32 tensors and our CUDA kernels ([`device`]) on CUDA tensors; `portable`
/// takes the device-generic path (candle's ops, and the portable ops of this module) on every
/// device, so that path is proven against the native kernels on the CPU; `emulated` runs the
/// CPU build of our CUDA kernels on CPU tensors (a build with the `cuda-emu` feature), so
/// that the GPU's kernels and op graph are proven on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Native,
    Portable,
    Emulated,
}

impl Kernels {
    /// The name recorded in provenance for a run on `device`.
    pub fn name(self, device: &candle_core::Device) -> &'static str {
        match (self, device.is_cpu()) {
            (Kernels::Native, true) => "native",
            (Kernels::Native, false) => "device",
            (Kernels::Portable, _) => "portable",
            (Kernels::Emulated, _) => "emulated",
        }
    }
}

thread_local! {
    static KERNELS: std::cell::Cell<Option<Kernels>> = const { std::cell::Cell::new(None) };
    static PRECISION: std::cell::Cell<Precision> = const { std::cell::Cell::new(Precision::F32) };
    static LAUNCH_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(MAX_LAUNCH) };
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
        Ok("emulated") if cfg!(feature = "cuda-emu") => Kernels::Emulated,
        Ok("emulated") => {
            tracing::warn!(
                "CLUSTERLAB_KERNELS=emulated needs a build with the cuda-emu feature; using native"
            );
            Kernels::Native
        }
        Ok(other) => {
            tracing::warn!(
                "CLUSTERLAB_KERNELS={other:?} is none of native, portable, emulated; using native"
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

/// The arithmetic of convolutions and linear layers on this thread (`train.precision`), set for
/// the span of a training run or an evaluation by [`with_precision`].
pub fn precision() -> Precision {
    PRECISION.with(|p| p.get())
}

/// Runs `f` with `p` as this thread's precision (see [`PrecisionScope`]).
pub fn with_precision<R>(p: Precision, f: impl FnOnce() -> R) -> R {
    let _scope = PrecisionScope::set(p);
    f()
}

/// This thread's precision until the scope ends, then the one before. `tf32` also lets the
/// GPU's f32 matrix multiplies use TensorFloat-32 (candle's cuBLAS flag; nothing on the CPU).
pub struct PrecisionScope {
    before: Precision,
    tf32: bool,
}

impl PrecisionScope {
    pub fn set(p: Precision) -> Self {
        let before = PRECISION.with(|c| c.replace(p));
        let tf32 = candle_core::cuda::gemm_reduced_precision_f32();
        candle_core::cuda::set_gemm_reduced_precision_f32(p == Precision::Tf32);
        Self { before, tf32 }
    }
}

impl Drop for PrecisionScope {
    fn drop(&mut self) {
        candle_core::cuda::set_gemm_reduced_precision_f32(self.tf32);
        PRECISION.with(|c| c.set(self.before));
    }
}

/// `x` rounded to bf16 and back to f32: a bf16 operand on the CPU's f32 kernels. Autograd
/// rounds the gradient on its way back the same way, as a bf16 tensor's gradient would be.
pub(crate) fn round_bf16(x: &Tensor) -> candle_core::Result<Tensor> {
    x.to_dtype(DType::BF16)?.to_dtype(DType::F32)
}

/// `op` (a convolution or a linear layer's product) applied under this thread's precision:
/// `bf16` on the CPU rounds the operands and the result to bf16 around the f32 op (bf16
/// products, f32 accumulation: what a tensor core computes; candle's CPU backend has no bf16
/// matmul); `bf16` on other devices casts the operands to bf16 and the result back to f32, so
/// that the device's bf16 kernels run. f32 and tf32 call `op` on the operands as they are.
pub(crate) fn autocast(
    x: &Tensor,
    w: &Tensor,
    op: impl Fn(&Tensor, &Tensor) -> crate::error::Result<Tensor>,
) -> crate::error::Result<Tensor> {
    if precision() != Precision::Bf16 || x.dtype() != DType::F32 {
        return op(x, w);
    }
    if x.device().is_cpu() {
        return Ok(round_bf16(&op(&round_bf16(x)?, &round_bf16(w)?)?)?);
    }
    let y = op(&x.to_dtype(DType::BF16)?, &w.to_dtype(DType::BF16)?)?;
    Ok(y.to_dtype(DType::F32)?)
}

/// The most elements one kernel launch may address: 32-bit sizes and offsets.
pub const MAX_LAUNCH: usize = i32::MAX as usize;

/// The launch limit on this thread: [`MAX_LAUNCH`], or lower under [`with_launch_limit`]
/// (tests prove the splitting with small tensors).
pub fn launch_limit() -> usize {
    LAUNCH_LIMIT.with(|l| l.get())
}

/// Runs `f` with `limit` elements as this thread's launch limit.
pub fn with_launch_limit<R>(limit: usize, f: impl FnOnce() -> R) -> R {
    let before = LAUNCH_LIMIT.with(|c| c.replace(limit.max(1)));
    let out = f();
    LAUNCH_LIMIT.with(|c| c.set(before));
    out
}

/// `f` applied to `x` in slices along the batch axis so that no slice's launch exceeds the
/// launch limit (`per_sample`: the most elements the op touches per image, e.g. a
/// convolution's im2col columns), the slices' results concatenated; `f(x)` when it fits.
/// The op must treat images independently (convolutions, pooling).
pub(crate) fn split_batch(
    x: &Tensor,
    per_sample: usize,
    f: impl Fn(&Tensor) -> crate::error::Result<Tensor>,
) -> crate::error::Result<Tensor> {
    let n = x.dim(0)?;
    let per_slice = (launch_limit() / per_sample.max(1)).max(1);
    if n <= per_slice {
        return f(x);
    }
    let mut parts = Vec::with_capacity(n.div_ceil(per_slice));
    let mut start = 0;
    while start < n {
        let len = per_slice.min(n - start);
        parts.push(f(&x.narrow(0, start, len)?)?);
        start += len;
    }
    Ok(Tensor::cat(&parts, 0)?)
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

/// A CPU f32 tensor of standard normal values from the named stream `(seed, name)`: the
/// seeded inputs of the kernel tests and of `bench kernels`.
pub fn seeded_normal(seed: u64, name: &str, dims: &[usize]) -> candle_core::Result<Tensor> {
    let mut r = crate::rng::stream(seed, name);
    let v: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| crate::rng::normal(&mut r) as f32)
        .collect();
    Tensor::from_vec(v, dims, &candle_core::Device::Cpu)
}

/// How many elements of two f32 tensors differ in their bits (the emulated kernels' tests).
#[cfg(all(test, feature = "cuda-emu"))]
pub(crate) fn differing(a: &Tensor, b: &Tensor) -> usize {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
}

/// Largest absolute difference of `a` (any device and float dtype, compared as CPU f32) and
/// a CPU f32 `reference`, relative to the reference's largest magnitude (at least 1): the
/// tolerance measure of the kernel tests and of `bench kernels`.
pub fn relative_difference(a: &Tensor, reference: &Tensor) -> candle_core::Result<f32> {
    let a = a
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(DType::F32)?;
    let d = (&a - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let s = reference.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
    Ok(d / s)
}

/// [`relative_difference`] in tests.
#[cfg(test)]
pub(crate) fn rel_diff(a: &Tensor, reference: &Tensor) -> f32 {
    relative_difference(a, reference).unwrap()
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

#[cfg(test)]
mod launch_and_precision_tests {
    use super::*;
    use crate::nn::layers::{Conv2d, Linear};
    use crate::nn::resnet::tests::rel_l2;
    use candle_core::{Device, Var};

    /// Fixed inputs in [−1, 1] (candle's CPU `randn` cannot be seeded).
    fn wave(shape: (usize, usize, usize, usize), dev: &Device) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Tensor::arange(0f32, n as f32, dev)
            .unwrap()
            .affine(0.731, 0.2)
            .unwrap()
            .sin()
            .unwrap()
            .reshape(shape)
            .unwrap()
    }

    fn grads_of(y: &Tensor, vars: &[&Var]) -> Vec<Tensor> {
        // A fixed, non-uniform upstream gradient: Σ y·r.
        let r = Tensor::arange(0f32, y.elem_count() as f32, y.device())
            .unwrap()
            .affine(0.37, 0.0)
            .unwrap()
            .sin()
            .unwrap()
            .reshape(y.shape())
            .unwrap();
        let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        vars.iter()
            .map(|v| g.get(v.as_tensor()).unwrap().clone())
            .collect()
    }

    /// Off our CPU kernels, a convolution and a max-pool whose launch would exceed the limit run
    /// in batch slices: the output is the same bits, the gradients the same within rounding
    /// (the weight gradient is summed slice by slice).
    #[test]
    fn launches_over_the_limit_are_split_along_the_batch() {
        let dev = Device::Cpu;
        let mut p = Params::new(crate::rng::stream(3, "init"), dev.clone());
        let conv = Conv2d::new(&mut p, "c", 3, 8, 3, 2, 1).unwrap();
        let x = Var::from_tensor(&wave((7, 3, 12, 12), &dev)).unwrap();
        let w = p.trainable().into_iter().next().unwrap().1;
        let run = |limit: usize| {
            with_kernels(Kernels::Portable, || {
                with_launch_limit(limit, || {
                    let y = conv.forward(&x).unwrap();
                    let pooled = pool::max_pool_portable(&y, 3, 2, 1).unwrap();
                    let g = grads_of(&pooled, &[&x, &w]);
                    (pooled, g)
                })
            })
        };
        let (whole, gw) = run(MAX_LAUNCH);
        // im2col of one image: 6·6 columns × 27 = 972 elements; 2 000 → slices of 2 images.
        let (sliced, gs) = run(2_000);
        assert_eq!(whole.dims(), [7, 8, 3, 3]);
        assert_eq!(
            (whole.clone() - &sliced)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0,
            "forward"
        );
        for (a, b) in gw.iter().zip(&gs) {
            assert!(rel_diff(b, a) < 1e-6, "gradient: {}", rel_diff(b, a));
        }
        // Slices of one image each, the smallest possible.
        let (single, _) = run(1);
        assert!(rel_diff(&single, &whole) == 0.0);
    }

    /// bf16 autocast on the CPU (operands and results rounded to bf16, f32 accumulation) on our
    /// kernels and on the device-generic path: both agree within bf16's rounding, and both
    /// differ from f32 by about that much.
    #[test]
    fn bf16_autocast_on_both_paths_agrees_within_bf16_rounding() {
        let dev = Device::Cpu;
        let mut p = Params::new(crate::rng::stream(5, "init"), dev.clone());
        let conv = Conv2d::new(&mut p, "c", 16, 16, 3, 1, 1).unwrap();
        let lin = Linear::new(&mut p, "l", 16 * 6 * 6, 10).unwrap();
        let x = Var::from_tensor(&wave((4, 16, 6, 6), &dev)).unwrap();
        let vars: Vec<Var> = p.trainable().into_iter().map(|(_, v)| v).collect();
        let run = |k: Kernels, prec: Precision| {
            with_kernels(k, || {
                with_precision(prec, || {
                    let h = conv.forward(&x).unwrap().relu().unwrap();
                    let y = lin.forward(&h.flatten_from(1).unwrap()).unwrap();
                    assert_eq!(y.dtype(), DType::F32, "results come back as f32");
                    let mut all = vec![&x];
                    all.extend(vars.iter());
                    (y.clone(), grads_of(&y, &all))
                })
            })
        };
        let (f32_y, f32_g) = run(Kernels::Native, Precision::F32);
        let (nat_y, nat_g) = run(Kernels::Native, Precision::Bf16);
        let (por_y, por_g) = run(Kernels::Portable, Precision::Bf16);
        // bf16 keeps 8 significant bits: a relative rounding of 2^-9 ≈ 2e-3 per operand.
        let d_bf16 = rel_l2(&nat_y, &f32_y);
        assert!(
            d_bf16 > 1e-4 && d_bf16 < 1e-2,
            "bf16 vs f32 output: {d_bf16}"
        );
        let d_paths = rel_l2(&por_y, &nat_y);
        assert!(d_paths < 1e-3, "portable vs native bf16 output: {d_paths}");
        for ((a, b), c) in nat_g.iter().zip(&por_g).zip(&f32_g) {
            assert_eq!(
                a.dtype(),
                DType::F32,
                "gradients of f32 master weights are f32"
            );
            assert!(rel_l2(b, a) < 1e-5, "gradient, paths: {}", rel_l2(b, a));
            // Gradients are sums of many products that largely cancel (seen: 6e-3 for the
            // linear weight, 6e-2 for the input, 0.13 for the conv weight): bf16 moves them by
            // more than its 2e-3 rounding, but the two paths agree to f32 rounding.
            let d = rel_l2(a, c);
            assert!(
                a.dims() == [10] || (d > 1e-4 && d < 0.3),
                "gradient {:?}, bf16 vs f32: {d}",
                a.dims()
            );
        }
        // tf32 computes f32 on the CPU.
        let (tf_y, _) = run(Kernels::Native, Precision::Tf32);
        assert_eq!(rel_diff(&tf_y, &f32_y), 0.0);
    }
}
