//! The monitoring-stack job: render its batch script, install its configuration files into the
//! monitoring state directory, and read/write the endpoint file runners and `monitor tunnel` use.
//!
//! State directory (default `~/.factorybench/monitor`, `$FACTORYBENCH_MONITOR_DIR` or
//! `--state-dir`; it must be on a filesystem the compute nodes share, as home usually is):
//!
//! ```text
//! config/prometheus.yml                      monitoring/prometheus.yml (placeholders filled on the node)
//! config/alerts.yml                          monitoring/alerts.yml (alerting rules, next to the config)
//! config/grafana/provisioning/...            datasource (uid factorybench-prometheus, 0600: it holds
//!                                            the Prometheus password) + dashboard provider
//! config/grafana/dashboards/factorybench.json
//! grafana-admin-password                     0600, generated once
//! prometheus-password, pushgateway-password  0600, generated once: basic auth (user
//!                                            `factorybench`) of Prometheus and the Pushgateway
//! config/prometheus-web.yml                  0600, their `--web.config.file` (bcrypt hashes)
//! config/pushgateway-web.yml
//! alertmanager-password                      0600, generated once: Alertmanager's basic auth
//! config/alertmanager-web.yml                0600, its `--web.config.file`
//! config/alertmanager.yml                    0600, route and receivers (`monitor up --alert-*`)
//! monitor.sbatch                             the rendered job script
//! job_id                                     the last submitted job
//! endpoint.json                              written on the node once every component answers
//! logs/monitor-<jobid>.out, run/<jobid>/     job output and component logs
//! prometheus-data/, grafana-data/, alertmanager-data/
//! ```

use crate::slurm::JobState;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const TEMPLATE: &str = include_str!("../../templates/slurm/monitor.sbatch.j2");
const PROMETHEUS_YML: &str = include_str!("../../monitoring/prometheus.yml");
/// The alerting rules Prometheus loads (`rule_files: [alerts.yml]`, beside its config).
pub const ALERTS_YML: &str = include_str!("../../monitoring/alerts.yml");
const GRAFANA_DATASOURCE: &str =
    include_str!("../../monitoring/grafana/provisioning/datasources/prometheus.yml");
const GRAFANA_DASHBOARD_PROVIDER: &str =
    include_str!("../../monitoring/grafana/provisioning/dashboards/factorybench.yml");
/// The Grafana dashboard (also read by the tests that run its PromQL).
pub const DASHBOARD_JSON: &str =
    include_str!("../../monitoring/grafana/dashboards/factorybench.json");

pub const ENDPOINT_FILE: &str = "endpoint.json";
pub const PASSWORD_FILE: &str = "grafana-admin-password";
pub const GRAFANA_USER: &str = "admin";
/// The basic-auth user of Prometheus and the Pushgateway.
pub const AUTH_USER: &str = "factorybench";
pub const PROMETHEUS_PASSWORD_FILE: &str = "prometheus-password";
pub const PUSHGATEWAY_PASSWORD_FILE: &str = "pushgateway-password";
pub const PROMETHEUS_WEB_CONFIG: &str = "config/prometheus-web.yml";
pub const PUSHGATEWAY_WEB_CONFIG: &str = "config/pushgateway-web.yml";
pub const ALERTMANAGER_PASSWORD_FILE: &str = "alertmanager-password";
pub const ALERTMANAGER_WEB_CONFIG: &str = "config/alertmanager-web.yml";
pub const ALERTMANAGER_CONFIG: &str = "config/alertmanager.yml";
/// The private copy of `--alert-slack-url-file` that Alertmanager reads.
pub const SLACK_URL_FILE: &str = "slack-webhook-url";
const DATASOURCE_FILE: &str = "config/grafana/provisioning/datasources/prometheus.yml";
/// bcrypt cost of the web-config hashes. The servers check a password once per connection
/// and cache the result, so a pushing runner pays it rarely.
const BCRYPT_COST: u32 = 10;

/// Basic-auth credentials (the password never appears in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({}, <redacted>)", self.user)
    }
}

impl BasicAuth {
    /// `user` with the password stored (0600) in `path`.
    pub fn from_file(user: &str, path: &Path) -> Result<BasicAuth, StackError> {
        let password = fs::read_to_string(path).map_err(io_err(path))?;
        Ok(BasicAuth {
            user: user.to_string(),
            password: password.trim().to_string(),
        })
    }

    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(&self.user, Some(&self.password))
    }
}

/// The `--web.config.file` of Prometheus or the Pushgateway: basic auth for `user` with a
/// bcrypt hash of `password`.
pub fn web_config(user: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, BCRYPT_COST).expect("bcrypt of a short password");
    format!(
        "# factorybench: basic auth of this server (generated by `factorybench monitor up`).\n\
         basic_auth_users:\n  {user}: {hash}\n"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{what} {value:?} is not allowed: {why}")]
    BadValue {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("alert receiver: {0}")]
    Receiver(#[from] super::alerting::AlertingError),
    #[error("cannot render the monitoring job script: {0}")]
    Template(#[from] minijinja::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StackError + '_ {
    move |source| StackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How the job starts the three servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StackRuntime {
    /// Apptainer images (clusters).
    Apptainer,
    /// Binaries installed on the node (Grafana is skipped with a note when missing).
    Host,
}

impl StackRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            StackRuntime::Apptainer => "apptainer",
            StackRuntime::Host => "host",
        }
    }
}

