//! Compare two campaigns (or JSON reports) per service and metric, with thresholds.
//!
//! Services are matched by name and sweep point. A file that holds several measurements of a
//! service (separate `run` invocations appending to it) is compared by its latest measurement,
//! and [`Comparison::compared`] names the runs on each side and how many earlier measurements
//! were left out. Each metric has a direction (latency: lower is
//! better; throughput: higher is better) and a limit: relative (`10%` of the baseline) or
//! absolute (`+5ms`, `0.01`), always measured in the worse direction. A change beyond the
//! limit in the worse direction is a regression; so is a candidate service that is invalid or
//! missing. Percentiles of a service merge its runs' HDR histograms (see `analysis`).

use super::analysis::{CampaignAnalysis, ServiceAggregate};
use super::document::ReportDocument;
use super::svg::{esc, fmt_num};
use crate::recipe::threshold;
pub use crate::recipe::threshold::{Better, Limit, ThresholdError, METRICS};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    #[error("{path}: {message}")]
    Input { path: String, message: String },
}

impl Limit {
    pub fn describe(&self, unit: &str) -> String {
        match self {
            Limit::Relative(f) => format!("{}%", fmt_num(f * 100.0)),
            Limit::Absolute(a) => {
                format!("{}{}", fmt_num(*a), if unit == "ms" { "ms" } else { "" })
            }
            Limit::Off => "–".into(),
        }
    }
}

type Getter = fn(&ServiceAggregate) -> Option<f64>;

pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub default: Limit,
    pub get: Getter,
}

fn lat(s: &ServiceAggregate) -> Option<&super::analysis::Summary> {
    s.total.latency_corrected_ms.as_ref()
}

fn getter(name: &str) -> Getter {
    match name {
        "throughput_ops_per_s" => |s| Some(s.total.throughput_ops_per_s),
        "throughput_mb_per_s" => {
            |s| (s.total.throughput_mb_per_s > 0.0).then_some(s.total.throughput_mb_per_s)
        }
        "error_rate" => |s| Some(s.total.error_rate),
        "latency_p50_ms" => |s| lat(s).map(|l| l.p50),
        "latency_p90_ms" => |s| lat(s).map(|l| l.p90),
        "latency_p99_ms" => |s| lat(s).map(|l| l.p99),
        "latency_p999_ms" => |s| lat(s).map(|l| l.p999),
        "latency_mean_ms" => |s| lat(s).map(|l| l.mean),
        "latency_uncorrected_p99_ms" => |s| s.total.latency_uncorrected_ms.as_ref().map(|l| l.p99),
        "ttft_p50_ms" => |s| s.llm.as_ref()?.ttft_ms.as_ref().map(|l| l.p50),
        "ttft_p99_ms" => |s| s.llm.as_ref()?.ttft_ms.as_ref().map(|l| l.p99),
        "tpot_p99_ms" => |s| s.llm.as_ref()?.tpot_ms.as_ref().map(|l| l.p99),
        "itl_p99_ms" => |s| s.llm.as_ref()?.itl_ms.as_ref().map(|l| l.p99),
        "e2el_p99_ms" => |s| s.llm.as_ref()?.e2el_ms.as_ref().map(|l| l.p99),
        "output_tokens_per_s" => |s| s.llm.as_ref().map(|l| l.output_tokens_per_s),
        "goodput_ratio" => |s| s.llm.as_ref()?.goodput.as_ref().map(|g| g.goodput_ratio),
        _ => |_| None,
    }
}

/// The compared metrics ([`METRICS`]) with the reader of each from a service aggregate.
pub fn metrics() -> Vec<MetricDef> {
    METRICS
        .iter()
        .map(|m| MetricDef {
            name: m.name,
            unit: m.unit,
            better: m.better,
            default: m.default,
            get: getter(m.name),
        })
        .collect()
}

/// Parse `METRIC=LIMIT` (see [`crate::recipe::threshold::parse_threshold`]).
pub fn parse_threshold(spec: &str) -> Result<(&'static str, Limit), CompareError> {
    Ok(threshold::parse_threshold(spec)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Improved,
    Regression,
    /// In the baseline, not in the candidate (a regression).
    Missing,
    /// Only in the candidate.
    New,
    /// No limit set: shown only.
    Info,
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Improved => "improved",
            Status::Regression => "REGRESSION",
            Status::Missing => "MISSING",
            Status::New => "new",
            Status::Info => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// candidate − baseline.
    pub change: Option<f64>,
    /// (candidate − baseline) / baseline.
    pub change_ratio: Option<f64>,
    pub limit: Limit,
    pub status: Status,
}

/// Which measurement of a service was compared on each side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComparedPair {
    pub service: String,
    pub baseline_run_ids: Vec<String>,
    pub baseline_measured_from: String,
    /// Earlier measurements of this service in the baseline, not compared.
    pub baseline_skipped: usize,
    pub candidate_run_ids: Vec<String>,
    pub candidate_measured_from: String,
    pub candidate_skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    pub baseline: String,
    pub candidate: String,
    /// The measurements compared, per service (the latest of each side).
    #[serde(default)]
    pub compared: Vec<ComparedPair>,
    pub rows: Vec<Row>,
    pub regressions: usize,
    /// Validity of each side (an invalid candidate is a regression row `valid`).
    pub baseline_valid: bool,
    pub candidate_valid: bool,
    /// Set when the two sides ran on different hardware (provenance fingerprints differ):
    /// the comparison still runs, but differences may be the hardware's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware_warnings: Vec<String>,
}

