//! The figures of a report, drawn from the run store: learning curves (mean ± std over seeds),
//! bars with error bars, loss terms per epoch, final cluster sizes, the confusion matrix against
//! the labels and the 2-D embedding.

use polars::prelude::{Float64Chunked, Int64Chunked};
use std::collections::BTreeMap;
use std::path::Path;

use super::epochs::EpochsByRun;
use super::plots::{self, Series};
use super::Table;
use crate::config::RunConfig;
use crate::error::Result;
use crate::eval::confusion::confusion_matched;
use crate::store::tables::read_parquet;
use crate::store::{Store, ASSIGNMENTS_FILE, CONFIG_FILE};

/// A figure written: its caption and file stem (relative to the report folder).
pub struct Figure {
    pub caption: String,
    pub stem: String,
    /// Whether an SVG twin of the PNG exists (contact sheets are PNG only).
    pub svg: bool,
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

/// Every run's epochs table, read once for all figures (see [`super::epochs`]), and the epochs
/// cache rewrite to do, if any.
fn read_epochs(
    store: &Store,
    grid: &str,
    table: &Table,
) -> (EpochsByRun, Option<super::epochs::Pending>) {
    let ids: Vec<String> = table
        .run_ids
        .iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    super::epochs::load(store, grid, &ids)
}

/// Per epoch: the values of `column` across runs, in the order of the runs, then of their rows
/// (the order the mean adds them in); epochs where it is null are skipped.
fn per_epoch(epochs: &EpochsByRun, runs: &[String], column: &str) -> BTreeMap<i64, Vec<f64>> {
    let cols: Vec<(&Int64Chunked, &Float64Chunked)> = runs
        .iter()
        .filter_map(|id| {
            let df = epochs.get(id)?;
            let (e, v) = (df.column("epoch").ok()?, df.column(column).ok()?);
            Some((e.i64().ok()?, v.f64().ok()?))
        })
        .collect();
    // Epochs are few and consecutive in practice: values gather by offset from the first epoch
    // seen rather than by a map lookup each (epochs far from it go to the map).
    const SPAN: i64 = 1 << 16;
    let mut lo: Option<i64> = None;
    let mut dense: Vec<Vec<f64>> = Vec::new();
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut push = |ep: i64, val: f64| {
        let base = *lo.get_or_insert(ep);
        match ep.checked_sub(base) {
            Some(i) if (0..SPAN).contains(&i) => {
                let i = i as usize;
                if i >= dense.len() {
                    dense.resize_with(i + 1, Vec::new);
                }
                dense[i].push(val);
            }
            _ => out.entry(ep).or_default().push(val),
        }
    };
    for (e, v) in cols {
        match (e.cont_slice(), v.cont_slice()) {
            (Ok(e), Ok(v)) => e.iter().zip(v).for_each(|(e, v)| push(*e, *v)),
            _ => {
                for (ep, val) in e.iter().zip(v.iter()) {
                    if let (Some(ep), Some(val)) = (ep, val) {
                        push(ep, val);
                    }
                }
            }
        }
    }
    if let Some(lo) = lo {
        out.extend(
            dense
                .into_iter()
                .enumerate()
                .filter(|(_, v)| !v.is_empty())
                .map(|(i, v)| (lo + i as i64, v)),
        );
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
    let t = std::time::Instant::now();
    let (epochs, pending) = read_epochs(store, &table.grid, table);
    tracing::debug!(
        "report {}: epochs of {} runs read in {:.3} s (cache rewrite: {})",
        table.grid,
        epochs.len(),
        t.elapsed().as_secs_f64(),
        pending.is_some()
    );
    std::thread::scope(|s| {
        // A cache rewrite overlaps the drawing, which runs on this thread.
        if let Some(p) = pending {
            s.spawn(move || p.write());
        }
        let figs = draw_all(store, table, dir, &epochs);
        tracing::debug!(
            "report {}: figures drawn at {:.3} s",
            table.grid,
            t.elapsed().as_secs_f64()
        );
        figs
    })
}

/// The key of an unlabelled K sweep: its values are the numbers of clusters.
const K_KEY: &str = "dataset.num_classes";

/// A label-free table's silhouette against K, when `dataset.num_classes` varies (as a row key
/// or inside the column groups' labels, `… dataset.num_classes=K …`): one line per remaining
/// row and group label, from the table's cells (mean ± std over seeds).
fn silhouette_vs_k(table: &Table, dir: &Path) -> Result<Option<Figure>> {
    let Some(m) = table.metrics.iter().position(|(m, _)| *m == "silhouette") else {
        return Ok(None);
    };
    let in_rows = table.row_keys.iter().position(|k| k == K_KEY);
    let prefix = format!("{K_KEY}=");
    let mut lines: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for (r, row) in table.rows.iter().enumerate() {
        for (g, group) in table.groups.iter().enumerate() {
            let Some(stat) = &table.cells[r][g * table.metrics.len() + m] else {
                continue;
            };
            let mut group_words: Vec<&str> = group.split_whitespace().collect();
            let k = match in_rows {
                Some(i) => row[i].parse::<f64>().ok(),
                None => {
                    let at = group_words.iter().position(|w| w.starts_with(&prefix));
                    at.and_then(|i| group_words.remove(i)[prefix.len()..].parse().ok())
                }
            };
            let Some(k) = k else { continue };
            let mut label: Vec<String> = table
                .row_keys
                .iter()
                .zip(row)
                // The K itself, and the clusters it implies (`method.num_clusters` recorded as
                // the effective K), are the x axis, not a line of their own.
                .filter(|(key, v)| {
                    *key != K_KEY
                        && !(key.as_str() == "method.num_clusters" && v.parse::<f64>() == Ok(k))
                })
                .map(|(key, v)| match key.as_str() {
                    "method.name" => v.clone(),
                    _ => format!("{}={v}", key.rsplit('.').next().unwrap_or(key)),
                })
                .collect();
            if table.groups.len() > 1 {
                label.extend(group_words.iter().map(|w| w.to_string()));
            }
            lines
                .entry(label.join(" "))
                .or_default()
                .push((k, stat.mean, stat.std.unwrap_or(0.0)));
        }
    }
    let series: Vec<Series> = lines
        .into_iter()
        .filter(|(_, p)| p.len() > 1)
        .map(|(label, mut p)| {
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label,
                epochs: p.iter().map(|q| q.0).collect(),
                mean: p.iter().map(|q| q.1).collect(),
                std: p.iter().map(|q| q.2).collect(),
            }
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let stem = "silhouette-vs-k".to_string();
    plots::score_vs_k(&dir.join(&stem), "silhouette", &series)?;
    Ok(Some(Figure {
        caption: "Silhouette against the number of clusters K (mean ± std over seeds): \
                  without labels, a higher silhouette at a K suggests that K"
            .into(),
        stem,
        svg: true,
    }))
}

/// Draws every figure from the runs' epochs (and the first seed's assignments).
fn draw_all(store: &Store, table: &Table, dir: &Path, epochs: &EpochsByRun) -> Result<Vec<Figure>> {
    let grid = &table.grid;
    let mut figs = Vec::new();
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
    if let Some(fig) = silhouette_vs_k(table, dir)? {
        figs.push(fig);
    }
    for (g, group) in table.groups.iter().enumerate() {
        let gs = slug(group);
        for (m, name) in [("nmi", "NMI"), ("acc", "ACC")] {
            let curves: Vec<Series> = (0..table.rows.len())
                .map(|r| series(label(r), &per_epoch(epochs, &table.run_ids[r][g], m)))
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
                svg: true,
            });
        }
        let bar_series: Vec<plots::BarSeries> = (0..table.rows.len())
            .map(|r| {
                let vals = (0..table.metrics.len())
                    .map(|m| {
                        table.cells[r][g * table.metrics.len() + m]
                            .as_ref()
                            .map(|s| (s.mean, s.std.unwrap_or(f64::NAN)))
                    })
                    .collect();
                (label(r), vals)
            })
            .collect();
        let stem = format!("{gs}-bars");
        let names: Vec<String> = table.metrics.iter().map(|(_, n)| n.to_string()).collect();
        plots::bars(
            &dir.join(&stem),
            &format!("{grid}: {group}, final epoch"),
            &names,
            &bar_series,
        )?;
        figs.push(Figure {
            caption: format!("{group}: {}, mean ± std over seeds", names.join(" / ")),
            stem,
            svg: true,
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
                        &per_epoch(epochs, runs, t),
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
                    svg: true,
                });
            }
            // Final assignment of the first seed.
            let file = store.run_dir(grid, first).join(ASSIGNMENTS_FILE);
            let read = read_parquet(&file).and_then(|a| {
                let f64s = |c: &str| -> Result<Vec<f64>> {
                    Ok(a.column(c)?
                        .f64()?
                        .iter()
                        .map(|v| v.unwrap_or(0.0))
                        .collect())
                };
                let clusters: Vec<i64> = a.column("cluster")?.i64()?.iter().flatten().collect();
                if clusters.iter().any(|c| *c < 0) {
                    return Err(crate::Error::Other("negative cluster ids".into()));
                }
                let (pc1, pc2) = (f64s("pc1")?, f64s("pc2")?);
                Ok((clusters, pc1, pc2, a))
            });
            let (clusters, pc1, pc2, a) = match read {
                Ok(r) => r,
                Err(e) if file.exists() => {
                    super::skip_damaged(&file, &e);
                    continue;
                }
                Err(_) => continue,
            };
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
                svg: true,
            });
            // Against the labels, when the dataset has them (a label of -1 marks none).
            let labels: Vec<i64> = a.column("label")?.i64()?.iter().flatten().collect();
            if labels.len() == clusters.len() && labels.iter().all(|&l| l >= 0) {
                let c = confusion_matched(&labels, &clusters);
                let stem = format!("{gs}-{rs}-confusion");
                plots::confusion_matrix(&dir.join(&stem), &c)?;
                figs.push(Figure {
                    caption: format!(
                        "{group}, {}: confusion matrix of the final assignment, clusters in Hungarian-matched order (run {first})",
                        label(r)
                    ),
                    stem,
                    svg: true,
                });
            }
            let points: Vec<(f64, f64)> = pc1.into_iter().zip(pc2).collect();
            let stem = format!("{gs}-{rs}-embedding");
            plots::embedding_scatter(&dir.join(&stem), &points, &clusters)?;
            figs.push(Figure { caption: format!("{group}, {}: PCA of the clustered features, coloured by predicted cluster (run {first})", label(r)), stem, svg: true });
            figs.extend(tsne_and_sheets(
                store,
                grid,
                dir,
                &format!("{gs}-{rs}"),
                group,
                &label(r),
                first,
                &a,
                &clusters,
            )?);
        }
    }
    Ok(figs)
}

