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

mod lifecycle;
pub mod placement;
mod summary;
use lifecycle::starts_service;
pub use summary::{summarize_run, RunSummary};

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

pub fn exec(a: &RunArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe, a.service.as_deref())?;
    let plan = Arc::new(loaded.plan.clone());
    let mut groups = select_jobs(&plan, &a.recipe, a.service.as_deref(), a.sweep_index)
        .map_err(|e| InvalidInput(e.0))?;
    // Services this run starts itself (their batch script's lifecycle), in recipe order.
    let mut lifecycle_jobs: lifecycle::LifecycleJobs = Vec::new();
    if a.fail_setup.is_none() && a.client_share.is_none() && a.endpoint_host.is_none() {
        groups.retain(|group| {
            let Some(first) = group.first() else {
                return true;
            };
            let Some(svc) = plan.service(&first.svc.name) else {
                return true;
            };
            if !starts_service(svc, a.start, a.no_start) {
                return true;
            }
            let indices = svc.sweep.as_ref().map(|sw| match a.sweep_index {
                Some(i) => vec![i],
                None => (0..sw.values.len()).collect(),
            });
            lifecycle_jobs.push((svc.name.clone(), indices));
            false
        });
    }
    if a.client_share.is_some() || a.endpoint_host.is_some() {
        for job in groups.iter_mut().flatten() {
            job.svc = job
                .svc
                .for_client_node(a.client_share, a.endpoint_host.as_deref());
        }
    }
    if let Some(at) = a.measure_from {
        for job in groups.iter_mut().flatten() {
            job.svc.load.measure_from_ns = Some(at);
        }
    }
    if a.max_workers == Some(0) {
        return Err(InvalidInput("--max-workers must be at least 1".into()).into());
    }
    let db =
        a.db.clone()
            .unwrap_or_else(|| plan.global.metrics_db.clone());
    // Runs the campaign file held before (the lifecycles' runs are the ones added after).
    let runs_before = earlier_runs(&db);
    let earlier_runs = runs_before.len();
    // Local runs keep their log in global.logs_dir (a SLURM job's output already goes to the
    // campaign's logs/). Relative reports_dir/logs_dir are taken next to the campaign file.
    let (reports_dir, logs_dir) = (
        beside(&db, &plan.global.reports_dir),
        beside(&db, &plan.global.logs_dir),
    );
    let stamp = crate::slurm::campaign::timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let log_path =
        (std::env::var_os("SLURM_JOB_ID").is_none() && a.fail_setup.is_none()).then(|| {
            logs_dir.join(format!(
                "{}-{stamp}.log",
                crate::slurm::campaign::slug(&plan.benchmark.name)
            ))
        });
    if let Some(p) = &log_path {
        match std::fs::create_dir_all(&logs_dir).and_then(|()| std::fs::File::create(p)) {
            Ok(f) => crate::out::set_log_file(Some(f)),
            Err(e) => tracing::warn!("cannot write the run log {}: {e}", p.display()),
        }
    }
    let lifecycles = if lifecycle_jobs.is_empty() {
        None
    } else {
        let dir = logs_dir.join(format!(
            "{}-{stamp}-services",
            crate::slurm::campaign::slug(&plan.benchmark.name)
        ));
        match lifecycle::run_lifecycles(&loaded, &lifecycle_jobs, &db, &dir) {
            Ok(l) => Some(l),
            Err(e) => {
                return match e.downcast::<crate::render::campaign::CampaignError>() {
                    Ok(c) if c.is_invalid_input() => Err(InvalidInput(c.to_string()).into()),
                    Ok(c) => Err(c.into()),
                    Err(e) => Err(e),
                }
            }
        }
    };
    let lifecycle_stopped = lifecycles.as_ref().is_some_and(|l| l.stopped_by_signal);
    if lifecycle_stopped {
        groups.clear();
    }
    // On a network filesystem the run file is written node-local and published into place.
    let mut placement = placement::Placement::new(&db)?;
    let store = Store::open(placement.write_path())?;

    if let Some(msg) = &a.fail_setup {
        let detail = a
            .fail_detail
            .as_deref()
            .and_then(|f| failure_detail(f, &loaded.source_text));
        let msg = match &detail {
            Some(d) => {
                eprintln!(
                    "its own words (last lines, secrets redacted):\n{}",
                    d.join("\n")
                );
                format!("{msg}: {}", d.join(" | "))
            }
            None => msg.clone(),
        };
        let msg = &msg;
        let ids = record_setup_failure(&plan, &groups, &store, msg)?;
        store.close()?;
        placement.finish()?;
        eprintln!(
            "recorded failed run{} ({}) in {}: {msg}",
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", "),
            db.display()
        );
        return Ok(exit::FAILURE);
    }

    if earlier_runs > 0 {
        tracing::warn!(
            "{} already holds {earlier_runs} run{} from an earlier invocation: this run is added as a separate measurement (reports list each measurement on its own, `compare` uses the latest); pass --db NEW.db to keep them in separate files",
            db.display(),
            if earlier_runs == 1 { "" } else { "s" }
        );
    }
    let show_bars = !a.no_progress && std::io::stderr().is_terminal();
    let multi = indicatif::MultiProgress::new();
    if show_bars {
        // Log lines (setup warnings, the pusher) are printed around the bars, never under them.
        crate::out::set_progress(Some(multi.clone()));
    }
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
        watch: Some(crate::monitor::session::watch_factory(Some(db.clone()))),
        gpu_facts: Some(crate::monitor::nvml::gpu_facts()),
        service_exit_file: a.service_exit_file.clone(),
    };
    let outcome = if session.groups.is_empty() {
        Ok(crate::runner::session::SessionOutcome::default())
    } else {
        session.run(&store)
    };
    crate::out::set_progress(None);
    let outcome = outcome?;
    if let Some(e) = &outcome.store_error {
        // The writer's error is the outcome's; closing reports it again.
        let _ = store.close();
        let _ = placement.finish();
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
    placement.finish()?;
    let mut finished = outcome.finished;

    // The summary is read back from the campaign file: what is printed is what is stored.
    let conn = crate::store::read::open_read_only(&db)?;
    let mut lifecycle_failed = false;
    if let Some(l) = &lifecycles {
        let theirs: Vec<crate::store::read::RunRow> = crate::store::read::list_runs(&conn)?
            .into_iter()
            .filter(|r| !runs_before.contains(&r.run_id))
            .filter(|r| !finished.iter().any(|f| f.run_id == r.run_id))
            .collect();
        for r in &l.runs {
            let recorded = theirs.iter().any(|x| x.service == r.service);
            if !recorded && r.exit_code != Some(exit::OK) {
                lifecycle_failed = true;
                eprintln!(
                    "error: the lifecycle of service {}{} ended with {} and recorded no run (its output above; the script's standard output is in {})",
                    r.service,
                    r.sweep_index.map(|i| format!(" (sweep task {i})")).unwrap_or_default(),
                    match r.exit_code {
                        Some(c) => format!("exit code {c}"),
                        None => "a signal".to_string(),
                    },
                    r.stdout_log.display()
                );
            }
        }
        let mut mine: Vec<crate::runner::session::Finished> = theirs
            .into_iter()
            .map(|r| crate::runner::session::Finished {
                run_id: r.run_id,
                status: r.status,
            })
            .collect();
        mine.append(&mut finished);
        finished = mine;
        eprintln!(
            "services were started from {} (scripts, secrets, service logs)",
            l.dir.display()
        );
    }
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
        let table = summary::render_table(&summaries);
        crate::out::append_log_file(&table);
        crate::out!("{table}")?;
        let mut systems: Vec<&str> = summaries.iter().map(|s| s.system.as_str()).collect();
        systems.dedup();
        for s in systems.into_iter().filter(|s| !s.is_empty()) {
            crate::out!("system: {s}\n")?;
        }
        crate::out!(
            "{}",
            next_steps(&db, &plan.benchmark.name, &reports_dir, &stamp, &summaries)
        )?;
        if let Some(p) = &log_path {
            crate::out!("log: {}\n", p.display())?;
        }
    }
    crate::out::set_log_file(None);
    let code = if lifecycle_failed || finished.iter().any(|f| f.status == RunStatus::Failed) {
        exit::FAILURE
    } else if finished.iter().any(|f| f.status == RunStatus::Partial)
        || outcome.stopped_by.is_some()
        || lifecycle_stopped
    {
        exit::PARTIAL
    } else if summaries.iter().any(|s| !s.valid) {
        exit::INVALID_RUN
    } else {
        exit::OK
    };
    Ok(code)
}

