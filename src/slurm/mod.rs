//! `slurm`: thin typed wrappers over the SLURM client commands (`sbatch`, `squeue`, `scancel`,
//! `sacct`) and the campaign directory they operate on ([`campaign`]).
//!
//! Every wrapper runs the real command, keeps its stderr in the error, and parses its output
//! with a pure function (`parse_*`) that is unit-tested on captured outputs. Accounting is
//! optional on a cluster: [`sacct`] tries the accounting database, then the job completion
//! log (`sacct -c`, `JobCompType=jobcomp/filetxt`), and reports
//! [`SlurmError::AccountingUnavailable`] when neither exists, which callers treat as "no
//! history", not as a failure.
//!
//! Placement (the decision, for the README): one batch job per service, so services never
//! compete inside one allocation and each has its own time limit, log, run file and state. In
//! a single-node job the runner is the batch step's only payload (`factorybench run ... & wait
//! $!`), so it receives the batch shell's forwarded USR1/TERM directly; it talks to the service
//! on 127.0.0.1. With `slurm.client_nodes: N` the job has 1 + N nodes: the service stays on the
//! first node, bound to that node's address, and one runner per client node is started with a
//! single `srun --relative=1 --kill-on-bad-exit=0` step (SLURM, not ssh, places, signals and
//! kills them), each with `--client-share I/N` and its own run file (docs/slurm.md).

pub mod campaign;
pub mod memory;
pub mod status;
pub mod submit;

use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Errors of the SLURM client commands.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("`{command}` not found: is SLURM installed and on PATH? ({source})")]
    NotFound {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot parse the output of `{command}`: {detail}")]
    Parse { command: String, detail: String },
    #[error("sacct unavailable: {0}")]
    AccountingUnavailable(String),
    #[error(
        "`{command}` gave no answer within {budget_ms} ms (the SLURM controller is not answering)"
    )]
    NoAnswer { command: String, budget_ms: u128 },
}

/// A SLURM job state (`squeue %T`, `sacct State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Stopped,
    Requeued,
    Resizing,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    /// Being signalled (e.g. `--signal` delivery); still running.
    Signaling,
    StageOut,
    SpecialExit,
    Revoked,
    LaunchFailed,
    /// A state this version does not know (newer SLURM), or no record at all.
    Unknown,
}

