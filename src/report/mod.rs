//! Reports: a read-only lazy scan of a grid's runs into paper-style tables.

pub mod diff;
pub mod epochs;
pub mod figures;
pub mod plots;
pub mod published;
pub mod query;
mod select;
pub mod sheets;
pub mod stats;
pub mod table;

use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::launch::cell::RESULT_COLUMNS;
use crate::store::tables::{read_parquet_many, stack_frames};
use crate::store::{cache, Store};
use select::best_by;
pub use select::{EpochSel, ReportOptions};
pub use table::{Stat, Table};

/// Metrics shown in tables, as (column suffix, header).
pub const METRICS: &[(&str, &str)] = &[("nmi", "NMI"), ("acc", "ACC"), ("ari", "ARI")];

/// The label-free metrics a table shows instead of [`METRICS`] when no run of it has labels
/// (a `folder` of images without class folders; `eval::labelfree`), as (column suffix,
/// header).
pub const LABEL_FREE_METRICS: &[(&str, &str)] = &[
    ("silhouette", "silhouette"),
    ("cluster_entropy", "size entropy"),
    ("min_cluster_fraction", "smallest cluster"),
    ("max_cluster_fraction", "largest cluster"),
    ("loss", "loss"),
];

/// Turns transparent huge pages off for the rest of this process (Linux; elsewhere a no-op).
///
/// A report allocates and frees many buffers (thousands of small Parquet files, a million epoch
/// rows). The allocator asks for huge pages, and the kernel zeroes each fresh 2 MiB page on first
/// touch, compacting memory first when it is fragmented (after a sweep, say): up to a second of
/// system time on a cold report of 5 000 runs, against 0.2 s with normal pages
/// (docs/benchmarks.md, "Report speed"). Called by the `report` commands, not by training.
pub fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process; an error leaves it unset.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// File name of a grid's cache of result rows (see [`scan_results`]).
pub use crate::store::cache::RESULTS_CACHE;

/// A lazy frame over every completed result row of a grid.
///
/// The rows are cached in `runs/<grid>/.report-cache.parquet` (a [`crate::store::cache`]) with
/// the list of result files it was built from (path, size, modification time): when nothing
/// changed, a report reads one file instead of one per run; any change rebuilds it.
pub fn scan_results(store: &Store, grid: &str) -> Result<Option<LazyFrame>> {
    scan(store, grid, true)
}

/// [`scan_results`] for readers that never write the store (`clusterlab ui`): the cache is used
/// while current, else the files (and the result index) are read and nothing is written.
pub fn read_results(store: &Store, grid: &str) -> Result<Option<LazyFrame>> {
    scan(store, grid, false)
}

fn scan(store: &Store, grid: &str, write_cache: bool) -> Result<Option<LazyFrame>> {
    let files = store
        .result_files(grid)
        .map_err(|e| Error::io(store.grid_dir(grid), e))?;
    if files.is_empty() {
        return Ok(None);
    }
    let manifest: Vec<(String, u64, u128)> = files
        .iter()
        .map(|p| {
            let (len, mtime) = crate::store::index::stamp(p).unwrap_or((0, 0));
            (p.to_string_lossy().into_owned(), len, mtime)
        })
        .collect();
    let dir = store.grid_dir(grid);
    let path = dir.join(RESULTS_CACHE);
    let cached = cache::load(&path, "results", |m: &Vec<(String, u64, u128)>| {
        *m == manifest
    });
    let df = match cached {
        Some((_, df)) => df,
        None => {
            let (mut df, unread) = read_all(&dir, &files, &manifest)?;
            if write_cache {
                // A file that did not read is left out of the cache's list: the next report
                // reads it again (and warns again) until it is repaired.
                let manifest: Vec<_> = manifest
                    .into_iter()
                    .filter(|(p, _, _)| !unread.iter().any(|u| u.as_os_str() == p.as_str()))
                    .collect();
                cache::store(&path, "results", &mut df, &manifest);
                // Earlier versions kept the list beside the rows.
                let _ = std::fs::remove_file(dir.join(".report-cache.json"));
            }
            df
        }
    };
    let lf = df.lazy();
    Ok(Some(lf.filter(col("status").eq(lit("completed")))))
}

