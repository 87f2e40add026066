//! `submit`, `status`, `logs`, `cancel`: a campaign on a SLURM cluster.
//!
//! `submit` compiles the recipe into a fresh campaign directory (the layout `compile` writes),
//! submits one batch job per service with `sbatch --parsable` and records every job id in
//! `campaign.db`. Ordering is expressed with SLURM dependencies, never by polling:
//! `depends_on` → `afterok:<ids>`, `--sequential` → `afterany:<previous>`, and the report job
//! → `afterany:<every service job>`; every dependent job also gets `--kill-on-invalid-dep=yes`
//! so a failed parent cancels it instead of leaving it pending forever.

use crate::exit::{self, Failure};
use crate::slurm::campaign::{display_path, Campaign};
use crate::slurm::status::{
    cancel_campaign, collect_status, render_status, show_logs, StatusReport,
};
use crate::slurm::submit::{
    now_ns, render_submitted, submit_plan, PlanSubmission, SubmitRequest, SubmittedCampaign,
};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

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
    // A service this binary cannot run refuses a submission that holds it, with the runnable
    // services and the --service flag in the message. Warnings are printed by `submit_plan`.
    let loaded =
        crate::recipe::load_selected(&a.recipe, a.service.as_deref()).map_err(Failure::from)?;
    let sub = PlanSubmission {
        recipe: a.recipe.clone(),
        campaigns_dir: a.campaigns_dir.clone(),
        request: SubmitRequest {
            service: a.service.clone(),
            dry_run: a.dry_run,
            sequential: a.sequential,
            no_report: a.no_report,
            capacity: a.capacity,
            report_partition: a.report_partition.clone(),
            report_time: Some(a.report_time.clone()),
        },
    };
    let SubmittedCampaign {
        dir,
        jobs: submitted,
    } = submit_plan(&loaded, &sub)?;
    let text = render_submitted(&display_path(&dir), &submitted, a.dry_run);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}

// ---------------------------------------------------------------- status

pub fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    let camp = Campaign::open_or_newest(a.campaign.as_deref())?;
    let mut st = collect_status(&camp)?;
    crate::report::summary::judge_finished_runs(&mut st.jobs);
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
    let text = render_status(
        &display_path(&camp.dir),
        &rows,
        note.as_deref(),
        &controller,
        now_ns(),
    );
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}

// ---------------------------------------------------------------- logs

pub fn logs(a: &LogsArgs) -> anyhow::Result<i32> {
    let camp = Campaign::open(&a.campaign).map_err(|e| Failure::invalid_input(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    let printed = show_logs(&camp, a.service.as_deref(), a.follow, &mut out)?;
    if !a.follow && !printed {
        eprintln!("no log output yet (are the jobs still pending? see `factorybench status`)");
    }
    Ok(exit::OK)
}

// ---------------------------------------------------------------- cancel

pub fn cancel(a: &CancelArgs) -> anyhow::Result<i32> {
    let camp = Campaign::open(&a.campaign).map_err(|e| Failure::invalid_input(e.to_string()))?;
    let c = cancel_campaign(&camp)?;
    if c.cancelled.is_empty() {
        crate::outln!(
            "nothing to cancel: none of the campaign's {} job(s) is queued or running",
            c.jobs
        )?;
        return Ok(exit::OK);
    }
    let names: Vec<String> = c
        .cancelled
        .iter()
        .map(|(id, service)| format!("{id} ({service})"))
        .collect();
    crate::outln!(
        "cancelled {} job(s): {}",
        c.cancelled.len(),
        names.join(", ")
    )?;
    Ok(exit::OK)
}
