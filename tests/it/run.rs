//! `factorybench run`: the real binary against real files and a loopback HTTP server.
//! No assertion depends on timing: counts come from the seeded constant schedule, and figures
//! are compared with what the campaign file holds.

use crate::common;

use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_recipe(dir: &Path, services: &str) -> std::path::PathBuf {
    let p = dir.join("recipe.yml");
    let text = format!(
        "benchmark:\n  name: runtest\nglobal:\n  metrics_db: {}\nservices:\n{services}",
        dir.join("metrics.db").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// Nearest-rank quantile of corrected latency (ms) straight from SQL.
fn db_quantile(conn: &Connection, run_id: &str, p: f64) -> f64 {
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM requests WHERE run_id = ?1 AND warmup = 0 AND ok = 1",
            [run_id],
            |r| r.get(0),
        )
        .unwrap();
    let rank = ((p * n as f64).ceil() as i64).clamp(1, n);
    let v: i64 = conn
        .query_row(
            "SELECT done_ns - scheduled_ns FROM requests WHERE run_id = ?1 AND warmup = 0 AND ok = 1
             ORDER BY done_ns - scheduled_ns LIMIT 1 OFFSET ?2",
            rusqlite::params![run_id, rank - 1],
            |r| r.get(0),
        )
        .unwrap();
    v as f64 / 1e6
}

fn assert_summary_matches_db(db: &Path, run: &Value) {
    let conn = Connection::open(db).unwrap();
    let id = run["run_id"].as_str().unwrap();
    let (n, errors, bytes, max_ns): (i64, i64, i64, Option<i64>) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(ok = 0), 0),
             coalesce(sum(CASE WHEN ok THEN bytes_sent + bytes_received ELSE 0 END), 0),
             max(CASE WHEN ok THEN done_ns - scheduled_ns END)
             FROM requests WHERE run_id = ?1 AND warmup = 0",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let (start, end): (i64, i64) = conn
        .query_row(
            "SELECT measure_start_ns, ended_ns FROM runs WHERE run_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(run["requests"].as_i64().unwrap(), n);
    assert_eq!(run["errors"].as_i64().unwrap(), errors);
    let window = (end - start) as f64 / 1e9;
    let close = |a: f64, b: f64, rel: f64| (a - b).abs() <= rel * b.abs().max(1e-9);
    assert!(close(run["window_s"].as_f64().unwrap(), window, 1e-9));
    assert!(close(
        run["achieved_rps"].as_f64().unwrap(),
        n as f64 / window,
        1e-9
    ));
    assert!(close(
        run["ops_per_s"].as_f64().unwrap(),
        (n - errors) as f64 / window,
        1e-9
    ));
    assert!(close(
        run["mb_per_s"].as_f64().unwrap(),
        bytes as f64 / 1e6 / window,
        1e-9
    ));
    if n - errors > 0 {
        let lat = &run["latency_corrected_ms"];
        // Percentiles come from HDR histograms with 3 significant digits (≤ 0.1 % off).
        for (key, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            let got = lat[key].as_f64().unwrap();
            let want = db_quantile(&conn, id, p);
            assert!(
                close(got, want, 2e-3) || (got - want).abs() < 0.002,
                "{key}: {got} vs {want}"
            );
        }
        assert!(close(
            lat["max"].as_f64().unwrap(),
            max_ns.unwrap() as f64 / 1e6,
            1e-9
        ));
    }
}

/// 0, or 5 when the run (correctly) failed a validity gate, which depends on machine speed.
fn assert_ok_or_invalid(out: &std::process::Output) -> Value {
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(5)),
        "exit {code:?}, stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out.stdout);
    if code == Some(5) {
        assert_eq!(j["runs"][0]["valid"], false);
    }
    j
}

