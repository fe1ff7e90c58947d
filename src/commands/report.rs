//! `clusterlab report GRID`: the grid's table (Markdown, LaTeX, CSV), figures and index under
//! reports/<grid>/, printed and written. Exit 2 when the grid has no completed run.

use std::io::Write;

use clusterlab::config::Grid;
use clusterlab::report::{self, ReportOptions};
use clusterlab::store::Store;
use clusterlab::{Error, Result};

use super::{grid_name, print_report};
use crate::cli::{GlobalArgs, ReportArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: ReportArgs, out: &mut dyn Write) -> Result<i32> {
    report::without_huge_pages();
    let name = grid_name(store, &a.grid)?;
    let spec = Grid::find(Some(&a.grid)).ok();
    let opts = ReportOptions::resolve(spec.as_ref(), a.epoch, a.rows, a.columns)?;
    if !print_report(store, &g.reports_dir, &name, &opts, out)? {
        return Err(Error::BadInput(format!(
            "no completed runs for grid `{name}` under {}; run `clusterlab sweep {name}` first",
            store.grid_dir(&name).display()
        )));
    }
    Ok(0)
}
