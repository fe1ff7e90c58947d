//! `clusterlab diff A B`: config keys and provenance of two recorded runs (`report::diff`).

use std::io::Write;

use clusterlab::report::diff::diff;
use clusterlab::store::Store;
use clusterlab::Result;

use crate::cli::DiffArgs;

pub fn run(store: &Store, a: DiffArgs, out: &mut dyn Write) -> Result<i32> {
    diff(store, &a.run_a, &a.run_b, out)?;
    Ok(0)
}
