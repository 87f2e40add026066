//! The rendered batch script's signal handling, run for real with bash and stub commands:
//! SLURM's USR1 (time limit near) reaches the runner, which keeps a partial run (exit 3), and
//! the service is stopped on every exit path (EXIT trap), also when TERM arrives during setup.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FB_STUB: &str = r#"#!/bin/bash
echo "$*" >> "$STUB_CALLS/factorybench.log"
case "$1" in
  ready)
    if [[ -n "${STUB_READY_HANGS:-}" ]]; then touch "$STUB_CALLS/in-ready"; exec sleep 600; fi
    exit 0 ;;
  run)
    if [[ "$*" == *--fail-setup* ]]; then exit 1; fi
    trap 'echo USR1 >> "$STUB_CALLS/signals"; exit 3' USR1
    trap 'echo TERM >> "$STUB_CALLS/signals"; exit 3' TERM
    touch "$STUB_CALLS/running"
    while :; do sleep 0.05; done ;;
esac
"#;

const APPTAINER_STUB: &str = r#"#!/bin/bash
echo "$*" >> "$STUB_CALLS/apptainer.log"
if [[ "$1 $2" == "instance run" && -n "${STUB_START_HANGS:-}" ]]; then
  echo "apptainer: pulling the image" >&2
  echo $$ > "$STUB_CALLS/in-start.tmp" && mv "$STUB_CALLS/in-start.tmp" "$STUB_CALLS/in-start"
  exec sleep 600
fi
"#;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let stubs = t.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    std::fs::create_dir_all(t.path().join("calls")).unwrap();
    for (name, body) in [("factorybench", FB_STUB), ("apptainer", APPTAINER_STUB)] {
        let p = stubs.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let camp = t.path().join("camp");
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/ollama-vllm.yml");
    let o = common::bin()
        .arg("compile")
        .arg(recipe)
        .arg("--out")
        .arg(&camp)
        .output()
        .unwrap();
    assert!(o.status.success());
    (t, camp.join("scripts/ollama-llama2.sbatch"))
}

