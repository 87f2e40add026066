//! The local lifecycle: `run` (a [`crate::runner::session::run_plan`] caller) starting the
//! service itself. A service whose recipe names its runtime (`runtime:
//! podman | apptainer | host`, on the service or in `global`) is not benchmarked in place: `run`
//! compiles the recipe into a campaign directory beside the run log and runs the service's
//! batch script with bash, exactly as a SLURM job would (start, readiness, endpoint file, the
//! runner, stop on every exit path), with two local settings the script honours:
//! `FB_LOCAL_RUN_DB` (the runner records into this run's campaign file) and
//! `FB_LOCAL_SWEEP_INDEX` (the sweep task). Clients always run on this machine
//! (`slurm.client_nodes` is a cluster setting).
//!
//! The script runs in its own process group: a Ctrl-C at the terminal reaches `run`, which
//! passes it (and SIGTERM, SIGUSR1) to the script exactly once; the script hands it to its runner
//! (which keeps a partial run) or, before the run started, stops the service and exits.

use crate::recipe::{Loaded, Plan, Runtime, Service};
use crate::render::campaign::{write_campaign, CampaignSpec};
use crate::render::Renderer;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

/// Whether `run` starts `svc` itself: `--no-start` never, `--start` whenever the service has a
/// runtime that starts something, else when the recipe names that runtime.
pub fn starts_service(svc: &Service, start: bool, no_start: bool) -> bool {
    if no_start || svc.runtime == Runtime::External {
        return false;
    }
    start || svc.runtime_explicit
}

/// One lifecycle that was run: the script's exit status (None: killed by a signal).
#[derive(Debug)]
pub struct LifecycleRun {
    pub service: String,
    pub sweep_index: Option<usize>,
    pub exit_code: Option<i32>,
    /// The script's standard output (the runner's summary table; the reporting is done again
    /// by `run` from the campaign file).
    pub stdout_log: PathBuf,
}

/// What running the lifecycles gave.
#[derive(Debug)]
pub struct Lifecycles {
    /// The compiled campaign directory (scripts, secrets, logs of the services).
    pub dir: PathBuf,
    pub runs: Vec<LifecycleRun>,
    /// A signal stopped them (later services were not started).
    pub stopped_by_signal: bool,
}

/// The jobs to run: (service, sweep indices or None for a service without a sweep).
pub type LifecycleJobs = Vec<(String, Option<Vec<usize>>)>;

/// Compile `loaded` into `dir` and run the batch script of each job in turn.
pub fn run_lifecycles(
    loaded: &Loaded,
    jobs: &LifecycleJobs,
    db: &Path,
    dir: &Path,
) -> anyhow::Result<Lifecycles> {
    let exe = std::env::current_exe()?;
    let db = crate::render::campaign::absolute(db)?;
    let mut local = loaded.clone();
    local.plan = local_plan(&loaded.plan);
    let out = write_campaign(
        &local,
        &Renderer::new(),
        &CampaignSpec {
            out: dir.to_path_buf(),
            service: None,
            force: false,
            fb_bin: exe.display().to_string(),
        },
    )
    .map_err(crate::render::campaign::CampaignError::into_error)?;
    let child_pid = Arc::new(AtomicI32::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    forward_signals(child_pid.clone(), signalled.clone())?;
    let mut runs = Vec::new();
    'jobs: for (service, indices) in jobs {
        let tasks: Vec<Option<usize>> = match indices {
            None => vec![None],
            Some(v) => v.iter().copied().map(Some).collect(),
        };
        for idx in tasks {
            if signalled.load(Ordering::SeqCst) {
                break 'jobs;
            }
            let script = out.dir.join("scripts").join(format!("{service}.sbatch"));
            let stdout_log = out.dir.join("logs").join(match idx {
                Some(i) => format!("{service}-{i}.run.out"),
                None => format!("{service}.run.out"),
            });
            let mut cmd = Command::new("bash");
            cmd.arg(&script)
                .env("FB_BIN", &exe)
                .env("FB_LOCAL_RUN_DB", &db)
                .env_remove("SLURM_ARRAY_TASK_ID")
                .env_remove("SLURM_ARRAY_JOB_ID")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_log)?)
                .stderr(Stdio::inherit())
                .process_group(0);
            match idx {
                Some(i) => cmd.env("FB_LOCAL_SWEEP_INDEX", i.to_string()),
                None => cmd.env_remove("FB_LOCAL_SWEEP_INDEX"),
            };
            eprintln!(
                "[{service}] starting the service ({}) with its batch script {}",
                loaded
                    .plan
                    .service(service)
                    .map_or(Runtime::External, |s| s.runtime)
                    .as_str(),
                script.display()
            );
            let mut child = cmd.spawn()?;
            child_pid.store(child.id() as i32, Ordering::SeqCst);
            // A signal that came between the check above and the spawn.
            if signalled.load(Ordering::SeqCst) {
                // SAFETY: kill(2) on the pid of the child spawned above.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            }
            let status = child.wait()?;
            child_pid.store(0, Ordering::SeqCst);
            runs.push(LifecycleRun {
                service: service.clone(),
                sweep_index: idx,
                exit_code: status.code(),
                stdout_log,
            });
        }
    }
    Ok(Lifecycles {
        dir: out.dir,
        runs,
        stopped_by_signal: signalled.load(Ordering::SeqCst),
    })
}

