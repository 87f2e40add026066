//! `factorybench monitor up|status|down|tunnel|alerts|silence`: the monitoring-stack job
//! (Prometheus + Pushgateway + Alertmanager + Grafana), how to reach it, and its alerts. See
//! `monitor::stack` for the state directory and `monitor::alerting` for Alertmanager.

use crate::exit;
use crate::exit::Failure;
use crate::monitor::alerting::{Alertmanager, EmailReceiver, Receivers, SlackReceiver};
use crate::monitor::stack::{
    self, component, BindMode, Endpoint, StackRuntime, StackSpec, ALERTMANAGER_PASSWORD_FILE,
    AUTH_USER, GRAFANA_USER, PASSWORD_FILE, PROMETHEUS_PASSWORD_FILE, PUSHGATEWAY_PASSWORD_FILE,
};
use crate::slurm::{self, JobState, SubmitOptions};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Submit the monitoring job (Prometheus + Pushgateway + Alertmanager + Grafana) and wait
    /// until it answers.
    Up(Box<UpArgs>),
    /// Show where the monitoring stack runs and whether each server answers.
    Status(StatusArgs),
    /// Cancel the monitoring job.
    Down(StateArgs),
    /// Print (or run with --exec) the SSH tunnel command to reach Grafana from a laptop.
    Tunnel(TunnelArgs),
    /// List the alerts the stack's Alertmanager holds (firing, and whether silenced).
    Alerts(AlertsArgs),
    /// Silence the alerts a campaign sets off on purpose (error rate, generator, runner CPU).
    Silence(SilenceArgs),
    /// Wait until the stack's servers answer, then write the endpoint file (run by the job).
    #[command(hide = true)]
    Register(RegisterArgs),
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Monitoring state directory (on a filesystem the compute nodes share).
    #[arg(long, env = "FACTORYBENCH_MONITOR_DIR", default_value_os_t = stack::default_state_dir())]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// SLURM partition of the monitoring job.
    #[arg(long)]
    pub partition: Option<String>,
    /// SLURM account.
    #[arg(long)]
    pub account: Option<String>,
    /// SLURM QOS.
    #[arg(long)]
    pub qos: Option<String>,
    /// A further sbatch option for the monitoring job, `--name[=value]` (repeatable), e.g.
    /// `--sbatch-arg=--reservation=demo`.
    #[arg(long = "sbatch-arg", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// SLURM time limit (e.g. 1-00:00:00); default: the partition's.
    #[arg(long)]
    pub time: Option<String>,
    /// SLURM memory request (e.g. 4G).
    #[arg(long)]
    pub mem: Option<String>,
    /// CPUs for the job (--cpus-per-task).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: u32,
    /// How the servers are started: Apptainer images, or binaries installed on the node.
    #[arg(long, value_enum, default_value_t = StackRuntime::Apptainer)]
    pub runtime: StackRuntime,
    /// Listen on the node's address (runner jobs on other nodes can push) or on 127.0.0.1.
    #[arg(long, value_enum, default_value_t = BindMode::Node)]
    pub bind: BindMode,
    #[arg(long, default_value_t = 9090)]
    pub prometheus_port: u16,
    #[arg(long, default_value_t = 9091)]
    pub pushgateway_port: u16,
    #[arg(long, default_value_t = 3000)]
    pub grafana_port: u16,
    #[arg(long, default_value_t = 9093)]
    pub alertmanager_port: u16,
    /// Send alerts to this webhook (Alertmanager's JSON; repeatable). No credentials in it.
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub alert_webhooks: Vec<String>,
    /// Send alerts to a Slack-compatible incoming webhook whose URL (a secret) is in this file.
    #[arg(long, value_name = "FILE")]
    pub alert_slack_url_file: Option<PathBuf>,
    /// The Slack channel (default: the webhook's own).
    #[arg(long, value_name = "CHANNEL", requires = "alert_slack_url_file")]
    pub alert_slack_channel: Option<String>,
    /// Send alerts by e-mail to this address (repeatable), through --smtp-relay.
    #[arg(long = "alert-email-to", value_name = "ADDRESS", requires_all = ["smtp_relay", "alert_email_from"])]
    pub alert_email_to: Vec<String>,
    /// Sender address of alert e-mails.
    #[arg(long, value_name = "ADDRESS")]
    pub alert_email_from: Option<String>,
    /// The site's SMTP relay, host:port.
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp_relay: Option<String>,
    /// Require STARTTLS on the SMTP relay.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub smtp_require_tls: bool,
    /// How long Alertmanager gathers alerts of one group before it notifies.
    #[arg(long, default_value = "30s")]
    pub alert_group_wait: String,
    /// Prometheus retention (--storage.tsdb.retention.time).
    #[arg(long, default_value = "15d")]
    pub retention: String,
    /// Prometheus scrape interval of the Pushgateway.
    #[arg(long, default_value = "5s")]
    pub scrape_interval: String,
    #[arg(long)]
    pub prometheus_image: Option<String>,
    #[arg(long)]
    pub pushgateway_image: Option<String>,
    #[arg(long)]
    pub grafana_image: Option<String>,
    #[arg(long)]
    pub alertmanager_image: Option<String>,
    /// Give up waiting for the stack after this many seconds (the job keeps its place in the
    /// queue; `monitor status` shows it).
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Print the endpoint and states as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TunnelArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The login node your laptop reaches (default: $SLURM_SUBMIT_HOST, else this host).
    #[arg(long)]
    pub login_host: Option<String>,
    /// Your cluster user name (default: $USER).
    #[arg(long)]
    pub user: Option<String>,
    /// The login node's SSH port (MeluXina's login nodes listen on 8822; default: ssh's own).
    #[arg(long)]
    pub login_port: Option<u16>,
    /// Run the ssh command instead of printing it.
    #[arg(long)]
    pub exec: bool,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Only this campaign's alerts.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Print the alerts as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Silenced: FactorybenchRunErrorRateHigh, FactorybenchRunFailing, \
FactorybenchGeneratorSaturated and FactorybenchRunnerNodeCpuSaturated of the campaign. A stalled \
run, a hot GPU or a full disk still alert.