/// The t-SNE map (when the run has one) and the contact sheets of a run's final assignment
/// (when its dataset can be read here; otherwise skipped with a warning naming the run).
#[allow(clippy::too_many_arguments)]
fn tsne_and_sheets(
    store: &Store,
    grid: &str,
    dir: &Path,
    prefix: &str,
    group: &str,
    row: &str,
    run: &str,
    a: &polars::prelude::DataFrame,
    clusters: &[i64],
) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let col = |name: &str| -> Option<Vec<Option<f64>>> {
        Some(a.column(name).ok()?.f64().ok()?.iter().collect())
    };
    if let (Some(t1), Some(t2)) = (col("tsne1"), col("tsne2")) {
        let (points, ids): (Vec<(f64, f64)>, Vec<i64>) = t1
            .iter()
            .zip(&t2)
            .zip(clusters)
            .filter_map(|((x, y), c)| Some(((x.as_ref().copied()?, y.as_ref().copied()?), *c)))
            .unzip();
        if !points.is_empty() {
            let stem = format!("{prefix}-tsne");
            plots::embedding_scatter(&dir.join(&stem), &points, &ids)?;
            figs.push(Figure {
                caption: format!("{group}, {row}: t-SNE of the clustered features ({} samples), coloured by predicted cluster (run {run})", points.len()),
                stem,
                svg: true,
            });
        }
    }
    let Some(confidence) = col("confidence") else {
        return Ok(figs);
    };
    let confidence: Vec<f64> = confidence.into_iter().map(|c| c.unwrap_or(0.0)).collect();
    let run_dir = store.run_dir(grid, run);
    let ds =
        RunConfig::read(&run_dir.join(CONFIG_FILE)).and_then(|cfg| crate::data::load_scored(&cfg));
    let ds = match ds {
        Ok(ds) if ds.len() == clusters.len() => ds,
        Ok(ds) => {
            tracing::warn!(
                run,
                images = ds.len(),
                assigned = clusters.len(),
                "contact sheets skipped: the dataset read here has another size than the run's"
            );
            return Ok(figs);
        }
        Err(e) => {
            tracing::warn!(
                run,
                "contact sheets skipped: the run's dataset cannot be read here: {e}"
            );
            return Ok(figs);
        }
    };
    for (id, stem) in super::sheets::contact_sheets(dir, prefix, &ds, clusters, &confidence)? {
        figs.push(Figure {
            caption: format!("{group}, {row}: cluster {id}, its {n} most confident images (top, most confident first) and its {n} least confident (bottom, least confident first) (run {run})", n = super::sheets::PER_ROW),
            stem,
            svg: false,
        });
    }
    Ok(figs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// `per_epoch` equals a map lookup per value: same epochs, values in run then row order,
    /// nulls skipped, epochs far apart or before the first one included.
    #[test]
    fn per_epoch_matches_a_map_per_value() {
        // (run id, epochs, values)
        type Run = (&'static str, Vec<Option<i64>>, Vec<Option<f64>>);
        let runs: Vec<Run> = vec![
            (
                "a",
                vec![Some(3), Some(4), Some(5)],
                vec![Some(0.1), None, Some(0.3)],
            ),
            (
                "b",
                vec![Some(1), Some(3), None],
                vec![Some(1.0), Some(2.0), Some(9.0)],
            ),
            (
                "c",
                vec![Some(1 << 40), Some(-7), Some(4)],
                vec![Some(5.0), Some(6.0), Some(7.0)],
            ),
            (
                "d",
                vec![Some(i64::MIN), Some(i64::MAX)],
                vec![Some(8.0), Some(9.0)],
            ),
        ];
        let mut epochs = EpochsByRun::new();
        let mut want: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (id, e, v) in &runs {
            let df = df!("epoch" => e, "nmi" => v).unwrap();
            epochs.insert(id.to_string(), df);
            for (e, v) in e.iter().zip(v) {
                if let (Some(e), Some(v)) = (e, v) {
                    want.entry(*e).or_default().push(*v);
                }
            }
        }
        // Also a run without the column and one not loaded.
        epochs.insert("e".into(), df!("epoch" => [1i64]).unwrap());
        let ids: Vec<String> = ["a", "b", "c", "d", "e", "missing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(per_epoch(&epochs, &ids, "nmi"), want);
        assert_eq!(want[&3], [0.1, 2.0]);
        // Without nulls (the contiguous path) too.
        let ids = vec!["c".to_string(), "d".to_string()];
        let got = per_epoch(&epochs, &ids, "nmi");
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            [i64::MIN, -7, 4, 1 << 40, i64::MAX]
        );
    }
}
