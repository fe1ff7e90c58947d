//! The summary table and its Markdown rendering.

use polars::prelude::*;

use super::METRICS;
use crate::error::Result;

/// Per-row values of one float column.
type Column = Vec<Option<f64>>;

/// mean ± std over n seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (ddof = 1); `None` for a single run.
    pub std: Option<f64>,
    pub n: usize,
}

impl Stat {
    pub fn render(&self) -> String {
        match self.std {
            Some(s) => format!("{:.3} ± {:.3} ({})", self.mean, s, self.n),
            None => format!("{:.3} ({})", self.mean, self.n),
        }
    }
}

/// A summary: row labels × (dataset, metric) columns.
#[derive(Debug, Clone)]
pub struct Table {
    pub grid: String,
    pub row_keys: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Column groups (dataset labels), each with the three metrics.
    pub groups: Vec<String>,
    /// `cells[row][group * METRICS.len() + metric]`.
    pub cells: Vec<Vec<Option<Stat>>>,
    /// Run ids behind each (row, group).
    pub run_ids: Vec<Vec<Vec<String>>>,
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
            cells: Vec::new(),
            run_ids: Vec::new(),
        };
        let metric_vals: Vec<(Column, Column)> = METRICS
            .iter()
            .map(|(m, _)| {
                Ok((
                    floats(df, &format!("{m}_mean"))?,
                    floats(df, &format!("{m}_std"))?,
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
            let width = t.groups.len() * METRICS.len();
            for c in t.cells.iter_mut() {
                c.resize(width, None);
            }
            for r_ids in t.run_ids.iter_mut() {
                r_ids.resize(t.groups.len(), Vec::new());
            }
            for (m, (means, stds)) in metric_vals.iter().enumerate() {
                if let Some(mean) = means[i] {
                    t.cells[r][g * METRICS.len() + m] = Some(Stat {
                        mean,
                        std: stds[i].filter(|s| s.is_finite()),
                        n: n[i].unwrap_or(0.0) as usize,
                    });
                }
            }
            if let Some(s) = ids.get_as_series(i) {
                t.run_ids[r][g] = s.str()?.iter().flatten().map(String::from).collect();
            }
        }
        Ok(t)
    }

    /// Index of the best (highest mean) row per column.
    fn best_per_column(&self) -> Vec<Option<usize>> {
        let width = self.groups.len() * METRICS.len();
        (0..width)
            .map(|c| {
                self.cells
                    .iter()
                    .enumerate()
                    .filter_map(|(r, row)| row.get(c).copied().flatten().map(|s| (r, s.mean)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(r, _)| r)
            })
            .collect()
    }

    /// The Markdown table with a caption line; best mean per column in bold.
    pub fn markdown(&self) -> String {
        let best = self.best_per_column();
        let mut out = String::new();
        out.push_str(&format!("## {}\n\n", self.grid));
        let mut header = self.row_keys.clone();
        for g in &self.groups {
            for (_, m) in METRICS {
                header.push(format!("{g} {m}"));
            }
        }
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!(
            "|{}\n",
            header
                .iter()
                .enumerate()
                .map(|(i, _)| if i < self.row_keys.len() {
                    "---|"
                } else {
                    "---:|"
                })
                .collect::<String>()
        ));
        for (r, row) in self.rows.iter().enumerate() {
            let mut cells = row.clone();
            for (c, cell) in self.cells[r].iter().enumerate() {
                cells.push(match cell {
                    Some(s) if best[c] == Some(r) => format!("**{}**", s.render()),
                    Some(s) => s.render(),
                    None => "–".into(),
                });
            }
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push_str("\nFinal-epoch scores, mean ± sample std over seeds (number of runs); best mean per column in bold.\n");
        out
    }
}
