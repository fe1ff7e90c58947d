//! `clusterlab runs` (a grid's completed runs, filtered by `--where`) and `clusterlab sql`
//! (polars SQL over tables `runs` and `epochs`), both printed as polars tables.

use std::io::Write;

use clusterlab::report::query;
use clusterlab::store::Store;
use clusterlab::Result;

use super::{grid_name, say};
use crate::cli::{RunsArgs, SqlArgs};

pub fn runs(store: &Store, a: RunsArgs, out: &mut dyn Write) -> Result<i32> {
    let name = grid_name(store, &a.grid)?;
    let df = query::runs(store, &name, &a.conditions)?;
    say(out, format!("{df}"))?;
    Ok(0)
}

pub fn sql(store: &Store, a: SqlArgs, out: &mut dyn Write) -> Result<i32> {
    let df = query::sql(store, &a.query)?;
    say(out, format!("{df}"))?;
    Ok(0)
}
