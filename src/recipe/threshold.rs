//! Comparison thresholds (`compare_thresholds` in a recipe, `--threshold` of `compare`): the
//! compared metrics, their units, directions and default limits, and the `METRIC=LIMIT` parser.
//! The report's comparison reads these; the recipe validates against them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    #[error("bad threshold {0:?}: expected METRIC=LIMIT, e.g. latency_p99_ms=10% or latency_p99_ms=+5ms or error_rate=0.01 or ttft_p99_ms=off")]
    Syntax(String),
    #[error("unknown metric {name:?} in threshold; known metrics: {known}")]
    UnknownMetric { name: String, known: String },
    #[error("threshold {0:?}: unit does not fit the metric (only ms metrics take ms/s/us)")]
    Unit(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Limit {
    /// Allowed worsening as a fraction of the baseline (0.1 = 10 %).
    Relative(f64),
    /// Allowed worsening in the metric's unit.
    Absolute(f64),
    /// Shown, never a regression.
    Off,
}

/// One compared metric (the value is read from a service aggregate by the report).
#[derive(Debug, Clone, Copy)]
pub struct MetricInfo {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub default: Limit,
}

/// The compared metrics and their default limits.
pub const METRICS: [MetricInfo; 16] = [
    MetricInfo {
        name: "throughput_ops_per_s",
        unit: "ops/s",
        better: Better::Higher,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "throughput_mb_per_s",
        unit: "MB/s",
        better: Better::Higher,
        default: Limit::Off,
    },
    MetricInfo {
        name: "error_rate",
        unit: "ratio",
        better: Better::Lower,
        default: Limit::Absolute(0.01),
    },
    MetricInfo {
        name: "latency_p50_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "latency_p90_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Off,
    },
    MetricInfo {
        name: "latency_p99_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "latency_p999_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Off,
    },
    MetricInfo {
        name: "latency_mean_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Off,
    },
    MetricInfo {
        name: "latency_uncorrected_p99_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Off,
    },
    MetricInfo {
        name: "ttft_p50_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Off,
    },
    MetricInfo {
        name: "ttft_p99_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "tpot_p99_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "itl_p99_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Off,
    },
    MetricInfo {
        name: "e2el_p99_ms",
        unit: "ms",
        better: Better::Lower,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "output_tokens_per_s",
        unit: "tokens/s",
        better: Better::Higher,
        default: Limit::Relative(0.10),
    },
    MetricInfo {
        name: "goodput_ratio",
        unit: "ratio",
        better: Better::Higher,
        default: Limit::Absolute(0.05),
    },
];

const ALIASES: [(&str, &str); 6] = [
    ("p50_ms", "latency_p50_ms"),
    ("p90_ms", "latency_p90_ms"),
    ("p99_ms", "latency_p99_ms"),
    ("p999_ms", "latency_p999_ms"),
    ("throughput", "throughput_ops_per_s"),
    ("ops_per_s", "throughput_ops_per_s"),
];

/// Parse `METRIC=LIMIT` (`10%`, `+5ms`, `0.5s`, `0.01`, `off`).
pub fn parse_threshold(spec: &str) -> Result<(&'static str, Limit), ThresholdError> {
    let (name, limit) = spec
        .split_once('=')
        .ok_or_else(|| ThresholdError::Syntax(spec.into()))?;
    let name = name.trim();
    let name = ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map(|(_, n)| *n)
        .unwrap_or(name);
    let defs = &METRICS;
    let def =
        defs.iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ThresholdError::UnknownMetric {
                name: name.into(),
                known: defs.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
            })?;
    let l = limit.trim();
    if l.eq_ignore_ascii_case("off") || l.eq_ignore_ascii_case("none") {
        return Ok((def.name, Limit::Off));
    }
    let l = l.strip_prefix('+').unwrap_or(l);
    let bad = || ThresholdError::Syntax(spec.into());
    if let Some(p) = l.strip_suffix('%') {
        let v: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(v >= 0.0 && v.is_finite()) {
            return Err(bad());
        }
        return Ok((def.name, Limit::Relative(v / 100.0)));
    }
    let (num, factor) = if let Some(n) = l.strip_suffix("ms") {
        (n, Some(1.0))
    } else if let Some(n) = l.strip_suffix("us") {
        (n, Some(0.001))
    } else if let Some(n) = l.strip_suffix('s') {
        (n, Some(1000.0))
    } else {
        (l, None)
    };
    if factor.is_some() && def.unit != "ms" {
        return Err(ThresholdError::Unit(spec.into()));
    }
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(bad());
    }
    Ok((def.name, Limit::Absolute(v * factor.unwrap_or(1.0))))
}

/// Parse `METRIC=AMOUNT` of `--min-change` / `compare_min_change`: an absolute amount in the
/// metric's unit (`0.1ms`, `0.2`; `0` or `off` for none), never a percentage.
pub fn parse_floor(spec: &str) -> Result<(&'static str, f64), ThresholdError> {
    match parse_threshold(spec)? {
        (name, Limit::Absolute(a)) => Ok((name, a)),
        (name, Limit::Off) => Ok((name, 0.0)),
        (_, Limit::Relative(_)) => Err(ThresholdError::Syntax(format!(
            "{spec} (a minimum change is an absolute amount, e.g. latency_p50_ms=0.1ms)"
        ))),
    }
}
