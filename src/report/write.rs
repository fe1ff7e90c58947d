//! Writing the report folder `reports/<grid>/`: the table in Markdown, LaTeX and CSV, every
//! figure, the probes and pipeline-stage sections, and index.md linking the runs behind each cell.

use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;

use crate::error::Result;
use crate::store::Store;

use super::summary::summarise_rows;
use super::*;

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
