//! `factorybench monitor up|status|down|tunnel|alerts|silence`: the monitoring-stack job
//! (Prometheus + Pushgateway + Alertmanager + Grafana), how to reach it, and its alerts. See
//! `monitor::stack` for the state directory and `monitor::alerting` for Alertmanager.

use crate::exit::{self, Failure};
use crate::monitor::alerting::{EmailReceiver, Receivers, SlackReceiver};
use crate::monitor::job::{self, absolute, endpoint_lines, Down, UpOutcome};
use crate::monitor::stack::{
    self, component, BindMode, Endpoint, StackRuntime, StackSpec, ALERTMANAGER_PASSWORD_FILE,
    AUTH_USER, GRAFANA_USER, PASSWORD_FILE, PROMETHEUS_PASSWORD_FILE, PUSHGATEWAY_PASSWORD_FILE,
};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

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
    /// Sample this node's GPUs (NVML) into a file until the batch step ends (run by a
    /// multi-node GPU service's job on the service node).
    #[command(hide = true)]
    SampleServiceNode(SampleServiceNodeArgs),
}

#[derive(Debug, Args)]
pub struct SampleServiceNodeArgs {
    /// The service whose GPUs these are.
    #[arg(long)]
    pub service: String,
    /// The samples file (`runs/<service>-<run>.service-node.jsonl`).
    #[arg(long)]
    pub out: PathBuf,
    /// Milliseconds between readings.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub interval_ms: u64,
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
        MonitorCommand::SampleServiceNode(a) => {
            let every = std::time::Duration::from_millis(a.interval_ms);
            crate::monitor::service_node::sample(&a.out, &a.service, every)?;
            Ok(exit::OK)
        }
    }
}

fn up(a: &UpArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    if let Some(ep) = job::already_running(&dir) {
        crate::outln!(
            "the monitoring stack already runs (job {} on {})",
            ep.job_id,
            ep.node
        )?;
        crate::out!("{}", endpoint_lines(&ep))?;
        return Ok(exit::OK);
    }
    let spec = a.spec(dir)?;
    match job::submit_and_wait(&spec, a.timeout)? {
        UpOutcome::Ready(ep) => {
            crate::outln!("monitoring stack ready: job {} on {}", ep.job_id, ep.node)?;
            crate::out!("{}", endpoint_lines(&ep))?;
            if ep.grafana.is_none() {
                crate::outln!("note: Grafana is not installed on {}: this host-runtime stack has no Grafana (use --runtime apptainer for the dashboard)", ep.node)?;
            }
            crate::outln!("reach it from your laptop: factorybench monitor tunnel")?;
            Ok(exit::OK)
        }
        UpOutcome::TimedOut { job_id, last_state } => {
            eprintln!(
                "job {job_id} is not ready after {} s (state {}); it stays queued: `factorybench monitor status`, `factorybench monitor down`",
                a.timeout,
                if last_state.is_empty() { "unknown" } else { &last_state }
            );
            Ok(exit::FAILURE)
        }
    }
}

impl UpArgs {
    /// The stack these arguments describe, its state in `dir`.
    fn spec(&self, dir: PathBuf) -> anyhow::Result<StackSpec> {
        let a = self;
        let fb_bin = crate::slurm::factorybench_bin()?;
        let mut spec = StackSpec::new(dir, fb_bin);
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
        for (image, given) in [
            (&mut spec.prometheus_image, &a.prometheus_image),
            (&mut spec.pushgateway_image, &a.pushgateway_image),
            (&mut spec.grafana_image, &a.grafana_image),
            (&mut spec.alertmanager_image, &a.alertmanager_image),
        ] {
            if let Some(i) = given {
                image.clone_from(i);
            }
        }
        Ok(spec)
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
    Ok(if job::register(&dir, &ep, a.timeout)? {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    let dir = absolute(&a.state.state_dir)?;
    let Some(p) = job::probe(&dir)? else {
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
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&p.json())?)?;
    } else {
        crate::out!("{}", p.text())?;
    }
    Ok(if p.ready() { exit::OK } else { exit::FAILURE })
}

fn down(a: &StateArgs) -> anyhow::Result<i32> {
    match job::down(&absolute(&a.state_dir)?)? {
        Down::NotRunning => crate::outln!("the monitoring stack is not running")?,
        Down::Cancelled(job) => crate::outln!("cancelled monitoring job {job}")?,
        Down::AlreadyEnded(job) => crate::outln!("monitoring job {job} had already ended")?,
    }
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
    let cmd = job::tunnel_command_for(
        &ep,
        a.login_host.as_deref(),
        a.user.as_deref(),
        a.login_port,
    )?;
    if a.exec {
        eprintln!("running: {}", cmd.join(" "));
        let st = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .context("cannot run ssh")?;
        return Ok(st.code().unwrap_or(exit::FAILURE));
    }
    crate::out!("{}", job::tunnel_instructions(&ep, &cmd))?;
    Ok(exit::OK)
}

fn alerts(a: &AlertsArgs) -> anyhow::Result<i32> {
    let am = job::alertmanager(&absolute(&a.state.state_dir)?)?;
    let mut list = job::runtime()?.block_on(am.alerts())?;
    if let Some(c) = &a.campaign {
        list.retain(|x| &x.campaign == c);
    }
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&list)?)?;
    } else {
        crate::out!("{}", job::render_alerts(&list))?;
    }
    Ok(exit::OK)
}

fn silence(a: &SilenceArgs) -> anyhow::Result<i32> {
    let duration = humantime::parse_duration(&a.duration)
        .map_err(|e| Failure::invalid_input(format!("--for {:?}: {e}", a.duration)))?;
    if a.campaign.is_empty() {
        return Err(Failure::invalid_input("--campaign must not be empty").into());
    }
    let am = job::alertmanager(&absolute(&a.state.state_dir)?)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "factorybench".into());
    let id = job::runtime()?.block_on(am.silence_stress(&a.campaign, None, duration, &user))?;
    crate::outln!(
        "silenced {} of campaign {} for {} (silence {id})",
        crate::monitor::alerting::STRESS_ALERTS.join(", "),
        a.campaign,
        a.duration
    )?;
    Ok(exit::OK)
}
