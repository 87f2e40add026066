//! The alerting rules of monitoring/alerts.yml: `promtool check rules` and `promtool test rules`
//! (monitoring/alerts.test.yml, every alert fired there at least once), and one alert fired for
//! real: the monitoring job (host runtime: the Debian Prometheus and Pushgateway) loads the rules,
//! a runner's pusher pushes and then dies without its final push, and Prometheus reports
//! `FactorybenchRunStalled` firing for that run and nothing for a run that ended normally. The
//! job's Alertmanager (Debian `prometheus-alertmanager`) routes that alert to a webhook receiver
//! this test runs on loopback; a campaign silence keeps the stress alerts of another run
//! (`FactorybenchRunFailing`) from it, and `monitor alerts` lists both. `factorybench push`
//! finds the stack's Pushgateway and credentials by itself.
//! Skipped when the Debian `prometheus` package is not installed, unless FB_REQUIRE_SERVERS=1.

use crate::common;

use factorybench::monitor::expo::Exposition;
use factorybench::monitor::live::LiveSource;
use factorybench::monitor::push::{node_name, FinalState, GroupingKey, PushConfig, Pusher};
use factorybench::monitor::stack::{BindMode, Endpoint, StackRuntime, StackSpec, ALERTS_YML};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether every program is on PATH; otherwise skip (or fail under FB_REQUIRE_SERVERS=1).
fn have(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FB_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{missing:?} required (FB_REQUIRE_SERVERS=1): run scripts/install-prometheus.sh");
    }
    eprintln!("SKIPPED: {missing:?} not installed (scripts/install-prometheus.sh)");
    false
}

