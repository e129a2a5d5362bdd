//! The machine-readable line every benchmark prints per headline figure, which `make bench`
//! (`scripts/bench.sh`) collects into one table:
//!
//! ```text
//! BENCH {"stage":"plan","figure":"µs per founding plan","value":412.0,"baseline":"config parse + validate, µs","baseline_value":350.0,"ratio":1.18}
//! ```
//!
//! `ratio` is `value / baseline_value`; a figure whose better direction is down says so in its
//! text ("ms", "s", "lower is better").

use serde::Serialize;

/// One headline figure of a benchmark against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchLine {
    /// The pipeline stage: plan, mirror, search, store, curate, split, scrape, train, eval, report.
    pub stage: String,
    /// What is measured, with its unit.
    pub figure: String,
    pub value: Option<f64>,
    /// What the baseline is, with its unit.
    pub baseline: String,
    pub baseline_value: Option<f64>,
    /// `value / baseline_value`.
    pub ratio: Option<f64>,
}

impl BenchLine {
    /// A figure and its baseline; the ratio is computed. Non-finite numbers become `null`.
    pub fn new(
        stage: &str,
        figure: &str,
        value: f64,
        baseline: &str,
        baseline_value: Option<f64>,
    ) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        let value = finite(value);
        let baseline_value = baseline_value.and_then(finite);
        let ratio = match (value, baseline_value) {
            (Some(v), Some(b)) if b != 0.0 => finite(v / b),
            _ => None,
        };
        Self {
            stage: stage.into(),
            figure: figure.into(),
            value,
            baseline: baseline.into(),
            baseline_value,
            ratio,
        }
    }
}

impl std::fmt::Display for BenchLine {
    /// `BENCH {json}`, one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        write!(f, "BENCH {json}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_bench_and_one_json_object_with_the_ratio() {
        let line =
            BenchLine::new("plan", "µs \"per\" plan", 3.0, "parse, µs", Some(2.0)).to_string();
        assert!(
            line.starts_with("BENCH {") && !line.contains('\n'),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line["BENCH ".len()..]).unwrap();
        assert_eq!(v["stage"], "plan");
        assert_eq!(v["figure"], "µs \"per\" plan");
        assert_eq!(v["ratio"], 1.5);
        let none = BenchLine::new("x", "y", f64::NAN, "z", None).to_string();
        let v: serde_json::Value = serde_json::from_str(&none["BENCH ".len()..]).unwrap();
        assert!(v["value"].is_null() && v["baseline_value"].is_null() && v["ratio"].is_null());
    }
}
