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
    cfg
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