impl JobState {
    pub fn parse(s: &str) -> JobState {
        // sacct writes `CANCELLED by 0`; states may carry a `+` (e.g. `COMPLETING+`).
        let word = s
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "PENDING" | "PD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" => JobState::Running,
            "COMPLETING" | "CG" => JobState::Completing,
            "SUSPENDED" | "S" => JobState::Suspended,
            "STOPPED" | "ST" => JobState::Stopped,
            "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD" | "RQ" => JobState::Requeued,
            "RESIZING" | "RS" => JobState::Resizing,
            "COMPLETED" | "CD" => JobState::Completed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "FAILED" | "F" => JobState::Failed,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "SIGNALING" | "SI" => JobState::Signaling,
            "STAGE_OUT" | "SO" => JobState::StageOut,
            "SPECIAL_EXIT" | "SE" => JobState::SpecialExit,
            "REVOKED" | "RV" => JobState::Revoked,
            "LAUNCH_FAILED" | "LF" => JobState::LaunchFailed,
            _ => JobState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Completing => "COMPLETING",
            JobState::Suspended => "SUSPENDED",
            JobState::Stopped => "STOPPED",
            JobState::Requeued => "REQUEUED",
            JobState::Resizing => "RESIZING",
            JobState::Completed => "COMPLETED",
            JobState::Cancelled => "CANCELLED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Signaling => "SIGNALING",
            JobState::StageOut => "STAGE_OUT",
            JobState::SpecialExit => "SPECIAL_EXIT",
            JobState::Revoked => "REVOKED",
            JobState::LaunchFailed => "LAUNCH_FAILED",
            JobState::Unknown => "UNKNOWN",
        }
    }

    /// The job will not run any more (its record may still change from COMPLETING).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Cancelled
                | JobState::Failed
                | JobState::Timeout
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
                | JobState::OutOfMemory
                | JobState::SpecialExit
                | JobState::Revoked
                | JobState::LaunchFailed
        )
    }

    /// The job is queued or running (it may still produce output).
    pub fn is_active(self) -> bool {
        !self.is_finished() && self != JobState::Unknown
    }

    /// Finished without success.
    pub fn is_failure(self) -> bool {
        self.is_finished() && self != JobState::Completed
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job waits for others (`--dependency=<kind>:<id>[:<id>...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    /// Start after the jobs completed successfully (all array tasks, exit 0).
    AfterOk,
    /// Start after the jobs ended, whatever their state.
    AfterAny,
}

impl DependencyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyKind::AfterOk => "afterok",
            DependencyKind::AfterAny => "afterany",
        }
    }
}

/// `--dependency` of one submission: every clause must hold (SLURM's `,`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub clauses: Vec<(DependencyKind, Vec<String>)>,
}

impl Dependency {
    pub fn add(&mut self, kind: DependencyKind, job_ids: &[String]) {
        if job_ids.is_empty() {
            return;
        }
        if let Some((_, ids)) = self.clauses.iter_mut().find(|(k, _)| *k == kind) {
            for id in job_ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        } else {
            self.clauses.push((kind, job_ids.to_vec()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Every job id this dependency names.
    pub fn job_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, ids) in &self.clauses {
            for id in ids {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
        }
        out
    }

    /// The `--dependency=` value, e.g. `afterok:12:13,afterany:11`.
    pub fn to_arg(&self) -> String {
        self.clauses
            .iter()
            .map(|(k, ids)| format!("{}:{}", k.as_str(), ids.join(":")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Command-line options of one `sbatch` call (on top of the script's `#SBATCH` lines).
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    pub dependency: Dependency,
    /// `--wrap` command instead of a script file.
    pub wrap: Option<String>,
    pub job_name: Option<String>,
    pub output: Option<String>,
    /// `--account`, `--partition`, `--qos` (for jobs without a script of their own, e.g. the
    /// report job: on sites where an account is mandatory sbatch refuses a job without one).
    pub account: Option<String>,
    pub partition: Option<String>,
    pub qos: Option<String>,
    /// `--time` (the report job; service scripts carry their own).
    pub time: Option<String>,
    /// `--mem` (a service job whose server would get less than its kind's floor from the
    /// cluster's default: [`memory::mem_raise`]); it overrides the script's directives.
    pub mem: Option<String>,
}

impl SubmitOptions {
    /// The `sbatch` arguments for `script` (or for `wrap` when set).
    pub fn args(&self, script: Option<&Path>) -> Vec<String> {
        let mut a = vec!["--parsable".to_string()];
        if let Some(n) = &self.job_name {
            a.push(format!("--job-name={n}"));
        }
        if let Some(o) = &self.output {
            a.push(format!("--output={o}"));
        }
        if let Some(v) = &self.account {
            a.push(format!("--account={v}"));
        }
        if let Some(v) = &self.partition {
            a.push(format!("--partition={v}"));
        }
        if let Some(v) = &self.qos {
            a.push(format!("--qos={v}"));
        }
        if let Some(v) = &self.time {
            a.push(format!("--time={v}"));
        }
        if let Some(v) = &self.mem {
            a.push(format!("--mem={v}"));
        }
        if !self.dependency.is_empty() {
            a.push(format!("--dependency={}", self.dependency.to_arg()));
            // A parent that fails must not leave the child pending forever
            // (DependencyNeverSatisfied): SLURM cancels it instead.
            a.push("--kill-on-invalid-dep=yes".to_string());
        }
        if let Some(w) = &self.wrap {
            a.push(format!("--wrap={w}"));
        } else if let Some(s) = script {
            a.push(s.display().to_string());
        }
        a
    }
}

/// Environment variable naming the factorybench binary that jobs run (default: this binary).
pub const BIN_ENV: &str = "FACTORYBENCH_BIN";

/// The absolute path of the factorybench binary that the job scripts run: `$FACTORYBENCH_BIN`
/// when set (e.g. a copy on the cluster's shared filesystem), else the very binary that is
/// running (`cargo run -- submit` then submits jobs that run the freshly built binary, not
/// whatever `factorybench` the nodes' `PATH` holds).
pub fn factorybench_bin() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    if let Some(v) = std::env::var_os(BIN_ENV).filter(|v| !v.is_empty()) {
        let p = std::path::PathBuf::from(v);
        anyhow::ensure!(
            p.is_absolute(),
            "{BIN_ENV}={} must be an absolute path (the jobs run it on the compute nodes)",
            p.display()
        );
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locating the factorybench binary")?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

fn run(program: &str, args: &[String], cwd: Option<&Path>) -> Result<Output, SlurmError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    tracing::debug!("running {program} {}", args.join(" "));
    cmd.output().map_err(|source| SlurmError::NotFound {
        command: program.to_string(),
        source,
    })
}

/// `run` with a time budget: the command is killed when it has not ended within `budget`
/// (squeue against a controller that is down retries for many seconds).
fn run_within(program: &str, args: &[String], budget: Duration) -> Result<Output, SlurmError> {
    crate::proc::output_within(Command::new(program).args(args), budget)
        .map_err(|source| SlurmError::NotFound {
            command: program.to_string(),
            source,
        })?
        .ok_or_else(|| SlurmError::NoAnswer {
            command: program.to_string(),
            budget_ms: budget.as_millis(),
        })
}

fn failed(program: &str, args: &[String], out: &Output) -> SlurmError {
    SlurmError::Failed {
        command: format!("{program} {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// Submit a batch script (or `--wrap` command); returns the job id (`sbatch --parsable`).
/// `cwd` is the job's working directory.
pub fn sbatch(
    script: Option<&Path>,
    opts: &SubmitOptions,
    cwd: Option<&Path>,
) -> Result<String, SlurmError> {
    let args = opts.args(script);
    let out = run("sbatch", &args, cwd)?;
    if !out.status.success() {
        return Err(failed("sbatch", &args, &out));
    }
    parse_sbatch_parsable(&String::from_utf8_lossy(&out.stdout)).map_err(|detail| {
        SlurmError::Parse {
            command: "sbatch --parsable".into(),
            detail,
        }
    })
}

/// `sbatch --parsable` prints `<jobid>` or `<jobid>;<cluster>` (plus possible warnings on
/// stderr, which are not our concern here).
pub fn parse_sbatch_parsable(stdout: &str) -> Result<String, String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| "empty output (expected a job id)".to_string())?;
    let id = line.split(';').next().unwrap_or_default().trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("expected a numeric job id, got `{line}`"));
    }
    Ok(id.to_string())
}

