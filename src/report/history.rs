//! `history`: per service and metric, the trend over a series of campaigns — each point with
//! its cross-run interval, change points flagged, and a gate on the newest point.
//!
//! - **Points**: one per campaign (ordered by the campaign's first run start), the value of
//!   the service aggregate (the same figure `compare` reads), and the 95 % Student-t interval
//!   over the campaign's runs of that service when it has two or more.
//! - **Change points**: binary segmentation on the mean: a split is kept when the two sides'
//!   means differ by more than the metric's `compare` limit *and* by more than
//!   [`MIN_T`] standard errors (pooled within-segment spread). A lone outlier that comes back
//!   is not a change point.
//! - **Gate**: the newest point against the median of the up-to-[`BASELINE_POINTS`] points
//!   before it, with `compare`'s limits (defaults, then `--threshold`): a change beyond the
//!   limit in the worse direction is a regression (exit 4).

use super::compare::{metrics, Better, Limit, MetricDef};
use super::model::{CampaignAnalysis, RunAnalysis, ServiceAggregate};
use super::svg::{esc, fmt_num, marked_line_chart, Axis, Mark, Series};
use crate::capacity::mean_interval;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Standard errors a mean shift must exceed to be a change point.
pub const MIN_T: f64 = 3.0;
/// Points before the newest one that form the gate's baseline (their median).
pub const BASELINE_POINTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryPoint {
    pub campaign: String,
    pub source: String,
    /// RFC 3339 start of the campaign's first run.
    pub started_at: String,
    pub started_ns: i64,
    pub value: f64,
    /// 95 % cross-run interval (runs of this service in this campaign), when ≥ 2 runs.
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub runs: usize,
    /// A change point starts at this point (the mean shifts here).
    pub change_point: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Ok,
    Improved,
    Regression,
    /// Fewer than two points, or no limit.
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistorySeries {
    /// `service` or `service[param=value]`.
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub points: Vec<HistoryPoint>,
    /// Median of the points before the newest (at most BASELINE_POINTS).
    pub baseline: Option<f64>,
    pub latest: Option<f64>,
    pub limit: Limit,
    pub status: GateStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct History {
    pub campaigns: Vec<String>,
    pub series: Vec<HistorySeries>,
    pub regressions: usize,
    pub change_points: usize,
}

fn key(s: &ServiceAggregate) -> String {
    match (&s.sweep_param, &s.sweep_value) {
        (Some(p), Some(v)) => format!("{}[{p}={v}]", s.service),
        _ => s.service.clone(),
    }
}

/// The same metric read from one run (for the cross-run interval); `None` for metrics that
/// exist only on aggregates.
fn run_value(name: &str, r: &RunAnalysis) -> Option<f64> {
    let lat = r.total.latency_corrected_ms.as_ref();
    match name {
        "throughput_ops_per_s" => Some(r.total.throughput_ops_per_s),
        "throughput_mb_per_s" => Some(r.total.throughput_mb_per_s),
        "error_rate" => Some(r.total.error_rate),
        "latency_p50_ms" => lat.map(|l| l.p50),
        "latency_p90_ms" => lat.map(|l| l.p90),
        "latency_p99_ms" => lat.map(|l| l.p99),
        "latency_p999_ms" => lat.map(|l| l.p999),
        "latency_mean_ms" => lat.map(|l| l.mean),
        "ttft_p50_ms" => r.llm.as_ref()?.ttft_ms.as_ref().map(|l| l.p50),
        "ttft_p99_ms" => r.llm.as_ref()?.ttft_ms.as_ref().map(|l| l.p99),
        "tpot_p99_ms" => r.llm.as_ref()?.tpot_ms.as_ref().map(|l| l.p99),
        "output_tokens_per_s" => r.llm.as_ref().map(|l| l.output_tokens_per_s),
        _ => None,
    }
}

/// Build the history of `campaigns` (each `(name, analysis)`), ordered here by start time.
pub fn history(
    campaigns: &[(String, CampaignAnalysis)],
    overrides: &[(&'static str, Limit)],
    only_metrics: &[String],
) -> History {
    let mut order: Vec<usize> = (0..campaigns.len()).collect();
    let start = |a: &CampaignAnalysis| a.runs.iter().map(|r| r.started_ns).min().unwrap_or(0);
    order.sort_by_key(|&i| start(&campaigns[i].1));
    let defs: Vec<MetricDef> = metrics()
        .into_iter()
        .filter(|m| only_metrics.is_empty() || only_metrics.iter().any(|x| x == m.name))
        .collect();
    let mut keys: Vec<String> = Vec::new();
    for &i in &order {
        for s in &campaigns[i].1.services {
            let k = key(s);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let mut series = Vec::new();
    for k in &keys {
        for m in &defs {
            let mut points = Vec::new();
            for &i in &order {
                let (src, a) = &campaigns[i];
                let Some(s) = a.services.iter().find(|s| key(s) == *k) else {
                    continue;
                };
                let Some(value) = (m.get)(s) else { continue };
                let per_run: Vec<f64> = a
                    .runs
                    .iter()
                    .filter(|r| s.run_ids.contains(&r.run_id))
                    .filter_map(|r| run_value(m.name, r))
                    .collect();
                let ci = mean_interval(&per_run).and_then(|(mean, hw)| hw.map(|h| (mean, h)));
                points.push(HistoryPoint {
                    campaign: a.campaign.clone(),
                    source: src.clone(),
                    started_at: super::analysis::rfc3339(start(a)),
                    started_ns: start(a),
                    value,
                    ci95_low: ci.map(|(m, h)| m - h),
                    ci95_high: ci.map(|(m, h)| m + h),
                    runs: s.run_ids.len(),
                    change_point: false,
                });
            }
            if points.is_empty() {
                continue;
            }
            let limit = overrides
                .iter()
                .rev()
                .find(|(n, _)| *n == m.name)
                .map(|(_, l)| *l)
                .unwrap_or(m.default);
            let values: Vec<f64> = points.iter().map(|p| p.value).collect();
            for cp in change_points(&values, limit) {
                points[cp].change_point = true;
            }
            let latest = values.last().copied();
            let before = &values[..values.len() - 1];
            let baseline = median(&before[before.len().saturating_sub(BASELINE_POINTS)..]);
            let status = match (baseline, latest) {
                (Some(b), Some(c)) => gate(m.better, limit, b, c),
                _ => GateStatus::Info,
            };
            series.push(HistorySeries {
                service: k.clone(),
                metric: m.name.to_string(),
                unit: m.unit.to_string(),
                better: m.better,
                points,
                baseline,
                latest,
                limit,
                status,
            });
        }
    }
    History {
        campaigns: order.iter().map(|&i| campaigns[i].0.clone()).collect(),
        regressions: series
            .iter()
            .filter(|s| s.status == GateStatus::Regression)
            .count(),
        change_points: series
            .iter()
            .map(|s| s.points.iter().filter(|p| p.change_point).count())
            .sum(),
        series,
    }
}

fn gate(better: Better, limit: Limit, baseline: f64, latest: f64) -> GateStatus {
    let worse = match better {
        Better::Lower => latest - baseline,
        Better::Higher => baseline - latest,
    };
    let allowed = match limit {
        Limit::Relative(f) => f * baseline.abs(),
        Limit::Absolute(a) => a,
        Limit::Off => return GateStatus::Info,
    };
    if worse > allowed + 1e-12 {
        GateStatus::Regression
    } else if -worse > allowed + 1e-12 {
        GateStatus::Improved
    } else {
        GateStatus::Ok
    }
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Indices where a new segment starts (binary segmentation on the mean; see the module doc).
pub fn change_points(xs: &[f64], limit: Limit) -> Vec<usize> {
    let mut out = Vec::new();
    segment(xs, 0, limit, &mut out);
    out.sort_unstable();
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn sse(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum()
}

fn segment(xs: &[f64], offset: usize, limit: Limit, out: &mut Vec<usize>) {
    let n = xs.len();
    if n < 3 {
        return;
    }
    // Both sides need two points, except a last point alone (the newest campaign) may not
    // make a change point: a change needs confirmation by a second point.
    let mut best: Option<(usize, f64)> = None;
    for k in 2..=n - 2 {
        let (l, r) = (&xs[..k], &xs[k..]);
        let shift = (mean(r) - mean(l)).abs();
        let allowed = match limit {
            Limit::Relative(f) => f * mean(l).abs(),
            Limit::Absolute(a) => a,
            Limit::Off => f64::INFINITY,
        };
        if shift <= allowed {
            continue;
        }
        let dof = (n - 2) as f64;
        let sd = ((sse(l) + sse(r)) / dof).sqrt();
        let se = sd * (1.0 / k as f64 + 1.0 / (n - k) as f64).sqrt();
        let t = if se > 0.0 { shift / se } else { f64::INFINITY };
        if t >= MIN_T && best.map_or(true, |(_, bt)| t > bt) {
            best = Some((k, t));
        }
    }
    if let Some((k, _)) = best {
        out.push(offset + k);
        segment(&xs[..k], offset, limit, out);
        segment(&xs[k..], offset + k, limit, out);
    }
}

pub fn to_text(h: &History) -> String {
    let mut s = format!(
        "history over {} campaign(s): {} change point(s), {} regression(s) at the newest point\n\n",
        h.campaigns.len(),
        h.change_points,
        h.regressions
    );
    let _ = writeln!(
        s,
        "{:<28} {:<22} {:>12} {:>12} {:>8}  {:<10} trend (oldest → newest; * = change point)",
        "service", "metric", "baseline", "latest", "limit", "status"
    );
    for x in &h.series {
        let trend: Vec<String> = x
            .points
            .iter()
            .map(|p| {
                format!(
                    "{}{}",
                    if p.change_point { "*" } else { "" },
                    fmt_num(p.value)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<28} {:<22} {:>12} {:>12} {:>8}  {:<10} {}",
            x.service,
            x.metric,
            x.baseline.map(fmt_num).unwrap_or_else(|| "–".into()),
            x.latest.map(fmt_num).unwrap_or_else(|| "–".into()),
            x.limit.describe(&x.unit),
            match x.status {
                GateStatus::Ok => "ok",
                GateStatus::Improved => "improved",
                GateStatus::Regression => "REGRESSION",
                GateStatus::Info => "",
            },
            trend.join(" ")
        );
    }
    s
}

pub fn to_html(h: &History) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>factorybench history</title><style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:3px 8px}.reg{background:#fde8e8;font-weight:600}.chart{width:100%;max-width:760px}.ct{font-size:12px}.banner{padding:10px 14px;border-radius:6px;color:#fff}.bad{background:#c62828}.good{background:#2e7d32}</style></head><body><h1>factorybench history</h1>",
    );
    let _ = write!(
        s,
        "<div class=\"banner {}\">{} regression(s) at the newest point; {} change point(s) over {} campaign(s)</div><h2>Campaigns</h2><ol>",
        if h.regressions > 0 { "bad" } else { "good" },
        h.regressions,
        h.change_points,
        h.campaigns.len()
    );
    for c in &h.campaigns {
        let _ = write!(s, "<li><code>{}</code></li>", esc(c));
    }
    s.push_str("</ol><h2>Gate</h2><table><tr><th>service</th><th>metric</th><th>baseline (median)</th><th>latest</th><th>limit</th><th>status</th><th>change points</th></tr>");
    for x in &h.series {
        let _ = write!(
            s,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
            if x.status == GateStatus::Regression { " class=\"reg\"" } else { "" },
            esc(&x.service),
            esc(&x.metric),
            x.baseline.map(fmt_num).unwrap_or_else(|| "–".into()),
            x.latest.map(fmt_num).unwrap_or_else(|| "–".into()),
            esc(&x.limit.describe(&x.unit)),
            x.status,
            x.points.iter().filter(|p| p.change_point).count()
        );
    }
    s.push_str("</table><h2>Trends</h2>");
    for x in &h.series {
        // x: campaign index (1 = oldest); value and the interval bounds as series.
        let idx = |i: usize| (i + 1) as f64;
        let mut sers = vec![Series {
            name: format!("{} ({})", x.metric, x.unit),
            points: x
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| (idx(i), p.value))
                .collect(),
        }];
        let lo: Vec<(f64, f64)> = x
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((idx(i), p.ci95_low?)))
            .collect();
        if !lo.is_empty() {
            sers.push(Series {
                name: "95 % low".into(),
                points: lo,
            });
            sers.push(Series {
                name: "95 % high".into(),
                points: x
                    .points
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| Some((idx(i), p.ci95_high?)))
                    .collect(),
            });
        }
        let marks: Vec<Mark> = x
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.change_point)
            .map(|(i, _)| Mark {
                at: idx(i) - 0.5,
                label: "change".into(),
            })
            .collect();
        let base: Vec<Mark> = x
            .baseline
            .map(|b| Mark {
                at: b,
                label: format!("baseline {}", fmt_num(b)),
            })
            .into_iter()
            .collect();
        s.push_str(&marked_line_chart(
            &format!("{} · {}", x.service, x.metric),
            Axis::lin("campaign (oldest = 1)"),
            Axis::lin(&x.unit),
            &sers,
            &marks,
            &base,
        ));
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_found_and_noise_is_not() {
        let flat = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.1];
        assert!(change_points(&flat, Limit::Relative(0.1)).is_empty());
        let step = [10.0, 10.2, 9.9, 10.1, 13.0, 13.1, 12.9];
        assert_eq!(change_points(&step, Limit::Relative(0.1)), vec![4]);
        // A lone outlier that comes back is not a change point.
        let spike = [10.0, 10.1, 9.9, 16.0, 10.0, 10.1, 9.9];
        assert!(change_points(&spike, Limit::Relative(0.1)).is_empty());
        // Two steps.
        let two = [5.0, 5.1, 4.9, 8.0, 8.1, 7.9, 12.0, 12.1, 11.9];
        assert_eq!(change_points(&two, Limit::Relative(0.1)), vec![3, 6]);
        // A shift inside the limit is not a change, however significant.
        let small = [10.0, 10.0, 10.0, 10.5, 10.5, 10.5];
        assert!(change_points(&small, Limit::Relative(0.1)).is_empty());
        assert_eq!(change_points(&small, Limit::Relative(0.01)), vec![3]);
    }

    #[test]
    fn gate_uses_the_direction() {
        assert_eq!(
            gate(Better::Lower, Limit::Relative(0.1), 10.0, 12.0),
            GateStatus::Regression
        );
        assert_eq!(
            gate(Better::Higher, Limit::Relative(0.1), 10.0, 12.0),
            GateStatus::Improved
        );
        assert_eq!(
            gate(Better::Higher, Limit::Relative(0.1), 10.0, 9.5),
            GateStatus::Ok
        );
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
