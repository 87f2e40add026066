//! Vector-DB clients: ChromaDB against the real server of scripts/start-chroma.sh; Weaviate
//! against the protocol fixture in `weaviate_fixture` (no Weaviate server installs here);
//! Faiss through the C library that scripts/install-faiss.sh builds (loaded at run time).

use crate::common;
use crate::data_common;
use crate::weaviate_fixture;

use data_common::*;
use factorybench::runner::client::ErrorClass;

fn recipe(backend: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
benchmark: {{name: vec-test}}
services:
  - service_name: vec
    service_type: vectordb
    runtime: external
    backend: {backend}
    service_url: "{url}"
    client_count: 2
    requests_per_second: 0
    arrival: closed
    duration: 5
    timeout: 20
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_mix_and_recall() {
    let Some(env) = common::server("chroma") else {
        return;
    };
    let base = &env["FB_TEST_CHROMA_URL"];
    let coll = format!("fb_test_{}", std::process::id());
    let c = client(&recipe(
        "chromadb",
        base,
        &format!(
            "    collection_name: {coll}\n    dimension: 32\n    dataset_size: 1500\n    recall_queries: 40\n    search_k: 10\n    batch_size: 5\n    operation_mix: {{insert: 0.2, search: 0.6, update: 0.1, delete: 0.1}}"
        ),
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 2, 60, 11).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    for op in ["insert", "search", "update", "delete"] {
        assert!(count(&recs, op) > 0, "no {op}");
    }
    let metrics = c.teardown().await.unwrap();
    let r = metric(&metrics, "recall_at_k").expect("recall_at_k");
    eprintln!("chroma recall@10 = {r}");
    assert!((0.8..=1.0).contains(&r), "recall {r}");
    assert_eq!(metric(&metrics, "recall_k"), Some(10.0));
    let st = reqwest::get(format!(
        "{base}/api/v2/tenants/default_tenant/databases/default_database/collections/{coll}"
    ))
    .await
    .unwrap()
    .status();
    assert_eq!(st.as_u16(), 404, "collection not dropped");
}

#[tokio::test]
async fn chroma_file_vectors_and_bad_dimension() {
    let Some(env) = common::server("chroma") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.jsonl");
    let mut s = String::new();
    for i in 0..300 {
        let a = i as f32 * 0.01;
        s.push_str(&format!("[{}, {}, {}, 1.0]\n", a.sin(), a.cos(), a * 0.1));
    }
    std::fs::write(&p, s).unwrap();
    let coll = format!("fb_test_file_{}", std::process::id());
    let c = client(&recipe(
        "chromadb",
        &env["FB_TEST_CHROMA_URL"],
        &format!(
            "    collection_name: {coll}\n    dimension: 4\n    dataset_size: 200\n    recall_queries: 20\n    search_k: 5\n    vectors: \"{}\"\n    operation_mix: {{search: 1}}",
            p.display()
        ),
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 1, 10, 1).await;
    assert!(errors(&recs).is_empty());
    let m = c.teardown().await.unwrap();
    assert!(metric(&m, "recall_at_k").unwrap() > 0.5);

    let c = client(&recipe(
        "chromadb",
        &env["FB_TEST_CHROMA_URL"],
        &format!("    dimension: 8\n    vectors: \"{}\"", p.display()),
    ));
    let e = c.setup().await.unwrap_err();
    assert!(e.message.contains("4-dimensional"), "{e}");
}

#[tokio::test]
async fn chroma_down_at_start() {
    let e = client(&recipe(
        "chromadb",
        &format!("http://127.0.0.1:{}", dead_port()),
        "",
    ))
    .setup()
    .await
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Connect, "{e}");
    assert!(e.message.contains("is ChromaDB running?"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_against_protocol_fixture() {
    let fx = weaviate_fixture::start().await;
    let c = client(&recipe(
        "weaviate",
        &fx.url,
        "    collection_name: fb_bench\n    dimension: 16\n    dataset_size: 800\n    recall_queries: 30\n    search_k: 5\n    batch_size: 4\n    operation_mix: {insert: 0.2, search: 0.6, update: 0.1, delete: 0.1}",
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 2, 50, 5).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    let m = c.teardown().await.unwrap();
    // The fixture searches exactly: recall must be 1.
    assert_eq!(metric(&m, "recall_at_k"), Some(1.0));
    let log = fx.log();
    for want in [
        "GET /v1/.well-known/ready",
        "POST /v1/schema",
        "POST /v1/batch/objects",
        "POST /v1/graphql",
        "DELETE /v1/batch/objects",
        "DELETE /v1/schema/Fb_bench",
    ] {
        assert!(log.iter().any(|l| l == want), "no {want} in {log:?}");
    }
    assert!(fx.classes().is_empty(), "class not dropped");

    // The fixture rejects a wrong dimension like Weaviate does (batch object error).
    fx.set_fail_batches(true);
    let c = client(&recipe(
        "weaviate",
        &fx.url,
        "    collection_name: fb_bench\n    dimension: 16\n    dataset_size: 10",
    ));
    let e = c.setup().await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Validation, "{e}");
}

/// Issue 24: every build accepts Faiss (the C library is loaded at run time).
#[test]
fn faiss_validates_in_every_build() {
    let s = service(&recipe("faiss", "http://127.0.0.1:1", ""));
    assert_eq!(s.kind.as_str(), "vectordb");
}

/// Real Faiss: Faiss's C library of scripts/install-faiss.sh, loaded at run time. The exact flat
/// index has recall 1 under a mix that inserts, updates and deletes; HNSW32 has high recall;
/// HNSW cannot delete (refused before any index is built).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faiss_flat_and_hnsw() {
    if common::server("faiss").is_none() {
        return;
    }
    let c = client(&recipe(
        "faiss",
        "http://127.0.0.1:1",
        "    dimension: 32\n    dataset_size: 2000\n    recall_queries: 50\n    search_k: 10\n    batch_size: 4\n    index: flat\n    operation_mix: {insert: 0.2, search: 0.6, update: 0.1, delete: 0.1}",
    ));
    c.setup().await.unwrap();
    let recs = drive(&c, 2, 100, 9).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    for op in ["insert", "search", "update", "delete"] {
        assert!(count(&recs, op) > 0, "no {op}");
    }
    let m = c.teardown().await.unwrap();
    assert_eq!(metric(&m, "recall_at_k"), Some(1.0));
    assert_eq!(metric(&m, "recall_k"), Some(10.0));

    let hnsw = |mix: &str| {
        service(&recipe(
            "faiss",
            "http://127.0.0.1:1",
            &format!("    dimension: 32\n    dataset_size: 2000\n    recall_queries: 50\n    search_k: 10\n    index: {{type: hnsw, m: 32}}\n    operation_mix: {mix}"),
        ))
    };
    let c =
        factorybench::runner::clients::make_client(&hnsw("{insert: 0.3, search: 0.7}")).unwrap();
    c.setup().await.unwrap();
    let recs = drive(&c, 2, 50, 9).await;
    assert!(errors(&recs).is_empty(), "{:?}", errors(&recs).first());
    let m = c.teardown().await.unwrap();
    let r = metric(&m, "recall_at_k").unwrap();
    eprintln!("faiss HNSW32 recall@10 = {r}");
    assert!(r > 0.9, "{r}");
}

/// Issue 24: a Faiss HNSW service whose mix deletes cannot run — an error at that service's
/// `operation_mix`, not a failure on the compute node.
#[test]
fn faiss_hnsw_with_deletes_is_an_error_at_the_service() {
    let e = factorybench::recipe::parse_str(
        &recipe(
            "faiss",
            "http://127.0.0.1:1",
            "    index: hnsw\n    operation_mix: {insert: 0.5, delete: 0.5}",
        ),
        std::path::Path::new("t.yml"),
    )
    .err()
    .unwrap_or_else(|| panic!("refused"));
    let msg = e.to_string();
    assert!(msg.contains("cannot remove vectors"), "{msg}");
    assert!(msg.contains("services[0].operation_mix"), "{msg}");
}

/// The real binary runs a Faiss recipe and records every request (and recall@10) in the
/// campaign file.
#[test]
fn faiss_run_records_requests() {
    if common::server("faiss").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.yml");
    std::fs::write(
        &p,
        format!(
            "benchmark: {{name: faiss-run}}\nglobal: {{metrics_db: \"{}\"}}\nservices:\n  - service_name: faiss-flat\n    service_type: vectordb\n    backend: faiss\n    index: flat\n    dimension: 64\n    dataset_size: 5000\n    recall_queries: 100\n    search_k: 10\n    operation_mix: {{insert: 0.1, search: 0.8, update: 0.05, delete: 0.05}}\n    client_count: 2\n    requests_per_second: 0\n    arrival: closed\n    requests: 400\n    duration: 60\n",
            dir.path().join("c.db").display()
        ),
    )
    .unwrap();
    let out = common::bin()
        .args(["run", p.to_str().unwrap(), "--json", "--no-progress"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    common::assert_run_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["requests"], 400, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    let recall = run["recall_at_k"].as_f64().expect("recall reported");
    eprintln!("faiss run recall@10 = {recall}");
    assert_eq!(recall, 1.0, "flat index is exact");
    let db = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let searches: i64 = db
        .query_row(
            "SELECT count(*) FROM requests WHERE op = 'search' AND error_class IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(searches > 200, "{searches} searches recorded");
}

/// A node without Faiss's C library: `run` fails at setup and `doctor` fails its `faiss[...]`
/// check, both naming what to load; with the library of scripts/install-faiss.sh, doctor passes.
#[test]
fn faiss_missing_library_names_what_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.yml");
    std::fs::write(
        &p,
        format!(
            "benchmark: {{name: faiss-missing}}\nglobal: {{metrics_db: \"{}\"}}\nservices:\n  - service_name: vec\n    service_type: vectordb\n    backend: faiss\n    dimension: 8\n    dataset_size: 100\n    client_count: 1\n    requests: 10\n    duration: 10\n",
            dir.path().join("c.db").display()
        ),
    )
    .unwrap();
    let missing = "/nonexistent/libfaiss_c.so";
    let o = common::bin()
        .args(["run", p.to_str().unwrap(), "--no-progress"])
        .env("FB_FAISS_LIB", missing)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Faiss's C library was not found"), "{err}");
    assert!(
        err.contains("FB_FAISS_LIB=/nonexistent/libfaiss_c.so"),
        "{err}"
    );
    assert!(err.contains("module load faiss"), "{err}");

    let doctor = |lib: Option<&str>| -> serde_json::Value {
        let mut c = common::bin();
        c.args(["doctor", p.to_str().unwrap(), "--json", "--monitor-dir"])
            .arg(dir.path().join("mon"))
            .env_remove("PUSHGATEWAY_URL");
        match lib {
            Some(l) => c.env("FB_FAISS_LIB", l),
            None => c.env_remove("FB_FAISS_LIB"),
        };
        let o = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "faiss[vec]")
            .cloned()
            .unwrap_or_else(|| panic!("no faiss check: {v}"))
    };
    let c = doctor(Some(missing));
    assert_eq!(c["status"], "fail", "{c}");
    assert!(c["fix"].as_str().unwrap().contains("conda"), "{c}");
    if common::server("faiss").is_some() {
        let c = doctor(None);
        assert_eq!(c["status"], "ok", "{c}");
        assert!(c["why"].as_str().unwrap().contains("libfaiss_c"), "{c}");
    }
}
