//! `clusterlab diff`: how two recorded runs differ, key by key of their resolved configs, and
//! in their provenance (commit, host, device, ...).

use std::io::Write;

use crate::config::layers::flatten;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::store::{find_run, read_provenance, Store, CONFIG_FILE};

/// Provenance fields compared by [`diff`], in the order printed.
const PROVENANCE_KEYS: &[&str] = &[
    "git_commit",
    "git_dirty",
    "clusterlab_version",
    "host",
    "cpu",
    "threads",
    "device",
    "started_at",
];

/// Writes the config keys that differ between runs `a` and `b` (`key: a → b`) and their
/// provenance side by side.
pub fn diff(store: &Store, a: &str, b: &str, out: &mut dyn Write) -> Result<()> {
    let (ga, da) = find_run(store, a)?;
    let (gb, db) = find_run(store, b)?;
    let fa = flatten(&serde_json::to_value(RunConfig::read(
        &da.join(CONFIG_FILE),
    )?)?);
    let fb = flatten(&serde_json::to_value(RunConfig::read(
        &db.join(CONFIG_FILE),
    )?)?);
    let mut keys: Vec<&String> = fa.iter().chain(fb.iter()).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let get = |f: &Vec<(String, serde_json::Value)>, k: &str| {
        f.iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| "–".into())
    };
    let mut say = |s: String| writeln!(out, "{s}").map_err(|e| Error::io("stdout", e));
    say(format!("{a} (grid {ga}) vs {b} (grid {gb})"))?;
    say("config:".into())?;
    let mut n = 0;
    for k in keys {
        let (x, y) = (get(&fa, k), get(&fb, k));
        if x != y {
            n += 1;
            say(format!("  {k}: {x} → {y}"))?;
        }
    }
    if n == 0 {
        say("  (identical)".into())?;
    }
    say("provenance:".into())?;
    let pa = serde_json::to_value(read_provenance(&da).unwrap_or_default())?;
    let pb = serde_json::to_value(read_provenance(&db).unwrap_or_default())?;
    for k in PROVENANCE_KEYS {
        let (x, y) = (pa[k].to_string(), pb[k].to_string());
        let change = if x != y {
            format!(" → {y}")
        } else {
            String::new()
        };
        say(format!("  {k}: {x}{change}"))?;
    }
    if pa["git_diff"] != pb["git_diff"] {
        say("  git_diff: differs (see each run's provenance.json)".into())?;
    }
    Ok(())
}