#[test]
fn file_storage_run_records_every_request_and_summary_equals_db() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Constant arrival at 2 × 100 = 200 req/s: offsets k/200 s; warmup 0.5 s, duration 1 s
    // → exactly 100 warmup and 200 measured requests, whatever the machine's speed.
    let recipe = write_recipe(
        dir.path(),
        &format!(
            "  - service_name: files\n    service_type: file_storage\n    base_path: {}\n    client_count: 2\n    requests_per_second: 100\n    arrival: constant\n    warmup: 0.5\n    duration: 1\n    operation_mix: {{write: 0.3, read: 0.5, stat: 0.1, delete: 0.1}}\n    file_sizes: {{\"4KB\": 0.5, \"64KB\": 0.5}}\n    working_set_files: 4\n",
            data.display()
        ),
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--json", "--no-progress"])
        .output()
        .unwrap();
    let j = assert_ok_or_invalid(&out);
    let run = &j["runs"][0];
    // An invalid run (a loaded machine's generator fell behind) says so, never `success`.
    let want = if run["valid"] == true {
        "success"
    } else {
        "invalid"
    };
    assert_eq!(run["status"], want);
    assert_eq!(run["stop_reason"], "duration");
    assert_eq!(run["requests"], 200);
    assert_eq!(run["warmup_requests"], 100);
    let db = dir.path().join("metrics.db");
    let conn = Connection::open(&db).unwrap();
    let id = run["run_id"].as_str().unwrap();
    let (rows, seqs, max_seq): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT seq), max(seq) FROM requests WHERE run_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, seqs, max_seq),
        (300, 300, 299),
        "every request has a row"
    );
    // Warmup rows are the first 0.5 s of the schedule and are excluded from the summary.
    let warm: i64 = conn
        .query_row(
            "SELECT count(*) FROM requests WHERE run_id = ?1 AND warmup = 1 AND seq < 100",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(warm, 100);
    let ops: Vec<String> = conn
        .prepare("SELECT DISTINCT op FROM requests ORDER BY op")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ops, ["delete", "read", "stat", "write"]);
    assert_eq!(run["errors"], 0, "{run}");
    assert_summary_matches_db(&db, run);
    // Run row, histograms, samples, self-monitoring metrics.
    let (status, kind, sha, host): (String, String, String, String) = conn
        .query_row(
            "SELECT status, service_kind, recipe_sha256, host FROM runs WHERE run_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), kind.as_str()),
        ("success", "file_storage")
    );
    assert_eq!(sha.len(), 64);
    assert!(!host.is_empty());
    let merged: Vec<u8> = conn
        .query_row(
            "SELECT encoded FROM histograms WHERE run_id = ?1 AND worker = -1 AND name = 'latency_corrected_us'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let h = factorybench::store::decode_histogram(&merged).unwrap();
    assert_eq!(h.len(), 200);
    let per_worker: i64 = conn
        .query_row(
            "SELECT count(*) FROM histograms WHERE run_id = ?1 AND worker >= 0",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(per_worker, 4, "2 clients × corrected/service");
    let metric: f64 = conn
        .query_row(
            "SELECT value FROM run_metrics WHERE run_id = ?1 AND name = 'generator_saturated'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(metric == 0.0 || metric == 1.0);
    let samples: i64 = conn
        .query_row(
            "SELECT count(*) FROM samples WHERE run_id = ?1 AND name = 'achieved_rps'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(samples >= 1);
    // The run directory under base_path was removed at teardown.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);

    // The human table shows the same numbers as the JSON.
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--no-progress"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0) | Some(5)));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("p99.9 ms") && table.contains("files"),
        "{table}"
    );
    assert!(table.contains(" 200 "), "{table}");
}

#[test]
fn requests_count_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        &format!(
            "  - service_name: files\n    service_type: file_storage\n    base_path: {}\n    client_count: 1\n    requests_per_second: 0\n    arrival: closed\n    requests: 120\n    duration: 60\n    operation_mix: {{stat: 1.0}}\n    file_sizes: {{\"4KB\": 1.0}}\n",
            dir.path().join("d").display()
        ),
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out.stdout);

    assert_eq!(j["runs"][0]["stop_reason"], "requests");
    assert!(j["runs"][0]["target_rps"].is_null());
    assert_summary_matches_db(&dir.path().join("metrics.db"), &j["runs"][0]);
}

