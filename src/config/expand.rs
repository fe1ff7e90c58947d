//! Expansion of a parsed grid into cells: the cartesian product of its axes, `include` and
//! `exclude`, each cell resolved through the config layers and checked, errors located in the
//! grid file (`file:line:column`, with the cell).

use serde_json::Value;

use super::grid::{short, Cell, Grid};
use super::layers::{self, Layer, LayerError, Overrides};
use super::locate::{locate_key_text, locate_path};
use super::{run_id, RunConfig};
use crate::error::{Error, Result};

impl Grid {
    /// Expands the grid into cells, resolving each through the config layers and checking the
    /// method-independent keys ([`RunConfig::validate`]). Cells with the same run id are kept
    /// once (the first). `methods::expand` adds the method registry's checks: use it for
    /// anything that trains.
    pub fn expand(&self, overrides: &Overrides) -> Result<Vec<Cell>> {
        self.expand_checked(overrides, |_| Ok(()))
    }

    /// [`Grid::expand`] with one more check of each resolved cell, run first and located in
    /// the grid file like the config's own (the method registry passes `methods::validate`).
    pub fn expand_checked(
        &self,
        overrides: &Overrides,
        check: fn(&RunConfig) -> Result<()>,
    ) -> Result<Vec<Cell>> {
        let mut assignments: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for axis in &self.axes {
            let mut next = Vec::with_capacity(assignments.len() * axis.rows.len());
            for a in &assignments {
                for row in &axis.rows {
                    let mut cell = a.clone();
                    cell.extend(axis.keys.iter().cloned().zip(row.iter().cloned()));
                    next.push(cell);
                }
            }
            assignments = next;
        }
        if self.axes.is_empty() && !self.include.is_empty() {
            assignments.clear();
        }
        assignments.extend(self.include.iter().cloned());

        let mut cells: Vec<Cell> = Vec::new();
        for assignment in assignments {
            let mut config =
                layers::resolve_with(&self.base, &assignment, overrides, self.protocol)
                    .map_err(|e| self.located(e, &assignment))?;
            check(&config)
                .and_then(|()| config.validate())
                .and_then(|()| config.resolve_init())
                .map_err(|e| self.locate_validation(e, &assignment))?;
            let flat: Vec<(String, Value)> = layers::flatten(&serde_json::to_value(&config)?);
            if self.exclude.iter().any(|ex| matches(&flat, ex)) {
                continue;
            }
            let run_id = run_id(&config);
            if cells.iter().any(|c| c.run_id == run_id) {
                continue;
            }
            cells.push(Cell {
                index: cells.len(),
                assignment,
                config,
                run_id,
            });
        }
        if cells.is_empty() {
            return Err(Error::Config(format!(
                "{}: the grid expands to no cells (every cell excluded?)",
                self.source
            )));
        }
        Ok(cells)
    }

    /// Turns a layer error into a message with a file location.
    fn located(&self, e: LayerError, assignment: &[(String, Value)]) -> Error {
        let cell = render_assignment(assignment);
        match e.layer {
            Layer::Base => {
                let path: Vec<&str> = std::iter::once("base").chain(e.key.split('.')).collect();
                let (l, c) = locate_path(&self.text, &path)
                    .or_else(|| locate_path(&self.text, &["base"]))
                    .unwrap_or((1, 1));
                Error::Config(format!("{}:{l}:{c}: {}", self.source, e.message))
            }
            Layer::Cell => match self.locate_cell_key(&e.key, assignment) {
                Some((l, c)) => Error::Config(format!(
                    "{}:{l}:{c}: {} (in cell {cell})",
                    self.source, e.message
                )),
                None => Error::Config(format!("--set {}: {} (in cell {cell})", e.key, e.message)),
            },
            Layer::Env => {
                let var = format!(
                    "{}{}",
                    layers::ENV_PREFIX,
                    e.key.to_uppercase().replace('.', "__")
                );
                Error::Config(format!("environment variable {var}: {}", e.message))
            }
            Layer::Set => Error::Config(format!("--set {}: {}", e.key, e.message)),
        }
    }

    /// Where the axis that introduced `key` is written; `None` for an axis of the command line.
    fn locate_cell_key(&self, key: &str, assignment: &[(String, Value)]) -> Option<(usize, usize)> {
        // The axis key that introduced the bad (possibly nested) key.
        let axis_key = assignment
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| {
                key == *k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
            })
            .unwrap_or(key);
        if self.cli_axes.iter().any(|k| k == axis_key) {
            return None;
        }
        Some(locate_key_text(&self.text, axis_key, 1).unwrap_or((1, 1)))
    }

    fn locate_validation(&self, e: Error, assignment: &[(String, Value)]) -> Error {
        let Error::Config(msg) = e else { return e };
        // The message starts with "invalid value for `key`".
        let key = msg
            .split('`')
            .nth(1)
            .unwrap_or("")
            .split(" / ")
            .next()
            .unwrap_or("")
            .to_string();
        let from_cell = assignment
            .iter()
            .any(|(k, _)| *k == key || key.starts_with(&format!("{k}.")));
        let loc = if from_cell {
            self.locate_cell_key(&key, assignment)
        } else {
            let path: Vec<&str> = std::iter::once("base").chain(key.split('.')).collect();
            locate_path(&self.text, &path)
        };
        let cell = render_assignment(assignment);
        match loc {
            Some((l, c)) => {
                Error::Config(format!("{}:{l}:{c}: {msg} (in cell {cell})", self.source))
            }
            None => Error::Config(format!(
                "{}: {msg} (in cell {cell}; set by defaults, environment or --set)",
                self.source
            )),
        }
    }
}

fn render_assignment(a: &[(String, Value)]) -> String {
    if a.is_empty() {
        return "<base>".into();
    }
    a.iter()
        .map(|(k, v)| format!("{k}={}", short(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when every key of the partial assignment equals the cell's resolved value.
fn matches(flat: &[(String, Value)], partial: &[(String, Value)]) -> bool {
    partial.iter().all(|(k, want)| {
        flat.iter()
            .filter(|(fk, _)| fk == k || fk.starts_with(&format!("{k}.")))
            .any(|(fk, have)| {
                if fk == k {
                    values_equal(have, want)
                } else {
                    // A partial over a section: compare the nested value.
                    want.pointer(&format!("/{}", fk[k.len() + 1..].replace('.', "/")))
                        .is_some_and(|w| values_equal(have, w))
                }
            })
    })
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}
