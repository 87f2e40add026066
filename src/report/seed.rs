//! `report --format json --compat seed`: the campaign in the layout of the earlier Python
//! tool's JSON report (top-level `summary`, `timing`, `percentiles`), so jq scripts written for
//! it keep working. Computed from the same analysis as the full report; docs/migrating.md maps
//! every field to the full report's.
//!
//! The top-level blocks describe the campaign's single service measurement; a campaign with
//! several has the counts summed at the top (`timing` spans them all, `percentiles` is `null`:
//! percentiles of different services do not combine) and each one under `services`.

use super::document::ReportDocument;
use super::integrity;
use super::model::{OpStats, ServiceAggregate};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedSummary {
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    /// successful / total (0 without requests).
    pub success_rate: f64,
    /// Successful requests per second of the measured window.
    pub requests_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedTiming {
    /// RFC 3339.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration_seconds: f64,
    /// Sent → done of successful requests, as the earlier tool timed them.
    pub mean_response_time_ms: Option<f64>,
    pub min_response_time_ms: Option<f64>,
    pub max_response_time_ms: Option<f64>,
}

/// Percentiles of sent → done of successful requests, in `unit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedPercentiles {
    pub unit: &'static str,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedBlock {
    pub summary: SeedSummary,
    pub timing: SeedTiming,
    pub percentiles: Option<SeedPercentiles>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedReport {
    /// Always `seed`: this is the compatibility view, not the versioned report.
    pub compat: &'static str,
    pub benchmark_id: String,
    pub valid: bool,
    pub partial: bool,
    #[serde(flatten)]
    pub campaign: SeedBlock,
    /// Per service measurement, keyed `service` (or `service[param=value]` for a sweep point,
    /// `service#2` for a later measurement of the same service).
    pub services: BTreeMap<String, SeedBlock>,
    pub tool_version: String,
    pub report_sha256: String,
}

fn summary(t: &OpStats) -> SeedSummary {
    SeedSummary {
        total_requests: t.requests,
        successful_requests: t.ok,
        failed_requests: t.errors,
        success_rate: if t.requests == 0 {
            0.0
        } else {
            t.ok as f64 / t.requests as f64
        },
        requests_per_second: t.throughput_ops_per_s,
    }
}

fn block(s: &ServiceAggregate) -> SeedBlock {
    let lat = s.total.latency_uncorrected_ms.as_ref();
    SeedBlock {
        summary: summary(&s.total),
        timing: SeedTiming {
            start_time: Some(s.measured_from.clone()).filter(|x| !x.is_empty()),
            end_time: Some(s.measured_to.clone()).filter(|x| !x.is_empty()),
            duration_seconds: s.span_s,
            mean_response_time_ms: lat.map(|l| l.mean),
            min_response_time_ms: lat.map(|l| l.min),
            max_response_time_ms: lat.map(|l| l.max),
        },
        percentiles: lat.map(|l| SeedPercentiles {
            unit: "ms",
            p50: l.p50,
            p90: l.p90,
            p95: l.p95,
            p99: l.p99,
        }),
    }
}

/// The seed view of a report.
pub fn seed_report(d: &ReportDocument) -> SeedReport {
    let a = &d.analysis;
    let mut services = BTreeMap::new();
    for s in &a.services {
        let base = match (&s.sweep_param, &s.sweep_value) {
            (Some(p), Some(v)) => format!("{}[{p}={v}]", s.service),
            _ => s.service.clone(),
        };
        let mut key = base.clone();
        let mut n = 1;
        while services.contains_key(&key) {
            n += 1;
            key = format!("{base}#{n}");
        }
        services.insert(key, block(s));
    }
    let campaign = match a.services.as_slice() {
        [one] => block(one),
        many => {
            let (mut total, mut ok, mut errors, mut rps) = (0, 0, 0, 0.0);
            for s in many {
                total += s.total.requests;
                ok += s.total.ok;
                errors += s.total.errors;
                rps += s.total.throughput_ops_per_s;
            }
            SeedBlock {
                summary: SeedSummary {
                    total_requests: total,
                    successful_requests: ok,
                    failed_requests: errors,
                    success_rate: if total == 0 {
                        0.0
                    } else {
                        ok as f64 / total as f64
                    },
                    requests_per_second: rps,
                },
                timing: SeedTiming {
                    start_time: a.started_at.clone(),
                    end_time: a.ended_at.clone(),
                    duration_seconds: many.iter().map(|s| s.span_s).fold(0.0, f64::max),
                    mean_response_time_ms: None,
                    min_response_time_ms: None,
                    max_response_time_ms: None,
                },
                percentiles: None,
            }
        }
    };
    SeedReport {
        compat: "seed",
        benchmark_id: a.campaign.clone(),
        valid: a.valid,
        partial: a.partial,
        campaign,
        services,
        tool_version: d.provenance.tool_version.clone(),
        report_sha256: integrity::PLACEHOLDER.to_string(),
    }
}

/// The seed view as sealed JSON (`factorybench verify` checks it like any report).
pub fn to_seed_json(d: &ReportDocument) -> String {
    let mut s = serde_json::to_string_pretty(&seed_report(d)).expect("seed report serializes");
    s.push('\n');
    integrity::seal(s)
}
