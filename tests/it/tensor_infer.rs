//! Issue 24: Triton image models through KServe v2 tensor inference, against the real KServe v2
//! server of scripts/start-kserve.sh (kserve's ModelServer running an ONNX conv net with
//! ResNet's FP32 [-1,3,224,224] input under the name `resnet50`, with onnxruntime).

use crate::common;
use crate::data_common::*;

fn recipe(url: &str, extra: &str) -> String {
    format!(
        r#"
benchmark: {{name: tensor-test}}
services:
  - service_name: triton-resnet
    service_type: triton
    runtime: external
    service_url: "{url}"
    model: resnet50
    client_count: 2
    requests_per_second: 0
    arrival: closed
    duration: 5
    timeout: 60
{extra}
"#
    )
}

/// Binary tensors (the default `auto` settles on binary with a server that speaks it) with a
/// batch of 4: every request answered with 4 rows; inferences counted per batch item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensors_batched() {
    let Some(env) = common::server("kserve") else {
        return;
    };
    let c = client(&recipe(&env["FB_TEST_KSERVE_URL"], "    batch_size: 4"));
    c.setup().await.unwrap();
    let recs = drive(&c, 2, 6, 3).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    assert_eq!(count(&recs, "infer"), 12);
    for r in &recs {
        // 4 × 3×224×224 FP32 values after the JSON header.
        assert!(
            r.outcome.bytes_sent > 4 * 3 * 224 * 224 * 4,
            "{:?}",
            r.outcome
        );
        assert!(r.outcome.bytes_received >= 4 * 1000 * 4, "{:?}", r.outcome);
        assert!(r.first_byte);
    }
    let m = c.teardown().await.unwrap();
    assert_eq!(metric(&m, "inferences"), Some(48.0));
    assert_eq!(metric(&m, "batch_size"), Some(4.0));
    assert_eq!(metric(&m, "binary_tensors"), Some(1.0));
    let ips = metric(&m, "inferences_per_s").expect("inferences/s");
    eprintln!("kserve binary batch 4: {ips:.1} inferences/s");
    assert!(ips > 0.0);
}

/// JSON tensors from a directory of PPM/PGM images (resized to 224×224, CHW, scaled to [0, 1]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_tensors_from_images() {
    let Some(env) = common::server("kserve") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3u8 {
        let mut ppm = b"P6\n32 16\n255\n".to_vec();
        ppm.extend((0..32 * 16 * 3).map(|j| (j as u8).wrapping_mul(i + 1)));
        std::fs::write(dir.path().join(format!("img{i}.ppm")), ppm).unwrap();
    }
    let mut pgm = b"P5\n8 8\n255\n".to_vec();
    pgm.extend([128u8; 64]);
    std::fs::write(dir.path().join("grey.pgm"), pgm).unwrap();
    let c = client(&recipe(
        &env["FB_TEST_KSERVE_URL"],
        &format!(
            "    batch_size: 2\n    tensor_encoding: json\n    images: \"{}\"",
            dir.path().display()
        ),
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 1, 4, 1).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    let m = c.teardown().await.unwrap();
    assert_eq!(metric(&m, "binary_tensors"), Some(0.0));
    assert_eq!(metric(&m, "inferences"), Some(8.0));

    // An empty directory and an unknown model are setup errors that say what is wrong.
    let empty = tempfile::tempdir().unwrap();
    let e = client(&recipe(
        &env["FB_TEST_KSERVE_URL"],
        &format!("    images: \"{}\"", empty.path().display()),
    ))
    .setup()
    .await
    .unwrap_err();
    assert!(e.message.contains("no .ppm or .pgm images"), "{e}");
    let e =
        client(&recipe(&env["FB_TEST_KSERVE_URL"], "    api: tensor").replace("resnet50", "nope"))
            .setup()
            .await
            .unwrap_err();
    assert!(e.message.contains("is the model loaded?"), "{e}");
}

/// A UINT8 HWC input (`resnet50_u8`: [-1, 224, 224, 3], raw camera bytes) from images in binary
/// tensors, and from random bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uint8_hwc_model_from_images_and_random() {
    let Some(env) = common::server("kserve") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut ppm = b"P6\n4 4\n255\n".to_vec();
    ppm.extend((0..48).map(|j| j as u8 * 5));
    std::fs::write(dir.path().join("a.ppm"), ppm).unwrap();
    let url = &env["FB_TEST_KSERVE_URL"];
    for extra in [
        format!(
            "    batch_size: 3\n    tensor_encoding: binary\n    images: \"{}\"",
            dir.path().display()
        ),
        "    batch_size: 2".to_string(),
    ] {
        let c = client(&recipe(url, &extra).replace("resnet50", "resnet50_u8"));
        c.setup().await.unwrap();
        let recs = drive(&c, 1, 3, 2).await;
        assert!(
            errors(&recs).is_empty(),
            "{extra}: {:?}",
            errors(&recs).first()
        );
        let m = c.teardown().await.unwrap();
        assert_eq!(metric(&m, "binary_tensors"), Some(1.0));
        let per = metric(&m, "batch_size").unwrap();
        assert_eq!(metric(&m, "inferences"), Some(3.0 * per));
        // UINT8: one byte per value.
        assert!(recs
            .iter()
            .all(|r| r.outcome.bytes_sent >= per as u64 * 224 * 224 * 3
                && r.outcome.bytes_sent < per as u64 * 224 * 224 * 3 + 4096));
    }
}