/// Which address the servers listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// The node's own address (runner jobs on other nodes can push; reach Grafana by tunnel).
    Node,
    /// 127.0.0.1 only (single node; reach it with an SSH tunnel to the node itself).
    Loopback,
}

impl BindMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BindMode::Node => "node",
            BindMode::Loopback => "loopback",
        }
    }
}

/// Everything the job script needs.
#[derive(Debug, Clone)]
pub struct StackSpec {
    pub state_dir: PathBuf,
    pub fb_bin: PathBuf,
    pub runtime: StackRuntime,
    pub bind: BindMode,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Further `#SBATCH` options, each `--name[=value]` (e.g. `--reservation=demo`).
    pub sbatch_extra: Vec<String>,
    /// SLURM time limit as sbatch takes it.
    pub time: Option<String>,
    pub mem: Option<String>,
    pub cpus: u32,
    pub prometheus_port: u16,
    pub pushgateway_port: u16,
    pub grafana_port: u16,
    pub alertmanager_port: u16,
    /// Where Alertmanager sends alerts (none: they are listed by `monitor alerts` only).
    pub receivers: super::alerting::Receivers,
    /// Alertmanager's `group_wait`: how long it gathers alerts before the first notification.
    pub alert_group_wait: String,
    /// Prometheus `--storage.tsdb.retention.time`.
    pub retention: String,
    /// Prometheus scrape interval (`5s`).
    pub scrape_interval: String,
    pub prometheus_image: String,
    pub pushgateway_image: String,
    pub grafana_image: String,
    pub alertmanager_image: String,
    pub ready_timeout_s: u32,
}

impl StackSpec {
    pub fn new(state_dir: PathBuf, fb_bin: PathBuf) -> Self {
        StackSpec {
            state_dir,
            fb_bin,
            runtime: StackRuntime::Apptainer,
            bind: BindMode::Node,
            partition: None,
            account: None,
            qos: None,
            sbatch_extra: Vec::new(),
            time: None,
            mem: None,
            cpus: 2,
            prometheus_port: 9090,
            pushgateway_port: 9091,
            grafana_port: 3000,
            alertmanager_port: 9093,
            receivers: super::alerting::Receivers::default(),
            alert_group_wait: "30s".into(),
            retention: "15d".into(),
            scrape_interval: "5s".into(),
            prometheus_image: "docker://prom/prometheus:v2.53.2".into(),
            pushgateway_image: "docker://prom/pushgateway:v1.9.0".into(),
            grafana_image: "docker://grafana/grafana-oss:11.2.0".into(),
            alertmanager_image: "docker://prom/alertmanager:v0.27.0".into(),
            ready_timeout_s: 180,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join("logs").join("monitor-%j.out")
    }

    pub fn script_path(&self) -> PathBuf {
        self.state_dir.join("monitor.sbatch")
    }

    fn validate(&self) -> Result<(), StackError> {
        // #SBATCH lines are not parsed by a shell: keep their values to a safe alphabet.
        let simple = |what: &'static str, v: &Option<String>| -> Result<(), StackError> {
            match v {
                Some(s)
                    if s.is_empty()
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.,:-+".contains(&b)) =>
                {
                    Err(StackError::BadValue {
                        what,
                        value: s.clone(),
                        why: "use letters, digits and _ . , : - + only",
                    })
                }
                _ => Ok(()),
            }
        };
        simple("partition", &self.partition)?;
        simple("account", &self.account)?;
        simple("qos", &self.qos)?;
        for e in &self.sbatch_extra {
            let ok = e.starts_with("--")
                && e.len() > 2
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.,:-+=/@".contains(&b));
            if !ok {
                return Err(StackError::BadValue {
                    what: "sbatch option",
                    value: e.clone(),
                    why: "give `--name[=value]` with letters, digits and _ . , : - + = / @ only",
                });
            }
        }
        simple("time", &self.time)?;
        simple("mem", &self.mem)?;
        simple("retention", &Some(self.retention.clone()))?;
        simple("scrape interval", &Some(self.scrape_interval.clone()))?;
        simple("alert group wait", &Some(self.alert_group_wait.clone()))?;
        self.receivers.validate()?;
        let dir = self.state_dir.to_string_lossy();
        if !self.state_dir.is_absolute()
            || dir
                .chars()
                .any(|c| c.is_whitespace() || "\"'\\%$`|".contains(c))
        {
            return Err(StackError::BadValue {
                what: "monitoring state directory",
                value: dir.to_string(),
                why: "it must be an absolute path without spaces, quotes, '%', '$', '|' or backslashes (it appears in #SBATCH --output and sed expressions)",
            });
        }
        let ports = [
            self.prometheus_port,
            self.pushgateway_port,
            self.grafana_port,
            self.alertmanager_port,
        ];
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        if ports.contains(&0) || distinct.len() != ports.len() {
            return Err(StackError::BadValue {
                what: "ports",
                value: format!("{ports:?}"),
                why: "Prometheus, Pushgateway, Grafana and Alertmanager need four different non-zero ports",
            });
        }
        Ok(())
    }

