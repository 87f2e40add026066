//! Issue 14: `factorybench run` starts the service itself when the recipe names its runtime,
//! with the same lifecycle as the batch script (it runs the compiled script): start, readiness,
//! the run, and stop on every exit path — normal end, SIGTERM, failed readiness — with the
//! service's process gone afterwards. `runtime: host` with the real fb-testserver binary (no
//! container runtime needed); the Podman case is in podman_lifecycle.rs.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

/// A recipe whose service is the real fb-testserver started with `runtime: host`.
fn recipe(dir: &Path, port: u16, start: &[String], extra: &str) -> PathBuf {
    let start_yaml: Vec<String> = start.iter().map(|w| format!("\"{w}\"")).collect();
    let extra = if extra.contains("readiness_timeout") {
        extra.to_string()
    } else {
        format!("    readiness_timeout: 20\n{extra}")
    };
    let p = dir.join("r.yml");
    std::fs::write(
        &p,
        format!(
            "benchmark: {{name: run-starts}}
global: {{metrics_db: {db}}}
services:
  - service_name: web
    service_type: http
    runtime: host
    start_command: [{start}]
    url: http://127.0.0.1:{port}/
{extra}",
            db = dir.join("camp.db").display(),
            start = start_yaml.join(", "),
        ),
    )
    .unwrap();
    p
}

fn server_argv(port: u16) -> Vec<String> {
    vec![
        env!("CARGO_BIN_EXE_fb-testserver").to_string(),
        "--port".into(),
        port.to_string(),
    ]
}

fn runs(db: &Path) -> Vec<(String, String, i64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT r.status, coalesce(r.failure_stage, ''), \
             (SELECT count(*) FROM requests q WHERE q.run_id = r.run_id) FROM runs r",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn run_starts_a_host_service_benchmarks_it_and_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let r = recipe(
        dir.path(),
        port,
        &server_argv(port),
        "    client_count: 2\n    requests_per_second: 0\n    requests: 300\n",
    );
    let o = common::bin()
        .current_dir(dir.path())
        .args(["run", "--no-progress"])
        .arg(&r)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    common::assert_run_ok(&o);
    assert!(
        err.contains("starting the service (host)"),
        "run says it starts the service: {err}"
    );
    assert!(err.contains("ready: web answered"), "{err}");
    // The summary on stdout is the one `run` prints for in-place runs, from the campaign file.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("web"), "{out}");
    let rows = runs(&dir.path().join("camp.db"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "success", "{rows:?}");
    assert_eq!(rows[0].2, 300, "every request recorded: {rows:?}");
    assert!(!port_open(port), "the service was stopped after the run");

    // --no-start benchmarks what runs there: nothing does now, so the run fails (connection
    // refused on every request) instead of starting a server.
    let o = common::bin()
        .current_dir(dir.path())
        .args(["run", "--no-progress", "--no-start", "--db"])
        .arg(dir.path().join("nostart.db"))
        .arg(&r)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("starting the service"), "{err}");
    assert_ne!(o.status.code(), Some(0), "{err}");
}

#[test]
fn run_stops_the_started_service_on_sigterm_and_keeps_a_partial_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let r = recipe(
        dir.path(),
        port,
        &server_argv(port),
        "    client_count: 2\n    requests_per_second: 50\n    duration: 60\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_factorybench"))
        .current_dir(dir.path())
        .args(["run", "--no-progress"])
        .arg(&r)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the service answers and the run has recorded requests, then SIGTERM `run`.
    let t0 = Instant::now();
    while !port_open(port) && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(port_open(port), "the service was started");
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t1 = Instant::now();
    let o = child_output(&mut child, Duration::from_secs(40));
    assert!(
        t1.elapsed() < Duration::from_secs(30),
        "run stopped promptly"
    );
    assert_eq!(o.0, Some(3), "exit 3 (partial): {}", o.1);
    let rows = runs(&dir.path().join("camp.db"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "partial", "{rows:?}");
    assert!(rows[0].2 > 0, "finished requests kept: {rows:?}");
    assert!(!port_open(port), "the service was stopped");
}

#[test]
fn run_records_a_service_that_never_becomes_ready_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    // A "server" that lives but never listens: readiness runs out, the script stops it.
    let marker = dir.path().join("sleeper");
    let r = recipe(
        dir.path(),
        port,
        &[
            "bash".into(),
            "-c".into(),
            format!("echo $$ > {}; exec sleep 300", marker.display()),
        ],
        "    readiness_timeout: 2\n    client_count: 1\n    requests: 10\n",
    );
    let o = common::bin()
        .current_dir(dir.path())
        .args(["run", "--no-progress"])
        .arg(&r)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("never became ready"), "{err}");
    let rows = runs(&dir.path().join("camp.db"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("failed", "setup")
    );
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) with signal 0 only probes.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the service process {pid} was stopped");
}

