//! The S3 client against two real servers: moto (scripts/start-s3.sh), which does not verify
//! SigV4 signatures, and SeaweedFS (scripts/start-s3s.sh), which checks every request's access
//! key and signature. The signer is also checked against AWS's published examples in unit tests.

use crate::common;
use crate::data_common;

use data_common::*;
use factorybench::runner::client::ErrorClass;
use std::collections::HashMap;

fn recipe(endpoint: &str, dir: &tempfile::TempDir, extra: &str) -> String {
    let env = common::component_env("s3").unwrap_or_default();
    let key = |k: &str, default: &str| env.get(k).cloned().unwrap_or(default.into());
    recipe_keys(
        endpoint,
        dir,
        &key("FB_TEST_S3_ACCESS_KEY", "AK"),
        &key("FB_TEST_S3_SECRET_KEY", "SK"),
        extra,
    )
}

/// A closed-loop S3 recipe whose keys come from files in `dir` (never inline in the recipe).
fn recipe_keys(endpoint: &str, dir: &tempfile::TempDir, ak: &str, sk: &str, extra: &str) -> String {
    let ak_file = dir.path().join("ak");
    let sk_file = dir.path().join("sk");
    std::fs::write(&ak_file, ak).unwrap();
    std::fs::write(&sk_file, sk).unwrap();
    format!(
        r#"
benchmark: {{name: s3-test}}
services:
  - service_name: s3
    service_type: s3
    runtime: external
    endpoint_url: "{endpoint}"
    access_key_file: "{ak}"
    secret_key_file: "{sk}"
    client_count: 2
    requests_per_second: 0
    arrival: closed
    duration: 5
    timeout: 10
{extra}
"#,
        ak = ak_file.display(),
        sk = sk_file.display(),
    )
}