    /// The batch script (pure: no files touched).
    pub fn render(&self) -> Result<String, StackError> {
        self.validate()?;
        let mut env = minijinja::Environment::new();
        env.add_filter("shq", |v: String| crate::shell::quote(&v));
        env.add_template("monitor.sbatch", TEMPLATE)?;
        let t = env.get_template("monitor.sbatch")?;
        let mut s = t.render(minijinja::context! {
            state_dir => self.state_dir.to_string_lossy(),
            fb_bin => self.fb_bin.to_string_lossy(),
            log_path => self.log_path().to_string_lossy(),
            runtime => self.runtime.as_str(),
            bind => self.bind.as_str(),
            partition => self.partition,
            account => self.account,
            qos => self.qos,
            sbatch_extra => self.sbatch_extra,
            time => self.time,
            mem => self.mem,
            cpus => self.cpus,
            prometheus_port => self.prometheus_port,
            pushgateway_port => self.pushgateway_port,
            grafana_port => self.grafana_port,
            alertmanager_port => self.alertmanager_port,
            alertmanager_image => self.alertmanager_image,
            retention => self.retention,
            scrape_interval => self.scrape_interval,
            prometheus_image => self.prometheus_image,
            pushgateway_image => self.pushgateway_image,
            grafana_image => self.grafana_image,
            ready_timeout_s => self.ready_timeout_s,
        })?;
        if !s.ends_with('\n') {
            s.push('\n');
        }
        Ok(s)
    }

    /// Create the state directory (0700) with its config files, the Grafana password (0600,
    /// generated once) and the job script. Returns the script path.
    pub fn install(&self) -> Result<PathBuf, StackError> {
        let script = self.render()?;
        let d = &self.state_dir;
        for sub in [
            "config/grafana/provisioning/datasources",
            "config/grafana/provisioning/dashboards",
            "config/grafana/dashboards",
            "logs",
            "run",
        ] {
            let p = d.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(io_err(d))?;
        for (rel, text) in [
            ("config/prometheus.yml", PROMETHEUS_YML),
            ("config/alerts.yml", ALERTS_YML),
            (
                "config/grafana/provisioning/dashboards/factorybench.yml",
                GRAFANA_DASHBOARD_PROVIDER,
            ),
            (
                "config/grafana/dashboards/factorybench.json",
                DASHBOARD_JSON,
            ),
        ] {
            let p = d.join(rel);
            fs::write(&p, text).map_err(io_err(&p))?;
        }
        ensure_password(&d.join(PASSWORD_FILE))?;
        let prom_pw = ensure_password(&d.join(PROMETHEUS_PASSWORD_FILE))?;
        let pgw_pw = ensure_password(&d.join(PUSHGATEWAY_PASSWORD_FILE))?;
        let am_pw = ensure_password(&d.join(ALERTMANAGER_PASSWORD_FILE))?;
        write_private(
            &d.join(ALERTMANAGER_WEB_CONFIG),
            &web_config(AUTH_USER, &am_pw),
        )?;
        // A Slack webhook URL is a secret: Alertmanager reads it from a private copy in the
        // state directory (the one directory an Apptainer image of it sees).
        let mut receivers = self.receivers.clone();
        if let Some(sl) = &mut receivers.slack {
            let url = fs::read_to_string(&sl.url_file).map_err(io_err(&sl.url_file))?;
            let copy = d.join(SLACK_URL_FILE);
            write_private(&copy, url.trim())?;
            sl.url_file = copy;
        }
        write_private(
            &d.join(ALERTMANAGER_CONFIG),
            &super::alerting::alertmanager_config(&receivers, &self.alert_group_wait),
        )?;
        write_private(
            &d.join(PROMETHEUS_WEB_CONFIG),
            &web_config(AUTH_USER, &prom_pw),
        )?;
        write_private(
            &d.join(PUSHGATEWAY_WEB_CONFIG),
            &web_config(AUTH_USER, &pgw_pw),
        )?;
        write_private(
            &d.join(DATASOURCE_FILE),
            &grafana_datasource(AUTH_USER, &prom_pw),
        )?;
        let p = self.script_path();
        fs::write(&p, script).map_err(io_err(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).map_err(io_err(&p))?;
        Ok(p)
    }
}

/// Grafana's datasource with the Prometheus credentials filled in (written 0600).
pub fn grafana_datasource(user: &str, password: &str) -> String {
    // The password is URL-safe base64 (no YAML-special characters); quote it anyway.
    GRAFANA_DATASOURCE
        .replace("__PROMETHEUS_USER__", user)
        .replace("__PROMETHEUS_PASSWORD__", &format!("\"{password}\""))
}

/// Replace `path` with `text`, readable by the owner only (never briefly world-readable).
fn write_private(path: &Path, text: &str) -> Result<(), StackError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Create a random password (24 bytes, URL-safe base64) in a new 0600 file unless one exists;
/// return the password.
pub fn ensure_password(path: &Path) -> Result<String, StackError> {
    if path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
        let pw = fs::read_to_string(path).map_err(io_err(path))?;
        return Ok(pw.trim().to_string());
    }
    let mut raw = [0u8; 24];
    let mut f = fs::File::open("/dev/urandom").map_err(io_err(Path::new("/dev/urandom")))?;
    std::io::Read::read_exact(&mut f, &mut raw).map_err(io_err(Path::new("/dev/urandom")))?;
    use base64::Engine as _;
    let pw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    out.write_all(pw.as_bytes()).map_err(io_err(path))?;
    Ok(pw)
}

/// The default state directory: `$FACTORYBENCH_MONITOR_DIR`, else `~/.factorybench/monitor`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FACTORYBENCH_MONITOR_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".factorybench").join("monitor")
}

