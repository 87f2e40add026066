//! The monitoring-stack job's orchestration, without the command line: submit it and wait until
//! it answers ([`submit_and_wait`]), register it from inside the job ([`register`]), probe it
//! ([`probe`]), cancel it ([`down`]), the SSH tunnel to reach it ([`tunnel_command_for`]), and
//! its Alertmanager ([`alertmanager`]). The text a person reads (endpoint lines, tunnel
//! instructions, the alert table) is rendered here; `commands::monitor` prints it.

use super::alerting::{ActiveAlert, Alertmanager};
use super::stack::{self, Endpoint, StackRuntime, StackSpec, AUTH_USER};
use crate::exit::Failure;
use crate::slurm::{self, JobState, SubmitOptions};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A current-thread Tokio runtime for one command's requests.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

/// `p` from the working directory when relative.
pub fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// The job the state directory knows about: from the endpoint file, else the last submitted.
pub fn known_job(dir: &Path) -> Option<String> {
    Endpoint::read(dir).map(|e| e.job_id).or_else(|| {
        std::fs::read_to_string(dir.join("job_id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

/// The endpoint of the stack whose job runs now, if any.
pub fn already_running(dir: &Path) -> Option<Endpoint> {
    Endpoint::read(dir).filter(|ep| stack::job_state(&ep.job_id) == Some(JobState::Running))
}

/// How [`submit_and_wait`] ended.
pub enum UpOutcome {
    /// The stack answers.
    Ready(Box<Endpoint>),
    /// Not ready within the timeout: the job stays queued.
    TimedOut { job_id: String, last_state: String },
}

/// Install the stack's files, submit its job and wait (at most `timeout_s`) until it wrote its
/// endpoint file. The job's state changes are printed to stderr as they come; a job that ended
/// before it was ready is an error carrying the tail of its log.
pub fn submit_and_wait(spec: &StackSpec, timeout_s: f64) -> anyhow::Result<UpOutcome> {
    if timeout_s.is_nan() || timeout_s <= 0.0 || timeout_s > 86_400.0 * 365.0 {
        return Err(Failure::invalid_input(
            "--timeout must be a positive number of seconds, at most 31536000 (365 days)",
        )
        .into());
    }
    spec.render()
        .map_err(|e| Failure::invalid_input(format!("monitor up: {e}")))?;
    let dir = &spec.state_dir;
    let script = spec.install()?;
    let job_id = slurm::sbatch(Some(&script), &SubmitOptions::default(), Some(dir))
        .context("monitor up submits a SLURM job")?;
    std::fs::write(dir.join("job_id"), format!("{job_id}\n"))?;
    eprintln!(
        "submitted monitoring job {job_id} ({} runtime); waiting until Prometheus, the Pushgateway{} answer",
        spec.runtime.as_str(),
        if spec.runtime == StackRuntime::Apptainer { " and Grafana" } else { " (and Grafana when installed)" }
    );
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
    let log = dir.join("logs").join(format!("monitor-{job_id}.out"));
    let mut last_state = String::new();
    let mut next_check = Instant::now();
    loop {
        if let Some(ep) = Endpoint::read(dir).filter(|e| e.job_id == job_id) {
            return Ok(UpOutcome::Ready(Box::new(ep)));
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + Duration::from_secs(2);
            match stack::job_state(&job_id) {
                Some(s) => {
                    if s.as_str() != last_state {
                        eprintln!("job {job_id}: {s}");
                        last_state = s.as_str().to_string();
                    }
                }
                None => {
                    // One more look: the file may have landed just before the job ended.
                    if Endpoint::read(dir).is_some_and(|e| e.job_id == job_id) {
                        continue;
                    }
                    let tail = tail_file(&log, 20);
                    bail!(
                        "the monitoring job {job_id} ended before it was ready; its log {}:\n{tail}",
                        log.display()
                    );
                }
            }
        }
        if Instant::now() >= deadline {
            return Ok(UpOutcome::TimedOut { job_id, last_state });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn tail_file(p: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The lines that say where each server of the stack answers (and its credentials).
pub fn endpoint_lines(ep: &Endpoint) -> String {
    let mut s = format!("  node         {} (listening on {})\n", ep.node, ep.address);
    s += &format!(
        "  Prometheus   {}{}\n",
        ep.prometheus.url,
        auth_note(ep, &ep.prometheus_password_file)
    );
    s += &format!(
        "  Pushgateway  {}{}\n",
        ep.pushgateway.url,
        auth_note(ep, &ep.pushgateway_password_file)
    );
    if let Some(am) = &ep.alertmanager {
        s += &format!(
            "  Alertmanager {}{}\n",
            am.url,
            auth_note(ep, &ep.alertmanager_password_file)
        );
    }
    match &ep.grafana {
        Some(g) => {
            s += &format!(
                "  Grafana      {}  (user {}, password in {})\n",
                g.url,
                ep.grafana_user,
                ep.grafana_password_file.display()
            )
        }
        None => s += "  Grafana      not part of this stack\n",
    }
    s
}

/// `  (user factorybench, password in …)` when the server requires basic auth.
fn auth_note(ep: &Endpoint, file: &Option<PathBuf>) -> String {
    match (&ep.auth_user, file) {
        (Some(u), Some(f)) => format!("  (user {u}, password in {})", f.display()),
        _ => String::new(),
    }
}

/// Inside the job: wait (at most `timeout_s`) until every server of `ep` answers, then write
/// the endpoint file into `dir`. Returns whether every server answered (the job's log says
/// which did not).
pub fn register(dir: &Path, ep: &Endpoint, timeout_s: f64) -> anyhow::Result<bool> {
    let budget = Duration::from_secs_f64(timeout_s.clamp(1.0, 86_400.0 * 365.0));
    let rt = runtime()?;
    let client = http()?;
    let mut missing = Vec::new();
    rt.block_on(async {
        let checks = stack::ready_urls(ep);
        let results = futures_util::future::join_all(
            checks
                .iter()
                .map(|(_, url, auth)| stack::wait_http_ok(&client, url, auth.as_ref(), budget)),
        )
        .await;
        for ((name, url, _), ok) in checks.iter().zip(results) {
            if ok {
                eprintln!("factorybench-monitor: {name} answers at {url}");
            } else {
                missing.push(format!("{name} ({url})"));
            }
        }
    });
    if !missing.is_empty() {
        eprintln!(
            "factorybench-monitor: no answer within {timeout_s} s from {}",
            missing.join(", ")
        );
        return Ok(false);
    }
    ep.write(dir)?;
    eprintln!(
        "factorybench-monitor: ready; endpoint file {}",
        dir.join(stack::ENDPOINT_FILE).display()
    );
    Ok(true)
}

/// What [`probe`] found of the stack's job.
pub struct Probe {
    pub job_id: String,
    /// Its SLURM state while queued or running.
    pub state: Option<&'static str>,
    /// Its endpoint file, when it is this job's.
    pub endpoint: Option<Endpoint>,
    /// Each server of a running stack: name, URL, whether it answers.
    pub answers: Vec<(&'static str, String, bool)>,
}

impl Probe {
    /// `monitor status --json`.
    pub fn json(&self) -> serde_json::Value {
        let comps: serde_json::Map<String, serde_json::Value> = self
            .answers
            .iter()
            .map(|(n, u, ok)| {
                (
                    n.to_lowercase(),
                    serde_json::json!({"url": u, "answers": ok}),
                )
            })
            .collect();
        serde_json::json!({
            "running": self.state == Some("RUNNING"),
            "ready": self.ready(),
            "job_id": self.job_id,
            "job_state": self.state,
            "endpoint": self.endpoint,
            "components": comps,
        })
    }

    /// `monitor status`: the job, where it listens, whether each server answers.
    pub fn text(&self) -> String {
        let mut s = format!(
            "monitoring job {}: {}\n",
            self.job_id,
            self.state.unwrap_or("not in the queue (ended)")
        );
        if let Some(ep) = &self.endpoint {
            s += &format!("  node         {} (listening on {})\n", ep.node, ep.address);
        }
        for (name, url, ok) in &self.answers {
            s += &format!(
                "  {name:<12} {url}  {}\n",
                if *ok { "answers" } else { "NOT answering" }
            );
        }
        if self.endpoint.as_ref().is_some_and(|e| e.grafana.is_none()) {
            s += "  Grafana      not part of this stack (host runtime without Grafana)\n";
        }
        s
    }

    /// The job runs and every server answers.
    pub fn ready(&self) -> bool {
        self.state == Some("RUNNING")
            && self.endpoint.is_some()
            && self.answers.iter().all(|(_, _, ok)| *ok)
    }
}

/// The stack's job and whether each of its servers answers now (`None`: no job known).
pub fn probe(dir: &Path) -> anyhow::Result<Option<Probe>> {
    let Some(job) = known_job(dir) else {
        return Ok(None);
    };
    let state = stack::job_state(&job).map(|s| s.as_str());
    let ep = Endpoint::read(dir).filter(|e| e.job_id == job);
    let mut answers = Vec::new();
    if let (Some(ep), Some("RUNNING")) = (&ep, state) {
        let rt = runtime()?;
        let client = http()?;
        for (name, url, auth) in stack::ready_urls(ep) {
            let ok = rt.block_on(stack::wait_http_ok(
                &client,
                &url,
                auth.as_ref(),
                Duration::from_millis(1),
            ));
            answers.push((name, url, ok));
        }
    }
    Ok(Some(Probe {
        job_id: job,
        state,
        endpoint: ep,
        answers,
    }))
}

/// How [`down`] ended.
pub enum Down {
    NotRunning,
    Cancelled(String),
    AlreadyEnded(String),
}

/// Cancel the stack's job (waiting up to a minute until it leaves the queue) and remove its
/// state files.
pub fn down(dir: &Path) -> anyhow::Result<Down> {
    let Some(job) = known_job(dir) else {
        return Ok(Down::NotRunning);
    };
    let outcome = if stack::job_state(&job).is_some() {
        slurm::scancel(std::slice::from_ref(&job))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while stack::job_state(&job).is_some_and(|s| s != JobState::Completing)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        Down::Cancelled(job.clone())
    } else {
        Down::AlreadyEnded(job.clone())
    };
    if Endpoint::read(dir).is_some_and(|e| e.job_id == job) {
        let _ = std::fs::remove_file(dir.join(stack::ENDPOINT_FILE));
    }
    let _ = std::fs::remove_file(dir.join("job_id"));
    Ok(outcome)
}

/// The ssh command that forwards the stack's ports through the login node (`login` default:
/// `$SLURM_SUBMIT_HOST`, else this host; `user` default: `$USER`).
pub fn tunnel_command_for(
    ep: &Endpoint,
    login: Option<&str>,
    user: Option<&str>,
    login_port: Option<u16>,
) -> anyhow::Result<Vec<String>> {
    let login = login
        .map(str::to_string)
        .or_else(|| {
            std::env::var("SLURM_SUBMIT_HOST")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(full_hostname);
    let user = user
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "USER".into());
    for (what, v) in [("--login-host", &login), ("--user", &user)] {
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(Failure::invalid_input(format!(
                "{what} {v:?} is not a valid host/user name"
            ))
            .into());
        }
    }
    Ok(stack::tunnel_command(ep, &user, &login, login_port))
}

/// What to run on the laptop and what to open then.
pub fn tunnel_instructions(ep: &Endpoint, cmd: &[String]) -> String {
    let mut s =
        String::from("# Run this on your laptop (keeps running; Ctrl-C closes the tunnel):\n");
    s += &format!("{}\n# Then open:\n", cmd.join(" "));
    match &ep.grafana {
        Some(g) => {
            s += &format!(
                "Grafana:    http://localhost:{}  (user {}; password: `cat {}` on the cluster)\n",
                g.port,
                ep.grafana_user,
                ep.grafana_password_file.display()
            )
        }
        None => {
            s += &format!(
                "Grafana:    not part of this stack ({} runtime without Grafana on {})\n",
                ep.runtime.as_str(),
                ep.node
            )
        }
    }
    s += &format!(
        "Pushgateway: http://localhost:{} (push from your laptop: PUSHGATEWAY_URL=http://localhost:{})\n",
        ep.pushgateway.port,
        ep.pushgateway.port
    );
    if let Some(am) = &ep.alertmanager {
        s += &format!(
            "Alertmanager: http://localhost:{}  (user {}; password: `cat {}` on the cluster; `factorybench monitor alerts` lists the alerts)\n",
            am.port,
            ep.auth_user.as_deref().unwrap_or(AUTH_USER),
            ep.alertmanager_password_file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        );
    }
    s += &format!(
        "Prometheus: http://localhost:{}{}\n",
        ep.prometheus.port,
        match (&ep.auth_user, &ep.prometheus_password_file) {
            (Some(u), Some(f)) => format!(
                "  (user {u}; password: `cat {}` on the cluster)",
                f.display()
            ),
            _ => String::new(),
        }
    );
    s
}

fn full_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).to_string()
}

/// The running stack's Alertmanager client.
pub fn alertmanager(dir: &Path) -> anyhow::Result<Alertmanager> {
    let Some(ep) = Endpoint::read(dir) else {
        bail!(
            "the monitoring stack is not running (no endpoint file in {}): start it with `factorybench monitor up`",
            dir.display()
        );
    };
    let am = ep
        .alertmanager
        .as_ref()
        .ok_or(super::alerting::AlertingError::NoAlertmanager)?;
    Ok(Alertmanager::new(&am.url, ep.alertmanager_auth())?)
}

/// The alert table `monitor alerts` prints (`no alerts` when empty).
pub fn render_alerts(list: &[ActiveAlert]) -> String {
    if list.is_empty() {
        return "no alerts\n".into();
    }
    let mut s = format!(
        "{:<36} {:<9} {:<10} {:<24} {:<16} {:<10} summary\n",
        "alert", "severity", "state", "campaign", "service", "run"
    );
    for x in list {
        let state = if x.silenced_by.is_empty() {
            x.state.clone()
        } else {
            "silenced".to_string()
        };
        s += &format!(
            "{:<36} {:<9} {:<10} {:<24} {:<16} {:<10} {}\n",
            x.name, x.severity, state, x.campaign, x.service, x.run_id, x.summary
        );
    }
    s
}
