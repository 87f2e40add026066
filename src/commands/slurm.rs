//! `submit`, `status`, `logs`, `cancel`: a campaign on a SLURM cluster.
//!
//! `submit` compiles the recipe into a fresh campaign directory (the layout `compile` writes),
//! submits one batch job per service with `sbatch --parsable` and records every job id in
//! `campaign.db`. Ordering is expressed with SLURM dependencies, never by polling:
//! `depends_on` → `afterok:<ids>`, `--sequential` → `afterany:<previous>`, and the report job
//! → `afterany:<every service job>`; every dependent job also gets `--kill-on-invalid-dep=yes`
//! so a failed parent cancels it instead of leaving it pending forever.

use super::{load_recipe, InvalidInput};
use crate::exit;
use crate::recipe::Plan;
use crate::slurm::campaign::{self, Campaign, JobRecord, JobRole, RunSummary};
use crate::slurm::{
    self, AcctRow, AcctSource, ArrayTasks, DependencyKind, JobState, QueueRow, SlurmError,
    SubmitOptions,
};
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    pub recipe: PathBuf,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Compile and print the sbatch commands without submitting.
    #[arg(long)]
    pub dry_run: bool,
    /// Start each service only after the previous one ended (`afterany` chain).
    #[arg(long)]
    pub sequential: bool,
    /// Do not submit the report job that runs after every service job.
    #[arg(long)]
    pub no_report: bool,
    /// Directory that holds the campaign directories.
    #[arg(long, default_value = "campaigns")]
    pub campaigns_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Campaign directory (default: the newest under ./campaigns).
    pub campaign: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub campaign: PathBuf,
    /// Only this service's logs.
    #[arg(long)]
    pub service: Option<String>,
    /// Keep printing new output until every job of the campaign has ended.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    pub campaign: PathBuf,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Quote for a POSIX shell (`'...'`, with `'` as `'\''`).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Services to submit, parents before children (depends_on is validated acyclic).
fn submission_order<'a>(plan: &'a Plan, only: Option<&str>) -> Vec<&'a crate::recipe::Service> {
    let selected: Vec<&crate::recipe::Service> = plan
        .services
        .iter()
        .filter(|s| only.map_or(true, |o| s.name == o))
        .collect();
    let mut done: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    while out.len() < selected.len() {
        let before = out.len();
        for s in &selected {
            if done.contains(&s.name.as_str()) {
                continue;
            }
            let ready = s
                .depends_on
                .iter()
                .all(|d| done.contains(&d.as_str()) || !selected.iter().any(|x| &x.name == d));
            if ready {
                done.push(&s.name);
                out.push(*s);
            }
        }
        if out.len() == before {
            // Unreachable for a validated plan; keep the rest in recipe order.
            for s in &selected {
                if !done.contains(&s.name.as_str()) {
                    done.push(&s.name);
                    out.push(*s);
                }
            }
        }
    }
    out
}

struct Submitted {
    record: JobRecord,
    args: Vec<String>,
}

