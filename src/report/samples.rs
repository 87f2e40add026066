//! Time-series samples (node telemetry, NVML): summaries, chart series and the energy over a
//! measured window. Read by the run analysis and by the service node's samples
//! (`report::service_node`), so it sits below both.

use super::model::{EnergyStats, SampleSeries, SampleSummary, SeriesPoint};
use super::statistics::LlmAcc;
use crate::store::read as db;
use std::collections::BTreeMap;

/// At most this many points per time series.
pub(super) const MAX_TIME_POINTS: u64 = 300;

type SampleParts = (Vec<SampleSummary>, Vec<SampleSeries>, Option<EnergyStats>);

/// Per series: a summary, a decimated series for charts, and the energy over the window
/// `start_ns..=end_ns` (an energy counter's increase, else integrated power), per successful
/// request and per output token.
pub(super) fn summarize_samples(
    series: &[db::SampleSeriesRows],
    start_ns: i64,
    end_ns: i64,
    ok_requests: u64,
    llm: Option<&LlmAcc>,
) -> SampleParts {
    let mut summaries = Vec::new();
    let mut out_series = Vec::new();
    let mut energy: BTreeMap<String, f64> = BTreeMap::new();
    let mut counters: Vec<String> = Vec::new();
    let mut integrated: Vec<(String, String, f64)> = Vec::new();
    for (name, pts) in series {
        let n = pts.len() as u64;
        let sum: f64 = pts.iter().map(|p| p.1).sum();
        summaries.push(SampleSummary {
            name: name.clone(),
            count: n,
            min: pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
            mean: sum / n as f64,
            max: pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
            last: pts.last().map(|p| p.1).unwrap_or(0.0),
        });
        let step = pts.len().div_ceil(MAX_TIME_POINTS as usize).max(1);
        out_series.push(SampleSeries {
            name: name.clone(),
            points: pts
                .iter()
                .step_by(step)
                .map(|(t, v)| SeriesPoint {
                    t_s: (t - start_ns) as f64 / 1e9,
                    value: *v,
                })
                .collect(),
        });
        let inwin: Vec<&(i64, f64)> = pts
            .iter()
            .filter(|(t, _)| *t >= start_ns && *t <= end_ns)
            .collect();
        if let Some(prefix) = name.strip_suffix("_energy_joules") {
            // A cumulative energy counter (NVML): the increase over the window.
            if let (Some(first), Some(last)) = (inwin.first(), inwin.last()) {
                energy.insert(name.clone(), (last.1 - first.1).max(0.0));
                counters.push(prefix.to_string());
            }
        } else if let Some(prefix) = name
            .strip_suffix("_power_watts")
            .or_else(|| name.strip_suffix("_power_w"))
        {
            // Power samples: trapezoidal integral over the window.
            let j: f64 = inwin
                .windows(2)
                .map(|w| (w[1].0 - w[0].0) as f64 / 1e9 * (w[0].1 + w[1].1) / 2.0)
                .sum();
            integrated.push((prefix.to_string(), name.clone(), j));
        }
    }
    // Prefer a device's energy counter over integrating its power samples.
    for (prefix, name, j) in integrated {
        if !counters.contains(&prefix) {
            energy.insert(name, j);
        }
    }
    let energy = (!energy.is_empty()).then(|| {
        let total: f64 = energy.values().sum();
        EnergyStats {
            series_energy_j: energy,
            total_energy_j: total,
            energy_per_request_j: (ok_requests > 0).then(|| total / ok_requests as f64),
            energy_per_output_token_j: llm
                .filter(|l| l.output_tokens > 0)
                .map(|l| total / l.output_tokens as f64),
        }
    });
    (summaries, out_series, energy)
}
