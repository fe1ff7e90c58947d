//! The foundation backbones against transformers (fixtures from
//! `tests/fixtures/foundation/make_fixtures.py`: tiny random-weight Dinov2Model and
//! CLIPVisionModelWithProjection, transformers 5.25 / torch 2.15, and the PIL image processors),
//! and the feature cache's lifecycle.

mod common;

use candle_core::{Device, Tensor};
use clusterlab::features::{cache, foundation, preprocess::Preprocess, Extractor, Family};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/foundation")
        .join(name)
}

fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("reference.safetensors"), &Device::Cpu).unwrap()
}

fn weights(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).unwrap()
}

/// max |a − b| / max(1, max |b|).
fn diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let m = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    d / m.max(1.0)
}

#[test]
fn dinov2_equals_transformers_at_its_grid_and_interpolated() {
    let r = reference();
    let m = clusterlab::features::dinov2::Dinov2::new(
        weights("dinov2_tiny.safetensors"),
        2,
        &Device::Cpu,
    )
    .unwrap();
    for s in [16, 24] {
        let got = m.forward(&r[&format!("dinov2.pixels.{s}")]).unwrap();
        let d = diff(&got, &r[&format!("dinov2.pooled.{s}")]);
        assert!(d < 1e-4, "{s} px: differs from transformers by {d:e}");
    }
}

#[test]
fn dinov2_reads_the_hub_checkpoints_older_key_names() {
    let r = reference();
    let renamed: HashMap<String, Tensor> = weights("dinov2_tiny.safetensors")
        .into_iter()
        .map(|(k, v)| {
            let k = k
                .replace(".attention.q_proj.", ".attention.attention.query.")
                .replace(".attention.k_proj.", ".attention.attention.key.")
                .replace(".attention.v_proj.", ".attention.attention.value.")
                .replace(".attention.o_proj.", ".attention.output.dense.");
            (k, v)
        })
        .collect();
    assert!(renamed
        .keys()
        .any(|k| k.contains("attention.attention.query")));
    let m = clusterlab::features::dinov2::Dinov2::new(renamed, 2, &Device::Cpu).unwrap();
    let d = diff(
        &m.forward(&r["dinov2.pixels.24"]).unwrap(),
        &r["dinov2.pooled.24"],
    );
    assert!(d < 1e-4, "{d:e}");
}

#[test]
fn clip_equals_transformers_pooled_and_projected() {
    let r = reference();
    let m =
        clusterlab::features::clip::Clip::new(weights("clip_tiny.safetensors"), 2, &Device::Cpu)
            .unwrap();
    let x = &r["clip.pixels"];
    let d = diff(&m.pooled(x).unwrap(), &r["clip.pooled"]);
    assert!(d < 1e-4, "pooled: {d:e}");
    let d = diff(&m.forward(x).unwrap(), &r["clip.embeds"]);
    assert!(d < 1e-4, "image_embeds: {d:e}");
}

#[test]
fn preprocessing_equals_the_pil_image_processors() {
    let r = reference();
    let clip = foundation("clip_vitb32").unwrap().preprocess.clone();
    let dino = foundation("dinov2_vits14").unwrap().preprocess.clone();
    for tag in ["a", "b"] {
        let img = &r[&format!("pre.image.{tag}")];
        let (h, w, _) = img.dims3().unwrap();
        let bytes: Vec<u8> = img.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        for (name, base, short) in [("clip", &clip, 32), ("dinov2", &dino, 40)] {
            let p = Preprocess {
                resize_short: short,
                crop: 32,
                ..base.clone()
            };
            let got =
                Tensor::from_vec(p.apply(&bytes, h, w, 3), (3, 32, 32), &Device::Cpu).unwrap();
            let want = &r[&format!("pre.{name}.{tag}")];
            let d = diff(&got, want);
            // Bit-exact pixels: what is left is f32 rounding of (v/255 − mean)/std.
            assert!(d < 1e-5, "{name} {tag} ({h}x{w}): {d:e}");
        }
    }
}

