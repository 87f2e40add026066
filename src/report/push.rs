//! A finished campaign's final figures as Pushgateway groups (`factorybench push`): one group
//! per run and one per service measurement, each a complete text exposition, so a second push
//! of the same campaign replaces the groups instead of adding to them.
//!
//! The figures are the report's own numbers: the gauges are the rows of `report --format prom`
//! ([`super::table`]; same names, base units), and each group carries the corrected latency
//! histogram of its successful requests as `factorybench_request_duration_seconds`. With
//! `--compat seed` the earlier tool's names ([`crate::compat`]) are added.
//!
//! Grouping labels: `job` (`--job`, default [`DEFAULT_JOB`]), `campaign` (the label the live
//! pushes used), `service`, `scope`
//! (`run` | `service`) and `run_id` (a service measurement's runs joined with `+`, as in the
//! CSV and Prometheus reports).

use super::analysis::CampaignAnalysis;
use super::model::HistogramBucket;
use super::table::{rows, value_names, Row};
use super::text::{num, prom_name};
use crate::compat::{seed_exposition, CompatNames, DurationHistogram, SeedFigures};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The `job` label of a pushed campaign unless `--job` names another. Not the live pushes'
/// `factorybench` job, so finished campaigns never look like running ones to the alert rules.
pub const DEFAULT_JOB: &str = "factorybench_campaign";

/// The labels that identify a group, in the order of its URL path (`job` first).
pub const GROUP_LABELS: [&str; 5] = ["job", "campaign", "service", "scope", "run_id"];

/// Labels of a row that stay on its series (the others are the group's).
const SERIES_LABELS: [&str; 3] = ["service_kind", "sweep_value", "op"];

/// The histogram family every group carries.
pub const DURATION_HISTOGRAM: &str = "factorybench_request_duration_seconds";

/// A group's label pairs, in [`GROUP_LABELS`] order.
pub type GroupLabels = Vec<(&'static str, String)>;

/// One Pushgateway group: its labels and its exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct PushGroup {
    pub labels: GroupLabels,
    pub body: String,
}