/// Which array tasks a queue row stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrayTasks {
    /// Not an array job.
    None,
    /// One task.
    Task(u32),
    /// Tasks not started yet, as SLURM writes them (`0-3`, `1,3,5%2`).
    Pending(String),
}

impl fmt::Display for ArrayTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrayTasks::None => f.write_str("-"),
            ArrayTasks::Task(t) => write!(f, "{t}"),
            ArrayTasks::Pending(r) => write!(f, "[{r}]"),
        }
    }
}

/// One row of `squeue` (one job, one array task, or the pending tasks of an array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueRow {
    /// This job's own id (`%A`; for an array task its unique id).
    pub job_id: String,
    /// The id `sbatch` returned (`%F`; equals `job_id` for plain jobs).
    pub array_job_id: String,
    pub array_tasks: ArrayTasks,
    pub state: JobState,
    /// The state as squeue printed it (kept for states this version does not know).
    pub state_raw: String,
    /// Node list; empty while pending.
    pub nodes: String,
    pub elapsed_s: u64,
    /// `None` = UNLIMITED.
    pub time_limit_s: Option<u64>,
    /// Why it is pending (or `None`).
    pub reason: String,
    pub name: String,
}

/// The `squeue` format this module parses: `|`-separated, name last (it may contain `|`).
pub const SQUEUE_FORMAT: &str = "%A|%F|%K|%T|%N|%M|%l|%r|%j";

