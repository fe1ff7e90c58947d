//! The routes: the page (one embedded HTML file for every page path) and the JSON API.
//!
//! | route | answer |
//! |---|---|
//! | `/`, `/run/<grid>/<run>`, `/compare` | the page (its script reads the path and query) |
//! | `/api/runs?where=COND&where=…` | the runs table ([`super::runs::table`]) |
//! | `/api/run/<grid>/<run>` | config, provenance, status, result row |
//! | `/api/run/<grid>/<run>/epochs` | the epochs' columns (curves) |
//! | `/api/run/<grid>/<run>/log?lines=N` | the log's last N lines (default 200) |
//! | `/api/run/<grid>/<run>/clusters` | cluster sizes, confusion matrix, embedding |
//! | `/api/run/<grid>/<run>/cluster/<k>.png?n=N` | N images of cluster k |
//! | `/api/table?runs=GRID/RUN,…` | the paper table of the selected runs |
//!
//! Path components are percent-decoded, then checked as store names; there is no route that
//! takes a file name.

use serde_json::{json, Value as Json};

use super::paths::{decode, query_pairs, run_dir, Refusal};
use super::{images, run, runs, select, Ui};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("page.html");

/// What a route answers.
pub enum Reply {
    Page,
    Json(Json),
    Png(Vec<u8>),
    Error(u16, String),
}

impl From<Refusal> for Reply {
    fn from((code, msg): Refusal) -> Self {
        Reply::Error(code, msg)
    }
}

fn json(r: Result<Json, Refusal>) -> Reply {
    r.map_or_else(Reply::from, Reply::Json)
}

/// Answers `GET path?query`.
pub fn route(ui: &Ui, path: &str, query: &str) -> Reply {
    match route_inner(ui, path, query) {
        Ok(r) => r,
        Err(refusal) => refusal.into(),
    }
}

fn route_inner(ui: &Ui, path: &str, query: &str) -> Result<Reply, Refusal> {
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| decode(s, false))
        .collect::<Result<_, _>>()?;
    let seg: Vec<&str> = segments.iter().map(|s| s.as_str()).collect();
    let q = query_pairs(query)?;
    let param = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let number = |k: &str, default: usize, max: usize| -> Result<usize, Refusal> {
        param(k).map_or(Ok(default), |v| {
            v.parse::<usize>()
                .map(|n| n.min(max))
                .map_err(|_| (400, format!("{k}={v:?}: expected a number")))
        })
    };
    let store = &ui.store;
    Ok(match seg.as_slice() {
        [""] | ["compare"] => Reply::Page,
        ["run", g, r] => {
            super::paths::name("grid name", g)?;
            super::paths::name("run id", r)?;
            Reply::Page
        }
        ["api", "runs"] => {
            let conds: Vec<String> = q
                .iter()
                .filter(|(k, v)| k == "where" && !v.trim().is_empty())
                .map(|(_, v)| v.clone())
                .collect();
            let t = std::time::Instant::now();
            match runs::table(store, &conds) {
                Ok(mut j) => {
                    j["took_ms"] = json!(t.elapsed().as_secs_f64() * 1e3);
                    Reply::Json(j)
                }
                Err(e) => Reply::Error(400, e.to_string()),
            }
        }
        ["api", "grids"] => Reply::Json(json!(runs::grids(store))),
        ["api", "run", g, r] => {
            let dir = run_dir(store, g, r)?;
            json(run::detail(store, g, r, &dir))
        }
        ["api", "run", g, r, "epochs"] => {
            let dir = run_dir(store, g, r)?;
            json(run::epochs(store, r, &dir))
        }
        ["api", "run", g, r, "log"] => {
            let dir = run_dir(store, g, r)?;
            json(run::log_tail(store, &dir, number("lines", 200, 5000)?))
        }
        ["api", "run", g, r, "clusters"] => {
            let dir = run_dir(store, g, r)?;
            json(run::clusters(store, &dir))
        }
        ["api", "run", g, r, "cluster", k] => {
            let dir = run_dir(store, g, r)?;
            let k: i64 = k
                .strip_suffix(".png")
                .and_then(|k| k.parse().ok())
                .ok_or((404, format!("no cluster image {k:?}")))?;
            let n = number("n", 16, 64)?;
            match images::cluster_sheet(store, &dir, &ui.datasets, k, n) {
                Ok(png) => Reply::Png(png),
                Err(e) => e.into(),
            }
        }
        ["api", "table"] => {
            let sel = select::parse_runs(param("runs").unwrap_or(""))?;
            json(select::tables(store, &sel))
        }
        _ => Reply::Error(404, format!("no route {path}")),
    })
}
