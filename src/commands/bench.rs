//! `clusterlab bench train|augment|report|heads|kernels`: speed figures as one JSON line
//! (`tools::bench`), or the device kernels' check against the CPU's (`tools::kernel_check`).

use std::io::Write;

use clusterlab::report;
use clusterlab::tools::bench;
use clusterlab::Result;

use super::{say, select_device};
use crate::cli::{BenchWhat, GlobalArgs};

pub fn run(g: &GlobalArgs, what: BenchWhat, out: &mut dyn Write) -> Result<i32> {
    let line = match what {
        BenchWhat::Report {
            runs,
            epochs,
            figures,
            dir,
        } => {
            report::without_huge_pages();
            let (root, temp) = match dir {
                Some(d) => (d, false),
                None => (
                    std::env::temp_dir()
                        .join(format!("clusterlab-bench-report-{}", std::process::id())),
                    true,
                ),
            };
            let line = bench::report(&root, runs.max(1), epochs.max(1), figures);
            if temp {
                let _ = std::fs::remove_dir_all(&root);
            }
            line?
        }
        BenchWhat::Train {
            steps,
            warmup,
            grid,
            method,
            backbone,
            stem,
            batch,
            image_size,
            overrides,
        } => {
            // The named flags are shorthands for --set (given after, so they win).
            let mut sets = overrides.sets;
            let named = [
                ("method.name", method),
                ("model.backbone", backbone),
                ("model.stem", stem),
                ("train.batch_size", batch.map(|b| b.to_string())),
                ("dataset.image_size", image_size.map(|s| s.to_string())),
            ];
            for (k, v) in named {
                if let Some(v) = v {
                    sets.push(format!("{k}={v}"));
                }
            }
            let cfg = bench::config(grid.as_deref(), &sets)?;
            bench::train(&cfg, steps.max(1), warmup, &select_device(&g.device)?)?
        }
        BenchWhat::Heads {
            n,
            dim,
            k,
            steps,
            methods,
        } => clusterlab::tools::bench_heads::heads(n, dim, k, steps.max(1), &methods)?,
        BenchWhat::Kernels => clusterlab::tools::kernel_check::check(&select_device(&g.device)?)?,
        BenchWhat::Augment {
            batches,
            grid,
            overrides,
        } => {
            let cfg = bench::config(grid.as_deref(), &overrides.sets)?;
            bench::augment(&cfg, batches.max(1))?
        }
    };
    say(out, line.to_string())?;
    Ok(0)
}
