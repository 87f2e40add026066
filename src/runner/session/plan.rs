//! Running a whole plan here, as `factorybench run` does, without the command line: select the
//! jobs, start the services whose recipe names their runtime (their batch script's lifecycle,
//! [`crate::runner::lifecycle`]), place the run file ([`crate::runner::placement`]), drive the
//! other jobs through a [`Session`], and reconcile the runs the campaign file holds afterwards.
//! What is printed (the summary, the next steps) is the caller's; the exit-code policy is
//! [`PlanRun::exit_code`].

use super::{record_setup_failure, select_jobs, Finished, Session, SessionOutcome};
use super::{ObserverFactory, WatchFactory};
use crate::exit::{self, Failure};
use crate::recipe::{ClientShare, Loaded};
use crate::runner::lifecycle::{self, starts_service, LifecycleJobs, LifecycleRun, Lifecycles};
use crate::runner::placement::Placement;
use crate::runner::provenance::GpuFacts;
use crate::store::{RunStatus, Store};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to run (the options of `factorybench run`, without clap).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The recipe file (named in messages).
    pub recipe: PathBuf,
    /// Only this service.
    pub service: Option<String>,
    /// Services one after another.
    pub sequential: bool,
    /// At most this many services at once (at least 1).
    pub max_workers: Option<usize>,
    /// The campaign file (default: `global.metrics_db` of the recipe).
    pub db: Option<PathBuf>,
    /// Only this task of the service's sweep.
    pub sweep_index: Option<usize>,
    /// Record a failed run (failure_stage setup) with this message instead of running.
    pub fail_setup: Option<String>,
    /// With `fail_setup`: a file whose last lines say why (secrets redacted).
    pub fail_detail: Option<PathBuf>,
    /// Only this client node's share of the clients.
    pub client_share: Option<ClientShare>,
    /// Reach a loopback-bound service at this address instead.
    pub endpoint_host: Option<String>,
    /// Start the measured window at this instant (Unix epoch, ns).
    pub measure_from_ns: Option<i64>,
    /// Start every service that has an image or start command.
    pub start: bool,
    /// Never start a service.
    pub no_start: bool,
    /// The file the batch script writes when its service exits during the run.
    pub service_exit_file: Option<PathBuf>,
}

/// What a run plugs in from higher layers (all optional: a library caller may run bare).
#[derive(Default)]
pub struct RunHooks {
    /// Progress output of each run.
    pub observers: Option<ObserverFactory>,
    /// Live monitoring of each run (`monitor::session::watch_factory`).
    pub watch: Option<WatchFactory>,
    /// GPU facts for the provenance (`monitor::nvml::gpu_facts`).
    pub gpu_facts: Option<GpuFacts>,
    /// Progress bars to print log lines around while the session runs.
    pub progress: Option<indicatif::MultiProgress>,
}

/// How a plan run ended.
#[derive(Debug)]
pub enum PlanRun {
    /// `fail_setup`: the failed runs recorded.
    SetupFailureRecorded(SetupFailure),
    /// The campaign file could not be written: the run stopped.
    StoreFailed(StoreFailure),
    /// The runs ended (each recorded in the campaign file).
    Done(Box<PlanDone>),
}

/// The failed runs `fail_setup` recorded.
#[derive(Debug)]
pub struct SetupFailure {
    pub db: PathBuf,
    /// The failure message (with the detail lines, joined).
    pub message: String,
    /// The last lines of the detail file (secrets redacted).
    pub detail: Option<Vec<String>>,
    pub run_ids: Vec<String>,
}

impl SetupFailure {
    /// What `run --fail-setup` prints.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(d) = &self.detail {
            s += &format!(
                "its own words (last lines, secrets redacted):\n{}\n",
                d.join("\n")
            );
        }
        s + &format!(
            "recorded failed run{} ({}) in {}: {}\n",
            if self.run_ids.len() == 1 { "" } else { "s" },
            self.run_ids.join(", "),
            self.db.display(),
            self.message
        )
    }
}

