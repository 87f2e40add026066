//! Hostile input at the command line (issue 15): alias bombs, non-UTF-8 recipes, missing recipe
//! files and a closed stdout, through the real binary.

use crate::common;
use crate::reportdb;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str], cwd: &Path) -> Output {
    common::bin()
        .args(args)
        .current_dir(cwd)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

/// The 631-byte recipe shape: nine levels of ten aliases each.
fn alias_bomb() -> String {
    let mut doc = String::from("benchmark: {name: bomb}\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = format!("*l{}", i - 1);
        doc += &format!("l{i}: &l{i} [{}]\n", vec![p; 10].join(", "));
    }
    doc += "services: []\n";
    doc
}

#[test]
fn alias_bomb_exits_2_quickly_naming_limit_and_location() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bomb.yml"), alias_bomb()).unwrap();
    for cmd in [
        vec!["validate", "bomb.yml"],
        vec!["explain", "bomb.yml"],
        vec!["compile", "bomb.yml", "--out", "out"],
    ] {
        let t = Instant::now();
        let out = run(&cmd, tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{cmd:?} took {:?}",
            t.elapsed()
        );
        assert!(err.contains("more than 100000 nodes"), "{err}");
        // Level 4 (11,111 nodes per alias) is the first whose expansion crosses the limit.
        assert!(err.contains("bomb.yml:6:"), "{err}");
    }
}

#[test]
fn non_utf8_recipe_exits_2_with_the_byte_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = b"benchmark:\n  name: caf".to_vec();
    bytes.push(0xe9); // Latin-1 'é'
    bytes.extend_from_slice(b"\nservices: []\n");
    std::fs::write(tmp.path().join("latin1.yml"), &bytes).unwrap();
    for json in [false, true] {
        let mut args = vec!["validate", "latin1.yml"];
        if json {
            args.push("--json");
        }
        let out = run(&args, tmp.path());
        assert_eq!(out.status.code(), Some(2));
        let text = if json {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let d = &v["diagnostics"][0];
            assert_eq!(d["pos"]["line"], 2);
            assert_eq!(d["pos"]["col"], 12);
            d["message"].as_str().unwrap().to_string()
        } else {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(err.contains("latin1.yml:2:12"), "{err}");
            err
        };
        assert!(text.contains("byte 0xe9 at byte offset 22"), "{text}");
    }
}

/// A missing recipe is invalid input (exit 2) in every command that takes one.
#[test]
fn missing_recipe_is_exit_2_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in [
        vec!["validate", "nope.yml"],
        vec!["validate", "--json", "nope.yml"],
        vec!["explain", "nope.yml"],
        vec!["compile", "nope.yml", "--out", "out"],
        vec!["run", "nope.yml"],
        vec!["submit", "nope.yml", "--dry-run"],
        vec!["ready", "nope.yml", "--service", "x"],
    ] {
        let out = run(&cmd, tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.contains("cannot read recipe nope.yml"),
            "{cmd:?}: {err}"
        );
    }
    // A directory is not a recipe either.
    std::fs::create_dir(tmp.path().join("dir.yml")).unwrap();
    assert_eq!(
        run(&["validate", "dir.yml"], tmp.path()).status.code(),
        Some(2)
    );
}

#[test]
fn slurm_time_out_of_range_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.yml"),
    )
    .unwrap();
    for (t, needle) in [
        ("1-25", "hours `25` is out of range"),
        ("99999999999-99:99:99", "out of range"),
        ("99999999999-00:00:00", "365 days"),
    ] {
        let text = base.replace(
            "    sync_mode: none\n",
            &format!("    sync_mode: none\n    slurm: {{time: \"{t}\"}}\n"),
        );
        assert!(text.contains(t));
        std::fs::write(tmp.path().join("t.yml"), &text).unwrap();
        let out = run(&["explain", "t.yml"], tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{t}: {err}");
        assert!(err.contains(needle), "{t}: {err}");
        assert!(err.contains("t.yml:26:19"), "{t}: {err}");
    }
}

/// A stdout whose reader is already gone: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-element array; both descriptors are owned below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] and fds[1] are fresh descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// `factorybench … | head -1`: a closed stdout ends no command with a panic or an error
/// message, and the command keeps its own exit code.
#[test]
fn closed_stdout_is_a_quiet_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("recipes/quickstart.yml"),
        tmp.path().join("q.yml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("tests/bad-recipes/mix-sum.yml"),
        tmp.path().join("bad.yml"),
    )
    .unwrap();
    let db = tmp.path().join("c.db");
    {
        let mut d = reportdb::TestDb::create(&db);
        d.add_run(&reportdb::RunSpec::new("r1", "api", "http"));
        let reqs: Vec<_> = (0..50)
            .map(|i| {
                reportdb::Req::ok(
                    "get",
                    reportdb::T0 + 2 * reportdb::S + i * 10 * reportdb::MS,
                    0,
                    5 * reportdb::MS,
                )
            })
            .collect();
        d.add_requests("r1", &reqs);
    }
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["validate", "q.yml"], 0),
        (vec!["validate", "--json", "q.yml"], 0),
        (vec!["validate", "--json", "bad.yml"], 2),
        (vec!["explain", "q.yml"], 0),
        (vec!["explain", "--json", "q.yml"], 0),
        (vec!["compile", "q.yml", "--out", "out"], 0),
        (vec!["report", "c.db", "--format", "json"], -1),
        (vec!["report", "c.db", "--format", "csv"], -1),
        (vec!["compare", "c.db", "c.db"], 0),
        (vec!["completions", "bash"], 0),
        (vec!["monitor", "tunnel", "--state-dir", "nomon"], 1),
        (vec!["--help"], 0),
    ];
    for (args, code) in cases {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
            .args(&args)
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        if code >= 0 {
            assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        } else {
            assert!(out.status.code().is_some(), "{args:?}: killed by a signal");
        }
    }
}
