//! The monitoring-stack job: render its batch script, install its configuration files into the
//! monitoring state directory, and read/write the endpoint file runners and `monitor tunnel` use.
//!
//! State directory (default `~/.factorybench/monitor`, `$FACTORYBENCH_MONITOR_DIR` or
//! `--state-dir`; it must be on a filesystem the compute nodes share, as home usually is):
//!
//! ```text
//! config/prometheus.yml                      monitoring/prometheus.yml (placeholders filled on the node)
//! config/alerts.yml                          monitoring/alerts.yml (alerting rules, next to the config)
//! config/grafana/provisioning/...            datasource (uid factorybench-prometheus) + dashboard provider
//! config/grafana/dashboards/factorybench.json
//! grafana-admin-password                     0600, generated once
//! monitor.sbatch                             the rendered job script
//! job_id                                     the last submitted job
//! endpoint.json                              written on the node once every component answers
//! logs/monitor-<jobid>.out, run/<jobid>/     job output and component logs
//! prometheus-data/, grafana-data/
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

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{what} {value:?} is not allowed: {why}")]
    BadValue {
        what: &'static str,
        value: String,
        why: &'static str,
    },
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
    /// SLURM time limit as sbatch takes it.
    pub time: Option<String>,
    pub mem: Option<String>,
    pub cpus: u32,
    pub prometheus_port: u16,
    pub pushgateway_port: u16,
    pub grafana_port: u16,
    /// Prometheus `--storage.tsdb.retention.time`.
    pub retention: String,
    /// Prometheus scrape interval (`5s`).
    pub scrape_interval: String,
    pub prometheus_image: String,
    pub pushgateway_image: String,
    pub grafana_image: String,
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
            time: None,
            mem: None,
            cpus: 2,
            prometheus_port: 9090,
            pushgateway_port: 9091,
            grafana_port: 3000,
            retention: "15d".into(),
            scrape_interval: "5s".into(),
            prometheus_image: "docker://prom/prometheus:v2.53.2".into(),
            pushgateway_image: "docker://prom/pushgateway:v1.9.0".into(),
            grafana_image: "docker://grafana/grafana-oss:11.2.0".into(),
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
        simple("time", &self.time)?;
        simple("mem", &self.mem)?;
        simple("retention", &Some(self.retention.clone()))?;
        simple("scrape interval", &Some(self.scrape_interval.clone()))?;
        let dir = self.state_dir.to_string_lossy();
        if !self.state_dir.is_absolute()
            || dir
                .chars()
                .any(|c| c.is_whitespace() || "\"'\\%$`".contains(c))
        {
            return Err(StackError::BadValue {
                what: "monitoring state directory",
                value: dir.to_string(),
                why: "it must be an absolute path without spaces, quotes, '%', '$' or backslashes (it appears in #SBATCH --output)",
            });
        }
        let ports = [
            self.prometheus_port,
            self.pushgateway_port,
            self.grafana_port,
        ];
        if ports.contains(&0)
            || ports[0] == ports[1]
            || ports[0] == ports[2]
            || ports[1] == ports[2]
        {
            return Err(StackError::BadValue {
                what: "ports",
                value: format!("{ports:?}"),
                why: "Prometheus, Pushgateway and Grafana need three different non-zero ports",
            });
        }
        Ok(())
    }

    /// The batch script (pure: no files touched).
    pub fn render(&self) -> Result<String, StackError> {
        self.validate()?;
        let mut env = minijinja::Environment::new();
        env.add_filter("shq", |v: String| shell_quote(&v));
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
            time => self.time,
            mem => self.mem,
            cpus => self.cpus,
            prometheus_port => self.prometheus_port,
            pushgateway_port => self.pushgateway_port,
            grafana_port => self.grafana_port,
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
                "config/grafana/provisioning/datasources/prometheus.yml",
                GRAFANA_DATASOURCE,
            ),
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
        let p = self.script_path();
        fs::write(&p, script).map_err(io_err(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).map_err(io_err(&p))?;
        Ok(p)
    }
}

/// POSIX single-quoting: safe for any value in any shell position.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Create a random Grafana admin password in a new 0600 file unless one exists.
pub fn ensure_password(path: &Path) -> Result<(), StackError> {
    if path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
        return Ok(());
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
    Ok(())
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

/// The Pushgateway a run pushes to: the recipe's `global.pushgateway_url`, else the one in the
/// monitoring endpoint file when its job is still running (stale files are ignored).
pub fn discover_pushgateway(recipe_url: Option<&str>, state_dir: &Path) -> Option<String> {
    if let Some(u) = recipe_url {
        return Some(u.to_string());
    }
    let ep = Endpoint::read(state_dir)?;
    match job_state(&ep.job_id) {
        Some(JobState::Running) => Some(ep.pushgateway.url),
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

/// Poll `url` until it answers 2xx or the budget runs out.
pub async fn wait_http_ok(client: &reqwest::Client, url: &str, budget: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await {
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

/// The readiness URL of each component.
pub fn ready_urls(ep: &Endpoint) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("Prometheus", format!("{}/-/ready", ep.prometheus.url)),
        ("Pushgateway", format!("{}/-/ready", ep.pushgateway.url)),
    ];
    if let Some(g) = &ep.grafana {
        v.push(("Grafana", format!("{}/api/health", g.url)));
    }
    v
}

/// The SSH command that forwards Grafana and Prometheus from a laptop through the login node.
pub fn tunnel_command(ep: &Endpoint, user: &str, login_host: &str) -> Vec<String> {
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
    if let Some(g) = &ep.grafana {
        forward(g.port);
    }
    forward(ep.prometheus.port);
    if via_jump {
        args.push("-J".into());
        args.push(format!("{user}@{login_host}"));
        args.push(format!("{user}@{}", ep.node));
    } else {
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
    fn quotes() {
        assert_eq!(shell_quote("/a/b"), "/a/b");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
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
            written_ns: 0,
        }
    }

    #[test]
    fn tunnel_commands() {
        assert_eq!(
            tunnel_command(&endpoint(BindMode::Node, true), "ana", "login1.example.org").join(" "),
            "ssh -N -L localhost:3000:gpu017:3000 -L localhost:9090:gpu017:9090 ana@login1.example.org"
        );
        assert_eq!(
            tunnel_command(&endpoint(BindMode::Loopback, false), "ana", "login1").join(" "),
            "ssh -N -L localhost:9090:127.0.0.1:9090 -J ana@login1 ana@gpu017"
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
