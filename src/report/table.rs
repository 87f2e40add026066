//! One flat row per service/run/operation: the CSV and Prometheus formats are both rendered
//! from these rows, so their numbers are the JSON's numbers.

use super::analysis::{CampaignAnalysis, LlmStats, OpStats, Summary};

/// Identifying and descriptive columns of a row.
pub const LABELS: [&str; 15] = [
    "scope",
    "campaign",
    "service",
    "service_kind",
    "run_id",
    "sweep_param",
    "sweep_value",
    "op",
    "valid",
    "partial",
    "slurm_job_id",
    "host",
    "started_at",
    "ended_at",
    "recipe_sha256",
];

/// Labels that identify a series in Prometheus (the others are descriptive).
pub const PROM_LABELS: [&str; 7] = [
    "scope",
    "campaign",
    "service",
    "service_kind",
    "run_id",
    "sweep_value",
    "op",
];

pub struct Row {
    pub labels: Vec<(&'static str, String)>,
    /// Figures in a fixed order (see [`value_names`]); `None` = not applicable.
    pub values: Vec<(String, Option<f64>)>,
    pub invalid_reasons: String,
    /// `run_metrics` of the run (on its `all` row): name, value, unit.
    pub run_metrics: Vec<(String, f64, String)>,
}

impl Row {
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

const STATS: [&str; 12] = [
    "min",
    "p50",
    "p90",
    "p95",
    "p99",
    "p999",
    "max",
    "mean",
    "mean_ci95_low",
    "mean_ci95_high",
    "stddev",
    "cv",
];

fn summary_values(
    out: &mut Vec<(String, Option<f64>)>,
    prefix: &str,
    unit: &str,
    s: Option<&Summary>,
) {
    for stat in STATS {
        let v = s.and_then(|s| match stat {
            "min" => Some(s.min),
            "p50" => Some(s.p50),
            "p90" => Some(s.p90),
            "p95" => Some(s.p95),
            "p99" => Some(s.p99),
            "p999" => Some(s.p999),
            "max" => Some(s.max),
            "mean" => Some(s.mean),
            "mean_ci95_low" => Some(s.mean_ci95_low),
            "mean_ci95_high" => Some(s.mean_ci95_high),
            "stddev" => Some(s.stddev),
            _ => s.cv,
        });
        let name = if stat == "cv" {
            format!("{prefix}_cv")
        } else {
            format!("{prefix}_{stat}_{unit}")
        };
        out.push((name, v));
    }
}

struct Extra<'a> {
    target_rate_rps: Option<f64>,
    achieved_rate_rps: Option<f64>,
    duration_s: f64,
    schedule_lag: Option<&'a Summary>,
    llm: Option<&'a LlmStats>,
    energy_j: Option<f64>,
}

fn values(op: &OpStats, x: &Extra<'_>) -> Vec<(String, Option<f64>)> {
    let mut v: Vec<(String, Option<f64>)> = vec![
        ("requests".into(), Some(op.requests as f64)),
        ("ok".into(), Some(op.ok as f64)),
        ("errors".into(), Some(op.errors as f64)),
        ("error_rate".into(), Some(op.error_rate)),
        ("measured_duration_s".into(), Some(x.duration_s)),
        ("target_rate_rps".into(), x.target_rate_rps),
        ("achieved_rate_rps".into(), x.achieved_rate_rps),
        ("throughput_ops_per_s".into(), Some(op.throughput_ops_per_s)),
        ("throughput_mb_per_s".into(), Some(op.throughput_mb_per_s)),
        ("bytes_sent".into(), Some(op.bytes_sent as f64)),
        ("bytes_received".into(), Some(op.bytes_received as f64)),
    ];
    summary_values(
        &mut v,
        "latency_corrected",
        "ms",
        op.latency_corrected_ms.as_ref(),
    );
    summary_values(
        &mut v,
        "latency_uncorrected",
        "ms",
        op.latency_uncorrected_ms.as_ref(),
    );
    v.push(("schedule_lag_p99_ms".into(), x.schedule_lag.map(|s| s.p99)));
    let l = x.llm;
    for (name, s) in [
        ("ttft", l.and_then(|l| l.ttft_ms.as_ref())),
        (
            "ttft_from_scheduled",
            l.and_then(|l| l.ttft_from_scheduled_ms.as_ref()),
        ),
        ("itl", l.and_then(|l| l.itl_ms.as_ref())),
        ("tpot", l.and_then(|l| l.tpot_ms.as_ref())),
        ("e2el", l.and_then(|l| l.e2el_ms.as_ref())),
    ] {
        for (stat, f) in [
            ("p50", s.map(|s| s.p50)),
            ("p90", s.map(|s| s.p90)),
            ("p95", s.map(|s| s.p95)),
            ("p99", s.map(|s| s.p99)),
            ("mean", s.map(|s| s.mean)),
        ] {
            v.push((format!("{name}_{stat}_ms"), f));
        }
    }
    v.push(("input_tokens".into(), l.map(|l| l.input_tokens as f64)));
    v.push(("output_tokens".into(), l.map(|l| l.output_tokens as f64)));
    v.push((
        "output_tokens_per_s".into(),
        l.map(|l| l.output_tokens_per_s),
    ));
    v.push(("total_tokens_per_s".into(), l.map(|l| l.total_tokens_per_s)));
    let g = l.and_then(|l| l.goodput.as_ref());
    v.push(("goodput_ratio".into(), g.map(|g| g.goodput_ratio)));
    v.push(("goodput_rps".into(), g.map(|g| g.goodput_rps)));
    v.push(("energy_total_j".into(), x.energy_j));
    v
}

fn b(x: bool) -> String {
    if x { "true" } else { "false" }.to_string()
}

/// Rows: per run, `all` then each operation; then per service aggregate, the same.
pub fn rows(a: &CampaignAnalysis) -> Vec<Row> {
    let mut out = Vec::new();
    for r in &a.runs {
        let reasons = r
            .invalid_reasons
            .iter()
            .map(|x| x.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        for (i, op) in std::iter::once(&r.total).chain(&r.operations).enumerate() {
            let first = i == 0;
            let x = Extra {
                target_rate_rps: if first { r.rate.target_rate_rps } else { None },
                achieved_rate_rps: first.then_some(r.rate.achieved_rate_rps),
                duration_s: r.measured_duration_s,
                schedule_lag: if first {
                    r.schedule_lag_ms.as_ref()
                } else {
                    None
                },
                llm: if first { r.llm.as_ref() } else { None },
                energy_j: if first {
                    r.energy.as_ref().map(|e| e.total_energy_j)
                } else {
                    None
                },
            };
            out.push(Row {
                labels: vec![
                    ("scope", "run".into()),
                    ("campaign", r.campaign.clone()),
                    ("service", r.service.clone()),
                    ("service_kind", r.service_kind.clone()),
                    ("run_id", r.run_id.clone()),
                    ("sweep_param", r.sweep_param.clone().unwrap_or_default()),
                    ("sweep_value", r.sweep_value.clone().unwrap_or_default()),
                    ("op", op.op.clone()),
                    ("valid", b(r.valid)),
                    ("partial", b(r.partial)),
                    (
                        "slurm_job_id",
                        r.provenance
                            .slurm_job_id
                            .clone()
                            .map(|j| match r.provenance.slurm_array_task {
                                Some(t) => format!("{j}_{t}"),
                                None => j,
                            })
                            .unwrap_or_default(),
                    ),
                    ("host", r.provenance.host.clone()),
                    ("started_at", r.started_at.clone()),
                    ("ended_at", r.ended_at.clone()),
                    ("recipe_sha256", r.provenance.recipe_sha256.clone()),
                ],
                values: values(op, &x),
                invalid_reasons: reasons.clone(),
                run_metrics: if first {
                    r.run_metrics
                        .iter()
                        .map(|m| (m.name.clone(), m.value, m.unit.clone()))
                        .collect()
                } else {
                    Vec::new()
                },
            });
        }
    }
    for s in &a.services {
        for (i, op) in std::iter::once(&s.total).chain(&s.operations).enumerate() {
            let x = Extra {
                target_rate_rps: None,
                achieved_rate_rps: None,
                duration_s: s.span_s,
                schedule_lag: None,
                llm: if i == 0 { s.llm.as_ref() } else { None },
                energy_j: None,
            };
            out.push(Row {
                labels: vec![
                    ("scope", "service".into()),
                    ("campaign", a.campaign.clone()),
                    ("service", s.service.clone()),
                    ("service_kind", s.service_kind.clone()),
                    ("run_id", s.run_ids.join("+")),
                    ("sweep_param", s.sweep_param.clone().unwrap_or_default()),
                    ("sweep_value", s.sweep_value.clone().unwrap_or_default()),
                    ("op", op.op.clone()),
                    ("valid", b(s.valid)),
                    ("partial", b(s.partial)),
                    ("slurm_job_id", String::new()),
                    ("host", String::new()),
                    ("started_at", s.measured_from.clone()),
                    ("ended_at", s.measured_to.clone()),
                    ("recipe_sha256", String::new()),
                ],
                values: values(op, &x),
                invalid_reasons: String::new(),
                run_metrics: Vec::new(),
            });
        }
    }
    out
}

/// Names of the value columns, in order.
pub fn value_names() -> Vec<String> {
    let op = OpStats {
        op: String::new(),
        requests: 0,
        ok: 0,
        errors: 0,
        error_rate: 0.0,
        errors_by_class: Default::default(),
        bytes_sent: 0,
        bytes_received: 0,
        throughput_ops_per_s: 0.0,
        throughput_mb_per_s: 0.0,
        latency_corrected_ms: None,
        latency_uncorrected_ms: None,
    };
    let x = Extra {
        target_rate_rps: None,
        achieved_rate_rps: None,
        duration_s: 0.0,
        schedule_lag: None,
        llm: None,
        energy_j: None,
    };
    values(&op, &x).into_iter().map(|(k, _)| k).collect()
}
