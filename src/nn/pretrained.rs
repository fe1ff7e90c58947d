//! Pretrained backbone weights (`model.init: <path>`): safetensors, or a PyTorch checkpoint
//! read without PyTorch, mapped onto the backbone's parameters.
//!
//! **Reading.** `.safetensors` through candle's reader; `.pth`/`.pt` through
//! `candle_core::pickle` (the zip archive `torch.save` has written since PyTorch 1.6: a
//! pickle of the object plus one raw storage per tensor; the pickle is interpreted, nothing
//! of it is executed), or through [`super::legacy_pth`] for the legacy format before it (MoCo's
//! and SCAN's released `.pth.tar` files). A checkpoint that is a dict holding the state dict under `state_dict`
//! (MoCo, SCAN, most training scripts) or `model` is looked into when its top level holds no
//! tensor.
//!
//! **Mapping.** Our parameter names are torchvision's state-dict keys under `backbone.`
//! (`nn::resnet`). A file's keys carry some prefix before those: none (torchvision),
//! `module.encoder_q.` (MoCo v2), `backbone.` (SCAN, SimCLR re-implementations, clusterlab's
//! own checkpoints), `encoder.`, `module.`... The prefix is detected, not listed: every file
//! key that ends in one of the backbone's names (at a `.` boundary) votes for what precedes
//! it, and the prefix with the most votes wins (ties: a prefix naming a momentum/target copy —
//! `encoder_k`, `momentum`, `target`, `teacher`, `ema` — loses, then the shorter one). Every
//! other key (`fc.*`, projection heads, `encoder_k.*`, the MoCo queue, `num_batches_tracked`)
//! is dropped and counted. A backbone name the file lacks under that prefix, or a tensor of
//! another shape, is an error naming the keys (exit 2); nothing is loaded then.

use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::Params;
use crate::error::{Error, Result};

/// Prefix of the backbone's parameter names in [`Params`].
pub const BACKBONE_PREFIX: &str = "backbone.";

/// Keys listed at most in an error message.
const LIST_MAX: usize = 12;

/// What loading a weights file did.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The prefix the file's backbone keys carry (`""` for torchvision's own files).
    pub prefix: String,
    /// Backbone tensors set (all of the backbone's).
    pub loaded: usize,
    /// File tensors not used (heads, `fc`, momentum encoder, `num_batches_tracked`).
    pub dropped: usize,
}

/// Every tensor of a weights file by key, on the CPU, in the file's dtype.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let shown = path.display();
    match crate::config::weights::is_safetensors(path) {
        Some(true) => {
            let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
                Error::BadInput(format!(
                    "{shown}: not a readable safetensors file ({e}); check `model.init`"
                ))
            })?;
            Ok(map.into_iter().collect())
        }
        Some(false) => {
            let legacy = super::legacy_pth::is_legacy(path).map_err(|e| {
                Error::BadInput(format!("{shown}: cannot read ({e}); check `model.init`"))
            })?;
            let read = |key: Option<&str>| {
                if legacy {
                    return super::legacy_pth::read_all_with_key(path, key);
                }
                candle_core::pickle::read_all_with_key(path, key).map_err(|e| {
                    Error::BadInput(format!(
                        "{shown}: not a readable PyTorch checkpoint ({e}). clusterlab reads the \
                         zip format torch.save writes since PyTorch 1.6 and the legacy format \
                         before it; re-save the file with `torch.save(torch.load(f), f)`, or \
                         convert it to safetensors"
                    ))
                })
            };
            let mut tensors = read(None)?;
            for key in ["state_dict", "model"] {
                if !tensors.is_empty() {
                    break;
                }
                // A missing key is an error of the reader: try the next one.
                tensors = read(Some(key)).unwrap_or_default();
            }
            if tensors.is_empty() {
                return Err(Error::BadInput(format!(
                    "{shown}: no tensor found (looked at the top level and under `state_dict` \
                     and `model`); save the state dict itself: torch.save(model.state_dict(), f)"
                )));
            }
            Ok(tensors.into_iter().collect())
        }
        None => Err(Error::BadInput(format!(
            "{shown}: unknown weights format; expected .safetensors, .pth, .pth.tar or .pt"
        ))),
    }
}

/// True for a prefix that names a momentum/target copy of the encoder (MoCo's `encoder_k`,
/// BYOL's target, a teacher, an EMA).
fn is_shadow(prefix: &str) -> bool {
    ["encoder_k", "momentum", "target", "teacher", "ema"]
        .iter()
        .any(|w| prefix.contains(w))
}

