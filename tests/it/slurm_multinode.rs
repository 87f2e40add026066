//! Campaigns on the multi-node test cluster (`scripts/start-slurm.sh`: nodes in network
//! namespaces, accounting enforced, an account required on every job): clients spread over
//! several nodes with `srun`, per-node run files merged by `report`, account/partition/QOS on
//! every job, a refused submission, a runner killed on one node, a time limit, and `status`
//! from `sacct` once SLURM forgot the jobs. Skipped unless the cluster has at least 3 nodes.
//! Every wait is bounded; nothing asserts timing.
//!
//! The commands run WITHOUT `FB_BIN`: the job scripts must run the very binary that submitted
//! them (its absolute path), not a `factorybench` from `PATH`.

use crate::common;

use rusqlite::Connection;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cluster's facts (slurm.env) when it has at least 3 nodes.
fn cluster() -> Option<HashMap<String, String>> {
    let env = common::server("slurm")?;
    let nodes = env.get("FB_TEST_SLURM_NODES")?.split(',').count();
    if nodes < 3 {
        eprintln!("skipped: the test SLURM cluster has {nodes} node(s), these tests need 3");
        return None;
    }
    Some(env)
}

use common::slurm::{Camp, JobBin};

fn fb(root: &Path) -> assert_cmd::Command {
    common::slurm::fb(root, JobBin::Compiled)
}

fn write_recipe(text: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("fb-multinode-")
        .tempdir()
        .unwrap();
    let root = t.path().to_path_buf();
    std::fs::write(
        root.join("recipe.yml"),
        text.replace("@ROOT@", &root.display().to_string()),
    )
    .unwrap();
    (t, root)
}

fn submit(text: &str, args: &[&str]) -> Camp {
    common::slurm::submit(text, args, "fb-multinode-", JobBin::Compiled)
}

fn jobs(v: &Value) -> Vec<Value> {
    v["jobs"].as_array().cloned().unwrap_or_default()
}

/// `scontrol show job ID` as key → value.
fn scontrol_job(id: &str) -> HashMap<String, String> {
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "scontrol show job {id}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn squeue_knows(id: &str) -> bool {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-t", "all", "-j", id, "-o", "%i"])
        .output()
        .unwrap();
    out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// One row per run file: (file, host, status, stop_reason, measured ok latencies in ns).
#[derive(Debug)]
struct NodeRun {
    file: String,
    host: String,
    status: String,
    stop_reason: Option<String>,
    clients: i64,
    latencies_ns: Vec<i64>,
    /// Every request row of the run, warmup included (what `status` counts).
    rows: i64,
}

fn node_runs(c: &Camp) -> Vec<NodeRun> {
    let mut files: Vec<_> = std::fs::read_dir(c.dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let conn = Connection::open(&f).unwrap();
        let (run_id, host, status, stop_reason, clients): (
            String,
            String,
            String,
            Option<String>,
            i64,
        ) = conn
            .query_row(
                "SELECT run_id, host, status, stop_reason, clients FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        // Through the library's request scan and count: a killed runner's rows are in its
        // file's request log (read in place).
        let mut latencies_ns = Vec::new();
        factorybench::store::read::scan_requests(&conn, &run_id, false, |v| {
            if let Some(v) = v.filter(|v| v.ok) {
                latencies_ns.push(v.done_ns - v.sent_ns);
            }
        })
        .unwrap();
        let rows = factorybench::store::read::request_count(&conn, &run_id).unwrap() as i64;
        out.push(NodeRun {
            rows,
            file: f.file_name().unwrap().to_string_lossy().into_owned(),
            host,
            status,
            stop_reason,
            clients,
            latencies_ns,
        });
    }
    out
}

/// An HTTP service (Python's http.server, started by the batch script) whose clients run on
/// two other nodes. The start command says 127.0.0.1: with client nodes the script binds it to
/// the node's own address instead.
fn recipe(name: &str, port: u16, load: &str, slurm: &str, env: &HashMap<String, String>) -> String {
    let account = &env["FB_TEST_SLURM_ACCOUNT"];
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
    client_count: 4
    warmup: 0
    {load}
    readiness_timeout: 30
    slurm: {{{slurm}}}
"#
    )
}

