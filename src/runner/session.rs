//! A run session: the lifecycle of `factorybench run` without the command line. Select the
//! jobs of a plan ([`select_jobs`]), then [`Session::run`] drives each one through
//! setup → engine → teardown against a campaign file, with signal handling (a first SIGINT /
//! SIGTERM / SIGUSR1 drains, a second exits) and pluggable live observers and run monitors
//! (the command plugs in progress output and `monitor::session::RunMonitor`). [`run_plan`] runs
//! a whole plan as `factorybench run` does (local lifecycles, run file placement, reconciliation).

use super::client::{BoxFuture, RunMetric};
use super::clients::make_client;
use super::clock::Clock;
use super::cpu::process_cpu_s;
use super::engine::{self, EngineConfig, StopFlag};
use super::live::LiveObserver;
use crate::exit;
use crate::recipe::{Plan, Service, SweepParam};
use crate::store::{
    FailureStage, FinishRun, NewRun, RunStatus, StopReason, StopSignal, Store, StoreHandle,
};
use std::path::Path;
use std::sync::Arc;

mod gate;
mod plan;
mod search;
pub use plan::{run_plan, PlanDone, PlanRun, RunHooks, RunOptions, SetupFailure, StoreFailure};
pub use search::{run_capacity, CapacityOptions};

/// A job selection that does not fit the plan (unknown service, sweep index out of range).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectError(pub String);

/// One unit of work: a service, resolved for one sweep value (if any).
pub struct Job {
    pub svc: Service,
    pub sweep: Option<(SweepParam, String)>,
}

pub fn select_jobs(
    plan: &Plan,
    recipe: &Path,
    service: Option<&str>,
    sweep_index: Option<usize>,
) -> Result<Vec<Vec<Job>>, SelectError> {
    let services: Vec<&Service> = match service {
        Some(name) => match plan.service(name) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
                return Err(SelectError(format!(
                    "no service `{name}` in {} (services: {})",
                    recipe.display(),
                    names.join(", ")
                )));
            }
        },
        None => plan.services.iter().collect(),
    };
    let mut groups = Vec::new();
    for s in services {
        let mut jobs = Vec::new();
        match (&s.sweep, sweep_index) {
            (None, None) => jobs.push(Job {
                svc: s.clone(),
                sweep: None,
            }),
            (None, Some(_)) if service.is_some() => {
                return Err(SelectError(format!(
                    "--sweep-index given but service `{}` has no sweep",
                    s.name
                )))
            }
            (None, Some(_)) => jobs.push(Job {
                svc: s.clone(),
                sweep: None,
            }),
            (Some(sw), Some(i)) => {
                let svc = s.with_sweep_index(i).ok_or_else(|| {
                    SelectError(format!(
                        "--sweep-index {i} is out of range for service `{}` ({} sweep values)",
                        s.name,
                        sw.values.len()
                    ))
                })?;
                jobs.push(Job {
                    svc,
                    sweep: Some((sw.param, sw.values[i].clone())),
                });
            }
            (Some(sw), None) => {
                for (i, v) in sw.values.iter().enumerate() {
                    let svc = s.with_sweep_index(i).ok_or_else(|| {
                        SelectError(format!(
                            "sweep value `{v}` does not apply to service `{}`",
                            s.name
                        ))
                    })?;
                    jobs.push(Job {
                        svc,
                        sweep: Some((sw.param, v.clone())),
                    });
                }
            }
        }
        groups.push(jobs);
    }
    Ok(groups)
}

/// Result of one run, before the summary is read back from the database.
#[derive(Debug, Clone)]
pub struct Finished {
    pub run_id: String,
    pub status: RunStatus,
}

/// A monitor attached to one run (node telemetry, live pushes): it observes the engine and,
/// at the end, returns figures to store with the run.
pub trait RunWatch: Send {
    fn observer(&self) -> Arc<dyn LiveObserver>;
    fn finish(self: Box<Self>, status: RunStatus) -> BoxFuture<'static, Vec<RunMetric>>;
}

/// Starts the [`RunWatch`] of a run (`plan`, the service, the run id, its clock, and the store
/// that receives its samples).
pub type WatchFactory =
    Arc<dyn Fn(&Plan, &Service, &Arc<str>, Clock, &StoreHandle) -> Box<dyn RunWatch> + Send + Sync>;

/// The live observers (progress output) of one service's run.
pub type ObserverFactory = Arc<dyn Fn(&Service) -> Vec<Arc<dyn LiveObserver>> + Send + Sync>;

