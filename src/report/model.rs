//! The analysis's output types: what a report (JSON, HTML, CSV, compare) shows. The JSON
//! Schema of the report is derived from them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

impl From<crate::model::RunMetric> for RunMetricValue {
    fn from(m: crate::model::RunMetric) -> Self {
        RunMetricValue {
            name: m.name,
            value: m.value,
            unit: m.unit,
        }
    }
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
    // Open loop: every connection was busy, requests waited for one or were never sent (a
    // plain comment: a doc comment would split the enum in the JSON Schema).
    ConnectionLimited,
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
    /// Open loop: p99 generator lag above this (ms): requests left late because the load
    /// generator could not keep up ([`crate::model::GENERATOR_LAG_P99_LIMIT_MS`], the same
    /// threshold the runner flags `generator_saturated` with).
    #[serde(alias = "max_schedule_lag_p99_ms")]
    pub max_generator_lag_p99_ms: f64,
}

impl Gate {
    /// `measured` and `limit` in the gate's unit, e.g. `3.2 ms <= 5 ms`.
    pub fn describe(&self) -> (String, String) {
        let f = |v: f64| match self.unit.as_str() {
            "bool" => if v > 0.5 { "yes" } else { "no" }.to_string(),
            "ratio" => format!("{:.2}%", v * 100.0),
            "requests" | "tokens" => format!("{v:.0}"),
            u => format!("{v:.2} {u}"),
        };
        let limit = if self.unit == "bool" {
            f(self.limit)
        } else {
            format!("{} {}", self.comparison, f(self.limit))
        };
        (self.measured.map(f).unwrap_or_else(|| "-".into()), limit)
    }
}

/// One validity gate of a run as evaluated: what was measured, against which limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gate {
    pub code: ReasonCode,
    /// What the gate checks, in words.
    pub gate: String,
    /// The measured value (`None`: not measurable for this run).
    pub measured: Option<f64>,
    /// `>=` (measured must be at least the limit) or `<=` (at most).
    pub comparison: String,
    pub limit: f64,
    pub unit: String,
    pub passed: bool,
}

