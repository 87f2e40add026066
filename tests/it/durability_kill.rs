//! Durability under SIGKILL (issue 15): `factorybench run` (the real binary) is killed with
//! SIGKILL at a few points of a steady file_storage run. Afterwards the campaign file passes
//! `PRAGMA integrity_check`, `factorybench report` reads it and marks the run incomplete (the
//! exit code is 3, partial, never 0), and the rows lost are at most about one commit interval.
//!
//! The loss window is computed from timestamps, not from sleeps: the test notes the wall-clock
//! time (the runner's clock is the same CLOCK_REALTIME) right before it sends SIGKILL, and the
//! window is that time minus the newest `done_ns` that reached the file. At 400 requests/s a
//! request completes every 2.5 ms, so the newest stored completion marks the last commit.

use crate::common;

use factorybench::store::COMMIT_INTERVAL;
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn recipe(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.yml"));
    std::fs::write(
        &p,
        format!(
            "benchmark: {{name: {name}}}\n\
             global: {{metrics_db: \"{db}\"}}\n\
             services:\n\
             \x20 - service_name: files\n\
             \x20   service_type: file_storage\n\
             \x20   base_path: \"{files}\"\n\
             \x20   client_count: 2\n\
             \x20   requests_per_second: 200\n\
             \x20   arrival: constant\n\
             \x20   warmup: 0\n\
             \x20   duration: 120\n\
             \x20   operation_mix: {{write: 0.3, read: 0.6, stat: 0.1}}\n\
             \x20   file_sizes: {{\"4KB\": 1.0}}\n\
             \x20   sync_mode: none\n",
            db = dir.join(format!("{name}.db")).display(),
            files = dir.join(format!("{name}-files")).display(),
        ),
    )
    .unwrap();
    p
}

struct Outcome {
    rows: i64,
    /// Kill time minus the newest stored completion.
    loss_window: Option<Duration>,
}

/// Run, wait until at least `kill_after_rows` requests are committed and then `offset` more
/// (a commit was just seen: the offset moves the kill to a later point of the commit
/// interval), SIGKILL, then check the file and the report.
fn kill_at(dir: &Path, name: &str, kill_after_rows: i64, offset: Duration) -> Outcome {
    let recipe = recipe(dir, name);
    let db = dir.join(format!("{name}.db"));
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .args(["run", "--no-progress"])
        .arg(&recipe)
        .current_dir(dir)
        .env("FACTORYBENCH_MONITOR_DIR", dir.join("no-monitor"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{name}: the run ended before the kill point"
        );
        assert!(
            Instant::now() < deadline,
            "{name}: {kill_after_rows} rows never committed"
        );
        if common::committed_rows(&db).is_some_and(|n| n >= kill_after_rows) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(offset);
    let killed_ns = now_ns();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    // The file (with its WAL) is consistent.
    let c = Connection::open(&db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{name}");
    let status: String = c
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        status, "running",
        "{name}: a killed run cannot have recorded its end"
    );
    drop(c);
    // Committed rows: in the request log (the run never ended to move them), read in place.
    let rows = common::committed_rows(&db).unwrap_or(0);
    assert!(
        rows >= kill_after_rows,
        "{name}: committed rows disappeared"
    );
    let newest_done = common::last_done_ns(&db);

    // The report reads it, without writing to it, and does not present it as a success.
    let out = common::bin()
        .args(["report", "--format", "json"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(common::committed_rows(&db).unwrap_or(0), rows, "{name}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{name}: report of a killed run must exit 3 (partial)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["analysis"]["runs"][0];
    assert_eq!(run["status"], "running", "{run}");
    assert_eq!(
        run["total"]["requests"].as_i64(),
        Some(rows),
        "{name}: the report has every committed row (warmup 0)"
    );
    assert_eq!(run["partial"], true);
    assert_eq!(run["valid"], false);
    assert_eq!(v["analysis"]["partial"], true);
    let reasons = run["invalid_reasons"].to_string();
    // A run its runner never finished says so, with where it ran (issue 26).
    assert!(reasons.contains("lost: the runner on "), "{reasons}");

    Outcome {
        rows,
        loss_window: newest_done.map(|d| Duration::from_nanos((killed_ns - d).max(0) as u64)),
    }
}

#[test]
fn sigkill_keeps_a_consistent_file_and_loses_at_most_one_commit_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let mut windows = Vec::new();
    // Right after the run row is written, then at rows and offsets that put the kill early,
    // in the middle and at the end of a commit interval.
    for (name, rows, offset_ms) in [
        ("kill-start", 0, 0),
        ("kill-early", 100, 40),
        ("kill-mid", 400, 110),
        ("kill-late", 800, 190),
    ] {
        let o = kill_at(tmp.path(), name, rows, Duration::from_millis(offset_ms));
        eprintln!(
            "{name}: {} rows kept; loss window {:?}",
            o.rows,
            o.loss_window.map(|w| w.as_millis())
        );
        if rows > 0 {
            windows.push(o.loss_window.expect("rows were committed"));
        }
    }
    // Everything older than one commit interval was on disk. The slack covers the writer's
    // 5 ms poll, the commit itself (fsync-free in WAL with synchronous=NORMAL) and scheduling
    // on a loaded machine.
    let bound = COMMIT_INTERVAL + Duration::from_millis(300);
    eprintln!(
        "loss windows {:?} ms (commit interval {} ms)",
        windows.iter().map(|w| w.as_millis()).collect::<Vec<_>>(),
        COMMIT_INTERVAL.as_millis()
    );
    for w in &windows {
        assert!(
            *w <= bound,
            "lost {w:?} of completed requests (commit interval {COMMIT_INTERVAL:?})"
        );
    }
}
