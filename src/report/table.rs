//! The summary table and its Markdown rendering.

use polars::prelude::*;

use super::stats::welch;

/// Majority-vote ACC, shown beside the three scores when a table holds an over-clustering run.
pub const ACC_MAJORITY: (&str, &str) = ("acc_majority", "ACC-maj");

use super::published::RunProtocol;

/// Each group's protocol from the aggregated `proto_*` columns of a summary frame.
fn protocols_of(df: &DataFrame) -> Vec<Option<RunProtocol>> {
    let text = |c: &str| -> Vec<Option<String>> {
        df.column(c)
            .ok()
            .and_then(|c| c.cast(&DataType::String).ok())
            .map(|c| {
                c.str()
                    .map(|s| s.iter().map(|v| v.map(String::from)).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| vec![None; df.height()])
    };
    let (splits, split, size, epoch, backbone) = (
        text("proto_splits"),
        text("proto_eval_split"),
        text("proto_image_size"),
        text("proto_epoch"),
        text("proto_backbone"),
    );
    (0..df.height())
        .map(|i| {
            let image_size = size.get(i)?.as_ref()?.parse().ok()?;
            Some(RunProtocol {
                splits: splits
                    .get(i)
                    .cloned()
                    .flatten()
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default(),
                eval_split: split.get(i).cloned().flatten().unwrap_or("train".into()),
                image_size,
                epoch: epoch.get(i).cloned().flatten().unwrap_or("final".into()),
                backbone: backbone.get(i).cloned().flatten().unwrap_or_default(),
            })
        })
        .collect()
}
use crate::error::Result;

/// Per-row values of one float column.
type Column = Vec<Option<f64>>;

/// mean ± std over n seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (ddof = 1); `None` for a single run.
    pub std: Option<f64>,
    pub n: usize,
    /// The per-run values (one per seed), for significance tests.
    pub values: Vec<f64>,
}

impl Stat {
    pub fn render(&self) -> String {
        match self.std {
            Some(s) => format!("{:.3} ± {:.3} ({})", self.mean, s, self.n),
            None => format!("{:.3} ({})", self.mean, self.n),
        }
    }
}

/// Metrics whose higher mean is not simply better: the cluster-size ones (K changes them by
/// construction: entropy grows as ln K, shares shrink as 1/K) and a method's own loss. The
/// table marks no best or second in their columns.
pub const UNRANKED: &[&str] = &[
    "cluster_entropy",
    "min_cluster_fraction",
    "max_cluster_fraction",
    "loss",
];

/// A summary: row labels × (dataset, metric) columns.
#[derive(Debug, Clone)]
pub struct Table {
    pub grid: String,
    pub row_keys: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Column groups (dataset labels), each with the metrics.
    pub groups: Vec<String>,
    /// The metrics of each group: [`crate::report::METRICS`], and [`ACC_MAJORITY`] when a run over-clusters.
    pub metrics: Vec<(&'static str, &'static str)>,
    /// `cells[row][group * metrics.len() + metric]`.
    pub cells: Vec<Vec<Option<Stat>>>,
    /// Run ids behind each (row, group).
    pub run_ids: Vec<Vec<Vec<String>>>,
    /// Which epoch's scores the cells hold.
    pub epoch: super::EpochSel,
    /// Per (row, group): whether a run's reported epoch was chosen with the labels
    /// (`eval.epoch: best_by_label`, or a report's `best…` selection): such cells carry †.
    pub by_label: Vec<Vec<bool>>,
    /// The `eval.epoch` rules of the runs shown (`final` for runs recorded before it).
    pub rules: Vec<String>,
    /// Per (row, group): the protocol its runs ran under (`None` when the result rows do not
    /// say), which decides whether a published number is shown beside it.
    pub protocols: Vec<Vec<Option<RunProtocol>>>,
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("–").to_string())
        .collect())
}

fn floats(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .collect())
}

