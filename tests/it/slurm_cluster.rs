//! Campaigns on the real single-node SLURM cluster started by `scripts/start-slurm.sh`:
//! `submit` → real `sbatch` jobs that run the compiled scripts → `status` / `logs` / `cancel`,
//! and the run files the jobs leave behind. Every wait is bounded.
//!
//! No Apptainer here: services use `runtime: external` (file storage) or `runtime: host` (a
//! Python HTTP server started by the batch script itself, on an ephemeral loopback port).

use crate::common;

use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

use common::slurm::{Camp, JobBin};

fn fb(root: &Path) -> assert_cmd::Command {
    common::slurm::fb(root, JobBin::Env)
}

/// Write `recipe` (with `@ROOT@` replaced by a fresh temporary directory) and submit it
/// without the report job.
fn submit(recipe: &str, args: &[&str]) -> Camp {
    submit_with(recipe, args, false)
}

fn submit_with(recipe: &str, args: &[&str], report_job: bool) -> Camp {
    let mut all: Vec<&str> = args.to_vec();
    if !report_job {
        all.push("--no-report");
    }
    common::slurm::submit(recipe, &all, "fb-slurm-", JobBin::Env)
}

fn states(v: &Value) -> Vec<(String, String)> {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["service"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[derive(Debug)]
struct RunRow {
    file: String,
    service: String,
    status: String,
    stop_reason: Option<String>,
    failure_stage: Option<String>,
    failure_message: Option<String>,
    requests: i64,
    measured: i64,
}

fn runs(c: &Camp) -> Vec<RunRow> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(c.dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    files.sort();
    for f in files {
        let conn = Connection::open(&f).unwrap();
        let mut st = conn
            .prepare(
                "SELECT service, status, stop_reason, failure_stage, failure_message,
                 (SELECT COUNT(*) FROM requests q WHERE q.run_id = r.run_id),
                 (SELECT COUNT(*) FROM requests q WHERE q.run_id = r.run_id AND warmup = 0)
                 FROM runs r",
            )
            .unwrap();
        let rows = st
            .query_map([], |r| {
                Ok(RunRow {
                    file: f.file_name().unwrap().to_string_lossy().into_owned(),
                    service: r.get(0)?,
                    status: r.get(1)?,
                    stop_reason: r.get(2)?,
                    failure_stage: r.get(3)?,
                    failure_message: r.get(4)?,
                    requests: r.get(5)?,
                    measured: r.get(6)?,
                })
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

/// Exactly 150 measured requests (`requests: 150`; 2 clients paced to 50 req/s each, about
/// 1.5 s). Closed loop: the run's validity does not hang on this busy machine's timer jitter
/// (open-loop runs are gated on schedule lag), so the job's state depends on SLURM alone.
const EXACT: &str = "arrival: closed\n    requests: 150\n    duration: 30";
/// Open loop until stopped (cancel, time limit).
const OPEN: &str = "arrival: constant\n    duration: 600";

fn file_service(name: &str, extra: &str) -> String {
    file_service_load(name, EXACT, extra)
}

fn file_service_load(name: &str, load: &str, extra: &str) -> String {
    format!(
        r#"
  - service_name: {name}
    service_type: file_storage
    runtime: external
    base_path: "@ROOT@/data-{name}"
    client_count: 2
    requests_per_second: 50
    warmup: 0
    {load}
    operation_mix: {{write: 0.5, read: 0.5}}
    file_sizes: {{"4KB": 1.0}}
    working_set_files: 4
    slurm: {{time: "00:05:00"}}
{extra}"#
    )
}

fn http_service(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
  - service_name: {name}
    service_type: http
    runtime: host
    start_command: [python3, -m, http.server, --bind, 127.0.0.1, "{port}"]
    port: {port}
    url: /
    client_count: 2
    requests_per_second: 20
    arrival: closed
    warmup: 0
    requests: 150
    duration: 30
    readiness_timeout: 20
    slurm: {{time: "00:05:00"}}
{extra}"#
    )
}

/// The account the test cluster requires on every job (`FB_TEST_SLURM_ACCOUNT`; none on a
/// cluster without accounting).
fn account() -> Option<String> {
    common::component_env("slurm")?
        .remove("FB_TEST_SLURM_ACCOUNT")
        .filter(|a| !a.is_empty())
}

fn recipe(name: &str, services: &[String]) -> String {
    let slurm = account()
        .map(|a| format!(", slurm: {{account: \"{a}\"}}"))
        .unwrap_or_default();
    format!(
        "benchmark: {{name: \"{name}\"}}\nglobal: {{metrics_db: \"@ROOT@/local.db\"{slurm}}}\nservices:{}",
        services.concat()
    )
}

// ------------------------------------------------------------------------------------- tests

/// Several file-storage jobs run at the same time, each writing its own run file: every
/// request the runner reports is in the campaign, status shows every job COMPLETED, and the
/// measured request count is exactly the `requests` the recipe asks for.
#[test]
fn file_storage_campaign_with_simultaneous_jobs() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let services: Vec<String> = (0..4)
        .map(|i| file_service(&format!("files{i}"), ""))
        .collect();
    let c = submit(&recipe("fs campaign", &services), &[]);
    // `logs --follow` streams the jobs' output and returns once every job has ended.
    let follow = fb(&c.root)
        .args(["logs", "--follow", "--service", "files2"])
        .arg(&c.dir)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(follow.status.success());
    let followed = String::from_utf8_lossy(&follow.stdout);
    assert!(followed.contains("service files2"), "{followed}");
    assert!(!followed.contains("service files1"), "{followed}");
    assert!(
        c.submit_stdout.contains("factorybench status"),
        "{}",
        c.submit_stdout
    );
    let v = c.wait_done(Duration::from_secs(120));
    for (svc, st) in states(&v) {
        assert_eq!(st, "COMPLETED", "{svc}: {v:#}\n{}", c.logs());
    }
    let runs = runs(&c);
    assert_eq!(runs.len(), 4, "{runs:?}");
    for r in &runs {
        assert_eq!(r.status, "success", "{r:?}");
        assert_eq!(r.measured, 150, "{r:?}: every request is recorded");
    }
    // Every job's rows, and only its own, are in its file.
    let mut names: Vec<_> = runs.iter().map(|r| r.service.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["files0", "files1", "files2", "files3"]);
    for r in &runs {
        assert!(r.file.starts_with(&format!("{}-", r.service)), "{r:?}");
    }
    // The status table shows the runner's progress next to SLURM's state.
    let out = fb(&c.root).arg("status").arg(&c.dir).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("COMPLETED"), "{table}");
    assert!(table.contains("success 150 req"), "{table}");
}

/// An HTTP service started by the batch script (python3 -m http.server), probed for
/// readiness, benchmarked, and stopped on exit; a dependent service starts after it succeeded
/// (afterok), and the report job runs after both (afterany) and writes report.html.
#[test]
fn http_campaign_with_dependency() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let (p1, p2) = (common::free_port(), common::free_port());
    let c = submit_with(
        &recipe(
            "http campaign",
            &[
                http_service("web", p1, ""),
                http_service("web2", p2, "    depends_on: [web]\n"),
            ],
        ),
        &[],
        true,
    );
    let v = c.wait_done(Duration::from_secs(120));
    assert_eq!(
        states(&v),
        vec![
            ("web".to_string(), "COMPLETED".to_string()),
            ("web2".to_string(), "COMPLETED".to_string()),
            ("report".to_string(), "COMPLETED".to_string())
        ],
        "{v:#}\n{}",
        c.logs()
    );
    let jobs = v["jobs"].as_array().unwrap();
    let web_id = jobs[0]["job_id"].as_str().unwrap();
    let camp = Connection::open(c.dir.join("campaign.db")).unwrap();
    let deps: Option<String> = camp
        .query_row(
            "SELECT depends_on FROM jobs WHERE service = 'web2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(deps.as_deref(), Some(web_id));
    let runs = runs(&c);
    assert_eq!(runs.len(), 2, "{runs:?}");
    for r in &runs {
        assert_eq!(r.status, "success", "{r:?}");
        assert_eq!(r.measured, 150, "{r:?}");
    }
    // The server the script started is gone after the job (every exit path stops it). The job
    // may have run on another node (its own network namespace, where 127.0.0.1 is not this
    // host's), so the process table is checked, not a connection; the PID space is shared.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let server_args = format!("http.server --bind 127.0.0.1 {p1}");
    assert!(!String::from_utf8_lossy(&ps.stdout)
        .lines()
        .any(|l| l.contains(&server_args)));
    // The endpoint file names this job.
    let ep: Value =
        serde_json::from_slice(&std::fs::read(c.dir.join("endpoints/web.json")).unwrap()).unwrap();
    assert_eq!(ep["job_id"].as_str(), Some(web_id));
    let log = c.logs();
    assert!(log.contains("==> "), "{log}");
    let html = std::fs::read_to_string(c.dir.join("report.html")).expect("the report job ran");
    assert!(html.contains("web2"));
}

/// A service that never becomes ready: its run is recorded as failed at setup with a clear
/// message, the job fails, and a service that depends on it is cancelled by SLURM instead of
/// pending forever (--kill-on-invalid-dep=yes).
#[test]
fn never_ready_service_fails_and_cancels_its_dependent() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let port = common::free_port();
    let broken = format!(
        r#"
  - service_name: broken
    service_type: http
    runtime: host
    start_command: [sleep, "600"]
    port: {port}
    url: /
    duration: 3
    readiness_timeout: 3
    slurm: {{time: "00:05:00"}}
"#
    );
    let c = submit(
        &recipe(
            "never ready",
            &[broken, file_service("after", "    depends_on: [broken]\n")],
        ),
        &[],
    );
    let v = c.wait_done(Duration::from_secs(90));
    let st = states(&v);
    assert_eq!(st[0], ("broken".into(), "FAILED".into()), "{v:#}");
    assert_eq!(st[1], ("after".into(), "CANCELLED".into()), "{v:#}");
    let runs = runs(&c);
    assert_eq!(runs.len(), 1, "only the broken service ran: {runs:?}");
    assert_eq!(runs[0].status, "failed");
    assert_eq!(runs[0].failure_stage.as_deref(), Some("setup"));
    assert!(
        runs[0]
            .failure_message
            .as_deref()
            .unwrap_or_default()
            .contains("never became ready"),
        "{:?}",
        runs[0]
    );
    assert!(c.logs().contains("never became ready"));
    // The `sleep 600` the script started was stopped with the job.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout)
        .lines()
        .any(|l| l.trim() == "sleep 600"));
}

/// `cancel` mid-run: only this campaign's jobs are cancelled; the run keeps what it recorded
/// and is marked partial.
#[test]
fn cancel_mid_run_keeps_a_partial_run() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let long = file_service_load("long", OPEN, "");
    let c = submit(&recipe("cancel me", &[long]), &[]);
    // An unrelated job of the same user must survive the campaign's cancel.
    let other = std::process::Command::new("sbatch")
        .args(["--parsable", "--output=/dev/null", "--wrap=sleep 30"])
        .args(account().map(|a| format!("--account={a}")))
        .output()
        .unwrap();
    let other_id = String::from_utf8_lossy(&other.stdout).trim().to_string();
    c.wait_until(Duration::from_secs(60), "requests recorded", |v| {
        v["jobs"][0]["runs"][0]["requests"].as_i64().unwrap_or(0) > 20
    });
    let out = fb(&c.root).arg("cancel").arg(&c.dir).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("cancelled 1 job"));
    let v = c.wait_done(Duration::from_secs(60));
    assert_eq!(states(&v)[0].1, "CANCELLED", "{v:#}");
    let q = std::process::Command::new("squeue")
        .args(["-h", "-j", &other_id, "-o", "%T"])
        .output()
        .unwrap();
    let other_state = String::from_utf8_lossy(&q.stdout).trim().to_string();
    assert!(
        other_state == "RUNNING" || other_state == "PENDING",
        "unrelated job {other_id}: {other_state}"
    );
    let _ = std::process::Command::new("scancel")
        .arg(&other_id)
        .status();
    let runs = runs(&c);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "partial", "{:?}", runs[0]);
    assert!(runs[0].requests > 20);
    // Cancelling again is a no-op.
    let out = fb(&c.root).arg("cancel").arg(&c.dir).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to cancel"));
}

