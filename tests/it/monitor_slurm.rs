//! `monitor up` submits the monitoring job to the real single-node SLURM (scripts/start-slurm.sh)
//! with the host runtime (Debian Prometheus + Pushgateway; Grafana is not installable here),
//! waits until it is ready; `monitor status`, endpoint discovery for runs, `monitor down`.

use crate::common;

use factorybench::monitor::stack::{discover_pushgateway, Endpoint};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn monitor_up_status_down_on_slurm() {
    let Some(slurm) = common::server("slurm") else {
        return;
    };
    if common::server("prometheus").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("monitor");
    let (prom, pgw, graf, am) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    // On the multi-node test cluster the job runs on a node that is another host (its own
    // network namespace): its 127.0.0.1 is not this one's, so the stack binds the node's address.
    let node_addrs: Vec<String> = slurm
        .get("FB_TEST_SLURM_NODE_ADDRS")
        .map(|a| a.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let bind = if node_addrs.is_empty() {
        "loopback"
    } else {
        "node"
    };
    let out = common::bin()
        .args([
            "monitor",
            "up",
            "--runtime",
            "host",
            "--bind",
            bind,
            "--cpus",
            "1",
        ])
        .args(["--partition", &slurm["FB_TEST_SLURM_PARTITION"]])
        .args(
            slurm
                .get("FB_TEST_SLURM_ACCOUNT")
                .filter(|a| !a.is_empty())
                .map(|a| format!("--account={a}")),
        )
        .args([
            "--scrape-interval",
            "1s",
            "--retention",
            "1h",
            "--timeout",
            "180",
        ])
        .args(["--prometheus-port", &prom.to_string()])
        .args(["--pushgateway-port", &pgw.to_string()])
        .args(["--grafana-port", &graf.to_string()])
        .args(["--alertmanager-port", &am.to_string()])
        .arg("--state-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let ep = Endpoint::read(&dir);
    // Always cancel what we submitted, even when an assertion below fails.
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = common::bin()
                .args(["monitor", "down", "--state-dir"])
                .arg(&self.0)
                .output();
        }
    }
    let _down = Down(dir.clone());
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("monitoring stack ready"), "{stdout}");
    assert!(
        stdout.contains("note: Grafana is not installed"),
        "{stdout}"
    );
    let ep = ep.expect("endpoint file");
    if node_addrs.is_empty() {
        assert_eq!(ep.prometheus.url, format!("http://127.0.0.1:{prom}"));
    } else {
        assert!(node_addrs.contains(&ep.address), "{}", ep.address);
        assert_eq!(ep.prometheus.url, format!("http://{}:{prom}", ep.address));
    }
    assert!(ep.job_id.chars().all(|c| c.is_ascii_digit()));

    // status: running and every component answers.
    let st = common::bin()
        .args(["monitor", "status", "--json", "--state-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st.status.code(), Some(0), "{v}");
    assert_eq!(v["ready"], true);
    assert_eq!(v["components"]["pushgateway"]["answers"], true);
    assert_eq!(v["components"]["alertmanager"]["answers"], true, "{v}");
    // Under SLURM too, `monitor alerts` reaches the job's Alertmanager with its credentials.
    common::bin()
        .args(["monitor", "alerts", "--state-dir"])
        .arg(&dir)
        .assert()
        .success();

    // A run without pushgateway_url finds this live stack's Pushgateway.
    assert_eq!(
        discover_pushgateway(None, &dir).as_deref(),
        Some(ep.pushgateway.url.as_str())
    );

    // `monitor up` → `run` → live series: a run without pushgateway_url finds the stack through
    // FACTORYBENCH_MONITOR_DIR and its series reach the stack's own Prometheus while it runs.
    let campaign = format!("mon-slurm-{}", std::process::id());
    let recipe = tmp.path().join("recipe.yml");
    std::fs::write(
        &recipe,
        format!(
            "benchmark: {{name: \"{campaign}\"}}\nglobal: {{metrics_db: \"{db}\", push_interval: 0.5}}\nmonitoring: {{expect_stress: true}}\nservices:\n  - service_name: files\n    service_type: file_storage\n    base_path: \"{files}\"\n    client_count: 1\n    requests_per_second: 50\n    warmup: 0\n    duration: 6\n    operation_mix: {{write: 0.5, read: 0.5}}\n    file_sizes: {{\"4KB\": 1.0}}\n",
            db = tmp.path().join("run.db").display(),
            files = tmp.path().join("files").display(),
        ),
    )
    .unwrap();
    let mut run = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .args(["run", "--no-progress"])
        .arg(&recipe)
        .env("FACTORYBENCH_MONITOR_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let q = format!(
        "{}/api/v1/query?query=factorybench_requests_total%7Bcampaign%3D%22{campaign}%22%7D",
        ep.prometheus.url
    );
    // Prometheus answers only with the stack's generated credentials.
    let prom_auth = ep.prometheus_auth().expect("Prometheus credentials");
    let prom_user = format!("{}:{}", prom_auth.user, prom_auth.password);
    let anon = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &q])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "401");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut live = false;
    while Instant::now() < deadline && run.try_wait().unwrap().is_none() {
        let out = Command::new("curl")
            .args(["-fs", "-u", &prom_user, &q])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            live = run.try_wait().unwrap().is_none();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // 0, or 5 when the open-loop generator fell behind its 5 ms lag limit on a loaded test
    // machine (the run is then invalid, but its live series are what this test is about).
    let code = run.wait().unwrap().code();
    assert!(matches!(code, Some(0) | Some(5)), "run exited {code:?}");
    assert!(
        live,
        "the run's series never reached the stack's Prometheus while it ran"
    );
    // `monitoring.expect_stress`: the run silenced its own stress alerts in the stack's
    // Alertmanager (campaign and run_id matchers), for its planned duration plus a margin.
    let am = ep
        .alertmanager
        .as_ref()
        .expect("the stack has an Alertmanager");
    let am_auth = ep.alertmanager_auth().expect("Alertmanager credentials");
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-u",
            &format!("{}:{}", am_auth.user, am_auth.password),
        ])
        .arg(format!("{}/api/v2/silences", am.url))
        .output()
        .unwrap();
    let silences: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let ours: Vec<&serde_json::Value> = silences
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["createdBy"] == "factorybench run"
                && s["status"]["state"] == "active"
                && s["matchers"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["name"] == "campaign" && m["value"] == campaign.as_str())
                        && m.iter().any(|m| m["name"] == "run_id")
                        && m.iter().any(|m| {
                            m["name"] == "alertname"
                                && m["value"]
                                    .as_str()
                                    .is_some_and(|v| v.contains("FactorybenchRunFailing"))
                        })
                })
        })
        .collect();
    assert_eq!(ours.len(), 1, "{silences}");

    // Issue 23 case 8: the seed's habit, `export PUSHGATEWAY_URL=http://<monitor-node>:9091`,
    // names the running stack by its node's name: the run pushes with the stack's credentials
    // (before, every push got 401 and was only counted). Its failure count is 0.
    let by_node = format!("http://{}:{}", ep.node, ep.pushgateway.port);
    let db2 = tmp.path().join("run-by-node.db");
    let recipe2 = tmp.path().join("recipe-by-node.yml");
    std::fs::write(
        &recipe2,
        format!(
            "benchmark: {{name: \"{campaign}-by-node\"}}\nglobal: {{metrics_db: \"{db}\", push_interval: 0.5}}\nservices:\n  - service_name: files\n    service_type: file_storage\n    base_path: \"{files}\"\n    client_count: 1\n    requests_per_second: 20\n    warmup: 0\n    duration: 2\n    operation_mix: {{read: 1.0}}\n    file_sizes: {{\"4KB\": 1.0}}\n",
            db = db2.display(),
            files = tmp.path().join("files2").display(),
        ),
    )
    .unwrap();
    let out = common::bin()
        .args(["run", "--no-progress"])
        .arg(&recipe2)
        .env("FACTORYBENCH_MONITOR_DIR", &dir)
        .env("PUSHGATEWAY_URL", &by_node)
        .env_remove("PUSHGATEWAY_PASSWORD_FILE")
        .env_remove("PUSHGATEWAY_PASSWORD")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(5)),
        "run with PUSHGATEWAY_URL={by_node}: {out:?}"
    );
    assert!(!said.contains("401"), "{said}");
    let failures: f64 = rusqlite::Connection::open(&db2)
        .unwrap()
        .query_row(
            "SELECT value FROM run_metrics WHERE name = 'pushgateway_push_failures'",
            [],
            |r| r.get(0),
        )
        .expect("the run pushed (PUSHGATEWAY_URL) and counted its failures");
    // What the case is about is that no push was refused. On a starved machine (seen once,
    // the full suite on 2 cores) the run's bounded finish may cut its last pushes short; it
    // says so, and counts a final push it could not confirm as one failure.
    let cut_short = said.contains("did not end within") && failures == 1.0;
    assert!(
        failures == 0.0 || cut_short,
        "pushes to {by_node} failed: {said}"
    );

    // down: the job leaves the queue, the servers stop, the endpoint file goes.
    common::bin()
        .args(["monitor", "down", "--state-dir"])
        .arg(&dir)
        .assert()
        .success();
    assert!(Endpoint::read(&dir).is_none());
    assert_eq!(discover_pushgateway(None, &dir), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = Command::new("curl")
            .args(["-fs", "-o", "/dev/null", "--max-time", "1"])
            .arg(format!("{}/-/ready", ep.prometheus.url))
            .status()
            .is_ok_and(|s| s.success());
        if !up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus still answers after monitor down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = common::bin()
        .args(["monitor", "status", "--state-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
}
