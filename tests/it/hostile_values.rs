//! Issue 15 item 2: every number in a recipe has a range that `validate` enforces at its
//! location, and the runner ends at its duration whatever rate it was asked for.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn run(args: &[&str], cwd: &Path) -> Output {
    common::bin()
        .args(args)
        .current_dir(cwd)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap()
}

/// A one-service http recipe with `extra` lines in the service (each line at 4 spaces); the
/// first extra line is line 9 of the file.
fn recipe(extra: &[&str]) -> String {
    let mut s = String::from(
        "benchmark: {name: hostile}\nglobal: {metrics_db: c.db}\nservices:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:9/\n    client_count: 2\n    arrival: closed\n",
    );
    for l in extra {
        s += &format!("    {l}\n");
    }
    s
}

#[test]
fn absurd_numbers_are_refused_with_their_location() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("duration: 1e300", "services[0].duration"),
        ("duration: 999999999999999h", "services[0].duration"),
        ("warmup: 1e300", "services[0].warmup"),
        ("warmup: 999999999999999h", "services[0].warmup"),
        ("timeout: 1e300", "services[0].timeout"),
        ("timeout: 99999999h", "services[0].timeout"),
        (
            "requests_per_second: 1e300",
            "services[0].requests_per_second",
        ),
        ("requests: 99999999999999999999", "services[0].requests"),
        ("requests: 1e300", "services[0].requests"),
        ("max_error_rate: 1e300", "services[0].max_error_rate"),
        ("readiness_timeout: 1e300", "services[0].readiness_timeout"),
        ("max_in_flight: 99999999999", "services[0].max_in_flight"),
        ("client_count: 1e300", "services[0].client_count"),
        ("port: 70000", "services[0].port"),
    ];
    for (line, path) in cases {
        let text = recipe(&[line]);
        std::fs::write(tmp.path().join("r.yml"), &text).unwrap();
        for cmd in [
            vec!["validate", "r.yml"],
            vec!["compile", "r.yml", "--out", "out"],
            vec!["explain", "r.yml"],
        ] {
            let out = run(&cmd, tmp.path());
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{line} / {cmd:?}: {err}");
            assert!(err.contains("r.yml:9:"), "{line} / {cmd:?}: {err}");
            assert!(err.contains(path), "{line} / {cmd:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // The benchmark-wide duration and the push interval too.
    for (text, want) in [
        (
            "benchmark: {name: x, duration: 1e300}\nservices:\n  - {service_name: a, service_type: http, url: 'http://127.0.0.1:9/'}\n",
            "r.yml:1:",
        ),
        (
            "benchmark: {name: x}\nglobal: {push_interval: 1e300}\nservices:\n  - {service_name: a, service_type: http, url: 'http://127.0.0.1:9/'}\n",
            "r.yml:2:",
        ),
    ] {
        std::fs::write(tmp.path().join("r.yml"), text).unwrap();
        let out = run(&["validate", "r.yml"], tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn a_total_rate_beyond_one_runner_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let text = recipe(&["requests_per_second: 900000"])
        .replace("client_count: 2", "client_count: 100")
        .replace("arrival: closed", "arrival: constant");
    std::fs::write(tmp.path().join("r.yml"), text).unwrap();
    let out = run(&["validate", "r.yml"], tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("services[0].requests_per_second"), "{err}");
}

#[test]
fn sweep_rates_have_the_same_range() {
    let tmp = tempfile::tempdir().unwrap();
    let text = recipe(&["sweep: {requests_per_second: [10, 1e300]}"]);
    std::fs::write(tmp.path().join("r.yml"), text).unwrap();
    let out = run(&["validate", "r.yml"], tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid sweep value `1e300`"), "{err}");
}

#[test]
fn cli_timeouts_out_of_range_are_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("r.yml"), recipe(&[])).unwrap();
    let out = run(
        &["ready", "r.yml", "--service", "web", "--timeout", "1e300"],
        tmp.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
}

/// The highest rate `validate` accepts is far beyond what the generator reaches on this
/// machine: the run still ends at its duration (generous bound: the run's own teardown and
/// the request timeout are included) and is not a success-looking hang.
#[test]
fn an_unreachable_rate_still_ends_at_its_duration() {
    let srv = common::Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "benchmark: {{name: fast}}\nglobal: {{metrics_db: c.db}}\nservices:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    client_count: 10\n    requests_per_second: 1000000\n    arrival: constant\n    max_in_flight: 64\n    timeout: 2s\n    duration: 2\n",
        srv.port
    );
    std::fs::write(tmp.path().join("r.yml"), text).unwrap();
    let t = Instant::now();
    let out = common::bin()
        .args(["run", "r.yml", "--json", "--no-progress"])
        .current_dir(tmp.path())
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.code().is_some(), "killed by the timeout: {err}");
    assert!(
        took < Duration::from_secs(60),
        "a 2 s run took {took:?}: {err}"
    );
}