/// One server of the stack as the endpoint file describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub port: u16,
    pub url: String,
}

/// `endpoint.json`: where the stack runs. Written on the node once every component answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub job_id: String,
    pub node: String,
    /// The address the servers listen on (the node's address, or 127.0.0.1).
    pub address: String,
    pub bind: BindMode,
    pub runtime: StackRuntime,
    pub prometheus: Component,
    pub pushgateway: Component,
    /// `None` when Grafana is not part of this stack (host runtime without Grafana).
    pub grafana: Option<Component>,
    pub grafana_user: String,
    pub grafana_password_file: PathBuf,
    /// Basic-auth user of Prometheus and the Pushgateway (absent: a stack without auth).
    #[serde(default)]
    pub auth_user: Option<String>,
    #[serde(default)]
    pub prometheus_password_file: Option<PathBuf>,
    #[serde(default)]
    pub pushgateway_password_file: Option<PathBuf>,
    /// `None` in endpoint files of stacks started before Alertmanager was part of them.
    #[serde(default)]
    pub alertmanager: Option<Component>,
    #[serde(default)]
    pub alertmanager_password_file: Option<PathBuf>,
    pub written_ns: i64,
}

pub fn component(address: &str, port: u16) -> Component {
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    Component {
        port,
        url: format!("http://{host}:{port}"),
    }
}