/// A sweep is one job array: every task writes its own run, status lists the tasks together.
#[test]
fn sweep_is_a_job_array() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let svc = file_service("sweep", "    sweep: {client_count: [1, 2, 3]}\n");
    let c = submit(&recipe("sweep", &[svc]), &[]);
    let v = c.wait_done(Duration::from_secs(120));
    let jobs = v["jobs"].as_array().unwrap();
    let mut tasks: Vec<i64> = jobs
        .iter()
        .map(|j| j["array_task"]["task"].as_i64().expect("a task row"))
        .collect();
    tasks.sort();
    assert_eq!(tasks, vec![0, 1, 2], "{v:#}");
    let job_id = jobs[0]["job_id"].as_str().unwrap();
    for j in jobs {
        assert_eq!(j["job_id"].as_str(), Some(job_id), "one array job id");
        assert_eq!(j["state"], "COMPLETED", "{v:#}");
        assert_eq!(j["runs"].as_array().unwrap().len(), 1, "{j:#}");
    }
    let runs = runs(&c);
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert_eq!(r.measured, 150, "{r:?}");
    }
    // Each task ran its own sweep value.
    let mut clients: Vec<i64> = runs
        .iter()
        .map(|r| {
            let conn = Connection::open(c.dir.join("runs").join(&r.file)).unwrap();
            conn.query_row("SELECT clients FROM runs", [], |x| x.get(0))
                .unwrap()
        })
        .collect();
    clients.sort();
    assert_eq!(clients, vec![1, 2, 3]);
}

