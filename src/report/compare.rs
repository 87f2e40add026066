//! Compare two campaigns (or JSON reports) per service and metric, with thresholds.
//!
//! Services are matched by name and sweep point. A file that holds several measurements of a
//! service (separate `run` invocations appending to it) is compared by its latest measurement,
//! and [`Comparison::compared`] names the runs on each side and how many earlier measurements
//! were left out. Each metric has a direction (latency: lower is
//! better; throughput: higher is better) and a limit: relative (`10%` of the baseline) or
//! absolute (`+5ms`, `0.01`), always measured in the worse direction, and an absolute floor
//! (`--min-change`; 0.05 ms for millisecond metrics by default). A change beyond the limit in
//! the worse direction is a regression only when the data supports it: the 95 % interval of
//! the change excludes zero (see [`super::judge`]); beyond the limit without that support it
//! is *inconclusive*, never a regression. A candidate service that is invalid or missing is a
//! regression. Percentiles of a service merge its runs' HDR histograms (see `analysis`).
//! With `--repeats`, every measurement of a service with the latest one's recipe is a repeat:
//! the side's value is their mean and its interval their run-to-run spread.

use super::analysis::{CampaignAnalysis, RunAnalysis, ServiceAggregate};
use super::document::ReportDocument;
use super::judge::{self, Basis, Estimate, Judgement, Verdict, DEFAULT_MS_FLOOR};
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

type Getter = Box<dyn Fn(&ServiceAggregate) -> Option<f64> + Send + Sync>;

pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub default: Limit,
    /// Default absolute floor of the allowance (see [`judge::allowance`]).
    pub floor: f64,
    pub get: Getter,
}

impl MetricDef {
    /// The metric's value with its batch-means standard error.
    pub fn estimate(&self, s: &ServiceAggregate) -> Option<Estimate> {
        let value = (self.get)(s)?;
        Some(match s.spread.get(self.name) {
            Some(sp) => Estimate {
                value,
                stderr: Some(sp.stderr),
                basis: Basis::Batches,
                n: sp.batches,
            },
            None => Estimate::bare(value),
        })
    }
}

fn getter(name: &'static str) -> impl Fn(&ServiceAggregate) -> Option<f64> {
    move |s| super::metric::value(name, &s.total, s.llm.as_ref())
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
            floor: if m.unit == "ms" {
                DEFAULT_MS_FLOOR
            } else {
                0.0
            },
            get: Box::new(getter(m.name)),
        })
        .collect()
}

/// Parse `METRIC=LIMIT` (see [`crate::recipe::threshold::parse_threshold`]).
pub fn parse_threshold(spec: &str) -> Result<(&'static str, Limit), CompareError> {
    Ok(threshold::parse_threshold(spec)?)
}

/// Parse `METRIC=AMOUNT` of `--min-change` (see [`threshold::parse_floor`]).
pub fn parse_floor(spec: &str) -> Result<(&'static str, f64), CompareError> {
    Ok(threshold::parse_floor(spec)?)
}

