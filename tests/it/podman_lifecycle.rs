//! Issue 14: the rendered `runtime: podman` lifecycle, run for real with the locally built
//! PostgreSQL image (scripts/build-test-image.sh): start, readiness, binds, environment, the
//! benchmark, and stop on every exit path — normal end, SIGTERM (scancel / time limit),
//! USR1 (SLURM's warning before the time limit), failed readiness — with no container left.
//!
//! The recipe is the postgresql service as users write it (`service_url` without credentials,
//! `environment: {POSTGRES_PASSWORD, POSTGRES_DB}`): the run only succeeds when the container
//! and the client use the same user, password and database.
//!
//! Podman here needs `--runtime runc --cgroup-manager=cgroupfs` and explicit ulimits (see
//! containers/README.md); a site sets those in containers.conf, and so does this test
//! (`CONTAINERS_CONF`), so the rendered script is run unchanged. Skipped when Podman or the
//! image is missing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/factorybench-postgres:15";

fn podman_ready() -> bool {
    Command::new("podman")
        .args(["image", "exists", IMAGE])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn containers_conf(dir: &Path) -> PathBuf {
    // SAFETY: getrlimit with a valid out-pointer.
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    let n = if rl.rlim_max == libc::RLIM_INFINITY {
        1_048_576
    } else {
        rl.rlim_max
    };
    let p = dir.join("containers.conf");
    std::fs::write(
        &p,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={n}:{n}\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
        ),
    )
    .unwrap();
    p
}

