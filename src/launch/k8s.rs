//! Kubernetes: a grid's pending cells as one Indexed Job (rendered, never applied).
//!
//! `completionMode: Indexed` with `completions` = the manifest's cells; pod `k` reads
//! `JOB_COMPLETION_INDEX`, takes the `k`-th cell index of the manifest and runs `clusterlab run
//! GRID --index <cell>`. `backoffLimitPerIndex` retries one cell without failing the others
//! (Kubernetes ≥ 1.28, beta from 1.29); every retry resumes from the cell's checkpoint when the
//! run store is a shared volume (`pvc`). [`render_job`] is pure, so the YAML is snapshot-tested.

use std::fmt::Write as _;

use super::manifest::Manifest;
use crate::config::launcher::K8sSpec;
use crate::error::{Error, Result};

/// Default retries per index.
pub const DEFAULT_BACKOFF_LIMIT_PER_INDEX: u32 = 3;
/// Default working directory in the container.
pub const DEFAULT_WORKDIR: &str = "/workspace";

/// Resolved Job settings: the grid's `k8s:` section with command-line flags on top.
#[derive(Debug, Clone, PartialEq)]
pub struct K8sSettings {
    pub spec: K8sSpec,
    /// The image (required).
    pub image: String,
}

impl K8sSettings {
    /// Flags override the grid's section key by key; an image is required.
    pub fn resolve(grid: Option<&K8sSpec>, flags: &K8sSpec) -> Result<Self> {
        let g = grid.cloned().unwrap_or_default();
        let spec = K8sSpec {
            image: flags.image.clone().or(g.image),
            namespace: flags.namespace.clone().or(g.namespace),
            parallelism: flags.parallelism.or(g.parallelism),
            backoff_limit_per_index: flags.backoff_limit_per_index.or(g.backoff_limit_per_index),
            cpu: flags.cpu.clone().or(g.cpu),
            memory: flags.memory.clone().or(g.memory),
            gpu: flags.gpu.or(g.gpu),
            workdir: flags.workdir.clone().or(g.workdir),
            pvc: flags.pvc.clone().or(g.pvc),
        };
        let Some(image) = spec.image.clone() else {
            return Err(Error::BadInput(
                "k8s: no container image; add `k8s: {image: REGISTRY/clusterlab:TAG}` to the grid or pass --image".into(),
            ));
        };
        if spec.parallelism == Some(0) {
            return Err(Error::BadInput(
                "k8s parallelism 0: at least 1 pod must run".into(),
            ));
        }
        Ok(Self { spec, image })
    }
}

/// A YAML scalar, double-quoted (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Kubernetes object names: lowercase alphanumerics and '-', at most 63 characters.
fn dns_name(s: &str) -> String {
    let mut n: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    n.truncate(63);
    n.trim_matches('-').to_string()
}

