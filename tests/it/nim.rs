//! NVIDIA NIM (`service_type: nim`) end to end against the project's real LLM server
//! (scripts/llm/server.mjs, which serves NIM's `GET /v1/health/ready` beside the OpenAI API):
//! `ready` waits on `/v1/health/ready`, and `run` records real tokens through the
//! OpenAI-compatible client (`/v1/models` checks the model, chat completions stream tokens).
//!
//! scripts/start-llm.sh restarts a running test server whose server.mjs is older than the tree's,
//! so the server here always serves that route.

use crate::common;
use std::io::{Read, Write};
use std::time::Duration;

/// `GET http://{authority}{path}`: the status code, or `None` when nothing answers.
fn get_status(authority: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(authority).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[test]
fn nim_recipe_is_ready_on_v1_health_ready_and_records_real_tokens() {
    let Some(env) = common::server("llm") else {
        return;
    };
    let _one_at_a_time = common::real_llm_lock();
    let url = env["FB_TEST_LLM_OPENAI_URL"].clone();
    let model = env["FB_TEST_LLM_OPENAI_MODEL"].clone();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    assert_eq!(
        get_status(authority, "/v1/health/ready"),
        Some(200),
        "the test LLM server does not serve /v1/health/ready: restart it with scripts/start-llm.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nim.db");
    let recipe = dir.path().join("nim.yml");
    std::fs::write(
        &recipe,
        format!(
            r#"benchmark:
  name: nim-e2e
global:
  metrics_db: {db}
services:
  - service_name: nim-smollm2
    service_type: nim
    runtime: external
    service_url: {url}
    model: {model}
    prompt: {{input_tokens: 16}}
    output_tokens: 8
    ignore_eos: true
    client_count: 1
    arrival: closed
    requests: 3
    duration: 120
    timeout: 120
"#,
            db = db.display(),
        ),
    )
    .unwrap();

    // Readiness asks NIM's path (a 404 there would time out: the server must serve it).
    let out = common::bin()
        .args(["ready", recipe.to_str().unwrap()])
        .args(["--service", "nim-smollm2", "--timeout", "60"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("/v1/health/ready"), "{text}");

    let out = common::bin()
        .args(["run", recipe.to_str().unwrap()])
        .args(["--sequential", "--no-progress", "--json"])
        .timeout(Duration::from_secs(400))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 3 requests are too few for percentiles (exit 5), but every one is recorded.
    assert!(
        matches!(out.status.code(), Some(0) | Some(5)),
        "exit {:?}\n{stderr}",
        out.status.code()
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let kind: String = conn
        .query_row("SELECT service_kind FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kind, "nim");
    let mut stmt = conn
        .prepare(
            "SELECT q.ok, q.output_tokens, q.input_tokens, q.tokens_from_server
             FROM requests q JOIN runs r USING (run_id)",
        )
        .unwrap();
    let rows: Vec<(i64, i64, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 3, "{stderr}");
    for (ok, out_tokens, in_tokens, from_server) in rows {
        assert_eq!(ok, 1);
        assert_eq!(out_tokens, 8, "ignore_eos gives exactly max_tokens");
        assert!(in_tokens >= 16, "prompt of 16 tokens + chat template");
        assert_eq!(from_server, 1, "token counts come from the server");
    }
}
