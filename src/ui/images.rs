//! The images of one cluster of a run, as one PNG contact sheet (drawn by `report::sheets`).
//!
//! The store records each sample's cluster (`assignments.parquet`), not the pixels: the images
//! come from the run's dataset, read as training read it (`data::load` of the run's recorded
//! `dataset` config: the synthetic set is regenerated from its seed, file datasets come from the
//! data root and its decoded cache). The last dataset read is kept in memory.

use std::sync::{Arc, Mutex};

use super::paths::{run_file, Refusal};
use crate::config::RunConfig;
use crate::data::Dataset;
use crate::store::{Store, CONFIG_FILE};

use crate::report::sheets::PER_ROW;

/// The last dataset read, by its config (as JSON).
#[derive(Default)]
pub struct DatasetMemo(Mutex<Option<(String, Arc<Dataset>)>>);

impl DatasetMemo {
    fn get(&self, cfg: &RunConfig) -> Result<Arc<Dataset>, Refusal> {
        let key = serde_json::to_string(&(&cfg.dataset, &cfg.eval.split))
            .map_err(|e| (500, e.to_string()))?;
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, d)) = memo.as_ref() {
            if *k == key {
                return Ok(d.clone());
            }
        }
        let d = Arc::new(
            crate::data::load_scored(cfg)
                .map_err(|e| (404, format!("the run's dataset is not readable here: {e}")))?,
        );
        *memo = Some((key, d.clone()));
        Ok(d)
    }
}

/// PNG of up to `n` images of cluster `k` (the first ones in dataset order).
pub fn cluster_sheet(
    store: &Store,
    dir: &std::path::Path,
    memo: &DatasetMemo,
    k: i64,
    n: usize,
) -> Result<Vec<u8>, Refusal> {
    let a = super::run::assignment(store, dir)?
        .ok_or((404, "the run has no recorded assignment".to_string()))?;
    let path =
        run_file(store, dir, CONFIG_FILE).ok_or((404, "the run has no config.yaml".to_string()))?;
    let cfg = RunConfig::read(&path).map_err(|e| (500, e.to_string()))?;
    let ds = memo.get(&cfg)?;
    let members: Vec<usize> = a
        .index
        .iter()
        .zip(&a.clusters)
        .filter(|(_, &c)| c == k)
        .filter_map(|(&i, _)| usize::try_from(i).ok().filter(|&i| i < ds.len()))
        .take(n.max(1))
        .collect();
    if members.is_empty() {
        return Err((404, format!("cluster {k} has no images")));
    }
    let rows: Vec<Vec<usize>> = members.chunks(PER_ROW).map(<[usize]>::to_vec).collect();
    crate::report::sheets::sheet_png(&ds, &rows).map_err(|e| (500, e))
}
