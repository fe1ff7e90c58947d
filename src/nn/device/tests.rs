//! The CPU build of our CUDA kernels (feature `cuda-emu`) against our CPU kernels: every op
//! of the device layer, forward and every gradient, on the shapes of every backbone × stem,
//! with ties and padding; the launch limit's batch slices; bf16 variants against f32.
//! Run: `cargo test --release --features cuda-emu --lib nn::device`.

use candle_core::{DType, Device, Tensor, Var};

use super::launch::{self, Arg, Launch};
use crate::nn::{differing, rel_diff, resnet::tests::rel_l2, with_kernels, Kernels};

fn randn(seed: u64, dims: &[usize]) -> Tensor {
    crate::nn::seeded_normal(seed, "test", dims).unwrap()
}

/// Convolution: im2col + matmul + col2im (emulated kernels) equals our CPU kernels (direct
/// im2col/gemm and Winograd), forward and both gradients, to 1e-5 relative: the same sums
/// in another order. Shapes: every stem and stage kind (3×3/1, 3×3/2, 1×1/2 shortcut, 7×7/2
/// with padding 3, odd sizes).
#[test]
fn conv_equals_the_native_kernels() {
    for (i, &(n, c, h, w, cout, k, stride, pad)) in [
        (2, 3, 32, 32, 8, 3, 1, 1),
        (2, 8, 16, 16, 16, 3, 2, 1),
        (2, 8, 16, 16, 16, 1, 2, 0),
        (2, 3, 32, 32, 8, 7, 2, 3),
        (3, 5, 9, 7, 4, 3, 2, 1),
    ]
    .iter()
    .enumerate()
    {
        let x = Var::from_tensor(&randn(i as u64, &[n, c, h, w])).unwrap();
        let mut p = crate::nn::Params::new(crate::rng::stream(1, "init"), Device::Cpu);
        let conv = crate::nn::layers::Conv2d::new(&mut p, "c", c, cout, k, stride, pad).unwrap();
        let wt = p.trainable().remove(0).1;
        let run = |kernels| {
            with_kernels(kernels, || {
                let y = conv.forward(&x).unwrap();
                let m = randn(7, y.dims());
                let g = (&y * &m).unwrap().sum_all().unwrap().backward().unwrap();
                (y, g.get(&x).unwrap().clone(), g.get(&wt).unwrap().clone())
            })
        };
        let (y1, dx1, dw1) = run(Kernels::Native);
        let (y2, dx2, dw2) = run(Kernels::Emulated);
        let at = format!("{k}×{k}/{stride} pad {pad} on {n}×{c}×{h}×{w}");
        assert!(
            rel_diff(&y2, &y1) < 1e-5,
            "forward {at}: {}",
            rel_diff(&y2, &y1)
        );
        assert!(
            rel_diff(&dx2, &dx1) < 1e-5,
            "dx {at}: {}",
            rel_diff(&dx2, &dx1)
        );
        assert!(
            rel_diff(&dw2, &dw1) < 1e-5,
            "dw {at}: {}",
            rel_diff(&dw2, &dw1)
        );
    }
}

