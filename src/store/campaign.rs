//! The campaign directory's files as SQL sees them: the `jobs` table of `campaign.db` (written
//! by `submit` on the login node) and the run summaries that `status` reads from each job's run
//! file while it may still be written.

use super::read::{run_row, RunRow, RUN_COLUMNS};
use super::{DbError, FailureStage, RunStatus, BUSY_TIMEOUT};
use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// What a job does in the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobRole {
    Service,
    Monitor,
    Report,
}

impl JobRole {
    pub fn as_str(self) -> &'static str {
        match self {
            JobRole::Service => "service",
            JobRole::Monitor => "monitor",
            JobRole::Report => "report",
        }
    }

    pub fn parse(s: &str) -> JobRole {
        match s {
            "monitor" => JobRole::Monitor,
            "report" => JobRole::Report,
            _ => JobRole::Service,
        }
    }
}

/// One row of the `jobs` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub job_id: String,
    pub service: String,
    pub role: JobRole,
    /// Number of array tasks (sweeps), `None` for a plain job.
    pub array_size: Option<u32>,
    pub script_path: String,
    pub submitted_ns: i64,
    /// Job ids this one waits for.
    pub depends_on: Vec<String>,
}

fn connect(path: &Path, read_only: bool) -> Result<Connection, DbError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Create `campaign.db` (the full schema, jobs table included).
pub fn init(path: &Path) -> Result<(), DbError> {
    connect(path, false)?.execute_batch(super::SCHEMA_SQL)
}

/// Append one job to the `jobs` table.
pub fn record_job(path: &Path, j: &JobRecord) -> Result<(), DbError> {
    let conn = connect(path, false)?;
    conn.execute(
        "INSERT INTO jobs (job_id, service, role, array_size, script_path, submitted_ns, depends_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            j.job_id,
            j.service,
            j.role.as_str(),
            j.array_size,
            j.script_path,
            j.submitted_ns,
            if j.depends_on.is_empty() {
                None
            } else {
                Some(j.depends_on.join(","))
            }
        ],
    )?;
    Ok(())
}

