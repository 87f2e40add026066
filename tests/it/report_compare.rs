//! `compare`: a deliberately slowed candidate exits 4 with a clear table; thresholds; formats.

use crate::common;
use crate::reportdb;

use reportdb::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn slowed_candidate_is_a_regression_with_a_clear_table() {
    let dir = tempfile::tempdir().unwrap();
    let base = standard_http(dir.path());
    let cand = slowed_http(&dir.path().join("slow.db"), 2);
    let o = common::bin()
        .args(["compare", s(&base), s(&cand)])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let line = |metric: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(metric))
            .unwrap_or_else(|| panic!("{metric} row in\n{text}"))
            .to_string()
    };
    // Service times 1..1000 µs doubled: uncorrected p99 0.99 → 1.98 ms; corrected adds 0.1 ms.
    let p99 = line("latency_p99_ms");
    assert!(
        p99.contains("1.09") && p99.contains("2.08") && p99.contains("REGRESSION"),
        "{p99}"
    );
    assert!(line("latency_p50_ms").contains("REGRESSION"));
    assert!(line("throughput_ops_per_s").ends_with("no change"));
    assert!(line("error_rate").ends_with("no change"));
    assert!(
        text.contains("REGRESSION: 2 metric(s) beyond the thresholds, supported by the data"),
        "{text}"
    );
    insta::assert_snapshot!(
        "compare_text",
        text.replace(s(&base), "BASELINE")
            .replace(s(&cand), "CANDIDATE")
    );
    // Markdown and JSON.
    let md = common::bin()
        .args(["compare", s(&base), s(&cand), "--format", "markdown"])
        .output()
        .unwrap();
    assert_eq!(md.status.code(), Some(4));
    let md = String::from_utf8(md.stdout).unwrap();
    insta::assert_snapshot!(
        "compare_markdown",
        md.replace(s(&base), "BASELINE")
            .replace(s(&cand), "CANDIDATE")
    );
    let js = common::bin()
        .args(["compare", s(&base), s(&cand), "--format", "json"])
        .output()
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&js.stdout).unwrap();
    v["baseline"] = "BASELINE".into();
    v["candidate"] = "CANDIDATE".into();
    insta::assert_json_snapshot!("compare_json", v);
    let html = common::bin()
        .args(["compare", s(&base), s(&cand), "--format", "html"])
        .output()
        .unwrap();
    assert_eq!(html.status.code(), Some(4));
    assert!(String::from_utf8(html.stdout)
        .unwrap()
        .contains("class=\"reg\""));
}

#[test]
fn thresholds_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let base = standard_http(dir.path());
    let cand = slowed_http(&dir.path().join("slow.db"), 2);
    // Loose enough limits: no regression.
    common::bin()
        .args([
            "compare",
            s(&base),
            s(&cand),
            "--threshold",
            "p99_ms=+1.5ms",
            "--threshold",
            "latency_p50_ms=200%",
        ])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("OK: no regression"));
    // Absolute limit in µs converts to ms.
    common::bin()
        .args([
            "compare",
            s(&base),
            s(&cand),
            "--threshold",
            "p99_ms=500us",
            "--threshold",
            "p50_ms=off",
        ])
        .assert()
        .code(4)
        .stdout(predicates::str::contains("0.5ms"));
    // Same campaign against itself: no regression.
    common::bin()
        .args(["compare", s(&base), s(&base)])
        .assert()
        .code(0);
    // Bad thresholds → 2 with a clear message.
    for (t, msg) in [
        ("p99", "expected METRIC=LIMIT"),
        ("nosuch_metric=5%", "unknown metric"),
        ("error_rate=5ms", "unit does not fit"),
        ("p99_ms=fast", "expected METRIC=LIMIT"),
    ] {
        common::bin()
            .args(["compare", s(&base), s(&cand), "--threshold", t])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(msg));
    }
    common::bin()
        .args(["compare", s(&base), "/nonexistent.db"])
        .assert()
        .code(2);
}

#[test]
fn json_reports_compare_like_campaigns_and_invalid_candidate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = standard_http(dir.path());
    let json = dir.path().join("base.json");
    common::bin()
        .args(["report", s(&base), "--out", s(&json)])
        .assert()
        .code(0);
    common::bin()
        .args(["compare", s(&json), s(&base)])
        .assert()
        .code(0);
    // An edited JSON report is refused.
    let text = std::fs::read_to_string(&json)
        .unwrap()
        .replacen("1.09", "1.5", 1);
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, text).unwrap();
    common::bin()
        .args(["compare", s(&edited), s(&base)])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("hash mismatch"));
    // A candidate with too few requests is invalid → regression.
    let small = dir.path().join("small.db");
    {
        let mut db = TestDb::create(&small);
        db.add_run(&RunSpec::new("small", "api", "http"));
        let reqs: Vec<Req> = (0..10)
            .map(|i| Req::ok("GET", T0 + S + i * S, 0, US))
            .collect();
        db.add_requests("small", &reqs);
    }
    common::bin()
        .args(["compare", s(&base), s(&small)])
        .assert()
        .code(4)
        .stdout(predicates::str::contains("valid"));
}

/// `compare_thresholds` in the candidate's recipe loosen or tighten the defaults; the command
/// line still wins.
#[test]
fn thresholds_from_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let base = standard_http(dir.path());
    let cand = dir.path().join("cand.db");
    {
        let mut db = TestDb::create(&cand);
        let mut spec = RunSpec::new("run-slow", "api", "http");
        spec.recipe_json = r#"{"name":"api","kind":"http","compare_thresholds":{"latency_p50_ms":"+1ms","latency_p99_ms":"+1.5ms"}}"#.into();
        db.add_run(&spec);
        let reqs: Vec<Req> = (0..1000i64)
            .map(|i| {
                let mut r = Req::ok("GET", T0 + S + i * 10 * MS, 100 * US, (i + 1) * US * 2);
                r.bytes_sent = 1000;
                r.bytes_received = 3000;
                r
            })
            .collect();
        db.add_requests("run-slow", &reqs);
    }
    common::bin()
        .args(["compare", s(&base), s(&cand)])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("1.5ms"));
    common::bin()
        .args(["compare", s(&base), s(&cand), "--threshold", "p99_ms=10%"])
        .assert()
        .code(4);
}
