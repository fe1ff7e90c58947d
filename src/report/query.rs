//! Queries over the run store: `clusterlab runs` (a filtered listing) and `clusterlab sql`
//! (SQL through polars over the `runs` and `epochs` tables).

use polars::prelude::*;
use polars::sql::SQLContext;

use super::scan_results;
use crate::error::{Error, Result};
use crate::store::tables::{read_parquet_many, stack_frames};
use crate::store::{Store, EPOCHS_FILE};

/// One `--where` condition: `key=value`, `key!=value`, `key>value`, `key>=value`, `key<value`,
/// `key<=value`. Numbers compare as numbers, anything else as text.
pub fn parse_where(cond: &str) -> Result<Expr> {
    for op in [">=", "<=", "!=", "=", ">", "<"] {
        if let Some((k, v)) = cond.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                break;
            }
            let c = col(k);
            let value = match v.parse::<f64>() {
                Ok(x) => lit(x),
                Err(_) => lit(v.to_string()),
            };
            let c = if v.parse::<f64>().is_ok() {
                c.cast(DataType::Float64)
            } else {
                c.cast(DataType::String)
            };
            return Ok(match op {
                ">=" => c.gt_eq(value),
                "<=" => c.lt_eq(value),
                "!=" => c.neq(value),
                "=" => c.eq(value),
                ">" => c.gt(value),
                _ => c.lt(value),
            });
        }
    }
    Err(Error::BadInput(format!(
        "--where {cond:?}: expected KEY OP VALUE with OP one of = != > >= < <=, e.g. --where method.name=cc --where final_nmi>0.5"
    )))
}

/// Completed runs of a grid matching every condition: id, the config keys that vary, final metrics.
pub fn runs(store: &Store, grid: &str, conditions: &[String]) -> Result<DataFrame> {
    let Some(mut lf) = scan_results(store, grid)? else {
        return Err(Error::BadInput(format!(
            "no completed runs for grid `{grid}` under {}",
            store.grid_dir(grid).display()
        )));
    };
    for c in conditions {
        lf = lf.filter(parse_where(c)?);
    }
    let schema = lf.collect_schema()?;
    let varying = super::varying_columns(&lf, &schema)?;
    let mut cols: Vec<Expr> = vec![col("run_id")];
    cols.extend(varying.iter().map(|c| col(c.as_str())));
    for c in [
        "seed",
        "final_nmi",
        "final_acc",
        "final_ari",
        "best_nmi",
        "train_seconds",
    ] {
        if !varying.iter().any(|v| v == c) {
            cols.push(col(c));
        }
    }
    Ok(lf
        .select(cols)
        .sort(["run_id"], Default::default())
        .collect()?)
}

/// Runs a SQL query over `runs` (one row per completed run of every grid) and `epochs` (one
/// row per epoch of those runs).
pub fn sql(store: &Store, query: &str) -> Result<DataFrame> {
    let mut ctx = SQLContext::new();
    let mut runs = Vec::new();
    let mut epochs = Vec::new();
    let rd = std::fs::read_dir(&store.root)
        .map_err(|e| Error::BadInput(format!("no run store at {}: {e}", store.root.display())))?;
    let mut grids: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    grids.sort();
    for g in grids {
        if let Some(lf) = scan_results(store, &g)? {
            runs.push(lf);
        }
        let files: Vec<_> = store
            .result_files(&g)
            .map_err(|e| Error::io(store.grid_dir(&g), e))?
            .into_iter()
            .map(|f| f.with_file_name(EPOCHS_FILE))
            .filter(|e| e.is_file())
            .collect();
        let frames = files
            .iter()
            .zip(read_parquet_many(&files))
            .filter_map(|(f, df)| df.map_err(|e| super::skip_damaged(f, &e)).ok())
            .collect();
        if let Some(df) = stack_frames(frames)? {
            epochs.push(df.lazy());
        }
    }
    if runs.is_empty() {
        return Err(Error::BadInput(format!(
            "no completed runs under {}",
            store.root.display()
        )));
    }
    let diag = UnionArgs {
        to_supertypes: true,
        ..Default::default()
    };
    ctx.register("runs", concat_lf_diagonal(runs, diag)?);
    ctx.register("epochs", concat_lf_diagonal(epochs, diag)?);
    let lf = ctx
        .execute(query)
        .map_err(|e| Error::BadInput(format!("SQL: {e}")))?;
    lf.collect()
        .map_err(|e| Error::BadInput(format!("SQL: {e}")))
}