impl Endpoint {
    fn auth(&self, file: Option<&PathBuf>) -> Option<BasicAuth> {
        let (user, file) = (self.auth_user.as_deref()?, file?);
        match BasicAuth::from_file(user, file) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("monitoring credentials unreadable: {e}");
                None
            }
        }
    }

    /// Credentials for queries to this stack's Prometheus.
    pub fn prometheus_auth(&self) -> Option<BasicAuth> {
        self.auth(self.prometheus_password_file.as_ref())
    }

    /// Credentials for this stack's Alertmanager.
    pub fn alertmanager_auth(&self) -> Option<BasicAuth> {
        self.auth(self.alertmanager_password_file.as_ref())
    }

    /// Credentials for pushes to this stack's Pushgateway.
    pub fn pushgateway_auth(&self) -> Option<BasicAuth> {
        self.auth(self.pushgateway_password_file.as_ref())
    }

    pub fn read(state_dir: &Path) -> Option<Endpoint> {
        let text = fs::read_to_string(state_dir.join(ENDPOINT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Atomically replace the endpoint file.
    pub fn write(&self, state_dir: &Path) -> Result<(), StackError> {
        let p = state_dir.join(ENDPOINT_FILE);
        let tmp = state_dir.join(format!(".{ENDPOINT_FILE}.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).expect("endpoint serializes") + "\n";
        fs::write(&tmp, text).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &p).map_err(io_err(&p))
    }
}

/// The SLURM state of a job while it is queued or running; `None` once it has finished or
/// left slurmctld's memory, or when SLURM is not available here.
pub fn job_state(job_id: &str) -> Option<JobState> {
    let rows = crate::slurm::squeue().ok()?;
    rows.into_iter()
        .find(|r| r.job_id == job_id || r.array_job_id == job_id)
        .map(|r| r.state)
        .filter(|s| s.is_active())
}

/// Where a run pushes its live metrics, and with which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub url: String,
    pub auth: Option<BasicAuth>,
}

/// The Pushgateway a run pushes to: `PUSHGATEWAY_URL`, else the recipe's
/// `global.pushgateway_url`, else the one in the monitoring endpoint file when its job is still
/// running (stale files are ignored).
pub fn discover_pushgateway(recipe_url: Option<&str>, state_dir: &Path) -> Option<String> {
    discover_push_target(recipe_url, state_dir).map(|t| t.url)
}

/// The environment variable naming a Pushgateway; it takes precedence over the recipe.
pub const PUSHGATEWAY_ENV: &str = "PUSHGATEWAY_URL";

/// `PUSHGATEWAY_URL` when set and not empty.
pub fn pushgateway_from_env() -> Option<String> {
    std::env::var(PUSHGATEWAY_ENV)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Where live metrics go and which source decided it, in this precedence:
/// `PUSHGATEWAY_URL` (environment) > `global.pushgateway_url` (recipe) > the running
/// `monitor up` stack (its endpoint file).
pub fn pushgateway_with_source(
    recipe_url: Option<&str>,
    state_dir: &Path,
) -> Option<(String, &'static str)> {
    if let Some(u) = pushgateway_from_env() {
        return Some((u, "PUSHGATEWAY_URL"));
    }
    if let Some(u) = recipe_url {
        return Some((u.to_string(), "global.pushgateway_url"));
    }
    discover_push_target(None, state_dir).map(|t| (t.url, "the monitor up stack"))
}

/// [`discover_pushgateway`] with the stack's push credentials (none for a URL given by
/// `PUSHGATEWAY_URL` or the recipe; see [`pushgateway_with_source`] for the precedence).
pub fn discover_push_target(recipe_url: Option<&str>, state_dir: &Path) -> Option<PushTarget> {
    if let Some(u) = pushgateway_from_env().or(recipe_url.map(String::from)) {
        // A URL that names the running stack's Pushgateway (by its address, its node's name
        // or an address that node resolves to, as `monitor tunnel` and the seed's
        // `export PUSHGATEWAY_URL=http://<monitor-node>:9091` write it) uses the stack's
        // credentials: without them every push is refused with 401.
        // Any other Pushgateway: credentials from the environment (a 0600 password file).
        let auth = Endpoint::read(state_dir)
            .filter(|ep| names_stack_pushgateway(&u, ep))
            .filter(|ep| job_state(&ep.job_id) == Some(JobState::Running))
            .and_then(|ep| ep.pushgateway_auth())
            .or_else(pushgateway_auth_from_env);
        return Some(PushTarget { url: u, auth });
    }
    running_endpoint(state_dir).map(|ep| PushTarget {
        auth: ep.pushgateway_auth(),
        url: ep.pushgateway.url,
    })
}

/// The endpoint file of the stack while its job runs (stale files are ignored).
pub fn running_endpoint(state_dir: &Path) -> Option<Endpoint> {
    let ep = Endpoint::read(state_dir)?;
    match job_state(&ep.job_id) {
        Some(JobState::Running) => Some(ep),
        state => {
            tracing::debug!(
                "ignoring stale monitoring endpoint {} (job {} is {})",
                state_dir.join(ENDPOINT_FILE).display(),
                ep.job_id,
                state.map(|s| s.as_str()).unwrap_or("not running")
            );
            None
        }
    }
}

/// A file holding the basic-auth password of a Pushgateway that is not the stack's (0600).
pub const PUSHGATEWAY_PASSWORD_FILE_ENV: &str = "PUSHGATEWAY_PASSWORD_FILE";
/// The password itself, for pipelines that inject secrets into the environment.
pub const PUSHGATEWAY_PASSWORD_ENV: &str = "PUSHGATEWAY_PASSWORD";
/// The basic-auth user with either of them (default [`AUTH_USER`]).
pub const PUSHGATEWAY_USER_ENV: &str = "PUSHGATEWAY_USER";

/// Why no usable Pushgateway or credentials were found for a one-shot push.
#[derive(Debug, thiserror::Error)]
pub enum PushTargetError {
    #[error(
        "no Pushgateway: give --gateway URL, set {PUSHGATEWAY_ENV}, or start the stack with \
         `factorybench monitor up`"
    )]
    NoGateway,
    #[error(
        "{url}: credentials in the URL are refused (they would show in `ps` and the shell \
         history); put the password in a 0600 file named by {PUSHGATEWAY_PASSWORD_FILE_ENV}, \
         or in {PUSHGATEWAY_PASSWORD_ENV}"
    )]
    CredentialsInUrl { url: String },
    #[error("{path}: the password file is readable by others (mode {mode:o}); `chmod 600 {path}`")]
    OpenPasswordFile { path: PathBuf, mode: u32 },
    #[error(transparent)]
    Stack(#[from] StackError),
}

/// Where `factorybench push` sends a campaign, and how it found the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneShotTarget {
    pub target: PushTarget,
    /// `the monitor up stack`, `PUSHGATEWAY_PASSWORD_FILE`, `PUSHGATEWAY_PASSWORD` or `none`.
    pub credentials_from: &'static str,
}