impl PushGroup {
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn series_labels(row: &Row) -> String {
    SERIES_LABELS
        .iter()
        .map(|k| format!("{k}=\"{}\"", escape(row.label(k))))
        .collect::<Vec<_>>()
        .join(",")
}

/// The groups of a campaign: every run, then every service measurement. `campaign` is the
/// `campaign` label: what the live pushes of the same runs carried (the campaign directory's
/// name under SLURM), else the recorded campaign name.
pub fn campaign_groups(
    a: &CampaignAnalysis,
    job: &str,
    campaign: &str,
    compat: Option<CompatNames>,
) -> Vec<PushGroup> {
    let all = rows(a);
    let names = value_names();
    // Rows of one group are adjacent (`all` first, then each operation).
    let mut groups: Vec<(GroupLabels, Vec<&Row>)> = Vec::new();
    for row in &all {
        let labels: GroupLabels = GROUP_LABELS
            .iter()
            .map(|k| {
                let v = match *k {
                    "job" => job.to_string(),
                    "campaign" => campaign.to_string(),
                    _ => row.label(k).to_string(),
                };
                (*k, v)
            })
            .collect();
        match groups.last_mut() {
            Some((l, rs)) if *l == labels => rs.push(row),
            _ => groups.push((labels, vec![row])),
        }
    }
    groups
        .into_iter()
        .map(|(labels, rs)| {
            let run_ids: Vec<&str> = labels[4].1.split('+').collect();
            let hist = duration_histogram(a, rs[0].label("service"), &run_ids);
            let body = group_body(&rs, &names, hist.as_ref(), compat);
            PushGroup { labels, body }
        })
        .collect()
}

/// Corrected latency histogram of a group (ms buckets, not cumulative) and the sum of its
/// observations (ms): a run's own, or a service measurement's runs merged (their buckets share
/// one log-spaced grid).
struct GroupHistogram {
    buckets: Vec<HistogramBucket>,
    sum_ms: f64,
}

fn duration_histogram(
    a: &CampaignAnalysis,
    service: &str,
    run_ids: &[&str],
) -> Option<GroupHistogram> {
    let mut merged: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    let mut sum_ms = 0.0;
    for r in a
        .runs
        .iter()
        .filter(|r| r.service == service && run_ids.contains(&r.run_id.as_str()))
    {
        for b in &r.latency_histogram_ms {
            merged.entry(b.upper.to_bits()).or_insert((b.upper, 0)).1 += b.count;
        }
        if let Some(s) = &r.total.latency_corrected_ms {
            sum_ms += s.mean * s.count as f64;
        }
    }
    if merged.is_empty() {
        return None;
    }
    let mut buckets: Vec<HistogramBucket> = merged
        .into_values()
        .map(|(upper, count)| HistogramBucket { upper, count })
        .collect();
    buckets.sort_by(|x, y| x.upper.total_cmp(&y.upper));
    Some(GroupHistogram { buckets, sum_ms })
}

fn group_body(
    rows: &[&Row],
    names: &[String],
    hist: Option<&GroupHistogram>,
    compat: Option<CompatNames>,
) -> String {
    let mut s = String::new();
    s.push_str("# HELP factorybench_valid 1 when the run (or every run of the measurement) passed every validity gate.\n");
    s.push_str("# TYPE factorybench_valid gauge\n");
    let first = rows[0];
    let _ = writeln!(
        s,
        "factorybench_valid{{{}}} {}",
        series_labels(first),
        u8::from(first.label("valid") == "true")
    );
    if !first.run_metrics.is_empty() {
        s.push_str("# HELP factorybench_run_metric Figures measured outside the timed region (recall_at_k, server counters).\n");
        s.push_str("# TYPE factorybench_run_metric gauge\n");
        for (n, v, u) in &first.run_metrics {
            let _ = writeln!(
                s,
                "factorybench_run_metric{{{},name=\"{}\",unit=\"{}\"}} {}",
                series_labels(first),
                escape(n),
                escape(u),
                num(*v)
            );
        }
    }
    for (i, col) in names.iter().enumerate() {
        let (name, divisor) = prom_name(col);
        let mut samples = String::new();
        for row in rows {
            if let Some(v) = row.values[i].1 {
                let _ = writeln!(
                    samples,
                    "factorybench_{name}{{{}}} {}",
                    series_labels(row),
                    num(v / divisor)
                );
            }
        }
        if !samples.is_empty() {
            let _ = writeln!(
                s,
                "# HELP factorybench_{name} Report column {col}, in base units."
            );
            let _ = writeln!(s, "# TYPE factorybench_{name} gauge");
            s.push_str(&samples);
        }
    }
    if let Some(h) = hist {
        let _ = writeln!(
            s,
            "# HELP {DURATION_HISTOGRAM} Latency of successful requests, scheduled send to last byte (coordinated-omission corrected)."
        );
        let _ = writeln!(s, "# TYPE {DURATION_HISTOGRAM} histogram");
        let labels = series_labels(first);
        let mut cumulative = 0u64;
        for b in &h.buckets {
            cumulative += b.count;
            let _ = writeln!(
                s,
                "{DURATION_HISTOGRAM}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                num(b.upper / 1000.0)
            );
        }
        let _ = writeln!(
            s,
            "{DURATION_HISTOGRAM}_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            s,
            "{DURATION_HISTOGRAM}_sum{{{labels}}} {}",
            num(h.sum_ms / 1000.0)
        );
        let _ = writeln!(s, "{DURATION_HISTOGRAM}_count{{{labels}}} {cumulative}");
    }
    if compat == Some(CompatNames::Seed) {
        let value = |col: &str| {
            names
                .iter()
                .position(|n| n == col)
                .and_then(|i| first.values[i].1)
                .unwrap_or(0.0) as u64
        };
        let duration = hist.map(|h| {
            let buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .map(|b| (b.upper / 1000.0, b.count))
                .collect();
            DurationHistogram::from_buckets(&buckets, h.sum_ms / 1000.0)
        });
        s.push_str(&seed_exposition(&SeedFigures {
            requests_total: value("requests"),
            successful: value("ok"),
            failed: value("errors"),
            duration,
        }));
    }
    s
}
