//! `clusterlab predict RUN IMAGES...`: a finished run's clusters for new images
//! (`train::predict`), written to Parquet, with optional contact sheets.

use std::io::Write;

use clusterlab::config::RunConfig;
use clusterlab::data::formats::images::{list_images, load_unlabelled};
use clusterlab::store::{lookup::find_run, tables::write_parquet_zstd, Store, CONFIG_FILE};
use clusterlab::{Error, Result};
use polars::prelude::{Column, DataFrame};

use super::{say, select_device};
use crate::cli::{GlobalArgs, PredictArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: PredictArgs, out: &mut dyn Write) -> Result<i32> {
    let (grid, dir) = find_run(store, &a.run)?;
    let status = clusterlab::store::status::Status::read(&dir);
    if !status.is_some_and(|s| s.state == clusterlab::store::status::RunState::Completed) {
        return Err(Error::BadInput(format!(
            "run {} ({grid}) is not completed: predict needs its final weights",
            a.run
        )));
    }
    let cfg = RunConfig::read(&dir.join(CONFIG_FILE))?;
    let paths = list_images(&a.images)?;
    let ds = load_unlabelled(&paths, cfg.dataset.image_size)?;
    let device = select_device(&g.device)?;
    let p = clusterlab::train::predict::predict(&cfg, &dir, &ds, &device)?;
    let n = paths.len();
    let tsne = |k: usize| -> Vec<Option<f64>> {
        (0..n)
            .map(|i| {
                let pt = p.tsne.as_ref().and_then(|t| t[i])?;
                Some(if k == 0 { pt.0 } else { pt.1 })
            })
            .collect()
    };
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new(
                "path".into(),
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            ),
            Column::new("cluster".into(), p.clusters.clone()),
            Column::new("confidence".into(), p.confidence.clone()),
            Column::new(
                "pc1".into(),
                p.points.iter().map(|q| q.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "pc2".into(),
                p.points.iter().map(|q| q.1).collect::<Vec<_>>(),
            ),
            Column::new("tsne1".into(), tsne(0)),
            Column::new("tsne2".into(), tsne(1)),
        ],
    )?;
    write_parquet_zstd(&a.out, &mut df)?;
    let mut sizes = std::collections::BTreeMap::new();
    for c in &p.clusters {
        *sizes.entry(*c).or_insert(0usize) += 1;
    }
    say(
        out,
        format!(
            "{n} images → {} clusters ({}); written to {}",
            sizes.len(),
            sizes
                .iter()
                .map(|(c, k)| format!("{c}: {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            a.out.display()
        ),
    )?;
    if let Some(sheets) = &a.sheets {
        clusterlab::store::create_dir(sheets)?;
        let made = clusterlab::report::sheets::contact_sheets(
            sheets,
            "predict",
            &ds,
            &p.clusters,
            &p.confidence,
        )?;
        say(
            out,
            format!("{} contact sheets in {}", made.len(), sheets.display()),
        )?;
    }
    Ok(0)
}
