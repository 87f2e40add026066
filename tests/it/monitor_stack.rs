//! The monitoring-stack job script with the host runtime: Prometheus and the Pushgateway
//! (Debian packages) really start, answer, and are found through the endpoint file; Grafana is
//! not installable here, so the host runtime skips it with a note. The script is run by bash
//! directly here (as SLURM's batch step would); tests/monitor_slurm.rs submits it to SLURM.

use crate::common;

use factorybench::monitor::push::{FinalState, GroupingKey, PushConfig, Pusher};
use factorybench::monitor::stack::{BasicAuth, BindMode, Endpoint, StackRuntime, StackSpec};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The HTTP status of a request (`PUT` with a body when `body` is given), with or without
/// basic auth (0 when nothing answered).
fn http_status(url: &str, auth: Option<&BasicAuth>, body: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ]);
    if let Some(a) = auth {
        cmd.arg("-u").arg(format!("{}:{}", a.user, a.password));
    }
    if let Some(b) = body {
        cmd.args(["-X", "PUT", "--data-binary", b]);
    }
    let out = cmd.arg(url).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn wait_until(what: &str, budget_s: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(budget_s);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn host_spec(dir: &Path) -> StackSpec {
    let mut s = StackSpec::new(
        dir.to_path_buf(),
        assert_cmd::cargo::cargo_bin("factorybench"),
    );
    s.runtime = StackRuntime::Host;
    s.bind = BindMode::Loopback;
    s.prometheus_port = common::free_port();
    s.pushgateway_port = common::free_port();
    s.grafana_port = common::free_port();
    s.alertmanager_port = common::free_port();
    s.scrape_interval = "1s".into();
    s.retention = "1h".into();
    s.ready_timeout_s = 60;
    s
}

#[test]
fn host_runtime_script_starts_the_stack_and_writes_the_endpoint() {
    // Needs the Debian prometheus packages (scripts/install-prometheus.sh).
    if common::server("prometheus").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("monitor");
    let spec = host_spec(&dir);
    let script = spec.install().unwrap();
    let job_id = format!("local{}", std::process::id());
    let (log, err) = (tmp.path().join("job.out"), tmp.path().join("job.err"));
    let mut job = Command::new("bash")
        .arg(&script)
        .env("SLURM_JOB_ID", &job_id)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    wait_until("endpoint.json", 90, || {
        Endpoint::read(&dir).is_some() || job.try_wait().unwrap().is_some()
    });
    let ep = Endpoint::read(&dir).unwrap_or_else(|| {
        panic!(
            "the job ended without an endpoint file:\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(&err).unwrap_or_default()
        )
    });
    assert_eq!(ep.job_id, job_id);
    assert_eq!(ep.address, "127.0.0.1");
    assert_eq!(ep.prometheus.port, spec.prometheus_port);
    assert!(ep.grafana.is_none(), "Grafana is not installable here");
    // Both servers require the generated credentials (issue 15): without them, or with a
    // wrong password, a query, a push and a delete are refused with 401.
    let prom_auth = ep.prometheus_auth().expect("Prometheus credentials");
    let pgw_auth = ep.pushgateway_auth().expect("Pushgateway credentials");
    assert_eq!(prom_auth.user, "factorybench");
    let wrong = BasicAuth {
        user: "factorybench".into(),
        password: "guess".into(),
    };
    let query = format!("{}/api/v1/query?query=up", ep.prometheus.url);
    let group = format!("{}/metrics/job/intruder", ep.pushgateway.url);
    for url in [&query, &format!("{}/-/ready", ep.prometheus.url)] {
        assert_eq!(http_status(url, None, None), 401, "{url}");
        assert_eq!(http_status(url, Some(&wrong), None), 401, "{url}");
        assert_eq!(http_status(url, Some(&prom_auth), None), 200, "{url}");
    }
    // Each server has its own password.
    assert_eq!(http_status(&query, Some(&pgw_auth), None), 401);
    let fake = "fake_series 1\n";
    assert_eq!(http_status(&group, None, Some(fake)), 401);
    assert_eq!(http_status(&group, Some(&wrong), Some(fake)), 401);
    assert_eq!(
        http_status(&format!("{}/-/ready", ep.pushgateway.url), None, None),
        401
    );
    assert_eq!(
        http_status(
            &format!("{}/-/ready", ep.pushgateway.url),
            Some(&pgw_auth),
            None
        ),
        200
    );

    // The runner's pusher with the credentials the endpoint file names works; without them
    // every push fails.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let push = |auth: Option<BasicAuth>, run_id: &str| {
        let cfg = PushConfig::new(
            &ep.pushgateway.url,
            GroupingKey::new("auth-test", "svc", run_id),
            0.2,
        )
        .with_auth(auth);
        rt.block_on(async {
            let p = Pusher::start(cfg, Vec::new());
            tokio::time::sleep(Duration::from_millis(500)).await;
            p.finish(FinalState {
                status: "success".into(),
            })
            .await
        })
    };
    let ok = push(Some(pgw_auth.clone()), "with-auth");
    assert!(
        ok.pushes_ok >= 2 && ok.pushes_failed == 0 && ok.deleted,
        "{ok:?}"
    );
    let refused = push(None, "without-auth");
    assert!(
        refused.pushes_ok == 0 && refused.pushes_failed >= 1,
        "{refused:?}"
    );

    // Prometheus scrapes this stack's Pushgateway (with its password) with honor_labels.
    let targets = format!("{}/api/v1/targets", ep.prometheus.url);
    wait_until("the Pushgateway target to be up", 30, || {
        let out = Command::new("curl")
            .args([
                "-fsS",
                "-u",
                &format!("factorybench:{}", prom_auth.password),
                &targets,
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["data"]["activeTargets"].as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["health"] == "up"
                    && t["scrapeUrl"].as_str().is_some_and(|u| {
                        u.contains(&format!("127.0.0.1:{}", spec.pushgateway_port))
                    })
            })
        })
    });

    // The tunnel command for a loopback stack hops through the login node to the node.
    let out = common::bin()
        .args([
            "monitor",
            "tunnel",
            "--login-host",
            "login1",
            "--user",
            "ana",
            "--state-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "ssh -N -L localhost:{p}:127.0.0.1:{p} -L localhost:{g}:127.0.0.1:{g} -L localhost:{a}:127.0.0.1:{a} -J ana@login1 ana@{}",
            ep.node,
            p = spec.prometheus_port,
            g = spec.pushgateway_port,
            a = spec.alertmanager_port
        )),
        "{text}"
    );
    assert!(
        text.contains("Grafana:    not part of this stack"),
        "{text}"
    );

    // --exec runs exactly that command (a recording ssh stands in for the real one).
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let rec = tmp.path().join("ssh-args");
    std::fs::write(
        bin.join("ssh"),
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", rec.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("ssh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    common::bin()
        .args([
            "monitor",
            "tunnel",
            "--exec",
            "--login-host",
            "login1",
            "--user",
            "ana",
            "--state-dir",
        ])
        .arg(&dir)
        .env("PATH", path)
        .assert()
        .success();
    let args = std::fs::read_to_string(&rec).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "-N",
            "-L",
            &format!("localhost:{p}:127.0.0.1:{p}", p = spec.prometheus_port),
            "-L",
            &format!("localhost:{g}:127.0.0.1:{g}", g = spec.pushgateway_port),
            "-L",
            &format!("localhost:{a}:127.0.0.1:{a}", a = spec.alertmanager_port),
            "-J",
            "ana@login1",
            &format!("ana@{}", ep.node)
        ]
    );

    // SIGTERM (what scancel sends) stops every component and removes the endpoint file.
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(job.id() as i32, libc::SIGTERM) };
    let status = job.wait().unwrap();
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status:?}: {out}");
    assert!(out.contains("note: Grafana is not installed"), "{out}");
    assert!(Endpoint::read(&dir).is_none());
    assert_eq!(
        http_status(&format!("{}/-/ready", ep.prometheus.url), None, None),
        0
    );
    assert_eq!(
        http_status(&format!("{}/-/ready", ep.pushgateway.url), None, None),
        0
    );
}