#[test]
fn every_backbone_builds_at_its_real_size_with_random_weights() {
    for f in clusterlab::features::FOUNDATIONS {
        if f.layers > 12 {
            continue; // the large ones: same code, 4× the time
        }
        let e = Extractor::random(f, 1, &Device::Cpu).unwrap();
        let x = Tensor::zeros((1, 3, 224, 224), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = e.forward(&x).unwrap();
        assert_eq!(y.dims(), [1, f.dim], "{}", f.name);
        assert!(matches!(f.family, Family::Dinov2 | Family::Clip));
    }
}

#[test]
fn cache_computes_once_and_verify_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let key = cache::Key {
        backbone: "clip_vitb32".into(),
        weights_sha256: "ab".repeat(32),
        preprocess: "p".into(),
        dataset: cache::fingerprint(&[1, 2, 3], 1, 1, 1, 3),
        split: "train".into(),
    };
    let mut calls = 0;
    let f = cache::get_or_compute(dir.path(), &key, || {
        calls += 1;
        Ok((vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 0.5))
    })
    .unwrap();
    assert!(f.computed && f.rows == 2 && f.dim == 3);
    let g = cache::get_or_compute(dir.path(), &key, || panic!("recomputed")).unwrap();
    assert!(!g.computed);
    assert_eq!(g.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(calls, 1);
    assert!(cache::check(dir.path()).is_empty());
    // Another key is another entry.
    let other = cache::Key {
        split: "heldout".into(),
        ..key.clone()
    };
    assert!(cache::load(dir.path(), &other).is_none());
    // A damaged tensors file is reported and never read.
    let data = dir
        .path()
        .join(cache::DIR)
        .join(format!("{}.safetensors", key.id()));
    let mut b = std::fs::read(&data).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    std::fs::write(&data, b).unwrap();
    let found = cache::check(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("SHA-256"), "{found:?}");
    assert!(cache::load(dir.path(), &key).is_none());
}

/// Two threads needing the same entry: one computes under the lock, the other waits and reads.
#[test]
fn a_second_process_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let key = cache::Key {
        backbone: "dinov2_vits14".into(),
        weights_sha256: "cd".repeat(32),
        preprocess: "p".into(),
        dataset: "d".into(),
        split: "train".into(),
    };
    let computed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let f = cache::get_or_compute(dir.path(), &key, || {
                    computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok((vec![7.0; 8], 4, 0.3))
                })
                .unwrap();
                assert_eq!(f.values, vec![7.0; 8]);
            });
        }
    });
    assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1);
}

const SWEEP: &str = r#"
name: fm
base:
  dataset: {name: synthetic, size: 48, image_size: 16, num_classes: 4}
  model: {backbone: dinov2_vits14, init: random}
  method:
    head_hidden: 32
    kmeans_restarts: 1
    temi: {heads: 2, knn: 5, hidden: 32, bottleneck: 16}
    scan: {knn: 5}
    turtle: {inner_steps: 3}
  train: {epochs: 4, batch_size: 16, eval_batch_size: 16, eval_every: 2}
grid:
  method.name: [kmeans, temi, turtle, scan]
include:
  - {method.name: turtle, model.backbone: dinov2_vits14+clip_vitb32}
"#;

