//! `clusterlab golden PATHS`: evaluate golden cross-check cases against our implementation
//! (`tools::golden`); one line per case, exit 1 when any fails.

use std::io::Write;

use clusterlab::tools::golden;
use clusterlab::Result;

use super::say;
use crate::cli::GoldenArgs;

pub fn run(a: GoldenArgs, out: &mut dyn Write) -> Result<i32> {
    let files = golden::case_files(&a.paths)?;
    let mut failed = 0;
    for f in &files {
        let v = golden::check_file(f)?;
        say(
            out,
            format!(
                "{} {:<45} computed {} expected {} (|err| {:.2e})",
                if v.pass { "pass" } else { "FAIL" },
                v.name,
                v.computed,
                v.expected,
                v.max_abs_err
            ),
        )?;
        failed += usize::from(!v.pass);
    }
    say(
        out,
        format!(
            "{} cases, {} passed, {} failed",
            files.len(),
            files.len() - failed,
            failed
        ),
    )?;
    Ok(if failed == 0 { 0 } else { 1 })
}
