//! `factorybench ready`: real probes against a tiny loopback HTTP server started here (ephemeral
//! port), a closed port (times out, exit 1), and the real servers of the test environment
//! (PostgreSQL, ChromaDB, the LLM servers, S3) when they run.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A loopback HTTP server answering 200 on `ok_path`, 404 elsewhere; records request paths.
fn http_server(ok_path: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            seen2.lock().unwrap().push(path.clone());
            let (status, body) = if path == ok_path {
                ("200 OK", "{}")
            } else {
                ("404 Not Found", "no")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

fn write_recipe(dir: &Path, service_yaml: &str) -> std::path::PathBuf {
    let p = dir.join("recipe.yml");
    std::fs::write(
        &p,
        format!("benchmark: {{name: ready-test}}\nservices:\n{service_yaml}"),
    )
    .unwrap();
    p
}

fn ready(recipe: &Path, service: &str, timeout: &str) -> std::process::Output {
    common::bin()
        .args(["ready"])
        .arg(recipe)
        .args(["--service", service, "--timeout", timeout])
        .output()
        .unwrap()
}

#[test]
fn ollama_probe_asks_api_tags() {
    let (port, seen) = http_server("/api/tags");
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        &format!(
            "  - {{service_name: o, service_type: ollama, runtime: external, model: m, service_url: \"http://127.0.0.1:{port}\"}}\n"
        ),
    );
    let out = ready(&r, "o", "20");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen.lock().unwrap().as_slice(), ["/api/tags"]);
}

#[test]
fn each_kind_probes_its_documented_health_endpoint() {
    for (kind_yaml, path) in [
        ("service_type: vllm, model: m", "/v1/models"),
        ("service_type: triton, model: m", "/v2/health/ready"),
        ("service_type: nim, model: m", "/v1/health/ready"),
        (
            "service_type: vectordb, backend: chromadb",
            "/api/v2/heartbeat",
        ),
        (
            "service_type: vectordb, backend: weaviate",
            "/v1/.well-known/ready",
        ),
        ("service_type: http, url: /healthz", "/healthz"),
    ] {
        let (port, seen) = http_server(path);
        let dir = tempfile::tempdir().unwrap();
        let r = write_recipe(
            dir.path(),
            &format!(
                "  - {{service_name: s, {kind_yaml}, runtime: external, service_url: \"http://127.0.0.1:{port}\"}}\n"
            ),
        );
        let out = ready(&r, "s", "20");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind_yaml}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(seen.lock().unwrap().first().map(String::as_str), Some(path));
    }
}

#[test]
fn a_wrong_status_is_not_ready() {
    // The server answers, but 404 on the health path: not ready, exit 1 when the budget runs out.
    let (port, seen) = http_server("/something-else");
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        &format!(
            "  - {{service_name: t, service_type: triton, model: m, runtime: external, service_url: \"http://127.0.0.1:{port}\"}}\n"
        ),
    );
    let out = ready(&r, "t", "0.5");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404"), "{err}");
    assert!(!seen.lock().unwrap().is_empty());
}

#[test]
fn closed_port_times_out_with_exit_1() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        &format!(
            "  - {{service_name: c, service_type: vllm, model: m, runtime: external, service_url: \"http://127.0.0.1:{port}\"}}\n"
        ),
    );
    let out = ready(&r, "c", "1");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not answer"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}/v1/models")),
        "{err}"
    );
}

#[test]
fn unknown_service_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "  - {service_name: a, service_type: http, runtime: external, service_url: \"http://127.0.0.1:1\", url: /}\n",
    );
    let out = ready(&r, "nope", "1");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service `nope`"));
}

#[test]
fn file_storage_base_path_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("fs/base");
    let r = write_recipe(
        dir.path(),
        &format!(
            "  - {{service_name: f, service_type: file_storage, base_path: \"{}\"}}\n",
            base.display()
        ),
    );
    let out = ready(&r, "f", "5");
    assert_eq!(out.status.code(), Some(0));
    assert!(base.is_dir());
}

