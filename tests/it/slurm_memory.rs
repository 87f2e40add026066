//! `submit`'s memory floor on the real test cluster (issue 23, case 7): a service job that
//! starts an LLM server, with no `slurm.mem`, gets `--mem=<floor>` on the sbatch command line
//! when the cluster's default job memory is known and below the floor, and nothing otherwise.
//!
//! The test cluster's own default is `DefMemPerNode = UNLIMITED` (nothing is added). To see a
//! site with a low default, a shim `scontrol` first on `PATH` runs the real one and, for
//! `show config` only, adds `DefMemPerCPU = 1000`. The job's memory is then read back with the
//! real `scontrol show job`. Each job is cancelled as soon as it has been read.

use crate::common;

use common::slurm::{Camp, JobBin};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A started LLM server (the job starts it: `runtime: host`) that never becomes ready: the
/// test only reads the job's request, then cancels it.
fn recipe(env: &HashMap<String, String>) -> String {
    format!(
        r#"benchmark: {{name: "mem floor"}}
global:
  metrics_db: "@ROOT@/local.db"
  slurm: {{account: "{account}"}}
services:
  - service_name: llm
    service_type: openai
    runtime: host
    start_command: [sleep, "60"]
    port: {port}
    model: m
    api: completions
    prompt: {{input_tokens: 4}}
    output_tokens: 2
    client_count: 1
    requests: 1
    readiness_timeout: 5
    slurm: {{partition: {partition}, time: "00:02:00"}}
"#,
        account = env["FB_TEST_SLURM_ACCOUNT"],
        partition = env["FB_TEST_SLURM_PARTITION"],
        port = common::free_port(),
    )
}

/// The real `scontrol` on `PATH`.
fn real_scontrol() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("scontrol"))
        .find(|p| p.is_file())
        .expect("scontrol on PATH")
}

/// A directory holding the shim `scontrol` (for `PATH`).
fn shim_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("fb-scontrol-shim-")
        .tempdir()
        .unwrap();
    let real = real_scontrol();
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = show ] && [ \"$2\" = config ]; then\n  '{real}' \"$@\" || exit $?\n  echo 'DefMemPerCPU            = 1000'\n  exit 0\nfi\nexec '{real}' \"$@\"\n",
        real = real.display()
    );
    let p = d.path().join("scontrol");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `submit recipe.yml --no-report ARGS` in a fresh directory, with `shim` first on `PATH`
/// when given. Returns the campaign and submit's stdout.
fn submit(env: &HashMap<String, String>, args: &[&str], shim: Option<&Path>) -> (Camp, String) {
    let args: Vec<&str> = ["--no-report"].iter().chain(args).copied().collect();
    let c = common::slurm::submit_with_path(&recipe(env), &args, "fb-mem-", JobBin::Env, shim);
    let stdout = c.submit_stdout.clone();
    (c, stdout)
}

/// The real `scontrol show job ID`'s `MinMemoryNode`.
fn min_memory_node(id: &str) -> String {
    let out = std::process::Command::new(real_scontrol())
        .args(["show", "job", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "scontrol show job {id}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("MinMemoryNode="))
        .unwrap_or_default()
        .to_string()
}

/// The one service job's id; then cancel the campaign and wait for it to end.
fn service_job(c: &Camp) -> String {
    let v = c.status_json();
    let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "one service job: {v:#}");
    jobs[0]["job_id"].as_str().unwrap().to_string()
}

fn cancel(c: &Camp) {
    let out = c.fb().arg("cancel").arg(&c.dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_done(Duration::from_secs(120));
}

#[test]
fn low_cluster_default_gets_the_llm_floor_on_the_command_line() {
    let Some(env) = common::server("slurm") else {
        return;
    };
    let shim = shim_dir();
    // The dry run shows the option and the line.
    let (_dry, out) = submit(&env, &["--dry-run"], Some(shim.path()));
    assert!(out.contains("'--mem=16384M'"), "{out}");
    assert!(
        out.contains("memory: added --mem=16384M to `llm`'s job")
            && out.contains("DefMemPerCPU=1000 MiB x 2 CPU(s) gives the job 2000 MiB")
            && out.contains("set `slurm.mem` on `llm` to choose otherwise"),
        "{out}"
    );
    // The real job asks SLURM for the floor.
    let (c, out) = submit(&env, &[], Some(shim.path()));
    assert_eq!(
        out.matches("memory: added --mem=16384M").count(),
        1,
        "{out}"
    );
    let id = service_job(&c);
    let mem = min_memory_node(&id);
    cancel(&c);
    assert_eq!(mem, "16G", "job {id}: MinMemoryNode");
}

#[test]
fn unlimited_cluster_default_adds_nothing() {
    let Some(env) = common::server("slurm") else {
        return;
    };
    let out = std::process::Command::new(real_scontrol())
        .args(["show", "config"])
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&out.stdout);
    let unlimited = config.lines().any(|l| {
        l.split_once('=')
            .is_some_and(|(k, v)| k.trim() == "DefMemPerNode" && v.trim() == "UNLIMITED")
    });
    if !unlimited || config.contains("DefMemPerCPU") {
        eprintln!("skipped: the test needs a cluster with DefMemPerNode = UNLIMITED");
        return;
    }
    let (c, out) = submit(&env, &[], None);
    assert!(!out.contains("--mem") && !out.contains("memory:"), "{out}");
    let id = service_job(&c);
    let mem = min_memory_node(&id);
    cancel(&c);
    // No --mem: SLURM's own default, all of the node's memory.
    assert_eq!(mem, "0", "job {id}: MinMemoryNode");
}
