//! Published clustering scores (NMI / ACC / ARI) of the reference methods and baselines, for
//! placing a grid's results next to the literature.
//!
//! Every row is copied from `shared/reference/methods.md` §1.7 (CC paper Table 2 baselines) and
//! §5 (combined table), which in turn cite the original papers. Every row carries the protocol
//! it was measured under ([`RowProtocol`]: the images trained and evaluated on, the image size,
//! the epoch rule), and the report prints it beside the number: CC's rows are CC's protocol
//! (merged split, 224 px, final epoch); GCC's Table 1 rows (GCC and the DRC numbers it
//! carries) come from code that trains and evaluates on the train split and keeps the best
//! epoch by label (`mynameischaos/GCC` 1f577fe, `end2end.py`); the baselines of CC's table
//! are as CC reports them, their own protocols unchecked.
//!
//! The heads on frozen foundation-model features (TEMI, TURTLE) carry the backbone whose
//! features they clustered ([`RowProtocol::backbone`]); a row is compared with a cell only
//! when the backbone is the same, and a foundation-backbone cell is never compared with a
//! row measured on raw pixels or a trained network (k-means on CLIP features is not CC's
//! raw-pixel k-means). Their numbers are the papers' tables as Papers with Code lists them;
//! their protocols are read from the authors' code (`mlbio-epfl/turtle` 1ec7cd4
//! `run_turtle.py`: fit on the train split's features, ACC of the final step on the test
//! split's; `HHU-MMBS/TEMI-official-BMVC2023` c02631b `eval_experiment.py`: fit on the train
//! split, scored on the test split, the best checkpoint by label).
//!
//! Dataset names: `cifar10`, `cifar100-20`, `stl10`, `imagenet10`, `imagenet-dogs`,
//! `tiny-imagenet`. Method names: `kmeans`, `dac`, `dccm`, `iic`, `pica`, `cc`, `drc`,
//! `anchor`, `gcc`, `temi`, `turtle`.

/// One published (method, dataset) result. A metric the source does not report is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// Method name (lower case, as in a grid's `method.name` where the method is implemented).
    pub method: &'static str,
    /// Dataset name (as in a grid's `dataset.name`).
    pub dataset: &'static str,
    /// Normalized mutual information.
    pub nmi: Option<f64>,
    /// Clustering accuracy (Hungarian matching).
    pub acc: Option<f64>,
    /// Adjusted Rand index.
    pub ari: Option<f64>,
    /// Short citation of where the number was published.
    pub source: &'static str,
    /// The protocol the number was measured under.
    pub protocol: &'static RowProtocol,
}

/// The protocol of a published number, as far as its source says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowProtocol {
    /// Images trained on (`merged`: train+test for CIFAR and STL-10, train for the ImageNet
    /// subsets and Tiny-ImageNet, as `config::protocols`).
    pub trained_on: &'static str,
    /// Images evaluated on.
    pub evaluated_on: &'static str,
    /// Input size in pixels, as the source states it.
    pub image_size: &'static str,
    /// Which epoch is reported: `final`, `best by label` (chosen with the labels), `unknown`.
    pub epoch: &'static str,
    /// The frozen foundation backbone(s) whose features were clustered (`model.backbone`
    /// names; `+` joins two representation spaces); `None` for raw pixels or a network
    /// trained by the method.
    pub backbone: Option<&'static str>,
}

impl RowProtocol {
    /// One line for tables: `trained / evaluated / size / epoch`.
    pub fn render(&self) -> String {
        let backbone = self.backbone.map(|b| format!("; features {b}"));
        format!(
            "train {}; eval {}; {}; epoch {}{}",
            self.trained_on,
            self.evaluated_on,
            self.image_size,
            self.epoch,
            backbone.unwrap_or_default()
        )
    }
}

