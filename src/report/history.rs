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
//!   before it, with `compare`'s limits and floors (defaults, then `--threshold`) and
//!   `compare`'s rule ([`super::judge`]): a change beyond the limit in the worse direction is
//!   a regression (exit 4) only when the data supports it. With two or more baseline points
//!   the noise is their campaign-to-campaign spread (the newest point must leave the band
//!   their scatter predicts); with one, the batch-means errors of the two campaigns. Beyond
//!   the limit without support the gate says `inconclusive`.

use super::compare::{metrics, Better, Limit, MetricDef};
use super::judge::{self, Basis, Estimate, Verdict};
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
    /// Batch-means standard error of `value` (see `compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<f64>,
    /// The load generator's own timing jitter behind this latency, in ms (its lag at the
    /// matching percentile; see `compare`): a change within it is not the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing_jitter_ms: Option<f64>,
    /// The metric in each time batch of the campaign's latest measurement (see `compare`):
    /// with one earlier point, the gate's change must hold across the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_values: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Ok,
    Improved,
    Regression,
    /// Fewer than two points, or no limit.
    Info,
    /// Beyond the limit, but not supported by the data (too few or too noisy points).
    Inconclusive,
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
                let Some(est) = m.estimate(s) else { continue };
                let value = est.value;
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
                    started_at: super::model::rfc3339(start(a)),
                    started_ns: start(a),
                    value,
                    ci95_low: ci.map(|(m, h)| m - h),
                    ci95_high: ci.map(|(m, h)| m + h),
                    runs: s.run_ids.len(),
                    change_point: false,
                    stderr: est.stderr,
                    timing_jitter_ms: super::compare::timing_jitter_ms(a, &s.run_ids, m.name),
                    batch_values: s
                        .spread
                        .get(m.name)
                        .map(|sp| sp.values.clone())
                        .unwrap_or_default(),
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
            for cp in change_points(&values, limit, m.floor) {
                points[cp].change_point = true;
            }
            let latest = values.last().copied();
            let window = &points[..points.len() - 1];
            let window = &window[window.len().saturating_sub(BASELINE_POINTS)..];
            let baseline = median(&window.iter().map(|p| p.value).collect::<Vec<_>>());
            let status = match (baseline, points.last()) {
                (Some(b), Some(newest)) if !window.is_empty() => {
                    gate(m.better, limit, m.floor, b, window, newest)
                }
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

/// The campaign-to-campaign scatter of `window`: the pooled standard deviation of its points
/// around the mean of their own segment (change points split segments, so a step is not
/// counted as noise), with its degrees of freedom; `None` without a degree of freedom.
fn scatter(window: &[HistoryPoint]) -> Option<(f64, usize)> {
    let mut segments: Vec<Vec<f64>> = Vec::new();
    for p in window {
        match segments.last_mut() {
            Some(seg) if !p.change_point => seg.push(p.value),
            _ => segments.push(vec![p.value]),
        }
    }
    let dof = window
        .len()
        .checked_sub(segments.len())
        .filter(|d| *d > 0)?;
    let ss: f64 = segments.iter().map(|seg| sse(seg)).sum();
    Some(((ss / dof as f64).sqrt(), dof))
}

/// The gate's verdict on the newest point against the `window` before it (median
/// `baseline`), by `compare`'s rule (module doc).
fn gate(
    better: Better,
    limit: Limit,
    floor: f64,
    baseline: f64,
    window: &[HistoryPoint],
    newest: &HistoryPoint,
) -> GateStatus {
    let point = |p: &HistoryPoint| Estimate {
        value: p.value,
        stderr: p.stderr,
        basis: Basis::Batches,
        n: judge::BATCHES as u32,
    };
    let spread = scatter(window);
    let (base, cand) = match spread {
        Some((sd, dof)) => {
            let n = window.len();
            // One new point scatters like one of the window's, and at least by its own error.
            let own = newest.stderr.unwrap_or(0.0);
            (
                Estimate {
                    value: baseline,
                    stderr: Some(sd / (n as f64).sqrt()),
                    basis: Basis::Repeats,
                    n: dof as u32 + 1,
                },
                Estimate {
                    value: newest.value,
                    stderr: Some(sd.max(own)),
                    basis: Basis::Repeats,
                    n: if own > sd {
                        judge::BATCHES as u32
                    } else {
                        dof as u32 + 1
                    },
                },
            )
        }
        None => (point(&window[window.len() - 1]), point(newest)),
    };
    let allowed = judge::allowance(limit, floor, baseline);
    let j = judge::judge(better, allowed, &base, &cand);
    // Without a campaign-to-campaign scatter (one point before the newest), the points'
    // errors hold no run-to-run noise: a latency change within the load generator's own
    // timing jitter is not the service's (the rule of `compare`).
    if spread.is_none() && matches!(j.verdict, Verdict::Regression | Verdict::Improvement) {
        let last = &window[window.len() - 1];
        let jitter = [last.timing_jitter_ms, newest.timing_jitter_ms];
        if allowed.is_some_and(|a| {
            super::compare::within_jitter(newest.value - last.value, a, jitter).is_some()
        }) {
            return GateStatus::Inconclusive;
        }
        // …and the change must hold across the newest run's time batches.
        if judge::across_batches(&last.batch_values, &newest.batch_values)
            .is_some_and(|s| !s.supports(newest.value - last.value))
        {
            return GateStatus::Inconclusive;
        }
    }
    match j.verdict {
        Verdict::NoChange => GateStatus::Ok,
        Verdict::Improvement => GateStatus::Improved,
        Verdict::Regression => GateStatus::Regression,
        Verdict::Inconclusive => GateStatus::Inconclusive,
        Verdict::Info => GateStatus::Info,
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
pub fn change_points(xs: &[f64], limit: Limit, floor: f64) -> Vec<usize> {
    let mut out = Vec::new();
    segment(xs, 0, limit, floor, &mut out);
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

fn segment(xs: &[f64], offset: usize, limit: Limit, floor: f64, out: &mut Vec<usize>) {
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
        let allowed = judge::allowance(limit, floor, mean(l)).unwrap_or(f64::INFINITY);
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
        segment(&xs[..k], offset, limit, floor, out);
        segment(&xs[k..], offset + k, limit, floor, out);
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
                GateStatus::Inconclusive => "inconclusive",
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
        assert!(change_points(&flat, Limit::Relative(0.1), 0.0).is_empty());
        let step = [10.0, 10.2, 9.9, 10.1, 13.0, 13.1, 12.9];
        assert_eq!(change_points(&step, Limit::Relative(0.1), 0.0), vec![4]);
        // A lone outlier that comes back is not a change point.
        let spike = [10.0, 10.1, 9.9, 16.0, 10.0, 10.1, 9.9];
        assert!(change_points(&spike, Limit::Relative(0.1), 0.0).is_empty());
        // Two steps.
        let two = [5.0, 5.1, 4.9, 8.0, 8.1, 7.9, 12.0, 12.1, 11.9];
        assert_eq!(change_points(&two, Limit::Relative(0.1), 0.0), vec![3, 6]);
        // A shift inside the limit is not a change, however significant.
        let small = [10.0, 10.0, 10.0, 10.5, 10.5, 10.5];
        assert!(change_points(&small, Limit::Relative(0.1), 0.0).is_empty());
        assert_eq!(change_points(&small, Limit::Relative(0.01), 0.0), vec![3]);
    }

    fn pt(value: f64, stderr: Option<f64>) -> HistoryPoint {
        HistoryPoint {
            campaign: String::new(),
            source: String::new(),
            started_at: String::new(),
            started_ns: 0,
            value,
            ci95_low: None,
            ci95_high: None,
            runs: 1,
            change_point: false,
            stderr,
            timing_jitter_ms: None,
            batch_values: Vec::new(),
        }
    }

    #[test]
    fn gate_uses_the_direction_and_the_data() {
        let tight = [pt(10.0, Some(0.1)), pt(10.1, Some(0.1)), pt(9.9, Some(0.1))];
        let g = |better, window: &[HistoryPoint], newest| {
            let b = median(&window.iter().map(|p| p.value).collect::<Vec<_>>()).unwrap();
            gate(better, Limit::Relative(0.1), 0.0, b, window, &newest)
        };
        assert_eq!(
            g(Better::Lower, &tight, pt(12.0, Some(0.1))),
            GateStatus::Regression
        );
        assert_eq!(
            g(Better::Higher, &tight, pt(12.0, Some(0.1))),
            GateStatus::Improved
        );
        assert_eq!(
            g(Better::Higher, &tight, pt(9.5, Some(0.1))),
            GateStatus::Ok
        );
        // The same jump inside the scatter of earlier campaigns is not supported.
        let noisy = [pt(8.0, Some(0.1)), pt(12.0, Some(0.1)), pt(10.0, Some(0.1))];
        assert_eq!(
            g(Better::Lower, &noisy, pt(12.0, Some(0.1))),
            GateStatus::Inconclusive
        );
        // One earlier point: the batch-means errors of the two.
        assert_eq!(
            g(Better::Lower, &tight[..1], pt(12.0, Some(0.1))),
            GateStatus::Regression
        );
        // ... unless the load generator's own timing jitter (3 ms) could account for it.
        let jittery = |v| HistoryPoint {
            timing_jitter_ms: Some(3.0),
            ..pt(v, Some(0.1))
        };
        assert_eq!(
            g(Better::Lower, &[jittery(10.0)], jittery(12.0)),
            GateStatus::Inconclusive
        );
        assert_eq!(
            g(Better::Lower, &[jittery(10.0)], jittery(16.0)),
            GateStatus::Regression
        );
        assert_eq!(
            g(Better::Lower, &tight[..1], pt(12.0, None)),
            GateStatus::Inconclusive
        );
        // ... or unless the newest run's time batches do not share the change (a stall in
        // 2 of 20 batches), while a change of every batch stands.
        let batched = |v, batches: Vec<f64>| HistoryPoint {
            batch_values: batches,
            ..pt(v, Some(0.1))
        };
        let steady: Vec<f64> = (0..20).map(|i| 10.0 + 0.1 * (i % 3) as f64).collect();
        let mut stall = steady.clone();
        stall[4] = 60.0;
        stall[5] = 50.0;
        assert_eq!(
            g(
                Better::Lower,
                &[batched(10.1, steady.clone())],
                batched(15.0, stall)
            ),
            GateStatus::Inconclusive
        );
        let slower = steady.iter().map(|v| v * 1.5).collect();
        assert_eq!(
            g(
                Better::Lower,
                &[batched(10.1, steady)],
                batched(15.0, slower)
            ),
            GateStatus::Regression
        );
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
