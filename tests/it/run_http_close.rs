//! HTTP clients against real servers that close connections: after every response (Python's
//! http.server speaks HTTP/1.0), and after an idle keep-alive timeout (`fb-testserver
//! --idle-close-ms`, as nginx's `keepalive_timeout` and uvicorn's keep-alive timeout do). Every
//! request must succeed, on a reopened connection where needed: a benchmark tool must not
//! invent errors.

use crate::common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop (python3 -m http.server).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `service` (one recipe service entry) and returns the run's JSON summary and the
/// recorded (rows, successful rows) of the measured phase.
fn run(service: &str) -> (serde_json::Value, (i64, i64)) {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.yml");
    std::fs::write(&recipe, format!("services:\n{service}")).unwrap();
    let db = dir.path().join("m.db");
    let out = common::bin()
        .arg("run")
        .arg(&recipe)
        .arg("--db")
        .arg(&db)
        .args(["--json", "--no-progress"])
        .output()
        .unwrap();
    common::assert_run_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let counts = conn
        .query_row(
            "SELECT count(*), coalesce(sum(ok), 0) FROM requests WHERE warmup = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (v["runs"][0].clone(), counts)
}

/// A server that closes kept-alive connections after 10 ms idle, and requests spaced wider
/// than that: nearly every request finds its kept connection closed by the server. Regression
/// test (issue #16): the connection was polled only while a request was in flight, so the
/// close went unseen, the request was queued on the dead connection, and hyper's finished
/// dispatcher, kept alive, never answered it: no first byte until the run's timeout. Closed
/// loop (one connection per client, GET) and open loop (the shared idle pool, POST: never
/// resent, so its spacing leaves the server's close far from the next request).
#[test]
fn http_server_closing_idle_keep_alive_connections() {
    let srv = common::Server::start(&["--idle-close-ms", "10"]);
    let port = srv.port;
    let url = format!("http://127.0.0.1:{port}/");
    for (what, load) in [
        (
            "closed loop, GET",
            "    client_count: 2\n    arrival: closed\n    requests_per_second: 25\n    requests: 100\n",
        ),
        (
            "open loop, POST",
            "    method: POST\n    body: '{\"a\": 1}'\n    client_count: 2\n    arrival: constant\n    requests_per_second: 10\n    requests: 100\n",
        ),
    ] {
        let (run, counts) = run(&format!(
            "  - service_name: web\n    service_type: http\n    url: {url}\n    timeout: 5\n{load}"
        ));
        assert_eq!(run["errors"], 0, "{what}: {run:#}");
        assert_eq!(counts, (100, 100), "{what}: {run:#}");
    }
}

#[test]
fn http_1_0_server_closing_each_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let server = KillOnDrop(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is on PATH"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let recipe = dir.path().join("r.yml");
    std::fs::write(
        &recipe,
        format!(
            "services:\n  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{port}/\n    client_count: 2\n    requests_per_second: 0\n    requests: 120\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("m.db");
    let out = common::bin()
        .arg("run")
        .arg(&recipe)
        .arg("--db")
        .arg(&db)
        .args(["--json", "--no-progress"])
        .output()
        .unwrap();
    drop(server);
    common::assert_run_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["errors"], 0, "{run:#}");
    assert_eq!(run["latency_corrected_ms"]["count"], 120, "{run:#}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (rows, ok): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(ok) FROM requests WHERE warmup = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, ok), (120, 120));
}

/// The reqwest client the S3, Chroma and Weaviate kinds use (the LLM kinds and `https` build
/// theirs the same way: hyper-util's pool, whose connection tasks see an idle close): sequential
/// requests spaced wider than the server's keep-alive timeout all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_pool_and_idle_keep_alive_close() {
    let srv = common::Server::start(&["--idle-close-ms", "20"]);
    let port = srv.port;
    let c = factorybench::runner::clients::util::http_client(5.0).unwrap();
    for i in 0..10 {
        let r = c
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