Example: factorybench monitor silence --campaign overload-test --for 6h"
)]
pub struct SilenceArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The campaign label (the campaign directory's name under SLURM, else benchmark.name).
    #[arg(long)]
    pub campaign: String,
    /// How long the silence lasts (90m, 6h, 2d).
    #[arg(long = "for", value_name = "DURATION", default_value = "12h")]
    pub duration: String,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long)]
    pub job_id: String,
    #[arg(long)]
    pub node: String,
    #[arg(long)]
    pub address: String,
    #[arg(long, value_enum)]
    pub runtime: StackRuntime,
    #[arg(long, value_enum)]
    pub bind: BindMode,
    #[arg(long)]
    pub prometheus_port: u16,
    #[arg(long)]
    pub pushgateway_port: u16,
    #[arg(long)]
    pub grafana_port: Option<u16>,
    #[arg(long)]
    pub alertmanager_port: Option<u16>,
    #[arg(long, default_value_t = 180.0)]
    pub timeout: f64,
}

pub fn exec(c: &MonitorCommand) -> anyhow::Result<i32> {
    match c {
        MonitorCommand::Up(a) => up(a),
        MonitorCommand::Status(a) => status(a),
        MonitorCommand::Down(a) => down(a),
        MonitorCommand::Tunnel(a) => tunnel(a),
        MonitorCommand::Alerts(a) => alerts(a),
        MonitorCommand::Silence(a) => silence(a),
        MonitorCommand::Register(a) => register(a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// The job the state directory knows about: from the endpoint file, else the last submitted.
fn known_job(dir: &Path) -> Option<String> {
    Endpoint::read(dir).map(|e| e.job_id).or_else(|| {
        std::fs::read_to_string(dir.join("job_id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

fn up(a: &UpArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    if let Some(ep) = Endpoint::read(&dir) {
        if stack::job_state(&ep.job_id) == Some(JobState::Running) {
            crate::outln!(
                "the monitoring stack already runs (job {} on {})",
                ep.job_id,
                ep.node
            )?;
            print_endpoint(&ep)?;
            return Ok(exit::OK);
        }
    }
    let fb_bin = crate::slurm::factorybench_bin()?;
    let mut spec = StackSpec::new(dir.clone(), fb_bin);
    spec.runtime = a.runtime;
    spec.bind = a.bind;
    spec.partition = a.partition.clone();
    spec.account = a.account.clone();
    spec.qos = a.qos.clone();
    spec.sbatch_extra = a.sbatch_args.clone();
    spec.time = a.time.clone();
    spec.mem = a.mem.clone();
    spec.cpus = a.cpus;
    spec.prometheus_port = a.prometheus_port;
    spec.pushgateway_port = a.pushgateway_port;
    spec.grafana_port = a.grafana_port;
    spec.alertmanager_port = a.alertmanager_port;
    spec.alert_group_wait = a.alert_group_wait.clone();
    let slack = match &a.alert_slack_url_file {
        Some(f) => Some(SlackReceiver {
            url_file: absolute(f)?,
            channel: a.alert_slack_channel.clone(),
        }),
        None => None,
    };
    spec.receivers = Receivers {
        webhooks: a.alert_webhooks.clone(),
        slack,
        email: (!a.alert_email_to.is_empty()).then(|| EmailReceiver {
            to: a.alert_email_to.clone(),
            from: a.alert_email_from.clone().unwrap_or_default(),
            smarthost: a.smtp_relay.clone().unwrap_or_default(),
            require_tls: a.smtp_require_tls,
        }),
    };
    spec.retention = a.retention.clone();
    spec.scrape_interval = a.scrape_interval.clone();
    if let Some(i) = &a.prometheus_image {
        spec.prometheus_image = i.clone();
    }
    if let Some(i) = &a.pushgateway_image {
        spec.pushgateway_image = i.clone();
    }
    if let Some(i) = &a.grafana_image {
        spec.grafana_image = i.clone();
    }
    if let Some(i) = &a.alertmanager_image {
        spec.alertmanager_image = i.clone();
    }
    if a.timeout.is_nan() || a.timeout <= 0.0 || a.timeout > 86_400.0 * 365.0 {
        return Err(Failure::invalid_input(
            "--timeout must be a positive number of seconds, at most 31536000 (365 days)",
        )
        .into());
    }
    spec.render()
        .map_err(|e| Failure::invalid_input(format!("monitor up: {e}")))?;
    let script = spec.install()?;
    let job_id = slurm::sbatch(Some(&script), &SubmitOptions::default(), Some(&dir))
        .context("monitor up submits a SLURM job")?;
    std::fs::write(dir.join("job_id"), format!("{job_id}\n"))?;
    eprintln!(
        "submitted monitoring job {job_id} ({} runtime); waiting until Prometheus, the Pushgateway{} answer",
        a.runtime.as_str(),
        if a.runtime == StackRuntime::Apptainer { " and Grafana" } else { " (and Grafana when installed)" }
    );
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let log = dir.join("logs").join(format!("monitor-{job_id}.out"));
    let mut last_state = String::new();
    let mut next_check = Instant::now();
    loop {
        if let Some(ep) = Endpoint::read(&dir).filter(|e| e.job_id == job_id) {
            crate::outln!("monitoring stack ready: job {job_id} on {}", ep.node)?;
            print_endpoint(&ep)?;
            if ep.grafana.is_none() {
                crate::outln!("note: Grafana is not installed on {}: this host-runtime stack has no Grafana (use --runtime apptainer for the dashboard)", ep.node)?;
            }
            crate::outln!("reach it from your laptop: factorybench monitor tunnel")?;
            return Ok(exit::OK);
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
                    if Endpoint::read(&dir).is_some_and(|e| e.job_id == job_id) {
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
            eprintln!(
                "job {job_id} is not ready after {} s (state {}); it stays queued: `factorybench monitor status`, `factorybench monitor down`",
                a.timeout,
                if last_state.is_empty() { "unknown" } else { &last_state }
            );
            return Ok(exit::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn tail_file(p: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn print_endpoint(ep: &Endpoint) -> std::io::Result<()> {
    crate::outln!("  node         {} (listening on {})", ep.node, ep.address)?;
    crate::outln!(
        "  Prometheus   {}{}",
        ep.prometheus.url,
        auth_note(ep, &ep.prometheus_password_file)
    )?;
    crate::outln!(
        "  Pushgateway  {}{}",
        ep.pushgateway.url,
        auth_note(ep, &ep.pushgateway_password_file)
    )?;
    if let Some(am) = &ep.alertmanager {
        crate::outln!(
            "  Alertmanager {}{}",
            am.url,
            auth_note(ep, &ep.alertmanager_password_file)
        )?;
    }
    match &ep.grafana {
        Some(g) => crate::outln!(
            "  Grafana      {}  (user {}, password in {})",
            g.url,
            ep.grafana_user,
            ep.grafana_password_file.display()
        )?,
        None => crate::outln!("  Grafana      not part of this stack")?,
    }
    Ok(())
}

/// `  (user factorybench, password in …)` when the server requires basic auth.
fn auth_note(ep: &Endpoint, file: &Option<PathBuf>) -> String {
    match (&ep.auth_user, file) {
        (Some(u), Some(f)) => format!("  (user {u}, password in {})", f.display()),
        _ => String::new(),
    }
}

fn register(a: &RegisterArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    let ep = Endpoint {
        job_id: a.job_id.clone(),
        node: a.node.clone(),
        address: a.address.clone(),
        bind: a.bind,
        runtime: a.runtime,
        prometheus: component(&a.address, a.prometheus_port),
        pushgateway: component(&a.address, a.pushgateway_port),
        grafana: a.grafana_port.map(|p| component(&a.address, p)),
        grafana_user: GRAFANA_USER.into(),
        grafana_password_file: dir.join(PASSWORD_FILE),
        auth_user: Some(AUTH_USER.into()),
        prometheus_password_file: Some(dir.join(PROMETHEUS_PASSWORD_FILE)),
        pushgateway_password_file: Some(dir.join(PUSHGATEWAY_PASSWORD_FILE)),
        alertmanager: a.alertmanager_port.map(|p| component(&a.address, p)),
        alertmanager_password_file: a
            .alertmanager_port
            .map(|_| dir.join(ALERTMANAGER_PASSWORD_FILE)),
        written_ns: crate::runner::clock::Clock::new().now_ns(),
    };
    let budget = Duration::from_secs_f64(a.timeout.clamp(1.0, 86_400.0 * 365.0));
    let rt = runtime()?;
    let client = http()?;
    let mut missing = Vec::new();
    rt.block_on(async {
        let checks = stack::ready_urls(&ep);
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
            "factorybench-monitor: no answer within {} s from {}",
            a.timeout,
            missing.join(", ")
        );
        return Ok(exit::FAILURE);
    }
    ep.write(&dir)?;
    eprintln!(
        "factorybench-monitor: ready; endpoint file {}",
        dir.join(stack::ENDPOINT_FILE).display()
    );
    Ok(exit::OK)
}

fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    let Some(job) = known_job(&dir) else {
        if a.json {
            crate::outln!("{}", serde_json::json!({"running": false}))?;
        } else {
            crate::outln!(
                "the monitoring stack is not running (nothing in {})",
                dir.display()
            )?;
        }
        return Ok(exit::FAILURE);
    };
    let state = stack::job_state(&job).map(|s| s.as_str());
    let ep = Endpoint::read(&dir).filter(|e| e.job_id == job);
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
    let ready = state == Some("RUNNING") && ep.is_some() && answers.iter().all(|(_, _, ok)| *ok);
    if a.json {
        let comps: serde_json::Map<String, serde_json::Value> = answers
            .iter()
            .map(|(n, u, ok)| {
                (
                    n.to_lowercase(),
                    serde_json::json!({"url": u, "answers": ok}),
                )
            })
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "running": state == Some("RUNNING"),
                "ready": ready,
                "job_id": job,
                "job_state": state,
                "endpoint": ep,
                "components": comps,
            }))?
        )?;
    } else {
        crate::outln!(
            "monitoring job {job}: {}",
            state.unwrap_or("not in the queue (ended)")
        )?;
        if let Some(ep) = &ep {
            crate::outln!("  node         {} (listening on {})", ep.node, ep.address)?;
        }
        for (name, url, ok) in &answers {
            crate::outln!(
                "  {name:<12} {url}  {}",
                if *ok { "answers" } else { "NOT answering" }
            )?;
        }
        if ep.as_ref().is_some_and(|e| e.grafana.is_none()) {
            crate::outln!("  Grafana      not part of this stack (host runtime without Grafana)")?;
        }
    }
    Ok(if ready { exit::OK } else { exit::FAILURE })
}

fn down(a: &StateArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state_dir)?;
    let Some(job) = known_job(&dir) else {
        crate::outln!("the monitoring stack is not running")?;
        return Ok(exit::OK);
    };
    if stack::job_state(&job).is_some() {
        slurm::scancel(std::slice::from_ref(&job))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while stack::job_state(&job).is_some_and(|s| s != JobState::Completing)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        crate::outln!("cancelled monitoring job {job}")?;
    } else {
        crate::outln!("monitoring job {job} had already ended")?;
    }
    if Endpoint::read(&dir).is_some_and(|e| e.job_id == job) {
        let _ = std::fs::remove_file(dir.join(stack::ENDPOINT_FILE));
    }
    let _ = std::fs::remove_file(dir.join("job_id"));
    Ok(exit::OK)
}

fn tunnel(a: &TunnelArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    let Some(ep) = Endpoint::read(&dir) else {
        eprintln!(
            "the monitoring stack is not running (no endpoint file in {}): start it with `factorybench monitor up`",
            dir.display()
        );
        return Ok(exit::FAILURE);
    };
    let login = a
        .login_host
        .clone()
        .or_else(|| {
            std::env::var("SLURM_SUBMIT_HOST")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(full_hostname);
    let user = a
        .user
        .clone()
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
    let cmd = stack::tunnel_command(&ep, &user, &login, a.login_port);
    if a.exec {
        eprintln!("running: {}", cmd.join(" "));
        let st = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .context("cannot run ssh")?;
        return Ok(st.code().unwrap_or(exit::FAILURE));
    }
    crate::outln!("# Run this on your laptop (keeps running; Ctrl-C closes the tunnel):")?;
    crate::outln!("{}", cmd.join(" "))?;
    crate::outln!("# Then open:")?;
    match &ep.grafana {
        Some(g) => crate::outln!(
            "Grafana:    http://localhost:{}  (user {}; password: `cat {}` on the cluster)",
            g.port,
            ep.grafana_user,
            ep.grafana_password_file.display()
        )?,
        None => crate::outln!(
            "Grafana:    not part of this stack ({} runtime without Grafana on {})",
            ep.runtime.as_str(),
            ep.node
        )?,
    }
    crate::outln!(
        "Pushgateway: http://localhost:{} (push from your laptop: PUSHGATEWAY_URL=http://localhost:{})",
        ep.pushgateway.port,
        ep.pushgateway.port
    )?;
    if let Some(am) = &ep.alertmanager {
        crate::outln!(
            "Alertmanager: http://localhost:{}  (user {}; password: `cat {}` on the cluster; `factorybench monitor alerts` lists the alerts)",
            am.port,
            ep.auth_user.as_deref().unwrap_or(AUTH_USER),
            ep.alertmanager_password_file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        )?;
    }
    crate::outln!(
        "Prometheus: http://localhost:{}{}",
        ep.prometheus.port,
        match (&ep.auth_user, &ep.prometheus_password_file) {
            (Some(u), Some(f)) => format!(
                "  (user {u}; password: `cat {}` on the cluster)",
                f.display()
            ),
            _ => String::new(),
        }
    )?;
    Ok(exit::OK)
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
fn alertmanager(dir: &Path) -> anyhow::Result<Alertmanager> {
    let Some(ep) = Endpoint::read(dir) else {
        bail!(
            "the monitoring stack is not running (no endpoint file in {}): start it with `factorybench monitor up`",
            dir.display()
        );
    };
    let am = ep
        .alertmanager
        .as_ref()
        .ok_or(crate::monitor::alerting::AlertingError::NoAlertmanager)?;
    Ok(Alertmanager::new(&am.url, ep.alertmanager_auth())?)
}

fn alerts(a: &AlertsArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    let am = alertmanager(&dir)?;
    let mut list = runtime()?.block_on(am.alerts())?;
    if let Some(c) = &a.campaign {
        list.retain(|x| &x.campaign == c);
    }
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(exit::OK);
    }
    if list.is_empty() {
        crate::outln!("no alerts")?;
        return Ok(exit::OK);
    }
    crate::outln!(
        "{:<36} {:<9} {:<10} {:<24} {:<16} {:<10} summary",
        "alert",
        "severity",
        "state",
        "campaign",
        "service",
        "run"
    )?;
    for x in &list {
        let state = if x.silenced_by.is_empty() {
            x.state.clone()
        } else {
            "silenced".to_string()
        };
        crate::outln!(
            "{:<36} {:<9} {:<10} {:<24} {:<16} {:<10} {}",
            x.name,
            x.severity,
            state,
            x.campaign,
            x.service,
            x.run_id,
            x.summary
        )?;
    }
    Ok(exit::OK)
}

fn silence(a: &SilenceArgs) -> anyhow::Result<i32> {
    let duration = humantime::parse_duration(&a.duration)
        .map_err(|e| Failure::invalid_input(format!("--for {:?}: {e}", a.duration)))?;
    if a.campaign.is_empty() {
        return Err(Failure::invalid_input("--campaign must not be empty").into());
    }
    let dir = absolute(&a.state.state_dir)?;
    let am = alertmanager(&dir)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "factorybench".into());
    let id = runtime()?.block_on(am.silence_stress(&a.campaign, None, duration, &user))?;
    crate::outln!(
        "silenced {} of campaign {} for {} (silence {id})",
        crate::monitor::alerting::STRESS_ALERTS.join(", "),
        a.campaign,
        a.duration
    )?;
    Ok(exit::OK)
}
