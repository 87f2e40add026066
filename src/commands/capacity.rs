//! `capacity`: find the highest sustainable rate of a service under its `capacity_search`
//! SLOs (runner::capacity drives it; every step is a recorded run), then print the answer.

use crate::exit;
use crate::report::capacity::read_searches;
use crate::runner::capacity::StepHooks;
use crate::runner::session::{run_capacity, CapacityOptions};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench capacity recipe.yml --service vllm --db capacity.db
  factorybench report capacity.db --format html --out capacity.html

The service's recipe needs `capacity_search` (docs/capacity.md): a coarse ramp from min_rate
(× ramp_factor per step) until a step breaks the SLOs, then bisect_steps bisections between the
last passing and the first failing rate, then repeats − 1 more runs at the answer for a
cross-run interval. Every step is an ordinary run in the campaign file (`report` shows the
searches with the throughput–latency curve, the knee and the SLO lines).

Exit codes: 0 a sustainable rate was found, 1 none (even min_rate broke the SLOs) or a run
could not be recorded, 2 invalid input, 3 stopped by a signal.")]
pub struct CapacityArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// The service to search (default: the only one with `capacity_search`).
    #[arg(long)]
    pub service: Option<String>,
    /// Campaign file (default: global.metrics_db of the recipe).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Print the search as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The file the batch script writes when the service it started exits (see `run`).
    #[arg(long, hide = true, value_name = "FILE")]
    pub service_exit_file: Option<PathBuf>,
}

pub fn exec(a: &CapacityArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe, a.service.as_deref())?;
    // The running count of failed pushes is kept beside the campaign file (`status`).
    let db_path =
        a.db.clone()
            .unwrap_or_else(|| loaded.plan.global.metrics_db.clone());
    let hooks = StepHooks {
        observers: None,
        watch: Some(crate::monitor::session::watch_factory(Some(db_path))),
        gpu_facts: Some(crate::monitor::nvml::gpu_facts()),
        service_exit_file: a.service_exit_file.clone(),
    };
    let opts = CapacityOptions {
        recipe: a.recipe.clone(),
        service: a.service.clone(),
        db: a.db.clone(),
        quiet: a.json,
    };
    let (db, done) = run_capacity(
        loaded.plan,
        &opts,
        &hooks,
        &crate::report::summary::step_figures,
    )?;
    let conn = crate::store::read::open_read_only(&db)?;
    let report = read_searches(&conn)?
        .into_iter()
        .find(|s| s.search_id == done.search_id)
        .ok_or_else(|| {
            anyhow::anyhow!("search {} not found in {}", done.search_id, db.display())
        })?;
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        crate::out!("{}", crate::report::capacity::to_text(&report))?;
        crate::outln!("campaign file: {}", db.display())?;
    }
    Ok(if done.stopped {
        exit::PARTIAL
    } else if report.limited_at_rate_per_s().is_some() {
        // No knee: the generator, not the service, set the limit (like an invalid run).
        exit::INVALID_RUN
    } else if report.sustainable_rate_per_s.is_some() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
