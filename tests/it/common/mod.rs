//! Shared helpers for integration tests.
//!
//! Real servers are started by `scripts/test-env.sh`, which writes `$FB_TEST_STATE/<c>.env`
//! files (default `/tmp/factorybench-test`). A test that needs a server calls [`server`]: when
//! the server is not running the test is skipped with a message, unless
//! `FB_REQUIRE_SERVERS=1` (set by `.ci/run`), in which case it fails.
#![allow(dead_code)]

pub mod slurm;

use std::collections::HashMap;
use std::path::PathBuf;

pub fn state_dir() -> PathBuf {
    std::env::var_os("FB_TEST_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/factorybench-test"))
}

/// Variables of `$FB_TEST_STATE/<component>.env`, overridden by the process environment.
pub fn component_env(component: &str) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(state_dir().join(format!("{component}.env"))).ok()?;
    let mut map = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = std::env::var(k).unwrap_or_else(|_| v.to_string());
            map.insert(k.to_string(), v);
        }
    }
    Some(map)
}

/// The env of a running component, or `None` (test skipped) when it is not running.
/// Panics instead of skipping when `FB_REQUIRE_SERVERS=1`.
pub fn server(component: &str) -> Option<HashMap<String, String>> {
    match component_env(component) {
        Some(env) => Some(env),
        None => {
            if std::env::var("FB_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("{component} is required (FB_REQUIRE_SERVERS=1) but scripts/start-{component}.sh has not run");
            }
            eprintln!("SKIPPED: {component} is not running (run scripts/test-env.sh)");
            None
        }
    }
}

/// A TCP port free on 127.0.0.1 now (the listener is closed on return).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The factorybench binary under test.
pub fn bin() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("factorybench").expect("binary built")
}

/// The real LLM test server answers one request at a time and takes both cores: every test that
/// drives it (tests/it/llm.rs, llm_run.rs, monitor_live_run.rs) holds this lock, so client-side
/// timings never include queueing behind another test's requests.
pub fn real_llm_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `run` that worked: exit 0, or exit 5 only because its load generator fell behind its
/// schedule on a loaded test machine (the `generator_saturated` gate, with the rate gate it
/// drags along) — never for errors, too few requests, a partial or a failed run.
pub fn assert_run_ok(out: &std::process::Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => {}
        Some(5) => {
            assert!(
                text.contains("generator saturated: generator lag p99"),
                "exit 5 for another reason than generator saturation:\n{text}"
            );
            for other in [
                "above threshold",
                "too few requests",
                "partial run",
                "run failed",
            ] {
                assert!(!text.contains(other), "invalid ({other}):\n{text}");
            }
            eprintln!("note: the load generator fell behind on this machine (exit 5 accepted)");
        }
        c => panic!("run exited {c:?}:\n{text}"),
    }
}

/// The loopback test server (`fb-testserver`), killed on drop.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fb-testserver"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port = line.trim().strip_prefix("port=").unwrap().parse().unwrap();
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url` with curl (5 s) and parse its JSON (`Null` when it failed).
pub fn get_json(url: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "--max-time", "5", url])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Percent-encode `s` for a URL query value.
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The result vector of the instant PromQL query `q` against the Prometheus at `prom`.
pub fn prom_query(prom: &str, q: &str) -> Vec<serde_json::Value> {
    get_json(&format!("{prom}/api/v1/query?query={}", url_escape(q)))["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Request rows committed to campaign file `db` so far (`None` before its first run row): a
/// reader in WAL mode never blocks the writer. While a run is on its rows are in the request
/// log, a chunk per drain; they join `requests` when it ends.
pub fn committed_rows(db: &std::path::Path) -> Option<i64> {
    let c = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    c.busy_timeout(std::time::Duration::from_millis(50)).ok()?;
    let has_run: i64 = c
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .ok()?;
    if has_run == 0 {
        return None;
    }
    c.query_row(
        "SELECT (SELECT count(*) FROM requests) \
         + (SELECT coalesce(sum(rows), 0) FROM request_log)",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// The newest measured completion in campaign file `db`, the request log's rows included.
pub fn last_done_ns(db: &std::path::Path) -> Option<i64> {
    use factorybench::store::read;
    let c = read::open_sqlite_read_only(db).ok()?;
    let mut newest = None;
    for run in read::run_ids(&c).ok()? {
        newest = newest.max(read::last_measured_done_ns(&c, &run).ok()?);
    }
    newest
}

/// Measured (not warmup) request rows in campaign file `db` so far, the request log's
/// included (what a report counts).
pub fn measured_rows(db: &std::path::Path) -> i64 {
    use factorybench::store::read;
    let Ok(c) = read::open_sqlite_read_only(db) else {
        return 0;
    };
    let mut n = 0;
    for run in read::run_ids(&c).unwrap_or_default() {
        let _ = read::scan_requests(&c, &run, false, |v| n += i64::from(v.is_some()));
    }
    n
}

/// One HTTP/1.1 request read by a test's fake server: its request line and its body (the
/// `Content-Length` bytes after the headers). Both empty when the peer closed first.
pub fn read_http_request(r: &mut impl std::io::BufRead) -> (String, Vec<u8>) {
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return (line, Vec::new());
    }
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    (line, body)
}
