//! `submit`, `status`, `logs`, `cancel`: a campaign on a SLURM cluster.
//!
//! `submit` compiles the recipe into a fresh campaign directory (the layout `compile` writes),
//! submits one batch job per service with `sbatch --parsable` and records every job id in
//! `campaign.db`. Ordering is expressed with SLURM dependencies, never by polling:
//! `depends_on` → `afterok:<ids>`, `--sequential` → `afterany:<previous>`, and the report job
//! → `afterany:<every service job>`; every dependent job also gets `--kill-on-invalid-dep=yes`
//! so a failed parent cancels it instead of leaving it pending forever.

use super::InvalidInput;
use crate::exit;
use crate::slurm::campaign::{self, Campaign, JobRole, RunSummary};
use crate::slurm::status::{any_active, LogTail};
pub use crate::slurm::status::{collect_status, Controller, JobStatus, StateSource};
use crate::slurm::submit::{now_ns, shell_quote, submit_jobs, SubmitRequest, Submitted};
use crate::slurm::{self, JobState};
use crate::store::RunStatus;
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench doctor recipe.yml && factorybench submit recipe.yml
  factorybench submit recipe.yml --service vllm --dry-run
  factorybench submit recipe.yml --capacity        # the capacity search of each service with capacity_search

Each service is one batch job (start, readiness, the run, stop); a service with a sweep is a job
array; a report job runs after them. `status`, `logs` and `cancel` take the campaign directory
`submit` prints.")]
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
    /// Submit the capacity search of each service with `capacity_search` (one job per service
    /// running `factorybench capacity` in the service's lifecycle) instead of its run job.
    #[arg(long)]
    pub capacity: bool,
    /// Partition of the report job (default: that of the first service on a CPU partition
    /// that asks for no GPU, else the cluster's default partition).
    #[arg(long, value_name = "PARTITION")]
    pub report_partition: Option<String>,
    /// Time limit of the report job (SLURM time, e.g. `10` minutes or `00:10:00`).
    #[arg(long, value_name = "TIME", default_value = crate::slurm::submit::REPORT_TIME)]
    pub report_time: String,
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

