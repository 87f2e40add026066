//! The state of a campaign's jobs: squeue, then sacct / the job completion log, then what the
//! runner recorded in each job's run file; and whether any job is still active.

use super::campaign::{self, Campaign, JobRecord, JobRole, RunSummary};
use super::{AcctRow, AcctSource, ArrayTasks, JobState, QueueRow, SlurmError};
use crate::store::RunStatus;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One line of `status`: one job, or one array task.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub service: String,
    pub role: JobRole,
    /// The id `submit` recorded (the array job id for sweeps).
    pub job_id: String,
    pub array_task: ArrayTasks,
    pub state: JobState,
    /// The state word SLURM printed (shown when `state` is UNKNOWN to this version).
    pub state_raw: String,
    /// Where `state` came from.
    pub source: StateSource,
    pub node: String,
    pub elapsed_s: Option<u64>,
    pub time_limit_s: Option<u64>,
    pub reason: String,
    /// What the runner recorded in the job's run file (when it has written one).
    pub runs: Vec<RunSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateSource {
    Squeue,
    Sacct,
    JobComp,
    /// SLURM no longer knows the job and there is no accounting: only the run file is left.
    RunFile,
    /// The controller did not answer this time: squeue's last answer for the campaign, kept
    /// in the campaign directory (see [`Controller::NotAnswering`]).
    LastAnswer,
    None,
}

/// Whether the SLURM controller answered `status` this time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Controller {
    Answered,
    /// squeue gave no answer within the budget, or failed: the states shown are its last
    /// answer (when there was one), marked as such, and accounting is not asked (its states
    /// are as stale while the controller is down).
    NotAnswering {
        why: String,
        last_answer_ns: Option<i64>,
        last_answer_at: Option<String>,
    },
}

/// Everything `status` shows about a campaign.
#[derive(Debug, Clone)]
pub struct CampaignStatus {
    pub jobs: Vec<JobStatus>,
    /// Why accounting could not be read (when it could not).
    pub accounting: Option<String>,
    pub controller: Controller,
}