/// Reads result files into one frame (the union of their columns): rows the grid's result index
/// holds for an unchanged file come from the index, the other files are read in parallel. A
/// file that does not read (a damaged run) is skipped with a warning naming it; those files are
/// returned too.
fn read_all(
    grid_dir: &Path,
    files: &[std::path::PathBuf],
    manifest: &[(String, u64, u128)],
) -> Result<(DataFrame, Vec<std::path::PathBuf>)> {
    let index = crate::store::index::load(grid_dir);
    let mut indexed = Vec::new();
    let mut unread = Vec::new();
    for (f, (_, size, mtime)) in files.iter().zip(manifest) {
        let run_id = f
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match index.get(&run_id) {
            Some(e) if e.size == *size && e.mtime_ns == *mtime => indexed.push(e.row.clone()),
            _ => unread.push(f.clone()),
        }
    }
    let mut frames = Vec::with_capacity(unread.len() + 1);
    let mut damaged = Vec::new();
    for (f, df) in unread.iter().zip(read_parquet_many(&unread)) {
        match df.and_then(|df| check_result_frame(&df).map(|()| df)) {
            Ok(df) => frames.push(df),
            Err(e) => {
                skip_damaged(f, &e);
                damaged.push(f.clone());
            }
        }
    }
    if !indexed.is_empty() {
        frames.push(crate::store::tables::rows_frame(&indexed)?);
    }
    Ok((stack_frames(frames)?.unwrap_or_default(), damaged))
}

/// A result file that reads but is no run's result row (one row with a string `run_id` and
/// `status`) is as damaged as one that does not read.
fn check_result_frame(df: &DataFrame) -> Result<()> {
    if df.height() != 1 {
        return Err(Error::Other(format!("{} rows, expected one", df.height())));
    }
    for c in ["run_id", "status"] {
        df.column(c)?.str()?;
    }
    Ok(())
}

/// Warns that a run's file is skipped because it does not read.
pub(crate) fn skip_damaged(path: &Path, e: &dyn std::fmt::Display) {
    let e = e.to_string();
    // Errors from the store already start with the path.
    let what = e
        .strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(&e);
    tracing::warn!(
        "skipping {}: {what} (a damaged run: `clusterlab verify --repair` sets it aside)",
        path.display()
    );
}

/// Which result columns are config keys (everything that is not a metric/provenance column).
fn config_columns(schema: &Schema) -> Vec<String> {
    schema
        .iter_names()
        .map(|n| n.to_string())
        .filter(|n| !RESULT_COLUMNS.contains(&n.as_str()))
        .collect()
}