/// How `compare` judges (command line and defaults).
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// `--threshold` limits (last wins), before the recipe's and the defaults.
    pub thresholds: Vec<(&'static str, Limit)>,
    /// `--min-change` floors (last wins), before the defaults.
    pub floors: Vec<(&'static str, f64)>,
    /// Use every measurement of a service's latest recipe as repeats.
    pub repeats: bool,
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
    /// Beyond the limit, but the interval of the change includes zero: the runs are too
    /// short or too noisy to tell (never a regression).
    Inconclusive,
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Ok => "no change",
            Status::Improved => "improvement",
            Status::Regression => "REGRESSION",
            Status::Missing => "MISSING",
            Status::New => "new",
            Status::Info => "",
            Status::Inconclusive => "inconclusive",
        }
    }

    fn of(v: Verdict) -> Status {
        match v {
            Verdict::NoChange => Status::Ok,
            Verdict::Improvement => Status::Improved,
            Verdict::Regression => Status::Regression,
            Verdict::Inconclusive => Status::Inconclusive,
            Verdict::Info => Status::Info,
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
    /// Each side's value with its standard error and where that comes from (metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_estimate: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_estimate: Option<Estimate>,
    /// The judgement: allowance, 95 % interval of the change, how much more data would tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// Why a change beyond the limit was not blamed on the service (the load generator's lag
    /// grew while the service time did not change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// A row without estimates (validity, presence).
    fn plain(service: String, metric: &str, status: Status) -> Row {
        Row {
            service,
            metric: metric.into(),
            unit: String::new(),
            better: Better::Higher,
            baseline: None,
            candidate: None,
            change: None,
            change_ratio: None,
            limit: Limit::Off,
            status,
            baseline_estimate: None,
            candidate_estimate: None,
            judgement: None,
            note: None,
        }
    }
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
    /// Measurements averaged as repeats on each side (`--repeats`; 1 otherwise).
    #[serde(default = "one")]
    pub baseline_repeats: usize,
    #[serde(default = "one")]
    pub candidate_repeats: usize,
}

fn one() -> usize {
    1
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
    /// Metrics beyond their limit without the data to support a verdict.
    #[serde(default)]
    pub inconclusive: usize,
    /// Validity of each side (an invalid candidate is a regression row `valid`).
    pub baseline_valid: bool,
    pub candidate_valid: bool,
    /// The candidate is invalid only because its load generator could not keep its schedule
    /// (`generator_saturated`): an invalid measurement, not a regression (exit 5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub candidate_generator_invalid: bool,
    /// Set when the two sides ran on different hardware (provenance fingerprints differ):
    /// the comparison still runs, but differences may be the hardware's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware_warnings: Vec<String>,
    /// Runs of either side whose runner was lost (a client node that died): which node,
    /// until when, and how many requests it kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_runs: Vec<String>,
}

/// The `valid` row of a service: an invalid candidate is a regression, an invalid baseline an
/// improvement, except a candidate invalid only because its own load generator fell behind:
/// the measurement failed, not the service (inconclusive, with a note; the comparison ends
/// `INVALID`, exit 5).
fn valid_row(k: &str, cand: &CampaignAnalysis, b: &Side, c: &Side) -> Row {
    let (bv, cv) = (
        b.repeats.iter().all(|s| s.valid),
        c.repeats.iter().all(|s| s.valid),
    );
    let status = if !cv {
        Status::Regression
    } else if !bv {
        Status::Improved
    } else {
        Status::Ok
    };
    let mut r = Row::plain(k.to_string(), "valid", status);
    r.unit = "bool".into();
    r.baseline = Some(bv as u8 as f64);
    r.candidate = Some(cv as u8 as f64);
    r.change = Some(cv as u8 as f64 - bv as u8 as f64);
    r.limit = Limit::Absolute(0.0);
    if !cv && generator_invalid(cand, &c.run_ids()) {
        r.status = Status::Inconclusive;
        r.note = Some("the candidate run is invalid because its load generator could not keep its schedule (generator_saturated): the measurement failed, not the service; rerun it on a quieter client node, or with more client_nodes".into());
    }
    r
}

/// Every figure of a candidate whose load generator could not keep its schedule was timed by
/// that generator: a change beyond the limit there is not the service's to answer for (the
/// comparison ends `INVALID`, exit 5, and says to measure again).
fn starved_candidate(rows: &mut [Row]) {
    for r in rows
        .iter_mut()
        .filter(|r| r.metric != "valid" && r.status == Status::Regression)
    {
        r.status = Status::Inconclusive;
        r.note = Some("measured by a load generator that could not keep its schedule (the candidate is invalid for generator_saturated): rerun it on a quieter client node".into());
    }
}

/// Whether the runs `run_ids` of `a` are invalid only because the load generator could not
/// keep its schedule (a rate not reached along with it is the generator's too).
fn generator_invalid(a: &CampaignAnalysis, run_ids: &[String]) -> bool {
    use super::model::ReasonCode::{self, GeneratorSaturated, TargetRateNotReached};
    let reasons: Vec<_> = a
        .runs
        .iter()
        .filter(|r| run_ids.contains(&r.run_id))
        .flat_map(|r| r.invalid_reasons.iter().map(|x| x.code))
        .collect();
    // A starved generator also notices completions late, which holds connections longer: a
    // few waits for a connection along with it are its doing too (a slow service alone makes
    // waits without generator lag, which leaves those out).
    reasons.contains(&GeneratorSaturated)
        && reasons.iter().all(|c| {
            matches!(
                c,
                GeneratorSaturated | TargetRateNotReached | ReasonCode::ConnectionLimited
            )
        })
}

/// One line per run of `side` whose runner was lost (its `lost:` validity reason).
fn lost_runs(label: &str, side: &CampaignAnalysis) -> Vec<String> {
    side.runs
        .iter()
        .flat_map(|r| {
            r.invalid_reasons
                .iter()
                .filter(|x| x.message.starts_with("lost:"))
                .map(move |x| format!("{label} {} (run {}): {}", r.service, r.run_id, x.message))
        })
        .collect()
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

/// The measurements of one service and sweep point on one side.
struct Side<'a> {
    /// The latest (by start of its measured window).
    latest: &'a ServiceAggregate,
    /// With `--repeats`: every measurement with the latest one's recipe (the latest included);
    /// otherwise the latest alone.
    repeats: Vec<&'a ServiceAggregate>,
    /// Measurements left out.
    skipped: usize,
}

fn recipe_hash<'a>(a: &'a CampaignAnalysis, s: &ServiceAggregate) -> Option<&'a str> {
    a.runs
        .iter()
        .find(|r| s.run_ids.contains(&r.run_id))
        .map(|r| r.provenance.recipe_sha256.as_str())
}

