//! When the data supports a change: the one rule behind `compare`, the `history` gate and the
//! capacity search's repeats.
//!
//! A metric on each side is an [`Estimate`]: its value and the standard error of that value,
//! either from **batch means** (the run's measured window cut into [`BATCHES`] equal time
//! batches; the spread of the metric over the batches, divided by √batches: this keeps the
//! autocorrelation of consecutive requests out of the error) or, when a side holds several
//! measurements of the same recipe, from the **spread of the repeats** (which also holds the
//! run-to-run noise of the machine).
//!
//! A change is
//! - **no change** when it stays within the metric's allowance: its limit (`10%` of the
//!   baseline, or an absolute `+5ms`), but never less than the metric's absolute floor (by
//!   default [`DEFAULT_MS_FLOOR`] for millisecond metrics, so that a 0.2 ms p50 moving by
//!   0.03 ms is never a regression unless asked for);
//! - a **regression** (or an **improvement**) when it exceeds the allowance *and* the 95 %
//!   Student-t interval of candidate − baseline (Welch's degrees of freedom) excludes zero;
//! - **inconclusive** when it exceeds the allowance but the interval includes zero: the runs
//!   are too short or too noisy to tell. [`Judgement::more_data_factor`] says how much more
//!   data (longer runs, or more repeats) would make an interval that narrow.

use crate::capacity::t95;
use crate::recipe::threshold::{Better, Limit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Time batches of a run's measured window for the batch-means standard error.
pub const BATCHES: usize = 20;
/// Fewest batches (or repeats) with a value for a standard error to be given.
pub const MIN_BATCHES: usize = 8;
/// Default absolute floor of every millisecond metric's allowance, in ms.
pub const DEFAULT_MS_FLOOR: f64 = 0.05;

/// Where a standard error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Batch means over time batches of one measurement (the count of batches with a value).
    Batches,
    /// The spread of several measurements of the same recipe (the count of repeats).
    Repeats,
}

/// A metric's value on one side with its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    pub value: f64,
    /// Standard error of `value`; `None` when the data gives none (too few batches, a report
    /// written before intervals were recorded).
    pub stderr: Option<f64>,
    pub basis: Basis,
    /// Batches or repeats behind `stderr`.
    pub n: u32,
}

impl Estimate {
    /// A value without a standard error.
    pub fn bare(value: f64) -> Estimate {
        Estimate {
            value,
            stderr: None,
            basis: Basis::Batches,
            n: 0,
        }
    }

    /// Mean and standard error of repeated measurements (`None` for no value; no standard
    /// error below two repeats).
    pub fn from_repeats(values: &[f64]) -> Option<Estimate> {
        let (mean, sd) = mean_sd(values)?;
        Some(Estimate {
            value: mean,
            stderr: (values.len() >= 2).then(|| sd / (values.len() as f64).sqrt()),
            basis: Basis::Repeats,
            n: values.len() as u32,
        })
    }

    fn dof(&self) -> f64 {
        (self.n.max(1) - 1) as f64
    }
}

/// A stored batch-means spread of one metric (see [`super::model::ServiceAggregate`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Spread {
    /// Standard error of the metric (batch means).
    pub stderr: f64,
    /// Batches with a value.
    pub batches: u32,
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

