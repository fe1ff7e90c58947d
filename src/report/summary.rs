//! The summary table of a grid: result rows grouped by config (not seed), the chosen epoch's
//! metrics as mean ± std over seeds per cell, best/second marks, significance and footnotes.

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::store::Store;

use super::*;

/// Builds the summary table of a grid: rows = method (+ any other varying config key),
/// columns = dataset × metric, cells = mean ± std (n) over seeds of the final-epoch metric.
pub fn summarise(store: &Store, grid: &str, opts: &ReportOptions) -> Result<Option<Table>> {
    Ok(summarise_rows(store, grid, opts)?.map(|(t, _)| t))
}

/// [`summarise`], also returning the result rows the table was built from.
pub(super) fn summarise_rows(
    store: &Store,
    grid: &str,
    opts: &ReportOptions,
) -> Result<Option<(Table, LazyFrame)>> {
    let Some(lf) = scan_results(store, grid)? else {
        return Ok(None);
    };
    summarise_frame(store, grid, lf, opts)
}

/// The summary table of the result rows `lf` (a grid's, or a selection of them), and the rows.
pub fn summarise_frame(
    store: &Store,
    grid: &str,
    lf: LazyFrame,
    opts: &ReportOptions,
) -> Result<Option<(Table, LazyFrame)>> {
    let mut lf = match opts.epoch {
        EpochSel::Best(m) if m != "nmi" => best_by(store, grid, lf, m)?,
        _ => lf,
    };
    let schema = lf.collect_schema()?;
    let has = |c: &str| schema.get(c).is_some();
    // Results recorded before a column existed: `reported_*` is the final epoch (runs had no
    // `eval.epoch`), majority-vote ACC unknown.
    let mut fill = Vec::new();
    for (m, _) in METRICS.iter().chain([&table::ACC_MAJORITY]) {
        for p in ["final", "best", "reported"] {
            let c = format!("{p}_{m}");
            if has(&c) {
                continue;
            }
            let from = format!("final_{m}");
            fill.push(if p == "reported" && has(&from) {
                col(from.as_str()).alias(c.as_str())
            } else {
                lit(NULL).cast(DataType::Float64).alias(c.as_str())
            });
        }
    }
    if has("reported_nmi") {
        for (m, _) in METRICS.iter().chain([&table::ACC_MAJORITY]) {
            let (c, from) = (format!("reported_{m}"), format!("final_{m}"));
            if has(&from) {
                fill.push(
                    col(c.as_str())
                        .fill_null(col(from.as_str()))
                        .alias(c.as_str()),
                );
            }
        }
    }
    if !fill.is_empty() {
        lf = lf.with_columns(fill);
    }
    // Over-clustering (K > classes) in any run adds majority-vote ACC to the table.
    let over = has("num_clusters")
        && has("dataset.num_classes")
        && lf
            .clone()
            .select([col("num_clusters")
                .cast(DataType::Int64)
                .gt(col("dataset.num_classes").cast(DataType::Int64))
                .any(true)
                .alias("over")])
            .collect()?
            .column("over")?
            .bool()?
            .get(0)
            .unwrap_or(false);
    // No run with labels (all NMIs null) but label-free scores recorded: those instead.
    let unlabelled = has("final_silhouette")
        && !lf
            .clone()
            .select([col("final_nmi").is_not_null().any(true).alias("l")])
            .collect()?
            .column("l")?
            .bool()?
            .get(0)
            .unwrap_or(false);
    let mut metrics = if unlabelled {
        if let EpochSel::Best(m) = opts.epoch {
            return Err(Error::BadInput(format!(
                "report --epoch best:{m}: the runs of grid {grid} have no labels to choose an \
                 epoch with; use --epoch reported or final"
            )));
        }
        LABEL_FREE_METRICS.to_vec()
    } else {
        METRICS.to_vec()
    };
    if over && !unlabelled {
        metrics.push(table::ACC_MAJORITY);
    }
    let rules: Vec<String> = if has("eval.epoch") {
        let df = lf
            .clone()
            .select([col("eval.epoch")
                .cast(DataType::String)
                .fill_null(lit("final"))
                .unique()
                .sort(Default::default())])
            .collect()?;
        df.column("eval.epoch")?
            .str()?
            .iter()
            .flatten()
            .map(String::from)
            .collect()
    } else {
        vec!["final".into()]
    };
    let varying = varying_columns(&lf, &schema)?;
    let default_cols: Vec<String> = std::iter::once("dataset.name".to_string())
        .chain(
            varying
                .iter()
                .filter(|c| c.starts_with("dataset.") && *c != "dataset.name")
                .cloned(),
        )
        .collect();
    let default_rows: Vec<String> = std::iter::once("method.name".to_string())
        .chain(
            varying
                .iter()
                .filter(|c| !c.starts_with("dataset.") && *c != "method.name")
                .cloned(),
        )
        .collect();
    let pick = |chosen: &Option<Vec<String>>, default: Vec<String>| -> Result<Vec<String>> {
        let Some(keys) = chosen else {
            return Ok(default);
        };
        for k in keys {
            if schema.get(k.as_str()).is_none() {
                let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
                let hint = crate::config::locate::closest(k, names.iter().copied())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(Error::BadInput(format!(
                    "report key `{k}` is not a result column{hint}"
                )));
            }
        }
        Ok(keys.clone())
    };
    let row_keys = pick(&opts.rows, default_rows)?;
    let col_keys = pick(&opts.columns, default_cols)?;
    if col_keys.is_empty() || row_keys.is_empty() {
        return Err(Error::BadInput(
            "report rows and columns need at least one key each".into(),
        ));
    }
    let keys: Vec<Expr> = row_keys
        .iter()
        .chain(&col_keys)
        .map(|k| {
            col(k.as_str())
                .cast(DataType::String)
                .fill_null(lit("–"))
                .alias(k.as_str())
        })
        .collect();
    let mut aggs = vec![
        len().alias("n"),
        col("run_id").sort(Default::default()).alias("run_ids"),
    ];
    if opts.epoch == EpochSel::Reported && has("eval.epoch") {
        aggs.push(
            col("eval.epoch")
                .cast(DataType::String)
                .eq(lit("best_by_label"))
                .fill_null(lit(false))
                .any(true)
                .alias("by_label"),
        );
    }
    // Each cell's protocol, for the published-vs-reproduced section.
    for (from, to) in [
        ("dataset.splits", "proto_splits"),
        ("eval.split", "proto_eval_split"),
        ("dataset.image_size", "proto_image_size"),
        ("eval.epoch", "proto_epoch"),
        ("model.backbone", "proto_backbone"),
    ] {
        if has(from) {
            aggs.push(col(from).cast(DataType::String).first().alias(to));
        }
    }
    for (m, _) in &metrics {
        let c = format!("{}_{m}", opts.epoch.prefix());
        aggs.push(col(c.as_str()).mean().alias(format!("{m}_mean")));
        aggs.push(col(c.as_str()).std(1).alias(format!("{m}_std")));
        aggs.push(col(c.as_str()).alias(format!("{m}_values")));
    }
    // Numeric keys (K, batch size, ...) sort by value, not as text (5 before 10).
    let sort_key = |k: &String| {
        schema
            .get(k.as_str())
            .is_some_and(|d| d.is_primitive_numeric())
            .then(|| format!("__sort.{k}"))
    };
    let all_keys: Vec<&String> = row_keys.iter().chain(&col_keys).collect();
    let numeric: Vec<(String, String)> = all_keys
        .iter()
        .filter_map(|k| sort_key(k).map(|s| (k.to_string(), s)))
        .collect();
    for (_, s) in &numeric {
        aggs.push(col(s.as_str()).first().alias(s.as_str()));
    }
    let sort_by: Vec<String> = all_keys
        .iter()
        .map(|k| sort_key(k).unwrap_or_else(|| k.to_string()))
        .collect();
    let df = lf
        .clone()
        .with_columns(
            numeric
                .iter()
                .map(|(k, s)| col(k.as_str()).cast(DataType::Float64).alias(s.as_str()))
                .collect::<Vec<_>>(),
        )
        .with_columns(keys)
        .group_by(
            row_keys
                .iter()
                .chain(&col_keys)
                .map(|k| col(k.as_str()))
                .collect::<Vec<_>>(),
        )
        .agg(aggs)
        .sort(
            sort_by.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            Default::default(),
        )
        .collect()?;
    let mut t = Table::from_frame(grid, &df, &row_keys, &col_keys, &metrics)?;
    t.epoch = opts.epoch;
    t.rules = rules;
    Ok(Some((t, lf)))
}