/// Every job of the current user still known to slurmctld (also recently finished ones, for
/// `MinJobAge` seconds). Filtered by the caller: `squeue -j` fails as a whole when one id has
/// already left slurmctld's memory.
pub fn squeue() -> Result<Vec<QueueRow>, SlurmError> {
    squeue_within(None).map(|(rows, _)| rows)
}

/// [`squeue`] that gives up after `budget` ([`SlurmError::NoAnswer`]); also returns its raw
/// output (status keeps the campaign's lines as the controller's last answer).
pub fn squeue_within(budget: Option<Duration>) -> Result<(Vec<QueueRow>, String), SlurmError> {
    let args: Vec<String> = [
        "--me",
        "--states=all",
        "--noheader",
        "--array",
        &format!("--format={SQUEUE_FORMAT}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = match budget {
        Some(b) => run_within("squeue", &args, b)?,
        None => run("squeue", &args, None)?,
    };
    if !out.status.success() {
        return Err(failed("squeue", &args, &out));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = parse_squeue(&text).map_err(|detail| SlurmError::Parse {
        command: "squeue".into(),
        detail,
    })?;
    Ok((rows, text))
}

/// Parse `squeue --noheader --format=SQUEUE_FORMAT` output.
pub fn parse_squeue(stdout: &str) -> Result<Vec<QueueRow>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(9, '|').collect();
        if f.len() != 9 {
            return Err(format!("expected 9 `|`-separated fields in `{line}`"));
        }
        let array_tasks = match f[2].trim() {
            "N/A" | "" => ArrayTasks::None,
            t => match t.parse::<u32>() {
                Ok(n) => ArrayTasks::Task(n),
                Err(_) => ArrayTasks::Pending(t.to_string()),
            },
        };
        rows.push(QueueRow {
            job_id: f[0].trim().to_string(),
            array_job_id: f[1].trim().to_string(),
            array_tasks,
            state: JobState::parse(f[3].trim()),
            state_raw: f[3].trim().to_string(),
            nodes: f[4].trim().to_string(),
            elapsed_s: parse_elapsed_s(f[5].trim())
                .ok_or_else(|| format!("bad elapsed time `{}` in `{line}`", f[5]))?,
            time_limit_s: parse_limit_s(f[6].trim()),
            reason: match f[7].trim() {
                "None" | "(null)" => String::new(),
                r => r.to_string(),
            },
            name: f[8].to_string(),
        });
    }
    Ok(rows)
}

