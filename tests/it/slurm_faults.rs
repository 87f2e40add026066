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