/// What a session did.
#[derive(Debug, Default)]
pub struct SessionOutcome {
    pub finished: Vec<Finished>,
    /// The signal that stopped load generation, if any.
    pub stopped_by: Option<StopSignal>,
    /// The campaign file's first write error (a full disk), if any.
    pub store_error: Option<String>,
}

/// Runs the selected jobs of a plan.
pub struct Session {
    pub plan: Arc<Plan>,
    /// Groups run in parallel (up to `max_parallel`); the jobs of a group one after another.
    pub groups: Vec<Vec<Job>>,
    pub max_parallel: usize,
    pub observers: Option<ObserverFactory>,
    pub watch: Option<WatchFactory>,
    /// GPU facts for each run's provenance (NVML lives in `monitor`); `None`: no GPU facts.
    pub gpu_facts: Option<super::provenance::GpuFacts>,
    /// The file the batch script writes when the service it started exits during the run
    /// (its one line says how and when): polled every 250 ms; when it appears load stops and
    /// the run ends `failed` with that line, its rows kept.
    pub service_exit_file: Option<std::path::PathBuf>,
}

impl Session {
    /// Drive every job against `store` on a fresh Tokio runtime; flush the store at the end.
    pub fn run(self, store: &Store) -> anyhow::Result<SessionOutcome> {
        let handle = store.handle();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("fb-runner")
            .build()?;
        let stop = StopFlag::new();
        let max_par = self.max_parallel;
        let finished: Vec<Finished> = rt.block_on(async {
            install_signal_handlers(stop.clone())?;
            if let Some(f) = self.service_exit_file.clone() {
                stop.watch_silence();
                watch_service_exit(f, stop.clone());
            }
            let sem = Arc::new(tokio::sync::Semaphore::new(max_par.min(1 << 20)));
            // Services started together begin their load together ([`gate`]): only when every
            // group starts at once (a group that waits for a permit would hold the others).
            let groups = self.groups.len();
            let mut tickets = if groups <= max_par {
                gate::Gate::tickets(groups)
            } else {
                None
            };
            let mut tasks = Vec::new();
            for jobs in self.groups {
                let mut ticket = tickets.as_mut().and_then(Vec::pop);
                let sem = sem.clone();
                let plan = self.plan.clone();
                let handle = handle.clone();
                let stop = stop.clone();
                let observers = self.observers.clone();
                let watch = self.watch.clone();
                let gpu_facts = self.gpu_facts.clone();
                tasks.push(tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("semaphore open");
                    let ctx = JobContext {
                        plan: &plan,
                        store: handle,
                        stop: stop.clone(),
                        watch: watch.as_ref(),
                        gpu_facts: gpu_facts.as_ref(),
                    };
                    let mut out = Vec::new();
                    for job in jobs {
                        if stop.get().is_some() {
                            break;
                        }
                        let obs = observers.as_ref().map(|f| f(&job.svc)).unwrap_or_default();
                        out.push(run_job(&ctx, job, obs, ticket.take()).await);
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await?);
            }
            anyhow::Ok(all)
        })?;
        // A write error (a full disk) is the outcome's, not a reason to lose the summary of
        // what was committed before it.
        let store_error = handle
            .flush_sync()
            .err()
            .map(|e| e.to_string())
            .or_else(|| handle.write_error().map(str::to_string));
        drop(handle);
        drop(rt);
        Ok(SessionOutcome {
            finished,
            stopped_by: stop.get(),
            store_error,
        })
    }
}

/// Record every selected job as a run that failed at setup with `message` (batch scripts do
/// this when the service never became ready); returns the run ids.
pub fn record_setup_failure(
    plan: &Plan,
    groups: &[Vec<Job>],
    store: &Store,
    message: &str,
) -> anyhow::Result<Vec<String>> {
    let handle = store.handle();
    let mut ids = Vec::new();
    for job in groups.iter().flatten() {
        let clock = Clock::new();
        let row = NewRun::for_service(plan, &job.svc, job.sweep.clone(), clock.now_ns());
        let run_id: Arc<str> = row.run_id.clone().into();
        handle.create_run_sync(row)?;
        handle.finish_run_sync(FinishRun {
            run_id: run_id.clone(),
            status: RunStatus::Failed,
            failure_stage: Some(FailureStage::Setup),
            failure_message: Some(message.to_string()),
            stop_reason: None,
            measure_start_ns: None,
            ended_ns: clock.now_ns(),
            cpu_user_s: None,
            cpu_system_s: None,
        })?;
        ids.push(run_id.to_string());
    }
    Ok(ids)
}

/// How often the runner looks for the batch script's word that the service exited.
pub const SERVICE_EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Poll `file` (written by the batch script when the service it started exits); once it
/// holds a line, tell the engine the service is gone.
fn watch_service_exit(file: std::path::PathBuf, stop: Arc<StopFlag>) {
    tokio::spawn(async move {
        loop {
            if let Ok(text) = tokio::fs::read_to_string(&file).await {
                let line = text.lines().next().unwrap_or_default().trim().to_string();
                if !line.is_empty() {
                    eprintln!("{line}: stopping load (the rows recorded so far are kept)");
                    stop.service_exited(line);
                    return;
                }
            }
            tokio::time::sleep(SERVICE_EXIT_POLL).await;
        }
    });
}

/// Ctrl-C / SIGTERM / SIGUSR1: stop load generation and drain; a second signal exits at once.
pub fn install_signal_handlers(stop: Arc<StopFlag>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        let mut seen = 0;
        let mut first_at: Option<std::time::Instant> = None;
        loop {
            let s = tokio::select! {
                _ = int.recv() => StopSignal::Int,
                _ = term.recv() => StopSignal::Term,
                _ = usr1.recv() => StopSignal::Usr1,
            };
            // SLURM (scancel, the time limit) signals every process of the job and the batch
            // script forwards the same signal: a repeat within 2 s is that one event, not a
            // second Ctrl-C, so the run still drains and is kept as partial.
            if first_at.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(2)) {
                continue;
            }
            seen += 1;
            first_at.get_or_insert_with(std::time::Instant::now);
            if seen == 1 {
                eprintln!(
                    "received SIG{}: stopping load, draining requests in flight (press Ctrl-C again to exit at once)",
                    s.name()
                );
                stop.set(s);
            } else {
                eprintln!(
                    "received SIG{} again: exiting now (rows committed so far are kept)",
                    s.name()
                );
                std::process::exit(exit::PARTIAL);
            }
        }
    });
    Ok(())
}

