//! `capacity`: find the highest sustainable rate of a service under its `capacity_search`
//! SLOs (runner::capacity drives it; every step is a recorded run), then print the answer.

use crate::exit;
use crate::exit::Failure;
use crate::report::capacity::read_searches;
use crate::report::model::{ReasonCode, RunAnalysis};
use crate::runner::capacity::{run_search, Limiter, StepDone, StepFigures, StepHooks};
use crate::store::Store;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

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
    let plan = Arc::new(loaded.plan);
    let with: Vec<&crate::recipe::Service> = plan
        .services
        .iter()
        .filter(|s| s.capacity_search.is_some())
        .collect();
    let svc = match &a.service {
        Some(name) => match plan.service(name) {
            Some(s) if s.capacity_search.is_some() => s.clone(),
            Some(_) => {
                return Err(Failure::invalid_input(format!(
                    "service `{name}` has no `capacity_search` in {}",
                    a.recipe.display()
                ))
                .into())
            }
            None => {
                return Err(Failure::invalid_input(format!(
                    "no service `{name}` in {}",
                    a.recipe.display()
                ))
                .into())
            }
        },
        None => match with.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(Failure::invalid_input(format!(
                    "no service of {} has `capacity_search`",
                    a.recipe.display()
                ))
                .into())
            }
            many => {
                return Err(Failure::invalid_input(format!(
                    "several services have `capacity_search` ({}): choose one with --service",
                    many.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into())
            }
        },
    };
    let db =
        a.db.clone()
            .unwrap_or_else(|| plan.global.metrics_db.clone());
    // On a network filesystem the run file is written node-local and published (see `run`).
    let mut placement = crate::runner::placement::Placement::new(&db)?;
    let store = Store::open(placement.write_path())?;
    let hooks = StepHooks {
        observers: None,
        watch: Some(crate::monitor::session::watch_factory()),
        gpu_facts: Some(crate::monitor::nvml::gpu_facts()),
        service_exit_file: a.service_exit_file.clone(),
    };
    let db_for_figures = placement.write_path().to_path_buf();
    let figures = move |run_id: &str| -> anyhow::Result<StepFigures> {
        let conn = crate::store::read::open_read_only(&db_for_figures)?;
        let r = crate::report::analysis::analyze_run(&conn, run_id)?;
        Ok(StepFigures {
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
    };
    let quiet = a.json;
    let mut on_step = |d: &StepDone| {
        if !quiet {
            let x = &d.row;
            eprintln!(
                "[{}] step {} {:<7} target {:>9.3}/s achieved {:>9.3}/s p99 {} ms{} → {}",
                svc.name,
                x.step,
                x.phase.as_str(),
                x.target_rate,
                d.figures.achieved_rate_per_s,
                d.figures
                    .latency_p99_ms
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "–".into()),
                d.figures
                    .ttft_p99_ms
                    .map(|v| format!(", TTFT p99 {v:.2} ms"))
                    .unwrap_or_default(),
                match &x.reason {
                    None => "holds SLOs".to_string(),
                    Some(r) => match r.strip_prefix(crate::runner::capacity::NOT_JUDGED) {
                        Some(why) => format!("not judged, load generator side ({why})"),
                        None => format!("fails ({r})"),
                    },
                }
            );
        }
    };
    let done = run_search(&plan, &svc, &store, &hooks, &figures, &mut on_step)?;
    store.close()?;
    placement.finish()?;
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

/// The generator side's limit of a step's run, from its validity gates (generator first: a
/// generator that fell behind also leaves connections idle).
fn generator_limit(r: &RunAnalysis) -> Option<(Limiter, String)> {
    [
        (ReasonCode::GeneratorSaturated, Limiter::Generator),
        (ReasonCode::ConnectionLimited, Limiter::Connections),
    ]
    .into_iter()
    .find_map(|(code, lim)| {
        let why = r.invalid_reasons.iter().find(|x| x.code == code)?;
        Some((lim, why.message.clone()))
    })
}
