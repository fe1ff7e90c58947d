//! The paper table of a selection of runs: the report's table (mean ± std over seeds, rows by
//! config, columns by dataset) built from the selected runs' result rows only, one per grid.

use polars::prelude::*;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

use super::paths::{name, Refusal};
use crate::report::{self, ReportOptions};
use crate::store::Store;

/// Parses `grid/run,grid/run,...` into run ids by grid (each name checked).
pub fn parse_runs(list: &str) -> Result<BTreeMap<String, Vec<String>>, Refusal> {
    let mut by_grid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let (g, r) = item
            .split_once('/')
            .ok_or((400, format!("{item:?}: expected GRID/RUN")))?;
        by_grid
            .entry(name("grid name", g)?.to_string())
            .or_default()
            .push(name("run id", r)?.to_string());
    }
    Ok(by_grid)
}

/// Per grid, the table of the selected completed runs (`{grid, row_keys, rows, groups, metrics,
/// cells, runs, markdown}`); grids with no completed run selected are left out.
pub fn tables(store: &Store, runs: &BTreeMap<String, Vec<String>>) -> Result<Json, Refusal> {
    let err = |e: crate::Error| (400, e.to_string());
    let mut out = Vec::new();
    for (grid, ids) in runs {
        let Some(lf) = report::read_results(store, grid).map_err(err)? else {
            continue;
        };
        let ids = Series::new("ids".into(), ids.clone());
        let lf = lf.filter(col("run_id").is_in(lit(ids).implode(false), false));
        let Some((t, _)) =
            report::summarise_frame(store, grid, lf, &ReportOptions::default()).map_err(err)?
        else {
            continue;
        };
        if t.rows.is_empty() {
            continue;
        }
        let cells: Vec<Vec<Json>> =
            t.cells
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|c| {
                            c.as_ref().map_or(Json::Null, |s| {
                            json!({"mean": s.mean, "std": s.std, "n": s.n, "text": s.render()})
                        })
                        })
                        .collect()
                })
                .collect();
        out.push(json!({
            "grid": grid,
            "row_keys": t.row_keys,
            "rows": t.rows,
            "groups": t.groups,
            "metrics": t.metrics.iter().map(|(_, h)| *h).collect::<Vec<_>>(),
            "cells": cells,
            "runs": t.run_ids,
            "markdown": t.markdown(),
        }));
    }
    Ok(Json::Array(out))
}