/// How long `status` waits for squeue (FB_SQUEUE_BUDGET_MS overrides): a controller that is
/// down makes squeue retry for many seconds, and status must answer in under a second.
pub fn squeue_budget() -> std::time::Duration {
    let ms = std::env::var("FB_SQUEUE_BUDGET_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(800);
    std::time::Duration::from_millis(ms)
}

/// The campaign's copy of squeue's last answer: `<epoch ns>` then its lines for this
/// campaign's jobs.
const LAST_ANSWER: &str = ".squeue-last-answer";

fn save_last_answer(camp: &Campaign, jobs: &[JobRecord], raw: &str, now_ns: i64) {
    let mut text = format!("{now_ns}\n");
    for line in raw.lines() {
        let id = line.split('|').nth(1).unwrap_or_default();
        if jobs.iter().any(|j| j.job_id == id) {
            text.push_str(line);
            text.push('\n');
        }
    }
    let path = camp.dir.join(LAST_ANSWER);
    let tmp = camp
        .dir
        .join(format!("{LAST_ANSWER}.{}", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn last_answer(camp: &Campaign) -> Option<(i64, Vec<QueueRow>)> {
    let text = std::fs::read_to_string(camp.dir.join(LAST_ANSWER)).ok()?;
    let (first, rest) = text.split_once('\n')?;
    let ns = first.trim().parse::<i64>().ok()?;
    Some((ns, super::parse_squeue(rest).ok()?))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Collect the state of every job of a campaign: squeue, then sacct / the job completion log,
/// then the run files.
pub fn collect_status(camp: &Campaign) -> anyhow::Result<CampaignStatus> {
    let jobs = camp.jobs()?;
    let (queue, controller) = match super::squeue_within(Some(squeue_budget())) {
        Ok((q, raw)) => {
            save_last_answer(camp, &jobs, &raw, now_ns());
            (q, Controller::Answered)
        }
        Err(e @ SlurmError::NotFound { .. }) => return Err(e.into()),
        Err(e) => {
            let last = last_answer(camp);
            let controller = Controller::NotAnswering {
                why: e.to_string(),
                last_answer_ns: last.as_ref().map(|l| l.0),
                last_answer_at: last.as_ref().map(|l| {
                    humantime::format_rfc3339_millis(
                        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(l.0.max(0) as u64),
                    )
                    .to_string()
                }),
            };
            (last.map(|l| l.1).unwrap_or_default(), controller)
        }
    };
    let answered = controller == Controller::Answered;
    let mut out = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for j in &jobs {
        if !queue.iter().any(|q| q.array_job_id == j.job_id) {
            missing.push(j.job_id.clone());
            if j.array_size.is_some() {
                // The job completion log knows array tasks only by their own job ids, which
                // the tasks' run files record.
                for f in camp.run_files(&j.service) {
                    for r in campaign::read_runs(&f.path).unwrap_or_default() {
                        if let Some(id) = r.slurm_job_id {
                            if !missing.contains(&id) {
                                missing.push(id);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut accounting_note = None;
    let (acct_source, acct) = if missing.is_empty() || !answered {
        (AcctSource::Accounting, Vec::new())
    } else {
        match super::sacct(&missing) {
            Ok(r) => r,
            Err(SlurmError::AccountingUnavailable(why)) => {
                accounting_note = Some(format!("sacct unavailable: {why}"));
                (AcctSource::Accounting, Vec::new())
            }
            Err(e) => {
                accounting_note = Some(e.to_string());
                (AcctSource::Accounting, Vec::new())
            }
        }
    };
    for j in &jobs {
        out.extend(job_rows(camp, j, &queue, &acct, acct_source));
    }
    if !answered {
        for r in &mut out {
            if r.source == StateSource::Squeue {
                r.source = StateSource::LastAnswer;
            }
        }
    }
    explain_dependencies(&jobs, &mut out);
    Ok(CampaignStatus {
        jobs: out,
        accounting: accounting_note,
        controller,
    })
}

/// A job waiting on a dependency says on which jobs, and what they are doing (a parent stuck
/// in COMPLETING after a node died holds its children for minutes).
fn explain_dependencies(jobs: &[JobRecord], rows: &mut [JobStatus]) {
    let states: Vec<(String, String, JobState, String)> = rows
        .iter()
        .map(|r| (r.job_id.clone(), r.service.clone(), r.state, r.node.clone()))
        .collect();
    for r in rows.iter_mut() {
        if r.state != JobState::Pending || !r.reason.starts_with("Dependency") {
            continue;
        }
        let Some(j) = jobs.iter().find(|j| j.job_id == r.job_id) else {
            continue;
        };
        let waits: Vec<String> = j
            .depends_on
            .iter()
            .filter_map(|id| {
                // Only parents not over yet hold the job (afterany/afterok).
                let (_, svc, st, node) = states.iter().find(|s| &s.0 == id)?;
                (!st.is_finished()).then(|| {
                    let on = if node.is_empty() {
                        String::new()
                    } else {
                        format!(" on {node}")
                    };
                    format!("{svc} {id} {st}{on}")
                })
            })
            .collect();
        if !waits.is_empty() {
            r.reason = format!("{}: waits for {}", r.reason, waits.join(", "));
        }
    }
}

pub fn acct_state_source(s: AcctSource) -> StateSource {
    match s {
        AcctSource::Accounting => StateSource::Sacct,
        AcctSource::JobComp => StateSource::JobComp,
    }
}

pub fn job_rows(
    camp: &Campaign,
    j: &JobRecord,
    queue: &[QueueRow],
    acct: &[AcctRow],
    acct_source: AcctSource,
) -> Vec<JobStatus> {
    let base = |state, source| JobStatus {
        service: j.service.clone(),
        role: j.role,
        job_id: j.job_id.clone(),
        array_task: ArrayTasks::None,
        state,
        state_raw: state.as_str().to_string(),
        source,
        node: String::new(),
        elapsed_s: None,
        time_limit_s: None,
        reason: String::new(),
        runs: Vec::new(),
    };
    let mut rows: Vec<(JobStatus, Option<String>)> = Vec::new(); // (row, task's own job id)
    for q in queue.iter().filter(|q| q.array_job_id == j.job_id) {
        let mut r = base(q.state, StateSource::Squeue);
        r.array_task = q.array_tasks.clone();
        r.state_raw = q.state_raw.clone();
        r.node = q.nodes.clone();
        r.elapsed_s = Some(q.elapsed_s);
        r.time_limit_s = q.time_limit_s;
        r.reason = q.reason.clone();
        rows.push((r, Some(q.job_id.clone())));
    }
    if rows.is_empty() {
        let source = acct_state_source(acct_source);
        // Array tasks without a task number (the job completion log) are matched through
        // their run files below.
        for a in acct
            .iter()
            .filter(|a| a.base_id() == j.job_id)
            .filter(|a| j.array_size.is_none() || a.array_task.is_some())
        {
            let mut r = base(a.state, source);
            r.array_task = a.array_task.map_or(ArrayTasks::None, ArrayTasks::Task);
            r.node = a.nodes.clone();
            r.elapsed_s = Some(a.elapsed_s);
            r.time_limit_s = a.time_limit_s;
            rows.push((r, None));
        }
    }
    // Attach run files; array tasks that SLURM no longer reports come from their run files.
    if j.role == JobRole::Service {
        let files = camp.run_files(&j.service);
        let task_ids: Vec<String> = rows.iter().filter_map(|(_, id)| id.clone()).collect();
        let mine: Vec<_> = files
            .into_iter()
            .filter(|f| f.job_id == j.job_id || task_ids.contains(&f.job_id))
            .collect();
        for f in &mine {
            let mut runs = campaign::read_runs(&f.path).unwrap_or_default();
            for r in &mut runs {
                r.node.clone_from(&f.node);
            }
            let task = f.array_task.or_else(|| {
                runs.iter()
                    .find_map(|r| r.slurm_array_task.map(|t| t as u32))
            });
            let slot = rows
                .iter_mut()
                .find(|(r, own)| match (&r.array_task, task) {
                    (ArrayTasks::Task(t), Some(ft)) => *t == ft,
                    (ArrayTasks::None, None) => true,
                    (_, None) => own.as_deref() == Some(f.job_id.as_str()),
                    _ => false,
                });
            match slot {
                Some((r, _)) => r.runs.extend(runs),
                None => {
                    let own_id = runs.iter().find_map(|r| r.slurm_job_id.clone());
                    let a = own_id
                        .as_deref()
                        .and_then(|id| acct.iter().find(|a| a.job_id == id));
                    let mut r = match a {
                        Some(a) => {
                            let mut r = base(a.state, acct_state_source(acct_source));
                            r.node = a.nodes.clone();
                            r.elapsed_s = Some(a.elapsed_s);
                            r.time_limit_s = a.time_limit_s;
                            r
                        }
                        None => {
                            let mut r = base(JobState::Unknown, StateSource::RunFile);
                            r.reason = "SLURM no longer reports this job".into();
                            if let Some(run) = runs.first() {
                                r.elapsed_s = run
                                    .ended_ns
                                    .map(|e| ((e - run.started_ns).max(0) / 1_000_000_000) as u64);
                            }
                            r
                        }
                    };
                    r.array_task = task.map_or(ArrayTasks::None, ArrayTasks::Task);
                    r.runs = runs;
                    rows.push((r, None));
                }
            }
        }
    }
    if rows.is_empty() {
        let mut r = base(JobState::Unknown, StateSource::None);
        r.reason = "not in squeue, no accounting record, no run file".into();
        rows.push((r, None));
    }
    let mut rows: Vec<JobStatus> = rows.into_iter().map(|(r, _)| r).collect();
    rows.sort_by_key(|r| match &r.array_task {
        ArrayTasks::None => (0, 0),
        ArrayTasks::Task(t) => (1, *t as u64),
        ArrayTasks::Pending(_) => (2, 0),
    });
    rows
}

/// Whether any job of the campaign is still queued or running.
pub fn any_active(camp: &Campaign) -> anyhow::Result<bool> {
    let jobs = camp.jobs()?;
    let queue = super::squeue()?;
    Ok(queue
        .iter()
        .any(|q| !q.state.is_finished() && jobs.iter().any(|j| j.job_id == q.array_job_id)))
}

/// Follows a campaign's log files: each call prints what was appended since the last one, with
/// a `==> file <==` header whenever the file changes.
#[derive(Debug, Default)]
pub struct LogTail {
    offsets: HashMap<PathBuf, u64>,
    last_header: Option<PathBuf>,
}

impl LogTail {
    /// Print the new output of the logs of `service` (all when `None`); `name` shows a path in
    /// the header. True when anything was printed.
    pub fn print_new(
        &mut self,
        camp: &Campaign,
        service: Option<&str>,
        out: &mut dyn Write,
        name: &dyn Fn(&Path) -> String,
    ) -> std::io::Result<bool> {
        let mut any = false;
        for f in camp.log_files(service) {
            let off = self.offsets.entry(f.clone()).or_insert(0);
            let Ok(mut file) = std::fs::File::open(&f) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len <= *off {
                continue;
            }
            file.seek(SeekFrom::Start(*off))?;
            let mut buf = Vec::new();
            file.take(len - *off).read_to_end(&mut buf)?;
            *off = len;
            if self.last_header.as_ref() != Some(&f) {
                writeln!(out, "==> {} <==", name(&f))?;
                self.last_header = Some(f.clone());
            }
            out.write_all(&buf)?;
            out.flush()?;
            any = true;
        }
        Ok(any)
    }
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub campaign: String,
    pub accounting: Option<String>,
    /// Whether slurmctld answered; when not, the job states are its last answer.
    pub controller: Controller,
    pub jobs: Vec<JobStatus>,
}

// ---------------------------------------------------------------- the `status` table

/// The text `status` prints: the campaign, the controller's state, one row per job (and array
/// task) with its latest run, then failures, lost runs and the accounting note.
pub fn render_status(
    campaign: &str,
    rows: &[JobStatus],
    note: Option<&str>,
    controller: &Controller,
    now_ns: i64,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!("campaign: {campaign}\n");
    let stale = match controller {
        Controller::Answered => false,
        Controller::NotAnswering {
            why,
            last_answer_ns,
            ..
        } => {
            let last = match last_answer_ns {
                Some(t) => format!(
                    "STALE: states marked `?` are its last answer, at {} ({} ago)",
                    rfc3339(*t),
                    super::format_hms(((now_ns - t).max(0) / 1_000_000_000) as u64)
                ),
                None => "no earlier answer is known: only the run files are shown".into(),
            };
            let _ = writeln!(out, "controller: NOT ANSWERING ({why}); {last}");
            true
        }
    };
    out.push_str(&status_table(rows, stale, now_ns));
    for r in rows {
        for run in &r.runs {
            let on = run
                .node
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default();
            if let Some(m) = &run.failure_message {
                let _ = writeln!(out, "{} {}{on}: {}", r.service, r.job_id, m);
            }
            if is_lost(run, r.state) {
                let _ = writeln!(
                    out,
                    "{} {}{on}: LOST: the job is {} but this runner never finished its run; {} requests kept{}",
                    r.service,
                    r.job_id,
                    r.state,
                    run.requests,
                    run.last_sent_ns
                        .map(|t| format!(", the last sent at {}", rfc3339(t)))
                        .unwrap_or_default()
                );
            }
        }
    }
    if let Some(n) = note {
        let _ = writeln!(
            out,
            "note: {n}; jobs that left squeue are shown from their run files"
        );
    }
    out
}

/// The job table of [`render_status`] (`stale`: the controller does not answer).
fn status_table(rows: &[JobStatus], stale: bool, now_ns: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let header = [
        "SERVICE", "JOB ID", "TASK", "STATE", "NODE", "ELAPSED", "LIMIT", "REASON", "RUN",
    ];
    let mut table: Vec<[String; 9]> = vec![header.map(String::from)];
    for r in rows {
        table.push([
            r.service.clone(),
            r.job_id.clone(),
            r.array_task.to_string(),
            {
                let s = if r.state == JobState::Unknown && !r.state_raw.is_empty() {
                    r.state_raw.clone()
                } else {
                    r.state.to_string()
                };
                if stale && r.source == StateSource::LastAnswer {
                    format!("{s}?")
                } else {
                    s
                }
            },
            if r.node.is_empty() {
                "-".into()
            } else {
                r.node.clone()
            },
            r.elapsed_s
                .map(super::format_hms)
                .unwrap_or_else(|| "-".into()),
            r.time_limit_s
                .map(super::format_hms)
                .unwrap_or_else(|| "UNLIMITED".into()),
            if r.reason.is_empty() {
                "-".into()
            } else {
                r.reason.clone()
            },
            if r.role == JobRole::Service {
                run_cell(&r.runs, now_ns, r.state)
            } else {
                "-".into()
            },
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 8 {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// A time stamp as RFC 3339 with milliseconds (UTC).
fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Whether a run recorded `running` belongs to a job SLURM says is over (its batch script
/// ended: finished, or completing): its runner is gone without finishing it, so it is `lost`.
pub fn is_lost(r: &RunSummary, job: JobState) -> bool {
    r.status == RunStatus::Running && (job.is_finished() || job == JobState::Completing)
}

fn clock_time(ns: i64) -> String {
    rfc3339(ns).get(11..19).unwrap_or_default().to_string()
}

/// The RUN cell: the latest run, or one entry per client node for a multi-node job.
pub fn run_cell(runs: &[RunSummary], now_ns: i64, job: JobState) -> String {
    if runs.iter().any(|r| r.node.is_some()) {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.node.as_deref().unwrap_or("?"),
                    one_run_cell(r, now_ns, job)
                )
            })
            .collect();
        return cells.join("; ");
    }
    match runs.last() {
        Some(r) => one_run_cell(r, now_ns, job),
        None => "-".into(),
    }
}

fn one_run_cell(r: &RunSummary, now_ns: i64, job: JobState) -> String {
    if is_lost(r, job) {
        return format!(
            "lost {} req{}",
            r.requests,
            r.last_sent_ns
                .map(|t| format!(" (last at {})", clock_time(t)))
                .unwrap_or_default()
        );
    }
    let mut s = format!("{} {} req", r.shown_status(), r.requests);
    if r.errors > 0 {
        s.push_str(&format!(" ({} err)", r.errors));
    }
    if r.status == RunStatus::Running {
        let elapsed = (now_ns - r.started_ns).max(0) as f64 / 1e9;
        s.push_str(&format!(
            " {:.0}/{:.0}s",
            elapsed,
            r.duration_s + r.warmup_s
        ));
    }
    if let Some(stage) = &r.failure_stage {
        s.push_str(&format!(" [{stage}]"));
    }
    if let Some(reason) = &r.stop_reason {
        if r.status != RunStatus::Success {
            s.push_str(&format!(" ({reason})"));
        }
    }
    if let Some(n) = r.push_failures.filter(|n| *n > 0) {
        s.push_str(&format!(
            " [live metrics: {n} push{} failed, see the job log]",
            if n == 1 { "" } else { "es" }
        ));
    }
    s
}

// ---------------------------------------------------------------- cancel

/// What [`cancel_campaign`] did.
pub struct Cancelled {
    /// The campaign's jobs.
    pub jobs: usize,
    /// The jobs cancelled (id, service): those still queued or running.
    pub cancelled: Vec<(String, String)>,
}

/// Cancel every job of the campaign that is still queued or running (and nothing else).
pub fn cancel_campaign(camp: &Campaign) -> anyhow::Result<Cancelled> {
    let jobs = camp.jobs()?;
    let queue = super::squeue()?;
    let active: Vec<&JobRecord> = jobs
        .iter()
        .filter(|j| {
            queue
                .iter()
                .any(|q| q.array_job_id == j.job_id && !q.state.is_finished())
        })
        .collect();
    if !active.is_empty() {
        let ids: Vec<String> = active.iter().map(|j| j.job_id.clone()).collect();
        super::scancel(&ids)?;
    }
    Ok(Cancelled {
        jobs: jobs.len(),
        cancelled: active
            .iter()
            .map(|j| (j.job_id.clone(), j.service.clone()))
            .collect(),
    })
}

// ---------------------------------------------------------------- logs

/// Print the output of the campaign's job logs (of `service` when given: it must be one of the
/// campaign's) to `out`; with `follow`, keep printing new output until every job has ended.
/// True when anything was printed.
pub fn show_logs(
    camp: &Campaign,
    service: Option<&str>,
    follow: bool,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    if let Some(s) = service {
        let jobs = camp.jobs()?;
        if !jobs.iter().any(|j| j.service == s) {
            let names: Vec<&str> = jobs.iter().map(|j| j.service.as_str()).collect();
            return Err(crate::exit::Failure::invalid_input(format!(
                "campaign has no service `{s}` (it has: {})",
                names.join(", ")
            ))
            .into());
        }
    }
    let mut tail = LogTail::default();
    let mut print_new = |out: &mut dyn Write| -> anyhow::Result<bool> {
        Ok(tail.print_new(camp, service, out, &|f| campaign::display_path(f))?)
    };
    let printed = print_new(out)?;
    if !follow {
        return Ok(printed);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        print_new(out)?;
        if !any_active(camp)? {
            // One last read: SLURM may flush the log after the state changes.
            std::thread::sleep(std::time::Duration::from_millis(500));
            print_new(out)?;
            return Ok(true);
        }
    }
}
