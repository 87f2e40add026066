//! Issue 26: faults SLURM users meet, and what `status` says about them. These tests put fake
//! `squeue` / `sacct` first on PATH (a controller that answers, then one that hangs as a
//! slurmctld that is down makes squeue retry for many seconds), so they need no cluster and
//! never touch the shared daemons. The cluster cases (a dead service, a killed client node)
//! are in slurm_multinode.rs. Every wait is bounded.

use crate::common;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A campaign directory with a service job 101 and a report job 102 that waits for it.
fn campaign(dir: &Path) {
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    let c = rusqlite::Connection::open(dir.join("campaign.db")).unwrap();
    c.execute_batch(include_str!("../../src/store/schema.sql"))
        .unwrap();
    c.execute_batch(
        "INSERT INTO jobs (job_id, service, role, array_size, script_path, submitted_ns, depends_on)
           VALUES ('101', 'web', 'service', NULL, 'scripts/web.sbatch', 1, NULL);
         INSERT INTO jobs (job_id, service, role, array_size, script_path, submitted_ns, depends_on)
           VALUES ('102', 'report', 'report', NULL, '', 2, '101');",
    )
    .unwrap();
}

/// Fake SLURM commands: `squeue` answers while `$dir/answer` exists and hangs otherwise.
fn fake_slurm(bin: &Path, state: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin).unwrap();
    let squeue = format!(
        "#!/bin/bash\nif [[ -e {s}/answer ]]; then\n  printf '%s\\n' '101|101|N/A|COMPLETING|fbn[1-3]|0:42|10:00|None|fb-web' '102|102|N/A|PENDING||0:00|10:00|Dependency|fb-report-x'\n  exit 0\nfi\necho $$ > {s}/squeue.pid\nexec sleep 30\n",
        s = state.display()
    );
    std::fs::write(bin.join("squeue"), squeue).unwrap();
    std::fs::write(bin.join("sacct"), "#!/bin/bash\nexit 0\n").unwrap();
    for f in ["squeue", "sacct"] {
        std::fs::set_permissions(bin.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn status(dir: &Path, bin: &Path, json: bool) -> (String, Duration) {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t0 = Instant::now();
    let mut cmd = common::bin();
    cmd.env("PATH", path)
        .env_remove("FB_SQUEUE_BUDGET_MS")
        .arg("status")
        .arg(dir);
    if json {
        cmd.arg("--json");
    }
    let o = cmd.timeout(Duration::from_secs(60)).output().unwrap();
    let took = t0.elapsed();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (String::from_utf8_lossy(&o.stdout).into_owned(), took)
}

/// While the controller answers, a job waiting on a dependency says on which job and what it
/// does. When it stops answering, `status` answers in under a second (squeue would retry for
/// many seconds), says the controller is not answering, and shows its last answer marked
/// stale with its time; the hung squeue is not left behind.
#[test]
fn status_marks_a_controller_that_does_not_answer() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("camp");
    let bin = t.path().join("bin");
    campaign(&dir);
    fake_slurm(&bin, t.path());
    std::fs::write(t.path().join("answer"), "").unwrap();

    let (out, _) = status(&dir, &bin, false);
    assert!(
        out.contains("Dependency: waits for web 101 COMPLETING on fbn[1-3]"),
        "the waiting job says why:\n{out}"
    );
    assert!(!out.contains("NOT ANSWERING"), "{out}");

    std::fs::remove_file(t.path().join("answer")).unwrap();
    let (out, took) = status(&dir, &bin, false);
    assert!(
        took < Duration::from_secs(3),
        "status took {took:?} with a controller that does not answer:\n{out}"
    );
    assert!(out.contains("controller: NOT ANSWERING"), "{out}");
    assert!(out.contains("STALE"), "{out}");
    assert!(
        out.contains("COMPLETING?"),
        "the last answer, marked:\n{out}"
    );
    let (json, _) = status(&dir, &bin, true);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["controller"]["state"], "not_answering", "{v:#}");
    assert!(v["controller"]["last_answer_at"].is_string(), "{v:#}");
    assert_eq!(v["jobs"][0]["source"], "last_answer", "{v:#}");
    // The squeue that hung was killed, not left running.
    let pid: i32 = std::fs::read_to_string(t.path().join("squeue.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t0 = Instant::now();
    // SAFETY: kill(2) with signal 0 only probes the fake squeue's pid.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the hung squeue {pid} is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- on the 3-node cluster

use common::slurm::{Camp, JobBin};

fn cluster() -> Option<std::collections::HashMap<String, String>> {
    let env = common::server("slurm")?;
    let nodes = env.get("FB_TEST_SLURM_NODES")?.split(',').count();
    (nodes >= 3).then_some(env)
}

/// An http.server service on `node`, the runner on `client_nodes` other nodes (0: beside it).
fn http_recipe(
    env: &std::collections::HashMap<String, String>,
    name: &str,
    port: u16,
    node: &str,
    client_nodes: u32,
    duration: u32,
) -> String {
    format!(
        r#"benchmark: {{name: "{name}"}}
global:
  metrics_db: "@ROOT@/local.db"
  slurm: {{account: "{account}"}}
services:
  - service_name: web
    service_type: http
    runtime: host
    start_command: [python3, -m, http.server, --bind, 127.0.0.1, "{port}"]
    port: {port}
    url: /
    client_count: 2
    warmup: 0
    arrival: constant
    requests_per_second: 10
    duration: {duration}
    readiness_timeout: 30
    slurm: {{time: "00:04:00", client_nodes: {client_nodes}, extra: ["--nodelist={node}"]}}
"#,
        account = env["FB_TEST_SLURM_ACCOUNT"]
    )
}

/// Pids whose command line holds every one of `words`.
fn pids_with(words: &[&str]) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|b| {
                let args: Vec<String> = b
                    .split(|&c| c == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                words.iter().all(|w| args.iter().any(|a| a.contains(w)))
            })
        })
        .collect()
}

