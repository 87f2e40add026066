//! The end-of-run summary: a projection of [`crate::report::analysis::analyze_run`], which
//! computes every figure from the request rows in the campaign file (one implementation for
//! `run` and `report`). See that module for the definitions (measured window, nearest-rank
//! percentiles over HDR histograms, throughput of successful requests).

use crate::report::analysis::{self, RunAnalysis, Summary};
use crate::store::read::Connection;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub service: String,
    pub service_kind: String,
    pub status: String,
    pub stop_reason: Option<String>,
    pub failure_stage: Option<String>,
    pub failure_message: Option<String>,
    pub sweep: Option<String>,
    /// Validity gates of the report (too few requests, rate not reached, ...).
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    /// Measured requests (warmup excluded).
    pub requests: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<String, u64>,
    pub warmup_requests: u64,
    pub target_rps: Option<f64>,
    pub achieved_rps: f64,
    pub ops_per_s: f64,
    pub mb_per_s: f64,
    /// Measured window (end of warmup to end of the run), seconds.
    pub window_s: f64,
    /// From the scheduled start (corrected for coordinated omission), successful requests.
    pub latency_corrected_ms: Option<Summary>,
    /// From the send time.
    pub latency_uncorrected_ms: Option<Summary>,
    pub schedule_lag_p99_ms: Option<f64>,
    pub generator_saturated: bool,
    /// Vector DBs: recall@k of sampled searches against brute force (measured in setup).
    pub recall_at_k: Option<f64>,
    pub recall_k: Option<f64>,
    /// One line of what ran the run (hardware, software, service version).
    pub system: String,
    /// The load generator's cost per request and its ceiling (see `report::generator`);
    /// `None` when the run shared its process with another run of this invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_cost: Option<crate::report::generator::GeneratorCost>,
    /// Start and end of the run (epoch ns) and its host: which runs shared a process.
    #[serde(skip)]
    span: (String, i64, i64),
}

impl RunSummary {
    pub fn from_analysis(a: &RunAnalysis) -> RunSummary {
        let metric = |name: &str| analysis::metric_value(&a.run_metrics, name);
        RunSummary {
            run_id: a.run_id.clone(),
            service: a.service.clone(),
            service_kind: a.service_kind.clone(),
            status: a.status.clone(),
            stop_reason: a.stop_reason.clone(),
            failure_stage: a.failure_stage.clone(),
            failure_message: a.failure_message.clone(),
            sweep: a
                .sweep_param
                .as_ref()
                .zip(a.sweep_value.as_ref())
                .map(|(p, v)| format!("{p}={v}")),
            valid: a.valid,
            invalid_reasons: a
                .invalid_reasons
                .iter()
                .map(|r| r.message.clone())
                .collect(),
            requests: a.total.requests,
            errors: a.total.errors,
            errors_by_class: a.total.errors_by_class.clone(),
            warmup_requests: a.warmup_requests,
            target_rps: a.rate.target_rate_rps,
            achieved_rps: a.rate.achieved_rate_rps,
            ops_per_s: a.total.throughput_ops_per_s,
            mb_per_s: a.total.throughput_mb_per_s,
            window_s: a.measured_duration_s,
            latency_corrected_ms: a.total.latency_corrected_ms.clone(),
            latency_uncorrected_ms: a.total.latency_uncorrected_ms.clone(),
            schedule_lag_p99_ms: a.schedule_lag_ms.as_ref().map(|s| s.p99),
            // The report's gate (the runner flags with the same threshold).
            generator_saturated: a.gates.iter().any(|g| {
                g.code == crate::report::model::ReasonCode::GeneratorSaturated && !g.passed
            }),
            recall_at_k: metric("recall_at_k"),
            recall_k: metric("recall_k"),
            system: crate::report::provenance::summary_line(&a.provenance.system),
            generator_cost: crate::report::generator::cost(a),
            span: (a.provenance.host.clone(), a.started_ns, a.ended_ns),
        }
    }
}

/// Drop the generator cost of runs that overlapped another of `summaries` on the same host
/// (they shared the process's CPU), then one `load generator:` line per run that has one.
pub fn generator_lines(summaries: &mut [RunSummary]) -> String {
    let spans: Vec<(String, i64, i64)> = summaries.iter().map(|s| s.span.clone()).collect();
    let mut out = String::new();
    for (i, s) in summaries.iter_mut().enumerate() {
        if crate::report::generator::shares_host(&spans, i) {
            s.generator_cost = None;
        }
        if let Some(c) = &s.generator_cost {
            out += &format!("load generator [{}]: {}\n", s.service, c.describe());
        }
    }
    out
}