/// Config keys that vary across the runs (seed excluded: it is what we average over; nulls
/// ignored: a key a method does not have, such as another method's loss weight).
pub fn varying_columns(lf: &LazyFrame, schema: &Schema) -> Result<Vec<String>> {
    let cfg_cols = config_columns(schema);
    let distinct = lf
        .clone()
        .select(
            cfg_cols
                .iter()
                .map(|c| {
                    col(c.as_str())
                        .drop_nulls()
                        .cast(DataType::String)
                        .n_unique()
                        .alias(c.as_str())
                })
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let mut varying = Vec::new();
    for c in &cfg_cols {
        let n = distinct
            .column(c)?
            .cast(&DataType::UInt64)?
            .u64()?
            .get(0)
            .unwrap_or(0);
        // `from` names the source run of a stage: it varies with the seed, as the seed does.
        if n > 1 && c != "seed" && c != "from" {
            varying.push(c.clone());
        }
    }
    Ok(varying)
}

/// Builds the summary table of a grid: rows = method (+ any other varying config key),
/// columns = dataset × metric, cells = mean ± std (n) over seeds of the final-epoch metric.
pub fn summarise(store: &Store, grid: &str, opts: &ReportOptions) -> Result<Option<Table>> {
    Ok(summarise_rows(store, grid, opts)?.map(|(t, _)| t))
}

/// [`summarise`], also returning the result rows the table was built from.
fn summarise_rows(
    store: &Store,
    grid: &str,
    opts: &ReportOptions,
) -> Result<Option<(Table, LazyFrame)>> {
    let Some(lf) = scan_results(store, grid)? else {
        return Ok(None);
    };
    summarise_frame(store, grid, lf, opts)
}

/// The summary table of the result rows `lf` (a grid's, or a selection of them), and the rows.
pub fn summarise_frame(
    store: &Store,
    grid: &str,
    lf: LazyFrame,
    opts: &ReportOptions,
) -> Result<Option<(Table, LazyFrame)>> {
    let mut lf = match opts.epoch {
        EpochSel::Best(m) if m != "nmi" => best_by(store, grid, lf, m)?,
        _ => lf,
    };
    let schema = lf.collect_schema()?;
    let has = |c: &str| schema.get(c).is_some();
    // Results recorded before a column existed: `reported_*` is the final epoch (runs had no
    // `eval.epoch`), majority-vote ACC unknown.
    let mut fill = Vec::new();
    for (m, _) in METRICS.iter().chain([&table::ACC_MAJORITY]) {
        for p in ["final", "best", "reported"] {
            let c = format!("{p}_{m}");
            if has(&c) {
                continue;
            }
            let from = format!("final_{m}");
            fill.push(if p == "reported" && has(&from) {
                col(from.as_str()).alias(c.as_str())
            } else {
                lit(NULL).cast(DataType::Float64).alias(c.as_str())
            });
        }
    }
    if has("reported_nmi") {
        for (m, _) in METRICS.iter().chain([&table::ACC_MAJORITY]) {
            let (c, from) = (format!("reported_{m}"), format!("final_{m}"));
            if has(&from) {
                fill.push(
                    col(c.as_str())
                        .fill_null(col(from.as_str()))
                        .alias(c.as_str()),
                );
            }
        }
    }
    if !fill.is_empty() {
        lf = lf.with_columns(fill);
    }
    // Over-clustering (K > classes) in any run adds majority-vote ACC to the table.
    let over = has("num_clusters")
        && has("dataset.num_classes")
        && lf
            .clone()
            .select([col("num_clusters")
                .cast(DataType::Int64)
                .gt(col("dataset.num_classes").cast(DataType::Int64))
                .any(true)
                .alias("over")])
            .collect()?
            .column("over")?
            .bool()?
            .get(0)
            .unwrap_or(false);
    // No run with labels (all NMIs null) but label-free scores recorded: those instead.
    let unlabelled = has("final_silhouette")
        && !lf
            .clone()
            .select([col("final_nmi").is_not_null().any(true).alias("l")])
            .collect()?
            .column("l")?
            .bool()?
            .get(0)
            .unwrap_or(false);
    let mut metrics = if unlabelled {
        if let EpochSel::Best(m) = opts.epoch {
            return Err(Error::BadInput(format!(
                "report --epoch best:{m}: the runs of grid {grid} have no labels to choose an \
                 epoch with; use --epoch reported or final"
            )));
        }
        LABEL_FREE_METRICS.to_vec()
    } else {
        METRICS.to_vec()
    };
    if over && !unlabelled {
        metrics.push(table::ACC_MAJORITY);
    }
    let rules: Vec<String> = if has("eval.epoch") {
        let df = lf
            .clone()
            .select([col("eval.epoch")
                .cast(DataType::String)
                .fill_null(lit("final"))
                .unique()
                .sort(Default::default())])
            .collect()?;
        df.column("eval.epoch")?
            .str()?
            .iter()
            .flatten()
            .map(String::from)
            .collect()
    } else {
        vec!["final".into()]
    };
    let varying = varying_columns(&lf, &schema)?;
    let default_cols: Vec<String> = std::iter::once("dataset.name".to_string())
        .chain(
            varying
                .iter()
                .filter(|c| c.starts_with("dataset.") && *c != "dataset.name")
                .cloned(),
        )
        .collect();
    let default_rows: Vec<String> = std::iter::once("method.name".to_string())
        .chain(
            varying
                .iter()
                .filter(|c| !c.starts_with("dataset.") && *c != "method.name")
                .cloned(),
        )
        .collect();
    let pick = |chosen: &Option<Vec<String>>, default: Vec<String>| -> Result<Vec<String>> {
        let Some(keys) = chosen else {
            return Ok(default);
        };
        for k in keys {
            if schema.get(k.as_str()).is_none() {
                let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
                let hint = crate::config::locate::closest(k, names.iter().copied())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(Error::BadInput(format!(
                    "report key `{k}` is not a result column{hint}"
                )));
            }
        }
        Ok(keys.clone())
    };
    let row_keys = pick(&opts.rows, default_rows)?;
    let col_keys = pick(&opts.columns, default_cols)?;
    if col_keys.is_empty() || row_keys.is_empty() {
        return Err(Error::BadInput(
            "report rows and columns need at least one key each".into(),
        ));
    }
    let keys: Vec<Expr> = row_keys
        .iter()
        .chain(&col_keys)
        .map(|k| {
            col(k.as_str())
                .cast(DataType::String)
                .fill_null(lit("–"))
                .alias(k.as_str())
        })
        .collect();
    let mut aggs = vec![
        len().alias("n"),
        col("run_id").sort(Default::default()).alias("run_ids"),
    ];
    if opts.epoch == EpochSel::Reported && has("eval.epoch") {
        aggs.push(
            col("eval.epoch")
                .cast(DataType::String)
                .eq(lit("best_by_label"))
                .fill_null(lit(false))
                .any(true)
                .alias("by_label"),
        );
    }
    // Each cell's protocol, for the published-vs-reproduced section.
    for (from, to) in [
        ("dataset.splits", "proto_splits"),
        ("eval.split", "proto_eval_split"),
        ("dataset.image_size", "proto_image_size"),
        ("eval.epoch", "proto_epoch"),
    ] {
        if has(from) {
            aggs.push(col(from).cast(DataType::String).first().alias(to));
        }
    }
    for (m, _) in &metrics {
        let c = format!("{}_{m}", opts.epoch.prefix());
        aggs.push(col(c.as_str()).mean().alias(format!("{m}_mean")));
        aggs.push(col(c.as_str()).std(1).alias(format!("{m}_std")));
        aggs.push(col(c.as_str()).alias(format!("{m}_values")));
    }
    // Numeric keys (K, batch size, ...) sort by value, not as text (5 before 10).
    let sort_key = |k: &String| {
        schema
            .get(k.as_str())
            .is_some_and(|d| d.is_primitive_numeric())
            .then(|| format!("__sort.{k}"))
    };
    let all_keys: Vec<&String> = row_keys.iter().chain(&col_keys).collect();
    let numeric: Vec<(String, String)> = all_keys
        .iter()
        .filter_map(|k| sort_key(k).map(|s| (k.to_string(), s)))
        .collect();
    for (_, s) in &numeric {
        aggs.push(col(s.as_str()).first().alias(s.as_str()));
    }
    let sort_by: Vec<String> = all_keys
        .iter()
        .map(|k| sort_key(k).unwrap_or_else(|| k.to_string()))
        .collect();
    let df = lf
        .clone()
        .with_columns(
            numeric
                .iter()
                .map(|(k, s)| col(k.as_str()).cast(DataType::Float64).alias(s.as_str()))
                .collect::<Vec<_>>(),
        )
        .with_columns(keys)
        .group_by(
            row_keys
                .iter()
                .chain(&col_keys)
                .map(|k| col(k.as_str()))
                .collect::<Vec<_>>(),
        )
        .agg(aggs)
        .sort(
            sort_by.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            Default::default(),
        )
        .collect()?;
    let mut t = Table::from_frame(grid, &df, &row_keys, &col_keys, &metrics)?;
    t.epoch = opts.epoch;
    t.rules = rules;
    Ok(Some((t, lf)))
}

/// Writes the report folder `reports/<grid>/`: table.md, table.tex, table.csv, every figure
/// (PNG + SVG) and index.md linking them with the runs behind each cell. Returns the Markdown
/// table and the folder.
pub fn write_report(
    store: &Store,
    reports_root: &Path,
    grid: &str,
    opts: &ReportOptions,
) -> Result<Option<(String, std::path::PathBuf)>> {
    let t = std::time::Instant::now();
    let Some((table, rows)) = summarise_rows(store, grid, opts)? else {
        return Ok(None);
    };
    tracing::debug!(
        "report {grid}: table summarised in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let mut md = table.markdown();
    if let Some(a) = table.ablation_markdown(&opts.baseline) {
        md.push('\n');
        md.push_str(&a);
    }
    if let Some(p) = table.published_markdown() {
        md.push('\n');
        md.push_str(&p);
    }
    md.push_str(&probes_section(rows.clone())?);
    let dir = reports_root.join(grid);
    crate::store::create_dir(&dir)?;
    crate::store::write_atomic(&dir.join("table.md"), md.as_bytes())?;
    crate::store::write_atomic(&dir.join("table.tex"), table.latex().as_bytes())?;
    crate::store::write_atomic(&dir.join("table.csv"), table.csv().as_bytes())?;
    let figs = figures::write_all(store, &table, &dir)?;
    let chain = stages(store, rows.clone())?;

    let commits = commits(rows)?;
    let mut front = index(&table, &md, &figs, &commits);
    front.push_str(&chain);
    crate::store::write_atomic(&dir.join("index.md"), front.as_bytes())?;
    tracing::debug!(
        "report {grid}: written in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    Ok(Some((md, dir.join("table.md"))))
}

/// The probes' section of table.md and index.md (`eval.probes`): each probed run's test
/// accuracies beside its clustering scores. Empty when no run probed.
fn probes_section(mut rows: LazyFrame) -> Result<String> {
    let schema = rows.collect_schema()?;
    let probes: Vec<String> = crate::config::run::PROBES
        .iter()
        .map(|p| format!("probe_{p}_acc"))
        .filter(|c| schema.get(c).is_some())
        .collect();
    if probes.is_empty() {
        return Ok(String::new());
    }
    let mut cols = vec![
        col("run_id"),
        col("method.name"),
        col("seed").cast(DataType::String),
        col("final_nmi"),
        col("final_acc"),
        col("final_ari"),
    ];
    cols.extend(probes.iter().map(|c| col(c.as_str())));
    let df = rows
        .select(cols)
        .sort(["method.name", "seed"], Default::default())
        .collect()?;
    let text = |c: &str| str_column(&df, c);
    let num = |c: &str| -> Result<Vec<Option<f64>>> { Ok(df.column(c)?.f64()?.iter().collect()) };
    let (ids, methods, seeds) = (text("run_id")?, text("method.name")?, text("seed")?);
    let mut values = vec![num("final_nmi")?, num("final_acc")?, num("final_ari")?];
    for c in &probes {
        values.push(num(c)?);
    }
    let names: Vec<String> = crate::config::run::PROBES
        .iter()
        .filter(|p| probes.contains(&format!("probe_{p}_acc")))
        .map(|p| format!("{p} acc"))
        .collect();
    let mut out = format!(
        "\n### Probes (frozen final features; test accuracy, `eval.probes`)\n\n| run | method | seed | NMI | ACC | ARI | {} |\n|---|---|---|---:|---:|---:|{}\n",
        names.join(" | "),
        "---:|".repeat(names.len())
    );
    for i in 0..ids.len() {
        if values[3..].iter().all(|v| v[i].is_none()) {
            continue;
        }
        let cells: Vec<String> = values
            .iter()
            .map(|v| v[i].map_or("–".into(), |x| format!("{x:.3}")))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            ids[i],
            methods[i],
            seeds[i],
            cells.join(" | ")
        ));
    }
    Ok(out)
}

/// The `## Stages` section of index.md for a grid whose runs started from other runs (`from:`):
/// each run beside its source run, with a link to the source grid's report and both final
/// NMIs. Empty for a grid without stages.
fn stages(store: &Store, mut rows: LazyFrame) -> Result<String> {
    if rows.collect_schema()?.get("from").is_none() {
        return Ok(String::new());
    }
    let df = rows
        .select([
            col("run_id"),
            col("seed").cast(DataType::String),
            col("method.name"),
            col("from"),
            col("final_nmi"),
        ])
        .sort(["from"], Default::default())
        .collect()?;
    let text = |c: &str| str_column(&df, c);
    let (ids, seeds, methods, froms) = (
        text("run_id")?,
        text("seed")?,
        text("method.name")?,
        text("from")?,
    );
    let nmi: Vec<Option<f64>> = df.column("final_nmi")?.f64()?.iter().collect();
    let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    let mut out = String::new();
    for (i, from) in froms.iter().enumerate() {
        let Some((g, src)) = from.split_once('/') else {
            continue;
        };
        if out.is_empty() {
            out.push_str(
                "\n## Stages\n\nEach run started from the final weights of its source run \
                 (`from:`).\n\n| run | seed | method | NMI | source run | source grid | source \
                 method | source NMI |\n|---|---|---|---:|---|---|---|---:|\n",
            );
        }
        let result = store.run_dir(g, src).join(crate::store::RESULT_FILE);
        let (src_method, src_nmi) = match crate::store::tables::read_parquet(&result) {
            Ok(r) => (
                r.column("method.name")
                    .ok()
                    .and_then(|c| c.str().ok().and_then(|s| s.get(0).map(String::from)))
                    .unwrap_or_default(),
                r.column("final_nmi")
                    .ok()
                    .and_then(|c| c.f64().ok().and_then(|s| s.get(0))),
            ),
            Err(_) => ("(no result)".to_string(), None),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {src} | [{g}](../{g}/index.md) | {src_method} | {} |\n",
            ids[i],
            seeds[i],
            methods[i],
            fmt(nmi[i]),
            fmt(src_nmi)
        ));
    }
    Ok(out)
}