/// Each service and sweep point of `a`, in first-appearance order.
fn sides(a: &CampaignAnalysis, repeats: bool) -> Vec<Side<'_>> {
    let mut groups: Vec<Vec<&ServiceAggregate>> = Vec::new();
    for s in &a.services {
        match groups.iter_mut().find(|g| key(g[0]) == key(s)) {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let latest = *g
                .iter()
                .max_by(|x, y| x.measured_from.cmp(&y.measured_from))
                .expect("a group has a member");
            let reps: Vec<&ServiceAggregate> = if repeats {
                let h = recipe_hash(a, latest);
                g.iter()
                    .copied()
                    .filter(|s| recipe_hash(a, s) == h)
                    .collect()
            } else {
                vec![latest]
            };
            Side {
                latest,
                skipped: g.len() - reps.len(),
                repeats: reps,
            }
        })
        .collect()
}

impl Side<'_> {
    /// The side's estimate of a metric: the repeats' mean and spread when there are two or
    /// more, else the latest measurement's value and batch-means error.
    fn estimate(&self, m: &MetricDef) -> Option<Estimate> {
        if self.repeats.len() >= 2 {
            let values: Vec<f64> = self.repeats.iter().filter_map(|s| (m.get)(s)).collect();
            if values.len() >= 2 {
                return Estimate::from_repeats(&values);
            }
        }
        m.estimate(self.latest)
    }

    fn run_ids(&self) -> Vec<String> {
        self.repeats
            .iter()
            .flat_map(|s| s.run_ids.iter().cloned())
            .collect()
    }
}

/// `compare_thresholds` of the candidate service's recipe (first run of the group that has
/// them); invalid entries are ignored (the recipe was validated when it ran).
fn recipe_thresholds(cand: &CampaignAnalysis, s: &ServiceAggregate) -> Vec<(&'static str, Limit)> {
    recipe_map(cand, s, "compare_thresholds", |x| parse_threshold(x).ok())
}

/// `compare_min_change` of the candidate service's recipe, the same way.
fn recipe_floors(cand: &CampaignAnalysis, s: &ServiceAggregate) -> Vec<(&'static str, f64)> {
    recipe_map(cand, s, "compare_min_change", |x| parse_floor(x).ok())
}