fn child_output(child: &mut std::process::Child, budget: Duration) -> (Option<i32>, String) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut s = String::new();
            use std::io::Read;
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut s);
            }
            return (st.code(), s);
        }
        if t0.elapsed() > budget {
            let _ = child.kill();
            panic!("run did not end within {budget:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 26: the service dies mid-run (SIGKILL, as an OOM kill would). The batch script sees
/// it exit, the runner stops within a few seconds instead of loading a dead port for the rest
/// of the run, and the run ends `failed` with "the service exited (signal KILL) at T", its
/// rows kept; the report shows `failed`, never `success`.
#[test]
fn run_names_a_service_that_dies_mid_run_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let marker = dir.path().join("server.pid");
    let r = recipe(
        dir.path(),
        port,
        &[
            "bash".into(),
            "-c".into(),
            format!(
                "echo $$ > {}; exec {} --port {port}",
                marker.display(),
                env!("CARGO_BIN_EXE_fb-testserver")
            ),
        ],
        "    client_count: 2\n    requests_per_second: 50\n    duration: 60\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_factorybench"))
        .current_dir(dir.path())
        .args(["run", "--no-progress"])
        .arg(&r)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !port_open(port) && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(port_open(port), "the service was started");
    std::thread::sleep(Duration::from_secs(3));
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the test's own service process (its pid written by itself).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let t1 = Instant::now();
    let (code, err) = child_output(&mut child, Duration::from_secs(40));
    let stopped_in = t1.elapsed();
    assert!(
        stopped_in < Duration::from_secs(10),
        "run stopped {stopped_in:?} after the service died (the run was 60 s): {err}"
    );
    assert_eq!(code, Some(1), "exit 1 (a run failed): {err}");
    assert!(
        err.contains("the service exited (signal KILL) at "),
        "{err}"
    );
    let c = rusqlite::Connection::open(dir.path().join("camp.db")).unwrap();
    let (status, stage, message, stop, rows): (String, String, String, String, i64) = c
        .query_row(
            "SELECT status, failure_stage, failure_message, stop_reason, \
             (SELECT count(*) FROM requests) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), stage.as_str()), ("failed", "benchmark"));
    assert_eq!(stop, "service_exited");
    assert!(
        message.starts_with("the service exited (signal KILL) at 20"),
        "{message}"
    );
    assert!(rows >= 100, "the rows of the 3 s before are kept: {rows}");
    let rep = common::bin()
        .args(["report", "--json"])
        .arg(dir.path().join("camp.db"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    let run = &v["analysis"]["runs"][0];
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["failure_message"]
            .as_str()
            .unwrap()
            .contains("the service exited (signal KILL)"),
        "{run}"
    );
}

/// Issue 26, never measure someone else's server: the port answers, but the listening socket
/// belongs to a process outside the tree of the service this job started (here the "service"
/// only sleeps and a stranger's server, detached from it, holds the port, as another job's
/// server would after both passed the "port free" check). Readiness refuses it: the run fails
/// at setup saying so, and not one request is measured against the stranger.
#[test]
fn run_refuses_to_measure_a_server_it_did_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let pidfile = dir.path().join("stranger.pid");
    let r = recipe(
        dir.path(),
        port,
        &[
            "bash".into(),
            "-c".into(),
            format!(
                "( {} --port {port} >/dev/null 2>&1 & echo $! > {} ); exec sleep 300",
                env!("CARGO_BIN_EXE_fb-testserver"),
                pidfile.display()
            ),
        ],
        "    client_count: 1\n    requests: 50\n",
    );
    let o = common::bin()
        .current_dir(dir.path())
        .args(["run", "--no-progress"])
        .arg(&r)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if let Ok(p) = std::fs::read_to_string(&pidfile) {
        if let Ok(p) = p.trim().parse::<i32>() {
            // SAFETY: kill(2) on the stranger server this test started.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("ready: REFUSED"), "{err}");
    assert!(err.contains("fb-testserver"), "the holder is named: {err}");
    let rows = runs(&dir.path().join("camp.db"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2),
        ("failed", "setup", 0)
    );
    let msg: String = rusqlite::Connection::open(dir.path().join("camp.db"))
        .unwrap()
        .query_row("SELECT failure_message FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(
        msg.contains("answers, but from a server this job did not start"),
        "{msg}"
    );
}

/// Issue 26: the service stops answering while its process lives on (here its server child
/// is killed and the port closes; a hung server times out the same way): after 5 s of connect
/// errors and timeouts without one success the run stops, failed, "the service stopped
/// answering at T", rows kept, well before its 60 s.
#[test]
fn run_names_a_service_that_stops_answering() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let r = recipe(
        dir.path(),
        port,
        &[
            "bash".into(),
            "-c".into(),
            format!(
                "{} --port {port} & s=$!; sleep 4; kill -9 $s; exec sleep 300",
                env!("CARGO_BIN_EXE_fb-testserver")
            ),
        ],
        "    client_count: 2\n    requests_per_second: 20\n    duration: 60\n    timeout: 2\n",
    );
    let t0 = Instant::now();
    let o = common::bin()
        .current_dir(dir.path())
        .args(["run", "--no-progress"])
        .arg(&r)
        .timeout(Duration::from_secs(90))
        .output()
        .unwrap();
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(40), "{took:?}: {err}");
    let c = rusqlite::Connection::open(dir.path().join("camp.db")).unwrap();
    let (status, message, rows): (String, String, i64) = c
        .query_row(
            "SELECT status, failure_message, (SELECT count(*) FROM requests) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(status, "failed");
    assert!(
        message.starts_with("the service stopped answering at 20"),
        "{message}"
    );
    assert!(rows > 0, "rows kept");
}