fn spawn(t: &Path, script: &Path, ready_hangs: bool) -> std::process::Child {
    let path = format!(
        "{}:{}",
        t.join("stubs").display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(script)
        .env("PATH", path)
        .env("FB_BIN", t.join("stubs/factorybench"))
        .env("STUB_CALLS", t.join("calls"))
        .env("TMPDIR", t)
        .env_remove("SLURM_JOB_ID")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if ready_hangs {
        cmd.env("STUB_READY_HANGS", "1");
    }
    cmd.spawn().unwrap()
}

/// Wait (bounded) until `p` exists: a condition, not a sleep.
fn wait_for_file(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: u32, sig: i32) {
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[test]
fn usr1_is_forwarded_to_the_runner_and_the_instance_is_stopped() {
    let (t, script) = setup();
    let mut child = spawn(t.path(), &script, false);
    wait_for_file(&t.path().join("calls/running"));
    kill(child.id(), libc::SIGUSR1);
    let status = child.wait().unwrap();
    // The runner's own exit status (3: partial) is the job's.
    assert_eq!(status.code(), Some(3));
    let signals = std::fs::read_to_string(t.path().join("calls/signals")).unwrap();
    assert_eq!(signals.trim(), "USR1");
    let app = std::fs::read_to_string(t.path().join("calls/apptainer.log")).unwrap();
    assert!(app.contains("instance run --cleanenv --nv"), "{app}");
    assert!(
        app.contains("instance stop fb-ollama-llama2-local-"),
        "{app}"
    );
    let fb = std::fs::read_to_string(t.path().join("calls/factorybench.log")).unwrap();
    assert!(fb.contains("ready "), "{fb}");
    assert!(!fb.contains("--fail-setup"), "{fb}");
}

#[test]
fn term_during_readiness_stops_the_instance() {
    let (t, script) = setup();
    let mut child = spawn(t.path(), &script, true);
    wait_for_file(&t.path().join("calls/in-ready"));
    kill(child.id(), libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let app = std::fs::read_to_string(t.path().join("calls/apptainer.log")).unwrap();
    assert!(app.contains("instance stop"), "{app}");
    // The runner never started.
    assert!(!t.path().join("calls/running").exists());
}

/// A signal while the runtime starts the service: the job log (the script's stderr) says why
/// the job stopped; the runtime's own stderr file gets the runtime's words only.
#[test]
fn term_while_the_runtime_starts_is_said_in_the_job_log() {
    let (t, script) = setup();
    let path = format!(
        "{}:{}",
        t.path().join("stubs").display(),
        std::env::var("PATH").unwrap()
    );
    let log = t.path().join("job.err");
    let mut child = std::process::Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("FB_BIN", t.path().join("stubs/factorybench"))
        .env("STUB_CALLS", t.path().join("calls"))
        .env("STUB_START_HANGS", "1")
        .env("TMPDIR", t.path())
        .env_remove("SLURM_JOB_ID")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_file(&t.path().join("calls/in-start"));
    kill(child.id(), libc::SIGTERM);
    // The trap runs once the foreground `apptainer` returns: end the stub as a runtime would.
    let stub: u32 = std::fs::read_to_string(t.path().join("calls/in-start"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(stub, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let job = std::fs::read_to_string(&log).unwrap();
    assert!(job.contains("SIGTERM during setup, stopping"), "{job}");
    let camp = script.parent().unwrap().parent().unwrap();
    let runtime_err: String = std::fs::read_dir(camp.join("logs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".runtime.err"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(runtime_err.contains("pulling the image"), "{runtime_err}");
    assert!(!runtime_err.contains("SIGTERM"), "{runtime_err}");
    let app = std::fs::read_to_string(t.path().join("calls/apptainer.log")).unwrap();
    assert!(app.contains("instance stop"), "{app}");
    assert!(!t.path().join("calls/running").exists());
}

#[test]
fn a_port_already_in_use_fails_setup_instead_of_measuring_another_service() {
    let (t, _) = setup();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let recipe = t.path().join("busy.yml");
    std::fs::write(
        &recipe,
        format!(
            "benchmark: {{name: busy}}\nservices:\n  - {{service_name: busy, service_type: ollama, container_image: docker://ollama/ollama, model: m, port: {port}}}\n"
        ),
    )
    .unwrap();
    let camp = t.path().join("camp-busy");
    let o = common::bin()
        .arg("compile")
        .arg(&recipe)
        .arg("--out")
        .arg(&camp)
        .output()
        .unwrap();
    assert!(o.status.success());
    let status = spawn(t.path(), &camp.join("scripts/busy.sbatch"), false)
        .wait()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let fb = std::fs::read_to_string(t.path().join("calls/factorybench.log")).unwrap();
    assert!(
        fb.contains(&format!("--fail-setup port {port} is already in use")),
        "{fb}"
    );
    assert!(!fb.lines().any(|l| l.starts_with("ready ")), "{fb}");
    assert!(!t.path().join("calls/apptainer.log").exists());
    drop(busy);
}

/// The compiled script runs the very binary that compiled it (absolute path), and a binary
/// missing on the node fails the job at once naming it (exit 127), not as a readiness timeout.
#[test]
fn script_runs_the_compiling_binary_and_a_missing_one_fails_fast() {
    let (t, script) = setup();
    let text = std::fs::read_to_string(&script).unwrap();
    let exe = assert_cmd::cargo::cargo_bin("factorybench")
        .canonicalize()
        .unwrap();
    assert!(
        text.contains(&format!("FB_BIN={}", exe.display())),
        "the script names {}:\n{text}",
        exe.display()
    );
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("FB_BIN", t.path().join("no-such-factorybench"))
        .env("STUB_CALLS", t.path().join("calls"))
        .env("TMPDIR", t.path())
        .env_remove("SLURM_JOB_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("no-such-factorybench is not found"),
        "{stderr}"
    );
    assert!(!stderr.contains("never became ready"), "{stderr}");
    // Nothing was started.
    assert!(!t.path().join("calls/apptainer.log").exists());
}