impl Table {
    pub fn from_frame(
        grid: &str,
        df: &DataFrame,
        row_keys: &[String],
        col_keys: &[String],
        metrics: &[(&'static str, &'static str)],
    ) -> Result<Self> {
        let row_vals: Vec<Vec<String>> = row_keys
            .iter()
            .map(|k| strings(df, k))
            .collect::<Result<_>>()?;
        let col_vals: Vec<Vec<String>> = col_keys
            .iter()
            .map(|k| strings(df, k))
            .collect::<Result<_>>()?;
        let n: Vec<Option<f64>> = floats(df, "n")?;
        let ids = df.column("run_ids")?.list()?.clone();
        let mut t = Table {
            grid: grid.to_string(),
            row_keys: row_keys.to_vec(),
            rows: Vec::new(),
            groups: Vec::new(),
            metrics: metrics.to_vec(),
            cells: Vec::new(),
            run_ids: Vec::new(),
            epoch: super::EpochSel::Final,
            by_label: Vec::new(),
            rules: Vec::new(),
            protocols: Vec::new(),
        };
        let protocols = protocols_of(df);
        let by_label: Vec<bool> = match df.column("by_label") {
            Ok(c) => c.bool()?.iter().map(|v| v.unwrap_or(false)).collect(),
            Err(_) => vec![false; df.height()],
        };
        let metric_vals: Vec<(Column, Column, Vec<Vec<f64>>)> = metrics
            .iter()
            .map(|(m, _)| {
                let lists = df.column(&format!("{m}_values"))?.list()?.clone();
                let values = (0..df.height())
                    .map(|i| {
                        lists
                            .get_as_series(i)
                            .and_then(|s| s.cast(&DataType::Float64).ok())
                            .map(|s| {
                                s.f64()
                                    .map(|c| c.iter().flatten().collect())
                                    .unwrap_or_default()
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                Ok((
                    floats(df, &format!("{m}_mean"))?,
                    floats(df, &format!("{m}_std"))?,
                    values,
                ))
            })
            .collect::<Result<_>>()?;
        for i in 0..df.height() {
            let row: Vec<String> = row_vals.iter().map(|v| v[i].clone()).collect();
            let group = col_keys
                .iter()
                .zip(&col_vals)
                .enumerate()
                .map(|(j, (k, v))| {
                    if j == 0 {
                        v[i].clone()
                    } else {
                        format!("{k}={}", v[i])
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let r = match t.rows.iter().position(|x| *x == row) {
                Some(r) => r,
                None => {
                    t.rows.push(row);
                    t.cells.push(Vec::new());
                    t.run_ids.push(Vec::new());
                    t.rows.len() - 1
                }
            };
            let g = match t.groups.iter().position(|x| *x == group) {
                Some(g) => g,
                None => {
                    t.groups.push(group);
                    t.groups.len() - 1
                }
            };
            let width = t.groups.len() * metrics.len();
            for c in t.cells.iter_mut() {
                c.resize(width, None);
            }
            for r_ids in t.run_ids.iter_mut() {
                r_ids.resize(t.groups.len(), Vec::new());
            }
            t.by_label.resize(t.rows.len(), Vec::new());
            for b in t.by_label.iter_mut() {
                b.resize(t.groups.len(), false);
            }
            t.by_label[r][g] = by_label[i];
            t.protocols.resize(t.rows.len(), Vec::new());
            for p in t.protocols.iter_mut() {
                p.resize(t.groups.len(), None);
            }
            t.protocols[r][g] = protocols[i].clone();
            for (m, (means, stds, values)) in metric_vals.iter().enumerate() {
                if let Some(mean) = means[i] {
                    t.cells[r][g * metrics.len() + m] = Some(Stat {
                        mean,
                        std: stds[i].filter(|s| s.is_finite()),
                        // The runs behind this mean: a score can be null in some runs
                        // (a silhouette when a run put everything in one cluster).
                        n: if values[i].is_empty() {
                            n[i].unwrap_or(0.0) as usize
                        } else {
                            values[i].len()
                        },
                        values: values[i].clone(),
                    });
                }
            }
            if let Some(s) = ids.get_as_series(i) {
                t.run_ids[r][g] = s.str()?.iter().flatten().map(String::from).collect();
            }
        }
        Ok(t)
    }

    /// Per column: the best row, the runner-up, and whether the best beats the runner-up
    /// significantly (Welch's t-test, p < 0.05).
    pub fn ranking(&self) -> Vec<Ranking> {
        let width = self.groups.len() * self.metrics.len();
        (0..width)
            .map(|c| {
                let mut order: Vec<(usize, &Stat)> = self
                    .cells
                    .iter()
                    .enumerate()
                    .filter_map(|(r, row)| row.get(c).and_then(|x| x.as_ref()).map(|s| (r, s)))
                    .collect();
                // Neither end of these is better: nothing is marked.
                let metric = self.metrics[c % self.metrics.len().max(1)].0;
                if UNRANKED.contains(&metric) {
                    order.clear();
                }
                order.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
                let best = order.first().map(|x| x.0);
                let second = order.get(1).map(|x| x.0);
                let p = match (order.first(), order.get(1)) {
                    (Some(a), Some(b)) => welch(&a.1.values, &b.1.values).map(|w| w.p),
                    _ => None,
                };
                Ranking { best, second, p }
            })
            .collect()
    }

    /// The most runs any cell has: cells with fewer are flagged.
    pub(crate) fn max_n(&self) -> usize {
        self.cells
            .iter()
            .flatten()
            .flatten()
            .map(|s| s.n)
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn header(&self) -> Vec<String> {
        let mut header = self.row_keys.clone();
        for g in &self.groups {
            for (_, m) in &self.metrics {
                header.push(format!("{g} {m}"));
            }
        }
        header
    }

    /// The Markdown alignment row's cells for `columns` columns: the row keys left, the
    /// scores right.
    pub(crate) fn alignment(&self, columns: usize) -> String {
        (0..columns)
            .map(|i| {
                if i < self.row_keys.len() {
                    "---|"
                } else {
                    "---:|"
                }
            })
            .collect()
    }

    /// The Markdown table with a caption; best mean per column in bold, second underlined,
    /// `*` where the best is significantly better than the runner-up, `‡` for fewer runs.
    pub fn markdown(&self) -> String {
        let rank = self.ranking();
        let max_n = self.max_n();
        let mut out = format!("## {}\n\n", self.grid);
        let header = self.header();
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", self.alignment(header.len())));
        let (mut any_sig, mut any_few) = (false, false);
        for (r, row) in self.rows.iter().enumerate() {
            let mut cells = row.clone();
            for (c, cell) in self.cells[r].iter().enumerate() {
                cells.push(match cell {
                    None => "–".into(),
                    Some(s) => {
                        let mut txt = s.render();
                        if self.chosen_by_label(r, c) {
                            txt.push_str(" †");
                        }
                        if s.n < max_n {
                            txt.push_str(" ‡");
                            any_few = true;
                        }
                        if rank[c].best == Some(r) {
                            let sig = rank[c].p.is_some_and(|p| p < 0.05);
                            any_sig |= sig;
                            format!("**{txt}**{}", if sig { " *" } else { "" })
                        } else if rank[c].second == Some(r) {
                            format!("<u>{txt}</u>")
                        } else {
                            txt
                        }
                    }
                });
            }
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        let which = self.epoch_caption();
        out.push_str(&format!("\n{which}, mean ± sample std over seeds (number of runs). Best mean per column in bold, second underlined.\n"));
        if self.metrics.iter().any(|(m, _)| *m == "silhouette") {
            out.push_str("\nNo labels (images without class folders): label-free scores. Silhouette: mean silhouette of the clusters on the L2-normalised features, Euclidean distance (scikit-learn's `silhouette_score(normalize(X), clusters)`; on a seeded subsample of 1000 when there are more images); higher means tighter, better-separated clusters. Size entropy: entropy (nats) of the cluster sizes, ln K when balanced. Smallest/largest cluster: share of the images (0: an empty cluster). Loss: the method's own training loss (`total`), not comparable across methods. Only the silhouette is ranked: the size scores change with K by construction (entropy grows as ln K, shares shrink as 1/K) and losses are not comparable across K.\n");
        }
        if any_sig {
            out.push_str("\n\\* the best is significantly better than the runner-up (Welch's t-test over seeds, p < 0.05); a bold value without \\* is not.\n");
        } else {
            out.push_str("\nNo best value is significantly better than its runner-up (Welch's t-test over seeds, p < 0.05).\n");
        }
        if any_few {
            let why = if self.metrics.iter().any(|(m, _)| *m == "silhouette") {
                "missing or failed seeds, or runs whose silhouette is undefined: one cluster"
            } else {
                "missing or failed seeds"
            };
            out.push_str(&format!(
                "\n‡ fewer runs than the {max_n} of the fullest cell ({why}).\n"
            ));
        }
        if let Some(note) = self.by_label_note() {
            out.push_str(&format!("\n{note}\n"));
        }
        if self.metrics.contains(&ACC_MAJORITY) {
            out.push_str("\nACC-maj: majority-vote accuracy (each cluster counts as its most frequent class; the over-clustering score). ACC stays the Hungarian one-to-one matching, under which clusters beyond the class count are errors.\n");
        }
        for note in self.method_notes() {
            out.push_str(&format!("\n{note}\n"));
        }
        out
    }

    /// Whether cell column `c` of row `r` holds scores at an epoch chosen with the labels.
    pub fn chosen_by_label(&self, r: usize, c: usize) -> bool {
        let g = c / self.metrics.len().max(1);
        matches!(self.epoch, super::EpochSel::Best(_))
            || self
                .by_label
                .get(r)
                .and_then(|b| b.get(g))
                .copied()
                .unwrap_or(false)
    }

    /// Which epoch's scores the cells hold, in words.
    pub(crate) fn epoch_caption(&self) -> String {
        match self.epoch {
            super::EpochSel::Final => "Final-epoch scores".to_string(),
            super::EpochSel::Best(m) => {
                format!("Scores at each run's best-{} epoch", m.to_uppercase())
            }
            super::EpochSel::Reported if self.rules.iter().all(|r| r == "final") => {
                "Final-epoch scores".to_string()
            }
            super::EpochSel::Reported => format!(
                "Scores at the epoch each run reports by its `eval.epoch` ({})",
                self.rules.join(", ")
            ),
        }
    }

    /// The footnote of the † cells, when there are any.
    pub(crate) fn by_label_note(&self) -> Option<String> {
        let any = (0..self.rows.len())
            .any(|r| (0..self.cells[r].len()).any(|c| self.chosen_by_label(r, c)));
        any.then(|| {
            "† epoch chosen with the labels (`eval.epoch: best_by_label`, or the report's `--epoch best…`), as GCC reports: not a label-free protocol, and optimistic against final-epoch or `lowest_loss` numbers.".to_string()
        })
    }

    /// The provenance notes of the methods in the table's `method.name` column (e.g. "our
    /// re-implementation, not the authors' code").
    pub fn method_notes(&self) -> Vec<String> {
        let Some(col) = self.row_keys.iter().position(|k| k == "method.name") else {
            return Vec::new();
        };
        crate::methods::REGISTRY
            .iter()
            .filter(|s| {
                self.rows
                    .iter()
                    .any(|r| r.get(col).is_some_and(|v| v == s.name))
            })
            .filter_map(|s| s.provenance.map(|p| format!("`{}`: {p}.", s.name)))
            .collect()
    }
}

/// Best and runner-up of one column, and the Welch p-value between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranking {
    pub best: Option<usize>,
    pub second: Option<usize>,
    pub p: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(values: &[f64]) -> Option<Stat> {
        let (mean, std) = super::super::stats::mean_std(values);
        Some(Stat {
            mean,
            std,
            n: values.len(),
            values: values.to_vec(),
        })
    }

    /// Two methods on one dataset: CC clearly ahead on NMI (significant), tied on ACC (not),
    /// and k-means with a missing seed on ARI.
    fn table() -> Table {
        Table {
            grid: "demo".into(),
            row_keys: vec!["method.name".into()],
            rows: vec![vec!["cc".into()], vec!["kmeans".into()]],
            groups: vec!["synthetic".into()],
            metrics: crate::report::METRICS.to_vec(),
            cells: vec![
                vec![
                    stat(&[0.90, 0.91, 0.92]),
                    stat(&[0.50, 0.60, 0.70]),
                    stat(&[0.80, 0.81, 0.82]),
                ],
                vec![
                    stat(&[0.10, 0.11, 0.12]),
                    stat(&[0.49, 0.61, 0.69]),
                    stat(&[0.01, 0.02]),
                ],
            ],
            run_ids: vec![
                vec![vec!["a".into(), "b".into(), "c".into()]],
                vec![vec!["d".into(), "e".into(), "f".into()]],
            ],
            epoch: crate::report::EpochSel::Final,
            by_label: vec![vec![false], vec![false]],
            rules: vec!["final".into()],
            protocols: vec![vec![None], vec![None]],
        }
    }

    #[test]
    fn reimplemented_methods_carry_their_provenance_note() {
        let mut t = table();
        assert!(t.method_notes().is_empty());
        t.rows[1] = vec!["cdc".into()];
        let md = t.markdown();
        assert!(md.contains("`cdc`: CDC has no public code"), "{md}");
        assert!(md.contains("not the authors' code"));
    }

    /// A score null in some runs (a silhouette when a run put every image in one cluster)
    /// counts only the runs behind its mean, and the cell says so with ‡.
    #[test]
    fn a_score_undefined_in_some_runs_counts_only_the_runs_it_has() {
        let list = |name: &str, v: Vec<Series>| Series::new(name.into(), v).into_column();
        let f = |v: &[f64]| Series::new("".into(), v);
        let ids = |v: &[&str]| Series::new("".into(), v);
        let df = DataFrame::new(
            2,
            vec![
                polars::prelude::Column::new("method.name".into(), ["cc", "kmeans"]),
                polars::prelude::Column::new("n".into(), [2.0f64, 2.0]),
                list("run_ids", vec![ids(&["a", "b"]), ids(&["c", "d"])]),
                polars::prelude::Column::new("silhouette_mean".into(), [0.478f64, 0.928]),
                polars::prelude::Column::new("silhouette_std".into(), [None, Some(0.0f64)]),
                list("silhouette_values", vec![f(&[0.478]), f(&[0.928, 0.928])]),
            ],
        )
        .unwrap();
        let t = Table::from_frame(
            "mine",
            &df,
            &["method.name".to_string()],
            &[],
            &[("silhouette", "silhouette")],
        )
        .unwrap();
        assert_eq!(t.cells[0][0].as_ref().unwrap().n, 1);
        assert_eq!(t.cells[1][0].as_ref().unwrap().n, 2);
        let md = t.markdown();
        assert!(md.contains("0.478 (1) ‡"), "{md}");
        assert!(md.contains("silhouette is undefined"), "{md}");
    }

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(table().markdown());
    }

    #[test]
    fn latex_and_csv_snapshots() {
        insta::assert_snapshot!(table().latex());
        insta::assert_snapshot!(table().csv());
    }

    #[test]
    fn ablation_deltas_and_published_numbers() {
        let mut t = table();
        let a = t
            .ablation_markdown(&[("method.name".into(), serde_json::json!("cc"))])
            .unwrap();
        assert!(
            a.contains("| kmeans | -0.800 * | -0.003 | -0.795 * |"),
            "{a}"
        );
        t.groups = vec!["cifar10".into()];
        let cc_protocol = crate::report::published::RunProtocol {
            splits: vec!["train".into(), "test".into()],
            eval_split: "train".into(),
            image_size: 224,
            epoch: "final".into(),
            backbone: "resnet34".into(),
        };
        t.protocols = vec![
            vec![Some(cc_protocol.clone())],
            vec![Some(cc_protocol.clone())],
        ];
        let p = t.published_markdown().unwrap();
        // CC paper Table 2: CIFAR-10 NMI .705 → our 0.910 is +0.205.
        assert!(
            p.contains("| cc | cifar10 | NMI | 0.705 | 0.910 ± 0.010 (3) | +0.205 | CC paper"),
            "{p}"
        );
        // k-means' published number has no stated size or epoch: listed, not compared.
        assert!(!p.contains("| kmeans | cifar10 | NMI"), "{p}");
        assert!(
            p.contains("| kmeans | cifar10 | CC paper (Li et al., AAAI 2021) Table 2 | image size: unknown in the source (ours 224 px)"),
            "{p}"
        );
        // A 32 px run of CC is not compared with CC's 224 px number, and says why.
        t.protocols[0][0] = Some(crate::report::published::RunProtocol {
            image_size: 32,
            ..cc_protocol
        });
        let p = t.published_markdown().unwrap();
        assert!(p.contains("No row of this table ran the protocol"), "{p}");
        assert!(
            p.contains("| cc | cifar10 | CC paper (Li et al., AAAI 2021) Table 2 | image size: published 224 px, ours 32 px |"),
            "{p}"
        );
    }

    #[test]
    fn epochs_chosen_by_label_are_marked_in_every_format() {
        let mut t = table();
        t.epoch = crate::report::EpochSel::Reported;
        t.rules = vec!["best_by_label".into(), "final".into()];
        t.by_label[0][0] = true;
        let md = t.markdown();
        assert!(md.contains("0.910 ± 0.010 (3) †"), "{md}");
        assert!(!md.contains("0.110 ± 0.010 (3) †"), "{md}");
        assert!(md.contains("† epoch chosen with the labels"), "{md}");
        assert!(md.contains("`eval.epoch` (best_by_label, final)"), "{md}");
        assert!(t.latex().contains("0.910 $\\pm$ 0.010$^\\dagger$"));
        assert!(t
            .csv()
            .contains("cc,synthetic,nmi,0.91,0.010000000000000009,3,a b c,true"));
        assert!(t
            .csv()
            .contains("kmeans,synthetic,nmi,0.11,0.009999999999999995,3,d e f,false"));
        // A report-level best-epoch selection marks every cell.
        t.epoch = crate::report::EpochSel::Best("nmi");
        assert!(t.markdown().contains("0.110 ± 0.010 (3) †"));
        // Final-epoch tables carry no mark and no footnote.
        assert!(!table().markdown().contains('†'));
    }

    #[test]
    fn significance_follows_welch() {
        let r = table().ranking();
        assert_eq!((r[0].best, r[0].second), (Some(0), Some(1)));
        assert!(r[0].p.unwrap() < 0.05);
        assert!(r[1].p.unwrap() > 0.05);
    }
}
