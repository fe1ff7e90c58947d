//! Every registered method trains end to end on tiny synthetic data through the library: its
//! loss terms are logged per epoch, the protocol is recorded, and the knobs are validated.

use candle_core::Device;
use clusterlab::config::run::EvalProtocol;
use clusterlab::config::RunConfig;
use clusterlab::store::tables::EpochRow;
use clusterlab::train::{self, Context};

fn tiny(method: &str) -> RunConfig {
    let mut cfg = RunConfig::default();
    cfg.method.name = method.into();
    cfg.method.feature_dim = 16;
    cfg.method.head_hidden = 32;
    cfg.method.kmeans_restarts = 1;
    cfg.method.kmeans_iterations = 20;
    cfg.dataset.size = 120;
    cfg.dataset.image_size = 16;
    cfg.dataset.num_classes = 4;
    cfg.model.widths = vec![8, 16];
    cfg.train.epochs = 1;
    cfg.train.batch_size = 40;
    cfg.augment.flip_p = 0.0;
    if clusterlab::methods::frozen::NEED_EMBEDDINGS.contains(&method) {
        cfg.dataset.name = "embeddings".into();
        cfg.dataset.path = Some(blobs().to_string_lossy().into_owned());
        cfg.model.backbone = "none".into();
        cfg.method.temi.heads = 2;
        cfg.method.temi.knn = 5;
        cfg.method.temi.hidden = 16;
        cfg.method.temi.bottleneck = 8;
        cfg.method.scan.knn = 5;
    }
    cfg
}

/// 120 8-d vectors in 4 Gaussian blobs as an `.npz` with labels (written once per process),
/// for the methods that train on precomputed embeddings.
fn blobs() -> std::path::PathBuf {
    use clusterlab::data::formats::arrays::encode_npy;
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let mut rng = clusterlab::rng::stream(5, "blobs");
        let (n, d) = (120, 8);
        let mut x = Vec::with_capacity(n * d * 4);
        let mut y = Vec::with_capacity(n * 8);
        for i in 0..n {
            let c = i % 4;
            for j in 0..d {
                let centre = if j % 4 == c { 3.0 } else { 0.0 };
                let v = (centre + clusterlab::rng::normal(&mut rng)) as f32;
                x.extend_from_slice(&v.to_le_bytes());
            }
            y.extend_from_slice(&(c as i64).to_le_bytes());
        }
        let path =
            std::env::temp_dir().join(format!("clusterlab-blobs-{}.npz", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("embeddings.npy", opts).unwrap();
        std::io::Write::write_all(&mut z, &encode_npy("<f4", &[n, d], &x)).unwrap();
        z.start_file("labels.npy", opts).unwrap();
        std::io::Write::write_all(&mut z, &encode_npy("<i8", &[n], &y)).unwrap();
        z.finish().unwrap();
        path
    })
    .clone()
}

fn train(cfg: &RunConfig) -> train::Outcome {
    cfg.validate().unwrap();
    let ds = clusterlab::data::load(&cfg.dataset).unwrap();
    train::run(
        cfg,
        &ds,
        &Device::Cpu,
        Context::detached(),
        &mut |_: &EpochRow, _: usize| {},
    )
    .unwrap()
}

#[test]
fn every_method_logs_each_term_and_its_protocol() {
    for spec in clusterlab::methods::REGISTRY {
        let cfg = tiny(spec.name);
        let out = train(&cfg);
        let row = out.epochs.last().unwrap();
        let logged: Vec<&str> = row.losses.iter().map(|(t, _)| t.as_str()).collect();
        for (term, _) in spec.terms {
            assert!(
                logged.contains(term),
                "{}: {term} not in {logged:?}",
                spec.name
            );
        }
        if spec.build.is_some() {
            assert_eq!(logged[0], "total", "{}", spec.name);
            let sum: f64 = row.losses[1..].iter().map(|(_, v)| v).sum();
            assert!((sum - row.losses[0].1).abs() < 1e-3 * sum.abs().max(1.0));
        }
        assert!(row.scores.is_some(), "{}", spec.name);
        assert!(!out.protocol.is_empty());
    }
}

