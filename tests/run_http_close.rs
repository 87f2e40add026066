//! The generic HTTP client against a real server that closes the connection after every
//! response (Python's http.server speaks HTTP/1.0): every request must succeed, with the
//! connection reopened for the next one. A regression test: the connection future used to end
//! in the same poll that delivered the response, and each request was counted as an I/O error.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    let server = Server(
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
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
