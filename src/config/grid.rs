//! Grid specs: a YAML file that declares many runs, and its expansion into cells.
//!
//! ```yaml
//! name: smoke
//! base: {train: {epochs: 20}}          # a (partial) run config shared by every cell
//! grid: {method.name: [cc, kmeans], seed: [0, 1, 2]}   # cartesian product, first axis outermost
//! zip:  [{optimizer.lr: [1e-3, 3e-4], train.batch_size: [64, 128]}]  # axes varying together
//! include: [{method.name: cc, seed: 9}]  # extra cells
//! exclude: [{method.name: kmeans, seed: 2}]  # cells matching every given key are dropped
//! ```

use serde_json::Value;
use std::path::{Path, PathBuf};

use super::launcher::{self, K8sSpec, SlurmSpec};
use super::layers;
use super::locate::{closest, locate_key_text, locate_path};
use super::protocols::Fidelity;
use super::RunConfig;
use crate::error::{Error, Result};

/// The default grid, compiled into the binary so that `clusterlab sweep` works anywhere.
pub const EMBEDDED_SMOKE: &str = include_str!("../../experiments/smoke.yaml");

/// Top-level keys of a grid file.
const GRID_KEYS: &[&str] = &[
    "name",
    "description",
    "base",
    "grid",
    "zip",
    "include",
    "exclude",
    "baseline",
    "report",
    "protocol",
    "slurm",
    "k8s",
    "from",
];

/// A grid's `report:` section: how `clusterlab report` lays out its table (flags override).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// Row keys (result columns, e.g. `method.name`).
    pub rows: Option<Vec<String>>,
    /// Column-group keys (e.g. `dataset.name`).
    pub columns: Option<Vec<String>>,
    /// `final`, `best` (best NMI) or `best:<nmi|acc|ari>`.
    pub epoch: Option<String>,
}

/// Where a grid's text came from.
#[derive(Debug, Clone)]
pub enum GridSource {
    File(PathBuf),
    Embedded(&'static str),
}

impl std::fmt::Display for GridSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GridSource::File(p) => write!(f, "{}", p.display()),
            GridSource::Embedded(name) => write!(f, "<embedded {name}>"),
        }
    }
}

/// One axis of the product: a single key, or a zip group of keys varying together.
#[derive(Debug, Clone)]
pub(super) struct Axis {
    pub(super) keys: Vec<String>,
    /// One row per position; each row holds one value per key.
    pub(super) rows: Vec<Vec<Value>>,
}

/// A parsed grid file.
#[derive(Debug, Clone)]
pub struct Grid {
    pub name: String,
    pub description: String,
    pub source: GridSource,
    pub(super) text: String,
    pub(super) base: Value,
    pub(super) axes: Vec<Axis>,
    pub(super) include: Vec<Vec<(String, Value)>>,
    pub(super) exclude: Vec<Vec<(String, Value)>>,
    /// Axis keys added on the command line (`--set KEY=A,B`), not in the file.
    pub(super) cli_axes: Vec<String>,
    /// The reference cell of an ablation grid (partial assignment); empty when none.
    pub baseline: Vec<(String, Value)>,
    /// The `report:` section (table layout), all defaults when absent.
    pub report: ReportSpec,
    /// `protocol: paper | fast`: each cell's paper protocol (`config::protocols`) as a layer
    /// just above the defaults; none when absent.
    pub protocol: Option<Fidelity>,
    /// The `slurm:` section (resources of `clusterlab slurm`), when present.
    pub slurm: Option<SlurmSpec>,
    /// The `k8s:` section (settings of `clusterlab k8s`), when present.
    pub k8s: Option<K8sSpec>,
    /// The `from:` section: the grid whose runs' final weights this grid's runs start from.
    pub from: Option<super::stages::FromSpec>,
}

/// One expanded cell: its position, its axis values and its resolved config.
#[derive(Debug, Clone)]
pub struct Cell {
    pub index: usize,
    pub assignment: Vec<(String, Value)>,
    pub config: RunConfig,
    pub run_id: String,
}

