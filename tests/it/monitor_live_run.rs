//! End to end with real components: `factorybench run` pushes live to the real Pushgateway
//! (scripts/start-prometheus.sh); its series appear in the real Prometheus while the run is in
//! progress; the group is gone from the Pushgateway afterwards; and every PromQL expression of
//! the Grafana dashboard (monitoring/grafana/dashboards/factorybench.json) returns data from
//! that Prometheus. Grafana itself cannot be installed here, so the dashboard is verified
//! through its queries.
//!
//! The run covers file storage (bytes), and an LLM service when the test LLM server is up
//! (TTFT/TPOT/tokens). There is no GPU on this machine: the GPU panels' queries are checked
//! against a group pushed by the same pusher from an NVML reading fixture (see
//! `gpu_fixture_source`), and say so.

use crate::common;

use factorybench::monitor::expo::Exposition;
use factorybench::monitor::live::LiveSource;
use factorybench::monitor::nvml::{render_gpus, GpuSample};
use factorybench::monitor::push::{FinalState, GroupingKey, PushConfig, Pusher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{get_json, prom_query as query, url_escape as esc};

fn query_range(prom: &str, q: &str, start: f64, end: f64) -> serde_json::Value {
    get_json(&format!(
        "{prom}/api/v1/query_range?query={}&start={start}&end={end}&step=1",
        esc(q)
    ))
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn pushgateway_groups(pgw: &str, campaign: &str) -> usize {
    get_json(&format!("{pgw}/api/v1/metrics"))["data"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter(|g| g["labels"]["campaign"].as_str() == Some(campaign))
                .count()
        })
        .unwrap_or(0)
}

/// An NVML reading as an H100 reports it (fixture: this machine has no GPU).
struct GpuFixture;

impl LiveSource for GpuFixture {
    fn render(&self, e: &mut Exposition) {
        render_gpus(
            &[GpuSample {
                index: 0,
                uuid: "GPU-00000000-fixture".into(),
                name: "NVIDIA H100 80GB HBM3 (fixture)".into(),
                util_percent: Some(87.0),
                mem_util_percent: Some(41.0),
                mem_used_bytes: Some(40 << 30),
                mem_total_bytes: Some(80 << 30),
                power_watts: Some(512.3),
                temperature_celsius: Some(61.0),
                sm_clock_mhz: Some(1980.0),
                mem_clock_mhz: Some(2619.0),
                energy_joules: Some(1000.0 + now_s() * 500.0),
            }],
            e,
        );
    }
}

fn recipe(
    dir: &std::path::Path,
    campaign: &str,
    pgw: &str,
    llm: Option<&std::collections::HashMap<String, String>>,
) -> String {
    let mut r = format!(
        r#"benchmark:
  name: "{campaign}"
global:
  metrics_db: "{db}"
  pushgateway_url: "{pgw}"
  push_interval: 0.5
services:
  - service_name: files
    service_type: file_storage
    base_path: "{files}"
    client_count: 2
    requests_per_second: 100
    arrival: constant
    warmup: 1
    duration: 10
    operation_mix: {{write: 0.4, read: 0.5, stat: 0.1}}
    file_sizes: {{"16KB": 1.0}}
"#,
        db = dir.join("run.db").display(),
        files = dir.join("files").display(),
    );
    if let Some(env) = llm {
        r.push_str(&format!(
            r#"  - service_name: llm
    service_type: vllm
    runtime: external
    service_url: "{url}"
    model: "{model}"
    api: completions
    client_count: 1
    arrival: closed
    requests_per_second: 0
    warmup: 0
    duration: 10
    output_tokens: 16
    prompt: {{input_tokens: 16}}
"#,
            url = env["FB_TEST_LLM_OPENAI_URL"],
            model = env["FB_TEST_LLM_OPENAI_MODEL"],
        ));
    }
    r
}

fn llm_client_available(env: &std::collections::HashMap<String, String>) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r.yml");
    std::fs::write(
        &p,
        recipe(tmp.path(), "probe", "http://127.0.0.1:1", Some(env)),
    )
    .unwrap();
    let loaded = factorybench::recipe::load(&p).expect("probe recipe is valid");
    let svc = loaded.plan.service("llm").unwrap();
    let ok = factorybench::runner::clients::make_client(svc).is_ok();
    if !ok {
        eprintln!("SKIPPED LLM part: this build has no LLM client yet");
    }
    ok
}