/// The bf16 kernels, in both column layouts: im2col copies bf16 values exactly (the f32
/// columns of the same values); col2im sums in f32 and rounds once (the f32 result rounded to
/// bf16, bit for bit). The two layouts hold the same columns.
#[test]
fn bf16_im2col_and_col2im_match_f32() {
    use super::conv::{Cols, Im2col};
    let op = Im2col {
        n: 2,
        c: 3,
        h: 11,
        w: 10,
        k: 3,
        stride: 2,
        pad: 1,
    };
    let cpu = |t: &Tensor| match &*t.storage_and_layout().0 {
        candle_core::Storage::Cpu(s) => s.clone(),
        _ => unreachable!(),
    };
    let im2col = |x: &Tensor, layout| {
        let s = cpu(x);
        let l = candle_core::Layout::contiguous(x.dims());
        let out = launch::cpu_op(
            &op.launches(x.dtype(), layout).unwrap(),
            &[(&s, &l)],
            x.dtype(),
            op.cols_len(),
        )
        .unwrap();
        Tensor::from_storage(
            candle_core::Storage::Cpu(out),
            op.cols_len(),
            candle_core::op::BackpropOp::none(),
            false,
        )
    };
    let col2im = |cols: &Tensor, layout| {
        let s = cpu(cols);
        let l = candle_core::Layout::contiguous(cols.dims());
        let len = op.n * op.c * op.h * op.w;
        let out = launch::cpu_op(
            &op.col2im_launches(cols.dtype(), layout).unwrap(),
            &[(&s, &l)],
            cols.dtype(),
            len,
        )
        .unwrap();
        Tensor::from_storage(
            candle_core::Storage::Cpu(out),
            len,
            candle_core::op::BackpropOp::none(),
            false,
        )
    };
    let x = randn(3, &[2, 3, 11, 10]).to_dtype(DType::BF16).unwrap();
    let (k, p) = (op.kdim(), op.pdim());
    let mut by_layout = Vec::new();
    for layout in [Cols::ImageMajor, Cols::RowMajor] {
        let c16 = im2col(&x, layout);
        let c32 = im2col(&x.to_dtype(DType::F32).unwrap(), layout);
        assert_eq!(differing(&c16.to_dtype(DType::F32).unwrap(), &c32), 0);
        let g = randn(4, &[op.cols_len()]).to_dtype(DType::BF16).unwrap();
        let d16 = col2im(&g, layout);
        let d32 = col2im(&g.to_dtype(DType::F32).unwrap(), layout);
        let rounded = d32
            .to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        assert_eq!(differing(&d16.to_dtype(DType::F32).unwrap(), &rounded), 0);
        by_layout.push(c32);
    }
    // Image-major (n, K, P) is row-major (K, n, P) with the first two axes swapped.
    let swapped = by_layout[0]
        .reshape((2, k, p))
        .unwrap()
        .transpose(0, 1)
        .unwrap()
        .flatten_all()
        .unwrap();
    assert_eq!(differing(&swapped, &by_layout[1]), 0);
}

/// BatchNorm with and without ReLU: the device kernels equal the fused CPU kernel (output,
/// dx, dγ, dβ, running statistics) to 1e-5 relative; the sums run in another order (f64 per
/// element on the device, f32 lanes per plane then f64 on the CPU).
#[test]
fn batchnorm_equals_the_native_kernel() {
    for (i, &(n, c, h, w)) in [(4, 3, 8, 8), (2, 16, 5, 7), (8, 64, 4, 4), (2, 5, 1, 1)]
        .iter()
        .enumerate()
    {
        for relu in [true, false] {
            let x = Var::from_tensor(
                &randn(10 + i as u64, &[n, c, h, w])
                    .affine(3.0, 1.0)
                    .unwrap(),
            )
            .unwrap();
            let run = |kernels| {
                with_kernels(kernels, || {
                    let mut p = crate::nn::Params::new(crate::rng::stream(1, "init"), Device::Cpu);
                    let bn = crate::nn::layers::BatchNorm2d::new(&mut p, "bn", c).unwrap();
                    // γ, β away from 1, 0 so that their gradients and the ReLU mask matter.
                    let gb = p.trainable();
                    for (name, v) in &gb {
                        let t = randn(if name.ends_with("weight") { 20 } else { 21 }, &[c]);
                        v.set(&(t * 0.5).unwrap()).unwrap();
                    }
                    let y = bn.apply(&x, true, relu).unwrap();
                    let m = randn(8, y.dims());
                    let g = (&y * &m).unwrap().sum_all().unwrap().backward().unwrap();
                    let mut out = vec![y, g.get(&x).unwrap().clone()];
                    out.extend(gb.iter().map(|(_, v)| g.get(v).unwrap().clone()));
                    out.extend(
                        p.entries_under("bn.running")
                            .into_iter()
                            .map(|(_, v)| v.as_tensor().clone()),
                    );
                    out
                })
            };
            let a = run(Kernels::Native);
            let b = run(Kernels::Emulated);
            assert_eq!(a.len(), 6);
            for (j, (x, y)) in a.iter().zip(&b).enumerate() {
                let d = rel_diff(y, x);
                assert!(
                    d < 1e-5,
                    "{n}×{c}×{h}×{w} relu {relu}: tensor {j} differs by {d:e}"
                );
            }
        }
    }
}