/// The run ids the campaign file already holds (none when it does not exist or is not readable:
/// opening it for writing reports the real problem).
fn earlier_runs(db: &std::path::Path) -> std::collections::HashSet<String> {
    if !db.is_file() {
        return Default::default();
    }
    crate::store::read::open_read_only(db)
        .ok()
        .filter(|c| crate::store::read::has_table(c, "runs"))
        .and_then(|c| crate::store::read::run_ids(&c).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// `dir` as is when absolute, else in the campaign file's directory.
fn beside(db: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    match db.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.join(dir),
        None => dir.to_path_buf(),
    }
}

/// Where the results are and what to run next (as `submit` prints).
fn next_steps(
    db: &std::path::Path,
    campaign: &str,
    reports_dir: &std::path::Path,
    stamp: &str,
    runs: &[RunSummary],
) -> String {
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    let html = reports_dir.join(format!(
        "{}-{stamp}.html",
        crate::slurm::campaign::slug(campaign),
    ));
    let q = |p: &std::path::Path| crate::render::shell_quote(&p.display().to_string());
    format!(
        "results: {} (run{} {})\nnext:\n  factorybench report {}\n  factorybench report {} --format html --out {}\n  factorybench compare BASELINE.db {}\n",
        db.display(),
        if ids.len() == 1 { "" } else { "s" },
        ids.join(", "),
        q(db),
        q(db),
        q(&html),
        q(db),
    )
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

/// The last lines of `file` (a runtime's stderr, a service's log) with every secret the job
/// knows masked: the recipe's own (secret keys, headers, URL credentials) and the values of
/// the secret-looking variables of this environment (generated passwords, `${VAR}` secrets).
fn failure_detail(file: &std::path::Path, recipe_text: &str) -> Option<Vec<String>> {
    const LINES: usize = 8;
    const LINE_CHARS: usize = 300;
    let bytes = std::fs::read(file).ok()?;
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(64 << 10)..]).into_owned();
    let mut secrets: Vec<String> = crate::recipe::yaml::parse(recipe_text)
        .map(|root| crate::recipe::redact::recipe_secrets(&root))
        .unwrap_or_default();
    secrets.extend(
        std::env::vars()
            .filter(|(k, v)| crate::recipe::decode::looks_secret(k) && v.len() >= 4)
            .map(|(_, v)| v),
    );
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = crate::recipe::redact::text(l, &secrets);
            match l.char_indices().nth(LINE_CHARS) {
                Some((i, _)) => format!("{}...", &l[..i]),
                None => l,
            }
        })
        .collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].to_vec();
    (!tail.is_empty()).then_some(tail)
}
