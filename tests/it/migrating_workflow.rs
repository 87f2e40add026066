//! The earlier tool's monitoring workflow (docs/migrating.md), followed with factorybench against
//! the real Prometheus and Pushgateway of scripts/start-prometheus.sh:
//!
//! 1. run with `monitoring.compat_metrics: seed`: while it runs, every PromQL query of the
//!    earlier tool's guide returns data;
//! 2. push the finished campaign (`factorybench push --compat seed`): its series appear in
//!    Prometheus with the values of the JSON report, a second push replaces them (no doubling),
//!    `--delete` removes every group;
//! 3. the seed JSON view and the removed flags' messages.
//!
//! The alert step (Alertmanager, a receiver, a silence) is in monitor_alerts.rs: it needs a
//! monitoring job of its own.

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{get_json, prom_query as query};

/// The value of a one-series result.
fn value(r: &serde_json::Value) -> f64 {
    r["value"][1].as_str().unwrap_or("NaN").parse().unwrap()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn recipe(dir: &std::path::Path, campaign: &str, pgw: &str) -> String {
    format!(
        r#"benchmark:
  name: "{campaign}"
global:
  metrics_db: "{db}"
  pushgateway_url: "{pgw}"
  push_interval: 0.5
monitoring:
  compat_metrics: seed
services:
  - service_name: files
    service_type: file_storage
    base_path: "{files}"
    client_count: 2
    requests_per_second: 50
    arrival: constant
    warmup: 1
    duration: 12
    operation_mix: {{write: 0.4, read: 0.6}}
    file_sizes: {{"4KB": 1.0}}
"#,
        db = dir.join("run.db").display(),
        files = dir.join("files").display(),
    )
}

/// The guide's queries, narrowed to one campaign (other tests share this Prometheus), and the
/// factorybench equivalent of the last one.
fn guide_queries(sel: &str) -> [(String, String); 5] {
    [
        (
            "rate(benchmark_requests_total[1m])".into(),
            format!("rate(benchmark_requests_total{{{sel}}}[1m])"),
        ),
        (
            "benchmark_request_duration_seconds_sum / benchmark_request_duration_seconds_count".into(),
            format!("benchmark_request_duration_seconds_sum{{{sel}}} / benchmark_request_duration_seconds_count{{{sel}}}"),
        ),
        (
            "histogram_quantile(0.95, rate(benchmark_request_duration_seconds_bucket[5m]))".into(),
            format!("histogram_quantile(0.95, rate(benchmark_request_duration_seconds_bucket{{{sel}}}[5m]))"),
        ),
        (
            "benchmark_requests_successful".into(),
            format!("benchmark_requests_successful{{{sel}}}"),
        ),
        // Its factorybench equivalent (docs/migrating.md).
        (
            "factorybench_requests_total - sum without(class) (factorybench_request_errors_total)".into(),
            format!("factorybench_requests_total{{{sel}}} - sum without(class) (factorybench_request_errors_total{{{sel}}})"),
        ),
    ]
}

fn pushgateway_groups(pgw: &str, job: &str) -> Vec<serde_json::Value> {
    get_json(&format!("{pgw}/api/v1/metrics"))["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|g| g["labels"]["job"] == job)
        .collect()
}

#[test]
fn run_push_query_with_seed_names_against_real_prometheus() {
    let Some(env) = common::server("prometheus") else {
        return;
    };
    let prom = env["FB_TEST_PROMETHEUS_URL"].clone();
    let pgw = env["FB_TEST_PUSHGATEWAY_URL"].clone();
    let tmp = tempfile::tempdir().unwrap();
    let campaign = format!("migrate-{}-{}", std::process::id(), now_s());
    let path = tmp.path().join("recipe.yml");
    std::fs::write(&path, recipe(tmp.path(), &campaign, &pgw)).unwrap();

    // 1. run: the guide's queries return finite numbers while the run goes on.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .arg("run")
        .arg(&path)
        .arg("--no-progress")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(tmp.path().join("run.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let sel = format!("campaign=\"{campaign}\",service=\"files\"");
    let queries = guide_queries(&sel);
    // The first and the last value each query returned while the run was in progress.
    let mut first: Vec<Option<f64>> = vec![None; queries.len()];
    let mut last: Vec<Option<f64>> = vec![None; queries.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        for (i, (_, q)) in queries.iter().enumerate() {
            if let Some(v) = query(&prom, q).first().map(value) {
                if v.is_finite() && v > 0.0 {
                    first[i].get_or_insert(v);
                    last[i] = Some(v);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(tmp.path().join("run.err")).unwrap_or_default();
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 5),
        "{status:?}\n{err}"
    );
    for (i, (guide, q)) in queries.iter().enumerate() {
        let (Some(a), Some(b)) = (first[i], last[i]) else {
            panic!("no data while running for {q}\n{err}");
        };
        eprintln!("live, compat seed: {guide} = {a} first, {b} last");
    }
    // The counters grew while the run went on.
    assert!(
        last[0] > first[0] && last[3] > first[3],
        "{first:?} {last:?}"
    );

    // 2. push the finished campaign; the series carry the JSON report's values.
    let db = tmp.path().join("run.db");
    let out = common::bin()
        .args(["report", "--format", "json"])
        .arg(&db)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["analysis"]["runs"][0];
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let job = format!("fbpush{}", std::process::id());
    let push = |extra: &[&str]| {
        let out = common::bin()
            .arg("push")
            .arg(&db)
            .args(["--gateway", &pgw, "--job", &job, "--compat", "seed"])
            .args(extra)
            .env_remove("PUSHGATEWAY_URL")
            .env("FACTORYBENCH_MONITOR_DIR", tmp.path().join("no-stack"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let said = push(&[]);
    assert!(said.contains("pushed 2 of 2 groups"), "{said}");
    assert!(said.contains("credentials: none"), "{said}");
    assert_eq!(pushgateway_groups(&pgw, &job).len(), 2);
    let run_sel = format!("job=\"{job}\",scope=\"run\",run_id=\"{run_id}\",op=\"all\"");
    let expect = [
        (
            "factorybench_requests",
            run["total"]["requests"].as_f64().unwrap(),
        ),
        ("factorybench_ok", run["total"]["ok"].as_f64().unwrap()),
        (
            "factorybench_throughput_ops_per_second",
            run["total"]["throughput_ops_per_s"].as_f64().unwrap(),
        ),
        (
            "factorybench_latency_corrected_p99_seconds",
            run["total"]["latency_corrected_ms"]["p99"]
                .as_f64()
                .unwrap()
                / 1000.0,
        ),
    ];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        seen = expect
            .iter()
            .map(|(n, _)| {
                query(&prom, &format!("{n}{{{run_sel}}}"))
                    .first()
                    .map(value)
            })
            .collect::<Vec<_>>();
        if seen.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for ((name, want), got) in expect.iter().zip(&seen) {
        let got = got.unwrap_or_else(|| panic!("{name} not in Prometheus"));
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{name}: Prometheus {got}, report {want}"
        );
    }
    // The histogram and the seed names of the final push.
    let hsel = format!("job=\"{job}\",scope=\"run\"");
    let count = query(
        &prom,
        &format!("factorybench_request_duration_seconds_count{{{hsel}}}"),
    );
    assert_eq!(
        count.first().map(value),
        run["total"]["ok"].as_f64(),
        "{count:?}"
    );
    let succ = query(&prom, &format!("benchmark_requests_successful{{{hsel}}}"));
    assert_eq!(succ.first().map(value), run["total"]["ok"].as_f64());
    let p95 = query(
        &prom,
        &format!("histogram_quantile(0.95, benchmark_request_duration_seconds_bucket{{{hsel}}})"),
    );
    let p95 = p95.first().map(value).unwrap_or(f64::NAN);
    assert!(p95.is_finite() && p95 > 0.0, "{p95}");
    eprintln!("pushed, compat seed: histogram_quantile(0.95, benchmark_request_duration_seconds_bucket) = {p95}");

    // Pushing again replaces the groups: same groups, same values.
    push(&[]);
    assert_eq!(pushgateway_groups(&pgw, &job).len(), 2);
    std::thread::sleep(Duration::from_secs(2));
    let again = query(&prom, &format!("factorybench_requests{{{run_sel}}}"));
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(value(&again[0]), expect[0].1);

    // --delete removes every group of the campaign.
    let said = push(&["--delete"]);
    assert!(said.contains("deleted 2 of 2 groups"), "{said}");
    assert!(pushgateway_groups(&pgw, &job).is_empty());

    // 3. the seed JSON view has the report's numbers under the earlier tool's fields.
    let out = common::bin()
        .args(["report", "--format", "json", "--compat", "seed"])
        .arg(&db)
        .output()
        .unwrap();
    let seed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let svc = &report["analysis"]["services"][0]["total"];
    assert_eq!(seed["summary"]["total_requests"], svc["requests"]);
    assert_eq!(seed["summary"]["successful_requests"], svc["ok"]);
    assert_eq!(
        seed["percentiles"]["p95"],
        svc["latency_uncorrected_ms"]["p95"]
    );
    assert!(seed["timing"]["duration_seconds"].as_f64().unwrap() > 0.0);
    // It is a sealed report like the others, and JSON only.
    let seed_file = tmp.path().join("seed.json");
    std::fs::write(&seed_file, &out.stdout).unwrap();
    common::bin()
        .arg("verify")
        .arg(&seed_file)
        .assert()
        .success();
    let out = common::bin()
        .args(["report", "--format", "csv", "--compat", "seed"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON view"));
}

#[test]
fn a_push_needs_a_gateway_and_refuses_credentials_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let db = crate::reportdb::standard_http(tmp.path());
    let out = common::bin()
        .arg("push")
        .arg(&db)
        .env_remove("PUSHGATEWAY_URL")
        .env("FACTORYBENCH_MONITOR_DIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Pushgateway"));
    let out = common::bin()
        .arg("push")
        .arg(&db)
        .args(["--gateway", "http://ana:s3cret@pgw:9091"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("credentials in the URL are refused"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    // A password file others can read is refused before anything is sent.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "hunter2\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = common::bin()
        .arg("push")
        .arg(&db)
        .args(["--gateway", "http://127.0.0.1:1"])
        .env("PUSHGATEWAY_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn removed_flags_say_what_replaced_them() {
    for (args, says) in [
        (
            vec!["run", "recipe.yml", "--pushgateway", "http://pgw:9091"],
            "factorybench push CAMPAIGN --gateway URL",
        ),
        (
            vec!["report", "x.db", "--gateway-url=http://pgw:9091"],
            "factorybench push CAMPAIGN --gateway URL",
        ),
        (
            vec!["report", "x.db", "--push"],
            "factorybench push CAMPAIGN",
        ),
    ] {
        let out = common::bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("docs/migrating.md"), "{err}");
    }
    // Other unknown flags keep clap's own message.
    let out = common::bin()
        .args(["run", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("earlier tool"));
}

/// The compatibility names, pinned: dashboards and scripts depend on them.
#[test]
fn seed_names_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let db = crate::reportdb::standard_http(tmp.path());
    let a = factorybench::report::analyze_path(&db).unwrap();
    let groups = factorybench::report::push::campaign_groups(
        &a,
        "factorybench_campaign",
        &a.campaign,
        Some(factorybench::compat::CompatNames::Seed),
    );
    let mut names = std::collections::BTreeSet::new();
    for g in &groups {
        for l in g.body.lines().filter(|l| l.starts_with("# TYPE ")) {
            names.insert(l.trim_start_matches("# TYPE ").to_string());
        }
    }
    let labels: Vec<String> = groups
        .iter()
        .map(|g| {
            g.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    insta::assert_snapshot!(format!(
        "groups:\n{}\n\nfamilies:\n{}",
        labels.join("\n"),
        names.into_iter().collect::<Vec<_>>().join("\n")
    ));
    let seed =
        factorybench::report::seed::seed_report(&factorybench::report::ReportDocument::new(a, &db));
    let v = serde_json::to_value(&seed).unwrap();
    let keys: Vec<String> = v
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(k, x)| match x.as_object() {
            Some(m) if k != "services" => m.keys().map(|s| format!("{k}.{s}")).collect(),
            _ => vec![k.clone()],
        })
        .collect();
    insta::assert_snapshot!("seed_json_fields", keys.join("\n"));
}

#[test]
fn the_monitoring_section_is_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.yml");
    let mut r = recipe(tmp.path(), "v", "http://pgw.example.org:9091");
    std::fs::write(&path, &r).unwrap();
    common::bin().arg("validate").arg(&path).assert().success();
    r = r.replace("compat_metrics: seed", "compat_metrics: sed");
    std::fs::write(&path, &r).unwrap();
    let out = common::bin().arg("validate").arg(&path).output().unwrap();
    let err =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean `seed`"), "{err}");
    r = r.replace("compat_metrics: sed", "compat_names: seed");
    std::fs::write(&path, &r).unwrap();
    let out = common::bin().arg("validate").arg(&path).output().unwrap();
    let err =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("compat_metrics"), "{err}");
}