fn recipe_map<T>(
    cand: &CampaignAnalysis,
    s: &ServiceAggregate,
    key: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Vec<T> {
    cand.runs
        .iter()
        .filter(|r| s.run_ids.contains(&r.run_id))
        .find_map(|r| r.recipe.get(key)?.as_object().cloned())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| parse(&format!("{k}={}", v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Compare per service (matched by name and sweep point). Limits: `--threshold` (last wins),
/// then the candidate recipe's `compare_thresholds`, then the defaults; floors: `--min-change`,
/// then the recipe's `compare_min_change`, then the defaults.
pub fn compare(
    baseline_name: &str,
    base: &CampaignAnalysis,
    candidate_name: &str,
    cand: &CampaignAnalysis,
    opts: &CompareOptions,
) -> Comparison {
    let defs = metrics();
    let mut rows = Vec::new();
    let mut compared = Vec::new();
    let base_sides = sides(base, opts.repeats);
    let cand_sides = sides(cand, opts.repeats);
    let mut generator_invalid_candidate = false;
    for b in &base_sides {
        let k = key(b.latest);
        let Some(c) = cand_sides.iter().find(|c| key(c.latest) == k) else {
            let mut r = Row::plain(k, "service", Status::Missing);
            r.baseline = Some(1.0);
            rows.push(r);
            continue;
        };
        compared.push(ComparedPair {
            service: k.clone(),
            baseline_run_ids: b.run_ids(),
            baseline_measured_from: b.latest.measured_from.clone(),
            baseline_skipped: b.skipped,
            candidate_run_ids: c.run_ids(),
            candidate_measured_from: c.latest.measured_from.clone(),
            candidate_skipped: c.skipped,
            baseline_repeats: b.repeats.len(),
            candidate_repeats: c.repeats.len(),
        });
        let r = valid_row(&k, cand, b, c);
        let measured_by_a_starved_generator = r.note.is_some();
        generator_invalid_candidate |= measured_by_a_starved_generator;
        rows.push(r);
        let from_recipe = recipe_thresholds(cand, c.latest);
        let floors_from_recipe = recipe_floors(cand, c.latest);
        for m in &defs {
            let (be, ce) = (b.estimate(m), c.estimate(m));
            if be.is_none() && ce.is_none() {
                continue;
            }
            let limit = opts
                .thresholds
                .iter()
                .rev()
                .chain(from_recipe.iter())
                .find(|(n, _)| *n == m.name)
                .map(|(_, l)| *l)
                .unwrap_or(m.default);
            let floor = opts
                .floors
                .iter()
                .rev()
                .chain(floors_from_recipe.iter())
                .find(|(n, _)| *n == m.name)
                .map(|(_, f)| *f)
                .unwrap_or(m.floor);
            let (bv, cv) = (be.map(|e| e.value), ce.map(|e| e.value));
            let change = bv.zip(cv).map(|(b, c)| c - b);
            let change_ratio = bv
                .zip(cv)
                .and_then(|(b, c)| (b != 0.0).then(|| (c - b) / b.abs()));
            let judgement = be.zip(ce).map(|(be, ce)| {
                judge::judge(m.better, judge::allowance(limit, floor, be.value), &be, &ce)
            });
            let status = match (be, ce) {
                (Some(_), Some(_)) => Status::of(judgement.map_or(Verdict::Info, |j| j.verdict)),
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
                baseline_estimate: be,
                candidate_estimate: ce,
                judgement,
                note: None,
            });
        }
        let first = rows.len() - rows.iter().rev().take_while(|r| r.service == k).count();
        blame_the_generator(&mut rows[first..], (base, b), (cand, c));
        within_timing_jitter(&mut rows[first..], (base, b), (cand, c));
        across_the_run(&mut rows[first..], b, c);
        if measured_by_a_starved_generator {
            starved_candidate(&mut rows[first..]);
        }
    }
    for c in &cand_sides {
        if !base_sides.iter().any(|b| key(b.latest) == key(c.latest)) {
            let mut r = Row::plain(key(c.latest), "service", Status::New);
            r.candidate = Some(1.0);
            rows.push(r);
        }
    }
    let regressions = rows
        .iter()
        .filter(|r| matches!(r.status, Status::Regression | Status::Missing))
        .count();
    let inconclusive = rows
        .iter()
        .filter(|r| r.status == Status::Inconclusive)
        .count();
    Comparison {
        baseline: baseline_name.into(),
        candidate: candidate_name.into(),
        compared,
        rows,
        regressions,
        inconclusive,
        baseline_valid: base.valid,
        candidate_valid: cand.valid,
        candidate_generator_invalid: generator_invalid_candidate,
        hardware_warnings: super::provenance::hardware_warnings(base, cand),
        lost_runs: lost_runs("baseline", base)
            .into_iter()
            .chain(lost_runs("candidate", cand))
            .collect(),
    }
}

/// The worst value over the runs `run_ids` of `a` of what `value` reads from a run.
fn worst_over_runs(
    a: &CampaignAnalysis,
    run_ids: &[String],
    value: impl Fn(&RunAnalysis) -> Option<f64>,
) -> Option<f64> {
    a.runs
        .iter()
        .filter(|r| run_ids.contains(&r.run_id))
        .filter_map(value)
        .reduce(f64::max)
}

/// A run metric's value (`None` when the run did not record it).
fn run_metric(r: &RunAnalysis, name: &str) -> Option<f64> {
    super::analysis::metric_value(&r.run_metrics, name)
}

/// The load generator's own lag (p99, ms) of a side: the worst of its runs' recorded
/// `generator_lag_p99_ms` (waits for a busy connection left out), else of their schedule lag.
fn generator_lag_p99_ms(a: &CampaignAnalysis, side: &Side) -> Option<f64> {
    worst_over_runs(a, &side.run_ids(), |r| {
        run_metric(r, "generator_lag_p99_ms").or(r.schedule_lag_ms.as_ref().map(|l| l.p99))
    })
}

/// A corrected latency (from the scheduled time) holds the load generator's lag. When a
/// corrected-latency regression comes with a generator whose own lag grew while the service
/// time (the uncorrected latency, sent → done) stayed within the same allowance, the change is
/// the generator's, not the service's: the row becomes inconclusive with that reason. Waits
/// for a busy connection are not generator lag, so a service that queues stays blamed.
fn blame_the_generator(
    rows: &mut [Row],
    (base, b): (&CampaignAnalysis, &Side),
    (cand, c): (&CampaignAnalysis, &Side),
) {
    let (Some(lag_b), Some(lag_c)) = (generator_lag_p99_ms(base, b), generator_lag_p99_ms(cand, c))
    else {
        return;
    };
    // The service time of a side: the latest measurement's, or with --repeats the mean over
    // the repeats (the same measurements the corrected figure was judged on).
    let unc = |s: &Side, metric: &str| {
        let one = |a: &ServiceAggregate| {
            let u = a.total.latency_uncorrected_ms.as_ref()?;
            Some(match metric {
                "latency_p50_ms" => u.p50,
                "latency_p90_ms" => u.p90,
                "latency_p99_ms" => u.p99,
                "latency_p999_ms" => u.p999,
                "latency_mean_ms" => u.mean,
                _ => return None,
            })
        };
        let values: Vec<f64> = s.repeats.iter().filter_map(|a| one(a)).collect();
        judge::mean_sd(&values).map(|(mean, _)| mean)
    };
    for r in rows.iter_mut().filter(|r| r.status == Status::Regression) {
        let (Some(ub), Some(uc)) = (unc(b, &r.metric), unc(c, &r.metric)) else {
            continue;
        };
        let allowed = r.judgement.and_then(|j| j.allowed).unwrap_or(0.0);
        let lag_grew = lag_c - lag_b;
        if uc - ub <= allowed && lag_grew > 0.0 {
            r.status = Status::Inconclusive;
            r.note = Some(format!(
                "the load generator's own lag grew (p99 {} → {} ms) while the service time (sent → done) moved by {} ms, within the allowance: the change is the generator's, not the service's (a quieter client node, or more client_nodes, would tell)",
                fmt_num(lag_b),
                fmt_num(lag_c),
                fmt_num(uc - ub)
            ));
        }
    }
}

/// The load generator's own timing jitter (its lag behind the schedule, waits for a busy
/// connection left out) at the percentile that bounds its share of `metric` (see
/// [`jitter_percentile`]), over the runs `run_ids` of `a`: the worst of their recorded
/// `generator_lag_pN_ms`. `None` for metrics it does not bound, closed-loop runs and files
/// that predate these metrics.
pub(super) fn timing_jitter_ms(
    a: &CampaignAnalysis,
    run_ids: &[String],
    metric: &str,
) -> Option<f64> {
    let name = format!("generator_lag_p{}_ms", jitter_percentile(metric)?);
    worst_over_runs(a, run_ids, |r| run_metric(r, &name))
}

/// Whether a change beyond the allowance is still within the load generator's timing jitter
/// (the larger of the two sides'), so that the client cannot tell it from its own noise.
pub(super) fn within_jitter(change: f64, allowed: f64, jitter: [Option<f64>; 2]) -> Option<f64> {
    let jitter = jitter.into_iter().flatten().reduce(f64::max)?;
    (change.abs() <= allowed + jitter).then_some(jitter)
}

/// The percentile of the generator's lag that bounds the client's share of a latency metric.
fn jitter_percentile(metric: &str) -> Option<u32> {
    Some(match metric {
        "latency_p50_ms" | "latency_mean_ms" | "ttft_p50_ms" => 50,
        "latency_p90_ms" => 90,
        "latency_p99_ms"
        | "latency_uncorrected_p99_ms"
        | "ttft_p99_ms"
        | "tpot_p99_ms"
        | "itl_p99_ms"
        | "e2el_p99_ms" => 99,
        "latency_p999_ms" => 999,
        _ => return None,
    })
}

/// A latency is timed by the load generator, on a machine that wakes it late now and then: the
/// generator's own lag at a percentile says how far its timing alone can move that percentile
/// (a late wake-up delays a send, or the noticing of a completion). A change beyond the
/// allowance but not beyond the allowance *plus* that jitter (the larger of the two sides')
/// cannot be told apart from the client machine's own noise, however narrow the interval: it
/// becomes inconclusive with that reason. Changes larger than the jitter are judged as before.
fn within_timing_jitter(
    rows: &mut [Row],
    (base, b): (&CampaignAnalysis, &Side),
    (cand, c): (&CampaignAnalysis, &Side),
) {
    let (b_ids, c_ids) = (b.run_ids(), c.run_ids());
    for r in rows
        .iter_mut()
        .filter(|r| matches!(r.status, Status::Regression | Status::Improved))
    {
        let jitter = [
            timing_jitter_ms(base, &b_ids, &r.metric),
            timing_jitter_ms(cand, &c_ids, &r.metric),
        ];
        let (Some(change), Some(allowed)) = (r.change, r.judgement.and_then(|j| j.allowed)) else {
            continue;
        };
        if let Some(jitter) = within_jitter(change, allowed, jitter) {
            r.status = Status::Inconclusive;
            let pct = match jitter_percentile(&r.metric) {
                Some(999) => "99.9".to_string(),
                Some(p) => p.to_string(),
                None => continue,
            };
            r.note = Some(format!(
                "within the load generator's own timing jitter: the change ({} ms) is no larger than the allowance ({} ms) plus the generator's lag p{pct} in these runs ({} ms), so this client cannot tell it from its own noise (a quieter client node would)",
                signed(change),
                fmt_num(allowed),
                fmt_num(jitter)
            ));
        }
    }
}

/// On one measurement per side, a change must hold across the run (see [`judge`]'s module
/// doc): a regression or improvement that the metric's time batches do not share, by a
/// Mann–Whitney test over them, came from a few stretches of one run and becomes inconclusive
/// with the batches' typical shift as its reason. Judgements on repeats keep their verdict.
fn across_the_run(rows: &mut [Row], b: &Side, c: &Side) {
    fn batches<'a>(s: &Side<'a>, metric: &str) -> &'a [f64] {
        s.latest
            .spread
            .get(metric)
            .map_or(&[], |sp| sp.values.as_slice())
    }
    for r in rows
        .iter_mut()
        .filter(|r| matches!(r.status, Status::Regression | Status::Improved))
    {
        let on_batches = |e: Option<Estimate>| e.is_some_and(|e| e.basis == Basis::Batches);
        if !on_batches(r.baseline_estimate) || !on_batches(r.candidate_estimate) {
            continue;
        }
        let Some(change) = r.change else { continue };
        let Some(shift) = judge::across_batches(batches(b, &r.metric), batches(c, &r.metric))
        else {
            continue;
        };
        if shift.supports(change) {
            continue;
        }
        let n = c.latest.spread.get(&r.metric).map_or(0, |sp| sp.batches);
        let unit = if r.unit == "ms" { " ms" } else { "" };
        r.status = Status::Inconclusive;
        r.note = Some(format!(
            "the change does not hold across the run: over its {n} time batches the typical batch moved by {}{unit} (a change of the whole run moves most of them), so it comes from a few stretches of one run: a stall of the machine, or a service that bursts now and then, which one run per side cannot tell apart (compare --repeats over 3 or more runs per side would)",
            signed(shift.shift),
        ));
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

/// The 95 % interval of the change: relative to the baseline where it is not zero.
fn interval_text(r: &Row) -> String {
    let Some(j) = &r.judgement else {
        return String::new();
    };
    let (Some(lo), Some(hi)) = (j.change_low, j.change_high) else {
        return "n/a".into();
    };
    // Relative where the limit is (and the baseline is not zero); else in the metric's unit.
    match r
        .baseline
        .filter(|b| *b != 0.0 && matches!(r.limit, Limit::Relative(_) | Limit::Off))
    {
        Some(b) => format!(
            "{:+.1}%…{:+.1}%",
            lo / b.abs() * 100.0,
            hi / b.abs() * 100.0
        ),
        None => format!("{}…{}", signed(lo), signed(hi)),
    }
}

fn signed(x: f64) -> String {
    format!("{}{}", if x >= 0.0 { "+" } else { "" }, fmt_num(x))
}

/// Why each inconclusive metric is inconclusive, and what would tell.
pub fn inconclusive_lines(c: &Comparison) -> Vec<String> {
    c.rows
        .iter()
        .filter(|r| r.status == Status::Inconclusive)
        .map(|r| {
            let j = r.judgement.as_ref();
            let what = format!("{} {}", r.service, r.metric);
            if let Some(n) = &r.note {
                return match change_text(r) {
                    c if c.is_empty() => format!("{what}: {n}"),
                    c => format!("{what}: changed by {c}; {n}"),
                };
            }
            match j.and_then(|j| j.more_data_factor) {
                Some(f) => {
                    let reps = |e: Option<&Estimate>| {
                        e.filter(|e| e.basis == Basis::Repeats).map(|e| e.n)
                    };
                    let more = match reps(r.baseline_estimate.as_ref())
                        .max(reps(r.candidate_estimate.as_ref()))
                    {
                        Some(n) => format!(
                            "about {} repeats on each side would tell",
                            (f * n as f64).ceil() as u64
                        ),
                        None => format!(
                            "runs about {}× as long, or {} repeats on each side compared with --repeats, would tell",
                            fmt_num((f * 10.0).ceil() / 10.0),
                            (f.ceil() as u64).max(2)
                        ),
                    };
                    format!(
                        "{what}: changed by {} but the 95 % interval of the change ({}) includes zero: the runs are too short or too noisy to tell; {more}",
                        change_text(r),
                        interval_text(r)
                    )
                }
                None => format!(
                    "{what}: changed by {} but a side has no interval (fewer than {} time batches with a value, or a JSON report written before intervals were recorded): run longer, or report again from the campaign file",
                    change_text(r),
                    judge::MIN_BATCHES
                ),
            }
        })
        .collect()
}

fn cells(r: &Row) -> [String; 8] {
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
        interval_text(r),
        if r.unit == "bool" || r.metric == "service" {
            "–".into()
        } else {
            r.limit.describe(&r.unit)
        },
        r.status.label().to_string(),
    ]
}

const HEAD: [&str; 8] = [
    "service",
    "metric",
    "baseline",
    "candidate",
    "change",
    "95% interval",
    "limit",
    "verdict",
];

/// One line per compared service: which runs, measured when, and what was left out.
pub fn compared_lines(c: &Comparison) -> Vec<String> {
    let side = |ids: &[String], from: &str, skipped: usize, repeats: usize, name: &str| {
        let mut t = format!(
            "run{} {} ({from})",
            if ids.len() == 1 { "" } else { "s" },
            ids.join("+")
        );
        if repeats > 1 {
            let _ = write!(t, " [mean of {repeats} repeats of the same recipe]");
        }
        if skipped > 0 && repeats > 1 {
            let _ = write!(
                t,
                " [{skipped} measurement(s) of another recipe in the {name} not compared]"
            );
        } else if skipped > 0 {
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
                    p.baseline_repeats,
                    "baseline"
                ),
                side(
                    &p.candidate_run_ids,
                    &p.candidate_measured_from,
                    p.candidate_skipped,
                    p.candidate_repeats,
                    "candidate"
                ),
            )
        })
        .collect()
}

