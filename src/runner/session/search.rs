//! A capacity search as `factorybench capacity` runs it, without the command line: choose the
//! service, place the run file, drive [`crate::runner::capacity::run_search`] and print each
//! step's line to stderr.

use crate::exit::Failure;
use crate::recipe::Plan;
use crate::runner::capacity::{run_search, SearchDone, StepDone, StepFigures, StepHooks};
use crate::runner::placement::Placement;
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to search (the options of `factorybench capacity`).
#[derive(Debug, Clone, Default)]
pub struct CapacityOptions {
    /// The recipe file (named in messages).
    pub recipe: PathBuf,
    /// The service (default: the only one with `capacity_search`).
    pub service: Option<String>,
    /// The campaign file (default: `global.metrics_db`).
    pub db: Option<PathBuf>,
    /// No step lines on stderr.
    pub quiet: bool,
}

/// Run the capacity search the options choose; `figures` reads a finished step's figures from
/// the run file (`report::summary::step_figures`). Returns the campaign file and the search.
pub fn run_capacity(
    plan: Plan,
    a: &CapacityOptions,
    hooks: &StepHooks,
    figures: &dyn Fn(&Path, &str) -> anyhow::Result<StepFigures>,
) -> anyhow::Result<(PathBuf, SearchDone)> {
    let plan = Arc::new(plan);
    let svc = search_service(&plan, a)?;
    let db =
        a.db.clone()
            .unwrap_or_else(|| plan.global.metrics_db.clone());
    // On a network filesystem the run file is written node-local and published (see `run`).
    let mut placement = Placement::new(&db)?;
    let store = Store::open(placement.write_path())?;
    let write_path = placement.write_path().to_path_buf();
    let figures = |run_id: &str| figures(&write_path, run_id);
    let quiet = a.quiet;
    let mut on_step = |d: &StepDone| {
        if !quiet {
            eprintln!("{}", step_line(&svc.name, d));
        }
    };
    let done = run_search(&plan, &svc, &store, hooks, &figures, &mut on_step)?;
    store.close()?;
    placement.finish()?;
    Ok((db, done))
}

/// The service to search: the one named (it must have `capacity_search`), else the only one
/// with `capacity_search`.
fn search_service(plan: &Plan, a: &CapacityOptions) -> anyhow::Result<crate::recipe::Service> {
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
    Ok(svc)
}

/// One step's progress line.
fn step_line(service: &str, d: &StepDone) -> String {
    let x = &d.row;
    format!(
        "[{}] step {} {:<7} target {:>9.3}/s achieved {:>9.3}/s p99 {} ms{} → {}",
        service,
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
    )
}
