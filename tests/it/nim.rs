//! NVIDIA NIM (`service_type: nim`) end to end against the project's real LLM server
//! (scripts/llm/server.mjs, which serves NIM's `GET /v1/health/ready` beside the OpenAI API):
//! `ready` waits on `/v1/health/ready`, and `run` records real tokens through the
//! OpenAI-compatible client (`/v1/models` checks the model, chat completions stream tokens).
//!
//! The running test server is used when it already serves `/v1/health/ready`; an older copy
//! (started before that route existed) is left alone, and this test starts its own instance of
//! this tree's scripts/llm/server.mjs on free ports with the same model.

use crate::common;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// An OpenAI-compatible LLM server that answers NIM's readiness path.
struct NimServer {
    url: String,
    model: String,
    /// Our own instance (killed on drop), with its directory.
    own: Option<(Child, tempfile::TempDir)>,
}

impl Drop for NimServer {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.own {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn nim_server(env: &std::collections::HashMap<String, String>) -> Option<NimServer> {
    let url = env["FB_TEST_LLM_OPENAI_URL"].clone();
    let model = env["FB_TEST_LLM_OPENAI_MODEL"].clone();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    if get_status(authority, "/v1/health/ready") == Some(200) {
        return Some(NimServer {
            url,
            model,
            own: None,
        });
    }
    // The running copy predates the route: start this tree's server beside it.
    let home = std::env::var("FB_LLM_HOME").unwrap_or_else(|_| "/opt/factorybench-llm".into());
    let home = std::path::Path::new(&home);
    let gguf = home.join("model/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !home.join("node_modules").is_dir() || !gguf.is_file() {
        eprintln!("SKIPPED: no LLM server home at {}", home.display());
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/llm/server.mjs");
    std::fs::copy(script, dir.path().join("server.mjs")).unwrap();
    std::os::unix::fs::symlink(home.join("node_modules"), dir.path().join("node_modules")).unwrap();
    let port = common::free_port();
    let child = Command::new("node")
        .arg("server.mjs")
        .current_dir(dir.path())
        .env("FB_LLM_MODEL_PATH", &gguf)
        .env("FB_LLM_OPENAI_PORT", port.to_string())
        .env("FB_LLM_OLLAMA_PORT", common::free_port().to_string())
        .env("FB_LLM_OPENAI_MODEL", &model)
        .env("FB_LLM_THREADS", "1")
        .env("FB_LLM_SEQUENCES", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs scripts/llm/server.mjs");
    let server = NimServer {
        url: format!("http://127.0.0.1:{port}"),
        model,
        own: Some((child, dir)),
    };
    let authority = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while get_status(&authority, "/v1/health/ready") != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "our LLM server did not become ready"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Some(server)
}

#[test]
fn nim_recipe_is_ready_on_v1_health_ready_and_records_real_tokens() {
    let Some(env) = common::server("llm") else {
        return;
    };
    let _one_at_a_time = common::real_llm_lock();
    let Some(server) = nim_server(&env) else {
        return;
    };
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
            url = server.url,
            model = server.model,
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
