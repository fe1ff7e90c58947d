//! A grid's `from:` section: its runs start from the final weights of runs of another grid (a
//! pipeline stage: pretext → clustering → self-labelling).
//!
//! ```yaml
//! from:
//!   grid: selflabel-pretext   # the source grid: a name under experiments/ or a path (relative
//!                             # to this grid file's folder first)
//!   match: [seed]             # keys whose values a source run shares with the cell (default: seed)
//!   where: {method.name: cc}  # fixed values the source run must have (optional)
//! ```
//!
//! Each cell's source is the one run of the source grid whose resolved config equals the
//! cell's on every `match` key (a key naming a section, such as `dataset`, compares the whole
//! section) and has every `where` value. The source's `<grid>/<run id>` becomes the cell's
//! `from` key, so it is in `config.yaml` and the run id: a changed source is a new run. The
//! linking itself is `launch::stages` (it reads grid files).

use serde_json::Value;
use std::collections::BTreeMap;

use super::layers;

/// The parsed `from:` section.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromSpec {
    /// The source grid: a name under `experiments/`, or a path.
    pub grid: String,
    /// Config keys (dotted) whose values the source run shares with the cell.
    #[serde(default = "default_match", rename = "match")]
    pub match_keys: Vec<String>,
    /// Fixed values the source run must have, by dotted key.
    #[serde(default, rename = "where")]
    pub where_values: BTreeMap<String, Value>,
}

fn default_match() -> Vec<String> {
    vec!["seed".into()]
}

/// The value at a dotted path of a JSON config (`dataset.name`), if any.
pub fn lookup<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(config, |v, part| v.get(part))
}

/// Numbers compare by value (`1` and `1.0` are the same), everything else structurally.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl FromSpec {
    /// Checks every key against the run-config schema; `Err` carries the message of the
    /// first unknown key (with the closest valid one).
    pub fn check_keys(&self) -> std::result::Result<(), String> {
        let schema = layers::schema();
        for k in self.match_keys.iter().chain(self.where_values.keys()) {
            layers::check_key(&schema, k)?;
        }
        Ok(())
    }

    /// True when `source` (a resolved config as JSON) is this cell's source.
    pub fn selects(&self, cell: &Value, source: &Value) -> bool {
        let matched = self
            .match_keys
            .iter()
            .all(|k| match (lookup(cell, k), lookup(source, k)) {
                (Some(a), Some(b)) => same(a, b),
                _ => false,
            });
        matched
            && self
                .where_values
                .iter()
                .all(|(k, v)| lookup(source, k).is_some_and(|s| same(s, v)))
    }

    /// `seed=0 method.name=cc`: what a cell asks of its source, for messages.
    pub fn describe(&self, cell: &Value) -> String {
        let mut parts: Vec<String> = self
            .match_keys
            .iter()
            .map(|k| {
                let v = lookup(cell, k).map_or("?".into(), |v| v.to_string());
                format!("{k}={v}")
            })
            .collect();
        parts.extend(self.where_values.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_by_match_and_where() {
        let spec: FromSpec =
            serde_json::from_value(json!({"grid": "p", "where": {"method.name": "cc"}})).unwrap();
        assert_eq!(spec.match_keys, ["seed"]);
        let cell = json!({"seed": 1, "method": {"name": "selflabel"}});
        assert!(spec.selects(&cell, &json!({"seed": 1.0, "method": {"name": "cc"}})));
        assert!(!spec.selects(&cell, &json!({"seed": 2, "method": {"name": "cc"}})));
        assert!(!spec.selects(&cell, &json!({"seed": 1, "method": {"name": "drc"}})));
        assert_eq!(spec.describe(&cell), "seed=1 method.name=\"cc\"");
        let bad: FromSpec = serde_json::from_value(json!({"grid": "p", "match": ["sed"]})).unwrap();
        let e = bad.check_keys().unwrap_err();
        assert!(e.contains("sed") && e.contains("seed"), "{e}");
    }
}
