//! Small statistics for reports: mean ± sample std, and Welch's unequal-variance t-test.
//!
//! The two-sided p-value comes from the Student-t distribution,
//! `p = I_{ν/(ν+t²)}(ν/2, 1/2)`, where `I` is the regularized incomplete beta function,
//! `statrs::function::beta::beta_reg` (a continued fraction, as the hand-written one it
//! replaced). Results agree with `scipy.stats.ttest_ind(a, b, equal_var=False)` to 3.0e-14
//! relative on the 12 cases of `tests/fixtures/welch.json` (`welch.py`), p down to 2.6e-55; the
//! test asks for 1e-9. Measured before the switch, against the exact tails of ν = 1 and 2 over
//! 1e-9 ≤ |t| ≤ 1e4: within 1e-9 except for |t| < 5e-8, where ν/(ν+t²) is within 1e-15 of 1
//! and statrs returns p = 1 for a true p above 1 − 4e-8 (the old code kept 1e-15 there); a
//! report only asks whether p < 0.05. Built without default features, statrs adds two crates
//! (statrs, approx), about 2 s of compilation.

use statrs::function::beta::checked_beta_reg;

/// Result of Welch's t-test of `mean(a) = mean(b)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// The t statistic `(mean(a) − mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)`; positive when `a`
    /// has the larger mean.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom (not necessarily an integer).
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Mean and sample standard deviation (ddof = 1) of `x`.
///
/// The std is `None` for fewer than two values; the mean of an empty slice is NaN.
pub fn mean_std(x: &[f64]) -> (f64, Option<f64>) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, None);
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, None);
    }
    (mean, Some(sample_var(x, mean).sqrt()))
}

/// Two-pass sample variance (ddof = 1) around a known mean.
fn sample_var(x: &[f64], mean: f64) -> f64 {
    x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (x.len() - 1) as f64
}

/// Welch's unequal-variance t-test between two samples (two-sided).
///
/// Returns `None` when either sample has fewer than two values, when any value is not finite,
/// or when both samples have zero variance (the statistic is undefined).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    if a.len() < 2 || b.len() < 2 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (mean_std(a).0, mean_std(b).0);
    let va = sample_var(a, ma) / na;
    let vb = sample_var(b, mb) / nb;
    let se2 = va + vb;
    if se2 <= 0.0 {
        return None;
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    Some(Welch {
        t,
        df,
        p: student_t_two_sided(t, df),
    })
}

/// Two-sided tail probability `P(|T| ≥ |t|)` of a Student-t variable with `df` degrees of freedom
/// (NaN when `df` is not positive).
fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if t.is_infinite() {
        return 0.0;
    }
    let x = df / (df + t * t);
    checked_beta_reg(0.5 * df, 0.5, x).map_or(f64::NAN, |p| p.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        a: Vec<f64>,
        b: Vec<f64>,
        t: f64,
        df: f64,
        p: f64,
    }

    fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
        (got - want).abs() <= abs.max(rel * want.abs())
    }

    #[test]
    fn welch_matches_scipy_fixture() {
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../../tests/fixtures/welch.json")).unwrap();
        assert!(cases.len() >= 12, "fixture has {} cases", cases.len());
        for c in &cases {
            let w = welch(&c.a, &c.b).unwrap_or_else(|| panic!("{}: no result", c.name));
            assert!(
                close(w.t, c.t, 1e-9, 0.0),
                "{}: t {} vs {}",
                c.name,
                w.t,
                c.t
            );
            assert!(
                close(w.df, c.df, 1e-9, 0.0),
                "{}: df {} vs {}",
                c.name,
                w.df,
                c.df
            );
            assert!(
                close(w.p, c.p, 1e-9, 1e-12),
                "{}: p {} vs {}",
                c.name,
                w.p,
                c.p
            );
            // The t-test is antisymmetric in its arguments.
            let r = welch(&c.b, &c.a).unwrap();
            assert_eq!(r.t, -w.t, "{}", c.name);
            assert!(close(r.p, w.p, 1e-12, 0.0), "{}", c.name);
        }
        // Tiny p-values keep their relative precision too (scipy: 1.18e-17 and 2.6e-55).
        for name in ["large_effect", "huge_effect"] {
            let c = cases.iter().find(|c| c.name == name).unwrap();
            let w = welch(&c.a, &c.b).unwrap();
            assert!(
                c.p < 1e-12 && close(w.p, c.p, 1e-9, 0.0),
                "{name}: {} vs {}",
                w.p,
                c.p
            );
        }
        // p near 0.05 lands on the right side of the threshold.
        let c = cases.iter().find(|c| c.name == "p_near_0.05").unwrap();
        let w = welch(&c.a, &c.b).unwrap();
        assert_eq!(w.p < 0.05, c.p < 0.05);
    }

    #[test]
    fn welch_hand_computed() {
        // a = [1..5], b = [2..6]: equal variances 2.5, t = -1 / sqrt(1) = -1, df = 8.
        let w = welch(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert!((w.t + 1.0).abs() < 1e-15);
        assert!((w.df - 8.0).abs() < 1e-12);
        // t-distribution table: P(|T_8| ≥ 1) = 0.346593507087...
        assert!((w.p - 0.346_593_507_087).abs() < 1e-11, "{}", w.p);
        // Identical samples: t = 0, p = 1.
        let w = welch(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((w.t, w.p), (0.0, 1.0));
    }

    #[test]
    fn welch_undefined_cases() {
        assert_eq!(welch(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(welch(&[1.0, 2.0], &[]), None);
        assert_eq!(welch(&[1.0, 1.0], &[2.0, 2.0, 2.0]), None);
        assert_eq!(welch(&[1.0, f64::NAN], &[2.0, 3.0]), None);
        // One constant sample is fine.
        assert!(welch(&[1.0, 1.0], &[2.0, 3.0]).is_some());
    }

    #[test]
    fn mean_std_values() {
        assert!(mean_std(&[]).0.is_nan());
        assert_eq!(mean_std(&[]).1, None);
        assert_eq!(mean_std(&[0.5]), (0.5, None));
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        // Sum of squared deviations 32, n − 1 = 7.
        assert!((s.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn student_t_tails() {
        // Cauchy (df = 1): P(|T| ≥ 1) = 0.5. df = 2: P(|T| ≥ t) = 1 − t / sqrt(2 + t²).
        assert!((student_t_two_sided(1.0, 1.0) - 0.5).abs() < 1e-14);
        for t in [0.1f64, 1.0, 4.0, 30.0] {
            let s = (2.0 + t * t).sqrt();
            let exact = 2.0 / (s * (s + t)); // = 1 − t/s without cancellation
            let p = student_t_two_sided(t, 2.0);
            assert!(
                (p - exact).abs() <= 1e-13 * exact,
                "t = {t}: {p} vs {exact}"
            );
            assert_eq!(student_t_two_sided(-t, 2.0), p);
        }
        assert_eq!(student_t_two_sided(0.0, 5.0), 1.0);
        assert_eq!(student_t_two_sided(f64::INFINITY, 5.0), 0.0);
        assert!(student_t_two_sided(1.0, 0.0).is_nan());
    }
}
