//! Reports: a read-only lazy scan of a grid's runs into paper-style tables.

pub mod table;

use polars::prelude::*;
use std::path::Path;

use crate::error::{Error, Result};
use crate::launch::cell::RESULT_COLUMNS;
use crate::store::Store;
pub use table::{Stat, Table};

/// Metrics shown in tables, as (column suffix, header).
pub const METRICS: &[(&str, &str)] = &[("nmi", "NMI"), ("acc", "ACC"), ("ari", "ARI")];

/// A lazy frame over every completed result row of a grid (diagonal concat: runs of different
/// methods carry different weight columns).
pub fn scan_results(store: &Store, grid: &str) -> Result<Option<LazyFrame>> {
    let files = store
        .result_files(grid)
        .map_err(|e| Error::io(store.grid_dir(grid), e))?;
    if files.is_empty() {
        return Ok(None);
    }
    let frames = files
        .iter()
        .map(|p| {
            LazyFrame::scan_parquet(
                PlRefPath::new(p.to_string_lossy().as_ref()),
                ScanArgsParquet::default(),
            )
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    let lf = concat_lf_diagonal(
        frames,
        UnionArgs {
            to_supertypes: true,
            ..Default::default()
        },
    )?;
    Ok(Some(lf.filter(col("status").eq(lit("completed")))))
}

/// Which result columns are config keys (everything that is not a metric/provenance column).
fn config_columns(schema: &Schema) -> Vec<String> {
    schema
        .iter_names()
        .map(|n| n.to_string())
        .filter(|n| !RESULT_COLUMNS.contains(&n.as_str()))
        .collect()
}

/// Builds the summary table of a grid: rows = method (+ any other varying config key),
/// columns = dataset × metric, cells = mean ± std (n) over seeds of the final-epoch metric.
pub fn summarise(store: &Store, grid: &str) -> Result<Option<Table>> {
    let Some(mut lf) = scan_results(store, grid)? else {
        return Ok(None);
    };
    let schema = lf.collect_schema()?;
    let cfg_cols = config_columns(&schema);
    // Config keys that vary across the grid's runs (seed excluded: it is what we average over;
    // nulls ignored: a key a method does not have, such as another method's loss weight).
    let distinct = lf
        .clone()
        .select(
            cfg_cols
                .iter()
                .map(|c| {
                    col(c.as_str())
                        .drop_nulls()
                        .cast(DataType::String)
                        .n_unique()
                        .alias(c.as_str())
                })
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let mut varying = Vec::new();
    for c in &cfg_cols {
        let n = distinct
            .column(c)?
            .cast(&DataType::UInt64)?
            .u64()?
            .get(0)
            .unwrap_or(0);
        if n > 1 && c != "seed" {
            varying.push(c.clone());
        }
    }
    let col_keys: Vec<String> = std::iter::once("dataset.name".to_string())
        .chain(
            varying
                .iter()
                .filter(|c| c.starts_with("dataset.") && *c != "dataset.name")
                .cloned(),
        )
        .collect();
    let row_keys: Vec<String> = std::iter::once("method.name".to_string())
        .chain(
            varying
                .iter()
                .filter(|c| !c.starts_with("dataset.") && *c != "method.name")
                .cloned(),
        )
        .collect();
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
    for (m, _) in METRICS {
        let c = format!("final_{m}");
        aggs.push(col(c.as_str()).mean().alias(format!("{m}_mean")));
        aggs.push(col(c.as_str()).std(1).alias(format!("{m}_std")));
    }
    let df = lf
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
            row_keys
                .iter()
                .chain(&col_keys)
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            Default::default(),
        )
        .collect()?;
    Ok(Some(Table::from_frame(grid, &df, &row_keys, &col_keys)?))
}

/// Writes `reports/<grid>/table.md` atomically and returns the Markdown.
pub fn write_report(
    store: &Store,
    reports_root: &Path,
    grid: &str,
) -> Result<Option<(String, std::path::PathBuf)>> {
    let Some(table) = summarise(store, grid)? else {
        return Ok(None);
    };
    let md = table.markdown();
    let dir = reports_root.join(grid);
    crate::store::create_dir(&dir)?;
    let path = dir.join("table.md");
    crate::store::write_atomic(&path, md.as_bytes())?;
    Ok(Some((md, path)))
}
