//! Golden cross-checks: JSON cases (inputs, expected value, tolerance) computed by an independent
//! implementation (`tests/golden/generate.py`, NumPy/scikit-learn), evaluated by our code.
//!
//! ```json
//! {"name": "cc-instance-small", "method": "cc", "term": "instance", "params": {"tau": 0.5},
//!  "inputs": {"z_a": [[...]], "z_b": [[...]]}, "expected": 1.2561, "tolerance": 1e-4}
//! ```

use candle_core::{Device, Tensor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::run::{Regularizer, Similarity};
use crate::error::{Error, Result};
use crate::eval::{accuracy, accuracy_majority, adjusted_rand_index, normalized_mutual_info};
use crate::methods::losses::{cluster_contrastive, entropy_term, instance_nt_xent, scalar};
use crate::methods::{anchor, cdc, drc};

/// Every supported (method, term) pair, for the error message of an unsupported one.
pub const SUPPORTED: &str = "metric/nmi|acc|ari|acc_majority, cc/instance|cluster_contrastive|entropy|total, \
anchor/student_t|cluster|anchor|total, drc/assignment_feature|assignment_probability|regularizer|total, \
cdc/sinkhorn|weighted_negative_infonce|contrastive|equipartition|total";

/// One golden case.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    pub method: String,
    pub term: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub inputs: BTreeMap<String, Value>,
    pub expected: Value,
    pub tolerance: f64,
}

/// The outcome of evaluating one case.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub file: PathBuf,
    pub name: String,
    pub computed: Value,
    pub expected: Value,
    pub max_abs_err: f64,
    pub pass: bool,
}

impl Case {
    fn param(&self, key: &str) -> Result<f64> {
        self.params.get(key).and_then(Value::as_f64).ok_or_else(|| {
            Error::BadInput(format!("case {}: missing number param `{key}`", self.name))
        })
    }

    fn text(&self, key: &str) -> Result<&str> {
        self.params.get(key).and_then(Value::as_str).ok_or_else(|| {
            Error::BadInput(format!("case {}: missing string param `{key}`", self.name))
        })
    }

    fn similarity(&self) -> Result<Similarity> {
        match self.text("similarity")? {
            "dot" => Ok(Similarity::Dot),
            "cosine" => Ok(Similarity::Cosine),
            other => Err(Error::BadInput(format!(
                "case {}: param `similarity` = {other:?}; expected dot or cosine",
                self.name
            ))),
        }
    }

    fn regularizer(&self) -> Result<Regularizer> {
        match self.text("form")? {
            "squared" => Ok(Regularizer::Squared),
            "entropy" => Ok(Regularizer::Entropy),
            other => Err(Error::BadInput(format!(
                "case {}: param `form` = {other:?}; expected squared or entropy",
                self.name
            ))),
        }
    }