/// A job that reaches its time limit mid-run: SLURM signals the batch shell (USR1 before the
/// limit, TERM at it), the script forwards it, and the runner commits what it measured and
/// marks the run partial before SIGKILL. Takes about 1–1.5 min (SLURM's 1-minute granularity).
#[test]
fn time_limit_leaves_a_partial_readable_run() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let svc = file_service_load("limited", OPEN, "").replace(
        "slurm: {time: \"00:05:00\"}",
        "slurm: {time: \"1\", signal_grace: 30}",
    );
    let c = submit(&recipe("time limit", &[svc]), &[]);
    let v = c.wait_done(Duration::from_secs(150));
    let state = states(&v)[0].1.clone();
    // USR1 at the grace period lets the runner end first (COMPLETED with exit 3 reads as
    // FAILED); without it SLURM's TERM at the limit ends the job as TIMEOUT.
    assert!(
        ["TIMEOUT", "FAILED", "COMPLETED"].contains(&state.as_str()),
        "{v:#}"
    );
    let runs = runs(&c);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "partial", "{:?}\n{}", runs[0], c.logs());
    assert!(
        runs[0]
            .stop_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("signal:")),
        "{:?}",
        runs[0]
    );
    // How long it ran depends on when SLURM's time-limit check (60 s resolution) sends USR1,
    // so only that it measured and kept requests is asserted, not how many.
    assert!(runs[0].requests > 0, "{:?}", runs[0]);
}

