//! The real binary: `factorybench run` of a recipe with PostgreSQL, S3 (moto) and ChromaDB on
//! 127.0.0.1 (the servers of scripts/test-env.sh), and the faults that stop a run at setup.

use crate::common;

use std::collections::HashMap;

fn envs() -> Option<HashMap<String, String>> {
    let mut all = common::server("postgres")?;
    all.extend(common::server("s3")?);
    all.extend(common::server("chroma")?);
    Some(all)
}

fn recipe(
    dir: &std::path::Path,
    env: &HashMap<String, String>,
    requests: u64,
) -> std::path::PathBuf {
    let text = format!(
        r#"
benchmark: {{name: data-run}}
global: {{metrics_db: "{db}"}}
services:
  - service_name: pg
    service_type: database
    runtime: external
    host: 127.0.0.1
    port: {pg_port}
    database: "{pg_db}"
    user: "{pg_user}"
    password_env: FB_TEST_PG_PASSWORD
    table_name: fb_run_{pid}
    seed_rows: 1000
    client_count: 2
    requests_per_second: 0
    arrival: closed
    requests: {requests}
    duration: 60
  - service_name: s3
    service_type: s3
    runtime: external
    endpoint_url: "{s3}"
    access_key_env: FB_TEST_S3_ACCESS_KEY
    secret_key_env: FB_TEST_S3_SECRET_KEY
    bucket_name: fb-run-{pid}
    object_sizes: {{"4KB": 0.5, "64KB": 0.5}}
    client_count: 2
    requests_per_second: 0
    arrival: closed
    requests: {requests}
    duration: 60
  - service_name: chroma
    service_type: vectordb
    backend: chromadb
    runtime: external
    service_url: "{chroma}"
    collection_name: fb_run_{pid}
    dimension: 64
    dataset_size: 500
    recall_queries: 20
    client_count: 2
    requests_per_second: 0
    arrival: closed
    requests: {requests}
    duration: 60
"#,
        db = dir.join("c.db").display(),
        pg_port = env["FB_TEST_PG_PORT"],
        pg_db = env["FB_TEST_PG_DB"],
        pg_user = env["FB_TEST_PG_USER"],
        s3 = env["FB_TEST_S3_URL"],
        chroma = env["FB_TEST_CHROMA_URL"],
        pid = std::process::id(),
    );
    let p = dir.join("recipe.yml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn postgres_s3_chroma_recipe_runs_locally() {
    let Some(env) = envs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(dir.path(), &env, 120);
    let out = common::bin()
        .args(["run", r.to_str().unwrap(), "--json", "--no-progress"])
        .env("FB_TEST_PG_PASSWORD", &env["FB_TEST_PG_PASSWORD"])
        .env("FB_TEST_S3_ACCESS_KEY", &env["FB_TEST_S3_ACCESS_KEY"])
        .env("FB_TEST_S3_SECRET_KEY", &env["FB_TEST_S3_SECRET_KEY"])
        .timeout(std::time::Duration::from_secs(240))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    common::assert_run_ok(&out);
    assert!(
        !stderr.contains(&env["FB_TEST_PG_PASSWORD"]),
        "password in the log"
    );
    assert!(
        !stderr.contains(&env["FB_TEST_S3_SECRET_KEY"]),
        "S3 secret in the log"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert_eq!(run["status"], "success", "{run}");
        assert_eq!(run["errors"], 0, "{run}");
        assert_eq!(run["requests"], 120, "{run}");
        assert!(run["ops_per_s"].as_f64().unwrap() > 0.0);
    }
    let chroma = runs.iter().find(|r| r["service"] == "chroma").unwrap();
    let recall = chroma["recall_at_k"].as_f64().expect("recall reported");
    assert!((0.5..=1.0).contains(&recall), "{recall}");
    let s3 = runs.iter().find(|r| r["service"] == "s3").unwrap();
    assert!(s3["mb_per_s"].as_f64().unwrap() > 0.0);

    // Every request is in the campaign file, with op labels and first bytes for gets.
    let db = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 360, "{n} rows");
    let gets_without_fb: i64 = db
        .query_row(
            "SELECT count(*) FROM requests WHERE op = 'get' AND first_byte_ns IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gets_without_fb, 0);
    let recall_rows: i64 = db
        .query_row(
            "SELECT count(*) FROM run_metrics WHERE name = 'recall_at_k'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recall_rows, 1);

    // The start gate: the three services started together, so each one's measured window
    // begins only after every other one's setup ended (ChromaDB's encodes its vectors while
    // PostgreSQL's seeds its table). A run's setup begins after its row is created
    // (`started_ns`) and lasts `setup_s`; 1 ms of slack for the two clocks' rounding.
    let windows: Vec<(String, i64, i64, f64, f64)> = db
        .prepare(
            "SELECT r.service, r.started_ns, r.measure_start_ns, s.value, w.value FROM runs r \
             JOIN run_metrics s ON s.run_id = r.run_id AND s.name = 'setup_s' \
             JOIN run_metrics w ON w.run_id = r.run_id AND w.name = 'start_gate_wait_s'",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(windows.len(), 3, "{windows:?}");
    for (a, _, a_measure, _, _) in &windows {
        for (b, b_started, _, b_setup_s, _) in &windows {
            let b_setup_end = b_started + (b_setup_s * 1e9) as i64;
            assert!(
                *a_measure >= b_setup_end - 1_000_000,
                "{a} measured from {a_measure}, before {b}'s setup ended at {b_setup_end}: {windows:?}"
            );
        }
    }
}

/// Servers down at start and a wrong password: a clear setup error, exit 1, a failed run
/// recorded.
#[test]
fn setup_faults_exit_1_with_a_clear_message() {
    let Some(env) = envs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut bad = env.clone();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    bad.insert("FB_TEST_S3_URL".into(), format!("http://127.0.0.1:{dead}"));
    bad.insert(
        "FB_TEST_CHROMA_URL".into(),
        format!("http://127.0.0.1:{dead}"),
    );
    let r = recipe(dir.path(), &bad, 10);
    let out = common::bin()
        .args(["run", r.to_str().unwrap(), "--no-progress"])
        .env("FB_TEST_PG_PASSWORD", "wrong-password")
        .env("FB_TEST_S3_ACCESS_KEY", "x")
        .env("FB_TEST_S3_SECRET_KEY", "y")
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains("is the S3 server running?"), "{text}");
    assert!(text.contains("is ChromaDB running?"), "{text}");
    assert!(!text.contains("wrong-password"), "secret in output: {text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// A moto of our own killed mid-run: the requests after the kill are recorded as `connect`
/// errors, everything before is kept, and `max_error_rate` stops the run as failed.
#[test]
fn s3_server_killed_mid_run_keeps_rows_and_stops_on_error_rate() {
    let Some(_) = common::server("s3") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut moto = std::process::Command::new("/opt/factorybench/moto/bin/moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server (scripts/install-s3.sh)");
    let up = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "moto did not start");
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.yml");
    std::fs::write(
        &recipe,
        format!(
            r#"
benchmark: {{name: s3-kill}}
global: {{metrics_db: "{db}"}}
services:
  - service_name: s3
    service_type: s3
    runtime: external
    endpoint_url: http://127.0.0.1:{port}
    access_key: AKIDTEST
    secret_key: test-secret-not-checked
    object_sizes: {{"4KB": 1}}
    operation_mix: {{put: 0.5, get: 0.5}}
    client_count: 1
    requests_per_second: 50
    arrival: constant
    duration: 8
    max_error_rate: 0.3
    timeout: 2
"#,
            db = dir.path().join("c.db").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .args(["run", recipe.to_str().unwrap(), "--no-progress"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    moto.kill().unwrap();
    moto.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let db = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let ok = count("SELECT count(*) FROM requests WHERE error_class IS NULL");
    let conn_err = count("SELECT count(*) FROM requests WHERE error_class IN ('connect', 'io')");
    let other = count(
        "SELECT count(*) FROM requests WHERE error_class IS NOT NULL AND error_class NOT IN ('connect', 'io')",
    );
    assert!(ok >= 50, "rows before the kill kept: {ok}\n{text}");
    assert!(conn_err > 0, "{text}");
    assert_eq!(other, 0, "{text}");
    let status: String = db
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "failed", "{text}");
}