/// The prefix before the backbone's names in `keys` (see the module doc), or `None` when no
/// key ends in any of them.
pub fn detect_prefix<'a>(
    keys: impl Iterator<Item = &'a String>,
    names: &[String],
) -> Option<String> {
    let mut votes: HashMap<String, usize> = HashMap::new();
    for k in keys {
        for n in names {
            if let Some(p) = k.strip_suffix(n.as_str()) {
                if p.is_empty() || p.ends_with('.') {
                    *votes.entry(p.to_string()).or_default() += 1;
                }
            }
        }
    }
    votes
        .into_iter()
        .min_by(|(pa, va), (pb, vb)| {
            vb.cmp(va)
                .then(is_shadow(pa).cmp(&is_shadow(pb)))
                .then(pa.len().cmp(&pb.len()))
                .then(pa.cmp(pb))
        })
        .map(|(p, _)| p)
}

fn list(keys: &[String]) -> String {
    let mut s = keys
        .iter()
        .take(LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > LIST_MAX {
        s.push_str(&format!(", … ({} in all)", keys.len()));
    }
    s
}

/// Sets every backbone tensor of `params` from `tensors` (a weights file's, by key). Checks
/// everything first: on a missing key or a wrong shape nothing is set, and the error names the
/// keys (the file's and ours).
pub fn load_backbone(
    params: &Params,
    tensors: &BTreeMap<String, Tensor>,
    source: &str,
) -> Result<Loaded> {
    let ours = params.entries_under(BACKBONE_PREFIX);
    let names: Vec<String> = ours
        .iter()
        .map(|(k, _)| k[BACKBONE_PREFIX.len()..].to_string())
        .collect();
    let Some(prefix) = detect_prefix(tensors.keys(), &names) else {
        let first: Vec<String> = tensors.keys().take(LIST_MAX).cloned().collect();
        return Err(Error::BadInput(format!(
            "{source}: no tensor of this backbone found (it has {} tensors named like \
             `conv1.weight`, `{}`; the file's keys: {}). Is it the backbone `model.backbone` \
             names?",
            names.len(),
            names.last().map_or("", |s| s),
            list(&first)
        )));
    };
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut plan = Vec::with_capacity(ours.len());
    for ((_, var), name) in ours.iter().zip(&names) {
        let key = format!("{prefix}{name}");
        match tensors.get(&key) {
            None => missing.push(key),
            Some(t) if t.dims() != var.dims() => wrong.push(format!(
                "{key} is {:?} in the file, {:?} in the model",
                t.dims(),
                var.dims()
            )),
            Some(t) => plan.push((var, t)),
        }
    }
    if !missing.is_empty() || !wrong.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "{} of the backbone's {} tensors missing: {}",
                missing.len(),
                names.len(),
                list(&missing)
            ));
        }
        if !wrong.is_empty() {
            parts.push(format!("wrong shapes: {}", list(&wrong)));
        }
        return Err(Error::BadInput(format!(
            "{source}: does not fit the configured backbone (key prefix {prefix:?} detected): {}. \
             Check `model.backbone`, `model.stem` and the dataset's channels against the file",
            parts.join("; ")
        )));
    }
    for (var, t) in &plan {
        let t = t.to_dtype(DType::F32)?.to_device(var.device())?;
        var.set(&t)?;
    }
    Ok(Loaded {
        prefix,
        loaded: plan.len(),
        dropped: tensors.len() - plan.len(),
    })
}

