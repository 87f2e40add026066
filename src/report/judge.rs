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
//!
//! On one measurement per side, a change must also **hold across the run**: a stall of the
//! machine (a virtual disk that stops for a moment, a noisy neighbour) can move a whole run's
//! tail from a few seconds of it, and its batch-means interval need not include zero. So the
//! metric's values over the run's time batches are compared as well, by a Mann–Whitney rank
//! test ([`across_batches`]): a change that most batches do not share is inconclusive, with the
//! batches' typical shift (Hodges–Lehmann) as its reason. One run per side cannot tell a stall
//! from a service that bursts now and then; repeats can, and with repeats the rule is theirs.

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Spread {
    /// Standard error of the metric (batch means).
    pub stderr: f64,
    /// Batches with a value.
    pub batches: u32,
    /// The metric in each time batch with a value, in time order (empty in reports written
    /// before they were kept): what [`across_batches`] compares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
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
        values: batch_values.iter().map(|&v| round_sig(v)).collect(),
    })
}

/// `v` to 6 significant digits (batch values are kept in every report; more digits than the
/// clock's are noise and bytes).
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// How a metric's time batches moved between two measurements (see [`across_batches`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchShift {
    /// The typical shift of a batch, candidate − baseline (Hodges–Lehmann: the median of all
    /// pairwise differences), in the metric's unit.
    pub shift: f64,
    /// Mann–Whitney z (normal approximation, ties corrected): positive when the candidate's
    /// batches rank higher.
    pub z: f64,
}

impl BatchShift {
    /// Whether the batches support a change in the direction of `change` (95 %, two-sided).
    pub fn supports(&self, change: f64) -> bool {
        const Z95: f64 = 1.959_964;
        if change > 0.0 {
            self.z > Z95
        } else {
            self.z < -Z95
        }
    }
}

/// Compare a metric's time-batch values of two measurements by ranks: how the candidate's
/// batches sit among the baseline's, which a few extreme batches (a stall) cannot decide
/// alone. `None` below [`MIN_BATCHES`] on either side.
pub fn across_batches(base: &[f64], cand: &[f64]) -> Option<BatchShift> {
    let (n1, n2) = (base.len(), cand.len());
    if n1 < MIN_BATCHES || n2 < MIN_BATCHES {
        return None;
    }
    // Ranks over both sides, ties given their average rank.
    let mut all: Vec<(f64, bool)> = base
        .iter()
        .map(|&v| (v, false))
        .chain(cand.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum_cand, mut tie_term, mut i) = (0.0, 0.0, 0);
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_cand += rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let n = f1 + f2;
    let u_cand = rank_sum_cand - f2 * (f2 + 1.0) / 2.0;
    let var = f1 * f2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let z = if var > 0.0 {
        (u_cand - f1 * f2 / 2.0) / var.sqrt()
    } else {
        0.0
    };
    let mut diffs: Vec<f64> = cand
        .iter()
        .flat_map(|c| base.iter().map(move |b| c - b))
        .collect();
    diffs.sort_by(f64::total_cmp);
    let m = diffs.len();
    let shift = if m % 2 == 1 {
        diffs[m / 2]
    } else {
        (diffs[m / 2 - 1] + diffs[m / 2]) / 2.0
    };
    Some(BatchShift { shift, z })
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

    #[test]
    fn a_stall_in_a_few_batches_does_not_hold_across_the_run() {
        // 20 batches of p99 ≈ 1.8 ms on each side; the candidate's run stalled in three.
        let base: Vec<f64> = (0..20).map(|i| 1.8 + 0.01 * (i % 5) as f64).collect();
        let mut cand: Vec<f64> = (0..20).map(|i| 1.8 + 0.01 * ((i + 2) % 5) as f64).collect();
        cand[7] = 40.0;
        cand[8] = 25.0;
        cand[9] = 9.0;
        let s = across_batches(&base, &cand).unwrap();
        assert!(!s.supports(4.8), "{s:?}");
        assert!(s.shift.abs() < 0.05, "{s:?}");
        // A slowdown of every batch holds.
        let slower: Vec<f64> = base.iter().map(|v| v * 1.3).collect();
        let s = across_batches(&base, &slower).unwrap();
        assert!(s.supports(0.54), "{s:?}");
        assert!(!s.supports(-0.54));
        assert!((s.shift - 0.54).abs() < 0.05, "{s:?}");
        // Too few batches: no verdict.
        assert!(across_batches(&base[..7], &slower).is_none());
        // All tied: no shift, no support.
        let s = across_batches(&[1.0; 10], &[1.0; 10]).unwrap();
        assert_eq!((s.z, s.shift), (0.0, 0.0));
    }

    #[test]
    fn batch_values_are_kept_to_six_digits() {
        let sp = batch_spread(&[1.234_567_89; 8]).unwrap();
        assert_eq!(sp.values, vec![1.234_57; 8]);
        assert_eq!(round_sig(0.000_123_456_789), 0.000_123_457);
        assert_eq!(round_sig(0.0), 0.0);
    }
}
