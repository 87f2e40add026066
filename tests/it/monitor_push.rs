//! The live pusher against the real Pushgateway and Prometheus started by
//! scripts/start-prometheus.sh, and against a down and a hanging Pushgateway.

use crate::common;

use factorybench::monitor::expo::Exposition;
use factorybench::monitor::live::LiveSource;
use factorybench::monitor::push::{FinalState, GroupingKey, PushConfig, Pusher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A synthetic source: a request counter the "benchmark" bumps.
#[derive(Default)]
struct Stats(AtomicU64);

impl Stats {
    fn requests_total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl LiveSource for Stats {
    fn render(&self, e: &mut Exposition) {
        e.counter("requests_total", "Requests.", self.requests_total() as f64);
    }
}
use std::time::{Duration, Instant};

fn get_json(url: &str) -> serde_json::Value {
    let body = blocking_get(url);
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// Tiny blocking GET for tests (run from spawn_blocking or plain threads).
fn blocking_get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match reqwest::Client::new().get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    })
}

fn prom_query(prom: &str, q: &str) -> Vec<serde_json::Value> {
    let url = format!("{prom}/api/v1/query?query={}", url_escape(q));
    get_json(&url)["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn url_escape(s: &str) -> String {
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

/// Whether the Pushgateway holds a group with this run_id label.
fn pushgateway_has(pgw: &str, run_id: &str) -> bool {
    let v = get_json(&format!("{pgw}/api/v1/metrics"));
    v["data"].as_array().is_some_and(|groups| {
        groups
            .iter()
            .any(|g| g["labels"]["run_id"].as_str() == Some(run_id))
    })
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn feed(stats: &Stats, n: u64) {
    stats.0.fetch_add(n, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_live_series_then_deletes_the_group() {
    let Some(env) = common::server("prometheus") else {
        return;
    };
    let prom = env["FB_TEST_PROMETHEUS_URL"].clone();
    let pgw = env["FB_TEST_PUSHGATEWAY_URL"].clone();
    let run_id = unique("push-test");
    let key = GroupingKey::new("monitor-test/campaign", "svc-a", &run_id);
    let stats = Arc::new(Stats::default());
    let pusher = Pusher::start(
        PushConfig::new(&pgw, key, 0.5),
        vec![stats.clone() as Arc<dyn LiveSource>],
    );
    // While the "run" goes on, its series must show up in Prometheus (scraped every 1 s).
    let q = format!("factorybench_requests_total{{run_id=\"{run_id}\",campaign=\"monitor-test/campaign\",service=\"svc-a\",job=\"factorybench\"}}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        feed(&stats, 100);
        let (p, q) = (prom.clone(), q.clone());
        seen = tokio::task::spawn_blocking(move || prom_query(&p, &q))
            .await
            .unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        !seen.is_empty(),
        "no live series for {run_id} in Prometheus"
    );
    assert_eq!(
        seen[0]["metric"]["instance"],
        factorybench::monitor::push::node_name()
    );
    let (p2, id2) = (pgw.clone(), run_id.clone());
    assert!(
        tokio::task::spawn_blocking(move || pushgateway_has(&p2, &id2))
            .await
            .unwrap()
    );
    let summary = pusher
        .finish(FinalState {
            status: "success".into(),
        })
        .await;
    assert!(summary.final_pushed && summary.deleted, "{summary:?}");
    assert_eq!(summary.pushes_failed, 0);
    let (p3, id3) = (pgw.clone(), run_id.clone());
    assert!(
        !tokio::task::spawn_blocking(move || pushgateway_has(&p3, &id3))
            .await
            .unwrap(),
        "group still on the Pushgateway after the run"
    );
}

/// End a pusher as a successful run does; its finish is bounded.
async fn finish_bounded(pusher: Pusher) -> factorybench::monitor::push::PushSummary {
    tokio::time::timeout(
        Duration::from_secs(30),
        pusher.finish(FinalState {
            status: "success".into(),
        }),
    )
    .await
    .expect("finish is bounded")
}

async fn assert_run_unaffected(url: String) {
    let stats = Arc::new(Stats::default());
    let pusher = Pusher::start(
        PushConfig::new(&url, GroupingKey::new("c", "s", &unique("down")), 0.2),
        vec![stats.clone() as Arc<dyn LiveSource>],
    );
    // The "benchmark" keeps going while pushes fail.
    for _ in 0..20 {
        feed(&stats, 50);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stats.requests_total(), 1000);
    let summary = finish_bounded(pusher).await;
    assert!(summary.pushes_failed > 0, "{summary:?}");
    assert!(!summary.deleted);
}

#[tokio::test]
async fn a_down_pushgateway_does_not_fail_the_run() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_run_unaffected(format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test]
async fn a_hanging_pushgateway_times_out() {
    // Accepts connections and never answers.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().take(64) {
            held.push(c);
        }
    });
    assert_run_unaffected(format!("http://127.0.0.1:{port}")).await;
}

/// Issue 23 case 8: while a run is still going, the failed pushes it counted are visible to
/// `status` (kept beside the run file), not only once the run has ended.
#[test]
fn failed_pushes_are_visible_while_the_run_goes_on() {
    use factorybench::store::campaign::{live_push_failures_path, read_runs};
    use factorybench::store::RunStatus;
    let tmp = tempfile::tempdir().unwrap();
    // A closed port: every push is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let db = tmp.path().join("runs").join("files-1.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let recipe = tmp.path().join("r.yml");
    std::fs::write(
        &recipe,
        format!(
            r#"benchmark: {{name: live-failures}}
global: {{pushgateway_url: "{url}", push_interval: 0.5}}
services:
  - service_name: files
    service_type: file_storage
    base_path: "{files}"
    client_count: 1
    requests_per_second: 20
    warmup: 0
    duration: 6
"#,
            files = tmp.path().join("files").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("factorybench"))
        .args(["run", "--no-progress", "--db"])
        .arg(&db)
        .arg(&recipe)
        .env_remove("PUSHGATEWAY_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut live = None;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let running = read_runs(&db)
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.status == RunStatus::Running && r.push_failures.is_some_and(|n| n > 0));
        if let Some(r) = running {
            live = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let live = live.expect("a running run with its failed pushes counted");
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 5),
        "{status:?}"
    );
    // At the end the count is stored with the run and the running count is gone.
    let done = read_runs(&db).unwrap().remove(0);
    assert_eq!(done.run_id, live.run_id);
    assert_ne!(done.status, RunStatus::Running);
    assert!(
        done.push_failures.unwrap() >= live.push_failures.unwrap(),
        "{done:?} {live:?}"
    );
    assert!(!live_push_failures_path(&db, &done.run_id).exists());
}

/// A fake Pushgateway on 127.0.0.1 for its first 64 requests: each is read and answered 200,
/// except those whose request line `hold` picks, which get no answer (their connections are
/// kept open). Returns its URL.
fn fake_pushgateway(hold: fn(&str) -> bool) -> String {
    use std::io::{BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut c in l.incoming().take(64).flatten() {
            let (line, _) = common::read_http_request(&mut BufReader::new(c.try_clone().unwrap()));
            if hold(&line) {
                held.push(c);
            } else {
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        }
    });
    url
}

/// A Pushgateway that takes every PUT and never answers a DELETE: the final push went through
/// and stands; only the delete failed, and it is not counted as a failed push.
#[tokio::test]
async fn a_hanging_delete_keeps_the_final_push() {
    let url = fake_pushgateway(|line| line.starts_with("DELETE"));
    let stats = Arc::new(Stats::default());
    let pusher = Pusher::start(
        PushConfig::new(&url, GroupingKey::new("c", "s", &unique("del")), 0.2),
        vec![stats.clone() as Arc<dyn LiveSource>],
    );
    feed(&stats, 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = finish_bounded(pusher).await;
    assert!(summary.final_pushed, "{summary:?}");
    assert!(!summary.deleted, "{summary:?}");
    assert_eq!(summary.pushes_failed, 0, "{summary:?}");
    // The final push at least (a starved runtime may stop before its first tick's push).
    assert!(summary.pushes_ok >= 1, "{summary:?}");
}

/// A source whose rendering stalls while `stall` is set (30 s at most): the pusher's task is
/// stuck, as on a starved machine, until the test lets it go.
#[derive(Default)]
struct Stalling {
    stall: std::sync::atomic::AtomicBool,
}

impl LiveSource for Stalling {
    fn render(&self, out: &mut Exposition) {
        let t0 = Instant::now();
        while self.stall.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        out.gauge("stalling", "A test gauge.", 1.0);
    }
}

/// A finish whose task cannot end in time is cut short at its bound: the pushes it counted
/// stand, and the final push it never made counts as one failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_pusher_is_cut_short_and_counts_its_final_push() {
    let url = fake_pushgateway(|_| false);
    let source = Arc::new(Stalling::default());
    // Interval 0.2 s: request timeout 0.2 s, finish bound 1.8 s.
    let pusher = Pusher::start(
        PushConfig::new(&url, GroupingKey::new("c", "s", &unique("stuck")), 0.2),
        vec![source.clone() as Arc<dyn LiveSource>],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    source.stall.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let summary = finish_bounded(pusher).await;
    // Cut at its bound: the render is still stuck.
    let took = t0.elapsed();
    source.stall.store(false, Ordering::SeqCst);
    assert!(took < Duration::from_secs(7), "{took:?}");
    assert!(!summary.final_pushed, "{summary:?}");
    assert!(!summary.deleted, "{summary:?}");
    assert_eq!(summary.pushes_failed, 1, "{summary:?}");
}
