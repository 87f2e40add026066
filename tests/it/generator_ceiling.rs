//! Issue 27: the load generator's own ceiling. Every run says what one core of its client
//! drives of this kind (requests per CPU-second of the runner, measured), and `explain` says
//! whether the target rate fits the cores the job gives its runners, and how many client nodes
//! it would need. Against the real fb-testserver on 127.0.0.1; no figure depends on timing
//! beyond "positive" and "the bigger target needs more".

use crate::common::{self, Server};
use std::path::Path;

fn recipe(dir: &Path, port: u16, rate: u32) -> std::path::PathBuf {
    let p = dir.join(format!("r{rate}.yml"));
    std::fs::write(
        &p,
        format!(
            "benchmark: {{name: ceiling}}\nglobal: {{metrics_db: {db}, reports_dir: {d}/reports, logs_dir: {d}/logs}}\nservices:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{port}/\n    client_count: 2\n    requests_per_second: {half}\n    arrival: constant\n    warmup: 1\n    duration: 3\n",
            db = dir.join("c.db").display(),
            d = dir.display(),
            half = rate / 2,
        ),
    )
    .unwrap();
    p
}

#[test]
fn every_run_states_its_generator_ceiling_and_explain_sizes_the_client_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&[]);
    let r = recipe(dir.path(), srv.port, 600);
    let out = common::bin().args(["run"]).arg(&r).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0) | Some(5)),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("load generator [web]:") && text.contains("req/s of this kind"),
        "the run states its generator's ceiling:\n{text}"
    );
    // The report carries it, from the same CPU and request counts.
    let o = common::bin()
        .args(["report"])
        .arg(dir.path().join("c.db"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let g = &v["analysis"]["runs"][0]["generator_cost"];
    let per_core = g["requests_per_core_s"].as_f64().unwrap();
    let requests = g["requests"].as_u64().unwrap();
    let cpu_s = g["cpu_s"].as_f64().unwrap();
    assert!(per_core > 0.0 && requests >= 1500, "{g}");
    assert!(
        (per_core - requests as f64 / cpu_s).abs() < 1e-6 * per_core,
        "{g}"
    );
    assert!(
        g["basis"] == "lower_bound" || g["basis"] == "near_ceiling",
        "{g}"
    );

    // explain reads the campaign file the recipe names: the measured rate fits…
    let o = common::bin().arg("explain").arg(&r).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("web: load generator: one core drives") && text.contains(": fits ("),
        "{text}"
    );
    // …and a target far above one core says how many client nodes would drive it.
    let far = (per_core * 10.0) as u32 + 2;
    let big = recipe(dir.path(), srv.port, far);
    let o = common::bin().arg("explain").arg(&big).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("MORE THAN the 1 runner × 1 CPU") && text.contains("client_nodes: "),
        "{text}"
    );
    let o = common::bin()
        .args(["explain", "--json"])
        .arg(&big)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let g = &v["services"][0]["generator"];
    assert_eq!(g["fits"], false, "{g}");
    assert!(g["client_nodes_needed"].as_u64().unwrap() >= 10, "{g}");
    // Without a campaign file there is nothing measured to say.
    std::fs::remove_file(dir.path().join("c.db")).unwrap();
    let o = common::bin().arg("explain").arg(&big).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("load generator"));
}