fn verdict(c: &Comparison) -> String {
    if c.regressions == 0 && c.candidate_generator_invalid {
        "INVALID: the candidate run is invalid because its load generator could not keep its schedule; it tells nothing about the service (rerun it on a quieter client node)".into()
    } else if c.regressions > 0 {
        format!(
            "REGRESSION: {} metric(s) beyond the thresholds, supported by the data",
            c.regressions
        )
    } else if c.inconclusive > 0 {
        format!(
            "INCONCLUSIVE: no supported regression; {} metric(s) moved beyond the thresholds but the runs are too short or too noisy to tell",
            c.inconclusive
        )
    } else {
        "OK: no regression beyond the thresholds".into()
    }
}

fn warnings_text(c: &Comparison) -> String {
    c.hardware_warnings
        .iter()
        .chain(&c.lost_runs)
        .map(|w| format!("WARNING: {w}\n"))
        .collect()
}

pub fn to_text(c: &Comparison) -> String {
    let mut rows: Vec<[String; 8]> = vec![HEAD.map(String::from)];
    rows.extend(c.rows.iter().map(cells));
    let mut w = [0usize; 8];
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
                if (2..=5).contains(&i) {
                    format!("{x:>width$}", width = w[i])
                } else {
                    format!("{x:<width$}", width = w[i])
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if n == 0 {
            let total: usize = w.iter().sum::<usize>() + 2 * 7;
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    let _ = write!(s, "\n{}\n", verdict(c));
    for l in inconclusive_lines(c) {
        let _ = writeln!(s, "  {l}");
    }
    s
}

pub fn to_markdown(c: &Comparison) -> String {
    let mut s = format!(
        "## factorybench compare\n\nbaseline: `{}`  \ncandidate: `{}`\n\n{}",
        c.baseline,
        c.candidate,
        c.hardware_warnings
            .iter()
            .chain(&c.lost_runs)
            .map(|w| format!("> **Warning:** {w}\n\n"))
            .collect::<String>(),
    );
    for l in compared_lines(c) {
        let _ = writeln!(s, "- compared: {}", l.replace('|', "\\|"));
    }
    let _ = write!(s, "\n**{}**\n\n", verdict(c));
    for l in inconclusive_lines(c) {
        let _ = writeln!(s, "- {}", l.replace('|', "\\|"));
    }
    s.push_str(&format!("| {} |\n", HEAD.join(" | ")));
    s.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for r in &c.rows {
        let mut x = cells(r).map(|x| x.replace('|', "\\|"));
        if matches!(r.status, Status::Regression | Status::Missing) {
            x[7] = format!("**{}**", x[7]);
        }
        s.push_str(&format!("| {} |\n", x.join(" | ")));
    }
    s
}

pub fn to_html(c: &Comparison) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>factorybench compare</title><style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}tr.reg td{background:#fde8e8;font-weight:600}tr.imp td{background:#e8f5e9}tr.inc td{background:#fff8e1}.banner{padding:10px 14px;border-radius:6px;color:#fff}.bad{background:#c62828}.good{background:#2e7d32}</style></head><body>",
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
    for l in inconclusive_lines(c) {
        let _ = write!(s, "<p class=\"warn\">{}</p>", esc(&l));
    }
    for w in c.hardware_warnings.iter().chain(&c.lost_runs) {
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
            Status::Inconclusive => " class=\"inc\"",
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