/// The plan as it runs on one machine: every client here (no `srun` to client nodes), so the
/// service binds loopback.
fn local_plan(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    for s in &mut p.services {
        s.slurm.client_nodes = 0;
    }
    p
}

/// Pass SIGINT, SIGTERM and SIGUSR1 to the running script (its own process group does not see
/// the terminal's Ctrl-C). Once registered, these signals no longer end `run` itself.
fn forward_signals(child_pid: Arc<AtomicI32>, signalled: Arc<AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("fb-lifecycle-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let streams = (|| {
                    Ok::<_, std::io::Error>((
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::user_defined1())?,
                    ))
                })();
                let (mut int, mut term, mut usr1) = match streams {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let sig = tokio::select! {
                        _ = int.recv() => libc::SIGINT,
                        _ = term.recv() => libc::SIGTERM,
                        _ = usr1.recv() => libc::SIGUSR1,
                    };
                    signalled.store(true, Ordering::SeqCst);
                    let pid = child_pid.load(Ordering::SeqCst);
                    if pid > 0 {
                        // SAFETY: kill(2) on the pid of our own child (0 when none runs).
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            });
        })?;
    ready_rx.recv()??;
    Ok(())
}

/// How [`wait_ready`] probes (the options of the batch scripts' `factorybench ready`).
#[derive(Debug, Clone, Default)]
pub struct ReadyOptions {
    /// Give up after this many seconds.
    pub budget_s: f64,
    /// Give up at once when this process (the service) has exited.
    pub watch_pid: Option<u32>,
    /// The process the job started the service as (default: `watch_pid`): the port's
    /// listening socket must belong to it or a descendant.
    pub owner_pid: Option<u32>,
    /// Probe at this address instead of loopback.
    pub endpoint_host: Option<String>,
}

/// What [`wait_ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The service answers its health endpoint (and holds its port).
    Ready,
    /// It did not answer within the budget.
    NoAnswer,
    /// A server answers on the port, but another process holds it.
    NotOurs,
}

impl Readiness {
    pub fn exit_code(self) -> i32 {
        match self {
            Readiness::Ready => crate::exit::OK,
            Readiness::NoAnswer => crate::exit::FAILURE,
            Readiness::NotOurs => crate::exit::NOT_OURS,
        }
    }
}

/// Wait until `svc` really answers its health endpoint and, once it does, check that the
/// process this job started holds its port (used inside batch scripts; progress on stderr).
pub fn wait_ready(svc: &Service, o: &ReadyOptions) -> anyhow::Result<Readiness> {
    let svc = &svc.for_client_node(None, o.endpoint_host.as_deref());
    let probe = crate::runner::ready::Probe::for_service(svc);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(crate::runner::ready::wait_ready(
        &probe,
        std::time::Duration::from_secs_f64(o.budget_s),
        std::time::Duration::from_secs_f64(svc.readiness.interval_s.max(0.05)),
        o.watch_pid,
        &mut |line| eprintln!("{line}"),
    ));
    match outcome {
        Ok(elapsed) => {
            let port = probe.port().or(svc.endpoint.port);
            if let (Some(owner), Some(port)) = (o.owner_pid.or(o.watch_pid), port) {
                use crate::runner::owner::{check, user_name, Ownership};
                match check(port, owner) {
                    Ownership::Ours { pid } => {
                        eprintln!("ready: port {port} is held by this job's service (pid {pid})")
                    }
                    Ownership::NoListener => eprintln!(
                        "ready: no socket listens on port {port} in this network namespace; the service's ownership of it is not checked"
                    ),
                    Ownership::Theirs { holders, uid } => {
                        let who: Vec<String> = holders
                            .iter()
                            .map(|(p, c)| format!("pid {p} `{c}`"))
                            .collect();
                        eprintln!(
                            "ready: REFUSED: {} answered {}, but port {port} is held by {} of user {}, not by the service this job started (pid {owner}): another job's or user's server; refusing to measure it",
                            svc.name,
                            probe.describe(),
                            if who.is_empty() {
                                "a process this user cannot see".to_string()
                            } else {
                                who.join(", ")
                            },
                            user_name(uid)
                        );
                        return Ok(Readiness::NotOurs);
                    }
                }
            }
            eprintln!(
                "ready: {} answered {} after {:.1} s",
                svc.name,
                probe.describe(),
                elapsed.as_secs_f64()
            );
            Ok(Readiness::Ready)
        }
        Err(last) => {
            eprintln!(
                "ready: {} did not answer {} (budget {} s): {last}",
                svc.name,
                probe.describe(),
                o.budget_s
            );
            Ok(Readiness::NoAnswer)
        }
    }
}