/// The Indexed Job for the manifest's cells. `grid_arg`, `runs_dir` and `reports_dir` are
/// the paths as seen inside the container (relative to the working directory).
pub fn render_job(
    m: &Manifest,
    s: &K8sSettings,
    grid_arg: &str,
    runs_dir: &str,
    reports_dir: &str,
) -> String {
    let n = m.cells.len();
    let parallelism = s.spec.parallelism.unwrap_or(n).clamp(1, n.max(1));
    let backoff = s
        .spec
        .backoff_limit_per_index
        .unwrap_or(DEFAULT_BACKOFF_LIMIT_PER_INDEX);
    let workdir = s.spec.workdir.as_deref().unwrap_or(DEFAULT_WORKDIR);
    let cells = m
        .indices()
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mut sets = String::new();
    for x in &m.sets {
        let _ = write!(sets, " --set '{}'", x.replace('\'', r"'\''"));
    }
    // Completion index k → the k-th cell index of the manifest.
    let script = format!(
        "set -eu\ncell=$(echo \"$CELLS\" | cut -d' ' -f$((JOB_COMPLETION_INDEX + 1)))\n\
         exec clusterlab run \"$GRID\" --index \"$cell\" --runs-dir \"$RUNS_DIR\" --reports-dir \"$REPORTS_DIR\"{sets}\n"
    );
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# clusterlab {}: grid {}, {n} of {} cells as an Indexed Job (completion index k runs the",
        env!("CARGO_PKG_VERSION"),
        m.grid,
        m.total_cells
    );
    let _ = writeln!(
        y,
        "# k-th cell of CELLS). Apply with: kubectl apply -f <this file>"
    );
    let _ = writeln!(y, "apiVersion: batch/v1");
    let _ = writeln!(y, "kind: Job");
    let _ = writeln!(y, "metadata:");
    let _ = writeln!(
        y,
        "  name: {}",
        q(&dns_name(&format!("clusterlab-{}", m.grid)))
    );
    if let Some(ns) = &s.spec.namespace {
        let _ = writeln!(y, "  namespace: {}", q(ns));
    }
    let _ = writeln!(y, "  labels:");
    let _ = writeln!(y, "    app.kubernetes.io/name: clusterlab");
    let _ = writeln!(y, "    clusterlab/grid: {}", q(&dns_name(&m.grid)));
    let _ = writeln!(y, "spec:");
    let _ = writeln!(y, "  completionMode: Indexed");
    let _ = writeln!(y, "  completions: {n}");
    let _ = writeln!(y, "  parallelism: {parallelism}");
    let _ = writeln!(y, "  backoffLimitPerIndex: {backoff}");
    let _ = writeln!(y, "  template:");
    let _ = writeln!(y, "    metadata:");
    let _ = writeln!(y, "      labels:");
    let _ = writeln!(y, "        app.kubernetes.io/name: clusterlab");
    let _ = writeln!(y, "    spec:");
    let _ = writeln!(y, "      restartPolicy: Never");
    let _ = writeln!(y, "      containers:");
    let _ = writeln!(y, "        - name: cell");
    let _ = writeln!(y, "          image: {}", q(&s.image));
    let _ = writeln!(y, "          workingDir: {}", q(workdir));
    let _ = writeln!(y, "          env:");
    for (k, v) in [
        ("CELLS", cells.as_str()),
        ("GRID", grid_arg),
        ("RUNS_DIR", runs_dir),
        ("REPORTS_DIR", reports_dir),
    ] {
        let _ = writeln!(y, "            - name: {k}");
        let _ = writeln!(y, "              value: {}", q(v));
    }
    let _ = writeln!(y, "          command: [\"/bin/sh\", \"-c\"]");
    let _ = writeln!(y, "          args:");
    let _ = writeln!(y, "            - |");
    for line in script.lines() {
        let _ = writeln!(y, "              {line}");
    }
    let mut limits = Vec::new();
    if let Some(c) = &s.spec.cpu {
        limits.push(("cpu", q(c)));
    }
    if let Some(m) = &s.spec.memory {
        limits.push(("memory", q(m)));
    }
    if !limits.is_empty() || s.spec.gpu.is_some() {
        let _ = writeln!(y, "          resources:");
        if !limits.is_empty() {
            let _ = writeln!(y, "            requests:");
            for (k, v) in &limits {
                let _ = writeln!(y, "              {k}: {v}");
            }
        }
        let _ = writeln!(y, "            limits:");
        for (k, v) in &limits {
            let _ = writeln!(y, "              {k}: {v}");
        }
        if let Some(g) = s.spec.gpu {
            let _ = writeln!(y, "              nvidia.com/gpu: {g}");
        }
    }
    if let Some(pvc) = &s.spec.pvc {
        let _ = writeln!(y, "          volumeMounts:");
        let _ = writeln!(y, "            - name: store");
        let _ = writeln!(y, "              mountPath: {}", q(workdir));
        let _ = writeln!(y, "      volumes:");
        let _ = writeln!(y, "        - name: store");
        let _ = writeln!(y, "          persistentVolumeClaim:");
        let _ = writeln!(y, "            claimName: {}", q(pvc));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        crate::launch::manifest::example("tiny_grid", &[0, 2, 3, 5])
    }

    fn settings() -> K8sSettings {
        let grid = K8sSpec {
            image: Some("registry.example/clusterlab:0.1".into()),
            parallelism: Some(2),
            cpu: Some("4".into()),
            memory: Some("8Gi".into()),
            gpu: Some(1),
            pvc: Some("clusterlab-store".into()),
            ..Default::default()
        };
        let flags = K8sSpec {
            namespace: Some("research".into()),
            ..Default::default()
        };
        K8sSettings::resolve(Some(&grid), &flags).unwrap()
    }

    #[test]
    fn indexed_job_snapshot() {
        let y = render_job(
            &manifest(),
            &settings(),
            "experiments/tiny.yaml",
            "runs",
            "reports",
        );
        insta::assert_snapshot!(y);
    }

    #[test]
    fn job_yaml_parses_and_maps_indices() {
        let y = render_job(
            &manifest(),
            &settings(),
            "experiments/tiny.yaml",
            "runs",
            "reports",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["spec"]["completionMode"].as_str(), Some("Indexed"));
        assert_eq!(v["spec"]["completions"].as_u64(), Some(4));
        assert_eq!(v["spec"]["parallelism"].as_u64(), Some(2));
        assert_eq!(v["spec"]["backoffLimitPerIndex"].as_u64(), Some(3));
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["env"][0]["value"].as_str(), Some("0 2 3 5"));
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"].as_u64(), Some(1));
        // The pod script, run by sh for each completion index, picks the manifest's cell.
        let script = c["args"][0].as_str().unwrap();
        for (k, cell) in [(0, "0"), (1, "2"), (3, "5")] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script.replace("exec clusterlab", "echo"))
                .env("CELLS", "0 2 3 5")
                .env("JOB_COMPLETION_INDEX", k.to_string())
                .env("GRID", "g.yaml")
                .env("RUNS_DIR", "runs")
                .env("REPORTS_DIR", "reports")
                .output()
                .unwrap();
            let line = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                line.trim(),
                format!(
                    "run g.yaml --index {cell} --runs-dir runs --reports-dir reports --set train.epochs=3"
                )
            );
        }
    }

    #[test]
    fn image_is_required() {
        let e = K8sSettings::resolve(None, &K8sSpec::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--image"), "{e}");
    }
}