/// The Pushgateway of a one-shot push and its credentials, never from the command line:
/// the URL is `gateway`, else `PUSHGATEWAY_URL`, else the stack's endpoint file. A URL that is
/// the stack's Pushgateway uses the stack's password file; any other uses
/// `PUSHGATEWAY_PASSWORD_FILE` (a 0600 file), else `PUSHGATEWAY_PASSWORD`, else none.
pub fn one_shot_target(
    gateway: Option<&str>,
    state_dir: &Path,
) -> Result<OneShotTarget, PushTargetError> {
    let ep = Endpoint::read(state_dir);
    let url = gateway
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .or_else(pushgateway_from_env)
        .or_else(|| ep.as_ref().map(|e| e.pushgateway.url.clone()))
        .ok_or(PushTargetError::NoGateway)?;
    if !crate::recipe::redact::url_credentials(&url).is_empty() {
        return Err(PushTargetError::CredentialsInUrl {
            url: crate::recipe::redact::url(&url),
        });
    }
    let url = url.trim_end_matches('/').to_string();
    if let Some(ep) = ep.filter(|e| e.pushgateway.url.trim_end_matches('/') == url) {
        if let Some(auth) = ep.pushgateway_auth() {
            return Ok(OneShotTarget {
                target: PushTarget {
                    url,
                    auth: Some(auth),
                },
                credentials_from: "the monitor up stack",
            });
        }
    }
    let user = std::env::var(PUSHGATEWAY_USER_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| AUTH_USER.to_string());
    if let Some(path) = std::env::var_os(PUSHGATEWAY_PASSWORD_FILE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let mode = fs::metadata(&path)
            .map_err(io_err(&path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(PushTargetError::OpenPasswordFile { path, mode });
        }
        return Ok(OneShotTarget {
            target: PushTarget {
                url,
                auth: Some(BasicAuth::from_file(&user, &path)?),
            },
            credentials_from: PUSHGATEWAY_PASSWORD_FILE_ENV,
        });
    }
    if let Some(pw) = std::env::var(PUSHGATEWAY_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(OneShotTarget {
            target: PushTarget {
                url,
                auth: Some(BasicAuth { user, password: pw }),
            },
            credentials_from: PUSHGATEWAY_PASSWORD_ENV,
        });
    }
    Ok(OneShotTarget {
        target: PushTarget { url, auth: None },
        credentials_from: "none",
    })
}

/// Basic auth for a Pushgateway named by URL, as for `push`: user `PUSHGATEWAY_USER` (default
/// the stack's user), password from the 0600 file `PUSHGATEWAY_PASSWORD_FILE`, else
/// `PUSHGATEWAY_PASSWORD`. A file others can read is refused (warned, not used).
pub fn pushgateway_auth_from_env() -> Option<BasicAuth> {
    let user = std::env::var(PUSHGATEWAY_USER_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| AUTH_USER.to_string());
    let Some(path) = std::env::var_os(PUSHGATEWAY_PASSWORD_FILE_ENV).filter(|p| !p.is_empty())
    else {
        return std::env::var(PUSHGATEWAY_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(|password| BasicAuth { user, password });
    };
    let path = std::path::PathBuf::from(path);
    use std::os::unix::fs::PermissionsExt;
    match fs::metadata(&path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            tracing::warn!(
                "live metrics: {} is readable by others (mode {:o}); not used: chmod 600 it",
                path.display(),
                m.permissions().mode() & 0o777
            );
            None
        }
        Ok(_) => BasicAuth::from_file(&user, &path).ok(),
        Err(e) => {
            tracing::warn!("live metrics: cannot read {}: {e}", path.display());
            None
        }
    }
}

/// Whether `url` reaches the Pushgateway of the stack described by `ep`: the same port, and a
/// host that is the stack's address, its node's name (short or qualified), or resolves to the
/// stack's address.
pub fn names_stack_pushgateway(url: &str, ep: &Endpoint) -> bool {
    use crate::recipe::endpoint::{port_of_url, url_host};
    let (Some(host), Some(port)) = (url_host(url), port_of_url(url)) else {
        return false;
    };
    if port != ep.pushgateway.port {
        return false;
    }
    let node_short = ep.node.split('.').next().unwrap_or(&ep.node);
    if host == ep.address || host == ep.node || host.split('.').next() == Some(node_short) {
        return true;
    }
    use std::net::ToSocketAddrs;
    (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip().to_string() == ep.address))
        .unwrap_or(false)
}

