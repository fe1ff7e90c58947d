//! Run identity: a stable hash of the canonical resolved run config.
//!
//! The config is first resolved into the typed [`RunConfig`], so the id does not depend on key
//! order, comments or how a number was spelt (`3e-4` and `0.0003` are the same f64). The typed
//! value is then serialised to JSON with sorted keys and the shortest round-trip float form, and
//! hashed with SHA-256.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::RunConfig;

/// Characters of the hex digest kept as the run id.
const ID_LEN: usize = 16;

/// Keys that change how a run is kept, not what it computes: left out of the identity.
pub const NOT_IDENTITY: &[(&str, &str)] = &[
    ("train", "checkpoint_every"),
    ("train", "keep_checkpoints"),
    ("train", "prefetch"),
];

/// Keys added after runs were recorded: (path, the method that reads it, the value that
/// computes what runs did before the key existed). A key is left out of the identity when it
/// holds that value or the run's method does not read it, so every earlier run keeps its id;
/// a run that uses the key with another value gets a new id. The method `*` means every
/// method reads the key; the value is compared as JSON text for non-strings (`false`).
pub const ADDED_KEYS: &[(&[&str], &str, &str)] = &[
    (&["method", "drc", "regularizer_views"], "drc", "both"),
    (&["model", "init"], "*", super::run::INIT_RANDOM),
    (&["model", "init_sha256"], "*", ""),
    (&["model", "freeze_backbone"], "*", "false"),
    (&["from"], "*", ""),
    // A new method's section: out of every other method's identity.
    (&["method", "selflabel"], "selflabel", ""),
    (&["eval", "probes"], "*", "[]"),
    (&["eval", "knn_k"], "*", "20"),
    (&["eval", "probe_test_fraction"], "*", "0.2"),
    (&["eval", "linear_c"], "*", "1.0"),
    (&["eval", "split"], "*", "train"),
    (&["eval", "epoch"], "*", "final"),
    (&["model", "weight_init"], "*", "kaiming_fan_out"),
    (&["train", "precision"], "*", "f32"),
    (&["dataset", "labels"], "*", "null"),
    (&["method", "temi"], "temi", ""),
    (&["method", "turtle"], "turtle", ""),
    (&["method", "scan"], "scan", ""),
    (&["method", "scan", "heads"], "scan", "1"),
    (&["method", "temi", "freeze_last_layer"], "temi", "0"),
    (&["method", "scan", "linear"], "scan", "false"),
    (&["optimizer", "warmup_epochs"], "*", "0"),
];

/// Sections added after runs were recorded: left out of the identity while every key of them
/// held its earlier value (so [`ADDED_KEYS`] removed them all).
const ADDED_SECTIONS: &[&str] = &["eval"];

/// The canonical JSON text of a run config: sorted keys, no whitespace.
pub fn canonical_json(config: &RunConfig) -> String {
    let mut value = serde_json::to_value(config).expect("RunConfig serialises to JSON");
    for (section, key) in NOT_IDENTITY {
        if let Some(obj) = value.get_mut(*section).and_then(|v| v.as_object_mut()) {
            obj.remove(*key);
        }
    }
    for (path, method, before) in ADDED_KEYS {
        let (last, parents) = path.split_last().expect("a non-empty path");
        let mut node = Some(&mut value);
        for p in parents {
            node = node.and_then(|n| n.get_mut(*p));
        }
        if let Some(obj) = node.and_then(|n| n.as_object_mut()) {
            let unused = *method != "*" && config.method.name != *method;
            let at_default = obj.get(*last).is_some_and(|v| match v {
                Value::String(s) => s == before,
                other => serde_json::from_str::<Value>(before).is_ok_and(|b| b == *other),
            });
            if unused || at_default {
                obj.remove(*last);
            }
        }
    }
    if let Some(root) = value.as_object_mut() {
        for s in ADDED_SECTIONS {
            if root
                .get(*s)
                .and_then(|v| v.as_object())
                .is_some_and(|o| o.is_empty())
            {
                root.remove(*s);
            }
        }
        // `method.num_clusters` (added later) is K = the class count unless set otherwise.
        if config.num_clusters() == config.dataset.num_classes {
            if let Some(m) = root.get_mut("method").and_then(|v| v.as_object_mut()) {
                m.remove("num_clusters");
            }
        }
    }
    // Pretrained weights are identified by their content, not by where the file lies.
    if !config.model.init_sha256.is_empty() {
        if let Some(model) = value.get_mut("model").and_then(|v| v.as_object_mut()) {
            model.remove("init");
        }
    }
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The run id of a resolved config: the first 16 hex digits of SHA-256 of its canonical JSON.
pub fn run_id(config: &RunConfig) -> String {
    let digest = Sha256::digest(canonical_json(config).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..ID_LEN].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipeline keys (issue 20) are out of the identity at their defaults, in it otherwise;
    /// the weights are identified by their digest, not their path.
    #[test]
    fn pipeline_keys_enter_the_id_only_when_used() {
        let base = RunConfig::default();
        let json = canonical_json(&base);
        for key in ["\"init\"", "init_sha256", "freeze_backbone", "\"from\""] {
            assert!(!json.contains(key), "{key} in {json}");
        }
        let v: Value = serde_json::from_str(&json).unwrap();
        assert!(v.get("eval").is_none(), "the eval section in {json}");
        let id = run_id(&base);
        let mut frozen = base.clone();
        frozen.model.freeze_backbone = true;
        let mut staged = base.clone();
        staged.from = "pre/0123456789abcdef".into();
        let mut other = staged.clone();
        other.from = "pre/fedcba9876543210".into();
        let mut probed = base.clone();
        probed.eval.probes = vec!["knn".into()];
        let ids = [
            run_id(&frozen),
            run_id(&staged),
            run_id(&other),
            run_id(&probed),
        ];
        assert!(ids.iter().all(|i| *i != id) && ids[1] != ids[2]);
        let mut a = base.clone();
        a.model.init = "a/w.pth".into();
        a.model.init_sha256 = "ab".repeat(32);
        let mut b = a.clone();
        b.model.init = "elsewhere/w.pth".into();
        assert_eq!(run_id(&a), run_id(&b));
        b.model.init_sha256 = "cd".repeat(32);
        assert_ne!(run_id(&a), run_id(&b));
    }
}