fn run_rows(c: &Camp) -> Vec<(String, String, Option<String>, i64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(c.dir.join("runs")).unwrap().flatten() {
        let p = e.path();
        if !p.extension().is_some_and(|x| x == "db") {
            continue;
        }
        let conn = rusqlite::Connection::open(&p).unwrap();
        out.push(
            conn.query_row(
                "SELECT status, coalesce(failure_stage, ''), failure_message, \
                 (SELECT count(*) FROM requests) FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap(),
        );
    }
    out
}

/// The service dies mid-run (SIGKILL on the service node, the runner on another node): the
/// runner stops within seconds (not at the end of its 120 s), the run ends failed with "the
/// service exited (signal KILL) at T", its rows are kept, the report job that wrote the report
/// ends COMPLETED, and no process of the campaign is left on any node.
#[test]
fn cluster_dead_service_is_named_and_the_report_job_completes() {
    let Some(env) = cluster() else { return };
    let nodes: Vec<&str> = env["FB_TEST_SLURM_NODES"].split(',').collect();
    let port = common::free_port();
    let c = common::slurm::submit(
        &http_recipe(&env, "dead service", port, &nodes[..2].join(","), 1, 120),
        &[],
        "fb-faults-",
        JobBin::Compiled,
    );
    let port_s = port.to_string();
    // Wait until the runner has rows, then kill the service (python3 -m http.server PORT).
    c.wait_until(Duration::from_secs(120), "rows recorded", |v| {
        v["jobs"][0]["runs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["requests"].as_i64() > Some(20)))
    });
    let server = pids_with(&["http.server", &port_s]);
    assert_eq!(server.len(), 1, "the service process: {server:?}");
    // SAFETY: kill(2) on the service process of this test's own job.
    assert_eq!(unsafe { libc::kill(server[0], libc::SIGKILL) }, 0);
    let t0 = Instant::now();
    c.wait_until(Duration::from_secs(60), "the runner stopped", |v| {
        v["jobs"][0]["runs"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["status"] != "running"))
    });
    let stopped = t0.elapsed();
    assert!(
        stopped < Duration::from_secs(30),
        "the runner went on for {stopped:?} after the service died:\n{}",
        c.logs()
    );
    let v = c.wait_done(Duration::from_secs(180));
    let rows = run_rows(&c);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (status, stage, msg, n) = &rows[0];
    assert_eq!((status.as_str(), stage.as_str()), ("failed", "benchmark"));
    let msg = msg.as_deref().unwrap_or_default();
    assert!(
        msg.starts_with("the service exited (signal KILL) at ") && msg.contains(nodes[0]),
        "{msg}"
    );
    assert!(*n > 20, "rows kept: {n}");
    let report_job = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["role"] == "report")
        .unwrap()
        .clone();
    assert_eq!(report_job["state"], "COMPLETED", "{v:#}\n{}", c.logs());
    let html = std::fs::read_to_string(c.dir.join("report.html")).unwrap();
    assert!(
        html.contains("the service exited (signal KILL)"),
        "the report names it"
    );
    let log = c.logs();
    assert!(log.contains("verdict: INVALID"), "{log}");
    let dir = c.dir.display().to_string();
    assert!(
        pids_with(&[&dir]).is_empty() && pids_with(&["http.server", &port_s]).is_empty(),
        "a process of the campaign is left"
    );
}