impl Default for ValidityPolicy {
    fn default() -> Self {
        ValidityPolicy {
            min_requests: 100,
            min_rate_ratio: 0.9,
            max_error_rate: 0.01,
            max_generator_lag_p99_ms: crate::model::GENERATOR_LAG_P99_LIMIT_MS,
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
    /// What ran the run: hardware, software, container, the service's own version
    /// (`cpu.model`, `gpu0.uuid`, `service.version`, ...; keys in `runner::provenance`).
    /// Empty for files written before schema version 2.
    #[serde(default)]
    pub system: std::collections::BTreeMap<String, String>,
    /// Short digest of the hardware keys: runs with different fingerprints ran on different
    /// hardware (`compare` warns).
    #[serde(default)]
    pub hardware_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunAnalysis {
    pub run_id: String,
    pub campaign: String,
    pub service: String,
    pub service_kind: String,
    /// `success`, `partial`, `failed`, `running`, `pending` as recorded, except that a run
    /// recorded `success` that failed a validity gate shows `invalid`.
    pub status: String,
    pub stop_reason: Option<String>,
    pub failure_stage: Option<String>,
    pub failure_message: Option<String>,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub valid: bool,
    pub partial: bool,
    pub invalid_reasons: Vec<InvalidReason>,
    /// Every validity gate that applies to this run, passed or not.
    #[serde(default)]
    pub gates: Vec<Gate>,
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
    /// The load generator's cost per request and the ceiling it gives (see
    /// [`super::generator`]); absent without CPU times or when the run shared its process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cost: Option<GeneratorCost>,
    pub timeseries: Vec<TimePoint>,
    /// Corrected latency CDF of successful requests.
    pub latency_cdf_ms: Vec<CdfPoint>,
    /// Corrected latency histogram (log-spaced buckets).
    pub latency_histogram_ms: Vec<HistogramBucket>,
    /// The resolved recipe of this service as recorded (secrets redacted).
    pub recipe: serde_json::Value,
}

/// One measurement of a service and sweep point: the runs of it whose measured windows
/// overlap (parallel jobs or nodes) merged; percentiles come from merged HDR histograms (true
/// combined percentiles, not averaged ones). Runs at different times (separate `run`
/// invocations appending to one file) are separate aggregates, never one spanning both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAggregate {
    pub service: String,
    pub service_kind: String,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub run_ids: Vec<String>,
    pub valid: bool,
    pub partial: bool,
    /// Start of the earliest measured window of the runs (RFC 3339).
    #[serde(default)]
    pub measured_from: String,
    /// End of the latest measured window of the runs (RFC 3339).
    #[serde(default)]
    pub measured_to: String,
    /// Wall-clock span covering the measured windows of the runs, seconds.
    pub span_s: f64,
    /// The span the per-second figures use, seconds: `span_s` for one run; for parallel runs
    /// (client nodes, array tasks) successful requests / the sum of each run's rate over its
    /// own window, so that throughput is what the service served while all of them measured,
    /// not the requests spread over the union of staggered windows.
    #[serde(default)]
    pub rate_span_s: f64,
    /// How far apart the merged runs' measured windows started, seconds (0 for one run): the
    /// stagger that remains after the client nodes' common start instant.
    #[serde(default)]
    pub stagger_s: f64,
    /// Totals (`op: "all"`); throughput = successful requests / `rate_span_s`.
    pub total: OpStats,
    pub operations: Vec<OpStats>,
    pub llm: Option<LlmStats>,
    /// Batch-means standard error of each compared metric (`compare`'s metric names), from
    /// [`super::judge::BATCHES`] equal time batches of the measured window; a metric with
    /// fewer than [`super::judge::MIN_BATCHES`] batches holding a value has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spread: BTreeMap<String, super::judge::Spread>,
    /// GPU telemetry of the service node of a multi-node job, whose runners on the client
    /// nodes sample no GPU (absent when the service node was not sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_node: Option<ServiceNodeTelemetry>,
}

/// The service node's GPUs over a service aggregate's measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceNodeTelemetry {
    /// The node the service ran on.
    pub node: String,
    /// GPUs NVML showed there.
    pub gpus: u32,
    /// Energy of those GPUs over the aggregate's window, per successful request and per output
    /// token of all client nodes together.
    pub energy: Option<EnergyStats>,
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
    /// Capacity searches recorded in the campaign (`factorybench capacity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<CapacitySearchReport>,
}

/// RFC 3339 (UTC, milliseconds) of an epoch-ns timestamp.
pub fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

// ---- capacity searches (built by `report::capacity`) ----

/// A mean over repeated runs and its 95 % Student-t half-width (`None` with one run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CrossRun {
    pub mean: f64,
    pub ci95_half_width: Option<f64>,
    pub runs: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityStep {
    pub step: u32,
    pub run_id: String,
    /// `ramp`, `bisect`, `confirm`.
    pub phase: String,
    pub target_rate_per_s: f64,
    pub achieved_rate_per_s: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub passed: bool,
    /// Why the step broke its SLOs.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacitySearchReport {
    pub search_id: String,
    pub service: String,
    /// The recipe's `capacity_search` (bounds, steps, SLOs) as recorded.
    pub spec: serde_json::Value,
    /// `found`, `none_sustainable`, `generator_limited`, `stopped`, or `running`.
    pub outcome: String,
    /// Highest total rate that held every SLO (the knee).
    pub sustainable_rate_per_s: Option<f64>,
    /// Lowest failing total rate above it (`None`: `max_rate` held).
    pub first_failing_rate_per_s: Option<f64>,
    /// Achieved throughput of the runs at the sustainable rate, across runs.
    pub throughput_at_knee_per_s: Option<CrossRun>,
    /// p99 latency of the runs at the sustainable rate, across runs.
    pub latency_p99_at_knee_ms: Option<CrossRun>,
    /// Every run at the sustainable rate held the SLOs (a failing repeat: not monotone/noisy).
    pub knee_repeats_all_passed: bool,
    pub started_at: String,
    /// Wall-clock length of the search, seconds.
    pub elapsed_s: Option<f64>,
    pub steps: Vec<CapacityStep>,
}

/// How close a run came to its generator's ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CeilingBasis {
    /// The generator kept the client's cores busy: the figure is its ceiling.
    NearCeiling,
    /// The generator was mostly idle: its fixed costs weigh on every request, and the ceiling
    /// is at least this.
    LowerBound,
}

/// The load generator's cost per request in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GeneratorCost {
    /// Requests the run sent (warmup included: they cost CPU too).
    pub requests: u64,
    /// The runner's user + system CPU seconds over the run.
    pub cpu_s: f64,
    /// CPU microseconds per request.
    pub cpu_us_per_request: f64,
    /// Requests one fully used core drives for this kind: `requests / cpu_s`.
    pub requests_per_core_s: f64,
    /// Cores this process could use on the client node (`cpu.available`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// `requests_per_core_s × cores`: what this client node drives at most, by this cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ceiling_rps: Option<f64>,
    /// CPU seconds over wall seconds over cores: how busy the generator was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    pub basis: CeilingBasis,
}
