//! `clusterlab reproduce`: re-run a recorded run from its stored config in a scratch store,
//! on the CPU, and compare its scores and its epochs table bit for bit with the recorded ones.
//! The original run directory is only read.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{run_id, Cell, RunConfig};
use crate::error::{Error, Result};
use crate::provenance::git_state;
use crate::store::tables::{read_parquet, EpochRow};
use crate::store::{
    find_run, read_provenance, RunState, Store, CONFIG_FILE, EPOCHS_FILE, RESULT_FILE,
};

use super::cell::{run_cell, DatasetCache, SCORE_COLUMNS};

/// Re-runs `run` under `scratch` (default: a fresh temporary folder), writes the comparison to
/// `out`, and returns whether every score and the epochs table are identical.
pub fn reproduce(
    store: &Store,
    run: &str,
    scratch: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<bool> {
    let (grid, dir) = find_run(store, run)?;
    let config = RunConfig::read(&dir.join(CONFIG_FILE))?;
    let recorded = read_provenance(&dir);
    let root = scratch.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("clusterlab-reproduce-{}-{run}", std::process::id()))
    });
    let scratch_store = Store::new(&root).with_output(&store.root);
    let cell = Cell {
        index: 0,
        assignment: Vec::new(),
        run_id: run_id(&config),
        config,
    };
    let mut say = |s: String| writeln!(out, "{s}").map_err(|e| Error::io("stdout", e));
    if cell.run_id != run {
        say(format!("warning: the stored config hashes to {}, not {run} (edited by hand, or another clusterlab version)", cell.run_id))?;
    }
    let (now_commit, now_dirty, _) = git_state(Path::new("."), &store.outputs());
    if let Some(p) = &recorded {
        if p.git_commit != now_commit || p.git_dirty != now_dirty {
            say(format!(
                "warning: recorded at commit {:?} (dirty {:?}), now at {:?} (dirty {:?}): results may differ",
                p.git_commit, p.git_dirty, now_commit, now_dirty
            ))?;
        }
    }
    say(format!(
        "re-running {run} of grid {grid} in {}",
        root.display()
    ))?;
    // On the CPU whatever --device says: only CPU runs are bit-identical across machines.
    let mut quiet = |_: &EpochRow, _: usize| {};
    let (state, err) = run_cell(
        &scratch_store,
        &grid,
        &cell,
        &mut DatasetCache::default(),
        &mut quiet,
    )?;
    if state != RunState::Completed {
        return Err(Error::RunFailed(format!(
            "the re-run did not complete: {}",
            err.unwrap_or_default()
        )));
    }
    let again = scratch_store.run_dir(&grid, &cell.run_id);
    let a = read_parquet(&dir.join(RESULT_FILE))?;
    let b = read_parquet(&again.join(RESULT_FILE))?;
    let mut same = true;
    for m in SCORE_COLUMNS {
        let x = a.column(m)?.f64()?.get(0);
        let y = b.column(m)?.f64()?.get(0);
        let ok = x.map(f64::to_bits) == y.map(f64::to_bits);
        same &= ok;
        say(format!(
            "{m:<22} recorded {x:?} reproduced {y:?} {}",
            if ok { "identical" } else { "DIFFERENT" }
        ))?;
    }
    let ea = read_parquet(&dir.join(EPOCHS_FILE))?.drop_many(["seconds", "run_id"]);
    let eb = read_parquet(&again.join(EPOCHS_FILE))?.drop_many(["seconds", "run_id"]);
    // Columns added since the run was recorded (the label-free scores, say) are not compared.
    let shared: Vec<String> = (ea.get_column_names().into_iter())
        .filter(|c| eb.column(c.as_str()).is_ok())
        .map(|c| c.to_string())
        .collect();
    let (ea, eb) = (ea.select(shared.clone())?, eb.select(shared)?);
    let epochs_same = ea.equals_missing(&eb);
    same &= epochs_same;
    say(format!(
        "epochs table (losses and metrics per epoch) {}",
        if epochs_same {
            "identical"
        } else {
            "DIFFERENT"
        }
    ))?;
    say(if same {
        "reproduced bit for bit".into()
    } else {
        "NOT reproduced bit for bit".into()
    })?;
    Ok(same)
}