/// What every job of a group shares.
struct JobContext<'a> {
    plan: &'a Plan,
    store: StoreHandle,
    stop: Arc<StopFlag>,
    watch: Option<&'a WatchFactory>,
    gpu_facts: Option<&'a super::provenance::GpuFacts>,
}

/// One job: setup, the start gate (`ticket`, the group's first job when services start
/// together), the engine, teardown; the run recorded from its start to its end.
async fn run_job(
    ctx: &JobContext<'_>,
    job: Job,
    observers: Vec<Arc<dyn LiveObserver>>,
    ticket: Option<gate::Ticket>,
) -> Finished {
    let &JobContext {
        plan,
        ref store,
        ref stop,
        watch,
        gpu_facts,
    } = ctx;
    let clock = Clock::new();
    let svc = job.svc;
    let row = NewRun::for_service(plan, &svc, job.sweep, clock.now_ns());
    let run_id: Arc<str> = row.run_id.clone().into();
    let cpu0 = process_cpu_s();
    if let Err(e) = store.create_run_sync(row) {
        tracing::error!("[{}] cannot record the run: {e}", svc.name);
        return Finished {
            run_id: run_id.to_string(),
            status: RunStatus::Failed,
        };
    }
    let finish = |status: RunStatus,
                  stage: Option<FailureStage>,
                  message: Option<String>,
                  stop_reason: Option<String>,
                  measure_start_ns: Option<i64>,
                  ended_ns: Option<i64>| {
        let cpu = process_cpu_s();
        let r = store.finish_run_sync(FinishRun {
            run_id: run_id.clone(),
            status,
            failure_stage: stage,
            failure_message: message,
            stop_reason,
            measure_start_ns,
            ended_ns: ended_ns.unwrap_or_else(|| clock.now_ns()),
            cpu_user_s: Some(cpu.0 - cpu0.0),
            cpu_system_s: Some(cpu.1 - cpu0.1),
        });
        if let Err(e) = r {
            tracing::error!("[{}] cannot record the end of the run: {e}", svc.name);
        }
        Finished {
            run_id: run_id.to_string(),
            status,
        }
    };
    let setup_failed = |e: String| {
        eprintln!("error: [{}] setup failed: {e}", svc.name);
        finish(
            RunStatus::Failed,
            Some(FailureStage::Setup),
            Some(e),
            None,
            None,
            None,
        )
    };
    // What runs this run: recorded first, so that a run failing at setup still says where.
    let mut facts = super::provenance::host_facts(&svc);
    if let Some(g) = gpu_facts {
        facts.extend(g());
    }
    store.provenance(&run_id, facts.clone().into_iter().collect());
    let client = match make_client(&svc) {
        Ok(c) => c,
        Err(e) => return setup_failed(e.to_string()),
    };
    let setup_t0 = std::time::Instant::now();
    if let Err(e) = client.setup().await {
        return setup_failed(e.to_string());
    }
    let setup_s = setup_t0.elapsed().as_secs_f64();
    store.run_metric(&run_id, RunMetric::new("setup_s", setup_s, "s"));
    store.provenance(&run_id, client.service_facts().await.into_iter().collect());
    if let Some(ticket) = ticket {
        pass_gate(ticket, ctx, &svc.name, &run_id, setup_s).await;
    }
    // Live monitoring: node/GPU samples into the run file, pushes to the Pushgateway.
    let monitor = watch.map(|w| w(plan, &svc, &run_id, clock, store));
    let mut observers = observers;
    if let Some(m) = &monitor {
        observers.push(m.observer());
    }
    let cfg = EngineConfig {
        run_id: run_id.clone(),
        service: svc.name.clone(),
        kind: svc.kind,
        load: svc.load.clone(),
        clock,
        store: store.clone(),
        stop: stop.clone(),
        observers,
    };
    let out = match engine::run(client.clone(), cfg).await {
        Ok(o) => o,
        Err(e) => {
            if let Some(m) = monitor {
                m.finish(RunStatus::Failed).await;
            }
            let _ = client.teardown().await;
            return setup_failed(e.to_string());
        }
    };
    for m in &out.metrics {
        store.run_metric(&run_id, m.clone());
    }
    let teardown = client.teardown().await;
    let (mut status, mut stage, mut message) = end_status(&out, stop, store);
    match teardown {
        Ok(ms) => {
            for m in ms {
                store.run_metric(&run_id, m);
            }
        }
        Err(e) => {
            eprintln!("error: [{}] teardown failed: {e}", svc.name);
            if status != RunStatus::Failed {
                status = RunStatus::Failed;
                stage = Some(FailureStage::Collect);
                message = Some(e.to_string());
            }
        }
    }
    if let Some(monitor) = monitor {
        for m in monitor.finish(status).await {
            store.run_metric(&run_id, m);
        }
    }
    finish(
        status,
        stage,
        message,
        Some(out.stop_reason.as_string()),
        Some(out.measure_start_ns),
        // The measured window ends when the load phase ended (teardown is not in it).
        Some(out.ended_ns),
    )
}

