//! The grid's optional launcher sections: `slurm:` (sbatch resources) and `k8s:` (Indexed Job).
//!
//! ```yaml
//! slurm: {partition: gpu, account: lab, gres: "gpu:1", cpus_per_task: 8, mem: 32G,
//!         time: "12:00:00", max_parallel: 8, signal_before_s: 300}
//! k8s:   {image: registry/clusterlab:1.0, parallelism: 4, cpu: "8", memory: 32Gi, gpu: 1}
//! ```
//!
//! Every key is optional; unknown keys are errors located `file:line:column` with the closest
//! valid key. Command-line flags override these values (see `launch::slurm`, `launch::k8s`).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::locate::{closest, locate_path};
use crate::error::{Error, Result};

/// Slurm resources and array behaviour for `clusterlab slurm`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem`, e.g. `16G`.
    pub mem: Option<String>,
    /// `--time`, e.g. `12:00:00` or `90` (minutes).
    pub time: Option<String>,
    /// The `%N` array throttle: at most this many cells at once.
    pub max_parallel: Option<usize>,
    /// Seconds before the time limit at which the batch shell gets SIGUSR1.
    pub signal_before_s: Option<u32>,
}

/// Kubernetes Indexed Job settings for `clusterlab k8s`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sSpec {
    /// Container image holding the `clusterlab` binary.
    pub image: Option<String>,
    /// Namespace of the Job (omitted when unset).
    pub namespace: Option<String>,
    /// Pods at once.
    pub parallelism: Option<usize>,
    /// Retries per index before that index is marked failed.
    pub backoff_limit_per_index: Option<u32>,
    /// CPU request and limit, e.g. `"8"`.
    pub cpu: Option<String>,
    /// Memory request and limit, e.g. `32Gi`.
    pub memory: Option<String>,
    /// `nvidia.com/gpu` limit.
    pub gpu: Option<u32>,
    /// Working directory inside the container (where the grid path and `runs/` are resolved).
    pub workdir: Option<String>,
    /// PersistentVolumeClaim mounted at the working directory (shared run store).
    pub pvc: Option<String>,
}

/// Keys of [`SlurmSpec`], for error hints.
const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "gres",
    "cpus_per_task",
    "mem",
    "time",
    "max_parallel",
    "signal_before_s",
];

/// Keys of [`K8sSpec`], for error hints.
const K8S_KEYS: &[&str] = &[
    "image",
    "namespace",
    "parallelism",
    "backoff_limit_per_index",
    "cpu",
    "memory",
    "gpu",
    "workdir",
    "pvc",
];

/// Parses the `slurm:` section of a grid (`None` when absent).
pub fn parse_slurm(text: &str, source: &str, value: Option<&Value>) -> Result<Option<SlurmSpec>> {
    parse_section(text, source, "slurm", SLURM_KEYS, value)
}

/// Parses the `k8s:` section of a grid (`None` when absent).
pub fn parse_k8s(text: &str, source: &str, value: Option<&Value>) -> Result<Option<K8sSpec>> {
    parse_section(text, source, "k8s", K8S_KEYS, value)
}

fn parse_section<T: DeserializeOwned>(
    text: &str,
    source: &str,
    section: &str,
    keys: &[&str],
    value: Option<&Value>,
) -> Result<Option<T>> {
    let value = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            let (l, c) = locate_path(text, &[section]).unwrap_or((1, 1));
            return Err(Error::Config(format!(
                "{source}:{l}:{c}: `{section}` must be a mapping of settings (valid keys: {})",
                keys.join(", ")
            )));
        }
    };
    if let Value::Object(map) = value {
        for key in map.keys() {
            if !keys.contains(&key.as_str()) {
                let (l, c) = locate_path(text, &[section, key])
                    .or_else(|| locate_path(text, &[section]))
                    .unwrap_or((1, 1));
                let hint = closest(key, keys.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("valid keys: {}", keys.join(", ")));
                return Err(Error::Config(format!(
                    "{source}:{l}:{c}: unknown key `{section}.{key}`; {hint}"
                )));
            }
        }
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| {
            // Type errors: name the first key whose value does not fit.
            let msg = e.to_string();
            let key = match value {
                Value::Object(map) => map
                    .iter()
                    .find(|(k, v)| {
                        let mut one = serde_json::Map::new();
                        one.insert((*k).clone(), (*v).clone());
                        serde_json::from_value::<T>(Value::Object(one)).is_err()
                    })
                    .map(|(k, _)| k.clone()),
                _ => None,
            };
            match key {
                Some(k) => {
                    let (l, c) = locate_path(text, &[section, &k])
                        .or_else(|| locate_path(text, &[section]))
                        .unwrap_or((1, 1));
                    Error::Config(format!(
                        "{source}:{l}:{c}: invalid value for `{section}.{k}`: {msg}"
                    ))
                }
                None => Error::Config(format!("{source}: invalid `{section}` section: {msg}")),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm(text: &str) -> Result<Option<SlurmSpec>> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let v = serde_json::to_value(v).unwrap();
        parse_slurm(text, "g.yaml", v.get("slurm"))
    }

    #[test]
    fn parses_typed_values() {
        let s = slurm("name: t\nslurm:\n  gres: gpu:1\n  cpus_per_task: 4\n  time: \"01:00:00\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(s.gres.as_deref(), Some("gpu:1"));
        assert_eq!(s.cpus_per_task, Some(4));
        assert_eq!(s.time.as_deref(), Some("01:00:00"));
        assert_eq!(slurm("name: t\n").unwrap(), None);
    }

    #[test]
    fn unknown_key_is_located_with_hint() {
        let e = slurm("name: t\nslurm:\n  cpus_per_tsk: 4\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "g.yaml:3:3: unknown key `slurm.cpus_per_tsk`; did you mean `cpus_per_task`?"
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let e = slurm("name: t\nslurm:\n  gres: gpu:1\n  cpus_per_task: many\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("g.yaml:4:3: invalid value for `slurm.cpus_per_task`"),
            "{e}"
        );
        let e = slurm("name: t\nslurm: 4\n").unwrap_err().to_string();
        assert!(
            e.starts_with("g.yaml:2:1: `slurm` must be a mapping"),
            "{e}"
        );
    }
}