/// Each run's recorded commit (its first 10 characters) from its result row; runs without one
/// (no git, or results of a version that did not record it) are absent.
fn commits(mut rows: LazyFrame) -> Result<HashMap<String, String>> {
    if rows.collect_schema()?.get("git_commit").is_none() {
        return Ok(HashMap::new());
    }
    let df = rows.select([col("run_id"), col("git_commit")]).collect()?;
    let (ids, commits) = (df.column("run_id")?.str()?, df.column("git_commit")?);
    let Ok(commits) = commits.str() else {
        return Ok(HashMap::new());
    };
    Ok(ids
        .iter()
        .zip(commits.iter())
        .filter_map(|(id, c)| Some((id?.to_string(), c?.chars().take(10).collect())))
        .collect())
}

/// The report's front page.
fn index(
    table: &Table,
    md: &str,
    figs: &[figures::Figure],
    commits: &HashMap<String, String>,
) -> String {
    let mut out = format!("# Report: {}\n\n", table.grid);
    out.push_str("Generated by `clusterlab report` from the run store; every number traces back to the runs listed at the end.\n\n");
    out.push_str("## Table\n\n");
    out.push_str(&md.replacen(&format!("## {}\n\n", table.grid), "", 1));
    out.push_str("\nAlso as [LaTeX (booktabs)](table.tex) and [CSV](table.csv).\n\n## Figures\n\n");
    for f in figs {
        out.push_str(&format!(
            "### {}\n\n![{}]({}.png)\n\n{}",
            f.caption,
            f.caption,
            f.stem,
            if f.svg {
                format!("([SVG]({}.svg))\n\n", f.stem)
            } else {
                String::new()
            }
        ));
    }
    out.push_str("## Runs behind each cell\n\n| row | dataset | runs (commit) |\n|---|---|---|\n");
    for (r, row) in table.rows.iter().enumerate() {
        for (g, group) in table.groups.iter().enumerate() {
            let runs: Vec<String> = table.run_ids[r][g]
                .iter()
                .map(|id| {
                    let commit = commits.get(id).map_or("no git", |c| c.as_str());
                    format!("`{id}` ({commit})")
                })
                .collect();
            if !runs.is_empty() {
                out.push_str(&format!(
                    "| {} | {group} | {} |\n",
                    row.join(" "),
                    runs.join(", ")
                ));
            }
        }
    }
    out
}