/// `[D-][HH:]MM:SS` (squeue `%M`, sacct `Elapsed`) → seconds. `INVALID` (not started) → 0.
pub fn parse_elapsed_s(s: &str) -> Option<u64> {
    if s == "INVALID" || s.is_empty() {
        return Some(0);
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let hms = match parts.as_slice() {
        [s] => *s,
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(days * 86400 + hms)
}

/// A time limit: `UNLIMITED`/`Partition_Limit` → `None`; `[D-]HH:MM:SS`; or plain minutes
/// (what `sacct -c` prints).
pub fn parse_limit_s(s: &str) -> Option<u64> {
    if let Ok(min) = s.parse::<u64>() {
        return Some(min * 60);
    }
    match s {
        "UNLIMITED" | "Partition_Limit" | "INVALID" | "" => None,
        _ => parse_elapsed_s(s),
    }
}

/// `[D-]HH:MM:SS` for tables.
pub fn format_hms(total_s: u64) -> String {
    let (d, r) = (total_s / 86400, total_s % 86400);
    let (h, m, s) = (r / 3600, (r % 3600) / 60, r % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Cancel exactly these jobs (an array job id cancels all its tasks).
pub fn scancel(job_ids: &[String]) -> Result<(), SlurmError> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let args = job_ids.to_vec();
    let out = run("scancel", &args, None)?;
    if !out.status.success() {
        return Err(failed("scancel", &args, &out));
    }
    Ok(())
}

/// One job (or array task) from accounting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AcctRow {
    /// `123`, `123_4` (array task) — steps (`123.batch`) are dropped.
    pub job_id: String,
    pub array_task: Option<u32>,
    pub state: JobState,
    pub nodes: String,
    pub elapsed_s: u64,
    pub time_limit_s: Option<u64>,
    /// `exit:signal`
    pub exit_code: String,
}

impl AcctRow {
    /// The id without the array task (`123_4` → `123`).
    pub fn base_id(&self) -> &str {
        self.job_id.split('_').next().unwrap_or(&self.job_id)
    }
}

/// Where [`sacct`]'s answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcctSource {
    /// slurmdbd.
    Accounting,
    /// The job completion log (`sacct -c`).
    JobComp,
}

const SACCT_FIELDS: &str = "JobID,State,NodeList,Elapsed,Timelimit,ExitCode";

/// Finished-job records for these ids from slurmdbd, else from the job completion log.
/// [`SlurmError::AccountingUnavailable`] when the cluster keeps neither.
pub fn sacct(job_ids: &[String]) -> Result<(AcctSource, Vec<AcctRow>), SlurmError> {
    if job_ids.is_empty() {
        return Ok((AcctSource::Accounting, Vec::new()));
    }
    let base: Vec<String> = vec![
        "--parsable2".into(),
        "--noheader".into(),
        format!("--jobs={}", job_ids.join(",")),
        format!("--format={SACCT_FIELDS}"),
    ];
    let mut why = Vec::new();
    for (source, extra) in [
        (AcctSource::Accounting, None),
        (AcctSource::JobComp, Some("--completion")),
    ] {
        let mut args = base.clone();
        if let Some(e) = extra {
            args.insert(0, e.to_string());
        }
        let out = run("sacct", &args, None)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || is_accounting_disabled(&stderr, &out.stdout) {
            why.push(String::from_utf8_lossy(&out.stdout).trim().to_string() + stderr.trim());
            continue;
        }
        let rows = parse_sacct(&String::from_utf8_lossy(&out.stdout)).map_err(|detail| {
            SlurmError::Parse {
                command: "sacct".into(),
                detail,
            }
        })?;
        return Ok((source, rows));
    }
    Err(SlurmError::AccountingUnavailable(
        why.into_iter()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    ))
}

fn is_accounting_disabled(stderr: &str, stdout: &[u8]) -> bool {
    let out = String::from_utf8_lossy(stdout);
    [stderr, &out].iter().any(|t| {
        t.contains("accounting storage is disabled")
            || t.contains("JobCompType")
            || t.contains("jobcomp/none")
    })
}

/// Parse `sacct --parsable2 --noheader --format=JobID,State,NodeList,Elapsed,Timelimit,ExitCode`.
/// Job steps (`123.batch`, `123.0`) are skipped.
pub fn parse_sacct(stdout: &str) -> Result<Vec<AcctRow>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 6 {
            return Err(format!("expected 6 `|`-separated fields in `{line}`"));
        }
        let id = f[0].trim();
        if id.contains('.') {
            continue;
        }
        let array_task = id.split_once('_').and_then(|(_, t)| t.parse::<u32>().ok());
        rows.push(AcctRow {
            job_id: id.to_string(),
            array_task,
            state: JobState::parse(f[1].trim()),
            nodes: match f[2].trim() {
                "(null)" | "None assigned" => String::new(),
                n => n.to_string(),
            },
            elapsed_s: parse_elapsed_s(f[3].trim()).unwrap_or(0),
            time_limit_s: parse_limit_s(f[4].trim()),
            exit_code: f[5].trim().to_string(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_parsable_forms() {
        assert_eq!(parse_sbatch_parsable("42\n").unwrap(), "42");
        assert_eq!(parse_sbatch_parsable("42;cluster1\n").unwrap(), "42");
        assert!(parse_sbatch_parsable("").is_err());
        assert!(parse_sbatch_parsable("Submitted batch job 42\n").is_err());
    }

    // Captured from SLURM 22.05.8 (scripts/start-slurm.sh): an array before and after it ran,
    // a dependent job, a failed parent and its cancelled child.
    const SQUEUE_PENDING: &str = "\
7|7|0-2|PENDING||0:00|UNLIMITED|None|wrap
8|8|N/A|PENDING||0:00|UNLIMITED|Dependency|wrap
9|9|N/A|PENDING||0:00|UNLIMITED|Priority|wrap
";
    const SQUEUE_DONE: &str = "\
10|10|N/A|CANCELLED||0:00|UNLIMITED|DependencyNeverSatisfied|wrap
11|7|0|COMPLETED|vm|0:02|365-00:00:00|None|wrap
12|7|1|COMPLETED|vm|0:02|365-00:00:00|None|wrap
7|7|2|COMPLETED|vm|0:02|365-00:00:00|None|my|job
9|9|N/A|FAILED|vm|1:02:03|1-00:00:00|NonZeroExitCode|wrap
";

    #[test]
    fn squeue_pending_array_and_dependency() {
        let rows = parse_squeue(SQUEUE_PENDING).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].array_tasks, ArrayTasks::Pending("0-2".into()));
        assert_eq!(rows[0].state, JobState::Pending);
        assert_eq!(rows[0].reason, "");
        assert_eq!(rows[0].time_limit_s, None);
        assert_eq!(rows[1].reason, "Dependency");
        assert_eq!(rows[1].array_tasks, ArrayTasks::None);
    }

    #[test]
    fn squeue_finished_rows() {
        let rows = parse_squeue(SQUEUE_DONE).unwrap();
        assert_eq!(rows[0].state, JobState::Cancelled);
        assert_eq!(rows[0].reason, "DependencyNeverSatisfied");
        assert_eq!(rows[1].job_id, "11");
        assert_eq!(rows[1].array_job_id, "7");
        assert_eq!(rows[1].array_tasks, ArrayTasks::Task(0));
        assert_eq!(rows[1].nodes, "vm");
        assert_eq!(rows[1].elapsed_s, 2);
        assert_eq!(rows[1].time_limit_s, Some(365 * 86400));
        assert_eq!(rows[3].name, "my|job");
        assert_eq!(rows[4].state, JobState::Failed);
        assert_eq!(rows[4].elapsed_s, 3723);
        assert!(rows[4].state.is_failure());
        assert!(!rows[1].state.is_failure());
    }

    #[test]
    fn squeue_rejects_garbage() {
        assert!(parse_squeue("7|7|PENDING\n").is_err());
        assert!(parse_squeue("7|7|N/A|RUNNING|vm|x:y|1:00|None|n\n").is_err());
        assert!(parse_squeue("\n").unwrap().is_empty());
    }

    #[test]
    fn states() {
        assert_eq!(JobState::parse("CANCELLED by 0"), JobState::Cancelled);
        assert_eq!(JobState::parse("COMPLETING+"), JobState::Completing);
        assert_eq!(JobState::parse("TIMEOUT"), JobState::Timeout);
        assert_eq!(JobState::parse("WHATEVER"), JobState::Unknown);
        assert!(JobState::Pending.is_active());
        assert!(!JobState::Unknown.is_active());
        assert!(JobState::Timeout.is_failure());
        assert_eq!(JobState::parse("SIGNALING"), JobState::Signaling);
        assert!(JobState::Signaling.is_active());
        for s in [JobState::Running, JobState::OutOfMemory, JobState::NodeFail] {
            assert_eq!(JobState::parse(s.as_str()), s);
        }
    }

    // `sacct -c` (jobcomp/filetxt) and slurmdbd outputs.
    const SACCT_JOBCOMP: &str = "\
9|FAILED|vm|00:00:00|525600|3:0
10|CANCELLED|(null)|00:00:00|UNLIMITED|0:0
7|COMPLETED|vm|00:00:02|525600|0:0
";
    const SACCT_DBD: &str = "\
15_0|TIMEOUT|node01|00:02:05|00:02:00|0:0
15_0.batch|CANCELLED|node01|00:02:06||0:15
16|CANCELLED by 1000|None assigned|00:00:00|1-00:00:00|0:0
";

    #[test]
    fn sacct_rows() {
        let rows = parse_sacct(SACCT_JOBCOMP).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].state, JobState::Failed);
        assert_eq!(rows[0].exit_code, "3:0");
        assert_eq!(rows[0].time_limit_s, Some(525600 * 60));
        assert_eq!(rows[1].nodes, "");
        assert_eq!(rows[1].time_limit_s, None);
        let rows = parse_sacct(SACCT_DBD).unwrap();
        assert_eq!(rows.len(), 2, "steps are skipped");
        assert_eq!(rows[0].array_task, Some(0));
        assert_eq!(rows[0].base_id(), "15");
        assert_eq!(rows[0].elapsed_s, 125);
        assert_eq!(rows[0].time_limit_s, Some(120));
        assert_eq!(rows[1].state, JobState::Cancelled);
        assert_eq!(rows[1].nodes, "");
    }

    #[test]
    fn accounting_disabled_is_detected() {
        assert!(is_accounting_disabled(
            "Slurm accounting storage is disabled",
            b""
        ));
        assert!(!is_accounting_disabled(
            "sacct: error: Unknown type ArrayJobId: 7",
            b"7|COMPLETED|vm|00:00:02|525600|0:0"
        ));
    }

    #[test]
    fn dependency_args() {
        let mut d = Dependency::default();
        d.add(DependencyKind::AfterOk, &["12".into(), "13".into()]);
        d.add(DependencyKind::AfterAny, &["11".into()]);
        d.add(DependencyKind::AfterOk, &["13".into(), "14".into()]);
        assert_eq!(d.to_arg(), "afterok:12:13:14,afterany:11");
        assert_eq!(d.job_ids(), vec!["12", "13", "14", "11"]);
        let opts = SubmitOptions {
            dependency: d,
            ..Default::default()
        };
        let args = opts.args(Some(Path::new("/c/scripts/a.sbatch")));
        assert_eq!(
            args,
            vec![
                "--parsable",
                "--dependency=afterok:12:13:14,afterany:11",
                "--kill-on-invalid-dep=yes",
                "/c/scripts/a.sbatch"
            ]
        );
        let plain = SubmitOptions::default().args(Some(Path::new("s.sbatch")));
        assert_eq!(plain, vec!["--parsable", "s.sbatch"]);
    }

    #[test]
    fn wrapped_jobs_carry_account_partition_and_qos() {
        let opts = SubmitOptions {
            wrap: Some("true".into()),
            account: Some("proj".into()),
            partition: Some("cpu".into()),
            qos: Some("short".into()),
            ..Default::default()
        };
        assert_eq!(
            opts.args(None),
            vec![
                "--parsable",
                "--account=proj",
                "--partition=cpu",
                "--qos=short",
                "--wrap=true"
            ]
        );
    }

    #[test]
    fn time_formats() {
        assert_eq!(parse_elapsed_s("0:00"), Some(0));
        assert_eq!(
            parse_elapsed_s("2-03:04:05"),
            Some(2 * 86400 + 3 * 3600 + 245)
        );
        assert_eq!(parse_elapsed_s("INVALID"), Some(0));
        assert_eq!(parse_elapsed_s("1:2:3:4"), None);
        assert_eq!(parse_limit_s("UNLIMITED"), None);
        assert_eq!(parse_limit_s("2"), Some(120));
        assert_eq!(format_hms(3723), "01:02:03");
        assert_eq!(format_hms(86400 + 5), "1-00:00:05");
    }
}