/// `--dry-run` compiles and prints the sbatch commands with their dependencies, submits
/// nothing and records no job.
#[test]
fn dry_run_prints_dependencies_and_submits_nothing() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let c = submit(
        &recipe(
            "dry",
            &[
                file_service("a", ""),
                file_service("b", "    depends_on: [a]\n"),
                file_service("c", ""),
            ],
        ),
        &["--dry-run", "--sequential"],
    );
    let out = &c.submit_stdout;
    assert!(out.contains("dry run"), "{out}");
    assert!(
        out.contains("'--dependency=afterok:<a>,afterany:<a>' '--kill-on-invalid-dep=yes'"),
        "{out}"
    );
    assert!(out.contains("'--dependency=afterany:<b>'"), "{out}");
    let camp = Connection::open(c.dir.join("campaign.db")).unwrap();
    let n: i64 = camp
        .query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn bad_arguments_are_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let out = common::bin()
        .current_dir(t.path())
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no campaign under"));
    let out = common::bin()
        .args(["cancel", t.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a campaign directory"));
    std::fs::write(
        t.path().join("r.yml"),
        recipe("x", &[file_service("a", "")]).replace("@ROOT@", "/tmp"),
    )
    .unwrap();
    let out = common::bin()
        .current_dir(t.path())
        .args(["submit", "r.yml", "--service", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service `nope`"));
    assert!(
        !t.path().join("campaigns").exists()
            || std::fs::read_dir(t.path().join("campaigns"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// SLURM refusing one job (an unknown partition) fails `submit` with sbatch's own message and
/// cancels the jobs already submitted, so no half campaign keeps running.
#[test]
fn refused_submission_cancels_the_jobs_already_submitted() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let text = recipe(
        "refused",
        &[
            file_service_load("ok", OPEN, ""),
            file_service("bad", "").replace(
                "slurm: {time: \"00:05:00\"}",
                "slurm: {partition: no-such-partition}",
            ),
        ],
    )
    .replace("@ROOT@", &root.path().display().to_string());
    std::fs::write(root.path().join("recipe.yml"), text).unwrap();
    let out = fb(root.path())
        .args(["submit", "recipe.yml", "--no-report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid partition"), "{stderr}");
    assert!(
        stderr.contains("cancelling the 1 job(s) already submitted"),
        "{stderr}"
    );
    let dir = std::fs::read_dir(root.path().join("campaigns"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let c = Camp::from_dir(root, dir, JobBin::Env);
    let v = c.wait_done(Duration::from_secs(60));
    assert_eq!(
        states(&v),
        vec![("ok".to_string(), "CANCELLED".to_string())],
        "{v:#}"
    );
}

/// Issue 18: the capacity search as a SLURM job (`submit --capacity`): the service's lifecycle
/// with `factorybench capacity` as the measured step, every step a run in the job's run file,
/// the search in `report`, the service stopped afterwards. SLOs no step can break (no timing in
/// the verdict): the ramp runs 20 → 40 → 50 (capped at max_rate) and the answer is 50.
#[test]
fn capacity_search_runs_as_a_batch_job() {
    let Some(_env) = common::server("slurm") else {
        return;
    };
    let port = common::free_port();
    let search = "    capacity_search:
      min_rate: 20
      max_rate: 50
      ramp_factor: 2
      bisect_steps: 1
      repeats: 1
      step_duration: 1
      slo: {latency_p99_ms: 600000, max_error_rate: 1, min_rate_ratio: 0}
";
    let mut svc = http_service("web", port, search);
    svc = svc.replace("    arrival: closed\n", "    arrival: constant\n");
    // A step whose load generator was starved of CPU (a loaded CI machine: 54 ms late at
    // 20 req/s was seen) ends the search "generator_limited", truthfully: measure again.
    let mut attempt = 0;
    let (c, v) = loop {
        attempt += 1;
        let c = submit(
            &recipe("capacity campaign", &[svc.clone()]),
            &["--capacity"],
        );
        let camp = Connection::open(c.dir.join("campaign.db")).unwrap();
        let script: String = camp
            .query_row(
                "SELECT script_path FROM jobs WHERE service = 'web'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(script, "scripts/web.capacity.sbatch");
        let v = c.wait_done(Duration::from_secs(180));
        let log = c.logs();
        let starved = log.contains("the load generator could not keep its schedule")
            || log.contains("generator_limited");
        if states(&v) != vec![("web".to_string(), "COMPLETED".to_string())] && starved {
            if attempt < 3 {
                eprintln!("attempt {attempt}: the load generator was starved of CPU; again");
                continue;
            }
            // Three times starved: the search said so (generator_limited), which is the truth
            // on a machine this loaded; the rest needs a found knee.
            assert!(log.contains("generator_limited"), "{log}");
            eprintln!("skipped the rest: the client node was saturated three times");
            return;
        }
        break (c, v);
    };
    assert_eq!(
        states(&v),
        vec![("web".to_string(), "COMPLETED".to_string())],
        "{v:#}\n{}",
        c.logs()
    );
    let log = c.logs();
    assert!(log.contains("ready: web answered"), "{log}");
    let out = fb(&c.root)
        .args(["report", "--format", "json"])
        .arg(&c.dir)
        .output()
        .unwrap();
    let rep: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let searches = rep["analysis"]["capacity"]
        .as_array()
        .unwrap_or_else(|| panic!("no capacity_searches in the report: {rep:#}"));
    assert_eq!(searches.len(), 1, "{searches:?}");
    assert_eq!(searches[0]["outcome"], "found", "{:#}", searches[0]);
    assert_eq!(searches[0]["sustainable_rate_per_s"], 50.0);
    let runs = runs(&c);
    assert_eq!(runs.len(), 3, "one run per step (20, 40, 50): {runs:?}");
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let server_args = format!("http.server --bind 127.0.0.1 {port}");
    assert!(!String::from_utf8_lossy(&ps.stdout)
        .lines()
        .any(|l| l.contains(&server_args)));
}
