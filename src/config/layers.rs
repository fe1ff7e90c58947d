//! Layered resolution of one run config with figment.
//!
//! Precedence, lowest first: built-in defaults < the grid's `base` < the cell's axis values <
//! environment (`CLUSTERLAB_OPTIMIZER__LR=1e-3`) < `--set optimizer.lr=1e-3`. Every layer is
//! checked against the schema before merging, so an unknown key is reported with the layer it
//! came from and the closest valid key.

use figment::providers::Serialized;
use figment::Figment;
use serde_json::Value;

use super::locate::closest;
use super::protocols::Fidelity;
use super::RunConfig;

/// Where a configuration value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The grid file's `base:` mapping.
    Base,
    /// One cell's values (from `grid`, `zip` or `include`).
    Cell,
    /// A `CLUSTERLAB_…` environment variable.
    Env,
    /// A `--set key=value` argument.
    Set,
}

/// A problem found while resolving, before it is located in a file.
#[derive(Debug, Clone)]
pub struct LayerError {
    pub layer: Layer,
    /// Dotted key the problem is about.
    pub key: String,
    pub message: String,
}

/// Dotted keys whose value is a free-form map (any sub-key accepted here, checked by `validate`).
const FREE_MAPS: &[&str] = &["method.weights"];

/// Prefix of environment variables that override run config keys (`__` separates levels).
pub const ENV_PREFIX: &str = "CLUSTERLAB_";

/// Overrides that apply on top of every cell: environment and `--set`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub env: Vec<(String, Value)>,
    pub sets: Vec<(String, Value)>,
}

impl Overrides {
    /// Reads `CLUSTERLAB_…` variables whose first level names a run-config section.
    pub fn from_env_and_sets(sets: &[String]) -> Result<Self, String> {
        let schema = schema();
        let mut env = Vec::new();
        let mut vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (name, raw) in vars {
            let key = name[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
            let top = key.split('.').next().unwrap_or_default();
            if schema.get(top).is_none() {
                continue; // not a run-config variable (e.g. CLUSTERLAB_RUNS_DIR)
            }
            env.push((key, parse_scalar(&raw)));
        }
        let mut parsed = Vec::new();
        for s in sets {
            parsed.push(parse_set(s)?);
        }
        Ok(Self { env, sets: parsed })
    }
}

/// Parses `key=value`; the value is read as a YAML scalar or flow collection (`1e-3`, `[16, 32]`).
pub fn parse_set(arg: &str) -> Result<(String, Value), String> {
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(format!(
            "--set {arg:?}: expected KEY=VALUE, e.g. --set optimizer.lr=1e-3"
        ));
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
        return Err(format!(
            "--set {arg:?}: the key {key:?} is empty or has an empty segment; use dotted keys such as train.epochs"
        ));
    }
    Ok((key.to_string(), parse_scalar(raw)))
}

/// A `--set KEY=A,B,C` sweep (Hydra's multirun grammar): the key and one value per
/// comma-separated item; `None` for a plain `--set` (no comma outside brackets, braces and
/// quotes). Each item is read like a plain `--set` value, so `--set model.widths=[8,16],[16,32]`
/// sweeps two lists, and a value that contains a comma is quoted: `--set dataset.path='a,b'`.
pub fn parse_sweep(arg: &str) -> Result<Option<(String, Vec<Value>)>, String> {
    let (key, _) = parse_set(arg)?;
    let raw = arg.split_once('=').map(|(_, r)| r).unwrap_or_default();
    let items = split_top_level(raw);
    if items.len() < 2 {
        return Ok(None);
    }
    if let Some(empty) = items.iter().position(|i| i.trim().is_empty()) {
        return Err(format!(
            "--set {arg:?}: item {} of the sweep is empty; give one value between each pair of commas (quote a value that contains a comma: KEY='a,b')",
            empty + 1
        ));
    }
    Ok(Some((
        key,
        items.iter().map(|i| parse_scalar(i.trim())).collect(),
    )))
}

/// Splits at commas that are outside `[]`, `{}` and single or double quotes.
fn split_top_level(raw: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    let mut out = Vec::new();
    for (i, c) in raw.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&raw[start..]);
    out
}

