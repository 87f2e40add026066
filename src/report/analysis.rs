//! Analysis of a campaign: every figure is computed from the recorded request rows
//! (`src/store/schema.sql`), never copied from a counter.
//!
//! Definitions (documented in the README and the JSON Schema):
//! - Measured rows are `requests` rows with `warmup = 0`. The measured window is
//!   `measure_start_ns ..= ended_ns` of the run (`started_ns` when there was no warmup, the
//!   last `done_ns` when the run never recorded an end: such a run is `partial`).
//! - Latency is over successful requests: corrected = `done − scheduled` (includes the time a
//!   request waited to be sent: coordinated omission corrected), uncorrected = `done − sent`.
//! - Percentiles are nearest-rank over an HDR histogram with microsecond resolution and 3
//!   significant digits (error ≤ 0.1 %), clamped to the exact observed min/max. Means,
//!   standard deviations and the 95 % confidence interval of the mean (Student t) are exact.
//! - Throughput = successful requests / measured window; MB/s = (bytes_sent + bytes_received)
//!   of successful requests / window / 10^6. Achieved rate = all measured requests / window.
//! - LLM (vLLM `bench serve` definitions): TTFT = first_byte − sent (also reported from
//!   scheduled), ITL = every inter-token gap (`itl_us`), E2EL = done − sent,
//!   TPOT = (E2EL − TTFT) / (output_tokens − 1) for requests with > 1 output token, per-request
//!   output tokens/s = output_tokens / E2EL; goodput = successful requests meeting every SLO of
//!   the recipe (`workload.slo`), as a share of measured requests and per second.
//! - Schedule lag = sent − scheduled over all measured requests.
//! - Energy: per device, the increase of its `*_energy_joules` counter over the window, else
//!   the trapezoidal integral of its `*_power_watts` samples.

use hdrhistogram::serialization::{Deserializer as HdrDeserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the JSON report layout ([`CampaignAnalysis`] and the report envelope).
pub const SCHEMA_VERSION: u32 = 1;

/// Histogram resolution: values are recorded in thousandths of the reported unit
/// (µs for figures reported in ms).
const HIST_PER_UNIT: f64 = 1000.0;
/// At most this many points per time series.
const MAX_TIME_POINTS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    #[error("{0}: no campaign files found (expected a .db file, or a directory with runs/*.db)")]
    NoDbFiles(PathBuf),
    #[error("{path}: not a factorybench campaign file ({message})")]
    NotACampaign { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run {0:?} not found")]
    UnknownRun(String),
    #[error("run {run_id} appears in both {first} and {second}")]
    DuplicateRun {
        run_id: String,
        first: PathBuf,
        second: PathBuf,
    },
}

impl AnalysisError {
    /// True when the error comes from what the user asked for (exit code 2).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, AnalysisError::Sqlite { .. })
    }
}

type Result<T, E = AnalysisError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// Output types
// ---------------------------------------------------------------------------------------------

/// Distribution of one figure; the unit is in the name of the field holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    /// 95 % confidence interval of the mean (Student t; equal to the mean when count < 2).
    pub mean_ci95_low: f64,
    pub mean_ci95_high: f64,
    pub stddev: f64,
    /// Coefficient of variation = stddev / mean (absent when the mean is 0).
    pub cv: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CdfPoint {
    pub quantile: f64,
    /// In the unit named by the field holding the CDF.
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistogramBucket {
    /// Upper edge of the bucket (values ≤ this and > the previous edge), in the unit named by
    /// the field holding the histogram.
    pub upper: f64,
    pub count: u64,
}

/// Figures of one operation (or `all`) of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OpStats {
    /// Operation label (`read`, `search`, `generate`, ...) or `all`.
    pub op: String,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// errors / requests (0 when there were no requests).
    pub error_rate: f64,
    /// Error count per `ErrorClass` (`unknown` when the row had none).
    pub errors_by_class: BTreeMap<String, u64>,
    /// Bytes sent by successful requests.
    pub bytes_sent: u64,
    /// Bytes received by successful requests.
    pub bytes_received: u64,
    /// Successful requests per second of the measured window.
    pub throughput_ops_per_s: f64,
    /// (bytes_sent + bytes_received) of successful requests / window, 10^6 bytes per second.
    pub throughput_mb_per_s: f64,
    /// done − scheduled of successful requests (coordinated omission corrected).
    pub latency_corrected_ms: Option<Summary>,
    /// done − sent of successful requests (service time as the client saw it).
    pub latency_uncorrected_ms: Option<Summary>,
}

