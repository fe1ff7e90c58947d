//! Which epoch's scores a report shows (`reported`: each run's `eval.epoch`, the default;
//! `final`; `best`, `best:<metric>`: chosen with the labels, marked †), and the options a
//! report is built with (flags over the grid's `report:` section).

use polars::prelude::*;

use super::METRICS;
use crate::config::Grid;
use crate::error::{Error, Result};
use crate::store::tables::read_parquet_many;
use crate::store::Store;

/// Which epoch's scores a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpochSel {
    /// The epoch each run reports by its `eval.epoch` (`final` for runs recorded before the
    /// key existed): cells of `best_by_label` runs carry †.
    #[default]
    Reported,
    /// The last evaluated epoch.
    Final,
    /// Each run's epoch with the best value of the named metric (`nmi`, `acc` or `ari`): all
    /// three scores at that epoch (the earliest one on ties).
    Best(&'static str),
}

impl EpochSel {
    /// Parses `final`, `best` (by NMI) or `best:<metric>`.
    pub fn parse(s: &str) -> Result<Self> {
        let metric = |m: &str| {
            METRICS
                .iter()
                .map(|(k, _)| *k)
                .find(|k| *k == m)
                .ok_or_else(|| {
                    Error::BadInput(format!(
                        "epoch selection `{s}`: unknown metric `{m}`; use one of nmi, acc, ari"
                    ))
                })
        };
        match s {
            "reported" => Ok(EpochSel::Reported),
            "final" => Ok(EpochSel::Final),
            "best" => Ok(EpochSel::Best("nmi")),
            _ => match s.strip_prefix("best:") {
                Some(m) => Ok(EpochSel::Best(metric(m)?)),
                None => Err(Error::BadInput(format!(
                    "epoch selection `{s}`: use `reported` (each run's eval.epoch), `final`, `best` (best NMI) or `best:<nmi|acc|ari>`"
                ))),
            },
        }
    }

    pub(super) fn prefix(self) -> &'static str {
        match self {
            EpochSel::Reported => "reported",
            EpochSel::Final => "final",
            EpochSel::Best(_) => "best",
        }
    }
}

/// Replaces the `best_*` columns (recorded at each run's best-NMI epoch) by the scores at each
/// run's best epoch by `metric`, read from the runs' `epochs.parquet`.
pub(super) fn best_by(store: &Store, grid: &str, lf: LazyFrame, metric: &str) -> Result<LazyFrame> {
    let ids: Vec<String> = lf
        .clone()
        .select([col("run_id")])
        .collect()?
        .column("run_id")?
        .str()?
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    let paths: Vec<_> = ids
        .iter()
        .map(|id| store.run_dir(grid, id).join(crate::store::EPOCHS_FILE))
        .collect();
    let mut rows: Vec<(String, i64, [f64; 4])> = Vec::new();
    for ((id, path), df) in ids.iter().zip(&paths).zip(read_parquet_many(&paths)) {
        let columns = df.and_then(|df| {
            let get = |c: &str| -> Result<Vec<Option<f64>>> { Ok(df.column(c)?.f64()?.to_vec()) };
            // Epoch tables written before majority-vote ACC existed lack its column.
            let acc_majority = get("acc_majority").unwrap_or_else(|_| vec![None; df.height()]);
            Ok((
                get("nmi")?,
                get("acc")?,
                get("ari")?,
                acc_majority,
                df.column("epoch")?.i64()?.to_vec(),
            ))
        });
        let (nmi, acc, ari, acc_majority, epochs) = match columns {
            Ok(c) => c,
            Err(e) => {
                super::skip_damaged(path, &e);
                continue;
            }
        };
        let by = match metric {
            "acc" => &acc,
            "ari" => &ari,
            _ => &nmi,
        };
        let mut best: Option<usize> = None;
        for (i, v) in by.iter().enumerate() {
            if let Some(v) = v {
                if best.is_none_or(|b| *v > by[b].unwrap_or(f64::NEG_INFINITY)) {
                    best = Some(i);
                }
            }
        }
        if let Some(i) = best {
            let f = |v: &[Option<f64>]| v[i].unwrap_or(f64::NAN);
            rows.push((
                id.clone(),
                epochs[i].unwrap_or(0),
                [f(&nmi), f(&acc), f(&ari), f(&acc_majority)],
            ));
        }
    }
    let sel = DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "run_id".into(),
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_epoch".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_nmi".into(),
                rows.iter().map(|r| r.2[0]).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_acc".into(),
                rows.iter().map(|r| r.2[1]).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_ari".into(),
                rows.iter().map(|r| r.2[2]).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_acc_majority".into(),
                rows.iter()
                    .map(|r| Some(r.2[3]).filter(|v| !v.is_nan()))
                    .collect::<Vec<_>>(),
            ),
        ],
    )?;
    let mut lf = lf;
    let schema = lf.collect_schema()?;
    let replaced: Vec<&str> = [
        "best_epoch",
        "best_nmi",
        "best_acc",
        "best_ari",
        "best_acc_majority",
    ]
    .into_iter()
    .filter(|c| schema.get(c).is_some())
    .collect();
    Ok(lf
        .drop(cols(replaced))
        .inner_join(sel.lazy(), col("run_id"), col("run_id")))
}

/// How a report is built.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    pub epoch: EpochSel,
    /// The ablation baseline (a grid's `baseline:`), empty for none.
    pub baseline: Vec<(String, serde_json::Value)>,
    /// Row keys (result columns); default: `method.name` + the other varying config keys.
    pub rows: Option<Vec<String>>,
    /// Column-group keys; default: `dataset.name` + varying `dataset.*` keys.
    pub columns: Option<Vec<String>>,
}

impl ReportOptions {
    /// A report's options: the flags given, else the grid's `report:` section, and the grid's
    /// `baseline:` (none without a grid file).
    pub fn resolve(
        grid: Option<&Grid>,
        epoch: Option<String>,
        rows: Option<Vec<String>>,
        columns: Option<Vec<String>>,
    ) -> Result<Self> {
        let spec = grid.map(|g| g.report.clone()).unwrap_or_default();
        Ok(Self {
            epoch: match epoch.or(spec.epoch) {
                Some(e) => EpochSel::parse(&e)?,
                None => EpochSel::Reported,
            },
            baseline: grid.map(|g| g.baseline.clone()).unwrap_or_default(),
            rows: rows.or(spec.rows),
            columns: columns.or(spec.columns),
        })
    }
}