pub fn submit(a: &SubmitArgs) -> anyhow::Result<i32> {
    let loaded = load_recipe(&a.recipe)?;
    let plan = &loaded.plan;
    if let Some(s) = &a.service {
        if plan.service(s).is_none() {
            let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
            return Err(InvalidInput(format!(
                "no service `{s}` in {} (services: {})",
                a.recipe.display(),
                names.join(", ")
            ))
            .into());
        }
    }
    let t0 = SystemTime::now();
    let unix_s = t0
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = campaign::create_dir(&a.campaigns_dir, &plan.benchmark.name, unix_s)?;
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    // compile fills the (empty) directory; nothing was submitted yet if it fails, so leave no
    // half-made campaign behind.
    if let Err(e) = compile_into(a, &loaded, &dir) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    for sub in ["logs", "runs", "endpoints"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let camp = Campaign::init(&dir)?;

    let mut submitted: Vec<Submitted> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let result = submit_jobs(a, plan, &camp, &mut submitted, &mut ids);
    if let Err(e) = result {
        if !a.dry_run && !submitted.is_empty() {
            let ids: Vec<String> = submitted.iter().map(|s| s.record.job_id.clone()).collect();
            eprintln!(
                "submission failed part way: cancelling the {} job(s) already submitted ({})",
                ids.len(),
                ids.join(", ")
            );
            if let Err(ce) = slurm::scancel(&ids) {
                eprintln!("warning: {ce}");
            }
        }
        return Err(e);
    }

    let rel = display_path(&dir);
    let mut out = std::io::stdout().lock();
    writeln!(out, "campaign: {rel}")?;
    if a.dry_run {
        writeln!(
            out,
            "dry run: nothing submitted; these are the sbatch commands:"
        )?;
        for s in &submitted {
            let args: Vec<String> = s.args.iter().map(|x| shell_quote(x)).collect();
            writeln!(out, "  sbatch {}", args.join(" "))?;
        }
        return Ok(exit::OK);
    }
    writeln!(
        out,
        "{:<24} {:<10} {:<8} {:<7} AFTER",
        "SERVICE", "JOB ID", "ROLE", "ARRAY"
    )?;
    for s in &submitted {
        let r = &s.record;
        writeln!(
            out,
            "{:<24} {:<10} {:<8} {:<7} {}",
            r.service,
            r.job_id,
            r.role.as_str(),
            r.array_size
                .map(|n| format!("0-{}", n.saturating_sub(1)))
                .unwrap_or_else(|| "-".into()),
            if r.depends_on.is_empty() {
                "-".to_string()
            } else {
                r.depends_on.join(",")
            }
        )?;
    }
    writeln!(out, "next:")?;
    writeln!(out, "  factorybench status {rel}")?;
    writeln!(out, "  factorybench logs {rel} --follow")?;
    writeln!(out, "  factorybench cancel {rel}")?;
    writeln!(
        out,
        "  factorybench report {rel} --format html --out {rel}/report.html"
    )?;
    Ok(exit::OK)
}

/// Relative to the working directory when inside it (shorter commands to copy).
fn display_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// Compile the recipe into the (empty) campaign directory: the same layout `compile --out`
/// writes (render's campaign writer).
fn compile_into(a: &SubmitArgs, loaded: &crate::recipe::Loaded, dir: &Path) -> anyhow::Result<()> {
    use crate::render::campaign::{write_campaign, CampaignSpec};
    let spec = CampaignSpec {
        out: dir.to_path_buf(),
        service: a.service.clone(),
        force: false,
    };
    match write_campaign(loaded, &crate::render::Renderer::new(), &spec) {
        Ok(_) => Ok(()),
        Err(e) if e.is_invalid_input() => Err(InvalidInput(e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}

fn submit_jobs(
    a: &SubmitArgs,
    plan: &Plan,
    camp: &Campaign,
    submitted: &mut Vec<Submitted>,
    ids: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let dir = &camp.dir;
    let mut sub = |service: &str,
                   role: JobRole,
                   script: Option<&Path>,
                   opts: SubmitOptions,
                   array_size: Option<u32>|
     -> anyhow::Result<String> {
        let args = opts.args(script);
        let job_id = if a.dry_run {
            format!("<{service}>")
        } else {
            slurm::sbatch(script, &opts, Some(dir))?
        };
        let record = JobRecord {
            job_id: job_id.clone(),
            service: service.to_string(),
            role,
            array_size,
            script_path: script
                .map(|s| s.strip_prefix(dir).unwrap_or(s).display().to_string())
                .unwrap_or_else(|| "(wrap)".into()),
            submitted_ns: now_ns(),
            depends_on: opts.dependency.job_ids(),
        };
        if !a.dry_run {
            camp.record_job(&record)?;
        }
        submitted.push(Submitted { record, args });
        Ok(job_id)
    };

    let monitor = dir.join("scripts/monitor.sbatch");
    if monitor.is_file() && a.service.is_none() {
        sub(
            "monitor",
            JobRole::Monitor,
            Some(&monitor),
            SubmitOptions::default(),
            None,
        )?;
    }
    let mut previous: Option<String> = None;
    let mut service_ids = Vec::new();
    for s in submission_order(plan, a.service.as_deref()) {
        let script = dir.join("scripts").join(format!("{}.sbatch", s.name));
        if !script.is_file() {
            anyhow::bail!(
                "compile wrote no batch script for service `{}` ({} is missing)",
                s.name,
                script.display()
            );
        }
        let mut opts = SubmitOptions::default();
        let parents: Vec<String> = s
            .depends_on
            .iter()
            .filter_map(|d| ids.get(d).cloned())
            .collect();
        opts.dependency.add(DependencyKind::AfterOk, &parents);
        if a.sequential {
            if let Some(p) = &previous {
                opts.dependency
                    .add(DependencyKind::AfterAny, std::slice::from_ref(p));
            }
        }
        let array_size = s.sweep.as_ref().map(|w| w.values.len() as u32);
        let id = sub(&s.name, JobRole::Service, Some(&script), opts, array_size)?;
        ids.insert(s.name.clone(), id.clone());
        previous = Some(id.clone());
        service_ids.push(id);
    }
    if !a.no_report && !service_ids.is_empty() {
        let exe = std::env::current_exe().context("locating the factorybench binary")?;
        let d = dir.display().to_string();
        let wrap = format!(
            "{} report {} --format html --out {}",
            shell_quote(&exe.display().to_string()),
            shell_quote(&d),
            shell_quote(&format!("{d}/report.html")),
        );
        let mut opts = SubmitOptions {
            wrap: Some(wrap),
            job_name: Some(format!(
                "fb-report-{}",
                campaign::slug(&plan.benchmark.name)
            )),
            output: Some(format!("{d}/logs/report-%j.out")),
            ..Default::default()
        };
        opts.dependency.add(DependencyKind::AfterAny, &service_ids);
        sub("report", JobRole::Report, None, opts, None)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- status

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
    None,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    campaign: String,
    accounting: Option<String>,
    jobs: Vec<JobStatus>,
}

/// Collect the state of every job of a campaign: squeue, then sacct / the job completion log,
/// then the run files.
pub fn collect_status(camp: &Campaign) -> anyhow::Result<(Vec<JobStatus>, Option<String>)> {
    let jobs = camp.jobs()?;
    let queue = match slurm::squeue() {
        Ok(q) => q,
        Err(e @ SlurmError::NotFound { .. }) => return Err(e.into()),
        Err(e) => {
            tracing::warn!("{e}");
            Vec::new()
        }
    };
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
    let (acct_source, acct) = if missing.is_empty() {
        (AcctSource::Accounting, Vec::new())
    } else {
        match slurm::sacct(&missing) {
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
    Ok((out, accounting_note))
}

fn acct_state_source(s: AcctSource) -> StateSource {
    match s {
        AcctSource::Accounting => StateSource::Sacct,
        AcctSource::JobComp => StateSource::JobComp,
    }
}

fn job_rows(
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
            let runs = campaign::read_runs(&f.path).unwrap_or_default();
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

fn run_cell(runs: &[RunSummary], now_ns: i64) -> String {
    let Some(r) = runs.last() else {
        return "-".into();
    };
    let mut s = format!("{} {} req", r.status, r.requests);
    if r.errors > 0 {
        s.push_str(&format!(" ({} err)", r.errors));
    }
    if r.status == "running" {
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
        if r.status != "success" {
            s.push_str(&format!(" ({reason})"));
        }
    }
    s
}

fn campaign_arg(c: Option<&Path>) -> anyhow::Result<Campaign> {
    let dir = match c {
        Some(d) => d.to_path_buf(),
        None => {
            campaign::newest(Path::new("campaigns")).map_err(|e| InvalidInput(e.to_string()))?
        }
    };
    Campaign::open(&dir).map_err(|e| InvalidInput(e.to_string()).into())
}

pub fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    let camp = campaign_arg(a.campaign.as_deref())?;
    let (rows, note) = collect_status(&camp)?;
    if a.json {
        let rep = StatusReport {
            campaign: camp.dir.display().to_string(),
            accounting: note,
            jobs: rows,
        };
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "campaign: {}", display_path(&camp.dir))?;
    let header = [
        "SERVICE", "JOB ID", "TASK", "STATE", "NODE", "ELAPSED", "LIMIT", "REASON", "RUN",
    ];
    let now = now_ns();
    let mut table: Vec<[String; 9]> = vec![header.map(String::from)];
    for r in &rows {
        table.push([
            r.service.clone(),
            r.job_id.clone(),
            r.array_task.to_string(),
            if r.state == JobState::Unknown && !r.state_raw.is_empty() {
                r.state_raw.clone()
            } else {
                r.state.to_string()
            },
            if r.node.is_empty() {
                "-".into()
            } else {
                r.node.clone()
            },
            r.elapsed_s
                .map(slurm::format_hms)
                .unwrap_or_else(|| "-".into()),
            r.time_limit_s
                .map(slurm::format_hms)
                .unwrap_or_else(|| "UNLIMITED".into()),
            if r.reason.is_empty() {
                "-".into()
            } else {
                r.reason.clone()
            },
            if r.role == JobRole::Service {
                run_cell(&r.runs, now)
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
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    for r in &rows {
        for run in &r.runs {
            if let Some(m) = &run.failure_message {
                writeln!(out, "{} {}: {}", r.service, r.job_id, m)?;
            }
        }
    }
    if let Some(n) = note {
        writeln!(
            out,
            "note: {n}; jobs that left squeue are shown from their run files"
        )?;
    }
    Ok(exit::OK)
}

// ---------------------------------------------------------------- logs

/// Whether any job of the campaign is still queued or running.
fn any_active(camp: &Campaign) -> anyhow::Result<bool> {
    let jobs = camp.jobs()?;
    let queue = slurm::squeue()?;
    Ok(queue
        .iter()
        .any(|q| !q.state.is_finished() && jobs.iter().any(|j| j.job_id == q.array_job_id)))
}

pub fn logs(a: &LogsArgs) -> anyhow::Result<i32> {
    let camp = Campaign::open(&a.campaign).map_err(|e| InvalidInput(e.to_string()))?;
    if let Some(s) = &a.service {
        let jobs = camp.jobs()?;
        if !jobs.iter().any(|j| &j.service == s) {
            let names: Vec<&str> = jobs.iter().map(|j| j.service.as_str()).collect();
            return Err(InvalidInput(format!(
                "campaign has no service `{s}` (it has: {})",
                names.join(", ")
            ))
            .into());
        }
    }
    let mut offsets: HashMap<PathBuf, u64> = HashMap::new();
    let mut last_header: Option<PathBuf> = None;
    let mut out = std::io::stdout().lock();
    let mut print_new = |out: &mut dyn Write| -> anyhow::Result<bool> {
        let mut any = false;
        for f in camp.log_files(a.service.as_deref()) {
            let off = offsets.entry(f.clone()).or_insert(0);
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
            if last_header.as_ref() != Some(&f) {
                writeln!(out, "==> {} <==", display_path(&f))?;
                last_header = Some(f.clone());
            }
            out.write_all(&buf)?;
            out.flush()?;
            any = true;
        }
        Ok(any)
    };
    let printed = print_new(&mut out)?;
    if !a.follow {
        if !printed {
            eprintln!("no log output yet (are the jobs still pending? see `factorybench status`)");
        }
        return Ok(exit::OK);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        print_new(&mut out)?;
        if !any_active(&camp)? {
            // One last read: SLURM may flush the log after the state changes.
            std::thread::sleep(Duration::from_millis(500));
            print_new(&mut out)?;
            return Ok(exit::OK);
        }
    }
}

// ---------------------------------------------------------------- cancel

pub fn cancel(a: &CancelArgs) -> anyhow::Result<i32> {
    let camp = Campaign::open(&a.campaign).map_err(|e| InvalidInput(e.to_string()))?;
    let jobs = camp.jobs()?;
    let queue = slurm::squeue()?;
    let active: Vec<String> = jobs
        .iter()
        .filter(|j| {
            queue
                .iter()
                .any(|q| q.array_job_id == j.job_id && !q.state.is_finished())
        })
        .map(|j| j.job_id.clone())
        .collect();
    if active.is_empty() {
        println!(
            "nothing to cancel: none of the campaign's {} job(s) is queued or running",
            jobs.len()
        );
        return Ok(exit::OK);
    }
    slurm::scancel(&active)?;
    let names: Vec<String> = jobs
        .iter()
        .filter(|j| active.contains(&j.job_id))
        .map(|j| format!("{} ({})", j.job_id, j.service))
        .collect();
    println!("cancelled {} job(s): {}", active.len(), names.join(", "));
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    fn run_file(dir: &Path, name: &str, slurm_job_id: &str, task: Option<i64>, requests: i64) {
        let conn = rusqlite::Connection::open(dir.join("runs").join(name)).unwrap();
        conn.execute_batch(include_str!("../store/schema.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO runs (run_id, campaign, service, service_kind, status, started_ns,
             ended_ns, arrival, clients, duration_s, warmup_s, seed, recipe_json, recipe_sha256,
             host, tool_version, slurm_job_id, slurm_array_task)
             VALUES (?1, 'c', 's', 'file_storage', 'success', 1000000000, 4000000000,
             'constant', 1, 3, 0, 1, '{}', 'x', 'vm', '0', ?2, ?3)",
            rusqlite::params![name, slurm_job_id, task],
        )
        .unwrap();
        for i in 0..requests {
            conn.execute(
                "INSERT INTO requests (run_id, worker, seq, op, scheduled_ns, sent_ns, done_ns, ok)
                 VALUES (?1, 0, ?2, 'read', ?2, ?2, ?2, 1)",
                rusqlite::params![name, 2_000_000_000 + i],
            )
            .unwrap();
        }
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
        assert_eq!(run_cell(&web[0].runs, 0), "success 5 req");

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

    #[test]
    fn order_puts_parents_first() {
        let text = r#"
benchmark: {name: t}
services:
  - service_name: client
    service_type: http
    runtime: external
    service_url: http://127.0.0.1:1
    url: /
    depends_on: [server]
  - service_name: server
    service_type: http
    runtime: external
    service_url: http://127.0.0.1:1
    url: /
"#;
        let l = crate::recipe::parse_str(text, Path::new("t.yml")).unwrap();
        let names: Vec<&str> = submission_order(&l.plan, None)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["server", "client"]);
        let only: Vec<&str> = submission_order(&l.plan, Some("client"))
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(only, vec!["client"]);
    }
}
