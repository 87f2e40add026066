//! Open loop the way wrk2 does it (issue 16): a fixed number of connections per client, a
//! request whose time has come waits for a free one, and the run ends at its duration whatever
//! the backlog, saying why it could not keep the rate. No assertion depends on timing: the
//! server's delay makes one connection unable to keep the rate by construction (50 ms per
//! request, at most 20 req/s on one connection, against 200 or 1,000,000 scheduled per second).

use crate::common;

use rusqlite::Connection;
use std::path::Path;

use crate::common::Server;

fn run_recipe(dir: &Path, port: u16, rate: &str, extra: &str) -> (Option<i32>, String) {
    let p = dir.join("recipe.yml");
    std::fs::write(
        &p,
        format!(
            "benchmark:\n  name: openloop\nglobal:\n  metrics_db: {}\nservices:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{port}/\n    client_count: 1\n    requests_per_second: {rate}\n    arrival: constant\n    duration: 1\n    timeout: 5\n{extra}",
            dir.join("metrics.db").display()
        ),
    )
    .unwrap();
    let out = common::bin()
        .args(["run", p.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn metric(conn: &Connection, name: &str) -> f64 {
    conn.query_row(
        "SELECT value FROM run_metrics WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("run metric {name}: {e}"))
}

/// One connection, 200 req/s scheduled, 50 ms per answer: requests wait for the connection
/// (the wait is in the corrected latency), the requests still waiting when the second ends
/// are never sent and counted as such, nothing is invented as a server error, and the run
/// says it was connection-limited, not generator-saturated.
#[test]
fn one_connection_too_slow_for_the_rate_is_connection_limited() {
    let srv = Server::start(&["--delay-ms", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_recipe(
        dir.path(),
        srv.port,
        "200",
        "    connections_per_client: 1\n",
    );
    // Exit 5: the run is invalid (target rate not reached, connection-limited).
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("connection-limited"), "{err}");
    let conn = Connection::open(dir.path().join("metrics.db")).unwrap();
    assert_eq!(metric(&conn, "connections"), 1.0);
    assert_eq!(metric(&conn, "connection_limited"), 1.0);
    assert!(metric(&conn, "requests_waited_for_connection") > 0.0);
    let not_sent = metric(&conn, "requests_not_sent");
    assert!(not_sent > 0.0);
    assert_eq!(
        metric(&conn, "requests_not_sent_connection_limited"),
        not_sent
    );
    let (rows, errors, max_wait_ms): (i64, i64, f64) = conn
        .query_row(
            "SELECT count(*), sum(ok = 0 AND error_class <> 'cancelled'),
             max(sent_ns - scheduled_ns) / 1e6 FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(errors, 0, "no invented errors");
    // Every one of the 200 scheduled requests is either recorded or counted as not sent.
    assert_eq!(rows as f64 + not_sent, 200.0);
    // The report names the reason.
    let out = common::bin()
        .args([
            "report",
            dir.path().join("metrics.db").to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("connection_limited"), "{text}");
    // An invalid run never shows `success` (issue 26): its status says `invalid`.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let runs = v["analysis"]["runs"].as_array().unwrap();
    assert!(
        runs.iter()
            .all(|r| r["valid"] == false && r["status"] == "invalid"),
        "{text}"
    );
    // The report job's form: the report is written and the exit is 0; the verdict is in
    // the report and on stderr.
    let html = dir.path().join("r.html");
    let out = common::bin()
        .args([
            "report",
            dir.path().join("metrics.db").to_str().unwrap(),
            "--out",
            html.to_str().unwrap(),
            "--verdict-in-report",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("verdict: INVALID"), "{err}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("INVALID"));
    // The connection wait is part of the request's lag (50 ms per answer, one connection).
    assert!(max_wait_ms >= 50.0, "{max_wait_ms}");
}

/// A rate far beyond reach still ends at its duration: the dispatcher stops at the end of
/// the schedule's time and counts what it never sent.
#[test]
fn a_rate_far_beyond_reach_ends_and_counts_what_was_not_sent() {
    let srv = Server::start(&["--delay-ms", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_recipe(
        dir.path(),
        srv.port,
        "1000000",
        "    connections_per_client: 2\n",
    );
    assert_eq!(code, Some(5), "{err}");
    let conn = Connection::open(dir.path().join("metrics.db")).unwrap();
    assert_eq!(metric(&conn, "connections"), 2.0);
    let not_sent = metric(&conn, "requests_not_sent");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as f64 + not_sent, 1_000_000.0);
    assert!(
        metric(&conn, "connection_limited") + metric(&conn, "generator_saturated") >= 1.0,
        "the run says why it could not keep the rate"
    );
}

#[test]
fn connections_per_client_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_recipe(dir.path(), 9, "10", "    connections_per_client: 0\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("connections_per_client"), "{err}");
}

/// The runner measures its own stalls (its hiccup probe): a runner process stopped for 300 ms in
/// the middle of its window records a stall at least that long, stores it with the run and says
/// so. No timing assertion beyond the stop itself: a stopped process cannot run its probe.
#[test]
fn a_stopped_runner_records_its_own_stall() {
    let srv = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("recipe.yml");
    let db = dir.path().join("metrics.db");
    std::fs::write(
        &p,
        format!(
            "benchmark:\n  name: stall\nglobal:\n  metrics_db: {}\nservices:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    client_count: 1\n    requests_per_second: 50\n    arrival: constant\n    warmup: 0\n    duration: 4\n",
            db.display(),
            srv.port
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .args(["run", "--no-progress", p.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The runner's once-a-second status line says when its measured window is on (warmup 0).
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(": Measure ") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run reports its measured window");
    let pid = child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    child.wait().unwrap();
    let err = reader.join().unwrap();
    let conn = Connection::open(&db).unwrap();
    assert!(metric(&conn, "runner_stalls") >= 1.0, "{err}");
    assert!(metric(&conn, "runner_hiccup_max_ms") >= 250.0, "{err}");
    assert!(metric(&conn, "runner_stalled_ms") >= 250.0, "{err}");
    assert!(err.contains("the runner stalled: "), "{err}");
    // The report says it too, on the HTML run page.
    let html = dir.path().join("r.html");
    let o = common::bin()
        .args(["report", db.to_str().unwrap(), "--format", "html", "--out"])
        .arg(&html)
        .output()
        .unwrap();
    // Exit 5: the run is invalid (its backlog after the stop is beyond the lag limit).
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("runner stalls"), "no stall row");
    assert!(page.contains("the runner stalled: "));
}