/// The campaign file's write error that stopped a run.
#[derive(Debug)]
pub struct StoreFailure {
    pub db: PathBuf,
    pub error: String,
    /// The runs the session had (their committed rows stay readable).
    pub finished: Vec<Finished>,
}

impl StoreFailure {
    /// The error as `run` prints it.
    pub fn text(&self) -> String {
        format!(
            "error: the campaign file {} could not be written: {}\n  the run stopped; rows committed before stay readable (the run is recorded as failed where the file allowed it)\n",
            self.db.display(),
            self.error
        )
    }
}

/// The runs of a plan that ended.
#[derive(Debug)]
pub struct PlanDone {
    pub db: PathBuf,
    /// Every run this invocation added (the lifecycles' first), in order.
    pub finished: Vec<Finished>,
    /// Lifecycles that ended without recording a run.
    pub lifecycle_failures: Vec<LifecycleRun>,
    /// The campaign directory the lifecycles ran from.
    pub lifecycle_dir: Option<PathBuf>,
    /// A signal stopped the lifecycles or the session.
    pub stopped: bool,
    /// Where reports go (`global.reports_dir` beside the campaign file).
    pub reports_dir: PathBuf,
    /// The run's time stamp (names of the log and of the suggested report).
    pub stamp: String,
    /// This run's log file, when it writes one.
    pub log_path: Option<PathBuf>,
}

impl PlanDone {
    /// The exit code: 1 when a run failed, 3 when one was stopped, 5 when one is invalid
    /// (`any_invalid`: the report's validity gates), else 0.
    pub fn exit_code(&self, any_invalid: bool) -> i32 {
        if !self.lifecycle_failures.is_empty()
            || self.finished.iter().any(|f| f.status == RunStatus::Failed)
        {
            exit::FAILURE
        } else if self.stopped || self.finished.iter().any(|f| f.status == RunStatus::Partial) {
            exit::PARTIAL
        } else if any_invalid {
            exit::INVALID_RUN
        } else {
            exit::OK
        }
    }
}

impl PlanDone {
    /// The lines that say which lifecycle recorded no run, and where the services were
    /// started from (empty without lifecycles).
    pub fn lifecycle_notes(&self) -> String {
        let mut s = String::new();
        for r in &self.lifecycle_failures {
            s += &format!(
                "error: the lifecycle of service {}{} ended with {} and recorded no run (its output above; the script's standard output is in {})\n",
                r.service,
                r.sweep_index.map(|i| format!(" (sweep task {i})")).unwrap_or_default(),
                match r.exit_code {
                    Some(c) => format!("exit code {c}"),
                    None => "a signal".to_string(),
                },
                r.stdout_log.display()
            );
        }
        if let Some(dir) = &self.lifecycle_dir {
            s += &format!(
                "services were started from {} (scripts, secrets, service logs)\n",
                dir.display()
            );
        }
        s
    }