/// [`read_tensors`] then [`load_backbone`], after checking the file still has the SHA-256 the
/// run was planned with (`model.init_sha256`).
pub fn load_file(params: &Params, path: &Path, sha256: &str) -> Result<Loaded> {
    let found = crate::config::weights::file_sha256(path)?;
    if !sha256.is_empty() && found != sha256 {
        return Err(Error::BadInput(format!(
            "{}: SHA-256 {found}, but the run was planned with {sha256} (`model.init_sha256`): \
             the weights changed since; restore them, or re-plan the run",
            path.display()
        )));
    }
    let tensors = read_tensors(path)?;
    load_backbone(params, &tensors, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::run::ModelConfig;
    use crate::nn::resnet::tests::{fill_value, fixture, hash_uniform};
    use crate::nn::{rel_diff, Backbone};
    use crate::rng::stream;
    use serde_json::Value;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefix_detection_prefers_the_query_encoder_and_whole_names() {
        let names = strings(&["conv1.weight", "bn1.weight", "layer1.0.conv1.weight"]);
        let keys = strings(&[
            "module.encoder_k.conv1.weight",
            "module.encoder_k.bn1.weight",
            "module.encoder_k.layer1.0.conv1.weight",
            "module.encoder_q.conv1.weight",
            "module.encoder_q.bn1.weight",
            "module.encoder_q.layer1.0.conv1.weight",
            "module.encoder_q.fc.0.weight",
            "module.queue",
            "xconv1.weight",
        ]);
        assert_eq!(
            detect_prefix(keys.iter(), &names).as_deref(),
            Some("module.encoder_q.")
        );
        assert_eq!(detect_prefix(names.iter(), &names).as_deref(), Some(""));
        let none = strings(&["fc.weight"]);
        assert_eq!(detect_prefix(none.iter(), &names), None);
    }

    fn model(backbone: &str, stem: &str, widths: &[usize], seed: u64) -> (Params, Backbone) {
        let cfg = ModelConfig {
            backbone: backbone.into(),
            stem: stem.into(),
            widths: widths.to_vec(),
            ..ModelConfig::default()
        };
        let mut p = Params::new(stream(seed, "init"), Device::Cpu);
        let net = Backbone::new(&mut p, &cfg, 3).unwrap();
        (p, net)
    }

    fn floats(v: &Value) -> Vec<f32> {
        let a = v.as_array().unwrap();
        a.iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    fn here(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pretrained")
            .join(name)
    }

    /// Files written by PyTorch (`tests/fixtures/pretrained/generate.py`), in the zip format
    /// and in the legacy one (`.pth.tar`, as MoCo released its weights): a plain state dict,
    /// a MoCo v2 checkpoint (nested under `state_dict`, `module.encoder_q.` prefix, a momentum
    /// encoder with other weights, head and queue) and SCAN-style safetensors all load, and
    /// give the features PyTorch computed (eval: 1e-5; train mode too).
    #[test]
    fn torch_written_files_give_torchs_features() {
        let fx: Value =
            serde_json::from_str(&std::fs::read_to_string(here("features.json")).unwrap()).unwrap();
        let shape: Vec<usize> = fx["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let x = Tensor::from_vec(floats(&fx["input"]), shape.as_slice(), &Device::Cpu).unwrap();
        for (file, prefix, dropped) in [
            ("cnn.pth", "", 2),
            ("cnn_moco.pth", "module.encoder_q.", 2 + 12 + 4),
            ("cnn_legacy.pth", "", 2),
            ("cnn_moco_legacy.pth.tar", "module.encoder_q.", 2 + 12 + 4),
            ("cnn_scan.safetensors", "backbone.", 1),
        ] {
            let (p, net) = model("cnn", "cifar", &[4, 8], 9);
            let path = here(file);
            let sha = crate::config::weights::file_sha256(&path).unwrap();
            let got = load_file(&p, &path, &sha).unwrap();
            assert_eq!(
                got,
                Loaded {
                    prefix: prefix.into(),
                    loaded: 10,
                    dropped
                },
                "{file}"
            );
            let eval = net.forward(&x, false).unwrap();
            let want = Tensor::from_vec(floats(&fx["eval_output"]), eval.shape(), &Device::Cpu);
            let d = rel_diff(&eval, &want.unwrap());
            assert!(d < 1e-5, "{file}: eval features differ from torch's by {d}");
            let train = net.forward(&x, true).unwrap();
            let want = Tensor::from_vec(floats(&fx["train_output"]), train.shape(), &Device::Cpu);
            let d = rel_diff(&train, &want.unwrap());
            assert!(
                d < 1e-5,
                "{file}: train features differ from torch's by {d}"
            );
        }
    }

    #[test]
    fn wrong_files_name_the_keys_and_load_nothing() {
        let path = here("cnn.pth");
        // Another width: shapes differ.
        let (p, _) = model("cnn", "cifar", &[4, 16], 9);
        let before = p.state_dict();
        let e = load_file(&p, &path, "").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("wrong shapes")
                && msg.contains("blocks.1.conv.weight is [8, 4, 3, 3] in the file, [16, 4, 3, 3]"),
            "{msg}"
        );
        assert_eq!(e.exit_code(), 2);
        for (k, t) in p.state_dict() {
            assert_eq!(
                rel_diff(&t, &before[&k]),
                0.0,
                "{k} changed by a failed load"
            );
        }
        // One block more: its keys are missing.
        let (p, _) = model("cnn", "cifar", &[4, 8, 8], 9);
        let msg = load_file(&p, &path, "").unwrap_err().to_string();
        assert!(
            msg.contains("5 of the backbone's 15 tensors missing: blocks.2.bn.bias"),
            "{msg}"
        );
        // Another architecture: nothing matches.
        let (p, _) = model("resnet18", "cifar", &[], 9);
        let msg = load_file(&p, &path, "").unwrap_err().to_string();
        assert!(msg.contains("no tensor of this backbone found"), "{msg}");
        // A changed file, and a file that is not a checkpoint.
        let msg = load_file(&p, &path, &"0".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("the weights changed"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pth");
        std::fs::write(&junk, b"not a zip").unwrap();
        let msg = load_file(&p, &junk, "").unwrap_err().to_string();
        assert!(msg.contains("not a readable PyTorch checkpoint"), "{msg}");
    }

    /// torchvision's key names in a safetensors file (plus `fc` and `num_batches_tracked`,
    /// which are dropped), filled by the rule of `tests/fixtures/resnet/generate.py`: our
    /// ResNet-18 then computes the features torchvision computed for those weights
    /// (`forward.json`), for both stems.
    #[test]
    fn torchvision_resnet18_keys_give_torchvisions_features() {
        let fx = fixture("forward.json");
        let dir = tempfile::tempdir().unwrap();
        for case in fx["cases"].as_array().unwrap() {
            let stem = case["stem"].as_str().unwrap();
            let (p, net) = model("resnet18", stem, &[], 3);
            let mut file: BTreeMap<String, Tensor> = BTreeMap::new();
            for (name, t) in p.state_dict() {
                let tv = name.strip_prefix(BACKBONE_PREFIX).unwrap().to_string();
                let data = fill_value(&tv, t.dims());
                file.insert(tv, Tensor::from_vec(data, t.dims(), &Device::Cpu).unwrap());
            }
            let nbt = Tensor::new(&[5i64], &Device::Cpu).unwrap();
            file.insert("bn1.num_batches_tracked".into(), nbt);
            file.insert(
                "fc.weight".into(),
                Tensor::zeros((10, 512), DType::F32, &Device::Cpu).unwrap(),
            );
            file.insert(
                "fc.bias".into(),
                Tensor::zeros(10, DType::F32, &Device::Cpu).unwrap(),
            );
            let path = dir.path().join(format!("resnet18-{stem}.safetensors"));
            candle_core::safetensors::save(&file.into_iter().collect::<HashMap<_, _>>(), &path)
                .unwrap();
            let got = load_file(&p, &path, "").unwrap();
            assert_eq!((got.prefix.as_str(), got.dropped), ("", 3));
            let shape: Vec<usize> = case["input_shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let x: Vec<f32> = hash_uniform("input", shape.iter().product())
                .into_iter()
                .map(|u| (u + 1.0) / 2.0)
                .collect();
            let x = Tensor::from_vec(x, shape.as_slice(), &Device::Cpu).unwrap();
            let eval = net.forward(&x, false).unwrap();
            let want = Tensor::from_vec(floats(&case["eval_output"]), eval.shape(), &Device::Cpu);
            let d = rel_diff(&eval, &want.unwrap());
            assert!(
                d < 1e-4,
                "resnet18 {stem}: features differ from torchvision's by {d}"
            );
        }
    }

    /// ResNet-18 and -34, both stems: a model's own weights (BatchNorm statistics moved by a
    /// train-mode pass), saved under MoCo's prefix beside a momentum encoder with other
    /// weights, load into a model of another seed and give bit-identical features.
    #[test]
    fn resnets_round_trip_under_a_moco_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let x = Tensor::from_vec(
            hash_uniform("x", 2 * 3 * 32 * 32),
            (2, 3, 32, 32),
            &Device::Cpu,
        )
        .unwrap();
        for (backbone, stem) in [
            ("resnet18", "cifar"),
            ("resnet18", "imagenet"),
            ("resnet34", "cifar"),
            ("resnet34", "imagenet"),
        ] {
            let (a, net_a) = model(backbone, stem, &[], 1);
            net_a.forward(&x, true).unwrap();
            let (shadow, _) = model(backbone, stem, &[], 2);
            let mut file: BTreeMap<String, Tensor> = BTreeMap::new();
            for (name, t) in a.state_dict() {
                let tv = &name[BACKBONE_PREFIX.len()..];
                file.insert(format!("module.encoder_q.{tv}"), t);
            }
            for (name, t) in shadow.state_dict() {
                let tv = &name[BACKBONE_PREFIX.len()..];
                file.insert(format!("module.encoder_k.{tv}"), t);
            }
            let path = dir.path().join(format!("{backbone}-{stem}.safetensors"));
            candle_core::safetensors::save(&file.into_iter().collect::<HashMap<_, _>>(), &path)
                .unwrap();
            let (b, net_b) = model(backbone, stem, &[], 3);
            let got = load_file(&b, &path, "").unwrap();
            assert_eq!(got.prefix, "module.encoder_q.", "{backbone} {stem}");
            assert_eq!(got.loaded, a.state_dict().len());
            let fa = net_a.forward(&x, false).unwrap();
            let fb = net_b.forward(&x, false).unwrap();
            assert_eq!(
                fa.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                fb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{backbone} {stem}"
            );
        }
    }
}
