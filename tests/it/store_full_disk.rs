//! Issue 15 item 3: a full disk under the campaign file. The run stops within about a second
//! of the first failed commit with exit 7 and a clear error; the rows committed before stay
//! readable; the run row says `failed` with the reason. A real tiny filesystem (a 4 MiB
//! tmpfs, mounted as root) fills up; without root the test says so and passes.

use crate::common;

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs of `size` mounted at a fresh directory, unmounted on drop.
struct TinyFs {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl TinyFs {
    fn mount(size: &str) -> Option<TinyFs> {
        let tmp = tempfile::tempdir().ok()?;
        let dir = tmp.path().join("full");
        std::fs::create_dir(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyFs { dir, _tmp: tmp })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn read_only(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

#[test]
fn a_full_disk_stops_the_run_at_once_and_is_recorded() {
    let Some(fs) = TinyFs::mount("4m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let srv = common::Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let db = fs.dir.join("c.db");
    let recipe = work.path().join("r.yml");
    std::fs::write(
        &recipe,
        format!(
            "benchmark: {{name: full}}\nglobal: {{metrics_db: {}}}\nservices:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    client_count: 4\n    requests_per_second: 0\n    duration: 60\n",
            db.display(),
            srv.port
        ),
    )
    .unwrap();
    let t = Instant::now();
    let out = common::bin()
        .args(["run", recipe.to_str().unwrap(), "--no-progress"])
        .current_dir(work.path())
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("a 60 s run on a 4 MiB filesystem ended after {took:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("could not be written"), "{err}");
    assert!(err.contains("full"), "{err}");
    // Generous: the run asked for 60 s; the disk fills in well under a second here.
    assert!(took < Duration::from_secs(30), "took {took:?}: {err}");

    let c = read_only(&db);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // In the request log: the run could not end normally to move them.
    let committed = common::committed_rows(&db).unwrap_or(0);
    let (status, stage, message): (String, Option<String>, Option<String>) = c
        .query_row(
            "SELECT status, failure_stage, failure_message FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    eprintln!("{committed} request rows committed before the disk filled; run row: {status} {stage:?} {message:?}");
    assert!(
        committed > 0,
        "rows committed before the disk filled stay readable"
    );
    assert_eq!(status, "failed");
    // The room kept for recording the run's end is given back.
    assert!(!fs.dir.join("c.db.reserve").exists());
    let message = message.unwrap_or_default();
    assert!(message.contains("full"), "{message}");

    // The report reads what was committed and does not call it a success.
    let rep = common::bin()
        .args(["report", db.to_str().unwrap(), "--format", "json", "--out"])
        .arg(work.path().join("rep.json"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_ne!(
        rep.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
}
