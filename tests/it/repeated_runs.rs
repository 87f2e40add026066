//! Issue 19: a second `run` into the same file must not corrupt the numbers (every aggregate
//! is per measurement, `compare` compares like with like); one verdict with every gate listed;
//! `report` on a terminal vs a pipe; `run` says where the results are.

use crate::common;
use crate::reportdb;

use reportdb::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A run of service `api` whose measured window starts `at_ns` after T0: 10 s at 100 req/s,
/// 600 `GET` + 400 `PUT`, all successful, 1000 bytes each way.
fn add_run(db: &mut TestDb, run_id: &str, at_ns: i64, generator_lag_ms: Option<f64>) {
    let mut spec = RunSpec::new(run_id, "api", "http");
    spec.started_ns = T0 + at_ns;
    spec.measure_start_ns = Some(T0 + at_ns + S);
    spec.ended_ns = Some(T0 + at_ns + 11 * S);
    db.add_run(&spec);
    let reqs: Vec<Req> = (0..1000i64)
        .map(|i| {
            let mut r = Req::ok(
                if i % 5 < 3 { "GET" } else { "PUT" },
                T0 + at_ns + S + i * 10 * MS,
                100 * US,
                (i % 100 + 1) * US,
            );
            r.bytes_sent = 1000;
            r.bytes_received = 1000;
            r
        })
        .collect();
    db.add_requests(run_id, &reqs);
    if let Some(lag) = generator_lag_ms {
        db.add_metric(run_id, "generator_lag_p99_ms", lag, "ms");
    }
    for k in 0..10 {
        db.add_sample(
            run_id,
            T0 + at_ns + S + k * S,
            "node_mem_used_bytes",
            4.2e9 + k as f64 * 1e7,
        );
    }
}