/// Two campaigns submitted in the same second from one directory, both on one node with the
/// same port: two correct measurements (one after the other, or each against its own server),
/// or one measurement and one clear refusal; never a run that measured the other's server.
#[test]
fn cluster_two_campaigns_one_port_one_node() {
    let Some(env) = cluster() else { return };
    let nodes: Vec<&str> = env["FB_TEST_SLURM_NODES"].split(',').collect();
    let port = common::free_port();
    let text = http_recipe(&env, "same port", port, nodes[2], 0, 15);
    let t = tempfile::Builder::new()
        .prefix("fb-faults-")
        .tempdir()
        .unwrap();
    std::fs::write(
        t.path().join("recipe.yml"),
        text.replace("@ROOT@", &t.path().display().to_string()),
    )
    .unwrap();
    let mut camps = Vec::new();
    for _ in 0..2 {
        let o = common::slurm::fb(t.path(), JobBin::Compiled)
            .args(["submit", "recipe.yml", "--no-report"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let rel = out
            .lines()
            .find_map(|l| l.strip_prefix("campaign: "))
            .unwrap()
            .to_string();
        camps.push(t.path().join(rel));
    }
    assert_ne!(camps[0], camps[1], "two campaign directories");
    let mut outcomes = Vec::new();
    for d in &camps {
        let tt = tempfile::tempdir().unwrap();
        let c = Camp::from_dir(tt, d.clone(), JobBin::Compiled);
        c.wait_done(Duration::from_secs(180));
        let rows = run_rows(&c);
        assert_eq!(rows.len(), 1, "{rows:?}\n{}", c.logs());
        outcomes.push((rows[0].clone(), c.logs()));
    }
    for (o, _) in &outcomes {
        eprintln!("two campaigns, one port: {o:?}");
    }
    for ((status, stage, msg, n), log) in &outcomes {
        match status.as_str() {
            "success" => assert!(*n > 0),
            "failed" => {
                assert_eq!(stage, "setup", "{msg:?}\n{log}");
                let m = msg.as_deref().unwrap_or_default();
                assert!(
                    m.contains("already in use")
                        || m.contains("from a server this job did not start"),
                    "a clear refusal: {m}\n{log}"
                );
                assert_eq!(*n, 0, "not one request measured against the other's server");
            }
            s => panic!("{s}: {msg:?}\n{log}"),
        }
    }
    assert!(
        outcomes.iter().any(|o| o.0 .0 == "success"),
        "at least one measurement: {outcomes:?}"
    );
}

/// The campaign directory on a network filesystem (sshfs served by a node over its own address,
/// scripts/start-sshfs.sh): two client nodes write their run files node-local and publish them
/// into the campaign directory; `status` and `report` read them while the nodes write (each
/// node's progress grows), and at the end both files hold every row, in rollback-journal mode
/// (no `-wal`/`-shm` on the network filesystem).
#[test]
fn cluster_campaign_on_a_fuse_network_filesystem() {
    let Some(env) = cluster() else { return };
    let Some(fuse) = common::server("sshfs") else {
        eprintln!("skipped: no sshfs mount (scripts/install-sshfs.sh, scripts/start-sshfs.sh)");
        return;
    };
    let mnt = std::path::PathBuf::from(&fuse["FB_TEST_SSHFS_DIR"]);
    let nodes: Vec<&str> = env["FB_TEST_SLURM_NODES"].split(',').collect();
    let port = common::free_port();
    let root = tempfile::Builder::new()
        .prefix("fb-fuse-")
        .tempdir_in(&mnt)
        .unwrap();
    let text = http_recipe(&env, "on sshfs", port, &nodes.join(","), 2, 15)
        .replace("@ROOT@", &root.path().display().to_string());
    std::fs::write(root.path().join("recipe.yml"), text).unwrap();
    let o = common::slurm::fb(root.path(), JobBin::Compiled)
        .args(["submit", "recipe.yml"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rel = out
        .lines()
        .find_map(|l| l.strip_prefix("campaign: "))
        .unwrap()
        .to_string();
    let dir = root.path().join(rel);
    let c = Camp::from_dir(tempfile::tempdir().unwrap(), dir.clone(), JobBin::Compiled);
    // While the nodes write: both nodes' progress is visible and grows; report reads it.
    let mut seen: Vec<i64> = Vec::new();
    let mut report_read = false;
    let t0 = Instant::now();
    loop {
        let v = c.status_json();
        let web = &v["jobs"][0];
        let runs = web["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == 2 && runs.iter().all(|r| r["status"] == "running") {
            seen.push(runs.iter().map(|r| r["requests"].as_i64().unwrap()).sum());
            if !report_read {
                let o = c
                    .fb()
                    .args(["report", "--json"])
                    .arg(&dir)
                    .output()
                    .unwrap();
                report_read = o.status.code() == Some(3)
                    && serde_json::from_slice::<Value>(&o.stdout).is_ok();
            }
        }
        if common::slurm::FINISHED.contains(&web["state"].as_str().unwrap_or("")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "{v:#}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(
        seen.windows(2).any(|w| w[1] > w[0]),
        "live progress of both nodes that grows while they write: {seen:?}\n{}",
        c.logs()
    );
    assert!(
        report_read,
        "report reads the campaign while the nodes write"
    );
    c.wait_done(Duration::from_secs(120));
    let log = c.logs();
    assert!(
        log.contains("is on FUSE"),
        "the job says where it writes:\n{log}"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("web-{}-{}.db", c_job(&c), nodes[1]),
            format!("web-{}-{}.db", c_job(&c), nodes[2])
        ],
        "two published run files, no -wal/-shm"
    );
    let o = c
        .fb()
        .args(["report", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let total: i64 = v["analysis"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["total"]["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(
        total,
        2 * 10 * 15,
        "2 clients x 10/s x 15 s, every row published"
    );
}

fn c_job(c: &Camp) -> String {
    let v = c.status_json();
    v["jobs"][0]["job_id"].as_str().unwrap().to_string()
}