pub fn submit(a: &SubmitArgs) -> anyhow::Result<i32> {
    // Warnings are printed below: the ones that stop the submission as errors.
    // A service this binary cannot run refuses a submission that holds it, with the runnable
    // services and the --service flag in the message.
    let loaded = crate::recipe::load_selected(&a.recipe, a.service.as_deref())?;
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
    if a.capacity
        && !plan
            .services
            .iter()
            .filter(|s| a.service.as_ref().map_or(true, |n| &s.name == n))
            .any(|s| s.capacity_search.is_some())
    {
        return Err(InvalidInput(format!(
            "--capacity: no {} of {} has `capacity_search` (docs/capacity.md)",
            match &a.service {
                Some(n) => format!("service `{n}`"),
                None => "service".to_string(),
            },
            a.recipe.display()
        ))
        .into());
    }
    // Warnings that mean the job could not start on the node (a Triton container without its
    // model repository): `validate` and `compile` print them; `submit` refuses the service.
    let stops = |d: &crate::recipe::Diagnostic| {
        d.stops_submit
            && match &a.service {
                None => true,
                Some(name) => plan
                    .services
                    .iter()
                    .position(|s| &s.name == name)
                    .is_some_and(|i| {
                        let p = format!("services[{i}]");
                        d.path == p || d.path.starts_with(&format!("{p}."))
                    }),
            }
    };
    for d in loaded.warnings.iter().filter(|d| !stops(d)) {
        eprint!(
            "{}",
            crate::recipe::diag::render(d, &plan.source_path, &loaded.source_text)
        );
    }
    let stopping: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|d| stops(d))
        .map(|d| {
            let mut e = d.clone();
            e.severity = crate::recipe::Severity::Error;
            crate::recipe::diag::render(&e, &plan.source_path, &loaded.source_text)
        })
        .collect();
    if !stopping.is_empty() {
        eprint!("{}", stopping.concat());
        return Err(InvalidInput(format!(
            "{}: {} service{} could not start on the node (see above); nothing was submitted",
            a.recipe.display(),
            stopping.len(),
            if stopping.len() == 1 { "" } else { "s" }
        ))
        .into());
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
    let req = SubmitRequest {
        service: a.service.clone(),
        dry_run: a.dry_run,
        sequential: a.sequential,
        no_report: a.no_report,
        capacity: a.capacity,
        report_partition: a.report_partition.clone(),
        report_time: Some(a.report_time.clone()),
    };
    let result = submit_jobs(&req, plan, &camp, &mut submitted, &mut ids);
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
        fb_bin: crate::slurm::factorybench_bin()?.display().to_string(),
    };
    match write_campaign(loaded, &crate::render::Renderer::new(), &spec) {
        Ok(_) => Ok(()),
        Err(e) if e.is_invalid_input() => Err(InvalidInput(e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- status

#[derive(Debug, Serialize)]
struct StatusReport {
    campaign: String,
    accounting: Option<String>,
    /// Whether slurmctld answered; when not, the job states are its last answer.
    controller: Controller,
    jobs: Vec<JobStatus>,
}

/// Whether a run recorded `running` belongs to a job SLURM says is over (its batch script
/// ended: finished, or completing): its runner is gone without finishing it, so it is `lost`.
fn is_lost(r: &RunSummary, job: JobState) -> bool {
    r.status == RunStatus::Running && (job.is_finished() || job == JobState::Completing)
}

fn clock_time(ns: i64) -> String {
    crate::report::analysis::rfc3339(ns)
        .get(11..19)
        .unwrap_or_default()
        .to_string()
}

/// The RUN cell: the latest run, or one entry per client node for a multi-node job.
fn run_cell(runs: &[RunSummary], now_ns: i64, job: JobState) -> String {
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

/// A finished `success` run shows `invalid` when its validity gates fail: the same analysis
/// as `report` (one pass over the run's rows), for finished runs only.
fn judge_finished_runs(jobs: &mut [JobStatus]) {
    for r in jobs.iter_mut().flat_map(|j| j.runs.iter_mut()) {
        if r.status != RunStatus::Success {
            continue;
        }
        let Some(file) = r.file.as_deref() else {
            continue;
        };
        r.valid = crate::store::read::open_read_only(file)
            .ok()
            .and_then(|c| crate::report::analysis::analyze_run(&c, &r.run_id).ok())
            .map(|a| a.valid);
    }
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
    let mut st = collect_status(&camp)?;
    judge_finished_runs(&mut st.jobs);
    let (rows, note, controller) = (st.jobs, st.accounting, st.controller);
    if a.json {
        let rep = StatusReport {
            campaign: camp.dir.display().to_string(),
            accounting: note,
            controller,
            jobs: rows,
        };
        crate::outln!("{}", serde_json::to_string_pretty(&rep)?)?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "campaign: {}", display_path(&camp.dir))?;
    let stale = match &controller {
        Controller::Answered => false,
        Controller::NotAnswering {
            why,
            last_answer_ns,
            ..
        } => {
            let last = match last_answer_ns {
                Some(t) => format!(
                    "STALE: states marked `?` are its last answer, at {} ({} ago)",
                    crate::report::analysis::rfc3339(*t),
                    slurm::format_hms(((now_ns() - t).max(0) / 1_000_000_000) as u64)
                ),
                None => "no earlier answer is known: only the run files are shown".into(),
            };
            writeln!(out, "controller: NOT ANSWERING ({why}); {last}")?;
            true
        }
    };
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
                run_cell(&r.runs, now, r.state)
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
            let on = run
                .node
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default();
            if let Some(m) = &run.failure_message {
                writeln!(out, "{} {}{on}: {}", r.service, r.job_id, m)?;
            }
            if is_lost(run, r.state) {
                writeln!(
                    out,
                    "{} {}{on}: LOST: the job is {} but this runner never finished its run; {} requests kept{}",
                    r.service,
                    r.job_id,
                    r.state,
                    run.requests,
                    run.last_sent_ns
                        .map(|t| format!(", the last sent at {}", crate::report::analysis::rfc3339(t)))
                        .unwrap_or_default()
                )?;
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
    let mut tail = LogTail::default();
    let mut out = std::io::stdout().lock();
    let mut print_new = |out: &mut dyn Write| -> anyhow::Result<bool> {
        Ok(tail.print_new(&camp, a.service.as_deref(), out, &|f| display_path(f))?)
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
        crate::outln!(
            "nothing to cancel: none of the campaign's {} job(s) is queued or running",
            jobs.len()
        )?;
        return Ok(exit::OK);
    }
    slurm::scancel(&active)?;
    let names: Vec<String> = jobs
        .iter()
        .filter(|j| active.contains(&j.job_id))
        .map(|j| format!("{} ({})", j.job_id, j.service))
        .collect();
    crate::outln!("cancelled {} job(s): {}", active.len(), names.join(", "))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::campaign::JobRecord;
    use crate::slurm::status::job_rows;
    use crate::slurm::submit::submission_order;
    use crate::slurm::{AcctSource, ArrayTasks};

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

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