/// Where the token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Server,
    Client,
    Mixed,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Goodput {
    pub slo_ttft_ms: Option<f64>,
    pub slo_tpot_ms: Option<f64>,
    pub slo_e2el_ms: Option<f64>,
    /// Successful requests meeting every SLO.
    pub good_requests: u64,
    /// good_requests / measured requests (failed requests count as not good).
    pub goodput_ratio: f64,
    /// good_requests / measured window.
    pub goodput_rps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmStats {
    /// first_byte − sent (vLLM's TTFT).
    pub ttft_ms: Option<Summary>,
    /// first_byte − scheduled (includes queueing in the generator).
    pub ttft_from_scheduled_ms: Option<Summary>,
    /// Every inter-token gap of every successful request.
    pub itl_ms: Option<Summary>,
    /// (E2EL − TTFT) / (output_tokens − 1), requests with more than one output token.
    pub tpot_ms: Option<Summary>,
    /// done − sent.
    pub e2el_ms: Option<Summary>,
    /// output_tokens / E2EL per successful request.
    pub request_output_tokens_per_s: Option<Summary>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub tokens_source: TokenSource,
    /// Successful requests that reported zero output tokens.
    pub zero_output_requests: u64,
    /// Output tokens of successful requests / measured window.
    pub output_tokens_per_s: f64,
    /// (input + output tokens) of successful requests / measured window.
    pub total_tokens_per_s: f64,
    /// Present when the recipe sets at least one SLO.
    pub goodput: Option<Goodput>,
    /// TTFT (from sent) histogram, log-spaced buckets.
    pub ttft_histogram_ms: Vec<HistogramBucket>,
    /// Per-request output tokens/s histogram, log-spaced buckets.
    pub request_output_tokens_per_s_histogram: Vec<HistogramBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateStats {
    /// Total target rate of the run (NULL for an unthrottled closed loop).
    pub target_rate_rps: Option<f64>,
    /// Measured requests / measured window.
    pub achieved_rate_rps: f64,
    /// achieved / target.
    pub achieved_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunMetricValue {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SampleSummary {
    pub name: String,
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub last: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesPoint {
    /// Seconds since the start of the measured window.
    pub t_s: f64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SampleSeries {
    pub name: String,
    pub points: Vec<SeriesPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnergyStats {
    /// Per device series, joules over the measured window: the increase of a cumulative
    /// `*_energy_joules` counter when sampled, else the trapezoidal integral of `*_power_watts`
    /// (or `*_power_w`) samples.
    pub series_energy_j: BTreeMap<String, f64>,
    pub total_energy_j: f64,
    /// total_energy_j / successful requests.
    pub energy_per_request_j: Option<f64>,
    /// total_energy_j / output tokens (LLM).
    pub energy_per_output_token_j: Option<f64>,
}

/// One bucket of the per-run time series (by completion time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimePoint {
    /// Start of the bucket, seconds since the start of the measured window.
    pub t_s: f64,
    pub bucket_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub throughput_ops_per_s: f64,
    /// Corrected latency of the requests completed in the bucket (2 significant digits).
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub output_tokens_per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    TooFewRequests,
    TargetRateNotReached,
    ErrorRateAboveThreshold,
    ZeroOutputTokens,
    GeneratorSaturated,
    PartialRun,
    FailedRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InvalidReason {
    pub code: ReasonCode,
    pub message: String,
}

/// Validity gates. A run failing any gate is `valid: false` with the reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidityPolicy {
    /// Fewer measured requests than this: percentiles are not meaningful (p99 needs ≥ 100).
    pub min_requests: u64,
    /// Open loop: achieved rate below this share of the target rate.
    pub min_rate_ratio: f64,
    /// Error share above this (the recipe's `load.max_error_rate` overrides it).
    pub max_error_rate: f64,
    /// p99 schedule lag above this: requests left late, the generator could not keep up.
    pub max_schedule_lag_p99_ms: f64,
}

impl Default for ValidityPolicy {
    fn default() -> Self {
        ValidityPolicy {
            min_requests: 100,
            min_rate_ratio: 0.9,
            max_error_rate: 0.01,
            max_schedule_lag_p99_ms: 100.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunProvenance {
    pub source_file: String,
    pub host: String,
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub slurm_job_id: Option<String>,
    pub slurm_array_task: Option<i64>,
    pub recipe_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunAnalysis {
    pub run_id: String,
    pub campaign: String,
    pub service: String,
    pub service_kind: String,
    /// `success`, `partial`, `failed`, `running`, `pending` as recorded.
    pub status: String,
    pub stop_reason: Option<String>,
    pub failure_stage: Option<String>,
    pub failure_message: Option<String>,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub valid: bool,
    pub partial: bool,
    pub invalid_reasons: Vec<InvalidReason>,
    pub provenance: RunProvenance,
    pub started_ns: i64,
    pub measure_start_ns: i64,
    pub ended_ns: i64,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    pub arrival: String,
    pub clients: i64,
    pub seed: i64,
    pub configured_duration_s: f64,
    pub warmup_s: f64,
    /// Length of the measured window.
    pub measured_duration_s: f64,
    pub warmup_requests: u64,
    pub rate: RateStats,
    /// Totals over every operation (`op: "all"`).
    pub total: OpStats,
    /// One entry per operation, sorted by name.
    pub operations: Vec<OpStats>,
    /// sent − scheduled over all measured requests.
    pub schedule_lag_ms: Option<Summary>,
    pub llm: Option<LlmStats>,
    pub run_metrics: Vec<RunMetricValue>,
    pub samples: Vec<SampleSummary>,
    pub sample_series: Vec<SampleSeries>,
    pub energy: Option<EnergyStats>,
    pub cpu_user_s: Option<f64>,
    pub cpu_system_s: Option<f64>,
    pub timeseries: Vec<TimePoint>,
    /// Corrected latency CDF of successful requests.
    pub latency_cdf_ms: Vec<CdfPoint>,
    /// Corrected latency histogram (log-spaced buckets).
    pub latency_histogram_ms: Vec<HistogramBucket>,
    /// The resolved recipe of this service as recorded (secrets redacted).
    pub recipe: serde_json::Value,
}

/// Runs of the same service and sweep point merged: percentiles come from merged HDR
/// histograms (true combined percentiles, not averaged ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAggregate {
    pub service: String,
    pub service_kind: String,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub run_ids: Vec<String>,
    pub valid: bool,
    pub partial: bool,
    /// Wall-clock span covering the measured windows of the runs, seconds.
    pub span_s: f64,
    /// Totals (`op: "all"`); throughput = successful requests / span.
    pub total: OpStats,
    pub operations: Vec<OpStats>,
    pub llm: Option<LlmStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobRow {
    pub job_id: String,
    pub service: String,
    pub role: String,
    pub array_size: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignAnalysis {
    /// Campaign name(s) as recorded in the runs.
    pub campaign: String,
    /// The files read, in order.
    pub sources: Vec<String>,
    pub valid: bool,
    pub partial: bool,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Distinct SLURM job ids of the runs and of the `jobs` table.
    pub slurm_job_ids: Vec<String>,
    pub hosts: Vec<String>,
    pub jobs: Vec<JobRow>,
    pub policy: ValidityPolicy,
    pub runs: Vec<RunAnalysis>,
    pub services: Vec<ServiceAggregate>,
}

// ---------------------------------------------------------------------------------------------
// Accumulators
// ---------------------------------------------------------------------------------------------

/// A mergeable distribution: HDR histogram (thousandths of the unit) + exact moments.
#[derive(Clone)]
pub struct Acc {
    hist: Histogram<u64>,
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc::new()
    }
}

impl Acc {
    pub fn new() -> Self {
        Acc {
            hist: Histogram::new(3).expect("3 significant digits is valid"),
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Record a value in the reported unit (ms, tokens/s).
    pub fn record(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let _ = self.hist.record((v * HIST_PER_UNIT).round() as u64);
        self.n += 1;
        let d = v - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Record a duration in nanoseconds, reported in ms.
    pub fn record_ns(&mut self, ns: i64) {
        self.record(ns as f64 / 1e6);
    }

    pub fn merge(&mut self, o: &Acc) {
        if o.n == 0 {
            return;
        }
        let _ = self.hist.add(&o.hist);
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.mean += d * o.n as f64 / n as f64;
        self.m2 += o.m2 + d * d * self.n as f64 * o.n as f64 / n as f64;
        self.n = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Nearest-rank quantile: the smallest recorded value with at least ⌈q·n⌉ values ≤ it.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let n = self.hist.len();
        let rank = ((q * n as f64) - 1e-9).ceil().clamp(1.0, n as f64);
        // hdrhistogram takes ⌈q'·n⌉ as the rank; aim at the middle of the rank to avoid
        // floating-point edge effects (0.99 · 100 = 99.00000000000001).
        let q2 = (rank - 0.5) / n as f64;
        let v = self.hist.value_at_quantile(q2) as f64 / HIST_PER_UNIT;
        v.clamp(self.min, self.max)
    }

    pub fn summary(&self) -> Option<Summary> {
        if self.n == 0 {
            return None;
        }
        let var = if self.n > 1 {
            self.m2 / (self.n - 1) as f64
        } else {
            0.0
        };
        let sd = var.max(0.0).sqrt();
        let half = if self.n > 1 {
            t_975(self.n - 1) * sd / (self.n as f64).sqrt()
        } else {
            0.0
        };
        Some(Summary {
            count: self.n,
            min: self.min,
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: self.mean,
            mean_ci95_low: self.mean - half,
            mean_ci95_high: self.mean + half,
            stddev: sd,
            cv: (self.mean != 0.0).then(|| sd / self.mean),
        })
    }

    fn cdf(&self) -> Vec<CdfPoint> {
        if self.n == 0 {
            return Vec::new();
        }
        const QS: [f64; 20] = [
            0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995,
            0.999, 0.9995, 0.9999, 0.99999, 1.0,
        ];
        QS.iter()
            .map(|&q| CdfPoint {
                quantile: q,
                value: if q == 0.0 {
                    self.min
                } else if q == 1.0 {
                    self.max
                } else {
                    self.quantile(q)
                },
            })
            .collect()
    }

    fn log_histogram(&self) -> Vec<HistogramBucket> {
        if self.n == 0 {
            return Vec::new();
        }
        let mut out: Vec<HistogramBucket> = self
            .hist
            .iter_log(1, 1.5)
            .map(|v| HistogramBucket {
                upper: v.value_iterated_to() as f64 / HIST_PER_UNIT,
                count: v.count_since_last_iteration(),
            })
            .collect();
        while out.first().is_some_and(|b| b.count == 0) {
            out.remove(0);
        }
        while out.last().is_some_and(|b| b.count == 0) {
            out.pop();
        }
        out
    }
}

/// Two-sided 97.5 % quantile of Student's t distribution.
fn t_975(df: u64) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[(df - 1) as usize],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

#[derive(Clone, Default)]
struct OpAcc {
    requests: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    bytes_sent: u64,
    bytes_received: u64,
    corrected: Acc,
    uncorrected: Acc,
}

impl OpAcc {
    fn merge(&mut self, o: &OpAcc) {
        self.requests += o.requests;
        self.ok += o.ok;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.corrected.merge(&o.corrected);
        self.uncorrected.merge(&o.uncorrected);
    }

    fn finish(&self, op: &str, window_s: f64) -> OpStats {
        let errors = self.requests - self.ok;
        OpStats {
            op: op.to_string(),
            requests: self.requests,
            ok: self.ok,
            errors,
            error_rate: ratio(errors as f64, self.requests as f64),
            errors_by_class: self.errors.clone(),
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            throughput_ops_per_s: ratio(self.ok as f64, window_s),
            throughput_mb_per_s: ratio(
                (self.bytes_sent + self.bytes_received) as f64 / 1e6,
                window_s,
            ),
            latency_corrected_ms: self.corrected.summary(),
            latency_uncorrected_ms: self.uncorrected.summary(),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[derive(Clone, Default)]
struct LlmAcc {
    rows: u64,
    ttft: Acc,
    ttft_sched: Acc,
    itl: Acc,
    tpot: Acc,
    e2el: Acc,
    tok_rate: Acc,
    input_tokens: u64,
    output_tokens: u64,
    from_server: u64,
    counted: u64,
    zero_output: u64,
    good: u64,
}

impl LlmAcc {
    fn merge(&mut self, o: &LlmAcc) {
        self.rows += o.rows;
        self.ttft.merge(&o.ttft);
        self.ttft_sched.merge(&o.ttft_sched);
        self.itl.merge(&o.itl);
        self.tpot.merge(&o.tpot);
        self.e2el.merge(&o.e2el);
        self.tok_rate.merge(&o.tok_rate);
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.from_server += o.from_server;
        self.counted += o.counted;
        self.zero_output += o.zero_output;
        self.good += o.good;
    }

    fn finish(&self, window_s: f64, requests: u64, slo: &SloSpec) -> LlmStats {
        let tokens_source = match (self.from_server, self.counted) {
            (0, 0) => TokenSource::None,
            (_, 0) => TokenSource::Server,
            (0, _) => TokenSource::Client,
            _ => TokenSource::Mixed,
        };
        LlmStats {
            ttft_ms: self.ttft.summary(),
            ttft_from_scheduled_ms: self.ttft_sched.summary(),
            itl_ms: self.itl.summary(),
            tpot_ms: self.tpot.summary(),
            e2el_ms: self.e2el.summary(),
            request_output_tokens_per_s: self.tok_rate.summary(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            tokens_source,
            zero_output_requests: self.zero_output,
            output_tokens_per_s: ratio(self.output_tokens as f64, window_s),
            total_tokens_per_s: ratio((self.input_tokens + self.output_tokens) as f64, window_s),
            goodput: slo.any().then(|| Goodput {
                slo_ttft_ms: slo.ttft_ms,
                slo_tpot_ms: slo.tpot_ms,
                slo_e2el_ms: slo.e2el_ms,
                good_requests: self.good,
                goodput_ratio: ratio(self.good as f64, requests as f64),
                goodput_rps: ratio(self.good as f64, window_s),
            }),
            ttft_histogram_ms: self.ttft.log_histogram(),
            request_output_tokens_per_s_histogram: self.tok_rate.log_histogram(),
        }
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct SloSpec {
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    e2el_ms: Option<f64>,
}

impl SloSpec {
    fn from_recipe(recipe: &serde_json::Value) -> Self {
        let slo = &recipe["workload"]["slo"];
        SloSpec {
            ttft_ms: slo["ttft_ms"].as_f64(),
            tpot_ms: slo["tpot_ms"].as_f64(),
            e2el_ms: slo["e2el_ms"].as_f64(),
        }
    }

    fn any(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some() || self.e2el_ms.is_some()
    }
}

/// Everything mergeable about a run (for service aggregates).
#[derive(Clone)]
struct RunAccs {
    total: OpAcc,
    ops: BTreeMap<String, OpAcc>,
    llm: Option<LlmAcc>,
    slo: SloSpec,
    window_start_ns: i64,
    window_end_ns: i64,
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Open a campaign file read-only. Unlike `store::read::open_read_only`, a file without a schema
/// version is accepted: the analysis reads whichever of its tables exist.
pub fn open_db(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(AnalysisError::NotFound(path.to_path_buf()));
    }
    crate::store::read::open_sqlite_read_only(path).map_err(|e| AnalysisError::NotACampaign {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn has_table(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .ok()
    .flatten()
    .is_some()
}

/// The campaign files of a path: the file itself, or `DIR/runs/*.db` and `DIR/*.db`.
pub fn campaign_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.exists() {
        return Err(AnalysisError::NotFound(path.to_path_buf()));
    }
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for dir in [path.join("runs"), path.to_path_buf()] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "db"))
            .collect();
        here.sort();
        files.extend(here);
    }
    if files.is_empty() {
        return Err(AnalysisError::NoDbFiles(path.to_path_buf()));
    }
    Ok(files)
}

/// Analyze a campaign (a .db file, or a directory with runs/*.db) with the default policy.
pub fn analyze_path(path: &Path) -> Result<CampaignAnalysis> {
    analyze_path_with(path, &ValidityPolicy::default())
}

pub fn analyze_path_with(path: &Path, policy: &ValidityPolicy) -> Result<CampaignAnalysis> {
    let files = campaign_files(path)?;
    analyze_files(&files, policy)
}

/// Analyze the union of several campaign files.
pub fn analyze_files(files: &[PathBuf], policy: &ValidityPolicy) -> Result<CampaignAnalysis> {
    let mut runs: Vec<(RunAnalysis, RunAccs)> = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut any_schema = false;
    for file in files {
        let conn = open_db(file)?;
        let sq = |e| AnalysisError::Sqlite {
            path: file.clone(),
            source: e,
        };
        if has_table(&conn, "jobs") {
            any_schema = true;
            let mut st = conn
                .prepare("SELECT job_id, service, role, array_size FROM jobs ORDER BY submitted_ns, job_id")
                .map_err(sq)?;
            let rows = st
                .query_map([], |r| {
                    Ok(JobRow {
                        job_id: r.get(0)?,
                        service: r.get(1)?,
                        role: r.get(2)?,
                        array_size: r.get(3)?,
                    })
                })
                .map_err(sq)?;
            for j in rows {
                jobs.push(j.map_err(sq)?);
            }
        }
        if !has_table(&conn, "runs") {
            continue;
        }
        any_schema = true;
        let ids: Vec<String> = {
            let mut st = conn
                .prepare("SELECT run_id FROM runs ORDER BY started_ns, run_id")
                .map_err(sq)?;
            let it = st.query_map([], |r| r.get(0)).map_err(sq)?;
            it.collect::<std::result::Result<_, _>>().map_err(sq)?
        };
        for id in ids {
            if let Some(first) = seen.get(&id) {
                return Err(AnalysisError::DuplicateRun {
                    run_id: id,
                    first: first.clone(),
                    second: file.clone(),
                });
            }
            seen.insert(id.clone(), file.clone());
            runs.push(analyze_run_inner(&conn, &id, policy, file)?);
        }
    }
    if !any_schema {
        return Err(AnalysisError::NotACampaign {
            path: files[0].clone(),
            message: "no runs or jobs table".into(),
        });
    }
    Ok(build_campaign(files, runs, jobs, policy))
}

fn build_campaign(
    files: &[PathBuf],
    runs: Vec<(RunAnalysis, RunAccs)>,
    jobs: Vec<JobRow>,
    policy: &ValidityPolicy,
) -> CampaignAnalysis {
    // Group runs of the same service and sweep point.
    type Key = (String, Option<String>, Option<String>);
    let mut groups: Vec<(Key, Vec<usize>)> = Vec::new();
    for (i, (r, _)) in runs.iter().enumerate() {
        let key = (
            r.service.clone(),
            r.sweep_param.clone(),
            r.sweep_value.clone(),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let services = groups
        .into_iter()
        .map(|((service, sweep_param, sweep_value), idx)| {
            let first = &runs[idx[0]];
            let mut total = OpAcc::default();
            let mut ops: BTreeMap<String, OpAcc> = BTreeMap::new();
            let mut llm: Option<LlmAcc> = None;
            let mut start = i64::MAX;
            let mut end = i64::MIN;
            for &i in &idx {
                let a = &runs[i].1;
                total.merge(&a.total);
                for (k, v) in &a.ops {
                    ops.entry(k.clone()).or_default().merge(v);
                }
                if let Some(l) = &a.llm {
                    llm.get_or_insert_with(LlmAcc::default).merge(l);
                }
                start = start.min(a.window_start_ns);
                end = end.max(a.window_end_ns);
            }
            let span_s = ((end - start).max(0)) as f64 / 1e9;
            ServiceAggregate {
                service,
                service_kind: first.0.service_kind.clone(),
                sweep_param,
                sweep_value,
                run_ids: idx.iter().map(|&i| runs[i].0.run_id.clone()).collect(),
                valid: idx.iter().all(|&i| runs[i].0.valid),
                partial: idx.iter().any(|&i| runs[i].0.partial),
                span_s,
                total: total.finish("all", span_s),
                operations: ops.iter().map(|(k, v)| v.finish(k, span_s)).collect(),
                llm: llm.map(|l| l.finish(span_s, total.requests, &first.1.slo)),
            }
        })
        .collect();

    let runs: Vec<RunAnalysis> = runs.into_iter().map(|(r, _)| r).collect();
    let mut names: Vec<String> = runs.iter().map(|r| r.campaign.clone()).collect();
    names.sort();
    names.dedup();
    let mut slurm_job_ids: Vec<String> = runs
        .iter()
        .filter_map(|r| r.provenance.slurm_job_id.clone())
        .chain(jobs.iter().map(|j| j.job_id.clone()))
        .collect();
    slurm_job_ids.sort();
    slurm_job_ids.dedup();
    let mut hosts: Vec<String> = runs.iter().map(|r| r.provenance.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    let started = runs.iter().map(|r| r.started_ns).min();
    let ended = runs.iter().map(|r| r.ended_ns).max();
    CampaignAnalysis {
        campaign: names.join(", "),
        sources: files.iter().map(|p| p.display().to_string()).collect(),
        valid: !runs.is_empty() && runs.iter().all(|r| r.valid),
        partial: runs.iter().any(|r| r.partial),
        started_at: started.map(rfc3339),
        ended_at: ended.map(rfc3339),
        slurm_job_ids,
        hosts,
        jobs,
        policy: policy.clone(),
        runs,
        services,
    }
}

/// RFC 3339 (UTC, milliseconds) of an epoch-ns timestamp.
pub fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Analyze one run of an open campaign file with the default policy.
pub fn analyze_run(conn: &Connection, run_id: &str) -> Result<RunAnalysis> {
    analyze_run_with(conn, run_id, &ValidityPolicy::default())
}

pub fn analyze_run_with(
    conn: &Connection,
    run_id: &str,
    policy: &ValidityPolicy,
) -> Result<RunAnalysis> {
    let path = conn.path().map(PathBuf::from).unwrap_or_default();
    Ok(analyze_run_inner(conn, run_id, policy, &path)?.0)
}

struct RunRow {
    campaign: String,
    service: String,
    service_kind: String,
    status: String,
    failure_stage: Option<String>,
    failure_message: Option<String>,
    stop_reason: Option<String>,
    started_ns: i64,
    measure_start_ns: Option<i64>,
    ended_ns: Option<i64>,
    arrival: String,
    clients: i64,
    target_rate: Option<f64>,
    duration_s: f64,
    warmup_s: f64,
    seed: i64,
    sweep_param: Option<String>,
    sweep_value: Option<String>,
    recipe_json: String,
    recipe_sha256: String,
    host: String,
    tool_version: String,
    git_commit: Option<String>,
    slurm_job_id: Option<String>,
    slurm_array_task: Option<i64>,
    cpu_user_s: Option<f64>,
    cpu_system_s: Option<f64>,
}

fn read_run_row(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<RunRow>> {
    conn.query_row(
        "SELECT campaign, service, service_kind, status, failure_stage, failure_message, \
         stop_reason, started_ns, measure_start_ns, ended_ns, arrival, clients, target_rate, \
         duration_s, warmup_s, seed, sweep_param, sweep_value, recipe_json, recipe_sha256, host, \
         tool_version, git_commit, slurm_job_id, slurm_array_task, cpu_user_s, cpu_system_s \
         FROM runs WHERE run_id = ?1",
        [run_id],
        |r| {
            Ok(RunRow {
                campaign: r.get(0)?,
                service: r.get(1)?,
                service_kind: r.get(2)?,
                status: r.get(3)?,
                failure_stage: r.get(4)?,
                failure_message: r.get(5)?,
                stop_reason: r.get(6)?,
                started_ns: r.get(7)?,
                measure_start_ns: r.get(8)?,
                ended_ns: r.get(9)?,
                arrival: r.get(10)?,
                clients: r.get(11)?,
                target_rate: r.get(12)?,
                duration_s: r.get(13)?,
                warmup_s: r.get(14)?,
                seed: r.get(15)?,
                sweep_param: r.get(16)?,
                sweep_value: r.get(17)?,
                recipe_json: r.get(18)?,
                recipe_sha256: r.get(19)?,
                host: r.get(20)?,
                tool_version: r.get(21)?,
                git_commit: r.get(22)?,
                slurm_job_id: r.get(23)?,
                slurm_array_task: r.get(24)?,
                cpu_user_s: r.get(25)?,
                cpu_system_s: r.get(26)?,
            })
        },
    )
    .optional()
}

fn text_of(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => t,
        _ => b"",
    }
}

fn opt_i64(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => Some(f as i64),
        _ => None,
    }
}

struct Bucket {
    ok: u64,
    errors: u64,
    hist: Option<Histogram<u64>>,
    output_tokens: u64,
}

fn analyze_run_inner(
    conn: &Connection,
    run_id: &str,
    policy: &ValidityPolicy,
    file: &Path,
) -> Result<(RunAnalysis, RunAccs)> {
    let sq = |e| AnalysisError::Sqlite {
        path: file.to_path_buf(),
        source: e,
    };
    let run = read_run_row(conn, run_id)
        .map_err(sq)?
        .ok_or_else(|| AnalysisError::UnknownRun(run_id.to_string()))?;
    let recipe: serde_json::Value =
        serde_json::from_str(&run.recipe_json).unwrap_or(serde_json::Value::Null);
    let slo = SloSpec::from_recipe(&recipe);
    let is_llm = matches!(run.service_kind.as_str(), "ollama" | "vllm" | "triton");

    // The window end is only known for a finished run; otherwise use the last completion.
    // Only an unfinished run needs the last completion (an extra pass over its rows).
    let max_done: Option<i64> = if run.ended_ns.is_none() {
        conn.query_row(
            "SELECT max(done_ns) FROM requests WHERE run_id = ?1 AND warmup = 0",
            [run_id],
            |r| r.get(0),
        )
        .map_err(sq)?
    } else {
        None
    };
    let start_ns = run.measure_start_ns.unwrap_or(run.started_ns);
    let end_ns = run.ended_ns.or(max_done).unwrap_or(start_ns).max(start_ns);
    let window_ns = end_ns - start_ns;
    let window_s = window_ns as f64 / 1e9;
    let bucket_ns: i64 = {
        let secs = (window_ns as u64).div_ceil(1_000_000_000).max(1);
        secs.div_ceil(MAX_TIME_POINTS).max(1) as i64 * 1_000_000_000
    };
    let n_buckets = ((window_ns + bucket_ns - 1) / bucket_ns).max(0) as usize;
    let mut buckets: Vec<Bucket> = (0..n_buckets)
        .map(|_| Bucket {
            ok: 0,
            errors: 0,
            hist: None,
            output_tokens: 0,
        })
        .collect();

    // LLM columns are only decoded for LLM services (SQLite decodes each column it is asked
    // for; skipping them makes a non-LLM report about 20 % faster).
    let llm_cols = if is_llm {
        "first_byte_ns, done_ns, ok, error_class, bytes_sent, bytes_received, input_tokens, \
         output_tokens, tokens_from_server, itl_us"
    } else {
        "NULL, done_ns, ok, error_class, bytes_sent, bytes_received, NULL, NULL, NULL, NULL"
    };
    let mut warmup_requests: u64 = 0;
    // One file per run is the common case (one per SLURM job): a sequential scan is then much
    // faster than walking the (run_id, scheduled_ns) index and fetching every row by rowid.
    let runs_in_file: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .map_err(sq)?;
    let from = if runs_in_file <= 1 {
        "requests NOT INDEXED"
    } else {
        "requests"
    };

    let mut total = OpAcc::default();
    let mut ops: Vec<(Vec<u8>, OpAcc)> = Vec::new();
    let mut lag = Acc::new();
    let mut llm = LlmAcc::default();
    let mut any_llm_row = false;
    {
        let mut st = conn
            .prepare(&format!(
                "SELECT op, scheduled_ns, sent_ns, {llm_cols}, warmup FROM {from} WHERE run_id = ?1"
            ))
            .map_err(sq)?;
        let mut rows = st.query([run_id]).map_err(sq)?;
        while let Some(r) = rows.next().map_err(sq)? {
            if opt_i64(r.get_ref(13).map_err(sq)?).unwrap_or(0) != 0 {
                warmup_requests += 1;
                continue;
            }
            let op = text_of(r.get_ref(0).map_err(sq)?);
            let scheduled: i64 = r.get(1).map_err(sq)?;
            let sent: i64 = r.get(2).map_err(sq)?;
            let first_byte = opt_i64(r.get_ref(3).map_err(sq)?);
            let done: i64 = r.get(4).map_err(sq)?;
            let ok = r.get::<_, i64>(5).map_err(sq)? != 0;
            let bytes_sent = opt_i64(r.get_ref(7).map_err(sq)?).unwrap_or(0).max(0) as u64;
            let bytes_received = opt_i64(r.get_ref(8).map_err(sq)?).unwrap_or(0).max(0) as u64;
            let input_tokens = opt_i64(r.get_ref(9).map_err(sq)?);
            let output_tokens = opt_i64(r.get_ref(10).map_err(sq)?);
            let from_server = opt_i64(r.get_ref(11).map_err(sq)?);

            let idx = match ops.iter().position(|(name, _)| name.as_slice() == op) {
                Some(i) => i,
                None => {
                    ops.push((op.to_vec(), OpAcc::default()));
                    ops.len() - 1
                }
            };
            lag.record_ns(sent - scheduled);
            let bucket = if done >= start_ns && done <= end_ns && n_buckets > 0 {
                Some((((done - start_ns) / bucket_ns) as usize).min(n_buckets - 1))
            } else {
                None
            };
            // Per operation only; the totals are the merge of the operations (below).
            let acc = &mut ops[idx].1;
            acc.requests += 1;
            if ok {
                acc.ok += 1;
                acc.bytes_sent += bytes_sent;
                acc.bytes_received += bytes_received;
                acc.corrected.record_ns(done - scheduled);
                acc.uncorrected.record_ns(done - sent);
            } else {
                let class = match r.get_ref(6).map_err(sq)? {
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    _ => "unknown".to_string(),
                };
                *acc.errors.entry(class).or_default() += 1;
            }
            if let Some(b) = bucket {
                let b = &mut buckets[b];
                if ok {
                    b.ok += 1;
                    let h = b.hist.get_or_insert_with(|| {
                        Histogram::new(2).expect("2 significant digits is valid")
                    });
                    let _ = h.record(((done - scheduled).max(0) / 1000) as u64);
                    b.output_tokens += output_tokens.unwrap_or(0).max(0) as u64;
                } else {
                    b.errors += 1;
                }
            }

            // LLM figures.
            if output_tokens.is_some() || input_tokens.is_some() || first_byte.is_some() && is_llm {
                any_llm_row = true;
            }
            if ok && (is_llm || output_tokens.is_some()) {
                llm.rows += 1;
                let out = output_tokens.unwrap_or(0).max(0) as u64;
                llm.input_tokens += input_tokens.unwrap_or(0).max(0) as u64;
                llm.output_tokens += out;
                match from_server {
                    Some(1) => llm.from_server += 1,
                    Some(_) => llm.counted += 1,
                    None if output_tokens.is_some() => llm.counted += 1,
                    None => {}
                }
                if output_tokens.is_some() && out == 0 {
                    llm.zero_output += 1;
                }
                let e2el_ns = done - sent;
                llm.e2el.record_ns(e2el_ns);
                if e2el_ns > 0 && output_tokens.is_some() {
                    llm.tok_rate.record(out as f64 / (e2el_ns as f64 / 1e9));
                }
                let ttft_ns = first_byte.map(|fb| fb - sent);
                if let Some(fb) = first_byte {
                    llm.ttft.record_ns(fb - sent);
                    llm.ttft_sched.record_ns(fb - scheduled);
                }
                let mut tpot_ms = None;
                if let (Some(t), true) = (ttft_ns, out > 1) {
                    let v = (e2el_ns - t) as f64 / 1e6 / (out - 1) as f64;
                    llm.tpot.record(v);
                    tpot_ms = Some(v);
                }
                if let ValueRef::Blob(b) = r.get_ref(12).map_err(sq)? {
                    for c in b.chunks_exact(4) {
                        let us = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        llm.itl.record(us as f64 / 1000.0);
                    }
                }
                let meets = |limit: Option<f64>, v: Option<f64>| match (limit, v) {
                    (None, _) => true,
                    (Some(l), Some(v)) => v <= l,
                    (Some(_), None) => false,
                };
                let good = meets(slo.ttft_ms, ttft_ns.map(|t| t as f64 / 1e6))
                    && meets(slo.tpot_ms, tpot_ms.or(Some(0.0)))
                    && meets(slo.e2el_ms, Some(e2el_ns as f64 / 1e6));
                if good {
                    llm.good += 1;
                }
            }
        }
    }

    let llm_acc = (is_llm || any_llm_row).then_some(llm);
    let ops_map: BTreeMap<String, OpAcc> = ops
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .collect();
    for acc in ops_map.values() {
        total.merge(acc);
    }

    let total_stats = total.finish("all", window_s);
    let operations: Vec<OpStats> = ops_map.iter().map(|(k, v)| v.finish(k, window_s)).collect();
    let llm_stats = llm_acc
        .as_ref()
        .map(|l| l.finish(window_s, total.requests, &slo));
    let achieved = ratio(total.requests as f64, window_s);
    let target = run.target_rate.filter(|t| *t > 0.0);
    let rate = RateStats {
        target_rate_rps: target,
        achieved_rate_rps: achieved,
        achieved_ratio: target.map(|t| achieved / t),
    };
    let schedule_lag_ms = lag.summary();

    // run_metrics and samples.
    let run_metrics = if has_table(conn, "run_metrics") {
        let mut st = conn
            .prepare("SELECT name, value, unit FROM run_metrics WHERE run_id = ?1 ORDER BY rowid")
            .map_err(sq)?;
        let it = st
            .query_map([run_id], |r| {
                Ok(RunMetricValue {
                    name: r.get(0)?,
                    value: r.get(1)?,
                    unit: r.get(2)?,
                })
            })
            .map_err(sq)?;
        it.collect::<std::result::Result<Vec<_>, _>>().map_err(sq)?
    } else {
        Vec::new()
    };
    let (samples, sample_series, energy) = if has_table(conn, "samples") {
        read_samples(conn, run_id, start_ns, end_ns, total.ok, llm_acc.as_ref()).map_err(sq)?
    } else {
        (Vec::new(), Vec::new(), None)
    };

    let timeseries = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let t0 = i as i64 * bucket_ns;
            let len_ns = (window_ns - t0).min(bucket_ns).max(1);
            let len_s = len_ns as f64 / 1e9;
            let q = |q: f64| {
                b.hist
                    .as_ref()
                    .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
            };
            TimePoint {
                t_s: t0 as f64 / 1e9,
                bucket_s: len_s,
                ok: b.ok,
                errors: b.errors,
                throughput_ops_per_s: b.ok as f64 / len_s,
                latency_p50_ms: q(0.5),
                latency_p99_ms: q(0.99),
                output_tokens_per_s: b.output_tokens as f64 / len_s,
            }
        })
        .collect();

    // Validity gates.
    let mut reasons = Vec::new();
    let partial = !matches!(run.status.as_str(), "success" | "failed");
    if partial {
        reasons.push(InvalidReason {
            code: ReasonCode::PartialRun,
            message: format!(
                "partial run: status {}{}",
                run.status,
                run.stop_reason
                    .as_deref()
                    .map(|s| format!(" (stopped by {s})"))
                    .unwrap_or_default()
            ),
        });
    }
    if run.status == "failed" {
        reasons.push(InvalidReason {
            code: ReasonCode::FailedRun,
            message: format!(
                "run failed{}{}",
                run.failure_stage
                    .as_deref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default(),
                run.failure_message
                    .as_deref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            ),
        });
    }
    if total.requests < policy.min_requests {
        reasons.push(InvalidReason {
            code: ReasonCode::TooFewRequests,
            message: format!(
                "too few requests: {} measured < {} required for meaningful percentiles",
                total.requests, policy.min_requests
            ),
        });
    }
    if let (Some(t), false) = (target, run.arrival == "closed") {
        if achieved < policy.min_rate_ratio * t {
            reasons.push(InvalidReason {
                code: ReasonCode::TargetRateNotReached,
                message: format!(
                    "target rate not reached: achieved {achieved:.2} req/s < {:.0}% of target {t:.2} req/s",
                    policy.min_rate_ratio * 100.0
                ),
            });
        }
    }
    let max_err = recipe["load"]["max_error_rate"]
        .as_f64()
        .unwrap_or(policy.max_error_rate);
    if total_stats.error_rate > max_err {
        reasons.push(InvalidReason {
            code: ReasonCode::ErrorRateAboveThreshold,
            message: format!(
                "error rate {:.2}% ({} of {}) above threshold {:.2}%",
                total_stats.error_rate * 100.0,
                total_stats.errors,
                total.requests,
                max_err * 100.0
            ),
        });
    }
    if let Some(l) = &llm_stats {
        if is_llm && total.ok > 0 && l.output_tokens == 0 {
            reasons.push(InvalidReason {
                code: ReasonCode::ZeroOutputTokens,
                message: format!(
                    "zero output tokens over {} successful requests: the server generated nothing",
                    total.ok
                ),
            });
        }
    }
    if let Some(lag) = &schedule_lag_ms {
        if lag.p99 > policy.max_schedule_lag_p99_ms {
            reasons.push(InvalidReason {
                code: ReasonCode::GeneratorSaturated,
                message: format!(
                    "generator saturated: p99 schedule lag {:.1} ms > {:.1} ms (requests left later than scheduled: load generator CPU or max_in_flight limit)",
                    lag.p99, policy.max_schedule_lag_p99_ms
                ),
            });
        }
    }

    let analysis = RunAnalysis {
        run_id: run_id.to_string(),
        campaign: run.campaign,
        service: run.service,
        service_kind: run.service_kind,
        status: run.status,
        stop_reason: run.stop_reason,
        failure_stage: run.failure_stage,
        failure_message: run.failure_message,
        sweep_param: run.sweep_param,
        sweep_value: run.sweep_value,
        valid: reasons.is_empty(),
        partial,
        invalid_reasons: reasons,
        provenance: RunProvenance {
            source_file: file.display().to_string(),
            host: run.host,
            tool_version: run.tool_version,
            git_commit: run.git_commit,
            slurm_job_id: run.slurm_job_id,
            slurm_array_task: run.slurm_array_task,
            recipe_sha256: run.recipe_sha256,
        },
        started_ns: run.started_ns,
        measure_start_ns: start_ns,
        ended_ns: end_ns,
        started_at: rfc3339(run.started_ns),
        ended_at: rfc3339(end_ns),
        arrival: run.arrival,
        clients: run.clients,
        seed: run.seed,
        configured_duration_s: run.duration_s,
        warmup_s: run.warmup_s,
        measured_duration_s: window_s,
        warmup_requests,
        rate,
        latency_cdf_ms: total.corrected.cdf(),
        latency_histogram_ms: total.corrected.log_histogram(),
        total: total_stats,
        operations,
        schedule_lag_ms,
        llm: llm_stats,
        run_metrics,
        samples,
        sample_series,
        energy,
        cpu_user_s: run.cpu_user_s,
        cpu_system_s: run.cpu_system_s,
        timeseries,
        recipe,
    };
    let accs = RunAccs {
        total,
        ops: ops_map,
        llm: llm_acc,
        slo,
        window_start_ns: start_ns,
        window_end_ns: end_ns,
    };
    Ok((analysis, accs))
}

type SampleParts = (Vec<SampleSummary>, Vec<SampleSeries>, Option<EnergyStats>);

fn read_samples(
    conn: &Connection,
    run_id: &str,
    start_ns: i64,
    end_ns: i64,
    ok_requests: u64,
    llm: Option<&LlmAcc>,
) -> rusqlite::Result<SampleParts> {
    let mut st = conn
        .prepare("SELECT name, t_ns, value FROM samples WHERE run_id = ?1 ORDER BY name, t_ns")?;
    let mut rows = st.query([run_id])?;
    let mut series: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let t: i64 = r.get(1)?;
        let v: f64 = r.get(2)?;
        match series.last_mut() {
            Some((n, pts)) if *n == name => pts.push((t, v)),
            _ => series.push((name, vec![(t, v)])),
        }
    }
    let mut summaries = Vec::new();
    let mut out_series = Vec::new();
    let mut energy: BTreeMap<String, f64> = BTreeMap::new();
    let mut counters: Vec<String> = Vec::new();
    let mut integrated: Vec<(String, String, f64)> = Vec::new();
    for (name, pts) in &series {
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
    Ok((summaries, out_series, energy))
}

// ---------------------------------------------------------------------------------------------
// Stored histograms (`histograms` table)
// ---------------------------------------------------------------------------------------------

/// Serialize a histogram in the V2 format used by the `histograms` table.
pub fn encode_histogram(h: &Histogram<u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("serializing into a Vec cannot fail");
    buf
}

pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    HdrDeserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("{e:?}"))
}

/// Merge every stored histogram `name` (all operations, merged over workers when a `-1` row
/// exists, else every worker row) of every run in the given campaign files: true combined
/// percentiles across nodes and array tasks.
pub fn merge_stored_histograms(files: &[PathBuf], name: &str) -> Result<Option<Histogram<u64>>> {
    let mut merged: Option<Histogram<u64>> = None;
    for file in files {
        let conn = open_db(file)?;
        if !has_table(&conn, "histograms") {
            continue;
        }
        let sq = |e| AnalysisError::Sqlite {
            path: file.clone(),
            source: e,
        };
        let mut st = conn
            .prepare(
                "SELECT h.encoded FROM histograms h WHERE h.name = ?1 AND h.op IS NULL AND \
                 (h.worker = -1 OR NOT EXISTS (SELECT 1 FROM histograms m WHERE m.run_id = h.run_id \
                 AND m.name = h.name AND m.op IS NULL AND m.worker = -1))",
            )
            .map_err(sq)?;
        let blobs = st
            .query_map([name], |r| r.get::<_, Vec<u8>>(0))
            .map_err(sq)?;
        for b in blobs {
            let b = b.map_err(sq)?;
            let h = decode_histogram(&b).map_err(|m| AnalysisError::NotACampaign {
                path: file.clone(),
                message: format!("bad histogram {name}: {m}"),
            })?;
            match &mut merged {
                Some(m) => {
                    let _ = m.add(&h);
                }
                None => {
                    let mut h = h;
                    h.auto(true);
                    merged = Some(h);
                }
            }
        }
    }
    Ok(merged)
}