    /// Where the results are and what to run next (as `submit` prints), for the runs `ids`.
    pub fn next_steps(&self, campaign: &str, ids: &[&str]) -> String {
        let db = &self.db;
        let html = self.reports_dir.join(format!(
            "{}-{}.html",
            crate::slurm::campaign::slug(campaign),
            self.stamp
        ));
        let q = |p: &Path| crate::render::shell_quote(&p.display().to_string());
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
}

/// Run the plan of `loaded` as `opts` say, recording into its campaign file.
pub fn run_plan(loaded: &Loaded, opts: &RunOptions, hooks: RunHooks) -> anyhow::Result<PlanRun> {
    let plan = Arc::new(loaded.plan.clone());
    let mut groups = select_jobs(
        &plan,
        &opts.recipe,
        opts.service.as_deref(),
        opts.sweep_index,
    )
    .map_err(|e| Failure::invalid_input(e.0))?;
    let lifecycle_jobs = split_lifecycle_jobs(loaded, opts, &mut groups);
    if opts.client_share.is_some() || opts.endpoint_host.is_some() {
        for job in groups.iter_mut().flatten() {
            job.svc = job
                .svc
                .for_client_node(opts.client_share, opts.endpoint_host.as_deref());
        }
    }
    if let Some(at) = opts.measure_from_ns {
        for job in groups.iter_mut().flatten() {
            job.svc.load.measure_from_ns = Some(at);
        }
    }
    if opts.max_workers == Some(0) {
        return Err(Failure::invalid_input("--max-workers must be at least 1").into());
    }
    let db = opts
        .db
        .clone()
        .unwrap_or_else(|| plan.global.metrics_db.clone());
    // Runs the campaign file held before (the lifecycles' runs are the ones added after).
    let runs_before = earlier_runs(&db);
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
    let slug = crate::slurm::campaign::slug(&plan.benchmark.name);
    let log_path = (std::env::var_os("SLURM_JOB_ID").is_none() && opts.fail_setup.is_none())
        .then(|| logs_dir.join(format!("{slug}-{stamp}.log")));
    if let Some(p) = &log_path {
        match std::fs::create_dir_all(&logs_dir).and_then(|()| std::fs::File::create(p)) {
            Ok(f) => crate::out::set_log_file(Some(f)),
            Err(e) => tracing::warn!("cannot write the run log {}: {e}", p.display()),
        }
    }
    let lifecycles = if lifecycle_jobs.is_empty() {
        None
    } else {
        let dir = logs_dir.join(format!("{slug}-{stamp}-services"));
        Some(lifecycle::run_lifecycles(
            loaded,
            &lifecycle_jobs,
            &db,
            &dir,
        )?)
    };
    let lifecycle_stopped = lifecycles.as_ref().is_some_and(|l| l.stopped_by_signal);
    if lifecycle_stopped {
        groups.clear();
    }
    // On a network filesystem the run file is written node-local and published into place.
    let mut placement = Placement::new(&db)?;
    let store = Store::open(placement.write_path())?;

    if let Some(msg) = &opts.fail_setup {
        let detail = opts
            .fail_detail
            .as_deref()
            .and_then(|f| failure_detail(f, &loaded.source_text));
        let message = match &detail {
            Some(d) => format!("{msg}: {}", d.join(" | ")),
            None => msg.clone(),
        };
        let run_ids = record_setup_failure(&plan, &groups, &store, &message)?;
        store.close()?;
        placement.finish()?;
        return Ok(PlanRun::SetupFailureRecorded(SetupFailure {
            db,
            message,
            detail,
            run_ids,
        }));
    }

    let earlier = runs_before.len();
    if earlier > 0 {
        tracing::warn!(
            "{} already holds {earlier} run{} from an earlier invocation: this run is added as a separate measurement (reports list each measurement on its own, `compare` uses the latest); pass --db NEW.db to keep them in separate files",
            db.display(),
            if earlier == 1 { "" } else { "s" }
        );
    }
    let outcome = run_session(plan, groups, opts, hooks, &store);
    crate::out::set_progress(None);
    let outcome = outcome?;
    if let Some(error) = outcome.store_error {
        // The writer's error is the outcome's; closing reports it again.
        let _ = store.close();
        let _ = placement.finish();
        return Ok(PlanRun::StoreFailed(StoreFailure {
            db,
            error,
            finished: outcome.finished,
        }));
    }
    store.close()?;
    placement.finish()?;
    let mut done = PlanDone {
        db,
        finished: outcome.finished,
        lifecycle_failures: Vec::new(),
        lifecycle_dir: None,
        stopped: outcome.stopped_by.is_some() || lifecycle_stopped,
        reports_dir,
        stamp,
        log_path,
    };
    if let Some(l) = lifecycles {
        reconcile_lifecycles(&mut done, l, &runs_before)?;
    }
    Ok(PlanRun::Done(Box::new(done)))
}

/// Take out of `groups` the services this run starts itself (their batch script's lifecycle),
/// in recipe order.
fn split_lifecycle_jobs(
    loaded: &Loaded,
    opts: &RunOptions,
    groups: &mut Vec<Vec<super::Job>>,
) -> LifecycleJobs {
    let mut lifecycle_jobs: LifecycleJobs = Vec::new();
    if opts.fail_setup.is_some() || opts.client_share.is_some() || opts.endpoint_host.is_some() {
        return lifecycle_jobs;
    }
    groups.retain(|group| {
        let Some(first) = group.first() else {
            return true;
        };
        let Some(svc) = loaded.plan.service(&first.svc.name) else {
            return true;
        };
        if !starts_service(svc, opts.start, opts.no_start) {
            return true;
        }
        let indices = svc.sweep.as_ref().map(|sw| match opts.sweep_index {
            Some(i) => vec![i],
            None => (0..sw.values.len()).collect(),
        });
        lifecycle_jobs.push((svc.name.clone(), indices));
        false
    });
    lifecycle_jobs
}

/// Drive the jobs left after the lifecycles through a [`Session`].
fn run_session(
    plan: Arc<crate::recipe::Plan>,
    groups: Vec<Vec<super::Job>>,
    opts: &RunOptions,
    hooks: RunHooks,
    store: &Store,
) -> anyhow::Result<SessionOutcome> {
    if let Some(multi) = hooks.progress {
        // Log lines (setup warnings, the pusher) are printed around the bars, never under them.
        crate::out::set_progress(Some(multi));
    }
    let max_parallel = if opts.sequential {
        1
    } else {
        opts.max_workers.unwrap_or(usize::MAX)
    };
    let session = Session {
        plan,
        groups,
        max_parallel,
        observers: hooks.observers,
        watch: hooks.watch,
        gpu_facts: hooks.gpu_facts,
        service_exit_file: opts.service_exit_file.clone(),
    };
    if session.groups.is_empty() {
        Ok(SessionOutcome::default())
    } else {
        session.run(store)
    }
}

/// Add the runs the lifecycles recorded (runs of the campaign file that are neither earlier
/// nor the session's) before the session's, and note each lifecycle that recorded none.
fn reconcile_lifecycles(
    done: &mut PlanDone,
    l: Lifecycles,
    runs_before: &HashSet<String>,
) -> anyhow::Result<()> {
    let conn = crate::store::read::open_read_only(&done.db)?;
    let theirs: Vec<crate::store::read::RunRow> = crate::store::read::list_runs(&conn)?
        .into_iter()
        .filter(|r| !runs_before.contains(&r.run_id))
        .filter(|r| !done.finished.iter().any(|f| f.run_id == r.run_id))
        .collect();
    for r in l.runs {
        let recorded = theirs.iter().any(|x| x.service == r.service);
        if !recorded && r.exit_code != Some(exit::OK) {
            done.lifecycle_failures.push(r);
        }
    }
    let mut mine: Vec<Finished> = theirs
        .into_iter()
        .map(|r| Finished {
            run_id: r.run_id,
            status: r.status,
        })
        .collect();
    mine.append(&mut done.finished);
    done.finished = mine;
    done.lifecycle_dir = Some(l.dir);
    Ok(())
}

/// The run ids the campaign file already holds (none when it does not exist or is not readable:
/// opening it for writing reports the real problem).
fn earlier_runs(db: &Path) -> HashSet<String> {
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
fn beside(db: &Path, dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    match db.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.join(dir),
        None => dir.to_path_buf(),
    }
}

/// The last lines of `file` (a runtime's stderr, a service's log) with every secret the job
/// knows masked: the recipe's own (secret keys, headers, URL credentials) and the values of
/// the secret-looking variables of this environment (generated passwords, `${VAR}` secrets).
fn failure_detail(file: &Path, recipe_text: &str) -> Option<Vec<String>> {
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
