//! `run`: drive load against the recipe's services here (locally, or on a SLURM node), record
//! every request in the campaign file, print a summary computed from that file.

use super::InvalidInput;
use crate::exit;
use crate::recipe::Service;
use crate::runner::live::{LiveObserver, LiveSnapshot, Phase};
use crate::runner::session::{record_setup_failure, select_jobs, Session};
use crate::store::{RunStatus, Store};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

mod summary;
pub use summary::{summarize_run, RunSummary};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench run recipes/quickstart.yml
  factorybench run recipes/multi-service.yml --service local-files --json
  factorybench run recipe.yml --sequential --db results.db

Services run in parallel unless --sequential (or --max-workers N) says otherwise. A service
with a sweep runs each value in turn (or only --sweep-index N). Ctrl-C, SIGTERM or SIGUSR1
stop load generation, let requests in flight finish (at most min(timeout, 10 s)), commit and
exit 3 (partial); a second Ctrl-C exits at once, keeping every row committed so far.

Exit codes: 0 ok, 1 a run failed (setup, max_error_rate), 2 invalid input, 3 partial run,
5 a run finished but failed its validity gates (too few requests, target rate not reached,
error rate, generator saturated: see the summary), 6 the campaign file could not be written
(a full disk: the run stops at once; rows committed before stay readable).")]
pub struct RunArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Run services one after another instead of in parallel.
    #[arg(long)]
    pub sequential: bool,
    /// At most this many services at once.
    #[arg(long)]
    pub max_workers: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Campaign file (default: global.metrics_db of the recipe).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Run array task N of the service's sweep (batch scripts pass $SLURM_ARRAY_TASK_ID).
    #[arg(long)]
    pub sweep_index: Option<usize>,
    /// No progress bars, plain log lines (default when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Record a failed run (failure_stage setup) with this message and exit 1; used by batch
    /// scripts when the service never became ready.
    #[arg(long, hide = true, requires = "service")]
    pub fail_setup: Option<String>,
}

pub fn exec(a: &RunArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe)?;
    let plan = Arc::new(loaded.plan);
    let groups = select_jobs(&plan, &a.recipe, a.service.as_deref(), a.sweep_index)
        .map_err(|e| InvalidInput(e.0))?;
    if a.max_workers == Some(0) {
        return Err(InvalidInput("--max-workers must be at least 1".into()).into());
    }
    let db =
        a.db.clone()
            .unwrap_or_else(|| plan.global.metrics_db.clone());
    let store = Store::open(&db)?;

    if let Some(msg) = &a.fail_setup {
        let ids = record_setup_failure(&plan, &groups, &store, msg)?;
        store.close()?;
        eprintln!(
            "recorded failed run{} ({}) in {}: {msg}",
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", "),
            db.display()
        );
        return Ok(exit::FAILURE);
    }

    let show_bars = !a.no_progress && std::io::stderr().is_terminal();
    let multi = indicatif::MultiProgress::new();
    let max_parallel = if a.sequential {
        1
    } else {
        a.max_workers.unwrap_or(usize::MAX)
    };
    let session = Session {
        plan: plan.clone(),
        groups,
        max_parallel,
        observers: Some(Arc::new(move |svc: &Service| {
            observers_for(svc, show_bars, &multi)
        })),
        watch: Some(crate::monitor::session::watch_factory()),
    };
    let outcome = session.run(&store)?;
    if let Some(e) = &outcome.store_error {
        // The writer's error is the outcome's; closing reports it again.
        let _ = store.close();
        eprintln!(
            "error: the campaign file {} could not be written: {e}\n  the run stopped; rows committed before stay readable (the run is recorded as failed where the file allowed it)",
            db.display()
        );
        let conn = crate::store::read::open_read_only(&db)?;
        for f in &outcome.finished {
            if let Ok(s) = summarize_run(&conn, &f.run_id) {
                eprintln!("  run {}: {} requests committed", f.run_id, s.requests);
            }
        }
        return Ok(exit::STORE_FAILED);
    }
    store.close()?;
    let finished = outcome.finished;

    // The summary is read back from the campaign file: what is printed is what is stored.
    let conn = crate::store::read::open_read_only(&db)?;
    let mut summaries = Vec::new();
    for f in &finished {
        summaries.push(summarize_run(&conn, &f.run_id)?);
    }
    if a.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "campaign_file": db.display().to_string(),
                "runs": summaries,
            }))?
        )?;
    } else {
        crate::out!("{}", summary::render_table(&summaries))?;
        crate::outln!("campaign file: {}", db.display())?;
    }
    let code = if finished.iter().any(|f| f.status == RunStatus::Failed) {
        exit::FAILURE
    } else if finished.iter().any(|f| f.status == RunStatus::Partial)
        || outcome.stopped_by.is_some()
    {
        exit::PARTIAL
    } else if summaries.iter().any(|s| !s.valid) {
        exit::INVALID_RUN
    } else {
        exit::OK
    };
    Ok(code)
}

/// The live observers of one service's run: the progress display (the Pushgateway pusher is
/// added by the session through `monitor::session::RunMonitor`).
fn observers_for(
    svc: &Service,
    show_bars: bool,
    multi: &indicatif::MultiProgress,
) -> Vec<Arc<dyn LiveObserver>> {
    let mut v: Vec<Arc<dyn LiveObserver>> = Vec::new();
    if show_bars {
        let planned = (svc.load.warmup_s + svc.load.duration_s).max(1.0);
        let bar = multi.add(indicatif::ProgressBar::new((planned * 10.0) as u64));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {elapsed_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(svc.name.clone());
        v.push(Arc::new(BarObserver { bar }));
    } else {
        v.push(Arc::new(LineObserver {
            last: std::sync::Mutex::new(-1.0),
        }));
    }
    v
}

fn describe(s: &LiveSnapshot) -> String {
    let p99 = s
        .latency
        .map(|l| format!("{:.2} ms", l.p99_ms))
        .unwrap_or_else(|| "-".into());
    let target = s
        .target_rate_total_per_s
        .map(|t| format!("/{t:.0}"))
        .unwrap_or_default();
    format!(
        "{:?} {} req, {:.0}{} req/s, p99 {}, errors {}, in flight {}",
        s.phase, s.requests_total, s.achieved_rps, target, p99, s.errors_total, s.in_flight
    )
}

struct BarObserver {
    bar: indicatif::ProgressBar,
}

impl LiveObserver for BarObserver {
    fn tick(&self, s: &LiveSnapshot) {
        self.bar.set_position((s.elapsed_s * 10.0) as u64);
        self.bar.set_message(describe(s));
        if s.phase == Phase::Done {
            self.bar.finish();
        }
    }
}

struct LineObserver {
    last: std::sync::Mutex<f64>,
}

impl LiveObserver for LineObserver {
    fn tick(&self, s: &LiveSnapshot) {
        let mut last = self.last.lock().expect("lock");
        if s.phase == Phase::Done || *last < 0.0 || s.elapsed_s - *last >= 5.0 {
            *last = s.elapsed_s;
            eprintln!(
                "[{}] {:.0}/{:.0} s: {}",
                s.service,
                s.elapsed_s,
                s.planned_s,
                describe(s)
            );
        }
    }
}