fn alert_names() -> Vec<String> {
    ALERTS_YML
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    if !have(&["promtool"]) {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo().join("monitoring/alerts.yml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 11 rules found"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");

    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(repo().join("monitoring/alerts.test.yml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Each alert has at least one unit test where it fires (a non-empty `exp_alerts`).
#[test]
fn every_alert_fires_in_a_unit_test() {
    let tests = std::fs::read_to_string(repo().join("monitoring/alerts.test.yml")).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let names = alert_names();
    assert_eq!(names.len(), 9, "{names:?}");
    for name in &names {
        let fires = lines
            .windows(2)
            .any(|w| w[0] == format!("alertname: {name}") && w[1] == "exp_alerts:");
        assert!(
            fires,
            "{name}: no unit test in alerts.test.yml expects it to fire"
        );
    }
}

fn get_json(url: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "5", url])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn wait_until(what: &str, budget_s: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(budget_s);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {budget_s} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pushgateway_has(pgw: &str, run_id: &str) -> bool {
    get_json(&format!("{pgw}/api/v1/metrics"))["data"]
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g["labels"]["run_id"] == run_id))
}

/// The monitoring job, run by bash as SLURM's batch step would; SIGTERM (scancel) on drop.
struct Job {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A webhook receiver on loopback: every POST body it gets goes to the channel.
fn webhook_receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let (_, body) =
                common::read_http_request(&mut std::io::BufReader::new(conn.try_clone().unwrap()));
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    (url, rx)
}

/// A run whose requests mostly fail: each push reports 10 more requests, 9 of them timeouts.
#[derive(Default)]
struct Failing(AtomicU64);

impl LiveSource for Failing {
    fn render(&self, e: &mut Exposition) {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        e.counter("requests_total", "Requests.", (n * 10) as f64);
        e.family(
            "request_errors_total",
            factorybench::monitor::expo::MetricType::Counter,
            "Errors.",
        )
        .sample(
            "request_errors_total",
            &[("class", "timeout")],
            (n * 9) as f64,
        );
    }
}

/// The monitoring job (host runtime, loopback, free ports, 1 s scrape and evaluation), with
/// `adjust` applied to its spec.
fn start_stack(dir: &Path, tmp: &Path, adjust: impl FnOnce(&mut StackSpec)) -> (Job, Endpoint) {
    let mut s = StackSpec::new(
        dir.to_path_buf(),
        assert_cmd::cargo::cargo_bin("factorybench"),
    );
    s.runtime = StackRuntime::Host;
    s.bind = BindMode::Loopback;
    s.prometheus_port = common::free_port();
    s.pushgateway_port = common::free_port();
    s.grafana_port = common::free_port();
    // Also Prometheus' evaluation interval: rules are evaluated every second.
    s.scrape_interval = "1s".into();
    s.retention = "1h".into();
    s.ready_timeout_s = 60;
    s.alertmanager_port = common::free_port();
    adjust(&mut s);
    let script = s.install().unwrap();
    let log = tmp.join("job.out");
    let child = Command::new("bash")
        .arg(&script)
        .env("SLURM_JOB_ID", format!("alerts{}", std::process::id()))
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(tmp.join("job.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut job = Job { child, log };
    wait_until("the monitoring job's endpoint.json", 90, || {
        Endpoint::read(dir).is_some() || job.child.try_wait().unwrap().is_some()
    });
    let ep = Endpoint::read(dir).unwrap_or_else(|| {
        panic!(
            "the monitoring job ended without an endpoint file:\n{}\n{}",
            std::fs::read_to_string(&job.log).unwrap_or_default(),
            std::fs::read_to_string(tmp.join("job.err")).unwrap_or_default()
        )
    });
    (job, ep)
}

#[test]
fn a_runner_that_dies_fires_run_stalled_in_the_monitoring_jobs_prometheus() {
    if !have(&[
        "prometheus",
        "prometheus-pushgateway",
        "prometheus-alertmanager",
    ]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("monitor");
    let (hook_url, hooks) = webhook_receiver();
    let (_job, ep) = start_stack(&dir, tmp.path(), |s| {
        s.receivers.webhooks = vec![hook_url.clone()];
        s.alert_group_wait = "1s".into();
    });
    // Alertmanager has the stack's basic auth, like Prometheus and the Pushgateway.
    let am = ep
        .alertmanager
        .clone()
        .expect("the stack has an Alertmanager");
    let status = |auth: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(auth)
            .arg(format!("{}/api/v2/alerts", am.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let am_auth = ep.alertmanager_auth().expect("Alertmanager credentials");
    assert_eq!(status(&[]), "401");
    assert_eq!(status(&["-u", "factorybench:guess"]), "401");
    assert_eq!(
        status(&["-u", &format!("factorybench:{}", am_auth.password)]),
        "200"
    );
    let run_cli = |args: &[&str]| {
        let out = common::bin()
            .args(args)
            .arg("--state-dir")
            .arg(&dir)
            .env_remove("PUSHGATEWAY_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        out
    };
    let cli = |args: &[&str]| {
        let out = run_cli(args);
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    // The stack requires basic auth: curl gets the credentials in the URL, pushers their own.
    let with_auth = |url: &str, auth: Option<factorybench::monitor::stack::BasicAuth>| match auth {
        Some(a) => url.replacen("://", &format!("://{}:{}@", a.user, a.password), 1),
        None => url.to_string(),
    };
    let prom = with_auth(&ep.prometheus.url, ep.prometheus_auth());
    let pgw = with_auth(&ep.pushgateway.url, ep.pushgateway_auth());
    let pgw_auth = ep.pushgateway_auth();

    // The job's Prometheus loaded every rule of monitoring/alerts.yml.
    let rules = get_json(&format!("{prom}/api/v1/rules?type=alert"));
    let loaded: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(loaded, alert_names(), "{rules}");
    if have(&["promtool"]) {
        let cfg = dir
            .join("run")
            .join(format!("alerts{}", std::process::id()))
            .join("prometheus.yml");
        let out = Command::new("promtool")
            .args(["check", "config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    // Two runners push every 0.5 s: "ok" ends normally (final push, group deleted); "dead"
    // stops without a final push, as when SLURM kills the runner.
    let campaign = format!("alerts-{}", std::process::id());
    // This campaign stresses its service on purpose: its stress alerts are silenced.
    let said = cli(&[
        "monitor",
        "silence",
        "--campaign",
        &campaign,
        "--for",
        "10m",
    ]);
    assert!(said.contains("FactorybenchRunFailing"), "{said}");
    // A third runner whose requests mostly fail keeps pushing (its own runtime) until the end.
    let stress_rt = tokio::runtime::Runtime::new().unwrap();
    let stress = stress_rt.block_on(async {
        Pusher::start(
            PushConfig::new(
                &ep.pushgateway.url,
                GroupingKey::new(&campaign, "pg", "stress"),
                0.5,
            )
            .with_auth(pgw_auth.clone()),
            vec![Arc::new(Failing::default()) as Arc<dyn LiveSource>],
        )
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dead, ok) = rt.block_on(async {
        let start = |run_id: &str| {
            Pusher::start(
                PushConfig::new(
                    &ep.pushgateway.url,
                    GroupingKey::new(&campaign, "pg", run_id),
                    0.5,
                )
                .with_auth(pgw_auth.clone()),
                Vec::<std::sync::Arc<dyn LiveSource>>::new(),
            )
        };
        (start("dead"), start("ok"))
    });
    wait_until("both groups on the Pushgateway", 30, || {
        pushgateway_has(&pgw, "dead") && pushgateway_has(&pgw, "ok")
    });
    let summary = rt.block_on(ok.finish(FinalState {
        status: "success".into(),
    }));
    assert!(summary.deleted, "{summary:?}");
    // Drop the pusher task mid-run with its runtime (no final push, no delete: the runner is
    // gone); only then drop its handle, which would otherwise trigger the final push.
    rt.shutdown_timeout(Duration::from_secs(10));
    drop(dead);
    assert!(pushgateway_has(&pgw, "dead"));

    // 3 × 0.5 s + 30 s after its last push, evaluated every second.
    let mut firing = serde_json::Value::Null;
    wait_until("FactorybenchRunStalled to fire", 120, || {
        let alerts = get_json(&format!("{prom}/api/v1/alerts"));
        let list = alerts["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Only this test's campaign (series of other runs may share the machine).
        let list: Vec<serde_json::Value> = list
            .into_iter()
            .filter(|a| a["labels"]["campaign"] == campaign.as_str())
            .collect();
        assert!(
            !list.iter().any(|a| a["labels"]["run_id"] == "ok"),
            "an alert for the run that ended normally: {alerts}"
        );
        match list.into_iter().find(|a| {
            a["labels"]["alertname"] == "FactorybenchRunStalled"
                && a["labels"]["run_id"] == "dead"
                && a["state"] == "firing"
        }) {
            Some(a) => {
                firing = a;
                true
            }
            None => false,
        }
    });
    let l = &firing["labels"];
    assert_eq!(l["severity"], "critical");
    assert_eq!(l["job"], "factorybench");
    assert_eq!(l["instance"], node_name().as_str());
    assert_eq!(l["campaign"], campaign.as_str());
    assert_eq!(l["service"], "pg");
    let summary = firing["annotations"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summary.starts_with("pg: run dead stopped pushing "),
        "{firing}"
    );

    // Alertmanager routed it to the webhook: the payload names the campaign, the service and
    // the value (in the summary).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = Vec::new();
    let stalled = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let payload = hooks
            .recv_timeout(left)
            .expect("no webhook payload for FactorybenchRunStalled within 60 s");
        received.push(payload.clone());
        if payload["commonLabels"]["alertname"] == "FactorybenchRunStalled"
            && payload["commonLabels"]["campaign"] == campaign.as_str()
        {
            break payload;
        }
    };
    eprintln!(
        "webhook payload: {}",
        serde_json::to_string_pretty(&stalled).unwrap()
    );
    let alert = &stalled["alerts"][0];
    assert_eq!(stalled["status"], "firing", "{stalled}");
    assert_eq!(alert["labels"]["campaign"], campaign.as_str());
    assert_eq!(alert["labels"]["service"], "pg");
    assert_eq!(alert["labels"]["run_id"], "dead");
    let text = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("pg: run dead stopped pushing ")
            && text.ends_with(" ago")
            && text.chars().any(|c| c.is_ascii_digit()),
        "{stalled}"
    );

    // The stress run's FactorybenchRunFailing reaches Alertmanager but is silenced: listed by
    // `monitor alerts`, never sent to the receiver.
    let mut listed = serde_json::Value::Null;
    wait_until(
        "FactorybenchRunFailing, silenced, in Alertmanager",
        90,
        || {
            listed = serde_json::from_slice(
                &run_cli(&["monitor", "alerts", "--json", "--campaign", &campaign]).stdout,
            )
            .unwrap_or_default();
            listed.as_array().is_some_and(|l| {
                l.iter().any(|a| {
                    a["name"] == "FactorybenchRunFailing"
                        && a["run_id"] == "stress"
                        && a["state"] == "suppressed"
                        && !a["silenced_by"].as_array().unwrap().is_empty()
                })
            })
        },
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "FactorybenchRunStalled" && a["state"] == "active"),
        "{listed}"
    );
    let table = cli(&["monitor", "alerts"]);
    assert!(
        table.contains("silenced") && table.contains(&campaign),
        "{table}"
    );
    received.extend(hooks.try_iter());
    assert!(
        !received
            .iter()
            .any(|p| p["commonLabels"]["alertname"] == "FactorybenchRunFailing"),
        "a silenced alert reached the receiver: {received:?}"
    );
    let s = stress_rt.block_on(stress.finish(FinalState {
        status: "success".into(),
    }));
    assert!(s.deleted, "{s:?}");

    // `factorybench push` of a finished campaign finds the stack and its credentials itself.
    // A campaign directory: its runs pushed live under the directory's name, and so does push.
    let db = crate::reportdb::standard_campaign(tmp.path());
    let said = cli(&["push", db.to_str().unwrap()]);
    assert!(
        said.contains("pushed 4 of 4 groups (job factorybench_campaign, campaign campaign)")
            && said.contains("credentials: the monitor up stack"),
        "{said}"
    );
    let groups = get_json(&format!("{pgw}/api/v1/metrics"));
    assert!(
        groups["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["labels"]["job"] == "factorybench_campaign"
                && g["labels"]["campaign"] == "campaign"
                && g["labels"]["run_id"] == "run-std"),
        "{groups}"
    );
    // The same Pushgateway under another name is not the stack's as far as `push` knows: no
    // credentials (refused, 401), unless a 0600 file or the environment gives them.
    let other_name = ep.pushgateway.url.replace("127.0.0.1", "localhost");
    let push_to = |env: &[(&str, &str)]| {
        let mut cmd = common::bin();
        cmd.args([
            "push",
            db.to_str().unwrap(),
            "--gateway",
            &other_name,
            "--job",
            "other",
        ])
        .arg("--state-dir")
        .arg(&dir)
        .env_remove("PUSHGATEWAY_PASSWORD_FILE")
        .env_remove("PUSHGATEWAY_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let refused = push_to(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("credentials: none"),
        "{err}"
    );
    let pw_file = dir.join("pushgateway-password");
    let ok = push_to(&[("PUSHGATEWAY_PASSWORD_FILE", pw_file.to_str().unwrap())]);
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{err}");
    assert!(
        err.contains("credentials: PUSHGATEWAY_PASSWORD_FILE"),
        "{err}"
    );
    let password = pgw_auth.as_ref().unwrap().password.clone();
    let ok = push_to(&[("PUSHGATEWAY_PASSWORD", &password)]);
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{err}");
    assert!(!err.contains(&password), "{err}");
}
