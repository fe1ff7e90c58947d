//! `clusterlab reproduce RUN`: re-run a recorded run on the CPU and compare bit for bit
//! (`launch::reproduce`). Exit 0 when identical, 1 otherwise.

use std::io::Write;

use clusterlab::launch::reproduce::reproduce;
use clusterlab::store::Store;
use clusterlab::Result;

use crate::cli::ReproduceArgs;

pub fn run(store: &Store, a: ReproduceArgs, out: &mut dyn Write) -> Result<i32> {
    let same = reproduce(store, &a.run, a.scratch, out)?;
    Ok(if same { 0 } else { 1 })
}