#[test]
fn cdc_never_claims_to_be_the_authors_code() {
    let out = train(&tiny("cdc"));
    assert!(
        out.protocol.contains("not the authors' code"),
        "{}",
        out.protocol
    );
}

#[test]
fn anchor_centres_come_from_kmeans_before_training() {
    // Zero centres would give a uniform q and one cluster (entropy 0) for every image. A few
    // epochs, so that the BatchNorm running statistics used in evaluation approach the batch
    // statistics the centres were computed with.
    let mut cfg = tiny("anchor");
    cfg.train.epochs = 4;
    let out = train(&cfg);
    let h = out.epochs.last().unwrap().cluster_entropy.unwrap();
    assert!(h > 0.5, "cluster-size entropy {h}");
}

#[test]
fn a_zero_weight_removes_a_term_from_the_total_and_kmeans_features_is_recorded() {
    let mut cfg = tiny("cc");
    cfg.method.weights.insert("cluster".into(), 0.0);
    cfg.method.weights.insert("entropy".into(), 0.0);
    cfg.method.eval = EvalProtocol::KmeansFeatures;
    let out = train(&cfg);
    assert_eq!(out.protocol, "k-means on backbone features");
    let row = out.epochs.last().unwrap();
    let get = |t: &str| row.losses.iter().find(|(k, _)| k == t).unwrap().1;
    assert_eq!(get("cluster"), 0.0);
    assert!((get("total") - get("instance")).abs() < 1e-9);
    // k-means on 4 clusters uses more than one cluster.
    assert!(row.cluster_entropy.unwrap() > 0.5);
}

#[test]
fn method_knobs_are_checked_with_the_key_named() {
    let mut cfg = tiny("drc");
    cfg.method.weights.insert("entropy".into(), 1.0);
    // The method's own keys are checked by the registry (config knows no method).
    let e = clusterlab::methods::validate(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("method.weights.entropy") && e.contains("assignment_feature"),
        "{e}"
    );
    let mut cfg = tiny("cdc");
    cfg.method.cdc.epsilon = 0.0;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("method.cdc.epsilon"), "{e}");
    let mut cfg = tiny("kmeans");
    cfg.method.eval = EvalProtocol::KmeansFeatures;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("method.eval"));
    // A closed choice with a wrong value is refused while resolving, naming the key.
    let cell = vec![(
        "method.drc.similarity".to_string(),
        serde_json::json!("cosin"),
    )];
    let e = clusterlab::config::layers::resolve(&serde_json::json!({}), &cell, &Default::default())
        .unwrap_err();
    assert_eq!(e.key, "method.drc.similarity");
    assert!(e.message.contains("cosine"), "{}", e.message);
}