/// k-means, TEMI, TURTLE and SCAN on a foundation backbone (DINOv2 ViT-S/14 at its real size,
/// seeded random weights) through `sweep`: the features are extracted once into the store's
/// cache and every cell reads them; TEMI and SCAN mine their neighbours among them; k-means
/// clusters them (not the pixels); a method that needs augmented views is refused up front.
#[test]
fn a_grid_on_a_foundation_backbone_shares_one_extraction() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("fm.yaml"), SWEEP).unwrap();
    let out = common::clusterlab(d, &["sweep", "fm.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let table = std::fs::read_to_string(d.join("reports/fm/table.md")).unwrap();
    for m in ["kmeans", "temi", "turtle", "scan"] {
        assert!(table.contains(&format!("| {m} ")), "{m}:\n{table}");
    }
    let entries: Vec<_> = std::fs::read_dir(d.join("runs").join(cache::DIR))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "one extraction of DINOv2 ViT-S/14 shared by the 5 cells, one of CLIP ViT-B/32"
    );
    // TURTLE on two joined backbones: one task encoder per representation space.
    let t = common::newest_checkpoint(d, "fm", "dinov2_vits14+clip_vitb32");
    let width = |k: &str| t[k].dims()[1];
    assert_eq!(
        (
            width("task_encoder.0.weight_v"),
            width("task_encoder.1.weight_v")
        ),
        (384, 512),
        "{:?}",
        t.keys().collect::<Vec<_>>()
    );
    let logs: String = common::run_dirs(d, "fm")
        .iter()
        .map(|r| std::fs::read_to_string(r.join("run.log")).unwrap())
        .collect();
    assert!(
        logs.contains("mined 5 nearest neighbours of 48 samples (384-d)"),
        "neighbours not mined among the 384-d features:\n{logs}"
    );
    let results: String = common::run_dirs(d, "fm")
        .iter()
        .map(|r| {
            String::from_utf8_lossy(&std::fs::read(r.join("result.parquet")).unwrap()).into_owned()
        })
        .collect();
    assert!(results.contains("k-means on the dinov2_vits14 features"));

    // `predict` on PNGs of the TEMI run's own images: the backbone on the new images, then the
    // run's head, gives the clusters the run assigned them.
    let run = (common::run_dirs(d, "fm").into_iter())
        .find(|r| {
            let c = std::fs::read_to_string(r.join("config.yaml")).unwrap();
            c.contains("name: temi")
        })
        .unwrap();
    let cfg = clusterlab::config::RunConfig::read(&run.join("config.yaml")).unwrap();
    let ds = clusterlab::data::synthetic::generate(&cfg.dataset);
    std::fs::create_dir(d.join("imgs")).unwrap();
    let picked: Vec<usize> = (0..12).map(|k| k * 4).collect();
    for &i in &picked {
        let (h, w) = (ds.height as u32, ds.width as u32);
        image::RgbImage::from_raw(w, h, ds.image(i).to_vec())
            .unwrap()
            .save(d.join(format!("imgs/img-{i:04}.png")))
            .unwrap();
    }
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    let out = common::clusterlab(d, &["predict", &id, "imgs", "--out", "p.parquet"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let clusters = |p: &std::path::Path| -> Vec<i64> {
        let f = clusterlab::store::tables::read_parquet(p).unwrap();
        f.column("cluster")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    let own = clusters(&run.join("assignments.parquet"));
    let want: Vec<i64> = picked.iter().map(|&i| own[i]).collect();
    assert_eq!(clusters(&d.join("p.parquet")), want);
    let mut distinct = want.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() > 1,
        "a one-cluster answer would prove little: {want:?}"
    );

    // Exported, the cached features are a dataset of their own: k-means on them (same seed)
    // finds the same clusters as k-means on the backbone did.
    let out = common::clusterlab(d, &["features", "fm.yaml", "--export", "exp"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let o = common::stdout(&out);
    assert!(
        o.contains("48 × 384 features") && o.contains("cached"),
        "{o}"
    );
    std::fs::write(
        d.join("emb.yaml"),
        "name: emb\nbase:\n  dataset: {name: embeddings, path: exp/dinov2_vits14-synthetic-train.npy, \
         labels: exp/synthetic-train-labels.npy, num_classes: 4}\n  model: {backbone: none}\n  \
         method: {name: kmeans, kmeans_restarts: 1}\ngrid:\n  seed: [0]\n",
    )
    .unwrap();
    let out = common::clusterlab(d, &["sweep", "emb.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let nmi = |grid: &str| -> String {
        let csv = std::fs::read_to_string(d.join(format!("reports/{grid}/table.csv"))).unwrap();
        let line = csv
            .lines()
            .find(|l| l.starts_with("kmeans,") && l.contains(",nmi,"))
            .unwrap_or_else(|| panic!("{csv}"))
            .to_string();
        // mean,std,n (then the run ids, which differ).
        let rest = line.split(",nmi,").nth(1).unwrap();
        rest.split(',').take(3).collect::<Vec<_>>().join(",")
    };
    assert_eq!(nmi("fm"), nmi("emb"));

    let bad = SWEEP
        .replace("[kmeans, temi, turtle, scan]", "[cc]")
        .replace("name: fm\n", "name: fm-cc\n");
    std::fs::write(d.join("bad.yaml"), bad).unwrap();
    let out = common::clusterlab(d, &["sweep", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let e = common::stderr(&out);
    assert!(
        e.contains("bad.yaml") && e.contains("frozen foundation backbone"),
        "{e}"
    );
    assert!(!d.join("runs/fm-cc").exists());
}

/// Every foundation grid resolves every cell on a dry run without touching the network: the
/// `hf:` weights are not in the (empty) cache and the endpoint refuses connections, yet each
/// cell's config is printed, and a note says which weights the run ids still wait for.
#[test]
fn foundation_grids_resolve_on_a_dry_run_without_downloading() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for g in ["cifar10", "cifar100-20", "stl10", "imagenet10"] {
        let grid = root.join(format!("experiments/foundation-{g}.yaml"));
        let out = common::command(dir.path(), &["sweep"])
            .arg(&grid)
            .args(["--dry-run", "--show-config"])
            .env("HF_HUB_CACHE", dir.path().join("hf"))
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap();
        let (o, e) = (common::stdout(&out), common::stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{g}: {e}");
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&o)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        // 2 backbones × 4 methods × 3 seeds (+ CIFAR-10: two-space TURTLE × 3 seeds).
        let want = if g == "cifar10" { 27 } else { 24 };
        assert_eq!(docs.len(), want, "{g}");
        let methods: std::collections::BTreeSet<&str> = docs
            .iter()
            .map(|d| d["method"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            methods.into_iter().collect::<Vec<_>>(),
            ["kmeans", "scan", "temi", "turtle"]
        );
        assert!(docs
            .iter()
            .all(|d| d["model"]["init"].as_str().unwrap().starts_with("hf:")));
        assert!(
            e.contains("hf:openai/clip-vit-large-patch14, hf:facebook/dinov2-base")
                && e.contains("not in the Hugging Face cache")
                && e.contains("not downloaded by --dry-run")
                && (g != "cifar10" || e.contains("hf:facebook/dinov2-large")),
            "{g}: {e}"
        );
        assert!(
            !dir.path().join("hf").exists()
                || std::fs::read_dir(dir.path().join("hf"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }
    // Without --dry-run the download is attempted and its failure is a config error (exit 2)
    // naming the weights, before anything is written.
    let out = common::command(dir.path(), &["sweep"])
        .arg(root.join("experiments/foundation-cifar10.yaml"))
        .env("HF_HUB_CACHE", dir.path().join("hf"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let e = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("hf:openai/clip-vit-large-patch14") && e.contains("failed"),
        "{e}"
    );
    assert!(!dir.path().join("runs").exists());
}