/// Poll `url` until it answers 2xx or the budget runs out.
pub async fn wait_http_ok(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&BasicAuth>,
    budget: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        let mut req = client.get(url).timeout(Duration::from_secs(2));
        if let Some(a) = auth {
            req = a.apply(req);
        }
        if let Ok(r) = req.send().await {
            if r.status().is_success() {
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The readiness URL of each component, with the credentials it needs.
pub fn ready_urls(ep: &Endpoint) -> Vec<(&'static str, String, Option<BasicAuth>)> {
    let mut v = vec![
        (
            "Prometheus",
            format!("{}/-/ready", ep.prometheus.url),
            ep.prometheus_auth(),
        ),
        (
            "Pushgateway",
            format!("{}/-/ready", ep.pushgateway.url),
            ep.pushgateway_auth(),
        ),
    ];
    if let Some(a) = &ep.alertmanager {
        v.push((
            "Alertmanager",
            format!("{}/-/ready", a.url),
            ep.alertmanager_auth(),
        ));
    }
    if let Some(g) = &ep.grafana {
        v.push(("Grafana", format!("{}/api/health", g.url), None));
    }
    v
}

/// The SSH command that forwards Grafana and Prometheus from a laptop through the login node.
pub fn tunnel_command(
    ep: &Endpoint,
    user: &str,
    login_host: &str,
    login_port: Option<u16>,
) -> Vec<String> {
    let mut args = vec!["ssh".to_string(), "-N".to_string()];
    let (target, via_jump) = match ep.bind {
        // Listening on the node's address: the login node can connect to it directly.
        BindMode::Node => (ep.node.clone(), false),
        // Loopback only: hop through the login node to the node and forward its 127.0.0.1.
        BindMode::Loopback => ("127.0.0.1".to_string(), true),
    };
    let mut forward = |port: u16| {
        args.push("-L".into());
        args.push(format!("localhost:{port}:{target}:{port}"));
    };
    // Grafana (when the stack has it), Prometheus, the Pushgateway, Alertmanager (when the
    // stack has it).
    if let Some(g) = &ep.grafana {
        forward(g.port);
    }
    forward(ep.prometheus.port);
    forward(ep.pushgateway.port);
    if let Some(a) = &ep.alertmanager {
        forward(a.port);
    }
    if via_jump {
        args.push("-J".into());
        args.push(match login_port {
            Some(p) => format!("{user}@{login_host}:{p}"),
            None => format!("{user}@{login_host}"),
        });
        args.push(format!("{user}@{}", ep.node));
    } else {
        if let Some(p) = login_port {
            args.push("-p".into());
            args.push(p.to_string());
        }
        args.push(format!("{user}@{login_host}"));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(runtime: StackRuntime, bind: BindMode) -> StackSpec {
        let mut s = StackSpec::new(
            PathBuf::from("/home/ana/.factorybench/monitor"),
            PathBuf::from("/opt/factory bench/bin/factorybench"),
        );
        s.runtime = runtime;
        s.bind = bind;
        s.partition = Some("gpu".into());
        s.time = Some("1-00:00:00".into());
        s
    }

    #[test]
    fn renders_apptainer_script() {
        insta::assert_snapshot!(spec(StackRuntime::Apptainer, BindMode::Node)
            .render()
            .unwrap());
    }

    #[test]
    fn renders_host_script() {
        insta::assert_snapshot!(spec(StackRuntime::Host, BindMode::Loopback)
            .render()
            .unwrap());
    }

    #[test]
    fn rejects_unsafe_values() {
        let mut s = spec(StackRuntime::Host, BindMode::Node);
        s.partition = Some("gpu\n#SBATCH --uid=0".into());
        assert!(matches!(
            s.render(),
            Err(StackError::BadValue {
                what: "partition",
                ..
            })
        ));
        let mut s = spec(StackRuntime::Host, BindMode::Node);
        s.state_dir = PathBuf::from("/tmp/a b");
        assert!(s.render().is_err());
        let mut s = spec(StackRuntime::Host, BindMode::Node);
        s.grafana_port = s.prometheus_port;
        assert!(s.render().is_err());
    }

    #[test]
    fn qos_and_extra_sbatch_options() {
        let mut s = spec(StackRuntime::Host, BindMode::Node);
        s.qos = Some("short".into());
        s.sbatch_extra = vec!["--reservation=demo".into(), "--exclusive".into()];
        let script = s.render().unwrap();
        assert!(script.contains("\n#SBATCH --qos=short\n"), "{script}");
        assert!(script.contains("\n#SBATCH --reservation=demo\n#SBATCH --exclusive\n"));
        for bad in ["reservation=x", "--x\n#SBATCH --uid=0", "--a b", "--"] {
            s.sbatch_extra = vec![bad.into()];
            assert!(
                matches!(
                    s.render(),
                    Err(StackError::BadValue {
                        what: "sbatch option",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    fn endpoint(bind: BindMode, grafana: bool) -> Endpoint {
        let addr = if bind == BindMode::Node {
            "10.1.2.3"
        } else {
            "127.0.0.1"
        };
        Endpoint {
            job_id: "42".into(),
            node: "gpu017".into(),
            address: addr.into(),
            bind,
            runtime: StackRuntime::Apptainer,
            prometheus: component(addr, 9090),
            pushgateway: component(addr, 9091),
            grafana: grafana.then(|| component(addr, 3000)),
            grafana_user: GRAFANA_USER.into(),
            grafana_password_file: "/home/ana/.factorybench/monitor/grafana-admin-password".into(),
            auth_user: Some(AUTH_USER.into()),
            prometheus_password_file: None,
            pushgateway_password_file: None,
            alertmanager: None,
            alertmanager_password_file: None,
            written_ns: 0,
        }
    }

    /// Issue 23, case 8: `PUSHGATEWAY_URL=http://<monitor-node>:9091` (the seed's habit) names
    /// the running stack, whose credentials are then used; another Pushgateway's URL does not.
    #[test]
    fn a_url_naming_the_stack_gets_its_credentials() {
        let ep = endpoint(BindMode::Node, true);
        assert!(names_stack_pushgateway("http://10.1.2.3:9091", &ep));
        assert!(names_stack_pushgateway("http://gpu017:9091/", &ep));
        assert!(names_stack_pushgateway(
            "http://gpu017.cluster.local:9091",
            &ep
        ));
        assert!(!names_stack_pushgateway("http://gpu017:9092", &ep));
        assert!(!names_stack_pushgateway("http://gpu018:9091", &ep));
        assert!(!names_stack_pushgateway("not a url", &ep));
    }

    /// Credentials for another Pushgateway come from a 0600 file named in the environment; a
    /// file others can read is not used.
    #[test]
    fn pushgateway_credentials_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        fs::write(&f, "s3cret\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        // The only test that sets these variables.
        std::env::set_var(PUSHGATEWAY_USER_ENV, "pusher");
        std::env::set_var(PUSHGATEWAY_PASSWORD_FILE_ENV, &f);
        assert!(
            pushgateway_auth_from_env().is_none(),
            "a 0644 file is refused"
        );
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let a = pushgateway_auth_from_env().expect("0600 file used");
        assert_eq!(a.user, "pusher");
        assert_eq!(a.password, "s3cret");
        std::env::remove_var(PUSHGATEWAY_USER_ENV);
        std::env::remove_var(PUSHGATEWAY_PASSWORD_FILE_ENV);
    }

    #[test]
    fn tunnel_commands() {
        assert_eq!(
            tunnel_command(&endpoint(BindMode::Node, true), "ana", "login1.example.org", None).join(" "),
            "ssh -N -L localhost:3000:gpu017:3000 -L localhost:9090:gpu017:9090 -L localhost:9091:gpu017:9091 ana@login1.example.org"
        );
        // MeluXina's login nodes listen on 8822.
        assert_eq!(
            tunnel_command(&endpoint(BindMode::Node, true), "ana", "login.lxp.lu", Some(8822)).join(" "),
            "ssh -N -L localhost:3000:gpu017:3000 -L localhost:9090:gpu017:9090 -L localhost:9091:gpu017:9091 -p 8822 ana@login.lxp.lu"
        );
        assert_eq!(
            tunnel_command(&endpoint(BindMode::Loopback, false), "ana", "login1", Some(8822)).join(" "),
            "ssh -N -L localhost:9090:127.0.0.1:9090 -L localhost:9091:127.0.0.1:9091 -J ana@login1:8822 ana@gpu017"
        );
    }

    #[test]
    fn install_writes_state_dir_with_private_password() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mon");
        let s = StackSpec::new(dir.clone(), PathBuf::from("/usr/bin/factorybench"));
        let script = s.install().unwrap();
        assert!(script.exists());
        let pw = dir.join(PASSWORD_FILE);
        let mode = fs::metadata(&pw).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = fs::read_to_string(&pw).unwrap();
        assert!(first.len() >= 24);
        s.install().unwrap();
        assert_eq!(fs::read_to_string(&pw).unwrap(), first, "password kept");
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(dir
            .join("config/grafana/dashboards/factorybench.json")
            .exists());
        assert_eq!(
            fs::read_to_string(dir.join("config/alerts.yml")).unwrap(),
            ALERTS_YML
        );
        // The generated password never appears in the script.
        assert!(!fs::read_to_string(&script).unwrap().contains(&first));
        // Prometheus and Pushgateway credentials: private files, bcrypt in the web configs,
        // the Prometheus password in Grafana's (private) datasource only.
        let prom = fs::read_to_string(dir.join(PROMETHEUS_PASSWORD_FILE)).unwrap();
        let pgw = fs::read_to_string(dir.join(PUSHGATEWAY_PASSWORD_FILE)).unwrap();
        assert!(prom.len() >= 24 && pgw.len() >= 24 && prom != pgw);
        for rel in [
            PROMETHEUS_PASSWORD_FILE,
            PUSHGATEWAY_PASSWORD_FILE,
            ALERTMANAGER_PASSWORD_FILE,
            PROMETHEUS_WEB_CONFIG,
            PUSHGATEWAY_WEB_CONFIG,
            ALERTMANAGER_WEB_CONFIG,
            ALERTMANAGER_CONFIG,
            DATASOURCE_FILE,
        ] {
            let mode = fs::metadata(dir.join(rel)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{rel}");
        }
        let web = fs::read_to_string(dir.join(PROMETHEUS_WEB_CONFIG)).unwrap();
        let hash = web
            .lines()
            .find_map(|l| l.strip_prefix("  factorybench: "))
            .unwrap();
        assert!(hash.starts_with("$2b$10$"), "{web}");
        assert!(bcrypt::verify(&prom, hash).unwrap());
        assert!(!web.contains(&prom));
        let ds = fs::read_to_string(dir.join(DATASOURCE_FILE)).unwrap();
        assert!(
            ds.contains(&format!("basicAuthPassword: \"{prom}\"")),
            "{ds}"
        );
        assert!(ds.contains("basicAuthUser: factorybench"), "{ds}");
        s.install().unwrap();
        assert_eq!(
            fs::read_to_string(dir.join(PROMETHEUS_PASSWORD_FILE)).unwrap(),
            prom,
            "kept across installs"
        );
    }

    #[test]
    fn stale_endpoint_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ep = endpoint(BindMode::Node, true);
        ep.job_id = "999999999".into();
        ep.write(tmp.path()).unwrap();
        assert_eq!(Endpoint::read(tmp.path()), Some(ep));
        assert_eq!(discover_pushgateway(None, tmp.path()), None);
        assert_eq!(
            discover_pushgateway(Some("http://pg:9091"), tmp.path()).as_deref(),
            Some("http://pg:9091")
        );
    }

    #[test]
    fn dashboard_uses_datasource_uid_only() {
        let v: serde_json::Value = serde_json::from_str(DASHBOARD_JSON).unwrap();
        fn walk(v: &serde_json::Value, n: &mut usize) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(ds) = m.get("datasource") {
                        assert_eq!(ds["uid"], "factorybench-prometheus", "{ds}");
                        assert!(ds.get("id").is_none());
                        *n += 1;
                    }
                    m.values().for_each(|x| walk(x, n));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, n)),
                _ => {}
            }
        }
        let mut n = 0;
        walk(&v, &mut n);
        assert!(n > 10);
        let names: Vec<&str> = v["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["campaign", "service"]);
    }
}
