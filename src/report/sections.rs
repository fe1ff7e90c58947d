//! Sections derived from the summary table: the ablation deltas against a grid's baseline row
//! and the published-vs-reproduced comparison (the papers' numbers beside runs of their
//! protocol).

use super::stats::welch;
use super::table::*;

impl Table {
    /// The row matching a baseline assignment (keys among the row keys; numbers compared as
    /// numbers).
    pub fn find_row(&self, baseline: &[(String, serde_json::Value)]) -> Option<usize> {
        let same = |have: &str, want: &serde_json::Value| match (have.parse::<f64>(), want.as_f64())
        {
            (Ok(a), Some(b)) => a == b,
            _ => want.as_str().map_or_else(
                || {
                    serde_json::from_str::<serde_json::Value>(have)
                        .ok()
                        .as_ref()
                        == Some(want)
                },
                |w| w == have,
            ),
        };
        (0..self.rows.len()).find(|&r| {
            baseline.iter().all(|(k, v)| {
                // Loss weights are reported as their effective value, `weight.<term>`.
                let k = k
                    .strip_prefix("method.weights.")
                    .map_or_else(|| k.clone(), |t| format!("weight.{t}"));
                self.row_keys
                    .iter()
                    .position(|rk| *rk == k)
                    .is_some_and(|i| same(&self.rows[r][i], v))
            })
        })
    }

    /// The ablation table: each row's Δ against the baseline row per column, `*` when
    /// significant (Welch, p < 0.05). `None` without a baseline (or when no row matches it).
    pub fn ablation_markdown(&self, baseline: &[(String, serde_json::Value)]) -> Option<String> {
        if baseline.is_empty() {
            return None;
        }
        let Some(b) = self.find_row(baseline) else {
            let want: Vec<String> = baseline.iter().map(|(k, v)| format!("{k}={v}")).collect();
            return Some(format!("### Ablation\n\nNo row matches the baseline {} (the keys must vary in the grid).\n", want.join(" ")));
        };
        let mut out = format!(
            "### Ablation: Δ against the baseline ({})\n\n",
            self.rows[b].join(" ")
        );
        let header = self.header();
        out.push_str(&format!(
            "| {} |\n|{}\n",
            header.join(" | "),
            self.alignment(header.len())
        ));
        for (r, row) in self.rows.iter().enumerate() {
            let mut cells = row.clone();
            for (c, cell) in self.cells[r].iter().enumerate() {
                cells.push(match (cell, &self.cells[b][c]) {
                    _ if r == b => "baseline".into(),
                    (Some(x), Some(base)) => {
                        let sig = welch(&x.values, &base.values).is_some_and(|w| w.p < 0.05);
                        format!("{:+.3}{}", x.mean - base.mean, if sig { " *" } else { "" })
                    }
                    _ => "–".into(),
                });
            }
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push_str("\nΔ = variant mean − baseline mean; \\* significant (Welch's t-test over seeds, p < 0.05).\n");
        Some(out)
    }

    /// Published numbers beside ours, for every (method, dataset) the built-in table knows,
    /// where our runs ran the published number's protocol; the others are listed with the
    /// protocol items that differ (or that the source leaves unknown).
    pub fn published_markdown(&self) -> Option<String> {
        let mi = self.row_keys.iter().position(|k| k == "method.name")?;
        let mut lines = Vec::new();
        let mut differ = Vec::new();
        for (r, row) in self.rows.iter().enumerate() {
            for (g, group) in self.groups.iter().enumerate() {
                let dataset = group.split(' ').next().unwrap_or(group);
                let run = self
                    .protocols
                    .get(r)
                    .and_then(|x| x.get(g))
                    .cloned()
                    .flatten();
                let backbone = run.as_ref().map_or("", |r| r.backbone.as_str());
                let Some(p) = super::published::lookup(&row[mi], dataset, backbone) else {
                    continue;
                };
                let diffs = match run {
                    Some(mut run) => {
                        if matches!(self.epoch, super::EpochSel::Best(_)) {
                            run.epoch = "best by label".into();
                        } else if self.epoch == super::EpochSel::Final {
                            run.epoch = "final".into();
                        }
                        p.protocol.differences(&run, dataset)
                    }
                    None => vec!["our runs' protocol is not recorded in their results".into()],
                };
                if !diffs.is_empty() {
                    differ.push(format!(
                        "| {} | {group} | {} | {} |",
                        row.join(" "),
                        p.source,
                        diffs.join("; ")
                    ));
                    continue;
                }
                for (m, (name, label)) in self.metrics.iter().enumerate() {
                    let published = match *name {
                        "nmi" => p.nmi,
                        "acc" => p.acc,
                        "ari" => p.ari,
                        _ => None,
                    };
                    let (Some(pv), Some(ours)) =
                        (published, &self.cells[r][g * self.metrics.len() + m])
                    else {
                        continue;
                    };
                    lines.push(format!(
                        "| {} | {group} | {label} | {pv:.3} | {} | {:+.3} | {} | {} |",
                        row.join(" "),
                        ours.render(),
                        ours.mean - pv,
                        p.source,
                        p.protocol.render()
                    ));
                }
            }
        }
        if lines.is_empty() && differ.is_empty() {
            return None;
        }
        let mut out = String::from("### Published vs reproduced\n\n");
        if lines.is_empty() {
            out.push_str("No row of this table ran the protocol of a published number.\n");
        } else {
            out.push_str(&format!(
                "| row | dataset | metric | published | ours | gap | source | protocol (published = ours) |\n|---|---|---|---:|---:|---:|---|---|\n{}\n\nGap = our mean − the published value, shown only where our runs ran the published number's protocol (images trained and scored on, image size, epoch rule; `merged`: the dataset's train+test, or train for the ImageNet subsets and Tiny-ImageNet; `best by label`: the epoch chosen with the labels).\n",
                lines.join("\n")
            ));
        }
        if !differ.is_empty() {
            out.push_str(&format!(
                "\nNot compared: our runs differ from the published protocol (the `<dataset>` grids run CC's and the anchor code's protocols, the `-fast` grids do not; docs/methods.md).\n\n| row | dataset | source | differs in |\n|---|---|---|---|\n{}\n",
                differ.join("\n")
            ));
        }
        Some(out)
    }
}