fn podman(conf: &Path, args: &[&str]) -> String {
    let o = Command::new("podman")
        .env("CONTAINERS_CONF", conf)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Containers of this job (the script names them `fb-<service>-local-<pid>`), running or not.
fn left(conf: &Path, pid: u32) -> String {
    podman(
        conf,
        &[
            "ps",
            "-a",
            "--filter",
            &format!("name=^fb-pg-local-{pid}$"),
            "--format",
            "{{.Names}}",
        ],
    )
    .trim()
    .to_string()
}

struct Case {
    dir: tempfile::TempDir,
    conf: PathBuf,
    script: PathBuf,
    campaign: PathBuf,
}

fn compile(extra: &str, requests: &str) -> Case {
    let extra = if extra.contains("readiness_timeout") {
        extra.to_string()
    } else {
        format!("    readiness_timeout: 60\n{extra}")
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = containers_conf(dir.path());
    let port = common::free_port();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "bench-marker\n").unwrap();
    let recipe = dir.path().join("r.yml");
    std::fs::write(
        &recipe,
        format!(
            "benchmark: {{name: podman-lifecycle}}
services:
  - service_name: pg
    service_type: database
    backend: postgresql
    runtime: podman
    container_image: {IMAGE}
    service_url: postgresql://localhost:{port}
    environment:
      POSTGRES_PASSWORD: benchmark
      POSTGRES_DB: benchmark_db
      TZ: UTC
    binds: [\"{marker}:/etc/fb-marker:ro\"]
    table_name: items
    seed_rows: 50
    client_count: 2
    requests_per_second: 0
{requests}
{extra}
",
            marker = marker.display()
        ),
    )
    .unwrap();
    let campaign = dir.path().join("camp");
    let o = common::bin()
        .arg("compile")
        .arg(&recipe)
        .arg("--out")
        .arg(&campaign)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Case {
        script: campaign.join("scripts/pg.sbatch"),
        dir,
        conf,
        campaign,
    }
}

fn start(c: &Case) -> std::process::Child {
    Command::new("bash")
        .arg(&c.script)
        .env("FB_BIN", env!("CARGO_BIN_EXE_factorybench"))
        .env("CONTAINERS_CONF", &c.conf)
        .env("TMPDIR", c.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(p: &Path, budget: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn output(child: std::process::Child) -> (i32, String) {
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn podman_lifecycle_runs_for_real_and_leaves_nothing() {
    // scripts/start-podman.sh builds the image and writes podman.env.
    if common::server("podman").is_none() || !podman_ready() {
        eprintln!("skipped: podman or {IMAGE} missing (scripts/install-podman.sh, scripts/start-podman.sh)");
        return;
    }

    // 1. Normal end: the benchmark runs against the container with the shared credentials.
    let c = compile("", "    requests: 100");
    let child = start(&c);
    let pid = child.id();
    let (code, log) = output(child);
    assert_eq!(code, 0, "{log}");
    let runs: Vec<_> = std::fs::read_dir(c.campaign.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let rep = common::bin()
        .args(["report", "--format", "json"])
        .arg(&runs[0])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&rep.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&rep.stderr)));
    let run = &rep["analysis"]["runs"][0];
    assert_eq!(run["status"], "success", "{log}");
    assert_eq!(run["total"]["ok"], 100, "{log}");
    assert_eq!(run["total"]["errors"], 0, "{log}");
    assert_eq!(run["recipe"]["workload"]["database"], "benchmark_db");
    assert_eq!(
        left(&c.conf, pid),
        "",
        "normal end: a container is left\n{log}"
    );

    // 2. SIGTERM while the benchmark runs (scancel, the time limit): stopped and removed.
    //    While it runs: the bind and the environment reached the container.
    for sig in [libc::SIGTERM, libc::SIGUSR1] {
        let c = compile("", "    duration: 600");
        let child = start(&c);
        let pid = child.id();
        assert!(
            wait_for(
                &c.campaign.join("endpoints/pg.json"),
                Duration::from_secs(120)
            ),
            "never ready"
        );
        let name = format!("fb-pg-local-{pid}");
        let inspect = podman(
            &c.conf,
            &[
                "inspect",
                &name,
                "--format",
                "{{json .Mounts}} {{json .Config.Env}}",
            ],
        );
        assert!(inspect.contains("/etc/fb-marker"), "{inspect}");
        assert!(inspect.contains("POSTGRES_DB=benchmark_db"), "{inspect}");
        assert!(inspect.contains("POSTGRES_USER=factorybench"), "{inspect}");
        assert!(inspect.contains("TZ=UTC"), "{inspect}");
        // The password reaches the container by name, never through the script's text.
        let script = std::fs::read_to_string(&c.script).unwrap();
        assert!(
            !script.contains("benchmark\"") && !script.contains("=benchmark "),
            "{script}"
        );
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, sig) };
        let (code, log) = output(child);
        assert_ne!(code, 0, "signal {sig}: {log}");
        assert_eq!(
            left(&c.conf, pid),
            "",
            "signal {sig}: a container is left\n{log}"
        );
    }

    // 3. Failed readiness: the server refuses a bad setting and exits; the job gives up.
    let c = compile(
        "    readiness_timeout: 5\n    container_args: [\"-c\", \"no_such_setting_fb=1\"]",
        "    requests: 10",
    );
    let child = start(&c);
    let pid = child.id();
    let (code, log) = output(child);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("never became ready"), "{log}");
    assert_eq!(
        left(&c.conf, pid),
        "",
        "failed readiness: a container is left\n{log}"
    );

    // 4. `factorybench run` of the same recipe starts the container itself (the recipe names
    //    `runtime: podman`) with the same lifecycle, benchmarks it and removes it.
    let c = compile("", "    requests: 100");
    let db = c.dir.path().join("local.db");
    let o = Command::new(env!("CARGO_BIN_EXE_factorybench"))
        .args(["run", "--no-progress", "--db"])
        .arg(&db)
        .arg(c.dir.path().join("r.yml"))
        .env("CONTAINERS_CONF", &c.conf)
        .env("TMPDIR", c.dir.path())
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    common::assert_run_ok(&o);
    assert!(log.contains("starting the service (podman)"), "{log}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (status, ok): (String, i64) = conn
        .query_row(
            "SELECT status, (SELECT count(*) FROM requests WHERE ok = 1) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), ok), ("success", 100), "{log}");
    let all = podman(
        &c.conf,
        &[
            "ps",
            "-a",
            "--filter",
            "name=^fb-pg-local-",
            "--format",
            "{{.Names}}",
        ],
    );
    assert_eq!(all.trim(), "", "run left a container\n{log}");
}

/// Issue 26: a container that cannot start says why. Without the site's containers.conf
/// ulimits, runc cannot set the container's rlimits on this host: the run's failure message and
/// the job log carry Podman's own words (not only "could not start the service"), and
/// `doctor` starts a throwaway container of the image, so it fails the image there too (and
/// passes it with the site's containers.conf).
#[test]
fn podman_that_cannot_start_says_why_and_doctor_knows() {
    if common::server("podman").is_none() || !podman_ready() {
        eprintln!("skipped: podman or {IMAGE} missing");
        return;
    }
    let c = compile("", "    requests: 10");
    let bad = c.dir.path().join("no-ulimits.conf");
    std::fs::write(
        &bad,
        "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    let o = Command::new("bash")
        .arg(&c.script)
        .env("FB_BIN", env!("CARGO_BIN_EXE_factorybench"))
        .env("CONTAINERS_CONF", &bad)
        .env("TMPDIR", c.dir.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(log.contains("error setting rlimit"), "the job log: {log}");
    let db = std::fs::read_dir(c.campaign.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .expect("a run file");
    let msg: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT failure_message FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(
        msg.starts_with("could not start the service (podman): ") && msg.contains("rlimit"),
        "{msg}"
    );

    let recipe = c.campaign.join("recipe.yml");
    for (conf, ok) in [(&bad, false), (&c.conf, true)] {
        let o = common::bin()
            .args(["doctor", "--json"])
            .arg(&recipe)
            .arg("--monitor-dir")
            .arg(c.dir.path())
            .env("CONTAINERS_CONF", conf)
            .env_remove("PUSHGATEWAY_URL")
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        let check = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "image[pg]")
            .cloned()
            .unwrap_or_else(|| panic!("{v:#}"));
        if ok {
            assert_eq!(check["status"], "ok", "{check}");
            assert!(check["why"]
                .as_str()
                .unwrap()
                .contains("throwaway container"));
        } else {
            assert_eq!(check["status"], "fail", "{check}");
            assert!(check["why"].as_str().unwrap().contains("rlimit"), "{check}");
        }
    }
}