/// Load one side: a JSON report (hash checked) or a campaign (.db / directory).
pub fn load_side(path: &Path) -> anyhow::Result<CampaignAnalysis> {
    let is_json = path.is_file()
        && (path.extension().is_some_and(|e| e == "json")
            || std::fs::read(path)
                .ok()
                .is_some_and(|b| b.first() == Some(&b'{')));
    if is_json {
        let bytes = std::fs::read(path)?;
        if let Err(e) = super::integrity::verify(&bytes) {
            return Err(CompareError::Input {
                path: path.display().to_string(),
                message: e.to_string(),
            }
            .into());
        }
        let doc: ReportDocument =
            serde_json::from_slice(&bytes).map_err(|e| CompareError::Input {
                path: path.display().to_string(),
                message: format!("not a factorybench JSON report: {e}"),
            })?;
        return Ok(doc.analysis);
    }
    Ok(super::analysis::analyze_path(path)?)
}

fn key(s: &ServiceAggregate) -> String {
    match (&s.sweep_param, &s.sweep_value) {
        (Some(p), Some(v)) => format!("{}[{p}={v}]", s.service),
        (None, Some(v)) => format!("{}[{v}]", s.service),
        _ => s.service.clone(),
    }
}

/// The latest measurement of each service and sweep point (by start of its measured window),
/// with the number of earlier ones left out, in first-appearance order.
fn latest_per_key(a: &CampaignAnalysis) -> Vec<(&ServiceAggregate, usize)> {
    let mut out: Vec<(&ServiceAggregate, usize)> = Vec::new();
    for s in &a.services {
        match out.iter_mut().find(|(o, _)| key(o) == key(s)) {
            Some(slot) => {
                if s.measured_from >= slot.0.measured_from {
                    slot.0 = s;
                }
                slot.1 += 1;
            }
            None => out.push((s, 0)),
        }
    }
    out
}

