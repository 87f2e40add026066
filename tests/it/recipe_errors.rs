//! The bad-input corpus: every recipe under tests/bad-recipes/ must be rejected by the real
//! binary with exit code 2, no panic, and a diagnostic that carries the expected message at
//! the expected `file:line:col`. The first line of each file says what to expect:
//! `# expect: LINE:COL | message substring`.

use crate::common;

use std::path::Path;

fn expectation(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("# expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: L:C | message`",
            path.display()
        )
    });
    let (loc, msg) = rest.split_once(" | ").expect("`L:C | message`");
    (loc.to_string(), msg.to_string())
}

#[test]
fn every_bad_recipe_is_rejected_with_message_and_location() {
    let mut files: Vec<_> = std::fs::read_dir("tests/bad-recipes")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "the corpus must hold at least 40 recipes, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let (loc, msg) = expectation(f);
        let out = common::bin().arg("validate").arg(f).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}, expected 2\n{stderr}",
                f.display(),
                out.status.code()
            ));
            continue;
        }
        if stderr.contains("panicked") {
            failures.push(format!("{}: panicked\n{stderr}", f.display()));
            continue;
        }
        // The diagnostic block holding the message must point at file:L:C.
        let want_loc = format!("--> {}:{loc}\n", f.display());
        let found = stderr
            .split("\n\n")
            .any(|block| block.contains(&msg) && block.contains(&want_loc));
        if !found {
            failures.push(format!(
                "{}: no diagnostic `{msg}` at {loc}\n{stderr}",
                f.display()
            ));
        }
        assert!(
            out.stdout.is_empty(),
            "{}: nothing on stdout for an invalid recipe",
            f.display()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn json_output_lists_every_problem() {
    let out = common::bin()
        .args(["validate", "--json", "tests/bad-recipes/mix-unknown-op.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["path"], "services[0].operation_mix.reed");
    assert_eq!(d["pos"]["line"], 7);
    assert_eq!(d["help"], "did you mean `read`?");
}

#[test]
fn all_problems_are_reported_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("many.yml");
    std::fs::write(
        &p,
        "global: {log_levl: INFO}\nservices:\n  - service_name: a\n    service_type: file_storage\n    base_path: /tmp\n    port: 0\n    duration: -1\n  - service_name: a\n    service_type: s3\n",
    )
    .unwrap();
    let out = common::bin().arg("validate").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "unknown key `log_levl`",
        "TCP port",
        "`duration` must not be negative",
        "duplicate service_name `a`",
        "needs `access_key`",
        "needs `secret_key`",
        "needs `endpoint_url`",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in:\n{stderr}");
    }
    assert!(stderr.contains("is invalid: 7 errors"), "{stderr}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = common::bin()
        .args(["validate", "no/such/recipe.yml"])
        .output()
        .unwrap();
    // Invalid input, as in every command (tests/hostile_cli.rs).
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read recipe no/such/recipe.yml"));
}