/// Block I/O (`io_size`) with O_DIRECT through io_uring and through threads: the same seeded
/// single-client sequence gives the same operations, every one a full 4 KiB transfer.
#[test]
fn block_io_through_io_uring_and_threads_gives_the_same_requests() {
    let mut per_engine = Vec::new();
    for engine in ["io_uring", "threads"] {
        // /var/tmp is on a disk filesystem (O_DIRECT); the default temp dir may be tmpfs.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let recipe = write_recipe(
            dir.path(),
            &format!(
                "  - service_name: blocks\n    service_type: file_storage\n    base_path: {}\n    client_count: 1\n    requests_per_second: 0\n    arrival: closed\n    requests: 400\n    duration: 60\n    seed: 7\n    operation_mix: {{read: 0.6, write: 0.4}}\n    file_sizes: {{\"1MB\": 1.0}}\n    working_set_files: 2\n    io_size: 4KB\n    use_direct_io: true\n    io_engine: {engine}\n",
                dir.path().join("d").display()
            ),
        );
        let out = common::bin()
            .args(["run", recipe.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        let j = assert_ok_or_invalid(&out);
        let run = &j["runs"][0];
        assert_eq!(run["requests"], 400, "{engine}: {run}");
        assert_eq!(run["errors"], 0, "{engine}: {run}");
        assert_summary_matches_db(&dir.path().join("metrics.db"), run);
        let conn = Connection::open(dir.path().join("metrics.db")).unwrap();
        let ops: Vec<(String, i64, i64, i64)> = conn
            .prepare(
                "SELECT op, count(*), min(bytes_sent + bytes_received), max(bytes_sent + bytes_received)
                 FROM requests GROUP BY op ORDER BY op",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (op, _, min, max) in &ops {
            assert_eq!((*min, *max), (4096, 4096), "{engine}: {op}");
        }
        per_engine.push(ops);
    }
    assert_eq!(per_engine[0], per_engine[1], "same seed, same operations");
}

/// Many clients through one io_uring ring (coalesced submits, registered files and buffers):
/// every request is recorded, a full 4 KiB transfer, without errors; and a run stopped by its
/// duration while reads and writes are in flight ends cleanly with the summary equal to the DB.
#[test]
fn many_clients_share_one_io_uring_ring_and_stop_cleanly_mid_io() {
    for (stop, count) in [
        ("requests: 3000\n    duration: 60", Some(3000)),
        ("duration: 1", None),
    ] {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let recipe = write_recipe(
            dir.path(),
            &format!(
                "  - service_name: blocks\n    service_type: file_storage\n    base_path: {}\n    client_count: 16\n    requests_per_second: 0\n    arrival: closed\n    warmup: 0\n    {stop}\n    seed: 11\n    operation_mix: {{read: 0.7, write: 0.3}}\n    file_sizes: {{\"1MB\": 1.0}}\n    working_set_files: 4\n    io_size: 4KB\n    use_direct_io: true\n    io_engine: io_uring\n",
                dir.path().join("d").display()
            ),
        );
        let out = common::bin()
            .args(["run", recipe.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        let j = assert_ok_or_invalid(&out);
        let run = &j["runs"][0];
        if let Some(n) = count {
            assert_eq!(run["requests"], n, "{run}");
        } else {
            assert!(run["requests"].as_u64().unwrap() > 0, "{run}");
        }
        assert_eq!(run["errors"], 0, "{run}");
        assert_summary_matches_db(&dir.path().join("metrics.db"), run);
        let conn = Connection::open(dir.path().join("metrics.db")).unwrap();
        let (min, max): (i64, i64) = conn
            .query_row(
                "SELECT min(bytes_sent + bytes_received), max(bytes_sent + bytes_received) FROM requests",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((min, max), (4096, 4096), "{stop}");
    }
}

#[test]
fn unwritable_base_path_is_a_clear_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let recipe = write_recipe(
        dir.path(),
        &format!(
            "  - service_name: files\n    service_type: file_storage\n    base_path: {}\n    duration: 1\n",
            file.join("sub").display()
        ),
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("base_path") && err.contains("a-file/sub"),
        "{err}"
    );
    let j = json_of(&out.stdout);
    assert_eq!(j["runs"][0]["status"], "failed");
    assert_eq!(j["runs"][0]["failure_stage"], "setup");
    assert_eq!(j["runs"][0]["requests"], 0);
}

/// Whether creating a file with O_DIRECT in `dir` fails with EINVAL.
fn refuses_o_direct(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(".odirect-probe");
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p);
    let _ = std::fs::remove_file(&p);
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::EINVAL))
}

