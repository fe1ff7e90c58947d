//! The figures of a report, drawn from the run store: learning curves (mean ± std over seeds),
//! bars with error bars, loss terms per epoch, final cluster sizes and the 2-D embedding.

use polars::prelude::DataFrame;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::plots::{self, Series};
use super::{Table, METRICS};
use crate::error::Result;
use crate::store::tables::{read_parquet, read_parquet_many};
use crate::store::{Store, ASSIGNMENTS_FILE, EPOCHS_FILE};

/// A figure written: its caption and file stem (relative to the report folder).
pub struct Figure {
    pub caption: String,
    pub stem: String,
}

fn slug(s: &str) -> String {
    let x: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    x.trim_matches('-').to_string()
}

/// Every run's epochs table, read once (in parallel) for all figures; runs whose file is
/// missing or unreadable are left out of the curves.
type EpochsByRun = HashMap<String, DataFrame>;

fn read_epochs(store: &Store, grid: &str, table: &Table) -> EpochsByRun {
    let ids: Vec<String> = table
        .run_ids
        .iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let paths: Vec<_> = ids
        .iter()
        .map(|id| store.run_dir(grid, id).join(EPOCHS_FILE))
        .collect();
    ids.into_iter()
        .zip(read_parquet_many(&paths))
        .filter_map(|(id, df)| Some((id, df.ok()?)))
        .collect()
}

/// Per epoch: the values of `column` across runs (epochs where it is null are skipped).
fn per_epoch(epochs: &EpochsByRun, runs: &[String], column: &str) -> BTreeMap<i64, Vec<f64>> {
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for id in runs {
        let Some(df) = epochs.get(id) else {
            continue;
        };
        let (Ok(e), Ok(v)) = (df.column("epoch"), df.column(column)) else {
            continue;
        };
        let (Ok(e), Ok(v)) = (e.i64(), v.f64()) else {
            continue;
        };
        for (ep, val) in e.iter().zip(v.iter()) {
            if let (Some(ep), Some(val)) = (ep, val) {
                out.entry(ep).or_default().push(val);
            }
        }
    }
    out
}

fn series(label: String, points: &BTreeMap<i64, Vec<f64>>) -> Series {
    let mut s = Series {
        label,
        epochs: Vec::new(),
        mean: Vec::new(),
        std: Vec::new(),
    };
    for (e, v) in points {
        let (m, sd) = super::stats::mean_std(v);
        s.epochs.push(*e as f64);
        s.mean.push(m);
        s.std.push(sd.unwrap_or(0.0));
    }
    s
}

/// Writes every figure of the table's runs into `dir`; returns them in reading order.
pub fn write_all(store: &Store, table: &Table, dir: &Path) -> Result<Vec<Figure>> {
    let grid = &table.grid;
    let mut figs = Vec::new();
    let epochs = read_epochs(store, grid, table);
    // Legend label of a row: the method, then `key=value` for the other row keys (last path
    // segment of the key: `weight.instance` → `instance`), so a reader can tell variants apart.
    let label = |r: usize| {
        table
            .row_keys
            .iter()
            .zip(&table.rows[r])
            .map(|(k, v)| match k.as_str() {
                "method.name" => v.clone(),
                _ => format!("{}={v}", k.rsplit('.').next().unwrap_or(k)),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (g, group) in table.groups.iter().enumerate() {
        let gs = slug(group);
        for (m, name) in [("nmi", "NMI"), ("acc", "ACC")] {
            let curves: Vec<Series> = (0..table.rows.len())
                .map(|r| series(label(r), &per_epoch(&epochs, &table.run_ids[r][g], m)))
                .filter(|s| s.epochs.len() > 1)
                .collect();
            if curves.is_empty() {
                continue;
            }
            let stem = format!("{gs}-{m}-curves");
            plots::learning_curves(&dir.join(&stem), name, &curves)?;
            figs.push(Figure {
                caption: format!("{group}: {name} per epoch (mean ± std over seeds)"),
                stem,
            });
        }
        let bar_series: Vec<plots::BarSeries> = (0..table.rows.len())
            .map(|r| {
                let vals = (0..METRICS.len())
                    .map(|m| {
                        table.cells[r][g * METRICS.len() + m]
                            .as_ref()
                            .map(|s| (s.mean, s.std.unwrap_or(f64::NAN)))
                    })
                    .collect();
                (label(r), vals)
            })
            .collect();
        let stem = format!("{gs}-bars");
        let names: Vec<String> = METRICS.iter().map(|(_, n)| n.to_string()).collect();
        plots::bars(
            &dir.join(&stem),
            &format!("{grid}: {group}, final epoch"),
            &names,
            &bar_series,
        )?;
        figs.push(Figure {
            caption: format!("{group}: final NMI / ACC / ARI, mean ± std over seeds"),
            stem,
        });
        for r in 0..table.rows.len() {
            let runs = &table.run_ids[r][g];
            let Some(first) = runs.first() else { continue };
            let rs = slug(&label(r));
            // Loss terms (trainable methods only: more than one epoch).
            let terms: Vec<String> = epochs
                .get(first)
                .map(|df| {
                    df.get_column_names()
                        .iter()
                        .filter(|c| c.starts_with("loss_"))
                        .map(|c| c.to_string())
                        .collect()
                })
                .unwrap_or_default();
            let lines: Vec<(String, Vec<f64>, Vec<f64>)> = terms
                .iter()
                .map(|t| {
                    let s = series(
                        t.trim_start_matches("loss_").to_string(),
                        &per_epoch(&epochs, runs, t),
                    );
                    (s.label, s.epochs, s.mean)
                })
                .filter(|(_, e, _)| e.len() > 1)
                .collect();
            if !lines.is_empty() {
                let stem = format!("{gs}-{rs}-losses");
                plots::loss_terms(&dir.join(&stem), &lines)?;
                figs.push(Figure {
                    caption: format!(
                        "{group}, {}: weighted loss terms per epoch (mean over {} runs)",
                        label(r),
                        runs.len()
                    ),
                    stem,
                });
            }
            // Final assignment of the first seed.
            let Ok(a) = read_parquet(&store.run_dir(grid, first).join(ASSIGNMENTS_FILE)) else {
                continue;
            };
            let clusters: Vec<i64> = a.column("cluster")?.i64()?.iter().flatten().collect();
            let k = clusters.iter().copied().max().map_or(0, |m| m as usize + 1);
            let mut sizes = vec![0usize; k];
            for c in &clusters {
                sizes[*c as usize] += 1;
            }
            let stem = format!("{gs}-{rs}-cluster-sizes");
            plots::cluster_sizes(&dir.join(&stem), &sizes)?;
            figs.push(Figure {
                caption: format!(
                    "{group}, {}: cluster sizes at the final epoch (run {first})",
                    label(r)
                ),
                stem,
            });
            let pc1: Vec<f64> = a
                .column("pc1")?
                .f64()?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect();
            let pc2: Vec<f64> = a
                .column("pc2")?
                .f64()?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect();
            let points: Vec<(f64, f64)> = pc1.into_iter().zip(pc2).collect();
            let stem = format!("{gs}-{rs}-embedding");
            plots::embedding_scatter(&dir.join(&stem), &points, &clusters)?;
            figs.push(Figure { caption: format!("{group}, {}: PCA of the clustered features, coloured by predicted cluster (run {first})", label(r)), stem });
        }
    }
    Ok(figs)
}