/// Jobs in submission order.
pub fn read_jobs(path: &Path) -> Result<Vec<JobRecord>, DbError> {
    let conn = connect(path, true)?;
    let mut st = conn.prepare(
        "SELECT job_id, service, role, array_size, script_path, submitted_ns, depends_on
         FROM jobs ORDER BY submitted_ns, rowid",
    )?;
    let rows = st.query_map([], |r| {
        let deps: Option<String> = r.get(6)?;
        let role: String = r.get(2)?;
        Ok(JobRecord {
            job_id: r.get(0)?,
            service: r.get(1)?,
            role: JobRole::parse(&role),
            array_size: r.get(3)?,
            script_path: r.get(4)?,
            submitted_ns: r.get(5)?,
            depends_on: deps
                .map(|d| {
                    d.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// What the runner recorded in a run file (read-only; the job may still be writing it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub status: RunStatus,
    pub stop_reason: Option<String>,
    pub failure_stage: Option<FailureStage>,
    pub failure_message: Option<String>,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// `SLURM_JOB_ID` of the job that wrote the run (an array task's own id).
    pub slurm_job_id: Option<String>,
    pub slurm_array_task: Option<i64>,
    pub requests: i64,
    pub errors: i64,
    pub first_sent_ns: Option<i64>,
    /// Send time of the last request recorded (how recent the run file's news is).
    pub last_sent_ns: Option<i64>,
    /// The client node whose run file this is (multi-node jobs), from the file's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Live-metrics pushes the Pushgateway refused or that failed: `pushgateway_push_failures`,
    /// recorded when the run ends; while it runs, the count the runner keeps beside the run
    /// file ([`live_push_failures_path`]). None when nothing was pushed or nothing failed yet.
    pub push_failures: Option<u64>,
    /// The run file this summary was read from (set by `read_runs`).
    #[serde(skip)]
    pub file: Option<std::path::PathBuf>,
    /// The verdict of a finished `success` run's validity gates (set by whoever analyses the
    /// file, e.g. `status`): a run that fails a gate shows `invalid`, never `success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
}

impl RunSummary {
    fn new(
        run: RunRow,
        requests: i64,
        errors: i64,
        first_sent_ns: Option<i64>,
        last_sent_ns: Option<i64>,
    ) -> RunSummary {
        RunSummary {
            run_id: run.run_id,
            status: run.status,
            stop_reason: run.stop_reason,
            failure_stage: run.failure_stage,
            failure_message: run.failure_message,
            started_ns: run.started_ns,
            ended_ns: run.ended_ns,
            duration_s: run.duration_s,
            warmup_s: run.warmup_s,
            slurm_job_id: run.slurm_job_id,
            slurm_array_task: run.slurm_array_task,
            requests,
            errors,
            first_sent_ns,
            last_sent_ns,
            node: None,
            push_failures: None,
            file: None,
            valid: None,
        }
    }

    /// The status shown to users: `invalid` for a `success` run that failed a gate.
    pub fn shown_status(&self) -> &'static str {
        self.status.shown(self.valid.unwrap_or(true))
    }
}

/// The runs recorded in one run file (usually one). Errors (file being created, locked) yield
/// an empty list: status is best effort while a job runs.
pub fn read_runs(path: &Path) -> Result<Vec<RunSummary>, DbError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let mut st = conn.prepare(&format!(
        "SELECT {RUN_COLUMNS},
                (SELECT COUNT(*) FROM requests q WHERE q.run_id = runs.run_id),
                (SELECT COUNT(*) FROM requests q WHERE q.run_id = runs.run_id AND q.ok = 0),
                (SELECT MIN(sent_ns) FROM requests q WHERE q.run_id = runs.run_id),
                (SELECT MAX(sent_ns) FROM requests q WHERE q.run_id = runs.run_id)
         FROM runs ORDER BY runs.started_ns"
    ))?;
    let n = super::read::RUN_COLUMN_COUNT;
    let rows = st.query_map([], |r| {
        Ok(RunSummary::new(
            run_row(r)?,
            r.get(n)?,
            r.get(n + 1)?,
            r.get(n + 2)?,
            r.get(n + 3)?,
        ))
    })?;
    let mut runs: Vec<RunSummary> = rows.collect::<Result<_, _>>()?;
    for r in &mut runs {
        // A running run's rows are in the request log until it ends (store::log).
        let l = super::log::logged(&conn, &r.run_id)?;
        r.requests += l.rows;
        r.errors += l.errors;
        r.first_sent_ns = r.first_sent_ns.into_iter().chain(l.first_sent_ns).min();
        r.last_sent_ns = r.last_sent_ns.max(l.last_sent_ns);
        r.file = Some(path.to_path_buf());
        r.push_failures = super::read::run_metrics(&conn, &r.run_id)
            .ok()
            .and_then(|m| {
                m.into_iter()
                    .find(|m| m.name == "pushgateway_push_failures")
            })
            .map(|m| m.value as u64)
            .or_else(|| read_live_push_failures(path, &r.run_id));
    }
    Ok(runs)
}

/// Where a running run keeps its count of failed live-metrics pushes: beside its run file,
/// `<run file>.<run id>.push-failures`, holding the count as text. The runner writes it when a
/// push fails and removes it when the run ends and the count is stored with the run
/// (`pushgateway_push_failures`); `status` reads it while the run is going.
pub fn live_push_failures_path(run_file: &Path, run_id: &str) -> std::path::PathBuf {
    let name = run_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_file.with_file_name(format!("{name}.{run_id}.push-failures"))
}

/// The running count of [`live_push_failures_path`], if the file is there.
pub fn read_live_push_failures(run_file: &Path, run_id: &str) -> Option<u64> {
    std::fs::read_to_string(live_push_failures_path(run_file, run_id))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Replace the running count of failed pushes (written whole: a reader sees the old count or
/// the new one).
pub fn write_live_push_failures(run_file: &Path, run_id: &str, failed: u64) -> std::io::Result<()> {
    let path = live_push_failures_path(run_file, run_id);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("{failed}\n"))?;
    std::fs::rename(&tmp, &path)
}

/// A run file with one finished run and `requests` successful rows (unit-test fixture).
#[cfg(test)]
pub(crate) fn write_test_run(
    path: &Path,
    run_id: &str,
    slurm_job_id: &str,
    task: Option<i64>,
    requests: i64,
) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(super::SCHEMA_SQL).unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1)",
        [super::SCHEMA_VERSION.to_string()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO runs (run_id, campaign, service, service_kind, status, started_ns,
         ended_ns, arrival, clients, duration_s, warmup_s, seed, recipe_json, recipe_sha256,
         host, tool_version, slurm_job_id, slurm_array_task)
         VALUES (?1, 'c', 's', 'file_storage', 'success', 1000000000, 4000000000,
         'constant', 1, 3, 0, 1, '{}', 'x', 'vm', '0', ?2, ?3)",
        params![run_id, slurm_job_id, task],
    )
    .unwrap();
    for i in 0..requests {
        conn.execute(
            "INSERT INTO requests (run_id, worker, seq, op, scheduled_ns, sent_ns, done_ns, ok)
             VALUES (?1, 0, ?2, 'read', ?2, ?2, ?2, 1)",
            params![run_id, 2_000_000_000 + i],
        )
        .unwrap();
    }
}