/// Wait at the start gate until every other service started with this one has done its setup;
/// the wait is the run metric `start_gate_wait_s`.
async fn pass_gate(
    ticket: gate::Ticket,
    ctx: &JobContext<'_>,
    service: &str,
    run_id: &Arc<str>,
    setup_s: f64,
) {
    let passed = ticket.pass(&ctx.stop).await;
    if passed.waited_for > 0 {
        tracing::info!(
            "[{service}] setup done in {setup_s:.1} s; waited {:.1} s for the setup of {} other service(s), so that the loads start together",
            passed.waited.as_secs_f64(),
            passed.waited_for
        );
    }
    ctx.store.run_metric(
        run_id,
        RunMetric::new("start_gate_wait_s", passed.waited.as_secs_f64(), "s"),
    );
}

/// How a run that the engine drove to its end ends, by why it stopped (teardown may still fail
/// it): status, failure stage and message.
fn end_status(
    out: &engine::EngineOutcome,
    stop: &StopFlag,
    store: &StoreHandle,
) -> (RunStatus, Option<FailureStage>, Option<String>) {
    match out.stop_reason {
        StopReason::Signal(_) => (RunStatus::Partial, None, None),
        StopReason::ServiceExited => (
            RunStatus::Failed,
            Some(FailureStage::Benchmark),
            Some(format!(
                "{}; {} requests recorded before are kept",
                stop.service_exit().unwrap_or("the service exited"),
                out.requests
            )),
        ),
        StopReason::StoreFailed => (
            RunStatus::Failed,
            Some(FailureStage::Benchmark),
            Some(format!(
                "the campaign file could not be written ({}); rows committed before are kept",
                store.write_error().unwrap_or("write error")
            )),
        ),
        StopReason::MaxErrorRate => (
            RunStatus::Failed,
            Some(FailureStage::Benchmark),
            Some(format!(
                "error rate exceeded max_error_rate ({} of {} requests failed)",
                out.errors, out.requests
            )),
        ),
        _ => (RunStatus::Success, None, None),
    }
}