    fn count(&self, key: &str) -> Result<usize> {
        self.params
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| {
                Error::BadInput(format!("case {}: missing integer param `{key}`", self.name))
            })
    }

    fn labels(&self, key: &str) -> Result<Vec<i64>> {
        serde_json::from_value(self.inputs.get(key).cloned().unwrap_or(Value::Null)).map_err(|e| {
            Error::BadInput(format!(
                "case {}: input `{key}` must be a list of integers: {e}",
                self.name
            ))
        })
    }

    fn matrix(&self, key: &str) -> Result<Tensor> {
        let rows: Vec<Vec<f32>> = serde_json::from_value(
            self.inputs.get(key).cloned().unwrap_or(Value::Null),
        )
        .map_err(|e| {
            Error::BadInput(format!(
                "case {}: input `{key}` must be a matrix (list of rows): {e}",
                self.name
            ))
        })?;
        let (n, d) = (rows.len(), rows.first().map_or(0, |r| r.len()));
        if n == 0 || rows.iter().any(|r| r.len() != d) {
            return Err(Error::BadInput(format!(
                "case {}: input `{key}` is empty or ragged",
                self.name
            )));
        }
        Ok(Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu)?)
    }

    /// Computes the case's value with clusterlab's implementation.
    pub fn compute(&self) -> Result<Value> {
        let num = |x: f64| Ok(Value::from(x));
        let matrix = |t: Tensor| -> Result<Value> {
            let rows: Vec<Vec<f64>> = t.to_dtype(candle_core::DType::F64)?.to_vec2()?;
            Ok(serde_json::to_value(rows)?)
        };
        let s = |t: Result<Tensor>| -> Result<f64> { scalar(&t?) };
        match (self.method.as_str(), self.term.as_str()) {
            ("metric", "nmi") => num(normalized_mutual_info(
                &self.labels("y_true")?,
                &self.labels("y_pred")?,
            )),
            ("metric", "acc") => num(accuracy(&self.labels("y_true")?, &self.labels("y_pred")?)),
            ("metric", "acc_majority") => num(accuracy_majority(
                &self.labels("y_true")?,
                &self.labels("y_pred")?,
            )),
            ("metric", "ari") => num(adjusted_rand_index(
                &self.labels("y_true")?,
                &self.labels("y_pred")?,
            )),
            ("cc", "instance") => num(scalar(&instance_nt_xent(
                &self.matrix("z_a")?,
                &self.matrix("z_b")?,
                self.param("tau")?,
            )?)?),
            ("cc", "cluster_contrastive") => num(scalar(&cluster_contrastive(
                &self.matrix("y_a")?,
                &self.matrix("y_b")?,
                self.param("tau")?,
            )?)?),
            ("cc", "entropy") => num(scalar(&entropy_term(
                &self.matrix("y_a")?,
                &self.matrix("y_b")?,
            )?)?),
            ("cc", "total") => {
                let (y_a, y_b) = (self.matrix("y_a")?, self.matrix("y_b")?);
                let i = scalar(&instance_nt_xent(
                    &self.matrix("z_a")?,
                    &self.matrix("z_b")?,
                    self.param("tau_instance")?,
                )?)?;
                let c = scalar(&cluster_contrastive(
                    &y_a,
                    &y_b,
                    self.param("tau_cluster")?,
                )?)?;
                let e = scalar(&entropy_term(&y_a, &y_b)?)?;
                num(i + c + e)
            }
            ("anchor", "student_t") => matrix(anchor::student_t(
                &self.matrix("h")?,
                &self.matrix("centers")?,
                self.param("alpha")?,
            )?),
            ("anchor", "cluster") => {
                let q = anchor::student_t(
                    &self.matrix("h_clean")?,
                    &self.matrix("centers")?,
                    self.param("alpha")?,
                )?;
                num(s(anchor::dec_cluster_loss(&q))?)
            }
            ("anchor", "anchor") | ("anchor", "total") => {
                let (mu, alpha) = (self.matrix("centers")?, self.param("alpha")?);
                let q = |k: &str| anchor::student_t(&self.matrix(k)?, &mu, alpha);
                let (q_c, q_a, q_b) = (q("h_clean")?, q("h_a")?, q("h_b")?);
                let anc = s(anchor::anchor_loss(&q_c, &q_a, &q_b))?;
                if self.term == "anchor" {
                    return num(anc);
                }
                let inst = s(instance_nt_xent(
                    &self.matrix("z_a")?,
                    &self.matrix("z_b")?,
                    self.param("tau_instance")?,
                ))?;
                num(inst + s(anchor::dec_cluster_loss(&q_c))? + anc)
            }
            ("drc", "assignment_feature") => num(s(drc::assignment_feature_loss(
                &self.matrix("f_a")?,
                &self.matrix("f_b")?,
                self.param("tau")?,
                self.similarity()?,
            ))?),
            ("drc", "assignment_probability") => num(s(drc::assignment_probability_loss(
                &self.matrix("p_a")?,
                &self.matrix("p_b")?,
                self.param("tau")?,
                self.similarity()?,
            ))?),
            ("drc", "regularizer") => {
                let form = self.regularizer()?;
                let mut v = s(drc::cluster_regularizer(&self.matrix("p_a")?, form))?;
                if self.inputs.contains_key("p_b") {
                    v += s(drc::cluster_regularizer(&self.matrix("p_b")?, form))?;
                }
                num(v)
            }
            ("drc", "total") => {
                // Inputs: the two views' logits; p = softmax(f); weights: 1, 1, lambda.
                let (f_a, f_b) = (self.matrix("f_a")?, self.matrix("f_b")?);
                let (p_a, p_b) = (
                    crate::methods::losses::softmax_rows(&f_a)?,
                    crate::methods::losses::softmax_rows(&f_b)?,
                );
                let (tau, sim, form) =
                    (self.param("tau")?, self.similarity()?, self.regularizer()?);
                let af = s(drc::assignment_feature_loss(&f_a, &f_b, tau, sim))?;
                let ap = s(drc::assignment_probability_loss(&p_a, &p_b, tau, sim))?;
                // `views`: "first" (GCC's AGCLoss) or, when absent, "both".
                let mut reg = s(drc::cluster_regularizer(&p_a, form))?;
                if self.params.get("views").and_then(Value::as_str) != Some("first") {
                    reg += s(drc::cluster_regularizer(&p_b, form))?;
                }
                num(af + ap + self.param("lambda")? * reg)
            }
            ("cdc", "sinkhorn") => matrix(cdc::sinkhorn(
                &self.matrix("scores")?,
                self.param("epsilon")?,
                self.count("iterations")?,
            )?),
            ("cdc", "weighted_negative_infonce") => num(s(cdc::weighted_negative_infonce(
                &self.matrix("s_pos")?,
                &self.matrix("s_neg")?,
                &self.matrix("w_neg")?,
                self.param("tau")?,
            ))?),
            ("cdc", "contrastive") => num(s(cdc::disentangled_contrastive(
                &self.matrix("c_a")?,
                &self.matrix("c_b")?,
                &self.matrix("g_a")?,
                &self.matrix("g_b")?,
                self.param("tau")?,
            ))?),
            ("cdc", "equipartition") => num(s(cdc::swapped_prediction(
                &self.matrix("l_a")?,
                &self.matrix("l_b")?,
                self.param("tau_c")?,
                self.param("epsilon")?,
                self.count("iterations")?,
            ))?),
            ("cdc", "total") => {
                // Inputs: logits and instance projections of both views, as the method sees them.
                let (l_a, l_b) = (self.matrix("l_a")?, self.matrix("l_b")?);
                let tau_c = self.param("tau_c")?;
                let c = |l: &Tensor| crate::methods::losses::softmax_rows(&(l / tau_c)?);
                let con = s(cdc::disentangled_contrastive(
                    &c(&l_a)?,
                    &c(&l_b)?,
                    &self.matrix("g_a")?,
                    &self.matrix("g_b")?,
                    self.param("tau")?,
                ))?;
                let eq = s(cdc::swapped_prediction(
                    &l_a,
                    &l_b,
                    tau_c,
                    self.param("epsilon")?,
                    self.count("iterations")?,
                ))?;
                num(con + eq)
            }
            (m, t) => Err(Error::BadInput(format!(
                "case {}: unsupported (method, term) = ({m}, {t}); supported: {SUPPORTED}",
                self.name
            ))),
        }
    }
}

/// Largest absolute difference between two numbers or nested lists of numbers.
fn max_abs_err(a: &Value, b: &Value) -> Option<f64> {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .map(|(p, q)| max_abs_err(p, q))
            .try_fold(0f64, |acc, e| e.map(|e| acc.max(e))),
        _ => Some((a.as_f64()? - b.as_f64()?).abs()),
    }
}

/// Reads and evaluates one case file.
pub fn check_file(path: &Path) -> Result<Verdict> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let case: Case = serde_json::from_str(&text).map_err(|e| {
        Error::BadInput(format!(
            "{}:{}:{}: not a golden case: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let computed = case.compute()?;
    let err = max_abs_err(&computed, &case.expected).unwrap_or(f64::INFINITY);
    Ok(Verdict {
        file: path.to_path_buf(),
        name: case.name.clone(),
        pass: err <= case.tolerance,
        computed,
        expected: case.expected,
        max_abs_err: err,
    })
}

/// Expands paths (files, or folders holding `*.json`) into case files, sorted.
pub fn case_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| Error::io(p, e))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::BadInput(format!(
                "{}: no such golden case file or folder",
                p.display()
            )));
        }
    }
    Ok(out)
}