/// `method.drc.regularizer_views`: `first` (GCC's AGCLoss, the default) regularises view a
/// only; `both` sums the two views.
#[test]
fn drc_regularizer_views() {
    use clusterlab::config::run::{Regularizer, RegularizerViews};
    use clusterlab::methods::drc::{cluster_regularizer, Drc};
    use clusterlab::methods::losses::softmax_rows;
    use clusterlab::methods::Method;
    use clusterlab::nn::layers::Linear;
    use clusterlab::nn::Params;
    use clusterlab::rng::stream;
    let feats = |seed| {
        let v: Vec<f32> = (0..40 * 12)
            .map(|i| (((i * 7919 + seed * 104729) % 997) as f32 / 997.0) - 0.5)
            .collect();
        candle_core::Tensor::from_vec(v, (40, 12), &Device::Cpu).unwrap()
    };
    let (a, b) = (feats(1), feats(2));
    let mut cfg = tiny("drc");
    assert_eq!(cfg.method.drc.regularizer_views, RegularizerViews::First);
    let reg = |cfg: &RunConfig| {
        let mut p = Params::new(stream(0, "init"), Device::Cpu);
        let m = Drc::new(cfg, &mut p, 12).unwrap();
        let losses = m.losses(&[a.clone(), b.clone()]).unwrap();
        let r = losses.iter().find(|(t, _)| *t == "regularizer").unwrap();
        r.1.to_scalar::<f32>().unwrap()
    };
    // The same head, rebuilt from the same init stream, gives each view's probabilities.
    let mut p = Params::new(stream(0, "init"), Device::Cpu);
    let head = Linear::new(&mut p, "assignment_head", 12, 4).unwrap();
    let view = |x: &candle_core::Tensor| {
        let pr = softmax_rows(&head.forward(x).unwrap()).unwrap();
        cluster_regularizer(&pr, Regularizer::Entropy)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let (ra, rb) = (view(&a), view(&b));
    assert!(rb > 0.0 && (ra - rb).abs() > 1e-6);
    assert!((reg(&cfg) - ra).abs() < 1e-6, "first view only");
    cfg.method.drc.regularizer_views = RegularizerViews::Both;
    assert!((reg(&cfg) - (ra + rb)).abs() < 1e-6, "both views");
}

/// Over-clustering (K = 12 > 4 classes) scored on held-out images, with the epoch rules:
/// the cluster head has K outputs, the held-out images are not the training images,
/// majority-vote ACC is at least the Hungarian one, and each `eval.epoch` rule picks its epoch.
#[test]
fn over_clustering_heldout_split_and_epoch_rules() {
    use clusterlab::config::run::{EvalEpoch, EvalSplit};
    let mut cfg = tiny("cc");
    cfg.method.num_clusters = 12;
    cfg.train.epochs = 3;
    cfg.eval.split = EvalSplit::Heldout;
    cfg.eval.epoch = EvalEpoch::LowestLoss;
    let out = train(&cfg);
    let a = out.assignment.as_ref().unwrap();
    // max(120 / 5, 4) = 24 further images of the generator.
    assert_eq!(a.clusters.len(), 24);
    assert!(a.clusters.iter().all(|&c| (0..12).contains(&c)));
    let held = clusterlab::data::load_heldout(&cfg).unwrap();
    let train_ds = clusterlab::data::load(&cfg.dataset).unwrap();
    let n = held.image_len();
    for i in 0..held.len() {
        assert!(
            (0..train_ds.len()).all(|j| train_ds.image(j) != &held.images[i * n..(i + 1) * n]),
            "held-out image {i} is a training image"
        );
    }
    let s = clusterlab::eval::Scores::compute(&held.labels, &a.clusters);
    assert_eq!(out.final_scores().unwrap().1, s);
    assert!(s.acc_majority >= s.acc);
    // lowest_loss: the evaluated epoch with the smallest mean total loss.
    let total = |e: usize| out.epochs[e - 1].losses[0].1;
    let (e, _) = out.reported_scores().unwrap();
    assert!((1..=3).all(|x| total(e) <= total(x)), "epoch {e}");
    let mut best = out.clone();
    best.rule = EvalEpoch::BestByLabel;
    assert_eq!(best.reported_scores(), best.best_scores());
    best.rule = EvalEpoch::Final;
    assert_eq!(best.reported_scores().unwrap().0, 3);
    // Held out needs a split the run does not train on.
    let mut bad = tiny("cc");
    bad.dataset.name = "cifar10".into();
    bad.dataset.num_classes = 10;
    bad.dataset.splits = vec!["train".into(), "test".into()];
    bad.eval.split = EvalSplit::Heldout;
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("eval.split") && e.contains("dataset.splits"),
        "{e}"
    );
}

/// `method.eval: kmeans_instance` clusters the instance head's output, not the backbone's:
/// the same trained model read out both ways gives different assignments, and methods
/// without an instance head refuse it.
#[test]
fn kmeans_in_the_instance_space() {
    let mut cfg = tiny("cc");
    cfg.method.weights.insert("cluster".into(), 0.0);
    cfg.method.weights.insert("entropy".into(), 0.0);
    cfg.method.eval = EvalProtocol::KmeansInstance;
    let inst = train(&cfg);
    assert_eq!(inst.protocol, "k-means on the instance-head output");
    cfg.method.eval = EvalProtocol::KmeansFeatures;
    let back = train(&cfg);
    // Training does not depend on the read-out: the losses are bit-identical.
    assert_eq!(inst.epochs[0].losses, back.epochs[0].losses);
    let (a, b) = (inst.assignment.unwrap(), back.assignment.unwrap());
    assert_ne!(a.clusters, b.clusters);
    let mut drc = tiny("drc");
    drc.method.eval = EvalProtocol::KmeansInstance;
    let e = clusterlab::methods::validate(&drc).unwrap_err().to_string();
    assert!(
        e.contains("method.eval") && e.contains("no instance head"),
        "{e}"
    );
}