/// The protocol a reproduced cell ran under, from its runs' configs (the first run's; the
/// table's rows and columns separate runs whose protocol keys vary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProtocol {
    /// `dataset.splits` as recorded (JSON text, e.g. `["train","test"]`; empty for datasets
    /// without splits).
    pub splits: Vec<String>,
    /// `eval.split` (`train` for runs recorded before the key).
    pub eval_split: String,
    /// `dataset.image_size`.
    pub image_size: i64,
    /// The epoch rule of the cell: its runs' `eval.epoch` (`final` for runs recorded before
    /// the key), or `best by label` when the report selects a best epoch.
    pub epoch: String,
    /// `model.backbone` (empty for runs recorded before the key).
    pub backbone: String,
}

impl RowProtocol {
    /// The protocol items in which `run` (on `dataset`) differs from this published row, or
    /// which the source leaves unknown; empty when the two are the same protocol.
    pub fn differences(&self, run: &RunProtocol, dataset: &str) -> Vec<String> {
        let all: Vec<String> = crate::config::dataset::DATASET_PROTOCOLS
            .iter()
            .find(|(n, ..)| *n == dataset)
            .map(|(_, _, s)| s.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        let trained = if run.splits == all {
            "merged"
        } else if run.splits == ["train"] {
            "train split"
        } else {
            "other"
        };
        let evaluated = match run.eval_split.as_str() {
            "train" => trained,
            _ => "held-out split",
        };
        let epoch = match run.epoch.as_str() {
            "final" => "final",
            "best_by_label" | "best by label" => "best by label",
            other => other,
        };
        let size = format!("{} px", run.image_size);
        let mut out = Vec::new();
        let mut item = |what: &str, published: &str, ours: &str| {
            if published.starts_with(ours) {
                // The same item.
            } else if published.contains("unknown") {
                out.push(format!("{what}: unknown in the source (ours {ours})"));
            } else {
                out.push(format!("{what}: published {published}, ours {ours}"));
            }
        };
        item("trained on", self.trained_on, trained);
        item("evaluated on", self.evaluated_on, evaluated);
        item("image size", self.image_size, &size);
        item("epoch", self.epoch, epoch);
        if let Some(b) = self.backbone {
            if b != run.backbone {
                out.push(format!("features: published {b}, ours {}", run.backbone));
            }
        }
        out
    }
}

/// CC's protocol (config::protocols::CC).
pub const P_CC: RowProtocol = RowProtocol {
    trained_on: "merged",
    evaluated_on: "merged",
    image_size: "224 px",
    epoch: "final",
    backbone: None,
};
/// The baselines of CC's Table 2: as CC reports them; their own protocols are not checked.
pub const P_CC_BASELINE: RowProtocol = RowProtocol {
    trained_on: "merged (per CC's table)",
    evaluated_on: "merged (per CC's table)",
    image_size: "unknown",
    epoch: "unknown",
    backbone: None,
};
/// GCC's code (`end2end.py`): trains on the train split (+ unlabelled for STL-10), evaluates
/// on the train split every 5 epochs and keeps the checkpoint of the best ACC.
pub const P_GCC: RowProtocol = RowProtocol {
    trained_on: "train split",
    evaluated_on: "train split",
    image_size: "32 px CIFAR (GCC configs), else unknown",
    epoch: "best by label",
    backbone: None,
};
/// The anchor paper's abstract (its code: CIFAR-10 train+test, 224 px, evaluation every 25
/// epochs; which epoch the abstract reports is not stated).
pub const P_ANCHOR: RowProtocol = RowProtocol {
    trained_on: "merged",
    evaluated_on: "merged",
    image_size: "224 px",
    epoch: "unknown",
    backbone: None,
};

/// TURTLE's code (`run_turtle.py`): the task encoder fits the train split's features; the
/// cluster ACC printed at the end is the final step's on the test split. CIFAR images at
/// their own 32 px, resized by the backbones' preprocessing. Its headline row uses two
/// representation spaces, CLIP ViT-L/14 and DINOv2 ViT-g/14 (the latter not built here).
pub const P_TURTLE: RowProtocol = RowProtocol {
    trained_on: "train split",
    evaluated_on: "held-out split",
    image_size: "32 px (resized to 224 by the backbones' preprocessing)",
    epoch: "final",
    backbone: Some("clip_vitl14+dinov2_vitg14"),
};
/// TEMI's code (`train_main.py --precomputed`, `eval_experiment.py`): heads fit on the train
/// split's CLIP ViT-L/14 features, scored on the test split; `best-results.json` holds the
/// best checkpoint by label (which one the paper's table reports is not stated).
pub const P_TEMI_CLIP: RowProtocol = RowProtocol {
    trained_on: "train split",
    evaluated_on: "held-out split",
    image_size: "32 px (resized to 224 by the backbone's preprocessing)",
    epoch: "best by label (eval_experiment.py; the paper's choice unstated)",
    backbone: Some("clip_vitl14"),
};

/// CC's ablations (preprint Tables 3–5; methods.md §1.7), CIFAR-10 and ImageNet-10:
/// (variant, dataset, NMI, ACC, ARI). All under CC's protocol except the varied item.
pub const CC_ABLATIONS: &[(&str, &str, f64, f64, f64)] = &[
    ("augmentation T^a(x) + x", "cifar10", 0.630, 0.690, 0.533),
    ("augmentation T^a(x) + x", "imagenet10", 0.852, 0.892, 0.817),
    ("augmentation x + x", "cifar10", 0.045, 0.169, 0.022),
    ("augmentation x + x", "imagenet10", 0.063, 0.177, 0.030),
    (
        "instance head only + k-means",
        "cifar10",
        0.699,
        0.782,
        0.616,
    ),
    (
        "instance head only + k-means",
        "imagenet10",
        0.838,
        0.888,
        0.780,
    ),
    ("cluster head only", "cifar10", 0.592, 0.657, 0.499),
    ("cluster head only", "imagenet10", 0.850, 0.892, 0.816),
    ("ResNet-18", "cifar10", 0.650, 0.736, 0.569),
    ("ResNet-18", "imagenet10", 0.851, 0.889, 0.816),
    ("ResNet-50", "cifar10", 0.663, 0.747, 0.585),
    ("ResNet-50", "imagenet10", 0.859, 0.895, 0.823),
];

const CC_T2: &str = "CC paper (Li et al., AAAI 2021) Table 2";
const GCC_T1: &str = "GCC (Zhong et al., ICCV 2021) Table 1, images/res.jpg";
const ANCHOR_ABS: &str = "Sundareswaran et al., arXiv 2109.12714, abstract";
const TURTLE_T: &str = "TURTLE (Gadetsky et al., ICML 2024), as Papers with Code lists it";
const TEMI_T: &str = "TEMI (Adaloglou et al., BMVC 2023), as Papers with Code lists it";

/// A row with all three metrics.
const fn row(
    method: &'static str,
    dataset: &'static str,
    nmi: f64,
    acc: f64,
    ari: f64,
    source: &'static str,
) -> Published {
    // The protocol follows from the table and the method.
    let protocol = match (source.as_bytes()[0], method.as_bytes()) {
        (b'G', _) => &P_GCC,
        (_, b"cc") => &P_CC,
        _ => &P_CC_BASELINE,
    };
    Published {
        method,
        dataset,
        nmi: Some(nmi),
        acc: Some(acc),
        ari: Some(ari),
        source,
        protocol,
    }
}

/// A row that reports ACC only (IIC in the CC paper's table).
const fn acc_only(method: &'static str, dataset: &'static str, acc: f64) -> Published {
    Published {
        method,
        dataset,
        nmi: None,
        acc: Some(acc),
        ari: None,
        source: CC_T2,
        protocol: &P_CC_BASELINE,
    }
}

/// Every published row, grouped by method in the order of the source tables.
pub const PUBLISHED: &[Published] = &[
    // CC paper Table 2 baselines (methods.md §1.7).
    row("kmeans", "cifar10", 0.087, 0.229, 0.049, CC_T2),
    row("kmeans", "cifar100-20", 0.084, 0.130, 0.028, CC_T2),
    row("kmeans", "stl10", 0.125, 0.192, 0.061, CC_T2),
    row("kmeans", "imagenet10", 0.119, 0.241, 0.057, CC_T2),
    row("kmeans", "imagenet-dogs", 0.055, 0.105, 0.020, CC_T2),
    row("kmeans", "tiny-imagenet", 0.065, 0.025, 0.005, CC_T2),
    row("dac", "cifar10", 0.396, 0.522, 0.306, CC_T2),
    row("dac", "cifar100-20", 0.185, 0.238, 0.088, CC_T2),
    row("dac", "stl10", 0.366, 0.470, 0.257, CC_T2),
    row("dac", "imagenet10", 0.394, 0.527, 0.302, CC_T2),
    row("dac", "imagenet-dogs", 0.219, 0.275, 0.111, CC_T2),
    row("dac", "tiny-imagenet", 0.190, 0.066, 0.017, CC_T2),
    row("dccm", "cifar10", 0.496, 0.623, 0.408, CC_T2),
    row("dccm", "cifar100-20", 0.285, 0.327, 0.173, CC_T2),
    row("dccm", "stl10", 0.376, 0.482, 0.262, CC_T2),
    row("dccm", "imagenet10", 0.608, 0.710, 0.555, CC_T2),
    row("dccm", "imagenet-dogs", 0.321, 0.383, 0.182, CC_T2),
    row("dccm", "tiny-imagenet", 0.224, 0.108, 0.038, CC_T2),
    // IIC: the CC table gives ACC only, and only for these three datasets.
    acc_only("iic", "cifar10", 0.617),
    acc_only("iic", "cifar100-20", 0.257),
    acc_only("iic", "stl10", 0.610),
    // PICA: identical in GCC Table 1.
    row("pica", "cifar10", 0.591, 0.696, 0.512, CC_T2),
    row("pica", "cifar100-20", 0.310, 0.337, 0.171, CC_T2),
    row("pica", "stl10", 0.611, 0.713, 0.531, CC_T2),
    row("pica", "imagenet10", 0.802, 0.870, 0.761, CC_T2),
    row("pica", "imagenet-dogs", 0.352, 0.352, 0.201, CC_T2),
    row("pica", "tiny-imagenet", 0.277, 0.098, 0.040, CC_T2),
    // CC itself.
    row("cc", "cifar10", 0.705, 0.790, 0.637, CC_T2),
    row("cc", "cifar100-20", 0.431, 0.429, 0.266, CC_T2),
    row("cc", "stl10", 0.764, 0.850, 0.726, CC_T2),
    row("cc", "imagenet10", 0.859, 0.893, 0.822, CC_T2),
    row("cc", "imagenet-dogs", 0.445, 0.429, 0.274, CC_T2),
    row("cc", "tiny-imagenet", 0.340, 0.140, 0.071, CC_T2),
    // DRC: per-dataset numbers only via GCC Table 1 (the DRC abstract gives 71.6% mean ACC on
    // CIFAR-10; methods.md §2.1, §5).
    row("drc", "cifar10", 0.621, 0.727, 0.547, GCC_T1),
    row("drc", "cifar100-20", 0.356, 0.367, 0.208, GCC_T1),
    row("drc", "stl10", 0.644, 0.747, 0.569, GCC_T1),
    row("drc", "imagenet10", 0.830, 0.884, 0.798, GCC_T1),
    row("drc", "imagenet-dogs", 0.384, 0.389, 0.233, GCC_T1),
    row("drc", "tiny-imagenet", 0.321, 0.139, 0.056, GCC_T1),
    // Anchor-loss method: only the abstract's CIFAR-10 NMI is public (methods.md §4.6).
    Published {
        method: "anchor",
        dataset: "cifar10",
        nmi: Some(0.772),
        acc: None,
        ari: None,
        source: ANCHOR_ABS,
        protocol: &P_ANCHOR,
    },
    // GCC (context only: a later method by the DRC authors).
    row("gcc", "cifar10", 0.764, 0.856, 0.728, GCC_T1),
    row("gcc", "cifar100-20", 0.472, 0.472, 0.305, GCC_T1),
    row("gcc", "stl10", 0.684, 0.788, 0.631, GCC_T1),
    row("gcc", "imagenet10", 0.842, 0.901, 0.822, GCC_T1),
    row("gcc", "imagenet-dogs", 0.490, 0.526, 0.362, GCC_T1),
    row("gcc", "tiny-imagenet", 0.347, 0.138, 0.075, GCC_T1),
    // Heads on frozen foundation-model features: only the rows whose source was read.
    Published {
        method: "turtle",
        dataset: "cifar10",
        nmi: Some(0.985),
        acc: Some(0.995),
        ari: Some(0.989),
        source: TURTLE_T,
        protocol: &P_TURTLE,
    },
    Published {
        method: "temi",
        dataset: "cifar10",
        nmi: Some(0.926),
        acc: Some(0.969),
        ari: Some(0.932),
        source: TEMI_T,
        protocol: &P_TEMI_CLIP,
    },
];

/// The published row for a method on a dataset (exact, case-sensitive names), if any; for a
/// cell on a foundation backbone (`backbone`: its `model.backbone`), only rows measured on
/// foundation features — the one on the same backbone first — and for any other cell only
/// rows that were not.
pub fn lookup(method: &str, dataset: &str, backbone: &str) -> Option<&'static Published> {
    let foundation = crate::features::is_foundation(backbone);
    let rows = || {
        PUBLISHED.iter().filter(move |p| {
            p.method == method
                && p.dataset == dataset
                && p.protocol.backbone.is_some() == foundation
        })
    };
    rows()
        .find(|p| p.protocol.backbone == Some(backbone))
        .or_else(|| rows().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATASETS: [&str; 6] = [
        "cifar10",
        "cifar100-20",
        "stl10",
        "imagenet10",
        "imagenet-dogs",
        "tiny-imagenet",
    ];

    #[test]
    fn known_values() {
        let cc = lookup("cc", "cifar10", "resnet34").unwrap();
        assert_eq!(
            (cc.nmi, cc.acc, cc.ari),
            (Some(0.705), Some(0.790), Some(0.637))
        );
        assert!(cc.source.contains("Table 2"));
        assert_eq!(lookup("drc", "stl10", "resnet34").unwrap().acc, Some(0.747));
        assert!(lookup("drc", "stl10", "resnet34")
            .unwrap()
            .source
            .starts_with("GCC"));
        let anchor = lookup("anchor", "cifar10", "resnet34").unwrap();
        assert_eq!(
            (anchor.nmi, anchor.acc, anchor.ari),
            (Some(0.772), None, None)
        );
        assert_eq!(lookup("anchor", "stl10", "resnet34"), None);
        assert_eq!(
            lookup("kmeans", "tiny-imagenet", "resnet34").unwrap().ari,
            Some(0.005)
        );
        assert_eq!(
            lookup("gcc", "imagenet-dogs", "resnet34").unwrap().acc,
            Some(0.526)
        );
        let iic = lookup("iic", "stl10", "resnet34").unwrap();
        assert_eq!((iic.nmi, iic.acc, iic.ari), (None, Some(0.610), None));
        assert_eq!(lookup("iic", "imagenet10", "resnet34"), None);
        assert_eq!(lookup("CC", "cifar10", "resnet34"), None);
        // Every row carries its protocol.
        assert_eq!(cc.protocol, &P_CC);
        assert_eq!(
            lookup("drc", "cifar10", "resnet34").unwrap().protocol.epoch,
            "best by label"
        );
        assert_eq!(lookup("gcc", "stl10", "resnet34").unwrap().protocol, &P_GCC);
        assert_eq!(
            lookup("dac", "stl10", "resnet34").unwrap().protocol,
            &P_CC_BASELINE
        );
        assert_eq!(anchor.protocol, &P_ANCHOR);
        assert_eq!(CC_ABLATIONS.len(), 12);
        // Foundation features: never the raw-pixel k-means row; the same backbone's row first.
        assert_eq!(lookup("kmeans", "cifar10", "clip_vitl14"), None);
        assert_eq!(lookup("temi", "cifar10", "resnet34"), None);
        let temi = lookup("temi", "cifar10", "clip_vitl14").unwrap();
        assert_eq!(
            (temi.acc, temi.protocol.backbone),
            (Some(0.969), Some("clip_vitl14"))
        );
        assert_eq!(lookup("temi", "cifar10", "dinov2_vitb14"), Some(temi));
        assert_eq!(
            lookup("turtle", "cifar10", "clip_vitl14").unwrap().acc,
            Some(0.995)
        );
    }

    #[test]
    fn foundation_rows_compare_the_backbone() {
        let run = RunProtocol {
            splits: vec!["train".into()],
            eval_split: "heldout".into(),
            image_size: 32,
            epoch: "best by label".into(),
            backbone: "clip_vitl14".into(),
        };
        assert!(P_TEMI_CLIP.differences(&run, "cifar10").is_empty());
        let dino = RunProtocol {
            backbone: "dinov2_vitb14".into(),
            ..run.clone()
        };
        assert_eq!(
            P_TEMI_CLIP.differences(&dino, "cifar10"),
            ["features: published clip_vitl14, ours dinov2_vitb14"]
        );
        let d = P_TURTLE.differences(&run, "cifar10");
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].contains("published final, ours best by label"),
            "{d:?}"
        );
        assert!(d[1].contains("clip_vitl14+dinov2_vitg14"), "{d:?}");
        assert!(P_TURTLE
            .render()
            .ends_with("features clip_vitl14+dinov2_vitg14"));
    }

    #[test]
    fn differences_name_each_protocol_item() {
        let cc_run = RunProtocol {
            splits: vec!["train".into(), "test".into()],
            eval_split: "train".into(),
            image_size: 224,
            epoch: "final".into(),
            backbone: "resnet34".into(),
        };
        assert!(P_CC.differences(&cc_run, "cifar10").is_empty());
        let fast = RunProtocol {
            image_size: 32,
            ..cc_run.clone()
        };
        assert_eq!(
            P_CC.differences(&fast, "cifar10"),
            ["image size: published 224 px, ours 32 px"]
        );
        // GCC: train split, scored on it, best epoch by label, 32 px.
        let gcc_run = RunProtocol {
            splits: vec!["train".into()],
            eval_split: "train".into(),
            image_size: 32,
            epoch: "best_by_label".into(),
            backbone: "resnet18".into(),
        };
        assert!(P_GCC.differences(&gcc_run, "cifar10").is_empty());
        let d = P_GCC.differences(&cc_run, "cifar10");
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[0].contains("published train split, ours merged"));
        assert!(d[3].contains("published best by label, ours final"));
        let held = RunProtocol {
            eval_split: "heldout".into(),
            ..gcc_run
        };
        assert!(P_GCC.differences(&held, "cifar10")[0].contains("evaluated on"));
        // The baselines' sizes and epochs are not stated by CC: never silently equal.
        let d = P_CC_BASELINE.differences(&cc_run, "cifar10");
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|x| x.contains("unknown in the source")));
    }

    #[test]
    fn table_is_complete_and_consistent() {
        // Six datasets for every method except IIC (three) and the anchor method (one).
        for m in ["kmeans", "dac", "dccm", "pica", "cc", "drc", "gcc"] {
            for d in DATASETS {
                assert!(lookup(m, d, "resnet34").is_some(), "{m} {d}");
            }
        }
        assert_eq!(PUBLISHED.len(), 7 * 6 + 3 + 1 + 2);
        for (i, p) in PUBLISHED.iter().enumerate() {
            assert!(DATASETS.contains(&p.dataset), "{}", p.dataset);
            // A foundation row names backbones this build knows (or says which it lacks).
            for b in p.protocol.backbone.iter().flat_map(|b| b.split('+')) {
                assert!(
                    crate::features::foundation(b).is_some() || b == "dinov2_vitg14",
                    "{b}"
                );
            }
            assert!(!p.source.is_empty());
            for v in [p.nmi, p.acc, p.ari].into_iter().flatten() {
                assert!((0.0..=1.0).contains(&v), "{} {}: {v}", p.method, p.dataset);
            }
            // No duplicate (method, dataset, features) rows.
            assert!(PUBLISHED[..i]
                .iter()
                .all(|q| (q.method, q.dataset, q.protocol.backbone)
                    != (p.method, p.dataset, p.protocol.backbone)));
        }
    }
}