/// A string column of `df` as owned strings (nulls as empty).
fn str_column(df: &DataFrame, c: &str) -> Result<Vec<String>> {
    Ok(df
        .column(c)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::{row_frame, write_parquet, Value};

    fn write(store: &Store, id: &str, method: &str, nmi: f64, extra: bool) {
        let dir = store.run_dir("g", id);
        std::fs::create_dir_all(&dir).unwrap();
        let s = |v: &str| Value::Str(Some(v.into()));
        let mut row = vec![
            ("run_id".to_string(), s(id)),
            ("grid".into(), s("g")),
            ("status".into(), s("completed")),
            ("method.name".into(), s(method)),
            ("dataset.name".into(), s("synthetic")),
            ("seed".into(), Value::I64(Some(0))),
        ];
        if extra {
            row.push(("weight.instance".into(), Value::F64(Some(1.0))));
        }
        for m in [
            "final_nmi",
            "final_acc",
            "final_ari",
            "best_nmi",
            "best_acc",
            "best_ari",
        ] {
            row.push((m.into(), Value::F64(Some(nmi))));
        }
        write_parquet(
            &dir.join(crate::store::RESULT_FILE),
            &mut row_frame(&row).unwrap(),
        )
        .unwrap();
    }

    /// Result files of different schemas (an older version's runs beside new ones) are read
    /// as the union of their columns.
    #[test]
    fn mixed_schemas_are_unioned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        write(&store, "a", "kmeans", 0.1, false);
        write(&store, "b", "cc", 0.9, true);
        let t = summarise(&store, "g", &ReportOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            t.rows,
            vec![vec!["cc".to_string()], vec!["kmeans".to_string()]]
        );
        assert_eq!(t.cells[0][0].as_ref().unwrap().mean, 0.9);
        // The second report reads the cache; a new run invalidates it.
        assert!(dir.path().join("g/.report-cache.parquet").is_file());
        write(&store, "c", "cc", 0.7, true);
        let t = summarise(&store, "g", &ReportOptions::default())
            .unwrap()
            .unwrap();
        let cc = t.cells[0][0].as_ref().unwrap();
        assert_eq!((cc.n, cc.mean), (2, 0.8));
    }

    #[test]
    fn rows_and_columns_can_be_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        write(&store, "a", "kmeans", 0.1, false);
        write(&store, "b", "cc", 0.9, true);
        let opts = ReportOptions {
            rows: Some(vec!["seed".into()]),
            columns: Some(vec!["method.name".into()]),
            ..Default::default()
        };
        let t = summarise(&store, "g", &opts).unwrap().unwrap();
        assert_eq!(t.groups, ["cc", "kmeans"]);
        assert_eq!(t.rows, vec![vec!["0".to_string()]]);
        let bad = ReportOptions {
            rows: Some(vec!["sed".into()]),
            ..Default::default()
        };
        let e = summarise(&store, "g", &bad).unwrap_err().to_string();
        assert!(e.contains("did you mean `seed`?"), "{e}");
    }

    /// `best:acc` takes each run's epoch of highest ACC (earliest on ties) and reports all three
    /// scores of that epoch; `best` keeps the recorded best-NMI epoch.
    #[test]
    fn best_epoch_by_a_named_metric() {
        use crate::eval::Scores;
        use crate::store::tables::{epochs_frame, EpochRow};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        write(&store, "a", "cc", 0.5, false);
        // (nmi, acc, ari) per epoch: ACC peaks at epoch 2 (twice: 2 and 4), NMI at epoch 3.
        let scores = [
            (0.1, 0.2, 0.3),
            (0.4, 0.9, 0.5),
            (0.8, 0.6, 0.7),
            (0.2, 0.9, 0.1),
        ];
        let rows: Vec<EpochRow> = scores
            .iter()
            .enumerate()
            .map(|(i, &(nmi, acc, ari))| EpochRow {
                epoch: i + 1,
                losses: vec![("total".into(), 1.0)],
                scores: Some(Scores {
                    nmi,
                    acc,
                    ari,
                    acc_majority: acc,
                }),
                cluster_entropy: None,
                label_free: None,
                seconds: 1.0,
            })
            .collect();
        write_parquet(
            &store.run_dir("g", "a").join(crate::store::EPOCHS_FILE),
            &mut epochs_frame("a", &rows).unwrap(),
        )
        .unwrap();
        let by_acc = ReportOptions {
            epoch: EpochSel::parse("best:acc").unwrap(),
            ..Default::default()
        };
        let t = summarise(&store, "g", &by_acc).unwrap().unwrap();
        let means: Vec<f64> = t.cells[0]
            .iter()
            .map(|c| c.as_ref().unwrap().mean)
            .collect();
        assert_eq!(means, [0.4, 0.9, 0.5]);
        assert!(t.markdown().contains("best-ACC epoch"));
        // `best` (by NMI) reads the recorded best_* columns: 0.5 as written.
        let by_nmi = ReportOptions {
            epoch: EpochSel::parse("best").unwrap(),
            ..Default::default()
        };
        let t = summarise(&store, "g", &by_nmi).unwrap().unwrap();
        assert_eq!(t.cells[0][0].as_ref().unwrap().mean, 0.5);
        let e = EpochSel::parse("best:f1").unwrap_err().to_string();
        assert!(e.contains("unknown metric `f1`"), "{e}");
    }

    /// index.md names each run's commit from its result row (first 10 characters), "no git"
    /// for a run without one.
    #[test]
    fn index_names_each_runs_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("runs"));
        write(&store, "a", "kmeans", 0.1, false);
        let row = vec![
            ("run_id".to_string(), Value::Str(Some("b".into()))),
            ("status".into(), Value::Str(Some("completed".into()))),
            ("method.name".into(), Value::Str(Some("cc".into()))),
            ("dataset.name".into(), Value::Str(Some("synthetic".into()))),
            (
                "git_commit".into(),
                Value::Str(Some("0123456789abcdef".into())),
            ),
            ("final_nmi".into(), Value::F64(Some(0.5))),
        ];
        std::fs::create_dir_all(store.run_dir("g", "b")).unwrap();
        store.record_result("g", "b", &row).unwrap();
        let reports = dir.path().join("reports");
        for _ in 0..2 {
            write_report(&store, &reports, "g", &ReportOptions::default())
                .unwrap()
                .unwrap();
            let index = std::fs::read_to_string(reports.join("g/index.md")).unwrap();
            assert!(
                index.contains("| cc | synthetic | `b` (0123456789) |"),
                "{index}"
            );
            assert!(
                index.contains("| kmeans | synthetic | `a` (no git) |"),
                "{index}"
            );
        }
    }

    /// Rows from the grid's result index equal the rows read from the Parquet files; a file
    /// changed after its index line is read from the file.
    #[test]
    fn result_index_matches_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        for (i, (m, v)) in [("cc", 0.9), ("cc", 0.8), ("kmeans", 0.1)]
            .iter()
            .enumerate()
        {
            let id = format!("r{i}");
            std::fs::create_dir_all(store.run_dir("g", &id)).unwrap();
            let row = vec![
                ("run_id".to_string(), Value::Str(Some(id.clone()))),
                ("status".into(), Value::Str(Some("completed".into()))),
                ("method.name".into(), Value::Str(Some(m.to_string()))),
                ("dataset.name".into(), Value::Str(Some("synthetic".into()))),
                ("seed".into(), Value::I64(Some(i as i64))),
                ("note".into(), Value::Str(None)),
                ("final_nmi".into(), Value::F64(Some(*v))),
                ("final_acc".into(), Value::F64(Some(*v))),
                ("final_ari".into(), Value::F64(Some(*v))),
            ];
            store.record_result("g", &id, &row).unwrap();
        }
        let files = store.result_files("g").unwrap();
        let manifest: Vec<(String, u64, u128)> = files
            .iter()
            .map(|f| {
                let (s, t) = crate::store::index::stamp(f).unwrap();
                (f.to_string_lossy().into_owned(), s, t)
            })
            .collect();
        let (from_index, _) = read_all(&store.grid_dir("g"), &files, &manifest).unwrap();
        let (from_files, _) = read_all(dir.path(), &files, &manifest).unwrap();
        assert!(
            from_index.equals_missing(&from_files),
            "{from_index}\n{from_files}"
        );
        // A re-written file whose index line is stale is read from the file.
        write(&store, "r2", "kmeans", 0.3, false);
        let t = summarise(&store, "g", &ReportOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(t.cells[1][0].as_ref().unwrap().mean, 0.3);
    }
}
