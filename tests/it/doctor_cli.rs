//! `factorybench doctor` against the test SLURM cluster (accounts enforced, partitions cpu/gpu,
//! QOS) with planted problems: an account the user may not charge, a QOS that does not exist,
//! a missing image, an unwritable base_path, a vLLM without a GPU — each a `fail` line, exit 1.

use crate::common;

use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn doctor(args: &[&str], monitor_dir: &Path) -> (i32, String, String) {
    let o = common::bin()
        .arg("doctor")
        .args(args)
        .arg("--monitor-dir")
        .arg(monitor_dir)
        .env_remove("PUSHGATEWAY_URL")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// name → (status, why) from `doctor --json`.
fn checks(json: &str) -> HashMap<String, (String, String)> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["why"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn slurm() -> Option<HashMap<String, String>> {
    let env = common::server("slurm")?;
    // The multi-node cluster with enforced accounting (scripts/start-slurm.sh).
    env.contains_key("FB_TEST_SLURM_ACCOUNT").then_some(env)
}

#[test]
fn site_checks_without_a_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = doctor(&["--json"], dir.path());
    let c = checks(&out);
    for name in [
        "runtime",
        "slurm",
        "slurm.accounting",
        "binary",
        "monitoring",
    ] {
        assert!(c.contains_key(name), "{name} missing: {out}");
    }
    // No Pushgateway anywhere: a warning, not a failure.
    assert_eq!(c["monitoring"].0, "warn");
    if slurm().is_some() {
        assert_eq!(c["slurm"].0, "ok", "{out}");
        assert_eq!(c["slurm.accounting"].0, "ok", "{out}");
        assert_eq!(code, 0, "{out}{err}");
    }
    // The human form: one line per check with its status first, and a summary.
    let (_, text, _) = doctor(&[], dir.path());
    let binary = text
        .lines()
        .find(|l| l.contains(" binary "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        ["ok  ", "warn", "fail"]
            .iter()
            .any(|s| binary.starts_with(s)),
        "{binary}"
    );
    assert!(binary.contains("the jobs run "), "{binary}");
    assert!(text.contains(" warnings, "), "{text}");
}

#[test]
fn planted_problems_are_failures() {
    let Some(env) = slurm() else {
        eprintln!("skipped: the accounting test cluster is not running");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = &env["FB_TEST_SLURM_ACCOUNT"];
    let bad = &env["FB_TEST_SLURM_BAD_ACCOUNT"];
    let bad_qos = &env["FB_TEST_SLURM_BAD_QOS"];
    let cpu = &env["FB_TEST_SLURM_PARTITION"];
    let podman = std::process::Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let (runtime, image) = if podman {
        ("podman", "localhost/factorybench-doctor-missing:0")
    } else {
        ("apptainer", "/nonexistent/factorybench-doctor-missing.sif")
    };
    let recipe = dir.path().join("r.yml");
    std::fs::write(
        &recipe,
        format!(
            "benchmark: {{name: doctor}}
global:
  metrics_db: {db}
services:
  - service_name: good
    service_type: file_storage
    base_path: {base}
    requests: 100
    slurm: {{partition: {cpu}, account: {good}, time: \"00:05:00\"}}
  - service_name: badacct
    service_type: http
    runtime: external
    service_url: http://127.0.0.1:1
    url: /
    slurm: {{partition: {cpu}, account: {bad}, time: \"00:05:00\"}}
  - service_name: badqos
    service_type: http
    runtime: external
    service_url: http://127.0.0.1:1
    url: /
    slurm: {{partition: {cpu}, account: {good}, qos: {bad_qos}, time: \"00:05:00\"}}
  - service_name: noimage
    service_type: database
    runtime: {runtime}
    container_image: {image}
    port: 25432
    slurm: {{partition: {cpu}, account: {good}, time: \"00:05:00\"}}
  - service_name: ro
    service_type: file_storage
    base_path: /proc/1/factorybench-doctor
    slurm: {{partition: {cpu}, account: {good}, time: \"00:05:00\"}}
  - service_name: nogpu
    service_type: vllm
    model: m
    container_image: /nonexistent/vllm.sif
    port: 28000
    slurm: {{partition: {cpu}, account: {good}, time: \"00:05:00\"}}
",
            db = dir.path().join("camp/metrics.db").display(),
            base = dir.path().join("fs").display(),
        ),
    )
    .unwrap();
    let (code, out, err) = doctor(&["--json", recipe.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "a failure exits 1\n{out}\n{err}");
    let c = checks(&out);
    let status = |n: &str| c.get(n).map(|x| x.0.as_str()).unwrap_or("absent");
    // The clean service passes everything the cluster can check.
    assert_eq!(status("slurm.partition[good]"), "ok", "{out}");
    assert_eq!(status("slurm.account[good]"), "ok", "{out}");
    assert_eq!(status("slurm.submit[good]"), "ok", "{out}");
    assert_eq!(status("base_path[good]"), "ok", "{out}");
    assert_eq!(status("space[good]"), "ok", "{out}");
    assert_eq!(status("campaign_dir"), "ok", "{out}");
    assert!(c.contains_key("filesystem[good]"), "{out}");
    // 1. The account this user may not charge.
    assert_eq!(status("slurm.account[badacct]"), "fail", "{out}");
    assert!(c["slurm.account[badacct]"].1.contains(bad.as_str()));
    assert_eq!(status("slurm.submit[badacct]"), "fail", "{out}");
    // A QOS that does not exist.
    assert_eq!(status("slurm.qos[badqos]"), "fail", "{out}");
    // 2. The missing image.
    let img = if podman {
        "image[noimage]"
    } else {
        "runtime[noimage]"
    };
    assert_eq!(status(img), "fail", "{out}");
    // 3. The unwritable path.
    assert_eq!(status("base_path[ro]"), "fail", "{out}");
    // A vLLM without a GPU.
    assert_eq!(status("gpu[nogpu]"), "fail", "{out}");

    // The human form prints the fixes.
    let (code, text, _) = doctor(&[recipe.to_str().unwrap()], dir.path());
    assert_eq!(code, 1);
    assert!(
        text.lines()
            .any(|l| l.starts_with("fail  slurm.account[badacct]")),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
}

#[test]
fn an_invalid_recipe_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r.yml");
    std::fs::write(&r, "services: 3\n").unwrap();
    let (code, _, _) = doctor(&[r.to_str().unwrap()], dir.path());
    assert_eq!(code, 2);
}