#[test]
fn tunnel_without_a_stack_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["monitor", "tunnel", "--state-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("monitor up"));
}

#[test]
fn bad_partition_is_invalid_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["monitor", "up", "--partition", "a b", "--state-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("partition"));
}

/// `monitor up`'s receiver flags become Alertmanager's configuration (0600); the Slack URL, a
/// secret, only goes into a 0600 copy Alertmanager reads; a webhook with credentials is refused
/// before anything is written. A stand-in `sbatch` that refuses keeps the real cluster out.
#[test]
fn receiver_flags_become_the_alertmanager_config() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("sbatch"),
        "#!/bin/sh\necho 'refused by the test' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let secret = "https://hooks.slack.example/services/T0/B0/s3cr3t-token";
    let slack = tmp.path().join("slack-hook");
    std::fs::write(&slack, format!("{secret}\n")).unwrap();
    let dir = tmp.path().join("monitor");
    let up = |extra: &[&str]| {
        common::bin()
            .args(["monitor", "up", "--state-dir"])
            .arg(&dir)
            .args(extra)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let out = up(&[
        "--alert-webhook",
        "http://10.0.0.5:8080/hook",
        "--alert-slack-url-file",
        slack.to_str().unwrap(),
        "--alert-slack-channel",
        "#bench",
        "--alert-email-to",
        "ops@example.org",
        "--alert-email-from",
        "factorybench@example.org",
        "--smtp-relay",
        "smtp.example.org:25",
        "--smtp-require-tls",
        "false",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused by the test"));
    let cfg_path = dir.join("config/alertmanager.yml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let copy = dir.join("slack-webhook-url");
    for (p, mode) in [(&cfg_path, 0o600), (&copy, 0o600)] {
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            mode,
            "{}",
            p.display()
        );
    }
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), secret);
    assert!(!cfg.contains("s3cr3t"), "{cfg}");
    for want in [
        "url: \"http://10.0.0.5:8080/hook\"",
        &format!("api_url_file: \"{}\"", copy.display()),
        "channel: \"#bench\"",
        "to: \"ops@example.org\"",
        "smarthost: \"smtp.example.org:25\"",
        "require_tls: false",
        "group_wait: 30s",
    ] {
        assert!(cfg.contains(want), "{want} missing:\n{cfg}");
    }
    let script = std::fs::read_to_string(dir.join("monitor.sbatch")).unwrap();
    assert!(!script.contains("s3cr3t"));

    let out = up(&["--alert-webhook", "https://ana:hunter2@hooks.example.org/x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("credentials on the command line are refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
