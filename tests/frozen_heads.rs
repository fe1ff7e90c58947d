//! The losses of the methods on frozen features (TEMI, SCAN, TURTLE) and the k-NN mining,
//! against PyTorch ports of the authors' published code: `tests/fixtures/frozen/generate.py`
//! (it names the repository, commit and file of each) wrote `golden.safetensors`. Values and
//! gradients are compared in f64.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use clusterlab::config::frozen::TemiConfig;
use clusterlab::methods::frozen::weight_norm_apply;
use clusterlab::methods::losses::softmax_rows;
use clusterlab::methods::{neighbours, scan, temi, turtle};

fn golden() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/frozen/golden.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (vals(got), vals(want));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: ours {a}, reference {b}"
        );
    }
}

/// TEMI (multihead_losses.py: TEMI over 3 heads, β 0.6, τ 0.1 / 0.1): the per-head losses, the
/// updated cluster marginals and the gradient of their mean w.r.t. the student logits.
#[test]
fn temi_matches_the_published_loss() {
    let g = golden();
    let heads = g["temi.student"].dim(0).unwrap();
    let student: Vec<Var> = (0..heads)
        .map(|h| Var::from_tensor(&g["temi.student"].get(h).unwrap()).unwrap())
        .collect();
    let teacher: Vec<Tensor> = (0..heads)
        .map(|h| g["temi.teacher"].get(h).unwrap())
        .collect();
    let s: Vec<Tensor> = student.iter().map(|v| v.as_tensor().clone()).collect();
    let (losses, pk) =
        temi::temi_head_losses(&s, &teacher, &g["temi.pk_in"], &TemiConfig::default()).unwrap();
    close("temi losses", &losses, &g["temi.losses"], 1e-10);
    close("temi p_k", &pk, &g["temi.pk_out"], 1e-12);
    let grads = losses.mean_all().unwrap().backward().unwrap();
    for (h, v) in student.iter().enumerate() {
        let want = g["temi.grad_student"].get(h).unwrap();
        close(
            &format!("temi grad head {h}"),
            grads.get(v).unwrap(),
            &want,
            1e-9,
        );
    }
}

/// SCAN (losses.py: SCANLoss, entropy weight 5): both terms and the gradients of the total.
#[test]
fn scan_matches_the_published_loss() {
    let g = golden();
    let a = Var::from_tensor(&g["scan.anchors"]).unwrap();
    let n = Var::from_tensor(&g["scan.neighbors"]).unwrap();
    let (c, e) = scan::scan_terms(a.as_tensor(), n.as_tensor()).unwrap();
    close(
        "scan consistency",
        &c.reshape(1).unwrap(),
        &g["scan.consistency"],
        1e-12,
    );
    // Our `entropy` term is minus SCAN's entropy_loss (so its weight is +5).
    let e_scan = e.neg().unwrap().reshape(1).unwrap();
    close("scan entropy", &e_scan, &g["scan.entropy_loss"], 1e-12);
    let total = (c + (e * 5.0).unwrap()).unwrap();
    let grads = total.backward().unwrap();
    close(
        "scan grad anchors",
        grads.get(&a).unwrap(),
        &g["scan.grad_anchors"],
        1e-10,
    );
    close(
        "scan grad neighbours",
        grads.get(&n).unwrap(),
        &g["scan.grad_neighbors"],
        1e-10,
    );
}

/// TURTLE (run_turtle.py, two spaces, M = 4 inner Adam steps): the fitted inner classifiers,
/// both terms and the task encoder's gradients of `pred_error − 10 · entr_reg`.
#[test]
fn turtle_matches_the_published_step() {
    let g = golden();
    let mut zs = Vec::new();
    let mut enc = Vec::new();
    for m in 0..2 {
        let t = |k: &str| g[&format!("turtle.{m}.{k}")].clone();
        zs.push(t("z"));
        enc.push([
            Var::from_tensor(&t("g")).unwrap(),
            Var::from_tensor(&t("v")).unwrap(),
            Var::from_tensor(&t("b")).unwrap(),
        ]);
    }
    let per_space: Vec<Tensor> = (zs.iter().zip(&enc))
        .map(|(z, [gv, v, b])| {
            let logits =
                weight_norm_apply(z, gv.as_tensor(), v.as_tensor(), Some(b.as_tensor())).unwrap();
            softmax_rows(&logits).unwrap()
        })
        .collect();
    let tau = ((&per_space[0] + &per_space[1]).unwrap() * 0.5)
        .unwrap()
        .detach();
    let mut inner = Vec::new();
    for (m, z) in zs.iter().enumerate() {
        let t = |k: &str| g[&format!("turtle.{m}.{k}")].clone();
        let (w, b) = turtle::inner_fit(z, &tau, (t("w_init"), t("b_init")), 4, 1e-3).unwrap();
        close(&format!("turtle inner w {m}"), &w, &t("w_fit"), 1e-9);
        close(&format!("turtle inner b {m}"), &b, &t("b_fit"), 1e-9);
        inner.push((w, b));
    }
    let (pred, ent) = turtle::turtle_terms(&zs, &per_space, &inner).unwrap();
    close(
        "turtle pred_error",
        &pred.reshape(1).unwrap(),
        &g["turtle.pred_error"],
        1e-12,
    );
    let entr_reg = ent.neg().unwrap().reshape(1).unwrap();
    close("turtle entr_reg", &entr_reg, &g["turtle.entr_reg"], 1e-12);
    let grads = (pred + (ent * 10.0).unwrap()).unwrap().backward().unwrap();
    for (m, vars) in enc.iter().enumerate() {
        for (var, k) in vars.iter().zip(["grad_g", "grad_v", "grad_b"]) {
            let want = &g[&format!("turtle.{m}.{k}")];
            close(
                &format!("turtle {k} space {m}"),
                grads.get(var).unwrap(),
                want,
                1e-9,
            );
        }
    }
}

/// The mined neighbours equal torch's cosine top-k with the diagonal excluded.
#[test]
fn mined_neighbours_match_torch_topk() {
    let g = golden();
    let x = &g["knn.x"];
    let (n, d) = x.dims2().unwrap();
    let want: Vec<i64> = g["knn.table"].flatten_all().unwrap().to_vec1().unwrap();
    let k = want.len() / n;
    let xf: Vec<f32> = vals(x).into_iter().map(|v| v as f32).collect();
    let got = neighbours::mine(&xf, n, d, k).unwrap();
    let got: Vec<i64> = got.table.iter().map(|&v| v as i64).collect();
    assert_eq!(got, want);
}