/// Keys under `prefix` in `bucket`, listed without the client (moto needs no signature).
async fn keys(url: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let body = reqwest::get(format!("{url}/{bucket}?list-type=2&prefix={prefix}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .collect()
}

fn url(env: &HashMap<String, String>) -> String {
    env["FB_TEST_S3_URL"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_with_sizes_first_byte_and_cleanup() {
    let Some(env) = common::server("s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("fb-test-mix-{}", std::process::id());
    let c = client(&recipe(
        &url(&env),
        &dir,
        &format!(
            "    bucket_name: {bucket}\n    operation_mix: {{put: 0.3, get: 0.5, list: 0.1, delete: 0.1}}\n    object_sizes: {{\"1KB\": 0.5, \"256KB\": 0.5}}"
        ),
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 2, 60, 7).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    for op in ["put", "get", "list", "delete"] {
        assert!(count(&recs, op) > 0, "no {op}");
    }
    for r in recs.iter().filter(|r| r.outcome.op == "get") {
        assert!(r.first_byte, "get without first byte");
        assert!([1024, 256 * 1024].contains(&r.outcome.size_bytes));
        assert_eq!(r.outcome.bytes_received, r.outcome.size_bytes);
    }
    for r in recs.iter().filter(|r| r.outcome.op == "put") {
        assert_eq!(r.outcome.bytes_sent, r.outcome.size_bytes);
    }
    assert!(!keys(&url(&env), &bucket, "factorybench/").await.is_empty());
    c.teardown().await.unwrap();
    assert!(
        keys(&url(&env), &bucket, "factorybench/").await.is_empty(),
        "cleanup left objects"
    );
}

#[tokio::test]
async fn virtual_host_addressing_and_region() {
    let Some(env) = common::server("s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("fb-test-vh-{}", std::process::id());
    let port = url(&env).rsplit(':').next().unwrap().to_string();
    let c = client(&recipe(
        &format!("http://localhost:{port}"),
        &dir,
        &format!(
            "    bucket_name: {bucket}\n    addressing: virtual_host\n    region: eu-west-1\n    operation_mix: {{put: 0.5, get: 0.5}}\n    object_sizes: {{\"4KB\": 1}}"
        ),
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 1, 20, 3).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    assert!(!keys(&url(&env), &bucket, "factorybench/").await.is_empty());
    c.teardown().await.unwrap();
}

#[tokio::test]
async fn server_down_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let e = client(&recipe(
        &format!("http://127.0.0.1:{}", dead_port()),
        &dir,
        "",
    ))
    .setup()
    .await
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Connect, "{e}");
    assert!(e.message.contains("is the S3 server running?"), "{e}");
}

/// A child process killed (and reaped) on demand or when dropped.
struct Killed(std::process::Child);

impl Killed {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A moto of our own, killed mid-run: later requests fail as connect/io, earlier ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_run() {
    let Some(_env) = common::server("s3") else {
        return;
    };
    let moto = "/opt/factorybench/moto/bin/moto_server";
    let port = dead_port();
    let mut child = Killed(
        std::process::Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server (scripts/install-s3.sh)"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(&endpoint).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = client(&recipe(
        &endpoint,
        &dir,
        "    operation_mix: {put: 0.5, get: 0.5}\n    object_sizes: {\"1KB\": 1}",
    ));
    c.setup().await.unwrap();
    let mut w = c.connect(0).await.unwrap();
    let clock = factorybench::runner::clock::Clock::new();
    let mut rng = factorybench::runner::rng::Rng::new(5);
    let mut out = Vec::new();
    for i in 0..30u64 {
        if i == 15 {
            child.kill();
        }
        let mut ctx = factorybench::runner::client::RequestCtx {
            worker: 0,
            seq: i,
            rng: &mut rng,
            clock: &clock,
            sent_ns: clock.now_ns(),
            first_byte_ns: None,
        };
        out.push(w.request(&mut ctx).await);
    }
    assert!(
        out[..15].iter().all(|o| o.error.is_none()),
        "{:?}",
        out[..15].iter().find(|o| o.error.is_some())
    );
    assert!(
        out[15..]
            .iter()
            .all(|o| matches!(o.error, Some(ErrorClass::Connect) | Some(ErrorClass::Io))),
        "{:?}",
        out[15..]
            .iter()
            .find(|o| !matches!(o.error, Some(ErrorClass::Connect) | Some(ErrorClass::Io)))
    );
    let e = c.teardown().await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Connect, "{e}");
}

/// Every object stored under `path` (e.g. `/buckets/NAME`), read from SeaweedFS's filer HTTP
/// API: what the server holds, seen without the S3 gateway and without the client under test.
async fn stored_below(filer: &str, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![path.trim_end_matches('/').to_string()];
    let http = reqwest::Client::new();
    while let Some(d) = dirs.pop() {
        let r = http
            .get(format!("{filer}{d}/?limit=100000"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            continue;
        }
        let v: serde_json::Value = r.json().await.unwrap();
        for e in v["Entries"].as_array().into_iter().flatten() {
            let p = e["FullPath"].as_str().unwrap().to_string();
            // Directories carry the mode's directory bit (Go's os.ModeDir, 1 << 31).
            if e["Mode"].as_u64().unwrap_or(0) & (1 << 31) != 0 {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The strict server checks the signature of every request: the whole mix (bucket creation, puts with a
/// signed payload hash, gets, lists with a query string, deletes, cleanup) passes only if each
/// one is signed exactly right, in path and in virtual-hosted style.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_sigv4_server_accepts_every_request() {
    let Some(env) = common::server("s3s") else {
        return;
    };
    let url = env["FB_TEST_S3S_URL"].clone();
    let port = url.rsplit(':').next().unwrap().to_string();
    let filer = env
        .get("FB_TEST_S3S_FILER_URL")
        .cloned()
        .expect("s3s.env without FB_TEST_S3S_FILER_URL comes from an older scripts/start-s3s.sh: rerun scripts/test-env.sh");
    for (addressing, endpoint) in [
        ("path", url.clone()),
        ("virtual_host", format!("http://localhost:{port}")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bucket = format!("fb-strict-{addressing}-{}", std::process::id()).replace('_', "-");
        let c = client(&recipe_keys(
            &endpoint,
            &dir,
            &env["FB_TEST_S3S_ACCESS_KEY"],
            &env["FB_TEST_S3S_SECRET_KEY"],
            &format!(
                "    bucket_name: {bucket}\n    addressing: {addressing}\n    operation_mix: {{put: 0.3, get: 0.4, list: 0.1, delete: 0.2}}\n    object_sizes: {{\"1KB\": 0.5, \"64KB\": 0.5}}"
            ),
        ));
        c.setup()
            .await
            .unwrap_or_else(|e| panic!("{addressing}: {e}"));
        let recs = drive(&c, 2, 40, 11).await;
        assert!(
            errors(&recs).is_empty(),
            "{addressing}: {:?}",
            errors(&recs).first()
        );
        for op in ["put", "get", "list", "delete"] {
            assert!(count(&recs, op) > 0, "{addressing}: no {op}");
        }
        let stored = format!("/buckets/{bucket}");
        assert!(!stored_below(&filer, &stored).await.is_empty());
        c.teardown().await.unwrap();
        let left: Vec<_> = stored_below(&filer, &stored)
            .await
            .into_iter()
            .filter(|p| p.contains("factorybench"))
            .collect();
        assert!(left.is_empty(), "{addressing}: cleanup left {left:?}");
    }
}

/// A wrong secret key is refused by the strict server at setup: an auth error that names the
/// bucket and says what to check, without the secret.
#[tokio::test]
async fn strict_sigv4_server_refuses_a_wrong_secret() {
    let Some(env) = common::server("s3s") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wRoNgSeCrEt0123456789wRoNgSeCrEt01234567";
    let e = client(&recipe_keys(
        &env["FB_TEST_S3S_URL"],
        &dir,
        &env["FB_TEST_S3S_ACCESS_KEY"],
        wrong,
        "    bucket_name: fb-strict-denied",
    ))
    .setup()
    .await
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Auth, "{e}");
    assert!(e.message.contains("HTTP 403"), "{e}");
    assert!(e.message.contains("check access_key/secret_key"), "{e}");
    assert!(!e.to_string().contains(wrong), "secret leaked: {e}");
}
