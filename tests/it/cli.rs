//! The command-line surface: help text (snapshot), completions, validate and explain.

use crate::common;

#[test]
fn top_level_help_snapshot() {
    let out = common::bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bash_completions_cover_every_command() {
    let out = common::bin()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "validate", "explain", "compile", "run", "submit", "status", "report", "compare", "monitor",
    ] {
        assert!(text.contains(cmd), "completion lacks {cmd}");
    }
}

#[test]
fn unknown_subcommand_is_exit_2() {
    let out = common::bin().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_reports_warnings_and_success() {
    let out = common::bin()
        .args(["validate", "recipes/comprehensive.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("valid (7 services"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("well-known default credential"), "{stderr}");
    // The warning shows where, never the secret's value in the message itself.
    assert!(
        stderr.contains("recipes/comprehensive.yml:89:17"),
        "{stderr}"
    );
}

#[test]
fn explain_json_sums_node_hours() {
    let out = common::bin()
        .args(["explain", "--json", "recipes/comprehensive.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 7);
    // 3 GPU services x 1 h + 4 CPU services x 0.5 h (their SLURM time limits).
    assert_eq!(v["total_node_hours"], 5.0);
    assert_eq!(services[0]["gpu"], true);
    assert_eq!(services[0]["target_rate_per_s"], 50.0);
}

#[test]
fn explain_counts_array_tasks() {
    let out = common::bin()
        .args(["explain", "recipes/vllm.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A 5-value sweep is 5 array tasks of 1 h each.
    assert!(stdout.contains("5.00"), "{stdout}");
}

#[test]
fn explain_names_the_warnings_once_and_validate_shows_them() {
    let out = common::bin()
        .args(["explain", "recipes/comprehensive.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("well-known default credential"),
        "explain repeats validate's warnings:\n{stderr}"
    );
    assert_eq!(
        stderr
            .matches("warnings (details: factorybench validate")
            .count(),
        1,
        "{stderr}"
    );
}