fn json_report(path: &Path) -> serde_json::Value {
    let o = common::bin()
        .args(["report", s(path), "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).expect("JSON report")
}

#[test]
fn a_second_run_in_the_same_file_is_a_separate_measurement_in_every_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quickstart.db");
    let mut db = TestDb::create(&path);
    add_run(&mut db, "run-a", 0, Some(1.0));
    // The second invocation, 1775 s later (the case).
    add_run(&mut db, "run-b", 1775 * S, Some(1.0));
    drop(db);
    let v = json_report(&path);
    let services = v["analysis"]["services"].as_array().unwrap();
    assert_eq!(
        services.len(),
        2,
        "one aggregate per measurement: {services:#?}"
    );
    for (svc, run) in services.iter().zip(["run-a", "run-b"]) {
        assert_eq!(svc["run_ids"], serde_json::json!([run]));
        assert!((svc["span_s"].as_f64().unwrap() - 10.0).abs() < 1e-9);
        // Every aggregate equals its one run's figure, never one spread over both runs' span.
        let r = v["analysis"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == run)
            .unwrap();
        assert_eq!(svc["total"]["throughput_ops_per_s"], 100.0);
        assert_eq!(
            svc["total"]["throughput_ops_per_s"],
            r["total"]["throughput_ops_per_s"]
        );
        assert_eq!(
            svc["total"]["throughput_mb_per_s"],
            r["total"]["throughput_mb_per_s"]
        );
        assert_eq!(
            svc["operations"], r["operations"],
            "per-operation aggregates"
        );
        assert_eq!(
            svc["total"]["latency_corrected_ms"],
            r["total"]["latency_corrected_ms"]
        );
        assert!(svc["measured_from"].as_str().unwrap().starts_with("20"));
    }
    assert_ne!(services[0]["measured_from"], services[1]["measured_from"]);
    // CSV and Prometheus: the service rows stay apart too (no duplicate series).
    let prom = common::bin()
        .args(["report", s(&path), "--format", "prom"])
        .output()
        .unwrap();
    let prom = String::from_utf8(prom.stdout).unwrap();
    let mut series: Vec<&str> = prom
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    let n = series.len();
    series.sort();
    series.dedup();
    assert_eq!(series.len(), n, "duplicate Prometheus series");
    let csv = common::bin()
        .args(["report", s(&path), "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    let service_rows: Vec<&str> = csv
        .lines()
        .filter(|l| l.starts_with("service,") && l.contains(",all,"))
        .collect();
    assert_eq!(service_rows.len(), 2, "{csv}");
}

#[test]
fn runs_that_overlap_in_time_are_still_one_measurement() {
    // Parallel jobs of one service (several nodes) are one measurement: their throughputs add.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parallel.db");
    let mut db = TestDb::create(&path);
    add_run(&mut db, "node-1", 0, Some(1.0));
    add_run(&mut db, "node-2", 0, Some(1.0));
    drop(db);
    let v = json_report(&path);
    let services = v["analysis"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["total"]["throughput_ops_per_s"], 200.0);
}

#[test]
fn compare_after_a_second_run_compares_the_latest_measurements_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-copy.db");
    let mut db = TestDb::create(&old);
    add_run(&mut db, "run-a", 0, Some(1.0));
    drop(db);
    let cur = dir.path().join("quickstart.db");
    let mut db = TestDb::create(&cur);
    add_run(&mut db, "run-a", 0, Some(1.0));
    add_run(&mut db, "run-b", 1775 * S, Some(1.0));
    drop(db);
    let o = common::bin()
        .args(["compare", s(&old), s(&cur)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(!text.contains("REGRESSION"), "{text}");
    let compared = text
        .lines()
        .find(|l| l.starts_with("compared:"))
        .unwrap_or_else(|| panic!("which runs were compared:\n{text}"));
    assert!(
        compared.contains("baseline run run-a")
            && compared.contains("candidate run run-b")
            && compared.contains("latest of 2 measurements in the candidate"),
        "{compared}"
    );
    let js = common::bin()
        .args(["compare", s(&old), s(&cur), "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&js.stdout).unwrap();
    assert_eq!(
        v["compared"][0]["candidate_run_ids"],
        serde_json::json!(["run-b"])
    );
    assert_eq!(v["compared"][0]["candidate_skipped"], 1);
}

#[test]
fn one_generator_lag_threshold_one_verdict_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lagging.db");
    let mut db = TestDb::create(&path);
    // The case: generator lag p99 61 ms (rows' schedule lag only 0.1 ms).
    add_run(&mut db, "run-lag", 0, Some(61.0));
    drop(db);
    let o = common::bin()
        .args(["report", s(&path), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "invalid run: exit 5");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &v["analysis"]["runs"][0];
    assert_eq!(run["valid"], false);
    assert_eq!(v["analysis"]["policy"]["max_generator_lag_p99_ms"], 5.0);
    let gates = run["gates"].as_array().unwrap();
    let g = gates
        .iter()
        .find(|g| g["code"] == "generator_saturated")
        .expect("generator gate listed");
    assert_eq!(g["measured"], 61.0);
    assert_eq!(g["limit"], 5.0);
    assert_eq!(g["passed"], false);
    // Every gate carries its measured value and limit.
    for code in [
        "too_few_requests",
        "target_rate_not_reached",
        "error_rate_above_threshold",
        "partial_run",
        "failed_run",
    ] {
        let g = gates
            .iter()
            .find(|g| g["code"] == code)
            .unwrap_or_else(|| panic!("{code} gate in {gates:#?}"));
        assert!(g["measured"].is_number() && g["limit"].is_number(), "{g}");
        assert_eq!(g["passed"], true);
    }
    let html = common::bin()
        .args(["report", s(&path), "--format", "html"])
        .output()
        .unwrap();
    assert_eq!(html.status.code(), Some(5));
    let html = String::from_utf8(html.stdout).unwrap();
    assert!(html.contains("INVALID") && html.contains("generator lag p99"));
    assert!(html.contains("<td>61.00 ms</td><td>&lt;= 5.00 ms</td><td>FAIL</td>"));
    for format in ["csv", "prom"] {
        let o = common::bin()
            .args(["report", s(&path), "--format", format])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(5));
        let t = String::from_utf8(o.stdout).unwrap();
        assert!(
            t.contains("measured 61.00 ms, limit <= 5.00 ms: FAIL"),
            "{format}:\n{t}"
        );
    }
    // The same run with a generator that kept up is valid.
    let ok = dir.path().join("ok.db");
    let mut db = TestDb::create(&ok);
    add_run(&mut db, "run-ok", 0, Some(2.0));
    drop(db);
    common::bin()
        .args(["report", s(&ok), "--format", "json"])
        .assert()
        .code(0);
}

#[test]
fn report_is_json_on_a_pipe_and_a_concise_summary_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut db = TestDb::create(&path);
    add_run(&mut db, "run-a", 0, Some(1.0));
    drop(db);
    // stdout is a pipe here: JSON, as before.
    let o = common::bin().args(["report", s(&path)]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON on a pipe");
    let o = common::bin()
        .args(["report", s(&path), "--format", "text"])
        .output()
        .unwrap();
    let t = String::from_utf8(o.stdout).unwrap();
    assert!(t.lines().count() < 30, "concise:\n{t}");
    assert!(
        t.contains("VALID") && t.contains("generator lag p99"),
        "{t}"
    );
    assert!(t.contains("--format html --out"), "{t}");
    // --out picks the format from the file name.
    let html = dir.path().join("r.html");
    common::bin()
        .args(["report", s(&path), "--out", s(&html)])
        .assert()
        .code(0);
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

#[test]
fn html_telemetry_in_binary_units_and_one_time_axis() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut db = TestDb::create(&path);
    add_run(&mut db, "run-a", 0, Some(1.0));
    drop(db);
    let o = common::bin()
        .args(["report", s(&path), "--format", "html"])
        .output()
        .unwrap();
    let html = String::from_utf8(o.stdout).unwrap();
    assert!(html.contains("node_mem_used (GiB)"), "memory in GiB");
    assert!(
        !html.contains(">4200000000<"),
        "raw byte counts as tick labels"
    );
    // Every chart over time has the same x ticks (0..10 s).
    let charts: Vec<&str> = html
        .split("<svg ")
        .filter(|c| c.contains("time since measure start (s)"))
        .collect();
    assert!(charts.len() >= 3, "{}", charts.len());
    let x_ticks = |c: &str| -> Vec<String> {
        c.split("text-anchor=\"middle\">")
            .skip(1)
            .map(|t| t.split('<').next().unwrap().to_string())
            .filter(|t| t.parse::<f64>().is_ok())
            .collect()
    };
    let first = x_ticks(charts[0]);
    assert_eq!(first.first().map(String::as_str), Some("0"));
    assert_eq!(first.last().map(String::as_str), Some("10"));
    for c in &charts {
        assert_eq!(x_ticks(c), first);
    }
}

#[test]
fn run_says_where_the_results_are_and_warns_when_the_file_held_runs() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("mini.yml");
    let db = dir.path().join("mini.db");
    std::fs::create_dir(dir.path().join("files")).unwrap();
    std::fs::write(
        &recipe,
        format!(
            "benchmark: {{name: mini}}\nglobal: {{metrics_db: {db}, reports_dir: reports, logs_dir: logs}}\nservices:\n  - service_name: files\n    service_type: file_storage\n    base_path: {base}\n    client_count: 1\n    requests_per_second: 20\n    duration: 1\n    operation_mix: {{stat: 1.0}}\n",
            db = db.display(),
            base = dir.path().join("files").display()
        ),
    )
    .unwrap();
    let run = || {
        common::bin()
            .args(["run", s(&recipe), "--no-progress"])
            .output()
            .unwrap()
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(matches!(first.status.code(), Some(0 | 5)), "{err}");
    assert!(!err.contains("already holds"), "{err}");
    assert!(out.contains(&format!("results: {}", db.display())), "{out}");
    assert!(
        out.contains("next:") && out.contains("factorybench report"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "--out {}/mini-",
            dir.path().join("reports").display()
        )),
        "reports_dir in the suggested command: {out}"
    );
    // Relative logs_dir is next to the campaign file; the run's log lines are kept there.
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .expect("logs_dir created")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("requests") && !log.contains('\x1b'), "{log}");
    assert!(
        out.contains(&format!("log: {}", logs[0].display())),
        "{out}"
    );
    let second = run();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already holds 1 run from an earlier invocation"),
        "{err}"
    );
}
