//! `run`: drive load against the recipe's services here (locally, or on a SLURM node), record
//! every request in the campaign file, print a summary computed from that file.

use super::InvalidInput;
use crate::exit;
use crate::monitor::session::{intern, RunMonitor};
use crate::recipe::{Plan, Service, SweepParam};
use crate::runner::clients::make_client;
use crate::runner::clock::Clock;
use crate::runner::cpu::process_cpu_s;
use crate::runner::engine::{self, EngineConfig, StopFlag};
use crate::runner::live::{LiveObserver, LiveSnapshot, Phase};
use crate::store::{
    FailureStage, FinishRun, NewRun, RunStatus, StopReason, StopSignal, Store, StoreHandle,
};
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
error rate, generator saturated: see the summary).")]
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

/// One unit of work: a service, resolved for one sweep value (if any).
struct Job {
    svc: Service,
    sweep: Option<(SweepParam, String)>,
}

fn select_jobs(plan: &Plan, a: &RunArgs) -> anyhow::Result<Vec<Vec<Job>>> {
    let services: Vec<&Service> = match &a.service {
        Some(name) => match plan.service(name) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
                return Err(InvalidInput(format!(
                    "no service `{name}` in {} (services: {})",
                    a.recipe.display(),
                    names.join(", ")
                ))
                .into());
            }
        },
        None => plan.services.iter().collect(),
    };
    let mut groups = Vec::new();
    for s in services {
        let mut jobs = Vec::new();
        match (&s.sweep, a.sweep_index) {
            (None, None) => jobs.push(Job {
                svc: s.clone(),
                sweep: None,
            }),
            (None, Some(_)) if a.service.is_some() => {
                return Err(InvalidInput(format!(
                    "--sweep-index given but service `{}` has no sweep",
                    s.name
                ))
                .into())
            }
            (None, Some(_)) => jobs.push(Job {
                svc: s.clone(),
                sweep: None,
            }),
            (Some(sw), Some(i)) => {
                let svc = s.with_sweep_index(i).ok_or_else(|| {
                    InvalidInput(format!(
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
                        InvalidInput(format!(
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
struct Finished {
    run_id: String,
    status: RunStatus,
}

pub fn exec(a: &RunArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe)?;
    let plan = Arc::new(loaded.plan);
    let groups = select_jobs(&plan, a)?;
    if a.max_workers == Some(0) {
        return Err(InvalidInput("--max-workers must be at least 1".into()).into());
    }
    let db =
        a.db.clone()
            .unwrap_or_else(|| plan.global.metrics_db.clone());
    let store = Store::open(&db)?;
    let handle = store.handle();

    if let Some(msg) = &a.fail_setup {
        let mut ids = Vec::new();
        for job in groups.iter().flatten() {
            let clock = Clock::new();
            let row = NewRun::for_service(&plan, &job.svc, job.sweep.clone(), clock.now_ns());
            let run_id: Arc<str> = row.run_id.clone().into();
            handle.create_run_sync(row)?;
            handle.finish_run_sync(FinishRun {
                run_id: run_id.clone(),
                status: RunStatus::Failed,
                failure_stage: Some(FailureStage::Setup),
                failure_message: Some(msg.clone()),
                stop_reason: None,
                measure_start_ns: None,
                ended_ns: clock.now_ns(),
                cpu_user_s: None,
                cpu_system_s: None,
            })?;
            ids.push(run_id.to_string());
        }
        drop(handle);
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
    let max_par = if a.sequential {
        1
    } else {
        a.max_workers.unwrap_or(usize::MAX)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fb-runner")
        .build()?;
    let stop = StopFlag::new();
    let finished: Vec<Finished> = rt.block_on(async {
        install_signal_handlers(stop.clone())?;
        let sem = Arc::new(tokio::sync::Semaphore::new(max_par.min(1 << 20)));
        let mut tasks = Vec::new();
        for jobs in groups {
            let sem = sem.clone();
            let plan = plan.clone();
            let handle = handle.clone();
            let stop = stop.clone();
            let multi = multi.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                let mut out = Vec::new();
                for job in jobs {
                    if stop.get().is_some() {
                        break;
                    }
                    let observers = observers_for(&plan, &job.svc, show_bars, &multi);
                    out.push(run_job(&plan, job, handle.clone(), stop.clone(), observers).await);
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
    handle.flush_sync()?;
    drop(handle);
    store.close()?;
    drop(rt);

    // The summary is read back from the campaign file: what is printed is what is stored.
    let conn = crate::store::read::open_read_only(&db)?;
    let mut summaries = Vec::new();
    for f in &finished {
        summaries.push(summarize_run(&conn, &f.run_id)?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "campaign_file": db.display().to_string(),
                "runs": summaries,
            }))?
        );
    } else {
        print!("{}", summary::render_table(&summaries));
        println!("campaign file: {}", db.display());
    }
    let code = if finished.iter().any(|f| f.status == RunStatus::Failed) {
        exit::FAILURE
    } else if finished.iter().any(|f| f.status == RunStatus::Partial) || stop.get().is_some() {
        exit::PARTIAL
    } else if summaries.iter().any(|s| !s.valid) {
        exit::INVALID_RUN
    } else {
        exit::OK
    };
    Ok(code)
}

/// Ctrl-C / SIGTERM / SIGUSR1: stop load generation and drain; a second signal exits at once.
fn install_signal_handlers(stop: Arc<StopFlag>) -> anyhow::Result<()> {
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

/// The live observers of one service's run: the progress display (the Pushgateway pusher is
/// added by `run_job` through `monitor::session::RunMonitor`).
fn observers_for(
    _plan: &Plan,
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

async fn run_job(
    plan: &Plan,
    job: Job,
    store: StoreHandle,
    stop: Arc<StopFlag>,
    observers: Vec<Arc<dyn LiveObserver>>,
) -> Finished {
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
    let client = match make_client(&svc) {
        Ok(c) => c,
        Err(e) => return setup_failed(e.to_string()),
    };
    if let Err(e) = client.setup().await {
        return setup_failed(e.to_string());
    }
    // Live monitoring: node/GPU samples into the run file, pushes to the Pushgateway.
    let sink_store = store.clone();
    let sink_run = run_id.clone();
    let monitor = RunMonitor::start(
        plan,
        &svc,
        &run_id,
        clock,
        Box::new(move |s| sink_store.sample(&sink_run, s.t_ns, intern(&s.name), s.value)),
    );
    let mut observers = observers;
    observers.push(monitor.observer());
    let cfg = EngineConfig {
        run_id: run_id.clone(),
        service: svc.name.clone(),
        kind: svc.kind,
        load: svc.load.clone(),
        clock,
        store: store.clone(),
        stop,
        observers,
    };
    let out = match engine::run(client.clone(), cfg).await {
        Ok(o) => o,
        Err(e) => {
            monitor.finish(RunStatus::Failed.as_str()).await;
            let _ = client.teardown().await;
            return setup_failed(e.to_string());
        }
    };
    for m in &out.metrics {
        store.run_metric(&run_id, m.clone());
    }
    let teardown = client.teardown().await;
    let (mut status, mut stage, mut message) = match out.stop_reason {
        StopReason::Signal(_) => (RunStatus::Partial, None, None),
        StopReason::MaxErrorRate => (
            RunStatus::Failed,
            Some(FailureStage::Benchmark),
            Some(format!(
                "error rate exceeded max_error_rate ({} of {} requests failed)",
                out.errors, out.requests
            )),
        ),
        _ => (RunStatus::Success, None, None),
    };
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
    for m in monitor.finish(status.as_str()).await.metrics {
        store.run_metric(&run_id, m);
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