/// The batch-means spread of per-batch values of a metric (`None` below [`MIN_BATCHES`]).
pub fn batch_spread(batch_values: &[f64]) -> Option<Spread> {
    if batch_values.len() < MIN_BATCHES {
        return None;
    }
    let (_, sd) = mean_sd(batch_values)?;
    Some(Spread {
        stderr: sd / (batch_values.len() as f64).sqrt(),
        batches: batch_values.len() as u32,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    NoChange,
    Improvement,
    Regression,
    /// Beyond the allowance, but the interval includes zero.
    Inconclusive,
    /// No limit for this metric: shown only.
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The change allowed in the worse direction (limit and floor), in the metric's unit.
    pub allowed: Option<f64>,
    /// 95 % interval of candidate − baseline, in the metric's unit (when both sides have a
    /// standard error).
    pub change_low: Option<f64>,
    pub change_high: Option<f64>,
    /// Inconclusive only: about this many times the data (run length, or repeats) would make
    /// the interval narrow enough to tell a change of this size.
    pub more_data_factor: Option<f64>,
}

/// The allowed worsening for `limit` at baseline `b`, never below `floor` for a relative
/// limit (an explicit absolute limit is the user's own and stands as given).
pub fn allowance(limit: Limit, floor: f64, b: f64) -> Option<f64> {
    match limit {
        Limit::Relative(f) => Some((f * b.abs()).max(floor)),
        Limit::Absolute(a) => Some(a),
        Limit::Off => None,
    }
}

/// Judge `cand` against `base` for a metric where `better` is the good direction, with the
/// worsening `allowed` (see [`allowance`]; `None`: no limit).
pub fn judge(better: Better, allowed: Option<f64>, base: &Estimate, cand: &Estimate) -> Judgement {
    let d = cand.value - base.value;
    let worse = match better {
        Better::Lower => d,
        Better::Higher => -d,
    };
    let ci = match (base.stderr, cand.stderr) {
        (Some(sb), Some(sc)) => {
            let se = (sb * sb + sc * sc).sqrt();
            let t = if se > 0.0 {
                // Welch–Satterthwaite degrees of freedom.
                let (vb, vc) = (sb * sb, sc * sc);
                let num = (vb + vc).powi(2);
                let den = term(vb, base.dof()) + term(vc, cand.dof());
                let dof = if den > 0.0 { num / den } else { f64::INFINITY };
                t95(dof.floor().clamp(1.0, 1e6) as usize)
            } else {
                0.0
            };
            Some((d - t * se, d + t * se, t * se))
        }
        _ => None,
    };
    let mut j = Judgement {
        verdict: Verdict::Info,
        allowed,
        change_low: ci.map(|c| c.0),
        change_high: ci.map(|c| c.1),
        more_data_factor: None,
    };
    let Some(allowed) = allowed else {
        return j;
    };
    if worse.abs() <= allowed + 1e-12 {
        j.verdict = Verdict::NoChange;
        return j;
    }
    let supported = ci.is_some_and(|(lo, hi, _)| if d > 0.0 { lo > 0.0 } else { hi < 0.0 });
    j.verdict = if !supported {
        j.more_data_factor = ci.map(|(_, _, half)| (half / d.abs()).powi(2).max(1.0));
        Verdict::Inconclusive
    } else if worse > 0.0 {
        Verdict::Regression
    } else {
        Verdict::Improvement
    };
    j
}

fn term(var: f64, dof: f64) -> f64 {
    if dof > 0.0 {
        var * var / dof
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(value: f64, stderr: f64, n: u32) -> Estimate {
        Estimate {
            value,
            stderr: Some(stderr),
            basis: Basis::Batches,
            n,
        }
    }

    #[test]
    fn a_supported_change_beyond_the_limit_is_a_regression() {
        let j = judge(
            Better::Lower,
            Some(1.0),
            &est(10.0, 0.1, 20),
            &est(13.0, 0.1, 20),
        );
        assert_eq!(j.verdict, Verdict::Regression);
        assert!(j.change_low.unwrap() > 2.5 && j.change_high.unwrap() < 3.5);
        let j = judge(
            Better::Higher,
            Some(1.0),
            &est(10.0, 0.1, 20),
            &est(13.0, 0.1, 20),
        );
        assert_eq!(j.verdict, Verdict::Improvement);
    }

    #[test]
    fn a_noisy_change_is_inconclusive_and_says_how_much_more_data() {
        let j = judge(
            Better::Lower,
            Some(1.0),
            &est(10.0, 2.0, 20),
            &est(13.0, 2.0, 20),
        );
        assert_eq!(j.verdict, Verdict::Inconclusive);
        // half-width ≈ 2.03 × 2.83 ≈ 5.7 → (5.7 / 3)² ≈ 3.6 × the data.
        let f = j.more_data_factor.unwrap();
        assert!((3.0..4.5).contains(&f), "{f}");
    }

    #[test]
    fn within_the_allowance_is_no_change_even_when_significant() {
        let j = judge(
            Better::Lower,
            Some(1.0),
            &est(10.0, 0.01, 20),
            &est(10.5, 0.01, 20),
        );
        assert_eq!(j.verdict, Verdict::NoChange);
    }

    #[test]
    fn without_a_standard_error_a_change_is_never_a_regression() {
        let j = judge(
            Better::Lower,
            Some(1.0),
            &Estimate::bare(10.0),
            &est(20.0, 0.1, 20),
        );
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert_eq!(j.more_data_factor, None);
    }

    #[test]
    fn the_floor_keeps_sub_millisecond_noise_out() {
        // 0.216 → 0.248 ms (+14.8 %): over 10 %, under the 0.05 ms floor.
        let allowed = allowance(Limit::Relative(0.1), DEFAULT_MS_FLOOR, 0.216);
        assert_eq!(allowed, Some(0.05));
        let j = judge(
            Better::Lower,
            allowed,
            &est(0.216, 0.001, 20),
            &est(0.248, 0.001, 20),
        );
        assert_eq!(j.verdict, Verdict::NoChange);
        // An explicit absolute limit is the user's own.
        assert_eq!(
            allowance(Limit::Absolute(0.01), DEFAULT_MS_FLOOR, 0.2),
            Some(0.01)
        );
        assert_eq!(allowance(Limit::Off, DEFAULT_MS_FLOOR, 0.2), None);
    }

    #[test]
    fn repeats_give_the_spread_of_their_values() {
        let e = Estimate::from_repeats(&[10.0, 12.0, 11.0]).unwrap();
        assert_eq!(e.value, 11.0);
        assert_eq!(e.basis, Basis::Repeats);
        assert!((e.stderr.unwrap() - 1.0 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(Estimate::from_repeats(&[5.0]).unwrap().stderr, None);
        assert!(batch_spread(&[1.0; 7]).is_none());
        assert_eq!(batch_spread(&[1.0; 8]).unwrap().stderr, 0.0);
    }
}
