//! `run`: drive load against the recipe's services here (locally, or on a SLURM node), record
//! every request in the campaign file, print a summary computed from that file.

use crate::exit;
use crate::report::summary::{committed_requests, render_table, summarize_run};
use crate::runner::session::{run_plan, PlanDone, PlanRun, RunHooks, RunOptions};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench run recipes/quickstart.yml
  factorybench run recipes/multi-service.yml --service local-files --json
  factorybench run recipe.yml --sequential --db results.db
  factorybench run recipes/podman-postgres.yml          # starts the container, then benchmarks it

A service whose recipe names its runtime (`runtime: podman | apptainer | host`) is started by
`run` itself with the same lifecycle as its SLURM batch script (start, readiness, the run, stop
on every exit path), and stopped afterwards; --no-start benchmarks it where it already runs,
--start also starts services whose runtime is only implied by `container_image`.

Services run in parallel unless --sequential (or --max-workers N) says otherwise. A service
with a sweep runs each value in turn (or only --sweep-index N). Ctrl-C, SIGTERM or SIGUSR1
stop load generation, let requests in flight finish (at most min(timeout, 10 s)), commit and
exit 3 (partial); a second Ctrl-C exits at once, keeping every row committed so far.

Exit codes: 0 ok, 1 a run failed (setup, max_error_rate), 2 invalid input, 3 partial run,
5 a run finished but failed its validity gates (too few requests, target rate not reached,
error rate, generator saturated: see the summary), 7 the campaign file could not be written
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
    /// With --fail-setup: a file whose last lines say why (the container runtime's stderr, the
    /// service's log); added to the failure message and printed, secrets redacted.
    #[arg(long, hide = true, requires = "fail_setup", value_name = "FILE")]
    pub fail_detail: Option<PathBuf>,
    /// Run only this client node's share of the clients and of a `requests` budget: INDEX/COUNT
    /// (0-based; set by the batch script of a multi-node job, from srun's task id).
    #[arg(long, value_name = "I/N", value_parser = crate::recipe::ClientShare::parse)]
    pub client_share: Option<crate::recipe::ClientShare>,
    /// Reach a service that binds loopback by default at this address instead (the service
    /// node's address, for clients on other nodes).
    #[arg(long, value_name = "ADDR")]
    pub endpoint_host: Option<String>,
    /// Start the measured window at this instant (Unix epoch, ns) instead of `warmup` after
    /// the first request; the warmup lasts until then. The batch step of a multi-node job hands
    /// every client node the same instant, so that the nodes measure together.
    #[arg(long, value_name = "EPOCH_NS", hide = true)]
    pub measure_from: Option<i64>,
    /// Start every service that has a container image or start command (also when the recipe
    /// does not name the runtime), with its batch script's lifecycle.
    #[arg(long, conflicts_with = "no_start")]
    pub start: bool,
    /// Never start a service: benchmark it where it already runs (batch scripts pass this: the
    /// service is theirs to start).
    #[arg(long)]
    pub no_start: bool,
    /// The file the batch script writes when the service it started exits during the run:
    /// the run then stops and ends failed with the file's line (batch scripts pass this).
    #[arg(long, hide = true, value_name = "FILE")]
    pub service_exit_file: Option<PathBuf>,
}

impl RunArgs {
    /// The library's options for these arguments.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            recipe: self.recipe.clone(),
            service: self.service.clone(),
            sequential: self.sequential,
            max_workers: self.max_workers,
            db: self.db.clone(),
            sweep_index: self.sweep_index,
            fail_setup: self.fail_setup.clone(),
            fail_detail: self.fail_detail.clone(),
            client_share: self.client_share,
            endpoint_host: self.endpoint_host.clone(),
            measure_from_ns: self.measure_from,
            start: self.start,
            no_start: self.no_start,
            service_exit_file: self.service_exit_file.clone(),
        }
    }
}

pub fn exec(a: &RunArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe, a.service.as_deref())?;
    let show_bars = !a.no_progress && std::io::stderr().is_terminal();
    let multi = indicatif::MultiProgress::new();
    let hooks = RunHooks {
        observers: Some(crate::runner::progress::observer_factory(
            show_bars,
            multi.clone(),
        )),
        // The running count of failed pushes is kept beside the campaign file (`status`).
        watch: Some(crate::monitor::session::watch_factory(Some(
            a.db.clone()
                .unwrap_or_else(|| loaded.plan.global.metrics_db.clone()),
        ))),
        gpu_facts: Some(crate::monitor::nvml::gpu_facts()),
        progress: show_bars.then_some(multi),
    };
    match run_plan(&loaded, &a.options(), hooks)? {
        PlanRun::SetupFailureRecorded(f) => {
            eprint!("{}", f.text());
            Ok(exit::FAILURE)
        }
        PlanRun::StoreFailed(f) => {
            eprint!("{}", f.text());
            let ids: Vec<&str> = f.finished.iter().map(|r| r.run_id.as_str()).collect();
            eprint!("{}", committed_requests(&f.db, &ids)?);
            Ok(exit::STORE_FAILED)
        }
        PlanRun::Done(done) => print_done(a, &loaded.plan.benchmark.name, &done),
    }
}

/// The summary of the runs (read back from the campaign file: what is printed is what is
/// stored), and the exit code.
fn print_done(a: &RunArgs, campaign: &str, done: &PlanDone) -> anyhow::Result<i32> {
    let conn = crate::store::read::open_read_only(&done.db)?;
    eprint!("{}", done.lifecycle_notes());
    let mut summaries = (done.finished.iter())
        .map(|f| summarize_run(&conn, &f.run_id))
        .collect::<Result<Vec<_>, _>>()?;
    let generator = crate::report::summary::generator_lines(&mut summaries);
    if a.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "campaign_file": done.db.display().to_string(),
                "runs": summaries,
            }))?
        )?;
    } else {
        let table = render_table(&summaries);
        crate::out::append_log_file(&table);
        crate::out!("{table}")?;
        crate::out!("{}", crate::report::summary::system_lines(&summaries))?;
        crate::out!("{generator}")?;
        let ids: Vec<&str> = summaries.iter().map(|r| r.run_id.as_str()).collect();
        crate::out!("{}", done.next_steps(campaign, &ids))?;
        if let Some(p) = &done.log_path {
            crate::out!("log: {}\n", p.display())?;
        }
    }
    crate::out::set_log_file(None);
    Ok(done.exit_code(summaries.iter().any(|s| !s.valid)))
}