/// A ramfs mount (never supports O_DIRECT), unmounted on drop.
struct RamFs(tempfile::TempDir);

impl Drop for RamFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn direct_io_where_the_filesystem_refuses_it_is_a_clear_error() {
    // tmpfs refuses O_DIRECT before Linux 6.6; on newer kernels use a ramfs mount (root).
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let mut _ramfs = None;
    let base = match shm.as_ref().filter(|d| refuses_o_direct(d.path())) {
        Some(d) => d.path().to_path_buf(),
        None => {
            let d = tempfile::tempdir().unwrap();
            let mounted = Command::new("mount")
                .args(["-t", "ramfs", "none"])
                .arg(d.path())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !mounted || !refuses_o_direct(d.path()) {
                eprintln!("SKIPPED: no filesystem here refuses O_DIRECT (tmpfs accepts it since Linux 6.6; mounting ramfs needs root)");
                return;
            }
            let p = d.path().to_path_buf();
            _ramfs = Some(RamFs(d));
            p
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        &format!(
            "  - service_name: files\n    service_type: file_storage\n    base_path: {}\n    use_direct_io: true\n    duration: 1\n    file_sizes: {{\"4KB\": 1.0}}\n",
            base.display()
        ),
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refuses O_DIRECT"), "{err}");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0, "cleaned up");
}

use common::Server;

#[test]
fn http_run_against_loopback_server() {
    let srv = Server::start(&["--body-bytes", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        &format!(
            "  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/hello?x=1\n    method: POST\n    body: '{{\"a\": 1}}'\n    headers: {{X-Test: yes}}\n    client_count: 4\n    requests_per_second: 50\n    arrival: poisson\n    seed: 7\n    duration: 1\n",
            srv.port
        ),
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    common::assert_run_ok(&out);
    let j = json_of(&out.stdout);
    let run = &j["runs"][0];
    assert_eq!(run["errors"], 0, "{run}");
    let db = dir.path().join("metrics.db");
    assert_summary_matches_db(&db, run);
    let conn = Connection::open(&db).unwrap();
    let (n, status, recv, sent, fb): (i64, i64, i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), min(http_status), min(bytes_received), min(bytes_sent),
             sum(first_byte_ns BETWEEN sent_ns AND done_ns) FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!((status, recv, sent), (200, 100, 8));
    assert_eq!(fb, n, "first byte between send and done");
    // The same seed gives the same schedule: a second run has identical offsets.
    let out2 = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_ok_or_invalid(&out2);
    let offsets = |run_id: &str| -> Vec<i64> {
        conn.prepare(
            "SELECT scheduled_ns - (SELECT min(scheduled_ns) FROM requests WHERE run_id = ?1)
             FROM requests WHERE run_id = ?1 ORDER BY seq",
        )
        .unwrap()
        .query_map([run_id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let a = offsets(run["run_id"].as_str().unwrap());
    let b = offsets(json_of(&out2.stdout)["runs"][0]["run_id"].as_str().unwrap());
    // An arrival in the run's last milliseconds that its dispatcher reached only after the
    // end is not sent (counted in requests_not_sent): on a busy machine one run may end one
    // or two arrivals short. Every arrival both runs sent is at the same offset.
    let n = a.len().min(b.len());
    assert_eq!(a[..n], b[..n]);
    let longer = if a.len() > n { &a[n..] } else { &b[n..] };
    assert!(
        longer.len() <= 2 && longer.iter().all(|t| *t >= 950_000_000),
        "only the last arrivals may be cut: {longer:?}"
    );
}

#[test]
fn max_error_rate_stops_the_run() {
    let srv = Server::start(&["--status", "500"]);
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        &format!(
            "  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    client_count: 2\n    requests_per_second: 50\n    duration: 120\n    max_error_rate: 0.1\n",
            srv.port
        ),
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out.stdout);
    let run = &j["runs"][0];
    assert_eq!(run["status"], "failed");
    assert_eq!(run["stop_reason"], "max_error_rate");
    assert_eq!(run["failure_stage"], "benchmark");
    assert!(run["errors_by_class"]["http_status"].as_i64().unwrap() >= 10);
}

#[test]
fn sigterm_mid_run_keeps_finished_requests_and_marks_partial() {
    let srv = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    sigterm_keeps_finished_requests(
        dir.path(),
        &format!(
            "  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    client_count: 2\n    requests_per_second: 50\n    arrival: constant\n    duration: 300\n",
            srv.port
        ),
    );
}

/// The same for block I/O in a closed loop, which its client drives on a thread of its own
/// (`file_storage`'s io_uring driver): the stop reaches it, and what it finished is kept.
#[test]
fn sigterm_mid_block_io_keeps_finished_requests_and_marks_partial() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    sigterm_keeps_finished_requests(
        dir.path(),
        &format!(
            "  - service_name: blocks\n    service_type: file_storage\n    base_path: {}\n    client_count: 1\n    requests_per_second: 0\n    arrival: closed\n    duration: 300\n    operation_mix: {{read: 0.5, write: 0.5}}\n    file_sizes: {{\"1MB\": 1.0}}\n    working_set_files: 2\n    io_size: 4KB\n    use_direct_io: true\n    io_engine: io_uring\n",
            dir.path().join("d").display()
        ),
    );
}

/// A closed loop of PostgreSQL sessions on two client threads (each its own runtime and
/// sessions), stopped by SIGTERM: the same guarantees, for every client.
#[test]
fn sigterm_mid_postgres_on_client_threads_keeps_finished_requests_and_marks_partial() {
    let Some(env) = common::server("postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, &env["FB_TEST_PG_PASSWORD"]).unwrap();
    let run = sigterm_keeps_finished_requests(
        dir.path(),
        &format!(
            "  - service_name: pg\n    service_type: database\n    runtime: external\n    host: \"{}\"\n    port: {}\n    database: \"{}\"\n    user: \"{}\"\n    password_file: \"{}\"\n    table_name: fb_sigterm_{}\n    seed_rows: 1000\n    client_count: 4\n    client_threads: 2\n    requests_per_second: 0\n    arrival: closed\n    duration: 300\n    timeout: 10\n",
            env["FB_TEST_PG_HOST"],
            env["FB_TEST_PG_PORT"],
            env["FB_TEST_PG_DB"],
            env["FB_TEST_PG_USER"],
            pw.display(),
            std::process::id()
        ),
    );
    let db = dir.path().join("metrics.db");
    let conn = Connection::open(&db).unwrap();
    let threads: f64 = conn
        .query_row(
            "SELECT value FROM run_metrics WHERE run_id = ?1 AND name = 'client_threads'",
            [run["run_id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(threads, 2.0);
}

/// Run `services` (one service, 300 s), SIGTERM it once 20 requests are committed: exit 3,
/// `partial`, one row per request sent (each client's sequence numbers without a gap), the
/// summary equal to the DB. Returns the run's summary.
fn sigterm_keeps_finished_requests(dir: &Path, services: &str) -> Value {
    let db = dir.join("metrics.db");
    let recipe = write_recipe(dir, services);
    let child = Command::new(env!("CARGO_BIN_EXE_factorybench"))
        .args(["run", recipe.to_str().unwrap(), "--json", "--no-progress"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some requests are committed.
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "no rows appeared");
        std::thread::sleep(Duration::from_millis(200));
        if common::committed_rows(&db).unwrap_or(0) >= 20 {
            break;
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out.stdout);
    let run = &j["runs"][0];
    assert_eq!(run["status"], "partial");
    assert_eq!(run["stop_reason"], "signal:TERM");
    let conn = Connection::open(&db).unwrap();
    let id = run["run_id"].as_str().unwrap();
    let (rows, max_seq, ended, last_done): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), max(seq), (SELECT ended_ns FROM runs WHERE run_id = ?1), max(done_ns)
             FROM requests WHERE run_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert!(rows >= 20);
    assert!(max_seq >= 0);
    // Closed-loop sequence numbers interleave the clients (k × clients + client): each
    // client's run from 0 has no gap.
    let mut per_client: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    let clients: i64 = conn
        .query_row(
            "SELECT count(DISTINCT worker) FROM requests WHERE run_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT seq FROM requests WHERE run_id = ?1")
        .unwrap();
    for seq in stmt
        .query_map([id], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(Result::unwrap)
    {
        let e = per_client.entry(seq % clients).or_default();
        e.0 += 1;
        e.1 = e.1.max(seq / clients);
    }
    for (c, (n, max_k)) in &per_client {
        assert_eq!(
            *n,
            max_k + 1,
            "client {c}: every dispatched request has a row"
        );
    }
    assert!(last_done <= ended);
    assert_summary_matches_db(&db, run);
    run.clone()
}

#[test]
fn fail_setup_records_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "  - service_name: files\n    service_type: file_storage\n    base_path: /tmp/x\n",
    );
    let out = common::bin()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--service",
            "files",
            "--fail-setup",
            "service never became ready within 5 s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let conn = Connection::open(dir.path().join("metrics.db")).unwrap();
    let (status, stage, msg): (String, String, String) = conn
        .query_row(
            "SELECT status, failure_stage, failure_message FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(stage, "setup");
    assert!(msg.contains("never became ready"));
}

#[test]
fn unknown_service_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "  - service_name: files\n    service_type: file_storage\n    base_path: /tmp/x\n",
    );
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--service", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service `nope`"));
}

/// Requests past the timeout, closed loop (client threads: one timer per client, re-armed per
/// request) and open loop (a timer per request): every one is a `timeout` error that lasted
/// at least the timeout (a timer left armed with an earlier request's deadline would end the
/// next one at once), and the client goes on with a new connection.
#[test]
fn requests_past_the_timeout_last_the_timeout_and_the_clients_go_on() {
    let srv = Server::start(&["--delay-ms", "400"]);
    for arrival in [
        "client_count: 2\n    requests_per_second: 0\n    arrival: closed",
        "client_count: 2\n    requests_per_second: 5\n    arrival: constant",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(
            dir.path(),
            &format!(
                "  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    {arrival}\n    timeout: 0.15\n    requests: 6\n    duration: 30\n",
                srv.port
            ),
        );
        let out = common::bin()
            .args(["run", recipe.to_str().unwrap(), "--json", "--no-progress"])
            .output()
            .unwrap();
        let j = json_of(&out.stdout);
        let run = &j["runs"][0];
        assert_eq!(run["errors"], 6, "{arrival}: {run}");
        let db = dir.path().join("metrics.db");
        assert_summary_matches_db(&db, run);
        let conn = Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT worker, error_class, done_ns - sent_ns FROM requests")
            .unwrap();
        let rows: Vec<(i64, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(rows.len() >= 6, "{arrival}: {rows:?}");
        for (_, class, took_ns) in &rows {
            assert_eq!(class, "timeout", "{arrival}: {rows:?}");
            assert!(
                *took_ns >= 150_000_000,
                "{arrival}: ended before the timeout: {rows:?}"
            );
        }
        // Each client timed out more than once: its later requests had timers of their own.
        for w in 0..2 {
            let n = rows.iter().filter(|r| r.0 == w).count();
            assert!(n >= 2, "{arrival}: client {w} sent {n}: {rows:?}");
        }
    }
}