impl Cell {
    /// `method.name=cc seed=1`, for listings.
    pub fn label(&self) -> String {
        self.assignment
            .iter()
            .map(|(k, v)| format!("{k}={}", short(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub(super) fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Grid {
    /// Adds the command line's sweeps (`--set KEY=A,B,C`, see `layers::parse_sweep`) as axes,
    /// innermost last. A sweep over a key that already is a single-key axis of the file
    /// replaces that axis' values (Hydra's rule); a key of a `zip` group, of `include` or of
    /// `exclude` is refused, naming it.
    pub fn add_cli_axes(&mut self, sweeps: Vec<(String, Vec<Value>)>) -> Result<()> {
        let schema = layers::schema();
        for (key, values) in sweeps {
            layers::check_key(&schema, &key)
                .map_err(|m| Error::Config(format!("--set {key}=…: {m}")))?;
            let in_list = |l: &[Vec<(String, Value)>]| l.iter().flatten().any(|(k, _)| *k == key);
            if in_list(&self.include) || in_list(&self.exclude) {
                return Err(Error::Config(format!(
                    "--set {key}=…: {} names `{key}` in `include` or `exclude`; sweep it in the grid file instead",
                    self.source
                )));
            }
            let rows: Vec<Vec<Value>> = values.into_iter().map(|v| vec![v]).collect();
            match self.axes.iter_mut().find(|a| a.keys.contains(&key)) {
                Some(a) if a.keys.len() == 1 => a.rows = rows,
                Some(_) => {
                    return Err(Error::Config(format!(
                        "--set {key}=…: `{key}` varies in a `zip` group of {}; sweep it in the grid file instead",
                        self.source
                    )))
                }
                None => self.axes.push(Axis {
                    keys: vec![key.clone()],
                    rows,
                }),
            }
            self.cli_axes.push(key);
        }
        Ok(())
    }

    /// The axis keys added by `--set KEY=A,B` sweeps ([`Grid::add_cli_axes`]).
    pub fn cli_axes(&self) -> &[String] {
        &self.cli_axes
    }

    /// Loads a grid from a file path.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::BadInput(format!(
                "cannot read grid file {}: {e}; pass a path to a YAML grid or a name under experiments/",
                path.display()
            ))
        })?;
        Self::parse(&text, GridSource::File(path.to_path_buf()))
    }

    /// Resolves a grid argument: an existing path, `experiments/NAME.yaml`, or the embedded smoke grid.
    pub fn find(arg: Option<&str>) -> Result<Self> {
        let Some(arg) = arg else {
            return Self::parse(
                EMBEDDED_SMOKE,
                GridSource::Embedded("experiments/smoke.yaml"),
            );
        };
        let path = Path::new(arg);
        if path.is_file() {
            return Self::load(path);
        }
        let named = Path::new("experiments").join(format!("{arg}.yaml"));
        if named.is_file() {
            return Self::load(&named);
        }
        if arg == "smoke" {
            return Self::parse(
                EMBEDDED_SMOKE,
                GridSource::Embedded("experiments/smoke.yaml"),
            );
        }
        Err(Error::BadInput(format!(
            "no grid `{arg}`: neither the file {arg} nor {} exists; pass a path to a YAML grid, or a name under experiments/",
            named.display()
        )))
    }