#[test]
fn a_run_pushes_live_and_every_dashboard_query_returns_data() {
    let Some(env) = common::server("prometheus") else {
        return;
    };
    let prom = env["FB_TEST_PROMETHEUS_URL"].clone();
    let pgw = env["FB_TEST_PUSHGATEWAY_URL"].clone();
    // The LLM service joins the run when the test LLM server runs and this build has an LLM
    // client (its panels are skipped, and say so, otherwise).
    let llm = common::server("llm").filter(llm_client_available);
    let _llm_lock = llm.as_ref().map(|_| common::real_llm_lock());
    let tmp = tempfile::tempdir().unwrap();
    let campaign = format!("mon-e2e-{}-{}", std::process::id(), now_s() as u64);
    let path = tmp.path().join("recipe.yml");
    std::fs::write(&path, recipe(tmp.path(), &campaign, &pgw, llm.as_ref())).unwrap();
    let start = now_s() - 5.0;

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
    // Live: series of this campaign appear in Prometheus while the run is still going.
    let live_q =
        format!("factorybench_requests_total{{campaign=\"{campaign}\",service=\"files\"}}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut live_seen = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if !query(&prom, &live_q).is_empty() {
            live_seen = child.try_wait().unwrap().is_none();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // GPU panels: push the fixture reading under the same campaign while the run goes on.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gpu = rt.block_on(async {
        Pusher::start(
            PushConfig::new(
                &pgw,
                GroupingKey::new(&campaign, "gpu-fixture", "fixture"),
                0.5,
            ),
            vec![Arc::new(GpuFixture) as Arc<dyn LiveSource>],
        )
    });
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(tmp.path().join("run.err")).unwrap_or_default();
    assert!(
        live_seen,
        "no live series while the run was in progress:\n{err}"
    );
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 5),
        "{status:?}\n{err}"
    );
    // After the run: its groups are gone from the Pushgateway (only the GPU fixture is left).
    assert_eq!(pushgateway_groups(&pgw, &campaign), 1, "{err}");
    std::thread::sleep(Duration::from_secs(3));
    let summary = rt.block_on(gpu.finish(FinalState {
        status: "success".into(),
    }));
    assert!(summary.deleted);
    assert_eq!(pushgateway_groups(&pgw, &campaign), 0);
    let end = now_s() + 1.0;

    let dash: serde_json::Value =
        serde_json::from_str(factorybench::monitor::stack::DASHBOARD_JSON).unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        exprs.push((
            format!("variable {}", v["name"]),
            v["query"]["query"].as_str().unwrap().to_string(),
        ));
    }
    assert!(exprs.len() > 25);
    let mut empty = Vec::new();
    for (title, expr) in &exprs {
        let llm_panel = expr.contains("llm_");
        if llm_panel && llm.is_none() {
            eprintln!("SKIPPED (no LLM server): {title}: {expr}");
            continue;
        }
        let q = expr
            .replace("$campaign", &campaign)
            .replace("$service", ".*")
            .replace("$__rate_interval", "4s");
        let q = if let Some(inner) = q.strip_prefix("label_values(") {
            // label_values(metric, label) → the metric itself must have series with the label.
            inner.rsplit_once(',').unwrap().0.to_string()
        } else {
            q
        };
        let v = query_range(&prom, &q, start, end);
        assert_eq!(v["status"], "success", "{title}: {q}: {v}");
        if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );

    // Every series an alerting rule (monitoring/alerts.yml) reads was really pushed by the run
    // (GPU series by the fixture reading), plus the Pushgateway's own push_time_seconds.
    let alerts = factorybench::monitor::stack::ALERTS_YML;
    let mut names: Vec<&str> = alerts
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("factorybench_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.push("push_time_seconds");
    assert!(names.len() > 10, "{names:?}");
    let missing: Vec<&str> = names
        .into_iter()
        .filter(|n| {
            let q = format!("{{__name__=\"{n}\",campaign=\"{campaign}\"}}");
            let v = query_range(&prom, &q, start, end);
            v["data"]["result"].as_array().is_none_or(|r| r.is_empty())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "alert rules read series the run never pushed: {missing:?}"
    );
}
