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

use super::judge::{batch_spread, Spread, BATCHES};
pub use super::model::*;
use super::samples::{summarize_samples, MAX_TIME_POINTS};
pub use super::statistics::Acc;
use super::statistics::{ratio, BatchAcc, LlmAcc, LlmRow, OpAcc, RequestTimes, RunAccs, SloSpec};
use crate::store::read::{self as db, Connection, RequestView};
use crate::store::{DbError, RunStatus, StoreError};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the JSON report layout ([`CampaignAnalysis`] and the report envelope).
pub const SCHEMA_VERSION: u32 = 1;

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
        source: DbError,
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
// Reading
// ---------------------------------------------------------------------------------------------

/// Open a campaign file read-only. Unlike `store::read::open_read_only`, a file without a schema
/// version is accepted: the analysis reads whichever of its tables exist.
pub fn open_db(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(AnalysisError::NotFound(path.to_path_buf()));
    }
    // A killed run's file lacks the request index (the writer builds it when it stops).
    db::ensure_request_index(path);
    db::open_sqlite_read_only(path).map_err(|e| AnalysisError::NotACampaign {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The campaign files of a path ([`crate::store::read::campaign_files`]).
pub fn campaign_files(path: &Path) -> Result<Vec<PathBuf>> {
    db::campaign_files(path).map_err(|e| match e {
        StoreError::EmptyCampaign(p) => AnalysisError::NoDbFiles(p),
        StoreError::Missing(p) => AnalysisError::NotFound(p),
        other => AnalysisError::NotACampaign {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
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
    let mut capacity = Vec::new();
    for file in files {
        let conn = open_db(file)?;
        let sq = |e| AnalysisError::Sqlite {
            path: file.clone(),
            source: e,
        };
        capacity.extend(super::capacity::read_searches(&conn).map_err(sq)?);
        if db::has_table(&conn, "jobs") {
            any_schema = true;
            for j in db::job_rows(&conn).map_err(sq)? {
                jobs.push(JobRow {
                    job_id: j.job_id,
                    service: j.service,
                    role: j.role,
                    array_size: j.array_size,
                });
            }
        }
        if !db::has_table(&conn, "runs") {
            continue;
        }
        any_schema = true;
        let ids = db::run_ids(&conn).map_err(sq)?;
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
    let mut a = build_campaign(files, runs, jobs, policy);
    super::service_node::attach(&mut a, files);
    a.capacity = capacity;
    Ok(a)
}

/// A measurement: one service at one sweep point (service, sweep parameter, sweep value).
type MeasurementKey = (String, Option<String>, Option<String>);

/// The measurements of a campaign: its runs (indices into `runs`) by service and sweep point,
/// split where their measured windows do not overlap.
fn measurements(runs: &[(RunAnalysis, RunAccs)]) -> Vec<(MeasurementKey, Vec<usize>)> {
    // Group runs of the same service and sweep point into measurements: runs whose measured
    // windows overlap ran together (parallel jobs or nodes) and are merged; runs at different
    // times (separate invocations appending to one file) are separate measurements, so no
    // aggregate ever spans the idle time between them.
    let mut groups: Vec<(MeasurementKey, Vec<usize>)> = Vec::new();
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
    let mut measurements: Vec<(MeasurementKey, Vec<usize>)> = Vec::new();
    for (key, mut idx) in groups {
        idx.sort_by_key(|&i| (runs[i].1.window_start_ns, runs[i].1.window_end_ns));
        let mut current: Vec<usize> = Vec::new();
        let mut current_end = i64::MIN;
        for i in idx {
            let a = &runs[i].1;
            if !current.is_empty() && a.window_start_ns >= current_end {
                measurements.push((key.clone(), std::mem::take(&mut current)));
            }
            current_end = if current.is_empty() {
                a.window_end_ns
            } else {
                current_end.max(a.window_end_ns)
            };
            current.push(i);
        }
        if !current.is_empty() {
            measurements.push((key, current));
        }
    }
    measurements
}

/// One measurement's aggregate: its runs' accumulators merged, rates over the span that
/// gives each of them.
fn aggregate(
    (service, sweep_param, sweep_value): MeasurementKey,
    idx: &[usize],
    runs: &[(RunAnalysis, RunAccs)],
) -> ServiceAggregate {
    let first = &runs[idx[0]];
    let mut total = OpAcc::default();
    let mut ops: BTreeMap<String, OpAcc> = BTreeMap::new();
    let mut llm: Option<LlmAcc> = None;
    let mut start = i64::MAX;
    let mut end = i64::MIN;
    // Parallel runs (nodes, array tasks) measured together: batch k of each run covers
    // the same share of its own window, so their batches merge index by index.
    let mut batches = first.1.batches.clone();
    for &i in &idx[1..] {
        for (b, o) in batches.iter_mut().zip(&runs[i].1.batches) {
            b.merge(o);
        }
    }
    for &i in idx {
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
    // Parallel runs (client nodes, array tasks) whose windows do not start together:
    // the union of their windows holds stretches where only some of them measured, so
    // requests / union understates what the service served while all of them ran. The
    // rate is the sum of each run's rate over its own window (equal to the rate in the
    // common window when each run's rate is steady); every per-second figure uses the
    // span that gives it: rate_span = successful requests / that sum.
    let starts = idx.iter().map(|&i| runs[i].1.window_start_ns);
    let stagger_s =
        (starts.clone().max().unwrap_or(0) - starts.min().unwrap_or(0)).max(0) as f64 / 1e9;
    let rate_span_s = if idx.len() > 1 {
        let sum_rate: f64 = idx
            .iter()
            .map(|&i| {
                let a = &runs[i].1;
                let w = (a.window_end_ns - a.window_start_ns).max(0) as f64 / 1e9;
                if w > 0.0 {
                    a.total.ok as f64 / w
                } else {
                    0.0
                }
            })
            .sum();
        if sum_rate > 0.0 {
            total.ok as f64 / sum_rate
        } else {
            span_s
        }
    } else {
        span_s
    };
    ServiceAggregate {
        service,
        service_kind: first.0.service_kind.clone(),
        sweep_param,
        sweep_value,
        run_ids: idx.iter().map(|&i| runs[i].0.run_id.clone()).collect(),
        valid: idx.iter().all(|&i| runs[i].0.valid),
        partial: idx.iter().any(|&i| runs[i].0.partial),
        measured_from: rfc3339(start),
        measured_to: rfc3339(end),
        span_s,
        rate_span_s,
        stagger_s,
        total: total.finish("all", rate_span_s),
        operations: ops.iter().map(|(k, v)| v.finish(k, rate_span_s)).collect(),
        spread: spreads(&batches, span_s, &first.1.slo, &total, llm.as_ref()),
        llm: llm.map(|l| l.finish(rate_span_s, total.requests, &first.1.slo)),
        service_node: None,
    }
}

fn build_campaign(
    files: &[PathBuf],
    runs: Vec<(RunAnalysis, RunAccs)>,
    jobs: Vec<JobRow>,
    policy: &ValidityPolicy,
) -> CampaignAnalysis {
    let services = measurements(&runs)
        .into_iter()
        .map(|(key, idx)| aggregate(key, &idx, &runs))
        .collect();

    let mut runs: Vec<RunAnalysis> = runs.into_iter().map(|(r, _)| r).collect();
    super::generator::attach(&mut runs);
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
        capacity: Vec::new(),
    }
}

/// The standard error of every compared metric of a measurement: the batch-means error over
/// its time batches (which keeps the autocorrelation of consecutive requests), and for a
/// percentile at least its order-statistic error over all its values (which keeps the
/// sparseness of a tail that a few slow requests make).
fn spreads(
    batches: &[BatchAcc],
    span_s: f64,
    slo: &SloSpec,
    total: &OpAcc,
    llm: Option<&LlmAcc>,
) -> BTreeMap<String, Spread> {
    let mut out = batch_spreads(batches, span_s, slo);
    for (name, sp) in out.iter_mut() {
        let quantile = |a: &Acc, q: f64| a.quantile_stderr(q);
        let os = match name.as_str() {
            "latency_p50_ms" => quantile(&total.corrected, 0.5),
            "latency_p90_ms" => quantile(&total.corrected, 0.9),
            "latency_p99_ms" => quantile(&total.corrected, 0.99),
            "latency_p999_ms" => quantile(&total.corrected, 0.999),
            "latency_uncorrected_p99_ms" => quantile(&total.uncorrected, 0.99),
            "ttft_p50_ms" => llm.and_then(|l| quantile(&l.ttft, 0.5)),
            "ttft_p99_ms" => llm.and_then(|l| quantile(&l.ttft, 0.99)),
            "tpot_p99_ms" => llm.and_then(|l| quantile(&l.tpot, 0.99)),
            "itl_p99_ms" => llm.and_then(|l| quantile(&l.itl, 0.99)),
            "e2el_p99_ms" => llm.and_then(|l| quantile(&l.e2el, 0.99)),
            _ => None,
        };
        if let Some(os) = os {
            sp.stderr = sp.stderr.max(os);
        }
    }
    out
}

/// The batch-means spread of every compared metric over a measurement's time batches.
fn batch_spreads(batches: &[BatchAcc], span_s: f64, slo: &SloSpec) -> BTreeMap<String, Spread> {
    let batch_s = span_s / batches.len().max(1) as f64;
    let figures: Vec<(OpStats, Option<LlmStats>)> = batches
        .iter()
        .map(|b| {
            let llm = b
                .llm
                .as_ref()
                .map(|l| l.finish(batch_s, b.total.requests, slo));
            (b.total.finish("all", batch_s), llm)
        })
        .collect();
    crate::recipe::threshold::METRICS
        .iter()
        .filter_map(|m| {
            let values: Vec<f64> = figures
                .iter()
                // An empty batch only tells the throughput (zero).
                .filter(|(t, _)| t.requests > 0 || m.name.starts_with("throughput"))
                .filter_map(|(t, l)| super::metric::value(m.name, t, l.as_ref()))
                .collect();
            Some((m.name.to_string(), batch_spread(&values)?))
        })
        .collect()
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

struct Bucket {
    ok: u64,
    errors: u64,
    hist: Option<Histogram<u64>>,
    output_tokens: u64,
}

/// The accumulators of one pass over a run's measured request rows: per operation, the
/// schedule lag, LLM figures, the time batches of the measured window and the time points of
/// its time series.
struct RequestScan {
    start_ns: i64,
    end_ns: i64,
    window_ns: i64,
    is_llm: bool,
    warmup_requests: u64,
    /// Per operation, in the order they first appear (the op name as stored).
    ops: Vec<(Vec<u8>, OpAcc)>,
    lag: Acc,
    llm: LlmAcc,
    /// A row carried LLM columns (a service that is not an LLM kind but returned tokens).
    any_llm_row: bool,
    batches: Vec<BatchAcc>,
    buckets: Vec<Bucket>,
    bucket_ns: i64,
}

/// What a [`RequestScan`] leaves: the totals are the merge of the operations.
struct Scanned {
    total: OpAcc,
    ops: BTreeMap<String, OpAcc>,
    llm: Option<LlmAcc>,
    lag: Acc,
    batches: Vec<BatchAcc>,
    buckets: Vec<Bucket>,
    bucket_ns: i64,
    warmup_requests: u64,
}

impl RequestScan {
    fn new(start_ns: i64, end_ns: i64, is_llm: bool) -> Self {
        let window_ns = end_ns - start_ns;
        let bucket_ns: i64 = {
            let secs = (window_ns as u64).div_ceil(1_000_000_000).max(1);
            secs.div_ceil(MAX_TIME_POINTS).max(1) as i64 * 1_000_000_000
        };
        let n_buckets = ((window_ns + bucket_ns - 1) / bucket_ns).max(0) as usize;
        RequestScan {
            start_ns,
            end_ns,
            window_ns,
            is_llm,
            warmup_requests: 0,
            ops: Vec::new(),
            lag: Acc::new(),
            llm: LlmAcc::default(),
            any_llm_row: false,
            batches: (0..BATCHES).map(|_| BatchAcc::new(is_llm)).collect(),
            buckets: (0..n_buckets)
                .map(|_| Bucket {
                    ok: 0,
                    errors: 0,
                    hist: None,
                    output_tokens: 0,
                })
                .collect(),
            bucket_ns,
        }
    }

    /// One measured request row.
    #[inline]
    fn record(&mut self, r: &RequestView<'_>, slo: &SloSpec) {
        let (start_ns, end_ns, window_ns, is_llm) =
            (self.start_ns, self.end_ns, self.window_ns, self.is_llm);
        let n_buckets = self.buckets.len();
        let RequestView {
            op,
            scheduled_ns: scheduled,
            done_ns: done,
            ok,
            output_tokens,
            ..
        } = *r;
        let times = RequestTimes {
            ok,
            scheduled_ns: scheduled,
            sent_ns: r.sent_ns,
            done_ns: done,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
        };
        let ops = &mut self.ops;
        let idx = match ops.iter().position(|(name, _)| name.as_slice() == op) {
            Some(i) => i,
            None => {
                ops.push((op.to_vec(), OpAcc::default()));
                ops.len() - 1
            }
        };
        self.lag.record_ns(r.sent_ns - scheduled);
        let in_window = done >= start_ns && done <= end_ns && window_ns > 0;
        // Per operation only; the totals are the merge of the operations (`finish`).
        ops[idx].1.record(&times, r.error_class);
        let mut batch = in_window.then(|| {
            let b = (done - start_ns) as i128 * BATCHES as i128 / window_ns as i128;
            &mut self.batches[(b as usize).min(BATCHES - 1)]
        });
        if let Some(b) = batch.as_mut() {
            b.total.record(&times, r.error_class);
        }
        if in_window && n_buckets > 0 {
            let b = &mut self.buckets
                [(((done - start_ns) / self.bucket_ns) as usize).min(n_buckets - 1)];
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
        if output_tokens.is_some()
            || r.input_tokens.is_some()
            || r.first_byte_ns.is_some() && is_llm
        {
            self.any_llm_row = true;
        }
        if ok && (is_llm || output_tokens.is_some()) {
            let l = LlmRow {
                first_byte_ns: r.first_byte_ns,
                input_tokens: r.input_tokens,
                output_tokens,
                tokens_from_server: r.tokens_from_server,
                itl_us: r.itl_us,
            };
            self.llm.record(&times, &l, slo);
            if let Some(b) = batch {
                b.llm
                    .get_or_insert_with(LlmAcc::compact)
                    .record(&times, &l, slo);
            }
        }
    }

    fn finish(self) -> Scanned {
        let llm = (self.is_llm || self.any_llm_row).then_some(self.llm);
        let ops: BTreeMap<String, OpAcc> = self
            .ops
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        let mut total = OpAcc::default();
        for acc in ops.values() {
            total.merge(acc);
        }
        Scanned {
            total,
            ops,
            llm,
            lag: self.lag,
            batches: self.batches,
            buckets: self.buckets,
            bucket_ns: self.bucket_ns,
            warmup_requests: self.warmup_requests,
        }
    }
}

/// The measured window of a run, epoch ns: from the end of its warmup to its end. The end
/// is only known for a finished run; an unfinished one ends at its last completion (an extra
/// pass over its rows, which only an unfinished run needs).
fn measured_window(conn: &Connection, run: &db::RunRow) -> Result<(i64, i64), DbError> {
    let max_done: Option<i64> = if run.ended_ns.is_none() {
        db::last_measured_done_ns(conn, &run.run_id)?
    } else {
        None
    };
    let start_ns = run.measure_start_ns.unwrap_or(run.started_ns);
    let end_ns = run.ended_ns.or(max_done).unwrap_or(start_ns).max(start_ns);
    Ok((start_ns, end_ns))
}

/// The value of the run metric `name`, if the run recorded it.
pub(crate) fn metric_value(run_metrics: &[RunMetricValue], name: &str) -> Option<f64> {
    run_metrics.iter().find(|m| m.name == name).map(|m| m.value)
}

/// The achieved rate over the measured window, against the target (when one was set).
fn rate_stats(target_rate: Option<f64>, requests: u64, window_s: f64) -> RateStats {
    let achieved = ratio(requests as f64, window_s);
    let target = target_rate.filter(|t| *t > 0.0);
    RateStats {
        target_rate_rps: target,
        achieved_rate_rps: achieved,
        achieved_ratio: target.map(|t| achieved / t),
    }
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
    let run = db::read_run(conn, run_id)
        .map_err(sq)?
        .ok_or_else(|| AnalysisError::UnknownRun(run_id.to_string()))?;
    let recipe: serde_json::Value =
        serde_json::from_str(&run.recipe_json).unwrap_or(serde_json::Value::Null);
    let slo = SloSpec::from_recipe(&recipe);
    let system = db::provenance(conn, run_id).map_err(sq)?;
    let is_llm = generates_text(&run, &recipe);

    let (start_ns, end_ns) = measured_window(conn, &run).map_err(sq)?;
    let window_ns = end_ns - start_ns;
    let window_s = window_ns as f64 / 1e9;
    let mut scan = RequestScan::new(start_ns, end_ns, is_llm);
    // LLM columns are only decoded for LLM services.
    db::scan_requests(conn, run_id, is_llm, |row| match row {
        Some(r) => scan.record(r, &slo),
        None => scan.warmup_requests += 1,
    })
    .map_err(sq)?;
    let Scanned {
        total,
        ops: ops_map,
        llm: llm_acc,
        lag,
        batches,
        buckets,
        bucket_ns,
        warmup_requests,
    } = scan.finish();

    let total_stats = total.finish("all", window_s);
    let operations: Vec<OpStats> = ops_map.iter().map(|(k, v)| v.finish(k, window_s)).collect();
    let llm_stats = llm_acc
        .as_ref()
        .map(|l| l.finish(window_s, total.requests, &slo));
    let rate = rate_stats(run.target_rate, total.requests, window_s);
    let schedule_lag_ms = lag.summary();

    // run_metrics and samples.
    let run_metrics: Vec<RunMetricValue> = db::run_metrics(conn, run_id)
        .map_err(sq)?
        .into_iter()
        .map(RunMetricValue::from)
        .collect();
    let series = db::samples(conn, run_id).map_err(sq)?;
    let (samples, sample_series, energy) =
        summarize_samples(&series, start_ns, end_ns, total.ok, llm_acc.as_ref());

    let timeseries = timeseries(&buckets, bucket_ns, window_ns);

    let generator_lag_p99_ms = metric_value(&run_metrics, "generator_lag_p99_ms");
    let (partial, reasons, gates) = validity(
        &run,
        &recipe,
        policy,
        &total,
        &total_stats,
        &rate,
        llm_stats.as_ref(),
        schedule_lag_ms.as_ref(),
        generator_lag_p99_ms,
        &run_metrics,
        end_ns,
        window_s,
    );

    let analysis = RunAnalysis {
        run_id: run_id.to_string(),
        campaign: run.campaign,
        service: run.service,
        service_kind: run.service_kind.as_str().to_string(),
        status: run.status.shown(reasons.is_empty()).to_string(),
        stop_reason: run.stop_reason,
        failure_stage: run.failure_stage.map(|s| s.as_str().to_string()),
        failure_message: run.failure_message,
        sweep_param: run.sweep_param,
        sweep_value: run.sweep_value,
        valid: reasons.is_empty(),
        partial,
        invalid_reasons: reasons,
        gates,
        provenance: RunProvenance {
            source_file: file.display().to_string(),
            host: run.host,
            tool_version: run.tool_version,
            git_commit: run.git_commit,
            slurm_job_id: run.slurm_job_id,
            slurm_array_task: run.slurm_array_task,
            recipe_sha256: run.recipe_sha256,
            hardware_fingerprint: crate::model::hardware_fingerprint(&system),
            system,
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
        generator_cost: None,
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
        batches,
    };
    Ok((analysis, accs))
}

/// The validity gates of a run: whether it is partial, every gate that applies with its
/// measured value and limit, and every reason it is invalid (one per failed gate).
/// An LLM run: a Triton service that sends tensors (`workload.kind = tensor`, issue 24)
/// generates no text.
fn generates_text(run: &db::RunRow, recipe: &serde_json::Value) -> bool {
    run.service_kind.is_llm() && recipe["workload"]["kind"] != "tensor"
}

/// The gates of a run as they are added: every gate with its measured value and limit,
/// and a reason for each one that failed.
#[derive(Default)]
struct Gates {
    reasons: Vec<InvalidReason>,
    gates: Vec<Gate>,
}

impl Gates {
    /// One gate; `failure` is the reason it failed (`None`: passed).
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        code: ReasonCode,
        name: &str,
        measured: Option<f64>,
        at_least: bool,
        limit: f64,
        unit: &str,
        failure: Option<String>,
    ) {
        let passed = failure.is_none();
        if let Some(message) = failure {
            self.reasons.push(InvalidReason { code, message });
        }
        self.gates.push(Gate {
            code,
            gate: name.into(),
            measured,
            comparison: if at_least { ">=" } else { "<=" }.into(),
            limit,
            unit: unit.into(),
            passed,
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn validity(
    run: &db::RunRow,
    recipe: &serde_json::Value,
    policy: &ValidityPolicy,
    total: &OpAcc,
    total_stats: &OpStats,
    rate: &RateStats,
    llm_stats: Option<&LlmStats>,
    schedule_lag_ms: Option<&Summary>,
    generator_lag_p99_ms: Option<f64>,
    run_metrics: &[RunMetricValue],
    last_done_ns: i64,
    window_s: f64,
) -> (bool, Vec<InvalidReason>, Vec<Gate>) {
    let mut g = Gates::default();
    let partial = !matches!(run.status, RunStatus::Success | RunStatus::Failed);
    completion_gates(&mut g, run, partial, total.requests, last_done_ns);
    // Poisson arrivals: the run's seeded schedule holds ±1/√n around the target over its
    // window. What the generator owed is what it scheduled there: every measured request,
    // plus those it never sent.
    let scheduled_rps = (run.arrival == "poisson" && window_s > 0.0).then(|| {
        let not_sent = metric_value(run_metrics, "requests_not_sent").unwrap_or(0.0);
        (total.requests as f64 + not_sent) / window_s
    });
    measurement_gates(
        &mut g,
        run,
        recipe,
        policy,
        total,
        total_stats,
        rate,
        scheduled_rps,
        llm_stats,
    );
    // Open loop only (a closed loop has no schedule to fall behind). The engine tells
    // connection-limited (every connection busy: the service did not keep up with this many
    // connections) from generator-saturated (the runner's own CPU). The runner's generator lag
    // excludes waits for a free max_in_flight slot; files written before it was recorded fall
    // back to the schedule lag of the rows (an upper bound of it).
    if run.arrival != "closed" {
        generator_gates(
            &mut g,
            policy,
            run_metrics,
            schedule_lag_ms,
            generator_lag_p99_ms,
            rate.target_rate_rps,
        );
    }
    (partial, g.reasons, g.gates)
}

/// The run ran to its end (not interrupted, not lost) and did not fail.
fn completion_gates(
    g: &mut Gates,
    run: &db::RunRow,
    partial: bool,
    requests: u64,
    last_done_ns: i64,
) {
    g.add(
        ReasonCode::PartialRun,
        "run completed (not interrupted)",
        Some(if partial { 0.0 } else { 1.0 }),
        true,
        1.0,
        "bool",
        partial.then(|| {
            if run.status == RunStatus::Running && run.ended_ns.is_none() {
                // A runner that died (its node lost, killed) never finishes its run: say
                // where, until when, and what it kept (a run still going reads the same).
                return format!(
                    "lost: the runner on {} never finished this run (its node or process lost, or still running); {} requests kept, recorded until {}",
                    if run.host.is_empty() { "?" } else { &run.host },
                    requests,
                    rfc3339(last_done_ns)
                );
            }
            format!(
                "partial run: status {}{}",
                run.status,
                run.stop_reason
                    .as_deref()
                    .map(|s| format!(" (stopped by {s})"))
                    .unwrap_or_default()
            )
        }),
    );
    let failed = run.status == RunStatus::Failed;
    g.add(
        ReasonCode::FailedRun,
        "run did not fail",
        Some(if failed { 0.0 } else { 1.0 }),
        true,
        1.0,
        "bool",
        failed.then(|| {
            format!(
                "run failed{}{}",
                run.failure_stage
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default(),
                run.failure_message
                    .as_deref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            )
        }),
    );
}

/// Enough requests, the target rate reached, errors under the limit, text generated.
#[allow(clippy::too_many_arguments)]
fn measurement_gates(
    g: &mut Gates,
    run: &db::RunRow,
    recipe: &serde_json::Value,
    policy: &ValidityPolicy,
    total: &OpAcc,
    total_stats: &OpStats,
    rate: &RateStats,
    scheduled_rps: Option<f64>,
    llm_stats: Option<&LlmStats>,
) {
    g.add(
        ReasonCode::TooFewRequests,
        "measured requests (enough for percentiles)",
        Some(total.requests as f64),
        true,
        policy.min_requests as f64,
        "requests",
        (total.requests < policy.min_requests).then(|| {
            format!(
                "too few requests: {} measured < {} required for meaningful percentiles",
                total.requests, policy.min_requests
            )
        }),
    );
    if let (Some(t), false) = (rate.target_rate_rps, run.arrival == "closed") {
        let achieved = rate.achieved_rate_rps;
        let owed = scheduled_rps.unwrap_or(t);
        let pct = policy.min_rate_ratio * 100.0;
        g.add(
            ReasonCode::TargetRateNotReached,
            if scheduled_rps.is_some() {
                "achieved rate / rate of its Poisson schedule"
            } else {
                "achieved rate / target rate"
            },
            Some(if owed > 0.0 { achieved / owed } else { 0.0 }),
            true,
            policy.min_rate_ratio,
            "ratio",
            (achieved < policy.min_rate_ratio * owed).then(|| match scheduled_rps {
                Some(s) => format!(
                    "target rate not reached: achieved {achieved:.2} req/s < {pct:.0}% of the {s:.2} req/s its Poisson schedule held (target {t:.2} req/s)"
                ),
                None => format!(
                    "target rate not reached: achieved {achieved:.2} req/s < {pct:.0}% of target {t:.2} req/s"
                ),
            }),
        );
    }
    let max_err = recipe["load"]["max_error_rate"]
        .as_f64()
        .unwrap_or(policy.max_error_rate);
    g.add(
        ReasonCode::ErrorRateAboveThreshold,
        "error rate",
        Some(total_stats.error_rate),
        false,
        max_err,
        "ratio",
        (total_stats.error_rate > max_err).then(|| {
            format!(
                "error rate {:.2}% ({} of {}) above threshold {:.2}%",
                total_stats.error_rate * 100.0,
                total_stats.errors,
                total.requests,
                max_err * 100.0
            )
        }),
    );
    if let Some(l) = llm_stats {
        if generates_text(run, recipe) && total.ok > 0 {
            g.add(
                ReasonCode::ZeroOutputTokens,
                "output tokens generated",
                Some(l.output_tokens as f64),
                true,
                1.0,
                "tokens",
                (l.output_tokens == 0).then(|| {
                    format!(
                        "zero output tokens over {} successful requests: the server generated nothing",
                        total.ok
                    )
                }),
            );
        }
    }
}

/// Open loop: the connections sufficed and the load generator kept its schedule.
fn generator_gates(
    g: &mut Gates,
    policy: &ValidityPolicy,
    run_metrics: &[RunMetricValue],
    schedule_lag_ms: Option<&Summary>,
    generator_lag_p99_ms: Option<f64>,
    target_rate_rps: Option<f64>,
) {
    let metric = |name: &str| metric_value(run_metrics, name);
    let connection_limited = metric("connection_limited") == Some(1.0);
    // A stalled client frees its connections late: say so beside the verdict.
    let stalled = crate::runner::hiccup::describe_stalls(
        metric("runner_stalls").unwrap_or(0.0),
        metric("runner_hiccup_max_ms").unwrap_or(0.0),
        metric("runner_stalled_ms").unwrap_or(0.0),
    );
    let cause = match &stalled {
        Some(s) => format!(
            "raise connections_per_client, or the service cannot keep this rate, or the client could not: {s}, and a stalled client frees its connections late"
        ),
        None => "raise connections_per_client, or the service cannot keep this rate".to_string(),
    };
    g.add(
        ReasonCode::ConnectionLimited,
        "connections sufficed (no request had to wait for a busy connection or went unsent)",
        Some(if connection_limited { 1.0 } else { 0.0 }),
        false,
        0.0,
        "bool",
        connection_limited.then(|| {
            format!(
                "connection-limited: all {} connections were busy; {} requests waited for one (p99 schedule lag {:.1} ms, in the corrected latency) and {} were never sent ({cause})",
                metric("connections").unwrap_or(0.0),
                metric("requests_waited_for_connection").unwrap_or(0.0),
                schedule_lag_ms.map(|l| l.p99).unwrap_or(0.0),
                metric("requests_not_sent_connection_limited").unwrap_or(0.0),
            )
        }),
    );
    let not_sent_by_generator = metric("requests_not_sent").unwrap_or(0.0)
        - metric("requests_not_sent_connection_limited").unwrap_or(0.0);
    if let Some(lag) = generator_lag_p99_ms.or(schedule_lag_ms.map(|l| l.p99)) {
        let limit = policy.max_generator_lag_p99_ms;
        // The generator lag leaves out waits for a busy connection (those are the
        // connection-limited gate's): the same rule as the runner's own flag.
        // Requests cut at the very end of the run are generator lag too, and count only
        // when they are more of the schedule than the lag limit (`backlog_over_limit`).
        let saturated =
            lag > limit || crate::model::backlog_over_limit(not_sent_by_generator, target_rate_rps);
        g.add(
            ReasonCode::GeneratorSaturated,
            "generator lag p99 (load generator kept its schedule)",
            Some(lag),
            false,
            limit,
            "ms",
            saturated.then(|| {
                format!(
                    "generator saturated: generator lag p99 {lag:.1} ms (limit {limit:.1} ms), {not_sent_by_generator} scheduled requests never sent (requests left later than scheduled because the load generator could not keep up: rate and latency reflect the runner, not the service)"
                )
            }),
        );
    }
}

/// The per-bucket time series of a run's measured window.
fn timeseries(buckets: &[Bucket], bucket_ns: i64, window_ns: i64) -> Vec<TimePoint> {
    buckets
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
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stored histograms (`histograms` table)
// ---------------------------------------------------------------------------------------------

pub use crate::store::{decode_histogram, encode_histogram};

/// Merge every stored histogram `name` (all operations, merged over workers when a `-1` row
/// exists, else every worker row) of every run in the given campaign files: true combined
/// percentiles across nodes and array tasks.
pub fn merge_stored_histograms(files: &[PathBuf], name: &str) -> Result<Option<Histogram<u64>>> {
    let mut merged: Option<Histogram<u64>> = None;
    for file in files {
        let conn = open_db(file)?;
        let sq = |e| AnalysisError::Sqlite {
            path: file.clone(),
            source: e,
        };
        for b in db::stored_histograms(&conn, name).map_err(sq)? {
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