    /// Parses a grid text; errors carry `source:line:column`.
    pub fn parse(text: &str, source: GridSource) -> Result<Self> {
        let at = |line: usize, col: usize, msg: String| {
            Error::Config(format!("{source}:{line}:{col}: {msg}"))
        };
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| match e.location() {
                Some(l) => at(l.line(), l.column(), format!("YAML syntax error: {e}")),
                None => Error::Config(format!("{source}: YAML syntax error: {e}")),
            })?;
        let root: Value = serde_json::to_value(&yaml)
            .map_err(|e| Error::Config(format!("{source}: unsupported YAML: {e}")))?;
        let Value::Object(top) = root else {
            return Err(Error::Config(format!(
                "{source}: a grid file must be a mapping with at least `name:`; found {}",
                kind(&root)
            )));
        };
        let locate_top = |key: &str| locate_path(text, &[key]).unwrap_or((1, 1));
        for key in top.keys() {
            if !GRID_KEYS.contains(&key.as_str()) {
                let (l, c) = locate_top(key);
                let hint = closest(key, GRID_KEYS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("valid keys: {}", GRID_KEYS.join(", ")));
                return Err(at(l, c, format!("unknown grid key `{key}`; {hint}")));
            }
        }
        let name = match top.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                let (l, c) = locate_top("name");
                return Err(at(
                    l,
                    c,
                    format!("`name` must be a string, found {}", kind(other)),
                ));
            }
            None => {
                return Err(Error::Config(format!(
                    "{source}: the grid has no `name:`; add one, e.g. `name: my-grid`"
                )))
            }
        };
        if let Err(msg) = crate::store::check_name("grid name", &name) {
            let (l, c) = locate_top("name");
            return Err(at(l, c, msg));
        }
        let description = match top.get("description") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let base = match top.get("base") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => {
                let (l, c) = locate_top("base");
                return Err(at(
                    l,
                    c,
                    format!(
                        "`base` must be a mapping of run-config keys, found {}",
                        kind(other)
                    ),
                ));
            }
        };

        let mut axes = Vec::new();
        match top.get("grid") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, values) in map {
                    let (l, c) = locate_key_text(text, key, locate_top("grid").0)
                        .unwrap_or(locate_top("grid"));
                    let Value::Array(list) = values else {
                        return Err(at(
                            l,
                            c,
                            format!(
                                "grid axis `{key}` must be a list of values, e.g. `{key}: [a, b]`"
                            ),
                        ));
                    };
                    if list.is_empty() {
                        return Err(at(
                            l,
                            c,
                            format!(
                                "grid axis `{key}` is an empty list: it would produce no cells"
                            ),
                        ));
                    }
                    axes.push(Axis {
                        keys: vec![key.clone()],
                        rows: list.iter().map(|v| vec![v.clone()]).collect(),
                    });
                }
            }
            Some(other) => {
                let (l, c) = locate_top("grid");
                return Err(at(
                    l,
                    c,
                    format!(
                        "`grid` must be a mapping of axis → list, found {}",
                        kind(other)
                    ),
                ));
            }
        }
        match top.get("zip") {
            None | Some(Value::Null) => {}
            Some(Value::Array(groups)) => {
                for group in groups {
                    let (l, c) = locate_top("zip");
                    let Value::Object(map) = group else {
                        return Err(at(
                            l,
                            c,
                            "each `zip` entry must be a mapping of axis → list".into(),
                        ));
                    };
                    let mut keys = Vec::new();
                    let mut cols = Vec::new();
                    for (key, values) in map {
                        let Value::Array(list) = values else {
                            return Err(at(l, c, format!("zip axis `{key}` must be a list")));
                        };
                        keys.push(key.clone());
                        cols.push(list.clone());
                    }
                    let len = cols.first().map(|c| c.len()).unwrap_or(0);
                    if len == 0 || cols.iter().any(|c| c.len() != len) {
                        let lens: Vec<String> = keys
                            .iter()
                            .zip(&cols)
                            .map(|(k, c)| format!("{k}: {}", c.len()))
                            .collect();
                        return Err(at(
                            l,
                            c,
                            format!(
                                "zip axes must be non-empty lists of equal length; found {}",
                                lens.join(", ")
                            ),
                        ));
                    }
                    let rows = (0..len)
                        .map(|i| cols.iter().map(|c| c[i].clone()).collect())
                        .collect();
                    axes.push(Axis { keys, rows });
                }
            }
            Some(other) => {
                let (l, c) = locate_top("zip");
                return Err(at(
                    l,
                    c,
                    format!("`zip` must be a list of mappings, found {}", kind(other)),
                ));
            }
        }
        let assignments = |key: &str| -> Result<Vec<Vec<(String, Value)>>> {
            match top.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::Object(map) => {
                            Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        }
                        other => {
                            let (l, c) = locate_top(key);
                            Err(at(
                                l,
                                c,
                                format!(
                                    "each `{key}` entry must be a mapping of key → value, found {}",
                                    kind(other)
                                ),
                            ))
                        }
                    })
                    .collect(),
                Some(other) => {
                    let (l, c) = locate_top(key);
                    Err(at(
                        l,
                        c,
                        format!("`{key}` must be a list of mappings, found {}", kind(other)),
                    ))
                }
            }
        };
        let include = assignments("include")?;
        let exclude = assignments("exclude")?;
        let baseline: Vec<(String, Value)> = match top.get("baseline") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(other) => {
                let (l, c) = locate_top("baseline");
                return Err(at(l, c, format!("`baseline` must be a mapping of key → value naming the reference cell, found {}", kind(other))));
            }
        };
        let report: ReportSpec = match top.get("report") {
            None | Some(Value::Null) => ReportSpec::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                let (l, c) = locate_top("report");
                at(
                    l,
                    c,
                    format!(
                        "`report`: {e}; it takes `rows` and `columns` (lists of result columns) and `epoch` (final | best | best:<nmi|acc|ari>)"
                    ),
                )
            })?,
        };
        if let Some(e) = &report.epoch {
            let ok = e == "final"
                || e == "best"
                || ["best:nmi", "best:acc", "best:ari"].contains(&e.as_str());
            if !ok {
                let (l, c) = locate_key_text(text, "epoch", locate_top("report").0)
                    .unwrap_or(locate_top("report"));
                return Err(at(
                    l,
                    c,
                    format!("`report.epoch` is {e:?}; use final, best or best:<nmi|acc|ari>"),
                ));
            }
        }
        let schema = layers::schema();
        for (section, list) in [
            ("include", &include),
            ("exclude", &exclude),
            ("baseline", &vec![baseline.clone()]),
        ] {
            for a in list.iter() {
                for (k, _) in a {
                    if let Err(msg) = layers::check_key(&schema, k) {
                        let (l, c) = locate_key_text(text, k, locate_top(section).0)
                            .unwrap_or(locate_top(section));
                        return Err(at(l, c, msg));
                    }
                }
            }
        }
        let protocol = match top.get("protocol") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_str().and_then(Fidelity::parse) {
                Some(f) => Some(f),
                None => {
                    let (l, c) = locate_top("protocol");
                    return Err(at(
                        l,
                        c,
                        format!(
                            "invalid value for `protocol`: {v}; expected paper (the paper's protocol exactly) or fast (the same at the dataset's native size)"
                        ),
                    ));
                }
            },
        };
        let slurm = launcher::parse_slurm(text, &source.to_string(), top.get("slurm"))?;
        let k8s = launcher::parse_k8s(text, &source.to_string(), top.get("k8s"))?;
        let from = match top.get("from") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let (l, c) = locate_top("from");
                let spec: super::stages::FromSpec =
                    serde_json::from_value(v.clone()).map_err(|e| {
                        at(
                            l,
                            c,
                            format!(
                                "`from`: {e}; it takes `grid` (the source grid's name or path), \
                                 `match` (keys the source run shares, default [seed]) and `where` \
                                 (fixed values of the source run)"
                            ),
                        )
                    })?;
                spec.check_keys()
                    .map_err(|msg| at(l, c, format!("`from`: {msg}")))?;
                Some(spec)
            }
        };
        Ok(Self {
            name,
            description,
            source,
            text: text.to_string(),
            base,
            axes,
            cli_axes: Vec::new(),
            include,
            exclude,
            baseline,
            report,
            protocol,
            slurm,
            k8s,
            from,
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layers::Overrides;

    fn grid(text: &str) -> Grid {
        Grid::parse(text, GridSource::Embedded("test")).unwrap()
    }

    fn labels(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(|c| c.label()).collect()
    }

    #[test]
    fn cartesian_first_axis_outermost() {
        let g = grid("name: t\ngrid:\n  method.name: [cc, kmeans]\n  seed: [0, 1]\n");
        let cells = g.expand(&Overrides::default()).unwrap();
        assert_eq!(
            labels(&cells),
            [
                "method.name=cc seed=0",
                "method.name=cc seed=1",
                "method.name=kmeans seed=0",
                "method.name=kmeans seed=1"
            ]
        );
        assert_eq!(cells[3].config.method.name, "kmeans");
        assert_eq!(cells[3].config.seed, 1);
    }

    #[test]
    fn zip_include_exclude() {
        let g = grid(
            "name: t\ngrid: {seed: [0, 1]}\nzip:\n  - {optimizer.lr: [0.1, 0.2], train.batch_size: [16, 32]}\ninclude:\n  - {seed: 7, method.name: kmeans}\nexclude:\n  - {seed: 1, optimizer.lr: 0.2}\n",
        );
        let cells = g.expand(&Overrides::default()).unwrap();
        let got: Vec<(u64, f64, usize)> = cells
            .iter()
            .map(|c| {
                (
                    c.config.seed,
                    c.config.optimizer.lr,
                    c.config.train.batch_size,
                )
            })
            .collect();
        assert_eq!(
            got,
            [(0, 0.1, 16), (0, 0.2, 32), (1, 0.1, 16), (7, 3e-4, 128)]
        );
        assert_eq!(cells[3].config.method.name, "kmeans");
        assert_eq!(
            cells.iter().map(|c| c.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn exclude_matches_base_values_too() {
        let g = grid("name: t\nbase: {train: {epochs: 3}}\ngrid: {seed: [0, 1]}\nexclude:\n  - {train.epochs: 3, seed: 0}\n");
        let cells = g.expand(&Overrides::default()).unwrap();
        assert_eq!(labels(&cells), ["seed=1"]);
    }

    #[test]
    fn unknown_axis_key_is_located() {
        let g = grid("name: t\ngrid:\n  seed: [0]\n  optimizer.lrr: [1]\n");
        let e = g.expand(&Overrides::default()).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "<embedded test>:4:3: unknown key `optimizer.lrr`; did you mean `optimizer.lr`?"
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_base_key_is_located() {
        let g = grid("name: t\nbase:\n  train:\n    epoch: 3\n");
        let e = g.expand(&Overrides::default()).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "<embedded test>:4:5: unknown key `train.epoch`; did you mean `train.epochs`?"
            ),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = Grid::parse("name: t\ngrid: [1, 2\n", GridSource::Embedded("x"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("<embedded x>:"), "{e}");
        assert!(e.contains("YAML syntax error"), "{e}");
    }

    #[test]
    fn zip_lengths_must_agree() {
        let e = Grid::parse(
            "name: t\nzip:\n  - {seed: [0, 1], train.epochs: [1]}\n",
            GridSource::Embedded("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("equal length"), "{e}");
    }

    #[test]
    fn out_of_range_value_is_located() {
        let g = grid("name: t\ngrid:\n  optimizer.lr: [0.1, -1]\n");
        let e = g.expand(&Overrides::default()).unwrap_err().to_string();
        assert!(
            e.starts_with("<embedded test>:3:3: invalid value for `optimizer.lr`: -1"),
            "{e}"
        );
    }

    #[test]
    fn report_section_is_typed_and_located() {
        let g =
            grid("name: g\nreport:\n  rows: [seed]\n  columns: [method.name]\n  epoch: best:acc\n");
        assert_eq!(
            g.report,
            ReportSpec {
                rows: Some(vec!["seed".into()]),
                columns: Some(vec!["method.name".into()]),
                epoch: Some("best:acc".into()),
            }
        );
        let e = Grid::parse(
            "name: g\nreport:\n  rows: [seed]\n  epoch: last\n",
            GridSource::Embedded("test"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("<embedded test>:4:3: `report.epoch` is \"last\""),
            "{e}"
        );
        let e = Grid::parse(
            "name: g\nreport:\n  row: [seed]\n",
            GridSource::Embedded("test"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("<embedded test>:2:1: `report`: unknown field `row`"),
            "{e}"
        );
    }
}
