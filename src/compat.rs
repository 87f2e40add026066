//! Leaf module: the names the earlier Python tool ("seed") exported, kept so that dashboards,
//! PromQL and jq scripts written for it keep working when a user opts in
//! (`monitoring.compat_metrics: seed` in a recipe, `push --compat seed`,
//! `report --format json --compat seed`). docs/migrating.md maps every old name to the new one.
//!
//! Old meaning, kept as it was:
//!
//! - `benchmark_requests_total` (counter): requests finished, successes and failures;
//! - `benchmark_requests_successful` (gauge): requests that succeeded so far;
//! - `benchmark_requests_failed` (gauge): requests that failed so far;
//! - `benchmark_request_duration_seconds` (histogram): duration of each successful request from
//!   sending it to its last byte, as the old tool timed it around the call (factorybench's
//!   own latency figures are measured from the *scheduled* send time; see docs/report.md).
//!
//! Imports nothing from the crate.

use std::fmt::Write as _;

/// Which set of earlier names to export as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CompatNames {
    /// The Python tool's names (`benchmark_*` series; `summary`/`timing`/`percentiles` JSON).
    Seed,
}

impl CompatNames {
    pub fn as_str(self) -> &'static str {
        match self {
            CompatNames::Seed => "seed",
        }
    }

    /// The value a recipe or flag spells.
    pub fn parse(s: &str) -> Option<CompatNames> {
        match s {
            "seed" => Some(CompatNames::Seed),
            _ => None,
        }
    }
}

pub const SEED_REQUESTS_TOTAL: &str = "benchmark_requests_total";
pub const SEED_REQUESTS_SUCCESSFUL: &str = "benchmark_requests_successful";
pub const SEED_REQUESTS_FAILED: &str = "benchmark_requests_failed";
pub const SEED_REQUEST_DURATION: &str = "benchmark_request_duration_seconds";

/// Upper bounds (seconds) of the seed duration histogram: the Prometheus client's default
/// buckets, which the old tool used, extended to 60 s for LLM requests.
pub const SEED_DURATION_BOUNDS_S: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 30.0,
    60.0,
];

/// Cumulative histogram of request durations in seconds: `cumulative[i]` counts the
/// observations `<= bounds_s[i]`; `count` is every observation (`+Inf`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DurationHistogram {
    pub bounds_s: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_s: f64,
}

impl DurationHistogram {
    /// Empty, over [`SEED_DURATION_BOUNDS_S`].
    pub fn seed() -> Self {
        DurationHistogram {
            bounds_s: SEED_DURATION_BOUNDS_S.to_vec(),
            cumulative: vec![0; SEED_DURATION_BOUNDS_S.len()],
            count: 0,
            sum_s: 0.0,
        }
    }

    /// Count one observation of `v_s` seconds.
    pub fn observe(&mut self, v_s: f64) {
        self.count += 1;
        self.sum_s += v_s;
        for (b, c) in self.bounds_s.iter().zip(self.cumulative.iter_mut()) {
            if v_s <= *b {
                *c += 1;
            }
        }
    }

    /// Add `other`'s observations (same bounds: both from [`Self::seed`]).
    pub fn merge(&mut self, other: &DurationHistogram) {
        debug_assert_eq!(self.bounds_s, other.bounds_s);
        for (c, o) in self.cumulative.iter_mut().zip(&other.cumulative) {
            *c += o;
        }
        self.count += other.count;
        self.sum_s += other.sum_s;
    }

    /// From non-cumulative buckets `(upper_s, count)` in increasing order (a report's
    /// histogram): each observation lands in the first seed bound at or above its bucket's
    /// upper edge, so no observation is counted faster than it was. The sum is given.
    pub fn from_buckets(buckets: &[(f64, u64)], sum_s: f64) -> Self {
        let mut h = Self::seed();
        for &(upper, n) in buckets {
            h.count += n;
            for (b, c) in h.bounds_s.iter().zip(h.cumulative.iter_mut()) {
                if upper <= *b {
                    *c += n;
                }
            }
        }
        h.sum_s = sum_s;
        h
    }
}

/// The seed figures of one run (or one service), cumulative.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeedFigures {
    pub requests_total: u64,
    pub successful: u64,
    pub failed: u64,
    pub duration: Option<DurationHistogram>,
}

/// The seed series in the text exposition format, without labels (a Pushgateway group's
/// labels are added by the Pushgateway).
pub fn seed_exposition(f: &SeedFigures) -> String {
    let mut s = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        let _ = writeln!(s, "{name} {}", number(value));
    };
    family(
        SEED_REQUESTS_TOTAL,
        "counter",
        "Requests finished, successes and failures (compatibility name; factorybench_requests_total).",
        f.requests_total as f64,
    );
    family(
        SEED_REQUESTS_SUCCESSFUL,
        "gauge",
        "Requests that succeeded so far (compatibility name).",
        f.successful as f64,
    );
    family(
        SEED_REQUESTS_FAILED,
        "gauge",
        "Requests that failed so far (compatibility name; factorybench_request_errors_total).",
        f.failed as f64,
    );
    if let Some(h) = &f.duration {
        let name = SEED_REQUEST_DURATION;
        let _ = writeln!(
            s,
            "# HELP {name} Duration of successful requests, sent to last byte (compatibility name)."
        );
        let _ = writeln!(s, "# TYPE {name} histogram");
        for (b, c) in h.bounds_s.iter().zip(&h.cumulative) {
            let _ = writeln!(s, "{name}_bucket{{le=\"{}\"}} {c}", number(*b));
        }
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(s, "{name}_sum {}", number(h.sum_s));
        let _ = writeln!(s, "{name}_count {}", h.count);
    }
    s
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_map_to_seed_bounds_without_counting_anything_faster() {
        let h = DurationHistogram::from_buckets(&[(0.004, 2), (0.02, 3), (100.0, 1)], 1.5);
        assert_eq!(h.count, 6);
        assert_eq!(h.cumulative[0], 2, "<= 5 ms");
        assert_eq!(h.cumulative[2], 5, "<= 25 ms");
        assert_eq!(*h.cumulative.last().unwrap(), 5, "100 s is above 60 s");
    }

    #[test]
    fn seed_names() {
        let f = SeedFigures {
            requests_total: 10,
            successful: 9,
            failed: 1,
            duration: Some(DurationHistogram::from_buckets(&[(0.03, 9)], 0.27)),
        };
        insta::assert_snapshot!(seed_exposition(&f));
    }
}