/// The max-pool kernels equal the CPU kernel bit for bit, forward and gradient, with ReLU
/// zeros as ties (the first maximum takes the whole gradient; the device gathers each input's
/// windows in the order the CPU scatters them) and padding.
#[test]
fn max_pool_equals_the_native_kernel() {
    for (i, &(n, c, h, w, k, stride, pad)) in [
        (2, 3, 16, 16, 3, 2, 1),
        (2, 2, 7, 9, 3, 2, 1),
        (2, 4, 8, 8, 2, 2, 0),
        (3, 1, 5, 5, 3, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let x = Var::from_tensor(&randn(30 + i as u64, &[n, c, h, w]).relu().unwrap()).unwrap();
        let run = |kernels| {
            with_kernels(kernels, || {
                let y = crate::nn::pool::max_pool(&x, k, stride, pad).unwrap();
                let m = randn(9, y.dims());
                let g = (&y * &m).unwrap().sum_all().unwrap().backward().unwrap();
                (y, g.get(&x).unwrap().clone())
            })
        };
        let (y1, g1) = run(Kernels::Native);
        let (y2, g2) = run(Kernels::Emulated);
        assert_eq!(differing(&y1, &y2), 0, "forward {k}/{stride}/{pad}");
        assert_eq!(differing(&g1, &g2), 0, "gradient {k}/{stride}/{pad}");
    }
}

/// Every backbone × stem gives the same features and gradients on the emulated device
/// kernels as on our CPU kernels, within the tolerances of the portable path's test
/// (`backbone.rs`: features 1e-4, gradients 1e-2 in relative L2, for the reason given there).
#[test]
fn every_backbone_and_stem_equals_the_native_kernels() {
    use crate::config::run::ModelConfig;
    use crate::nn::{Backbone, Params};
    for (backbone, stem) in [
        ("cnn", "cifar"),
        ("resnet18", "cifar"),
        ("resnet18", "imagenet"),
        ("resnet34", "imagenet"),
    ] {
        let cfg = ModelConfig {
            backbone: backbone.into(),
            widths: vec![16, 32],
            stem: stem.into(),
            ..ModelConfig::default()
        };
        let mut p = Params::new(crate::rng::stream(3, "init"), Device::Cpu);
        let net = Backbone::new(&mut p, &cfg, 3).unwrap();
        let x = randn(5, &[8, 3, 32, 32]);
        let m = randn(6, &[8, net.out_dim()]);
        let run = |k| {
            with_kernels(k, || {
                let h = net.forward(&x, true).unwrap();
                let g = (&h * &m).unwrap().sum_all().unwrap().backward().unwrap();
                let grads: Vec<Tensor> = p
                    .trainable()
                    .into_iter()
                    .map(|(_, v)| g.get(&v).unwrap().clone())
                    .collect();
                (h, grads)
            })
        };
        let (h1, g1) = run(Kernels::Native);
        let (h2, g2) = run(Kernels::Emulated);
        let d = rel_diff(&h2, &h1);
        assert!(d < 1e-4, "{backbone}/{stem}: features differ by {d:e}");
        for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
            let d = rel_l2(b, a);
            assert!(
                d < 1e-2,
                "{backbone}/{stem}: gradient {i} differs by {d:e} (L2)"
            );
        }
    }
}

/// With the launch limit lowered below one batch's columns, the convolution and the pool run
/// in batch slices and give the same bits as one launch.
#[test]
fn batch_slices_under_a_low_launch_limit_give_the_same_bits() {
    let x = randn(60, &[6, 4, 12, 12]);
    let mut p = crate::nn::Params::new(crate::rng::stream(1, "init"), Device::Cpu);
    let conv = crate::nn::layers::Conv2d::new(&mut p, "c", 4, 8, 3, 1, 1).unwrap();
    let run = || {
        let y = conv.forward(&x).unwrap();
        let z = crate::nn::pool::max_pool(&y, 3, 2, 1).unwrap();
        (y, z)
    };
    let (y1, z1) = with_kernels(Kernels::Emulated, run);
    // One image's columns are 4·9·144 = 5 184 elements: a limit of 6 000 gives six slices.
    let (y2, z2) = with_kernels(Kernels::Emulated, || {
        crate::nn::with_launch_limit(6_000, run)
    });
    assert_eq!(differing(&y1, &y2), 0);
    assert_eq!(differing(&z1, &z2), 0);
}

/// A launch naming a kernel that does not exist, or with the wrong number of arguments, is an
/// error (the CPU build checks both; the driver would refuse the first).
#[test]
fn bad_launches_are_errors() {
    let x = candle_core::CpuStorage::F32(vec![0.0; 4]);
    let l = candle_core::Layout::contiguous(4);
    let bad = [
        Launch::elementwise("no_such_kernel", 4, vec![Arg::Buf(0)]),
        Launch::elementwise("cl_adam_p", 4, vec![Arg::Buf(0), Arg::U64(4)]),
    ];
    for b in bad {
        let e = launch::cpu_op(std::slice::from_ref(&b), &[(&x, &l)], DType::F32, 4);
        assert!(e.is_err(), "{} accepted", b.kernel);
    }
}