/// p-th quantile (nearest rank) of `v`, in ms.
fn nearest_rank_ms(v: &mut [i64], q: f64) -> f64 {
    v.sort_unstable();
    let rank = ((q * v.len() as f64) - 1e-9)
        .ceil()
        .clamp(1.0, v.len() as f64) as usize;
    v[rank - 1] as f64 / 1e6
}

/// Service on the first node, clients on the two others: both client nodes leave a run file
/// with rows, the report merges them into one service whose p99 is the p99 of all rows (within
/// the histogram's 3 significant digits), every job carries the campaign's account, partition
/// and QOS (report job included), and `status` still answers (from sacct) once SLURM's queue
/// forgot the jobs.
#[test]
fn three_node_campaign_merges_client_nodes() {
    let Some(env) = cluster() else { return };
    let qos = env
        .get("FB_TEST_SLURM_SHORT_QOS")
        .cloned()
        .unwrap_or_else(|| "normal".into());
    let partition = env["FB_TEST_SLURM_PARTITION"].clone();
    let text = recipe(
        "three nodes",
        common::free_port(),
        "arrival: closed\n    requests_per_second: 40\n    requests: 400\n    duration: 60",
        &format!("time: \"00:05:00\", client_nodes: 2, partition: {partition}, qos: {qos}"),
        &env,
    );
    let c = submit(&text, &[]);
    // Every job submit made, read back from the controller.
    let v = c.status_json();
    let all = jobs(&v);
    assert_eq!(all.len(), 2, "service + report jobs: {v:#}");
    for j in &all {
        let id = j["job_id"].as_str().unwrap();
        let info = scontrol_job(id);
        assert_eq!(info["Account"], env["FB_TEST_SLURM_ACCOUNT"], "job {id}");
        assert_eq!(info["Partition"], partition, "job {id}");
        assert_eq!(info["QOS"], qos, "job {id}");
    }
    let v = c.wait_done(Duration::from_secs(240));
    for j in jobs(&v) {
        assert_eq!(j["state"], "COMPLETED", "{v:#}\n{}", c.logs());
    }
    let nodes: Vec<&str> = env["FB_TEST_SLURM_NODES"].split(',').collect();
    // `status` shows each client node's run (issue 26: the per-node run files were skipped,
    // so RUN read `-` and --json gave no runs).
    let web = jobs(&v)
        .into_iter()
        .find(|j| j["service"] == "web")
        .unwrap();
    let mut run_nodes: Vec<String> = web["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "success", "{web:#}");
            r["node"].as_str().unwrap().to_string()
        })
        .collect();
    run_nodes.sort();
    assert_eq!(run_nodes, nodes[1..3].to_vec(), "{web:#}");
    let text = fb(&c.root).arg("status").arg(&c.dir).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    // Each node's run with every row it recorded (the warmup until the common start
    // instant included).
    let runs_now = node_runs(&c);
    for n in &nodes[1..3] {
        let rows = runs_now.iter().find(|r| &r.host == n).map_or(0, |r| r.rows);
        assert!(text.contains(&format!("{n}: success {rows} req")), "{text}");
    }
    let runs = node_runs(&c);
    assert_eq!(runs.len(), 2, "one run file per client node: {runs:?}");
    let mut hosts: Vec<&str> = runs.iter().map(|r| r.host.as_str()).collect();
    hosts.sort();
    assert_eq!(
        hosts,
        nodes[1..3].to_vec(),
        "clients on the 2nd and 3rd node"
    );
    for r in &runs {
        assert_eq!(r.status, "success", "{r:?}");
        assert_eq!(r.clients, 2, "4 clients split over 2 nodes: {r:?}");
        assert!(!r.latencies_ns.is_empty(), "{r:?}");
    }
    // The endpoint file names the service node's own address (what the clients used).
    let ep: Value =
        serde_json::from_slice(&std::fs::read(c.dir.join("endpoints/web.json")).unwrap()).unwrap();
    let first_addr = env["FB_TEST_SLURM_NODE_ADDRS"].split(',').next().unwrap();
    assert_eq!(ep["host"], first_addr, "{ep}");
    assert_eq!(ep["node"], nodes[0], "{ep}");
    let mut all_ns: Vec<i64> = runs.iter().flat_map(|r| r.latencies_ns.clone()).collect();
    assert_eq!(
        all_ns.len(),
        400,
        "the requests budget split across the nodes"
    );

    let out = fb(&c.root)
        .args(["report", "--format", "json"])
        .arg(&c.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = report["analysis"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "one service, merged across nodes");
    let total = &services[0]["total"];
    assert_eq!(total["requests"], 400);
    let merged_p99 = total["latency_uncorrected_ms"]["p99"].as_f64().unwrap();
    let exact_p99 = nearest_rank_ms(&mut all_ns, 0.99);
    assert!(
        (merged_p99 - exact_p99).abs() <= exact_p99 * 2e-3 + 1e-3,
        "merged p99 {merged_p99} ms vs p99 over all rows {exact_p99} ms"
    );
    for r in &runs {
        let mut l = r.latencies_ns.clone();
        eprintln!(
            "node {}: {} requests, p99 {:.3} ms",
            r.host,
            l.len(),
            nearest_rank_ms(&mut l, 0.99)
        );
    }
    eprintln!("merged: {} requests, p99 {merged_p99:.3} ms", all_ns.len());
    // The report ran on the cluster too (its job carries account/partition/QOS).
    assert!(c.dir.join("report.html").is_file(), "{}", c.logs());

    // Once the controller forgets the jobs (MinJobAge), `status` answers from accounting.
    let ids: Vec<String> = jobs(&v)
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    let t0 = Instant::now();
    while ids.iter().any(|id| squeue_knows(id)) {
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "jobs still in the queue"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let v = c.status_json();
    for j in jobs(&v) {
        assert_eq!(j["state"], "COMPLETED", "{v:#}");
        assert_eq!(j["source"], "sacct", "{v:#}");
    }
}

/// A site that requires an account refuses a job without one: `submit` fails with SLURM's
/// reason, leaves nothing queued and records no campaign job.
#[test]
fn job_without_account_is_refused_and_nothing_is_left() {
    let Some(env) = cluster() else { return };
    if env
        .get("FB_TEST_SLURM_ACCOUNT_REQUIRED")
        .map(String::as_str)
        != Some("1")
    {
        return;
    }
    let text = recipe(
        "no account",
        common::free_port(),
        "arrival: closed\n    requests_per_second: 10\n    requests: 10\n    duration: 10",
        "time: \"00:02:00\"",
        &env,
    )
    .replace(
        &format!(
            "  slurm: {{account: \"{}\"}}\n",
            env["FB_TEST_SLURM_ACCOUNT"]
        ),
        "",
    );
    let (_t, root) = write_recipe(&text);
    let out = fb(&root).args(["submit", "recipe.yml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "submit must fail");
    assert!(
        stderr.contains("sbatch") && stderr.to_lowercase().contains("account"),
        "the error names sbatch and the account: {stderr}"
    );
    // Other tests may have jobs queued under their account; none may be without one.
    let q2 = std::process::Command::new("squeue")
        .args(["-h", "-o", "%a %j"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&q2.stdout).lines() {
        assert!(
            !line.trim_start().starts_with("(null)") && !line.trim().is_empty(),
            "a job without account is queued: {line}"
        );
    }
}

/// One client node's runner is killed mid-run, then the job hits its time limit: the other
/// node's runner keeps running, receives the signal through srun and keeps its rows (partial);
/// the killed node's rows written so far stay readable; the job log names the failed node.
/// About 2 minutes (a 2-minute limit: the kill comes well before SLURM's USR1).
#[test]
fn killed_client_node_and_time_limit() {
    let Some(env) = cluster() else { return };
    let text = recipe(
        "kill one node",
        common::free_port(),
        "arrival: constant\n    requests_per_second: 10\n    duration: 600",
        "time: \"2\", signal_grace: 30, client_nodes: 2",
        &env,
    );
    let c = submit(&text, &["--no-report"]);
    // Wait until both client nodes have run files with rows.
    let t0 = Instant::now();
    loop {
        let files: Vec<_> = std::fs::read_dir(c.dir.join("runs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let with_rows = files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .filter(|p| common::committed_rows(p).is_some_and(|n| n > 0))
            .count();
        if with_rows == 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "client runners did not start: {}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The runner with --client-share 1/2 (this PID namespace sees every node's processes).
    let dir = c.dir.display().to_string();
    let victim = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|b| {
                let args: Vec<&[u8]> = b.split(|&c| c == 0).collect();
                args.iter().any(|a| *a == b"1/2")
                    && args.iter().any(|a| a.starts_with(dir.as_bytes()))
                    && args.first().is_some_and(|a| !a.ends_with(b"bash"))
            })
        })
        .expect("the second client node's runner");
    // The survivor is the other node's file (task 0 runs on the first client node).
    let count = |p: &Path| -> i64 { common::committed_rows(p).unwrap_or(0) };
    let first_client = env["FB_TEST_SLURM_NODES"]
        .split(',')
        .nth(1)
        .unwrap()
        .to_string();
    let survivor_file = std::fs::read_dir(c.dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .ends_with(&format!("-{first_client}.db"))
            })
        })
        .expect("the first client node's run file");
    // The nodes start measuring at the common instant the batch step hands them (warmup until
    // then): kill the runner once it has measured rows, so the killed node has some to keep.
    let second_client = env["FB_TEST_SLURM_NODES"]
        .split(',')
        .nth(2)
        .unwrap()
        .to_string();
    let victim_file = c.dir.join("runs").join(
        survivor_file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(
                &format!("-{first_client}.db"),
                &format!("-{second_client}.db"),
            ),
    );
    let measured = |p: &Path| -> i64 { common::measured_rows(p) };
    let t2 = Instant::now();
    while measured(&victim_file) == 0 {
        assert!(
            t2.elapsed() < Duration::from_secs(60),
            "the second client node never measured: {}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on a pid found above; no memory is involved.
    let rc = unsafe { libc::kill(victim, libc::SIGKILL) };
    assert_eq!(rc, 0);
    // The other node keeps measuring after the kill (its rows keep growing).
    let after_kill = count(&survivor_file);
    let t1 = Instant::now();
    while count(&survivor_file) <= after_kill + 20 {
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "the other client node stopped when one runner was killed:\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    c.wait_done(Duration::from_secs(180));
    let runs = node_runs(&c);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let survivor = runs
        .iter()
        .find(|r| r.status == "partial")
        .unwrap_or_else(|| panic!("one runner ends partial: {runs:?}\n{}", c.logs()));
    assert!(
        survivor
            .stop_reason
            .as_deref()
            .is_some_and(|s| s.starts_with("signal:")),
        "{survivor:?}"
    );
    assert!(!survivor.latencies_ns.is_empty());
    let killed = runs
        .iter()
        .find(|r| r.file != survivor.file)
        .expect("the killed node's file");
    assert!(!killed.latencies_ns.is_empty(), "{killed:?}");
    // `status` names the lost node once the job is over (issue 26: it read `running` forever),
    // with the requests it kept; the report says the same.
    let text = fb(&c.root).arg("status").arg(&c.dir).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("{}: lost {} req", killed.host, killed.rows)),
        "{text}"
    );
    assert!(
        text.contains(&format!("on {}: LOST:", killed.host)),
        "{text}"
    );
    let log = c.logs();
    assert!(
        log.contains(&format!("{}: task", killed.host)),
        "the job log names the failed node {}:\n{log}",
        killed.host
    );
    // The report reads both files as one partial service.
    let out = fb(&c.root)
        .args(["report", "--format", "json"])
        .arg(&c.dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("report: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(report["analysis"]["partial"], true, "{report:#}");
    assert_eq!(report["analysis"]["services"].as_array().unwrap().len(), 1);
    let lost = report["analysis"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["invalid_reasons"].as_array().cloned().unwrap_or_default())
        .find(|x| {
            x["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("lost:"))
        })
        .unwrap_or_else(|| panic!("the report says a runner was lost: {report:#}"));
    assert!(
        lost["message"]
            .as_str()
            .unwrap()
            .contains(&format!("the runner on {} never finished", killed.host)),
        "{lost}"
    );
    // compare names the lost runner too (either side).
    let out = fb(&c.root)
        .args(["compare", "--format", "text"])
        .arg(&c.dir)
        .arg(&c.dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING: candidate web")
            && text.contains(&format!("lost: the runner on {}", killed.host)),
        "{text}"
    );
}