/// `compare_thresholds` of the candidate service's recipe (first run of the group that has
/// them); invalid entries are ignored (the recipe was validated when it ran).
fn recipe_thresholds(cand: &CampaignAnalysis, s: &ServiceAggregate) -> Vec<(&'static str, Limit)> {
    cand.runs
        .iter()
        .filter(|r| s.run_ids.contains(&r.run_id))
        .find_map(|r| r.recipe.get("compare_thresholds")?.as_object().cloned())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| parse_threshold(&format!("{k}={}", v.as_str()?)).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Compare per service (matched by name and sweep point). Limits: `overrides` (command line,
/// last wins), then the candidate recipe's `compare_thresholds`, then the defaults.
pub fn compare(
    baseline_name: &str,
    base: &CampaignAnalysis,
    candidate_name: &str,
    cand: &CampaignAnalysis,
    overrides: &[(&'static str, Limit)],
) -> Comparison {
    let defs = metrics();
    let mut rows = Vec::new();
    let mut compared = Vec::new();
    let base_latest = latest_per_key(base);
    let cand_latest = latest_per_key(cand);
    for &(b, b_skipped) in &base_latest {
        let k = key(b);
        let c = cand_latest.iter().find(|(c, _)| key(c) == k).copied();
        if let Some((c, c_skipped)) = c {
            compared.push(ComparedPair {
                service: k.clone(),
                baseline_run_ids: b.run_ids.clone(),
                baseline_measured_from: b.measured_from.clone(),
                baseline_skipped: b_skipped,
                candidate_run_ids: c.run_ids.clone(),
                candidate_measured_from: c.measured_from.clone(),
                candidate_skipped: c_skipped,
            });
        }
        let Some((c, _)) = c else {
            rows.push(Row {
                service: k,
                metric: "service".into(),
                unit: String::new(),
                better: Better::Higher,
                baseline: Some(1.0),
                candidate: None,
                change: None,
                change_ratio: None,
                limit: Limit::Off,
                status: Status::Missing,
            });
            continue;
        };
        rows.push(Row {
            service: k.clone(),
            metric: "valid".into(),
            unit: "bool".into(),
            better: Better::Higher,
            baseline: Some(b.valid as u8 as f64),
            candidate: Some(c.valid as u8 as f64),
            change: Some(c.valid as u8 as f64 - b.valid as u8 as f64),
            change_ratio: None,
            limit: Limit::Absolute(0.0),
            status: if !c.valid {
                Status::Regression
            } else if !b.valid {
                Status::Improved
            } else {
                Status::Ok
            },
        });
        let from_recipe = recipe_thresholds(cand, c);
        for m in &defs {
            let (bv, cv) = ((m.get)(b), (m.get)(c));
            if bv.is_none() && cv.is_none() {
                continue;
            }
            let limit = overrides
                .iter()
                .rev()
                .chain(from_recipe.iter())
                .find(|(n, _)| *n == m.name)
                .map(|(_, l)| *l)
                .unwrap_or(m.default);
            let change = bv.zip(cv).map(|(b, c)| c - b);
            let change_ratio = bv
                .zip(cv)
                .and_then(|(b, c)| (b != 0.0).then(|| (c - b) / b.abs()));
            let status = match (bv, cv) {
                (Some(bv), Some(cv)) => {
                    let worse = match m.better {
                        Better::Lower => cv - bv,
                        Better::Higher => bv - cv,
                    };
                    let allowed = match limit {
                        Limit::Relative(f) => Some(f * bv.abs()),
                        Limit::Absolute(a) => Some(a),
                        Limit::Off => None,
                    };
                    match allowed {
                        None => Status::Info,
                        Some(a) if worse > a + 1e-12 => Status::Regression,
                        Some(a) if -worse > a + 1e-12 => Status::Improved,
                        Some(_) => Status::Ok,
                    }
                }
                (Some(_), None) => {
                    if matches!(limit, Limit::Off) {
                        Status::Info
                    } else {
                        Status::Missing
                    }
                }
                _ => Status::New,
            };
            rows.push(Row {
                service: k.clone(),
                metric: m.name.into(),
                unit: m.unit.into(),
                better: m.better,
                baseline: bv,
                candidate: cv,
                change,
                change_ratio,
                limit,
                status,
            });
        }
    }
    for &(c, _) in &cand_latest {
        if !base_latest.iter().any(|(b, _)| key(b) == key(c)) {
            rows.push(Row {
                service: key(c),
                metric: "service".into(),
                unit: String::new(),
                better: Better::Higher,
                baseline: None,
                candidate: Some(1.0),
                change: None,
                change_ratio: None,
                limit: Limit::Off,
                status: Status::New,
            });
        }
    }
    let regressions = rows
        .iter()
        .filter(|r| matches!(r.status, Status::Regression | Status::Missing))
        .count();
    Comparison {
        baseline: baseline_name.into(),
        candidate: candidate_name.into(),
        compared,
        rows,
        regressions,
        baseline_valid: base.valid,
        candidate_valid: cand.valid,
        hardware_warnings: super::provenance::hardware_warnings(base, cand),
    }
}

fn v(x: Option<f64>) -> String {
    x.map(fmt_num).unwrap_or_else(|| "–".into())
}

fn change_text(r: &Row) -> String {
    match (r.change, r.change_ratio) {
        (Some(c), Some(p)) if r.unit != "bool" => format!(
            "{}{} ({:+.1}%)",
            if c >= 0.0 { "+" } else { "" },
            fmt_num(c),
            p * 100.0
        ),
        (Some(c), _) if r.unit != "bool" => {
            format!("{}{}", if c >= 0.0 { "+" } else { "" }, fmt_num(c))
        }
        _ => String::new(),
    }
}

fn cells(r: &Row) -> [String; 7] {
    let (b, c) = if r.unit == "bool" {
        let yn = |x: Option<f64>| match x {
            Some(v) if v > 0.5 => "yes".to_string(),
            Some(_) => "NO".to_string(),
            None => "–".into(),
        };
        (yn(r.baseline), yn(r.candidate))
    } else if r.metric == "service" {
        (
            if r.baseline.is_some() {
                "present"
            } else {
                "–"
            }
            .into(),
            if r.candidate.is_some() {
                "present"
            } else {
                "absent"
            }
            .into(),
        )
    } else {
        (v(r.baseline), v(r.candidate))
    };
    [
        r.service.clone(),
        r.metric.clone(),
        b,
        c,
        change_text(r),
        if r.unit == "bool" || r.metric == "service" {
            "–".into()
        } else {
            r.limit.describe(&r.unit)
        },
        r.status.label().to_string(),
    ]
}

const HEAD: [&str; 7] = [
    "service",
    "metric",
    "baseline",
    "candidate",
    "change",
    "limit",
    "status",
];

/// One line per compared service: which runs, measured when, and what was left out.
pub fn compared_lines(c: &Comparison) -> Vec<String> {
    let side = |ids: &[String], from: &str, skipped: usize, name: &str| {
        let mut t = format!(
            "run{} {} ({from})",
            if ids.len() == 1 { "" } else { "s" },
            ids.join("+")
        );
        if skipped > 0 {
            let _ = write!(
                t,
                " [latest of {} measurements in the {name}; earlier ones not compared]",
                skipped + 1
            );
        }
        t
    };
    c.compared
        .iter()
        .map(|p| {
            format!(
                "{}: baseline {} vs candidate {}",
                p.service,
                side(
                    &p.baseline_run_ids,
                    &p.baseline_measured_from,
                    p.baseline_skipped,
                    "baseline"
                ),
                side(
                    &p.candidate_run_ids,
                    &p.candidate_measured_from,
                    p.candidate_skipped,
                    "candidate"
                ),
            )
        })
        .collect()
}

fn verdict(c: &Comparison) -> String {
    if c.regressions == 0 {
        "OK: no regression beyond the thresholds".into()
    } else {
        format!(
            "REGRESSION: {} metric(s) beyond the thresholds",
            c.regressions
        )
    }
}

fn warnings_text(c: &Comparison) -> String {
    c.hardware_warnings
        .iter()
        .map(|w| format!("WARNING: {w}\n"))
        .collect()
}

pub fn to_text(c: &Comparison) -> String {
    let mut rows: Vec<[String; 7]> = vec![HEAD.map(String::from)];
    rows.extend(c.rows.iter().map(cells));
    let mut w = [0usize; 7];
    for r in &rows {
        for (i, s) in r.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let mut s = format!("baseline:  {}\ncandidate: {}\n", c.baseline, c.candidate);
    for l in compared_lines(c) {
        let _ = writeln!(s, "compared:  {l}");
    }
    s.push_str(&warnings_text(c));
    s.push('\n');
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if (2..=4).contains(&i) {
                    format!("{x:>width$}", width = w[i])
                } else {
                    format!("{x:<width$}", width = w[i])
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if n == 0 {
            let total: usize = w.iter().sum::<usize>() + 2 * 6;
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    let _ = write!(s, "\n{}\n", verdict(c));
    s
}

pub fn to_markdown(c: &Comparison) -> String {
    let mut s = format!(
        "## factorybench compare\n\nbaseline: `{}`  \ncandidate: `{}`\n\n{}",
        c.baseline,
        c.candidate,
        c.hardware_warnings
            .iter()
            .map(|w| format!("> **Warning:** {w}\n\n"))
            .collect::<String>(),
    );
    for l in compared_lines(c) {
        let _ = writeln!(s, "- compared: {}", l.replace('|', "\\|"));
    }
    let _ = write!(s, "\n**{}**\n\n", verdict(c));
    s.push_str(&format!("| {} |\n", HEAD.join(" | ")));
    s.push_str("|---|---|---:|---:|---:|---:|---|\n");
    for r in &c.rows {
        let mut x = cells(r).map(|x| x.replace('|', "\\|"));
        if matches!(r.status, Status::Regression | Status::Missing) {
            x[6] = format!("**{}**", x[6]);
        }
        s.push_str(&format!("| {} |\n", x.join(" | ")));
    }
    s
}

pub fn to_html(c: &Comparison) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>factorybench compare</title><style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}tr.reg td{background:#fde8e8;font-weight:600}tr.imp td{background:#e8f5e9}.banner{padding:10px 14px;border-radius:6px;color:#fff}.bad{background:#c62828}.good{background:#2e7d32}</style></head><body>",
    );
    let _ = write!(
        s,
        "<div class=\"banner {}\">{}</div><p>baseline: <code>{}</code><br>candidate: <code>{}</code>",
        if c.regressions > 0 { "bad" } else { "good" },
        esc(&verdict(c)),
        esc(&c.baseline),
        esc(&c.candidate)
    );
    for l in compared_lines(c) {
        let _ = write!(s, "<br>compared: {}", esc(&l));
    }
    s.push_str("</p>");
    for w in &c.hardware_warnings {
        let _ = write!(s, "<p class=\"warn\"><b>Warning:</b> {}</p>", esc(w));
    }
    s.push_str("<table><tr>");
    for h in HEAD {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr>");
    for r in &c.rows {
        let cls = match r.status {
            Status::Regression | Status::Missing => " class=\"reg\"",
            Status::Improved => " class=\"imp\"",
            _ => "",
        };
        let _ = write!(s, "<tr{cls}>");
        for x in cells(r) {
            let _ = write!(s, "<td>{}</td>", esc(&x));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></body></html>\n");
    s
}
