//! `clusterlab verify [GRID] [--repair]`: check every run directory of the store (or of one
//! grid) and, with `--repair`, move damaged runs aside (`launch::verify`). Exit 0 when no
//! damage is left, 1 while some is.

use std::io::Write;

use clusterlab::launch::sweep::exit;
use clusterlab::launch::verify;
use clusterlab::store::Store;
use clusterlab::Result;

use super::grid_name;
use crate::cli::VerifyArgs;

pub fn run(store: &Store, a: VerifyArgs, out: &mut dyn Write) -> Result<i32> {
    let grids = a
        .grid
        .map(|g| grid_name(store, &g))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let summary = verify::run(store, &grids, a.repair, out)?;
    Ok(if summary.left == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}