fn parse_scalar(raw: &str) -> Value {
    match serde_yaml::from_str::<serde_yaml::Value>(raw) {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// The schema: the default config as a JSON tree.
pub fn schema() -> Value {
    serde_json::to_value(RunConfig::default()).expect("RunConfig serialises")
}

/// Checks a dotted key against the schema; on failure, a message with the closest valid key.
pub fn check_key(schema: &Value, dotted: &str) -> Result<(), String> {
    let mut node = schema;
    let mut walked = String::new();
    for seg in dotted.split('.') {
        if FREE_MAPS.contains(&walked.as_str()) {
            return Ok(());
        }
        let Some(obj) = node.as_object() else {
            return Err(format!(
                "unknown key `{dotted}`: `{walked}` is a value, not a section"
            ));
        };
        match obj.get(seg) {
            Some(child) => node = child,
            None => {
                let full = |s: &str| {
                    if walked.is_empty() {
                        s.to_string()
                    } else {
                        format!("{walked}.{s}")
                    }
                };
                let hint = match closest(seg, obj.keys().map(|k| k.as_str())) {
                    Some(c) => format!("; did you mean `{}`?", full(c)),
                    None => {
                        let mut keys: Vec<_> = obj.keys().map(|k| full(k)).collect();
                        keys.sort();
                        format!("; valid keys here: {}", keys.join(", "))
                    }
                };
                return Err(format!("unknown key `{dotted}`{hint}"));
            }
        }
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(seg);
    }
    Ok(())
}

/// Checks every leaf key of a nested mapping (the grid `base`).
pub fn check_tree(schema: &Value, tree: &Value, prefix: &str, errs: &mut Vec<(String, String)>) {
    let Some(obj) = tree.as_object() else { return };
    for (k, v) in obj {
        let dotted = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Err(msg) = check_key(schema, &dotted) {
            errs.push((dotted, msg));
            continue;
        }
        if FREE_MAPS.contains(&dotted.as_str()) {
            continue;
        }
        if v.is_object() {
            check_tree(schema, v, &dotted, errs);
        }
    }
}

/// Resolves one run config from its layers.
pub fn resolve(
    base: &Value,
    cell: &[(String, Value)],
    overrides: &Overrides,
) -> Result<RunConfig, LayerError> {
    resolve_with(base, cell, overrides, None)
}

/// [`resolve`] with a grid's `protocol:`: the paper protocol of the cell's (method, dataset)
/// (`config::protocols::layer`) as a layer just above the defaults, below `augment.preset: cc`
/// and every explicit key.
pub fn resolve_with(
    base: &Value,
    cell: &[(String, Value)],
    overrides: &Overrides,
    protocol: Option<Fidelity>,
) -> Result<RunConfig, LayerError> {
    let schema = schema();
    let mut errs = Vec::new();
    check_tree(&schema, base, "", &mut errs);
    if let Some((key, message)) = errs.into_iter().next() {
        return Err(LayerError {
            layer: Layer::Base,
            key,
            message,
        });
    }
    let layered: Vec<(Layer, &[(String, Value)])> = vec![
        (Layer::Cell, cell),
        (Layer::Env, &overrides.env),
        (Layer::Set, &overrides.sets),
    ];
    for (layer, pairs) in &layered {
        for (key, _) in pairs.iter() {
            check_key(&schema, key).map_err(|message| LayerError {
                layer: *layer,
                key: key.clone(),
                message,
            })?;
        }
    }

    let first = extract_layers(base, &layered, &[])?;
    let mut presets = Vec::new();
    if let Some(fidelity) = protocol {
        let (method, dataset) = (&first.method.name, &first.dataset.name);
        match super::protocols::layer(fidelity, method, dataset) {
            Some(layer) => presets.push(layer),
            None => {
                let known: Vec<_> = super::protocols::DATASETS
                    .iter()
                    .map(|d| d.dataset)
                    .collect();
                return Err(LayerError {
                    layer: Layer::Base,
                    key: "dataset.name".into(),
                    message: format!(
                        "invalid value for `dataset.name`: {dataset:?}; the grid's `protocol: {}` needs a dataset with a paper protocol ({}); remove `protocol:` to set every key yourself",
                        fidelity.name(),
                        known.join(", ")
                    ),
                });
            }
        }
    }
    // `augment.preset: cc` adds CC's per-dataset augmentation just above the defaults, so
    // every key set in a layer still wins; an unknown dataset is reported by `validate`.
    if first.augment.preset == "cc" {
        presets.extend(super::presets::cc_augment(&first.dataset.name));
    }
    if presets.is_empty() {
        return Ok(first);
    }
    let resolved = extract_layers(base, &layered, &presets)?;
    if resolved.method.name != first.method.name || resolved.dataset.name != first.dataset.name {
        // A preset cannot choose the method or dataset it was chosen by.
        return Err(LayerError {
            layer: Layer::Base,
            key: "method.name".into(),
            message: "a protocol layer changed method.name or dataset.name".into(),
        });
    }
    Ok(resolved)
}

/// defaults < `preset` < base < the other layers, extracted; on failure, blames the first
/// layer whose addition breaks extraction.
fn extract_layers(
    base: &Value,
    layered: &[(Layer, &[(String, Value)])],
    presets: &[Value],
) -> Result<RunConfig, LayerError> {
    let mut figment = Figment::from(Serialized::defaults(RunConfig::default()));
    for preset in presets {
        figment = figment.merge(Serialized::defaults(preset.clone()));
    }
    if base.as_object().is_some_and(|o| !o.is_empty()) {
        figment = figment.merge(Serialized::defaults(base.clone()));
    }
    let mut stages: Vec<(Layer, Figment)> = vec![(Layer::Base, figment.clone())];
    for (layer, pairs) in layered {
        for (key, value) in pairs.iter() {
            figment = figment.merge(Serialized::default(key, value.clone()));
        }
        stages.push((*layer, figment.clone()));
    }
    match figment.extract::<RunConfig>() {
        Ok(mut cfg) => {
            if cfg.dataset.name == "folder" && !sets_key(base, layered, "dataset.num_classes") {
                // Its default (10) is a guess for a folder: the number of class folders, or
                // the K to cluster unlabelled images into, is the user's to give.
                return Err(LayerError {
                    layer: Layer::Base,
                    key: "dataset.num_classes".into(),
                    message: "missing key `dataset.num_classes`: dataset folder needs it set \
                              (the number of class folders, or for images without class \
                              folders the number of clusters K to find)"
                        .into(),
                });
            }
            cfg.dataset.resolve_protocol();
            cfg.method.num_clusters = cfg.num_clusters();
            Ok(cfg)
        }
        Err(_) => {
            // Blame the first layer whose addition makes extraction fail.
            for (layer, stage) in stages {
                if let Err(e) = stage.extract::<RunConfig>() {
                    let key = e
                        .path
                        .iter()
                        .filter(|s| s.as_str() != "default")
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(".");
                    return Err(LayerError {
                        layer,
                        message: format!("invalid value for `{key}`: {}", e.kind),
                        key,
                    });
                }
            }
            unreachable!("the full figment failed, so one stage fails")
        }
    }
}

/// Whether the base or one of the layers sets the dotted `key` (directly, or inside an
/// object set at one of its prefixes).
fn sets_key(base: &Value, layered: &[(Layer, &[(String, Value)])], key: &str) -> bool {
    let within = |v: &Value, rest: &str| {
        rest.is_empty() || rest.split('.').try_fold(v, |v, part| v.get(part)).is_some()
    };
    within(base, key)
        || layered.iter().any(|(_, pairs)| {
            pairs.iter().any(|(k, v)| {
                if k == key {
                    return true;
                }
                key.strip_prefix(k.as_str())
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(|rest| within(v, rest))
            })
        })
}

/// Flattens a JSON tree into dotted keys → leaf values (lists are leaves).
pub fn flatten(value: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    flatten_into(value, String::new(), &mut out);
    out
}

fn flatten_into(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(v, key, out);
            }
        }
        other => out.push((prefix, other.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_split_at_top_level_commas_only() {
        let (k, v) = parse_sweep("seed=0,1,2").unwrap().unwrap();
        assert_eq!(
            (k.as_str(), v),
            ("seed", vec![json!(0), json!(1), json!(2)])
        );
        let (_, v) = parse_sweep("model.widths=[8,16],[16,32]").unwrap().unwrap();
        assert_eq!(v, vec![json!([8, 16]), json!([16, 32])]);
        let (_, v) = parse_sweep("method.name=cc, drc").unwrap().unwrap();
        assert_eq!(v, vec![json!("cc"), json!("drc")]);
        // Quoted commas and brackets are values, not sweeps.
        assert_eq!(parse_sweep("dataset.path='a,b'").unwrap(), None);
        assert_eq!(
            parse_sweep("dataset.path=\"a,b\",c").unwrap().unwrap().1,
            vec![json!("a,b"), json!("c")]
        );
        assert_eq!(parse_sweep("model.widths=[8,16]").unwrap(), None);
        assert_eq!(parse_sweep("seed=3").unwrap(), None);
        let e = parse_sweep("seed=0,,1").unwrap_err();
        assert!(e.contains("item 2") && e.contains("seed=0,,1"), "{e}");
        assert!(parse_sweep("=1,2").is_err());
    }
    use serde_json::json;

    #[test]
    fn layers_apply_in_order() {
        let base = json!({"optimizer": {"lr": 0.1}, "train": {"epochs": 3}});
        let cell = vec![("optimizer.lr".to_string(), json!(0.2))];
        let over = Overrides {
            env: vec![("train.epochs".into(), json!(4))],
            sets: vec![("train.epochs".into(), json!(5))],
        };
        let cfg = resolve(&base, &cell, &over).unwrap();
        assert_eq!(cfg.optimizer.lr, 0.2);
        assert_eq!(cfg.train.epochs, 5);
        let cfg = resolve(&base, &cell, &Overrides::default()).unwrap();
        assert_eq!(cfg.train.epochs, 3);
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        let s = schema();
        let e = check_key(&s, "optimizer.lrr").unwrap_err();
        assert!(e.contains("did you mean `optimizer.lr`"), "{e}");
        assert!(check_key(&s, "method.weights.anything").is_ok());
        let e = check_key(&s, "seed.x").unwrap_err();
        assert!(e.contains("is a value"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key_and_layer() {
        let cell = vec![("optimizer.lr".to_string(), json!("fast"))];
        let e = resolve(&json!({}), &cell, &Overrides::default()).unwrap_err();
        assert_eq!(e.layer, Layer::Cell);
        assert_eq!(e.key, "optimizer.lr");
    }

    #[test]
    fn cc_preset_sits_below_explicit_keys() {
        let base = json!({"dataset": {"name": "cifar10"}, "augment": {"preset": "cc", "hue": 0.3}});
        let cfg = resolve(&base, &[], &Overrides::default()).unwrap();
        assert_eq!(cfg.augment.brightness, 0.4);
        assert_eq!(cfg.augment.hue, 0.3, "an explicit key beats the preset");
        assert_eq!(cfg.augment.blur_p, 0.0);
        let cell = vec![("dataset.name".to_string(), json!("imagenet10"))];
        let cfg = resolve(&base, &cell, &Overrides::default()).unwrap();
        assert_eq!((cfg.augment.brightness, cfg.augment.blur_p), (0.8, 0.5));
        assert_eq!(cfg.augment.flip_p, 0.5);
        // Without the preset, nothing changes.
        let cfg = resolve(
            &json!({"dataset": {"name": "imagenet10"}}),
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(cfg.augment, crate::config::run::AugmentConfig::default());
    }

    #[test]
    fn a_folder_dataset_needs_num_classes_set() {
        let base = serde_json::json!({"dataset": {"name": "folder"}});
        let e = resolve(&base, &[], &Overrides::default()).unwrap_err();
        assert_eq!(e.key, "dataset.num_classes");
        assert!(e.message.contains("missing key"), "{}", e.message);
        let cell = [("dataset.num_classes".to_string(), serde_json::json!(4))];
        let cfg = resolve(&base, &cell, &Overrides::default()).unwrap();
        assert_eq!(cfg.dataset.num_classes, 4);
        let nested = serde_json::json!({"dataset": {"name": "folder", "num_classes": 3}});
        assert!(resolve(&nested, &[], &Overrides::default()).is_ok());
        let obj = [("dataset".to_string(), serde_json::json!({"num_classes": 3}))];
        assert!(resolve(&base, &obj, &Overrides::default()).is_ok());
    }

    #[test]
    fn set_syntax() {
        assert_eq!(parse_set("optimizer.lr=3e-4").unwrap().1, json!(0.0003));
        assert_eq!(parse_set("model.widths=[8, 16]").unwrap().1, json!([8, 16]));
        assert!(parse_set("optimizer.lr").is_err());
        assert!(parse_set("optimizer..lr=1").is_err());
    }
}