#[test]
fn postgres_startup_handshake_real_server() {
    let Some(env) = common::server("postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A wrong password: the server's authentication error still proves it answers.
    let r = write_recipe(
        dir.path(),
        &format!(
            "  - {{service_name: pg, service_type: database, runtime: external, host: \"{}\", port: {}, user: \"{}\", database: \"{}\", password_env: FB_READY_TEST_NO_SUCH_VAR}}\n",
            env["FB_TEST_PG_HOST"], env["FB_TEST_PG_PORT"], env["FB_TEST_PG_USER"], env["FB_TEST_PG_DB"]
        ),
    );
    let out = ready(&r, "pg", "20");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A closed port is not a database.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = write_recipe(
        dir.path(),
        &format!("  - {{service_name: pg, service_type: database, runtime: external, host: 127.0.0.1, port: {port}, password_env: X}}\n"),
    );
    assert_eq!(ready(&r, "pg", "0.5").status.code(), Some(1));
}

#[test]
fn real_chroma_llm_and_s3_servers_answer() {
    let mut cases = Vec::new();
    if let Some(env) = common::server("chroma") {
        cases.push(format!(
            "  - {{service_name: s, service_type: vectordb, backend: chromadb, runtime: external, service_url: \"{}\"}}\n",
            env["FB_TEST_CHROMA_URL"]
        ));
    }
    if let Some(env) = common::server("llm") {
        cases.push(format!(
            "  - {{service_name: s, service_type: vllm, model: m, runtime: external, service_url: \"{}\"}}\n",
            env["FB_TEST_LLM_OPENAI_URL"]
        ));
        cases.push(format!(
            "  - {{service_name: s, service_type: ollama, model: m, runtime: external, service_url: \"{}\"}}\n",
            env["FB_TEST_LLM_OLLAMA_URL"]
        ));
    }
    if let Some(env) = common::server("s3") {
        cases.push(format!(
            "  - {{service_name: s, service_type: s3, runtime: external, endpoint_url: \"{}\", access_key_env: A, secret_key_env: B}}\n",
            env["FB_TEST_S3_URL"]
        ));
    }
    for c in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = write_recipe(dir.path(), &c);
        let out = ready(&r, "s", "30");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{c}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn watched_service_process_exit_stops_waiting() {
    // A closed port and a service process that has already exited: `ready` gives up at once
    // instead of spending its whole budget (batch scripts pass the host service's pid).
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        &format!(
            "  - {{service_name: w, service_type: vllm, model: m, runtime: external, service_url: \"http://127.0.0.1:{port}\"}}\n"
        ),
    );
    let started = std::time::Instant::now();
    let out = common::bin()
        .arg("ready")
        .arg(&r)
        .args([
            "--service",
            "w",
            "--timeout",
            "600",
            "--watch-pid",
            &pid.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("service process {pid} has exited")),
        "{err}"
    );
    // Far below the 600 s budget (a generous bound, not a timing measurement).
    assert!(started.elapsed() < std::time::Duration::from_secs(300));
}

/// Issue 14: with the password the client will use, an authentication error (or a database
/// that does not exist) is not "ready" — the job would pass `ready` and fail at setup.
#[test]
fn postgres_auth_error_with_credentials_is_not_ready() {
    let Some(env) = common::server("postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let recipe = |db: &str| {
        write_recipe(
            dir.path(),
            &format!(
                "  - {{service_name: pg, service_type: database, runtime: external, host: \"{}\", port: {}, user: \"{}\", database: \"{db}\", password_env: FB_READY_PW}}\n",
                env["FB_TEST_PG_HOST"], env["FB_TEST_PG_PORT"], env["FB_TEST_PG_USER"]
            ),
        )
    };
    let run = |r: &Path, pw: &str| {
        common::bin()
            .args(["ready"])
            .arg(r)
            .args(["--service", "pg", "--timeout", "2"])
            .env("FB_READY_PW", pw)
            .output()
            .unwrap()
    };
    let good = recipe(&env["FB_TEST_PG_DB"]);
    let out = run(&good, &env["FB_TEST_PG_PASSWORD"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&good, "not-the-password");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refuses the benchmark's credentials"), "{err}");
    assert!(err.contains("28P01"), "{err}");
    let out = run(&recipe("no_such_db_fb"), &env["FB_TEST_PG_PASSWORD"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3D000"));
}