/// CC's two-phase STL-10 epoch on a generated `stl10_binary/` folder with an unlabelled file:
/// the instance term sees every (drop-last) unlabelled image each epoch, its loss is logged
/// as its own column, and the training differs from a run without the unlabelled phase.
#[test]
fn stl10_unlabelled_images_pass_through_the_instance_term() {
    use clusterlab::data::formats::stl10::encode_images;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stl10_binary");
    std::fs::create_dir_all(&root).unwrap();
    let img = |seed: usize| -> Vec<u8> {
        (0..96 * 96 * 3)
            .map(|i| ((i * (seed + 3) + seed * 37) % 251) as u8)
            .collect()
    };
    let images =
        |from: usize, n: usize| encode_images(&(from..from + n).map(img).collect::<Vec<_>>());
    std::fs::write(root.join("train_X.bin"), images(0, 8)).unwrap();
    std::fs::write(
        root.join("train_y.bin"),
        (0..8).map(|i| 1 + (i % 10) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(root.join("test_X.bin"), images(8, 4)).unwrap();
    std::fs::write(root.join("test_y.bin"), vec![1, 2, 3, 4]).unwrap();
    // 22 unlabelled images: 5 batches of 4 per epoch, 2 dropped.
    std::fs::write(root.join("unlabeled_X.bin"), images(100, 22)).unwrap();
    let mut cfg = tiny("cc");
    cfg.dataset.name = "stl10".into();
    cfg.dataset.num_classes = 10;
    cfg.dataset.path = Some(root.to_string_lossy().into_owned());
    cfg.dataset.allow_partial = true;
    cfg.dataset.splits = vec!["train".into(), "test".into()];
    cfg.dataset.unlabeled = true;
    cfg.train.batch_size = 4;
    cfg.train.epochs = 2;
    cfg.validate().unwrap();
    clusterlab::methods::validate(&cfg).unwrap();
    let ds = clusterlab::data::formats::read(&cfg.dataset).unwrap();
    assert_eq!(ds.len(), 12);
    let run = |cfg: &RunConfig| {
        train::run(
            cfg,
            &ds,
            &Device::Cpu,
            Context::detached(),
            &mut |_: &EpochRow, _: usize| {},
        )
        .unwrap()
    };
    let two = run(&cfg);
    assert_eq!(two.unlabeled_images, 2 * 20);
    let term = |o: &train::Outcome, e: usize, t: &str| {
        o.epochs[e]
            .losses
            .iter()
            .find(|(k, _)| k == t)
            .map(|(_, v)| *v)
    };
    for e in 0..2 {
        let u = term(&two, e, train::UNLABELED_TERM).expect("the unlabelled phase is logged");
        assert!(u.is_finite() && u > 0.0, "{u}");
    }
    cfg.dataset.unlabeled = false;
    let one = run(&cfg);
    assert_eq!(one.unlabeled_images, 0);
    assert_eq!(term(&one, 0, train::UNLABELED_TERM), None);
    // The same labelled batches after different weights: the instance loss differs.
    assert_ne!(term(&one, 0, "instance"), term(&two, 0, "instance"));
    // Methods without an instance term refuse the unlabelled images.
    let mut drc = cfg.clone();
    drc.method.name = "drc".into();
    drc.dataset.unlabeled = true;
    let e = clusterlab::methods::validate(&drc).unwrap_err().to_string();
    assert!(
        e.contains("dataset.unlabeled") && e.contains("cc, anchor"),
        "{e}"
    );
}