/// The real binary runs the users' Triton `resnet50` service (their format: no `api`) against the
/// KServe v2 server and records every request and the inferences/s in the campaign file.
#[test]
fn image_model_run_records_requests() {
    let Some(env) = common::server("kserve") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.yml");
    std::fs::write(
        &p,
        format!(
            "benchmark: {{name: triton-image}}\nglobal: {{metrics_db: \"{db}\"}}\nservices:\n  - service_name: triton-resnet50\n    service_type: triton\n    runtime: external\n    service_url: \"{url}\"\n    model: resnet50\n    batch_size: 2\n    client_count: 2\n    requests_per_second: 0\n    arrival: closed\n    requests: 120\n    duration: 120\n    timeout: 60\n",
            db = dir.path().join("c.db").display(),
            url = env["FB_TEST_KSERVE_URL"],
        ),
    )
    .unwrap();
    let out = common::bin()
        .args(["run", p.to_str().unwrap(), "--json", "--no-progress"])
        .timeout(std::time::Duration::from_secs(240))
        .output()
        .unwrap();
    common::assert_run_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["requests"], 120, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    let db = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let infers: i64 = db
        .query_row(
            "SELECT count(*) FROM requests WHERE op = 'infer' AND error_class IS NULL AND http_status = 200",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(infers, 120);
    let metric = |name: &str| -> f64 {
        db.query_row(
            "SELECT value FROM run_metrics WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let ips = metric("inferences_per_s");
    eprintln!("kserve run (batch 2, 2 clients): {ips:.1} inferences/s");
    assert!(ips > 0.0);
    assert_eq!(metric("inferences"), 240.0);
    assert_eq!(metric("binary_tensors"), 1.0);
}

/// A KServe v2 protocol fixture that refuses the binary tensor extension (as a server without
/// it does: HTTP 400) and answers JSON: model `m`, input FP32 [-1, 4], output [-1, 2]. Returns
/// its URL and the count of binary requests it refused.
fn json_only_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let refused = std::sync::Arc::new(AtomicU32::new(0));
    let r = refused.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let r = r.clone();
            std::thread::spawn(move || {
                let mut rd = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut len, mut binary) = (0usize, false);
                    loop {
                        let mut h = String::new();
                        rd.read_line(&mut h).unwrap();
                        let h = h.trim().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        binary |= h.starts_with("inference-header-content-length:");
                    }
                    let mut body = vec![0u8; len];
                    rd.read_exact(&mut body).unwrap();
                    let (status, out) = if line.starts_with("GET /v2/models/m ") {
                        (200, r#"{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,2]}]}"#.to_string())
                    } else if line.starts_with("POST /v2/models/m/infer ") && binary {
                        r.fetch_add(1, Ordering::SeqCst);
                        (
                            400,
                            r#"{"error":"binary tensor data is not supported"}"#.to_string(),
                        )
                    } else if line.starts_with("POST /v2/models/m/infer ") {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let n = v["inputs"][0]["shape"][0].as_u64().unwrap();
                        assert_eq!(
                            v["inputs"][0]["data"].as_array().unwrap().len() as u64,
                            n * 4
                        );
                        let data = vec![0.5; n as usize * 2];
                        (200, serde_json::json!({"id": v["id"], "outputs": [{"name": "y", "datatype": "FP32", "shape": [n, 2], "data": data}]}).to_string())
                    } else {
                        (404, r#"{"error":"not found"}"#.to_string())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{out}",
                        out.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, refused)
}

/// `tensor_encoding: auto` falls back to JSON when the server refuses binary tensors;
/// `tensor_encoding: binary` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_json_when_binary_is_refused() {
    let (url, refused) = json_only_server();
    let c = client(&recipe(&url, "    api: tensor\n    batch_size: 3").replace("resnet50", "m"));
    c.setup().await.unwrap();
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    let recs = drive(&c, 2, 5, 1).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    let m = c.teardown().await.unwrap();
    assert_eq!(metric(&m, "binary_tensors"), Some(0.0));
    assert_eq!(metric(&m, "inferences"), Some(30.0));

    let e = client(
        &recipe(&url, "    api: tensor\n    tensor_encoding: binary").replace("resnet50", "m"),
    )
    .setup()
    .await
    .unwrap_err();
    assert!(e.message.contains("HTTP 400"), "{e}");
    assert!(
        e.message.contains("binary tensor data is not supported"),
        "{e}"
    );
}