/// Summarize one run from its rows.
pub fn summarize_run(conn: &Connection, run_id: &str) -> anyhow::Result<RunSummary> {
    let a = analysis::analyze_run(conn, run_id)?;
    Ok(RunSummary::from_analysis(&a))
}

/// The requests each of `run_ids` committed to `db` (after a write error stopped the run).
pub fn committed_requests(db: &std::path::Path, run_ids: &[&str]) -> anyhow::Result<String> {
    let conn = crate::store::read::open_read_only(db)?;
    let mut s = String::new();
    for id in run_ids {
        if let Ok(r) = summarize_run(&conn, id) {
            s += &format!("  run {id}: {} requests committed\n", r.requests);
        }
    }
    Ok(s)
}

/// The human table.
pub fn render_table(runs: &[RunSummary]) -> String {
    let mut out = String::new();
    let header = [
        "service",
        "status",
        "requests",
        "errors",
        "target/s",
        "achieved/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "ops/s",
        "MB/s",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let f = |x: f64| format!("{x:.3}");
    for r in runs {
        let name = match &r.sweep {
            Some(s) => format!("{} [{s}]", r.service),
            None => r.service.clone(),
        };
        let lat = |g: fn(&Summary) -> f64| {
            r.latency_corrected_ms
                .as_ref()
                .map(|l| f(g(l)))
                .unwrap_or_else(|| "-".into())
        };
        let status = if r.status == "invalid" {
            "INVALID".into()
        } else {
            r.status.clone()
        };
        rows.push(vec![
            name,
            status,
            r.requests.to_string(),
            r.errors.to_string(),
            r.target_rps
                .map(|t| format!("{t:.1}"))
                .unwrap_or_else(|| "max".into()),
            format!("{:.1}", r.achieved_rps),
            lat(|l| l.p50),
            lat(|l| l.p90),
            lat(|l| l.p99),
            lat(|l| l.p999),
            lat(|l| l.max),
            format!("{:.1}", r.ops_per_s),
            format!("{:.3}", r.mb_per_s),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for (k, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 2 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if k == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    for r in runs {
        if let Some(recall) = r.recall_at_k {
            out.push_str(&format!(
                "{}: recall@{} {recall:.3} (sampled searches vs exact brute force, outside the timed phase)\n",
                r.service,
                r.recall_k.unwrap_or(0.0)
            ));
        }
        if !r.errors_by_class.is_empty() {
            let e: Vec<String> = r
                .errors_by_class
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out.push_str(&format!("{}: errors: {}\n", r.service, e.join(", ")));
        }
        if let Some(m) = &r.failure_message {
            out.push_str(&format!(
                "{}: FAILED ({}): {m}\n",
                r.service,
                r.failure_stage.as_deref().unwrap_or("?")
            ));
        }
        if r.status == "partial" {
            out.push_str(&format!(
                "{}: PARTIAL run (stopped by {}); figures cover what ran\n",
                r.service,
                r.stop_reason.as_deref().unwrap_or("?")
            ));
        }
        if r.status == "invalid" {
            out.push_str(&format!(
                "{}: INVALID: {}\n",
                r.service,
                r.invalid_reasons.join("; ")
            ));
        }
    }
    out.push_str("latency: from the scheduled start (corrected for coordinated omission), successful measured requests; warmup excluded\n");
    out
}

/// A finished `success` run shows `invalid` when its validity gates fail: the same analysis
/// as `report` (one pass over the run's rows), for finished runs only.
pub fn judge_finished_runs(jobs: &mut [crate::slurm::status::JobStatus]) {
    for r in jobs.iter_mut().flat_map(|j| j.runs.iter_mut()) {
        if r.status != crate::store::RunStatus::Success {
            continue;
        }
        let Some(file) = r.file.as_deref() else {
            continue;
        };
        r.valid = crate::store::read::open_read_only(file)
            .ok()
            .and_then(|c| analysis::analyze_run(&c, &r.run_id).ok())
            .map(|a| a.valid);
    }
}

/// The figures of one capacity-search step's run (`runner::capacity` judges them against the
/// SLOs), from the run file `db`.
pub fn step_figures(
    db: &std::path::Path,
    run_id: &str,
) -> anyhow::Result<crate::runner::capacity::StepFigures> {
    let conn = crate::store::read::open_read_only(db)?;
    let r = analysis::analyze_run(&conn, run_id)?;
    Ok(crate::runner::capacity::StepFigures {
        requests: r.total.requests,
        achieved_rate_per_s: r.rate.achieved_rate_rps,
        latency_p99_ms: r.total.latency_corrected_ms.as_ref().map(|s| s.p99),
        ttft_p99_ms: r
            .llm
            .as_ref()
            .and_then(|l| l.ttft_from_scheduled_ms.as_ref().or(l.ttft_ms.as_ref()))
            .map(|s| s.p99),
        error_rate: r.total.error_rate,
        limited: generator_limit(&r),
    })
}

/// A capacity step whose client node's CPUs were this busy (mean over the run's samples, %)
/// measured the client as much as the service: its runner's sends may keep their schedule
/// while its receives wait for a CPU, which lands in every latency.
pub const CLIENT_CPU_SATURATED_PERCENT: f64 = 95.0;

/// The generator side's limit of a step's run, from its validity gates (generator first: a
/// generator that fell behind also leaves connections idle), else from the client node's CPU.
fn generator_limit(r: &RunAnalysis) -> Option<(crate::runner::capacity::Limiter, String)> {
    gate_limit(r).or_else(|| {
        let cpu = r.samples.iter().find(|s| s.name == "node_cpu_percent")?;
        (cpu.mean >= CLIENT_CPU_SATURATED_PERCENT).then(|| {
            (
                crate::runner::capacity::Limiter::Generator,
                format!(
                    "the client node's CPUs were {:.0} % busy over the run (from {CLIENT_CPU_SATURATED_PERCENT:.0} % on, the runner's receives wait for a CPU and its latencies measure the client node as much as the service)",
                    cpu.mean
                ),
            )
        })
    })
}

/// The generator side's limit from a run's validity gates.
fn gate_limit(r: &RunAnalysis) -> Option<(crate::runner::capacity::Limiter, String)> {
    [
        (
            crate::report::model::ReasonCode::GeneratorSaturated,
            crate::runner::capacity::Limiter::Generator,
        ),
        (
            crate::report::model::ReasonCode::ConnectionLimited,
            crate::runner::capacity::Limiter::Connections,
        ),
    ]
    .into_iter()
    .find_map(|(code, lim)| {
        let why = r.invalid_reasons.iter().find(|x| x.code == code)?;
        Some((lim, why.message.clone()))
    })
}

/// One `system: …` line per distinct system the runs ran on (in order, repeats folded).
pub fn system_lines(summaries: &[RunSummary]) -> String {
    let mut systems: Vec<&str> = summaries.iter().map(|s| s.system.as_str()).collect();
    systems.dedup();
    systems
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| format!("system: {s}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::campaign::{Campaign, JobRecord, JobRole};
    use crate::slurm::status::{job_rows, run_cell, StateSource};
    use crate::slurm::{self, AcctSource, ArrayTasks, JobState};
    use std::path::Path;

    fn run_file(dir: &Path, name: &str, slurm_job_id: &str, task: Option<i64>, requests: i64) {
        crate::store::campaign::write_test_run(
            &dir.join("runs").join(name),
            name,
            slurm_job_id,
            task,
            requests,
        );
    }

    fn record(id: &str, service: &str, array_size: Option<u32>) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            service: service.into(),
            role: JobRole::Service,
            array_size,
            script_path: format!("scripts/{service}.sbatch"),
            submitted_ns: 0,
            depends_on: vec![],
        }
    }

    /// Status merges squeue rows, job completion records (array tasks by their own ids, found
    /// through the run files) and run files, and says when nothing is known.
    #[test]
    fn status_rows_from_every_source() {
        let t = tempfile::tempdir().unwrap();
        let camp = Campaign::init(t.path()).unwrap();
        std::fs::create_dir(t.path().join("runs")).unwrap();
        run_file(t.path(), "web-10.db", "10", None, 5);
        run_file(t.path(), "sw-20_0.db", "21", Some(0), 7);
        run_file(t.path(), "sw-20_1.db", "20", Some(1), 9);
        let queue = slurm::parse_squeue("10|10|N/A|RUNNING|vm|0:07|5:00|None|fb-web\n").unwrap();
        let acct =
            slurm::parse_sacct("21|COMPLETED|vm|00:00:04|5|0:0\n20|TIMEOUT|vm|00:05:00|5|0:0\n")
                .unwrap();
        let web = job_rows(
            &camp,
            &record("10", "web", None),
            &queue,
            &acct,
            AcctSource::JobComp,
        );
        assert_eq!(web.len(), 1);
        assert_eq!(web[0].state, JobState::Running);
        assert_eq!(web[0].source, StateSource::Squeue);
        assert_eq!(web[0].runs[0].requests, 5);
        assert_eq!(
            run_cell(&web[0].runs, 0, JobState::Running),
            "success 5 req"
        );
        // Judged like `report` (5 requests: under the 100 a percentile needs), the finished
        // run shows `invalid`, never `success`; `status --json` carries `valid: false`.
        let mut judged = web.clone();
        judge_finished_runs(&mut judged);
        assert_eq!(judged[0].runs[0].valid, Some(false));
        assert_eq!(
            run_cell(&judged[0].runs, 0, JobState::Completed),
            "invalid 5 req"
        );
        let js = serde_json::to_value(&judged[0].runs[0]).unwrap();
        assert_eq!(js["valid"], false);

        // A multi-node job: one run file per client node, each shown with its node; a run
        // left `running` by a job that is over is `lost`, with the requests it kept.
        run_file(t.path(), "web-30-fbn2.db", "30", None, 4);
        run_file(t.path(), "web-30-fbn3.db", "30", None, 6);
        rusqlite::Connection::open(t.path().join("runs/web-30-fbn3.db"))
            .unwrap()
            .execute("UPDATE runs SET status = 'running', ended_ns = NULL", [])
            .unwrap();
        let multi = job_rows(
            &camp,
            &record("30", "web", None),
            &[],
            &acct,
            AcctSource::JobComp,
        );
        assert_eq!(multi.len(), 1, "{multi:?}");
        let nodes: Vec<Option<&str>> = multi[0].runs.iter().map(|r| r.node.as_deref()).collect();
        assert_eq!(nodes, vec![Some("fbn2"), Some("fbn3")]);
        assert_eq!(
            run_cell(&multi[0].runs, 0, JobState::Completed),
            "fbn2: success 4 req; fbn3: lost 6 req (last at 00:00:02)"
        );
        assert!(run_cell(&multi[0].runs, 0, JobState::Running).contains("fbn3: running 6 req"));

        let sw = job_rows(
            &camp,
            &record("20", "sw", Some(2)),
            &queue,
            &acct,
            AcctSource::JobComp,
        );
        assert_eq!(sw.len(), 2, "{sw:?}");
        assert_eq!(sw[0].array_task, ArrayTasks::Task(0));
        assert_eq!(sw[0].state, JobState::Completed);
        assert_eq!(sw[0].source, StateSource::JobComp);
        assert_eq!(sw[0].runs[0].requests, 7);
        assert_eq!(sw[1].array_task, ArrayTasks::Task(1));
        assert_eq!(sw[1].state, JobState::Timeout);
        assert_eq!(sw[1].elapsed_s, Some(300));

        // No accounting: the run file is all that is left.
        let sw = job_rows(
            &camp,
            &record("20", "sw", Some(2)),
            &[],
            &[],
            AcctSource::Accounting,
        );
        assert_eq!(sw[0].state, JobState::Unknown);
        assert_eq!(sw[0].source, StateSource::RunFile);
        assert_eq!(sw[0].elapsed_s, Some(3));

        let none = job_rows(
            &camp,
            &record("30", "gone", None),
            &[],
            &[],
            AcctSource::Accounting,
        );
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].source, StateSource::None);
    }

    /// Issue 23 case 8: the failed pushes of a run still going (kept beside its run file)
    /// show in its status cell.
    #[test]
    fn a_running_count_of_failed_pushes_shows_in_status() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("runs")).unwrap();
        run_file(t.path(), "web-7.db", "7", None, 3);
        let file = t.path().join("runs/web-7.db");
        crate::store::campaign::write_live_push_failures(&file, "web-7.db", 3).unwrap();
        let runs = crate::store::campaign::read_runs(&file).unwrap();
        let cell = run_cell(&runs, 0, JobState::Running);
        assert!(
            cell.contains("[live metrics: 3 pushes failed, see the job log]"),
            "{cell}"
        );
    }
}
